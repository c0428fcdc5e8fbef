/*
 * test_cpu_router.c - CPU MoE routing (docs/model.md §5) on hand-built scores.
 *
 * The router weight is the E x E identity in F32, so the router logits equal
 * x exactly and each test writes the logits (hence the scores) it needs.
 * Covered: group limit changing the choice (noaux_tc top-2-sum), masked groups
 * (-inf, never chosen even when every kept score is negative), exact ties
 * (lower expert id, lower group id), bias that changes selection but not the
 * weights, renormalisation and routed scaling, softmax greedy and
 * group_limited_greedy (group max, not top-2 sum), and batch/thread invariance.
 * Expected weights are computed in double; tolerance 1e-6 relative (fp32
 * sigmoid/softmax of O(1) logits is accurate to a few ulps).
 *
 * Build and run: cmake --build build --target test_cpu_router && ./build/test_cpu_router
 */
#include <math.h>   /* defines: exp, log, fabs */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* defines: int32_t, uint64_t */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: memset */

#include <cmocka.h>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/backend.h"

enum { MAX_E = 16, MAX_K = 8 };

struct router_fixture {
    float eye[MAX_E * MAX_E];
    float bias[MAX_E];
    struct mtp_moe moe;
    struct mtp_backend *be;
};

/* Identity router for E experts; BIAS may be NULL (no e_score_correction_bias). */
static void fixture_init(struct router_fixture *f, int E, const float *bias)
{
    memset(f, 0, sizeof *f);
    for (int e = 0; e < E; e++)
        f->eye[e * E + e] = 1.0f;
    f->moe.router = (struct mtp_weight){.dtype = MTP_DTYPE_F32, .rows = E, .cols = E,
                                        .data = f->eye, .name = "gate"};
    if (bias) {
        memcpy(f->bias, bias, (size_t)E * sizeof(float));
        f->moe.score_bias = (struct mtp_weight){.dtype = MTP_DTYPE_F32, .rows = 1, .cols = E,
                                                .data = f->bias, .name = "bias"};
    }
    assert_int_equal(mtp_backend_cpu_create(1, &f->be), MTP_OK);
}

static void route1(struct router_fixture *f, const struct mtp_route_params *p, const float *logits,
                   int32_t *idx, float *w)
{
    f->be->iface->route(f->be->ctx, &f->moe, p, logits, 1, idx, w);
}

static float logit_of(double s) { return (float)log(s / (1.0 - s)); }
static double sigmoid_d(float l) { return 1.0 / (1.0 + exp(-(double)l)); }

static void assert_idx(const int32_t *idx, const int *want, int k)
{
    for (int j = 0; j < k; j++) {
        if (idx[j] != want[j])
            print_message("slot %d: got expert %d, want %d\n", j, idx[j], want[j]);
        assert_int_equal(idx[j], want[j]);
    }
}

static void assert_rel(float got, double want)
{
    assert_true(fabs((double)got - want) <= 1e-6 * fabs(want) + 1e-12);
}

static const struct mtp_route_params v3_params = {
    .scoring = MTP_SCORING_SIGMOID, .method = MTP_TOPK_NOAUX_TC, .n_experts = 8, .top_k = 2,
    .n_group = 4, .topk_group = 2, .norm_topk_prob = 1, .routed_scaling_factor = 2.5f};

/* Groups of 2: g0 {0.9, 0.1} sum 1.0, g1 {0.6, 0.6} 1.2, g2 {0.55, 0.55} 1.1, g3 {0.3, 0.3} 0.6. */
static void v3_logits(float *l)
{
    const double s[8] = {0.9, 0.1, 0.6, 0.6, 0.55, 0.55, 0.3, 0.3};
    for (int e = 0; e < 8; e++)
        l[e] = logit_of(s[e]);
}

static void test_noaux_group_limit_changes_choice(void **state)
{
    (void)state;
    struct router_fixture f;
    fixture_init(&f, 8, NULL);
    float l[8];
    v3_logits(l);
    int32_t idx[2];
    float w[2];
    /* Kept groups g1, g2 (top-2 sums 1.2, 1.1): expert 0 (best single score) is out. */
    route1(&f, &v3_params, l, idx, w);
    assert_idx(idx, (const int[]){2, 3}, 2);
    assert_true(w[0] == 1.25f && w[1] == 1.25f); /* equal scores, renormalised, x2.5 */

    /* No group limit: expert 0 first, then the 2/3 tie goes to 2. */
    struct mtp_route_params p = v3_params;
    p.n_group = 1;
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){0, 2}, 2);
    double s0 = sigmoid_d(l[0]), s2 = sigmoid_d(l[2]);
    assert_rel(w[0], 2.5 * s0 / (s0 + s2));
    assert_rel(w[1], 2.5 * s2 / (s0 + s2));
    mtp_backend_free(f.be);
}

