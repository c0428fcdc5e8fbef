/*
 * cpu_attention.c - MLA attention in the absorbed form over the latent cache
 * (MODEL.md §3.4).
 *
 * Shapes (struct mtp_mla_dims): H heads, dn nope, dr rope, dv value dims, rkv
 * latent width; a cache row is [rkv latent | dr rotated k_pe].
 *
 * The absorbed form reassociates the two up-projections of the naive form so
 * the cache never needs decompressing:
 *   q_nope . (W_UK c_j) = (W_UK^T q_nope) . c_j        -> q~ = W_UK^T q_nope, [rkv]
 *   sum_j p_j (W_UV c_j) = W_UV (sum_j p_j c_j)        -> o = W_UV o~,        [dv]
 * so per token and head: scores_j = (q~ . c_j + q_pe . kpe_j) * scale over
 * j <= start_pos + t, an fp32 max-subtracted softmax, o~ = sum_j p_j c_j and
 * o = W_UV o~. kv_b rows of head h: h*(dn+dv) .. +dn-1 are W_UK[h], the next
 * dv rows W_UV[h]; any weight dtype (FP8 rows are decoded with their scales).
 *
 * Batch invariance: work items are (head, token) pairs; each is computed by
 * one thread with loops whose order depends only on the dims and on j, never
 * on n or on the other tokens. A token at position p gives the same bits in a
 * decode of one token as inside a verification of several.
 */
#include "cpu_internal.h"

#include <math.h>   /* defines: expf */
#include <string.h> /* defines: memset */

#include "../../engine/error.h" /* defines: MTP_CHECK */
#include "cpu_pool.h"           /* defines: mtp_cpu_parallel_for_work, mtp_cpu_thread_scratch */

/* One thread's work buffers (its thread scratch). */
struct attn_scratch {
    float *q_lat;   /* [rkv] q~ = W_UK^T q_nope */
    float *o_lat;   /* [rkv] o~ = sum_j p_j c_j */
    float *row;     /* [rkv] one decoded kv_b row */
    float *scores;  /* [start_pos + n] */
};

/* One head H of one token: Q is the token's head [dn + dr]; OUT is [dv]. */
static void attn_head(const struct mtp_mla_dims *dm, const struct mtp_weight *kv_b, int h,
                      const float *q, int n_keys, const float *cache, float *out,
                      struct attn_scratch *s)
{
    const int rkv = dm->kv_lora, cw = dm->kv_lora + dm->rope;
    const int head_rows = h * (dm->nope + dm->v);

    /* q~[c] = sum_i q_nope[i] * W_UK[h][i][c], rows accumulated in order i = 0..dn-1. */
    memset(s->q_lat, 0, (size_t)rkv * sizeof(float));
    for (int i = 0; i < dm->nope; i++) {
        mtp_cpu_row_decode(kv_b, head_rows + i, 0, rkv, s->row);
        mtp_cpu_axpy_f32(s->q_lat, q[i], s->row, rkv);
    }

    const float *q_pe = q + dm->nope; /* [dr], already rotated */
    float mx = -INFINITY;
    for (int j = 0; j < n_keys; j++) {
        const float *c = cache + (size_t)j * (size_t)cw; /* [rkv | dr] */
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

    /* o~ = sum_j p_j c_j, in order j = 0..n_keys-1. */
    memset(s->o_lat, 0, (size_t)rkv * sizeof(float));
    for (int j = 0; j < n_keys; j++)
        mtp_cpu_axpy_f32(s->o_lat, s->scores[j] / sum, cache + (size_t)j * (size_t)cw, rkv);

    /* o[i] = W_UV[h][i] . o~ */
    for (int i = 0; i < dm->v; i++) {
        mtp_cpu_row_decode(kv_b, head_rows + dm->nope + i, 0, rkv, s->row);
        out[i] = mtp_cpu_dot_f32(s->row, s->o_lat, rkv);
    }
}

struct attn_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_mla_dims *dims;
    const struct mtp_weight *kv_b;
    const float *q; /* [n, H*(dn+dr)] */
    int n, start_pos;
    const float *cache;
    float *out;     /* [n, H*dv] */
};

/* Item IT = (head h, token t), head-major: consecutive items, which one thread
 * tends to claim in a row, share W_UK[h] and W_UV[h]. */
static void attn_item(void *varg, int it, int thread)
{
    const struct attn_job *j = varg;
    const struct mtp_mla_dims *dm = j->dims;
    const int H = dm->n_heads, qk = dm->nope + dm->rope, h = it / j->n, t = it % j->n;
    /* Per-thread buffers, each rounded up to 16 floats (64 bytes). */
    size_t rkv = ((size_t)dm->kv_lora + 15) / 16 * 16;
    float *buf = mtp_cpu_thread_scratch(j->ctx, thread, 3 * rkv + (size_t)(j->start_pos + j->n));
    struct attn_scratch s = {.q_lat = buf, .o_lat = buf + rkv, .row = buf + 2 * rkv,
                             .scores = buf + 3 * rkv};
    const float *qh = j->q + (size_t)t * (size_t)(H * qk) + (size_t)h * (size_t)qk;
    float *oh = j->out + (size_t)t * (size_t)(H * dm->v) + (size_t)h * (size_t)dm->v;
    attn_head(dm, j->kv_b, h, qh, j->start_pos + t + 1, j->cache, oh, &s);
}

void mtp_cpu_mla_attention(void *vctx, const struct mtp_mla_dims *dims,
                           const struct mtp_weight *kv_b, const float *q, int n, int start_pos,
                           const float *cache, float *out)
{
    struct mtp_cpu_ctx *ctx = vctx;
    const int H = dims->n_heads;
    MTP_CHECK(kv_b->rows == H * (dims->nope + dims->v) && kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && start_pos >= 0);
    if (n == 0)
        return;
    struct attn_job job = {.ctx = ctx, .dims = dims, .kv_b = kv_b, .q = q, .n = n,
                           .start_pos = start_pos, .cache = cache, .out = out};
    /* Multiply-adds: absorb and un-absorb (dn + dv rows of rkv), scores and
     * values over the keys (the mean key count is start_pos + (n + 1) / 2). */
    double keys = start_pos + 0.5 * (n + 1), rkv = dims->kv_lora;
    double work = (double)H * n * ((dims->nope + dims->v) * rkv + keys * (2 * rkv + dims->rope));
    mtp_cpu_parallel_for_work(ctx, work, H * n, attn_item, &job);
}
