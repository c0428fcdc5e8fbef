/*
 * rng.c - PCG32 XSH RR 64/32 and request streams (see rng.h).
 *
 * Algorithm (M. E. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
 * Statistically Good Algorithms for Random Number Generation", 2014):
 *   output = rotr32(((old >> 18) ^ old) >> 27, old >> 59)
 *   state  = old * 6364136223846793005 + inc
 * Seeding: state = 0, inc = (initseq << 1) | 1, step, state += initstate, step.
 */
#include "rng.h"


static const uint64_t pcg_mult = 6364136223846793005ULL;

static uint32_t rotr32(uint32_t x, unsigned r) { return (x >> r) | (x << ((-r) & 31u)); }

uint32_t mtp_rng_next_u32(struct mtp_rng *r)
{
    uint64_t old = r->state;
    r->state = old * pcg_mult + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    return rotr32(xorshifted, (unsigned)(old >> 59u));
}

void mtp_rng_seed(struct mtp_rng *r, uint64_t initstate, uint64_t initseq)
{
    r->state = 0;
    r->inc = (initseq << 1u) | 1u;
    mtp_rng_next_u32(r);
    r->state += initstate;
    mtp_rng_next_u32(r);
}

uint64_t mtp_rng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mtp_rng_seed_stream(struct mtp_rng *r, uint64_t seed, uint64_t prompt_index,
                         uint64_t repeat, uint64_t decoder_index)
{
    /* Absorb each field in turn: h = mix(h ^ field). A chain (not a sum) keeps
     * (1, 0) and (0, 1) apart. */
    uint64_t fields[4] = {seed, prompt_index, repeat, decoder_index};
    uint64_t h = 0x6d7470626e656368ULL; /* "mtpbench" */
    for (int i = 0; i < 4; i++) {
        h ^= fields[i];
        h = mtp_rng_splitmix64(&h);
    }
    uint64_t x = h;
    uint64_t initstate = mtp_rng_splitmix64(&x);
    uint64_t initseq = mtp_rng_splitmix64(&x);
    mtp_rng_seed(r, initstate, initseq);
}

float mtp_rng_uniform(struct mtp_rng *r)
{
    return (float)(mtp_rng_next_u32(r) >> 8) * (1.0f / 16777216.0f);
}
