/*
 * engine_internal.h - the engine's private state, shared by engine.c (life
 * cycle, caches) and forward.c (the layer math). Not part of the public API.
 */
#ifndef MTP_ENGINE_INTERNAL_H
#define MTP_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "engine_tree.h"

/* Activation scratch in backend memory, sized for max_batch tokens. */
struct mtp_scratch {
    float *x;       /* [B, d]        residual stream */
    float *xn;      /* [B, d]        normalised input of a sub-layer */
    float *tmp;     /* [B, d]        sub-layer output before the residual add */
    float *q_lat;   /* [B, rq]       q LoRA latent */
    float *q;       /* [B, H*(dn+dr)] queries */
    float *attn;    /* [B, H*dv]     attention output per head, before o_proj */
    float *cat;     /* [B, 2d]       MTP input [enorm(emb) ; hnorm(h)] */
    float *kv;      /* [B, rkv+dr]   latent cache rows of this forward, before they go to
                     *               each sequence's cache */
    float *logits;  /* [B, V] */
    int32_t *idx;   /* [n_moe_main, B, k] routed experts, one slice per main MoE layer */
    float *weights; /* [B, k]        routing weights */
};

/* One sequence's latent caches (main layers and MTP modules) and their lengths. */
struct mtp_seq_caches {
    float **cache;  /* [n_layers] -> [capacity, cache_width] in backend memory */
    int *len;       /* [1 + D]: 0 = main model, k = MTP module k */
};

/* The forward in flight: its segments (a run of tokens of one sequence each,
 * engine.h) and every token's RoPE position, set by engine.c before the layers
 * run and read by forward.c. */
struct mtp_fwd {
    int n;                          /* tokens, all segments */
    int n_segs;
    const struct mtp_segment *segs; /* [n_segs] */
    int32_t *pos;                   /* host [max_batch] */
};

struct mtp_engine {
    struct mtp_model *model;
    struct mtp_backend *backend;
    const struct mtp_backend_i *be; /* backend->iface */
    void *bctx;                     /* backend->ctx */
    struct mtp_engine_options opt;

    struct mtp_rope rope;
    struct mtp_mla_dims mla;
    struct mtp_route_params route;

    struct mtp_seq_caches *seqs; /* [max_seqs] */
    int n_seqs;         /* max_seqs */
    int cache_width;    /* rkv + dr */
    struct mtp_fwd fw;

    struct mtp_scratch s;
    float *host_rows;   /* [B, max(V, 2d, cache_width)] host staging (trace, hidden) */
    int32_t *host_idx;  /* [n_moe_main, B, k] host copy of routing for experts-touched */

    int n_moe_main;         /* MoE layers in the main model */
    int *experts_touched;   /* [n_moe_main] for the last main forward, all its tokens */
    int *seg_touched;       /* [max_seqs, n_moe_main]: the same per segment of that forward */
    unsigned char *expert_seen; /* [E] scratch bitmap */

    struct {
        bool on;        /* a failed chunk is being rerun to find its first bad stage */
        bool found;
        char where[128]; /* that stage ("model.layers.2") */
    } diag;
    bool mtp_zero_position0;    /* wiring: zero the module input embedding at position 0 */
    bool mtp_hidden_before_norm; /* wiring: MTP hidden_out is the block output, before
                                  * shared_head.norm */

    mtp_trace_fn trace;
    mtp_trace_i32_fn trace_i32;
    void *trace_user;

    struct mtp_draft_vocab *draft_vocabs; /* built on first use (engine_draft_vocab.c) */
};

/* engine_draft_vocab.c: distinct subset heads per draft vocabulary (one per
 * distinct module head; a checkpoint with own heads per module has D). */
enum { MTP_MAX_DRAFT_HEADS = 64 };
void mtp_engine_draft_vocabs_free(struct mtp_engine *e);

/* forward.c: one decoder block (attention + FFN with residuals) over the
 * forward in flight (e->fw), whose residual stream is s.x; each segment reads
 * and extends its own sequence's cache of LAYER. MOE_SLOT >= 0: a main-model
 * MoE layer, whose experts touched are recorded at that index. */
void mtp_forward_block(struct mtp_engine *e, const struct mtp_layer *layer, int moe_slot);

/* forward.c: experts_touched[0..n_moe) and seg_touched of the forward just
 * enqueued, from one download of every main MoE layer's routing (its slice
 * of s.idx), not one wait per layer. */
void mtp_forward_count_experts(struct mtp_engine *e, int n_moe);

/* The cache rows a segment writes start here: its start position, or the
 * tree batch's start row. */
static inline int mtp_segment_first_row(const struct mtp_segment *g)
{
    return g->tree ? g->tree->start_row : g->start_pos;
}

/* engine_tree.c: a tree batch of N tokens must fit one chunk, and every key
 * row must exist after the forward wrote its rows (a key beyond them would
 * read stale data). MTP_OK or MTP_ERR. */
int mtp_tree_batch_check(const struct mtp_engine *e, int n, const struct mtp_tree_batch *b);

/* Trace helper: downloads and reports a backend tensor when tracing is on. */
void mtp_engine_trace(struct mtp_engine *e, const char *name, int layer, const float *data,
                      int rows, int cols, int stride);

/* engine_finite.c: NaN/Inf checks. A non-finite value found by mtp_finite_rows. */
struct mtp_nonfinite {
    const char *what; /* "logits", "hidden state" */
    int row;          /* token of the forward */
    size_t col;       /* index in the row */
    float value;
};

/* True when the ROWS x COLS host values X (NULL: nothing to check) are all
 * finite; else false and *BAD names the first one, as WHAT. */
bool mtp_finite_rows(const float *x, int rows, int cols, const char *what,
                     struct mtp_nonfinite *bad);

/* Diagnosis of a failed chunk: begin, rerun the chunk (its stages call
 * mtp_engine_diag_stage on the backend buffer they produced, a no-op unless
 * diagnosing), then mtp_engine_nonfinite_error sets the message naming MODULE,
 * the position (and sequence, in a batch of several) of the bad row, the first non-finite stage or else HEAD, and ends it. */
void mtp_engine_diag_begin(struct mtp_engine *e);
void mtp_engine_diag_stage(struct mtp_engine *e, const float *buf, int n, int width,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int mtp_engine_nonfinite_error(struct mtp_engine *e, const char *module,
                               const struct mtp_nonfinite *bad, const char *head);

#endif
