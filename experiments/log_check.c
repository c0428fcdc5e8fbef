/*
 * log_check.c - the cross-field rules of a decoded request record
 * (log_check.h, spec/log-format.md "Validity").
 *
 * The decoder has already bounded every value by its C type and its own
 * range (depth by MTP_SPEC_MAX_DEPTH, counts non-negative). What is left are
 * the relations: accepted <= accepted_uncut <= drafted <= depth per step, the
 * emitted tokens adding up to the output, a baseline drafting nothing, and
 * the tree fields against the tree's shape (log_tree.c). Sums are formed in
 * int64_t: n_steps x depth fits there whatever the record says.
 */
#include "log_check.h"

#include <inttypes.h> /* defines: PRIu64 */
#include <math.h>     /* defines: isfinite */
#include <stdio.h>    /* defines: snprintf */

#include "../core/error.h"
#include "log_tree.h" /* defines: mtp_log_check_tree */

const char *mtp_log_obj_describe(const msgpack_object *o, char *buf, size_t cap)
{
    if (!o)
        snprintf(buf, cap, "nothing (the key is absent)");
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(buf, cap, "%" PRIu64, o->via.u64);
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        snprintf(buf, cap, "%" PRId64, o->via.i64);
    else if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        snprintf(buf, cap, "%g", o->via.f64);
    else if (o->type == MSGPACK_OBJECT_NIL)
        snprintf(buf, cap, "nil");
    else if (o->type == MSGPACK_OBJECT_BOOLEAN)
        snprintf(buf, cap, "%s", o->via.boolean ? "true" : "false");
    else if (o->type == MSGPACK_OBJECT_STR)
        snprintf(buf, cap, "a string");
    else if (o->type == MSGPACK_OBJECT_ARRAY)
        snprintf(buf, cap, "an array of %u", o->via.array.size);
    else if (o->type == MSGPACK_OBJECT_MAP)
        snprintf(buf, cap, "a map");
    else
        snprintf(buf, cap, "binary or extension data");
    return buf;
}

static int bad_step(const char *key, int s, const char *what, int64_t found)
{
    return mtp_error_set("request record: key '%s': step %d: expected %s, found %" PRId64, key, s,
                         what, found);
}

/* Mode, drafting and depth agree: a baseline drafts nothing, a drafting
 * decoder drafts at least one token a step. */
static int check_mode(const struct mtp_request_record *r)
{
    bool drafts = r->mode != MTP_SPEC_DECODER_BASELINE;
    if (!drafts && r->depth != 0)
        return mtp_error_set("request record: key 'depth': expected 0 for mode \"baseline\", "
                             "found %d", r->depth);
    if (drafts && r->depth < 1)
        return mtp_error_set("request record: key 'depth': expected >= 1 for a drafting mode, "
                             "found %d", r->depth);
    if (drafts == (r->drafting == MTP_SPEC_DRAFTING_NONE))
        return mtp_error_set("request record: key 'drafting': \"none\" goes with mode "
                             "\"baseline\" and only with it");
    return MTP_OK;
}

/* Sampling values in the ranges a spec allows (spec.c: T >= 0, top_p in
 * (0, 1]; 0 is taken as "off" too): NaN would make every grouping
 * comparison false. */
static int check_sampling(const struct mtp_request_record *r)
{
    if (!(isfinite(r->temperature) && r->temperature >= 0))
        return mtp_error_set("request record: key 'temperature': expected a finite number >= 0, "
                             "found %g", r->temperature);
    if (!(r->top_p >= 0 && r->top_p <= 1))
        return mtp_error_set("request record: key 'top_p': expected a number in [0, 1], found %g",
                             r->top_p);
    if (r->adaptive_rule && !isfinite(r->adaptive_threshold))
        return mtp_error_set("request record: key 'adaptive_threshold': expected a finite "
                             "number, found %g", r->adaptive_threshold);
    return MTP_OK;
}

