/*
 * synth_tensors.c - the tensor list of a synthetic checkpoint: the names,
 * dtypes and shapes of docs/model.md §2 for the given shape, and the
 * amplitude each is drawn with.
 *
 * Amplitudes keep activations O(1) whatever the width: a [rows, cols]
 * projection is uniform in +-sqrt(3 / cols), so its outputs have the variance
 * of its (RMS-normalised) inputs; the embedding has unit variance; norms are
 * 1. Router rows are drawn the same way, so router logits are roughly N(0, 1)
 * and independent across experts: which experts win depends on the token's
 * hidden state, not on the expert, and loads spread over every expert (the
 * pattern aux-loss-free balancing aims at); e_score_correction_bias is 0.
 */
#include <math.h>   /* defines: sqrtf */
#include <stdio.h>  /* defines: snprintf */

#include "../core/error.h" /* defines: mtp_xrealloc */
#include "synth_internal.h"

struct synth_list {
    struct synth_tensor *t;
    int n, cap;
    bool fp8;
    int shard;
};

static struct synth_tensor *synth_push(struct synth_list *l, const char *name,
                                       enum mtp_dtype dtype, int ndim, int64_t r, int64_t c,
                                       enum synth_init init, float amplitude)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->t = mtp_xrealloc(l->t, sizeof *l->t * (size_t)l->cap);
    }
    struct synth_tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    t->shape[0] = r;
    t->shape[1] = c;
    t->init = init;
    t->amplitude = amplitude;
    t->shard = l->shard;
    return t;
}

static void synth_vector(struct synth_list *l, const char *name, int64_t n)
{
    synth_push(l, name, MTP_DTYPE_BF16, 1, n, 0, SYN_ONES, 1.0f);
}

/* A projection [rows, cols]: FP8 plus its block scales when the shape quantises
 * projections (block 128 x 128, partial blocks at the edges), else BF16. */
static void synth_matrix(struct synth_list *l, const char *name, int64_t rows, int64_t cols,
                         bool quantised)
{
    float a = sqrtf(3.0f / (float)cols);
    if (!(quantised && l->fp8)) {
        synth_push(l, name, MTP_DTYPE_BF16, 2, rows, cols, SYN_UNIFORM, a);
        return;
    }
    synth_push(l, name, MTP_DTYPE_F8_E4M3, 2, rows, cols, SYN_UNIFORM, 448.0f);
    char scale[96];
    snprintf(scale, sizeof scale, "%s_scale_inv", name);
    synth_push(l, scale, MTP_DTYPE_F32, 2, (rows + 127) / 128, (cols + 127) / 128, SYN_SCALE,
               a);
}

static void synth_ffn(struct synth_list *l, const char *prefix, int64_t d, int64_t width)
{
    char n[96];
    snprintf(n, sizeof n, "%s.gate_proj.weight", prefix);
    synth_matrix(l, n, width, d, true);
    snprintf(n, sizeof n, "%s.up_proj.weight", prefix);
    synth_matrix(l, n, width, d, true);
    snprintf(n, sizeof n, "%s.down_proj.weight", prefix);
    synth_matrix(l, n, d, width, true);
}

static void synth_attention(struct synth_list *l, const struct mtp_synth_shape *s, int L)
{
    char n[96];
    int64_t d = s->hidden, h = s->heads;
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, L), n)
    synth_matrix(l, NAME("self_attn.q_a_proj.weight"), s->q_lora, d, true);
    synth_vector(l, NAME("self_attn.q_a_layernorm.weight"), s->q_lora);
    synth_matrix(l, NAME("self_attn.q_b_proj.weight"), h * (s->nope + s->rope), s->q_lora, true);
    synth_matrix(l, NAME("self_attn.kv_a_proj_with_mqa.weight"), s->kv_lora + s->rope, d, true);
    synth_vector(l, NAME("self_attn.kv_a_layernorm.weight"), s->kv_lora);
    synth_matrix(l, NAME("self_attn.kv_b_proj.weight"), h * (s->nope + s->v_head), s->kv_lora,
                 true);
    synth_matrix(l, NAME("self_attn.o_proj.weight"), d, h * s->v_head, true);
#undef NAME
}

/* Decoder layer L (main, or the MTP module when L >= s->layers). */
static void synth_layer(struct synth_list *l, const struct mtp_synth_shape *s, int L)
{
    char n[96], p[64];
    int64_t d = s->hidden;
    l->shard = L + 1;
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, L), n)
    if (L >= s->layers) { /* MTP module: docs/model.md §2.4, embed and head shared */
        synth_vector(l, NAME("enorm.weight"), d);
        synth_vector(l, NAME("hnorm.weight"), d);
        synth_matrix(l, NAME("eh_proj.weight"), d, 2 * d, false);
        synth_vector(l, NAME("shared_head.norm.weight"), d);
    }
    synth_vector(l, NAME("input_layernorm.weight"), d);
    synth_vector(l, NAME("post_attention_layernorm.weight"), d);
    synth_attention(l, s, L);
    if (L < s->dense_layers) {
        snprintf(p, sizeof p, "model.layers.%d.mlp", L);
        synth_ffn(l, p, d, s->intermediate);
        return;
    }
    synth_push(l, NAME("mlp.gate.weight"), MTP_DTYPE_BF16, 2, s->experts, d, SYN_UNIFORM,
               sqrtf(3.0f / (float)d));
    synth_push(l, NAME("mlp.gate.e_score_correction_bias"), MTP_DTYPE_F32, 1, s->experts, 0,
               SYN_ZEROS, 0.0f);
    for (int e = 0; e < s->experts; e++) {
        snprintf(p, sizeof p, "model.layers.%d.mlp.experts.%d", L, e);
        synth_ffn(l, p, d, s->moe_intermediate);
    }
    snprintf(p, sizeof p, "model.layers.%d.mlp.shared_experts", L);
    synth_ffn(l, p, d, (int64_t)s->shared * s->moe_intermediate);
#undef NAME
}

int synth_tensors(const struct mtp_synth_shape *s, struct synth_tensor **out)
{
    struct synth_list l = {.fp8 = s->fp8};
    synth_push(&l, "model.embed_tokens.weight", MTP_DTYPE_BF16, 2, s->vocab, s->hidden,
               SYN_UNIFORM, sqrtf(3.0f));
    synth_vector(&l, "model.norm.weight", s->hidden);
    synth_push(&l, "lm_head.weight", MTP_DTYPE_BF16, 2, s->vocab, s->hidden, SYN_UNIFORM,
               sqrtf(3.0f / (float)s->hidden));
    for (int L = 0; L < s->layers + s->nextn; L++)
        synth_layer(&l, s, L);
    *out = l.t;
    return l.n;
}
