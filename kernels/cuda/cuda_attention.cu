/*
 * cuda_attention.cu - MLA attention in the absorbed form over the latent cache
 * (docs/model.md §3.4), for n = 1 .. k+1 query tokens (and prefill chunks).
 *
 * One block of ATTN_THREADS per (head h, token t); token t attends to cache
 * rows 0..start_pos+t (n_keys of them). In the block, with rkv = kv_lora:
 *   1. q~[c] = sum_i q_nope[i] * W_UK[h][i][c], i = 0..dn-1 in order, one fused
 *      multiply-add per term, thread-strided over c (the CPU's axpy order, so
 *      q~ has the same bits as on the CPU for BF16/F32 weights);
 *   2. score_j = (q~ . c_j + q_pe . kpe_j) * scale, one warp per key j (lane-
 *      strided partial sums, xor butterfly);
 *   3. fp32 softmax: max, p_j = exp(s_j - max), sum over j thread-strided then a
 *      block reduction, p_j / sum;
 *   4. o~[c] = sum_j p_j c_j[c], j in order, fused multiply-adds, thread-strided
 *      over c;
 *   5. o[i] = W_UV[h][i] . o~, one warp per i.
 * Every order depends on the dims, n_keys and the block size, never on n or on
 * the other tokens: a token's output is the same in a decode and inside a
 * verification (backend.h). Scores live in shared memory up to
 * ATTN_SMEM_KEYS keys, beyond that in a global scratch [n*H, n_keys].
 *
 * kv_b rows of head h: h*(dn+dv) .. +dn-1 are W_UK[h], the next dv rows
 * W_UV[h]; BF16 or F32 on the device. W_UK[h] is re-read per token from L2;
 * a tiled kernel that shares it across tokens (and splits long caches) is the
 * obvious next step once a GPU is at hand (README.md).
 */
#include "cuda_internal.cuh"

enum {
    ATTN_THREADS = 256,
    ATTN_WARPS = ATTN_THREADS / 32,
    ATTN_SMEM_KEYS = 8192, /* 32 KiB of scores; more go to global scratch */
};

struct attn_params {
    const void *kv_b;   /* [H*(dn+dv), rkv] */
    const float *q;     /* [n, H*(dn+dr)] */
    const float *cache; /* [capacity, rkv+dr] */
    float *out;         /* [n, H*dv] */
    float *scores_g;    /* [n*H, max_keys] or NULL (shared memory) */
    int max_keys;
    int n_heads, nope, rope, v, kv_lora;
    int start_pos;
    float scale;
};

