/*
 * tree_accept.h - drafting siblings and accepting among them (spec/decoding.md
 * "Tree decoding", "Lossless acceptance over siblings").
 *
 * Sampling: the children of a node are drawn WITHOUT replacement from the
 * draft distribution q at that node: x_1 ~ q, x_i ~ q_i = q restricted to
 * V \ {x_1..x_{i-1}}, renormalised. Acceptance is recursive rejection
 * sampling over them (SpecInfer's multi-step speculative sampling, Miao et
 * al. 2024, with the without-replacement residual of Jeon et al. 2024 /
 * Yang et al. 2024): with r_1 = p (the target at the node), candidate i is
 * accepted with probability min(1, r_i(x_i) / q_i(x_i)); on rejection
 * r_{i+1} = normalize(max(r_i - q_i, 0)) -- with q_i, the distribution x_i was
 * actually drawn from, not q; if all are rejected the token is drawn from
 * the last residual. The emitted token is then distributed exactly as p.
 * Uniforms are passed in so tests can force every branch.
 */
#ifndef MTP_TREE_ACCEPT_H
#define MTP_TREE_ACCEPT_H

#include <stdint.h>

/* The K largest of X [n] in descending order (ties to the lower index) into
 * OUT [k]; K <= n. */
void mtp_tree_top_k(const float *x, int n, int k, int32_t *out);

/* Up to K distinct tokens drawn without replacement from Q [n] with the
 * uniforms U [k] (draw i uses u[i]) into OUT; fewer when the support of q
 * runs out. WORK [n] scratch. Returns the number drawn. */
int mtp_tree_draw_siblings(const float *q, int n, int k, const float *u, int32_t *out,
                           float *work);

/* Recursive rejection sampling at one node: target P [n], draft Q [n], the K
 * candidates C drawn from Q without replacement in that order, uniforms U
 * [k+1] (u[i] decides candidate i, u[k] draws the residual). Returns the index
 * of the accepted candidate, or -1 with *FINAL drawn from the last residual.
 * WORK [3n] scratch. */
int mtp_tree_accept_node(const float *p, const float *q, const int32_t *c, int k, int n,
                         const float *u, float *work, int32_t *final_token);

#endif
