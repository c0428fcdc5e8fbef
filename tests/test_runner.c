/*
 * test_runner.c - `mtpbench run` end to end on a fixture model
 * (tests/fixtures/v3-f32) with a byte-level tokenizer written by the test
 * (256 ids = the fixture's vocabulary) and a tiny dataset:
 *   - a small spec runs and writes a log whose records read back, with the
 *     expected request count, a finished summary, and greedy MTP tokens equal
 *     to the baseline's;
 *   - a run interrupted mid-way (a request limit, then a cut-off tail as a
 *     kill would leave) and resumed twice holds exactly the records of an
 *     uninterrupted run: same request keys, same output tokens;
 *   - an existing log without --resume, and a depth the model lacks, fail
 *     before any work;
 *   - random streams are keyed by what a request is: a spec with a decoder, a
 *     sampling setting and a dataset inserted before the others gives every
 *     old request the same tokens (sampled ones included), and the decoder
 *     order is rotated per prompt (not always the baseline first).
 *
 *   ctest --test-dir build -R runner
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "experiments/log.h"
#include "experiments/runner.h"
#include "tests/support/test_files.h"

static char tmp[256];

static void link_fixture(const char *name)
{
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/tests/fixtures/v3-f32/%s", MTP_SOURCE_DIR, name);
    snprintf(to, sizeof to, "%s/model/%s", tmp, name);
    assert_int_equal(symlink(from, to), 0);
}

static const char *spec_text =
    "{\"name\": \"%s\", \"model\": \"model\", \"datasets\": [\"data/prose.jsonl\"],"
    " \"threads\": 1, \"max_new_tokens\": 10, \"warmup\": 1, \"repeats\": 2, \"seed\": 7,"
    " \"sampling\": [{\"temperature\": 0}, {\"temperature\": 1, \"top_k\": 20}],"
    " \"decoders\": [{\"type\": \"baseline\"},"
    " {\"type\": \"mtp\", \"depth\": %d, \"drafting\": \"exact\"},"
    " {\"type\": \"mtp\", \"depth\": 3, \"drafting\": \"chain\"}],"
    " \"output_dir\": \"out\"}";

enum { N_REQUESTS = 3 * 2 * 3 * 2 }; /* decoders x sampling x prompts x repeats */

/* small.json with a decoder, a sampling setting and a dataset inserted first:
 * every list position of the old requests shifts. */
static const char *grown_text =
    "{\"name\": \"small\", \"model\": \"model\","
    " \"datasets\": [\"data/extra.jsonl\", \"data/prose.jsonl\"],"
    " \"threads\": 1, \"max_new_tokens\": 10, \"warmup\": 1, \"repeats\": 2, \"seed\": 7,"
    " \"sampling\": [{\"temperature\": 0.7}, {\"temperature\": 0},"
    " {\"temperature\": 1, \"top_k\": 20}],"
    " \"decoders\": [{\"type\": \"mtp\", \"depth\": 1, \"drafting\": \"chain\"},"
    " {\"type\": \"baseline\"},"
    " {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\"},"
    " {\"type\": \"mtp\", \"depth\": 3, \"drafting\": \"chain\"}],"
    " \"output_dir\": \"out\"}";

