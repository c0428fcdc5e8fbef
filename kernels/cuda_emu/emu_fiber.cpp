/*
 * emu_fiber.cpp - the fibers that run CUDA threads: stacks and a context
 * switch written for x86-64 in a few instructions.
 *
 * Why hand-written: glibc's swapcontext saves and restores the signal mask
 * with a system call on every switch, and a warp shuffle costs 32 switches,
 * so a 15-minute test took longer than that (issue 22); this switch saves only
 * the callee-saved registers and costs a few nanoseconds. MXCSR and the x87
 * control word (also preserved state in the System V ABI) are not switched:
 * every fiber shares the OS thread's floating-point environment, which no
 * kernel changes, and saving them (stmxcsr/ldmxcsr/fldcw serialise the
 * pipeline) made the switch several times slower. HIP-CPU would run the
 * kernels on the CPU too, but needs them in HIP's API, and Boost.Context would
 * be a large dependency for these 30 lines. Other architectures fall back to
 * ucontext (correct, slow).
 *
 * AddressSanitizer must be told about every stack switch
 * (__sanitizer_start/finish_switch_fiber), or it reports false errors; the
 * scheduling functions that run on fiber stacks are not instrumented, so a
 * reused stack carries no stale poisoning.
 */
#include "emu_internal.h"

#include <stdio.h>    /* defines: fprintf */
#include <stdlib.h>   /* defines: abort */
#include <sys/mman.h> /* defines: mmap, mprotect */

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
#include <sanitizer/common_interface_defs.h>
#define NO_ASAN __attribute__((no_sanitize_address))
#else
#define NO_ASAN
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace mtp_emu {

namespace {
thread_local void *t_sched_sp;            /* the scheduler's saved stack pointer */
[[maybe_unused]] thread_local const void *t_sched_bottom; /* its stack, for AddressSanitizer */
[[maybe_unused]] thread_local size_t t_sched_size;
[[maybe_unused]] thread_local void *t_sched_fake;
thread_local std::vector<fiber_ctx> *t_pool;
} // namespace

#if defined(__x86_64__)

extern "C" void mtp_emu_switch(void **save_sp, void *load_sp);
extern "C" void mtp_emu_fiber_entry(void);

/* mtp_emu_switch(save, load): push the callee-saved registers, store rsp in
 * *save, load rsp from load, pop the other side's state, return into it.
 * A new fiber's frame "returns" into mtp_emu_fiber_entry with the entry
 * function in r12 and its argument in rbx. */
asm(R"(
    .text
    .globl mtp_emu_switch
    .type mtp_emu_switch, @function
mtp_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size mtp_emu_switch, .-mtp_emu_switch

    .globl mtp_emu_fiber_entry
    .type mtp_emu_fiber_entry, @function
mtp_emu_fiber_entry:
    movq %rbx, %rdi
    callq *%r12
    ud2
    .size mtp_emu_fiber_entry, .-mtp_emu_fiber_entry
)");

void fiber_init(fiber_ctx *f, void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)f->stack + f->stack_size) & ~(uintptr_t)15;
    /* After the 7 pops ("ret" included) rsp = sp + 56 must be 16-byte aligned
     * at mtp_emu_fiber_entry, so that its call leaves the ABI's alignment. */
    uint64_t *sp = (uint64_t *)(top - 16 - 56);
    sp[0] = 0;                    /* r15 */
    sp[1] = 0;                    /* r14 */
    sp[2] = 0;                    /* r13 */
    sp[3] = (uint64_t)entry;      /* r12 */
    sp[4] = (uint64_t)arg;        /* rbx */
    sp[5] = 0;                    /* rbp: the end of the frame chain */
    sp[6] = (uint64_t)mtp_emu_fiber_entry;
    f->sp = sp;
    f->asan_fake = nullptr;
}

NO_ASAN static inline void switch_raw(void **save, void *load) { mtp_emu_switch(save, load); }

#else /* ucontext fallback (slow: a system call per switch); sp is the ucontext */

thread_local ucontext_t t_sched_uc;

static void uc_entry(unsigned elo, unsigned ehi, unsigned alo, unsigned ahi)
{
    void (*entry)(void *) = (void (*)(void *))((uintptr_t)elo | (uintptr_t)ehi << 32);
    entry((void *)((uintptr_t)alo | (uintptr_t)ahi << 32));
    abort();
}

void fiber_init(fiber_ctx *f, void (*entry)(void *), void *arg)
{
    ucontext_t *uc = (ucontext_t *)f->stack; /* the lowest bytes of the stack hold it */
    getcontext(uc);
    uc->uc_stack.ss_sp = f->stack + sizeof(ucontext_t);
    uc->uc_stack.ss_size = f->stack_size - sizeof(ucontext_t);
    uc->uc_link = nullptr;
    uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;
    makecontext(uc, (void (*)(void))uc_entry, 4, (unsigned)e, (unsigned)(e >> 32), (unsigned)a,
                (unsigned)(a >> 32));
    f->sp = uc;
    f->asan_fake = nullptr;
}

static inline void switch_raw(void **save, void *load)
{
    if (save == &t_sched_sp)
        *save = &t_sched_uc;
    swapcontext((ucontext_t *)*save, (ucontext_t *)load);
}

#endif

NO_ASAN void fiber_resume(fiber_ctx *f)
{
#ifdef MTP_EMU_ASAN
    __sanitizer_start_switch_fiber(&t_sched_fake, f->stack, f->stack_size);
#endif
    switch_raw(&t_sched_sp, f->sp);
#ifdef MTP_EMU_ASAN
    __sanitizer_finish_switch_fiber(t_sched_fake, nullptr, nullptr);
#endif
}

NO_ASAN void fiber_yield(fiber_ctx *f, bool finished)
{
#ifdef MTP_EMU_ASAN
    __sanitizer_start_switch_fiber(finished ? nullptr : &f->asan_fake, t_sched_bottom,
                                   t_sched_size);
#endif
    switch_raw(&f->sp, t_sched_sp);
#ifdef MTP_EMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, nullptr, nullptr);
#endif
    (void)finished;
}

NO_ASAN void fiber_switch(fiber_ctx *from, fiber_ctx *to, bool finished)
{
#ifdef MTP_EMU_ASAN
    __sanitizer_start_switch_fiber(finished ? nullptr : &from->asan_fake, to->stack,
                                   to->stack_size);
#endif
    switch_raw(&from->sp, to->sp);
#ifdef MTP_EMU_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, nullptr, nullptr);
#endif
    (void)finished;
}

NO_ASAN void fiber_started(void)
{
#ifdef MTP_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &t_sched_bottom, &t_sched_size);
#endif
}

static void stack_alloc(fiber_ctx *f, size_t bytes)
{
    const size_t guard = 4096;
    unsigned char *p = (unsigned char *)mmap(nullptr, bytes + guard, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cuda emulation: cannot map a %zu-byte fiber stack\n", bytes);
        abort();
    }
    mprotect(p, guard, PROT_NONE); /* a stack overflow faults instead of corrupting */
    f->stack = p + guard;
    f->stack_size = bytes;
    f->sp = nullptr;
    f->asan_fake = nullptr;
}

fiber_ctx *fiber_pool(int n)
{
    if (!t_pool)
        t_pool = new std::vector<fiber_ctx>();
    while ((int)t_pool->size() < n) {
        fiber_ctx f;
        stack_alloc(&f, config().stack_bytes);
        t_pool->push_back(f);
    }
    return t_pool->data();
}

} /* namespace mtp_emu */
