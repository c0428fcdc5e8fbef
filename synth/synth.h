/*
 * synth.h - random-weight checkpoints with the exact per-layer shapes, dtypes
 * and block scales of released MTP models (DeepSeek-V3, GLM-4.7-Flash), cut
 * to fewer layers (and, for DeepSeek-V3, fewer routed experts) so that they
 * fit one machine (docs/synthetic.md). `mtpbench synth` is the command.
 *
 * A checkpoint is a directory the engine loads like a downloaded one:
 * config.json (the release's values, with the cut counts and an
 * "mtpbench_synthetic" record of what was cut), one safetensors shard per
 * layer plus one for the embedding/head, model.safetensors.index.json, a
 * token_frequencies.bin (for draft vocabularies) and a README.md. Every tensor's values come from (seed, tensor name) only.
 */
#ifndef MTP_SYNTH_H
#define MTP_SYNTH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One model's architecture as written to config.json. */
struct mtp_synth_shape {
    const char *name;          /* preset name: "deepseek-v3", "glm-4.7-flash", "tiny-..." */
    const char *model_type;    /* config.json model_type */
    const char *architecture;  /* config.json architectures[0] */
    int vocab, hidden, intermediate, moe_intermediate;
    int layers, dense_layers, nextn; /* main layers, leading dense ones, MTP modules */
    int heads, q_lora, kv_lora, nope, rope, v_head;
    int experts, top_k, n_group, topk_group, shared;
    double routed_scaling, rope_theta, rms_eps;
    double yarn_factor;        /* 0: no YaRN; else factor with original 4096, betas 32/1 */
    int max_positions, bos, eos;
    bool fp8;                  /* projections and experts F8_E4M3 with 128x128 scales */
};

/* The presets: the two real shapes and a tiny one of each for tests. NULL when NAME is
 * unknown. mtp_synth_preset_names() lists them for messages. */
const struct mtp_synth_shape *mtp_synth_preset(const char *name);
const char *mtp_synth_preset_names(void);

struct mtp_synth_options {
    const char *preset;
    const char *out_dir;       /* created; must not hold a config.json already */
    int layers;                /* main layers to keep (0: the preset's default cut) */
    int dense_layers;          /* leading dense layers to keep (-1: default) */
    int experts;               /* routed experts to keep (0: default); n_group must divide it */
    uint64_t seed;
};

/* The default cut of a preset: what `mtpbench synth` writes without options. */
void mtp_synth_default_cut(const struct mtp_synth_shape *s, int *layers, int *dense,
                           int *experts);

/* The shape actually written: PRESET with OPT's cuts applied and checked (layers >= 1,
 * dense < layers unless the preset is dense, experts a multiple of n_group with enough
 * per kept group for top_k). Returns MTP_OK, or MTP_ERR naming the option. */
int mtp_synth_plan(const struct mtp_synth_options *opt, struct mtp_synth_shape *out);

/* Bytes the checkpoint of SHAPE takes (tensor data only). */
uint64_t mtp_synth_bytes(const struct mtp_synth_shape *shape);

/* token_frequencies.bin of DIR: Zipf counts over a seeded order of the VOCAB ids, so draft
 * vocabularies can be timed (synth_freq.c). mtp_synth_write writes it too. */
int mtp_synth_write_token_freq(const char *dir, int vocab, uint64_t seed);

/* Write the checkpoint; progress and the cut go to LOG (may be NULL). */
int mtp_synth_write(const struct mtp_synth_options *opt, FILE *log);

#endif
