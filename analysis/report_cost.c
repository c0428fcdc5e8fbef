/*
 * report_cost.c - the cost-model tables of `mtpbench report` (report_cost.h).
 */
#include "report_cost.h"

#include <math.h>   /* defines: isnan, fabs, NAN */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free, atoi */
#include <string.h> /* defines: strcmp, strstr */

#include "core/error.h"
#include "report_cost_check.h"
#include "report_internal.h"

enum { COST_KMAX = MTP_COST_MAX_N - 1 }; /* verify(K+1) is measured up to 16 tokens */

/* What the log itself says a group's steps cost, per step, in units of its
 * baseline's decode (the baseline's mean verify_ns), and how deep they drafted. */
struct log_terms {
    double draft, verify, accept, update, other; /* per step, ns */
    double steps, tokens;                        /* tokens: 1 + mean uncut a */
    double p_drafted[MTP_COST_MAX_N], p_prev[MTP_COST_MAX_N];
};

static void log_terms(const struct mtp_report_data *d, const struct mtp_report_group *g,
                      struct log_terms *lt)
{
    memset(lt, 0, sizeof *lt);
    double acc = 0;
    for (int i = 0; i < g->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[g->requests[i]].rec;
        double phases = 0;
        for (int s = 0; s < r->n_steps; s++) {
            int k = r->drafted ? r->drafted[s] : r->depth;
            int a = r->accepted_uncut ? r->accepted_uncut[s] : r->accepted[s];
            int prev = s > 0 ? (r->accepted_uncut ? r->accepted_uncut[s - 1] : r->accepted[s - 1])
                             : 0;
            lt->p_drafted[k < COST_KMAX ? k : COST_KMAX] += 1;
            lt->p_prev[prev < COST_KMAX ? prev : COST_KMAX] += 1;
            acc += a;
            lt->draft += r->draft_ns[s];
            lt->verify += r->verify_ns[s];
            lt->accept += r->accept_ns[s];
            lt->update += r->update_ns[s];
            phases += (double)r->draft_ns[s] + r->verify_ns[s] + r->accept_ns[s] + r->update_ns[s];
        }
        double decode = r->total_ns > r->ttft_ns ? (double)(r->total_ns - r->ttft_ns) : 0;
        lt->other += decode > phases ? decode - phases : 0;
        lt->steps += r->n_steps;
    }
    double n = lt->steps > 0 ? lt->steps : 1;
    lt->draft /= n, lt->verify /= n, lt->accept /= n, lt->update /= n, lt->other /= n;
    lt->tokens = 1 + acc / n;
    for (int k = 0; k < MTP_COST_MAX_N; k++) {
        lt->p_drafted[k] /= n;
        lt->p_prev[k] /= n;
    }
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_setting(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    return a->temperature == b->temperature && a->top_p == b->top_p && a->top_k == b->top_k &&
           same_str(a->category, b->category);
}

static const struct mtp_report_group *baseline_of(const struct mtp_report *r,
                                                  const struct mtp_report_group *g)
{
    for (int i = 0; i < r->n_groups; i++)
        if (r->groups[i].mode == MTP_SPEC_DECODER_BASELINE && same_setting(&r->groups[i], g))
            return &r->groups[i];
    return NULL;
}

/* The chain module from the decoder name's "-m<N>" suffix (spec.c's default
 * names), else 1 (the spec's default): the log record does not carry it. A
 * module the cost file does not time is refused (mtp_cost_unpriceable), not
 * replaced by module 1. */
static int module_of(const struct mtp_report_group *g)
{
    const char *m = g->decoder ? strstr(g->decoder, "-m") : NULL;
    return m ? atoi(m + 2) : 1;
}

struct mtp_cost_decoder mtp_report_cost_decoder(const struct mtp_report_group *g)
{
    return (struct mtp_cost_decoder){.drafting = g->drafting,
                                     .adaptive = g->mode == MTP_SPEC_DECODER_ADAPTIVE,
                                     .module = module_of(g),
                                     .greedy = g->temperature == 0,
                                     .draft_vocab = g->draft_vocab};
}

void mtp_report_cost_alphas(const struct mtp_report_group *g, const double *v, int K,
                            double *alpha)
{
    for (int j = 1; j <= K; j++) {
        int i = mtp_report_alpha_index(g, j);
        alpha[j - 1] = i >= 0 && !isnan(v[i]) ? v[i] : 0;
    }
}

/* One bench round, uniformly: the cost half of a predicted interval's draw. */
static const struct mtp_cost_point *draw_round(struct mtp_rng *rng, const struct mtp_costs *c)
{
    return &c->round[mtp_report_draw_index(rng, (uint32_t)c->rounds)];
}

/* Predicted speedup of G with costs C and metric vector V; terms to T. */
static double predict(const struct mtp_report_group *g, const struct mtp_costs *costs,
                      const struct mtp_cost_point *c, const double *v, const struct log_terms *lt,
                      struct mtp_cost_terms *t, double *tokens)
{
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    int K = g->depth; /* priceable: checked by the caller (mtp_report_cost_unpriced) */
    double alpha[MTP_COST_MAX_N];
    if (dec.adaptive) {
        mtp_cost_step_mix(c, &dec, lt->p_drafted, lt->p_prev, K, t);
        *tokens = lt->tokens;
    } else {
        mtp_report_cost_alphas(g, v, K, alpha);
        mtp_cost_step(c, &dec, alpha, K, t);
        *tokens = mtp_cost_tokens(alpha, K);
    }
    return *tokens * mtp_cost_baseline(c, dec.greedy) / t->total;
}

/* The bench round whose prediction for G (point alpha V) is the median over
 * rounds (the lower middle for an even count): the point estimate's costs.
 * A round, not per-case medians: those mix rounds, and their prediction can
 * fall outside an interval that draws whole rounds. */
static const struct mtp_cost_point *median_round(const struct mtp_report_group *g,
                                                 const struct mtp_costs *c, const double *v,
                                                 const struct log_terms *lt)
{
    struct mtp_cost_terms t;
    double tok, *s = mtp_xmalloc(sizeof(double) * (size_t)c->rounds);
    for (int r = 0; r < c->rounds; r++)
        s[r] = predict(g, c, &c->round[r], v, lt, &t, &tok);
    int best = 0;
    for (int r = 0; r < c->rounds; r++) {
        int below = 0, equal_before = 0;
        for (int q = 0; q < c->rounds; q++) {
            below += s[q] < s[r];
            equal_before += s[q] == s[r] && q < r;
        }
        if (below + equal_before == (c->rounds - 1) / 2)
            best = r;
    }
    free(s);
    return &c->round[best];
}

/* The predicted speedup of G at CP (the median round) with its interval:
 * each bootstrap resample's alpha with one bench round drawn uniformly. */
static struct mtp_report_stat predict_stat(const struct mtp_report_group *g,
                                           const struct mtp_costs *c,
                                           const struct mtp_cost_point *cp, const double *v,
                                           const struct log_terms *lt, uint64_t seed)
{
    struct mtp_cost_terms t;
    double tok;
    struct mtp_report_stat s = {NAN, NAN, NAN};
    s.value = predict(g, c, cp, v, lt, &t, &tok);
    if (g->n_samples < 1)
        return s;
    struct mtp_rng rng;
    mtp_rng_seed(&rng, seed, MTP_REPORT_COST_STREAM);
    double *vals = mtp_xmalloc(sizeof(double) * (size_t)g->n_samples);
    for (int b = 0; b < g->n_samples; b++) {
        const struct mtp_cost_point *cr = draw_round(&rng, c);
        vals[b] = predict(g, c, cr, g->samples + (size_t)b * g->n_metrics, lt, &t, &tok);
    }
    mtp_report_interval(vals, g->n_samples, 1, 0.025, 0.975, &s.lo, &s.hi);
    free(vals);
    return s;
}

/* The term whose measured cost (from the log, in its baseline's decodes)
 * differs most from the bench's, weighted by its effect on the speedup. */
static char *disagreement(const struct mtp_cost_terms *t, double base_pred,
                          const struct log_terms *lt, const struct log_terms *bt, double tokens,
                          double tau)
{
    double bd = bt->verify > 0 ? bt->verify : 1;
    double base_meas = (bt->verify + bt->accept + bt->update + bt->other + bt->draft) / bd;
    const char *names[] = {"draft", "verify", "accept", "update", "other (outside the phases)",
                           "baseline step", "tokens per step"};
    double meas[] = {lt->draft / bd, lt->verify / bd, lt->accept / bd, lt->update / bd,
                     lt->other / bd, base_meas, tau};
    double pred[] = {t->draft, t->verify, t->accept, t->update, 0, base_pred, tokens};
    int worst = 0;
    double worst_effect = 0;
    for (int i = 0; i < 7; i++) {
        /* Step terms slow the decoder; the baseline's step and tokens speed it. */
        double e = i < 5 ? (meas[i] - pred[i]) / t->total : (pred[i] - meas[i]) / pred[i];
        if (fabs(e) > fabs(worst_effect)) {
            worst_effect = e;
            worst = i;
        }
    }
    return mtp_report_xprintf("outside CI: %s %.3f in the log vs %.3f predicted%s (%+.0f%% of "
                              "speedup)", names[worst], meas[worst], pred[worst],
                              worst < 6 ? " decodes" : "", -100 * worst_effect);
}

enum pred_col {
    PC_DECODER, PC_K, PC_DRAFTING, PC_T, PC_CATEGORY, PC_TAU, PC_VERIFIED, PC_TOKENS, PC_COST,
    PC_BASE, PC_PRED, PC_MEAS, PC_RATIO, PC_NOTE, PC_COUNT,
};

static void pred_columns(struct mtp_report_table *t)
{
    static const char *const cols[PC_COUNT][3] = {
        {"decoder", "decoder", "decoder"}, {"depth", "K", "$K$"},
        {"drafting", "drafting", "drafting"}, {"temperature", "T", "$T$"},
        {"category", "category", "category"}, {"tau", "tau", "$\\tau$"},
        {"verified_per_step", "verified/step", "verified/step"},
        {"tokens_per_step_pred", "tokens/step pred", "tokens/step pred."},
        {"step_cost_pred", "step cost pred (V(1))", "step cost pred."},
        {"baseline_cost_pred", "baseline step pred", "baseline step pred."},
        {"speedup_pred", "speedup pred", "speedup pred."},
        {"speedup_meas", "speedup meas", "speedup meas."},
        {"meas_over_pred", "meas/pred", "meas./pred."}, {"note", "note", "note"}};
    for (int i = 0; i < PC_COUNT; i++)
        mtp_report_table_col(t, cols[i][0], cols[i][1], cols[i][2], i <= PC_CATEGORY ? 0 : 1,
                             i == PC_COST || i == PC_BASE ? MTP_REPORT_FMT_3 : MTP_REPORT_FMT_2);
}

/* The key and measured columns every row has, priced or not. */
static void pred_keys(struct mtp_report_table *t, int row, const struct mtp_report *r,
                      const struct mtp_report_group *g)
{
    mtp_report_put_text(t, row, PC_DECODER, g->decoder);
    mtp_report_put_int(t, row, PC_K, g->depth);
    mtp_report_put_text(t, row, PC_DRAFTING, g->mode == MTP_SPEC_DECODER_ADAPTIVE
                                                 ? "adaptive" : mtp_spec_drafting_name(g->drafting));
    mtp_report_put_num(t, row, PC_T, g->temperature);
    mtp_report_put_text(t, row, PC_CATEGORY, g->category ? g->category : "all");
    mtp_report_put_metric(t, row, PC_TAU, g, MTP_REPORT_M_TAU, 1);
    mtp_report_put_num(t, row, PC_VERIFIED, mtp_report_cost_verified_per_step(r->data, g));
    mtp_report_put_stat(t, row, PC_MEAS, g->metrics[MTP_REPORT_M_SPEEDUP], 1);
}

static void pred_row(struct mtp_report_table *t, int row, const struct mtp_report *r,
                     const struct mtp_report_group *g, const struct mtp_costs *c, bool projection)
{
    pred_keys(t, row, r, g);
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    char *refused = mtp_report_cost_unpriced(r->data, g, c, &dec);
    if (refused) {
        mtp_report_put_text(t, row, PC_NOTE, refused);
        free(refused);
        return;
    }
    const struct mtp_report_group *b = baseline_of(r, g);
    struct log_terms lt, bt;
    log_terms(r->data, g, &lt);
    if (b)
        log_terms(r->data, b, &bt);
    double *v = mtp_xmalloc(sizeof(double) * (size_t)g->n_metrics);
    for (int m = 0; m < g->n_metrics; m++)
        v[m] = g->metrics[m].value;
    struct mtp_cost_terms terms;
    double tokens;
    const struct mtp_cost_point *cp = median_round(g, c, v, &lt);
    predict(g, c, cp, v, &lt, &terms, &tokens);
    struct mtp_report_stat ps = predict_stat(g, c, cp, v, &lt, r->opt.seed);
    free(v);
    struct mtp_report_stat ms = g->metrics[MTP_REPORT_M_SPEEDUP];
    mtp_report_put_num(t, row, PC_TOKENS, tokens);
    mtp_report_put_num(t, row, PC_COST, terms.total);
    mtp_report_put_num(t, row, PC_BASE, mtp_cost_baseline(cp, g->temperature == 0));
    mtp_report_put_stat(t, row, PC_PRED, ps, 1);
    if (projection || isnan(ms.value))
        return;
    mtp_report_put_num(t, row, PC_RATIO, ms.value / ps.value);
    bool apart = !isnan(ms.lo) && !isnan(ps.lo) && (ms.hi < ps.lo || ms.lo > ps.hi);
    if (apart && b) {
        char *note = disagreement(&terms, mtp_cost_baseline(cp, g->temperature == 0),
                                  &lt, &bt, tokens, g->metrics[MTP_REPORT_M_TAU].value);
        mtp_report_put_text(t, row, PC_NOTE, note);
        free(note);
    }
}

/* ---- K*: the depth that maximises the predicted speedup ------------------ */

enum depth_col {
    DC_DRAFTING, DC_FAMILY, DC_WIRING, DC_DECODER, DC_T, DC_CATEGORY, DC_KMAX, DC_KSTAR,
    DC_SPEEDUP, DC_SHARE, DC_CURVE, DC_MEAS_K, DC_MEAS, DC_NOTE, DC_COUNT,
};

static void depth_columns(struct mtp_report_table *t)
{
    static const char *const cols[DC_COUNT][3] = {
        {"drafting", "drafting", "drafting"}, {"family", "family", "family"},
        {"wiring", "wiring", "wiring"}, {"decoder", "alpha from", "$\\alpha$ from"},
        {"temperature", "T", "$T$"},
        {"category", "category", "category"}, {"k_max", "K max", "$K_{max}$"},
        {"k_star", "K*", "$K^*$"}, {"speedup_at_k_star", "speedup pred at K*", "pred. at $K^*$"},
        {"k_star_share", "K* share of resamples", "$K^*$ share"},
        {"speedup_pred_by_k", "speedup pred for K = 0, 1, ...", "pred. by $K$"},
        {"best_k_meas", "best K meas", "best $K$ meas."},
        {"speedup_meas_at_best", "speedup meas at best K", "meas. at best"},
        {"note", "note", "note"}};
    for (int i = 0; i < DC_COUNT; i++)
        mtp_report_table_col(t, cols[i][0], cols[i][1], cols[i][2], i <= DC_CATEGORY ? 0 : 1,
                             MTP_REPORT_FMT_2);
}

/* A decoder family: what K* may vary while everything else stays put. Two
 * decoders are of one family when they draft the same way (exact, or a
 * chain of the same module), over the same draft vocabulary, with the same
 * wiring; adaptive decoders, trees and mixed groups have no fixed-K curve. */
static bool in_families(const struct mtp_report *r, const struct mtp_report_group *g)
{
    return g->mode == MTP_SPEC_DECODER_MTP && !g->mixed && g->depth >= 1 &&
           !mtp_report_cost_is_tree(r->data, g);
}

static bool same_family(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    return a->drafting == b->drafting && a->draft_vocab == b->draft_vocab &&
           (a->drafting != MTP_SPEC_DRAFTING_CHAIN || module_of(a) == module_of(b)) &&
           same_str(a->wiring, b->wiring);
}

char *mtp_report_cost_family(const struct mtp_report_group *g)
{
    char vocab[32] = "";
    if (g->draft_vocab > 0)
        snprintf(vocab, sizeof vocab, " v%d", g->draft_vocab);
    if (g->drafting == MTP_SPEC_DRAFTING_CHAIN)
        return mtp_report_xprintf("chain m%d%s", module_of(g), vocab);
    return mtp_report_xprintf("%s%s", mtp_spec_drafting_name(g->drafting), vocab);
}

/* The deepest decoder of G's family and setting: its alpha_j serve every
 * K <= its depth (a position's drafts do not depend on K). Decoders of equal
 * depth each get a row (named in "alpha from"), so no row is picked by order. */
bool mtp_report_cost_is_deepest(const struct mtp_report *r, const struct mtp_report_group *g)
{
    if (!in_families(r, g))
        return false;
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *o = &r->groups[i];
        if (o != g && in_families(r, o) && same_family(o, g) && same_setting(o, g) &&
            o->depth > g->depth)
            return false;
    }
    return true;
}

