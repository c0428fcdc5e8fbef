/*
 * draft_vocab.h - a reduced draft vocabulary for the MTP heads (FR-Spec,
 * Zhao et al. 2025; spec/decoding.md "Draft vocabulary").
 *
 * A drafting module's cost on a small model is mostly its output head, a
 * [V, d] matmul over the shared lm_head. With a draft vocabulary of N ids
 * (the N most frequent in the training corpus, from the model directory's
 * token_frequencies.bin, spec/model-directory.md), the head is computed over
 * those N rows only. Drafts are then restricted to the subset; verification
 * stays over the full vocabulary, so greedy output is unchanged and sampled
 * output keeps the target distribution (q is 0 outside the subset and the
 * residual max(p - q, 0) emits those ids at their target rate).
 *
 * The subset head is a new weight whose rows are copies of the head's rows
 * in its stored dtype (FP8 keeps its bytes and takes one scale per row, see
 * mtp_weight_gather_rows), prepared on the backend like any other weight, so
 * the same matmul kernel produces bitwise the same values as the
 * corresponding rows of the full head.
 */
#ifndef MTP_DRAFT_VOCAB_H
#define MTP_DRAFT_VOCAB_H

#include <stdint.h>

#include "model.h"
#include "sampling.h"

/* File name inside a model directory. */
#define MTP_TOKEN_FREQ_FILE "token_frequencies.bin"

/* Read and validate PATH (format: spec/model-directory.md) for a model of
 * VOCAB_SIZE ids. Returns MTP_OK and *COUNTS [vocab_size] (malloc'd, caller
 * frees), or MTP_ERR with a message naming the file and the field (magic,
 * vocab_size, reserved, total, counts, file size). */
int mtp_token_freq_load(const char *path, int vocab_size, uint64_t **counts);

/* The N most frequent ids of COUNTS [V] into IDS [N]: counts descending, ties
 * to the lower id (a total order, so the subset is reproducible). */
void mtp_draft_vocab_rank(const uint64_t *counts, int V, int n, int32_t *ids);

/* OUT = rows IDS[0..n) of W, a new weight owning its data (and FP8 scales),
 * named NAME (copied). F32/BF16/F16 rows are copied bytewise; FP8 rows keep
 * their bytes and get block_rows = 1 with scale_inv[i][cb] =
 * W.scale_inv[ids[i] / B0][cb], so every element decodes to the same float.
 * Ids must be in 0..rows-1 (checked). Free with mtp_weight_gathered_free. */
void mtp_weight_gather_rows(const struct mtp_weight *w, const int32_t *ids, int n,
                            const char *name, struct mtp_weight *out);
void mtp_weight_gathered_free(struct mtp_weight *w);

/* A draft vocabulary on one engine: the ids and each module's subset head. */
struct mtp_draft_vocab {
    int n;                    /* N, 1..V */
    int32_t *ids;             /* [N] token id of subset index i (most frequent first) */
    int n_modules;            /* D */
    const struct mtp_weight **head; /* [D + 1]: head[k] = module k's subset head (shared
                               * modules point to one weight); head[0] unused */
    int n_own;                /* distinct gathered heads owned below */
    struct mtp_weight *own;   /* [n_own] */
    struct mtp_draft_vocab *next; /* engine's list */
};

/* Scatter a subset vector SUB [dv->n] into FULL [V]: FULL[ids[i]] = SUB[i],
 * FILL elsewhere (0 for a distribution, -INFINITY for logits). */
void mtp_draft_vocab_scatter(const int32_t *ids, int n, const float *sub, float fill,
                             float *full, int V);

/* One draft over a draft vocabulary of N ids (what decoding does per draft):
 * SUB_PROBS [n] <- the distribution of SUB_LOGITS [n] under S (softmax,
 * top-k/top-p over the subset only, i.e. renormalised over it; one-hot when
 * greedy); the draft is its argmax (greedy) or the inverse-CDF draw with U;
 * Q [V] <- SUB_PROBS scattered to the full vocabulary, 0 outside the subset,
 * which is exactly the distribution the draft was drawn from. WORK: n int32
 * sort scratch. Returns the token id and writes its subset index to *SUB. */
int32_t mtp_draft_vocab_choose(const struct mtp_sampling *s, const int32_t *ids, int n,
                               const float *sub_logits, float u, float *sub_probs,
                               int32_t *work, float *q, int V, int32_t *sub);

#endif
