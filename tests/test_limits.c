/*
 * test_limits.c - limits enforced where input enters (issue 10, case 6):
 *   - positions: max_position_embeddings, or the YaRN length; the runner skips
 *     prompts that cannot fit (warning, count under the table) and `generate`
 *     refuses them; a max_new_tokens no prompt fits is a spec error;
 *   - ids: --prompt-ids outside the vocabulary, a tokenizer larger than the
 *     config's vocab_size, and a decode request with a bad id are errors, not
 *     aborts; generated ids without text are shown and reported;
 *   - max_new_tokens near INT_MAX neither overflows nor allocates;
 *   - threads above MTP_MAX_THREADS, and a spec name that is not a plain file
 *     name, are errors naming the field.
 * The runner and CLI parts use tests/fixtures/v3-f32 (64 positions by YaRN
 * 4 x 16, vocab 256) with the byte tokenizer of tests/support/test_files.c.
 *
 *   ctest --test-dir build -R limits
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>   /* defines: dirname */
#include <stdbool.h>  /* defines: bool */
#include <stdio.h>    /* defines: snprintf, popen */
#include <stdlib.h>   /* defines: free, system */
#include <string.h>   /* defines: strstr, memset */
#include <sys/stat.h> /* defines: mkdir */
#include <sys/wait.h> /* defines: WEXITSTATUS */
#include <unistd.h>   /* defines: readlink, symlink */

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/limits.h"
#include "engine/model.h"
#include "experiments/log.h"
#include "experiments/runner.h"
#include "experiments/spec.h"
#include "tests/support/test_files.h"
#include "tests/support/tiny_checkpoint.h"

static char tmp[256], bindir[1024];

static void link_fixture(const char *dir, const char *name)
{
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/tests/fixtures/v3-f32/%s", MTP_SOURCE_DIR, name);
    snprintf(to, sizeof to, "%s/%s/%s", tmp, dir, name);
    assert_int_equal(symlink(from, to), 0);
}

static void make_dir(const char *rel)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, rel);
    assert_int_equal(mkdir(dir, 0777), 0);
}

/* A byte-level tokenizer with only the 32 ids of '!'..'@' (fewer than any model's vocabulary). */
static void write_small_tokenizer(const char *rel)
{
    char text[4096];
    int n = snprintf(text, sizeof text,
                     "{\"added_tokens\": [], \"normalizer\": null, \"pre_tokenizer\": {\"type\":"
                     " \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
                     " \"use_regex\": true}, \"post_processor\": null, \"decoder\": {\"type\":"
                     " \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = '!'; b <= '@'; b++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s\"%s%c\": %d", b > '!' ? ", " : "",
                      b == '"' ? "\\" : "", b, b - '!');
    snprintf(text + n, sizeof text - (size_t)n, "}, \"merges\": []}}\n");
    test_write_file(tmp, rel, text);
}

