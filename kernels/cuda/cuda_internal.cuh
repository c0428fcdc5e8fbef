/*
 * cuda_internal.cuh - private declarations shared by the CUDA backend's files
 * (the .cu files of kernels/cuda/). Nothing outside kernels/cuda/ includes this.
 *
 * The CUDA backend implements kernels/backend.h on one device and one stream.
 * Every op is enqueued on ctx->stream; only download() and synchronize() wait.
 * Numerics policy (README.md in this directory):
 *   - weights live on the device as BF16 (BF16 and FP8 matrices; FP8 is
 *     dequantised once at upload, w * scale_inv rounded to BF16) or F32 (F32
 *     and F16 matrices, every 1-D vector), see mtp_cuda_weight_type();
 *   - activations are F32; every reduction accumulates in F32;
 *   - every reduction that produces an output element of token t runs in an
 *     order fixed by the weight shapes and by the block size, never by the
 *     number of tokens n (batch invariance, backend.h), except the cuBLAS path
 *     of matmul for n > MTP_CUDA_SMALL_N (prefill), which is documented there;
 *   - element-wise arithmetic uses explicit round-to-nearest intrinsics
 *     (__fadd_rn, __fmul_rn, __fmaf_rn...) so nvcc cannot contract it into
 *     FMAs differently from the CPU reference (compiled with -ffp-contract=off).
 *
 * Errors: CUDA_CHECK / CUBLAS_CHECK abort with the statement, function,
 * file:line and a hint (environment failures and bugs, docs/design.md §14.2);
 * mtp_backend_cuda_create and prepare_weight return MTP_ERR with a message for
 * failures a caller must survive (no device, unsupported dtype).
 */
#ifndef MTP_CUDA_INTERNAL_CUH
#define MTP_CUDA_INTERNAL_CUH

#include <cublas_v2.h>    /* defines: cublasHandle_t, cublasGemmEx */
#include <cuda_bf16.h>    /* defines: __nv_bfloat16 */
#include <cuda_runtime.h> /* defines: cudaStream_t, cudaMallocAsync */
#include <math.h>           /* defines: INFINITY */
#include <stddef.h>
#include <stdint.h>

/* The C headers use _Noreturn, which C++ spells [[noreturn]]. */
#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#include "../../core/dtype.h" /* defines: enum mtp_dtype, mtp_f32_to_bf16 */
#include "../../core/error.h" /* defines: mtp_error_set, MTP_CHECK */
#include "../backend.h"         /* defines: struct mtp_backend_i, struct mtp_weight */
}

/* ------------------------------------------------------------ error checks */

/* Print "CUDA error: MSG" with the statement, function, file:line and a hint
 * chosen from the message, then abort. */
[[noreturn]] void mtp_cuda_die(const char *what, const char *msg, const char *stmt,
                               const char *func, const char *file, int line);

