/*
 * engine.h - the model running on a backend: latent caches, scratch, and the
 * forward entry points that decoding uses (docs/design.md §4).
 *
 * Sequences: the engine holds max_seqs sequences, each with its own caches:
 * one MLA latent cache per layer (main layers and each MTP module), rows
 * indexed by absolute position, each row rkv normalised latent values then dr
 * rotated k_pe values. A sequence's main-model caches share one length; each
 * MTP module has its own length. Rollback is truncation.
 *
 * One forward takes a ragged batch: segments, each a run of consecutive tokens
 * of one sequence (struct mtp_segment). Attention runs per segment against its
 * sequence's cache; every other op runs over all tokens together, so each
 * routed expert touched is read once for the whole batch. Every op reduces
 * each token in an order that does not depend on the batch (backend.h), so a
 * sequence's logits, hidden states and cache rows are bitwise those of the
 * same sequence run alone. The functions without a sequence argument act on
 * sequence 0: batch-1 decoding is the one-segment case of the same forward.
 *
 * Every forward of n tokens at start_pos first requires the cache to hold at
 * least start_pos positions; it (over)writes rows start_pos..start_pos+n-1 and
 * sets the length to start_pos + n.
 */
#ifndef MTP_ENGINE_H
#define MTP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../kernels/backend.h"
#include "model.h"
#include "wiring.h"

struct mtp_engine;

struct mtp_engine_options {
    int max_positions; /* cache capacity per layer (prompt + generated + drafts) */
    int max_batch;     /* most tokens in one forward; longer prefills are chunked */
    bool poison_rollback; /* tests: truncation fills the dropped cache rows with NaN, so any
                           * later read of stale entries shows up in the results */
    bool invariant_prefill; /* prefill with the batch-invariant kernels of forward(), so that
                             * a prefill equals incremental decoding bitwise (tests); by
                             * default the backend may use faster prefill kernels */
    int max_seqs;         /* sequences with caches of their own (0 means 1); each costs
                           * mtp_engine_seq_cache_bytes, and on the CPU backend creation
                           * fails, giving the bytes, when all exceed physical memory */
    int main_layers;      /* bench: run only the first main_layers main-model layers (0 = all),
                           * to separate a forward's fixed cost from its per-layer cost; the
                           * outputs are then not the model's */
};

/* Create an engine for MODEL on BACKEND (both borrowed; they must outlive it).
 * Prepares every weight on the backend. Returns MTP_OK or MTP_ERR. */
int mtp_engine_create(struct mtp_model *model, struct mtp_backend *backend,
                      const struct mtp_engine_options *opt, struct mtp_engine **out);
void mtp_engine_free(struct mtp_engine *e);

const struct mtp_model *mtp_engine_model(const struct mtp_engine *e);

/* The cache capacity it was created with (options.max_positions). */
int mtp_engine_max_positions(const struct mtp_engine *e);

/* Main model over tokens[0..n) at positions start_pos..start_pos+n-1, any n
 * (chunked by max_batch). Writes (host memory, either may be NULL):
 *   logits [n, V]  and  hidden [n, d] (after model.norm, what MTP module 1 takes).
 * Fails (MTP_ERR) if start_pos exceeds the cache length or capacity runs out.
 * n = 1 is a decode step, n = k+1 a verification; results per token are
 * bitwise identical in both (backend.h, batch invariance). */
int mtp_engine_forward(struct mtp_engine *e, const int32_t *tokens, int n, int start_pos,
                       float *logits, float *hidden);

/* A run of N consecutive tokens of sequence SEQ inside a batched forward.
 * Chain-shaped: RoPE positions and cache rows start_pos..start_pos+n-1, causal
 * attention. TREE non-NULL: tree-shaped (engine_tree.h), rows tree->start_row..,
 * positions tree->pos, keys tree->keys; start_pos is ignored. */
struct mtp_tree_batch;
struct mtp_segment {
    int seq;
    int n;
    int start_pos;
    const struct mtp_tree_batch *tree;
};

/* Main model over N_SEGS segments (distinct sequences, at most max_seqs) whose
 * tokens lie one after another in TOKENS, at most max_batch in all (no
 * chunking). LOGITS [n, V] and HIDDEN [n, d] (host, either may be NULL) in
 * token order. Each segment's sequence cache length becomes its last row + 1.
 * A tree segment holds at most MTP_TREE_MAX_NODES tokens. MTP_OK or MTP_ERR
 * naming the segment. */
