/* shard_loop.c - the run-to-completion loop (see shard_loop.h for who runs it).
 *
 * One iteration, in plain sight:
 *     the role's begin, at the clock read after the last wait (broker: swap in the
 *       newest catalogue snapshot, set the connections' clock)
 *     dispatch up to cqe_budget ready CQEs (network and disk callbacks)
 *     poll a poll-mode network backend (DPDK: receive, run the TCP stack, transmit)
 *     the role's work (broker: catalogue, mesh, ticks, group commit, fetches;
 *       loadgen: generate, seal and send due messages, fetches, group requests)
 *     done? leave
 *     submit every SQE queued above and collect new completions in one io_uring_enter
 *     nothing done? idle policy:
 *       poll-mode backend: go round again; after SHARD_LOOP_POLL_SPINS empty
 *         iterations nap SHARD_LOOP_POLL_NAP_NS in io_uring (idle policy block only), so
 *         an idle poller costs little CPU on a shared machine
 *       block: wait in io_uring for one CQE, at most the role's wait (its next timer,
 *         capped at max_wait_ns); the role's prepare_sleep/awake bracket the wait
 *       poll (bare metal): go round again
 *
 * The ring is SINGLE_ISSUER with DEFER_TASKRUN (6.1+): completion work runs only when
 * the loop enters the kernel asking for events, batched, never interrupting the thread;
 * COOP_TASKRUN before 6.1, a plain ring before that. A polling loop enters the kernel
 * only with SQEs to submit or every SHARD_LOOP_POLL_REAP_EVERY iterations, not once per
 * spin (disk completions wait that long at most).
 *
 * Time spent in iterations that did work is busy_ns; waiting and empty iterations are
 * idle_ns. */
#include "dataplane/shard_loop.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "dataplane/stats.h"
#include "hw/uring_op.h"

#define SHARD_LOOP_POLL_SPINS 2000u       /* empty iterations before a poller naps */
#define SHARD_LOOP_POLL_NAP_NS 100000ull
#define SHARD_LOOP_POLL_REAP_EVERY 16u    /* a power of two */

uint64_t shard_loop_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ring_init(struct shard_loop *l, unsigned sq_entries, unsigned cq_entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = cq_entries;
    int rc = io_uring_queue_init_params(sq_entries, &l->ring, &p);
    l->defer_taskrun = rc == 0;
    if (rc == -EINVAL) { /* before 6.1: completions run as cooperative task work */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(sq_entries, &l->ring, &p);
    }
    if (rc == -EINVAL) { /* an older kernel: plain ring */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(sq_entries, &l->ring, &p);
    }
    return rc;
}

int shard_loop_init(struct shard_loop *l, const struct shard_loop_config *cfg,
                    unsigned sq_entries, unsigned cq_entries) {
    memset(l, 0, sizeof *l);
    assert(cfg->cqe_budget > 0 && cfg->max_wait_ns > 0);
    l->cfg = *cfg;
    l->ring.ring_fd = -1;
    atomic_init(&l->busy_ns, 0);
    atomic_init(&l->idle_ns, 0);
    int rc = ring_init(l, sq_entries, cq_entries);
    l->ring_ready = rc == 0;
    return rc;
}

void shard_loop_fini(struct shard_loop *l) {
    if (l->ring_ready) io_uring_queue_exit(&l->ring);
    l->ring_ready = false;
}

/* Wait in io_uring for one CQE or wait_ns. */
static void wait_for_cqe(struct shard_loop *l, const struct shard_loop_ops *ops, void *ctx,
                         uint64_t wait_ns) {
    if (ops->prepare_sleep && !ops->prepare_sleep(ctx)) return;
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(wait_ns / 1000000000ull),
        .tv_nsec = (long long)(wait_ns % 1000000000ull),
    };
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
    (void)rc; /* -ETIME on timeout, -EINTR: the loop just goes round */
    if (ops->awake) ops->awake(ctx);
}

