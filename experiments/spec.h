/*
 * spec.h - the experiment spec: a JSON file naming the model, backend, datasets,
 * prompt limits, sampling settings and decoders that the runner crosses
 * (docs/design.md §7). The format is documented in spec/experiment-spec.md;
 * spec/experiment-spec.schema.json describes it, this validator enforces it.
 *
 * Validation is strict and happens before any work: unknown keys at any level,
 * wrong types, missing required keys, out-of-range numbers, missing or
 * unreadable dataset files, a missing model directory, duplicate decoder names
 * or dataset names. Every message has the form
 *   SPEC: <file>: key '<path>': expected <what>, found <json value>
 * e.g. SPEC: exp.json: key 'decoders[2].depth': expected integer >= 1, found "three".
 * The one check that needs the model (exact drafting depth <= the model's
 * number of MTP modules) is mtp_spec_check_model, called after loading config.json.
 */
#ifndef MTP_SPEC_H
#define MTP_SPEC_H

#include <stdint.h> /* defines: uint64_t */

#include "../engine/wiring.h" /* defines: struct mtp_wiring */
#include "../engine/tree.h"   /* defines: struct mtp_tree_shape */

enum mtp_spec_backend {
    MTP_SPEC_BACKEND_CPU,
    MTP_SPEC_BACKEND_CUDA,
};

enum mtp_spec_decoder_type {
    MTP_SPEC_DECODER_BASELINE, /* one token per step, no drafts */
    MTP_SPEC_DECODER_MTP,      /* MTP speculative decoding, docs/design.md §5 */
    MTP_SPEC_DECODER_ADAPTIVE, /* MTP with adaptive depth: chained drafting that stops at the
                                * first draft (or product) less probable than a threshold */
};

/* What stops an adaptive decoder's drafting (engine/decode.h). */
enum mtp_spec_adaptive_rule {
    MTP_SPEC_ADAPTIVE_DRAFT,      /* "draft": p_j < threshold */
    MTP_SPEC_ADAPTIVE_CUMULATIVE, /* "cumulative": p_1 * ... * p_j < threshold */
};

enum mtp_spec_drafting {
    MTP_SPEC_DRAFTING_NONE,  /* baseline */
    MTP_SPEC_DRAFTING_EXACT, /* module k drafts token k (K <= D, the paper's formulation) */
    MTP_SPEC_DRAFTING_CHAIN, /* one module reused K times (vLLM/SGLang), any K */
};

/* Count of enum mtp_spec_decoder_type: keep it one past the last type, so
 * tests can walk every type the parser knows (mtp_spec_decoder_type_name). */
enum { MTP_SPEC_DECODER_TYPE_COUNT = MTP_SPEC_DECODER_ADAPTIVE + 1 };

/* The objects of a spec whose keys the parser checks (mtp_spec_keys). */
enum mtp_spec_object {
    MTP_SPEC_OBJECT_ROOT,     /* the top level */
    MTP_SPEC_OBJECT_SAMPLING, /* an entry of "sampling" */
    MTP_SPEC_OBJECT_BASELINE, /* a decoder of type "baseline" */
    MTP_SPEC_OBJECT_MTP,      /* a decoder of type "mtp" (chains and trees) */
    MTP_SPEC_OBJECT_ADAPTIVE, /* a decoder of type "adaptive" */
    MTP_SPEC_OBJECT_WIRING,   /* a decoder's "wiring" object */
    MTP_SPEC_OBJECT_DATASET,  /* an entry of "datasets" written as an object */
};
enum { MTP_SPEC_OBJECT_COUNT = MTP_SPEC_OBJECT_DATASET + 1 };

/* Upper bound on depth, only to catch typos (a depth of 1000 is never meant). */
enum { MTP_SPEC_MAX_DEPTH = 64 };

/* The largest batch size a spec may ask for: the decoder's own limit
 * (MTP_DECODE_MAX_BATCH; a test holds the two equal). */
enum { MTP_SPEC_MAX_BATCH = 256 };

struct mtp_spec_sampling {
    double temperature; /* >= 0; 0 = greedy (argmax), top_p/top_k then unused */
    double top_p;       /* in (0, 1]; 1 = off (default) */
    int top_k;          /* >= 0; 0 = off (default) */
};

struct mtp_spec_decoder {
    char *name;                      /* unique; default "baseline", "mtp-exact-k3", "mtp-chain-k3" */
    enum mtp_spec_decoder_type type;
    int depth;                       /* K drafts per step; 0 for baseline */
    enum mtp_spec_drafting drafting; /* NONE for baseline */
    int module;                      /* chain: the 1-based MTP module reused (default 1); else 0 */
    struct mtp_wiring wiring;        /* "wiring" object; absent fields stay _DEFAULT (the
                                      * model family's choice, resolved by the decoder) */
    double threshold;                /* adaptive: stop threshold in [0, 1]; else 0 */
    enum mtp_spec_adaptive_rule rule; /* adaptive: "rule" (default cumulative) */
    struct mtp_tree_shape tree;      /* mtp "tree" (spec_tree.h): kind NONE for chains; depth
                                      * is then the tree's */
    int draft_vocab;                 /* mtp/adaptive "draft_vocab": draft heads over the N most
                                      * frequent ids (spec/decoding.md); 0 = full (absent) */
};

