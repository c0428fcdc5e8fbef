/*
 * test_report_complete.c - a report says what its logs leave out (issue 26
 * part 1, issue 28 cases 8 and 9), from logs written here record by record:
 *   - the "plan" record survives a round trip, and a plan whose count
 *     disagrees with its lists is refused naming the key;
 *   - a run with fewer requests than planned is marked partial in md, csv,
 *     tex and json;
 *   - a request that ended at EOS before any decode step is left out of the
 *     metrics and the prompt count, and counted as never decoded;
 *   - skipped prompts are counted per group by reason, and a category whose
 *     every prompt was skipped still gets its row;
 *   - --strict turns every gap into an error; a missing rank log is an error
 *     unless a partial run is allowed;
 *   - rank logs of two specs that share a name are refused ("different spec");
 *   - a log without a plan record (older logs) reports its plan as unknown,
 *     or as what it holds when its summary says finished;
 *   - the adaptive decoder's drafting column says "adaptive", not "chain";
 *   - a plan of two batch sizes plans each decoder's requests once per B: a
 *     group of one B is planned that B's share, a group over both all of it.
 *
 *   ctest --test-dir build -R report_complete
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h> /* defines: json_loads */
#include <stdio.h>  /* defines: open_memstream */
#include <stdlib.h> /* defines: free, mkdtemp */
#include <string.h> /* defines: strstr */

#include "analysis/report.h"
#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_plan.h"

static char tmp[64];

/* One request to write: decoder 0 = baseline, 1 = "mtp-k2" (exact, K = 2). */
struct req {
    int decoder;
    const char *dataset, *category, *id;
    int steps; /* 0: ended at EOS in the prefill */
};

/* Batch sizes of the plans written (1: [1]; 2: [1, 2]), and the first
 * request written at B = 2 (-1: none). */
static int plan_batches = 1, batch2_from = -1;

static void fill(struct mtp_request_record *r, const struct req *q)
{
    static int32_t out[16], zero[16];
    static uint64_t ns[16];
    for (int i = 0; i < 16; i++) {
        out[i] = 5 + i;
        ns[i] = 1000;
    }
    memset(r, 0, sizeof *r);
    bool mtp = q->decoder == 1;
    r->decoder = mtp ? "mtp-k2" : "baseline";
    r->mode = mtp ? MTP_SPEC_DECODER_MTP : MTP_SPEC_DECODER_BASELINE;
    r->depth = mtp ? 2 : 0;
    r->drafting = mtp ? MTP_SPEC_DRAFTING_EXACT : MTP_SPEC_DRAFTING_NONE;
    r->top_p = 1;
    r->dataset = (char *)q->dataset;
    r->category = (char *)q->category;
    r->prompt_id = (char *)q->id;
    r->prompt_tokens = 3;
    r->n_output = q->steps + 1;
    r->output_tokens = out;
    r->n_steps = q->steps;
    r->accepted = zero;
    r->accepted_uncut = mtp ? zero : NULL;
    r->draft_ns = r->verify_ns = r->accept_ns = r->update_ns = ns;
    r->ttft_ns = 1000;
    r->total_ns = 1000 + 1000 * (uint64_t)q->steps;
    r->stop_reason = q->steps == 0 ? MTP_LOG_STOP_EOS : MTP_LOG_STOP_MAX_TOKENS;
    r->time_unix_ns = 1700000000000000000ll;
}

/* The plan of every log here: 2 decoders x 1 sampling x 3 prompts = 6
 * requests; rag/1 skipped by the position limit, rag/2 by max_prompt_tokens. */
