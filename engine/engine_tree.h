/*
 * engine_tree.h - tree-shaped forwards over the latent caches (spec/decoding.md
 * "Tree decoding"): n tokens written to consecutive cache rows, each with its
 * own RoPE position and its own attention key rows (a tree mask), and the row
 * moves that compact an accepted path into place afterwards.
 *
 * A node's results are bitwise those of a sequential decode along its path
 * when its key list is that path's rows in order and its position the path's
 * position: every other op is per token (backend.h, batch invariance), and
 * mla_tree_attention reduces over its list in mla_attention's order.
 */
#ifndef MTP_ENGINE_TREE_H
#define MTP_ENGINE_TREE_H

#include <stdint.h>

#include "../kernels/backend.h"

struct mtp_engine;

/* Token i of the batch is written to cache row start_row + i, rotated at
 * position pos[i], and attends to keys (rows 0..keys.n_prefix-1, then its
 * list, which normally ends with its own row start_row + i). Host memory. */
struct mtp_tree_batch {
    int start_row;
    const int32_t *pos;        /* [n] */
    struct mtp_tree_keys keys; /* off [n+1], rows [off[n]] */
};

/* Most tokens of one tree-shaped forward (spec/decoding.md: the node limit). */
enum { MTP_TREE_MAX_NODES = 64 };

/* Main model over a tree batch of N <= min(max_batch, MTP_TREE_MAX_NODES)
 * tokens: logits [n, V] and hidden [n, d] (after model.norm; either may be
 * NULL). The main cache length becomes start_row + n. MTP_OK or MTP_ERR. */
int mtp_engine_forward_tree(struct mtp_engine *e, const int32_t *tokens, int n,
                            const struct mtp_tree_batch *b, float *logits, float *hidden);

/* MTP module MODULE over a tree batch, as mtp_engine_mtp_forward, with
 * logits only for rows FIRST_LOGIT..n-1 ([n - first_logit, V]: drafting reads
 * the nodes it expands, the deepest ones, and the head is most of a small
 * module's cost); hidden_out [n, d]. Either may be NULL. */
int mtp_engine_mtp_forward_tree(struct mtp_engine *e, int module, const int32_t *tokens,
                                const float *hidden_in, int n, const struct mtp_tree_batch *b,
                                int first_logit, float *logits, float *hidden_out);

/* Copy cache row SRC[i] to row DST[i], i = 0..n-1 in order, in every layer of
 * MODULE (0 = main model): the compaction of an accepted path. Rows must lie
 * below the capacity; a row is read after the earlier moves wrote theirs. */
void mtp_engine_move_rows(struct mtp_engine *e, int module, const int32_t *src,
                          const int32_t *dst, int n);

/* Set the cache length of MODULE to LENGTH (<= capacity) after a compaction
 * left the rows below it valid; unlike truncate, it may grow the length. */
void mtp_engine_set_cache_len(struct mtp_engine *e, int module, int length);

/* mtp_engine_mtp_forward_tree and mtp_engine_move_rows on sequence SEQ
 * (0..max_seqs-1; the forms above act on sequence 0): a session of a batch
 * drafts and compacts its own tree (engine/decode_batch.c). */
int mtp_engine_seq_mtp_forward_tree(struct mtp_engine *e, int seq, int module,
                                    const int32_t *tokens, const float *hidden_in, int n,
                                    const struct mtp_tree_batch *b, int first_logit,
                                    float *logits, float *hidden_out);
void mtp_engine_seq_move_rows(struct mtp_engine *e, int seq, int module, const int32_t *src,
                              const int32_t *dst, int n);

#endif
