/* router_internal.h - what the router's files share (router.c: routing, jobs, the mesh;
 * router_produce.c, router_fetch.c, router_partition.c, router_metadata.c: one API family
 * each). Not for use outside dataplane/router*.c: the public face is router.h. */
#ifndef SLUICE_DATAPLANE_ROUTER_INTERNAL_H
#define SLUICE_DATAPLANE_ROUTER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/router.h"

#define ERR_NONE 0
#define ERR_OFFSET_OUT_OF_RANGE 1
#define ERR_CORRUPT_MESSAGE 2
#define ERR_UNKNOWN_TOPIC_OR_PARTITION 3
#define ERR_LEADER_NOT_AVAILABLE 5
#define ERR_MESSAGE_TOO_LARGE 10
#define ERR_INVALID_TOPIC 17
#define ERR_RECORD_LIST_TOO_LARGE 18
#define ERR_INVALID_REQUIRED_ACKS 21
#define ERR_KAFKA_STORAGE_ERROR 56
#define ERR_UNKNOWN_SERVER_ERROR (-1)
#define ERR_UNKNOWN_TOPIC_ID 100
#define ERR_INVALID_RECORD 87
#define ERR_INVALID_PRODUCER_EPOCH 47
#define ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED 53
#define ERR_FENCED_LEADER_EPOCH 74
#define ERR_UNKNOWN_LEADER_EPOCH 75
#define DELETE_RECORDS_HIGH_WATERMARK (-1)
#define LEADER_EPOCH 0             /* this broker never changes leader: epoch 0 forever */

#define ROUTER_ARENA_BYTES (4u << 20)
#define CHECK_SCRATCH_BYTES (8u << 20) /* a produced batch's records, decompressed; above
                                          this it is refused with MESSAGE_TOO_LARGE */
#define CONVERT_BYTES (2u << 20)   /* a converted legacy set; larger ones are refused */

struct data_part {
    struct data_job *job;
    uint32_t topic_index;          /* in the request */
    struct kafka_str name;
    uint8_t id[16];
    int32_t partition;
    int owner;                     /* -1: unknown topic/partition */
    int16_t error;
    int64_t log_start, high_watermark;
    /* produce */
    struct kafka_bytes records;
    int64_t base_offset, log_append_time_ms;
    struct plog_append_req append;
    uint64_t buffer_wait_deadline_ms; /* 0, or parked for storage buffers until then */
    struct data_part *next_buffer_wait;
    /* fetch */
    int64_t fetch_offset;
    int32_t max_bytes;
    uint8_t *data;                 /* copied by another owner shard (malloc'd), or NULL */
    uint32_t data_bytes;           /* record bytes: the copy's, or the kept fragments' */
    struct part_read *read;        /* a read in flight, or the origin's kept fragments */
    int64_t last_stable;           /* the LSO when read (-1 on error) */
    struct txn_aborted *aborted;   /* read_committed: aborted transactions overlapping the
                                    * data (malloc'd by the owner, freed with the part) */
    uint32_t aborted_count;
    /* describe producers: the owner's copy of the partition's producers (malloc'd) */
    struct kafka_describe_producers_response_producer_state *producers;
    uint32_t producer_count;
    /* list offsets; delete records (offset: requested, then the low watermark) */
    int64_t timestamp, offset;
    /* offset for leader epoch */
    int32_t leader_epoch, current_leader_epoch;
};

/* A read in flight for one part. */
struct part_read {
    struct plog_read_req req;
    struct data_part *part;
    struct router *owner;
};

