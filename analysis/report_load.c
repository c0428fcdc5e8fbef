/*
 * report_load.c - read experiment logs into memory for the report: every
 * whole "request" record, tagged with the "run" record it belongs to.
 *
 * Several logs merge into one data set. A run is identified by its run
 * record's host and start time, so copies of one run share it; the rank logs
 * of a sharded run (DIR/NAME.rank-R-of-N.msgpack, experiments/shard.h) are one
 * run whatever their host, start time or N (a resume may change N), and
 * a request seen twice (the same file given twice) is counted once, with a
 * warning. A log cut off inside its last record is normal after a crash: its
 * whole records are kept and the cut is reported with the byte offset. Other
 * damage fails the load, or with skip_damaged is skipped and counted.
 *
 * The "batch" records (experiments/log_batch.h) are kept too, tagged with
 * their run, for the batch view (report_batch.c); one seen before (the same
 * log given twice) is counted once, as requests are.
 *
 * For completeness (report_complete.c) each run keeps its first "plan"
 * record, whether a summary says it finished, and which rank logs (R of N)
 * were read. Rank logs of one run must embed one spec: two specs that share
 * a name are refused, as run --resume refuses them.
 */
#include "report.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset, strcmp */
#include <time.h>   /* defines: gmtime_r, strftime */

#include "core/error.h" /* defines: mtp_error_set, mtp_xcalloc */
#include "experiments/shard.h" /* defines: mtp_shard_is_log_name */

/* "<name>@2025-01-31T12:34:56Z" */
static char *run_label(const char *name, int64_t start_ns)
{
    char iso[40] = "?";
    time_t secs = (time_t)(start_ns / 1000000000);
    struct tm tm;
    if (gmtime_r(&secs, &tm))
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t n = strlen(name) + strlen(iso) + 2;
    char *s = mtp_xmalloc(n);
    snprintf(s, n, "%s@%s", name, iso);
    return s;
}

static char *str_or_empty(const msgpack_object *o)
{
    char *s = mtp_log_obj_strdup(o);
    return s ? s : mtp_xstrdup("");
}

/* "DIR/NAME" for a rank log DIR/NAME.rank-R-of-N.msgpack, else NULL. */
static char *shard_group(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *mark = NULL;
    for (const char *p = strstr(base, ".rank-"); p; p = strstr(p + 1, ".rank-"))
        mark = p;
    if (!mark || mark == base)
        return NULL;
    char *stem = mtp_xstrdup(base);
    stem[mark - base] = '\0';
    bool ok = mtp_shard_is_log_name(base, stem, NULL, NULL);
    free(stem);
    if (!ok)
        return NULL;
    char *g = mtp_xstrdup(path);
    g[mark - path] = '\0';
    return g;
}

/* Note the rank log PATH (R of N) of run RUN. */
static void report_note_rank(struct mtp_report_run *run, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *stem_end = strrchr(run->shard_group, '/');
    char *name = mtp_xstrdup(stem_end ? stem_end + 1 : run->shard_group);
    struct mtp_shard_id id;
    if (mtp_shard_is_log_name(base, name, &id.rank, &id.size)) {
        for (int i = 0; i < run->n_ranks; i++)
            if (run->ranks[i].rank == id.rank && run->ranks[i].size == id.size)
                goto out; /* the same file given twice */
        run->ranks = mtp_xrealloc(run->ranks, (size_t)(run->n_ranks + 1) * sizeof *run->ranks);
        run->ranks[run->n_ranks++] = id;
    }
out:
    free(name);
}

/* Rank logs of one run must come from one spec: two specs that share a name
 * write rank logs that look alike but hold other requests under the same
 * keys (issue 28, case 8; run --resume refuses the same mix). */
