/* shard.c - the broker's shard: setup, its role in the run-to-completion loop, teardown.
 *
 * Setup happens on the shard's own thread (pinned first), so its io_uring (shard_loop.c:
 * SINGLE_ISSUER with DEFER_TASKRUN) is created by the thread that submits to it and its
 * memory is first touched on its own core/NUMA node: the ring, the two chunk pools --
 * the network's (64 KiB chunks: receive buffers and response blocks) and the storage's
 * (storage_chunk_bytes chunks, registered as fixed buffers for the log's
 * READ_FIXED/WRITE_FIXED; a stored batch must fit in one, so they are sized for Kafka's
 * default 1 MiB batches) -- the receive buffers (chunks lent to the provided-buffer
 * ring), the Kafka connection layer and the socket backend.
 *
 * The loop is shard_loop.c's (CQEs, DPDK polling, one submit, idle policy, busy/idle
 * time). The shard's part of each iteration: first (shard_begin, before the CQEs, so a
 * request received now sees every catalogue change published before it -- a client
 * that created a topic or added partitions reads them in its next Metadata)
 *     set the clock this iteration's requests are timed by: the router's (a fetch's
 *       max wait) and the connections' (idle time from the accept). The last tick's
 *       clock could be an idle wait old: fetches were answered early, and a connection
 *       accepted before the first tick was idle since time 0 and closed at once
 *     refresh the catalogue snapshot (router.c opens/closes this shard's partitions)
 * and after the CQEs (shard_work)
 *     drain the mesh rings addressed to this shard
 *     tick: clock, idle connections, connections waiting for buffers, backend retries,
 *       router: group commit (storage_poll), refused mesh messages, answered and
 *       parked fetches
 * An idle blocking shard waits at most block_timeout_ms or until the router's next
 * timer; an eventfd read stays armed on the ring so a mesh doorbell ends the wait
 * (mesh_prepare_sleep/mesh_awake bracket it).
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

uint64_t shard_clock_ms(void) { return shard_loop_clock_ns() / 1000000ull; }

static void doorbell_complete(struct uring_op *op, int32_t res, uint32_t flags);

static void doorbell_arm(struct shard *s) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->loop.ring);
    if (!sqe) {
        io_uring_submit(&s->loop.ring);
        sqe = io_uring_get_sqe(&s->loop.ring);
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
    struct shard_loop_config lc = {
        .idle = cfg->idle, .max_wait_ns = (uint64_t)cfg->block_timeout_ms * 1000000ull,
        .cqe_budget = SHARD_CQE_BUDGET,
        .sqes_submitted = cfg->server.stats ? &cfg->server.stats->uring_submitted : NULL,
        .cqes_completed = cfg->server.stats ? &cfg->server.stats->uring_completed : NULL,
    };
    int rc = shard_loop_init(&s->loop, &lc, SHARD_SQ_ENTRIES, SHARD_CQ_ENTRIES);
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
    rc = chunk_pool_register(with_storage ? &s->storage_pool : &s->pool, &s->loop.ring);
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
            .shard_id = cfg->id, .mesh = cfg->mesh, .ring = &s->loop.ring, .pool = &s->storage_pool,
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
        .ring = &s->loop.ring,
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
    s->loop.net = s->net;
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
    io_uring_submit(&s->loop.ring);
    return 0;
}

/* The router goes first: closing its logs waits for their writes in the ring and
 * dispatches every CQE meanwhile (appends completing into jobs and connections, network
 * ops), so the connection layer and the backend must still be there. */
static void shard_teardown(struct shard *s) {
    if (s->has_router) router_destroy(&s->router);
    s->has_router = false;
    if (s->net) net_destroy(s->net);
    s->net = NULL;
    kserver_destroy(s->server);
    s->server = NULL;
    if (s->recv_buffers) {
        for (uint32_t i = 0; i < s->cfg.recv_buffer_count; i++)
            if (s->recv_buffers[i]) chunk_unref(&s->pool, s->recv_buffers[i]);
        free(s->recv_buffers);
        s->recv_buffers = NULL;
    }
    shard_loop_fini(&s->loop);
    if (s->pool.base) chunk_pool_destroy(&s->pool);
    if (s->storage_pool.base) chunk_pool_destroy(&s->storage_pool);
}

/* ---- the shard's role in the loop (shard_loop.h) -------------------------------- */

static void shard_begin(void *ctx, uint64_t now_ns) {
    struct shard *s = ctx;
    uint64_t now_ms = now_ns / 1000000ull;
    if (s->has_router) router_begin(&s->router, now_ms);
    kserver_clock(s->server, now_ms);
}

static unsigned shard_work(void *ctx, uint64_t now_ns) {
    struct shard *s = ctx;
    uint64_t now_ms = now_ns / 1000000ull;
    unsigned work = 0;
    work += mesh_drain(s->cfg.mesh, s->cfg.id, SHARD_MSG_BUDGET, on_message, s);
    kserver_tick(s->server, now_ms);
    net_tick(s->net, now_ms);
    if (s->has_router) {
        work += router_tick(&s->router, now_ms);
        router_publish_stats(&s->router, s->cfg.server.stats, now_ms);
    }
    return work;
}

static bool shard_done(void *ctx, uint64_t now_ns) {
    struct shard *s = ctx;
    return s->stopping && (kserver_conn_count(s->server) == 0 ||
                           now_ns / 1000000ull >= s->stop_deadline_ms);
}

static uint64_t shard_wait_ns(void *ctx, uint64_t now_ns, uint64_t max_ns) {
    struct shard *s = ctx;
    (void)now_ns;
    if (!s->has_router) return max_ns;
    uint32_t max_ms = (uint32_t)(max_ns / 1000000ull);
    if (max_ms == 0) return max_ns; /* a poller's nap: shorter than any router timer */
    return (uint64_t)router_wait_ms(&s->router, max_ms) * 1000000ull;
}

static bool shard_prepare_sleep(void *ctx) {
    struct shard *s = ctx;
    return mesh_prepare_sleep(s->cfg.mesh, s->cfg.id);
}

static void shard_awake(void *ctx) {
    struct shard *s = ctx;
    mesh_awake(s->cfg.mesh, s->cfg.id);
}

static const struct shard_loop_ops shard_ops = {
    .begin = shard_begin, .work = shard_work, .done = shard_done, .wait_ns = shard_wait_ns,
    .prepare_sleep = shard_prepare_sleep, .awake = shard_awake,
};

static void shard_loop(struct shard *s) {
    shard_loop_run(&s->loop, &shard_ops, s);
    bool polling = net_polls(s->net);
    uint64_t busy_ns = atomic_load(&s->loop.busy_ns), idle_ns = atomic_load(&s->loop.idle_ns);
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
             kserver_conn_count(s->server), (unsigned long long)s->loop.loops,
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
