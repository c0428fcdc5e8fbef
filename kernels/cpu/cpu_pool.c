/*
 * cpu_pool.c - mtp_cpu_parallel_for and per-thread scratch (cpu_pool.h).
 *
 * This first version runs the items on an OpenMP team (schedule(static)); the
 * context's thread scratch is one growing buffer per thread.
 */
#include "cpu_pool.h"

#include <omp.h>    /* defines: omp_get_thread_num */
#include <stdlib.h> /* defines: free */

#include "../../engine/error.h" /* defines: MTP_CHECK */
#include "cpu_internal.h"

void mtp_cpu_parallel_for(struct mtp_cpu_ctx *ctx, int n_items, mtp_cpu_task_fn fn, void *arg)
{
    if (n_items <= 0)
        return;
    if (n_items == 1 || ctx->n_threads == 1) {
        for (int i = 0; i < n_items; i++)
            fn(arg, i, 0);
        return;
    }
    int team = ctx->n_threads < n_items ? ctx->n_threads : n_items;
#pragma omp parallel for schedule(static) num_threads(team)
    for (int i = 0; i < n_items; i++)
        fn(arg, i, omp_get_thread_num());
}

float *mtp_cpu_thread_scratch(struct mtp_cpu_ctx *ctx, int thread, size_t count)
{
    MTP_CHECK(thread >= 0 && thread < ctx->n_threads);
    if (ctx->thread_scratch_cap[thread] < count) {
        free(ctx->thread_scratch[thread]);
        size_t cap = count + count / 2 + 16;
        ctx->thread_scratch[thread] = mtp_cpu_aligned_alloc(cap * sizeof(float));
        ctx->thread_scratch_cap[thread] = cap;
    }
    return ctx->thread_scratch[thread];
}
