/*
 * fuzz_report.c - libFuzzer target: an experiment log through the whole
 * report: load (skipping damaged records, so damaged inputs still reach the
 * tables), group, every metric with a small bootstrap, the full,
 * acceptance, ablation and tree views, rendered as markdown and JSON to
 * /dev/null.
 */
#include <stdio.h> /* defines: fopen, FILE */
#include <stdlib.h> /* defines: abort */

#include "analysis/report.h" /* defines: mtp_report_* */
#include "fuzz.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, 0);
    struct mtp_report_data d = {0};
    d.skip_damaged = true;
    if (mtp_report_data_load(&d, path, NULL) == 0 && d.n_requests > 0) {
        struct mtp_report_options opt;
        mtp_report_options_default(&opt);
        opt.bootstrap = 8; /* the intervals' code paths, not their precision */
        struct mtp_report r;
        struct mtp_report_table t = {0};
        if (mtp_report_build(&d, &opt, &r) == 0) {
            render(&d, &opt, &t, mtp_report_table_full(&r, &t));
            mtp_report_free(&r);
        }
        struct mtp_report_table a = {0}, b = {0}, c = {0};
        render(&d, &opt, &a, mtp_report_table_acceptance(&d, &opt, &a));
        render(&d, &opt, &b, mtp_report_table_ablation(&d, &opt, &b));
        render(&d, &opt, &c, mtp_report_table_tree(&d, &opt, &c));
    }
    mtp_report_data_free(&d);
    return 0;
}
