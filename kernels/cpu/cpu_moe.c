/*
 * cpu_moe.c - MoE router, routed + shared experts, and the dense SwiGLU FFN
 * (docs/model.md §5).
 *
 * Routing, per token (all variants of §5):
 *   logits = W_router x in fp32 (the canonical matmul);
 *   s = sigmoid(logits) (noaux_tc) or softmax(logits) (greedy, group_limited_greedy);
 *   selection scores b = s + e_score_correction_bias for noaux_tc (bias used for
 *   selection only), b = s otherwise;
 *   group limit (n_group > 1, not greedy): the E experts form n_group contiguous
 *   groups; a group's score is the sum of its top-2 b (noaux_tc) or its max b
 *   (group_limited_greedy); the topk_group best groups are kept and every expert
 *   of the other groups gets b = -inf, so the top-k below can only pick experts
 *   of kept groups;
 *   top-k of b, slots in descending b, ties to the lower id (lower group id for
 *   groups); weights = unbiased s of the chosen, divided by their sum when
 *   norm_topk_prob, times routed_scaling_factor.
 *
 * Experts: tokens are grouped by expert (per-expert lists of (token, slot),
 * in token order), each expert runs its SwiGLU once over its gathered tokens,
 * so its weights are read once per call, and writes one output row per
 * (token, slot). Each y[t] is then summed in a fixed order: shared expert
 * first, then slots 0..k-1 times their weights. Every matmul is batch
 * invariant, hence so is the whole op. y may alias x (x is fully consumed
 * before y is written).
 *
 * The shared expert runs once for all n tokens. Small experts' weights are
 * prefetched one expert ahead (expert_prefetch).
 *
 * Scratch lives in the context (cpu_internal.h): one engine per context; no
 * allocation per call. Parallelism: inside each matmul, and over tokens for
 * routing and the final sum (cpu_pool.h).
 */
#include "cpu_internal.h"

#include <math.h>   /* defines: expf, INFINITY */
#include <string.h> /* defines: memcpy, memset */

#include "../../core/dtype.h" /* defines: mtp_dtype_size */
#include "../../core/error.h" /* defines: MTP_CHECK */
#include "cpu_pool.h"            /* defines: mtp_cpu_parallel_for, mtp_cpu_thread_scratch */

/* ------------------------------------------------------------------- route */

/* Per-thread routing buffers. */
struct route_work {
    float *s;              /* [E] unbiased scores */
    float *b;              /* [E] selection scores (biased, masked) */
    float *gscore;         /* [n_group] */
    float *selv;           /* [max(k, topk_group)] values of sel */
    int *sel;              /* [max(k, topk_group)] */
    unsigned char *taken;  /* [n_group] */
};

/* The K largest of V[0..n) in descending order into OUT (their values into
 * OUTV); ties go to the lower index: an element moves ahead of a kept one only
 * when strictly greater. One pass with an insertion into the k kept, instead
 * of k passes over all n (256 experts, top-8: 2048 comparisons per token). */
static void topk_desc(const float *v, int n, int k, int *out, float *outv)
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

static void scores_compute(const struct mtp_route_params *p, const float *logits, float *s)
{
    const int E = p->n_experts;
    if (p->scoring == MTP_SCORING_SIGMOID) {
        for (int e = 0; e < E; e++)
            s[e] = 1.0f / (1.0f + expf(-logits[e]));
        return;
    }
    float mx = -INFINITY, sum = 0.0f;
    for (int e = 0; e < E; e++)
        mx = logits[e] > mx ? logits[e] : mx;
    for (int e = 0; e < E; e++) {
        s[e] = expf(logits[e] - mx);
        sum += s[e];
    }
    for (int e = 0; e < E; e++)
        s[e] /= sum;
}

