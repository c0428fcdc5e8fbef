/*
 * test_cpu_ops.c - CPU backend: creation by name, memory ops, weight
 * validation, embed, matmul for every weight dtype, RMSNorm and RoPE.
 *
 * Matmul is checked against a double-precision reference on the same stored
 * weights. Tolerance: |y - ref| <= (cols/32 + 8) * FLT_EPSILON * sum_c |w_c x_c|.
 * Reason: the canonical order gives each of the 32 lanes about cols/32 fused
 * additions (one rounding each, u = FLT_EPSILON/2), then a 5-level tree and at
 * most 7 tail additions; an FP8 weight adds one rounding when multiplied by its
 * scale. That is at most (cols/32 + 13) u, below the bound with 2x to spare;
 * a wrong scale block, dtype or lane order is off by orders of magnitude.
 * Batch invariance (n = 1 versus n = 5) and thread invariance (1 versus 2
 * threads) are checked bitwise with memcmp.
 *
 * Build and run: cmake --build build --target test_cpu_ops && ./build/test_cpu_ops
 */
#include <float.h>  /* defines: FLT_EPSILON */
#include <math.h>   /* defines: fabs, cos, sin */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* defines: uint8_t, uint16_t, uint64_t */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: memcmp, strstr */

#include <cmocka.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_internal.h" /* defines: mtp_cpu_dot_f32, mtp_cpu_dot_rows */
#include "kernels/cpu/cpu_oracle.h"   /* defines: mtp_cpu_matmul_canonical */

/* ------------------------------------------------------------ helpers */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Uniform in [-1, 1). */
static float rng_float(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) / 4503599627370496.0 - 1.0);
}

/* A weight of DTYPE with random contents, and its exact values as doubles. */
struct test_weight {
    struct mtp_weight w;
    double *real; /* [rows, cols] W_real */
};

static uint16_t random_f16_bits(uint64_t *s)
{
    uint64_t r = rng_next(s);
    uint16_t sign = (uint16_t)((r & 1) << 15);
    uint16_t exp = (uint16_t)(10 + (r >> 1) % 11); /* 2^-5 .. 2^5, normal, finite */
    uint16_t man = (uint16_t)((r >> 8) & 0x3ff);
    return (uint16_t)(sign | (exp << 10) | man);
}

static uint8_t random_fp8(uint64_t *s)
{
    uint8_t b;
    do
        b = (uint8_t)(rng_next(s) >> 24);
    while ((b & 0x7f) == 0x7f); /* no NaN */
    return b;
}

static void test_weight_init(struct test_weight *tw, enum mtp_dtype dt, int rows, int cols, int b0,
                             int b1, uint64_t *s)
{
    memset(tw, 0, sizeof *tw);
    size_t count = (size_t)rows * (size_t)cols;
    tw->w.dtype = dt;
    tw->w.rows = rows;
    tw->w.cols = cols;
    tw->w.name = "test.weight";
    tw->real = malloc(count * sizeof(double));
    void *data = malloc(count * mtp_dtype_size(dt));
    if (dt == MTP_DTYPE_F8_E4M3) {
        int nbr = (rows + b0 - 1) / b0, nbc = (cols + b1 - 1) / b1;
        float *sc = malloc((size_t)nbr * (size_t)nbc * sizeof(float));
        for (int i = 0; i < nbr * nbc; i++)
            sc[i] = 0.01f + 0.05f * (float)((rng_next(s) >> 20) % 64); /* distinct per block */
        tw->w.scale_inv = sc;
        tw->w.block_rows = b0;
        tw->w.block_cols = b1;
    }
    for (size_t i = 0; i < count; i++) {
        int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
        switch (dt) {
        case MTP_DTYPE_F32:
            ((float *)data)[i] = rng_float(s);
            tw->real[i] = ((float *)data)[i];
            break;
        case MTP_DTYPE_BF16:
            ((uint16_t *)data)[i] = mtp_f32_to_bf16(rng_float(s));
            tw->real[i] = mtp_bf16_to_f32(((uint16_t *)data)[i]);
            break;
        case MTP_DTYPE_F16:
            ((uint16_t *)data)[i] = random_f16_bits(s);
            tw->real[i] = mtp_f16_to_f32(((uint16_t *)data)[i]);
            break;
        default: {
            uint8_t b = random_fp8(s);
            ((uint8_t *)data)[i] = b;
            int nbc = (cols + b1 - 1) / b1;
            tw->real[i] = (double)mtp_fp8_e4m3_to_f32(b) *
                          (double)tw->w.scale_inv[(r / b0) * nbc + c / b1];
            break;
        }
        }
    }
    tw->w.data = data;
}

static void test_weight_free(struct test_weight *tw)
{
    free((void *)tw->w.data);
    free((void *)tw->w.scale_inv);
    free(tw->real);
}