static void make_plan(struct mtp_log_plan *p)
{
    memset(p, 0, sizeof *p);
    static char *decoders[2] = {"baseline", "mtp-k2"};
    static struct mtp_plan_sampling samp = {0, 1, 0};
    p->decoders = decoders;
    p->n_decoders = 2;
    p->sampling = &samp;
    p->n_sampling = 1;
    p->repeats = 1;
    p->requests = 6 * plan_batches;
    if (plan_batches == 2)
        mtp_log_plan_set_batch_sizes(p, (const int[]){1, 2}, 2);
    p->seed = 7;
    p->max_prompts_per_category = 3;
    mtp_log_plan_add_prompt(p, "d", "1", "code", 3, MTP_PLAN_RUN);
    mtp_log_plan_add_prompt(p, "d", "2", "code", 3, MTP_PLAN_RUN);
    mtp_log_plan_add_prompt(p, "d", "3", "prose", 3, MTP_PLAN_RUN);
    mtp_log_plan_add_prompt(p, "d", "4", "rag", 900, MTP_PLAN_SKIP_POSITIONS);
    mtp_log_plan_add_prompt(p, "d", "5", "rag", 300, MTP_PLAN_SKIP_PROMPT_TOKENS);
}

static void free_plan(struct mtp_log_plan *p)
{
    p->decoders = NULL; /* static */
    p->n_decoders = 0;
    p->sampling = NULL;
    p->n_sampling = 0;
    mtp_log_plan_free(p);
}

static const struct req FULL[6] = {
    {0, "d", "code", "1", 3}, {1, "d", "code", "1", 2},  {0, "d", "code", "2", 3},
    {1, "d", "code", "2", 2}, {0, "d", "prose", "3", 3}, {1, "d", "prose", "3", 2},
};

/* A log at tmp/NAME: a run record with SPEC, the plan (unless NO_PLAN),
 * requests Q[0..n) and, when FINISHED, a summary saying so. */
static void write_log(const char *name, const char *spec, bool no_plan, const struct req *q,
                      int n, bool finished)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info info = {.spec_json = spec, .model = {.dir = "m"}, .host = "h",
                                    .cpu = "c", .backend = "cpu", .threads = 1,
                                    .start_unix_ns = 1};
    assert_int_equal(mtp_log_write_run(w, &info), MTP_OK);
    if (!no_plan) {
        struct mtp_log_plan plan;
        make_plan(&plan);
        assert_int_equal(mtp_log_write_plan(w, &plan), MTP_OK);
        free_plan(&plan);
    }
    for (int i = 0; i < n; i++) {
        struct mtp_request_record rec;
        fill(&rec, &q[i]);
        rec.batch_size = batch2_from >= 0 && i >= batch2_from ? 2 : 1;
        if (mtp_log_write_request(w, &rec))
            fail_msg("%s", mtp_error_message());
    }
    struct mtp_log_summary sum = {.wall_ns = 1, .finished = finished, .end_unix_ns = 2};
    assert_int_equal(mtp_log_write_summary(w, &sum), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);
}

static void load(struct mtp_report_data *d, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (mtp_report_data_load(d, path, NULL))
        fail_msg("%s", mtp_error_message());
}

static const char SPEC[] = "{\"name\": \"x\"}";

/* The group of decoder DEC (and CATEGORY, when grouped by it) in R. */
static const struct mtp_report_group *group_of(const struct mtp_report *r, const char *dec,
                                               const char *category)
{
    for (int i = 0; i < r->n_groups; i++) {
        const struct mtp_report_group *g = &r->groups[i];
        if (strcmp(g->decoder, dec) == 0 &&
            (!category || (g->category && strcmp(g->category, category) == 0)))
            return g;
    }
    fail_msg("no group %s/%s", dec, category ? category : "-");
    return NULL;
}

static void build(const struct mtp_report_data *d, const char *by, struct mtp_report *r)
{
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 0;
    assert_int_equal(mtp_report_parse_by(by, &opt), MTP_OK);
    assert_int_equal(mtp_report_build(d, &opt, r), MTP_OK);
}

