/*
 * test_sampling.c - engine/sampling.h: temperature, top-k and top-p;
 * inverse-CDF draws; each branch of the acceptance rule forced through the
 * injected uniforms (accept, reject + residual, bonus); and the invariant of
 * docs/design.md §5 (b): speculative sampling emits tokens distributed exactly as
 * the target, checked with a chi-square test over many seeded trials on a
 * small vocabulary with a draft q != target p. No model is needed.
 *
 *   ctest --test-dir build -R sampling
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "engine/rng.h"
#include "engine/sampling.h"

#define V6 6

static void probs_from(const float *p, int n, float *logits)
{
    for (int i = 0; i < n; i++)
        logits[i] = p[i] > 0 ? logf(p[i]) : -1e30f;
}

static void test_argmax_ties_lowest(void **state)
{
    (void)state;
    const float x[] = {1, 3, 2, 3, -1};
    assert_int_equal(mtp_sampling_argmax(x, 5), 1);
    struct mtp_sampling g = {.temperature = 0, .top_p = 1, .top_k = 0};
    float p[5];
    mtp_sampling_probs(&g, x, 5, p, NULL);
    for (int i = 0; i < 5; i++)
        assert_float_equal(p[i], i == 1 ? 1.0f : 0.0f, 0);
}

static void test_temperature(void **state)
{
    (void)state;
    const float logits[] = {0.0f, 1.0f, 2.0f};
    float p[3], p2[3];
    struct mtp_sampling t1 = {.temperature = 1, .top_p = 1}, t2 = {.temperature = 2, .top_p = 1};
    mtp_sampling_probs(&t1, logits, 3, p, NULL);
    double z = 1 + exp(1) + exp(2);
    assert_float_equal(p[0], 1 / z, 1e-6);
    assert_float_equal(p[2], exp(2) / z, 1e-6);
    mtp_sampling_probs(&t2, logits, 3, p2, NULL);
    double z2 = 1 + exp(0.5) + exp(1);
    assert_float_equal(p2[1], exp(0.5) / z2, 1e-6);
    assert_true(p2[2] < p[2] && p2[0] > p[0]); /* higher temperature is flatter */
}

static void test_top_k(void **state)
{
    (void)state;
    /* Ties: ids 1 and 3 share the second-largest value; the lower id is kept. */
    const float logits[] = {0.0f, 2.0f, 3.0f, 2.0f, 1.0f};
    struct mtp_sampling s = {.temperature = 1, .top_p = 1, .top_k = 2};
    float p[5];
    int32_t work[5];
    mtp_sampling_probs(&s, logits, 5, p, work);
    assert_float_equal(p[0], 0, 0);
    assert_float_equal(p[3], 0, 0);
    assert_float_equal(p[4], 0, 0);
    assert_float_equal(p[2], exp(3) / (exp(3) + exp(2)), 1e-6);
    assert_float_equal(p[1] + p[2], 1, 1e-6);
}

static void test_top_p(void **state)
{
    (void)state;
    const float want[] = {0.15f, 0.5f, 0.05f, 0.3f};
    float logits[4], p[4];
    probs_from(want, 4, logits);
    struct mtp_sampling s = {.temperature = 1, .top_p = 0.75f, .top_k = 0};
    mtp_sampling_probs(&s, logits, 4, p, NULL); /* 0.5 + 0.3 reaches 0.75 */
    assert_float_equal(p[1], 0.5 / 0.8, 1e-5);
    assert_float_equal(p[3], 0.3 / 0.8, 1e-5);
    assert_float_equal(p[0] + p[2], 0, 0);
    s.top_p = 0.85f; /* needs the third id */
    mtp_sampling_probs(&s, logits, 4, p, NULL);
    assert_true(p[0] > 0 && p[2] == 0);
    s.top_p = 0.01f; /* always at least one id */
    mtp_sampling_probs(&s, logits, 4, p, NULL);
    assert_float_equal(p[1], 1, 0);
    /* top-k first, then top-p on the renormalised top-k: {0.5, 0.3} -> {0.625, 0.375}. */
    s.top_k = 2;
    s.top_p = 0.6f;
    mtp_sampling_probs(&s, logits, 4, p, NULL);
    assert_float_equal(p[1], 1, 0);
    s.top_p = 0.7f;
    mtp_sampling_probs(&s, logits, 4, p, NULL);
    assert_float_equal(p[1], 0.625, 1e-5);
}

