/*
 * report_json.c - the machine-readable report: one JSON object with where the
 * numbers came from (logs, runs, grouping, bootstrap settings) and one object
 * per table row holding every column. analysis/plots.py reads this.
 *
 *   {"schema": "mtpbench-report/1", "table": "full", "title": ..., "note": ...,
 *    "logs": [...], "runs": [{"label", "name", "host", "start_unix_ns", "file"}],
 *    "by": ["decoder", "temperature"],
 *    "bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95},
 *    "columns": [{"key", "label", "section", "section_title"}],
 *    "rows": [{"decoder": "mtp-exact-k2", "depth": 2, "tau": {"value", "lo", "hi"}, ...}]}
 *
 * Undefined numbers (an alpha_j no step reached, a speedup without a
 * baseline, bounds without bootstrap) are null, never NaN (not JSON).
 */
#include "report_internal.h"

#include <jansson.h> /* defines: json_t, json_dumpf */
#include <math.h>    /* defines: isnan */

#include "core/error.h" /* defines: mtp_error_set */

static json_t *num_or_null(double v) { return isnan(v) ? json_null() : json_real(v); }

static json_t *cell_json(const struct mtp_report_cell *c, bool interval)
{
    switch (c->kind) {
    case MTP_REPORT_CELL_TEXT: return json_string(c->text);
    case MTP_REPORT_CELL_INT: return json_integer((json_int_t)c->i);
    case MTP_REPORT_CELL_NUM:
    case MTP_REPORT_CELL_STAT:
        /* A metric column keeps one shape, {value, lo, hi}, in every row. */
        if (!interval)
            return num_or_null(c->stat.value);
        return json_pack("{s:o, s:o, s:o}", "value", num_or_null(c->stat.value), "lo",
                         num_or_null(c->stat.lo), "hi", num_or_null(c->stat.hi));
    default: break;
    }
    if (interval) /* an empty metric cell keeps the shape too */
        return json_pack("{s:n, s:n, s:n}", "value", "lo", "hi");
    return json_null();
}

static json_t *rows_json(const struct mtp_report_table *t)
{
    json_t *rows = json_array();
    for (int r = 0; r < t->n_rows; r++) {
        json_t *row = json_object();
        for (int c = 0; c < t->n_cols; c++) {
            const struct mtp_report_cell *cell = &t->cells[(size_t)r * (size_t)t->n_cols + c];
            json_object_set_new(row, t->cols[c].key,
                                cell_json(cell, t->cols[c].fmt != MTP_REPORT_FMT_PLAIN));
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

static json_t *columns_json(const struct mtp_report_table *t)
{
    json_t *cols = json_array();
    for (int c = 0; c < t->n_cols; c++) {
        const struct mtp_report_column *col = &t->cols[c];
        const char *title = col->section > 0 ? t->section_titles[col->section] : "key";
        json_array_append_new(cols, json_pack("{s:s, s:s, s:i, s:s}", "key", col->key, "label",
                                              col->label, "section", col->section,
                                              "section_title", title));
    }
    return cols;
}

static json_t *count_or_null(int64_t v) { return v < 0 ? json_null() : json_integer(v); }

/* What run RUN of D left out, into its object RUN_OBJ (null: unknown);
 * returns whether the run is complete. */
static bool gaps_json(json_t *run_obj, const struct mtp_report_data *d, int run)
{
    struct mtp_report_gaps g;
    mtp_report_gaps(d, run, &g);
    bool complete = mtp_report_gaps_complete(&g);
    json_t *skipped = json_object(), *missing = json_array();
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++)
        json_object_set_new(skipped, mtp_plan_skip_name((enum mtp_plan_skip)why),
                            count_or_null(g.skipped[why]));
    for (int i = 0; i < g.n_missing; i++)
        json_array_append_new(missing, json_string(g.missing[i]));
    json_object_set_new(run_obj, "complete", json_boolean(complete));
    json_object_set_new(run_obj, "requests", json_integer(g.present));
    json_object_set_new(run_obj, "planned", count_or_null(g.planned));
    json_object_set_new(run_obj, "not_decoded", json_integer(g.not_decoded));
    json_object_set_new(run_obj, "skipped", skipped);
    json_object_set_new(run_obj, "missing_rank_logs", missing);
    mtp_report_gaps_free(&g);
    return complete;
}

/* Logs, runs, grouping and bootstrap settings into ROOT. */
static void meta_json(json_t *root, const struct mtp_report_meta *m)
{
    json_t *logs = json_array(), *runs = json_array(), *by = json_array();
    if (m && m->data) {
        for (int i = 0; i < m->data->n_files; i++)
            json_array_append_new(logs, json_string(m->data->files[i]));
        bool complete = true;
        for (int i = 0; i < m->data->n_runs; i++) {
            const struct mtp_report_run *r = &m->data->runs[i];
            json_t *run = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:s}",
                                    "label", r->label, "name", r->name, "host", r->host,
                                    "start_unix_ns", (json_int_t)r->start_unix_ns, "file",
                                    r->file, "model_dir", r->model_dir, "backend", r->backend,
                                    "cpu", r->cpu, "threads", r->threads, "git_commit",
                                    r->git_commit);
            complete &= gaps_json(run, m->data, i);
            json_array_append_new(runs, run);
        }
        json_object_set_new(root, "complete", json_boolean(complete));
        json_object_set_new(root, "requests", json_integer(m->data->n_requests));
    }
    json_object_set_new(root, "logs", logs);
    json_object_set_new(root, "runs", runs);
    if (m && m->opt) {
        for (int i = 0; i < m->opt->n_by; i++)
            json_array_append_new(by, json_string(mtp_report_key_name(m->opt->by[i])));
        json_object_set_new(root, "bootstrap",
                            json_pack("{s:i, s:I, s:f}", "resamples", m->opt->bootstrap, "seed",
                                      (json_int_t)m->opt->seed, "level", 0.95));
    }
    json_object_set_new(root, "by", by);
}

int mtp_report_write_json(FILE *f, const struct mtp_report_table *t,
                          const struct mtp_report_meta *meta)
{
    json_t *root = json_object();
    json_object_set_new(root, "schema", json_string(MTP_REPORT_SCHEMA));
    json_object_set_new(root, "table", json_string(t->name));
    json_object_set_new(root, "title", json_string(t->title));
    json_object_set_new(root, "note", t->note ? json_string(t->note) : json_null());
    meta_json(root, meta);
    json_object_set_new(root, "columns", columns_json(t));
    json_object_set_new(root, "rows", rows_json(t));
    int rc = json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    fputc('\n', f);
    if (rc != 0 || fflush(f) != 0 || ferror(f))
        return mtp_error_set("REPORT: writing JSON failed");
    return MTP_OK;
}
