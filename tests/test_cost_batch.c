/*
 * test_cost_batch.c - the cost model at batch size B (analysis/cost_batch.h)
 * against answers computed by hand, and the reader of the cost file's
 * "batch" section against the committed bench file and hostile edits of it.
 *
 * Hand case, B = 8 (units of F(8, 0)): verify F(8, K) / F(8, 0) = 1, 1.2,
 * 1.5, 2 for K = 0..3; module 1 over n rows 0.3, 0.35, 0.4, 0.45, module 2
 * 0.5, 0.6, 0.7, 0.8; F(1, 0) / F(8, 0) = 0.25, so the batch-1 overheads
 * (argmax 0.01, argmax_probs 0.02, update 0.005 per sequence, in V(1)) count
 * 8 x 0.25 = 2 times: 0.02, 0.04, 0.01. Greedy, alpha = (0.8, 0.5):
 *   baseline 1 + 0.02 = 1.02
 *   chain K = 1: tokens 1.8; P(a) = (0.2, 0.8); draft 0.04 + 0.2*0.3 + 0.8*0.35
 *          = 0.38; step 0.38 + 1.2 + 2*0.02 + 0.01 = 1.63; speedup 1.8*1.02/1.63
 *   chain K = 2: tokens 2.2; P(a) = (0.2, 0.4, 0.4); draft 2*0.04 + (0.06 +
 *          0.14 + 0.16) + 0.3 = 0.74; step 0.74 + 1.5 + 0.06 + 0.01 = 2.31;
 *          speedup 2.2*1.02/2.31 -> K* = 1
 *   exact K = 2: module 2 over max(a+1, 2) rows 0.2*0.6 + 0.4*0.6 + 0.4*0.7 =
 *          0.64; draft 0.08 + 0.36 + 0.64 = 1.08; step 2.65; speedup 2.2*1.02/2.65
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/cost_batch.h"
#include "core/error.h"

#define FIXTURE MTP_SOURCE_DIR "/tests/fixtures/costs/bench-mtp-mini-batch.json"

static const double alpha[] = {0.8, 0.5};
static const struct mtp_cost_decoder chain = {.drafting = MTP_SPEC_DRAFTING_CHAIN, .module = 1,
                                              .greedy = true};
static const struct mtp_cost_decoder exact = {.drafting = MTP_SPEC_DRAFTING_EXACT,
                                              .greedy = true};

/* The hand case's costs: B = 1 (index 0, the identity) and B = 8 (index 1). */
static void hand_costs(struct mtp_costs *c, struct mtp_cost_batch *b)
{
    memset(c, 0, sizeof *c);
    memset(b, 0, sizeof *b);
    c->median.argmax = 0.01;
    c->median.argmax_probs = 0.02;
    c->median.sampled = 0.1;
    c->median.update = 0.005;
    c->batch = b;
    b->n_b = 2;
    b->B[0] = 1;
    b->B[1] = 8;
    b->modules = 2;
    static const double verify[4] = {1, 1.2, 1.5, 2};
    for (int n = 0; n < 4; n++) {
        b->verify[0][n] = b->verify[1][n] = verify[n];
        b->draft[0][n][0] = b->draft[1][n][0] = 0.3 + 0.05 * n;
        b->draft[0][n][1] = b->draft[1][n][1] = 0.5 + 0.1 * n;
    }
    b->unit[0] = 1;
    b->unit[1] = 0.25;
}

