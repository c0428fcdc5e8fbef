/*
 * runner_shard.c - sharded runs: the rank log of this process, what the rank
 * logs of the run already hold, the split, job-wide progress and the
 * end-of-run table (see runner_shard.h). MPI calls go through runner_mpi.h.
 */
#include "runner_shard.h"

#include <dirent.h>   /* defines: opendir, readdir */
#include <errno.h>    /* defines: errno */
#include <jansson.h>  /* defines: json_loads, json_equal */
#include <stdlib.h>   /* defines: free, qsort */
#include <string.h>   /* defines: strcmp, memset */
#include <time.h>     /* defines: clock_gettime */

#include "../core/error.h"
#include "runner_internal.h"
#include "runner_mpi.h"
#include "shard.h"

struct mtp_runner_shard {
    struct mtp_shard me;
    bool mpi;
    int n_units;           /* sampling x prompts x repeats, in run_all's order */
    int *owner;            /* [n_units] rank that runs the unit (-1: nothing left) */
    unsigned char *done;   /* [n_units * n_configs] 1 = in some rank log at the start */
    int64_t done0;         /* requests in the rank logs at the start (whole job) */
    int64_t mine_total;    /* requests of the units this process owns */
    int64_t mine_done0;    /* ... of which already in a log */
    unsigned char *closed; /* [me.size] rank R of this N has a log that says finished: it
                            * takes no more records (MPI gives it no work) */
    bool no_open_rank;     /* MPI: every rank's log says finished (no rank can take work) */
    struct mtp_mpi_counts *per_rank; /* MPI rank 0: latest counts of every rank */
    int n_final;           /* MPI rank 0: ranks that sent their final counts */
    uint64_t last_send_ns; /* MPI ranks > 0: when counts were last sent */
};

/* At most two count messages a second per rank: a display needs no more. */
#define SHARD_SEND_INTERVAL_NS 500000000ull

static uint64_t shard_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int unit_of(const struct mtp_runner *r, int samp, int prompt, int rep)
{
    return (samp * r->n_prompts + prompt) * r->spec.repeats + rep;
}

/* A unit runs every configuration: each decoder at each batch size
 * (configuration c = batch index x decoders + decoder). */
static int n_configs(const struct mtp_runner *r)
{
    return r->spec.n_batch_sizes * r->spec.n_decoders;
}

static const char *config_decoder(const struct mtp_runner *r, int c)
{
    return r->spec.decoders[c % r->spec.n_decoders].name;
}

static int config_batch(const struct mtp_runner *r, int c)
{
    return r->spec.batch_sizes[c / r->spec.n_decoders];
}

/* ---- the rank logs of the run in DIR --------------------------------------- */

struct log_list {
    char **paths;
    int n;
};

static int by_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every DIR/NAME.rank-R-of-N.msgpack, sorted by name so every rank reads
 * them in one order. */
