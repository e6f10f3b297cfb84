/* shard.c - the shard thread: setup, the run-to-completion loop, teardown.
 *
 * Setup happens on the shard's own thread (pinned first), so its io_uring can be created
 * SINGLE_ISSUER with DEFER_TASKRUN (completion work runs only when the shard asks for
 * events, batched, never interrupting it; COOP_TASKRUN before 6.1) and its memory is first touched on its own core/NUMA node: the ring, the
 * two chunk pools -- the network's (64 KiB chunks: receive buffers and response blocks)
 * and the storage's (storage_chunk_bytes chunks, registered as fixed buffers for the
 * log's READ_FIXED/WRITE_FIXED; a stored batch must fit in one, so they are sized for
 * Kafka's default 1 MiB batches) -- the receive buffers (chunks lent to the
 * provided-buffer ring), the Kafka connection layer and the socket backend.
 *
 * The loop, in plain sight:
 *     refresh the catalogue snapshot (router.c opens/closes this shard's partitions)
 *     reap CQEs (network and disk) and run their callbacks
 *     drain the mesh rings addressed to this shard
 *     tick: clock, idle connections, connections waiting for buffers, backend retries,
 *       router: group commit (storage_poll), refused mesh messages, answered and
 *       parked fetches
 *     submit every SQE queued above and collect new completions in one io_uring_enter
 *     nothing done? idle policy: poll = go round again; block = arm the doorbell, wait
 *       in io_uring for one CQE or block_timeout_ms
 * A poll-mode network backend (DPDK: net.h's poll op) is polled every iteration, before
 * the tick; its shard never blocks for block_timeout_ms, it naps briefly after a run
 * of empty iterations (shard_poll_backoff).
 * Time spent in iterations that did work is busy_ns; waiting and empty iterations are
 * idle_ns. An eventfd read stays armed on the ring so a mesh doorbell ends the wait.
 *
 * Stop: a SHARD_MSG_STOP starts the drain (no accepting, no reading, flush queued
 * responses, close); the loop exits when no connection is left or drain_timeout_ms has
 * passed, then tears everything down in reverse order. */
#include "dataplane/shard.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/net/uring_sock.h"
#include "sluice_config.h"
#if SLUICE_HAVE_DPDK
#include "dataplane/net/dpdk_io.h"
#endif
#include "dataplane/router_stats.h"
#include "hw/log.h"
#include "hw/topology.h"

#define SHARD_SQ_ENTRIES 1024
#define SHARD_CQ_ENTRIES 16384
#define SHARD_CQE_BUDGET 512
#define SHARD_MSG_BUDGET 256
#define SHARD_CHUNK_BYTES (64u * 1024u)
#define SHARD_BUF_GROUP 1
#define SHARD_NET_SPARE_CHUNKS 256u  /* response blocks, beyond the receive buffers */
#define SHARD_MIN_STORAGE_CHUNKS 16u
#define SHARD_POLL_SPINS 2000u       /* empty iterations before a poll-mode shard naps */
#define SHARD_POLL_NAP_US 100u
#define SHARD_POLL_REAP_EVERY 16u    /* a power of two */

static uint64_t clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t shard_clock_ms(void) { return clock_ns() / 1000000ull; }

static void doorbell_complete(struct uring_op *op, int32_t res, uint32_t flags);

static void doorbell_arm(struct shard *s) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    assert(sqe);
    io_uring_prep_read(sqe, mesh_doorbell_fd(s->cfg.mesh, s->cfg.id), &s->doorbell_value,
                       sizeof s->doorbell_value, 0);
    uring_op_attach(sqe, &s->doorbell_op);
}

static void doorbell_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    (void)flags;
    struct shard *s = container_of(op, struct shard, doorbell_op);
    if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED)
        log_warn("doorbell_error", "err=%s", strerror(-res));
    if (res != -ECANCELED) doorbell_arm(s); /* the rings are drained by the loop */
}

