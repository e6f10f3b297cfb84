/* uring_op.h - the one convention for io_uring completions in sluice.
 *
 * A shard has one io_uring shared by its network backend and its storage. Every SQE
 * carries, as user_data, a pointer to a struct uring_op embedded in the object that
 * issued it (a connection, a write batch, a read). The shard loop reaps CQEs and calls
 * op->complete(op, res, flags); the owner recovers itself with container_of. A SQE
 * whose completion nobody needs (e.g. a linked timeout) carries user_data 0 and is
 * ignored by the loop. Multishot operations keep one uring_op for all their CQEs and
 * look at IORING_CQE_F_MORE to learn whether they must re-arm. */
#ifndef SLUICE_HW_URING_OP_H
#define SLUICE_HW_URING_OP_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

struct uring_op {
    void (*complete)(struct uring_op *op, int32_t res, uint32_t cqe_flags);
};

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

static inline void uring_op_attach(struct io_uring_sqe *sqe, struct uring_op *op) {
    io_uring_sqe_set_data(sqe, op);
}

/* Reap up to max_cqes ready CQEs and dispatch each; returns how many were handled.
 * Each CQE is copied and marked seen before its callback runs, so a callback may
 * submit new SQEs (it must not reap: only the shard loop reaps). */
static inline unsigned uring_op_dispatch_ready(struct io_uring *ring, unsigned max_cqes) {
    unsigned handled = 0;
    struct io_uring_cqe *cqe;
    while (handled < max_cqes && io_uring_peek_cqe(ring, &cqe) == 0) {
        struct uring_op *op = (struct uring_op *)io_uring_cqe_get_data(cqe);
        int32_t res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(ring, cqe);
        handled++;
        if (op) op->complete(op, res, flags);
    }
    return handled;
}

#endif
