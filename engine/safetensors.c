/*
 * safetensors.c - map safetensors files read-only and validate every header
 * entry before handing out a tensor (docs/model.md §7, safetensors.h).
 *
 * Nothing in a file is trusted: the header length, every dtype, shape and
 * offset are checked with overflow-safe arithmetic, and tensors may not
 * overlap. A sharded checkpoint's index must agree exactly with its shards.
 * Messages read "FILE: tensor 'NAME': expected ..., found ...".
 */
#include "safetensors.h"

#include <errno.h>     /* defines: errno */
#include <fcntl.h>     /* defines: open, O_RDONLY */
#include <jansson.h>   /* defines: json_loadb, json_t */
#include <stdbool.h>   /* defines: bool */
#include <stdio.h>     /* defines: snprintf */
#include <stdlib.h>    /* defines: qsort, bsearch, free */
#include <string.h>    /* defines: strcmp, strcspn, strerror */
#include <sys/mman.h>  /* defines: mmap, munmap */
#include <sys/stat.h>  /* defines: fstat, stat */
#include <unistd.h>    /* defines: close */

#include "../core/error.h"
#include "input_file.h" /* defines: mtp_input_open, mtp_input_exists */

/* The reference reader's limit on the header length (docs/model.md §7). */
#define ST_MAX_HEADER 100000000ull

struct st_file {
    char *path;      /* as opened (dir + relative name for shards) */
    char *rel;       /* name in the index weight_map (shards), else the path */
    void *map;       /* whole-file mapping; NULL for an empty file */
    size_t size;
    size_t first, count; /* its tensors: ck->tensors[first .. first+count) */
};

struct mtp_checkpoint {
    struct st_file *files;
    size_t n_files;
    struct mtp_tensor_info *tensors;
    size_t n_tensors, cap_tensors;
    struct mtp_tensor_info **by_name; /* sorted by name, for mtp_checkpoint_find */
    size_t data_bytes;
};

/* Every dtype string of the safetensors spec. Sub-byte types are known but
 * refused: their sizes are not whole bytes and nothing here computes with them. */
struct st_dtype {
    const char *name;
    enum mtp_dtype dtype;
    unsigned bits;
};

static const struct st_dtype st_dtypes[] = {
    {"F32", MTP_DTYPE_F32, 32},           {"BF16", MTP_DTYPE_BF16, 16},
    {"F16", MTP_DTYPE_F16, 16},           {"F8_E4M3", MTP_DTYPE_F8_E4M3, 8},
    {"I32", MTP_DTYPE_I32, 32},           {"I64", MTP_DTYPE_I64, 64},
    {"U8", MTP_DTYPE_U8, 8},              {"F64", MTP_DTYPE_F64, 64},
    {"BOOL", MTP_DTYPE_OTHER, 8},         {"I8", MTP_DTYPE_OTHER, 8},
    {"F8_E5M2", MTP_DTYPE_OTHER, 8},      {"F8_E8M0", MTP_DTYPE_OTHER, 8},
    {"F8_E4M3FNUZ", MTP_DTYPE_OTHER, 8},  {"F8_E5M2FNUZ", MTP_DTYPE_OTHER, 8},
    {"I16", MTP_DTYPE_OTHER, 16},         {"U16", MTP_DTYPE_OTHER, 16},
    {"U32", MTP_DTYPE_OTHER, 32},         {"U64", MTP_DTYPE_OTHER, 64},
    {"C64", MTP_DTYPE_OTHER, 64},         {"F4", MTP_DTYPE_OTHER, 4},
    {"F6_E2M3", MTP_DTYPE_OTHER, 6},      {"F6_E3M2", MTP_DTYPE_OTHER, 6},
};

static const struct st_dtype *st_dtype_find(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, name))
            return &st_dtypes[i];
    return NULL;
}

static const char *st_describe(const json_t *v, char *buf, size_t n)
{
    if (!v)
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: snprintf(buf, n, "\"%.40s\"", json_string_value(v)); return buf;
    case JSON_INTEGER: snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return buf;
    case JSON_REAL: snprintf(buf, n, "%.10g", json_real_value(v)); return buf;
    case JSON_NULL: return "null";
    default: return "a boolean";
    }
}

