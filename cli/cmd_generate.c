/*
 * cmd_generate.c - `mtpbench generate`: continue one prompt with single-token
 * decoding or MTP speculative decoding (engine/decode.h), and print the
 * continuation and the step statistics.
 *
 *   mtpbench generate --model DIR --prompt "text" [-n 32] [--mtp K [--drafting exact|chain]]
 *                     [--tree widths:4,2,1|paths:0;1;0,0|dynamic:N,W,D [--drafting ...]]
 *                     [--adaptive draft|cumulative --threshold T] [--draft-vocab N]
 *                     [--temperature T --top-p P --top-k K --seed S] [--threads N]
 *   mtpbench generate --model DIR --prompt-ids 1,2,3 ...   (prints token ids)
 *
 * On a terminal, tokens that came from accepted drafts are shown in color;
 * statistics (steps, tau, acceptance per draft position, tokens/s) go to stderr.
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp, strlen */
#include <unistd.h> /* defines: isatty */

#include "analysis/metrics.h"
#include "cli_util.h"
#include "commands.h"
#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/limits.h"
#include "core/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

struct generate_args {
    const char *model_dir;
    const char *backend;
    const char *text;  /* --prompt */
    int32_t *prompt;   /* --prompt-ids */
    int n_prompt;
    int n_new;
    int threads;
    int depth;         /* --mtp K; 0 = baseline */
    enum mtp_decode_drafting drafting;
    bool drafting_set;  /* --drafting given */
    enum mtp_decode_adaptive adaptive; /* --adaptive; OFF by default */
    double threshold;   /* --threshold */
    int module;
    struct mtp_tree_shape tree; /* --tree; kind NONE without it */
    int draft_vocab;    /* --draft-vocab N; 0 = full vocabulary */
    struct mtp_wiring wiring; /* --draft-hidden, --position0-embedding, --module-hidden */
    struct mtp_sampling sampling;
    uint64_t seed;
};

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: mtpbench generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [-n 32]\n"
            "                         [--mtp K] [--drafting exact|chain] [--module M]\n"
            "                         [--tree widths:4,2,1|paths:0;1;0,0|dynamic:N,W,D]\n"
            "                         [--adaptive draft|cumulative] [--threshold T]\n"
            "                         [--draft-vocab N]\n"
            "                         [--draft-hidden after_shared_head_norm|before_shared_head_norm]\n"
            "                         [--position0-embedding kept|zeroed]\n"
            "                         [--module-hidden previous_module|main_model]\n"
            "                         [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
            "                         [--threads N] [--backend cpu|cuda]\n\n"
            "Continue a prompt: single-token decoding, or with --mtp K speculative decoding with\n"
            "K drafts per step from the model's MTP modules (exact: module k drafts token k,\n"
            "K <= modules; chain: module M (default 1) reused K times). --adaptive: adaptive\n"
            "depth, chained drafting that stops after the first draft whose probability\n"
            "(draft) or running product (cumulative) is below --threshold (default 0.5), at\n"
            "most K drafts (spec/decoding.md \"Adaptive depth\"). Greedy unless\n"
            "--temperature > 0. Prints the continuation (text for --prompt, ids for\n"
            "--prompt-ids; accepted drafts in color on a terminal) and step statistics.\n"
            "--tree: tree decoding, one verification of a whole draft tree per step\n"
            "(spec/decoding.md \"Tree decoding\"): top-k widths per depth, explicit rank\n"
            "paths, or a dynamic tree of N draft tokens (width W, depth D).\n"
            "The three wiring options choose the MTP conventions of spec/decoding.md (hidden\n"
            "passed between draft steps: SGLang after / vLLM before shared_head.norm; vLLM\n"
            "zeroes the embedding at position 0; MiMo feeds every module the main model's\n"
            "hidden); unset, the model family's default. --draft-vocab N: draft heads over the\n"
            "N most frequent ids (MODEL_DIR/token_frequencies.bin; spec/decoding.md \"Draft\n"
            "vocabulary\"); verification stays over the full vocabulary.\n");
}

