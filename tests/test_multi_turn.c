/*
 * test_multi_turn.c - multi-turn conversations on the shipped models
 * (issue 29; docs/design.md §5 invariant (a) carried across turns).
 *
 * For the first two-turn prompt of every category in datasets/two-turn.jsonl,
 * on models/mtp-mini and models/mtp-v3, template "none":
 *   1. greedy: every speculative decoder (exact K = D, chain K = 3, an exact
 *      tree of widths 2, 1) emits the baseline's tokens in turn 1 and in
 *      turn 2, where turn 2 is built from each decoder's own answer and
 *      continues the session (mtp_decode_continue), which must keep the
 *      previous turn's rows;
 *   2. exactness of the kept state: on an engine whose prefill uses the
 *      batch-invariant kernels, turn 2 continued on the session gives the
 *      same tokens and the same accepted drafts per step as a fresh session
 *      prefilling turn 2's whole prompt; a stale or missing main or module
 *      cache row would change one or the other.
 * Rolled-back rows are poisoned with NaN on the first engine.
 * 3. A run of two-turn prompts stopped after a first turn (max_requests) and
 *    resumed logs every turn once, with the tokens of an uninterrupted run,
 *    under greedy and sampled decoding (a resumed conversation is decoded
 *    again from its first turn, whose record is not written twice).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"
#include "experiments/log.h"
#include "experiments/runner.h"
#include "core/error.h"
#include "experiments/conversation.h"
#include "experiments/dataset.h"
#include "tests/support/shipped_model.h"

enum { MAX_NEW = 32, N_CONFIGS = 4 }; /* baseline, exact K = D, chain K = 3, a tree */

struct model_state {
    struct test_shipped s;
    struct mtp_engine *invariant; /* same model and backend, invariant prefill */
};

static int model_setup(void **state)
{
    struct model_state *m = *state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", MTP_SOURCE_DIR, m->s.name);
    if (test_shipped_open(&m->s, dir))
        return -1;
    struct mtp_engine_options opt = {.max_positions = 1024, .max_batch = 64,
                                     .invariant_prefill = true};
    return mtp_engine_create(m->s.model, m->s.be, &opt, &m->invariant) ? -1 : 0;
}

static int model_teardown(void **state)
{
    struct model_state *m = *state;
    mtp_engine_free(m->invariant);
    test_shipped_close(&m->s);
    return 0;
}

static struct mtp_decode_params params(const struct mtp_model *m, int config)
{
    int D = m->cfg.num_nextn_predict_layers;
    struct mtp_decode_params p = {
        .drafting = config == 0   ? MTP_DECODE_DRAFTING_NONE
                    : config == 2 ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT,
        .depth = config == 0 ? 0 : config == 1 ? D : 3,
        .chain_module = 1,
        .sampling = {.temperature = 0.0f, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = m->cfg.eos_token_id,
    };
    if (config == 3) { /* exact tree drafting, widths 2, 1 */
        const int widths[] = {2, 1};
        assert_int_equal(mtp_tree_from_widths(widths, 2, &p.tree), MTP_OK);
    }
    return p;
}

static void run_to_end(struct mtp_decode *d)
{
    bool done = false;
    while (!done)
        assert_int_equal(mtp_decode_step(d, &done), MTP_OK);
}

/* What one turn produced (copies). */
struct turn_out {
    int32_t *ids, *tokens, *accepted;
    int n_ids, n_tokens, n_steps, cached;
};

static void keep_result(const struct mtp_decode *d, struct turn_out *o)
{
    const struct mtp_decode_result *r = mtp_decode_result(d);
    o->n_tokens = r->n_output;
    o->n_steps = r->n_steps;
    o->tokens = malloc((size_t)r->n_output * sizeof *o->tokens);
    o->accepted = malloc((size_t)(r->n_steps + 1) * sizeof *o->accepted);
    memcpy(o->tokens, r->output, (size_t)r->n_output * sizeof *o->tokens);
    memcpy(o->accepted, r->accepted, (size_t)r->n_steps * sizeof *o->accepted);
}

static void free_out(struct turn_out *o)
{
    free(o->ids);
    free(o->tokens);
    free(o->accepted);
}

/* Both turns of P under CONFIG on engine E: OUT[0], OUT[1]. */
static void converse(struct model_state *m, struct mtp_engine *e, const struct mtp_prompt *p,
                     int config, struct turn_out out[2])
{
    static const struct mtp_chat_template none = {.none = true, .name = "none"};
    struct mtp_decode_params dp = params(m->s.model, config);
    struct mtp_decode *d;
    assert_int_equal(mtp_decode_create(e, &dp, &d), MTP_OK);
    assert_int_equal(mtp_conversation_ids(&none, m->s.tok, p, 0, NULL, &out[0].ids,
                                          &out[0].n_ids), MTP_OK);
    assert_int_equal(mtp_decode_prefill(d, out[0].ids, out[0].n_ids), MTP_OK);
    run_to_end(d);
    keep_result(d, &out[0]);
    struct mtp_turn_answer answer = {
        out[0].tokens,
        mtp_conversation_answer_len(out[0].tokens, out[0].n_tokens, dp.eos_token_id)};
    assert_int_equal(mtp_conversation_ids(&none, m->s.tok, p, 1, &answer, &out[1].ids,
                                          &out[1].n_ids), MTP_OK);
    /* turn 2 starts with turn 1's prompt and answer, token for token */
    assert_true(out[1].n_ids > out[0].n_ids + answer.n);
    assert_memory_equal(out[1].ids, out[0].ids, (size_t)out[0].n_ids * sizeof(int32_t));
    assert_int_equal(mtp_decode_continue(d, out[1].ids, out[1].n_ids, &out[1].cached), MTP_OK);
    assert_int_equal(out[1].cached, out[0].n_ids + out[0].n_tokens - 1);
    run_to_end(d);
    keep_result(d, &out[1]);
    mtp_decode_free(d);
}

static void assert_same_tokens(const struct turn_out *a, const struct turn_out *b,
                               const char *what)
{
    if (a->n_tokens != b->n_tokens ||
        memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof *a->tokens) != 0)
        fail_msg("%s: tokens differ", what);
}

