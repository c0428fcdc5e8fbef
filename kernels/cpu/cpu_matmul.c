/*
 * cpu_matmul.c - y = W x for weights stored as F32, BF16, F16 or F8_E4M3 (with
 * block scales), plus the canonical dot/axpy and the row decoder every other
 * CPU op uses.
 *
 * Constraints:
 *   - Batch invariance: y[t, r] is one canonical dot product of W[r, :] and
 *     x[t, :] (order in cpu_internal.h), computed by one thread, whatever n and
 *     the thread count are. Tokens and rows are blocked only to reuse widened
 *     weights and loaded token vectors; each (row, token) output keeps its own
 *     accumulators (tests/test_cpu_ops.c checks every dtype and n = 1..17
 *     bitwise against mtp_cpu_dot_f32 of the decoded row).
 *   - Each call reads and widens a weight row once for all n tokens: a work
 *     item is a block of MATMUL_ROWS rows, decoded into the thread's scratch
 *     panel (F32 is read in place; BF16, and FP8 with one scale per 16
 *     columns, are widened in registers at n <= BF16_DIRECT_N, where a panel
 *     store would cost more than it saves). An FP8
 *     element becomes fp8(W) * scale_inv[r / B0][c / B1] rounded to float
 *     (docs/model.md §2.5). No allocation per call.
 *   - AVX-512 register-blocked kernel under __AVX512F__; otherwise AVX2/FMA
 *     (+F16C) or portable scalar code with the same lane structure (fmaf), so
 *     every build is batch invariant.
 *   - Prompt prefill of more than MTP_CPU_INVARIANT_MAX_N tokens goes to the
 *     blocked GEMM of cpu_gemm.c instead (another reduction order, allowed
 *     there: docs/design.md §4).
 *   - Parallel over blocks of MATMUL_ROWS output rows (mtp_cpu_parallel_for);
 *     an output row is never split across threads.
 */
#include "cpu_internal.h"
#include "cpu_pool.h" /* defines: mtp_cpu_parallel_for, mtp_cpu_thread_scratch */

#include <math.h>   /* defines: fmaf */
#include <string.h> /* defines: memcpy */

#ifdef __AVX2__
#include <immintrin.h> /* defines: _mm256_* */
#endif

#include "../../core/dtype.h" /* defines: mtp_fp8_e4m3_table, mtp_bf16_to_f32 */
#include "../../core/error.h" /* defines: MTP_CHECK */

enum {
    SEG = 256,         /* columns decoded at a time; multiple of 32 (one lane group) */
    MATMUL_TILE = 4,   /* fallback: tokens sharing a decoded weight segment */
    MATMUL_ROWS = 24,  /* output rows per work item: a multiple of both tile heights */
};

/* ------------------------------------------------------------------ decode */

#ifdef __AVX512F__
/*
 * 16 E4M3 bytes as exact floats without a table gather (the gather was 40% of
 * an mtp-v3 verification): E4M3 bits s eeee mmm placed as the half-precision
 * value s 0eeee mmm0000000 are the same number times 2^-8, for normals and
 * subnormals alike (both formats' exponent fields differ by the bias, 15 - 7),
 * so cvtph and an exact multiply by 2^8 give table[b]. The NaN codes
 * (x111 1111) would read as 480 and are taken from the table.
 */
static inline __m512 fp8x16_exact(const uint8_t *src, const float *table)
{
    __m128i bytes = _mm_loadu_si128((const __m128i *)src);
    __m256i b = _mm256_cvtepu8_epi16(bytes);
    __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8),
                                _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x7F)), 7));
    __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
    __mmask16 nan = _mm256_cmpeq_epi16_mask(_mm256_and_si256(b, _mm256_set1_epi16(0x7F)),
                                            _mm256_set1_epi16(0x7F));
    if (nan)
        v = _mm512_mask_i32gather_ps(v, nan, _mm512_cvtepu8_epi32(bytes), table, 4);
    return v;
}
#endif

#if defined(__AVX2__) && defined(__F16C__)
/* 8 E4M3 bytes times SCALE, with fp8x16_exact's half-precision placement (NaN
 * codes from the table): the values decode_fp8_run stores, kept in a register
 * by the AVX2 direct rows below. */
static inline __attribute__((always_inline)) __m256 fp8x8(const uint8_t *src, __m256 scale)
{
    __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)src));
    __m128i lo7 = _mm_and_si128(b, _mm_set1_epi16(0x7F));
    __m128i h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8),
                             _mm_slli_epi16(lo7, 7));
    __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
    if (_mm_movemask_epi8(_mm_cmpeq_epi16(lo7, _mm_set1_epi16(0x7F)))) { /* NaN codes */
        float t[8];
        for (int l = 0; l < 8; l++)
            t[l] = mtp_fp8_e4m3_table[src[l]];
        v = _mm256_loadu_ps(t);
    }
    return _mm256_mul_ps(v, scale);
}
#endif

