/*
 * cpu_pool.h - how the CPU backend's ops run in parallel.
 *
 * Every op splits its work into independent items (blocks of output rows,
 * (head, token) pairs, tokens) and hands them to mtp_cpu_parallel_for. An item
 * is computed by one thread from start to end, so results never depend on
 * which thread ran it or on the thread count (batch invariance,
 * cpu_internal.h). The calling thread takes part in the work.
 *
 * The threads are the context's own pool (cpu_pool.c), made for machines
 * shared with other processes: items are claimed one at a time from a shared
 * counter, so a worker whose core is taken simply claims nothing and the
 * caller does the work; the caller waits only for items a worker has already
 * claimed; idle workers spin a few microseconds, then sleep in the kernel;
 * when a worker is seen preempted in the middle of an item, the pool runs
 * the next jobs in the caller alone for a while.
 *
 * Nothing outside kernels/cpu/ (and the pool's tests) includes this.
 */
#ifndef MTP_CPU_POOL_H
#define MTP_CPU_POOL_H

#include <stddef.h> /* defines: size_t */

struct mtp_cpu_ctx;
struct mtp_cpu_pool;

/* One work item: ITEM in [0, n_items), run by thread THREAD in [0, n_threads). */
typedef void (*mtp_cpu_task_fn)(void *arg, int item, int thread);

/* Run FN(ARG, i, thread) for every i < N_ITEMS and return when all are done.
 * With one thread, or one item, runs them in the caller, in order. Called from
 * inside an item of the same context (nesting), runs the inner items in that
 * item's thread, with its thread index. */
void mtp_cpu_parallel_for(struct mtp_cpu_ctx *ctx, int n_items, mtp_cpu_task_fn fn, void *arg);

/* Below this much work for a whole call (an op's estimate of its
 * multiply-adds or bytes touched), waking a worker costs more than it saves:
 * one parallel_for is about a microsecond for the caller when the workers are
 * spinning, and tens of microseconds before a sleeping worker joins. */
enum { MTP_CPU_PARALLEL_MIN_WORK = 1 << 15 };

/* mtp_cpu_parallel_for when WORK >= MTP_CPU_PARALLEL_MIN_WORK, else every item
 * in the caller, in order (same results either way). */
void mtp_cpu_parallel_for_work(struct mtp_cpu_ctx *ctx, double work, int n_items,
                               mtp_cpu_task_fn fn, void *arg);

/* A per-thread buffer of at least COUNT floats (64-byte aligned, contents
 * undefined), owned by the context: for row buffers inside work items, so that
 * no op allocates per call. Valid until the next call with the same THREAD.
 * A nested parallel_for runs in the outer item's thread, so an item that calls
 * another op must not keep its thread scratch across that call. */
float *mtp_cpu_thread_scratch(struct mtp_cpu_ctx *ctx, int thread, size_t count);

/* The CPUs this process may run on (sched_getaffinity), at least 1: the
 * default thread count (n_threads <= 0). More threads than that only ever
 * wait for each other. */
int mtp_cpu_available_cpus(void);

/* --- the pool itself (one per context; tests use it directly) --- */

/* Start N_THREADS - 1 workers (the caller is thread 0). SPIN_NS: how long an
 * idle worker, or the caller waiting for claimed items, polls before it
 * sleeps; < 0 takes the default (MTP_CPU_SPIN_US in the environment, in
 * microseconds, else MTP_CPU_POOL_SPIN_NS). Aborts if a thread cannot start. */
enum { MTP_CPU_POOL_SPIN_NS = 5000 };
struct mtp_cpu_pool *mtp_cpu_pool_create(int n_threads, long spin_ns);

/* Stop and join every worker, then free. NULL is allowed. Must not be called
 * while a run is in progress. */
void mtp_cpu_pool_free(struct mtp_cpu_pool *pool);

int mtp_cpu_pool_threads(const struct mtp_cpu_pool *pool);

/* Straggler back-off (cpu_pool.c, on by default): after a worker was seen
 * preempted in the middle of an item, run jobs in the caller for a while and
 * stop spinning. Off, every run is shared out (bench's pool figure, which
 * measures the mechanism itself). */
void mtp_cpu_pool_set_backoff(struct mtp_cpu_pool *pool, int on);

/* Whether one job was a stall, a worker descheduled in the middle of an item:
 * the caller waited WAIT_NS of the job's JOB_NS for items other threads had
 * claimed, over 200 us, over a quarter of the job, and over 4 times ITEM_NS,
 * the caller's own mean item in that job. A preempted worker holds its item
 * for a time slice (milliseconds); a worker's page fault on a weight touched
 * for the first time (tens of microseconds) or the last item of a job whose
 * items are long (24 rows of a real-dimension FP8 weight: 25-40 us) is not
 * one. With 20 us and no item rule, such waits sent a real-dimension decode
 * on two idle CPUs into the caller alone for most of its ops (RESULTS.md
 * "At real dimensions"). */
int mtp_cpu_pool_stalled(long long job_ns, long long wait_ns, long long item_ns);

/* The parallel for on POOL (mtp_cpu_parallel_for). Runs on one pool must not
 * overlap, except nested ones from inside an item. */
void mtp_cpu_pool_run(struct mtp_cpu_pool *pool, int n_items, mtp_cpu_task_fn fn, void *arg);

#endif
