/*
 * spec_tree.h - the "tree" key of an "mtp" decoder in an experiment spec
 * (spec/experiment-spec.md "Tree decoders"):
 *   "tree": {"widths": [4, 2, 1]}                  top-k per depth
 *   "tree": {"paths": [[0], [1], [0, 0]]}          explicit rank paths
 *   "tree": {"dynamic": {"budget": 8, "width": 4, "depth": 4}}
 * or the same as a string ("widths:4,2,1", "paths:0;1;0,0",
 * "dynamic:8,4,4"). The decoder's depth is the tree's; "depth" must then be
 * absent. Errors name the spec file and the key path.
 */
#ifndef MTP_SPEC_TREE_H
#define MTP_SPEC_TREE_H

#include <jansson.h>

#include "spec.h"

/* Parse V (the value of PREFIX.tree) into D->tree and D->depth. SRC names the
 * spec file. MTP_OK or MTP_ERR with "SPEC: SRC: key '...': ...". */
int mtp_spec_tree_parse(const char *src, json_t *v, const char *prefix,
                        struct mtp_spec_decoder *d);

/* Default decoder name, e.g. "tree-exact-widths4.2.1" (file-name characters). */
void mtp_spec_tree_name(const struct mtp_spec_decoder *d, char *buf, size_t cap);

/* Tokens one step of D may draft past the pending one: a tree's node count,
 * else its depth (baseline: 0). Sizes caches and prompt limits. */
int mtp_spec_decoder_step_drafts(const struct mtp_spec_decoder *d);

#endif
