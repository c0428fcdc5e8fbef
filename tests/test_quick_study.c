/*
 * test_quick_study.c - the quick study end to end, the way a researcher runs
 * it: `mtpbench run` (through system(), so the CLI is tested too) writes a
 * log, then the report reads it.
 *   - With models/mtp-mini present: experiments/quick.json (the default
 *     study's decoders on 3 prompts per category, 32 new tokens, and 3
 *     two-turn conversations whose second turns must run), logged to a
 *     temporary directory (--out).
 *   - Otherwise: the same decoder grid cut to the fixture's D = 2 (exact K =
 *     1..2, chain K = 1..4, T = 0 and 1) on tests/fixtures/v3-f32 with a
 *     byte-level tokenizer and a six-prompt dataset written here.
 * Checks: the log is complete (every decoder x sampling x prompt, a finished
 * summary, no warning); greedy MTP output equals the baseline's token for
 * token; the acceptance view has a row per decoder and sampling setting with
 * baseline tau = 1 and 1 <= tau <= K + 1 otherwise; the ablation view pairs
 * exact and chained drafting; `mtpbench report --format json` parses.
 *
 *   ctest --test-dir build -R quick
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>  /* defines: json_load_file */
#include <math.h>     /* defines: isfinite */
#include <stdio.h>    /* defines: snprintf, fopen */
#include <stdlib.h>   /* defines: system, mkdtemp */
#include <string.h>   /* defines: strcmp */
#include <sys/stat.h> /* defines: stat, mkdir */
#include <unistd.h>   /* defines: readlink, symlink */

#include "tests/support/test_files.h"
#include "analysis/report.h"
#include "core/error.h"

static char tmp[128];
static char mtpbench[1024]; /* the executable next to this test's */
static char spec_path[512];
static char log_path[512];
static bool real_model;
static int n_decoders; /* the spec's decoder grid, for the checks */
static int max_exact, max_chain;

static void fixture_link(const char *name)
{
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/tests/fixtures/v3-f32/%s", MTP_SOURCE_DIR, name);
    snprintf(to, sizeof to, "%s/model/%s", tmp, name);
    assert_int_equal(symlink(from, to), 0);
}

/* The fixture study: the default grid cut to D = 2, short prompts (the
 * fixture has 64 positions). */
static void fixture_study(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    assert_int_equal(mkdir(dir, 0777), 0);
    fixture_link("config.json");
    fixture_link("model.safetensors");
    test_write_byte_tokenizer(tmp, "model/tokenizer.json");
    test_write_file(tmp, "code.jsonl",
             "{\"question_id\": 1, \"category\": \"code\", \"turns\": [\"int main(void) {\"]}\n"
             "{\"question_id\": 2, \"category\": \"code\", \"turns\": [\"for (i = 0; i < n\"]}\n"
             "{\"question_id\": 3, \"category\": \"code\", \"turns\": [\"return x + y;\"]}\n");
    test_write_file(tmp, "prose.jsonl",
             "{\"question_id\": 1, \"category\": \"prose\", \"turns\": [\"It was a dark\"]}\n"
             "{\"question_id\": 2, \"category\": \"prose\", \"turns\": [\"The quick brown\"]}\n"
             "{\"question_id\": 3, \"category\": \"prose\", \"turns\": [\"Once upon a time\"]}\n");
    test_write_file(tmp, "quick.json",
             "{\"name\": \"quick\", \"model\": \"model\", \"threads\": 1,"
             " \"datasets\": [\"code.jsonl\", \"prose.jsonl\"], \"max_new_tokens\": 12,"
             " \"seed\": 5, \"sampling\": [{\"temperature\": 0}, {\"temperature\": 1}],"
             " \"decoders\": [{\"type\": \"baseline\"},"
             " {\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"exact\"},"
             " {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\"},"
             " {\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"chain\"},"
             " {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\"},"
             " {\"type\": \"mtp\", \"depth\": 3, \"drafting\": \"chain\"},"
             " {\"type\": \"mtp\", \"depth\": 4, \"drafting\": \"chain\"}],"
             " \"output_dir\": \"unused\"}\n");
    snprintf(spec_path, sizeof spec_path, "%s/quick.json", tmp);
    n_decoders = 7;
    max_exact = 2;
    max_chain = 4;
}

