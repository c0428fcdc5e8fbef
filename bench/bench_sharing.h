/*
 * bench_sharing.h - the expert-sharing walk of `mtpbench bench --text`
 * (bench_sharing.c): distinct routed experts per MoE layer read by a main
 * forward of n = 1..8 adjacent real tokens, next to n tokens of the same text
 * drawn apart (the popularity baseline) and to independent uniform routing.
 */
#ifndef MTP_BENCH_SHARING_H
#define MTP_BENCH_SHARING_H

#include <stdint.h>

struct mtp_engine;

/* Tokenize DATASET's prompts (Spec-Bench JSONL) with MODEL_DIR/tokenizer.json,
 * and print the table for WINDOWS (at least 2) forwards per n after CONTEXT
 * tokens. The engine's caches must hold at least CONTEXT + 8 * WINDOWS
 * positions; they are left empty, and its trace is cleared. Returns MTP_OK or
 * MTP_ERR with a message. */
int mtp_bench_expert_sharing(struct mtp_engine *e, const char *model_dir, const char *dataset,
                             int context, int windows);

/* The first NEED tokens (at least) of DATASET's prompts, one after another,
 * tokenized with MODEL_DIR's tokenizer (no BOS): *OUT (free) and *N_OUT.
 * MTP_ERR when the prompts hold fewer, naming the file. */
int mtp_bench_text_tokens(const char *model_dir, const char *path, int need, int32_t **out,
                          int *n_out);

#endif
