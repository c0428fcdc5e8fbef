/*
 * test_tree_spec_log.c - tree decoders outside the engine:
 *   - the spec's "tree" key in its four forms parses to the right shape,
 *     depth and default name; bad input (zero or negative width, too many
 *     nodes, a path without its parent, an unparsable shape, "tree" with
 *     "depth", a tree deeper than the model's modules for exact drafting)
 *     fails with the key path and the reason;
 *   - the optional tree fields of request records survive a log round trip,
 *     and records without them stay as before;
 *   - report --table tree computes verified tokens, tau and sibling-rank
 *     shares from them;
 *   - a session sized exactly by mtp_decode_positions_needed with a dynamic
 *     tree's candidate count runs (module caches hold every candidate).
 *
 *   ctest --test-dir build -R tree_spec_log
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/report.h"
#include "engine/decode.h"
#include "core/error.h"
#include "experiments/log.h"
#include "experiments/spec.h"

static int parse(const char *decoders, struct mtp_spec *s)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"model\": \"models/mtp-mini\", \"datasets\": [\"datasets/code.jsonl\"], "
             "\"max_new_tokens\": 8, \"sampling\": [{\"temperature\": 0}], "
             "\"decoders\": [{\"type\": \"baseline\"}, %s], \"output_dir\": \"/tmp/o\"}",
             decoders);
    return mtp_spec_parse(text, "t.json", MTP_SOURCE_DIR, s);
}

static void test_spec_forms(void **state)
{
    (void)state;
    struct mtp_spec s;
    int rc = parse("{\"type\": \"mtp\", \"drafting\": \"exact\", \"tree\": {\"widths\": [3, 2]}},"
                   "{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"paths\": [[0], [1], "
                   "[0, 0], [0, 0, 0]]}},"
                   "{\"type\": \"mtp\", \"drafting\": \"exact\", \"tree\": {\"dynamic\": "
                   "{\"budget\": 6, \"width\": 2, \"depth\": 3}}},"
                   "{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": \"widths:2,1,1,1\", "
                   "\"name\": \"mine\"}",
                   &s);
    if (rc)
        fail_msg("%s", mtp_error_message());
    assert_int_equal(s.n_decoders, 5);
    assert_string_equal(s.decoders[1].name, "tree-exact-widths-3.2");
    assert_int_equal(s.decoders[1].depth, 2);
    assert_int_equal(mtp_tree_max_drafts(&s.decoders[1].tree), 3 + 6);
    assert_string_equal(s.decoders[2].name, "tree-chain-paths-0_1_0.0_0.0.0");
    assert_int_equal(s.decoders[2].depth, 3);
    assert_string_equal(s.decoders[3].name, "tree-exact-dynamic-6.2.3");
    assert_int_equal(s.decoders[3].tree.kind, MTP_TREE_DYNAMIC);
    assert_string_equal(s.decoders[4].name, "mine");
    assert_int_equal(s.decoders[4].depth, 4);
    assert_int_equal(mtp_spec_check_model(&s, 3), MTP_OK);
    assert_int_equal(mtp_spec_check_model(&s, 2), MTP_ERR); /* decoder 3 is exact, depth 3 */
    assert_non_null(strstr(mtp_error_message(), "'decoders[3].tree'"));
    assert_non_null(strstr(mtp_error_message(), "depth <= 2"));
    mtp_spec_free(&s);
}

