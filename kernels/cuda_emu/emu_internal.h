/*
 * emu_internal.h - what the emulation layer's own files share (not the
 * backend's): settings from the environment, the device allocation registry,
 * the dynamic shared memory buffer, and the fiber switch.
 */
#ifndef MTP_CUDA_EMU_INTERNAL_H
#define MTP_CUDA_EMU_INTERNAL_H

#include "cuda_runtime.h"

namespace mtp_emu {

/* ---- settings (README.md: MTP_CUDA_EMU_SCHEDULE, _SEED, _FILL, _STACK_KB) */

enum schedule { SCHEDULE_FORWARD, SCHEDULE_REVERSE, SCHEDULE_RANDOM };

struct settings {
    schedule sched;
    uint64_t seed;
    bool nan_fill;    /* fresh device memory and dynamic shared memory: 0xFF bytes */
    size_t stack_bytes;
};
/* Read once from the environment; the first call prints the "emulated" banner. */
const settings &config(void);

/* ---- device memory */

/* The allocation holding [P, P + BYTES), or false. */
bool find_alloc(const void *p, size_t bytes, uintptr_t *base, size_t *size);
/* Whether P is inside any device allocation. */
bool is_device(const void *p);
/* Whether STREAM is 0 (the default stream) or a live stream. */
bool stream_valid(cudaStream_t stream);
/* Record a runtime API error (the next cudaGetLastError returns it). */
cudaError_t set_error(cudaError_t err);
/* Print "cuda emulation: <what>: ..." to stderr (the detail of an error code). */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- dynamic shared memory: one buffer per OS thread, SMEM_MAX bytes */

enum { SMEM_MAX = 227 * 1024, SMEM_DEFAULT = 48 * 1024 };
unsigned char *dyn_smem(void);
/* The opt-in of cudaFuncSetAttribute for FN (0 when none). */
size_t max_dyn_smem(const void *fn);

/* ---- fibers (emu_fiber.cpp) */

struct fiber_ctx {
    void *sp;                  /* saved stack pointer while switched out */
    unsigned char *stack;      /* lowest address (a guard page below) */
    size_t stack_size;
    void *asan_fake;           /* AddressSanitizer's fake-stack handle */
};

/* Prepare F to start ENTRY(ARG) on its stack at the next switch into it. */
void fiber_init(fiber_ctx *f, void (*entry)(void *), void *arg);
/* From the scheduler (the OS thread's own stack) into F, until F switches back. */
void fiber_resume(fiber_ctx *f);
/* From F back to the scheduler; FINISHED: F never runs again. */
void fiber_yield(fiber_ctx *f, bool finished);
/* From FROM straight into TO (another fiber of the block); FINISHED: FROM
 * never runs again. */
void fiber_switch(fiber_ctx *from, fiber_ctx *to, bool finished);
/* The first thing a new fiber's entry does (AddressSanitizer bookkeeping). */
void fiber_started(void);
/* N fiber stacks of config().stack_bytes (kept for the OS thread's lifetime). */
fiber_ctx *fiber_pool(int n);

} /* namespace mtp_emu */

#endif
