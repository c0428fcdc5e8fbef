/*
 * cuda_norm_rope.cu - RMSNorm and RoPE (docs/model.md §3.1, §3.5, §4).
 *
 * RMSNorm: one block of NORM_THREADS per token row, fp32. Thread i accumulates
 * x[i + NORM_THREADS*j]^2 for j = 0, 1, ... with fused multiply-adds, then a
 * block reduction whose order depends only on NORM_THREADS (cuda_internal.cuh);
 * inv = 1 / sqrt(ss / dim + eps), y = w * (x * inv), each operation rounded
 * once as in cpu_norm_rope.c. y may alias x (each element is read and written
 * by the same thread, after the reduction).
 *
 * RoPE: one thread per (token, head, pair); angle = (float)pos * inv_freq[i]
 * rounded in fp32, cosf/sinf (CUDA's full-range versions: at most 2 ulp from
 * the correctly rounded value, where glibc is within 1 ulp; the CPU comparison
 * tolerance covers it), times cos_sin_scale, then
 * (a, b) -> (a cos - b sin, a sin + b cos) without FMA contraction. The table
 * travels by value in the kernel parameters (struct mtp_rope, 520 bytes).
 */
#include "cuda_internal.cuh"

enum { NORM_THREADS = 256 };

__global__ void __launch_bounds__(NORM_THREADS)
    rmsnorm_kernel(const float *x, int x_stride, const float *w, int dim, float eps, float *y,
                   int y_stride)
{
    __shared__ float red[32];
    const float *xt = x + (size_t)blockIdx.x * x_stride; /* [dim] */
    float *yt = y + (size_t)blockIdx.x * y_stride;       /* [dim], may alias xt */
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += NORM_THREADS)
        ss = __fmaf_rn(xt[i], xt[i], ss);
    ss = mtp_cuda_block_sum(ss, red);
    float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)dim), eps)));
    for (int i = threadIdx.x; i < dim; i += NORM_THREADS)
        yt[i] = __fmul_rn(w[i], __fmul_rn(xt[i], inv));
}

extern "C" void mtp_cuda_rmsnorm(void *vctx, const float *x, int x_stride,
                                 const struct mtp_weight *w, int n, int dim, float eps, float *y,
                                 int y_stride)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n <= 0)
        return;
    MTP_CHECK(w->cols == dim && mtp_cuda_weight_type(w) == MTP_CUDA_W_F32);
    MTP_CUDA_LAUNCH((unsigned)n, NORM_THREADS, 0, ctx->stream, rmsnorm_kernel)(
        x, x_stride, (const float *)mtp_cuda_weight_ptr(w), dim, eps, y, y_stride);
    CUDA_LAUNCH_CHECK();
}

__global__ void rope_kernel(float *x, int x_stride, int n, int n_heads, int head_stride,
                            int offset, int start_pos, struct mtp_rope rope)
{
    int pairs = rope.dim / 2;
    size_t total = (size_t)n * n_heads * pairs;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(k % pairs);
        int h = (int)((k / pairs) % n_heads);
        int t = (int)(k / ((size_t)pairs * n_heads));
        float angle = __fmul_rn((float)(start_pos + t), rope.inv_freq[i]);
        float cs = __fmul_rn(cosf(angle), rope.cos_sin_scale);
        float sn = __fmul_rn(sinf(angle), rope.cos_sin_scale);
        float *v = x + (size_t)t * x_stride + (size_t)h * head_stride + offset + 2 * i;
        float a = v[0], b = v[1];
        v[0] = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
        v[1] = __fadd_rn(__fmul_rn(a, sn), __fmul_rn(b, cs));
    }
}

extern "C" void mtp_cuda_rope(void *vctx, float *x, int x_stride, int n, int n_heads,
                              int head_stride, int offset, int start_pos,
                              const struct mtp_rope *rope)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    MTP_CHECK(rope->dim % 2 == 0 && rope->dim / 2 <= MTP_MAX_ROPE_PAIRS);
    size_t total = (size_t)n * n_heads * (rope->dim / 2);
    if (n <= 0 || total == 0)
        return;
    unsigned blocks = mtp_cuda_blocks(total, 256);
    MTP_CUDA_LAUNCH(blocks < 4096 ? blocks : 4096, 256, 0, ctx->stream, rope_kernel)(
        x, x_stride, n, n_heads, head_stride, offset, start_pos, *rope);
    CUDA_LAUNCH_CHECK();
}