static int report_check_spec(const struct mtp_report_run *run, const char *spec_json,
                             const char *path)
{
    bool same = (!run->spec_json && !spec_json) ||
                (run->spec_json && spec_json && strcmp(run->spec_json, spec_json) == 0);
    if (same)
        return MTP_OK;
    return mtp_error_set("REPORT %s: this rank log was written for a different spec than %s, "
                         "though both are rank logs of %s (two specs that share the name "
                         "\"%s\"); report them separately, or move one away",
                         path, run->file, run->shard_group, run->name);
}

/* The index of the run REC describes in D, adding it when new; -1 with a
 * message when a rank log of a known run holds another spec. */
static int report_run_index(struct mtp_report_data *d, const msgpack_object *rec,
                            const char *path)
{
    int64_t start = 0;
    mtp_log_obj_int(mtp_log_map_get(rec, "start_unix_ns"), &start);
    char *host = mtp_log_obj_strdup(mtp_log_map_get(rec, "host"));
    if (!host)
        host = mtp_xstrdup("");
    char *group = shard_group(path);
    char *spec_json = mtp_log_obj_to_json(mtp_log_map_get(rec, "spec"));
    for (int i = 0; i < d->n_runs; i++) {
        bool same = group ? d->runs[i].shard_group && !strcmp(d->runs[i].shard_group, group)
                          : !d->runs[i].shard_group && d->runs[i].start_unix_ns == start &&
                                strcmp(d->runs[i].host, host) == 0;
        if (same) {
            int rc = report_check_spec(&d->runs[i], spec_json, path);
            if (rc == MTP_OK && group)
                report_note_rank(&d->runs[i], path);
            free(host);
            free(group);
            free(spec_json);
            return rc == MTP_OK ? i : -1;
        }
    }
    char *name = mtp_log_obj_strdup(mtp_log_map_get(mtp_log_map_get(rec, "spec"), "name"));
    d->runs = mtp_xrealloc(d->runs, (size_t)(d->n_runs + 1) * sizeof *d->runs);
    struct mtp_report_run *run = &d->runs[d->n_runs];
    run->file = mtp_xstrdup(path);
    run->name = name ? name : mtp_xstrdup("");
    run->host = host;
    run->start_unix_ns = start;
    run->label = run_label(run->name, start);
    run->model_dir = str_or_empty(mtp_log_map_get(mtp_log_map_get(rec, "model"), "dir"));
    run->backend = str_or_empty(mtp_log_map_get(rec, "backend"));
    run->cpu = str_or_empty(mtp_log_map_get(rec, "cpu"));
    run->git_commit = str_or_empty(mtp_log_map_get(rec, "git_commit"));
    int64_t threads = 0;
    mtp_log_obj_int(mtp_log_map_get(rec, "threads"), &threads);
    run->threads = (int)threads;
    run->shard_group = group;
    run->spec_json = spec_json;
    run->has_plan = run->finished = false;
    memset(&run->plan, 0, sizeof run->plan);
    run->n_ranks = 0;
    run->ranks = NULL;
    if (group)
        report_note_rank(run, path);
    return d->n_runs++;
}

/* Keep the decoded request REQ of run RUN unless it was seen already. */
static void report_add_request(struct mtp_report_data *d, int run,
                               struct mtp_request_record *req, const char *path,
                               uint64_t off, FILE *warn)
{
    char tag[32];
    snprintf(tag, sizeof tag, "%d:", run);
    size_t n = strlen(tag) + strlen(req->decoder) + 1;
    char *dec = mtp_xmalloc(n);
    snprintf(dec, n, "%s%s", tag, req->decoder);
    bool dup = mtp_log_keyset_contains_batch(d->seen, dec, req->sampling_index, req->dataset,
                                             req->prompt_id, req->repeat, req->turn,
                                             req->batch_size);
    if (dup) {
        if (warn && d->n_duplicates == 0)
            fprintf(warn, "mtpbench: warning: %s: request at offset %llu (%s, prompt %s) is "
                          "already in an earlier record or log; duplicates are counted once\n",
                    path, (unsigned long long)off, req->decoder, req->prompt_id);
        d->n_duplicates++;
        mtp_log_request_free(req);
        free(dec);
        return;
    }
    mtp_log_keyset_add_batch(d->seen, dec, req->sampling_index, req->dataset, req->prompt_id,
                             req->repeat, req->turn, req->batch_size);
    free(dec);
    if (d->n_requests == d->cap_requests) {
        d->cap_requests = d->cap_requests ? 2 * d->cap_requests : 64;
        d->requests = mtp_xrealloc(d->requests, (size_t)d->cap_requests * sizeof *d->requests);
    }
    d->requests[d->n_requests].run = run;
    d->requests[d->n_requests].rec = *req;
    d->n_requests++;
}

