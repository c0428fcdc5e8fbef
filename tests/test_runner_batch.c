/*
 * test_runner_batch.c - `mtpbench run` with batch_size as a sweep axis, on
 * models/mtp-mini and two prompts of every category in datasets/:
 *   - batch_size [1, 3]: every request at B = 3 (baseline, exact K = 2,
 *     chained K = 3, adaptive depth up to 4, a tree; greedy and T = 1) emits
 *     the tokens and acceptance of the same request at B = 1 (batch invariance
 *     through the runner, RNG keys included); each request record carries
 *     its batch size;
 *   - one "batch" record per (sampling, decoder) at B = 3, whose steps agree
 *     with the request records (sum of n_seqs = sum of the members' steps;
 *     every request of the run listed once);
 *   - a run stopped after 5 requests (inside a batch run: the requests in
 *     flight finish and are logged) and resumed holds the same requests and
 *     tokens as the uninterrupted run;
 *   - two --shard tasks together hold every request once;
 *   - batch runs of at most 4B requests alternate between the decoders;
 *   - multi-turn prompts at batch size > 1 are refused naming batch_size.
 *
 *   ctest --test-dir build -R runner_batch
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_batch.h"
#include "experiments/runner.h"
#include "tests/support/test_files.h"

static char tmp[256];

static const char *spec_text =
    "{\"name\": \"%s\", \"model\": \"" MTP_SOURCE_DIR "/models/mtp-mini\","
    " \"datasets\": [%s], \"threads\": 1, \"max_prompts\": 2, \"max_new_tokens\": 20,"
    " \"batch_size\": %s, \"seed\": 3,"
    " \"sampling\": [{\"temperature\": 0}, {\"temperature\": 1}],"
    " \"decoders\": [{\"type\": \"baseline\"},"
    " {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\"},"
    " {\"type\": \"mtp\", \"depth\": 3, \"drafting\": \"chain\"},"
    " {\"type\": \"adaptive\", \"depth\": 4, \"threshold\": 0.3},"
    " {\"type\": \"mtp\", \"drafting\": \"exact\", \"tree\": {\"widths\": [2, 1]}}],"
    " \"output_dir\": \"out\"}";

#define CATEGORIES                                                                       \
    "\"" MTP_SOURCE_DIR "/datasets/code.jsonl\", \"" MTP_SOURCE_DIR "/datasets/prose.jsonl\", " \
    "\"" MTP_SOURCE_DIR "/datasets/quotes.jsonl\", \"" MTP_SOURCE_DIR                     \
    "/datasets/technical.jsonl\""

enum { N_PROMPTS = 8, N_CONFIG = 5 * 2, MAX_OUT = 24, MAX_REQ = 2 * N_CONFIG * N_PROMPTS };

struct entry {
    char key[160]; /* decoder|sampling|dataset|prompt|repeat (no batch size) */
    int batch_size, n_output, n_steps;
    int32_t out[MAX_OUT];
    int32_t accepted[MAX_OUT];
};

struct log_view {
    int n;
    struct entry e[MAX_REQ];
    int n_batches;
    long batch_members;   /* sum of n_seqs over the batch records */
    long batched_steps;   /* sum of n_steps of the B > 1 request records */
    long batch_requests;  /* requests listed by the batch records */
};

static int by_key(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->batch_size - y->batch_size;
}

static void add_request(struct log_view *v, const msgpack_object *o)
{
    struct mtp_request_record r;
    assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
    assert_true(v->n < MAX_REQ && r.n_output <= MAX_OUT && r.n_steps <= MAX_OUT);
    struct entry *e = &v->e[v->n++];
    snprintf(e->key, sizeof e->key, "%s|%d|%s|%s|%d", r.decoder, r.sampling_index, r.dataset,
             r.prompt_id, r.repeat);
    e->batch_size = r.batch_size;
    e->n_output = r.n_output;
    e->n_steps = r.n_steps;
    memcpy(e->out, r.output_tokens, sizeof(int32_t) * r.n_output);
    memcpy(e->accepted, r.accepted, sizeof(int32_t) * r.n_steps);
    if (r.batch_size > 1)
        v->batched_steps += r.n_steps;
    mtp_log_request_free(&r);
}

