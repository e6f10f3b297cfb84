/* broker.c - boot and run the broker: topology -> mesh -> shards -> listeners, then the
 * control loop until SIGINT/SIGTERM, then a graceful stop.
 *
 * Boot. The CPU topology is read from sysfs and sluice.cores picks the shard cores. The
 * mesh (rings between every pair of shards and the control thread) is built, then the
 * shards are started one at a time: each pins itself, creates its io_uring and memory
 * and binds its SO_REUSEPORT listener before the next starts (so a port of 0 picked by
 * shard 0 is passed to the others). Then one "ready" log line.
 *
 * Signals. SIGINT/SIGTERM are blocked in every thread (the mask is set before the shards
 * are created, and threads inherit it) and read by the control thread from a signalfd,
 * so no handler runs inside a shard. SIGPIPE is ignored (sends use MSG_NOSIGNAL anyway).
 *
 * Stop. Control sends SHARD_MSG_STOP to every shard over the mesh; each stops accepting
 * and reading, flushes queued responses, closes its connections and exits; control joins
 * them and returns 0. A shard gives up waiting after sluice.shutdown.timeout.ms (4 s), so
 * the process is gone within 5 s.
 *
 * Metrics. Each shard writes its own struct shard_stats (here, one per shard); the
 * control loop serves GET /metrics (metrics_http.c) from them on sluice.metrics.listen.
 * A metrics listener that cannot bind is a warning, not a failure: the broker still
 * serves Kafka clients (several test brokers on one host share the default port).
 *
 * Logs. Shards write their log lines into rings (hw/log.h); the control loop drains them
 * on every turn (woken by the rings' eventfd) and once more after the shards are joined. */
#include "control/broker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/control_plane.h"
#include "control/group_api.h"
#include "control/metrics_http.h"
#include "dataplane/handlers.h"
#include "dataplane/mesh.h"
#include "dataplane/shard.h"
#include "hw/dpdk_port.h"
#include "hw/log.h"
#include "hw/topology.h"

#define BROKER_MESH_RING_CAPACITY 1024

struct broker {
    struct cpu_topology topo;
    int cores[MESH_MAX_SHARDS];
    int shard_count;
    struct mesh mesh;
    struct shard shards[MESH_MAX_SHARDS];
    struct broker_identity identity;
    _Atomic int32_t connections;
    int signal_fd;
    struct control_plane control;
    struct shard_stats *stats;     /* shard_count of them, cache-line aligned */
    struct metrics metrics;
    struct metrics_http metrics_http;
    int log_wake_fd; /* shards' log rings have lines (hw/log.h) */
    struct dpdk_port *dpdk;        /* dpdk.enabled: the port the shards poll, else NULL */
};

/* "PLAINTEXT://host:port[,...]" -> host, port (the first listener). */
static int parse_listener(const char *value, char *host, size_t host_bytes, int *port) {
    const char *p = strstr(value, "://");
    p = p ? p + 3 : value;
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == ':') colon = p + i;
    if (!colon || (size_t)(colon - p) >= host_bytes) return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    if (host[0] == '\0') snprintf(host, host_bytes, "0.0.0.0");
    char *num_end;
    long v = strtol(colon + 1, &num_end, 10);
    if (num_end != p + len || v < 0 || v > 65535) return -1;
    *port = (int)v;
    return 0;
}

static int block_signals(struct broker *b) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    b->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return b->signal_fd >= 0 ? 0 : -1;
}

static int pick_cores(struct broker *b, const struct config *cfg) {
    char err[256];
    if (topology_load(&b->topo, "/sys", err, sizeof err) != 0) {
        log_error("topology_failed", "error=\"%s\"", err);
        return -1;
    }
    b->shard_count = cores_select(&b->topo, config_get(cfg, "sluice.cores"), b->cores,
                                  MESH_MAX_SHARDS, err, sizeof err);
    if (b->shard_count <= 0) {
        fprintf(stderr, "sluice serve: %s\n", err);
        return -1;
    }
    int control_cpu = control_core_pick(&b->topo, b->cores, b->shard_count);
    if (control_cpu >= 0) topology_pin_self(control_cpu);
    log_info("topology", "online=%d physical=%d numa_nodes=%d shards=%d control_cpu=%d",
             b->topo.online_count, b->topo.physical_core_count, b->topo.node_count,
             b->shard_count, control_cpu);
    return 0;
}

