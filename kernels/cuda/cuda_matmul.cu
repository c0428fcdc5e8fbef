/*
 * cuda_matmul.cu - y[n, rows] = x[n, cols] . W^T, the batched GEMV kernel that
 * also serves the FFN and the MoE experts, and the dense SwiGLU FFN.
 *
 * Two paths:
 *   - GEMV (every forward outside a prefill, any n: decode, verification,
 *     drafts, the modules' pass over the prompt, catch-up rows; and prefill
 *     chunks of n <= MTP_CUDA_INVARIANT_N = 65): one warp per output row, 8 rows per block; the weight
 *     row is read once per tile of up to NT = GEMV_MAX_TILE = 8 tokens (tiles are
 *     independent, so any n is batch invariant; the register bound is below). Lane l accumulates, in F32 with one fused
 *     multiply-add per product, columns 256*i + 8*l + 0..7 for i = 0, 1, ...
 *     (i.e. its 8-column chunks in order), then the 32 lane sums are combined
 *     by an xor butterfly. That order depends only on cols: a token's output is
 *     bitwise identical whatever n, the token tile NT or the other tokens are
 *     (backend.h, batch invariance), and the activations stay F32 (no rounding
 *     of x). Vector loads are used when alignment allows; they load the same
 *     elements in the same order, so they never change the result.
 *   - cuBLAS (n > 65 under set_prefill, i.e. inside mtp_engine_prefill only):
 *     activations rounded to BF16 into a scratch
 *     buffer (F32 weights use F32 activations), cublasGemmEx with F32 output
 *     and CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, a fixed workspace and one
 *     stream. cuBLAS is bitwise reproducible run to run for the same shapes on
 *     the same GPU model and library version, but it does not promise that a
 *     column of the output is reduced in the same order for different n (its
 *     heuristics pick kernels and split-K by shape), which is why decode and
 *     verification never use it. docs/design.md §4 lets prefill use differently
 *     ordered kernels: baseline and speculative decoding share the prefill.
 *     MTP_CUDA_MATMUL=cublas forces cuBLAS for every n (to measure how often
 *     greedy tokens then differ), MTP_CUDA_MATMUL=custom forces the GEMV.
 *
 * The GEMV is generic over a list of segments (cuda_internal.cuh): a plain
 * matmul is one segment passed by value; the MoE runs all its active experts as
 * segments of one launch, with row indirection for the gathered tokens, from a
 * segment table that its device-side plan writes (cuda_moe_plan.cu), so no
 * descriptor crosses from the host.
 *
 * Registers (issue 22). With tiles of 16 tokens the kernel took 164 (plain)
 * and 192 (SwiGLU) registers at 9-16 tokens, one block of 256 threads per SM,
 * and the 8-token SwiGLU instantiation spilled 4 bytes. The per-thread state
 * of gemv_row is sized by the tile: a0[NT], a1[NT] (SwiGLU), xr[NT] pointers,
 * plus wv0[8], wv1[8], xv[8]; so tiles now hold at most GEMV_MAX_TILE = 8
 * tokens (9..16 tokens are two tiles), and the single-segment and table
 * launches are separate instantiations (TABLE), each reading its descriptor in
 * place (the old `segs ? segs[y] : seg0` select between parameter and global
 * memory forced a copy). Measured with nvcc 13.0.88 -arch=sm_90 -O3
 * --fmad=false -Xptxas=-v (ptxas, no GPU needed): at most 120 registers
 * (8 tokens, SwiGLU, single segment), 102 plain, 104 / 80 for the MoE table,
 * 39-64 at 1-2 tokens, no spill in any instantiation; scripts/gpu-check.sh
 * reports the same per kernel on the GPU machine. Batch invariance does not
 * depend on the tile: token i's sums run over the columns in the same lane
 * order whatever tile it sits in, so the partition (tiles of 8 from token 0)
 * changes no bit.
 */
#include "cuda_internal.cuh"

