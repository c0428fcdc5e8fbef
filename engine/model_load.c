/*
 * model_load.c - turn a Hugging Face model directory (config.json + safetensors)
 * into a validated struct mtp_model (model.h, docs/model.md §2).
 *
 * The config decides which tensors must exist (q LoRA or plain q_proj, dense or
 * MoE layers, shared experts, router bias for noaux_tc, MTP modules); each is
 * looked up by its HF name and checked for dtype and exact shape. Matrices stay
 * in the mapping; 1-D tensors are converted to owned float arrays. Every tensor
 * the config does not use is listed in m->unused, never silently dropped.
 */
#include "model.h"

#include <stdint.h> /* defines: uintptr_t */
#include <stdio.h>  /* defines: snprintf, fprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strlen, strncmp */

#include "../core/error.h"
#include "fp8_scales.h" /* defines: mtp_fp8_scales_check */

/* Tensor names are "model.layers.L.<suffix>"; this bounds the longest. */
enum { ML_NAME_MAX = 256 };

static void ml_shape_str(const struct mtp_tensor_info *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Find NAME or fail naming the directory and what the config expected. */
static struct mtp_tensor_info *ml_find(struct mtp_model *m, const char *name, const char *shape,
                                       const char *why)
{
    struct mtp_tensor_info *t = mtp_checkpoint_find(m->ckpt, name);
    if (!t)
        mtp_error_set("%s: missing tensor '%s': expected shape %s %s from config.json, found no "
                      "such tensor in the checkpoint", m->dir, name, shape, why);
    return t;
}

/* Data handed to backends as typed arrays must be aligned to the element size
 * (writers following the safetensors reference keep it so). */
static int ml_check_aligned(const struct mtp_tensor_info *t, size_t elem)
{
    if (elem && (uintptr_t)t->data % elem)
        return mtp_error_set("%s: tensor '%s': expected data aligned to %zu bytes (its element "
                             "size), found a misaligned offset", t->file, t->name, elem);
    return MTP_OK;
}

/* The F32 block scales of FP8 weight W (NAME + "_scale_inv"). */
static int ml_bind_scale(struct mtp_model *m, struct mtp_weight *w, const struct mtp_tensor_info *wt)
{
    char name[ML_NAME_MAX + 16], shape[64];
    int b0 = m->cfg.weight_block_size[0], b1 = m->cfg.weight_block_size[1];
    long long sr = (w->rows + (long long)b0 - 1) / b0, sc = (w->cols + (long long)b1 - 1) / b1;
    snprintf(name, sizeof name, "%s_scale_inv", wt->name);
    snprintf(shape, sizeof shape, "[%lld, %lld]", sr, sc);
    struct mtp_tensor_info *t = mtp_checkpoint_find(m->ckpt, name);
    if (!t)
        return mtp_error_set("%s: missing tensor '%s': expected F32 block scales of shape %s for "
                             "the F8_E4M3 weight '%s' (in %s, blocks %dx%d), found none",
                             m->dir, name, shape, wt->name, wt->file, b0, b1);
    char found[96];
    ml_shape_str(t, found, sizeof found);
    if (t->dtype != MTP_DTYPE_F32)
        return mtp_error_set("%s: tensor '%s': expected dtype F32, found %s", t->file, name,
                             t->dtype_name);
    if (t->ndim != 2 || t->shape[0] != sr || t->shape[1] != sc)
        return mtp_error_set("%s: tensor '%s': expected shape %s (ceil(rows/%d), ceil(cols/%d)) "
                             "from weight_block_size, found %s", t->file, name, shape, b0, b1,
                             found);
    if (ml_check_aligned(t, 4) || mtp_fp8_scales_check(t))
        return MTP_ERR;
    w->scale_inv = t->data;
    w->block_rows = b0;
    w->block_cols = b1;
    t->used = 1;
    return MTP_OK;
}

/* Bind matrix NAME [ROWS, COLS]; WHY spells the shape in config terms. */
static int ml_bind_matrix(struct mtp_model *m, struct mtp_weight *w, const char *name, int rows,
                          int cols, const char *why)
{
    char shape[64], found[96];
    snprintf(shape, sizeof shape, "[%d, %d]", rows, cols);
    struct mtp_tensor_info *t = ml_find(m, name, shape, why);
    if (!t)
        return MTP_ERR;
    if (t->dtype != MTP_DTYPE_F32 && t->dtype != MTP_DTYPE_BF16 && t->dtype != MTP_DTYPE_F16 &&
        t->dtype != MTP_DTYPE_F8_E4M3)
        return mtp_error_set("%s: tensor '%s': expected dtype F32, BF16, F16 or F8_E4M3, found %s",
                             t->file, name, t->dtype_name);
    ml_shape_str(t, found, sizeof found);
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return mtp_error_set("%s: tensor '%s': expected shape %s %s from config.json, found %s",
                             t->file, name, shape, why, found);
    if (ml_check_aligned(t, mtp_dtype_size(t->dtype)))
        return MTP_ERR;
    memset(w, 0, sizeof *w);
    w->dtype = t->dtype;
    w->rows = rows;
    w->cols = cols;
    w->data = t->data;
    w->name = t->name;
    t->used = 1;
    if (t->dtype == MTP_DTYPE_F8_E4M3)
        return ml_bind_scale(m, w, t);
    return MTP_OK;
}

/* Bind 1-D tensor NAME [N] as an owned F32 copy (rows = 1, cols = N). */
static int ml_bind_vector(struct mtp_model *m, struct mtp_weight *w, const char *name, int n,
                          const char *why)
{
    char shape[32], found[96];
    snprintf(shape, sizeof shape, "[%d]", n);
    struct mtp_tensor_info *t = ml_find(m, name, shape, why);
    if (!t)
        return MTP_ERR;
    if (t->dtype != MTP_DTYPE_F32 && t->dtype != MTP_DTYPE_BF16 && t->dtype != MTP_DTYPE_F16)
        return mtp_error_set("%s: tensor '%s': expected dtype F32, BF16 or F16, found %s",
                             t->file, name, t->dtype_name);
    ml_shape_str(t, found, sizeof found);
    if (t->ndim != 1 || t->shape[0] != n)
        return mtp_error_set("%s: tensor '%s': expected shape %s %s from config.json, found %s",
                             t->file, name, shape, why, found);
    float *v = mtp_xmalloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = mtp_dtype_load(t->dtype, t->data, (size_t)i); /* unaligned-safe */
    memset(w, 0, sizeof *w);
    w->dtype = MTP_DTYPE_F32;
    w->rows = 1;
    w->cols = n;
    w->data = v;
    w->name = t->name;
    t->used = 1;
    return MTP_OK;
}

/* "model.layers.L.SUFFIX" into BUF. */
static const char *ml_lname(char *buf, int layer, const char *suffix)
{
    snprintf(buf, ML_NAME_MAX, "model.layers.%d.%s", layer, suffix);
    return buf;
}

static int ml_bind_attention(struct mtp_model *m, struct mtp_attention *a, int L)
{
    const struct mtp_config *c = &m->cfg;
    char n[ML_NAME_MAX];
    int h = c->num_attention_heads, d = c->hidden_size, dr = c->qk_rope_head_dim;
    int q_rows = h * mtp_config_qk_head_dim(c); /* overflow excluded by mtp_config_load */
    if (c->q_lora_rank > 0) {
        if (ml_bind_matrix(m, &a->q_a, ml_lname(n, L, "self_attn.q_a_proj.weight"),
                           c->q_lora_rank, d, "(q_lora_rank, hidden_size)") ||
            ml_bind_vector(m, &a->q_a_norm, ml_lname(n, L, "self_attn.q_a_layernorm.weight"),
                           c->q_lora_rank, "(q_lora_rank)") ||
            ml_bind_matrix(m, &a->q_b, ml_lname(n, L, "self_attn.q_b_proj.weight"), q_rows,
                           c->q_lora_rank, "(H*(dn+dr), q_lora_rank)"))
            return MTP_ERR;
    } else if (ml_bind_matrix(m, &a->q, ml_lname(n, L, "self_attn.q_proj.weight"), q_rows, d,
                              "(H*(dn+dr), hidden_size) with q_lora_rank null")) {
        return MTP_ERR;
    }
    if (ml_bind_matrix(m, &a->kv_a, ml_lname(n, L, "self_attn.kv_a_proj_with_mqa.weight"),
                       c->kv_lora_rank + dr, d, "(kv_lora_rank+dr, hidden_size)") ||
        ml_bind_vector(m, &a->kv_a_norm, ml_lname(n, L, "self_attn.kv_a_layernorm.weight"),
                       c->kv_lora_rank, "(kv_lora_rank)") ||
        ml_bind_matrix(m, &a->kv_b, ml_lname(n, L, "self_attn.kv_b_proj.weight"),
                       h * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank,
                       "(H*(dn+dv), kv_lora_rank)") ||
        ml_bind_matrix(m, &a->o, ml_lname(n, L, "self_attn.o_proj.weight"), d,
                       h * c->v_head_dim, "(hidden_size, H*dv)"))
        return MTP_ERR;
    return MTP_OK;
}

/* PREFIX.{gate,up,down}_proj.weight with width INTER (WHY names it). */
static int ml_bind_ffn(struct mtp_model *m, struct mtp_ffn *f, const char *prefix, int inter,
                       const char *why)
{
    char n[ML_NAME_MAX + 32], in_why[96], out_why[96];
    int d = m->cfg.hidden_size;
    snprintf(in_why, sizeof in_why, "(%s, hidden_size)", why);
    snprintf(out_why, sizeof out_why, "(hidden_size, %s)", why);
    snprintf(n, sizeof n, "%s.gate_proj.weight", prefix);
    if (ml_bind_matrix(m, &f->gate, n, inter, d, in_why))
        return MTP_ERR;
    snprintf(n, sizeof n, "%s.up_proj.weight", prefix);
    if (ml_bind_matrix(m, &f->up, n, inter, d, in_why))
        return MTP_ERR;
    snprintf(n, sizeof n, "%s.down_proj.weight", prefix);
    return ml_bind_matrix(m, &f->down, n, d, inter, out_why);
}

/* Stacked expert tensor NAME [E, ROWS, COLS] (transformers 5's fused layout);
 * F8_E4M3 is refused (its block scales would need a stacked layout too). */
static const struct mtp_tensor_info *ml_find_stacked(struct mtp_model *m, const char *name,
                                                     int rows, int cols, const char *why)
{
    char shape[96], found[96];
    int E = m->cfg.n_routed_experts;
    snprintf(shape, sizeof shape, "[%d, %d, %d]", E, rows, cols);
    struct mtp_tensor_info *t = ml_find(m, name, shape, why);
    if (!t)
        return NULL;
    if (t->dtype != MTP_DTYPE_F32 && t->dtype != MTP_DTYPE_BF16 && t->dtype != MTP_DTYPE_F16) {
        mtp_error_set("%s: tensor '%s': expected dtype F32, BF16 or F16 for the fused expert "
                      "layout, found %s", t->file, name, t->dtype_name);
        return NULL;
    }
    ml_shape_str(t, found, sizeof found);
    if (t->ndim != 3 || t->shape[0] != E || t->shape[1] != rows || t->shape[2] != cols) {
        mtp_error_set("%s: tensor '%s': expected shape %s %s from config.json, found %s",
                      t->file, name, shape, why, found);
        return NULL;
    }
    if (ml_check_aligned(t, mtp_dtype_size(t->dtype)))
        return NULL;
    t->used = 1;
    return t;
}

/* Expert E's [ROWS, COLS] block starting at row ROW0 of stacked tensor T. */
static void ml_slice(struct mtp_weight *w, const struct mtp_tensor_info *t, int e, int row0,
                     int rows, int cols)
{
    size_t per_expert = (size_t)t->shape[1] * (size_t)t->shape[2];
    size_t offset = (size_t)e * per_expert + (size_t)row0 * (size_t)cols;
    memset(w, 0, sizeof *w);
    w->dtype = t->dtype;
    w->rows = rows;
    w->cols = cols;
    w->data = (const char *)t->data + offset * mtp_dtype_size(t->dtype);
    w->name = t->name;
}

/* transformers 5 (DeepseekV3NaiveMoe): gate_up_proj [E, 2I, d] holds gate rows
 * 0..I-1 then up rows I..2I-1 (its forward chunks the product in two, gate
 * first); down_proj [E, d, I]. Both are y = W x per expert, as nn.Linear. */
static int ml_bind_fused_experts(struct mtp_model *m, struct mtp_moe *moe, int L)
{
    const struct mtp_config *c = &m->cfg;
    char n[ML_NAME_MAX];
    int I = c->moe_intermediate_size, d = c->hidden_size;
    const struct mtp_tensor_info *gu = ml_find_stacked(
        m, ml_lname(n, L, "mlp.experts.gate_up_proj"), 2 * I, d,
        "(n_routed_experts, 2*moe_intermediate_size, hidden_size)");
    if (!gu)
        return MTP_ERR;
    const struct mtp_tensor_info *dn = ml_find_stacked(
        m, ml_lname(n, L, "mlp.experts.down_proj"), d, I,
        "(n_routed_experts, hidden_size, moe_intermediate_size)");
    if (!dn)
        return MTP_ERR;
    for (int e = 0; e < c->n_routed_experts; e++) {
        ml_slice(&moe->experts[e].gate, gu, e, 0, I, d);
        ml_slice(&moe->experts[e].up, gu, e, I, I, d);
        ml_slice(&moe->experts[e].down, dn, e, 0, d, I);
    }
    return MTP_OK;
}

static int ml_bind_moe(struct mtp_model *m, struct mtp_moe *moe, int L)
{
    const struct mtp_config *c = &m->cfg;
    char n[ML_NAME_MAX];
    if (ml_bind_matrix(m, &moe->router, ml_lname(n, L, "mlp.gate.weight"), c->n_routed_experts,
                       c->hidden_size, "(n_routed_experts, hidden_size)"))
        return MTP_ERR;
    /* The selection bias exists only for noaux_tc; V2 checkpoints have none. A
     * stray one under another method stays unused and is listed. */
    if (c->topk_method == MTP_TOPK_NOAUX_TC &&
        ml_bind_vector(m, &moe->score_bias, ml_lname(n, L, "mlp.gate.e_score_correction_bias"),
                       c->n_routed_experts, "(n_routed_experts) for topk_method noaux_tc"))
        return MTP_ERR;
    moe->has_shared = c->n_shared_experts > 0;
    if (moe->has_shared &&
        ml_bind_ffn(m, &moe->shared, ml_lname(n, L, "mlp.shared_experts"),
                    c->n_shared_experts * c->moe_intermediate_size,
                    "n_shared_experts*moe_intermediate_size"))
        return MTP_ERR;
    moe->experts = mtp_xcalloc((size_t)c->n_routed_experts, sizeof *moe->experts);
    if (mtp_checkpoint_find(m->ckpt, ml_lname(n, L, "mlp.experts.gate_up_proj")))
        return ml_bind_fused_experts(m, moe, L);
    for (int e = 0; e < c->n_routed_experts; e++) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, "mlp.experts.%d", e);
        if (ml_bind_ffn(m, &moe->experts[e], ml_lname(n, L, suffix), c->moe_intermediate_size,
                        "moe_intermediate_size"))
            return MTP_ERR;
    }
    return MTP_OK;
}

