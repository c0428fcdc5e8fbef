/*
 * cmd_bench.c - `mtpbench bench`: the costs that decide whether MTP
 * speculative decoding pays off on this machine, measured in one process
 * (docs/design.md §12):
 *   - prefill tokens/s and decode tokens/s (one token per main forward);
 *   - the cost of a verification forward of n = 1..16 tokens relative to one
 *     decode (the whole bet of speculative decoding is that this stays near 1);
 *   - the cost of one MTP module forward (one draft) per module, and over
 *     n rows (a step's catch-up rows), relative to one decode;
 *   - the per-row cost of choosing a token and of the cache rollback (the
 *     accept and update overheads of the cost model);
 *   - bytes and FLOPs per decoded token (analytic, from the weights a token
 *     touches and the latent cache it reads) against the measured memory
 *     bandwidth (STREAM-like triad) and FP32 peak (FMA loop): roofline fractions.
 *   - the fixed cost of a forward and the cost per layer (the main model cut
 *     to one layer against the full model), and the thread pool's cost per
 *     parallel_for (bench_threads.h, "overheads");
 *   - with --contended, decode at 1 thread and at the bench's thread count,
 *     each quiet and with a CPU-bound competitor on one CPU, and the ratios
 *     (bench_threads.h, "threads");
 *   - with --ops, the time per op kind of a forward (bench_ops.h, "ops");
 *   - with --text DATASET, the routed experts a verification of n real tokens
 *     reads, against independent routing (bench_sharing.c).
 * The timed cases run interleaved (bench_timer.h: round r runs every case
 * once, the fastest of 3 back-to-back runs), after one warm-up round; each
 * figure is printed as median / mean over --repeats rounds with its spread
 * [p10, p90], and its ratio to the decode of the same round. --json FILE
 * writes the whole curve and the sections (bench_json.h), and with --batch
 * the batch curve, after every part has run, for `mtpbench report --table
 * cost-model --costs FILE` (and cost-batch with the batch curve).
 *
 *   mtpbench bench --model DIR [--threads N] [--backend cpu] [--context 128] [--repeats 5]
 *                  [--json FILE] [--text DATASET.jsonl] [--windows 32] [--contended]
 *                  [--ops]
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp, memcpy */
#include <time.h>   /* defines: clock_gettime */

#include "analysis/roofline.h"
#include "analysis/token_cost.h"
#include "bench/bench_batch.h"
#include "bench/bench_costs.h"
#include "bench/bench_json.h"
#include "bench/bench_ops.h"
#include "bench/bench_sharing.h"
#include "bench/bench_threads.h"
#include "bench/bench_timer.h"
#include "bench/bench_tree.h"
#include "cli_util.h"
#include "commands.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/model.h"

enum { BENCH_MAX_VERIFY = MTP_BENCH_MAX_N, BENCH_WARMUP_ROUNDS = 1, BENCH_INNER = 3 };

struct bench_args {
    const char *model_dir;
    const char *backend;
    int threads;
    int context;   /* P: prompt positions in the cache when decode/verify/draft are timed */
    int repeats;
    long stream_mib; /* triad footprint; 0 = 4 x LLC (at most 4 GiB) */
    const char *json; /* --json: the cost-curve file, or NULL */
    const char *text; /* dataset for the expert-sharing walk, or NULL */
    int windows;      /* forwards per n in that walk */
    int contended;    /* --contended: the threads section */
    int ops;          /* --ops: the per-op section (bench_ops.h) */
    int batch;        /* --batch: the batch cost curve (bench_batch.h), on the --text tokens */
    double load_start[3]; /* getloadavg before the model is loaded (the cost file records it) */
};

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench bench --model DIR [--threads N] [--backend cpu|cuda]\n"
               "                      [--context P] [--repeats R] [--stream-mib M]\n"
               "                      [--json FILE] [--text DATASET.jsonl] [--windows W]\n"
               "                      [--contended] [--ops] [--batch]\n\n"
               "Prefill and decode throughput, verification cost for n = 1..16 tokens, draft\n"
               "cost per MTP module (1..16 rows), choose and rollback overheads, relative to\n"
               "one decode, and roofline fractions against the measured memory bandwidth and\n"
               "FP32 peak; the fixed cost of a forward (the model cut to one layer) and the\n"
               "cost per layer; the thread pool's cost per parallel_for. The cases run\n"
               "interleaved, R rounds after a warm-up round: median / mean, spread [p10, p90],\n"
               "ratio to the same round's decode.\n"
               "--threads: default the CPUs this process may run on (taskset counts).\n"
               "--contended: also decode at 1 thread and at --threads, quiet and with a\n"
               "CPU-bound process (started and killed by bench) pinned to one CPU.\n"
               "--ops: also the time per op kind (matmuls by weight, attention, router,\n"
               "experts, norms, ...) of the main forward at n = 1, 2, 4, 8 and of one draft.\n"
               "--json: write the cost curve (every case, per-round ratios) to FILE, for\n"
               "`mtpbench report --table cost-model --costs FILE`.\n"
               "--text: also the routed experts per MoE layer that a verification of n real\n"
               "tokens of DATASET reads (W forwards per n), against independent routing.\n"
               "--batch: also the cost and experts touched of one forward over B = 1..32\n"
               "sequences of K+1 = 1..4 tokens of the --text DATASET each, the cost of each\n"
               "MTP module (up to 3) over the same rows, and the ratio of a forward of 8\n"
               "single-token sequences to 8 single decodes (needs --text); with --json, into\n"
               "the file's \"batch\" section, for `mtpbench report --table cost-batch`.\n");
}

