/*
 * test_log_batch.c - the log side of batch size (issue 25):
 *   - a "batch" record (experiments/log_batch.h) and a request with
 *     batch_size 4 written, read back through the log reader field by field;
 *     a request at batch size 1 carries no batch_size key and reads as 1;
 *   - the plan's batch_sizes round trip, and its request count must be the
 *     product with the batch sizes;
 *   - resume keys: the same request at batch sizes 1 and 4 are two keys, and
 *     a log reopened for resume knows both;
 *   - hostile batch records (a member out of range or repeated in a step,
 *     n_seqs above batch_size or zero, tokens beyond n_seqs x (depth + 1), a
 *     members list of the wrong length, a negative expert count) are refused
 *     by the reader naming the key and the step, and by the writer.
 *
 *   ctest --test-dir build -R log_batch
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: mkdtemp */
#include <string.h> /* defines: strstr, memset */
#include <unistd.h> /* defines: unlink, rmdir */

#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_batch.h"
#include "experiments/log_plan.h"

static char tmp_dir[64];

enum { STEPS = 3, LAYERS = 2 };

/* A batch run of 3 requests at B = 2, depth 1: steps {0, 1}, {1, 2}, {2}. */
struct batch_fixture {
    struct mtp_log_batch_request reqs[3];
    int32_t n_seqs[STEPS], tokens[STEPS], members[5], experts[STEPS * LAYERS];
    uint64_t prefill[STEPS], draft[STEPS], verify[STEPS], accept[STEPS];
    struct mtp_log_batch_record rec;
};

static void make_batch(struct batch_fixture *f)
{
    memset(f, 0, sizeof *f);
    static const char *ids[3] = {"p0", "p1", "p2"};
    for (int i = 0; i < 3; i++)
        f->reqs[i] = (struct mtp_log_batch_request){"code", (char *)ids[i], i % 2};
    const int32_t n_seqs[STEPS] = {2, 2, 1}, tokens[STEPS] = {4, 3, 2};
    const int32_t members[5] = {0, 1, 1, 2, 2};
    for (int s = 0; s < STEPS; s++) {
        f->n_seqs[s] = n_seqs[s];
        f->tokens[s] = tokens[s];
        f->prefill[s] = s == 0 ? 5000000000ull : 0; /* > 2^32: 64-bit times */
        f->draft[s] = 100 + s;
        f->verify[s] = 200 + s;
        f->accept[s] = 300 + s;
        for (int l = 0; l < LAYERS; l++)
            f->experts[s * LAYERS + l] = 10 * s + l;
    }
    memcpy(f->members, members, sizeof members);
    f->rec = (struct mtp_log_batch_record){
        .decoder = "mtp-chain-k1", .sampling_index = 1, .batch_size = 2, .depth = 1,
        .n_requests = 3, .requests = f->reqs, .n_steps = STEPS, .n_moe_layers = LAYERS,
        .n_seqs = f->n_seqs, .tokens = f->tokens, .members = f->members,
        .experts_touched = f->experts, .prefill_ns = f->prefill, .draft_ns = f->draft,
        .verify_ns = f->verify, .accept_ns = f->accept, .wall_ns = 123456789,
        .time_unix_ns = 1700000000000000000};
}

static void make_request(struct mtp_request_record *r, int32_t *out, int32_t *acc,
                         uint64_t *ns, int batch_size)
{
    memset(r, 0, sizeof *r);
    out[0] = 5;
    out[1] = 6;
    acc[0] = 0;
    ns[0] = 1000;
    *r = (struct mtp_request_record){
        .decoder = "mtp-chain-k1", .mode = MTP_SPEC_DECODER_MTP, .depth = 1,
        .drafting = MTP_SPEC_DRAFTING_CHAIN, .sampling_index = 1, .temperature = 1, .top_p = 1,
        .dataset = "code", .category = "code", .prompt_id = "p1", .repeat = 1,
        .batch_size = batch_size, .prompt_tokens = 3, .n_output = 2, .output_tokens = out,
        .n_steps = 1, .accepted = acc, .draft_ns = ns, .verify_ns = ns, .accept_ns = ns,
        .update_ns = ns, .ttft_ns = 10, .total_ns = 2000, .adaptive_threshold = -1,
        .time_unix_ns = 1700000000000000001};
}

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
}

