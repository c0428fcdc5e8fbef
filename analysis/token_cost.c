/*
 * token_cost.c - bytes and FLOPs one decoded token reads (token_cost.h).
 */
#include "token_cost.h"

#include "../core/dtype.h" /* defines: mtp_dtype_size */

static void add_rows(struct mtp_token_cost *k, const struct mtp_weight *w, int rows)
{
    if (!w->data || rows <= 0)
        return;
    double elems = (double)rows * w->cols;
    k->weight_bytes += elems * (double)mtp_dtype_size(w->dtype);
    if (w->rows > 1)
        k->flops += 2 * elems;
}

static void add_weight(struct mtp_token_cost *k, const struct mtp_weight *w)
{
    add_rows(k, w, w->rows);
}

static void add_ffn(struct mtp_token_cost *k, const struct mtp_ffn *f)
{
    add_weight(k, &f->gate);
    add_weight(k, &f->up);
    add_weight(k, &f->down);
}

static void add_block(struct mtp_token_cost *k, const struct mtp_config *c,
                      const struct mtp_layer *l, int context)
{
    const struct mtp_attention *at = &l->attn;
    const struct mtp_weight *ws[] = {&at->q_a, &at->q_b, &at->q, &at->kv_a, &at->kv_b, &at->o};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        add_weight(k, ws[i]);
    /* Absorbed attention over the cached rows (kv_b counted above as the absorb matrices). */
    double H = c->num_attention_heads, rkv = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    k->flops += 2.0 * H * context * (rkv + dr) + 2.0 * H * context * rkv;
    k->cache_bytes += (double)context * (rkv + dr) * sizeof(float);
    if (l->kind == MTP_LAYER_DENSE) {
        add_ffn(k, &l->dense);
        return;
    }
    add_weight(k, &l->moe.router);
    if (l->moe.has_shared)
        add_ffn(k, &l->moe.shared);
    for (int x = 0; x < c->num_experts_per_tok; x++)
        add_ffn(k, &l->moe.experts[0]); /* all experts of a layer share one shape */
}

struct mtp_token_cost mtp_token_cost_main(const struct mtp_model *m, int context)
{
    struct mtp_token_cost k = {0, 0, 0};
    for (int i = 0; i < m->cfg.num_hidden_layers; i++)
        add_block(&k, &m->cfg, &m->layers[i], context);
    add_weight(&k, &m->lm_head);
    return k;
}

struct mtp_token_cost mtp_token_cost_module(const struct mtp_model *m, int module, int context,
                                            int head_rows)
{
    struct mtp_token_cost k = {0, 0, 0};
    const struct mtp_layer *l = mtp_model_module(m, module);
    if (!l)
        return k;
    add_block(&k, &m->cfg, l, context);
    add_weight(&k, &l->nextn.eh_proj);
    add_rows(&k, l->nextn.head, head_rows);
    return k;
}
