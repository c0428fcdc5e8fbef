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
#include "cpu_pool.h" /* defines: mtp_cpu_parallel_for, mtp_cpu_thread_scratch */

#include <math.h>   /* defines: expf, INFINITY */
#include <stdint.h> /* defines: uintptr_t */
#include <string.h> /* defines: memset */

#include "../../engine/error.h" /* defines: MTP_CHECK */

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

struct tree_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_mla_dims *dm;
    const struct mtp_weight *kv_b;
    const struct mtp_tree_keys *keys;
    const float *q, *cache;
    float *out;
    int n;
    size_t max_keys;
};

/* This thread's scratch carved into the buffers of one (head, token) item. */
static struct tree_scratch tree_scratch_get(const struct tree_job *j, int thread)
{
    size_t rkv = (size_t)j->dm->kv_lora, nk = j->max_keys + 1;
    size_t ptr_floats = (nk * sizeof(const float *) + sizeof(float) - 1) / sizeof(float);
    float *p = mtp_cpu_thread_scratch(j->ctx, thread, 3 * rkv + nk + ptr_floats + 16);
    struct tree_scratch s;
    s.q_lat = p;
    s.o_lat = p + rkv;
    s.row = p + 2 * rkv;
    s.scores = p + 3 * rkv;
    /* The pointer array after the scores, aligned for pointers. */
    uintptr_t a = (uintptr_t)(s.scores + nk);
    a = (a + sizeof(void *) - 1) & ~(uintptr_t)(sizeof(void *) - 1);
    s.keys = (const float **)a;
    return s;
}

/* Item IT: head it / n of token it % n. */
static void tree_item(void *arg, int it, int thread)
{
    const struct tree_job *j = arg;
    const int H = j->dm->n_heads, qk = j->dm->nope + j->dm->rope;
    const int cw = j->dm->kv_lora + j->dm->rope;
    int h = it / j->n, t = it % j->n;
    struct tree_scratch s = tree_scratch_get(j, thread);
    const float *qh = j->q + (size_t)t * (size_t)(H * qk) + (size_t)h * (size_t)qk;
    float *oh = j->out + (size_t)t * (size_t)(H * j->dm->v) + (size_t)h * (size_t)j->dm->v;
    int nk = gather_keys(j->keys, t, j->cache, cw, &s);
    tree_head(j->dm, j->kv_b, h, qh, nk, s.keys, oh, &s);
}

void mtp_cpu_mla_tree_attention(void *vctx, const struct mtp_mla_dims *dims,
                                const struct mtp_weight *kv_b, const float *q, int n,
                                const struct mtp_tree_keys *keys, const float *cache, float *out)
{
    struct mtp_cpu_ctx *ctx = vctx;
    const int H = dims->n_heads;
    MTP_CHECK(kv_b->rows == H * (dims->nope + dims->v) && kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && keys->n_prefix >= 0 && keys->off[0] == 0);
    if (n == 0)
        return;
    struct tree_job job = {ctx, dims, kv_b, keys, q, cache, out, n,
                           (size_t)keys->n_prefix + (size_t)longest_list(keys, n)};
    mtp_cpu_parallel_for(ctx, H * n, tree_item, &job);
}