/* Write a run record, a request at batch size B_REQ and the batch record. */
static void write_log(const char *path, const struct mtp_log_batch_record *b, int b_req)
{
    unlink(path);
    struct mtp_log_writer *w;
    struct mtp_log_run_info info = {.spec_json = "{}", .backend = "cpu", .threads = 1,
                                    .host = "h", .cpu = "c", .start_unix_ns = 1};
    int32_t out[2], acc[1];
    uint64_t ns[1];
    struct mtp_request_record r;
    make_request(&r, out, acc, ns, b_req);
    if (mtp_log_open(path, NULL, &w) || mtp_log_write_run(w, &info) ||
        mtp_log_write_request(w, &r) || (b && mtp_log_write_batch(w, b)) || mtp_log_close(w))
        fail_msg("%s", mtp_error_message());
}

/* Find the first record of TYPE in PATH (*REC; NULL when there is none),
 * the reader left open at it; the reader's status. */
static int read_first(const char *path, const char *type, const msgpack_object **rec,
                      struct mtp_log_reader **rd)
{
    if (mtp_log_reader_open(path, rd))
        fail_msg("%s", mtp_error_message());
    char t[32];
    int rc;
    while ((rc = mtp_log_reader_next(*rd, rec, NULL)) == MTP_OK && *rec)
        if (strcmp(mtp_log_record_type(*rec, t, sizeof t), type) == 0)
            return MTP_OK;
    return rc;
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path, "batch.msgpack");
    struct batch_fixture f;
    make_batch(&f);
    write_log(path, &f.rec, 4);
    struct mtp_log_reader *rd;
    const msgpack_object *o;
    assert_int_equal(read_first(path, "request", &o, &rd), MTP_OK);
    assert_non_null(o);
    struct mtp_request_record r;
    assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
    assert_int_equal(r.batch_size, 4);
    mtp_log_request_free(&r);
    assert_int_equal(mtp_log_reader_next(rd, &o, NULL), MTP_OK);
    struct mtp_log_batch_record b;
    assert_int_equal(mtp_log_batch_decode(o, &b), MTP_OK);
    assert_string_equal(b.decoder, "mtp-chain-k1");
    assert_int_equal(b.sampling_index, 1);
    assert_int_equal(b.batch_size, 2);
    assert_int_equal(b.depth, 1);
    assert_int_equal(b.n_requests, 3);
    assert_string_equal(b.requests[2].prompt_id, "p2");
    assert_int_equal(b.requests[1].repeat, 1);
    assert_int_equal(b.n_steps, STEPS);
    assert_int_equal(b.n_moe_layers, LAYERS);
    assert_memory_equal(b.n_seqs, f.n_seqs, sizeof f.n_seqs);
    assert_memory_equal(b.tokens, f.tokens, sizeof f.tokens);
    assert_memory_equal(b.members, f.members, sizeof f.members);
    assert_memory_equal(b.experts_touched, f.experts, sizeof f.experts);
    assert_memory_equal(b.prefill_ns, f.prefill, sizeof f.prefill);
    assert_memory_equal(b.verify_ns, f.verify, sizeof f.verify);
    assert_true(b.wall_ns == 123456789);
    assert_true(b.time_unix_ns == 1700000000000000000);
    mtp_log_batch_free(&b);
    mtp_log_reader_close(rd);
    /* Batch size 1: no key, read as 1. */
    write_log(path, NULL, 1);
    assert_int_equal(read_first(path, "request", &o, &rd), MTP_OK);
    assert_null(mtp_log_map_get(o, "batch_size"));
    assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
    assert_int_equal(r.batch_size, 1);
    mtp_log_request_free(&r);
    mtp_log_reader_close(rd);
    unlink(path);
}

/* The same request at two batch sizes: two resume keys, both found again. */
static void test_resume_keys(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path, "keys.msgpack");
    write_log(path, NULL, 4);
    struct mtp_log_writer *w;
    struct mtp_log_resume st;
    if (mtp_log_open_resume(path, NULL, NULL, &w, &st))
        fail_msg("%s", mtp_error_message());
    assert_true(mtp_log_keyset_contains_batch(st.finished, "mtp-chain-k1", 1, "code", "p1", 1,
                                              0, 4));
    assert_false(mtp_log_keyset_contains_batch(st.finished, "mtp-chain-k1", 1, "code", "p1", 1,
                                               0, 1));
    assert_false(mtp_log_keyset_contains(st.finished, "mtp-chain-k1", 1, "code", "p1", 1));
    mtp_log_keyset_add(st.finished, "mtp-chain-k1", 1, "code", "p1", 1);
    assert_int_equal(mtp_log_keyset_size(st.finished), 2);
    mtp_log_resume_free(&st);
    assert_int_equal(mtp_log_close(w), MTP_OK);
    unlink(path);
}

