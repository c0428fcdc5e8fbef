/*
 * report_views.c - the two compact views the README and RESULTS.md show:
 *   acceptance: one row per decoder (depth, drafting) and sampling setting;
 *               tau and alpha_1 per category, then overall tau and speedup;
 *   ablation:   one row per sampling setting (and category when asked) and
 *               depth K; exact drafting (module k drafts token k) next to
 *               module 1 chained K times, with the paired bootstrap interval
 *               of their tau difference.
 * Each view groups the data itself (the --by keys of the full report do not
 * apply, except that the ablation honours "category").
 */
#include "report_internal.h"

#include <math.h>   /* defines: isnan */
#include <stdlib.h> /* defines: qsort, free */
#include <string.h> /* defines: strcmp */

#include "core/error.h" /* defines: mtp_xcalloc */

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_sampling(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    return a->temperature == b->temperature && a->top_p == b->top_p && a->top_k == b->top_k;
}

static bool same_decoder(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    return same_str(a->decoder, b->decoder) && a->depth == b->depth &&
           a->drafting == b->drafting;
}

static int build_with(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                      const enum mtp_report_key *by, int n_by, struct mtp_report *out)
{
    struct mtp_report_options o = *opt;
    o.latency = false; /* the views show none; percentiles are the slow part */
    o.n_by = n_by;
    for (int i = 0; i < n_by; i++)
        o.by[i] = by[i];
    return mtp_report_build(d, &o, out);
}

/* ---- acceptance ------------------------------------------------------------ */

/* S with LaTeX's special characters escaped into OUT (cut to CAP). */
static void tex_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (strchr("_%&#{}$", *s))
            out[n++] = '\\';
        out[n++] = strchr("~^\\", *s) ? '-' : *s;
    }
    out[n] = '\0';
}

/* Distinct categories of R's groups, sorted (pointers into the data). */
static int categories(const struct mtp_report *r, const char ***out)
{
    const char **c = mtp_xcalloc((size_t)r->n_groups + 1, sizeof *c);
    int n = 0;
    for (int i = 0; i < r->n_groups; i++) {
        int j = 0;
        while (j < n && strcmp(c[j], r->groups[i].category) != 0)
            j++;
        if (j == n)
            c[n++] = r->groups[i].category;
    }
    for (int i = 1; i < n; i++) /* insertion sort: a handful of categories */
        for (int j = i; j > 0 && strcmp(c[j - 1], c[j]) > 0; j--) {
            const char *tmp = c[j];
            c[j] = c[j - 1];
            c[j - 1] = tmp;
        }
    *out = c;
    return n;
}

static const struct mtp_report_group *find_cat(const struct mtp_report *r,
                                               const struct mtp_report_group *row,
                                               const char *cat)
{
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *g = &r->groups[i];
        if (same_decoder(g, row) && same_sampling(g, row) && strcmp(g->category, cat) == 0)
            return g;
    }
    return NULL;
}

static void acceptance_fill(struct mtp_report_table *t, const struct mtp_report *all,
                            const struct mtp_report *per, const char **cats, int n_cats,
                            const struct mtp_report_key_cols *kc, int first)
{
    mtp_report_table_rows(t, all->n_groups);
    for (int i = 0; i < all->n_groups; i++) {
        const struct mtp_report_group *g = &all->groups[i];
        mtp_report_key_cells(t, i, kc, g, all->data);
        int c = first;
        for (int k = 0; k < n_cats; k++, c += 2) {
            const struct mtp_report_group *h = find_cat(per, g, cats[k]);
            if (!h)
                continue;
            mtp_report_put_metric(t, i, c, h, MTP_REPORT_M_TAU, 1);
            mtp_report_put_acceptance(t, i, c + 1, h, mtp_report_alpha_index(h, 1));
        }
        mtp_report_put_metric(t, i, c, g, MTP_REPORT_M_TAU, 1);
        mtp_report_put_metric(t, i, c + 1, g, MTP_REPORT_M_SPEEDUP, 1);
    }
}

