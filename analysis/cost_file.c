/*
 * cost_file.c - reading `mtpbench bench --json` files (cost_model.h).
 *
 * The file is a flat list of named cases (cli/bench_json.c); the model needs
 * decode, verify/n=1..16, draft/module=k/n=1..16 per module, the three
 * choose cases and update. Each is looked up by name; a missing or malformed
 * one is an error naming the file and the case.
 */
#include <jansson.h> /* defines: json_load_file */
#include <stdio.h>   /* defines: snprintf */
#include <stddef.h>  /* defines: offsetof */
#include <stdlib.h>  /* defines: free */
#include <string.h>  /* defines: strcmp, memset */

#include "cost_model.h"
#include "engine/error.h"

#define COSTS_SCHEMA "mtpbench-costs/1"

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

/* The median ratio and the per-round ratios of case NAME into *MEDIAN and
 * ROUNDS' field at byte OFFSET. */
static int read_case(const struct mtp_costs *out, json_t *cases, const char *name,
                     size_t offset)
{
    json_t *c = find_case(cases, name);
    if (!c)
        return mtp_error_set("COSTS %s: case '%s': missing (expected every case of `mtpbench "
                             "bench --json`)", out->file, name);
    json_t *med = json_object_get(json_object_get(c, "ratio"), "median");
    json_t *s = json_object_get(c, "ratio_samples");
    if (!json_is_number(med) || !(json_number_value(med) >= 0))
        return mtp_error_set("COSTS %s: case '%s': key 'ratio.median': expected a number >= 0",
                             out->file, name);
    if (!json_is_array(s) || (int)json_array_size(s) != out->rounds)
        return mtp_error_set("COSTS %s: case '%s': key 'ratio_samples': expected an array of "
                             "%d numbers (one per round), found %d entries", out->file, name,
                             out->rounds, json_is_array(s) ? (int)json_array_size(s) : -1);
    *(double *)((char *)&out->median + offset) = json_number_value(med);
    for (int r = 0; r < out->rounds; r++) {
        json_t *x = json_array_get(s, (size_t)r);
        if (!json_is_number(x))
            return mtp_error_set("COSTS %s: case '%s': key 'ratio_samples[%d]': expected a "
                                 "number", out->file, name, r);
        *(double *)((char *)&out->round[r] + offset) = json_number_value(x);
    }
    return MTP_OK;
}

static int read_cases(struct mtp_costs *out, json_t *cases)
{
    char name[64];
    for (int n = 1; n <= MTP_COST_MAX_N; n++) {
        snprintf(name, sizeof name, "verify/n=%d", n);
        if (read_case(out, cases, name, offsetof(struct mtp_cost_point, verify[n])))
            return MTP_ERR;
    }
    for (int k = 1; k <= out->n_modules; k++)
        for (int n = 1; n <= MTP_COST_MAX_N; n++) {
            snprintf(name, sizeof name, "draft/module=%d/n=%d", k, n);
            if (read_case(out, cases, name, offsetof(struct mtp_cost_point, draft[k][n])))
                return MTP_ERR;
        }
    /* Draft-vocabulary rows are optional: older cost files and models
     * without token_frequencies.bin have none (the model then uses the full
     * head's cost). */
    for (int k = 1; k <= out->n_modules; k++)
        for (int v = 0; v < MTP_COST_N_VOCABS; v++) {
            snprintf(name, sizeof name, "draft_vocab/module=%d/N=%d", k, mtp_cost_vocabs[v]);
            if (find_case(cases, name) &&
                read_case(out, cases, name, offsetof(struct mtp_cost_point, draft_vocab[k][v])))
                return MTP_ERR;
        }
    if (read_case(out, cases, "choose/argmax", offsetof(struct mtp_cost_point, argmax)) ||
        read_case(out, cases, "choose/argmax_probs",
                  offsetof(struct mtp_cost_point, argmax_probs)) ||
        read_case(out, cases, "choose/sampled", offsetof(struct mtp_cost_point, sampled)) ||
        read_case(out, cases, "update", offsetof(struct mtp_cost_point, update)))
        return MTP_ERR;
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
    json_t *rounds = json_object_get(root, "rounds"), *cases = json_object_get(root, "cases");
    json_t *mods = json_object_get(model, "num_nextn_predict_layers");
    out->host = dup_field(machine, "host");
    out->cpu = dup_field(machine, "cpu");
    out->backend = dup_field(machine, "backend");
    out->model_dir = dup_field(model, "dir");
    out->threads = (int)json_integer_value(json_object_get(machine, "threads"));
    out->context = (int)json_integer_value(json_object_get(root, "context"));
    if (!json_is_integer(rounds) || json_integer_value(rounds) < 1 ||
        json_integer_value(rounds) > 100000)
        return mtp_error_set("COSTS %s: key 'rounds': expected an integer >= 1", out->file);
    if (!json_is_integer(mods) || json_integer_value(mods) < 0 ||
        json_integer_value(mods) > MTP_COST_MAX_MODULES)
        return mtp_error_set("COSTS %s: key 'model.num_nextn_predict_layers': expected an "
                             "integer in 0..%d", out->file, MTP_COST_MAX_MODULES);
    if (!json_is_array(cases))
        return mtp_error_set("COSTS %s: key 'cases': expected an array", out->file);
    out->n_modules = (int)json_integer_value(mods);
    out->rounds = (int)json_integer_value(rounds);
    out->round = mtp_xcalloc((size_t)out->rounds, sizeof *out->round);
    return read_cases(out, cases);
}

int mtp_costs_load(const char *path, struct mtp_costs *out)
{
    memset(out, 0, sizeof *out);
    out->file = mtp_xstrdup(path);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return mtp_error_set("COSTS %s: line %d: %s", path, err.line, err.text);
    int rc = json_is_object(root) ? read_root(out, root)
                                  : mtp_error_set("COSTS %s: expected a JSON object", path);
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
    memset(c, 0, sizeof *c);
}
