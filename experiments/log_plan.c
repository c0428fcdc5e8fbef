/*
 * log_plan.c - pack and decode the "plan" record (see log_plan.h and
 * spec/log-format.md, "plan").
 */
#include "log_plan.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strlen, strcmp, memset */

#include "../core/error.h"
#include "log_pack.h" /* defines: mtp_log_pack_str */

static const char *const skip_names[MTP_PLAN_SKIP_COUNT] = {
    [MTP_PLAN_SKIP_POSITIONS] = "position_limit",
    [MTP_PLAN_SKIP_PROMPT_TOKENS] = "max_prompt_tokens",
};

const char *mtp_plan_skip_name(enum mtp_plan_skip reason)
{
    return reason >= 0 && reason < MTP_PLAN_SKIP_COUNT ? skip_names[reason] : "run";
}

/* ---- packing ---------------------------------------------------------------- */

static void pack_prompt(msgpack_packer *pk, const struct mtp_plan_prompt *p)
{
    msgpack_pack_map(pk, p->skip == MTP_PLAN_RUN ? 6 : 5);
    mtp_log_pack_str(pk, "dataset");
    mtp_log_pack_str(pk, p->dataset);
    mtp_log_pack_str(pk, "prompt_id");
    mtp_log_pack_str(pk, p->prompt_id);
    mtp_log_pack_str(pk, "category");
    mtp_log_pack_str(pk, p->category);
    mtp_log_pack_str(pk, "prompt_tokens");
    msgpack_pack_int64(pk, p->prompt_tokens);
    if (p->skip == MTP_PLAN_RUN) {
        mtp_log_pack_str(pk, "turns");
        msgpack_pack_int64(pk, p->turns);
        mtp_log_pack_str(pk, "turns_total");
        msgpack_pack_int64(pk, p->turns_total);
    } else {
        mtp_log_pack_str(pk, "reason");
        mtp_log_pack_str(pk, mtp_plan_skip_name(p->skip));
    }
}

/* The prompts with (SKIPPED) or without a skip reason, as one array. */
static void pack_prompts(msgpack_packer *pk, const struct mtp_log_plan *plan, bool skipped)
{
    int n = 0;
    for (int i = 0; i < plan->n_prompts; i++)
        n += (plan->prompts[i].skip != MTP_PLAN_RUN) == skipped;
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < plan->n_prompts; i++)
        if ((plan->prompts[i].skip != MTP_PLAN_RUN) == skipped)
            pack_prompt(pk, &plan->prompts[i]);
}

static bool batch_default(const struct mtp_log_plan *plan)
{
    return plan->n_batch_sizes <= 1 && (plan->n_batch_sizes == 0 || plan->batch_sizes[0] == 1);
}

static void pack_plan(msgpack_packer *pk, const void *arg)
{
    const struct mtp_log_plan *plan = arg;
    msgpack_pack_map(pk, 8 + !batch_default(plan));
    mtp_log_pack_str(pk, "type");
    mtp_log_pack_str(pk, "plan");
    mtp_log_pack_str(pk, "requests");
    msgpack_pack_int64(pk, plan->requests);
    mtp_log_pack_str(pk, "repeats");
    msgpack_pack_int64(pk, plan->repeats);
    mtp_log_pack_str(pk, "decoders");
    msgpack_pack_array(pk, (size_t)plan->n_decoders);
    for (int i = 0; i < plan->n_decoders; i++)
        mtp_log_pack_str(pk, plan->decoders[i]);
    mtp_log_pack_str(pk, "sampling");
    msgpack_pack_array(pk, (size_t)plan->n_sampling);
    for (int i = 0; i < plan->n_sampling; i++) {
        msgpack_pack_map(pk, 3);
        mtp_log_pack_str(pk, "temperature");
        msgpack_pack_double(pk, plan->sampling[i].temperature);
        mtp_log_pack_str(pk, "top_p");
        msgpack_pack_double(pk, plan->sampling[i].top_p);
        mtp_log_pack_str(pk, "top_k");
        msgpack_pack_int64(pk, plan->sampling[i].top_k);
    }
    if (!batch_default(plan)) {
        mtp_log_pack_str(pk, "batch_sizes");
        msgpack_pack_array(pk, (size_t)plan->n_batch_sizes);
        for (int i = 0; i < plan->n_batch_sizes; i++)
            msgpack_pack_int64(pk, plan->batch_sizes[i]);
    }
    mtp_log_pack_str(pk, "prompts");
    pack_prompts(pk, plan, false);
    mtp_log_pack_str(pk, "skipped");
    pack_prompts(pk, plan, true);
    mtp_log_pack_str(pk, "selection");
    msgpack_pack_map(pk, 3);
    mtp_log_pack_str(pk, "max_prompts");
    msgpack_pack_int64(pk, plan->max_prompts);
    mtp_log_pack_str(pk, "max_prompts_per_category");
    msgpack_pack_int64(pk, plan->max_prompts_per_category);
    mtp_log_pack_str(pk, "seed");
    msgpack_pack_uint64(pk, plan->seed);
}