int mtp_report_table_acceptance(const struct mtp_report_data *d,
                                const struct mtp_report_options *opt,
                                struct mtp_report_table *t)
{
    static const enum mtp_report_key by[3] = {MTP_REPORT_KEY_DECODER,
                                              MTP_REPORT_KEY_TEMPERATURE,
                                              MTP_REPORT_KEY_CATEGORY};
    struct mtp_report all, per;
    if (build_with(d, opt, by, 2, &all))
        return MTP_ERR;
    build_with(d, opt, by, 3, &per);
    const char **cats;
    int n_cats = categories(&per, &cats);
    mtp_report_table_init(t, "acceptance", "Acceptance by decoder and category");
    struct mtp_report_key_cols kc;
    mtp_report_key_columns(t, &all, by, 2, &kc);
    int first = t->n_cols;
    int s = mtp_report_table_section(t, "Acceptance");
    char key[160], label[160], tex[200], cat_tex[128];
    for (int k = 0; k < n_cats; k++) {
        tex_escape(cats[k], cat_tex, sizeof cat_tex);
        snprintf(key, sizeof key, "tau_%s", cats[k]);
        snprintf(label, sizeof label, "%s tau", cats[k]);
        snprintf(tex, sizeof tex, "%s $\\tau$", cat_tex);
        mtp_report_table_col(t, key, label, tex, s, MTP_REPORT_FMT_2);
        snprintf(key, sizeof key, "alpha_1_%s", cats[k]);
        snprintf(label, sizeof label, "%s alpha_1", cats[k]);
        snprintf(tex, sizeof tex, "%s $\\alpha_1$", cat_tex);
        mtp_report_table_col(t, key, label, tex, s, MTP_REPORT_FMT_2);
    }
    mtp_report_table_col(t, "tau", "all tau", "all $\\tau$", s, MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "speedup", "speedup", "speedup", s, MTP_REPORT_FMT_2);
    int done = mtp_report_completeness_columns(t);
    acceptance_fill(t, &all, &per, cats, n_cats, &kc, first);
    for (int i = 0; i < all.n_groups; i++)
        mtp_report_completeness_cells(t, i, done, &all.groups[i]);
    char *boot = mtp_report_bootstrap_note(opt);
    t->note = mtp_report_xprintf("%s tau: tokens per main-model forward (baseline 1); alpha_1: "
                                 "acceptance of the first draft; speedup: decode tokens/s over "
                                 "the same run's baseline (all categories).%s", boot,
                                 mtp_report_completeness_note());
    free(boot);
    free(cats);
    mtp_report_free(&per);
    mtp_report_free(&all);
    return MTP_OK;
}

/* ---- ablation -------------------------------------------------------------- */

/* Rows of the ablation: one context (sampling setting, category) and depth. */
struct ablation_row {
    const struct mtp_report_group *ctx; /* any group of the context (for the key cells) */
    int k;
    const struct mtp_report_group *exact, *chain;
};

static bool same_ctx(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    return same_sampling(a, b) && same_str(a->category, b->category);
}

static int ablation_row_cmp(const void *pa, const void *pb)
{
    const struct ablation_row *a = pa, *b = pb;
    int c = a->ctx->temperature < b->ctx->temperature ? -1 : a->ctx->temperature > b->ctx->temperature;
    if (!c)
        c = a->ctx->top_p < b->ctx->top_p ? -1 : a->ctx->top_p > b->ctx->top_p;
    if (!c)
        c = (a->ctx->top_k > b->ctx->top_k) - (a->ctx->top_k < b->ctx->top_k);
    if (!c && a->ctx->category && b->ctx->category)
        c = strcmp(a->ctx->category, b->ctx->category);
    return c ? c : (a->k > b->k) - (a->k < b->k);
}

/* One row per (context, K) that has an exact or chain decoder; the first
 * group in report order wins when two decoders share drafting and K. */
static int ablation_rows(const struct mtp_report *r, struct ablation_row **out)
{
    struct ablation_row *rows = mtp_xcalloc((size_t)r->n_groups + 1, sizeof *rows);
    int n = 0;
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *g = &r->groups[i];
        if (g->mode != MTP_SPEC_DECODER_MTP || g->depth < 1)
            continue;
        /* Tree decoders have a depth too, but they are the tree view's
         * (report_tree.c): this view compares chains only. */
        if (g->n_requests > 0 && r->data->requests[g->requests[0]].rec.tree)
            continue;
        int j = 0;
        while (j < n && !(same_ctx(rows[j].ctx, g) && rows[j].k == g->depth))
            j++;
        if (j == n)
            rows[n++] = (struct ablation_row){g, g->depth, NULL, NULL};
        if (g->drafting == MTP_SPEC_DRAFTING_EXACT && !rows[j].exact)
            rows[j].exact = g;
        if (g->drafting == MTP_SPEC_DRAFTING_CHAIN && !rows[j].chain)
            rows[j].chain = g;
    }
    qsort(rows, (size_t)n, sizeof *rows, ablation_row_cmp);
    *out = rows;
    return n;
}

static void ablation_columns(struct mtp_report_table *t)
{
    int s = mtp_report_table_section(t, "Exact drafting (K trained modules) vs one module "
                                        "chained K times");
    static const char *const spec[][3] = {
        {"tau_exact", "exact tau", "exact $\\tau$"},
        {"tau_chain", "chain tau", "chain $\\tau$"},
        {"tau_diff", "tau exact - chain", "$\\Delta\\tau$"},
        {"alpha_K_exact", "exact alpha_K", "exact $\\alpha_K$"},
        {"alpha_K_chain", "chain alpha_K", "chain $\\alpha_K$"},
        {"accept_rate_exact", "exact accept", "exact accept"},
        {"accept_rate_chain", "chain accept", "chain accept"},
        {"speedup_exact", "exact speedup", "exact speedup"},
        {"speedup_chain", "chain speedup", "chain speedup"},
    };
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++)
        mtp_report_table_col(t, spec[i][0], spec[i][1], spec[i][2], s,
                             i >= 5 && i <= 6 ? MTP_REPORT_FMT_3 : MTP_REPORT_FMT_2);
    s = mtp_report_table_section(t, "Completeness (requests in the logs of those planned)");
    mtp_report_table_col(t, "complete_exact", "exact complete", "exact complete", s,
                         MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "complete_chain", "chain complete", "chain complete", s,
                         MTP_REPORT_FMT_PLAIN);
}

