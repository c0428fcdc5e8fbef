/*
 * cuda_moe_plan.cu - the MoE expert plan built on the device (issue 22, item 5):
 * which (token, slot) entries go to which expert, as the GEMV segment tables
 * that mtp_cuda_moe_ffn (cuda_moe.cu) runs. Nothing crosses to the host, so a
 * MoE layer enqueues its kernels without waiting for the router.
 *
 * Two kernels, one warp per expert e (grid E x 32 threads):
 *   1. count: counts[e] = entries with idx == e. Block 0 also checks every id
 *      (0 <= id < E, no expert twice in one token's slots) and traps with a
 *      message naming the token, the slot and the id otherwise: the host plan
 *      this replaces did the same check with MTP_CHECK.
 *   2. plan: base = sum of counts[0..e), rank = experts before e with entries;
 *      the warp then walks idx in entry order and writes expert e's entries at
 *      base.. by ballot (stable: token order, as cpu_moe.c's counting sort), and
 *      lane 0 writes expert e's two segments at slot first + rank (first = 1
 *      when slot 0 is the shared expert, which block 0 writes). The block of
 *      the last expert writes the segment count.
 * Counts are integers, so the order of the sums does not matter; the outputs
 * of a (token, slot) row depend only on that token (the GEMV reduces every row
 * in a fixed order), and the combine kernel sums shared, slot 0..k-1 in that
 * order, so the results are bitwise those of the host plan and batch
 * invariant. A token names each expert at most once, so an expert has at
 * most n entries (the GEMV's token tile is chosen for n); the GEMV grid
 * covers first + min(E, n*k) segments, blocks past what the plan wrote exit
 * at once, and each block loops over its expert's token tiles.
 *
 * Expert tables: the per-expert device pointers a segment needs are uploaded
 * once per layer (the first call; the only wait) and found again by the
 * experts array and a comparison of every pointer, so a layer rebuilt at the
 * same address is never served stale pointers.
 */
#include "cuda_internal.cuh"

#include <stdio.h>  /* defines: printf (device printf under nvcc) */
#include <string.h> /* defines: memcmp */

enum { PLAN_LANES = 32 };

struct moe_plan_args {
    const int32_t *idx;  /* [n*k] */
    int nk, k, n_experts;
    const int *counts;   /* [E] */
    int *tok, *ent;      /* [n*k]: token and entry id of each sorted entry */
    const struct mtp_cuda_expert_ptrs *experts; /* [E] */
    const float *x;      /* [n, d] */
    float *act;          /* [n*k, I] */
    float *slots;        /* [n*k, d] */
    int d, inter;        /* hidden size, expert width I */
    int first;           /* 1: segment 0 is the shared expert */
    struct mtp_cuda_gemv_seg shared_up, shared_down;
    struct mtp_cuda_gemv_seg *up, *down; /* [first + min(E, n*k)] */
    int *n_segs;
};

