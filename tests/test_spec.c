/*
 * test_spec.c - experiment spec parsing and validation (experiments/spec.h):
 * a spec using every field parses to the expected struct; each kind of
 * mistake (unknown key, wrong type, missing key, missing dataset, bad drafting,
 * depth < 1, ...) fails with a message naming the key path and the spec file;
 * the model check rejects exact depth > D and accepts chain depth > D.
 *
 *   ctest --test-dir build -R spec
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>    /* defines: fopen, snprintf */
#include <stdlib.h>   /* defines: mkdtemp, free */
#include <string.h>   /* defines: strstr */
#include <sys/stat.h> /* defines: mkdir */
#include <unistd.h>   /* defines: unlink, rmdir */

#include "core/error.h"
#include "engine/decode.h" /* defines: MTP_DECODE_MAX_BATCH */
#include "experiments/spec.h"

static char tmp_dir[64];

static void write_text(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_test_spec_XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    char path[256];
    snprintf(path, sizeof path, "%s/model", tmp_dir);
    mkdir(path, 0755);
    write_text("code.jsonl", "{\"question_id\": 1, \"category\": \"code\", \"turns\": [\"x\"]}\n");
    write_text("prose.jsonl", "{\"question_id\": 1, \"category\": \"prose\", \"turns\": [\"y\"]}\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"code.jsonl", "prose.jsonl", "spec.json", NULL};
    char path[256];
    for (int i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp_dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/model", tmp_dir);
    rmdir(path);
    rmdir(tmp_dir);
    return 0;
}

/* Write TEXT as spec.json in the temp dir and load it. */
static int load_text(const char *text, struct mtp_spec *spec)
{
    write_text("spec.json", text);
    char path[256];
    snprintf(path, sizeof path, "%s/spec.json", tmp_dir);
    mtp_error_clear();
    return mtp_spec_load(path, spec);
}

static const char FULL_SPEC[] =
    "{\n"
    "  \"name\": \"depth-sweep\",\n"
    "  \"description\": \"every field\",\n"
    "  \"model\": \"model\",\n"
    "  \"backend\": \"cuda\",\n"
    "  \"threads\": 8,\n"
    "  \"datasets\": [\"code.jsonl\", \"prose.jsonl\"],\n"
    "  \"max_prompts\": 20,\n"
    "  \"max_prompt_tokens\": 512,\n"
    "  \"max_new_tokens\": 128,\n"
    "  \"warmup\": 2,\n"
    "  \"repeats\": 3,\n"
    "  \"seed\": 1234567890123,\n"
    "  \"sampling\": [{\"temperature\": 0}, {\"temperature\": 0.7, \"top_p\": 0.9, \"top_k\": 50}],\n"
    "  \"decoders\": [\n"
    "    {\"type\": \"baseline\"},\n"
    "    {\"type\": \"mtp\", \"depth\": 3, \"drafting\": \"exact\"},\n"
    "    {\"name\": \"chain5\", \"type\": \"mtp\", \"depth\": 5, \"drafting\": \"chain\", \"module\": 1},\n"
    "    {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\", \"module\": 2}\n"
    "  ],\n"
    "  \"output_dir\": \"runs/sweep\"\n"
    "}\n";

static void test_full_spec(void **state)
{
    (void)state;
    struct mtp_spec s;
    assert_int_equal(load_text(FULL_SPEC, &s), MTP_OK);
    char want[256];
    assert_string_equal(s.name, "depth-sweep");
    assert_string_equal(s.description, "every field");
    snprintf(want, sizeof want, "%s/model", tmp_dir);
    assert_string_equal(s.model_dir, want);
    assert_int_equal(s.backend, MTP_SPEC_BACKEND_CUDA);
    assert_int_equal(s.threads, 8);
    assert_int_equal(s.n_datasets, 2);
    snprintf(want, sizeof want, "%s/prose.jsonl", tmp_dir);
    assert_string_equal(s.datasets[1], want);
    assert_string_equal(s.dataset_names[0], "code");
    assert_string_equal(s.dataset_names[1], "prose");
    assert_int_equal(s.max_prompts, 20);
    assert_int_equal(s.max_prompt_tokens, 512);
    assert_int_equal(s.max_new_tokens, 128);
    assert_int_equal(s.warmup, 2);
    assert_int_equal(s.repeats, 3);
    assert_true(s.seed == 1234567890123ull);
    assert_int_equal(s.n_sampling, 2);
    assert_true(s.sampling[0].temperature == 0 && s.sampling[0].top_p == 1 &&
                s.sampling[0].top_k == 0);
    assert_true(s.sampling[1].temperature == 0.7 && s.sampling[1].top_p == 0.9 &&
                s.sampling[1].top_k == 50);
    assert_int_equal(s.n_decoders, 4);
    assert_string_equal(s.decoders[0].name, "baseline");
    assert_int_equal(s.decoders[0].type, MTP_SPEC_DECODER_BASELINE);
    assert_int_equal(s.decoders[0].depth, 0);
    assert_int_equal(s.decoders[0].drafting, MTP_SPEC_DRAFTING_NONE);
    assert_string_equal(s.decoders[1].name, "mtp-exact-k3");
    assert_int_equal(s.decoders[1].drafting, MTP_SPEC_DRAFTING_EXACT);
    assert_int_equal(s.decoders[1].depth, 3);
    assert_string_equal(s.decoders[2].name, "chain5");
    assert_int_equal(s.decoders[2].drafting, MTP_SPEC_DRAFTING_CHAIN);
    assert_int_equal(s.decoders[2].module, 1);
    assert_string_equal(s.decoders[3].name, "mtp-chain-k2-m2");
    assert_int_equal(s.decoders[3].module, 2);
    snprintf(want, sizeof want, "%s/runs/sweep", tmp_dir);
    assert_string_equal(s.output_dir, want);
    assert_non_null(strstr(s.json_text, "\"max_new_tokens\":128"));
    mtp_spec_free(&s);
}

static void test_defaults(void **state)
{
    (void)state;
    struct mtp_spec s;
    assert_int_equal(load_text("{\"model\": \"model\", \"datasets\": [\"code.jsonl\"], "
                               "\"max_new_tokens\": 4, \"sampling\": [{\"temperature\": 1}], "
                               "\"decoders\": [{\"type\": \"baseline\"}], \"output_dir\": \"/tmp/o\"}",
                               &s),
                     MTP_OK);
    assert_string_equal(s.name, "spec");
    assert_int_equal(s.backend, MTP_SPEC_BACKEND_CPU);
    assert_int_equal(s.threads, 0);
    assert_int_equal(s.max_prompts, 0);
    assert_int_equal(s.repeats, 1);
    assert_int_equal(s.warmup, 0);
    assert_true(s.seed == 0);
    assert_int_equal(s.n_batch_sizes, 1);
    assert_int_equal(s.batch_sizes[0], 1);
    assert_string_equal(s.output_dir, "/tmp/o");
    mtp_spec_free(&s);
}

/* batch_size: one value, or a list that becomes a sweep axis in spec order. */
static void test_batch_sizes(void **state)
{
    (void)state;
    struct mtp_spec s;
    assert_int_equal(load_text("{\"model\": \"model\", \"datasets\": [\"code.jsonl\"], "
                               "\"max_new_tokens\": 4, \"sampling\": [{\"temperature\": 0}], "
                               "\"batch_size\": [8, 1, 256], \"decoders\": [{\"type\": "
                               "\"baseline\"}], \"output_dir\": \"/tmp/o\"}", &s),
                     MTP_OK);
    assert_int_equal(s.n_batch_sizes, 3);
    assert_int_equal(s.batch_sizes[0], 8);
    assert_int_equal(s.batch_sizes[1], 1);
    assert_int_equal(s.batch_sizes[2], 256);
    assert_int_equal(mtp_spec_max_batch_size(&s), 256);
    assert_int_equal(MTP_SPEC_MAX_BATCH, MTP_DECODE_MAX_BATCH);
    mtp_spec_free(&s);
    assert_int_equal(load_text("{\"model\": \"model\", \"datasets\": [\"code.jsonl\"], "
                               "\"max_new_tokens\": 4, \"sampling\": [{\"temperature\": 0}], "
                               "\"batch_size\": 4, \"decoders\": [{\"type\": \"mtp\", "
                               "\"depth\": 2, \"drafting\": \"chain\"}], \"output_dir\": "
                               "\"/tmp/o\"}", &s),
                     MTP_OK);
    assert_int_equal(s.n_batch_sizes, 1);
    assert_int_equal(s.batch_sizes[0], 4);
    mtp_spec_free(&s);
}

/* One broken spec: the decoders, datasets and extra top-level text to splice
 * in, and two pieces the message must contain (besides the file name). */
struct bad_case {
    const char *what;
    const char *datasets;
    const char *decoders;
    const char *extra;
    const char *want1, *want2;
};

static const char BASELINE[] = "{\"type\": \"baseline\"}";
static const char CODE[] = "[\"code.jsonl\"]";

static const struct bad_case BAD[] = {
    {"unknown top-level key", CODE, BASELINE, ", \"max_new_tokenz\": 3", "'max_new_tokenz'", "unknown key"},
    {"unknown nested key", CODE, "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\", \"dpeth\": 1}",
     "", "'decoders[0].dpeth'", "unknown key"},
    {"wrong type", CODE,
     "{\"type\": \"baseline\"}, {\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"exact\"}, "
     "{\"type\": \"mtp\", \"depth\": \"three\", \"drafting\": \"chain\"}",
     "", "key 'decoders[2].depth': expected integer >= 1, found \"three\"", "SPEC: "},
    {"depth < 1", CODE, "{\"type\": \"mtp\", \"depth\": 0, \"drafting\": \"chain\"}", "",
     "'decoders[0].depth'", "found 0"},
    {"bad drafting", CODE, "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"greedy\"}", "",
     "'decoders[0].drafting'", "\"greedy\""},
    {"missing drafting", CODE, "{\"type\": \"mtp\", \"depth\": 2}", "", "'decoders[0].drafting'",
     "missing"},
    {"bad decoder type", CODE, "{\"type\": \"medusa\"}", "", "'decoders[0].type'", "\"medusa\""},
    {"baseline with depth", CODE, "{\"type\": \"baseline\", \"depth\": 2}", "",
     "'decoders[0].depth'", "unknown key"},
    {"module with exact", CODE, "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\", \"module\": 1}",
     "", "'decoders[0].module'", "chain"},
    {"duplicate decoder names", CODE, "{\"type\": \"baseline\"}, {\"type\": \"baseline\"}", "",
     "'decoders[1].name'", "duplicate"},
    {"missing dataset file", "[\"code.jsonl\", \"nope.jsonl\"]", BASELINE, "", "'datasets[1]'",
     "nope.jsonl"},
    {"duplicate dataset stem", "[\"code.jsonl\", \"./code.jsonl\"]", BASELINE, "",
     "'datasets[1]'", "\"code\""},
    {"empty datasets", "[]", BASELINE, "", "'datasets'", "non-empty"},
    {"negative temperature", CODE, BASELINE, "", "'sampling[0].temperature'", "found -1"},
    {"threads wrong type", CODE, BASELINE, ", \"threads\": \"all\"", "'threads'", "\"all\""},
    {"negative seed", CODE, BASELINE, ", \"seed\": -5", "'seed'", "found -5"},
    {"repeats zero", CODE, BASELINE, ", \"repeats\": 0", "'repeats'", "integer >= 1"},
    {"bad backend", CODE, BASELINE, ", \"backend\": \"tpu\"", "'backend'", "\"tpu\""},
    {"draft_vocab 0", CODE, "{\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"exact\", "
     "\"draft_vocab\": 0}", "", "'decoders[0].draft_vocab'", "found 0"},
    {"negative draft_vocab", CODE, "{\"type\": \"baseline\"}, {\"type\": \"adaptive\", "
     "\"depth\": 3, \"threshold\": 0.5, \"draft_vocab\": -8}", "", "'decoders[1].draft_vocab'",
     "found -8"},
    {"draft_vocab wrong type", CODE, "{\"type\": \"mtp\", \"depth\": 1, \"drafting\": "
     "\"chain\", \"draft_vocab\": \"1k\"}", "", "'decoders[0].draft_vocab'", "\"1k\""},
    {"baseline with draft_vocab", CODE, "{\"type\": \"baseline\", \"draft_vocab\": 512}", "",
     "'decoders[0].draft_vocab'", "unknown key"},
    {"batch_size 0", CODE, BASELINE, ", \"batch_size\": 0", "'batch_size'", "found 0"},
    {"batch_size negative", CODE, BASELINE, ", \"batch_size\": [1, -4]", "'batch_size[1]'",
     "found -4"},
    {"batch_size above the limit", CODE, BASELINE, ", \"batch_size\": 257", "'batch_size'",
     "1..256"},
    {"batch_size wrong type", CODE, BASELINE, ", \"batch_size\": \"8\"", "'batch_size'",
     "\"8\""},
    {"batch_size empty list", CODE, BASELINE, ", \"batch_size\": []", "'batch_size'",
     "non-empty"},
    {"batch_size repeated", CODE, BASELINE, ", \"batch_size\": [2, 4, 2]", "'batch_size[2]'",
     "twice"},
};

static void build_spec(char *buf, size_t cap, const struct bad_case *c, const char *sampling)
{
    snprintf(buf, cap,
             "{\"model\": \"model\", \"datasets\": %s, \"max_new_tokens\": 8, \"sampling\": [%s], "
             "\"decoders\": [%s], \"output_dir\": \"out\"%s}",
             c->datasets, sampling, c->decoders, c->extra);
}

static void expect_error(const char *text, const char *what, const char *want1, const char *want2)
{
    struct mtp_spec s;
    int rc = load_text(text, &s);
    const char *msg = mtp_error_message();
    if (rc != MTP_ERR || !strstr(msg, want1) || !strstr(msg, want2) || !strstr(msg, "spec.json"))
        fail_msg("case '%s': rc %d, message: %s", what, rc, msg);
    mtp_spec_free(&s);
}

static void test_bad_specs(void **state)
{
    (void)state;
    char text[2048];
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const char *sampling = strcmp(BAD[i].what, "negative temperature") == 0
                                   ? "{\"temperature\": -1}" : "{\"temperature\": 0}";
        build_spec(text, sizeof text, &BAD[i], sampling);
        expect_error(text, BAD[i].what, BAD[i].want1, BAD[i].want2);
    }
}

static void test_bad_sampling_and_structure(void **state)
{
    (void)state;
    struct bad_case c = {"", CODE, BASELINE, "", "", ""};
    char text[2048];
    build_spec(text, sizeof text, &c, "{\"temperature\": 0.5, \"top_p\": 0}");
    expect_error(text, "top_p 0", "'sampling[0].top_p'", "(0, 1]");
    build_spec(text, sizeof text, &c, "{\"temperature\": 0.5, \"top_p\": 1.5}");
    expect_error(text, "top_p 1.5", "'sampling[0].top_p'", "1.5");
    build_spec(text, sizeof text, &c, "{\"temperature\": 0.5, \"topk\": 3}");
    expect_error(text, "sampling typo", "'sampling[0].topk'", "unknown key");
    build_spec(text, sizeof text, &c, "{\"temperature\": 0}, {\"temperature\": 0.0}");
    expect_error(text, "duplicate sampling", "'sampling[1]'", "duplicate");
    expect_error("{\"model\": \"model\", \"datasets\": [\"code.jsonl\"], \"sampling\": "
                 "[{\"temperature\": 0}], \"decoders\": [{\"type\": \"baseline\"}], "
                 "\"output_dir\": \"o\"}",
                 "missing key", "'max_new_tokens'", "missing");
    expect_error("{\"model\": \"nomodel\", \"datasets\": [\"code.jsonl\"], \"max_new_tokens\": 1, "
                 "\"sampling\": [{\"temperature\": 0}], \"decoders\": [{\"type\": \"baseline\"}], "
                 "\"output_dir\": \"o\"}",
                 "missing model dir", "'model'", "nomodel");
    expect_error("{\"model\": \"model\",\n \"datasets\": [,]}", "bad JSON", "line 2", "invalid JSON");
    expect_error("[1, 2]", "not an object", "JSON object", "[1,2]");
    expect_error("{\"model\": \"model\", \"model\": \"model\"}", "duplicate key", "invalid JSON",
                 "duplicate");
}

static void test_missing_file(void **state)
{
    (void)state;
    struct mtp_spec s;
    assert_int_equal(mtp_spec_load("/nonexistent/spec.json", &s), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "/nonexistent/spec.json"));
    mtp_spec_free(&s);
}

