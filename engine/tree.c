/*
 * tree.c - draft-tree shapes (tree.h): construction from widths, rank paths
 * or dynamic parameters, validation, parsing, description; and the per-step
 * token tree's append.
 */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: strtol */
#include <stdbool.h>
#include <string.h> /* defines: memset, strncmp, strchr */

#include "../core/error.h"
#include "tree.h"

static void shape_root(struct mtp_tree_shape *s)
{
    memset(s, 0, sizeof *s);
    s->kind = MTP_TREE_STATIC;
    s->n = 1;
    s->parent[0] = -1;
}

static void shape_add(struct mtp_tree_shape *s, int parent, int rank)
{
    int i = s->n++;
    s->parent[i] = (int8_t)parent;
    s->rank[i] = (int8_t)rank;
    s->depth[i] = (int8_t)(s->depth[parent] + 1);
    if (s->depth[i] > s->max_depth)
        s->max_depth = s->depth[i];
}

int mtp_tree_from_widths(const int *w, int n_depths, struct mtp_tree_shape *out)
{
    if (n_depths < 1)
        return mtp_error_set("tree: widths: expected at least one depth");
    long long nodes = 0, level = 1;
    for (int d = 0; d < n_depths; d++) {
        if (w[d] < 1)
            return mtp_error_set("tree: widths: width %d at depth %d must be >= 1", w[d], d + 1);
        level *= w[d];
        nodes += level;
        if (nodes > MTP_TREE_MAX_DRAFTS)
            return mtp_error_set("tree: widths: more than %d draft nodes (the limit of one "
                                 "verification: %d tokens with the pending one)",
                                 MTP_TREE_MAX_DRAFTS, MTP_TREE_MAX_NODES);
    }
    shape_root(out);
    int first = 0, count = 1; /* the previous depth's nodes */
    for (int d = 0; d < n_depths; d++) {
        int next = out->n;
        for (int p = first; p < first + count; p++)
            for (int r = 0; r < w[d]; r++)
                shape_add(out, p, r);
        first = next;
        count = out->n - next;
    }
    return MTP_OK;
}

