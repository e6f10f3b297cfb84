/* catalog.h - the topic catalogue: topics, partitions, placement, per-topic configs.
 *
 * Ownership. The catalogue (struct catalog) belongs to the control thread: only it creates,
 * deletes, grows and reconfigures topics. Shards never touch it; they read immutable
 * snapshots (struct catalog_snapshot) that control builds after a change and publishes
 * through a struct catalog_publisher (see the reclamation rule below).
 *
 * Topics. A topic has a name (Kafka's rules: [a-zA-Z0-9._-], 1..249 chars, not "." or
 * "..", no '.'/'_' collision with an existing topic), a random v4 UUID from getrandom(), a
 * partition count, replication factor 1 and its config overrides (topic_config.h). Each
 * partition has an owning shard, chosen once as hash(topic, partition) mod shard_count and
 * stored, so placement survives restarts. Topics are kept sorted by name.
 *
 * Errors are Kafka error codes (CATALOG_ERR_*) with a message in struct catalog_result,
 * as the CreateTopics/DeleteTopics/CreatePartitions handlers answer them.
 *
 * Persistence. Every change rewrites <data-dir>/__sluice_catalog atomically (temp file,
 * fsync, rename, fsync of the directory) before the call returns success; a change that
 * cannot be saved is undone and answered KAFKA_STORAGE_ERROR. The file is text:
 *
 *   sluice-catalog 1                                 (format name and version)
 *   topic <name> <id: 32 hex> <partitions> <replication factor> <internal 0|1>
 *   config <key> <value>                             (one per override of that topic)
 *   placement <shard of p0> <shard of p1> ...        (exactly <partitions> numbers)
 *   end <topic count>
 *   crc32c <8 hex: CRC32C of every byte before this line>
 *
 * Loading refuses (never resets) a file that is truncated, fails its checksum, has an
 * unknown version or does not parse: losing the catalogue would lose topics.
 *
 * Snapshots and reclamation. catalog_publisher holds an atomic pointer to the current
 * snapshot and, per reader (shard), the epoch that reader last announced. A shard calls
 * catalog_reader_refresh() between loop iterations: it loads the current pointer (acquire)
 * and, if the epoch changed, announces the new epoch (release store) and uses that
 * snapshot until its next refresh. A replaced snapshot goes to a bounded retired list; the
 * control thread frees a retired snapshot of epoch E only when every reader has announced
 * an epoch > E: a reader that announced a newer epoch has finished with every older
 * snapshot (its reads happen before its release store) and can never load an older one
 * again. Readers never block or write shared counters other than their own epoch slot;
 * a shard that stops refreshing only delays frees (and, once the retired list is full,
 * new publications, which catalog_publish() reports so control retries later). */
#ifndef SLUICE_CONTROL_CATALOG_H
#define SLUICE_CONTROL_CATALOG_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/config.h"
#include "control/topic_config.h"

/* Kafka error codes (numbers as Kafka's Errors enum). */
#define CATALOG_ERR_UNKNOWN_SERVER_ERROR (-1)
#define CATALOG_ERR_NONE 0
#define CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION 3
#define CATALOG_ERR_INVALID_TOPIC_EXCEPTION 17
#define CATALOG_ERR_TOPIC_ALREADY_EXISTS 36
#define CATALOG_ERR_INVALID_PARTITIONS 37
#define CATALOG_ERR_INVALID_REPLICATION_FACTOR 38
#define CATALOG_ERR_INVALID_CONFIG 40
#define CATALOG_ERR_INVALID_REQUEST 42
#define CATALOG_ERR_POLICY_VIOLATION 44
#define CATALOG_ERR_KAFKA_STORAGE_ERROR 56
#define CATALOG_ERR_UNKNOWN_TOPIC_ID 100

#define CATALOG_TOPIC_NAME_MAX_BYTES 249
#define CATALOG_FILE_NAME "__sluice_catalog"
#define CATALOG_FILE_VERSION 1
#define CATALOG_MESSAGE_BYTES 256
#define CATALOG_MAX_SHARDS 4096
#define CATALOG_MAX_READERS 256
#define CATALOG_MAX_RETIRED 64
/* Hard ceilings on the configurable bounds (sluice.max.topics, ...partitions.per.topic). */
#define CATALOG_MAX_TOPICS_LIMIT 1000000
#define CATALOG_MAX_PARTITIONS_LIMIT 1000000

struct catalog_result {
    int16_t error_code;
    char message[CATALOG_MESSAGE_BYTES];
};

struct catalog_topic {
    char name[CATALOG_TOPIC_NAME_MAX_BYTES + 1];
    uint8_t id[16];
    int32_t partition_count;
    int16_t replication_factor;
    bool internal;                 /* created by the broker (__consumer_offsets, ...) */
    struct topic_config config;    /* overrides */
    uint16_t *partition_shard;     /* partition_count entries */
};

struct catalog {
    char data_dir[PATH_MAX];
    const struct config *broker;   /* read-only, outlives the catalogue */
    uint32_t shard_count;
    int64_t max_topics;
    int64_t max_partitions_per_topic;
    bool clamp_replication_factor;
    struct catalog_topic **topics; /* sorted by name */
    size_t topic_count;
    size_t topic_capacity;
    uint64_t version;              /* bumped on every change */
};

/* A config override as CreateTopics carries it. */
struct catalog_config_kv {
    const char *name;
    const char *value;
};

struct catalog_create_request {
    const char *name;
    int32_t partition_count;       /* -1: num.partitions */
    int16_t replication_factor;    /* -1: default.replication.factor */
    const struct catalog_config_kv *configs;
    size_t config_count;
    bool internal;                 /* broker-created internal topic: reserved names allowed */
};

