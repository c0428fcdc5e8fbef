/*
 * test_report.c - the report (analysis/report.h) on small synthetic logs
 * written with the log writer, against numbers computed by hand:
 *   - tau, alpha_j, beta_j, accept_rate, tokens/s, speedup (ratio of sums and
 *     per-prompt median), experts ratio and nearest-rank latency percentiles;
 *   - bootstrap intervals: recomputed here from the documented procedure
 *     (own index draw, own ratio of sums, own nearest-rank interval), and the
 *     closed form of identical prompts (a zero-width interval);
 *   - merging logs of two runs (baseline pairing stays inside a run; the same
 *     log twice counts once);
 *   - a log cut inside its last record (warning naming file and offset,
 *     earlier records kept);
 *   - every output format parses: CSV rows have the header's field count,
 *     JSON loads with jansson and holds the numbers, Markdown and LaTeX tables
 *     are well-formed; the acceptance and ablation views.
 *
 *   ctest --test-dir build -R report
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>  /* defines: json_loads */
#include <math.h>     /* defines: isnan, fabs */
#include <stdio.h>    /* defines: open_memstream, tmpfile */
#include <stdlib.h>   /* defines: mkdtemp, free, qsort */
#include <string.h>   /* defines: strstr, strchr */
#include <sys/stat.h> /* defines: stat */
#include <unistd.h>   /* defines: truncate, unlink, rmdir */

#include "analysis/report.h"
#include "analysis/report_internal.h" /* defines: mtp_report_wpercentiles */
#include "core/error.h"
#include "engine/rng.h"
#include "experiments/log.h"

static char tmp_dir[64];

/* ---- writing synthetic logs ------------------------------------------------ */

enum { MAX_STEPS = 16, N_LAYERS = 2 };

/* One request of a synthetic log. Steps get verify_ns from VERIFY (or 100 (s+1)). */
struct req_def {
    const char *decoder;
    int depth;
    enum mtp_spec_drafting drafting;
    int sampling_index;
    double temperature;
    const char *category;
    const char *prompt_id;
    int n_steps;
    int32_t accepted[MAX_STEPS];
    int n_output;
    uint64_t ttft_ns, decode_ns;
    uint64_t verify[MAX_STEPS];
    int experts; /* value of every experts_touched cell; 0: nil */
};

/* draft_vocab of the requests write_req writes (0: full vocabulary). */
static int g_draft_vocab;

static void write_req(struct mtp_log_writer *w, const struct req_def *d)
{
    int32_t out[64], experts[MAX_STEPS * N_LAYERS];
    uint64_t draft[MAX_STEPS], verify[MAX_STEPS], accept[MAX_STEPS], update[MAX_STEPS];
    for (int i = 0; i < d->n_output; i++)
        out[i] = 3 + i;
    for (int s = 0; s < d->n_steps; s++) {
        draft[s] = 10 * (uint64_t)(s + 1);
        verify[s] = d->verify[s] ? d->verify[s] : 100 * (uint64_t)(s + 1);
        accept[s] = 5;
        update[s] = 3;
        for (int l = 0; l < N_LAYERS; l++)
            experts[s * N_LAYERS + l] = d->experts;
    }
    struct mtp_request_record r = {
        .decoder = (char *)d->decoder,
        .mode = d->depth ? MTP_SPEC_DECODER_MTP : MTP_SPEC_DECODER_BASELINE,
        .depth = d->depth,
        .drafting = d->drafting,
        .sampling_index = d->sampling_index,
        .temperature = d->temperature,
        .top_p = 1.0,
        .seed = 1,
        .dataset = "ds",
        .category = (char *)(d->category ? d->category : "code"),
        .prompt_id = (char *)d->prompt_id,
        .prompt_tokens = 4,
        .n_output = d->n_output,
        .output_tokens = out,
        .n_steps = d->n_steps,
        .accepted = (int32_t *)d->accepted,
        .draft_ns = draft,
        .verify_ns = verify,
        .accept_ns = accept,
        .update_ns = update,
        .ttft_ns = d->ttft_ns,
        .total_ns = d->ttft_ns + d->decode_ns,
        .n_moe_layers = d->experts ? N_LAYERS : 0,
        .experts_touched = d->experts ? experts : NULL,
        .stop_reason = MTP_LOG_STOP_MAX_TOKENS,
        .time_unix_ns = 1700000000000000000ll,
        .draft_vocab = g_draft_vocab,
    };
    assert_int_equal(mtp_log_write_request(w, &r), MTP_OK);
}