static void add_batch(struct log_view *v, const msgpack_object *o)
{
    struct mtp_log_batch_record b;
    assert_int_equal(mtp_log_batch_decode(o, &b), MTP_OK);
    assert_int_equal(b.batch_size, 3);
    v->n_batches++;
    v->batch_requests += b.n_requests;
    for (int s = 0; s < b.n_steps; s++)
        v->batch_members += b.n_seqs[s];
    mtp_log_batch_free(&b);
}

static void read_log(const char *path, struct log_view *v, bool append)
{
    if (!append)
        memset(v, 0, sizeof *v);
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        fail_msg("%s", mtp_error_message());
    const msgpack_object *o;
    char type[32];
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o) {
        mtp_log_record_type(o, type, sizeof type);
        if (!strcmp(type, "request"))
            add_request(v, o);
        else if (!strcmp(type, "batch"))
            add_batch(v, o);
    }
    mtp_log_reader_close(rd);
    qsort(v->e, (size_t)v->n, sizeof v->e[0], by_key);
}

static void write_spec(const char *name, const char *datasets, const char *batch)
{
    char text[2048], file[64];
    snprintf(text, sizeof text, spec_text, name, datasets, batch);
    snprintf(file, sizeof file, "%s.json", name);
    test_write_file(tmp, file, text);
}

static int run(const char *name, bool resume, int max_requests, int shard, int shards)
{
    char sp[512], od[512];
    snprintf(sp, sizeof sp, "%s/%s.json", tmp, name);
    snprintf(od, sizeof od, "%s/out", tmp);
    FILE *table = fopen("/dev/null", "w");
    struct mtp_runner_options o = {.resume = resume, .quiet = true, .out_dir = od,
                                   .max_requests = max_requests, .out = table,
                                   .shard = {.rank = shard, .size = shards}};
    int rc = mtp_runner_run(sp, &o);
    fclose(table);
    return rc;
}

static void log_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/out/%s.msgpack", tmp, name);
}

static struct log_view full;

static void test_batch_equals_batch_one(void **state)
{
    (void)state;
    write_spec("sweep", CATEGORIES, "[1, 3]");
    if (run("sweep", false, 0, 0, 0))
        fail_msg("%s", mtp_error_message());
    char path[512];
    log_path(path, sizeof path, "sweep");
    read_log(path, &full, false);
    assert_int_equal(full.n, 2 * N_CONFIG * N_PROMPTS);
    long accepted = 0;
    for (int i = 0; i < full.n; i += 2) { /* sorted: each key at B = 1, then B = 3 */
        const struct entry *a = &full.e[i], *b = &full.e[i + 1];
        assert_string_equal(a->key, b->key);
        assert_int_equal(a->batch_size, 1);
        assert_int_equal(b->batch_size, 3);
        if (a->n_output != b->n_output || memcmp(a->out, b->out, sizeof(int32_t) * a->n_output))
            fail_msg("%s: tokens at batch size 3 differ from batch size 1", a->key);
        assert_int_equal(a->n_steps, b->n_steps);
        assert_memory_equal(a->accepted, b->accepted, sizeof(int32_t) * a->n_steps);
        for (int s = 0; s < a->n_steps; s++)
            accepted += a->accepted[s];
    }
    assert_true(accepted > 0);
    /* One batch record per (sampling, decoder) at B = 3, agreeing with the requests. */
    assert_int_equal(full.n_batches, N_CONFIG);
    assert_int_equal(full.batch_requests, N_CONFIG * N_PROMPTS);
    assert_int_equal(full.batch_members, full.batched_steps);
}

static void expect_same(const struct log_view *v, const char *what)
{
    assert_int_equal(v->n, full.n);
    for (int i = 0; i < v->n; i++) {
        if (strcmp(v->e[i].key, full.e[i].key) || v->e[i].batch_size != full.e[i].batch_size)
            fail_msg("%s: request %d is %s at B %d, expected %s at B %d", what, i, v->e[i].key,
                     v->e[i].batch_size, full.e[i].key, full.e[i].batch_size);
        assert_int_equal(v->e[i].n_output, full.e[i].n_output);
        assert_memory_equal(v->e[i].out, full.e[i].out, sizeof(int32_t) * v->e[i].n_output);
    }
}

