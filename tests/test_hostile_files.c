/*
 * test_hostile_files.c - files a hostile or careless user hands over (issue
 * 10, cases 1, 4 and 7):
 *   - a tokenizer.json whose Split regex is \C (it can cut a UTF-8 character)
 *     is refused at load, naming the file and the pattern;
 *   - a FIFO as model.safetensors, a shard, config.json, tokenizer.json, a
 *     dataset or a spec fails at once naming it (an alarm turns a hang into a
 *     failure of this test);
 *   - a symlink loop as model.safetensors or as the index, and a config.json
 *     that is a directory, say what they are;
 *   - (issue 28, case 13) a shard named a..safetensors is inside the model
 *     directory and loads; a ".." path component is still refused.
 *
 *   ctest --test-dir build -R hostile
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>  /* defines: json_load_file */
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: free, system */
#include <string.h>   /* defines: strstr */
#include <sys/stat.h> /* defines: mkfifo, mkdir */
#include <unistd.h>   /* defines: alarm, symlink, unlink */

#include "engine/config.h"
#include "core/error.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "engine/tokenizer.h"
#include "experiments/dataset.h"
#include "experiments/spec.h"
#include "tests/support/test_files.h"
#include "tests/support/tiny_checkpoint.h"

#define TINY_TOKENIZER MTP_SOURCE_DIR "/tests/fixtures/tokenizer/tiny-tokenizer.json"

/* Each test gets a fresh tiny model directory; the alarm bounds a hang. */
static int setup(void **state)
{
    char *dir = tiny_make_tmpdir();
    struct tiny_opts o;
    tiny_opts_default(&o);
    if (!dir || tiny_checkpoint_write(dir, &o))
        return -1;
    *state = dir;
    alarm(30);
    return 0;
}

static int teardown(void **state)
{
    alarm(0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
    free(*state);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *buf, size_t cap, void **state, const char *rel)
{
    snprintf(buf, cap, "%s/%s", (char *)*state, rel);
}

static void expect_in_message(const char *part)
{
    if (!strstr(mtp_error_message(), part))
        fail_msg("message '%s' lacks '%s'", mtp_error_message(), part);
}

/* Replace DIR/REL by a FIFO (nobody ever writes to it). */
static void make_fifo(void **state, const char *rel, char *path, size_t cap)
{
    path_in(path, cap, state, rel);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
}

/* ---- case 1: the hostile regex ------------------------------------------------------------ */

static void test_tokenizer_backslash_c(void **state)
{
    static const char *const patterns[] = {"\\C", "a\\C+b", "(?:\\C)"};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        json_error_t jerr;
        json_t *root = json_load_file(TINY_TOKENIZER, 0, &jerr);
        assert_non_null(root);
        json_t *list = json_object_get(json_object_get(root, "pre_tokenizer"), "pretokenizers");
        json_t *pat = json_object_get(json_array_get(list, 2), "pattern");
        json_object_set_new(pat, "Regex", json_string(patterns[i]));
        char path[512];
        path_in(path, sizeof path, state, "tokenizer.json");
        assert_int_equal(json_dump_file(root, path, 0), 0);
        json_decref(root);
        struct mtp_tokenizer *tok = NULL;
        mtp_error_clear();
        if (mtp_tokenizer_load(path, &tok) == MTP_OK) {
            /* What used to happen: a non-ASCII prompt then cut characters. */
            int32_t *ids = NULL;
            int n = 0;
            int rc = mtp_tokenizer_encode(tok, "caf\xc3\xa9 na\xc3\xafve", 12, false, &ids, &n);
            free(ids);
            mtp_tokenizer_free(tok);
            fail_msg("pattern '%s' was accepted (encode returned %d)", patterns[i], rc);
        }
        expect_in_message(path);
        expect_in_message("pretokenizers[2].pattern");
        expect_in_message(patterns[i]);
    }
}

/* ---- case 4: FIFOs ----------------------------------------------------------------------- */

static void test_fifo_checkpoint(void **state)
{
    char path[512];
    make_fifo(state, "model.safetensors", path, sizeof path);
    struct mtp_model *m = NULL;
    assert_int_equal(mtp_model_load(*state, &m), MTP_ERR);
    expect_in_message(path);
    expect_in_message("expected a regular file, found a FIFO");
}

static void test_fifo_shard(void **state)
{
    char path[512];
    path_in(path, sizeof path, state, "model.safetensors");
    unlink(path);
    test_write_file(*state, "model.safetensors.index.json",
                    "{\"weight_map\": {\"model.norm.weight\":"
                    " \"model-00001-of-00001.safetensors\"}}");
    make_fifo(state, "model-00001-of-00001.safetensors", path, sizeof path);
    struct mtp_checkpoint *ck = NULL;
    assert_int_equal(mtp_checkpoint_open_dir(*state, &ck), MTP_ERR);
    expect_in_message(path);
    expect_in_message("found a FIFO");
}