static void test_hand_computed(void **state)
{
    (void)state;
    struct mtp_costs c;
    struct mtp_cost_batch b;
    hand_costs(&c, &b);
    assert_float_equal(mtp_cost_batch_speedup(&c, 1, &chain, alpha, 0), 1, 1e-12);
    assert_float_equal(mtp_cost_batch_speedup(&c, 1, &chain, alpha, 1), 1.8 * 1.02 / 1.63,
                       1e-12);
    assert_float_equal(mtp_cost_batch_speedup(&c, 1, &chain, alpha, 2), 2.2 * 1.02 / 2.31,
                       1e-12);
    assert_float_equal(mtp_cost_batch_speedup(&c, 1, &exact, alpha, 2), 2.2 * 1.02 / 2.65,
                       1e-12);
    double best;
    assert_int_equal(mtp_cost_batch_best_depth(&c, 1, &chain, alpha, 2, &best), 1);
    assert_float_equal(best, 1.8 * 1.02 / 1.63, 1e-12);
    /* Batch 1 in its own unit: the overheads count once (0.01, 0.02, 0.005):
     * K = 1 step 0.02 + 0.34 + 1.2 + 0.02 + 0.005 = 1.585, baseline 1.01. */
    assert_float_equal(mtp_cost_batch_speedup(&c, 0, &chain, alpha, 1), 1.8 * 1.01 / 1.585,
                       1e-12);
    /* Verification as dear as K+1 forwards: speculation loses, K* = 0. */
    for (int n = 0; n < 4; n++)
        b.verify[1][n] = n + 1;
    assert_int_equal(mtp_cost_batch_best_depth(&c, 1, &chain, alpha, 2, &best), 0);
    assert_float_equal(best, 1, 1e-12);
}

static void test_unpriceable(void **state)
{
    (void)state;
    struct mtp_costs c;
    struct mtp_cost_batch b;
    hand_costs(&c, &b);
    assert_null(mtp_cost_batch_unpriceable(&c, &exact, 2));
    assert_non_null(strstr(mtp_cost_batch_unpriceable(&c, &exact, 3), "more MTP modules"));
    assert_non_null(strstr(mtp_cost_batch_unpriceable(&c, &chain, 4), "K = 0..3"));
    struct mtp_cost_decoder d = chain;
    d.module = 3;
    assert_non_null(strstr(mtp_cost_batch_unpriceable(&c, &d, 1), "chain module"));
    d = chain;
    d.draft_vocab = 1024;
    assert_non_null(strstr(mtp_cost_batch_unpriceable(&c, &d, 1), "full draft head"));
    c.batch = NULL;
    assert_non_null(strstr(mtp_cost_batch_unpriceable(&c, &chain, 1), "no batch curve"));
}

/* ---- the cost file's "batch" section -------------------------------------- */

static json_t *fixture(void)
{
    json_error_t err;
    json_t *root = json_load_file(FIXTURE, 0, &err);
    if (!root)
        fail_msg("%s: %s", FIXTURE, err.text);
    return root;
}

static json_t *bcases(json_t *root)
{
    return json_object_get(json_object_get(root, "batch"), "cases");
}

/* The case of B, K in ROOT's batch section. */
static json_t *bcase(json_t *root, int B, int K)
{
    size_t i;
    json_t *c;
    json_array_foreach(bcases(root), i, c)
        if (json_integer_value(json_object_get(c, "B")) == B &&
            json_integer_value(json_object_get(c, "K")) == K)
            return c;
    fail_msg("no batch case B %d K %d", B, K);
    return NULL;
}

static double sample(json_t *c, int r)
{
    return json_number_value(json_array_get(json_object_get(c, "ns_samples"), (size_t)r));
}

static void test_fixture_loads(void **state)
{
    (void)state;
    struct mtp_costs c;
    assert_int_equal(mtp_costs_load(FIXTURE, &c), MTP_OK);
    assert_non_null(c.batch);
    const struct mtp_cost_batch *b = c.batch;
    assert_int_equal(b->n_b, 6);
    assert_int_equal(b->B[0], 1);
    assert_int_equal(b->B[5], 32);
    assert_int_equal(b->modules, 3);
    assert_int_equal(b->rounds, 2);
    assert_float_equal(b->unit[0], 1, 1e-12);
    /* Two rounds: the median of the per-round ratios is their mean. */
    json_t *root = fixture();
    json_t *k0 = bcase(root, 8, 0), *k2 = bcase(root, 8, 2);
    double want = 0.5 * (sample(k2, 0) / sample(k0, 0) + sample(k2, 1) / sample(k0, 1));
    assert_float_equal(b->verify[3][2], want, 1e-12);
    assert_float_equal(b->verify[3][0], 1, 1e-12);
    json_t *m2 = json_array_get(json_object_get(bcase(root, 32, 3), "modules"), 1);
    want = 0.5 * (sample(m2, 0) / sample(bcase(root, 32, 0), 0) +
                  sample(m2, 1) / sample(bcase(root, 32, 0), 1));
    assert_float_equal(b->draft[5][3][1], want, 1e-12);
    assert_float_equal(b->experts[3][2],
                       json_number_value(json_object_get(k2, "experts_per_layer")), 1e-12);
    assert_false(isnan(b->singles_over_forward));
    /* Two rounds: p10 and p90 are the two samples. */
    json_t *f1 = bcase(root, 1, 0);
    double lo = fmin(sample(f1, 0), sample(f1, 1)), hi = fmax(sample(f1, 0), sample(f1, 1));
    assert_float_equal(b->forward1_spread, (hi - lo) / (0.5 * (lo + hi)), 1e-12);
    json_decref(root);
    mtp_costs_free(&c);
    /* A file without the section (no --batch, an older bench) loads without it. */
    assert_int_equal(mtp_costs_load(MTP_SOURCE_DIR "/tests/fixtures/costs/bench-mtp-mini.json",
                                    &c), MTP_OK);
    assert_null(c.batch);
    mtp_costs_free(&c);
}

