/*
 * test_spec_contract.c - the experiment spec's three descriptions agree: the
 * parser (experiments/spec.c, the enforcement), the JSON Schema
 * (spec/experiment-spec.schema.json) and the reference page
 * (spec/experiment-spec.md). It walks the parser's own key lists
 * (mtp_spec_keys) and name functions, so a key, decoder type, choice or
 * default the parser knows and the schema or the page does not fails here:
 *   - keys: per object (top level, sampling entry, each decoder type, wiring),
 *     the parser's keys equal the schema's properties and the page's table rows;
 *   - names: decoder types, drafting modes, adaptive rules, backends and wiring
 *     choices of the parser are the schema's enum/const values;
 *   - defaults: every schema "default" is what the parser does when the key is
 *     absent (a spec with the key set to it parses to the same struct), and the
 *     page's default column shows the same value;
 *   - "applies to": the decoder table names exactly the types that accept a key.
 * That every shipped spec validates against the schema is
 * tests/test_spec_schema.sh (a real JSON Schema validator).
 *
 *   ctest --test-dir build -R spec_contract
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h> /* defines: json_load_file, json_equal */
#include <stdbool.h>
#include <stdio.h>  /* defines: snprintf, fopen */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strstr, strncmp */

#include "core/error.h"
#include "experiments/spec.h"

#define SCHEMA_PATH "spec/experiment-spec.schema.json"
#define DOC_PATH "spec/experiment-spec.md"

static const char *const object_names[MTP_SPEC_OBJECT_COUNT] = {
    "top level", "sampling entry", "baseline decoder", "mtp decoder", "adaptive decoder",
    "wiring object", "dataset object"};

/* ---- the schema ------------------------------------------------------------- */

static json_t *schema;

static int load_schema(void **state)
{
    (void)state;
    json_error_t err;
    schema = json_load_file(SCHEMA_PATH, JSON_REJECT_DUPLICATES, &err);
    if (!schema)
        fprintf(stderr, "%s: line %d: %s\n", SCHEMA_PATH, err.line, err.text);
    return schema ? 0 : -1;
}

static int free_schema(void **state)
{
    (void)state;
    json_decref(schema);
    return 0;
}

static json_t *decoder_variants(void)
{
    json_t *v = json_object_get(
        json_object_get(json_object_get(json_object_get(schema, "properties"), "decoders"),
                        "items"),
        "oneOf");
    assert_true(json_is_array(v));
    return v;
}

/* The decoder type a oneOf variant describes ("type": {"const": ...}). */
static const char *variant_type(json_t *variant)
{
    json_t *t = json_object_get(json_object_get(json_object_get(variant, "properties"), "type"),
                                "const");
    assert_true(json_is_string(t));
    return json_string_value(t);
}

/* The properties of a "datasets" entry written as an object (the oneOf
 * variant that is an object). */
static json_t *dataset_object_properties(void)
{
    json_t *items = json_object_get(
        json_object_get(json_object_get(schema, "properties"), "datasets"), "items");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(items, "oneOf"), i, v) {
        if (json_object_get(v, "properties"))
            return json_object_get(v, "properties");
    }
    fail_msg("%s: datasets.items has no object variant", SCHEMA_PATH);
    return NULL;
}

/* Decoder type name of a decoder object kind. */
static const char *object_type(enum mtp_spec_object o)
{
    return o == MTP_SPEC_OBJECT_BASELINE ? "baseline" : o == MTP_SPEC_OBJECT_MTP ? "mtp"
                                                                                 : "adaptive";
}

/* The schema property named KEY of OBJECT (for decoders: the first variant of
 * the type holding it), or NULL. */
static json_t *schema_property(enum mtp_spec_object o, const char *key)
{
    json_t *props = json_object_get(schema, "properties");
    if (o == MTP_SPEC_OBJECT_ROOT)
        return json_object_get(props, key);
    if (o == MTP_SPEC_OBJECT_SAMPLING)
        return json_object_get(
            json_object_get(json_object_get(json_object_get(props, "sampling"), "items"),
                            "properties"),
            key);
    if (o == MTP_SPEC_OBJECT_DATASET)
        return json_object_get(dataset_object_properties(), key);
    size_t i;
    json_t *variant;
    json_array_foreach(decoder_variants(), i, variant) {
        json_t *vp = json_object_get(variant, "properties");
        if (o == MTP_SPEC_OBJECT_WIRING) {
            json_t *w = json_object_get(json_object_get(vp, "wiring"), "properties");
            if (json_object_get(w, key))
                return json_object_get(w, key);
        } else if (strcmp(variant_type(variant), object_type(o)) == 0 &&
                   json_object_get(vp, key)) {
            return json_object_get(vp, key);
        }
    }
    return NULL;
}

