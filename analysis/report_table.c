/*
 * report_table.c - turn computed groups into tables: the full report (every
 * metric, one row per group), the compact acceptance view for README/RESULTS
 * (decoder x sampling rows, per-category tau and alpha_1 columns), and the
 * depth ablation (exact drafting with K trained modules against module 1
 * chained K times, side by side, with the paired difference of tau).
 *
 * Tables are format-neutral (cells are text, integers or value+interval);
 * report_format.c and report_json.c render them.
 */
#include "report_internal.h"

#include <math.h>   /* defines: NAN, isnan */
#include <stdarg.h> /* defines: va_list */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset, strcmp */

#include "core/error.h" /* defines: mtp_xcalloc, mtp_error_set */

/* ---- building blocks ------------------------------------------------------ */

char *mtp_report_xprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = mtp_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

void mtp_report_table_init(struct mtp_report_table *t, const char *name, const char *title)
{
    memset(t, 0, sizeof *t);
    t->name = mtp_xstrdup(name);
    t->title = mtp_xstrdup(title);
    t->n_sections = 1;
    t->section_titles = mtp_xcalloc(1, sizeof *t->section_titles);
}

int mtp_report_table_section(struct mtp_report_table *t, const char *title)
{
    t->section_titles = mtp_xrealloc(t->section_titles,
                                     (size_t)(t->n_sections + 1) * sizeof *t->section_titles);
    t->section_titles[t->n_sections] = mtp_xstrdup(title);
    return t->n_sections++;
}

/* Append a column (KEY, LABEL, TEX are copied); returns its index. */
int mtp_report_table_col(struct mtp_report_table *t, const char *key, const char *label,
                     const char *tex, int section, enum mtp_report_fmt fmt)
{
    if (t->n_cols == t->cap_cols) {
        t->cap_cols = t->cap_cols ? 2 * t->cap_cols : 32;
        t->cols = mtp_xrealloc(t->cols, (size_t)t->cap_cols * sizeof *t->cols);
    }
    struct mtp_report_column *c = &t->cols[t->n_cols];
    c->key = mtp_xstrdup(key);
    c->label = mtp_xstrdup(label);
    c->tex = mtp_xstrdup(tex);
    c->section = section;
    c->fmt = fmt;
    return t->n_cols++;
}

void mtp_report_table_rows(struct mtp_report_table *t, int n)
{
    t->n_rows = n;
    t->cells = mtp_xcalloc((size_t)n * (size_t)t->n_cols + 1, sizeof *t->cells);
}

static struct mtp_report_cell *cell_at(struct mtp_report_table *t, int row, int col)
{
    return &t->cells[(size_t)row * (size_t)t->n_cols + (size_t)col];
}

void mtp_report_put_text(struct mtp_report_table *t, int row, int col, const char *s)
{
    struct mtp_report_cell *c = cell_at(t, row, col);
    c->kind = s ? MTP_REPORT_CELL_TEXT : MTP_REPORT_CELL_EMPTY;
    c->text = s ? mtp_xstrdup(s) : NULL;
}

void mtp_report_put_int(struct mtp_report_table *t, int row, int col, int64_t v)
{
    struct mtp_report_cell *c = cell_at(t, row, col);
    c->kind = MTP_REPORT_CELL_INT;
    c->i = v;
}

void mtp_report_put_num(struct mtp_report_table *t, int row, int col, double v)
{
    struct mtp_report_cell *c = cell_at(t, row, col);
    c->kind = isnan(v) ? MTP_REPORT_CELL_EMPTY : MTP_REPORT_CELL_NUM;
    c->stat = (struct mtp_report_stat){v, NAN, NAN};
}

/* A value with its interval, times SCALE (ns -> ms). */
void mtp_report_put_stat(struct mtp_report_table *t, int row, int col, struct mtp_report_stat s,
                     double scale)
{
    struct mtp_report_cell *c = cell_at(t, row, col);
    c->kind = isnan(s.value) ? MTP_REPORT_CELL_EMPTY : MTP_REPORT_CELL_STAT;
    c->stat = (struct mtp_report_stat){s.value * scale, s.lo * scale, s.hi * scale};
}

