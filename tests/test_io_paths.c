/*
 * test_io_paths.c - the paths a user names for logs, cost files and report
 * output. Logs and cost files are opened like every other input (issue 28,
 * case 6): a FIFO where a log or a cost file should be fails at once, naming
 * the path and what it is, in
 *   - the log reader, `report FIFO` and `report DIR` with a FIFO *.msgpack;
 *   - the log writer (a new log, an overwrite, a resume), with and without a
 *     process holding the FIFO's read end;
 *   - `run --resume` with the log a FIFO, `run --shard --resume` with a FIFO
 *     rank log;
 *   - the cost file, and `report --table cost-model --costs FIFO`.
 * Nobody ever writes to these FIFOs: without the fix each case blocks for
 * ever. The alarm ends such a hang as a failure of this test, and every
 * mtpbench call runs under timeout(1), so no child is left blocked either.
 * `report --out` where no file can be created says why, with the path and
 * the system's reason (issue 28, case 13).
 *
 *   ctest --test-dir build -R io_paths
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>    /* defines: open, O_RDONLY, O_NONBLOCK */
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: mkdtemp */
#include <string.h>   /* defines: strstr */
#include <sys/stat.h> /* defines: mkfifo, mkdir */
#include <unistd.h>   /* defines: access, alarm, close, unlink */

#include "analysis/cost_model.h"
#include "analysis/report.h"
#include "core/error.h"
#include "experiments/log.h"
#include "tests/support/rank_logs.h"
#include "tests/support/test_files.h"

/* A hang in a library call ends the test here; CLI calls have timeout(1). */
#define HANG_LIMIT_S 60
/* timeout(1)'s exit status when it had to stop the command. */
#define TIMED_OUT 124

static char tmp[128];
static char mtpbench[1024];

static void expect_in_message(const char *part)
{
    if (!strstr(mtp_error_message(), part))
        fail_msg("message '%s' lacks '%s'", mtp_error_message(), part);
}

/* A fresh FIFO at TMP/REL (its path into PATH). */
static void make_fifo(const char *rel, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmp, rel);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
}

/* Run mtpbench ARGS under timeout(1); its stderr into TMP/err. Expect a
 * failure (not a timeout) whose message holds WANT1 and WANT2. */
static void expect_cli_refusal(const char *args, const char *want1, const char *want2)
{
    int rc = test_sh("timeout 30 '%s' %s >/dev/null 2>'%s/err'", mtpbench, args, tmp);
    if (rc == TIMED_OUT)
        fail_msg("mtpbench %s: still blocked after 30 s", args);
    assert_int_not_equal(rc, 0);
    char err[300];
    snprintf(err, sizeof err, "%s/err", tmp);
    size_t n;
    char *text = test_read_whole_file(err, &n);
    text[n] = '\0';
    if (!strstr(text, want1) || !strstr(text, want2))
        fail_msg("mtpbench %s: message '%s' lacks '%s' or '%s'", args, text, want1, want2);
    free(text);
}

static void test_reader_and_report(void **state)
{
    (void)state;
    char fifo[256], args[1024];
    make_fifo("logs/run.msgpack", fifo, sizeof fifo);
    struct mtp_log_reader *r = NULL;
    mtp_error_clear();
    assert_int_equal(mtp_log_reader_open(fifo, &r), MTP_ERR);
    assert_null(r);
    expect_in_message(fifo);
    expect_in_message("expected a regular file, found a FIFO");

    snprintf(args, sizeof args, "report '%s'", fifo);
    expect_cli_refusal(args, fifo, "found a FIFO");
    snprintf(args, sizeof args, "report '%s/logs'", tmp);
    expect_cli_refusal(args, fifo, "found a FIFO");
}

static void test_writer(void **state)
{
    (void)state;
    char fifo[256];
    make_fifo("writer.msgpack", fifo, sizeof fifo);
    struct mtp_log_options over = {.overwrite = true};
    struct mtp_log_writer *w = NULL;
    struct mtp_log_resume st;
    for (int reader = 0; reader <= 1; reader++) {
        /* With a reader, open(2) for writing succeeds: the type check must refuse it. */
        int rd = reader ? open(fifo, O_RDONLY | O_NONBLOCK) : -1;
        assert_true(!reader || rd >= 0);
        mtp_error_clear();
        assert_int_equal(mtp_log_open(fifo, &over, &w), MTP_ERR);
        assert_null(w);
        expect_in_message(fifo);
        expect_in_message("found a FIFO");
        mtp_error_clear();
        assert_int_equal(mtp_log_open_resume(fifo, "{}", NULL, &w, &st), MTP_ERR);
        assert_null(w);
        expect_in_message(fifo);
        expect_in_message("found a FIFO");
        if (rd >= 0)
            close(rd);
    }
    /* Without --overwrite an existing path of any kind is "exists", as before. */
    mtp_error_clear();
    assert_int_equal(mtp_log_open(fifo, NULL, &w), MTP_ERR);
    expect_in_message("File exists");
}