/* Whether path A (length LA) equals path B's first LA ranks. */
static bool is_prefix(const int *a, int la, const int *b, int lb)
{
    if (la > lb)
        return false;
    for (int i = 0; i < la; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static int check_paths(const int *const *path, const int *len, int n)
{
    if (n < 1 || n > MTP_TREE_MAX_DRAFTS)
        return mtp_error_set("tree: paths: expected 1..%d paths, got %d", MTP_TREE_MAX_DRAFTS,
                             n);
    for (int i = 0; i < n; i++) {
        if (len[i] < 1)
            return mtp_error_set("tree: paths: path %d is empty", i);
        for (int k = 0; k < len[i]; k++)
            if (path[i][k] < 0 || path[i][k] >= MTP_TREE_MAX_DRAFTS)
                return mtp_error_set("tree: paths: path %d has rank %d; expected 0..%d", i,
                                     path[i][k], MTP_TREE_MAX_DRAFTS - 1);
        bool parent_found = len[i] == 1;
        for (int j = 0; j < n; j++) {
            if (j != i && len[j] == len[i] && is_prefix(path[j], len[j], path[i], len[i]))
                return mtp_error_set("tree: paths: paths %d and %d are the same", j, i);
            if (len[j] == len[i] - 1 && is_prefix(path[j], len[j], path[i], len[i]))
                parent_found = true;
        }
        if (!parent_found)
            return mtp_error_set("tree: paths: path %d lacks its parent (every prefix of a path "
                                 "must be listed)", i);
    }
    return MTP_OK;
}

int mtp_tree_from_paths(const int *const *path, const int *len, int n,
                        struct mtp_tree_shape *out)
{
    if (check_paths(path, len, n))
        return MTP_ERR;
    shape_root(out);
    int node_path[MTP_TREE_MAX_NODES]; /* template node -> its path index (root: -1) */
    node_path[0] = -1;
    /* Depth by depth, parents in order, children by rank: depth-major order. */
    for (int d = 1; out->n < n + 1 && d <= MTP_TREE_MAX_DEPTH; d++) {
        int level_end = out->n;
        for (int p = 0; p < level_end; p++) {
            if (out->depth[p] != d - 1)
                continue;
            for (int r = 0; r < MTP_TREE_MAX_DRAFTS; r++)
                for (int i = 0; i < n; i++) {
                    bool child = len[i] == d && path[i][d - 1] == r &&
                                 (p == 0 || is_prefix(path[node_path[p]], d - 1, path[i], d));
                    if (child) {
                        node_path[out->n] = i;
                        shape_add(out, p, r);
                    }
                }
        }
    }
    return MTP_OK;
}

int mtp_tree_dynamic(int budget, int width, int depth, struct mtp_tree_shape *out)
{
    memset(out, 0, sizeof *out);
    if (budget < 1 || budget > MTP_TREE_MAX_DRAFTS)
        return mtp_error_set("tree: dynamic: budget %d; expected 1..%d draft tokens", budget,
                             MTP_TREE_MAX_DRAFTS);
    if (width < 1 || width > MTP_TREE_MAX_DRAFTS)
        return mtp_error_set("tree: dynamic: width %d; expected 1..%d", width,
                             MTP_TREE_MAX_DRAFTS);
    if (depth < 1 || depth > budget)
        return mtp_error_set("tree: dynamic: depth %d; expected 1..budget (%d)", depth, budget);
    /* Expanding WIDTH nodes by WIDTH children per depth drafts width^2
     * candidates per depth after the first; all must fit one step's tree. */
    if ((long long)width + (long long)width * width * (depth - 1) > MTP_TREE_MAX_DRAFTS)
        return mtp_error_set("tree: dynamic: width %d and depth %d draft %lld candidates; "
                             "expected at most %d", width, depth,
                             (long long)width + (long long)width * width * (depth - 1),
                             MTP_TREE_MAX_DRAFTS);
    out->kind = MTP_TREE_DYNAMIC;
    out->budget = budget;
    out->width = width;
    out->max_depth = depth;
    out->n = 1;
    out->parent[0] = -1;
    return MTP_OK;
}

/* Comma-separated integers of [S, END) into V (at most CAP); returns the
 * count, or -1 with a message naming TEXT. Strict, so that one shape has one
 * spelling: digits with an optional '-', no '+', no blanks, no empty or
 * trailing element (strtol alone would take "+4" and " 4", and a loop that
 * steps over each ',' would take "4,2,"). */
/* Comma-separated integers of [S, END) into V (at most CAP), their count in
 * *N; MTP_ERR with a message naming TEXT. Strict, so that one shape has one
 * spelling: digits with an optional '-', no '+', no blanks, no empty or
 * trailing element (strtol alone would take "+4" and " 4", and a loop that
 * steps over each ',' would take "4,2,"). */
static int parse_ints(const char *text, const char *s, const char *end, int *v, int cap, int *n)
{
    *n = 0;
    while (s < end) {
        const char *digits = s + (*s == '-');
        if (digits >= end || *digits < '0' || *digits > '9') {
            char found[16] = "the end";
            if (digits < end)
                snprintf(found, sizeof found, "'%c'", *digits);
            return mtp_error_set("tree: cannot parse \"%s\": expected a digit at character %d, "
                                 "found %s", text, (int)(digits - text) + 1, found);
        }
        char *next;
        long x = strtol(s, &next, 10);
        if (next > end || x < -1000000 || x > 1000000)
            return mtp_error_set("tree: cannot parse \"%s\": the number at character %d is out "
                                 "of range", text, (int)(s - text) + 1);
        if (*n == cap)
            return mtp_error_set("tree: cannot parse \"%s\": more than %d numbers in a list",
                                 text, cap);
        v[(*n)++] = (int)x;
        s = next;
        if (s < end && *s != ',')
            return mtp_error_set("tree: cannot parse \"%s\": expected ',' or the end at "
                                 "character %d", text, (int)(s - text) + 1);
        if (s < end && s + 1 == end)
            return mtp_error_set("tree: cannot parse \"%s\": a ',' at the end (expected a "
                                 "number after it)", text);
        if (s < end)
            s++;
    }
    return MTP_OK;
}

static int parse_paths(const char *text, const char *s, struct mtp_tree_shape *out)
{
    static int ranks[MTP_TREE_MAX_DRAFTS][MTP_TREE_MAX_DEPTH];
    const int *rows[MTP_TREE_MAX_DRAFTS];
    int len[MTP_TREE_MAX_DRAFTS], n = 0;
    if (!*s)
        return mtp_error_set("tree: cannot parse \"%s\": expected paths like 0;1;0,0 after "
                             "\"paths:\"", text);
    while (*s) {
        const char *end = strchr(s, ';');
        if (!end)
            end = s + strlen(s);
        else if (!end[1])
            return mtp_error_set("tree: cannot parse \"%s\": a ';' at the end (expected a path "
                                 "after it)", text);
        if (n == MTP_TREE_MAX_DRAFTS)
            return mtp_error_set("tree: paths: more than %d paths", MTP_TREE_MAX_DRAFTS);
        if (parse_ints(text, s, end, ranks[n], MTP_TREE_MAX_DEPTH, &len[n]))
            return MTP_ERR;
        if (len[n] == 0)
            return mtp_error_set("tree: cannot parse \"%s\": path %d is empty; expected ranks "
                                 "like 0,1", text, n);
        rows[n] = ranks[n];
        n++;
        s = *end ? end + 1 : end;
    }
    return mtp_tree_from_paths(rows, len, n, out);
}

int mtp_tree_parse(const char *text, struct mtp_tree_shape *out)
{
    int v[MTP_TREE_MAX_DEPTH + 1];
    const char *s = text;
    if (!strncmp(s, "paths:", 6))
        return parse_paths(text, s + 6, out);
    bool dynamic = !strncmp(s, "dynamic:", 8);
    if (dynamic)
        s += 8;
    else if (!strncmp(s, "widths:", 7))
        s += 7;
    int n;
    if (parse_ints(text, s, s + strlen(s), v, MTP_TREE_MAX_DEPTH + 1, &n))
        return MTP_ERR;
    if (n < 1 || (dynamic && n != 3))
        return mtp_error_set("tree: cannot parse \"%s\"; expected widths:4,2,1, "
                             "paths:0;1;0,0 or dynamic:BUDGET,WIDTH,DEPTH", text);
    return dynamic ? mtp_tree_dynamic(v[0], v[1], v[2], out) : mtp_tree_from_widths(v, n, out);
}

int mtp_tree_max_drafts(const struct mtp_tree_shape *s)
{
    return s->kind == MTP_TREE_DYNAMIC ? s->budget : s->n - 1;
}

int mtp_tree_max_candidates(const struct mtp_tree_shape *s)
{
    if (s->kind != MTP_TREE_DYNAMIC)
        return s->n - 1;
    return s->width + s->width * s->width * (s->max_depth - 1);
}

int mtp_tree_depth(const struct mtp_tree_shape *s) { return s->max_depth; }

/* Whether the static template is a full product tree; its widths into W. */
static bool as_widths(const struct mtp_tree_shape *s, int *w)
{
    struct mtp_tree_shape t;
    for (int d = 0; d < s->max_depth; d++) {
        w[d] = 0;
        for (int i = 1; i < s->n; i++)
            if (s->depth[i] == d + 1 && s->rank[i] + 1 > w[d])
                w[d] = s->rank[i] + 1;
    }
    if (mtp_tree_from_widths(w, s->max_depth, &t))
        return false;
    return t.n == s->n && !memcmp(t.parent, s->parent, (size_t)s->n) &&
           !memcmp(t.rank, s->rank, (size_t)s->n);
}

/* The rank path of template node I, as "r1,r2,...". */
static int path_text(const struct mtp_tree_shape *s, int i, char *buf, int cap)
{
    int ranks[MTP_TREE_MAX_DEPTH], n = 0;
    for (int j = i; j > 0; j = s->parent[j])
        ranks[n++] = s->rank[j];
    int used = 0;
    for (int k = n - 1; k >= 0 && used < cap; k--)
        used += snprintf(buf + used, (size_t)(cap - used), k ? "%d," : "%d", ranks[k]);
    return used;
}

void mtp_tree_describe(const struct mtp_tree_shape *s, char *buf, int cap)
{
    int w[MTP_TREE_MAX_DEPTH], used;
    if (cap < 1)
        return;
    buf[0] = 0;
    if (s->kind == MTP_TREE_DYNAMIC) {
        snprintf(buf, (size_t)cap, "dynamic:%d,%d,%d", s->budget, s->width, s->max_depth);
        return;
    }
    if (s->kind != MTP_TREE_STATIC)
        return;
    if (as_widths(s, w)) {
        used = snprintf(buf, (size_t)cap, "widths:");
        for (int d = 0; d < s->max_depth && used < cap; d++)
            used += snprintf(buf + used, (size_t)(cap - used), d ? ",%d" : "%d", w[d]);
        return;
    }
    used = snprintf(buf, (size_t)cap, "paths:");
    for (int i = 1; i < s->n && used < cap - 1; i++) {
        used += path_text(s, i, buf + used, cap - used);
        if (i + 1 < s->n && used < cap - 1)
            buf[used++] = ';', buf[used] = 0;
    }
}

void mtp_tree_init(struct mtp_tree *t, int32_t root_token)
{
    t->n = 1;
    t->token[0] = root_token;
    t->parent[0] = -1;
    t->depth[0] = 0;
    t->rank[0] = 0;
    t->first_child[0] = -1;
    t->n_children[0] = 0;
    t->logp[0] = 0;
}

int mtp_tree_add(struct mtp_tree *t, int parent, int32_t token, int rank, double logp)
{
    MTP_CHECK(t->n < MTP_TREE_MAX_NODES && parent >= 0 && parent < t->n);
    int i = t->n++;
    MTP_CHECK(t->depth[parent] + 1 >= t->depth[i - 1]); /* depth-major order */
    if (t->first_child[parent] < 0)
        t->first_child[parent] = (int16_t)i;
    MTP_CHECK(t->first_child[parent] + t->n_children[parent] == i); /* siblings contiguous */
    t->n_children[parent]++;
    t->token[i] = token;
    t->parent[i] = (int16_t)parent;
    t->depth[i] = (int16_t)(t->depth[parent] + 1);
    t->rank[i] = (int16_t)rank;
    t->first_child[i] = -1;
    t->n_children[i] = 0;
    t->logp[i] = logp;
    return i;
}
