/*
 * forward.c - one DeepSeek decoder block, written once against the backend
 * interface (kernels/backend.h), for main layers and MTP modules alike.
 *
 *   h = h + o_proj( MLA( RMSNorm(h; input_layernorm), pos ) )
 *   h = h + FFN( RMSNorm(h; post_attention_layernorm) )      dense MLP or MoE
 *
 * MLA (docs/model.md §3): the kv_a projection is written straight into the latent
 * cache rows of this forward; the first rkv values of each row are normalised
 * in place and the last dr values rotated in place, so the cache holds exactly
 * what the absorbed attention reads (576 values per token for V3).
 *
 * Shapes: n tokens, d = hidden, H heads, dn/dr/dv head dims, rq/rkv LoRA ranks.
 */
#include <string.h> /* defines: memset */

#include "engine_internal.h"

/* The eps of q_a_layernorm and kv_a_layernorm: DeepSeek's reference
 * (inference/model.py builds both RMSNorms with its default eps) and
 * transformers (DeepseekV3RMSNorm(q_lora_rank), default 1e-6) fix it at 1e-6
 * whatever rms_norm_eps says; vLLM uses rms_norm_eps (docs/model.md §9). With a
 * config whose rms_norm_eps is not 1e-6 the two differ visibly (issue 11), so
 * follow the reference. */
static float latent_norm_eps(const struct mtp_engine *e)
{
    (void)e;
    return 1e-6f;
}

/* RoPE of N rows at positions start_pos + t, or in a tree-shaped forward at
 * the batch's per-token positions, one call per run of consecutive positions
 * (RoPE is per token, so the bits are those of a call per token). */
static void rope_rows(struct mtp_engine *e, float *x, int stride, int n, int heads,
                      int head_stride, int offset, int start_pos)
{
    if (!e->tree) {
        e->be->rope(e->bctx, x, stride, n, heads, head_stride, offset, start_pos, &e->rope);
        return;
    }
    const int32_t *pos = e->tree->pos;
    for (int t = 0; t < n;) {
        int run = 1;
        while (t + run < n && pos[t + run] == pos[t] + run)
            run++;
        e->be->rope(e->bctx, x + (size_t)t * stride, stride, run, heads, head_stride, offset,
                    pos[t], &e->rope);
        t += run;
    }
}

/* Queries [n, H*(dn+dr)] into s.q, rope part rotated. */
static void attention_queries(struct mtp_engine *e, const struct mtp_attention *a, int n,
                              int start_pos)
{
    const struct mtp_config *c = &e->model->cfg;
    int qk = mtp_config_qk_head_dim(c);
    int q_width = c->num_attention_heads * qk;
    if (c->q_lora_rank > 0) {
        e->be->matmul(e->bctx, &a->q_a, e->s.xn, c->hidden_size, n, e->s.q_lat, c->q_lora_rank);
        e->be->rmsnorm(e->bctx, e->s.q_lat, c->q_lora_rank, &a->q_a_norm, n, c->q_lora_rank,
                       latent_norm_eps(e), e->s.q_lat, c->q_lora_rank);
        e->be->matmul(e->bctx, &a->q_b, e->s.q_lat, c->q_lora_rank, n, e->s.q, q_width);
    } else {
        e->be->matmul(e->bctx, &a->q, e->s.xn, c->hidden_size, n, e->s.q, q_width);
    }
    rope_rows(e, e->s.q, q_width, n, c->num_attention_heads, qk, c->qk_nope_head_dim, start_pos);
}

/* Latent cache rows start_pos..start_pos+n-1: [RMSNorm(c_kv) ; RoPE(k_pe)]. */
static void attention_cache_rows(struct mtp_engine *e, const struct mtp_attention *a, int n,
                                 int start_pos, float *cache)
{
    const struct mtp_config *c = &e->model->cfg;
    int cw = e->cache_width;
    float *rows = cache + (size_t)start_pos * cw;
    e->be->matmul(e->bctx, &a->kv_a, e->s.xn, c->hidden_size, n, rows, cw);
    e->be->rmsnorm(e->bctx, rows, cw, &a->kv_a_norm, n, c->kv_lora_rank, latent_norm_eps(e), rows,
                   cw);
    rope_rows(e, rows, cw, n, 1, cw, c->kv_lora_rank, start_pos);
}

