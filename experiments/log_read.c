/*
 * log_read.c - read MessagePack experiment logs (see log.h): iterate records,
 * query them, decode request records, and the finished-request key set that
 * resume uses.
 *
 * The file is memory-mapped. An mtpbench-log/2 file is a sequence of frames
 * (log_frame.h): each body is checked against its length and CRC before it is
 * parsed, so damage anywhere is found, and the reader can tell a frame cut off
 * by the end of the file (a killed writer: normal) from a damaged one that
 * more frames follow (never normal). With skip_damaged it resynchronises on
 * the next intact frame and counts what it skipped.
 *
 * An mtpbench-log/1 file (no frames) is parsed with msgpack_unpack_next, which
 * reports the exact byte offset of every record. MessagePack is prefix-free,
 * so "needs more bytes" at the end means the last record was cut off, while a
 * parse error is damage; /1 has no way to resynchronise after it.
 *
 * A "request" record is decoded and checked as soon as it is read
 * (log_check.h): one that fails is damage in both formats, named with its
 * offset and the key, failing the read or, with skip_damaged, skipped and
 * counted like a bad checksum. So `report`, `run --resume` and every other
 * reader see only records whose counts and indices mean what they say.
 */
#include "log.h"
#include "log_tree.h"

#include <errno.h>    /* defines: errno */
#include <jansson.h>  /* defines: json_t */
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: free */
#include <string.h>   /* defines: memcmp, strlen */
#include <sys/mman.h> /* defines: mmap, munmap */
#include <sys/stat.h> /* defines: fstat */
#include <unistd.h>   /* defines: close */

#include "../core/error.h"
#include "../engine/input_file.h" /* defines: mtp_input_open */
#include "log_batch.h"
#include "log_check.h" /* defines: mtp_log_check_request, mtp_log_obj_describe */
#include "log_frame.h" /* defines: mtp_log_frame_* */
#include "log_skim.h"  /* defines: mtp_log_skim_object */

struct mtp_log_reader {
    char *path;
    const char *data; /* mapping of the whole file (NULL when empty) */
    size_t size;
    size_t off;       /* end of the last record returned (or of a skipped damaged stretch) */
    bool partial;     /* the end was reached inside a record */
    int version;      /* 2: framed; 1: bare MessagePack maps */
    bool skip_damaged;
    struct mtp_log_damage damage;
    msgpack_unpacked result;
};

int mtp_log_reader_open(const char *path, struct mtp_log_reader **out)
{
    *out = NULL;
    struct stat st;
    int fd = mtp_input_open(path, &st); /* a FIFO is refused, never waited on */
    if (fd < 0)
        return mtp_error_wrap("LOG ");
    struct mtp_log_reader *r = mtp_xcalloc(1, sizeof *r);
    r->path = mtp_xstrdup(path);
    r->size = (size_t)st.st_size;
    if (r->size > 0) {
        void *map = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            mtp_log_reader_close(r);
            return mtp_error_set("LOG %s: cannot map: %s", path, strerror(err));
        }
        r->data = map;
    }
    close(fd);
    r->version = mtp_log_frame_detect((const uint8_t *)r->data, r->size) ? 2 : 1;
    msgpack_unpacked_init(&r->result);
    *out = r;
    return MTP_OK;
}

void mtp_log_reader_close(struct mtp_log_reader *r)
{
    if (!r)
        return;
    if (r->data)
        munmap((void *)r->data, r->size);
    msgpack_unpacked_destroy(&r->result);
    free(r->path);
    free(r);
}

void mtp_log_reader_skip_damaged(struct mtp_log_reader *r, bool skip) { r->skip_damaged = skip; }

int mtp_log_reader_version(const struct mtp_log_reader *r) { return r->version; }

void mtp_log_reader_damage(const struct mtp_log_reader *r, struct mtp_log_damage *out)
{
    *out = r->damage;
}

static const char TOO_DEEP[] = "MessagePack nested more than 32 levels deep; readers take at "
                               "most 32 (msgpack-c's limit)";

/* Is the record just parsed into r->result sound? A "request" or a "batch"
 * must decode and pass its checks; WHY gets the reason when not. */
