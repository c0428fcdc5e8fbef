/*
 * test_adaptive.c - adaptive depth (engine/decode.h, spec/decoding.md
 * "Adaptive depth"): greedy output equals the baseline's token for token at
 * every threshold and rule (lossless), each step drafts between 1 and K
 * (threshold 0: always K; 1 with rule "draft": always 1), a middle threshold
 * gives a mix, sampling runs, exact drafting is refused, and the metrics
 * leave undrafted positions unobserved.
 *
 * Runs on models/mtp-mini when present (trained modules: confident drafts
 * exist), else on the v3-f32 fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/metrics.h"
#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"

enum { MAX_POS = 96, MAX_BATCH = 16, MAX_NEW = 40, K = 4 };

struct loaded {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
};

static void load(struct loaded *l)
{
    char dir[512];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/models/mtp-mini/model.safetensors", MTP_SOURCE_DIR);
    if (stat(dir, &st) == 0)
        snprintf(dir, sizeof dir, "%s/models/mtp-mini", MTP_SOURCE_DIR);
    else
        snprintf(dir, sizeof dir, "%s/tests/fixtures/v3-f32", MTP_SOURCE_DIR);
    memset(l, 0, sizeof *l);
    if (mtp_model_load(dir, &l->model))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(mtp_backend_cpu_create(1, &l->be), MTP_OK);
    struct mtp_engine_options opt = {.max_positions = MAX_POS, .max_batch = MAX_BATCH};
    if (mtp_engine_create(l->model, l->be, &opt, &l->e))
        fail_msg("%s", mtp_error_message());
}

static void unload(struct loaded *l)
{
    mtp_engine_free(l->e);
    mtp_backend_free(l->be);
    mtp_model_free(l->model);
}

static struct mtp_decode_params params(enum mtp_decode_adaptive rule, double thr, float temp)
{
    struct mtp_decode_params p = {
        .drafting = rule == MTP_DECODE_ADAPTIVE_OFF && thr < 0 ? MTP_DECODE_DRAFTING_NONE
                                                               : MTP_DECODE_DRAFTING_CHAIN,
        .depth = thr < 0 ? 0 : K,
        .adaptive = rule,
        .adaptive_threshold = thr < 0 ? 0 : thr,
        .sampling = {.temperature = temp, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = -1,
    };
    mtp_rng_seed_stream(&p.rng, 5, 0, 0, 0);
    return p;
}

static const int32_t prompt[] = {11, 12, 13, 200, 201, 14, 15, 16, 60, 61, 62, 63, 9};

static void run(struct loaded *l, struct mtp_decode_params p, struct mtp_decode_result *r)
{
    if (mtp_decode_run(l->e, &p, prompt, (int)(sizeof prompt / sizeof prompt[0]), r))
        fail_msg("%s", mtp_error_message());
}

/* Greedy: the same tokens as the baseline; drafts per step in 1..K. Returns
 * the histogram of drafts per step in HIST [K+1]. */
static void check_greedy(struct loaded *l, const struct mtp_decode_result *base,
                         enum mtp_decode_adaptive rule, double thr, int *hist)
{
    struct mtp_decode_result r;
    run(l, params(rule, thr, 0), &r);
    assert_int_equal(r.n_output, base->n_output);
    assert_memory_equal(r.output, base->output, sizeof(int32_t) * (size_t)r.n_output);
    memset(hist, 0, sizeof(int) * (K + 1));
    for (int s = 0; s < r.n_steps; s++) {
        assert_in_range(r.drafted[s], 1, K);
        assert_true(r.accepted_uncut[s] <= r.drafted[s]);
        hist[r.drafted[s]]++;
    }
    mtp_decode_result_free(&r);
}

static void test_greedy_equals_baseline(void **state)
{
    (void)state;
    struct loaded l;
    load(&l);
    struct mtp_decode_result base;
    run(&l, params(MTP_DECODE_ADAPTIVE_OFF, -1, 0), &base);
    int hist[K + 1], mixed = 0;
    static const double thresholds[] = {0, 1e-4, 1e-3, 0.01, 0.05, 0.3, 0.6, 0.9, 1};
    for (int rule = MTP_DECODE_ADAPTIVE_DRAFT; rule <= MTP_DECODE_ADAPTIVE_CUMULATIVE; rule++)
        for (size_t i = 0; i < sizeof thresholds / sizeof thresholds[0]; i++) {
            check_greedy(&l, &base, (enum mtp_decode_adaptive)rule, thresholds[i], hist);
            int steps = 0, kinds = 0;
            for (int k = 1; k <= K; k++) {
                steps += hist[k];
                kinds += hist[k] > 0;
            }
            if (thresholds[i] == 0)
                assert_int_equal(hist[K], steps); /* never stops early */
            if (thresholds[i] == 1)
                assert_int_equal(hist[1], steps); /* every p < 1: stops after d_1 */
            mixed += kinds > 1;
            print_message("rule %d threshold %g: steps drafting 1..%d:", rule, thresholds[i], K);
            for (int k = 1; k <= K; k++)
                print_message(" %d", hist[k]);
            print_message("\n");
        }
    assert_true(mixed > 0); /* some threshold mixes depths, so stopping was exercised */
    mtp_decode_result_free(&base);
    unload(&l);
}

static void test_sampling_and_refusals(void **state)
{
    (void)state;
    struct loaded l;
    load(&l);
    struct mtp_decode_result r;
    run(&l, params(MTP_DECODE_ADAPTIVE_CUMULATIVE, 0.5, 1.0f), &r);
    assert_int_equal(r.n_output, MAX_NEW);
    for (int s = 0; s < r.n_steps; s++)
        assert_in_range(r.drafted[s], 1, K);
    mtp_decode_result_free(&r);
    struct mtp_decode_params p = params(MTP_DECODE_ADAPTIVE_DRAFT, 0.5, 0);
    p.drafting = MTP_DECODE_DRAFTING_EXACT;
    p.depth = 1;
    assert_int_equal(mtp_decode_check(l.e, &p), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "chained drafting"));
    p = params(MTP_DECODE_ADAPTIVE_DRAFT, 1.5, 0);
    assert_int_equal(mtp_decode_check(l.e, &p), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "threshold"));
    unload(&l);
}

/* Steps drafting 1 and 3 of K = 3: position 2 is observed only in the second. */
static void test_metrics_drafted(void **state)
{
    (void)state;
    struct mtp_metrics m;
    mtp_metrics_init(&m, 3);
    const int32_t acc[] = {1, 2}, drafted[] = {1, 3};
    mtp_metrics_add_request_drafted(&m, acc, acc, drafted, 2, 1 + 2 + 3, 1000);
    assert_float_equal(mtp_metrics_alpha(&m, 1), 1.0, 1e-12);     /* 2 of 2 */
    assert_float_equal(mtp_metrics_alpha(&m, 2), 1.0, 1e-12);     /* 1 of 1 (step 2 only) */
    assert_float_equal(mtp_metrics_alpha(&m, 3), 0.0, 1e-12);     /* 0 of 1 */
    assert_float_equal(mtp_metrics_beta(&m, 2), 1.0, 1e-12);      /* 1 of 1 observed */
    assert_float_equal(mtp_metrics_accept_rate(m.K ? &m : &m), 3.0 / 4.0, 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_equals_baseline),
        cmocka_unit_test(test_sampling_and_refusals),
        cmocka_unit_test(test_metrics_drafted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
