/*
 * cpu_backend.c - the CPU backend object: context, vtable and memory ops.
 *
 * Memory is host memory: alloc is a 64-byte aligned, zero-filled allocation,
 * upload/download/copy are memcpy, synchronize does nothing (every op returns
 * when its work is done). Weights are read from the mapping as they are, so
 * prepare_weight only validates them.
 *
 * Threads: n_threads <= 0 takes the CPUs this process may run on
 * (sched_getaffinity: a taskset or cgroup limit counts, OMP_NUM_THREADS does
 * not). Each context owns its pool of workers (cpu_pool.h), started here and
 * joined in free, so two contexts with different counts coexist (tests
 * compare 1 and 2 threads bitwise). One context serves one engine
 * (cpu_internal.h).
 */
#include "cpu_internal.h"

#include <stdlib.h> /* defines: aligned_alloc, free */
#include <string.h> /* defines: memcpy, memset */

#include "../../core/error.h" /* defines: mtp_error_set, mtp_xcalloc */
#include "cpu_pool.h"           /* defines: mtp_cpu_pool_create, mtp_cpu_available_cpus */

enum { CPU_ALIGN = 64 };

void *mtp_cpu_aligned_alloc(size_t bytes)
{
    size_t size = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (size == 0)
        size = CPU_ALIGN;
    void *p = aligned_alloc(CPU_ALIGN, size);
    if (!p) {
        /* Environment failure: abort like mtp_xmalloc (error.h). */
        MTP_CHECK(!"out of memory in the CPU backend's alloc");
    }
    memset(p, 0, size);
    return p;
}

float *mtp_cpu_scratch_get(struct mtp_cpu_ctx *ctx, enum mtp_cpu_scratch_slot slot, size_t count)
{
    MTP_CHECK(slot >= 0 && slot < MTP_CPU_SCRATCH_COUNT);
    if (ctx->scratch_cap[slot] < count) {
        free(ctx->scratch[slot]);
        size_t cap = count + count / 2 + 16;
        ctx->scratch[slot] = mtp_cpu_aligned_alloc(cap * sizeof(float));
        ctx->scratch_cap[slot] = cap;
    }
    return ctx->scratch[slot];
}

static void cpu_free(void *vctx)
{
    struct mtp_cpu_ctx *ctx = vctx;
    if (!ctx)
        return;
    mtp_cpu_pool_free(ctx->pool);
    for (int i = 0; i < MTP_CPU_SCRATCH_COUNT; i++)
        free(ctx->scratch[i]);
    for (int t = 0; t < ctx->n_threads; t++)
        free(ctx->thread_scratch[t]);
    free(ctx->thread_scratch);
    free(ctx->thread_scratch_cap);
    free(ctx);
}

static void *cpu_alloc(void *vctx, size_t bytes)
{
    (void)vctx;
    return mtp_cpu_aligned_alloc(bytes);
}

static void cpu_release(void *vctx, void *p)
{
    (void)vctx;
    free(p);
}

static void cpu_memcpy(void *vctx, void *dst, const void *src, size_t bytes)
{
    (void)vctx;
    if (bytes)
        memcpy(dst, src, bytes);
}

static void cpu_synchronize(void *vctx) { (void)vctx; }

/* The CPU reads weights in place from the mapping: validation is all there is. */
static int cpu_prepare_weight(void *vctx, struct mtp_weight *w)
{
    (void)vctx;
    return mtp_weight_validate("cpu", w);
}

/* Prompt prefill: matmul takes the GEMM path above MTP_CPU_INVARIANT_MAX_N tokens. */
static void cpu_set_prefill(void *vctx, int on)
{
    struct mtp_cpu_ctx *ctx = vctx;
    ctx->prefill = on;
}

static const struct mtp_backend_i cpu_iface = {
    .name = "cpu",
    .free = cpu_free,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .synchronize = cpu_synchronize,
    .prepare_weight = cpu_prepare_weight,
    .embed = mtp_cpu_embed,
    .matmul = mtp_cpu_matmul,
    .rmsnorm = mtp_cpu_rmsnorm,
    .rope = mtp_cpu_rope,
    .mla_attention = mtp_cpu_mla_attention,
    .mla_tree_attention = mtp_cpu_mla_tree_attention,
    .route = mtp_cpu_route,
    .moe_ffn = mtp_cpu_moe_ffn,
    .ffn = mtp_cpu_ffn,
    .add = mtp_cpu_add,
    .set_prefill = cpu_set_prefill,
};

int mtp_backend_cpu_threads(int n_threads)
{
    if (n_threads > 0)
        return n_threads;
    int n = mtp_cpu_available_cpus();
    return n < MTP_MAX_THREADS ? n : MTP_MAX_THREADS;
}

int mtp_backend_cpu_create(int n_threads, struct mtp_backend **out)
{
    *out = NULL;
    if (n_threads > MTP_MAX_THREADS)
        return mtp_error_set("backend cpu: threads %d; expected at most %d (0 = the CPUs available)",
                             n_threads, MTP_MAX_THREADS);
    struct mtp_cpu_ctx *ctx = mtp_xcalloc(1, sizeof *ctx);
    ctx->n_threads = mtp_backend_cpu_threads(n_threads);
    ctx->thread_scratch = mtp_xcalloc((size_t)ctx->n_threads, sizeof *ctx->thread_scratch);
    ctx->thread_scratch_cap = mtp_xcalloc((size_t)ctx->n_threads, sizeof *ctx->thread_scratch_cap);
    ctx->pool = mtp_cpu_pool_create(ctx->n_threads, -1);
    struct mtp_backend *be = mtp_xcalloc(1, sizeof *be);
    be->iface = &cpu_iface;
    be->ctx = ctx;
    *out = be;
    return MTP_OK;
}
