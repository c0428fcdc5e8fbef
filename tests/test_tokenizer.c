/*
 * test_tokenizer.c - the C tokenizer against the Python `tokenizers` library.
 *
 * Golden ids come from training/make_tokenizer_golden.py (rerun it after
 * retraining the tokenizer or rebuilding the prompt sets):
 *   golden.jsonl           models/mtp-mini/tokenizer.json on every shipped prompt
 *                          (datasets/<category>.jsonl) and a list of hard
 *                          strings (scripts, emoji, digits, whitespace,
 *                          special tokens in text, empty string)
 *   tiny-golden.jsonl      tiny-tokenizer.json: same pre-tokenizer, tiny vocab,
 *                          "a b" merge strings, a non-special added token
 *   tiny-gpt2-golden.jsonl tiny-gpt2-tokenizer.json: ByteLevel with
 *                          add_prefix_space and use_regex
 * Each entry must give the same ids (the first mismatch is reported with the
 * text and the ids around it) and decode back to its text (or to "decoded",
 * where `tokenizers` decodes differently: ByteLevel's add_prefix_space). Bad files are made
 * by editing tiny-tokenizer.json in memory; each must fail with MTP_ERR and a
 * message naming the part at fault.
 *
 * Build and run: cmake --build build --target test_tokenizer && ctest --test-dir build -R tokenizer
 */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* defines: int32_t */
#include <stdio.h>  /* defines: fprintf, snprintf, FILE */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strstr, memcmp */
#include <unistd.h> /* defines: unlink, getpid */

#include <cmocka.h>
#include <jansson.h> /* defines: json_t, json_loads */

#include "core/error.h"
#include "engine/tokenizer.h"

#define FIXTURES MTP_SOURCE_DIR "/tests/fixtures/tokenizer/"
#define MAIN_TOKENIZER MTP_SOURCE_DIR "/models/mtp-mini/tokenizer.json"

static struct mtp_tokenizer *load_or_fail(const char *path)
{
    struct mtp_tokenizer *tok = NULL;
    if (mtp_tokenizer_load(path, &tok) != MTP_OK)
        fail_msg("loading %s: %s", path, mtp_error_message());
    return tok;
}

/* Print up to MAX bytes of S with escapes, for failure reports. */
static void print_escaped(const char *s, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fprintf(stderr, "\\n");
        else if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    if (n > max)
        fprintf(stderr, "...");
}

/* Report where GOT first differs from WANT, with the tokens around it. */
static void report_mismatch(const struct mtp_tokenizer *tok, int line, const char *text,
                            size_t tlen, const int32_t *got, int ngot, const json_t *want)
{
    int nwant = (int)json_array_size(want), k = 0;
    while (k < ngot && k < nwant && got[k] == json_integer_value(json_array_get(want, (size_t)k)))
        k++;
    fprintf(stderr, "golden line %d: ids differ at position %d (got %d ids, want %d)\n  text: \"",
            line, k, ngot, nwant);
    print_escaped(text, tlen, 300);
    fprintf(stderr, "\"\n  got  :");
    for (int i = k > 3 ? k - 3 : 0; i < ngot && i < k + 5; i++) {
        size_t len = 0;
        const char *b = mtp_tokenizer_token_bytes(tok, got[i], &len);
        fprintf(stderr, " %d\"", got[i]);
        print_escaped(b ? b : "?", b ? len : 1, 40);
        fprintf(stderr, "\"");
    }
    fprintf(stderr, "\n  want :");
    for (int i = k > 3 ? k - 3 : 0; i < nwant && i < k + 5; i++) {
        int32_t id = (int32_t)json_integer_value(json_array_get(want, (size_t)i));
        size_t len = 0;
        const char *b = mtp_tokenizer_token_bytes(tok, id, &len);
        fprintf(stderr, " %d\"", id);
        print_escaped(b ? b : "?", b ? len : 1, 40);
        fprintf(stderr, "\"");
    }
    fprintf(stderr, "\n");
}

/* Check one golden entry: same ids, and decode gives the text back. Failures
 * are described on stderr when VERBOSE. */