static long check_prompt(struct model_state *m, const struct mtp_prompt *p)
{
    struct turn_out base[2] = {{0}}, out[2] = {{0}};
    long accepted = 0;
    converse(m, m->s.engine, p, 0, base);
    for (int c = 1; c < N_CONFIGS; c++) {
        converse(m, m->s.engine, p, c, out);
        char what[128];
        for (int t = 0; t < 2; t++) {
            snprintf(what, sizeof what, "%s prompt %s config %d turn %d", m->s.name, p->id, c,
                     t + 1);
            assert_same_tokens(&base[t], &out[t], what);
            assert_int_equal(out[t].n_ids, base[t].n_ids);
            for (int s = 0; s < out[t].n_steps; s++)
                accepted += out[t].accepted[s];
        }
        free_out(&out[0]);
        free_out(&out[1]);
    }
    free_out(&base[0]);
    free_out(&base[1]);
    return accepted;
}

/* Turn 2 continued vs turn 2 prefilled fresh, on the invariant engine. */
static void check_kept_state(struct model_state *m, const struct mtp_prompt *p)
{
    for (int c = 0; c < N_CONFIGS; c++) {
        struct turn_out conv[2] = {{0}}, fresh = {0};
        converse(m, m->invariant, p, c, conv);
        struct mtp_decode_params dp = params(m->s.model, c);
        struct mtp_decode *d;
        assert_int_equal(mtp_decode_create(m->invariant, &dp, &d), MTP_OK);
        assert_int_equal(mtp_decode_prefill(d, conv[1].ids, conv[1].n_ids), MTP_OK);
        run_to_end(d);
        keep_result(d, &fresh);
        mtp_decode_free(d);
        char what[128];
        snprintf(what, sizeof what, "%s prompt %s config %d: continued vs fresh", m->s.name,
                 p->id, c);
        assert_same_tokens(&fresh, &conv[1], what);
        assert_int_equal(fresh.n_steps, conv[1].n_steps);
        assert_memory_equal(fresh.accepted, conv[1].accepted,
                            (size_t)fresh.n_steps * sizeof *fresh.accepted);
        free_out(&conv[0]);
        free_out(&conv[1]);
        free_out(&fresh);
    }
}

static void test_two_turns(void **state)
{
    struct model_state *m = *state;
    struct mtp_dataset ds;
    if (mtp_dataset_load(MTP_SOURCE_DIR "/datasets/two-turn.jsonl", 0, &ds))
        fail_msg("%s", mtp_error_message());
    long accepted = 0;
    const char *last = "";
    for (int i = 0; i < ds.n_prompts; i++) {
        const struct mtp_prompt *p = &ds.prompts[i];
        assert_int_equal(p->n_turns, 2);
        if (strcmp(p->category, last) == 0)
            continue; /* the first prompt of each category */
        last = p->category;
        accepted += check_prompt(m, p);
        check_kept_state(m, p);
    }
    mtp_dataset_free(&ds);
    print_message("%s: drafts accepted over both turns: %ld\n", m->s.name, accepted);
    assert_true(accepted > 0);
}

