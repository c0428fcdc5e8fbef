/*
 * report_internal.h - what the report's files share but callers need not see:
 * a prompt's sufficient statistics, the weighted samples behind percentiles,
 * and the metric evaluation the bootstrap repeats.
 *
 * Every metric of spec/metrics.md is a ratio of sums over steps or requests,
 * so a prompt ("unit") is summarised by a handful of sums once; a bootstrap
 * resample is then a weighting of units (weight = how often the prompt was
 * drawn) and never touches the logs again.
 */
#ifndef MTP_REPORT_INTERNAL_H
#define MTP_REPORT_INTERNAL_H

#include "metrics.h" /* defines: struct mtp_metrics */
#include "report.h"

/* One prompt of one group: sums over its requests (all repeats and, when the
 * grouping merges them, all sampling settings). The acceptance and speed sums
 * are analysis/metrics.h accumulators, so the report and the runner's
 * end-of-run table share one implementation of tau, alpha_j, beta_j,
 * accept_rate and tokens/s; a resample merges each unit as often as it was
 * drawn. */
struct mtp_report_unit {
    struct mtp_metrics m;     /* steps, emitted, accepted, reach[], decode time */
    double pair_tok, pair_ns; /* tokens and decode time of requests paired with a baseline */
    double base_tok, base_ns; /* the paired baseline requests' */
    double exp_sum, exp_n;    /* experts_touched: sum and number of (step, layer) cells */
    double pexp_sum, pexp_n;  /* the same, only requests whose baseline has experts */
    double bexp_sum, bexp_n;  /* the paired baseline's */
};

/* A value tagged with the unit it belongs to, for weighted percentiles. */
struct mtp_report_wsample {
    double v;
    int unit;
};

/* Sorted (by v) samples of one percentile family. */
struct mtp_report_wset {
    int n;
    struct mtp_report_wsample *s;
};

enum {
    MTP_REPORT_SET_TTFT,
    MTP_REPORT_SET_TPOT,
    MTP_REPORT_SET_PHASE, /* + phase */
    MTP_REPORT_SET_SPEEDUP = MTP_REPORT_SET_PHASE + MTP_REPORT_PHASE_COUNT, /* per unit */
    MTP_REPORT_SET_COUNT,
};

/* group->priv. */
struct mtp_report_priv {
    struct mtp_report_wset sets[MTP_REPORT_SET_COUNT];
    bool latency; /* sets filled; otherwise latency metrics are NaN */
};

/* report_stats.c: fill the percentile sets of G from D's requests (after the
 * units are built) and sort them. */
void mtp_report_stats_prepare(const struct mtp_report_data *d, struct mtp_report_group *g,
                              bool latency);
void mtp_report_stats_release(struct mtp_report_group *g);

/* Metric vector of G (g->n_metrics values) under unit weights W [g->n_units]
 * (all 1: the point estimate). Undefined metrics are NaN. */
void mtp_report_eval(const struct mtp_report_group *g, const double *w, double *out);

/* Nearest-rank percentiles PCTS[0..np) of SET under unit weights W. */
void mtp_report_wpercentiles(const struct mtp_report_wset *set, const double *w,
                             const double *pcts, int np, double *out);

/* report_bootstrap.c: point estimates and intervals of every group. */
void mtp_report_bootstrap(struct mtp_report_group *g, int b, uint64_t seed);

/* report_group.c: the key that decides Q's group under OPT (a string that
 * sorts groups; new). */
char *mtp_report_group_key(const struct mtp_report_request *q,
                           const struct mtp_report_options *opt);

/* "draft_hidden,position0,module_hidden" of R, or "-" without wiring (new). */
char *mtp_report_wiring_label(const struct mtp_request_record *r);

/* report_complete.c: fill the completeness fields of OUT's groups from the
 * plans of D's runs (GKEYS: the groups' keys, sorted, in group order), and
 * append a group for each key only the plans hold (all its prompts skipped
 * or none of its requests in the logs). */
void mtp_report_complete_groups(const struct mtp_report_data *d,
                                const struct mtp_report_options *opt, struct mtp_report *out,
                                char **gkeys);

/* report_group.c -> report_table.c: the order groups are listed in. */
int mtp_report_group_cmp(const struct mtp_report_group *a, const struct mtp_report_group *b);

/* Release the members and results of G (not G itself). */
void mtp_report_group_release(struct mtp_report_group *g);

/* ---- table building (report_table.c; used by report_views.c) ------------- */

char *mtp_report_xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mtp_report_table_init(struct mtp_report_table *t, const char *name, const char *title);
/* A new metric section; returns its number. */
int mtp_report_table_section(struct mtp_report_table *t, const char *title);
/* Append a column (strings copied); returns its index. Columns come before rows. */
int mtp_report_table_col(struct mtp_report_table *t, const char *key, const char *label,
                         const char *tex, int section, enum mtp_report_fmt fmt);
/* Allocate N rows of empty cells. */
void mtp_report_table_rows(struct mtp_report_table *t, int n);
void mtp_report_put_text(struct mtp_report_table *t, int row, int col, const char *s);
void mtp_report_put_int(struct mtp_report_table *t, int row, int col, int64_t v);
void mtp_report_put_num(struct mtp_report_table *t, int row, int col, double v);
/* Value and interval times SCALE (1e-6: ns -> ms); NaN value -> empty cell. */
void mtp_report_put_stat(struct mtp_report_table *t, int row, int col, struct mtp_report_stat s,
                         double scale);
void mtp_report_put_metric(struct mtp_report_table *t, int row, int col,
                           const struct mtp_report_group *g, int m, double scale);
/* An acceptance metric (accept_rate, alpha_j, beta_j): the text "mixed" for a
 * group that merges decoders or depths (spec/metrics.md), else the metric. */
void mtp_report_put_acceptance(struct mtp_report_table *t, int row, int col,
                               const struct mtp_report_group *g, int m);

/* Column indices of the key columns of a table (-1: absent). */
struct mtp_report_key_cols {
    int decoder, depth, drafting, temperature, top_p, top_k, category, dataset, run, wiring, turn,
        batch;
};
void mtp_report_key_columns(struct mtp_report_table *t, const struct mtp_report *r,
                            const enum mtp_report_key *by, int n_by,
                            struct mtp_report_key_cols *kc);
void mtp_report_key_cells(struct mtp_report_table *t, int row,
                          const struct mtp_report_key_cols *kc, const struct mtp_report_group *g,
                          const struct mtp_report_data *d);
/* The completeness section of a table (one row per group): its columns
 * (returns the first), the cells of group G, a group's state ("yes",
 * "partial", "unknown") and the sentence that explains the columns. */
int mtp_report_completeness_columns(struct mtp_report_table *t);
void mtp_report_completeness_cells(struct mtp_report_table *t, int row, int first,
                                   const struct mtp_report_group *g);
const char *mtp_report_group_completeness(const struct mtp_report_group *g);
const char *mtp_report_completeness_note(void);

/* "value [95% CI]: percentile bootstrap over prompts, B = ..., seed ..." (new string). */
char *mtp_report_bootstrap_note(const struct mtp_report_options *opt);

#endif
