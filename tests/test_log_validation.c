/*
 * test_log_validation.c - issue 28, the log readers validate where the data
 * enters. A real log (tests/fixtures/logs/v2-trees.msgpack: baseline, chain,
 * draft vocabulary, adaptive and three tree decoders) is edited one field at
 * a time and re-framed with a valid CRC (tests/support/log_edit.h), which is
 * what a buggy writer or a checksum-preserving flip leaves:
 *   - case 1: a tree rank of 2^31 or 2^32-1 (once a negative index in the
 *     tree view, or a silently wrong beta_4) is damage naming the byte
 *     offset and 'tree_ranks': the reader fails, report fails, --skip-damaged
 *     skips and counts it and the tree table still builds, resume refuses
 *     and leaves the file as it was;
 *   - case 4: depth 2^31-1 in a tree record sizes no allocation: damage
 *     naming 'depth'; experts_touched rows of different lengths likewise;
 *   - case 5: depth or drafted INT32_MAX (once a signed overflow in the tree
 *     view) is damage;
 *   - every other count and index against its meaning (table below);
 *   - case 12: a deep tree's description is never cut: it reads back as the
 *     same shape, two trees that differ only past character 255 keep
 *     different texts and different default names, the spec takes both, and
 *     a run logs both whole;
 *   - case 13: MessagePack nested deeper than 32 levels is named as such
 *     (not "out of memory"), in /2 and /1 logs; the tree-string parser
 *     refuses "widths:+4", blanks and trailing separators.
 *
 *   ctest --test-dir build -R log_validation
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>   /* defines: NAN */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: mkdtemp, free, system */
#include <string.h> /* defines: strstr */
#include <unistd.h> /* defines: getcwd */

#include "analysis/report.h"
#include "core/error.h"
#include "engine/tree.h"
#include "experiments/log.h"
#include "experiments/log_frame.h" /* defines: mtp_log_frame_encode */
#include "experiments/spec.h"
#include "experiments/spec_tree.h"
#include "support/log_edit.h"
#include "support/rank_logs.h" /* defines: test_sh, test_mtpbench_path */
#include "support/test_files.h"

static const char FIXTURE[] = "tests/fixtures/logs/v2-trees.msgpack";
static char tmp_dir[64];

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
}

static void assert_message_has(const char *want)
{
    if (!strstr(mtp_error_message(), want))
        fail_msg("expected \"%s\" in: %s", want, mtp_error_message());
}

/* Index (0 = run) and byte offset of the first request record of FIXTURE
 * that is a tree (TREE), adaptive (ADAPTIVE) or a plain chain decoder. */
enum kind { KIND_TREE, KIND_ADAPTIVE, KIND_CHAIN };
static int find_record(enum kind kind, uint64_t *offset)
{
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(FIXTURE, &r), MTP_OK);
    const msgpack_object *rec;
    char type[32];
    int found = -1;
    for (int i = 0; found < 0 && mtp_log_reader_next(r, &rec, offset) == MTP_OK && rec; i++) {
        if (strcmp(mtp_log_record_type(rec, type, sizeof type), "request"))
            continue;
        struct mtp_request_record q;
        assert_int_equal(mtp_log_decode_request(rec, &q), MTP_OK);
        /* A tree record whose step 0 accepted a draft: its rank row 0 is there. */
        bool is = kind == KIND_TREE       ? q.tree != NULL && q.accepted_uncut[0] >= 1
                  : kind == KIND_ADAPTIVE ? q.drafted != NULL
                                          : q.mode == MTP_SPEC_DECODER_MTP && !q.tree &&
                                                q.depth >= 2;
        if (is)
            found = i;
        mtp_log_request_free(&q);
    }
    mtp_log_reader_close(r);
    assert_true(found > 0);
    return found;
}

/* FIXTURE with edit E, written to tmp/NAME; the path into BUF. */
static void edited(const struct log_edit *e, const char *name, char *buf, size_t cap)
{
    tmp_path(buf, cap, name);
    assert_int_equal(log_edit_file(FIXTURE, buf, e, 1), 1);
}

/* Read PATH through (SKIP: skipping damage). Returns the reader's status;
 * *DAMAGED gets the damaged-record count. */
