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

#include <string.h> /* defines: memcpy */


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

/* Seed R from N fields absorbed in turn into H: h = mix(h ^ field). A chain
 * (not a sum) keeps (1, 0) and (0, 1) apart. */
static void seed_from_fields(struct mtp_rng *r, uint64_t h, const uint64_t *fields, int n)
{
    for (int i = 0; i < n; i++) {
        h ^= fields[i];
        h = mtp_rng_splitmix64(&h);
    }
    uint64_t x = h;
    uint64_t initstate = mtp_rng_splitmix64(&x);
    uint64_t initseq = mtp_rng_splitmix64(&x);
    mtp_rng_seed(r, initstate, initseq);
}

void mtp_rng_seed_stream(struct mtp_rng *r, uint64_t seed, uint64_t prompt_index,
                         uint64_t repeat, uint64_t decoder_index)
{
    uint64_t fields[4] = {seed, prompt_index, repeat, decoder_index};
    seed_from_fields(r, 0x6d7470626e656368ULL /* "mtpbench" */, fields, 4);
}

/* 64-bit FNV-1a of S (NULL hashes like ""). */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t double_bits(double x)
{
    uint64_t u;
    x = x == 0.0 ? 0.0 : x; /* -0.0 and 0.0 are the same setting */
    memcpy(&u, &x, sizeof u);
    return u;
}

void mtp_rng_seed_request(struct mtp_rng *r, const struct mtp_rng_request_key *key)
{
    uint64_t fields[8] = {key->seed,
                          fnv1a64(key->dataset),
                          fnv1a64(key->question_id),
                          key->repeat,
                          fnv1a64(key->decoder),
                          double_bits(key->temperature),
                          double_bits(key->top_p),
                          (uint64_t)(int64_t)key->top_k};
    /* "mtpreqst": a start apart from mtp_rng_seed_stream's */
    seed_from_fields(r, 0x6d74707265717374ULL, fields, 8);
}

float mtp_rng_uniform(struct mtp_rng *r)
{
    return (float)(mtp_rng_next_u32(r) >> 8) * (1.0f / 16777216.0f);
}
