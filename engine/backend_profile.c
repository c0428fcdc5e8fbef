/*
 * backend_profile.c - the op-timing backend wrapper (backend_profile.h).
 *
 * Every vtable entry is a thin forward: time (when enabled), call the inner
 * op with the same arguments, synchronize the inner backend, stop the clock.
 * The synchronize is what makes CUDA figures mean something; on CPU it is a
 * no-op call. The optional entries (max_invariant_tokens, set_prefill) stay
 * NULL exactly when the inner ones are, so the engine takes the same paths.
 */
#include "backend_profile.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strstr */
#include <time.h>   /* defines: clock_gettime */

#include "../core/error.h"

struct prof_ctx {
    struct mtp_backend *inner;
    const struct mtp_model *model;
    struct mtp_backend_i iface; /* a copy per wrapper: its optional entries follow inner's */
    int enabled;
    int probe_shared;
    float *scratch;        /* the probe's output, inner backend memory */
    size_t scratch_bytes;
    struct mtp_prof_counts c;
};

static const char *const op_names[MTP_PROF_N] = {
    [MTP_PROF_EMBED] = "embed",          [MTP_PROF_MM_ATTN] = "matmul_attn",
    [MTP_PROF_MM_HEAD] = "matmul_head",  [MTP_PROF_MM_EH_PROJ] = "matmul_eh_proj",
    [MTP_PROF_MM_OTHER] = "matmul_other", [MTP_PROF_FFN] = "dense_ffn",
    [MTP_PROF_ROUTE] = "router",         [MTP_PROF_MOE] = "moe_ffn",
    [MTP_PROF_RMSNORM] = "rmsnorm",      [MTP_PROF_ROPE] = "rope",
    [MTP_PROF_ATTENTION] = "attention",  [MTP_PROF_ADD] = "add",
    [MTP_PROF_UPLOAD] = "upload",        [MTP_PROF_DOWNLOAD] = "download",
    [MTP_PROF_COPY] = "copy",            [MTP_PROF_ALLOC] = "alloc",
    [MTP_PROF_OTHER] = "other",
};

const char *mtp_prof_op_name(enum mtp_prof_op op)
{
    MTP_CHECK(op >= 0 && op < MTP_PROF_N);
    return op_names[op];
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The bracket every forward uses: T0 is 0 when disabled, so a disabled
 * wrapper reads no clock and does not synchronize. */
static double op_begin(const struct prof_ctx *p) { return p->enabled ? now_ns() : 0; }

static void op_end(struct prof_ctx *p, enum mtp_prof_op op, double t0)
{
    if (!p->enabled)
        return;
    p->inner->iface->synchronize(p->inner->ctx);
    p->c.ns[op] += now_ns() - t0;
    p->c.calls[op]++;
}

/* Whether W lies inside the object [BASE, BASE + SIZE): the weight is a
 * member of that struct. Compared as integers: the pointers may belong to
 * different objects. */
static int inside(const struct mtp_weight *w, const void *base, size_t size)
{
    uintptr_t a = (uintptr_t)w, b = (uintptr_t)base;
    return a >= b && a < b + size;
}

static enum mtp_prof_op classify(const struct prof_ctx *p, const struct mtp_weight *w)
{
    const struct mtp_model *m = p->model;
    if (m && (w == &m->lm_head || w->data == m->lm_head.data))
        return MTP_PROF_MM_HEAD;
    for (int i = 0; m && i < m->n_layers; i++) {
        const struct mtp_layer *l = &m->layers[i];
        if (inside(w, &l->attn, sizeof l->attn))
            return MTP_PROF_MM_ATTN;
        if (l->is_mtp && w == &l->nextn.eh_proj)
            return MTP_PROF_MM_EH_PROJ;
        if (l->is_mtp && (w == l->nextn.head || w == &l->nextn.own_head))
            return MTP_PROF_MM_HEAD;
    }
    /* The engine's gathered subset heads (engine_draft_vocab.c) live outside
     * the model; it names them after their source head. */
    if (w->name && strstr(w->name, "[draft_vocab "))
        return MTP_PROF_MM_HEAD;
    return MTP_PROF_MM_OTHER;
}

#define INNER(p) ((p)->inner->iface)
#define ICTX(p) ((p)->inner->ctx)

static void p_free(void *ctx)
{
    struct prof_ctx *p = ctx;
    if (p->scratch)
        INNER(p)->release(ICTX(p), p->scratch);
    free(p);
}

static void *p_alloc(void *ctx, size_t bytes)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    void *r = INNER(p)->alloc(ICTX(p), bytes);
    op_end(p, MTP_PROF_ALLOC, t0);
    return r;
}