static void on_message(void *ctx, const struct shard_msg *msg) {
    struct shard *s = ctx;
    switch (msg->type) {
    case SHARD_MSG_STOP:
        if (!s->stopping) {
            s->stopping = true;
            s->stop_deadline_ms = shard_clock_ms() + s->cfg.drain_timeout_ms;
            log_info("shard_draining", "connections=%u", kserver_conn_count(s->server));
            kserver_begin_drain(s->server);
        }
        break;
    case SHARD_MSG_PING: {
        struct shard_msg pong = {.type = SHARD_MSG_PONG, .arg64 = msg->arg64};
        if (!mesh_send(s->cfg.mesh, s->cfg.id, msg->from, &pong))
            log_warn("pong_dropped", "to=%d reason=ring_full", msg->from);
        break;
    }
    default:
        if (s->has_router && msg->type >= ROUTER_MSG_CONTROL_REQ) {
            router_on_message(&s->router, msg);
            break;
        }
        log_warn("shard_unknown_message", "type=%d from=%d", msg->type, msg->from);
    }
}

static int ring_init(struct shard *s) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = SHARD_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(SHARD_SQ_ENTRIES, &s->ring, &p);
    s->defer_taskrun = rc == 0;
    if (rc == -EINVAL) { /* before 6.1: completions run as cooperative task work */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
        p.cq_entries = SHARD_CQ_ENTRIES;
        rc = io_uring_queue_init_params(SHARD_SQ_ENTRIES, &s->ring, &p);
    }
    if (rc == -EINVAL) { /* an older kernel: plain ring */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = SHARD_CQ_ENTRIES;
        rc = io_uring_queue_init_params(SHARD_SQ_ENTRIES, &s->ring, &p);
    }
    return rc;
}

/* The DPDK backend on queue cfg.id (dataplane/net/dpdk_io.h), or NULL with s->error. */
static struct net_backend *shard_dpdk_backend(struct shard *s, const struct net_events *ev) {
#if SLUICE_HAVE_DPDK
    struct net_dpdk_config dc = {
        .port = s->cfg.dpdk, .queue = (uint16_t)s->cfg.id, .ip = s->cfg.dpdk_ip,
        .netmask = s->cfg.dpdk_netmask, .gateway = s->cfg.dpdk_gateway,
        .max_conns = s->cfg.server.max_conns,
        .keepalive_idle_ms = s->cfg.dpdk_keepalive_ms,
        .keepalive_interval_ms = s->cfg.dpdk_keepalive_interval_ms,
        .keepalive_probes = s->cfg.dpdk_keepalive_probes,
    };
    return net_dpdk_create(&dc, ev, s->server, s->error, sizeof s->error);
#else
    (void)ev;
    snprintf(s->error, sizeof s->error, "built without DPDK");
    return NULL;
#endif
}