/* One damaged field of the fixture's batch record. */
struct hostile {
    const char *what, *want1, *want2;
    void (*damage)(struct batch_fixture *f);
};

static void member_out_of_range(struct batch_fixture *f) { f->members[3] = 3; }
static void member_twice(struct batch_fixture *f) { f->members[1] = 0; }
static void seqs_above_b(struct batch_fixture *f)
{
    f->n_seqs[2] = 3;
    f->tokens[2] = 3;
}
static void seqs_zero(struct batch_fixture *f) { f->n_seqs[0] = 0; }
static void too_many_tokens(struct batch_fixture *f) { f->tokens[1] = 5; }
static void negative_experts(struct batch_fixture *f) { f->experts[3] = -1; }

static const struct hostile HOSTILE[] = {
    {"member out of range", "'members'", "step 1", member_out_of_range},
    {"member twice in a step", "'members'", "twice", member_twice},
    {"n_seqs above batch_size", "'n_seqs'", "step 2", seqs_above_b},
    {"n_seqs 0", "'n_seqs'", "step 0", seqs_zero},
    {"tokens beyond n_seqs x (depth + 1)", "'tokens'", "step 1", too_many_tokens},
    {"negative experts", "'experts_touched'", "step 1", negative_experts},
};

/* Pack the damaged record straight into a msgpack buffer (the writer
 * refuses it), then decode it as the reader would. */
static void pack_raw(msgpack_sbuffer *sb, const struct mtp_log_batch_record *r);

static void test_hostile_records(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path, "hostile.msgpack");
    for (size_t i = 0; i < sizeof HOSTILE / sizeof HOSTILE[0]; i++) {
        struct batch_fixture f;
        make_batch(&f);
        HOSTILE[i].damage(&f);
        /* The writer checks what it writes. */
        unlink(path);
        struct mtp_log_writer *w;
        assert_int_equal(mtp_log_open(path, NULL, &w), MTP_OK);
        assert_int_equal(mtp_log_write_batch(w, &f.rec), MTP_ERR);
        mtp_log_close(w);
        /* The decoder names the key and the step. */
        msgpack_sbuffer sb;
        pack_raw(&sb, &f.rec);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
        struct mtp_log_batch_record b;
        int rc = mtp_log_batch_decode(&u.data, &b);
        const char *msg = mtp_error_message();
        if (rc != MTP_ERR || !strstr(msg, HOSTILE[i].want1) || !strstr(msg, HOSTILE[i].want2))
            fail_msg("case '%s': rc %d, message: %s", HOSTILE[i].what, rc, msg);
        mtp_log_batch_free(&b);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
    }
    unlink(path);
}

