/*
 * test_expert_sharing.c - the apart baseline of `mtpbench bench --text`
 * (analysis/expert_sharing.h, bench/bench_sharing.c): distinct experts counted
 * by hand; apart positions never equal or adjacent, every such set reachable,
 * reproducible by seed; on routing where neighbours share experts the apart
 * tuples touch more experts than adjacent ones, and on routing with no
 * adjacency the two agree; the CLI prints the apart column and refuses a walk
 * too short to draw from.
 *
 *   ctest --test-dir build -R expert_sharing
 */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* cmocka needs it */

#include <cmocka.h>

#include <stdio.h>    /* defines: popen, sscanf */
#include <string.h>   /* defines: strstr */
#include <sys/wait.h> /* defines: WEXITSTATUS */
#include <unistd.h>   /* defines: access */

#include "analysis/expert_sharing.h"
#include "core/error.h"
#include "engine/rng.h"
#include "tests/support/rank_logs.h" /* defines: test_mtpbench_path */

enum { T_MAX = 256, L_MAX = 2, K_MAX = 2 };
static int32_t routes_buf[T_MAX * L_MAX * K_MAX];
static char mtpbench[1024];

static void test_distinct_by_hand(void **state)
{
    (void)state;
    /* 3 tokens, 2 layers, K 2, E 8; id 9 is out of range and not counted. */
    static const int32_t idx[] = {0, 1, 0, 1, /* token 0: layer 0, layer 1 */
                                  1, 2, 0, 9, /* token 1 */
                                  5, 6, 1, 0 /* token 2 */};
    struct mtp_routes r = {.idx = idx, .tokens = 3, .layers = 2, .k = 2, .n_experts = 8};
    int p01[] = {0, 1}, p02[] = {0, 2}, p012[] = {0, 1, 2};
    assert_true(mtp_routes_distinct(&r, p01, 2) == (3 + 2) / 2.0);
    assert_true(mtp_routes_distinct(&r, p02, 2) == (4 + 2) / 2.0);
    assert_true(mtp_routes_distinct(&r, p012, 3) == (5 + 2) / 2.0);
    r.n_experts = MTP_SHARING_MAX_EXPERTS + 1;
    assert_true(mtp_routes_distinct(&r, p01, 2) < 0);
}

static void test_draw_apart(void **state)
{
    (void)state;
    struct mtp_rng rng;
    mtp_rng_seed(&rng, 3, 4);
    int pos[MTP_SHARING_MAX_TUPLE], hits[40] = {0};
    /* The minimum length has one set: every other position. */
    assert_int_equal(mtp_draw_apart(&rng, 15, 8, pos), MTP_OK);
    for (int i = 0; i < 8; i++)
        assert_int_equal(pos[i], 2 * i);
    for (int d = 0; d < 4000; d++) {
        assert_int_equal(mtp_draw_apart(&rng, 40, 5, pos), MTP_OK);
        for (int i = 0; i < 5; i++) {
            assert_true(pos[i] >= 0 && pos[i] < 40);
            assert_true(i == 0 || pos[i] - pos[i - 1] >= 2);
            hits[pos[i]]++;
        }
    }
    for (int t = 0; t < 40; t++) /* every position reachable, the ends included */
        assert_true(hits[t] > 0);
    assert_int_equal(mtp_draw_apart(&rng, 14, 8, pos), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "at least 15 tokens, found 14"));
    assert_int_equal(mtp_draw_apart(&rng, 40, 0, pos), MTP_ERR);
}

/* Token t of T selects K_MAX experts of E 16 in each layer: with BLOCK > 1 the
 * same pair for BLOCK neighbours (adjacency), else a random pair (no adjacency). */
