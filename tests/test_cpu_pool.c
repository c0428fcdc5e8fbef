/*
 * test_cpu_pool.c - the CPU backend's thread pool (kernels/cpu/cpu_pool.h).
 *
 * Checked: every item runs exactly once, with a thread index in range, for
 * many item and thread counts and spin settings (0 = workers sleep at once, so
 * the futex paths run on every job); many back-to-back jobs on one pool (a
 * worker that wakes late must never run an item of the wrong job); nested
 * calls from inside an item run inline in that item's thread; a worker that
 * sleeps inside its item does not break completion (the run returns only once
 * that item is done); freeing a pool joins its threads (the process's thread
 * count goes back); small work runs in the caller; the default thread count
 * follows the affinity mask. No timing is asserted.
 *
 * Build and run: cmake --build build --target test_cpu_pool && ./build/test_cpu_pool
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_SET */
#include <sched.h>     /* defines: sched_getaffinity, sched_setaffinity */
#include <setjmp.h>    /* cmocka needs it */
#include <stdarg.h>    /* cmocka needs it */
#include <stdatomic.h> /* defines: atomic_int */
#include <stddef.h>    /* cmocka needs it */
#include <stdio.h>     /* defines: fopen, fgets */
#include <stdlib.h>    /* defines: calloc, free */
#include <string.h>    /* defines: strncmp */
#include <time.h>      /* defines: nanosleep */

#include <cmocka.h>

#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_pool.h"

struct count_job {
    atomic_int *hits;      /* [n_items] runs of each item */
    atomic_int bad_thread; /* runs with a thread index out of range */
    int n_threads;
    int sleepy_item;       /* this item sleeps SLEEP_MS first (-1: none) */
    struct mtp_cpu_pool *pool; /* for nesting (NULL: none) */
    int inner_items;
    atomic_int *inner_hits;    /* [n_items * inner_items] */
    atomic_int inner_wrong_thread;
};

enum { SLEEP_MS = 30 };

struct inner_arg {
    struct count_job *j;
    int outer, thread;
};

static void inner_item(void *varg, int item, int thread)
{
    struct inner_arg *a = varg;
    atomic_fetch_add(&a->j->inner_hits[a->outer * a->j->inner_items + item], 1);
    if (thread != a->thread)
        atomic_fetch_add(&a->j->inner_wrong_thread, 1);
}

static void count_item(void *varg, int item, int thread)
{
    struct count_job *j = varg;
    if (thread < 0 || thread >= j->n_threads)
        atomic_fetch_add(&j->bad_thread, 1);
    if (item == j->sleepy_item) {
        struct timespec ts = {0, SLEEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (j->pool) {
        struct inner_arg a = {j, item, thread};
        mtp_cpu_pool_run(j->pool, j->inner_items, inner_item, &a);
    }
    atomic_fetch_add(&j->hits[item], 1);
}

/* Run N items on POOL and assert each ran exactly once. */
static void run_and_check(struct mtp_cpu_pool *pool, int n, int sleepy)
{
    struct count_job j = {.n_threads = mtp_cpu_pool_threads(pool), .sleepy_item = sleepy};
    j.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *j.hits);
    atomic_init(&j.bad_thread, 0);
    mtp_cpu_pool_run(pool, n, count_item, &j);
    for (int i = 0; i < n; i++)
        assert_int_equal(atomic_load(&j.hits[i]), 1);
    assert_int_equal(atomic_load(&j.bad_thread), 0);
    free(j.hits);
}

static void test_every_item_once(void **state)
{
    (void)state;
    static const int threads[] = {1, 2, 3, 4, 8};
    static const int items[] = {0, 1, 2, 3, 7, 8, 9, 64, 1000};
    static const long spins[] = {0, 2000, 1000000};
    for (size_t s = 0; s < sizeof spins / sizeof spins[0]; s++)
        for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
            struct mtp_cpu_pool *pool = mtp_cpu_pool_create(threads[t], spins[s]);
            assert_int_equal(mtp_cpu_pool_threads(pool), threads[t]);
            for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
                run_and_check(pool, items[i], -1);
            mtp_cpu_pool_free(pool);
        }
}

/* Thousands of short jobs in a row: a worker still finishing its claim of
 * job g, or waking late, must not take (or run with the wrong function) an
 * item of job g + 1. Alternating item counts make a stale claim visible. */
static void test_back_to_back(void **state)
{
    (void)state;
    static const long spins[] = {0, 20000};
    for (size_t s = 0; s < sizeof spins / sizeof spins[0]; s++) {
        struct mtp_cpu_pool *pool = mtp_cpu_pool_create(4, spins[s]);
        for (int r = 0; r < 3000; r++)
            run_and_check(pool, 1 + r % 5, -1);
        mtp_cpu_pool_free(pool);
    }
}

static void test_nested(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads++) {
        struct mtp_cpu_pool *pool = mtp_cpu_pool_create(threads, 1000);
        enum { OUTER = 9, INNER = 5 };
        struct count_job j = {.n_threads = threads, .sleepy_item = -1, .pool = pool,
                              .inner_items = INNER};
        j.hits = calloc(OUTER, sizeof *j.hits);
        j.inner_hits = calloc(OUTER * INNER, sizeof *j.inner_hits);
        atomic_init(&j.bad_thread, 0);
        atomic_init(&j.inner_wrong_thread, 0);
        mtp_cpu_pool_run(pool, OUTER, count_item, &j);
        for (int i = 0; i < OUTER; i++)
            assert_int_equal(atomic_load(&j.hits[i]), 1);
        for (int i = 0; i < OUTER * INNER; i++)
            assert_int_equal(atomic_load(&j.inner_hits[i]), 1);
        /* Inner items ran in the outer item's thread (its scratch is theirs). */
        assert_int_equal(atomic_load(&j.inner_wrong_thread), 0);
        free(j.hits);
        free(j.inner_hits);
        /* And the pool still works normally afterwards. */
        run_and_check(pool, 100, -1);
        mtp_cpu_pool_free(pool);
    }
}

