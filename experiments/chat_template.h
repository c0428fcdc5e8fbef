/*
 * chat_template.h - how a prompt's turns become the text a model sees
 * (spec key "chat_template", spec/experiment-spec.md "Chat templates"):
 *   "none"   no template: the conversation is concatenated as token ids
 *            (experiments/conversation.h); right for base models, the default;
 *   "model"  the checkpoint's own Jinja template: MODEL/chat_template.jinja,
 *            else "chat_template" in MODEL/tokenizer_config.json (a string, or
 *            the entry named "default" of a list of {name, template});
 *   PATH     a Jinja template file.
 * Templates are rendered as transformers' apply_chat_template renders them,
 * by experiments/render_chat_template.py (Jinja2 in a sandbox, transformers'
 * helpers), run once per rendering with the interpreter $MTP_PYTHON (default
 * python3). The template receives the special tokens of the model's
 * tokenizer_config.json (bos_token, eos_token, unk_token, pad_token), else
 * the tokenizer's BOS and EOS.
 */
#ifndef MTP_CHAT_TEMPLATE_H
#define MTP_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h> /* defines: size_t */

#include "../engine/tokenizer.h"

struct mtp_chat_template {
    bool none;           /* "none": no template (text and special are NULL) */
    char *name;          /* for messages: "none", or where the template came from */
    char *text;          /* the Jinja source */
    char *special_json;  /* JSON object of the special tokens the template sees */
};

struct mtp_chat_message {
    const char *role;    /* "user" or "assistant" */
    const char *content;
};

/* Resolve VALUE (a spec's chat_template: "none", "model" or a file) for the
 * model in MODEL_DIR with tokenizer TOK into OUT (zeroed first; free with
 * mtp_chat_template_free, also after a failure). "model" on a checkpoint
 * without a template fails naming the files looked in. */
int mtp_chat_template_load(const char *value, const char *model_dir,
                           const struct mtp_tokenizer *tok, struct mtp_chat_template *out);
void mtp_chat_template_free(struct mtp_chat_template *t);

/* Render MSGS [N] with add_generation_prompt into a new string *TEXT (free()
 * it) of *LEN bytes. A template error, or a renderer that cannot run, fails
 * with "chat template NAME: <what the renderer said>"; callers add the prompt
 * and turn. Not for a "none" template. */
int mtp_chat_template_render(const struct mtp_chat_template *t,
                             const struct mtp_chat_message *msgs, int n, char **text,
                             size_t *len);

#endif
