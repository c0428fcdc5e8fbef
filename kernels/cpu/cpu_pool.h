/*
 * cpu_pool.h - how the CPU backend's ops run in parallel.
 *
 * Every op splits its work into independent items (blocks of output rows,
 * (head, token) pairs, tokens) and hands them to mtp_cpu_parallel_for. An item
 * is computed by one thread from start to end, so results never depend on
 * which thread ran it or on the thread count (batch invariance,
 * cpu_internal.h). The calling thread takes part in the work.
 *
 * Nothing outside kernels/cpu/ includes this.
 */
#ifndef MTP_CPU_POOL_H
#define MTP_CPU_POOL_H

#include <stddef.h> /* defines: size_t */

struct mtp_cpu_ctx;

/* One work item: ITEM in [0, n_items), run by thread THREAD in [0, n_threads). */
typedef void (*mtp_cpu_task_fn)(void *arg, int item, int thread);

/* Run FN(ARG, i, thread) for every i < N_ITEMS and return when all are done.
 * With one thread, or one item, runs them in the caller, in order. */
void mtp_cpu_parallel_for(struct mtp_cpu_ctx *ctx, int n_items, mtp_cpu_task_fn fn, void *arg);

/* A per-thread buffer of at least COUNT floats (64-byte aligned, contents
 * undefined), owned by the context: for row buffers inside work items, so that
 * no op allocates per call. Valid until the next call with the same THREAD. */
float *mtp_cpu_thread_scratch(struct mtp_cpu_ctx *ctx, int thread, size_t count);

#endif