static void decode_fp8_run(const uint8_t *src, int len, float scale, float *out)
{
    const float *table = mtp_fp8_e4m3_table;
    int i = 0;
#ifdef __AVX512F__
    __m512 s16 = _mm512_set1_ps(scale);
    for (; i + 16 <= len; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(fp8x16_exact(src + i, table), s16));
#endif
#if defined(__AVX2__) && defined(__F16C__)
    /* 8 at a time (rows of 8 * odd columns, e.g. mtp-v3's 24-wide down projections, end here). */
    __m256 s = _mm256_set1_ps(scale);
    for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(out + i, fp8x8(src + i, s));
#elif defined(__AVX2__)
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
#ifdef __AVX512F__
    for (; i + 16 <= len; i += 16) {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
    }
#endif
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
#ifdef __AVX512F__
    for (; i + 16 <= len; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
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

#ifndef __AVX512F__
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
#endif

/* -------------------------------------------------------- canonical reductions */

#ifdef __AVX2__
static inline float acc_reduce(const __m256 acc[4])
{
    return mtp_cpu_hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
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

/* ------------------------------------------------------------- axpy rows */

#ifdef __AVX512F__
/*
 * Columns [c0, c0 + 16 * NQ) of up to G tokens' outputs kept in registers
 * (NQ * G <= 24 accumulators) while k runs over the rows: each row chunk is
 * loaded once for the group and each element sees the fused chain in k order.
 * MASKS cover the columns past COLS in the last chunk. Tokens are in order of
 * non-decreasing len (len[0] is the group's minimum).
 */
static inline __attribute__((always_inline)) void
axpy_group(const float *rows, size_t row_stride, const float *coef, size_t coef_stride,
           const int *len, int gt, int nq, int g, int c0, const __mmask16 *masks, float *out,
           size_t out_stride)
{
    __m512 acc[8][4];
    for (int t = 0; t < g; t++)
        for (int q = 0; q < nq; q++)
            acc[t][q] = _mm512_setzero_ps();
    int kmin = len[0], kmax = len[gt - 1];
    for (int k = 0; k < kmax; k++) {
        const float *rk = rows + (size_t)k * row_stride + c0;
        __m512 rv[4];
        for (int q = 0; q < nq; q++)
            rv[q] = _mm512_maskz_loadu_ps(masks[q], rk + 16 * q);
        for (int t = 0; t < g; t++) {
            if (t >= gt || (k >= kmin && k >= len[t]))
                continue;
            __m512 cv = _mm512_set1_ps(coef[(size_t)t * coef_stride + (size_t)k]);
            for (int q = 0; q < nq; q++)
                acc[t][q] = _mm512_fmadd_ps(cv, rv[q], acc[t][q]);
        }
    }
    for (int t = 0; t < gt; t++)
        for (int q = 0; q < nq; q++)
            _mm512_mask_storeu_ps(out + (size_t)t * out_stride + c0 + 16 * q, masks[q], acc[t][q]);
}

#define AXPY_GROUP(NQ, G)                                                                      \
    for (int t = 0; t < n; t += (G)) {                                                         \
        int gt = n - t < (G) ? n - t : (G);                                                    \
        axpy_group(rows, row_stride, coef + (size_t)t * coef_stride, coef_stride, len + t, gt, \
                   NQ, G, c0, masks, out + (size_t)t * out_stride, out_stride);                \
    }
#endif

void mtp_cpu_axpy_rows(const float *rows, size_t row_stride, const float *coef,
                       size_t coef_stride, const int *len, int n, int cols, float *out,
                       size_t out_stride)
{
#ifdef __AVX512F__
    for (int t = 1; t < n; t++)
        MTP_CHECK(len[t] >= len[t - 1]);
    for (int c0 = 0; c0 < cols; c0 += 64) {
        __mmask16 masks[4];
        int nq = 0;
        for (int q = 0; q < 4; q++) {
            int live = cols - c0 - 16 * q;
            live = live < 0 ? 0 : live > 16 ? 16 : live;
            masks[q] = (__mmask16)((1u << live) - 1);
            nq += live > 0;
        }
        switch (nq) {
        case 1: AXPY_GROUP(1, 8) break;
        case 2: AXPY_GROUP(2, 8) break;
        case 3: AXPY_GROUP(3, 8) break;
        default: AXPY_GROUP(4, 6) break;
        }
    }
#else
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * out_stride;
        memset(o, 0, (size_t)cols * sizeof(float));
        for (int k = 0; k < len[t]; k++)
            mtp_cpu_axpy_f32(o, coef[(size_t)t * coef_stride + (size_t)k],
                             rows + (size_t)k * row_stride, cols);
    }
#endif
}

/* ------------------------------------------------------------------ matmul */

/*
 * Work items are blocks of MATMUL_ROWS output rows for all n tokens: a block's
 * rows are widened once per call (into the thread's scratch panel, or in
 * registers for BF16 at small n) and every token reads them from there. The
 * AVX-512 kernel below keeps each output's canonical order; the fallback
 * (row_tile, any ISA) does too, so results never depend on the build's path
 * choice for a given binary, on n, or on the thread count.
 */

#ifdef __AVX512F__
/*
 * AVX-512 keeps the canonical order bitwise: for one (row, token) output,
 * register A holds lane accumulators 0 and 1 (lanes 0..7 and 8..15), B holds
 * 2 and 3. Columns 32p..32p+15 are chunks 4p and 4p+1 (accumulators 0, 1):
 * one FMA into A; columns 32p+16..32p+31 go into B. A last lone chunk
 * (index = 0 or 2 mod 4) is a masked FMA into the low half of A or B, so the
 * other lanes are left exactly as they are. The reduction then forms
 * (acc0 + acc1) + (acc2 + acc3) = (lo A + hi A) + (lo B + hi B) and the same
 * 8-lane tree as mtp_cpu_hsum8.
 *
 * Register tiles: TR output rows x TT tokens, 2 accumulators each; 4 x 3 and
 * 3 x 4 use 24 of the 32 zmm registers, leaving room for the weight vectors
 * and a token vector. Each weight vector serves TT tokens, each token vector
 * TR rows. n is cut into token tiles by token_tile.
 */
enum {
    TILE_R = 4,        /* output rows per register tile of up to TILE_T tokens */
    TILE_T = 3,
    TILE_R4 = 3,       /* output rows per register tile of TILE_T4 tokens */
    TILE_T4 = 4,
    BF16_DIRECT_N = 4, /* up to this n (one token tile), BF16/FP8 rows are widened in
                        * registers, not panelled: each chunk is widened once either way */
};

/* Weight sources of a tile: a float panel (decoded rows, or F32 straight from
 * the mapping), or BF16 / FP8 rows widened per 16 columns in registers (FP8
 * times its block scale, SROW[c / BCOLS] for the tile's scale-block row; the
 * caller guarantees one scale per 16 columns and per tile). Every source
 * yields exactly the floats of mtp_cpu_row_decode. */
enum wsrc { WSRC_F32, WSRC_BF16, WSRC_FP8 };

struct wfp8 {
    const float *srow[TILE_R]; /* scale_inv row of each of the tile's rows */
    int bcols;         /* block_cols, a multiple of 16 */
};

static inline __attribute__((always_inline)) __m512 wload16(const void *w, enum wsrc k, int ri,
                                                            size_t row, int c,
                                                            const struct wfp8 *f)
{
    size_t i = row + (size_t)c;
    if (k == WSRC_F32)
        return _mm512_loadu_ps((const float *)w + i);
    if (k == WSRC_FP8)
        return _mm512_mul_ps(fp8x16_exact((const uint8_t *)w + i, mtp_fp8_e4m3_table),
                             _mm512_set1_ps(f->srow[ri][c / f->bcols]));
    __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
}

static inline __attribute__((always_inline)) __m512 wload8_low(const void *w, enum wsrc k,
                                                               int ri, size_t row, int c,
                                                               const struct wfp8 *f)
{
    size_t i = row + (size_t)c;
    if (k == WSRC_F32)
        return _mm512_maskz_loadu_ps(0x00FF, (const float *)w + i);
    if (k == WSRC_FP8) {
#ifdef __F16C__ /* in a register: a stack copy stalled every row of mtp-v3's 24-column
                 * down projections on store forwarding */
        return _mm512_zextps256_ps512(
            fp8x8((const uint8_t *)w + i, _mm256_set1_ps(f->srow[ri][c / f->bcols])));
#else
        float v[16] __attribute__((aligned(64))) = {0};
        float sc = f->srow[ri][c / f->bcols];
        for (int l = 0; l < 8; l++)
            v[l] = mtp_fp8_e4m3_table[((const uint8_t *)w)[i + (size_t)l]] * sc;
        return _mm512_load_ps(v);
#endif
    }
    __m512i h = _mm512_cvtepu16_epi32(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
}

static inline __attribute__((always_inline)) float wscalar(const void *w, enum wsrc k, int ri,
                                                           size_t row, int c,
                                                           const struct wfp8 *f)
{
    size_t i = row + (size_t)c;
    if (k == WSRC_FP8)
        return mtp_fp8_e4m3_table[((const uint8_t *)w)[i]] * f->srow[ri][c / f->bcols];
    return k == WSRC_F32 ? ((const float *)w)[i] : mtp_bf16_to_f32(((const uint16_t *)w)[i]);
}

/*
 * The canonical acc_reduce of four outputs at once (A_k, B_k: output k's
 * accumulators), the same additions with the same operands as mtp_cpu_hsum8 on
 * (acc0 + acc1) + (acc2 + acc3), only in parallel:
 *   v_k = (lo A_k + hi A_k) + (lo B_k + hi B_k)       8 lanes l0..l7
 *   u_k = lo128 v_k + hi128 v_k                        l_i + l_{i+4}
 *   w_k = u_k[0] + u_k[2], u_k[1] + u_k[3]             mtp_cpu_hsum8's movehl
 *   s_k = w_k[0] + w_k[1]                              mtp_cpu_hsum8's movehdup
 * Returns [s_0, s_1, s_2, s_3].
 */
static inline __m128 acc_reduce4(__m512 a0, __m512 b0, __m512 a1, __m512 b1, __m512 a2,
                                 __m512 b2, __m512 a3, __m512 b3)
{
    /* [lo 256 of X | lo 256 of Y] + [hi 256 of X | hi 256 of Y] */
#define HALVES_ADD(X, Y)                                                                       \
    _mm512_add_ps(_mm512_shuffle_f32x4(X, Y, 0x44), _mm512_shuffle_f32x4(X, Y, 0xEE))
    __m512 v01 = _mm512_add_ps(HALVES_ADD(a0, a1), HALVES_ADD(b0, b1)); /* [v0 | v1] */
    __m512 v23 = _mm512_add_ps(HALVES_ADD(a2, a3), HALVES_ADD(b2, b3)); /* [v2 | v3] */
#undef HALVES_ADD
    /* quarters [v0.lo, v1.lo, v2.lo, v3.lo] + [v0.hi, v1.hi, v2.hi, v3.hi] */
    __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, 0x88),
                             _mm512_shuffle_f32x4(v01, v23, 0xDD));
    __m512 w = _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(1, 0, 3, 2)));
    __m512 s = _mm512_add_ps(w, _mm512_permute_ps(w, _MM_SHUFFLE(2, 3, 0, 1)));
    const __m512i first = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(first, s));
}