static bool record_sound(const struct mtp_log_reader *r, char *why, size_t cap)
{
    char type[32];
    mtp_log_record_type(&r->result.data, type, sizeof type);
    int rc = MTP_OK;
    if (strcmp(type, "request") == 0) {
        struct mtp_request_record req;
        rc = mtp_log_decode_request(&r->result.data, &req);
        mtp_log_request_free(&req);
    } else if (strcmp(type, "batch") == 0) {
        struct mtp_log_batch_record b;
        rc = mtp_log_batch_decode(&r->result.data, &b);
        mtp_log_batch_free(&b);
    }
    if (rc)
        snprintf(why, cap, "%s", mtp_error_message());
    return rc == MTP_OK;
}

/* Is the body at [START, END) one sound MessagePack map with a string
 * "type"? It then sits in r->result. Else WHY says what it is. */
static bool parse_record(struct mtp_log_reader *r, size_t start, size_t end, char *why, size_t cap)
{
    char type[32];
    size_t skim_end, pos = start;
    snprintf(why, cap, "its %zu bytes pass the checksum but are not one map with a string "
             "\"type\"", end - start);
    /* Skim first: unpacking trusts declared sizes when it allocates (log_skim.h). */
    enum mtp_log_skim skim = mtp_log_skim_object(r->data, end, start, &skim_end);
    if (skim == MTP_LOG_SKIM_TOO_DEEP)
        snprintf(why, cap, "%s", TOO_DEEP);
    if (skim != MTP_LOG_SKIM_OK || skim_end != end)
        return false;
    msgpack_unpack_return ret = msgpack_unpack_next(&r->result, r->data, end, &pos);
    if ((ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES) || pos != end ||
        mtp_log_record_type(&r->result.data, type, sizeof type)[0] == '\0')
        return false;
    return record_sound(r, why, cap);
}

/* Damage at OFF (WHAT says how): fail naming the offset, or with skip_damaged
 * move past it to the next intact frame and count it. */
static int frame_damaged(struct mtp_log_reader *r, size_t off, const char *what)
{
    const uint8_t *d = (const uint8_t *)r->data;
    size_t next = mtp_log_frame_resync(d, r->size, off + 1);
    if (!r->skip_damaged) {
        if (next < r->size)
            return mtp_error_set("LOG %s: damaged record at byte offset %zu (%s); intact records "
                                 "follow at offset %zu, so this is damage, not a cut-off tail "
                                 "(report --skip-damaged skips it; run --resume refuses such a "
                                 "log)", r->path, off, what, next);
        return mtp_error_set("LOG %s: damaged record at byte offset %zu (%s); it is the last in "
                             "the file but not a cut-off tail (report --skip-damaged skips it)",
                             r->path, off, what);
    }
    int n = mtp_log_frame_count(d, off, next);
    if (r->damage.records == 0)
        r->damage.first_offset = off;
    r->damage.records += n > 0 ? n : 1;
    r->damage.bytes += next - off;
    r->off = next;
    return MTP_OK;
}

/* The next frame of a /2 log (see the file comment). */
static int next_framed(struct mtp_log_reader *r, const msgpack_object **rec, uint64_t *offset)
{
    const uint8_t *d = (const uint8_t *)r->data;
    while (r->off < r->size) {
        size_t start = r->off;
        uint32_t len, crc;
        char what[512];
        switch (mtp_log_frame_check(d, r->size, start, &len, &crc)) {
        case MTP_LOG_FRAME_OK:
            if (parse_record(r, start + MTP_LOG_FRAME_HEADER, start + MTP_LOG_FRAME_HEADER + len,
                             what, sizeof what)) {
                r->off = start + MTP_LOG_FRAME_HEADER + len;
                if (offset)
                    *offset = start;
                *rec = &r->result.data;
                return MTP_OK;
            }
            break;
        case MTP_LOG_FRAME_CUT:
            if (mtp_log_frame_resync(d, r->size, start + 1) == r->size) {
                r->partial = true; /* cut off: everything before START is whole */
                return MTP_OK;
            }
            snprintf(what, sizeof what, "its length %u runs past the records after it", len);
            break;
        case MTP_LOG_FRAME_BAD_CRC:
            snprintf(what, sizeof what, "checksum mismatch: crc32 %08x expected, %08x found",
                     mtp_log_frame_claimed_crc(d, start), crc);
            break;
        default: snprintf(what, sizeof what, "not a frame header"); break;
        }
        if (frame_damaged(r, start, what))
            return MTP_ERR;
    }
    return MTP_OK;
}

