/*
 * log_tree.c - pack and read the tree-decoding fields of request records
 * (log_tree.h). tree_ranks rows are as long as the step's accepted depth
 * (the verifier's, accepted_uncut); in memory they are padded with -1 to the
 * tree's depth (the record's "depth").
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strlen, memcpy */

#include "../engine/error.h"
#include "log_tree.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_i32s(msgpack_packer *pk, const int32_t *v, int n)
{
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_int32(pk, v[i]);
}

int mtp_log_tree_keys(const struct mtp_request_record *r) { return r->tree ? 4 : 0; }

/* Accepted depth of step S as the verifier saw it (ranks beyond are -1). */
static int step_depth(const struct mtp_request_record *r, int s)
{
    int a = 0;
    while (a < r->tree_depth && r->tree_ranks[(size_t)s * r->tree_depth + a] >= 0)
        a++;
    return a;
}

void mtp_log_pack_tree(msgpack_packer *pk, const struct mtp_request_record *r)
{
    if (!r->tree)
        return;
    pack_str(pk, "tree");
    pack_str(pk, r->tree);
    pack_str(pk, "tree_nodes");
    pack_i32s(pk, r->tree_nodes, r->n_steps);
    pack_str(pk, "tree_node");
    pack_i32s(pk, r->tree_node, r->n_steps);
    pack_str(pk, "tree_ranks");
    msgpack_pack_array(pk, (size_t)r->n_steps);
    for (int s = 0; s < r->n_steps; s++)
        pack_i32s(pk, r->tree_ranks + (size_t)s * r->tree_depth, step_depth(r, s));
}

static int bad(const char *key, const char *want)
{
    return mtp_error_set("request record: key '%s': expected %s", key, want);
}

/* An array of N integers at KEY into a new array. */
static int read_i32s(const msgpack_object *o, const char *key, int n, int32_t **out)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int)o->via.array.size != n)
        return bad(key, "an array of one integer per step");
    *out = mtp_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        const msgpack_object *x = &o->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER && x->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return bad(key, "integers");
        (*out)[i] = (int32_t)x->via.i64;
    }
    return MTP_OK;
}

static int read_ranks(const msgpack_object *o, struct mtp_request_record *r)
{
    int n = r->n_steps, w = r->tree_depth > 0 ? r->tree_depth : 1;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int)o->via.array.size != n)
        return bad("tree_ranks", "an array of one array per step");
    r->tree_ranks = mtp_xmalloc((size_t)(n > 0 ? n : 1) * (size_t)w * sizeof(int32_t));
    for (int s = 0; s < n; s++) {
        const msgpack_object *row = &o->via.array.ptr[s];
        if (row->type != MSGPACK_OBJECT_ARRAY || (int)row->via.array.size > r->tree_depth)
            return bad("tree_ranks", "per step at most depth ranks");
        for (int k = 0; k < w; k++) {
            int32_t v = -1;
            if (k < (int)row->via.array.size) {
                const msgpack_object *x = &row->via.array.ptr[k];
                if (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    return bad("tree_ranks", "ranks >= 0");
                v = (int32_t)x->via.u64;
            }
            r->tree_ranks[(size_t)s * w + k] = v;
        }
    }
    return MTP_OK;
}

int mtp_log_decode_tree(const msgpack_object *rec, struct mtp_request_record *r)
{
    const msgpack_object *t = mtp_log_map_get(rec, "tree");
    if (!t || t->type == MSGPACK_OBJECT_NIL)
        return MTP_OK;
    if (t->type != MSGPACK_OBJECT_STR)
        return bad("tree", "a string");
    r->tree = mtp_xmalloc(t->via.str.size + 1);
    memcpy(r->tree, t->via.str.ptr, t->via.str.size);
    r->tree[t->via.str.size] = 0;
    r->tree_depth = r->depth;
    if (read_i32s(mtp_log_map_get(rec, "tree_nodes"), "tree_nodes", r->n_steps, &r->tree_nodes) ||
        read_i32s(mtp_log_map_get(rec, "tree_node"), "tree_node", r->n_steps, &r->tree_node))
        return MTP_ERR;
    return read_ranks(mtp_log_map_get(rec, "tree_ranks"), r);
}

void mtp_log_tree_free(struct mtp_request_record *r)
{
    free(r->tree);
    free(r->tree_nodes);
    free(r->tree_node);
    free(r->tree_ranks);
    r->tree = NULL;
    r->tree_nodes = r->tree_node = r->tree_ranks = NULL;
}
