/*
 * test_cpu_attention.c - CPU MLA attention (absorbed form, docs/model.md §3.4)
 * against the naive decompressing oracle (mtp_cpu_mla_attention_naive), and
 * its batch and thread invariance.
 *
 * Tolerance: |absorbed - naive| <= 1e-5 * max|naive| over one call's outputs.
 * The absorbed kernel works in fp32 (q~ is dn fused axpys, scores are
 * canonical dots of length rkv), the oracle in double; with O(1) weights and
 * dims below 64 the fp32 error is a few 1e-7 relative, so 1e-5 leaves margin
 * while any wrong row slice, scale block, mask or softmax is off by > 1e-2.
 * Cache rows past start_pos + n are NaN, so reading them fails the test.
 *
 * Build and run: cmake --build build --target test_cpu_attention && ./build/test_cpu_attention
 */
#include <math.h>   /* defines: fabs, sqrt, NAN */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* defines: uint8_t, uint64_t */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: memset */

#include <cmocka.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_oracle.h"

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_float(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) / 4503599627370496.0 - 1.0);
}

/* kv_b [rows, cols] of DTYPE with values of order 1 (FP8: exponents 2^-3..2^2,
 * block scales 0.25..1). */
static struct mtp_weight kv_b_make(enum mtp_dtype dt, int rows, int cols, int b0, int b1,
                                   uint64_t *s)
{
    struct mtp_weight w = {.dtype = dt, .rows = rows, .cols = cols, .name = "kv_b"};
    size_t count = (size_t)rows * (size_t)cols;
    void *data = malloc(count * mtp_dtype_size(dt));
    for (size_t i = 0; i < count; i++) {
        float v = rng_float(s) * 0.5f;
        if (dt == MTP_DTYPE_F32)
            ((float *)data)[i] = v;
        else if (dt == MTP_DTYPE_BF16)
            ((uint16_t *)data)[i] = mtp_f32_to_bf16(v);
        else {
            uint64_t r = rng_next(s);
            uint64_t e = 4 + (r >> 1) % 6; /* exponent field: 2^-3 .. 2^2 */
            ((uint8_t *)data)[i] = (uint8_t)(((r & 1) << 7) | (e << 3) | ((r >> 8) & 7));
        }
    }
    if (dt == MTP_DTYPE_F8_E4M3) {
        int nb = ((rows + b0 - 1) / b0) * ((cols + b1 - 1) / b1);
        float *sc = malloc((size_t)nb * sizeof(float));
        for (int i = 0; i < nb; i++)
            sc[i] = 0.25f + 0.75f * (float)((rng_next(s) >> 30) % 16) / 15.0f;
        w.scale_inv = sc;
        w.block_rows = b0;
        w.block_cols = b1;
    }
    w.data = data;
    return w;
}

struct attn_case {
    struct mtp_mla_dims dims;
    enum mtp_dtype dtype;
    int b0, b1;
};

/* Cache of CAPACITY rows: rows < filled random, the rest NaN. */
static float *cache_make(const struct mtp_mla_dims *d, int capacity, int filled, uint64_t *s)
{
    int cw = d->kv_lora + d->rope;
    float *c = malloc((size_t)capacity * cw * sizeof(float));
    for (int i = 0; i < capacity * cw; i++)
        c[i] = i < filled * cw ? rng_float(s) : NAN;
    return c;
}

