/*
 * cuda_backend.cu - the CUDA backend object: context (device, stream, cuBLAS
 * handle and workspace), vtable, memory ops, weight upload, error reporting.
 *
 * Memory: alloc is cudaMallocAsync + cudaMemsetAsync(0) on the context's
 * stream, release cudaFreeAsync; copy is a stream-ordered cudaMemcpyAsync;
 * upload and download are cudaMemcpyAsync then a stream synchronise, so the
 * host buffer is free (upload) or complete (download) when they return. synchronize waits for the stream (the
 * decoding layer brackets its phase timers with it).
 *
 * Weights: prepare_weight uploads each parameter once, in the device type of
 * mtp_cuda_weight_type() (cuda_internal.cuh): BF16 and FP8 matrices as BF16
 * (FP8 dequantised on the host: fp8 * scale_inv in fp32, rounded to BF16),
 * F32/F16 matrices and 1-D parameters as F32. The device pointer goes into
 * w->device; the context owns the allocation and frees it. One CUDA backend
 * per model at a time: a second context preparing the same model overwrites
 * w->device.
 *
 * Device: the context binds DEVICE with cudaSetDevice when created; one
 * context per host thread and device.
 */
#include "cuda_internal.cuh"

#include <stdio.h>  /* defines: fprintf */
#include <stdlib.h> /* defines: abort, getenv, free */
#include <string.h> /* defines: strstr, strcmp, memcpy */

/* ----------------------------------------------------------------- errors */

static const char *hint_for(const char *msg)
{
    if (strstr(msg, "out of memory"))
        return "the model, caches (max_positions) or batch (max_batch) do not fit in device "
               "memory; lower them or use a larger GPU";
    if (strstr(msg, "illegal") || strstr(msg, "misaligned") || strstr(msg, "unspecified launch"))
        return "a kernel faulted; rerun under compute-sanitizer, with CUDA_LAUNCH_BLOCKING=1 to "
               "localise it";
    if (strstr(msg, "driver") || strstr(msg, "no CUDA-capable"))
        return "check nvidia-smi and that the driver supports this CUDA toolkit";
    if (strstr(msg, "no kernel image") || strstr(msg, "invalid device function"))
        return "rebuild for this GPU: -DCMAKE_CUDA_ARCHITECTURES=<sm> (default 90)";
    return "asynchronous errors are reported by a later call; set CUDA_LAUNCH_BLOCKING=1 to "
           "find the kernel";
}

void mtp_cuda_die(const char *what, const char *msg, const char *stmt, const char *func,
                  const char *file, int line)
{
    fprintf(stderr, "%s: %s\n  in: %s\n  at: %s (%s:%d)\n  HINT: %s\n", what, msg, stmt, func,
            file, line, hint_for(msg));
    fflush(stderr);
    abort();
}

/* ---------------------------------------------------------------- scratch */

void *mtp_cuda_scratch(struct mtp_cuda_ctx *ctx, enum mtp_cuda_scratch_slot slot, size_t bytes)
{
    MTP_CHECK(slot >= 0 && slot < MTP_CUDA_SCRATCH_COUNT);
    if (ctx->scratch_cap[slot] < bytes) {
        if (ctx->scratch[slot])
            CUDA_CHECK(cudaFreeAsync(ctx->scratch[slot], ctx->stream));
        size_t cap = bytes + bytes / 2 + 256;
        CUDA_CHECK(cudaMallocAsync(&ctx->scratch[slot], cap, ctx->stream));
        ctx->scratch_cap[slot] = cap;
    }
    return ctx->scratch[slot];
}

void *mtp_cuda_host_scratch(struct mtp_cuda_ctx *ctx, enum mtp_cuda_host_slot slot, size_t bytes)
{
    MTP_CHECK(slot >= 0 && slot < MTP_CUDA_HOST_COUNT);
    if (ctx->host_cap[slot] < bytes) {
        free(ctx->host[slot]);
        size_t cap = bytes + bytes / 2 + 256;
        ctx->host[slot] = mtp_xmalloc(cap);
        ctx->host_cap[slot] = cap;
    }
    return ctx->host[slot];
}

/* ------------------------------------------------------------ memory ops */

static void cuda_free(void *vctx)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (!ctx)
        return;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);
    for (int i = 0; i < MTP_CUDA_SCRATCH_COUNT; i++)
        if (ctx->scratch[i])
            cudaFreeAsync(ctx->scratch[i], ctx->stream);
    for (int i = 0; i < MTP_CUDA_HOST_COUNT; i++)
        free(ctx->host[i]);
    mtp_cuda_expert_tables_free(ctx);
    for (int i = 0; i < ctx->n_weights; i++)
        cudaFree(ctx->weights[i]);
    free(ctx->weights);
    if (ctx->cublas)
        cublasDestroy(ctx->cublas);
    if (ctx->cublas_ws)
        cudaFree(ctx->cublas_ws);
    cudaStreamSynchronize(ctx->stream);
    cudaStreamDestroy(ctx->stream);
    free(ctx);
}

