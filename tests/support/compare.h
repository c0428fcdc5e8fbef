/*
 * compare.h - the one tensor comparison routine of the test suite, with the
 * tolerance policy written down (docs/design.md §14.4).
 *
 * An element passes when |got - want| <= atol + rtol * |want|; NaN and ±Inf
 * must sit at the same positions with the same value; the whole tensor must
 * also have cosine similarity >= min_cosine. On failure the report names the
 * tensor, the worst element (index, got, want) and the pass percentage.
 */
#ifndef MTP_TEST_COMPARE_H
#define MTP_TEST_COMPARE_H

#include <stdbool.h>
#include <stddef.h>

struct mtp_tolerance {
    double atol;
    double rtol;
    double min_cosine;
    const char *why; /* the reason for these numbers, printed on failure */
};

/* Policy for activations computed in float32 by the engine against the
 * float64 reference from the same stored weights. The weight dtype does not
 * enter: BF16, F16 and FP8 (times its F32 block scale) decode exactly or within
 * one float32 rounding, so only float32 accumulation error remains: ~sqrt(K)
 * ulps of float32 (6e-8) for dot products of length K <= 512 through a few
 * layers, and softmax/RMSNorm amplification of at most ~10x. atol 2e-4 / rtol
 * 1e-3 leaves a margin of ~50x over the errors measured on the fixtures. */
extern const struct mtp_tolerance mtp_tol_f32_activations;

/* Returns true when GOT matches WANT (n elements); prints a report to stderr
 * either way when verbose, or only on failure otherwise. */
bool mtp_compare(const char *name, const float *got, const float *want, size_t n,
                 const struct mtp_tolerance *tol, double *max_abs_err);

#endif
