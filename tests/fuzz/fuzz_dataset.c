/*
 * fuzz_dataset.c - libFuzzer target: a JSONL prompt file (Spec-Bench
 * question schema) through mtp_dataset_load, all prompts and the first 2.
 */
#include "experiments/dataset.h" /* defines: mtp_dataset_load */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, 0);
    struct mtp_dataset ds;
    (void)mtp_dataset_load(path, 0, &ds);
    mtp_dataset_free(&ds);
    (void)mtp_dataset_load(path, 2, &ds);
    mtp_dataset_free(&ds);
    return 0;
}
