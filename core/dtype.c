/*
 * dtype.c - names, sizes and scalar decoding of the element types the engine
 * computes with (see dtype.h).
 *
 * The FP8 E4M3FN table is a compile-time constant written from the bit layout
 * of docs/model.md §2.5 (sign, 4 exponent bits with bias 7, 3 mantissa bits, no
 * infinities, NaN = S.1111.111), so there is no init call to forget and the
 * table is safe to read from any thread.
 */
#include "dtype.h"

#include "error.h" /* defines: MTP_CHECK */

#include <math.h>   /* defines: NAN, ldexpf */
#include <stdint.h> /* defines: uint8_t, uint16_t */

static const char *const dtype_names[MTP_DTYPE_COUNT] = {
    [MTP_DTYPE_F32] = "F32",    [MTP_DTYPE_BF16] = "BF16", [MTP_DTYPE_F16] = "F16",
    [MTP_DTYPE_F8_E4M3] = "F8_E4M3", [MTP_DTYPE_I32] = "I32", [MTP_DTYPE_I64] = "I64",
    [MTP_DTYPE_U8] = "U8",      [MTP_DTYPE_F64] = "F64",   [MTP_DTYPE_OTHER] = "OTHER",
};

static const size_t dtype_sizes[MTP_DTYPE_COUNT] = {
    [MTP_DTYPE_F32] = 4,     [MTP_DTYPE_BF16] = 2, [MTP_DTYPE_F16] = 2,
    [MTP_DTYPE_F8_E4M3] = 1, [MTP_DTYPE_I32] = 4,  [MTP_DTYPE_I64] = 8,
    [MTP_DTYPE_U8] = 1,      [MTP_DTYPE_F64] = 8,  [MTP_DTYPE_OTHER] = 0,
};

const char *mtp_dtype_name(enum mtp_dtype t)
{
    if ((unsigned)t >= MTP_DTYPE_COUNT)
        return "INVALID";
    return dtype_names[t];
}

size_t mtp_dtype_size(enum mtp_dtype t)
{
    if ((unsigned)t >= MTP_DTYPE_COUNT)
        return 0;
    return dtype_sizes[t];
}

/* F16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Every F16 value is
 * exactly representable in F32, so this conversion is exact. */
float mtp_f16_to_f32(uint16_t h)
{
    int sign = h >> 15;
    int e = (h >> 10) & 31;
    int m = h & 1023;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24); /* subnormal: m/1024 * 2^-14 */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(1024 + m), e - 25); /* (1 + m/1024) * 2^(e-15) */
    return sign ? -v : v;
}

/* Magnitude of an E4M3FN byte with exponent field E and mantissa M, as a
 * constant expression: subnormal m/8 * 2^-6 = m * 2^-9; normal
 * (1 + m/8) * 2^(e-7) = (8 + m) * 2^e / 2^10. Both are exact in float. */
#define FP8_MAG(e, m) ((e) == 0 ? (float)(m) / 512.0f : (float)((8 + (m)) * (1 << (e))) / 1024.0f)
#define FP8_VAL(b)                                                                                 \
    ((((b) & 0x7f) == 0x7f) ? NAN                                                                  \
                            : (((b) & 0x80) ? -1.0f : 1.0f) * FP8_MAG(((b) >> 3) & 15, (b) & 7))
#define FP8_4(b) FP8_VAL(b), FP8_VAL((b) + 1), FP8_VAL((b) + 2), FP8_VAL((b) + 3)
#define FP8_16(b) FP8_4(b), FP8_4((b) + 4), FP8_4((b) + 8), FP8_4((b) + 12)
#define FP8_64(b) FP8_16(b), FP8_16((b) + 16), FP8_16((b) + 32), FP8_16((b) + 48)

static const float fp8_e4m3_values[256] = {FP8_64(0), FP8_64(64), FP8_64(128), FP8_64(192)};

const float *const mtp_fp8_e4m3_table = fp8_e4m3_values;

float mtp_dtype_load(enum mtp_dtype t, const void *data, size_t i)
{
    switch (t) {
    case MTP_DTYPE_F32: {
        float f;
        memcpy(&f, (const char *)data + 4 * i, sizeof f); /* mappings need not be aligned */
        return f;
    }
    case MTP_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, (const char *)data + 2 * i, sizeof h);
        return mtp_bf16_to_f32(h);
    }
    case MTP_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, (const char *)data + 2 * i, sizeof h);
        return mtp_f16_to_f32(h);
    }
    case MTP_DTYPE_F8_E4M3:
        return mtp_fp8_e4m3_to_f32(((const uint8_t *)data)[i]);
    default:
        MTP_CHECK(!"mtp_dtype_load: not a float dtype");
    }
    return 0.0f;
}
