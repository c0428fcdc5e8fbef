/*
 * report_position.c - acceptance against position (`mtpbench report --table
 * position`, spec/metrics.md "Acceptance by position"): per decoder and
 * sampling setting, tau and alpha_1..alpha_4 of the steps whose context, or
 * whose place in the generation, falls in a bin.
 *
 * A step's context is the tokens the verifier attends to when the step
 * starts: the prompt plus every token emitted before it (the prefill's first
 * token included). Its generation position is the same count without the
 * prompt. Long prompts and late steps both lengthen the context; the two
 * axes separate "the prompt is long" from "the request has run for a while".
 *
 * Intervals: percentile bootstrap over prompts, one resample of the prompts
 * shared by every row (a prompt's steps stay together, as in every other
 * view), so rows of one decoder are comparable. The accumulators follow
 * analysis/metrics.h: alpha_j = #{a_s >= j} / #{a_s >= j-1, position j
 * observed}; with the verifier's uncut counts every drafted position is
 * observed, without them (older logs) the positions after the last step's
 * emitted drafts are censored, never counted as rejections.
 */
#include <math.h>   /* defines: NAN, isnan */
#include <stdlib.h> /* defines: free, qsort */
#include <string.h> /* defines: strcmp */

#include "../core/error.h"
#include "../engine/rng.h"
#include "report_internal.h"

enum { POS_DEPTHS = 4, POS_AXES = 2, POS_BINS = 8, POS_VALUES = 2 + 2 * POS_DEPTHS };
enum { POS_BOOT_STREAM = 0x706f73 }; /* "pos": this view's own bootstrap stream */

static const char *const axis_names[POS_AXES] = {"context", "generation"};
/* Bin lower edges per axis; the last bin is open. */
static const int bin_edges[POS_AXES][POS_BINS] = {
    {0, 128, 256, 512, 1024, 2048, 4096, 8192},
    {0, 16, 32, 64, 128, 256, 512, 1024},
};

/* One prompt's sums in one row: steps, emitted, reach[1..D], tried[1..D]. */
struct pos_acc {
    double v[POS_VALUES];
};

/* A decoder x sampling setting ("series"); rows are its (axis, bin) cells. */
struct pos_series {
    const struct mtp_request_record *first;
};

struct pos_view {
    int n_series, n_units;
    struct pos_series *series;
    const char **unit_keys;  /* "dataset\x1fprompt_id", borrowed pieces joined */
    struct pos_acc *acc;     /* [series][axis][bin][unit] */
};

static size_t acc_index(const struct pos_view *v, int s, int axis, int bin, int unit)
{
    return (((size_t)s * POS_AXES + (size_t)axis) * POS_BINS + (size_t)bin) * (size_t)v->n_units +
           (size_t)unit;
}

static int bin_of(int axis, int64_t pos)
{
    int b = 0;
    while (b + 1 < POS_BINS && pos >= bin_edges[axis][b + 1])
        b++;
    return b;
}

static int series_of(struct pos_view *v, const struct mtp_request_record *r)
{
    for (int i = 0; i < v->n_series; i++) {
        const struct mtp_request_record *f = v->series[i].first;
        if (f->sampling_index == r->sampling_index && !strcmp(f->decoder, r->decoder))
            return i;
    }
    v->series[v->n_series].first = r;
    return v->n_series++;
}

/* Units are prompts: the dataset and prompt id (repeats and decoders merge). */
static int unit_of(struct pos_view *v, const struct mtp_request_record *r)
{
    char *key = mtp_report_xprintf("%s\x1f%s", r->dataset, r->prompt_id);
    for (int i = 0; i < v->n_units; i++)
        if (!strcmp(v->unit_keys[i], key)) {
            free(key);
            return i;
        }
    v->unit_keys[v->n_units] = key;
    return v->n_units++;
}

/* Add step S of R (a = emitted drafts, u = verifier's count) to ACC. */
static void add_step(struct pos_acc *acc, const struct mtp_request_record *r, int s)
{
    int a = r->accepted[s];
    int u = r->accepted_uncut ? r->accepted_uncut[s] : a;
    int drafted = r->drafted ? r->drafted[s] : r->depth;
    /* Without uncut counts, the last step may have been cut after its a-th
     * draft: what came after is unobserved. */
    int observed = (!r->accepted_uncut && s == r->n_steps - 1) ? a : drafted;
    acc->v[0] += 1;
    acc->v[1] += (double)a + 1;
    for (int j = 1; j <= POS_DEPTHS; j++) {
        if (j <= observed && u >= j - 1)
            acc->v[1 + POS_DEPTHS + j] += 1; /* tried[j] */
        if (j <= observed && u >= j)
            acc->v[1 + j] += 1; /* reach[j] */
    }
}