/* A log at tmp_dir/NAME holding DEFS; START distinguishes runs. */
static void write_log(char *path, size_t cap, const char *name, int64_t start,
                      const struct req_def *defs, int n, bool summary)
{
    snprintf(path, cap, "%s/%s", tmp_dir, name);
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info run = {
        .spec_json = "{\"name\":\"synthetic\"}",
        .model = {.dir = "m", .config_hash = "00", .num_layers = 2,
                  .num_nextn_predict_layers = 2, .vocab_size = 64, .params = 1},
        .host = "testhost", .cpu = "cpu", .backend = "cpu", .threads = 1,
        .start_unix_ns = start,
    };
    assert_int_equal(mtp_log_write_run(w, &run), MTP_OK);
    for (int i = 0; i < n; i++)
        write_req(w, &defs[i]);
    if (summary) {
        struct mtp_log_summary s = {.wall_ns = 1, .finished = true, .end_unix_ns = start + 1};
        assert_int_equal(mtp_log_write_summary(w, &s), MTP_OK);
    }
    assert_int_equal(mtp_log_close(w), MTP_OK);
}

#define MS 1000000ull

/* The hand-computed log: baseline and mtp-exact-k2 on prompts p0, p1 (T = 0).
 *   mtp p0: a = 2,0,1  -> e = 3,1,2 (n_output 7), decode 3 ms, verify 100..300
 *   mtp p1: a = 1,2    -> e = 2,2 (second step cut by the limit; n_output 5),
 *           decode 2 ms, verify 400, 500
 *   tau = 10/5 = 2; alpha_1 = 4/5, alpha_2 = 2/4; beta_2 = 2/5;
 *   accept_rate = 6/(2*5) = 0.6; tokens/s = 10 / 5 ms = 2000
 *   baseline p0: 6 tokens in 6 ms; p1: 4 tokens in 6 ms -> 10 / 12 ms
 *   speedup = 2000 / (10/12e-3) = 2.4; per prompt 2.0 and 3.0 -> median
 *   (nearest rank, n = 2) 2.0
 *   experts: mtp 6 (p0) and 4 (p1) per cell -> (36 + 16) / 10 = 5.2;
 *   baseline 2 -> ratio 2.6
 *   verify p50/p90/p99 over 100..500: ranks 3, 5, 5 -> 300, 500, 500 ns */
static const struct req_def HAND[] = {
    {"baseline", 0, MTP_SPEC_DRAFTING_NONE, 0, 0.0, NULL, "p0", 6, {0}, 7, 1 * MS, 6 * MS,
     {0}, 2},
    {"baseline", 0, MTP_SPEC_DRAFTING_NONE, 0, 0.0, NULL, "p1", 4, {0}, 5, 2 * MS, 6 * MS,
     {0}, 2},
    {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, 0, 0.0, NULL, "p0", 3, {2, 0, 1}, 7, 1 * MS,
     3 * MS, {100, 200, 300}, 6},
    {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, 0, 0.0, NULL, "p1", 2, {1, 2}, 5, 3 * MS,
     2 * MS, {400, 500}, 4},
};
enum { N_HAND = sizeof HAND / sizeof HAND[0] };

static void load(struct mtp_report_data *d, const char *path, FILE *warn)
{
    assert_int_equal(mtp_report_data_load(d, path, warn), MTP_OK);
}

static const struct mtp_report_group *find_group(const struct mtp_report *r, const char *decoder)
{
    for (int i = 0; i < r->n_groups; i++)
        if (r->groups[i].decoder && strcmp(r->groups[i].decoder, decoder) == 0)
            return &r->groups[i];
    fail_msg("no group %s", decoder);
    return NULL;
}

static double metric(const struct mtp_report_group *g, int m) { return g->metrics[m].value; }

#define EPS 1e-12