/* Optional [V, d] matrix: bound when present, else *PTR = FALLBACK. */
static int ml_bind_optional(struct mtp_model *m, struct mtp_weight *own,
                            const struct mtp_weight **ptr, const struct mtp_weight *fallback,
                            const char *name)
{
    *ptr = fallback;
    if (!mtp_checkpoint_find(m->ckpt, name))
        return MTP_OK;
    if (ml_bind_matrix(m, own, name, m->cfg.vocab_size, m->cfg.hidden_size,
                       "(vocab_size, hidden_size)"))
        return MTP_ERR;
    *ptr = own;
    return MTP_OK;
}

/* The parts only an MTP module has (docs/model.md §2.4). */
static int ml_bind_nextn(struct mtp_model *m, struct mtp_nextn *x, int L)
{
    char n[ML_NAME_MAX];
    int d = m->cfg.hidden_size;
    if (ml_bind_vector(m, &x->enorm, ml_lname(n, L, "enorm.weight"), d, "(hidden_size)") ||
        ml_bind_vector(m, &x->hnorm, ml_lname(n, L, "hnorm.weight"), d, "(hidden_size)") ||
        ml_bind_matrix(m, &x->eh_proj, ml_lname(n, L, "eh_proj.weight"), d, 2 * d,
                       "(hidden_size, 2*hidden_size)") ||
        ml_bind_vector(m, &x->head_norm, ml_lname(n, L, "shared_head.norm.weight"), d,
                       "(hidden_size)") ||
        ml_bind_optional(m, &x->own_embed, &x->embed, &m->embed,
                         ml_lname(n, L, "embed_tokens.weight")) ||
        ml_bind_optional(m, &x->own_head, &x->head, &m->lm_head,
                         ml_lname(n, L, "shared_head.head.weight")))
        return MTP_ERR;
    return MTP_OK;
}