static void attn_case_run(const struct attn_case *ac, uint64_t seed)
{
    /* (start_pos, n); the last is enough work to go to the thread pool (cpu_pool.h). */
    static const int shapes[][2] = {{0, 1}, {0, 4}, {5, 1}, {5, 4}, {17, 3}, {300, 5}};
    const struct mtp_mla_dims *d = &ac->dims;
    uint64_t s = seed;
    struct mtp_weight kv_b = kv_b_make(ac->dtype, d->n_heads * (d->nope + d->v), d->kv_lora,
                                       ac->b0, ac->b1, &s);
    struct mtp_backend *be1 = NULL, *be2 = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be1), MTP_OK);
    assert_int_equal(mtp_backend_cpu_create(2, &be2), MTP_OK);
    assert_int_equal(be1->iface->prepare_weight(be1->ctx, &kv_b), MTP_OK);
    const int qw = d->n_heads * (d->nope + d->rope), ow = d->n_heads * d->v;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int start = shapes[k][0], n = shapes[k][1];
        float *cache = cache_make(d, start + n + 3, start + n, &s);
        float *q = malloc((size_t)n * qw * sizeof(float));
        for (int i = 0; i < n * qw; i++)
            q[i] = 3.0f * rng_float(&s); /* peaked enough that the softmax is not uniform */
        float *fast = calloc((size_t)n * ow, sizeof(float));
        float *fast2 = calloc((size_t)n * ow, sizeof(float));
        float *ref = calloc((size_t)n * ow, sizeof(float));
        be1->iface->mla_attention(be1->ctx, d, &kv_b, q, n, start, cache, fast);
        mtp_cpu_mla_attention_naive(d, &kv_b, q, n, start, cache, ref);

        double mx = 0.0, err = 0.0;
        for (int i = 0; i < n * ow; i++) {
            mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
            double e = fabs((double)fast[i] - (double)ref[i]);
            err = e > err || isnan(e) ? e : err;
        }
        print_message("mla %s H=%d rkv=%d start=%d n=%d: max err %.3g of max %.3g\n",
                      mtp_dtype_name(ac->dtype), d->n_heads, d->kv_lora, start, n, err, mx);
        assert_true(mx > 0.1);
        assert_true(err <= 1e-5 * mx);

        /* Thread invariance, bitwise. */
        be2->iface->mla_attention(be2->ctx, d, &kv_b, q, n, start, cache, fast2);
        assert_memory_equal(fast, fast2, (size_t)n * ow * sizeof(float));
        /* Batch invariance: token t alone at start + t, bitwise. */
        for (int t = 0; t < n; t++) {
            be2->iface->mla_attention(be2->ctx, d, &kv_b, q + (size_t)t * qw, 1, start + t, cache,
                                      fast2);
            assert_memory_equal(fast2, fast + (size_t)t * ow, (size_t)ow * sizeof(float));
        }
        free(cache);
        free(q);
        free(fast);
        free(fast2);
        free(ref);
    }
    mtp_backend_free(be1);
    mtp_backend_free(be2);
    free((void *)kv_b.data);
    free((void *)kv_b.scale_inv);
}

static const struct attn_case cases[] = {
    {{.n_heads = 2, .nope = 16, .rope = 8, .v = 12, .kv_lora = 40}, MTP_DTYPE_F32, 0, 0},
    {{.n_heads = 3, .nope = 5, .rope = 4, .v = 7, .kv_lora = 37}, MTP_DTYPE_F32, 0, 0},
    {{.n_heads = 2, .nope = 16, .rope = 8, .v = 12, .kv_lora = 40}, MTP_DTYPE_BF16, 0, 0},
    {{.n_heads = 2, .nope = 16, .rope = 8, .v = 12, .kv_lora = 40}, MTP_DTYPE_F8_E4M3, 16, 16},
    {{.n_heads = 3, .nope = 5, .rope = 4, .v = 7, .kv_lora = 37}, MTP_DTYPE_F8_E4M3, 7, 20},
};

static void case_run(size_t i)
{
    struct attn_case ac = cases[i];
    ac.dims.scale = (float)(1.0 / sqrt((double)(ac.dims.nope + ac.dims.rope)));
    attn_case_run(&ac, 4242 + i);
}

static void test_mla_f32(void **state) { (void)state; case_run(0); }
static void test_mla_f32_odd_dims(void **state) { (void)state; case_run(1); }
static void test_mla_bf16(void **state) { (void)state; case_run(2); }
static void test_mla_fp8(void **state) { (void)state; case_run(3); }
static void test_mla_fp8_odd_blocks(void **state) { (void)state; case_run(4); }

/* One key: the softmax is 1, so out = W_UV[h] c_0 exactly as the oracle says;
 * and with a second key of equal score, out averages the two values. */
static void test_mla_hand_single_key(void **state)
{
    (void)state;
    /* H = 1, dn = 1, dr = 2, dv = 1, rkv = 2; kv_b rows: W_UK = [1, 0], W_UV = [2, 3]. */
    float kvb[4] = {1, 0, 2, 3};
    struct mtp_weight w = {
        .dtype = MTP_DTYPE_F32, .rows = 2, .cols = 2, .data = kvb, .name = "kv_b"};
    struct mtp_mla_dims d = {
        .n_heads = 1, .nope = 1, .rope = 2, .v = 1, .kv_lora = 2, .scale = 1.0f};
    /* rows: [c0, c1, kpe0, kpe1] */
    float cache[8] = {1, 1, 0, 0, 3, -1, 0, 0};
    float q[3] = {0, 5, 5}; /* q_nope = 0 and kpe = 0: all scores 0 */
    float out[1];
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    be->iface->mla_attention(be->ctx, &d, &w, q, 1, 0, cache, out);
    assert_float_equal(out[0], 2 * 1 + 3 * 1, 1e-6); /* only row 0 visible */
    be->iface->mla_attention(be->ctx, &d, &w, q, 1, 1, cache, out);
    assert_float_equal(out[0], 0.5 * (5 + (2 * 3 - 3)), 1e-6); /* mean of v0 = 5, v1 = 3 */
    mtp_backend_free(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mla_hand_single_key),
        cmocka_unit_test(test_mla_f32),
        cmocka_unit_test(test_mla_f32_odd_dims),
        cmocka_unit_test(test_mla_bf16),
        cmocka_unit_test(test_mla_fp8),
        cmocka_unit_test(test_mla_fp8_odd_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
