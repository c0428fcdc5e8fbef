/*
 * spec.c - parse and validate experiment specs (see spec.h and
 * spec/experiment-spec.md).
 *
 * The parser walks the JSON tree once, keeping the key path of the value it is
 * looking at ("decoders[2].depth"), so every message can name it. Nothing is
 * accepted silently: each object's keys are checked against the allowed list
 * before its values are read.
 */
#include "spec.h"
#include "spec_tree.h"

#include <errno.h>    /* defines: errno */
#include <fcntl.h>    /* defines: O_RDONLY */
#include <jansson.h>  /* defines: json_t, json_loads */
#include <stdbool.h>
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: free */
#include <string.h>   /* defines: strcmp, strrchr, strerror */
#include <sys/stat.h> /* defines: stat, S_ISDIR */
#include <unistd.h>   /* defines: close */

#include "../engine/draft_vocab.h" /* defines: mtp_token_freq_load, MTP_TOKEN_FREQ_FILE */
#include "../core/error.h"
#include "../engine/input_file.h" /* defines: mtp_input_open, mtp_input_fopen */
#include "../kernels/backend.h"      /* defines: MTP_MAX_THREADS */
#include "dataset.h" /* defines: mtp_dataset_name_from_path */

enum { KEY_CAP = 128, BRIEF_CAP = 64 };

struct parse {
    const char *src;      /* file name for messages */
    const char *base_dir; /* for relative paths; NULL = as given */
};

/* The keys each object of a spec accepts (NULL-terminated). The parser checks
 * every object against its list, and mtp_spec_keys hands the same lists to
 * tests/test_spec_contract.c, which holds the JSON Schema and
 * spec/experiment-spec.md to them: a key added here and not there fails it. */
static const char *const root_keys[] = {
    "$schema", "name", "description", "model", "backend", "threads", "datasets",
    "max_prompts", "max_prompts_per_category", "max_prompt_tokens", "max_new_tokens", "warmup",
    "repeats", "seed", "chat_template", "batch_size",
    "sampling", "decoders", "output_dir", NULL};
static const char *const dataset_keys[] = {"path", "chat_template", NULL};
static const char *const sampling_keys[] = {"temperature", "top_p", "top_k", NULL};
static const char *const baseline_keys[] = {"name", "type", NULL};
static const char *const mtp_keys[] = {"name", "type", "depth", "drafting", "module", "wiring",
                                       "tree", "draft_vocab", NULL};
static const char *const adaptive_keys[] = {"name", "type", "depth", "threshold", "rule",
                                            "module", "wiring", "draft_vocab", NULL};
static const char *const wiring_keys[] = {"draft_hidden", "position0_embedding", "module_hidden",
                                          NULL};

const char *const *mtp_spec_keys(enum mtp_spec_object object)
{
    switch (object) {
    case MTP_SPEC_OBJECT_ROOT: return root_keys;
    case MTP_SPEC_OBJECT_SAMPLING: return sampling_keys;
    case MTP_SPEC_OBJECT_BASELINE: return baseline_keys;
    case MTP_SPEC_OBJECT_MTP: return mtp_keys;
    case MTP_SPEC_OBJECT_ADAPTIVE: return adaptive_keys;
    case MTP_SPEC_OBJECT_WIRING: return wiring_keys;
    case MTP_SPEC_OBJECT_DATASET: return dataset_keys;
    }
    return NULL;
}

/* A short rendering of a JSON value for "found ..." (truncated; never NULL). */
static void json_brief(const json_t *v, char *buf, size_t cap)
{
    if (!v) {
        snprintf(buf, cap, "nothing");
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, cap, "?");
        return;
    }
    if (strlen(s) >= cap)
        snprintf(buf, cap, "%.*s...", (int)cap - 4, s);
    else
        snprintf(buf, cap, "%s", s);
    free(s);
}

static int fail_expected(const struct parse *p, const char *key, const char *expected,
                         const json_t *found)
{
    char brief[BRIEF_CAP];
    json_brief(found, brief, sizeof brief);
    return mtp_error_set("SPEC: %s: key '%s': expected %s, found %s", p->src, key, expected,
                         brief);
}

/* OUT (KEY_CAP bytes) = "PREFIX.KEY", or KEY at the top level. Key paths are
 * short; a pathological one is cut, never overflowed. */
static void key_join(char *out, const char *prefix, const char *key)
{
    size_t n = 0;
    const char *parts[3] = {prefix && prefix[0] ? prefix : "", prefix && prefix[0] ? "." : "",
                            key};
    for (int i = 0; i < 3; i++)
        for (const char *c = parts[i]; *c && n + 1 < KEY_CAP; c++)
            out[n++] = *c;
    out[n] = '\0';
}