static uint64_t role_wait_ns(struct shard_loop *l, const struct shard_loop_ops *ops,
                             void *ctx, uint64_t now_ns, uint64_t max_ns) {
    return ops->wait_ns ? ops->wait_ns(ctx, now_ns, max_ns) : max_ns;
}

/* An iteration that did nothing: nap, wait or spin as the idle policy and backend say. */
static void idle(struct shard_loop *l, const struct shard_loop_ops *ops, void *ctx,
                 bool polling, uint64_t now_ns) {
    if (polling) {
        if (l->cfg.idle == IDLE_POLL || ++l->idle_spins < SHARD_LOOP_POLL_SPINS) return;
        l->idle_spins = 0;
        uint64_t nap_ns = role_wait_ns(l, ops, ctx, now_ns, SHARD_LOOP_POLL_NAP_NS);
        if (nap_ns > 0) wait_for_cqe(l, ops, ctx, nap_ns);
        return;
    }
    if (l->cfg.idle != IDLE_BLOCK) return;
    uint64_t wait_ns = role_wait_ns(l, ops, ctx, now_ns, l->cfg.max_wait_ns);
    if (wait_ns > 0) wait_for_cqe(l, ops, ctx, wait_ns);
}

/* Submit what the iteration queued and collect completions: how many SQEs went in. */
static int submit(struct shard_loop *l, bool polling, unsigned *work) {
    /* A polling loop enters the kernel only with SQEs to submit or every
     * SHARD_LOOP_POLL_REAP_EVERY iterations, not once per spin. */
    bool enter = !polling || io_uring_sq_ready(&l->ring) > 0 ||
                 (l->loops & (SHARD_LOOP_POLL_REAP_EVERY - 1)) == 0;
    if (l->defer_taskrun && enter) {
        /* Completions are only posted when the thread enters the kernel asking for
         * them: submit and collect in the same io_uring_enter. */
        int submitted = io_uring_submit_and_get_events(&l->ring);
        if (io_uring_cq_ready(&l->ring) > 0) (*work)++;
        return submitted;
    }
    if (!l->defer_taskrun && io_uring_sq_ready(&l->ring) > 0) return io_uring_submit(&l->ring);
    return 0;
}

void shard_loop_run(struct shard_loop *l, const struct shard_loop_ops *ops, void *ctx) {
    assert(l->ring_ready && ops->work && ops->done);
    uint64_t busy_ns = atomic_load_explicit(&l->busy_ns, memory_order_relaxed);
    uint64_t idle_ns = atomic_load_explicit(&l->idle_ns, memory_order_relaxed);
    bool polling = l->net && net_polls(l->net);
    for (;;) {
        uint64_t t0 = shard_loop_clock_ns();
        if (ops->begin) ops->begin(ctx, t0);
        unsigned reaped = uring_op_dispatch_ready(&l->ring, l->cfg.cqe_budget);
        unsigned work = reaped;
        if (polling) work += net_poll(l->net, t0 / 1000u);
        uint64_t now_ns = reaped > 0 || polling ? shard_loop_clock_ns() : t0;
        work += ops->work(ctx, now_ns);
        if (ops->done(ctx, now_ns)) break;
        int submitted = submit(l, polling, &work);
        if (l->cfg.cqes_completed) stats_add(l->cfg.cqes_completed, reaped);
        if (l->cfg.sqes_submitted && submitted > 0)
            stats_add(l->cfg.sqes_submitted, (uint64_t)submitted);
        uint64_t t1 = shard_loop_clock_ns();
        l->loops++;
        if (work > 0) {
            busy_ns += t1 - t0;
            l->idle_spins = 0;
        } else {
            idle(l, ops, ctx, polling, t1);
            idle_ns += shard_loop_clock_ns() - t0;
        }
        atomic_store_explicit(&l->busy_ns, busy_ns, memory_order_relaxed);
        atomic_store_explicit(&l->idle_ns, idle_ns, memory_order_relaxed);
    }
}