static int parse_mode(struct generate_args *a, int c, const char *arg)
{
    long v;
    double x;
    switch (c) {
    case 'k':
        if (mtp_cli_parse_int("--mtp", arg, 0, 64, &v))
            return 2;
        a->depth = (int)v;
        return 0;
    case 'W':
        if (mtp_tree_parse(arg, &a->tree)) {
            fprintf(stderr, "mtpbench: error: option --tree: %s\n", mtp_error_message());
            return 2;
        }
        return 0;
    case 'd':
        if (strcmp(arg, "exact") && strcmp(arg, "chain")) {
            fprintf(stderr, "mtpbench: error: option --drafting: expected exact or chain, found "
                            "'%s'\n", arg);
            return 2;
        }
        a->drafting = arg[0] == 'e' ? MTP_DECODE_DRAFTING_EXACT : MTP_DECODE_DRAFTING_CHAIN;
        a->drafting_set = true;
        return 0;
    case 'A':
        if (strcmp(arg, "draft") && strcmp(arg, "cumulative")) {
            fprintf(stderr, "mtpbench: error: option --adaptive: expected draft or cumulative, "
                            "found '%s'\n", arg);
            return 2;
        }
        a->adaptive = arg[0] == 'd' ? MTP_DECODE_ADAPTIVE_DRAFT : MTP_DECODE_ADAPTIVE_CUMULATIVE;
        return 0;
    case 'r':
        return mtp_cli_parse_double("--threshold", arg, 0, 1, &a->threshold) ? 2 : 0;
    case 'V':
        if (mtp_cli_parse_int("--draft-vocab", arg, 1, 1L << 30, &v))
            return 2;
        a->draft_vocab = (int)v;
        return 0;
    case 'M':
        if (mtp_cli_parse_int("--module", arg, 1, 64, &v))
            return 2;
        a->module = (int)v;
        return 0;
    case 'H':
    case 'E':
    case 'G': {
        enum mtp_wiring_field f = c == 'H'   ? MTP_WIRING_FIELD_DRAFT_HIDDEN
                                  : c == 'E' ? MTP_WIRING_FIELD_POSITION0_EMBEDDING
                                             : MTP_WIRING_FIELD_MODULE_HIDDEN;
        if (mtp_wiring_set(&a->wiring, f, arg)) {
            fprintf(stderr, "mtpbench: error: option --%s: %s\n",
                    f == MTP_WIRING_FIELD_DRAFT_HIDDEN          ? "draft-hidden"
                    : f == MTP_WIRING_FIELD_POSITION0_EMBEDDING ? "position0-embedding"
                                                                : "module-hidden",
                    mtp_error_message());
            return 2;
        }
        return 0;
    }
    case 'T':
        if (mtp_cli_parse_double("--temperature", arg, 0, 100, &x))
            return 2;
        a->sampling.temperature = (float)x;
        return 0;
    case 'P':
        if (mtp_cli_parse_double("--top-p", arg, 1e-6, 1, &x))
            return 2;
        a->sampling.top_p = (float)x;
        return 0;
    case 'K':
        if (mtp_cli_parse_int("--top-k", arg, 0, 1L << 30, &v))
            return 2;
        a->sampling.top_k = (int)v;
        return 0;
    case 's':
        if (mtp_cli_parse_int("--seed", arg, 0, 0x7fffffffL, &v))
            return 2;
        a->seed = (uint64_t)v;
        return 0;
    }
    return -1;
}

static int generate_parse(int argc, char **argv, struct generate_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},    {"prompt-ids", required_argument, 0, 'p'},
        {"prompt", required_argument, 0, 'x'},   {"threads", required_argument, 0, 't'},
        {"backend", required_argument, 0, 'b'},  {"mtp", required_argument, 0, 'k'},
        {"drafting", required_argument, 0, 'd'}, {"module", required_argument, 0, 'M'},
        {"temperature", required_argument, 0, 'T'}, {"top-p", required_argument, 0, 'P'},
        {"top-k", required_argument, 0, 'K'},    {"seed", required_argument, 0, 's'},
        {"draft-hidden", required_argument, 0, 'H'},
        {"position0-embedding", required_argument, 0, 'E'},
        {"module-hidden", required_argument, 0, 'G'},
        {"adaptive", required_argument, 0, 'A'}, {"threshold", required_argument, 0, 'r'},
        {"tree", required_argument, 0, 'W'},
        {"draft-vocab", required_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    *a = (struct generate_args){.backend = "cpu", .n_new = 32,
                                .drafting = MTP_DECODE_DRAFTING_EXACT, .threshold = 0.5,
                                .sampling = {.temperature = 0, .top_p = 1, .top_k = 0}};
    long v;
    int c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model_dir = optarg; break;
        case 'p':
            if (mtp_cli_parse_ids("--prompt-ids", optarg, &a->prompt, &a->n_prompt))
                return 2;
            break;
        case 'x': a->text = optarg; break;
        case 'n':
            if (mtp_cli_parse_int("-n", optarg, 1, 1 << 20, &v))
                return 2;
            a->n_new = (int)v;
            break;
        case 't':
            if (mtp_cli_parse_int("--threads", optarg, 0, MTP_MAX_THREADS, &v))
                return 2;
            a->threads = (int)v;
            break;
        case 'b': a->backend = optarg; break;
        case 'h': generate_usage(stdout); return 1;
        default:
            rc = parse_mode(a, c, optarg);
            if (rc < 0) {
                generate_usage(stderr);
                return 2;
            }
            if (rc)
                return rc;
        }
    }
    if (a->adaptive != MTP_DECODE_ADAPTIVE_OFF) {
        if (a->drafting_set && a->drafting == MTP_DECODE_DRAFTING_EXACT) {
            fprintf(stderr, "mtpbench: error: option --adaptive: needs --drafting chain, found "
                            "exact (exact drafting's module caches assume every module runs "
                            "every step)\n");
            return 2;
        }
        if (a->depth < 1) {
            fprintf(stderr, "mtpbench: error: option --adaptive: needs --mtp K (the most drafts "
                            "per step)\n");
            return 2;
        }
        a->drafting = MTP_DECODE_DRAFTING_CHAIN;
    }
    if (a->draft_vocab > 0 && a->depth < 1) {
        fprintf(stderr, "mtpbench: error: option --draft-vocab: needs --mtp K (only drafts use "
                        "the draft vocabulary)\n");
        return 2;
    }
    if (!a->model_dir || (!a->prompt == !a->text)) {
        fprintf(stderr, "mtpbench: error: generate needs --model and one of --prompt, "
                        "--prompt-ids\n");
        generate_usage(stderr);
        return 2;
    }
    return 0;
}

