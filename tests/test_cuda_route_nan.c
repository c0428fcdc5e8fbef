/*
 * test_cuda_route_nan.c - the CUDA router with NaN selection scores chooses
 * exactly what the CPU router chooses (issue 22): every score NaN (NaN
 * activations: the CPU keeps experts 0..k-1), one expert's score NaN (a NaN
 * router row: the CPU's insertion order decides), and a softmax over all -inf
 * logits, under each routing method (noaux_tc with groups and bias, greedy,
 * group_limited_greedy) and with one group. Before the fix the block argmax
 * found no candidate and wrote taken[0x7fffffff] far outside shared memory.
 * The weights must be NaN exactly where the CPU's are (the engine names the
 * non-finite stage from them).
 *
 * Without a usable GPU (or the emulation build) the tests are skipped and the
 * program exits 77 (ctest: Skipped), as test_cuda_ops does.
 *   ctest --test-dir build -R cuda_route_nan
 */
#include <math.h>   /* defines: NAN, INFINITY, isnan */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/backend.h"
#include "support/cuda_pair.h"

static struct test_cuda_pair g_pair;
static struct mtp_backend *g_cpu, *g_cuda; /* g_pair's two sides */

static int setup(void **state)
{
    (void)state;
    if (test_cuda_pair_open(&g_pair, 1))
        return -1;
    g_cpu = g_pair.cpu;
    g_cuda = g_pair.cuda;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_cuda_pair_close(&g_pair);
    return 0;
}

enum { D = 16, N = 3 };

/* What is NaN or infinite in the case. */
enum nan_kind {
    NAN_ACTIVATIONS, /* x all NaN: every logit NaN */
    NAN_ONE_ROW,     /* router row 5 holds a NaN: one expert's score NaN */
    ALL_NEG_INF,     /* logits all -inf (softmax: exp(-inf - -inf) = NaN) */
};