static void *cuda_alloc(void *vctx, size_t bytes)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    void *p = NULL;
    size_t size = bytes ? bytes : 16;
    CUDA_CHECK(cudaMallocAsync(&p, size, ctx->stream));
    CUDA_CHECK(cudaMemsetAsync(p, 0, size, ctx->stream));
    return p;
}

static void cuda_release(void *vctx, void *p)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (p)
        CUDA_CHECK(cudaFreeAsync(p, ctx->stream));
}

/* Synchronised: callers free or reuse SRC_HOST as soon as this returns (the
 * engine's NaN poisoning does), and CUDA only says a pageable copy "might be"
 * synchronous. The engine uploads at most once per forward (MTP hidden input),
 * when the queue is nearly empty, so the wait costs microseconds. */
static void cuda_upload(void *vctx, void *dst, const void *src_host, size_t bytes)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (!bytes)
        return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

static void cuda_download(void *vctx, void *dst_host, const void *src, size_t bytes)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

static void cuda_copy(void *vctx, void *dst, const void *src, size_t bytes)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
}

static void cuda_synchronize(void *vctx)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

/* ---------------------------------------------------------------- weights */

const void *mtp_cuda_weight_ptr(const struct mtp_weight *w)
{
    if (!w->device) {
        fprintf(stderr, "cuda backend: tensor %s was used before prepare_weight\n",
                w->name ? w->name : "(unnamed)");
        MTP_CHECK(w->device != NULL);
    }
    return w->device;
}

static void track_weight(struct mtp_cuda_ctx *ctx, void *p)
{
    if (ctx->n_weights == ctx->cap_weights) {
        ctx->cap_weights = ctx->cap_weights ? 2 * ctx->cap_weights : 256;
        ctx->weights =
            (void **)mtp_xrealloc(ctx->weights, (size_t)ctx->cap_weights * sizeof(void *));
    }
    ctx->weights[ctx->n_weights++] = p;
}

/* W converted to its device type in host memory (HOST_OUT, malloc'd), or NULL
 * when the stored bytes can be uploaded as they are. */
static void *convert_weight(const struct mtp_weight *w, enum mtp_cuda_wtype wt, size_t count)
{
    if (wt == MTP_CUDA_W_F32 && w->dtype == MTP_DTYPE_F32)
        return NULL;
    if (wt == MTP_CUDA_W_BF16 && w->dtype == MTP_DTYPE_BF16)
        return NULL;
    if (wt == MTP_CUDA_W_F32) {
        float *out = (float *)mtp_xmalloc(count * sizeof(float));
        for (size_t i = 0; i < count; i++)
            out[i] = mtp_dtype_load(w->dtype, w->data, i); /* exact for BF16, F16, FP8 vectors */
        if (w->dtype == MTP_DTYPE_F8_E4M3) /* a 1-D FP8 tensor: scale it like a row */
            for (size_t i = 0; i < count; i++) {
                int nbc = (w->cols + w->block_cols - 1) / w->block_cols;
                int r = (int)(i / (size_t)w->cols), c = (int)(i % (size_t)w->cols);
                out[i] *= w->scale_inv[(size_t)(r / w->block_rows) * nbc + c / w->block_cols];
            }
        return out;
    }
    /* BF16 from FP8: fp8 * scale in fp32 (exactly what the CPU decodes), then one
     * round to nearest even. */
    MTP_CHECK(w->dtype == MTP_DTYPE_F8_E4M3);
    uint16_t *out = (uint16_t *)mtp_xmalloc(count * sizeof(uint16_t));
    const uint8_t *src = (const uint8_t *)w->data;
    int nbc = (w->cols + w->block_cols - 1) / w->block_cols;
    for (int r = 0; r < w->rows; r++) {
        const float *sc = w->scale_inv + (size_t)(r / w->block_rows) * nbc;
        for (int c = 0; c < w->cols; c++) {
            size_t i = (size_t)r * w->cols + c;
            out[i] = mtp_f32_to_bf16(mtp_fp8_e4m3_to_f32(src[i]) * sc[c / w->block_cols]);
        }
    }
    return out;
}