/* A /1 record at [START, END) that parsed but is not sound (WHY): fail, or
 * with skip_damaged step over it (its end is known) and count it. */
static int bare_damaged(struct mtp_log_reader *r, size_t start, size_t end, const char *why)
{
    if (!r->skip_damaged)
        return mtp_error_set("LOG %s: damaged record at byte offset %zu (%s) (report "
                             "--skip-damaged skips it; run --resume refuses such a log)",
                             r->path, start, why);
    if (r->damage.records == 0)
        r->damage.first_offset = start;
    r->damage.records++;
    r->damage.bytes += end - start;
    r->off = end;
    return MTP_OK;
}

/* The next record of a /1 log: bare MessagePack maps, no resynchronising
 * after bytes that do not parse. */
static int next_bare(struct mtp_log_reader *r, const msgpack_object **rec, uint64_t *offset)
{
    while (r->off < r->size) {
        size_t start = r->off, pos = r->off, end = r->size;
        char why[512];
        /* Skim first: unpacking trusts declared sizes when it allocates (log_skim.h). */
        enum mtp_log_skim skim = mtp_log_skim_object(r->data, r->size, start, &end);
        if (skim == MTP_LOG_SKIM_TOO_DEEP)
            return mtp_error_set("LOG %s: record at offset %zu: %s (damaged mtpbench-log/1 log)",
                                 r->path, start, TOO_DEEP);
        msgpack_unpack_return ret = skim == MTP_LOG_SKIM_CONTINUE ? MSGPACK_UNPACK_CONTINUE
                                    : skim == MTP_LOG_SKIM_ERROR
                                        ? MSGPACK_UNPACK_PARSE_ERROR
                                        : msgpack_unpack_next(&r->result, r->data, end, &pos);
        if (ret == MSGPACK_UNPACK_CONTINUE) {
            r->partial = true; /* cut off: everything before START is whole */
            return MTP_OK;
        }
        if (ret == MSGPACK_UNPACK_PARSE_ERROR)
            return mtp_error_set("LOG %s: bytes at offset %zu are not MessagePack (damaged "
                                 "mtpbench-log/1 log: it has no framing to skip damage with)",
                                 r->path, start);
        if (ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES)
            return mtp_error_set("LOG %s: record at offset %zu cannot be decoded (msgpack-c "
                                 "error %d)", r->path, start, (int)ret);
        char type[32];
        if (mtp_log_record_type(&r->result.data, type, sizeof type)[0] == '\0')
            return mtp_error_set("LOG %s: record at offset %zu: expected a map with a string "
                                 "\"type\", found something else (damaged log)", r->path, start);
        if (!record_sound(r, why, sizeof why)) {
            if (bare_damaged(r, start, pos, why))
                return MTP_ERR;
            continue;
        }
        r->off = pos;
        if (offset)
            *offset = start;
        *rec = &r->result.data;
        return MTP_OK;
    }
    return MTP_OK;
}

int mtp_log_reader_next(struct mtp_log_reader *r, const msgpack_object **rec, uint64_t *offset)
{
    *rec = NULL;
    if (r->off >= r->size || r->partial)
        return MTP_OK;
    return r->version == 2 ? next_framed(r, rec, offset) : next_bare(r, rec, offset);
}

bool mtp_log_reader_partial(const struct mtp_log_reader *r, uint64_t *at)
{
    if (at)
        *at = r->off;
    return r->partial;
}

uint64_t mtp_log_reader_offset(const struct mtp_log_reader *r) { return r->off; }

/* ---- generic queries ------------------------------------------------------ */

const msgpack_object *mtp_log_map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, key, n) == 0)
            return &kv->val;
    }
    return NULL;
}

bool mtp_log_obj_is_str(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

char *mtp_log_obj_strdup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    char *s = mtp_xmalloc(o->via.str.size + 1);
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    return s;
}