static int bench_parse(int argc, char **argv, struct bench_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"threads", required_argument, 0, 't'},
        {"backend", required_argument, 0, 'b'}, {"context", required_argument, 0, 'c'},
        {"repeats", required_argument, 0, 'r'}, {"stream-mib", required_argument, 0, 's'},
        {"text", required_argument, 0, 'x'},    {"windows", required_argument, 0, 'w'},
        {"json", required_argument, 0, 'j'},    {"help", no_argument, 0, 'h'},
        {"contended", no_argument, 0, 'C'}, {"ops", no_argument, 0, 'O'},
        {"batch", no_argument, 0, 'B'},
        {0, 0, 0, 0},
    };
    *a = (struct bench_args){.backend = "cpu", .context = 128, .repeats = 5, .windows = 32};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model_dir = optarg; break;
        case 'b': a->backend = optarg; break;
        case 'x': a->text = optarg; break;
        case 'j': a->json = optarg; break;
        case 'C': a->contended = 1; break;
        case 'O': a->ops = 1; break;
        case 'B': a->batch = 1; break;
        case 'w':
            if (mtp_cli_parse_int("--windows", optarg, 2, 4096, &v))
                return 2;
            a->windows = (int)v;
            break;
        case 't':
        case 'c':
        case 'r':
        case 's':
            if (mtp_cli_parse_int(c == 't' ? "--threads" : c == 'c' ? "--context"
                                  : c == 'r' ? "--repeats" : "--stream-mib",
                                  optarg, c == 't' || c == 's' ? 0 : c == 'r' ? 1 : 2,
                                  c == 'r' ? 63 : c == 't' ? MTP_MAX_THREADS : 1 << 20, &v))
                return 2;
            if (c == 't') a->threads = (int)v;
            if (c == 'c') a->context = (int)v;
            if (c == 'r') a->repeats = (int)v;
            if (c == 's') a->stream_mib = v;
            break;
        case 'h': bench_usage(stdout); return 1;
        default: bench_usage(stderr); return 2;
        }
    }
    if (!a->model_dir) {
        fprintf(stderr, "mtpbench: error: bench needs --model\n");
        bench_usage(stderr);
        return 2;
    }
    if (a->batch && !a->text) {
        fprintf(stderr, "mtpbench: error: bench --batch needs --text DATASET.jsonl (the tokens "
                        "each sequence verifies)\n");
        return 2;
    }
    return 0;
}

/* ---- measurements -------------------------------------------------------- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Summary of R prefills of the context after one warm-up (prefill resets
 * the caches, so it cannot join the interleaved cases; it is not in the cost
 * model either). */
static int time_prefill(struct mtp_bench_ctx *x, int R, struct mtp_bench_stats *out)
{
    double t[64];
    for (int r = 0; r <= R; r++) {
        double t0 = now_ns();
        if (mtp_engine_prefill(x->e, x->tokens, x->P, x->logits, x->hid[0]))
            return MTP_ERR;
        t[r] = now_ns() - t0;
    }
    *out = mtp_bench_stats_of(t + 1, R, 1);
    return MTP_OK;
}