static bool check_entry(const struct mtp_tokenizer *tok, int line, const json_t *entry,
                        bool verbose)
{
    const json_t *jt = json_object_get(entry, "text"), *want = json_object_get(entry, "ids");
    const char *text = json_string_value(jt);
    size_t tlen = json_string_length(jt);
    int32_t *ids = NULL;
    int n = 0;
    if (mtp_tokenizer_encode(tok, text, tlen, false, &ids, &n) != MTP_OK) {
        fprintf(stderr, "golden line %d: encode failed: %s\n", line, mtp_error_message());
        return false;
    }
    bool same = n == (int)json_array_size(want);
    for (int i = 0; same && i < n; i++)
        same = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
    if (!same && verbose)
        report_mismatch(tok, line, text, tlen, ids, n, want);
    const json_t *jd = json_object_get(entry, "decoded");
    const char *expect = jd ? json_string_value(jd) : text;
    size_t elen = jd ? json_string_length(jd) : tlen;
    size_t dlen = 0;
    char *back = mtp_tokenizer_decode(tok, ids, n, false, &dlen);
    bool round = back && dlen == elen && memcmp(back, expect, elen) == 0;
    if (same && !round && verbose) {
        fprintf(stderr, "golden line %d: decode(encode(x)) gives \"", line);
        print_escaped(back ? back : "(null)", back ? dlen : 6, 300);
        fprintf(stderr, "\"\n  want \"");
        print_escaped(expect, elen, 300);
        fprintf(stderr, "\"\n");
    }
    free(back);
    free(ids);
    return same && round;
}

/* Run every entry of GOLDEN through the tokenizer at TOKENIZER; the first five
 * bad entries are described, then the test fails with the count. */
static void run_golden(const char *tokenizer, const char *golden, int min_entries)
{
    struct mtp_tokenizer *tok = load_or_fail(tokenizer);
    FILE *f = fopen(golden, "r");
    if (!f)
        fail_msg("cannot open %s (run training/make_tokenizer_golden.py)", golden);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int line = 0, bad = 0;
    while ((got = getline(&buf, &cap, f)) > 0) {
        line++;
        json_error_t jerr;
        json_t *entry = json_loadb(buf, (size_t)got, JSON_ALLOW_NUL, &jerr);
        if (!entry)
            fail_msg("%s:%d: %s", golden, line, jerr.text);
        bad += !check_entry(tok, line, entry, bad < 5);
        json_decref(entry);
    }
    free(buf);
    fclose(f);
    mtp_tokenizer_free(tok);
    if (bad)
        fail_msg("%s: %d of %d entries differ from tokenizers", golden, bad, line);
    assert_true(line >= min_entries);
}

static void test_golden_main(void **state)
{
    (void)state;
    run_golden(MAIN_TOKENIZER, FIXTURES "golden.jsonl", 400);
}

static void test_golden_tiny(void **state)
{
    (void)state;
    run_golden(FIXTURES "tiny-tokenizer.json", FIXTURES "tiny-golden.jsonl", 50);
}

static void test_golden_tiny_gpt2(void **state)
{
    (void)state;
    run_golden(FIXTURES "tiny-gpt2-tokenizer.json", FIXTURES "tiny-gpt2-golden.jsonl", 50);
}

