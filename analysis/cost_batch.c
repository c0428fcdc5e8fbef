/*
 * cost_batch.c - the cost model at batch size B (cost_batch.h): the batch
 * curve turned into a cost point in units of the batch-B baseline step, then
 * the batch-1 formulas of cost_model.c, unchanged.
 */
#include "cost_batch.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset */

#include "core/error.h" /* defines: MTP_CHECK */

const char *mtp_cost_batch_unpriceable(const struct mtp_costs *costs,
                                       const struct mtp_cost_decoder *d, int K)
{
    const struct mtp_cost_batch *b = costs->batch;
    if (!b)
        return "the cost file has no batch curve (`mtpbench bench --batch --text DATASET "
               "--json FILE`)";
    if (K < 0 || K > MTP_COST_BATCH_MAX_K)
        return "its depth is outside the batch curve (K = 0..3)";
    if (K > 0 && d->draft_vocab > 0)
        return "the batch curve times the full draft head only, not a draft vocabulary";
    if (K > 0 && d->drafting == MTP_SPEC_DRAFTING_EXACT && K > b->modules)
        return "exact drafting of this depth needs more MTP modules than the batch curve times";
    if (K > 0 && d->drafting == MTP_SPEC_DRAFTING_CHAIN &&
        (d->module < 1 || d->module > b->modules))
        return "its chain module is not timed in the batch curve";
    if (d->drafting != MTP_SPEC_DRAFTING_CHAIN && d->drafting != MTP_SPEC_DRAFTING_EXACT)
        return "its drafting is neither exact nor chain";
    return NULL;
}

void mtp_cost_batch_point(const struct mtp_costs *costs, int bi, struct mtp_cost_point *p)
{
    const struct mtp_cost_batch *b = costs->batch;
    MTP_CHECK(b && bi >= 0 && bi < b->n_b);
    memset(p, 0, sizeof *p);
    for (int n = 1; n <= MTP_COST_BATCH_MAX_K + 1; n++) {
        p->verify[n] = b->verify[bi][n - 1];
        for (int k = 1; k <= b->modules; k++)
            p->draft[k][n] = b->draft[bi][n - 1][k - 1];
    }
    /* Choices and the rollback are per sequence: B of them per batched step,
     * each priced in the batch-1 unit V(1) = F(1, 0). */
    double scale = b->B[bi] * b->unit[bi];
    const struct mtp_cost_point *m = &costs->median;
    p->argmax = m->argmax * scale;
    p->argmax_probs = m->argmax_probs * scale;
    p->sampled = m->sampled * scale;
    p->update = m->update * scale;
}

double mtp_cost_batch_speedup(const struct mtp_costs *costs, int bi,
                              const struct mtp_cost_decoder *d, const double *alpha, int K)
{
    MTP_CHECK(!mtp_cost_batch_unpriceable(costs, d, K));
    struct mtp_cost_point p;
    mtp_cost_batch_point(costs, bi, &p);
    return mtp_cost_speedup(&p, d, alpha, K);
}

int mtp_cost_batch_best_depth(const struct mtp_costs *costs, int bi,
                              const struct mtp_cost_decoder *d, const double *alpha, int kmax,
                              double *best)
{
    MTP_CHECK(kmax >= 0 && kmax <= MTP_COST_BATCH_MAX_K);
    int k_best = 0;
    *best = 1;
    for (int K = 1; K <= kmax; K++) {
        double s = mtp_cost_batch_speedup(costs, bi, d, alpha, K);
        if (s > *best) {
            *best = s;
            k_best = K;
        }
    }
    return k_best;
}

bool mtp_cost_batch_noisy(const struct mtp_cost_batch *b)
{
    return b->forward1_spread > 0.10;
}

void mtp_cost_batch_free(struct mtp_cost_batch *b)
{
    free(b);
}
