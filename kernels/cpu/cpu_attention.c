/*
 * cpu_attention.c - MLA attention in the absorbed form over the latent cache
 * (docs/model.md §3.4).
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
 * Work items are (head, block of ATTN_TOKENS tokens): an item decodes its
 * head's W_UK and W_UV rows once for the block, and reads each cache row once
 * for all of the block's tokens (the scores and the output projection are
 * mtp_cpu_dot_rows, the matmul's register-blocked canonical dot).
 *
 * Batch invariance: every value keeps the order it has for a token alone:
 * q~ and o~ are per-element fused chains in i and j order, each score is the
 * canonical dot of q~ and c_j plus that of q_pe and kpe_j, the softmax runs
 * per token over its own prefix, each output the canonical dot of a W_UV row
 * and o~. Scores of the block's later keys are computed for its earlier tokens
 * too and never used (those cache rows are filled by this forward). So a
 * token at position p gives the same bits in a decode of one token as inside
 * a verification of several, on any thread count.
 */
#include "cpu_internal.h"
#include "cpu_pool.h" /* defines: mtp_cpu_parallel_for, mtp_cpu_thread_scratch */

#include <math.h>   /* defines: expf */
#include <string.h> /* defines: memset */

#include "../../core/error.h" /* defines: MTP_CHECK */

enum { ATTN_TOKENS = 8 }; /* tokens per work item */

struct attn_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_mla_dims *dm;
    const struct mtp_weight *kv_b;
    const float *q;     /* [n, H*(dn+dr)] */
    const float *cache; /* [start_pos + n, rkv+dr] */
    float *out;         /* [n, H*dv] */
    int n, start_pos, n_blocks;
};

/* One item's views of its thread's scratch. */
struct attn_bufs {
    size_t rp;      /* row stride of the panels, >= rkv */
    size_t ks;      /* row stride of the score rows, >= start_pos + n */
    float *wuk;     /* [dn, rp] decoded W_UK[h] */
    float *wuv;     /* [dv, rp] decoded W_UV[h] */
    float *q_lat;   /* [ATTN_TOKENS, rp] q~ */
    float *o_lat;   /* [ATTN_TOKENS, rp] o~ */
    float *s_lat;   /* [ATTN_TOKENS, ks] q~ . c_j, then the probabilities */
    float *s_pe;    /* [ATTN_TOKENS, ks] q_pe . kpe_j */
};

static struct attn_bufs attn_bufs_get(const struct attn_job *j, int thread)
{
    const struct mtp_mla_dims *dm = j->dm;
    struct attn_bufs b;
    b.rp = mtp_cpu_panel_stride(dm->kv_lora);
    b.ks = mtp_cpu_panel_stride(j->start_pos + j->n);
    size_t total = (size_t)(dm->nope + dm->v + 2 * ATTN_TOKENS) * b.rp + 2 * ATTN_TOKENS * b.ks;
    float *p = mtp_cpu_thread_scratch(j->ctx, thread, total);
    b.wuk = p;
    b.wuv = b.wuk + (size_t)dm->nope * b.rp;
    b.q_lat = b.wuv + (size_t)dm->v * b.rp;
    b.o_lat = b.q_lat + ATTN_TOKENS * b.rp;
    b.s_lat = b.o_lat + ATTN_TOKENS * b.rp;
    b.s_pe = b.s_lat + ATTN_TOKENS * b.ks;
    return b;
}

void mtp_cpu_attention_probs(float *s, const float *pe, int len, float scale)
{
    float mx = -INFINITY;
    for (int k = 0; k < len; k++) {
        s[k] = (s[k] + pe[k]) * scale;
        if (s[k] > mx)
            mx = s[k];
    }
    float sum = 0.0f;
    for (int k = 0; k < len; k++) {
        s[k] = expf(s[k] - mx);
        sum += s[k];
    }
    for (int k = 0; k < len; k++)
        s[k] = s[k] / sum;
}