static int ml_bind_layer(struct mtp_model *m, struct mtp_layer *l, int L)
{
    const struct mtp_config *c = &m->cfg;
    char n[ML_NAME_MAX];
    l->index = L;
    l->is_mtp = L >= c->num_hidden_layers;
    l->kind = mtp_config_layer_is_moe(c, L) ? MTP_LAYER_MOE : MTP_LAYER_DENSE;
    if (ml_bind_vector(m, &l->attn_norm, ml_lname(n, L, "input_layernorm.weight"),
                       c->hidden_size, "(hidden_size)") ||
        ml_bind_vector(m, &l->ffn_norm, ml_lname(n, L, "post_attention_layernorm.weight"),
                       c->hidden_size, "(hidden_size)") ||
        ml_bind_attention(m, &l->attn, L))
        return MTP_ERR;
    if (l->kind == MTP_LAYER_MOE) {
        if (ml_bind_moe(m, &l->moe, L))
            return MTP_ERR;
    } else if (ml_bind_ffn(m, &l->dense, ml_lname(n, L, "mlp"), c->intermediate_size,
                           "intermediate_size")) {
        return MTP_ERR;
    }
    return l->is_mtp ? ml_bind_nextn(m, &l->nextn, L) : MTP_OK;
}

static int ml_bind_globals(struct mtp_model *m)
{
    const struct mtp_config *c = &m->cfg;
    if (ml_bind_matrix(m, &m->embed, "model.embed_tokens.weight", c->vocab_size, c->hidden_size,
                       "(vocab_size, hidden_size)") ||
        ml_bind_vector(m, &m->final_norm, "model.norm.weight", c->hidden_size, "(hidden_size)"))
        return MTP_ERR;
    /* Tied: the head is the embedding (a stored lm_head.weight is then unused). */
    if (c->tie_word_embeddings) {
        m->lm_head = m->embed;
        return MTP_OK;
    }
    return ml_bind_matrix(m, &m->lm_head, "lm_head.weight", c->vocab_size, c->hidden_size,
                          "(vocab_size, hidden_size) with tie_word_embeddings false");
}