static void test_check_model(void **state)
{
    (void)state;
    struct mtp_spec s;
    assert_int_equal(load_text(FULL_SPEC, &s), MTP_OK);
    /* decoders[1] is exact with depth 3: needs D >= 3; chain depth 5 never needs D >= 5. */
    assert_int_equal(mtp_spec_check_model(&s, 3), MTP_OK);
    assert_int_equal(mtp_spec_check_model(&s, 2), MTP_ERR);
    const char *msg = mtp_error_message();
    assert_non_null(strstr(msg, "'decoders[1].depth'"));
    assert_non_null(strstr(msg, "spec.json"));
    assert_non_null(strstr(msg, "found 3"));
    mtp_spec_free(&s);

    /* Chain depth beyond D passes; a chain module beyond D fails. */
    char text[1024];
    struct bad_case c = {"", CODE, "{\"type\": \"mtp\", \"depth\": 7, \"drafting\": \"chain\"}", "",
                         "", ""};
    build_spec(text, sizeof text, &c, "{\"temperature\": 0}");
    assert_int_equal(load_text(text, &s), MTP_OK);
    assert_int_equal(mtp_spec_check_model(&s, 1), MTP_OK);
    assert_int_equal(mtp_spec_check_model(&s, 0), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "'decoders[0].module'"));
    mtp_spec_free(&s);
}

