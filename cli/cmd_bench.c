/*
 * cmd_bench.c - `mtpbench bench`: the costs that decide whether MTP
 * speculative decoding pays off on this machine, measured in one process
 * (shared/DESIGN.md §12):
 *   - prefill tokens/s and decode tokens/s (one token per main forward);
 *   - the cost of a verification forward of n = 1..8 tokens relative to one
 *     decode (the whole bet of speculative decoding is that this stays near 1);
 *   - the cost of one MTP module forward (one draft) per depth, relative to
 *     one decode;
 *   - bytes and FLOPs per decoded token (analytic, from the weights a token
 *     touches and the latent cache it reads) against the measured memory
 *     bandwidth (STREAM-like triad) and FP32 peak (FMA loop): roofline fractions.
 *   - with --text DATASET, the routed experts a verification of n real tokens
 *     reads, against independent routing (bench_sharing.c).
 * Every figure is the median of --repeats timed runs after a warm-up run.
 *
 *   mtpbench bench --model DIR [--threads N] [--backend cpu] [--context 128] [--repeats 5]
 *                  [--text DATASET.jsonl] [--windows 32]
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: free, qsort */
#include <time.h>   /* defines: clock_gettime */

#include "analysis/roofline.h"
#include "bench_sharing.h"
#include "cli_util.h"
#include "commands.h"
#include "engine/engine.h"
#include "engine/error.h"
#include "engine/model.h"

enum { BENCH_MAX_VERIFY = 8 };

struct bench_args {
    const char *model_dir;
    const char *backend;
    int threads;
    int context;   /* P: prompt positions in the cache when decode/verify/draft are timed */
    int repeats;
    long stream_mib; /* triad footprint; 0 = 4 x LLC (at most 4 GiB) */
    const char *text; /* dataset for the expert-sharing walk, or NULL */
    int windows;      /* forwards per n in that walk */
};

struct bench {
    const struct bench_args *a;
    struct mtp_engine *e;
    const struct mtp_config *c;
    int32_t *tokens;  /* [P + BENCH_MAX_VERIFY] */
    float **hid;      /* [1 + D][P, d]: main hidden, then each module's */
    float *logits;    /* [BENCH_MAX_VERIFY, V] */
    float *hrow;      /* [d] */
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench bench --model DIR [--threads N] [--backend cpu|cuda]\n"
               "                      [--context P] [--repeats R] [--stream-mib M]\n"
               "                      [--text DATASET.jsonl] [--windows W]\n\n"
               "Prefill and decode throughput, verification cost for n = 1..8 tokens and draft\n"
               "cost per MTP module relative to one decode, and roofline fractions against the\n"
               "measured memory bandwidth and FP32 peak. Medians of R runs after a warm-up.\n"
               "--text: also the routed experts per MoE layer that a verification of n real\n"
               "tokens of DATASET reads (W forwards per n), against independent routing.\n");
}

static int bench_parse(int argc, char **argv, struct bench_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"threads", required_argument, 0, 't'},
        {"backend", required_argument, 0, 'b'}, {"context", required_argument, 0, 'c'},
        {"repeats", required_argument, 0, 'r'}, {"stream-mib", required_argument, 0, 's'},
        {"text", required_argument, 0, 'x'},    {"windows", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
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
        case 'w':
            if (mtp_cli_parse_int("--windows", optarg, 1, 4096, &v))
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
    return 0;
}

/* ---- analytic cost of one token ------------------------------------------ */

struct cost {
    double bytes; /* weight bytes read + latent cache bytes read */
    double flops; /* 2 per multiply-add */
};

static void add_weight(struct cost *k, const struct mtp_weight *w)
{
    if (!w->data || w->rows <= 0)
        return;
    double elems = (double)w->rows * w->cols;
    k->bytes += elems * (double)mtp_dtype_size(w->dtype);
    if (w->rows > 1)
        k->flops += 2 * elems;
}

static void add_ffn(struct cost *k, const struct mtp_ffn *f)
{
    add_weight(k, &f->gate);
    add_weight(k, &f->up);
    add_weight(k, &f->down);
}

/* One decoder block for one token attending to P positions: every attention
 * weight, the dense FFN or router + shared + top_k experts (an expert is read
 * whole; which ones does not matter for the count), the latent cache rows. */
