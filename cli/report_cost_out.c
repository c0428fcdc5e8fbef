/*
 * report_cost_out.c - the cost-model view's output (report_cost_out.h).
 */
#include "report_cost_out.h"

#include <jansson.h> /* defines: json_loadb, json_dumpf */
#include <stdlib.h>  /* defines: free */

#include "analysis/report_cost.h"
#include "engine/error.h"

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

static int write_json(FILE *f, const struct mtp_report_table *pred,
                      const struct mtp_report_table *depth, const struct mtp_report_meta *meta,
                      bool projection)
{
    json_t *a = table_json(pred, meta), *b = table_json(depth, meta);
    json_t *root = a && b ? json_pack("{s:s, s:b, s:{s:o, s:o}}", "schema",
                                      "mtpbench-cost-model/1", "projection", projection,
                                      "tables", "cost-model", a, "cost-depth", b)
                          : NULL;
    int rc = root && json_dumpf(root, f, JSON_INDENT(1)) == 0 ? MTP_OK
                                                              : mtp_error_set("report: cannot "
                                                                              "write the JSON");
    if (!root) {
        json_decref(a);
        json_decref(b);
    }
    json_decref(root);
    fputc('\n', f);
    return rc;
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
    struct mtp_report_meta meta = {d, opt};
    if (rc == MTP_OK && fmt == MTP_REPORT_FORMAT_JSON)
        rc = write_json(f, &pred, &depth, &meta, mtp_report_cost_is_projection(d, &costs));
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
