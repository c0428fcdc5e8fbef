/*
 * cmd_synth.c - `mtpbench synth --shape NAME --out DIR`: write a random-weight
 * checkpoint with the per-layer shapes, dtypes and FP8 block scales of
 * DeepSeek-V3 or GLM-4.7-Flash, cut to fit one machine (synth/synth.h,
 * docs/synthetic.md).
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: fprintf */

#include "cli_util.h"    /* defines: mtp_cli_parse_int, mtp_cli_fail */
#include "commands.h"    /* defines: mtp_cmd_synth */
#include "synth/synth.h" /* defines: mtp_synth_write */

static void synth_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench synth --shape NAME --out DIR [options]\n"
               "\n"
               "Write a checkpoint with random weights and the exact per-layer shapes and\n"
               "dtypes of a released model (FP8 with 128x128 block scales for DeepSeek-V3,\n"
               "BF16 for GLM-4.7-Flash), with fewer layers (and, for DeepSeek-V3, fewer\n"
               "routed experts) so that it fits this machine. DIR gets config.json, one\n"
               "shard per layer, model.safetensors.index.json and a README.md saying what\n"
               "was cut. Load it like any model (inspect, bench, generate).\n"
               "\n"
               "shapes: %s\n"
               "  deepseek-v3: default cut 2 main layers (1 dense), 32 of 256 experts, 1 MTP\n"
               "               module: 7.24 GiB\n"
               "  glm-4.7-flash: default cut 4 main layers (1 dense), all 64 experts, 1 MTP\n"
               "               module: 6.09 GiB\n"
               "\n"
               "options:\n"
               "  --layers N        main layers to keep (the MTP module is always written)\n"
               "  --dense-layers N  leading dense layers among them\n"
               "  --experts N       routed experts per MoE layer (a multiple of n_group)\n"
               "  --seed S          random seed (default 24)\n"
               "  --dry-run         print the plan and the size, write nothing\n"
               "  -h, --help        show this help\n",
               mtp_synth_preset_names());
}

int mtp_cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"shape", required_argument, 0, 's'},   {"out", required_argument, 0, 'o'},
        {"layers", required_argument, 0, 'l'},  {"dense-layers", required_argument, 0, 'd'},
        {"experts", required_argument, 0, 'e'}, {"seed", required_argument, 0, 'S'},
        {"dry-run", no_argument, 0, 'n'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct mtp_synth_options o = {.dense_layers = -1, .seed = 24};
    int c, dry = 0;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': o.preset = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'n': dry = 1; break;
        case 'l':
        case 'd':
        case 'e':
        case 'S':
            if (mtp_cli_parse_int(c == 'l' ? "--layers" : c == 'd' ? "--dense-layers"
                                  : c == 'e' ? "--experts" : "--seed",
                                  optarg, c == 'l' || c == 'e' ? 1 : 0, 1L << 30, &v))
                return 2;
            if (c == 'l') o.layers = (int)v;
            if (c == 'd') o.dense_layers = (int)v;
            if (c == 'e') o.experts = (int)v;
            if (c == 'S') o.seed = (uint64_t)v;
            break;
        case 'h': synth_usage(stdout); return 0;
        default: synth_usage(stderr); return 2;
        }
    }
    if (!o.preset || (!o.out_dir && !dry) || optind < argc) {
        fprintf(stderr, "mtpbench: error: synth needs --shape and --out (and no other "
                        "arguments)\n");
        synth_usage(stderr);
        return 2;
    }
    if (dry) {
        struct mtp_synth_shape s;
        if (mtp_synth_plan(&o, &s))
            return mtp_cli_fail();
        printf("synth: %s: %d main layers (%d dense), %d routed experts, %d MTP module(s), "
               "%.2f GiB\n", s.name, s.layers, s.dense_layers, s.experts, s.nextn,
               (double)mtp_synth_bytes(&s) / (1ull << 30));
        return 0;
    }
    return mtp_synth_write(&o, stdout) ? mtp_cli_fail() : 0;
}