/* Fail on the first key of OBJ that is not in ALLOWED (NULL-terminated). */
static int check_keys(const struct parse *p, json_t *obj, const char *prefix,
                      const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (ok)
            continue;
        char path[KEY_CAP], list[256] = "";
        key_join(path, prefix, key);
        for (int i = 0; allowed[i]; i++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", allowed[i]);
        }
        return mtp_error_set("SPEC: %s: key '%s': unknown key (allowed here: %s)", p->src, path,
                             list);
    }
    return MTP_OK;
}

static int missing(const struct parse *p, const char *prefix, const char *key)
{
    char path[KEY_CAP];
    key_join(path, prefix, key);
    return mtp_error_set("SPEC: %s: key '%s': missing (required)", p->src, path);
}

/* Integer OBJ[KEY] in [lo, hi] into OUT; absent: DEF if !required. */
static int get_int(const struct parse *p, json_t *obj, const char *prefix, const char *key,
                   bool required, long long def, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = def;
        return required ? missing(p, prefix, key) : MTP_OK;
    }
    char path[KEY_CAP], expected[96];
    key_join(path, prefix, key);
    /* Name the bound that was broken: "integer >= 1" for "three" or 0. */
    if (json_is_integer(v) && json_integer_value(v) > hi) {
        snprintf(expected, sizeof expected, "integer <= %lld", hi);
        return fail_expected(p, path, expected, v);
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo) {
        snprintf(expected, sizeof expected, "integer >= %lld", lo);
        return fail_expected(p, path, expected, v);
    }
    *out = json_integer_value(v);
    return MTP_OK;
}

static int get_int32(const struct parse *p, json_t *obj, const char *prefix, const char *key,
                     bool required, int def, int lo, int *out)
{
    long long v;
    int rc = get_int(p, obj, prefix, key, required, def, lo, INT32_MAX, &v);
    *out = (int)v;
    return rc;
}

/* String OBJ[KEY] (non-empty) into a new copy; absent: copy of DEF if !required. */
static int get_string(const struct parse *p, json_t *obj, const char *prefix, const char *key,
                      bool required, const char *def, char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = def ? mtp_xstrdup(def) : NULL;
        return required ? missing(p, prefix, key) : MTP_OK;
    }
    char path[KEY_CAP];
    key_join(path, prefix, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail_expected(p, path, "non-empty string", v);
    *out = mtp_xstrdup(json_string_value(v));
    return MTP_OK;
}

/* REL resolved against the spec's directory (absolute paths stay as they are). */
static char *resolve_path(const struct parse *p, const char *rel)
{
    if (rel[0] == '/' || !p->base_dir || !p->base_dir[0] || strcmp(p->base_dir, ".") == 0)
        return mtp_xstrdup(rel);
    size_t n = strlen(p->base_dir) + strlen(rel) + 2;
    char *s = mtp_xmalloc(n);
    snprintf(s, n, "%s/%s", p->base_dir, rel);
    return s;
}

