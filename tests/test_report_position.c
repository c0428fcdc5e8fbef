/*
 * test_report_position.c - the acceptance-by-position view
 * (analysis/report_position.c) on requests built in memory, against numbers
 * counted by hand: which bin of context length and of generation position
 * each step falls in, tau and the conditional alpha_j of each bin, the
 * censoring of a last step without uncut counts, and bootstrap intervals that
 * contain their point estimate and collapse when every prompt is the same.
 *
 *   ctest --test-dir build -R report_position
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>   /* defines: isnan, fabs */
#include <string.h> /* defines: strcmp */

#include "analysis/report.h"
#include "core/error.h"
#include "experiments/log.h"

enum { MAX_REQ = 4, MAX_STEPS = 8 };

/* |GOT - WANT| <= EPS, naming the expression on failure. */
#define assert_double_equal(got, want, eps)                                                        \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (eps)))                                                             \
            fail_msg("%s = %.17g, expected %.17g", #got, g_, w_);                                  \
    } while (0)

struct fixture {
    struct mtp_report_data d;
    struct mtp_report_request reqs[MAX_REQ];
    int32_t accepted[MAX_REQ][MAX_STEPS], uncut[MAX_REQ][MAX_STEPS];
};

/* Request Q: depth-2 chain decoder, PROMPT tokens, steps ACC (uncut = ACC). */
static void add_req(struct fixture *f, const char *prompt_id, int prompt, const int *acc, int n,
                    bool with_uncut)
{
    int q = f->d.n_requests++;
    struct mtp_request_record *r = &f->reqs[q].rec;
    memset(r, 0, sizeof *r);
    r->decoder = "mtp-chain-k2";
    r->mode = MTP_SPEC_DECODER_MTP;
    r->depth = 2;
    r->dataset = "ds";
    r->category = "prose";
    r->prompt_id = (char *)prompt_id;
    r->prompt_tokens = prompt;
    r->n_steps = n;
    r->n_output = 1;
    for (int s = 0; s < n; s++) {
        f->accepted[q][s] = f->uncut[q][s] = acc[s];
        r->n_output += acc[s] + 1;
    }
    r->accepted = f->accepted[q];
    r->accepted_uncut = with_uncut ? f->uncut[q] : NULL;
    f->d.requests = f->reqs;
}

/* The row whose axis and bin cells read AXIS and BIN (-1 if none). */
static int find_row(const struct mtp_report_table *t, const char *axis, const char *bin)
{
    for (int i = 0; i < t->n_rows; i++) {
        const struct mtp_report_cell *c = &t->cells[(size_t)i * (size_t)t->n_cols];
        if (!strcmp(c[2].text, axis) && !strcmp(c[3].text, bin))
            return i;
    }
    return -1;
}

static struct mtp_report_stat cell(const struct mtp_report_table *t, int row, int col)
{
    return t->cells[(size_t)row * (size_t)t->n_cols + (size_t)col].stat;
}

enum { COL_STEPS = 4, COL_TAU = 5, COL_ALPHA1 = 6, COL_ALPHA2 = 7 };