/* s.tmp = o_proj(MLA(s.xn)). */
static void attention_forward(struct mtp_engine *e, const struct mtp_layer *layer, int n,
                              int start_pos, float *cache)
{
    const struct mtp_config *c = &e->model->cfg;
    const struct mtp_attention *a = &layer->attn;
    attention_queries(e, a, n, start_pos);
    attention_cache_rows(e, a, n, start_pos, cache);
    mtp_engine_trace(e, "kv_cache", layer->index, cache + (size_t)start_pos * e->cache_width, n,
                     e->cache_width, e->cache_width);
    if (e->tree)
        e->be->mla_tree_attention(e->bctx, &e->mla, &a->kv_b, e->s.q, n, &e->tree->keys, cache,
                                  e->s.attn);
    else
        e->be->mla_attention(e->bctx, &e->mla, &a->kv_b, e->s.q, n, start_pos, cache,
                             e->s.attn);
    int attn_width = c->num_attention_heads * c->v_head_dim;
    e->be->matmul(e->bctx, &a->o, e->s.attn, attn_width, n, e->s.tmp, c->hidden_size);
}

/* Distinct experts among the N*K ids of IDS. */
static int count_distinct(struct mtp_engine *e, const int32_t *ids, int count)
{
    int touched = 0;
    memset(e->expert_seen, 0, (size_t)e->route.n_experts);
    for (int i = 0; i < count; i++) {
        int x = ids[i];
        if (x >= 0 && x < e->route.n_experts && !e->expert_seen[x]) {
            e->expert_seen[x] = 1;
            touched++;
        }
    }
    return touched;
}

void mtp_forward_count_experts(struct mtp_engine *e, int n, int n_moe)
{
    int nk = n * e->route.top_k;
    if (n_moe <= 0 || nk <= 0)
        return;
    e->be->download(e->bctx, e->host_idx, e->s.idx, (size_t)n_moe * nk * sizeof(int32_t));
    for (int l = 0; l < n_moe; l++)
        e->experts_touched[l] = count_distinct(e, e->host_idx + (size_t)l * nk, nk);
}

/* s.tmp = FFN(s.xn): dense SwiGLU, or routed experts + shared expert. A main
 * MoE layer routes into slice MOE_SLOT of s.idx (slices of n*k ids, packed
 * for one download); MTP modules use slice 0. */
static void ffn_forward(struct mtp_engine *e, const struct mtp_layer *layer, int n, int moe_slot)
{
    if (layer->kind == MTP_LAYER_DENSE) {
        e->be->ffn(e->bctx, &layer->dense, e->s.xn, n, e->s.tmp);
        return;
    }
    int k = e->route.top_k;
    int32_t *idx = e->s.idx + (size_t)(moe_slot > 0 ? moe_slot : 0) * n * k;
    e->be->route(e->bctx, &layer->moe, &e->route, e->s.xn, n, idx, e->s.weights);
    if (e->trace_i32) {
        e->be->download(e->bctx, e->host_idx, idx, (size_t)n * k * sizeof(int32_t));
        e->trace_i32(e->trace_user, "router_idx", layer->index, e->host_idx, n, k);
    }
    mtp_engine_trace(e, "router_weights", layer->index, e->s.weights, n, k, k);
    e->be->moe_ffn(e->bctx, &layer->moe, k, e->s.xn, n, idx, e->s.weights, e->s.tmp);
}

void mtp_forward_block(struct mtp_engine *e, const struct mtp_layer *layer, int n, int start_pos,
                       float *cache, int moe_slot)
{
    int d = e->model->cfg.hidden_size;
    float eps = (float)e->model->cfg.rms_norm_eps;
    size_t nd = (size_t)n * d;

    e->be->rmsnorm(e->bctx, e->s.x, d, &layer->attn_norm, n, d, eps, e->s.xn, d);
    mtp_engine_trace(e, "attn_norm", layer->index, e->s.xn, n, d, d);
    attention_forward(e, layer, n, start_pos, cache);
    mtp_engine_trace(e, "attn_out", layer->index, e->s.tmp, n, d, d);
    e->be->add(e->bctx, e->s.x, e->s.tmp, nd);

    e->be->rmsnorm(e->bctx, e->s.x, d, &layer->ffn_norm, n, d, eps, e->s.xn, d);
    mtp_engine_trace(e, "ffn_norm", layer->index, e->s.xn, n, d, d);
    ffn_forward(e, layer, n, moe_slot);
    mtp_engine_trace(e, "ffn_out", layer->index, e->s.tmp, n, d, d);
    e->be->add(e->bctx, e->s.x, e->s.tmp, nd);
    mtp_engine_trace(e, "residual", layer->index, e->s.x, n, d, d);
}