static int list_rank_logs(const char *dir, const char *name, struct log_list *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return mtp_error_set("cannot list output directory %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!mtp_shard_is_log_name(e->d_name, name, NULL, NULL))
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        out->paths = mtp_xrealloc(out->paths, (size_t)(out->n + 1) * sizeof *out->paths);
        out->paths[out->n] = mtp_xmalloc(n);
        snprintf(out->paths[out->n++], n, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (out->n > 1) /* qsort's base must not be NULL, even for 0 elements */
        qsort(out->paths, (size_t)out->n, sizeof *out->paths, by_path);
    return MTP_OK;
}

static void log_list_free(struct log_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
}

/* A rank log of another spec would mean other requests under the same keys. */
static int check_spec(const struct mtp_runner *r, const char *path, const msgpack_object *run)
{
    char *logged = mtp_log_obj_to_json(mtp_log_map_get(run, "spec"));
    json_t *a = logged ? json_loads(logged, 0, NULL) : NULL;
    json_t *b = json_loads(r->spec.json_text, 0, NULL);
    bool same = a && b && json_equal(a, b);
    free(logged);
    json_decref(a);
    json_decref(b);
    if (!same)
        return mtp_error_set("LOG %s: cannot resume: this rank log was written for a different "
                             "spec than %s; move it away or use the original spec",
                             path, r->spec.path);
    return MTP_OK;
}

/* Add the keys of every whole request record of PATH to KEYS; *FINISHED says
 * whether its summary says the job finished. A cut-off last record (a killed
 * rank) is simply not there. */
static int read_keys(const struct mtp_runner *r, const char *path, struct mtp_log_keyset *keys,
                     bool *finished)
{
    *finished = false;
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        return MTP_ERR;
    const msgpack_object *o;
    uint64_t off = 0;
    char type[32];
    int rc;
    while ((rc = mtp_log_reader_next(rd, &o, &off)) == MTP_OK && o) {
        mtp_log_record_type(o, type, sizeof type);
        if (!strcmp(type, "run") && (rc = check_spec(r, path, o)))
            break;
        if (!strcmp(type, "summary")) {
            const msgpack_object *f = mtp_log_map_get(o, "finished");
            *finished = f && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean;
        }
        if (strcmp(type, "request"))
            continue;
        struct mtp_request_record rec;
        if ((rc = mtp_log_decode_request(o, &rec))) {
            mtp_log_request_free(&rec);
            rc = mtp_error_wrap("LOG %s: record at offset %llu: ", path, (unsigned long long)off);
            break;
        }
        mtp_log_keyset_add_record(keys, &rec);
        mtp_log_request_free(&rec);
    }
    mtp_log_reader_close(rd);
    return rc;
}

/* The rank log of R of N in LOGS, or -1. */
static int find_rank_log(const struct log_list *logs, const char *name, int rank, int size)
{
    for (int i = 0; i < logs->n; i++) {
        const char *slash = strrchr(logs->paths[i], '/');
        int lr, ls;
        if (mtp_shard_is_log_name(slash ? slash + 1 : logs->paths[i], name, &lr, &ls) &&
            lr == rank && ls == size)
            return i;
    }
    return -1;
}

/* One rule for every N (issue 28, case 9): when a rank log of N says the whole
 * job finished, all N rank logs of that run existed; one that is gone was moved
 * or deleted, and its requests are missing. That is an error naming it, as
 * `report` makes it, unless --allow-partial asks to run them again. (A rank
 * log missing from an unfinished run is a task that has not started yet, or
 * one killed before it opened its log: the resume simply runs its share.) */
static int check_missing(const struct mtp_runner *r, const char *dir, const struct log_list *logs,
                         const bool *finished)
{
    for (int i = 0; i < logs->n; i++) {
        const char *slash = strrchr(logs->paths[i], '/');
        int rank, size;
        if (!finished[i] ||
            !mtp_shard_is_log_name(slash ? slash + 1 : logs->paths[i], r->spec.name, &rank, &size))
            continue;
        for (int k = 0; k < size; k++) {
            if (find_rank_log(logs, r->spec.name, k, size) >= 0)
                continue;
            char *path = mtp_shard_log_path(dir, r->spec.name, k, size);
            int rc = MTP_OK;
            if (!r->opt->allow_partial)
                rc = mtp_error_set("LOG %s is missing: %s says that %d-rank run finished, so the "
                                   "log was moved or deleted and its requests are gone; restore "
                                   "it, or pass --allow-partial to run them again",
                                   path, logs->paths[i], size);
            else if (!r->opt->quiet)
                fprintf(stderr, "mtpbench: warning: LOG %s is missing (the run finished with "
                                "%d ranks); --allow-partial: its requests run again\n", path,
                        size);
            free(path);
            if (rc)
                return rc;
        }
    }
    return MTP_OK;
}

/* Which ranks of this N already have a log that says finished. */
static void note_closed(struct mtp_runner *r, const struct log_list *logs, const bool *finished)
{
    struct mtp_runner_shard *sh = r->shard;
    for (int k = 0; k < sh->me.size; k++) {
        int i = find_rank_log(logs, r->spec.name, k, sh->me.size);
        sh->closed[k] = i >= 0 && finished[i];
    }
}

/* sh->done from every rank log in DIR (resume), or a refusal to mix a fresh
 * MPI run with the rank logs of an earlier one. */
static int scan_logs(struct mtp_runner *r, const char *dir)
{
    struct mtp_runner_shard *sh = r->shard;
    struct log_list logs;
    if (list_rank_logs(dir, r->spec.name, &logs))
        return MTP_ERR;
    int rc = MTP_OK;
    if (!r->opt->resume) {
        /* --shard tasks of one fresh run start at different times: the other
         * tasks' logs are expected; only this task's own log is refused
         * (runner.c). An MPI run starts all ranks at once: any is stale. */
        if (sh->mpi && logs.n > 0)
            rc = mtp_error_set("LOG %s exists: continue that run with --resume, or move its "
                               "rank logs away", logs.paths[0]);
        log_list_free(&logs);
        return rc;
    }
    struct mtp_log_keyset *keys = mtp_log_keyset_create();
    bool *finished = mtp_xcalloc((size_t)logs.n + 1, sizeof *finished);
    for (int i = 0; rc == MTP_OK && i < logs.n; i++)
        rc = read_keys(r, logs.paths[i], keys, &finished[i]);
    if (rc == MTP_OK)
        rc = check_missing(r, dir, &logs, finished);
    note_closed(r, &logs, finished);
    free(finished);
    const struct mtp_spec *s = &r->spec;
    for (int samp = 0; samp < s->n_sampling; samp++)
        for (int pi = 0; pi < r->n_prompts; pi++)
            for (int rep = 0; rep < s->repeats; rep++)
                for (int c = 0; c < n_configs(r); c++) {
                    const struct mtp_run_prompt *p = &r->prompts[pi];
                    sh->done[(size_t)unit_of(r, samp, pi, rep) * (size_t)n_configs(r) + c] =
                        /* Turns are logged in order: the last one ends the unit. */
                        mtp_log_keyset_contains_batch(keys, config_decoder(r, c), samp,
                                                      s->dataset_names[p->dataset], p->p->id,
                                                      rep, p->n_turns - 1, config_batch(r, c));
                }
    mtp_log_keyset_free(keys);
    log_list_free(&logs);
    return rc;
}

/* Rank 0 scans, then everyone learns the outcome and the done map from it,
 * so all ranks split the same work and no rank writes while rank 0 reads. */
static int scan_logs_mpi(struct mtp_runner *r, const char *dir, size_t n_req)
{
    int status = 0;
    if (r->shard->me.rank == 0)
        status = scan_logs(r, dir) ? 1 : 0;
    mtp_mpi_bcast(&status, sizeof status);
    if (status)
        return r->shard->me.rank == 0
                   ? MTP_ERR
                   : mtp_error_set("rank %d: stopped because rank 0 could not set up the run "
                                   "(its error is above)", r->shard->me.rank);
    mtp_mpi_bcast(r->shard->done, n_req);
    mtp_mpi_bcast(r->shard->closed, (size_t)r->shard->me.size);
    return MTP_OK;
}

/* OWNER over the ranks that can take records: the k-th open rank for k. MPI
 * only: a rank whose log says finished cannot append (--allow-partial). */
static int remap_open_ranks(struct mtp_runner_shard *sh, int n_units)
{
    int *open = mtp_xcalloc((size_t)sh->me.size, sizeof *open), n_open = 0;
    for (int k = 0; k < sh->me.size; k++)
        if (!sh->closed[k])
            open[n_open++] = k;
    for (int u = 0; u < n_units; u++)
        if (sh->owner[u] >= 0)
            sh->owner[u] = n_open ? open[sh->owner[u]] : -1;
    free(open);
    return n_open;
}

/* Unit costs and owners. MPI: only what is missing, over the new N (all ranks
 * know the same done map), among the ranks whose logs can take more. --shard:
 * the whole spec, as every task splits it. */
static void split(struct mtp_runner *r)
{
    struct mtp_runner_shard *sh = r->shard;
    int n_dec = n_configs(r);
    double *cost = mtp_xcalloc((size_t)sh->n_units, sizeof *cost);
    for (int u = 0; u < sh->n_units; u++) {
        int pi = (u / r->spec.repeats) % r->n_prompts;
        int left = 0;
        for (int d = 0; d < n_dec; d++)
            left += !sh->done[(size_t)u * (size_t)n_dec + d];
        sh->done0 += n_dec - left;
        int counted = sh->mpi ? left : n_dec;
        cost[u] = counted * mtp_shard_request_cost(r->prompts[pi].n, r->spec.max_new_tokens);
    }
    int n_open = sh->me.size;
    for (int k = 0; sh->mpi && k < sh->me.size; k++)
        n_open -= sh->closed[k];
    sh->owner = mtp_shard_split(cost, sh->n_units, n_open > 0 ? n_open : 1);
    if (sh->mpi)
        sh->no_open_rank = remap_open_ranks(sh, sh->n_units) == 0;
    for (int u = 0; u < sh->n_units; u++) {
        if (sh->owner[u] != sh->me.rank)
            continue;
        for (int d = 0; d < n_dec; d++) {
            sh->mine_total++;
            sh->mine_done0 += sh->done[(size_t)u * (size_t)n_dec + d];
        }
    }
    free(cost);
}

int mtp_runner_shard_prepare(struct mtp_runner *r, const char *dir)
{
    struct mtp_runner_shard *sh = mtp_xcalloc(1, sizeof *sh);
    r->shard = sh;
    sh->me = r->opt->shard;
    sh->mpi = r->opt->mpi;
    sh->n_units = r->spec.n_sampling * r->n_prompts * r->spec.repeats;
    size_t n_req = (size_t)sh->n_units * (size_t)n_configs(r);
    sh->done = mtp_xcalloc(n_req > 0 ? n_req : 1, 1);
    sh->closed = mtp_xcalloc((size_t)sh->me.size, 1);
    r->log_path = mtp_shard_log_path(dir, r->spec.name, sh->me.rank, sh->me.size);
    if (sh->mpi && sh->me.rank == 0)
        sh->per_rank = mtp_xcalloc((size_t)sh->me.size, sizeof *sh->per_rank);
    int rc = sh->mpi ? scan_logs_mpi(r, dir, n_req) : scan_logs(r, dir);
    if (rc)
        return rc;
    split(r);
    return MTP_OK;
}

int mtp_runner_shard_adopt(struct mtp_runner *r, bool own_complete, bool *complete)
{
    struct mtp_runner_shard *sh = r->shard;
    const struct mtp_spec *s = &r->spec;
    /* The union of all rank logs replaces this log's own keys (a subset). */
    mtp_log_keyset_free(r->finished);
    r->finished = mtp_log_keyset_create();
    for (int u = 0; u < sh->n_units; u++)
        for (int c = 0; c < n_configs(r); c++) {
            if (!sh->done[(size_t)u * (size_t)n_configs(r) + c])
                continue;
            int rep = u % s->repeats, pi = (u / s->repeats) % r->n_prompts;
            int samp = u / (s->repeats * r->n_prompts);
            const struct mtp_run_prompt *p = &r->prompts[pi];
            for (int t = 0; t < p->n_turns; t++)
                mtp_log_keyset_add_batch(r->finished, config_decoder(r, c), samp,
                                         s->dataset_names[p->dataset], p->p->id, rep, t,
                                         config_batch(r, c));
        }
    int64_t total = (int64_t)sh->n_units * n_configs(r);
    /* Job-wide, so every MPI rank decides alike (they meet in collectives). */
    *complete = sh->done0 == total;
    /* With --allow-partial (check_missing let a missing rank log pass), this
     * log says finished and takes no more records; other logs take the work. */
    r->log_closed = own_complete;
    if (own_complete && !*complete && !r->opt->allow_partial)
        return mtp_error_set("LOG %s says the run finished, but %lld of its %lld requests are "
                             "missing from the rank logs next to it (moved or deleted?); pass "
                             "--allow-partial to run them again",
                             r->log_path, (long long)(total - sh->done0), (long long)total);
    if (!*complete && sh->no_open_rank)
        return mtp_error_set("every rank log of this %d-rank run says it finished, but %lld "
                             "requests are missing: resume with another number of ranks",
                             sh->me.size, (long long)(total - sh->done0));
    if (*complete && !own_complete) {
        /* Other logs hold everything: this one (new, or resumed) says so. */
        struct mtp_log_summary sum = {.wall_ns = 0, .finished = true};
        return mtp_log_write_summary(r->log, &sum);
    }
    return MTP_OK;
}

bool mtp_runner_shard_owns(const struct mtp_runner *r, int samp, int prompt, int rep)
{
    return r->shard->owner[unit_of(r, samp, prompt, rep)] == r->shard->me.rank;
}

bool mtp_runner_shard_has_work(const struct mtp_runner *r)
{
    return r->shard->mine_done0 < r->shard->mine_total;
}

bool mtp_runner_shard_leader(const struct mtp_runner *r)
{
    return !r->shard || !r->shard->mpi || r->shard->me.rank == 0;
}

void mtp_runner_shard_progress_setup(struct mtp_runner *r, int64_t *total, int64_t *done,
                                     bool *quiet)
{
    struct mtp_runner_shard *sh = r->shard;
    if (sh->mpi) { /* rank 0 shows the whole job */
        *total = (int64_t)sh->n_units * n_configs(r);
        *done = sh->done0;
        *quiet = r->opt->quiet || sh->me.rank != 0;
    } else { /* a --shard task shows its share */
        *total = sh->mine_total;
        *done = sh->mine_done0;
        *quiet = r->opt->quiet;
    }
}

static void leader_draw(struct mtp_runner *r, const char *label)
{
    struct mtp_runner_shard *sh = r->shard;
    sh->per_rank[0] = (struct mtp_mpi_counts){r->logged, r->tokens, r->steps};
    struct mtp_mpi_counts sum = {0};
    for (int k = 0; k < sh->me.size; k++) {
        sum.logged += sh->per_rank[k].logged;
        sum.tokens += sh->per_rank[k].tokens;
        sum.steps += sh->per_rank[k].steps;
    }
    mtp_progress_update(r->progress, sh->done0 + sum.logged, sum.tokens, sum.steps, label);
}

void mtp_runner_shard_progress(struct mtp_runner *r, const char *label)
{
    struct mtp_runner_shard *sh = r->shard;
    if (!sh->mpi) {
        mtp_progress_update(r->progress, sh->mine_done0 + r->logged, r->tokens, r->steps, label);
        return;
    }
    if (sh->me.rank == 0) {
        mtp_mpi_counts_poll(sh->per_rank, sh->me.size, &sh->n_final, false);
        leader_draw(r, label);
        return;
    }
    uint64_t now = shard_now_ns();
    if (now - sh->last_send_ns < SHARD_SEND_INTERVAL_NS)
        return;
    sh->last_send_ns = now;
    struct mtp_mpi_counts c = {r->logged, r->tokens, r->steps};
    mtp_mpi_counts_send(&c, false);
}

int64_t mtp_runner_shard_end(struct mtp_runner *r)
{
    struct mtp_runner_shard *sh = r->shard;
    if (!sh->mpi)
        return sh->done0 + r->logged;
    if (sh->me.rank == 0) {
        while (sh->n_final < sh->me.size - 1) {
            mtp_mpi_counts_poll(sh->per_rank, sh->me.size, &sh->n_final, true);
            leader_draw(r, "waiting for ranks");
        }
    } else {
        struct mtp_mpi_counts c = {r->logged, r->tokens, r->steps};
        mtp_mpi_counts_send(&c, true);
    }
    return sh->done0 + mtp_mpi_sum(r->logged);
}

int mtp_runner_shard_print_table(struct mtp_runner *r, FILE *out)
{
    struct mtp_runner_shard *sh = r->shard;
    if (sh->mpi)
        mtp_mpi_barrier(); /* every rank has closed its log */
    if (!mtp_runner_shard_leader(r))
        return MTP_OK;
    const char *dir = r->opt->out_dir ? r->opt->out_dir : r->spec.output_dir;
    struct log_list logs;
    if (list_rank_logs(dir, r->spec.name, &logs))
        return MTP_ERR;
    const char **order = mtp_xcalloc((size_t)r->spec.n_decoders, sizeof *order);
    for (int d = 0; d < r->spec.n_decoders; d++)
        order[d] = r->spec.decoders[d].name;
    int rc = mtp_runner_print_table_files((const char *const *)logs.paths, logs.n, order,
                                          r->spec.n_decoders, out);
    free(order);
    log_list_free(&logs);
    return rc;
}

void mtp_runner_shard_free(struct mtp_runner *r)
{
    if (!r->shard)
        return;
    free(r->shard->owner);
    free(r->shard->done);
    free(r->shard->closed);
    free(r->shard->per_rank);
    free(r->shard);
    r->shard = NULL;
}
