/*
 * cpu_gemm.c - the blocked GEMM of prompt prefill: y = W x for n tokens at
 * once, when the engine has said the ops belong to a prefill
 * (mtp_backend_i.set_prefill) and n > MTP_CPU_INVARIANT_MAX_N.
 *
 * Numerics: each output is a plain left-to-right chain of fused
 * multiply-adds over the columns, not the canonical 4-accumulator order of
 * cpu_matmul.c, so prefill results differ from decode in the last bits.
 * docs/design.md §4 allows it: baseline and speculative runs share the
 * prefill, and verification, drafts and catch-up rows never come here.
 * tests/test_cpu_matmul.c bounds the difference.
 *
 * Method: a work item is a panel of GEMM_ROWS output rows. Its rows are
 * widened once (any dtype, FP8 with its scales) and transposed (16 x 16
 * register blocks) into the thread's scratch, P[c][i] = W[r0 + i, c], so one column of the panel is two
 * zmm vectors. The register tile is GEMM_ROWS rows x GEMM_TT tokens (24
 * accumulators): per column, two panel loads and GEMM_TT broadcasts of x feed
 * 2 * GEMM_TT FMAs, with no horizontal reduction at the end. The widening is
 * paid once per call and reused by all n tokens. Without AVX-512 (AVX2 + FMA:
 * most laptops, AMD before Zen 4) the same panel is read as four ymm vectors,
 * 16 rows x GEMM_TT_AVX2 tokens per register tile, with the same per-output
 * FMA chain, so both paths give the same bits; the scalar fallback too.
 *
 * Why hand-written rather than OpenBLAS/BLIS sgemm: the weights are BF16/FP8
 * in the mapping, so a BLAS call needs an F32 copy of each panel first (the
 * transposed decode done here anyway); the products are small (a few hundred
 * rows and columns, e.g. 192 x 192 experts over ~32 gathered tokens), where
 * BLAS's own packing and per-call threading overheads are the same size as
 * the work; and a BLAS call would bring its own thread pool next to ours.
 *
 * Also here, for the same reason: the prefill SwiGLU activation and attention
 * softmax with a vectorised exp (mtp_cpu_silu_mul_prefill,
 * mtp_cpu_softmax_prefill); libm's scalar expf was a tenth of a prefill.
 */
#include "cpu_internal.h"
#include "cpu_pool.h" /* defines: mtp_cpu_parallel_for, mtp_cpu_thread_scratch */

#include <math.h> /* defines: fmaf, expf */

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h> /* defines: _mm512_*, _mm256_* */
#endif

/* The AVX2 + FMA kernels, where AVX-512 is absent. */
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define MTP_GEMM_AVX2 1
#endif

#include "../../core/error.h" /* defines: MTP_CHECK */

enum {
    GEMM_ROWS = 32,    /* output rows per panel (two zmm vectors) */
    GEMM_TT = 12,      /* tokens per register tile */
    GEMM_TT_AVX2 = 6,  /* tokens per AVX2 tile: 2 x 6 accumulators + 2 loads + 1 broadcast of 16 ymm */
};

struct gemm_job {
    struct mtp_cpu_ctx *ctx;
    const struct mtp_weight *w;
    const float *x;
    int x_stride, n;
    float *y;
    int y_stride;
};

#ifdef __AVX512F__
/* The 16 x 16 transpose of R[0..16) (rows) in registers: R[c] becomes column c. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int k = 0; k < 8; k++) { /* per lane: [a0 b0 a1 b1], [a2 b2 a3 b3] */
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) { /* u[4k + j], lane L: element 4L + j of rows 4k..4k+3 */
        u[4 * k] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
        u[4 * k + 1] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
        u[4 * k + 2] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
        u[4 * k + 3] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) { /* gather lane L of u[j], u[4+j], u[8+j], u[12+j] */
        __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        __m512 w0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 v1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(v0, v1, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(w0, w1, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(w0, w1, 0xDD);
    }
}
#endif

#ifdef MTP_GEMM_AVX2
/* The 8 x 8 transpose of R[0..8) (rows) in registers: R[c] becomes column c. */
static inline void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int k = 0; k < 4; k++) { /* per 128-bit lane: [a0 b0 a1 b1], [a2 b2 a3 b3] */
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) { /* u[4k + j], lane L: element 4L + j of rows 4k..4k+3 */
        u[4 * k] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
        u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
        u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
        u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) { /* low lanes give columns 0..3, high lanes 4..7 */
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}
#endif

