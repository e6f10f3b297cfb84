/* shard_loop.h - the run-to-completion loop every pinned sluice thread runs.
 *
 * Two roles run on it: the broker's shards (shard.c: Kafka server, router, storage,
 * mesh) and the load generator's workers (perf/loadgen_worker.c: Kafka clients). The
 * loop owns what they share -- the io_uring (SINGLE_ISSUER + DEFER_TASKRUN where the
 * kernel has it), CQE dispatch (hw/uring_op.h), polling a poll-mode network backend
 * (DPDK), one submit-and-collect per iteration, the idle policy, and the busy/idle
 * accounting -- and calls the role for everything else. See shard_loop.c. */
#ifndef SLUICE_DATAPLANE_SHARD_LOOP_H
#define SLUICE_DATAPLANE_SHARD_LOOP_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/net/net.h"

enum idle_policy { IDLE_BLOCK = 0, IDLE_POLL = 1 };

/* What a role plugs into the loop. work and done are required. */
struct shard_loop_ops {
    /* Optional: first thing in each iteration, before any CQE is dispatched, at now_ns
     * (read after the previous iteration's wait). The broker swaps in the newest
     * catalogue snapshot here, so a request received in this iteration sees every
     * change published before it arrived, and sets its connections' clock, so an
     * accept or a receive is stamped with this iteration's time, not an older one. */
    void (*begin)(void *ctx, uint64_t now_ns);
    /* The role's ready work at now_ns (after this iteration's CQEs were dispatched and
     * a poll-mode backend was polled): returns how much it did (0: nothing). */
    unsigned (*work)(void *ctx, uint64_t now_ns);
    /* Leave the loop (checked after work, before the submit). */
    bool (*done)(void *ctx, uint64_t now_ns);
    /* Optional: how long an idle iteration may wait, at most max_ns (the role's next
     * timer). NULL: max_ns. */
    uint64_t (*wait_ns)(void *ctx, uint64_t now_ns, uint64_t max_ns);
    /* Optional: called before an idle wait; false means "something arrived meanwhile,
     * do not wait" (the mesh's doorbell protocol). awake is called after the wait. */
    bool (*prepare_sleep)(void *ctx);
    void (*awake)(void *ctx);
};

struct shard_loop_config {
    enum idle_policy idle;
    uint64_t max_wait_ns;        /* an idle blocking iteration waits at most this long */
    unsigned cqe_budget;         /* CQEs dispatched per iteration */
    /* Optional counters of submitted SQEs and dispatched CQEs (a shard's metrics,
     * written by this thread only: stats_add). */
    _Atomic uint64_t *sqes_submitted, *cqes_completed;
};

struct shard_loop {
    struct io_uring ring;
    bool ring_ready;
    bool defer_taskrun;          /* completions are posted only when the loop asks */
    struct shard_loop_config cfg;
    struct net_backend *net;     /* set by the role once created (may stay NULL) */
    uint64_t loops;
    uint32_t idle_spins;
    /* published for metrics and reports (relaxed) */
    _Atomic uint64_t busy_ns;    /* iterations that did work */
    _Atomic uint64_t idle_ns;    /* waiting and empty iterations */
};

/* Set up the ring on the calling thread (the one that will run the loop): 0 or -errno. */
int shard_loop_init(struct shard_loop *l, const struct shard_loop_config *cfg,
                    unsigned sq_entries, unsigned cq_entries);
void shard_loop_fini(struct shard_loop *l);

/* Run iterations until ops->done says so. May be called again with other ops (e.g. a
 * closing phase); the accounting carries on. */
void shard_loop_run(struct shard_loop *l, const struct shard_loop_ops *ops, void *ctx);

uint64_t shard_loop_clock_ns(void);

#endif
