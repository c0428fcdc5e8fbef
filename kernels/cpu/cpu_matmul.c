/*
 * cpu_matmul.c - y = W x for weights stored as F32, BF16, F16 or F8_E4M3 (with
 * block scales), plus the canonical dot/axpy and the row decoder every other
 * CPU op uses.
 *
 * Constraints:
 *   - Batch invariance: y[t, r] is one canonical dot product of W[r, :] and
 *     x[t, :] (order in cpu_internal.h), computed by one thread, whatever n and
 *     the thread count are. Tokens are tiled by MATMUL_TILE only to reuse a
 *     decoded weight segment; each token keeps its own accumulators.
 *   - Weights are converted on the fly, one SEG-column segment of one row at a
 *     time into a stack buffer, or (n > MATMUL_TILE) one row at a time into a
 *     per-thread row buffer shared by the token tiles; never a full F32 copy.
 *     An FP8 element becomes fp8(W) * scale_inv[r / B0][c / B1] rounded to
 *     float (MODEL.md §2.5).
 *   - AVX2/FMA (+F16C) intrinsics under __AVX2__; a portable scalar build uses
 *     the same lane structure with fmaf, so it is batch invariant as well.
 *   - OpenMP over blocks of MATMUL_ROWS output rows (schedule(static)); an
 *     output row is never split across threads.
 */
#include "cpu_internal.h"

#include <math.h>   /* defines: fmaf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy */

#ifdef __AVX2__
#include <immintrin.h> /* defines: _mm256_* */
#endif

#include "../../engine/dtype.h" /* defines: mtp_fp8_e4m3_table, mtp_bf16_to_f32 */
#include "../../engine/error.h" /* defines: MTP_CHECK */

enum {
    SEG = 256,         /* columns decoded at a time; multiple of 32 (one lane group) */
    MATMUL_TILE = 4,   /* tokens sharing a decoded weight segment */
    MATMUL_ROWS = 16,  /* output rows per OpenMP work item */
};

/* ------------------------------------------------------------------ decode */

static void decode_fp8_run(const uint8_t *src, int len, float scale, float *out)
{
    const float *table = mtp_fp8_e4m3_table;
    int i = 0;
#ifdef __AVX2__
    __m256 s = _mm256_set1_ps(scale);
    for (; i + 8 <= len; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(src + i));
        __m256 v = _mm256_i32gather_ps(table, _mm256_cvtepu8_epi32(b), 4);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(v, s));
    }
#endif
    for (; i < len; i++)
        out[i] = table[src[i]] * scale;
}

static void decode_fp8(const struct mtp_weight *w, int r, int c0, int c1, float *out)
{
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * (size_t)w->cols;
    int n_col_blocks = (w->cols + w->block_cols - 1) / w->block_cols;
    const float *scales = w->scale_inv + (size_t)(r / w->block_rows) * (size_t)n_col_blocks;
    /* One run per column block: the scale is constant inside it. */
    for (int c = c0; c < c1;) {
        int blk = c / w->block_cols;
        int end = (blk + 1) * w->block_cols;
        if (end > c1)
            end = c1;
        decode_fp8_run(row + c, end - c, scales[blk], out + (c - c0));
        c = end;
    }
}

static void decode_bf16(const uint16_t *src, int len, float *out)
{
    int i = 0;
#ifdef __AVX2__
    for (; i + 8 <= len; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
    }
#endif
    for (; i < len; i++)
        out[i] = mtp_bf16_to_f32(src[i]);
}

static void decode_f16(const uint16_t *src, int len, float *out)
{
    int i = 0;
#if defined(__AVX2__) && defined(__F16C__)
    for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < len; i++)
        out[i] = mtp_f16_to_f32(src[i]);
}

