/*
 * bench_batch.h - `mtpbench bench --batch`: the cost of one forward over B
 * sequences (engine.h "Sequences"), each verifying K+1 tokens of real text
 * after its own context, for B = 1, 2, 4, 8, 16, 32 and K = 0..3, with the
 * routed experts the forward touches; and the ratios of a forward of 8
 * single-token sequences to 8 single decodes, in time and in experts.
 */
#ifndef MTP_BENCH_BATCH_H
#define MTP_BENCH_BATCH_H

#include "engine/engine.h" /* defines: struct mtp_model, mtp_backend */

/* Tokens of DATASET (MODEL_DIR's tokenizer) give every sequence its CONTEXT
 * positions and its verified tokens; ROUNDS interleaved rounds, medians
 * printed. Builds its own engine (32 sequences) on BACKEND. MTP_OK or MTP_ERR. */
int mtp_bench_batch(struct mtp_model *model, struct mtp_backend *backend, const char *model_dir,
                    const char *dataset, int context, int rounds);

#endif