static int read_through(const char *path, bool skip, int *damaged)
{
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(path, &r), MTP_OK);
    mtp_log_reader_skip_damaged(r, skip);
    const msgpack_object *rec;
    int rc;
    while ((rc = mtp_log_reader_next(r, &rec, NULL)) == MTP_OK && rec)
        ;
    struct mtp_log_damage d;
    mtp_log_reader_damage(r, &d);
    *damaged = d.records;
    mtp_log_reader_close(r);
    return rc;
}

/* PATH must be damage at OFFSET naming KEY everywhere a log is read. */
static void assert_damage(const char *path, uint64_t offset, const char *key)
{
    char want[64];
    int damaged;
    snprintf(want, sizeof want, "damaged record at byte offset %llu", (unsigned long long)offset);
    assert_int_equal(read_through(path, false, &damaged), MTP_ERR);
    assert_message_has(want);
    assert_message_has(key);
    assert_int_equal(read_through(path, true, &damaged), MTP_OK);
    assert_int_equal(damaged, 1);

    struct mtp_report_data d = {0};
    assert_int_equal(mtp_report_data_load(&d, path, NULL), MTP_ERR);
    assert_message_has(want);
    mtp_report_data_free(&d);

    size_t before_n, after_n;
    char *before = test_read_whole_file(path, &before_n);
    struct mtp_log_writer *w = NULL;
    struct mtp_log_resume st;
    assert_int_equal(mtp_log_open_resume(path, NULL, NULL, &w, &st), MTP_ERR);
    assert_message_has(want);
    mtp_log_resume_free(&st);
    char *after = test_read_whole_file(path, &after_n);
    assert_int_equal(after_n, before_n);
    assert_memory_equal(after, before, before_n);
    free(before);
    free(after);
}

/* The tree table over PATH with damage skipped: builds, N_DAMAGED skipped. */
static void assert_tree_table(const char *path, int n_damaged)
{
    struct mtp_report_data d = {0};
    d.skip_damaged = true;
    assert_int_equal(mtp_report_data_load(&d, path, NULL), MTP_OK);
    assert_int_equal(d.n_damaged, n_damaged);
    struct mtp_report_options opt;
    mtp_report_options_default(&opt);
    opt.bootstrap = 16;
    struct mtp_report_table t = {0};
    assert_int_equal(mtp_report_table_tree(&d, &opt, &t), MTP_OK);
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
}

/* ---- case 1: a huge tree rank ----------------------------------------------- */

static void test_case1_tree_rank(void **state)
{
    (void)state;
    uint64_t off;
    int rec = find_record(KIND_TREE, &off);
    static const uint64_t ranks[] = {1ull << 31, 0xFFFFFFFFull, UINT64_MAX};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        struct log_edit e = {.record = rec, .key = "tree_ranks", .elem = 0, .sub = 0,
                             .value = LOG_EDIT_UINT, .u = ranks[i]};
        char path[128];
        edited(&e, "rank.msgpack", path, sizeof path);
        assert_damage(path, off, "'tree_ranks'");
        assert_tree_table(path, 1);
    }
}

/* ---- case 4: a depth that would size an allocation -------------------------- */

static void test_case4_depth_allocation(void **state)
{
    (void)state;
    uint64_t off;
    int rec = find_record(KIND_TREE, &off);
    struct log_edit e = {.record = rec, .key = "depth", .elem = -1, .sub = -1,
                         .value = LOG_EDIT_INT, .i = INT32_MAX};
    char path[128];
    edited(&e, "depth.msgpack", path, sizeof path);
    assert_damage(path, off, "'depth'");
    assert_tree_table(path, 1);
}

/* ---- case 5: INT32_MAX in the tree view's sums ----------------------------- */

static void test_case5_overflow(void **state)
{
    (void)state;
    uint64_t off_chain, off_adaptive;
    int chain = find_record(KIND_CHAIN, &off_chain);
    int adaptive = find_record(KIND_ADAPTIVE, &off_adaptive);
    struct log_edit depth = {.record = chain, .key = "depth", .elem = -1, .sub = -1,
                             .value = LOG_EDIT_INT, .i = INT32_MAX};
    struct log_edit drafted = {.record = adaptive, .key = "drafted", .elem = 0, .sub = -1,
                               .value = LOG_EDIT_INT, .i = INT32_MAX};
    char path[128];
    edited(&depth, "chain-depth.msgpack", path, sizeof path);
    assert_damage(path, off_chain, "'depth'");
    assert_tree_table(path, 1);
    edited(&drafted, "drafted.msgpack", path, sizeof path);
    assert_damage(path, off_adaptive, "'drafted'");
    assert_tree_table(path, 1);
}

