/*
 * fuzz_spec.c - libFuzzer target: an experiment spec (JSON text) through
 * mtp_spec_parse, relative paths resolved against experiments/ so the
 * shipped specs' model and dataset paths exist.
 */
#include <stdlib.h> /* defines: free */

#include "experiments/spec.h" /* defines: mtp_spec_parse */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    struct mtp_spec spec;
    if (mtp_spec_parse(text, "fuzz-spec.json", MTP_SOURCE_DIR "/experiments", &spec) == 0)
        (void)mtp_spec_check_model(&spec, 3);
    mtp_spec_free(&spec);
    free(text);
    return 0;
}
