/*
 * report_cost_out.h - writing the two cost-model tables of `mtpbench report
 * --table cost-model` (analysis/report_cost.h) in one output.
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

#endif