static int fill_shard_config(struct broker *b, const struct config *cfg,
                             struct shard_config *sc) {
    memset(sc, 0, sizeof *sc);
    int port;
    if (parse_listener(config_get(cfg, "listeners"), sc->listen_host, sizeof sc->listen_host,
                       &port) != 0) {
        fprintf(stderr, "sluice serve: listeners: expected PLAINTEXT://HOST:PORT\n");
        return -1;
    }
    sc->listen_port = (uint16_t)port;
    const char *policy = config_get(cfg, "sluice.idle.policy");
    if (strcmp(policy, "poll") == 0) sc->idle = IDLE_POLL;
    else if (strcmp(policy, "block") == 0) sc->idle = IDLE_BLOCK;
    else {
        fprintf(stderr, "sluice serve: sluice.idle.policy must be poll or block\n");
        return -1;
    }
    sc->block_timeout_ms = (uint32_t)config_get_i64(cfg, "sluice.idle.block.timeout.ms");
    sc->mesh = &b->mesh;
    sc->buffer_bytes = (size_t)config_get_i64(cfg, "sluice.shard.buffer.bytes");
    uint32_t bufs = (uint32_t)config_get_i64(cfg, "sluice.net.recv.buffers");
    if ((bufs & (bufs - 1)) != 0) {
        fprintf(stderr, "sluice serve: sluice.net.recv.buffers must be a power of two\n");
        return -1;
    }
    sc->recv_buffer_count = bufs;
    sc->zc_threshold_bytes = (size_t)config_get_i64(cfg, "sluice.net.zc.threshold.bytes");
    sc->zc_skip_local_peers = !config_get_bool(cfg, "sluice.net.zc.local.peers");
    sc->drain_timeout_ms = (uint32_t)config_get_i64(cfg, "sluice.shutdown.timeout.ms");
    int32_t max_connections = (int32_t)config_get_i64(cfg, "max.connections");
    sc->server = (struct kserver_config){
        .max_conns = (uint32_t)max_connections,
        .max_request_bytes = (uint32_t)config_get_i64(cfg, "socket.request.max.bytes"),
        .idle_timeout_ms = (uint64_t)config_get_i64(cfg, "connections.max.idle.ms"),
        .max_inflight_per_conn = (uint32_t)config_get_i64(cfg, "sluice.conn.max.inflight"),
        .max_connections = max_connections,
        .connections = &b->connections,
        .max_response_bytes = 64u << 20,
        .max_input_bytes = (size_t)config_get_i64(cfg, "sluice.shard.input.max.bytes"),
        .identity = &b->identity,
    };
    return 0;
}

static int fill_identity(struct broker *b, const struct config *cfg, int bound_port) {
    struct broker_identity *id = &b->identity;
    id->node_id = (int32_t)config_get_i64(cfg, "node.id");
    snprintf(id->cluster_id, sizeof id->cluster_id, "%s", config_get(cfg, "sluice.cluster.id"));
    const char *adv = config_get(cfg, "advertised.listeners");
    int port = bound_port;
    if (adv && adv[0]) {
        if (parse_listener(adv, id->advertised_host, sizeof id->advertised_host, &port) != 0) {
            fprintf(stderr, "sluice serve: advertised.listeners: expected PLAINTEXT://HOST:PORT\n");
            return -1;
        }
        if (port == 0) port = bound_port;
    } else {
        parse_listener(config_get(cfg, "listeners"), id->advertised_host,
                       sizeof id->advertised_host, &port);
        port = bound_port;
        if (strcmp(id->advertised_host, "0.0.0.0") == 0) {
            if (gethostname(id->advertised_host, sizeof id->advertised_host) != 0)
                snprintf(id->advertised_host, sizeof id->advertised_host, "127.0.0.1");
        }
    }
    id->advertised_port = port;
    return 0;
}

/* SO_REUSEPORT would let this broker silently share a port with another process of the
 * same user (say, a second broker). Bind once without it first: a port that anyone
 * listens on fails here with EADDRINUSE, as Kafka's does. */
