/*
 * runner.c - `mtpbench run` (see runner.h): validation and setup, warm-up,
 * the request loop with resume, logging, and the summary.
 */
#include "runner.h"

#include <errno.h>    /* defines: errno */
#include <signal.h>   /* defines: sigaction, SIGINT, SIGTERM */
#include <stdlib.h>   /* defines: free */
#include <string.h>   /* defines: strcmp, strerror */
#include <sys/stat.h> /* defines: mkdir, stat */
#include <time.h>     /* defines: clock_gettime */

#include "../core/error.h"
#include "../engine/limits.h"
#include "runner_internal.h"
#include "runner_shard.h"
#include "spec_tree.h"

static volatile sig_atomic_t interrupted;

uint64_t mtp_runner_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

bool mtp_runner_interrupted(void) { return interrupted != 0; }

char *mtp_runner_log_path(const char *out_dir, const char *spec_name)
{
    size_t n = strlen(out_dir) + strlen(spec_name) + 16;
    char *p = mtp_xmalloc(n);
    snprintf(p, n, "%s/%s.msgpack", out_dir, spec_name);
    return p;
}

/* mkdir -p DIR. */
static int make_dirs(const char *dir)
{
    char *p = mtp_xstrdup(dir);
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int rc = mtp_error_set("cannot create output directory %s: %s", p,
                                       strerror(errno));
                free(p);
                return rc;
            }
            *s = c;
        }
        if (c == '\0')
            break;
    }
    free(p);
    return MTP_OK;
}

static int load_tokenizer(struct mtp_runner *r)
{
    size_t n = strlen(r->spec.model_dir) + 32;
    char *path = mtp_xmalloc(n);
    snprintf(path, n, "%s/tokenizer.json", r->spec.model_dir);
    int rc = mtp_tokenizer_load(path, &r->tok);
    if (!rc)
        rc = mtp_limits_check_vocab(&r->model->cfg, r->spec.model_dir,
                                    mtp_tokenizer_vocab_size(r->tok), path);
    free(path);
    if (rc)
        return mtp_error_wrap("model %s: ", r->spec.model_dir);
    const struct mtp_config *c = &r->model->cfg;
    r->eos = c->eos_token_id >= 0 ? c->eos_token_id : mtp_tokenizer_eos_id(r->tok);
    return MTP_OK;
}

static int create_engine(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    int max_depth = 0, max_prompt = 0;
    for (int i = 0; i < s->n_decoders; i++)
        if (mtp_spec_decoder_step_drafts(&s->decoders[i]) > max_depth)
            max_depth = mtp_spec_decoder_step_drafts(&s->decoders[i]); /* a tree: its nodes */
    for (int i = 0; i < r->n_prompts; i++) /* the longest planned turn */
        if (r->prompts[i].max_n > max_prompt)
            max_prompt = r->prompts[i].max_n;
    /* The CUDA device is the runner's choice (one per MPI rank), not the spec's. */
    int rc = s->backend == MTP_SPEC_BACKEND_CUDA
                 ? mtp_backend_cuda_create(r->opt->device, &r->be)
                 : mtp_backend_create(mtp_spec_backend_name(s->backend), s->threads, &r->be);
    if (rc)
        return MTP_ERR;
    /* B sequences of their own caches; a verification over all of them in
     * one forward (B x (K+1) tokens). */
    int max_b = mtp_spec_max_batch_size(s);
    struct mtp_engine_options eo = {
        .max_positions = mtp_decode_positions_needed(max_prompt, s->max_new_tokens, max_depth),
        .max_batch = max_b * (max_depth + 1) > 128 ? max_b * (max_depth + 1) : 128,
        .max_seqs = max_b,
    };
    return mtp_engine_create(r->model, r->be, &eo, &r->engine);
}