static void print_machine(const struct bench_args *a, double *bw, double *peak)
{
    size_t llc = mtp_roofline_llc_bytes();
    size_t bytes = a->stream_mib > 0 ? (size_t)a->stream_mib << 20 : 4 * llc;
    if (bytes > ((size_t)4 << 30))
        bytes = (size_t)4 << 30;
    int threads = mtp_backend_cpu_threads(a->threads);
    *bw = mtp_roofline_triad(threads, bytes, a->repeats);
    *peak = mtp_roofline_peak_flops(threads, a->repeats);
    printf("machine: triad bandwidth %.1f GB/s (%zu MiB buffers, LLC %zu MiB), "
           "FP32 FMA peak %.1f GFLOP/s\n",
           *bw * 1e-9, bytes >> 20, llc >> 20, *peak * 1e-9);
}

static void print_roofline(const char *what, struct mtp_token_cost c, double ns, double bw,
                           double peak)
{
    struct {
        double bytes, flops;
    } k = {c.weight_bytes + c.cache_bytes, c.flops};
    double s = ns * 1e-9;
    printf("  %-22s %8.2f MB  %9.2f MFLOP  -> %6.1f GB/s (%5.1f%% of triad), "
           "%7.2f GFLOP/s (%5.2f%% of peak); bandwidth bound %.3f ms\n",
           what, k.bytes * 1e-6, k.flops * 1e-6, k.bytes / s * 1e-9, 100 * k.bytes / s / bw,
           k.flops / s * 1e-9, 100 * k.flops / s / peak, k.bytes / bw * 1e3);
}

/* The summaries of case NAME: ns and ratio to the round's decode. */
static void case_stats(const struct mtp_bench_case *cases, const struct mtp_bench_result *res,
                       const char *name, struct mtp_bench_stats *ns, struct mtp_bench_stats *ratio)
{
    int i = mtp_bench_find(cases, res->n_cases, name);
    MTP_CHECK(i >= 0);
    *ns = mtp_bench_stats_of(res->ns + i, res->rounds, res->n_cases);
    *ratio = mtp_bench_stats_of(res->ratio + i, res->rounds, res->n_cases);
}

static void print_curve(const struct mtp_bench_ctx *x, const struct mtp_bench_case *cases,
                        const struct mtp_bench_result *res)
{
    struct mtp_bench_stats ns, r;
    int D = x->c->num_nextn_predict_layers, n_moe = mtp_engine_num_moe_layers(x->e);
    char name[MTP_BENCH_NAME_CAP];
    printf("verify (main forward of n tokens at position %d), relative to the same round's "
           "decode: median / mean [p10, p90]\n", x->P);
    for (int n = 1; n <= BENCH_MAX_VERIFY; n++) {
        snprintf(name, sizeof name, "verify/n=%d", n);
        case_stats(cases, res, name, &ns, &r);
        printf("  n = %2d: %8.3f / %8.3f ms  x%.2f / x%.2f [%.2f, %.2f]  (%.3f ms per token; "
               "experts touched per MoE layer %.1f)\n", n, ns.median * 1e-6, ns.mean * 1e-6,
               r.median, r.mean, r.p10, r.p90, ns.median * 1e-6 / n, n_moe ? x->experts[n] : 0.0);
    }
    printf("draft (one MTP module forward of one token; of n rows: a step's catch-up), "
           "relative to one decode:\n");
    for (int k = 1; k <= D; k++) {
        snprintf(name, sizeof name, "draft/module=%d/n=1", k);
        case_stats(cases, res, name, &ns, &r);
        printf("  module %d: %8.3f / %8.3f ms  x%.3f / x%.3f [%.3f, %.3f];", k, ns.median * 1e-6,
               ns.mean * 1e-6, r.median, r.mean, r.p10, r.p90);
        for (int n = 2; n <= BENCH_MAX_VERIFY; n *= 2) {
            snprintf(name, sizeof name, "draft/module=%d/n=%d", k, n);
            case_stats(cases, res, name, &ns, &r);
            printf(" n=%d x%.3f/%.3f", n, r.median, r.mean);
        }
        printf("\n");
    }
    for (int i = 0; i < MTP_BENCH_N_VOCABS; i++) {
        if (!x->dv[i])
            continue;
        printf("  draft vocabulary N = %d (spec/decoding.md):", mtp_bench_draft_vocabs[i]);
        for (int k = 1; k <= D; k++) {
            snprintf(name, sizeof name, "draft_vocab/module=%d/N=%d", k, mtp_bench_draft_vocabs[i]);
            case_stats(cases, res, name, &ns, &r);
            printf(" module %d x%.3f [%.3f, %.3f];", k, r.median, r.p10, r.p90);
        }
        printf("\n");
    }
    static const char *const overheads[] = {"choose/argmax", "choose/argmax_probs",
                                            "choose/sampled", "update"};
    printf("overheads per row (choose) and per step (update), relative to one decode "
           "(median / mean [p10, p90]):\n");
    for (size_t i = 0; i < sizeof overheads / sizeof overheads[0]; i++) {
        case_stats(cases, res, overheads[i], &ns, &r);
        printf("  %-20s %8.4f / %8.4f ms  x%.4f / x%.4f [%.4f, %.4f]\n", overheads[i],
               ns.median * 1e-6, ns.mean * 1e-6, r.median, r.mean, r.p10, r.p90);
    }
}