static int shard_setup(struct shard *s) {
    const struct shard_config *cfg = &s->cfg;
    int rc = ring_init(s);
    if (rc != 0) {
        snprintf(s->error, sizeof s->error, "io_uring setup: %s", strerror(-rc));
        return -1;
    }
    bool with_storage = cfg->topics.refresh != NULL;
    uint32_t chunks = (uint32_t)(cfg->buffer_bytes / SHARD_CHUNK_BYTES);
    if (with_storage) chunks = cfg->recv_buffer_count + SHARD_NET_SPARE_CHUNKS;
    if (chunks < cfg->recv_buffer_count + 16) chunks = cfg->recv_buffer_count + 16;
    rc = chunk_pool_init(&s->pool, SHARD_CHUNK_BYTES, chunks);
    if (rc != 0) {
        snprintf(s->error, sizeof s->error, "chunk pool: %s", strerror(-rc));
        return -1;
    }
    if (with_storage) {
        uint32_t storage_chunks = (uint32_t)(cfg->buffer_bytes / cfg->storage_chunk_bytes);
        if (storage_chunks < SHARD_MIN_STORAGE_CHUNKS) storage_chunks = SHARD_MIN_STORAGE_CHUNKS;
        rc = chunk_pool_init(&s->storage_pool, cfg->storage_chunk_bytes, storage_chunks);
        if (rc != 0) {
            snprintf(s->error, sizeof s->error, "storage chunk pool: %s", strerror(-rc));
            return -1;
        }
    }
    /* Only the storage does fixed-buffer I/O; without it (unit tests) register the net's. */
    rc = chunk_pool_register(with_storage ? &s->storage_pool : &s->pool, &s->ring);
    if (rc != 0) log_warn("chunk_register_failed", "err=%s", strerror(-rc));
    s->recv_buffers = calloc(cfg->recv_buffer_count, sizeof s->recv_buffers[0]);
    if (!s->recv_buffers) {
        snprintf(s->error, sizeof s->error, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->recv_buffer_count && !cfg->dpdk; i++) {
        s->recv_buffers[i] = chunk_alloc(&s->pool); /* DPDK receives into mbufs instead */
        assert(s->recv_buffers[i]);
    }
    struct kserver_config kc = cfg->server;
    kc.pool = &s->pool;
    if (cfg->topics.refresh) {
        struct router_config rc_cfg = {
            .shard_id = cfg->id, .mesh = cfg->mesh, .ring = &s->ring, .pool = &s->storage_pool,
            .topics = cfg->topics, .identity = cfg->server.identity,
            .data_dir = cfg->data_dir, .auto_create_topics = cfg->auto_create_topics,
            .cache_bytes = cfg->cache_bytes, .max_conns = cfg->server.max_conns};
        s->has_router = true; /* teardown destroys what init got to */
        if (router_init(&s->router, &rc_cfg, s->error, sizeof s->error) != 0) return -1;
        kc.owner = &s->router;
    }
    s->server = kserver_create(&kc);
    if (!s->server) {
        snprintf(s->error, sizeof s->error, "out of memory");
        return -1;
    }
    struct net_events events;
    kserver_net_events(&events);
    struct net_uring_config nc = {
        .ring = &s->ring,
        .max_conns = cfg->server.max_conns,
        .recv_buffer_count = cfg->recv_buffer_count,
        .recv_buffer_bytes = SHARD_CHUNK_BYTES,
        .recv_buffers = s->recv_buffers,
        .buf_group = SHARD_BUF_GROUP,
        .zc_threshold_bytes = cfg->zc_threshold_bytes,
        .zc_skip_local_peers = cfg->zc_skip_local_peers,
        .listen_backlog = 4096,
    };
    if (cfg->dpdk)
        s->net = shard_dpdk_backend(s, &events);
    else
        s->net = net_uring_create(&nc, &events, s->server, s->error, sizeof s->error);
    if (!s->net) return -1;
    kserver_attach(s->server, s->net);
    if (s->has_router) router_attach(&s->router, s->server);
    rc = net_listen(s->net, cfg->listen_host, cfg->listen_port);
    if (rc < 0) {
        snprintf(s->error, sizeof s->error, "listen %s:%u: %s", cfg->listen_host,
                 cfg->listen_port, strerror(-rc));
        return -1;
    }
    s->bound_port = rc;
    s->doorbell_op.complete = doorbell_complete;
    doorbell_arm(s);
    io_uring_submit(&s->ring);
    return 0;
}

static void shard_teardown(struct shard *s) {
    if (s->net) net_destroy(s->net);
    s->net = NULL;
    kserver_destroy(s->server);
    s->server = NULL;
    if (s->has_router) router_destroy(&s->router);
    s->has_router = false;
    if (s->recv_buffers) {
        for (uint32_t i = 0; i < s->cfg.recv_buffer_count; i++)
            if (s->recv_buffers[i]) chunk_unref(&s->pool, s->recv_buffers[i]);
        free(s->recv_buffers);
        s->recv_buffers = NULL;
    }
    if (s->ring.ring_fd > 0) io_uring_queue_exit(&s->ring);
    if (s->pool.base) chunk_pool_destroy(&s->pool);
    if (s->storage_pool.base) chunk_pool_destroy(&s->storage_pool);
}

/* Wait in io_uring for one CQE (disk, doorbell) or wait_us. */
static void shard_wait_us(struct shard *s, uint64_t wait_us) {
    if (!mesh_prepare_sleep(s->cfg.mesh, s->cfg.id)) return;
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(wait_us / 1000000u),
        .tv_nsec = (long long)(wait_us % 1000000u) * 1000ll,
    };
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    (void)rc; /* -ETIME on timeout, -EINTR: the loop just goes round */
    mesh_awake(s->cfg.mesh, s->cfg.id);
}

