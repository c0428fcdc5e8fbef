/*
 * test_dataset.c - the Spec-Bench JSONL reader (experiments/dataset.h): a good
 * file (integer and string ids, blank lines, CRLF, absent category,
 * max_prompts), and broken files whose messages must name the file and the
 * line: bad JSON, missing turns, a non-string turn, invalid UTF-8, duplicate
 * ids, an empty file.
 *
 *   ctest --test-dir build -R dataset
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: fopen, snprintf */
#include <stdlib.h> /* defines: mkdtemp */
#include <string.h> /* defines: strstr */
#include <unistd.h> /* defines: unlink, rmdir */

#include "core/error.h"
#include "experiments/dataset.h"

static char tmp_dir[64];
static char last_path[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_test_dataset_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmp_dir);
    return 0;
}

/* Write BYTES (N of them) as NAME in the temp dir; the path goes to last_path. */
static const char *write_bytes(const char *name, const char *bytes, size_t n)
{
    snprintf(last_path, sizeof last_path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(last_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return last_path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static void test_good_file(void **state)
{
    (void)state;
    const char *path = write_text(
        "mixed.jsonl",
        "{\"question_id\": 81, \"category\": \"writing\", \"turns\": [\"Write a poem.\", \"Again.\"]}\n"
        "\n"
        "   \n"
        "{\"question_id\": \"q-2\", \"category\": \"math\", \"turns\": [\"1+1=\\u00e9?\"], "
        "\"reference\": [\"2\"]}\r\n"
        "{\"question_id\": 3, \"turns\": [\"no category \xc3\xa9\"], \"extra\": {\"ignored\": true}}");
    struct mtp_dataset ds;
    mtp_error_clear();
    assert_int_equal(mtp_dataset_load(path, 0, &ds), MTP_OK);
    assert_string_equal(ds.name, "mixed");
    assert_int_equal(ds.n_prompts, 3);
    assert_string_equal(ds.prompts[0].id, "81");
    assert_string_equal(ds.prompts[0].category, "writing");
    assert_string_equal(ds.prompts[0].text, "Write a poem.");
    assert_int_equal(ds.prompts[0].line, 1);
    assert_string_equal(ds.prompts[1].id, "q-2");
    assert_string_equal(ds.prompts[1].text, "1+1=\xc3\xa9?");
    assert_int_equal(ds.prompts[1].line, 4);
    assert_string_equal(ds.prompts[2].category, "mixed");
    assert_string_equal(ds.prompts[2].text, "no category \xc3\xa9");
    assert_int_equal(ds.prompts[2].line, 5);
    mtp_dataset_free(&ds);

    assert_int_equal(mtp_dataset_load(path, 2, &ds), MTP_OK);
    assert_int_equal(ds.n_prompts, 2);
    assert_string_equal(ds.prompts[1].id, "q-2");
    mtp_dataset_free(&ds);
    unlink(path);
}

/* Load N bytes as NAME and expect a failure whose message has WANT1 and WANT2. */
static void expect_bad(const char *name, const char *bytes, size_t n, int max_prompts,
                       const char *want1, const char *want2)
{
    const char *path = write_bytes(name, bytes, n);
    struct mtp_dataset ds;
    mtp_error_clear();
    int rc = mtp_dataset_load(path, max_prompts, &ds);
    const char *msg = mtp_error_message();
    if (rc != MTP_ERR || !strstr(msg, path) || !strstr(msg, want1) || !strstr(msg, want2))
        fail_msg("%s: rc %d, message: %s", name, rc, msg);
    mtp_dataset_free(&ds);
    unlink(path);
}

#define GOOD_LINE "{\"question_id\": 1, \"category\": \"c\", \"turns\": [\"hi\"]}\n"

static void test_bad_json_line(void **state)
{
    (void)state;
    static const char text[] = GOOD_LINE "\n{\"question_id\": 2, \"turns\": [\"x\"]\n";
    expect_bad("badjson.jsonl", text, sizeof text - 1, 0, ".jsonl:3:", "bad JSON");
    /* A limit does not hide a broken line further down. */
    expect_bad("badjson.jsonl", text, sizeof text - 1, 1, ".jsonl:3:", "bad JSON");
}

static void test_missing_turns(void **state)
{
    (void)state;
    static const char text[] = GOOD_LINE "{\"question_id\": 2, \"category\": \"c\"}\n";
    expect_bad("noturns.jsonl", text, sizeof text - 1, 0, ".jsonl:2:", "key 'turns'");
    static const char empty[] = GOOD_LINE "{\"question_id\": 2, \"turns\": []}\n";
    expect_bad("emptyturns.jsonl", empty, sizeof empty - 1, 0, ".jsonl:2:", "non-empty array");
    static const char empty_prompt[] = "{\"question_id\": 2, \"turns\": [\"\"]}\n";
    expect_bad("emptyprompt.jsonl", empty_prompt, sizeof empty_prompt - 1, 0, ".jsonl:1:",
               "turns[0]");
}

static void test_non_string_turn(void **state)
{
    (void)state;
    static const char text[] = GOOD_LINE GOOD_LINE
        "{\"question_id\": 9, \"turns\": [\"ok\", 42]}\n";
    /* (the duplicate id on line 2 is checked after every line parsed) */
    expect_bad("numturn.jsonl", text, sizeof text - 1, 0, ".jsonl:3:", "key 'turns[1]': expected string, found 42");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char text[] = GOOD_LINE "{\"question_id\": 2, \"turns\": [\"caf\xe9\"]}\n";
    expect_bad("latin1.jsonl", text, sizeof text - 1, 0, ".jsonl:2:", "invalid byte 0xE9");
    static const char overlong[] = "{\"question_id\": 2, \"turns\": [\"\xc0\xaf\"]}\n";
    expect_bad("overlong.jsonl", overlong, sizeof overlong - 1, 0, ".jsonl:1:", "UTF-8");
    static const char surrogate[] = "{\"question_id\": 2, \"turns\": [\"\xed\xa0\x80\"]}\n";
    expect_bad("surrogate.jsonl", surrogate, sizeof surrogate - 1, 0, ".jsonl:1:", "UTF-8");
}

static void test_other_errors(void **state)
{
    (void)state;
    static const char dup[] = GOOD_LINE "\n" GOOD_LINE;
    expect_bad("dup.jsonl", dup, sizeof dup - 1, 0, ".jsonl:3:", "first on line 1");
    static const char noid[] = "{\"turns\": [\"x\"]}\n";
    expect_bad("noid.jsonl", noid, sizeof noid - 1, 0, ".jsonl:1:", "question_id");
    static const char arr[] = "[1, 2]\n";
    expect_bad("array.jsonl", arr, sizeof arr - 1, 0, ".jsonl:1:", "JSON object");
    expect_bad("empty.jsonl", "\n\n", 2, 0, "empty.jsonl", "at least one prompt");

    struct mtp_dataset ds;
    assert_int_equal(mtp_dataset_load("/nonexistent/x.jsonl", 0, &ds), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "/nonexistent/x.jsonl"));
    mtp_dataset_free(&ds);
}

static void test_name_from_path(void **state)
{
    (void)state;
    char *n = mtp_dataset_name_from_path("data/sets/code.jsonl");
    assert_string_equal(n, "code");
    free(n);
    n = mtp_dataset_name_from_path("question.v2.jsonl");
    assert_string_equal(n, "question.v2");
    free(n);
    n = mtp_dataset_name_from_path("plain");
    assert_string_equal(n, "plain");
    free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),      cmocka_unit_test(test_bad_json_line),
        cmocka_unit_test(test_missing_turns),  cmocka_unit_test(test_non_string_turn),
        cmocka_unit_test(test_invalid_utf8),   cmocka_unit_test(test_other_errors),
        cmocka_unit_test(test_name_from_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
