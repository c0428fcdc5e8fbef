/*
 * log_batch.c - pack, decode and check the "batch" record (see log_batch.h
 * and spec/log-format.md, "batch").
 */
#include "log_batch.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strlen, memset */
#include <time.h>   /* defines: clock_gettime */

#include "../core/error.h"
#include "log_check.h" /* defines: mtp_log_obj_describe */
#include "log_pack.h"  /* defines: mtp_log_pack_str, mtp_log_pack_i32s */

/* ---- checks ------------------------------------------------------------------ */

static int check_step(const struct mtp_log_batch_record *r, int s, int off)
{
    int n = r->n_seqs[s];
    if (n < 1 || n > r->batch_size)
        return mtp_error_set("batch record: key 'n_seqs': step %d: expected 1..%d (batch_size), "
                             "found %d", s, r->batch_size, n);
    long hi = (long)n * (r->depth + 1);
    if (r->tokens[s] < n || r->tokens[s] > hi)
        return mtp_error_set("batch record: key 'tokens': step %d: expected %d..%ld (n_seqs .. "
                             "n_seqs x (depth + 1)), found %d", s, n, hi, r->tokens[s]);
    for (int i = 0; i < n; i++) {
        int m = r->members[off + i];
        if (m < 0 || m >= r->n_requests)
            return mtp_error_set("batch record: key 'members': step %d: expected a request "
                                 "index 0..%d, found %d", s, r->n_requests - 1, m);
        for (int j = 0; j < i; j++)
            if (r->members[off + j] == m)
                return mtp_error_set("batch record: key 'members': step %d: request %d appears "
                                     "twice in one step", s, m);
    }
    for (int l = 0; r->experts_touched && l < r->n_moe_layers; l++)
        if (r->experts_touched[(size_t)s * r->n_moe_layers + l] < 0)
            return mtp_error_set("batch record: key 'experts_touched': step %d layer %d: "
                                 "expected >= 0, found %d", s, l,
                                 r->experts_touched[(size_t)s * r->n_moe_layers + l]);
    return MTP_OK;
}

int mtp_log_batch_check(const struct mtp_log_batch_record *r)
{
    if (!r->decoder)
        return mtp_error_set("batch record: key 'decoder': expected a string");
    if (r->batch_size < 1 || r->batch_size > MTP_SPEC_MAX_BATCH)
        return mtp_error_set("batch record: key 'batch_size': expected 1..%d, found %d",
                             MTP_SPEC_MAX_BATCH, r->batch_size);
    if (r->depth < 0 || r->depth > MTP_SPEC_MAX_DEPTH)
        return mtp_error_set("batch record: key 'depth': expected 0..%d, found %d",
                             MTP_SPEC_MAX_DEPTH, r->depth);
    if (r->sampling_index < 0 || r->n_steps < 0 || r->n_requests < 0 || r->n_moe_layers < 0)
        return mtp_error_set("batch record: negative count (sampling_index %d, steps %d, "
                             "requests %d, MoE layers %d)", r->sampling_index, r->n_steps,
                             r->n_requests, r->n_moe_layers);
    for (int i = 0; i < r->n_requests; i++)
        if (!r->requests[i].dataset || !r->requests[i].prompt_id || r->requests[i].repeat < 0)
            return mtp_error_set("batch record: key 'requests': element %d: expected dataset, "
                                 "prompt_id and repeat >= 0", i);
    int off = 0;
    for (int s = 0; s < r->n_steps; s++) {
        if (check_step(r, s, off))
            return MTP_ERR;
        off += r->n_seqs[s];
    }
    return MTP_OK;
}

/* ---- packing ------------------------------------------------------------------ */

