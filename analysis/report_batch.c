/*
 * report_batch.c - the batch view (`mtpbench report --table batch`): what
 * decoding B requests at once does to speculative decoding (issue 25). One
 * row per sampling setting, batch size B and decoder (the baseline first at
 * each B, then MTP decoders by K):
 *
 *   tau, TPOT per request and the speedup against the baseline at the same
 *   B come from the request records (groups by decoder, temperature and
 *   batch, so the bootstrap over prompts and the pairing with the baseline
 *   are the full report's);
 *   throughput and experts touched per verification step come from the
 *   "batch" records (experiments/log_batch.h) at B > 1, which alone know the
 *   batch's steps; at B = 1 there is no batch record and the requests' own
 *   decode times and experts_touched stand in.
 *
 * A batch record is joined to the request records it lists by key (run,
 * decoder, sampling index, B, dataset, prompt, repeat). What does not join is
 * counted in the note, never dropped silently: requests at B > 1 that no
 * batch record lists (a batch run killed before it wrote its record),
 * requests a batch record lists that are not in the logs, and batch records
 * that join no request at all. Definitions: spec/metrics.md, "Batch size".
 */
#include "report_internal.h"

#include <math.h>   /* defines: NAN, isnan */
#include <stdlib.h> /* defines: qsort, bsearch, free */
#include <string.h> /* defines: strcmp */

#include "core/error.h" /* defines: mtp_xcalloc, mtp_error_set */

/* ---- joining batch records to requests ---------------------------------------- */

/* A request's join key: run, decoder, sampling index, B, dataset, prompt,
 * repeat (batch runs decode single-turn prompts only). */
static char *join_key(int run, const char *decoder, int samp, int b, const char *dataset,
                      const char *prompt_id, int repeat)
{
    return mtp_report_xprintf("%08d\x1f%s\x1f%08d\x1f%08d\x1f%s\x1f%s\x1f%08d", run, decoder,
                              samp, b, dataset, prompt_id, repeat);
}

struct joined {
    char *key;
    int idx; /* into data->requests */
};

static int joined_cmp(const void *a, const void *b)
{
    return strcmp(((const struct joined *)a)->key, ((const struct joined *)b)->key);
}

/* Requests of D at B > 1, sorted by join key. */
static struct joined *join_index(const struct mtp_report_data *d, int *n)
{
    struct joined *j = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *j);
    *n = 0;
    for (int i = 0; i < d->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[i].rec;
        if (r->batch_size > 1)
            j[(*n)++] = (struct joined){join_key(d->requests[i].run, r->decoder,
                                                 r->sampling_index, r->batch_size, r->dataset,
                                                 r->prompt_id, r->repeat), i};
    }
    qsort(j, (size_t)*n, sizeof *j, joined_cmp);
    return j;
}

/* ---- rows ------------------------------------------------------------------------- */

struct batch_row {
    const struct mtp_report_group *g;
    const struct mtp_report_group *base; /* the baseline at the same sampling and B */
    double tok, ns;                      /* throughput: output tokens after the first, time */
    double prefill_ns;                   /* the part of NS that prefilled admitted requests */
    double exp_sum, exp_n;               /* distinct experts: sum and (step, layer) cells */
    double steps, seqs;                  /* batch steps and the sequences in them */
};

/* What the joins left out (the note). */
struct batch_gaps {
    int uncovered;      /* requests at B > 1 no batch record lists */
    int unknown;        /* requests a batch record lists that are not in the logs */
    int orphan_batches; /* batch records none of whose requests are in the logs */
};

static double step_ns(const struct mtp_log_batch_record *b, int s)
{
    return (double)b->prefill_ns[s] + (double)b->draft_ns[s] + (double)b->verify_ns[s] +
           (double)b->accept_ns[s];
}

/* Add the steps of batch record B to ROW. */
static void row_add_steps(struct batch_row *row, const struct mtp_log_batch_record *b)
{
    for (int s = 0; s < b->n_steps; s++) {
        row->ns += step_ns(b, s);
        row->prefill_ns += (double)b->prefill_ns[s];
        row->steps += 1;
        row->seqs += b->n_seqs[s];
        for (int l = 0; b->experts_touched && l < b->n_moe_layers; l++)
            row->exp_sum += b->experts_touched[(size_t)s * (size_t)b->n_moe_layers + (size_t)l];
        if (b->experts_touched)
            row->exp_n += b->n_moe_layers;
    }
}

