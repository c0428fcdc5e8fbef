/*
 * report_cost_batch.c - the batch cost-model table of `mtpbench report`
 * (report_cost_batch.h).
 */
#include "report_cost_batch.h"

#include <math.h>   /* defines: NAN */
#include <stdlib.h> /* defines: free */
#include <stdio.h>  /* defines: snprintf */

#include "core/error.h"
#include "report_cost.h"
#include "report_cost_check.h"
#include "report_internal.h"

enum { KB = MTP_COST_BATCH_MAX_K };

/* Key columns, then per K = 1..3 three columns, then K*, its speedup, the note. */
enum { BC_FAMILY, BC_WIRING, BC_DECODER, BC_T, BC_B, BC_PER_K, BC_KSTAR = BC_PER_K + 3 * KB,
       BC_BEST, BC_NOTE, BC_COUNT };

static void columns(struct mtp_report_table *t)
{
    static const char *const keys[BC_PER_K][3] = {
        {"family", "family", "family"}, {"wiring", "wiring", "wiring"},
        {"decoder", "alpha from", "$\\alpha$ from"}, {"temperature", "T", "$T$"},
        {"batch", "B", "$B$"}};
    for (int i = 0; i < BC_PER_K; i++)
        mtp_report_table_col(t, keys[i][0], keys[i][1], keys[i][2], 0, MTP_REPORT_FMT_PLAIN);
    char key[48], label[48], tex[64];
    for (int K = 1; K <= KB; K++) {
        snprintf(key, sizeof key, "speedup_pred_k%d", K);
        snprintf(label, sizeof label, "speedup K=%d", K);
        snprintf(tex, sizeof tex, "speedup $K{=}%d$", K);
        mtp_report_table_col(t, key, label, tex, 1, MTP_REPORT_FMT_2);
        snprintf(key, sizeof key, "verify_ratio_k%d", K);
        snprintf(label, sizeof label, "F(B,%d)/F(B,0)", K);
        snprintf(tex, sizeof tex, "$F(B,%d)/F(B,0)$", K);
        mtp_report_table_col(t, key, label, tex, 1, MTP_REPORT_FMT_2);
        snprintf(key, sizeof key, "experts_ratio_k%d", K);
        snprintf(label, sizeof label, "experts K=%d/K=0", K);
        snprintf(tex, sizeof tex, "experts $K{=}%d$/$K{=}0$", K);
        mtp_report_table_col(t, key, label, tex, 1, MTP_REPORT_FMT_2);
    }
    mtp_report_table_col(t, "k_star", "K*", "$K^*$", 1, MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "speedup_at_k_star", "speedup at K*", "speedup at $K^*$", 1,
                         MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "note", "note", "note", 1, MTP_REPORT_FMT_2);
}

/* The deepest K <= min(G's depth, 3) the batch curve prices, and in *WHY the
 * reason the next K is not (NULL when none is missing up to 3). */
static int priceable_kmax(const struct mtp_report_group *g, const struct mtp_costs *c,
                          const char **why)
{
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    int k = g->depth < KB ? g->depth : KB;
    *why = g->depth < KB ? "its family's deepest decoder drafts fewer tokens (no alpha_j)" : NULL;
    for (const char *w; k > 0 && (w = mtp_cost_batch_unpriceable(c, &dec, k)); k--)
        *why = w;
    return k;
}

static void key_cells(struct mtp_report_table *t, int row, const struct mtp_report_group *g,
                      int B)
{
    char *family = mtp_report_cost_family(g);
    mtp_report_put_text(t, row, BC_FAMILY, family);
    mtp_report_put_text(t, row, BC_WIRING, g->wiring ? g->wiring : "-");
    mtp_report_put_text(t, row, BC_DECODER, g->decoder);
    mtp_report_put_num(t, row, BC_T, g->temperature);
    mtp_report_put_int(t, row, BC_B, B);
    free(family);
}

/* Row ROW: family G at batch index BI. */
static void batch_row(struct mtp_report_table *t, int row, const struct mtp_report_group *g,
                      const struct mtp_costs *c, int bi)
{
    const struct mtp_cost_batch *b = c->batch;
    key_cells(t, row, g, b->B[bi]);
    const char *why;
    int kmax = priceable_kmax(g, c, &why);
    double *v = mtp_xmalloc(sizeof(double) * (size_t)g->n_metrics);
    double alpha[MTP_COST_MAX_N] = {0}, best;
    for (int m = 0; m < g->n_metrics; m++)
        v[m] = g->metrics[m].value;
    mtp_report_cost_alphas(g, v, kmax, alpha);
    free(v);
    struct mtp_cost_decoder dec = mtp_report_cost_decoder(g);
    for (int K = 1; K <= KB; K++) {
        int col = BC_PER_K + 3 * (K - 1);
        if (K <= kmax)
            mtp_report_put_num(t, row, col, mtp_cost_batch_speedup(c, bi, &dec, alpha, K));
        mtp_report_put_num(t, row, col + 1, b->verify[bi][K]);
        if (b->experts[bi][0] > 0)
            mtp_report_put_num(t, row, col + 2, b->experts[bi][K] / b->experts[bi][0]);
    }
    if (kmax > 0) { /* with no K priced, K* = 0 would be a claim the curve cannot make */
        int kstar = mtp_cost_batch_best_depth(c, bi, &dec, alpha, kmax, &best);
        mtp_report_put_int(t, row, BC_KSTAR, kstar);
        mtp_report_put_num(t, row, BC_BEST, best);
    }
    if (why) {
        char *note = mtp_report_xprintf("K %d..3 not priced: %s", kmax + 1, why);
        mtp_report_put_text(t, row, BC_NOTE, note);
        free(note);
    }
}

