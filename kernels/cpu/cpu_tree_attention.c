/*
 * cpu_tree_attention.c - MLA attention (absorbed form, MODEL.md §3.4) over
 * explicit key rows: the tree mask of tree verification and tree drafting
 * (backend.h struct mtp_tree_keys, spec/decoding.md "Tree decoding").
 *
 * Token t attends to cache rows 0..n_prefix-1, then to its own list of rows
 * (its ancestors by depth, then itself). The arithmetic is the one of
 * cpu_attention.c, term for term and in the same order, with key j read from
 * the j-th row of that list instead of row j: a tree node whose list is the
 * path a sequential decode would have cached gets the bits of that decode
 * (tests/test_tree_verify.c checks it against mla_attention along each path).
 * Keep the two files in step: a change of order in one breaks that equality.
 *
 * Work items are (head, token) pairs, each computed by one thread with loops
 * that depend only on the dims and the key list, never on n.
 */
#include "cpu_internal.h"

#include <math.h>   /* defines: expf, INFINITY */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset */

#include "../../engine/error.h" /* defines: MTP_CHECK, mtp_xmalloc */

struct tree_scratch {
    float *q_lat;         /* [rkv] q~ = W_UK^T q_nope */
    float *o_lat;         /* [rkv] o~ = sum_j p_j c_j */
    float *row;           /* [rkv] one decoded kv_b row */
    float *scores;        /* [n_keys] */
    const float **keys;   /* [n_keys] the cache rows, in attention order */
};

/* One head H of one token over the N_KEYS rows KEYS: Q [dn + dr], OUT [dv]. */
static void tree_head(const struct mtp_mla_dims *dm, const struct mtp_weight *kv_b, int h,
                      const float *q, int n_keys, const float *const *keys, float *out,
                      struct tree_scratch *s)
{
    const int rkv = dm->kv_lora;
    const int head_rows = h * (dm->nope + dm->v);

    memset(s->q_lat, 0, (size_t)rkv * sizeof(float));
    for (int i = 0; i < dm->nope; i++) {
        mtp_cpu_row_decode(kv_b, head_rows + i, 0, rkv, s->row);
        mtp_cpu_axpy_f32(s->q_lat, q[i], s->row, rkv);
    }

    const float *q_pe = q + dm->nope;
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        const float *c = keys[j];
        float sc = (mtp_cpu_dot_f32(s->q_lat, c, rkv) + mtp_cpu_dot_f32(q_pe, c + rkv, dm->rope)) *
                   dm->scale;
        s->scores[j] = sc;
        if (sc > mx)
            mx = sc;
    }
    float sum = 0.0f;
    for (int j = 0; j < n_keys; j++) {
        s->scores[j] = expf(s->scores[j] - mx);
        sum += s->scores[j];
    }

    memset(s->o_lat, 0, (size_t)rkv * sizeof(float));
    for (int j = 0; j < n_keys; j++)
        mtp_cpu_axpy_f32(s->o_lat, s->scores[j] / sum, keys[j], rkv);

    for (int i = 0; i < dm->v; i++) {
        mtp_cpu_row_decode(kv_b, head_rows + dm->nope + i, 0, rkv, s->row);
        out[i] = mtp_cpu_dot_f32(s->row, s->o_lat, rkv);
    }
}

/* Row pointers of token T's keys into S->keys; returns their number. */
static int gather_keys(const struct mtp_tree_keys *k, int t, const float *cache, int cw,
                       struct tree_scratch *s)
{
    int n = 0;
    for (int j = 0; j < k->n_prefix; j++)
        s->keys[n++] = cache + (size_t)j * (size_t)cw;
    for (int i = k->off[t]; i < k->off[t + 1]; i++)
        s->keys[n++] = cache + (size_t)k->rows[i] * (size_t)cw;
    return n;
}

static int longest_list(const struct mtp_tree_keys *k, int n)
{
    int most = 0;
    for (int t = 0; t < n; t++) {
        MTP_CHECK(k->off[t + 1] >= k->off[t]);
        if (k->off[t + 1] - k->off[t] > most)
            most = k->off[t + 1] - k->off[t];
    }
    return most;
}

void mtp_cpu_mla_tree_attention(void *vctx, const struct mtp_mla_dims *dims,
                                const struct mtp_weight *kv_b, const float *q, int n,
                                const struct mtp_tree_keys *keys, const float *cache, float *out)
{
    struct mtp_cpu_ctx *ctx = vctx;
    const int H = dims->n_heads, qk = dims->nope + dims->rope;
    const int cw = dims->kv_lora + dims->rope;
    MTP_CHECK(kv_b->rows == H * (dims->nope + dims->v) && kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && keys->n_prefix >= 0 && keys->off[0] == 0);
    if (n == 0)
        return;
    const size_t max_keys = (size_t)keys->n_prefix + (size_t)longest_list(keys, n);
    const int items = H * n;
#pragma omp parallel num_threads(ctx->n_threads) if (items > 1)
    {
        struct tree_scratch s;
        size_t rkv = (size_t)dims->kv_lora;
        s.q_lat = mtp_xmalloc(rkv * sizeof(float));
        s.o_lat = mtp_xmalloc(rkv * sizeof(float));
        s.row = mtp_xmalloc(rkv * sizeof(float));
        s.scores = mtp_xmalloc((max_keys + 1) * sizeof(float));
        s.keys = mtp_xmalloc((max_keys + 1) * sizeof *s.keys);
#pragma omp for schedule(static)
        for (int it = 0; it < items; it++) {
            int h = it / n, t = it % n;
            const float *qh = q + (size_t)t * (size_t)(H * qk) + (size_t)h * (size_t)qk;
            float *oh = out + (size_t)t * (size_t)(H * dims->v) + (size_t)h * (size_t)dims->v;
            int nk = gather_keys(keys, t, cache, cw, &s);
            tree_head(dims, kv_b, h, qh, nk, s.keys, oh, &s);
        }
        free(s.q_lat);
        free(s.o_lat);
        free(s.row);
        free(s.scores);
        free(s.keys);
    }
}