enum {
    GEMV_WARPS = 8,         /* output rows per block (one warp each) */
    GEMV_CHUNK = 8,         /* consecutive columns per lane per step */
    GEMV_SPAN = 32 * 8,     /* columns covered by one warp step */
    GEMV_MAX_TILE = 8,      /* tokens per block at most (the register bound above) */
};

/* 8 consecutive elements starting at column c (c % 8 == 0) of a row; LEN < 8
 * only at the end of the row. VEC: 16-byte loads are aligned. */
__device__ __forceinline__ void load8(const float *row, int c, int len, bool vec, float out[8])
{
    if (vec && len == GEMV_CHUNK) {
        float4 a = __ldg(reinterpret_cast<const float4 *>(row + c));
        float4 b = __ldg(reinterpret_cast<const float4 *>(row + c + 4));
        out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
        out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
        return;
    }
#pragma unroll
    for (int e = 0; e < GEMV_CHUNK; e++)
        out[e] = e < len ? __ldg(row + c + e) : 0.0f;
}

__device__ __forceinline__ void load8(const __nv_bfloat16 *row, int c, int len, bool vec,
                                      float out[8])
{
    if (vec && len == GEMV_CHUNK) {
        uint4 v = __ldg(reinterpret_cast<const uint4 *>(row + c));
        uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            out[2 * e] = __uint_as_float(u[e] << 16);
            out[2 * e + 1] = __uint_as_float(u[e] & 0xffff0000u);
        }
        return;
    }
#pragma unroll
    for (int e = 0; e < GEMV_CHUNK; e++)
        out[e] = e < len ? __bfloat162float(row[c + e]) : 0.0f;
}

