/*
 * test_cost_report.c - the cost-model view (analysis/report_cost.h) on
 * synthetic logs and in-memory costs: what it refuses and what it says.
 *
 *   issue 28 case 2: negative or out-of-range accepted / accepted_uncut /
 *                    drafted are refused at the view's own entry (records
 *                    are edited in memory, past the log reader's checks);
 *   issue 28 case 3: exact drafting deeper than the modules the cost file
 *                    times is not priced, and K* stops at the modules timed;
 *   issue 28 case 7: a tree decoder is not priced as a chain of its depth;
 *   issue 26:        K* per decoder family and wiring (never an arbitrary
 *                    row), intervals that carry the bench's spread, and
 *                    warnings when the bench's threads or CPU differ;
 *   issue 25:        the batch view (report_cost_batch.h): at B = 1 with the
 *                    batch-1 costs it gives the cost-depth curve (the same
 *                    alpha_j), K* per B, what it refuses to price, and the
 *                    committed bench file's batch curve end to end.
 *
 * Costs: verify(n) = 1 + 0.1 (n - 1), module k over n rows 0.1 + 0.01 (n - 1),
 * choices and rollback 0.001 (in verify/n=1 units), host "testhost", 1 thread.
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
#include <unistd.h>

#include "analysis/cost_model.h"
#include "analysis/report.h"
#include "analysis/report_cost.h"
#include "analysis/report_cost_batch.h"
#include "core/error.h"
#include "experiments/log.h"

enum { STEPS = 8, PROMPTS = 4 };

static char tmp_dir[64], log_path[128];

struct dec {
    const char *name;
    int depth;
    enum mtp_spec_drafting drafting;
    const char *draft_hidden; /* NULL: baseline (no wiring) */
    int draft_vocab;
};

static const struct dec DECODERS[] = {
    {"baseline", 0, MTP_SPEC_DRAFTING_NONE, NULL, 0},
    {"mtp-exact-k1", 1, MTP_SPEC_DRAFTING_EXACT, "after_shared_head_norm", 0},
    {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, "after_shared_head_norm", 0},
    {"mtp-exact-k3", 3, MTP_SPEC_DRAFTING_EXACT, "after_shared_head_norm", 0},
    {"mtp-exact-k2-v1024", 2, MTP_SPEC_DRAFTING_EXACT, "after_shared_head_norm", 1024},
    {"mtp-chain-k1", 1, MTP_SPEC_DRAFTING_CHAIN, "after_shared_head_norm", 0},
    {"mtp-chain-k2", 2, MTP_SPEC_DRAFTING_CHAIN, "after_shared_head_norm", 0},
    {"mtp-chain-k3-before", 3, MTP_SPEC_DRAFTING_CHAIN, "before_shared_head_norm", 0},
    {"tree-w3", 1, MTP_SPEC_DRAFTING_EXACT, "after_shared_head_norm", 0},
};
enum { N_DECODERS = sizeof DECODERS / sizeof DECODERS[0] };

