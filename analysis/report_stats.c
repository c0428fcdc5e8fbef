/*
 * report_stats.c - the metrics of spec/metrics.md for one group, as ratios of
 * sums over weighted prompts: weight 1 each gives the point estimate, the
 * multiplicities of a bootstrap resample give one resampled value.
 *
 * Percentiles need the individual values (steps for phase latencies,
 * requests for TTFT/TPOT, prompts for the median speedup). They are sorted
 * once per group, each tagged with its prompt; a weighted percentile is then
 * one pass over the sorted values, which is exactly the nearest-rank
 * percentile of the resampled multiset without building it.
 */
#include "report_internal.h"

#include <math.h>   /* defines: NAN, ceil */
#include <stdlib.h> /* defines: qsort, free */
#include <string.h> /* defines: memset */

#include "core/error.h" /* defines: mtp_xcalloc */

const double mtp_report_pcts[MTP_REPORT_NPCT] = {0.50, 0.90, 0.99};

const char *const mtp_report_phase_names[MTP_REPORT_PHASE_COUNT] = {"draft", "verify", "accept",
                                                                    "update"};

/* ---- percentile inputs ------------------------------------------------- */

static void wset_push(struct mtp_report_wset *set, int *cap, double v, int unit)
{
    if (set->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        set->s = mtp_xrealloc(set->s, (size_t)*cap * sizeof *set->s);
    }
    set->s[set->n++] = (struct mtp_report_wsample){v, unit};
}