/* MTP decoders on a checkpoint whose MTP tensors are absent: one clear error. */
static int check_mtp_present(const struct mtp_runner *r)
{
    const struct mtp_model *m = r->model;
    for (int i = 0; m->mtp_announced_absent > 0 && i < r->spec.n_decoders; i++)
        if (mtp_spec_decoder_drafts(r->spec.decoders[i].type))
            return mtp_error_set("SPEC: %s: key 'decoders[%d]': MTP decoding needs the MTP "
                                 "modules, but %s/config.json announces %d "
                                 "(num_nextn_predict_layers) and the checkpoint has none of "
                                 "their tensors (transformers' save_pretrained drops them)",
                                 r->spec.path, i, m->dir, m->mtp_announced_absent);
    return MTP_OK;
}

/* Every decoder against the engine (e.g. a depth the backend cannot verify
 * batch-invariantly), before the first request. */
static int check_decoders(const struct mtp_runner *r)
{
    for (int i = 0; i < r->spec.n_decoders; i++) {
        struct mtp_decode_params dp = mtp_runner_decode_params(r, i, 0, &r->prompts[0], 0);
        if (mtp_decode_check(r->engine, &dp))
            return mtp_error_wrap("SPEC: %s: key 'decoders[%d]': ", r->spec.path, i);
    }
    return MTP_OK;
}

/* Multi-turn conversations carry one session from turn to turn; a batch
 * run decodes single requests, so they run at batch size 1 only. */
static int check_batch_turns(const struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    if (mtp_spec_max_batch_size(s) == 1)
        return MTP_OK;
    for (int i = 0; i < r->n_prompts; i++)
        if (r->prompts[i].n_turns > 1)
            return mtp_error_set("SPEC: %s: key 'batch_size': prompt %s of dataset %s has %d "
                                 "turns; expected batch_size 1 for multi-turn prompts (a "
                                 "conversation runs on one session), found %d", s->path,
                                 r->prompts[i].p->id, s->dataset_names[r->prompts[i].dataset],
                                 r->prompts[i].n_turns, mtp_spec_max_batch_size(s));
    return MTP_OK;
}

/* Everything that can fail on bad input, before any decoding. */
static int setup(struct mtp_runner *r, const char *spec_path)
{
    if (mtp_spec_load(spec_path, &r->spec) || mtp_runner_load_datasets(r))
        return MTP_ERR;
    if (mtp_model_load(r->spec.model_dir, &r->model))
        return MTP_ERR;
    if (check_mtp_present(r) ||
        mtp_spec_check_model(&r->spec, r->model->cfg.num_nextn_predict_layers) ||
        mtp_spec_check_draft_vocab(&r->spec, r->model->cfg.vocab_size))
        return MTP_ERR;
    if (load_tokenizer(r) || mtp_runner_load_templates(r) || mtp_runner_prepare_prompts(r) ||
        check_batch_turns(r))
        return MTP_ERR;
    if (mtp_runner_speaks(r))
        mtp_runner_print_skips(r, stderr);
    if (create_engine(r))
        return MTP_ERR;
    return check_decoders(r);
}

static void teardown(struct mtp_runner *r)
{
    mtp_progress_finish(r->progress);
    mtp_runner_shard_free(r);
    mtp_log_close(r->log);
    mtp_log_keyset_free(r->finished);
    free(r->log_path);
    mtp_engine_free(r->engine);
    mtp_backend_free(r->be);
    for (int i = 0; r->templates && i < r->spec.n_datasets; i++)
        mtp_chat_template_free(&r->templates[i]);
    free(r->templates);
    mtp_tokenizer_free(r->tok);
    mtp_model_free(r->model);
    for (int i = 0; i < r->n_prompts; i++)
        free(r->prompts[i].ids);
    free(r->prompts);
    mtp_log_plan_free(&r->plan);
    for (int i = 0; r->ds && i < r->spec.n_datasets; i++)
        mtp_dataset_free(&r->ds[i]);
    free(r->ds);
    mtp_spec_free(&r->spec);
}

