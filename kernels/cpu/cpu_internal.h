/*
 * cpu_internal.h - private declarations shared by the CPU backend's files
 * (the kernels/cpu/ sources). Nothing outside kernels/ includes this.
 *
 * The CPU backend is the reference and the oracle for every other backend
 * (shared/DESIGN.md §4). Its one numerical rule is batch invariance: every
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
    MTP_CPU_SCRATCH_COUNT,
};

struct mtp_cpu_pool;

struct mtp_cpu_ctx {
    int n_threads;                               /* threads per op (>= 1), the caller included */
    struct mtp_cpu_pool *pool;                   /* its n_threads - 1 workers (cpu_pool.h) */
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

/* Decode W[r, c0..c1) to float (FP8 multiplied by its block scale). */
void mtp_cpu_row_decode(const struct mtp_weight *w, int r, int c0, int c1, float *out);

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
void mtp_cpu_route(void *ctx, const struct mtp_moe *moe, const struct mtp_route_params *p,
                   const float *x, int n, int32_t *idx, float *weights);
void mtp_cpu_moe_ffn(void *ctx, const struct mtp_moe *moe, int top_k, const float *x, int n,
                     const int32_t *idx, const float *weights, float *y);
void mtp_cpu_ffn(void *ctx, const struct mtp_ffn *ffn, const float *x, int n, float *y);
void mtp_cpu_add(void *ctx, float *y, const float *x, size_t n);

#endif