static void add_request(struct pos_view *v, int s, int unit, const struct mtp_request_record *r)
{
    int64_t emitted = r->n_output > 0 ? 1 : 0; /* the prefill's token */
    for (int k = 0; k < r->n_steps; k++) {
        int64_t pos[POS_AXES] = {(int64_t)r->prompt_tokens + emitted, emitted};
        for (int axis = 0; axis < POS_AXES; axis++)
            add_step(&v->acc[acc_index(v, s, axis, bin_of(axis, pos[axis]), unit)], r, k);
        emitted += (int64_t)r->accepted[k] + 1;
    }
}

/* tau, alpha_1..D of a row under unit weights W (NULL: all 1). */
static void row_metrics(const struct pos_view *v, int s, int axis, int bin, const double *w,
                        double out[1 + POS_DEPTHS])
{
    double sum[POS_VALUES] = {0};
    for (int u = 0; u < v->n_units; u++) {
        double wu = w ? w[u] : 1.0;
        if (wu == 0)
            continue;
        const struct pos_acc *a = &v->acc[acc_index(v, s, axis, bin, u)];
        for (int i = 0; i < POS_VALUES; i++)
            sum[i] += wu * a->v[i];
    }
    out[0] = sum[0] > 0 ? sum[1] / sum[0] : NAN;
    for (int j = 1; j <= POS_DEPTHS; j++) {
        double tried = sum[1 + POS_DEPTHS + j];
        out[j] = tried > 0 ? sum[1 + j] / tried : NAN;
    }
}

static int dbl_cmp(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* 2.5% and 97.5% nearest-rank percentiles of the non-NaN values of X[0..n). */
static void interval(double *x, int n, double *lo, double *hi)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]))
            x[m++] = x[i];
    if (m == 0) {
        *lo = *hi = NAN;
        return;
    }
    qsort(x, (size_t)m, sizeof *x, dbl_cmp);
    int ilo = (int)floor(0.025 * (m - 1) + 0.5), ihi = (int)floor(0.975 * (m - 1) + 0.5);
    *lo = x[ilo];
    *hi = x[ihi];
}

struct pos_row {
    int s, axis, bin;
    double steps;
    struct mtp_report_stat m[1 + POS_DEPTHS];
};

/* Rows with steps, point estimates and (B > 0) bootstrap intervals. */
static int build_rows(const struct pos_view *v, const struct mtp_report_options *opt,
                      struct pos_row **out)
{
    int cap = v->n_series * POS_AXES * POS_BINS, n = 0;
    struct pos_row *rows = mtp_xcalloc((size_t)(cap > 0 ? cap : 1), sizeof *rows);
    for (int s = 0; s < v->n_series; s++)
        for (int axis = 0; axis < POS_AXES; axis++)
            for (int bin = 0; bin < POS_BINS; bin++) {
                double steps = 0, point[1 + POS_DEPTHS];
                for (int u = 0; u < v->n_units; u++)
                    steps += v->acc[acc_index(v, s, axis, bin, u)].v[0];
                if (steps == 0)
                    continue;
                struct pos_row *r = &rows[n++];
                r->s = s, r->axis = axis, r->bin = bin, r->steps = steps;
                row_metrics(v, s, axis, bin, NULL, point);
                for (int m = 0; m <= POS_DEPTHS; m++)
                    r->m[m] = (struct mtp_report_stat){point[m], NAN, NAN};
            }
    int B = opt->bootstrap;
    if (B > 0 && n > 0) {
        double *w = mtp_xcalloc((size_t)v->n_units, sizeof *w);
        double *draws = mtp_xcalloc((size_t)n * (1 + POS_DEPTHS) * (size_t)B, sizeof *draws);
        struct mtp_rng rng;
        mtp_rng_seed(&rng, opt->seed, POS_BOOT_STREAM);
        for (int b = 0; b < B; b++) {
            memset(w, 0, (size_t)v->n_units * sizeof *w);
            for (int k = 0; k < v->n_units; k++)
                w[mtp_report_draw_index(&rng, (uint32_t)v->n_units)] += 1;
            for (int i = 0; i < n; i++) {
                double m[1 + POS_DEPTHS];
                row_metrics(v, rows[i].s, rows[i].axis, rows[i].bin, w, m);
                for (int k = 0; k <= POS_DEPTHS; k++)
                    draws[((size_t)i * (1 + POS_DEPTHS) + (size_t)k) * (size_t)B + (size_t)b] = m[k];
            }
        }
        for (int i = 0; i < n; i++)
            for (int k = 0; k <= POS_DEPTHS; k++)
                interval(&draws[((size_t)i * (1 + POS_DEPTHS) + (size_t)k) * (size_t)B], B,
                         &rows[i].m[k].lo, &rows[i].m[k].hi);
        free(draws);
        free(w);
    }
    *out = rows;
    return n;
}