/* The default model's ids 0-2 and the BOS/EOS lookups (docs/model.md §8). */
static void test_specials(void **state)
{
    (void)state;
    struct mtp_tokenizer *tok = load_or_fail(MAIN_TOKENIZER);
    assert_int_equal(mtp_tokenizer_vocab_size(tok), 4096);
    assert_int_equal(mtp_tokenizer_bos_id(tok), 0);
    assert_int_equal(mtp_tokenizer_eos_id(tok), 1);
    assert_int_equal(mtp_tokenizer_token_id(tok, "<\xEF\xBD\x9C\xE2\x96\x81pad\xE2\x96\x81\xEF\xBD\x9C>"),
                     2);
    assert_true(mtp_tokenizer_is_special(tok, 1));
    assert_false(mtp_tokenizer_is_special(tok, 100));
    assert_int_equal(mtp_tokenizer_token_id(tok, "no such token at all"), -1);

    const char text[] = "Hi<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
    int32_t *ids = NULL;
    int n = 0;
    assert_int_equal(mtp_tokenizer_encode(tok, text, strlen(text), true, &ids, &n), MTP_OK);
    assert_true(n >= 3);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[n - 1], 1);
    char *all = mtp_tokenizer_decode(tok, ids, n, false, NULL);
    char *plain = mtp_tokenizer_decode(tok, ids, n, true, NULL);
    assert_non_null(strstr(all, "begin\xE2\x96\x81of"));
    assert_string_equal(plain, "Hi");
    free(all);
    free(plain);
    free(ids);

    assert_int_equal(mtp_tokenizer_encode(tok, "", 0, false, &ids, &n), MTP_OK);
    assert_non_null(ids);
    assert_int_equal(n, 0);
    free(ids);
    mtp_tokenizer_free(tok);
}

static void test_decode_bad_id(void **state)
{
    (void)state;
    struct mtp_tokenizer *tok = load_or_fail(MAIN_TOKENIZER);
    int32_t ids[] = {5, 4096};
    mtp_error_clear();
    assert_null(mtp_tokenizer_decode(tok, ids, 2, false, NULL));
    assert_non_null(strstr(mtp_error_message(), "id 4096"));
    ids[1] = -1;
    assert_null(mtp_tokenizer_decode(tok, ids, 2, false, NULL));
    mtp_tokenizer_free(tok);
}

/* Bytes that are not UTF-8 must be refused, naming the offset. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *offset;
    } cases[] = {
        {"ok \xff", "offset 3"},             /* never valid */
        {"\xc0\xaf", "offset 0"},            /* overlong '/' */
        {"ab\xed\xa0\x80", "offset 2"},      /* UTF-16 surrogate */
        {"\xe6\x97", "offset 0"},            /* truncated */
        {"x\xf4\x90\x80\x80", "offset 1"},   /* above U+10FFFF */
        {"caf\xc3\xa9 \x80", "offset 6"},    /* lone continuation byte */
    };
    struct mtp_tokenizer *tok = load_or_fail(MAIN_TOKENIZER);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = (int32_t *)&ids;
        int n = -1;
        mtp_error_clear();
        assert_int_equal(mtp_tokenizer_encode(tok, cases[i].text, strlen(cases[i].text), false,
                                              &ids, &n),
                         MTP_ERR);
        assert_null(ids);
        assert_non_null(strstr(mtp_error_message(), "UTF-8"));
        if (!strstr(mtp_error_message(), cases[i].offset))
            fail_msg("case %zu: message '%s' lacks '%s'", i, mtp_error_message(),
                     cases[i].offset);
    }
    mtp_tokenizer_free(tok);
}

/* ---- bad files -------------------------------------------------------------------------- */

static json_t *pretok_list(json_t *root)
{
    return json_object_get(json_object_get(root, "pre_tokenizer"), "pretokenizers");
}

