/*
 * synth_fill.c - the values of a synthetic tensor, from (seed, name, index)
 * only: a counter-based generator (splitmix64 of the element's counter) gives
 * 16 random bits per element, so any chunk can be computed on its own.
 *
 * BF16 and F32 uniform values are a * (2u - 1) rounded to the dtype. FP8
 * values are uniform over [-448, 448] rounded to the nearest E4M3 value (a
 * 4096-entry table of such codes, indexed by 12 of the bits); their block
 * scale_inv (SYN_SCALE) is amplitude / 448 times a factor in [0.5, 1.5) that
 * differs per block, so the dequantised weights are uniform in about
 * +-amplitude with a per-block spread as in real block-quantised checkpoints.
 */
#include <math.h>    /* defines: fabsf */
#include <pthread.h> /* defines: pthread_once */

#include "synth_internal.h"

enum { FP8_CODES = 4096 };
static uint8_t fp8_codes[FP8_CODES];
static pthread_once_t fp8_once = PTHREAD_ONCE_INIT;

/* Code of the E4M3 value nearest to 448 * u_i, u_i the centre of bin i of [-1, 1]. */
static void fp8_codes_build(void)
{
    for (int i = 0; i < FP8_CODES; i++) {
        float x = 448.0f * (-1.0f + (2.0f * (float)i + 1.0f) / FP8_CODES);
        int best = 0;
        float best_err = INFINITY;
        for (int b = 0; b < 256; b++) {
            if ((b & 0x7f) == 0x7f)
                continue; /* NaN codes */
            float err = fabsf(mtp_fp8_e4m3_to_f32((uint8_t)b) - x);
            if (err < best_err) {
                best_err = err;
                best = b;
            }
        }
        fp8_codes[i] = (uint8_t)best;
    }
}

static uint64_t synth_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* FNV-1a of NAME, mixed with SEED: the tensor's stream. */
static uint64_t synth_stream(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
    return synth_mix(h ^ synth_mix(seed));
}

/* 16 random bits for element I (four elements share one 64-bit draw). */
static inline unsigned synth_bits(uint64_t stream, uint64_t i)
{
    uint64_t z = synth_mix(stream + (i >> 2) * 0x9e3779b97f4a7c15ull);
    return (unsigned)(z >> (16 * (i & 3))) & 0xffffu;
}

/* Uniform in [-1, 1) from 16 bits. */
static inline float synth_unit(unsigned bits)
{
    return ((float)bits + 0.5f) / 32768.0f - 1.0f;
}

void synth_fill(const struct synth_tensor *t, uint64_t seed, uint64_t first, size_t count,
                void *dst)
{
    uint64_t s = synth_stream(seed, t->name);
    if (t->dtype == MTP_DTYPE_F8_E4M3) {
        pthread_once(&fp8_once, fp8_codes_build);
        uint8_t *o = dst;
        for (size_t k = 0; k < count; k++)
            o[k] = fp8_codes[synth_bits(s, first + k) >> 4];
        return;
    }
    for (size_t k = 0; k < count; k++) {
        float v = 0.0f;
        switch (t->init) {
        case SYN_ONES: v = 1.0f; break;
        case SYN_ZEROS: v = 0.0f; break;
        case SYN_UNIFORM: v = t->amplitude * synth_unit(synth_bits(s, first + k)); break;
        case SYN_SCALE:
            v = t->amplitude / 448.0f * (1.0f + 0.5f * synth_unit(synth_bits(s, first + k)));
            break;
        }
        if (t->dtype == MTP_DTYPE_BF16)
            ((uint16_t *)dst)[k] = mtp_f32_to_bf16(v);
        else
            ((float *)dst)[k] = v;
    }
}