static void columns(struct mtp_report_table *t)
{
    mtp_report_table_col(t, "temperature", "T", "$T$", 0, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "decoder", "decoder", "decoder", 0, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "axis", "axis", "axis", 0, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "bin", "tokens", "tokens", 0, MTP_REPORT_FMT_PLAIN);
    int s = mtp_report_table_section(t, "acceptance by position");
    mtp_report_table_col(t, "steps", "steps", "steps", s, MTP_REPORT_FMT_PLAIN);
    mtp_report_table_col(t, "tau", "tau", "$\\tau$", s, MTP_REPORT_FMT_2);
    for (int j = 1; j <= POS_DEPTHS; j++) {
        char key[16], tex[32];
        snprintf(key, sizeof key, "alpha_%d", j);
        snprintf(tex, sizeof tex, "$\\alpha_{%d}$", j);
        mtp_report_table_col(t, key, key, tex, s, MTP_REPORT_FMT_3);
    }
}

static void put_row(struct mtp_report_table *t, int i, const struct pos_view *v,
                    const struct pos_row *row)
{
    const struct mtp_request_record *r = v->series[row->s].first;
    char bin[32];
    int lo = bin_edges[row->axis][row->bin];
    if (row->bin + 1 < POS_BINS)
        snprintf(bin, sizeof bin, "%d-%d", lo, bin_edges[row->axis][row->bin + 1] - 1);
    else
        snprintf(bin, sizeof bin, ">=%d", lo);
    int c = 0;
    mtp_report_put_num(t, i, c++, r->temperature);
    mtp_report_put_text(t, i, c++, r->decoder);
    mtp_report_put_text(t, i, c++, axis_names[row->axis]);
    mtp_report_put_text(t, i, c++, bin);
    mtp_report_put_int(t, i, c++, (int64_t)row->steps);
    for (int k = 0; k <= POS_DEPTHS; k++)
        mtp_report_put_stat(t, i, c++, row->m[k], 1);
}

static int row_cmp(const void *pa, const void *pb)
{
    const struct pos_row *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    if (a->axis != b->axis)
        return a->axis < b->axis ? -1 : 1;
    return (a->bin > b->bin) - (a->bin < b->bin);
}

static int series_cmp(const void *pa, const void *pb)
{
    const struct pos_series *a = pa, *b = pb;
    if (a->first->sampling_index != b->first->sampling_index)
        return a->first->sampling_index < b->first->sampling_index ? -1 : 1;
    return strcmp(a->first->decoder, b->first->decoder);
}

int mtp_report_table_position(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                              struct mtp_report_table *t)
{
    int cap = d->n_requests > 0 ? d->n_requests : 1;
    struct pos_view v = {0};
    v.series = mtp_xcalloc((size_t)cap, sizeof *v.series);
    v.unit_keys = mtp_xcalloc((size_t)cap, sizeof *v.unit_keys);
    for (int q = 0; q < d->n_requests; q++) {
        const struct mtp_request_record *r = &d->requests[q].rec;
        if (r->mode != MTP_SPEC_DECODER_BASELINE) {
            series_of(&v, r);
            unit_of(&v, r);
        }
    }
    qsort(v.series, (size_t)v.n_series, sizeof *v.series, series_cmp);
    v.acc = mtp_xcalloc((size_t)(v.n_series > 0 ? v.n_series : 1) * POS_AXES * POS_BINS *
                            (size_t)(v.n_units > 0 ? v.n_units : 1),
                        sizeof *v.acc);
    for (int q = 0; q < d->n_requests; q++) {
        const struct mtp_request_record *r = &d->requests[q].rec;
        if (r->mode != MTP_SPEC_DECODER_BASELINE)
            add_request(&v, series_of(&v, r), unit_of(&v, r), r);
    }
    struct pos_row *rows;
    int n = build_rows(&v, opt, &rows);
    qsort(rows, (size_t)n, sizeof *rows, row_cmp);
    mtp_report_table_init(t, "position", "Acceptance by context length and generation position");
    columns(t);
    mtp_report_table_rows(t, n);
    for (int i = 0; i < n; i++)
        put_row(t, i, &v, &rows[i]);
    char *boot = mtp_report_bootstrap_note(opt);
    t->note = mtp_report_xprintf(
        "%s context: tokens the verifier attends to when the step starts (prompt + tokens "
        "emitted before it); generation: tokens emitted before the step (the prefill's "
        "included). tau: tokens per step; alpha_j: acceptance of draft j given drafts 1..j-1 "
        "accepted. One bootstrap resample of the prompts is shared by all rows. Baseline "
        "decoders have no drafts and are left out.", boot);
    free(boot);
    free(rows);
    for (int i = 0; i < v.n_units; i++)
        free((char *)v.unit_keys[i]);
    free(v.unit_keys);
    free(v.series);
    free(v.acc);
    if (n == 0) {
        mtp_report_table_free(t);
        return mtp_error_set("REPORT: no MTP decoder steps in the logs: no position view");
    }
    return MTP_OK;
}
