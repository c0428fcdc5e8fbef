/*
 * emu_cublas.cpp - the cuBLAS calls of the CUDA backend, emulated: a handle
 * with its stream and workspace, and cublasGemmEx as a reference GEMM.
 *
 * cublasGemmEx first checks what cuBLAS would reject (CUBLAS_STATUS_INVALID_
 * VALUE / NOT_SUPPORTED) or what would read the wrong elements without any
 * error: m, n, k >= 0; lda >= rows of A as stored (m for OP_N, k for OP_T),
 * ldb likewise (k or n), ldc >= m; A and B of one type (F32 or BF16), C F32,
 * compute F32; every operand's last element inside the device allocation that
 * holds its first. Each failure is printed with the argument's name. Then
 * C = alpha op(A) op(B) + beta C, summed in double and rounded once (beta 0:
 * C is not read, as in BLAS, so NaN bytes in fresh memory do not leak in).
 */
#include "emu_internal.h"
#include "cublas_v2.h"

#include <stdio.h> /* defines: snprintf */

struct mtp_emu_cublas {
    cudaStream_t stream;
    void *workspace;
    size_t workspace_bytes;
    cublasMath_t math;
};

using namespace mtp_emu;

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    config();
    *handle = new mtp_emu_cublas{nullptr, nullptr, 0, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream_valid(stream))
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *ws, size_t bytes)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    uintptr_t base;
    size_t size;
    if (bytes && !find_alloc(ws, bytes, &base, &size)) {
        report("cublasSetWorkspace: %zu bytes at %p are not inside one device allocation",
               bytes, ws);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    handle->workspace = ws;
    handle->workspace_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully (emulated)";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized (emulated)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "resource allocation failed (emulated)";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument "
                                             "(emulated; the detail is printed above)";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported "
                                             "(emulated; the detail is printed above)";
    }
    return "unknown cuBLAS status (emulated)";
}

namespace {

size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

double load(cudaDataType_t t, const void *p, size_t i)
{
    if (t == CUDA_R_32F)
        return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return __uint_as_float((uint32_t)h << 16); /* BF16 */
}

/* Operand NAME [rows x cols] column-major with leading dimension LD: its
 * elements must lie inside one device allocation. */
bool check_operand(const char *name, const void *p, cudaDataType_t t, int rows, int cols, int ld)
{
    if (rows == 0 || cols == 0)
        return true;
    size_t last = (size_t)(cols - 1) * (size_t)ld + (size_t)(rows - 1);
    size_t bytes = (last + 1) * type_size(t);
    uintptr_t base = 0;
    size_t size = 0;
    if (find_alloc(p, bytes, &base, &size))
        return true;
    if (base)
        report("cublasGemmEx: %s [%d x %d, ld %d] needs %zu bytes from %p, past the end of its "
               "device allocation [%p, +%zu bytes)",
               name, rows, cols, ld, bytes, p, (void *)base, size);
    else
        report("cublasGemmEx: %s at %p is not device memory", name, p);
    return false;
}

cublasStatus_t invalid(const char *fmt, int a, int b)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a, b);
    report("cublasGemmEx: %s", msg);
    return CUBLAS_STATUS_INVALID_VALUE;
}

} // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (transa == CUBLAS_OP_C || transb == CUBLAS_OP_C || (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) ||
        (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T))
        return invalid("transa %d / transb %d: only OP_N and OP_T are emulated", transa, transb);
    if (m < 0 || n < 0)
        return invalid("m = %d, n = %d: negative size", m, n);
    if (k < 0)
        return invalid("k = %d: negative size (m = %d)", k, m);
    /* A as stored: [m x k] (N) or [k x m] (T); B: [k x n] (N) or [n x k] (T). */
    int a_rows = transa == CUBLAS_OP_N ? m : k, a_cols = transa == CUBLAS_OP_N ? k : m;
    int b_rows = transb == CUBLAS_OP_N ? k : n, b_cols = transb == CUBLAS_OP_N ? n : k;
    if (lda < (a_rows > 1 ? a_rows : 1))
        return invalid("lda = %d is less than the %d rows of A as stored", lda, a_rows);
    if (ldb < (b_rows > 1 ? b_rows : 1))
        return invalid("ldb = %d is less than the %d rows of B as stored", ldb, b_rows);
    if (ldc < (m > 1 ? m : 1))
        return invalid("ldc = %d is less than m = %d", ldc, m);
    if (Atype != Btype || (Atype != CUDA_R_32F && Atype != CUDA_R_16BF)) {
        report("cublasGemmEx: Atype %d / Btype %d: the emulation takes F32 x F32 or BF16 x BF16",
               (int)Atype, (int)Btype);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (Ctype != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F) {
        report("cublasGemmEx: Ctype %d / computeType %d: the emulation takes F32 output and "
               "CUBLAS_COMPUTE_32F",
               (int)Ctype, (int)computeType);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!check_operand("A", A, Atype, a_rows, a_cols, lda) ||
        !check_operand("B", B, Btype, b_rows, b_cols, ldb) ||
        !check_operand("C", C, Ctype, m, n, ldc))
        return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    float *c = (float *)C;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                size_t ai = transa == CUBLAS_OP_N ? (size_t)p * lda + i : (size_t)i * lda + p;
                size_t bi = transb == CUBLAS_OP_N ? (size_t)j * ldb + p : (size_t)p * ldb + j;
                acc += load(Atype, A, ai) * load(Btype, B, bi);
            }
            float *ci = c + (size_t)j * ldc + i;
            double v = (double)al * acc;
            if (be != 0.0f)
                v += (double)be * *ci;
            *ci = (float)v;
        }
    return CUBLAS_STATUS_SUCCESS;
}