static void bad_model_type(json_t *r)
{
    json_object_set_new(json_object_get(r, "model"), "type", json_string("WordPiece"));
}
static void bad_regex(json_t *r)
{
    json_t *pat = json_object_get(json_array_get(pretok_list(r), 2), "pattern");
    json_object_set_new(pat, "Regex", json_string("[A-Z+(unclosed"));
}
static void bad_no_merges(json_t *r) { json_object_del(json_object_get(r, "model"), "merges"); }
static void bad_no_vocab(json_t *r) { json_object_del(json_object_get(r, "model"), "vocab"); }
static void bad_behavior(json_t *r)
{
    json_object_set_new(json_array_get(pretok_list(r), 0), "behavior", json_string("Removed"));
}
static void bad_pretok_type(json_t *r)
{
    json_object_set_new(json_array_get(pretok_list(r), 1), "type", json_string("Metaspace"));
}
static void bad_no_bytelevel(json_t *r) { json_array_remove(pretok_list(r), 3); }
static void bad_normalizer(json_t *r)
{
    json_object_set_new(r, "normalizer", json_pack("{s:s}", "type", "NFC"));
}
static void bad_decoder(json_t *r)
{
    json_object_set_new(r, "decoder", json_pack("{s:s}", "type", "WordPiece"));
}
static void bad_merge_token(json_t *r)
{
    json_array_append_new(json_object_get(json_object_get(r, "model"), "merges"),
                          json_string("zzz\xC4\xA0 qqq"));
}
static void bad_merge_form(json_t *r)
{
    json_array_append_new(json_object_get(json_object_get(r, "model"), "merges"),
                          json_string("nospace"));
}
static void bad_vocab_id(json_t *r)
{
    json_object_set_new(json_object_get(json_object_get(r, "model"), "vocab"), "zz",
                        json_string("seven"));
}
static void bad_dropout(json_t *r)
{
    json_object_set_new(json_object_get(r, "model"), "dropout", json_real(0.1));
}
static void bad_added_lstrip(json_t *r)
{
    json_object_set_new(json_array_get(json_object_get(r, "added_tokens"), 0), "lstrip",
                        json_true());
}
static void bad_invert(json_t *r)
{
    json_object_set_new(json_array_get(pretok_list(r), 2), "invert", json_true());
}

static void test_bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        void (*mutate)(json_t *);
        const char *part; /* the message must contain this */
    } cases[] = {
        {"unsupported model type", bad_model_type, "model.type: 'WordPiece' not supported"},
        {"invalid regex", bad_regex, "pre_tokenizer.pretokenizers[2].pattern: invalid regex at "
                                     "offset"},
        {"missing merges", bad_no_merges, "model.merges: missing"},
        {"missing vocab", bad_no_vocab, "model.vocab: missing"},
        {"Split behaviour", bad_behavior, "pretokenizers[0].behavior: 'Removed' not supported"},
        {"pre-tokenizer type", bad_pretok_type, "pretokenizers[1].type: 'Metaspace' not "
                                                "supported"},
        {"no ByteLevel", bad_no_bytelevel, "pre_tokenizer: no ByteLevel step"},
        {"normalizer", bad_normalizer, "normalizer: 'NFC' not supported"},
        {"decoder", bad_decoder, "decoder: 'WordPiece' not supported"},
        {"merge of unknown token", bad_merge_token, "is not in model.vocab"},
        {"merge spelling", bad_merge_form, "not two tokens separated by one space"},
        {"vocab id", bad_vocab_id, "model.vocab['zz']: expected an id"},
        {"dropout", bad_dropout, "model.dropout: not supported"},
        {"added lstrip", bad_added_lstrip, "added_tokens[0].lstrip: true not supported"},
        {"Split invert", bad_invert, "pretokenizers[2].invert: true not supported"},
    };
    char path[256];
    snprintf(path, sizeof path, "/tmp/mtp-test-tokenizer-%d.json", (int)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t jerr;
        json_t *root = json_load_file(FIXTURES "tiny-tokenizer.json", 0, &jerr);
        if (!root)
            fail_msg("tiny-tokenizer.json: %s", jerr.text);
        cases[i].mutate(root);
        assert_int_equal(json_dump_file(root, path, 0), 0);
        json_decref(root);
        struct mtp_tokenizer *tok = (struct mtp_tokenizer *)&tok;
        mtp_error_clear();
        int rc = mtp_tokenizer_load(path, &tok);
        if (rc != MTP_ERR || tok != NULL)
            fail_msg("%s: loaded a bad file", cases[i].name);
        if (!strstr(mtp_error_message(), cases[i].part) || !strstr(mtp_error_message(), path))
            fail_msg("%s: message '%s' lacks the file or '%s'", cases[i].name,
                     mtp_error_message(), cases[i].part);
    }
    unlink(path);

    struct mtp_tokenizer *tok = NULL;
    assert_int_equal(mtp_tokenizer_load(FIXTURES "no-such-file.json", &tok), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "no-such-file.json"));
    assert_null(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_main),   cmocka_unit_test(test_golden_tiny),
        cmocka_unit_test(test_golden_tiny_gpt2), cmocka_unit_test(test_specials),
        cmocka_unit_test(test_decode_bad_id), cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