static int setup(void **state)
{
    (void)state;
    char probe[512];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/tests/fixtures/v3-f32/model.safetensors", MTP_SOURCE_DIR);
    if (stat(probe, &st) != 0)
        return -1;
    snprintf(tmp, sizeof tmp, "/tmp/mtp_runner_XXXXXX");
    assert_non_null(mkdtemp(tmp));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    mkdir(dir, 0777);
    snprintf(dir, sizeof dir, "%s/data", tmp);
    mkdir(dir, 0777);
    link_fixture("config.json");
    link_fixture("model.safetensors");
    test_write_byte_tokenizer(tmp, "model/tokenizer.json");
    test_write_file(tmp, "data/prose.jsonl",
               "{\"question_id\": 1, \"category\": \"greeting\", \"turns\": [\"Hello world\"]}\n"
               "{\"question_id\": \"q2\", \"turns\": [\"The quick brown fox\"]}\n"
               "{\"question_id\": 3, \"category\": \"code\", \"turns\": [\"int main(void)\"]}\n");
    char spec[1024];
    snprintf(spec, sizeof spec, spec_text, "small", 2);
    test_write_file(tmp, "small.json", spec);
    snprintf(spec, sizeof spec, spec_text, "deep", 3);
    test_write_file(tmp, "deep.json", spec);
    test_write_file(tmp, "data/extra.jsonl",
                    "{\"question_id\": 9, \"turns\": [\"Another prompt\"]}\n");
    test_write_file(tmp, "grown.json", grown_text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* What a log holds: request keys with their tokens, and the summary. */
struct entry {
    char key[256];
    int mode, depth, sampling, n_output;
    int32_t out[64];
};
struct log_view {
    int n;
    struct entry e[4 * N_REQUESTS];
    bool has_summary, finished;
};

static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static void read_log(const char *path, struct log_view *v)
{
    memset(v, 0, sizeof *v);
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        fail_msg("%s", mtp_error_message());
    const msgpack_object *o;
    char type[32];
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o) {
        mtp_log_record_type(o, type, sizeof type);
        if (!strcmp(type, "summary")) {
            v->has_summary = true;
            v->finished = mtp_log_map_get(o, "finished")->via.boolean;
        }
        if (strcmp(type, "request"))
            continue;
        struct mtp_request_record r;
        assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
        assert_true(v->n < 4 * N_REQUESTS && r.n_output <= 64);
        struct entry *e = &v->e[v->n++];
        snprintf(e->key, sizeof e->key, "%s|%d|%s|%s|%d", r.decoder, r.sampling_index, r.dataset,
                 r.prompt_id, r.repeat);
        e->mode = r.mode;
        e->depth = r.depth;
        e->sampling = r.sampling_index;
        e->n_output = r.n_output;
        memcpy(e->out, r.output_tokens, sizeof(int32_t) * r.n_output);
        mtp_log_request_free(&r);
    }
    assert_false(mtp_log_reader_partial(rd, NULL));
    mtp_log_reader_close(rd);
    qsort(v->e, (size_t)v->n, sizeof v->e[0], by_key);
}

static int run_spec(const char *spec, const char *out, bool resume, int max_requests)
{
    char sp[512], od[512];
    snprintf(sp, sizeof sp, "%s/%s", tmp, spec);
    snprintf(od, sizeof od, "%s/%s", tmp, out);
    FILE *table = fopen("/dev/null", "w");
    struct mtp_runner_options o = {.resume = resume, .quiet = true, .out_dir = od,
                                   .max_requests = max_requests, .out = table};
    int rc = mtp_runner_run(sp, &o);
    fclose(table);
    return rc;
}

static struct log_view full; /* the uninterrupted run, shared by the tests */

static void test_run_end_to_end(void **state)
{
    (void)state;
    if (run_spec("small.json", "out-a", false, 0))
        fail_msg("%s", mtp_error_message());
    char path[512];
    snprintf(path, sizeof path, "%s/out-a/small.msgpack", tmp);
    read_log(path, &full);
    assert_int_equal(full.n, N_REQUESTS);
    assert_true(full.has_summary && full.finished);
    for (int i = 1; i < full.n; i++) /* each key once */
        assert_true(strcmp(full.e[i - 1].key, full.e[i].key) != 0);
    /* Greedy: every MTP decoder's tokens equal the baseline's for the same prompt. */
    for (int i = 0; i < full.n; i++) {
        const struct entry *e = &full.e[i];
        assert_true(e->n_output >= 1 && e->n_output <= 10);
        if (e->sampling != 0 || e->mode == MTP_SPEC_DECODER_BASELINE)
            continue;
        const char *rest = strchr(e->key, '|');
        char want[256];
        snprintf(want, sizeof want, "baseline%s", rest);
        const struct entry *b = NULL;
        for (int j = 0; j < full.n && !b; j++)
            if (!strcmp(full.e[j].key, want))
                b = &full.e[j];
        assert_non_null(b);
        assert_int_equal(b->n_output, e->n_output);
        assert_memory_equal(b->out, e->out, sizeof(int32_t) * e->n_output);
    }
    /* The same log again without --resume is refused; with it, nothing to do. */
    assert_int_equal(run_spec("small.json", "out-a", false, 0), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "--resume"));
    assert_int_equal(run_spec("small.json", "out-a", true, 0), MTP_OK);
    struct log_view again;
    read_log(path, &again);
    assert_int_equal(again.n, N_REQUESTS);
}