static void test_noaux_masked_groups(void **state)
{
    (void)state;
    float l[8];
    v3_logits(l);
    int32_t idx[4];
    float w[4];
    struct mtp_route_params p = v3_params;
    p.top_k = 4;
    /* k = 4 takes exactly the experts of the two kept groups, in score order. */
    struct router_fixture f;
    fixture_init(&f, 8, NULL);
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){2, 3, 4, 5}, 4);
    mtp_backend_free(f.be);

    /* A bias of -1 makes every kept score negative: masking with 0.0 would pick
     * masked experts, masking with -inf (chosen here, docs/model.md §9) must not. */
    const float minus1[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    fixture_init(&f, 8, minus1);
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){2, 3, 4, 5}, 4);
    mtp_backend_free(f.be);
}

static void test_ties_lower_id_wins(void **state)
{
    (void)state;
    struct router_fixture f;
    fixture_init(&f, 8, NULL);
    float zero[8] = {0};
    int32_t idx[3];
    float w[3];
    struct mtp_route_params p = v3_params;
    p.top_k = 3;
    p.routed_scaling_factor = 1.0f;
    /* All scores 0.5: groups tie (g0, g1 kept), experts tie (lower ids first). */
    route1(&f, &p, zero, idx, w);
    assert_idx(idx, (const int[]){0, 1, 2}, 3);
    for (int j = 0; j < 3; j++)
        assert_rel(w[j], 1.0 / 3.0);

    /* Softmax greedy with a three-way tie at the top. */
    float l[8] = {0, 1, 1, 0.5f, 1, -2, 0, 0};
    p.scoring = MTP_SCORING_SOFTMAX;
    p.method = MTP_TOPK_GREEDY;
    p.norm_topk_prob = 0;
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){1, 2, 4}, 3);
    assert_true(w[0] == w[1] && w[1] == w[2]);
    mtp_backend_free(f.be);
}

static void test_bias_changes_selection_not_weights(void **state)
{
    (void)state;
    const float l[4] = {1.4f, 0.85f, 0.4f, 0.0f}; /* s ~ 0.80, 0.70, 0.60, 0.50 */
    const float bias[4] = {0, 0, 0.5f, 0};        /* biased: 0.80, 0.70, 1.10, 0.50 */
    struct mtp_route_params p = {.scoring = MTP_SCORING_SIGMOID, .method = MTP_TOPK_NOAUX_TC,
                                 .n_experts = 4, .top_k = 2, .n_group = 1, .topk_group = 1,
                                 .norm_topk_prob = 0, .routed_scaling_factor = 1.0f};
    int32_t idx[2];
    float w[2];
    struct router_fixture f;
    fixture_init(&f, 4, NULL);
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){0, 1}, 2);
    mtp_backend_free(f.be);

    fixture_init(&f, 4, bias);
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){2, 0}, 2); /* slots in biased order */
    assert_rel(w[0], sigmoid_d(l[2]));        /* unbiased sigmoid, not 1.10 */
    assert_rel(w[1], sigmoid_d(l[0]));

    /* Renormalisation and scaling: the two weights sum to routed_scaling_factor. */
    p.norm_topk_prob = 1;
    p.routed_scaling_factor = 2.5f;
    route1(&f, &p, l, idx, w);
    double s2 = sigmoid_d(l[2]), s0 = sigmoid_d(l[0]);
    assert_rel(w[0], 2.5 * s2 / (s0 + s2));
    assert_rel(w[1], 2.5 * s0 / (s0 + s2));
    assert_rel(w[0] + w[1], 2.5);
    mtp_backend_free(f.be);
}

static void softmax_d(const float *l, int n, double *s)
{
    double mx = l[0], sum = 0.0;
    for (int i = 1; i < n; i++)
        mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++)
        sum += s[i] = exp((double)l[i] - mx);
    for (int i = 0; i < n; i++)
        s[i] /= sum;
}