static int wsample_cmp(const void *a, const void *b)
{
    const struct mtp_report_wsample *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

static const uint64_t *phase_array(const struct mtp_request_record *r, int phase)
{
    switch (phase) {
    case MTP_REPORT_PHASE_DRAFT: return r->draft_ns;
    case MTP_REPORT_PHASE_VERIFY: return r->verify_ns;
    case MTP_REPORT_PHASE_ACCEPT: return r->accept_ns;
    default: return r->update_ns;
    }
}

/* TTFT and TPOT per request, the four phases per step. */
static void stats_latency_sets(const struct mtp_report_data *d, const struct mtp_report_group *g,
                               struct mtp_report_priv *p)
{
    int cap[MTP_REPORT_SET_COUNT] = {0};
    for (int i = 0; i < g->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[g->requests[i]].rec;
        int u = g->member_unit[i];
        wset_push(&p->sets[MTP_REPORT_SET_TTFT], &cap[MTP_REPORT_SET_TTFT], (double)r->ttft_ns,
                  u);
        if (r->n_output >= 2 && r->total_ns >= r->ttft_ns)
            wset_push(&p->sets[MTP_REPORT_SET_TPOT], &cap[MTP_REPORT_SET_TPOT],
                      (double)(r->total_ns - r->ttft_ns) / (r->n_output - 1), u);
        for (int ph = 0; ph < MTP_REPORT_PHASE_COUNT; ph++) {
            const uint64_t *a = phase_array(r, ph);
            int set = MTP_REPORT_SET_PHASE + ph;
            for (int s = 0; s < r->n_steps; s++)
                wset_push(&p->sets[set], &cap[set], (double)a[s], u);
        }
    }
}

void mtp_report_stats_prepare(const struct mtp_report_data *d, struct mtp_report_group *g,
                              bool latency)
{
    struct mtp_report_priv *p = mtp_xcalloc(1, sizeof *p);
    p->latency = latency;
    if (latency)
        stats_latency_sets(d, g, p);
    int cap = 0;
    for (int u = 0; u < g->n_units; u++) {
        const struct mtp_report_unit *x = &g->units[u];
        if (x->pair_ns > 0 && x->base_ns > 0 && x->base_tok > 0)
            wset_push(&p->sets[MTP_REPORT_SET_SPEEDUP], &cap,
                      (x->pair_tok / x->pair_ns) / (x->base_tok / x->base_ns), u);
    }
    for (int s = 0; s < MTP_REPORT_SET_COUNT; s++)
        if (p->sets[s].n > 1)
            qsort(p->sets[s].s, (size_t)p->sets[s].n, sizeof *p->sets[s].s, wsample_cmp);
    g->priv = p;
}

void mtp_report_stats_release(struct mtp_report_group *g)
{
    struct mtp_report_priv *p = g->priv;
    if (!p)
        return;
    for (int s = 0; s < MTP_REPORT_SET_COUNT; s++)
        free(p->sets[s].s);
    free(p);
    g->priv = NULL;
}

/* The nearest rank of percentile P among a total weight W: ceil(P W), at
 * least 1. The epsilon is insurance against P W landing a rounding error
 * above an integer (which would skip a rank). */
static double nearest_rank(double p, double w)
{
    double r = ceil(p * w - 1e-9);
    return r < 1 ? 1 : r;
}

void mtp_report_wpercentiles(const struct mtp_report_wset *set, const double *w,
                             const double *pcts, int np, double *out)
{
    double total = 0;
    for (int i = 0; i < set->n; i++)
        total += w[set->s[i].unit];
    for (int k = 0; k < np; k++)
        out[k] = NAN;
    if (total <= 0)
        return;
    double cum = 0;
    int k = 0;
    for (int i = 0; i < set->n && k < np; i++) {
        cum += w[set->s[i].unit];
        while (k < np && cum >= nearest_rank(pcts[k], total))
            out[k++] = set->s[i].v;
    }
}

/* ---- the metric vector -------------------------------------------------- */

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

/* The weighted units: acceptance and speed sums into M (each unit merged as
 * often as it was drawn), the pairing and MoE sums into S. */
static void eval_sums(const struct mtp_report_group *g, const double *w, struct mtp_metrics *m,
                      struct mtp_report_unit *s)
{
    memset(s, 0, sizeof *s);
    mtp_metrics_init(m, g->k);
    for (int u = 0; u < g->n_units; u++) {
        const struct mtp_report_unit *x = &g->units[u];
        double c = w[u];
        for (int i = 0; i < (int)c; i++)
            mtp_metrics_merge(m, &x->m);
        if (c == 0)
            continue;
        s->pair_tok += c * x->pair_tok;
        s->pair_ns += c * x->pair_ns;
        s->base_tok += c * x->base_tok;
        s->base_ns += c * x->base_ns;
        s->exp_sum += c * x->exp_sum;
        s->exp_n += c * x->exp_n;
        s->pexp_sum += c * x->pexp_sum;
        s->pexp_n += c * x->pexp_n;
        s->bexp_sum += c * x->bexp_sum;
        s->bexp_n += c * x->bexp_n;
    }
}

static void eval_latency(const struct mtp_report_group *g, const double *w, double *out)
{
    const struct mtp_report_priv *p = g->priv;
    for (int m = MTP_REPORT_M_TTFT; m < MTP_REPORT_M_COUNT; m++)
        out[m] = NAN;
    if (!p || !p->latency)
        return;
    mtp_report_wpercentiles(&p->sets[MTP_REPORT_SET_TTFT], w, mtp_report_pcts, MTP_REPORT_NPCT,
                            out + MTP_REPORT_M_TTFT);
    mtp_report_wpercentiles(&p->sets[MTP_REPORT_SET_TPOT], w, mtp_report_pcts, MTP_REPORT_NPCT,
                            out + MTP_REPORT_M_TPOT);
    for (int ph = 0; ph < MTP_REPORT_PHASE_COUNT; ph++)
        mtp_report_wpercentiles(&p->sets[MTP_REPORT_SET_PHASE + ph], w, mtp_report_pcts,
                                MTP_REPORT_NPCT, out + MTP_REPORT_M_PHASE + ph * MTP_REPORT_NPCT);
}

void mtp_report_eval(const struct mtp_report_group *g, const double *w, double *out)
{
    struct mtp_report_unit s;
    struct mtp_metrics m;
    eval_sums(g, w, &m, &s);
    out[MTP_REPORT_M_TAU] = mtp_metrics_tau(&m);
    out[MTP_REPORT_M_ACCEPT_RATE] = mtp_metrics_accept_rate(&m);
    out[MTP_REPORT_M_TOKENS_PER_S] = mtp_metrics_tokens_per_s(&m);
    out[MTP_REPORT_M_SPEEDUP] = s.base_tok > 0 ? ratio(ratio(s.pair_tok, s.pair_ns),
                                                       ratio(s.base_tok, s.base_ns)) : NAN;
    out[MTP_REPORT_M_EXPERTS] = ratio(s.exp_sum, s.exp_n);
    out[MTP_REPORT_M_EXPERTS_RATIO] = s.bexp_sum > 0 ? ratio(ratio(s.pexp_sum, s.pexp_n),
                                                             ratio(s.bexp_sum, s.bexp_n)) : NAN;
    const struct mtp_report_priv *p = g->priv;
    out[MTP_REPORT_M_SPEEDUP_MEDIAN] = NAN;
    if (p)
        mtp_report_wpercentiles(&p->sets[MTP_REPORT_SET_SPEEDUP], w, mtp_report_pcts, 1,
                                out + MTP_REPORT_M_SPEEDUP_MEDIAN);
    eval_latency(g, w, out);
    for (int j = 1; j <= g->k; j++) {
        out[MTP_REPORT_M_COUNT + j - 1] = mtp_metrics_alpha(&m, j);
        out[MTP_REPORT_M_COUNT + g->k + j - 1] = mtp_metrics_beta(&m, j);
    }
}
