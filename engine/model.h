/*
 * model.h - a loaded DeepSeek-V2/V3-family model: config plus pointer structs
 * into the memory-mapped checkpoint (docs/design.md §14.1).
 *
 * Dimension legend (docs/model.md §3):
 *   d   = hidden_size            V  = vocab_size
 *   H   = num_attention_heads    dn = qk_nope_head_dim   dr = qk_rope_head_dim
 *   dv  = v_head_dim             rq = q_lora_rank        rkv = kv_lora_rank
 *   E   = n_routed_experts       I  = moe_intermediate_size
 *
 * Layers are not uniform (dense first, then MoE, then MTP modules), so each
 * layer carries its kind explicitly. Matrices stay in the mapping in their
 * stored dtype. 1-D tensors (norms, router bias) are converted once to F32
 * arrays owned by the model and described by a struct mtp_weight with rows = 1,
 * so every backend uploads and addresses all parameters the same way.
 */
#ifndef MTP_MODEL_H
#define MTP_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "../core/weight.h" /* defines: struct mtp_weight, mtp_ffn, mtp_attention, mtp_moe */
#include "safetensors.h"

enum mtp_layer_kind {
    MTP_LAYER_DENSE,
    MTP_LAYER_MOE,
};

/* The extra parts of an MTP module (layers num_hidden_layers..). */
struct mtp_nextn {
    struct mtp_weight enorm;    /* [d] */
    struct mtp_weight hnorm;    /* [d] */
    struct mtp_weight eh_proj;  /* [d, 2d]: columns 0..d-1 take enorm(emb), d..2d-1 hnorm(h) */
    struct mtp_weight head_norm; /* [d] shared_head.norm */
    const struct mtp_weight *embed; /* own embed_tokens, or the main model's */
    const struct mtp_weight *head;  /* own shared_head.head, or the main lm_head */
    struct mtp_weight own_embed, own_head; /* storage when the module has its own */
};

struct mtp_layer {
    int index;                  /* HF layer index */
    enum mtp_layer_kind kind;
    bool is_mtp;
    struct mtp_weight attn_norm; /* [d] input_layernorm */
    struct mtp_weight ffn_norm;  /* [d] post_attention_layernorm */
    struct mtp_attention attn;
    struct mtp_ffn dense;       /* MTP_LAYER_DENSE */
    struct mtp_moe moe;         /* MTP_LAYER_MOE */
    struct mtp_nextn nextn;     /* is_mtp only */
};

struct mtp_model {
    char *dir;
    struct mtp_config cfg;
    struct mtp_checkpoint *ckpt;
    struct mtp_weight embed;    /* [V, d] model.embed_tokens */
    struct mtp_weight final_norm; /* [d] model.norm */
    struct mtp_weight lm_head;  /* [V, d] (aliases embed when tied) */
    int n_layers;               /* num_hidden_layers + num_nextn_predict_layers */
    struct mtp_layer *layers;   /* [n_layers]; MTP module k (1-based) is layers[num_hidden_layers+k-1] */
    char **unused;              /* names of tensors present but not used */
    int n_unused;
    int mtp_announced_absent;   /* > 0: config.json announces this many MTP modules but the
                                 * checkpoint has no tensor of layer num_hidden_layers (what
                                 * transformers' save_pretrained writes); the main model is
                                 * loaded and cfg.num_nextn_predict_layers is set to 0 */
};

/* Load DIR (config.json + safetensors). Every tensor the config implies is
 * checked for presence, dtype and shape; FP8 weights need their scale_inv.
 * Routed experts are read per expert (mlp.experts.E.{gate,up,down}_proj) or
 * fused (mlp.experts.gate_up_proj [E, 2I, d], mlp.experts.down_proj [E, d, I],
 * transformers 5). MTP modules announced but wholly absent: see
 * mtp_announced_absent (a note goes to stderr); partly present: an error.
 * Returns MTP_OK and *OUT, or MTP_ERR with a message naming the file and the
 * tensor, expected versus found. */
int mtp_model_load(const char *dir, struct mtp_model **out);
void mtp_model_free(struct mtp_model *m);

/* MTP module K (1-based) or NULL. */
static inline const struct mtp_layer *mtp_model_module(const struct mtp_model *m, int k)
{
    if (k < 1 || k > m->cfg.num_nextn_predict_layers)
        return NULL;
    return &m->layers[m->cfg.num_hidden_layers + k - 1];
}

/* Parameter counts (elements) for inspect and model cards. */
struct mtp_param_counts {
    long long total;        /* every bound tensor, main and MTP */
    long long main;         /* main model (embed, layers, norm, head) */
    long long active_main;  /* main model per token: shared + top-k routed experts only */
    long long mtp;          /* all MTP modules (own embed/head included when present) */
    long long active_mtp_module; /* one MTP module per token, without embed/head */
};
void mtp_model_param_counts(const struct mtp_model *m, struct mtp_param_counts *out);

#endif