static void pack_requests(msgpack_packer *pk, const struct mtp_log_batch_record *r)
{
    mtp_log_pack_str(pk, "requests");
    msgpack_pack_array(pk, (size_t)r->n_requests);
    for (int i = 0; i < r->n_requests; i++) {
        msgpack_pack_map(pk, 3);
        mtp_log_pack_str(pk, "dataset");
        mtp_log_pack_str(pk, r->requests[i].dataset);
        mtp_log_pack_str(pk, "prompt_id");
        mtp_log_pack_str(pk, r->requests[i].prompt_id);
        mtp_log_pack_str(pk, "repeat");
        msgpack_pack_int64(pk, r->requests[i].repeat);
    }
}

static void pack_experts(msgpack_packer *pk, const struct mtp_log_batch_record *r)
{
    mtp_log_pack_str(pk, "experts_touched");
    if (!r->experts_touched || r->n_moe_layers == 0) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_array(pk, (size_t)r->n_steps);
    for (int s = 0; s < r->n_steps; s++) {
        msgpack_pack_array(pk, (size_t)r->n_moe_layers);
        for (int l = 0; l < r->n_moe_layers; l++)
            msgpack_pack_int32(pk, r->experts_touched[(size_t)s * r->n_moe_layers + l]);
    }
}

static int64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pack_batch(msgpack_packer *pk, const void *arg)
{
    const struct mtp_log_batch_record *r = arg;
    size_t n_members = 0;
    for (int s = 0; s < r->n_steps; s++)
        n_members += (size_t)r->n_seqs[s];
    msgpack_pack_map(pk, 16);
    mtp_log_pack_str(pk, "type");
    mtp_log_pack_str(pk, "batch");
    mtp_log_pack_str(pk, "decoder");
    mtp_log_pack_str(pk, r->decoder);
    mtp_log_pack_str(pk, "sampling_index");
    msgpack_pack_int64(pk, r->sampling_index);
    mtp_log_pack_str(pk, "batch_size");
    msgpack_pack_int64(pk, r->batch_size);
    mtp_log_pack_str(pk, "depth");
    msgpack_pack_int64(pk, r->depth);
    pack_requests(pk, r);
    mtp_log_pack_i32s(pk, "n_seqs", r->n_seqs, (size_t)r->n_steps);
    mtp_log_pack_i32s(pk, "tokens", r->tokens, (size_t)r->n_steps);
    mtp_log_pack_i32s(pk, "members", r->members, n_members);
    pack_experts(pk, r);
    size_t n = (size_t)r->n_steps;
    mtp_log_pack_u64s(pk, "prefill_ns", r->prefill_ns, n);
    mtp_log_pack_u64s(pk, "draft_ns", r->draft_ns, n);
    mtp_log_pack_u64s(pk, "verify_ns", r->verify_ns, n);
    mtp_log_pack_u64s(pk, "accept_ns", r->accept_ns, n);
    mtp_log_pack_str(pk, "wall_ns");
    msgpack_pack_uint64(pk, r->wall_ns);
    mtp_log_pack_str(pk, "time_unix_ns");
    msgpack_pack_int64(pk, r->time_unix_ns ? r->time_unix_ns : now_unix_ns());
}

int mtp_log_write_batch(struct mtp_log_writer *w, const struct mtp_log_batch_record *r)
{
    if (mtp_log_batch_check(r))
        return mtp_error_wrap("LOG %s: ", mtp_log_writer_path(w));
    return mtp_log_write_packed(w, pack_batch, r);
}

/* ---- decoding ------------------------------------------------------------------ */

static int bad_key(const char *key, const char *expected, const msgpack_object *found)
{
    char what[48];
    return mtp_error_set("batch record: key '%s': expected %s, found %s", key, expected,
                         mtp_log_obj_describe(found, what, sizeof what));
}

static int get_int(const msgpack_object *rec, const char *key, int64_t lo, int64_t hi, int *out)
{
    const msgpack_object *o = mtp_log_map_get(rec, key);
    int64_t v;
    if (!mtp_log_obj_int(o, &v) || v < lo || v > hi) {
        char expected[64];
        snprintf(expected, sizeof expected, "an integer in %lld..%lld", (long long)lo,
                 (long long)hi);
        return bad_key(key, expected, o);
    }
    *out = (int)v;
    return MTP_OK;
}

