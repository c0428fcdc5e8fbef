/*
 * test_log.c - MessagePack logs (experiments/log.h): a run + 3 requests +
 * summary read back field by field; a log cut at several bytes inside its last
 * record reads up to the last whole record with a warning; damage in the
 * middle is an error naming the offset; resume after a cut continues to a file
 * identical to an uninterrupted write; write failures (missing or unwritable
 * directory, /dev/full, a file-size limit hit mid-record) give clear errors
 * and leave the log readable.
 *
 *   ctest --test-dir build -R log
 * MTP_LOG_TEST_KEEP=PATH keeps a copy of the reference log at PATH (for
 * analysis/read_log.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>        /* defines: open */
#include <jansson.h>      /* defines: json_loads, json_equal */
#include <signal.h>       /* defines: signal, SIGXFSZ */
#include <stdio.h>        /* defines: snprintf, fopen */
#include <stdlib.h>       /* defines: mkdtemp, getenv */
#include <string.h>       /* defines: strstr, memcmp */
#include <sys/resource.h> /* defines: setrlimit, RLIMIT_FSIZE */
#include <sys/stat.h>     /* defines: chmod */
#include <unistd.h>       /* defines: unlink, rmdir, geteuid */

#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_check.h"
#include "support/test_files.h"

static char tmp_dir[64];

static const char SPEC_JSON[] =
    "{\"decoders\":[{\"type\":\"baseline\"},{\"depth\":2,\"drafting\":\"exact\",\"type\":\"mtp\"}],"
    "\"max_new_tokens\":16,\"sampling\":[{\"temperature\":0},{\"temperature\":0.7,\"top_p\":0.9}]}";

enum { N_REQ = 3, MAX_STEPS = 8, N_LAYERS = 3 };

/* Backing arrays of one fixture request. */
struct req_storage {
    char prompt_id[16];
    int32_t prompt_ids[5];
    int32_t out[MAX_STEPS * 3 + 1];
    int32_t acc[MAX_STEPS];
    uint64_t draft[MAX_STEPS], verify[MAX_STEPS], accept[MAX_STEPS], update[MAX_STEPS];
    int32_t experts[MAX_STEPS * N_LAYERS];
};

/* Request I of the fixture log: every field set, arrays of different lengths,
 * 64-bit timings, prompt_ids only on request 0, experts_touched nil on 1. */
static void make_request(int i, struct req_storage *st, struct mtp_request_record *r)
{
    memset(r, 0, sizeof *r);
    bool mtp = i % 2 == 1;
    r->decoder = mtp ? "mtp-exact-k2" : "baseline";
    r->mode = mtp ? MTP_SPEC_DECODER_MTP : MTP_SPEC_DECODER_BASELINE;
    r->depth = mtp ? 2 : 0;
    r->drafting = mtp ? MTP_SPEC_DRAFTING_EXACT : MTP_SPEC_DRAFTING_NONE;
    r->sampling_index = i == 2;
    r->temperature = i == 2 ? 0.7 : 0.0;
    r->top_p = i == 2 ? 0.9 : 1.0;
    r->top_k = i == 2 ? 40 : 0;
    r->seed = 0xfedcba9876543210ull;
    r->dataset = "code";
    r->category = i == 2 ? "prose" : "code";
    snprintf(st->prompt_id, sizeof st->prompt_id, "q%d", 10 + i);
    r->prompt_id = st->prompt_id;
    r->repeat = i;
    r->prompt_tokens = 5;
    for (int k = 0; k < 5; k++)
        st->prompt_ids[k] = 100 + k;
    r->prompt_ids = i == 0 ? st->prompt_ids : NULL;
    r->turn = i == 1 ? 1 : 0;          /* a second turn ... */
    r->prompt_cached = i == 1 ? 4 : 0; /* ... that kept 4 of its 5 prompt positions */
    r->n_steps = 3 + 2 * i;
    r->n_output = 1;
    st->out[0] = 7;
    for (int s = 0; s < r->n_steps; s++) {
        st->acc[s] = mtp ? (s % 3) : 0;
        for (int e = 0; e <= st->acc[s]; e++, r->n_output++)
            st->out[r->n_output] = 1000 * i + r->n_output;
        st->draft[s] = mtp ? 1000 + (uint64_t)s : 0;
        st->verify[s] = (1ull << 40) + (uint64_t)s;
        st->accept[s] = 17 + (uint64_t)s;
        st->update[s] = 5;
        for (int l = 0; l < N_LAYERS; l++)
            st->experts[s * N_LAYERS + l] = 8 + s + l;
    }
    r->output_tokens = st->out;
    r->accepted = st->acc;
    r->draft_ns = st->draft;
    r->verify_ns = st->verify;
    r->accept_ns = st->accept;
    r->update_ns = st->update;
    r->ttft_ns = 123456789;
    r->total_ns = 9876543210ull;
    r->n_moe_layers = i == 1 ? 0 : N_LAYERS;
    r->experts_touched = i == 1 ? NULL : st->experts;
    r->stop_reason = i == 2 ? MTP_LOG_STOP_EOS : MTP_LOG_STOP_MAX_TOKENS;
    r->draft_vocab = i == 1 ? 1024 : 0; /* one request with a draft vocabulary */
    r->time_unix_ns = 1700000000000000000ll + i;
}