static float *random_floats(size_t count, uint64_t *s)
{
    float *x = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        x[i] = rng_float(s);
    return x;
}

static struct mtp_backend *backend_threads(int n_threads)
{
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(n_threads, &be), MTP_OK);
    assert_non_null(be);
    return be;
}

/* ------------------------------------------------------------ backend object */

static void test_backend_create_by_name(void **state)
{
    (void)state;
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_create("cpu", 0, &be), MTP_OK);
    assert_string_equal(be->iface->name, "cpu");
    mtp_backend_free(be);

    be = (struct mtp_backend *)1;
    assert_int_equal(mtp_backend_create("tpu", 0, &be), MTP_ERR);
    assert_null(be);
    assert_non_null(strstr(mtp_error_message(), "tpu"));
    assert_non_null(strstr(mtp_error_message(), "cpu, cuda"));
#ifndef MTP_HAVE_CUDA
    assert_int_equal(mtp_backend_create("cuda", 0, &be), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "built without the CUDA backend"));
#endif
}

static void test_memory_ops(void **state)
{
    (void)state;
    struct mtp_backend *be = backend_threads(0);
    const struct mtp_backend_i *b = be->iface;
    float *p = b->alloc(be->ctx, 100 * sizeof(float));
    assert_int_equal((uintptr_t)p % 64, 0);
    for (int i = 0; i < 100; i++)
        assert_true(p[i] == 0.0f);
    float src[100], back[100];
    for (int i = 0; i < 100; i++)
        src[i] = (float)i * 0.5f - 7.0f;
    b->upload(be->ctx, p, src, sizeof src);
    float *q = b->alloc(be->ctx, sizeof src);
    b->copy(be->ctx, q, p, sizeof src);
    b->synchronize(be->ctx);
    b->download(be->ctx, back, q, sizeof src);
    assert_memory_equal(back, src, sizeof src);

    float y[3] = {1, 2, 3}, x[3] = {0.5f, -2, 10};
    b->add(be->ctx, y, x, 3);
    assert_true(y[0] == 1.5f && y[1] == 0.0f && y[2] == 13.0f);
    b->release(be->ctx, p);
    b->release(be->ctx, q);
    mtp_backend_free(be);
}

static void test_prepare_weight_validates(void **state)
{
    (void)state;
    struct mtp_backend *be = backend_threads(1);
    uint8_t bytes[16] = {0};
    float scale = 1.0f;
    struct mtp_weight w = {.dtype = MTP_DTYPE_F8_E4M3, .rows = 4, .cols = 4, .data = bytes,
                           .name = "layers.0.w", .block_rows = 2, .block_cols = 2};
    assert_int_equal(be->iface->prepare_weight(be->ctx, &w), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "layers.0.w"));
    w.scale_inv = &scale;
    assert_int_equal(be->iface->prepare_weight(be->ctx, &w), MTP_OK);
    w.block_cols = 0;
    assert_int_equal(be->iface->prepare_weight(be->ctx, &w), MTP_ERR);
    struct mtp_weight wi = {.dtype = MTP_DTYPE_I32, .rows = 2, .cols = 2, .data = bytes,
                            .name = "ids"};
    assert_int_equal(be->iface->prepare_weight(be->ctx, &wi), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "I32"));
    mtp_backend_free(be);
}

/* ------------------------------------------------------------ embed */

static void test_embed_bf16(void **state)
{
    (void)state;
    uint64_t s = 7;
    struct test_weight tw;
    test_weight_init(&tw, MTP_DTYPE_BF16, 10, 19, 0, 0, &s);
    struct mtp_backend *be = backend_threads(1);
    int32_t tokens[3] = {9, 0, 4};
    float out[3 * 19];
    be->iface->embed(be->ctx, &tw.w, tokens, 3, out);
    for (int t = 0; t < 3; t++)
        for (int c = 0; c < 19; c++)
            assert_true(out[t * 19 + c] == (float)tw.real[tokens[t] * 19 + c]);
    mtp_backend_free(be);
    test_weight_free(&tw);
}

/* ------------------------------------------------------------ matmul */

struct matmul_case {
    enum mtp_dtype dtype;
    int rows, cols;
    int b0, b1; /* FP8 block */
};

/* Max violation ratio |y - ref| / bound over all outputs (<= 1 passes). */
static double matmul_check_ref(const struct test_weight *tw, const float *x, int x_stride, int n,
                               const float *y, int y_stride)
{
    int rows = tw->w.rows, cols = tw->w.cols;
    double worst = 0.0;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double ref = 0.0, mag = 0.0;
            for (int c = 0; c < cols; c++) {
                double p = tw->real[(size_t)r * cols + c] * (double)x[(size_t)t * x_stride + c];
                ref += p;
                mag += fabs(p);
            }
            double bound = ((double)cols / 32.0 + 8.0) * FLT_EPSILON * mag + 1e-30;
            double ratio = fabs((double)y[(size_t)t * y_stride + r] - ref) / bound;
            worst = ratio > worst ? ratio : worst;
        }
    return worst;
}

