/*
 * fp8_scales.h - FP8 block scales (`weight_scale_inv`) that can be trusted.
 *
 * An F8_E4M3 weight is stored as codes; each B0 x B1 block is dequantised as
 * code * scale. A scale must be finite, positive and normal: zero erases its
 * block, a negative scale flips its signs, a denormal has lost precision and
 * its inverse overflows. And the largest code times the scale, 448 * scale,
 * must be finite in F32. Loading checks every scale against these rules (the
 * scales are 1/(B0*B1) of the weights, so reading them all costs little).
 *
 * A finite scale can still be absurd: 1e30 passes the rules above, yet the
 * layer's output reaches the residual stream, and the next RMSNorm's sum of
 * squares overflows F32 once |x| passes about 2^64 / sqrt(d). That shows up
 * only as a NaN while decoding. `inspect --check-weights` therefore also
 * reads the codes and reports every block whose largest dequantised |w|
 * exceeds MTP_FP8_MAX_WEIGHT.
 */
#ifndef MTP_FP8_SCALES_H
#define MTP_FP8_SCALES_H

#include <stdint.h> /* defines: int64_t */

#include "safetensors.h"

/* The largest finite float8_e4m3fn value. */
#define MTP_FP8_E4M3_MAX 448.0f

/* The largest dequantised |weight| taken as sound: 2^16, about the largest
 * value an F16 checkpoint can hold at all (65504). Trained weights are orders
 * of magnitude smaller; a block beyond it comes from a damaged scale. */
#define MTP_FP8_MAX_WEIGHT 65536.0f

/* What is wrong with scale S ("zero", "negative", "NaN", ...), or NULL. */
const char *mtp_fp8_scale_problem(float s);

/* Check every value of the F32 scale tensor T (2-D, one per block). MTP_OK,
 * or MTP_ERR with a message naming T's file, T, the block [row, col] and the
 * value found. */
int mtp_fp8_scales_check(const struct mtp_tensor_info *t);

/* One block the full scan refuses. */
struct mtp_fp8_block_finding {
    const struct mtp_tensor_info *weight, *scale;
    int64_t block_row, block_col;
    float value;         /* the scale */
    float largest;       /* the block's largest |code * scale| (0 when the scale is bad) */
    const char *problem; /* mtp_fp8_scale_problem, or "dequantises above the bound" */
};

typedef void (*mtp_fp8_report_fn)(void *user, const struct mtp_fp8_block_finding *f);

/* Scan every F8_E4M3 tensor NAME of CK that has a NAME_scale_inv of the
 * shape B0 x B1 blocks give (others were refused or ignored at load), and
 * report each bad block through FN. Returns the number of bad blocks;
 * *N_BLOCKS gets the number checked. */
int64_t mtp_fp8_scales_scan(struct mtp_checkpoint *ck, int b0, int b1, mtp_fp8_report_fn fn,
                            void *user, int64_t *n_blocks);

#endif
