/*
 * test_cpu_moe.c - CPU expert computation: moe_ffn (routed + shared experts)
 * and the dense SwiGLU ffn, against a naive per-token loop in double.
 *
 * Experts mix dtypes (F32, BF16, FP8 with 8x8 blocks) so the grouped path
 * reads every kind of weight. Tolerance: |y - ref| <= 1e-5 * max|ref|: three
 * chained fp32 matmuls of width <= 48 and a silu add a few 1e-7 relative
 * error; a wrong expert, slot, weight or missing shared expert is off by O(1).
 * moe_ffn must also be bitwise batch invariant (token alone vs inside n = 5),
 * thread invariant (1 vs 2 threads) and allow y == x.
 *
 * Build and run: cmake --build build --target test_cpu_moe && ./build/test_cpu_moe
 */
#include <math.h>   /* defines: exp, fabs */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* defines: int32_t, uint64_t */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: memcpy */

#include <cmocka.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/backend.h"

enum { D = 24, I = 20, E = 6, K = 2, N = 5, SHARED_I = 2 * I };

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

/* W [rows, cols] of DTYPE with values of order 0.3; REAL gets the exact values. */
static struct mtp_weight weight_make(enum mtp_dtype dt, int rows, int cols, double **real,
                                     uint64_t *s)
{
    struct mtp_weight w = {.dtype = dt, .rows = rows, .cols = cols, .name = "expert"};
    size_t count = (size_t)rows * cols;
    void *data = malloc(count * mtp_dtype_size(dt));
    *real = malloc(count * sizeof(double));
    float *sc = NULL;
    if (dt == MTP_DTYPE_F8_E4M3) {
        int nb = ((rows + 7) / 8) * ((cols + 7) / 8);
        sc = malloc((size_t)nb * sizeof(float));
        for (int i = 0; i < nb; i++)
            sc[i] = 0.05f + 0.01f * (float)(i % 7);
        w.scale_inv = sc;
        w.block_rows = w.block_cols = 8;
    }
    for (size_t i = 0; i < count; i++) {
        float v = 0.6f * rng_float(s);
        if (dt == MTP_DTYPE_F32) {
            ((float *)data)[i] = v;
            (*real)[i] = v;
        } else if (dt == MTP_DTYPE_BF16) {
            ((uint16_t *)data)[i] = mtp_f32_to_bf16(v);
            (*real)[i] = mtp_bf16_to_f32(((uint16_t *)data)[i]);
        } else {
            uint64_t r = rng_next(s);
            uint8_t b = (uint8_t)(((r & 1) << 7) | ((3 + (r >> 1) % 6) << 3) | ((r >> 8) & 7));
            ((uint8_t *)data)[i] = b;
            int row = (int)(i / (size_t)cols), col = (int)(i % (size_t)cols);
            double scale = sc[(row / 8) * ((cols + 7) / 8) + col / 8];
            (*real)[i] = (double)mtp_fp8_e4m3_to_f32(b) * scale;
        }
    }
    w.data = data;
    return w;
}

/* An FFN and the exact values of its three matrices. */
struct test_ffn {
    struct mtp_ffn f;
    double *gate, *up, *down;
};

static void test_ffn_make(struct test_ffn *t, enum mtp_dtype dt, int width, uint64_t *s)
{
    t->f.gate = weight_make(dt, width, D, &t->gate, s);
    t->f.up = weight_make(dt, width, D, &t->up, s);
    t->f.down = weight_make(dt, D, width, &t->down, s);
}

static void test_ffn_free(struct test_ffn *t)
{
    const struct mtp_weight *ws[3] = {&t->f.gate, &t->f.up, &t->f.down};
    for (int i = 0; i < 3; i++) {
        free((void *)ws[i]->data);
        free((void *)ws[i]->scale_inv);
    }
    free(t->gate);
    free(t->up);
    free(t->down);
}

/* out[D] += scale * down(silu(gate x) * up x), in double. */
static void ffn_ref(const struct test_ffn *t, int width, const float *x, double scale, double *out)
{
    double h[SHARED_I];
    for (int i = 0; i < width; i++) {
        double g = 0, u = 0;
        for (int c = 0; c < D; c++) {
            g += t->gate[i * D + c] * x[c];
            u += t->up[i * D + c] * x[c];
        }
        h[i] = g / (1.0 + exp(-g)) * u;
    }
    for (int r = 0; r < D; r++) {
        double acc = 0;
        for (int i = 0; i < width; i++)
            acc += t->down[r * width + i] * h[i];
        out[r] += scale * acc;
    }
}

struct moe_fixture {
    struct test_ffn experts[E], shared;
    struct mtp_ffn ffns[E];
    struct mtp_moe moe;
    float x[N * D];
    int32_t idx[N * K];
    float w[N * K];
};

