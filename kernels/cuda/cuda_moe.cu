/*
 * cuda_moe.cu - MoE router and experts (docs/model.md §5), same semantics as
 * kernels/cpu/cpu_moe.c.
 *
 * Router: logits = W_router x through the GEMV for every n (F32 activations
 * and accumulation as docs/model.md §9 recommends, batch invariant even in
 * prefill; the router is small, so re-reading it per 8-token tile is cheap),
 * then one block per token:
 *   s = sigmoid(logits) (noaux_tc) or softmax(logits) (greedy,
 *   group_limited_greedy; max by reduction, the sum of exps sequential in
 *   expert order as on the CPU); b = s + bias (noaux_tc, bias for selection
 *   only) or s; group limit (n_group > 1 and not greedy): group score = sum of
 *   the top-2 b (noaux_tc) or max b, the topk_group best groups kept (ties to
 *   the lower group), others masked to -inf; top-k of b by k block-wide argmax
 *   rounds, ties to the lower expert id; weights = unbiased s of the chosen,
 *   divided by their sum (slot order) when norm_topk_prob, times
 *   routed_scaling_factor. Each step is written as the CPU writes it, so with
 *   the same logits the choices and weights agree up to the 2-ulp difference of
 *   CUDA's expf.
 *
 * Experts: the grouping by expert is planned on the device
 * (cuda_moe_plan.cu): per-expert lists of (token, slot) entries in token order
 * as the CPU builds them, and the GEMV segment tables, with no host wait. Every
 * active expert then runs as one segment of two batched GEMV launches
 * (cuda_matmul.cu): gate+up with SwiGLU fused, then down, writing one row per
 * (token, slot). The shared expert is segment 0 of the same launches. Each
 * expert's weights are read once per tile of up to 8 tokens. A combine
 * kernel then sums y[t] = shared[t] + w[t,0] o[t,0] + ... + w[t,k-1] o[t,k-1]
 * left to right, each operation rounded once. Batch invariant: every row
 * depends only on its token. With no host step left, a layer could be
 * captured in a CUDA Graph (README.md).
 */
#include "cuda_internal.cuh"

enum { ROUTE_THREADS = 256 };

struct route_args {
    const float *logits; /* [n, E] */
    const float *bias;   /* [E] or NULL */
    int32_t *idx;        /* [n, k] */
    float *weights;      /* [n, k] */
    int E, k, n_group, topk_group;
    int scoring, method, norm_topk_prob;
    float scaling;
};

/* (value, index) order of the top-k: larger value first, then lower index. */
__device__ __forceinline__ bool better(float v, int i, float bv, int bi)
{
    return v > bv || (v == bv && i < bi);
}

/* The K largest of V[0..n) in descending order into OUT (values into OUTV),
 * ties to the lower index: cpu_moe.c's topk_desc, step for step. One thread.
 * It is the definition whenever a score is NaN (NaN never compares greater,
 * so the CPU keeps the first entries it inserted, e.g. experts 0..k-1 when
 * every score is NaN; the engine then names the stage that went non-finite). */
__device__ void topk_desc(const float *v, int n, int k, int *out, float *outv)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        float x = v[i];
        if (kept == k && !(x > outv[k - 1]))
            continue;
        int pos = kept < k ? kept++ : k - 1;
        for (; pos > 0 && x > outv[pos - 1]; pos--) {
            outv[pos] = outv[pos - 1];
            out[pos] = out[pos - 1];
        }
        outv[pos] = x;
        out[pos] = i;
    }
}

