/*
 * spec_tree.c - the "tree" key of spec decoders (spec_tree.h): the object or
 * string forms, converted to an engine/tree.h shape whose own checks (width
 * >= 1, node limit, prefix-closed paths) give the reason of any error.
 */
#include <stdint.h> /* defines: uint64_t */
#include <stdio.h>  /* defines: snprintf */
#include <string.h> /* defines: strcmp, strlen */

#include "../core/error.h"
#include "spec_tree.h"

static int fail(const char *src, const char *prefix, const char *what)
{
    return mtp_error_set("SPEC: %s: key '%s.tree': %s", src, prefix, what);
}

/* The engine's message, under the key path. */
static int fail_shape(const char *src, const char *prefix, const char *sub)
{
    return mtp_error_wrap("SPEC: %s: key '%s.tree%s': ", src, prefix, sub);
}

/* An array of integers (at most CAP) into OUT; returns the count or -1. */
static int int_array(json_t *a, int *out, int cap)
{
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > (size_t)cap)
        return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_integer(x) || json_integer_value(x) < -1000000 ||
            json_integer_value(x) > 1000000)
            return -1;
        out[i] = (int)json_integer_value(x);
    }
    return (int)json_array_size(a);
}

static int parse_paths(const char *src, const char *prefix, json_t *a, struct mtp_tree_shape *s)
{
    static int ranks[MTP_TREE_MAX_DRAFTS][MTP_TREE_MAX_DEPTH];
    const int *rows[MTP_TREE_MAX_DRAFTS];
    int len[MTP_TREE_MAX_DRAFTS];
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MTP_TREE_MAX_DRAFTS)
        return fail(src, prefix, "expected \"paths\": 1..63 arrays of sibling ranks");
    int n = (int)json_array_size(a);
    for (int i = 0; i < n; i++) {
        len[i] = int_array(json_array_get(a, i), ranks[i], MTP_TREE_MAX_DEPTH);
        if (len[i] < 1)
            return mtp_error_set("SPEC: %s: key '%s.tree.paths[%d]': expected a non-empty array "
                                 "of integer ranks", src, prefix, i);
        rows[i] = ranks[i];
    }
    return mtp_tree_from_paths(rows, len, n, s) ? fail_shape(src, prefix, ".paths") : MTP_OK;
}

static int parse_dynamic(const char *src, const char *prefix, json_t *o, struct mtp_tree_shape *s)
{
    static const char *const keys[] = {"budget", "width", "depth"};
    int v[3];
    if (!json_is_object(o) || json_object_size(o) != 3)
        return fail(src, prefix, "expected \"dynamic\": {\"budget\", \"width\", \"depth\"}");
    for (int i = 0; i < 3; i++) {
        json_t *x = json_object_get(o, keys[i]);
        if (!json_is_integer(x) || json_integer_value(x) < -1000000 ||
            json_integer_value(x) > 1000000)
            return mtp_error_set("SPEC: %s: key '%s.tree.dynamic.%s': expected an integer",
                                 src, prefix, keys[i]);
        v[i] = (int)json_integer_value(x);
    }
    return mtp_tree_dynamic(v[0], v[1], v[2], s) ? fail_shape(src, prefix, ".dynamic") : MTP_OK;
}

static int parse_object(const char *src, const char *prefix, json_t *v, struct mtp_tree_shape *s)
{
    if (json_object_size(v) != 1)
        return fail(src, prefix, "expected exactly one of \"widths\", \"paths\", \"dynamic\"");
    json_t *x;
    if ((x = json_object_get(v, "widths"))) {
        int w[MTP_TREE_MAX_DEPTH], n = int_array(x, w, MTP_TREE_MAX_DEPTH);
        if (n < 1)
            return fail(src, prefix, "expected \"widths\": a non-empty array of integers");
        return mtp_tree_from_widths(w, n, s) ? fail_shape(src, prefix, ".widths") : MTP_OK;
    }
    if ((x = json_object_get(v, "paths")))
        return parse_paths(src, prefix, x, s);
    if ((x = json_object_get(v, "dynamic")))
        return parse_dynamic(src, prefix, x, s);
    return fail(src, prefix, "expected one of \"widths\", \"paths\", \"dynamic\"");
}

int mtp_spec_tree_parse(const char *src, json_t *v, const char *prefix,
                        struct mtp_spec_decoder *d)
{
    int rc;
    if (json_is_string(v))
        rc = mtp_tree_parse(json_string_value(v), &d->tree) ? fail_shape(src, prefix, "")
                                                            : MTP_OK;
    else if (json_is_object(v))
        rc = parse_object(src, prefix, v, &d->tree);
    else
        rc = fail(src, prefix, "expected an object {\"widths\" | \"paths\" | \"dynamic\"} or a "
                               "string such as \"widths:4,2,1\"");
    if (rc == MTP_OK)
        d->depth = mtp_tree_depth(&d->tree);
    return rc;
}

/* FNV-1a, 64 bits: a long shape's name keeps its identity in 16 hex digits. */
static uint64_t text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void mtp_spec_tree_name(const struct mtp_spec_decoder *d, char *buf, size_t cap)
{
    /* Names become file names: a deep tree's whole shape (thousands of
     * characters) is cut to its start plus a hash of all of it, so two
     * different shapes keep two different default names (issue 28, case 12). */
    enum { SHAPE_IN_NAME = 80 };
    char shape[MTP_TREE_TEXT_MAX];
    mtp_tree_describe(&d->tree, shape, sizeof shape);
    uint64_t h = text_hash(shape);
    bool cut = strlen(shape) > SHAPE_IN_NAME;
    shape[cut ? SHAPE_IN_NAME : strlen(shape)] = '\0';
    for (char *c = shape; *c; c++) /* file-name characters only */
        *c = *c == ':' ? '-' : *c == ',' ? '.' : *c == ';' ? '_' : *c;
    if (cut)
        snprintf(buf, cap, "tree-%s-%s-h%016llx", mtp_spec_drafting_name(d->drafting), shape,
                 (unsigned long long)h);
    else
        snprintf(buf, cap, "tree-%s-%s", mtp_spec_drafting_name(d->drafting), shape);
}

int mtp_spec_decoder_step_drafts(const struct mtp_spec_decoder *d)
{
    if (d->type == MTP_SPEC_DECODER_BASELINE)
        return 0;
    return d->tree.kind != MTP_TREE_NONE ? mtp_tree_max_candidates(&d->tree) : d->depth;
}
