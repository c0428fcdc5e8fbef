/*
 * tokenizer_pretok.c - everything between the raw text and BPE: UTF-8
 * validation, added-token matching, the Split regexes (PCRE2) and ByteLevel's
 * prefix space and optional GPT-2 regex.
 *
 * Split with behaviour Isolated follows `tokenizers` exactly: within each
 * current piece, the matches (found left to right, non-overlapping, each search
 * starting where the last match ended) and the gaps between them all become
 * pieces; empty pieces are dropped. Each piece is searched as its own subject,
 * so lookarounds such as `\s+(?!\S)` see the piece's end as the end of text, as
 * they do in `tokenizers`, where every piece is a separate string.
 */
#include "tokenizer_impl.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcmp, memcpy */

#include "../core/error.h"

int mtp_tok_regex_compile(const char *path, const char *where, const char *pattern, bool literal,
                          pcre2_code **out)
{
    int errcode;
    PCRE2_SIZE erroff;
    /* UCP makes \s, \w, \d and POSIX classes Unicode-aware, as Oniguruma's
     * are for UTF-8 in `tokenizers`; PCRE2 does not allow it with LITERAL.
     * The pattern is untrusted: \C matches one byte even in UTF mode, so it
     * could end a piece inside a character and every later match (run with
     * PCRE2_NO_UTF_CHECK) would read a broken subject. Refuse it here. */
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C);
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &errcode, &erroff,
                         NULL);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return mtp_error_set("%s: %s: invalid regex at offset %zu: %s (pattern '%s')", path,
                             where, (size_t)erroff, (const char *)msg, pattern);
    }
    /* JIT is an optimisation only: when unavailable the interpreter runs. */
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return MTP_OK;
}

/* Length of the UTF-8 sequence at S (N bytes left), or 0 if invalid: overlong
 * forms, surrogates and code points above U+10FFFF are invalid, as in Rust. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (len == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)))
        return 0; /* overlong, or above U+10FFFF */
    return len;
}

size_t mtp_tok_utf8_check(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq_len(s + i, len - i);
        if (k == 0)
            return i;
        i += k;
    }
    return len;
}

int32_t mtp_tok_added_match(const struct mtp_tokenizer *tok, const char *text, size_t len,
                            size_t *mlen)
{
    if (len == 0 || !tok->added_first[(unsigned char)text[0]])
        return -1;
    /* Sorted longest first: the first hit is the longest match here. */
    for (int i = 0; i < tok->n_added; i++) {
        const struct mtp_tok_added *a = &tok->added[i];
        if (a->len <= len && memcmp(a->content, text, a->len) == 0) {
            *mlen = a->len;
            return a->id;
        }
    }
    return -1;
}

void mtp_tok_words_push(struct mtp_tok_words *ws, const char *p, size_t len)
{
    if (len == 0)
        return;
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 64;
        ws->w = mtp_xrealloc(ws->w, (size_t)ws->cap * sizeof *ws->w);
    }
    ws->w[ws->n++] = (struct mtp_tok_word){p, len};
}

/* Keep BUF alive until the list is freed. */
static void words_own(struct mtp_tok_words *ws, char *buf)
{
    if (ws->n_owned == ws->cap_owned) {
        ws->cap_owned = ws->cap_owned ? 2 * ws->cap_owned : 16;
        ws->owned = mtp_xrealloc(ws->owned, (size_t)ws->cap_owned * sizeof *ws->owned);
    }
    ws->owned[ws->n_owned++] = buf;
}

void mtp_tok_words_clear(struct mtp_tok_words *ws) { ws->n = 0; }

void mtp_tok_words_free(struct mtp_tok_words *ws)
{
    for (int i = 0; i < ws->n_owned; i++)
        free(ws->owned[i]);
    free(ws->owned);
    free(ws->w);
    *ws = (struct mtp_tok_words){0};
}

/* One search; falls back to the interpreter if the JIT stack runs out (very
 * long pieces), which gives the same result. */
static int regex_find(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                      size_t from)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    return rc;
}

static bool at_char_boundary(const char *s, size_t n, size_t i)
{
    return i == n || ((unsigned char)s[i] & 0xC0) != 0x80;
}

