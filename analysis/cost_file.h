/*
 * cost_file.h - checks shared by the readers of a cost file's parts
 * (cost_file.c: the batch-1 curve; cost_batch_file.c: the batch curve).
 */
#ifndef MTP_COST_FILE_H
#define MTP_COST_FILE_H

struct json_t;

/* The summary object SUM (key KEY, e.g. "ratio" or "ns") of the part WHERE
 * ("case 'verify/n=1'", "key 'batch.cases[3]'") of FILE: its present members
 * in the order min <= p10 <= median <= p90 <= max, each finite and >= 0.
 * MTP_OK, or MTP_ERR naming FILE, WHERE and the member. */
int mtp_costs_check_summary(const char *file, const char *where, const char *key,
                            struct json_t *sum);

#endif