/* Case C's ns samples set to S (2 rounds), its summary to match. */
static void set_timed(json_t *c, double s0, double s1)
{
    double lo = s0 < s1 ? s0 : s1, hi = s0 < s1 ? s1 : s0;
    json_object_set_new(c, "ns_samples", json_pack("[f, f]", s0, s1));
    json_object_set_new(c, "ns", json_pack("{s:f, s:f, s:f}", "median", 0.5 * (s0 + s1), "p10",
                                           lo, "p90", hi));
}

static void test_ratio_per_round(void **state)
{
    (void)state;
    /* Round ratios 1.5 and 1: median 1.25; the ratio of the medians would be
     * 225 / 200 = 1.125. */
    json_t *root = fixture();
    set_timed(bcase(root, 2, 0), 100, 300);
    set_timed(bcase(root, 2, 1), 150, 300);
    struct mtp_costs c;
    assert_int_equal(mtp_costs_from_json("edited.json", root, &c), MTP_OK);
    assert_float_equal(c.batch->verify[1][1], 1.25, 1e-12);
    mtp_costs_free(&c);
    json_decref(root);
}

/* ---- hostile files --------------------------------------------------------- */

static void batch_not_object(json_t *r) { json_object_set_new(r, "batch", json_array()); }
static void b_three(json_t *r) { json_object_set_new(bcase(r, 2, 1), "B", json_integer(3)); }
static void b_string(json_t *r) { json_object_set_new(bcase(r, 2, 1), "B", json_string("2")); }
static void case_not_object(json_t *r) { json_array_set_new(bcases(r), 2, json_integer(7)); }
static void k_four(json_t *r) { json_object_set_new(bcase(r, 2, 1), "K", json_integer(4)); }
static void t_wrong(json_t *r) { json_object_set_new(bcase(r, 4, 1), "T", json_integer(9)); }
static void duplicate(json_t *r)
{
    json_array_set(bcases(r), 1, json_array_get(bcases(r), 0));
}
static void drop(json_t *r, int B, int K)
{
    size_t i;
    json_t *c;
    json_array_foreach(bcases(r), i, c)
        if (json_integer_value(json_object_get(c, "B")) == B &&
            json_integer_value(json_object_get(c, "K")) == K) {
            json_array_remove(bcases(r), i);
            return;
        }
}
static void missing_k(json_t *r) { drop(r, 16, 2); }
static void missing_b1(json_t *r)
{
    for (int K = 0; K < 4; K++)
        drop(r, 1, K);
}
static void negative_ns(json_t *r)
{
    json_array_set_new(json_object_get(bcase(r, 1, 2), "ns_samples"), 1, json_real(-5));
}
static void string_ns(json_t *r)
{
    json_array_set_new(json_object_get(bcase(r, 1, 2), "ns_samples"), 0, json_string("fast"));
}
static void huge_ns(json_t *r) { set_timed(bcase(r, 4, 3), 1e300, 1e300); }
static void short_samples(json_t *r)
{
    json_array_remove(json_object_get(bcase(r, 4, 2), "ns_samples"), 0);
}
static void p90_below_p10(json_t *r)
{
    json_t *ns = json_object_get(bcase(r, 8, 1), "ns");
    json_object_set_new(ns, "p90", json_real(1));
}
static void median_outside(json_t *r)
{
    json_object_set_new(bcase(r, 8, 1), "ns", json_pack("{s:f}", "median", 1e12));
}
static void too_many_modules(json_t *r)
{
    json_object_set_new(json_object_get(r, "batch"), "modules", json_integer(4));
}
static void short_modules(json_t *r)
{
    json_array_remove(json_object_get(bcase(r, 2, 3), "modules"), 2);
}
static void module_number(json_t *r)
{
    json_object_set_new(json_array_get(json_object_get(bcase(r, 2, 3), "modules"), 1), "module",
                        json_integer(3));
}
static void module_zero_ns(json_t *r)
{
    set_timed(json_array_get(json_object_get(bcase(r, 16, 3), "modules"), 0), 0, 0);
}
static void singles_elsewhere(json_t *r)
{
    json_t *s = json_object_get(bcase(r, 8, 0), "single_decodes");
    json_object_set(bcase(r, 4, 0), "single_decodes", s);
}
static void negative_experts(json_t *r)
{
    json_object_set_new(bcase(r, 32, 0), "experts_per_layer", json_real(-1));
}
static void zero_rounds(json_t *r)
{
    json_object_set_new(json_object_get(r, "batch"), "rounds", json_integer(0));
}
static void no_cases(json_t *r)
{
    json_object_set_new(json_object_get(r, "batch"), "cases", json_array());
}

