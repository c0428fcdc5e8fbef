/*
 * log_lock.h - opening a log for writing: a regular file only, and one
 * writer at a time (internal to log_write.c).
 */
#ifndef MTP_LOG_LOCK_H
#define MTP_LOG_LOCK_H

/* Take an exclusive, non-blocking flock on FD, the open log PATH. It lasts
 * as long as FD's open file description (until mtp_log_close), and the kernel
 * drops it when the process dies, so a killed run never leaves a stale lock.
 * If another process (or another open of the file) holds it: MTP_ERR, the
 * message naming PATH and the holder's pid from /proc/locks. */
int mtp_log_lock(int fd, const char *path);

/* Open the log PATH for writing with open(2) FLAGS (O_CREAT, O_EXCL, ...) and
 * take its lock. Never blocks: a FIFO, directory or socket at PATH is
 * refused with a message naming it (mtp_output_open). Returns the descriptor, or -1 with
 * a message "LOG PATH: ..."; an existing PATH under O_EXCL suggests --resume. */
int mtp_log_open_locked(const char *path, int flags);

#endif