/* cmocka 1.1 has no double comparison; this one prints both values. */
#define assert_double_equal(a, b, eps) assert_close((a), (b), (eps), #a, __FILE__, __LINE__)

static void assert_close(double got, double want, double eps, const char *what, const char *file,
                         int line)
{
    if (!(fabs(got - want) <= eps))
        fail_msg("%s:%d: %s = %.17g, expected %.17g (+- %g)", file, line, what, got, want, eps);
}

/* ---- hand-computed metrics -------------------------------------------------- */

static void test_metrics_by_hand(void **state)
{
    (void)state;
    char path[256];
    write_log(path, sizeof path, "hand.msgpack", 1000, HAND, N_HAND, true);
    struct mtp_report_data d = {0};
    load(&d, path, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 2);
    assert_string_equal(r.groups[0].decoder, "baseline"); /* baseline sorts first */
    const struct mtp_report_group *m = find_group(&r, "mtp-exact-k2");
    assert_int_equal(m->n_units, 2);
    assert_int_equal(m->k, 2);
    assert_double_equal(metric(m, MTP_REPORT_M_TAU), 2.0, EPS);
    assert_double_equal(metric(m, mtp_report_alpha_index(m, 1)), 0.8, EPS);
    assert_double_equal(metric(m, mtp_report_alpha_index(m, 2)), 0.5, EPS);
    assert_double_equal(metric(m, mtp_report_beta_index(m, 1)), 0.8, EPS);
    assert_double_equal(metric(m, mtp_report_beta_index(m, 2)), 0.4, EPS);
    assert_double_equal(metric(m, MTP_REPORT_M_ACCEPT_RATE), 0.6, EPS);
    assert_double_equal(metric(m, MTP_REPORT_M_TOKENS_PER_S), 2000.0, 1e-9);
    assert_double_equal(metric(m, MTP_REPORT_M_SPEEDUP), 2.4, 1e-12);
    assert_double_equal(metric(m, MTP_REPORT_M_SPEEDUP_MEDIAN), 2.0, 1e-12);
    assert_double_equal(metric(m, MTP_REPORT_M_EXPERTS), 5.2, EPS);
    assert_double_equal(metric(m, MTP_REPORT_M_EXPERTS_RATIO), 2.6, EPS);
    int v = MTP_REPORT_M_PHASE + MTP_REPORT_PHASE_VERIFY * MTP_REPORT_NPCT;
    assert_double_equal(metric(m, v + 0), 300, EPS);
    assert_double_equal(metric(m, v + 1), 500, EPS);
    assert_double_equal(metric(m, v + 2), 500, EPS);
    /* TTFT over the two requests 1 ms, 3 ms: p50 rank 1 -> 1 ms; TPOT 0.5 ms, 0.5 ms. */
    assert_double_equal(metric(m, MTP_REPORT_M_TTFT), 1e6, EPS);
    assert_double_equal(metric(m, MTP_REPORT_M_TTFT + 2), 3e6, EPS);
    assert_double_equal(metric(m, MTP_REPORT_M_TPOT), 0.5e6, EPS);
    const struct mtp_report_group *b = &r.groups[0];
    assert_double_equal(metric(b, MTP_REPORT_M_TAU), 1.0, EPS);
    assert_double_equal(metric(b, MTP_REPORT_M_SPEEDUP), 1.0, EPS);
    assert_double_equal(metric(b, MTP_REPORT_M_EXPERTS_RATIO), 1.0, EPS);
    assert_true(isnan(metric(b, MTP_REPORT_M_ACCEPT_RATE))); /* K = 0: undefined */
    assert_true(isnan(m->metrics[MTP_REPORT_M_TAU].lo));    /* no bootstrap */
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    unlink(path);
}