/* Whether a match [MS, ME) is usable: inside S[0..N), not before the end of
 * the previous match PREV (\K or lookbehind tricks could move it back), and
 * not cutting a UTF-8 character. Anything else would make the gap or tail
 * lengths below underflow. */
static bool match_is_sane(const char *s, size_t n, size_t prev, size_t ms, size_t me)
{
    return prev <= ms && ms <= me && me <= n && at_char_boundary(s, n, ms) &&
           at_char_boundary(s, n, me);
}

/* Split the piece S[0..N) with RE (Isolated) and append the pieces to OUT. */
static int split_isolated(const struct mtp_tokenizer *tok, const pcre2_code *re,
                          pcre2_match_data *md, const char *s, size_t n, struct mtp_tok_words *out)
{
    size_t prev = 0, pos = 0;
    while (pos < n) {
        int rc = regex_find(re, md, s, n, pos);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return mtp_error_set("%s: pre_tokenizer: regex match failed: %s", tok->path,
                                 (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (!match_is_sane(s, n, prev, ms, me))
            return mtp_error_set("%s: pre_tokenizer: a Split regex matched bytes [%zu, %zu) of a "
                                 "%zu-byte piece searched from %zu; expected a match within the "
                                 "piece, after the previous one, on character boundaries",
                                 tok->path, ms, me, n, prev);
        mtp_tok_words_push(out, s + prev, ms - prev); /* the gap, if any */
        mtp_tok_words_push(out, s + ms, me - ms);
        prev = me;
        if (me > ms) {
            pos = me;
        } else { /* an empty match: step over one character, as find_iter does */
            pos = me + 1;
            while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80)
                pos++;
        }
    }
    mtp_tok_words_push(out, s + prev, n - prev);
    return MTP_OK;
}

/* ByteLevel's add_prefix_space: a piece not starting with ' ' gets one, in a copy. */
static struct mtp_tok_word prefix_space(struct mtp_tok_words *keep, struct mtp_tok_word w)
{
    if (w.p[0] == ' ')
        return w;
    char *buf = mtp_xmalloc(w.len + 1);
    buf[0] = ' ';
    memcpy(buf + 1, w.p, w.len);
    words_own(keep, buf);
    return (struct mtp_tok_word){buf, w.len + 1};
}

/* Apply step ST to every word of IN, appending the results to OUT. */
static int run_step(const struct mtp_tokenizer *tok, const struct mtp_tok_step *st,
                    pcre2_match_data *md, const struct mtp_tok_words *in,
                    struct mtp_tok_words *out)
{
    for (int i = 0; i < in->n; i++) {
        struct mtp_tok_word w = in->w[i];
        if (st->kind == MTP_TOK_STEP_BYTELEVEL && st->add_prefix_space)
            w = prefix_space(out, w);
        if (!st->re)
            mtp_tok_words_push(out, w.p, w.len);
        else if (split_isolated(tok, st->re, md, w.p, w.len, out))
            return MTP_ERR;
    }
    return MTP_OK;
}

int mtp_tok_pretokenize(const struct mtp_tokenizer *tok, const char *text, size_t len,
                        struct mtp_tok_words *out)
{
    if (len == 0)
        return MTP_OK;
    /* Ping-pong between two lists; the last step writes into OUT. Owned copies
     * are always registered with OUT so they outlive this call. */
    struct mtp_tok_words a = {0}, b = {0};
    mtp_tok_words_push(&a, text, len);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = MTP_OK;
    for (int s = 0; s < tok->n_step && rc == MTP_OK; s++) {
        bool last = s == tok->n_step - 1;
        struct mtp_tok_words *dst = last ? out : &b;
        if (!last)
            mtp_tok_words_clear(&b);
        /* Owned copies only come from ByteLevel, the last step, so they land in OUT. */
        rc = run_step(tok, &tok->step[s], md, &a, dst);
        if (!last) {
            struct mtp_tok_words t = a;
            a = b;
            b = t;
        }
    }
    pcre2_match_data_free(md);
    mtp_tok_words_free(&a);
    mtp_tok_words_free(&b);
    return rc;
}