static void test_fifo_config_tokenizer(void **state)
{
    char path[512];
    make_fifo(state, "config.json", path, sizeof path);
    struct mtp_config cfg;
    assert_int_equal(mtp_config_load(path, &cfg), MTP_ERR);
    expect_in_message(path);
    expect_in_message("found a FIFO");

    make_fifo(state, "tokenizer.json", path, sizeof path);
    struct mtp_tokenizer *tok = NULL;
    assert_int_equal(mtp_tokenizer_load(path, &tok), MTP_ERR);
    expect_in_message(path);
    expect_in_message("found a FIFO");
}

static void test_fifo_dataset_and_spec(void **state)
{
    char data[512], spec_path[512], text[1024];
    make_fifo(state, "prompts.jsonl", data, sizeof data);
    struct mtp_dataset ds;
    assert_int_equal(mtp_dataset_load(data, 0, &ds), MTP_ERR);
    expect_in_message(data);
    expect_in_message("found a FIFO");
    mtp_dataset_free(&ds);

    snprintf(text, sizeof text,
             "{\"model\": \".\", \"datasets\": [\"prompts.jsonl\"], \"max_new_tokens\": 4,"
             " \"decoders\": [{\"type\": \"baseline\"}], \"output_dir\": \"out\"}");
    test_write_file(*state, "spec.json", text);
    path_in(spec_path, sizeof spec_path, state, "spec.json");
    struct mtp_spec spec;
    assert_int_equal(mtp_spec_load(spec_path, &spec), MTP_ERR);
    expect_in_message("datasets[0]");
    expect_in_message("found a FIFO");
    mtp_spec_free(&spec);

    make_fifo(state, "spec.json", spec_path, sizeof spec_path);
    assert_int_equal(mtp_spec_load(spec_path, &spec), MTP_ERR);
    expect_in_message(spec_path);
    expect_in_message("found a FIFO");
    mtp_spec_free(&spec);
}

/* ---- case 7: misleading messages --------------------------------------------------------- */

static void test_symlink_loop_checkpoint(void **state)
{
    char path[512];
    path_in(path, sizeof path, state, "model.safetensors");
    unlink(path);
    assert_int_equal(symlink("model.safetensors", path), 0);
    struct mtp_checkpoint *ck = NULL;
    assert_int_equal(mtp_checkpoint_open_dir(*state, &ck), MTP_ERR);
    expect_in_message(path);
    expect_in_message("symlink loop");
    assert_null(strstr(mtp_error_message(), "found neither"));
}

/* A valid model.safetensors beside an index that loops: an error, not a fallback. */
static void test_symlink_loop_index(void **state)
{
    char path[512];
    path_in(path, sizeof path, state, "model.safetensors.index.json");
    assert_int_equal(symlink("model.safetensors.index.json", path), 0);
    struct mtp_checkpoint *ck = NULL;
    int rc = mtp_checkpoint_open_dir(*state, &ck);
    mtp_checkpoint_free(ck);
    assert_int_equal(rc, MTP_ERR);
    expect_in_message(path);
    expect_in_message("symlink loop");
}

static void test_config_is_directory(void **state)
{
    char path[512];
    path_in(path, sizeof path, state, "config.json");
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    struct mtp_model *m = NULL;
    assert_int_equal(mtp_model_load(*state, &m), MTP_ERR);
    expect_in_message(path);
    expect_in_message("expected a regular file, found a directory");
    assert_null(strstr(mtp_error_message(), "'[' or '{' expected"));
}

/* ---- issue 28, case 13: ".." as a component, not a substring ---------------------------- */

static void write_index(void **state, const char *shard)
{
    char text[512];
    snprintf(text, sizeof text, "{\"weight_map\": {\"x\": \"%s\"}}", shard);
    test_write_file(*state, "model.safetensors.index.json", text);
}

static void test_shard_name_with_dots(void **state)
{
    char path[512];
    path_in(path, sizeof path, state, "model.safetensors");
    unlink(path);
    const float x[2] = {1, 2};
    const struct tiny_st_tensor t = {"x", "F32", 1, {2}, x, sizeof x};
    path_in(path, sizeof path, state, "a..safetensors");
    assert_int_equal(tiny_st_write(path, &t, 1, false), 0);
    write_index(state, "a..safetensors");
    struct mtp_checkpoint *ck = NULL;
    if (mtp_checkpoint_open_dir(*state, &ck))
        fail_msg("a..safetensors refused: %s", mtp_error_message());
    assert_non_null(mtp_checkpoint_find(ck, "x"));
    mtp_checkpoint_free(ck);

    const char *outside[] = {"../a..safetensors", "sub/../../a..safetensors", "..", "sub/..",
                             "/a..safetensors"};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        write_index(state, outside[i]);
        ck = NULL;
        mtp_error_clear();
        if (mtp_checkpoint_open_dir(*state, &ck) != MTP_ERR)
            fail_msg("shard name '%s' accepted", outside[i]);
        expect_in_message("inside the model directory");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tokenizer_backslash_c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_config_tokenizer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_dataset_and_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_loop_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_loop_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_is_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_name_with_dots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
