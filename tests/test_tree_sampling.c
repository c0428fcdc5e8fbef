/*
 * test_tree_sampling.c - lossless acceptance over sibling drafts
 * (engine/tree_accept.h, spec/decoding.md "Lossless acceptance over siblings"):
 *   - injected uniforms force each branch of mtp_tree_accept_node: accept at
 *     every sibling rank, reject all (residual draw);
 *   - chi-square over seeded trials: with k = 1..4 siblings drawn without
 *     replacement from q, the emitted token is distributed as p, on several
 *     (p, q) pairs, every branch hit;
 *   - the same test rejects the uncorrected residual (q instead of q_i), so
 *     it has the power to catch that bug;
 *   - a depth-2 tree (two nodes' acceptance composed as the decoder walks
 *     it, with the bonus draw after a full accept): the first two emitted
 *     tokens follow the target's joint p(y1) p(y2 | y1);
 *   - tree sampling decodes on a fixture model run, draw deterministically
 *     from the seed, and keep their records consistent;
 *   - end to end on a fixture model (T = 1, top-k 3, so the target's joint
 *     of the first three tokens has 27 cells, computed exactly from
 *     forwards; models/mtp-mini, whose modules agree with it): over 1000 seeds, tree decoding's first three tokens pass a
 *     chi-square test against it, for static and dynamic shapes, exact and
 *     chained drafting, with drafts accepted at lower sibling ranks too.
 *
 *   ctest --test-dir build -R tree_sampling
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"
#include "core/error.h"
#include "engine/rng.h"
#include "engine/sampling.h"
#include "engine/tree_accept.h"

enum { V = 5, TRIALS = 200000 };

/* Upper critical value of chi-square with DF degrees of freedom at about
 * 1e-6 (Wilson-Hilferty, z = 4.75): a correct sampler fails it with
 * probability 1e-6, and the trials are seeded, so the outcome is fixed. */
static double chi2_critical(int df)
{
    double a = 2.0 / (9.0 * df), z = 4.75;
    return df * pow(1 - a + z * sqrt(a), 3);
}

static double chi2(const long *count, const double *expect, int n, long trials, int *df)
{
    double x = 0;
    *df = -1;
    for (int i = 0; i < n; i++) {
        if (expect[i] <= 0) {
            assert_int_equal(count[i], 0); /* impossible tokens never come out */
            continue;
        }
        double e = expect[i] * (double)trials;
        x += ((double)count[i] - e) * ((double)count[i] - e) / e;
        (*df)++;
    }
    return x;
}

/* The uncorrected variant, for the power check: candidates still drawn
 * without replacement, but accepted and residualised against q itself. */
static int accept_uncorrected(const float *p, const float *q, const int32_t *c, int k,
                              const float *u, float *work, int32_t *final_token)
{
    float *r = work, *next = work + V;
    memcpy(r, p, V * sizeof(float));
    for (int i = 0; i < k; i++) {
        if (mtp_sampling_accept(r[c[i]], q[c[i]], u[i]))
            return i;
        if (mtp_sampling_residual(r, q, V, next))
            memcpy(r, next, V * sizeof(float));
    }
    *final_token = mtp_sampling_sample(r, V, u[k]);
    return -1;
}

/* TRIALS draws of one node with K siblings; emitted-token counts into COUNT
 * and how often each branch (rank 0..k-1, -1 = reject all -> slot k) ran. */
static void run_node(const float *p, const float *q, int k, bool corrected, uint64_t seed,
                     long *count, long *branch)
{
    struct mtp_rng rng;
    mtp_rng_seed(&rng, seed, 7);
    float work[3 * V], u[V + 1];
    memset(count, 0, V * sizeof(long));
    memset(branch, 0, (size_t)(k + 1) * sizeof(long));
    for (long t = 0; t < TRIALS; t++) {
        int32_t c[V], fin = -1;
        for (int i = 0; i < k; i++)
            u[i] = mtp_rng_uniform(&rng);
        int got = mtp_tree_draw_siblings(q, V, k, u, c, work);
        assert_int_equal(got, k);
        for (int i = 0; i <= k; i++)
            u[i] = mtp_rng_uniform(&rng);
        int a = corrected ? mtp_tree_accept_node(p, q, c, k, V, u, work, &fin)
                          : accept_uncorrected(p, q, c, k, u, work, &fin);
        count[a >= 0 ? c[a] : fin]++;
        branch[a >= 0 ? a : k]++;
    }
}

