/*
 * log_tree.c - pack, read and check the tree-decoding fields of request
 * records (log_tree.h). tree_ranks rows are as long as the step's accepted
 * depth (the verifier's, accepted_uncut); in memory they are padded with -1
 * to the tree's depth (the record's "depth", bounded by MTP_TREE_MAX_DEPTH
 * before it sizes anything). The check parses the record's "tree" string:
 * ranks must name nodes of that shape, node counts fit it.
 */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strlen, memcpy */

#include "../core/error.h"
#include "../engine/tree.h" /* defines: mtp_tree_parse, MTP_TREE_MAX_DEPTH */
#include "log_check.h"      /* defines: mtp_log_obj_describe */
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

static int bad_value(const char *key, int s, const char *want, const msgpack_object *x)
{
    char found[48];
    return mtp_error_set("request record: key '%s': step %d: expected %s, found %s", key, s, want,
                         mtp_log_obj_describe(x, found, sizeof found));
}

/* An array of N 32-bit integers at KEY into a new array. */
static int read_i32s(const msgpack_object *o, const char *key, int n, int32_t **out)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int64_t)o->via.array.size != n)
        return bad(key, "an array of one integer per step");
    *out = mtp_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int64_t v;
        const msgpack_object *x = &o->via.array.ptr[i];
        if (!mtp_log_obj_int(x, &v) || v < INT32_MIN || v > INT32_MAX)
            return bad_value(key, i, "a 32-bit integer", x);
        (*out)[i] = (int32_t)v;
    }
    return MTP_OK;
}

/* One row of ranks per step, padded with -1 to the tree's depth. Every row
 * is checked for length before the rows are allocated. */
static int read_ranks(const msgpack_object *o, struct mtp_request_record *r)
{
    int n = r->n_steps, w = r->tree_depth;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || (int64_t)o->via.array.size != n)
        return bad("tree_ranks", "an array of one array per step");
    for (int s = 0; s < n; s++) {
        const msgpack_object *row = &o->via.array.ptr[s];
        if (row->type != MSGPACK_OBJECT_ARRAY || (int64_t)row->via.array.size > w)
            return bad_value("tree_ranks", s, "an array of at most depth ranks", row);
    }
    r->tree_ranks = mtp_xmalloc((size_t)(n > 0 ? n : 1) * (size_t)w * sizeof(int32_t));
    for (int s = 0; s < n; s++) {
        const msgpack_object *row = &o->via.array.ptr[s];
        for (int k = 0; k < w; k++) {
            uint64_t v = 0;
            const msgpack_object *x = k < (int)row->via.array.size ? &row->via.array.ptr[k] : NULL;
            if (x && (!mtp_log_obj_uint(x, &v) || v >= MTP_TREE_MAX_DRAFTS)) {
                char want[48];
                snprintf(want, sizeof want, "sibling ranks 0..%d", MTP_TREE_MAX_DRAFTS - 1);
                return bad_value("tree_ranks", s, want, x);
            }
            r->tree_ranks[(size_t)s * w + k] = x ? (int32_t)v : -1;
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
    /* The depth sizes the rank rows: bounded before anything is allocated. */
    if (r->depth < 1 || r->depth > MTP_TREE_MAX_DEPTH)
        return mtp_error_set("request record: key 'depth': expected 1..%d for a tree decoder, "
                             "found %d", MTP_TREE_MAX_DEPTH, r->depth);
    r->tree_depth = r->depth;
    if (read_i32s(mtp_log_map_get(rec, "tree_nodes"), "tree_nodes", r->n_steps, &r->tree_nodes) ||
        read_i32s(mtp_log_map_get(rec, "tree_node"), "tree_node", r->n_steps, &r->tree_node))
        return MTP_ERR;
    return read_ranks(mtp_log_map_get(rec, "tree_ranks"), r);
}

/* Is the rank path of step S a node of SHAPE? Dynamic trees choose their
 * nodes each step: every rank is then below the width. */
static bool path_in_shape(const struct mtp_tree_shape *shape, const int32_t *ranks, int a)
{
    int node = 0;
    for (int k = 0; k < a; k++) {
        if (shape->kind == MTP_TREE_DYNAMIC) {
            if (ranks[k] >= shape->width)
                return false;
            continue;
        }
        int child = -1;
        for (int i = 1; i < shape->n && child < 0; i++)
            if (shape->parent[i] == node && shape->rank[i] == ranks[k])
                child = i;
        if (child < 0)
            return false;
        node = child;
    }
    return true;
}

/* Step S against SHAPE, whose steps verify at most MAX_NODES tokens. */
static int check_tree_step(const struct mtp_request_record *r, const struct mtp_tree_shape *shape,
                           int max_nodes, int s)
{
    int a = r->accepted_uncut ? r->accepted_uncut[s] : r->accepted[s];
    const int32_t *ranks = r->tree_ranks + (size_t)s * r->tree_depth;
    if (r->tree_nodes[s] < a + 1 || r->tree_nodes[s] > max_nodes)
        return mtp_error_set("request record: key 'tree_nodes': step %d: expected %d..%d (the "
                             "accepted path and the root, up to the tree's nodes), found %d",
                             s, a + 1, max_nodes, r->tree_nodes[s]);
    int lo = a ? 1 : 0, hi = a ? r->tree_nodes[s] - 1 : 0; /* node 0: nothing accepted */
    if (r->tree_node[s] < lo || r->tree_node[s] > hi)
        return mtp_error_set("request record: key 'tree_node': step %d: expected %d..%d (%d "
                             "drafts accepted), found %d", s, lo, hi, a, r->tree_node[s]);
    if (step_depth(r, s) != a)
        return mtp_error_set("request record: key 'tree_ranks': step %d: expected %d ranks (one "
                             "per accepted depth), found %d", s, a, step_depth(r, s));
    if (!path_in_shape(shape, ranks, a))
        return mtp_error_set("request record: key 'tree_ranks': step %d: the rank path is not a "
                             "node of the tree \"%s\" (a rank at or above its depth's width)",
                             s, r->tree);
    return MTP_OK;
}

int mtp_log_check_tree(const struct mtp_request_record *r)
{
    struct mtp_tree_shape shape;
    if (mtp_tree_parse(r->tree, &shape))
        return mtp_error_wrap("request record: key 'tree': ");
    if (mtp_tree_depth(&shape) != r->depth)
        return mtp_error_set("request record: key 'depth': expected the depth of the tree \"%s\", "
                             "%d, found %d", r->tree, mtp_tree_depth(&shape), r->depth);
    int max_nodes = mtp_tree_max_drafts(&shape) + 1;
    for (int s = 0; s < r->n_steps; s++)
        if (check_tree_step(r, &shape, max_nodes, s))
            return MTP_ERR;
    return MTP_OK;
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
