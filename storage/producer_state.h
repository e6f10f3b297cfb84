/* producer_state.h - idempotent-producer state of one partition: for each producer id,
 * its epoch and the metadata of its last PRODUCER_BATCHES_KEPT batches, so a retried
 * batch is recognised and answered with the offset it was first written at.
 *
 * Ownership: a partition's state lives with its log (struct plog) on the partition's
 * owner shard; nothing here is thread-safe or blocks, except the snapshot file calls,
 * which run at open, at a segment roll and at close (see partition_log.h).
 *
 * The rules are Kafka's (ProducerStateManager / ProducerAppendInfo, 2.7+), checked in
 * append order on the owner shard by producer_state_check() before the append and made
 * true by producer_state_update() once the append has its offset:
 *   - epoch older than the producer's: FENCED (Kafka answers INVALID_PRODUCER_EPOCH, 47);
 *   - same epoch and (first seq, last seq) equal to one of the kept batches: DUPLICATE,
 *     answered with that batch's base offset and not appended again;
 *   - newer epoch: the first sequence must be 0 (else OUT_OF_ORDER); the batches kept
 *     for the old epoch are forgotten;
 *   - same epoch: the first sequence must follow the last one (last + 1, or 0 after
 *     INT32_MAX: sequences wrap as Kafka's DefaultRecordBatch.incrementSequence);
 *     anything else, including a retry older than the kept window, is OUT_OF_ORDER (45);
 *   - an unknown producer id is accepted at any sequence. Kafka did answer
 *     UNKNOWN_PRODUCER_ID (59) there before 2.5; since KIP-360 (2.5) the broker accepts
 *     it, because the state may have been lost to retention or expiry and the client
 *     cannot do better than resume. sluice follows 2.5+.
 * Batches with producer id -1 (RECORD_NO_PRODUCER_ID) never reach this table.
 *
 * Bounds: at most max_producers entries per partition (the table grows by doubling
 * from PRODUCER_STATE_INITIAL_CAPACITY when a new producer id arrives, never per
 * append); when full, the least recently used producer is evicted, as Kafka expires
 * producer ids idle for producer.id.expiration.ms; an entry idle longer than
 * expiration_ms is treated as unknown. Lookup is a chained hash on the producer id;
 * recency is a doubly linked list through entry indexes (no allocation).
 *
 * Transactions (KIP-98). An entry also holds the first offset of the producer's open
 * transaction (txn_first_offset, -1 when none): the first transactional batch appended
 * opens it, the producer's COMMIT/ABORT marker closes it (producer_state_end_txn). The
 * table keeps the oldest open first offset (the LSO's bound, see txn_state.h) without a
 * scan per append: only closing the oldest transaction rescans the table. A producer
 * with an open transaction is neither expired nor evicted while another can go (Kafka
 * never expires one); a table full of open transactions evicts the least recently used
 * anyway, which releases that transaction's hold on the LSO. A marker's epoch becomes
 * the producer's; an older one is FENCED. Markers carry sequence -1 and skip the
 * sequence rules.
 *
 * Snapshot file format (<20-digit offset>.snapshot in the partition directory, the
 * state as of every batch below that offset): a 24-byte header (magic "SLPS", version
 * 2, entry count, the offset, CRC32C of everything after the header), then per producer:
 * id (8), epoch (2), batch count (2), last-used time (8), open transaction's first
 * offset (8, -1 for none), coordinator epoch of its last marker (4), then per batch
 * first seq (4), last seq (4), base offset (8), last offset delta (4), max timestamp
 * (8); then the partition's aborted-transaction index (txn_state.h): a count (4) and per
 * entry producer id (8), first offset (8), last offset (8). Little-endian. Version 1
 * (written before transactions: 20-byte entries, no index) is still read. A file whose
 * CRC or size does not check is ignored (the log is scanned instead). */
#ifndef SLUICE_STORAGE_PRODUCER_STATE_H
#define SLUICE_STORAGE_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/txn_state.h"

#define PRODUCER_BATCHES_KEPT 5 /* Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN */
#define PRODUCER_STATE_INITIAL_CAPACITY 8
#define PRODUCER_STATE_DEFAULT_MAX 4096 /* producers per partition */
#define PRODUCER_STATE_DEFAULT_EXPIRATION_MS (24LL * 3600 * 1000) /* producer.id.expiration.ms */
#define PRODUCER_SNAPSHOT_SUFFIX ".snapshot"

struct producer_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t base_offset;
    int32_t last_offset_delta;
    int64_t max_timestamp_ms;
};

struct producer_entry {
    int64_t producer_id;
    int16_t epoch;
    uint8_t batch_count;       /* kept batches, oldest first from batch_head */
    uint8_t batch_head;
    struct producer_batch batches[PRODUCER_BATCHES_KEPT];
    int64_t last_used_ms;
    int64_t txn_first_offset;  /* first offset of the open transaction, -1 when none */
    int32_t coordinator_epoch; /* of the producer's last marker, -1 before one */
    uint32_t hash_next;        /* chain in the bucket (PRODUCER_NONE ends it) */
    uint32_t lru_prev, lru_next; /* most recent at lru_head */
};

struct producer_state {
    struct producer_entry *entries;
    uint32_t capacity;         /* entries allocated (<= max_producers) */
    uint32_t count;            /* entries in use: indexes [0, count) */
    uint32_t max_producers;
    int64_t expiration_ms;
    uint32_t *buckets;         /* bucket_count heads, a power of two >= capacity */
    uint32_t bucket_count;
    uint32_t lru_head, lru_tail;
    uint64_t evictions;
    uint32_t open_txns;        /* entries with txn_first_offset >= 0 */
    int64_t oldest_txn_offset; /* min txn_first_offset over them, -1 when none */
};