static void ml_collect_unused(struct mtp_model *m)
{
    size_t n = mtp_checkpoint_count(m->ckpt);
    m->unused = mtp_xcalloc(n ? n : 1, sizeof *m->unused);
    m->n_unused = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mtp_tensor_info *t = mtp_checkpoint_tensor(m->ckpt, i);
        if (!t->used)
            m->unused[m->n_unused++] = mtp_xstrdup(t->name);
    }
}

/* transformers' DeepseekV3Config defaults num_nextn_predict_layers to 1 but
 * never saves MTP layers, so a config may announce modules that are not
 * there. With no tensor of layer N at all, load the main model and say so;
 * a partial module still fails (on its first missing tensor). */
static void ml_check_mtp_present(struct mtp_model *m)
{
    int N = m->cfg.num_hidden_layers, D = m->cfg.num_nextn_predict_layers;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "model.layers.%d.", N);
    size_t len = strlen(prefix), count = mtp_checkpoint_count(m->ckpt);
    if (D == 0)
        return;
    for (size_t i = 0; i < count; i++)
        if (!strncmp(mtp_checkpoint_tensor(m->ckpt, i)->name, prefix, len))
            return;
    m->mtp_announced_absent = D;
    m->cfg.num_nextn_predict_layers = 0;
    fprintf(stderr, "mtpbench: note: %s: config.json announces %d MTP module(s) "
                    "(num_nextn_predict_layers) but the checkpoint has no tensor of layer %d "
                    "(transformers' save_pretrained drops them): loaded the main model only; "
                    "MTP decoding is unavailable\n", m->dir, D, N);
}

