/* producer_ids.h - producer id allocation for InitProducerId (idempotent producers).
 *
 * Ids are never reused, across restarts too: before handing out any id of a block of
 * PRODUCER_ID_BLOCK_SIZE, the end of that block is persisted as the high-water mark in
 * <data_dir>/producer_id_block (written to a temp file, fdatasynced, renamed over the
 * old one, the directory fsynced). On open allocation resumes at the persisted mark, so
 * the unused rest of a block is skipped after a restart, never handed out twice (as
 * Kafka's ProducerIdManager does with blocks kept in ZooKeeper/the metadata log).
 *
 * InitProducerId (v0-5) as Kafka's TransactionCoordinator answers it without a
 * transactional id: a fresh producer id at epoch 0 every time -- also for a v3+ request
 * carrying its current id and epoch (KIP-360: an idempotent producer that needs a new
 * epoch gets a new id, which resets its sequences everywhere). An empty transactional id
 * is INVALID_REQUEST (42), as in Kafka. A non-empty one asks for transactions: control
 * hands those to the transaction coordinator (control/txn_api.c), which allocates its
 * ids here through producer_ids_allocate(); producer_ids_init_producer() itself refuses
 * them with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53) should it ever be called so.
 * A failure to persist the mark answers COORDINATOR_NOT_AVAILABLE (15), retriable.
 *
 * Runs on the control thread only (blocking file I/O once per block). */
#ifndef SLUICE_CONTROL_PRODUCER_IDS_H
#define SLUICE_CONTROL_PRODUCER_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "dataplane/kafka/kafka_msgs.h"

#define PRODUCER_ID_BLOCK_SIZE 1000
#define PRODUCER_IDS_FILE "producer_id_block"
#define PRODUCER_IDS_PATH_BYTES 1024

struct producer_ids {
    char dir[PRODUCER_IDS_PATH_BYTES];
    int64_t next_id;      /* next id to hand out */
    int64_t reserved_end; /* ids below it are covered by the persisted mark */
    uint64_t allocated;
};

/* Read the high-water mark in data_dir (0 when the file does not exist). Returns 0, or
 * -1 with err set (an unreadable or malformed mark: refusing beats reusing ids). */
int producer_ids_open(struct producer_ids *p, const char *data_dir, char *err, size_t err_bytes);

/* A new producer id. Returns 0, or -errno when the next block could not be persisted. */
int producer_ids_allocate(struct producer_ids *p, int64_t *id);

/* Answer one InitProducerId request (see the top comment). */
void producer_ids_init_producer(struct producer_ids *p,
                                const struct kafka_init_producer_id_request *req,
                                struct kafka_init_producer_id_response *resp);

#endif