int mtp_log_write_plan(struct mtp_log_writer *w, const struct mtp_log_plan *plan)
{
    return mtp_log_write_packed(w, pack_plan, plan);
}

/* ---- decoding --------------------------------------------------------------- */

static int bad_key(const char *key, const char *expected)
{
    return mtp_error_set("plan record: key '%s': expected %s", key, expected);
}

/* A non-negative integer that fits an int. */
static int get_count(const msgpack_object *map, const char *key, int *out)
{
    int64_t v;
    if (!mtp_log_obj_int(mtp_log_map_get(map, key), &v) || v < 0 || v > INT32_MAX)
        return bad_key(key, "an integer in 0..2^31-1");
    *out = (int)v;
    return MTP_OK;
}

static const msgpack_object *get_array(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = mtp_log_map_get(map, key);
    return o && o->type == MSGPACK_OBJECT_ARRAY ? o : NULL;
}

static int decode_prompt(const msgpack_object *o, const char *list, struct mtp_log_plan *plan)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return bad_key(list, "an array of maps");
    char *ds = mtp_log_obj_strdup(mtp_log_map_get(o, "dataset"));
    char *id = mtp_log_obj_strdup(mtp_log_map_get(o, "prompt_id"));
    char *cat = mtp_log_obj_strdup(mtp_log_map_get(o, "category"));
    const msgpack_object *why = mtp_log_map_get(o, "reason");
    enum mtp_plan_skip skip = MTP_PLAN_RUN;
    for (int r = 0; why && r < MTP_PLAN_SKIP_COUNT; r++)
        if (mtp_log_obj_is_str(why, skip_names[r]))
            skip = (enum mtp_plan_skip)r;
    int tokens = 0;
    int rc = MTP_OK;
    if (!ds || !id || !cat)
        rc = bad_key(list, "maps with string dataset, prompt_id and category");
    else if (get_count(o, "prompt_tokens", &tokens))
        rc = MTP_ERR;
    else if ((skip == MTP_PLAN_RUN) != (strcmp(list, "prompts") == 0))
        rc = bad_key(list, "a reason (position_limit or max_prompt_tokens) exactly for the "
                           "skipped prompts");
    /* Plans written before multi-turn prompts ran read as one turn each. */
    int turns = 1, total = 1;
    if (rc == MTP_OK && skip == MTP_PLAN_RUN && mtp_log_map_get(o, "turns") &&
        (get_count(o, "turns", &turns) || get_count(o, "turns_total", &total)))
        rc = MTP_ERR;
    else if (rc == MTP_OK && skip == MTP_PLAN_RUN && (turns < 1 || total < turns))
        rc = bad_key("turns", "1 <= turns <= turns_total");
    if (rc == MTP_OK) {
        mtp_log_plan_add_prompt(plan, ds, id, cat, tokens, skip);
        plan->prompts[plan->n_prompts - 1].turns = turns;
        plan->prompts[plan->n_prompts - 1].turns_total = total;
    }
    free(ds);
    free(id);
    free(cat);
    return rc;
}

static int decode_lists(const msgpack_object *rec, struct mtp_log_plan *plan)
{
    const msgpack_object *dec = get_array(rec, "decoders"), *samp = get_array(rec, "sampling");
    if (!dec)
        return bad_key("decoders", "an array of strings");
    if (!samp)
        return bad_key("sampling", "an array of maps");
    plan->decoders = mtp_xcalloc(dec->via.array.size + 1, sizeof *plan->decoders);
    for (uint32_t i = 0; i < dec->via.array.size; i++) {
        plan->decoders[i] = mtp_log_obj_strdup(&dec->via.array.ptr[i]);
        if (!plan->decoders[i])
            return bad_key("decoders", "an array of strings");
        plan->n_decoders++;
    }
    plan->sampling = mtp_xcalloc(samp->via.array.size + 1, sizeof *plan->sampling);
    for (uint32_t i = 0; i < samp->via.array.size; i++) {
        const msgpack_object *s = &samp->via.array.ptr[i];
        struct mtp_plan_sampling *p = &plan->sampling[plan->n_sampling];
        int64_t k;
        if (!mtp_log_obj_double(mtp_log_map_get(s, "temperature"), &p->temperature) ||
            !mtp_log_obj_double(mtp_log_map_get(s, "top_p"), &p->top_p) ||
            !mtp_log_obj_int(mtp_log_map_get(s, "top_k"), &k))
            return bad_key("sampling", "maps with temperature, top_p and top_k");
        p->top_k = (int)k;
        plan->n_sampling++;
    }
    static const char *const lists[2] = {"prompts", "skipped"};
    for (int l = 0; l < 2; l++) {
        const msgpack_object *a = get_array(rec, lists[l]);
        if (!a)
            return bad_key(lists[l], "an array of maps");
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (decode_prompt(&a->via.array.ptr[i], lists[l], plan))
                return MTP_ERR;
    }
    return MTP_OK;
}

