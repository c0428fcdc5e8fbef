/*
 * fuzz_config.c - libFuzzer target: config.json through mtp_config_load,
 * then the derived quantities the forward pass computes from it (softmax
 * scale, YaRN inverse frequencies), which must not misbehave on any config
 * the loader accepts.
 */
#include <stdlib.h> /* defines: malloc, free */

#include "engine/config.h" /* defines: mtp_config_load */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, 0);
    struct mtp_config cfg;
    if (mtp_config_load(path, &cfg) != 0)
        return 0;
    (void)mtp_config_softmax_scale(&cfg);
    int half = cfg.qk_rope_head_dim / 2;
    float *freq = malloc(((size_t)(half > 0 ? half : 0) + 1) * sizeof *freq);
    float scale = 0.f;
    if (!freq)
        abort();
    mtp_config_rope_inv_freq(&cfg, freq, &scale);
    free(freq);
    return 0;
}