__global__ void __launch_bounds__(ROUTE_THREADS) route_kernel(struct route_args a)
{
    extern __shared__ float rsm[];
    __shared__ float red[32];
    __shared__ float red_v[32];
    __shared__ int red_i[32];
    __shared__ int sel[64];
    __shared__ float selv[64];
    __shared__ int has_nan;
    const int E = a.E, t = blockIdx.x, tid = threadIdx.x;
    float *s = rsm;                          /* [E] unbiased scores */
    float *b = s + E;                        /* [E] selection scores */
    unsigned char *taken = (unsigned char *)(b + E); /* [E] */
    const float *lg = a.logits + (size_t)t * E;

    /* scores */
    if (a.scoring == MTP_SCORING_SIGMOID) {
        for (int e = tid; e < E; e += ROUTE_THREADS)
            s[e] = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-lg[e])));
    } else {
        float mx = -INFINITY;
        for (int e = tid; e < E; e += ROUTE_THREADS)
            mx = fmaxf(mx, lg[e]);
        mx = mtp_cuda_block_max(mx, red);
        for (int e = tid; e < E; e += ROUTE_THREADS)
            s[e] = expf(__fsub_rn(lg[e], mx));
        __syncthreads();
        if (tid == 0) {
            float sum = 0.0f;
            for (int e = 0; e < E; e++)
                sum = __fadd_rn(sum, s[e]);
            red[0] = sum;
        }
        __syncthreads();
        float sum = red[0];
        for (int e = tid; e < E; e += ROUTE_THREADS)
            s[e] = __fdiv_rn(s[e], sum);
    }
    bool use_bias = a.method == MTP_TOPK_NOAUX_TC && a.bias;
    for (int e = tid; e < E; e += ROUTE_THREADS) {
        b[e] = use_bias ? __fadd_rn(s[e], a.bias[e]) : s[e];
        taken[e] = 0;
    }
    __syncthreads();

    /* group limit: thread 0, sequential as on the CPU (n_group is small) */
    if (a.n_group > 1 && a.method != MTP_TOPK_GREEDY) {
        if (tid == 0) {
            const int G = a.n_group, gsize = E / G;
            unsigned long long kept = 0; /* G <= 64 (checked by the caller) */
            float gscore[64];
            for (int g = 0; g < G; g++) {
                const float *bg = b + g * gsize;
                float top1 = -INFINITY, top2 = -INFINITY;
                for (int i = 0; i < gsize; i++) {
                    if (bg[i] > top1) {
                        top2 = top1;
                        top1 = bg[i];
                    } else if (bg[i] > top2) {
                        top2 = bg[i];
                    }
                }
                gscore[g] = a.method == MTP_TOPK_NOAUX_TC ? (gsize >= 2 ? __fadd_rn(top1, top2) : top1)
                                                          : top1;
            }
            int gsel[64];
            float gselv[64];
            topk_desc(gscore, G, a.topk_group, gsel, gselv); /* as the CPU, NaN included */
            for (int r = 0; r < a.topk_group; r++)
                kept |= 1ull << gsel[r];
            for (int g = 0; g < G; g++)
                if (!(kept >> g & 1ull))
                    for (int i = 0; i < gsize; i++)
                        b[g * gsize + i] = -INFINITY;
        }
        __syncthreads();
    }

    /* A NaN selection score (NaN activations, or softmax over all -inf
     * logits): the CPU's sequential top-k decides, on one thread. Without the
     * fallback no expert compares better than the start value and the index
     * stayed 0x7fffffff (taken[0x7fffffff] = 1: a write far outside shared
     * memory, issue 22). */
    if (tid == 0)
        has_nan = 0;
    __syncthreads();
    for (int e = tid; e < E; e += ROUTE_THREADS)
        if (b[e] != b[e])
            has_nan = 1;
    __syncthreads();
    if (has_nan) {
        if (tid == 0)
            topk_desc(b, E, a.k, sel, selv);
        __syncthreads();
    }

    /* top-k: k rounds of a block-wide argmax over the experts not yet taken */
    for (int slot = 0; slot < a.k && !has_nan; slot++) {
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        for (int e = tid; e < E; e += ROUTE_THREADS)
            if (!taken[e] && better(b[e], e, bv, bi))
                bv = b[e], bi = e;
        for (int off = 16; off > 0; off >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, off);
            int oi = __shfl_xor_sync(0xffffffffu, bi, off);
            if (better(ov, oi, bv, bi))
                bv = ov, bi = oi;
        }
        int lane = tid & 31, warp = tid >> 5;
        if (lane == 0)
            red_v[warp] = bv, red_i[warp] = bi;
        __syncthreads();
        if (tid == 0) {
            float v = red_v[0];
            int i = red_i[0];
            for (int w = 1; w < ROUTE_THREADS / 32; w++)
                if (better(red_v[w], red_i[w], v, i))
                    v = red_v[w], i = red_i[w];
            sel[slot] = i;
            taken[i] = 1;
        }
        __syncthreads();
    }

    /* weights, in slot order */
    if (tid == 0) {
        int32_t *idx = a.idx + (size_t)t * a.k;
        float *w = a.weights + (size_t)t * a.k;
        float sum = 0.0f;
        for (int j = 0; j < a.k; j++) {
            idx[j] = sel[j];
            w[j] = s[sel[j]];
            sum = __fadd_rn(sum, w[j]);
        }
        for (int j = 0; j < a.k; j++) {
            if (a.norm_topk_prob)
                w[j] = __fdiv_rn(w[j], sum);
            w[j] = __fmul_rn(w[j], a.scaling);
        }
    }
}

extern "C" void mtp_cuda_route(void *vctx, const struct mtp_moe *moe,
                               const struct mtp_route_params *p, const float *x, int n,
                               int32_t *idx, float *weights)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n <= 0)
        return;
    const int E = p->n_experts;
    MTP_CHECK(moe->router.rows == E);
    MTP_CHECK(p->top_k >= 1 && p->top_k <= E && p->top_k <= 64);
    MTP_CHECK(p->n_group >= 1 && p->n_group <= 64 && E % p->n_group == 0);
    MTP_CHECK(p->n_group == 1 || p->method == MTP_TOPK_GREEDY ||
              (p->topk_group >= 1 && p->topk_group <= p->n_group));
    MTP_CHECK(!moe->score_bias.data || (moe->score_bias.dtype == MTP_DTYPE_F32 &&
                                        moe->score_bias.cols * moe->score_bias.rows == E));
    float *logits =
        (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_LOGITS, (size_t)n * E * sizeof(float));
    mtp_cuda_matmul_gemv(ctx, &moe->router, x, moe->router.cols, n, logits, E);
    struct route_args a = {};
    a.logits = logits;
    a.bias = moe->score_bias.data ? (const float *)mtp_cuda_weight_ptr(&moe->score_bias) : NULL;
    a.idx = idx;
    a.weights = weights;
    a.E = E;
    a.k = p->top_k;
    a.n_group = p->n_group;
    a.topk_group = p->topk_group;
    a.scoring = p->scoring;
    a.method = p->method;
    a.norm_topk_prob = p->norm_topk_prob;
    a.scaling = p->routed_scaling_factor;
    size_t smem = (size_t)E * (2 * sizeof(float) + 1);
    MTP_CHECK(smem <= 48 * 1024);
    MTP_CUDA_LAUNCH((unsigned)n, ROUTE_THREADS, smem, ctx->stream, route_kernel)(a);
    CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------------ moe_ffn */

