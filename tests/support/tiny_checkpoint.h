/*
 * tiny_checkpoint.h - test helpers that write safetensors files and tiny
 * DeepSeek-V3-shaped model directories (config.json + model.safetensors) with
 * small deterministic random weights, including deliberate faults for loader
 * tests. Linked into every test executable (tests/support/ is globbed).
 */
#ifndef MTP_TESTS_TINY_CHECKPOINT_H
#define MTP_TESTS_TINY_CHECKPOINT_H

#include <stdbool.h> /* defines: bool */
#include <stddef.h>  /* defines: size_t */
#include <stdint.h>  /* defines: int64_t, uint64_t */

/* One tensor for tiny_st_write. */
struct tiny_st_tensor {
    const char *name;
    const char *dtype; /* safetensors dtype string, written as is */
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
};

/* Write PATH as a valid safetensors file: tensors laid out contiguously in the
 * given order, header padded with spaces to a multiple of 8, optional
 * "__metadata__" {"format": "pt"}. Returns 0, or -1 on an I/O error. */
int tiny_st_write(const char *path, const struct tiny_st_tensor *t, size_t n, bool metadata);

/* Write PATH byte for byte: the 8-byte little-endian HLEN_FIELD (which may lie),
 * HEADER (strlen bytes), then DATA_LEN bytes of DATA. */
int tiny_st_write_raw(const char *path, uint64_t hlen_field, const char *header, const void *data,
                      size_t data_len);

/* Write a text file (config.json, index files). */
int tiny_write_text(const char *path, const char *text);

/* Dimensions of the tiny model (V3-shaped: MLA with q LoRA, 1 dense layer then
 * MoE layers with shared + routed experts, noaux_tc routing, YaRN). */
enum {
    TINY_VOCAB = 64,
    TINY_D = 32,
    TINY_INTER = 48,
    TINY_MOE_INTER = 16,
    TINY_LAYERS = 3,
    TINY_DENSE = 1,
    TINY_HEADS = 2,
    TINY_NOPE = 8,
    TINY_ROPE = 4,
    TINY_V = 8,
    TINY_KV_LORA = 16,
    TINY_Q_LORA = 12,
    TINY_EXPERTS = 4,
    TINY_SHARED = 1,
    TINY_TOPK = 2,
    TINY_GROUPS = 2,
    TINY_TOPK_GROUP = 1,
    TINY_FP8_BLOCK = 8, /* small, so scales have several (partial) blocks */
};

struct tiny_opts {
    bool q_lora;         /* q_a_proj/q_b_proj (true) or a plain q_proj (q_lora_rank null) */
    bool fp8;            /* projections and experts in F8_E4M3 with weight_scale_inv */
    bool bf16_vectors;   /* norms stored as BF16 instead of F32 */
    bool mtp_own_embed;  /* MTP modules store embed_tokens */
    bool mtp_own_head;   /* MTP modules store shared_head.head */
    bool tie_embeddings; /* tie_word_embeddings true and no lm_head.weight */
    int n_mtp;           /* num_nextn_predict_layers */
    unsigned seed;
    /* Faults for loader tests; NULL for none. */
    const char *omit;      /* do not write this tensor */
    const char *bad_dtype; /* write this tensor as I32 */
    const char *bad_shape; /* write this tensor one column (1-D: one element) short */
    const char *extra;     /* also write an F32 [4] tensor under this name */
};

/* Defaults: q LoRA, F32, one MTP module with its own embed and head, seed 1. */
void tiny_opts_default(struct tiny_opts *o);

/* Write DIR/config.json and DIR/model.safetensors. Returns 0, or -1. */
int tiny_checkpoint_write(const char *dir, const struct tiny_opts *o);

/* Make a fresh directory under /tmp (mkdtemp); returns a malloc'd path. */
char *tiny_make_tmpdir(void);

/* Remove DIR and the regular files in it. */
void tiny_remove_dir(const char *dir);

#endif