static void write_request(struct mtp_log_writer *w, const struct dec *d, int prompt)
{
    int32_t acc[STEPS], out[64];
    uint64_t draft[STEPS], verify[STEPS], accept[STEPS], update[STEPS];
    int n_out = 1;
    for (int s = 0; s < STEPS; s++) {
        acc[s] = d->depth ? (s + prompt) % (d->depth + 1) : 0;
        n_out += acc[s] + 1;
        draft[s] = 100000 * (uint64_t)d->depth;
        verify[s] = 1000000 + 100000 * (uint64_t)d->depth;
        accept[s] = update[s] = 1000;
    }
    for (int i = 0; i < n_out; i++)
        out[i] = 3 + i % 50;
    char id[8];
    snprintf(id, sizeof id, "p%d", prompt);
    struct mtp_request_record r = {
        .decoder = (char *)d->name,
        .mode = d->depth ? MTP_SPEC_DECODER_MTP : MTP_SPEC_DECODER_BASELINE,
        .depth = d->depth, .drafting = d->drafting, .temperature = 0, .top_p = 1.0, .seed = 1,
        .dataset = "ds", .category = "code", .prompt_id = id, .prompt_tokens = 4,
        .n_output = n_out, .output_tokens = out, .n_steps = STEPS, .accepted = acc,
        .draft_ns = draft, .verify_ns = verify, .accept_ns = accept, .update_ns = update,
        .ttft_ns = 1000000, .total_ns = 1000000 + STEPS * (verify[0] + draft[0] + 2000),
        .stop_reason = MTP_LOG_STOP_MAX_TOKENS, .time_unix_ns = 1700000000000000000ll,
        .draft_vocab = d->draft_vocab, .adaptive_threshold = -1,
        .wiring = {(char *)d->draft_hidden, d->draft_hidden ? "kept" : NULL,
                   d->draft_hidden ? "previous_module" : NULL},
    };
    assert_int_equal(mtp_log_write_request(w, &r), MTP_OK);
}

static int write_log(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp-cost-report-XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    snprintf(log_path, sizeof log_path, "%s/run.msgpack", tmp_dir);
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    if (mtp_log_open(log_path, &opt, &w))
        return -1;
    struct mtp_log_run_info run = {
        .spec_json = "{\"name\":\"cost\"}",
        .model = {.dir = "m", .config_hash = "00", .num_layers = 2,
                  .num_nextn_predict_layers = 3, .vocab_size = 64, .params = 1},
        .host = "testhost", .cpu = "cpu", .backend = "cpu", .threads = 1,
        .start_unix_ns = 1700000000000000000ll,
    };
    mtp_log_write_run(w, &run);
    for (int i = 0; i < N_DECODERS; i++)
        for (int p = 0; p < PROMPTS; p++)
            write_request(w, &DECODERS[i], p);
    struct mtp_log_summary sum = {.wall_ns = 1, .finished = true, .end_unix_ns = 1};
    mtp_log_write_summary(w, &sum);
    return mtp_log_close(w) == MTP_OK ? 0 : -1;
}

static int remove_log(void **state)
{
    (void)state;
    unlink(log_path);
    rmdir(tmp_dir);
    return 0;
}

/* The log, with "tree-w3"'s requests turned into a widths:3 tree (4 nodes
 * verified per step), as the runner would log it. */
static void load(struct mtp_report_data *d)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(mtp_report_data_load(d, log_path, NULL), MTP_OK);
    for (int i = 0; i < d->n_requests; i++) {
        struct mtp_request_record *r = &d->requests[i].rec;
        if (strcmp(r->decoder, "tree-w3"))
            continue;
        r->tree = strdup("widths:3");
        r->tree_nodes = malloc(sizeof(int32_t) * STEPS);
        for (int s = 0; s < STEPS; s++)
            r->tree_nodes[s] = 4;
    }
}

/* Costs of ROUNDS rounds, round r's forwards scaled by SCALE[r] (NULL: 1). */
static void make_costs(struct mtp_costs *c, int rounds, int n_modules, const double *scale)
{
    memset(c, 0, sizeof *c);
    c->file = strdup("mem.json");
    c->host = strdup("testhost");
    c->cpu = strdup("cpu");
    c->backend = strdup("cpu");
    c->model_dir = strdup("m");
    c->threads = 1;
    c->n_modules = c->model_modules = n_modules;
    c->rounds = rounds;
    c->round = calloc((size_t)rounds, sizeof *c->round);
    c->decode_over_verify1 = 1;
    c->verify1_spread = NAN;
    for (int i = 0; i < 3; i++)
        c->load_start[i] = c->load_end[i] = NAN;
    for (int r = 0; r <= rounds; r++) {
        struct mtp_cost_point *p = r < rounds ? &c->round[r] : &c->median;
        double f = scale && r < rounds ? scale[r] : 1;
        p->verify[1] = 1;
        for (int n = 2; n <= MTP_COST_MAX_N; n++)
            p->verify[n] = 1 + 0.1 * (n - 1) * f;
        for (int k = 1; k <= n_modules; k++)
            for (int n = 1; n <= MTP_COST_MAX_N; n++)
                p->draft[k][n] = (0.1 + 0.01 * (n - 1)) * f;
        p->argmax = p->argmax_probs = p->sampled = p->update = 0.001;
    }
}

