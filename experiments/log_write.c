/*
 * log_write.c - write MessagePack experiment logs, and reopen one to resume
 * (see log.h and spec/log-format.md).
 *
 * Each record is packed into an in-memory buffer and handed to the kernel with
 * write() on a plain file descriptor: there is no user-space buffer that a
 * crash could lose, so a killed run keeps every record whose write returned.
 * A write that fails half-way is cut back off the file (ftruncate) so the log
 * still ends on a whole record. In mtpbench-log/2 the frame header
 * (log_frame.h) and the body go out in that same single write.
 *
 * A writer holds an exclusive lock on its log from open to close
 * (log_lock.c); resume takes it before reading, so nothing can append between
 * the scan and the cut.
 */
#include "log.h"
#include "log_tree.h"

#include <errno.h>     /* defines: errno, EINTR */
#include <fcntl.h>     /* defines: O_CREAT, O_EXCL */
#include <jansson.h>   /* defines: json_t, json_loads */
#include <stdio.h>     /* defines: snprintf, FILE */
#include <stdlib.h>    /* defines: free */
#include <string.h>    /* defines: strlen, strerror */
#include <sys/stat.h>  /* defines: fstat */
#include <time.h>      /* defines: clock_gettime, gmtime_r, strftime */
#include <unistd.h>    /* defines: write, ftruncate, fsync, gethostname */

#include "../core/error.h"
#include "log_frame.h" /* defines: mtp_log_frame_encode */
#include "log_lock.h"  /* defines: mtp_log_open_locked */

struct mtp_log_writer {
    int fd;
    char *path;
    struct mtp_log_options opt;
    uint64_t size;     /* bytes in the file = end of the last whole record */
    int n_requests;    /* request records in the file */
    int n_records;     /* records of any type in the file */
    bool failed;       /* a write failed: refuse more, the file ends on a whole record */
    bool framed;       /* mtpbench-log/2 frames (false: continuing a /1 log) */
    char *frame;       /* header + body of the record being written */
    size_t frame_cap;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
};

/* ---- small packing helpers ---------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    size_t n = strlen(s);
    msgpack_pack_str_with_body(pk, s, n);
}

static void pack_key(msgpack_packer *pk, const char *key) { pack_str(pk, key); }

static void kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    pack_key(pk, key);
    pack_str(pk, val);
}

static void kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
    pack_key(pk, key);
    msgpack_pack_int64(pk, val);
}

static void kv_uint(msgpack_packer *pk, const char *key, uint64_t val)
{
    pack_key(pk, key);
    msgpack_pack_uint64(pk, val);
}

static void kv_double(msgpack_packer *pk, const char *key, double val)
{
    pack_key(pk, key);
    msgpack_pack_double(pk, val);
}

static void kv_bool(msgpack_packer *pk, const char *key, bool val)
{
    pack_key(pk, key);
    val ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static void pack_i32_array(msgpack_packer *pk, const int32_t *v, int n)
{
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_int32(pk, v[i]);
}

static void kv_u64_array(msgpack_packer *pk, const char *key, const uint64_t *v, int n)
{
    pack_key(pk, key);
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++)
        msgpack_pack_uint64(pk, v[i]);
}

/* A JSON value as the equivalent MessagePack value (objects keep their order). */
static void pack_json(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach((json_t *)v, key, val) {
            pack_key(pk, key);
            pack_json(pk, val);
        }
        break;
    }
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(v));
        for (size_t i = 0; i < json_array_size(v); i++)
            pack_json(pk, json_array_get(v, i));
        break;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(v)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    default: msgpack_pack_nil(pk); break;
    }
}

/* ---- provenance ----------------------------------------------------------- */

