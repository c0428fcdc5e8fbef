/*
 * test_censoring.c - acceptance counted on uncensored observations
 * (spec/metrics.md), on a synthetic log with known answers, and the report's
 * marking of groups that mix decoders.
 *
 * One MTP decoder, K = 3, two prompts whose last step was cut by the token
 * limit after 2 emitted drafts:
 *   p0 (new log: accepted_uncut present)   uncut a = 3,1,0,3   emitted a = 3,1,0,2
 *   p1 (old log: no accepted_uncut)        a = 3,1,0,2, last step cut (censored at 2)
 * p0 alone: alpha = 3/4, 2/3, 2/2; beta = 3/4, 2/4, 2/4; accept_rate 7/12.
 * p1 alone: position 3 of the cut step is unobserved: alpha_3 = 1/1 (the
 *   capped count would give 1/2), beta_3 = 1/3, accept_rate 6/11.
 * Both (merged by ratio of sums): alpha_1 6/8, alpha_2 4/6, alpha_3 3/3.
 * tau counts emitted tokens: (4+2+1+2) x 2 / 8 = 2.25.
 *
 *   ctest --test-dir build -R censoring
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

#include "analysis/metrics.h"
#include "analysis/report.h"
#include "core/error.h"
#include "experiments/log.h"

static const int32_t EMITTED_A[] = {3, 1, 0, 2};
static const int32_t UNCUT_A[] = {3, 1, 0, 3};
enum { N_STEPS = 4, N_OUTPUT = 1 + 4 + 2 + 1 + 2 };

static void near(double got, double want) { assert_true(fabs(got - want) < 1e-12); }

static void test_metrics_exclude_censored(void **state)
{
    (void)state;
    struct mtp_metrics a, b;
    mtp_metrics_init(&a, 3);
    mtp_metrics_add_request(&a, EMITTED_A, UNCUT_A, N_STEPS, N_OUTPUT, 1000);
    near(mtp_metrics_alpha(&a, 1), 3.0 / 4);
    near(mtp_metrics_alpha(&a, 2), 2.0 / 3);
    near(mtp_metrics_alpha(&a, 3), 1.0);
    near(mtp_metrics_beta(&a, 3), 2.0 / 4);
    near(mtp_metrics_accept_rate(&a), 7.0 / 12);
    near(mtp_metrics_tau(&a), 9.0 / 4);
    mtp_metrics_init(&b, 3);
    mtp_metrics_add_request(&b, EMITTED_A, NULL, N_STEPS, N_OUTPUT, 1000);
    near(mtp_metrics_alpha(&b, 2), 2.0 / 3);
    near(mtp_metrics_alpha(&b, 3), 1.0); /* not 1/2: the cut step never reached position 3 */
    near(mtp_metrics_beta(&b, 3), 1.0 / 3);
    near(mtp_metrics_accept_rate(&b), 6.0 / 11);
    /* A request that ended exactly (EOS as the final token): nothing censored. */
    struct mtp_metrics c;
    mtp_metrics_init(&c, 3);
    mtp_metrics_add_request(&c, EMITTED_A, NULL, N_STEPS, N_OUTPUT + 1, 1000);
    near(mtp_metrics_alpha(&c, 3), 1.0 / 2);
}

