/*
 * test_report_batch.c - reports per batch size (issue 25 item 5), from logs
 * written here record by record with mtp_log_write_*: requests at B = 1 and
 * B = 2 of a baseline and an MTP decoder (K = 2), with "batch" records for
 * the B = 2 runs. Checks:
 *   - a request pairs with the baseline at its own batch size (the speedup at
 *     B = 2 is over the B = 2 baseline, not the B = 1 one);
 *   - the batch view's throughput comes from the batch records' step times
 *     (B = 2) or the requests' decode times (B = 1), and its experts per
 *     verification step and their ratio to the baseline's from the batch
 *     records (B = 2) or the request records (B = 1);
 *   - TPOT per request is the ratio of sums of decode time and tokens;
 *   - a request at B > 1 that no batch record lists is counted in the note;
 *   - the full report groups by batch on its own when the logs hold two
 *     batch sizes, and prints a B column;
 *   - the view renders in md, csv, tex and json (json parsed back);
 *   - `mtpbench report` adds the key and says so on stderr, not when --by
 *     names batch, and --table batch runs;
 *   - a batch record with a member out of range, or more sequences in a step
 *     than its batch size, is refused naming the key.
 * The numbers are chosen so each check fails without the code it tests.
 *
 *   ctest --test-dir build -R report_batch
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h> /* defines: json_loads */
#include <libgen.h>  /* defines: dirname */
#include <sys/wait.h> /* defines: WIFEXITED */
#include <unistd.h>  /* defines: readlink */
#include <math.h>   /* defines: isnan */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: mkdtemp, free */
#include <string.h> /* defines: strcmp, strstr */

#include "analysis/report.h"
#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_batch.h"
#include "experiments/log_plan.h"
#include "support/log_edit.h"

static char tmp[64], mtpbench[1024];

enum { LAYERS = 2 };

/* One request: decoder 0 = baseline, 1 = "mtp-k2"; 4 tokens after the first. */
struct req {
    int decoder, batch;
    const char *id;
    uint64_t decode_ns;
    int experts; /* per step and MoE layer */
};

static void fill(struct mtp_request_record *r, const struct req *q)
{
    static int32_t out[16], acc1[16] = {1, 1, 1, 1}, zero[16], ex[2][16];
    static uint64_t ns[16];
    bool mtp = q->decoder == 1;
    for (int i = 0; i < 16; i++) {
        out[i] = 5 + i;
        ns[i] = 100;
        ex[mtp][i] = q->experts;
    }
    memset(r, 0, sizeof *r);
    r->decoder = mtp ? "mtp-k2" : "baseline";
    r->mode = mtp ? MTP_SPEC_DECODER_MTP : MTP_SPEC_DECODER_BASELINE;
    r->depth = mtp ? 2 : 0;
    r->drafting = mtp ? MTP_SPEC_DRAFTING_EXACT : MTP_SPEC_DRAFTING_NONE;
    r->top_p = 1;
    r->dataset = "d";
    r->category = "code";
    r->prompt_id = (char *)q->id;
    r->prompt_tokens = 3;
    r->n_steps = mtp ? 2 : 4; /* MTP: one draft accepted per step, 2 tokens a step */
    r->n_output = 5;
    r->output_tokens = out;
    r->accepted = mtp ? acc1 : zero;
    r->accepted_uncut = mtp ? acc1 : NULL;
    r->draft_ns = r->verify_ns = r->accept_ns = r->update_ns = ns;
    r->n_moe_layers = q->experts ? LAYERS : 0;
    r->experts_touched = q->experts ? ex[mtp] : NULL;
    r->ttft_ns = 1000;
    r->total_ns = 1000 + q->decode_ns;
    r->stop_reason = MTP_LOG_STOP_MAX_TOKENS;
    r->batch_size = q->batch;
    r->time_unix_ns = 1700000000000000000ll;
}

/* Prompts "1" and "2" of both decoders at B = 1 and 2. At B = 1 the MTP
 * decoder takes half the baseline's time (speedup 2); at B = 2 the baseline
 * takes 8000 ns and MTP 6000 ns (speedup 4/3; against the B = 1 baseline it
 * would be 2/3). */
static const struct req REQS[8] = {
    {0, 1, "1", 4000, 2}, {0, 1, "2", 4000, 2}, {1, 1, "1", 2000, 3}, {1, 1, "2", 2000, 4},
    {0, 2, "1", 8000, 0}, {0, 2, "2", 8000, 0}, {1, 2, "1", 6000, 0}, {1, 2, "2", 6000, 0},
};