static void test_plan_round_trip(void **state)
{
    (void)state;
    write_log("plan.msgpack", SPEC, false, FULL, 6, true);
    char path[256];
    snprintf(path, sizeof path, "%s/plan.msgpack", tmp);
    struct mtp_log_reader *rd;
    assert_int_equal(mtp_log_reader_open(path, &rd), MTP_OK);
    const msgpack_object *o;
    char type[32];
    struct mtp_log_plan p = {0};
    bool seen = false;
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o)
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "plan") == 0) {
            if (mtp_log_plan_decode(o, &p))
                fail_msg("%s", mtp_error_message());
            seen = true;
        }
    mtp_log_reader_close(rd);
    assert_true(seen);
    assert_int_equal(p.requests, 6);
    assert_int_equal(p.n_decoders, 2);
    assert_string_equal(p.decoders[1], "mtp-k2");
    assert_int_equal(p.n_prompts, 5);
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_RUN), 3);
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_SKIP_POSITIONS), 1);
    assert_int_equal(mtp_log_plan_count(&p, MTP_PLAN_SKIP_PROMPT_TOKENS), 1);
    assert_int_equal(p.max_prompts_per_category, 3);
    assert_int_equal(p.seed, 7);
    mtp_log_plan_free(&p);

    /* A count that is not decoders x sampling x prompts x repeats is damage. */
    struct mtp_log_plan bad;
    make_plan(&bad);
    bad.requests = 7;
    /* Through a log, as a report reads it. */
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    snprintf(path, sizeof path, "%s/badplan.msgpack", tmp);
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info info = {.spec_json = SPEC, .model = {.dir = "m"}, .host = "h",
                                    .cpu = "c", .backend = "cpu", .threads = 1,
                                    .start_unix_ns = 1};
    assert_int_equal(mtp_log_write_run(w, &info), MTP_OK);
    assert_int_equal(mtp_log_write_plan(w, &bad), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);
    free_plan(&bad);
    struct mtp_report_data d = {0};
    assert_int_equal(mtp_report_data_load(&d, path, NULL), MTP_ERR);
    if (!strstr(mtp_error_message(), "'requests'") || !strstr(mtp_error_message(), "badplan"))
        fail_msg("message: %s", mtp_error_message());
    mtp_report_data_free(&d);
}

/* Render the full table of D in FMT into a new string. */
static char *render(const struct mtp_report_data *d, enum mtp_report_format fmt)
{
    struct mtp_report r;
    build(d, "decoder,temperature", &r);
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_full(&r, &t), MTP_OK);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    struct mtp_report_options opt = r.opt;
    struct mtp_report_meta meta = {d, &opt};
    assert_int_equal(mtp_report_write(f, &t, fmt, &meta), MTP_OK);
    fclose(f);
    mtp_report_table_free(&t);
    mtp_report_free(&r);
    return buf;
}

static void test_partial_marked_in_every_format(void **state)
{
    (void)state;
    write_log("partial.msgpack", SPEC, false, FULL, 4, false); /* prose/3 missing */
    struct mtp_report_data d = {0};
    load(&d, "partial.msgpack");
    struct mtp_report_gaps g;
    mtp_report_gaps(&d, 0, &g);
    assert_int_equal(g.present, 4);
    assert_int_equal(g.planned, 6);
    assert_false(mtp_report_gaps_complete(&g));
    mtp_report_gaps_free(&g);
    static const char *const expect[4] = {
        [MTP_REPORT_FORMAT_MD] = "**partial**",
        [MTP_REPORT_FORMAT_CSV] = ",partial,2,3,",
        [MTP_REPORT_FORMAT_TEX] = "% left out: run x@",
        [MTP_REPORT_FORMAT_JSON] = "\"partial\"",
    };
    for (int fmt = 0; fmt < 4; fmt++) {
        char *out = render(&d, (enum mtp_report_format)fmt);
        if (!strstr(out, expect[fmt]) || !strstr(out, "partial"))
            fail_msg("format %d lacks '%s':\n%s", fmt, expect[fmt], out);
        if (fmt == MTP_REPORT_FORMAT_JSON) { /* the whole report and its run say it */
            json_t *root = json_loads(out, 0, NULL);
            assert_non_null(root);
            assert_true(json_is_false(json_object_get(root, "complete")));
            json_t *run = json_array_get(json_object_get(root, "runs"), 0);
            assert_true(json_is_false(json_object_get(run, "complete")));
            assert_int_equal(json_integer_value(json_object_get(run, "planned")), 6);
            json_decref(root);
        }
        free(out);
    }
    mtp_report_data_free(&d);
    /* The same log with every request: no mark. */
    write_log("whole.msgpack", SPEC, false, FULL, 6, true);
    memset(&d, 0, sizeof d);
    load(&d, "whole.msgpack");
    char *out = render(&d, MTP_REPORT_FORMAT_JSON);
    assert_non_null(strstr(out, "\"complete\": true"));
    free(out);
    mtp_report_data_free(&d);
}

