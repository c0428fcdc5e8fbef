/*
 * expert_sharing.c - distinct experts of a set of tokens, and sets of tokens
 * drawn apart (expert_sharing.h).
 *
 * Apart means no two drawn positions equal or adjacent: a pair of neighbours
 * would bring back some of the adjacency the comparison is meant to remove.
 * The sets are drawn uniformly among all such sets by a bijection: n distinct
 * values y_1 < ... < y_n of 0..T-n (Floyd's sampling, no rejection loop) map to
 * x_i = y_i + i, whose gaps are all at least 2.
 */
#include "expert_sharing.h"

#include <stdlib.h> /* defines: qsort */
#include <string.h> /* defines: memset */

#include "core/error.h"
#include "engine/rng.h"

double mtp_routes_distinct(const struct mtp_routes *r, const int *positions, int n)
{
    uint64_t seen[MTP_SHARING_MAX_EXPERTS / 64];
    if (r->n_experts > MTP_SHARING_MAX_EXPERTS || r->layers <= 0)
        return -1;
    size_t words = ((size_t)r->n_experts + 63) / 64;
    long total = 0;
    for (int l = 0; l < r->layers; l++) {
        memset(seen, 0, words * sizeof seen[0]);
        for (int t = 0; t < n; t++) {
            const int32_t *e = r->idx + ((size_t)positions[t] * r->layers + l) * r->k;
            for (int i = 0; i < r->k; i++) {
                if (e[i] < 0 || e[i] >= r->n_experts)
                    continue;
                uint64_t bit = 1ull << (e[i] % 64);
                total += !(seen[e[i] / 64] & bit);
                seen[e[i] / 64] |= bit;
            }
        }
    }
    return (double)total / r->layers;
}

/* Uniform in 0..m-1 (m >= 1): the multiply-shift map of one 32-bit output; its
 * bias, under m / 2^32, is far below what a few thousand draws can see. */
static int uniform_below(struct mtp_rng *rng, int m)
{
    return (int)(((uint64_t)mtp_rng_next_u32(rng) * (uint64_t)m) >> 32);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int mtp_draw_apart(struct mtp_rng *rng, int tokens, int n, int *positions)
{
    if (n < 1 || n > MTP_SHARING_MAX_TUPLE)
        return mtp_error_set("expert sharing: tuple size %d, expected 1..%d", n,
                             MTP_SHARING_MAX_TUPLE);
    if (tokens < 2 * n - 1)
        return mtp_error_set("expert sharing: %d non-adjacent positions need at least %d "
                             "tokens, found %d", n, 2 * n - 1, tokens);
    int m = tokens - n + 1, k = 0; /* choose n distinct of 0..m-1 (Floyd) */
    for (int j = m - n; j < m; j++) {
        int t = uniform_below(rng, j + 1), taken = 0;
        for (int i = 0; i < k && !taken; i++)
            taken = positions[i] == t;
        positions[k++] = taken ? j : t;
    }
    qsort(positions, (size_t)n, sizeof *positions, cmp_int);
    for (int i = 0; i < n; i++)
        positions[i] += i;
    return MTP_OK;
}

int mtp_routes_apart_mean(const struct mtp_routes *r, int n, int draws, uint64_t seed,
                          double *mean)
{
    if (draws < 1)
        return mtp_error_set("expert sharing: %d draws, expected at least 1", draws);
    if (r->n_experts > MTP_SHARING_MAX_EXPERTS)
        return mtp_error_set("expert sharing: %d routed experts, at most %d supported",
                             r->n_experts, MTP_SHARING_MAX_EXPERTS);
    struct mtp_rng rng;
    mtp_rng_seed(&rng, seed, 0x5a4e);
    int positions[MTP_SHARING_MAX_TUPLE];
    double sum = 0;
    for (int d = 0; d < draws; d++) {
        if (mtp_draw_apart(&rng, r->tokens, n, positions))
            return MTP_ERR;
        sum += mtp_routes_distinct(r, positions, n);
    }
    *mean = sum / draws;
    return MTP_OK;
}