/* "yes (36 of 36)", "partial (6 of 36; 1 rank log missing)", "unknown (36)". */
static void put_completeness(struct mtp_report_table *t, int row, int col,
                             const struct mtp_report_group *g)
{
    if (!g)
        return;
    char *s = g->planned < 0
                  ? mtp_report_xprintf("unknown (%lld)", (long long)g->present)
                  : mtp_report_xprintf("%s (%lld of %lld%s)", mtp_report_group_completeness(g),
                                       (long long)g->present, (long long)g->planned,
                                       g->missing_ranks > 0 ? "; rank logs missing" : "");
    mtp_report_put_text(t, row, col, s);
    free(s);
}

static void ablation_fill(struct mtp_report_table *t, int row, int c,
                          const struct ablation_row *a)
{
    const struct mtp_report_group *e = a->exact, *ch = a->chain;
    if (e)
        mtp_report_put_metric(t, row, c, e, MTP_REPORT_M_TAU, 1);
    if (ch)
        mtp_report_put_metric(t, row, c + 1, ch, MTP_REPORT_M_TAU, 1);
    if (e && ch)
        mtp_report_put_stat(t, row, c + 2, mtp_report_paired_diff(e, ch, MTP_REPORT_M_TAU), 1);
    if (e)
        mtp_report_put_acceptance(t, row, c + 3, e, mtp_report_alpha_index(e, a->k));
    if (ch)
        mtp_report_put_acceptance(t, row, c + 4, ch, mtp_report_alpha_index(ch, a->k));
    if (e)
        mtp_report_put_metric(t, row, c + 5, e, MTP_REPORT_M_ACCEPT_RATE, 1);
    if (ch)
        mtp_report_put_metric(t, row, c + 6, ch, MTP_REPORT_M_ACCEPT_RATE, 1);
    if (e)
        mtp_report_put_metric(t, row, c + 7, e, MTP_REPORT_M_SPEEDUP, 1);
    if (ch)
        mtp_report_put_metric(t, row, c + 8, ch, MTP_REPORT_M_SPEEDUP, 1);
    put_completeness(t, row, c + 9, e);
    put_completeness(t, row, c + 10, ch);
}

static bool opt_has(const struct mtp_report_options *opt, enum mtp_report_key k)
{
    for (int i = 0; i < opt->n_by; i++)
        if (opt->by[i] == k)
            return true;
    return false;
}

int mtp_report_table_ablation(const struct mtp_report_data *d,
                              const struct mtp_report_options *opt,
                              struct mtp_report_table *t)
{
    enum mtp_report_key by[3] = {MTP_REPORT_KEY_DECODER, MTP_REPORT_KEY_TEMPERATURE,
                                 MTP_REPORT_KEY_CATEGORY};
    int n_by = opt_has(opt, MTP_REPORT_KEY_CATEGORY) ? 3 : 2;
    struct mtp_report r;
    if (build_with(d, opt, by, n_by, &r))
        return MTP_ERR;
    struct ablation_row *rows;
    int n = ablation_rows(&r, &rows);
    mtp_report_table_init(t, "ablation", "Depth ablation: exact vs chained drafting");
    struct mtp_report_key_cols kc;
    mtp_report_key_columns(t, &r, by + 1, n_by - 1, &kc);
    int kcol = mtp_report_table_col(t, "depth", "K", "$K$", 0, MTP_REPORT_FMT_PLAIN);
    int first = t->n_cols;
    ablation_columns(t);
    mtp_report_table_rows(t, n);
    for (int i = 0; i < n; i++) {
        mtp_report_key_cells(t, i, &kc, rows[i].ctx, d);
        mtp_report_put_int(t, i, kcol, rows[i].k);
        ablation_fill(t, i, first, &rows[i]);
    }
    char *boot = mtp_report_bootstrap_note(opt);
    t->note = mtp_report_xprintf("%s exact: module k drafts token k (needs K <= D trained "
                                 "modules); chain: module 1 reused K times. tau exact - chain: "
                                 "paired bootstrap over the same prompts. alpha_K: acceptance "
                                 "at the last draft position.", boot);
    free(boot);
    free(rows);
    mtp_report_free(&r);
    if (n == 0) {
        mtp_report_table_free(t); /* nothing is handed back on failure */
        return mtp_error_set("REPORT: no MTP decoders in the logs: no ablation");
    }
    return MTP_OK;
}
