/*
 * emu_runtime.cpp - the host side of the emulated CUDA runtime: settings and
 * the "emulated" banner, errors, the device, memory (every allocation
 * registered; every copy and memset checked against it), streams and events
 * (work runs at once, in program order, which is all one stream promises),
 * function attributes, and the dynamic shared memory buffer.
 */
#include "emu_counters.h"
#include "emu_internal.h"

#include <stdarg.h> /* defines: va_list */
#include <stdio.h>  /* defines: fprintf, snprintf */
#include <stdlib.h> /* defines: getenv, posix_memalign, free, strtoull */
#include <string.h> /* defines: memset, memcpy, strcmp */
#include <time.h>   /* defines: clock_gettime */

#include <atomic>
#include <map>
#include <mutex>
#include <set>

/* Dynamic shared memory: `extern __shared__ T name[]` in a kernel declares a
 * per-OS-thread array NAME; every name the backend uses is an alias of one
 * buffer. A kernel with a new name fails to link until it is added here. */
extern "C" {
alignas(16) thread_local unsigned char mtp_emu_dyn_smem_buf[mtp_emu::SMEM_MAX];
}
#define MTP_EMU_DYN_SMEM_NAME(type, name)                                                          \
    extern thread_local type name[mtp_emu::SMEM_MAX / sizeof(type)]                                \
        __attribute__((alias("mtp_emu_dyn_smem_buf")));
MTP_EMU_DYN_SMEM_NAME(float, smem) /* cuda_attention.cu, cuda_tree_attention.cu */
MTP_EMU_DYN_SMEM_NAME(float, rsm)  /* cuda_moe.cu route_kernel */

namespace mtp_emu {

unsigned char *dyn_smem(void) { return mtp_emu_dyn_smem_buf; }

/* Host waits (emu_counters.h). */
static std::atomic<long> g_syncs{0}, g_host_copies{0};

/* ------------------------------------------------------------- settings */

static settings read_settings(void)
{
    settings s = {};
    const char *v = getenv("MTP_CUDA_EMU_SCHEDULE");
    s.sched = SCHEDULE_FORWARD;
    if (v && !strcmp(v, "reverse"))
        s.sched = SCHEDULE_REVERSE;
    else if (v && !strcmp(v, "random"))
        s.sched = SCHEDULE_RANDOM;
    else if (v && *v && strcmp(v, "forward"))
        fprintf(stderr, "cuda emulation: ignoring MTP_CUDA_EMU_SCHEDULE=%s (valid: forward, "
                        "reverse, random)\n", v);
    v = getenv("MTP_CUDA_EMU_SEED");
    s.seed = v && *v ? strtoull(v, nullptr, 0) : 0x5eed;
    v = getenv("MTP_CUDA_EMU_FILL");
    s.nan_fill = !(v && !strcmp(v, "zero"));
    if (v && *v && strcmp(v, "zero") && strcmp(v, "nan"))
        fprintf(stderr, "cuda emulation: ignoring MTP_CUDA_EMU_FILL=%s (valid: nan, zero)\n", v);
#if defined(__SANITIZE_ADDRESS__)
    size_t kb = 512; /* instrumented frames are several times larger */
#else
    size_t kb = 64;
#endif
    v = getenv("MTP_CUDA_EMU_STACK_KB");
    if (v && *v)
        kb = strtoull(v, nullptr, 10);
    if (kb < 16)
        kb = 16;
    s.stack_bytes = kb * 1024;
    static const char *names[] = {"forward", "reverse", "random"};
    fprintf(stderr,
            "cuda emulation: the CUDA backend runs EMULATED on the CPU (kernels/cuda_emu; "
            "schedule %s, seed %llu, fill %s); nothing measured here is a GPU figure\n",
            names[s.sched], (unsigned long long)s.seed, s.nan_fill ? "nan" : "zero");
    return s;
}

const settings &config(void)
{
    static const settings s = read_settings();
    return s;
}

/* --------------------------------------------------------------- errors */

static thread_local cudaError_t t_last_error = cudaSuccess;

cudaError_t set_error(cudaError_t err)
{
    if (err != cudaSuccess)
        t_last_error = err;
    return err;
}

void report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda emulation: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    va_end(ap);
}