static int parse_model(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    char *rel;
    if (get_string(p, root, "", "model", true, NULL, &rel))
        return MTP_ERR;
    spec->model_dir = resolve_path(p, rel);
    free(rel);
    struct stat st;
    if (stat(spec->model_dir, &st) != 0)
        return mtp_error_set("SPEC: %s: key 'model': model directory %s: %s", p->src,
                             spec->model_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mtp_error_set("SPEC: %s: key 'model': expected a model directory, found a file: %s",
                             p->src, spec->model_dir);
    return MTP_OK;
}

static int parse_backend(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    char *name;
    if (get_string(p, root, "", "backend", false, "cpu", &name))
        return MTP_ERR;
    int rc = MTP_OK;
    if (strcmp(name, "cpu") == 0)
        spec->backend = MTP_SPEC_BACKEND_CPU;
    else if (strcmp(name, "cuda") == 0)
        spec->backend = MTP_SPEC_BACKEND_CUDA;
    else
        rc = fail_expected(p, "backend", "\"cpu\" or \"cuda\"", json_object_get(root, "backend"));
    free(name);
    return rc;
}

/* A dataset file must exist, be a regular file and open for reading now, so a
 * typo fails before hours of decoding rather than when its turn comes. */
static int check_readable(const struct parse *p, const char *key, const char *path)
{
    int fd = mtp_input_open(path, NULL); /* non-blocking: a FIFO fails here, never hangs */
    if (fd < 0)
        return mtp_error_wrap("SPEC: %s: key '%s': dataset file ", p->src, key);
    close(fd);
    return MTP_OK;
}

/* "none", "model", or a template file (resolved, readable now) into *OUT;
 * DEF when KEY is absent from OBJ. */
static int parse_chat_template(const struct parse *p, json_t *obj, const char *prefix,
                               const char *def, char **out)
{
    char *v = NULL;
    if (get_string(p, obj, prefix, "chat_template", false, def, &v))
        return MTP_ERR;
    if (!json_object_get(obj, "chat_template") || !strcmp(v, "none") || !strcmp(v, "model")) {
        *out = v;
        return MTP_OK;
    }
    *out = resolve_path(p, v);
    free(v);
    char key[KEY_CAP];
    key_join(key, prefix, "chat_template");
    int fd = mtp_input_open(*out, NULL);
    if (fd < 0)
        return mtp_error_wrap("SPEC: %s: key '%s': expected \"none\", \"model\" or a Jinja "
                              "template file; ", p->src, key);
    close(fd);
    return MTP_OK;
}

/* datasets[I]: a path, or {"path", "chat_template"}; into the spec's arrays. */
static int parse_one_dataset(const struct parse *p, json_t *v, size_t i, const char *root_tpl,
                             struct mtp_spec *spec)
{
    char key[KEY_CAP];
    snprintf(key, sizeof key, "datasets[%zu]", i);
    json_t *path = v;
    if (json_is_object(v)) {
        if (check_keys(p, v, key, dataset_keys))
            return MTP_ERR;
        path = json_object_get(v, "path");
        if (!path)
            return missing(p, key, "path");
        snprintf(key, sizeof key, "datasets[%zu].path", i);
    }
    if (!json_is_string(path) || json_string_length(path) == 0)
        return fail_expected(p, key, "non-empty string (a JSONL file path) or an object "
                             "{\"path\", \"chat_template\"}", v);
    spec->datasets[i] = resolve_path(p, json_string_value(path));
    spec->dataset_names[i] = mtp_dataset_name_from_path(spec->datasets[i]);
    spec->n_datasets = (int)i + 1;
    if (check_readable(p, key, spec->datasets[i]))
        return MTP_ERR;
    snprintf(key, sizeof key, "datasets[%zu]", i);
    if (!json_is_object(v)) {
        spec->chat_templates[i] = mtp_xstrdup(root_tpl);
        return MTP_OK;
    }
    return parse_chat_template(p, v, key, root_tpl, &spec->chat_templates[i]);
}

static int parse_datasets(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    json_t *arr = json_object_get(root, "datasets");
    if (!arr)
        return missing(p, "", "datasets");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail_expected(p, "datasets", "non-empty array of file paths", arr);
    char *root_tpl = NULL;
    if (parse_chat_template(p, root, "", "none", &root_tpl)) {
        free(root_tpl);
        return MTP_ERR;
    }
    size_t n = json_array_size(arr);
    spec->datasets = mtp_xcalloc(n, sizeof *spec->datasets);
    spec->dataset_names = mtp_xcalloc(n, sizeof *spec->dataset_names);
    spec->chat_templates = mtp_xcalloc(n, sizeof *spec->chat_templates);
    int rc = MTP_OK;
    for (size_t i = 0; rc == MTP_OK && i < n; i++) {
        rc = parse_one_dataset(p, json_array_get(arr, i), i, root_tpl, spec);
        for (size_t j = 0; rc == MTP_OK && j < i; j++)
            if (strcmp(spec->dataset_names[j], spec->dataset_names[i]) == 0)
                rc = mtp_error_set("SPEC: %s: key 'datasets[%zu]': dataset name \"%s\" (the "
                                   "file stem) repeats datasets[%zu]; logs key prompts by it",
                                   p->src, i, spec->dataset_names[i], j);
    }
    free(root_tpl);
    return rc;
}

static int get_number(const struct parse *p, json_t *obj, const char *prefix, const char *key,
                      bool required, double def, double *out)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v)
        return required ? missing(p, prefix, key) : MTP_OK;
    char path[KEY_CAP];
    key_join(path, prefix, key);
    if (!json_is_number(v))
        return fail_expected(p, path, "number", v);
    *out = json_number_value(v);
    return MTP_OK;
}

