/* control_plane.h - the control thread's catalogue service for the shards: answers
 * control-plane jobs (CreateTopics, DeleteTopics, Metadata auto-creation) and gives each
 * shard its topic_source over the published snapshots. See control_plane.c. */
#ifndef SLUICE_CONTROL_CONTROL_PLANE_H
#define SLUICE_CONTROL_CONTROL_PLANE_H

#include <stdbool.h>

#include "control/catalog.h"
#include "control/config.h"
#include "control/producer_ids.h"
#include "dataplane/mesh.h"
#include "dataplane/router.h"
#include "dataplane/topics.h"

struct group_api;
struct txn_api;

/* A shard's reader: its hold on the catalogue snapshot, and the broker-level producer
 * state bounds and storage switches (fixed at boot, so a shard reads them without
 * synchronisation) that every
 * struct topic_info it is handed carries in its plog_config. */
struct control_reader {
    struct catalog_reader catalog;
    uint32_t max_producers;           /* sluice.max.producers.per.partition */
    int64_t producer_expiration_ms;   /* producer.id.expiration.ms */
    bool dsync_writes;                /* sluice.storage.dsync.writes */
};

struct control_plane {
    struct mesh *mesh;
    int shard_count;
    int32_t node_id;
    const struct config *broker;
    struct catalog catalog;
    bool catalog_open;
    struct catalog_publisher publisher;
    bool publisher_ready;
    bool publish_pending;
    struct control_reader *readers;        /* one per shard */
    struct control_job *retry_first, *retry_last; /* replies a full ring refused */
    struct internal_append_job *append_first, *append_last; /* appends a ring refused */
    uint32_t appends_in_flight;    /* <= ROUTER_MAX_INTERNAL_APPENDS */
    struct kafka_arena arena;
    uint8_t *arena_mem;
    struct producer_ids producer_ids;     /* InitProducerId */
    struct group_api *groups;             /* consumer groups and offsets (group_api.c) */
    struct txn_api *txns;                 /* the transaction coordinator (txn_api.c) */
};

/* Open the catalogue in data_dir and publish its first snapshot. 0 or -1 with err. */
int control_plane_init(struct control_plane *cp, struct mesh *mesh, const char *data_dir,
                       const struct config *broker, char *err, size_t err_bytes);
/* The topic source shard `shard` reads through (before that shard starts). */
void control_plane_topic_source(struct control_plane *cp, int shard, struct topic_source *out);
/* A message from a shard to control. */
void control_plane_on_message(struct control_plane *cp, const struct shard_msg *msg);
/* Every loop turn: retry refused replies and publications, reclaim old snapshots. */
void control_plane_tick(struct control_plane *cp);
/* Append job->batch durably to (job->topic_id, job->partition) on its owner shard;
 * job->done runs on the control thread with the answer. 0, or a Kafka error code when it
 * cannot be sent (UNKNOWN_TOPIC_OR_PARTITION; KAFKA_STORAGE_ERROR while
 * ROUTER_MAX_INTERNAL_APPENDS are in flight -- the caller answers its client with it, and
 * Kafka clients retry that). */
int16_t control_plane_internal_append(struct control_plane *cp, struct internal_append_job *job);
/* Answer a job a group API kept (GROUP_API_PARKED): encode resp (a response struct of
 * job's API and version; NULL: the connection closes) and send the job back. */
void control_plane_answer(struct control_plane *cp, struct control_job *job, const void *resp);
/* Publish a catalogue change (a topic control created for itself). */
void control_plane_publish(struct control_plane *cp);
/* After every shard has stopped. */
void control_plane_destroy(struct control_plane *cp);

#endif