template <typename WT>
__global__ void __launch_bounds__(ATTN_THREADS) mla_attention_kernel(struct attn_params p)
{
    extern __shared__ float smem[];
    __shared__ float red[32];
    const int h = blockIdx.x, t = blockIdx.y, H = p.n_heads;
    const int rkv = p.kv_lora, cw = p.kv_lora + p.rope, qk = p.nope + p.rope;
    const int n_keys = p.start_pos + t + 1;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float *q_lat = smem;            /* [rkv] */
    float *o_lat = q_lat + rkv;     /* [rkv] */
    float *qs = o_lat + rkv;        /* [dn + dr] this head's query */
    float *scores = p.scores_g ? p.scores_g + (size_t)(t * H + h) * p.max_keys
                               : qs + qk; /* [n_keys] */
    const WT *wk = (const WT *)p.kv_b + (size_t)h * (p.nope + p.v) * rkv; /* W_UK[h] [dn, rkv] */
    const WT *wv = wk + (size_t)p.nope * rkv;                              /* W_UV[h] [dv, rkv] */

    const float *qh = p.q + (size_t)t * H * qk + (size_t)h * qk;
    for (int i = tid; i < qk; i += ATTN_THREADS)
        qs[i] = qh[i];
    __syncthreads();

    /* 1. q~ = W_UK[h]^T q_nope */
    for (int c = tid; c < rkv; c += ATTN_THREADS) {
        float acc = 0.0f;
        for (int i = 0; i < p.nope; i++)
            acc = __fmaf_rn(qs[i], mtp_cuda_wload(wk, (size_t)i * rkv + c), acc);
        q_lat[c] = acc;
    }
    __syncthreads();

    /* 2. scores, one warp per key */
    const float *q_pe = qs + p.nope;
    float mx = -INFINITY;
    for (int j = warp; j < n_keys; j += ATTN_WARPS) {
        const float *row = p.cache + (size_t)j * cw; /* [rkv | dr] */
        float a = 0.0f, b = 0.0f;
        for (int c = lane; c < rkv; c += 32)
            a = __fmaf_rn(q_lat[c], row[c], a);
        for (int c = lane; c < p.rope; c += 32)
            b = __fmaf_rn(q_pe[c], row[rkv + c], b);
        a = mtp_cuda_warp_sum(a);
        b = mtp_cuda_warp_sum(b);
        float sc = __fmul_rn(__fadd_rn(a, b), p.scale);
        if (lane == 0)
            scores[j] = sc;
        mx = fmaxf(mx, sc);
    }
    mx = mtp_cuda_block_max(mx, red); /* also orders the score writes before the reads */

    /* 3. softmax */
    float sum = 0.0f;
    for (int j = tid; j < n_keys; j += ATTN_THREADS) {
        float e = expf(__fsub_rn(scores[j], mx));
        scores[j] = e;
        sum = __fadd_rn(sum, e);
    }
    sum = mtp_cuda_block_sum(sum, red);
    for (int j = tid; j < n_keys; j += ATTN_THREADS)
        scores[j] = __fdiv_rn(scores[j], sum);
    __syncthreads();

    /* 4. o~ = sum_j p_j c_j */
    for (int c = tid; c < rkv; c += ATTN_THREADS) {
        float acc = 0.0f;
        for (int j = 0; j < n_keys; j++)
            acc = __fmaf_rn(scores[j], p.cache[(size_t)j * cw + c], acc);
        o_lat[c] = acc;
    }
    __syncthreads();

    /* 5. o = W_UV[h] o~, one warp per output element */
    float *oh = p.out + (size_t)t * H * p.v + (size_t)h * p.v;
    for (int i = warp; i < p.v; i += ATTN_WARPS) {
        float acc = 0.0f;
        for (int c = lane; c < rkv; c += 32)
            acc = __fmaf_rn(mtp_cuda_wload(wv, (size_t)i * rkv + c), o_lat[c], acc);
        acc = mtp_cuda_warp_sum(acc);
        if (lane == 0)
            oh[i] = acc;
    }
}

extern "C" void mtp_cuda_mla_attention(void *vctx, const struct mtp_mla_dims *dims,
                                       const struct mtp_weight *kv_b, const float *q, int n,
                                       int start_pos, const float *cache, float *out)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    const int H = dims->n_heads;
    MTP_CHECK(kv_b->rows == H * (dims->nope + dims->v) && kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && start_pos >= 0 && n <= 65535 && H <= 65535);
    if (n == 0 || H == 0)
        return;
    struct attn_params p = {};
    p.kv_b = mtp_cuda_weight_ptr(kv_b);
    p.q = q;
    p.cache = cache;
    p.out = out;
    p.n_heads = H;
    p.nope = dims->nope;
    p.rope = dims->rope;
    p.v = dims->v;
    p.kv_lora = dims->kv_lora;
    p.start_pos = start_pos;
    p.scale = dims->scale;
    p.max_keys = start_pos + n;
    size_t smem = (size_t)(2 * dims->kv_lora + dims->nope + dims->rope) * sizeof(float);
    if (p.max_keys <= ATTN_SMEM_KEYS) {
        smem += (size_t)p.max_keys * sizeof(float);
    } else {
        p.scores_g = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_ATTN,
                                               (size_t)n * H * p.max_keys * sizeof(float));
    }
    /* Up to 48 KiB needs no opt-in; beyond, ask for it (Hopper allows 227 KiB). */
    MTP_CHECK(smem <= 200 * 1024);
    dim3 grid((unsigned)H, (unsigned)n);
    if (mtp_cuda_weight_type(kv_b) == MTP_CUDA_W_BF16) {
        if (smem > 48 * 1024)
            CUDA_CHECK(cudaFuncSetAttribute(mla_attention_kernel<__nv_bfloat16>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)smem));
        MTP_CUDA_LAUNCH(grid, ATTN_THREADS, smem, ctx->stream,
                        mla_attention_kernel<__nv_bfloat16>)(p);
    } else {
        if (smem > 48 * 1024)
            CUDA_CHECK(cudaFuncSetAttribute(mla_attention_kernel<float>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)smem));
        MTP_CUDA_LAUNCH(grid, ATTN_THREADS, smem, ctx->stream, mla_attention_kernel<float>)(p);
    }
    CUDA_LAUNCH_CHECK();
}
