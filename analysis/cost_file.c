/*
 * cost_file.c - reading `mtpbench bench --json` files (cost_model.h).
 *
 * The file is a flat list of named cases (bench/bench_json.c); the model needs
 * decode, verify/n=1..16, draft/module=k/n=1..16 per module, the three
 * choose cases and update. Each is looked up by name; a missing or malformed
 * one is an error naming the file and the case. A cost file is an input like
 * any other: every number is checked before the model multiplies by it, so a
 * zeroed, negative or absurd file is refused instead of printing "inf" or a
 * 300-digit cell.
 *
 * One reference: every round is divided by that round's verify/n=1, so the
 * unit is the verify curve's own first point (cost_model.h says why).
 */
#include <jansson.h> /* defines: json_t, json_object_get */
#include <math.h>    /* defines: isfinite, NAN */
#include <stdio.h>   /* defines: snprintf */
#include <stddef.h>  /* defines: offsetof */
#include <stdlib.h>  /* defines: free, qsort */
#include <string.h>  /* defines: strcmp, memset */

#include "cost_batch.h"
#include "cost_file.h"
#include "cost_model.h"
#include "core/error.h"
#include "engine/input_file.h" /* defines: mtp_input_load_json */

#define COSTS_SCHEMA "mtpbench-costs/1"

/* The point is re-based and summarised field by field as a flat array. */
_Static_assert(sizeof(struct mtp_cost_point) % sizeof(double) == 0,
               "struct mtp_cost_point holds doubles only");
enum { POINT_FIELDS = sizeof(struct mtp_cost_point) / sizeof(double) };

/* What a case's ratios may be: forwards take time (> 0); the per-row and
 * per-step overheads may round to 0 on a coarse clock. */
enum case_kind { CASE_FORWARD, CASE_OVERHEAD };

static char *dup_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return mtp_xstrdup(json_is_string(v) ? json_string_value(v) : "");
}

static json_t *find_case(json_t *cases, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *n = json_object_get(c, "name");
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
            return c;
    }
    return NULL;
}

static bool ratio_ok(double x, enum case_kind kind)
{
    return isfinite(x) && (kind == CASE_FORWARD ? x > 0 : x >= 0) && x <= MTP_COST_MAX_RATIO;
}

static const char *ratio_expected(enum case_kind kind)
{
    return kind == CASE_FORWARD ? "a finite number > 0 and <= 1e6 (decodes)"
                                : "a finite number >= 0 and <= 1e6 (decodes)";
}

int mtp_costs_check_summary(const char *file, const char *where, const char *key, json_t *sum)
{
    static const char *const order[] = {"min", "p10", "median", "p90", "max"};
    double prev = 0;
    const char *prev_key = NULL;
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(sum, order[i]);
        if (!v)
            continue;
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || x < 0)
            return mtp_error_set("COSTS %s: %s: key '%s.%s': expected a finite number >= 0, "
                                 "found %s%g", file, where, key, order[i],
                                 json_is_number(v) ? "" : "a non-number ", x);
        if (prev_key && x < prev)
            return mtp_error_set("COSTS %s: %s: key '%s.%s' = %g is below '%s.%s' = %g "
                                 "(expected min <= p10 <= median <= p90 <= max)", file, where,
                                 key, order[i], x, key, prev_key, prev);
        prev = x;
        prev_key = order[i];
    }
    return MTP_OK;
}

/* The summary object SUM of case NAME (key KEY: "ratio" or "ns"). */
static int check_summary(const struct mtp_costs *out, const char *name, const char *key,
                         json_t *sum)
{
    char where[96];
    snprintf(where, sizeof where, "case '%s'", name);
    return mtp_costs_check_summary(out->file, where, key, sum);
}