static int check_port_free(const char *host, int port) {
    if (port == 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return 0; /* a name: the shard resolves */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* "10.0.0.1" -> host byte order; -1 when not a dotted quad (a NULL config value too). */
static int parse_ipv4(const char *text, uint32_t *out) {
    struct in_addr a;
    if (!text || inet_pton(AF_INET, text, &a) != 1) return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

/* dpdk.enabled: bring the port up (hw/dpdk_port.h), one queue pair per shard, and give
 * the shards its address; the listener host must be dpdk.ip (or 0.0.0.0: dpdk.ip then). */
static int open_dpdk(struct broker *b, const struct config *cfg, struct shard_config *sc) {
    if (!config_get_bool(cfg, "dpdk.enabled")) return 0;
    const char *gateway = config_get(cfg, "dpdk.gateway");
    if (parse_ipv4(config_get(cfg, "dpdk.ip"), &sc->dpdk_ip) != 0 ||
        parse_ipv4(config_get(cfg, "dpdk.netmask"), &sc->dpdk_netmask) != 0 ||
        (gateway && gateway[0] && parse_ipv4(gateway, &sc->dpdk_gateway) != 0)) {
        fprintf(stderr, "sluice serve: dpdk.enabled needs dpdk.ip (and dpdk.netmask, "
                        "dpdk.gateway) as dotted IPv4 addresses\n");
        return -1;
    }
    uint32_t listen_ip = 0;
    if (strcmp(sc->listen_host, "0.0.0.0") == 0)
        snprintf(sc->listen_host, sizeof sc->listen_host, "%s", config_get(cfg, "dpdk.ip"));
    if (parse_ipv4(sc->listen_host, &listen_ip) != 0 || listen_ip != sc->dpdk_ip ||
        sc->listen_port == 0) {
        fprintf(stderr, "sluice serve: with dpdk.enabled the listener must be "
                        "dpdk.ip:PORT (%s) with a port\n", config_get(cfg, "dpdk.ip"));
        return -1;
    }
    int nodes[MESH_MAX_SHARDS];
    for (int i = 0; i < b->shard_count; i++) nodes[i] = b->topo.node_of[b->cores[i]];
    struct dpdk_port_config pc = {
        .eal_args = config_get(cfg, "dpdk.eal.args"),
        .port_id = (uint16_t)config_get_i64(cfg, "dpdk.port"),
        .queue_count = (uint16_t)b->shard_count,
        .queue_nodes = nodes,
        .fault_drop_percent = (uint32_t)config_get_i64(cfg, "dpdk.test.drop.percent"),
        .fault_reorder_percent = (uint32_t)config_get_i64(cfg, "dpdk.test.reorder.percent"),
    };
    char err[512];
    if (dpdk_port_open(&pc, &b->dpdk, err, sizeof err) != 0) {
        log_error("dpdk_failed", "error=\"%s\"", err);
        return -1;
    }
    struct dpdk_port_info info;
    dpdk_port_info(b->dpdk, &info);
    char mac[24];
    dpdk_format_mac(info.mac, mac, sizeof mac);
    log_info("dpdk_port", "port=%u name=%s driver=%s mac=%s mtu=%u link=%s queues=%u "
             "steering=%s hugepages=%d ip=%s", info.port_id, info.name, info.driver, mac,
             info.mtu, info.link_up ? "up" : "down", info.queue_count,
             info.queue_count == 1 ? "none" : info.hw_rss ? "hw_rss" : "software",
             info.hugepages, config_get(cfg, "dpdk.ip"));
    sc->dpdk = b->dpdk;
    sc->dpdk_keepalive_ms = (uint32_t)config_get_i64(cfg, "dpdk.tcp.keepalive.ms");
    sc->dpdk_keepalive_interval_ms =
        (uint32_t)config_get_i64(cfg, "dpdk.tcp.keepalive.interval.ms");
    sc->dpdk_keepalive_probes = (uint32_t)config_get_i64(cfg, "dpdk.tcp.keepalive.probes");
    return 0;
}

static void stop_shards(struct broker *b, int started) {
    int control = mesh_control_id(&b->mesh);
    for (int i = 0; i < started; i++) {
        struct shard_msg stop = {.type = SHARD_MSG_STOP};
        while (!mesh_send(&b->mesh, control, i, &stop)) { /* full: let the shard drain */
            struct timespec nap = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&nap, NULL);
        }
    }
    for (int i = 0; i < started; i++) shard_join(&b->shards[i]);
    log_drain(); /* the shards' last lines */
}

static void control_message(void *ctx, const struct shard_msg *msg) {
    struct broker *b = ctx;
    control_plane_on_message(&b->control, msg);
}

static const char *topic_name_of(void *catalog, const uint8_t id[16]) {
    const struct catalog_topic *t = catalog_find_id(catalog, id);
    return t ? t->name : NULL;
}

static bool topic_id_of(void *catalog, const char *name, uint8_t id[16]) {
    const struct catalog_topic *t = catalog_find(catalog, name);
    if (t) memcpy(id, t->id, 16);
    return t != NULL;
}

static void visit_group_offsets(void *groups, metrics_offset_fn fn, void *arg) {
    if (groups) group_api_visit_offsets(groups, fn, arg);
}

/* GET /metrics on sluice.metrics.listen (empty: off). Failing to bind is not fatal. */
static void start_metrics(struct broker *b, const struct config *cfg) {
    b->metrics_http.epoll_fd = -1;
    const char *listen = config_get(cfg, "sluice.metrics.listen");
    if (!listen || !listen[0]) return;
    char err[256];
    if (metrics_init(&b->metrics, b->shard_count, b->stats, b->shards) != 0) {
        log_error("metrics_failed", "error=\"out of memory\"");
        return;
    }
    b->metrics.topic_name = topic_name_of;
    b->metrics.topic_id = topic_id_of;
    b->metrics.topic_name_ctx = &b->control.catalog;
    b->metrics.visit_offsets = visit_group_offsets;
    b->metrics.visit_offsets_ctx = b->control.groups;
    if (metrics_http_start(&b->metrics_http, listen, &b->metrics, err, sizeof err) != 0) {
        log_warn("metrics_unavailable", "listen=%s error=\"%s\"", listen, err);
        return;
    }
    log_info("metrics_ready", "listen=%s port=%d path=/metrics", listen, b->metrics_http.port);
}

/* Wait for SIGINT/SIGTERM, serving the control end of the mesh meanwhile. */
static int control_loop(struct broker *b) {
    int control = mesh_control_id(&b->mesh);
    for (;;) {
        struct pollfd fds[4] = {{.fd = b->signal_fd, .events = POLLIN},
                                {.fd = mesh_doorbell_fd(&b->mesh, control), .events = POLLIN},
                                {.fd = metrics_http_fd(&b->metrics_http), .events = POLLIN},
                                {.fd = b->log_wake_fd, .events = POLLIN}};
        log_drain();
        mesh_drain(&b->mesh, control, 1024, control_message, b);
        control_plane_tick(&b->control);
        bool busy = b->control.retry_first || b->control.publish_pending;
        bool may_sleep = mesh_prepare_sleep(&b->mesh, control);
        int n = poll(fds, 4, may_sleep ? (busy ? 1 : 1000) : 0);
        mesh_awake(&b->mesh, control);
        if (fds[2].fd >= 0 && (n == 0 || (fds[2].revents & POLLIN))) /* ready, or timers */
            metrics_http_run(&b->metrics_http);
        if (n < 0 && errno != EINTR) return -1;
        if (fds[1].revents & POLLIN) mesh_doorbell_clear(&b->mesh, control);
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(b->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) return (int)si.ssi_signo;
        }
    }
}

/* glibc raises its mmap threshold (up to 32 MiB) each time a large mmapped block is
 * freed, so after the first big free every later large block -- a copied multi-MiB Produce
 * request, a segment index -- comes from the shard's malloc arena, and fragmentation
 * keeps the arena at its high-water mark: 100 partitions at full rate left ~200 MiB of
 * freed arena memory resident (perf/results/memory.md). Setting the threshold fixes it
 * (and the trim threshold) for the process: blocks of BROKER_MMAP_THRESHOLD_BYTES or more
 * are mapped on allocation and unmapped on free. */
#define BROKER_MMAP_THRESHOLD_BYTES (128 * 1024)

static void fix_malloc_thresholds(void) {
    /* Sanitizer allocators accept and ignore mallopt (ASan returns 0): not a problem. */
    if (mallopt(M_MMAP_THRESHOLD, BROKER_MMAP_THRESHOLD_BYTES) != 1)
        log_info("malloc_threshold_not_set", "option=M_MMAP_THRESHOLD bytes=%d",
                 BROKER_MMAP_THRESHOLD_BYTES);
}

/* Each open partition holds a few descriptors (directory, segment files, the log start
 * file): raise the soft limit on open files to the hard limit, as Kafka's operators do. */
static void raise_open_files_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_info("open_files_limit", "soft=%llu was=%llu", (unsigned long long)rl.rlim_cur,
                 (unsigned long long)before);
}