static void p_release(void *ctx, void *ptr)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->release(ICTX(p), ptr);
    op_end(p, MTP_PROF_ALLOC, t0);
}

static void p_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->upload(ICTX(p), dst, src, bytes);
    op_end(p, MTP_PROF_UPLOAD, t0);
}

static void p_download(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->download(ICTX(p), dst, src, bytes);
    op_end(p, MTP_PROF_DOWNLOAD, t0);
}

static void p_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->copy(ICTX(p), dst, src, bytes);
    op_end(p, MTP_PROF_COPY, t0);
}

static void p_synchronize(void *ctx)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->synchronize(ICTX(p));
    op_end(p, MTP_PROF_OTHER, t0);
}

static int p_prepare_weight(void *ctx, struct mtp_weight *w)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    int r = INNER(p)->prepare_weight(ICTX(p), w);
    op_end(p, MTP_PROF_OTHER, t0);
    return r;
}

static void p_embed(void *ctx, const struct mtp_weight *table, const int32_t *tokens, int n,
                    float *out)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->embed(ICTX(p), table, tokens, n, out);
    op_end(p, MTP_PROF_EMBED, t0);
}

static void p_matmul(void *ctx, const struct mtp_weight *w, const float *x, int x_stride, int n,
                     float *y, int y_stride)
{
    struct prof_ctx *p = ctx;
    /* Classified before the clock starts: the lookup is the wrapper's cost. */
    enum mtp_prof_op op = p->enabled ? classify(p, w) : MTP_PROF_MM_OTHER;
    double t0 = op_begin(p);
    INNER(p)->matmul(ICTX(p), w, x, x_stride, n, y, y_stride);
    op_end(p, op, t0);
}

static void p_rmsnorm(void *ctx, const float *x, int x_stride, const struct mtp_weight *w, int n,
                      int dim, float eps, float *y, int y_stride)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->rmsnorm(ICTX(p), x, x_stride, w, n, dim, eps, y, y_stride);
    op_end(p, MTP_PROF_RMSNORM, t0);
}

static void p_rope(void *ctx, float *x, int x_stride, int n, int n_heads, int head_stride,
                   int offset, int start_pos, const struct mtp_rope *rope)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->rope(ICTX(p), x, x_stride, n, n_heads, head_stride, offset, start_pos, rope);
    op_end(p, MTP_PROF_ROPE, t0);
}

static void p_mla_attention(void *ctx, const struct mtp_mla_dims *dims,
                            const struct mtp_weight *kv_b, const float *q, int n, int start_pos,
                            const float *cache, float *out)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->mla_attention(ICTX(p), dims, kv_b, q, n, start_pos, cache, out);
    op_end(p, MTP_PROF_ATTENTION, t0);
}

static void p_mla_tree_attention(void *ctx, const struct mtp_mla_dims *dims,
                                 const struct mtp_weight *kv_b, const float *q, int n,
                                 const struct mtp_tree_keys *keys, const float *cache,
                                 float *out)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->mla_tree_attention(ICTX(p), dims, kv_b, q, n, keys, cache, out);
    op_end(p, MTP_PROF_ATTENTION, t0);
}

static void p_route(void *ctx, const struct mtp_moe *moe, const struct mtp_route_params *rp,
                    const float *x, int n, int32_t *idx, float *weights)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->route(ICTX(p), moe, rp, x, n, idx, weights);
    op_end(p, MTP_PROF_ROUTE, t0);
}

/* The shared expert of MOE over the same N rows X again, into scratch. The
 * scratch grows to the widest call; bench's warm-up round meets every n. */
