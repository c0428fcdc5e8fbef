/*
 * limits.h - the bounds a request must respect on a given model, checked
 * where requests enter (generate, the runner) so that nothing past them is
 * ever computed, allocated or overflowed (spec/model-directory.md, "Limits").
 *
 * Positions: a request uses at most n_prompt + max_new_tokens + depth
 * positions (the verification forward runs `depth` drafts past the last
 * token). The model's limit is max_position_embeddings, or with YaRN the
 * length YaRN scales to, factor * original_max_position_embeddings: that is
 * the context the RoPE frequencies were stretched for, whatever else the
 * config claims.
 */
#ifndef MTP_LIMITS_H
#define MTP_LIMITS_H

#include <stdbool.h> /* defines: bool */
#include <stdint.h>  /* defines: int32_t */

#include "config.h"

/* The most positions one request may use on a model with config C. */
int mtp_limits_max_positions(const struct mtp_config *c);

/* Whether N_PROMPT + MAX_NEW + DEPTH positions fit (no int overflow). */
bool mtp_limits_request_fits(const struct mtp_config *c, int n_prompt, int max_new, int depth);

/* The same as an error for a request that does not fit: names MODEL_DIR's
 * config.json, the limit and where it comes from, and the three terms.
 * Returns MTP_OK when it fits. */
int mtp_limits_check_request(const struct mtp_config *c, const char *model_dir, int n_prompt,
                             int max_new, int depth);

/* A tokenizer of TOK_VOCAB ids (TOK_PATH) against the model: a tokenizer with
 * more ids than the config's vocab_size would feed the embedding rows it does
 * not have, so that is an error. A larger config is fine (checkpoints pad the
 * embedding; DeepSeek-V3 does): generated ids without text are reported when
 * they occur. Returns MTP_OK or MTP_ERR. */
int mtp_limits_check_vocab(const struct mtp_config *c, const char *model_dir, int tok_vocab,
                           const char *tok_path);

/* Ids of PROMPT [n] must be token ids of the model: 0 <= id < vocab_size.
 * WHAT names their source in the message ("--prompt-ids"). */
int mtp_limits_check_ids(const struct mtp_config *c, const char *model_dir, const char *what,
                         const int32_t *prompt, int n);

#endif