static struct mtp_routes make_routes(int tokens, int block)
{
    struct mtp_rng rng;
    mtp_rng_seed(&rng, 11, 12);
    for (int t = 0; t < tokens; t++)
        for (int l = 0; l < L_MAX; l++) {
            int32_t *e = routes_buf + ((size_t)t * L_MAX + l) * K_MAX;
            int first = block > 1 ? 2 * ((t / block + l) % 8) : (int)(mtp_rng_next_u32(&rng) % 16);
            e[0] = first;
            e[1] = block > 1 ? first + 1 : (first + 1 + (int)(mtp_rng_next_u32(&rng) % 15)) % 16;
        }
    return (struct mtp_routes){.idx = routes_buf, .tokens = tokens, .layers = L_MAX, .k = K_MAX,
                               .n_experts = 16};
}

/* Mean distinct experts of every run of N adjacent tokens. */
static double adjacent_mean(const struct mtp_routes *r, int n)
{
    int pos[MTP_SHARING_MAX_TUPLE];
    double sum = 0;
    for (int s = 0; s + n <= r->tokens; s++) {
        for (int i = 0; i < n; i++)
            pos[i] = s + i;
        sum += mtp_routes_distinct(r, pos, n);
    }
    return sum / (r->tokens - n + 1);
}

static void test_apart_separates_adjacency(void **state)
{
    (void)state;
    double apart, again;
    struct mtp_routes shared = make_routes(T_MAX, 4);
    assert_int_equal(mtp_routes_apart_mean(&shared, 2, 2000, 1, &apart), MTP_OK);
    assert_int_equal(mtp_routes_apart_mean(&shared, 2, 2000, 1, &again), MTP_OK);
    assert_true(apart == again); /* reproducible */
    /* Neighbours share their pair 3 times in 4: 2.5 experts; apart, 1 time in 8: 3.75. */
    assert_true(adjacent_mean(&shared, 2) < 2.55);
    assert_true(apart > 3.5);
    struct mtp_routes indep = make_routes(T_MAX, 1);
    for (int n = 2; n <= 8; n++) {
        assert_int_equal(mtp_routes_apart_mean(&indep, n, 2000, 1, &apart), MTP_OK);
        double adj = adjacent_mean(&indep, n);
        assert_true(apart > adj - 0.25 && apart < adj + 0.25);
    }
    assert_int_equal(mtp_routes_apart_mean(&indep, 8, 0, 1, &apart), MTP_ERR);
}

static int run_cli(const char *args, char *out, size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", mtpbench, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli_prints_apart(void **state)
{
    (void)state;
    static char out[1 << 16];
    const char *base = "bench --model " MTP_SOURCE_DIR "/models/mtp-mini --threads 1 --repeats 1 "
                       "--context 32 --stream-mib 1 --text " MTP_SOURCE_DIR "/datasets/prose.jsonl";
    char args[2048];
    snprintf(args, sizeof args, "%s --windows 4", base);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "drawn apart (no two adjacent, 4096 draws per n, seed 1"));
    const char *row = strstr(out, "  n = 8:");
    assert_non_null(row);
    double adj, adj_x, apart, apart_x, indep, indep_x, ratio, pop;
    assert_int_equal(sscanf(row, "  n = 8: %lf (x%lf) %lf (x%lf) %lf (x%lf) %lf %lf", &adj, &adj_x,
                            &apart, &apart_x, &indep, &indep_x, &ratio, &pop),
                     8);
    assert_true(adj >= 2 && adj <= 8 && apart >= 2 && apart <= 8); /* E 8, K 2 */
    assert_true(ratio > 0.5 && ratio < 1.5 && pop > 0.5 && pop < 1.2);
    snprintf(args, sizeof args, "%s --windows 1", base);
    assert_int_equal(run_cli(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "--windows"));
}

static int find_binary(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    return access(mtpbench, X_OK) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_by_hand),
        cmocka_unit_test(test_draw_apart),
        cmocka_unit_test(test_apart_separates_adjacency),
        cmocka_unit_test(test_cli_prints_apart),
    };
    return cmocka_run_group_tests(tests, find_binary, NULL);
}