static void add_block(struct cost *k, const struct mtp_config *c, const struct mtp_layer *l,
                      int P)
{
    const struct mtp_attention *at = &l->attn;
    const struct mtp_weight *ws[] = {&at->q_a, &at->q_b, &at->q, &at->kv_a, &at->kv_b, &at->o};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        add_weight(k, ws[i]);
    /* Absorbed attention over P cached rows of rkv + dr floats: scores and
     * values per head (kv_b is counted once above as the absorb matrices). */
    double H = c->num_attention_heads, rkv = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    k->flops += 2.0 * H * P * (rkv + dr) + 2.0 * H * P * rkv;
    k->bytes += (double)P * (rkv + dr) * sizeof(float);
    if (l->kind == MTP_LAYER_DENSE) {
        add_ffn(k, &l->dense);
        return;
    }
    add_weight(k, &l->moe.router);
    if (l->moe.has_shared)
        add_ffn(k, &l->moe.shared);
    for (int x = 0; x < c->num_experts_per_tok; x++)
        add_ffn(k, &l->moe.experts[0]);
}

static struct cost main_token_cost(const struct mtp_model *m, int P)
{
    struct cost k = {0, 0};
    for (int i = 0; i < m->cfg.num_hidden_layers; i++)
        add_block(&k, &m->cfg, &m->layers[i], P);
    add_weight(&k, &m->lm_head);
    return k;
}

static struct cost module_token_cost(const struct mtp_model *m, int module, int P)
{
    struct cost k = {0, 0};
    const struct mtp_layer *l = mtp_model_module(m, module);
    add_block(&k, &m->cfg, l, P);
    add_weight(&k, &l->nextn.eh_proj);
    add_weight(&k, l->nextn.head);
    return k;
}

/* ---- measurements -------------------------------------------------------- */

/* Median ns of a main forward of N tokens at position P (cache cut back to P after each). */
static int time_forward(struct bench *b, int n, double *out)
{
    int P = b->a->context, R = b->a->repeats;
    double t[64];
    for (int r = 0; r <= R; r++) {
        double t0 = now_ns();
        if (mtp_engine_forward(b->e, b->tokens + P, n, P, b->logits, NULL))
            return MTP_ERR;
        t[r] = now_ns() - t0;
        mtp_engine_truncate(b->e, 0, P);
    }
    *out = median(t + 1, R);
    return MTP_OK;
}

static int time_prefill(struct bench *b, double *out)
{
    int P = b->a->context, R = b->a->repeats;
    double t[64];
    for (int r = 0; r <= R; r++) {
        double t0 = now_ns();
        if (mtp_engine_prefill(b->e, b->tokens, P, b->logits, b->hid[0]))
            return MTP_ERR;
        t[r] = now_ns() - t0;
    }
    *out = median(t + 1, R);
    return MTP_OK;
}

/* Fill module k's cache over the context as exact drafting would: positions
 * 0..P-1-k with true tokens and module k-1's hidden. */
static int prime_modules(struct bench *b)
{
    int P = b->a->context, D = b->c->num_nextn_predict_layers;
    for (int k = 1; k <= D && P - k > 0; k++)
        if (mtp_engine_mtp_forward(b->e, k, b->tokens + k, b->hid[k - 1], P - k, 0, NULL,
                                   b->hid[k]))
            return MTP_ERR;
    return MTP_OK;
}

/* Median ns of one forward of module K at the next position (one draft). */
static int time_module(struct bench *b, int k, double *out)
{
    int R = b->a->repeats, pos = mtp_engine_cache_len(b->e, k);
    double t[64];
    for (int r = 0; r <= R; r++) {
        double t0 = now_ns();
        const float *in = b->hid[k - 1] + (size_t)pos * b->c->hidden_size;
        if (mtp_engine_mtp_forward(b->e, k, b->tokens + pos + k, in, 1, pos, b->logits,
                                   b->hrow))
            return MTP_ERR;
        t[r] = now_ns() - t0;
        mtp_engine_truncate(b->e, k, pos);
    }
    *out = median(t + 1, R);
    return MTP_OK;
}

static void print_machine(const struct bench_args *a, double *bw, double *peak)
{
    size_t llc = mtp_roofline_llc_bytes();
    size_t bytes = a->stream_mib > 0 ? (size_t)a->stream_mib << 20 : 4 * llc;
    if (bytes > ((size_t)4 << 30))
        bytes = (size_t)4 << 30;
    *bw = mtp_roofline_triad(a->threads, bytes, a->repeats);
    *peak = mtp_roofline_peak_flops(a->threads, a->repeats);
    printf("machine: triad bandwidth %.1f GB/s (%zu MiB buffers, LLC %zu MiB), "
           "FP32 FMA peak %.1f GFLOP/s\n",
           *bw * 1e-9, bytes >> 20, llc >> 20, *peak * 1e-9);
}