/* The text of IDS [n]. An id the tokenizer has no text for (the config's
 * vocabulary can be larger: padded embeddings) is shown as "[id N]" and
 * counted in *TEXTLESS, never dropped silently. */
static void print_text(const struct mtp_tokenizer *tok, const int32_t *ids, int n, int *textless)
{
    size_t len;
    char *s = mtp_tokenizer_decode(tok, ids, n, false, &len);
    if (s) {
        fwrite(s, 1, len, stdout);
        free(s);
        return;
    }
    for (int t = 0; t < n; t++) {
        const char *b = mtp_tokenizer_token_bytes(tok, ids[t], &len);
        if (b) {
            fwrite(b, 1, len, stdout);
        } else {
            printf("[id %d]", ids[t]);
            (*textless)++;
        }
    }
}

/* Print the continuation: runs of tokens with the same origin, colored on a
 * terminal when they are accepted drafts. */
static void print_output(const struct mtp_decode_result *r, const struct mtp_tokenizer *tok,
                         const char *prompt_text)
{
    int textless = 0;
    bool color = isatty(fileno(stdout));
    if (prompt_text)
        fputs(prompt_text, stdout);
    for (int i = 0; i < r->n_output;) {
        int j = i;
        while (j < r->n_output && r->from_draft[j] == r->from_draft[i])
            j++;
        if (color && r->from_draft[i])
            fputs("\033[32m", stdout);
        if (tok) {
            print_text(tok, r->output + i, j - i, &textless);
        } else {
            for (int t = i; t < j; t++)
                printf(t ? ",%d" : "%d", r->output[t]);
        }
        if (color && r->from_draft[i])
            fputs("\033[0m", stdout);
        i = j;
    }
    printf("\n");
    if (textless)
        fprintf(stderr, "mtpbench: warning: %d generated ids have no text in the tokenizer "
                        "(it has %d ids, fewer than the model's vocab_size); shown as [id N]\n",
                textless, mtp_tokenizer_vocab_size(tok));
}

/* Draft positions per step (a tree's depth) and tokens one step may draft. */
static int generate_depth(const struct generate_args *a)
{
    return a->tree.kind != MTP_TREE_NONE ? mtp_tree_depth(&a->tree) : a->depth;
}

static int generate_drafts(const struct generate_args *a)
{
    return a->tree.kind != MTP_TREE_NONE ? mtp_tree_max_candidates(&a->tree) : a->depth;
}

static void print_stats(const struct generate_args *a, const struct mtp_decode_result *r)
{
    struct mtp_metrics m;
    int depth = generate_depth(a);
    mtp_metrics_init(&m, depth);
    mtp_metrics_add_request_drafted(&m, r->accepted, r->accepted_uncut,
                                    a->adaptive ? r->drafted : NULL, r->n_steps, r->n_output,
                                    r->total_ns - r->ttft_ns);
    fprintf(stderr, "\n%d prompt tokens, %d new tokens (%s), %d steps, tau %.3f", r->n_prompt,
            r->n_output, r->stop == MTP_DECODE_STOP_EOS ? "eos" : "max tokens", r->n_steps,
            mtp_metrics_tau(&m));
    if (depth > 0) {
        fprintf(stderr, ", accept rate %.3f\nacceptance per draft position (alpha_j):",
                mtp_metrics_accept_rate(&m));
        for (int j = 1; j <= depth; j++) { /* "-": no step reached position j */
            double al = mtp_metrics_alpha(&m, j);
            fprintf(stderr, al == al ? " %.3f" : " -", al);
        }
    }
    if (r->tree_nodes) {
        long nodes = 0;
        for (int s = 0; s < r->n_steps; s++)
            nodes += r->tree_nodes[s];
        fprintf(stderr, "\ntree: %.2f tokens verified per step",
                r->n_steps ? (double)nodes / r->n_steps : 0.0);
    }
    fprintf(stderr, "\nttft %.2f ms, decode %.1f tokens/s\n", r->ttft_ns * 1e-6,
            mtp_metrics_tokens_per_s(&m));
}