/*
 * y[t, r] for TR rows (row i at W + i * W_STRIDE elements) and TT tokens, all
 * COLS columns. TR, TT, K are compile-time constants after inlining.
 */
static inline __attribute__((always_inline)) void
tile_canon(const void *w, size_t w_stride, enum wsrc k, const struct wfp8 *f, int tr,
           const float *x, int x_stride, int tt, int cols, float *y, int y_stride)
{
    __m512 a[TILE_R][TILE_T4], b[TILE_R][TILE_T4]; /* tr * tt <= 12 are used */
    for (int i = 0; i < tr; i++)
        for (int t = 0; t < tt; t++)
            a[i][t] = b[i][t] = _mm512_setzero_ps();
    const int nv = cols & ~7;
    int c = 0;
    for (; c + 32 <= nv; c += 32) {
        __m512 wv[TILE_R];
        for (int i = 0; i < tr; i++)
            wv[i] = wload16(w, k, i, (size_t)i * w_stride, c, f);
        for (int t = 0; t < tt; t++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)t * (size_t)x_stride + c);
            for (int i = 0; i < tr; i++)
                a[i][t] = _mm512_fmadd_ps(wv[i], xv, a[i][t]);
        }
        for (int i = 0; i < tr; i++)
            wv[i] = wload16(w, k, i, (size_t)i * w_stride, c + 16, f);
        for (int t = 0; t < tt; t++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)t * (size_t)x_stride + c + 16);
            for (int i = 0; i < tr; i++)
                b[i][t] = _mm512_fmadd_ps(wv[i], xv, b[i][t]);
        }
    }
    if (c + 16 <= nv) { /* chunks 4p, 4p+1: both halves of A */
        for (int i = 0; i < tr; i++) {
            __m512 wv = wload16(w, k, i, (size_t)i * w_stride, c, f);
            for (int t = 0; t < tt; t++)
                a[i][t] = _mm512_fmadd_ps(
                    wv, _mm512_loadu_ps(x + (size_t)t * (size_t)x_stride + c), a[i][t]);
        }
        c += 16;
    }
    if (c < nv) { /* one chunk left: index 0 mod 4 (low A) or 2 mod 4 (low B) */
        const int into_b = (c & 31) == 16;
        for (int i = 0; i < tr; i++) {
            __m512 wv = wload8_low(w, k, i, (size_t)i * w_stride, c, f);
            for (int t = 0; t < tt; t++) {
                __m512 xv = _mm512_zextps256_ps512(
                    _mm256_loadu_ps(x + (size_t)t * (size_t)x_stride + c));
                if (into_b)
                    b[i][t] = _mm512_mask3_fmadd_ps(wv, xv, b[i][t], 0x00FF);
                else
                    a[i][t] = _mm512_mask3_fmadd_ps(wv, xv, a[i][t], 0x00FF);
            }
        }
    }
    const __m512 z = _mm512_setzero_ps();
    if (tt == TILE_T4) { /* 3 rows x 4 tokens: reduce each row's 4 tokens together */
        for (int i = 0; i < tr; i++) {
            float sums[4];
            _mm_storeu_ps(sums, acc_reduce4(a[i][0], b[i][0], a[i][1], b[i][1], a[i][2], b[i][2],
                                            a[i][3], b[i][3]));
            for (int t = 0; t < TILE_T4; t++) {
                const float *xt = x + (size_t)t * (size_t)x_stride;
                float sum = sums[t];
                for (int cc = nv; cc < cols; cc++)
                    sum = fmaf(wscalar(w, k, i, (size_t)i * w_stride, cc, f), xt[cc], sum);
                y[(size_t)t * (size_t)y_stride + (size_t)i] = sum;
            }
        }
        return;
    }
    for (int t = 0; t < tt; t++) {
        const float *xt = x + (size_t)t * (size_t)x_stride;
        float *yt = y + (size_t)t * (size_t)y_stride;
        __m128 s4 = acc_reduce4(a[0][t], b[0][t], tr > 1 ? a[1][t] : z, tr > 1 ? b[1][t] : z,
                                tr > 2 ? a[2][t] : z, tr > 2 ? b[2][t] : z,
                                tr > 3 ? a[3][t] : z, tr > 3 ? b[3][t] : z);
        if (tr == 4 && nv == cols) {
            _mm_storeu_ps(yt, s4);
            continue;
        }
        float sums[4];
        _mm_storeu_ps(sums, s4);
        for (int i = 0; i < tr; i++) {
            float sum = sums[i];
            for (int cc = nv; cc < cols; cc++)
                sum = fmaf(wscalar(w, k, i, (size_t)i * w_stride, cc, f), xt[cc], sum);
            yt[i] = sum;
        }
    }
}

