/*
 * cpu_pool.c - the CPU backend's thread pool: mtp_cpu_parallel_for and
 * per-thread scratch (cpu_pool.h).
 *
 * Why not OpenMP: its workers spin at every parallel region's barrier (dozens
 * per token). On a machine where another process holds a core, the scheduler
 * takes the spinning worker's core away, and the caller then waits at the
 * barrier for a statically scheduled share of the work held by a thread that
 * is not running: decode at 2 threads fell to 40 tokens/s against 688 at 1.
 * This pool never spins unboundedly and never makes the caller wait for work
 * that nobody has started.
 *
 * One run (a job) on the pool:
 *   1. the caller writes fn, arg, n_items, resets the done count, then
 *      publishes the job by storing claim = (job number << 32) | n_items and
 *      the job number into the wake word; it wakes sleeping workers (one
 *      futex syscall, only when some worker is asleep);
 *   2. the caller and every worker that is awake claim items one at a time by
 *      a compare-and-swap that decrements the low half of claim only while the
 *      high half is still this job's number. A worker that a stale wake-up
 *      brought to an old job fails that check and claims nothing; a worker
 *      whose core is busy elsewhere claims nothing either, and the caller
 *      takes its share;
 *   3. when nothing is left to claim, the caller waits for done == n_items,
 *      that is only for items already being computed.
 * fn, arg and n_items are read only after a successful claim: the caller
 * cannot start the next job (and rewrite them) before that item is counted
 * done, so those plain fields are never raced.
 *
 * Waiting: poll for spin_ns (a few microseconds covers the gap between two
 * back-to-back ops, e.g. the gate and up projections), then sleep on a
 * futex. A futex rather than a condition variable because the word the
 * waiter polls is the word it sleeps on: publishing a job is one atomic store
 * plus a syscall only when someone sleeps, with no mutex on the caller's path,
 * and the "check, then sleep" race is closed by the kernel comparing the word
 * (FUTEX_WAIT returns at once if it has changed). Off Linux, sleeping falls
 * back to sched_yield polling (correct, not tuned).
 *
 * Stragglers: a worker descheduled in the middle of an item still makes the
 * caller wait; when such waits add up to a fifth of the parallel time, the
 * pool runs the next jobs in the caller alone and probes again later
 * (account_job).
 *
 * Each item is run from start to end by one thread, so results do not depend
 * on scheduling (batch and thread invariance, cpu_internal.h).
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cpu_pool.h"

#include <limits.h>    /* defines: INT_MAX */
#include <pthread.h>   /* defines: pthread_create, pthread_join */
#include <sched.h>     /* defines: sched_getaffinity, CPU_COUNT, sched_yield */
#include <stdatomic.h> /* defines: atomic_*, _Atomic */
#include <stdint.h>    /* defines: uint32_t, uint64_t */
#include <stdlib.h>    /* defines: free, getenv, strtol */
#include <time.h>      /* defines: clock_gettime */
#include <unistd.h>    /* defines: syscall, sysconf */

#ifdef __linux__
#include <linux/futex.h> /* defines: FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE */
#include <sys/syscall.h> /* defines: SYS_futex */
#endif

#include "../../core/error.h" /* defines: MTP_CHECK, mtp_xcalloc */
#include "cpu_internal.h"

struct mtp_cpu_pool {
    int n_threads;      /* caller + workers */
    long spin_ns;       /* poll this long before sleeping, while no stall is seen */
    _Atomic long spin_now; /* spin_ns, or 0 while backing off from stragglers */
    int backoff_on;     /* straggler back-off enabled (mtp_cpu_pool_set_backoff) */
    pthread_t *workers; /* [n_threads - 1] */
    struct pool_worker *args;

    /* The current job: written by the caller before it publishes claim,
     * read by a worker only after it has claimed one of the job's items. */
    mtp_cpu_task_fn fn;
    void *arg;
    int n_items;

    _Atomic uint64_t claim;    /* (job << 32) | items left to claim */
    _Atomic uint32_t job;      /* futex word: the latest job number */
    _Atomic uint32_t done;     /* futex word: items of the current job finished */
    _Atomic int sleepers;      /* workers asleep (or about to sleep) on job */
    _Atomic int caller_asleep; /* the caller sleeps (or is about to) on done */
    _Atomic int stop;
    uint32_t last_job;         /* the caller's job counter */