static int generate_decode(const struct generate_args *a, struct mtp_engine *e,
                           const struct mtp_tokenizer *tok, const int32_t *prompt, int n)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    struct mtp_decode_params p = {
        .drafting = generate_depth(a) > 0 ? a->drafting : MTP_DECODE_DRAFTING_NONE,
        .depth = a->depth,
        .tree = a->tree,
        .chain_module = a->module,
        .adaptive = a->adaptive,
        .adaptive_threshold = a->threshold,
        .draft_vocab = a->depth > 0 ? a->draft_vocab : 0,
        .wiring = a->wiring,
        .sampling = a->sampling,
        .max_new_tokens = a->n_new,
        .eos_token_id = c->eos_token_id >= 0 ? c->eos_token_id
                                             : (tok ? mtp_tokenizer_eos_id(tok) : -1),
    };
    mtp_rng_seed_stream(&p.rng, a->seed, 0, 0, 0);
    struct mtp_decode_result r;
    if (mtp_decode_run(e, &p, prompt, n, &r))
        return MTP_ERR;
    print_output(&r, a->text ? tok : NULL, a->text);
    print_stats(a, &r);
    if (generate_depth(a) > 0) {
        struct mtp_wiring w = a->wiring;
        char label[128];
        mtp_wiring_resolve(&w, c);
        mtp_wiring_label(&w, label, sizeof label);
        fprintf(stderr, "wiring (draft_hidden, position0_embedding, module_hidden): %s\n", label);
    }
    mtp_decode_result_free(&r);
    return MTP_OK;
}

/* The prompt's ids: --prompt-ids as given, or --prompt through the tokenizer. */
static int generate_prompt(const struct generate_args *a, const struct mtp_model *model,
                           struct mtp_tokenizer **tok, int32_t **ids, int *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", a->model_dir);
    const struct mtp_config *c = &model->cfg;
    if (a->prompt) {
        *ids = a->prompt;
        *n = a->n_prompt;
        return mtp_limits_check_ids(c, a->model_dir, "--prompt-ids", a->prompt, a->n_prompt);
    }
    if (mtp_tokenizer_load(path, tok) ||
        mtp_limits_check_vocab(c, a->model_dir, mtp_tokenizer_vocab_size(*tok), path))
        return MTP_ERR;
    bool bos = mtp_tokenizer_bos_id(*tok) >= 0;
    return mtp_tokenizer_encode(*tok, a->text, strlen(a->text), bos, ids, n);
}

int mtp_cmd_generate(int argc, char **argv)
{
    struct generate_args a;
    int rc = generate_parse(argc, argv, &a);
    if (rc) {
        free(a.prompt); /* --prompt-ids may have been parsed before the bad option */
        return rc == 1 ? 0 : rc;
    }
    struct mtp_model *model = NULL;
    struct mtp_backend *be = NULL;
    struct mtp_engine *e = NULL;
    struct mtp_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int n = 0;
    int status = mtp_model_load(a.model_dir, &model);
    if (!status)
        status = generate_prompt(&a, model, &tok, &ids, &n);
    if (!status && n < 1)
        status = mtp_error_set("the prompt has no tokens");
    if (!status) /* refused, not truncated: positions past the limit are not the model's */
        status = mtp_limits_check_request(&model->cfg, a.model_dir, n, a.n_new,
                                          generate_drafts(&a));
    if (!status)
        status = mtp_backend_create(a.backend, a.threads, &be);
    struct mtp_engine_options opt = {
        .max_positions = mtp_decode_positions_needed(n, a.n_new, generate_drafts(&a)),
        .max_batch = 64};
    if (!status)
        status = mtp_engine_create(model, be, &opt, &e);
    if (!status)
        status = generate_decode(&a, e, tok, ids, n);
    if (status)
        rc = mtp_cli_fail();
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_tokenizer_free(tok);
    mtp_model_free(model);
    if (ids != a.prompt)
        free(ids);
    free(a.prompt);
    return rc;
}