static void matmul_case_run(const struct matmul_case *mc, uint64_t seed)
{
    uint64_t s = seed;
    struct test_weight tw;
    test_weight_init(&tw, mc->dtype, mc->rows, mc->cols, mc->b0, mc->b1, &s);
    const int n = 5, xs = mc->cols + 3, ys = mc->rows + 2;
    float *x = random_floats((size_t)n * xs, &s);
    float *y1 = calloc((size_t)n * ys, sizeof(float));
    float *y2 = calloc((size_t)n * ys, sizeof(float));
    float *yt = calloc((size_t)ys, sizeof(float));
    struct mtp_backend *be1 = backend_threads(1), *be2 = backend_threads(2);
    assert_int_equal(be1->iface->prepare_weight(be1->ctx, &tw.w), MTP_OK);

    be1->iface->matmul(be1->ctx, &tw.w, x, xs, n, y1, ys);
    double worst = matmul_check_ref(&tw, x, xs, n, y1, ys);
    print_message("matmul %s [%d, %d]: worst error / bound = %.3g\n", mtp_dtype_name(mc->dtype),
                  mc->rows, mc->cols, worst);
    assert_true(worst <= 1.0);

    /* Thread invariance: 2 threads, bitwise. */
    be2->iface->matmul(be2->ctx, &tw.w, x, xs, n, y2, ys);
    for (int t = 0; t < n; t++)
        assert_memory_equal(y1 + (size_t)t * ys, y2 + (size_t)t * ys,
                            (size_t)mc->rows * sizeof(float));

    /* Batch invariance: each token alone (n = 1) equals its row in n = 5, bitwise. */
    for (int t = 0; t < n; t++) {
        be2->iface->matmul(be2->ctx, &tw.w, x + (size_t)t * xs, xs, 1, yt, ys);
        assert_memory_equal(yt, y1 + (size_t)t * ys, (size_t)mc->rows * sizeof(float));
    }
    /* And tokens 1.. as batches of 2, 3 and 4 (each batch size has its own kernel path). */
    for (int m = 2; m <= 4; m++) {
        be1->iface->matmul(be1->ctx, &tw.w, x + xs, xs, m, y2, ys);
        assert_memory_equal(y2, y1 + ys, ((size_t)(m - 1) * ys + mc->rows) * sizeof(float));
    }

    mtp_backend_free(be1);
    mtp_backend_free(be2);
    free(x);
    free(y1);
    free(y2);
    free(yt);
    test_weight_free(&tw);
}

static const int matmul_shapes[][2] = {{70, 200}, {37, 611}, {5, 7}, {130, 64}, {33, 90}};

static void matmul_dtype_run(enum mtp_dtype dt)
{
    for (size_t i = 0; i < sizeof matmul_shapes / sizeof matmul_shapes[0]; i++) {
        struct matmul_case mc = {dt, matmul_shapes[i][0], matmul_shapes[i][1], 32, 32};
        matmul_case_run(&mc, 1000 + i);
    }
}

static void test_matmul_f32(void **state) { (void)state; matmul_dtype_run(MTP_DTYPE_F32); }
static void test_matmul_bf16(void **state) { (void)state; matmul_dtype_run(MTP_DTYPE_BF16); }
static void test_matmul_f16(void **state) { (void)state; matmul_dtype_run(MTP_DTYPE_F16); }

