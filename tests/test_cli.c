/*
 * test_cli.c - the mtpbench executable as a user meets it: exit codes and
 * messages of `inspect` and `generate` on good and bad model directories.
 * Runs build/mtpbench (found beside this test executable) through popen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char mtpbench[1024];

/* Run `mtpbench ARGS`, capture up to CAP bytes of its output (stdout and
 * stderr, or stdout alone); returns the exit code. */
static int run_cli_streams(const char *args, char *out, size_t cap, bool with_stderr)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s", mtpbench, args, with_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_cli(const char *args, char *out, size_t cap)
{
    return run_cli_streams(args, out, cap, true);
}

static void test_inspect_fixture(void **state)
{
    char out[16384];
    int rc = run_cli("inspect --no-bandwidth " MTP_SOURCE_DIR "/tests/fixtures/v3-bf16", out,
                     sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "MTP module 1"));
    assert_non_null(strstr(out, "decode reads per token"));
    assert_null(strstr(out, "triad")); /* --no-bandwidth measures nothing */
    assert_non_null(strstr(out, "own embedding")); /* v3-bf16's modules carry their own copies */
    assert_non_null(strstr(out, "present but unused: 0"));
}

static void test_inspect_missing_dir(void **state)
{
    char out[4096];
    int rc = run_cli("inspect /nonexistent/model-dir", out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "/nonexistent/model-dir"));
}

/* A copy of a fixture whose safetensors file is cut in half. */
static void test_inspect_truncated_checkpoint(void **state)
{
    char dir[] = "/tmp/mtp-cli-XXXXXX", cmd[2048], out[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "cp %s/tests/fixtures/v3-f32/config.json %s/ && "
             "head -c 100000 %s/tests/fixtures/v3-f32/model.safetensors > %s/model.safetensors",
             MTP_SOURCE_DIR, dir, MTP_SOURCE_DIR, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "inspect %s", dir);
    int rc = run_cli(cmd, out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "model.safetensors"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_generate_ids(void **state)
{
    char out[4096];
    int rc = run_cli_streams("generate --model " MTP_SOURCE_DIR
                             "/tests/fixtures/v3-f32 --prompt-ids 5,6,7 -n 6 --threads 1",
                             out, sizeof out, false);
    assert_int_equal(rc, 0);
    int commas = 0;
    for (const char *p = out; *p && *p != '\n'; p++)
        commas += *p == ',';
    assert_int_equal(commas, 5); /* six ids on the first line */
}

/* generate --tree: a tree decoder runs and reports its verified tokens; bad
 * shapes are usage errors naming the reason; a tree deeper than the
 * fixture's 2 modules fails for exact drafting. */
static void test_generate_tree(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run_cli("generate --model " MTP_SOURCE_DIR "/tests/fixtures/v3-f32"
                             " --prompt-ids 5,6,7 -n 8 --tree widths:2,2 --threads 1", out,
                             sizeof out), 0);
    assert_non_null(strstr(out, "tokens verified per step"));
    assert_int_equal(run_cli("generate --model x --prompt-ids 1 --tree widths:2,0", out, sizeof out),
                     2);
    assert_non_null(strstr(out, "--tree"));
    assert_non_null(strstr(out, "must be >= 1"));
    assert_int_equal(run_cli("generate --model " MTP_SOURCE_DIR "/tests/fixtures/v3-f32"
                             " --prompt-ids 5,6,7 -n 8 --tree widths:2,2,2 --threads 1", out,
                             sizeof out), 1);
    assert_non_null(strstr(out, "exact tree drafting needs depth <= the model's 2"));
}

static void test_usage_errors(void **state)
{
    char out[4096];
    assert_int_equal(run_cli("generate --model x --prompt-ids 1,a", out, sizeof out), 2);
    assert_non_null(strstr(out, "--prompt-ids"));
    assert_int_equal(run_cli("no-such-command", out, sizeof out), 2);
    assert_int_equal(run_cli("generate --model x --prompt-ids 1 -n -3", out, sizeof out), 2);
}

/* A checkpoint saved by transformers (MTP announced, absent): inspect and
 * baseline work and say so; MTP decoding fails naming the reason. The wiring
 * options reach the decoder and are printed resolved. */
static void test_transformers_checkpoint_and_wiring(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run_cli("inspect " MTP_SOURCE_DIR "/tests/fixtures/hf-v3-default", out,
                             sizeof out), 0);
    assert_non_null(strstr(out, "announces 1 (num_nextn_predict_layers)"));
    assert_non_null(strstr(out, "mtpbench: note:")); /* stderr too */
    assert_int_equal(run_cli("generate --model " MTP_SOURCE_DIR "/tests/fixtures/hf-v3-default"
                             " --prompt-ids 5,6,7 -n 4 --threads 1", out, sizeof out), 0);
    assert_int_equal(run_cli("generate --model " MTP_SOURCE_DIR "/tests/fixtures/hf-v3-default"
                             " --prompt-ids 5,6,7 -n 4 --mtp 1 --threads 1", out, sizeof out), 1);
    assert_non_null(strstr(out, "save_pretrained"));
    assert_int_equal(run_cli("generate --model " MTP_SOURCE_DIR "/tests/fixtures/v3-f32"
                             " --prompt-ids 5,6,7 -n 6 --mtp 2 --drafting chain --threads 1"
                             " --draft-hidden before_shared_head_norm --position0-embedding zeroed",
                             out, sizeof out), 0);
    assert_non_null(strstr(out, "before_shared_head_norm,zeroed,previous_module"));
    assert_int_equal(run_cli("generate --model x --prompt-ids 1 --module-hidden sideways", out,
                             sizeof out), 2);
    assert_non_null(strstr(out, "--module-hidden"));
    assert_non_null(strstr(out, "main_model"));
}

static int find_binary(void **state)
{
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    snprintf(mtpbench, sizeof mtpbench, "%s/mtpbench", dirname(self));
    return access(mtpbench, X_OK) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect_fixture),     cmocka_unit_test(test_inspect_missing_dir),
        cmocka_unit_test(test_inspect_truncated_checkpoint), cmocka_unit_test(test_generate_ids),
        cmocka_unit_test(test_generate_tree),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_transformers_checkpoint_and_wiring),
    };
    return cmocka_run_group_tests(tests, find_binary, NULL);
}
