/*
 * report_cost_check.h - what the cost-model view (report_cost.h) checks
 * before it prices anything: the log records it reads, whether a decoder
 * can be priced at all, and whether the bench file describes the machine
 * and thread count the logs were measured on.
 *
 * The log reader validates records too; the cost model checks again at its
 * own entry because it turns counts into array indices (defence in depth: a
 * record built in memory, or a reader that changes, must not become an
 * out-of-bounds write here).
 */
#ifndef MTP_REPORT_COST_CHECK_H
#define MTP_REPORT_COST_CHECK_H

#include <stdbool.h>

#include "cost_model.h"
#include "report.h"

/* Every request of D whose counts the cost model reads: depth in 0..64,
 * n_steps >= 0, per step 0 <= accepted <= accepted_uncut <= drafted <= depth
 * (drafted: depth when absent), tree nodes in accepted + 1 .. 64. MTP_ERR
 * naming the log, the request, the step, the field, its value and the range. */
int mtp_report_cost_check_records(const struct mtp_report_data *d);

/* Whether any member of G is a tree decoder (a "tree" shape in its record). */
bool mtp_report_cost_is_tree(const struct mtp_report_data *d, const struct mtp_report_group *g);

/* Mean tokens verified per step over G's steps: a tree's nodes, a chain's
 * drafted + 1 (the pending token included); NaN without steps. */
double mtp_report_cost_verified_per_step(const struct mtp_report_data *d,
                                         const struct mtp_report_group *g);

/* Why G cannot be priced with COSTS as decoder DEC (a mixed group, a tree, a
 * depth or module the bench file does not cover), as an owned string, or
 * NULL when it can. */
char *mtp_report_cost_unpriced(const struct mtp_report_data *d, const struct mtp_report_group *g,
                               const struct mtp_costs *costs, const struct mtp_cost_decoder *dec);

/* The differences between D's runs and the bench of COSTS that make the
 * prediction less comparable (thread count, CPU model, host) and the bench's
 * noise, one sentence each, joined by spaces; NULL when there are none. Owned. */
char *mtp_report_cost_warnings(const struct mtp_report_data *d, const struct mtp_costs *costs);

/* "host (cpu), backend, T threads, load 0.12 -> 1.05, verify/n=1 spread 3%" */
char *mtp_report_cost_bench_label(const struct mtp_costs *costs);

#endif
