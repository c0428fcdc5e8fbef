/*
 * decode.h - decoding sessions: single-token (baseline) decoding and MTP
 * speculative decoding with exact or chained drafting (docs/design.md §5).
 *
 * A session decodes one request on an engine: prefill the prompt (the main
 * model, and for MTP the modules' caches), then steps until EOS or
 * max_new_tokens. Each step is recorded (accepted drafts, tokens emitted,
 * per-phase nanoseconds, experts touched by the verification forward), so the
 * runner logs exactly what happened (docs/design.md §6, §8).
 *
 * The engine is borrowed: one session at a time per engine (a session owns
 * all caches while it runs; prefill resets them). The engine's capacity must
 * cover prompt + max_new_tokens + depth + 1 positions (mtp_decode_positions_needed).
 *
 * Randomness: the session draws from the PCG32 stream it is given, in a fixed
 * order per step (K draft uniforms, then K+1 acceptance uniforms; baseline:
 * one), so a fixed seed gives bitwise-identical tokens and step records.
 * Greedy settings (temperature 0) draw nothing. Tree decoders draw one
 * uniform per sibling draft, then per visited node one per child plus one for
 * the residual or bonus token (spec/decoding.md "Tree decoding").
 */
#ifndef MTP_DECODE_H
#define MTP_DECODE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "rng.h"
#include "sampling.h"
#include "tree.h"

/* Most sequences one batched decoding runs at once (decode_batch.h). */
enum { MTP_DECODE_MAX_BATCH = 256 };

enum mtp_decode_drafting {
    MTP_DECODE_DRAFTING_NONE,  /* baseline: one main forward per token */
    MTP_DECODE_DRAFTING_EXACT, /* module k drafts token k (K <= D) */
    MTP_DECODE_DRAFTING_CHAIN, /* one module reused K times (any K) */
};

enum mtp_decode_stop {
    MTP_DECODE_STOP_NONE,       /* still running */
    MTP_DECODE_STOP_EOS,        /* the EOS token was emitted (it is in the output) */
    MTP_DECODE_STOP_MAX_TOKENS, /* max_new_tokens emitted */
};

/* Adaptive depth (spec/decoding.md "Adaptive depth"): after drafting d_j,
 * stop at depth j when the draft's probability p_j (softmax of the module's
 * logits at T = 1, whatever the sampling setting) or the product p_1..p_j
 * falls below a threshold. The decision to draft position j+1 depends only on
 * d_1..d_j, so every verified draft is still distributed as its q_j and
 * verification stays lossless. Chained drafting only. */
enum mtp_decode_adaptive {
    MTP_DECODE_ADAPTIVE_OFF,        /* always K drafts */
    MTP_DECODE_ADAPTIVE_DRAFT,      /* stop when p_j < threshold */
    MTP_DECODE_ADAPTIVE_CUMULATIVE, /* stop when p_1 * ... * p_j < threshold */
};

/* Tests only: may replace draft K (1-based) before it is used, e.g. with the
 * known greedy continuation, to force every acceptance length. Greedy only
 * (a sampled draft must come from its q). */
typedef void (*mtp_decode_draft_hook)(void *user, int k, int32_t *draft);

/* Tests only: may replace the token of tree node NODE (its depth, rank and
 * parent are in T) right after it is drafted, before any module reads it.
 * Greedy only. */
typedef void (*mtp_decode_tree_hook)(void *user, const struct mtp_tree *t, int node,
                                     int32_t *token);

struct mtp_decode_params {
    enum mtp_decode_drafting drafting;
    int depth;                   /* K drafts per step (0 for baseline); adaptive: at most K */
    enum mtp_decode_adaptive adaptive; /* OFF unless an adaptive-depth decoder */
    double adaptive_threshold;   /* in [0, 1]; 0 never stops early */
    int chain_module;            /* chain: 1-based module reused (0 -> 1) */
    int draft_vocab;             /* > 0: draft heads over the N most frequent ids only
                                  * (spec/decoding.md "Draft vocabulary"); 0 = full vocab */
    struct mtp_wiring wiring;    /* MTP conventions (wiring.h); _DEFAULT fields take the
                                  * model family's choice (mtp_wiring_resolve) */
    struct mtp_sampling sampling;
    int max_new_tokens;          /* >= 1; the first (prefill) token counts */
    int eos_token_id;            /* < 0: never stop on a token */
    struct mtp_rng rng;          /* the request's stream, seeded by the caller */
    mtp_decode_draft_hook draft_hook; /* NULL (tests only) */
    void *draft_hook_user;
    /* Tree decoding (spec/decoding.md "Tree decoding"): kind NONE (zeroed)
     * drafts a chain of depth K; otherwise the step drafts this shape's tree
     * (depth and node count from the shape; `depth` is ignored) and verifies
     * it in one forward. Exact drafting needs the tree's depth <= D. */
    struct mtp_tree_shape tree;
    mtp_decode_tree_hook tree_hook; /* NULL (tests only); user: draft_hook_user */
};

/* What a request produced. Arrays are owned by the session (or, after
 * mtp_decode_run, by the caller: free with mtp_decode_result_free). */