/* The median and its samples agree: the median lies inside their range. */
static int check_median(const struct mtp_costs *out, const char *name, double med,
                        double lo, double hi)
{
    double tol = 1e-9 * (hi > 1 ? hi : 1);
    if (med < lo - tol || med > hi + tol)
        return mtp_error_set("COSTS %s: case '%s': key 'ratio.median' = %g lies outside its "
                             "'ratio_samples' [%g, %g]", out->file, name, med, lo, hi);
    return MTP_OK;
}

/* The per-round ratios of case NAME, each checked, to DST + r STRIDE bytes
 * (r = 0..rounds-1), and the case's summaries checked against them. */
static int read_case(const struct mtp_costs *out, json_t *cases, const char *name,
                     enum case_kind kind, char *dst, size_t stride)
{
    json_t *c = find_case(cases, name);
    if (!c)
        return mtp_error_set("COSTS %s: case '%s': missing (expected every case of `mtpbench "
                             "bench --json`)", out->file, name);
    json_t *ratio = json_object_get(c, "ratio"), *med = json_object_get(ratio, "median");
    json_t *s = json_object_get(c, "ratio_samples");
    if (!json_is_number(med) || !ratio_ok(json_number_value(med), kind))
        return mtp_error_set("COSTS %s: case '%s': key 'ratio.median': expected %s, found %s%g",
                             out->file, name, ratio_expected(kind),
                             json_is_number(med) ? "" : "a non-number ", json_number_value(med));
    if (check_summary(out, name, "ratio", ratio))
        return MTP_ERR;
    if (!json_is_array(s) || (int)json_array_size(s) != out->rounds)
        return mtp_error_set("COSTS %s: case '%s': key 'ratio_samples': expected an array of "
                             "%d numbers (one per round), found %d entries", out->file, name,
                             out->rounds, json_is_array(s) ? (int)json_array_size(s) : -1);
    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < out->rounds; r++) {
        json_t *x = json_array_get(s, (size_t)r);
        double v = json_number_value(x);
        if (!json_is_number(x) || !ratio_ok(v, kind))
            return mtp_error_set("COSTS %s: case '%s': key 'ratio_samples[%d]': expected %s, "
                                 "found %s%g", out->file, name, r, ratio_expected(kind),
                                 json_is_number(x) ? "" : "a non-number ", v);
        memcpy(dst + (size_t)r * stride, &v, sizeof v);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    return check_median(out, name, json_number_value(med), lo, hi);
}

/* Case NAME into field OFFSET of every round's point. */
static int read_point_case(const struct mtp_costs *out, json_t *cases, const char *name,
                           size_t offset, enum case_kind kind)
{
    return read_case(out, cases, name, kind, (char *)out->round + offset, sizeof *out->round);
}

#define AT(field) offsetof(struct mtp_cost_point, field)