/* Weighted nearest-rank percentiles against the expanded multiset. */
static void test_weighted_percentiles(void **state)
{
    (void)state;
    struct mtp_report_wsample s[] = {{1, 0}, {2, 1}, {3, 2}, {4, 0}, {10, 1}};
    struct mtp_report_wset set = {5, s};
    const double p[3] = {0.5, 0.9, 0.99};
    double w1[3] = {1, 1, 1}, out[3];
    mtp_report_wpercentiles(&set, w1, p, 3, out);
    assert_double_equal(out[0], 3, 0); /* rank ceil(2.5) = 3 */
    assert_double_equal(out[1], 10, 0);
    /* Weights (0, 3, 1): multiset {2, 2, 2, 3, 10, 10, 10}: ranks 4, 7, 7. */
    double w2[3] = {0, 3, 1};
    mtp_report_wpercentiles(&set, w2, p, 3, out);
    assert_double_equal(out[0], 3, 0);
    assert_double_equal(out[1], 10, 0);
    /* Ten equal weights: nearest rank, no interpolation: p50 = 5th, p90 = 9th, p99 = 10th. */
    struct mtp_report_wsample t[10];
    double w3[10];
    for (int i = 0; i < 10; i++) {
        t[i] = (struct mtp_report_wsample){i + 1, i};
        w3[i] = 1;
    }
    struct mtp_report_wset set10 = {10, t};
    mtp_report_wpercentiles(&set10, w3, p, 3, out);
    assert_double_equal(out[0], 5, 0);
    assert_double_equal(out[1], 9, 0);
    assert_double_equal(out[2], 10, 0);
}

/* ---- bootstrap ------------------------------------------------------------------ */

/* Five prompts with different acceptance: (steps, accepted per step). */
static void bootstrap_log(char *path, size_t cap, const char *name, bool identical)
{
    struct req_def defs[5];
    for (int p = 0; p < 5; p++) {
        static char ids[5][16];
        snprintf(ids[p], sizeof ids[p], "p%d", p);
        struct req_def d = {"mtp-chain-k3", 3, MTP_SPEC_DRAFTING_CHAIN, 0, 0.0, NULL, ids[p],
                            2 + p, {0}, 0, 1 * MS, 1 * MS, {0}, 0};
        if (identical)
            d.n_steps = 4;
        int emitted = 0;
        for (int s = 0; s < d.n_steps; s++) {
            d.accepted[s] = identical ? s % 4 : (s * (p + 1)) % 4;
            emitted += d.accepted[s] + 1;
        }
        d.n_output = emitted + 1;
        defs[p] = d;
    }
    write_log(path, cap, name, 2000, defs, 5, true);
}

