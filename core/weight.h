/*
 * weight.h - the weight descriptors that the engine binds and the kernels read:
 * a matrix in its stored dtype (struct mtp_weight) and the groups of matrices
 * one kernel call takes (SwiGLU FFN, MLA attention, MoE). Both engine/ and
 * kernels/ include this; neither owns it (docs/design.md §1).
 *
 * Dimension legend (docs/model.md §3):
 *   d   = hidden_size            V  = vocab_size
 *   H   = num_attention_heads    dn = qk_nope_head_dim   dr = qk_rope_head_dim
 *   dv  = v_head_dim             rq = q_lora_rank        rkv = kv_lora_rank
 *   E   = n_routed_experts       I  = moe_intermediate_size
 */
#ifndef MTP_WEIGHT_H
#define MTP_WEIGHT_H

#include <stdbool.h>

#include "dtype.h" /* defines: enum mtp_dtype */

/* A weight matrix W [rows, cols], used as y = W x (PyTorch nn.Linear layout). */
struct mtp_weight {
    enum mtp_dtype dtype;   /* F32, BF16, F16 or F8_E4M3 */
    int rows, cols;
    const void *data;       /* row-major [rows, cols], in the mapping */
    const float *scale_inv; /* F8_E4M3 only: [ceil(rows/B0), ceil(cols/B1)] block scales */
    int block_rows, block_cols; /* B0, B1 (128, 128) */
    const char *name;       /* tensor name, for messages */
    void *device;           /* backend-private copy (CUDA), NULL on CPU */
};

/* SwiGLU FFN: down( silu(gate x) * (up x) ). */
struct mtp_ffn {
    struct mtp_weight gate; /* [I, d] */
    struct mtp_weight up;   /* [I, d] */
    struct mtp_weight down; /* [d, I] */
};

struct mtp_attention {
    struct mtp_weight q_a;  /* [rq, d]        (q LoRA only) */
    struct mtp_weight q_a_norm; /* [rq]         (q LoRA only) */
    struct mtp_weight q_b;  /* [H*(dn+dr), rq] (q LoRA only) */
    struct mtp_weight q;    /* [H*(dn+dr), d]  (no q LoRA) */
    struct mtp_weight kv_a; /* [rkv+dr, d] */
    struct mtp_weight kv_a_norm; /* [rkv] */
    struct mtp_weight kv_b; /* [H*(dn+dv), rkv]; per head rows 0..dn-1 = W_UK, dn.. = W_UV */
    struct mtp_weight o;    /* [d, H*dv] */
};

struct mtp_moe {
    struct mtp_weight router;   /* [E, d] (mlp.gate.weight) */
    struct mtp_weight score_bias; /* [E] e_score_correction_bias; data NULL when absent */
    bool has_shared;
    struct mtp_ffn shared;      /* width n_shared * I */
    struct mtp_ffn *experts;    /* [E] */
};

#endif