static const float p_a[V] = {0.1f, 0.3f, 0.3f, 0.2f, 0.1f};
static const float q_a[V] = {0.6f, 0.2f, 0.1f, 0.05f, 0.05f};
static const float p_b[V] = {0.5f, 0.0f, 0.25f, 0.25f, 0.0f};
static const float q_b[V] = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f};
static const float p_c[V] = {0.05f, 0.05f, 0.1f, 0.2f, 0.6f};
static const float q_c[V] = {0.3f, 0.25f, 0.2f, 0.15f, 0.1f};

static void test_forced_branches(void **state)
{
    (void)state;
    float work[3 * V];
    const int32_t c[3] = {0, 1, 2};
    int32_t fin = -1;
    /* u = 0 accepts any candidate with target mass. */
    float u0[4] = {0, 0, 0, 0.5f};
    assert_int_equal(mtp_tree_accept_node(p_a, q_a, c, 3, V, u0, work, &fin), 0);
    /* p(0)/q(0) = 1/6: u = 0.5 rejects candidate 0; r_2 = norm(max(p - q, 0)) =
     * (0, .2, .4, .3, .1) is scored against q_2 = q without token 0 = (0, .5, .25,
     * .125, .125): candidate 1 has r/q = .4, so u = 0.9 rejects it and u = 0.1
     * accepts; r_3 = (0, 0, .46, .54, 0) against q_3 = (0, 0, .5, .25, .25) gives
     * candidate 2 the ratio .92: u = 0 accepts, u = .99 rejects and the residual
     * max(r_3 - q_3, 0) leaves token 3 alone. */
    float u1[4] = {0.5f, 0.9f, 0.0f, 0.5f};
    assert_int_equal(mtp_tree_accept_node(p_a, q_a, c, 3, V, u1, work, &fin), 2);
    float u2[4] = {0.5f, 0.1f, 0.9f, 0.5f};
    assert_int_equal(mtp_tree_accept_node(p_a, q_a, c, 3, V, u2, work, &fin), 1);
    /* Reject all: the residual after removing 0, 1, 2 keeps only tokens 3 and 4. */
    float u3[4] = {0.99f, 0.99f, 0.99f, 0.0f};
    assert_int_equal(mtp_tree_accept_node(p_a, q_a, c, 3, V, u3, work, &fin), -1);
    assert_int_equal(fin, 3);
    /* Zero target mass is never accepted, whatever u. */
    const int32_t c1[1] = {1};
    assert_int_equal(mtp_tree_accept_node(p_b, q_b, c1, 1, V, u0, work, &fin), -1);
    assert_true(fin != 1 && fin != 4);
    /* Sibling draws are distinct, and stop when q's support runs out. */
    const float q_two[V] = {0, 0.5f, 0, 0.5f, 0};
    float ud[4] = {0.1f, 0.1f, 0.1f, 0.1f};
    int32_t s[4];
    assert_int_equal(mtp_tree_draw_siblings(q_two, V, 4, ud, s, work), 2);
    assert_true(s[0] != s[1]);
}

static void test_chi_square_nodes(void **state)
{
    (void)state;
    const float *ps[] = {p_a, p_b, p_c}, *qs[] = {q_a, q_b, q_c};
    long count[V], branch[V + 1];
    for (int pair = 0; pair < 3; pair++)
        for (int k = 1; k <= 4; k++) {
            run_node(ps[pair], qs[pair], k, true, 1000 + 10 * pair + k, count, branch);
            double expect[V];
            for (int i = 0; i < V; i++)
                expect[i] = ps[pair][i];
            int df;
            double x = chi2(count, expect, V, TRIALS, &df);
            if (x > chi2_critical(df))
                fail_msg("pair %d, k = %d: chi-square %.1f > %.1f (df %d)", pair, k, x,
                         chi2_critical(df), df);
            for (int b = 0; b <= k; b++) /* accept at each rank, and reject all */
                if (pair != 1 || b < 2) /* pair b: p has 3 tokens, so some ranks are rare */
                    assert_true(branch[b] > 0);
        }
}

static void test_uncorrected_residual_is_caught(void **state)
{
    (void)state;
    long count[V], branch[V + 1];
    double expect[V];
    for (int i = 0; i < V; i++)
        expect[i] = p_a[i];
    int df;
    run_node(p_a, q_a, 3, false, 77, count, branch);
    double x = chi2(count, expect, V, TRIALS, &df);
    if (x <= chi2_critical(df))
        fail_msg("the uncorrected residual passed (chi-square %.1f): the test has no power", x);
    run_node(p_a, q_a, 3, true, 77, count, branch);
    assert_true(chi2(count, expect, V, TRIALS, &df) <= chi2_critical(df));
}

