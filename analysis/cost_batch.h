/*
 * cost_batch.h - the cost model at batch size B (spec/metrics.md "Cost
 * model", batch paragraph): the batch curve of `mtpbench bench --batch
 * --json` (the cost file's optional "batch" section) and the price of a
 * speculative step of depth K over B sequences.
 *
 * The unit at batch B is the batch-B baseline step: one forward of B single
 * tokens, F(B, 0). A step of depth K verifies B x (K+1) tokens in one forward,
 * F(B, K), and drafts with batched module forwards over the same B sequences,
 * D_k(B, n) (module k over B segments of n rows; the head on each segment's
 * last row, as engine/decode_batch.c runs it), both timed in the same rounds
 * as F(B, 0), so every ratio is taken within a round and its median over
 * rounds kept. The per-row and per-step overheads (choose, update) come from
 * the batch-1 curve and are paid once per sequence, so they scale by B;
 * they are converted to batch-B units with F(1, 0) / F(B, 0) from the batch
 * curve, which takes the batch curve's one-token forward of one sequence for
 * the main curve's verify/n=1 (the same operation, timed in another loop).
 *
 * With those costs the batch-1 formulas (cost_model.h) apply unchanged:
 * speedup(B, K) = E[tokens per step](alpha, K) x baseline / step cost, a
 * throughput ratio (every sequence gains the same tokens per step), and K*(B)
 * the K in 0..3 that maximises it (ties to the smaller K).
 */
#ifndef MTP_COST_BATCH_H
#define MTP_COST_BATCH_H

#include "cost_model.h"

enum { MTP_COST_BATCH_N_B = 6, MTP_COST_BATCH_MAX_K = 3 };

/* The batch sizes `bench --batch` times; a cost file may hold any of them. */
static const int mtp_cost_batch_sizes[MTP_COST_BATCH_N_B] = {1, 2, 4, 8, 16, 32};

struct mtp_cost_batch {
    int n_b;                      /* batch sizes in the file (B = 1 always among them) */
    int B[MTP_COST_BATCH_N_B];    /* ascending */
    int context, rounds, modules, n_moe;
    double forward_ns[MTP_COST_BATCH_N_B][MTP_COST_BATCH_MAX_K + 1]; /* median F(B, K), ns */
    /* Medians over rounds of each round's ratio to F(B, 0) of that round: */
    double verify[MTP_COST_BATCH_N_B][MTP_COST_BATCH_MAX_K + 1]; /* F(B, K) / F(B, 0) */
    double draft[MTP_COST_BATCH_N_B][MTP_COST_BATCH_MAX_K + 1]
                [MTP_COST_BATCH_MAX_K];          /* [bi][n-1][k-1]: D_k(B, n) / F(B, 0) */
    double unit[MTP_COST_BATCH_N_B];             /* F(1, 0) / F(B, 0): one V(1) at batch B */
    double experts[MTP_COST_BATCH_N_B][MTP_COST_BATCH_MAX_K + 1]; /* per MoE layer, mean */
    double singles_over_forward; /* median over rounds of 8 single decodes / F(8, 0); NaN: none */
    double forward1_spread;      /* (p10..p90) / median of F(1, 0)'s ns over rounds: the batch
                                  * curve's own noise (nearest rank) */
};

/* Whether the batch curve looks noisy: F(1, 0) varies by more than 10% (p10..p90) over its
 * rounds (the batch-1 curve's test, mtp_costs_noisy). */
bool mtp_cost_batch_noisy(const struct mtp_cost_batch *b);

/* The "batch" section of a parsed cost file ROOT into OUT->batch (left NULL
 * when the file has none). Every value is checked: B in the bench's set, K in
 * 0..3, T = B (K+1), ns finite, > 0 and at most 1e15, summaries ordered and
 * medians inside their samples, one case per (B, K), K = 0..3 for every B,
 * B = 1 present, module lists of the section's length. Errors name the file
 * and the key ("batch.cases[3].ns_samples[1]") with what was expected and found. */
struct json_t;
int mtp_cost_batch_read(struct mtp_costs *out, struct json_t *root);
void mtp_cost_batch_free(struct mtp_cost_batch *b);

/* Why decoder D cannot be priced at depth K from the batch curve of COSTS
 * (no batch section, K outside 0..3, a module it does not time, a draft
 * vocabulary: the batch curve times the full head only), or NULL. Static text. */
const char *mtp_cost_batch_unpriceable(const struct mtp_costs *costs,
                                       const struct mtp_cost_decoder *d, int K);

/* The costs at batch index BI (costs->batch->B[bi]) in units of F(B, 0), as a
 * cost point the batch-1 formulas take: verify[n] = F(B, n-1) / F(B, 0),
 * draft[k][n] = D_k(B, n) / F(B, 0) (n = 1..4), and the overheads of the
 * median point times B F(1, 0) / F(B, 0). */
void mtp_cost_batch_point(const struct mtp_costs *costs, int bi, struct mtp_cost_point *p);

/* Predicted throughput speedup at batch index BI and depth K (K = 0: 1), and
 * K* in 0..KMAX (ties to the smaller K) with its speedup in *BEST. The
 * decoder must be priceable at every K used (mtp_cost_batch_unpriceable). */
double mtp_cost_batch_speedup(const struct mtp_costs *costs, int bi,
                              const struct mtp_cost_decoder *d, const double *alpha, int K);
int mtp_cost_batch_best_depth(const struct mtp_costs *costs, int bi,
                              const struct mtp_cost_decoder *d, const double *alpha, int kmax,
                              double *best);

#endif
