/*
 * cpu_tree_attention.c - MLA attention (absorbed form, docs/model.md §3.4) over
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
 * Work items are (head, block of TREE_TOKENS nodes), as in cpu_attention.c:
 * W_UK[h] and W_UV[h] are decoded once per item, and the prefix, which every
 * node of the block shares, goes through the row-blocked dot_rows/axpy_rows
 * (bitwise the canonical dot and the axpy chain). Each node's own keys follow
 * one by one, continuing the same chains: scores are canonical dots, and o~
 * continues its fused chain in key order with mtp_cpu_axpy_f32.
 */
#include "cpu_internal.h"
#include "cpu_pool.h" /* defines: mtp_cpu_parallel_for, mtp_cpu_thread_scratch */

#include "../../core/error.h" /* defines: MTP_CHECK */

enum { TREE_TOKENS = 8 }; /* nodes per work item */

struct tree_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_mla_dims *dm;
    const struct mtp_weight *kv_b;
    const struct mtp_tree_keys *keys;
    const float *q;     /* [n, H*(dn+dr)] */
    const float *cache; /* rows named by keys, [.., rkv+dr] */
    float *out;         /* [n, H*dv] */
    int n, n_blocks, max_own; /* max_own: the longest own key list */
};

/* One item's views of its thread's scratch. */
struct tree_bufs {
    size_t rp;    /* row stride of the panels, >= rkv */
    size_t ks;    /* row stride of the score rows, >= n_prefix + max_own */
    float *wuk;   /* [dn, rp] decoded W_UK[h] */
    float *wuv;   /* [dv, rp] decoded W_UV[h] */
    float *q_lat; /* [TREE_TOKENS, rp] q~ */
    float *o_lat; /* [TREE_TOKENS, rp] o~ */
    float *s_lat; /* [TREE_TOKENS, ks] q~ . c_j, then the probabilities */
    float *s_pe;  /* [TREE_TOKENS, ks] q_pe . kpe_j */
};

static struct tree_bufs tree_bufs_get(const struct tree_job *j, int thread)
{
    const struct mtp_mla_dims *dm = j->dm;
    struct tree_bufs b;
    b.rp = mtp_cpu_panel_stride(dm->kv_lora);
    b.ks = mtp_cpu_panel_stride(j->keys->n_prefix + j->max_own);
    size_t total = (size_t)(dm->nope + dm->v + 2 * TREE_TOKENS) * b.rp + 2 * TREE_TOKENS * b.ks;
    float *p = mtp_cpu_thread_scratch(j->ctx, thread, total);
    b.wuk = p;
    b.wuv = b.wuk + (size_t)dm->nope * b.rp;
    b.q_lat = b.wuv + (size_t)dm->v * b.rp;
    b.o_lat = b.q_lat + TREE_TOKENS * b.rp;
    b.s_lat = b.o_lat + TREE_TOKENS * b.rp;
    b.s_pe = b.s_lat + TREE_TOKENS * b.ks;
    return b;
}

/* Scores of node T (q~ row QL, rope query QPE) against its own keys, after
 * the prefix's, into SL and SPE from column n_prefix on. */
static void own_scores(const struct tree_job *j, int t, const float *ql, const float *qpe,
                       float *sl, float *spe)
{
    const int rkv = j->dm->kv_lora, cw = rkv + j->dm->rope, P = j->keys->n_prefix;
    for (int i = j->keys->off[t], c = P; i < j->keys->off[t + 1]; i++, c++) {
        const float *row = j->cache + (size_t)j->keys->rows[i] * (size_t)cw;
        sl[c] = mtp_cpu_dot_f32(ql, row, rkv);
        spe[c] = mtp_cpu_dot_f32(qpe, row + rkv, j->dm->rope);
    }
}

