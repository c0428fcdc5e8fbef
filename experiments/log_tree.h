/*
 * log_tree.h - the optional tree-decoding fields of a "request" record
 * (spec/log-format.md "Tree decoders"): "tree" (the shape, e.g.
 * "widths:4,2,1"), and per step "tree_nodes" (tokens verified, the pending
 * one included), "tree_node" (the accepted node, depth-major index) and
 * "tree_ranks" (the sibling rank of the accepted node at each depth 1..a_s).
 * Absent from chain and baseline records; readers of older logs ignore them.
 */
#ifndef MTP_LOG_TREE_H
#define MTP_LOG_TREE_H

#include <msgpack.h>

#include "log.h"

/* Map entries the tree fields add to R's record (0 when R->tree is NULL). */
int mtp_log_tree_keys(const struct mtp_request_record *r);
void mtp_log_pack_tree(msgpack_packer *pk, const struct mtp_request_record *r);
/* Read the tree fields of REC into R (left NULL when absent). MTP_OK or
 * MTP_ERR with a message naming the key. */
int mtp_log_decode_tree(const msgpack_object *rec, struct mtp_request_record *r);
void mtp_log_tree_free(struct mtp_request_record *r);
/* The tree fields of a decoded R (R->tree set) against its shape and its
 * accepted counts (log_check.h): MTP_OK or MTP_ERR naming key and step. */
int mtp_log_check_tree(const struct mtp_request_record *r);

#endif
