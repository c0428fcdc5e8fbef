/*
 * bench_threads.c - the overheads and threads sections of `mtpbench bench`
 * (bench_threads.h).
 *
 * Each section opens the extra engines it needs on the already loaded model
 * (its own backend each: one CPU context per engine), primes them at the same
 * context as the cost curve, and times its cases with mtp_bench_interleave.
 */
#include "bench_threads.h"

#include <stdio.h>  /* defines: printf, snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset */
#include <time.h>   /* defines: clock_gettime */

#include "bench_spinner.h"
#include "engine/engine.h"
#include "core/error.h"
#include "kernels/cpu/cpu_pool.h" /* defines: mtp_cpu_pool_create, mtp_cpu_pool_run */

enum {
    POOL_CALLS = 2000,      /* back-to-back parallel_for calls per "awake" sample */
    POOL_SLEEPY_CALLS = 100 /* calls, 100 us apart, per "asleep" sample */
};

/* An engine of its own on MODEL: THREADS CPU threads, LAYERS main layers (0 = all). */
struct side_engine {
    struct mtp_backend *be;
    struct mtp_engine *e;
    struct mtp_bench_ctx x;
    int ready;
};

static int side_open(const struct mtp_bench_setup *su, int threads, int layers,
                     struct side_engine *s)
{
    memset(s, 0, sizeof *s);
    struct mtp_engine_options opt = {.max_positions = su->context + MTP_BENCH_MAX_N + 8,
                                     .max_batch = su->context > 64 ? su->context : 64,
                                     .main_layers = layers};
    if (mtp_backend_create(su->backend, threads, &s->be) ||
        mtp_engine_create(su->model, s->be, &opt, &s->e))
        return MTP_ERR;
    s->ready = 1;
    return mtp_bench_ctx_init(&s->x, s->e, su->context);
}

