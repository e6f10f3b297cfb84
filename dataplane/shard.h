/* shard.h - one pinned broker thread: its connections, partitions and storage on the
 * run-to-completion loop (shard_loop.h). See shard.c. The control thread starts shards,
 * talks to them over the mesh (mesh.h) and joins them. */
#ifndef SLUICE_DATAPLANE_SHARD_H
#define SLUICE_DATAPLANE_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/conn.h"
#include "dataplane/mesh.h"
#include "dataplane/router.h"
#include "dataplane/shard_loop.h"
#include "dataplane/topics.h"
#include "hw/chunk.h"
#include "hw/uring_op.h"

struct dpdk_port;

enum shard_msg_type {
    SHARD_MSG_STOP = 1,    /* control -> shard: drain connections and exit */
    SHARD_MSG_PING = 2,    /* any -> shard: answered with PONG carrying arg64 back */
    SHARD_MSG_PONG = 3,
};

enum shard_state { SHARD_STARTING = 0, SHARD_RUNNING = 1, SHARD_FAILED = 2, SHARD_EXITED = 3 };

struct shard_config {
    int id;
    int cpu;                        /* -1: do not pin */
    enum idle_policy idle;
    uint32_t block_timeout_ms;
    char listen_host[128];
    uint16_t listen_port;           /* 0: any (the broker passes shard 0's port on) */
    struct mesh *mesh;
    size_t buffer_bytes;            /* the storage chunk pool (the network pool alone when
                                       the shard has no catalogue) */
    uint32_t recv_buffer_count;     /* provided receive buffers (one chunk each) */
    size_t zc_threshold_bytes;
    bool zc_skip_local_peers;       /* sluice.net.zc.local.peers=false */
    uint32_t drain_timeout_ms;      /* graceful stop gives up after this */
    struct kserver_config server;   /* pool is filled in by the shard */
    /* The catalogue (control's reader for this shard). Without one (refresh NULL) the
     * shard serves only ApiVersions and a topic-less Metadata (unit tests). */
    struct topic_source topics;
    const char *data_dir;
    bool auto_create_topics;
    uint64_t cache_bytes;           /* batch cache budget */
    size_t storage_chunk_bytes;     /* storage chunks: the largest batch + 4 KiB */
    /* DPDK (NULL: kernel sockets): the shard drives queue `id` of this port with a
     * userspace TCP/IP stack at dpdk_ip (dataplane/net/dpdk_io.h). */
    struct dpdk_port *dpdk;
    uint32_t dpdk_ip, dpdk_netmask, dpdk_gateway; /* host byte order */
    uint32_t dpdk_keepalive_ms, dpdk_keepalive_interval_ms, dpdk_keepalive_probes; /* 0: off */
};

struct shard {
    struct shard_config cfg;
    pthread_t thread;
    _Atomic int state;
    int bound_port;
    char error[512];
    /* owned by the shard thread */
    struct shard_loop loop;         /* its io_uring, idle policy, busy/idle time */
    struct chunk_pool pool;         /* network: receive buffers, response blocks */
    struct chunk_pool storage_pool; /* the log's chunks (registered) */
    uint8_t **recv_buffers;
    struct net_backend *net;
    struct kserver *server;
    struct router router;
    bool has_router;
    struct uring_op doorbell_op;
    uint64_t doorbell_value;
    bool stopping;
    uint64_t stop_deadline_ms;
};

/* Start the thread and wait until it listens (0) or failed (-1, message in s->error). */
int shard_start(struct shard *s, const struct shard_config *cfg);
void shard_join(struct shard *s);

uint64_t shard_clock_ms(void);

#endif