/* A members list one entry short of sum(n_seqs). */
static void test_members_length(void **state)
{
    (void)state;
    struct batch_fixture f;
    make_batch(&f);
    msgpack_sbuffer sb;
    f.n_seqs[2] = 2; /* sum 6, but 5 members are packed */
    f.tokens[2] = 2;
    f.rec.batch_size = 2;
    pack_raw(&sb, &f.rec);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    struct mtp_log_batch_record b;
    assert_int_equal(mtp_log_batch_decode(&u.data, &b), MTP_ERR);
    if (!strstr(mtp_error_message(), "'members'"))
        fail_msg("message: %s", mtp_error_message());
    mtp_log_batch_free(&b);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* The plan: batch sizes round trip; the request count includes them. */
static void test_plan_batch_sizes(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path, "plan.msgpack");
    unlink(path);
    struct mtp_log_plan plan;
    memset(&plan, 0, sizeof plan);
    const int sizes[2] = {1, 8};
    mtp_log_plan_set_batch_sizes(&plan, sizes, 2);
    plan.repeats = 1;
    plan.n_decoders = 1;
    plan.decoders = calloc(1, sizeof *plan.decoders);
    plan.decoders[0] = strdup("baseline");
    plan.n_sampling = 1;
    plan.sampling = calloc(1, sizeof *plan.sampling);
    mtp_log_plan_add_prompt(&plan, "code", "p0", "code", 3, MTP_PLAN_RUN);
    mtp_log_plan_add_prompt(&plan, "code", "p1", "code", 3, MTP_PLAN_RUN);
    for (int wrong = 0; wrong < 2; wrong++) {
        plan.requests = wrong ? 2 : 4; /* 1 decoder x 1 sampling x 2 sizes x 2 prompts */
        unlink(path);
        struct mtp_log_writer *w;
        assert_int_equal(mtp_log_open(path, NULL, &w), MTP_OK);
        assert_int_equal(mtp_log_write_plan(w, &plan), MTP_OK);
        mtp_log_close(w);
        struct mtp_log_reader *rd;
        const msgpack_object *o;
        assert_int_equal(read_first(path, "plan", &o, &rd), MTP_OK);
        struct mtp_log_plan back;
        int rc = mtp_log_plan_decode(o, &back);
        if (wrong) {
            assert_int_equal(rc, MTP_ERR);
            assert_non_null(strstr(mtp_error_message(), "batch sizes"));
        } else {
            assert_int_equal(rc, MTP_OK);
            assert_int_equal(back.n_batch_sizes, 2);
            assert_int_equal(back.batch_sizes[1], 8);
        }
        mtp_log_plan_free(&back);
        mtp_log_reader_close(rd);
    }
    mtp_log_plan_free(&plan);
    unlink(path);
}

/* ---- a raw packer for damaged records (the writer would refuse them) ---- */

static void raw_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void raw_i32s(msgpack_packer *pk, const char *key, const int32_t *v, int n)
{
    raw_str(pk, key);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_int32(pk, v[i]);
}

static void raw_u64s(msgpack_packer *pk, const char *key, const uint64_t *v, int n)
{
    raw_str(pk, key);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_uint64(pk, v[i]);
}

static void pack_raw(msgpack_sbuffer *sb, const struct mtp_log_batch_record *r)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 16);
    raw_str(&pk, "type");
    raw_str(&pk, "batch");
    raw_str(&pk, "decoder");
    raw_str(&pk, r->decoder);
    raw_str(&pk, "sampling_index");
    msgpack_pack_int(&pk, r->sampling_index);
    raw_str(&pk, "batch_size");
    msgpack_pack_int(&pk, r->batch_size);
    raw_str(&pk, "depth");
    msgpack_pack_int(&pk, r->depth);
    raw_str(&pk, "requests");
    msgpack_pack_array(&pk, (size_t)r->n_requests);
    for (int i = 0; i < r->n_requests; i++) {
        msgpack_pack_map(&pk, 3);
        raw_str(&pk, "dataset");
        raw_str(&pk, r->requests[i].dataset);
        raw_str(&pk, "prompt_id");
        raw_str(&pk, r->requests[i].prompt_id);
        raw_str(&pk, "repeat");
        msgpack_pack_int(&pk, r->requests[i].repeat);
    }
    raw_i32s(&pk, "n_seqs", r->n_seqs, r->n_steps);
    raw_i32s(&pk, "tokens", r->tokens, r->n_steps);
    raw_i32s(&pk, "members", r->members, 5);
    raw_str(&pk, "experts_touched");
    msgpack_pack_array(&pk, (size_t)r->n_steps);
    for (int s = 0; s < r->n_steps; s++) {
        msgpack_pack_array(&pk, (size_t)r->n_moe_layers);
        for (int l = 0; l < r->n_moe_layers; l++)
            msgpack_pack_int32(&pk, r->experts_touched[s * r->n_moe_layers + l]);
    }
    raw_u64s(&pk, "prefill_ns", r->prefill_ns, r->n_steps);
    raw_u64s(&pk, "draft_ns", r->draft_ns, r->n_steps);
    raw_u64s(&pk, "verify_ns", r->verify_ns, r->n_steps);
    raw_u64s(&pk, "accept_ns", r->accept_ns, r->n_steps);
    raw_str(&pk, "wall_ns");
    msgpack_pack_uint64(&pk, r->wall_ns);
    raw_str(&pk, "time_unix_ns");
    msgpack_pack_int64(&pk, r->time_unix_ns);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_log_batch_XXXXXX");
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
        cmocka_unit_test(test_resume_keys),
        cmocka_unit_test(test_hostile_records),
        cmocka_unit_test(test_members_length),
        cmocka_unit_test(test_plan_batch_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