static void side_close(struct side_engine *s)
{
    if (s->ready)
        mtp_bench_ctx_free(&s->x);
    mtp_engine_free(s->e);
    mtp_backend_free(s->be);
    memset(s, 0, sizeof *s);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void add_case(struct mtp_bench_section *s, const char *name, const char *kind,
                     int threads, int contended, int layers,
                     int (*run)(void *, const struct mtp_bench_case *, double *))
{
    struct mtp_bench_case *c = &s->cases[s->n_cases++];
    *c = (struct mtp_bench_case){.kind = kind, .n = 1, .threads = threads,
                                 .contended = contended, .layers = layers, .run = run};
    snprintf(c->name, sizeof c->name, "%s", name);
}

/* Figure NAME from a per-round function of the samples. */
static void add_figure(struct mtp_bench_section *s, const char *name, const char *unit,
                       double (*f)(const double *round, const void *arg), const void *arg)
{
    MTP_CHECK(s->n_fig < MTP_BENCH_MAX_FIGURES);
    int R = s->res.rounds, n = s->res.n_cases;
    double *v = mtp_xmalloc(sizeof *v * (size_t)R);
    for (int r = 0; r < R; r++)
        v[r] = f(s->res.ns + (size_t)r * n, arg);
    struct mtp_bench_figure *g = &s->fig[s->n_fig++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->unit = unit;
    g->s = mtp_bench_stats_of(v, R, 1);
    free(v);
}

static struct mtp_bench_stats case_ns(const struct mtp_bench_section *s, int i)
{
    return mtp_bench_stats_of(s->res.ns + i, s->res.rounds, s->res.n_cases);
}

/* "median / mean [p10, p90]" of nanoseconds, in ms. */
static void print_ms(const char *label, struct mtp_bench_stats st, const char *tail)
{
    printf("  %-34s %8.3f / %8.3f ms [%.3f, %.3f]%s\n", label, st.median * 1e-6, st.mean * 1e-6,
           st.p10 * 1e-6, st.p90 * 1e-6, tail);
}

static void print_figure(const struct mtp_bench_figure *g, const char *label)
{
    double k = strcmp(g->unit, "ns") == 0 ? 1e-6 : 1.0;
    printf("  %-34s %8.3f / %8.3f%s [%.3f, %.3f]\n", label, g->s.median * k, g->s.mean * k,
           k == 1.0 ? "   " : " ms", g->s.p10 * k, g->s.p90 * k);
}

void mtp_bench_section_free(struct mtp_bench_section *s)
{
    free(s->cases);
    mtp_bench_result_free(&s->res);
    if (s->extra_free)
        s->extra_free(s->extra);
    memset(s, 0, sizeof *s);
}

/* ---- overheads --------------------------------------------------------- */

struct overhead_run {
    struct mtp_bench_ctx *x1, *xL; /* 1 main layer, all of them */
    struct mtp_cpu_pool *hot, *asleep;
};

static int run_layers(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct overhead_run *o = p;
    return mtp_bench_run_forward(c->layers == 1 ? o->x1 : o->xL, c, ns);
}

static void pool_nothing(void *arg, int item, int thread)
{
    (void)item;
    (void)thread;
    (void)arg;
}

/* Mean ns of one parallel_for of THREADS empty items on POOL: all overhead. */
static double time_pool(struct mtp_cpu_pool *pool, int threads, int calls)
{
    double t0 = now_ns();
    for (int i = 0; i < calls; i++)
        mtp_cpu_pool_run(pool, threads, pool_nothing, NULL);
    return (now_ns() - t0) / calls;
}

/* "awake": calls back to back, so the workers are still spinning from the
 * previous one (the case inside a forward). */
static int run_pool_awake(void *p, const struct mtp_bench_case *c, double *ns)
{
    *ns = time_pool(((struct overhead_run *)p)->hot, c->threads, POOL_CALLS);
    return MTP_OK;
}

/* "asleep": a pool that never spins, with a pause before every call so that
 * its workers are in the futex when it comes (the first op after a pause, or
 * a spin window too short): the call pays the wake-up. Only the calls are
 * timed. */
static int run_pool_asleep(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct mtp_cpu_pool *pool = ((struct overhead_run *)p)->asleep;
    double sum = 0;
    for (int i = 0; i < POOL_SLEEPY_CALLS; i++) {
        struct timespec gap = {0, 100000};
        nanosleep(&gap, NULL);
        sum += time_pool(pool, c->threads, 1);
    }
    *ns = sum / POOL_SLEEPY_CALLS;
    return MTP_OK;
}

struct layer_fit {
    int i1, iL, L;
};

static double fit_slope(const double *round, const void *arg)
{
    const struct layer_fit *f = arg;
    return (round[f->iL] - round[f->i1]) / (f->L - 1);
}

static double fit_intercept(const double *round, const void *arg)
{
    return round[((const struct layer_fit *)arg)->i1] - fit_slope(round, arg);
}

static double fit_share(const double *round, const void *arg)
{
    return fit_intercept(round, arg) / round[((const struct layer_fit *)arg)->iL];
}

int mtp_bench_overheads(const struct mtp_bench_setup *su, struct mtp_bench_section *out)
{
    memset(out, 0, sizeof *out);
    out->name = "overheads";
    int L = su->model->cfg.num_hidden_layers, N = su->threads, cpu = strcmp(su->backend, "cpu") == 0;
    struct side_engine one;
    struct overhead_run o = {.xL = su->main};
    int rc = L > 1 ? side_open(su, N, 1, &one) : MTP_OK;
    o.x1 = L > 1 ? &one.x : su->main;
    if (cpu) {
        o.hot = mtp_cpu_pool_create(N, -1);
        o.asleep = mtp_cpu_pool_create(N, 0);
        mtp_cpu_pool_set_backoff(o.hot, 0);
        mtp_cpu_pool_set_backoff(o.asleep, 0);
    }
    out->cases = mtp_xcalloc(4, sizeof *out->cases);
    char name[MTP_BENCH_NAME_CAP];
    snprintf(name, sizeof name, "decode/layers=%d", L);
    add_case(out, name, "layers", N, 0, L, run_layers);
    if (L > 1)
        add_case(out, "decode/layers=1", "layers", N, 0, 1, run_layers);
    if (cpu && N > 1) {
        snprintf(name, sizeof name, "pool/threads=%d/awake", N);
        add_case(out, name, "pool", N, 0, 0, run_pool_awake);
        snprintf(name, sizeof name, "pool/threads=%d/asleep", N);
        add_case(out, name, "pool", N, 0, 0, run_pool_asleep);
    }
    if (!rc)
        rc = mtp_bench_interleave(out->cases, out->n_cases, 0, su->warmup, su->repeats,
                                  su->inner, &o, &out->res);
    if (!rc) {
        printf("per-forward overhead (decode at position %d; median / mean [p10, p90]):\n",
               su->context);
        print_ms(out->cases[0].name, case_ns(out, 0), "");
        if (L > 1) {
            struct layer_fit f = {.i1 = 1, .iL = 0, .L = L};
            print_ms("decode/layers=1", case_ns(out, 1), "");
            add_figure(out, "fixed_ns", "ns", fit_intercept, &f);
            add_figure(out, "per_layer_ns", "ns", fit_slope, &f);
            add_figure(out, "fixed_share", "ratio", fit_share, &f);
            print_figure(&out->fig[0], "fixed cost per forward (intercept)");
            print_figure(&out->fig[1], "cost per main layer (slope)");
            print_figure(&out->fig[2], "fixed share of a decode");
            if (su->model->cfg.first_k_dense_replace >= 1 && su->model->cfg.first_k_dense_replace < L)
                printf("  (layer 0 is dense and the others MoE: the slope is a later layer's "
                       "cost, the intercept has the dense layer's difference in it)\n");
        }
        for (int i = 0; i < out->n_cases; i++)
            if (strcmp(out->cases[i].kind, "pool") == 0) {
                struct mtp_bench_stats st = case_ns(out, i);
                printf("  %-34s %8.2f / %8.2f us [%.2f, %.2f] per parallel_for of %d empty "
                       "items\n", out->cases[i].name, st.median * 1e-3, st.mean * 1e-3,
                       st.p10 * 1e-3, st.p90 * 1e-3, N);
            }
    }
    mtp_cpu_pool_free(o.hot);
    mtp_cpu_pool_free(o.asleep);
    if (L > 1)
        side_close(&one);
    return rc;
}

/* ---- threads, quiet and contended ----------------------------------------- */

struct threads_run {
    struct mtp_bench_ctx *x1, *xN;
    struct mtp_bench_spinner *sp;
};

static int run_threads(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct threads_run *t = p;
    if (c->contended)
        mtp_bench_spinner_resume(t->sp);
    int rc = mtp_bench_run_forward(c->threads == 1 ? t->x1 : t->xN, c, ns);
    if (c->contended)
        mtp_bench_spinner_pause(t->sp);
    return rc;
}

/* Case order: 0 quiet/1, 1 quiet/N, 2 contended/1, 3 contended/N. */
struct ratio_of {
    int num, den;
};

static double ratio_fn(const double *round, const void *arg)
{
    const struct ratio_of *r = arg;
    return round[r->num] / round[r->den];
}

int mtp_bench_threads(const struct mtp_bench_setup *su, struct mtp_bench_section *out)
{
    memset(out, 0, sizeof *out);
    out->name = "threads";
    int N = su->threads;
    struct mtp_bench_spinner sp = {0};
    struct side_engine one = {0};
    struct threads_run t = {.xN = su->main, .x1 = su->main, .sp = &sp};
    int rc = N > 1 ? side_open(su, 1, 0, &one) : MTP_OK;
    if (N > 1)
        t.x1 = &one.x;
    if (!rc)
        rc = mtp_bench_spinner_start(&sp);
    out->cases = mtp_xcalloc(4, sizeof *out->cases);
    char name[MTP_BENCH_NAME_CAP];
    for (int k = 0; k < 4; k++) {
        int threads = k % 2 ? N : 1, contended = k / 2;
        snprintf(name, sizeof name, "decode/threads=%d/%s", threads,
                 contended ? "contended" : "quiet");
        add_case(out, name, "threads", threads, contended, 0, run_threads);
    }
    if (!rc)
        rc = mtp_bench_interleave(out->cases, out->n_cases, 0, su->warmup, su->repeats,
                                  su->inner, &t, &out->res);
    pid_t pid = sp.pid;
    mtp_bench_spinner_stop(&sp);
    if (!rc) {
        printf("threads: decode at 1 and %d threads, quiet and with a CPU-bound process (pid %d, "
               "now ended) pinned to CPU %d (median / mean [p10, p90]):\n", N, (int)pid, sp.cpu);
        for (int k = 0; k < 4; k++) {
            struct mtp_bench_stats st = case_ns(out, k);
            char tail[64];
            snprintf(tail, sizeof tail, "  -> %.1f tokens/s", 1e9 / st.median);
            print_ms(out->cases[k].name, st, tail);
        }
        static const char *const names[] = {"contended_speed_N_over_1", "quiet_speed_N_over_1",
                                            "threads_1_contended_slowdown",
                                            "threads_N_contended_slowdown"};
        static const char *const labels[] = {
            "contended: speed at N / at 1 thread", "quiet: speed at N / at 1 thread",
            "1 thread: time contended / quiet", "N threads: time contended / quiet"};
        /* Speeds are inverse times: N over 1 is time(1) / time(N). */
        static const struct ratio_of speed[] = {{2, 3}, {0, 1}, {2, 0}, {3, 1}};
        for (int k = 0; k < 4; k++) {
            add_figure(out, names[k], "ratio", ratio_fn, &speed[k]);
            print_figure(&out->fig[k], labels[k]);
        }
        printf("  (target: contended speed at N / at 1 thread >= 0.9)\n");
    }
    if (N > 1)
        side_close(&one);
    return rc;
}