/* Join batch record Q to the requests; its steps go to the row of the group
 * its first joined request is in. USED marks the requests joined so far (a
 * request in two records counts its tokens once). */
static void join_batch(const struct mtp_report_data *d, const struct mtp_report_batch *q,
                       const struct joined *idx, int n_idx, const int *row_of, bool *used,
                       struct batch_row *rows, struct batch_gaps *gaps)
{
    const struct mtp_log_batch_record *b = &q->rec;
    int row = -1;
    for (int i = 0; i < b->n_requests; i++) {
        struct joined probe = {join_key(q->run, b->decoder, b->sampling_index, b->batch_size,
                                        b->requests[i].dataset, b->requests[i].prompt_id,
                                        b->requests[i].repeat), -1};
        const struct joined *hit = bsearch(&probe, idx, (size_t)n_idx, sizeof *idx, joined_cmp);
        free(probe.key);
        if (!hit) {
            gaps->unknown++;
            continue;
        }
        if (row < 0)
            row = row_of[hit->idx];
        if (used[hit->idx] || row < 0 || row_of[hit->idx] != row)
            continue;
        used[hit->idx] = true;
        const struct mtp_request_record *r = &d->requests[hit->idx].rec;
        rows[row].tok += r->n_output > 0 ? r->n_output - 1 : 0;
    }
    if (row < 0)
        gaps->orphan_batches++;
    else
        row_add_steps(&rows[row], b);
}

/* At B = 1 a request is its own batch: its decode time and experts. */
static void row_from_requests(const struct mtp_report_data *d, struct batch_row *row)
{
    const struct mtp_report_group *g = row->g;
    for (int i = 0; i < g->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[g->requests[i]].rec;
        row->tok += r->n_output > 0 ? r->n_output - 1 : 0;
        row->ns += r->total_ns > r->ttft_ns ? (double)(r->total_ns - r->ttft_ns) : 0.0;
        row->steps += r->n_steps;
        row->seqs += r->n_steps;
        size_t cells = (size_t)r->n_steps * (size_t)r->n_moe_layers;
        for (size_t c = 0; r->experts_touched && c < cells; c++)
            row->exp_sum += r->experts_touched[c];
        if (r->experts_touched)
            row->exp_n += (double)cells;
    }
}

static bool same_sampling(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    return a->temperature == b->temperature && a->top_p == b->top_p && a->top_k == b->top_k;
}

/* Sampling setting, then B, then the report's decoder order (baseline first). */
static int row_cmp(const void *pa, const void *pb)
{
    const struct mtp_report_group *a = ((const struct batch_row *)pa)->g;
    const struct mtp_report_group *b = ((const struct batch_row *)pb)->g;
    int c = (a->temperature > b->temperature) - (a->temperature < b->temperature);
    if (!c)
        c = (a->top_p > b->top_p) - (a->top_p < b->top_p);
    if (!c)
        c = (a->top_k > b->top_k) - (a->top_k < b->top_k);
    if (!c)
        c = (a->batch_size > b->batch_size) - (a->batch_size < b->batch_size);
    return c ? c : mtp_report_group_cmp(a, b);
}

/* Rows of R's groups with their throughput and expert sums. */
static struct batch_row *batch_rows(const struct mtp_report *r, struct batch_gaps *gaps)
{
    const struct mtp_report_data *d = r->data;
    struct batch_row *rows = mtp_xcalloc((size_t)r->n_groups + 1, sizeof *rows);
    int *row_of = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *row_of);
    bool *used = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *used);
    for (int i = 0; i < d->n_requests; i++)
        row_of[i] = -1;
    for (int gi = 0; gi < r->n_groups; gi++) {
        rows[gi].g = &r->groups[gi];
        for (int m = 0; m < r->groups[gi].n_requests; m++)
            row_of[r->groups[gi].requests[m]] = gi;
        if (r->groups[gi].batch_size == 1)
            row_from_requests(d, &rows[gi]);
    }
    int n_idx;
    struct joined *idx = join_index(d, &n_idx);
    for (int i = 0; i < d->n_batches; i++)
        join_batch(d, &d->batches[i], idx, n_idx, row_of, used, rows, gaps);
    /* Requests that never decoded are in no group; they are reported as such. */
    for (int i = 0; i < d->n_requests; i++)
        gaps->uncovered += d->requests[i].rec.batch_size > 1 && !used[i] && row_of[i] >= 0;
    for (int i = 0; i < n_idx; i++)
        free(idx[i].key);
    free(idx);
    free(used);
    free(row_of);
    for (int i = 0; i < r->n_groups; i++)
        for (int j = 0; j < r->n_groups && !rows[i].base; j++)
            if (r->groups[j].mode == MTP_SPEC_DECODER_BASELINE &&
                r->groups[j].batch_size == r->groups[i].batch_size &&
                same_sampling(&r->groups[j], &r->groups[i]))
                rows[i].base = &r->groups[j];
    return rows;
}

