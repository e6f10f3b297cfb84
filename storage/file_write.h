/* file_write.h - a small file written through the shard's io_uring, off the shard's
 * critical path: openat (O_CREAT | O_TRUNC) -> writev -> close, each step submitted on
 * the previous one's completion, so no file-system call blocks the shard (openat of a
 * new file waits for the journal; io_uring runs it on its workers). Optionally the file
 * is written under a temporary name and renamed into place at the end (renameat), so a
 * reader sees the old file or the whole new one.
 *
 * Used for a sealed segment's index files (partition_log.c). The caller owns the
 * struct, the name and the bytes the iovecs point at until done(fw, err) runs (once,
 * from a completion; err 0 or a negative errno). A failed step still closes what was
 * opened. Nothing is fsynced: callers write files that are checked when read. */
#ifndef SLUICE_STORAGE_FILE_WRITE_H
#define SLUICE_STORAGE_FILE_WRITE_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hw/uring_op.h"

#define FILE_WRITE_MAX_IOV 2
#define FILE_WRITE_NAME_BYTES 64

struct file_write {
    struct uring_op op;
    struct io_uring *ring;
    int dir_fd;
    int fd;                     /* -1 until openat completed */
    int step;                   /* FW_OPEN, FW_WRITE, FW_CLOSE, FW_RENAME */
    int err;                    /* the first failure */
    bool busy;
    char name[FILE_WRITE_NAME_BYTES];
    char final_name[FILE_WRITE_NAME_BYTES]; /* "": no rename */
    struct iovec iov[FILE_WRITE_MAX_IOV];
    uint32_t iov_count;
    uint64_t total_bytes;
    void (*done)(struct file_write *fw, int err);
    void *user;                 /* the caller's */
};

/* Start writing name (relative to dir_fd) with the bytes of iov[0..iov_count); when
 * final_name is not NULL, rename name to it once written and closed. The SQE is queued
 * on ring; the caller's loop submits it. Returns 0, or -EBUSY while an earlier write
 * with this struct is in flight. */
int file_write_start(struct file_write *fw, struct io_uring *ring, int dir_fd,
                     const char *name, const char *final_name, const struct iovec *iov,
                     uint32_t iov_count, void (*done)(struct file_write *fw, int err));

#endif
