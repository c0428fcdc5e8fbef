/*
 * cpu_oracle.h - slow reference implementations used only by tests to check
 * the fast CPU kernels (never called by the engine).
 */
#ifndef MTP_CPU_ORACLE_H
#define MTP_CPU_ORACLE_H

#include "../backend.h"

/* MLA attention in the naive form (docs/model.md §3.2): per cache row j and head h,
 * decompress k_nope = W_UK[h] c_j and v = W_UV[h] c_j, then standard causal
 * attention with scores (q_nope . k_nope + q_pe . kpe_j) * scale. Accumulates
 * in double, writes float. Same arguments and shapes as
 * mtp_backend_i.mla_attention: q [n, H*(dn+dr)], cache [start_pos+n, rkv+dr],
 * kv_b [H*(dn+dv), rkv], out [n, H*dv]. */
void mtp_cpu_mla_attention_naive(const struct mtp_mla_dims *dims, const struct mtp_weight *kv_b,
                                 const float *q, int n, int start_pos, const float *cache,
                                 float *out);

/* y[t, r] = mtp_cpu_dot_f32(decoded W[r, :], x[t, :], cols): the canonical
 * order itself, one output at a time, for checking the blocked matmul kernels
 * bitwise. Shapes as mtp_backend_i.matmul. */
void mtp_cpu_matmul_canonical(const struct mtp_weight *w, const float *x, int x_stride, int n,
                              float *y, int y_stride);

#endif
