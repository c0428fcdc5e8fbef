/*
 * log.h - MessagePack experiment logs, schema "mtpbench-log/2" (docs/design.md §8;
 * every key, type and unit, and the framing, are in spec/log-format.md).
 *
 * A log is a stream of MessagePack maps, each with a "type":
 *   "run"      first: schema, spec, model summary, provenance, start time
 *   "plan"     what the run set out to do (log_plan.h)
 *   "request"  one per (decoder, sampling, batch size, dataset, prompt, repeat, turn)
 *   "batch"    one per batch run at batch size > 1: its steps (log_batch.h)
 *   "resume"   optional, each time an interrupted run is continued
 *   "summary"  last: request count, wall time, finished flag
 * Readers skip types they do not know. In /2 every record is framed: a
 * 32-byte header (itself a MessagePack map {"type": "frame", "len", "crc32"})
 * gives the body's length and CRC-32, so damage anywhere is detected
 * (log_frame.h). Readers also read /1 logs (bare maps); resume continues a
 * log in the format it was started in.
 *
 * One writer at a time: mtp_log_open and mtp_log_open_resume take an
 * exclusive flock on the log, held until mtp_log_close; a second writer fails
 * at once, naming the log and the pid holding it (log_lock.c).
 *
 * Crash safety: each record is packed into memory and written with one write()
 * call straight to the file descriptor (no stdio buffer), so a killed process
 * loses at most the record being written; fsync after each record is optional
 * (struct mtp_log_options.fsync) and only matters for power loss. A failed
 * write is reported with the path and strerror, and the file is cut back to
 * the last whole record, so what was already written stays readable.
 *
 * Readers accept a log whose last record is cut off (they stop at the last
 * whole record and report the offset); a damaged record that is not a
 * cut-off tail (a bad checksum, or more records after it) is an error naming
 * the offset, unless the reader skips damage (mtp_log_reader_skip_damaged).
 * Resume cuts the partial tail away, returns the keys of the finished
 * requests and appends from there; it refuses a damaged log and cuts nothing.
 */
#ifndef MTP_LOG_H
#define MTP_LOG_H

#include <msgpack.h> /* defines: msgpack_object */
#include <stdbool.h>
#include <stdint.h>

#include "spec.h" /* defines: enum mtp_spec_decoder_type, enum mtp_spec_drafting */

#define MTP_LOG_SCHEMA "mtpbench-log/2"
#define MTP_LOG_SCHEMA_V1 "mtpbench-log/1" /* still read; resume continues it unframed */

enum mtp_log_stop {
    MTP_LOG_STOP_EOS,        /* "eos": the model emitted its end-of-sequence token */
    MTP_LOG_STOP_MAX_TOKENS, /* "max_tokens": max_new_tokens reached */
};

/* ---- records ------------------------------------------------------------ */

/* What the "run" record says about the model. */
struct mtp_log_model_info {
    const char *dir;          /* model directory as resolved from the spec */
    const char *config_hash;  /* hex digest of config.json (the caller's choice of hash) */
    int num_layers;           /* num_hidden_layers (main model) */
    int num_nextn_predict_layers; /* D */
    int vocab_size;
    int64_t params;           /* parameter count, MTP modules included */
};

/* Everything the "run" record holds. host, cpu and start_unix_ns are filled
 * by the writer when NULL / 0 (tests set them for reproducible files). */
struct mtp_log_run_info {
    const char *spec_json;    /* the spec as a JSON object text (struct mtp_spec.json_text) */
    struct mtp_log_model_info model;
    const char *git_commit;   /* NULL -> nil */
    const char *host;         /* NULL -> gethostname() */
    const char *cpu;          /* NULL -> "model name" of /proc/cpuinfo ("unknown") */
    const char *gpu;          /* NULL -> nil (CPU backend) */
    const char *backend;      /* "cpu" | "cuda" */
    int threads;              /* threads actually used */
    int64_t start_unix_ns;    /* 0 -> now (CLOCK_REALTIME) */
};

/* One request: one prompt decoded by one decoder under one sampling setting.
 * Step s covers one draft/verify/accept/update cycle (baseline: one token).
 * output_tokens[0] is sampled from the prefill logits (inside ttft_ns); step s
 * then emits e_s = accepted[s] + 1 tokens, except that the last step may be
 * cut by EOS or max_new_tokens: sum(e_s) = n_output - 1.
 * The writer only reads; the reader (mtp_log_decode_request) allocates every
 * pointer and mtp_log_request_free releases them. */