/* The cost curve: printed, its samples left in *CASES, *RES for the JSON. */
static int bench_curve(const struct bench_args *a, struct mtp_bench_ctx *x, double bw,
                       double peak, struct mtp_bench_case **cases, struct mtp_bench_result *res)
{
    const struct mtp_model *m = mtp_engine_model(x->e);
    int P = a->context, R = a->repeats;
    struct mtp_bench_stats pre;
    if (time_prefill(x, R, &pre) || mtp_bench_ctx_prime(x))
        return MTP_ERR;
    int n = mtp_bench_cost_cases(x, cases);
    if (mtp_bench_interleave(*cases, n, 0, BENCH_WARMUP_ROUNDS, R, BENCH_INNER, x, res))
        return MTP_ERR;
    struct mtp_bench_stats dec, r, mod;
    case_stats(*cases, res, "decode", &dec, &r);
    printf("prefill: %d tokens in %.3f / %.3f ms (median / mean; [%.3f, %.3f]) -> %.1f tokens/s\n",
           P, pre.median * 1e-6, pre.mean * 1e-6, pre.p10 * 1e-6, pre.p90 * 1e-6,
           P / (pre.median * 1e-9));
    printf("decode:  %.3f / %.3f ms per token (median / mean over %d rounds; [p10 %.3f, p90 "
           "%.3f]) at position %d -> %.1f tokens/s (mean %.1f)\n", dec.median * 1e-6,
           dec.mean * 1e-6, R, dec.p10 * 1e-6, dec.p90 * 1e-6, P, 1e9 / dec.median,
           1e9 / dec.mean);
    print_curve(x, *cases, res);
    printf("roofline per token at context %d (analytic bytes and FLOPs, median times):\n", P);
    print_roofline("decode (main model)", mtp_token_cost_main(m, P), dec.median, bw, peak);
    if (m->cfg.num_nextn_predict_layers >= 1) {
        case_stats(*cases, res, "draft/module=1/n=1", &mod, &r);
        int head_rows = mtp_model_module(m, 1)->nextn.head->rows;
        print_roofline("draft (module 1)", mtp_token_cost_module(m, 1, P, head_rows), mod.median,
                       bw, peak);
    }
    return MTP_OK;
}

/* What the JSON file holds, gathered until every part has run. */
struct bench_out {
    struct mtp_bench_case *cases;
    struct mtp_bench_result res;
    struct mtp_bench_section sec[3];
    int n_sec;
    struct mtp_bench_batch_curve batch; /* rounds 0: --batch not run */
};

static void bench_out_free(struct bench_out *o)
{
    for (int i = 0; i < o->n_sec; i++)
        mtp_bench_section_free(&o->sec[i]);
    mtp_bench_result_free(&o->res);
    mtp_bench_batch_free(&o->batch);
    free(o->cases);
}