bool mtp_log_obj_int(const msgpack_object *o, int64_t *out)
{
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    return false;
}

bool mtp_log_obj_uint(const msgpack_object *o, uint64_t *out)
{
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return true;
    }
    return false;
}

bool mtp_log_obj_double(const msgpack_object *o, double *out)
{
    int64_t i;
    if (o && (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)) {
        *out = o->via.f64;
        return true;
    }
    if (mtp_log_obj_int(o, &i)) {
        *out = (double)i;
        return true;
    }
    return false;
}

const char *mtp_log_record_type(const msgpack_object *rec, char *buf, int cap)
{
    const msgpack_object *t = mtp_log_map_get(rec, "type");
    buf[0] = '\0';
    if (t && t->type == MSGPACK_OBJECT_STR && t->via.str.size > 0)
        snprintf(buf, (size_t)cap, "%.*s", (int)t->via.str.size, t->via.str.ptr);
    return buf;
}

/* ---- MessagePack -> JSON (for the spec in run records) --------------------- */

static json_t *obj_to_json_value(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 <= INT64_MAX ? json_integer((json_int_t)o->via.u64) : NULL;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *v = obj_to_json_value(&o->via.array.ptr[i]);
            if (!v || json_array_append_new(a, v) != 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *v = kv->key.type == MSGPACK_OBJECT_STR ? obj_to_json_value(&kv->val) : NULL;
            if (!v || json_object_setn_new(m, kv->key.via.str.ptr, kv->key.via.str.size, v)) {
                json_decref(m);
                m = NULL;
            }
        }
        return m;
    }
    default: return NULL; /* binary, ext: not JSON */
    }
}

char *mtp_log_obj_to_json(const msgpack_object *o)
{
    json_t *j = o ? obj_to_json_value(o) : NULL;
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

/* ---- request records ------------------------------------------------------ */

static int bad_key(const char *key, const char *expected)
{
    return mtp_error_set("request record: key '%s': expected %s", key, expected);
}

static int get_str(const msgpack_object *rec, const char *key, char **out)
{
    *out = mtp_log_obj_strdup(mtp_log_map_get(rec, key));
    return *out ? MTP_OK : bad_key(key, "string");
}

/* An integer in LO..HI at KEY. */
static int get_range(const msgpack_object *rec, const char *key, int lo, int hi, const char *what,
                     int *out)
{
    int64_t v;
    const msgpack_object *o = mtp_log_map_get(rec, key);
    if (!mtp_log_obj_int(o, &v) || v < lo || v > hi) {
        char found[48];
        return mtp_error_set("request record: key '%s': expected an integer in %d..%d%s, found %s",
                             key, lo, hi, what, mtp_log_obj_describe(o, found, sizeof found));
    }
    *out = (int)v;
    return MTP_OK;
}

static int get_i(const msgpack_object *rec, const char *key, int lo, int *out)
{
    return get_range(rec, key, lo, INT32_MAX, "", out);
}

static int get_u(const msgpack_object *rec, const char *key, uint64_t *out)
{
    return mtp_log_obj_uint(mtp_log_map_get(rec, key), out) ? MTP_OK
                                                            : bad_key(key, "non-negative integer");
}

static int get_f(const msgpack_object *rec, const char *key, double *out)
{
    return mtp_log_obj_double(mtp_log_map_get(rec, key), out) ? MTP_OK : bad_key(key, "number");
}

/* An integer array of length N (N < 0: any length, returned in *N). */
static int get_i32s(const msgpack_object *o, const char *key, int *n, int32_t **out)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (*n >= 0 && (int)o->via.array.size != *n))
        return bad_key(key, *n >= 0 ? "array of one integer per step" : "array of integers");
    *n = (int)o->via.array.size;
    *out = mtp_xcalloc((size_t)*n, sizeof **out);
    for (int i = 0; i < *n; i++) {
        int64_t v;
        if (!mtp_log_obj_int(&o->via.array.ptr[i], &v) || v < INT32_MIN || v > INT32_MAX) {
            char found[48];
            return mtp_error_set("request record: key '%s': element %d: expected a 32-bit "
                                 "integer, found %s", key, i,
                                 mtp_log_obj_describe(&o->via.array.ptr[i], found, sizeof found));
        }
        (*out)[i] = (int32_t)v;
    }
    return MTP_OK;
}