static int64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "2025-01-31T12:34:56Z" (UTC, whole seconds; the _unix_ns key has the rest). */
static void iso8601_utc(int64_t unix_ns, char *buf, size_t cap)
{
    time_t secs = (time_t)(unix_ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void kv_time(msgpack_packer *pk, const char *iso_key, const char *ns_key, int64_t unix_ns)
{
    char iso[40];
    iso8601_utc(unix_ns, iso, sizeof iso);
    kv_str(pk, iso_key, iso);
    kv_int(pk, ns_key, unix_ns);
}

static void host_name(char *buf, size_t cap)
{
    if (gethostname(buf, cap) != 0)
        snprintf(buf, cap, "unknown");
    buf[cap - 1] = '\0';
}

/* The "model name" line of /proc/cpuinfo (x86); "unknown" elsewhere. */
static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *s = colon + 1;
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, "\n")] = '\0';
        snprintf(buf, cap, "%s", s);
        break;
    }
    fclose(f);
}

/* ---- writing ------------------------------------------------------------ */

static int write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, data, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            return -1;
        }
        data += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The bytes of the packed record in w->sbuf as they go to the file: framed
 * (header + body, one buffer so that one write() carries both) or bare. */
static const char *record_bytes(struct mtp_log_writer *w, size_t *n)
{
    if (!w->framed) {
        *n = w->sbuf.size;
        return w->sbuf.data;
    }
    *n = MTP_LOG_FRAME_HEADER + w->sbuf.size;
    if (*n > w->frame_cap) {
        w->frame_cap = *n * 2;
        w->frame = mtp_xrealloc(w->frame, w->frame_cap);
    }
    mtp_log_frame_encode((uint8_t *)w->frame, w->sbuf.data, (uint32_t)w->sbuf.size);
    memcpy(w->frame + MTP_LOG_FRAME_HEADER, w->sbuf.data, w->sbuf.size);
    return w->frame;
}

/* Append the packed record in w->sbuf to the file as one write. */
static int flush_record(struct mtp_log_writer *w)
{
    int rc = MTP_OK;
    size_t n = 0;
    const char *bytes =
        !w->framed || w->sbuf.size <= MTP_LOG_FRAME_MAX_BODY ? record_bytes(w, &n) : NULL;
    if (w->framed && w->sbuf.size > MTP_LOG_FRAME_MAX_BODY) {
        w->failed = true;
        rc = mtp_error_set("LOG %s: record of %zu bytes: expected at most %d (the frame limit)",
                           w->path, w->sbuf.size, MTP_LOG_FRAME_MAX_BODY);
    } else if (write_all(w->fd, bytes, n) != 0) {
        int err = errno;
        /* Cut a partial record off again; may fail on devices, which is harmless. */
        if (ftruncate(w->fd, (off_t)w->size) != 0)
            (void)0;
        w->failed = true;
        rc = mtp_error_set("LOG %s: write failed: %s (the %d records before stay readable)",
                           w->path, strerror(err), w->n_records);
    } else if (w->opt.fsync && fsync(w->fd) != 0 && errno != EINVAL) {
        w->failed = true;
        rc = mtp_error_set("LOG %s: fsync failed: %s", w->path, strerror(errno));
    } else {
        w->size += n;
        w->n_records++;
    }
    msgpack_sbuffer_clear(&w->sbuf);
    return rc;
}

static int check_writable(const struct mtp_log_writer *w)
{
    if (w->failed)
        return mtp_error_set("LOG %s: an earlier write failed; no more records", w->path);
    return MTP_OK;
}

/* The sbuffer's write callback, made to abort on out-of-memory like every
 * other allocation here: a silently short record would corrupt the log. */
static int sbuffer_write_or_die(void *data, const char *buf, size_t len)
{
    int rc = msgpack_sbuffer_write(data, buf, len);
    MTP_CHECK(rc == 0);
    return rc;
}

static struct mtp_log_writer *writer_new(int fd, const char *path, const struct mtp_log_options *opt,
                                         bool framed)
{
    struct mtp_log_writer *w = mtp_xcalloc(1, sizeof *w);
    w->fd = fd;
    w->framed = framed;
    w->path = mtp_xstrdup(path);
    if (opt)
        w->opt = *opt;
    msgpack_sbuffer_init(&w->sbuf);
    msgpack_packer_init(&w->pk, &w->sbuf, sbuffer_write_or_die);
    return w;
}

