/*
 * cpu_oracle.c - the naive (decompressing) MLA attention, a test oracle for
 * the absorbed kernel in cpu_attention.c, and the canonical matmul, an
 * oracle for the blocked kernels of cpu_matmul.c (see cpu_oracle.h). Written for
 * clarity, in double precision, with no shared code on the arithmetic path
 * except the weight row decoder.
 */
#include "cpu_oracle.h"

#include <math.h>   /* defines: exp */
#include <stdlib.h> /* defines: free */

#include "../../core/error.h" /* defines: mtp_xmalloc */
#include "cpu_internal.h"       /* defines: mtp_cpu_row_decode */

/* Decompress head H of cache row C: k_nope [dn] and v [dv]. */
static void naive_decompress(const struct mtp_mla_dims *dm, const struct mtp_weight *kv_b, int h,
                             const float *c, float *row, double *k_nope, double *v)
{
    int base = h * (dm->nope + dm->v);
    for (int i = 0; i < dm->nope + dm->v; i++) {
        mtp_cpu_row_decode(kv_b, base + i, 0, dm->kv_lora, row);
        double acc = 0.0;
        for (int k = 0; k < dm->kv_lora; k++)
            acc += (double)row[k] * (double)c[k];
        if (i < dm->nope)
            k_nope[i] = acc;
        else
            v[i - dm->nope] = acc;
    }
}

void mtp_cpu_mla_attention_naive(const struct mtp_mla_dims *dims, const struct mtp_weight *kv_b,
                                 const float *q, int n, int start_pos, const float *cache,
                                 float *out)
{
    const int H = dims->n_heads, qk = dims->nope + dims->rope, cw = dims->kv_lora + dims->rope;
    const int n_keys = start_pos + n;
    float *row = mtp_xmalloc((size_t)dims->kv_lora * sizeof(float));
    double *k_nope = mtp_xmalloc((size_t)n_keys * (size_t)dims->nope * sizeof(double));
    double *v = mtp_xmalloc((size_t)n_keys * (size_t)dims->v * sizeof(double));
    double *p = mtp_xmalloc((size_t)n_keys * sizeof(double));
    for (int h = 0; h < H; h++) {
        for (int j = 0; j < n_keys; j++)
            naive_decompress(dims, kv_b, h, cache + (size_t)j * cw, row,
                             k_nope + (size_t)j * dims->nope, v + (size_t)j * dims->v);
        for (int t = 0; t < n; t++) {
            const float *qh = q + (size_t)t * (size_t)(H * qk) + (size_t)h * qk;
            int len = start_pos + t + 1;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < len; j++) {
                const float *kpe = cache + (size_t)j * cw + dims->kv_lora;
                double s = 0.0;
                for (int i = 0; i < dims->nope; i++)
                    s += (double)qh[i] * k_nope[(size_t)j * dims->nope + i];
                for (int i = 0; i < dims->rope; i++)
                    s += (double)qh[dims->nope + i] * (double)kpe[i];
                p[j] = s * (double)dims->scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = 0; j < len; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            float *oh = out + (size_t)t * (size_t)(H * dims->v) + (size_t)h * dims->v;
            for (int i = 0; i < dims->v; i++) {
                double acc = 0.0;
                for (int j = 0; j < len; j++)
                    acc += p[j] / sum * v[(size_t)j * dims->v + i];
                oh[i] = (float)acc;
            }
        }
    }
    free(row);
    free(k_nope);
    free(v);
    free(p);
}

void mtp_cpu_matmul_canonical(const struct mtp_weight *w, const float *x, int x_stride, int n,
                              float *y, int y_stride)
{
    float *row = mtp_xmalloc(((size_t)w->cols + 1) * sizeof(float));
    for (int r = 0; r < w->rows; r++) {
        mtp_cpu_row_decode(w, r, 0, w->cols, row);
        for (int t = 0; t < n; t++)
            y[(size_t)t * (size_t)y_stride + (size_t)r] =
                mtp_cpu_dot_f32(row, x + (size_t)t * (size_t)x_stride, w->cols);
    }
    free(row);
}
