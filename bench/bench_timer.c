/*
 * bench_timer.c - interleaved repeats and their summaries (bench_timer.h).
 */
#include "bench_timer.h"

#include <math.h>   /* defines: sqrt, ceil */
#include <stdlib.h> /* defines: qsort, free */
#include <string.h> /* defines: strcmp, memset */

#include "analysis/report.h" /* defines: mtp_report_draw_index */
#include "core/error.h"    /* defines: MTP_OK, mtp_xmalloc */
#include "engine/rng.h"      /* defines: mtp_rng_seed */

int mtp_bench_interleave(const struct mtp_bench_case *cases, int n, int ref, int warmup,
                         int rounds, int inner, void *ctx, struct mtp_bench_result *out)
{
    memset(out, 0, sizeof *out);
    MTP_CHECK(n >= 1 && ref >= 0 && ref < n && rounds >= 1 && warmup >= 0 && inner >= 1);
    out->n_cases = n;
    out->rounds = rounds;
    out->ref = ref;
    out->ns = mtp_xmalloc(sizeof(double) * (size_t)rounds * n);
    out->ratio = mtp_xmalloc(sizeof(double) * (size_t)rounds * n);
    /* A fresh random order every round, so that no case always follows the
     * same neighbour: the caches a case leaves behind (a module's weights
     * evicting part of the main model's from L2) would otherwise bias one
     * case against another for good. A rotation is not enough: it keeps every
     * case's predecessor. Seeded, so a run is repeatable. */
    int *order = mtp_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        order[i] = i;
    struct mtp_rng rng;
    mtp_rng_seed(&rng, 0x62656e6368ULL, 1);
    for (int r = -warmup; r < rounds; r++) {
        for (int i = n - 1; i > 0; i--) {
            int j = (int)mtp_report_draw_index(&rng, (uint32_t)i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < n; i++) {
            int c = order[i];
            double best = 0;
            for (int k = 0; k < inner; k++) {
                double ns;
                if (cases[c].run(ctx, &cases[c], &ns)) {
                    free(order);
                    return mtp_error_wrap("bench: case %s: ", cases[c].name);
                }
                best = k == 0 || ns < best ? ns : best;
            }
            if (r >= 0)
                out->ns[(size_t)r * n + c] = best;
        }
    }
    free(order);
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < n; c++) {
            double den = out->ns[(size_t)r * n + ref];
            out->ratio[(size_t)r * n + c] = den > 0 ? out->ns[(size_t)r * n + c] / den : 0;
        }
    return MTP_OK;
}

void mtp_bench_result_free(struct mtp_bench_result *r)
{
    free(r->ns);
    free(r->ratio);
    memset(r, 0, sizeof *r);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Nearest rank: the smallest value whose cumulative count reaches ceil(p n). */
static double rank(const double *sorted, int n, double p)
{
    int k = (int)ceil(p * n);
    return sorted[k < 1 ? 0 : k > n ? n - 1 : k - 1];
}

struct mtp_bench_stats mtp_bench_stats_of(const double *v, int n, int stride)
{
    struct mtp_bench_stats s = {0};
    if (n < 1)
        return s;
    double *x = mtp_xmalloc(sizeof *x * (size_t)n), sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        x[i] = v[(size_t)i * stride];
        sum += x[i];
    }
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    s.mean = sum / n;
    for (int i = 0; i < n; i++)
        sq += (x[i] - s.mean) * (x[i] - s.mean);
    s.sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
    s.median = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    s.p10 = rank(x, n, 0.10);
    s.p90 = rank(x, n, 0.90);
    s.min = x[0];
    s.max = x[n - 1];
    free(x);
    return s;
}

int mtp_bench_find(const struct mtp_bench_case *cases, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cases[i].name, name) == 0)
            return i;
    return -1;
}
