/*
 * fuzz_costs.c - libFuzzer target: a cost file (`mtpbench bench --json`,
 * mtpbench-costs/1) through mtp_costs_load, then the cost model on every
 * decoder it accepts as priceable, with the median point and each round,
 * and the batch cost model (cost_batch.h) at every batch size of the file.
 *
 * Beyond crashes and sanitizer reports, a finding is a number the report
 * would print without being able to stand behind it: a file the loader
 * accepts must give finite, positive step costs and speedups for every
 * decoder mtp_cost_unpriceable lets through (the issue-28 "inf" and "-nan"
 * cells). Such a case aborts.
 */
#include <math.h>   /* defines: isfinite */
#include <stdlib.h> /* defines: abort, free */

#include "analysis/cost_batch.h"
#include "analysis/cost_model.h"
#include "analysis/report_cost_check.h" /* defines: mtp_report_cost_bench_label */
#include "fuzz.h"

/* Acceptance curves: high, middling, and the extremes 1 and 0. */
static const double curves[4][MTP_COST_MAX_N] = {
    {0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15},
    {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5},
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {0},
};

static void check_point(const struct mtp_costs *c, const struct mtp_cost_point *p,
                        const struct mtp_cost_decoder *d)
{
    for (int K = 0; K < MTP_COST_MAX_N; K++) {
        if (mtp_cost_unpriceable(c, d, K))
            continue;
        for (int a = 0; a < 4; a++) {
            double s = mtp_cost_speedup(p, d, curves[a], K);
            struct mtp_cost_terms t;
            mtp_cost_step(p, d, curves[a], K, &t);
            if (!isfinite(s) || !(s > 0) || !isfinite(t.total) || !(t.total > 0))
                abort(); /* a priced decoder with a number the report cannot stand behind */
        }
    }
    double best;
    int kmax = d->drafting == MTP_SPEC_DRAFTING_EXACT ? c->n_modules : MTP_COST_MAX_N - 1;
    (void)mtp_cost_best_depth(p, d, curves[0], kmax, &best);
    if (!isfinite(best))
        abort();
}

/* The batch curve: every priceable (B, K) finite and > 0, K* finite. */
static void check_batch(const struct mtp_costs *c, const struct mtp_cost_decoder *d)
{
    for (int bi = 0; c->batch && bi < c->batch->n_b; bi++) {
        int kmax = 0; /* K = 0 (no speculation) is always priced */
        for (int K = 1; K <= MTP_COST_BATCH_MAX_K && !mtp_cost_batch_unpriceable(c, d, K); K++)
            kmax = K;
        for (int a = 0; a < 4; a++) {
            for (int K = 0; K <= kmax; K++) {
                double s = mtp_cost_batch_speedup(c, bi, d, curves[a], K);
                if (!isfinite(s) || !(s > 0))
                    abort(); /* the batch table would print it */
            }
            double best;
            (void)mtp_cost_batch_best_depth(c, bi, d, curves[a], kmax, &best);
            if (!isfinite(best))
                abort();
        }
    }
}

static void exercise(const struct mtp_costs *c)
{
    const char *why;
    (void)mtp_costs_noisy(c, &why);
    free(mtp_report_cost_bench_label(c));
    for (int v = 0; v < 2; v++)
        for (int g = 0; g < 2; g++)
            for (int m = 0; m <= c->n_modules + 1; m++) {
                struct mtp_cost_decoder d = {
                    .drafting = m ? MTP_SPEC_DRAFTING_CHAIN : MTP_SPEC_DRAFTING_EXACT,
                    .adaptive = m == 1 && g, .module = m, .greedy = g,
                    .draft_vocab = v ? 1024 : 0};
                check_point(c, &c->median, &d);
                check_batch(c, &d);
                for (int r = 0; r < c->rounds && r < 4; r++)
                    check_point(c, &c->round[r], &d);
            }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, 0);
    struct mtp_costs c;
    if (mtp_costs_load(path, &c) == 0)
        exercise(&c);
    mtp_costs_free(&c);
    return 0;
}