static const struct mtp_log_run_info RUN_INFO = {
    .spec_json = SPEC_JSON,
    .model = {.dir = "models/mtp-mini", .config_hash = "0123abcd", .num_layers = 4,
              .num_nextn_predict_layers = 3, .vocab_size = 4096, .params = 12345678901ll},
    .git_commit = "c67d24037fe0",
    .host = "testhost",
    .cpu = "Test CPU @ 1 GHz",
    .gpu = NULL,
    .backend = "cpu",
    .threads = 4,
    .start_unix_ns = 1700000000123456789ll,
};

static const struct mtp_log_summary SUMMARY = {
    .wall_ns = 42000000000ull, .finished = true, .end_unix_ns = 1700000100000000000ll};

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
}

static void write_request(struct mtp_log_writer *w, int i)
{
    struct req_storage st;
    struct mtp_request_record r;
    make_request(i, &st, &r);
    assert_int_equal(mtp_log_write_request(w, &r), MTP_OK);
}

/* The reference log: run, N_REQ requests, then SUMMARY (if S != NULL). */
static void write_log(const char *path, const struct mtp_log_summary *s)
{
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    assert_int_equal(mtp_log_write_run(w, &RUN_INFO), MTP_OK);
    for (int i = 0; i < N_REQ; i++)
        write_request(w, i);
    assert_int_equal(mtp_log_writer_requests(w), N_REQ);
    if (s)
        assert_int_equal(mtp_log_write_summary(w, s), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);
}

/* Offsets of the whole records of PATH; returns their count, sets *PARTIAL. */
static int record_offsets(const char *path, uint64_t *offs, int cap, bool *partial, uint64_t *at)
{
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(path, &r), MTP_OK);
    const msgpack_object *rec;
    int n = 0;
    uint64_t off;
    while (mtp_log_reader_next(r, &rec, &off) == MTP_OK && rec) {
        assert_true(n < cap);
        offs[n++] = off;
    }
    assert_null(rec);
    *partial = mtp_log_reader_partial(r, at);
    mtp_log_reader_close(r);
    return n;
}

static void assert_i32s(const int32_t *a, const int32_t *b, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(a[i], b[i]);
}

static void assert_u64s(const uint64_t *a, const uint64_t *b, int n)
{
    for (int i = 0; i < n; i++)
        assert_true(a[i] == b[i]);
}

