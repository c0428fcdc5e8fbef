/*
 * dataset.c - read Spec-Bench-style JSONL prompt sets (see dataset.h).
 *
 * Every line is checked, even past max_prompts, so a broken file fails the
 * same way whatever limit a spec sets. UTF-8 is checked before the JSON parser
 * sees the line, so the message can point at the byte.
 */
#include "dataset.h"

#include <errno.h>   /* defines: errno */
#include <jansson.h> /* defines: json_loadb */
#include <stdbool.h>
#include <stdio.h>   /* defines: FILE, getline */
#include <stdlib.h>  /* defines: free, qsort */
#include <string.h>  /* defines: strerror, strrchr */

#include "../core/error.h"
#include "../engine/input_file.h" /* defines: mtp_input_fopen */

struct id_line {
    char *id; /* borrowed from the prompt or owned (past max_prompts) */
    int line;
    bool owned;
};

struct reader {
    const char *path;
    const char *name;
    int line;
    struct id_line *ids; /* every prompt's id, for the duplicate check */
    int n_ids, cap_ids;
};

char *mtp_dataset_name_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = mtp_xstrdup(base);
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = '\0';
    return name;
}

/* Byte offset of the first invalid UTF-8 sequence in S[0..n), or -1. Rejects
 * overlong forms, surrogates and code points above U+10FFFF (RFC 3629). */
static long utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + len > n)
            return (long)i;
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += len;
    }
    return -1;
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static int fail_found(const struct reader *rd, const char *key, const char *expected,
                      const json_t *found)
{
    char brief[64] = "nothing";
    char *s = found ? json_dumps(found, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (s) {
        if (strlen(s) >= sizeof brief)
            snprintf(brief, sizeof brief, "%.*s...", (int)sizeof brief - 4, s);
        else
            snprintf(brief, sizeof brief, "%s", s);
        free(s);
    }
    return mtp_error_set("DATASET: %s:%d: key '%s': expected %s, found %s", rd->path, rd->line,
                         key, expected, brief);
}

/* question_id as text: integers in decimal, strings as they are. */
static int read_id(const struct reader *rd, json_t *obj, char **out)
{
    json_t *v = json_object_get(obj, "question_id");
    if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = mtp_xstrdup(buf);
        return MTP_OK;
    }
    if (json_is_string(v) && json_string_length(v) > 0 &&
        strlen(json_string_value(v)) == json_string_length(v)) {
        *out = mtp_xstrdup(json_string_value(v));
        return MTP_OK;
    }
    return fail_found(rd, "question_id", "integer or non-empty string", v);
}

/* Every turn must be a non-empty string without NUL: a conversation cannot
 * send an empty message, and turn t is named (1-based) with the prompt. */
static int read_turns(const struct reader *rd, json_t *obj, const char *id, struct mtp_prompt *p)
{
    json_t *turns = json_object_get(obj, "turns");
    if (!json_is_array(turns) || json_array_size(turns) == 0)
        return fail_found(rd, "turns", "non-empty array of strings", turns);
    size_t n = json_array_size(turns);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(turns, i);
        char key[32];
        snprintf(key, sizeof key, "turns[%zu]", i);
        if (!json_is_string(t))
            return fail_found(rd, key, "string", t);
        if (json_string_length(t) == 0)
            return mtp_error_set("DATASET: %s:%d: prompt %s, turn %zu of %zu (key '%s'): "
                                 "expected a non-empty string, found \"\"",
                                 rd->path, rd->line, id, i + 1, n, key);
        if (strlen(json_string_value(t)) != json_string_length(t))
            return fail_found(rd, key, "string without NUL characters", t);
    }
    p->turns = mtp_xcalloc(n, sizeof *p->turns);
    for (size_t i = 0; i < n; i++)
        p->turns[p->n_turns++] = mtp_xstrdup(json_string_value(json_array_get(turns, i)));
    p->text = p->turns[0];
    return MTP_OK;
}

