/* loadgen_worker.c - the load generator's thread: its connections and its role in the
 * shards' run-to-completion loop (dataplane/shard_loop.h; see loadgen_worker.h).
 *
 * Each iteration of the loop (after it dispatched completions and polled DPDK):
 *   for each producer: generate due messages, seal, send     -> time until more work
 *   for each consumer: send a fetch when none is in flight (--group: and the group
 *     request that is due: join, sync, heartbeat, commit, leave)
 * then the loop submits; an idle iteration waits for a completion at most until the
 * earliest next work (<= 10 ms). Completions run the connections' callbacks: receives
 * assemble frames, which complete requests.
 * The run ends when every producer has its last request answered and every consumer
 * has caught up (or given up after the drain time). Then the worker closes its
 * connections and runs the loop (bounded) until the backend reports them closed. */
#include "perf/loadgen_worker.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/net/uring_sock.h"
#include "hw/log.h"
#include "hw/topology.h"
#include "sluice_config.h"
#if SLUICE_HAVE_DPDK
#include "dataplane/net/dpdk_io.h"
#endif

#define LG_RING_ENTRIES 512
#define LG_MAX_WAIT_NS (10 * 1000000ull)
#define LG_CLOSE_TIMEOUT_NS (2000 * 1000000ull)
#define LG_SCRATCH_EXTRA_BYTES (8u << 20)
#define LG_CQE_BUDGET 8192u
#define LG_DPDK_PORT_LO 32768u          /* client ports, split among the threads' queues */
#define LG_DPDK_PORT_HI 61000u

static struct dpdk_port *lg_dpdk_port;

void lg_worker_use_dpdk(struct dpdk_port *port) { lg_dpdk_port = port; }

/* The loop's clock: the now it passes to run_work and the times loadgen takes itself
 * must be one clock. */
uint64_t lg_now_ns(void) { return shard_loop_clock_ns(); }

int lg_frames_push(struct lg_frames *f, const uint8_t *data, size_t len,
                   int (*on_frame)(void *ctx, const uint8_t *frame, size_t len), void *ctx) {
    while (len > 0) {
        size_t room = f->cap_bytes - f->len_bytes;
        size_t n = len < room ? len : room;
        memcpy(f->buf + f->len_bytes, data, n);
        f->len_bytes += n;
        data += n;
        len -= n;
        size_t at = 0;
        while (f->len_bytes - at >= 4) {
            uint32_t size = lg_get_u32(f->buf + at);
            if ((size_t)size + 4 > f->cap_bytes || size > INT32_MAX) return -1;
            if (f->len_bytes - at < (size_t)size + 4) break;
            if (on_frame(ctx, f->buf + at + 4, size) != 0) return -1;
            at += (size_t)size + 4;
        }
        if (at > 0) {
            memmove(f->buf, f->buf + at, f->len_bytes - at);
            f->len_bytes -= at;
        } else if (n == 0) {
            return -1; /* full and no whole frame: cannot happen when cap is checked */
        }
    }
    return 0;
}

/* ---- backend events ---------------------------------------------------------------- */

static int on_accepted(void *ctx, struct net_conn *conn) {
    (void)ctx;
    (void)conn;
    return -1; /* a client never listens */
}

static void on_received(void *ctx, struct net_conn *conn, const uint8_t *data, size_t len) {
    struct lg_worker *w = ctx;
    enum lg_kind *kind = conn->user;
    int rc = *kind == LG_KIND_PRODUCER
                 ? lg_producer_received((struct lg_producer *)kind, data, len)
             : *kind == LG_KIND_GROUP ? lg_group_received((struct lg_group *)kind, data, len)
                                      : lg_consumer_received((struct lg_consumer *)kind, data, len);
    if (rc != 0) {
        lg_add(&w->counters.conn_errors, 1);
        if (!w->error[0])
            snprintf(w->error, sizeof w->error, "%s: response did not decode or match",
                     *kind == LG_KIND_PRODUCER ? "produce"
                     : *kind == LG_KIND_GROUP  ? "group"
                                               : "fetch");
        net_close(w->net, conn);
    }
}

static void on_closed(void *ctx, struct net_conn *conn, int reason) {
    (void)ctx;
    enum lg_kind *kind = conn->user;
    if (*kind == LG_KIND_PRODUCER) lg_producer_closed((struct lg_producer *)kind, reason);
    else if (*kind == LG_KIND_GROUP) lg_group_closed((struct lg_group *)kind, reason);
    else lg_consumer_closed((struct lg_consumer *)kind, reason);
}

/* ---- setup and teardown ------------------------------------------------------------ */