int mtp_log_open(const char *path, const struct mtp_log_options *opt, struct mtp_log_writer **out)
{
    *out = NULL;
    /* No O_TRUNC: an overwrite empties the file only once this writer holds the lock. */
    int fd = mtp_log_open_locked(path, O_CREAT | (opt && opt->overwrite ? 0 : O_EXCL));
    if (fd < 0)
        return MTP_ERR;
    struct stat st;
    if (opt && opt->overwrite && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        ftruncate(fd, 0) != 0) {
        int err = errno;
        close(fd);
        return mtp_error_set("LOG %s: cannot empty it to overwrite: %s", path, strerror(err));
    }
    *out = writer_new(fd, path, opt, true);
    return MTP_OK;
}

int mtp_log_close(struct mtp_log_writer *w)
{
    if (!w)
        return MTP_OK;
    int rc = MTP_OK;
    if (w->opt.fsync && !w->failed && fsync(w->fd) != 0 && errno != EINVAL)
        rc = mtp_error_set("LOG %s: fsync failed: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && rc == MTP_OK)
        rc = mtp_error_set("LOG %s: close failed: %s", w->path, strerror(errno));
    msgpack_sbuffer_destroy(&w->sbuf);
    free(w->frame);
    free(w->path);
    free(w);
    return rc;
}

int mtp_log_writer_requests(const struct mtp_log_writer *w) { return w->n_requests; }

const char *mtp_log_writer_path(const struct mtp_log_writer *w) { return w->path; }

/* ---- records ------------------------------------------------------------ */

static void pack_model(msgpack_packer *pk, const struct mtp_log_model_info *m)
{
    msgpack_pack_map(pk, 6);
    kv_str(pk, "dir", m->dir);
    kv_str(pk, "config_hash", m->config_hash);
    kv_int(pk, "num_layers", m->num_layers);
    kv_int(pk, "num_nextn_predict_layers", m->num_nextn_predict_layers);
    kv_int(pk, "vocab_size", m->vocab_size);
    kv_int(pk, "params", m->params);
}

int mtp_log_write_run(struct mtp_log_writer *w, const struct mtp_log_run_info *info)
{
    if (check_writable(w))
        return MTP_ERR;
    json_error_t jerr;
    json_t *spec = info->spec_json ? json_loads(info->spec_json, 0, &jerr) : NULL;
    if (info->spec_json && !json_is_object(spec)) {
        json_decref(spec);
        return mtp_error_set("LOG %s: run record: spec_json is not a JSON object", w->path);
    }
    char host[256], cpu[256];
    host_name(host, sizeof host);
    cpu_model(cpu, sizeof cpu);
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 13);
    kv_str(pk, "type", "run");
    kv_str(pk, "schema_version", MTP_LOG_SCHEMA);
    pack_key(pk, "spec");
    spec ? pack_json(pk, spec) : msgpack_pack_nil(pk);
    pack_key(pk, "model");
    pack_model(pk, &info->model);
    kv_str(pk, "git_commit", info->git_commit);
    kv_str(pk, "host", info->host ? info->host : host);
    kv_str(pk, "cpu", info->cpu ? info->cpu : cpu);
    kv_str(pk, "gpu", info->gpu);
    kv_str(pk, "backend", info->backend);
    kv_int(pk, "threads", info->threads);
    kv_time(pk, "start_time", "start_unix_ns", info->start_unix_ns ? info->start_unix_ns : now_unix_ns());
    kv_str(pk, "writer", "mtpbench");
    json_decref(spec);
    return flush_record(w);
}

static void pack_experts(msgpack_packer *pk, const struct mtp_request_record *r)
{
    pack_key(pk, "experts_touched");
    if (!r->experts_touched) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_array(pk, (size_t)r->n_steps);
    for (int s = 0; s < r->n_steps; s++)
        pack_i32_array(pk, r->experts_touched + (size_t)s * (size_t)r->n_moe_layers,
                       r->n_moe_layers);
}

/* "wiring": {draft_hidden, position0_embedding, module_hidden} (value names). */
static void pack_wiring(msgpack_packer *pk, const struct mtp_request_record *r)
{
    pack_key(pk, "wiring");
    msgpack_pack_map(pk, MTP_WIRING_FIELD_COUNT);
    for (int f = 0; f < MTP_WIRING_FIELD_COUNT; f++)
        kv_str(pk, mtp_wiring_field_name(f), r->wiring[f] ? r->wiring[f] : "default");
}

