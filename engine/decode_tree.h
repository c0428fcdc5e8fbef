/*
 * decode_tree.h - the state of tree decoding inside a session (decode_tree.c:
 * life cycle, verification, acceptance, compaction; decode_tree_draft.c:
 * drafting the tree with exact or chained modules). Not part of the public API.
 */
#ifndef MTP_DECODE_TREE_H
#define MTP_DECODE_TREE_H

#include "decode_internal.h"
#include "engine_tree.h"
#include "tree.h"

/* Key lists of one tree-shaped forward: every node's ancestors and itself. */
struct mtp_tree_lists {
    int32_t tokens[MTP_TREE_MAX_NODES];
    int32_t pos[MTP_TREE_MAX_NODES];
    int32_t off[MTP_TREE_MAX_NODES + 1];
    int32_t rows[MTP_TREE_MAX_NODES * (MTP_TREE_MAX_DEPTH + 1)];
    int16_t node[MTP_TREE_MAX_NODES]; /* batch row -> tree node */
    struct mtp_tree_batch b;
};

struct mtp_decode_tree {
    struct mtp_tree_shape shape;
    struct mtp_tree t;  /* this step's tree */
    int L;              /* depth of the shape */
    float *q;           /* [MAX_NODES, V] distribution each node's children were drawn from */
    float *logits;      /* [MAX_NODES, V] verification logits, by node */
    float *hid_main;    /* [MAX_NODES, d] verification hidden, by node */
    float *mod_logits;  /* [MAX_NODES, V] one module forward's logits, by batch row */
    float **mod_hid;    /* [1+D] -> [MAX_NODES, d]: module k's hidden of each node */
    int16_t (*mod_row)[MTP_TREE_MAX_NODES]; /* [1+D]: module k's cache row of a node, or -1 */
    float *in_rows;     /* [MAX_NODES, d] hidden inputs of one module batch */
    float *out_rows;    /* [MAX_NODES, d] hidden outputs of one module batch */
    float *work;        /* [3V] */
    float *p;           /* [V] target distribution at a node */
    struct mtp_tree_lists lists;
    /* The accepted path of the last step: node indices, root first. */
    int path[MTP_TREE_MAX_DEPTH + 1];
    int a;
};

/* decode_tree.c */
/* The tree part of mtp_decode_check: shape, drafting, model, backend. */
int mtp_decode_tree_check(const struct mtp_engine *e, const struct mtp_decode_params *p);
int mtp_decode_tree_create(struct mtp_decode *d);
void mtp_decode_tree_free(struct mtp_decode *d);
/* The phases of a tree step (decode_mtp.c runs them for one session,
 * decode_batch.c for many):
 * the session's verification segment (every node of this step's tree, from
 * row m; its tokens in tree->lists.tokens), taking its rows of the batched
 * forward's LOGITS [nodes, V] and HIDDEN [nodes, d], and acceptance, emission
 * and compaction of step S. */
struct mtp_segment mtp_decode_tree_segment(struct mtp_decode *d);
void mtp_decode_tree_take(struct mtp_decode *d, const float *logits, const float *hidden);
void mtp_decode_finish_tree(struct mtp_decode *d, int s);
/* Fill LISTS for the tree nodes NODES[0..n) written from START_ROW with
 * prefix N_PREFIX: positions BASE + depth, keys the ancestors' rows ROW_OF
 * (node -> row) then the node's own row. */
void mtp_decode_tree_lists(struct mtp_tree_lists *l, const struct mtp_tree *t, const int *nodes,
                           int n, int start_row, int n_prefix, int base,
                           const int16_t *row_of);

/* decode_tree_draft.c: build this step's tree from the pending token. */
int mtp_decode_tree_draft(struct mtp_decode *d);

#endif
