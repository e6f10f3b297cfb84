/* conn.h - the Kafka connection layer of one shard (on top of a net backend).
 * See conn.c for the design. All functions run on the shard's thread. */
#ifndef SLUICE_DATAPLANE_CONN_H
#define SLUICE_DATAPLANE_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/handlers.h"
#include "dataplane/net/net.h"
#include "dataplane/stats.h"
#include "hw/chunk.h"

/* Requests one connection may have in progress at once (deferred, or answered and
 * waiting for an earlier one). The Java producer pipelines up to 5 (max.in.flight);
 * librdkafka without idempotence allows far more. Past this the connection is paused,
 * and that path costs: with 1 MiB acks=all requests, 16 in flight and a limit of 8, the
 * broker paused 1,160 times per GB, its frames no longer sat alone in their blocks
 * (copied again, stash regrown: fresh pages) and it took 795-816 MB/s; with 16,
 * 1050-1112 MB/s (perf/results/pipeline.md section 10). The router sizes its bounds by
 * max_conns times this (slots and outbox: virtual memory, touched when used). */
#define KSERVER_MAX_PIPELINE 16u

struct kserver_config {
    uint32_t max_conns;              /* connection slots of this shard */
    uint32_t max_request_bytes;      /* socket.request.max.bytes */
    uint64_t idle_timeout_ms;        /* connections.max.idle.ms */
    uint32_t max_inflight_per_conn;  /* requests in progress plus responses queued before the
                                        connection stops reading (in progress: at most
                                        KSERVER_MAX_PIPELINE) */
    int32_t max_connections;         /* max.connections, across all shards */
    _Atomic int32_t *connections;    /* the shared count max.connections is checked against */
    size_t max_response_bytes;       /* one response larger than this closes the connection */
    size_t max_input_bytes;          /* soft budget for partial frames buffered by the shard:
                                        above it, connections that add to it stop reading */
    const struct broker_identity *identity;
    struct chunk_pool *pool;         /* output buffers come from here */
    void *owner;                     /* handed to handlers as ctx->owner (the shard) */
    struct shard_stats *stats;       /* metrics (dataplane/stats.h) written here; NULL: none */
    /* The handler table; NULL: handler_find (tests give their own handlers here). */
    const struct handler *(*find_handler)(int16_t api_key);
};

struct kserver_stats {
    uint64_t requests, responses_bytes, closed_bad_frame, closed_unsupported, closed_idle,
        refused_max_connections, paused;
    uint64_t responses_zc;        /* sent by kserver_complete_zc with the bytes in place */
    uint64_t responses_zc_copied; /* kserver_complete_zc responses that took the copy path */
    uint64_t frames_kept;         /* big frames whose stash block a handler kept (no copy) */
};

struct kserver;

struct kserver *kserver_create(const struct kserver_config *cfg);
/* The callbacks to give the backend; then attach the backend made with them. */
void kserver_net_events(struct net_events *out);
void kserver_attach(struct kserver *ks, struct net_backend *net);
/* The clock connections are stamped with (accepted, received, sent): set at the start
 * of each loop iteration, before its CQEs are dispatched (so before the first accept). */
void kserver_clock(struct kserver *ks, uint64_t now_ms);
/* Once per shard loop iteration: clock, idle sweep, connections waiting for buffers. */
void kserver_tick(struct kserver *ks, uint64_t now_ms);
/* Graceful shutdown: stop accepting and reading, flush queued responses, then close. */
void kserver_begin_drain(struct kserver *ks);
unsigned kserver_conn_count(const struct kserver *ks);
void kserver_stats(const struct kserver *ks, struct kserver_stats *out);
/* The peer address of the connection a token names ("127.0.0.1"): 0, or -errno
 * (-ENOENT when the connection has gone, -ENOTSUP for a backend that cannot tell). */
int kserver_peer_name(struct kserver *ks, struct conn_token token, char *out, size_t out_bytes);
/* Complete a request a handler deferred (HANDLER_DEFERRED): body writes the response
 * body (NULL: the request has no response, e.g. Produce acks=0); it leaves after the
 * responses of the connection's earlier requests. Requests may complete in any order.
 * Returns false when the connection has gone meanwhile (nothing is sent;
 * the caller just frees what it kept). */
typedef int (*response_body_fn)(void *arg, struct kafka_writer *w);
bool kserver_complete(struct kserver *ks, struct conn_token token, response_body_fn body,
                      void *arg);
/* Like kserver_complete, for a response that references bytes the caller holds (Fetch's
 * record batches): body encodes with an iovec-mode writer and the response goes out
 * without copying them; release(arg) runs exactly once, when the kernel no longer needs
 * the bytes (send done, or the connection closed first) -- or at once when the
 * connection has gone, or the response was copied instead (too many iovecs, no chunk,
 * little data). body may be called more than once and must encode the same bytes. */
bool kserver_complete_zc(struct kserver *ks, struct conn_token token, response_body_fn body,
                         void *arg, void (*release)(void *arg));
/* A deferred request that could not be answered (it did not decode): close the
 * connection after the responses queued before it, as for a bad request. */
void kserver_fail(struct kserver *ks, struct conn_token token);
/* Frees what the server owns; the backend must be destroyed first. */
void kserver_destroy(struct kserver *ks);

#endif