/*
 * P[c * GEMM_ROWS + i] = W[r0 + i, c] for i < m, 0 for m <= i < GEMM_ROWS.
 * The rows are decoded (vectorised) into ROWS [GEMM_ROWS, rs] first, then
 * moved 16 x 16 blocks at a time through a register transpose; a scalar
 * scatter was as slow as the product itself at the ~32 tokens an expert gets.
 */
static void panel_pack(const struct mtp_weight *w, int r0, int m, float *rows, size_t rs,
                       float *panel)
{
    const int cols = w->cols;
    for (int i = 0; i < GEMM_ROWS; i++) {
        float *ri = rows + (size_t)i * rs;
        if (i < m)
            mtp_cpu_row_decode(w, r0 + i, 0, cols, ri);
        else
            for (int c = 0; c < cols; c++)
                ri[c] = 0.0f;
    }
    int c = 0;
#ifdef __AVX512F__
    for (; c + 16 <= cols; c += 16)
        for (int h = 0; h < GEMM_ROWS; h += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = _mm512_loadu_ps(rows + (size_t)(h + i) * rs + c);
            transpose16(r);
            for (int i = 0; i < 16; i++)
                _mm512_store_ps(panel + (size_t)(c + i) * GEMM_ROWS + h, r[i]);
        }
#elif defined(MTP_GEMM_AVX2)
    for (; c + 8 <= cols; c += 8)
        for (int h = 0; h < GEMM_ROWS; h += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = _mm256_loadu_ps(rows + (size_t)(h + i) * rs + c);
            transpose8(r);
            for (int i = 0; i < 8; i++)
                _mm256_store_ps(panel + (size_t)(c + i) * GEMM_ROWS + h, r[i]);
        }
#endif
    for (; c < cols; c++)
        for (int i = 0; i < GEMM_ROWS; i++)
            panel[(size_t)c * GEMM_ROWS + i] = rows[(size_t)i * rs + c];
}

#ifdef __AVX512F__
/* y[t, 0..m) for TT tokens (a constant after inlining); masks select the panel's real rows. */
static inline __attribute__((always_inline)) void
gemm_tile(const float *panel, int cols, const float *x, int x_stride, int tt, float *y,
          int y_stride, __mmask16 m0, __mmask16 m1)
{
    __m512 a0[GEMM_TT], a1[GEMM_TT];
    for (int t = 0; t < tt; t++)
        a0[t] = a1[t] = _mm512_setzero_ps();
    for (int c = 0; c < cols; c++) {
        __m512 w0 = _mm512_load_ps(panel + (size_t)c * GEMM_ROWS);
        __m512 w1 = _mm512_load_ps(panel + (size_t)c * GEMM_ROWS + 16);
        for (int t = 0; t < tt; t++) {
            __m512 xb = _mm512_set1_ps(x[(size_t)t * (size_t)x_stride + c]);
            a0[t] = _mm512_fmadd_ps(w0, xb, a0[t]);
            a1[t] = _mm512_fmadd_ps(w1, xb, a1[t]);
        }
    }
    for (int t = 0; t < tt; t++) {
        _mm512_mask_storeu_ps(y + (size_t)t * (size_t)y_stride, m0, a0[t]);
        _mm512_mask_storeu_ps(y + (size_t)t * (size_t)y_stride + 16, m1, a1[t]);
    }
}

#define GEMM_CASE(TT)                                                                          \
    case TT:                                                                                   \
        gemm_tile(panel, cols, x, x_stride, TT, y, y_stride, m0, m1);                          \
        return;