/* Depth-2 tree: target p1, p2(.|y1); draft q1, q2(.|x1); K1 children of the
 * root, K2 children of each. The walk of decode_tree.c: accept among the
 * root's children; if child x was accepted, among x's children; the bonus
 * (a full accept) or residual token is the second token. */
static void test_chi_square_tree(void **state)
{
    (void)state;
    enum { K1 = 2, K2 = 2, N = TRIALS };
    float p2[V][V], q2[V][V];
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++) {
            p2[a][b] = (float)((a + 2 * b) % V + 1);
            q2[a][b] = (float)((3 * a + b) % V + 1);
        }
    for (int a = 0; a < V; a++) { /* normalise rows */
        float sp = 0, sq = 0;
        for (int b = 0; b < V; b++)
            sp += p2[a][b], sq += q2[a][b];
        for (int b = 0; b < V; b++)
            p2[a][b] /= sp, q2[a][b] /= sq;
    }
    struct mtp_rng rng;
    mtp_rng_seed(&rng, 4242, 1);
    long count[V * V] = {0}, full = 0, first_reject = 0, second_reject = 0;
    float work[3 * V], u[V + 1];
    for (long t = 0; t < N; t++) {
        int32_t c1[K1], c2[K2], y1, y2;
        for (int i = 0; i < K1; i++)
            u[i] = mtp_rng_uniform(&rng);
        mtp_tree_draw_siblings(q_a, V, K1, u, c1, work);
        for (int i = 0; i <= K1; i++)
            u[i] = mtp_rng_uniform(&rng);
        int a = mtp_tree_accept_node(p_a, q_a, c1, K1, V, u, work, &y1);
        if (a < 0) { /* the step ends; the next token comes from p2(.|y1) afresh */
            first_reject++;
            y2 = mtp_sampling_sample(p2[y1], V, mtp_rng_uniform(&rng));
        } else {
            y1 = c1[a];
            for (int i = 0; i < K2; i++)
                u[i] = mtp_rng_uniform(&rng);
            mtp_tree_draw_siblings(q2[y1], V, K2, u, c2, work);
            for (int i = 0; i <= K2; i++)
                u[i] = mtp_rng_uniform(&rng);
            int b = mtp_tree_accept_node(p2[y1], q2[y1], c2, K2, V, u, work, &y2);
            if (b >= 0) {
                y2 = c2[b];
                full++; /* a bonus token would follow */
            } else {
                second_reject++;
            }
        }
        count[y1 * V + y2]++;
    }
    double expect[V * V];
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++)
            expect[a * V + b] = (double)p_a[a] * p2[a][b];
    int df;
    double x = chi2(count, expect, V * V, N, &df);
    if (x > chi2_critical(df))
        fail_msg("tree joint: chi-square %.1f > %.1f (df %d)", x, chi2_critical(df), df);
    assert_true(full > 0 && first_reject > 0 && second_reject > 0);
}

/* Decoder level: seeded tree sampling runs are reproducible (also across
 * thread counts, 1 vs 2: docs/design.md §5 (d)) and their records consistent. */