static void test_matmul_fp8_blocks(void **state)
{
    (void)state;
    /* Non-multiple-of-block shapes, and blocks not a multiple of 8 columns. */
    const struct matmul_case cases[] = {
        {MTP_DTYPE_F8_E4M3, 70, 200, 32, 32},
        {MTP_DTYPE_F8_E4M3, 37, 611, 16, 48},
        {MTP_DTYPE_F8_E4M3, 23, 301, 7, 20},
        {MTP_DTYPE_F8_E4M3, 64, 256, 128, 128},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        matmul_case_run(&cases[i], 77 + i);
}

/*
 * The blocked kernels (register tiles over rows and tokens, weights widened
 * once per call) against the canonical order itself: mtp_cpu_matmul_canonical
 * is mtp_cpu_dot_f32 of each decoded row, one output at a time. Bitwise, for
 * every dtype, n = 1..17 (every tile remainder), 1 and 2 threads, row counts
 * that leave every row-tile remainder and column counts that leave every
 * chunk remainder (0..3 trailing 8-column chunks) and tail (cols % 8). The
 * inputs span 2^-12..2^12 so a changed order changes the rounding.
 */
static float *wide_floats(size_t count, uint64_t *s)
{
    float *x = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        x[i] = ldexpf(rng_float(s), (int)(rng_next(s) % 25) - 12);
    return x;
}

static const int canonical_shapes[][2] = {{1, 1},   {3, 8},   {5, 7},   {17, 24},  {21, 16},
                                          {9, 40},  {33, 90}, {19, 136}, {70, 200}, {37, 611},
                                          {4, 56},  {66, 48}, {13, 168}};

static void canonical_case_run(enum mtp_dtype dt, int rows, int cols, uint64_t seed)
{
    uint64_t s = seed;
    struct test_weight tw;
    test_weight_init(&tw, dt, rows, cols, 16, 48, &s);
    const int nmax = 17, xs = cols + 5, ys = rows + 3;
    float *x = wide_floats((size_t)nmax * xs, &s);
    float *ref = calloc((size_t)nmax * ys, sizeof(float));
    float *y = calloc((size_t)nmax * ys, sizeof(float));
    mtp_cpu_matmul_canonical(&tw.w, x, xs, nmax, ref, ys);
    for (int th = 1; th <= 2; th++) {
        struct mtp_backend *be = backend_threads(th);
        for (int n = 1; n <= nmax; n++) {
            be->iface->matmul(be->ctx, &tw.w, x, xs, n, y, ys);
            for (int t = 0; t < n; t++)
                if (memcmp(y + (size_t)t * ys, ref + (size_t)t * ys, (size_t)rows * sizeof(float))) {
                    print_message("%s [%d, %d], n %d, %d threads: token %d differs\n",
                                  mtp_dtype_name(dt), rows, cols, n, th, t);
                    fail();
                }
        }
        mtp_backend_free(be);
    }
    free(x);
    free(ref);
    free(y);
    test_weight_free(&tw);
}

static void test_matmul_canonical_bitwise(void **state)
{
    (void)state;
    const enum mtp_dtype dts[] = {MTP_DTYPE_F32, MTP_DTYPE_BF16, MTP_DTYPE_F16,
                                  MTP_DTYPE_F8_E4M3};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t i = 0; i < sizeof canonical_shapes / sizeof canonical_shapes[0]; i++)
            canonical_case_run(dts[d], canonical_shapes[i][0], canonical_shapes[i][1],
                               500 + 31 * d + i);
}

/*
 * FP8 at the widths and 128-column blocks of the released checkpoints, where
 * the AVX2 kernel widens whole rows of normal E4M3 bytes with the block scale
 * times 2^120 (cpu_matmul.c, fp8x8_folded), bitwise against the canonical
 * order, at 1, 2 and 3 threads and n = 1..6. Rows of normal bytes take that
 * path; rows with one zero or subnormal byte, or a NaN code, and blocks
 * whose scale is too large to fold (2^7, 2^20) or small enough to make
 * subnormal products (1e-38), must give the same bits through the other path.
 */
static uint8_t random_fp8_normal(uint64_t *s)
{
    uint8_t b;
    do
        b = random_fp8(s);
    while ((b & 0x78) == 0); /* exponent field 0: zero or subnormal */
    return b;
}

static void fp8_wide_case_run(int rows, int cols, int bc, uint64_t seed)
{
    uint64_t s = seed;
    int nbr = (rows + 127) / 128, nbc = (cols + bc - 1) / bc;
    uint8_t *data = malloc((size_t)rows * (size_t)cols);
    float *sc = malloc((size_t)nbr * (size_t)nbc * sizeof(float));
    const float odd_scales[] = {0x1p7f, 0x1p20f, 1e-38f, 0x1.fffffep6f};
    for (int i = 0; i < nbr * nbc; i++)
        sc[i] = i % 7 == 3 ? odd_scales[(i / 7) % 4] : ldexpf(1.0f + rng_float(&s), -(int)(rng_next(&s) % 17));
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            data[(size_t)r * cols + c] = random_fp8_normal(&s);
        if (r % 5 == 1) /* one zero or subnormal somewhere in the row */
            data[(size_t)r * cols + (int)(rng_next(&s) % (uint64_t)cols)] =
                (uint8_t)(rng_next(&s) % 8 | (r % 2 ? 0x80 : 0));
        if (r % 11 == 4) /* a NaN code: the row's outputs are NaN */
            data[(size_t)r * cols + (int)(rng_next(&s) % (uint64_t)cols)] = r % 2 ? 0xFF : 0x7F;
    }
    struct mtp_weight w = {.dtype = MTP_DTYPE_F8_E4M3, .rows = rows, .cols = cols, .data = data,
                           .scale_inv = sc, .block_rows = 128, .block_cols = bc, .name = "w"};
    const int nmax = 6, xs = cols + 3, ys = rows + 1;
    float *x = wide_floats((size_t)nmax * xs, &s);
    float *ref = calloc((size_t)nmax * ys, sizeof(float));
    float *y = calloc((size_t)nmax * ys, sizeof(float));
    mtp_cpu_matmul_canonical(&w, x, xs, nmax, ref, ys);
    for (int th = 1; th <= 3; th++) {
        struct mtp_backend *be = backend_threads(th);
        for (int n = 1; n <= nmax; n++) {
            be->iface->matmul(be->ctx, &w, x, xs, n, y, ys);
            for (int t = 0; t < n; t++)
                for (int r = 0; r < rows; r++)
                    if (memcmp(&y[(size_t)t * ys + r], &ref[(size_t)t * ys + r], sizeof(float))) {
                        print_message("FP8 [%d, %d] block %d, n %d, %d threads: token %d row %d: "
                                      "%a, canonical %a\n",
                                      rows, cols, bc, n, th, t, r, (double)y[(size_t)t * ys + r],
                                      (double)ref[(size_t)t * ys + r]);
                        fail();
                    }
        }
        mtp_backend_free(be);
    }
    free(data);
    free(sc);
    free(x);
    free(ref);
    free(y);
}