static int parse_one_sampling(const struct parse *p, json_t *v, const char *prefix,
                              struct mtp_spec_sampling *s)
{
    if (!json_is_object(v))
        return fail_expected(p, prefix, "object {temperature, top_p?, top_k?}", v);
    if (check_keys(p, v, prefix, sampling_keys))
        return MTP_ERR;
    char path[KEY_CAP];
    if (get_number(p, v, prefix, "temperature", true, 0, &s->temperature))
        return MTP_ERR;
    key_join(path, prefix, "temperature");
    if (!(s->temperature >= 0))
        return fail_expected(p, path, "number >= 0 (0 = greedy)", json_object_get(v, "temperature"));
    if (get_number(p, v, prefix, "top_p", false, 1.0, &s->top_p))
        return MTP_ERR;
    key_join(path, prefix, "top_p");
    if (!(s->top_p > 0 && s->top_p <= 1))
        return fail_expected(p, path, "number in (0, 1]", json_object_get(v, "top_p"));
    return get_int32(p, v, prefix, "top_k", false, 0, 0, &s->top_k);
}

static int parse_sampling(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    json_t *arr = json_object_get(root, "sampling");
    if (!arr)
        return missing(p, "", "sampling");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail_expected(p, "sampling", "non-empty array of {temperature, top_p?, top_k?}",
                             arr);
    size_t n = json_array_size(arr);
    spec->sampling = mtp_xcalloc(n, sizeof *spec->sampling);
    spec->n_sampling = (int)n;
    for (size_t i = 0; i < n; i++) {
        char key[KEY_CAP];
        snprintf(key, sizeof key, "sampling[%zu]", i);
        struct mtp_spec_sampling *s = &spec->sampling[i];
        if (parse_one_sampling(p, json_array_get(arr, i), key, s))
            return MTP_ERR;
        for (size_t j = 0; j < i; j++) {
            const struct mtp_spec_sampling *o = &spec->sampling[j];
            if (o->temperature == s->temperature && o->top_p == s->top_p && o->top_k == s->top_k)
                return mtp_error_set("SPEC: %s: key '%s': duplicate of sampling[%zu]", p->src,
                                     key, j);
        }
    }
    return MTP_OK;
}

