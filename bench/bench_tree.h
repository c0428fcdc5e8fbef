/*
 * bench_tree.h - `mtpbench bench`: the verification cost of tree-shaped
 * batches (n nodes under a tree mask, engine_tree.h) against n chained
 * tokens, at the bench's context.
 */
#ifndef MTP_BENCH_TREE_H
#define MTP_BENCH_TREE_H

#include "engine/engine.h"

/* Print, for n = 2, 4, 8, 16: median ns of a chain verification of n tokens
 * and of a tree verification of n nodes (a binary tree in depth-major order)
 * at position P over ROUNDS interleaved rounds, and their ratio. The main
 * cache is (re)filled to P positions. Returns MTP_OK or MTP_ERR. */
int mtp_bench_tree(struct mtp_engine *e, int P, int rounds);

#endif
