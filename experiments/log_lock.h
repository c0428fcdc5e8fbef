/*
 * log_lock.h - the one-writer lock on a log file (internal to log_write.c).
 */
#ifndef MTP_LOG_LOCK_H
#define MTP_LOG_LOCK_H

/* Take an exclusive, non-blocking flock on FD, the open log PATH. It lasts
 * as long as FD's open file description (until mtp_log_close), and the kernel
 * drops it when the process dies, so a killed run never leaves a stale lock.
 * If another process (or another open of the file) holds it: MTP_ERR, the
 * message naming PATH and the holder's pid from /proc/locks. */
int mtp_log_lock(int fd, const char *path);

#endif