static void shard_wait(struct shard *s) {
    uint32_t wait_ms = s->cfg.block_timeout_ms;
    if (s->has_router) wait_ms = router_wait_ms(&s->router, wait_ms);
    shard_wait_us(s, (uint64_t)wait_ms * 1000u);
}

/* A poll-mode backend (DPDK) has no completion to wake the shard: it must be polled.
 * After SHARD_POLL_SPINS empty iterations in a row the shard naps SHARD_POLL_NAP_US in
 * io_uring (a disk completion or a mesh doorbell ends the nap early), so an idle shard
 * costs little CPU on a shared machine; idle policy poll (bare metal) never naps. The
 * nap bounds the latency an idle shard adds to the first packet. */
static void shard_poll_backoff(struct shard *s, uint32_t *idle_spins) {
    if (s->cfg.idle == IDLE_POLL || ++*idle_spins < SHARD_POLL_SPINS) return;
    *idle_spins = 0;
    shard_wait_us(s, SHARD_POLL_NAP_US);
}

static void shard_loop(struct shard *s) {
    uint64_t busy_ns = 0, idle_ns = 0;
    bool polling = net_polls(s->net);
    uint32_t idle_spins = 0;
    for (;;) {
        uint64_t t0 = clock_ns();
        if (s->has_router) router_refresh(&s->router);
        unsigned reaped = uring_op_dispatch_ready(&s->ring, SHARD_CQE_BUDGET);
        unsigned work = reaped;
        work += mesh_drain(s->cfg.mesh, s->cfg.id, SHARD_MSG_BUDGET, on_message, s);
        uint64_t now_ms = t0 / 1000000ull;
        if (polling) work += net_poll(s->net, t0 / 1000ull);
        kserver_tick(s->server, now_ms);
        net_tick(s->net, now_ms);
        if (s->has_router) work += router_tick(&s->router, now_ms);
        if (s->has_router) router_publish_stats(&s->router, s->cfg.server.stats, now_ms);
        if (s->stopping &&
            (kserver_conn_count(s->server) == 0 || now_ms >= s->stop_deadline_ms))
            break;
        int submitted = 0;
        /* A polling shard enters the kernel only with SQEs to submit or every
         * SHARD_POLL_REAP_EVERY iterations (disk completions wait that long at most),
         * not once per spin. */
        bool enter = !polling || io_uring_sq_ready(&s->ring) > 0 ||
                     (s->loops & (SHARD_POLL_REAP_EVERY - 1)) == 0;
        if (s->defer_taskrun && enter) {
            /* Completions are only posted when the shard enters the kernel asking for
             * them: submit and collect in the same io_uring_enter. */
            submitted = io_uring_submit_and_get_events(&s->ring);
            if (io_uring_cq_ready(&s->ring) > 0) work++;
        } else if (!s->defer_taskrun && io_uring_sq_ready(&s->ring) > 0) {
            submitted = io_uring_submit(&s->ring);
        }
        if (s->cfg.server.stats) { /* metrics: dataplane/stats.h */
            stats_add(&s->cfg.server.stats->uring_completed, reaped);
            stats_add(&s->cfg.server.stats->uring_submitted, submitted > 0 ? (uint64_t)submitted : 0);
        }
        uint64_t t1 = clock_ns();
        s->loops++;
        if (work > 0) {
            busy_ns += t1 - t0;
            idle_spins = 0;
        } else {
            if (polling) shard_poll_backoff(s, &idle_spins);
            else if (s->cfg.idle == IDLE_BLOCK) shard_wait(s);
            idle_ns += clock_ns() - t0;
        }
        atomic_store_explicit(&s->busy_ns, busy_ns, memory_order_relaxed);
        atomic_store_explicit(&s->idle_ns, idle_ns, memory_order_relaxed);
    }
    struct net_uring_stats ns;
    memset(&ns, 0, sizeof ns);
    if (!polling) net_uring_stats(s->net, &ns); /* the DPDK backend logs its own */
    struct kserver_stats ks;
    kserver_stats(s->server, &ks);
    log_info("shard_stopped",
             "connections_left=%u loops=%llu busy_ms=%llu idle_ms=%llu requests=%llu "
             "accepted=%llu refused=%llu local_peers=%llu sends=%llu sends_zc=%llu "
             "sends_zc_narrow_window=%llu "
             "responses_zc=%llu responses_zc_copied=%llu recv_enobufs=%llu paused=%llu",
             kserver_conn_count(s->server), (unsigned long long)s->loops,
             (unsigned long long)(busy_ns / 1000000ull),
             (unsigned long long)(idle_ns / 1000000ull), (unsigned long long)ks.requests,
             (unsigned long long)ns.accepted, (unsigned long long)ns.refused,
             (unsigned long long)ns.conns_local_peer, (unsigned long long)ns.sends, (unsigned long long)ns.sends_zc,
             (unsigned long long)ns.sends_zc_narrow_window,
             (unsigned long long)ks.responses_zc, (unsigned long long)ks.responses_zc_copied,
             (unsigned long long)ns.recv_enobufs, (unsigned long long)ks.paused);
}