/* The documented index draw, written again: reject outputs below 2^32 mod n. */
static uint32_t ref_draw(struct mtp_rng *rng, uint32_t n)
{
    uint32_t limit = (uint32_t)((1ull << 32) % n), x;
    do
        x = mtp_rng_next_u32(rng);
    while (x < limit);
    return x % n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_bootstrap_reimplemented(void **state)
{
    (void)state;
    char path[256];
    bootstrap_log(path, sizeof path, "boot.msgpack", false);
    struct mtp_report_data d = {0};
    load(&d, path, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 200;
    opt.seed = 7;
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    const struct mtp_report_group *g = find_group(&r, "mtp-chain-k3");
    assert_int_equal(g->n_units, 5);
    /* Per-prompt sums, units in prompt_id order (p0..p4). */
    double steps[5], emitted[5];
    for (int p = 0; p < 5; p++) {
        steps[p] = 2 + p;
        emitted[p] = 0;
        for (int s = 0; s < 2 + p; s++)
            emitted[p] += (s * (p + 1)) % 4 + 1;
    }
    struct mtp_rng rng;
    mtp_rng_seed(&rng, 7, MTP_REPORT_BOOT_STREAM);
    double taus[200];
    for (int b = 0; b < 200; b++) {
        double cnt[5] = {0}, num = 0, den = 0;
        for (int i = 0; i < 5; i++)
            cnt[ref_draw(&rng, 5)] += 1;
        for (int p = 0; p < 5; p++) {
            num += cnt[p] * emitted[p];
            den += cnt[p] * steps[p];
        }
        taus[b] = num / den;
    }
    qsort(taus, 200, sizeof taus[0], cmp_double);
    /* Nearest rank in integers: ceil(0.025 * 200) = 5, ceil(0.975 * 200) = 195. */
    assert_double_equal(g->metrics[MTP_REPORT_M_TAU].lo, taus[4], EPS);
    assert_double_equal(g->metrics[MTP_REPORT_M_TAU].hi, taus[194], EPS);
    assert_true(g->metrics[MTP_REPORT_M_TAU].lo < g->metrics[MTP_REPORT_M_TAU].hi);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    unlink(path);
}

/* Identical prompts: every resample has the same ratio -> lo = value = hi. */
static void test_bootstrap_identical_prompts(void **state)
{
    (void)state;
    char path[256];
    bootstrap_log(path, sizeof path, "same.msgpack", true);
    struct mtp_report_data d = {0};
    load(&d, path, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    const struct mtp_report_group *g = find_group(&r, "mtp-chain-k3");
    assert_int_equal(g->n_samples, MTP_REPORT_DEFAULT_BOOTSTRAP);
    /* a = 0,1,2,3 on every prompt: tau = 10/4, alpha = 3/4, 2/3, 1/2. */
    const int ms[] = {MTP_REPORT_M_TAU, MTP_REPORT_M_ACCEPT_RATE, mtp_report_alpha_index(g, 1),
                      mtp_report_alpha_index(g, 3), mtp_report_beta_index(g, 2)};
    const double want[] = {2.5, 0.5, 0.75, 0.5, 0.5};
    for (int i = 0; i < 5; i++) {
        const struct mtp_report_stat *s = &g->metrics[ms[i]];
        assert_double_equal(s->value, want[i], EPS);
        assert_double_equal(s->lo, s->value, EPS);
        assert_double_equal(s->hi, s->value, EPS);
    }
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    unlink(path);
}

/* ---- merging, duplicates, truncation ---------------------------------------------- */

/* Log B: a second run with prompts p2, p3 of mtp-exact-k2 and no baseline. */
static const struct req_def RUN_B[] = {
    {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, 0, 0.0, NULL, "p2", 2, {2, 2}, 7, 1 * MS,
     6 * MS, {0}, 0},
    {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, 0, 0.0, NULL, "p3", 2, {0, 0}, 3, 1 * MS,
     1 * MS, {0}, 0},
};

static void test_merge_two_logs(void **state)
{
    (void)state;
    char a[256], b[256];
    write_log(a, sizeof a, "run_a.msgpack", 1000, HAND, N_HAND, true);
    write_log(b, sizeof b, "run_b.msgpack", 5000, RUN_B, 2, true);
    struct mtp_report_data d = {0};
    load(&d, a, NULL);
    load(&d, b, NULL);
    assert_int_equal(d.n_runs, 2);
    assert_int_equal(d.n_requests, N_HAND + 2);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    const struct mtp_report_group *m = find_group(&r, "mtp-exact-k2");
    assert_int_equal(m->n_units, 4);
    /* tau = (10 + 6 + 2) / (5 + 4); alpha_1 = (4 + 2) / 9. */
    assert_double_equal(metric(m, MTP_REPORT_M_TAU), 18.0 / 9.0, EPS);
    assert_double_equal(metric(m, mtp_report_alpha_index(m, 1)), 6.0 / 9.0, EPS);
    /* Run B has no baseline: the speedup stays run A's, never across runs. */
    assert_double_equal(metric(m, MTP_REPORT_M_SPEEDUP), 2.4, 1e-12);
    mtp_report_free(&r);
    /* --by run splits them again: run B's group has no speedup. */
    assert_int_equal(mtp_report_parse_by("decoder,run", &opt), MTP_OK);
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 3);
    assert_true(isnan(metric(&r.groups[2], MTP_REPORT_M_SPEEDUP)));
    assert_double_equal(metric(&r.groups[2], MTP_REPORT_M_TAU), 8.0 / 4.0, EPS);
    mtp_report_free(&r);
    /* The same log again: duplicates counted once, with a warning. */
    FILE *warn = tmpfile();
    load(&d, a, warn);
    assert_int_equal(d.n_requests, N_HAND + 2);
    assert_int_equal(d.n_duplicates, N_HAND);
    assert_true(ftell(warn) > 0);
    fclose(warn);
    mtp_report_data_free(&d);
    unlink(a);
    unlink(b);
}

/* Two runs that reuse one decoder name with different draft vocabularies:
 * different decoders, never one mixed group. */
static void test_draft_vocab_groups(void **state)
{
    (void)state;
    static const struct req_def full[] = {
        {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, 0, 0.0, NULL, "p2", 2, {2, 2}, 7, 1 * MS,
         6 * MS, {0}, 0},
    };
    static const struct req_def sub[] = {
        {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT, 0, 0.0, NULL, "p2", 2, {0, 0}, 3, 1 * MS,
         1 * MS, {0}, 0},
    };
    char a[256], b[256];
    write_log(a, sizeof a, "dv_a.msgpack", 1000, full, 1, true);
    g_draft_vocab = 1024;
    write_log(b, sizeof b, "dv_b.msgpack", 5000, sub, 1, true);
    g_draft_vocab = 0;
    struct mtp_report_data d = {0};
    load(&d, a, NULL);
    load(&d, b, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 2);
    for (int i = 0; i < r.n_groups; i++)
        assert_false(r.groups[i].mixed);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    unlink(a);
    unlink(b);
}

static char *slurp(FILE *f)
{
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static void test_truncated_log(void **state)
{
    (void)state;
    char path[256];
    write_log(path, sizeof path, "cut.msgpack", 1000, HAND, N_HAND, false);
    /* Offset of the last request record, then cut 7 bytes into it. */
    struct mtp_log_reader *rd;
    assert_int_equal(mtp_log_reader_open(path, &rd), MTP_OK);
    const msgpack_object *rec;
    uint64_t off = 0, last = 0;
    while (mtp_log_reader_next(rd, &rec, &off) == MTP_OK && rec)
        last = off;
    mtp_log_reader_close(rd);
    assert_int_equal(truncate(path, (off_t)last + 7), 0);
    FILE *warn = tmpfile();
    struct mtp_report_data d = {0};
    load(&d, path, warn);
    assert_int_equal(d.n_requests, N_HAND - 1);
    char *msg = slurp(warn);
    fclose(warn);
    char want[64];
    snprintf(want, sizeof want, "offset %llu", (unsigned long long)last);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, want));
    free(msg);
    /* The kept records still make a report (mtp p1 is gone: tau = 6/3). */
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 50;
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_double_equal(metric(find_group(&r, "mtp-exact-k2"), MTP_REPORT_M_TAU), 2.0, EPS);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    unlink(path);
}

/* ---- output formats and views ----------------------------------------------------- */

/* Two categories, two temperatures, exact K = 1, 2 and chain K = 1..3, baseline. */
static int study_defs(struct req_def *defs)
{
    static const struct {
        const char *name;
        int k;
        enum mtp_spec_drafting dr;
    } dec[] = {{"baseline", 0, MTP_SPEC_DRAFTING_NONE},   {"mtp-exact-k1", 1, MTP_SPEC_DRAFTING_EXACT},
               {"mtp-exact-k2", 2, MTP_SPEC_DRAFTING_EXACT}, {"mtp-chain-k1", 1, MTP_SPEC_DRAFTING_CHAIN},
               {"mtp-chain-k2", 2, MTP_SPEC_DRAFTING_CHAIN}, {"mtp-chain-k3", 3, MTP_SPEC_DRAFTING_CHAIN}};
    static const char *const cats[] = {"code", "prose"}, *const ids[] = {"c0", "c1", "p0", "p1"};
    int n = 0;
    for (int di = 0; di < 6; di++)
        for (int t = 0; t < 2; t++)
            for (int q = 0; q < 4; q++) {
                struct req_def d = {dec[di].name, dec[di].k, dec[di].dr, t, t ? 1.0 : 0.0,
                                    cats[q / 2], ids[q], 3, {0}, 0, 1 * MS, 0, {0}, 3};
                int emitted = 0;
                for (int s = 0; s < 3; s++) {
                    d.accepted[s] = dec[di].k ? (s + q + t + di) % (dec[di].k + 1) : 0;
                    emitted += d.accepted[s] + 1;
                }
                d.n_output = emitted + 1;
                d.decode_ns = (uint64_t)(3 + di) * MS;
                defs[n++] = d;
            }
    return n;
}

static char *render(const struct mtp_report_table *t, enum mtp_report_format fmt,
                    const struct mtp_report_meta *meta)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(mtp_report_write(f, t, fmt, meta), MTP_OK);
    fclose(f);
    return buf;
}

