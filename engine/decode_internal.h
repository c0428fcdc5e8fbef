/*
 * decode_internal.h - the state of a decoding session, shared by decode.c
 * (life cycle, prefill, baseline step, emission, records), decode_draft.c
 * (exact and chained drafting) and decode_mtp.c (the speculative step:
 * verify, accept, roll back). Not part of the public API.
 *
 * Notation (docs/design.md §5): the accepted sequence is seq[0..m], m = n_seq - 1;
 * seq[m] is the pending token (chosen, not yet run through the main model);
 * the main cache holds positions 0..m-1 and hid[0][j] is the main post-norm
 * hidden at position j (j < m).
 */
#ifndef MTP_DECODE_INTERNAL_H
#define MTP_DECODE_INTERNAL_H

#include "decode.h"

enum { MTP_DECODE_MAX_DEPTH = 64 }; /* as experiments/spec.h MTP_SPEC_MAX_DEPTH */

/* Host buffers of one batched phase (decode_batch.c): the tokens, hidden
 * inputs and outputs, logits and segments of every session in it, grown on
 * demand. */
struct mtp_decode_work {
    int32_t *tokens;
    float *hin, *hout, *logits;
    struct mtp_segment *segs;
    int cap_tokens, cap_rows, cap_segs;
};
void mtp_decode_work_free(struct mtp_decode_work *w);

struct mtp_decode {
    struct mtp_engine *e;
    int seq_id;     /* the engine sequence whose caches this session uses (0 alone) */
    struct mtp_decode_params p;
    int V;          /* vocab size */
    int dm;         /* hidden size d */
    int D;          /* MTP modules in the model */
    int K;          /* depth (0 for baseline) */
    int module;     /* chain: the module reused */
    int n_moe;      /* main-model MoE layers (experts-touched columns) */

    int32_t *seq;   /* [cap_pos] prompt + output */
    int n_seq;
    int cap_pos;    /* positions the host arrays hold */

    /* Host hidden states by absolute position, [cap_pos, d] each:
     * hid[0] the main model (after model.norm), hid[k] MTP module k (after
     * shared_head.norm). Chain drafting uses hid[module] for the reused module. */
    float **hid;

    int32_t drafts[MTP_DECODE_MAX_DEPTH];     /* d_1..d_K of the current step (K <= MTP_DECODE_MAX_DEPTH) */
    const struct mtp_draft_vocab *dv;         /* draft vocabulary (engine-owned), NULL = full */
    int32_t draft_sub[MTP_DECODE_MAX_DEPTH];  /* with dv: subset index of d_k, -1 if a test
                                               * hook replaced the draft */
    float *draft_logits;    /* [K, V] module logits at the draft position */
    float *q;               /* [K, V] draft distributions (sampling) */
    float *p_target;        /* [K+1, V] target distributions (sampling) */
    float *logits;          /* [K+1, V] main logits of the verify / decode forward */
    float *batch_logits;    /* [batch_cap, V] logits of one module forward */
    int32_t *batch_tokens;  /* [batch_cap] */
    int batch_cap;
    float *work;            /* [V] residual scratch */
    int32_t *iwork;         /* [V] sort scratch */
    int last_K;             /* drafts made in the last step */
    int k_step;             /* drafts of the current step (K, fewer with adaptive depth) */

    struct mtp_decode_result r;
    struct mtp_decode_tree *tree; /* tree decoding (decode_tree.h), or NULL */
    struct mtp_decode_work batch_work; /* this session's own steps (a batch of one) */
};

/* decode.c */
uint64_t mtp_decode_now_ns(void);
/* Choose a token from LOGITS [V] under the session's sampling (draws one
 * uniform unless greedy). PROBS [V] receives the distribution when not NULL. */
int32_t mtp_decode_choose(struct mtp_decode *d, const float *logits, float *probs);
/* Append TOKEN to the output; returns true when the request stops with it. */
bool mtp_decode_emit(struct mtp_decode *d, int32_t token, bool from_draft);
/* Start a step record; returns its index. */
int mtp_decode_step_begin(struct mtp_decode *d);
/* Drafts one step may write past the pending position (depth or tree nodes). */
int mtp_decode_step_drafts(const struct mtp_decode *d);
/* PROMPT [N] in the vocabulary and within the engine's positions. */
int mtp_decode_check_request(const struct mtp_decode *d, const int32_t *prompt, int n);
/* Size the host arrays for N_PROMPT and reset the result; KEEP keeps the
 * sequence, hidden rows and caches (a conversation's next turn). */
void mtp_decode_reset_request(struct mtp_decode *d, int n_prompt, bool keep);

/* decode_draft.c: fill module caches over the prompt; choose draft K from
 * module logits ROW; the adaptive-depth test after draft I (*CUM carries the
 * product of the drafts' probabilities); the sequence extended by the step's
 * drafts; the hidden states module K reads in exact drafting. */
int mtp_decode_prefill_modules(struct mtp_decode *d);
void mtp_decode_pick_draft(struct mtp_decode *d, int k, const float *row);
bool mtp_decode_stop_after(const struct mtp_decode *d, int i, const float *row, double *cum);
int32_t mtp_decode_token_at(const struct mtp_decode *d, int i);
const float *mtp_decode_module_input(const struct mtp_decode *d, int k);
/* Truncate module caches after a step that accepted A drafts at pending m. */
void mtp_decode_rollback_modules(struct mtp_decode *d, int m, int a);

/* decode_batch.c: the phases of one step over the N sessions S (each on its
 * own engine sequence, all with the same parameters), every engine forward
 * batched across them. A single session's step is the case N = 1. Draft:
 * d_1..d_K of each session (exact or chained; sessions whose adaptive depth
 * stops early drop out of the later module forwards). Verify: one main
 * forward of every session's pending token and drafts (baseline: the pending
 * token); each session's logits and hidden rows, experts touched per session
 * into step record S_STEP[i], and for the whole batch into ALL_TOUCHED (may
 * be NULL). */
int mtp_decode_draft_sessions(struct mtp_decode **S, int n, struct mtp_decode_work *w);
int mtp_decode_verify_sessions(struct mtp_decode **S, const int *s_step, int n,
                               struct mtp_decode_work *w, int32_t *all_touched);

/* decode_mtp.c: accept, emit and roll back after verification (step S of
 * session D); the baseline's emission; a whole speculative step of one
 * session (chain or tree). */
void mtp_decode_finish_mtp(struct mtp_decode *d, int s);
void mtp_decode_finish_baseline(struct mtp_decode *d, int s);
int mtp_decode_step_mtp(struct mtp_decode *d);

#endif
