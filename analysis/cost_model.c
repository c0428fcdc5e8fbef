/*
 * cost_model.c - the cost model's formulas (cost_model.h, spec/metrics.md).
 */
#include "cost_model.h"

#include <math.h>   /* defines: isnan */
#include <string.h> /* defines: memset */

#include "core/error.h" /* defines: MTP_CHECK */

static int clamp_rows(int n) { return n < 1 ? 1 : n > MTP_COST_MAX_N ? MTP_COST_MAX_N : n; }
static int max_int(int a, int b) { return a > b ? a : b; }

double mtp_cost_tokens(const double *alpha, int K)
{
    double e = 1, run = 1;
    for (int i = 0; i < K; i++) {
        run *= alpha[i];
        e += run;
    }
    return e;
}

void mtp_cost_accept_dist(const double *alpha, int K, double *pa)
{
    double run = 1;
    for (int i = 0; i <= K; i++) {
        double next = i < K ? alpha[i] : 0;
        pa[i] = run * (1 - next);
        run *= next;
    }
}

/* What a draft vocabulary saves per forward of module K: the head runs once
 * per forward (on the last row), so the saving is the measured one-row
 * difference, whatever the rows; 0 for the full head or an N not timed. */
static double head_saving(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d, int k)
{
    for (int v = 0; d->draft_vocab > 0 && v < MTP_COST_N_VOCABS; v++)
        if (mtp_cost_vocabs[v] == d->draft_vocab && c->draft_vocab[k][v] > 0)
            return c->draft[k][1] - c->draft_vocab[k][v];
    return 0;
}

/* One forward of module K over N rows, less the draft vocabulary's saving.
 * Never below 0: with noisy rounds M_k(n) can come out below M_k(1), and a
 * saving larger than the forward would make a negative step cost (found by
 * tests/fuzz/fuzz_costs.c: regressions/costs/draft-vocab-saving-negative-step.json). */
static double module_forward(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                             int k, int n)
{
    double f = c->draft[k][clamp_rows(n)] - head_saving(c, d, k);
    return f > 0 ? f : 0;
}

/* Module forwards of one step drafting K after a step that accepted A: chain
 * runs module M over a+1 catch-up rows then K-1 single rows; exact runs
 * module k over max(a+1, k) rows (decode_draft.c's cache algebra). */
static double draft_forwards(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                             int K, int a)
{
    if (K == 0)
        return 0;
    if (d->drafting == MTP_SPEC_DRAFTING_CHAIN) {
        MTP_CHECK(d->module >= 1 && d->module <= MTP_COST_MAX_MODULES);
        return module_forward(c, d, d->module, a + 1) +
               (K - 1) * module_forward(c, d, d->module, 1);
    }
    double sum = 0;
    /* The callers check mtp_cost_unpriceable first; this guards the array. */
    MTP_CHECK(K <= MTP_COST_MAX_MODULES);
    for (int k = 1; k <= K; k++)
        sum += module_forward(c, d, k, max_int(a + 1, k));
    return sum;
}

void mtp_cost_step_mix(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                       const double *p_drafted, const double *p_prev, int kmax,
                       struct mtp_cost_terms *t)
{
    MTP_CHECK(kmax >= 0 && kmax < MTP_COST_MAX_N);
    memset(t, 0, sizeof *t);
    double pick = d->greedy ? c->argmax_probs : c->sampled;
    double row = d->greedy ? c->argmax : c->sampled;
    for (int k = 0; k <= kmax; k++) {
        if (p_drafted[k] == 0)
            continue;
        double draft = k * (pick + (d->adaptive ? c->sampled : 0));
        for (int a = 0; a <= kmax; a++)
            draft += p_prev[a] * draft_forwards(c, d, k, a);
        t->draft += p_drafted[k] * draft;
        t->verify += p_drafted[k] * c->verify[k + 1];
        t->accept += p_drafted[k] * (k + 1) * row;
    }
    t->update = c->update;
    t->total = t->draft + t->verify + t->accept + t->update;
}

void mtp_cost_step(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                   const double *alpha, int K, struct mtp_cost_terms *t)
{
    double pd[MTP_COST_MAX_N] = {0}, pa[MTP_COST_MAX_N] = {0};
    MTP_CHECK(K >= 0 && K < MTP_COST_MAX_N);
    pd[K] = 1;
    /* In steady state the previous step has the same acceptance law. */
    mtp_cost_accept_dist(alpha, K, pa);
    mtp_cost_step_mix(c, d, pd, pa, K, t);
}

const char *mtp_cost_unpriceable(const struct mtp_costs *costs, const struct mtp_cost_decoder *d,
                                 int K)
{
    if (K < 0 || K >= MTP_COST_MAX_N)
        return "its depth is outside the verify curve (the bench times 1..16 tokens, K <= 15)";
    if (K > 0 && costs->n_modules < 1)
        return "the cost file times no MTP module";
    if (d->drafting == MTP_SPEC_DRAFTING_EXACT && K > costs->n_modules)
        return "exact drafting of this depth needs more MTP modules than the cost file times";
    if (d->drafting == MTP_SPEC_DRAFTING_CHAIN && (d->module < 1 || d->module > costs->n_modules))
        return "its chain module is not timed in the cost file";
    if (d->drafting != MTP_SPEC_DRAFTING_CHAIN && d->drafting != MTP_SPEC_DRAFTING_EXACT)
        return "its drafting is neither exact nor chain";
    return NULL;
}

bool mtp_costs_noisy(const struct mtp_costs *c, const char **why)
{
    if (!isnan(c->verify1_spread) && c->verify1_spread > 0.10) {
        *why = "verify/n=1 varies by more than 10% (p10..p90) over the rounds";
        return true;
    }
    if (c->cpus > 0 && !isnan(c->load_start[0]) && c->load_start[0] > c->cpus - c->threads) {
        *why = "the load average at its start left fewer idle CPUs than its threads";
        return true;
    }
    *why = NULL;
    return false;
}

double mtp_cost_baseline(const struct mtp_cost_point *c, bool greedy)
{
    return c->verify[1] + (greedy ? c->argmax : c->sampled);
}

double mtp_cost_speedup(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                        const double *alpha, int K)
{
    if (K == 0)
        return 1;
    struct mtp_cost_terms t;
    mtp_cost_step(c, d, alpha, K, &t);
    return mtp_cost_tokens(alpha, K) * mtp_cost_baseline(c, d->greedy) / t.total;
}

int mtp_cost_best_depth(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                        const double *alpha, int kmax, double *best)
{
    int k_best = 0;
    *best = 1;
    for (int K = 1; K <= kmax && K < MTP_COST_MAX_N; K++) {
        if (d->drafting == MTP_SPEC_DRAFTING_EXACT && K > MTP_COST_MAX_MODULES)
            break;
        double s = mtp_cost_speedup(c, d, alpha, K);
        if (s > *best) {
            *best = s;
            k_best = K;
        }
    }
    return k_best;
}
