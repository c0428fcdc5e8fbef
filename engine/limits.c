/*
 * limits.c - request bounds against a model (limits.h).
 */
#include "limits.h"

#include <stdint.h> /* defines: int64_t, INT32_MAX */

#include "../core/error.h"

int mtp_limits_max_positions(const struct mtp_config *c)
{
    if (!c->rope_scaling.yarn)
        return c->max_position_embeddings;
    double scaled = c->rope_scaling.factor * (double)c->rope_scaling.original_max_position;
    return scaled >= (double)INT32_MAX ? INT32_MAX : (int)scaled;
}

bool mtp_limits_request_fits(const struct mtp_config *c, int n_prompt, int max_new, int depth)
{
    int64_t need = (int64_t)n_prompt + max_new + depth; /* int64: no overflow for any ints */
    return n_prompt >= 0 && max_new >= 0 && depth >= 0 && need <= mtp_limits_max_positions(c);
}

int mtp_limits_check_request(const struct mtp_config *c, const char *model_dir, int n_prompt,
                             int max_new, int depth)
{
    if (mtp_limits_request_fits(c, n_prompt, max_new, depth))
        return MTP_OK;
    int64_t need = (int64_t)n_prompt + max_new + depth;
    if (c->rope_scaling.yarn)
        return mtp_error_set("%s/config.json: the request needs %lld positions (prompt %d + "
                             "max_new_tokens %d + depth %d); expected at most %d, the YaRN "
                             "length rope_scaling.factor %g * original_max_position_embeddings "
                             "%d",
                             model_dir, (long long)need, n_prompt, max_new, depth,
                             mtp_limits_max_positions(c), c->rope_scaling.factor,
                             c->rope_scaling.original_max_position);
    return mtp_error_set("%s/config.json: the request needs %lld positions (prompt %d + "
                         "max_new_tokens %d + depth %d); expected at most "
                         "max_position_embeddings = %d",
                         model_dir, (long long)need, n_prompt, max_new, depth,
                         c->max_position_embeddings);
}

int mtp_limits_check_vocab(const struct mtp_config *c, const char *model_dir, int tok_vocab,
                           const char *tok_path)
{
    if (tok_vocab <= c->vocab_size)
        return MTP_OK;
    return mtp_error_set("%s: the tokenizer has %d ids but %s/config.json says vocab_size %d; "
                         "expected a tokenizer with at most vocab_size ids (tokenizer and model "
                         "do not match)",
                         tok_path, tok_vocab, model_dir, c->vocab_size);
}

int mtp_limits_check_ids(const struct mtp_config *c, const char *model_dir, const char *what,
                         const int32_t *prompt, int n)
{
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return mtp_error_set("%s: id %d (position %d) is not a token id of the model; "
                                 "expected 0 <= id < vocab_size = %d (%s/config.json)",
                                 what, prompt[i], i, c->vocab_size, model_dir);
    return MTP_OK;
}
