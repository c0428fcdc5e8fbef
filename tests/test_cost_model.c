/*
 * test_cost_model.c - the cost model (analysis/cost_model.h) against answers
 * computed by hand, and the cost-file reader against a synthetic bench file.
 *
 * Costs (in decodes) of the "cpu" point: verify(n) = 1 + 0.5 (n - 1), module 1
 * over n rows 0.2 + 0.1 (n - 1), module 2 0.3 flat, choices and rollback free.
 * Greedy chain, alpha = (0.8, 0.5):
 *   K = 1: tokens 1.8; P(a) = (0.2, 0.8); draft 0.2*0.2 + 0.8*0.3 = 0.28;
 *          step 0.28 + 1.5 = 1.78; speedup 1.8 / 1.78 = 1.011236
 *   K = 2: tokens 2.2; P(a) = (0.2, 0.4, 0.4); draft 0.04 + 0.12 + 0.16 + 0.2 = 0.52;
 *          step 2.52; speedup 0.873016  -> K* = 1
 * Exact K = 2: module 1 over a+1 rows 0.32, module 2 over max(a+1, 2) rows 0.3;
 *          step 0.62 + 2 = 2.62; speedup 2.2 / 2.62 = 0.839695
 * The "gpu" point (verify 1 + 0.05 (n - 1), drafts 0.05): K = 1: 1.8 / 1.1 =
 * 1.636364; K = 2: 2.2 / 1.2 = 1.833333 -> K* = 2. Verify 1 + (n - 1): K = 1
 * gives 1.8 / 2.28 < 1 -> K* = 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "analysis/cost_model.h"
#include "engine/error.h"

static const double alpha[] = {0.8, 0.5};

static struct mtp_cost_point point(double verify_slope, double d1, double d1_slope, double d2)
{
    struct mtp_cost_point c;
    memset(&c, 0, sizeof c);
    for (int n = 1; n <= MTP_COST_MAX_N; n++) {
        c.verify[n] = 1 + verify_slope * (n - 1);
        c.draft[1][n] = d1 + d1_slope * (n - 1);
        c.draft[2][n] = d2;
    }
    return c;
}

static const struct mtp_cost_decoder chain = {.drafting = MTP_SPEC_DRAFTING_CHAIN, .module = 1,
                                              .greedy = true};

static void test_hand_computed(void **state)
{
    (void)state;
    struct mtp_cost_point c = point(0.5, 0.2, 0.1, 0.3);
    assert_float_equal(mtp_cost_tokens(alpha, 1), 1.8, 1e-12);
    assert_float_equal(mtp_cost_tokens(alpha, 2), 2.2, 1e-12);
    struct mtp_cost_terms t;
    mtp_cost_step(&c, &chain, alpha, 1, &t);
    assert_float_equal(t.draft, 0.28, 1e-12);
    assert_float_equal(t.verify, 1.5, 1e-12);
    assert_float_equal(t.total, 1.78, 1e-12);
    assert_float_equal(mtp_cost_speedup(&c, &chain, alpha, 1), 1.8 / 1.78, 1e-12);
    mtp_cost_step(&c, &chain, alpha, 2, &t);
    assert_float_equal(t.draft, 0.52, 1e-12);
    assert_float_equal(mtp_cost_speedup(&c, &chain, alpha, 2), 2.2 / 2.52, 1e-12);
    struct mtp_cost_decoder exact = chain;
    exact.drafting = MTP_SPEC_DRAFTING_EXACT;
    mtp_cost_step(&c, &exact, alpha, 2, &t);
    assert_float_equal(t.draft, 0.62, 1e-12);
    assert_float_equal(mtp_cost_speedup(&c, &exact, alpha, 2), 2.2 / 2.62, 1e-12);
    /* Sampling: a choice per draft and per verified row, and the baseline's. */
    c.sampled = 0.01;
    struct mtp_cost_decoder sampled = chain;
    sampled.greedy = false;
    mtp_cost_step(&c, &sampled, alpha, 1, &t);
    assert_float_equal(t.accept, 0.02, 1e-12);
    assert_float_equal(t.total, 1.81, 1e-12);
    assert_float_equal(mtp_cost_speedup(&c, &sampled, alpha, 1), 1.8 * 1.01 / 1.81, 1e-12);
}

/* A draft vocabulary saves its measured one-row head difference once per
 * module forward, whatever the rows; an N the bench did not time changes
 * nothing. */
