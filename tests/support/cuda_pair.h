/*
 * cuda_pair.h - the CPU backend (the oracle) and the CUDA backend side by
 * side, for tests that compare the two. Without a GPU (and without the
 * emulation build) the CUDA side is NULL and `why` says what was missing,
 * so each test can skip with the reason.
 */
#ifndef MTP_TEST_CUDA_PAIR_H
#define MTP_TEST_CUDA_PAIR_H

#include <stdio.h> /* defines: printf (TEST_NEED_GPU) */

#include "kernels/backend.h"

struct test_cuda_pair {
    struct mtp_backend *cpu, *cuda;
    char why[512];
};

/* Open the CPU backend with THREADS threads and the CUDA backend on device 0.
 * Returns -1 only when the CPU backend fails. */
int test_cuda_pair_open(struct test_cuda_pair *p, int threads);
void test_cuda_pair_close(struct test_cuda_pair *p);

/* In a CMocka test: skip, printing the reason, when P has no CUDA backend. */
#define TEST_NEED_GPU(p)                                                                           \
    do {                                                                                           \
        if (!(p)->cuda) {                                                                          \
            printf("[  SKIPPED ] %s\n", (p)->why);                                                 \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#endif
