/*
 * runner_table.c - the table `mtpbench run` prints at the end: per sampling
 * setting, batch size and decoder, tau, alpha_1..alpha_K, accept_rate,
 * tokens/s per request and the speedup over the baseline decoder of the same
 * sampling setting and batch size (spec/metrics.md; point estimates only,
 * `mtpbench report` adds intervals and the batch view its throughput).
 * It reads the log back, so a resumed run reports on every request in it.
 */
#include <math.h>   /* defines: isnan */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp */

#include "../analysis/metrics.h"
#include "../core/error.h"
#include "runner.h"
#include "runner_internal.h"

struct table_row {
    char *decoder;
    int sampling_index;
    int batch_size;
    double temperature, top_p;
    int top_k;
    enum mtp_spec_decoder_type mode;
    enum mtp_spec_drafting drafting;
    struct mtp_metrics m;
};

struct table {
    struct table_row *rows;
    int n, cap, max_k;
    int name_width; /* the decoder column: its longest name */
    bool batched;   /* some row has a batch size > 1: print the B column */
};

static struct table_row *row_for(struct table *t, const struct mtp_request_record *rec)
{
    for (int i = 0; i < t->n; i++)
        if (t->rows[i].sampling_index == rec->sampling_index &&
            t->rows[i].batch_size == rec->batch_size && !strcmp(t->rows[i].decoder, rec->decoder))
            return &t->rows[i];
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->rows = mtp_xrealloc(t->rows, (size_t)t->cap * sizeof *t->rows);
    }
    struct table_row *row = &t->rows[t->n++];
    *row = (struct table_row){.decoder = mtp_xstrdup(rec->decoder),
                              .sampling_index = rec->sampling_index,
                              .batch_size = rec->batch_size,
                              .temperature = rec->temperature, .top_p = rec->top_p,
                              .top_k = rec->top_k, .mode = rec->mode,
                              .drafting = rec->drafting};
    int K = rec->depth < MTP_METRICS_MAX_DEPTH ? rec->depth : MTP_METRICS_MAX_DEPTH;
    mtp_metrics_init(&row->m, K);
    t->batched |= rec->batch_size > 1;
    if (K > t->max_k)
        t->max_k = K;
    return row;
}

static int collect(const char *path, struct table *t)
{
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        return MTP_ERR;
    const msgpack_object *o;
    int rc;
    char type[32];
    while ((rc = mtp_log_reader_next(rd, &o, NULL)) == MTP_OK && o) {
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "request"))
            continue;
        struct mtp_request_record rec;
        if ((rc = mtp_log_decode_request(o, &rec))) {
            mtp_log_request_free(&rec);
            break;
        }
        struct table_row *row = row_for(t, &rec);
        mtp_metrics_add_request_drafted(&row->m, rec.accepted, rec.accepted_uncut, rec.drafted,
                                        rec.n_steps, rec.n_output, rec.total_ns - rec.ttft_ns);
        mtp_log_request_free(&rec);
    }
    mtp_log_reader_close(rd);
    return rc;
}

static void print_num(FILE *out, double v, int width, int prec)
{
    if (isnan(v))
        fprintf(out, " %*s", width, "-");
    else
        fprintf(out, " %*.*f", width, prec, v);
}

/* The drafting column: an adaptive decoder chains its drafts, but it is its
 * own kind ("adaptive" in the report and the plots too). */
static const char *drafting_label(const struct table_row *r)
{
    return r->mode == MTP_SPEC_DECODER_ADAPTIVE ? "adaptive" : mtp_spec_drafting_name(r->drafting);
}

static void print_header(FILE *out, const struct table *t, const struct table_row *r)
{
    fprintf(out, "\nsampling %d (temperature %g, top_p %g, top_k %d)\n", r->sampling_index,
            r->temperature, r->top_p, r->top_k);
    fprintf(out, "%-*s", t->name_width, "decoder");
    if (t->batched)
        fprintf(out, " %3s", "B");
    fprintf(out, " %2s %-8s %5s %6s", "K", "drafting", "reqs", "tau");
    for (int j = 1; j <= t->max_k; j++)
        fprintf(out, " %5s%-2d", "alpha", j);
    fprintf(out, " %7s %9s %7s\n", "accept", "tok/s", "speedup");
}

