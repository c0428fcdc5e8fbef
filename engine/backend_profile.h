/*
 * backend_profile.h - a backend that times the ops of another (mtpbench bench
 * --ops): which term of a forward's cost is which.
 *
 * The wrapper's vtable forwards every call to the inner backend unchanged, so
 * results are bitwise those of the inner backend (tests/test_backend_profile.c).
 * While enabled it also reads CLOCK_MONOTONIC around each call, with the inner
 * synchronize() before the second reading so that an asynchronous backend
 * (CUDA) is charged for the op's kernels, not just for queuing them; and it
 * counts calls. Disabled (the default), a call costs one extra indirect call.
 * A backend that is never wrapped pays nothing.
 *
 * Matmuls are split by the weight they read, recognised by its address inside
 * the model's structs (struct mtp_layer, mtp_model.lm_head): no name parsing.
 * moe_ffn is one kind, the routed experts and the shared expert together: the
 * backend sums them inside one op (backend.h), so they cannot be separated
 * without changing the summation and therefore the bits. For an estimate of
 * the split, the shared probe (off by default) runs the shared expert once
 * more after each moe_ffn, as a dense ffn of the same rows into a scratch
 * buffer the forward never reads, and times it apart (shared_probe_ns): the
 * results stay bitwise the same, the forward gets longer by that time, and
 * the probe reads weights moe_ffn just read (warm caches), so it is a lower
 * estimate of the shared expert's share of moe_ffn.
 */
#ifndef MTP_BACKEND_PROFILE_H
#define MTP_BACKEND_PROFILE_H

#include "../kernels/backend.h"
#include "model.h" /* defines: struct mtp_model, mtp_layer (the ops are named by the weight they read) */

enum mtp_prof_op {
    MTP_PROF_EMBED,
    MTP_PROF_MM_ATTN,    /* matmul by q_a, q_b, q, kv_a, o (attention projections) */
    MTP_PROF_MM_HEAD,    /* matmul by lm_head, a module's head, a draft-vocabulary head */
    MTP_PROF_MM_EH_PROJ, /* matmul by an MTP module's eh_proj */
    MTP_PROF_MM_OTHER,   /* matmul by any other weight */
    MTP_PROF_FFN,        /* dense SwiGLU (first_k_dense_replace layers) */
    MTP_PROF_ROUTE,      /* router: scores, top-k, weights */
    MTP_PROF_MOE,        /* moe_ffn: routed experts + shared expert */
    MTP_PROF_RMSNORM,
    MTP_PROF_ROPE,
    MTP_PROF_ATTENTION,  /* mla_attention and mla_tree_attention */
    MTP_PROF_ADD,
    MTP_PROF_UPLOAD,
    MTP_PROF_DOWNLOAD,
    MTP_PROF_COPY,
    MTP_PROF_ALLOC,      /* alloc and release */
    MTP_PROF_OTHER,      /* prepare_weight, synchronize called from outside */
    MTP_PROF_N
};

/* "embed", "matmul_attn", ... (the JSON keys of bench --ops). */
const char *mtp_prof_op_name(enum mtp_prof_op op);

/* What the wrapper accumulated since the last reset. */
struct mtp_prof_counts {
    double ns[MTP_PROF_N];
    long calls[MTP_PROF_N];
    double shared_probe_ns; /* the shared probe's time: in no kind above */
    long shared_probe_calls;
};

/* A profiling backend over INNER (borrowed: it must outlive the wrapper, and
 * mtp_backend_free on the wrapper leaves it alone). MODEL (borrowed, may be
 * NULL: every matmul is then MTP_PROF_MM_OTHER) classifies matmul weights.
 * Starts disabled. Returns MTP_OK and *OUT. */
int mtp_backend_profile_create(struct mtp_backend *inner, const struct mtp_model *model,
                               struct mtp_backend **out);

/* Whether BE is a profiling backend. */
int mtp_backend_is_profile(const struct mtp_backend *be);

/* Start (ON = 1) or stop timing and counting. BE must be a profiling backend. */
void mtp_backend_profile_enable(struct mtp_backend *be, int on);
/* Run the shared probe (above) while enabled (ON = 1) or not (the default).
 * Its scratch buffer comes from the inner backend, so a wrapper that probed
 * must be freed before its inner backend. */
void mtp_backend_profile_probe_shared(struct mtp_backend *be, int on);
void mtp_backend_profile_reset(struct mtp_backend *be);
void mtp_backend_profile_read(const struct mtp_backend *be, struct mtp_prof_counts *out);

#endif
