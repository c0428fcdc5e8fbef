/*
 * rng.h - PCG32 (O'Neill's pcg32, "XSH RR" output of a 64-bit LCG), written
 * from the published algorithm, and the per-request streams of docs/design.md §5.
 *
 * Why PCG32: small state (two uint64), a documented reference output to test
 * against, and independent streams selected by the increment, so every
 * (seed, prompt, repeat, decoder) tuple gets its own sequence and a request's
 * tokens do not depend on the order in which the runner visits requests.
 *
 * Uniforms are the top 24 bits of one output scaled by 2^-24: exactly
 * representable floats in [0, 1), never 1.0.
 */
#ifndef MTP_RNG_H
#define MTP_RNG_H

#include <stdint.h> /* defines: uint32_t, uint64_t */

struct mtp_rng {
    uint64_t state; /* LCG state */
    uint64_t inc;   /* stream selector, always odd */
};

/* Seed as the reference pcg32_srandom_r(initstate, initseq). */
void mtp_rng_seed(struct mtp_rng *r, uint64_t initstate, uint64_t initseq);

/* The stream of one request: the tuple is hashed (splitmix64 chain) into
 * initstate and initseq, so nearby tuples give unrelated streams. */
void mtp_rng_seed_stream(struct mtp_rng *r, uint64_t seed, uint64_t prompt_index,
                         uint64_t repeat, uint64_t decoder_index);

/* The stream of one request of an experiment, keyed by what the request IS,
 * never by list positions (docs/design.md §5): the spec's seed, the dataset name,
 * the prompt's question_id, the repeat, the decoder's name and the sampling
 * setting's values (temperature, top_p, top_k). Adding a decoder, a prompt or
 * a sampling setting, or reordering any list, leaves every other request's
 * stream unchanged. Strings are hashed with 64-bit FNV-1a, numbers by their
 * bit patterns, and the fields absorbed in that order. */
struct mtp_rng_request_key {
    uint64_t seed;
    const char *dataset;
    const char *question_id;
    uint64_t repeat;
    const char *decoder;
    double temperature, top_p;
    int top_k;
};
void mtp_rng_seed_request(struct mtp_rng *r, const struct mtp_rng_request_key *key);

/* Next 32-bit output (pcg32_random_r). */
uint32_t mtp_rng_next_u32(struct mtp_rng *r);

/* Uniform float in [0, 1) with 24 random bits. */
float mtp_rng_uniform(struct mtp_rng *r);

/* splitmix64 finaliser step: advances *X and returns a well-mixed 64-bit value. */
uint64_t mtp_rng_splitmix64(uint64_t *x);

#endif