int mtp_engine_forward_batch(struct mtp_engine *e, const int32_t *tokens,
                             const struct mtp_segment *segs, int n_segs, float *logits,
                             float *hidden);

/* MTP module MODULE over segments, as mtp_engine_mtp_forward for each: HIDDEN_IN
 * [n, d] host, in token order. LOGITS: with LAST_ONLY [n_segs, width], the
 * last token of each segment, else [n, width]; width = V, or the draft
 * vocabulary's size when DV is not NULL (then LAST_ONLY must hold). HIDDEN_OUT
 * [n, d]. Either output may be NULL. The head runs once over the rows read. */
struct mtp_draft_vocab;
int mtp_engine_mtp_forward_batch(struct mtp_engine *e, int module,
                                 const struct mtp_draft_vocab *dv, const int32_t *tokens,
                                 const float *hidden_in, const struct mtp_segment *segs,
                                 int n_segs, bool last_only, float *logits, float *hidden_out);

/* Sequences the engine holds (options.max_seqs) and the backend bytes of one
 * sequence's caches for MODEL at MAX_POSITIONS (what each extra sequence costs). */
int mtp_engine_max_seqs(const struct mtp_engine *e);
size_t mtp_engine_seq_cache_bytes(const struct mtp_model *model, int max_positions);

/* Prefill: the main model over a prompt at positions 0..n-1, logits only for
 * the last position (last_logits [V], may be NULL), hidden [n, d] (may be NULL).
 * Unless options.invariant_prefill, the backend may use faster kernels whose
 * results differ from incremental decoding in the last bits (a chunk of more
 * than its invariant size; docs/design.md §4). */
int mtp_engine_prefill(struct mtp_engine *e, const int32_t *tokens, int n, float *last_logits,
                       float *hidden);

/* mtp_engine_forward, mtp_engine_prefill, mtp_engine_mtp_forward and
 * mtp_engine_mtp_forward_draft (below) on sequence SEQ (0..max_seqs-1): one
 * request of a batch, chunked by max_batch like the sequence-0 forms. */
int mtp_engine_seq_forward(struct mtp_engine *e, int seq, const int32_t *tokens, int n,
                           int start_pos, float *logits, float *hidden);
int mtp_engine_seq_mtp_forward_draft(struct mtp_engine *e, int seq, int module,
                                     const struct mtp_draft_vocab *dv, const int32_t *tokens,
                                     const float *hidden_in, int n, int start_pos,
                                     float *last_logits, float *hidden_out);
int mtp_engine_seq_prefill(struct mtp_engine *e, int seq, const int32_t *tokens, int n,
                           float *last_logits, float *hidden);
int mtp_engine_seq_mtp_forward(struct mtp_engine *e, int seq, int module, const int32_t *tokens,
                               const float *hidden_in, int n, int start_pos, float *logits,
                               float *hidden_out);

/* MTP module K (1-based) over n positions start_pos..: at position i it takes
 * Emb(tokens[i - start_pos]) and hidden_in[i - start_pos] (the main post-norm
 * hidden for K = 1, module K-1's post-shared_head.norm hidden otherwise; host
 * memory [n, d]). Writes logits [n, V] and hidden_out [n, d] (after
 * shared_head.norm), either may be NULL. Uses and extends module K's cache. */
int mtp_engine_mtp_forward(struct mtp_engine *e, int module, const int32_t *tokens,
                           const float *hidden_in, int n, int start_pos, float *logits,
                           float *hidden_out);

/* The same, with logits only for the last position (LAST_LOGITS [V], may be
 * NULL): drafting extends a module's cache over several rows but reads one
 * draft, and the head is most of a small module's cost. */
int mtp_engine_mtp_forward_last(struct mtp_engine *e, int module, const int32_t *tokens,
                                const float *hidden_in, int n, int start_pos, float *last_logits,
                                float *hidden_out);