static void gemm_tile_any(const float *panel, int cols, const float *x, int x_stride, int tt,
                          float *y, int y_stride, int m)
{
    __mmask16 m0 = (__mmask16)(m >= 16 ? 0xFFFF : (1u << m) - 1);
    __mmask16 m1 = (__mmask16)(m >= 32 ? 0xFFFF : m <= 16 ? 0 : (1u << (m - 16)) - 1);
    switch (tt) {
        GEMM_CASE(1) GEMM_CASE(2) GEMM_CASE(3) GEMM_CASE(4) GEMM_CASE(5) GEMM_CASE(6)
        GEMM_CASE(7) GEMM_CASE(8) GEMM_CASE(9) GEMM_CASE(10) GEMM_CASE(11) GEMM_CASE(12)
    default: MTP_CHECK(!"gemm tile shape");
    }
}
#elif defined(MTP_GEMM_AVX2)
/* Rows 0..M (M <= 16) of a 16-row half panel for TT <= GEMM_TT_AVX2 tokens. */
static inline __attribute__((always_inline)) void
gemm_tile16(const float *half, int cols, const float *x, int x_stride, int tt, float *y,
            int y_stride, int m)
{
    __m256 a0[GEMM_TT_AVX2], a1[GEMM_TT_AVX2];
    for (int t = 0; t < tt; t++)
        a0[t] = a1[t] = _mm256_setzero_ps();
    for (int c = 0; c < cols; c++) {
        __m256 w0 = _mm256_load_ps(half + (size_t)c * GEMM_ROWS);
        __m256 w1 = _mm256_load_ps(half + (size_t)c * GEMM_ROWS + 8);
        for (int t = 0; t < tt; t++) {
            __m256 xb = _mm256_broadcast_ss(x + (size_t)t * (size_t)x_stride + c);
            a0[t] = _mm256_fmadd_ps(w0, xb, a0[t]);
            a1[t] = _mm256_fmadd_ps(w1, xb, a1[t]);
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(m), lane);
    const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(m - 8), lane);
    for (int t = 0; t < tt; t++) {
        _mm256_maskstore_ps(y + (size_t)t * (size_t)y_stride, k0, a0[t]);
        _mm256_maskstore_ps(y + (size_t)t * (size_t)y_stride + 8, k1, a1[t]);
    }
}

#define GEMM_CASE16(TT)                                                                        \
    case TT:                                                                                   \
        gemm_tile16(half, cols, xt, x_stride, TT, yt, y_stride, mh);                           \
        break;

static void gemm_tile_any(const float *panel, int cols, const float *x, int x_stride, int tt,
                          float *y, int y_stride, int m)
{
    for (int h = 0; h < m; h += 16) {
        const float *half = panel + h;
        const int mh = m - h < 16 ? m - h : 16;
        for (int t = 0; t < tt; t += GEMM_TT_AVX2) {
            const float *xt = x + (size_t)t * (size_t)x_stride;
            float *yt = y + (size_t)t * (size_t)y_stride + h;
            switch (tt - t < GEMM_TT_AVX2 ? tt - t : GEMM_TT_AVX2) {
                GEMM_CASE16(1) GEMM_CASE16(2) GEMM_CASE16(3)
                GEMM_CASE16(4) GEMM_CASE16(5) GEMM_CASE16(6)
            default: MTP_CHECK(!"gemm tile shape");
            }
        }
    }
}
#else
/* Portable build: the same panel, one token and row at a time (plain fmaf chain). */
static void gemm_tile_any(const float *panel, int cols, const float *x, int x_stride, int tt,
                          float *y, int y_stride, int m)
{
    for (int t = 0; t < tt; t++)
        for (int i = 0; i < m; i++) {
            float s = 0.0f;
            for (int c = 0; c < cols; c++)
                s = fmaf(panel[(size_t)c * GEMM_ROWS + i], x[(size_t)t * (size_t)x_stride + c], s);
            y[(size_t)t * (size_t)y_stride + i] = s;
        }
}
#endif

/* Work item P: rows [P * GEMM_ROWS, ...) for every token. */
static void gemm_panel(void *arg, int p, int thread)
{
    const struct gemm_job *j = arg;
    const int cols = j->w->cols, r0 = p * GEMM_ROWS;
    const int m = j->w->rows - r0 < GEMM_ROWS ? j->w->rows - r0 : GEMM_ROWS;
    size_t rs = mtp_cpu_panel_stride(cols);
    float *scratch = mtp_cpu_thread_scratch(j->ctx, thread, (size_t)cols * GEMM_ROWS + GEMM_ROWS * rs);
    float *panel = scratch, *rows = scratch + (size_t)cols * GEMM_ROWS; /* both 64-byte aligned */
    panel_pack(j->w, r0, m, rows, rs, panel);
    for (int t = 0; t < j->n; t += GEMM_TT) {
        int tt = j->n - t < GEMM_TT ? j->n - t : GEMM_TT;
        gemm_tile_any(panel, cols, j->x + (size_t)t * (size_t)j->x_stride, j->x_stride, tt,
                      j->y + (size_t)t * (size_t)j->y_stride + r0, j->y_stride, m);
    }
}