/* The commit of the source tree, for provenance (NULL when unknown). */
static char *git_commit(void)
{
    const char *env = getenv("MTP_GIT_COMMIT");
    if (env && *env)
        return mtp_xstrdup(env);
    FILE *f = popen("git -C '" MTP_SOURCE_DIR "' rev-parse HEAD 2>/dev/null", "r");
    if (!f)
        return NULL;
    char buf[64] = {0};
    char *ok = fgets(buf, sizeof buf, f);
    pclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return ok && strlen(buf) == 40 ? mtp_xstrdup(buf) : NULL;
}

static int write_run_record(struct mtp_runner *r, const char *commit)
{
    char cfg_path[4096], hash[32];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", r->spec.model_dir);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)mtp_config_hash_file(cfg_path));
    struct mtp_param_counts pc;
    mtp_model_param_counts(r->model, &pc);
    const struct mtp_config *c = &r->model->cfg;
    struct mtp_log_run_info info = {
        .spec_json = r->spec.json_text,
        .model = {.dir = r->spec.model_dir, .config_hash = hash,
                  .num_layers = c->num_hidden_layers,
                  .num_nextn_predict_layers = c->num_nextn_predict_layers,
                  .vocab_size = c->vocab_size, .params = pc.total},
        .git_commit = commit,
        .backend = mtp_spec_backend_name(r->spec.backend),
        /* The threads actually used: a spec's 0 means the CPUs available. */
        .threads = mtp_backend_cpu_threads(r->spec.threads),
    };
    /* The plan follows the run record, so a report can tell a partial log
     * from a finished one and name what was skipped (log_plan.h). */
    if (mtp_log_write_run(r->log, &info))
        return MTP_ERR;
    return mtp_log_write_plan(r->log, &r->plan);
}

/* Create the log, or reopen it with --resume (then finished keys are skipped). */
static int open_log(struct mtp_runner *r, bool *complete)
{
    const char *dir = r->opt->out_dir ? r->opt->out_dir : r->spec.output_dir;
    if (make_dirs(dir))
        return MTP_ERR;
    /* Sharded: the rank log, and what every rank log of the run holds. */
    if (r->shard == NULL && r->opt->shard.size > 0 && mtp_runner_shard_prepare(r, dir))
        return MTP_ERR;
    if (!r->log_path)
        r->log_path = mtp_runner_log_path(dir, r->spec.name);
    struct stat st;
    bool exists = stat(r->log_path, &st) == 0;
    char *commit = git_commit();
    int rc = MTP_OK;
    *complete = false;
    if (!exists || !r->opt->resume) {
        if (exists)
            rc = mtp_error_set("LOG %s exists: continue it with --resume, or move it away",
                               r->log_path);
        else if (!(rc = mtp_log_open(r->log_path, NULL, &r->log)))
            rc = write_run_record(r, commit);
        r->finished = mtp_log_keyset_create();
    } else {
        struct mtp_log_resume st_res;
        rc = mtp_log_open_resume(r->log_path, r->spec.json_text, NULL, &r->log, &st_res);
        if (!rc) {
            r->finished = st_res.finished;
            st_res.finished = NULL;
            *complete = st_res.complete;
            if (!st_res.has_run)
                rc = write_run_record(r, commit);
            else if (!st_res.complete)
                rc = mtp_log_write_resume(r->log, commit);
            mtp_log_resume_free(&st_res);
        }
    }
    free(commit);
    if (!rc && r->shard)
        rc = mtp_runner_shard_adopt(r, *complete, complete);
    return rc;
}

static enum mtp_decode_drafting drafting_of(const struct mtp_spec_decoder *d)
{
    if (d->type == MTP_SPEC_DECODER_BASELINE)
        return MTP_DECODE_DRAFTING_NONE;
    return d->drafting == MTP_SPEC_DRAFTING_EXACT ? MTP_DECODE_DRAFTING_EXACT
                                                  : MTP_DECODE_DRAFTING_CHAIN;
}

