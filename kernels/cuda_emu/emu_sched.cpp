/*
 * emu_sched.cpp - kernel launches: launch-configuration checks, blocks one
 * after another, a block's threads as fibers run in lock-step phases (each
 * runs until its next barrier or warp rendezvous, then the next one runs),
 * barriers, warp rendezvous, and the divergence and deadlock reports.
 *
 * Schedules (MTP_CUDA_EMU_SCHEDULE): forward runs threads and blocks in index
 * order, reverse in the opposite order, random in a fresh random order per
 * phase and per launch (MTP_CUDA_EMU_SEED). A kernel that is missing a
 * barrier reads another thread's data before or after it is written depending
 * on the order, so its results differ between schedules.
 */
#include "emu_internal.h"

#include <stdarg.h> /* defines: va_list */
#include <stdio.h>  /* defines: fprintf, vfprintf */
#include <stdlib.h> /* defines: abort */

#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MTP_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MTP_EMU_ASAN 1
#endif
#endif
#ifdef MTP_EMU_ASAN
#include <sanitizer/asan_interface.h>
#define NO_ASAN __attribute__((no_sanitize_address))
#else
#define NO_ASAN
#endif

namespace mtp_emu {

thread_local const thread_id *g_cur;
thread_local dim3 g_block_idx, g_block_dim, g_grid_dim;

namespace {

enum thread_state { T_RUN, T_BARRIER, T_WARP, T_EXITED };

struct cuda_thread : thread_id {
    fiber_ctx *fib;
    int linear, warp;
    thread_state state;
    const char *file; /* where it waits */
    int line;
    const char *what;
};

struct warp_state {
    uint64_t slots[2][32]; /* deposits of the current and the previous rendezvous */
    int parity;
    int arrived;
    unsigned mask;
    unsigned exited; /* lanes that have exited (or do not exist) */
    const char *file, *what;
    int line;
};

struct block_run {
    const launch_config *cfg;
    void (*body)(void *);
    void *ctx;
    int n_threads, live;
    int bar_arrived;
    const char *bar_file;
    int bar_line;
    std::vector<cuda_thread> threads;
    std::vector<warp_state> warps;
    std::vector<int> order;
};

thread_local block_run *t_block;
thread_local uint64_t t_rng;

uint64_t rng_next(void)
{
    /* splitmix64 */
    uint64_t z = (t_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void shuffle(std::vector<int> &v)
{
    for (size_t i = v.size(); i > 1; i--) {
        size_t j = (size_t)(rng_next() % i);
        int t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

cuda_thread *cur(void) { return (cuda_thread *)g_cur; }

bool same_site(const char *f1, int l1, const char *f2, int l2)
{
    return l1 == l2 && (f1 == f2 || std::string(f1) == f2);
}

void print_where(void)
{
    const block_run *b = t_block;
    fprintf(stderr, "cuda emulation: kernel %s, grid (%u,%u,%u) block (%u,%u,%u): block (%u,%u,%u)",
            b->cfg->name, b->cfg->grid.x, b->cfg->grid.y, b->cfg->grid.z, b->cfg->block.x,
            b->cfg->block.y, b->cfg->block.z, g_block_idx.x, g_block_idx.y, g_block_idx.z);
    if (g_cur)
        fprintf(stderr, ", thread (%u,%u,%u) (warp %d lane %d)", g_cur->tid.x, g_cur->tid.y,
                g_cur->tid.z, cur()->warp, g_cur->lane);
    fprintf(stderr, ":\n  ");
}

[[noreturn]] void fault_v(const char *fmt, va_list ap)
{
    if (t_block)
        print_where();
    else
        fprintf(stderr, "cuda emulation: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}

/* Nothing can run but threads wait: list who waits where. */
[[noreturn]] void deadlock(void)
{
    block_run *b = t_block;
    g_cur = nullptr;
    print_where();
    fprintf(stderr, "deadlock (divergence): no thread can go on; %d of %d threads wait, %d have "
                    "exited:\n",
            b->live, b->n_threads, b->n_threads - b->live);
    int shown = 0;
    for (const cuda_thread &t : b->threads) {
        if (t.state == T_EXITED || t.state == T_RUN)
            continue;
        if (shown++ < 12)
            fprintf(stderr, "  thread (%u,%u,%u) warp %d lane %d at %s (%s:%d)\n", t.tid.x,
                    t.tid.y, t.tid.z, t.warp, t.lane, t.what, t.file, t.line);
    }
    if (shown > 12)
        fprintf(stderr, "  ... and %d more\n", shown - 12);
    fflush(stderr);
    abort();
}

void release_barrier(block_run *b)
{
    for (cuda_thread &t : b->threads)
        if (t.state == T_BARRIER)
            t.state = T_RUN;
    b->bar_arrived = 0;
}

/* T stops (waits or has exited): the next runnable lane of its warp runs,
 * straight from T's fiber (a warp advances in lock-step without passing
 * through the scheduler: one switch per lane and rendezvous); when none can,
 * the scheduler goes on with the next warp. The order follows the schedule. */
NO_ASAN void thread_stop(cuda_thread *t, bool finished)
{
    block_run *b = t_block;
    const int base = t->warp * 32, lanes = b->n_threads - base < 32 ? b->n_threads - base : 32;
    const schedule s = config().sched;
    int start = s == SCHEDULE_RANDOM ? (int)(rng_next() % (uint64_t)lanes) : 0;
    for (int k = 1; k <= lanes; k++) {
        int l = s == SCHEDULE_REVERSE ? (t->lane - k + 2 * lanes) % lanes
                : s == SCHEDULE_RANDOM ? (start + k) % lanes
                                       : (t->lane + k) % lanes;
        cuda_thread *n = &b->threads[base + l];
        if (n != t && n->state == T_RUN) {
            g_cur = n;
            fiber_switch(t->fib, n->fib, finished);
            return; /* resumed: whoever switched here set g_cur */
        }
    }
    fiber_yield(t->fib, finished);
}

/* The body of every fiber: one CUDA thread from start to exit. */
NO_ASAN void thread_main(void *arg)
{
    fiber_started();
    cuda_thread *t = static_cast<cuda_thread *>(arg);
    block_run *b = t_block;
    b->body(b->ctx);
    /* exit */
    warp_state &w = b->warps[t->warp];
    unsigned bit = 1u << t->lane;
    if (w.arrived > 0 && (w.mask & bit))
        device_fault("divergence: the thread exits while lanes of its warp wait for it at %s "
                     "(%s:%d)",
                     w.what, w.file, w.line);
    /* An exited thread never arrives at a barrier: CUDA leaves a barrier that
     * not every thread of the block reaches undefined, so it is a deadlock
     * here, reported with the exited count. */
    t->state = T_EXITED;
    w.exited |= bit;
    b->live--;
    thread_stop(t, true);
    abort(); /* never resumed */
}

void run_block(block_run *b)
{
    const dim3 bd = b->cfg->block;
    fiber_ctx *pool = fiber_pool(b->n_threads);
    for (int i = 0; i < b->n_threads; i++) {
        cuda_thread &t = b->threads[i];
        t.tid = dim3(i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y));
        t.lane = i & 31;
        t.warp = i >> 5;
        t.linear = i;
        t.fib = &pool[i];
        t.state = T_RUN;
        fiber_init(t.fib, thread_main, &t);
    }
    for (size_t w = 0; w < b->warps.size(); w++) {
        warp_state &ws = b->warps[w];
        ws.parity = ws.arrived = 0;
        int lanes = b->n_threads - 32 * (int)w;
        ws.exited = lanes >= 32 ? 0u : ~((1u << lanes) - 1u); /* lanes that do not exist */
    }
    b->live = b->n_threads;
    b->bar_arrived = 0;
    const schedule s = config().sched;
    if (s == SCHEDULE_RANDOM)
        shuffle(b->order);
    while (b->live > 0) {
        bool ran = false;
        for (int i : b->order) {
            cuda_thread &t = b->threads[i];
            if (t.state != T_RUN)
                continue;
            g_cur = &t;
            fiber_resume(t.fib);
            ran = true;
        }
        g_cur = nullptr;
        if (!ran)
            deadlock();
        if (s == SCHEDULE_RANDOM && b->live > 0)
            shuffle(b->order);
    }
}

bool check_config(const launch_config &c)
{
    const dim3 g = c.grid, bl = c.block;
    unsigned long long threads = (unsigned long long)bl.x * bl.y * bl.z;
    if (bl.x == 0 || bl.y == 0 || bl.z == 0 || bl.x > 1024 || bl.y > 1024 || bl.z > 64 ||
        threads > 1024) {
        report("launch of %s: block (%u,%u,%u) is not a valid block (at most 1024 threads, "
               "z <= 64)",
               c.name, bl.x, bl.y, bl.z);
        set_error(cudaErrorInvalidConfiguration);
        return false;
    }
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
        report("launch of %s: grid (%u,%u,%u) is not a valid grid (x < 2^31, y and z <= 65535, "
               "none 0)",
               c.name, g.x, g.y, g.z);
        set_error(cudaErrorInvalidConfiguration);
        return false;
    }
    size_t allowed = max_dyn_smem(c.fn);
    if (allowed < SMEM_DEFAULT)
        allowed = SMEM_DEFAULT;
    if (c.smem > allowed) {
        report("launch of %s: %zu bytes of dynamic shared memory, more than the %zu allowed "
               "(above 48 KiB a kernel needs cudaFuncSetAttribute("
               "cudaFuncAttributeMaxDynamicSharedMemorySize) first)",
               c.name, c.smem, allowed);
        set_error(cudaErrorLaunchOutOfResources);
        return false;
    }
    if (!stream_valid(c.stream)) {
        report("launch of %s: stream %p was destroyed or never created", c.name,
               (void *)c.stream);
        set_error(cudaErrorInvalidResourceHandle);
        return false;
    }
    return true;
}

/* Dynamic shared memory of one block: NaN bytes up to SMEM, and beyond it
 * (AddressSanitizer builds) poisoned, so an overrun is reported. */
void smem_prepare(size_t smem)
{
    unsigned char *p = dyn_smem();
#ifdef MTP_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, SMEM_MAX);
#endif
    memset(p, config().nan_fill ? 0xff : 0, smem);
#ifdef MTP_EMU_ASAN
    ASAN_POISON_MEMORY_REGION(p + smem, SMEM_MAX - smem);
#endif
}

} // namespace

void device_fault(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fault_v(fmt, ap);
}

void sync_block(const char *file, int line)
{
    block_run *b = t_block;
    cuda_thread *t = cur();
    if (!b || !t)
        device_fault("__syncthreads called outside a kernel (%s:%d)", file, line);
    if (b->bar_arrived == 0) {
        b->bar_file = file;
        b->bar_line = line;
    } else if (!same_site(file, line, b->bar_file, b->bar_line)) {
        device_fault("divergence: __syncthreads at %s:%d while %d threads of the block wait at "
                     "__syncthreads at %s:%d",
                     file, line, b->bar_arrived, b->bar_file, b->bar_line);
    }
    warp_state &w = b->warps[t->warp];
    if (w.arrived > 0)
        device_fault("divergence: __syncthreads at %s:%d while lanes of this warp wait at %s "
                     "(%s:%d)",
                     file, line, w.what, w.file, w.line);
    if (++b->bar_arrived == b->n_threads) {
        release_barrier(b);
        return;
    }
    t->state = T_BARRIER;
    t->what = "__syncthreads";
    t->file = file;
    t->line = line;
    thread_stop(t, false);
}

const uint64_t *warp_rendezvous(unsigned mask, uint64_t mine, const char *what, const char *file,
                                int line)
{
    block_run *b = t_block;
    cuda_thread *t = cur();
    if (!b || !t)
        device_fault("%s called outside a kernel (%s:%d)", what, file, line);
    warp_state &w = b->warps[t->warp];
    unsigned bit = 1u << t->lane;
    if (!(mask & bit))
        device_fault("%s at %s:%d with mask 0x%08x, which leaves out the calling lane", what,
                     file, line, mask);
    if (mask & w.exited)
        device_fault("divergence: %s at %s:%d with mask 0x%08x names lanes 0x%08x that have "
                     "exited or do not exist",
                     what, file, line, mask, mask & w.exited);
    if (w.arrived == 0) {
        w.mask = mask;
        w.file = file;
        w.line = line;
        w.what = what;
    } else if (w.mask != mask || !same_site(file, line, w.file, w.line)) {
        device_fault("divergence: %s at %s:%d (mask 0x%08x) while %d lanes of this warp wait at "
                     "%s at %s:%d (mask 0x%08x)",
                     what, file, line, mask, w.arrived, w.what, w.file, w.line, w.mask);
    }
    const int p = w.parity;
    w.slots[p][t->lane] = mine;
    if (++w.arrived == __builtin_popcount(mask)) {
        int base = t->warp * 32;
        for (int l = 0; l < 32; l++)
            if ((mask >> l & 1u) && l != t->lane)
                b->threads[base + l].state = T_RUN;
        w.arrived = 0;
        w.parity ^= 1;
        return w.slots[p];
    }
    t->state = T_WARP;
    t->what = what;
    t->file = file;
    t->line = line;
    thread_stop(t, false);
    return w.slots[p];
}

void run_launch(const launch_config &cfg, void (*body)(void *), void *ctx)
{
    const settings &st = config();
    if (t_block)
        device_fault("kernel %s launched from inside a kernel (not emulated)", cfg.name);
    if (!check_config(cfg))
        return;
    if (!t_rng)
        t_rng = st.seed ? st.seed : 1;
    block_run b;
    b.cfg = &cfg;
    b.body = body;
    b.ctx = ctx;
    b.n_threads = (int)(cfg.block.x * cfg.block.y * cfg.block.z);
    b.threads.resize((size_t)b.n_threads);
    b.warps.resize((size_t)(b.n_threads + 31) / 32);
    b.order.resize((size_t)b.n_threads);
    for (int i = 0; i < b.n_threads; i++)
        b.order[i] = st.sched == SCHEDULE_REVERSE ? b.n_threads - 1 - i : i;

    const unsigned long long n_blocks = (unsigned long long)cfg.grid.x * cfg.grid.y * cfg.grid.z;
    std::vector<int> border;
    if (st.sched == SCHEDULE_RANDOM && n_blocks <= (1ull << 24)) {
        border.resize((size_t)n_blocks);
        for (size_t i = 0; i < border.size(); i++)
            border[i] = (int)i;
        shuffle(border);
    }
    g_block_dim = cfg.block;
    g_grid_dim = cfg.grid;
    t_block = &b;
    for (unsigned long long k = 0; k < n_blocks; k++) {
        unsigned long long i = st.sched == SCHEDULE_REVERSE ? n_blocks - 1 - k
                               : border.empty()              ? k
                                                             : (unsigned long long)border[k];
        g_block_idx = dim3((unsigned)(i % cfg.grid.x), (unsigned)(i / cfg.grid.x % cfg.grid.y),
                           (unsigned)(i / ((unsigned long long)cfg.grid.x * cfg.grid.y)));
        smem_prepare(cfg.smem);
        run_block(&b);
    }
    t_block = nullptr;
    g_cur = nullptr;
}

} /* namespace mtp_emu */