/* Tile shapes as constants, so each instantiation keeps its accumulators in registers. */
#define TILE_CASE(K, TR, TT)                                                                   \
    case (TR) * 8 + (TT):                                                                      \
        tile_canon(w, w_stride, K, f, TR, x, x_stride, TT, cols, y, y_stride);                 \
        return;

#define TILE_SWITCH(K)                                                                         \
    switch (tr * 8 + tt) {                                                                     \
        TILE_CASE(K, 1, 1) TILE_CASE(K, 1, 2) TILE_CASE(K, 1, 3)                               \
        TILE_CASE(K, 2, 1) TILE_CASE(K, 2, 2) TILE_CASE(K, 2, 3)                               \
        TILE_CASE(K, 3, 1) TILE_CASE(K, 3, 2) TILE_CASE(K, 3, 3)                               \
        TILE_CASE(K, 4, 1) TILE_CASE(K, 4, 2) TILE_CASE(K, 4, 3)                               \
        TILE_CASE(K, 1, 4) TILE_CASE(K, 2, 4) TILE_CASE(K, 3, 4)                               \
    default: MTP_CHECK(!"matmul tile shape");                                                  \
    }

static void tile_f32(const float *w, size_t w_stride, int tr, const float *x, int x_stride, int tt,
                     int cols, float *y, int y_stride)
{
    const struct wfp8 *f = NULL;
    TILE_SWITCH(WSRC_F32)
}