__device__ __forceinline__ float silu_mul(float g, float u)
{
    /* g / (1 + exp(-g)) * u, each operation rounded once, as cpu_moe.c writes it. */
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

/* One warp: row R of segment S for tokens t0..t0+nt-1. */
template <typename WT, int NT, bool SWIGLU>
__device__ __forceinline__ void gemv_row(const struct mtp_cuda_gemv_seg &s, int r, int t0, int nt)
{
    const int lane = threadIdx.x & 31;
    const WT *w0 = (const WT *)s.w0 + (size_t)r * s.cols;
    const WT *w1 = SWIGLU ? (const WT *)s.w1 + (size_t)r * s.cols : nullptr;
    const bool wvec = (s.cols % GEMV_CHUNK) == 0;
    const bool xvec = ((uintptr_t)s.x % 16) == 0 && (s.x_stride % 4) == 0;
    const float *xr[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int i = t0 + (t < nt ? t : 0);
        xr[t] = s.x + (size_t)(s.x_rows ? s.x_rows[i] : i) * s.x_stride;
    }
    float a0[NT], a1[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
        a0[t] = a1[t] = 0.0f;

    for (int c = lane * GEMV_CHUNK; c < s.cols; c += GEMV_SPAN) {
        int len = s.cols - c < GEMV_CHUNK ? s.cols - c : GEMV_CHUNK;
        float wv0[GEMV_CHUNK], wv1[GEMV_CHUNK];
        load8(w0, c, len, wvec, wv0);
        if (SWIGLU)
            load8(w1, c, len, wvec, wv1);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= nt)
                break;
            float xv[GEMV_CHUNK];
            load8(xr[t], c, len, xvec, xv);
#pragma unroll
            for (int e = 0; e < GEMV_CHUNK; e++) {
                if (e < len) {
                    a0[t] = __fmaf_rn(wv0[e], xv[e], a0[t]);
                    if (SWIGLU)
                        a1[t] = __fmaf_rn(wv1[e], xv[e], a1[t]);
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        a0[t] = mtp_cuda_warp_sum(a0[t]);
        if (SWIGLU)
            a1[t] = mtp_cuda_warp_sum(a1[t]);
    }
    /* Lane t writes token t (every lane holds every sum). */
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < nt && lane == t) {
            int i = t0 + t;
            float v = SWIGLU ? silu_mul(a0[t], a1[t]) : a0[t];
            s.y[(size_t)(s.y_rows ? s.y_rows[i] : i) * s.y_stride + r] = v;
        }
    }
}

/* One block: GEMV_WARPS rows of segment S for the token tiles blockIdx.z,
 * blockIdx.z + gridDim.z, ... (one tile per block when the grid covers them,
 * every tile in the MoE's table launch, whose grid has z = 1: its segments'
 * token counts are known only on the device, and a grid sized for the worst
 * case would be mostly empty blocks in a prefill). */
template <int NT, bool SWIGLU>
__device__ __forceinline__ void gemv_block(const struct mtp_cuda_gemv_seg &s)
{
    int r = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (r >= s.rows) /* warp-uniform exit */
        return;
    for (int t0 = blockIdx.z * NT; t0 < s.m; t0 += gridDim.z * NT) {
        int nt = s.m - t0 < NT ? s.m - t0 : NT;
        if (s.wtype == MTP_CUDA_W_BF16)
            gemv_row<__nv_bfloat16, NT, SWIGLU>(s, r, t0, nt);
        else
            gemv_row<float, NT, SWIGLU>(s, r, t0, nt);
    }
}

/* grid: x = row blocks, y = segment, z = token tiles (gemv_block). TABLE:
 * segment blockIdx.y of the device array SEGS (the MoE's, written on the
 * device; N_SEGS, a device count, says how many of the grid's y are in use);
 * else the single segment SEG0 passed by value. Two instantiations, so each
 * reads its descriptor in place and neither pays for the other's registers
 * (see the register note). */
template <int NT, bool SWIGLU, bool TABLE>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(struct mtp_cuda_gemv_seg seg0, const struct mtp_cuda_gemv_seg *segs,
                const int *n_segs)
{
    if (!TABLE) {
        gemv_block<NT, SWIGLU>(seg0);
        return;
    }
    if ((int)blockIdx.y >= *n_segs) /* block-uniform: fewer experts were active */
        return;
    gemv_block<NT, SWIGLU>(segs[blockIdx.y]);
}

/* The token tile: the smallest power of two covering MAX_M, at most
 * GEMV_MAX_TILE. It never changes results, only the weight re-reads and the
 * register footprint. */
static int gemv_tile(int max_m)
{
    int nt = 1;
    while (nt < max_m && nt < GEMV_MAX_TILE)
        nt *= 2;
    return nt;
}

template <bool SWIGLU, bool TABLE>
static void gemv_launch(struct mtp_cuda_ctx *ctx, int nt, dim3 grid,
                        const struct mtp_cuda_gemv_seg &seg0, const struct mtp_cuda_gemv_seg *dsegs,
                        const int *n_segs)
{
    const unsigned block = GEMV_WARPS * 32;
    cudaStream_t st = ctx->stream;
    switch (nt) {
    case 1:
        MTP_CUDA_LAUNCH(grid, block, 0, st, gemv_kernel<1, SWIGLU, TABLE>)(seg0, dsegs, n_segs);
        break;
    case 2:
        MTP_CUDA_LAUNCH(grid, block, 0, st, gemv_kernel<2, SWIGLU, TABLE>)(seg0, dsegs, n_segs);
        break;
    case 4:
        MTP_CUDA_LAUNCH(grid, block, 0, st, gemv_kernel<4, SWIGLU, TABLE>)(seg0, dsegs, n_segs);
        break;
    default:
        MTP_CUDA_LAUNCH(grid, block, 0, st, gemv_kernel<8, SWIGLU, TABLE>)(seg0, dsegs, n_segs);
        break;
    }
    CUDA_LAUNCH_CHECK();
}

/* TILED: one block per token tile (grid z); else every block loops over them. */
static void gemv_dispatch(struct mtp_cuda_ctx *ctx, bool swiglu, int max_rows, int y_segs,
                          int max_m, bool tiled, const struct mtp_cuda_gemv_seg &seg0,
                          const struct mtp_cuda_gemv_seg *dsegs, const int *n_segs)
{
    int nt = gemv_tile(max_m);
    unsigned tiles = tiled ? (unsigned)((max_m + nt - 1) / nt) : 1u;
    MTP_CHECK(y_segs <= 65535 && tiles <= 65535);
    dim3 grid(mtp_cuda_blocks((size_t)max_rows, GEMV_WARPS), (unsigned)y_segs, tiles);
    if (swiglu && dsegs)
        gemv_launch<true, true>(ctx, nt, grid, seg0, dsegs, n_segs);
    else if (swiglu)
        gemv_launch<true, false>(ctx, nt, grid, seg0, dsegs, n_segs);
    else if (dsegs)
        gemv_launch<false, true>(ctx, nt, grid, seg0, dsegs, n_segs);
    else
        gemv_launch<false, false>(ctx, nt, grid, seg0, dsegs, n_segs);
}

void mtp_cuda_gemv(struct mtp_cuda_ctx *ctx, const struct mtp_cuda_gemv_seg *seg, bool swiglu)
{
    MTP_CHECK(seg->rows >= 0 && seg->cols >= 0 && seg->m >= 0);
    MTP_CHECK(!swiglu || seg->w1);
    if (seg->rows == 0 || seg->m == 0)
        return;
    gemv_dispatch(ctx, swiglu, seg->rows, 1, seg->m, true, *seg, NULL, NULL);
}

void mtp_cuda_gemv_table(struct mtp_cuda_ctx *ctx, const struct mtp_cuda_gemv_seg *dsegs,
                         int max_segs, const int *n_segs, int max_rows, int max_m, bool swiglu)
{
    if (max_segs <= 0 || max_rows <= 0 || max_m <= 0)
        return;
    gemv_dispatch(ctx, swiglu, max_rows, max_segs, max_m, false, mtp_cuda_gemv_seg{}, dsegs,
                  n_segs);
}

/* ------------------------------------------------------------------ cuBLAS */

/* xb[t, c] = bf16(x[t * x_stride + c]), round to nearest even. */
__global__ void to_bf16_kernel(const float *x, int x_stride, int n, int cols, __nv_bfloat16 *xb)
{
    size_t count = (size_t)n * cols;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / (size_t)cols, c = i % (size_t)cols;
        xb[i] = __float2bfloat16_rn(x[t * (size_t)x_stride + c]);
    }
}