static bool parser_has(enum mtp_spec_object o, const char *key)
{
    for (const char *const *k = mtp_spec_keys(o); *k; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return false;
}

/* Every key of the schema's OBJECT, whichever variant holds it. */
static void for_schema_keys(enum mtp_spec_object o, void (*fn)(enum mtp_spec_object, const char *))
{
    json_t *props = json_object_get(schema, "properties");
    const char *key;
    json_t *val;
    size_t i;
    json_t *variant;
    if (o == MTP_SPEC_OBJECT_DATASET) {
        json_object_foreach(dataset_object_properties(), key, val) fn(o, key);
        return;
    }
    if (o == MTP_SPEC_OBJECT_ROOT || o == MTP_SPEC_OBJECT_SAMPLING) {
        json_t *obj = o == MTP_SPEC_OBJECT_ROOT
                          ? props
                          : json_object_get(json_object_get(json_object_get(props, "sampling"),
                                                            "items"),
                                            "properties");
        json_object_foreach(obj, key, val) fn(o, key);
        return;
    }
    json_array_foreach(decoder_variants(), i, variant) {
        json_t *vp = json_object_get(variant, "properties");
        if (o == MTP_SPEC_OBJECT_WIRING) {
            json_object_foreach(json_object_get(json_object_get(vp, "wiring"), "properties"),
                                key, val) fn(o, key);
        } else if (strcmp(variant_type(variant), object_type(o)) == 0) {
            json_object_foreach(vp, key, val) fn(o, key);
        }
    }
}

static void expect_parser_key(enum mtp_spec_object o, const char *key)
{
    if (!parser_has(o, key))
        fail_msg("%s: the %s has key '%s', which experiments/spec.c does not accept",
                 SCHEMA_PATH, object_names[o], key);
}

static void test_schema_keys_are_the_parsers(void **state)
{
    (void)state;
    for (int o = 0; o < MTP_SPEC_OBJECT_COUNT; o++) {
        for (const char *const *k = mtp_spec_keys(o); *k; k++)
            if (!schema_property(o, *k))
                fail_msg("%s: the %s lacks key '%s', which experiments/spec.c accepts",
                         SCHEMA_PATH, object_names[o], *k);
        for_schema_keys(o, expect_parser_key);
    }
}

/* True when the schema value V (a "const" or an "enum") allows NAME. */
static bool schema_allows(json_t *v, const char *name)
{
    json_t *c = json_object_get(v, "const");
    if (json_is_string(c))
        return strcmp(json_string_value(c), name) == 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(v, "enum"), i, e) {
        if (json_is_string(e) && strcmp(json_string_value(e), name) == 0)
            return true;
    }
    return false;
}

/* NAME must be allowed by KEY of some variant of decoder type TYPE. */
static bool decoder_value_allowed(const char *type, const char *key, const char *name)
{
    size_t i;
    json_t *variant;
    json_array_foreach(decoder_variants(), i, variant) {
        json_t *p = json_object_get(json_object_get(variant, "properties"), key);
        if (strcmp(variant_type(variant), type) == 0 && p && schema_allows(p, name))
            return true;
    }
    return false;
}