static void tile_bf16(const uint16_t *w, size_t w_stride, int tr, const float *x, int x_stride,
                      int tt, int cols, float *y, int y_stride)
{
    const struct wfp8 *f = NULL;
    TILE_SWITCH(WSRC_BF16)
}

static void tile_fp8(const uint8_t *w, size_t w_stride, const struct wfp8 *f, int tr,
                     const float *x, int x_stride, int tt, int cols, float *y, int y_stride)
{
    TILE_SWITCH(WSRC_FP8)
}

/* The next token tile of R remaining tokens: tiles of 3 (4 x 3 register
 * tiles reduce 4 rows' outputs at once, without waste), except that exactly 4
 * tokens (K = 3 verification) run as one 3 x 4 tile, so each weight chunk is
 * widened once (measured, lm_head 4096 x 192 BF16: n = 4 110 -> 85 us; tiles of
 * 4 for n = 8..16 were 5-15% slower than tiles of 3). */
static int token_tile(int r)
{
    if (r == TILE_T4)
        return TILE_T4;
    return r < TILE_T ? r : TILE_T;
}

/* Rows [0, m) of a block whose row i is at W + i * W_STRIDE (float panel, or
 * BF16/FP8 mapping), against all n tokens; output column 0 of Y is the
 * block's first row. FP8: FW is the weight and R0 the block's first row (for
 * the scales). Token tiles outside, row tiles inside: the block's rows stay
 * in L1 while each token tile passes over them. */
static void block_canon(const void *w, size_t w_stride, enum wsrc k, int m, int cols,
                        const float *x, int x_stride, int n, float *y, int y_stride,
                        const struct mtp_weight *fw, int r0)
{
    for (int t = 0; t < n;) {
        int tt = token_tile(n - t), tr_max = tt == TILE_T4 ? TILE_R4 : TILE_R;
        const float *xt = x + (size_t)t * (size_t)x_stride;
        for (int r = 0; r < m; r += tr_max) {
            int tr = m - r < tr_max ? m - r : tr_max;
            float *yt = y + (size_t)t * (size_t)y_stride + r;
            if (k == WSRC_F32) {
                tile_f32((const float *)w + (size_t)r * w_stride, w_stride, tr, xt, x_stride, tt,
                         cols, yt, y_stride);
            } else if (k == WSRC_BF16) {
                tile_bf16((const uint16_t *)w + (size_t)r * w_stride, w_stride, tr, xt, x_stride,
                          tt, cols, yt, y_stride);
            } else {
                struct wfp8 f = {.bcols = fw->block_cols};
                int n_col_blocks = (fw->cols + fw->block_cols - 1) / fw->block_cols;
                for (int i = 0; i < tr; i++)
                    f.srow[i] = fw->scale_inv +
                                (size_t)((r0 + r + i) / fw->block_rows) * (size_t)n_col_blocks;
                tile_fp8((const uint8_t *)w + (size_t)r * w_stride, w_stride, &f, tr, xt,
                         x_stride, tt, cols, yt, y_stride);
            }
        }
        t += tt;
    }
}
#endif /* __AVX512F__ */

size_t mtp_cpu_panel_stride(int cols) { return ((size_t)cols + 15) / 16 * 16; }

void mtp_cpu_dot_rows(const float *w, size_t w_stride, int m, int cols, const float *x,
                      int x_stride, int n, float *y, int y_stride)
{
#ifdef __AVX512F__
    block_canon(w, w_stride, WSRC_F32, m, cols, x, x_stride, n, y, y_stride, NULL, 0);
#else
    for (int t = 0; t < n; t++)
        for (int i = 0; i < m; i++)
            y[(size_t)t * (size_t)y_stride + (size_t)i] =
                mtp_cpu_dot_f32(w + (size_t)i * w_stride, x + (size_t)t * (size_t)x_stride, cols);
#endif
}

#ifndef __AVX512F__

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
#endif

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__F16C__)
/*
 * AVX2 at n <= MATMUL_TILE (decode, drafts, short verifications): the row is
 * widened in registers 8 columns at a time and fed straight to the FMAs, with
 * no decoded copy in memory (the store and reload of mtp_cpu_row_decode were
 * half of an mtp-v3 decode on an AVX2-only CPU). Same canonical order as
 * row_tile (chunk c / 8 into accumulator (c / 8) % 4, the same reduction and
 * scalar tail), and each widened value is the one mtp_cpu_row_decode would
 * store, so the results are bitwise those of row_tile.
 */
enum wdirect { WD_F32, WD_BF16, WD_FP8 };
enum { BF16_PREFETCH_BYTES = 512 };

/*
 * FP8 at 32 columns a time, for blocks whose width is a multiple of 32 (every
 * released checkpoint: 128). fp8x8 spends 14 vector operations per 8 weights
 * (an FP8 matmul ran at 5 GB/s from memory and from L2 alike, a third of a
 * BF16 one): here each E4M3 byte goes to the top byte of its 32-bit lane (one
 * vpshufb per 8 weights from 16 bytes loaded into both 128-bit halves), an
 * arithmetic shift right by 4 puts e e e e m m m at float bits 26..20 with
 * copies of the sign above them, and an AND keeps the sign in bit 31 alone:
 * the float 2^-120 * fp8, exactly, for normals and subnormals alike (both
 * exponent fields then sit 120 apart in bias). 2^120 is folded into the
 * block scale: fp8 * 2^-120 * (scale * 2^120) is one rounding of the same
 * real number as fp8 * scale, so every weight is bitwise fp8x8's (and
 * mtp_cpu_row_decode's) whenever scale * 2^120 is a finite float
 * (fp8_fold_ok). Rows holding a NaN code, a zero or a subnormal
 * (fp8_row_normal), and rows with a block scale that does not fold, take
 * fp8x8.
 */
