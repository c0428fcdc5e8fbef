/*
 * cuda_bf16.h (emulation) - the part of CUDA's BF16 header the backend uses:
 * the storage type __nv_bfloat16 and its two conversions, bit-exact with the
 * device versions (widening is a shift; narrowing rounds to nearest even and
 * keeps NaN a NaN). Only the emulation build (-DMTP_CUDA_EMU=ON) sees this
 * file; real builds get NVIDIA's header. See README.md in this directory.
 */
#ifndef MTP_CUDA_EMU_BF16_H
#define MTP_CUDA_EMU_BF16_H

#include "cuda_runtime.h"

struct __nv_bfloat16 {
    uint16_t x;
};

__device__ __forceinline__ float __bfloat162float(__nv_bfloat16 h)
{
    return __uint_as_float((uint32_t)h.x << 16);
}

__device__ __forceinline__ __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u = __float_as_uint(f);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) { /* NaN: keep it quiet and a NaN */
        h.x = (uint16_t)((u >> 16) | 0x40u);
        return h;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.x = (uint16_t)(u >> 16);
    return h;
}

#endif
