/*
 * test_run_inputs.c - `mtpbench run` says what it leaves out, end to end on
 * the small study of tests/support/rank_logs.h (fixture model, 64 positions):
 *   - skipped prompts: the first three get a warning line each, then one
 *     line of counts by reason and category (--verbose: every one), and the
 *     log's plan record lists them;
 *   - max_prompts_per_category draws the same prompts every time, from every
 *     category, another seed draws others; with max_prompts it is refused;
 *   - a finished sharded run whose rank log was deleted: --resume refuses
 *     under N = 2 and N = 3 alike, naming the log, and --allow-partial runs
 *     its requests again, after which the union is the single-process run;
 *   - "--resum" is refused instead of being taken for --resume;
 *   - the end-of-run table keeps its columns under a long decoder name and
 *     calls the adaptive decoder "adaptive".
 *
 *   ctest --test-dir build -R run_inputs
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: snprintf, fopen */
#include <stdlib.h> /* defines: free, mkdtemp */
#include <string.h> /* defines: strstr */

#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_plan.h"
#include "tests/support/rank_logs.h"
#include "tests/support/test_files.h"

static char tmp[128];
static char mtpbench[1024];

/* The plan record of LOG (fails the test when there is none). */
static void read_plan(const char *log, struct mtp_log_plan *p)
{
    struct mtp_log_reader *rd;
    assert_int_equal(mtp_log_reader_open(log, &rd), MTP_OK);
    const msgpack_object *o;
    char type[32];
    bool seen = false;
    while (!seen && mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o)
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "plan") == 0) {
            if (mtp_log_plan_decode(o, p))
                fail_msg("%s", mtp_error_message());
            seen = true;
        }
    mtp_log_reader_close(rd);
    assert_true(seen);
}

/* Lines of FILE that contain NEEDLE. */
static int count_lines(const char *file, const char *needle)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* A dataset of five prompts of 56 bytes (within max_prompt_tokens 58, past
 * 64 positions with 10 new tokens) in two categories, one of 60 bytes (over
 * max_prompt_tokens) and two short ones. */
/* Assert N lines of FILE contain NEEDLE; on failure show the file. */
static void expect_lines(const char *file, const char *needle, int n)
{
    int found = count_lines(file, needle);
    if (found == n)
        return;
    char text[8192] = "";
    FILE *f = fopen(file, "r");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[len] = '\0';
    if (f)
        fclose(f);
    fail_msg("%s: %d lines with '%s', expected %d:\n%s", file, found, needle, n, text);
}

static void write_long_study(void)
{
    test_write_file(tmp, "long.jsonl",
        "{\"question_id\": 1, \"category\": \"rag\", \"turns\": [\"" /* 56 bytes */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}\n"
        "{\"question_id\": 2, \"category\": \"rag\", \"turns\": [\""
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]}\n"
        "{\"question_id\": 3, \"category\": \"rag\", \"turns\": [\""
        "cccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"]}\n"
        "{\"question_id\": 4, \"category\": \"summary\", \"turns\": [\""
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"]}\n"
        "{\"question_id\": 5, \"category\": \"summary\", \"turns\": [\""
        "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"]}\n"
        "{\"question_id\": 6, \"category\": \"code\", \"turns\": [\""
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]}\n"
        "{\"question_id\": 7, \"category\": \"code\", \"turns\": [\"x = 1\"]}\n"
        "{\"question_id\": 8, \"category\": \"code\", \"turns\": [\"y = 2\"]}\n");
    test_write_file(tmp, "long.json",
        "{\"name\": \"long\", \"model\": \"model\", \"threads\": 1, \"datasets\": [\"long.jsonl\"],"
        " \"max_new_tokens\": 10, \"max_prompt_tokens\": 58, \"sampling\": [{\"temperature\": 0}],"
        " \"decoders\": [{\"type\": \"baseline\"}], \"output_dir\": \"unused\"}\n");
}