void mtp_cpu_row_decode(const struct mtp_weight *w, int r, int c0, int c1, float *out)
{
    size_t base = (size_t)r * (size_t)w->cols + (size_t)c0;
    int len = c1 - c0;
    switch (w->dtype) {
    case MTP_DTYPE_F32:
        memcpy(out, (const float *)w->data + base, (size_t)len * sizeof(float));
        return;
    case MTP_DTYPE_BF16:
        decode_bf16((const uint16_t *)w->data + base, len, out);
        return;
    case MTP_DTYPE_F16:
        decode_f16((const uint16_t *)w->data + base, len, out);
        return;
    case MTP_DTYPE_F8_E4M3:
        decode_fp8(w, r, c0, c1, out);
        return;
    default:
        MTP_CHECK(!"weight dtype not supported by the CPU backend");
    }
}

/* W[r, c0 .. c0+len) as floats: straight from the mapping for F32, from ROW when
 * the whole row was decoded already, else decoded into BUF. */
static const float *row_segment(const struct mtp_weight *w, int r, int c0, int len,
                                const float *row, float *buf)
{
    if (w->dtype == MTP_DTYPE_F32)
        return (const float *)w->data + (size_t)r * (size_t)w->cols + (size_t)c0;
    if (row)
        return row + c0;
    mtp_cpu_row_decode(w, r, c0, c0 + len, buf);
    return buf;
}

/* -------------------------------------------------------- canonical reductions */

#ifdef __AVX2__
/* Lanes summed as ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)): a fixed tree. */
static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float acc_reduce(const __m256 acc[4])
{
    return hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}
#else
/* Scalar build: 4 accumulators of 8 lanes, same combination tree as the AVX2 build. */
static inline float lanes_hsum8(const float *v)
{
    float a0 = v[0] + v[4], a1 = v[1] + v[5], a2 = v[2] + v[6], a3 = v[3] + v[7];
    return (a0 + a2) + (a1 + a3);
}

static inline float acc_reduce(float acc[4][8])
{
    float s[8];
    for (int l = 0; l < 8; l++)
        s[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    return lanes_hsum8(s);
}
#endif

float mtp_cpu_dot_f32(const float *a, const float *b, int n)
{
    int nv = n & ~7;
#ifdef __AVX2__
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int i = 0; i < nv; i += 8) {
        int j = (i >> 3) & 3;
        acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[j]);
    }
#else
    float acc[4][8] = {{0}};
    for (int i = 0; i < nv; i += 8)
        for (int l = 0; l < 8; l++)
            acc[(i >> 3) & 3][l] = fmaf(a[i + l], b[i + l], acc[(i >> 3) & 3][l]);
#endif
    float s = acc_reduce(acc);
    for (int i = nv; i < n; i++)
        s = fmaf(a[i], b[i], s);
    return s;
}

void mtp_cpu_axpy_f32(float *y, float a, const float *x, int n)
{
    int i = 0;
#ifdef __AVX2__
    __m256 av = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++)
        y[i] = fmaf(a, x[i], y[i]);
}

/* ------------------------------------------------------------------ matmul */

/*
 * One weight row against NT tokens (NT <= MATMUL_TILE, a compile-time constant
 * after inlining). Each token's accumulators see the chunks in the canonical
 * order: segments are multiples of 32 columns, so the lane accumulator of a
 * chunk (global chunk index % 4) equals its index inside the segment % 4.
 */
static inline __attribute__((always_inline)) void
row_tile(const struct mtp_weight *w, int r, const float *row, const float *x, int x_stride, int nt,
         float *y, int y_stride, float *buf)
{
    const int cols = w->cols;
    const float *seg = NULL;
    int seg_c0 = 0;
#ifdef __AVX2__
    __m256 acc[MATMUL_TILE][4];
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < 4; j++)
            acc[t][j] = _mm256_setzero_ps();
#else
    float acc[MATMUL_TILE][4][8] = {{{0}}};