static int read_category(const struct reader *rd, json_t *obj, char **out)
{
    json_t *v = json_object_get(obj, "category");
    if (!v) {
        *out = mtp_xstrdup(rd->name);
        return MTP_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return fail_found(rd, "category", "non-empty string", v);
    *out = mtp_xstrdup(json_string_value(v));
    return MTP_OK;
}

/* Parse one non-blank line into P (fields owned by P even on failure). */
static int parse_line(const struct reader *rd, const char *line, size_t len, struct mtp_prompt *p)
{
    long bad = utf8_invalid_at((const unsigned char *)line, len);
    if (bad >= 0)
        return mtp_error_set("DATASET: %s:%d: expected UTF-8 text, found invalid byte 0x%02X at "
                             "byte %ld of the line",
                             rd->path, rd->line, (unsigned char)line[bad], bad + 1);
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return mtp_error_set("DATASET: %s:%d: expected a JSON object, found bad JSON at column "
                             "%d: %s",
                             rd->path, rd->line, jerr.column, jerr.text);
    int rc = MTP_OK;
    if (!json_is_object(obj))
        rc = fail_found(rd, "(line)", "JSON object", obj);
    else if (read_id(rd, obj, &p->id) || read_category(rd, obj, &p->category) ||
             read_turns(rd, obj, p->id, p))
        rc = MTP_ERR;
    p->line = rd->line;
    json_decref(obj);
    return rc;
}

static void free_prompt(struct mtp_prompt *p)
{
    free(p->id);
    free(p->category);
    for (int i = 0; i < p->n_turns; i++)
        free(p->turns[i]); /* text is turns[0] */
    free(p->turns);
    memset(p, 0, sizeof *p);
}

static void remember_id(struct reader *rd, char *id, int line, bool owned)
{
    if (rd->n_ids == rd->cap_ids) {
        rd->cap_ids = rd->cap_ids ? 2 * rd->cap_ids : 64;
        rd->ids = mtp_xrealloc(rd->ids, (size_t)rd->cap_ids * sizeof *rd->ids);
    }
    rd->ids[rd->n_ids++] = (struct id_line){.id = id, .line = line, .owned = owned};
}

static int cmp_id_line(const void *a, const void *b)
{
    const struct id_line *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Request keys in logs use question_id, so two prompts may not share one. */
static int check_unique_ids(struct reader *rd)
{
    if (rd->n_ids < 2)
        return MTP_OK;
    qsort(rd->ids, (size_t)rd->n_ids, sizeof *rd->ids, cmp_id_line);
    for (int i = 1; i < rd->n_ids; i++)
        if (strcmp(rd->ids[i - 1].id, rd->ids[i].id) == 0)
            return mtp_error_set("DATASET: %s:%d: key 'question_id': expected a unique id, found "
                                 "\"%s\" again (first on line %d)",
                                 rd->path, rd->ids[i].line, rd->ids[i].id, rd->ids[i - 1].line);
    return MTP_OK;
}

static void add_prompt(struct mtp_dataset *ds, int *cap, struct mtp_prompt *p)
{
    if (ds->n_prompts == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        ds->prompts = mtp_xrealloc(ds->prompts, (size_t)*cap * sizeof *ds->prompts);
    }
    ds->prompts[ds->n_prompts++] = *p;
}

static int read_lines(FILE *f, struct reader *rd, int max_prompts, struct mtp_dataset *ds)
{
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    int cap = 0, rc = MTP_OK;
    while (rc == MTP_OK && (n = getline(&line, &line_cap, f)) >= 0) {
        rd->line++;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (is_blank(line, len))
            continue;
        struct mtp_prompt p = {0};
        rc = parse_line(rd, line, len, &p);
        bool keep = rc == MTP_OK && (max_prompts <= 0 || ds->n_prompts < max_prompts);
        if (keep) {
            add_prompt(ds, &cap, &p);
            remember_id(rd, p.id, p.line, false);
        } else if (rc == MTP_OK) {
            remember_id(rd, p.id, p.line, true);
            p.id = NULL;
            free_prompt(&p);
        } else {
            free_prompt(&p);
        }
    }
    if (rc == MTP_OK && ferror(f))
        rc = mtp_error_set("DATASET: %s: read error after line %d: %s", rd->path, rd->line,
                           strerror(errno));
    free(line);
    return rc;
}

int mtp_dataset_load(const char *path, int max_prompts, struct mtp_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    ds->path = mtp_xstrdup(path);
    ds->name = mtp_dataset_name_from_path(path);
    FILE *f = mtp_input_fopen(path); /* regular files only: a FIFO cannot block */
    if (!f)
        return mtp_error_wrap("DATASET: ");
    struct reader rd = {.path = ds->path, .name = ds->name};
    int rc = read_lines(f, &rd, max_prompts, ds);
    fclose(f);
    if (rc == MTP_OK)
        rc = check_unique_ids(&rd);
    if (rc == MTP_OK && ds->n_prompts == 0)
        rc = mtp_error_set("DATASET: %s: expected at least one prompt, found none", path);
    for (int i = 0; i < rd.n_ids; i++)
        if (rd.ids[i].owned)
            free(rd.ids[i].id);
    free(rd.ids);
    return rc;
}

void mtp_dataset_free(struct mtp_dataset *ds)
{
    if (!ds)
        return;
    for (int i = 0; i < ds->n_prompts; i++)
        free_prompt(&ds->prompts[i]);
    free(ds->prompts);
    free(ds->path);
    free(ds->name);
    memset(ds, 0, sizeof *ds);
}
