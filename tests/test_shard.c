/*
 * test_shard.c - the split of an experiment over processes (experiments/shard.h)
 * and `mtpbench run --shard R/N` end to end, without MPI:
 *   - the split: every unit once, deterministic, balanced by cost (a heavy
 *     unit gets a rank to itself), within the LPT bound (mean + largest unit);
 *   - R/N parsing and rank log names reject what they should;
 *   - three --shard tasks give exactly the requests of a single-process run,
 *     with identical tokens and accepted counts, none duplicated; the report
 *     sees them as one run; a task stopped early and resumed repeats nothing;
 *   - --shard 2/2 is refused with a message naming the option.
 *
 *   ctest --test-dir build -R shard
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free, mkdtemp */
#include <string.h> /* defines: strstr */

#include "analysis/report.h"
#include "core/error.h"
#include "experiments/shard.h"
#include "tests/support/rank_logs.h"

static char tmp[128];
static char mtpbench[1024];

static void test_split_every_unit_once(void **state)
{
    (void)state;
    double cost[50];
    for (int u = 0; u < 50; u++)
        cost[u] = u % 7 == 3 ? 0 : 1 + (u * 37 % 11);
    for (int n = 1; n <= 6; n++) {
        int *a = mtp_shard_split(cost, 50, n), *b = mtp_shard_split(cost, 50, n);
        for (int u = 0; u < 50; u++) {
            assert_int_equal(a[u], b[u]); /* deterministic */
            if (cost[u] == 0)
                assert_int_equal(a[u], -1); /* nothing left to do: nobody's */
            else
                assert_true(a[u] >= 0 && a[u] < n);
        }
        free(a);
        free(b);
    }
}

/* Longest-first greedy: the busiest rank is within the largest unit of the mean. */
static void test_split_balanced(void **state)
{
    (void)state;
    enum { U = 400 };
    double cost[U], total = 0, biggest = 0;
    uint32_t x = 12345;
    for (int u = 0; u < U; u++) {
        x = x * 1664525u + 1013904223u;
        cost[u] = 1 + (x >> 8) % 1000;
        total += cost[u];
        biggest = cost[u] > biggest ? cost[u] : biggest;
    }
    for (int n = 2; n <= 9; n++) {
        int *own = mtp_shard_split(cost, U, n);
        double load[9] = {0};
        for (int u = 0; u < U; u++)
            load[own[u]] += cost[u];
        for (int k = 0; k < n; k++)
            assert_true(load[k] <= total / n + biggest);
        free(own);
    }
}

/* One unit as costly as ten others: a count split would give it company. */
static void test_split_by_cost_not_count(void **state)
{
    (void)state;
    double cost[11] = {1, 1, 1, 1, 1, 10, 1, 1, 1, 1, 1};
    int *own = mtp_shard_split(cost, 11, 2);
    for (int u = 0; u < 11; u++)
        if (u != 5)
            assert_int_not_equal(own[u], own[5]);
    free(own);
    /* Longer prompts cost more. */
    assert_true(mtp_shard_request_cost(200, 64) > mtp_shard_request_cost(10, 64));
    assert_true(mtp_shard_request_cost(10, 128) > mtp_shard_request_cost(10, 64));
}

static void test_parse(void **state)
{
    (void)state;
    struct mtp_shard s;
    assert_int_equal(mtp_shard_parse("--shard", "2/3", &s), MTP_OK);
    assert_int_equal(s.rank, 2);
    assert_int_equal(s.size, 3);
    static const char *const bad[] = {"3/3", "-1/2", "1/0", "a/b", "1/2x", " 1/2", "", "1",
                                      "1/+2", "0/70000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mtp_shard_parse("--shard", bad[i], &s), MTP_ERR);
        assert_non_null(strstr(mtp_error_message(), "--shard"));
        assert_non_null(strstr(mtp_error_message(), "found"));
    }
}