/* An array at KEY of N 32-bit integers (N < 0: any length, set). */
static int get_i32s(const msgpack_object *rec, const char *key, int *n, int32_t **out)
{
    const msgpack_object *o = mtp_log_map_get(rec, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (*n >= 0 && (int64_t)o->via.array.size != *n))
        return bad_key(key, *n >= 0 ? "an array of one integer per step" : "an array", o);
    *n = (int)o->via.array.size;
    *out = mtp_xcalloc((size_t)*n + 1, sizeof **out);
    for (int i = 0; i < *n; i++) {
        int64_t v;
        if (!mtp_log_obj_int(&o->via.array.ptr[i], &v) || v < INT32_MIN || v > INT32_MAX)
            return bad_key(key, "32-bit integers", &o->via.array.ptr[i]);
        (*out)[i] = (int32_t)v;
    }
    return MTP_OK;
}

static int get_u64s(const msgpack_object *rec, const char *key, int n, uint64_t **out)
{
    const msgpack_object *o = mtp_log_map_get(rec, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int64_t)o->via.array.size != n)
        return bad_key(key, "an array of one non-negative integer per step", o);
    *out = mtp_xcalloc((size_t)n + 1, sizeof **out);
    for (int i = 0; i < n; i++)
        if (!mtp_log_obj_uint(&o->via.array.ptr[i], &(*out)[i]))
            return bad_key(key, "non-negative integers", &o->via.array.ptr[i]);
    return MTP_OK;
}

static int decode_requests(const msgpack_object *rec, struct mtp_log_batch_record *r)
{
    const msgpack_object *a = mtp_log_map_get(rec, "requests");
    if (!a || a->type != MSGPACK_OBJECT_ARRAY)
        return bad_key("requests", "an array of {dataset, prompt_id, repeat}", a);
    r->requests = mtp_xcalloc((size_t)a->via.array.size + 1, sizeof *r->requests);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *q = &a->via.array.ptr[i];
        struct mtp_log_batch_request *out = &r->requests[i];
        r->n_requests = (int)i + 1;
        out->dataset = mtp_log_obj_strdup(mtp_log_map_get(q, "dataset"));
        out->prompt_id = mtp_log_obj_strdup(mtp_log_map_get(q, "prompt_id"));
        if (!out->dataset || !out->prompt_id || get_int(q, "repeat", 0, INT32_MAX, &out->repeat))
            return mtp_error_set("batch record: key 'requests': element %u: expected a map of "
                                 "string dataset, string prompt_id and integer repeat >= 0", i);
    }
    return MTP_OK;
}

/* experts_touched: nil, or one row of n_moe_layers integers per step. */
static int decode_experts(const msgpack_object *rec, struct mtp_log_batch_record *r)
{
    const msgpack_object *o = mtp_log_map_get(rec, "experts_touched");
    if (o && o->type == MSGPACK_OBJECT_NIL)
        return MTP_OK;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int64_t)o->via.array.size != r->n_steps)
        return bad_key("experts_touched", "nil or an array of one row per step", o);
    if (r->n_steps == 0)
        return MTP_OK;
    const msgpack_object *row0 = &o->via.array.ptr[0];
    if (row0->type != MSGPACK_OBJECT_ARRAY || row0->via.array.size > 4096)
        return bad_key("experts_touched", "rows of at most 4096 integers", row0);
    r->n_moe_layers = (int)row0->via.array.size;
    r->experts_touched = mtp_xcalloc((size_t)r->n_steps * r->n_moe_layers + 1, sizeof(int32_t));
    for (int s = 0; s < r->n_steps; s++) {
        const msgpack_object *row = &o->via.array.ptr[s];
        if (row->type != MSGPACK_OBJECT_ARRAY || (int)row->via.array.size != r->n_moe_layers)
            return mtp_error_set("batch record: key 'experts_touched': step %d: expected %d "
                                 "integers (as step 0)", s, r->n_moe_layers);
        for (int l = 0; l < r->n_moe_layers; l++) {
            int64_t v;
            if (!mtp_log_obj_int(&row->via.array.ptr[l], &v) || v < 0 || v > INT32_MAX)
                return mtp_error_set("batch record: key 'experts_touched': step %d layer %d: "
                                     "expected an integer >= 0", s, l);
            r->experts_touched[(size_t)s * r->n_moe_layers + l] = (int32_t)v;
        }
    }
    return MTP_OK;
}

