/*
 * cpu_internal.h - private declarations shared by the CPU backend's files
 * (the kernels/cpu/ sources). Nothing outside kernels/ includes this.
 *
 * The CPU backend is the reference and the oracle for every other backend
 * (docs/design.md §4). Its one numerical rule is batch invariance: every
 * output element is reduced in an order that depends only on the shapes of the
 * weights, never on the number of tokens n or the number of threads. The
 * canonical dot product below is that order; every op is built from it, from
 * the canonical axpy (one fused multiply-add per element), or from per-token
 * loops with a fixed order.
 *
 * Thread-safety: a context owns growing scratch buffers, so one context serves
 * one engine; calls on one context must not run concurrently. Parallelism is
 * inside each op, on the context's own thread pool (cpu_pool.h: ctx->n_threads
 * threads, the caller included).
 */
#ifndef MTP_CPU_INTERNAL_H
#define MTP_CPU_INTERNAL_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: int32_t */

#include "../backend.h"

/* Scratch buffers kept in the context, grown on demand (never shrunk). Each op
 * uses its own slots, so an op that calls another (moe_ffn -> matmul) never
 * sees its buffers move underneath it. */
enum mtp_cpu_scratch_slot {
    MTP_CPU_SCRATCH_FFN_GATE,   /* ffn: [n, I] */
    MTP_CPU_SCRATCH_FFN_UP,     /* ffn: [n, I] */
    MTP_CPU_SCRATCH_MOE_X,      /* moe_ffn: gathered tokens of one expert [m, d] */
    MTP_CPU_SCRATCH_MOE_GATE,   /* moe_ffn: [m, I] */
    MTP_CPU_SCRATCH_MOE_UP,     /* moe_ffn: [m, I] */
    MTP_CPU_SCRATCH_MOE_OUT,    /* moe_ffn: one expert's outputs [m, d] */
    MTP_CPU_SCRATCH_MOE_SLOTS,  /* moe_ffn: per (token, slot) outputs [n*k, d] */
    MTP_CPU_SCRATCH_MOE_SHARED, /* moe_ffn: shared expert outputs [n, d] */
    MTP_CPU_SCRATCH_ROUTE,      /* route: router logits [n, E] */
    MTP_CPU_SCRATCH_MOE_LISTS,  /* moe_ffn: per-expert (token, slot) lists, as int */
    MTP_CPU_SCRATCH_COUNT,
};

/* Verification and drafting forwards hold at most this many tokens (decoding
 * is far below it); above it, inside a prompt prefill only, matmul may use
 * the GEMM of cpu_gemm.c, whose reduction order differs. */
enum { MTP_CPU_INVARIANT_MAX_N = 16 };

struct mtp_cpu_pool;

struct mtp_cpu_ctx {
    int n_threads;                               /* threads per op (>= 1), the caller included */
    struct mtp_cpu_pool *pool;                   /* its n_threads - 1 workers (cpu_pool.h) */
    int prefill;                                 /* set_prefill: ops belong to a prompt prefill */
    float *scratch[MTP_CPU_SCRATCH_COUNT];       /* 64-byte aligned */
    size_t scratch_cap[MTP_CPU_SCRATCH_COUNT];   /* capacity in floats */
    float **thread_scratch;                      /* [n_threads]: mtp_cpu_thread_scratch */
    size_t *thread_scratch_cap;                  /* [n_threads], in floats */
};

/* A buffer of at least COUNT floats for SLOT (contents undefined). Valid until
 * the next call with the same slot. */
float *mtp_cpu_scratch_get(struct mtp_cpu_ctx *ctx, enum mtp_cpu_scratch_slot slot, size_t count);

/* 64-byte aligned allocation of BYTES (rounded up), zero-filled; aborts on OOM. */
void *mtp_cpu_aligned_alloc(size_t bytes);

/* --- canonical reductions (cpu_matmul.c) --- */

/* sum_i a[i] * b[i] in the canonical order: 8-float chunk q (i = 8q..8q+7) is
 * fused-multiply-added into lane accumulator q % 4; the four accumulators are
 * combined as (a0 + a1) + (a2 + a3), the 8 lanes in a fixed tree, then the
 * n % 8 remaining products are fused-added one by one. */
float mtp_cpu_dot_f32(const float *a, const float *b, int n);

/* y[i] = fma(a, x[i], y[i]) for i < n (each element one fused operation). */
void mtp_cpu_axpy_f32(float *y, float a, const float *x, int n);