static void matmul_cublas(struct mtp_cuda_ctx *ctx, const struct mtp_weight *w, const float *x,
                          int x_stride, int n, float *y, int y_stride)
{
    /* Row-major Y[n, rows] = X[n, cols] W^T is column-major Y^T = W X^T:
     * C[rows, n] = op(A)[rows, cols] B[cols, n] with A the column-major view of
     * W ([cols, rows], lda = cols) transposed, B the column-major view of X. */
    const float alpha = 1.0f, beta = 0.0f;
    const void *wp = mtp_cuda_weight_ptr(w);
    const void *b = x;
    int ldb = x_stride;
    cudaDataType_t ab_type = CUDA_R_32F;
    if (mtp_cuda_weight_type(w) == MTP_CUDA_W_BF16) {
        size_t count = (size_t)n * w->cols;
        __nv_bfloat16 *xb = (__nv_bfloat16 *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_X_BF16,
                                                              count * sizeof(__nv_bfloat16));
        unsigned blocks = mtp_cuda_blocks(count, 256);
        MTP_CUDA_LAUNCH(blocks < 8192 ? blocks : 8192, 256, 0, ctx->stream, to_bf16_kernel)(
            x, x_stride, n, w->cols, xb);
        CUDA_LAUNCH_CHECK();
        b = xb;
        ldb = w->cols;
        ab_type = CUDA_R_16BF;
    }
    CUBLAS_CHECK(cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, n, w->cols, &alpha,
                              wp, ab_type, w->cols, b, ab_type, ldb, &beta, y, CUDA_R_32F,
                              y_stride, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static bool use_cublas(const struct mtp_cuda_ctx *ctx, int n)
{
    if (ctx->matmul_mode == MTP_CUDA_MATMUL_CUBLAS)
        return true;
    if (ctx->matmul_mode == MTP_CUDA_MATMUL_CUSTOM)
        return false;
    return ctx->prefill && n > MTP_CUDA_INVARIANT_N;
}

void mtp_cuda_matmul_gemv(struct mtp_cuda_ctx *ctx, const struct mtp_weight *w, const float *x,
                          int x_stride, int n, float *y, int y_stride)
{
    if (n <= 0 || w->rows <= 0)
        return;
    MTP_CHECK(x_stride >= w->cols && y_stride >= w->rows);
    struct mtp_cuda_gemv_seg s = {};
    s.w0 = mtp_cuda_weight_ptr(w);
    s.wtype = mtp_cuda_weight_type(w);
    s.rows = w->rows;
    s.cols = w->cols;
    s.m = n;
    s.x = x;
    s.x_stride = x_stride;
    s.y = y;
    s.y_stride = y_stride;
    mtp_cuda_gemv(ctx, &s, false);
}

extern "C" void mtp_cuda_matmul(void *vctx, const struct mtp_weight *w, const float *x,
                                int x_stride, int n, float *y, int y_stride)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n <= 0 || w->rows <= 0)
        return;
    MTP_CHECK(x_stride >= w->cols && y_stride >= w->rows);
    if (use_cublas(ctx, n))
        matmul_cublas(ctx, w, x, x_stride, n, y, y_stride);
    else
        mtp_cuda_matmul_gemv(ctx, w, x, x_stride, n, y, y_stride);
}