static void probe_shared(struct prof_ctx *p, const struct mtp_moe *moe, const float *x, int n)
{
    size_t bytes = (size_t)n * (size_t)moe->shared.down.rows * sizeof(float);
    if (bytes > p->scratch_bytes) {
        if (p->scratch)
            INNER(p)->release(ICTX(p), p->scratch);
        p->scratch = INNER(p)->alloc(ICTX(p), bytes);
        p->scratch_bytes = bytes;
    }
    double t0 = now_ns();
    INNER(p)->ffn(ICTX(p), &moe->shared, x, n, p->scratch);
    INNER(p)->synchronize(ICTX(p));
    p->c.shared_probe_ns += now_ns() - t0;
    p->c.shared_probe_calls++;
}

static void p_moe_ffn(void *ctx, const struct mtp_moe *moe, int top_k, const float *x, int n,
                      const int32_t *idx, const float *weights, float *y)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->moe_ffn(ICTX(p), moe, top_k, x, n, idx, weights, y);
    op_end(p, MTP_PROF_MOE, t0);
    if (p->enabled && p->probe_shared && moe->has_shared)
        probe_shared(p, moe, x, n);
}

static void p_ffn(void *ctx, const struct mtp_ffn *ffn, const float *x, int n, float *y)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->ffn(ICTX(p), ffn, x, n, y);
    op_end(p, MTP_PROF_FFN, t0);
}

static void p_add(void *ctx, float *y, const float *x, size_t n)
{
    struct prof_ctx *p = ctx;
    double t0 = op_begin(p);
    INNER(p)->add(ICTX(p), y, x, n);
    op_end(p, MTP_PROF_ADD, t0);
}

/* Queries, not work: forwarded untimed. */
static int p_max_invariant_tokens(void *ctx)
{
    struct prof_ctx *p = ctx;
    return INNER(p)->max_invariant_tokens(ICTX(p));
}

static void p_set_prefill(void *ctx, int on)
{
    struct prof_ctx *p = ctx;
    INNER(p)->set_prefill(ICTX(p), on);
}

static const struct mtp_backend_i prof_template = {
    .name = "profile",
    .free = p_free,
    .alloc = p_alloc,
    .release = p_release,
    .upload = p_upload,
    .download = p_download,
    .copy = p_copy,
    .synchronize = p_synchronize,
    .prepare_weight = p_prepare_weight,
    .embed = p_embed,
    .matmul = p_matmul,
    .rmsnorm = p_rmsnorm,
    .rope = p_rope,
    .mla_attention = p_mla_attention,
    .mla_tree_attention = p_mla_tree_attention,
    .route = p_route,
    .moe_ffn = p_moe_ffn,
    .ffn = p_ffn,
    .add = p_add,
};

int mtp_backend_profile_create(struct mtp_backend *inner, const struct mtp_model *model,
                               struct mtp_backend **out)
{
    MTP_CHECK(inner && inner->iface);
    struct prof_ctx *p = mtp_xcalloc(1, sizeof *p);
    p->inner = inner;
    p->model = model;
    p->iface = prof_template;
    /* Messages name the backend doing the work ("preparing ... for backend cpu"). */
    p->iface.name = inner->iface->name;
    p->iface.max_invariant_tokens = inner->iface->max_invariant_tokens ? p_max_invariant_tokens
                                                                       : NULL;
    p->iface.set_prefill = inner->iface->set_prefill ? p_set_prefill : NULL;
    struct mtp_backend *be = mtp_xcalloc(1, sizeof *be);
    be->iface = &p->iface;
    be->ctx = p;
    *out = be;
    return MTP_OK;
}

int mtp_backend_is_profile(const struct mtp_backend *be)
{
    return be && be->iface && be->iface->free == p_free;
}

static struct prof_ctx *prof_of(const struct mtp_backend *be)
{
    MTP_CHECK(mtp_backend_is_profile(be));
    return be->ctx;
}

void mtp_backend_profile_enable(struct mtp_backend *be, int on) { prof_of(be)->enabled = on != 0; }

void mtp_backend_profile_probe_shared(struct mtp_backend *be, int on)
{
    prof_of(be)->probe_shared = on != 0;
}

void mtp_backend_profile_reset(struct mtp_backend *be)
{
    memset(&prof_of(be)->c, 0, sizeof prof_of(be)->c);
}

void mtp_backend_profile_read(const struct mtp_backend *be, struct mtp_prof_counts *out)
{
    *out = prof_of(be)->c;
}
