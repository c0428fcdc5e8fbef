/*
 * emu_selftest.cu - the emulation layer's own tests (ctest: test_cuda_emu_selftest,
 * built with -DMTP_CUDA_EMU=ON only). Each case runs in a child process of
 * this program (its schedule and fill come from the environment, and a
 * divergence aborts), and the parent checks the child's exit and output:
 *   - a kernel without its barrier gives different results under the forward
 *     and reverse schedules; with the barrier, the same;
 *   - __syncthreads at two lines, a shuffle some lanes skip, a barrier that
 *     some threads never reach: each stops with the kernel and thread;
 *   - a copy past its allocation, a launch with > 48 KiB of dynamic shared
 *     memory without the opt-in, a misaligned vector load: each an error;
 *   - fresh device memory and dynamic shared memory read as NaN;
 *   - warp sums and a block reduction give the right value under every schedule.
 *   ./test_cuda_emu_selftest            (all cases; exit 0 when all pass)
 */
#include "kernels/cuda/cuda_internal.cuh"

#include <stdio.h>    /* defines: printf, fdopen */
#include <stdlib.h>   /* defines: setenv, exit */
#include <string.h>   /* defines: strstr, strcmp */
#include <sys/wait.h> /* defines: waitpid */
#include <unistd.h>   /* defines: fork, pipe, dup2 */

#include <string>

/* ------------------------------------------------------------- kernels */

/* out[i] = s[(i+1) % n] after every thread wrote s[i] = i + 1: needs a barrier. */
__global__ void neighbour_kernel(float *out, int with_barrier)
{
    extern __shared__ float smem[];
    int i = threadIdx.x, n = blockDim.x;
    smem[i] = (float)(i + 1);
    if (with_barrier)
        __syncthreads();
    out[i] = smem[(i + 1) % n];
}