static int read_cases(struct mtp_costs *out, json_t *cases)
{
    char name[64];
    for (int n = 1; n <= MTP_COST_MAX_N; n++) {
        snprintf(name, sizeof name, "verify/n=%d", n);
        if (read_point_case(out, cases, name, AT(verify[n]), CASE_FORWARD))
            return MTP_ERR;
    }
    for (int k = 1; k <= out->n_modules; k++)
        for (int n = 1; n <= MTP_COST_MAX_N; n++) {
            snprintf(name, sizeof name, "draft/module=%d/n=%d", k, n);
            if (read_point_case(out, cases, name, AT(draft[k][n]), CASE_FORWARD))
                return MTP_ERR;
        }
    /* Draft-vocabulary rows are optional: older cost files and models
     * without token_frequencies.bin have none (the model then uses the full
     * head's cost). */
    for (int k = 1; k <= out->n_modules; k++)
        for (int v = 0; v < MTP_COST_N_VOCABS; v++) {
            snprintf(name, sizeof name, "draft_vocab/module=%d/N=%d", k, mtp_cost_vocabs[v]);
            if (find_case(cases, name) &&
                read_point_case(out, cases, name, AT(draft_vocab[k][v]), CASE_FORWARD))
                return MTP_ERR;
        }
    if (read_point_case(out, cases, "choose/argmax", AT(argmax), CASE_OVERHEAD) ||
        read_point_case(out, cases, "choose/argmax_probs", AT(argmax_probs), CASE_OVERHEAD) ||
        read_point_case(out, cases, "choose/sampled", AT(sampled), CASE_OVERHEAD) ||
        read_point_case(out, cases, "update", AT(update), CASE_OVERHEAD))
        return MTP_ERR;
    return MTP_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Every round divided by its own verify/n=1; the medians over rounds of the
 * result; the file's decode over verify/n=1 (DECODE: [rounds]). */
static void rebase(struct mtp_costs *out, const double *decode)
{
    double *col = mtp_xmalloc(sizeof(double) * (size_t)out->rounds);
    for (int r = 0; r < out->rounds; r++) {
        double *f = (double *)&out->round[r], v1 = out->round[r].verify[1];
        for (int i = 0; i < POINT_FIELDS; i++)
            f[i] /= v1;
        col[r] = decode[r] / v1;
    }
    out->decode_over_verify1 = median_of(col, out->rounds);
    double *m = (double *)&out->median;
    for (int i = 0; i < POINT_FIELDS; i++) {
        for (int r = 0; r < out->rounds; r++)
            col[r] = ((const double *)&out->round[r])[i];
        m[i] = median_of(col, out->rounds);
    }
    free(col);
}

/* The "decode" case's per-round ratios (the file's own reference) to DECODE. */
static int read_decode(const struct mtp_costs *out, json_t *cases, double *decode)
{
    return read_case(out, cases, "decode", CASE_FORWARD, (char *)decode, sizeof *decode);
}

/* The bench's noise: verify/n=1's ns spread over rounds, when recorded. */
static int read_spread(struct mtp_costs *out, json_t *cases)
{
    json_t *ns = json_object_get(find_case(cases, "verify/n=1"), "ns");
    out->verify1_spread = NAN;
    if (!ns)
        return MTP_OK;
    if (check_summary(out, "verify/n=1", "ns", ns))
        return MTP_ERR;
    double p10 = json_number_value(json_object_get(ns, "p10"));
    double p90 = json_number_value(json_object_get(ns, "p90"));
    double med = json_number_value(json_object_get(ns, "median"));
    if (med > 0 && json_object_get(ns, "p10") && json_object_get(ns, "p90"))
        out->verify1_spread = (p90 - p10) / med;
    return MTP_OK;
}

/* machine.load_average {"start": [1, 5, 15 min], "end": [...]} (optional). */
static int read_load(struct mtp_costs *out, json_t *machine)
{
    json_t *la = json_object_get(machine, "load_average");
    for (int i = 0; i < 3; i++)
        out->load_start[i] = out->load_end[i] = NAN;
    if (!la || json_is_null(la))
        return MTP_OK;
    static const char *const when[2] = {"start", "end"};
    for (int w = 0; w < 2; w++) {
        json_t *a = json_object_get(la, when[w]);
        double *dst = w ? out->load_end : out->load_start;
        if (json_is_null(a)) /* getloadavg failed on the bench machine */
            continue;
        for (int i = 0; i < 3; i++) {
            json_t *x = json_is_array(a) && json_array_size(a) == 3 ? json_array_get(a, (size_t)i)
                                                                    : NULL;
            double v = json_number_value(x);
            if (!json_is_number(x) || !isfinite(v) || v < 0 || v > 1e6)
                return mtp_error_set("COSTS %s: key 'machine.load_average.%s': expected an "
                                     "array of 3 finite numbers in 0..1e6 (getloadavg's 1, 5 "
                                     "and 15 minutes), found %s", out->file, when[w],
                                     !json_is_array(a) ? "no array"
                                     : json_array_size(a) != 3 ? "another length"
                                                               : "a bad entry");
            dst[i] = v;
        }
    }
    return MTP_OK;
}

/* An integer at KEY of O within LO..HI; WHERE names it for messages. */
static int read_int(const struct mtp_costs *out, json_t *o, const char *key, const char *where,
                    long long lo, long long hi, int *dst)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return mtp_error_set("COSTS %s: key '%s': expected an integer in %lld..%lld, found %s",
                             out->file, where, lo, hi,
                             !v ? "nothing" : json_is_integer(v) ? "one out of range"
                                                                 : "another type");
    *dst = (int)json_integer_value(v);
    return MTP_OK;
}