static void test_schema_names_are_the_parsers(void **state)
{
    (void)state;
    size_t n_types = json_array_size(decoder_variants());
    for (int t = 0; t < MTP_SPEC_DECODER_TYPE_COUNT; t++) {
        const char *name = mtp_spec_decoder_type_name(t);
        bool found = false;
        for (size_t i = 0; i < n_types; i++)
            found = found || strcmp(variant_type(json_array_get(decoder_variants(), i)), name) == 0;
        if (!found)
            fail_msg("%s: no decoder variant of type \"%s\" (experiments/spec.c knows it)",
                     SCHEMA_PATH, name);
    }
    const enum mtp_spec_drafting drafting[] = {MTP_SPEC_DRAFTING_EXACT, MTP_SPEC_DRAFTING_CHAIN};
    for (int i = 0; i < 2; i++)
        if (!decoder_value_allowed("mtp", "drafting", mtp_spec_drafting_name(drafting[i])))
            fail_msg("%s: mtp decoders lack drafting \"%s\"", SCHEMA_PATH,
                     mtp_spec_drafting_name(drafting[i]));
    const enum mtp_spec_adaptive_rule rules[] = {MTP_SPEC_ADAPTIVE_DRAFT,
                                                 MTP_SPEC_ADAPTIVE_CUMULATIVE};
    for (int i = 0; i < 2; i++)
        if (!decoder_value_allowed("adaptive", "rule", mtp_spec_adaptive_rule_name(rules[i])))
            fail_msg("%s: adaptive decoders lack rule \"%s\"", SCHEMA_PATH,
                     mtp_spec_adaptive_rule_name(rules[i]));
    const enum mtp_spec_backend backends[] = {MTP_SPEC_BACKEND_CPU, MTP_SPEC_BACKEND_CUDA};
    for (int i = 0; i < 2; i++)
        if (!schema_allows(schema_property(MTP_SPEC_OBJECT_ROOT, "backend"),
                           mtp_spec_backend_name(backends[i])))
            fail_msg("%s: backend lacks \"%s\"", SCHEMA_PATH, mtp_spec_backend_name(backends[i]));
    /* Wiring: every value name the engine has (value 0 is the family default). */
    for (int f = 0; f < MTP_WIRING_FIELD_COUNT; f++) {
        json_t *p = schema_property(MTP_SPEC_OBJECT_WIRING, mtp_wiring_field_name(f));
        assert_non_null(p);
        for (int v = 1;; v++) {
            struct mtp_wiring w = {0};
            *(f == 0 ? (int *)&w.draft_hidden : f == 1 ? (int *)&w.position0_embedding
                                                        : (int *)&w.module_hidden) = v;
            const char *name = mtp_wiring_value_name(&w, f);
            if (strcmp(name, "default") == 0)
                break;
            if (!schema_allows(p, name))
                fail_msg("%s: wiring %s lacks \"%s\"", SCHEMA_PATH, mtp_wiring_field_name(f),
                         name);
        }
    }
}

/* ---- defaults: what the parser does when a key is absent --------------------- */

/* Everything the parser sets, as text, so two specs can be compared. */
static void spec_summary(const struct mtp_spec *s, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s|%d|%d|%d|%d|%d|%d|%d|%llu|", mtp_spec_backend_name(s->backend),
                                s->threads, s->max_prompts, s->max_prompts_per_category,
                                s->max_prompt_tokens, s->max_new_tokens, s->warmup, s->repeats,
                                (unsigned long long)s->seed);
    for (int i = 0; i < s->n_sampling && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "s%g,%g,%d|", s->sampling[i].temperature,
                              s->sampling[i].top_p, s->sampling[i].top_k);
    for (int i = 0; i < s->n_decoders && n < cap; i++) {
        const struct mtp_spec_decoder *d = &s->decoders[i];
        n += (size_t)snprintf(buf + n, cap - n, "d%s,%s,%d,%s,%d,%g,%s,%d,%d,%d,", d->name,
                              mtp_spec_decoder_type_name(d->type), d->depth,
                              mtp_spec_drafting_name(d->drafting), d->module, d->threshold,
                              mtp_spec_adaptive_rule_name(d->rule), d->draft_vocab, d->tree.kind,
                              d->tree.n);
        for (int f = 0; f < MTP_WIRING_FIELD_COUNT && n < cap; f++)
            n += (size_t)snprintf(buf + n, cap - n, "%s,", mtp_wiring_value_name(&d->wiring, f));
    }
}

/* A spec (run from the repository root) with decoder DECODER; EXTRA_ROOT and
 * EXTRA_SAMPLING are inserted into the top level and the sampling entry. */