/* The draft vocabulary of N ids (draft_vocab.h, spec/decoding.md "Draft
 * vocabulary"), built on first use from the model directory's
 * token_frequencies.bin and kept until the engine is freed. Returns MTP_OK and
 * *OUT (owned by the engine), or MTP_ERR naming the file and field (missing or
 * invalid file) or N outside 1..V. */
int mtp_engine_draft_vocab(struct mtp_engine *e, int n, const struct mtp_draft_vocab **out);

/* The same from COUNTS [V] instead of the file (tests, and models without
 * one): later mtp_engine_draft_vocab(e, n) calls, and so decoders with
 * draft_vocab n, use this vocabulary. An N already built is an error. */
int mtp_engine_draft_vocab_counts(struct mtp_engine *e, int n, const uint64_t *counts,
                                  const struct mtp_draft_vocab **out);

/* mtp_engine_mtp_forward_last with the head over the draft vocabulary DV only:
 * LAST_LOGITS [DV->n] holds the logits of ids DV->ids[0..n) (bitwise the
 * values the full head gives for those ids). DV NULL: the full head. */
int mtp_engine_mtp_forward_draft(struct mtp_engine *e, int module,
                                 const struct mtp_draft_vocab *dv, const int32_t *tokens,
                                 const float *hidden_in, int n, int start_pos,
                                 float *last_logits, float *hidden_out);

/* The engine-level MTP conventions of W (wiring.h, resolved): with
 * position0_embedding "zeroed" every module forward zeroes its input embedding
 * at position 0 (vLLM); with draft_hidden "before_shared_head_norm" hidden_out
 * of mtp_engine_mtp_forward* is the block output before shared_head.norm (the
 * logits still use the norm). Default: kept, after the norm. */
void mtp_engine_set_mtp_wiring(struct mtp_engine *e, const struct mtp_wiring *w);

/* Most tokens one main forward may verify with batch-invariant results on this
 * engine's backend (0 = no limit): past it, greedy equality is not guaranteed. */
int mtp_engine_max_invariant_tokens(const struct mtp_engine *e);

/* Cache lengths and rollback of sequence 0. module 0 = main model, 1..D = MTP modules. */
int mtp_engine_cache_len(const struct mtp_engine *e, int module);
void mtp_engine_truncate(struct mtp_engine *e, int module, int length);

/* The same for sequence SEQ (0..max_seqs-1). */
int mtp_engine_seq_cache_len(const struct mtp_engine *e, int seq, int module);
void mtp_engine_seq_truncate(struct mtp_engine *e, int seq, int module, int length);

/* Copy latent cache rows start..start+n-1 of LAYER (HF index, main or MTP) to
 * OUT [n, rkv+dr] on the host (tests and debugging); of sequence 0, or SEQ. */
void mtp_engine_read_cache(struct mtp_engine *e, int layer, int start, int n, float *out);
void mtp_engine_seq_read_cache(struct mtp_engine *e, int seq, int layer, int start, int n,
                               float *out);

/* Experts touched by the last main-model forward: for each MoE layer of the
 * main model (in order), the number of distinct routed experts selected by any
 * of its tokens. Returns the number of MoE layers; COUNTS has room for it. */
int mtp_engine_last_experts_touched(const struct mtp_engine *e, int *counts, int capacity);
/* The same for the tokens of segment SEG of the last main forward. */
int mtp_engine_last_experts_touched_segment(const struct mtp_engine *e, int seg, int *counts,
                                            int capacity);
int mtp_engine_num_moe_layers(const struct mtp_engine *e);

/* Debug trace of intermediates for golden tests: FN is called with host copies
 * of named float tensors ("attn_norm", "attn_out", "ffn_norm", "ffn_out",
 * "kv_cache" (the rows this forward wrote), "router_weights"), FN_I32 with int
 * tensors ("router_idx"), for layer LAYER (HF index). NULL disables tracing
 * (the default); names match training/mtpref/golden.py. */
typedef void (*mtp_trace_fn)(void *user, const char *name, int layer, const float *data,
                             int rows, int cols);
typedef void (*mtp_trace_i32_fn)(void *user, const char *name, int layer, const int32_t *data,
                                 int rows, int cols);
void mtp_engine_set_trace(struct mtp_engine *e, mtp_trace_fn fn, mtp_trace_i32_fn fn_i32,
                          void *user);

#endif