static void test_decoder_sampling_runs(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/v3-f32", MTP_SOURCE_DIR);
    struct mtp_model *model;
    struct mtp_backend *be, *be2;
    struct mtp_engine *e, *e2;
    assert_int_equal(mtp_model_load(dir, &model), MTP_OK);
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    assert_int_equal(mtp_backend_cpu_create(2, &be2), MTP_OK);
    struct mtp_engine_options opt = {.max_positions = 256, .max_batch = 64,
                                     .poison_rollback = true};
    assert_int_equal(mtp_engine_create(model, be, &opt, &e), MTP_OK);
    assert_int_equal(mtp_engine_create(model, be2, &opt, &e2), MTP_OK);
    static const char *const shapes[] = {"widths:3,2", "dynamic:6,3,2", "paths:0;1;0,0"};
    const int32_t prompt[] = {3, 17, 42, 99, 5};
    for (int dr = 0; dr < 2; dr++)
        for (size_t si = 0; si < 3; si++) {
            struct mtp_decode_result r[2];
            for (int rep = 0; rep < 2; rep++) {
                struct mtp_decode_params p = {
                    .drafting = dr ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT,
                    .sampling = {.temperature = 1.0f, .top_p = 0.9f, .top_k = 0},
                    .max_new_tokens = 30,
                    .eos_token_id = -1,
                };
                assert_int_equal(mtp_tree_parse(shapes[si], &p.tree), MTP_OK);
                mtp_rng_seed_stream(&p.rng, 99, 0, 0, 0);
                if (mtp_decode_run(rep ? e2 : e, &p, prompt, 5, &r[rep]))
                    fail_msg("%s", mtp_error_message());
            }
            assert_int_equal(r[0].n_output, 30);
            assert_memory_equal(r[0].output, r[1].output, 30 * sizeof(int32_t));
            assert_int_equal(r[0].n_steps, r[1].n_steps);
            assert_memory_equal(r[0].accepted, r[1].accepted, (size_t)r[0].n_steps * 4);
            assert_memory_equal(r[0].tree_node, r[1].tree_node, (size_t)r[0].n_steps * 4);
            int sum = 0;
            for (int s = 0; s < r[0].n_steps; s++) {
                assert_true(r[0].emitted[s] <= r[0].accepted[s] + 1);
                assert_true(r[0].tree_nodes[s] >= 2);
                sum += r[0].emitted[s];
            }
            assert_int_equal(sum + 1, r[0].n_output);
            mtp_decode_result_free(&r[0]);
            mtp_decode_result_free(&r[1]);
        }
    mtp_engine_free(e);
    mtp_engine_free(e2);
    mtp_backend_free(be);
    mtp_backend_free(be2);
    mtp_model_free(model);
}

/* ---- end to end: tree sampling on a model emits the target's distribution ---- */

enum { TOPK = 3, NEW = 3, TRIALS_E2E = 1000 };

/* Chi-square with the cells whose expected count is below 5 pooled into one
 * (the statistic's chi-square approximation needs it at this sample size). */
static double chi2_pooled(const long *count, const double *expect, int n, long trials, int *df)
{
    long pc = 0;
    double pe = 0, x = 0;
    *df = -1;
    for (int i = 0; i < n; i++) {
        double e = expect[i] * (double)trials;
        if (e < 5) {
            pc += count[i];
            pe += e;
            continue;
        }
        x += ((double)count[i] - e) * ((double)count[i] - e) / e;
        (*df)++;
    }
    if (pe > 0) {
        x += ((double)pc - pe) * ((double)pc - pe) / pe;
        (*df)++;
    }
    return x;
}

/* Target probabilities (T = 1, top-k 3) after PREFIX [n] on engine E. */
static void target_probs(struct mtp_engine *e, const int32_t *prefix, int n, float *probs,
                         float *logits_all)
{
    int nv = mtp_engine_model(e)->cfg.vocab_size;
    mtp_engine_truncate(e, 0, 0);
    if (mtp_engine_forward(e, prefix, n, 0, logits_all, NULL))
        fail_msg("%s", mtp_error_message());
    struct mtp_sampling smp = {.temperature = 1.0f, .top_p = 1.0f, .top_k = TOPK};
    mtp_sampling_probs(&smp, logits_all + (size_t)(n - 1) * nv, nv, probs, NULL);
}

/* The support (TOPK ids each) and the exact joint of the first NEW tokens. */
struct joint {
    int32_t id[1 + TOPK + TOPK * TOPK][TOPK]; /* support after each prefix, by node */
    double p[TOPK * TOPK * TOPK];             /* cell (i0, i1, i2): indices into the supports */
};

static int support(const float *probs, int nv, int32_t *ids)
{
    int n = 0;
    for (int v = 0; v < nv && n < TOPK; v++)
        if (probs[v] > 0)
            ids[n++] = v;
    return n;
}

static void exact_joint(struct mtp_engine *e, const int32_t *prompt, int np, struct joint *j)
{
    int nv = mtp_engine_model(e)->cfg.vocab_size;
    float *pr = malloc((size_t)nv * sizeof(float)), *lg = malloc((size_t)(np + NEW) * nv * sizeof(float));
    int32_t seq[64];
    memcpy(seq, prompt, (size_t)np * sizeof(int32_t));
    target_probs(e, seq, np, pr, lg);
    assert_int_equal(support(pr, nv, j->id[0]), TOPK);
    for (int a = 0; a < TOPK; a++) {
        double pa = pr[j->id[0][a]];
        float pr1[4096];
        seq[np] = j->id[0][a];
        target_probs(e, seq, np + 1, pr1, lg);
        assert_int_equal(support(pr1, nv, j->id[1 + a]), TOPK);
        for (int b = 0; b < TOPK; b++) {
            double pb = pr1[j->id[1 + a][b]];
            float pr2[4096];
            seq[np + 1] = j->id[1 + a][b];
            target_probs(e, seq, np + 2, pr2, lg);
            int node = 1 + TOPK + a * TOPK + b;
            assert_int_equal(support(pr2, nv, j->id[node]), TOPK);
            for (int c = 0; c < TOPK; c++)
                j->p[(a * TOPK + b) * TOPK + c] = pa * pb * pr2[j->id[node][c]];
        }
    }
    free(pr);
    free(lg);
}