static void test_matmul_fp8_wide_bitwise(void **state)
{
    (void)state;
    /* Widths: one block, many blocks (DeepSeek-V3's 7168), a partial last block, chunks and a
     * tail past the last 32-column group; 32- and 64-wide blocks too. */
    const int cases[][3] = {{50, 128, 128}, {30, 7168, 128}, {27, 1000, 128},
                            {26, 1061, 128}, {49, 320, 32}, {25, 200, 64}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        fp8_wide_case_run(cases[i][0], cases[i][1], cases[i][2], 4242 + i);
}

/* mtp_cpu_dot_rows (attention's scores and W_UV) is the canonical dot too. */
static void test_dot_rows_bitwise(void **state)
{
    (void)state;
    uint64_t s = 99;
    for (size_t i = 0; i < sizeof canonical_shapes / sizeof canonical_shapes[0]; i++) {
        int m = canonical_shapes[i][0], cols = canonical_shapes[i][1], n = 11;
        size_t ws = (size_t)cols + 9;
        float *w = wide_floats((size_t)m * ws, &s), *x = wide_floats((size_t)n * (cols + 2), &s);
        float *y = calloc((size_t)n * m, sizeof(float));
        mtp_cpu_dot_rows(w, ws, m, cols, x, cols + 2, n, y, m);
        for (int t = 0; t < n; t++)
            for (int r = 0; r < m; r++) {
                float ref = mtp_cpu_dot_f32(w + (size_t)r * ws, x + (size_t)t * (cols + 2), cols);
                assert_memory_equal(&y[(size_t)t * m + r], &ref, sizeof ref);
            }
        free(w);
        free(x);
        free(y);
    }
}

/* mtp_cpu_axpy_rows (attention's q~ and o~) is the axpy chain on a zeroed row,
 * bitwise, for every column remainder and causal (non-decreasing) lengths. */
static void test_axpy_rows_bitwise(void **state)
{
    (void)state;
    uint64_t s = 17;
    const int col_cases[] = {1, 7, 16, 33, 48, 64, 70, 130};
    for (size_t ci = 0; ci < sizeof col_cases / sizeof col_cases[0]; ci++) {
        const int cols = col_cases[ci], n = 13, keys = 48; /* len[t] <= 44 < keys */
        size_t rs = (size_t)cols + 3, cs = keys + 1, os = (size_t)cols + 5;
        float *rows = wide_floats((size_t)keys * rs, &s), *coef = wide_floats((size_t)n * cs, &s);
        float *out = calloc((size_t)n * os, sizeof(float)), *ref = malloc((size_t)cols * sizeof(float));
        int len[13];
        for (int t = 0; t < n; t++)
            len[t] = t == 0 ? 0 : 20 + 2 * t; /* one empty row, then a causal staircase */
        mtp_cpu_axpy_rows(rows, rs, coef, cs, len, n, cols, out, os);
        for (int t = 0; t < n; t++) {
            memset(ref, 0, (size_t)cols * sizeof(float));
            for (int k = 0; k < len[t]; k++)
                mtp_cpu_axpy_f32(ref, coef[(size_t)t * cs + k], rows + (size_t)k * rs, cols);
            assert_memory_equal(out + (size_t)t * os, ref, (size_t)cols * sizeof(float));
        }
        free(rows);
        free(coef);
        free(out);
        free(ref);
    }
}

/* The prefill SwiGLU activation (vectorised exp) against the libm formula:
 * within 8 FLT_EPSILON relative (exp16's series truncation is ~1 ulp, the
 * range reduction and scaling ~1 ulp each), over [-100, 100] and at the
 * overflow/underflow edges, where both must give the same 0 / -0 / x limits. */
static void test_silu_prefill_accuracy(void **state)
{
    (void)state;
    enum { N = 4099 };
    float *g = malloc(N * sizeof(float)), *u = malloc(N * sizeof(float));
    float *ref = malloc(N * sizeof(float));
    uint64_t s = 3;
    for (int i = 0; i < N; i++) {
        g[i] = i < N - 8 ? 100.0f * rng_float(&s) : (float[]){0.0f, -0.0f, 88.0f, -88.0f,
                                                              95.0f, -95.0f, 104.5f, -104.5f}[i - (N - 8)];
        u[i] = rng_float(&s);
        ref[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
    mtp_cpu_silu_mul_prefill(g, u, N);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        double err = fabs((double)g[i] - (double)ref[i]);
        double bound = 8.0 * FLT_EPSILON * fabs((double)ref[i]) + 1e-37;
        worst = fmax(worst, err / bound);
    }
    print_message("silu prefill: worst error / bound = %.3g\n", worst);
    assert_true(worst <= 1.0);
    free(g);
    free(u);
    free(ref);
}

/* The prefill softmax against a double-precision softmax: each probability
 * within 16 FLT_EPSILON relative plus 1e-9 absolute (exp16 ~2 ulp, the
 * rounded max and the float sum of up to LEN terms ~LEN/16 ulp spread over
 * 16 lanes), for lengths with and without a 16-lane remainder. */
static void test_softmax_prefill_accuracy(void **state)
{
    (void)state;
    uint64_t s = 11;
    const int lens[] = {1, 7, 16, 33, 200};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int len = lens[li];
        float *v = malloc((size_t)len * sizeof(float)), *pe = malloc((size_t)len * sizeof(float));
        double *ref = malloc((size_t)len * sizeof(double)), mx = -INFINITY, sum = 0.0;
        const float scale = 0.125f;
        for (int k = 0; k < len; k++) {
            v[k] = 40.0f * rng_float(&s);
            pe[k] = 10.0f * rng_float(&s);
            ref[k] = ((double)v[k] + (double)pe[k]) * scale;
            mx = fmax(mx, ref[k]);
        }
        for (int k = 0; k < len; k++)
            sum += (ref[k] = exp(ref[k] - mx));
        mtp_cpu_softmax_prefill(v, pe, len, scale);
        for (int k = 0; k < len; k++)
            assert_true(fabs(v[k] - ref[k] / sum) <= 16 * FLT_EPSILON * ref[k] / sum + 1e-9);
        free(v);
        free(pe);
        free(ref);
    }
}

/*
 * The prefill GEMM (set_prefill, n > MTP_CPU_INVARIANT_MAX_N) against the
 * invariant kernel. Tolerance: each GEMM output is one fused chain of cols
 * multiply-adds, error <= cols * u * sum |w x| (u = FLT_EPSILON / 2, the
 * classic bound for recursive summation, one rounding per fused step); the
 * canonical result is within (cols/32 + 13) u of it (test_cpu_ops header).
 * So |gemm - canonical| <= (cols + cols/32 + 14) * u * sum |w x|. A wrong
 * panel (row, column or scale) is off by orders of magnitude. Also: the
 * flag is honoured only for n > MTP_CPU_INVARIANT_MAX_N (below, bitwise the
 * invariant kernel), and it switches off again.
 */
static void gemm_case_run(enum mtp_dtype dt, int rows, int cols, int n, uint64_t seed)
{
    uint64_t s = seed;
    struct test_weight tw;
    test_weight_init(&tw, dt, rows, cols, 16, 48, &s);
    const int xs = cols + 1, ys = rows + 7;
    float *x = random_floats((size_t)n * xs, &s);
    float *ref = calloc((size_t)n * ys, sizeof(float));
    float *y = calloc((size_t)n * ys, sizeof(float));
    struct mtp_backend *be = backend_threads(2);
    be->iface->matmul(be->ctx, &tw.w, x, xs, n, ref, ys);
    be->iface->set_prefill(be->ctx, 1);
    be->iface->matmul(be->ctx, &tw.w, x, xs, n, y, ys);
    be->iface->set_prefill(be->ctx, 0);
    double worst = 0.0;
    int differs = 0;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double mag = 0.0;
            for (int c = 0; c < cols; c++)
                mag += fabs(tw.real[(size_t)r * cols + c] * (double)x[(size_t)t * xs + c]);
            double bound = (cols + cols / 32.0 + 14.0) * (FLT_EPSILON / 2) * mag + 1e-30;
            double g = y[(size_t)t * ys + r], c0 = ref[(size_t)t * ys + r];
            worst = fmax(worst, fabs(g - c0) / bound);
            differs |= g != c0;
        }
    print_message("gemm %s [%d, %d] n %d: worst |gemm - canonical| / bound = %.3g%s\n",
                  mtp_dtype_name(dt), rows, cols, n, worst, differs ? "" : " (bitwise equal)");
    assert_true(worst <= 1.0);
    /* Padding columns of y (rows..ys) are never written. */
    for (int t = 0; t < n; t++)
        for (int r = rows; r < ys; r++)
            assert_true(y[(size_t)t * ys + r] == 0.0f);
    mtp_backend_free(be);
    free(x);
    free(ref);
    free(y);
    test_weight_free(&tw);
}