static int cuda_prepare_weight(void *vctx, struct mtp_weight *w)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    const char *name = w->name ? w->name : "(unnamed)";
    if (mtp_weight_validate("cuda", w))
        return MTP_ERR;
    if (!w->data)
        return MTP_OK; /* an absent optional tensor (score_bias): nothing to upload */
    size_t rows = w->rows > 0 ? (size_t)w->rows : 1;
    size_t count = rows * (size_t)w->cols;
    enum mtp_cuda_wtype wt = mtp_cuda_weight_type(w);
    size_t bytes = count * (wt == MTP_CUDA_W_F32 ? sizeof(float) : sizeof(uint16_t));
    void *host = convert_weight(w, wt, count);
    void *dev = NULL;
    cudaError_t err = cudaMalloc(&dev, bytes ? bytes : 16);
    if (err != cudaSuccess) {
        free(host);
        cudaGetLastError();
        return mtp_error_set("cuda backend: cannot allocate %zu bytes for tensor %s: %s", bytes,
                             name, cudaGetErrorString(err));
    }
    /* On the context's stream, so later kernels are ordered after the copy; the
     * synchronise makes the host buffer free to go. */
    if (bytes) {
        CUDA_CHECK(cudaMemcpyAsync(dev, host ? host : w->data, bytes, cudaMemcpyHostToDevice,
                                   ctx->stream));
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    }
    free(host);
    track_weight(ctx, dev);
    w->device = dev;
    return MTP_OK;
}

/* ------------------------------------------------------------- small ops */

__global__ void add_kernel(float *y, const float *x, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t step = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += step)
        y[i] = __fadd_rn(y[i], x[i]);
}

extern "C" void mtp_cuda_add(void *vctx, float *y, const float *x, size_t n)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n == 0)
        return;
    unsigned blocks = mtp_cuda_blocks(n, 256);
    if (blocks > 65535u * 4)
        blocks = 65535u * 4;
    MTP_CUDA_LAUNCH(blocks, 256, 0, ctx->stream, add_kernel)(y, x, n);
    CUDA_LAUNCH_CHECK();
}

/* Token ids travel inside the kernel parameters (copied at launch, so the
 * caller's array is free when embed returns) up to EMBED_INLINE of them; longer
 * prefill chunks go through a device buffer and a synchronised copy. */
enum { EMBED_INLINE = 512 };
struct embed_tokens {
    int32_t id[EMBED_INLINE];
};

/* out[t, c] = table[token t, c] as float. */
template <typename WT>
__global__ void embed_kernel(const WT *table, struct embed_tokens inl, const int32_t *tokens,
                             int cols, float *out)
{
    int t = blockIdx.y;
    int tok = tokens ? tokens[t] : inl.id[t];
    const WT *row = table + (size_t)tok * cols;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
        out[(size_t)t * cols + c] = mtp_cuda_wload(row, (size_t)c);
}

extern "C" void mtp_cuda_embed(void *vctx, const struct mtp_weight *table, const int32_t *tokens,
                               int n, float *out)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    if (n <= 0)
        return;
    for (int t = 0; t < n; t++)
        MTP_CHECK(tokens[t] >= 0 && tokens[t] < table->rows);
    MTP_CHECK(n <= 65535);
    struct embed_tokens inl;
    int32_t *dtok = NULL;
    if (n <= EMBED_INLINE) {
        memcpy(inl.id, tokens, (size_t)n * sizeof(int32_t));
    } else {
        dtok = (int32_t *)mtp_cuda_scratch(ctx, MTP_CUDA_SCRATCH_TOKENS,
                                           (size_t)n * sizeof(int32_t));
        CUDA_CHECK(cudaMemcpyAsync(dtok, tokens, (size_t)n * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, ctx->stream));
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    }
    dim3 grid(mtp_cuda_blocks((size_t)table->cols, 256), (unsigned)n);
    const void *p = mtp_cuda_weight_ptr(table);
    if (mtp_cuda_weight_type(table) == MTP_CUDA_W_F32)
        MTP_CUDA_LAUNCH(grid, 256, 0, ctx->stream, embed_kernel<float>)(
            (const float *)p, inl, dtok, table->cols, out);
    else
        MTP_CUDA_LAUNCH(grid, 256, 0, ctx->stream, embed_kernel<__nv_bfloat16>)(
            (const __nv_bfloat16 *)p, inl, dtok, table->cols, out);
    CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------------ vtable */

/* AUTO and CUSTOM keep every forward outside a prefill on the GEMV, so any n
 * is invariant; forced cuBLAS is a measurement of non-invariance: no limit
 * either (0). */
static int cuda_max_invariant_tokens(void *vctx)
{
    (void)vctx;
    return 0;
}

/* Only mtp_engine_prefill calls this (backend.h): cuBLAS for its long chunks. */
static void cuda_set_prefill(void *vctx, int on)
{
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)vctx;
    ctx->prefill = on;
}