static int kstar_of(const struct mtp_report_group *g, const struct mtp_cost_point *cp,
                    const double *v, int kmax, double *best)
{
    double alpha[MTP_COST_MAX_N];
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    mtp_report_cost_alphas(g, v, kmax, alpha);
    return mtp_cost_best_depth(cp, &dec, alpha, kmax, best);
}

/* The deepest K <= G's depth the cost file can price (exact drafting stops
 * at the modules it times). */
static int priceable_kmax(const struct mtp_report_group *g, const struct mtp_costs *c)
{
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    int k = g->depth < COST_KMAX ? g->depth : COST_KMAX;
    while (k > 0 && mtp_cost_unpriceable(c, &dec, k))
        k--;
    return k;
}

/* Measured: the best of G's family at this setting, or the baseline (K = 0,
 * speedup 1) when none beats it. */
static int best_measured(const struct mtp_report *r, const struct mtp_report_group *g,
                         struct mtp_report_stat *best)
{
    int best_k = 0;
    *best = (struct mtp_report_stat){1, 1, 1};
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *o = &r->groups[i];
        struct mtp_report_stat s = o->metrics[MTP_REPORT_M_SPEEDUP];
        if (in_families(r, o) && same_family(o, g) && same_setting(o, g) && !isnan(s.value) &&
            s.value > best->value) {
            *best = s;
            best_k = o->depth;
        }
    }
    return best_k;
}