static void assert_request_equal(const struct mtp_request_record *got,
                                 const struct mtp_request_record *want)
{
    assert_string_equal(got->decoder, want->decoder);
    assert_int_equal(got->mode, want->mode);
    assert_int_equal(got->depth, want->depth);
    assert_int_equal(got->drafting, want->drafting);
    assert_int_equal(got->sampling_index, want->sampling_index);
    assert_true(got->temperature == want->temperature && got->top_p == want->top_p);
    assert_int_equal(got->top_k, want->top_k);
    assert_true(got->seed == want->seed);
    assert_string_equal(got->dataset, want->dataset);
    assert_string_equal(got->category, want->category);
    assert_string_equal(got->prompt_id, want->prompt_id);
    assert_int_equal(got->repeat, want->repeat);
    assert_int_equal(got->prompt_tokens, want->prompt_tokens);
    assert_int_equal(got->turn, want->turn);
    assert_int_equal(got->prompt_cached, want->prompt_cached);
    assert_int_equal(got->prompt_ids != NULL, want->prompt_ids != NULL);
    if (want->prompt_ids)
        assert_i32s(got->prompt_ids, want->prompt_ids, want->prompt_tokens);
    assert_int_equal(got->n_output, want->n_output);
    assert_i32s(got->output_tokens, want->output_tokens, want->n_output);
    assert_int_equal(got->n_steps, want->n_steps);
    assert_i32s(got->accepted, want->accepted, want->n_steps);
    assert_u64s(got->draft_ns, want->draft_ns, want->n_steps);
    assert_u64s(got->verify_ns, want->verify_ns, want->n_steps);
    assert_u64s(got->accept_ns, want->accept_ns, want->n_steps);
    assert_u64s(got->update_ns, want->update_ns, want->n_steps);
    assert_true(got->ttft_ns == want->ttft_ns && got->total_ns == want->total_ns);
    assert_int_equal(got->n_moe_layers, want->n_moe_layers);
    assert_int_equal(got->experts_touched != NULL, want->experts_touched != NULL);
    if (want->experts_touched)
        assert_i32s(got->experts_touched, want->experts_touched, want->n_steps * want->n_moe_layers);
    assert_int_equal(got->stop_reason, want->stop_reason);
    assert_int_equal(got->draft_vocab, want->draft_vocab);
    assert_true(got->time_unix_ns == want->time_unix_ns);
}

static void assert_str_key(const msgpack_object *rec, const char *key, const char *want)
{
    if (!mtp_log_obj_is_str(mtp_log_map_get(rec, key), want))
        fail_msg("key '%s' is not \"%s\"", key, want);
}

static int64_t int_key(const msgpack_object *rec, const char *key)
{
    int64_t v = 0;
    if (!mtp_log_obj_int(mtp_log_map_get(rec, key), &v))
        fail_msg("key '%s' is not an integer", key);
    return v;
}

static void check_run_record(const msgpack_object *rec)
{
    assert_str_key(rec, "type", "run");
    assert_str_key(rec, "schema_version", MTP_LOG_SCHEMA);
    char *spec = mtp_log_obj_to_json(mtp_log_map_get(rec, "spec"));
    json_t *a = json_loads(spec, 0, NULL), *b = json_loads(SPEC_JSON, 0, NULL);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    free(spec);
    const msgpack_object *m = mtp_log_map_get(rec, "model");
    assert_str_key(m, "dir", "models/mtp-mini");
    assert_str_key(m, "config_hash", "0123abcd");
    assert_int_equal(int_key(m, "num_layers"), 4);
    assert_int_equal(int_key(m, "num_nextn_predict_layers"), 3);
    assert_int_equal(int_key(m, "vocab_size"), 4096);
    assert_true(int_key(m, "params") == 12345678901ll);
    assert_str_key(rec, "git_commit", "c67d24037fe0");
    assert_str_key(rec, "host", "testhost");
    assert_str_key(rec, "cpu", "Test CPU @ 1 GHz");
    assert_int_equal(mtp_log_map_get(rec, "gpu")->type, MSGPACK_OBJECT_NIL);
    assert_str_key(rec, "backend", "cpu");
    assert_int_equal(int_key(rec, "threads"), 4);
    assert_str_key(rec, "start_time", "2023-11-14T22:13:20Z");
    assert_true(int_key(rec, "start_unix_ns") == 1700000000123456789ll);
}