static const struct mtp_backend_i cuda_iface = {
    /* .name = */ "cuda",
    /* .free = */ cuda_free,
    /* .alloc = */ cuda_alloc,
    /* .release = */ cuda_release,
    /* .upload = */ cuda_upload,
    /* .download = */ cuda_download,
    /* .copy = */ cuda_copy,
    /* .synchronize = */ cuda_synchronize,
    /* .prepare_weight = */ cuda_prepare_weight,
    /* .embed = */ mtp_cuda_embed,
    /* .matmul = */ mtp_cuda_matmul,
    /* .rmsnorm = */ mtp_cuda_rmsnorm,
    /* .rope = */ mtp_cuda_rope,
    /* .mla_attention = */ mtp_cuda_mla_attention,
    /* .mla_tree_attention = */ mtp_cuda_mla_tree_attention,
    /* .route = */ mtp_cuda_route,
    /* .moe_ffn = */ mtp_cuda_moe_ffn,
    /* .ffn = */ mtp_cuda_ffn,
    /* .add = */ mtp_cuda_add,
    /* .max_invariant_tokens = */ cuda_max_invariant_tokens,
    /* .set_prefill = */ cuda_set_prefill,
};

static enum mtp_cuda_matmul_mode matmul_mode_from_env(void)
{
    const char *s = getenv("MTP_CUDA_MATMUL");
    if (!s || !*s || !strcmp(s, "auto"))
        return MTP_CUDA_MATMUL_AUTO;
    if (!strcmp(s, "custom"))
        return MTP_CUDA_MATMUL_CUSTOM;
    if (!strcmp(s, "cublas"))
        return MTP_CUDA_MATMUL_CUBLAS;
    fprintf(stderr, "cuda backend: ignoring MTP_CUDA_MATMUL=%s (valid: auto, custom, cublas)\n", s);
    return MTP_CUDA_MATMUL_AUTO;
}

enum { CUBLAS_WORKSPACE_BYTES = 32 << 20 };

/* The handles of a new context; MTP_ERR with a message when one fails. */
static int ctx_init(struct mtp_cuda_ctx *ctx, int device)
{
    cudaError_t err;
    cudaDeviceProp prop;
    ctx->device = device;
    if ((err = cudaSetDevice(device)) != cudaSuccess ||
        (err = cudaGetDeviceProperties(&prop, device)) != cudaSuccess ||
        (err = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (err = cudaMalloc(&ctx->cublas_ws, CUBLAS_WORKSPACE_BYTES)) != cudaSuccess) {
        cudaGetLastError();
        return mtp_error_set("cuda backend: cannot initialise device %d: %s", device,
                             cudaGetErrorString(err));
    }
    ctx->sm_count = prop.multiProcessorCount;
    ctx->cublas_ws_bytes = CUBLAS_WORKSPACE_BYTES;
    cublasStatus_t st;
    if ((st = cublasCreate(&ctx->cublas)) != CUBLAS_STATUS_SUCCESS ||
        (st = cublasSetStream(ctx->cublas, ctx->stream)) != CUBLAS_STATUS_SUCCESS ||
        (st = cublasSetWorkspace(ctx->cublas, ctx->cublas_ws, ctx->cublas_ws_bytes)) !=
            CUBLAS_STATUS_SUCCESS ||
        (st = cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
        return mtp_error_set("cuda backend: cuBLAS initialisation failed on device %d (%s): %s",
                             device, prop.name, cublasGetStatusString(st));
    ctx->matmul_mode = matmul_mode_from_env();
    return MTP_OK;
}

extern "C" int mtp_backend_cuda_create(int device, struct mtp_backend **out)
{
    *out = NULL;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError(); /* clear it: the process may go on without CUDA */
        return mtp_error_set("no CUDA device available: %s", cudaGetErrorString(err));
    }
    if (count == 0)
        return mtp_error_set("no CUDA device available: cudaGetDeviceCount found 0 devices");
    if (device < 0 || device >= count)
        return mtp_error_set("CUDA device %d does not exist (this machine has %d, 0..%d)", device,
                             count, count - 1);
    struct mtp_cuda_ctx *ctx = (struct mtp_cuda_ctx *)mtp_xcalloc(1, sizeof *ctx);
    if (ctx_init(ctx, device)) {
        if (ctx->stream)
            cuda_free(ctx);
        else
            free(ctx);
        return MTP_ERR;
    }
    struct mtp_backend *be = (struct mtp_backend *)mtp_xcalloc(1, sizeof *be);
    be->iface = &cuda_iface;
    be->ctx = ctx;
    *out = be;
    return MTP_OK;
}