static void write_request(struct mtp_log_writer *w, const char *decoder, int depth,
                          const char *prompt, const int32_t *acc, const int32_t *uncut)
{
    int32_t out[N_OUTPUT], zeros[N_STEPS] = {0};
    uint64_t ns[N_STEPS] = {1, 1, 1, 1};
    for (int i = 0; i < N_OUTPUT; i++)
        out[i] = 3 + i;
    bool base = depth == 0;
    struct mtp_request_record r = {
        .decoder = (char *)decoder, .mode = base ? MTP_SPEC_DECODER_BASELINE : MTP_SPEC_DECODER_MTP,
        .depth = depth, .drafting = base ? MTP_SPEC_DRAFTING_NONE : MTP_SPEC_DRAFTING_CHAIN,
        .top_p = 1.0, .dataset = "ds", .category = "code", .prompt_id = (char *)prompt,
        .prompt_tokens = 4, .n_output = base ? 5 : N_OUTPUT, .output_tokens = out,
        .n_steps = N_STEPS, .accepted = base ? zeros : (int32_t *)acc,
        .accepted_uncut = (int32_t *)uncut, .draft_ns = ns, .verify_ns = ns, .accept_ns = ns,
        .update_ns = ns, .ttft_ns = 1, .total_ns = 1001,
        .stop_reason = MTP_LOG_STOP_MAX_TOKENS, .time_unix_ns = 1,
        .wiring = {base ? NULL : "after_shared_head_norm", base ? NULL : "kept",
                   base ? NULL : "previous_module"},
    };
    assert_int_equal(mtp_log_write_request(w, &r), MTP_OK);
}

static void write_log(const char *path)
{
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info run = {
        .spec_json = "{\"name\":\"censoring\"}",
        .model = {.dir = "m", .config_hash = "00", .num_layers = 2,
                  .num_nextn_predict_layers = 1, .vocab_size = 64, .params = 1},
        .host = "h", .cpu = "c", .backend = "cpu", .threads = 1, .start_unix_ns = 1,
    };
    assert_int_equal(mtp_log_write_run(w, &run), MTP_OK);
    write_request(w, "mtp-chain-k3", 3, "p0", EMITTED_A, UNCUT_A);
    write_request(w, "mtp-chain-k3", 3, "p1", EMITTED_A, NULL);
    write_request(w, "baseline", 0, "p0", NULL, NULL);
    write_request(w, "baseline", 0, "p1", NULL, NULL);
    assert_int_equal(mtp_log_close(w), MTP_OK);
}

static const char *cell_text(const struct mtp_report_table *t, int row, const char *key)
{
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->cols[c].key, key))
            return t->cells[row * t->n_cols + c].text;
    fail_msg("no column %s", key);
    return NULL;
}

static void test_report_uncensored_and_mixed(void **state)
{
    (void)state;
    char path[] = "/tmp/mtp_censoring_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    write_log(path);
    struct mtp_report_data d;
    memset(&d, 0, sizeof d);
    assert_int_equal(mtp_report_data_load(&d, path, NULL), MTP_OK);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    assert_int_equal(mtp_report_parse_by("decoder,wiring", &opt), MTP_OK);
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 2);
    const struct mtp_report_group *g = &r.groups[1];
    assert_string_equal(g->decoder, "mtp-chain-k3");
    assert_string_equal(g->wiring, "after_shared_head_norm,kept,previous_module");
    assert_false(g->mixed);
    near(g->metrics[mtp_report_alpha_index(g, 1)].value, 6.0 / 8);
    near(g->metrics[mtp_report_alpha_index(g, 2)].value, 4.0 / 6);
    near(g->metrics[mtp_report_alpha_index(g, 3)].value, 1.0);
    near(g->metrics[MTP_REPORT_M_TAU].value, 2.25);
    assert_string_equal(r.groups[0].wiring, "-");
    mtp_report_free(&r);
    /* Grouped by temperature only: baseline and MTP steps merge; acceptance
     * columns say so instead of printing a number. */
    assert_int_equal(mtp_report_parse_by("temperature", &opt), MTP_OK);
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 1);
    assert_true(r.groups[0].mixed);
    struct mtp_report_table t;
    opt.latency = false;
    assert_int_equal(mtp_report_table_full(&r, &t), MTP_OK);
    assert_string_equal(cell_text(&t, 0, "alpha_1"), "mixed");
    assert_string_equal(cell_text(&t, 0, "accept_rate"), "mixed");
    assert_non_null(strstr(t.note, "mixed"));
    mtp_report_table_free(&t);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_exclude_censored),
        cmocka_unit_test(test_report_uncensored_and_mixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