static void depth_keys(struct mtp_report_table *t, int row, const struct mtp_report_group *g)
{
    char *family = mtp_report_cost_family(g);
    mtp_report_put_text(t, row, DC_DRAFTING, mtp_spec_drafting_name(g->drafting));
    mtp_report_put_text(t, row, DC_FAMILY, family);
    mtp_report_put_text(t, row, DC_WIRING, g->wiring ? g->wiring : "-");
    mtp_report_put_text(t, row, DC_DECODER, g->decoder);
    mtp_report_put_num(t, row, DC_T, g->temperature);
    mtp_report_put_text(t, row, DC_CATEGORY, g->category ? g->category : "all");
    free(family);
}

static void depth_row(struct mtp_report_table *t, int row, const struct mtp_report *r,
                      const struct mtp_report_group *g, const struct mtp_costs *c)
{
    depth_keys(t, row, g);
    int kmax = priceable_kmax(g, c);
    if (kmax < g->depth) {
        struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
        char *why = mtp_report_xprintf("K max %d, not %d: %s", kmax, g->depth,
                                       mtp_cost_unpriceable(c, &dec, kmax + 1));
        mtp_report_put_text(t, row, DC_NOTE, why);
        free(why);
    }
    double *v = mtp_xmalloc(sizeof(double) * (size_t)g->n_metrics), best, alpha[MTP_COST_MAX_N];
    for (int m = 0; m < g->n_metrics; m++)
        v[m] = g->metrics[m].value;
    int kstar = kstar_of(g, &c->median, v, kmax, &best);
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    mtp_report_cost_alphas(g, v, kmax, alpha);
    char curve[512];
    size_t n = 0;
    for (int K = 0; K <= kmax && n < sizeof curve; K++)
        n += (size_t)snprintf(curve + n, sizeof curve - n, "%s%.2f", K ? ", " : "",
                              mtp_cost_speedup(&c->median, &dec, alpha, K));
    free(v);
    struct mtp_rng rng;
    mtp_rng_seed(&rng, r->opt.seed, MTP_REPORT_COST_STREAM);
    int same = 0;
    for (int b = 0; b < g->n_samples; b++) {
        const struct mtp_cost_point *cr = draw_round(&rng, c);
        double sb;
        same += kstar_of(g, cr, g->samples + (size_t)b * g->n_metrics, kmax, &sb) == kstar;
    }
    struct mtp_report_stat best_meas;
    int best_k = best_measured(r, g, &best_meas);
    mtp_report_put_int(t, row, DC_KMAX, kmax);
    mtp_report_put_int(t, row, DC_KSTAR, kstar);
    mtp_report_put_num(t, row, DC_SPEEDUP, best);
    if (g->n_samples > 0)
        mtp_report_put_num(t, row, DC_SHARE, (double)same / g->n_samples);
    mtp_report_put_text(t, row, DC_CURVE, curve);
    mtp_report_put_int(t, row, DC_MEAS_K, best_k);
    mtp_report_put_stat(t, row, DC_MEAS, best_meas, 1);
}