/* One item sleeps: whichever thread claimed it, the run must wait for it
 * (its hit is counted before the run returns, checked in run_and_check). */
static void test_slow_item(void **state)
{
    (void)state;
    static const int sleepy[] = {0, 1, 5, 15};
    for (size_t k = 0; k < sizeof sleepy / sizeof sleepy[0]; k++) {
        struct mtp_cpu_pool *pool = mtp_cpu_pool_create(3, 0);
        run_and_check(pool, 16, sleepy[k]);
        run_and_check(pool, 16, -1); /* and the next job is unaffected */
        mtp_cpu_pool_free(pool);
    }
}

/*
 * The straggler rule (mtp_cpu_pool_stalled): a caller that waited for the last
 * item of a job whose items are long was not held up by a preempted worker,
 * and must not send the next hundreds of jobs to the caller alone; a wait of a
 * time slice for short items still is a stall.
 */
static void test_stall_rule(void **state)
{
    (void)state;
    const long long us = 1000, ms = 1000000;
    /* Real-dimension FP8 matmul at 2 threads: 30 us items, the caller waited for one. */
    assert_false(mtp_cpu_pool_stalled(90 * us, 30 * us, 30 * us));
    /* Three 300 us items, the caller waited a whole item: half the job. */
    assert_false(mtp_cpu_pool_stalled(600 * us, 300 * us, 300 * us));
    /* A worker preempted for a time slice while items take microseconds. */
    assert_true(mtp_cpu_pool_stalled(5 * ms, 4 * ms, 10 * us));
    /* Small-model ops, worker preempted: 2 us items, 1.5 ms waited out of 2. */
    assert_true(mtp_cpu_pool_stalled(2 * ms, 1500 * us, 2 * us));
    /* A worker's page fault on a first touch: 6 us items, 60 us waited out of 150. */
    assert_false(mtp_cpu_pool_stalled(150 * us, 60 * us, 6 * us));
    /* Under 200 us, or under a quarter of the job, is never a stall. */
    assert_false(mtp_cpu_pool_stalled(300 * us, 190 * us, 1 * us));
    assert_false(mtp_cpu_pool_stalled(4 * ms, 900 * us, 1 * us));
    /* The caller ran no item (item time unknown, 0): the other two rules decide. */
    assert_true(mtp_cpu_pool_stalled(1 * ms, 500 * us, 0));
}

/* Threads of this process, from /proc/self/status; -1 if unreadable. */
static int process_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            n = atoi(line + 8);
    if (f)
        fclose(f);
    return n;
}

static void test_free_joins(void **state)
{
    (void)state;
    int before = process_threads();
    if (before < 0)
        skip();
    for (int r = 0; r < 20; r++) {
        struct mtp_cpu_pool *pool = mtp_cpu_pool_create(4, r % 2 ? 0 : 50000);
        assert_int_equal(process_threads(), before + 3);
        if (r % 3)
            run_and_check(pool, 10, -1);
        mtp_cpu_pool_free(pool);
        assert_int_equal(process_threads(), before);
    }
    /* The same through the backend: a context's workers go with it. */
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(3, &be), MTP_OK);
    assert_int_equal(process_threads(), before + 2);
    mtp_backend_free(be);
    assert_int_equal(process_threads(), before);
}

struct thread_log {
    int thread[64];
};

static void log_thread(void *varg, int item, int thread)
{
    ((struct thread_log *)varg)->thread[item] = thread;
}

static void test_small_work_in_caller(void **state)
{
    (void)state;
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(2, &be), MTP_OK);
    struct mtp_cpu_ctx *ctx = be->ctx;
    struct thread_log log;
    memset(&log, 0xff, sizeof log);
    mtp_cpu_parallel_for_work(ctx, MTP_CPU_PARALLEL_MIN_WORK - 1, 64, log_thread, &log);
    for (int i = 0; i < 64; i++)
        assert_int_equal(log.thread[i], 0);
    /* Above the threshold every item still runs once, on some thread. */
    memset(&log, 0xff, sizeof log);
    mtp_cpu_parallel_for_work(ctx, MTP_CPU_PARALLEL_MIN_WORK, 64, log_thread, &log);
    for (int i = 0; i < 64; i++)
        assert_true(log.thread[i] == 0 || log.thread[i] == 1);
    mtp_backend_free(be);
}

/* The default is the affinity mask's CPU count: pinned to one CPU, one thread. */
static void test_default_threads_follow_affinity(void **state)
{
    (void)state;
    cpu_set_t saved, one;
    assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
    assert_int_equal(mtp_cpu_available_cpus(), CPU_COUNT(&saved));
    int first = 0;
    while (!CPU_ISSET(first, &saved))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    int pinned = mtp_cpu_available_cpus();
    struct mtp_backend *be = NULL;
    int rc = mtp_backend_cpu_create(0, &be);
    int ctx_threads = rc == MTP_OK ? ((struct mtp_cpu_ctx *)be->ctx)->n_threads : -1;
    mtp_backend_free(be);
    assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
    assert_int_equal(pinned, 1);
    assert_int_equal(ctx_threads, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_once),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_slow_item),
        cmocka_unit_test(test_stall_rule),
        cmocka_unit_test(test_free_joins),
        cmocka_unit_test(test_small_work_in_caller),
        cmocka_unit_test(test_default_threads_follow_affinity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