#endif
    for (int c0 = 0; c0 < cols; c0 += SEG) {
        int len = cols - c0 < SEG ? cols - c0 : SEG;
        int nv = len & ~7;
        seg = row_segment(w, r, c0, len, row, buf);
        seg_c0 = c0;
        int c = 0;
#ifdef __AVX2__
        for (; c + 32 <= nv; c += 32) {
            __m256 w0 = _mm256_loadu_ps(seg + c), w1 = _mm256_loadu_ps(seg + c + 8);
            __m256 w2 = _mm256_loadu_ps(seg + c + 16), w3 = _mm256_loadu_ps(seg + c + 24);
            for (int t = 0; t < nt; t++) {
                const float *xt = x + (size_t)t * (size_t)x_stride + c0 + c;
                acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), acc[t][1]);
                acc[t][2] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xt + 16), acc[t][2]);
                acc[t][3] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xt + 24), acc[t][3]);
            }
        }
        for (; c < nv; c += 8) {
            int j = (c >> 3) & 3;
            __m256 wv = _mm256_loadu_ps(seg + c);
            for (int t = 0; t < nt; t++) {
                const float *xt = x + (size_t)t * (size_t)x_stride + c0 + c;
                acc[t][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xt), acc[t][j]);
            }
        }
#else
        for (; c < nv; c += 8)
            for (int t = 0; t < nt; t++) {
                const float *xt = x + (size_t)t * (size_t)x_stride + c0 + c;
                for (int l = 0; l < 8; l++)
                    acc[t][(c >> 3) & 3][l] = fmaf(seg[c + l], xt[l], acc[t][(c >> 3) & 3][l]);
            }
#endif
    }
    /* Only the last segment can have a tail (cols % 8 columns); seg still holds it. */
    int tail0 = cols & ~7;
    for (int t = 0; t < nt; t++) {
        const float *xt = x + (size_t)t * (size_t)x_stride;
        float s = acc_reduce(acc[t]);
        for (int c = tail0; c < cols; c++)
            s = fmaf(seg[c - seg_c0], xt[c], s);
        y[(size_t)t * (size_t)y_stride + (size_t)r] = s;
    }
}

#ifdef __AVX2__
static inline __m256 load_bf16x8(const uint16_t *src)
{
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)src));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

/*
 * row_tile for a BF16 row read straight from the mapping: each 8-column chunk
 * is widened in registers and fused into the accumulators, instead of being
 * decoded into a buffer first (the decode-and-store was half of decode time).
 * The floats and their order are exactly those of row_tile, so results are
 * bitwise the same as the buffered path (n > MATMUL_TILE) uses.
 */
static inline __attribute__((always_inline)) void
row_tile_bf16(const struct mtp_weight *w, int r, const float *x, int x_stride, int nt, float *y,
              int y_stride)
{
    const int cols = w->cols, nv = cols & ~7;
    const uint16_t *src = (const uint16_t *)w->data + (size_t)r * (size_t)cols;
    __m256 acc[MATMUL_TILE][4];
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < 4; j++)
            acc[t][j] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 32 <= nv; c += 32) {
        __m256 w0 = load_bf16x8(src + c), w1 = load_bf16x8(src + c + 8);
        __m256 w2 = load_bf16x8(src + c + 16), w3 = load_bf16x8(src + c + 24);
        for (int t = 0; t < nt; t++) {
            const float *xt = x + (size_t)t * (size_t)x_stride + c;
            acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), acc[t][1]);
            acc[t][2] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xt + 16), acc[t][2]);
            acc[t][3] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xt + 24), acc[t][3]);
        }
    }
    for (; c < nv; c += 8) {
        int j = (c >> 3) & 3;
        __m256 wv = load_bf16x8(src + c);
        for (int t = 0; t < nt; t++)
            acc[t][j] = _mm256_fmadd_ps(
                wv, _mm256_loadu_ps(x + (size_t)t * (size_t)x_stride + c), acc[t][j]);
    }
    for (int t = 0; t < nt; t++) {
        const float *xt = x + (size_t)t * (size_t)x_stride;
        float s = acc_reduce(acc[t]);
        for (int cc = nv; cc < cols; cc++)
            s = fmaf(mtp_bf16_to_f32(src[cc]), xt[cc], s);
        y[(size_t)t * (size_t)y_stride + (size_t)r] = s;
    }
}