static int read_root(struct mtp_costs *out, json_t *root)
{
    json_t *schema = json_object_get(root, "schema");
    if (!json_is_string(schema) || strcmp(json_string_value(schema), COSTS_SCHEMA))
        return mtp_error_set("COSTS %s: key 'schema': expected \"%s\", found %s", out->file,
                             COSTS_SCHEMA, json_is_string(schema) ? json_string_value(schema)
                                                                  : "no string");
    json_t *machine = json_object_get(root, "machine"), *model = json_object_get(root, "model");
    json_t *cases = json_object_get(root, "cases");
    out->host = dup_field(machine, "host");
    out->cpu = dup_field(machine, "cpu");
    out->backend = dup_field(machine, "backend");
    out->model_dir = dup_field(model, "dir");
    if (read_int(out, root, "rounds", "rounds", 1, 1000, &out->rounds) ||
        read_int(out, machine, "threads", "machine.threads", 1, 1 << 20, &out->threads) ||
        read_int(out, root, "context", "context", 1, 1 << 30, &out->context) ||
        read_int(out, model, "num_nextn_predict_layers", "model.num_nextn_predict_layers", 0,
                 1 << 20, &out->model_modules))
        return MTP_ERR;
    if (json_object_get(machine, "cpus_online") &&
        read_int(out, machine, "cpus_online", "machine.cpus_online", 1, 1 << 20, &out->cpus))
        return MTP_ERR;
    if (!json_is_array(cases))
        return mtp_error_set("COSTS %s: key 'cases': expected an array", out->file);
    out->n_modules = out->model_modules < MTP_COST_MAX_MODULES ? out->model_modules
                                                                : MTP_COST_MAX_MODULES;
    out->round = mtp_xcalloc((size_t)out->rounds, sizeof *out->round);
    double *decode = mtp_xmalloc(sizeof(double) * (size_t)out->rounds);
    int rc = read_load(out, machine) || read_spread(out, cases) || read_cases(out, cases) ||
                     read_decode(out, cases, decode)
                 ? MTP_ERR
                 : MTP_OK;
    if (rc == MTP_OK)
        rebase(out, decode);
    free(decode);
    return rc == MTP_OK ? mtp_cost_batch_read(out, root) : rc;
}

int mtp_costs_from_json(const char *name, json_t *root, struct mtp_costs *out)
{
    memset(out, 0, sizeof *out);
    out->file = mtp_xstrdup(name);
    return json_is_object(root) ? read_root(out, root)
                                : mtp_error_set("COSTS %s: expected a JSON object", name);
}

int mtp_costs_load(const char *path, struct mtp_costs *out)
{
    memset(out, 0, sizeof *out);
    json_t *root = mtp_input_load_json(path, 0);
    if (!root) {
        out->file = mtp_xstrdup(path);
        return mtp_error_wrap("COSTS ");
    }
    int rc = mtp_costs_from_json(path, root, out);
    json_decref(root);
    return rc;
}

void mtp_costs_free(struct mtp_costs *c)
{
    free(c->file);
    free(c->host);
    free(c->cpu);
    free(c->backend);
    free(c->model_dir);
    free(c->round);
    mtp_cost_batch_free(c->batch);
    memset(c, 0, sizeof *c);
}