/* ---- the two tables -------------------------------------------------------- */

/* The last component of a model directory path ("models/mtp-v3/" -> "mtp-v3"), so the
 * same model named from two working directories still matches; "" stays "". */
static size_t model_name(const char *dir, const char **start)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    *start = dir + b;
    return n - b;
}

/* Costs from another model (a real-dimension synthetic checkpoint priced with the
 * shipped models' acceptance, docs/synthetic.md) are a projection too. */
static bool same_model(const char *a, const char *b)
{
    const char *sa, *sb;
    size_t na = model_name(a ? a : "", &sa), nb = model_name(b ? b : "", &sb);
    return na == 0 || nb == 0 || (na == nb && !memcmp(sa, sb, na)); /* unknown: no claim */
}

bool mtp_report_cost_is_projection(const struct mtp_report_data *d, const struct mtp_costs *costs)
{
    for (int i = 0; i < d->n_runs; i++)
        if (strcmp(d->runs[i].host, costs->host) || strcmp(d->runs[i].backend, costs->backend) ||
            !same_model(d->runs[i].model_dir, costs->model_dir))
            return true;
    return false;
}

static int count_rows(const struct mtp_report *reps, bool depth)
{
    int n = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < reps[k].n_groups; i++)
            n += depth ? mtp_report_cost_is_deepest(&reps[k], &reps[k].groups[i])
                       : reps[k].groups[i].mode != MTP_SPEC_DECODER_BASELINE;
    return n;
}

