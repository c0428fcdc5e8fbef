/*
 * weights_check.c - NaN/Inf scan of every tensor (weights_check.h). Works on
 * the stored bits, so no conversion can hide or create a special value, and
 * one pass over a mapped file costs about as much as reading it.
 */
#include "weights_check.h"

#include <stdbool.h> /* defines: bool */
#include <string.h>  /* defines: strcmp */

/* How one dtype marks its special values: an element of SIZE bytes (read
 * little-endian) is special when (bits & MASK) == MASK; it is a NaN rather than
 * an Inf when some bit of NAN_BITS is also set. FP8 formats without Inf use
 * EXACT: bits & ~sign == MASK is a NaN. */
struct special_bits {
    const char *name;
    int size;
    uint64_t mask, nan_bits;
    bool exact; /* the only special value is the NaN pattern MASK (sign ignored) */
    uint64_t sign;
};

static const struct special_bits formats[] = {
    {"F64", 8, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull, false, 0},
    {"F32", 4, 0x7F800000u, 0x007FFFFFu, false, 0},
    {"C64", 4, 0x7F800000u, 0x007FFFFFu, false, 0}, /* two F32 per element */
    {"BF16", 2, 0x7F80u, 0x007Fu, false, 0},
    {"F16", 2, 0x7C00u, 0x03FFu, false, 0},
    {"F8_E5M2", 1, 0x7Cu, 0x03u, false, 0},
    {"F8_E4M3", 1, 0x7Fu, 0, true, 0x80u},    /* float8_e4m3fn: S.1111.111 */
    {"F8_E4M3FNUZ", 1, 0x80u, 0, true, 0},    /* the negative-zero pattern */
    {"F8_E5M2FNUZ", 1, 0x80u, 0, true, 0},
    {"F8_E8M0", 1, 0xFFu, 0, true, 0},        /* exponent-only scales */
};

static const struct special_bits *format_of(const struct mtp_tensor_info *t)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(formats[i].name, t->dtype_name) == 0)
            return &formats[i];
    return NULL; /* integers, bool, sub-byte floats: nothing can be non-finite */
}

static uint64_t load_bits(const unsigned char *p, int size)
{
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--)
        v = (v << 8) | p[i]; /* safetensors is little-endian whatever the host */
    return v;
}

static void scan_tensor(const struct mtp_tensor_info *t, const struct special_bits *f,
                        struct mtp_weights_finding *out)
{
    const unsigned char *p = t->data;
    int64_t n = (int64_t)(t->nbytes / (size_t)f->size);
    *out = (struct mtp_weights_finding){.tensor = t, .first = -1};
    for (int64_t i = 0; i < n; i++) {
        uint64_t b = load_bits(p + (size_t)i * (size_t)f->size, f->size);
        bool nan, inf;
        if (f->exact) {
            nan = (b & ~f->sign) == f->mask;
            inf = false;
        } else {
            bool special = (b & f->mask) == f->mask;
            nan = special && (b & f->nan_bits) != 0;
            inf = special && !nan;
        }
        if (!nan && !inf)
            continue;
        if (out->first < 0)
            out->first = strcmp(f->name, "C64") == 0 ? i / 2 : i;
        out->n_nan += nan;
        out->n_inf += inf;
    }
}

int mtp_weights_check_finite(struct mtp_checkpoint *ck, mtp_weights_report_fn fn, void *user,
                             int64_t *n_scanned)
{
    int bad = 0;
    *n_scanned = 0;
    size_t n = mtp_checkpoint_count(ck);
    for (size_t i = 0; i < n; i++) {
        const struct mtp_tensor_info *t = mtp_checkpoint_tensor(ck, i);
        const struct special_bits *f = format_of(t);
        if (!f)
            continue;
        (*n_scanned)++;
        struct mtp_weights_finding found;
        scan_tensor(t, f, &found);
        if (found.first < 0)
            continue;
        bad++;
        if (fn)
            fn(user, &found);
    }
    return bad;
}