static int get_u64s(const msgpack_object *rec, const char *key, int n, uint64_t **out)
{
    const msgpack_object *o = mtp_log_map_get(rec, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int)o->via.array.size != n)
        return bad_key(key, "array of one non-negative integer per step");
    *out = mtp_xcalloc((size_t)n, sizeof **out);
    for (int i = 0; i < n; i++)
        if (!mtp_log_obj_uint(&o->via.array.ptr[i], &(*out)[i]))
            return bad_key(key, "non-negative integers");
    return MTP_OK;
}

static int decode_enums(const msgpack_object *rec, struct mtp_request_record *out)
{
    const msgpack_object *mode = mtp_log_map_get(rec, "mode");
    const msgpack_object *dr = mtp_log_map_get(rec, "drafting");
    const msgpack_object *stop = mtp_log_map_get(rec, "stop_reason");
    if (mtp_log_obj_is_str(mode, "baseline"))
        out->mode = MTP_SPEC_DECODER_BASELINE;
    else if (mtp_log_obj_is_str(mode, "mtp"))
        out->mode = MTP_SPEC_DECODER_MTP;
    else if (mtp_log_obj_is_str(mode, "adaptive"))
        out->mode = MTP_SPEC_DECODER_ADAPTIVE;
    else
        return bad_key("mode", "\"baseline\", \"mtp\" or \"adaptive\"");
    if (mtp_log_obj_is_str(dr, "none"))
        out->drafting = MTP_SPEC_DRAFTING_NONE;
    else if (mtp_log_obj_is_str(dr, "exact"))
        out->drafting = MTP_SPEC_DRAFTING_EXACT;
    else if (mtp_log_obj_is_str(dr, "chain"))
        out->drafting = MTP_SPEC_DRAFTING_CHAIN;
    else
        return bad_key("drafting", "\"none\", \"exact\" or \"chain\"");
    if (mtp_log_obj_is_str(stop, "eos"))
        out->stop_reason = MTP_LOG_STOP_EOS;
    else if (mtp_log_obj_is_str(stop, "max_tokens"))
        out->stop_reason = MTP_LOG_STOP_MAX_TOKENS;
    else
        return bad_key("stop_reason", "\"eos\" or \"max_tokens\"");
    return MTP_OK;
}

static int decode_experts(const msgpack_object *rec, struct mtp_request_record *out)
{
    const msgpack_object *o = mtp_log_map_get(rec, "experts_touched");
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return o ? MTP_OK : bad_key("experts_touched", "array or nil");
    if (o->type != MSGPACK_OBJECT_ARRAY || (int)o->via.array.size != out->n_steps)
        return bad_key("experts_touched", "one array per step, or nil");
    int layers = out->n_steps > 0 && o->via.array.ptr[0].type == MSGPACK_OBJECT_ARRAY
                     ? (int)o->via.array.ptr[0].via.array.size : 0;
    /* Every row as long as the first before steps x layers is allocated. */
    for (int s = 0; s < out->n_steps; s++) {
        const msgpack_object *row = &o->via.array.ptr[s];
        if (row->type != MSGPACK_OBJECT_ARRAY || (int64_t)row->via.array.size != layers)
            return mtp_error_set("request record: key 'experts_touched': step %d: expected an "
                                 "array of %d (one per MoE layer, as step 0)", s, layers);
    }
    out->n_moe_layers = layers;
    out->experts_touched = mtp_xcalloc((size_t)out->n_steps * (size_t)layers + 1, sizeof(int32_t));
    for (int s = 0; s < out->n_steps; s++) {
        int n = layers;
        int32_t *row = NULL;
        int rc = get_i32s(&o->via.array.ptr[s], "experts_touched[step]", &n, &row);
        if (rc == MTP_OK)
            memcpy(out->experts_touched + (size_t)s * (size_t)layers, row,
                   (size_t)layers * sizeof *row);
        free(row);
        if (rc)
            return MTP_ERR;
    }
    return MTP_OK;
}

/* "turn" and "prompt_cached" (multi-turn, issue 29) and "batch_size"
 * (issue 25): absent in older logs, which read as turn 0 with a fresh
 * prefill, decoded alone. */
