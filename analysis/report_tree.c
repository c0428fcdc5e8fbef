/*
 * report_tree.c - the tree ablation view (`mtpbench report --table tree`,
 * spec/metrics.md "Tree decoders"): per decoder and sampling setting, the
 * tokens verified per step (a tree's nodes, a chain's K+1, the pending token
 * included), tau, tokens per verified token, speedup over the paired
 * baseline, acceptance per depth (beta_j) and the share of depth-1
 * acceptances by sibling rank. Rows are ordered by sampling setting, then
 * verification budget, so chains and trees of one budget sit together.
 *
 * Tau and speedup carry the report's bootstrap intervals (the decoder x
 * sampling groups of mtp_report_build), and each MTP row its paired tau
 * difference against the best chain (highest tau) of the same budget and
 * sampling setting: the question, tree against chain at the same
 * number of verified tokens, answered over the same prompts. The other
 * columns are point estimates over all requests of the row (ratios of sums,
 * as spec/metrics.md defines them).
 */
#include <math.h>   /* defines: NAN */
#include <stdlib.h> /* defines: qsort, free */
#include <string.h> /* defines: strcmp */

#include "../core/error.h"
#include "report_internal.h"

enum { TREE_VIEW_DEPTHS = 4, TREE_VIEW_RANKS = 3 }; /* beta_1..4; ranks 0, 1, 2+ */

struct tree_row {
    const struct mtp_request_record *first; /* names, mode, shape */
    const struct mtp_report_group *g;       /* its decoder x sampling group: intervals */
    int samp;
    double steps, emitted, verified, tokens, ns;
    double reach[TREE_VIEW_DEPTHS + 1];
    double rank[TREE_VIEW_RANKS], rank_n;
};

/* Tokens verified in step S of R: the tree's nodes, else K+1 (drafted+1 with
 * adaptive depth), 1 for the baseline. The reader has checked every count
 * (experiments/log_check.h); the sums are still formed in doubles. */
static double verified(const struct mtp_request_record *r, int s)
{
    if (r->tree_nodes)
        return r->tree_nodes[s];
    if (r->mode == MTP_SPEC_DECODER_BASELINE)
        return 1;
    return (double)(r->drafted ? r->drafted[s] : r->depth) + 1;
}

static void add_request(struct tree_row *row, const struct mtp_request_record *r)
{
    for (int s = 0; s < r->n_steps; s++) {
        int a = r->accepted_uncut ? r->accepted_uncut[s] : r->accepted[s];
        row->steps++;
        row->verified += verified(r, s);
        for (int j = 1; j <= TREE_VIEW_DEPTHS; j++)
            row->reach[j] += a >= j;
        if (a >= 1) {
            int rk = r->tree_ranks ? r->tree_ranks[(size_t)s * r->tree_depth] : 0;
            row->rank[rk < TREE_VIEW_RANKS ? rk : TREE_VIEW_RANKS - 1]++;
            row->rank_n++;
        }
    }
    if (r->n_output >= 1)
        row->emitted += (double)r->n_output - 1;
    if (r->n_output >= 2 && r->total_ns >= r->ttft_ns) {
        row->tokens += (double)r->n_output - 1;
        row->ns += (double)(r->total_ns - r->ttft_ns);
    }
}

static int find_row(struct tree_row *rows, int n, const struct mtp_request_record *r)
{
    for (int i = 0; i < n; i++)
        if (rows[i].samp == r->sampling_index && !strcmp(rows[i].first->decoder, r->decoder))
            return i;
    return -1;
}

