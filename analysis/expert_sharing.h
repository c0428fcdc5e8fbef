/*
 * expert_sharing.h - distinct routed experts selected by a set of tokens, from
 * routing decisions recorded along a walk through real text (expert_sharing.c).
 *
 * `mtpbench bench --text` (bench/bench_sharing.c) compares n adjacent tokens,
 * the shape of a verification, with n tokens of the same text drawn apart.
 * Both see the same experts' popularity, so their ratio isolates what
 * adjacency itself shares; the ratio of apart tokens to independent uniform
 * routing is the popularity part.
 */
#ifndef MTP_EXPERT_SHARING_H
#define MTP_EXPERT_SHARING_H

#include <stdint.h> /* defines: int32_t, uint64_t */

struct mtp_rng;

enum { MTP_SHARING_MAX_EXPERTS = 4096, MTP_SHARING_MAX_TUPLE = 64 };

/* Routing of TOKENS consecutive tokens: idx[(t * layers + l) * k + i] is the
 * i-th of the K experts (ids 0..n_experts-1) that token t selects in MoE layer l. */
struct mtp_routes {
    const int32_t *idx;
    int tokens, layers, k, n_experts;
};

/* Mean over the layers of the number of distinct experts selected by any of
 * the N tokens at POSITIONS (each in 0..tokens-1); ids outside 0..n_experts-1
 * are not counted. -1 when n_experts exceeds MTP_SHARING_MAX_EXPERTS. */
double mtp_routes_distinct(const struct mtp_routes *r, const int *positions, int n);

/* N positions in 0..TOKENS-1, no two equal or adjacent, drawn uniformly from
 * all such sets with RNG, in increasing order. MTP_ERR with a message when N is
 * outside 1..MTP_SHARING_MAX_TUPLE or TOKENS < 2N - 1 (no such set exists). */
int mtp_draw_apart(struct mtp_rng *rng, int tokens, int n, int *positions);

/* Mean of mtp_routes_distinct over DRAWS sets of N apart positions drawn with
 * the PCG32 stream of SEED (reproducible). MTP_ERR with a message when
 * mtp_draw_apart cannot draw, DRAWS < 1 or there are too many experts. */
int mtp_routes_apart_mean(const struct mtp_routes *r, int n, int draws, uint64_t seed,
                          double *mean);

#endif