static void test_softmax_greedy(void **state)
{
    (void)state;
    const float l[6] = {1, 3, 2, 3, 0, -1};
    struct mtp_route_params p = {.scoring = MTP_SCORING_SOFTMAX, .method = MTP_TOPK_GREEDY,
                                 .n_experts = 6, .top_k = 3, .n_group = 1, .topk_group = 1,
                                 .norm_topk_prob = 0, .routed_scaling_factor = 16.0f};
    double s[6];
    softmax_d(l, 6, s);
    int32_t idx[3];
    float w[3];
    struct router_fixture f;
    fixture_init(&f, 6, NULL);
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){1, 3, 2}, 3);
    for (int j = 0; j < 3; j++)
        assert_rel(w[j], 16.0 * s[idx[j]]); /* softmax over all experts, no renormalisation */

    /* greedy ignores groups even when n_group > 1. */
    p.n_group = 3;
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){1, 3, 2}, 3);

    /* norm_topk_prob is followed for softmax too. */
    p.norm_topk_prob = 1;
    p.routed_scaling_factor = 1.0f;
    route1(&f, &p, l, idx, w);
    double sum = s[1] + s[3] + s[2];
    for (int j = 0; j < 3; j++)
        assert_rel(w[j], s[idx[j]] / sum);
    mtp_backend_free(f.be);
}

static void test_softmax_group_limited_greedy(void **state)
{
    (void)state;
    /* Groups of 2: g0 {5, 0} max 5, g1 {4.8, 4.8} max 4.8 (top-2 sum 9.6), g2 {4.9, -10} max 4.9.
     * Max keeps g0, g2 -> [0, 4, 1]; no limit -> [0, 4, 2]; top-2 sums would keep g1, g0. */
    const float l[6] = {5, 0, 4.8f, 4.8f, 4.9f, -10};
    struct mtp_route_params p = {.scoring = MTP_SCORING_SOFTMAX,
                                 .method = MTP_TOPK_GROUP_LIMITED_GREEDY, .n_experts = 6,
                                 .top_k = 3, .n_group = 3, .topk_group = 2, .norm_topk_prob = 0,
                                 .routed_scaling_factor = 16.0f};
    double s[6];
    softmax_d(l, 6, s);
    int32_t idx[3];
    float w[3];
    struct router_fixture f;
    fixture_init(&f, 6, NULL);
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){0, 4, 1}, 3);
    for (int j = 0; j < 3; j++)
        assert_rel(w[j], 16.0 * s[idx[j]]);

    p.n_group = 1; /* no group limit */
    route1(&f, &p, l, idx, w);
    assert_idx(idx, (const int[]){0, 4, 2}, 3);
    mtp_backend_free(f.be);
}

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

static void test_route_batch_and_thread_invariance(void **state)
{
    (void)state;
    enum { E = 16, D = 40, N = 5, K = 4 };
    uint64_t s = 99;
    uint16_t router[E * D];
    float bias[E], x[N * D];
    for (int i = 0; i < E * D; i++)
        router[i] = mtp_f32_to_bf16(rng_float(&s));
    for (int e = 0; e < E; e++)
        bias[e] = 0.1f * rng_float(&s);
    for (int i = 0; i < N * D; i++)
        x[i] = rng_float(&s);
    struct mtp_moe moe = {
        .router = {.dtype = MTP_DTYPE_BF16, .rows = E, .cols = D, .data = router, .name = "gate"},
        .score_bias = {.dtype = MTP_DTYPE_F32, .rows = 1, .cols = E, .data = bias, .name = "b"},
    };
    struct mtp_route_params p = v3_params;
    p.n_experts = E;
    p.top_k = K;
    struct mtp_backend *be1 = NULL, *be2 = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be1), MTP_OK);
    assert_int_equal(mtp_backend_cpu_create(2, &be2), MTP_OK);
    int32_t idx[N * K], idx2[N * K];
    float w[N * K], w2[N * K];
    be1->iface->route(be1->ctx, &moe, &p, x, N, idx, w);
    be2->iface->route(be2->ctx, &moe, &p, x, N, idx2, w2);
    assert_memory_equal(idx, idx2, sizeof idx);
    assert_memory_equal(w, w2, sizeof w);
    for (int t = 0; t < N; t++) {
        be2->iface->route(be2->ctx, &moe, &p, x + t * D, 1, idx2, w2);
        assert_memory_equal(idx2, idx + t * K, K * sizeof(int32_t));
        assert_memory_equal(w2, w + t * K, K * sizeof(float));
        float sum = 0.0f;
        for (int j = 0; j < K; j++) {
            assert_true(idx[t * K + j] >= 0 && idx[t * K + j] < E);
            sum += w[t * K + j];
        }
        assert_float_equal(sum, 2.5f, 1e-5);
    }
    mtp_backend_free(be1);
    mtp_backend_free(be2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noaux_group_limit_changes_choice),
        cmocka_unit_test(test_noaux_masked_groups),
        cmocka_unit_test(test_ties_lower_id_wins),
        cmocka_unit_test(test_bias_changes_selection_not_weights),
        cmocka_unit_test(test_softmax_greedy),
        cmocka_unit_test(test_softmax_group_limited_greedy),
        cmocka_unit_test(test_route_batch_and_thread_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
