/*
 * bench_json.h - `mtpbench bench --json FILE`: the measured cost curve as a
 * JSON file, schema "mtpbench-costs/1" (spec/metrics.md "Cost model" says
 * what the report does with it; docs/reports.md lists the keys). The "batch"
 * section is optional: files without it (no --batch, older benches) still load.
 */
#ifndef MTP_BENCH_JSON_H
#define MTP_BENCH_JSON_H

#include "bench_costs.h"
#include "bench_threads.h"
#include "bench_timer.h"

#define MTP_BENCH_COSTS_SCHEMA "mtpbench-costs/1"

/* Where the numbers were measured, and under what load: getloadavg's 1, 5
 * and 15 minute averages before the model was loaded and after the last
 * case (negative: getloadavg failed; written as null). */
struct mtp_bench_provenance {
    const char *model_dir, *backend;
    int threads, context, warmup, inner;
    double load_start[3], load_end[3];
};

/* getloadavg into LOAD [3], or -1s where it fails. */
void mtp_bench_load_average(double *load);

/* Write every case of RES (names from CASES) with its ns and ratio
 * summaries and per-round ratios to PATH, and the N_SEC sections SEC
 * ("sections": {name: {"reference", "cases", "figures"}}), and BATCH (NULL:
 * none; taken over) as "batch" (bench_batch.h). Returns MTP_OK or MTP_ERR
 * naming the file. */
struct json_t;
int mtp_bench_write_json(const char *path, const struct mtp_bench_provenance *pv,
                         const struct mtp_bench_ctx *ctx, const struct mtp_bench_case *cases,
                         const struct mtp_bench_result *res,
                         const struct mtp_bench_section *sec, int n_sec, struct json_t *batch);

#endif