static void test_spec_errors(void **state)
{
    (void)state;
    static const struct {
        const char *decoder, *key, *reason;
    } cases[] = {
        {"{\"type\": \"mtp\", \"drafting\": \"exact\", \"tree\": {\"widths\": [2, 0]}}",
         "'decoders[1].tree.widths'", "must be >= 1"},
        {"{\"type\": \"mtp\", \"drafting\": \"exact\", \"tree\": {\"widths\": [-1]}}",
         "'decoders[1].tree.widths'", "must be >= 1"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"widths\": [8, 8]}}",
         "'decoders[1].tree.widths'", "more than 63 draft nodes"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"paths\": [[0], [1, 0]]}}",
         "'decoders[1].tree.paths'", "lacks its parent"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"paths\": [[0], []]}}",
         "'decoders[1].tree.paths[1]'", "non-empty"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": \"bushy\"}",
         "'decoders[1].tree'", "cannot parse"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": 4}",
         "'decoders[1].tree'", "expected an object"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"dynamic\": {\"budget\": 8, "
         "\"width\": 2}}}",
         "'decoders[1].tree'", "budget"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"dynamic\": {\"budget\": 0, "
         "\"width\": 2, \"depth\": 2}}}",
         "'decoders[1].tree.dynamic'", "budget 0"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"tree\": {\"widths\": [2], \"paths\": "
         "[[0]]}}",
         "'decoders[1].tree'", "exactly one"},
        {"{\"type\": \"mtp\", \"drafting\": \"chain\", \"depth\": 3, \"tree\": \"widths:2\"}",
         "'decoders[1].depth'", "not allowed with \"tree\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mtp_spec s;
        if (parse(cases[i].decoder, &s) == MTP_OK)
            fail_msg("case %zu parsed", i);
        const char *msg = mtp_error_message();
        if (!strstr(msg, cases[i].key) || !strstr(msg, cases[i].reason) || !strstr(msg, "t.json"))
            fail_msg("case %zu: expected %s and \"%s\" in: %s", i, cases[i].key, cases[i].reason,
                     msg);
        mtp_spec_free(&s);
    }
}

/* ---- log round trip ---- */

enum { STEPS = 3, DEPTH = 2 };

static void fill(struct mtp_request_record *r, bool tree)
{
    static int32_t out[] = {5, 6, 7, 8, 9, 10};
    static int32_t acc[STEPS] = {2, 0, 1}, nodes[STEPS] = {7, 7, 7}, node[STEPS] = {5, 0, 2};
    static int32_t ranks[STEPS * DEPTH] = {1, 0, -1, -1, 1, -1};
    static uint64_t ns[STEPS] = {100, 200, 300};
    memset(r, 0, sizeof *r);
    r->decoder = tree ? "tree-exact-widths-3.1" : "baseline";
    r->mode = tree ? MTP_SPEC_DECODER_MTP : MTP_SPEC_DECODER_BASELINE;
    r->depth = tree ? DEPTH : 0;
    r->drafting = tree ? MTP_SPEC_DRAFTING_EXACT : MTP_SPEC_DRAFTING_NONE;
    r->dataset = "code";
    r->category = "code";
    r->prompt_id = "p1";
    r->prompt_tokens = 4;
    r->n_output = tree ? 6 : 4;
    r->output_tokens = out;
    r->n_steps = tree ? STEPS : 3;
    static int32_t zero[STEPS] = {0, 0, 0};
    r->accepted = tree ? acc : zero;
    r->accepted_uncut = tree ? acc : NULL;
    r->draft_ns = r->verify_ns = r->accept_ns = r->update_ns = ns;
    r->ttft_ns = 1000;
    r->total_ns = tree ? 2000 : 4000;
    r->time_unix_ns = 1700000000000000000ll;
    if (tree) {
        r->tree = "widths:3,1";
        r->tree_nodes = nodes;
        r->tree_node = node;
        r->tree_depth = DEPTH;
        r->tree_ranks = ranks;
    }
}

static void test_log_round_trip_and_report(void **state)
{
    (void)state;
    char path[] = "/tmp/test_tree_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    struct mtp_log_run_info info = {.spec_json = "{\"name\": \"t\"}", .model = {.dir = "m"},
                                    .host = "h", .cpu = "c", .backend = "cpu", .threads = 1,
                                    .start_unix_ns = 1};
    assert_int_equal(mtp_log_write_run(w, &info), MTP_OK);
    struct mtp_request_record rec;
    fill(&rec, false);
    assert_int_equal(mtp_log_write_request(w, &rec), MTP_OK);
    fill(&rec, true);
    assert_int_equal(mtp_log_write_request(w, &rec), MTP_OK);
    struct mtp_log_summary sum = {.wall_ns = 1, .finished = true, .end_unix_ns = 2};
    assert_int_equal(mtp_log_write_summary(w, &sum), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);

    struct mtp_report_data d;
    memset(&d, 0, sizeof d);
    if (mtp_report_data_load(&d, path, NULL))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(d.n_requests, 2);
    const struct mtp_request_record *b = &d.requests[0].rec, *t = &d.requests[1].rec;
    assert_null(b->tree);
    assert_null(b->tree_nodes);
    assert_string_equal(t->tree, "widths:3,1");
    assert_int_equal(t->tree_depth, DEPTH);
    int32_t want_ranks[] = {1, 0, -1, -1, 1, -1};
    assert_memory_equal(t->tree_ranks, want_ranks, sizeof want_ranks);
    assert_int_equal(t->tree_nodes[2], 7);
    assert_int_equal(t->tree_node[0], 5);

    struct mtp_report_table tab;
    struct mtp_report_options ropt;
    mtp_report_options_default(&ropt);
    assert_int_equal(mtp_report_table_tree(&d, &ropt, &tab), MTP_OK);
    assert_int_equal(tab.n_rows, 2);
    int c_ver = -1, c_tau = -1, c_r1 = -1;
    for (int c = 0; c < tab.n_cols; c++) {
        c_ver = strcmp(tab.cols[c].key, "verified") ? c_ver : c;
        c_tau = strcmp(tab.cols[c].key, "tau") ? c_tau : c;
        c_r1 = strcmp(tab.cols[c].key, "rank1") ? c_r1 : c;
    }
    assert_true(c_ver >= 0 && c_tau >= 0 && c_r1 >= 0);
    const struct mtp_report_cell *row = tab.cells + (size_t)1 * tab.n_cols; /* the tree */
    assert_true(fabs(row[c_ver].stat.value - 7.0) < 1e-12);
    assert_true(fabs(row[c_tau].stat.value - 5.0 / 3.0) < 1e-12);
    assert_true(fabs(row[c_r1].stat.value - 1.0) < 1e-12); /* both accepting steps: rank 1 */
    /* tau comes from the bootstrap group: same point estimate, with an interval. */
    assert_false(isnan(row[c_tau].stat.lo));
    assert_true(row[c_tau].stat.lo <= row[c_tau].stat.value && row[c_tau].stat.value <= row[c_tau].stat.hi);
    mtp_report_table_free(&tab);
    /* The depth ablation compares chains: a log whose only MTP decoder is a
     * tree has nothing for it. */
    assert_int_equal(mtp_report_table_ablation(&d, &ropt, &tab), MTP_ERR);
    mtp_report_data_free(&d);
    unlink(path);
}

/* Capacity: exactly mtp_decode_positions_needed with the candidate count. */
static void test_dynamic_tree_capacity(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/v3-f32", MTP_SOURCE_DIR);
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
    assert_int_equal(mtp_model_load(dir, &model), MTP_OK);
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    struct mtp_decode_params p = {.drafting = MTP_DECODE_DRAFTING_CHAIN, .max_new_tokens = 20,
                                  .sampling = {.temperature = 0, .top_p = 1}, .eos_token_id = -1};
    assert_int_equal(mtp_tree_parse("dynamic:5,3,5", &p.tree), MTP_OK);
    const int32_t prompt[] = {3, 17, 42};
    struct mtp_engine_options opt = {
        .max_positions = mtp_decode_positions_needed(3, 20, mtp_tree_max_candidates(&p.tree)),
        .max_batch = 64};
    assert_int_equal(mtp_engine_create(model, be, &opt, &e), MTP_OK);
    struct mtp_decode_result r;
    if (mtp_decode_run(e, &p, prompt, 3, &r))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(r.n_output, 20);
    mtp_decode_result_free(&r);
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_forms),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_log_round_trip_and_report),
        cmocka_unit_test(test_dynamic_tree_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