static void test_log_names(void **state)
{
    (void)state;
    char *p = mtp_shard_log_path("out", "quick", 1, 4);
    assert_string_equal(p, "out/quick.rank-1-of-4.msgpack");
    free(p);
    int r, n;
    assert_true(mtp_shard_is_log_name("quick.rank-1-of-4.msgpack", "quick", &r, &n));
    assert_int_equal(r, 1);
    assert_int_equal(n, 4);
    static const char *const bad[] = {"quick.msgpack", "quick.rank-01-of-4.msgpack",
                                      "quick.rank-4-of-4.msgpack", "quickx.rank-0-of-4.msgpack",
                                      "quick.rank-0-of-4.msgpack.tmp", "quick.rank-0-of-0.msgpack"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(mtp_shard_is_log_name(bad[i], "quick", NULL, NULL));
}

static void run_single(const char *out)
{
    assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --out '%s/%s' >/dev/null", mtpbench,
                             tmp, tmp, out), 0);
}

static void test_shards_union(void **state)
{
    (void)state;
    run_single("single");
    for (int r = 0; r < 3; r++)
        assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --shard %d/3 --out '%s/sh3' "
                                 ">/dev/null", mtpbench, tmp, r, tmp), 0);
    struct test_request_set a = {0}, b = {0};
    char dir[300];
    snprintf(dir, sizeof dir, "%s/single", tmp);
    test_requests_load(&a, dir, "study");
    snprintf(dir, sizeof dir, "%s/sh3", tmp);
    test_requests_load(&b, dir, "study");
    assert_int_equal(a.n, TEST_STUDY_REQUESTS);
    assert_int_equal(b.n_files, 3);
    test_requests_assert_same(&a, &b);
    test_requests_free(&b);

    /* The report: three rank logs, one run, no duplicate warning. */
    struct mtp_report_data d = {0};
    FILE *warn = tmpfile();
    for (int r = 0; r < 3; r++) {
        char path[400];
        snprintf(path, sizeof path, "%s/sh3/study.rank-%d-of-3.msgpack", tmp, r);
        assert_int_equal(mtp_report_data_load(&d, path, warn), MTP_OK);
    }
    assert_int_equal(ftell(warn), 0);
    fclose(warn);
    assert_int_equal(d.n_runs, 1);
    assert_int_equal(d.n_requests, TEST_STUDY_REQUESTS);
    mtp_report_data_free(&d);

    /* Task 1 of 2 stops after 3 requests, then resumes: nothing lost or repeated. */
    assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --shard 0/2 --out '%s/sh2' "
                             ">/dev/null", mtpbench, tmp, tmp), 0);
    assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --shard 1/2 --max-requests 3 "
                             "--out '%s/sh2' >/dev/null", mtpbench, tmp, tmp), 0);
    assert_int_equal(test_sh("'%s' run '%s/study.json' --quiet --shard 1/2 --resume "
                             "--out '%s/sh2' >/dev/null", mtpbench, tmp, tmp), 0);
    snprintf(dir, sizeof dir, "%s/sh2", tmp);
    test_requests_load(&b, dir, "study");
    test_requests_assert_same(&a, &b);
    test_requests_free(&b);
    test_requests_free(&a);
}

static void test_shard_rejected(void **state)
{
    (void)state;
    assert_int_equal(test_sh("'%s' run '%s/study.json' --shard 2/2 --out '%s/bad' 2>'%s/err'",
                             mtpbench, tmp, tmp, tmp), 2);
    assert_int_equal(test_sh("grep -q -- \"--shard: expected R/N .*found '2/2'\" '%s/err'", tmp),
                     0);
}

static int setup(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    snprintf(tmp, sizeof tmp, "/tmp/mtp_shard_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    test_write_small_study(tmp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_sh("rm -rf '%s'", tmp) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_unit_once), cmocka_unit_test(test_split_balanced),
        cmocka_unit_test(test_split_by_cost_not_count), cmocka_unit_test(test_parse),
        cmocka_unit_test(test_log_names),             cmocka_unit_test(test_shards_union),
        cmocka_unit_test(test_shard_rejected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