/*
 * Two BF16 rows against NT <= 2 tokens (decode, and the 2-token verification
 * of K = 1): the same per-row chunk order and reduction as row_tile_bf16,
 * with the rows' accumulator chains interleaved so 8 (NT = 1) or 16 (NT = 2)
 * independent FMA chains hide the FMA latency, and each widened weight chunk
 * serves both tokens. Results are bitwise those of row_tile_bf16.
 */
static inline __attribute__((always_inline)) void
rows2_tile_bf16(const struct mtp_weight *w, int r, const float *x, int x_stride, int nt, float *y,
                int y_stride)
{
    const int cols = w->cols, nv = cols & ~7;
    const uint16_t *src[2] = {(const uint16_t *)w->data + (size_t)r * (size_t)cols,
                              (const uint16_t *)w->data + (size_t)(r + 1) * (size_t)cols};
    __m256 acc[2][2][4];
    for (int q = 0; q < 2; q++)
        for (int t = 0; t < nt; t++)
            for (int j = 0; j < 4; j++)
                acc[q][t][j] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 32 <= nv; c += 32)
        for (int j = 0; j < 4; j++) {
            __m256 wa = load_bf16x8(src[0] + c + 8 * j), wb = load_bf16x8(src[1] + c + 8 * j);
            for (int t = 0; t < nt; t++) {
                __m256 xv = _mm256_loadu_ps(x + (size_t)t * (size_t)x_stride + c + 8 * j);
                acc[0][t][j] = _mm256_fmadd_ps(wa, xv, acc[0][t][j]);
                acc[1][t][j] = _mm256_fmadd_ps(wb, xv, acc[1][t][j]);
            }
        }
    for (; c < nv; c += 8) {
        int j = (c >> 3) & 3;
        __m256 wa = load_bf16x8(src[0] + c), wb = load_bf16x8(src[1] + c);
        for (int t = 0; t < nt; t++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)t * (size_t)x_stride + c);
            acc[0][t][j] = _mm256_fmadd_ps(wa, xv, acc[0][t][j]);
            acc[1][t][j] = _mm256_fmadd_ps(wb, xv, acc[1][t][j]);
        }
    }
    for (int q = 0; q < 2; q++)
        for (int t = 0; t < nt; t++) {
            const float *xt = x + (size_t)t * (size_t)x_stride;
            float sum = acc_reduce(acc[q][t]);
            for (int cc = nv; cc < cols; cc++)
                sum = fmaf(mtp_bf16_to_f32(src[q][cc]), xt[cc], sum);
            y[(size_t)t * (size_t)y_stride + (size_t)(r + q)] = sum;
        }
}

/* Token tiles of one BF16 row (the fused path). */
static void row_bf16_tiles(const struct mtp_weight *w, int r, const float *x, int x_stride, int n,
                           float *y, int y_stride)
{
    for (int t0 = 0; t0 < n; t0 += MATMUL_TILE) {
        const float *xt = x + (size_t)t0 * (size_t)x_stride;
        float *yt = y + (size_t)t0 * (size_t)y_stride;
        switch (n - t0 < MATMUL_TILE ? n - t0 : MATMUL_TILE) {
        case 1: row_tile_bf16(w, r, xt, x_stride, 1, yt, y_stride); break;
        case 2: row_tile_bf16(w, r, xt, x_stride, 2, yt, y_stride); break;
        case 3: row_tile_bf16(w, r, xt, x_stride, 3, yt, y_stride); break;
        default: row_tile_bf16(w, r, xt, x_stride, 4, yt, y_stride); break;
        }
    }
}
#endif

