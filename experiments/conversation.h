/*
 * conversation.h - the token ids of turn T of a multi-turn prompt: the
 * earlier turns, the model's own answers to them, and turn T, through the
 * dataset's chat template (chat_template.h). Turn 0 is the prompt alone.
 *
 * Template "none" (base models) concatenates token ids, never text:
 *     [BOS] enc(turns[0]) answer_0 enc("\n\n" turns[1]) answer_1 ... enc("\n\n" turns[T])
 * where answer_i is exactly what the model emitted for turn i (its final EOS,
 * if any, dropped). The model sees its own tokens unchanged, and turn T's ids
 * start with turn T-1's prompt and answer, so the decoding state carries over
 * whole (decode.h mtp_decode_continue).
 *
 * A template renders the messages user turns[0], assistant text_0, ...,
 * user turns[T] with add_generation_prompt, and the text is encoded as
 * transformers' apply_chat_template encodes it: no BOS added (the template
 * writes its own), special tokens in the text encoded as special tokens.
 * text_i is answer_i decoded with special tokens skipped (bytes that are not
 * UTF-8, e.g. a character cut by max_new_tokens, become U+FFFD). Re-encoding text is
 * not always the model's own ids, so how much of the previous turn's state
 * carries over is checked each turn, not assumed.
 */
#ifndef MTP_CONVERSATION_H
#define MTP_CONVERSATION_H

#include <stdint.h>

#include "../engine/tokenizer.h"
#include "chat_template.h"
#include "dataset.h"

/* The separator between turns under template "none". */
#define MTP_CONVERSATION_SEPARATOR "\n\n"

/* The model's answer to one turn: its output ids, EOS removed. */
struct mtp_turn_answer {
    const int32_t *ids;
    int n;
};

/* The ids of turn TURN of P (0 <= TURN < p->n_turns) given ANSWERS [TURN] to
 * the earlier turns, into a new array *IDS (free()) of *N ids. Fails (MTP_ERR)
 * naming TEMPLATE, the prompt's id and the turn (1-based) when rendering or
 * encoding fails. */
int mtp_conversation_ids(const struct mtp_chat_template *tpl, const struct mtp_tokenizer *tok,
                         const struct mtp_prompt *p, int turn,
                         const struct mtp_turn_answer *answers, int32_t **ids, int *n);

/* The length of ANSWER without its final EOS (EOS < 0: none). */
int mtp_conversation_answer_len(const int32_t *answer, int n, int eos);

#endif