/* Every CSV line has as many fields as the header (no quoted commas here). */
static void check_csv(const char *csv, int rows)
{
    int want = -1, lines = 0;
    for (const char *line = csv; *line; lines++) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        int fields = 1;
        for (const char *c = line; c < end; c++)
            fields += *c == ',';
        if (want < 0)
            want = fields;
        assert_int_equal(fields, want);
        line = end + 1;
    }
    assert_int_equal(lines, rows + 1);
}

/* Markdown: each table's lines have the same number of '|'; TeX: balanced. */
static void check_md(const char *md, int rows)
{
    int bars = -1, table_lines = 0;
    for (const char *line = md; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        if (*line == '|') {
            int n = 0;
            for (const char *c = line; c < end; c++)
                n += *c == '|';
            if (bars < 0)
                bars = n;
            assert_int_equal(n, bars);
            table_lines++;
        } else {
            if (bars >= 0)
                assert_int_equal(table_lines, rows + 2); /* header, rule, rows */
            bars = -1;
            table_lines = 0;
        }
        line = end + 1;
    }
}

static void check_tex(const char *tex)
{
    int begins = 0, ends = 0;
    for (const char *p = tex; (p = strstr(p, "\\begin{tabular}")); p++)
        begins++;
    for (const char *p = tex; (p = strstr(p, "\\end{tabular}")); p++)
        ends++;
    assert_true(begins > 0);
    assert_int_equal(begins, ends);
}

