/*
 * test_log_cli.c - the log's protections as a user meets them, through
 * build/mtpbench (issue 10, cases 2 and 3):
 *   1. while `run` writes a log (frozen with SIGSTOP, so it cannot finish
 *      first), a second `run --resume` exits 1 at once, naming the log and
 *      the running process's pid;
 *   2. that run killed with SIGKILL, then `run --resume`: the log holds every
 *      request of the spec exactly once and a finished summary;
 *   3. one flipped byte in the middle of the finished log: `report` exits 1
 *      naming the byte offset; `report --skip-damaged` exits 0 and says it
 *      skipped 1 record; `run --resume` exits 1 and the file is unchanged.
 *
 *   ctest --test-dir build -R log_cli
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>   /* defines: dirname */
#include <signal.h>   /* defines: kill, SIGKILL */
#include <stdio.h>    /* defines: popen, snprintf */
#include <stdlib.h>   /* defines: mkdtemp, system */
#include <string.h>   /* defines: strstr */
#include <sys/wait.h> /* defines: waitpid */
#include <time.h>     /* defines: nanosleep */
#include <unistd.h>   /* defines: fork, execl, readlink */

#include "core/error.h"
#include "experiments/log.h"
#include "support/test_files.h"

/* 2 datasets x 3 prompts x 2 sampling settings x 2 decoders, 32 tokens each. */
enum { N_EXPECTED = 2 * 3 * 2 * 2 };

static char mtpbench[1024], tmp_dir[64], spec[256], log_path[256];

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

/* Request records in the log (whole ones; a partial tail is fine), and
 * whether every key is distinct and a finished summary is there. */
struct log_count {
    int requests, distinct;
    bool finished;
};

static struct log_count count_log(void)
{
    struct log_count c = {0};
    struct mtp_log_reader *r;
    if (mtp_log_reader_open(log_path, &r))
        return c;
    struct mtp_log_keyset *keys = mtp_log_keyset_create();
    const msgpack_object *rec;
    char type[32];
    while (mtp_log_reader_next(r, &rec, NULL) == MTP_OK && rec) {
        mtp_log_record_type(rec, type, sizeof type);
        if (strcmp(type, "summary") == 0)
            c.finished = mtp_log_map_get(rec, "finished")->via.boolean;
        if (strcmp(type, "request") != 0)
            continue;
        struct mtp_request_record q;
        assert_int_equal(mtp_log_decode_request(rec, &q), MTP_OK);
        mtp_log_keyset_add(keys, q.decoder, q.sampling_index, q.dataset, q.prompt_id, q.repeat);
        mtp_log_request_free(&q);
        c.requests++;
    }
    c.distinct = mtp_log_keyset_size(keys);
    mtp_log_keyset_free(keys);
    mtp_log_reader_close(r);
    return c;
}

static pid_t start_run(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(mtpbench, mtpbench, "run", spec, "--quiet", (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

static void wait_for_requests(int n)
{
    struct timespec ms = {0, 2 * 1000 * 1000};
    for (int i = 0; i < 30000 && count_log().requests < n; i++)
        nanosleep(&ms, NULL);
}

static void test_concurrent_then_killed(void **state)
{
    (void)state;
    char out[8192], args[512], want[64];
    pid_t pid = start_run();
    wait_for_requests(1);
    assert_int_equal(kill(pid, SIGSTOP), 0); /* it holds the lock, and cannot finish */
    snprintf(args, sizeof args, "run %s --resume --quiet", spec);
    assert_int_equal(run_cli(args, out, sizeof out), 1);
    snprintf(want, sizeof want, "(pid %ld)", (long)pid);
    if (!strstr(out, log_path) || !strstr(out, want))
        fail_msg("expected the log and %s in: %s", want, out);
    /* Let it write again for a moment, then kill it, likely inside a record. */
    struct timespec ms30 = {0, 30 * 1000 * 1000};
    assert_int_equal(kill(pid, SIGCONT), 0);
    nanosleep(&ms30, NULL);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    struct log_count before = count_log();
    assert_true(before.requests >= 1 && before.requests < N_EXPECTED);
    assert_int_equal(before.distinct, before.requests);
    /* Resume finishes it: every request once. */
    if (run_cli(args, out, sizeof out) != 0)
        fail_msg("resume failed: %s", out);
    struct log_count after = count_log();
    assert_int_equal(after.requests, N_EXPECTED);
    assert_int_equal(after.distinct, N_EXPECTED);
    assert_true(after.finished);
}

/* The offset of the whole record containing byte AT. */
static uint64_t record_at(size_t at)
{
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(log_path, &r), MTP_OK);
    const msgpack_object *rec;
    uint64_t off, found = 0;
    while (mtp_log_reader_next(r, &rec, &off) == MTP_OK && rec)
        if (off <= at)
            found = off;
    mtp_log_reader_close(r);
    return found;
}

static void test_flipped_byte(void **state)
{
    (void)state;
    size_t size;
    char *data = test_read_whole_file(log_path, &size);
    size_t at = size / 2;
    uint64_t rec = record_at(at);
    data[at] ^= 0x01;
    FILE *f = fopen(log_path, "wb");
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);

    char out[16384], args[512], want[64];
    snprintf(args, sizeof args, "report %s --table acceptance", log_path);
    assert_int_equal(run_cli(args, out, sizeof out), 1);
    snprintf(want, sizeof want, "byte offset %llu", (unsigned long long)rec);
    if (!strstr(out, want))
        fail_msg("expected \"%s\" in: %s", want, out);
    snprintf(args, sizeof args, "report %s --table acceptance --skip-damaged", log_path);
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    if (!strstr(out, "skipped 1 damaged record"))
        fail_msg("expected the skip count in: %s", out);
    snprintf(args, sizeof args, "run %s --resume --quiet", spec);
    assert_int_equal(run_cli(args, out, sizeof out), 1);
    if (!strstr(out, want))
        fail_msg("expected \"%s\" in: %s", want, out);
    size_t after_size;
    char *after = test_read_whole_file(log_path, &after_size);
    assert_int_equal(after_size, size);
    assert_memory_equal(after, data, size);
    free(after);
    free(data);
}

static int setup(void **state)
{
    (void)state;
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    snprintf(mtpbench, sizeof mtpbench, "%s/mtpbench", dirname(self));
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_test_log_cli_XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    snprintf(spec, sizeof spec, "%s/spec.json", tmp_dir);
    snprintf(log_path, sizeof log_path, "%s/out/cli.msgpack", tmp_dir);
    FILE *f = fopen(spec, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"name\": \"cli\", \"model\": \"%s/models/mtp-mini\", \"backend\": \"cpu\", "
            "\"threads\": 1, \"datasets\": [\"%s/datasets/code.jsonl\", "
            "\"%s/datasets/quotes.jsonl\"], \"max_prompts\": 3, \"max_new_tokens\": 32, "
            "\"warmup\": 0, \"repeats\": 1, \"seed\": 0, "
            "\"sampling\": [{\"temperature\": 0}, {\"temperature\": 1}], "
            "\"decoders\": [{\"type\": \"baseline\"}, "
            "{\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"chain\"}], "
            "\"output_dir\": \"%s/out\"}\n",
            MTP_SOURCE_DIR, MTP_SOURCE_DIR, MTP_SOURCE_DIR, tmp_dir);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_then_killed),
        cmocka_unit_test(test_flipped_byte),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
