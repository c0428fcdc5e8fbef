/*
 * conversation.c - turn ids of a multi-turn prompt (see conversation.h).
 */
#include "conversation.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy, strlen */

#include "../engine/error.h"

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
        texts[t] = mtp_tokenizer_decode(tok, answers[t].ids, answers[t].n, true, NULL);
        if (!texts[t])
            rc = MTP_ERR;
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
        return mtp_error_wrap("prompt %s, turn %d of %d (chat_template %s): ", p->id, turn + 1,
                              p->n_turns, tpl->name);
    }
    *ids = out.v ? out.v : mtp_xmalloc(sizeof *out.v);
    *n = out.n;
    return MTP_OK;
}

int mtp_conversation_answer_len(const int32_t *answer, int n, int eos)
{
    return n > 0 && eos >= 0 && answer[n - 1] == eos ? n - 1 : n;
}