/* --------------------------------------------------------------- memory */

namespace {
std::mutex g_mem_lock;
std::map<uintptr_t, size_t> g_allocs; /* base -> bytes */
std::set<cudaStream_t> g_streams;
std::map<const void *, size_t> g_smem_optin;
} // namespace

bool find_alloc(const void *p, size_t bytes, uintptr_t *base, size_t *size)
{
    std::lock_guard<std::mutex> lock(g_mem_lock);
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin())
        return false;
    --it;
    if (a >= it->first + (it->second ? it->second : 1))
        return false; /* P is in no allocation: *BASE stays as it was */
    *base = it->first;
    *size = it->second;
    return a + bytes <= it->first + it->second;
}

bool is_device(const void *p)
{
    uintptr_t base = 0;
    size_t size = 0;
    find_alloc(p, 0, &base, &size);
    return base != 0;
}

bool stream_valid(cudaStream_t stream)
{
    if (!stream)
        return true;
    std::lock_guard<std::mutex> lock(g_mem_lock);
    return g_streams.count(stream) != 0;
}

size_t max_dyn_smem(const void *fn)
{
    std::lock_guard<std::mutex> lock(g_mem_lock);
    auto it = g_smem_optin.find(fn);
    return it == g_smem_optin.end() ? 0 : it->second;
}

cudaError_t set_func_attribute(const void *fn, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > SMEM_MAX) {
        report("cudaFuncSetAttribute: attribute %d value %d is not supported (dynamic shared "
               "memory at most %d bytes)",
               (int)attr, value, (int)SMEM_MAX);
        return set_error(cudaErrorInvalidValue);
    }
    std::lock_guard<std::mutex> lock(g_mem_lock);
    g_smem_optin[fn] = (size_t)value;
    return cudaSuccess;
}

/* Whether [P, P+BYTES) lies in one device allocation; otherwise report it for
 * WHAT (the API call and operand) and return false. */
static bool check_device_range(const char *what, const void *p, size_t bytes)
{
    uintptr_t base = 0;
    size_t size = 0;
    if (find_alloc(p, bytes, &base, &size))
        return true;
    if (base)
        report("%s: [%p, +%zu bytes) runs past its device allocation [%p, +%zu bytes) by %zu "
               "bytes",
               what, p, bytes, (void *)base, size, (size_t)((uintptr_t)p + bytes - base - size));
    else
        report("%s: %p (+%zu bytes) is not device memory (no cudaMalloc returned it)", what, p,
               bytes);
    return false;
}

static bool check_host(const char *what, const void *p)
{
    if (!is_device(p))
        return true;
    report("%s: %p is device memory, but the copy kind says host memory", what, p);
    return false;
}

} /* namespace mtp_emu */

using namespace mtp_emu;

static cudaError_t device_alloc(void **p, size_t bytes, const char *what)
{
    config();
    if (!p)
        return set_error(cudaErrorInvalidValue);
    void *q = nullptr;
    if (posix_memalign(&q, 256, bytes ? bytes : 1)) {
        report("%s: out of memory for %zu bytes", what, bytes);
        *p = nullptr;
        return set_error(cudaErrorMemoryAllocation);
    }
    memset(q, config().nan_fill ? 0xff : 0, bytes); /* NaN bytes: unwritten reads show up */
    {
        std::lock_guard<std::mutex> lock(g_mem_lock);
        g_allocs[(uintptr_t)q] = bytes;
    }
    *p = q;
    return cudaSuccess;
}

static cudaError_t device_free(void *p, const char *what)
{
    if (!p)
        return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(g_mem_lock);
        auto it = g_allocs.find((uintptr_t)p);
        if (it == g_allocs.end()) {
            report("%s: %p is not the start of a live device allocation (double free, or a "
                   "pointer into one)",
                   what, p);
            return set_error(cudaErrorInvalidValue);
        }
        g_allocs.erase(it);
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) { return device_alloc(p, bytes, "cudaMalloc"); }
cudaError_t cudaFree(void *p) { return device_free(p, "cudaFree"); }

cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t stream)
{
    if (!stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    return device_alloc(p, bytes, "cudaMallocAsync");
}

cudaError_t cudaFreeAsync(void *p, cudaStream_t stream)
{
    if (!stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    return device_free(p, "cudaFreeAsync");
}

static cudaError_t copy_checked(const char *api, void *dst, const void *src, size_t bytes,
                                cudaMemcpyKind kind)
{
    char what[96];
    if (bytes == 0)
        return cudaSuccess;
    if (kind == cudaMemcpyDefault)
        kind = is_device(src) ? (is_device(dst) ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                              : (is_device(dst) ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    snprintf(what, sizeof what, "%s source", api);
    bool ok = src_dev ? check_device_range(what, src, bytes) : check_host(what, src);
    snprintf(what, sizeof what, "%s destination", api);
    ok = (dst_dev ? check_device_range(what, dst, bytes) : check_host(what, dst)) && ok;
    if (!ok)
        return set_error(cudaErrorInvalidValue);
    if (src_dev != dst_dev)
        g_host_copies++;
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    return copy_checked("cudaMemcpy", dst, src, bytes, kind);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    if (!stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    return copy_checked("cudaMemcpyAsync", dst, src, bytes, kind);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream)
{
    if (!stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    if (bytes == 0)
        return cudaSuccess;
    if (!check_device_range("cudaMemsetAsync", p, bytes))
        return set_error(cudaErrorInvalidValue);
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) { return cudaMemsetAsync(p, value, bytes, 0); }

/* ------------------------------------------------------ streams, events */

struct mtp_emu_stream {
    unsigned flags;
};
struct mtp_emu_event {
    double t_ms; /* host time when recorded: not a GPU time */
};

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags)
{
    config();
    *stream = new mtp_emu_stream{flags};
    std::lock_guard<std::mutex> lock(g_mem_lock);
    g_streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    {
        std::lock_guard<std::mutex> lock(g_mem_lock);
        if (!stream || !g_streams.erase(stream)) {
            report("cudaStreamDestroy: %p is not a live stream", (void *)stream);
            return set_error(cudaErrorInvalidResourceHandle);
        }
    }
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    /* Work ran when it was enqueued; an error of an earlier launch shows here
     * as it would on a GPU. */
    if (!stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    g_syncs++;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    g_syncs++;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    *event = new mtp_emu_event{0.0};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    if (!event || !stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    event->t_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    g_syncs++;
    return event ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start || !end)
        return set_error(cudaErrorInvalidResourceHandle);
    *ms = (float)(end->t_ms - start->t_ms);
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags)
{
    (void)flags;
    if (!event || !stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle);
    return cudaSuccess;
}

/* ---------------------------------------------------------------- device */

cudaError_t cudaGetDeviceCount(int *count)
{
    config();
    *count = 1;
    return cudaSuccess;
}

static thread_local int t_device = 0;

cudaError_t cudaSetDevice(int device)
{
    config();
    if (device != 0) {
        report("cudaSetDevice(%d): the emulation has one device, 0", device);
        return set_error(cudaErrorInvalidDevice);
    }
    t_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = t_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return set_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "emulated CUDA device on the CPU (not a GPU)");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->warpSize = 32; // NOLINT
    prop->maxThreadsPerBlock = 1024;
    prop->totalGlobalMem = (size_t)16 << 30;
    prop->sharedMemPerBlock = SMEM_DEFAULT;
    prop->sharedMemPerBlockOptin = SMEM_MAX;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return t_last_error; }

const char *cudaGetErrorName(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "no error (emulated)";
    case cudaErrorInvalidValue: return "invalid argument (emulated; the detail is printed above)";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulated)";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (emulated)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (emulated)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle (emulated)";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch (emulated)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated)";
    }
    return "unknown error (emulated)";
}

void mtp_emu_counters_get(struct mtp_emu_counters *out)
{
    out->syncs = mtp_emu::g_syncs.load();
    out->host_copies = mtp_emu::g_host_copies.load();
}
