/*
 * backend.h - the compute backend interface (docs/design.md §4).
 *
 * The forward pass (engine/forward.c) is written once against this vtable; the
 * CPU backend (kernels/cpu/) is the reference and the oracle, the CUDA backend
 * (kernels/cuda/) is checked against it op by op.
 *
 * Memory: activations are float arrays in the backend's address space (host
 * memory on CPU, device memory on CUDA), obtained from alloc(). The forward pass
 * only does pointer arithmetic on them; it reads them on the host only through
 * download(). Weights (struct mtp_weight) are handed to prepare_weight() once at
 * engine creation; CPU reads them from the mapping, CUDA uploads them.
 *
 * Batch invariance: every op computes each output element of token t with the
 * same reduction order whatever n is (no n-dependent split-K, per-token
 * reductions in attention and routing). A token's results are then bitwise
 * identical in a decode of 1 token and inside a verification of k+1 tokens,
 * and independent of the number of threads.
 *
 * Strides are in floats. Shapes are written [rows, cols], row-major.
 */
#ifndef MTP_BACKEND_H
#define MTP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../core/routing.h" /* defines: enum mtp_scoring_func, mtp_topk_method */
#include "../core/weight.h"  /* defines: struct mtp_weight, mtp_ffn, mtp_moe */

/* RoPE table for one model: interleaved pairs (2i, 2i+1) rotated by
 * pos * inv_freq[i], cos and sin multiplied by cos_sin_scale (docs/model.md §3.5, §4). */
enum { MTP_MAX_ROPE_PAIRS = 128 };
struct mtp_rope {
    int dim;                               /* qk_rope_head_dim (even) */
    float inv_freq[MTP_MAX_ROPE_PAIRS];    /* YaRN-blended theta'_i, dim/2 entries */
    float cos_sin_scale;                   /* 1.0 for every shipped DeepSeek config */
};

/* MLA shapes, from the config. */
struct mtp_mla_dims {
    int n_heads;       /* H */
    int nope;          /* dn */
    int rope;          /* dr */
    int v;             /* dv */
    int kv_lora;       /* rkv */
    float scale;       /* softmax scale (docs/model.md §3.3) */
};

/* Key rows of a tree-shaped attention batch (mla_tree_attention): token t
 * attends to cache rows 0..n_prefix-1 in order, then to rows[off[t]] ..
 * rows[off[t+1]-1] in that order (its ancestors by depth, then its own row).
 * A chain (rows[off[t]..] = start_pos..start_pos+t, n_prefix = start_pos) is
 * exactly mla_attention. Host memory; every row < the cache's capacity. */
struct mtp_tree_keys {
    int n_prefix;
    const int32_t *off;  /* [n+1], off[0] = 0 */
    const int32_t *rows; /* [off[n]] */
};

/* Routing parameters, from the config (docs/model.md §5). */
struct mtp_route_params {
    enum mtp_scoring_func scoring;
    enum mtp_topk_method method;
    int n_experts;     /* E */
    int top_k;         /* k */
    int n_group;
    int topk_group;
    int norm_topk_prob;
    float routed_scaling_factor;
};

struct mtp_backend_i {
    const char *name;                  /* "cpu", "cuda" */

    void (*free)(void *ctx);

    /* --- memory --- */
    /* Buffers hold floats or int32 (router indices); sizes are in bytes. */
    void *(*alloc)(void *ctx, size_t bytes);        /* zero-filled; aborts on OOM */
    void (*release)(void *ctx, void *p);
    void (*upload)(void *ctx, void *dst, const void *src_host, size_t bytes);
    void (*download)(void *ctx, void *dst_host, const void *src, size_t bytes);
    void (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*synchronize)(void *ctx);                 /* wait for queued work (timing) */

    /* Called once per parameter (matrices, norms, biases) before any op uses it.
     * Returns MTP_OK or MTP_ERR (message set). */
    int (*prepare_weight)(void *ctx, struct mtp_weight *w);

    /* --- ops --- */

    /* out[t, :] = table[tokens[t], :] as float.  tokens: host [n]; out: [n, cols]. */
    void (*embed)(void *ctx, const struct mtp_weight *table, const int32_t *tokens, int n,
                  float *out);

    /* y[t, r] = sum_c W[r, c] * x[t, c] for t < n, r < rows (FP8 weights are
     * multiplied by their block scales). x: [n, cols] stride x_stride;
     * y: [n, rows] stride y_stride. */
    void (*matmul)(void *ctx, const struct mtp_weight *w, const float *x, int x_stride, int n,
                   float *y, int y_stride);

    /* y[t, :] = w * x[t, :] / sqrt(mean(x[t, :]^2) + eps), in fp32; y may alias x. */
    void (*rmsnorm)(void *ctx, const float *x, int x_stride, const struct mtp_weight *w, int n,
                    int dim, float eps, float *y, int y_stride);