/* ---- every count against its meaning --------------------------------------- */

static void test_counts_and_indices(void **state)
{
    (void)state;
    uint64_t off_tree, off_chain, off_ad;
    int tree = find_record(KIND_TREE, &off_tree), chain = find_record(KIND_CHAIN, &off_chain);
    int ad = find_record(KIND_ADAPTIVE, &off_ad);
    static const struct {
        enum kind kind;
        struct log_edit e;
        const char *key;
    } cases[] = {
        {KIND_CHAIN, {.key = "accepted", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = -1},
         "'accepted"},
        {KIND_CHAIN, {.key = "accepted", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = 3},
         "'accepted"},
        {KIND_CHAIN, {.key = "accepted_uncut", .elem = 0, .sub = -1, .value = LOG_EDIT_INT,
                      .i = 5}, "'accepted_uncut'"},
        {KIND_CHAIN, {.key = "depth", .elem = -1, .sub = -1, .value = LOG_EDIT_INT, .i = 65},
         "'depth'"},
        {KIND_CHAIN, {.key = "depth", .elem = -1, .sub = -1, .value = LOG_EDIT_INT, .i = 0},
         "'depth'"},
        {KIND_CHAIN, {.key = "output_tokens", .elem = -1, .sub = -1, .value = LOG_EDIT_EMPTY},
         "'output_tokens'"},
        {KIND_CHAIN, {.key = "output_tokens", .elem = 0, .sub = -1, .value = LOG_EDIT_INT,
                      .i = -7}, "'output_tokens'"},
        {KIND_CHAIN, {.key = "output_tokens", .elem = 0, .sub = -1, .value = LOG_EDIT_UINT,
                      .u = 1ull << 32}, "'output_tokens'"},
        {KIND_CHAIN, {.key = "total_ns", .elem = -1, .sub = -1, .value = LOG_EDIT_INT, .i = 0},
         "'total_ns'"},
        {KIND_CHAIN, {.key = "temperature", .elem = -1, .sub = -1, .value = LOG_EDIT_DOUBLE,
                      .d = NAN}, "'temperature'"},
        {KIND_CHAIN, {.key = "experts_touched", .elem = 1, .sub = -1, .value = LOG_EDIT_EMPTY},
         "'experts_touched'"},
        {KIND_CHAIN, {.key = "experts_touched", .elem = 0, .sub = 0, .value = LOG_EDIT_INT,
                      .i = -1}, "'experts_touched'"},
        {KIND_CHAIN, {.key = "mode", .elem = -1, .sub = -1, .value = LOG_EDIT_STR,
                      .s = "baseline"}, "'depth'"},
        {KIND_ADAPTIVE, {.key = "drafted", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = 4},
         "'drafted'"},
        {KIND_ADAPTIVE, {.key = "drafted", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = -1},
         "'drafted'"},
        {KIND_TREE, {.key = "tree_nodes", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = 0},
         "'tree_nodes'"},
        {KIND_TREE, {.key = "tree_nodes", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = 64},
         "'tree_nodes'"},
        {KIND_TREE, {.key = "tree_node", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = 63},
         "'tree_node'"},
        {KIND_TREE, {.key = "tree_node", .elem = 0, .sub = -1, .value = LOG_EDIT_INT, .i = -1},
         "'tree_node'"},
        {KIND_TREE, {.key = "tree_ranks", .elem = 0, .sub = 0, .value = LOG_EDIT_INT, .i = 2},
         "'tree_ranks'"},
        {KIND_TREE, {.key = "tree", .elem = -1, .sub = -1, .value = LOG_EDIT_STR,
                     .s = "widths:4,"}, "'tree'"},
        {KIND_TREE, {.key = "tree", .elem = -1, .sub = -1, .value = LOG_EDIT_STR,
                     .s = "widths:2,2,2,2"}, "'depth'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct log_edit e = cases[i].e;
        uint64_t off = cases[i].kind == KIND_TREE ? off_tree
                       : cases[i].kind == KIND_CHAIN ? off_chain : off_ad;
        e.record = cases[i].kind == KIND_TREE ? tree : cases[i].kind == KIND_CHAIN ? chain : ad;
        char path[128];
        edited(&e, "count.msgpack", path, sizeof path);
        int damaged;
        if (read_through(path, false, &damaged) != MTP_ERR)
            fail_msg("case %zu (key %s) was not refused", i, cases[i].key);
        if (!strstr(mtp_error_message(), cases[i].key))
            fail_msg("case %zu: expected %s in: %s", i, cases[i].key, mtp_error_message());
        char want[64];
        snprintf(want, sizeof want, "byte offset %llu", (unsigned long long)off);
        assert_message_has(want);
        assert_tree_table(path, 1);
    }
}

/* ---- case 12: tree descriptions are never cut ------------------------------ */

/* A paths tree (no widths form): a chain of DEPTH nodes (0; 0,0; ...), a
 * second child of the root ([1]), and LAST more siblings of the deepest
 * node (ranks 1..LAST): trees that differ in LAST differ only at the end of
 * their descriptions. */
static void deep_paths(int depth, int last, struct mtp_tree_shape *s)
{
    static int ranks[MTP_TREE_MAX_DRAFTS][MTP_TREE_MAX_DEPTH];
    const int *rows[MTP_TREE_MAX_DRAFTS];
    int len[MTP_TREE_MAX_DRAFTS], n = 1;
    ranks[0][0] = 1;
    len[0] = 1;
    rows[0] = ranks[0];
    for (int d = 1; d <= depth; d++, n++) {
        for (int k = 0; k < d; k++)
            ranks[n][k] = 0;
        len[n] = d;
        rows[n] = ranks[n];
    }
    for (int r = 1; r <= last; r++, n++) {
        for (int k = 0; k < depth - 1; k++)
            ranks[n][k] = 0;
        ranks[n][depth - 1] = r;
        len[n] = depth;
        rows[n] = ranks[n];
    }
    assert_int_equal(mtp_tree_from_paths(rows, len, n, s), MTP_OK);
}

static void test_case12_long_descriptions(void **state)
{
    (void)state;
    struct mtp_tree_shape a, b, back;
    static char ta[MTP_TREE_TEXT_MAX], tb[MTP_TREE_TEXT_MAX];
    deep_paths(40, 1, &a);
    deep_paths(40, 2, &b);
    mtp_tree_describe(&a, ta, sizeof ta);
    mtp_tree_describe(&b, tb, sizeof tb);
    assert_true(strlen(ta) > 255 && strlen(tb) > 255);
    assert_string_not_equal(ta, tb);
    assert_int_equal(mtp_tree_parse(ta, &back), MTP_OK);
    assert_int_equal(back.n, a.n);
    assert_memory_equal(back.parent, a.parent, (size_t)a.n);
    assert_memory_equal(back.rank, a.rank, (size_t)a.n);
    /* About the longest shape of the node limit: a chain of 62 and [1]. */
    struct mtp_tree_shape deepest;
    deep_paths(MTP_TREE_MAX_DRAFTS - 1, 0, &deepest);
    mtp_tree_describe(&deepest, ta, sizeof ta);
    assert_true(strlen(ta) + 1 < MTP_TREE_TEXT_MAX);
    assert_int_equal(mtp_tree_parse(ta, &back), MTP_OK);
    assert_int_equal(back.n, MTP_TREE_MAX_NODES);

    /* Default names stay apart, and a spec with both and no names parses. */
    struct mtp_spec_decoder da = {.drafting = MTP_SPEC_DRAFTING_CHAIN, .tree = a};
    struct mtp_spec_decoder db = {.drafting = MTP_SPEC_DRAFTING_CHAIN, .tree = b};
    char na[160], nb[160];
    mtp_spec_tree_name(&da, na, sizeof na);
    mtp_spec_tree_name(&db, nb, sizeof nb);
    assert_string_not_equal(na, nb);
    assert_true(strlen(na) < 128);
    mtp_tree_describe(&a, ta, sizeof ta);
    size_t cap = 2 * MTP_TREE_TEXT_MAX + 1024;
    char *text = malloc(cap);
    assert_non_null(text);
    snprintf(text, cap, "{\"name\": \"deep\", \"model\": \"../models/mtp-mini\", "
             "\"datasets\": [\"../datasets/code.jsonl\"], \"max_new_tokens\": 4, "
             "\"sampling\": [{\"temperature\": 0}], \"decoders\": [{\"type\": \"mtp\", "
             "\"drafting\": \"chain\", \"tree\": \"%s\"}, {\"type\": \"mtp\", \"drafting\": "
             "\"chain\", \"tree\": \"%s\"}], \"output_dir\": \"runs\"}", ta, tb);
    struct mtp_spec spec;
    int rc = mtp_spec_parse(text, "deep.json", "experiments", &spec);
    free(text);
    if (rc != MTP_OK)
        fail_msg("%s", mtp_error_message());
    assert_int_equal(spec.n_decoders, 2);
    assert_string_not_equal(spec.decoders[0].name, spec.decoders[1].name);
    mtp_spec_free(&spec);
}

/* The runner logs both deep trees whole (it once wrote them through a
 * 256-byte buffer): a short run on models/mtp-mini, then every tree string
 * in the log is one of the two descriptions. */
static void test_case12_runner_logs_whole_tree(void **state)
{
    (void)state;
    struct mtp_tree_shape a, b;
    static char ta[MTP_TREE_TEXT_MAX], tb[MTP_TREE_TEXT_MAX];
    deep_paths(40, 1, &a);
    deep_paths(40, 2, &b);
    mtp_tree_describe(&a, ta, sizeof ta);
    mtp_tree_describe(&b, tb, sizeof tb);
    char cwd[512], exe[1024], spec_path[128], log_path[128];
    assert_non_null(getcwd(cwd, sizeof cwd));
    size_t cap = 2 * MTP_TREE_TEXT_MAX + 2048;
    char *text = malloc(cap);
    assert_non_null(text);
    snprintf(text, cap, "{\"name\": \"deep\", \"model\": \"%s/models/mtp-mini\", \"threads\": 1, "
             "\"datasets\": [\"%s/datasets/code.jsonl\"], \"max_prompts\": 1, "
             "\"max_new_tokens\": 3, \"warmup\": 0, \"sampling\": [{\"temperature\": 0}], "
             "\"decoders\": [{\"name\": \"a\", \"type\": \"mtp\", \"drafting\": \"chain\", "
             "\"tree\": \"%s\"}, {\"name\": \"b\", \"type\": \"mtp\", \"drafting\": \"chain\", "
             "\"tree\": \"%s\"}], \"output_dir\": \"%s\"}", cwd, cwd, ta, tb, tmp_dir);
    test_write_file(tmp_dir, "deep-run.json", text);
    free(text);
    tmp_path(spec_path, sizeof spec_path, "deep-run.json");
    tmp_path(log_path, sizeof log_path, "deep.msgpack");
    test_mtpbench_path(exe, sizeof exe);
    assert_int_equal(test_sh("%s run %s --quiet >/dev/null", exe, spec_path), 0);
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(log_path, &r), MTP_OK);
    const msgpack_object *rec;
    char type[32];
    int seen[2] = {0, 0};
    while (mtp_log_reader_next(r, &rec, NULL) == MTP_OK && rec) {
        if (strcmp(mtp_log_record_type(rec, type, sizeof type), "request"))
            continue;
        struct mtp_request_record q;
        assert_int_equal(mtp_log_decode_request(rec, &q), MTP_OK);
        assert_non_null(q.tree);
        seen[0] += !strcmp(q.tree, ta);
        seen[1] += !strcmp(q.tree, tb);
        mtp_log_request_free(&q);
    }
    mtp_log_reader_close(r);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
}