/* Decoder names go into logs, tables and file names: keep them plain. */
static bool name_is_plain(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A name that becomes a file name inside output_dir: plain characters, and
 * not "." or "..", so it cannot name a directory or climb out of output_dir. */
static bool name_is_file_name(const char *s)
{
    return name_is_plain(s) && s[0] && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The optional "wiring" object: each field one of its named choices. */
static int parse_wiring(const struct parse *p, json_t *v, const char *prefix,
                        struct mtp_spec_decoder *d)
{
    char path[KEY_CAP];
    json_t *w = json_object_get(v, "wiring");
    key_join(path, prefix, "wiring");
    if (!w)
        return MTP_OK;
    if (!json_is_object(w))
        return fail_expected(p, path, "object {draft_hidden, position0_embedding, module_hidden}",
                             w);
    if (check_keys(p, w, path, wiring_keys))
        return MTP_ERR;
    for (int f = 0; f < MTP_WIRING_FIELD_COUNT; f++) {
        const char *name = mtp_wiring_field_name(f);
        json_t *x = json_object_get(w, name);
        char fpath[KEY_CAP];
        key_join(fpath, path, name);
        if (x && (!json_is_string(x) || mtp_wiring_set(&d->wiring, f, json_string_value(x))))
            return fail_expected(p, fpath, mtp_wiring_field_choices(f), x);
    }
    return MTP_OK;
}

/* {"type": "adaptive", "depth": K (at most), "threshold": t, "rule"?,
 * "module"?, "wiring"?, "name"?}: always chained drafting. */
static int parse_adaptive_fields(const struct parse *p, json_t *v, const char *prefix,
                                 struct mtp_spec_decoder *d)
{
    if (check_keys(p, v, prefix, adaptive_keys) || parse_wiring(p, v, prefix, d))
        return MTP_ERR;
    long long depth;
    if (get_int(p, v, prefix, "depth", true, 0, 1, MTP_SPEC_MAX_DEPTH, &depth))
        return MTP_ERR;
    d->depth = (int)depth;
    d->drafting = MTP_SPEC_DRAFTING_CHAIN;
    if (get_int32(p, v, prefix, "draft_vocab", false, 0, 1, &d->draft_vocab))
        return MTP_ERR;
    char path[KEY_CAP];
    key_join(path, prefix, "threshold");
    if (get_number(p, v, prefix, "threshold", true, 0, &d->threshold))
        return MTP_ERR;
    if (!(d->threshold >= 0 && d->threshold <= 1))
        return fail_expected(p, path, "number in [0, 1]", json_object_get(v, "threshold"));
    json_t *rule = json_object_get(v, "rule");
    key_join(path, prefix, "rule");
    d->rule = MTP_SPEC_ADAPTIVE_CUMULATIVE;
    if (rule && json_is_string(rule) && strcmp(json_string_value(rule), "draft") == 0)
        d->rule = MTP_SPEC_ADAPTIVE_DRAFT;
    else if (rule && !(json_is_string(rule) && strcmp(json_string_value(rule), "cumulative") == 0))
        return fail_expected(p, path, "\"draft\" or \"cumulative\"", rule);
    return get_int32(p, v, prefix, "module", false, 1, 1, &d->module);
}

static int parse_mtp_fields(const struct parse *p, json_t *v, const char *prefix,
                            struct mtp_spec_decoder *d)
{
    if (check_keys(p, v, prefix, mtp_keys) || parse_wiring(p, v, prefix, d))
        return MTP_ERR;
    long long depth;
    json_t *tree = json_object_get(v, "tree");
    if (tree && json_object_get(v, "depth"))
        return mtp_error_set("SPEC: %s: key '%s.depth': not allowed with \"tree\" (the tree "
                             "sets the depth)", p->src, prefix);
    if (tree && mtp_spec_tree_parse(p->src, tree, prefix, d))
        return MTP_ERR;
    if (!tree && get_int(p, v, prefix, "depth", true, 0, 1, MTP_SPEC_MAX_DEPTH, &depth))
        return MTP_ERR;
    if (!tree)
        d->depth = (int)depth;
    /* 0 is not a valid value: full vocabulary is the key's absence. */
    if (get_int32(p, v, prefix, "draft_vocab", false, 0, 1, &d->draft_vocab))
        return MTP_ERR;
    if (tree && d->draft_vocab > 0)
        return mtp_error_set("SPEC: %s: key '%s.draft_vocab': not supported with \"tree\" (tree "
                             "drafts take their candidates from the full head)", p->src, prefix);
    json_t *dr = json_object_get(v, "drafting");
    char path[KEY_CAP];
    key_join(path, prefix, "drafting");
    if (!dr)
        return missing(p, prefix, "drafting");
    if (json_is_string(dr) && strcmp(json_string_value(dr), "exact") == 0)
        d->drafting = MTP_SPEC_DRAFTING_EXACT;
    else if (json_is_string(dr) && strcmp(json_string_value(dr), "chain") == 0)
        d->drafting = MTP_SPEC_DRAFTING_CHAIN;
    else
        return fail_expected(p, path, "\"exact\" or \"chain\"", dr);
    if (d->drafting == MTP_SPEC_DRAFTING_EXACT) {
        key_join(path, prefix, "module");
        if (json_object_get(v, "module"))
            return mtp_error_set("SPEC: %s: key '%s': only allowed with \"drafting\": \"chain\" "
                                 "(exact drafting uses modules 1..depth)",
                                 p->src, path);
        return MTP_OK;
    }
    return get_int32(p, v, prefix, "module", false, 1, 1, &d->module);
}

/* "-value" for every wiring field the spec sets, so that decoders differing
 * only in wiring get distinct default names. */
static void wiring_suffix(const struct mtp_spec_decoder *d, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int f = 0; f < MTP_WIRING_FIELD_COUNT; f++) {
        const char *v = mtp_wiring_value_name(&d->wiring, f);
        if (strcmp(v, "default") && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "-%s", v);
    }
}

static void default_decoder_name(struct mtp_spec_decoder *d)
{
    char buf[160], suffix[96], vocab[24] = "", full[300];
    if (d->type == MTP_SPEC_DECODER_BASELINE)
        snprintf(buf, sizeof buf, "baseline");
    else if (d->type == MTP_SPEC_DECODER_ADAPTIVE)
        snprintf(buf, sizeof buf, "adaptive-%s%g-k%d-m%d",
                 d->rule == MTP_SPEC_ADAPTIVE_DRAFT ? "p" : "cum", d->threshold, d->depth,
                 d->module);
    else if (d->tree.kind != MTP_TREE_NONE)
        mtp_spec_tree_name(d, buf, sizeof buf);
    else if (d->drafting == MTP_SPEC_DRAFTING_CHAIN && d->module != 1)
        snprintf(buf, sizeof buf, "mtp-chain-k%d-m%d", d->depth, d->module);
    else
        snprintf(buf, sizeof buf, "mtp-%s-k%d", mtp_spec_drafting_name(d->drafting), d->depth);
    wiring_suffix(d, suffix, sizeof suffix);
    if (d->draft_vocab > 0)
        snprintf(vocab, sizeof vocab, "-v%d", d->draft_vocab);
    snprintf(full, sizeof full, "%s%s%s", buf, vocab, suffix);
    d->name = mtp_xstrdup(full);
}

static int parse_one_decoder(const struct parse *p, json_t *v, const char *prefix,
                             struct mtp_spec_decoder *d)
{
    if (!json_is_object(v))
        return fail_expected(p, prefix, "object {type, ...}", v);
    json_t *type = json_object_get(v, "type");
    char path[KEY_CAP];
    key_join(path, prefix, "type");
    if (!type)
        return missing(p, prefix, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "baseline") == 0) {
        d->type = MTP_SPEC_DECODER_BASELINE;
        d->drafting = MTP_SPEC_DRAFTING_NONE;
        if (check_keys(p, v, prefix, baseline_keys))
            return MTP_ERR;
    } else if (json_is_string(type) && strcmp(json_string_value(type), "mtp") == 0) {
        d->type = MTP_SPEC_DECODER_MTP;
        if (parse_mtp_fields(p, v, prefix, d))
            return MTP_ERR;
    } else if (json_is_string(type) && strcmp(json_string_value(type), "adaptive") == 0) {
        d->type = MTP_SPEC_DECODER_ADAPTIVE;
        if (parse_adaptive_fields(p, v, prefix, d))
            return MTP_ERR;
    } else {
        return fail_expected(p, path, "\"baseline\", \"mtp\" or \"adaptive\"", type);
    }
    if (get_string(p, v, prefix, "name", false, NULL, &d->name))
        return MTP_ERR;
    key_join(path, prefix, "name");
    if (d->name && !name_is_file_name(d->name))
        return fail_expected(p, path, "name of letters, digits, '.', '_', '-'",
                             json_object_get(v, "name"));
    if (!d->name)
        default_decoder_name(d);
    return MTP_OK;
}

