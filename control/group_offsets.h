/* group_offsets.h - committed offsets: a group's in-memory table, the __consumer_offsets
 * record format (Kafka's own, so Kafka tools read it), and the reload at boot.
 * See group_offsets.c. Control thread only. */
#ifndef SLUICE_CONTROL_GROUP_OFFSETS_H
#define SLUICE_CONTROL_GROUP_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GROUP_OFFSETS_TOPIC "__consumer_offsets"
#define GROUP_ID_MAX_BYTES 255u         /* longer group ids get INVALID_GROUP_ID */
#define GROUP_TOPIC_MAX_BYTES 249u      /* Kafka's topic name limit */
#define GROUP_METADATA_MAX_BYTES 4096u  /* offset.metadata.max.bytes (Kafka's default) */
#define GROUP_OFFSETS_MAX_PER_GROUP 1000000u /* partitions one group may hold offsets for */

struct group_offset {
    char *topic;                 /* malloc'd, NUL-terminated */
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;        /* -1 when unknown */
    char *metadata;              /* malloc'd, "" when none */
    int64_t commit_timestamp_ms; /* wall clock */
};

/* One group's offsets, sorted by (topic, partition): binary search, insertion moves. */
struct group_offset_table {
    struct group_offset *items;
    uint32_t count, capacity;
};

void group_offsets_init(struct group_offset_table *t);
void group_offsets_free(struct group_offset_table *t);
const struct group_offset *group_offsets_get(const struct group_offset_table *t,
                                             const char *topic, size_t topic_len,
                                             int32_t partition);
/* Insert or replace. 0, or -1 when memory or GROUP_OFFSETS_MAX_PER_GROUP runs out. */
int group_offsets_put(struct group_offset_table *t, const char *topic, size_t topic_len,
                      int32_t partition, int64_t offset, int32_t leader_epoch,
                      const char *metadata, size_t metadata_len, int64_t commit_timestamp_ms);
/* true when it was there. */
bool group_offsets_delete(struct group_offset_table *t, const char *topic, size_t topic_len,
                          int32_t partition);
/* Offsets of one topic (OffsetDelete of a whole topic, a deleted topic): how many went. */
uint32_t group_offsets_delete_topic(struct group_offset_table *t, const char *topic,
                                    size_t topic_len);

/* ---- __consumer_offsets records -------------------------------------------------- */

/* Record key versions Kafka writes (the key's leading int16). */
#define GROUP_KEY_OFFSET_COMMIT 1
#define GROUP_KEY_GROUP_METADATA 2

/* A decoded record. Strings point into the record (not NUL-terminated). */
struct group_record {
    int16_t key_version;
    const char *group;
    uint16_t group_len;
    const char *topic;           /* offset commits only */
    uint16_t topic_len;
    int32_t partition;
    bool tombstone;              /* null value: the key is deleted */
    int64_t offset;
    int32_t leader_epoch;
    const char *metadata;
    uint16_t metadata_len;
    int64_t commit_timestamp_ms;
};

/* Bytes of the offset-commit key / value (value version 3). */
size_t group_record_offset_key_bytes(size_t group_len, size_t topic_len);
size_t group_record_offset_value_bytes(size_t metadata_len);
void group_record_offset_key_write(uint8_t *out, const char *group, size_t group_len,
                                   const char *topic, size_t topic_len, int32_t partition);
void group_record_offset_value_write(uint8_t *out, int64_t offset, int32_t leader_epoch,
                                     const char *metadata, size_t metadata_len,
                                     int64_t commit_timestamp_ms);
/* Group metadata key (version 2): a tombstone of it deletes the group (DeleteGroups). */
size_t group_record_group_key_bytes(size_t group_len);
void group_record_group_key_write(uint8_t *out, const char *group, size_t group_len);

/* Decode one record's key and value (value NULL with value_len -1: a tombstone).
 * 0, or -1 for bytes that are not a record this broker understands (skipped at load). */
int group_record_decode(const uint8_t *key, int32_t key_len, const uint8_t *value,
                        int32_t value_len, struct group_record *out);

/* The __consumer_offsets partition of a group: abs(Java String.hashCode) mod partitions,
 * as Kafka computes it (UTF-16 code units of the id, so non-ASCII ids agree). */
int32_t group_offsets_partition_for(const char *group, size_t group_len, int32_t partitions);

/* Reload at boot: every record of <data_dir>/__consumer_offsets-<p>/ *.log for p in
 * [0, partitions), in offset order per partition, passed to apply(). Returns records
 * applied, or -1 with err (unreadable directory). A torn tail ends a partition's scan, as
 * recovery would end its log there. */
typedef void (*group_record_apply_fn)(void *arg, const struct group_record *rec);
long group_offsets_load(const char *data_dir, int32_t partitions, group_record_apply_fn apply,
                        void *arg, char *err, size_t err_bytes);

/* The same, transactions honoured: a batch with the transactional bit (TxnOffsetCommit)
 * counts only when a COMMIT marker of its producer follows it in the same partition (it
 * is replayed at the marker's position), never after an ABORT; batches still open at the
 * end of the log go to pending() (NULL: dropped) with their producer id and epoch -- the
 * transaction coordinator finishes those transactions. */
typedef void (*group_record_pending_fn)(void *arg, int64_t producer_id, int16_t producer_epoch,
                                        const struct group_record *rec);
long group_offsets_load_txn(const char *data_dir, int32_t partitions, group_record_apply_fn apply,
                            group_record_pending_fn pending, void *arg, char *err,
                            size_t err_bytes);

/* The scanner under both (and under the __transaction_state reload): every valid batch of
 * <data_dir>/<topic>-<p>/ *.log for p in [0, partitions), in offset order per partition;
 * a torn tail ends a partition. The batch is only valid during the call. Returns batches
 * seen, or -1 with err. */
struct record_batch_header;
typedef void (*group_log_batch_fn)(void *arg, int32_t partition, const uint8_t *batch,
                                   size_t len, const struct record_batch_header *h);
long group_log_scan(const char *data_dir, const char *topic, int32_t partitions,
                    group_log_batch_fn fn, void *arg, char *err, size_t err_bytes);

#endif