static void test_resume_inside_batch_run(void **state)
{
    (void)state;
    write_spec("part", CATEGORIES, "[3, 1]");
    assert_int_equal(run("part", false, 5, 0, 0), MTP_OK);
    char path[512];
    log_path(path, sizeof path, "part");
    struct log_view v;
    read_log(path, &v, false);
    /* The limit stops admissions; the requests in flight still finish. */
    assert_true(v.n >= 5 && v.n <= 5 + 2);
    assert_int_equal(v.n_batches, 1);
    assert_int_equal(v.batch_requests, v.n);
    assert_int_equal(run("part", true, 0, 0, 0), MTP_OK);
    read_log(path, &v, false);
    expect_same(&v, "resumed");
}

static void test_shards(void **state)
{
    (void)state;
    write_spec("sharded", CATEGORIES, "[1, 3]");
    assert_int_equal(run("sharded", false, 0, 0, 2), MTP_OK);
    assert_int_equal(run("sharded", false, 0, 1, 2), MTP_OK);
    struct log_view v;
    char path[512];
    snprintf(path, sizeof path, "%s/out/sharded.rank-0-of-2.msgpack", tmp);
    read_log(path, &v, false);
    int first = v.n;
    assert_true(first > 0 && first < full.n);
    snprintf(path, sizeof path, "%s/out/sharded.rank-1-of-2.msgpack", tmp);
    read_log(path, &v, true);
    expect_same(&v, "two shards");
}

/* Batch runs of at most 4B requests, the decoders taking turns run by run
 * with the first one rotated: 12 prompts at B = 2 are runs of 8 and 4, in
 * the order baseline, chain, chain, baseline. */
static void test_runs_alternate(void **state)
{
    (void)state;
    test_write_file(tmp, "alt.json",
                    "{\"name\": \"alt\", \"model\": \"" MTP_SOURCE_DIR "/models/mtp-mini\","
                    " \"datasets\": [" CATEGORIES "], \"threads\": 1, \"max_prompts\": 3,"
                    " \"max_new_tokens\": 6, \"batch_size\": 2,"
                    " \"sampling\": [{\"temperature\": 0}], \"decoders\": [{\"type\": "
                    "\"baseline\"}, {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\"}],"
                    " \"output_dir\": \"out\"}");
    if (run("alt", false, 0, 0, 0))
        fail_msg("%s", mtp_error_message());
    char path[512];
    log_path(path, sizeof path, "alt");
    struct mtp_log_reader *rd;
    assert_int_equal(mtp_log_reader_open(path, &rd), MTP_OK);
    const msgpack_object *o;
    char type[32], order[8][32];
    int n_runs = 0, sizes[8];
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o) {
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "batch"))
            continue;
        struct mtp_log_batch_record b;
        assert_int_equal(mtp_log_batch_decode(o, &b), MTP_OK);
        assert_true(n_runs < 8);
        snprintf(order[n_runs], sizeof order[0], "%s", b.decoder);
        sizes[n_runs++] = b.n_requests;
        mtp_log_batch_free(&b);
    }
    mtp_log_reader_close(rd);
    assert_int_equal(n_runs, 4);
    const char *want[4] = {"baseline", "mtp-chain-k2", "mtp-chain-k2", "baseline"};
    const int want_sizes[4] = {8, 8, 4, 4};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(order[i], want[i]);
        assert_int_equal(sizes[i], want_sizes[i]);
    }
}

static void test_multi_turn_refused(void **state)
{
    (void)state;
    write_spec("turns", "\"" MTP_SOURCE_DIR "/datasets/two-turn.jsonl\"", "[1, 2]");
    assert_int_equal(run("turns", false, 0, 0, 0), MTP_ERR);
    const char *msg = mtp_error_message();
    if (!strstr(msg, "'batch_size'") || !strstr(msg, "turns"))
        fail_msg("message: %s", msg);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/mtp_runner_batch_XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_batch_one),
        cmocka_unit_test(test_resume_inside_batch_run),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_runs_alternate),
        cmocka_unit_test(test_multi_turn_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