static void check_summary_record(const msgpack_object *rec, bool finished)
{
    assert_str_key(rec, "type", "summary");
    assert_int_equal(int_key(rec, "requests"), N_REQ);
    assert_true(int_key(rec, "wall_ns") == 42000000000ll);
    const msgpack_object *f = mtp_log_map_get(rec, "finished");
    assert_true(f && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean == finished);
    assert_str_key(rec, "end_time", "2023-11-14T22:15:00Z");
    assert_true(int_key(rec, "end_unix_ns") == 1700000100000000000ll);
}

/* Read PATH and check it is exactly the reference log's records. */
static void check_reference_log(const char *path)
{
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(path, &r), MTP_OK);
    const msgpack_object *rec;
    assert_int_equal(mtp_log_reader_next(r, &rec, NULL), MTP_OK);
    assert_non_null(rec);
    check_run_record(rec);
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(mtp_log_reader_next(r, &rec, NULL), MTP_OK);
        struct mtp_request_record got, want;
        struct req_storage st;
        make_request(i, &st, &want);
        if (mtp_log_decode_request(rec, &got) != MTP_OK)
            fail_msg("request %d: %s", i, mtp_error_message());
        assert_request_equal(&got, &want);
        mtp_log_request_free(&got);
    }
    assert_int_equal(mtp_log_reader_next(r, &rec, NULL), MTP_OK);
    check_summary_record(rec, true);
    assert_int_equal(mtp_log_reader_next(r, &rec, NULL), MTP_OK);
    assert_null(rec);
    assert_false(mtp_log_reader_partial(r, NULL));
    mtp_log_reader_close(r);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "ref.msgpack");
    write_log(path, &SUMMARY);
    check_reference_log(path);
    const char *keep = getenv("MTP_LOG_TEST_KEEP");
    if (keep && keep[0]) {
        size_t n;
        char *data = test_read_whole_file(path, &n);
        test_write_bytes(keep, data, n);
        free(data);
    }
    unlink(path);
}

/* Cut the reference log inside record K at several bytes; readers must return
 * the K records before it and flag the partial one at its offset. */