static json_t *check_json(const char *text, int rows)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root)
        fail_msg("JSON does not parse: %s (line %d)", err.text, err.line);
    assert_string_equal(json_string_value(json_object_get(root, "schema")), MTP_REPORT_SCHEMA);
    assert_int_equal(json_array_size(json_object_get(root, "rows")), rows);
    return root;
}

static void check_all_formats(const struct mtp_report_table *t, const struct mtp_report_meta *m)
{
    char *s = render(t, MTP_REPORT_FORMAT_CSV, m);
    check_csv(s, t->n_rows);
    free(s);
    s = render(t, MTP_REPORT_FORMAT_MD, m);
    check_md(s, t->n_rows);
    free(s);
    s = render(t, MTP_REPORT_FORMAT_TEX, m);
    check_tex(s);
    free(s);
    s = render(t, MTP_REPORT_FORMAT_JSON, m);
    json_decref(check_json(s, t->n_rows));
    free(s);
}

static void test_formats_parse(void **state)
{
    (void)state;
    struct req_def defs[64];
    int n = study_defs(defs);
    char path[256];
    write_log(path, sizeof path, "study.msgpack", 1000, defs, n, true);
    struct mtp_report_data d = {0};
    load(&d, path, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 100;
    assert_int_equal(mtp_report_parse_by("decoder,category,temperature", &opt), MTP_OK);
    struct mtp_report r;
    assert_int_equal(mtp_report_build(&d, &opt, &r), MTP_OK);
    assert_int_equal(r.n_groups, 6 * 2 * 2);
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_full(&r, &t), MTP_OK);
    struct mtp_report_meta meta = {&d, &opt};
    check_all_formats(&t, &meta);
    /* JSON rows carry the groups' numbers. */
    char *s = render(&t, MTP_REPORT_FORMAT_JSON, &meta);
    json_t *root = check_json(s, r.n_groups);
    json_t *row = json_array_get(json_object_get(root, "rows"), 5);
    json_t *tau = json_object_get(json_object_get(row, "tau"), "value");
    assert_double_equal(json_real_value(tau), r.groups[5].metrics[MTP_REPORT_M_TAU].value, 1e-8);
    assert_true(json_is_null(json_object_get(json_object_get(json_array_get(
        json_object_get(root, "rows"), 0), "alpha_1"), "value"))); /* baseline: no alpha */
    json_decref(root);
    free(s);
    mtp_report_table_free(&t);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
    unlink(path);
}