/* "decoder|sampling|prompt|repeat|turn" -> output tokens, over a log. */
struct logged {
    char key[128];
    int32_t out[64];
    int n;
};

static int read_requests(const char *path, struct logged *v, int cap)
{
    struct mtp_log_reader *rd;
    assert_int_equal(mtp_log_reader_open(path, &rd), MTP_OK);
    const msgpack_object *o;
    char type[32];
    int n = 0;
    while (mtp_log_reader_next(rd, &o, NULL) == MTP_OK && o) {
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "request") != 0)
            continue;
        struct mtp_request_record r;
        assert_int_equal(mtp_log_decode_request(o, &r), MTP_OK);
        assert_true(n < cap && r.n_output <= 64);
        snprintf(v[n].key, sizeof v[n].key, "%s|%d|%s|%d|%d", r.decoder, r.sampling_index,
                 r.prompt_id, r.repeat, r.turn);
        for (int i = 0; i < n; i++)
            if (strcmp(v[i].key, v[n].key) == 0)
                fail_msg("%s: request %s logged twice", path, v[n].key);
        memcpy(v[n].out, r.output_tokens, (size_t)r.n_output * sizeof *r.output_tokens);
        v[n].n = r.n_output;
        n++;
        mtp_log_request_free(&r);
    }
    mtp_log_reader_close(rd);
    return n;
}

static int run(const char *spec, const char *out, bool resume, int max_requests)
{
    FILE *devnull = fopen("/dev/null", "w");
    struct mtp_runner_options o = {.resume = resume, .quiet = true, .out_dir = out,
                                   .max_requests = max_requests, .out = devnull};
    int rc = mtp_runner_run(spec, &o);
    fclose(devnull);
    if (rc)
        fail_msg("%s", mtp_error_message());
    return rc;
}

static void test_resume_mid_conversation(void **state)
{
    (void)state;
    char dir[] = "/tmp/mtp-turns-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char spec[256], full[256], cut[256], text[1024];
    snprintf(spec, sizeof spec, "%s/tt.json", dir);
    snprintf(text, sizeof text,
             "{\"model\": \"%s/models/mtp-mini\", \"threads\": 1, \"datasets\": "
             "[\"%s/datasets/two-turn.jsonl\"], \"max_prompts\": 2, \"max_new_tokens\": 8, "
             "\"seed\": 3, \"sampling\": [{\"temperature\": 0}, {\"temperature\": 1}], "
             "\"decoders\": [{\"type\": \"baseline\"}, {\"type\": \"mtp\", \"depth\": 2, "
             "\"drafting\": \"exact\"}], \"output_dir\": \"%s\"}",
             MTP_SOURCE_DIR, MTP_SOURCE_DIR, dir);
    FILE *f = fopen(spec, "w");
    fputs(text, f);
    fclose(f);
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(cut, sizeof cut, "%s/cut", dir);
    run(spec, full, false, 0);
    run(spec, cut, false, 1);  /* the first conversation's first turn only */
    run(spec, cut, true, 3);   /* its second turn, and into the next one */
    run(spec, cut, true, 0);
    static struct logged a[32], b[32];
    char log_a[300], log_b[300];
    snprintf(log_a, sizeof log_a, "%s/tt.msgpack", full);
    snprintf(log_b, sizeof log_b, "%s/tt.msgpack", cut);
    int na = read_requests(log_a, a, 32), nb = read_requests(log_b, b, 32);
    assert_int_equal(na, 2 * 2 * 2 * 2); /* prompts x turns x decoders x sampling */
    assert_int_equal(nb, na);
    for (int i = 0; i < na; i++) {
        int j = 0;
        while (j < nb && strcmp(a[i].key, b[j].key) != 0)
            j++;
        if (j == nb)
            fail_msg("%s missing after resume", a[i].key);
        if (a[i].n != b[j].n || memcmp(a[i].out, b[j].out, (size_t)a[i].n * sizeof(int32_t)))
            fail_msg("%s: tokens differ after resume", a[i].key);
    }
    snprintf(text, sizeof text, "rm -rf '%s'", dir);
    assert_int_equal(system(text), 0);
}

int main(void)
{
    static struct model_state models[] = {{.s = {.name = "mtp-mini"}}, {.s = {.name = "mtp-v3"}}};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_mid_conversation),
        cmocka_unit_test_prestate_setup_teardown(test_two_turns, model_setup, model_teardown,
                                                 &models[0]),
        cmocka_unit_test_prestate_setup_teardown(test_two_turns, model_setup, model_teardown,
                                                 &models[1]),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