/* -------------------------------------------------------------------- FFN */

__global__ void swiglu_kernel(float *g, const float *u, size_t count)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        g[i] = silu_mul(g[i], u[i]);
}

void mtp_cuda_swiglu_inplace(struct mtp_cuda_ctx *ctx, float *g, const float *u, size_t count)
{
    if (!count)
        return;
    unsigned blocks = mtp_cuda_blocks(count, 256);
    MTP_CUDA_LAUNCH(blocks < 8192 ? blocks : 8192, 256, 0, ctx->stream, swiglu_kernel)(g, u, count);
    CUDA_LAUNCH_CHECK();
}

/* Dense SwiGLU: with the GEMV, gate and up of a row come from one fused pass
 * (the same sums as two separate matmuls, so the same bits); with cuBLAS, two
 * GEMMs and an element-wise kernel. */
extern "C" void mtp_cuda_ffn(void *vctx, const struct mtp_ffn *ffn, const float *x, int n, float *y)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n <= 0)
        return;
    const int I = ffn->gate.rows, d = ffn->gate.cols;
    MTP_CHECK(ffn->up.rows == I && ffn->up.cols == d && ffn->down.cols == I &&
              ffn->down.rows == d);
    MTP_CHECK(mtp_cuda_weight_type(&ffn->gate) == mtp_cuda_weight_type(&ffn->up));
    float *act = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_FFN_ACT,
                                           (size_t)n * I * sizeof(float));
    if (use_cublas(ctx, n)) {
        float *up = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_FFN_UP,
                                              (size_t)n * I * sizeof(float));
        matmul_cublas(ctx, &ffn->gate, x, d, n, act, I);
        matmul_cublas(ctx, &ffn->up, x, d, n, up, I);
        mtp_cuda_swiglu_inplace(ctx, act, up, (size_t)n * I);
        matmul_cublas(ctx, &ffn->down, act, I, n, y, d);
        return;
    }
    struct mtp_cuda_gemv_seg s = {};
    s.w0 = mtp_cuda_weight_ptr(&ffn->gate);
    s.w1 = mtp_cuda_weight_ptr(&ffn->up);
    s.wtype = mtp_cuda_weight_type(&ffn->gate);
    s.rows = I;
    s.cols = d;
    s.m = n;
    s.x = x;
    s.x_stride = d;
    s.y = act;
    s.y_stride = I;
    mtp_cuda_gemv(ctx, &s, true);
    mtp_cuda_matmul(ctx, &ffn->down, act, I, n, y, d);
}
