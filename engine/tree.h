/*
 * tree.h - draft-tree shapes and the token trees built from them each step
 * (spec/decoding.md "Tree decoding").
 *
 * A shape is either
 *   - STATIC: a fixed template of nodes, each the rank-th most likely (greedy)
 *     or rank-th drawn (sampling, without replacement) child of its parent;
 *     built from widths per depth ("top-k per depth" [4,2,1]: 4 children of
 *     the root, 2 of each of those, 1 of each of those) or from an explicit,
 *     prefix-closed list of rank paths (Medusa / EAGLE "choices": [0] [1]
 *     [0,0] ...);
 *   - DYNAMIC (EAGLE-2): at every depth the WIDTH nodes of the frontier with
 *     the highest cumulative draft probability are expanded by their top
 *     WIDTH children, up to DEPTH; then the BUDGET nodes with the highest
 *     cumulative probability are kept (an ancestor-closed set: a child never
 *     scores above its parent, ties go to the shallower node).
 * Node 0 of every tree is the root, the pending token s[m]; nodes are kept in
 * depth-major order (parents before children, each depth contiguous,
 * siblings by rank), which the verification batch, RoPE runs and compaction
 * rely on.
 */
#ifndef MTP_TREE_H
#define MTP_TREE_H

#include <stdint.h>

#include "engine_tree.h" /* defines: MTP_TREE_MAX_NODES */

/* Verified tokens per step (root included) are at most MTP_TREE_MAX_NODES. */
enum { MTP_TREE_MAX_DRAFTS = MTP_TREE_MAX_NODES - 1, MTP_TREE_MAX_DEPTH = MTP_TREE_MAX_DRAFTS };

enum mtp_tree_kind {
    MTP_TREE_NONE,    /* a chain decoder (or the baseline) */
    MTP_TREE_STATIC,  /* template below */
    MTP_TREE_DYNAMIC, /* budget, width, depth below */
};

struct mtp_tree_shape {
    enum mtp_tree_kind kind;
    /* STATIC: n template nodes (root included), depth-major; parent[0] = -1. */
    int n;
    int8_t parent[MTP_TREE_MAX_NODES];
    int8_t rank[MTP_TREE_MAX_NODES];  /* 0-based sibling rank */
    int8_t depth[MTP_TREE_MAX_NODES];
    /* DYNAMIC */
    int budget; /* draft nodes kept (root excluded), 1..MTP_TREE_MAX_DRAFTS */
    int width;  /* frontier nodes expanded per depth, and children per node */
    int max_depth; /* STATIC: the template's; DYNAMIC: expansion depth */
};

/* STATIC shape from widths per depth (w[0] children of the root, ...).
 * Returns MTP_OK, or MTP_ERR with a message naming the reason (a width < 1,
 * more than MTP_TREE_MAX_DRAFTS nodes). */
int mtp_tree_from_widths(const int *w, int n_depths, struct mtp_tree_shape *out);

/* STATIC shape from N rank paths (path i has len[i] ranks, path[i][0] the
 * root's child). Every prefix of a path must be listed too; duplicates and
 * negative ranks are refused. Returns MTP_OK or MTP_ERR with a message. */
int mtp_tree_from_paths(const int *const *path, const int *len, int n,
                        struct mtp_tree_shape *out);

/* DYNAMIC shape; validated like the others. */
int mtp_tree_dynamic(int budget, int width, int depth, struct mtp_tree_shape *out);

/* Parse "widths:4,2,1", "paths:0;1;0,0;0,1" or "dynamic:BUDGET,WIDTH,DEPTH"
 * (also a bare "4,2,1" = widths). MTP_OK or MTP_ERR with the reason. */
int mtp_tree_parse(const char *text, struct mtp_tree_shape *out);

/* Most draft tokens a step may verify (root excluded), and the tree's depth. */
int mtp_tree_max_drafts(const struct mtp_tree_shape *s);
/* Most nodes a step may draft before a dynamic tree keeps its budget: what
 * module caches and positions must hold room for (static: the drafts). */
int mtp_tree_max_candidates(const struct mtp_tree_shape *s);
int mtp_tree_depth(const struct mtp_tree_shape *s);

/* A text of the shape for logs and tables, e.g. "widths:4,2,1",
 * "paths:0;1;0,0", "dynamic:8,4,4", that mtp_tree_parse reads back as the
 * same shape. Writes at most CAP bytes; with CAP >= MTP_TREE_TEXT_MAX it is
 * never cut, so two different shapes never get the same text. */
void mtp_tree_describe(const struct mtp_tree_shape *s, char *buf, int cap);
/* The longest description, NUL included: "paths:" and, for each of at most
 * MTP_TREE_MAX_DRAFTS nodes, a path of at most MTP_TREE_MAX_DEPTH ranks of at
 * most two digits, each followed by ',' or ';'. */
enum { MTP_TREE_TEXT_MAX = 8 + MTP_TREE_MAX_DRAFTS * MTP_TREE_MAX_DEPTH * 3 };

/* One step's token tree (node 0 = root). */
struct mtp_tree {
    int n;
    int32_t token[MTP_TREE_MAX_NODES];
    int16_t parent[MTP_TREE_MAX_NODES];
    int16_t depth[MTP_TREE_MAX_NODES];
    int16_t rank[MTP_TREE_MAX_NODES];
    int16_t first_child[MTP_TREE_MAX_NODES]; /* -1 when none; children are contiguous */
    int16_t n_children[MTP_TREE_MAX_NODES];
    double logp[MTP_TREE_MAX_NODES]; /* cumulative log draft probability (root 0) */
};

/* Start TREE with the root TOKEN. */
void mtp_tree_init(struct mtp_tree *t, int32_t root_token);
/* Append a child of PARENT (it must be the newest parent with children, and
 * depth-major order must hold). Returns its index. */
int mtp_tree_add(struct mtp_tree *t, int parent, int32_t token, int rank, double logp);

#endif