/* Item: head h = item / n_blocks, nodes [t0, t0 + nt). */
static void tree_item(void *arg, int item, int thread)
{
    const struct tree_job *j = arg;
    const struct mtp_mla_dims *dm = j->dm;
    const struct mtp_tree_keys *k = j->keys;
    const int H = dm->n_heads, qk = dm->nope + dm->rope, rkv = dm->kv_lora;
    const int cw = rkv + dm->rope, P = k->n_prefix;
    const int h = item / j->n_blocks, t0 = (item % j->n_blocks) * TREE_TOKENS;
    const int nt = j->n - t0 < TREE_TOKENS ? j->n - t0 : TREE_TOKENS;
    const int head_rows = h * (dm->nope + dm->v);
    struct tree_bufs b = tree_bufs_get(j, thread);

    for (int i = 0; i < dm->nope; i++)
        mtp_cpu_row_decode(j->kv_b, head_rows + i, 0, rkv, b.wuk + (size_t)i * b.rp);
    for (int i = 0; i < dm->v; i++)
        mtp_cpu_row_decode(j->kv_b, head_rows + dm->nope + i, 0, rkv, b.wuv + (size_t)i * b.rp);

    /* q~[c] = sum_i q_nope[i] * W_UK[h][i][c], rows accumulated in order i = 0..dn-1. */
    const float *q0 = j->q + (size_t)t0 * (size_t)(H * qk) + (size_t)h * qk;
    int len[TREE_TOKENS];
    for (int t = 0; t < nt; t++)
        len[t] = dm->nope;
    mtp_cpu_axpy_rows(b.wuk, b.rp, q0, (size_t)(H * qk), len, nt, rkv, b.q_lat, b.rp);

    /* Scores: the shared prefix for the whole block, then each node's own keys. */
    mtp_cpu_dot_rows(j->cache, (size_t)cw, P, rkv, b.q_lat, (int)b.rp, nt, b.s_lat, (int)b.ks);
    mtp_cpu_dot_rows(j->cache + rkv, (size_t)cw, P, dm->rope, q0 + dm->nope, H * qk, nt, b.s_pe,
                     (int)b.ks);
    for (int t = 0; t < nt; t++) {
        float *sl = b.s_lat + (size_t)t * b.ks, *spe = b.s_pe + (size_t)t * b.ks;
        own_scores(j, t0 + t, b.q_lat + (size_t)t * b.rp, q0 + (size_t)t * (H * qk) + dm->nope,
                   sl, spe);
        mtp_cpu_attention_probs(sl, spe, P + k->off[t0 + t + 1] - k->off[t0 + t], dm->scale);
    }

    /* o~ = sum_j p_j c_j in key order: the prefix for the block (one chain per
     * element), then each node's own keys continuing its chains. */
    for (int t = 0; t < nt; t++)
        len[t] = P;
    mtp_cpu_axpy_rows(j->cache, (size_t)cw, b.s_lat, b.ks, len, nt, rkv, b.o_lat, b.rp);
    for (int t = 0; t < nt; t++) {
        const float *p = b.s_lat + (size_t)t * b.ks;
        float *ol = b.o_lat + (size_t)t * b.rp;
        for (int i = k->off[t0 + t], c = P; i < k->off[t0 + t + 1]; i++, c++)
            mtp_cpu_axpy_f32(ol, p[c], j->cache + (size_t)k->rows[i] * (size_t)cw, rkv);
    }

    /* o[i] = W_UV[h][i] . o~ */
    mtp_cpu_dot_rows(b.wuv, b.rp, dm->v, rkv, b.o_lat, (int)b.rp, nt,
                     j->out + (size_t)t0 * (size_t)(H * dm->v) + (size_t)h * dm->v, H * dm->v);
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
    const int H = dims->n_heads;
    MTP_CHECK(kv_b->rows == H * (dims->nope + dims->v) && kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && keys->n_prefix >= 0 && keys->off[0] == 0);
    if (n == 0)
        return;
    int n_blocks = (n + TREE_TOKENS - 1) / TREE_TOKENS;
    struct tree_job job = {ctx, dims, kv_b, keys, q, cache, out, n, n_blocks,
                           longest_list(keys, n)};
    /* Head-major items: consecutive items of one thread share W_UK[h], W_UV[h]. */
    mtp_cpu_parallel_for(ctx, H * n_blocks, tree_item, &job);
}