struct mtp_decode_params mtp_runner_decode_params(const struct mtp_runner *r, int dec, int samp,
                                                  const struct mtp_run_prompt *p, int repeat)
{
    const struct mtp_spec_decoder *d = &r->spec.decoders[dec];
    const struct mtp_spec_sampling *s = &r->spec.sampling[samp];
    struct mtp_decode_params dp = {
        .drafting = drafting_of(d),
        .depth = d->type == MTP_SPEC_DECODER_BASELINE ? 0 : d->depth,
        .chain_module = d->module,
        .tree = d->tree,
        .adaptive = d->type != MTP_SPEC_DECODER_ADAPTIVE ? MTP_DECODE_ADAPTIVE_OFF
                    : d->rule == MTP_SPEC_ADAPTIVE_DRAFT ? MTP_DECODE_ADAPTIVE_DRAFT
                                                         : MTP_DECODE_ADAPTIVE_CUMULATIVE,
        .adaptive_threshold = d->threshold,
        .draft_vocab = d->type == MTP_SPEC_DECODER_BASELINE ? 0 : d->draft_vocab,
        .wiring = d->wiring,
        .sampling = {.temperature = (float)s->temperature, .top_p = (float)s->top_p,
                     .top_k = s->top_k},
        .max_new_tokens = r->spec.max_new_tokens,
        .eos_token_id = r->eos,
    };
    struct mtp_rng_request_key key = {
        .seed = r->spec.seed, .dataset = r->spec.dataset_names[p->dataset],
        .question_id = p->p->id, .repeat = (uint64_t)repeat, .decoder = d->name,
        .temperature = s->temperature, .top_p = s->top_p, .top_k = s->top_k};
    mtp_rng_seed_request(&dp.rng, &key);
    return dp;
}

/* Warm-up requests (not logged): each of the first `warmup` prompts under
 * every sampling setting and every decoder, so that no configuration meets
 * cold caches or first-touch page faults in its first measured request. */
static int warm_up(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    for (int i = 0; i < s->warmup && !interrupted; i++)
        for (int samp = 0; samp < s->n_sampling && !interrupted; samp++)
            for (int dec = 0; dec < s->n_decoders && !interrupted; dec++) {
                const struct mtp_run_prompt *p = &r->prompts[i % r->n_prompts];
                struct mtp_decode_params dp = mtp_runner_decode_params(r, dec, samp, p, 0);
                struct mtp_decode_result res;
                if (mtp_decode_run(r->engine, &dp, p->ids, p->n, &res))
                    return mtp_error_wrap("warm-up request %d (%s): ", i, s->decoders[dec].name);
                mtp_decode_result_free(&res);
            }
    return MTP_OK;
}