    /* Straggler back-off, the caller's alone (see mtp_cpu_pool_run). */
    long long win_job_ns, win_wait_ns; /* this window: job time, waiting for claimed items */
    int win_jobs;
    int serial_left;   /* jobs still to run in the caller alone */
    int backoff;       /* the next serial stretch, in jobs */
};

enum {
    POOL_WINDOW = 64,          /* parallel jobs per straggler check */
    POOL_WAIT_SHARE = 5,       /* back off when waiting > 1/5 of the window's time */
    POOL_STALL_NS = 200000,    /* or when one job waited this long, over a quarter of it, */
    POOL_STALL_ITEMS = 4,      /* and over this many of the caller's items (mtp_cpu_pool_stalled) */
    POOL_BACKOFF_MIN = 256,    /* jobs: a few tokens of a small model */
    POOL_BACKOFF_MAX = 16384,  /* jobs: the probe never stops entirely */
};

struct pool_worker {
    struct mtp_cpu_pool *pool;
    int thread; /* 1..n_threads-1 */
};

/* Which pool's item this thread is running, and as which thread: a nested
 * parallel_for runs inline with that index instead of publishing a job. */
static _Thread_local struct mtp_cpu_pool *tls_pool;
static _Thread_local int tls_thread;

/* ---- waiting -------------------------------------------------------------- */

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Sleep while *WORD == VAL (spurious returns allowed: callers re-check). */
static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
#ifdef __linux__
    /* EINTR and EAGAIN (the word already changed) both mean: re-check. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    (void)word;
    (void)val;
    sched_yield();
#endif
}

static void futex_wake(_Atomic uint32_t *word, int count)
{
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
#else
    (void)word;
    (void)count;
#endif
}

/* Poll until (*WORD == VAL) == WANT_EQUAL or SPIN_NS have passed; true if
 * it happened. The clock is read every 64 polls (a vDSO call is tens of
 * nanoseconds, a pause about the same or more), so the bound holds to within
 * a microsecond. */
static int spin_wait(_Atomic uint32_t *word, uint32_t val, int want_equal, long spin_ns)
{
    long long end = spin_ns > 0 ? now_ns() + spin_ns : 0;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if ((atomic_load_explicit(word, memory_order_acquire) == val) == want_equal)
                return 1;
            if (spin_ns <= 0)
                return 0;
            cpu_relax();
        }
        if (now_ns() >= end)
            return 0;
    }
}

/* ---- the work loop -------------------------------------------------------- */

/* Claim one item of job JOB: its index, or -1 when none is left or the pool
 * has moved on to another job. */
static int claim_item(struct mtp_cpu_pool *p, uint32_t job)
{
    uint64_t w = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(w >> 32) != job || (uint32_t)w == 0)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&p->claim, &w, w - 1, memory_order_acquire,
                                                  memory_order_acquire))
            /* Items go out in ascending order: left = n_items - index. */
            return p->n_items - (int)(uint32_t)w;
    }
}

/* Run items of job JOB as THREAD until none is left. Returns how many. */
static int work_on(struct mtp_cpu_pool *p, uint32_t job, int thread)
{
    int ran = 0, i;
    while ((i = claim_item(p, job)) >= 0) {
        int n = p->n_items;
        p->fn(p->arg, i, thread);
        ran++;
        /* seq_cst pairs with the caller's caller_asleep store and done load:
         * either the caller sees the final count or this thread sees it asleep. */
        uint32_t d = atomic_fetch_add(&p->done, 1) + 1;
        if (d == (uint32_t)n && atomic_load(&p->caller_asleep))
            futex_wake(&p->done, 1);
    }
    return ran;
}