static int decode_turn(const msgpack_object *rec, struct mtp_request_record *r)
{
    const msgpack_object *turn = mtp_log_map_get(rec, "turn");
    const msgpack_object *cached = mtp_log_map_get(rec, "prompt_cached");
    const msgpack_object *batch = mtp_log_map_get(rec, "batch_size");
    int64_t v;
    r->batch_size = 1;
    if (batch) {
        if (!mtp_log_obj_int(batch, &v) || v < 1 || v > MTP_SPEC_MAX_BATCH)
            return bad_key("batch_size", "integer 1..256 (MTP_SPEC_MAX_BATCH)");
        r->batch_size = (int)v;
    }
    if (turn) {
        if (!mtp_log_obj_int(turn, &v) || v < 0 || v > INT32_MAX)
            return bad_key("turn", "integer >= 0");
        r->turn = (int)v;
    }
    if (cached) {
        if (!mtp_log_obj_int(cached, &v) || v < 0 || v > INT32_MAX)
            return bad_key("prompt_cached", "integer >= 0");
        r->prompt_cached = (int)v;
    }
    return MTP_OK;
}

static int decode_head(const msgpack_object *rec, struct mtp_request_record *r)
{
    int64_t t;
    if (!mtp_log_obj_is_str(mtp_log_map_get(rec, "type"), "request"))
        return bad_key("type", "\"request\"");
    if (get_str(rec, "decoder", &r->decoder) ||
        get_range(rec, "depth", 0, MTP_SPEC_MAX_DEPTH, " (the deepest a spec allows)", &r->depth) ||
        get_i(rec, "sampling_index", 0, &r->sampling_index) ||
        get_f(rec, "temperature", &r->temperature) || get_f(rec, "top_p", &r->top_p) ||
        get_i(rec, "top_k", 0, &r->top_k) || get_u(rec, "seed", &r->seed) ||
        get_str(rec, "dataset", &r->dataset) || get_str(rec, "category", &r->category) ||
        get_str(rec, "prompt_id", &r->prompt_id) || get_i(rec, "repeat", 0, &r->repeat) ||
        get_i(rec, "prompt_tokens", 0, &r->prompt_tokens) || decode_turn(rec, r) ||
        decode_enums(rec, r) ||
        get_u(rec, "ttft_ns", &r->ttft_ns) || get_u(rec, "total_ns", &r->total_ns))
        return MTP_ERR;
    if (!mtp_log_obj_int(mtp_log_map_get(rec, "time_unix_ns"), &t))
        return bad_key("time_unix_ns", "integer");
    r->time_unix_ns = t;
    return MTP_OK;
}

/* Optional "wiring" map (MTP records since issue 11). */
static int decode_wiring(const msgpack_object *rec, struct mtp_request_record *r)
{
    const msgpack_object *w = mtp_log_map_get(rec, "wiring");
    if (!w || w->type == MSGPACK_OBJECT_NIL)
        return MTP_OK;
    if (w->type != MSGPACK_OBJECT_MAP)
        return bad_key("wiring", "map {draft_hidden, position0_embedding, module_hidden}");
    for (int f = 0; f < MTP_WIRING_FIELD_COUNT; f++) {
        r->wiring[f] = mtp_log_obj_strdup(mtp_log_map_get(w, mtp_wiring_field_name(f)));
        if (!r->wiring[f])
            return bad_key("wiring", "map of strings draft_hidden, position0_embedding, "
                                     "module_hidden");
    }
    return MTP_OK;
}

/* The adaptive-depth fields and draft_vocab (new body fields; absent in
 * other records). */