static int count_families(const struct mtp_report *r)
{
    int n = 0;
    for (int i = 0; i < r->n_groups; i++)
        n += mtp_report_cost_is_deepest(r, &r->groups[i]);
    return n;
}

static void title_and_note(struct mtp_report_table *t, const struct mtp_report_data *d,
                           const struct mtp_costs *c)
{
    bool projection = mtp_report_cost_is_projection(d, c);
    char *bench = mtp_report_cost_bench_label(c);
    char *title = mtp_report_xprintf("Cost model at batch size B: predicted throughput speedup "
                                     "and K* (%s %s: %s)", projection ? "PROJECTION of this "
                                     "acceptance onto" : "costs measured on", bench, c->file);
    mtp_report_table_init(t, "cost-batch", title);
    mtp_report_table_section(t, "Prediction");
    free(bench);
    free(title);
    char *w0 = mtp_report_cost_warnings(d, c), *w = w0;
    if (mtp_cost_batch_noisy(c->batch)) {
        w = mtp_report_xprintf("%s%sWARNING: NOISY BATCH CURVE: F(1,0) varies by %.0f%% "
                               "(p10..p90) over its %d rounds.", w0 ? w0 : "", w0 ? " " : "",
                               100 * c->batch->forward1_spread, c->batch->rounds);
        free(w0);
    }
    char singles[160] = "";
    if (!isnan(c->batch->singles_over_forward))
        snprintf(singles, sizeof singles, " The batch curve's 8 single decodes cost %.3f of "
                 "F(8,0).", c->batch->singles_over_forward);
    t->note = mtp_report_xprintf(
        "%s%sF(B,K): one forward of B sequences x (K+1) tokens at position %d (bench --batch, "
        "median over %d rounds of each round's ratio). Speedup at (B,K) = E[tokens/step] x "
        "baseline / step cost in units of F(B,0), the batch-B baseline step: verify "
        "F(B,K)/F(B,0), drafting the batched module forwards D_k(B, rows)/F(B,0) timed with "
        "them, choices and rollback B x the batch-1 file's per-sequence costs x "
        "F(1,0)/F(B,0); tokens/step = 1 + sum_i prod_{j<=i} alpha_j with the alpha_j of the "
        "family's deepest decoder over all prompts (spec/metrics.md \"Cost model\"). K* "
        "maximises it over K = 0..3 (ties to the smaller K); experts: routed experts touched "
        "per MoE layer at K over K = 0.%s%s", w ? w : "", w ? " " : "", c->batch->context,
        c->batch->rounds, singles,
        projection ? " PROJECTION: the costs come from another machine, backend or model." : "");
    free(w);
}

int mtp_report_table_cost_batch(const struct mtp_report_data *d,
                                const struct mtp_report_options *opt,
                                const struct mtp_costs *costs, struct mtp_report_table *t)
{
    if (!costs->batch)
        return mtp_error_set("COSTS %s: no batch curve (key 'batch'); write one with "
                             "`mtpbench bench --batch --text DATASET.jsonl --json FILE`",
                             costs->file);
    if (mtp_report_cost_check_records(d))
        return MTP_ERR;
    struct mtp_report r = {0};
    if (mtp_report_cost_build(d, opt, false, &r))
        return MTP_ERR;
    int n = count_families(&r), rc = MTP_OK;
    if (n == 0)
        rc = mtp_error_set("report: cost-batch: the logs hold no fixed-depth MTP chain decoder "
                           "(adaptive and tree decoders have no fixed-K curve)");
    if (rc == MTP_OK) {
        title_and_note(t, d, costs);
        columns(t);
        mtp_report_table_rows(t, n * costs->batch->n_b);
        int row = 0;
        for (int i = 0; i < r.n_groups; i++)
            if (mtp_report_cost_is_deepest(&r, &r.groups[i]))
                for (int bi = 0; bi < costs->batch->n_b; bi++)
                    batch_row(t, row++, &r.groups[i], costs, bi);
    }
    mtp_report_free(&r);
    return rc;
}