static int setup(void **state)
{
    (void)state;
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    snprintf(bindir, sizeof bindir, "%s", dirname(self));
    snprintf(tmp, sizeof tmp, "/tmp/mtp_limits_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    make_dir("model");
    make_dir("data");
    make_dir("tiny");
    make_dir("tiny-small-tok");
    link_fixture("model", "config.json");
    link_fixture("model", "model.safetensors");
    test_write_byte_tokenizer(tmp, "model/tokenizer.json");
    /* A tiny model (vocab 64) with the byte tokenizer (256 ids): too many ids. */
    struct tiny_opts o;
    tiny_opts_default(&o);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny", tmp);
    if (tiny_checkpoint_write(dir, &o))
        return -1;
    test_write_byte_tokenizer(tmp, "tiny/tokenizer.json");
    snprintf(dir, sizeof dir, "%s/tiny-small-tok", tmp);
    if (tiny_checkpoint_write(dir, &o))
        return -1;
    write_small_tokenizer("tiny-small-tok/tokenizer.json");
    /* 5 tokens fit; 53 fit the baseline (53 + 10 <= 64) but not with depth 2
     * (65 > 64), so they are skipped for every decoder; 70 fit nothing. */
    char line[512], text[2048] = "{\"question_id\": \"short\", \"turns\": [\"Hello\"]}\n";
    snprintf(line, sizeof line, "{\"question_id\": \"p53\", \"turns\": [\"%.53s\"]}\n",
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
    strcat(text, line);
    snprintf(line, sizeof line, "{\"question_id\": \"p70\", \"turns\": [\"%.70s\"]}\n",
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
    strcat(text, line);
    test_write_file(tmp, "data/prompts.jsonl", text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void expect_in(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' lacks '%s'", text, part);
}

/* Write tmp/FILE from the template with NAME, MAX_NEW and EXTRA keys ("threads", ...). */
static void write_spec(const char *file, const char *name, long long max_new, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"name\": \"%s\", \"model\": \"model\", \"datasets\": [\"data/prompts.jsonl\"],"
             " \"max_new_tokens\": %lld, %s \"sampling\": [{\"temperature\": 0}],"
             " \"decoders\": [{\"type\": \"baseline\"},"
             " {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\"}],"
             " \"output_dir\": \"out\"}",
             name, max_new, extra);
    test_write_file(tmp, file, text);
}

static int run_spec(const char *file, char *table, size_t cap)
{
    char sp[512];
    snprintf(sp, sizeof sp, "%s/%s", tmp, file);
    FILE *out = tmpfile();
    assert_non_null(out);
    struct mtp_runner_options o = {.quiet = true, .out = out};
    int rc = mtp_runner_run(sp, &o);
    rewind(out);
    size_t n = fread(table, 1, cap - 1, out);
    table[n] = '\0';
    fclose(out);
    return rc;
}

/* ---- positions ---------------------------------------------------------------------------- */

static void test_max_positions(void **state)
{
    (void)state;
    struct mtp_config c;
    memset(&c, 0, sizeof c);
    c.max_position_embeddings = 100;
    assert_int_equal(mtp_limits_max_positions(&c), 100);
    c.rope_scaling.yarn = true;
    c.rope_scaling.factor = 40;
    c.rope_scaling.original_max_position = 4096;
    assert_int_equal(mtp_limits_max_positions(&c), 163840); /* the scaled length, not 100 */
    c.rope_scaling.factor = 4;
    c.rope_scaling.original_max_position = 16;
    assert_true(mtp_limits_request_fits(&c, 60, 3, 1));
    assert_false(mtp_limits_request_fits(&c, 61, 3, 1));
    assert_false(mtp_limits_request_fits(&c, INT32_MAX, INT32_MAX, 64)); /* no wrap-around */
    assert_int_equal(mtp_limits_check_request(&c, "m", 10, 2147483647, 0), MTP_ERR);
    expect_in(mtp_error_message(), "m/config.json");
    expect_in(mtp_error_message(), "expected at most 64");
}

static void test_runner_skips_long_prompts(void **state)
{
    (void)state;
    write_spec("skip.json", "skip", 10, "\"threads\": 1,");
    char table[8192];
    if (run_spec("skip.json", table, sizeof table))
        fail_msg("%s", mtp_error_message());
    expect_in(table, "skipped 2 of 3 prompts: 2 past the model's 64 positions");
    char path[512];
    snprintf(path, sizeof path, "%s/out/skip.msgpack", tmp);
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        fail_msg("%s", mtp_error_message());
    const msgpack_object *o;
    char type[32];
    int requests = 0;
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o) {
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "request"))
            continue;
        struct mtp_request_record r;
        assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
        assert_string_equal(r.prompt_id, "short");
        mtp_log_request_free(&r);
        requests++;
    }
    mtp_log_reader_close(rd);
    assert_int_equal(requests, 2); /* two decoders, the short prompt only */
}

/* No prompt could fit: the spec is wrong for this model; nothing is allocated. */
static void test_runner_huge_max_new_tokens(void **state)
{
    (void)state;
    static const long long values[] = {1000000000LL, 2147483647LL, 62}; /* 62: 1 + 62 + 2 > 64 */
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        write_spec("huge.json", "huge", values[i], "\"threads\": 1,");
        char table[1024];
        assert_int_equal(run_spec("huge.json", table, sizeof table), MTP_ERR);
        expect_in(mtp_error_message(), "key 'max_new_tokens'");
        expect_in(mtp_error_message(), "expected at most 64");
    }
}

/* ---- the engine's own guard --------------------------------------------------------------- */