static int st_fail(const char *file, const char *name, const char *expected, const json_t *found)
{
    char buf[64];
    return mtp_error_set("%s: tensor '%s': expected %s, found %s", file, name, expected,
                         st_describe(found, buf, sizeof buf));
}

/* A JSON integer >= 0 (as uint64). */
static bool st_json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int st_parse_dtype(const char *file, const char *name, json_t *e,
                          struct mtp_tensor_info *t, unsigned *bits)
{
    json_t *v = json_object_get(e, "dtype");
    if (!json_is_string(v))
        return st_fail(file, name, "a dtype string", v);
    const struct st_dtype *d = st_dtype_find(json_string_value(v));
    if (!d)
        return st_fail(file, name, "a safetensors dtype (F32, BF16, F16, F8_E4M3, I32, ...)", v);
    if (d->bits % 8)
        return mtp_error_set("%s: tensor '%s': unsupported dtype %s (sub-byte types are not "
                             "supported), expected a whole-byte dtype",
                             file, name, d->name);
    t->dtype = d->dtype;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", d->name);
    *bits = d->bits;
    return MTP_OK;
}

static int st_parse_shape(const char *file, const char *name, json_t *e,
                          struct mtp_tensor_info *t)
{
    char expected[64];
    json_t *v = json_object_get(e, "shape");
    snprintf(expected, sizeof expected, "shape: an array of at most %d integers >= 0",
             MTP_MAX_DIMS);
    if (!json_is_array(v) || json_array_size(v) > MTP_MAX_DIMS)
        return st_fail(file, name, expected, v);
    t->ndim = (int)json_array_size(v);
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (!st_json_u64(json_array_get(v, (size_t)i), &d))
            return st_fail(file, name, expected, json_array_get(v, (size_t)i));
        if (d != 0 && (uint64_t)numel > (uint64_t)INT64_MAX / d)
            return mtp_error_set("%s: tensor '%s': expected a shape whose element count fits "
                                 "in 64 bits, found dimension %d = %llu overflowing it",
                                 file, name, i, (unsigned long long)d);
        t->shape[i] = (int64_t)d;
        numel *= (int64_t)d;
    }
    t->numel = numel;
    return MTP_OK;
}

/* Offsets of one entry, checked against its dtype and shape and against the
 * data buffer [DATA, DATA + DATA_SIZE). */
static int st_parse_offsets(const char *file, const char *name, json_t *e, unsigned bits,
                            const unsigned char *data, size_t data_size,
                            struct mtp_tensor_info *t)
{
    json_t *v = json_object_get(e, "data_offsets");
    uint64_t begin, end;
    if (!json_is_array(v) || json_array_size(v) != 2 ||
        !st_json_u64(json_array_get(v, 0), &begin) || !st_json_u64(json_array_get(v, 1), &end))
        return st_fail(file, name, "data_offsets: [begin, end] with integers >= 0", v);
    if (end < begin)
        return mtp_error_set("%s: tensor '%s': expected data_offsets begin <= end, found "
                             "[%llu, %llu]", file, name, (unsigned long long)begin,
                             (unsigned long long)end);
    uint64_t size = bits / 8;
    if ((uint64_t)t->numel > SIZE_MAX / size)
        return mtp_error_set("%s: tensor '%s': expected a byte size that fits in memory, found "
                             "%lld elements of %llu bytes", file, name, (long long)t->numel,
                             (unsigned long long)size);
    uint64_t nbytes = (uint64_t)t->numel * size;
    if (end - begin != nbytes)
        return mtp_error_set("%s: tensor '%s': expected data_offsets end - begin = %llu (%lld "
                             "elements x %llu bytes of %s), found %llu", file, name,
                             (unsigned long long)nbytes, (long long)t->numel,
                             (unsigned long long)size, t->dtype_name,
                             (unsigned long long)(end - begin));
    if (end > data_size)
        return mtp_error_set("%s: tensor '%s': expected data_offsets end <= %zu (size of the "
                             "data buffer), found %llu", file, name, data_size,
                             (unsigned long long)end);
    t->nbytes = (size_t)nbytes;
    t->data = data + begin;
    return MTP_OK;
}