static void expect_refused(void (*edit)(json_t *), const char *want1, const char *want2)
{
    json_t *root = fixture();
    edit(root);
    struct mtp_costs c;
    assert_int_equal(mtp_costs_from_json("hostile.json", root, &c), MTP_ERR);
    const char *m = mtp_error_message();
    if (!strstr(m, want1) || !strstr(m, want2) || !strstr(m, "hostile.json"))
        fail_msg("message '%s' lacks '%s' / '%s' / the file", m, want1, want2);
    assert_null(c.batch);
    mtp_costs_free(&c);
    json_decref(root);
}

static void test_hostile_batch_sections(void **state)
{
    (void)state;
    expect_refused(batch_not_object, "key 'batch'", "expected an object");
    expect_refused(b_three, "key 'batch.cases[", "1, 2, 4, 8, 16, 32");
    expect_refused(b_three, ".B'", "found 3");
    expect_refused(b_string, ".B'", "found another type");
    expect_refused(case_not_object, "key 'batch.cases[2]'", "expected an object");
    expect_refused(k_four, ".K'", "0..3");
    expect_refused(t_wrong, ".T'", "expected an integer in 8..8");
    expect_refused(duplicate, "a second case for B 1, K 0", "one per B and K");
    expect_refused(missing_k, "B 16 has a case for K 0 but not for K 2", "K = 0..3");
    expect_refused(missing_b1, "B 1, K 0", "found none");
    expect_refused(negative_ns, ".ns_samples[1]'", "found -5");
    expect_refused(string_ns, ".ns_samples[0]'", "a non-number");
    expect_refused(huge_ns, "<= 1e15", "found 1e+300");
    expect_refused(short_samples, ".ns_samples'", "found 1 entries");
    expect_refused(p90_below_p10, "key 'ns.p90' = 1", "below 'ns.median'");
    expect_refused(median_outside, ".ns.median' = 1e+12", "outside its 'ns_samples'");
    expect_refused(too_many_modules, "key 'batch.modules'", "0..3");
    expect_refused(short_modules, ".modules'", "3 entries");
    expect_refused(module_number, ".modules[1].module'", "expected an integer in 2..2");
    expect_refused(module_zero_ns, ".modules[0].ns_samples[0]'", "> 0");
    expect_refused(singles_elsewhere, ".single_decodes'", "only with B 8, K 0");
    expect_refused(negative_experts, ".experts_per_layer'", "found -1");
    expect_refused(zero_rounds, "key 'batch.rounds'", "1..1000");
    expect_refused(no_cases, "key 'batch.cases'", "found none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_unpriceable),
        cmocka_unit_test(test_fixture_loads),
        cmocka_unit_test(test_ratio_per_round),
        cmocka_unit_test(test_hostile_batch_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