/* The B = 2 batch run of DECODER over prompts "1" and "2": N_STEPS steps of
 * both sequences, each step VERIFY ns plus 100 ns of prefill at step 0, and
 * EXPERTS distinct experts per MoE layer. */
static void write_batch(struct mtp_log_writer *w, int decoder, int n_steps, uint64_t verify,
                        int experts)
{
    struct mtp_log_batch_request reqs[2] = {{"d", "1", 0}, {"d", "2", 0}};
    int32_t n_seqs[8], tokens[8], members[16], ex[8 * LAYERS];
    uint64_t prefill[8] = {100}, zero[8] = {0}, ver[8];
    int depth = decoder ? 2 : 0;
    for (int s = 0; s < n_steps; s++) {
        n_seqs[s] = 2;
        tokens[s] = 2 * (depth + 1);
        members[2 * s] = 0;
        members[2 * s + 1] = 1;
        ver[s] = verify;
        for (int l = 0; l < LAYERS; l++)
            ex[s * LAYERS + l] = experts;
    }
    struct mtp_log_batch_record b = {
        .decoder = decoder ? "mtp-k2" : "baseline", .batch_size = 2, .depth = depth,
        .n_requests = 2, .requests = reqs, .n_steps = n_steps, .n_moe_layers = LAYERS,
        .n_seqs = n_seqs, .tokens = tokens, .members = members, .experts_touched = ex,
        .prefill_ns = prefill, .draft_ns = zero, .verify_ns = ver, .accept_ns = zero,
        .wall_ns = 1, .time_unix_ns = 1700000000000000000ll + decoder};
    if (mtp_log_write_batch(w, &b))
        fail_msg("%s", mtp_error_message());
}

/* A log at tmp/NAME with the plan (B = 1 and 2, or 1 alone when ONLY_B1),
 * requests Q[0..n) and, when
 * BATCHES, both B = 2 batch records: the baseline 4 steps of 1000 ns (4100
 * ns in all) with 4 experts, MTP 2 steps of 1500 ns (3100 ns) with 6. */
static void write_log(const char *name, const struct req *q, int n, bool batches, bool only_b1)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info info = {.spec_json = "{\"name\": \"b\"}", .model = {.dir = "m"},
                                    .host = "h", .cpu = "c", .backend = "cpu", .threads = 1,
                                    .start_unix_ns = 1};
    assert_int_equal(mtp_log_write_run(w, &info), MTP_OK);
    struct mtp_log_plan plan = {0};
    static char *decoders[2] = {"baseline", "mtp-k2"};
    static struct mtp_plan_sampling samp = {0, 1, 0};
    plan.decoders = decoders;
    plan.n_decoders = 2;
    plan.sampling = &samp;
    plan.n_sampling = 1;
    plan.repeats = 1;
    plan.requests = only_b1 ? 4 : 8;
    mtp_log_plan_set_batch_sizes(&plan, (const int[]){1, 2}, only_b1 ? 1 : 2);
    mtp_log_plan_add_prompt(&plan, "d", "1", "code", 3, MTP_PLAN_RUN);
    mtp_log_plan_add_prompt(&plan, "d", "2", "code", 3, MTP_PLAN_RUN);
    if (mtp_log_write_plan(w, &plan))
        fail_msg("%s", mtp_error_message());
    plan.decoders = NULL; /* static */
    plan.n_decoders = 0;
    plan.sampling = NULL;
    plan.n_sampling = 0;
    mtp_log_plan_free(&plan);
    for (int i = 0; i < n; i++) {
        struct mtp_request_record rec;
        fill(&rec, &q[i]);
        if (mtp_log_write_request(w, &rec))
            fail_msg("%s", mtp_error_message());
    }
    if (batches) {
        write_batch(w, 0, 4, 1000, 4);
        write_batch(w, 1, 2, 1500, 6);
    }
    struct mtp_log_summary sum = {.wall_ns = 1, .finished = true, .end_unix_ns = 2};
    assert_int_equal(mtp_log_write_summary(w, &sum), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);
}

static void load(struct mtp_report_data *d, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (mtp_report_data_load(d, path, NULL))
        fail_msg("%s", mtp_error_message());
}

/* ---- the table ------------------------------------------------------------------ */

