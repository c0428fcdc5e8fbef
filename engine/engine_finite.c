/*
 * engine_finite.c - catching NaN and Inf in a forward pass (engine_internal.h).
 *
 * The cheap part runs on every forward: the host copies of logits and hidden
 * states that a forward returns are scanned (V + d values per token, next to
 * the V * d multiply-adds of the head alone). Only when a value is bad does
 * the expensive part run: the chunk is computed again with a check of the
 * residual stream after the embedding, after every block and after the final
 * norm, so the message can name the first stage that went non-finite. The
 * rerun writes the same cache rows with the same values, and the request has
 * failed anyway.
 */
#include <math.h>   /* defines: isfinite, isnan */
#include <stdarg.h> /* defines: va_list */
#include <stdio.h>  /* defines: vsnprintf */

#include "engine_internal.h"
#include "../core/error.h"

bool mtp_finite_rows(const float *x, int rows, int cols, const char *what,
                     struct mtp_nonfinite *bad)
{
    if (!x)
        return true;
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            *bad = (struct mtp_nonfinite){what, (int)(i / (size_t)cols), i % (size_t)cols, x[i]};
            return false;
        }
    return true;
}

void mtp_engine_diag_begin(struct mtp_engine *e)
{
    e->diag.on = true;
    e->diag.found = false;
    e->diag.where[0] = '\0';
}

void mtp_engine_diag_stage(struct mtp_engine *e, const float *buf, int n, int width,
                           const char *fmt, ...)
{
    if (!e->diag.on || e->diag.found)
        return;
    float *host = e->host_rows;
    e->be->download(e->bctx, host, buf, (size_t)n * (size_t)width * sizeof(float));
    struct mtp_nonfinite bad;
    if (mtp_finite_rows(host, n, width, "", &bad))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->diag.where, sizeof e->diag.where, fmt, ap);
    va_end(ap);
    e->diag.found = true;
}

int mtp_engine_nonfinite_error(struct mtp_engine *e, const char *module,
                               const struct mtp_nonfinite *bad, const char *head)
{
    e->diag.on = false;
    const char *kind = isnan(bad->value) ? "NaN" : bad->value > 0 ? "+Inf" : "-Inf";
    int pos = e->fw.pos[bad->row];
    char where[96] = "";
    if (e->fw.n_segs > 1) { /* a batch of several sequences: name the sequence */
        int end = 0, seg = 0;
        while (seg < e->fw.n_segs - 1 && bad->row >= end + e->fw.segs[seg].n)
            end += e->fw.segs[seg++].n;
        snprintf(where, sizeof where, " of sequence %d", e->fw.segs[seg].seq);
    }
    if (e->diag.found)
        return mtp_error_set("%s at position %d%s: %s[%zu] is %s; the first non-finite values "
                             "come out of %s (check its weights: mtpbench inspect "
                             "--check-weights)",
                             module, pos, where, bad->what, bad->col, kind, e->diag.where);
    return mtp_error_set("%s at position %d%s: %s[%zu] is %s; every layer's output is finite, "
                         "so the head %s produced it (check its weights: mtpbench inspect "
                         "--check-weights)",
                         module, pos, where, bad->what, bad->col, kind, head);
}