static int decode_adaptive(const msgpack_object *rec, struct mtp_request_record *r)
{
    r->adaptive_threshold = -1;
    const msgpack_object *vocab = mtp_log_map_get(rec, "draft_vocab");
    int64_t nv = 0;
    if (vocab && !(mtp_log_obj_int(vocab, &nv) && nv >= 1 && nv <= INT32_MAX))
        return bad_key("draft_vocab", "integer >= 1");
    r->draft_vocab = (int)nv;
    const msgpack_object *drafted = mtp_log_map_get(rec, "drafted");
    int n = r->n_steps;
    if (drafted && drafted->type != MSGPACK_OBJECT_NIL &&
        get_i32s(drafted, "drafted", &n, &r->drafted))
        return MTP_ERR;
    if (!mtp_log_map_get(rec, "adaptive_rule"))
        return MTP_OK;
    if (get_str(rec, "adaptive_rule", &r->adaptive_rule))
        return MTP_ERR;
    return mtp_log_obj_double(mtp_log_map_get(rec, "adaptive_threshold"), &r->adaptive_threshold)
               ? MTP_OK : bad_key("adaptive_threshold", "number");
}

int mtp_log_decode_request(const msgpack_object *rec, struct mtp_request_record *r)
{
    memset(r, 0, sizeof *r);
    if (decode_head(rec, r))
        return MTP_ERR;
    const msgpack_object *ids = mtp_log_map_get(rec, "prompt_ids");
    int n_prompt = r->prompt_tokens;
    if (ids && ids->type != MSGPACK_OBJECT_NIL &&
        get_i32s(ids, "prompt_ids", &n_prompt, &r->prompt_ids))
        return MTP_ERR;
    r->n_output = -1;
    r->n_steps = -1;
    if (get_i32s(mtp_log_map_get(rec, "output_tokens"), "output_tokens", &r->n_output,
                 &r->output_tokens) ||
        get_i32s(mtp_log_map_get(rec, "accepted"), "accepted", &r->n_steps, &r->accepted))
        return MTP_ERR;
    const msgpack_object *uncut = mtp_log_map_get(rec, "accepted_uncut");
    int n_uncut = r->n_steps;
    if (uncut && uncut->type != MSGPACK_OBJECT_NIL &&
        get_i32s(uncut, "accepted_uncut", &n_uncut, &r->accepted_uncut))
        return MTP_ERR;
    if (decode_wiring(rec, r) || decode_adaptive(rec, r) || mtp_log_decode_tree(rec, r))
        return MTP_ERR;
    if (get_u64s(rec, "draft_ns", r->n_steps, &r->draft_ns) ||
        get_u64s(rec, "verify_ns", r->n_steps, &r->verify_ns) ||
        get_u64s(rec, "accept_ns", r->n_steps, &r->accept_ns) ||
        get_u64s(rec, "update_ns", r->n_steps, &r->update_ns))
        return MTP_ERR;
    return decode_experts(rec, r) || mtp_log_check_request(r) ? MTP_ERR : MTP_OK;
}

void mtp_log_request_free(struct mtp_request_record *r)
{
    if (!r)
        return;
    free(r->decoder);
    free(r->dataset);
    free(r->category);
    free(r->prompt_id);
    free(r->prompt_ids);
    free(r->output_tokens);
    free(r->accepted);
    free(r->accepted_uncut);
    free(r->drafted);
    free(r->adaptive_rule);
    mtp_log_tree_free(r);
    for (int f = 0; f < MTP_WIRING_FIELD_COUNT; f++)
        free(r->wiring[f]);
    free(r->draft_ns);
    free(r->verify_ns);
    free(r->accept_ns);
    free(r->update_ns);
    free(r->experts_touched);
    memset(r, 0, sizeof *r);
}

/* ---- finished-request keys ------------------------------------------------ */

/* Open addressing over composed key strings; the table stays at most half full. */
struct mtp_log_keyset {
    char **slots;
    size_t cap; /* power of two */
    int n;
};