struct tables {
    struct mtp_report_data d;
    struct mtp_report_table pred, depth;
};

static int build(struct tables *t, const struct mtp_costs *c)
{
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 200;
    memset(&t->pred, 0, sizeof t->pred);
    memset(&t->depth, 0, sizeof t->depth);
    return mtp_report_table_cost(&t->d, &opt, c, &t->pred, &t->depth);
}

static void release(struct tables *t)
{
    mtp_report_table_free(&t->pred);
    mtp_report_table_free(&t->depth);
    mtp_report_data_free(&t->d);
}

static int col(const struct mtp_report_table *t, const char *key)
{
    for (int i = 0; i < t->n_cols; i++)
        if (strcmp(t->cols[i].key, key) == 0)
            return i;
    fail_msg("no column %s", key);
    return -1;
}

static const struct mtp_report_cell *cell(const struct mtp_report_table *t, int row,
                                          const char *key)
{
    return &t->cells[(size_t)row * t->n_cols + col(t, key)];
}

/* The row of DECODER (column KEY holds it) over all categories; -1 if none. */
static int row_of(const struct mtp_report_table *t, const char *key, const char *decoder)
{
    for (int r = 0; r < t->n_rows; r++) {
        const struct mtp_report_cell *c = cell(t, r, key), *cat = cell(t, r, "category");
        if (c->text && strcmp(c->text, decoder) == 0 && cat->text && !strcmp(cat->text, "all"))
            return r;
    }
    return -1;
}

/* ---- issue 28 case 2 ------------------------------------------------------ */

enum field { F_ACCEPTED, F_UNCUT, F_DRAFTED };

/* The log with one step of one chain request's FIELD set to V. */
static void expect_refused(enum field f, int v, const char *want)
{
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, 1, 3, NULL);
    load(&t.d);
    struct mtp_request_record *r = NULL;
    for (int i = 0; i < t.d.n_requests && !r; i++)
        if (!strcmp(t.d.requests[i].rec.decoder, "mtp-chain-k2"))
            r = &t.d.requests[i].rec;
    assert_non_null(r);
    int32_t **arr = f == F_UNCUT ? &r->accepted_uncut : f == F_DRAFTED ? &r->drafted : NULL;
    if (arr && !*arr) {
        *arr = malloc(sizeof(int32_t) * STEPS);
        for (int s = 0; s < STEPS; s++)
            (*arr)[s] = f == F_DRAFTED ? r->depth : r->accepted[s];
    }
    (arr ? *arr : r->accepted)[3] = v;
    assert_int_equal(build(&t, &c), MTP_ERR);
    const char *m = mtp_error_message();
    if (!strstr(m, want) || !strstr(m, log_path) || !strstr(m, "step 3"))
        fail_msg("message '%s' lacks '%s', the log or the step", m, want);
    release(&t);
    mtp_costs_free(&c);
}

static void test_negative_counts_refused(void **state)
{
    (void)state;
    expect_refused(F_ACCEPTED, -3, "'accepted' = -3, expected 0..2");
    expect_refused(F_ACCEPTED, 1000, "'accepted' = 1000, expected 0..2");
    expect_refused(F_UNCUT, -1, "'accepted_uncut' = -1");
    expect_refused(F_DRAFTED, -2, "'drafted' = -2, expected 0..2");
    expect_refused(F_DRAFTED, 1 << 30, "'drafted' = 1073741824");
}

/* ---- issue 28 case 3 ------------------------------------------------------ */