/* The log record of one finished request (pointers borrowed from RES). */
static void fill_record(const struct mtp_runner *r, int dec, int samp,
                        const struct mtp_run_prompt *p, int repeat,
                        const struct mtp_runner_turn *turn,
                        const struct mtp_decode_result *res, struct mtp_request_record *rec,
                        char *tree_text, size_t tree_cap)
{
    const struct mtp_spec_decoder *d = &r->spec.decoders[dec];
    const struct mtp_spec_sampling *s = &r->spec.sampling[samp];
    struct mtp_wiring w = d->wiring;
    mtp_wiring_resolve(&w, &r->model->cfg);
    *rec = (struct mtp_request_record){
        .decoder = d->name,
        .mode = d->type,
        .depth = d->type == MTP_SPEC_DECODER_BASELINE ? 0 : d->depth,
        .drafting = d->drafting,
        .sampling_index = samp,
        .temperature = s->temperature,
        .top_p = s->top_p,
        .top_k = s->top_k,
        .seed = r->spec.seed,
        .dataset = r->spec.dataset_names[p->dataset],
        .category = p->p->category,
        .prompt_id = p->p->id,
        .repeat = repeat,
        .turn = turn->index,
        .prompt_tokens = turn->n,
        .prompt_ids = (int32_t *)turn->ids, /* borrowed, like every pointer here */
        .prompt_cached = turn->cached,
        .batch_size = turn->batch_size > 0 ? turn->batch_size : 1,
        .n_output = res->n_output,
        .output_tokens = res->output,
        .n_steps = res->n_steps,
        .accepted = res->accepted,
        .accepted_uncut = d->type == MTP_SPEC_DECODER_BASELINE ? NULL : res->accepted_uncut,
        .drafted = d->type == MTP_SPEC_DECODER_ADAPTIVE ? res->drafted : NULL,
        .adaptive_threshold = d->type == MTP_SPEC_DECODER_ADAPTIVE ? d->threshold : -1,
        .draft_vocab = d->type == MTP_SPEC_DECODER_BASELINE ? 0 : d->draft_vocab,
        .adaptive_rule = d->type == MTP_SPEC_DECODER_ADAPTIVE
                             ? (char *)mtp_spec_adaptive_rule_name(d->rule) : NULL,
        .draft_ns = res->draft_ns,
        .verify_ns = res->verify_ns,
        .accept_ns = res->accept_ns,
        .update_ns = res->update_ns,
        .ttft_ns = res->ttft_ns,
        .total_ns = res->total_ns,
        .n_moe_layers = res->n_moe_layers,
        .experts_touched = res->n_moe_layers > 0 ? res->experts_touched : NULL,
        .stop_reason = res->stop == MTP_DECODE_STOP_EOS ? MTP_LOG_STOP_EOS
                                                        : MTP_LOG_STOP_MAX_TOKENS,
    };
    if (d->tree.kind != MTP_TREE_NONE) { /* borrowed too: TREE_TEXT is the caller's */
        mtp_tree_describe(&d->tree, tree_text, (int)tree_cap);
        rec->tree = tree_text;
        rec->tree_nodes = res->tree_nodes;
        rec->tree_node = res->tree_node;
        rec->tree_depth = res->tree_depth;
        rec->tree_ranks = res->tree_ranks;
    }
    /* Value names are static strings; the record only borrows them. */
    for (int f = 0; mtp_spec_decoder_drafts(d->type) && f < MTP_WIRING_FIELD_COUNT; f++)
        rec->wiring[f] = (char *)mtp_wiring_value_name(&w, f);
}

int mtp_runner_log_request(struct mtp_runner *r, int dec, int samp,
                           const struct mtp_run_prompt *p, int repeat,
                           const struct mtp_runner_turn *turn,
                           const struct mtp_decode_result *res)
{
    struct mtp_request_record rec;
    char tree_text[MTP_TREE_TEXT_MAX]; /* never cut: issue 28, case 12 */
    fill_record(r, dec, samp, p, repeat, turn, res, &rec, tree_text, sizeof tree_text);
    if (mtp_log_write_request(r->log, &rec))
        return MTP_ERR;
    r->tokens += res->n_output > 0 ? res->n_output - 1 : 0;
    r->steps += res->n_steps;
    r->logged++;
    r->done++;
    if (r->shard)
        mtp_runner_shard_progress(r, r->spec.decoders[dec].name);
    else
        mtp_progress_update(r->progress, r->done, r->tokens, r->steps,
                            r->spec.decoders[dec].name);
    return MTP_OK;
}

bool mtp_runner_should_stop(const struct mtp_runner *r)
{
    return interrupted || (r->opt->max_requests > 0 && r->logged >= r->opt->max_requests);
}

/* Batch size 1: the product of prompts, repeats and decoders, skipping
 * finished keys; stops early on a signal or the max_requests limit. */
static int run_single(struct mtp_runner *r, int samp)
{
    const struct mtp_spec *s = &r->spec;
    /* Decoders innermost: every decoder runs a prompt back to back, so slow
     * drifts of machine load hit the baseline and the MTP decoders alike and
     * cancel in the speedup ratios; the order is rotated per (prompt,
     * repeat), so no decoder always runs first (on a warm or cold cache). */
    for (int pi = 0; pi < r->n_prompts; pi++)
        for (int rep = 0; rep < s->repeats; rep++)
            for (int k = 0; k < s->n_decoders; k++) {
                int dec = (k + pi * s->repeats + rep) % s->n_decoders;
                const struct mtp_run_prompt *p = &r->prompts[pi];
                if (r->shard && !mtp_runner_shard_owns(r, samp, pi, rep))
                    break; /* the unit is another shard's: all its decoders */
                if (mtp_runner_conversation_done(r, dec, samp, p, rep))
                    continue;
                if (mtp_runner_should_stop(r))
                    return MTP_OK;
                /* Every turn of the prompt, each logged as a request. */
                if (mtp_runner_run_conversation(r, dec, samp, p, rep))
                    return MTP_ERR;
            }
    return MTP_OK;
}