static int index_of(const int32_t *ids, int32_t t)
{
    for (int i = 0; i < TOPK; i++)
        if (ids[i] == t)
            return i;
    return -1;
}

/* Tree sampling over TRIALS_E2E seeds: the first NEW tokens follow the exact joint. */
static void test_decoder_lossless(void **state)
{
    (void)state;
    char dir[512];
    /* The trained model: a random fixture's modules rarely share the target's
     * top 3, and acceptance would then never be exercised. */
    snprintf(dir, sizeof dir, "%s/models/mtp-mini", MTP_SOURCE_DIR);
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
    assert_int_equal(mtp_model_load(dir, &model), MTP_OK);
    assert_true(model->cfg.vocab_size <= 4096);
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    struct mtp_engine_options opt = {.max_positions = 128, .max_batch = 64};
    assert_int_equal(mtp_engine_create(model, be, &opt, &e), MTP_OK);
    const int32_t prompt[] = {464, 3290, 286, 262, 995};
    struct joint j;
    exact_joint(e, prompt, 5, &j);
    static const char *const shapes[] = {"widths:3,2", "dynamic:4,3,2"};
    for (int dr = 0; dr < 2; dr++)
        for (size_t si = (size_t)dr; si < (size_t)dr + 1; si++) { /* exact widths, chain dynamic */
            long count[TOPK * TOPK * TOPK] = {0}, accepted = 0, off_top = 0;
            for (int t = 0; t < TRIALS_E2E; t++) {
                struct mtp_decode_params p = {
                    .drafting = dr ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT,
                    .sampling = {.temperature = 1.0f, .top_p = 1.0f, .top_k = TOPK},
                    .max_new_tokens = NEW,
                    .eos_token_id = -1,
                };
                assert_int_equal(mtp_tree_parse(shapes[si], &p.tree), MTP_OK);
                mtp_rng_seed_stream(&p.rng, 1000 + (uint64_t)t, (uint64_t)si, (uint64_t)dr, 0);
                struct mtp_decode_result r;
                if (mtp_decode_run(e, &p, prompt, 5, &r))
                    fail_msg("%s", mtp_error_message());
                int a = index_of(j.id[0], r.output[0]);
                int b = a >= 0 ? index_of(j.id[1 + a], r.output[1]) : -1;
                int c = b >= 0 ? index_of(j.id[1 + TOPK + a * TOPK + b], r.output[2]) : -1;
                assert_true(a >= 0 && b >= 0 && c >= 0); /* outside the target's support */
                count[(a * TOPK + b) * TOPK + c]++;
                for (int s = 0; s < r.n_steps; s++) {
                    accepted += r.accepted_uncut[s];
                    off_top += r.accepted_uncut[s] > 0 && r.tree_ranks[(size_t)s * r.tree_depth] > 0;
                }
                mtp_decode_result_free(&r);
            }
            int df;
            double x = chi2_pooled(count, j.p, TOPK * TOPK * TOPK, TRIALS_E2E, &df);
            if (x > chi2_critical(df))
                fail_msg("%s %s: chi-square %.1f > %.1f (df %d)", dr ? "chain" : "exact",
                         shapes[si], x, chi2_critical(df), df);
            print_message("%s %s: chi2 %.1f (df %d), accepted %ld, off-top %ld\n", dr ? "chain" : "exact", shapes[si], x, df, accepted, off_top);
            assert_true(accepted > 0 && off_top > 0); /* drafts and lower ranks were accepted */
        }
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forced_branches),
        cmocka_unit_test(test_chi_square_nodes),
        cmocka_unit_test(test_uncorrected_residual_is_caught),
        cmocka_unit_test(test_chi_square_tree),
        cmocka_unit_test(test_decoder_sampling_runs),
        cmocka_unit_test(test_decoder_lossless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