/* Item: head h = item / n_blocks, tokens [t0, t0 + nt). */
static void attn_item(void *arg, int item, int thread)
{
    const struct attn_job *j = arg;
    const struct mtp_mla_dims *dm = j->dm;
    const int H = dm->n_heads, qk = dm->nope + dm->rope, rkv = dm->kv_lora;
    const int cw = rkv + dm->rope, head_rows = (item / j->n_blocks) * (dm->nope + dm->v);
    const int h = item / j->n_blocks, t0 = (item % j->n_blocks) * ATTN_TOKENS;
    const int nt = j->n - t0 < ATTN_TOKENS ? j->n - t0 : ATTN_TOKENS;
    const int n_keys = j->start_pos + t0 + nt; /* keys of the block's last token */
    struct attn_bufs b = attn_bufs_get(j, thread);

    for (int i = 0; i < dm->nope; i++)
        mtp_cpu_row_decode(j->kv_b, head_rows + i, 0, rkv, b.wuk + (size_t)i * b.rp);
    for (int i = 0; i < dm->v; i++)
        mtp_cpu_row_decode(j->kv_b, head_rows + dm->nope + i, 0, rkv, b.wuv + (size_t)i * b.rp);

    /* q~[c] = sum_i q_nope[i] * W_UK[h][i][c], rows accumulated in order i = 0..dn-1. */
    const float *q0 = j->q + (size_t)t0 * (size_t)(H * qk) + (size_t)h * qk;
    int len[ATTN_TOKENS];
    for (int t = 0; t < nt; t++)
        len[t] = dm->nope;
    mtp_cpu_axpy_rows(b.wuk, b.rp, q0, (size_t)(H * qk), len, nt, rkv, b.q_lat, b.rp);

    /* Scores of every block token against keys 0..n_keys-1 (the causal prefix is used below). */
    mtp_cpu_dot_rows(j->cache, (size_t)cw, n_keys, rkv, b.q_lat, (int)b.rp, nt, b.s_lat,
                     (int)b.ks);
    mtp_cpu_dot_rows(j->cache + rkv, (size_t)cw, n_keys, dm->rope, q0 + dm->nope, H * qk, nt,
                     b.s_pe, (int)b.ks);

    /* Probabilities p_k / sum per token, over its own prefix (a GEMM-sized
     * prompt prefill may take the vectorised softmax: cpu_gemm.c). */
    int fast = j->ctx->prefill && j->n > MTP_CPU_INVARIANT_MAX_N;
    for (int t = 0; t < nt; t++) {
        len[t] = j->start_pos + t0 + t + 1;
        float *p = b.s_lat + (size_t)t * b.ks, *pe = b.s_pe + (size_t)t * b.ks;
        if (fast) {
            mtp_cpu_softmax_prefill(p, pe, len[t], dm->scale);
            continue;
        }
        mtp_cpu_attention_probs(p, pe, len[t], dm->scale);
    }
    /* o~ = sum_k p_k c_k, in order k = 0..len-1. */
    mtp_cpu_axpy_rows(j->cache, (size_t)cw, b.s_lat, b.ks, len, nt, rkv, b.o_lat, b.rp);

    /* o[i] = W_UV[h][i] . o~ */
    mtp_cpu_dot_rows(b.wuv, b.rp, dm->v, rkv, b.o_lat, (int)b.rp, nt,
                     j->out + (size_t)t0 * (size_t)(H * dm->v) + (size_t)h * dm->v, H * dm->v);
}

void mtp_cpu_mla_attention(void *vctx, const struct mtp_mla_dims *dims,
                           const struct mtp_weight *kv_b, const float *q, int n, int start_pos,
                           const float *cache, float *out)
{
    struct mtp_cpu_ctx *ctx = vctx;
    MTP_CHECK(kv_b->rows == dims->n_heads * (dims->nope + dims->v) &&
              kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && start_pos >= 0);
    if (n == 0)
        return;
    int n_blocks = (n + ATTN_TOKENS - 1) / ATTN_TOKENS;
    struct attn_job job = {ctx, dims, kv_b, q, cache, out, n, start_pos, n_blocks};
    /* Head-major items: consecutive items of one thread share W_UK[h], W_UV[h]. */
    mtp_cpu_parallel_for(ctx, dims->n_heads * n_blocks, attn_item, &job);
}