static int decode_steps(const msgpack_object *rec, struct mtp_log_batch_record *r)
{
    int n = -1;
    if (get_i32s(rec, "n_seqs", &n, &r->n_seqs))
        return MTP_ERR;
    r->n_steps = n;
    int64_t members = 0;
    for (int s = 0; s < n; s++) {
        if (r->n_seqs[s] < 1 || r->n_seqs[s] > r->batch_size)
            return mtp_error_set("batch record: key 'n_seqs': step %d: expected 1..%d "
                                 "(batch_size), found %d", s, r->batch_size, r->n_seqs[s]);
        members += r->n_seqs[s];
    }
    int nm = (int)members;
    if (get_i32s(rec, "tokens", &n, &r->tokens) || get_i32s(rec, "members", &nm, &r->members))
        return MTP_ERR;
    if (nm != members)
        return mtp_error_set("batch record: key 'members': expected sum(n_seqs) = %lld entries, "
                             "found %d", (long long)members, nm);
    return get_u64s(rec, "prefill_ns", n, &r->prefill_ns) ||
                   get_u64s(rec, "draft_ns", n, &r->draft_ns) ||
                   get_u64s(rec, "verify_ns", n, &r->verify_ns) ||
                   get_u64s(rec, "accept_ns", n, &r->accept_ns) || decode_experts(rec, r)
               ? MTP_ERR : MTP_OK;
}

int mtp_log_batch_decode(const msgpack_object *rec, struct mtp_log_batch_record *out)
{
    memset(out, 0, sizeof *out);
    int64_t t;
    if (!mtp_log_obj_is_str(mtp_log_map_get(rec, "type"), "batch"))
        return bad_key("type", "\"batch\"", mtp_log_map_get(rec, "type"));
    out->decoder = mtp_log_obj_strdup(mtp_log_map_get(rec, "decoder"));
    if (!out->decoder)
        return bad_key("decoder", "a string", mtp_log_map_get(rec, "decoder"));
    if (get_int(rec, "sampling_index", 0, INT32_MAX, &out->sampling_index) ||
        get_int(rec, "batch_size", 1, MTP_SPEC_MAX_BATCH, &out->batch_size) ||
        get_int(rec, "depth", 0, MTP_SPEC_MAX_DEPTH, &out->depth) || decode_requests(rec, out) ||
        decode_steps(rec, out))
        return MTP_ERR;
    if (!mtp_log_obj_uint(mtp_log_map_get(rec, "wall_ns"), &out->wall_ns))
        return bad_key("wall_ns", "a non-negative integer", mtp_log_map_get(rec, "wall_ns"));
    if (!mtp_log_obj_int(mtp_log_map_get(rec, "time_unix_ns"), &t))
        return bad_key("time_unix_ns", "an integer", mtp_log_map_get(rec, "time_unix_ns"));
    out->time_unix_ns = t;
    return mtp_log_batch_check(out);
}

void mtp_log_batch_free(struct mtp_log_batch_record *r)
{
    free(r->decoder);
    for (int i = 0; r->requests && i < r->n_requests; i++) {
        free(r->requests[i].dataset);
        free(r->requests[i].prompt_id);
    }
    free(r->requests);
    free(r->n_seqs);
    free(r->tokens);
    free(r->members);
    free(r->experts_touched);
    free(r->prefill_ns);
    free(r->draft_ns);
    free(r->verify_ns);
    free(r->accept_ns);
    memset(r, 0, sizeof *r);
}