static void *shard_main(void *arg) {
    struct shard *s = arg;
    log_set_thread_shard(s->cfg.id);
    log_ring_attach(); /* lines go to a ring the control thread drains (hw/log.h) */
    stats_bind_thread(s->cfg.server.stats); /* metrics: dataplane/stats.h */
    if (s->cfg.cpu >= 0) {
        int rc = topology_pin_self(s->cfg.cpu);
        if (rc != 0) log_warn("pin_failed", "cpu=%d err=%s", s->cfg.cpu, strerror(rc));
    }
    if (shard_setup(s) != 0) {
        log_error("shard_setup_failed", "error=\"%s\"", s->error);
        shard_teardown(s);
        atomic_store(&s->state, SHARD_FAILED);
        return NULL;
    }
    atomic_store(&s->state, SHARD_RUNNING);
    shard_loop(s);
    shard_teardown(s);
    atomic_store(&s->state, SHARD_EXITED);
    return NULL;
}

int shard_start(struct shard *s, const struct shard_config *cfg) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->ring.ring_fd = -1;
    atomic_init(&s->state, SHARD_STARTING);
    int rc = pthread_create(&s->thread, NULL, shard_main, s);
    if (rc != 0) {
        snprintf(s->error, sizeof s->error, "pthread_create: %s", strerror(rc));
        return -1;
    }
    /* Setup is quick (allocation, one bind); poll its state rather than add a condvar. */
    while (atomic_load(&s->state) == SHARD_STARTING) {
        struct timespec nap = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&nap, NULL);
    }
    if (atomic_load(&s->state) == SHARD_FAILED) {
        pthread_join(s->thread, NULL);
        return -1;
    }
    return 0;
}

void shard_join(struct shard *s) { pthread_join(s->thread, NULL); }