/* The baseline row of sampling setting SAMP at batch size B, or NULL. */
static const struct table_row *baseline_of(const struct table *t, int samp, int B)
{
    for (int i = 0; i < t->n; i++)
        if (t->rows[i].sampling_index == samp && t->rows[i].batch_size == B &&
            t->rows[i].mode == MTP_SPEC_DECODER_BASELINE)
            return &t->rows[i];
    return NULL;
}

static void print_rows(FILE *out, const struct table *t, int samp)
{
    for (int i = 0; i < t->n; i++) {
        const struct table_row *r = &t->rows[i];
        if (r->sampling_index != samp)
            continue;
        const struct table_row *base = baseline_of(t, samp, r->batch_size);
        fprintf(out, "%-*s", t->name_width, r->decoder);
        if (t->batched)
            fprintf(out, " %3d", r->batch_size);
        fprintf(out, " %2d %-8s %5lld", r->m.K, drafting_label(r), (long long)r->m.requests);
        print_num(out, mtp_metrics_tau(&r->m), 6, 3);
        for (int j = 1; j <= t->max_k; j++)
            print_num(out, mtp_metrics_alpha(&r->m, j), 7, 3);
        print_num(out, r->m.K ? mtp_metrics_accept_rate(&r->m) : NAN, 7, 3);
        double tps = mtp_metrics_tokens_per_s(&r->m);
        print_num(out, tps, 9, 1);
        print_num(out, base ? tps / mtp_metrics_tokens_per_s(&base->m) : NAN, 7, 3);
        fprintf(out, "\n");
    }
}

/* Position of DECODER in ORDER (unknown names last). */
static int order_of(const char *decoder, const char *const *order, int n_order)
{
    for (int i = 0; i < n_order; i++)
        if (!strcmp(order[i], decoder))
            return i;
    return n_order;
}

/* Rows by sampling index, batch size, then the spec's decoder order: rank
 * logs are read one after another, so order of appearance would depend on
 * the split. Without ORDER, appearance order within a batch size. */
static bool row_before_or_equal(const struct table_row *a, const struct table_row *b,
                                const char *const *order, int n_order)
{
    if (a->sampling_index != b->sampling_index)
        return a->sampling_index < b->sampling_index;
    if (a->batch_size != b->batch_size)
        return a->batch_size < b->batch_size;
    return !order || order_of(a->decoder, order, n_order) <= order_of(b->decoder, order, n_order);
}

static void sort_rows(struct table *t, const char *const *order, int n_order)
{
    for (int i = 1; i < t->n; i++)
        for (int j = i; j > 0; j--) {
            struct table_row *a = &t->rows[j - 1], *b = &t->rows[j];
            if (row_before_or_equal(a, b, order, n_order))
                break;
            struct table_row tmp = *a;
            *a = *b;
            *b = tmp;
        }
}

int mtp_runner_print_table_files(const char *const *paths, int n_paths, const char *const *order,
                                 int n_order, FILE *out)
{
    struct table t = {0};
    int rc = MTP_OK;
    for (int f = 0; rc == MTP_OK && f < n_paths; f++)
        rc = collect(paths[f], &t);
    sort_rows(&t, order, n_order);
    t.name_width = (int)strlen("decoder");
    for (int i = 0; i < t.n; i++)
        if ((int)strlen(t.rows[i].decoder) > t.name_width)
            t.name_width = (int)strlen(t.rows[i].decoder);
    for (int i = 0; rc == MTP_OK && i < t.n; i++) {
        bool first = true; /* one block per sampling setting, in order of appearance */
        for (int j = 0; j < i; j++)
            first &= t.rows[j].sampling_index != t.rows[i].sampling_index;
        if (!first)
            continue;
        print_header(out, &t, &t.rows[i]);
        print_rows(out, &t, t.rows[i].sampling_index);
    }
    for (int i = 0; i < t.n; i++)
        free(t.rows[i].decoder);
    free(t.rows);
    return rc;
}

int mtp_runner_print_table(const char *path, FILE *out)
{
    return mtp_runner_print_table_files(&path, 1, NULL, 0, out);
}