static void test_matmul_prefill_gemm(void **state)
{
    (void)state;
    const enum mtp_dtype dts[] = {MTP_DTYPE_F32, MTP_DTYPE_BF16, MTP_DTYPE_F16,
                                  MTP_DTYPE_F8_E4M3};
    const int shapes[][3] = {{70, 200, 17}, {37, 611, 40}, {5, 7, 128}, {192, 192, 33},
                             {33, 90, 25}};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            gemm_case_run(dts[d], shapes[i][0], shapes[i][1], shapes[i][2], 900 + 7 * d + i);

    /* n <= MTP_CPU_INVARIANT_MAX_N under the flag, and n > it after the flag: the invariant kernel. */
    uint64_t s = 5;
    struct test_weight tw;
    test_weight_init(&tw, MTP_DTYPE_BF16, 40, 136, 16, 48, &s);
    float *x = wide_floats((size_t)24 * 136, &s);
    float *ref = calloc((size_t)24 * 40, sizeof(float)), *y = calloc((size_t)24 * 40, sizeof(float));
    mtp_cpu_matmul_canonical(&tw.w, x, 136, 24, ref, 40);
    struct mtp_backend *be = backend_threads(1);
    be->iface->set_prefill(be->ctx, 1);
    be->iface->matmul(be->ctx, &tw.w, x, 136, 16, y, 40);
    assert_memory_equal(y, ref, (size_t)16 * 40 * sizeof(float));
    be->iface->set_prefill(be->ctx, 0);
    be->iface->matmul(be->ctx, &tw.w, x, 136, 24, y, 40);
    assert_memory_equal(y, ref, (size_t)24 * 40 * sizeof(float));
    mtp_backend_free(be);
    free(x);
    free(ref);
    free(y);
    test_weight_free(&tw);
}