/* Sampling settings outermost, then batch sizes in spec order. */
static int run_all(struct mtp_runner *r)
{
    const struct mtp_spec *s = &r->spec;
    for (int samp = 0; samp < s->n_sampling && !mtp_runner_should_stop(r); samp++)
        for (int bi = 0; bi < s->n_batch_sizes && !mtp_runner_should_stop(r); bi++) {
            int B = s->batch_sizes[bi];
            if (B == 1 ? run_single(r, samp) : mtp_runner_run_batches(r, samp, B))
                return MTP_ERR;
        }
    return MTP_OK;
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

/* Decode everything not yet in the log, then the summary record. */
static int run_body(struct mtp_runner *r)
{
    uint64_t t0 = mtp_runner_now_ns();
    r->total = r->plan.requests; /* every planned turn of every prompt */
    r->done = mtp_log_keyset_size(r->finished);
    int64_t shown_total = r->total, shown_done = r->done;
    bool quiet = r->opt->quiet;
    if (r->shard)
        mtp_runner_shard_progress_setup(r, &shown_total, &shown_done, &quiet);
    r->progress = mtp_progress_create(shown_total, quiet);
    mtp_progress_resume_from(r->progress, shown_done);
    struct sigaction old_int, old_term;
    install_signals(&old_int, &old_term);
    int rc = r->shard && !mtp_runner_shard_has_work(r) ? MTP_OK : warm_up(r);
    if (!rc)
        rc = run_all(r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    /* Sharded: the whole job's count (MPI: every rank's, collected here). */
    int64_t in_logs = rc || !r->shard ? mtp_log_writer_requests(r->log) : mtp_runner_shard_end(r);
    mtp_progress_finish(r->progress);
    r->progress = NULL;
    if (rc)
        return rc;
    struct mtp_log_summary sum = {
        .wall_ns = mtp_runner_now_ns() - t0,
        .finished = in_logs == r->total,
    };
    /* A log that says finished takes nothing after its summary. */
    if (!r->log_closed && mtp_log_write_summary(r->log, &sum))
        return MTP_ERR;
    if (!sum.finished && !r->opt->quiet && mtp_runner_shard_leader(r))
        fprintf(stderr, "mtpbench: run stopped after %lld of %lld requests; continue it with "
                        "--resume\n", (long long)in_logs, (long long)r->total);
    return MTP_OK;
}

int mtp_runner_run(const char *spec_path, const struct mtp_runner_options *opt)
{
    struct mtp_runner r;
    memset(&r, 0, sizeof r);
    r.opt = opt;
    bool complete = false;
    int rc = setup(&r, spec_path);
    if (!rc)
        rc = open_log(&r, &complete);
    if (!rc && complete && !opt->quiet && mtp_runner_shard_leader(&r))
        fprintf(stderr, "mtpbench: %s is complete; nothing to do\n", r.log_path);
    if (!rc && !complete)
        rc = run_body(&r);
    if (!rc) {
        if (mtp_log_close(r.log))
            rc = MTP_ERR;
        r.log = NULL;
    }
    if (!rc)
        rc = r.shard ? mtp_runner_shard_print_table(&r, opt->out ? opt->out : stdout)
                     : mtp_runner_print_table(r.log_path, opt->out ? opt->out : stdout);
    if (!rc && mtp_runner_shard_leader(&r))
        mtp_runner_print_skips(&r, opt->out ? opt->out : stdout);
    teardown(&r);
    return rc;
}