static struct mtp_tensor_info *st_push(struct mtp_checkpoint *ck)
{
    if (ck->n_tensors == ck->cap_tensors) {
        ck->cap_tensors = ck->cap_tensors ? 2 * ck->cap_tensors : 64;
        ck->tensors = mtp_xrealloc(ck->tensors, ck->cap_tensors * sizeof *ck->tensors);
    }
    struct mtp_tensor_info *t = &ck->tensors[ck->n_tensors++];
    memset(t, 0, sizeof *t);
    return t;
}

static int st_cmp_by_data(const void *a, const void *b)
{
    const struct mtp_tensor_info *x = *(const struct mtp_tensor_info *const *)a;
    const struct mtp_tensor_info *y = *(const struct mtp_tensor_info *const *)b;
    const char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* No two non-empty tensors of file F may share a byte. */
static int st_check_overlap(struct mtp_checkpoint *ck, const struct st_file *f)
{
    struct mtp_tensor_info **v = mtp_xmalloc((f->count ? f->count : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < f->count; i++)
        if (ck->tensors[f->first + i].nbytes)
            v[n++] = &ck->tensors[f->first + i];
    qsort(v, n, sizeof *v, st_cmp_by_data);
    const char *base = f->map;
    for (size_t i = 1; i < n; i++) {
        const char *prev_end = (const char *)v[i - 1]->data + v[i - 1]->nbytes;
        if ((const char *)v[i]->data < prev_end) {
            mtp_error_set("%s: tensor '%s': expected data_offsets not overlapping tensor '%s' "
                          "(which ends at file byte %td), found it starting at file byte %td",
                          f->path, v[i]->name, v[i - 1]->name,
                          prev_end - base, (const char *)v[i]->data - base);
            free(v);
            return MTP_ERR;
        }
    }
    free(v);
    return MTP_OK;
}

/* Parse the header of mapped file F (header of HLEN bytes at byte 8) and append
 * its tensors to CK. */
static int st_parse_header(struct mtp_checkpoint *ck, struct st_file *f, size_t hlen)
{
    const unsigned char *bytes = f->map;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)bytes + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mtp_error_set("%s: header JSON: expected valid JSON, found error at line %d "
                             "column %d: %s", f->path, jerr.line, jerr.column, jerr.text);
    int rc = MTP_OK;
    if (!json_is_object(root)) {
        char buf[64];
        rc = mtp_error_set("%s: header: expected a JSON object, found %s", f->path,
                           st_describe(root, buf, sizeof buf));
        goto out;
    }
    const unsigned char *data = bytes + 8 + hlen;
    size_t data_size = f->size - 8 - hlen;
    f->first = ck->n_tensors;
    const char *name;
    json_t *e;
    json_object_foreach(root, name, e) {
        if (!strcmp(name, "__metadata__"))
            continue; /* free-form strings; nothing here depends on them */
        unsigned bits = 0;
        if (!json_is_object(e)) {
            rc = st_fail(f->path, name, "an object {dtype, shape, data_offsets}", e);
            goto out;
        }
        struct mtp_tensor_info *t = st_push(ck);
        t->name = mtp_xstrdup(name);
        t->file = f->path;
        f->count++;
        if ((rc = st_parse_dtype(f->path, name, e, t, &bits)) ||
            (rc = st_parse_shape(f->path, name, e, t)) ||
            (rc = st_parse_offsets(f->path, name, e, bits, data, data_size, t)))
            goto out;
        ck->data_bytes += t->nbytes;
    }
    rc = st_check_overlap(ck, f);
out:
    json_decref(root);
    return rc;
}

/* Map PATH and append its tensors to CK as a new file (REL: its index name). */
static int st_open_into(struct mtp_checkpoint *ck, const char *path, const char *rel)
{
    ck->files = mtp_xrealloc(ck->files, (ck->n_files + 1) * sizeof *ck->files);
    struct st_file *f = &ck->files[ck->n_files++];
    memset(f, 0, sizeof *f);
    f->path = mtp_xstrdup(path);
    f->rel = mtp_xstrdup(rel);
    f->first = ck->n_tensors;
    struct stat st;
    int fd = mtp_input_open(path, &st); /* never blocks on a FIFO; regular files only */
    if (fd < 0)
        return MTP_ERR;
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        return mtp_error_set("%s: expected at least 8 bytes (the header length), found a file "
                             "of %zu bytes", path, f->size);
    }
    void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file referenced */
    if (map == MAP_FAILED)
        return mtp_error_set("%s: cannot mmap %zu bytes: %s", path, f->size, strerror(errno));
    f->map = map;
    const unsigned char *b = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | b[i]; /* little-endian whatever the host */
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8)
        return mtp_error_set("%s: expected a header length <= %llu and <= file size - 8 (%zu), "
                             "found %llu", path, ST_MAX_HEADER, f->size - 8,
                             (unsigned long long)hlen);
    return st_parse_header(ck, f, (size_t)hlen);
}