static void *worker_main(void *varg)
{
    struct pool_worker *wk = varg;
    struct mtp_cpu_pool *p = wk->pool;
    tls_pool = p;
    tls_thread = wk->thread;
    uint32_t seen = 0; /* job numbers start at 1 */
    for (;;) {
        uint32_t job = atomic_load_explicit(&p->job, memory_order_acquire);
        long spin = atomic_load_explicit(&p->spin_now, memory_order_relaxed);
        if (job == seen && !spin_wait(&p->job, seen, 0, spin)) {
            /* Announce the sleep, then re-check: the caller stores job before
             * it reads sleepers (both seq_cst), so one of us sees the other. */
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->job) == seen && !atomic_load(&p->stop))
                futex_wait(&p->job, seen);
            atomic_fetch_sub(&p->sleepers, 1);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load_explicit(&p->job, memory_order_acquire);
        work_on(p, seen, wk->thread);
    }
}

/* ---- the pool ------------------------------------------------------------- */

static long default_spin_ns(void)
{
    const char *s = getenv("MTP_CPU_SPIN_US");
    if (s && *s) {
        char *end;
        long us = strtol(s, &end, 10);
        if (*end == '\0' && us >= 0 && us <= 1000000)
            return us * 1000;
    }
    return MTP_CPU_POOL_SPIN_NS;
}

struct mtp_cpu_pool *mtp_cpu_pool_create(int n_threads, long spin_ns)
{
    MTP_CHECK(n_threads >= 1);
    struct mtp_cpu_pool *p = mtp_xcalloc(1, sizeof *p);
    p->n_threads = n_threads;
    p->spin_ns = spin_ns >= 0 ? spin_ns : default_spin_ns();
    p->backoff = POOL_BACKOFF_MIN;
    p->backoff_on = 1;
    atomic_init(&p->spin_now, p->spin_ns);
    atomic_init(&p->claim, 0);
    atomic_init(&p->job, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_asleep, 0);
    atomic_init(&p->stop, 0);
    int n_workers = n_threads - 1;
    if (n_workers > 0) {
        p->workers = mtp_xcalloc((size_t)n_workers, sizeof *p->workers);
        p->args = mtp_xcalloc((size_t)n_workers, sizeof *p->args);
    }
    for (int w = 0; w < n_workers; w++) {
        p->args[w] = (struct pool_worker){.pool = p, .thread = w + 1};
        /* Environment failure (thread limit): abort like an allocation. */
        MTP_CHECK(pthread_create(&p->workers[w], NULL, worker_main, &p->args[w]) == 0);
    }
    return p;
}

void mtp_cpu_pool_free(struct mtp_cpu_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->job, 1); /* every waiter's word changes */
    futex_wake(&p->job, INT_MAX);
    for (int w = 0; w < p->n_threads - 1; w++)
        MTP_CHECK(pthread_join(p->workers[w], NULL) == 0);
    free(p->workers);
    free(p->args);
    free(p);
}

int mtp_cpu_pool_threads(const struct mtp_cpu_pool *p) { return p->n_threads; }

void mtp_cpu_pool_set_backoff(struct mtp_cpu_pool *p, int on)
{
    p->backoff_on = on;
    p->serial_left = 0;
    atomic_store_explicit(&p->spin_now, p->spin_ns, memory_order_relaxed);
}

/* Wait until every item of the current job (N of them) is done. */
static void wait_done(struct mtp_cpu_pool *p, uint32_t n)
{
    if (spin_wait(&p->done, n, 1, atomic_load_explicit(&p->spin_now, memory_order_relaxed)))
        return;
    for (;;) {
        atomic_store(&p->caller_asleep, 1);
        uint32_t d = atomic_load(&p->done);
        if (d == n)
            break;
        futex_wait(&p->done, d);
    }
    atomic_store(&p->caller_asleep, 0);
}

/* Account one parallel job: JOB_NS from publishing to the end, WAIT_NS of it
 * spent waiting for items other threads had claimed. A worker that is
 * descheduled in the middle of an item (its core taken by another process)
 * makes the caller wait for the scheduler to give it back, up to a time
 * slice of milliseconds; when that waiting is more than a fifth of the
 * window's time, or one job was a stall (mtp_cpu_pool_stalled), the next
 * BACKOFF jobs run in the caller alone (the workers
 * sleep), then a window in parallel probes again, the stretch doubling each
 * time the probe fails; while backing off, idle workers do not spin either
 * (a preempted worker shares its CPU, perhaps with the caller, whose time
 * any spinning would take), and a clean window restores both. Results are
 * the same either way: an item is still computed by one thread. */
