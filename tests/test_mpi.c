/*
 * test_mpi.c - `mpirun -n N mtpbench run` end to end on the small fixture
 * study (tests/support/rank_logs.h):
 *   - -n 2 and -n 3 (the study has batch sizes 1 and 2): the union of the rank
 *     logs has exactly the requests of a single-process run, identical tokens
 *     and accepted counts, none duplicated; rank 0 alone prints the whole job's progress, and the same
 *     table as the single-process run (timings aside); the report sees one run;
 *   - a run stopped mid-way under -n 2, one rank log cut inside its last
 *     record (a kill while writing), resumed with -n 3: nothing lost or
 *     repeated.
 * Skipped (exit 77) when mtpbench was built without MPI or mpirun cannot start.
 *
 *   ctest --test-dir build -R mpi
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: setenv, mkdtemp */
#include <sys/stat.h> /* defines: stat */
#include <unistd.h>   /* defines: truncate */

#include "analysis/report.h"
#include "core/error.h"
#include "experiments/runner_mpi.h"
#include "tests/support/rank_logs.h"

#ifndef MTP_MPIEXEC
#define MTP_MPIEXEC "mpirun"
#endif

static char tmp[128];
static char mtpbench[1024];
/* Ranks > cores here; no binding, so ranks are not pinned onto one core. */
static const char *mpirun = MTP_MPIEXEC " --oversubscribe --bind-to none";

static struct test_request_set single;

static void load(struct test_request_set *s, const char *out)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", tmp, out);
    test_requests_load(s, dir, "study");
}

/* The table without its last two columns (tok/s, speedup: timings). */
static const char *strip_timing = "awk 'NF>2{$NF=\"\";$(NF-1)=\"\"}1'";

static void check_ranks(int n)
{
    char out[32];
    snprintf(out, sizeof out, "mpi%d", n);
    assert_int_equal(test_sh("%s -n %d '%s' run '%s/study.json' --out '%s/%s' >'%s/%s.table' "
                             "2>'%s/%s.err'",
                             mpirun, n, mtpbench, tmp, tmp, out, tmp, out, tmp, out), 0);
    struct test_request_set u = {0};
    load(&u, out);
    assert_int_equal(u.n_files, n);
    test_requests_assert_same(&single, &u);
    test_requests_free(&u);
    /* One progress display for the whole job (plain lines: stderr is a file). */
    assert_int_equal(test_sh("test \"$(grep -c '\\[%d/%d\\]' '%s/%s.err')\" = 1",
                             TEST_STUDY_REQUESTS, TEST_STUDY_REQUESTS, tmp, out), 0);
    assert_int_equal(test_sh("%s '%s/single.table' >'%s/a.txt' && %s '%s/%s.table' >'%s/b.txt' "
                             "&& grep -q mtp-exact-k2 '%s/a.txt' && cmp '%s/a.txt' '%s/b.txt'",
                             strip_timing, tmp, tmp, strip_timing, tmp, out, tmp, tmp, tmp, tmp),
                     0);
    struct mtp_report_data d = {0};
    for (int r = 0; r < n; r++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s/study.rank-%d-of-%d.msgpack", tmp, out, r, n);
        assert_int_equal(mtp_report_data_load(&d, path, NULL), MTP_OK);
    }
    assert_int_equal(d.n_runs, 1);
    assert_int_equal(d.n_duplicates, 0);
    mtp_report_data_free(&d);
}

static void test_two_ranks(void **state)
{
    (void)state;
    check_ranks(2);
}

static void test_three_ranks(void **state)
{
    (void)state;
    check_ranks(3);
}

static void test_resume_other_n(void **state)
{
    (void)state;
    assert_int_equal(test_sh("%s -n 2 '%s' run '%s/study.json' --quiet --max-requests 5 "
                             "--out '%s/res' >/dev/null", mpirun,
                             mtpbench, tmp, tmp), 0);
    struct test_request_set u = {0};
    load(&u, "res");
    assert_int_equal(u.n, 10); /* 5 per rank */
    test_requests_free(&u);
    /* Rank 1 "killed" while writing: its last record cut in the middle. */
    char path[400];
    snprintf(path, sizeof path, "%s/res/study.rank-1-of-2.msgpack", tmp);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 40), 0);
    /* A fresh run over these logs is refused: it would mix two runs. */
    assert_int_not_equal(test_sh("%s -n 3 '%s' run '%s/study.json' --quiet --out '%s/res' "
                                 ">/dev/null 2>&1", mpirun, mtpbench, tmp, tmp), 0);
    assert_int_equal(test_sh("%s -n 3 '%s' run '%s/study.json' --quiet --resume --out '%s/res' "
                             ">/dev/null", mpirun, mtpbench, tmp, tmp), 0);
    load(&u, "res");
    assert_int_equal(u.n_files, 5);
    test_requests_assert_same(&single, &u);
    test_requests_free(&u);
    /* Resuming a finished job does nothing and repeats nothing. */
    assert_int_equal(test_sh("%s -n 2 '%s' run '%s/study.json' --quiet --resume --out '%s/res' "
                             ">/dev/null", mpirun, mtpbench, tmp, tmp), 0);
    load(&u, "res");
    test_requests_assert_same(&single, &u);
    test_requests_free(&u);
}

static int setup(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    snprintf(tmp, sizeof tmp, "/tmp/mtp_mpi_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    test_write_small_study(tmp);
    if (test_sh("'%s' run '%s/study.json' --quiet --out '%s/single' >'%s/single.table'",
                mtpbench, tmp, tmp, tmp) != 0)
        return -1;
    load(&single, "single");
    return single.n == TEST_STUDY_REQUESTS ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    test_requests_free(&single);
    return test_sh("rm -rf '%s'", tmp) == 0 ? 0 : -1;
}

int main(void)
{
    if (!mtp_mpi_available()) {
        printf("test_mpi: skipped: mtpbench was built without MPI (-DMTP_MPI=OFF or no MPI "
               "found); exit 77 so ctest reports Skipped\n");
        return 77;
    }
    /* Open MPI refuses root unless told; CI containers run as root. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    if (test_sh("%s -n 1 true >/dev/null 2>&1", mpirun) != 0) {
        printf("test_mpi: skipped: '%s -n 1 true' does not run; exit 77\n", mpirun);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks),
        cmocka_unit_test(test_three_ranks),
        cmocka_unit_test(test_resume_other_n),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