static int col(const struct mtp_report_table *t, const char *key)
{
    for (int c = 0; c < t->n_cols; c++)
        if (strcmp(t->cols[c].key, key) == 0)
            return c;
    fail_msg("no column %s", key);
    return -1;
}

static const struct mtp_report_cell *cell(const struct mtp_report_table *t, int row,
                                          const char *key)
{
    return &t->cells[(size_t)row * (size_t)t->n_cols + (size_t)col(t, key)];
}

/* The row of DECODER at batch size B. */
static int row_of(const struct mtp_report_table *t, const char *decoder, int b)
{
    for (int r = 0; r < t->n_rows; r++)
        if (cell(t, r, "batch_size")->i == b && cell(t, r, "decoder")->text &&
            strcmp(cell(t, r, "decoder")->text, decoder) == 0)
            return r;
    fail_msg("no row %s at B = %d", decoder, b);
    return -1;
}

static double num(const struct mtp_report_table *t, const char *decoder, int b, const char *key)
{
    const struct mtp_report_cell *c = cell(t, row_of(t, decoder, b), key);
    if (c->kind != MTP_REPORT_CELL_NUM && c->kind != MTP_REPORT_CELL_STAT)
        fail_msg("%s of %s at B = %d: not a number", key, decoder, b);
    return c->stat.value;
}

