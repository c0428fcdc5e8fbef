/*
 * bench_costs.h - the cases `mtpbench bench` times (bench_timer.h) to build
 * the cost curve of the cost model (spec/metrics.md "Cost model"): a decode,
 * verification forwards of n = 1..16 tokens, each MTP module's forward over
 * n = 1..16 rows (a draft, or the catch-up rows of a step), the per-row costs
 * of choosing a token (argmax; argmax + distribution; softmax + sample) and
 * the cache rollback. Every case runs at the same context: the main cache
 * holds P positions, module k's holds the rows exact drafting would keep.
 */
#ifndef MTP_BENCH_COSTS_H
#define MTP_BENCH_COSTS_H

#include <stdint.h>

#include "bench_timer.h"
#include "engine/engine.h"

enum { MTP_BENCH_MAX_N = 16, MTP_BENCH_ROW_REPS = 8 };

/* Draft vocabularies timed next to the full head (spec/decoding.md "Draft
 * vocabulary"): one draft of each module with the head over N ids, for each
 * N below V, when the model directory has token_frequencies.bin. */
enum { MTP_BENCH_N_VOCABS = 3 };
static const int mtp_bench_draft_vocabs[MTP_BENCH_N_VOCABS] = {2048, 1024, 512};

struct mtp_bench_ctx {
    struct mtp_engine *e;
    const struct mtp_config *c;
    int P;              /* context positions */
    int32_t *tokens;    /* [P + MTP_BENCH_MAX_N + D + 1] fixed pseudo-random ids */
    float **hid;        /* [1 + D][P + MTP_BENCH_MAX_N, d]: main hidden, then each module's */
    float *logits;      /* [MTP_BENCH_MAX_N, V] */
    float *hrows;       /* [MTP_BENCH_MAX_N, d] */
    float *probs;       /* [V] */
    int32_t *iwork;     /* [V] */
    int *module_start;  /* [1 + D] position module k's timed rows start at */
    double experts[MTP_BENCH_MAX_N + 1]; /* mean experts touched per MoE layer, verify of n */
    int sink;           /* keeps the choose cases' results alive */
    const struct mtp_draft_vocab *dv[MTP_BENCH_N_VOCABS]; /* NULL: not timed (N >= V, or no
                                                           * token_frequencies.bin) */
};

/* Allocate CTX for engine E at context P, prefill the main model and fill
 * the module caches. Returns MTP_OK or MTP_ERR. */
int mtp_bench_ctx_init(struct mtp_bench_ctx *ctx, struct mtp_engine *e, int P);
void mtp_bench_ctx_free(struct mtp_bench_ctx *ctx);
/* Prefill and fill the module caches again (after something reset them). */
int mtp_bench_ctx_prime(struct mtp_bench_ctx *ctx);

/* The case list (owned by the caller, free()): "decode" first (the
 * reference), then verify/n=1..16, draft/module=k/n=1..16 for every module,
 * choose/argmax, choose/argmax_probs, choose/sampled, update, then
 * draft_vocab/module=k/N=n (one draft over a draft vocabulary of n ids) for
 * each vocabulary in CTX->dv. */
int mtp_bench_cost_cases(const struct mtp_bench_ctx *ctx, struct mtp_bench_case **out);

/* The run function of "decode" and "verify/n=N": a main forward of c->n tokens
 * at position P on CTX (a struct mtp_bench_ctx), cut back to P. */
int mtp_bench_run_forward(void *ctx, const struct mtp_bench_case *c, double *ns);

/* The run function of "draft/module=K/n=N": module c->module over c->n rows
 * from its timed start position, logits of the last row, cut back. */
int mtp_bench_run_module(void *ctx, const struct mtp_bench_case *c, double *ns);

#endif