static void test_exact_deeper_than_timed(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, 1, 2, NULL); /* the file times 2 modules; the log has exact K = 3 */
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    int r3 = row_of(&t.pred, "decoder", "mtp-exact-k3"), r2 = row_of(&t.pred, "decoder",
                                                                      "mtp-exact-k2");
    assert_true(r3 >= 0 && r2 >= 0);
    assert_int_equal(cell(&t.pred, r3, "speedup_pred")->kind, MTP_REPORT_CELL_EMPTY);
    assert_non_null(strstr(cell(&t.pred, r3, "note")->text, "not priced"));
    assert_non_null(strstr(cell(&t.pred, r3, "note")->text, "more MTP modules"));
    assert_int_equal(cell(&t.pred, r2, "speedup_pred")->kind, MTP_REPORT_CELL_STAT);
    assert_true(isfinite(cell(&t.pred, r2, "speedup_pred")->stat.value));
    /* K* of the exact family: its curve stops at the 2 modules timed. */
    int d = row_of(&t.depth, "decoder", "mtp-exact-k3");
    assert_true(d >= 0);
    assert_int_equal(cell(&t.depth, d, "k_max")->i, 2);
    assert_non_null(strstr(cell(&t.depth, d, "note")->text, "K max 2, not 3"));
    release(&t);
    mtp_costs_free(&c);
}

/* ---- issue 28 case 7 ------------------------------------------------------ */

static void test_tree_not_priced_as_chain(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, 1, 3, NULL);
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    int r = row_of(&t.pred, "decoder", "tree-w3");
    assert_true(r >= 0);
    assert_int_equal(cell(&t.pred, r, "speedup_pred")->kind, MTP_REPORT_CELL_EMPTY);
    assert_int_equal(cell(&t.pred, r, "tokens_per_step_pred")->kind, MTP_REPORT_CELL_EMPTY);
    assert_float_equal(cell(&t.pred, r, "verified_per_step")->stat.value, 4, 1e-12);
    assert_non_null(strstr(cell(&t.pred, r, "note")->text,
                           "tree decoder widths:3 verifies 4.00 tokens per step"));
    /* A chain of depth 1 verifies 2 tokens: the column tells them apart. */
    int k1 = row_of(&t.pred, "decoder", "mtp-exact-k1");
    assert_float_equal(cell(&t.pred, k1, "verified_per_step")->stat.value, 2, 1e-12);
    /* The tree never supplies a K* curve. */
    assert_int_equal(row_of(&t.depth, "decoder", "tree-w3"), -1);
    release(&t);
    mtp_costs_free(&c);
}

/* ---- issue 26: K* per family and wiring ----------------------------------- */

static void test_kstar_per_family(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, 1, 3, NULL);
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    /* One row per family x wiring, each from that family's deepest decoder. */
    static const char *const want[][2] = {{"mtp-exact-k3", "exact"},
                                          {"mtp-exact-k2-v1024", "exact v1024"},
                                          {"mtp-chain-k2", "chain m1"},
                                          {"mtp-chain-k3-before", "chain m1"}};
    for (int i = 0; i < 4; i++) {
        int r = row_of(&t.depth, "decoder", want[i][0]);
        if (r < 0)
            fail_msg("no K* row from %s", want[i][0]);
        assert_string_equal(cell(&t.depth, r, "family")->text, want[i][1]);
    }
    int a = row_of(&t.depth, "decoder", "mtp-chain-k2");
    int b = row_of(&t.depth, "decoder", "mtp-chain-k3-before");
    assert_string_equal(cell(&t.depth, a, "wiring")->text,
                        "after_shared_head_norm,kept,previous_module");
    assert_string_equal(cell(&t.depth, b, "wiring")->text,
                        "before_shared_head_norm,kept,previous_module");
    /* The measured best K of a family comes from that family only. */
    assert_true(cell(&t.depth, a, "best_k_meas")->i <= 2);
    for (int r = 0; r < t.depth.n_rows; r++) {
        const char *dec = cell(&t.depth, r, "decoder")->text;
        assert_true(strcmp(dec, "mtp-exact-k1") && strcmp(dec, "mtp-chain-k1"));
    }
    release(&t);
    mtp_costs_free(&c);
}