static int parse_spec(const char *decoder, const char *extra_root, const char *extra_sampling,
                      char *summary, size_t cap)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model\": \"models/mtp-mini\", \"datasets\": [\"datasets/code.jsonl\"], "
             "\"max_new_tokens\": 8, \"output_dir\": \"runs/contract\", %s"
             "\"sampling\": [{\"temperature\": 0.5%s}], \"decoders\": [%s]}",
             extra_root, extra_sampling, decoder);
    struct mtp_spec s;
    int rc = mtp_spec_parse(text, "contract.json", ".", &s);
    if (rc)
        fprintf(stderr, "%s\n  spec: %s\n", mtp_error_message(), text);
    else
        spec_summary(&s, summary, cap);
    mtp_spec_free(&s);
    return rc;
}

/* One smallest decoder per schema variant: (type, drafting, tree?) -> JSON. */
static const char *minimal_decoder(json_t *variant)
{
    const char *type = variant_type(variant);
    json_t *props = json_object_get(variant, "properties");
    if (strcmp(type, "baseline") == 0)
        return "{\"type\": \"baseline\"";
    if (strcmp(type, "adaptive") == 0)
        return "{\"type\": \"adaptive\", \"depth\": 3, \"threshold\": 0.4";
    if (json_object_get(props, "tree"))
        return "{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": \"widths:2,1\"";
    if (schema_allows(json_object_get(props, "drafting"), "exact"))
        return "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\"";
    return "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\"";
}

/* KEY = its schema default DEF must parse like KEY absent. WHERE: 'r' root,
 * 's' sampling, 'd' decoder (BASE = the decoder without its closing brace). */
static void expect_default(char where, const char *key, json_t *def, const char *base)
{
    char *value = json_dumps(def, JSON_ENCODE_ANY);
    char set[256], dec_absent[512], dec_set[512], a[4096], b[4096];
    snprintf(set, sizeof set, where == 's' ? ", \"%s\": %s" : "\"%s\": %s, ", key, value);
    snprintf(dec_absent, sizeof dec_absent, "%s}", base ? base : "{\"type\": \"baseline\"");
    snprintf(dec_set, sizeof dec_set, "%s, \"%s\": %s}", base ? base : "", key, value);
    int ra = parse_spec(dec_absent, "", "", a, sizeof a);
    int rb = parse_spec(where == 'd' ? dec_set : dec_absent, where == 'r' ? set : "",
                        where == 's' ? set : "", b, sizeof b);
    if (ra || rb || strcmp(a, b) != 0)
        fail_msg("%s: key '%s' has \"default\": %s, but experiments/spec.c parses it %s\n"
                 "  absent: %s\n  set:    %s",
                 SCHEMA_PATH, key, value, ra || rb ? "as an error" : "differently", a, b);
    free(value);
}

static void test_schema_defaults_are_the_parsers(void **state)
{
    (void)state;
    const char *key;
    json_t *p;
    int checked = 0;
    json_object_foreach(json_object_get(schema, "properties"), key, p) {
        if (json_object_get(p, "default") && ++checked)
            expect_default('r', key, json_object_get(p, "default"), NULL);
    }
    json_t *sampling = json_object_get(
        json_object_get(schema_property(MTP_SPEC_OBJECT_ROOT, "sampling"), "items"), "properties");
    json_object_foreach(sampling, key, p) {
        if (json_object_get(p, "default") && ++checked)
            expect_default('s', key, json_object_get(p, "default"), NULL);
    }
    size_t i;
    json_t *variant;
    json_array_foreach(decoder_variants(), i, variant) {
        json_object_foreach(json_object_get(variant, "properties"), key, p) {
            if (json_object_get(p, "default") && ++checked)
                expect_default('d', key, json_object_get(p, "default"), minimal_decoder(variant));
        }
    }
    assert_true(checked >= 10); /* the walk found the schema's defaults */
}

/* ---- the reference page --------------------------------------------------- */

enum { MAX_ROWS = 64, CELL_CAP = 1024 };

struct doc_row {
    char key[64];
    char cells[6][CELL_CAP]; /* key, type, required, default, (applies to), meaning */
    int n_cells;
};

struct doc_table {
    struct doc_row rows[MAX_ROWS];
    int n;
    int default_col, applies_col; /* -1 when the table has no such column */
};