static int st_cmp_by_name(const void *a, const void *b)
{
    const struct mtp_tensor_info *x = *(const struct mtp_tensor_info *const *)a;
    const struct mtp_tensor_info *y = *(const struct mtp_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

/* Build the name index (once every file is read, so the tensor array no
 * longer moves); a name held by two files is an error. */
static int st_index_names(struct mtp_checkpoint *ck)
{
    ck->by_name = mtp_xmalloc((ck->n_tensors ? ck->n_tensors : 1) * sizeof *ck->by_name);
    for (size_t i = 0; i < ck->n_tensors; i++)
        ck->by_name[i] = &ck->tensors[i];
    qsort(ck->by_name, ck->n_tensors, sizeof *ck->by_name, st_cmp_by_name);
    for (size_t i = 1; i < ck->n_tensors; i++) {
        const struct mtp_tensor_info *a = ck->by_name[i - 1], *b = ck->by_name[i];
        if (!strcmp(a->name, b->name))
            return mtp_error_set("%s: tensor '%s': expected each tensor in one file only, found "
                                 "it also in %s", b->file, b->name, a->file);
    }
    return MTP_OK;
}

struct mtp_tensor_info *mtp_checkpoint_find(struct mtp_checkpoint *ck, const char *name)
{
    size_t lo = 0, hi = ck->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct mtp_tensor_info *t = ck->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t mtp_checkpoint_count(const struct mtp_checkpoint *ck) { return ck->n_tensors; }

struct mtp_tensor_info *mtp_checkpoint_tensor(struct mtp_checkpoint *ck, size_t i)
{
    return i < ck->n_tensors ? &ck->tensors[i] : NULL;
}

size_t mtp_checkpoint_data_bytes(const struct mtp_checkpoint *ck) { return ck->data_bytes; }

void mtp_checkpoint_advise_random(struct mtp_checkpoint *ck, bool random)
{
    for (size_t i = 0; ck && i < ck->n_files; i++)
        if (ck->files[i].map) /* advice only: a failure changes nothing that matters */
            (void)madvise(ck->files[i].map, ck->files[i].size,
                          random ? MADV_RANDOM : MADV_NORMAL);
}

void mtp_checkpoint_free(struct mtp_checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t i = 0; i < ck->n_files; i++) {
        if (ck->files[i].map)
            munmap(ck->files[i].map, ck->files[i].size);
        free(ck->files[i].path);
        free(ck->files[i].rel);
    }
    for (size_t i = 0; i < ck->n_tensors; i++)
        free(ck->tensors[i].name);
    free(ck->files);
    free(ck->tensors);
    free(ck->by_name);
    free(ck);
}

int mtp_checkpoint_open_file(const char *path, struct mtp_checkpoint **out)
{
    struct mtp_checkpoint *ck = mtp_xcalloc(1, sizeof *ck);
    *out = NULL;
    if (st_open_into(ck, path, path) || st_index_names(ck)) {
        mtp_checkpoint_free(ck);
        return MTP_ERR;
    }
    *out = ck;
    return MTP_OK;
}

static int st_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether NAME is a relative path that stays inside the model directory:
 * not absolute, and no ".." component. A ".." inside a component is an
 * ordinary file name ("a..safetensors"), so the test is per component. */
static bool st_name_inside(const char *name)
{
    if (!*name || name[0] == '/')
        return false;
    for (const char *c = name; *c;) {
        size_t len = strcspn(c, "/");
        if (len == 2 && c[0] == '.' && c[1] == '.')
            return false;
        c += len + (c[len] == '/');
    }
    return true;
}

/* The distinct shard names of WEIGHT_MAP, sorted; each must be a plain
 * relative path inside the model directory. */
static int st_shard_names(const char *index, json_t *weight_map, const char ***out, size_t *n)
{
    size_t cap = json_object_size(weight_map);
    const char **names = mtp_xmalloc((cap ? cap : 1) * sizeof *names);
    size_t k = 0;
    const char *tname;
    json_t *v;
    json_object_foreach(weight_map, tname, v) {
        const char *s = json_string_value(v);
        if (!s || !st_name_inside(s)) {
            free(names);
            return st_fail(index, tname, "a shard file name inside the model directory", v);
        }
        names[k++] = s;
    }
    qsort(names, k, sizeof *names, st_cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]))
            names[u++] = names[i];
    *out = names;
    *n = u;
    return MTP_OK;
}