/* ---- issue 26: intervals carry the bench's spread ------------------------- */

static double pred_width(const double *scale, int rounds)
{
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, rounds, 3, scale);
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    const struct mtp_report_cell *p =
        cell(&t.pred, row_of(&t.pred, "decoder", "mtp-chain-k2"), "speedup_pred");
    double w = p->stat.hi - p->stat.lo;
    release(&t);
    mtp_costs_free(&c);
    return w;
}

static void test_interval_carries_bench_spread(void **state)
{
    (void)state;
    static const double quiet[] = {1, 1, 1}, noisy[] = {0.5, 1, 3};
    double wq = pred_width(quiet, 3), wn = pred_width(noisy, 3);
    if (!(wn > wq + 0.01))
        fail_msg("interval width %.4f with noisy rounds, %.4f with quiet ones", wn, wq);
}

/* The point estimate is the median round's prediction, inside the interval
 * that draws whole rounds, even when per-case medians would combine rounds
 * into costs no round had (here: a median point 10x every round). */
static void test_point_is_a_round(void **state)
{
    (void)state;
    static const double scale[] = {3, 0.5, 1};
    struct tables t;
    struct mtp_costs c, mid;
    make_costs(&c, 3, 3, scale);
    make_costs(&mid, 1, 3, (const double[]){1});
    static const double ten[] = {10};
    struct mtp_costs far;
    make_costs(&far, 1, 3, ten);
    c.median = far.round[0];
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    const struct mtp_report_cell *p =
        cell(&t.pred, row_of(&t.pred, "decoder", "mtp-chain-k2"), "speedup_pred");
    if (!(p->stat.lo <= p->stat.value && p->stat.value <= p->stat.hi))
        fail_msg("point %.4f outside its interval [%.4f, %.4f]", p->stat.value, p->stat.lo,
                 p->stat.hi);
    /* ... and it is the scale-1 round's prediction: the same as one round alone. */
    struct tables one;
    load(&one.d);
    assert_int_equal(build(&one, &mid), MTP_OK);
    const struct mtp_report_cell *q =
        cell(&one.pred, row_of(&one.pred, "decoder", "mtp-chain-k2"), "speedup_pred");
    assert_float_equal(p->stat.value, q->stat.value, 1e-12);
    release(&t);
    release(&one);
    mtp_costs_free(&c);
    mtp_costs_free(&mid);
    mtp_costs_free(&far);
}

/* ---- issue 26: threads, machine, load ------------------------------------- */

static void test_bench_mismatch_warned(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, 1, 3, NULL);
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    assert_null(strstr(t.pred.note, "WARNING"));
    assert_non_null(strstr(t.pred.title, "1 threads, load not recorded"));
    release(&t);
    c.threads = 4;
    free(c.cpu);
    c.cpu = strdup("Other CPU");
    c.load_start[0] = 0.5;
    c.load_end[0] = 0.7;
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    assert_non_null(strstr(t.pred.note, "WARNING: the bench ran 4 threads"));
    assert_non_null(strstr(t.pred.note, "ran 1"));
    assert_non_null(strstr(t.pred.note, "the bench's CPU is 'Other CPU'"));
    assert_non_null(strstr(t.depth.note, "WARNING: the bench ran 4 threads"));
    assert_non_null(strstr(t.pred.title, "4 threads, load 0.50 -> 0.70"));
    release(&t);
    mtp_costs_free(&c);
}

/* Costs of another model (same host and backend) are a projection; the same model
 * named by another path is not. */
