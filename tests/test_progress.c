/*
 * test_progress.c - the progress display (experiments/progress.h): the status
 * text (rates, tau, ETA that ignore resumed work), plain-line mode writes a
 * line at the end, terminal mode redraws in place, quiet writes nothing.
 *
 *   ctest --test-dir build -R progress
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: tmpfile */
#include <string.h> /* defines: strstr */

#include "experiments/progress.h"

static void test_format(void **state)
{
    (void)state;
    char buf[256];
    /* 40 of 100 done, 10 of them resumed: 30 in 60 s -> 2 s each, 60 left -> 120 s. */
    mtp_progress_format(buf, sizeof buf, 40, 10, 100, 3000, 1200, 60.0, "mtp-exact-k3");
    assert_non_null(strstr(buf, "[ 40/100]"));
    assert_non_null(strstr(buf, "40.0%"));
    assert_non_null(strstr(buf, "50.0 tok/s"));
    assert_non_null(strstr(buf, "tau 2.50"));
    assert_non_null(strstr(buf, "ETA 00:02:00"));
    assert_non_null(strstr(buf, "| mtp-exact-k3"));
    mtp_progress_format(buf, sizeof buf, 0, 0, 7, 0, 0, 0.0, NULL);
    assert_non_null(strstr(buf, "tau -"));
    assert_non_null(strstr(buf, "ETA --:--:--"));
}

static char *slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    return buf;
}

static void test_modes(void **state)
{
    (void)state;
    char out[1024];
    FILE *f = tmpfile();
    struct mtp_progress *p = mtp_progress_create_on(f, 3, false, 0, 3600);
    mtp_progress_update(p, 1, 10, 5, "baseline"); /* plain: nothing before the interval */
    mtp_progress_update(p, 3, 30, 15, "baseline");
    mtp_progress_finish(p);
    slurp(f, out, sizeof out);
    assert_non_null(strstr(out, "[3/3] 100.0%"));
    assert_null(strstr(out, "\r"));
    assert_null(strstr(out, "[1/3]"));
    fclose(f);

    f = tmpfile();
    p = mtp_progress_create_on(f, 3, false, 1, 0);
    mtp_progress_update(p, 1, 10, 5, NULL); /* terminal: first update draws at once */
    mtp_progress_finish(p);
    slurp(f, out, sizeof out);
    assert_non_null(strstr(out, "\r\033[2K[1/3]"));
    assert_int_equal(out[strlen(out) - 1], '\n');
    fclose(f);

    f = tmpfile();
    p = mtp_progress_create_on(f, 3, true, 1, 0);
    mtp_progress_update(p, 1, 10, 5, NULL);
    mtp_progress_finish(p);
    assert_int_equal(strlen(slurp(f, out, sizeof out)), 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