/* ---- case 13: deep MessagePack, loose tree strings ------------------------- */

/* A record {"type": "x", "a": [[...[]...]]} nested LEVELS containers deep
 * (the map included, the innermost empty array too), into BUF; returns its
 * length. */
static size_t nested_record(int levels, uint8_t *buf)
{
    size_t n = 0;
    static const uint8_t head[] = {0x82, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0xa1, 'a'};
    memcpy(buf, head, sizeof head);
    n = sizeof head;
    for (int i = 2; i < levels; i++)
        buf[n++] = 0x91; /* fixarray of one */
    buf[n++] = 0x90;     /* the innermost, empty */
    return n;
}

static void test_case13_msgpack_depth(void **state)
{
    (void)state;
    uint8_t body[128], frame[MTP_LOG_FRAME_HEADER + 128];
    char path[128];
    tmp_path(path, sizeof path, "deep.msgpack");
    for (int depth = 31; depth <= 33; depth++) {
        /* /2: one framed record. msgpack-c takes at most 32 levels. */
        size_t n = nested_record(depth, body);
        mtp_log_frame_encode(frame, body, (uint32_t)n);
        memcpy(frame + MTP_LOG_FRAME_HEADER, body, n);
        test_write_bytes(path, (const char *)frame, MTP_LOG_FRAME_HEADER + n);
        int damaged, rc = read_through(path, false, &damaged);
        assert_int_equal(rc, depth <= 32 ? MTP_OK : MTP_ERR);
        if (depth > 32) {
            assert_message_has("nested more than 32 levels");
            assert_null(strstr(mtp_error_message(), "out of memory"));
        }
        /* /1: the bare record. */
        test_write_bytes(path, (const char *)body, n);
        rc = read_through(path, false, &damaged);
        assert_int_equal(rc, depth <= 32 ? MTP_OK : MTP_ERR);
        if (depth > 32) {
            assert_message_has("nested more than 32 levels");
            assert_null(strstr(mtp_error_message(), "out of memory"));
        }
    }
}