static void batch_table(const struct mtp_report_data *d, struct mtp_report_table *t)
{
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    if (mtp_report_table_batch(d, &opt, t))
        fail_msg("%s", mtp_error_message());
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_pairs_by_batch_size(void **state)
{
    (void)state;
    write_log("pair.msgpack", REQS, 8, true, false);
    struct mtp_report_data d = {0};
    load(&d, "pair.msgpack");
    struct mtp_report_table t;
    batch_table(&d, &t);
    assert_int_equal(t.n_rows, 4);
    /* Baseline first at each B, B ascending. */
    assert_int_equal(row_of(&t, "baseline", 1), 0);
    assert_int_equal(row_of(&t, "mtp-k2", 1), 1);
    assert_int_equal(row_of(&t, "baseline", 2), 2);
    assert_int_equal(row_of(&t, "mtp-k2", 2), 3);
    assert_float_equal(num(&t, "mtp-k2", 1, "speedup"), 2.0, 1e-9);
    assert_float_equal(num(&t, "mtp-k2", 2, "speedup"), 8000.0 / 6000.0, 1e-9);
    assert_float_equal(num(&t, "mtp-k2", 2, "tau"), 2.0, 1e-9);
    /* TPOT per request: 2 x 6000 ns over 2 x 4 tokens = 1.5 us. */
    assert_float_equal(num(&t, "mtp-k2", 2, "tpot_ms"), 1.5e-3, 1e-12);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
}

static void test_throughput_and_experts(void **state)
{
    (void)state;
    write_log("tput.msgpack", REQS, 8, true, false);
    struct mtp_report_data d = {0};
    load(&d, "tput.msgpack");
    assert_int_equal(d.n_batches, 2);
    struct mtp_report_table t;
    batch_table(&d, &t);
    /* B = 2: 8 tokens over the batch records' steps (4100 and 3100 ns), not
     * the requests' summed decode times (16000 and 12000 ns). */
    assert_float_equal(num(&t, "baseline", 2, "throughput_tok_s"), 8 / 4100e-9, 1e-3);
    assert_float_equal(num(&t, "mtp-k2", 2, "throughput_tok_s"), 8 / 3100e-9, 1e-3);
    assert_float_equal(num(&t, "mtp-k2", 2, "throughput_ratio"), 4100.0 / 3100.0, 1e-9);
    assert_float_equal(num(&t, "mtp-k2", 2, "seqs_per_step"), 2.0, 1e-12);
    /* Without the 100 ns prefill of step 0. */
    assert_float_equal(num(&t, "mtp-k2", 2, "decode_tok_s"), 8 / 3000e-9, 1e-3);
    /* B = 1: the requests' own decode times, 8 tokens in 4000 ns. */
    assert_float_equal(num(&t, "mtp-k2", 1, "throughput_tok_s"), 8 / 4000e-9, 1e-3);
    /* Experts: batch records at B = 2 (6 vs 4), request records at B = 1
     * (3 and 4 vs 2). */
    assert_float_equal(num(&t, "mtp-k2", 2, "experts_per_verify"), 6.0, 1e-12);
    assert_float_equal(num(&t, "mtp-k2", 2, "experts_ratio"), 1.5, 1e-12);
    assert_float_equal(num(&t, "mtp-k2", 1, "experts_per_verify"), 3.5, 1e-12);
    assert_float_equal(num(&t, "mtp-k2", 1, "experts_ratio"), 1.75, 1e-12);
    assert_null(strstr(t.note, "no batch record lists"));
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
}

static void test_uncovered_requests_counted(void **state)
{
    (void)state;
    /* The B = 2 requests without their batch records: an interrupted run. */
    write_log("nobatch.msgpack", REQS, 8, false, false);
    struct mtp_report_data d = {0};
    load(&d, "nobatch.msgpack");
    struct mtp_report_table t;
    batch_table(&d, &t);
    if (!strstr(t.note, "4 requests at B > 1 that no batch record lists"))
        fail_msg("note: %s", t.note);
    assert_int_equal(cell(&t, row_of(&t, "mtp-k2", 2), "throughput_tok_s")->kind,
                     MTP_REPORT_CELL_EMPTY);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
}

static void test_batch_key_added(void **state)
{
    (void)state;
    write_log("key.msgpack", REQS, 8, true, false);
    struct mtp_report_data d = {0};
    load(&d, "key.msgpack");
    int sizes[4];
    assert_int_equal(mtp_report_batch_sizes(&d, sizes, 4), 2);
    assert_int_equal(sizes[0], 1);
    assert_int_equal(sizes[1], 2);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    assert_true(mtp_report_add_batch_key(&d, &opt));
    assert_int_equal(opt.n_by, 3);
    assert_int_equal(opt.by[2], MTP_REPORT_KEY_BATCH);
    assert_false(mtp_report_add_batch_key(&d, &opt)); /* named already */
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 4); /* 2 decoders x 2 batch sizes, none merged */
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_full(&r, &t), MTP_OK);
    int b = col(&t, "batch_size");
    assert_string_equal(t.cols[b].label, "B");
    for (int i = 0; i < r.n_groups; i++) {
        assert_true(r.groups[i].batch_size == 1 || r.groups[i].batch_size == 2);
        assert_int_equal(r.groups[i].planned, 2); /* 2 prompts at one B */
        assert_int_equal(r.groups[i].present, 2);
    }
    mtp_report_table_free(&t);
    mtp_report_free(&r);
    /* "batch" is a --by key. */
    assert_int_equal(mtp_report_parse_by("decoder,batch", &opt), MTP_OK);
    assert_int_equal(opt.by[1], MTP_REPORT_KEY_BATCH);
    mtp_report_data_free(&d);

    /* The B = 1 requests of a plan of B = 2 too: a group of B = 2 would be
     * planned, so the key is added (the B = 2 rows show what is missing). */
    write_log("half.msgpack", REQS, 4, false, false);
    struct mtp_report_data half = {0};
    load(&half, "half.msgpack");
    mtp_report_options_default(&opt);
    assert_true(mtp_report_add_batch_key(&half, &opt));
    mtp_report_data_free(&half);
    /* One batch size in requests and plan: nothing added. */
    write_log("one.msgpack", REQS, 4, false, true);
    struct mtp_report_data one = {0};
    load(&one, "one.msgpack");
    mtp_report_options_default(&opt);
    assert_false(mtp_report_add_batch_key(&one, &opt));
    assert_int_equal(opt.n_by, 2);
    mtp_report_data_free(&one);
}

static char *render(const struct mtp_report_table *t, const struct mtp_report_data *d,
                    enum mtp_report_format fmt)
{
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    struct mtp_report_meta meta = {d, &opt};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(mtp_report_write(f, t, fmt, &meta), MTP_OK);
    fclose(f);
    return buf;
}

