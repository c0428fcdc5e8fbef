/*
 * fuzz_report.c - libFuzzer target: an experiment log through the whole
 * report: load (skipping damaged records, so damaged inputs still reach the
 * tables), group, every metric with a small bootstrap, the full,
 * acceptance, ablation, tree, position and batch views (the batch key added
 * as `report` adds it), rendered as markdown and
 * JSON to /dev/null (fuzz_report_all).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, 0);
    fuzz_report_all(path, 8); /* the intervals' code paths, not their precision */
    return 0;
}
