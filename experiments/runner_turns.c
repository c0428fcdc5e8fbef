/*
 * runner_turns.c - one conversation of the request loop (runner_internal.h):
 * every planned turn of a prompt, in order, on one decoding session, so the
 * state of turn t (caches, hidden rows, the random stream) carries into turn
 * t+1 where the new prompt starts with the old sequence (decode.h
 * mtp_decode_continue). Each turn is a request record with its turn index,
 * its prompt ids as rendered and how many of them came from the cache
 * (spec/log-format.md). A single-turn prompt is exactly the request the
 * runner always ran.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy */

#include "../core/error.h"
#include "../engine/limits.h"
#include "conversation.h"
#include "runner_internal.h"

bool mtp_runner_conversation_done(const struct mtp_runner *r, int dec, int samp,
                                  const struct mtp_run_prompt *p, int repeat)
{
    const struct mtp_spec *s = &r->spec;
    for (int t = 0; t < p->n_turns; t++)
        if (!mtp_log_keyset_contains_turn(r->finished, s->decoders[dec].name, samp,
                                          s->dataset_names[p->dataset], p->p->id, repeat, t))
            return false;
    return true;
}

struct conversation {
    int32_t *ids;                   /* this turn's prompt */
    int n;
    struct mtp_turn_answer *answers; /* [n_turns] owned copies, EOS removed */
};

static void conversation_free(struct conversation *c, int n_turns)
{
    free(c->ids);
    for (int t = 0; c->answers && t < n_turns; t++)
        free((void *)c->answers[t].ids);
    free(c->answers);
}

/* Turn T's prompt into c->ids (turn 0: the planned ids). A later turn that
 * outgrew the plan's bound (a template re-encoding answers into more tokens
 * than were emitted) is an error naming it, never a silent cut. */
static int prompt_of_turn(struct mtp_runner *r, const struct mtp_run_prompt *p, int t,
                          struct conversation *c)
{
    free(c->ids);
    c->ids = NULL;
    if (t == 0) {
        c->n = p->n;
        c->ids = mtp_xmalloc((size_t)p->n * sizeof *c->ids);
        memcpy(c->ids, p->ids, (size_t)p->n * sizeof *c->ids);
        return MTP_OK;
    }
    if (mtp_conversation_ids(&r->templates[p->dataset], r->tok, p->p, t, c->answers, &c->ids,
                             &c->n))
        return mtp_error_wrap("DATASET: %s:%d: ", r->spec.datasets[p->dataset], p->p->line);
    if (c->n > p->max_n)
        return mtp_error_set("DATASET: %s:%d: prompt %s, turn %d: %d tokens, more than the "
                             "%d planned for it (chat_template %s re-encodes the answers into "
                             "more tokens than were emitted); lower max_new_tokens",
                             r->spec.datasets[p->dataset], p->p->line, p->p->id, t + 1, c->n,
                             p->max_n, r->templates[p->dataset].name);
    return MTP_OK;
}

/* Decode turn T on session D: prefill (turn 0) or continue, then step to the end. */
static int decode_turn(struct mtp_decode *d, const struct conversation *c, int t, int *cached)
{
    *cached = 0;
    int rc = t == 0 ? mtp_decode_prefill(d, c->ids, c->n)
                    : mtp_decode_continue(d, c->ids, c->n, cached);
    bool done = false;
    while (rc == MTP_OK && !done)
        rc = mtp_decode_step(d, &done);
    return rc;
}

static void keep_answer(struct mtp_runner *r, const struct mtp_decode_result *res,
                        struct conversation *c, int t)
{
    int n = mtp_conversation_answer_len(res->output, res->n_output, r->eos);
    int32_t *ids = mtp_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    memcpy(ids, res->output, (size_t)n * sizeof *ids);
    c->answers[t] = (struct mtp_turn_answer){ids, n};
}

int mtp_runner_run_conversation(struct mtp_runner *r, int dec, int samp,
                                const struct mtp_run_prompt *p, int repeat)
{
    const struct mtp_spec *s = &r->spec;
    struct mtp_decode_params dp = mtp_runner_decode_params(r, dec, samp, p, repeat);
    struct mtp_decode *d;
    if (mtp_decode_create(r->engine, &dp, &d))
        return MTP_ERR;
    struct conversation c = {.answers = mtp_xcalloc((size_t)p->n_turns, sizeof *c.answers)};
    int rc = MTP_OK;
    for (int t = 0; rc == MTP_OK && t < p->n_turns; t++) {
        int cached;
        rc = prompt_of_turn(r, p, t, &c);
        if (!rc && decode_turn(d, &c, t, &cached))
            rc = mtp_error_wrap("request %s/%s/%s repeat %d turn %d: ", s->decoders[dec].name,
                                s->dataset_names[p->dataset], p->p->id, repeat, t + 1);
        if (rc)
            break;
        const struct mtp_decode_result *res = mtp_decode_result(d);
        keep_answer(r, res, &c, t);
        if (mtp_log_keyset_contains_turn(r->finished, s->decoders[dec].name, samp,
                                         s->dataset_names[p->dataset], p->p->id, repeat, t))
            continue; /* logged before a resume: decoded again for its answer only */
        struct mtp_runner_turn turn = {.index = t, .ids = c.ids, .n = c.n, .cached = cached};
        rc = mtp_runner_log_request(r, dec, samp, p, repeat, &turn, res);
        if (rc == MTP_OK && t + 1 < p->n_turns &&
            (mtp_runner_interrupted() ||
             (r->opt->max_requests > 0 && r->logged >= r->opt->max_requests)))
            break; /* the rest of the conversation waits for --resume */
    }
    conversation_free(&c, p->n_turns);
    mtp_decode_free(d);
    return rc;
}
