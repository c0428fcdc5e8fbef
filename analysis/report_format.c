/*
 * report_format.c - render report tables as Markdown (the default; aligned
 * so it also reads well in a terminal), CSV (one row per table row, values
 * and interval bounds in separate columns) and LaTeX (booktabs tabulars).
 * JSON is in report_json.c.
 *
 * Markdown and LaTeX print one table per section, repeating the key columns,
 * so that no table is wider than a screen; CSV and JSON keep every column in
 * one row so that a script gets all of a group's numbers together.
 */
#include "report_internal.h"

#include <math.h>   /* defines: isnan */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp, strlen */

#include "core/error.h" /* defines: mtp_error_set, mtp_xcalloc */

enum { CELL_CAP = 160 }; /* three numbers of < 32 characters and the brackets */

int mtp_report_format_parse(const char *s, enum mtp_report_format *out)
{
    static const char *const names[] = {"md", "csv", "tex", "json"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum mtp_report_format)i;
            return MTP_OK;
        }
    if (strcmp(s, "markdown") == 0) {
        *out = MTP_REPORT_FORMAT_MD;
        return MTP_OK;
    }
    return mtp_error_set("--format: expected md, csv, tex or json, found '%s'", s);
}

static void fmt_number(char *buf, size_t cap, double v, enum mtp_report_fmt f)
{
    switch (f) {
    case MTP_REPORT_FMT_1: snprintf(buf, cap, "%.1f", v); break;
    case MTP_REPORT_FMT_2: snprintf(buf, cap, "%.2f", v); break;
    case MTP_REPORT_FMT_3: snprintf(buf, cap, "%.3f", v); break;
    default: snprintf(buf, cap, "%g", v); break;
    }
}

/* A cell for md (TEX false) or LaTeX (TEX true): "1.84 [1.79, 1.90]". */
static void cell_text(const struct mtp_report_cell *c, enum mtp_report_fmt f, bool tex,
                      char *buf, size_t cap)
{
    char v[32], lo[32], hi[32];
    switch (c->kind) {
    case MTP_REPORT_CELL_TEXT: snprintf(buf, cap, "%s", c->text); break;
    case MTP_REPORT_CELL_INT: snprintf(buf, cap, "%lld", (long long)c->i); break;
    case MTP_REPORT_CELL_NUM:
        fmt_number(buf, cap, c->stat.value, f);
        break;
    case MTP_REPORT_CELL_STAT:
        fmt_number(v, sizeof v, c->stat.value, f);
        if (isnan(c->stat.lo) || isnan(c->stat.hi)) {
            snprintf(buf, cap, "%s", v);
            break;
        }
        fmt_number(lo, sizeof lo, c->stat.lo, f);
        fmt_number(hi, sizeof hi, c->stat.hi, f);
        snprintf(buf, cap, tex ? "%s {\\scriptsize [%s, %s]}" : "%s [%s, %s]", v, lo, hi);
        break;
    default: snprintf(buf, cap, "%s", tex ? "--" : "-"); break;
    }
}

static const struct mtp_report_cell *cell_get(const struct mtp_report_table *t, int row, int col)
{
    return &t->cells[(size_t)row * (size_t)t->n_cols + (size_t)col];
}

/* Columns of section S (key columns first); returns how many. */
static int section_cols(const struct mtp_report_table *t, int s, int *cols)
{
    int n = 0;
    for (int c = 0; c < t->n_cols; c++)
        if (t->cols[c].section == 0)
            cols[n++] = c;
    int keys = n;
    for (int c = 0; c < t->n_cols; c++)
        if (t->cols[c].section == s && s != 0)
            cols[n++] = c;
    return n > keys ? n : 0;
}

/* ---- Markdown --------------------------------------------------------------- */

