/*
 * input_file.h - opening the files a user hands us (checkpoints, shards, the
 * index, config.json, tokenizer.json, datasets, specs, logs, cost files)
 * without ever blocking or reading something that is not a plain file.
 *
 * Every open goes through mtp_input_open (or mtp_output_open for a log we
 * write): O_NONBLOCK so that a FIFO or a device cannot hang the open, then
 * fstat on the descriptor (no race with a rename between check and use), then
 * a refusal of anything but a regular file. Messages name the path and say
 * what was found ("a directory", "a FIFO", "a symlink loop").
 */
#ifndef MTP_INPUT_FILE_H
#define MTP_INPUT_FILE_H

#include <jansson.h>  /* defines: json_t */
#include <stdbool.h>  /* defines: bool */
#include <stdio.h>    /* defines: FILE */
#include <sys/stat.h> /* defines: struct stat */

/* Open PATH read-only as a regular file. Returns a descriptor (blocking mode
 * restored, close-on-exec) and fills *ST when not NULL; or -1 with a message
 * "PATH: ..." (mtp_error_message). */
int mtp_input_open(const char *path, struct stat *st);

/* Open PATH for writing with open(2) FLAGS and MODE (O_CREAT, O_EXCL ...),
 * for the files a user names that we write (logs): never blocks, so a FIFO at
 * PATH is refused rather than waited on, as are directories and sockets; a
 * regular file or a character device (/dev/null, /dev/full) is fine. Returns
 * a descriptor or -1 with a message "PATH: ..."; errno keeps open's error
 * (EEXIST under O_EXCL), EINVAL for the wrong kind of file. */
int mtp_output_open(const char *path, int flags, mode_t mode);

/* The same as a stdio stream ("rb"); NULL with a message. */
FILE *mtp_input_fopen(const char *path);

/* Parse PATH as JSON (jansson FLAGS). NULL with a message "PATH: ..." naming
 * the line and column of a syntax error. */
json_t *mtp_input_load_json(const char *path, size_t flags);

/* Whether something exists at PATH (lstat: a dangling or looping symlink
 * counts, so it is reported when opened rather than silently ignored).
 * Returns 1 if present, 0 if absent (ENOENT/ENOTDIR), -1 with a message for
 * any other failure (permissions, a loop in a parent directory). */
int mtp_input_exists(const char *path);

/* "a directory", "a FIFO", ... for MODE; "a regular file" for S_IFREG. */
const char *mtp_input_kind(mode_t mode);

#endif