static void print_roofline(const char *what, struct cost k, double ns, double bw, double peak)
{
    double s = ns * 1e-9;
    printf("  %-22s %8.2f MB  %9.2f MFLOP  -> %6.1f GB/s (%5.1f%% of triad), "
           "%7.2f GFLOP/s (%5.2f%% of peak); bandwidth bound %.3f ms\n",
           what, k.bytes * 1e-6, k.flops * 1e-6, k.bytes / s * 1e-9, 100 * k.bytes / s / bw,
           k.flops / s * 1e-9, 100 * k.flops / s / peak, k.bytes / bw * 1e3);
}

static int bench_measure(struct bench *b, double bw, double peak)
{
    const struct mtp_model *m = mtp_engine_model(b->e);
    int P = b->a->context, D = b->c->num_nextn_predict_layers;
    double t_pre, t1, tn;
    if (time_prefill(b, &t_pre) || prime_modules(b) || time_forward(b, 1, &t1))
        return MTP_ERR;
    printf("prefill: %d tokens in %.3f ms -> %.1f tokens/s\n", P, t_pre * 1e-6, P / (t_pre * 1e-9));
    printf("decode:  %.3f ms per token at position %d -> %.1f tokens/s\n", t1 * 1e-6, P,
           1e9 / t1);
    printf("verify (main forward of n tokens at position %d), relative to one decode:\n", P);
    int n_moe = mtp_engine_num_moe_layers(b->e), touched[256];
    for (int n = 1; n <= BENCH_MAX_VERIFY; n++) {
        if (time_forward(b, n, &tn))
            return MTP_ERR;
        int layers = mtp_engine_last_experts_touched(b->e, touched, 256);
        double mean = 0;
        for (int l = 0; l < layers && l < 256; l++)
            mean += touched[l];
        printf("  n = %d: %8.3f ms  x%.2f  (%.2f ms per token; experts touched per MoE layer "
               "%.1f)\n", n, tn * 1e-6, tn / t1, tn * 1e-6 / n, n_moe ? mean / n_moe : 0.0);
    }
    printf("draft (one MTP module forward, one token), relative to one decode:\n");
    for (int k = 1; k <= D; k++) {
        if (time_module(b, k, &tn))
            return MTP_ERR;
        printf("  module %d: %8.3f ms  x%.3f\n", k, tn * 1e-6, tn / t1);
    }
    printf("roofline per token at context %d (analytic bytes and FLOPs):\n", P);
    print_roofline("decode (main model)", main_token_cost(m, P), t1, bw, peak);
    if (D >= 1 && time_module(b, 1, &tn) == MTP_OK)
        print_roofline("draft (module 1)", module_token_cost(m, 1, P), tn, bw, peak);
    return MTP_OK;
}

static int bench_run(const struct bench_args *a, struct mtp_engine *e)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    struct bench b = {.a = a, .e = e, .c = c};
    int D = c->num_nextn_predict_layers, P = a->context;
    b.tokens = mtp_xmalloc(sizeof(int32_t) * (size_t)(P + BENCH_MAX_VERIFY + D + 1));
    uint64_t x = 0x9e3779b97f4a7c15ull; /* fixed pseudo-random ids */
    for (int i = 0; i < P + BENCH_MAX_VERIFY + D + 1; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        b.tokens[i] = (int32_t)((x >> 33) % (uint64_t)c->vocab_size);
    }
    b.hid = mtp_xcalloc((size_t)D + 1, sizeof *b.hid);
    for (int k = 0; k <= D; k++)
        b.hid[k] = mtp_xmalloc(sizeof(float) * (size_t)P * c->hidden_size);
    b.logits = mtp_xmalloc(sizeof(float) * (size_t)BENCH_MAX_VERIFY * c->vocab_size);
    b.hrow = mtp_xmalloc(sizeof(float) * (size_t)c->hidden_size);
    double bw, peak;
    print_machine(a, &bw, &peak);
    int rc = bench_measure(&b, bw, peak);
    if (!rc && a->text)
        rc = mtp_bench_expert_sharing(e, a->model_dir, a->text, P, a->windows);
    for (int k = 0; k <= D; k++)
        free(b.hid[k]);
    free(b.hid);
    free(b.tokens);
    free(b.logits);
    free(b.hrow);
    return rc;
}

int mtp_cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    int rc = bench_parse(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
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
               "backend %s, threads %d, %d repeats (median)\n",
               a.model_dir, c->hidden_size, c->num_hidden_layers, c->num_nextn_predict_layers,
               c->n_routed_experts, c->num_experts_per_tok, c->vocab_size, a.backend, a.threads,
               a.repeats);
        status = bench_run(&a, e);
    }
    if (status)
        rc = mtp_cli_fail();
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(model);
    return rc;
}