static void test_bins_by_hand(void **state)
{
    (void)state;
    struct fixture f = {0};
    /* a: prompt 127; steps emit 2, 0, 1 drafts: contexts 128 (the prompt and
     * the prefill's token), 131, 132: bin 128-255; generation positions 1, 4,
     * 5. b: prompt 600; steps 1, 1: contexts 601, 603 (bin 512-1023);
     * generation 1, 3. c: prompt 120; steps 2, 2, 0: contexts 121, 124, 127
     * (bin 0-127); generation 1, 4, 7. */
    add_req(&f, "a", 127, (const int[]){2, 0, 1}, 3, true);
    add_req(&f, "b", 600, (const int[]){1, 1}, 2, true);
    add_req(&f, "c", 120, (const int[]){2, 2, 0}, 3, true);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_position(&f.d, &opt, &t), MTP_OK);
    assert_int_equal(t.n_rows, 4); /* context 0-127, 128-255, 512-1023; generation 0-15 */
    int c0 = find_row(&t, "context", "0-127"), c128 = find_row(&t, "context", "128-255");
    int c512 = find_row(&t, "context", "512-1023"), g0 = find_row(&t, "generation", "0-15");
    assert_true(c0 >= 0 && c128 >= 0 && c512 >= 0 && g0 >= 0);
    assert_int_equal(t.cells[(size_t)c0 * (size_t)t.n_cols + COL_STEPS].i, 3);
    assert_double_equal(cell(&t, c0, COL_TAU).value, 7.0 / 3.0, 1e-12);
    assert_double_equal(cell(&t, c0, COL_ALPHA1).value, 2.0 / 3.0, 1e-12);
    assert_double_equal(cell(&t, c0, COL_ALPHA2).value, 1.0, 1e-12);
    assert_int_equal(t.cells[(size_t)c128 * (size_t)t.n_cols + COL_STEPS].i, 3);
    assert_double_equal(cell(&t, c128, COL_TAU).value, 6.0 / 3.0, 1e-12);
    assert_double_equal(cell(&t, c128, COL_ALPHA1).value, 2.0 / 3.0, 1e-12);
    assert_double_equal(cell(&t, c128, COL_ALPHA2).value, 1.0 / 2.0, 1e-12);
    assert_double_equal(cell(&t, c512, COL_TAU).value, 2.0, 1e-12);
    assert_double_equal(cell(&t, c512, COL_ALPHA1).value, 1.0, 1e-12);
    assert_double_equal(cell(&t, c512, COL_ALPHA2).value, 0.0, 1e-12); /* 2 tried, 0 reached */
    assert_int_equal(t.cells[(size_t)g0 * (size_t)t.n_cols + COL_STEPS].i, 8);
    assert_double_equal(cell(&t, g0, COL_TAU).value, 17.0 / 8.0, 1e-12);
    assert_double_equal(cell(&t, g0, COL_ALPHA1).value, 6.0 / 8.0, 1e-12);
    mtp_report_table_free(&t);
}

/* A last step without uncut counts that emitted 0 drafts may have been cut:
 * its positions are unobserved, so it adds a step but no rejection. */
static void test_censored_last_step(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_req(&f, "a", 10, (const int[]){2, 0}, 2, false);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_position(&f.d, &opt, &t), MTP_OK);
    int c0 = find_row(&t, "context", "0-127");
    assert_true(c0 >= 0);
    assert_double_equal(cell(&t, c0, COL_ALPHA1).value, 1.0, 1e-12);
    assert_double_equal(cell(&t, c0, COL_TAU).value, 4.0 / 2.0, 1e-12);
    mtp_report_table_free(&t);
}

static void test_bootstrap_intervals(void **state)
{
    (void)state;
    struct fixture f = {0};
    add_req(&f, "a", 100, (const int[]){2, 0, 1}, 3, true);
    add_req(&f, "b", 100, (const int[]){1, 1, 0}, 3, true);
    add_req(&f, "c", 100, (const int[]){0, 0, 2}, 3, true);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 300;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_position(&f.d, &opt, &t), MTP_OK);
    for (int i = 0; i < t.n_rows; i++)
        for (int c = COL_TAU; c <= COL_ALPHA2; c++) {
            struct mtp_report_stat s = cell(&t, i, c);
            assert_false(isnan(s.lo) || isnan(s.hi));
            assert_true(s.lo <= s.value + 1e-12 && s.value <= s.hi + 1e-12);
        }
    int c0 = find_row(&t, "context", "0-127");
    assert_true(cell(&t, c0, COL_TAU).hi > cell(&t, c0, COL_TAU).lo); /* prompts differ */
    mtp_report_table_free(&t);

    /* Three copies of one prompt: every resample gives the point estimate. */
    struct fixture g = {0};
    for (int i = 0; i < 3; i++)
        add_req(&g, (const char *[]){"a", "b", "c"}[i], 100, (const int[]){2, 0, 1}, 3, true);
    assert_int_equal(mtp_report_table_position(&g.d, &opt, &t), MTP_OK);
    c0 = find_row(&t, "context", "0-127");
    assert_double_equal(cell(&t, c0, COL_TAU).lo, cell(&t, c0, COL_TAU).hi, 1e-12);
    mtp_report_table_free(&t);
}

static void test_no_mtp_steps(void **state)
{
    (void)state;
    struct fixture f = {0};
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    struct mtp_report_table t;
    mtp_error_clear();
    assert_int_equal(mtp_report_table_position(&f.d, &opt, &t), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "position"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bins_by_hand),
        cmocka_unit_test(test_censored_last_step),
        cmocka_unit_test(test_bootstrap_intervals),
        cmocka_unit_test(test_no_mtp_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
