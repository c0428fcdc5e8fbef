/*
 * cuda_tree_attention.cu - MLA attention (absorbed form) over explicit key
 * rows: the tree mask of tree verification and drafting (backend.h struct
 * mtp_tree_keys, spec/decoding.md "Tree decoding").
 *
 * One block of TREE_THREADS per (head h, token t), the five stages of
 * cuda_attention.cu with the same thread mapping and reduction orders; only
 * the row of key j changes: j < n_prefix reads row j, later keys read
 * rows[off[t] + j - n_prefix]. A node whose list is the rows a sequential
 * decode reads therefore gets that decode's bits on this backend
 * (tests/test_cuda_paths.c checks it, on a GPU or emulated). Keep the two kernels
 * in step.
 *
 * The key lists live on the device in one scratch buffer [off (n+1) | rows
 * (off[n])]. The engine passes the same lists to every layer of a forward, so
 * they are uploaded once per forward: the context keeps a host copy of what
 * the buffer holds ([n | off | rows]) and compares the new lists with it in
 * full (a few hundred words). Content, not the pointer, is the key: the
 * engine rewrites its key arrays in place between forwards.
 */
#include "cuda_internal.cuh"

#include <string.h> /* defines: memcmp, memcpy */

enum {
    TREE_THREADS = 256,
    TREE_WARPS = TREE_THREADS / 32,
    TREE_SMEM_KEYS = 8192, /* as ATTN_SMEM_KEYS */
};

struct tree_attn_params {
    const void *kv_b;    /* [H*(dn+dv), rkv] */
    const float *q;      /* [n, H*(dn+dr)] */
    const float *cache;  /* [capacity, rkv+dr] */
    float *out;          /* [n, H*dv] */
    float *scores_g;     /* [n*H, max_keys] or NULL (shared memory) */
    const int32_t *off;  /* [n+1] device */
    const int32_t *rows; /* [off[n]] device */
    int max_keys;
    int n_prefix;
    int n_heads, nope, rope, v, kv_lora;
    float scale;
};

__device__ __forceinline__ const float *tree_key(const struct tree_attn_params &p, int t, int j)
{
    int r = j < p.n_prefix ? j : p.rows[p.off[t] + j - p.n_prefix];
    return p.cache + (size_t)r * (p.kv_lora + p.rope);
}

