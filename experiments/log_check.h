/*
 * log_check.h - what a decoded "request" record must satisfy before anyone
 * uses it (spec/log-format.md "Validity"; issue 28): every count and index
 * checked against its meaning, so a log edited by one field (a bit flip, a
 * buggy writer) is damage named with the key and the step, never a crash,
 * an allocation sized by garbage or a silent wrong number in a table.
 *
 * Internal to the log reader: mtp_log_decode_request calls it last, and the
 * reader calls that on every request record, so a record that fails is
 * handled like a bad checksum (log_read.c).
 */
#ifndef MTP_LOG_CHECK_H
#define MTP_LOG_CHECK_H

#include <msgpack.h> /* defines: msgpack_object */
#include <stddef.h>  /* defines: size_t */

#include "log.h" /* defines: struct mtp_request_record */

/* The cross-field rules of a decoded record R (types and per-value ranges
 * are the decoder's): MTP_OK, or MTP_ERR with "request record: key '...':
 * step S: ... expected ..., found ...". */
int mtp_log_check_request(const struct mtp_request_record *r);

/* A short text of what O is, for "found ..." in messages: "-1",
 * "4294967296", "a string", "nil", "nothing (the key is absent)". */
const char *mtp_log_obj_describe(const msgpack_object *o, char *buf, size_t cap);

#endif