/* y[t, i] = mtp_cpu_dot_f32(w + i * w_stride, x + t * x_stride, cols) for
 * i < m, t < n, bitwise, with each row of W loaded once for all n tokens (the
 * register-blocked kernel of matmul): for float rows such as decoded weight
 * panels and latent cache rows. */
void mtp_cpu_dot_rows(const float *w, size_t w_stride, int m, int cols, const float *x,
                      int x_stride, int n, float *y, int y_stride);

/* out[t, c] for t < n, c < cols: a zeroed row followed by mtp_cpu_axpy_f32(out[t],
 * coef[t * coef_stride + k], rows + k * row_stride, cols) for k = 0..len[t]-1,
 * bitwise (each element one fused chain in k order), with each row chunk
 * loaded once for a group of tokens kept in registers. len must be
 * non-decreasing in t. */
void mtp_cpu_axpy_rows(const float *rows, size_t row_stride, const float *coef,
                       size_t coef_stride, const int *len, int n, int cols, float *out,
                       size_t out_stride);

/* Attention probabilities of one token's row S [len], in place: s = (s + pe) *
 * scale, then the max-subtracted fp32 softmax, each p_k = e_k / sum (the order
 * every decode and verification uses; tree attention shares it so a tree node
 * keeps the bits of a sequential decode). */
void mtp_cpu_attention_probs(float *s, const float *pe, int len, float scale);

/* Floats per row of a decoded panel: COLS rounded up to 16 (64-byte rows). */
size_t mtp_cpu_panel_stride(int cols);

/* Decode W[r, c0..c1) to float (FP8 multiplied by its block scale). */
void mtp_cpu_row_decode(const struct mtp_weight *w, int r, int c0, int c1, float *out);

/* The prefill GEMM (cpu_gemm.c): y = W x like mtp_cpu_matmul, any n, but each
 * output is one fused chain over the columns (not the canonical order). */
void mtp_cpu_gemm_prefill(struct mtp_cpu_ctx *ctx, const struct mtp_weight *w, const float *x,
                          int x_stride, int n, float *y, int y_stride);

/* gate[i] = silu(gate[i]) * up[i] for i < len with a vectorised exp (cpu_gemm.c):
 * prefill only (within ~2 ulp of the libm expf the invariant path uses). */
void mtp_cpu_silu_mul_prefill(float *gate, const float *up, size_t len);

/* s[k] = softmax((s + pe) * scale)[k] for k < len, vectorised (cpu_gemm.c):
 * prefill only, like mtp_cpu_silu_mul_prefill. */
void mtp_cpu_softmax_prefill(float *s, const float *pe, int len, float scale);

/* --- ops (the vtable entries; ctx is a struct mtp_cpu_ctx) --- */

void mtp_cpu_embed(void *ctx, const struct mtp_weight *table, const int32_t *tokens, int n,
                   float *out);
void mtp_cpu_matmul(void *ctx, const struct mtp_weight *w, const float *x, int x_stride, int n,
                    float *y, int y_stride);
void mtp_cpu_rmsnorm(void *ctx, const float *x, int x_stride, const struct mtp_weight *w, int n,
                     int dim, float eps, float *y, int y_stride);
void mtp_cpu_rope(void *ctx, float *x, int x_stride, int n, int n_heads, int head_stride,
                  int offset, int start_pos, const struct mtp_rope *rope);
void mtp_cpu_mla_attention(void *ctx, const struct mtp_mla_dims *dims,
                           const struct mtp_weight *kv_b, const float *q, int n, int start_pos,
                           const float *cache, float *out);
void mtp_cpu_mla_tree_attention(void *ctx, const struct mtp_mla_dims *dims,
                                const struct mtp_weight *kv_b, const float *q, int n,
                                const struct mtp_tree_keys *keys, const float *cache, float *out);
void mtp_cpu_route(void *ctx, const struct mtp_moe *moe, const struct mtp_route_params *p,
                   const float *x, int n, int32_t *idx, float *weights);
void mtp_cpu_moe_ffn(void *ctx, const struct mtp_moe *moe, int top_k, const float *x, int n,
                     const int32_t *idx, const float *weights, float *y);
void mtp_cpu_ffn(void *ctx, const struct mtp_ffn *ffn, const float *x, int n, float *y);
void mtp_cpu_add(void *ctx, float *y, const float *x, size_t n);

#ifdef __AVX2__
#include <immintrin.h> /* defines: _mm256_*, _mm_* */
/* The 8 lanes summed as ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)): a fixed
 * tree, shared by the canonical reductions and the prefill softmax. */
static inline float mtp_cpu_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#endif