/* Every E4M3 byte (NaN codes included), in runs of every alignment, decodes to
 * table value times the block scale, bitwise: the vectorised decoder must be
 * the table. */
static void test_fp8_decode_all_bytes(void **state)
{
    (void)state;
    enum { COLS = 256 + 37 };
    uint8_t data[COLS];
    for (int c = 0; c < COLS; c++)
        data[c] = (uint8_t)(c * 7 + 3);
    float scale[2] = {0.3f, 1.0f / 448.0f};
    struct mtp_weight w = {.dtype = MTP_DTYPE_F8_E4M3, .rows = 1, .cols = COLS, .data = data,
                           .scale_inv = scale, .block_rows = 1, .block_cols = 160, .name = "w"};
    float out[COLS];
    for (int c0 = 0; c0 < 48; c0 += 5) {
        mtp_cpu_row_decode(&w, 0, c0, COLS, out);
        for (int c = c0; c < COLS; c++) {
            float want = mtp_fp8_e4m3_table[data[c]] * scale[c / 160];
            assert_memory_equal(&out[c - c0], &want, sizeof want);
        }
    }
}

/* A hand-checkable FP8 product: the scale of each block must be applied. */
static void test_matmul_fp8_hand(void **state)
{
    (void)state;
    /* W 2x3, blocks 1x2: 0x38 = 1.0, 0x40 = 2.0, 0xB8 = -1.0 in e4m3. */
    uint8_t data[6] = {0x38, 0x40, 0x38, 0xB8, 0x38, 0x40};
    float scale[4] = {2.0f, 10.0f, 0.5f, 100.0f}; /* [2 row blocks, 2 col blocks] */
    struct mtp_weight w = {.dtype = MTP_DTYPE_F8_E4M3, .rows = 2, .cols = 3, .data = data,
                           .scale_inv = scale, .block_rows = 1, .block_cols = 2, .name = "w"};
    float x[3] = {1.0f, 1.0f, 1.0f}, y[2];
    struct mtp_backend *be = backend_threads(1);
    be->iface->matmul(be->ctx, &w, x, 3, 1, y, 2);
    assert_true(y[0] == 1.0f * 2 + 2.0f * 2 + 1.0f * 10);    /* 16 */
    assert_true(y[1] == -1.0f * 0.5f + 1.0f * 0.5f + 2.0f * 100); /* 200 */
    mtp_backend_free(be);
}

/* ------------------------------------------------------------ rmsnorm */