/*
 * Rows [r0, r1) for all n tokens. With one token tile a converted row is
 * decoded segment by segment into BUF; with several tiles it is decoded once
 * into ROW_BUF [cols] (one row, per thread) and shared by the tiles. Both give
 * the same floats in the same order, so y does not depend on n.
 */
static void matmul_rows(const struct mtp_weight *w, int r0, int r1, const float *x, int x_stride,
                        int n, float *y, int y_stride, float *row_buf)
{
    float buf[SEG] __attribute__((aligned(64)));
#ifdef __AVX2__
    if (!row_buf && w->dtype == MTP_DTYPE_BF16) {
        int r = r0;
        if (n == 1)
            for (; r + 2 <= r1; r += 2)
                rows2_tile_bf16(w, r, x, x_stride, 1, y, y_stride);
        else if (n == 2)
            for (; r + 2 <= r1; r += 2)
                rows2_tile_bf16(w, r, x, x_stride, 2, y, y_stride);
        for (; r < r1; r++)
            row_bf16_tiles(w, r, x, x_stride, n, y, y_stride);
        return;
    }
#endif
    for (int r = r0; r < r1; r++) {
        const float *row = NULL;
        if (row_buf) {
            mtp_cpu_row_decode(w, r, 0, w->cols, row_buf);
            row = row_buf;
        }
        for (int t0 = 0; t0 < n; t0 += MATMUL_TILE) {
            const float *xt = x + (size_t)t0 * (size_t)x_stride;
            float *yt = y + (size_t)t0 * (size_t)y_stride;
            switch (n - t0 < MATMUL_TILE ? n - t0 : MATMUL_TILE) {
            case 1: row_tile(w, r, row, xt, x_stride, 1, yt, y_stride, buf); break;
            case 2: row_tile(w, r, row, xt, x_stride, 2, yt, y_stride, buf); break;
            case 3: row_tile(w, r, row, xt, x_stride, 3, yt, y_stride, buf); break;
            default: row_tile(w, r, row, xt, x_stride, 4, yt, y_stride, buf); break;
            }
        }
    }
}

void mtp_cpu_matmul(void *vctx, const struct mtp_weight *w, const float *x, int x_stride, int n,
                    float *y, int y_stride)
{
    struct mtp_cpu_ctx *ctx = vctx;
    if (n <= 0 || w->rows <= 0)
        return;
    MTP_CHECK(x_stride >= w->cols && y_stride >= w->rows);
    int n_blocks = (w->rows + MATMUL_ROWS - 1) / MATMUL_ROWS;
    int whole_rows = n > MATMUL_TILE && w->dtype != MTP_DTYPE_F32;
    /* Small products are not worth waking the team (result is the same either way). */
    int parallel = (double)w->rows * (double)w->cols * (double)n > 65536.0;
#pragma omp parallel num_threads(ctx->n_threads) if (parallel)
    {
        float *row_buf = whole_rows ? mtp_cpu_aligned_alloc((size_t)w->cols * sizeof(float)) : NULL;
#pragma omp for schedule(static)
        for (int b = 0; b < n_blocks; b++) {
            int r0 = b * MATMUL_ROWS;
            int r1 = r0 + MATMUL_ROWS < w->rows ? r0 + MATMUL_ROWS : w->rows;
            matmul_rows(w, r0, r1, x, x_stride, n, y, y_stride, row_buf);
        }
        free(row_buf);
    }
}

/* ------------------------------------------------------------------- embed */

void mtp_cpu_embed(void *vctx, const struct mtp_weight *table, const int32_t *tokens, int n,
                   float *out)
{
    (void)vctx;
    for (int t = 0; t < n; t++) {
        MTP_CHECK(tokens[t] >= 0 && tokens[t] < table->rows);
        mtp_cpu_row_decode(table, tokens[t], 0, table->cols, out + (size_t)t * (size_t)table->cols);
    }
}