static int parse_decoders(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    json_t *arr = json_object_get(root, "decoders");
    if (!arr)
        return missing(p, "", "decoders");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail_expected(p, "decoders", "non-empty array of decoders", arr);
    size_t n = json_array_size(arr);
    spec->decoders = mtp_xcalloc(n, sizeof *spec->decoders);
    spec->n_decoders = (int)n;
    for (size_t i = 0; i < n; i++) {
        char key[KEY_CAP];
        snprintf(key, sizeof key, "decoders[%zu]", i);
        struct mtp_spec_decoder *d = &spec->decoders[i];
        if (parse_one_decoder(p, json_array_get(arr, i), key, d))
            return MTP_ERR;
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->decoders[j].name, d->name) == 0)
                return mtp_error_set("SPEC: %s: key '%s.name': duplicate decoder name \"%s\" "
                                     "(also decoders[%zu]; give one a \"name\")",
                                     p->src, key, d->name, j);
    }
    return MTP_OK;
}

static int parse_scalars(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    long long seed;
    long long threads;
    if (get_int(p, root, "", "threads", false, 0, 0, MTP_MAX_THREADS, &threads) ||
        get_int32(p, root, "", "max_prompts", false, 0, 0, &spec->max_prompts) ||
        get_int32(p, root, "", "max_prompts_per_category", false, 0, 0,
                  &spec->max_prompts_per_category) ||
        get_int32(p, root, "", "max_prompt_tokens", false, 0, 0, &spec->max_prompt_tokens) ||
        get_int32(p, root, "", "max_new_tokens", true, 0, 1, &spec->max_new_tokens) ||
        get_int32(p, root, "", "warmup", false, 0, 0, &spec->warmup) ||
        get_int32(p, root, "", "repeats", false, 1, 1, &spec->repeats) ||
        get_int(p, root, "", "seed", false, 0, 0, INT64_MAX, &seed))
        return MTP_ERR;
    spec->threads = (int)threads;
    spec->seed = (uint64_t)seed;
    /* Two selections of one set would need an order between them; one is enough. */
    if (spec->max_prompts > 0 && spec->max_prompts_per_category > 0)
        return mtp_error_set("SPEC: %s: keys 'max_prompts' and 'max_prompts_per_category': "
                             "expected at most one of them, found both (%d and %d)",
                             p->src, spec->max_prompts, spec->max_prompts_per_category);
    return MTP_OK;
}

/* "batch_size": one integer or a non-empty list of distinct ones, each
 * 1..MTP_SPEC_MAX_BATCH (absent: [1]). */
static int parse_one_batch_size(const struct parse *p, json_t *v, const char *key, int *out)
{
    char expected[96];
    snprintf(expected, sizeof expected, "integer 1..%d (the largest batch the decoder runs)",
             MTP_SPEC_MAX_BATCH);
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > MTP_SPEC_MAX_BATCH)
        return fail_expected(p, key, expected, v);
    *out = (int)json_integer_value(v);
    return MTP_OK;
}