/* Route N tokens on both backends and compare choices and NaN positions. */
static void route_case(const struct mtp_route_params *p, bool bias, enum nan_kind kind)
{
    const int E = p->n_experts, k = p->top_k;
    struct mtp_moe moe;
    memset(&moe, 0, sizeof moe);
    float *w = malloc((size_t)E * D * sizeof(float));
    uint32_t s = 12345;
    for (int i = 0; i < E * D; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    if (kind == NAN_ONE_ROW)
        w[5 * D + 3] = NAN;
    float *x = malloc((size_t)N * D * sizeof(float));
    for (int i = 0; i < N * D; i++)
        x[i] = kind == NAN_ACTIVATIONS ? NAN : 0.25f + 0.01f * (float)(i % 7);
    if (kind == ALL_NEG_INF) { /* w = -1 everywhere, x = +inf: every logit -inf */
        for (int i = 0; i < E * D; i++)
            w[i] = -1.0f;
        for (int i = 0; i < N * D; i++)
            x[i] = INFINITY;
    }
    moe.router = (struct mtp_weight){.dtype = MTP_DTYPE_F32, .rows = E, .cols = D, .data = w,
                                     .name = "test.router"};
    float *b = NULL;
    if (bias) {
        b = malloc((size_t)E * sizeof(float));
        for (int e = 0; e < E; e++)
            b[e] = 0.001f * (float)(e % 5);
        moe.score_bias = (struct mtp_weight){.dtype = MTP_DTYPE_F32, .rows = 1, .cols = E,
                                             .data = b, .name = "test.bias"};
    }
    const struct mtp_backend_i *cu = g_cuda->iface;
    assert_int_equal(cu->prepare_weight(g_cuda->ctx, &moe.router), MTP_OK);
    if (bias)
        assert_int_equal(cu->prepare_weight(g_cuda->ctx, &moe.score_bias), MTP_OK);

    int32_t idx_cpu[N * 64], idx_cu[N * 64];
    float w_cpu[N * 64], w_cu[N * 64];
    g_cpu->iface->route(g_cpu->ctx, &moe, p, x, N, idx_cpu, w_cpu);
    void *dx = cu->alloc(g_cuda->ctx, sizeof(float) * N * D);
    void *didx = cu->alloc(g_cuda->ctx, sizeof(int32_t) * N * k);
    void *dw = cu->alloc(g_cuda->ctx, sizeof(float) * N * k);
    cu->upload(g_cuda->ctx, dx, x, sizeof(float) * N * D);
    cu->route(g_cuda->ctx, &moe, p, dx, N, didx, dw);
    cu->download(g_cuda->ctx, idx_cu, didx, sizeof(int32_t) * N * k);
    cu->download(g_cuda->ctx, w_cu, dw, sizeof(float) * N * k);
    for (int i = 0; i < N * k; i++) {
        if (idx_cu[i] != idx_cpu[i])
            fail_msg("method %d n_group %d case %d: token %d slot %d: cuda expert %d, cpu %d",
                     p->method, p->n_group, kind, i / k, i % k, idx_cu[i], idx_cpu[i]);
        if (isnan(w_cu[i]) != isnan(w_cpu[i]))
            fail_msg("method %d case %d: token %d slot %d: cuda weight %g, cpu %g", p->method,
                     kind, i / k, i % k, w_cu[i], w_cpu[i]);
    }
    printf("[  INFO    ] method %d n_group %d case %d: token 0 experts", p->method, p->n_group,
           kind);
    for (int j = 0; j < k; j++)
        printf(" %d", idx_cu[j]);
    printf(" (as the cpu)\n");
    cu->release(g_cuda->ctx, dx);
    cu->release(g_cuda->ctx, didx);
    cu->release(g_cuda->ctx, dw);
    free(w);
    free(x);
    free(b);
}

static void route_all_cases(const struct mtp_route_params *p, bool bias)
{
    route_case(p, bias, NAN_ACTIVATIONS);
    route_case(p, bias, NAN_ONE_ROW);
    if (p->scoring == MTP_SCORING_SOFTMAX)
        route_case(p, bias, ALL_NEG_INF);
}

static void test_route_nan_every_method(void **state)
{
    (void)state;
    TEST_NEED_GPU(&g_pair);
    struct mtp_route_params v3 = {.scoring = MTP_SCORING_SIGMOID, .method = MTP_TOPK_NOAUX_TC,
                                  .n_experts = 32, .top_k = 6, .n_group = 4, .topk_group = 2,
                                  .norm_topk_prob = 1, .routed_scaling_factor = 2.5f};
    struct mtp_route_params greedy = {.scoring = MTP_SCORING_SOFTMAX, .method = MTP_TOPK_GREEDY,
                                      .n_experts = 40, .top_k = 6, .n_group = 1,
                                      .topk_group = 1, .routed_scaling_factor = 1.0f};
    struct mtp_route_params grouped = {.scoring = MTP_SCORING_SOFTMAX,
                                       .method = MTP_TOPK_GROUP_LIMITED_GREEDY, .n_experts = 48,
                                       .top_k = 6, .n_group = 8, .topk_group = 3,
                                       .routed_scaling_factor = 16.0f};
    route_all_cases(&v3, true);
    route_all_cases(&greedy, false);
    route_all_cases(&grouped, false);
    v3.n_group = 1; /* the crash of issue 22: one group, sigmoid */
    v3.topk_group = 1;
    route_all_cases(&v3, false);
    v3.n_experts = 300; /* more experts than threads in the CUDA block */
    v3.n_group = 6;
    v3.topk_group = 3;
    v3.top_k = 8;
    route_all_cases(&v3, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_route_nan_every_method)};
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (failed == 0 && !g_cuda) {
        printf("test_cuda_route_nan: skipped (%s); exit 77 so ctest reports Skipped\n", g_pair.why);
        return 77;
    }
    return failed;
}