/* y[t, c] = shared[t, c] (or 0) + sum_j w[t, j] * slots[t*k + j, c], left to right. */
__global__ void moe_combine_kernel(const float *shared, const float *slots, const float *weights,
                                   int n, int k, int d, float *y)
{
    size_t total = (size_t)n * d;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / (size_t)d, c = i % (size_t)d;
        float acc = shared ? shared[i] : 0.0f;
        for (int j = 0; j < k; j++)
            acc = __fadd_rn(acc, __fmul_rn(weights[t * k + j], slots[(t * k + j) * d + c]));
        y[i] = acc;
    }
}

/* The shared expert's two segments: all n tokens, rows in order. */
static void shared_segments(const struct mtp_ffn *f, const float *x, int n, int d, float *sact,
                            float *shared, struct mtp_cuda_gemv_seg *up,
                            struct mtp_cuda_gemv_seg *down)
{
    const int Is = f->gate.rows;
    MTP_CHECK(f->gate.cols == d && f->up.rows == Is && f->down.rows == d && f->down.cols == Is);
    MTP_CHECK(mtp_cuda_weight_type(&f->gate) == mtp_cuda_weight_type(&f->up));
    *up = mtp_cuda_gemv_seg{};
    up->w0 = mtp_cuda_weight_ptr(&f->gate);
    up->w1 = mtp_cuda_weight_ptr(&f->up);
    up->wtype = mtp_cuda_weight_type(&f->gate);
    up->rows = Is, up->cols = d, up->m = n;
    up->x = x, up->x_stride = d;
    up->y = sact, up->y_stride = Is;
    *down = mtp_cuda_gemv_seg{};
    down->w0 = mtp_cuda_weight_ptr(&f->down);
    down->wtype = mtp_cuda_weight_type(&f->down);
    down->rows = d, down->cols = Is, down->m = n;
    down->x = sact, down->x_stride = Is;
    down->y = shared, down->y_stride = d;
}

extern "C" void mtp_cuda_moe_ffn(void *vctx, const struct mtp_moe *moe, int top_k, const float *x,
                                 int n, const int32_t *idx, const float *weights, float *y)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n <= 0)
        return;
    const int E = moe->router.rows, d = moe->router.cols, k = top_k, nk = n * k;
    MTP_CHECK(E > 0 && k >= 1 && k <= E);
    const int I = moe->experts[0].gate.rows;
    const int Is = moe->has_shared ? moe->shared.gate.rows : 0;

    /* 1. buffers */
    struct mtp_cuda_moe_plan_in in = {};
    in.idx = idx;
    in.n = n;
    in.k = k;
    in.x = x;
    in.act = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_ACT,
                                       (size_t)nk * (I > 0 ? I : 1) * sizeof(float));
    in.slots = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_SLOTS,
                                         (size_t)nk * d * sizeof(float));
    float *shared = NULL;
    if (moe->has_shared) {
        float *sact = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_SACT,
                                                (size_t)n * Is * sizeof(float));
        shared = (float *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_SHARED,
                                           (size_t)n * d * sizeof(float));
        shared_segments(&moe->shared, x, n, d, sact, shared, &in.shared_up, &in.shared_down);
    }

    /* 2. the plan, on the device: segment tables (shared first, then each
     * expert with entries) */
    struct mtp_cuda_moe_plan plan;
    mtp_cuda_moe_plan(ctx, moe, &in, &plan);

    /* 3. experts (an expert has at most n tokens: one slot per token), then
     * the fixed-order sum */
    mtp_cuda_gemv_table(ctx, plan.up, plan.max_segs, plan.n_segs, I > Is ? I : Is, n, true);
    mtp_cuda_gemv_table(ctx, plan.down, plan.max_segs, plan.n_segs, d, n, false);
    size_t total = (size_t)n * d;
    unsigned blocks = mtp_cuda_blocks(total, 256);
    MTP_CUDA_LAUNCH(blocks < 8192 ? blocks : 8192, 256, 0, ctx->stream, moe_combine_kernel)(
        shared, in.slots, weights, n, k, d, y);
    CUDA_LAUNCH_CHECK();
}