static void test_truncated_last_record(void **state)
{
    (void)state;
    char ref[256], cut[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(cut, sizeof cut, "cut.msgpack");
    write_log(ref, &SUMMARY);
    size_t size;
    char *data = test_read_whole_file(ref, &size);
    uint64_t offs[8], at;
    bool partial;
    int n = record_offsets(ref, offs, 8, &partial, &at);
    assert_int_equal(n, N_REQ + 2);
    offs[n] = size;
    for (int k = n - 2; k < n; k++) { /* inside the last request, inside the summary */
        uint64_t len = offs[k + 1] - offs[k];
        uint64_t cuts[] = {offs[k] + 1, offs[k] + 2, offs[k] + len / 2, offs[k + 1] - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            test_write_bytes(cut, data, (size_t)cuts[c]);
            uint64_t got_offs[8];
            int got = record_offsets(cut, got_offs, 8, &partial, &at);
            if (got != k || !partial || at != offs[k])
                fail_msg("cut at %llu: %d records (want %d), partial %d at %llu (want %llu)",
                         (unsigned long long)cuts[c], got, k, partial, (unsigned long long)at,
                         (unsigned long long)offs[k]);
        }
        test_write_bytes(cut, data, (size_t)offs[k]); /* cut exactly between records: no warning */
        uint64_t got_offs[8];
        assert_int_equal(record_offsets(cut, got_offs, 8, &partial, &at), k);
        assert_false(partial);
    }
    free(data);
    unlink(cut);
    unlink(ref);
}

/* Damage inside the log (not at its end) is an error naming the offset. */
static void test_garbage_in_middle(void **state)
{
    (void)state;
    char ref[256], bad[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(bad, sizeof bad, "bad.msgpack");
    write_log(ref, &SUMMARY);
    size_t size;
    char *data = test_read_whole_file(ref, &size);
    uint64_t offs[8], at;
    bool partial;
    record_offsets(ref, offs, 8, &partial, &at);
    static const unsigned char bytes[] = {0xc1 /* never used */, 0x05 /* an int, not a map */};
    for (size_t b = 0; b < sizeof bytes; b++) {
        char *copy = malloc(size);
        memcpy(copy, data, size);
        copy[offs[2]] = (char)bytes[b];
        test_write_bytes(bad, copy, size);
        free(copy);
        struct mtp_log_reader *r;
        assert_int_equal(mtp_log_reader_open(bad, &r), MTP_OK);
        const msgpack_object *rec;
        int rc, n = 0;
        while ((rc = mtp_log_reader_next(r, &rec, NULL)) == MTP_OK && rec)
            n++;
        assert_int_equal(rc, MTP_ERR);
        assert_int_equal(n, 2);
        char want[64];
        snprintf(want, sizeof want, "offset %llu", (unsigned long long)offs[2]);
        if (!strstr(mtp_error_message(), want) || !strstr(mtp_error_message(), bad))
            fail_msg("message: %s", mtp_error_message());
        mtp_log_reader_close(r);
    }
    free(data);
    unlink(bad);
    unlink(ref);
}

static void assert_files_equal(const char *a, const char *b)
{
    size_t na, nb;
    char *da = test_read_whole_file(a, &na), *db = test_read_whole_file(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da);
    free(db);
}

/* Resume a log cut at CUT bytes: returns the resume state (caller frees). */
static struct mtp_log_writer *resume(const char *path, struct mtp_log_resume *st)
{
    struct mtp_log_writer *w;
    if (mtp_log_open_resume(path, SPEC_JSON, NULL, &w, st) != MTP_OK)
        fail_msg("resume: %s", mtp_error_message());
    return w;
}

static void test_resume_after_cut(void **state)
{
    (void)state;
    char ref[256], part[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(part, sizeof part, "part.msgpack");
    write_log(ref, &SUMMARY);
    size_t size;
    char *data = test_read_whole_file(ref, &size);
    uint64_t offs[8], at;
    bool partial;
    record_offsets(ref, offs, 8, &partial, &at);
    /* Killed while writing request 2 (record 3): an interrupted writer would have
     * left exactly this prefix, since the records are deterministic. */
    uint64_t cut = offs[3] + (offs[4] - offs[3]) / 3;
    test_write_bytes(part, data, (size_t)cut);

    struct mtp_log_resume st;
    struct mtp_log_writer *w = resume(part, &st);
    assert_true(st.has_run && !st.complete && st.cut);
    assert_int_equal(st.n_requests, 2);
    assert_true(st.cut_at == offs[3] && st.cut_bytes == cut - offs[3]);
    assert_int_equal(mtp_log_keyset_size(st.finished), 2);
    assert_true(mtp_log_keyset_contains(st.finished, "baseline", 0, "code", "q10", 0));
    assert_true(
        mtp_log_keyset_contains_turn(st.finished, "mtp-exact-k2", 0, "code", "q11", 1, 1));
    assert_false(mtp_log_keyset_contains(st.finished, "baseline", 1, "code", "q12", 2));
    assert_false(mtp_log_keyset_contains(st.finished, "baseline", 0, "code", "q10", 1));
    assert_int_equal(mtp_log_writer_requests(w), 2);
    /* The runner skips the finished keys and writes the rest. */
    for (int i = 0; i < N_REQ; i++) {
        struct req_storage rs;
        struct mtp_request_record r;
        make_request(i, &rs, &r);
        if (!mtp_log_keyset_contains_turn(st.finished, r.decoder, r.sampling_index, r.dataset,
                                          r.prompt_id, r.repeat, r.turn))
            assert_int_equal(mtp_log_write_request(w, &r), MTP_OK);
    }
    assert_int_equal(mtp_log_write_summary(w, &SUMMARY), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);
    mtp_log_resume_free(&st);
    check_reference_log(part);
    assert_files_equal(part, ref);
    free(data);
    unlink(part);
    unlink(ref);
}

/* Cuts inside the run record, exactly at a record boundary, and an unfinished
 * summary; then a complete log, another spec, a missing file. */
static void test_resume_edge_cases(void **state)
{
    (void)state;
    char ref[256], part[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(part, sizeof part, "part.msgpack");
    write_log(ref, &SUMMARY);
    size_t size;
    char *data = test_read_whole_file(ref, &size);
    uint64_t offs[8], at;
    bool partial;
    record_offsets(ref, offs, 8, &partial, &at);

    struct mtp_log_resume st;
    test_write_bytes(part, data, (size_t)offs[1] / 2); /* inside the run record */
    mtp_log_close(resume(part, &st));
    assert_true(!st.has_run && st.cut && st.cut_at == 0 && st.n_requests == 0);
    mtp_log_resume_free(&st);

    test_write_bytes(part, data, (size_t)offs[2]); /* run + 1 request, nothing partial */
    mtp_log_close(resume(part, &st));
    assert_true(st.has_run && !st.cut && st.n_requests == 1 && st.cut_at == offs[2]);
    mtp_log_resume_free(&st);

    struct mtp_log_summary unfinished = SUMMARY;
    unfinished.finished = false;
    write_log(part, &unfinished); /* interrupted cleanly: resume drops the summary */
    mtp_log_close(resume(part, &st));
    assert_true(st.has_run && !st.complete && st.cut && st.cut_at == offs[4]);
    assert_int_equal(st.n_requests, N_REQ);
    mtp_log_resume_free(&st);

    mtp_log_close(resume(ref, &st)); /* complete: reported, untouched */
    assert_true(st.complete && !st.cut && st.n_requests == N_REQ);
    mtp_log_resume_free(&st);
    size_t after;
    free(test_read_whole_file(ref, &after));
    assert_int_equal(after, size);

    struct mtp_log_writer *w;
    const char *other = "{\"decoders\":[{\"type\":\"baseline\"}],\"max_new_tokens\":32,"
                        "\"sampling\":[{\"temperature\":0},{\"temperature\":0.7,\"top_p\":0.9}]}";
    assert_int_equal(mtp_log_open_resume(ref, other, NULL, &w, &st), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "different spec"));
    assert_non_null(strstr(mtp_error_message(), "'max_new_tokens'") ||
                    strstr(mtp_error_message(), "'decoders'"));
    assert_int_equal(mtp_log_open_resume("/nonexistent/log.msgpack", NULL, NULL, &w, &st), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "/nonexistent/log.msgpack"));
    free(data);
    unlink(part);
    unlink(ref);
}

static void expect_open_error(const char *path, const char *want)
{
    struct mtp_log_writer *w = NULL;
    mtp_error_clear();
    assert_int_equal(mtp_log_open(path, NULL, &w), MTP_ERR);
    assert_null(w);
    const char *msg = mtp_error_message();
    if (!strstr(msg, path) || !strstr(msg, want))
        fail_msg("open %s: %s", path, msg);
}

static void test_unwritable(void **state)
{
    (void)state;
    expect_open_error("/nonexistent-mtp-dir/run.msgpack", "No such file or directory");
    char file[256], under[300], ref[256];
    tmp_path(file, sizeof file, "plain");
    test_write_bytes(file, "x", 1);
    snprintf(under, sizeof under, "%s/run.msgpack", file);
    expect_open_error(under, "Not a directory");
    tmp_path(ref, sizeof ref, "exists.msgpack");
    test_write_bytes(ref, "", 0);
    expect_open_error(ref, "File exists");
    if (geteuid() != 0) { /* root writes anywhere: permissions cannot be tested as root */
        char ro[256], inside[300];
        tmp_path(ro, sizeof ro, "ro");
        mkdir(ro, 0555);
        snprintf(inside, sizeof inside, "%s/run.msgpack", ro);
        expect_open_error(inside, "Permission denied");
        rmdir(ro);
    }
    unlink(ref);
    unlink(file);
}

static void test_dev_full(void **state)
{
    (void)state;
    if (access("/dev/full", W_OK) != 0)
        skip();
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open("/dev/full", &opt, &w), MTP_OK);
    assert_int_equal(mtp_log_write_run(w, &RUN_INFO), MTP_ERR);
    const char *msg = mtp_error_message();
    if (!strstr(msg, "/dev/full") || !strstr(msg, "No space left on device"))
        fail_msg("message: %s", msg);
    struct req_storage st;
    struct mtp_request_record r;
    make_request(0, &st, &r);
    assert_int_equal(mtp_log_write_request(w, &r), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "earlier write failed"));
    mtp_log_close(w);
}