static int check_request(const struct mtp_log_writer *w, const struct mtp_request_record *r)
{
    if (!r->decoder || !r->dataset || !r->category || !r->prompt_id)
        return mtp_error_set("LOG %s: request record: decoder, dataset, category and prompt_id "
                             "are required", w->path);
    if (r->n_steps < 0 || r->n_output < 0 || r->prompt_tokens < 0 || r->n_moe_layers < 0 ||
        (r->n_steps > 0 && (!r->accepted || !r->draft_ns || !r->verify_ns || !r->accept_ns ||
                            !r->update_ns)) ||
        (r->n_output > 0 && !r->output_tokens))
        return mtp_error_set("LOG %s: request record %s/%s: per-step arrays missing or negative "
                             "counts", w->path, r->decoder, r->prompt_id);
    return MTP_OK;
}

static void pack_request_head(msgpack_packer *pk, const struct mtp_request_record *r)
{
    kv_str(pk, "type", "request");
    kv_str(pk, "decoder", r->decoder);
    kv_str(pk, "mode", mtp_spec_decoder_type_name(r->mode));
    kv_int(pk, "depth", r->depth);
    kv_str(pk, "drafting", mtp_spec_drafting_name(r->drafting));
    kv_int(pk, "sampling_index", r->sampling_index);
    kv_double(pk, "temperature", r->temperature);
    kv_double(pk, "top_p", r->top_p);
    kv_int(pk, "top_k", r->top_k);
    kv_uint(pk, "seed", r->seed);
    kv_str(pk, "dataset", r->dataset);
    kv_str(pk, "category", r->category);
    kv_str(pk, "prompt_id", r->prompt_id);
    kv_int(pk, "repeat", r->repeat);
    kv_int(pk, "turn", r->turn);
    kv_int(pk, "prompt_tokens", r->prompt_tokens);
    kv_int(pk, "prompt_cached", r->prompt_cached);
}

int mtp_log_write_request(struct mtp_log_writer *w, const struct mtp_request_record *r)
{
    if (check_writable(w) || check_request(w, r))
        return MTP_ERR;
    msgpack_packer *pk = &w->pk;
    bool uncut = r->accepted_uncut && r->n_steps >= 0, wired = r->wiring[0] != NULL;
    bool adaptive = r->adaptive_rule != NULL, drafted = r->drafted != NULL;
    bool vocab = r->draft_vocab > 0, batched = r->batch_size > 1;
    msgpack_pack_map(pk, 28 + (r->prompt_ids ? 1 : 0) + uncut + wired + 2 * adaptive + drafted +
                             vocab + batched + mtp_log_tree_keys(r));
    pack_request_head(pk, r);
    if (r->prompt_ids) {
        pack_key(pk, "prompt_ids");
        pack_i32_array(pk, r->prompt_ids, r->prompt_tokens);
    }
    pack_key(pk, "output_tokens");
    pack_i32_array(pk, r->output_tokens, r->n_output);
    pack_key(pk, "accepted");
    pack_i32_array(pk, r->accepted, r->n_steps);
    if (uncut) {
        pack_key(pk, "accepted_uncut");
        pack_i32_array(pk, r->accepted_uncut, r->n_steps);
    }
    if (drafted) {
        pack_key(pk, "drafted");
        pack_i32_array(pk, r->drafted, r->n_steps);
    }
    if (adaptive) {
        kv_str(pk, "adaptive_rule", r->adaptive_rule);
        kv_double(pk, "adaptive_threshold", r->adaptive_threshold);
    }
    if (vocab)
        kv_int(pk, "draft_vocab", r->draft_vocab);
    if (batched)
        kv_int(pk, "batch_size", r->batch_size);
    if (wired)
        pack_wiring(pk, r);
    mtp_log_pack_tree(pk, r);
    kv_u64_array(pk, "draft_ns", r->draft_ns, r->n_steps);
    kv_u64_array(pk, "verify_ns", r->verify_ns, r->n_steps);
    kv_u64_array(pk, "accept_ns", r->accept_ns, r->n_steps);
    kv_u64_array(pk, "update_ns", r->update_ns, r->n_steps);
    kv_uint(pk, "ttft_ns", r->ttft_ns);
    kv_uint(pk, "total_ns", r->total_ns);
    pack_experts(pk, r);
    kv_str(pk, "stop_reason", r->stop_reason == MTP_LOG_STOP_EOS ? "eos" : "max_tokens");
    kv_int(pk, "time_unix_ns", r->time_unix_ns ? r->time_unix_ns : now_unix_ns());
    if (flush_record(w))
        return MTP_ERR;
    w->n_requests++;
    return MTP_OK;
}