static int loop_init(struct lg_worker *w) {
    struct shard_loop_config lc = {.idle = IDLE_BLOCK, .max_wait_ns = LG_MAX_WAIT_NS,
                                   .cqe_budget = LG_CQE_BUDGET};
    int rc = shard_loop_init(&w->loop, &lc, LG_RING_ENTRIES, 8192);
    if (rc < 0) {
        snprintf(w->error, sizeof w->error, "io_uring_queue_init: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

/* --dpdk: the userspace stack on queue w->index (dataplane/net/dpdk_io.h). */
static struct net_backend *dpdk_backend(struct lg_worker *w, const struct net_events *ev,
                                        uint32_t max_conns) {
#if SLUICE_HAVE_DPDK
    const struct lg_options *o = w->sh->o;
    /* one range of client ports per thread/queue, so answers find their queue */
    uint16_t span = (uint16_t)((LG_DPDK_PORT_HI - LG_DPDK_PORT_LO) / o->threads);
    struct net_dpdk_config dc = {.port = lg_dpdk_port, .queue = (uint16_t)w->index,
                                 .max_conns = max_conns, .client_port_base = LG_DPDK_PORT_LO,
                                 .client_port_span = span};
    if (net_dpdk_parse_ipv4(o->dpdk_ip, &dc.ip) != 0 ||
        net_dpdk_parse_ipv4(o->dpdk_netmask, &dc.netmask) != 0 ||
        (o->dpdk_gateway[0] && net_dpdk_parse_ipv4(o->dpdk_gateway, &dc.gateway) != 0)) {
        snprintf(w->error, sizeof w->error, "dpdk-ip/netmask/gateway: not IPv4 addresses");
        return NULL;
    }
    return net_dpdk_create(&dc, ev, w, w->error, sizeof w->error);
#else
    (void)ev;
    (void)max_conns;
    snprintf(w->error, sizeof w->error, "built without DPDK");
    return NULL;
#endif
}

static int worker_init(struct lg_worker *w) {
    const struct lg_options *o = w->sh->o;
    if (loop_init(w) != 0) return -1;
    w->recv_mem = malloc((size_t)LG_RECV_BUFFERS * LG_RECV_BUFFER_BYTES);
    if (!w->recv_mem) goto oom;
    for (uint32_t i = 0; i < LG_RECV_BUFFERS; i++)
        w->recv_buffers[i] = w->recv_mem + (size_t)i * LG_RECV_BUFFER_BYTES;
    struct net_uring_config cfg = {
        .ring = &w->loop.ring,
        /* --group: a consumer has a second connection, to the coordinator */
        .max_conns = w->producer_count + w->consumer_count * (o->group[0] ? 2 : 1) + 1,
        .recv_buffer_count = LG_RECV_BUFFERS,
        .recv_buffer_bytes = LG_RECV_BUFFER_BYTES,
        .recv_buffers = w->recv_buffers,
        .buf_group = 1,
        .zc_threshold_bytes = 0,
    };
    struct net_events ev = {.accepted = on_accepted, .received = on_received,
                            .closed = on_closed};
    if (lg_dpdk_port)
        w->net = dpdk_backend(w, &ev, cfg.max_conns);
    else
        w->net = net_uring_create(&cfg, &ev, w, w->error, sizeof w->error);
    if (!w->net) return -1;
    w->loop.net = w->net;
    if (record_codecs_init(&w->codecs) != RECORD_OK) goto oom;
    w->codecs_ready = true;
    w->scratch_bytes = 2 * (size_t)o->batch_bytes + LG_SCRATCH_EXTRA_BYTES;
    w->scratch = malloc(w->scratch_bytes);
    if (!w->scratch) goto oom;
    if (!lg_producers_create(w) || !lg_consumers_create(w)) goto oom;
    return 0;
oom:
    snprintf(w->error, sizeof w->error, "out of memory");
    return -1;
}

static void worker_fini(struct lg_worker *w) {
    lg_producers_destroy(w);
    lg_consumers_destroy(w);
    if (w->net) net_destroy(w->net);
    w->net = NULL;
    shard_loop_fini(&w->loop);
    if (w->codecs_ready) record_codecs_destroy(&w->codecs);
    w->codecs_ready = false;
    free(w->scratch);
    free(w->recv_mem);
    w->scratch = NULL;
    w->recv_mem = NULL;
}

static void pin(struct lg_worker *w) {
    if (w->cpu < 0) return;
    int rc = topology_pin_self(w->cpu);
    if (rc != 0) log_warn("loadgen_pin_failed", "cpu=%d err=%s", w->cpu, strerror(rc));
}

/* ---- the worker's role in the loop (dataplane/shard_loop.h) ------------------------ */

/* Step every producer and consumer; w->next_work_ns is when one next has work. */
static unsigned run_work(void *ctx, uint64_t now_ns) {
    struct lg_worker *w = ctx;
    uint64_t wait_ns = LG_MAX_WAIT_NS;
    bool all_done = true;
    for (uint32_t i = 0; i < w->producer_count; i++) {
        struct lg_producer *p = lg_producer_at(w, i);
        uint64_t t = lg_producer_step(w, p, now_ns);
        if (t < wait_ns) wait_ns = t;
        if (!lg_producer_finished(p)) all_done = false;
    }
    for (uint32_t i = 0; i < w->consumer_count; i++) {
        struct lg_consumer *c = lg_consumer_at(w, i);
        uint64_t t = lg_consumer_step(w, c, now_ns);
        if (t < wait_ns) wait_ns = t;
        if (!lg_consumer_finished(c)) all_done = false;
    }
    w->all_done = all_done;
    w->next_work_ns = now_ns + wait_ns;
    return wait_ns == 0 ? 1u : 0u;
}

static bool run_done(void *ctx, uint64_t now_ns) {
    (void)now_ns;
    return ((struct lg_worker *)ctx)->all_done;
}

/* Wait no later than the role's next work (the next message due, a linger, a timer). */
static uint64_t until_next_work(void *ctx, uint64_t now_ns, uint64_t max_ns) {
    struct lg_worker *w = ctx;
    if (w->next_work_ns <= now_ns) return 0;
    uint64_t wait_ns = w->next_work_ns - now_ns;
    return wait_ns < max_ns ? wait_ns : max_ns;
}

static const struct shard_loop_ops run_ops = {
    .work = run_work, .done = run_done, .wait_ns = until_next_work};

/* The closing phase: no work, until the backend reports every connection closed and,
 * on a userspace stack, its FIN exchange over (nothing else would finish it), or
 * LG_CLOSE_TIMEOUT_NS passed (w->next_work_ns is the deadline). */
static unsigned close_work(void *ctx, uint64_t now_ns) {
    (void)ctx;
    (void)now_ns;
    return 0;
}

static bool close_done(void *ctx, uint64_t now_ns) {
    struct lg_worker *w = ctx;
    return net_conn_count(w->net) + net_closing_count(w->net) == 0 ||
           now_ns >= w->next_work_ns;
}

static const struct shard_loop_ops close_ops = {
    .work = close_work, .done = close_done, .wait_ns = until_next_work};

static void close_all(struct lg_worker *w) {
    for (uint32_t i = 0; i < w->producer_count; i++) {
        struct net_conn *c = lg_producer_conn(lg_producer_at(w, i));
        if (c) net_close(w->net, c);
    }
    for (uint32_t i = 0; i < w->consumer_count; i++) {
        struct lg_consumer *cons = lg_consumer_at(w, i);
        struct net_conn *c = lg_consumer_conn(cons);
        if (c) net_close(w->net, c);
        struct lg_group *g = lg_consumer_group(cons);
        if (g && (c = lg_group_conn(g)) != NULL) net_close(w->net, c);
    }
    w->next_work_ns = lg_now_ns() + LG_CLOSE_TIMEOUT_NS;
    shard_loop_run(&w->loop, &close_ops, w);
}

static void *worker_main(void *arg) {
    struct lg_worker *w = arg;
    pin(w);
    if (worker_init(w) != 0) {
        w->failed = 1;
        for (uint32_t i = 0; i < w->producer_count; i++) /* those that own partitions */
            if (w->producer_first + i < w->sh->partition_count)
                atomic_fetch_sub(&w->sh->producers_running, 1);
        worker_fini(w);
        atomic_store(&w->done, 1);
        return NULL;
    }
    for (uint32_t i = 0; i < w->producer_count; i++) lg_producer_connect(w, lg_producer_at(w, i));
    for (uint32_t i = 0; i < w->consumer_count; i++) lg_consumer_connect(w, lg_consumer_at(w, i));
    shard_loop_run(&w->loop, &run_ops, w);
    uint64_t lost = 0, unread = 0;
    for (uint32_t i = 0; i < w->consumer_count; i++)
        lost += lg_consumer_lost(w, lg_consumer_at(w, i), &unread);
    atomic_store(&w->counters.lost, lost);
    atomic_store(&w->counters.unread, unread);
    close_all(w);
    worker_fini(w);
    atomic_store(&w->done, 1);
    return NULL;
}

int lg_worker_start(struct lg_worker *w) {
    hist_init(&w->produce_latency);
    hist_init(&w->e2e_latency);
    w->error_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 1);
    w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)w->index << 32) ^ w->sh->run_id;
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        snprintf(w->error, sizeof w->error, "pthread_create: %s", strerror(rc));
        return -1;
    }
    return 0;
}

void lg_worker_join(struct lg_worker *w) { pthread_join(w->thread, NULL); }