struct mtp_request_record {
    char *decoder;                  /* decoder name from the spec */
    enum mtp_spec_decoder_type mode;
    int depth;                      /* K; 0 for baseline */
    enum mtp_spec_drafting drafting;
    int sampling_index;             /* index into spec.sampling */
    double temperature, top_p;
    int top_k;
    uint64_t seed;                  /* the spec's seed (streams derive from it) */
    char *dataset;                  /* dataset name (file stem) */
    char *category;
    char *prompt_id;
    int repeat;                     /* 0-based */
    int turn;                       /* 0-based turn of a multi-turn prompt (older logs: 0) */
    int batch_size;                 /* B of the batch run that decoded it (runner.h); the key
                                     * is omitted at 1, and 0 means 1 to the writer; readers
                                     * give 1 when it is absent */
    int prompt_tokens;              /* prompt length in tokens (a later turn: the whole
                                     * conversation so far, rendered) */
    int prompt_cached;              /* leading prompt positions whose cache rows were kept
                                     * from the previous turn of the conversation (0: a fresh
                                     * prefill; older logs: 0) */
    int32_t *prompt_ids;            /* [prompt_tokens] or NULL (omitted from the record) */
    int n_output;
    int32_t *output_tokens;         /* [n_output] */
    int n_steps;
    int32_t *accepted;              /* [n_steps] a_s (baseline: all 0): drafts emitted */
    int32_t *accepted_uncut;        /* [n_steps] the verifier's acceptance before any cut by EOS
                                     * or max_new_tokens, or NULL (omitted; older logs) */
    int32_t *drafted;               /* [n_steps] k_s drafts verified (adaptive depth), or NULL
                                     * (omitted: every step drafted depth) */
    double adaptive_threshold;      /* adaptive decoders: the stop threshold; < 0 otherwise */
    char *adaptive_rule;            /* "draft" | "cumulative", or NULL (not adaptive) */
    int draft_vocab;                /* N of a draft vocabulary (spec/decoding.md); 0 = full
                                     * vocabulary (the key is then omitted) */
    char *wiring[3];                /* MTP conventions, by enum mtp_wiring_field: value names
                                     * (engine/wiring.h), or NULL (baseline; older logs) */
    uint64_t *draft_ns;             /* [n_steps] per phase, nanoseconds */
    uint64_t *verify_ns;            /* [n_steps] */
    uint64_t *accept_ns;            /* [n_steps] */
    uint64_t *update_ns;            /* [n_steps] */
    uint64_t ttft_ns;               /* prefill through the first token */
    uint64_t total_ns;              /* prefill through the last token */
    int n_moe_layers;               /* columns of experts_touched */
    int32_t *experts_touched;       /* [n_steps][n_moe_layers] row-major, or NULL (-> nil) */
    enum mtp_log_stop stop_reason;
    int64_t time_unix_ns;           /* when the request finished; 0 -> the writer's clock */
    /* Tree decoders only (log_tree.h; all NULL otherwise): */
    char *tree;                     /* the shape ("widths:4,2,1", "dynamic:8,4,4", ...) */
    int32_t *tree_nodes;            /* [n_steps] tokens verified, the pending one included */
    int32_t *tree_node;             /* [n_steps] accepted node (depth-major index; 0 = none) */
    int tree_depth;                 /* columns of tree_ranks (= depth) */
    int32_t *tree_ranks;            /* [n_steps][tree_depth] sibling rank per accepted depth, -1
                                     * beyond the step's accepted depth */
};

struct mtp_log_summary {
    uint64_t wall_ns; /* wall time of the whole run (this process, if resumed) */
    bool finished;    /* every request of the spec is in the log */
    int64_t end_unix_ns; /* 0 -> now */
};

/* ---- writer ------------------------------------------------------------- */

struct mtp_log_writer; /* opaque */
struct mtp_log_keyset; /* opaque; see "finished-request keys" below */

struct mtp_log_options {
    bool overwrite; /* mtp_log_open: replace an existing file (default: refuse) */
    bool fsync;     /* fsync after each record (default off: survives crashes, not power loss) */
};