static void test_never_decoded_left_out(void **state)
{
    (void)state;
    struct req q[6];
    memcpy(q, FULL, sizeof q);
    q[5].steps = 0; /* mtp-k2 on prose/3 ended at EOS in the prefill */
    write_log("eos.msgpack", SPEC, false, q, 6, true);
    struct mtp_report_data d = {0};
    load(&d, "eos.msgpack");
    struct mtp_report r;
    build(&d, "decoder", &r);
    const struct mtp_report_group *m = group_of(&r, "mtp-k2", NULL);
    assert_int_equal(m->n_units, 2);        /* not 3: that prompt has no decode step */
    assert_int_equal(m->n_not_decoded, 1);
    assert_int_equal(m->present, 3);
    assert_int_equal(m->planned, 3);
    assert_int_equal(group_of(&r, "baseline", NULL)->n_units, 3);
    mtp_report_free(&r);
    struct mtp_report_gaps g;
    mtp_report_gaps(&d, 0, &g);
    assert_int_equal(g.not_decoded, 1);
    mtp_report_gaps_free(&g);
    mtp_report_data_free(&d);
}

static void test_skips_per_group(void **state)
{
    (void)state;
    write_log("skips.msgpack", SPEC, false, FULL, 6, true);
    struct mtp_report_data d = {0};
    load(&d, "skips.msgpack");
    struct mtp_report r;
    build(&d, "decoder,category", &r);
    const struct mtp_report_group *rag = group_of(&r, "mtp-k2", "rag");
    assert_int_equal(rag->n_requests, 0);
    assert_int_equal(rag->planned, 0);
    assert_int_equal(rag->skipped[MTP_PLAN_SKIP_POSITIONS], 1);
    assert_int_equal(rag->skipped[MTP_PLAN_SKIP_PROMPT_TOKENS], 1);
    const struct mtp_report_group *code = group_of(&r, "baseline", "code");
    assert_int_equal(code->planned, 2);
    assert_int_equal(code->skipped[MTP_PLAN_SKIP_POSITIONS], 0);
    mtp_report_free(&r);
    build(&d, "decoder", &r); /* one group per decoder: both skips, each prompt once */
    assert_int_equal(group_of(&r, "baseline", NULL)->skipped[MTP_PLAN_SKIP_POSITIONS], 1);
    assert_int_equal(group_of(&r, "baseline", NULL)->planned, 3);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
}

static void test_strict(void **state)
{
    (void)state;
    write_log("strict-whole.msgpack", SPEC, false, FULL, 6, true);
    write_log("strict-part.msgpack", SPEC, false, FULL, 4, false);
    struct mtp_report_data d = {0};
    load(&d, "strict-whole.msgpack"); /* complete, but two prompts skipped */
    assert_int_equal(mtp_report_check_complete(&d, false, false), MTP_OK);
    assert_int_equal(mtp_report_check_complete(&d, true, false), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "skipped (position_limit)"));
    char *text = NULL; /* the line every format prints names the skips by category */
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    mtp_report_gaps_print(f, &d, "");
    fclose(f);
    if (!strstr(text, "1 prompts skipped (position_limit: rag 1); 1 prompts skipped "
                      "(max_prompt_tokens: rag 1)"))
        fail_msg("gaps line: %s", text);
    free(text);
    mtp_report_data_free(&d);
    memset(&d, 0, sizeof d);
    load(&d, "strict-part.msgpack");
    assert_int_equal(mtp_report_check_complete(&d, false, false), MTP_OK); /* marked only */
    assert_int_equal(mtp_report_check_complete(&d, true, true), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "4 of 6 planned requests"));
    mtp_report_data_free(&d);
}