/* One incoming batch's idempotence fields (from its RecordBatch v2 header). */
struct producer_append {
    int64_t producer_id;
    int16_t epoch;
    int32_t first_seq;
    int32_t last_offset_delta; /* record count - 1 */
    int64_t max_timestamp_ms;
    bool transactional;        /* attributes bit 4: opens a transaction if none is */
};

enum producer_verdict {
    PRODUCER_APPEND = 0,       /* write it, then producer_state_update() */
    PRODUCER_DUPLICATE,        /* already written: *dup has where */
    PRODUCER_OUT_OF_ORDER,     /* OUT_OF_ORDER_SEQUENCE_NUMBER (45) */
    PRODUCER_FENCED,           /* INVALID_PRODUCER_EPOCH (47) */
};

/* Allocates the initial table. Returns 0 or -ENOMEM. max_producers >= 1. */
int producer_state_init(struct producer_state *ps, uint32_t max_producers, int64_t expiration_ms);
void producer_state_free(struct producer_state *ps);
void producer_state_clear(struct producer_state *ps);

/* The Kafka error code for a verdict (0 for APPEND and DUPLICATE). */
int16_t producer_verdict_kafka_code(enum producer_verdict v);

/* Last sequence of a batch: first_seq + last_offset_delta, wrapping past INT32_MAX to 0. */
int32_t producer_last_seq(int32_t first_seq, int32_t last_offset_delta);

/* Decide what to do with a batch (no change to the table). */
enum producer_verdict producer_state_check(const struct producer_state *ps,
                                           const struct producer_append *a, int64_t now_ms,
                                           struct producer_batch *dup);

/* Record a batch written at base_offset (after PRODUCER_APPEND, and when rebuilding from
 * the log). May evict the least recently used producer, or grow the table; returns 0,
 * or -ENOMEM when growing failed (then the least recently used is evicted instead). */
int producer_state_update(struct producer_state *ps, const struct producer_append *a,
                          int64_t base_offset, int64_t now_ms);

/* A transactional batch without a sequence (an internal writer's, e.g. the coordinator's
 * offsets) at first_offset: opens producer_id's transaction if none is open (an unknown
 * producer is added at epoch). Idempotent batches open theirs in producer_state_update. */
void producer_state_begin_txn(struct producer_state *ps, int64_t producer_id, int16_t epoch,
                              int64_t first_offset, int64_t now_ms);

/* Whether a marker (COMMIT/ABORT) of producer_id at epoch may be appended: FENCED when
 * the producer is known at a newer epoch, else APPEND. */
enum producer_verdict producer_state_check_marker(const struct producer_state *ps,
                                                  int64_t producer_id, int16_t epoch,
                                                  int64_t now_ms);

/* Record a marker appended (or scanned at open): the marker's epoch becomes the
 * producer's (an unknown producer is added), its coordinator epoch is kept, and the
 * open transaction is closed. Returns that transaction's first offset, or -1 when the
 * producer had none open. */
int64_t producer_state_end_txn(struct producer_state *ps, int64_t producer_id, int16_t epoch,
                               int32_t coordinator_epoch, int64_t now_ms);

/* First offset of the oldest open transaction, -1 when none is open. */
static inline int64_t producer_state_oldest_txn(const struct producer_state *ps) {
    return ps->oldest_txn_offset;
}

/* The newest kept batch of an entry (NULL when none is kept). */
static inline const struct producer_batch *producer_entry_newest(const struct producer_entry *e) {
    if (e->batch_count == 0) return NULL;
    return &e->batches[(e->batch_head + e->batch_count - 1u) % PRODUCER_BATCHES_KEPT];
}

/* Look a producer up (NULL when unknown). */
const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id);

/* The snapshot of the state and txn's aborted index (txn may be NULL: none) as of
 * offset, in the file format above: a malloc'ed buffer (*out, *out_bytes) the caller
 * frees. Returns 0 or -ENOMEM. */
int producer_state_encode_snapshot(const struct producer_state *ps, const struct txn_log *txn,
                                   int64_t offset, uint8_t **out, size_t *out_bytes);

/* "<20-digit offset>.snapshot" */
void producer_snapshot_file_name(char *out, size_t out_bytes, int64_t offset);

/* Write the state and txn's aborted index (txn may be NULL: none) as
 * "<dir>/<offset>.snapshot" (temp file, then rename; blocking: at close; a roll writes it
 * through the ring, partition_log.c). Returns 0 or -errno. */
int producer_state_write_snapshot(const struct producer_state *ps, const struct txn_log *txn,
                                  const char *dir, int64_t offset);

/* Replace the state (and txn's aborted index, when txn is not NULL) with the snapshot
 * "<dir>/<offset>.snapshot". Returns 0, -EBADMSG when the file does not check (both are
 * then empty), or -errno. */
int producer_state_read_snapshot(struct producer_state *ps, struct txn_log *txn,
                                 const char *dir, int64_t offset, int64_t now_ms);

/* The largest snapshot offset in dir that is <= max_offset (-1 when none); snapshots
 * above max_offset (written before a crash cut the log shorter) are deleted, and so are
 * those below the second newest kept one (at most two are kept). Blocking. */
int64_t producer_snapshot_latest(const char *dir, int64_t max_offset);

#endif
