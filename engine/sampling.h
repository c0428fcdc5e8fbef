/*
 * sampling.h - from logits to token choices, and the acceptance rule of
 * speculative sampling (docs/design.md §5).
 *
 * Every function is pure: no RNG inside. The uniform u in [0, 1) that a
 * random choice consumes is passed in, so tests force each branch (accept,
 * reject, bonus) and the decoders own the order in which uniforms are drawn.
 *
 * Distributions are always over the full vocabulary (no candidate lists), so
 * the residual max(p - q, 0) is exact (docs/design.md §14.5).
 *
 * A sampling setting turns logits into a distribution the same way for the
 * target (main model) and the draft (MTP module):
 *   temperature 0:  one-hot at argmax (ties to the lowest id); top-k/top-p unused.
 *   temperature T:  softmax(logits / T), computed in double from the maximum;
 *   top_k > 0:      keep the k most probable ids (ties to the lower id), renormalise;
 *   top_p < 1:      then keep the shortest prefix of ids sorted by probability
 *                   (descending, ties to the lower id) whose mass reaches top_p
 *                   (at least one id), renormalise.
 * Both filters zero the removed ids; the vector keeps all V entries.
 */
#ifndef MTP_SAMPLING_H
#define MTP_SAMPLING_H

#include <stdbool.h>
#include <stdint.h>

struct mtp_sampling {
    float temperature; /* >= 0; 0 = greedy */
    float top_p;       /* (0, 1]; 1 = off */
    int top_k;         /* >= 0; 0 = off */
};

/* True when the setting is greedy (temperature 0). */
static inline bool mtp_sampling_is_greedy(const struct mtp_sampling *s)
{
    return s->temperature <= 0.0f;
}

/* Index of the largest of x[0..n), ties to the lowest index. */
int mtp_sampling_argmax(const float *x, int n);

/* PROBS[n] = the distribution of LOGITS[n] under S (see above). WORK is
 * scratch of n int32 for the top-k/top-p sort; it may be NULL, in which case
 * it is allocated when a filter is active. Never fails. */
void mtp_sampling_probs(const struct mtp_sampling *s, const float *logits, int n, float *probs,
                        int32_t *work);

/* softmax(LOGITS)[TOKEN] at temperature 1 without top-k/top-p (the model's
 * own confidence in TOKEN), computed in double from the maximum logit. */
double mtp_sampling_token_prob(const float *logits, int n, int token);

/* Inverse-CDF draw from PROBS[n] (need not sum exactly to 1): the first id
 * whose cumulative mass exceeds u * total. Ids with zero mass are never
 * returned. Deterministic in u. */
int mtp_sampling_sample(const float *probs, int n, float u);

/* Greedy acceptance of draft D against target logits or probs: d == argmax. */
bool mtp_sampling_accept_greedy(const float *target, int n, int d);

/* Speculative-sampling acceptance of a draft token d that was drawn from q:
 * accept with probability min(1, p(d) / q(d)), i.e. u < p(d) / q(d), written
 * u * q(d) < p(d) so q(d) = 0 (impossible for a sampled draft) cannot divide
 * by zero: it then accepts iff p(d) > 0. */
bool mtp_sampling_accept(float p_d, float q_d, float u);

/* The distribution to sample from after a rejection: OUT = normalize(max(p - q, 0)).
 * Why: a draft token x is emitted with probability q(x) min(1, p(x)/q(x)) =
 * min(p(x), q(x)); the rest of p, p(x) - min(p(x), q(x)) = max(p(x) - q(x), 0),
 * must come from the rejection branch, whose total probability is
 * sum_x max(p(x) - q(x), 0). So the emitted token is distributed exactly as p.
 * If the residual has no mass (p == q up to rounding, where rejection has
 * probability 0 anyway), OUT = p. Returns false in that fallback case. */
bool mtp_sampling_residual(const float *p, const float *q, int n, float *out);

/* One speculative acceptance pass over K drafts (docs/design.md §5, step 3).
 *   p      [K+1, n] target distributions p_0..p_K (p_{j-1} scores draft j)
 *   q      [K, n]   draft distributions q_1..q_K the drafts were drawn from
 *   drafts [K]      d_1..d_K
 *   u      [K+1]    uniforms: u[j-1] decides draft j, u[K] draws the final token
 *   work   [n]      scratch for the residual
 * Accepts d_j while mtp_sampling_accept(p_{j-1}(d_j), q_j(d_j), u[j-1]); at
 * the first rejection (j = a+1) the final token is drawn from
 * normalize(max(p_a - q_{a+1}, 0)); if all K are accepted it is the bonus
 * token drawn from p_K. Returns a (0..K) and writes the final token. */
int mtp_sampling_verify(const float *p, const float *q, const int32_t *drafts, int K, int n,
                        const float *u, float *work, int32_t *final_token);

/* The greedy counterpart over target LOGITS [K+1, n]: accept d_j while
 * d_j == argmax logits_{j-1}; the final token is the argmax of the first
 * mismatching row (or of row K). Returns a. */
int mtp_sampling_verify_greedy(const float *logits, const int32_t *drafts, int K, int n,
                               int32_t *final_token);

#endif