/* Is B (of run RUN) the same batch run as one kept already? The end time,
 * the wall time and the step count together name a batch run. */
static bool batch_seen(const struct mtp_report_data *d, int run,
                       const struct mtp_log_batch_record *b)
{
    for (int i = 0; i < d->n_batches; i++) {
        const struct mtp_log_batch_record *o = &d->batches[i].rec;
        if (d->batches[i].run == run && o->time_unix_ns == b->time_unix_ns &&
            o->wall_ns == b->wall_ns && o->n_steps == b->n_steps &&
            o->sampling_index == b->sampling_index && o->batch_size == b->batch_size &&
            strcmp(o->decoder, b->decoder) == 0)
            return true;
    }
    return false;
}

/* Decode and keep the "batch" record REC at OFF of PATH (run RUN). */
static int report_take_batch(struct mtp_report_data *d, const msgpack_object *rec,
                             const char *path, uint64_t off, int run)
{
    if (run < 0)
        return mtp_error_set("REPORT %s: batch record at offset %llu comes before any \"run\" "
                             "record", path, (unsigned long long)off);
    struct mtp_log_batch_record b;
    if (mtp_log_batch_decode(rec, &b)) {
        mtp_log_batch_free(&b);
        return mtp_error_wrap("REPORT %s: record at offset %llu: ", path,
                              (unsigned long long)off);
    }
    if (batch_seen(d, run, &b)) {
        d->n_duplicates++;
        mtp_log_batch_free(&b);
        return MTP_OK;
    }
    d->batches = mtp_xrealloc(d->batches, (size_t)(d->n_batches + 1) * sizeof *d->batches);
    d->batches[d->n_batches].run = run;
    d->batches[d->n_batches].rec = b;
    d->n_batches++;
    return MTP_OK;
}

/* The first plan of a run is its plan: every rank log holds the whole job's. */
static int report_take_plan(struct mtp_report_run *run, const msgpack_object *rec,
                            const char *path, uint64_t off)
{
    if (run->has_plan)
        return MTP_OK;
    if (mtp_log_plan_decode(rec, &run->plan)) {
        mtp_log_plan_free(&run->plan);
        return mtp_error_wrap("REPORT %s: record at offset %llu: ", path,
                              (unsigned long long)off);
    }
    run->has_plan = true;
    return MTP_OK;
}

/* One record at OFF of PATH; *RUN is the current run (-1 before the first). */
static int report_take_record(struct mtp_report_data *d, const msgpack_object *rec,
                              const char *path, uint64_t off, int *run, bool *summary,
                              FILE *warn)
{
    char type[32];
    mtp_log_record_type(rec, type, sizeof type);
    if (strcmp(type, "run") == 0) {
        *run = report_run_index(d, rec, path);
        return *run >= 0 ? MTP_OK : MTP_ERR;
    }
    if (strcmp(type, "summary") == 0) {
        const msgpack_object *f = mtp_log_map_get(rec, "finished");
        *summary = true;
        if (*run >= 0 && f && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean)
            d->runs[*run].finished = true;
    }
    if (strcmp(type, "plan") == 0 && *run >= 0)
        return report_take_plan(&d->runs[*run], rec, path, off);
    if (strcmp(type, "batch") == 0)
        return report_take_batch(d, rec, path, off, *run);
    if (strcmp(type, "request") != 0)
        return MTP_OK; /* resume, summary, and types this reader does not know */
    if (*run < 0)
        return mtp_error_set("REPORT %s: request at offset %llu comes before any \"run\" record",
                             path, (unsigned long long)off);
    struct mtp_request_record req;
    if (mtp_log_decode_request(rec, &req)) {
        mtp_log_request_free(&req);
        return mtp_error_wrap("REPORT %s: record at offset %llu: ", path,
                              (unsigned long long)off);
    }
    report_add_request(d, *run, &req, path, off, warn);
    return MTP_OK;
}