/* ---- the table ---------------------------------------------------------------- */

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

static double throughput(const struct batch_row *row)
{
    return row->tok > 0 ? ratio(row->tok, row->ns * 1e-9) : NAN;
}

/* Throughput without the prefills: B = 1's decode times have none. */
static double decode_throughput(const struct batch_row *row)
{
    return row->tok > 0 ? ratio(row->tok, (row->ns - row->prefill_ns) * 1e-9) : NAN;
}

static double experts(const struct batch_row *row)
{
    return ratio(row->exp_sum, row->exp_n);
}

static const struct batch_row *row_of_group(const struct batch_row *rows, int n,
                                            const struct mtp_report_group *g)
{
    for (int i = 0; i < n; i++)
        if (rows[i].g == g)
            return &rows[i];
    return NULL;
}

static void batch_columns(struct mtp_report_table *t)
{
    int s = mtp_report_table_section(t, "Batch size: speed and MoE cost");
    static const struct { const char *key, *label, *tex; enum mtp_report_fmt fmt; } cols[] = {
        {"requests", "requests", "requests", MTP_REPORT_FMT_PLAIN},
        {"tau", "tau", "$\\tau$", MTP_REPORT_FMT_2},
        {"tpot_ms", "TPOT/request ms", "TPOT ms", MTP_REPORT_FMT_2},
        {"throughput_tok_s", "throughput tok/s", "tok/s", MTP_REPORT_FMT_1},
        {"throughput_ratio", "throughput vs baseline", "tok/s ratio", MTP_REPORT_FMT_2},
        {"decode_tok_s", "decode tok/s", "decode tok/s", MTP_REPORT_FMT_1},
        {"speedup", "speedup", "speedup", MTP_REPORT_FMT_2},
        {"seqs_per_step", "seqs/step", "seqs/step", MTP_REPORT_FMT_2},
        {"experts_per_verify", "experts/verify", "experts/verify", MTP_REPORT_FMT_1},
        {"experts_ratio", "experts vs baseline", "experts ratio", MTP_REPORT_FMT_2},
    };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        mtp_report_table_col(t, cols[i].key, cols[i].label, cols[i].tex, s, cols[i].fmt);
}

/* TPOT per request in ms: 1000 / (the group's per-request tokens/s), so its
 * interval is the tokens/s interval turned over. */
static struct mtp_report_stat tpot_ms(const struct mtp_report_group *g)
{
    struct mtp_report_stat v = g->metrics[MTP_REPORT_M_TOKENS_PER_S];
    return (struct mtp_report_stat){ratio(1e3, v.value), ratio(1e3, v.hi), ratio(1e3, v.lo)};
}

static void batch_cells(struct mtp_report_table *t, int row, int c, const struct batch_row *x,
                        const struct batch_row *base)
{
    const struct mtp_report_group *g = x->g;
    mtp_report_put_int(t, row, c++, g->n_requests);
    mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_TAU, 1);
    mtp_report_put_stat(t, row, c++, tpot_ms(g), 1);
    mtp_report_put_num(t, row, c++, throughput(x));
    mtp_report_put_num(t, row, c++, base ? ratio(throughput(x), throughput(base)) : NAN);
    mtp_report_put_num(t, row, c++, decode_throughput(x));
    mtp_report_put_metric(t, row, c++, g, MTP_REPORT_M_SPEEDUP, 1);
    mtp_report_put_num(t, row, c++, ratio(x->seqs, x->steps));
    mtp_report_put_num(t, row, c++, experts(x));
    mtp_report_put_num(t, row, c++, base ? ratio(experts(x), experts(base)) : NAN);
}

