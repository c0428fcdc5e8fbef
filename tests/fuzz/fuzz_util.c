/*
 * fuzz_util.c - the scratch file, string and whole-report helpers of fuzz.h.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <stdio.h>    /* defines: snprintf, perror */
#include <stdlib.h>   /* defines: malloc, abort */
#include <string.h>   /* defines: memcpy */
#include <sys/mman.h> /* defines: memfd_create */
#include <unistd.h>   /* defines: ftruncate, pwrite */

#include "analysis/report.h" /* defines: mtp_report_* */

const char *fuzz_scratch_file(const uint8_t *data, size_t size, size_t min_size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("mtpbench-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("fuzz: memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    size_t done = 0;
    if (ftruncate(fd, 0) != 0)
        abort();
    while (done < size) {
        ssize_t k = pwrite(fd, data + done, size - done, (off_t)done);
        if (k <= 0)
            abort();
        done += (size_t)k;
    }
    if (min_size > size && ftruncate(fd, (off_t)min_size) != 0)
        abort();
    return path;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static void render(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                   struct mtp_report_table *t, int rc)
{
    static FILE *sink;
    if (!sink && !(sink = fopen("/dev/null", "w")))
        abort();
    struct mtp_report_meta meta = {d, opt};
    if (rc == 0) {
        (void)mtp_report_write(sink, t, MTP_REPORT_FORMAT_MD, &meta);
        (void)mtp_report_write(sink, t, MTP_REPORT_FORMAT_JSON, &meta);
    }
    mtp_report_table_free(t);
}

void fuzz_report_all(const char *path, int bootstrap)
{
    struct mtp_report_data d = {0};
    d.skip_damaged = true;
    if (mtp_report_data_load(&d, path, NULL) == 0 && d.n_requests > 0) {
        struct mtp_report_options opt;
        mtp_report_options_default(&opt);
        opt.bootstrap = bootstrap;
        struct mtp_report r;
        struct mtp_report_table t = {0};
        (void)mtp_report_add_batch_key(&d, &opt); /* as `report` does with several B */
        if (mtp_report_build(&d, &opt, &r) == 0) {
            render(&d, &opt, &t, mtp_report_table_full(&r, &t));
            mtp_report_free(&r);
        }
        struct mtp_report_table a = {0}, b = {0}, c = {0}, e = {0}, f = {0};
        render(&d, &opt, &a, mtp_report_table_acceptance(&d, &opt, &a));
        render(&d, &opt, &b, mtp_report_table_ablation(&d, &opt, &b));
        render(&d, &opt, &c, mtp_report_table_tree(&d, &opt, &c));
        render(&d, &opt, &e, mtp_report_table_position(&d, &opt, &e));
        render(&d, &opt, &f, mtp_report_table_batch(&d, &opt, &f));
    }
    mtp_report_data_free(&d);
}
