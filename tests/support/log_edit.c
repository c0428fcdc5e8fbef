/* log_edit.c - field-level edits of mtpbench-log/2 logs (log_edit.h). No
 * cmocka here: the fuzz targets link this file too. */
#include "log_edit.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>  /* defines: fopen, perror */
#include <stdlib.h> /* defines: abort, malloc */
#include <string.h> /* defines: memcpy, strlen */

#include "experiments/log_frame.h" /* defines: mtp_log_frame_check, mtp_log_frame_encode */

/* Element I (modulo the size) of container O, or NULL when O is not one or
 * is empty. For a map: the value of that entry. */
static msgpack_object *element(msgpack_object *o, int i)
{
    if (i < 0)
        return o;
    if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0)
        return &o->via.array.ptr[(uint32_t)i % o->via.array.size];
    if (o->type == MSGPACK_OBJECT_MAP && o->via.map.size > 0)
        return &o->via.map.ptr[(uint32_t)i % o->via.map.size].val;
    return NULL;
}

/* The entry of map REC that E addresses, or NULL. */
static msgpack_object_kv *entry(msgpack_object *rec, const struct log_edit *e)
{
    if (rec->type != MSGPACK_OBJECT_MAP || rec->via.map.size == 0)
        return NULL;
    if (!e->key)
        return &rec->via.map.ptr[(uint32_t)e->key_index % rec->via.map.size];
    size_t n = strlen(e->key);
    for (uint32_t i = 0; i < rec->via.map.size; i++) {
        msgpack_object_kv *kv = &rec->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, e->key, n) == 0)
            return kv;
    }
    return NULL;
}

static void set_value(msgpack_object *o, const struct log_edit *e)
{
    switch (e->value) {
    case LOG_EDIT_INT:
        o->type = e->i < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.i64 = e->i;
        break;
    case LOG_EDIT_UINT: o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = e->u; break;
    case LOG_EDIT_DOUBLE: o->type = MSGPACK_OBJECT_FLOAT64; o->via.f64 = e->d; break;
    case LOG_EDIT_STR:
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = e->s ? e->s : "";
        o->via.str.size = (uint32_t)strlen(o->via.str.ptr);
        break;
    case LOG_EDIT_EMPTY: o->type = MSGPACK_OBJECT_ARRAY; o->via.array.size = 0; break;
    default: o->type = MSGPACK_OBJECT_NIL; break;
    }
}

/* Apply E to record REC; false when what it addresses is not there. */
static bool edit_record(msgpack_object *rec, const struct log_edit *e)
{
    msgpack_object_kv *kv = entry(rec, e);
    if (!kv)
        return false;
    if (e->value == LOG_EDIT_DELETE && e->elem < 0) {
        *kv = rec->via.map.ptr[--rec->via.map.size]; /* order does not matter in a map */
        return true;
    }
    msgpack_object *o = element(&kv->val, e->elem);
    msgpack_object *target = o ? element(o, e->sub) : NULL;
    if (!target)
        return false;
    if (e->value == LOG_EDIT_DELETE) { /* drop the last element of the addressed array */
        msgpack_object *arr = e->sub >= 0 ? o : &kv->val;
        if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size == 0)
            return false;
        arr->via.array.size--;
        return true;
    }
    set_value(target, e);
    return true;
}

/* Append N bytes at P to the growing buffer *BUF. */
static void append(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *buf = realloc(*buf, *cap);
        if (!*buf)
            abort();
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

/* Body [P, P + N) of record REC_INDEX, edited and framed, appended to OUT. */
static int edit_body(const uint8_t *p, uint32_t n, int rec_index, const struct log_edit *edits,
                     int n_edits, uint8_t **out, size_t *len, size_t *cap)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int applied = 0;
    if (msgpack_unpack_next(&u, (const char *)p, n, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        return -1;
    }
    for (int i = 0; i < n_edits; i++)
        if (edits[i].record == rec_index)
            applied += edit_record(&u.data, &edits[i]);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, u.data);
    uint8_t header[MTP_LOG_FRAME_HEADER];
    mtp_log_frame_encode(header, sb.data, (uint32_t)sb.size);
    append(out, len, cap, header, sizeof header);
    append(out, len, cap, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
    return applied;
}

int log_edit_apply(const uint8_t *log, size_t n, const struct log_edit *edits, int n_edits,
                   uint8_t **out, size_t *out_n)
{
    size_t len = 0, cap = n + 64, off = 0;
    int applied = 0;
    *out = malloc(cap);
    if (!*out)
        abort();
    for (int rec = 0; off < n; rec++) {
        uint32_t body;
        if (mtp_log_frame_check(log, n, off, &body, NULL) != MTP_LOG_FRAME_OK)
            break;
        int k = edit_body(log + off + MTP_LOG_FRAME_HEADER, body, rec, edits, n_edits, out, &len,
                          &cap);
        if (k < 0)
            break;
        applied += k;
        off += MTP_LOG_FRAME_HEADER + body;
    }
    append(out, &len, &cap, log + off, n - off); /* whatever is not an intact frame */
    *out_n = len;
    return applied;
}

int log_edit_file(const char *in, const char *out, const struct log_edit *edits, int n_edits)
{
    FILE *f = fopen(in, "rb");
    if (!f) {
        perror(in);
        abort();
    }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(n + 1), *edited;
    if (!data || fread(data, 1, n, f) != n)
        abort();
    fclose(f);
    size_t m;
    int applied = log_edit_apply(data, n, edits, n_edits, &edited, &m);
    free(data);
    f = fopen(out, "wb");
    if (!f || fwrite(edited, 1, m, f) != m || fclose(f) != 0) {
        perror(out);
        abort();
    }
    free(edited);
    return applied;
}