/* True for decoders that draft (mtp and adaptive). */
static inline int mtp_spec_decoder_drafts(enum mtp_spec_decoder_type t)
{
    return t != MTP_SPEC_DECODER_BASELINE;
}

struct mtp_spec {
    char *path;        /* the spec file as given ("<string>" when parsed from text) */
    char *name;        /* "name" key, default the spec file's stem */
    char *description; /* "description" key, default "" */
    char *model_dir;   /* resolved against the spec file's directory */
    enum mtp_spec_backend backend; /* default cpu */
    int threads;                   /* 0 = the CPUs available (default) */
    int n_datasets;
    char **datasets;      /* [n_datasets] JSONL paths, resolved; each readable at load */
    char **dataset_names; /* [n_datasets] file stems ("code.jsonl" -> "code"), unique */
    char **chat_templates; /* [n_datasets] how prompts become the model's input
                            * (experiments/chat_template.h): "none" (default), "model", or a
                            * template file path, resolved and readable; the dataset's own
                            * "chat_template", else the top-level one */
    int max_prompts;       /* per dataset; 0 = all (default) */
    int max_prompts_per_category; /* per (dataset, category), drawn with the seed; 0 = off */
    int max_prompt_tokens; /* prompts with more tokens are skipped by the runner; 0 = no limit */
    int max_new_tokens;    /* >= 1, required */
    int warmup;            /* warm-up requests before measuring, not logged (default 0) */
    int repeats;           /* >= 1 (default 1) */
    uint64_t seed;         /* default 0; JSON integer 0 .. 2^63-1 */
    int n_sampling;
    struct mtp_spec_sampling *sampling; /* [n_sampling], >= 1 entry, no duplicates */
    int n_decoders;
    struct mtp_spec_decoder *decoders;  /* [n_decoders], >= 1 entry */
    int n_batch_sizes;
    int *batch_sizes;      /* [n_batch_sizes] "batch_size": requests decoded together
                            * (engine/decode_batch.h), a sweep axis; distinct, each
                            * 1..MTP_SPEC_MAX_BATCH; default [1] */
    char *output_dir;      /* resolved; created by the runner */
    char *json_text;       /* the spec as compact JSON with sorted keys (embedded in run records) */
};

/* Read and validate the spec file PATH into SPEC (zeroed first; free with
 * mtp_spec_free, also after a failure). Relative paths inside the spec are
 * resolved against PATH's directory. Returns MTP_OK or MTP_ERR. */
int mtp_spec_load(const char *path, struct mtp_spec *spec);

/* The same from JSON text; SOURCE names it in messages and BASE_DIR resolves
 * relative paths (NULL = the current directory). */
int mtp_spec_parse(const char *json_text, const char *source, const char *base_dir,
                   struct mtp_spec *spec);

/* The model-dependent checks, run once config.json is loaded: exact drafting
 * needs depth <= NUM_NEXTN_PREDICT_LAYERS; chain drafting needs its module to
 * exist (module <= D, so D >= 1) but allows any depth. Returns MTP_OK or
 * MTP_ERR with a message naming the spec file and the decoder's key. */
int mtp_spec_check_model(const struct mtp_spec *spec, int num_nextn_predict_layers);

/* The draft-vocabulary checks, once config.json is loaded: every decoder's
 * draft_vocab <= VOCAB_SIZE, and when any decoder sets one, MODEL_DIR's
 * token_frequencies.bin must exist and be valid (draft_vocab.h). Returns
 * MTP_OK or MTP_ERR naming the spec file and the decoder's key, or the
 * frequency file and its field. */
int mtp_spec_check_draft_vocab(const struct mtp_spec *spec, int vocab_size);

/* The keys OBJECT accepts, NULL-terminated: the parser's own lists, exposed so
 * a test can hold spec/experiment-spec.schema.json and spec/experiment-spec.md
 * to them. Static storage; never NULL for a valid OBJECT. */
const char *const *mtp_spec_keys(enum mtp_spec_object object);

/* The largest of SPEC's batch sizes (1 when it has none). */
int mtp_spec_max_batch_size(const struct mtp_spec *spec);

/* Free everything SPEC owns and zero it (safe on a zeroed or half-built spec). */
void mtp_spec_free(struct mtp_spec *spec);

/* The strings the spec and the logs use: "cpu", "baseline", "exact", ... */
const char *mtp_spec_backend_name(enum mtp_spec_backend b);
const char *mtp_spec_decoder_type_name(enum mtp_spec_decoder_type t);
const char *mtp_spec_drafting_name(enum mtp_spec_drafting d);
const char *mtp_spec_adaptive_rule_name(enum mtp_spec_adaptive_rule r);

#endif
