/*
 * routing.h - the MoE routing variants (docs/model.md §5): read from the
 * config by the engine (engine/config.h), executed by the kernels' router
 * (kernels/backend.h, struct mtp_route_params). Both include this.
 */
#ifndef MTP_ROUTING_H
#define MTP_ROUTING_H

enum mtp_scoring_func {
    MTP_SCORING_SIGMOID, /* V3: s = sigmoid(logits) */
    MTP_SCORING_SOFTMAX, /* V2: s = softmax(logits) */
};

enum mtp_topk_method {
    MTP_TOPK_NOAUX_TC,             /* V3: sigmoid + bias, group score = sum of top-2 biased */
    MTP_TOPK_GREEDY,               /* V2-Lite: plain top-k of s */
    MTP_TOPK_GROUP_LIMITED_GREEDY, /* V2: group score = max of s in the group */
};

#endif