__global__ void two_barriers_kernel(float *out)
{
    if (threadIdx.x < 16)
        __syncthreads();
    else
        __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void half_shuffle_kernel(float *out)
{
    float v = (float)threadIdx.x;
    if (threadIdx.x < 16)
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

__global__ void early_exit_kernel(float *out)
{
    if (threadIdx.x == 5)
        return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void misaligned_kernel(const float *x, float *out)
{
    float4 v = __ldg(reinterpret_cast<const float4 *>(x + 1));
    out[threadIdx.x] = v.x;
}

__global__ void read_smem_kernel(float *out)
{
    extern __shared__ float smem[];
    out[threadIdx.x] = smem[threadIdx.x];
}

/* Block sum of 1..n through the backend's own reduction helpers. */
__global__ void block_sum_kernel(float *out)
{
    __shared__ float red[32];
    float v = mtp_cuda_block_sum((float)(threadIdx.x + 1), red);
    float m = mtp_cuda_block_max((float)threadIdx.x, red);
    if (threadIdx.x == 0) {
        out[blockIdx.x * 2] = v;
        out[blockIdx.x * 2 + 1] = m;
    }
}

/* ------------------------------------------------------- child cases */

static float *dev_floats(int n)
{
    void *p = nullptr;
    if (cudaMalloc(&p, (size_t)n * sizeof(float)) != cudaSuccess)
        exit(3);
    return (float *)p;
}

static void print_floats(const float *d, int n)
{
    float h[1024];
    if (cudaMemcpy(h, d, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess)
        exit(4);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum = sum * 1.0001 + (h[i] != h[i] ? 1e6 : h[i]); /* order-sensitive, NaN visible */
    printf("checksum %.9g\n", sum);
}

static int child(const char *name)
{
    float *out = dev_floats(1024);
    if (!strcmp(name, "race") || !strcmp(name, "barrier")) {
        MTP_CUDA_LAUNCH(1, 64, 64 * sizeof(float), 0, neighbour_kernel)(out, !strcmp(name, "barrier"));
        print_floats(out, 64);
    } else if (!strcmp(name, "two_barriers")) {
        MTP_CUDA_LAUNCH(1, 32, 0, 0, two_barriers_kernel)(out);
    } else if (!strcmp(name, "half_shuffle")) {
        MTP_CUDA_LAUNCH(1, 32, 0, 0, half_shuffle_kernel)(out);
    } else if (!strcmp(name, "early_exit")) {
        MTP_CUDA_LAUNCH(1, 64, 0, 0, early_exit_kernel)(out);
    } else if (!strcmp(name, "misaligned")) {
        MTP_CUDA_LAUNCH(1, 32, 0, 0, misaligned_kernel)(out, out);
    } else if (!strcmp(name, "copy_past_end")) {
        float h[8] = {0};
        cudaError_t e = cudaMemcpy(out + 1020, h, sizeof h, cudaMemcpyHostToDevice);
        printf("copy: %s\n", cudaGetErrorName(e));
    } else if (!strcmp(name, "smem_optin")) {
        MTP_CUDA_LAUNCH(1, 32, 60 * 1024, 0, read_smem_kernel)(out);
        printf("without opt-in: %s\n", cudaGetErrorName(cudaGetLastError()));
        cudaFuncSetAttribute(read_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             60 * 1024);
        MTP_CUDA_LAUNCH(1, 32, 60 * 1024, 0, read_smem_kernel)(out);
        printf("with opt-in: %s\n", cudaGetErrorName(cudaGetLastError()));
    } else if (!strcmp(name, "nan_fill")) {
        float h[2];
        cudaMemcpy(h, out + 100, sizeof h, cudaMemcpyDeviceToHost);
        MTP_CUDA_LAUNCH(1, 32, 32 * sizeof(float), 0, read_smem_kernel)(out);
        float s;
        cudaMemcpy(&s, out + 7, sizeof s, cudaMemcpyDeviceToHost);
        printf("fresh %s, shared %s\n", h[0] != h[0] ? "nan" : "number", s != s ? "nan" : "number");
    } else if (!strcmp(name, "reduce")) {
        MTP_CUDA_LAUNCH(3, 256, 0, 0, block_sum_kernel)(out);
        float h[6];
        cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost);
        printf("sum %g max %g\n", h[4], h[5]);
    } else {
        fprintf(stderr, "unknown case %s\n", name);
        return 2;
    }
    cudaFree(out);
    return 0;
}

/* ------------------------------------------------------------- parent */

/* Run case NAME with SCHEDULE in a child; its stdout+stderr into OUT.
 * Returns the wait status. */
static int run_child(const char *self, const char *name, const char *schedule, std::string *out)
{
    int fd[2];
    if (pipe(fd))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        setenv("MTP_CUDA_EMU_SCHEDULE", schedule, 1);
        execl(self, self, name, (char *)nullptr);
        _exit(127);
    }
    close(fd[1]);
    char buf[4096];
    ssize_t k;
    out->clear();
    while ((k = read(fd[0], buf, sizeof buf)) > 0)
        out->append(buf, (size_t)k);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static int failures;

static void expect(bool ok, const char *what, const std::string &output)
{
    printf("%s %s\n", ok ? "ok    " : "FAILED", what);
    if (!ok) {
        printf("  output:\n%s\n", output.c_str());
        failures++;
    }
}

static bool has(const std::string &s, const char *needle) { return s.find(needle) != std::string::npos; }

/* The checksum line of a child's output. */
static std::string checksum(const std::string &s)
{
    size_t p = s.find("checksum ");
    return p == std::string::npos ? "" : s.substr(p, s.find('\n', p) - p);
}

int main(int argc, char **argv)
{
    if (argc == 2)
        return child(argv[1]);
    const char *self = argv[0];
    std::string a, b;
    int st;

    run_child(self, "race", "forward", &a);
    run_child(self, "race", "reverse", &b);
    expect(!checksum(a).empty() && checksum(a) != checksum(b),
           "a missing barrier changes the results between forward and reverse schedules", a + b);
    run_child(self, "barrier", "forward", &a);
    run_child(self, "barrier", "random", &b);
    expect(!checksum(a).empty() && checksum(a) == checksum(b),
           "with the barrier, forward and random schedules agree", a + b);

    st = run_child(self, "two_barriers", "forward", &a);
    expect(WIFSIGNALED(st) && has(a, "divergence: __syncthreads at") &&
               has(a, "two_barriers_kernel") && has(a, "thread (16,0,0)"),
           "__syncthreads at two lines is divergence, with kernel and thread", a);
    st = run_child(self, "half_shuffle", "reverse", &a);
    expect(WIFSIGNALED(st) && has(a, "half_shuffle_kernel") && has(a, "__shfl_xor_sync") &&
               has(a, "divergence"),
           "a shuffle that half the warp skips is divergence", a);
    st = run_child(self, "early_exit", "forward", &a);
    expect(WIFSIGNALED(st) && has(a, "deadlock") && has(a, "1 have exited") &&
               has(a, "early_exit_kernel"),
           "a barrier a thread never reaches is a deadlock, reported", a);
    st = run_child(self, "misaligned", "forward", &a);
    expect(WIFSIGNALED(st) && has(a, "misaligned address"), "a misaligned float4 load faults", a);

    st = run_child(self, "copy_past_end", "forward", &a);
    expect(WIFEXITED(st) && has(a, "runs past its device allocation") &&
               has(a, "copy: cudaErrorInvalidValue"),
           "a copy past the end of its allocation is refused with the sizes", a);
    st = run_child(self, "smem_optin", "forward", &a);
    expect(WIFEXITED(st) && has(a, "without opt-in: cudaErrorLaunchOutOfResources") &&
               has(a, "with opt-in: cudaSuccess"),
           "more than 48 KiB of dynamic shared memory needs cudaFuncSetAttribute", a);
    st = run_child(self, "nan_fill", "forward", &a);
    expect(WIFEXITED(st) && has(a, "fresh nan, shared nan"),
           "fresh device memory and dynamic shared memory read as NaN", a);
    for (const char *s : {"forward", "reverse", "random"}) {
        st = run_child(self, "reduce", s, &a);
        expect(WIFEXITED(st) && WEXITSTATUS(st) == 0 && has(a, "sum 32896 max 255") &&
                   has(a, "EMULATED"),
               "block sum and max over 256 threads (each schedule), output says emulated", a);
    }
    printf("%s\n", failures ? "emu selftest: FAILED" : "emu selftest: all passed");
    return failures ? 1 : 0;
}