/* "batch_sizes": distinct integers 1..MTP_SPEC_MAX_BATCH; absent: [1]. */
static int decode_batch_sizes(const msgpack_object *rec, struct mtp_log_plan *plan)
{
    const msgpack_object *a = mtp_log_map_get(rec, "batch_sizes");
    if (!a) {
        mtp_log_plan_set_batch_sizes(plan, NULL, 0);
        return MTP_OK;
    }
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
        a->via.array.size > MTP_SPEC_MAX_BATCH)
        return bad_key("batch_sizes", "a non-empty array of at most 256 batch sizes");
    plan->batch_sizes = mtp_xcalloc(a->via.array.size, sizeof *plan->batch_sizes);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        int64_t v;
        if (!mtp_log_obj_int(&a->via.array.ptr[i], &v) || v < 1 || v > MTP_SPEC_MAX_BATCH)
            return bad_key("batch_sizes", "integers 1..256");
        for (uint32_t j = 0; j < i; j++)
            if (plan->batch_sizes[j] == v)
                return bad_key("batch_sizes", "distinct batch sizes");
        plan->batch_sizes[plan->n_batch_sizes++] = (int)v;
    }
    return MTP_OK;
}

void mtp_log_plan_set_batch_sizes(struct mtp_log_plan *plan, const int *sizes, int n)
{
    free(plan->batch_sizes);
    plan->n_batch_sizes = n > 0 ? n : 1;
    plan->batch_sizes = mtp_xcalloc((size_t)plan->n_batch_sizes, sizeof *plan->batch_sizes);
    for (int i = 0; i < plan->n_batch_sizes; i++)
        plan->batch_sizes[i] = n > 0 ? sizes[i] : 1;
}

int mtp_log_plan_decode(const msgpack_object *rec, struct mtp_log_plan *out)
{
    memset(out, 0, sizeof *out);
    int64_t requests;
    if (!mtp_log_obj_int(mtp_log_map_get(rec, "requests"), &requests) || requests < 0)
        return bad_key("requests", "a non-negative integer");
    out->requests = requests;
    if (get_count(rec, "repeats", &out->repeats) || decode_lists(rec, out) ||
        decode_batch_sizes(rec, out))
        return MTP_ERR;
    const msgpack_object *sel = mtp_log_map_get(rec, "selection");
    if (sel && (get_count(sel, "max_prompts", &out->max_prompts) ||
                get_count(sel, "max_prompts_per_category", &out->max_prompts_per_category)))
        return MTP_ERR;
    if (sel)
        mtp_log_obj_uint(mtp_log_map_get(sel, "seed"), &out->seed);
    /* The count is what a report compares the requests with: it must be the
     * product the lists give, or the plan is damaged. */
    int64_t product = (int64_t)out->n_decoders * out->n_sampling * out->n_batch_sizes *
                      out->repeats * mtp_log_plan_turns(out);
    if (product != out->requests)
        return mtp_error_set("plan record: key 'requests': expected decoders x sampling x "
                             "batch sizes x planned turns x repeats = %lld, found %lld",
                             (long long)product, (long long)out->requests);
    return MTP_OK;
}

void mtp_log_plan_add_prompt(struct mtp_log_plan *plan, const char *dataset,
                             const char *prompt_id, const char *category, int prompt_tokens,
                             enum mtp_plan_skip skip)
{
    int n = plan->n_prompts;
    if ((n & (n - 1)) == 0) /* powers of two: grow */
        plan->prompts = mtp_xrealloc(plan->prompts, (size_t)(n ? 2 * n : 1) * sizeof *plan->prompts);
    plan->prompts[n] = (struct mtp_plan_prompt){
        .dataset = mtp_xstrdup(dataset), .prompt_id = mtp_xstrdup(prompt_id),
        .category = mtp_xstrdup(category), .prompt_tokens = prompt_tokens, .skip = skip,
        .turns = 1, .turns_total = 1};
    plan->n_prompts++;
}

int64_t mtp_log_plan_turns(const struct mtp_log_plan *plan)
{
    int64_t n = 0;
    for (int i = 0; i < plan->n_prompts; i++)
        n += plan->prompts[i].skip == MTP_PLAN_RUN ? plan->prompts[i].turns : 0;
    return n;
}

int mtp_log_plan_count(const struct mtp_log_plan *plan, enum mtp_plan_skip skip)
{
    int n = 0;
    for (int i = 0; i < plan->n_prompts; i++)
        n += plan->prompts[i].skip == skip;
    return n;
}

void mtp_log_plan_free(struct mtp_log_plan *plan)
{
    for (int i = 0; i < plan->n_decoders; i++)
        free(plan->decoders[i]);
    free(plan->decoders);
    free(plan->sampling);
    free(plan->batch_sizes);
    for (int i = 0; i < plan->n_prompts; i++) {
        free(plan->prompts[i].dataset);
        free(plan->prompts[i].prompt_id);
        free(plan->prompts[i].category);
    }
    free(plan->prompts);
    memset(plan, 0, sizeof *plan);
}
