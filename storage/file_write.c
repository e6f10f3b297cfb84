/* file_write.c - openat -> writev -> close [-> renameat] through the ring (file_write.h).
 *
 * One uring_op carries the three steps; each completion prepares the next SQE. A short
 * write counts as -EIO (a regular file takes the whole writev unless the disk is full,
 * and the reader checks the file anyway). The SQEs are taken with io_uring_get_sqe and,
 * when the SQ is full, an io_uring_submit first, as the log does. */
#include "storage/file_write.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

enum { FW_OPEN = 0, FW_WRITE = 1, FW_CLOSE = 2, FW_RENAME = 3 };

static struct io_uring_sqe *take_sqe(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    assert(sqe);
    return sqe;
}

static void step_submit(struct file_write *fw) {
    struct io_uring_sqe *sqe = take_sqe(fw->ring);
    switch (fw->step) {
    case FW_OPEN:
        io_uring_prep_openat(sqe, fw->dir_fd, fw->name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                             0644);
        break;
    case FW_WRITE:
        io_uring_prep_writev(sqe, fw->fd, fw->iov, fw->iov_count, 0);
        break;
    case FW_CLOSE:
        io_uring_prep_close(sqe, fw->fd);
        break;
    default:
        assert(fw->step == FW_RENAME);
        io_uring_prep_renameat(sqe, fw->dir_fd, fw->name, fw->dir_fd, fw->final_name, 0);
        break;
    }
    uring_op_attach(sqe, &fw->op);
}

static void finish(struct file_write *fw) {
    assert(fw->fd == -1); /* never opened, or closed */
    fw->busy = false;
    fw->done(fw, fw->err);
}

static void step_complete(struct uring_op *op, int32_t res, uint32_t cqe_flags) {
    (void)cqe_flags;
    struct file_write *fw = container_of(op, struct file_write, op);
    assert(fw->busy);
    switch (fw->step) {
    case FW_OPEN:
        if (res < 0) {
            fw->err = res;
            finish(fw);
            return;
        }
        fw->fd = res;
        fw->step = FW_WRITE;
        break;
    case FW_WRITE:
        if (res < 0) fw->err = res;
        else if ((uint64_t)res != fw->total_bytes) fw->err = -EIO;
        fw->step = FW_CLOSE;
        break;
    case FW_CLOSE:
        if (res < 0 && !fw->err) fw->err = res;
        fw->fd = -1;
        if (fw->err || !fw->final_name[0]) {
            finish(fw);
            return;
        }
        fw->step = FW_RENAME;
        break;
    default:
        if (res < 0) fw->err = res;
        finish(fw);
        return;
    }
    step_submit(fw);
}

static void copy_name(char *out, size_t out_bytes, const char *name) {
    size_t len = strlen(name);
    assert(len < out_bytes);
    memcpy(out, name, len + 1);
}

int file_write_start(struct file_write *fw, struct io_uring *ring, int dir_fd,
                     const char *name, const char *final_name, const struct iovec *iov,
                     uint32_t iov_count, void (*done)(struct file_write *fw, int err)) {
    if (fw->busy) return -EBUSY;
    assert(iov_count > 0 && iov_count <= FILE_WRITE_MAX_IOV && done);
    copy_name(fw->name, sizeof fw->name, name);
    copy_name(fw->final_name, sizeof fw->final_name, final_name ? final_name : "");
    fw->ring = ring;
    fw->dir_fd = dir_fd;
    fw->fd = -1;
    fw->step = FW_OPEN;
    fw->err = 0;
    fw->busy = true;
    fw->iov_count = iov_count;
    fw->total_bytes = 0;
    for (uint32_t i = 0; i < iov_count; i++) {
        fw->iov[i] = iov[i];
        fw->total_bytes += iov[i].iov_len;
    }
    fw->done = done;
    fw->op.complete = step_complete;
    step_submit(fw);
    return 0;
}