__device__ __forceinline__ int warp_sum_int(int v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* Entry I's id must name an expert and differ from the token's earlier slots. */
__device__ void plan_check_entry(const int32_t *idx, int i, int k, int n_experts)
{
    int id = idx[i], t = i / k, j = i % k;
    if (id < 0 || id >= n_experts) {
        printf("moe_ffn: token %d slot %d names expert %d, outside 0..%d\n", t, j, id,
               n_experts - 1);
        __trap();
    }
    for (int jj = 0; jj < j; jj++)
        if (idx[t * k + jj] == id) {
            printf("moe_ffn: token %d names expert %d twice (slots %d and %d)\n", t, id, jj, j);
            __trap();
        }
}

__global__ void __launch_bounds__(PLAN_LANES)
    moe_count_kernel(const int32_t *idx, int nk, int k, int n_experts, int *counts)
{
    const int e = blockIdx.x, lane = threadIdx.x;
    int c = 0;
    for (int i = lane; i < nk; i += PLAN_LANES) {
        if (e == 0)
            plan_check_entry(idx, i, k, n_experts);
        c += idx[i] == e;
    }
    c = warp_sum_int(c);
    if (lane == 0)
        counts[e] = c;
}

/* Expert E's two segments: gate+up with SwiGLU over its tokens, then down
 * into the (token, slot) rows of SLOTS. */
__device__ __forceinline__ void plan_write_segments(const struct moe_plan_args &a, int e, int base, int m,
                                    int slot)
{
    const struct mtp_cuda_expert_ptrs &w = a.experts[e];
    struct mtp_cuda_gemv_seg u = {}, dn = {};
    u.w0 = w.gate;
    u.w1 = w.up;
    u.wtype = w.wtype_up;
    u.rows = a.inter, u.cols = a.d, u.m = m;
    u.x = a.x, u.x_stride = a.d, u.x_rows = a.tok + base;
    u.y = a.act + (size_t)base * a.inter, u.y_stride = a.inter;
    dn.w0 = w.down;
    dn.wtype = w.wtype_down;
    dn.rows = a.d, dn.cols = a.inter, dn.m = m;
    dn.x = u.y, dn.x_stride = a.inter;
    dn.y = a.slots, dn.y_stride = a.d, dn.y_rows = a.ent + base;
    a.up[slot] = u;
    a.down[slot] = dn;
}

__global__ void __launch_bounds__(PLAN_LANES) moe_plan_kernel(struct moe_plan_args a)
{
    const int e = blockIdx.x, lane = threadIdx.x;
    int base = 0, rank = 0;
    for (int j = lane; j < e; j += PLAN_LANES) {
        base += a.counts[j];
        rank += a.counts[j] > 0;
    }
    base = warp_sum_int(base);
    rank = warp_sum_int(rank);
    const int m = a.counts[e];
    if (lane == 0 && e == 0 && a.first) {
        a.up[0] = a.shared_up;
        a.down[0] = a.shared_down;
    }
    if (lane == 0 && e == a.n_experts - 1)
        *a.n_segs = a.first + rank + (m > 0);
    if (m == 0) /* warp-uniform */
        return;
    int pos = base;
    for (int i0 = 0; i0 < a.nk; i0 += PLAN_LANES) {
        int i = i0 + lane;
        bool hit = i < a.nk && a.idx[i] == e;
        unsigned ballot = __ballot_sync(0xffffffffu, hit);
        if (hit) {
            int r = pos + __popc(ballot & ((1u << lane) - 1u));
            a.tok[r] = i / a.k;
            a.ent[r] = i;
        }
        pos += __popc(ballot);
    }
    if (lane == 0)
        plan_write_segments(a, e, base, m, a.first + rank);
}

/* ------------------------------------------------------------ expert tables */

static void table_fill(const struct mtp_moe *moe, int E, struct mtp_cuda_expert_ptrs *out)
{
    for (int e = 0; e < E; e++) {
        const struct mtp_ffn *f = &moe->experts[e];
        out[e].gate = mtp_cuda_weight_ptr(&f->gate);
        out[e].up = mtp_cuda_weight_ptr(&f->up);
        out[e].down = mtp_cuda_weight_ptr(&f->down);
        out[e].wtype_up = mtp_cuda_weight_type(&f->gate);
        out[e].wtype_down = mtp_cuda_weight_type(&f->down);
    }
}

/* Every expert must have expert 0's shapes and one type for gate and up. */
static void table_check_shapes(const struct mtp_moe *moe, int E)
{
    const int d = moe->router.cols, I = moe->experts[0].gate.rows;
    for (int e = 0; e < E; e++) {
        const struct mtp_ffn *f = &moe->experts[e];
        MTP_CHECK(f->gate.rows == I && f->gate.cols == d && f->up.rows == I &&
                  f->up.cols == d && f->down.rows == d && f->down.cols == I);
        MTP_CHECK(mtp_cuda_weight_type(&f->gate) == mtp_cuda_weight_type(&f->up));
    }
}

static struct mtp_cuda_expert_table *table_slot(struct mtp_cuda_ctx *ctx,
                                                const struct mtp_moe *moe)
{
    for (int i = 0; i < ctx->n_expert_tables; i++)
        if (ctx->expert_tables[i].experts == moe->experts)
            return &ctx->expert_tables[i];
    if (ctx->n_expert_tables == ctx->cap_expert_tables) {
        ctx->cap_expert_tables = ctx->cap_expert_tables ? 2 * ctx->cap_expert_tables : 64;
        ctx->expert_tables = (struct mtp_cuda_expert_table *)mtp_xrealloc(
            ctx->expert_tables, (size_t)ctx->cap_expert_tables * sizeof *ctx->expert_tables);
    }
    struct mtp_cuda_expert_table *t = &ctx->expert_tables[ctx->n_expert_tables++];
    memset(t, 0, sizeof *t);
    t->experts = moe->experts;
    return t;
}

const struct mtp_cuda_expert_ptrs *mtp_cuda_expert_table(struct mtp_cuda_ctx *ctx,
                                                         const struct mtp_moe *moe)
{
    const int E = moe->router.rows;
    size_t bytes = (size_t)E * sizeof(struct mtp_cuda_expert_ptrs);
    struct mtp_cuda_expert_ptrs *now = (struct mtp_cuda_expert_ptrs *)mtp_cuda_host_scratch(
        ctx, MTP_CUDA_HOST_EXPERTS, bytes);
    table_fill(moe, E, now);
    struct mtp_cuda_expert_table *t = table_slot(ctx, moe);
    if (t->n_experts == E && !memcmp(t->host, now, bytes))
        return t->dev;
    table_check_shapes(moe, E);
    free(t->host);
    if (t->dev)
        CUDA_CHECK(cudaFreeAsync(t->dev, ctx->stream));
    t->host = (struct mtp_cuda_expert_ptrs *)mtp_xmalloc(bytes);
    memcpy(t->host, now, bytes);
    t->n_experts = E;
    CUDA_CHECK(cudaMallocAsync((void **)&t->dev, bytes, ctx->stream));
    CUDA_CHECK(cudaMemcpyAsync(t->dev, t->host, bytes, cudaMemcpyHostToDevice, ctx->stream));
    return t->dev;
}

void mtp_cuda_expert_tables_free(struct mtp_cuda_ctx *ctx)
{
    for (int i = 0; i < ctx->n_expert_tables; i++) {
        free(ctx->expert_tables[i].host);
        if (ctx->expert_tables[i].dev)
            cudaFreeAsync(ctx->expert_tables[i].dev, ctx->stream);
    }
    free(ctx->expert_tables);
    ctx->expert_tables = NULL;
    ctx->n_expert_tables = ctx->cap_expert_tables = 0;
}

/* -------------------------------------------------------------------- plan */

void mtp_cuda_moe_plan(struct mtp_cuda_ctx *ctx, const struct mtp_moe *moe,
                       const struct mtp_cuda_moe_plan_in *in, struct mtp_cuda_moe_plan *out)
{
    const int E = moe->router.rows, nk = in->n * in->k;
    const int first = moe->has_shared ? 1 : 0;
    out->max_segs = first + (nk < E ? nk : E);
    struct moe_plan_args a = {};
    a.experts = mtp_cuda_expert_table(ctx, moe);
    a.idx = in->idx;
    a.nk = nk;
    a.k = in->k;
    a.n_experts = E;
    int *counts = (int *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_COUNTS,
                                          (size_t)E * sizeof(int));
    a.counts = counts;
    int *lists = (int *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_LISTS,
                                         (size_t)2 * nk * sizeof(int));
    a.tok = lists;
    a.ent = lists + nk;
    a.x = in->x;
    a.act = in->act;
    a.slots = in->slots;
    a.d = moe->router.cols;
    a.inter = moe->experts[0].gate.rows;
    a.first = first;
    if (first) {
        a.shared_up = in->shared_up;
        a.shared_down = in->shared_down;
    }
    /* up [max_segs] | down [max_segs] | the count */
    size_t seg_bytes = (size_t)out->max_segs * sizeof(struct mtp_cuda_gemv_seg);
    char *segs = (char *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_MOE_SEGS,
                                          2 * seg_bytes + sizeof(int));
    a.up = (struct mtp_cuda_gemv_seg *)segs;
    a.down = (struct mtp_cuda_gemv_seg *)(segs + seg_bytes);
    a.n_segs = (int *)(segs + 2 * seg_bytes);
    MTP_CUDA_LAUNCH((unsigned)E, PLAN_LANES, 0, ctx->stream, moe_count_kernel)(in->idx, nk, in->k,
                                                                              E, counts);
    CUDA_LAUNCH_CHECK();
    MTP_CUDA_LAUNCH((unsigned)E, PLAN_LANES, 0, ctx->stream, moe_plan_kernel)(a);
    CUDA_LAUNCH_CHECK();
    out->up = a.up;
    out->down = a.down;
    out->n_segs = a.n_segs;
}