int mtp_model_load(const char *dir, struct mtp_model **out)
{
    struct mtp_model *m = mtp_xcalloc(1, sizeof *m);
    size_t len = strlen(dir) + sizeof "/config.json";
    char *cfg_path = mtp_xmalloc(len);
    snprintf(cfg_path, len, "%s/config.json", dir);
    *out = NULL;
    m->dir = mtp_xstrdup(dir);
    int rc = mtp_config_load(cfg_path, &m->cfg);
    free(cfg_path);
    if (rc || mtp_checkpoint_open_dir(dir, &m->ckpt))
        goto fail;
    mtp_checkpoint_advise_random(m->ckpt, true);
    if (ml_bind_globals(m))
        goto fail;
    ml_check_mtp_present(m);
    m->n_layers = mtp_config_num_layers_total(&m->cfg);
    m->layers = mtp_xcalloc((size_t)m->n_layers, sizeof *m->layers);
    for (int L = 0; L < m->n_layers; L++)
        if (ml_bind_layer(m, &m->layers[L], L))
            goto fail;
    ml_collect_unused(m);
    mtp_checkpoint_advise_random(m->ckpt, false);
    *out = m;
    return MTP_OK;
fail:
    mtp_model_free(m);
    return MTP_ERR;
}

/* Vector weights own their converted floats. */
static void ml_free_vector(struct mtp_weight *w)
{
    free((void *)w->data);
    w->data = NULL;
}

