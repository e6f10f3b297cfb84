/* handlers.h - the Kafka API handler table of the connection layer.
 *
 * A handler gets the decoded request header and a reader over the request body, and
 * writes the response BODY (conn.c writes the size prefix and the response header). It
 * may be run again for one request when an attempt hits KAFKA_ERR_NO_SPACE (the
 * connection then sizes and retries into a bigger buffer), so a handler that answers at
 * once must be a pure function of the request and the shard's current catalogue
 * snapshot. A handler that needs other shards or the control thread copies what it
 * needs, returns HANDLER_DEFERRED before writing anything, and the answer is written
 * later through kserver_complete() (router.c). The table is also what ApiVersions
 * advertises: exactly the APIs that have a handler, at the versions it accepts. */
#ifndef SLUICE_DATAPLANE_HANDLERS_H
#define SLUICE_DATAPLANE_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/kafka/kafka_msgs.h"
#include "dataplane/kafka/wire.h"

#define KAFKA_ERROR_UNKNOWN_TOPIC_OR_PARTITION 3
#define KAFKA_ERROR_UNSUPPORTED_VERSION 35

/* Who this broker is, as told to clients in Metadata. */
struct broker_identity {
    int32_t node_id;
    char advertised_host[256];
    int32_t advertised_port;
    char cluster_id[64];
};

/* Names one request of one connection across time: a deferred handler keeps it and
 * completes with kserver_complete() (conn.h). The generation tells a connection that
 * closed (and whose slot was reused) from the one that asked; request tells which of the
 * connection's pipelined requests it is. */
struct conn_token {
    uint32_t conn_id;
    uint32_t generation;
    uint32_t request;
};

/* A handler returns this (after taking ctx->token) when it answers later: the connection
 * keeps its place in the response order (conn.c's request slots), so responses still
 * leave in request order. It must decide before writing anything. */
#define HANDLER_DEFERRED 1

struct kserver;

struct handler_ctx {
    const struct broker_identity *identity;
    struct kafka_arena *arena; /* reset by the caller before each attempt */
    void *owner;               /* the shard (kserver_config.owner) */
    struct kserver *ks;
    struct conn_token token;
    const struct kafka_request_header *hdr;
    const uint8_t *frame;      /* the whole request (header + body), for handlers that keep it */
    uint32_t frame_bytes;
    /* A big frame the connection buffered whole: the malloc'd block it lies in (else
     * NULL). A deferring handler may keep the block instead of copying the frame: it
     * sets frame_block_taken and gives the block to frame_block_put (frame.h) when done. */
    uint8_t *frame_block;
    uint32_t frame_block_cap;
    bool frame_block_taken;
};

typedef int (*handler_fn)(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w);

struct handler {
    int16_t api_key;
    int16_t min_version;
    int16_t max_version;
    handler_fn handle;
};

/* Metadata's part that names this broker: the one broker (advertised host/port), the
 * cluster id and this node as controller. 0, or -1 when the arena is full. */
int handlers_metadata_self(struct handler_ctx *ctx, struct kafka_metadata_response *resp);

/* Fill the table's versions from the codec; call once before any shard starts. */
void handlers_init(void);
/* NULL when api_key has no handler. */
const struct handler *handler_find(int16_t api_key);
const struct handler *handler_table(size_t *count);

#endif