static void test_rmsnorm_hand(void **state)
{
    (void)state;
    float wv[4] = {1.0f, 1.0f, 2.0f, 0.5f};
    struct mtp_weight w = {.dtype = MTP_DTYPE_F32, .rows = 1, .cols = 4, .data = wv, .name = "n"};
    /* Two tokens, stride 5; token 1 = 2 * token 0 gives the same normalised values. */
    float x[10] = {1, 2, 3, 4, 99, 2, 4, 6, 8, 99};
    float y[10] = {0};
    struct mtp_backend *be = backend_threads(1);
    be->iface->rmsnorm(be->ctx, x, 5, &w, 2, 4, 0.0f, y, 5);
    /* mean(x^2) = 30/4 = 7.5; 1/sqrt(7.5) = 0.365148372 */
    const double want[4] = {0.365148372, 0.730296743, 2.190890230, 0.730296743};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 4; i++)
            assert_float_equal(y[t * 5 + i], want[i], 1e-6);
    assert_true(y[4] == 0.0f); /* untouched padding */

    /* eps matters: x = [1e-3, 0, 0, 0], eps = 1e-6 -> 1e-3 / sqrt(2.5e-7 + 1e-6). */
    float xe[4] = {1e-3f, 0, 0, 0}, ye[4];
    be->iface->rmsnorm(be->ctx, xe, 4, &w, 1, 4, 1e-6f, ye, 4);
    assert_float_equal(ye[0], 1e-3 / sqrt(1.25e-6), 1e-5);

    /* In place (y aliases x). */
    be->iface->rmsnorm(be->ctx, x, 5, &w, 2, 4, 0.0f, x, 5);
    assert_memory_equal(x, y, 4 * sizeof(float));
    assert_memory_equal(x + 5, y + 5, 4 * sizeof(float));
    mtp_backend_free(be);
}

/* ------------------------------------------------------------ rope */

static void test_rope_hand(void **state)
{
    (void)state;
    struct mtp_rope rope = {.dim = 4, .cos_sin_scale = 1.0f};
    rope.inv_freq[0] = 1.0f;
    rope.inv_freq[1] = 0.5f;
    /* 2 tokens, 2 heads of stride 6, rope part at offset 2; x_stride 12. */
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = 100.0f + (float)i; /* sentinel values outside the rope parts */
    for (int t = 0; t < 2; t++)
        for (int h = 0; h < 2; h++) {
            float *v = x + t * 12 + h * 6 + 2;
            v[0] = 1, v[1] = 0, v[2] = 0, v[3] = 1;
        }
    struct mtp_backend *be = backend_threads(1);
    be->iface->rope(be->ctx, x, 12, 2, 2, 6, 2, 2, &rope);
    /* t = 0, pos 2: (1,0) by 2 rad -> (cos 2, sin 2); (0,1) by 1 rad -> (-sin 1, cos 1). */
    /* t = 1, pos 3: (1,0) by 3 rad; (0,1) by 1.5 rad. */
    const double want[2][4] = {{-0.416146837, 0.909297427, -0.841470985, 0.540302306},
                               {-0.989992497, 0.141120008, -0.997494987, 0.070737202}};
    for (int t = 0; t < 2; t++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 4; i++)
                assert_float_equal(x[t * 12 + h * 6 + 2 + i], want[t][i], 1e-6);
    for (int t = 0; t < 2; t++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 2; i++) /* elements before each rope part are untouched */
                assert_true(x[t * 12 + h * 6 + i] == 100.0f + (float)(t * 12 + h * 6 + i));

    /* cos_sin_scale multiplies both. */
    float v[2] = {1, 0};
    rope.dim = 2;
    rope.cos_sin_scale = 2.0f;
    be->iface->rope(be->ctx, v, 2, 1, 1, 2, 0, 2, &rope);
    assert_float_equal(v[0], 2 * -0.416146837, 2e-6);
    assert_float_equal(v[1], 2 * 0.909297427, 2e-6);
    mtp_backend_free(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_create_by_name),
        cmocka_unit_test(test_memory_ops),
        cmocka_unit_test(test_prepare_weight_validates),
        cmocka_unit_test(test_embed_bf16),
        cmocka_unit_test(test_matmul_f32),
        cmocka_unit_test(test_matmul_bf16),
        cmocka_unit_test(test_matmul_f16),
        cmocka_unit_test(test_matmul_fp8_blocks),
        cmocka_unit_test(test_matmul_fp8_hand),
        cmocka_unit_test(test_fp8_decode_all_bytes),
        cmocka_unit_test(test_matmul_canonical_bitwise),
        cmocka_unit_test(test_matmul_fp8_wide_bitwise),
        cmocka_unit_test(test_dot_rows_bitwise),
        cmocka_unit_test(test_axpy_rows_bitwise),
        cmocka_unit_test(test_silu_prefill_accuracy),
        cmocka_unit_test(test_softmax_prefill_accuracy),
        cmocka_unit_test(test_matmul_prefill_gemm),
        cmocka_unit_test(test_rmsnorm_hand),
        cmocka_unit_test(test_rope_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