/* Group limit: score the groups, keep the topk_group best, mask the rest of B to -inf. */
static void groups_mask(const struct mtp_route_params *p, float *b, struct route_work *w)
{
    const int G = p->n_group, gsize = p->n_experts / p->n_group;
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
        if (p->method == MTP_TOPK_NOAUX_TC)
            w->gscore[g] = gsize >= 2 ? top1 + top2 : top1; /* sum of the top-2 */
        else
            w->gscore[g] = top1; /* group_limited_greedy: max */
    }
    topk_desc(w->gscore, G, p->topk_group, w->sel, w->selv);
    memset(w->taken, 0, (size_t)G);
    for (int j = 0; j < p->topk_group; j++)
        w->taken[w->sel[j]] = 1;
    for (int g = 0; g < G; g++)
        if (!w->taken[g])
            for (int i = 0; i < gsize; i++)
                b[g * gsize + i] = -INFINITY;
}

static void route_token(const struct mtp_route_params *p, const float *bias, const float *logits,
                        struct route_work *w, int32_t *idx, float *weights)
{
    const int E = p->n_experts, k = p->top_k;
    scores_compute(p, logits, w->s);
    for (int e = 0; e < E; e++)
        w->b[e] = (p->method == MTP_TOPK_NOAUX_TC && bias) ? w->s[e] + bias[e] : w->s[e];
    if (p->n_group > 1 && p->method != MTP_TOPK_GREEDY)
        groups_mask(p, w->b, w);
    topk_desc(w->b, E, k, w->sel, w->selv);
    float sum = 0.0f;
    for (int j = 0; j < k; j++) {
        idx[j] = w->sel[j];
        weights[j] = w->s[w->sel[j]];
        sum += weights[j];
    }
    for (int j = 0; j < k; j++) {
        if (p->norm_topk_prob)
            weights[j] /= sum;
        weights[j] *= p->routed_scaling_factor;
    }
}

static void route_check(const struct mtp_moe *moe, const struct mtp_route_params *p)
{
    MTP_CHECK(moe->router.rows == p->n_experts);
    MTP_CHECK(p->top_k >= 1 && p->top_k <= p->n_experts);
    MTP_CHECK(p->n_group >= 1 && p->n_experts % p->n_group == 0);
    MTP_CHECK(p->n_group == 1 || p->method == MTP_TOPK_GREEDY ||
              (p->topk_group >= 1 && p->topk_group <= p->n_group));
    MTP_CHECK(!moe->score_bias.data || (moe->score_bias.dtype == MTP_DTYPE_F32 &&
                                        moe->score_bias.cols * moe->score_bias.rows ==
                                            p->n_experts));
}

struct route_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_route_params *p;
    const float *bias;   /* [E] or NULL */
    const float *logits; /* [n, E] */
    int32_t *idx;        /* [n, k] */
    float *weights;      /* [n, k] */
};

/* The thread's routing buffers, carved from its scratch (no allocation per call). */
static struct route_work route_work_get(struct mtp_cpu_ctx *ctx, int thread,
                                        const struct mtp_route_params *p)
{
    size_t E = (size_t)p->n_experts, G = (size_t)p->n_group;
    size_t sel = (size_t)(p->top_k > p->n_group ? p->top_k : p->n_group);
    /* floats: s [E], b [E], gscore [G], selv [sel], sel [sel] (ints), taken [G] bytes */
    float *f = mtp_cpu_thread_scratch(ctx, thread, 2 * E + G + 2 * sel + (G + 3) / 4);
    struct route_work w = {.s = f, .b = f + E, .gscore = f + 2 * E, .selv = f + 2 * E + G};
    w.sel = (int *)(f + 2 * E + G + sel);
    w.taken = (unsigned char *)(f + 2 * E + G + 2 * sel);
    return w;
}

static void route_item(void *arg, int t, int thread)
{
    const struct route_job *j = arg;
    const int E = j->p->n_experts, k = j->p->top_k;
    struct route_work w = route_work_get(j->ctx, thread, j->p);
    route_token(j->p, j->bias, j->logits + (size_t)t * E, &w, j->idx + (size_t)t * k,
                j->weights + (size_t)t * k);
}

void mtp_cpu_route(void *vctx, const struct mtp_moe *moe, const struct mtp_route_params *p,
                   const float *x, int n, int32_t *idx, float *weights)
{
    struct mtp_cpu_ctx *ctx = vctx;
    if (n <= 0)
        return;
    route_check(moe, p);
    const int E = p->n_experts;
    float *logits = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_ROUTE, (size_t)n * (size_t)E);
    mtp_cpu_matmul(ctx, &moe->router, x, moe->router.cols, n, logits, E);
    struct route_job job = {ctx, p, moe->score_bias.data, logits, idx, weights};
    mtp_cpu_parallel_for(ctx, n, route_item, &job);
}