static int setup(void **state)
{
    (void)state;
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(mtpbench, sizeof mtpbench, "%s/mtpbench", self);
    snprintf(tmp, sizeof tmp, "/tmp/mtp_quick_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    char probe[512];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/models/mtp-mini/model.safetensors", MTP_SOURCE_DIR);
    real_model = stat(probe, &st) == 0;
    if (real_model) {
        snprintf(spec_path, sizeof spec_path, "%s/experiments/quick.json", MTP_SOURCE_DIR);
        n_decoders = 10; /* baseline, exact K = 1..3, chain K = 1..5, adaptive */
        max_exact = 3;
        max_chain = 5;
    } else {
        fixture_study();
    }
    snprintf(log_path, sizeof log_path, "%s/out/quick.msgpack", tmp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    print_message("$ %s\n", cmd);
    return system(cmd);
}

/* Requests of (decoder name, sampling index) in the data. */
static int count_requests(const struct mtp_report_data *d, const char *decoder, int sampling)
{
    int n = 0;
    for (int i = 0; i < d->n_requests; i++)
        n += strcmp(d->requests[i].rec.decoder, decoder) == 0 &&
             d->requests[i].rec.sampling_index == sampling;
    return n;
}

/* Greedy (sampling 0) output of every MTP request equals the baseline's. */
/* The shipped quick study has two-turn conversations: their second turns
 * ran, continuing the first turn's state (prompt_cached > 0). */
static void check_second_turns(const struct mtp_report_data *d)
{
    int second = 0;
    for (int i = 0; i < d->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[i].rec;
        if (r->turn == 0)
            continue;
        second++;
        assert_int_equal(r->turn, 1);
        assert_true(r->prompt_cached > 0 && r->prompt_cached < r->prompt_tokens);
        assert_string_equal(r->dataset, "two-turn");
    }
    assert_true(second > 0);
}

static void check_greedy_equal(const struct mtp_report_data *d)
{
    for (int i = 0; i < d->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[i].rec;
        if (r->mode == MTP_SPEC_DECODER_BASELINE || r->temperature != 0) /* mtp and adaptive */
            continue;
        const struct mtp_request_record *b = NULL;
        for (int j = 0; j < d->n_requests && !b; j++) {
            const struct mtp_request_record *c = &d->requests[j].rec;
            if (c->mode == MTP_SPEC_DECODER_BASELINE && c->sampling_index == r->sampling_index &&
                strcmp(c->dataset, r->dataset) == 0 && strcmp(c->prompt_id, r->prompt_id) == 0 &&
                c->turn == r->turn) /* two-turn prompts: each turn against its baseline */
                b = c;
        }
        assert_non_null(b);
        assert_int_equal(r->n_output, b->n_output);
        assert_memory_equal(r->output_tokens, b->output_tokens,
                            (size_t)r->n_output * sizeof *r->output_tokens);
    }
}

static void load_log(struct mtp_report_data *d)
{
    FILE *warn = tmpfile();
    assert_int_equal(mtp_report_data_load(d, log_path, warn), MTP_OK);
    long warned = ftell(warn);
    fclose(warn);
    assert_int_equal(warned, 0); /* complete: no cut, a summary, no duplicates */
    assert_int_equal(d->n_runs, 1);
}

static void check_log(const struct mtp_report_data *d)
{
    int prompts = count_requests(d, "baseline", 0);
    assert_true(prompts >= 2);
    assert_int_equal(d->n_requests, n_decoders * 2 * prompts);
    assert_int_equal(count_requests(d, "mtp-exact-k1", 1), prompts);
    char name[32];
    snprintf(name, sizeof name, "mtp-chain-k%d", max_chain);
    assert_int_equal(count_requests(d, name, 1), prompts);
    check_greedy_equal(d);
    if (real_model)
        check_second_turns(d);
}

/* One acceptance-view row: baseline tau 1, MTP 1 <= tau <= K + 1. */
static void check_acceptance_row(const struct mtp_report_table *t, int row)
{
    const struct mtp_report_cell *cells = &t->cells[(size_t)row * (size_t)t->n_cols];
    int depth = -1, tau = -1, speedup = -1;
    for (int c = 0; c < t->n_cols; c++) {
        if (strcmp(t->cols[c].key, "depth") == 0)
            depth = c;
        if (strcmp(t->cols[c].key, "tau") == 0)
            tau = c;
        if (strcmp(t->cols[c].key, "speedup") == 0)
            speedup = c;
    }
    assert_true(depth >= 0 && tau >= 0 && speedup >= 0);
    int k = (int)cells[depth].i;
    double v = cells[tau].stat.value;
    assert_int_equal(cells[tau].kind, MTP_REPORT_CELL_STAT);
    if (k == 0)
        assert_true(v == 1.0);
    assert_true(v >= 1.0 && v <= k + 1.0);
    assert_true(cells[tau].stat.lo <= cells[tau].stat.hi);
    assert_true(isfinite(cells[speedup].stat.value) && cells[speedup].stat.value > 0);
}

static void test_quick_study(void **state)
{
    (void)state;
    print_message("quick study on %s\n", real_model ? "models/mtp-mini" : "tests/fixtures/v3-f32");
    assert_int_equal(sh("'%s' run '%s' --quiet --out '%s/out' > '%s/run.txt'", mtpbench,
                        spec_path, tmp, tmp), 0);
    struct mtp_report_data d = {0};
    load_log(&d);
    check_log(&d);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 200;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_acceptance(&d, &opt, &t), MTP_OK);
    assert_int_equal(t.n_rows, n_decoders * 2);
    for (int r = 0; r < t.n_rows; r++)
        check_acceptance_row(&t, r);
    mtp_report_table_free(&t);
    assert_int_equal(mtp_report_table_ablation(&d, &opt, &t), MTP_OK);
    assert_int_equal(t.n_rows, 2 * (max_exact > max_chain ? max_exact : max_chain));
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
    /* The CLI's JSON, as plots.py reads it. */
    assert_int_equal(sh("'%s' report '%s/out' --table full --by decoder,temperature,category "
                        "--bootstrap 100 --format json --out '%s/report.json'", mtpbench, tmp,
                        tmp), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/report.json", tmp);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    assert_non_null(root);
    assert_true(json_array_size(json_object_get(root, "rows")) >= (size_t)n_decoders * 2 * 2);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_study),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