int mtp_log_write_resume(struct mtp_log_writer *w, const char *git_commit)
{
    if (check_writable(w))
        return MTP_ERR;
    char host[256];
    host_name(host, sizeof host);
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 6);
    kv_str(pk, "type", "resume");
    kv_time(pk, "time", "unix_ns", now_unix_ns());
    kv_str(pk, "host", host);
    kv_str(pk, "git_commit", git_commit);
    kv_int(pk, "requests_before", w->n_requests);
    return flush_record(w);
}

int mtp_log_write_summary(struct mtp_log_writer *w, const struct mtp_log_summary *s)
{
    if (check_writable(w))
        return MTP_ERR;
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 6);
    kv_str(pk, "type", "summary");
    kv_int(pk, "requests", w->n_requests);
    kv_uint(pk, "wall_ns", s->wall_ns);
    kv_bool(pk, "finished", s->finished);
    kv_time(pk, "end_time", "end_unix_ns", s->end_unix_ns ? s->end_unix_ns : now_unix_ns());
    return flush_record(w);
}

int mtp_log_write_packed(struct mtp_log_writer *w,
                         void (*pack)(msgpack_packer *pk, const void *arg), const void *arg)
{
    if (check_writable(w))
        return MTP_ERR;
    pack(&w->pk, arg);
    return flush_record(w);
}

/* ---- resume ----------------------------------------------------------------- */

/* What a scan of an existing log found. */
struct scan {
    bool summary_seen, summary_finished;
    uint64_t summary_at;  /* offset of the summary record */
    uint64_t whole_end;   /* end of the last whole record */
    int n_records;
    int version;          /* 2: framed, 1: bare records (continued as they are) */
};

/* Refuse to resume a log written for another spec: the keys would not mean the
 * same requests. Names the first top-level key that differs. */
static int check_same_spec(const char *path, const msgpack_object *run, const char *spec_json)
{
    char *logged = mtp_log_obj_to_json(mtp_log_map_get(run, "spec"));
    json_t *a = logged ? json_loads(logged, 0, NULL) : NULL;
    json_t *b = json_loads(spec_json, 0, NULL);
    free(logged);
    int rc = MTP_OK;
    if (!json_is_object(a) || !json_is_object(b) || !json_equal(a, b)) {
        const char *key = "(spec)", *k;
        json_t *v;
        if (json_is_object(a) && json_is_object(b)) {
            json_object_foreach(a, k, v) {
                if (!json_object_get(b, k))
                    key = k;
            }
            json_object_foreach(b, k, v) {
                if (!json_equal(v, json_object_get(a, k)))
                    key = k;
            }
        }
        rc = mtp_error_set("LOG %s: cannot resume: the log was written for a different spec "
                           "(key '%s' differs); use a new output or the original spec",
                           path, key);
    }
    json_decref(a);
    json_decref(b);
    return rc;
}