int mtp_cpu_pool_stalled(long long job_ns, long long wait_ns, long long item_ns)
{
    return wait_ns > POOL_STALL_NS && 4 * wait_ns > job_ns && wait_ns > POOL_STALL_ITEMS * item_ns;
}

static void account_job(struct mtp_cpu_pool *p, long long job_ns, long long wait_ns,
                        long long item_ns)
{
    p->win_job_ns += job_ns;
    p->win_wait_ns += wait_ns;
    /* One stall is already a preempted worker: do not wait for the window. */
    int stalled = mtp_cpu_pool_stalled(job_ns, wait_ns, item_ns);
    if (++p->win_jobs < POOL_WINDOW && !stalled)
        return;
    if (stalled || p->win_wait_ns * POOL_WAIT_SHARE > p->win_job_ns) {
        p->serial_left = p->backoff;
        p->backoff = p->backoff < POOL_BACKOFF_MAX / 2 ? 2 * p->backoff : POOL_BACKOFF_MAX;
        /* Workers that get preempted share their CPU with someone, maybe
         * with the caller: from now on they sleep at once. */
        atomic_store_explicit(&p->spin_now, 0, memory_order_relaxed);
    } else {
        p->backoff = POOL_BACKOFF_MIN;
        atomic_store_explicit(&p->spin_now, p->spin_ns, memory_order_relaxed);
    }
    p->win_jobs = 0;
    p->win_job_ns = p->win_wait_ns = 0;
}

void mtp_cpu_pool_run(struct mtp_cpu_pool *p, int n_items, mtp_cpu_task_fn fn, void *arg)
{
    if (n_items <= 0)
        return;
    int nested = tls_pool == p;
    if (nested || p->n_threads == 1 || n_items == 1 || (p->backoff_on && p->serial_left > 0)) {
        /* Nested (inside an item: that item's thread), nothing to share, or
         * backing off from stragglers. */
        if (!nested && p->serial_left > 0)
            p->serial_left--;
        int thread = nested ? tls_thread : 0;
        for (int i = 0; i < n_items; i++)
            fn(arg, i, thread);
        return;
    }
    struct mtp_cpu_pool *outer_pool = tls_pool;
    int outer_thread = tls_thread;
    tls_pool = p;
    tls_thread = 0;

    p->fn = fn;
    p->arg = arg;
    p->n_items = n_items;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    long long t0 = now_ns();
    uint32_t job = ++p->last_job;
    if (job == 0) /* 0 is the workers' "nothing seen yet" */
        job = ++p->last_job;
    /* Release: fn, arg, n_items and done = 0 are visible to whoever claims. */
    atomic_store_explicit(&p->claim, (uint64_t)job << 32 | (uint32_t)n_items,
                          memory_order_release);
    atomic_store(&p->job, job);
    if (atomic_load(&p->sleepers) > 0)
        futex_wake(&p->job, p->n_threads - 1);

    int ran = work_on(p, job, 0);
    long long t1 = now_ns();
    wait_done(p, (uint32_t)n_items);
    long long t2 = now_ns();
    if (p->backoff_on) /* the caller's mean item: what one claimed item should take */
        account_job(p, t2 - t0, t2 - t1, ran > 0 ? (t1 - t0) / ran : 0);

    tls_pool = outer_pool;
    tls_thread = outer_thread;
}

/* ---- the context's API ---------------------------------------------------- */

void mtp_cpu_parallel_for(struct mtp_cpu_ctx *ctx, int n_items, mtp_cpu_task_fn fn, void *arg)
{
    mtp_cpu_pool_run(ctx->pool, n_items, fn, arg);
}

void mtp_cpu_parallel_for_work(struct mtp_cpu_ctx *ctx, double work, int n_items,
                               mtp_cpu_task_fn fn, void *arg)
{
    if (work >= MTP_CPU_PARALLEL_MIN_WORK) {
        mtp_cpu_pool_run(ctx->pool, n_items, fn, arg);
        return;
    }
    /* Inside an item of this pool, keep that item's thread index. */
    int thread = tls_pool == ctx->pool ? tls_thread : 0;
    for (int i = 0; i < n_items; i++)
        fn(arg, i, thread);
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

int mtp_cpu_available_cpus(void)
{
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n >= 1)
            return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)n : 1;
}
