/* loadgen_worker.h - one load generator thread and its connections (internal to perf/).
 *
 * A worker is a pinned thread on the shards' run-to-completion loop (dataplane/
 * shard_loop.h: its own io_uring, CQE dispatch, DPDK polling, idle policy) with a
 * network backend used as a client (net_connect: io_uring sockets or DPDK). Its role
 * in the loop runs a share of the producer and consumer connections: generate due
 * messages into partition batches, seal batches (full or lingered), send produce
 * requests (bounded in flight), send fetches; an idle iteration waits for completions
 * at most until the next message is due.
 *
 * Everything a connection needs is allocated when the worker starts (batch slots,
 * request slots, the frame assembly buffer, the decode arena); the loop allocates
 * nothing. Workers share only struct lg_shared: atomics the producers publish (acked
 * offsets and counts per partition) and the consumers and the main thread read. */
#ifndef SLUICE_PERF_LOADGEN_WORKER_H
#define SLUICE_PERF_LOADGEN_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/net/net.h"
#include "dataplane/shard_loop.h"
#include "hw/log.h"
#include "perf/loadgen.h"
#include "perf/loadgen_proto.h"
#include "perf/loadgen_rate.h"
#include "perf/loadgen_setup.h"
#include "storage/record/records.h"

/* Every message value starts with this header; the rest is filler. */
#define LG_PAYLOAD_MAGIC 0x534c4731u /* "SLG1" */
#define LG_PAYLOAD_HEADER_BYTES 24   /* magic u32, run u32, seq u64, intended_ns u64 */
#define LG_KEY_MAX_BYTES 16
#define LG_REQ_MAX_BATCHES 28        /* 2 iovecs a batch must fit NET_SEND_MAX_IOV */
#define LG_REQ_INLINE_BYTES (16 * 1024)
#define LG_RECV_BUFFERS 64
#define LG_RECV_BUFFER_BYTES (64 * 1024)
#define LG_RETRY_BACKOFF_NS (50 * 1000000ull)

/* Shared by all workers of a run. Per global partition g (topics flattened). */
struct lg_shared {
    const struct lg_options *o;
    const struct lg_cluster *c;
    const struct lg_zipf *zipf;          /* NULL unless key-distribution=zipf */
    uint32_t partition_count;            /* global partitions */
    uint32_t *part_topic;                /* g -> topic index */
    uint32_t *part_index;                /* g -> partition within the topic */
    _Atomic int64_t *acked_end;          /* highest acked offset + 1, -1 none */
    _Atomic uint64_t *acked_msgs;        /* acknowledged messages this run */
    _Atomic uint64_t *part_lost;         /* per partition, summed over its consumers */
    _Atomic uint64_t *part_unread;       /* acked beyond where a consumer stopped reading */
    _Atomic uint64_t *part_duplicated;
    _Atomic uint64_t *part_out_of_order;
    uint32_t run_id;
    uint64_t start_ns;                   /* schedule origin */
    uint64_t measure_from_ns;            /* warm-up ends */
    uint64_t produce_until_ns;           /* producers stop generating */
    uint64_t drain_until_ns;             /* consumers give up */
    double rate_per_producer;            /* messages/s, 0 = max */
    _Atomic uint32_t producers_running;  /* producer connections not yet finished */
    _Atomic uint64_t producers_done_ns;  /* when the last one finished */
    _Atomic int abort;                   /* stop now (signal) */
    /* Producers start when go is set: at once, or (--group) once every consumer is a
     * member of one generation with its assignment and start offsets; the main thread
     * sets the times above first. */
    _Atomic int go;
    /* --group: a partition's check state while no member holds it (published on revoke,
     * taken on assignment: one member at a time reads a partition) */
    _Atomic uint64_t *part_unique;
    _Atomic uint64_t *part_expected_seq;
    _Atomic int64_t *part_position;      /* furthest next offset a holder reached, -1 */
    _Atomic int32_t *member_generation;  /* per consumer: the generation it reads in, -1 */
    _Atomic int32_t group_generation;    /* the newest generation a member synced into */
    _Atomic uint64_t rebalances, rebalances_mid_run;
    _Atomic uint32_t group_drained;      /* members that read to the end */
    _Atomic uint32_t group_committed;    /* ... and committed their final offsets */
};

/* Live counters of one worker, read by the main thread (relaxed). */
struct lg_counters {
    _Atomic uint64_t produced_msgs, produced_bytes, acked_msgs, acked_bytes, produce_errors;
    _Atomic uint64_t consumed_msgs, consumed_bytes, consumed_batches;
    _Atomic uint64_t crc_errors, duplicated, out_of_order, fetch_errors, conn_errors;
    _Atomic uint64_t redelivered, commit_errors;
    _Atomic uint64_t lost, unread;       /* set once at the end */
};

/* The first member of a producer, a consumer and a consumer's group membership: what
 * conn->user points at. */
enum lg_kind { LG_KIND_PRODUCER = 1, LG_KIND_CONSUMER = 2, LG_KIND_GROUP = 3 };