/* ------------------------------------------------------------------ SwiGLU */

/* y[m, d] = down( silu(gate x) * (up x) ); GATE, UP are [m, I] scratch. */
static void swiglu(struct mtp_cpu_ctx *ctx, const struct mtp_ffn *f, const float *x, int m,
                   float *gate, float *up, float *y)
{
    const int I = f->gate.rows, d = f->gate.cols;
    MTP_CHECK(f->up.rows == I && f->up.cols == d && f->down.cols == I);
    mtp_cpu_matmul(ctx, &f->gate, x, d, m, gate, I);
    mtp_cpu_matmul(ctx, &f->up, x, d, m, up, I);
    size_t len = (size_t)m * (size_t)I;
    if (ctx->prefill && m > MTP_CPU_INVARIANT_MAX_N) /* the GEMM's numerics: vector exp */
        mtp_cpu_silu_mul_prefill(gate, up, len);
    else
        for (size_t i = 0; i < len; i++)
            gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i]; /* silu(g) * u */
    mtp_cpu_matmul(ctx, &f->down, gate, I, m, y, f->down.rows);
}

void mtp_cpu_ffn(void *vctx, const struct mtp_ffn *ffn, const float *x, int n, float *y)
{
    struct mtp_cpu_ctx *ctx = vctx;
    if (n <= 0)
        return;
    size_t len = (size_t)n * (size_t)ffn->gate.rows;
    float *gate = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_FFN_GATE, len);
    float *up = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_FFN_UP, len);
    swiglu(ctx, ffn, x, n, gate, up, y);
}

/* ------------------------------------------------------------------ moe_ffn */

/* Per-expert lists of (token, slot) entries e = t*k + j, in token order:
 * list of expert x is entries[offsets[x] .. offsets[x+1]). */
struct expert_lists {
    int *offsets; /* [E + 1] */
    int *entries; /* [n * k] */
};

/* Builds the lists in the context's scratch (no allocation per call). */
static void expert_lists_build(struct mtp_cpu_ctx *ctx, const int32_t *idx, int n, int k, int E,
                               struct expert_lists *l)
{
    size_t need = 2 * (size_t)E + 1 + (size_t)n * (size_t)k; /* offsets, fill, entries */
    int *buf = (int *)mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_LISTS, need);
    l->offsets = buf;
    int *fill = buf + E + 1;
    l->entries = fill + E;
    memset(l->offsets, 0, ((size_t)E + 1) * sizeof(int));
    for (int i = 0; i < n * k; i++) {
        MTP_CHECK(idx[i] >= 0 && idx[i] < E);
        l->offsets[idx[i] + 1]++;
    }
    for (int e = 0; e < E; e++)
        l->offsets[e + 1] += l->offsets[e];
    memcpy(fill, l->offsets, (size_t)E * sizeof(int));
    for (int i = 0; i < n * k; i++)
        l->entries[fill[idx[i]]++] = i;
}

/* Run expert F over its M tokens; its output rows go to SLOTS[entry, :]. */
static void expert_run(struct mtp_cpu_ctx *ctx, const struct mtp_ffn *f, const float *x, int d,
                       int k, const int *entries, int m, float *slots)
{
    size_t width = (size_t)f->gate.rows;
    float *xe = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_X, (size_t)m * d);    /* [m, d] */
    float *gate = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_GATE, (size_t)m * width);
    float *up = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_UP, (size_t)m * width);
    float *ye = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_OUT, (size_t)m * d);  /* [m, d] */
    for (int i = 0; i < m; i++)
        memcpy(xe + (size_t)i * d, x + (size_t)(entries[i] / k) * d, (size_t)d * sizeof(float));
    swiglu(ctx, f, xe, m, gate, up, ye);
    for (int i = 0; i < m; i++)
        memcpy(slots + (size_t)entries[i] * d, ye + (size_t)i * d, (size_t)d * sizeof(float));
}

