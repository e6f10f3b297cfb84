/* txn_api.h - the transaction APIs on the control thread (InitProducerId with a
 * transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, ListTransactions,
 * DescribeTransactions), __transaction_state writes, markers, timers. See txn_api.c. */
#ifndef SLUICE_CONTROL_TXN_API_H
#define SLUICE_CONTROL_TXN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/group_offsets.h"
#include "control/txn_coordinator.h"
#include "dataplane/kafka/wire.h"

struct control_plane;
struct control_job;
struct kafka_init_producer_id_request;
struct kafka_init_producer_id_response;

struct txn_api {
    struct control_plane *cp;
    struct txn_coordinator tc;
    int32_t log_partitions;         /* transaction.state.log.num.partitions, or the topic's */
    int64_t abort_interval_ms;      /* transaction.abort.timed.out.transaction.cleanup... */
    uint64_t last_expire_ms;        /* monotonic */
    uint64_t last_retry_ms;         /* monotonic */
    bool recovering;                /* reloaded Prepare* transactions: markers on 1st tick */
    bool retry_needed;              /* a marker or a transition failed: the tick retries */
    uint32_t writes_in_flight;      /* appends to __transaction_state and markers */
    uint32_t queued_count;          /* requests waiting for their markers */
    uint64_t last_queue_check_ms;   /* monotonic */
};

/* Set up from the broker config and reload __transaction_state (before shards start).
 * 0 or -1 with err. */
int txn_api_init(struct txn_api *api, struct control_plane *cp, const char *data_dir,
                 char *err, size_t err_bytes);
void txn_api_destroy(struct txn_api *api);

/* AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, ListTransactions, DescribeTransactions. */
bool txn_api_handles(int16_t api_key);
/* 0 with resp (a union kafka_response_any) filled; GROUP_API_PARKED: answered later
 * through control_plane_answer(); another value: a codec error. */
int txn_api_execute(struct txn_api *api, struct control_job *job, struct kafka_reader *r,
                    void *resp);
/* InitProducerId with a non-empty transactional id (req decoded from job). Same results. */
int txn_api_init_producer(struct txn_api *api, struct control_job *job,
                          const struct kafka_init_producer_id_request *req,
                          struct kafka_init_producer_id_response *resp);
/* Timers and retries (control loop). */
void txn_api_tick(struct txn_api *api);

/* For TxnOffsetCommit (group_writes.c): may this producer commit offsets in its
 * transaction? 0 or a Kafka error code. */
int16_t txn_api_check_offsets(struct txn_api *api, struct kafka_str txn_id, int64_t producer_id,
                              int16_t epoch);
/* Its offsets are durable in __consumer_offsets (a transactional batch): they wait in
 * the transaction for its marker. 0 or -1. */
int txn_api_offsets_written(struct txn_api *api, struct kafka_str txn_id, const char *group,
                            size_t group_len, const char *topic, size_t topic_len,
                            int32_t partition, int64_t offset, int32_t leader_epoch,
                            const char *metadata, size_t metadata_len, int64_t timestamp_ms);
/* OffsetFetch require_stable: is a transactional commit of it pending? */
bool txn_api_offset_pending(struct txn_api *api, const char *group, size_t group_len,
                            const char *topic, size_t topic_len, int32_t partition);
/* The __consumer_offsets reload's open transactional commits (group_offsets_load_txn). */
void txn_api_restore_offset(struct txn_api *api, int64_t producer_id,
                            const struct group_record *rec);

#endif