static void test_draft_vocab_saving(void **state)
{
    (void)state;
    struct mtp_cost_point c = point(0.5, 0.2, 0.1, 0.3);
    c.draft_vocab[1][1] = 0.05; /* module 1 at N = 1024: saves 0.2 - 0.05 */
    c.draft_vocab[2][1] = 0.1;  /* module 2: saves 0.3 - 0.1 */
    struct mtp_cost_terms t;
    struct mtp_cost_decoder d = chain;
    d.draft_vocab = 1024;
    mtp_cost_step(&c, &d, alpha, 1, &t);
    assert_float_equal(t.draft, 0.28 - 0.15, 1e-12);
    mtp_cost_step(&c, &d, alpha, 2, &t);
    assert_float_equal(t.draft, 0.52 - 2 * 0.15, 1e-12);
    d.drafting = MTP_SPEC_DRAFTING_EXACT;
    mtp_cost_step(&c, &d, alpha, 2, &t);
    assert_float_equal(t.draft, 0.62 - 0.15 - 0.2, 1e-12);
    d.draft_vocab = 777; /* not measured: the full head's cost */
    mtp_cost_step(&c, &d, alpha, 2, &t);
    assert_float_equal(t.draft, 0.62, 1e-12);
}

static void test_best_depth_moves_with_costs(void **state)
{
    (void)state;
    double best;
    struct mtp_cost_point cpu = point(0.5, 0.2, 0.1, 0.3), gpu = point(0.05, 0.05, 0, 0.05),
                          slow = point(1, 0.2, 0.1, 0.3);
    assert_int_equal(mtp_cost_best_depth(&cpu, &chain, alpha, 2, &best), 1);
    assert_float_equal(best, 1.8 / 1.78, 1e-12);
    assert_int_equal(mtp_cost_best_depth(&gpu, &chain, alpha, 2, &best), 2);
    assert_float_equal(best, 2.2 / 1.2, 1e-12);
    assert_int_equal(mtp_cost_best_depth(&slow, &chain, alpha, 2, &best), 0);
    assert_float_equal(best, 1, 1e-12);
}

/* A bench file with every case of 1 module, ratio = round index + 1 for
 * "update" and 2 for the rest, 3 rounds. */
static void write_costs(const char *path, const char *skip)
{
    json_t *cases = json_array();
    char name[64];
    const char *fixed[] = {"decode", "choose/argmax", "choose/argmax_probs", "choose/sampled",
                           "update"};
    for (int i = 0; i < 5 + 2 * MTP_COST_MAX_N; i++) {
        if (i < 5)
            snprintf(name, sizeof name, "%s", fixed[i]);
        else if (i < 5 + MTP_COST_MAX_N)
            snprintf(name, sizeof name, "verify/n=%d", i - 4);
        else
            snprintf(name, sizeof name, "draft/module=1/n=%d", i - 4 - MTP_COST_MAX_N);
        if (skip && strcmp(name, skip) == 0)
            continue;
        bool upd = strcmp(name, "update") == 0;
        json_array_append_new(cases, json_pack("{s:s, s:{s:f}, s:[f, f, f]}", "name", name,
                                               "ratio", "median", upd ? 2.0 : 2.0,
                                               "ratio_samples", upd ? 1.0 : 2.0,
                                               upd ? 2.0 : 2.0, upd ? 3.0 : 2.0));
    }
    json_t *root = json_pack("{s:s, s:{s:s, s:i}, s:{s:s, s:s, s:s, s:i}, s:i, s:o}", "schema",
                             "mtpbench-costs/1", "model", "dir", "m", "num_nextn_predict_layers",
                             1, "machine", "host", "h", "cpu", "c", "backend", "cpu", "threads", 1,
                             "rounds", 3, "cases", cases);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    json_decref(root);
}

static void test_cost_file(void **state)
{
    (void)state;
    char path[] = "/tmp/mtp-costs-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct mtp_costs c;
    write_costs(path, NULL);
    assert_int_equal(mtp_costs_load(path, &c), MTP_OK);
    assert_int_equal(c.rounds, 3);
    assert_int_equal(c.n_modules, 1);
    assert_string_equal(c.host, "h");
    assert_float_equal(c.median.verify[16], 2, 1e-12);
    assert_float_equal(c.median.draft[1][3], 2, 1e-12);
    assert_float_equal(c.round[0].update, 1, 1e-12);
    assert_float_equal(c.round[2].update, 3, 1e-12);
    mtp_costs_free(&c);
    write_costs(path, "verify/n=7");
    assert_int_equal(mtp_costs_load(path, &c), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "case 'verify/n=7': missing"));
    assert_non_null(strstr(mtp_error_message(), path));
    mtp_costs_free(&c);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_draft_vocab_saving),
        cmocka_unit_test(test_best_depth_moves_with_costs),
        cmocka_unit_test(test_cost_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
