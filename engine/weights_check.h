/*
 * weights_check.h - a full scan of a checkpoint for NaN and Inf
 * (`mtpbench inspect --check-weights`).
 *
 * Loading never reads every weight (a V3 checkpoint is 700 GB, mapped lazily),
 * so a NaN or Inf in a tensor only shows when a forward meets it (the engine
 * then fails naming the stage). This scan reads every tensor of every dtype
 * that can hold one: F64, F32, BF16, F16, the FP8 formats (E4M3FN has no Inf
 * and NaN = S.1111.111) and the FP8 block scales, which are F32 tensors.
 * Integer and sub-byte formats cannot hold non-finite values.
 */
#ifndef MTP_WEIGHTS_CHECK_H
#define MTP_WEIGHTS_CHECK_H

#include <stdint.h> /* defines: int64_t */

#include "safetensors.h"

/* What the scan found in one tensor. */
struct mtp_weights_finding {
    const struct mtp_tensor_info *tensor;
    int64_t n_nan, n_inf; /* elements */
    int64_t first;        /* flat index of the first non-finite element */
};

/* Called once per tensor with a non-finite value. */
typedef void (*mtp_weights_report_fn)(void *user, const struct mtp_weights_finding *f);

/* Scan every tensor of CK. Returns the number of tensors with non-finite
 * values (0: all finite); *N_SCANNED receives how many tensors could hold one
 * and were read. Never fails: the checkpoint was validated when opened. */
int mtp_weights_check_finite(struct mtp_checkpoint *ck, mtp_weights_report_fn fn, void *user,
                             int64_t *n_scanned);

#endif