static void test_other_model_is_projection(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    make_costs(&c, 1, 3, NULL);
    free(c.model_dir);
    c.model_dir = strdup("data/synthetic/glm-4.7-flash");
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    assert_non_null(strstr(t.pred.title, "PROJECTION"));
    assert_non_null(strstr(t.pred.note, "another machine, backend or model"));
    release(&t);
    free(c.model_dir);
    c.model_dir = strdup("./runs/../m/");
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    assert_null(strstr(t.pred.title, "PROJECTION"));
    release(&t);
    mtp_costs_free(&c);
}

/* ---- issue 25: the cost model at batch size B ------------------------------ */

/* A batch curve on C: B = 1 is the batch-1 median point itself (unit 1), B = 8
 * verifies at K+1 forwards' cost (compute bound), so K* = 0 there. Experts
 * 2, 3, 4, 5 per layer for K = 0..3. */
static void attach_batch(struct mtp_costs *c, struct mtp_cost_batch *b)
{
    memset(b, 0, sizeof *b);
    b->n_b = 2;
    b->B[0] = 1;
    b->B[1] = 8;
    b->modules = 3;
    b->context = 128;
    b->rounds = 1;
    b->unit[0] = 1;
    b->unit[1] = 0.25;
    b->singles_over_forward = NAN;
    for (int K = 0; K <= MTP_COST_BATCH_MAX_K; K++) {
        b->verify[0][K] = c->median.verify[K + 1];
        b->verify[1][K] = K + 1;
        b->experts[0][K] = b->experts[1][K] = 2 + K;
        for (int k = 1; k <= 3; k++)
            b->draft[0][K][k - 1] = b->draft[1][K][k - 1] = c->median.draft[k][K + 1];
    }
    c->batch = b;
}

/* The row of DECODER at batch B in the batch table; fails if none. */
static int batch_row_of(const struct mtp_report_table *t, const char *decoder, int B)
{
    for (int r = 0; r < t->n_rows; r++)
        if (!strcmp(cell(t, r, "decoder")->text, decoder) && cell(t, r, "batch")->i == B)
            return r;
    fail_msg("no batch row for %s at B %d", decoder, B);
    return -1;
}

static int build_batch(struct tables *t, const struct mtp_costs *c, struct mtp_report_table *bt)
{
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    memset(bt, 0, sizeof *bt);
    return mtp_report_table_cost_batch(&t->d, &opt, c, bt);
}