/*
 * Software prefetch of expert F's weights (all three matrices) into L2, issued
 * while the previous expert computes. Worth it only for small experts: a few
 * KB per matrix (mtp-v3: 24 x 192 FP8) is too short a stream for the hardware
 * prefetcher to ramp up on, so every expert otherwise waits on L3 latency;
 * large experts (mtp-mini: 192 x 192 BF16) stream well by themselves and got
 * slower with it (measured: forward n=8 0.87 -> 0.98 ms).
 */
enum { MOE_PREFETCH_MAX_BYTES = 64 << 10 };

static size_t weight_bytes(const struct mtp_weight *w)
{
    return (size_t)w->rows * (size_t)w->cols * mtp_dtype_size(w->dtype);
}

static void prefetch_weight(const struct mtp_weight *w)
{
    const char *p = w->data;
    for (size_t off = 0, n = weight_bytes(w); off < n; off += 64)
        __builtin_prefetch(p + off, 0, 2); /* read, into L2 */
}

static void expert_prefetch(const struct mtp_ffn *f)
{
    if (weight_bytes(&f->gate) + weight_bytes(&f->up) + weight_bytes(&f->down) >
        MOE_PREFETCH_MAX_BYTES)
        return;
    prefetch_weight(&f->gate);
    prefetch_weight(&f->up);
    prefetch_weight(&f->down);
}

/* The first expert after E that has tokens (N_EXPERTS if none). */
static int next_touched(const struct expert_lists *l, int e, int n_experts)
{
    for (e = e + 1; e < n_experts; e++)
        if (l->offsets[e + 1] > l->offsets[e])
            break;
    return e;
}

struct combine_job {
    const float *shared; /* [n, d] or NULL */
    const float *slots;  /* [n*k, d] */
    const float *weights;
    float *y;
    int d, k;
};

/* y[t] = shared[t] + w[t,0] o[t,0] + ... + w[t,k-1] o[t,k-1], left to right. */
static void combine_item(void *arg, int t, int thread)
{
    (void)thread;
    const struct combine_job *j = arg;
    const int d = j->d, k = j->k;
    float *yt = j->y + (size_t)t * d;
    for (int c = 0; c < d; c++)
        yt[c] = j->shared ? j->shared[(size_t)t * d + c] : 0.0f;
    for (int s = 0; s < k; s++) {
        float ws = j->weights[(size_t)t * k + s];
        const float *o = j->slots + ((size_t)t * k + s) * d;
        for (int c = 0; c < d; c++)
            yt[c] += ws * o[c];
    }
}

void mtp_cpu_moe_ffn(void *vctx, const struct mtp_moe *moe, int top_k, const float *x, int n,
                     const int32_t *idx, const float *weights, float *y)
{
    struct mtp_cpu_ctx *ctx = vctx;
    if (n <= 0)
        return;
    const int E = moe->router.rows, d = moe->router.cols, k = top_k;
    float *slots = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_SLOTS, (size_t)n * k * d);
    float *shared = NULL; /* [n, d] */

    struct expert_lists l;
    expert_lists_build(ctx, idx, n, k, E, &l);
    if (moe->has_shared) {
        size_t len = (size_t)n * (size_t)moe->shared.gate.rows;
        shared = mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_SHARED, (size_t)n * d);
        swiglu(ctx, &moe->shared, x, n, mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_GATE, len),
               mtp_cpu_scratch_get(ctx, MTP_CPU_SCRATCH_MOE_UP, len), shared);
    }
    /* Each touched expert once, over all of its (token, slot) rows. */
    int e = next_touched(&l, -1, E);
    if (e < E)
        expert_prefetch(&moe->experts[e]);
    while (e < E) {
        int next = next_touched(&l, e, E);
        if (next < E)
            expert_prefetch(&moe->experts[next]);
        expert_run(ctx, &moe->experts[e], x, d, k, l.entries + l.offsets[e],
                   l.offsets[e + 1] - l.offsets[e], slots);
        e = next;
    }

    struct combine_job job = {shared, slots, weights, y, d, k};
    if (n * d > 32768)
        mtp_cpu_parallel_for(ctx, n, combine_item, &job);
    else
        for (int t = 0; t < n; t++)
            combine_item(&job, t, 0);
}