int mtp_report_data_load(struct mtp_report_data *d, const char *path, FILE *warn)
{
    struct mtp_log_reader *r;
    if (mtp_log_reader_open(path, &r))
        return MTP_ERR;
    mtp_log_reader_skip_damaged(r, d->skip_damaged);
    if (!d->seen)
        d->seen = mtp_log_keyset_create();
    d->files = mtp_xrealloc(d->files, (size_t)(d->n_files + 1) * sizeof *d->files);
    d->files[d->n_files++] = mtp_xstrdup(path);
    int run = -1, rc = MTP_OK, n_before = d->n_requests;
    bool summary = false;
    for (;;) {
        const msgpack_object *rec;
        uint64_t off;
        rc = mtp_log_reader_next(r, &rec, &off);
        if (rc || !rec)
            break;
        rc = report_take_record(d, rec, path, off, &run, &summary, warn);
        if (rc)
            break;
    }
    struct mtp_log_damage dmg;
    mtp_log_reader_damage(r, &dmg);
    d->n_damaged += dmg.records;
    if (rc == MTP_OK && dmg.records > 0 && warn)
        fprintf(warn, "mtpbench: warning: %s: skipped %d damaged record%s (%llu bytes, the first "
                      "at byte offset %llu); the report leaves them out\n", path, dmg.records,
                dmg.records == 1 ? "" : "s", (unsigned long long)dmg.bytes,
                (unsigned long long)dmg.first_offset);
    uint64_t at;
    if (rc == MTP_OK && mtp_log_reader_partial(r, &at) && warn)
        fprintf(warn, "mtpbench: warning: %s: log cut off at byte offset %llu (a partial last "
                      "record); using the %d whole request records before it\n",
                path, (unsigned long long)at, d->n_requests - n_before);
    else if (rc == MTP_OK && !summary && warn)
        fprintf(warn, "mtpbench: warning: %s: no summary record (run unfinished?); using its "
                      "%d request records\n", path, d->n_requests - n_before);
    mtp_log_reader_close(r);
    return rc;
}

void mtp_report_data_free(struct mtp_report_data *d)
{
    for (int i = 0; i < d->n_files; i++)
        free(d->files[i]);
    free(d->files);
    for (int i = 0; i < d->n_runs; i++) {
        free(d->runs[i].file);
        free(d->runs[i].name);
        free(d->runs[i].host);
        free(d->runs[i].shard_group);
        free(d->runs[i].label);
        free(d->runs[i].model_dir);
        free(d->runs[i].backend);
        free(d->runs[i].cpu);
        free(d->runs[i].git_commit);
        free(d->runs[i].spec_json);
        free(d->runs[i].ranks);
        mtp_log_plan_free(&d->runs[i].plan);
    }
    free(d->runs);
    for (int i = 0; i < d->n_requests; i++)
        mtp_log_request_free(&d->requests[i].rec);
    free(d->requests);
    for (int i = 0; i < d->n_batches; i++)
        mtp_log_batch_free(&d->batches[i].rec);
    free(d->batches);
    mtp_log_keyset_free(d->seen);
    memset(d, 0, sizeof *d);
}