static void test_formats(void **state)
{
    (void)state;
    write_log("fmt.msgpack", REQS, 8, true, false);
    struct mtp_report_data d = {0};
    load(&d, "fmt.msgpack");
    struct mtp_report_table t;
    batch_table(&d, &t);
    /* CSV: a header and one line per row, every line as many fields. */
    char *csv = render(&t, &d, MTP_REPORT_FORMAT_CSV);
    int lines = 0, want = -1;
    for (const char *line = csv; *line; lines++) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        int fields = 1;
        for (const char *c = line; c < end; c++)
            fields += *c == ',';
        if (want < 0)
            want = fields;
        assert_int_equal(fields, want);
        line = end + 1;
    }
    assert_int_equal(lines, t.n_rows + 1);
    assert_non_null(strstr(csv, "throughput_tok_s,throughput_tok_s_lo"));
    free(csv);
    char *md = render(&t, &d, MTP_REPORT_FORMAT_MD);
    assert_non_null(strstr(md, "| B "));
    free(md);
    char *tex = render(&t, &d, MTP_REPORT_FORMAT_TEX);
    assert_non_null(strstr(tex, "\\begin{tabular}"));
    free(tex);
    char *js = render(&t, &d, MTP_REPORT_FORMAT_JSON);
    json_error_t err;
    json_t *root = json_loads(js, 0, &err);
    if (!root)
        fail_msg("JSON does not parse: %s", err.text);
    assert_string_equal(json_string_value(json_object_get(root, "table")), "batch");
    json_t *rows = json_object_get(root, "rows");
    assert_int_equal(json_array_size(rows), 4);
    json_t *mtp2 = json_array_get(rows, 3); /* mtp-k2 at B = 2 */
    assert_int_equal(json_integer_value(json_object_get(mtp2, "batch_size")), 2);
    json_t *sp = json_object_get(json_object_get(mtp2, "speedup"), "value");
    assert_float_equal(json_real_value(sp), 8000.0 / 6000.0, 1e-9);
    json_decref(root);
    free(js);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
}

/* `mtpbench ARGS` with stderr into OUT; returns the exit status. */
static int run_cli(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null", mtpbench, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli_adds_batch_key(void **state)
{
    (void)state;
    write_log("cli.msgpack", REQS, 8, true, false);
    char args[512], out[4096];
    snprintf(args, sizeof args, "report %s/cli.msgpack --bootstrap 0", tmp);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    if (!strstr(out, "the logs hold batch sizes 1, 2: grouping by batch too"))
        fail_msg("stderr: %s", out);
    snprintf(args, sizeof args, "report %s/cli.msgpack --bootstrap 0 --by decoder,batch", tmp);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_null(strstr(out, "grouping by batch too"));
    snprintf(args, sizeof args, "report %s/cli.msgpack --bootstrap 0 --table acceptance", tmp);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    if (!strstr(out, "this view merges them"))
        fail_msg("stderr: %s", out);
    snprintf(args, sizeof args, "report %s/cli.msgpack --bootstrap 0 --table batch --format csv",
             tmp);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
}

/* Record 2 + 8 requests = the baseline's batch record (0 run, 1 plan). */
enum { BATCH_RECORD = 10 };

static void expect_refused(const char *name, const struct log_edit *e, const char *key)
{
    char in[256], out[256];
    snprintf(in, sizeof in, "%s/pair.msgpack", tmp);
    snprintf(out, sizeof out, "%s/%s", tmp, name);
    write_log("pair.msgpack", REQS, 8, true, false);
    assert_int_equal(log_edit_file(in, out, e, 1), 1);
    struct mtp_report_data d = {0};
    assert_int_equal(mtp_report_data_load(&d, out, NULL), MTP_ERR);
    if (!strstr(mtp_error_message(), key) || !strstr(mtp_error_message(), name))
        fail_msg("message: %s", mtp_error_message());
    mtp_report_data_free(&d);
}

static void test_hostile_batch_record(void **state)
{
    (void)state;
    struct log_edit member = {.record = BATCH_RECORD, .key = "members", .elem = 1, .sub = -1,
                              .value = LOG_EDIT_INT, .i = 7};
    expect_refused("member.msgpack", &member, "'members'");
    struct log_edit seqs = {.record = BATCH_RECORD, .key = "n_seqs", .elem = 0, .sub = -1,
                            .value = LOG_EDIT_INT, .i = 3};
    expect_refused("seqs.msgpack", &seqs, "'n_seqs'");
}

static int setup(void **state)
{
    (void)state;
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    snprintf(mtpbench, sizeof mtpbench, "%s/mtpbench", dirname(self));
    snprintf(tmp, sizeof tmp, "/tmp/mtp_report_batch_XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs_by_batch_size),
        cmocka_unit_test(test_throughput_and_experts),
        cmocka_unit_test(test_uncovered_requests_counted),
        cmocka_unit_test(test_batch_key_added),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_cli_adds_batch_key),
        cmocka_unit_test(test_hostile_batch_record),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