static void test_case13_tree_strings(void **state)
{
    (void)state;
    static const struct {
        const char *text, *reason;
    } bad[] = {
        {"widths:+4", "character 8, found '+'"},
        {"widths:4,", "',' at the end"},
        {"widths:4,2,", "',' at the end"},
        {"widths: 4", "found ' '"},
        {"widths:4 ", "expected ',' or the end"},
        {"widths:4,,2", "found ','"},
        {"dynamic:8,4,4,", "',' at the end"},
        {"dynamic:+8,4,4", "found '+'"},
        {"paths:0;1;", "';' at the end"},
        {"paths:0;+1", "found '+'"},
        {"paths:0,;1", "',' at the end"},
        {"paths:", "expected paths"},
    };
    struct mtp_tree_shape s;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (mtp_tree_parse(bad[i].text, &s) != MTP_ERR)
            fail_msg("\"%s\" was accepted", bad[i].text);
        if (!strstr(mtp_error_message(), bad[i].reason) ||
            !strstr(mtp_error_message(), bad[i].text))
            fail_msg("\"%s\": expected \"%s\" in: %s", bad[i].text, bad[i].reason,
                     mtp_error_message());
    }
    static const char *const good[] = {"widths:4", "widths:4,2,1", "4,2", "paths:0;1;0,0",
                                       "dynamic:8,4,4"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (mtp_tree_parse(good[i], &s) != MTP_OK)
            fail_msg("\"%s\": %s", good[i], mtp_error_message());
}

/* The fixture itself is sound: nothing above fails for a reason of its own. */
static void test_fixture_sound(void **state)
{
    (void)state;
    int damaged;
    assert_int_equal(read_through(FIXTURE, false, &damaged), MTP_OK);
    assert_int_equal(damaged, 0);
    assert_tree_table(FIXTURE, 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_test_log_validation_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* An optional argument runs only the tests matching it (cmocka's filter):
 * one test at a time when checking that each fails without its fix. */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_sound),
        cmocka_unit_test(test_case1_tree_rank),
        cmocka_unit_test(test_case4_depth_allocation),
        cmocka_unit_test(test_case5_overflow),
        cmocka_unit_test(test_counts_and_indices),
        cmocka_unit_test(test_case12_long_descriptions),
        cmocka_unit_test(test_case12_runner_logs_whole_tree),
        cmocka_unit_test(test_case13_msgpack_depth),
        cmocka_unit_test(test_case13_tree_strings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