static void md_header(FILE *f, const struct mtp_report_table *t, const struct mtp_report_meta *m)
{
    fprintf(f, "# %s\n\n", t->title);
    if (!m || !m->data)
        return;
    fprintf(f, "Logs:");
    for (int i = 0; i < m->data->n_files; i++)
        fprintf(f, "%s %s", i ? "," : "", m->data->files[i]);
    bool complete = true;
    for (int i = 0; i < m->data->n_runs; i++) {
        struct mtp_report_gaps g;
        mtp_report_gaps(m->data, i, &g);
        complete &= mtp_report_gaps_complete(&g);
        mtp_report_gaps_free(&g);
    }
    fprintf(f, " (%d requests, %d run%s%s)\n\n", m->data->n_requests, m->data->n_runs,
            m->data->n_runs == 1 ? "" : "s",
            complete ? "" : "; **partial**: not every planned request is in the logs");
    for (int i = 0; i < m->data->n_runs; i++) {
        const struct mtp_report_run *r = &m->data->runs[i];
        fprintf(f, "- run %s: model %s, backend %s, %d thread%s, CPU %s, host %s, commit %.12s\n",
                r->label, r->model_dir, r->backend, r->threads, r->threads == 1 ? "" : "s",
                r->cpu, r->host, r->git_commit[0] ? r->git_commit : "unknown");
    }
    mtp_report_gaps_print(f, m->data, "- **left out**: ");
    mtp_report_turns_print(f, m->data, "- **turns**: ");
    fprintf(f, "\n");
}

static void md_row(FILE *f, const struct mtp_report_table *t, const int *cols, int n,
                   const int *width, int row)
{
    char buf[CELL_CAP];
    fprintf(f, "|");
    for (int i = 0; i < n; i++) {
        const struct mtp_report_column *c = &t->cols[cols[i]];
        if (row < 0)
            snprintf(buf, sizeof buf, "%s", c->label);
        else
            cell_text(cell_get(t, row, cols[i]), c->fmt, false, buf, sizeof buf);
        bool left = c->section == 0 && row >= 0 && cell_get(t, row, cols[i])->kind ==
                                                        MTP_REPORT_CELL_TEXT;
        fprintf(f, left || row < 0 ? " %-*s |" : " %*s |", width[i], buf);
    }
    fprintf(f, "\n");
}

static void md_section(FILE *f, const struct mtp_report_table *t, const int *cols, int n)
{
    int *width = mtp_xcalloc((size_t)n, sizeof *width);
    char buf[CELL_CAP];
    for (int i = 0; i < n; i++) {
        width[i] = (int)strlen(t->cols[cols[i]].label);
        for (int r = 0; r < t->n_rows; r++) {
            cell_text(cell_get(t, r, cols[i]), t->cols[cols[i]].fmt, false, buf, sizeof buf);
            if ((int)strlen(buf) > width[i])
                width[i] = (int)strlen(buf);
        }
        if (width[i] < 3)
            width[i] = 3;
    }
    md_row(f, t, cols, n, width, -1);
    fprintf(f, "|");
    for (int i = 0; i < n; i++) {
        bool num = t->cols[cols[i]].section != 0 || t->cols[cols[i]].fmt != MTP_REPORT_FMT_PLAIN;
        for (int k = 0; k < width[i] + 2; k++)
            fputc(num && k == width[i] + 1 ? ':' : '-', f);
        fprintf(f, "|");
    }
    fprintf(f, "\n");
    for (int r = 0; r < t->n_rows; r++)
        md_row(f, t, cols, n, width, r);
    free(width);
}

static void write_md(FILE *f, const struct mtp_report_table *t, const struct mtp_report_meta *m)
{
    md_header(f, t, m);
    int *cols = mtp_xcalloc((size_t)t->n_cols + 1, sizeof *cols);
    for (int s = 1; s < t->n_sections; s++) {
        int n = section_cols(t, s, cols);
        if (n == 0)
            continue;
        if (t->n_sections > 2)
            fprintf(f, "## %s\n\n", t->section_titles[s]);
        md_section(f, t, cols, n);
        fprintf(f, "\n");
    }
    if (t->note)
        fprintf(f, "%s\n", t->note);
    free(cols);
}

/* ---- CSV ---------------------------------------------------------------- */

/* Columns with a numeric format carry an interval: KEY, KEY_lo, KEY_hi. */
static bool has_interval(const struct mtp_report_column *c) { return c->fmt != MTP_REPORT_FMT_PLAIN; }

/* RFC 4180: quote fields with a comma, quote or line break; double the quotes. */
static void csv_text(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    if (!isnan(v))
        fprintf(f, "%.10g", v);
}

