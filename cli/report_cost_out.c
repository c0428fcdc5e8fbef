/*
 * report_cost_out.c - the cost-model view's output (report_cost_out.h).
 */
#include "report_cost_out.h"

#include <jansson.h> /* defines: json_loadb, json_dumpf */
#include <math.h>    /* defines: isnan */
#include <stdlib.h>  /* defines: free */

#include "analysis/report_cost.h"
#include "analysis/report_cost_batch.h"
#include "analysis/report_cost_check.h"
#include "core/error.h"

/* TABLE rendered as JSON, parsed back (so two tables can share one object). */
static json_t *table_json(const struct mtp_report_table *t, const struct mtp_report_meta *meta)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return NULL;
    int rc = mtp_report_write_json(m, t, meta);
    fclose(m);
    json_t *o = rc == MTP_OK ? json_loadb(buf, len, 0, NULL) : NULL;
    free(buf);
    return o;
}

static json_t *number_or_null(double x)
{
    return isnan(x) ? json_null() : json_real(x);
}

static json_t *load_json(const double *v)
{
    if (isnan(v[0]))
        return json_null();
    return json_pack("[o, o, o]", json_real(v[0]), json_real(v[1]), json_real(v[2]));
}

/* What the prediction stands on: the bench's machine, threads, load, noise,
 * the reference, and the warnings (mtp_report_cost_warnings). */
static json_t *bench_json(const struct mtp_report_data *d, const struct mtp_costs *c)
{
    const char *why;
    bool noisy = mtp_costs_noisy(c, &why);
    char *w = mtp_report_cost_warnings(d, c);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:{s:o, s:o}, s:s, s:f, s:o, s:b, "
                          "s:o, s:o}",
                          "file", c->file, "host", c->host, "cpu", c->cpu, "backend", c->backend,
                          "threads", c->threads, "cpus_online",
                          c->cpus > 0 ? json_integer(c->cpus) : json_null(), "load_average",
                          "start", load_json(c->load_start), "end", load_json(c->load_end),
                          "reference", "verify/n=1", "decode_over_verify1",
                          c->decode_over_verify1, "verify1_spread",
                          number_or_null(c->verify1_spread), "noisy", noisy, "noisy_reason",
                          why ? json_string(why) : json_null(), "warnings",
                          w ? json_string(w) : json_null());
    free(w);
    return o;
}

static int write_json(FILE *f, const struct mtp_report_table *pred,
                      const struct mtp_report_table *depth, const struct mtp_report_meta *meta,
                      const struct mtp_costs *costs)
{
    json_t *a = table_json(pred, meta), *b = table_json(depth, meta);
    json_t *bench = bench_json(meta->data, costs);
    json_t *root = a && b && bench
                       ? json_pack("{s:s, s:b, s:o, s:{s:o, s:o}}", "schema",
                                   "mtpbench-cost-model/1", "projection",
                                   mtp_report_cost_is_projection(meta->data, costs), "bench",
                                   bench, "tables", "cost-model", a, "cost-depth", b)
                       : NULL;
    int rc = root && json_dumpf(root, f, JSON_INDENT(1)) == 0 ? MTP_OK
                                                              : mtp_error_set("report: cannot "
                                                                              "write the JSON");
    if (!root) {
        json_decref(a);
        json_decref(b);
        json_decref(bench);
    }
    json_decref(root);
    fputc('\n', f);
    return rc;
}

/* The warnings go to stderr too: a table written to a file should not be
 * the only place that says its bench does not match the logs. */
static void warn(const struct mtp_report_data *d, const struct mtp_costs *costs)
{
    char *w = mtp_report_cost_warnings(d, costs);
    if (w)
        fprintf(stderr, "mtpbench: report: cost model: %s\n", w);
    free(w);
}

int mtp_report_cost_output(FILE *f, const struct mtp_report_data *d,
                           const struct mtp_report_options *opt, const char *costs_path,
                           enum mtp_report_format fmt)
{
    struct mtp_costs costs;
    struct mtp_report_table pred = {0}, depth = {0};
    int rc = mtp_costs_load(costs_path, &costs);
    if (rc == MTP_OK)
        rc = mtp_report_table_cost(d, opt, &costs, &pred, &depth);
    if (rc == MTP_OK)
        warn(d, &costs);
    struct mtp_report_meta meta = {d, opt};
    if (rc == MTP_OK && fmt == MTP_REPORT_FORMAT_JSON)
        rc = write_json(f, &pred, &depth, &meta, &costs);
    else if (rc == MTP_OK) {
        rc = mtp_report_write(f, &pred, fmt, &meta);
        fputc('\n', f);
        if (rc == MTP_OK)
            rc = mtp_report_write(f, &depth, fmt, &meta);
    }
    mtp_report_table_free(&pred);
    mtp_report_table_free(&depth);
    mtp_costs_free(&costs);
    return rc;
}

int mtp_report_cost_batch_output(FILE *f, const struct mtp_report_data *d,
                                 const struct mtp_report_options *opt, const char *costs_path,
                                 enum mtp_report_format fmt)
{
    struct mtp_costs costs;
    struct mtp_report_table t = {0};
    int rc = mtp_costs_load(costs_path, &costs);
    if (rc == MTP_OK)
        rc = mtp_report_table_cost_batch(d, opt, &costs, &t);
    if (rc == MTP_OK)
        warn(d, &costs);
    if (rc == MTP_OK && mtp_cost_batch_noisy(costs.batch))
        fprintf(stderr, "mtpbench: report: cost-batch: WARNING: NOISY BATCH CURVE: F(1,0) varies "
                "by %.0f%% over its rounds\n", 100 * costs.batch->forward1_spread);
    struct mtp_report_meta meta = {d, opt};
    if (rc == MTP_OK)
        rc = mtp_report_write(f, &t, fmt, &meta);
    mtp_report_table_free(&t);
    mtp_costs_free(&costs);
    return rc;
}
