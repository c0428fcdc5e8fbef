/*
 * token_cost.h - what one decoded token reads, counted from the loaded
 * model's weight matrices in their stored dtypes: every attention weight; per
 * layer the dense FFN, or the router, the shared experts and top-k routed
 * experts (each read whole); the head; and the cached latent rows. FP8 block
 * scales (1/16384 of the weight bytes), norm vectors and router biases (under
 * 0.1%) are not counted. This is the numerator of the bandwidth bound
 * (docs/design.md, "Memory-bound decode").
 */
#ifndef MTP_TOKEN_COST_H
#define MTP_TOKEN_COST_H

#include "../engine/model.h"

struct mtp_token_cost {
    double weight_bytes;    /* weights read once per token */
    double cache_bytes;     /* latent cache read at the given context (float32 rows) */
    double flops;           /* 2 per multiply-add of the weights and of attention */
};

/* The main model's decode of one token attending to CONTEXT positions. */
struct mtp_token_cost mtp_token_cost_main(const struct mtp_model *m, int context);

/* One forward of MTP module K (1-based) for one token: its block, eh_proj and the head
 * over HEAD_ROWS vocabulary rows (the full vocabulary, or a draft vocabulary). */
struct mtp_token_cost mtp_token_cost_module(const struct mtp_model *m, int k, int context,
                                            int head_rows);

#endif