/* Create PATH for a new log (refusing an existing file unless opt->overwrite;
 * OPT may be NULL) and lock it for this writer (see the file comment). The
 * directory must exist. Returns MTP_OK or MTP_ERR. */
int mtp_log_open(const char *path, const struct mtp_log_options *opt,
                 struct mtp_log_writer **out);

/* What mtp_log_open_resume found in the existing log. */
struct mtp_log_resume {
    bool has_run;       /* a whole "run" record is there (else the file was cut to 0: write one) */
    bool complete;      /* a "summary" with finished = true: nothing to do, nothing was cut */
    int n_requests;     /* whole request records kept */
    int n_resumes;      /* "resume" records kept */
    bool cut;           /* bytes were cut away (a partial record, or an unfinished summary) */
    uint64_t cut_at;    /* file size after the cut */
    uint64_t cut_bytes; /* how many bytes were removed */
    struct mtp_log_keyset *finished; /* keys of the kept requests; never NULL after success */
};

/* Open an existing log PATH to continue it: read every whole record, cut a
 * trailing partial record (and an unfinished summary, finished = false) with
 * ftruncate, and position the writer at the end. If SPEC_JSON is not NULL and
 * the log's run record holds a different spec, fail (resuming would mix two
 * experiments). A complete log is opened too (state->complete) and left
 * untouched. The log is locked before it is read (a second writer fails, naming
 * the holder's pid). Damage that is not a cut-off tail, a first record that is
 * not "run", or records after a finished summary fail, and then nothing is
 * cut. STATE is filled on success; release it with mtp_log_resume_free. */
int mtp_log_open_resume(const char *path, const char *spec_json, const struct mtp_log_options *opt,
                        struct mtp_log_writer **out, struct mtp_log_resume *state);
void mtp_log_resume_free(struct mtp_log_resume *state);

/* Append one record. Each fails (MTP_ERR, message "LOG <path>: write failed:
 * <strerror>") when the file cannot take it; the writer then refuses further
 * records. */
int mtp_log_write_run(struct mtp_log_writer *w, const struct mtp_log_run_info *info);
int mtp_log_write_request(struct mtp_log_writer *w, const struct mtp_request_record *r);
/* A "resume" record: time, host, git commit (NULL -> nil) and the count of
 * requests already in the log. The runner writes it after mtp_log_open_resume. */
int mtp_log_write_resume(struct mtp_log_writer *w, const char *git_commit);
/* The summary's request count is every request record in the file, including
 * those kept by a resume. */
int mtp_log_write_summary(struct mtp_log_writer *w, const struct mtp_log_summary *s);

/* A record of a type the caller defines (e.g. the runner's "plan",
 * experiments/log_plan.h): PACK must pack exactly one map holding a string
 * "type". Framed and written like every other record. */
int mtp_log_write_packed(struct mtp_log_writer *w,
                         void (*pack)(msgpack_packer *pk, const void *arg), const void *arg);

/* Requests in the file so far (kept by resume + written). */
int mtp_log_writer_requests(const struct mtp_log_writer *w);
const char *mtp_log_writer_path(const struct mtp_log_writer *w);

/* Close and free W (NULL is fine). Returns MTP_ERR if the final close/fsync
 * fails. */
int mtp_log_close(struct mtp_log_writer *w);

/* ---- finished-request keys (for resume) ----------------------------------- */

struct mtp_log_keyset; /* opaque set of (decoder, sampling_index, dataset, prompt_id, repeat,
                        * turn, batch_size); the functions without _turn mean turn 0, those
                        * without _batch batch size 1 */

struct mtp_log_keyset *mtp_log_keyset_create(void);
void mtp_log_keyset_free(struct mtp_log_keyset *s);
void mtp_log_keyset_add(struct mtp_log_keyset *s, const char *decoder, int sampling_index,
                        const char *dataset, const char *prompt_id, int repeat);
bool mtp_log_keyset_contains(const struct mtp_log_keyset *s, const char *decoder,
                             int sampling_index, const char *dataset, const char *prompt_id,
                             int repeat);
void mtp_log_keyset_add_turn(struct mtp_log_keyset *s, const char *decoder, int sampling_index,
                             const char *dataset, const char *prompt_id, int repeat, int turn);
bool mtp_log_keyset_contains_turn(const struct mtp_log_keyset *s, const char *decoder,
                                  int sampling_index, const char *dataset, const char *prompt_id,
                                  int repeat, int turn);