static void test_run_resume(void **state)
{
    (void)state;
    char fifo[256], args[1024];
    snprintf(args, sizeof args, "%s/resume", tmp);
    mkdir(args, 0700);
    make_fifo("resume/study.msgpack", fifo, sizeof fifo);
    snprintf(args, sizeof args, "run '%s/study.json' --quiet --resume --out '%s/resume'", tmp, tmp);
    expect_cli_refusal(args, fifo, "found a FIFO");

    snprintf(args, sizeof args, "%s/shard", tmp);
    mkdir(args, 0700);
    make_fifo("shard/study.rank-1-of-2.msgpack", fifo, sizeof fifo);
    snprintf(args, sizeof args, "run '%s/study.json' --quiet --shard 0/2 --resume --out '%s/shard'",
             tmp, tmp);
    expect_cli_refusal(args, fifo, "found a FIFO");
}

static void test_costs(void **state)
{
    (void)state;
    char fifo[256], args[1024];
    make_fifo("costs.json", fifo, sizeof fifo);
    struct mtp_costs c = {0};
    mtp_error_clear();
    assert_int_equal(mtp_costs_load(fifo, &c), MTP_ERR);
    expect_in_message(fifo);
    expect_in_message("found a FIFO");
    mtp_costs_free(&c);

    /* A real (one-request) log, so that report gets as far as the cost file. */
    assert_int_equal(test_sh("timeout 120 '%s' run '%s/study.json' --quiet --max-requests 1 "
                             "--out '%s/one' >/dev/null",
                             mtpbench, tmp, tmp),
                     0);
    snprintf(args, sizeof args, "report '%s/one/study.msgpack' --table cost-model --costs '%s'",
             tmp, fifo);
    expect_cli_refusal(args, fifo, "found a FIFO");
}

/* A directory nothing can be created in, even by root (sysfs refuses new
 * files); NULL when this machine offers none. */
static const char *uncreatable_dir(void)
{
    static char ro[200];
    snprintf(ro, sizeof ro, "%s/readonly", tmp);
    mkdir(ro, 0555);
    const char *dirs[] = {ro, "/sys"};
    for (int i = 0; i < 2; i++) {
        char probe[256];
        snprintf(probe, sizeof probe, "%s/probe", dirs[i]);
        int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0)
            return dirs[i];
        close(fd);
        unlink(probe);
    }
    return NULL;
}

static void test_report_out(void **state)
{
    (void)state;
    char log[256], args[1024];
    snprintf(log, sizeof log, "%s/one/study.msgpack", tmp);
    if (access(log, R_OK) != 0)
        assert_int_equal(test_sh("timeout 120 '%s' run '%s/study.json' --quiet --max-requests 1 "
                                 "--out '%s/one' >/dev/null",
                                 mtpbench, tmp, tmp),
                         0);
    snprintf(args, sizeof args, "report '%s' --out '%s/no/such/dir/table.txt'", log, tmp);
    expect_cli_refusal(args, "/no/such/dir/table.txt", "No such file or directory");
    const char *ro = uncreatable_dir();
    if (ro) {
        snprintf(args, sizeof args, "report '%s' --out '%s/table.txt'", log, ro);
        expect_cli_refusal(args, ro, "Permission denied");
    }
}

static int setup(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    snprintf(tmp, sizeof tmp, "/tmp/mtp_fifo_XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    char logs[200];
    snprintf(logs, sizeof logs, "%s/logs", tmp);
    mkdir(logs, 0700);
    test_write_small_study(tmp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_sh("rm -rf '%s'", tmp) == 0 ? 0 : -1;
}

/* Each test gets its own alarm, so a hang fails that test within a minute. */
static int arm(void **state)
{
    (void)state;
    alarm(HANG_LIMIT_S);
    return 0;
}

static int disarm(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reader_and_report, arm, disarm),
        cmocka_unit_test_setup_teardown(test_writer, arm, disarm),
        cmocka_unit_test_setup_teardown(test_run_resume, arm, disarm),
        cmocka_unit_test_setup_teardown(test_costs, arm, disarm),
        cmocka_unit_test_setup_teardown(test_report_out, arm, disarm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