static void csv_cell(FILE *f, const struct mtp_report_cell *c, bool interval)
{
    switch (c->kind) {
    case MTP_REPORT_CELL_TEXT: csv_text(f, c->text); break;
    case MTP_REPORT_CELL_INT: fprintf(f, "%lld", (long long)c->i); break;
    case MTP_REPORT_CELL_NUM:
    case MTP_REPORT_CELL_STAT: csv_num(f, c->stat.value); break;
    default: break;
    }
    if (!interval)
        return;
    bool stat = c->kind == MTP_REPORT_CELL_STAT;
    fputc(',', f);
    if (stat)
        csv_num(f, c->stat.lo);
    fputc(',', f);
    if (stat)
        csv_num(f, c->stat.hi);
}

static void write_csv(FILE *f, const struct mtp_report_table *t)
{
    for (int c = 0; c < t->n_cols; c++) {
        const char *k = t->cols[c].key;
        fprintf(f, "%s%s", c ? "," : "", k);
        if (has_interval(&t->cols[c]))
            fprintf(f, ",%s_lo,%s_hi", k, k);
    }
    fprintf(f, "\n");
    for (int r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            if (c)
                fputc(',', f);
            csv_cell(f, cell_get(t, r, c), has_interval(&t->cols[c]));
        }
        fprintf(f, "\n");
    }
}

/* ---- LaTeX ------------------------------------------------------------------ */

static void tex_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '_': case '%': case '&': case '#': case '{': case '}':
            fprintf(f, "\\%c", *s);
            break;
        case '~': fputs("\\textasciitilde{}", f); break;
        case '^': fputs("\\textasciicircum{}", f); break;
        case '\\': fputs("\\textbackslash{}", f); break;
        default: fputc(*s, f); break;
        }
    }
}

/* Key columns that hold names (left-aligned); numbers are right-aligned. */
static bool text_column(const char *key)
{
    static const char *const names[] = {"decoder", "drafting", "category", "dataset", "run"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return false;
}

static void tex_section(FILE *f, const struct mtp_report_table *t, const char *title,
                        const int *cols, int n)
{
    fprintf(f, "%% %s\n\\begin{tabular}{", title);
    for (int i = 0; i < n; i++)
        fputc(text_column(t->cols[cols[i]].key) ? 'l' : 'r', f);
    fprintf(f, "}\n\\toprule\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? " & " : "", t->cols[cols[i]].tex); /* headers are LaTeX already */
    fprintf(f, " \\\\\n\\midrule\n");
    char buf[CELL_CAP];
    for (int r = 0; r < t->n_rows; r++) {
        for (int i = 0; i < n; i++) {
            const struct mtp_report_cell *c = cell_get(t, r, cols[i]);
            if (i)
                fputs(" & ", f);
            if (c->kind == MTP_REPORT_CELL_TEXT) {
                tex_escape(f, c->text);
                continue;
            }
            cell_text(c, t->cols[cols[i]].fmt, true, buf, sizeof buf);
            fputs(buf, f);
        }
        fprintf(f, " \\\\\n");
    }
    fprintf(f, "\\bottomrule\n\\end{tabular}\n\n");
}

static void write_tex(FILE *f, const struct mtp_report_table *t, const struct mtp_report_meta *m)
{
    fprintf(f, "%% %s (mtpbench report; needs \\usepackage{booktabs})\n", t->title);
    if (m && m->data)
        for (int i = 0; i < m->data->n_files; i++)
            fprintf(f, "%% log: %s\n", m->data->files[i]);
    if (m && m->data)
        mtp_report_gaps_print(f, m->data, "% left out: ");
    int *cols = mtp_xcalloc((size_t)t->n_cols + 1, sizeof *cols);
    for (int s = 1; s < t->n_sections; s++) {
        int n = section_cols(t, s, cols);
        if (n)
            tex_section(f, t, t->section_titles[s], cols, n);
    }
    if (t->note)
        fprintf(f, "%% %s\n", t->note);
    free(cols);
}

int mtp_report_write(FILE *f, const struct mtp_report_table *t, enum mtp_report_format fmt,
                     const struct mtp_report_meta *meta)
{
    switch (fmt) {
    case MTP_REPORT_FORMAT_CSV: write_csv(f, t); break;
    case MTP_REPORT_FORMAT_TEX: write_tex(f, t, meta); break;
    case MTP_REPORT_FORMAT_JSON: return mtp_report_write_json(f, t, meta);
    default: write_md(f, t, meta); break;
    }
    if (fflush(f) != 0 || ferror(f))
        return mtp_error_set("REPORT: write failed");
    return MTP_OK;
}