static int parse_batch_sizes(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    json_t *v = json_object_get(root, "batch_size");
    size_t n = !v ? 1 : json_is_array(v) ? json_array_size(v) : 1;
    if (v && json_is_array(v) && n == 0)
        return fail_expected(p, "batch_size", "an integer or a non-empty list of integers", v);
    spec->batch_sizes = mtp_xcalloc(n, sizeof *spec->batch_sizes);
    spec->n_batch_sizes = (int)n;
    if (!v) {
        spec->batch_sizes[0] = 1;
        return MTP_OK;
    }
    if (!json_is_array(v))
        return parse_one_batch_size(p, v, "batch_size", &spec->batch_sizes[0]);
    for (size_t i = 0; i < n; i++) {
        char key[KEY_CAP];
        snprintf(key, sizeof key, "batch_size[%zu]", i);
        if (parse_one_batch_size(p, json_array_get(v, i), key, &spec->batch_sizes[i]))
            return MTP_ERR;
        for (size_t j = 0; j < i; j++)
            if (spec->batch_sizes[j] == spec->batch_sizes[i])
                return mtp_error_set("SPEC: %s: key '%s': batch size %d is listed twice (also "
                                     "batch_size[%zu])", p->src, key, spec->batch_sizes[i], j);
    }
    return MTP_OK;
}

int mtp_spec_max_batch_size(const struct mtp_spec *spec)
{
    int m = 1;
    for (int i = 0; i < spec->n_batch_sizes; i++)
        if (spec->batch_sizes[i] > m)
            m = spec->batch_sizes[i];
    return m;
}

static int parse_output(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    char *rel;
    if (get_string(p, root, "", "output_dir", true, NULL, &rel))
        return MTP_ERR;
    spec->output_dir = resolve_path(p, rel);
    free(rel);
    return MTP_OK;
}

static int parse_root(const struct parse *p, json_t *root, struct mtp_spec *spec)
{
    if (!json_is_object(root))
        return fail_expected(p, "(top level)", "JSON object", root);
    if (check_keys(p, root, "", root_keys))
        return MTP_ERR;
    json_t *schema = json_object_get(root, "$schema");
    if (schema && !json_is_string(schema))
        return fail_expected(p, "$schema", "string", schema);
    char *stem = mtp_dataset_name_from_path(p->src);
    int rc = get_string(p, root, "", "name", false, stem, &spec->name);
    free(stem);
    if (!rc && !name_is_file_name(spec->name)) /* the log is output_dir/NAME.msgpack */
        rc = json_object_get(root, "name")
                 ? fail_expected(p, "name", "a plain file name (letters, digits, '.', '_', "
                                 "'-'; not '.' or '..')", json_object_get(root, "name"))
                 : mtp_error_set("SPEC: %s: the spec's file name gives the run name \"%s\"; "
                                 "expected a plain file name: set \"name\"", p->src, spec->name);
    if (rc || get_string(p, root, "", "description", false, "", &spec->description))
        return MTP_ERR;
    if (parse_model(p, root, spec) || parse_backend(p, root, spec) ||
        parse_scalars(p, root, spec) || parse_datasets(p, root, spec) ||
        parse_sampling(p, root, spec) || parse_decoders(p, root, spec) ||
        parse_batch_sizes(p, root, spec) ||
        parse_output(p, root, spec))
        return MTP_ERR;
    spec->json_text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    MTP_CHECK(spec->json_text != NULL);
    return MTP_OK;
}

int mtp_spec_parse(const char *json_text, const char *source, const char *base_dir,
                   struct mtp_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->path = mtp_xstrdup(source ? source : "<string>");
    struct parse p = {.src = spec->path, .base_dir = base_dir};
    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mtp_error_set("SPEC: %s: line %d column %d: invalid JSON: %s", p.src, jerr.line,
                             jerr.column, jerr.text);
    int rc = parse_root(&p, root, spec);
    json_decref(root);
    return rc;
}

/* The whole file as a NUL-terminated string (NULL + message on failure). */
static char *read_text(const char *path)
{
    FILE *f = mtp_input_fopen(path);
    if (!f) {
        mtp_error_wrap("SPEC: ");
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = mtp_xmalloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0)
            buf = mtp_xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        mtp_error_set("SPEC: %s: read error", path);
        return NULL;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        free(buf);
        mtp_error_set("SPEC: %s: contains a NUL byte; expected JSON text", path);
        return NULL;
    }
    return buf;
}