static void fill_tables(const struct mtp_report *reps, const struct mtp_costs *c, bool projection,
                        struct mtp_report_table *pred, struct mtp_report_table *depth)
{
    mtp_report_table_rows(pred, count_rows(reps, false));
    mtp_report_table_rows(depth, count_rows(reps, true));
    int rp = 0, rd = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < reps[k].n_groups; i++) {
            const struct mtp_report_group *g = &reps[k].groups[i];
            if (g->mode != MTP_SPEC_DECODER_BASELINE)
                pred_row(pred, rp++, &reps[k], g, c, projection);
            if (mtp_report_cost_is_deepest(&reps[k], g))
                depth_row(depth, rd++, &reps[k], g, c);
        }
}

static void titles(struct mtp_report_table *pred, struct mtp_report_table *depth,
                   const struct mtp_costs *c, bool projection, const struct mtp_report_options *o,
                   const char *warnings)
{
    const char *what = projection ? "PROJECTION of this acceptance onto" : "costs measured on";
    char *bench = mtp_report_cost_bench_label(c);
    char *t1 = mtp_report_xprintf("Cost model: predicted vs measured speedup (%s %s: %s)", what,
                                  bench, c->file);
    char *t2 = mtp_report_xprintf("Cost model: best depth K* (%s %s: %s)", what, bench, c->file);
    mtp_report_table_init(pred, "cost-model", t1);
    mtp_report_table_init(depth, "cost-depth", t2);
    free(bench);
    free(t1);
    free(t2);
    mtp_report_table_section(pred, "Prediction");
    mtp_report_table_section(depth, "Depth");
    char *boot = mtp_report_bootstrap_note(o);
    char *w = mtp_report_xprintf("%s%s", warnings ? warnings : "", warnings ? " " : "");
    pred->note = mtp_report_xprintf(
        "%s%s Predicted: tokens/step = 1 + sum_i prod_{j<=i} alpha_j; speedup = tokens/step x "
        "baseline step / step cost, costs in units of one verify/n=1 forward (the single "
        "reference; this file's decode case is %.3f of it) from the bench file (spec/metrics.md "
        "\"Cost model\"); its interval resamples prompts and draws one bench round per "
        "resample, so it carries the bench's own spread.%s Trees, mixed groups and depths or "
        "modules the bench file does not cover are not priced (the note says why).",
        w, boot, c->decode_over_verify1,
        projection ? " PROJECTION: the costs come from another machine, backend or model, so "
                     "the measured speedup is the log's own and is not compared."
                   : " A note names the term furthest from the bench where the two "
                     "intervals do not overlap.");
    depth->note = mtp_report_xprintf(
        "%sK* maximises the predicted speedup over K = 0 (no speculation) .. K max, per "
        "decoder family (drafting, chain module, draft vocabulary) and wiring, with the "
        "alpha_j of that family's deepest decoder (alpha from); adaptive and tree decoders "
        "have no fixed-K curve. Share: fraction of bootstrap resamples (prompts and bench "
        "rounds) choosing the same K*. Best K meas: the fastest decoder of the same family.%s",
        w, projection ? " PROJECTION onto the cost file's machine and model." : "");
    free(boot);
    free(w);
}