/* Cut the last LOSE bytes off PATH, as a kill during a write would leave it. */
static void cut_tail(const char *path, long lose)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - lose), 0);
}

static void test_interrupted_and_resumed(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/out-b/small.msgpack", tmp);
    struct log_view v;
    assert_int_equal(run_spec("small.json", "out-b", false, 7), MTP_OK);
    read_log(path, &v);
    assert_int_equal(v.n, 7);
    assert_true(v.has_summary && !v.finished);
    /* A kill in the middle of writing the summary leaves a partial record. */
    cut_tail(path, 5);
    assert_int_equal(run_spec("small.json", "out-b", true, 10), MTP_OK);
    read_log(path, &v);
    assert_int_equal(v.n, 17);
    assert_int_equal(run_spec("small.json", "out-b", true, 0), MTP_OK);
    read_log(path, &v);
    assert_true(v.finished);
    assert_int_equal(v.n, full.n);
    for (int i = 0; i < v.n; i++) {
        assert_string_equal(v.e[i].key, full.e[i].key);
        assert_int_equal(v.e[i].n_output, full.e[i].n_output);
        assert_memory_equal(v.e[i].out, full.e[i].out, sizeof(int32_t) * v.e[i].n_output);
    }
}

static void test_depth_beyond_model_fails_first(void **state)
{
    (void)state;
    assert_int_equal(run_spec("deep.json", "out-c", false, 0), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "decoders[1].depth"));
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/out-c", tmp);
    assert_int_not_equal(stat(path, &st), 0); /* nothing was created */
}

/* The decoder of the first request logged for each (sampling, prompt, repeat). */
static int first_decoders(const char *path, char names[][64], int cap)
{
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        fail_msg("%s", mtp_error_message());
    const msgpack_object *o;
    char type[32], last[256] = "";
    int n = 0;
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o && n < cap) {
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "request"))
            continue;
        struct mtp_request_record r;
        assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
        char group[256];
        snprintf(group, sizeof group, "%d|%s|%s|%d", r.sampling_index, r.dataset, r.prompt_id,
                 r.repeat);
        if (strcmp(group, last)) {
            snprintf(names[n++], 64, "%s", r.decoder);
            snprintf(last, sizeof last, "%s", group);
        }
        mtp_log_request_free(&r);
    }
    mtp_log_reader_close(rd);
    return n;
}

static void test_streams_stable_and_order_rotated(void **state)
{
    (void)state;
    if (run_spec("grown.json", "out-d", false, 0))
        fail_msg("%s", mtp_error_message());
    char path[512];
    snprintf(path, sizeof path, "%s/out-d/small.msgpack", tmp);
    static struct log_view grown;
    read_log(path, &grown);
    assert_int_equal(grown.n, 4 * 3 * 4 * 2);
    int sampled = 0;
    for (int i = 0; i < full.n; i++) {
        const struct entry *e = &full.e[i];
        char dec[64], ds[64], pid[64], key[256];
        int samp, rep;
        assert_int_equal(sscanf(e->key, "%63[^|]|%d|%63[^|]|%63[^|]|%d", dec, &samp, ds, pid,
                                &rep), 5);
        snprintf(key, sizeof key, "%s|%d|%s|%s|%d", dec, samp + 1, ds, pid, rep);
        const struct entry *g = NULL;
        for (int j = 0; j < grown.n && !g; j++)
            if (!strcmp(grown.e[j].key, key))
                g = &grown.e[j];
        if (!g)
            fail_msg("request %s of small.json is missing from grown.json's log", key);
        if (g->n_output != e->n_output ||
            memcmp(g->out, e->out, sizeof(int32_t) * (size_t)e->n_output))
            fail_msg("request %s: tokens changed when other decoders, settings and prompts "
                     "were added (streams must not depend on list positions)", e->key);
        sampled += samp == 1;
    }
    assert_true(sampled > 0);
    char names[64][64];
    int n = first_decoders(path, names, 64), differ = 0;
    for (int i = 1; i < n; i++)
        differ += strcmp(names[i], names[0]) != 0;
    assert_true(n >= 8 && differ > 0); /* not always the same decoder first */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_end_to_end),
        cmocka_unit_test(test_interrupted_and_resumed),
        cmocka_unit_test(test_depth_beyond_model_fails_first),
        cmocka_unit_test(test_streams_stable_and_order_rotated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
