/*
 * cuda_runtime.h (emulation) - the subset of the CUDA runtime API and of the
 * device language that the kernels/cuda sources use, for compiling them as host C++
 * (g++ -x c++) and running their kernels on the CPU (-DMTP_CUDA_EMU=ON).
 * Real builds never see this file: nvcc finds NVIDIA's header first.
 *
 * Device side: each CUDA thread of a block is a fiber (emu_fiber.cpp) with its
 * own stack; threadIdx/blockIdx read the running fiber's state; __syncthreads
 * is a block barrier and every warp primitive (__shfl_*_sync, votes) a
 * rendezvous of the 32 lanes named in the mask. A thread that reaches a
 * barrier or a shuffle from another source line than its peers, or exits
 * while its peers wait, is divergence: the layer stops with the kernel, block,
 * thread and lines (emu_sched.cpp). __shared__ variables are per OS thread
 * statics (one block runs at a time per OS thread); dynamic shared memory
 * (extern __shared__) is one buffer, filled with NaN bytes for every block.
 *
 * Host side: every call runs at once and in program order, which is what one
 * stream's order promises (events and streams need nothing more); every copy
 * and memset is checked against the allocation it touches (emu_runtime.cpp).
 *
 * Kernels are launched through MTP_CUDA_LAUNCH (kernels/cuda/cuda_internal.cuh),
 * which nvcc expands to <<<>>> and this build to mtp_emu::make_launcher.
 * README.md in this directory has the whole picture and the environment knobs.
 */
#ifndef MTP_CUDA_EMU_RUNTIME_H
#define MTP_CUDA_EMU_RUNTIME_H

#include <math.h>   /* defines: expf, fmaf, sqrtf, cosf, sinf, fmaxf */
#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: uint32_t, uint64_t, uintptr_t */
#include <string.h> /* defines: memcpy */

#include <tuple>   /* defines: std::tuple, std::apply (kernel parameters) */
#include <utility> /* defines: std::forward */

#define MTP_CUDA_EMULATED 1

/* ------------------------------------------------------ language keywords */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
/* Block-scope `__shared__ float red[32]` becomes a per-OS-thread static, and
 * `extern __shared__ float smem[]` names the dynamic shared memory buffer
 * (emu_runtime.cpp defines every name the backend uses). */
#define __shared__ thread_local

/* ---------------------------------------------------------------- vectors */

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};

/* ------------------------------------------------------------ host types */

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

enum { cudaStreamDefault = 0, cudaStreamNonBlocking = 1 };

struct mtp_emu_stream;
typedef struct mtp_emu_stream *cudaStream_t;
struct mtp_emu_event;
typedef struct mtp_emu_event *cudaEvent_t;

struct cudaDeviceProp {
    char name[256];
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
};

/* --------------------------------------------------------------- host API */

const char *cudaGetErrorString(cudaError_t err);
const char *cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t stream);
cudaError_t cudaFreeAsync(void *p, cudaStream_t stream);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream = 0);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);

namespace mtp_emu {
cudaError_t set_func_attribute(const void *fn, cudaFuncAttribute attr, int value);
}

template <typename F>
cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute attr, int value)
{
    return mtp_emu::set_func_attribute(reinterpret_cast<const void *>(fn), attr, value);
}

/* ------------------------------------------------------ the emulated device */

