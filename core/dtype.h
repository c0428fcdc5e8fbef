/*
 * dtype.h - element types of safetensors files and scalar conversions to float.
 *
 * BF16 and F16 are converted exactly; F8_E4M3 (float8_e4m3fn: bias 7, no
 * infinities, NaN = S.1111.111, max 448) through a 256-entry table built from
 * the bit layout (docs/model.md §2.5).
 */
#ifndef MTP_DTYPE_H
#define MTP_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum mtp_dtype {
    MTP_DTYPE_F32,
    MTP_DTYPE_BF16,
    MTP_DTYPE_F16,
    MTP_DTYPE_F8_E4M3,
    MTP_DTYPE_I32,
    MTP_DTYPE_I64,
    MTP_DTYPE_U8,
    MTP_DTYPE_F64,
    MTP_DTYPE_OTHER, /* a valid safetensors dtype this engine never computes with */
    MTP_DTYPE_COUNT,
};

/* "F32", "BF16", ... as written in safetensors headers. */
const char *mtp_dtype_name(enum mtp_dtype t);
/* Bytes per element (0 for MTP_DTYPE_OTHER, whose size the parser tracks). */
size_t mtp_dtype_size(enum mtp_dtype t);

static inline float mtp_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round-to-nearest-even F32 -> BF16 (NaN stays NaN). */
static inline uint16_t mtp_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float mtp_f16_to_f32(uint16_t h);

/* The 256 decoded float8_e4m3fn values, indexed by byte. */
extern const float *const mtp_fp8_e4m3_table;
static inline float mtp_fp8_e4m3_to_f32(uint8_t b) { return mtp_fp8_e4m3_table[b]; }

/* Element I of a row of dtype T at DATA, as float (F32/BF16/F16/F8_E4M3 only). */
float mtp_dtype_load(enum mtp_dtype t, const void *data, size_t i);

#endif