int mtp_spec_load(const char *path, struct mtp_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    char *text = read_text(path);
    if (!text)
        return MTP_ERR;
    char *dir = mtp_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash == dir ? (void)(slash[1] = '\0') : (void)(*slash = '\0');
    else
        strcpy(dir, ".");
    int rc = mtp_spec_parse(text, path, dir, spec);
    free(dir);
    free(text);
    return rc;
}

int mtp_spec_check_model(const struct mtp_spec *spec, int num_nextn_predict_layers)
{
    int D = num_nextn_predict_layers;
    for (int i = 0; i < spec->n_decoders; i++) {
        const struct mtp_spec_decoder *d = &spec->decoders[i];
        if (!mtp_spec_decoder_drafts(d->type))
            continue;
        if (d->drafting == MTP_SPEC_DRAFTING_EXACT && d->tree.kind != MTP_TREE_NONE &&
            d->depth > D)
            return mtp_error_set("SPEC: %s: key 'decoders[%d].tree': expected a tree of depth "
                                 "<= %d (exact drafting needs one MTP module per depth; the "
                                 "model has num_nextn_predict_layers = %d), found depth %d",
                                 spec->path, i, D, D, d->depth);
        if (d->drafting == MTP_SPEC_DRAFTING_EXACT && d->depth > D)
            return mtp_error_set("SPEC: %s: key 'decoders[%d].depth': expected integer <= %d "
                                 "(exact drafting needs one MTP module per draft; the model has "
                                 "num_nextn_predict_layers = %d), found %d",
                                 spec->path, i, D, D, d->depth);
        if (d->drafting == MTP_SPEC_DRAFTING_CHAIN && d->module > D)
            return mtp_error_set("SPEC: %s: key 'decoders[%d].module': expected integer <= %d "
                                 "(the model has num_nextn_predict_layers = %d), found %d",
                                 spec->path, i, D, D, d->module);
    }
    return MTP_OK;
}

int mtp_spec_check_draft_vocab(const struct mtp_spec *spec, int vocab_size)
{
    bool used = false;
    for (int i = 0; i < spec->n_decoders; i++) {
        const struct mtp_spec_decoder *d = &spec->decoders[i];
        if (d->draft_vocab > vocab_size)
            return mtp_error_set("SPEC: %s: key 'decoders[%d].draft_vocab': expected integer "
                                 "<= %d (the model's vocab_size), found %d",
                                 spec->path, i, vocab_size, d->draft_vocab);
        used = used || d->draft_vocab > 0;
    }
    if (!used)
        return MTP_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", spec->model_dir, MTP_TOKEN_FREQ_FILE);
    uint64_t *counts;
    if (mtp_token_freq_load(path, vocab_size, &counts))
        return mtp_error_wrap("SPEC: %s: a decoder sets draft_vocab: ", spec->path);
    free(counts);
    return MTP_OK;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void mtp_spec_free(struct mtp_spec *spec)
{
    if (!spec)
        return;
    free(spec->path);
    free(spec->name);
    free(spec->description);
    free(spec->model_dir);
    free_strings(spec->datasets, spec->n_datasets);
    free_strings(spec->dataset_names, spec->n_datasets);
    free_strings(spec->chat_templates, spec->n_datasets);
    free(spec->sampling);
    for (int i = 0; spec->decoders && i < spec->n_decoders; i++)
        free(spec->decoders[i].name);
    free(spec->decoders);
    free(spec->batch_sizes);
    free(spec->output_dir);
    free(spec->json_text);
    memset(spec, 0, sizeof *spec);
}

const char *mtp_spec_backend_name(enum mtp_spec_backend b)
{
    return b == MTP_SPEC_BACKEND_CUDA ? "cuda" : "cpu";
}

const char *mtp_spec_decoder_type_name(enum mtp_spec_decoder_type t)
{
    return t == MTP_SPEC_DECODER_MTP ? "mtp" : t == MTP_SPEC_DECODER_ADAPTIVE ? "adaptive"
                                                                             : "baseline";
}

const char *mtp_spec_adaptive_rule_name(enum mtp_spec_adaptive_rule r)
{
    return r == MTP_SPEC_ADAPTIVE_DRAFT ? "draft" : "cumulative";
}

const char *mtp_spec_drafting_name(enum mtp_spec_drafting d)
{
    switch (d) {
    case MTP_SPEC_DRAFTING_EXACT: return "exact";
    case MTP_SPEC_DRAFTING_CHAIN: return "chain";
    default: return "none";
    }
}
