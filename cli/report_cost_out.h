/*
 * report_cost_out.h - writing the two cost-model tables of `mtpbench report
 * --table cost-model` (analysis/report_cost.h) in one output, and the batch
 * table of --table cost-batch (analysis/report_cost_batch.h).
 */
#ifndef MTP_REPORT_COST_OUT_H
#define MTP_REPORT_COST_OUT_H

#include <stdio.h>

#include "analysis/report.h"

/* Load COSTS_PATH, build both tables from D and write them to F: md, csv and
 * tex one after the other; json as {"schema": "mtpbench-cost-model/1",
 * "projection": bool, "bench": {file, host, cpu, backend, threads,
 * cpus_online, load_average {start, end}, reference, decode_over_verify1,
 * verify1_spread, noisy, noisy_reason, warnings}, "tables": {"cost-model":
 * ..., "cost-depth": ...}} with each table as mtp_report_write_json writes
 * it. Warnings (thread count, CPU or host differing from the logs', a noisy
 * bench) also go to stderr. */
int mtp_report_cost_output(FILE *f, const struct mtp_report_data *d,
                           const struct mtp_report_options *opt, const char *costs_path,
                           enum mtp_report_format fmt);

/* Load COSTS_PATH and write the batch table (analysis/report_cost_batch.h)
 * from D to F in FMT, as any other table (json: mtp_report_write_json's
 * object). The same warnings go to stderr. */
int mtp_report_cost_batch_output(FILE *f, const struct mtp_report_data *d,
                                 const struct mtp_report_options *opt, const char *costs_path,
                                 enum mtp_report_format fmt);

#endif