void mtp_model_free(struct mtp_model *m)
{
    if (!m)
        return;
    for (int L = 0; m->layers && L < m->n_layers; L++) {
        struct mtp_layer *l = &m->layers[L];
        ml_free_vector(&l->attn_norm);
        ml_free_vector(&l->ffn_norm);
        ml_free_vector(&l->attn.q_a_norm);
        ml_free_vector(&l->attn.kv_a_norm);
        ml_free_vector(&l->moe.score_bias);
        ml_free_vector(&l->nextn.enorm);
        ml_free_vector(&l->nextn.hnorm);
        ml_free_vector(&l->nextn.head_norm);
        free(l->moe.experts);
    }
    ml_free_vector(&m->final_norm);
    for (int i = 0; i < m->n_unused; i++)
        free(m->unused[i]);
    free(m->unused);
    free(m->layers);
    mtp_checkpoint_free(m->ckpt);
    free(m->dir);
    free(m);
}

static long long ml_count_weight(const struct mtp_weight *w)
{
    return w->data ? (long long)w->rows * w->cols : 0;
}

static long long ml_count_ffn(const struct mtp_ffn *f)
{
    return ml_count_weight(&f->gate) + ml_count_weight(&f->up) + ml_count_weight(&f->down);
}

/* A decoder block; ACTIVE counts only the top-k routed experts a token uses. */
static long long ml_count_block(const struct mtp_model *m, const struct mtp_layer *l, bool active)
{
    const struct mtp_attention *a = &l->attn;
    long long n = ml_count_weight(&l->attn_norm) + ml_count_weight(&l->ffn_norm) +
                  ml_count_weight(&a->q_a) + ml_count_weight(&a->q_a_norm) +
                  ml_count_weight(&a->q_b) + ml_count_weight(&a->q) +
                  ml_count_weight(&a->kv_a) + ml_count_weight(&a->kv_a_norm) +
                  ml_count_weight(&a->kv_b) + ml_count_weight(&a->o);
    if (l->kind == MTP_LAYER_DENSE)
        return n + ml_count_ffn(&l->dense);
    const struct mtp_moe *moe = &l->moe;
    int e = active ? m->cfg.num_experts_per_tok : m->cfg.n_routed_experts;
    n += ml_count_weight(&moe->router) + ml_count_weight(&moe->score_bias) +
         ml_count_ffn(&moe->shared);
    return n + (long long)e * ml_count_ffn(&moe->experts[0]); /* experts share one shape */
}

/* enorm, hnorm, eh_proj, shared_head.norm: without embed and head. */
static long long ml_count_nextn(const struct mtp_nextn *x)
{
    return ml_count_weight(&x->enorm) + ml_count_weight(&x->hnorm) +
           ml_count_weight(&x->eh_proj) + ml_count_weight(&x->head_norm);
}

void mtp_model_param_counts(const struct mtp_model *m, struct mtp_param_counts *out)
{
    const struct mtp_config *c = &m->cfg;
    long long globals = ml_count_weight(&m->embed) + ml_count_weight(&m->final_norm) +
                        (c->tie_word_embeddings ? 0 : ml_count_weight(&m->lm_head));
    memset(out, 0, sizeof *out);
    out->main = out->active_main = globals;
    for (int L = 0; L < m->n_layers; L++) {
        const struct mtp_layer *l = &m->layers[L];
        if (!l->is_mtp) {
            out->main += ml_count_block(m, l, false);
            out->active_main += ml_count_block(m, l, true);
            continue;
        }
        long long module = ml_count_block(m, l, false) + ml_count_nextn(&l->nextn);
        out->mtp += module + ml_count_weight(&l->nextn.own_embed) +
                    ml_count_weight(&l->nextn.own_head);
        if (L == c->num_hidden_layers)
            out->active_mtp_module = ml_count_block(m, l, true) + ml_count_nextn(&l->nextn);
    }
    out->total = out->main + out->mtp;
}