/* Step S: 0 <= accepted <= accepted_uncut <= drafted <= depth. */
static int check_step(const struct mtp_request_record *r, int s)
{
    int cap = r->depth;
    char what[64];
    if (r->drafted) {
        snprintf(what, sizeof what, "0..%d (the depth)", r->depth);
        if (r->drafted[s] < 0 || r->drafted[s] > r->depth)
            return bad_step("drafted", s, what, r->drafted[s]);
        cap = r->drafted[s];
    }
    int uncut = r->accepted_uncut ? r->accepted_uncut[s] : r->accepted[s];
    snprintf(what, sizeof what, "0..%d (the drafts verified)", cap);
    if (uncut < 0 || uncut > cap)
        return bad_step(r->accepted_uncut ? "accepted_uncut" : "accepted", s, what, uncut);
    snprintf(what, sizeof what, "0..%d (accepted_uncut, before any cut)", uncut);
    if (r->accepted[s] < 0 || r->accepted[s] > uncut)
        return bad_step("accepted", s, what, r->accepted[s]);
    return MTP_OK;
}

/* Token ids and expert counts are never negative. */
static int check_non_negative(const char *key, const int32_t *v, int64_t n)
{
    for (int64_t i = 0; v && i < n; i++)
        if (v[i] < 0)
            return mtp_error_set("request record: key '%s': element %" PRId64 ": expected >= 0, "
                                 "found %d", key, i, v[i]);
    return MTP_OK;
}

/* One token from the prefill, then e_s = a_s + 1 per step, except that EOS
 * or the token limit may cut the last step to e_s = a_s >= 1 (engine/
 * decode_mtp.c counts only emitted drafts as accepted): the output's length. */
static int check_emitted(const struct mtp_request_record *r)
{
    int64_t expected = 1;
    for (int s = 0; s < r->n_steps; s++)
        expected += (int64_t)r->accepted[s] + 1;
    bool cut_last = r->n_steps > 0 && r->accepted[r->n_steps - 1] >= 1 &&
                    r->n_output == expected - 1;
    if (r->n_output != expected && !cut_last)
        return mtp_error_set("request record: key 'output_tokens': expected 1 + sum of "
                             "(accepted + 1) over the %d steps = %" PRId64 " tokens (one less if "
                             "the last step was cut), found %d", r->n_steps, expected,
                             r->n_output);
    return MTP_OK;
}

int mtp_log_check_request(const struct mtp_request_record *r)
{
    if (check_mode(r) || check_sampling(r))
        return MTP_ERR;
    for (int s = 0; s < r->n_steps; s++)
        if (check_step(r, s))
            return MTP_ERR;
    if (check_emitted(r) || check_non_negative("output_tokens", r->output_tokens, r->n_output) ||
        check_non_negative("prompt_ids", r->prompt_ids, r->prompt_tokens) ||
        check_non_negative("experts_touched", r->experts_touched,
                           (int64_t)r->n_steps * r->n_moe_layers))
        return MTP_ERR;
    if (r->turn < 0 || r->prompt_cached < 0 ||
        (r->prompt_cached > 0 && r->prompt_cached >= r->prompt_tokens))
        return mtp_error_set("request record: key 'prompt_cached': expected 0 <= prompt_cached "
                             "< prompt_tokens (%d) and turn >= 0, found %d (turn %d)",
                             r->prompt_tokens, r->prompt_cached, r->turn);
    if (r->prompt_cached > 0 && r->turn == 0)
        return mtp_error_set("request record: key 'prompt_cached': expected 0 on turn 0 (no "
                             "earlier turn to keep rows from), found %d", r->prompt_cached);
    if (r->total_ns < r->ttft_ns)
        return mtp_error_set("request record: key 'total_ns': expected >= ttft_ns (%" PRIu64
                             ", prefill included), found %" PRIu64, r->ttft_ns, r->total_ns);
    return r->tree ? mtp_log_check_tree(r) : MTP_OK;
}