static void test_decode_rejects_bad_requests(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny", tmp);
    struct mtp_model *m = NULL;
    assert_int_equal(mtp_model_load(dir, &m), MTP_OK);
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    struct mtp_engine_options eo = {.max_positions = 32, .max_batch = 8};
    struct mtp_engine *e = NULL;
    assert_int_equal(mtp_engine_create(m, be, &eo, &e), MTP_OK);
    struct mtp_decode_params p = {.sampling = {.top_p = 1}, .max_new_tokens = INT32_MAX,
                                  .eos_token_id = -1};
    struct mtp_decode_result r;
    const int32_t ok[] = {1, 2}, bad[] = {1, TINY_VOCAB};
    assert_int_equal(mtp_decode_run(e, &p, ok, 2, &r), MTP_ERR);
    expect_in(mtp_error_message(), "expected at most the engine's 32");
    p.max_new_tokens = 4;
    assert_int_equal(mtp_decode_run(e, &p, bad, 2, &r), MTP_ERR);
    expect_in(mtp_error_message(), "prompt token 64 (position 1) is outside the vocabulary");
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(m);
}

/* ---- threads and names -------------------------------------------------------------------- */

static void test_threads_and_name(void **state)
{
    (void)state;
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(65536, &be), MTP_ERR);
    expect_in(mtp_error_message(), "expected at most 1024");
    assert_null(be);

    struct mtp_spec spec;
    char sp[512];
    snprintf(sp, sizeof sp, "%s/bad.json", tmp);
    static const struct {
        const char *name, *extra, *key;
    } cases[] = {
        {"ok", "\"threads\": 65536,", "'threads'"},
        {"../../x", "", "'name'"},
        {"..", "", "'name'"},
        {"a/b", "", "'name'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_spec("bad.json", cases[i].name, 4, cases[i].extra);
        mtp_error_clear();
        assert_int_equal(mtp_spec_load(sp, &spec), MTP_ERR);
        expect_in(mtp_error_message(), cases[i].key);
        mtp_spec_free(&spec);
    }
}

/* ---- the command line --------------------------------------------------------------------- */

static int run_cli(const char *args, char *out, size_t cap, bool with_stderr)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/mtpbench %s %s", bindir, args,
             with_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_generate_refuses(void **state)
{
    (void)state;
    char args[1024], out[8192];
    snprintf(args, sizeof args, "generate --model %s/model --prompt-ids 1,2,999 -n 4", tmp);
    assert_int_equal(run_cli(args, out, sizeof out, true), 1);
    expect_in(out, "--prompt-ids: id 999 (position 2)");
    expect_in(out, "vocab_size = 256");

    snprintf(args, sizeof args, "generate --model %s/model --prompt-ids 1,2,3 -n 60 --mtp 2 "
                                "--drafting chain", tmp);
    assert_int_equal(run_cli(args, out, sizeof out, true), 1);
    expect_in(out, "needs 65 positions (prompt 3 + max_new_tokens 60 + depth 2)");
    expect_in(out, "expected at most 64, the YaRN length");

    snprintf(args, sizeof args, "generate --model %s/model --prompt-ids 1 --threads 65536", tmp);
    assert_int_equal(run_cli(args, out, sizeof out, true), 2);
    expect_in(out, "--threads");

    snprintf(args, sizeof args, "generate --model %s/tiny --prompt 'hi' -n 2", tmp);
    assert_int_equal(run_cli(args, out, sizeof out, true), 1);
    expect_in(out, "the tokenizer has 256 ids but");
    expect_in(out, "vocab_size 64");
}

/* The config's vocabulary is larger than the tokenizer's: ids without text are
 * shown and counted, never printed as nothing. */
static void test_generate_textless_ids(void **state)
{
    (void)state;
    char args[1024], out[8192];
    snprintf(args, sizeof args, "generate --model %s/tiny-small-tok --prompt '!#' -n 24", tmp);
    assert_int_equal(run_cli(args, out, sizeof out, true), 0);
    expect_in(out, "[id ");
    expect_in(out, "generated ids have no text in the tokenizer (it has 32 ids");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_positions),
        cmocka_unit_test(test_runner_skips_long_prompts),
        cmocka_unit_test(test_runner_huge_max_new_tokens),
        cmocka_unit_test(test_decode_rejects_bad_requests),
        cmocka_unit_test(test_threads_and_name),
        cmocka_unit_test(test_generate_refuses),
        cmocka_unit_test(test_generate_textless_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