void mtp_report_put_metric(struct mtp_report_table *t, int row, int col,
                       const struct mtp_report_group *g, int m, double scale)
{
    if (m < 0 || m >= g->n_metrics) {
        mtp_report_put_num(t, row, col, NAN);
        return;
    }
    mtp_report_put_stat(t, row, col, g->metrics[m], scale);
}

void mtp_report_put_acceptance(struct mtp_report_table *t, int row, int col,
                               const struct mtp_report_group *g, int m)
{
    if (g->mixed)
        mtp_report_put_text(t, row, col, "mixed");
    else
        mtp_report_put_metric(t, row, col, g, m, 1);
}

void mtp_report_table_free(struct mtp_report_table *t)
{
    for (int i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i].text);
    free(t->cells);
    for (int i = 0; i < t->n_cols; i++) {
        free(t->cols[i].key);
        free(t->cols[i].label);
        free(t->cols[i].tex);
    }
    free(t->cols);
    for (int i = 1; i < t->n_sections; i++)
        free(t->section_titles[i]);
    free(t->section_titles);
    free(t->name);
    free(t->title);
    free(t->note);
    memset(t, 0, sizeof *t);
}

/* ---- key columns ------------------------------------------------------- */

/* top_p / top_k columns only when some group uses them (they are noise otherwise). */
static bool groups_use_top(const struct mtp_report *r, bool k)
{
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *g = &r->groups[i];
        if (k ? g->top_k > 0 : (!isnan(g->top_p) && g->top_p != 1.0))
            return true;
    }
    return false;
}