/* draft_vocab: parsed per decoder, in the default name; beyond the model's
 * vocabulary or without the model's token_frequencies.bin, an error naming
 * the key or the file. */
static void test_draft_vocab(void **state)
{
    (void)state;
    char text[1024];
    struct bad_case c = {"", CODE,
                         "{\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"exact\"}, "
                         "{\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"exact\", "
                         "\"draft_vocab\": 1024}", "", "", ""};
    build_spec(text, sizeof text, &c, "{\"temperature\": 0}");
    struct mtp_spec s;
    assert_int_equal(load_text(text, &s), MTP_OK);
    assert_int_equal(s.decoders[0].draft_vocab, 0);
    assert_int_equal(s.decoders[1].draft_vocab, 1024);
    assert_string_equal(s.decoders[1].name, "mtp-exact-k1-v1024");
    assert_int_equal(mtp_spec_check_draft_vocab(&s, 1000), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "'decoders[1].draft_vocab'"));
    assert_non_null(strstr(mtp_error_message(), "found 1024"));
    /* The temp model directory has no token_frequencies.bin. */
    assert_int_equal(mtp_spec_check_draft_vocab(&s, 4096), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "model/token_frequencies.bin"));
    assert_non_null(strstr(mtp_error_message(), "spec.json"));
    mtp_spec_free(&s);
}

