/*
 * decode_batch.h - speculative (or baseline) decoding of many requests at
 * batch size B with continuous batching (docs/design.md §5 "Batched
 * decoding"). B sessions run on the engine's sequences 0..B-1; every step
 * drafts for all of them with module forwards batched across sequences,
 * verifies every sequence's pending token and drafts in one main forward, and
 * accepts and rolls back per sequence. A request that stops frees its
 * sequence for the next waiting request (prefilled alone), so B stay in
 * flight while requests remain.
 *
 * Batch invariance: each request's tokens and step records (apart from the
 * times) are those of the same request decoded alone with the same
 * parameters and RNG stream: greedy decoding at any B emits the batch-1
 * baseline's tokens, and sampled decoding at B the tokens of batch 1 with
 * the same seeds (tests/test_batch_decode.c).
 */
#ifndef MTP_DECODE_BATCH_H
#define MTP_DECODE_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "decode.h"

/* One request: its prompt and its own RNG stream (seeded by the caller). */
struct mtp_decode_request {
    const int32_t *prompt;
    int n_prompt;
    struct mtp_rng rng;
};

/* One record per batched step: which requests it held, what it verified, the
 * experts its verification touched for the whole batch, and its phases. */
struct mtp_decode_batch_log {
    int n_steps;
    int n_moe_layers;
    int32_t *n_seqs;          /* [n_steps] sequences in the step */
    int32_t *tokens;          /* [n_steps] tokens in the verification forward */
    int32_t *member_off;      /* [n_steps + 1] offsets into members */
    int32_t *members;         /* request indices, in sequence order */
    int32_t *experts_touched; /* [n_steps][n_moe_layers] distinct routed experts, whole batch */
    uint64_t *prefill_ns;     /* [n_steps] prefills of requests admitted before the step */
    uint64_t *draft_ns;       /* [n_steps] batched module forwards + draft choice */
    uint64_t *verify_ns;      /* [n_steps] the batched main forward */
    uint64_t *accept_ns;      /* [n_steps] acceptance, emission and rollback, all sequences */
    int capacity, member_capacity; /* (internal) */
};
void mtp_decode_batch_log_free(struct mtp_decode_batch_log *log);

/* What a caller may observe of a batch run while it goes (all optional):
 * DONE is called as each request retires, with its index and its result
 * (the caller may log it; the run still owns RESULTS); a non-zero return
 * stops the run with MTP_ERR. STOP is asked before each admission: once it
 * returns true no waiting request is admitted, the requests in flight run
 * to their end, and the rest keep zeroed results (n_output = 0, n_steps = 0)
 * - how an interrupted run ends at a request boundary. */
struct mtp_decode_batch_hooks {
    void *ctx;
    int (*done)(void *ctx, int request, const struct mtp_decode_result *result);
    bool (*stop)(void *ctx);
};

/* Decode REQS[0..n_reqs) at BATCH_SIZE (1..MTP_DECODE_MAX_BATCH, at most the
 * engine's max_seqs, its max_batch at least BATCH_SIZE x the tokens one step
 * verifies) with parameters P (chain, exact or tree drafting, fixed or
 * adaptive depth, or baseline; P->rng is ignored: each request brings its
 * own). Trees: each session drafts its own tree, and one main forward
 * verifies every session's tree as a tree-shaped segment. RESULTS
 * [n_reqs] receive each request's result (free each with
 * mtp_decode_result_free); LOG (may be NULL) the batch records. MTP_OK, or
 * MTP_ERR naming the request that failed. HOOKS may be NULL. */
int mtp_decode_batch_run(struct mtp_engine *e, const struct mtp_decode_params *p, int batch_size,
                         const struct mtp_decode_request *reqs, int n_reqs,
                         struct mtp_decode_result *results, struct mtp_decode_batch_log *log,
                         const struct mtp_decode_batch_hooks *hooks);

#endif
