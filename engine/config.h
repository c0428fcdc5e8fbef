/*
 * config.h - the architecture of a DeepSeek-V2/V3-family model, parsed from a
 * Hugging Face config.json (docs/model.md §1).
 *
 * Every architecture variant is an explicit field here, read from an explicit
 * config.json key; nothing is inferred from a dimension (docs/design.md §3).
 */
#ifndef MTP_CONFIG_H
#define MTP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/routing.h" /* defines: enum mtp_scoring_func, mtp_topk_method */

struct mtp_rope_scaling {
    bool yarn;                   /* rope_scaling.type (or rope_type) == "yarn"; false = none */
    double factor;               /* s: context extension factor (40 for V3) */
    int original_max_position;   /* L0: original_max_position_embeddings (4096) */
    double beta_fast, beta_slow; /* correction range in rotations (32, 1) */
    double mscale, mscale_all_dim; /* magnitude factors (1.0, 1.0 for V3) */
};

struct mtp_config {
    char model_type[32];            /* "deepseek_v3", "deepseek_v2", "kimi_k2", "glm4_moe_lite" */
    int vocab_size;                 /* rows of embed_tokens and lm_head */
    int hidden_size;                /* d */
    int intermediate_size;          /* FFN width of dense layers */
    int moe_intermediate_size;      /* width of each routed expert and one shared unit */
    int num_hidden_layers;          /* main-model layers */
    int num_nextn_predict_layers;   /* MTP modules, stored after the main layers (0 if absent) */
    int num_attention_heads;        /* H */
    int n_shared_experts;           /* shared MLP width = n_shared * moe_intermediate_size */
    int n_routed_experts;           /* E (0 = dense model) */
    int num_experts_per_tok;        /* top-k */
    double routed_scaling_factor;   /* multiplies routed weights after (optional) renormalisation */
    enum mtp_topk_method topk_method;
    int n_group;                    /* expert groups */
    int topk_group;                 /* groups kept */
    int first_k_dense_replace;      /* layers [0, first_k_dense_replace) are dense (glm4_moe_lite:
                                     * the leading "dense" entries of mlp_layer_types) */
    int moe_layer_freq;             /* layer i >= first_k is MoE iff i % moe_layer_freq == 0 */
    bool norm_topk_prob;            /* renormalise the k selected weights to sum to 1 */
    enum mtp_scoring_func scoring_func;
    int kv_lora_rank;               /* r_kv: width of the cached latent */
    int q_lora_rank;                /* r_q; 0 when config says null (plain q_proj) */
    int qk_nope_head_dim;           /* d_n */
    int qk_rope_head_dim;           /* d_r */
    int v_head_dim;                 /* d_v */
    double rms_norm_eps;
    double rope_theta;
    struct mtp_rope_scaling rope_scaling;
    int max_position_embeddings;
    bool tie_word_embeddings;       /* lm_head shares embed_tokens (false for V3) */
    int bos_token_id, eos_token_id; /* -1 when absent */
    bool fp8;                       /* quantization_config.quant_method == "fp8" */
    int weight_block_size[2];       /* FP8 block (128, 128) */
};

/* Parse PATH (a config.json) into CFG. Every field of docs/model.md §1 is read and
 * range-checked; unknown scoring_func/topk_method, NaN or non-numeric values,
 * missing required keys fail with a message naming the file and the key.
 * Returns MTP_OK or MTP_ERR (message in mtp_error_message()). */
int mtp_config_load(const char *path, struct mtp_config *cfg);

/* Derived quantities. */
static inline int mtp_config_qk_head_dim(const struct mtp_config *c)
{
    return c->qk_nope_head_dim + c->qk_rope_head_dim;
}
static inline int mtp_config_num_layers_total(const struct mtp_config *c)
{
    return c->num_hidden_layers + c->num_nextn_predict_layers;
}
/* Whether layer LAYER (main or MTP index) has an MoE FFN (HF rule). */
static inline bool mtp_config_layer_is_moe(const struct mtp_config *c, int layer)
{
    return c->n_routed_experts > 0 && layer >= c->first_k_dense_replace &&
           layer % c->moe_layer_freq == 0;
}
/* Values cached per token per layer: normalised latent + rotated rope key. */
static inline int mtp_config_cache_width(const struct mtp_config *c)
{
    return c->kv_lora_rank + c->qk_rope_head_dim;
}

/* Softmax scale of attention: qk_head_dim^-1/2, times mscale^2 under YaRN
 * (docs/model.md §3.3). */
double mtp_config_softmax_scale(const struct mtp_config *c);

/* YaRN-blended inverse frequencies theta'_i, i < qk_rope_head_dim/2 (docs/model.md §4).
 * OUT has qk_rope_head_dim/2 entries. Also returns the cos/sin magnitude factor
 * (get_mscale(s, mscale) / get_mscale(s, mscale_all_dim); 1.0 without YaRN). */
void mtp_config_rope_inv_freq(const struct mtp_config *c, float *out, float *cos_sin_scale);

/* Stable 64-bit FNV-1a hash of the config file's bytes, for log provenance. */
uint64_t mtp_config_hash_file(const char *path);

#endif
