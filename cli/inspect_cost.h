/*
 * inspect_cost.h - the part of `mtpbench inspect` that says what a decoded
 * token reads and how fast this machine's memory can deliver it.
 */
#ifndef MTP_INSPECT_COST_H
#define MTP_INSPECT_COST_H

#include <stdbool.h>

#include "engine/model.h"

/* Print the bytes one decoded token and one draft read (analysis/token_cost.h); with
 * MEASURE, also this machine's triad bandwidth at 1 thread and at the CPU backend's
 * default threads, and the decode time that bandwidth bounds. */
void mtp_inspect_print_token_cost(const struct mtp_model *m, bool measure);

#endif