static inline __attribute__((always_inline)) __m256 fp8x8_folded(__m256i both, __m256i pick,
                                                                  __m256 scale_fold)
{
    __m256i top = _mm256_shuffle_epi8(both, pick); /* byte l in the top byte of lane l */
    __m256i bits = _mm256_and_si256(_mm256_srai_epi32(top, 4),
                                    _mm256_set1_epi32((int)0x87F00000u));
    return _mm256_mul_ps(_mm256_castsi256_ps(bits), scale_fold);
}

/* vpshufb masks: chunk J (8 bytes) of the 16 bytes loaded into both halves. */
static inline __attribute__((always_inline)) __m256i fp8_pick(int j)
{
    const char z = (char)0x80, b = (char)(8 * j);
    return _mm256_setr_epi8(z, z, z, b, z, z, z, (char)(b + 1), z, z, z, (char)(b + 2), z, z, z,
                            (char)(b + 3), z, z, z, (char)(b + 4), z, z, z, (char)(b + 5), z, z,
                            z, (char)(b + 6), z, z, z, (char)(b + 7));
}

/* Whether the 32 bytes at SRC are all normal E4M3 numbers, as a mask of
 * 0xFF bytes: not a NaN code (x111 1111), which fp8x8_folded would read as a
 * finite number, and exponent field not 0: zeros and subnormals come out
 * exact but as float subnormals, and each multiply by one costs a microcode
 * assist on this AMD core (the FP8 matmul fell to 0.6 GB/s on uniformly
 * random bytes). With u = (b & 0x7F) + 1 as a signed byte, that is u > 8:
 * NaN codes wrap to -128. */
static inline __attribute__((always_inline)) __m256i fp8x32_normal(const uint8_t *src)
{
    __m256i u = _mm256_add_epi8(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)src),
                                                 _mm256_set1_epi8(0x7F)),
                                _mm256_set1_epi8(1));
    return _mm256_cmpgt_epi8(u, _mm256_set1_epi8(8));
}

/* Whether bytes [0, N32) of ROW (N32 a multiple of 32) are all normal: a
 * pass of its own, so that the widening loop needs no test and keeps its
 * constants in registers (the row is in L1 for that loop after this pass). */
static int fp8_row_normal(const uint8_t *row, int n32)
{
    __m256i ok = _mm256_set1_epi8(-1);
    for (int g = 0; g < n32; g += 32)
        ok = _mm256_and_si256(ok, fp8x32_normal(row + g));
    return _mm256_movemask_epi8(ok) == -1;
}

/* scale * 2^120 is a finite float (and NaN scales are refused). */
static inline int fp8_fold_ok(float scale) { return fabsf(scale) < 0x1p7f; }

/* Columns [0, N32) of one FP8 row (N32 a multiple of 32, BC of 32) against NT
 * tokens, added to ACC in the canonical chunk order: fp8x8_folded where it
 * applies, else fp8x8. The accumulators live in registers inside. */
static inline __attribute__((always_inline)) void
fp8_groups_nt(const uint8_t *row, const float *scales, int bc, int n32, const float *x,
              int x_stride, const int nt, __m256 (*accp)[4])
{
    __m256 acc[MATMUL_TILE][4];
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < 4; j++)
            acc[t][j] = accp[t][j];
    const __m256i pick0 = fp8_pick(0), pick1 = fp8_pick(1);
    /* Chunk J (a constant) of the group at column G, widened as WIDEN. */
#define FP8_CHUNK(G, J, WIDEN)                                                                 \
    do {                                                                                       \
        __m256 wv = (WIDEN);                                                                   \
        for (int t = 0; t < nt; t++)                                                           \
            acc[t][J] = _mm256_fmadd_ps(                                                       \
                wv, _mm256_loadu_ps(x + (size_t)t * (size_t)x_stride + (G) + 8 * (J)), acc[t][J]); \
    } while (0)
    int fast = fp8_row_normal(row, n32);
    for (int c = 0; c < n32 && fast; c += bc)
        fast = fp8_fold_ok(scales[c / bc]);
    for (int c = 0; c < n32; c += bc) {
        int c1 = c + bc < n32 ? c + bc : n32;
        float s = scales[c / bc];
        if (fast) {
            __m256 sfold = _mm256_set1_ps(s * 0x1p120f);
            for (int g = c; g < c1; g += 32) {
                const uint8_t *p = row + g;
                __m256i lo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
                __m256i hi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 16)));
                FP8_CHUNK(g, 0, fp8x8_folded(lo, pick0, sfold));
                FP8_CHUNK(g, 1, fp8x8_folded(lo, pick1, sfold));
                FP8_CHUNK(g, 2, fp8x8_folded(hi, pick0, sfold));
                FP8_CHUNK(g, 3, fp8x8_folded(hi, pick1, sfold));
            }
        } else {
            __m256 s1 = _mm256_set1_ps(s);
            for (int g = c; g < c1; g += 32) {
                FP8_CHUNK(g, 0, fp8x8(row + g, s1));
                FP8_CHUNK(g, 1, fp8x8(row + g + 8, s1));
                FP8_CHUNK(g, 2, fp8x8(row + g + 16, s1));
                FP8_CHUNK(g, 3, fp8x8(row + g + 24, s1));
            }
        }
    }
#undef FP8_CHUNK
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < 4; j++)
            accp[t][j] = acc[t][j];
}

/* fp8_groups_nt for a run-time NT, out of line so that its loop gets the
 * registers to itself (inlined into block_direct, constants were spilled). */