/* A write that stops half-way (file-size limit, like a full disk after a
 * partial write): the error names the path, and the file still ends on a
 * whole record. */
static void test_partial_write_is_cut(void **state)
{
    (void)state;
    char ref[256], path[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(path, sizeof path, "limited.msgpack");
    write_log(ref, &SUMMARY);
    uint64_t offs[8], at;
    bool partial;
    record_offsets(ref, offs, 8, &partial, &at);

    struct mtp_log_writer *w;
    struct mtp_log_options opt = {.overwrite = true};
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)(offs[2] + 10); /* request 1 gets 10 bytes, then EFBIG */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc_run = mtp_log_write_run(w, &RUN_INFO);
    struct req_storage st;
    struct mtp_request_record r;
    make_request(0, &st, &r);
    int rc0 = mtp_log_write_request(w, &r);
    make_request(1, &st, &r);
    int rc1 = mtp_log_write_request(w, &r);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc_run, MTP_OK);
    assert_int_equal(rc0, MTP_OK);
    assert_int_equal(rc1, MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), path));
    mtp_log_close(w);
    uint64_t got[8];
    assert_int_equal(record_offsets(path, got, 8, &partial, &at), 2);
    assert_false(partial);
    unlink(path);
    unlink(ref);
}

static void test_keyset_many(void **state)
{
    (void)state;
    struct mtp_log_keyset *s = mtp_log_keyset_create();
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "p%d", i);
        mtp_log_keyset_add(s, i % 2 ? "a" : "b", i % 3, "set", id, i % 5);
    }
    mtp_log_keyset_add(s, "b", 0, "set", "p0", 0); /* already there */
    assert_int_equal(mtp_log_keyset_size(s), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "p%d", i);
        assert_true(mtp_log_keyset_contains(s, i % 2 ? "a" : "b", i % 3, "set", id, i % 5));
        assert_false(mtp_log_keyset_contains(s, i % 2 ? "b" : "a", i % 3, "set", id, i % 5));
    }
    /* Turns are part of the key; turn 0 is the key without a turn. */
    mtp_log_keyset_add_turn(s, "a", 1, "set", "p1", 1, 1);
    assert_int_equal(mtp_log_keyset_size(s), 5001);
    assert_true(mtp_log_keyset_contains_turn(s, "a", 1, "set", "p1", 1, 1));
    assert_true(mtp_log_keyset_contains_turn(s, "a", 1, "set", "p1", 1, 0));
    assert_false(mtp_log_keyset_contains_turn(s, "a", 1, "set", "p1", 1, 2));
    mtp_log_keyset_free(s);
}

/* The turn fields' validity rules (log_check.h). */
static void test_turn_fields_checked(void **state)
{
    (void)state;
    struct req_storage st;
    struct mtp_request_record r;
    make_request(1, &st, &r);
    assert_int_equal(mtp_log_check_request(&r), MTP_OK);
    r.prompt_cached = r.prompt_tokens; /* at least the last prompt token is computed */
    assert_int_equal(mtp_log_check_request(&r), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "prompt_cached"));
    r.prompt_cached = 2;
    r.turn = 0; /* a first turn has nothing to keep */
    assert_int_equal(mtp_log_check_request(&r), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "turn 0"));
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_test_log_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmp_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated_last_record),
        cmocka_unit_test(test_garbage_in_middle),
        cmocka_unit_test(test_resume_after_cut),
        cmocka_unit_test(test_resume_edge_cases),
        cmocka_unit_test(test_unwritable),
        cmocka_unit_test(test_dev_full),
        cmocka_unit_test(test_partial_write_is_cut),
        cmocka_unit_test(test_keyset_many),
        cmocka_unit_test(test_turn_fields_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
