/*
 * test_bench_cli.c - `mtpbench bench` on a tiny fixture, through the
 * executable: the sections issue 16 added are printed and written to --json
 * with every case and figure, mean next to median; the competing process of
 * --contended is gone when bench returns. No timing is asserted: figures
 * are only checked to exist, be finite and be consistent with their cases.
 *
 * Build and run: cmake --build build --target test_bench_cli && ./build/test_bench_cli
 */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* cmocka needs it */

#include <cmocka.h>

#include <errno.h>    /* defines: errno, ESRCH */
#include <jansson.h>  /* defines: json_load_file */
#include <math.h>     /* defines: isfinite */
#include <signal.h>   /* defines: kill */
#include <stdio.h>    /* defines: popen */
#include <stdlib.h>   /* defines: mkdtemp */
#include <string.h>   /* defines: strstr */
#include <sys/wait.h> /* defines: WEXITSTATUS */
#include <unistd.h>   /* defines: access, unlink */

#include "tests/support/rank_logs.h" /* defines: test_mtpbench_path */

static char mtpbench[1024];

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

static const json_t *case_named(const json_t *cases, const char *name)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c)
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return c;
    return NULL;
}

static double stat_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_non_null(v);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* A stats object: finite, ordered min <= p10 <= median <= p90 <= max, mean within. */
static void check_stats(const json_t *s)
{
    assert_non_null(s);
    double mn = stat_of(s, "min"), p10 = stat_of(s, "p10"), med = stat_of(s, "median"),
           p90 = stat_of(s, "p90"), mx = stat_of(s, "max"), mean = stat_of(s, "mean");
    assert_true(isfinite(mn) && isfinite(mx) && isfinite(mean));
    assert_true(mn <= p10 && p10 <= med && med <= p90 && p90 <= mx);
    assert_true(mn <= mean && mean <= mx);
}

static void test_bench_sections(void **state)
{
    (void)state;
    char dir[] = "/tmp/mtp-bench-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char json_path[256], args[1024];
    snprintf(json_path, sizeof json_path, "%s/bench.json", dir);
    snprintf(args, sizeof args,
             "bench --model " MTP_SOURCE_DIR "/tests/fixtures/v3-f32 --threads 2 --repeats 3 "
             "--context 24 --stream-mib 1 --contended --json %s", json_path);
    static char out[1 << 16];
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "median / mean"));
    assert_non_null(strstr(out, "fixed cost per forward"));
    assert_non_null(strstr(out, "contended: speed at N / at 1 thread"));

    /* The competitor was reaped before bench returned. */
    const char *p = strstr(out, "(pid ");
    assert_non_null(p);
    int pid = atoi(p + 5);
    assert_true(pid > 0);
    errno = 0;
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);

    json_error_t err;
    json_t *root = json_load_file(json_path, 0, &err);
    assert_non_null(root);
    const json_t *sec = json_object_get(root, "sections");
    assert_non_null(sec);

    const json_t *ov = json_object_get(sec, "overheads");
    assert_non_null(ov);
    const json_t *cases = json_object_get(ov, "cases");
    const json_t *full = case_named(cases, "decode/layers=3");
    const json_t *one = case_named(cases, "decode/layers=1");
    assert_non_null(full);
    assert_non_null(one);
    assert_int_equal(json_integer_value(json_object_get(one, "layers")), 1);
    check_stats(json_object_get(full, "ns"));
    assert_non_null(case_named(cases, "pool/threads=2/awake"));
    assert_non_null(case_named(cases, "pool/threads=2/asleep"));
    const json_t *figs = json_object_get(ov, "figures");
    static const char *const ov_figs[] = {"fixed_ns", "per_layer_ns", "fixed_share"};
    for (size_t i = 0; i < 3; i++)
        check_stats(json_object_get(figs, ov_figs[i]));
    /* Per round, intercept + 3 slopes is the full model's time (t(L) = a + b L),
     * and means are linear: the means agree up to rounding. */
    double fixed = stat_of(json_object_get(figs, "fixed_ns"), "mean");
    double slope = stat_of(json_object_get(figs, "per_layer_ns"), "mean");
    double t_full = stat_of(json_object_get(full, "ns"), "mean");
    assert_true(fabs(fixed + 3 * slope - t_full) <= 1e-6 * t_full + 1e-3);

    const json_t *th = json_object_get(sec, "threads");
    assert_non_null(th);
    cases = json_object_get(th, "cases");
    assert_int_equal(json_array_size(cases), 4);
    static const char *const names[] = {"decode/threads=1/quiet", "decode/threads=2/quiet",
                                        "decode/threads=1/contended",
                                        "decode/threads=2/contended"};
    for (size_t i = 0; i < 4; i++) {
        const json_t *c = case_named(cases, names[i]);
        assert_non_null(c);
        assert_int_equal(json_is_true(json_object_get(c, "contended")), i >= 2);
        check_stats(json_object_get(c, "ns"));
    }
    figs = json_object_get(th, "figures");
    check_stats(json_object_get(figs, "contended_speed_N_over_1"));
    check_stats(json_object_get(figs, "quiet_speed_N_over_1"));
    json_decref(root);
    unlink(json_path);
    rmdir(dir);
}

static int find_binary(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    return access(mtpbench, X_OK) == 0 ? 0 : -1;
}

/* --batch: the table of B x K cases on real text and the 8-singles ratios;
 * without --text it is a usage error naming what is missing. */
static void test_bench_batch(void **state)
{
    (void)state;
    static char out[1 << 16];
    assert_int_equal(run_cli("bench --model " MTP_SOURCE_DIR "/models/mtp-mini --batch", out,
                             sizeof out), 2);
    assert_non_null(strstr(out, "--batch needs --text"));
    assert_int_equal(run_cli("bench --model " MTP_SOURCE_DIR "/models/mtp-mini --threads 1 "
                             "--repeats 1 --context 24 --stream-mib 1 --windows 2 --batch --text "
                             MTP_SOURCE_DIR "/datasets/prose.jsonl", out, sizeof out), 0);
    const char *t = strstr(out, "batch verification over B sequences at position 24");
    assert_non_null(t);
    int rows = 0, B, K, T;
    double ms, per_seq, per_tok, experts;
    for (const char *l = strchr(t, '\n'); l && *l; l = strchr(l + 1, '\n'))
        if (sscanf(l + 1, "%d %d %d %lf %lf %lf %lf", &B, &K, &T, &ms, &per_seq, &per_tok,
                   &experts) == 7) {
            assert_int_equal(T, B * (K + 1));
            assert_true(ms > 0 && experts >= 1);
            if (B == 1 && K == 0) /* one token reads its top-k (2) experts in every layer */
                assert_true(fabs(experts - 2.0) < 1e-9);
            assert_true(experts <= 2.0 * T && experts <= 8.0); /* 8 routed experts */
            rows++;
        }
    assert_int_equal(rows, 6 * 4);
    assert_non_null(strstr(t, "forward of 8 single-token sequences / 8 single decodes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_sections),
        cmocka_unit_test(test_bench_batch),
    };
    return cmocka_run_group_tests(tests, find_binary, NULL);
}