int mtp_report_cost_build(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                          bool by_category, struct mtp_report *out)
{
    struct mtp_report_options o = *opt;
    enum mtp_report_key keys[] = {MTP_REPORT_KEY_DECODER, MTP_REPORT_KEY_TEMPERATURE,
                                  MTP_REPORT_KEY_WIRING, MTP_REPORT_KEY_CATEGORY};
    o.n_by = by_category ? 4 : 3;
    memcpy(o.by, keys, sizeof keys);
    o.latency = false;
    return mtp_report_build(d, &o, out);
}

int mtp_report_table_cost(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                          const struct mtp_costs *costs, struct mtp_report_table *pred,
                          struct mtp_report_table *depth)
{
    if (mtp_report_cost_check_records(d))
        return MTP_ERR;
    struct mtp_report reps[2] = {{0}, {0}};
    for (int k = 0; k < 2; k++)
        if (mtp_report_cost_build(d, opt, k == 1, &reps[k])) {
            if (k)
                mtp_report_free(&reps[0]);
            return MTP_ERR;
        }
    bool projection = mtp_report_cost_is_projection(d, costs);
    char *warnings = mtp_report_cost_warnings(d, costs);
    titles(pred, depth, costs, projection, opt, warnings);
    free(warnings);
    pred_columns(pred);
    depth_columns(depth);
    int rc = MTP_OK;
    for (int i = 0; i < reps[0].n_groups && rc == MTP_OK; i++)
        if (reps[0].groups[i].mode != MTP_SPEC_DECODER_BASELINE &&
            !baseline_of(&reps[0], &reps[0].groups[i]))
            rc = mtp_error_set("report: cost model: decoder %s has no baseline at the same "
                               "sampling setting (the cost model's unit is the baseline's step)",
                               reps[0].groups[i].decoder);
    if (rc == MTP_OK)
        fill_tables(reps, costs, projection, pred, depth);
    mtp_report_free(&reps[0]);
    mtp_report_free(&reps[1]);
    return rc;
}
