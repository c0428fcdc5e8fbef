/*
 * forward.c - one DeepSeek decoder block, written once against the backend
 * interface (kernels/backend.h), for main layers and MTP modules alike.
 *
 *   h = h + o_proj( MLA( RMSNorm(h; input_layernorm), pos ) )
 *   h = h + FFN( RMSNorm(h; post_attention_layernorm) )      dense MLP or MoE
 *
 * The forward in flight (e->fw) is a ragged batch of segments, each a run of
 * tokens of one sequence. Norms, projections, the dense FFN and the MoE layer
 * run over all tokens at once; attention runs per segment against that
 * sequence's cache. Every op reduces each token in an order independent of
 * the batch (backend.h), so a segment's bits are those it gets alone.
 *
 * MLA (docs/model.md §3): the kv_a projection of every token goes to a
 * scratch; the first rkv values of each row are normalised in place and the
 * last dr values rotated in place; then each segment's rows are copied into
 * its sequence's cache, which so holds exactly what the absorbed attention
 * reads (576 values per token for V3).
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

/* RoPE of the forward's rows (x, stride) at each token's position e->fw.pos,
 * one call per run of consecutive positions (RoPE is per token, so the bits
 * are those of a call per token). */
static void rope_rows(struct mtp_engine *e, float *x, int stride, int heads, int head_stride,
                      int offset)
{
    const int32_t *pos = e->fw.pos;
    int n = e->fw.n;
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
static void attention_queries(struct mtp_engine *e, const struct mtp_attention *a)
{
    const struct mtp_config *c = &e->model->cfg;
    int qk = mtp_config_qk_head_dim(c), n = e->fw.n;
    int q_width = c->num_attention_heads * qk;
    if (c->q_lora_rank > 0) {
        e->be->matmul(e->bctx, &a->q_a, e->s.xn, c->hidden_size, n, e->s.q_lat, c->q_lora_rank);
        e->be->rmsnorm(e->bctx, e->s.q_lat, c->q_lora_rank, &a->q_a_norm, n, c->q_lora_rank,
                       latent_norm_eps(e), e->s.q_lat, c->q_lora_rank);
        e->be->matmul(e->bctx, &a->q_b, e->s.q_lat, c->q_lora_rank, n, e->s.q, q_width);
    } else {
        e->be->matmul(e->bctx, &a->q, e->s.xn, c->hidden_size, n, e->s.q, q_width);
    }
    rope_rows(e, e->s.q, q_width, c->num_attention_heads, qk, c->qk_nope_head_dim);
}

/* Latent rows [RMSNorm(c_kv) ; RoPE(k_pe)] of every token into s.kv, then
 * each segment's rows into its sequence's cache of LAYER. */
static void attention_cache_rows(struct mtp_engine *e, const struct mtp_layer *layer)
{
    const struct mtp_config *c = &e->model->cfg;
    const struct mtp_attention *a = &layer->attn;
    int cw = e->cache_width, n = e->fw.n;
    e->be->matmul(e->bctx, &a->kv_a, e->s.xn, c->hidden_size, n, e->s.kv, cw);
    e->be->rmsnorm(e->bctx, e->s.kv, cw, &a->kv_a_norm, n, c->kv_lora_rank, latent_norm_eps(e),
                   e->s.kv, cw);
    rope_rows(e, e->s.kv, cw, 1, cw, c->kv_lora_rank);
    mtp_engine_trace(e, "kv_cache", layer->index, e->s.kv, n, cw, cw);
    size_t t = 0;
    for (int i = 0; i < e->fw.n_segs; i++) {
        const struct mtp_segment *g = &e->fw.segs[i];
        float *cache = e->seqs[g->seq].cache[layer->index];
        e->be->copy(e->bctx, cache + (size_t)mtp_segment_first_row(g) * cw,
                    e->s.kv + t * cw, (size_t)g->n * cw * sizeof(float));
        t += (size_t)g->n;
    }
}

/* s.attn rows of each segment: MLA over its sequence's cache of LAYER, with a
 * causal mask or the segment's tree keys. */
static void attention_per_segment(struct mtp_engine *e, const struct mtp_layer *layer)
{
    const struct mtp_config *c = &e->model->cfg;
    size_t q_width = (size_t)c->num_attention_heads * mtp_config_qk_head_dim(c);
    size_t attn_width = (size_t)c->num_attention_heads * c->v_head_dim;
    size_t t = 0;
    for (int i = 0; i < e->fw.n_segs; i++) {
        const struct mtp_segment *g = &e->fw.segs[i];
        const float *cache = e->seqs[g->seq].cache[layer->index];
        const float *q = e->s.q + t * q_width;
        float *out = e->s.attn + t * attn_width;
        if (g->tree)
            e->be->mla_tree_attention(e->bctx, &e->mla, &layer->attn.kv_b, q, g->n,
                                      &g->tree->keys, cache, out);
        else
            e->be->mla_attention(e->bctx, &e->mla, &layer->attn.kv_b, q, g->n, g->start_pos,
                                 cache, out);
        t += (size_t)g->n;
    }
}

/* s.tmp = o_proj(MLA(s.xn)). */
static void attention_forward(struct mtp_engine *e, const struct mtp_layer *layer)
{
    const struct mtp_config *c = &e->model->cfg;
    attention_queries(e, &layer->attn);
    attention_cache_rows(e, layer);
    attention_per_segment(e, layer);
    int attn_width = c->num_attention_heads * c->v_head_dim;
    e->be->matmul(e->bctx, &layer->attn.o, e->s.attn, attn_width, e->fw.n, e->s.tmp,
                  c->hidden_size);
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

void mtp_forward_count_experts(struct mtp_engine *e, int n_moe)
{
    int k = e->route.top_k, n = e->fw.n, nk = n * k;
    if (n_moe <= 0 || nk <= 0)
        return;
    e->be->download(e->bctx, e->host_idx, e->s.idx, (size_t)n_moe * nk * sizeof(int32_t));
    for (int l = 0; l < n_moe; l++) {
        const int32_t *slice = e->host_idx + (size_t)l * nk;
        e->experts_touched[l] = count_distinct(e, slice, nk);
        size_t t = 0;
        for (int i = 0; i < e->fw.n_segs; i++) {
            int seg_n = e->fw.segs[i].n;
            e->seg_touched[(size_t)i * e->n_moe_main + l] =
                count_distinct(e, slice + t * k, seg_n * k);
            t += (size_t)seg_n;
        }
    }
}

/* s.tmp = FFN(s.xn): dense SwiGLU, or routed experts + shared expert. A main
 * MoE layer routes into slice MOE_SLOT of s.idx (slices of n*k ids, packed
 * for one download after the forward); MTP modules use slice 0. */
static void ffn_forward(struct mtp_engine *e, const struct mtp_layer *layer, int moe_slot)
{
    int n = e->fw.n;
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

void mtp_forward_block(struct mtp_engine *e, const struct mtp_layer *layer, int moe_slot)
{
    int d = e->model->cfg.hidden_size, n = e->fw.n;
    float eps = (float)e->model->cfg.rms_norm_eps;
    size_t nd = (size_t)n * d;

    e->be->rmsnorm(e->bctx, e->s.x, d, &layer->attn_norm, n, d, eps, e->s.xn, d);
    mtp_engine_trace(e, "attn_norm", layer->index, e->s.xn, n, d, d);
    attention_forward(e, layer);
    mtp_engine_trace(e, "attn_out", layer->index, e->s.tmp, n, d, d);
    e->be->add(e->bctx, e->s.x, e->s.tmp, nd);

    e->be->rmsnorm(e->bctx, e->s.x, d, &layer->ffn_norm, n, d, eps, e->s.xn, d);
    mtp_engine_trace(e, "ffn_norm", layer->index, e->s.xn, n, d, d);
    ffn_forward(e, layer, moe_slot);
    mtp_engine_trace(e, "ffn_out", layer->index, e->s.tmp, n, d, d);
    e->be->add(e->bctx, e->s.x, e->s.tmp, nd);
    mtp_engine_trace(e, "residual", layer->index, e->s.x, n, d, d);
}
