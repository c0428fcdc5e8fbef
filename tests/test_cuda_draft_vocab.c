/*
 * test_cuda_draft_vocab.c - the row gather that builds a draft vocabulary's
 * subset head (engine/draft_vocab.h mtp_weight_gather_rows): for F32, BF16,
 * F16 and FP8 weights (128 x 128 block scales, partial last blocks, rows
 * taken out of order from every row block) the subset weight's matmul gives
 * bitwise the corresponding rows of the full weight's matmul, on the CPU
 * backend and on CUDA. Without a usable GPU the CUDA test is skipped with the
 * reason and, once the CPU test has passed, the program exits 77 so ctest
 * reports "Skipped" (as test_cuda_ops.c). Named test_cuda_* so that
 * scripts/gpu-check.sh (ctest -R cuda) runs it.
 *
 *   ctest --test-dir build -R cuda_draft_vocab
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/draft_vocab.h"
#include "core/error.h"
#include "kernels/backend.h"

/* ---- the row gather, bitwise against the full head ---------------------- */

enum { G_ROWS = 300, G_COLS = 200, G_TOK = 3, G_N = 9 };

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* A random weight [G_ROWS, G_COLS] of dtype T (finite values); FP8 with
 * 128 x 128 block scales, the last row and column blocks partial. */
static void random_weight(enum mtp_dtype t, uint32_t seed, struct mtp_weight *w)
{
    size_t count = (size_t)G_ROWS * G_COLS;
    *w = (struct mtp_weight){.dtype = t, .rows = G_ROWS, .cols = G_COLS, .name = "test.head"};
    if (t == MTP_DTYPE_F32) {
        float *f = malloc(count * sizeof *f);
        for (size_t i = 0; i < count; i++)
            f[i] = (float)((int)(lcg(&seed) % 2001) - 1000) / 997.0f;
        w->data = f;
    } else if (t == MTP_DTYPE_BF16 || t == MTP_DTYPE_F16) {
        uint16_t *h = malloc(count * sizeof *h);
        for (size_t i = 0; i < count; i++) {
            uint32_t r = lcg(&seed);
            /* sign, a small exponent range, any mantissa: finite, varied */
            h[i] = t == MTP_DTYPE_BF16
                       ? (uint16_t)((r & 0x8000) | ((120 + r % 12) << 7) | ((r >> 4) & 0x7F))
                       : (uint16_t)((r & 0x8000) | ((10 + r % 8) << 10) | ((r >> 4) & 0x3FF));
        }
        w->data = h;
    } else {
        uint8_t *b = malloc(count);
        for (size_t i = 0; i < count; i++) {
            uint8_t v = (uint8_t)lcg(&seed);
            b[i] = (v & 0x7F) == 0x7F ? (uint8_t)(v - 1) : v; /* no NaN encodings */
        }
        w->data = b;
        w->block_rows = w->block_cols = 128;
        int nrb = (G_ROWS + 127) / 128, ncb = (G_COLS + 127) / 128;
        float *s = malloc((size_t)nrb * ncb * sizeof *s);
        for (int i = 0; i < nrb * ncb; i++)
            s[i] = 0.001f * (float)(1 + i * 7 % 13);
        w->scale_inv = s;
    }
}

/* Y [G_TOK, rows of W] = W X on BACKEND (through the vtable, so the same
 * code runs on CPU and CUDA). */
static void backend_matmul(struct mtp_backend *be, struct mtp_weight *w, const float *x, float *y)
{
    const struct mtp_backend_i *b = be->iface;
    if (b->prepare_weight(be->ctx, w))
        fail_msg("%s", mtp_error_message());
    size_t xb = (size_t)G_TOK * G_COLS * sizeof(float), yb = (size_t)G_TOK * w->rows * sizeof(float);
    float *dx = b->alloc(be->ctx, xb), *dy = b->alloc(be->ctx, yb);
    b->upload(be->ctx, dx, x, xb);
    b->matmul(be->ctx, w, dx, G_COLS, G_TOK, dy, w->rows);
    b->download(be->ctx, y, dy, yb);
    b->release(be->ctx, dx);
    b->release(be->ctx, dy);
}

static void gather_case(struct mtp_backend *be, enum mtp_dtype t)
{
    /* Rows from every row block, the partial last one included, out of order. */
    const int32_t ids[G_N] = {299, 0, 128, 5, 256, 127, 200, 1, 298};
    struct mtp_weight full, sub;
    random_weight(t, 1234u + (uint32_t)t, &full);
    mtp_weight_gather_rows(&full, ids, G_N, "test.head[subset]", &sub);
    assert_int_equal(sub.rows, G_N);
    assert_int_equal(sub.cols, G_COLS);
    float x[G_TOK * G_COLS], yf[G_TOK * G_ROWS], ys[G_TOK * G_N];
    uint32_t seed = 99;
    for (int i = 0; i < G_TOK * G_COLS; i++)
        x[i] = (float)((int)(lcg(&seed) % 401) - 200) / 101.0f;
    backend_matmul(be, &full, x, yf);
    backend_matmul(be, &sub, x, ys);
    for (int tk = 0; tk < G_TOK; tk++)
        for (int i = 0; i < G_N; i++) {
            float a = yf[tk * G_ROWS + ids[i]], b = ys[tk * G_N + i];
            if (memcmp(&a, &b, sizeof a) != 0)
                fail_msg("%s %s: token %d subset row %d (id %d): %.9g vs full %.9g",
                         be->iface->name, mtp_dtype_name(t), tk, i, ids[i], b, a);
        }
    mtp_weight_gathered_free(&sub);
    free((void *)full.data);
    free((void *)full.scale_inv);
}

static const enum mtp_dtype gather_dtypes[] = {MTP_DTYPE_F32, MTP_DTYPE_BF16, MTP_DTYPE_F16,
                                               MTP_DTYPE_F8_E4M3};

static void test_gather_rows_bitwise_cpu(void **state)
{
    (void)state;
    struct mtp_backend *be;
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    for (size_t i = 0; i < sizeof gather_dtypes / sizeof *gather_dtypes; i++)
        gather_case(be, gather_dtypes[i]);
    mtp_backend_free(be);
}

static bool g_no_gpu;

static void test_gather_rows_bitwise_cuda(void **state)
{
    (void)state;
    struct mtp_backend *be;
    if (mtp_backend_cuda_create(0, &be)) {
        g_no_gpu = true;
        print_message("no CUDA backend here (%s): the CUDA gather is not checked\n",
                      mtp_error_message());
        skip();
    }
    for (size_t i = 0; i < sizeof gather_dtypes / sizeof *gather_dtypes; i++)
        gather_case(be, gather_dtypes[i]);
    mtp_backend_free(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_rows_bitwise_cpu),
        cmocka_unit_test(test_gather_rows_bitwise_cuda),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && g_no_gpu) {
        printf("test_cuda_draft_vocab: CUDA gather skipped; exit 77 so ctest reports Skipped\n");
        return 77;
    }
    return failed;
}