static void test_sample_inverse_cdf(void **state)
{
    (void)state;
    const float p[] = {0.25f, 0.0f, 0.5f, 0.25f, 0.0f};
    assert_int_equal(mtp_sampling_sample(p, 5, 0.0f), 0);
    assert_int_equal(mtp_sampling_sample(p, 5, 0.2499f), 0);
    assert_int_equal(mtp_sampling_sample(p, 5, 0.25f), 2);
    assert_int_equal(mtp_sampling_sample(p, 5, 0.7499f), 2);
    assert_int_equal(mtp_sampling_sample(p, 5, 0.75f), 3);
    assert_int_equal(mtp_sampling_sample(p, 5, 0.99999994f), 3); /* never the zero-mass tail */
    const float unnorm[] = {2.0f, 6.0f};                         /* need not sum to 1 */
    assert_int_equal(mtp_sampling_sample(unnorm, 2, 0.24f), 0);
    assert_int_equal(mtp_sampling_sample(unnorm, 2, 0.26f), 1);
}

static void test_accept_rule(void **state)
{
    (void)state;
    /* p/q = 0.5: accepted iff u < 0.5. */
    assert_true(mtp_sampling_accept(0.2f, 0.4f, 0.49f));
    assert_false(mtp_sampling_accept(0.2f, 0.4f, 0.51f));
    /* p >= q: always accepted (min(1, p/q) = 1). */
    assert_true(mtp_sampling_accept(0.4f, 0.2f, 0.9999f));
    assert_true(mtp_sampling_accept(0.3f, 0.3f, 0.9999f));
    /* p = 0: never accepted. */
    assert_false(mtp_sampling_accept(0.0f, 0.3f, 0.0f));
}

static void test_residual(void **state)
{
    (void)state;
    const float p[] = {0.5f, 0.3f, 0.2f, 0.0f}, q[] = {0.2f, 0.5f, 0.1f, 0.2f};
    float r[4];
    assert_true(mtp_sampling_residual(p, q, 4, r));
    assert_float_equal(r[0], 0.3 / 0.4, 1e-6);
    assert_float_equal(r[1], 0, 0);
    assert_float_equal(r[2], 0.1 / 0.4, 1e-6);
    assert_float_equal(r[3], 0, 0);
    /* p == q: no residual mass, fall back to p. */
    assert_false(mtp_sampling_residual(p, p, 4, r));
    assert_memory_equal(r, p, sizeof p);
}

/* Forced branches of one verification pass with K = 2 over V = 3. */
static void test_verify_branches(void **state)
{
    (void)state;
    const float p[] = {0.6f, 0.3f, 0.1f, /* p_0 */ 0.1f, 0.1f, 0.8f, /* p_1 */
                       0.0f, 0.0f, 1.0f /* p_2 */};
    const float q[] = {0.2f, 0.6f, 0.2f, /* q_1 */ 0.1f, 0.1f, 0.8f /* q_2 */};
    const int32_t drafts[] = {1, 2};
    float work[3];
    int32_t fin = -1;
    /* d1 = 1: p/q = 0.5. u = 0.4 accepts, then d2 = 2: p/q = 1 accepts: bonus from p_2. */
    const float u_all[] = {0.4f, 0.99f, 0.3f};
    assert_int_equal(mtp_sampling_verify(p, q, drafts, 2, 3, u_all, work, &fin), 2);
    assert_int_equal(fin, 2);
    /* u = 0.6 rejects d1: residual of p_0 - q_1 = {0.4, 0, 0} -> token 0 whatever u[K]. */
    const float u_rej[] = {0.6f, 0.0f, 0.999f};
    assert_int_equal(mtp_sampling_verify(p, q, drafts, 2, 3, u_rej, work, &fin), 0);
    assert_int_equal(fin, 0);
    /* Greedy: d1 = 0 matches argmax p_0; d2 = 1 does not match argmax p_1 = 2. */
    const int32_t g[] = {0, 1};
    assert_int_equal(mtp_sampling_verify_greedy(p, g, 2, 3, &fin), 1);
    assert_int_equal(fin, 2);
    const int32_t g2[] = {0, 2};
    assert_int_equal(mtp_sampling_verify_greedy(p, g2, 2, 3, &fin), 2);
    assert_int_equal(fin, 2); /* bonus: argmax p_2 */
    assert_int_equal(mtp_sampling_verify_greedy(p, g, 0, 3, &fin), 0);
    assert_int_equal(fin, 0);
}