void mtp_report_key_columns(struct mtp_report_table *t, const struct mtp_report *r,
                        const enum mtp_report_key *by, int n_by, struct mtp_report_key_cols *kc)
{
    memset(kc, -1, sizeof *kc);
    for (int i = 0; i < n_by; i++) {
        switch (by[i]) {
        case MTP_REPORT_KEY_DECODER:
            kc->decoder = mtp_report_table_col(t, "decoder", "decoder", "decoder", 0, MTP_REPORT_FMT_PLAIN);
            kc->depth = mtp_report_table_col(t, "depth", "K", "$K$", 0, MTP_REPORT_FMT_PLAIN);
            kc->drafting = mtp_report_table_col(t, "drafting", "drafting", "drafting", 0,
                                     MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_TEMPERATURE:
            kc->temperature = mtp_report_table_col(t, "temperature", "T", "$T$", 0, MTP_REPORT_FMT_PLAIN);
            if (groups_use_top(r, false))
                kc->top_p = mtp_report_table_col(t, "top_p", "top_p", "top-$p$", 0, MTP_REPORT_FMT_PLAIN);
            if (groups_use_top(r, true))
                kc->top_k = mtp_report_table_col(t, "top_k", "top_k", "top-$k$", 0, MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_CATEGORY:
            kc->category = mtp_report_table_col(t, "category", "category", "category", 0,
                                     MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_DATASET:
            kc->dataset = mtp_report_table_col(t, "dataset", "dataset", "dataset", 0, MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_RUN:
            kc->run = mtp_report_table_col(t, "run", "run", "run", 0, MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_WIRING:
            kc->wiring = mtp_report_table_col(t, "wiring", "wiring", "wiring", 0,
                                              MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_TURN:
            kc->turn = mtp_report_table_col(t, "turn", "turn", "turn", 0, MTP_REPORT_FMT_PLAIN);
            break;
        case MTP_REPORT_KEY_BATCH:
            kc->batch = mtp_report_table_col(t, "batch_size", "B", "$B$", 0,
                                             MTP_REPORT_FMT_PLAIN);
            break;
        default: break;
        }
    }
}

void mtp_report_key_cells(struct mtp_report_table *t, int row, const struct mtp_report_key_cols *kc,
                      const struct mtp_report_group *g, const struct mtp_report_data *d)
{
    if (kc->decoder >= 0) {
        mtp_report_put_text(t, row, kc->decoder, g->decoder);
        if (g->depth >= 0)
            mtp_report_put_int(t, row, kc->depth, g->depth);
        /* An adaptive decoder drafts by chaining, but it is its own kind: the
         * cost model and the plots call it "adaptive", so every table does. */
        const char *kind = g->mode == MTP_SPEC_DECODER_ADAPTIVE
                               ? "adaptive" : mtp_spec_drafting_name(g->drafting);
        mtp_report_put_text(t, row, kc->drafting, g->depth >= 0 ? kind : NULL);
    }
    if (kc->temperature >= 0)
        mtp_report_put_num(t, row, kc->temperature, g->temperature);
    if (kc->top_p >= 0)
        mtp_report_put_num(t, row, kc->top_p, g->top_p);
    if (kc->top_k >= 0)
        mtp_report_put_int(t, row, kc->top_k, g->top_k);
    if (kc->category >= 0)
        mtp_report_put_text(t, row, kc->category, g->category);
    if (kc->dataset >= 0)
        mtp_report_put_text(t, row, kc->dataset, g->dataset);
    if (kc->run >= 0)
        mtp_report_put_text(t, row, kc->run, g->run >= 0 ? d->runs[g->run].label : NULL);
    if (kc->wiring >= 0)
        mtp_report_put_text(t, row, kc->wiring, g->wiring);
    if (kc->turn >= 0 && g->turn >= 0)
        mtp_report_put_int(t, row, kc->turn, g->turn + 1); /* "turn 1, 2" as Spec-Bench */
    if (kc->batch >= 0 && g->batch_size >= 0)
        mtp_report_put_int(t, row, kc->batch, g->batch_size);
}

static int max_k(const struct mtp_report *r)
{
    int k = 0;
    for (int i = 0; i < r->n_groups; i++)
        if (r->groups[i].k > k)
            k = r->groups[i].k;
    return k;
}

static bool any_experts(const struct mtp_report *r)
{
    for (int i = 0; i < r->n_groups; i++)
        if (r->groups[i].has_experts)
            return true;
    return false;
}

char *mtp_report_bootstrap_note(const struct mtp_report_options *opt)
{
    if (opt->bootstrap <= 0)
        return mtp_xstrdup("Point estimates (no bootstrap).");
    return mtp_report_xprintf("value [95%% CI]: percentile bootstrap over prompts, B = %d, seed %llu.",
                   opt->bootstrap, (unsigned long long)opt->seed);
}

/* ---- completeness --------------------------------------------------------- */

int mtp_report_completeness_columns(struct mtp_report_table *t)
{
    int s = mtp_report_table_section(t, "Completeness (what the runs planned and skipped)");
    int first = mtp_report_table_col(t, "complete", "complete", "complete", s,
                                     MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "requests", "requests", "requests", s, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "planned", "planned", "planned", s, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "not_decoded", "never decoded", "not decoded", s,
                         MTP_REPORT_FMT_PLAIN);
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++) {
        const char *name = mtp_plan_skip_name((enum mtp_plan_skip)why);
        char key[64], label[64];
        snprintf(key, sizeof key, "skipped_%s", name);
        snprintf(label, sizeof label, "skipped: %s", name);
        mtp_report_table_col(t, key, label, label, s, MTP_REPORT_FMT_PLAIN);
    }
    mtp_report_table_col(t, "missing_rank_logs", "missing rank logs", "missing ranks", s,
                         MTP_REPORT_FMT_PLAIN);
    return first;
}

/* "yes", "partial" (planned requests or rank logs missing) or "unknown". */
const char *mtp_report_group_completeness(const struct mtp_report_group *g)
{
    if (g->planned < 0)
        return "unknown";
    return g->present < g->planned || g->missing_ranks > 0 ? "partial" : "yes";
}

static void put_count_or_unknown(struct mtp_report_table *t, int row, int col, int64_t v)
{
    if (v < 0)
        mtp_report_put_text(t, row, col, "unknown");
    else
        mtp_report_put_int(t, row, col, v);
}

void mtp_report_completeness_cells(struct mtp_report_table *t, int row, int first,
                                   const struct mtp_report_group *g)
{
    int c = first;
    mtp_report_put_text(t, row, c++, mtp_report_group_completeness(g));
    mtp_report_put_int(t, row, c++, g->present);
    put_count_or_unknown(t, row, c++, g->planned);
    mtp_report_put_int(t, row, c++, g->n_not_decoded);
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++)
        put_count_or_unknown(t, row, c++, g->skipped[why]);
    mtp_report_put_int(t, row, c++, g->missing_ranks);
}

const char *mtp_report_completeness_note(void)
{
    return " complete: every planned request of the group is in the logs (partial: some are "
           "not, or a rank log is missing; unknown: a log without a plan record); never "
           "decoded: requests that ended at EOS before the first decode step, left out of "
           "every metric and of the prompt counts; skipped: prompts the runner did not run, "
           "by reason.";
}

/* ---- the full report ------------------------------------------------------ */

/* Column blocks of the full table; fill_full writes the cells in the same order. */
static void full_columns(struct mtp_report_table *t, const struct mtp_report *r)
{
    int k = max_k(r);
    char key[64], label[64], tex[64];
    int s = mtp_report_table_section(t, "Acceptance");
    mtp_report_table_col(t, "prompts", "prompts", "prompts", s, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "steps", "steps", "steps", s, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "tau", "tau", "$\\tau$", s, MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "accept_rate", "accept_rate", "accept", s, MTP_REPORT_FMT_3);
    for (int j = 1; j <= k; j++) {
        snprintf(key, sizeof key, "alpha_%d", j);
        snprintf(tex, sizeof tex, "$\\alpha_{%d}$", j);
        mtp_report_table_col(t, key, key, tex, s, MTP_REPORT_FMT_3);
    }
    s = mtp_report_table_section(t, "Unconditional acceptance by draft position");
    for (int j = 1; j <= k; j++) {
        snprintf(key, sizeof key, "beta_%d", j);
        snprintf(tex, sizeof tex, "$\\beta_{%d}$", j);
        mtp_report_table_col(t, key, key, tex, s, MTP_REPORT_FMT_3);
    }
    s = mtp_report_table_section(t, "Throughput (decode, after the first token)");
    mtp_report_table_col(t, "tokens", "tokens", "tokens", s, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "tokens_per_s", "tok/s", "tok/s", s, MTP_REPORT_FMT_1);
    mtp_report_table_col(t, "speedup", "speedup", "speedup", s, MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "speedup_prompt_median", "median per-prompt speedup", "median/prompt", s,
              MTP_REPORT_FMT_2);
    if (r->opt.latency) {
        static const char *const pn[MTP_REPORT_NPCT] = {"p50", "p90", "p99"};
        s = mtp_report_table_section(t, "Request latency (ms)");
        for (int f = 0; f < 2; f++)
            for (int p = 0; p < MTP_REPORT_NPCT; p++) {
                const char *what = f ? "tpot" : "ttft";
                snprintf(key, sizeof key, "%s_ms_%s", what, pn[p]);
                snprintf(label, sizeof label, "%s %s", f ? "TPOT" : "TTFT", pn[p]);
                snprintf(tex, sizeof tex, "%s %s", f ? "TPOT" : "TTFT", pn[p]);
                mtp_report_table_col(t, key, label, tex, s, MTP_REPORT_FMT_2);
            }
        /* One section per percentile keeps each table four intervals wide. */
        for (int p = 0; p < MTP_REPORT_NPCT; p++) {
            snprintf(label, sizeof label, "Step latency by phase, %s (ms)", pn[p]);
            s = mtp_report_table_section(t, label);
            for (int ph = 0; ph < MTP_REPORT_PHASE_COUNT; ph++) {
                snprintf(key, sizeof key, "%s_ms_%s", mtp_report_phase_names[ph], pn[p]);
                snprintf(label, sizeof label, "%s %s", mtp_report_phase_names[ph], pn[p]);
                mtp_report_table_col(t, key, label, label, s, MTP_REPORT_FMT_3);
            }
        }
    }
    if (any_experts(r)) {
        s = mtp_report_table_section(t, "MoE cost (distinct routed experts per step and MoE layer)");
        mtp_report_table_col(t, "experts_per_step", "experts/step", "experts/step", s, MTP_REPORT_FMT_2);
        mtp_report_table_col(t, "experts_ratio", "vs baseline", "vs baseline", s, MTP_REPORT_FMT_2);
    }
}

/* The metric cells of group G in row ROW, from column FIRST on. */
static void full_cells(struct mtp_report_table *t, int row, int first,
                       const struct mtp_report_group *g, int k, bool latency, bool experts)
{
    int c = first;
    mtp_report_put_int(t, row, c++, g->n_units);
    mtp_report_put_int(t, row, c++, g->n_steps);
    mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_TAU, 1);
    mtp_report_put_acceptance(t, row, c++, g, MTP_REPORT_M_ACCEPT_RATE);
    for (int j = 1; j <= k; j++)
        mtp_report_put_acceptance(t, row, c++, g, mtp_report_alpha_index(g, j));
    for (int j = 1; j <= k; j++)
        mtp_report_put_acceptance(t, row, c++, g, mtp_report_beta_index(g, j));
    mtp_report_put_int(t, row, c++, g->n_tokens);
    mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_TOKENS_PER_S, 1);
    mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_SPEEDUP, 1);
    mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_SPEEDUP_MEDIAN, 1);
    if (latency) {
        for (int m = MTP_REPORT_M_TTFT; m < MTP_REPORT_M_PHASE; m++)
            mtp_report_put_metric(t, row, c++, g, m, 1e-6);
        for (int p = 0; p < MTP_REPORT_NPCT; p++)
            for (int ph = 0; ph < MTP_REPORT_PHASE_COUNT; ph++)
                mtp_report_put_metric(t, row, c++, g,
                                      MTP_REPORT_M_PHASE + ph * MTP_REPORT_NPCT + p, 1e-6);
    }
    if (experts) {
        mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_EXPERTS, 1);
        mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_EXPERTS_RATIO, 1);
    }
}