/* Open the catalogue in data_dir (created if missing), loading CATALOG_FILE_NAME when it
 * exists. 0, or -1 with a message in err (a corrupt file, a bad broker default). */
int catalog_open(struct catalog *cat, const char *data_dir, const struct config *broker,
                 uint32_t shard_count, char *err, size_t err_bytes);
void catalog_close(struct catalog *cat);

/* Kafka's topic name rules without the collision check (0 or INVALID_TOPIC_EXCEPTION). */
int16_t catalog_validate_topic_name(const char *name, struct catalog_result *res);
bool catalog_is_internal_topic_name(const char *name);

/* Each returns res->error_code (0 on success). validate_only checks everything and
 * changes nothing. */
int16_t catalog_create_topic(struct catalog *cat, const struct catalog_create_request *req,
                             bool validate_only, struct catalog_result *res);
int16_t catalog_delete_topic(struct catalog *cat, const char *name, struct catalog_result *res);
int16_t catalog_delete_topic_id(struct catalog *cat, const uint8_t id[16],
                                struct catalog_result *res);
/* Grow name to new_partition_count partitions (INVALID_PARTITIONS when not larger). */
int16_t catalog_create_partitions(struct catalog *cat, const char *name,
                                  int32_t new_partition_count, bool validate_only,
                                  struct catalog_result *res);
/* IncrementalAlterConfigs on one topic, atomically. */
int16_t catalog_alter_topic_config(struct catalog *cat, const char *name,
                                   const struct topic_config_alter_op *ops, size_t op_count,
                                   bool validate_only, struct catalog_result *res);

const struct catalog_topic *catalog_find(const struct catalog *cat, const char *name);
const struct catalog_topic *catalog_find_id(const struct catalog *cat, const uint8_t id[16]);
/* Topics in name order: index 0 .. catalog_topic_count()-1. */
size_t catalog_topic_count(const struct catalog *cat);
const struct catalog_topic *catalog_topic_at(const struct catalog *cat, size_t index);

/* Default placement: FNV-1a of the name and partition, mod shard_count. */
uint32_t catalog_default_shard(const char *name, int32_t partition, uint32_t shard_count);

/* ---- immutable snapshots for shards ---- */

struct catalog_snapshot_topic {
    const char *name;
    uint8_t id[16];
    int32_t partition_count;
    bool internal;
    const uint16_t *partition_shard;
    struct topic_config_values config;
};

struct catalog_snapshot_id {
    uint8_t id[16];
    uint32_t topic_index;
};

struct catalog_snapshot {
    uint64_t epoch;                        /* strictly increasing per publisher */
    size_t topic_count;
    const struct catalog_snapshot_topic *topics; /* sorted by name */
    const struct catalog_snapshot_id *by_id; /* sorted by id */
    /* Everything lives in one allocation following this header. */
};

/* Build a snapshot of the catalogue (control thread). NULL on allocation failure. */
struct catalog_snapshot *catalog_snapshot_build(const struct catalog *cat, uint64_t epoch);
void catalog_snapshot_free(struct catalog_snapshot *snap);
const struct catalog_snapshot_topic *catalog_snapshot_find(const struct catalog_snapshot *snap,
                                                           const char *name);
const struct catalog_snapshot_topic *catalog_snapshot_find_id(
    const struct catalog_snapshot *snap, const uint8_t id[16]);
/* Owning shard of a partition, -1 when the partition does not exist. */
int catalog_snapshot_partition_shard(const struct catalog_snapshot_topic *topic,
                                     int32_t partition);

/* One cache line per reader so readers do not write to each other's lines (padding rather
 * than _Alignas, so a publisher from plain malloc is not over-aligned). */
struct catalog_reader_slot {
    _Atomic uint64_t announced_epoch; /* written by its reader only */
    char pad[64 - sizeof(uint64_t)];
};

struct catalog_publisher {
    _Atomic(struct catalog_snapshot *) current;
    uint32_t reader_count;
    struct catalog_reader_slot slots[CATALOG_MAX_READERS];
    struct catalog_snapshot *retired[CATALOG_MAX_RETIRED]; /* control thread only */
    size_t retired_count;
    uint64_t next_epoch;
};

/* A shard's handle: its slot and the snapshot it holds. Used by that shard only. */
struct catalog_reader {
    struct catalog_publisher *pub;
    uint32_t slot;
    const struct catalog_snapshot *held;
};

/* Control thread: set up with the first snapshot of cat (epoch 1). 0 or -1. */
int catalog_publisher_init(struct catalog_publisher *pub, uint32_t reader_count,
                           const struct catalog *cat);
/* Control thread: publish a fresh snapshot of cat and free what no reader can hold.
 * 0; -1 when the retired list is full (a reader lags) or memory ran out: retry later. */
int catalog_publish(struct catalog_publisher *pub, const struct catalog *cat);
/* Control thread: free retired snapshots every reader has moved past; returns how many
 * remain retired. */
size_t catalog_publisher_reclaim(struct catalog_publisher *pub);
/* Control thread, after every reader has stopped. */
void catalog_publisher_destroy(struct catalog_publisher *pub);

void catalog_reader_init(struct catalog_reader *reader, struct catalog_publisher *pub,
                         uint32_t slot);
/* Shard, between loop iterations: the newest snapshot (never blocks). */
const struct catalog_snapshot *catalog_reader_refresh(struct catalog_reader *reader);

#endif