void mtp_cpu_gemm_prefill(struct mtp_cpu_ctx *ctx, const struct mtp_weight *w, const float *x,
                          int x_stride, int n, float *y, int y_stride)
{
    struct gemm_job job = {ctx, w, x, x_stride, n, y, y_stride};
    mtp_cpu_parallel_for(ctx, (w->rows + GEMM_ROWS - 1) / GEMM_ROWS, gemm_panel, &job);
}

/* ------------------------------------------------------------ prefill SwiGLU */

#ifdef __AVX512F__
/*
 * e^x for 16 floats, within ~2 ulp of expf (prefill only: the invariant paths
 * keep libm's expf). x = k ln2 + r with k = round(x log2 e), |r| <= ln2 / 2,
 * ln2 split in two parts so r is exact to ~2^-40; e^r by its Taylor series to
 * r^6 (truncation r^7 / 7! < 1.2e-7 relative); scalef multiplies by 2^k with
 * the IEEE overflow to inf and underflow to 0. x is clamped first so that
 * +-inf inputs cannot make r a NaN.
 */
static inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145752f), x); /* ln2 high part */
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860677e-6f), r);      /* ln2 low part */
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}
#elif defined(MTP_GEMM_AVX2)
/* 2^k for integer k in [-75, 64], built in the exponent field. */
static inline __m256 pow2_8(__m256i k)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

/* exp16's method for 8 floats, the same operations in the same order. AVX2 has
 * no scalef, so 2^k (k in [-150, 128] after the clamp) is applied as two exact
 * powers of two, 2^(k >> 1) then 2^(k - (k >> 1)): the first product is exact
 * and the second rounds once, to a subnormal, zero or inf as scalef would. */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), x); /* ln2 high part */
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);      /* ln2 low part */
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ki = _mm256_cvtps_epi32(k);
    __m256i k1 = _mm256_srai_epi32(ki, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2_8(k1)), pow2_8(_mm256_sub_epi32(ki, k1)));
}

static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

void mtp_cpu_silu_mul_prefill(float *gate, const float *up, size_t len)
{
    size_t i = 0;
#ifdef __AVX512F__
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= len; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
    }
#elif defined(MTP_GEMM_AVX2)
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= len; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
#endif
    for (; i < len; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* Attention softmax of one prompt token in prefill: S[k] = exp((S[k] + PE[k]) *
 * SCALE - max) / sum over k < LEN, with exp16 and vector partial sums. */
void mtp_cpu_softmax_prefill(float *s, const float *pe, int len, float scale)
{
    int k = 0;
    float mx = -INFINITY;
#ifdef __AVX512F__
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 vmx = _mm512_set1_ps(-INFINITY);
    for (; k + 16 <= len; k += 16) {
        __m512 v = _mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(s + k), _mm512_loadu_ps(pe + k)), sc);
        _mm512_storeu_ps(s + k, v);
        vmx = _mm512_max_ps(vmx, v);
    }
    mx = _mm512_reduce_max_ps(vmx);
#elif defined(MTP_GEMM_AVX2)
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    for (; k + 8 <= len; k += 8) {
        __m256 v = _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(s + k), _mm256_loadu_ps(pe + k)), sc);
        _mm256_storeu_ps(s + k, v);
        vmx = _mm256_max_ps(vmx, v);
    }
    mx = hmax8(vmx);
#endif
    for (int j = k; j < len; j++) {
        s[j] = (s[j] + pe[j]) * scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    float sum = 0.0f;
    k = 0;
#ifdef __AVX512F__
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 vsum = _mm512_setzero_ps();
    for (; k + 16 <= len; k += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + k), vm));
        _mm512_storeu_ps(s + k, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    sum = _mm512_reduce_add_ps(vsum);
#elif defined(MTP_GEMM_AVX2)
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (; k + 8 <= len; k += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + k), vm));
        _mm256_storeu_ps(s + k, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    sum = mtp_cpu_hsum8(vsum);
#endif
    for (int j = k; j < len; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    for (int j = 0; j < len; j++)
        s[j] = s[j] / sum;
}
