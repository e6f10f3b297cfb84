/* router.h - a shard's request routing: partition owners, control-plane round trips.
 * See router.c for the design and for how to add a handler. */
#ifndef SLUICE_DATAPLANE_ROUTER_H
#define SLUICE_DATAPLANE_ROUTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/conn.h"
#include "dataplane/handlers.h"
#include "dataplane/mesh.h"
#include "dataplane/topics.h"
#include "storage/partition_log.h"
#include "storage/record/compress.h"

/* Message types on the mesh (shard.h uses 1..15). */
enum router_msg_type {
    ROUTER_MSG_CONTROL_REQ = 16,   /* shard -> control: ptr = struct control_job */
    ROUTER_MSG_CONTROL_REPLY = 17, /* control -> shard: the same job, answered */
    ROUTER_MSG_AUTO_CREATE = 18,   /* shard -> control: ptr = malloc'd topic name */
    ROUTER_MSG_PART_REQ = 19,      /* origin -> owner: ptr = struct data_job */
    ROUTER_MSG_PART_DONE = 20,     /* owner -> origin: the same job */
    ROUTER_MSG_INTERNAL_APPEND = 21,      /* control -> owner: struct internal_append_job */
    ROUTER_MSG_INTERNAL_APPEND_DONE = 22, /* owner -> control: the same job, answered */
};

/* Control appending one RecordBatch v2 to a partition a shard owns (the internal topics:
 * __consumer_offsets, later __transaction_state). The owner checks the batch (header and
 * CRC), appends it durably (written and fdatasync'd, as acks=all) and sends the job back;
 * control then calls done() on its own thread. The batch's base offset is assigned by the
 * log. Control bounds how many it has in flight (ROUTER_MAX_INTERNAL_APPENDS): the owners'
 * outboxes are sized for that many answers. */
#define ROUTER_MAX_INTERNAL_APPENDS 1024u
struct internal_append_job {
    uint8_t topic_id[16];
    int32_t partition;
    const uint8_t *batch;          /* owned by the sender until done() */
    uint32_t batch_bytes;
    int16_t error_code;            /* answer: 0 or a Kafka error code */
    int64_t base_offset;           /* answer: where the batch landed (-1 on error) */
    void (*done)(struct internal_append_job *job); /* on the control thread */
    void *user;                    /* the sender's context */
    /* the router's and control's bookkeeping */
    int owner_shard;
    struct plog_append_req append;
    struct internal_append_job *next;
};

#define ROUTER_CLIENT_ID_BYTES 256   /* longer client ids are cut (DescribeGroups only) */
#define ROUTER_CLIENT_HOST_BYTES 64

/* A control-plane request travelling to the control thread and back. Control decodes
 * the request from `request` (a copy of the frame's body), acts on the catalogue, and
 * encodes the response body into `response` (malloc'd by control). */
struct control_job {
    int origin_shard;
    struct conn_token token;
    int16_t api_key;
    int16_t api_version;
    char client_id[ROUTER_CLIENT_ID_BYTES];     /* the request header's, "" when null */
    char client_host[ROUTER_CLIENT_HOST_BYTES]; /* the peer address, "" when unknown */
    uint8_t *request;
    uint32_t request_bytes;
    uint8_t *response;
    uint32_t response_bytes;
    struct control_job *next;      /* control's retry list when a ring is full */
};

#define ROUTER_PTABLE_SLOTS 16384u /* open partitions per shard: at most half of this */
#define ROUTER_MAX_PARTS 4096u     /* partitions in one Produce/Fetch/ListOffsets */

struct ptable_entry {
    uint8_t id[16];
    int32_t partition;
    bool used;
    struct plog *log;
};

struct outbox_entry {
    int to;
    struct shard_msg msg;
};

struct data_job;

struct router_config {
    int shard_id;
    struct mesh *mesh;
    struct io_uring *ring;
    struct chunk_pool *pool;
    struct topic_source topics;
    const struct broker_identity *identity;
    const char *data_dir;
    bool auto_create_topics;
    uint64_t cache_bytes;
    uint32_t max_conns;            /* sizes the outbox: each connection has at most
                                      KSERVER_MAX_PIPELINE jobs (conn.c pipelines) */
};

struct router {
    struct router_config cfg;
    int shard_count;
    struct kserver *ks;
    struct storage_shard storage;
    bool storage_ready;
    uint64_t epoch;                /* snapshot the partition table matches */
    struct ptable_entry *table, *spare; /* ROUTER_PTABLE_SLOTS each */
    uint32_t open_count;
    struct outbox_entry *outbox;   /* messages a full ring refused; retried each tick */
    uint32_t outbox_cap, outbox_head, outbox_count;
    struct data_job *parked;       /* fetches waiting for data or their deadline */
    struct data_job *ready;        /* answered by the next tick */
    struct data_part *buffer_wait_first, *buffer_wait_last; /* produce parts waiting for
                                                              * storage chunks (FIFO) */
    struct record_codecs codecs;
    uint8_t *convert_out, *convert_decompress, *convert_records; /* legacy conversion */
    uint8_t *check_scratch;        /* decompressed records while validating a batch */
    struct kafka_arena arena;      /* response assembly */
    uint8_t *arena_mem;
    _Atomic uint64_t appends_done; /* read by other shards' parked fetches */
    uint64_t now_ms;
};

int router_init(struct router *r, const struct router_config *cfg, char *err, size_t err_bytes);
void router_attach(struct router *r, struct kserver *ks);
/* Between loop iterations: pick up a new catalogue snapshot (open / close partitions). */
void router_refresh(struct router *r);
/* First thing in a loop iteration, before its CQEs: the clock the requests received in
 * it are timed by (a fetch's max wait, a produce's buffer wait), then router_refresh.
 * The clock of the last tick could be a whole idle wait old: a fetch arriving after
 * it was answered up to that much before its MaxWaitMs. */
void router_begin(struct router *r, uint64_t now_ms);
/* Each iteration: group commit, outbox retry, parked fetches. Returns work done. */
unsigned router_tick(struct router *r, uint64_t now_ms);
/* How long the shard may block in io_uring: short while fetches are parked (they watch
 * other shards' append counters, which ring no doorbell). */
#define ROUTER_PARKED_POLL_MS 2u
uint32_t router_wait_ms(const struct router *r, uint32_t block_timeout_ms);
/* A mesh message of a ROUTER_MSG_* type. */
void router_on_message(struct router *r, const struct shard_msg *msg);
void router_destroy(struct router *r);

/* Handlers (handlers.c's table). */
int router_handle_metadata(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                           struct kafka_reader *body, struct kafka_writer *w);
int router_handle_control(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w);
int router_handle_produce(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w);
int router_handle_fetch(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                        struct kafka_reader *body, struct kafka_writer *w);
int router_handle_list_offsets(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                               struct kafka_reader *body, struct kafka_writer *w);
int router_handle_delete_records(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                 struct kafka_reader *body, struct kafka_writer *w);
int router_handle_offset_for_leader_epoch(struct handler_ctx *ctx,
                                          const struct kafka_request_header *hdr,
                                          struct kafka_reader *body, struct kafka_writer *w);
int router_handle_describe_log_dirs(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                    struct kafka_reader *body, struct kafka_writer *w);
int router_handle_describe_producers(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                     struct kafka_reader *body, struct kafka_writer *w);

#endif