static int scan_record(const char *path, const msgpack_object *rec, uint64_t off, const char *spec_json,
                       struct scan *sc, struct mtp_log_resume *st)
{
    char type[32];
    mtp_log_record_type(rec, type, sizeof type);
    if (sc->n_records == 0) {
        if (strcmp(type, "run") != 0)
            return mtp_error_set("LOG %s: first record is \"%s\", expected \"run\"", path, type);
        st->has_run = true;
        return spec_json ? check_same_spec(path, rec, spec_json) : MTP_OK;
    }
    if (sc->summary_seen)
        return mtp_error_set("LOG %s: record \"%s\" at offset %llu follows the summary", path,
                             type, (unsigned long long)off);
    if (strcmp(type, "request") == 0) {
        struct mtp_request_record r;
        int rc = mtp_log_decode_request(rec, &r);
        if (rc == MTP_OK) {
            mtp_log_keyset_add_record(st->finished, &r);
            st->n_requests++;
        }
        mtp_log_request_free(&r);
        if (rc)
            return mtp_error_wrap("LOG %s: record at offset %llu: ", path, (unsigned long long)off);
    } else if (strcmp(type, "resume") == 0) {
        st->n_resumes++;
    } else if (strcmp(type, "summary") == 0) {
        const msgpack_object *f = mtp_log_map_get(rec, "finished");
        sc->summary_seen = true;
        sc->summary_finished = f && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean;
        sc->summary_at = off;
    } /* other types: written by a newer version; kept as they are */
    return MTP_OK;
}

static int scan_log(const char *path, const char *spec_json, struct scan *sc,
                    struct mtp_log_resume *st)
{
    struct mtp_log_reader *r;
    if (mtp_log_reader_open(path, &r))
        return mtp_error_wrap("cannot resume: ");
    sc->version = mtp_log_reader_version(r);
    const msgpack_object *rec;
    uint64_t off;
    int rc;
    while ((rc = mtp_log_reader_next(r, &rec, &off)) == MTP_OK && rec) {
        rc = scan_record(path, rec, off, spec_json, sc, st);
        if (rc)
            break;
        sc->n_records++;
    }
    sc->whole_end = mtp_log_reader_offset(r);
    mtp_log_reader_close(r);
    if (rc)
        return mtp_error_wrap("cannot resume, the log is left as it is: ");
    return rc;
}

/* Where the continued log starts: after the last whole record, before an
 * unfinished summary, at 0 without a run record; a finished log is kept whole. */
static uint64_t resume_point(const struct scan *sc, const struct mtp_log_resume *st, uint64_t size)
{
    if (!st->has_run)
        return 0;
    if (sc->summary_seen && sc->summary_finished)
        return size;
    return sc->summary_seen ? sc->summary_at : sc->whole_end;
}

int mtp_log_open_resume(const char *path, const char *spec_json, const struct mtp_log_options *opt,
                        struct mtp_log_writer **out, struct mtp_log_resume *st)
{
    *out = NULL;
    memset(st, 0, sizeof *st);
    st->finished = mtp_log_keyset_create();
    struct scan sc = {0};
    struct stat stbuf;
    /* Lock first, then read: no other writer can append between the scan and the cut. */
    int fd = mtp_log_open_locked(path, 0); /* a FIFO is refused, never waited on */
    if (fd < 0 || scan_log(path, spec_json, &sc, st))
        goto fail;
    if (fstat(fd, &stbuf) != 0) {
        mtp_error_set("LOG %s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t size = (uint64_t)stbuf.st_size, keep = resume_point(&sc, st, size);
    st->complete = sc.summary_seen && sc.summary_finished;
    if (keep < size) {
        if (ftruncate(fd, (off_t)keep) != 0) {
            mtp_error_set("LOG %s: cannot cut the partial record at offset %llu: %s", path,
                          (unsigned long long)keep, strerror(errno));
            goto fail;
        }
        st->cut = true;
        st->cut_bytes = size - keep;
    }
    st->cut_at = keep;
    if (lseek(fd, 0, SEEK_END) < 0) {
        mtp_error_set("LOG %s: seek failed: %s", path, strerror(errno));
        goto fail;
    }
    struct mtp_log_writer *w = writer_new(fd, path, opt, keep == 0 || sc.version == 2);
    w->size = keep;
    w->n_requests = st->n_requests;
    w->n_records = sc.n_records - (keep < sc.whole_end && sc.summary_seen ? 1 : 0);
    *out = w;
    return MTP_OK;
fail:
    if (fd >= 0)
        close(fd);
    mtp_log_resume_free(st);
    return MTP_ERR;
}

void mtp_log_resume_free(struct mtp_log_resume *st)
{
    if (!st)
        return;
    mtp_log_keyset_free(st->finished);
    st->finished = NULL;
}