static __attribute__((noinline)) void fp8_row_groups(const uint8_t *row, const float *scales,
                                                     int bc, int n32, const float *x,
                                                     int x_stride, int nt, __m256 (*acc)[4])
{
    switch (nt) {
    case 1: fp8_groups_nt(row, scales, bc, n32, x, x_stride, 1, acc); break;
    case 2: fp8_groups_nt(row, scales, bc, n32, x, x_stride, 2, acc); break;
    case 3: fp8_groups_nt(row, scales, bc, n32, x, x_stride, 3, acc); break;
    default: fp8_groups_nt(row, scales, bc, n32, x, x_stride, 4, acc); break;
    }
}

static inline __attribute__((always_inline)) void
row_tile_direct(const struct mtp_weight *w, enum wdirect k, int r, const float *x, int x_stride,
                int nt, float *y, int y_stride)
{
    const int cols = w->cols, nv = cols & ~7;
    const size_t base = (size_t)r * (size_t)cols;
    const float *scales = NULL;
    if (k == WD_FP8)
        scales = w->scale_inv +
                 (size_t)(r / w->block_rows) * (size_t)((cols + w->block_cols - 1) / w->block_cols);
    __m256 acc[MATMUL_TILE][4];
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < 4; j++)
            acc[t][j] = _mm256_setzero_ps();
    __m256 sc = _mm256_set1_ps(1.0f);
    int next_block = 0;
    /* Chunk J (a constant: the accumulators stay in registers) at column C. */
#define DIRECT_CHUNK(C, J)                                                                     \
    do {                                                                                       \
        __m256 wv;                                                                             \
        if (k == WD_F32) {                                                                     \
            wv = _mm256_loadu_ps((const float *)w->data + base + (size_t)(C));                 \
        } else if (k == WD_BF16) {                                                             \
            __m128i h = _mm_loadu_si128(                                                       \
                (const __m128i *)((const uint16_t *)w->data + base + (size_t)(C)));            \
            wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));         \
        } else {                                                                               \
            if ((C) == next_block) { /* block_cols % 8 == 0: one scale per chunk */            \
                sc = _mm256_set1_ps(scales[(C) / w->block_cols]);                              \
                next_block += w->block_cols;                                                   \
            }                                                                                  \
            wv = fp8x8((const uint8_t *)w->data + base + (size_t)(C), sc);                     \
        }                                                                                      \
        for (int t = 0; t < nt; t++)                                                           \
            acc[t][J] = _mm256_fmadd_ps(                                                       \
                wv, _mm256_loadu_ps(x + (size_t)t * (size_t)x_stride + (C)), acc[t][J]);       \
    } while (0)
    int c = 0;
    if (k == WD_FP8 && w->block_cols % 32 == 0) {
        const int bc = w->block_cols, n32 = cols & ~31;
        fp8_row_groups((const uint8_t *)w->data + base, scales, bc, n32, x, x_stride, nt, acc);
        c = n32;
        /* The chunks left (< 32 columns) continue with DIRECT_CHUNK. */
        next_block = c % bc == 0 ? c : (c / bc + 1) * bc;
        if (c % bc != 0)
            sc = _mm256_set1_ps(scales[c / bc]);
    }
    for (; c + 32 <= nv; c += 32) {
        /* BF16 streams at 13-14 GB/s on its own against 20 for a plain read of
         * the same memory: the hardware prefetcher does not run far enough ahead
         * of a loop this fast. 512 bytes ahead: 15.5-17 GB/s (1024 was no better). */
        if (k == WD_BF16)
            _mm_prefetch((const char *)((const uint16_t *)w->data + base + (size_t)c) +
                             BF16_PREFETCH_BYTES,
                         _MM_HINT_T0);
        DIRECT_CHUNK(c, 0);
        DIRECT_CHUNK(c + 8, 1);
        DIRECT_CHUNK(c + 16, 2);
        DIRECT_CHUNK(c + 24, 3);
    }
    if (c < nv)
        DIRECT_CHUNK(c, 0);
    if (c + 8 < nv)
        DIRECT_CHUNK(c + 8, 1);
    if (c + 16 < nv)
        DIRECT_CHUNK(c + 16, 2);
#undef DIRECT_CHUNK
    float tail[8] = {0};
    if (nv < cols)
        mtp_cpu_row_decode(w, r, nv, cols, tail);
    for (int t = 0; t < nt; t++) {
        const float *xt = x + (size_t)t * (size_t)x_stride;
        float s = acc_reduce(acc[t]);
        for (int ct = nv; ct < cols; ct++)
            s = fmaf(tail[ct - nv], xt[ct], s);
        y[(size_t)t * (size_t)y_stride + (size_t)r] = s;
    }
}

#define ROW_DIRECT_NT(K)                                                                       \
    switch (n) {                                                                               \
    case 1: for (int r = r0; r < r1; r++) row_tile_direct(w, K, r, x, x_stride, 1, y, y_stride); break; \
    case 2: for (int r = r0; r < r1; r++) row_tile_direct(w, K, r, x, x_stride, 2, y, y_stride); break; \
    case 3: for (int r = r0; r < r1; r++) row_tile_direct(w, K, r, x, x_stride, 3, y, y_stride); break; \
    default: for (int r = r0; r < r1; r++) row_tile_direct(w, K, r, x, x_stride, 4, y, y_stride); break; \
    }

/* Rows [r0, r1) for n <= MATMUL_TILE tokens in registers; 0 when W's dtype
 * (F16) or FP8 block width (not a multiple of 8) needs the decoded path. */