/* "wiring": named choices per decoder; unset fields stay default; decoders
 * differing only in wiring get distinct default names. */
static void test_wiring(void **state)
{
    (void)state;
    char text[1024];
    struct bad_case c = {"", CODE,
                         "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\"}, "
                         "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\", \"wiring\": "
                         "{\"draft_hidden\": \"before_shared_head_norm\", "
                         "\"position0_embedding\": \"zeroed\"}}",
                         "", "", ""};
    build_spec(text, sizeof text, &c, "{\"temperature\": 0}");
    struct mtp_spec s;
    if (load_text(text, &s))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(s.decoders[0].wiring.draft_hidden, MTP_WIRING_DRAFT_HIDDEN_DEFAULT);
    assert_int_equal(s.decoders[1].wiring.draft_hidden, MTP_WIRING_DRAFT_HIDDEN_BEFORE_NORM);
    assert_int_equal(s.decoders[1].wiring.position0_embedding, MTP_WIRING_POSITION0_ZEROED);
    assert_int_equal(s.decoders[1].wiring.module_hidden, MTP_WIRING_MODULE_HIDDEN_DEFAULT);
    assert_string_equal(s.decoders[0].name, "mtp-chain-k2");
    assert_string_equal(s.decoders[1].name, "mtp-chain-k2-before_shared_head_norm-zeroed");
    mtp_spec_free(&s);
    c.decoders = "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\", \"wiring\": "
                 "{\"draft_hidden\": \"pre\"}}";
    build_spec(text, sizeof text, &c, "{\"temperature\": 0}");
    expect_error(text, "bad wiring value", "'decoders[0].wiring.draft_hidden'",
                 "\"after_shared_head_norm\" or \"before_shared_head_norm\"");
    c.decoders = "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\", \"wiring\": "
                 "{\"hidden\": \"main_model\"}}";
    build_spec(text, sizeof text, &c, "{\"temperature\": 0}");
    expect_error(text, "unknown wiring key", "'decoders[0].wiring.hidden'", "unknown key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_spec),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_bad_sampling_and_structure),
        cmocka_unit_test(test_batch_sizes),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_check_model),
        cmocka_unit_test(test_wiring),
        cmocka_unit_test(test_draft_vocab),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
