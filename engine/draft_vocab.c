/*
 * draft_vocab.c - token frequencies (token_frequencies.bin), the frequency
 * ranking, and the row gather that builds a subset head (draft_vocab.h).
 */
#include "draft_vocab.h"

#include <stdio.h>  /* defines: FILE, fread, fclose */
#include <stdlib.h> /* defines: qsort, free */
#include <string.h> /* defines: memcmp, memcpy, strdup */
#include <sys/stat.h> /* defines: struct stat */

#include "../core/dtype.h"      /* defines: mtp_dtype_size */
#include "../core/error.h"      /* defines: mtp_error_set, mtp_xmalloc, MTP_CHECK */
#include "input_file.h" /* defines: mtp_input_fopen */

enum { FREQ_HEADER = 24 }; /* magic[8], u32 vocab_size, u32 reserved, u64 total */
static const char FREQ_MAGIC[8] = {'M', 'T', 'P', 'F', 'R', 'E', 'Q', '1'};

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const unsigned char *b)
{
    return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

/* The header fields of F against VOCAB_SIZE and the file's size. */
static int check_header(const char *path, const unsigned char *h, long long size, int vocab_size,
                        uint64_t *total)
{
    if (memcmp(h, FREQ_MAGIC, sizeof FREQ_MAGIC) != 0)
        return mtp_error_set("%s: field magic: not a token frequency file (expected "
                             "\"MTPFREQ1\"; write it with training/token_frequencies.py)", path);
    uint32_t v = le32(h + 8);
    if (v != (uint32_t)vocab_size)
        return mtp_error_set("%s: field vocab_size: %u, but the model's config.json has "
                             "vocab_size %d (frequencies of another tokenizer?)",
                             path, v, vocab_size);
    if (le32(h + 12) != 0)
        return mtp_error_set("%s: field reserved: %u, expected 0", path, le32(h + 12));
    long long want = FREQ_HEADER + 8LL * vocab_size;
    if (size != want)
        return mtp_error_set("%s: file size %lld bytes, expected %lld (header + %d uint64 counts)",
                             path, size, want, vocab_size);
    *total = le64(h + 16);
    return MTP_OK;
}

int mtp_token_freq_load(const char *path, int vocab_size, uint64_t **counts)
{
    *counts = NULL;
    FILE *f = mtp_input_fopen(path);
    if (!f)
        return mtp_error_wrap("token frequencies (needed by draft_vocab): ");
    struct stat st;
    unsigned char h[FREQ_HEADER];
    int rc = MTP_ERR;
    unsigned char *raw = NULL;
    uint64_t total = 0;
    if (fstat(fileno(f), &st) != 0 || fread(h, 1, sizeof h, f) != sizeof h) {
        mtp_error_set("%s: file size: shorter than the %d-byte header", path, FREQ_HEADER);
        goto close_file;
    }
    if (check_header(path, h, (long long)st.st_size, vocab_size, &total))
        goto close_file;
    raw = mtp_xmalloc((size_t)vocab_size * 8);
    if (fread(raw, 8, (size_t)vocab_size, f) != (size_t)vocab_size) {
        mtp_error_set("%s: field counts: read failed", path);
        goto free_raw;
    }
    uint64_t *c = mtp_xmalloc((size_t)vocab_size * sizeof *c);
    uint64_t sum = 0;
    for (int i = 0; i < vocab_size; i++) {
        c[i] = le64(raw + (size_t)i * 8);
        /* An overflowing sum means the counts are garbage, not a corpus. */
        if (sum + c[i] < sum) {
            free(c);
            mtp_error_set("%s: field counts: the counts overflow 64 bits at id %d", path, i);
            goto free_raw;
        }
        sum += c[i];
    }
    if (sum != total || total == 0) {
        free(c);
        mtp_error_set("%s: field total: %llu, but the counts sum to %llu (a damaged file%s)",
                      path, (unsigned long long)total, (unsigned long long)sum,
                      total == 0 ? ", or an empty corpus" : "");
        goto free_raw;
    }
    *counts = c;
    rc = MTP_OK;
free_raw:
    free(raw);
close_file:
    fclose(f);
    return rc;
}

/* qsort has no user pointer; ranking runs at engine setup, so thread-local
 * storage keeps concurrent engines independent. */
static _Thread_local const uint64_t *rank_counts;

static int by_count_desc(const void *a, const void *b)
{
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    uint64_t ci = rank_counts[i], cj = rank_counts[j];
    if (ci != cj)
        return ci > cj ? -1 : 1;
    return (i > j) - (i < j);
}

void mtp_draft_vocab_rank(const uint64_t *counts, int V, int n, int32_t *ids)
{
    MTP_CHECK(n >= 1 && n <= V);
    int32_t *order = mtp_xmalloc((size_t)V * sizeof *order);
    for (int i = 0; i < V; i++)
        order[i] = i;
    rank_counts = counts;
    qsort(order, (size_t)V, sizeof *order, by_count_desc);
    memcpy(ids, order, (size_t)n * sizeof *ids);
    free(order);
}

void mtp_weight_gather_rows(const struct mtp_weight *w, const int32_t *ids, int n,
                            const char *name, struct mtp_weight *out)
{
    MTP_CHECK(w->data && n >= 1);
    size_t es = mtp_dtype_size(w->dtype), row_bytes = es * (size_t)w->cols;
    *out = (struct mtp_weight){.dtype = w->dtype, .rows = n, .cols = w->cols};
    unsigned char *data = mtp_xmalloc((size_t)n * row_bytes);
    for (int i = 0; i < n; i++) {
        MTP_CHECK(ids[i] >= 0 && ids[i] < w->rows);
        memcpy(data + (size_t)i * row_bytes,
               (const unsigned char *)w->data + (size_t)ids[i] * row_bytes, row_bytes);
    }
    out->data = data;
    if (w->dtype == MTP_DTYPE_F8_E4M3) {
        /* Gathered rows no longer form B0-row blocks: give each row its own
         * scale row, the one of the block it came from. Every element keeps
         * fp8 * the same scale_inv, so it decodes to the same float. */
        int ncb = (w->cols + w->block_cols - 1) / w->block_cols;
        float *s = mtp_xmalloc((size_t)n * (size_t)ncb * sizeof *s);
        for (int i = 0; i < n; i++)
            memcpy(s + (size_t)i * ncb, w->scale_inv + (size_t)(ids[i] / w->block_rows) * ncb,
                   (size_t)ncb * sizeof *s);
        out->scale_inv = s;
        out->block_rows = 1;
        out->block_cols = w->block_cols;
    }
    out->name = strdup(name);
    MTP_CHECK(out->name != NULL);
}

void mtp_weight_gathered_free(struct mtp_weight *w)
{
    free((void *)w->data);
    free((void *)w->scale_inv);
    free((void *)w->name);
    *w = (struct mtp_weight){0};
}

void mtp_draft_vocab_scatter(const int32_t *ids, int n, const float *sub, float fill,
                             float *full, int V)
{
    for (int i = 0; i < V; i++)
        full[i] = fill;
    for (int i = 0; i < n; i++)
        full[ids[i]] = sub[i];
}

int32_t mtp_draft_vocab_choose(const struct mtp_sampling *s, const int32_t *ids, int n,
                               const float *sub_logits, float u, float *sub_probs,
                               int32_t *work, float *q, int V, int32_t *sub)
{
    mtp_sampling_probs(s, sub_logits, n, sub_probs, work);
    int32_t i = mtp_sampling_is_greedy(s) ? mtp_sampling_argmax(sub_logits, n)
                                          : mtp_sampling_sample(sub_probs, n, u);
    mtp_draft_vocab_scatter(ids, n, sub_probs, 0.0f, q, V);
    *sub = i;
    return ids[i];
}
