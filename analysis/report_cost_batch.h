/*
 * report_cost_batch.h - `mtpbench report LOG --table cost-batch --costs
 * BENCH.json`: the cost model at batch size B (cost_batch.h) applied to the
 * acceptance measured in the logs.
 *
 * One row per decoder family (drafting, chain module, draft vocabulary) x
 * wiring x sampling setting x batch size B of the cost file's batch curve,
 * with the alpha_j of the family's deepest decoder over all its prompts (the
 * cost-depth table's choice, report_cost.h: acceptance does not depend on K,
 * nor on B, since the engine is batch invariant). Columns per K = 1..3: the
 * predicted throughput speedup, the verify cost ratio F(B, K) / F(B, 0) and
 * the experts ratio (routed experts touched per MoE layer, B x (K+1) tokens
 * over B tokens); then K* in 0..3 (ties to the smaller K) and its speedup. A K
 * the family cannot be priced at (deeper than its decoder, a module or draft
 * vocabulary the batch curve does not time) has no speedup and a note saying
 * why. The note under the table gives the formula and the bench's warnings
 * (thread count, CPU, host, noise: mtp_report_cost_warnings).
 */
#ifndef MTP_REPORT_COST_BATCH_H
#define MTP_REPORT_COST_BATCH_H

#include "cost_batch.h"
#include "report.h"

/* Build the table from D with COSTS (which must hold a batch curve). MTP_OK,
 * or MTP_ERR: no batch curve, no fixed-K speculative decoder in the logs, a
 * damaged record. */
int mtp_report_table_cost_batch(const struct mtp_report_data *d,
                                const struct mtp_report_options *opt,
                                const struct mtp_costs *costs, struct mtp_report_table *t);

#endif