int broker_run(const struct config *cfg) {
    /* Large (MESH_MAX_SHARDS shards, 44 MB) and zero as static storage: no memset, so
     * only the shards in use are ever touched (a memset made all of it resident). */
    static struct broker broker;
    static bool broker_started;
    assert(!broker_started); /* one broker per process */
    broker_started = true;
    struct broker *b = &broker;
    b->signal_fd = -1;
    b->log_wake_fd = -1;
    if (block_signals(b) != 0) {
        log_error("signals_failed", "err=%s", strerror(errno));
        return 1;
    }
    if (pick_cores(b, cfg) != 0) return 2;
    b->stats = aligned_alloc(_Alignof(struct shard_stats),
                             (size_t)b->shard_count * sizeof b->stats[0]);
    if (!b->stats) {
        log_error("stats_failed", "error=\"out of memory\"");
        return 1;
    }
    memset(b->stats, 0, (size_t)b->shard_count * sizeof b->stats[0]);
    raise_open_files_limit();
    fix_malloc_thresholds();
    const char *data_dir = config_get(cfg, "log.dirs");
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        log_error("data_dir_failed", "dir=%s err=%s", data_dir, strerror(errno));
        return 1;
    }
    handlers_init();
    b->log_wake_fd = log_ring_enable(); /* before the shards: they attach at start */
    if (mesh_init(&b->mesh, b->shard_count, BROKER_MESH_RING_CAPACITY) != 0) {
        log_error("mesh_failed", "shards=%d", b->shard_count);
        return 1;
    }
    struct shard_config sc;
    if (fill_shard_config(b, cfg, &sc) != 0) return 2;
    if (open_dpdk(b, cfg, &sc) != 0) {
        mesh_destroy(&b->mesh);
        return 2;
    }
    if (fill_identity(b, cfg, sc.listen_port) != 0) return 2;
    int port_rc = b->dpdk ? 0 : check_port_free(sc.listen_host, sc.listen_port);
    if (port_rc != 0) {
        log_error("listen_failed", "listen=%s:%u err=\"%s\"", sc.listen_host, sc.listen_port,
                  strerror(-port_rc));
        mesh_destroy(&b->mesh);
        return 1;
    }
    char err[512];
    if (control_plane_init(&b->control, &b->mesh, data_dir, cfg, err, sizeof err) != 0) {
        log_error("catalog_failed", "error=\"%s\"", err);
        control_plane_destroy(&b->control);
        mesh_destroy(&b->mesh);
        dpdk_port_close(b->dpdk);
        return 1;
    }
    b->control.node_id = b->identity.node_id;
    sc.data_dir = data_dir;
    sc.auto_create_topics = config_get_bool(cfg, "auto.create.topics.enable");
    sc.cache_bytes = (uint64_t)config_get_i64(cfg, "sluice.batch.cache.bytes");
    sc.storage_chunk_bytes = (size_t)config_get_i64(cfg, "sluice.storage.chunk.bytes");
    if (sc.storage_chunk_bytes % 4096 != 0) {
        fprintf(stderr, "sluice serve: sluice.storage.chunk.bytes must be a multiple of 4096\n");
        control_plane_destroy(&b->control);
        mesh_destroy(&b->mesh);
        dpdk_port_close(b->dpdk);
        return 2;
    }
    int started = 0;
    for (int i = 0; i < b->shard_count; i++) {
        sc.id = i;
        sc.cpu = b->cores[i];
        sc.server.stats = &b->stats[i];
        control_plane_topic_source(&b->control, i, &sc.topics);
        if (shard_start(&b->shards[i], &sc) != 0) {
            log_error("shard_start_failed", "shard=%d error=\"%s\"", i, b->shards[i].error);
            stop_shards(b, started);
            control_plane_destroy(&b->control);
            mesh_destroy(&b->mesh);
            dpdk_port_close(b->dpdk);
            return 1;
        }
        started++;
        if (sc.listen_port == 0) { /* port chosen by the kernel: everyone shares it */
            sc.listen_port = (uint16_t)b->shards[0].bound_port;
            b->identity.advertised_port = b->shards[0].bound_port;
        }
    }
    log_info("ready", "listen=%s:%d advertised=%s:%d shards=%d node_id=%d data_dir=%s",
             sc.listen_host, b->shards[0].bound_port, b->identity.advertised_host,
             b->identity.advertised_port, b->shard_count, b->identity.node_id, data_dir);
    start_metrics(b, cfg);
    int signo = control_loop(b);
    log_info("shutdown", "signal=%d", signo);
    metrics_http_stop(&b->metrics_http);
    stop_shards(b, started);
    dpdk_port_close(b->dpdk); /* every shard has left its queue */
    metrics_destroy(&b->metrics);
    free(b->stats); /* the shards that wrote them are joined */
    control_plane_destroy(&b->control);
    mesh_destroy(&b->mesh);
    close(b->signal_fd);
    log_info("stopped", "exit=0");
    return 0;
}
