/*
 * conversation.c - turn ids of a multi-turn prompt (see conversation.h).
 */
#include "conversation.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy, strlen */

#include "../core/error.h"

struct ids {
    int32_t *v;
    int n, cap;
};

static void append(struct ids *a, const int32_t *v, int n)
{
    if (a->n + n > a->cap) {
        a->cap = (a->n + n) * 2 + 16;
        a->v = mtp_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    if (n > 0)
        memcpy(a->v + a->n, v, (size_t)n * sizeof *v);
    a->n += n;
}

/* Encode TEXT (no BOS unless ADD_BOS) and append it. */
static int append_text(struct ids *a, const struct mtp_tokenizer *tok, const char *text,
                       size_t len, bool add_bos)
{
    int32_t *v;
    int n;
    if (mtp_tokenizer_encode(tok, text, len, add_bos, &v, &n))
        return MTP_ERR;
    append(a, v, n);
    free(v);
    return MTP_OK;
}

static int concat_ids(const struct mtp_tokenizer *tok, const struct mtp_prompt *p, int turn,
                      const struct mtp_turn_answer *answers, struct ids *out)
{
    bool bos = mtp_tokenizer_bos_id(tok) >= 0;
    if (append_text(out, tok, p->turns[0], strlen(p->turns[0]), bos))
        return MTP_ERR;
    for (int t = 1; t <= turn; t++) {
        append(out, answers[t - 1].ids, answers[t - 1].n);
        size_t n = strlen(MTP_CONVERSATION_SEPARATOR) + strlen(p->turns[t]) + 1;
        char *text = mtp_xmalloc(n);
        snprintf(text, n, "%s%s", MTP_CONVERSATION_SEPARATOR, p->turns[t]);
        int rc = append_text(out, tok, text, n - 1, false);
        free(text);
        if (rc)
            return MTP_ERR;
    }
    return MTP_OK;
}

/* Length of the valid UTF-8 sequence at S[0..n), or 0 (RFC 3629: no
 * overlong forms, surrogates or code points above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : len;
}

/* TEXT [LEN] with every invalid byte replaced by U+FFFD, as a decoder that
 * turns bytes into text does (an answer cut by max_new_tokens may end inside
 * a character); a new string. */
static char *utf8_lossy(const char *text, size_t len)
{
    char *out = mtp_xmalloc(3 * len + 1), *o = out;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(s + i, len - i);
        if (k == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, s + i, k);
            o += k;
            i += k;
        }
    }
    *o = '\0';
    return out;
}

static int template_ids(const struct mtp_chat_template *tpl, const struct mtp_tokenizer *tok,
                        const struct mtp_prompt *p, int turn,
                        const struct mtp_turn_answer *answers, struct ids *out)
{
    struct mtp_chat_message *msgs = mtp_xcalloc((size_t)(2 * turn + 1), sizeof *msgs);
    char **texts = mtp_xcalloc((size_t)turn + 1, sizeof *texts);
    int rc = MTP_OK;
    for (int t = 0; t <= turn && rc == MTP_OK; t++) {
        msgs[2 * t] = (struct mtp_chat_message){"user", p->turns[t]};
        if (t == turn)
            break;
        size_t len;
        char *raw = mtp_tokenizer_decode(tok, answers[t].ids, answers[t].n, true, &len);
        if (!raw) {
            rc = MTP_ERR;
            break;
        }
        texts[t] = utf8_lossy(raw, len);
        free(raw);
        msgs[2 * t + 1] = (struct mtp_chat_message){"assistant", texts[t]};
    }
    char *text = NULL;
    size_t len = 0;
    if (rc == MTP_OK)
        rc = mtp_chat_template_render(tpl, msgs, 2 * turn + 1, &text, &len);
    if (rc == MTP_OK)
        rc = append_text(out, tok, text, len, false);
    free(text);
    for (int t = 0; t <= turn; t++)
        free(texts[t]);
    free(texts);
    free(msgs);
    return rc;
}

int mtp_conversation_ids(const struct mtp_chat_template *tpl, const struct mtp_tokenizer *tok,
                         const struct mtp_prompt *p, int turn,
                         const struct mtp_turn_answer *answers, int32_t **ids, int *n)
{
    struct ids out = {0};
    int rc = tpl->none ? concat_ids(tok, p, turn, answers, &out)
                       : template_ids(tpl, tok, p, turn, answers, &out);
    if (rc == MTP_OK && out.n == 0)
        rc = mtp_error_set("the rendered prompt has no tokens");
    if (rc) {
        free(out.v);
        /* A rendering error already names the template. */
        return mtp_error_wrap("prompt %s, turn %d of %d: ", p->id, turn + 1, p->n_turns);
    }
    *ids = out.v ? out.v : mtp_xmalloc(sizeof *out.v);
    *n = out.n;
    return MTP_OK;
}

int mtp_conversation_answer_len(const int32_t *answer, int n, int eos)
{
    return n > 0 && eos >= 0 && answer[n - 1] == eos ? n - 1 : n;
}