static int row_cmp(const void *pa, const void *pb)
{
    const struct tree_row *a = pa, *b = pb;
    if (a->samp != b->samp)
        return a->samp < b->samp ? -1 : 1;
    double va = a->steps ? a->verified / a->steps : 0, vb = b->steps ? b->verified / b->steps : 0;
    if (fabs(va - vb) > 0.5)
        return va < vb ? -1 : 1;
    return strcmp(a->first->decoder, b->first->decoder);
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

/* Tokens per second of the baseline row with sampling SAMP (NaN if none). */
static double baseline_speed(const struct tree_row *rows, int n, int samp)
{
    for (int i = 0; i < n; i++)
        if (rows[i].samp == samp && rows[i].first->mode == MTP_SPEC_DECODER_BASELINE)
            return ratio(rows[i].tokens, rows[i].ns);
    return NAN;
}

static void columns(struct mtp_report_table *t)
{
    mtp_report_table_col(t, "temperature", "T", "$T$", 0, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "decoder", "decoder", "decoder", 0, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "drafting", "drafting", "drafting", 0, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "shape", "shape", "shape", 0, MTP_REPORT_FMT_PLAIN);
    int s = mtp_report_table_section(t, "tree ablation");
    mtp_report_table_col(t, "verified", "verified/step", "verified", s, MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "tau", "tau", "$\\tau$", s, MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "tau_vs_chain", "tau - best chain", "$\\Delta\\tau$", s,
                         MTP_REPORT_FMT_2);
    mtp_report_table_col(t, "tokens_per_verified", "tokens/verified", "tok/ver", s,
                         MTP_REPORT_FMT_3);
    mtp_report_table_col(t, "speedup", "speedup", "speedup", s, MTP_REPORT_FMT_2);
    for (int j = 1; j <= TREE_VIEW_DEPTHS; j++) {
        char key[16], tex[32];
        snprintf(key, sizeof key, "beta_%d", j);
        snprintf(tex, sizeof tex, "$\\beta_{%d}$", j);
        mtp_report_table_col(t, key, key, tex, s, MTP_REPORT_FMT_3);
    }
    mtp_report_table_col(t, "rank0", "rank 0", "r0", s, MTP_REPORT_FMT_3);
    mtp_report_table_col(t, "rank1", "rank 1", "r1", s, MTP_REPORT_FMT_3);
    mtp_report_table_col(t, "rank2", "rank 2+", "r2+", s, MTP_REPORT_FMT_3);
}

static double budget(const struct tree_row *row) { return round(ratio(row->verified, row->steps)); }

static bool is_chain(const struct tree_row *row)
{
    return row->first->mode == MTP_SPEC_DECODER_MTP && !row->first->tree;
}

/* The chain row with the highest tau among those with ROW's sampling setting
 * and budget (NULL if none). */
static const struct tree_row *best_chain(const struct tree_row *rows, int n, const struct tree_row *row)
{
    const struct tree_row *best = NULL;
    for (int i = 0; i < n; i++) {
        const struct tree_row *c = &rows[i];
        if (!is_chain(c) || !c->g || c->samp != row->samp || budget(c) != budget(row))
            continue;
        if (!best || c->g->metrics[MTP_REPORT_M_TAU].value > best->g->metrics[MTP_REPORT_M_TAU].value)
            best = c;
    }
    return best;
}

static void put_row(struct mtp_report_table *t, int i, const struct tree_row *row, double base,
                    const struct tree_row *chain)
{
    const struct mtp_request_record *r = row->first;
    char shape[32];
    if (r->tree)
        shape[0] = '\0'; /* the whole text below: two shapes never share a cell */
    else if (r->mode == MTP_SPEC_DECODER_BASELINE)
        snprintf(shape, sizeof shape, "-");
    else
        snprintf(shape, sizeof shape, "chain:%d", r->depth);
    int c = 0;
    mtp_report_put_num(t, i, c++, r->temperature);
    mtp_report_put_text(t, i, c++, r->decoder);
    mtp_report_put_text(t, i, c++, mtp_spec_drafting_name(r->drafting));
    mtp_report_put_text(t, i, c++, r->tree ? r->tree : shape);
    mtp_report_put_num(t, i, c++, ratio(row->verified, row->steps));
    if (row->g)
        mtp_report_put_metric(t, i, c, row->g, MTP_REPORT_M_TAU, 1);
    else
        mtp_report_put_num(t, i, c, ratio(row->emitted, row->steps));
    c++;
    if (chain && row->g && row->first->mode == MTP_SPEC_DECODER_MTP)
        mtp_report_put_stat(t, i, c, mtp_report_paired_diff(row->g, chain->g, MTP_REPORT_M_TAU), 1);
    c++;
    mtp_report_put_num(t, i, c++, ratio(row->emitted, row->verified));
    if (row->g && row->first->mode != MTP_SPEC_DECODER_BASELINE)
        mtp_report_put_metric(t, i, c, row->g, MTP_REPORT_M_SPEEDUP, 1);
    else
        mtp_report_put_num(t, i, c, ratio(ratio(row->tokens, row->ns), base));
    c++;
    for (int j = 1; j <= TREE_VIEW_DEPTHS; j++)
        mtp_report_put_num(t, i, c++, ratio(row->reach[j], row->steps));
    for (int k = 0; k < TREE_VIEW_RANKS; k++)
        mtp_report_put_num(t, i, c++, ratio(row->rank[k], row->rank_n));
}

/* The group of R holding REC's decoder and sampling setting (NULL if none). */
static const struct mtp_report_group *group_of(const struct mtp_report *r,
                                               const struct mtp_request_record *rec)
{
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *g = &r->groups[i];
        if (g->decoder && !strcmp(g->decoder, rec->decoder) && g->temperature == rec->temperature &&
            g->top_p == rec->top_p && g->top_k == rec->top_k)
            return g;
    }
    return NULL;
}