static char *compose_key(const char *decoder, int sampling_index, const char *dataset,
                         const char *prompt_id, int repeat, int turn, int batch_size)
{
    /* 0x1F (unit separator) cannot appear in decoder names or dataset stems.
     * Turn 0 and batch size 1 keep the key of logs written before turns and
     * batches existed. */
    char tail[48] = "";
    if (turn > 0 || batch_size > 1)
        snprintf(tail, sizeof tail, "\x1f%d", turn);
    if (batch_size > 1)
        snprintf(tail + strlen(tail), sizeof tail - strlen(tail), "\x1f" "b%d", batch_size);
    int n = snprintf(NULL, 0, "%s\x1f%d\x1f%s\x1f%s\x1f%d%s", decoder, sampling_index, dataset,
                     prompt_id, repeat, tail);
    char *s = mtp_xmalloc((size_t)n + 1);
    snprintf(s, (size_t)n + 1, "%s\x1f%d\x1f%s\x1f%s\x1f%d%s", decoder, sampling_index, dataset,
             prompt_id, repeat, tail);
    return s;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

struct mtp_log_keyset *mtp_log_keyset_create(void)
{
    struct mtp_log_keyset *s = mtp_xcalloc(1, sizeof *s);
    s->cap = 64;
    s->slots = mtp_xcalloc(s->cap, sizeof *s->slots);
    return s;
}

void mtp_log_keyset_free(struct mtp_log_keyset *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    free(s);
}

/* The slot holding KEY, or the empty slot where it would go. */
static size_t find_slot(char *const *slots, size_t cap, const char *key)
{
    size_t i = (size_t)hash_str(key) & (cap - 1);
    while (slots[i] && strcmp(slots[i], key) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static void keyset_grow(struct mtp_log_keyset *s)
{
    size_t cap = s->cap * 2;
    char **slots = mtp_xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            slots[find_slot(slots, cap, s->slots[i])] = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
}

void mtp_log_keyset_add_batch(struct mtp_log_keyset *s, const char *decoder, int sampling_index,
                              const char *dataset, const char *prompt_id, int repeat, int turn,
                              int batch_size)
{
    if ((size_t)(s->n + 1) * 2 > s->cap)
        keyset_grow(s);
    char *key = compose_key(decoder, sampling_index, dataset, prompt_id, repeat, turn, batch_size);
    size_t i = find_slot(s->slots, s->cap, key);
    if (s->slots[i]) {
        free(key);
        return;
    }
    s->slots[i] = key;
    s->n++;
}

bool mtp_log_keyset_contains_batch(const struct mtp_log_keyset *s, const char *decoder,
                                   int sampling_index, const char *dataset,
                                   const char *prompt_id, int repeat, int turn, int batch_size)
{
    char *key = compose_key(decoder, sampling_index, dataset, prompt_id, repeat, turn, batch_size);
    bool found = s->slots[find_slot(s->slots, s->cap, key)] != NULL;
    free(key);
    return found;
}

void mtp_log_keyset_add_turn(struct mtp_log_keyset *s, const char *decoder, int sampling_index,
                             const char *dataset, const char *prompt_id, int repeat, int turn)
{
    mtp_log_keyset_add_batch(s, decoder, sampling_index, dataset, prompt_id, repeat, turn, 1);
}

bool mtp_log_keyset_contains_turn(const struct mtp_log_keyset *s, const char *decoder,
                                  int sampling_index, const char *dataset, const char *prompt_id,
                                  int repeat, int turn)
{
    return mtp_log_keyset_contains_batch(s, decoder, sampling_index, dataset, prompt_id, repeat,
                                         turn, 1);
}

void mtp_log_keyset_add_record(struct mtp_log_keyset *s, const struct mtp_request_record *r)
{
    mtp_log_keyset_add_batch(s, r->decoder, r->sampling_index, r->dataset, r->prompt_id,
                             r->repeat, r->turn, r->batch_size);
}

bool mtp_log_keyset_contains_record(const struct mtp_log_keyset *s,
                                    const struct mtp_request_record *r)
{
    return mtp_log_keyset_contains_batch(s, r->decoder, r->sampling_index, r->dataset,
                                         r->prompt_id, r->repeat, r->turn, r->batch_size);
}

void mtp_log_keyset_add(struct mtp_log_keyset *s, const char *decoder, int sampling_index,
                        const char *dataset, const char *prompt_id, int repeat)
{
    mtp_log_keyset_add_turn(s, decoder, sampling_index, dataset, prompt_id, repeat, 0);
}

bool mtp_log_keyset_contains(const struct mtp_log_keyset *s, const char *decoder,
                             int sampling_index, const char *dataset, const char *prompt_id,
                             int repeat)
{
    return mtp_log_keyset_contains_turn(s, decoder, sampling_index, dataset, prompt_id, repeat, 0);
}

int mtp_log_keyset_size(const struct mtp_log_keyset *s) { return s->n; }