static void test_batch_view(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    struct mtp_cost_batch b;
    struct mtp_report_table bt;
    make_costs(&c, 1, 3, NULL);
    attach_batch(&c, &b);
    c.verify1_spread = 0.5; /* a noisy bench and batch curve: the note must say so */
    b.forward1_spread = 0.2;
    load(&t.d);
    assert_int_equal(build(&t, &c), MTP_OK);
    assert_int_equal(build_batch(&t, &c, &bt), MTP_OK);
    assert_int_equal(bt.n_rows, 4 * 2); /* the cost-depth table's 4 families x 2 batch sizes */
    /* B = 1 with the batch-1 costs is the cost-depth curve: the same alpha_j. */
    static const char *const fams[] = {"mtp-exact-k3", "mtp-chain-k2", "mtp-chain-k3-before"};
    for (int f = 0; f < 3; f++) {
        int dr = row_of(&t.depth, "decoder", fams[f]), br = batch_row_of(&bt, fams[f], 1);
        const char *curve = cell(&t.depth, dr, "speedup_pred_by_k")->text;
        double want[4];
        int n = sscanf(curve, "%lf, %lf, %lf, %lf", &want[0], &want[1], &want[2], &want[3]);
        char key[32];
        for (int K = 1; K < n && K <= 3; K++) {
            snprintf(key, sizeof key, "speedup_pred_k%d", K);
            assert_float_equal(cell(&bt, br, key)->stat.value, want[K], 0.0051);
        }
        if (n < 4) { /* the family's deepest decoder drafts 2: no alpha_3, no K = 3 */
            assert_int_equal(cell(&bt, br, "speedup_pred_k3")->kind, MTP_REPORT_CELL_EMPTY);
            assert_non_null(strstr(cell(&bt, br, "note")->text, "K 3..3 not priced"));
        }
        assert_int_equal(cell(&bt, br, "k_star")->i, cell(&t.depth, dr, "k_star")->i);
        /* B = 8: verification costs K+1 forwards, drafting on top: no K pays. */
        int b8 = batch_row_of(&bt, fams[f], 8);
        assert_int_equal(cell(&bt, b8, "k_star")->i, 0);
        assert_float_equal(cell(&bt, b8, "verify_ratio_k2")->stat.value, 3, 1e-12);
        assert_float_equal(cell(&bt, b8, "experts_ratio_k2")->stat.value, 2, 1e-12);
    }
    /* A draft vocabulary: the batch curve times the full head only. */
    int v = batch_row_of(&bt, "mtp-exact-k2-v1024", 8);
    assert_int_equal(cell(&bt, v, "speedup_pred_k1")->kind, MTP_REPORT_CELL_EMPTY);
    assert_int_equal(cell(&bt, v, "k_star")->kind, MTP_REPORT_CELL_EMPTY);
    assert_non_null(strstr(cell(&bt, v, "note")->text, "full draft head"));
    assert_non_null(strstr(bt.note, "NOISY BENCH"));
    assert_non_null(strstr(bt.note, "NOISY BATCH CURVE: F(1,0) varies by 20%"));
    mtp_report_table_free(&bt);
    /* No batch curve: an error naming the file and how to get one. */
    c.batch = NULL;
    assert_int_equal(build_batch(&t, &c, &bt), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "mem.json: no batch curve"));
    mtp_report_table_free(&bt);
    release(&t);
    mtp_costs_free(&c);
}

/* The committed `bench --batch --json` file through the view. */
static void test_batch_view_fixture(void **state)
{
    (void)state;
    struct tables t;
    struct mtp_costs c;
    struct mtp_report_table bt;
    assert_int_equal(mtp_costs_load(MTP_SOURCE_DIR "/tests/fixtures/costs/bench-mtp-mini-batch.json",
                                    &c), MTP_OK);
    memset(&t, 0, sizeof t); /* only the batch table is built */
    load(&t.d);
    assert_int_equal(build_batch(&t, &c, &bt), MTP_OK);
    assert_int_equal(bt.n_rows, 4 * 6);
    int r = batch_row_of(&bt, "mtp-exact-k3", 32);
    assert_float_equal(cell(&bt, r, "verify_ratio_k3")->stat.value, c.batch->verify[5][3], 1e-12);
    double s = cell(&bt, r, "speedup_pred_k1")->stat.value;
    assert_true(isfinite(s) && s > 0);
    assert_non_null(strstr(bt.title, "PROJECTION")); /* host "fixture", not the log's */
    FILE *f = tmpfile();
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    struct mtp_report_meta meta = {&t.d, &opt};
    for (int fmt = MTP_REPORT_FORMAT_MD; fmt <= MTP_REPORT_FORMAT_JSON; fmt++)
        assert_int_equal(mtp_report_write(f, &bt, (enum mtp_report_format)fmt, &meta), MTP_OK);
    fclose(f);
    mtp_report_table_free(&bt);
    release(&t);
    mtp_costs_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negative_counts_refused),
        cmocka_unit_test(test_exact_deeper_than_timed),
        cmocka_unit_test(test_tree_not_priced_as_chain),
        cmocka_unit_test(test_kstar_per_family),
        cmocka_unit_test(test_interval_carries_bench_spread),
        cmocka_unit_test(test_point_is_a_round),
        cmocka_unit_test(test_bench_mismatch_warned),
        cmocka_unit_test(test_other_model_is_projection),
        cmocka_unit_test(test_batch_view),
        cmocka_unit_test(test_batch_view_fixture),
    };
    return cmocka_run_group_tests(tests, write_log, remove_log);
}