void mtp_log_keyset_add_batch(struct mtp_log_keyset *s, const char *decoder, int sampling_index,
                              const char *dataset, const char *prompt_id, int repeat, int turn,
                              int batch_size);
bool mtp_log_keyset_contains_batch(const struct mtp_log_keyset *s, const char *decoder,
                                   int sampling_index, const char *dataset,
                                   const char *prompt_id, int repeat, int turn, int batch_size);
/* The key of a decoded request record R. */
void mtp_log_keyset_add_record(struct mtp_log_keyset *s, const struct mtp_request_record *r);
bool mtp_log_keyset_contains_record(const struct mtp_log_keyset *s,
                                    const struct mtp_request_record *r);
int mtp_log_keyset_size(const struct mtp_log_keyset *s);

/* ---- reader ------------------------------------------------------------- */

struct mtp_log_reader; /* opaque; maps the file */

/* Open PATH for reading. Returns MTP_OK or MTP_ERR (missing/unreadable file). */
int mtp_log_reader_open(const char *path, struct mtp_log_reader **out);

/* The next record: *REC points to a map with a string "type", valid until the
 * next call or mtp_log_reader_close; *REC = NULL at the end (including a
 * cut-off last record, see mtp_log_reader_partial). OFFSET (may be NULL) gets
 * the record's byte offset. MTP_ERR for bytes that do not parse, a record
 * that is not a map with a string "type", or a "request" record that fails
 * to decode or breaks the validity rules of log_check.h (message names the
 * byte offset and the key): a record returned always decodes. */
int mtp_log_reader_next(struct mtp_log_reader *r, const msgpack_object **rec, uint64_t *offset);

/* Skip damaged records instead of failing on them (report --skip-damaged):
 * in /2 logs the reader resynchronises on the next intact frame; in /1 logs
 * only a request record that parses but fails its checks can be skipped.
 * What was skipped is counted in mtp_log_reader_damage. */
void mtp_log_reader_skip_damaged(struct mtp_log_reader *r, bool skip);

struct mtp_log_damage {
    int records;           /* records lost to damage (frame headers in the damaged stretches, >= 1 each) */
    uint64_t bytes;        /* bytes skipped */
    uint64_t first_offset; /* where the first damaged stretch starts */
};
void mtp_log_reader_damage(const struct mtp_log_reader *r, struct mtp_log_damage *out);

/* 2 for a framed mtpbench-log/2 file, 1 for bare /1 records. */
int mtp_log_reader_version(const struct mtp_log_reader *r);

/* After the end was reached: true if the file ends in a partial record; *AT
 * (may be NULL) gets its offset, which is also the end of the last whole one. */
bool mtp_log_reader_partial(const struct mtp_log_reader *r, uint64_t *at);
/* The byte offset just past the last record returned. */
uint64_t mtp_log_reader_offset(const struct mtp_log_reader *r);
void mtp_log_reader_close(struct mtp_log_reader *r);

/* Generic queries on a record (any msgpack map). NULL / false when the key is
 * absent or of another type. */
const msgpack_object *mtp_log_map_get(const msgpack_object *map, const char *key);
bool mtp_log_obj_is_str(const msgpack_object *o, const char *s);
char *mtp_log_obj_strdup(const msgpack_object *o);            /* NULL unless a string */
bool mtp_log_obj_int(const msgpack_object *o, int64_t *out);   /* any integer in range */
bool mtp_log_obj_uint(const msgpack_object *o, uint64_t *out); /* non-negative integer */
bool mtp_log_obj_double(const msgpack_object *o, double *out); /* float or integer */
/* The record's "type" string into BUF ("" if none). */
const char *mtp_log_record_type(const msgpack_object *rec, char *buf, int cap);

/* Decode a "request" record into OUT (zeroed first; every pointer allocated;
 * free with mtp_log_request_free, also after a failure). Fails naming the key
 * when a required key is missing or has the wrong type or length. */
int mtp_log_decode_request(const msgpack_object *rec, struct mtp_request_record *out);
void mtp_log_request_free(struct mtp_request_record *r);

/* A msgpack map (e.g. the run record's "spec") as compact JSON with sorted keys,
 * newly allocated; NULL if it holds something JSON cannot (binary, ext). */
char *mtp_log_obj_to_json(const msgpack_object *o);

#endif