struct lg_worker {
    struct lg_shared *sh;
    uint32_t index;
    int cpu;
    pthread_t thread;
    /* connection assignment: global connection numbers [first, first + count) */
    uint32_t producer_first, producer_count;
    uint32_t consumer_first, consumer_count;
    struct lg_counters counters;
    struct hist produce_latency;
    struct hist e2e_latency;
    char error[256];
    int failed;
    _Atomic int done;                    /* the thread has finished */
    /* thread-owned */
    struct shard_loop loop;              /* its io_uring; busy/idle time */
    uint64_t next_work_ns;               /* the role's next timer (loop callbacks) */
    bool all_done;
    struct net_backend *net;
    uint8_t *recv_mem;
    uint8_t *recv_buffers[LG_RECV_BUFFERS];
    struct record_codecs codecs;
    bool codecs_ready;
    uint8_t *scratch;                    /* compression / decompression */
    size_t scratch_bytes;
    uint64_t rng;
    struct log_ratelimit error_rl;       /* produce errors are logged, a few a second */
    struct lg_producer *producers;
    struct lg_consumer *consumers;
    struct lg_leader *leader;            /* --group: the assignor's scratch */
    uint32_t conns_open;
};

/* loadgen_worker.c */
int lg_worker_start(struct lg_worker *w);
void lg_worker_join(struct lg_worker *w);
uint64_t lg_now_ns(void);

/* Frame assembly for a client connection: bytes in, whole response frames out. */
struct lg_frames {
    uint8_t *buf;
    size_t cap_bytes, len_bytes;
};
/* Append and call on_frame(ctx, frame, len) for each whole frame; -1 if a frame is
 * larger than the buffer (the connection must close). */
int lg_frames_push(struct lg_frames *f, const uint8_t *data, size_t len,
                   int (*on_frame)(void *ctx, const uint8_t *frame, size_t len), void *ctx);

/* loadgen_producer.c */
struct lg_producer *lg_producers_create(struct lg_worker *w);
void lg_producers_destroy(struct lg_worker *w);
void lg_producer_connect(struct lg_worker *w, struct lg_producer *p);
/* One loop step: generate, seal, send. Returns ns until it next has work (0: now). */
uint64_t lg_producer_step(struct lg_worker *w, struct lg_producer *p, uint64_t now_ns);
bool lg_producer_finished(const struct lg_producer *p);
struct lg_producer *lg_producer_at(struct lg_worker *w, uint32_t i);
int lg_producer_received(struct lg_producer *p, const uint8_t *data, size_t len);
void lg_producer_closed(struct lg_producer *p, int reason);
struct net_conn *lg_producer_conn(struct lg_producer *p);

/* loadgen_consumer.c */
struct lg_consumer *lg_consumers_create(struct lg_worker *w);
void lg_consumers_destroy(struct lg_worker *w);
void lg_consumer_connect(struct lg_worker *w, struct lg_consumer *c);
uint64_t lg_consumer_step(struct lg_worker *w, struct lg_consumer *c, uint64_t now_ns);
bool lg_consumer_finished(const struct lg_consumer *c);
struct lg_consumer *lg_consumer_at(struct lg_worker *w, uint32_t i);
int lg_consumer_received(struct lg_consumer *c, const uint8_t *data, size_t len);
void lg_consumer_closed(struct lg_consumer *c, int reason);
struct net_conn *lg_consumer_conn(struct lg_consumer *c);
/* After the run: messages acked but never seen by this consumer (0 with --group: the
 * partitions' state is published and the main thread counts). */
/* At the end: the messages acked but never seen, per partition, as lost -- or as unread
 * when the consumer's position is still below the partition's acked end (the drain ran
 * out before it caught up, so the check could not look there). Returns lost. */
uint64_t lg_consumer_lost(const struct lg_worker *w, struct lg_consumer *c, uint64_t *unread);
/* For the group membership: take partitions gs[i] from offsets[i]; give them all back
 * (their check state published to struct lg_shared); the positions to commit. */
void lg_consumer_assign(struct lg_consumer *c, const uint32_t *gs, const int64_t *offsets,
                        uint32_t n);
void lg_consumer_revoke(struct lg_consumer *c);
uint32_t lg_consumer_positions(const struct lg_consumer *c, uint32_t *gs, int64_t *offsets);
bool lg_consumer_reading_done(const struct lg_consumer *c);
struct lg_group *lg_consumer_group(struct lg_consumer *c);

/* loadgen_group.c (--group) */
struct lg_leader *lg_leader_create(const struct lg_shared *sh);
void lg_leader_destroy(struct lg_leader *l);
struct lg_group *lg_group_create(struct lg_worker *w, struct lg_consumer *c, uint32_t number);
void lg_group_destroy(struct lg_group *g);
void lg_group_connect(struct lg_group *g);
/* One loop step: the next group request when one is due. ns until it has work. */
uint64_t lg_group_step(struct lg_group *g, uint64_t now_ns);
/* Left the group (or failed, or aborted): the consumer is finished. */
bool lg_group_done(const struct lg_group *g);
int lg_group_received(struct lg_group *g, const uint8_t *data, size_t len);
void lg_group_closed(struct lg_group *g, int reason);
struct net_conn *lg_group_conn(struct lg_group *g);

/* Shared payload helpers */
static inline void lg_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}
static inline void lg_put_u64(uint8_t *p, uint64_t v) {
    lg_put_u32(p, (uint32_t)(v >> 32));
    lg_put_u32(p + 4, (uint32_t)v);
}
static inline uint32_t lg_get_u32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t lg_get_u64(const uint8_t *p) {
    return ((uint64_t)lg_get_u32(p) << 32) | lg_get_u32(p + 4);
}
static inline void lg_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* --dpdk: the port the workers' connections use (queue = worker index); NULL: sockets. */
struct dpdk_port;
void lg_worker_use_dpdk(struct dpdk_port *port);

#endif