template <typename WT>
__global__ void __launch_bounds__(TREE_THREADS) mla_tree_attention_kernel(struct tree_attn_params p)
{
    extern __shared__ float smem[];
    __shared__ float red[32];
    const int h = blockIdx.x, t = blockIdx.y, H = p.n_heads;
    const int rkv = p.kv_lora, qk = p.nope + p.rope;
    const int n_keys = p.n_prefix + p.off[t + 1] - p.off[t];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float *q_lat = smem;
    float *o_lat = q_lat + rkv;
    float *qs = o_lat + rkv;
    float *scores = p.scores_g ? p.scores_g + (size_t)(t * H + h) * p.max_keys : qs + qk;
    const WT *wk = (const WT *)p.kv_b + (size_t)h * (p.nope + p.v) * rkv;
    const WT *wv = wk + (size_t)p.nope * rkv;

    const float *qh = p.q + (size_t)t * H * qk + (size_t)h * qk;
    for (int i = tid; i < qk; i += TREE_THREADS)
        qs[i] = qh[i];
    __syncthreads();

    for (int c = tid; c < rkv; c += TREE_THREADS) {
        float acc = 0.0f;
        for (int i = 0; i < p.nope; i++)
            acc = __fmaf_rn(qs[i], mtp_cuda_wload(wk, (size_t)i * rkv + c), acc);
        q_lat[c] = acc;
    }
    __syncthreads();

    const float *q_pe = qs + p.nope;
    float mx = -INFINITY;
    for (int j = warp; j < n_keys; j += TREE_WARPS) {
        const float *row = tree_key(p, t, j);
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
    mx = mtp_cuda_block_max(mx, red);

    float sum = 0.0f;
    for (int j = tid; j < n_keys; j += TREE_THREADS) {
        float e = expf(__fsub_rn(scores[j], mx));
        scores[j] = e;
        sum = __fadd_rn(sum, e);
    }
    sum = mtp_cuda_block_sum(sum, red);
    for (int j = tid; j < n_keys; j += TREE_THREADS)
        scores[j] = __fdiv_rn(scores[j], sum);
    __syncthreads();

    for (int c = tid; c < rkv; c += TREE_THREADS) {
        float acc = 0.0f;
        for (int j = 0; j < n_keys; j++)
            acc = __fmaf_rn(scores[j], tree_key(p, t, j)[c], acc);
        o_lat[c] = acc;
    }
    __syncthreads();

    float *oh = p.out + (size_t)t * H * p.v + (size_t)h * p.v;
    for (int i = warp; i < p.v; i += TREE_WARPS) {
        float acc = 0.0f;
        for (int c = lane; c < rkv; c += 32)
            acc = __fmaf_rn(mtp_cuda_wload(wv, (size_t)i * rkv + c), o_lat[c], acc);
        acc = mtp_cuda_warp_sum(acc);
        if (lane == 0)
            oh[i] = acc;
    }
}

/* The device copy [off | rows] of KEYS' lists for N tokens, uploaded only when
 * they differ from the lists the buffer holds. */
static const int32_t *device_keys(struct mtp_cuda_ctx *ctx, const struct mtp_tree_keys *keys,
                                  int n)
{
    size_t n_off = (size_t)n + 1, n_rows = (size_t)keys->off[n];
    size_t words = 1 + n_off + n_rows;
    int32_t *dev = (int32_t *)ctx->scratch[MTP_CUDA_SCRATCH_TREE_KEYS];
    const int32_t *held = (const int32_t *)ctx->host[MTP_CUDA_HOST_TREE_KEYS];
    if (ctx->tree_keys_words == words && held[0] == n &&
        !memcmp(held + 1, keys->off, n_off * sizeof(int32_t)) &&
        !memcmp(held + 1 + n_off, keys->rows, n_rows * sizeof(int32_t)))
        return dev;
    ctx->tree_keys_words = 0; /* nothing valid until the new copy is in place */
    dev = (int32_t *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_TREE_KEYS,
                                      (n_off + n_rows) * sizeof(int32_t));
    int32_t *copy = (int32_t *)mtp_cuda_host_scratch(ctx, MTP_CUDA_HOST_TREE_KEYS,
                                                     words * sizeof(int32_t));
    copy[0] = n;
    memcpy(copy + 1, keys->off, n_off * sizeof(int32_t));
    memcpy(copy + 1 + n_off, keys->rows, n_rows * sizeof(int32_t));
    /* From the context's own copy, which stays untouched until the next
     * upload is enqueued after this one: no wait for the copy to finish. */
    CUDA_CHECK(cudaMemcpyAsync(dev, copy + 1, (n_off + n_rows) * sizeof(int32_t),
                               cudaMemcpyHostToDevice, ctx->stream));
    ctx->tree_keys_words = words;
    return dev;
}

template <typename WT>
static void launch_tree(const struct tree_attn_params &p, dim3 grid, size_t smem,
                        cudaStream_t stream)
{
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(mla_tree_attention_kernel<WT>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    MTP_CUDA_LAUNCH(grid, TREE_THREADS, smem, stream, mla_tree_attention_kernel<WT>)(p);
}

extern "C" void mtp_cuda_mla_tree_attention(void *vctx, const struct mtp_mla_dims *dims,
                                            const struct mtp_weight *kv_b, const float *q, int n,
                                            const struct mtp_tree_keys *keys, const float *cache,
                                            float *out)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    const int H = dims->n_heads;
    MTP_CHECK(kv_b->rows == H * (dims->nope + dims->v) && kv_b->cols == dims->kv_lora);
    MTP_CHECK(n >= 0 && n <= 65535 && H <= 65535 && keys->n_prefix >= 0 && keys->off[0] == 0);
    if (n == 0 || H == 0)
        return;
    int longest = 0;
    for (int t = 0; t < n; t++) {
        MTP_CHECK(keys->off[t + 1] >= keys->off[t]);
        longest = keys->off[t + 1] - keys->off[t] > longest ? keys->off[t + 1] - keys->off[t]
                                                             : longest;
    }
    struct tree_attn_params p = {};
    const int32_t *dev = device_keys(ctx, keys, n);
    p.off = dev;
    p.rows = dev + n + 1;
    p.kv_b = mtp_cuda_weight_ptr(kv_b);
    p.q = q;
    p.cache = cache;
    p.out = out;
    p.n_prefix = keys->n_prefix;
    p.n_heads = H;
    p.nope = dims->nope;
    p.rope = dims->rope;
    p.v = dims->v;
    p.kv_lora = dims->kv_lora;
    p.scale = dims->scale;
    p.max_keys = keys->n_prefix + longest;
    size_t smem = (size_t)(2 * dims->kv_lora + dims->nope + dims->rope) * sizeof(float);
    if (p.max_keys <= TREE_SMEM_KEYS)
        smem += (size_t)p.max_keys * sizeof(float);
    else
        p.scores_g = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_ATTN,
                                               (size_t)n * H * p.max_keys * sizeof(float));
    MTP_CHECK(smem <= 200 * 1024);
    dim3 grid((unsigned)H, (unsigned)n);
    if (mtp_cuda_weight_type(kv_b) == MTP_CUDA_W_BF16)
        launch_tree<__nv_bfloat16>(p, grid, smem, ctx->stream);
    else
        launch_tree<float>(p, grid, smem, ctx->stream);
    CUDA_LAUNCH_CHECK();
}