struct data_job {
    struct router *origin;
    int origin_shard;              /* origin's shard id, readable after it stopped */
    struct conn_token token;
    int16_t api_key, version;
    uint8_t *frame;                /* a copy of the request body */
    uint32_t frame_bytes;
    uint8_t *frame_block;          /* the block frame lies in (frame.h), or NULL */
    uint32_t frame_block_cap;
    bool frame_block_kept;         /* the connection's block, kept instead of a copy */
    struct data_part *parts;
    uint32_t part_count, topic_count;
    uint32_t owners_waiting;
    uint32_t *owner_pending;       /* per shard: async operations still running */
    int16_t acks;
    int32_t max_wait_ms, min_bytes, max_bytes;
    int8_t isolation_level;        /* Fetch, ListOffsets: 1 = read_committed */
    bool has_transactional_id;     /* Produce: transactional batches need one */
    uint64_t deadline_ms;
    uint64_t *seen_appends;        /* per shard, when parked */
    struct data_job *next_parked;
    /* the owner's routers, so an owner can find itself */
    struct router **routers;
};

/* ---- router.c: the core ------------------------------------------------------------- */
void router_send(struct router *r, int to, struct shard_msg *msg);
struct plog *router_ptable_find(struct router *r, const uint8_t id[16], int32_t partition);
void router_refresh_open_only(struct router *r);
struct router *router_of_shard(int shard);
struct router *router_of_ctx(struct handler_ctx *ctx);
struct data_job *router_job_new(struct router *r, struct handler_ctx *ctx,
                                const struct kafka_reader *body);
void router_job_free(struct data_job *job);
int router_job_alloc_parts(struct data_job *job, uint32_t count);
/* Looks a part's topic up (by name, or by id for Fetch v13+): sets owner and id, or the
 * part's error. */
bool router_lookup_part(struct router *r, struct data_part *p, bool by_id);
/* Send the job to every owner that has parts (the origin serves its own directly). */
void router_job_dispatch(struct router *r, struct data_job *job);
/* An owner's async operation for the job finished (the last one answers the origin). */
void router_owner_op_done(struct router *r, struct data_job *job);
/* The result arrays of a split request's answer (one per topic, one per part), zeroed,
 * in the router's arena; at least one element so an empty answer still gets a valid
 * pointer. NULL when the arena is full (the encoder then answers KAFKA_ERR_ARENA). */
void *router_job_array(struct router *r, uint32_t count, size_t elem_bytes, size_t align);
#define JOB_ARRAY(r, count, ptr) \
    router_job_array((r), (count), sizeof(*(ptr)), _Alignof(__typeof__(*(ptr))))

/* ---- owner steps (one per partition API) and origin encoders ------------------------ */
void router_produce_part(struct router *r, struct data_part *p, const struct topic_info *t,
                         struct plog *log);
int router_encode_produce(void *arg, struct kafka_writer *w);
/* Each tick: parts parked for storage buffers try again (or fail at their deadline). */
unsigned router_produce_retry(struct router *r);
/* Reads one partition of a Fetch on its owner. *budget_bytes is what is left of the
 * response's max_bytes on this owner (parts are read in request order): once it is
 * spent the part is answered without records; a read from the cache takes what it
 * returned, a read that goes to disk takes its whole allowance. */
void router_fetch_part(struct router *r, struct data_part *p, struct plog *log,
                       int64_t *budget_bytes);
uint32_t router_fetch_bytes(const struct data_job *job);
bool router_fetch_has_error(const struct data_job *job);
int router_encode_fetch(void *arg, struct kafka_writer *w);
/* Drop a fetch part's data (its copy, or its kept fragments: on the origin only). */
void router_fetch_part_drop(struct data_part *p);
/* kserver_complete_zc's release for a Fetch job: frees it and its data. */
void router_fetch_release(void *arg);
void router_list_offsets_part(struct router *r, struct data_part *p, struct plog *log);
int router_encode_list_offsets(void *arg, struct kafka_writer *w);
void router_delete_records_part(struct data_part *p, struct plog *log);
int router_encode_delete_records(void *arg, struct kafka_writer *w);
void router_leader_epoch_part(struct data_part *p, struct plog *log);
int router_encode_leader_epoch(void *arg, struct kafka_writer *w);
int router_encode_log_dirs(void *arg, struct kafka_writer *w);
void router_describe_producers_part(struct data_part *p, struct plog *log);
int router_encode_describe_producers(void *arg, struct kafka_writer *w);

#endif