static void test_missing_rank_log(void **state)
{
    (void)state;
    write_log("x.rank-0-of-2.msgpack", SPEC, false, FULL, 3, true);
    write_log("x.rank-1-of-2.msgpack", SPEC, false, FULL + 3, 3, true);
    struct mtp_report_data d = {0};
    load(&d, "x.rank-0-of-2.msgpack");
    assert_int_equal(mtp_report_check_complete(&d, false, false), MTP_ERR);
    if (!strstr(mtp_error_message(), "x.rank-1-of-2.msgpack is missing") ||
        !strstr(mtp_error_message(), "--allow-partial"))
        fail_msg("message: %s", mtp_error_message());
    assert_int_equal(mtp_report_check_complete(&d, false, true), MTP_OK);
    struct mtp_report r;
    build(&d, "decoder", &r);
    assert_int_equal(group_of(&r, "baseline", NULL)->missing_ranks, 1);
    mtp_report_free(&r);
    load(&d, "x.rank-1-of-2.msgpack"); /* both: one run, nothing missing */
    assert_int_equal(d.n_runs, 1);
    assert_int_equal(mtp_report_check_complete(&d, false, false), MTP_OK);
    struct mtp_report_gaps g;
    mtp_report_gaps(&d, 0, &g);
    assert_true(mtp_report_gaps_complete(&g));
    mtp_report_gaps_free(&g);
    mtp_report_data_free(&d);
}

static void test_two_specs_one_name(void **state)
{
    (void)state;
    write_log("y.rank-0-of-2.msgpack", "{\"name\": \"y\", \"seed\": 1}", false, FULL, 3, false);
    write_log("y.rank-1-of-2.msgpack", "{\"name\": \"y\", \"seed\": 2}", false, FULL + 3, 3,
              false);
    struct mtp_report_data d = {0};
    load(&d, "y.rank-0-of-2.msgpack");
    char path[256];
    snprintf(path, sizeof path, "%s/y.rank-1-of-2.msgpack", tmp);
    assert_int_equal(mtp_report_data_load(&d, path, NULL), MTP_ERR);
    if (!strstr(mtp_error_message(), "different spec") || !strstr(mtp_error_message(), path))
        fail_msg("message: %s", mtp_error_message());
    mtp_report_data_free(&d);
}

static void test_old_log_unknown(void **state)
{
    (void)state;
    write_log("old.msgpack", SPEC, true, FULL, 4, false);
    struct mtp_report_data d = {0};
    load(&d, "old.msgpack");
    struct mtp_report_gaps g;
    mtp_report_gaps(&d, 0, &g);
    assert_int_equal(g.planned, -1);
    assert_int_equal(g.skipped[MTP_PLAN_SKIP_POSITIONS], -1);
    mtp_report_gaps_free(&g);
    char *out = render(&d, MTP_REPORT_FORMAT_CSV);
    assert_non_null(strstr(out, ",unknown,2,unknown,0,unknown,unknown,0"));
    free(out);
    mtp_report_data_free(&d);
    /* Finished: what it holds is what was planned (skips stay unknown). */
    write_log("oldfin.msgpack", SPEC, true, FULL, 6, true);
    memset(&d, 0, sizeof d);
    load(&d, "oldfin.msgpack");
    mtp_report_gaps(&d, 0, &g);
    assert_int_equal(g.planned, 6);
    assert_true(mtp_report_gaps_complete(&g));
    mtp_report_gaps_free(&g);
    mtp_report_data_free(&d);
}

/* An adaptive decoder drafts by chaining, but every table calls it "adaptive"
 * (the cost model and the plots do). */
