/*
 * fp8_scales.c - checks of FP8 block scales, at load and in the full scan
 * (fp8_scales.h).
 */
#include "fp8_scales.h"

#include <float.h>  /* defines: FLT_MIN, FLT_MAX */
#include <math.h>   /* defines: isnan, isinf, fabsf */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy, memset, strlen */

#include "../core/dtype.h" /* defines: mtp_fp8_e4m3_to_f32 */
#include "../core/error.h"

const char *mtp_fp8_scale_problem(float s)
{
    if (isnan(s))
        return "NaN";
    if (isinf(s))
        return s > 0 ? "+Inf" : "-Inf";
    if (s == 0)
        return "zero";
    if (s < 0)
        return "negative";
    if (s < FLT_MIN)
        return "denormal";
    if (s > FLT_MAX / MTP_FP8_E4M3_MAX)
        return "448 * scale overflows F32";
    return NULL;
}

/* Element I of the F32 tensor T (memcpy: no alignment assumed). */
static float scale_at(const struct mtp_tensor_info *t, int64_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + (size_t)i * sizeof v, sizeof v);
    return v;
}

int mtp_fp8_scales_check(const struct mtp_tensor_info *t)
{
    int64_t cols = t->ndim == 2 ? t->shape[1] : t->numel;
    for (int64_t i = 0; i < t->numel; i++) {
        float v = scale_at(t, i);
        const char *problem = mtp_fp8_scale_problem(v);
        if (problem)
            return mtp_error_set("%s: tensor '%s': block [%lld, %lld]: expected a finite, "
                                 "positive, normal F32 scale with 448 * scale finite, found "
                                 "%.9g (%s)",
                                 t->file, t->name, (long long)(i / cols), (long long)(i % cols),
                                 (double)v, problem);
    }
    return MTP_OK;
}

/* The scale tensor of FP8 weight W when its shape fits B0 x B1 blocks. */
static const struct mtp_tensor_info *scale_of(struct mtp_checkpoint *ck,
                                              const struct mtp_tensor_info *w, int b0, int b1)
{
    if (w->dtype != MTP_DTYPE_F8_E4M3 || w->ndim != 2 || b0 <= 0 || b1 <= 0)
        return NULL;
    size_t len = strlen(w->name) + sizeof "_scale_inv";
    char *name = mtp_xmalloc(len);
    snprintf(name, len, "%s_scale_inv", w->name);
    const struct mtp_tensor_info *s = mtp_checkpoint_find(ck, name);
    free(name);
    int64_t sr = (w->shape[0] + b0 - 1) / b0, sc = (w->shape[1] + b1 - 1) / b1;
    if (!s || s->dtype != MTP_DTYPE_F32 || s->ndim != 2 || s->shape[0] != sr || s->shape[1] != sc)
        return NULL;
    return s;
}

struct scan {
    const struct mtp_tensor_info *weight, *scale;
    mtp_fp8_report_fn fn;
    void *user;
    int64_t bad;
};

/* Judge block row BR, whose largest |code| per block column is in MAX. */
static void judge_block_row(struct scan *sc, int64_t br, const float *max, int64_t nbc)
{
    for (int64_t bc = 0; bc < nbc; bc++) {
        float v = scale_at(sc->scale, br * nbc + bc);
        const char *problem = mtp_fp8_scale_problem(v);
        double largest = problem ? 0 : (double)max[bc] * v;
        if (!problem && largest > MTP_FP8_MAX_WEIGHT)
            problem = "dequantises above the bound 2^16";
        if (!problem)
            continue;
        sc->bad++;
        struct mtp_fp8_block_finding f = {sc->weight, sc->scale, br, bc, v, (float)largest,
                                          problem};
        if (sc->fn)
            sc->fn(sc->user, &f);
    }
}

static void scan_weight(struct scan *sc, int b0, int b1)
{
    const struct mtp_tensor_info *w = sc->weight;
    int64_t rows = w->shape[0], cols = w->shape[1], nbc = sc->scale->shape[1];
    float *max = mtp_xcalloc((size_t)nbc, sizeof *max);
    const uint8_t *codes = w->data;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = codes + (size_t)(r * cols);
        for (int64_t bc = 0; bc < nbc; bc++) {
            int64_t end = (bc + 1) * b1 < cols ? (bc + 1) * b1 : cols;
            for (int64_t c = bc * b1; c < end; c++) {
                float a = fabsf(mtp_fp8_e4m3_to_f32(row[c]));
                if (a > max[bc]) /* a NaN code compares false: the NaN scan names it */
                    max[bc] = a;
            }
        }
        if ((r + 1) % b0 == 0 || r + 1 == rows) {
            judge_block_row(sc, r / b0, max, nbc);
            memset(max, 0, (size_t)nbc * sizeof *max);
        }
    }
    free(max);
}

int64_t mtp_fp8_scales_scan(struct mtp_checkpoint *ck, int b0, int b1, mtp_fp8_report_fn fn,
                            void *user, int64_t *n_blocks)
{
    struct scan sc = {.fn = fn, .user = user};
    *n_blocks = 0;
    size_t n = mtp_checkpoint_count(ck);
    for (size_t i = 0; i < n; i++) {
        const struct mtp_tensor_info *w = mtp_checkpoint_tensor(ck, i);
        const struct mtp_tensor_info *s = scale_of(ck, w, b0, b1);
        if (!s)
            continue;
        sc.weight = w;
        sc.scale = s;
        scan_weight(&sc, b0, b1);
        *n_blocks += s->numel;
    }
    return sc.bad;
}