static char *batch_note(const struct mtp_report_options *opt, const struct batch_gaps *gaps)
{
    /* "B = 1000" of the shared note would read as a batch size here. */
    char *boot = opt->bootstrap <= 0
                     ? mtp_xstrdup("Point estimates (no bootstrap).")
                     : mtp_report_xprintf("value [95%% CI]: percentile bootstrap over prompts, "
                                          "%d resamples, seed %llu.", opt->bootstrap,
                                          (unsigned long long)opt->seed);
    char *a = gaps->uncovered
                  ? mtp_report_xprintf(" Left out: %d requests at B > 1 that no batch record "
                                       "lists (a batch run that ended before writing its "
                                       "record): in tau, TPOT and speedup, not in throughput, "
                                       "seqs/step or experts.", gaps->uncovered)
                  : mtp_xstrdup("");
    char *b = gaps->unknown
                  ? mtp_report_xprintf(" %d requests listed by batch records are not in the "
                                       "logs: their steps count in the time, not their tokens "
                                       "(throughput is low).", gaps->unknown)
                  : mtp_xstrdup("");
    char *c = gaps->orphan_batches
                  ? mtp_report_xprintf(" Left out: %d batch records none of whose requests "
                                       "are in the logs.", gaps->orphan_batches)
                  : mtp_xstrdup("");
    char *s = mtp_report_xprintf(
        "%s TPOT/request: decode time over tokens after the first, summed over the group's "
        "requests (ratio of sums; at B > 1 a request's decode time is the wall time of the "
        "batch steps it was in). throughput: tokens after the first of the batch runs' "
        "requests over the sum of their steps' prefill + draft + verify + accept times (B = "
        "1: the requests' own decode times; no interval); decode tok/s: the same without the "
        "prefills of admitted requests (B = 1's decode times hold none). speedup: per-request "
        "tokens/s over the baseline's at the same B on the same prompts (the interval is this "
        "one's). "
        "experts/verify: distinct routed experts per verification step and MoE layer, whole "
        "batch (B = 1: per request); vs baseline: over the baseline's at the same B "
        "(spec/metrics.md).%s%s%s%s",
        boot, a, b, c, mtp_report_completeness_note());
    free(boot);
    free(a);
    free(b);
    free(c);
    return s;
}

int mtp_report_table_batch(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                           struct mtp_report_table *t)
{
    struct mtp_report_options o = *opt;
    o.latency = false; /* no percentiles here; they are the slow part */
    o.n_by = 3;
    o.by[0] = MTP_REPORT_KEY_DECODER;
    o.by[1] = MTP_REPORT_KEY_TEMPERATURE;
    o.by[2] = MTP_REPORT_KEY_BATCH;
    struct mtp_report r;
    if (mtp_report_build(d, &o, &r))
        return MTP_ERR;
    struct batch_gaps gaps = {0};
    struct batch_row *rows = batch_rows(&r, &gaps);
    mtp_report_table_init(t, "batch", "Speculative decoding by batch size");
    static const enum mtp_report_key keys[3] = {MTP_REPORT_KEY_TEMPERATURE, MTP_REPORT_KEY_BATCH,
                                                MTP_REPORT_KEY_DECODER};
    struct mtp_report_key_cols kc;
    mtp_report_key_columns(t, &r, keys, 3, &kc);
    int first = t->n_cols;
    batch_columns(t);
    int done = mtp_report_completeness_columns(t);
    mtp_report_table_rows(t, r.n_groups);
    /* Baselines are found by group; sort a copy so the pointers stay valid. */
    struct batch_row *sorted = mtp_xcalloc((size_t)r.n_groups + 1, sizeof *sorted);
    memcpy(sorted, rows, (size_t)r.n_groups * sizeof *rows);
    qsort(sorted, (size_t)r.n_groups, sizeof *sorted, row_cmp);
    for (int i = 0; i < r.n_groups; i++) {
        const struct batch_row *x = &sorted[i];
        mtp_report_key_cells(t, i, &kc, x->g, d);
        batch_cells(t, i, first, x, x->base ? row_of_group(rows, r.n_groups, x->base) : NULL);
        mtp_report_completeness_cells(t, i, done, x->g);
    }
    t->note = batch_note(opt, &gaps);
    free(sorted);
    free(rows);
    mtp_report_free(&r);
    return MTP_OK;
}
