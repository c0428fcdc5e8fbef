/*
 * runner_prompts.c - which prompts a run decodes, and what it skipped: the
 * datasets, the selection (max_prompts from the top of each file, or
 * max_prompts_per_category drawn with the seed), tokenization, and the skips
 * (max_prompt_tokens, the model's position limit). Everything lands in
 * r->plan, which the runner logs as the "plan" record (log_plan.h), so a
 * report can say what a run left out.
 */
#include <stdlib.h> /* defines: free, qsort */
#include <string.h> /* defines: strcmp, strlen */

#include "../core/error.h"
#include "../engine/limits.h"
#include "../engine/rng.h" /* defines: mtp_rng_seed_request */
#include "conversation.h"
#include "runner_internal.h"
#include "spec_tree.h" /* defines: mtp_spec_decoder_step_drafts */

/* Skipped prompts whose warning line is printed before the summary line
 * (all of them with --verbose). */
enum { SKIP_WARNINGS_SHOWN = 3 };

/* Every dataset, fully validated. When prompts can be skipped without taking
 * a place (max_prompt_tokens) or are drawn per category, every line is kept
 * and the selection happens here. */
int mtp_runner_load_datasets(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    r->ds = mtp_xcalloc((size_t)s->n_datasets, sizeof *r->ds);
    bool all = s->max_prompt_tokens > 0 || s->max_prompts_per_category > 0;
    int limit = all ? 0 : s->max_prompts;
    for (int i = 0; i < s->n_datasets; i++)
        if (mtp_dataset_load(s->datasets[i], limit, &r->ds[i]))
            return MTP_ERR;
    return MTP_OK;
}

int mtp_runner_load_templates(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    r->templates = mtp_xcalloc((size_t)s->n_datasets, sizeof *r->templates);
    for (int i = 0; i < s->n_datasets; i++)
        if (mtp_chat_template_load(s->chat_templates[i], s->model_dir, r->tok, &r->templates[i]))
            return mtp_error_wrap("SPEC: %s: datasets[%d] (%s): ", s->path, i,
                                  s->dataset_names[i]);
    return MTP_OK;
}

/* The ids of TURN of prompt P with empty ANSWERS (NULL: turn 0); ids must fit
 * the model's vocabulary. */
static int turn_ids(struct mtp_runner *r, int di, const struct mtp_prompt *p, int turn,
                    const struct mtp_turn_answer *answers, int32_t **ids, int *n)
{
    if (mtp_conversation_ids(&r->templates[di], r->tok, p, turn, answers, ids, n))
        return mtp_error_wrap("DATASET: %s:%d: ", r->spec.datasets[di], p->line);
    int V = r->model->cfg.vocab_size;
    for (int i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= V)
            return mtp_error_set("DATASET: %s:%d: token id %d is outside the model's vocabulary "
                                 "(%d): tokenizer and model do not match",
                                 r->spec.datasets[di], p->line, (*ids)[i], V);
    return MTP_OK;
}

/* Turn 0's ids, then how many turns run: turn t runs when its prompt, bounded
 * by rendering it with empty answers plus max_new_tokens per earlier answer,
 * fits the model's positions with its own max_new_tokens and drafts (exact
 * for template "none", conversation.h; a template's re-encoded answers are
 * checked again when the turn runs). Rendering every turn here also fails a
 * broken template before any decoding. */
static int plan_turns(struct mtp_runner *r, int di, const struct mtp_prompt *p,
                      struct mtp_run_prompt *rp)
{
    const struct mtp_spec *s = &r->spec;
    if (turn_ids(r, di, p, 0, NULL, &rp->ids, &rp->n))
        return MTP_ERR;
    rp->n_turns = 1;
    rp->max_n = rp->n;
    struct mtp_turn_answer *empty = mtp_xcalloc((size_t)p->n_turns, sizeof *empty);
    int rc = MTP_OK;
    bool fits = true;
    for (int t = 1; rc == MTP_OK && t < p->n_turns; t++) {
        int32_t *ids;
        int n;
        if ((rc = turn_ids(r, di, p, t, empty, &ids, &n)))
            break;
        free(ids);
        long long bound = (long long)n + (long long)t * s->max_new_tokens;
        fits = fits && bound <= INT32_MAX &&
               mtp_limits_request_fits(&r->model->cfg, (int)bound, s->max_new_tokens,
                                       mtp_runner_max_depth(s));
        if (fits) {
            rp->n_turns = t + 1;
            rp->max_n = (int)bound;
        }
    }
    free(empty);
    return rc;
}