/* The index and the shards must agree both ways: every shard tensor is in the
 * weight_map under its own shard, and every weight_map entry is in its shard. */
static int st_check_index(struct mtp_checkpoint *ck, const char *index, json_t *weight_map)
{
    for (size_t k = 0; k < ck->n_files; k++) {
        const struct st_file *f = &ck->files[k];
        for (size_t i = f->first; i < f->first + f->count; i++) {
            const char *name = ck->tensors[i].name;
            const char *listed = json_string_value(json_object_get(weight_map, name));
            if (!listed)
                return mtp_error_set("%s: tensor '%s': expected an entry in the weight_map of "
                                     "%s, found none", f->path, name, index);
            if (strcmp(listed, f->rel))
                return mtp_error_set("%s: tensor '%s': expected in shard %s (weight_map of "
                                     "%s), found in shard %s", f->path, name, listed, index,
                                     f->rel);
        }
    }
    const char *name;
    json_t *v;
    json_object_foreach(weight_map, name, v) {
        if (!mtp_checkpoint_find(ck, name))
            return mtp_error_set("%s: tensor '%s': expected in shard %s (weight_map of %s), "
                                 "found missing from it", json_string_value(v), name,
                                 json_string_value(v), index);
    }
    return MTP_OK;
}

static char *st_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = mtp_xmalloc(len);
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* Read INDEX (in DIR) and open each shard it names once. */
static int st_open_index(struct mtp_checkpoint *ck, const char *dir, const char *index)
{
    json_t *root = mtp_input_load_json(index, JSON_REJECT_DUPLICATES);
    if (!root)
        return MTP_ERR;
    int rc = MTP_ERR;
    json_t *wm = json_object_get(root, "weight_map");
    const char **shards = NULL;
    size_t n_shards = 0;
    if (!json_is_object(wm)) {
        char buf[64];
        mtp_error_set("%s: key 'weight_map': expected an object {tensor: shard file}, found %s",
                      index, st_describe(wm, buf, sizeof buf));
        goto out;
    }
    if (st_shard_names(index, wm, &shards, &n_shards))
        goto out;
    for (size_t i = 0; i < n_shards; i++) {
        char *path = st_join(dir, shards[i]);
        int bad = st_open_into(ck, path, shards[i]);
        free(path);
        if (bad)
            goto out;
    }
    if (st_index_names(ck) || st_check_index(ck, index, wm))
        goto out;
    rc = MTP_OK;
out:
    free(shards);
    json_decref(root);
    return rc;
}

int mtp_checkpoint_open_dir(const char *dir, struct mtp_checkpoint **out)
{
    char *index = st_join(dir, "model.safetensors.index.json");
    char *single = st_join(dir, "model.safetensors");
    int rc;
    *out = NULL;
    /* The index wins when both exist: a stray single file is then ignored.
     * Presence is lstat's: an index that is a broken or looping symlink is an
     * error when opened, never a silent fallback to model.safetensors. */
    int has_index = mtp_input_exists(index);
    int has_single = has_index == 0 ? mtp_input_exists(single) : 0;
    if (has_index < 0 || has_single < 0) {
        rc = MTP_ERR;
    } else if (has_index) {
        struct mtp_checkpoint *ck = mtp_xcalloc(1, sizeof *ck);
        rc = st_open_index(ck, dir, index);
        if (rc)
            mtp_checkpoint_free(ck);
        else
            *out = ck;
    } else if (has_single) {
        rc = mtp_checkpoint_open_file(single, out);
    } else {
        rc = mtp_error_set("%s: expected model.safetensors or model.safetensors.index.json, "
                           "found neither", dir);
    }
    free(index);
    free(single);
    return rc;
}