struct mtp_decode_result {
    int n_prompt;
    int n_output;
    int32_t *output;        /* [n_output] new tokens; output[0] from the prefill logits */
    uint8_t *from_draft;    /* [n_output] 1 where the token was an accepted draft */
    int n_steps;
    int32_t *accepted;      /* [n_steps] a_s: drafts accepted and emitted (a draft cut by
                             * EOS or max_new_tokens does not count, spec/metrics.md) */
    int32_t *accepted_uncut; /* [n_steps] the verifier's outcome: drafts accepted before
                              * any cut by EOS or max_new_tokens (spec/metrics.md uses these
                              * for alpha, beta and accept_rate: a cut is censoring, not
                              * rejection) */
    int32_t *emitted;       /* [n_steps] e_s: tokens appended (a_s + 1 unless cut) */
    int32_t *drafted;       /* [n_steps] k_s: drafts verified (K, fewer with adaptive depth) */
    uint64_t *draft_ns;     /* [n_steps] module forwards (incl. cache extension) + draft sampling */
    uint64_t *verify_ns;    /* [n_steps] the main forward */
    uint64_t *accept_ns;    /* [n_steps] target distributions, acceptance, emission */
    uint64_t *update_ns;    /* [n_steps] rollback: cache truncation and hidden bookkeeping
                             * (the module-cache extension over newly accepted positions is
                             * fused into the draft forward, so it is in draft_ns) */
    int n_moe_layers;       /* columns of experts_touched */
    int32_t *experts_touched; /* [n_steps][n_moe_layers]: distinct routed experts, verify forward */
    uint64_t prefill_ns;    /* main (+ module) prefill */
    uint64_t ttft_ns;       /* prefill through the first token */
    uint64_t total_ns;      /* prefill through the last token */
    /* Tree decoders only (NULL otherwise), per step: */
    int32_t *tree_nodes;    /* [n_steps] tokens verified, the pending one included */
    int32_t *tree_node;     /* [n_steps] the accepted node (0 = none accepted), depth-major index */
    int tree_depth;         /* columns of tree_ranks: the shape's depth */
    int32_t *tree_ranks;    /* [n_steps][tree_depth] sibling rank of the accepted node at
                             * each depth 1..a, -1 beyond a */
    enum mtp_decode_stop stop;
    int capacity;           /* (internal) allocated steps */
};

struct mtp_decode; /* opaque session */

/* Positions an engine must hold for a request (prompt, output, drafts). */
int mtp_decode_positions_needed(int n_prompt, int max_new_tokens, int depth);

/* Check P against the engine's model and backend: depth vs modules (also
 * when config.json announces modules whose tensors are absent), chain module,
 * sampling ranges, and a verification no longer than the backend keeps batch
 * invariant. Returns MTP_OK or MTP_ERR with a message. */
int mtp_decode_check(const struct mtp_engine *e, const struct mtp_decode_params *p);

/* mtp_decode_check, then create a session. Returns MTP_OK or MTP_ERR. */
int mtp_decode_create(struct mtp_engine *e, const struct mtp_decode_params *p,
                      struct mtp_decode **out);
void mtp_decode_free(struct mtp_decode *d);

/* Prefill PROMPT [n >= 1] and choose the first token (ttft). Resets the
 * session's result, so one session can serve several requests in turn. */
int mtp_decode_prefill(struct mtp_decode *d, const int32_t *prompt, int n);

/* The next turn of a conversation (engine/decode_continue.c): PROMPT [n >= 1]
 * is the whole conversation so far. The cache rows of the longest common
 * prefix of PROMPT and the sequence the session holds (its last request's
 * prompt and output) are kept, the rest of PROMPT runs through the
 * batch-invariant forward, the MTP module caches are brought up to date, and
 * the first token is chosen, as mtp_decode_prefill does. *CACHED receives the
 * positions kept; 0 means a fresh prefill was done (nothing shared, a tree
 * decoder, or no earlier request). Resets the result like mtp_decode_prefill. */
int mtp_decode_continue(struct mtp_decode *d, const int32_t *prompt, int n, int *cached);

/* One step (baseline: one token; MTP: draft, verify, accept, roll back).
 * Sets *DONE when the request has stopped (then further steps do nothing). */
int mtp_decode_step(struct mtp_decode *d, bool *done);

/* The request so far (valid until the next prefill or free). */
const struct mtp_decode_result *mtp_decode_result(const struct mtp_decode *d);

/* The drafts of the last MTP step: writes up to CAP tokens and returns K
 * (0 before the first step). The logits [V] that draft k (1-based) was chosen
 * from (the module's output at the draft position; with a draft vocabulary,
 * -INFINITY outside it), or NULL (tests). */
int mtp_decode_last_drafts(const struct mtp_decode *d, int32_t *drafts, int cap);
const float *mtp_decode_last_draft_logits(const struct mtp_decode *d, int k);

/* The whole accepted sequence so far: prompt then output (tests). */
const int32_t *mtp_decode_sequence(const struct mtp_decode *d, int *n);

/* A whole request: create, prefill, step to the end, move the result to OUT
 * (zeroed first; free with mtp_decode_result_free). */
int mtp_decode_run(struct mtp_engine *e, const struct mtp_decode_params *p,
                   const int32_t *prompt, int n, struct mtp_decode_result *out);
void mtp_decode_result_free(struct mtp_decode_result *r);

#endif