/* Split a markdown table line into cells at '|' not escaped as "\|". */
static int split_cells(const char *line, char cells[][CELL_CAP], int max)
{
    int n = -1; /* the text before the first '|' is not a cell */
    size_t len = 0;
    for (const char *c = line; *c && *c != '\n'; c++) {
        if (*c == '|' && (c == line || c[-1] != '\\')) {
            if (n >= 0 && n < max) {
                while (len && cells[n][len - 1] == ' ')
                    len--;
                cells[n][len] = '\0';
            }
            n++;
            len = 0;
            continue;
        }
        if (n >= 0 && n < max && len + 1 < CELL_CAP && !(len == 0 && *c == ' '))
            cells[n][len++] = *c;
    }
    return n < 0 ? 0 : n;
}

/* The first table after the heading HEADING in the page. */
static void read_table(const char *heading, struct doc_table *t)
{
    FILE *f = fopen(DOC_PATH, "r");
    assert_non_null(f);
    char line[4096];
    bool in_section = false, in_table = false;
    memset(t, 0, sizeof *t);
    t->default_col = t->applies_col = -1;
    while (fgets(line, sizeof line, f)) {
        if (!in_section) {
            in_section = strncmp(line, heading, strlen(heading)) == 0 &&
                         (line[strlen(heading)] == '\n' || line[strlen(heading)] == '\0');
            continue;
        }
        if (line[0] != '|') {
            if (in_table)
                break;
            continue;
        }
        char cells[6][CELL_CAP];
        int n = split_cells(line, cells, 6);
        if (!in_table) { /* the header row */
            in_table = true;
            for (int c = 0; c < n && c < 6; c++) {
                if (strcmp(cells[c], "default") == 0)
                    t->default_col = c;
                if (strcmp(cells[c], "applies to") == 0)
                    t->applies_col = c;
            }
            continue;
        }
        if (cells[0][0] != '`' || t->n == MAX_ROWS)
            continue; /* the |---| line */
        struct doc_row *r = &t->rows[t->n++];
        snprintf(r->key, sizeof r->key, "%.*s", (int)strcspn(cells[0] + 1, "`"), cells[0] + 1);
        memcpy(r->cells, cells, sizeof cells);
        r->n_cells = n;
    }
    fclose(f);
    if (!in_table)
        fail_msg("%s: no table under \"%s\"", DOC_PATH, heading);
}

static const struct doc_row *doc_row(const struct doc_table *t, const char *key)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].key, key) == 0)
            return &t->rows[i];
    return NULL;
}

/* The page's default cell: empty, or one JSON literal in backticks. */
static void expect_doc_default(const char *key, const struct doc_row *r, int col, json_t *def)
{
    const char *cell = col >= 0 && col < r->n_cells ? r->cells[col] : "";
    size_t n = strlen(cell);
    json_t *shown = NULL;
    if (n >= 2 && cell[0] == '`' && strchr(cell + 1, '`') == cell + n - 1) {
        char lit[CELL_CAP];
        snprintf(lit, sizeof lit, "%.*s", (int)n - 2, cell + 1);
        shown = json_loads(lit, JSON_DECODE_ANY, NULL);
    }
    if (def && !(shown && json_equal(shown, def))) {
        char *d = json_dumps(def, JSON_ENCODE_ANY);
        fail_msg("%s: key '%s': default column shows '%s', expected `%s` (the schema's "
                 "default, which the parser applies)", DOC_PATH, key, cell, d);
    }
    if (!def && shown)
        fail_msg("%s: key '%s': default column shows %s, but the schema has no default (a "
                 "default that is not a value belongs in the meaning column)", DOC_PATH, key,
                 cell);
    json_decref(shown);
}

/* Rows of T must be exactly the keys of the objects in OBJS. */
static void expect_rows(const char *heading, const struct doc_table *t,
                        const enum mtp_spec_object *objs, int n_objs)
{
    for (int i = 0; i < n_objs; i++)
        for (const char *const *k = mtp_spec_keys(objs[i]); *k; k++)
            if (!doc_row(t, *k))
                fail_msg("%s: \"%s\" has no row for key '%s' (experiments/spec.c accepts it in "
                         "a %s)", DOC_PATH, heading, *k, object_names[objs[i]]);
    for (int r = 0; r < t->n; r++) {
        bool known = false;
        for (int i = 0; i < n_objs; i++)
            known = known || parser_has(objs[i], t->rows[r].key);
        if (!known)
            fail_msg("%s: \"%s\" documents key '%s', which experiments/spec.c does not accept",
                     DOC_PATH, heading, t->rows[r].key);
    }
}

