/*
 * synth_internal.h - the tensor list of a synthetic checkpoint and how each
 * tensor's values are drawn (synth_tensors.c, synth_fill.c, synth_write.c).
 */
#ifndef MTP_SYNTH_INTERNAL_H
#define MTP_SYNTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../core/dtype.h"
#include "synth.h"

enum synth_init {
    SYN_ONES,     /* RMSNorm weights */
    SYN_ZEROS,    /* e_score_correction_bias: no preference among experts */
    SYN_UNIFORM,  /* uniform in [-amplitude, amplitude] (FP8: before the block scale) */
    SYN_SCALE,    /* FP8 scale_inv: amplitude / 448 times a per-block factor in [0.5, 1.5) */
};

struct synth_tensor {
    char name[96];
    enum mtp_dtype dtype;     /* BF16, F8_E4M3 or F32 */
    int ndim;
    int64_t shape[2];
    enum synth_init init;
    float amplitude;
    int shard;                /* 0: embedding, final norm, head; L + 1: layer L */
};

/* Every tensor of SHAPE's checkpoint, in file order. Returns the count; *OUT is
 * malloc'd (free it). */
int synth_tensors(const struct mtp_synth_shape *shape, struct synth_tensor **out);

static inline uint64_t synth_tensor_numel(const struct synth_tensor *t)
{
    return t->ndim == 1 ? (uint64_t)t->shape[0] : (uint64_t)t->shape[0] * (uint64_t)t->shape[1];
}

/* Elements [first, first + count) of T, in its dtype, into DST. The values depend on
 * (SEED, T's name, element index) only, so chunks can be written in any order. */
void synth_fill(const struct synth_tensor *t, uint64_t seed, uint64_t first, size_t count,
                void *dst);

#endif