int mtp_report_table_full(const struct mtp_report *r, struct mtp_report_table *t)
{
    mtp_report_table_init(t, "full", "mtpbench report");
    struct mtp_report_key_cols kc;
    mtp_report_key_columns(t, r, r->opt.by, r->opt.n_by, &kc);
    int first = t->n_cols;
    full_columns(t, r);
    int done = mtp_report_completeness_columns(t);
    mtp_report_table_rows(t, r->n_groups);
    for (int i = 0; i < r->n_groups; i++) {
        mtp_report_key_cells(t, i, &kc, &r->groups[i], r->data);
        full_cells(t, i, first, &r->groups[i], max_k(r), r->opt.latency, any_experts(r));
        mtp_report_completeness_cells(t, i, done, &r->groups[i]);
    }
    char *boot = mtp_report_bootstrap_note(&r->opt);
    bool mixed = false;
    for (int i = 0; i < r->n_groups; i++)
        mixed |= r->groups[i].mixed;
    t->note = mtp_report_xprintf("%s tau: tokens per main-model forward; alpha_j: acceptance at draft "
                      "position j given j-1 accepted; beta_j: unconditional; speedup: decode "
                      "tokens/s over the same run's baseline on the same prompts and sampling "
                      "(spec/metrics.md).%s%s", boot,
                      mixed ? " mixed: the group merges decoders, depths or wirings, whose "
                              "acceptance is not one quantity; add decoder to --by." : "",
                      mtp_report_completeness_note());
    free(boot);
    return MTP_OK;
}