static void test_doc_keys_and_defaults(void **state)
{
    (void)state;
    static struct doc_table t;
    enum mtp_spec_object root = MTP_SPEC_OBJECT_ROOT, sampling = MTP_SPEC_OBJECT_SAMPLING;
    read_table("## Keys", &t);
    expect_rows("## Keys", &t, &root, 1);
    assert_true(t.default_col > 0);
    for (int r = 0; r < t.n; r++) {
        json_t *p = schema_property(root, t.rows[r].key);
        expect_doc_default(t.rows[r].key, &t.rows[r], t.default_col, json_object_get(p, "default"));
    }
    enum mtp_spec_object dataset = MTP_SPEC_OBJECT_DATASET;
    read_table("### Dataset object", &t);
    expect_rows("### Dataset object", &t, &dataset, 1);
    assert_true(t.default_col > 0);
    for (int r = 0; r < t.n; r++) {
        json_t *p = schema_property(dataset, t.rows[r].key);
        expect_doc_default(t.rows[r].key, &t.rows[r], t.default_col, json_object_get(p, "default"));
    }
    read_table("### Sampling object", &t);
    expect_rows("### Sampling object", &t, &sampling, 1);
    assert_true(t.default_col > 0);
    for (int r = 0; r < t.n; r++) {
        json_t *p = schema_property(sampling, t.rows[r].key);
        expect_doc_default(t.rows[r].key, &t.rows[r], t.default_col, json_object_get(p, "default"));
    }
}

static void test_doc_decoders(void **state)
{
    (void)state;
    static struct doc_table t;
    const enum mtp_spec_object types[] = {MTP_SPEC_OBJECT_BASELINE, MTP_SPEC_OBJECT_MTP,
                                          MTP_SPEC_OBJECT_ADAPTIVE};
    read_table("### Decoder object", &t);
    expect_rows("### Decoder object", &t, types, 3);
    assert_true(t.default_col > 0 && t.applies_col > 0);
    for (int r = 0; r < t.n; r++) {
        const struct doc_row *row = &t.rows[r];
        const char *applies = row->cells[t.applies_col];
        json_t *def = NULL;
        for (int i = 0; i < 3; i++) {
            char quoted[32];
            snprintf(quoted, sizeof quoted, "`%s`", object_type(types[i]));
            bool said = strcmp(applies, "all") == 0 || strstr(applies, quoted) != NULL;
            if (said != parser_has(types[i], row->key))
                fail_msg("%s: decoder key '%s': \"applies to\" is '%s', but experiments/spec.c "
                         "%s it for type \"%s\"", DOC_PATH, row->key, applies,
                         said ? "refuses" : "accepts", object_type(types[i]));
            json_t *p = schema_property(types[i], row->key);
            if (!def && json_object_get(p, "default"))
                def = json_object_get(p, "default");
        }
        expect_doc_default(row->key, row, t.default_col, def);
    }
    /* Every decoder type and wiring field is named on the page. */
    FILE *f = fopen(DOC_PATH, "r");
    assert_non_null(f);
    static char page[1 << 17];
    size_t n = fread(page, 1, sizeof page - 1, f);
    page[n] = '\0';
    fclose(f);
    for (int ty = 0; ty < MTP_SPEC_DECODER_TYPE_COUNT; ty++) {
        char quoted[32];
        snprintf(quoted, sizeof quoted, "`\"%s\"`", mtp_spec_decoder_type_name(ty));
        if (!strstr(page, quoted))
            fail_msg("%s: decoder type %s is not named", DOC_PATH, quoted);
    }
    for (const char *const *k = mtp_spec_keys(MTP_SPEC_OBJECT_WIRING); *k; k++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "`%s`", *k);
        if (!strstr(page, quoted))
            fail_msg("%s: wiring field %s is not named", DOC_PATH, quoted);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_keys_are_the_parsers),
        cmocka_unit_test(test_schema_names_are_the_parsers),
        cmocka_unit_test(test_schema_defaults_are_the_parsers),
        cmocka_unit_test(test_doc_keys_and_defaults),
        cmocka_unit_test(test_doc_decoders),
    };
    return cmocka_run_group_tests(tests, load_schema, free_schema);
}
