/*
 * cpu_norm_rope.c - RMSNorm, RoPE and the residual add (MODEL.md §3.1, §3.5, §4).
 *
 * RMSNorm is computed in fp32: the sum of squares is the canonical dot of x
 * with itself (fixed order, cpu_internal.h), then y = w * (x * 1/sqrt(ss/dim + eps)).
 * RoPE rotates interleaved pairs (x[2i], x[2i+1]) by the angle
 * (float)pos * inv_freq[i], a product rounded in fp32 as the reference
 * implementations do, then cosf/sinf in fp32, each times cos_sin_scale:
 *   (a, b) -> (a cos - b sin, a sin + b cos).
 * Every output element depends only on its own token, so all three ops are
 * trivially batch and thread invariant.
 */
#include "cpu_internal.h"

#include <math.h> /* defines: sqrtf, cosf, sinf */

#include "../../engine/dtype.h" /* defines: mtp_dtype_load */
#include "../../engine/error.h" /* defines: MTP_CHECK */

/* Norm weight as float: the model converts 1-D tensors to F32, other dtypes are decoded. */
static inline float norm_weight(const struct mtp_weight *w, int i)
{
    if (w->dtype == MTP_DTYPE_F32)
        return ((const float *)w->data)[i];
    return mtp_dtype_load(w->dtype, w->data, (size_t)i);
}

void mtp_cpu_rmsnorm(void *vctx, const float *x, int x_stride, const struct mtp_weight *w, int n,
                     int dim, float eps, float *y, int y_stride)
{
    struct mtp_cpu_ctx *ctx = vctx;
    MTP_CHECK(w->cols == dim && w->dtype != MTP_DTYPE_F8_E4M3);
    int parallel = (double)n * (double)dim > 32768.0;
#pragma omp parallel for schedule(static) num_threads(ctx->n_threads) if (parallel)
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * (size_t)x_stride; /* [dim] */
        float *yt = y + (size_t)t * (size_t)y_stride;       /* [dim], may alias xt */
        float ss = mtp_cpu_dot_f32(xt, xt, dim);
        float inv = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++)
            yt[i] = norm_weight(w, i) * (xt[i] * inv);
    }
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

void mtp_cpu_add(void *vctx, float *y, const float *x, size_t n)
{
    struct mtp_cpu_ctx *ctx = vctx;
    long long len = (long long)n;
#pragma omp parallel for schedule(static) num_threads(ctx->n_threads) if (len > 65536)
    for (long long i = 0; i < len; i++)
        y[i] += x[i];
}
