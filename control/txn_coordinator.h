/* txn_coordinator.h - the transaction coordinator's state machine: transactional id ->
 * producer id, epoch, state, partitions, pending offsets. No I/O: the caller (txn_api.c)
 * writes each prepared transition to __transaction_state, sends the markers, and reports
 * back. See txn_coordinator.c. Control thread only. */
#ifndef SLUICE_CONTROL_TXN_COORDINATOR_H
#define SLUICE_CONTROL_TXN_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/txn_log.h"

/* Kafka's TransactionState, with its status byte values (the log stores them). */
enum txn_state {
    TXN_EMPTY = 0,
    TXN_ONGOING = 1,
    TXN_PREPARE_COMMIT = 2,
    TXN_PREPARE_ABORT = 3,
    TXN_COMPLETE_COMMIT = 4,
    TXN_COMPLETE_ABORT = 5,
    TXN_DEAD = 6,
    TXN_PREPARE_EPOCH_FENCE = 7,
};

/* Kafka error codes the coordinator answers. */
#define TXN_ERR_UNKNOWN_TOPIC_OR_PARTITION 3
#define TXN_ERR_COORDINATOR_LOAD_IN_PROGRESS 14
#define TXN_ERR_COORDINATOR_NOT_AVAILABLE 15
#define TXN_ERR_INVALID_REQUEST 42
#define TXN_ERR_INVALID_PRODUCER_EPOCH 47
#define TXN_ERR_INVALID_TXN_STATE 48
#define TXN_ERR_INVALID_PRODUCER_ID_MAPPING 49
#define TXN_ERR_INVALID_TRANSACTION_TIMEOUT 50
#define TXN_ERR_CONCURRENT_TRANSACTIONS 51
#define TXN_ERR_OPERATION_NOT_ATTEMPTED 55
#define TXN_ERR_UNSTABLE_OFFSET_COMMIT 88
#define TXN_ERR_PRODUCER_FENCED 90
#define TXN_ERR_TRANSACTIONAL_ID_NOT_FOUND 105

#define TXN_MAX_IDS 100000u          /* transactional ids the coordinator keeps */
#define TXN_MAX_OFFSETS 100000u      /* pending TxnOffsetCommit offsets per transaction */
#define TXN_EPOCH_EXHAUSTED 32766    /* Kafka: Short.MaxValue - 1 -> a new producer id */

struct txn_part {
    char *topic;                 /* malloc'd, NUL-terminated */
    uint16_t topic_len;
    int32_t partition;
    bool marker_done;            /* PrepareCommit/PrepareAbort: its marker is durable */
    bool marker_in_flight;
};

/* An offset a TxnOffsetCommit wrote (durably, transactional batch): applied to the
 * group's table when the commit marker reaches the group's __consumer_offsets partition,
 * dropped on abort. */
struct txn_offset {
    char *group;                 /* malloc'd */
    char *topic;                 /* malloc'd */
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;              /* malloc'd */
    int64_t commit_timestamp_ms;
};

/* What the log holds of a transactional id (and what a transition changes). */
struct txn_image {
    int64_t producer_id;
    int64_t last_producer_id;    /* before a rotation (KIP-360), else -1 */
    int16_t producer_epoch;
    int16_t last_producer_epoch; /* the epoch before the last bump, -1 when none */
    int32_t timeout_ms;
    enum txn_state state;
    int64_t start_ms;            /* wall clock: when the open transaction began, -1 */
    int64_t update_ms;           /* wall clock */
};

struct txn {
    char *id;                    /* malloc'd */
    uint16_t id_len;
    struct txn_image cur;
    bool pending;                /* next is being written: CONCURRENT_TRANSACTIONS */
    bool log_behind;             /* cur is Complete* but the log's last record of t is
                                  * still Prepare* (txn_complete_unlogged) */
    struct txn_image next;
    struct txn_part *parts;      /* in order of addition; [0, part_durable) are logged */
    uint32_t part_count, part_cap, part_durable;
    struct txn_offset *offsets;
    uint32_t offset_count, offset_cap;
    uint64_t marker_retry_at_ms; /* monotonic: when failed markers go again */
    void *waiter;                /* the caller's parked request, answered after the write */
    void *queued;                /* a request that waits for the markers (txn_api.c) */
    uint64_t queued_at_ms;       /* monotonic */
    struct txn *hash_next;
    struct txn *all_next;        /* all ids, newest first */
};

typedef int (*txn_allocate_fn)(void *arg, int64_t *producer_id);

struct txn_coordinator_config {
    int32_t max_timeout_ms;              /* transaction.max.timeout.ms */
    int64_t id_expiration_ms;            /* transactional.id.expiration.ms */
    txn_allocate_fn allocate;            /* a new producer id: 0 or -errno */
    void *allocate_arg;
};

#define TXN_HASH_BUCKETS 4096u

struct txn_coordinator {
    struct txn_coordinator_config cfg;
    struct txn *buckets[TXN_HASH_BUCKETS];
    struct txn *all;
    uint32_t count;
};