static void fixture_make(struct moe_fixture *m, bool has_shared)
{
    uint64_t s = 31337;
    static const enum mtp_dtype dts[E] = {MTP_DTYPE_F32, MTP_DTYPE_BF16, MTP_DTYPE_F8_E4M3,
                                          MTP_DTYPE_F32, MTP_DTYPE_BF16, MTP_DTYPE_F32};
    for (int e = 0; e < E; e++) {
        test_ffn_make(&m->experts[e], dts[e], I, &s);
        m->ffns[e] = m->experts[e].f;
    }
    test_ffn_make(&m->shared, MTP_DTYPE_F8_E4M3, SHARED_I, &s);
    /* Router is not used by moe_ffn except for its shape [E, D]. */
    m->moe = (struct mtp_moe){.router = {.dtype = MTP_DTYPE_F32, .rows = E, .cols = D},
                              .has_shared = has_shared, .shared = m->shared.f, .experts = m->ffns};
    for (int i = 0; i < N * D; i++)
        m->x[i] = rng_float(&s);
    /* Expert 3 is used by three tokens, 4 by none; token 2 has weight 0 on slot 1. */
    static const int32_t idx[N * K] = {0, 3, 3, 1, 2, 0, 5, 3, 1, 2};
    memcpy(m->idx, idx, sizeof idx);
    for (int i = 0; i < N * K; i++)
        m->w[i] = 0.25f + 0.5f * (rng_float(&s) + 1.0f);
    m->w[2 * K + 1] = 0.0f;
}

static void fixture_free(struct moe_fixture *m)
{
    for (int e = 0; e < E; e++)
        test_ffn_free(&m->experts[e]);
    test_ffn_free(&m->shared);
}

static void moe_check(bool has_shared)
{
    struct moe_fixture *m = calloc(1, sizeof *m);
    fixture_make(m, has_shared);
    struct mtp_backend *be1 = NULL, *be2 = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be1), MTP_OK);
    assert_int_equal(mtp_backend_cpu_create(2, &be2), MTP_OK);
    float y[N * D], y2[N * D];
    be1->iface->moe_ffn(be1->ctx, &m->moe, K, m->x, N, m->idx, m->w, y);

    double worst = 0, mx = 0;
    for (int t = 0; t < N; t++) {
        double ref[D] = {0};
        if (has_shared)
            ffn_ref(&m->shared, SHARED_I, m->x + t * D, 1.0, ref);
        for (int j = 0; j < K; j++)
            ffn_ref(&m->experts[m->idx[t * K + j]], I, m->x + t * D, m->w[t * K + j], ref);
        for (int c = 0; c < D; c++) {
            mx = fabs(ref[c]) > mx ? fabs(ref[c]) : mx;
            double e = fabs(ref[c] - y[t * D + c]);
            worst = e > worst || isnan(e) ? e : worst;
        }
    }
    print_message("moe_ffn (shared %d): max err %.3g of max %.3g\n", has_shared, worst, mx);
    assert_true(mx > 0.05);
    assert_true(worst <= 1e-5 * mx);

    /* Thread invariance. */
    be2->iface->moe_ffn(be2->ctx, &m->moe, K, m->x, N, m->idx, m->w, y2);
    assert_memory_equal(y, y2, sizeof y);
    /* Batch invariance: each token alone. */
    for (int t = 0; t < N; t++) {
        be2->iface->moe_ffn(be2->ctx, &m->moe, K, m->x + t * D, 1, m->idx + t * K, m->w + t * K,
                            y2);
        assert_memory_equal(y2, y + t * D, D * sizeof(float));
    }
    /* In place (y == x). */
    memcpy(y2, m->x, sizeof y2);
    be1->iface->moe_ffn(be1->ctx, &m->moe, K, y2, N, m->idx, m->w, y2);
    assert_memory_equal(y2, y, sizeof y);

    mtp_backend_free(be1);
    mtp_backend_free(be2);
    fixture_free(m);
    free(m);
}

static void test_moe_ffn_shared(void **state) { (void)state; moe_check(true); }
static void test_moe_ffn_no_shared(void **state) { (void)state; moe_check(false); }

static void test_ffn_dense(void **state)
{
    (void)state;
    uint64_t s = 5;
    struct test_ffn t;
    test_ffn_make(&t, MTP_DTYPE_BF16, SHARED_I, &s);
    float x[N * D], y[N * D], y1[D];
    for (int i = 0; i < N * D; i++)
        x[i] = rng_float(&s);
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(2, &be), MTP_OK);
    be->iface->ffn(be->ctx, &t.f, x, N, y);
    double worst = 0, mx = 0;
    for (int tk = 0; tk < N; tk++) {
        double ref[D] = {0};
        ffn_ref(&t, SHARED_I, x + tk * D, 1.0, ref);
        for (int c = 0; c < D; c++) {
            mx = fabs(ref[c]) > mx ? fabs(ref[c]) : mx;
            double e = fabs(ref[c] - y[tk * D + c]);
            worst = e > worst || isnan(e) ? e : worst;
        }
        be->iface->ffn(be->ctx, &t.f, x + tk * D, 1, y1);
        assert_memory_equal(y1, y + tk * D, sizeof y1);
    }
    assert_true(mx > 0.05);
    assert_true(worst <= 1e-5 * mx);
    be->iface->ffn(be->ctx, &t.f, x, N, x); /* in place */
    assert_memory_equal(x, y, sizeof y);
    mtp_backend_free(be);
    test_ffn_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moe_ffn_shared),
        cmocka_unit_test(test_moe_ffn_no_shared),
        cmocka_unit_test(test_ffn_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