static void test_adaptive_label(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/adaptive.msgpack", tmp);
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info info = {.spec_json = SPEC, .model = {.dir = "m"}, .host = "h",
                                    .cpu = "c", .backend = "cpu", .threads = 1,
                                    .start_unix_ns = 1};
    assert_int_equal(mtp_log_write_run(w, &info), MTP_OK);
    struct mtp_request_record rec;
    fill(&rec, &FULL[1]);
    static int32_t drafted[16] = {1, 2};
    rec.decoder = "adapt";
    rec.mode = MTP_SPEC_DECODER_ADAPTIVE;
    rec.drafting = MTP_SPEC_DRAFTING_CHAIN;
    rec.drafted = drafted;
    rec.adaptive_rule = "cumulative";
    rec.adaptive_threshold = 0.3;
    if (mtp_log_write_request(w, &rec))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(mtp_log_close(w), MTP_OK);
    struct mtp_report_data d = {0};
    load(&d, "adaptive.msgpack");
    struct mtp_report_options ro;
    mtp_report_options_default(&ro);
    ro.bootstrap = 0;
    struct mtp_report_table t;
    assert_int_equal(mtp_report_table_acceptance(&d, &ro, &t), MTP_OK);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_int_equal(mtp_report_write(f, &t, MTP_REPORT_FORMAT_CSV, NULL), MTP_OK);
    fclose(f);
    if (!strstr(buf, "\nadapt,2,adaptive,"))
        fail_msg("no adaptive row:\n%s", buf);
    free(buf);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/mtp_complete_XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* The group of DEC at batch size B in R (grouped by batch). */
static const struct mtp_report_group *group_at(const struct mtp_report *r, const char *dec, int b)
{
    for (int i = 0; i < r->n_groups; i++)
        if (strcmp(r->groups[i].decoder, dec) == 0 && r->groups[i].batch_size == b)
            return &r->groups[i];
    fail_msg("no group %s at B = %d", dec, b);
    return NULL;
}

static void test_two_batch_sizes(void **state)
{
    (void)state;
    /* Every prompt at B = 1; at B = 2 prose/3 is missing (both decoders). */
    struct req q[10];
    for (int i = 0; i < 6; i++)
        q[i] = FULL[i];
    for (int i = 0; i < 4; i++)
        q[6 + i] = FULL[i];
    plan_batches = 2;
    batch2_from = 6;
    write_log("batch.msgpack", SPEC, false, q, 10, false);
    plan_batches = 1;
    batch2_from = -1;
    struct mtp_report_data d = {0};
    load(&d, "batch.msgpack");
    struct mtp_report_gaps g;
    mtp_report_gaps(&d, 0, &g);
    assert_int_equal(g.present, 10);
    assert_int_equal(g.planned, 12);
    mtp_report_gaps_free(&g);
    /* By batch: each B is planned its own 3 prompts per decoder. */
    struct mtp_report r;
    build(&d, "decoder,temperature,batch", &r);
    assert_int_equal(r.n_groups, 4);
    for (int k = 0; k < 2; k++) {
        const char *dec = k ? "mtp-k2" : "baseline";
        assert_int_equal(group_at(&r, dec, 1)->planned, 3);
        assert_int_equal(group_at(&r, dec, 1)->present, 3);
        assert_int_equal(group_at(&r, dec, 2)->planned, 3);
        assert_int_equal(group_at(&r, dec, 2)->present, 2);
    }
    mtp_report_free(&r);
    /* Over both batch sizes: 6 planned per decoder, 5 present. */
    build(&d, "decoder,temperature", &r);
    assert_int_equal(r.n_groups, 2);
    assert_int_equal(group_of(&r, "baseline", NULL)->planned, 6);
    assert_int_equal(group_of(&r, "baseline", NULL)->present, 5);
    mtp_report_free(&r);
    mtp_report_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_round_trip),
        cmocka_unit_test(test_partial_marked_in_every_format),
        cmocka_unit_test(test_never_decoded_left_out),
        cmocka_unit_test(test_skips_per_group),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_missing_rank_log),
        cmocka_unit_test(test_two_specs_one_name),
        cmocka_unit_test(test_old_log_unknown),
        cmocka_unit_test(test_adaptive_label),
        cmocka_unit_test(test_two_batch_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
