/*
 * report_cost.h - `mtpbench report --table cost-model LOG --costs BENCH.json`:
 * the cost model (cost_model.h, spec/metrics.md "Cost model") applied to the
 * acceptance measured in the logs.
 *
 * Two tables. "cost-model": one row per speculative decoder x sampling
 * setting x category ("all" first): measured tau, measured tokens verified
 * per step, predicted tokens per step, predicted step cost in verify/n=1
 * units, predicted speedup [95% CI], measured speedup [95% CI], measured /
 * predicted, and a note where the intervals do not overlap naming the term
 * whose measured share differs most from the bench's. Decoders the model
 * cannot price (trees: their verification and drafting are not chains of
 * their depth; mixed groups; a depth or module the cost file does not time)
 * keep their measured columns and a note saying why, never a chain's price.
 * "cost-depth": per decoder family (drafting, chain module, draft
 * vocabulary) x wiring x sampling setting x category, the predicted speedup
 * for every depth K = 0..K_max (acceptance alpha_j of the family's deepest
 * decoder, which does not depend on K), the K* that maximises it with the
 * share of bootstrap resamples that choose the same K*, and the family's
 * measured best depth.
 *
 * Before anything is priced, every record's counts are checked
 * (report_cost_check.h): they become array indices here.
 *
 * The predicted interval: for each bootstrap resample of prompts (the report's
 * resamples, report.h), the resampled alpha_j with the costs of one bench
 * round drawn uniformly (PCG32 stream MTP_REPORT_COST_STREAM), nearest-rank
 * 2.5% and 97.5%. The point estimate: the full-sample alpha_j with the round
 * whose prediction is the median over rounds (so it is one of the cost sets
 * the interval draws). Titles carry the bench's host, CPU, threads, load average
 * and verify/n=1 spread; notes start with a warning when the logs' thread
 * count, CPU or host differ from the bench's, or the bench was noisy. With a
 * cost file from another machine (host or backend differ from the logs'
 * runs), the tables are a projection: titles say so, measured columns are
 * this machine's and no ratio or disagreement is printed.
 */
#ifndef MTP_REPORT_COST_H
#define MTP_REPORT_COST_H

#include "cost_model.h"
#include "report.h"

#define MTP_REPORT_COST_STREAM 0x636f7374u /* "cost" */

/* Build both tables from D (by decoder, temperature and category; OPT gives
 * the bootstrap). Returns MTP_OK or MTP_ERR (no speculative decoder, no
 * baseline). */
int mtp_report_table_cost(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                          const struct mtp_costs *costs, struct mtp_report_table *pred,
                          struct mtp_report_table *depth);

/* D grouped as the cost tables group it: decoder, temperature, wiring, and
 * with BY_CATEGORY category too ("all" rows first); latency off. */
int mtp_report_cost_build(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                          bool by_category, struct mtp_report *out);

/* What the cost views share (report_cost_batch.h prices the same decoders):
 * G as the cost model sees it (the chain module from its name's "-m<N>"); the
 * alpha_1..alpha_K of its metric vector V (undefined -> 0); whether G is the
 * deepest fixed-K decoder of its family (drafting, chain module, draft
 * vocabulary, wiring) at its setting, whose alpha_j serve every K <= its
 * depth; and the family's label ("chain m1 v1024"; owned). */
struct mtp_cost_decoder mtp_report_cost_decoder(const struct mtp_report_group *g);
void mtp_report_cost_alphas(const struct mtp_report_group *g, const double *v, int K,
                            double *alpha);
bool mtp_report_cost_is_deepest(const struct mtp_report *r, const struct mtp_report_group *g);
char *mtp_report_cost_family(const struct mtp_report_group *g);

/* Whether COSTS were measured on another machine or backend than D's runs. */
bool mtp_report_cost_is_projection(const struct mtp_report_data *d, const struct mtp_costs *costs);

#endif