/* The acceptance view: decoder x T rows, per-category tau/alpha_1 columns. */
static void test_acceptance_view(void **state)
{
    (void)state;
    struct req_def defs[64];
    int n = study_defs(defs);
    char path[256];
    write_log(path, sizeof path, "acc.msgpack", 1000, defs, n, true);
    struct mtp_report_data d = {0};
    load(&d, path, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 50;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_acceptance(&d, &opt, &t), MTP_OK);
    assert_int_equal(t.n_rows, 12);
    struct mtp_report_meta meta = {&d, &opt};
    check_all_formats(&t, &meta);
    char *s = render(&t, MTP_REPORT_FORMAT_JSON, &meta);
    json_t *root = check_json(s, 12);
    /* Row 2: mtp-exact-k1 at T = 0; code prompts c0, c1, steps a = (s + q + 1) % 2. */
    json_t *row = json_array_get(json_object_get(root, "rows"), 2);
    assert_string_equal(json_string_value(json_object_get(row, "decoder")), "mtp-exact-k1");
    double code_tau = json_real_value(json_object_get(json_object_get(row, "tau_code"), "value"));
    /* c0: a = 1,0,1; c1: a = 0,1,0 -> emitted 5 + 4 over 6 steps. */
    assert_double_equal(code_tau, 9.0 / 6.0, 1e-9);
    json_decref(root);
    free(s);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
    unlink(path);
}

/* The ablation view: rows T x K; exact K = 3 is missing; tau_diff is paired. */
static void test_ablation_view(void **state)
{
    (void)state;
    struct req_def defs[64];
    int n = study_defs(defs);
    char path[256];
    write_log(path, sizeof path, "abl.msgpack", 1000, defs, n, true);
    struct mtp_report_data d = {0};
    load(&d, path, NULL);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 100;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_ablation(&d, &opt, &t), MTP_OK);
    assert_int_equal(t.n_rows, 2 * 3);
    struct mtp_report_meta meta = {&d, &opt};
    check_all_formats(&t, &meta);
    char *s = render(&t, MTP_REPORT_FORMAT_JSON, &meta);
    json_t *root = check_json(s, 6);
    json_t *rows = json_object_get(root, "rows");
    for (int i = 0; i < 6; i++) {
        json_t *row = json_array_get(rows, (size_t)i);
        int k = (int)json_integer_value(json_object_get(row, "depth"));
        assert_int_equal(k, i % 3 + 1);
        json_t *e = json_object_get(row, "tau_exact"), *c = json_object_get(row, "tau_chain");
        json_t *diff = json_object_get(row, "tau_diff");
        if (k == 3) {
            assert_true(json_is_null(json_object_get(e, "value")));
            continue;
        }
        double de = json_real_value(json_object_get(e, "value"));
        double dc = json_real_value(json_object_get(c, "value"));
        assert_double_equal(json_real_value(json_object_get(diff, "value")), de - dc, 1e-9);
        assert_true(json_is_real(json_object_get(diff, "lo"))); /* same prompts: paired CI */
    }
    json_decref(root);
    free(s);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
    unlink(path);
}

static void test_parse_options(void **state)
{
    (void)state;
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    assert_int_equal(mtp_report_parse_by("category,decoder", &opt), MTP_OK);
    assert_int_equal(opt.n_by, 2);
    assert_int_equal(opt.by[0], MTP_REPORT_KEY_CATEGORY);
    assert_int_equal(mtp_report_parse_by("decoder,colour", &opt), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "colour"));
    assert_int_equal(mtp_report_parse_by("decoder,decoder", &opt), MTP_ERR);
    enum mtp_report_format f;
    assert_int_equal(mtp_report_format_parse("tex", &f), MTP_OK);
    assert_int_equal(f, MTP_REPORT_FORMAT_TEX);
    assert_int_equal(mtp_report_format_parse("xlsx", &f), MTP_ERR);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_report_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmp_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_weighted_percentiles),
        cmocka_unit_test(test_bootstrap_reimplemented),
        cmocka_unit_test(test_bootstrap_identical_prompts),
        cmocka_unit_test(test_merge_two_logs),
        cmocka_unit_test(test_draft_vocab_groups),
        cmocka_unit_test(test_truncated_log),
        cmocka_unit_test(test_formats_parse),
        cmocka_unit_test(test_acceptance_view),
        cmocka_unit_test(test_ablation_view),
        cmocka_unit_test(test_parse_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