#define CUDA_CHECK(stmt)                                                                           \
    do {                                                                                           \
        cudaError_t cuda_err_ = (stmt);                                                            \
        if (cuda_err_ != cudaSuccess)                                                              \
            mtp_cuda_die("CUDA error", cudaGetErrorString(cuda_err_), #stmt, __func__, __FILE__,   \
                         __LINE__);                                                                \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                         \
    do {                                                                                           \
        cublasStatus_t cublas_st_ = (stmt);                                                        \
        if (cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
            mtp_cuda_die("cuBLAS error", cublasGetStatusString(cublas_st_), #stmt, __func__,      \
                         __FILE__, __LINE__);                                                      \
    } while (0)

/* After every kernel launch: launch-configuration errors surface here,
 * asynchronous faults at the next synchronising call. */
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* Every kernel launch: MTP_CUDA_LAUNCH(grid, block, smem, stream, kernel)(args).
 * nvcc builds get kernel<<<grid, block, smem, stream>>>(args); the emulation
 * build (-DMTP_CUDA_EMU=ON, kernels/cuda_emu/) runs the kernel's threads as
 * fibers on the CPU. The kernel comes last because a template's arguments may
 * hold commas. */
#ifdef MTP_CUDA_EMU
#define MTP_CUDA_LAUNCH(grid, block, smem, stream, ...)                                            \
    ::mtp_emu::make_launcher(#__VA_ARGS__, __VA_ARGS__, grid, block, smem, stream)
#else
#define MTP_CUDA_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif

/* -------------------------------------------------------------- the context */

/* Matmul path: AUTO = the batch-invariant GEMV kernel for every forward, and
 * cuBLAS only inside a prompt prefill (set_prefill) for n > MTP_CUDA_INVARIANT_N
 * (issue 22: verification, drafts, the modules' pass over the prompt and
 * catch-up rows stay invariant at any n); the other two force one path
 * for every n (environment variable MTP_CUDA_MATMUL=custom|cublas|auto). */
enum mtp_cuda_matmul_mode {
    MTP_CUDA_MATMUL_AUTO,
    MTP_CUDA_MATMUL_CUSTOM,
    MTP_CUDA_MATMUL_CUBLAS,
};
/* AUTO uses the GEMV up to this many tokens: every verification the decoder
 * allows (depth <= MTP_DECODE_MAX_DEPTH = 64, so 65 tokens) stays batch
 * invariant; only longer prefill chunks go to cuBLAS (issue 11). */
enum { MTP_CUDA_INVARIANT_N = 65 };

/* Device scratch, grown on demand in stream order (never shrunk). Each op uses
 * its own slots, so an op that calls another (route -> matmul) never sees its
 * buffer move. */
enum mtp_cuda_scratch_slot {
    MTP_CUDA_SCRATCH_X_BF16,    /* matmul (cuBLAS path): activations as BF16 [n, cols] */
    MTP_CUDA_SCRATCH_MOE_SEGS,  /* moe_ffn: gate+up then down segment tables, segment count */
    MTP_CUDA_SCRATCH_MOE_COUNTS, /* moe_ffn: entries per expert [E] */
    MTP_CUDA_SCRATCH_TOKENS,    /* embed: token ids [n] */
    MTP_CUDA_SCRATCH_ATTN,      /* mla_attention: scores [n*H, keys] when shared memory is short */
    MTP_CUDA_SCRATCH_LOGITS,    /* route: router logits [n, E] */
    MTP_CUDA_SCRATCH_FFN_ACT,   /* ffn: silu(gate) * up [n, I] */
    MTP_CUDA_SCRATCH_FFN_UP,    /* ffn (cuBLAS path): up [n, I] */
    MTP_CUDA_SCRATCH_MOE_LISTS, /* moe_ffn: token of each sorted entry, entry ids [2, n*k] */
    MTP_CUDA_SCRATCH_MOE_ACT,   /* moe_ffn: routed activations [n*k, I] */
    MTP_CUDA_SCRATCH_MOE_SACT,  /* moe_ffn: shared-expert activations [n, Is] */
    MTP_CUDA_SCRATCH_MOE_SLOTS, /* moe_ffn: per (token, slot) expert outputs [n*k, d] */
    MTP_CUDA_SCRATCH_MOE_SHARED, /* moe_ffn: shared expert output [n, d] */
    MTP_CUDA_SCRATCH_TREE_KEYS, /* mla_tree_attention: key offsets [n+1] then rows (cached) */
    MTP_CUDA_SCRATCH_COUNT,
};

/* Host staging (pageable), grown on demand. */
enum mtp_cuda_host_slot {
    MTP_CUDA_HOST_TREE_KEYS, /* mla_tree_attention: the lists last uploaded [n, off, rows] */
    MTP_CUDA_HOST_EXPERTS,   /* moe_ffn: an expert table being built */
    MTP_CUDA_HOST_COUNT,
};

/* One MoE layer's expert weights on the device, for the device-side plan
 * (cuda_moe_plan.cu): entry e holds expert e's device pointers and types. */
struct mtp_cuda_expert_ptrs {
    const void *gate, *up, *down;
    int wtype_up, wtype_down; /* enum mtp_cuda_wtype of gate+up, of down */
};

/* Built once per layer: HOST is what DEV holds, compared in full before reuse
 * (the key is the experts array and every device pointer in it). */
struct mtp_cuda_expert_table {
    const struct mtp_ffn *experts;
    int n_experts;
    struct mtp_cuda_expert_ptrs *host; /* [n_experts] */
    struct mtp_cuda_expert_ptrs *dev;  /* [n_experts] device copy */
};

struct mtp_cuda_ctx {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_ws; /* cuBLAS workspace (fixed, so its algorithms do not vary) */
    size_t cublas_ws_bytes;
    enum mtp_cuda_matmul_mode matmul_mode;
    int prefill; /* set_prefill: only mtp_engine_prefill may take cuBLAS (AUTO mode) */

    void **weights; /* device copies owned by this context */
    int n_weights, cap_weights;

    void *scratch[MTP_CUDA_SCRATCH_COUNT];
    size_t scratch_cap[MTP_CUDA_SCRATCH_COUNT]; /* bytes */
    void *host[MTP_CUDA_HOST_COUNT];
    size_t host_cap[MTP_CUDA_HOST_COUNT];

    struct mtp_cuda_expert_table *expert_tables; /* one per MoE layer seen */
    int n_expert_tables, cap_expert_tables;
    /* Words of host[MTP_CUDA_HOST_TREE_KEYS] that match the device's
     * MTP_CUDA_SCRATCH_TREE_KEYS (0: nothing cached). */
    size_t tree_keys_words;
};

/* A device buffer of at least BYTES for SLOT (contents undefined), valid until
 * the next call with the same slot. Reallocation is stream-ordered. */
void *mtp_cuda_scratch(struct mtp_cuda_ctx *ctx, enum mtp_cuda_scratch_slot slot, size_t bytes);
void *mtp_cuda_host_scratch(struct mtp_cuda_ctx *ctx, enum mtp_cuda_host_slot slot, size_t bytes);

/* Blocks of BLOCK threads covering COUNT items (at least 1). */
static inline unsigned mtp_cuda_blocks(size_t count, unsigned block)
{
    size_t b = (count + block - 1) / block;
    return (unsigned)(b ? b : 1);
}

/* ------------------------------------------------------------------ weights */

/* How a weight lives on the device. F32: F32 and F16 matrices (exact) and every
 * 1-D parameter (norms, biases); BF16: BF16 matrices (exact) and FP8 matrices
 * (fp8 * scale_inv rounded once to BF16, what DeepSeek's official
 * gemm_impl = "bf16" path computes). */
enum mtp_cuda_wtype {
    MTP_CUDA_W_F32,
    MTP_CUDA_W_BF16,
};

static inline enum mtp_cuda_wtype mtp_cuda_weight_type(const struct mtp_weight *w)
{
    if (w->rows <= 1 || w->dtype == MTP_DTYPE_F32 || w->dtype == MTP_DTYPE_F16)
        return MTP_CUDA_W_F32;
    return MTP_CUDA_W_BF16;
}

/* The device copy of W; aborts with the tensor name when prepare_weight was
 * never called on it. */
const void *mtp_cuda_weight_ptr(const struct mtp_weight *w);

/* Weight element loads for kernels templated on the device weight type. */
__device__ __forceinline__ float mtp_cuda_wload(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float mtp_cuda_wload(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}

/* ---------------------------------------------------------------- reductions */

/* Sum over the 32 lanes by an xor butterfly: the same bits in every lane
 * (IEEE addition is commutative), in an order fixed by the lane layout. */
__device__ __forceinline__ float mtp_cuda_warp_sum(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

__device__ __forceinline__ float mtp_cuda_warp_max(float v)
{
    for (int off = 16; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Block-wide sum/max for blockDim.x a multiple of 32 (<= 1024); RED holds 32
 * floats of shared memory. Every thread gets the result. The order depends only
 * on blockDim.x. */
__device__ __forceinline__ float mtp_cuda_block_sum(float v, float *red)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = mtp_cuda_warp_sum(v);
    __syncthreads(); /* RED may still be read by a previous reduction */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return mtp_cuda_warp_sum(v);
}

__device__ __forceinline__ float mtp_cuda_block_max(float v, float *red)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = mtp_cuda_warp_max(v);
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return mtp_cuda_warp_max(v);
}

/* --------------------------------------------------------------------- GEMV */

/* One batched matrix-vector job (cuda_matmul.cu): for token i < m of the
 * segment, y[row_out(i), r] = sum_c W0[r, c] * x[row_in(i), c] for r < rows, or
 * with SwiGLU silu(W0 x) * (W1 x). row_in(i) = x_rows ? x_rows[i] : i and
 * likewise for y. Pointers are device pointers. */
struct mtp_cuda_gemv_seg {
    const void *w0;        /* [rows, cols] */
    const void *w1;        /* [rows, cols], SwiGLU only (the up projection) */
    int wtype;             /* enum mtp_cuda_wtype of both */
    int rows, cols, m;
    const float *x;        /* rows of cols floats, stride x_stride */
    int x_stride;
    const int *x_rows;     /* [m] or NULL */
    float *y;              /* rows of `rows` floats, stride y_stride */
    int y_stride;
    const int *y_rows;     /* [m] or NULL */
};

/* Run one job (host descriptor, passed by value: nothing is uploaded). Batch
 * invariant: y[i, r] is the same fixed-order reduction over c whatever m, the
 * segment list or the token tile are. */
void mtp_cuda_gemv(struct mtp_cuda_ctx *ctx, const struct mtp_cuda_gemv_seg *seg, bool swiglu);

/* Run the first *N_SEGS (a device int) jobs of the device table DSEGS in one
 * launch with MAX_SEGS segment slots: every job has at most MAX_ROWS rows and
 * MAX_M tokens (MAX_M picks the token tile; each block loops over its job's
 * tiles; blocks past *N_SEGS or a job's rows exit at once). */
void mtp_cuda_gemv_table(struct mtp_cuda_ctx *ctx, const struct mtp_cuda_gemv_seg *dsegs,
                         int max_segs, const int *n_segs, int max_rows, int max_m, bool swiglu);

/* The device expert table of MOE (built and uploaded on first use, reused
 * while every pointer in it is unchanged). Frees: mtp_cuda_expert_tables_free. */
const struct mtp_cuda_expert_ptrs *mtp_cuda_expert_table(struct mtp_cuda_ctx *ctx,
                                                         const struct mtp_moe *moe);
void mtp_cuda_expert_tables_free(struct mtp_cuda_ctx *ctx);

/* The inputs of the device-side expert plan of one moe_ffn call. */
struct mtp_cuda_moe_plan_in {
    const int32_t *idx; /* [n, k] expert ids (device) */
    int n, k;
    const float *x;     /* [n, d] */
    float *act;         /* [n*k, I]: routed gate+up outputs */
    float *slots;       /* [n*k, d]: routed down outputs, row t*k + j */
    struct mtp_cuda_gemv_seg shared_up, shared_down; /* when moe->has_shared */
};

/* Device segment tables for mtp_cuda_gemv_table: slot 0 the shared expert
 * (if any), then each expert with entries, by expert id. */
struct mtp_cuda_moe_plan {
    const struct mtp_cuda_gemv_seg *up, *down;
    const int *n_segs; /* device count */
    int max_segs;      /* slots the grid must cover */
};

/* Enqueue the plan (cuda_moe_plan.cu): no host wait. */
void mtp_cuda_moe_plan(struct mtp_cuda_ctx *ctx, const struct mtp_moe *moe,
                       const struct mtp_cuda_moe_plan_in *in, struct mtp_cuda_moe_plan *out);

/* y = x W^T through the GEMV whatever n and MTP_CUDA_MATMUL are (router
 * logits: fp32 activations and batch invariant in prefill too). */
void mtp_cuda_matmul_gemv(struct mtp_cuda_ctx *ctx, const struct mtp_weight *w, const float *x,
                          int x_stride, int n, float *y, int y_stride);

/* y[i] = silu(g[i]) * u[i] in place into G, written as the CPU writes it. */
void mtp_cuda_swiglu_inplace(struct mtp_cuda_ctx *ctx, float *g, const float *u, size_t count);

/* ------------------------------------------------------ ops (the vtable) */

extern "C" {
void mtp_cuda_embed(void *ctx, const struct mtp_weight *table, const int32_t *tokens, int n,
                    float *out);
void mtp_cuda_matmul(void *ctx, const struct mtp_weight *w, const float *x, int x_stride, int n,
                     float *y, int y_stride);
void mtp_cuda_rmsnorm(void *ctx, const float *x, int x_stride, const struct mtp_weight *w, int n,
                      int dim, float eps, float *y, int y_stride);
void mtp_cuda_rope(void *ctx, float *x, int x_stride, int n, int n_heads, int head_stride,
                   int offset, int start_pos, const struct mtp_rope *rope);
void mtp_cuda_mla_tree_attention(void *ctx, const struct mtp_mla_dims *dims,
                                 const struct mtp_weight *kv_b, const float *q, int n,
                                 const struct mtp_tree_keys *keys, const float *cache, float *out);
void mtp_cuda_mla_attention(void *ctx, const struct mtp_mla_dims *dims,
                            const struct mtp_weight *kv_b, const float *q, int n, int start_pos,
                            const float *cache, float *out);
void mtp_cuda_route(void *ctx, const struct mtp_moe *moe, const struct mtp_route_params *p,
                    const float *x, int n, int32_t *idx, float *weights);
void mtp_cuda_moe_ffn(void *ctx, const struct mtp_moe *moe, int top_k, const float *x, int n,
                      const int32_t *idx, const float *weights, float *y);
void mtp_cuda_ffn(void *ctx, const struct mtp_ffn *ffn, const float *x, int n, float *y);
void mtp_cuda_add(void *ctx, float *y, const float *x, size_t n);
}

#endif
