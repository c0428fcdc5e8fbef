/*
 * cpu_norm_rope.c - RMSNorm, RoPE and the residual add (docs/model.md §3.1, §3.5, §4).
 *
 * RMSNorm is computed in fp32: the sum of squares is the canonical dot of x
 * with itself (fixed order, cpu_internal.h), then y = w * (x * 1/sqrt(ss/dim + eps)).
 * RoPE rotates interleaved pairs (x[2i], x[2i+1]) by the angle
 * (float)pos * inv_freq[i], a product rounded in fp32 as the reference
 * implementations do, then cosf/sinf in fp32, each times cos_sin_scale:
 *   (a, b) -> (a cos - b sin, a sin + b cos).
 * Every output element depends only on its own token, so all three ops are
 * trivially batch and thread invariant. RoPE always runs in the caller (a few
 * hundred rotations per token); RMSNorm and the add go to the pool only for
 * prefill-sized inputs (cpu_pool.h, MTP_CPU_PARALLEL_MIN_WORK).
 */
#include "cpu_internal.h"

#include <limits.h> /* defines: INT_MAX */
#include <math.h>   /* defines: sqrtf, cosf, sinf */

#include "../../core/dtype.h" /* defines: mtp_dtype_load */
#include "../../core/error.h" /* defines: MTP_CHECK */
#include "cpu_pool.h"           /* defines: mtp_cpu_parallel_for_work */

/* Norm weight as float: the model converts 1-D tensors to F32, other dtypes are decoded. */
static inline float norm_weight(const struct mtp_weight *w, int i)
{
    if (w->dtype == MTP_DTYPE_F32)
        return ((const float *)w->data)[i];
    return mtp_dtype_load(w->dtype, w->data, (size_t)i);
}

struct rmsnorm_job {
    const float *x;
    const struct mtp_weight *w;
    int x_stride, dim, y_stride;
    float eps;
    float *y;
};

static void rmsnorm_token(void *varg, int t, int thread)
{
    const struct rmsnorm_job *j = varg;
    (void)thread;
    const float *xt = j->x + (size_t)t * (size_t)j->x_stride; /* [dim] */
    float *yt = j->y + (size_t)t * (size_t)j->y_stride;       /* [dim], may alias xt */
    float ss = mtp_cpu_dot_f32(xt, xt, j->dim);
    float inv = 1.0f / sqrtf(ss / (float)j->dim + j->eps);
    for (int i = 0; i < j->dim; i++)
        yt[i] = norm_weight(j->w, i) * (xt[i] * inv);
}

void mtp_cpu_rmsnorm(void *vctx, const float *x, int x_stride, const struct mtp_weight *w, int n,
                     int dim, float eps, float *y, int y_stride)
{
    struct mtp_cpu_ctx *ctx = vctx;
    MTP_CHECK(w->cols == dim && w->dtype != MTP_DTYPE_F8_E4M3);
    struct rmsnorm_job job = {.x = x, .w = w, .x_stride = x_stride, .dim = dim,
                              .y_stride = y_stride, .eps = eps, .y = y};
    /* A decode's norm (one token) is a few microseconds: it runs in the
     * caller; prefill chunks are shared out by token. */
    mtp_cpu_parallel_for_work(ctx, 2.0 * n * dim, n, rmsnorm_token, &job);
}

void mtp_cpu_rope(void *vctx, float *x, int x_stride, int n, int n_heads, int head_stride,
                  int offset, int start_pos, const struct mtp_rope *rope)
{
    (void)vctx;
    int pairs = rope->dim / 2;
    MTP_CHECK(rope->dim % 2 == 0 && pairs <= MTP_MAX_ROPE_PAIRS);
    for (int t = 0; t < n; t++) {
        float cs[MTP_MAX_ROPE_PAIRS], sn[MTP_MAX_ROPE_PAIRS];
        float pos = (float)(start_pos + t);
        for (int i = 0; i < pairs; i++) {
            float angle = pos * rope->inv_freq[i];
            cs[i] = cosf(angle) * rope->cos_sin_scale;
            sn[i] = sinf(angle) * rope->cos_sin_scale;
        }
        for (int h = 0; h < n_heads; h++) {
            /* [dim] interleaved pairs of head h of token t */
            float *v = x + (size_t)t * (size_t)x_stride + (size_t)h * (size_t)head_stride +
                       (size_t)offset;
            for (int i = 0; i < pairs; i++) {
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cs[i] - b * sn[i];
                v[2 * i + 1] = a * sn[i] + b * cs[i];
            }
        }
    }
}

struct add_job {
    float *y;
    const float *x;
    size_t n;
};

enum { ADD_CHUNK = 16384 }; /* floats per item */

static void add_chunk(void *varg, int item, int thread)
{
    const struct add_job *j = varg;
    (void)thread;
    size_t i0 = (size_t)item * ADD_CHUNK, i1 = i0 + ADD_CHUNK < j->n ? i0 + ADD_CHUNK : j->n;
    for (size_t i = i0; i < i1; i++)
        j->y[i] += j->x[i];
}

void mtp_cpu_add(void *vctx, float *y, const float *x, size_t n)
{
    struct mtp_cpu_ctx *ctx = vctx;
    struct add_job job = {.y = y, .x = x, .n = n};
    size_t items = (n + ADD_CHUNK - 1) / ADD_CHUNK;
    MTP_CHECK(items <= (size_t)INT_MAX);
    /* Memory bound: a residual add of one token (d floats) is far below the
     * cost of waking a worker; only long prefill chunks are split. */
    mtp_cpu_parallel_for_work(ctx, (double)n / 4, (int)items, add_chunk, &job);
}
