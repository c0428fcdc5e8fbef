/* compare.c - tensor comparison with an explicit tolerance policy (compare.h). */
#include "compare.h"

#include <math.h>  /* defines: fabs, isnan, isinf, sqrt */
#include <stdio.h> /* defines: fprintf */

const struct mtp_tolerance mtp_tol_f32_activations = {
    .atol = 2e-4,
    .rtol = 1e-3,
    .min_cosine = 0.99999,
    .why = "float32 engine vs float64 reference on identical weights (compare.h)",
};

static bool special_mismatch(float g, float w)
{
    if (isnan(w) || isnan(g))
        return !(isnan(w) && isnan(g));
    if (isinf(w) || isinf(g))
        return g != w;
    return false;
}

bool mtp_compare(const char *name, const float *got, const float *want, size_t n,
                 const struct mtp_tolerance *tol, double *max_abs_err)
{
    size_t bad = 0, worst = 0;
    double worst_excess = -1.0, max_err = 0.0, dot = 0.0, gg = 0.0, ww = 0.0;
    for (size_t i = 0; i < n; i++) {
        float g = got[i], w = want[i];
        if (special_mismatch(g, w)) {
            bad++;
            worst = i;
            worst_excess = INFINITY;
            continue;
        }
        if (!isfinite(w))
            continue;
        double err = fabs((double)g - (double)w);
        double excess = err - (tol->atol + tol->rtol * fabs((double)w));
        max_err = err > max_err ? err : max_err;
        if (excess > 0)
            bad++;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
        dot += (double)g * w;
        gg += (double)g * g;
        ww += (double)w * w;
    }
    double cosine = (gg > 0 && ww > 0) ? dot / sqrt(gg * ww) : (gg == ww ? 1.0 : 0.0);
    bool ok = bad == 0 && cosine >= tol->min_cosine;
    if (max_abs_err)
        *max_abs_err = max_err;
    if (!ok)
        fprintf(stderr,
                "MISMATCH %s: %zu of %zu elements out of tolerance (%.3f%% pass), cosine %.8f; "
                "worst [%zu] got %.9g want %.9g; policy atol %g rtol %g cos >= %g (%s)\n",
                name, bad, n, n ? 100.0 * (double)(n - bad) / (double)n : 100.0, cosine, worst,
                n ? got[worst] : 0.0, n ? want[worst] : 0.0, tol->atol, tol->rtol,
                tol->min_cosine, tol->why);
    return ok;
}