/* ---- the distribution invariant (chi-square) ---------------------------- */

/* Pearson's statistic of COUNTS against N * P. */
static double chi_square(const long *counts, const float *p, int n, long total)
{
    double x2 = 0;
    for (int i = 0; i < n; i++) {
        double e = (double)total * p[i];
        x2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    return x2;
}

/* Critical value of chi-square with 5 degrees of freedom (V = 6) at p = 0.001.
 * With a correct rule the statistic is a chi2(5) draw, so a random seed would
 * fail with probability 0.1%; the seed is fixed, so the test is deterministic.
 * A wrong rule is far beyond it (test_chi_square_detects_wrong_residual shows
 * the test has the power to fail). */
#define CHI2_DF5_P001 20.515

static const float target_p0[V6] = {0.30f, 0.05f, 0.20f, 0.10f, 0.25f, 0.10f};
static const float target_p1[V6] = {0.10f, 0.40f, 0.05f, 0.15f, 0.05f, 0.25f};
static const float draft_q1[V6] = {0.10f, 0.30f, 0.30f, 0.05f, 0.15f, 0.10f};
static const float draft_q2[V6] = {0.30f, 0.10f, 0.10f, 0.20f, 0.10f, 0.20f};

/* TRIALS speculative steps with K = 2 (target rows independent of the
 * context, so the first emitted token must follow p_0 and the second, when
 * the first draft was accepted, p_1). WRONG replaces the residual by p. */
static void run_trials(long trials, bool wrong, long *first, long *second, long *n_second)
{
    float p[3 * V6], q[2 * V6], work[V6];
    memcpy(p, target_p0, sizeof target_p0);
    memcpy(p + V6, target_p1, sizeof target_p1);
    memcpy(p + 2 * V6, target_p0, sizeof target_p0);
    memcpy(q, draft_q1, sizeof draft_q1);
    memcpy(q + V6, draft_q2, sizeof draft_q2);
    struct mtp_rng rng;
    mtp_rng_seed_stream(&rng, 20240601, 0, 0, 0);
    *n_second = 0;
    for (long t = 0; t < trials; t++) {
        int32_t d[2];
        d[0] = mtp_sampling_sample(q, V6, mtp_rng_uniform(&rng));
        d[1] = mtp_sampling_sample(q + V6, V6, mtp_rng_uniform(&rng));
        float u[3] = {mtp_rng_uniform(&rng), mtp_rng_uniform(&rng), mtp_rng_uniform(&rng)};
        int32_t fin;
        int a;
        if (!wrong) {
            a = mtp_sampling_verify(p, q, d, 2, V6, u, work, &fin);
        } else {
            a = mtp_sampling_accept(p[d[0]], q[d[0]], u[0]) ? 1 : 0;
            fin = mtp_sampling_sample(p, V6, u[2]);
        }
        int32_t emitted[3] = {d[0], d[1], fin};
        if (a == 0)
            emitted[0] = fin;
        else if (a == 1)
            emitted[1] = fin;
        first[emitted[0]]++;
        if (a >= 1) {
            second[emitted[1]]++;
            (*n_second)++;
        }
    }
}

static void test_chi_square_preserves_target(void **state)
{
    (void)state;
    const long trials = 200000;
    long first[V6] = {0}, second[V6] = {0}, n_second;
    run_trials(trials, false, first, second, &n_second);
    double x1 = chi_square(first, target_p0, V6, trials);
    double x2 = chi_square(second, target_p1, V6, n_second);
    print_message("chi-square: first token %.2f, second token %.2f (%ld samples); "
                  "critical %.3f\n", x1, x2, n_second, CHI2_DF5_P001);
    assert_true(n_second > trials / 4);
    assert_true(x1 < CHI2_DF5_P001);
    assert_true(x2 < CHI2_DF5_P001);
}

static void test_chi_square_detects_wrong_residual(void **state)
{
    (void)state;
    const long trials = 200000;
    long first[V6] = {0}, second[V6] = {0}, n_second;
    run_trials(trials, true, first, second, &n_second);
    assert_true(chi_square(first, target_p0, V6, trials) > CHI2_DF5_P001);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax_ties_lowest),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_sample_inverse_cdf),
        cmocka_unit_test(test_accept_rule),
        cmocka_unit_test(test_residual),
        cmocka_unit_test(test_verify_branches),
        cmocka_unit_test(test_chi_square_preserves_target),
        cmocka_unit_test(test_chi_square_detects_wrong_residual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