int mtp_report_table_tree(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                          struct mtp_report_table *t)
{
    struct mtp_report_options o = *opt;
    o.latency = false;
    o.n_by = 2;
    o.by[0] = MTP_REPORT_KEY_DECODER;
    o.by[1] = MTP_REPORT_KEY_TEMPERATURE;
    struct mtp_report rep;
    if (mtp_report_build(d, &o, &rep))
        return MTP_ERR;
    struct tree_row *rows = mtp_xcalloc((size_t)(d->n_requests > 0 ? d->n_requests : 1),
                                        sizeof *rows);
    int n = 0;
    for (int q = 0; q < d->n_requests; q++) {
        const struct mtp_request_record *r = &d->requests[q].rec;
        int i = find_row(rows, n, r);
        if (i < 0) {
            i = n++;
            rows[i].first = r;
            rows[i].samp = r->sampling_index;
        }
        add_request(&rows[i], r);
    }
    for (int i = 0; i < n; i++)
        rows[i].g = group_of(&rep, rows[i].first);
    qsort(rows, (size_t)n, sizeof *rows, row_cmp);
    mtp_report_table_init(t, "tree", "Tree decoding: verification budget, tau, speedup");
    columns(t);
    mtp_report_table_rows(t, n);
    for (int i = 0; i < n; i++)
        put_row(t, i, &rows[i], baseline_speed(rows, n, rows[i].samp), best_chain(rows, n, &rows[i]));
    char *boot = mtp_report_bootstrap_note(opt);
    t->note = mtp_report_xprintf(
        "%s verified/step: tokens one verification forward holds (a tree's nodes, a chain's K+1, "
        "the pending token included); tokens/verified = tau / verified; speedup: decode "
        "tokens/s over the baseline's with the same sampling setting; beta_j: share of steps "
        "accepting >= j drafts; rank r: share of steps accepting a draft whose depth-1 node "
        "was its parent's r-th sibling. tau - best chain: paired bootstrap difference against the "
        "chain (K+1 = budget) with the highest tau at the same budget and sampling setting. "
        "Columns without an interval are point estimates over all requests.", boot);
    free(boot);
    free(rows);
    mtp_report_free(&rep);
    return MTP_OK;
}