static int bench_measure(const struct bench_args *a, struct mtp_bench_ctx *x,
                         struct mtp_model *model, double bw, double peak, struct bench_out *o)
{
    struct mtp_bench_setup su = {.model = model, .backend = a->backend,
                                 .threads = mtp_backend_cpu_threads(a->threads),
                                 .context = a->context, .repeats = a->repeats,
                                 .warmup = BENCH_WARMUP_ROUNDS, .inner = BENCH_INNER, .main = x};
    int rc = bench_curve(a, x, bw, peak, &o->cases, &o->res);
    if (!rc)
        rc = mtp_bench_overheads(&su, &o->sec[o->n_sec++]);
    if (!rc && a->contended)
        rc = mtp_bench_threads(&su, &o->sec[o->n_sec++]);
    if (!rc && a->ops)
        rc = mtp_bench_ops(&su, &o->sec[o->n_sec++]);
    return rc;
}

/* The cost file, after every part (the load average at its end is the bench's end). */
static int bench_write(const struct bench_args *a, const struct mtp_bench_ctx *x,
                       struct bench_out *o)
{
    struct mtp_bench_provenance pv = {.model_dir = a->model_dir, .backend = a->backend,
                                      .threads = mtp_backend_cpu_threads(a->threads),
                                      .context = a->context, .warmup = BENCH_WARMUP_ROUNDS,
                                      .inner = BENCH_INNER};
    memcpy(pv.load_start, a->load_start, sizeof pv.load_start);
    mtp_bench_load_average(pv.load_end);
    int rc = mtp_bench_write_json(a->json, &pv, x, o->cases, &o->res, o->sec, o->n_sec,
                                  o->batch.rounds ? mtp_bench_batch_json(&o->batch) : NULL);
    if (!rc)
        printf("cost curve: %s (%d threads; load average %.2f at the start, %.2f at the "
               "end%s)\n", a->json, pv.threads, pv.load_start[0], pv.load_end[0],
               o->batch.rounds ? "; with the batch curve" : "");
    return rc;
}

static int bench_run(const struct bench_args *a, struct mtp_engine *e, struct mtp_model *model,
                     struct mtp_backend *be)
{
    struct mtp_bench_ctx x = {0};
    struct bench_out o = {0};
    double bw, peak;
    print_machine(a, &bw, &peak);
    /* Prefill is timed on a context built like the cases' one. */
    int rc = mtp_bench_ctx_init(&x, e, a->context);
    if (!rc)
        rc = bench_measure(a, &x, model, bw, peak, &o);
    if (!rc) /* tree-shaped verification against chains (bench_tree.c) */
        rc = mtp_bench_tree(e, a->context, a->repeats);
    if (!rc && a->text)
        rc = mtp_bench_expert_sharing(e, a->model_dir, a->text, a->context, a->windows);
    if (!rc && a->batch)
        rc = mtp_bench_batch(model, be, a->model_dir, a->text, a->context, a->repeats,
                             &o.batch);
    if (!rc && a->json)
        rc = bench_write(a, &x, &o);
    bench_out_free(&o);
    mtp_bench_ctx_free(&x);
    return rc;
}

int mtp_cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    mtp_bench_load_average(a.load_start); /* before our own threads add to it */
    struct mtp_model *model = NULL;
    struct mtp_backend *be = NULL;
    struct mtp_engine *e = NULL;
    int status = mtp_model_load(a.model_dir, &model);
    if (!status)
        status = mtp_backend_create(a.backend, a.threads, &be);
    int walk = a.text ? BENCH_MAX_VERIFY * a.windows : 0;
    struct mtp_engine_options opt = {.max_positions = a.context + BENCH_MAX_VERIFY + 8 + walk,
                                     .max_batch = a.context > 64 ? a.context : 64};
    if (!status)
        status = mtp_engine_create(model, be, &opt, &e);
    if (!status) {
        const struct mtp_config *c = &model->cfg;
        printf("model: %s (d %d, %d layers + %d MTP modules, %d routed experts top-%d, V %d), "
               "backend %s, threads %d, %d interleaved rounds\n",
               a.model_dir, c->hidden_size, c->num_hidden_layers, c->num_nextn_predict_layers,
               c->n_routed_experts, c->num_experts_per_tok, c->vocab_size, a.backend,
               mtp_backend_cpu_threads(a.threads),
               a.repeats);
        status = bench_run(&a, e, model, be);
    }
    if (status)
        rc = mtp_cli_fail();
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(model);
    return rc;
}
