/*
 * report_bootstrap.c - point estimates and 95% percentile-bootstrap intervals
 * over prompts (spec/metrics.md "Confidence intervals"; the exact procedure is
 * in report.h so that a test can redo it).
 *
 * Prompts, not steps, are resampled: steps of one prompt are strongly
 * correlated (the same text is easy or hard to draft throughout), so
 * resampling steps would give intervals that are far too narrow.
 */
#include "report_internal.h"

#include <math.h>   /* defines: NAN, isnan, ceil */
#include <stdlib.h> /* defines: qsort, free */

#include "core/error.h" /* defines: mtp_xcalloc */

uint32_t mtp_report_draw_index(struct mtp_rng *rng, uint32_t n)
{
    uint32_t threshold = (uint32_t)(0u - n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t r = mtp_rng_next_u32(rng);
        if (r >= threshold)
            return r % n;
    }
}

static int double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank (0-based) of percentile P among N sorted values. */
static int rank_index(double p, int n)
{
    int r = (int)ceil(p * n - 1e-9);
    if (r < 1)
        r = 1;
    return (r > n ? n : r) - 1;
}

void mtp_report_interval(const double *v, int n, int stride, double p_lo, double p_hi,
                         double *lo, double *hi)
{
    double *tmp = mtp_xcalloc((size_t)n + 1, sizeof *tmp);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[(size_t)i * (size_t)stride]))
            tmp[m++] = v[(size_t)i * (size_t)stride];
    *lo = *hi = NAN;
    if (m > 0) {
        qsort(tmp, (size_t)m, sizeof *tmp, double_cmp);
        *lo = tmp[rank_index(p_lo, m)];
        *hi = tmp[rank_index(p_hi, m)];
    }
    free(tmp);
}

/* B resamples of G's units into g->samples. */
static void bootstrap_resample(struct mtp_report_group *g, int b, uint64_t seed)
{
    size_t m = (size_t)g->n_metrics;
    g->n_samples = b;
    g->samples = mtp_xcalloc((size_t)b * m, sizeof *g->samples);
    double *w = mtp_xcalloc((size_t)g->n_units, sizeof *w);
    struct mtp_rng rng;
    mtp_rng_seed(&rng, seed, MTP_REPORT_BOOT_STREAM);
    for (int i = 0; i < b; i++) {
        for (int u = 0; u < g->n_units; u++)
            w[u] = 0;
        for (int u = 0; u < g->n_units; u++)
            w[mtp_report_draw_index(&rng, (uint32_t)g->n_units)] += 1;
        mtp_report_eval(g, w, g->samples + (size_t)i * m);
    }
    free(w);
}

void mtp_report_bootstrap(struct mtp_report_group *g, int b, uint64_t seed)
{
    g->metrics = mtp_xcalloc((size_t)g->n_metrics, sizeof *g->metrics);
    double *ones = mtp_xcalloc((size_t)g->n_units + 1, sizeof *ones);
    double *point = mtp_xcalloc((size_t)g->n_metrics, sizeof *point);
    for (int u = 0; u < g->n_units; u++)
        ones[u] = 1;
    mtp_report_eval(g, ones, point);
    if (b > 0 && g->n_units > 0)
        bootstrap_resample(g, b, seed);
    for (int i = 0; i < g->n_metrics; i++) {
        struct mtp_report_stat *s = &g->metrics[i];
        s->value = point[i];
        s->lo = s->hi = NAN;
        if (g->n_samples > 0 && !isnan(point[i]))
            mtp_report_interval(g->samples + i, g->n_samples, g->n_metrics, 0.025, 0.975,
                                &s->lo, &s->hi);
    }
    free(point);
    free(ones);
}