static void test_skip_summary(void **state)
{
    (void)state;
    write_long_study();
    assert_int_equal(test_sh("'%s' run '%s/long.json' --quiet --out '%s/long' >/dev/null "
                             "2>'%s/long.err'", mtpbench, tmp, tmp, tmp), 0);
    char err[300];
    snprintf(err, sizeof err, "%s/long.err", tmp);
    /* --quiet: no warnings at all; the table's summary line is on stdout. */
    expect_lines(err, "skipping prompt", 0);
    assert_int_equal(test_sh("'%s' run '%s/long.json' --out '%s/long2' >'%s/long.out' "
                             "2>'%s/long.err'", mtpbench, tmp, tmp, tmp, tmp), 0);
    expect_lines(err, "skipping prompt", 3);
    expect_lines(err, "skipped 6 of 8 prompts: 5 past the model's 64 positions "
                                      "(prompt + max_new_tokens + depth) (rag 3, summary 2); "
                                      "1 over max_prompt_tokens 58 (code 1) (each one: run "
                                      "--verbose)", 1);
    char out[300];
    snprintf(out, sizeof out, "%s/long.out", tmp);
    expect_lines(out, "skipped 6 of 8 prompts", 1);
    assert_int_equal(test_sh("'%s' run '%s/long.json' --verbose --out '%s/long3' >/dev/null "
                             "2>'%s/long.err'", mtpbench, tmp, tmp, tmp), 0);
    expect_lines(err, "skipping prompt", 6);
    char log[300];
    snprintf(log, sizeof log, "%s/long/long.msgpack", tmp);
    struct mtp_log_plan p;
    read_plan(log, &p);
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_RUN), 2);
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_SKIP_POSITIONS), 5);
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_SKIP_PROMPT_TOKENS), 1);
    assert_int_equal(p.requests, 2);
    mtp_log_plan_free(&p);
}

/* The planned prompt ids of a run of the study with max_prompts_per_category
 * 2 and SEED, as "code:1,code:3,prose:2,...". */
static void sample_run(int seed, const char *out, char *ids, size_t cap)
{
    char spec[64];
    snprintf(spec, sizeof spec, "cat%d.json", seed);
    char text[1024];
    snprintf(text, sizeof text,
             "{\"name\": \"cat\", \"model\": \"model\", \"threads\": 1,"
             " \"datasets\": [\"code.jsonl\", \"prose.jsonl\"], \"max_new_tokens\": 4,"
             " \"max_prompts_per_category\": 2, \"seed\": %d,"
             " \"sampling\": [{\"temperature\": 0}], \"decoders\": [{\"type\": \"baseline\"}],"
             " \"output_dir\": \"unused\"}\n", seed);
    test_write_file(tmp, spec, text);
    assert_int_equal(test_sh("'%s' run '%s/%s' --quiet --out '%s/%s' >/dev/null", mtpbench, tmp,
                             spec, tmp, out), 0);
    char log[300];
    snprintf(log, sizeof log, "%s/%s/cat.msgpack", tmp, out);
    struct mtp_log_plan p;
    read_plan(log, &p);
    assert_int_equal(p.max_prompts_per_category, 2);
    assert_int_equal(p.seed, (uint64_t)seed);
    ids[0] = '\0';
    for (int i = 0; i < p.n_prompts; i++) {
        size_t n = strlen(ids);
        snprintf(ids + n, cap - n, "%s:%s,", p.prompts[i].category, p.prompts[i].prompt_id);
    }
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_RUN), 4); /* 2 of each category */
    mtp_log_plan_free(&p);
}

static void test_per_category_sampling(void **state)
{
    (void)state;
    char a[512], b[512], c[512];
    sample_run(3, "cat-a", a, sizeof a);
    sample_run(3, "cat-b", b, sizeof b);
    sample_run(4, "cat-c", c, sizeof c);
    assert_string_equal(a, b);          /* seeded: the same draw */
    assert_string_not_equal(a, c);      /* another seed, another draw */
    assert_non_null(strstr(a, "code:")); /* every category */
    assert_non_null(strstr(a, "prose:"));
    test_write_file(tmp, "both.json",
                    "{\"model\": \"model\", \"datasets\": [\"code.jsonl\"], \"max_new_tokens\": 4,"
                    " \"max_prompts\": 2, \"max_prompts_per_category\": 2,"
                    " \"sampling\": [{\"temperature\": 0}], \"decoders\": [{\"type\": "
                    "\"baseline\"}], \"output_dir\": \"unused\"}\n");
    assert_int_equal(test_sh("'%s' run '%s/both.json' --quiet --out '%s/both' 2>'%s/both.err'",
                             mtpbench, tmp, tmp, tmp), 1);
    char err[300];
    snprintf(err, sizeof err, "%s/both.err", tmp);
    expect_lines(err, "keys 'max_prompts' and 'max_prompts_per_category'", 1);
}