    /* Rotate, in place, the rope part of N tokens: for token t at position
     * start_pos + t, head h < n_heads, the vector x[t*x_stride + h*head_stride +
     * offset .. + rope->dim). */
    void (*rope)(void *ctx, float *x, int x_stride, int n, int n_heads, int head_stride,
                 int offset, int start_pos, const struct mtp_rope *rope);

    /* MLA attention in the absorbed form (docs/model.md §3.4) over a latent cache.
     * q:     [n, H*(dn+dr)] queries, rope part already rotated.
     * cache: [capacity, rkv+dr] rows 0..start_pos+n-1 filled (this call's rows
     *        included): normalised latent, then rotated k_pe.
     * kv_b:  [H*(dn+dv), rkv] (W_UK rows, then W_UV rows, per head).
     * out:   [n, H*dv], ready for o_proj. Token t attends to rows 0..start_pos+t. */
    void (*mla_attention)(void *ctx, const struct mtp_mla_dims *dims,
                          const struct mtp_weight *kv_b, const float *q, int n, int start_pos,
                          const float *cache, float *out);

    /* The same over explicit key rows (struct mtp_tree_keys), for tree
     * verification and tree drafting. Keys are reduced in list order with the
     * arithmetic of mla_attention, so a token whose list is the rows a
     * sequential decode would read gets the same bits as in that decode. */
    void (*mla_tree_attention)(void *ctx, const struct mtp_mla_dims *dims,
                               const struct mtp_weight *kv_b, const float *q, int n,
                               const struct mtp_tree_keys *keys, const float *cache, float *out);

    /* Router: select top-k experts and their weights per token.
     * x: [n, d]; idx: [n, k] expert ids (backend memory); weights: [n, k] final weights (after
     * optional renormalisation and routed scaling). Slots are ordered by
     * descending selection score; ties go to the lower expert id. */
    void (*route)(void *ctx, const struct mtp_moe *moe, const struct mtp_route_params *p,
                  const float *x, int n, int32_t *idx, float *weights);

    /* y[t] = SharedExpert(x[t]) + sum_j weights[t,j] * Expert_{idx[t,j]}(x[t]).
     * Tokens are grouped by expert so each expert's weights are read once per
     * call; each y[t] is summed in a fixed order (shared, then slot 0..k-1). */
    void (*moe_ffn)(void *ctx, const struct mtp_moe *moe, int top_k, const float *x, int n,
                    const int32_t *idx, const float *weights, float *y);

    /* Dense SwiGLU: y[t] = down( silu(gate x[t]) * (up x[t]) ). x, y: [n, d]. */
    void (*ffn)(void *ctx, const struct mtp_ffn *ffn, const float *x, int n, float *y);

    /* y[i] += x[i], i < n. */
    void (*add)(void *ctx, float *y, const float *x, size_t n);

    /* Optional (NULL = no limit): the most tokens one forward may hold while
     * every op stays batch invariant (above, a backend may switch to kernels
     * with another reduction order, e.g. cuBLAS). Decoding refuses deeper
     * verification, since greedy equality would no longer be exact. */
    int (*max_invariant_tokens)(void *ctx);

    /* Optional (NULL = ignored): ON = 1 tells the backend that the ops until
     * the next call with ON = 0 belong to a prompt prefill, whose results
     * need not be batch invariant (docs/design.md §4: baseline and
     * speculative runs share it). The backend may then use kernels with
     * another reduction order for large n (CPU: a blocked GEMM above
     * MTP_CPU_INVARIANT_MAX_N tokens). Only mtp_engine_prefill sets it;
     * verification, drafts and catch-up rows never run under it. */
    void (*set_prefill)(void *ctx, int on);
};

struct mtp_backend {
    const struct mtp_backend_i *iface;
    void *ctx;
};

/* The checks every backend's prepare_weight starts with: a dtype the kernels
 * read (F32, BF16, F16, F8_E4M3), a non-negative shape, and for FP8 its block
 * scales. A descriptor without data (an absent optional tensor such as
 * score_bias) passes: there is nothing to prepare. BACKEND names the backend
 * in the message. Returns MTP_OK or MTP_ERR. */
int mtp_weight_validate(const char *backend, const struct mtp_weight *w);

/* Backends. Each returns MTP_OK and *OUT, or MTP_ERR with a message (e.g. no
 * GPU). n_threads <= 0 means the CPUs this process may run on
 * (sched_getaffinity); more than MTP_MAX_THREADS is refused (a thread per
 * CPU is the most that helps; absurd counts are a typo). */
enum { MTP_MAX_THREADS = 1024 };
int mtp_backend_cpu_create(int n_threads, struct mtp_backend **out);
/* The CPU backend's thread count for N_THREADS (<= 0: the CPUs in this
 * process's affinity mask, at least 1): what logs and bench report. */
int mtp_backend_cpu_threads(int n_threads);
int mtp_backend_cuda_create(int device, struct mtp_backend **out);
/* By name: "cpu" or "cuda". */
int mtp_backend_create(const char *name, int n_threads, struct mtp_backend **out);
void mtp_backend_free(struct mtp_backend *be);

#endif