static int block_direct(const struct mtp_weight *w, int r0, int r1, const float *x, int x_stride,
                        int n, float *y, int y_stride)
{
    if (n > MATMUL_TILE)
        return 0;
    switch (w->dtype) {
    case MTP_DTYPE_F32: ROW_DIRECT_NT(WD_F32) return 1;
    case MTP_DTYPE_BF16: ROW_DIRECT_NT(WD_BF16) return 1;
    case MTP_DTYPE_F8_E4M3:
        if (w->block_cols % 8 != 0)
            return 0;
        ROW_DIRECT_NT(WD_FP8)
        return 1;
    default: return 0;
    }
}
#endif

#ifndef __AVX512F__
/*
 * Fallback (no AVX-512): rows one at a time, tokens in tiles of MATMUL_TILE,
 * each token with its own accumulators (row_tile). ROW is the decoded row, or
 * NULL for F32 (read from the mapping).
 */
static void block_fallback(const struct mtp_weight *w, int r0, int r1, const float *x,
                           int x_stride, int n, float *y, int y_stride, float *row_buf)
{
    float buf[SEG] __attribute__((aligned(64)));
    for (int r = r0; r < r1; r++) {
        const float *row = NULL;
        if (w->dtype != MTP_DTYPE_F32) {
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
#endif

/* One matmul call, as the work items see it. */
struct matmul_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_weight *w;
    const float *x;
    int x_stride, n;
    float *y;
    int y_stride;
};

#ifdef __AVX512F__
/* FP8 rows are widened in registers at small n (like BF16) when every 16-column
 * chunk and every row tile has a single block scale. */
static int fp8_direct(const struct mtp_weight *w, int n)
{
    return w->dtype == MTP_DTYPE_F8_E4M3 && n <= BF16_DIRECT_N && w->block_cols % 16 == 0;
}
#endif

/* Work item B: output rows [B * MATMUL_ROWS, ...) for all tokens. */
static void matmul_block(void *arg, int b, int thread)
{
    const struct matmul_job *j = arg;
    const struct mtp_weight *w = j->w;
    int r0 = b * MATMUL_ROWS;
    int r1 = r0 + MATMUL_ROWS < w->rows ? r0 + MATMUL_ROWS : w->rows;
#ifdef __AVX512F__
    const int cols = w->cols;
    float *yb = j->y + r0;
    if (w->dtype == MTP_DTYPE_F32) {
        block_canon((const float *)w->data + (size_t)r0 * (size_t)cols, (size_t)cols, WSRC_F32,
                    r1 - r0, cols, j->x, j->x_stride, j->n, yb, j->y_stride, NULL, 0);
        return;
    }
    if (w->dtype == MTP_DTYPE_BF16 && j->n <= BF16_DIRECT_N) {
        block_canon((const uint16_t *)w->data + (size_t)r0 * (size_t)cols, (size_t)cols, WSRC_BF16,
                    r1 - r0, cols, j->x, j->x_stride, j->n, yb, j->y_stride, NULL, 0);
        return;
    }
    if (fp8_direct(w, j->n)) {
        block_canon((const uint8_t *)w->data + (size_t)r0 * (size_t)cols, (size_t)cols, WSRC_FP8,
                    r1 - r0, cols, j->x, j->x_stride, j->n, yb, j->y_stride, w, r0);
        return;
    }
    /* Widen the block once; every token tile reads the panel. */
    size_t ps = mtp_cpu_panel_stride(cols);
    float *panel = mtp_cpu_thread_scratch(j->ctx, thread, (size_t)MATMUL_ROWS * ps);
    for (int r = r0; r < r1; r++)
        mtp_cpu_row_decode(w, r, 0, cols, panel + (size_t)(r - r0) * ps);
    block_canon(panel, ps, WSRC_F32, r1 - r0, cols, j->x, j->x_stride, j->n, yb, j->y_stride,
                NULL, 0);
#else
#if defined(__AVX2__) && defined(__F16C__)
    if (block_direct(w, r0, r1, j->x, j->x_stride, j->n, j->y, j->y_stride))
        return;
#endif
    float *row_buf = mtp_cpu_thread_scratch(j->ctx, thread, mtp_cpu_panel_stride(w->cols));
    block_fallback(w, r0, r1, j->x, j->x_stride, j->n, j->y, j->y_stride, row_buf);
#endif
}

/* Run N_ITEMS items on the pool, or inline on thread 0 when the op is too
 * small to be worth waking the other threads (the result is the same). */
static void run_items(struct mtp_cpu_ctx *ctx, int n_items, mtp_cpu_task_fn fn, void *arg,
                      double work)
{
    if (work > 65536.0) {
        mtp_cpu_parallel_for(ctx, n_items, fn, arg);
        return;
    }
    for (int i = 0; i < n_items; i++)
        fn(arg, i, 0);
}

void mtp_cpu_matmul(void *vctx, const struct mtp_weight *w, const float *x, int x_stride, int n,
                    float *y, int y_stride)
{
    struct mtp_cpu_ctx *ctx = vctx;
    if (n <= 0 || w->rows <= 0)
        return;
    MTP_CHECK(x_stride >= w->cols && y_stride >= w->rows);
    if (ctx->prefill && n > MTP_CPU_INVARIANT_MAX_N) {
        mtp_cpu_gemm_prefill(ctx, w, x, x_stride, n, y, y_stride);
        return;
    }
    int n_blocks = (w->rows + MATMUL_ROWS - 1) / MATMUL_ROWS;
    struct matmul_job job = {ctx, w, x, x_stride, n, y, y_stride};
    run_items(ctx, n_blocks, matmul_block, &job, (double)w->rows * (double)w->cols * (double)n);
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
