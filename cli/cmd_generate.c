/*
 * cmd_generate.c - `mtpbench generate`: greedy continuation of a prompt given
 * as token ids, with single-token decoding on the main model.
 *
 *   mtpbench generate --model DIR --prompt-ids 1,2,3 -n 32 [--threads N] [--backend cpu]
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: free */

#include "cli_util.h"
#include "commands.h"
#include "engine/engine.h"
#include "engine/error.h"
#include "engine/model.h"

struct generate_args {
    const char *model_dir;
    const char *backend;
    int32_t *prompt;
    int n_prompt;
    int n_new;
    int threads;
};

static void generate_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench generate --model DIR --prompt-ids 1,2,3 [-n 32] [--threads N]\n"
               "                         [--backend cpu|cuda]\n\n"
               "Greedy single-token decoding on the main model; prints the new token ids.\n");
}

static int generate_parse(int argc, char **argv, struct generate_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"prompt-ids", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'}, {"backend", required_argument, 0, 'b'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    *a = (struct generate_args){.backend = "cpu", .n_new = 32};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model_dir = optarg; break;
        case 'p':
            if (mtp_cli_parse_ids("--prompt-ids", optarg, &a->prompt, &a->n_prompt))
                return 2;
            break;
        case 'n':
            if (mtp_cli_parse_int("-n", optarg, 0, 1 << 20, &v))
                return 2;
            a->n_new = (int)v;
            break;
        case 't':
            if (mtp_cli_parse_int("--threads", optarg, 0, 4096, &v))
                return 2;
            a->threads = (int)v;
            break;
        case 'b': a->backend = optarg; break;
        case 'h': generate_usage(stdout); return 1;
        default: generate_usage(stderr); return 2;
        }
    }
    if (!a->model_dir || !a->prompt) {
        fprintf(stderr, "mtpbench: error: generate needs --model and --prompt-ids\n");
        generate_usage(stderr);
        return 2;
    }
    return 0;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int generate_run(const struct generate_args *a, struct mtp_engine *e)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    float *logits = mtp_xmalloc(sizeof(float) * c->vocab_size);
    int status = mtp_engine_prefill(e, a->prompt, a->n_prompt, logits, NULL);
    int pos = a->n_prompt;
    for (int i = 0; i < a->n_new && status == MTP_OK; i++) {
        int32_t tok = argmax(logits, c->vocab_size);
        printf(i ? ",%d" : "%d", tok);
        if (tok == c->eos_token_id)
            break;
        status = mtp_engine_forward(e, &tok, 1, pos++, logits, NULL);
    }
    printf("\n");
    free(logits);
    return status;
}

int mtp_cmd_generate(int argc, char **argv)
{
    struct generate_args a;
    int rc = generate_parse(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    struct mtp_model *model = NULL;
    struct mtp_backend *be = NULL;
    struct mtp_engine *e = NULL;
    int status = mtp_model_load(a.model_dir, &model);
    if (!status)
        status = mtp_backend_create(a.backend, a.threads, &be);
    struct mtp_engine_options opt = {.max_positions = a.n_prompt + a.n_new + 16, .max_batch = 64};
    if (!status)
        status = mtp_engine_create(model, be, &opt, &e);
    if (!status)
        status = generate_run(&a, e);
    if (status)
        rc = mtp_cli_fail();
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(model);
    free(a.prompt);
    return rc;
}
