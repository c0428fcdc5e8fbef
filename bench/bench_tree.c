/*
 * bench_tree.c - verification cost of tree-shaped batches against chains
 * (bench_tree.h). A tree of n nodes writes the same n cache rows and runs the
 * same per-token ops as a chain of n tokens; what differs is the attention
 * (explicit key lists, a gather per key) and RoPE (one call per run of
 * consecutive positions). Cases are interleaved round by round so machine
 * noise hits both alike; medians are printed.
 */
#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: qsort, free */
#include <time.h>   /* defines: clock_gettime */

#include "bench_tree.h"
#include "engine/engine_tree.h"
#include "core/error.h"

enum { TREE_BENCH_MAX = 16 };

/* Binary heap tree of N nodes from row P: node i's parent is (i-1)/2. */
struct heap_tree {
    int32_t pos[TREE_BENCH_MAX], off[TREE_BENCH_MAX + 1], rows[TREE_BENCH_MAX * 8];
    struct mtp_tree_batch b;
};

static void heap_tree(struct heap_tree *t, int n, int P)
{
    int used = 0;
    t->off[0] = 0;
    for (int i = 0; i < n; i++) {
        int path[8], k = 0;
        for (int x = i;; x = (x - 1) / 2) {
            path[k++] = x;
            if (x == 0)
                break;
        }
        for (int j = k - 1; j >= 0; j--)
            t->rows[used++] = P + path[j];
        t->off[i + 1] = used;
        t->pos[i] = P + k - 1;
    }
    t->b = (struct mtp_tree_batch){.start_row = P, .pos = t->pos,
                                   .keys = {.n_prefix = P, .off = t->off, .rows = t->rows}};
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return v[n / 2];
}

/* Fill the main cache to P positions with fixed ids. */
static int fill_context(struct mtp_engine *e, int P, int32_t *ids)
{
    int V = mtp_engine_model(e)->cfg.vocab_size;
    for (int i = 0; i < P + TREE_BENCH_MAX; i++)
        ids[i] = (int32_t)((i * 2654435761u) % (unsigned)V);
    mtp_engine_truncate(e, 0, 0);
    return mtp_engine_prefill(e, ids, P, NULL, NULL);
}

int mtp_bench_tree(struct mtp_engine *e, int P, int rounds)
{
    int32_t *ids = mtp_xmalloc((size_t)(P + TREE_BENCH_MAX) * sizeof(int32_t));
    uint64_t *chain = mtp_xmalloc((size_t)rounds * 4 * sizeof(uint64_t));
    uint64_t *tree = mtp_xmalloc((size_t)rounds * 4 * sizeof(uint64_t));
    int rc = fill_context(e, P, ids);
    struct heap_tree t;
    for (int r = 0; r < rounds && !rc; r++)
        for (int q = 0, n = 2; n <= TREE_BENCH_MAX && !rc; q++, n *= 2) {
            uint64_t t0 = now_ns();
            rc = mtp_engine_forward(e, ids + P, n, P, NULL, NULL);
            uint64_t t1 = now_ns();
            heap_tree(&t, n, P);
            mtp_engine_truncate(e, 0, P);
            if (!rc)
                rc = mtp_engine_forward_tree(e, ids + P, n, &t.b, NULL, NULL);
            uint64_t t2 = now_ns();
            mtp_engine_truncate(e, 0, P);
            chain[q * rounds + r] = t1 - t0;
            tree[q * rounds + r] = t2 - t1;
        }
    if (!rc) {
        printf("tree verification at position %d (n nodes, binary tree, vs n chained tokens; "
               "median of %d rounds):\n", P, rounds);
        for (int q = 0, n = 2; n <= TREE_BENCH_MAX; q++, n *= 2) {
            uint64_t c = median(chain + q * rounds, rounds), w = median(tree + q * rounds, rounds);
            printf("  n=%2d  chain %.3f ms  tree %.3f ms  tree/chain %.3f\n", n, c * 1e-6,
                   w * 1e-6, c ? (double)w / (double)c : 0.0);
        }
    }
    free(ids);
    free(chain);
    free(tree);
    return rc;
}