void txn_coordinator_init(struct txn_coordinator *c, const struct txn_coordinator_config *cfg);
void txn_coordinator_destroy(struct txn_coordinator *c);
struct txn *txn_find(struct txn_coordinator *c, const char *id, size_t id_len);
/* The open transaction (Ongoing or Prepare*) of producer_id, or NULL. */
struct txn *txn_find_producer(struct txn_coordinator *c, int64_t producer_id);
const char *txn_state_name(enum txn_state s); /* Kafka's names: "Ongoing", ... */
/* A state from Kafka's name (ListTransactions filters), -1 when unknown. */
int txn_state_from_name(const char *name, size_t len);

/* The outcome of a request: error to answer with (0: success), and whether a transition
 * was prepared (txn->pending, txn->next set) that the caller must write and then report
 * with txn_write_done(). When write is true and error is 0, the answer waits for the
 * write; when both are set (InitProducerId on an Ongoing transaction: an abort is started
 * and the client retries), the answer goes now. */
struct txn_result {
    int16_t error;
    bool write;
    struct txn *txn;
};

/* InitProducerId with a transactional id (v3+: producer_id/epoch may name the caller's
 * current ones for KIP-360 recovery; -1/-1 otherwise). now_ms: wall clock. */
struct txn_result txn_init_producer(struct txn_coordinator *c, const char *id, size_t id_len,
                                    int32_t timeout_ms, int64_t producer_id, int16_t epoch,
                                    int64_t now_ms);
/* AddPartitionsToTxn / AddOffsetsToTxn (the group's __consumer_offsets partition). parts
 * are already validated (the topics exist). */
struct txn_result txn_add_partitions(struct txn_coordinator *c, const char *id, size_t id_len,
                                     int64_t producer_id, int16_t epoch,
                                     const struct txn_log_part *parts, uint32_t count,
                                     int64_t now_ms);
/* EndTxn. */
struct txn_result txn_end(struct txn_coordinator *c, const char *id, size_t id_len,
                          int64_t producer_id, int16_t epoch, bool commit, int64_t now_ms);
/* TxnOffsetCommit's check: the transaction is this producer's and Ongoing. 0 or an error
 * (INVALID_PRODUCER_EPOCH for a fenced producer, as Kafka answers TxnOffsetCommit). */
int16_t txn_check_offsets(struct txn_coordinator *c, const char *id, size_t id_len,
                          int64_t producer_id, int16_t epoch);
/* Offsets a TxnOffsetCommit wrote, now durable. 0 or -1 (TXN_MAX_OFFSETS, memory). */
int txn_add_offset(struct txn *t, const char *group, size_t group_len, const char *topic,
                   size_t topic_len, int32_t partition, int64_t offset, int32_t leader_epoch,
                   const char *metadata, size_t metadata_len, int64_t commit_timestamp_ms);
/* Is an offset of (group, topic, partition) pending in any open transaction? */
bool txn_offset_pending(struct txn_coordinator *c, const char *group, size_t group_len,
                        const char *topic, size_t topic_len, int32_t partition);

/* The prepared transition of t was written (ok) or failed: apply or drop it. Returns the
 * state t is in now; PrepareCommit/PrepareAbort: the caller sends the markers
 * (txn_markers_reset has been done); Dead: t was freed. */
enum txn_state txn_write_done(struct txn_coordinator *c, struct txn *t, bool ok);
/* Every marker of a Prepare* transaction is durable: prepare CompleteCommit/Abort. */
void txn_prepare_complete(struct txn *t, int64_t now_ms);
/* The same without a write of its own, when the next transition follows at once (its
 * record supersedes the completion's): t is Complete* in memory and log_behind is set
 * until a record of t is durable again. */
void txn_complete_unlogged(struct txn *t, int64_t now_ms);
/* Prepare a record of t's current image (log_behind: the completion was not logged). */
void txn_prepare_relog(struct txn *t, int64_t now_ms);
/* Mark every partition's marker as still to send. */
void txn_markers_reset(struct txn *t);
bool txn_markers_all_done(const struct txn *t);

/* Timers: the next Ongoing transaction past its timeout, its abort prepared with an
 * epoch bump (the zombie producer is fenced) -- or the next id idle past
 * transactional.id.expiration.ms, its Dead tombstone prepared. NULL when none. */
struct txn *txn_next_expired(struct txn_coordinator *c, int64_t now_ms);

/* Reload: one record of __transaction_state (the last one of each id wins). */
void txn_replay(struct txn_coordinator *c, const struct txn_log_record *rec,
                const struct txn_log_part *parts);

/* The log record of t's next image (value: its partitions in order; Complete*, Empty and
 * Dead carry none). Dead is written as a tombstone. */
bool txn_next_is_tombstone(const struct txn *t);
void txn_next_value(const struct txn *t, struct txn_log_value *out);
/* parts view of t's partitions for txn_log_value_write, into out (part_count). */
uint32_t txn_next_parts(const struct txn *t, struct txn_log_part *out, uint32_t cap);

#endif