static void test_resume_missing_rank_any_n(void **state)
{
    (void)state;
    const char *q = "--quiet";
    assert_int_equal(test_sh("'%s' run '%s/study.json' %s --shard 0/2 --out '%s/del' >/dev/null",
                             mtpbench, tmp, q, tmp), 0);
    /* The second task resumes: it sees the whole job done and says finished. */
    assert_int_equal(test_sh("'%s' run '%s/study.json' %s --shard 1/2 --resume --out '%s/del' "
                             ">/dev/null", mtpbench, tmp, q, tmp), 0);
    assert_int_equal(test_sh("rm '%s/del/study.rank-0-of-2.msgpack'", tmp), 0);
    char err[300];
    snprintf(err, sizeof err, "%s/del.err", tmp);
    for (int n = 2; n <= 3; n++) {
        assert_int_equal(test_sh("'%s' run '%s/study.json' %s --shard 0/%d --resume "
                                 "--out '%s/del' >/dev/null 2>'%s'", mtpbench, tmp, q, n, tmp,
                                 err), 1);
        expect_lines(err, "study.rank-0-of-2.msgpack is missing", 1);
    }
    assert_int_equal(test_sh("'%s' run '%s/study.json' %s --shard 0/2 --resume --allow-partial "
                             "--out '%s/del' >/dev/null", mtpbench, tmp, q, tmp), 0);
    assert_int_equal(test_sh("'%s' run '%s/study.json' %s --out '%s/one' >/dev/null", mtpbench,
                             tmp, q, tmp), 0);
    struct test_request_set a = {0}, b = {0};
    char dir[300];
    snprintf(dir, sizeof dir, "%s/one", tmp);
    test_requests_load(&a, dir, "study");
    snprintf(dir, sizeof dir, "%s/del", tmp);
    test_requests_load(&b, dir, "study");
    test_requests_assert_same(&a, &b);
    test_requests_free(&a);
    test_requests_free(&b);
}

static void test_prefix_refused(void **state)
{
    (void)state;
    char err[300];
    snprintf(err, sizeof err, "%s/prefix.err", tmp);
    assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --resum --out '%s/pre' "
                             ">/dev/null 2>'%s'", mtpbench, tmp, tmp, err), 2);
    expect_lines(err, "option --resum: expected the full name --resume", 1);
    assert_int_equal(test_sh("test ! -e '%s/pre'", tmp), 0); /* nothing was run */
    assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --max-requests 3 --out '%s/pre' "
                             ">/dev/null", mtpbench, tmp, tmp), 0);
    assert_int_equal(test_sh("'%s' report '%s/pre' --allow >/dev/null 2>'%s'", mtpbench, tmp,
                             err), 2);
    expect_lines(err, "expected the full name --allow-partial", 1);
    /* A full name is fine, and so is an option's argument that looks like one. */
    assert_int_equal(test_sh("'%s' report '%s/pre' --allow-partial --bootstrap 0 --out "
                             "'%s/--resum' >/dev/null 2>&1", mtpbench, tmp, tmp), 0);
}

static void test_table_columns(void **state)
{
    (void)state;
    test_write_file(tmp, "names.json",
        "{\"name\": \"names\", \"model\": \"model\", \"threads\": 1,"
        " \"datasets\": [\"code.jsonl\"], \"max_new_tokens\": 6, \"max_prompts\": 1,"
        " \"sampling\": [{\"temperature\": 0}], \"decoders\": [{\"type\": \"baseline\"},"
        " {\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"exact\","
        " \"name\": \"a-decoder-name-of-thirty-chars\"},"
        " {\"type\": \"adaptive\", \"depth\": 2, \"threshold\": 0.3, \"rule\": \"cumulative\","
        " \"name\": \"adapt\"}], \"output_dir\": \"unused\"}\n");
    char out[300];
    snprintf(out, sizeof out, "%s/names.out", tmp);
    assert_int_equal(test_sh("'%s' run '%s/names.json' --quiet --out '%s/names' >'%s'", mtpbench,
                             tmp, tmp, out), 0);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char line[1024];
    int col_k = -1, rows = 0;
    while (fgets(line, sizeof line, f)) {
        /* The K column starts at one offset in the header and every row. */
        const char *k = strstr(line, " K ");
        if (strncmp(line, "decoder ", 8) == 0 && k)
            col_k = (int)(k - line);
        if (col_k < 0 || strncmp(line, "decoder ", 8) == 0 || strlen(line) < 2)
            continue;
        rows++;
        assert_true((int)strlen(line) > col_k + 3);
        assert_true(line[col_k] == ' ' && line[col_k - 1] == ' ');
        if (strncmp(line, "adapt ", 6) == 0)
            assert_non_null(strstr(line, " adaptive "));
    }
    fclose(f);
    assert_true(col_k > 30);
    assert_int_equal(rows, 3);
}

static int setup(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    snprintf(tmp, sizeof tmp, "/tmp/mtp_run_inputs_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    test_write_small_study(tmp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_sh("rm -rf '%s'", tmp) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skip_summary),
        cmocka_unit_test(test_per_category_sampling),
        cmocka_unit_test(test_resume_missing_rank_any_n),
        cmocka_unit_test(test_prefix_refused),
        cmocka_unit_test(test_table_columns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