namespace mtp_emu {

/* One CUDA thread (emu_sched.cpp owns the rest of its state). */
struct thread_id {
    dim3 tid;
    int lane; /* linear thread id % 32 */
};

extern thread_local const thread_id *g_cur; /* the running CUDA thread */
extern thread_local dim3 g_block_idx, g_block_dim, g_grid_dim;

/* __syncthreads: wait until every thread of the block arrives here (from
 * this FILE:LINE); one that exited first is a deadlock, reported. */
void sync_block(const char *file, int line);

/* Rendezvous of the lanes in MASK (this lane included): deposits MINE and
 * returns the 32 lanes' deposits (valid until this lane's next rendezvous). */
const uint64_t *warp_rendezvous(unsigned mask, uint64_t mine, const char *what, const char *file,
                                int line);

/* Stop with the kernel, block, thread and WHY (printf format). */
[[noreturn]] void device_fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

template <typename T> inline uint64_t to_bits(T v)
{
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}

template <typename T> inline T from_bits(uint64_t b)
{
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* Lane SRC of this lane's WIDTH-wide segment (CUDA: out-of-range sources in
 * the up/down forms give the caller's own value). */
template <typename T>
inline T shfl_from(unsigned mask, T v, int src, const char *what, const char *file, int line)
{
    const uint64_t *all = warp_rendezvous(mask, to_bits(v), what, file, line);
    return from_bits<T>(all[src & 31]);
}

template <typename T> inline T shfl_xor(unsigned mask, T v, int lm, int width, const char *f, int l)
{
    int lane = g_cur->lane, base = lane & ~(width - 1);
    int src = lane ^ lm;
    if (src >= base + width)
        src = lane;
    return shfl_from(mask, v, src, "__shfl_xor_sync", f, l);
}
template <typename T> inline T shfl_xor(unsigned mask, T v, int lm, const char *f, int l)
{
    return shfl_xor(mask, v, lm, 32, f, l);
}
template <typename T> inline T shfl_idx(unsigned mask, T v, int src, int width, const char *f, int l)
{
    int lane = g_cur->lane, base = lane & ~(width - 1);
    return shfl_from(mask, v, base + (src & (width - 1)), "__shfl_sync", f, l);
}
template <typename T> inline T shfl_idx(unsigned mask, T v, int src, const char *f, int l)
{
    return shfl_idx(mask, v, src, 32, f, l);
}
template <typename T> inline T shfl_down(unsigned mask, T v, unsigned d, int width, const char *f, int l)
{
    int lane = g_cur->lane, base = lane & ~(width - 1);
    int src = lane + (int)d < base + width ? lane + (int)d : lane;
    return shfl_from(mask, v, src, "__shfl_down_sync", f, l);
}
template <typename T> inline T shfl_down(unsigned mask, T v, unsigned d, const char *f, int l)
{
    return shfl_down(mask, v, d, 32, f, l);
}
template <typename T> inline T shfl_up(unsigned mask, T v, unsigned d, int width, const char *f, int l)
{
    int lane = g_cur->lane, base = lane & ~(width - 1);
    int src = lane - (int)d >= base ? lane - (int)d : lane;
    return shfl_from(mask, v, src, "__shfl_up_sync", f, l);
}
template <typename T> inline T shfl_up(unsigned mask, T v, unsigned d, const char *f, int l)
{
    return shfl_up(mask, v, d, 32, f, l);
}

inline unsigned ballot(unsigned mask, int pred, const char *what, const char *f, int l)
{
    const uint64_t *all = warp_rendezvous(mask, pred != 0, what, f, l);
    unsigned out = 0;
    for (int i = 0; i < 32; i++)
        if ((mask >> i & 1u) && all[i])
            out |= 1u << i;
    return out;
}

/* Vector and scalar loads: a misaligned vector load faults on a GPU, so it
 * stops here too. */
template <typename T> inline T ldg(const T *p)
{
    if ((uintptr_t)p % alignof(T))
        device_fault("misaligned address %p for a %zu-byte aligned load", (const void *)p,
                     alignof(T));
    T v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---- launches */

struct launch_config {
    const char *name; /* the kernel expression, as written at the launch */
    const void *fn;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};

/* Validate CFG like a GPU would (cudaGetLastError reports a bad one), then run
 * BODY(CTX) as every thread of every block. */
void run_launch(const launch_config &cfg, void (*body)(void *), void *ctx);

template <typename... P> struct launcher {
    launch_config cfg;
    void (*fn)(P...);

    template <typename... A> void operator()(A &&...args) const
    {
        static_assert(sizeof...(A) == sizeof...(P), "kernel argument count");
        /* Parameters are copied once at launch (as CUDA does), and each
         * thread gets its own copy when the kernel is called. */
        std::tuple<P...> params(std::forward<A>(args)...);
        struct call {
            void (*fn)(P...);
            std::tuple<P...> *params;
        } c = {fn, &params};
        run_launch(cfg, [](void *v) {
            call *cc = static_cast<call *>(v);
            std::apply(cc->fn, *cc->params);
        }, &c);
    }
};

template <typename... P>
launcher<P...> make_launcher(const char *name, void (*fn)(P...), dim3 grid, dim3 block,
                             size_t smem, cudaStream_t stream)
{
    launcher<P...> l;
    l.cfg = {name, reinterpret_cast<const void *>(fn), grid, block, smem, stream};
    l.fn = fn;
    return l;
}

} /* namespace mtp_emu */

#define threadIdx (::mtp_emu::g_cur->tid)
#define blockIdx (::mtp_emu::g_block_idx)
#define blockDim (::mtp_emu::g_block_dim)
#define gridDim (::mtp_emu::g_grid_dim)
enum { warpSize = 32 };

#define __syncthreads() ::mtp_emu::sync_block(__FILE__, __LINE__)
/* __syncwarp: every lane (the mask is not narrowed here). */
#define __syncwarp(...) ((void)::mtp_emu::warp_rendezvous(0xffffffffu, 0, "__syncwarp", __FILE__, __LINE__))
#define __shfl_xor_sync(mask, v, ...) ::mtp_emu::shfl_xor((mask), (v), __VA_ARGS__, __FILE__, __LINE__)
#define __shfl_sync(mask, v, ...) ::mtp_emu::shfl_idx((mask), (v), __VA_ARGS__, __FILE__, __LINE__)
#define __shfl_down_sync(mask, v, ...) ::mtp_emu::shfl_down((mask), (v), __VA_ARGS__, __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, ...) ::mtp_emu::shfl_up((mask), (v), __VA_ARGS__, __FILE__, __LINE__)
#define __ballot_sync(mask, p) ::mtp_emu::ballot((mask), (p), "__ballot_sync", __FILE__, __LINE__)
#define __any_sync(mask, p) (::mtp_emu::ballot((mask), (p), "__any_sync", __FILE__, __LINE__) != 0)
#define __all_sync(mask, p)                                                                        \
    (::mtp_emu::ballot((mask), (p), "__all_sync", __FILE__, __LINE__) == (unsigned)(mask))

/* --------------------------------------------------- device intrinsics */

/* IEEE single operations rounded once; the emulation objects are compiled
 * with -ffp-contract=off, so nothing fuses them (as nvcc --fmad=false). */
__device__ __forceinline__ float __fadd_rn(float a, float b) { return a + b; }
__device__ __forceinline__ float __fsub_rn(float a, float b) { return a - b; }
__device__ __forceinline__ float __fmul_rn(float a, float b) { return a * b; }
__device__ __forceinline__ float __fdiv_rn(float a, float b) { return a / b; }
__device__ __forceinline__ float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ float __fsqrt_rn(float a) { return sqrtf(a); }
__device__ __forceinline__ float __uint_as_float(uint32_t u) { return mtp_emu::from_bits<float>(u); }
__device__ __forceinline__ uint32_t __float_as_uint(float f)
{
    return (uint32_t)mtp_emu::to_bits(f);
}
__device__ __forceinline__ float __int_as_float(int i) { return mtp_emu::from_bits<float>((uint32_t)i); }
__device__ __forceinline__ int __float_as_int(float f) { return (int)(uint32_t)mtp_emu::to_bits(f); }
template <typename T> __device__ __forceinline__ T __ldg(const T *p) { return mtp_emu::ldg(p); }
__device__ __forceinline__ int __popc(unsigned v) { return __builtin_popcount(v); }
/* __trap: a GPU aborts the kernel and the context (the next call fails); here
 * the process stops with the kernel, block and thread. */
#define __trap() ::mtp_emu::device_fault("__trap at %s:%d", __FILE__, __LINE__)

/* Atomics: one OS thread runs a block's fibers, and blocks run one after
 * another, so a plain read-modify-write is atomic here. */
template <typename T> __device__ __forceinline__ T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> __device__ __forceinline__ T atomicMax(T *p, T v)
{
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T> __device__ __forceinline__ T atomicMin(T *p, T v)
{
    T old = *p;
    *p = old < v ? old : v;
    return old;
}
template <typename T> __device__ __forceinline__ T atomicExch(T *p, T v)
{
    T old = *p;
    *p = v;
    return old;
}
template <typename T> __device__ __forceinline__ T atomicCAS(T *p, T cmp, T v)
{
    T old = *p;
    if (old == cmp)
        *p = v;
    return old;
}

#endif
