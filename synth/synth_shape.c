/*
 * synth_shape.c - the real shapes of DeepSeek-V3 and GLM-4.7-Flash (values
 * from their released config.json files, docs/model.md §1.1 and §1.3), tiny
 * ones of the same structure for tests, and the cuts that make them fit one
 * machine.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp */

#include "../core/error.h"
#include "synth_internal.h"

static const struct mtp_synth_shape presets[] = {
    {.name = "deepseek-v3", .model_type = "deepseek_v3", .architecture = "DeepseekV3ForCausalLM",
     .vocab = 129280, .hidden = 7168, .intermediate = 18432, .moe_intermediate = 2048,
     .layers = 61, .dense_layers = 3, .nextn = 1, .heads = 128, .q_lora = 1536, .kv_lora = 512,
     .nope = 128, .rope = 64, .v_head = 128, .experts = 256, .top_k = 8, .n_group = 8,
     .topk_group = 4, .shared = 1, .routed_scaling = 2.5, .rope_theta = 10000, .rms_eps = 1e-6,
     .yarn_factor = 40, .max_positions = 163840, .bos = 0, .eos = 1, .fp8 = true},
    {.name = "glm-4.7-flash", .model_type = "glm4_moe_lite",
     .architecture = "Glm4MoeLiteForCausalLM", .vocab = 154880, .hidden = 2048,
     .intermediate = 10240, .moe_intermediate = 1536, .layers = 47, .dense_layers = 1,
     .nextn = 1, .heads = 20, .q_lora = 768, .kv_lora = 512, .nope = 192, .rope = 64,
     .v_head = 256, .experts = 64, .top_k = 4, .n_group = 1, .topk_group = 1, .shared = 1,
     .routed_scaling = 1.8, .rope_theta = 1e6, .rms_eps = 1e-5, .yarn_factor = 0,
     .max_positions = 202752, .bos = 0, .eos = 154820, .fp8 = false},
    /* Same structure, small enough for CI: partial 128x128 FP8 blocks, v != nope. */
    {.name = "tiny-deepseek-v3", .model_type = "deepseek_v3",
     .architecture = "DeepseekV3ForCausalLM", .vocab = 512, .hidden = 320, .intermediate = 384,
     .moe_intermediate = 96, .layers = 3, .dense_layers = 1, .nextn = 1, .heads = 4,
     .q_lora = 192, .kv_lora = 64, .nope = 32, .rope = 16, .v_head = 32, .experts = 16,
     .top_k = 4, .n_group = 4, .topk_group = 2, .shared = 1, .routed_scaling = 2.5,
     .rope_theta = 10000, .rms_eps = 1e-6, .yarn_factor = 40, .max_positions = 163840,
     .bos = 0, .eos = 1, .fp8 = true},
    {.name = "tiny-glm-4.7-flash", .model_type = "glm4_moe_lite",
     .architecture = "Glm4MoeLiteForCausalLM", .vocab = 600, .hidden = 128,
     .intermediate = 256, .moe_intermediate = 64, .layers = 3, .dense_layers = 1, .nextn = 1,
     .heads = 2, .q_lora = 48, .kv_lora = 32, .nope = 24, .rope = 8, .v_head = 32,
     .experts = 8, .top_k = 2, .n_group = 1, .topk_group = 1, .shared = 1,
     .routed_scaling = 1.8, .rope_theta = 1e6, .rms_eps = 1e-5, .yarn_factor = 0,
     .max_positions = 202752, .bos = 0, .eos = 1, .fp8 = false},
};

const struct mtp_synth_shape *mtp_synth_preset(const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, name))
            return &presets[i];
    return NULL;
}

const char *mtp_synth_preset_names(void)
{
    return "deepseek-v3, glm-4.7-flash, tiny-deepseek-v3, tiny-glm-4.7-flash";
}

/* The real shapes are cut so each checkpoint stays under about 8 GiB (a 24 GiB machine
 * that also holds the page cache of what it reads): DeepSeek-V3 keeps 1 dense + 1 MoE
 * layer and 32 of 256 experts (4 per group, so top-8 within 4 of 8 groups still
 * chooses); GLM-4.7-Flash keeps 1 dense + 3 MoE layers and all 64 experts. */
void mtp_synth_default_cut(const struct mtp_synth_shape *s, int *layers, int *dense,
                           int *experts)
{
    bool deepseek = !strcmp(s->name, "deepseek-v3");
    bool glm = !strcmp(s->name, "glm-4.7-flash");
    *layers = deepseek ? 2 : glm ? 4 : s->layers;
    *dense = deepseek || glm ? 1 : s->dense_layers;
    *experts = deepseek ? 32 : s->experts;
}

int mtp_synth_plan(const struct mtp_synth_options *opt, struct mtp_synth_shape *out)
{
    const struct mtp_synth_shape *p = mtp_synth_preset(opt->preset);
    if (!p)
        return mtp_error_set("synth: --shape '%s': expected one of %s", opt->preset,
                             mtp_synth_preset_names());
    int layers, dense, experts;
    mtp_synth_default_cut(p, &layers, &dense, &experts);
    layers = opt->layers > 0 ? opt->layers : layers;
    dense = opt->dense_layers >= 0 ? opt->dense_layers : dense;
    experts = opt->experts > 0 ? opt->experts : experts;
    if (layers > p->layers)
        return mtp_error_set("synth: --layers: expected at most %d (the model's own), found %d",
                             p->layers, layers);
    if (dense >= layers)
        return mtp_error_set("synth: --dense-layers: expected fewer than --layers (%d) so a "
                             "main MoE layer remains, found %d", layers, dense);
    if (experts > p->experts || experts % p->n_group)
        return mtp_error_set("synth: --experts: expected a multiple of n_group (%d), at most "
                             "%d, found %d", p->n_group, p->experts, experts);
    if ((long long)experts / p->n_group * p->topk_group < p->top_k)
        return mtp_error_set("synth: --experts: expected at least %d (top-%d among the "
                             "experts of %d of %d groups), found %d",
                             p->top_k * p->n_group / p->topk_group, p->top_k, p->topk_group,
                             p->n_group, experts);
    *out = *p;
    out->layers = layers;
    out->dense_layers = dense;
    out->experts = experts;
    return MTP_OK;
}

uint64_t mtp_synth_bytes(const struct mtp_synth_shape *shape)
{
    struct synth_tensor *t;
    int n = synth_tensors(shape, &t);
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += synth_tensor_numel(&t[i]) * mtp_dtype_size(t[i].dtype);
    free(t);
    return bytes;
}