int mtp_runner_max_depth(const struct mtp_spec *s)
{
    int depth = 0;
    for (int i = 0; i < s->n_decoders; i++)
        if (mtp_spec_decoder_step_drafts(&s->decoders[i]) > depth)
            depth = mtp_spec_decoder_step_drafts(&s->decoders[i]);
    return depth;
}

/* ---- the order prompts are considered in ----------------------------------- */

struct candidate {
    int index;            /* into the dataset's prompts */
    const char *category; /* borrowed from the prompt */
    uint32_t rank;        /* the seeded draw (per-category selection) */
};

/* Category, then the seeded rank, then file order: the first N of each
 * category in this order are its sample. */
static int by_category_rank(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    int c = strcmp(x->category, y->category);
    if (!c)
        c = (x->rank > y->rank) - (x->rank < y->rank);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The dataset's prompts in the order the selection considers them. The rank
 * is keyed by (seed, dataset, question_id) like a request's stream, so the
 * draw does not depend on the file's order or on other prompts. */
static struct candidate *candidates(const struct mtp_runner *r, int di)
{
    const struct mtp_dataset *ds = &r->ds[di];
    struct candidate *c = mtp_xcalloc((size_t)ds->n_prompts + 1, sizeof *c);
    for (int i = 0; i < ds->n_prompts; i++) {
        c[i].index = i;
        c[i].category = ds->prompts[i].category;
        if (r->spec.max_prompts_per_category <= 0)
            continue;
        struct mtp_rng rng;
        struct mtp_rng_request_key key = {.seed = r->spec.seed, .dataset = ds->name,
                                          .question_id = ds->prompts[i].id,
                                          .decoder = "max_prompts_per_category"};
        mtp_rng_seed_request(&rng, &key);
        c[i].rank = mtp_rng_next_u32(&rng);
    }
    if (r->spec.max_prompts_per_category > 0 && ds->n_prompts > 1)
        qsort(c, (size_t)ds->n_prompts, sizeof *c, by_category_rank);
    return c;
}

/* ---- skips -------------------------------------------------------------------- */

bool mtp_runner_speaks(const struct mtp_runner *r)
{
    /* Set up before the shard state exists: MPI rank 0 speaks for the job. */
    return !r->opt->quiet && (!r->opt->mpi || r->opt->shard.rank == 0);
}

static void plan_skip(struct mtp_runner *r, int di, const struct mtp_prompt *p, int n_tokens,
                      enum mtp_plan_skip why)
{
    mtp_log_plan_add_prompt(&r->plan, r->spec.dataset_names[di], p->id, p->category, n_tokens,
                            why);
    int shown = r->plan.n_prompts - mtp_log_plan_count(&r->plan, MTP_PLAN_RUN);
    if (!mtp_runner_speaks(r) || (!r->opt->verbose && shown > SKIP_WARNINGS_SHOWN))
        return;
    if (why == MTP_PLAN_SKIP_POSITIONS)
        fprintf(stderr, "mtpbench: warning: skipping prompt %s of %s (%s): %d tokens + "
                        "max_new_tokens %d + depth %d exceed the model's %d positions\n",
                p->id, r->spec.dataset_names[di], p->category, n_tokens, r->spec.max_new_tokens,
                mtp_runner_max_depth(&r->spec), mtp_limits_max_positions(&r->model->cfg));
    else
        fprintf(stderr, "mtpbench: warning: skipping prompt %s of %s (%s): %d tokens exceed "
                        "max_prompt_tokens %d\n",
                p->id, r->spec.dataset_names[di], p->category, n_tokens,
                r->spec.max_prompt_tokens);
}

/* Consider prompt PI of dataset DI: planned, skipped, or (when it would take
 * a place) counted in *TAKEN. */
static int consider(struct mtp_runner *r, int di, int pi, int *taken)
{
    const struct mtp_spec *s = &r->spec;
    const struct mtp_prompt *p = &r->ds[di].prompts[pi];
    struct mtp_run_prompt *rp = &r->prompts[r->n_prompts];
    if (plan_turns(r, di, p, rp))
        return MTP_ERR;
    enum mtp_plan_skip why = MTP_PLAN_RUN;
    if (s->max_prompt_tokens > 0 && rp->n > s->max_prompt_tokens)
        why = MTP_PLAN_SKIP_PROMPT_TOKENS; /* does not take a place */
    else if (!mtp_limits_request_fits(&r->model->cfg, rp->n, s->max_new_tokens,
                                      mtp_runner_max_depth(s)))
        why = MTP_PLAN_SKIP_POSITIONS; /* takes its place: the set does not depend on the model */
    if (why != MTP_PLAN_SKIP_PROMPT_TOKENS)
        (*taken)++;
    if (why != MTP_PLAN_RUN) {
        plan_skip(r, di, p, rp->n, why);
        free(rp->ids);
        rp->ids = NULL;
        return MTP_OK;
    }
    rp->dataset = di;
    rp->p = p;
    r->n_prompts++;
    return MTP_OK;
}

static int by_line(const void *a, const void *b)
{
    const struct mtp_run_prompt *x = a, *y = b;
    return (x->p->line > y->p->line) - (x->p->line < y->p->line);
}

/* The prompts of dataset DI that run, appended to r->prompts in file order. */
static int select_dataset(struct mtp_runner *r, int di)
{
    const struct mtp_spec *s = &r->spec;
    const struct mtp_dataset *ds = &r->ds[di];
    struct candidate *c = candidates(r, di);
    int first = r->n_prompts, taken = 0, rc = MTP_OK;
    int quota = s->max_prompts_per_category > 0 ? s->max_prompts_per_category : s->max_prompts;
    for (int i = 0; rc == MTP_OK && i < ds->n_prompts; i++) {
        if (s->max_prompts_per_category > 0 && i > 0 &&
            strcmp(c[i].category, c[i - 1].category) != 0)
            taken = 0; /* a new category */
        if (quota > 0 && taken == quota)
            continue;
        rc = consider(r, di, c[i].index, &taken);
    }
    free(c);
    int n = r->n_prompts - first;
    if (n > 1)
        qsort(r->prompts + first, (size_t)n, sizeof *r->prompts, by_line);
    return rc;
}

static void plan_header(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    struct mtp_log_plan *pl = &r->plan;
    pl->repeats = s->repeats;
    pl->n_decoders = s->n_decoders;
    pl->decoders = mtp_xcalloc((size_t)s->n_decoders, sizeof *pl->decoders);
    for (int i = 0; i < s->n_decoders; i++)
        pl->decoders[i] = mtp_xstrdup(s->decoders[i].name);
    pl->n_sampling = s->n_sampling;
    pl->sampling = mtp_xcalloc((size_t)s->n_sampling, sizeof *pl->sampling);
    for (int i = 0; i < s->n_sampling; i++)
        pl->sampling[i] = (struct mtp_plan_sampling){s->sampling[i].temperature,
                                                     s->sampling[i].top_p, s->sampling[i].top_k};
    mtp_log_plan_set_batch_sizes(pl, s->batch_sizes, s->n_batch_sizes);
    pl->max_prompts = s->max_prompts;
    pl->max_prompts_per_category = s->max_prompts_per_category;
    pl->seed = s->seed;
}

int mtp_runner_prepare_prompts(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    int cap = 0;
    /* No prompt at all can fit: that is a bad spec for this model, not a skip. */
    if (mtp_limits_check_request(&r->model->cfg, s->model_dir, 1, s->max_new_tokens,
                                 mtp_runner_max_depth(s)))
        return mtp_error_wrap("SPEC: %s: key 'max_new_tokens': ", s->path);
    for (int i = 0; i < s->n_datasets; i++)
        cap += r->ds[i].n_prompts;
    r->prompts = mtp_xcalloc((size_t)(cap > 0 ? cap : 1), sizeof *r->prompts);
    plan_header(r);
    for (int di = 0; di < s->n_datasets; di++)
        if (select_dataset(r, di))
            return MTP_ERR;
    for (int i = 0; i < r->n_prompts; i++) {
        const struct mtp_run_prompt *rp = &r->prompts[i];
        r->prompts[i].index = i;
        mtp_log_plan_add_prompt(&r->plan, s->dataset_names[rp->dataset], rp->p->id,
                                rp->p->category, rp->n, MTP_PLAN_RUN);
        r->plan.prompts[r->plan.n_prompts - 1].turns = rp->n_turns;
        r->plan.prompts[r->plan.n_prompts - 1].turns_total = rp->p->n_turns;
    }
    r->plan.requests = (int64_t)s->n_decoders * s->n_sampling * s->n_batch_sizes *
                       mtp_log_plan_turns(&r->plan) * s->repeats;
    if (r->n_prompts == 0)
        return mtp_error_set("SPEC: %s: no prompt to run (datasets empty, or every prompt is "
                             "longer than max_prompt_tokens = %d or than the model's %d "
                             "positions allow: %d skipped)",
                             s->path, s->max_prompt_tokens,
                             mtp_limits_max_positions(&r->model->cfg), r->plan.n_prompts);
    return MTP_OK;
}

/* ---- the one-line summary of skips ----------------------------------------- */

struct cat_count {
    const char *category;
    int n;
};

static int by_count_desc(const void *a, const void *b)
{
    const struct cat_count *x = a, *y = b;
    return x->n != y->n ? (x->n < y->n) - (x->n > y->n) : strcmp(x->category, y->category);
}

/* " (rag 80, summarization 76)": the skips of WHY by category, most first. */
static void print_categories(FILE *f, const struct mtp_log_plan *pl, enum mtp_plan_skip why)
{
    struct cat_count *cc = mtp_xcalloc((size_t)pl->n_prompts + 1, sizeof *cc);
    int n = 0;
    for (int i = 0; i < pl->n_prompts; i++) {
        if (pl->prompts[i].skip != why)
            continue;
        int j = 0;
        while (j < n && strcmp(cc[j].category, pl->prompts[i].category) != 0)
            j++;
        if (j == n)
            cc[n++].category = pl->prompts[i].category;
        cc[j].n++;
    }
    qsort(cc, (size_t)n, sizeof *cc, by_count_desc);
    for (int j = 0; j < n; j++)
        fprintf(f, "%s%s %d", j ? ", " : " (", cc[j].category, cc[j].n);
    fprintf(f, "%s", n ? ")" : "");
    free(cc);
}

/* "not running 12 later turns of 10 prompts: ..." (multi-turn prompts). */
static void print_turn_skips(const struct mtp_runner *r, FILE *f)
{
    const struct mtp_log_plan *pl = &r->plan;
    int turns = 0, prompts = 0;
    for (int i = 0; i < pl->n_prompts; i++) {
        const struct mtp_plan_prompt *p = &pl->prompts[i];
        if (p->skip == MTP_PLAN_RUN && p->turns < p->turns_total) {
            turns += p->turns_total - p->turns;
            prompts++;
        }
    }
    if (turns > 0)
        fprintf(f, "not running %d later turns of %d prompts: the conversation would exceed the "
                   "model's %d positions (earlier turns + %d new tokens per answer)\n",
                turns, prompts, mtp_limits_max_positions(&r->model->cfg),
                r->spec.max_new_tokens);
}

void mtp_runner_print_skips(const struct mtp_runner *r, FILE *f)
{
    const struct mtp_log_plan *pl = &r->plan;
    int planned = mtp_log_plan_count(pl, MTP_PLAN_RUN);
    int skipped = pl->n_prompts - planned;
    print_turn_skips(r, f);
    if (skipped == 0)
        return;
    fprintf(f, "skipped %d of %d prompts:", skipped, pl->n_prompts);
    const char *sep = "";
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++) {
        int n = mtp_log_plan_count(pl, (enum mtp_plan_skip)why);
        if (n == 0)
            continue;
        if (why == MTP_PLAN_SKIP_POSITIONS)
            fprintf(f, "%s %d past the model's %d positions (prompt + max_new_tokens + depth)",
                    sep, n, mtp_limits_max_positions(&r->model->cfg));
        else
            fprintf(f, "%s %d over max_prompt_tokens %d", sep, n, r->spec.max_prompt_tokens);
        print_categories(f, pl, (enum mtp_plan_skip)why);
        sep = ";";
    }
    fprintf(f, "%s\n", skipped > SKIP_WARNINGS_SHOWN && !r->opt->verbose
                           ? " (each one: run --verbose)" : "");
}
