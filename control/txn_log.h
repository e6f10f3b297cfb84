/* txn_log.h - the __transaction_state record format (Kafka's TransactionLog, so Kafka
 * tools read it) and its reload at boot. See txn_log.c. Control thread only. */
#ifndef SLUICE_CONTROL_TXN_LOG_H
#define SLUICE_CONTROL_TXN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TXN_LOG_TOPIC "__transaction_state"
#define TXN_LOG_MAX_PARTS 10000u   /* partitions one transaction may hold (log and memory) */
#define TXN_ID_MAX_BYTES 32767u    /* an int16 string */

/* One (topic, partition) of a transaction; topic not NUL-terminated when decoded. */
struct txn_log_part {
    const char *topic;
    uint16_t topic_len;
    int32_t partition;
};

/* The value of a transactional id's record (value version 0). */
struct txn_log_value {
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t timeout_ms;
    int8_t state;                /* enum txn_state: Kafka's status byte */
    int64_t update_ms;           /* wall clock */
    int64_t start_ms;            /* wall clock; -1 when no transaction is open */
};

/* Bytes of the key and of the value holding part_count partitions. */
size_t txn_log_key_bytes(size_t id_len);
size_t txn_log_value_bytes(const struct txn_log_part *parts, uint32_t part_count);
void txn_log_key_write(uint8_t *out, const char *id, size_t id_len);
/* Partitions of one topic that are adjacent in parts become one topic entry. */
void txn_log_value_write(uint8_t *out, const struct txn_log_value *v,
                         const struct txn_log_part *parts, uint32_t part_count);

/* A decoded record: id points into the key; partitions into the value, at most
 * parts_cap of them (-1 beyond: the record is refused). tombstone: a null value (the id
 * expired). 0 or -1 for bytes that are not a TransactionLog record of version 0. */
struct txn_log_record {
    const char *id;
    uint16_t id_len;
    bool tombstone;
    struct txn_log_value value;
    uint32_t part_count;
};
int txn_log_decode(const uint8_t *key, int32_t key_len, const uint8_t *value, int32_t value_len,
                   struct txn_log_record *out, struct txn_log_part *parts, uint32_t parts_cap);

/* The __transaction_state partition of a transactional id (Kafka's: abs(Java hashCode)
 * mod partitions). */
int32_t txn_log_partition_for(const char *id, size_t id_len, int32_t partitions);

/* Reload: every record of the topic's partitions in offset order, passed to apply (last
 * one wins). Records applied, or -1 with err. */
typedef void (*txn_log_apply_fn)(void *arg, const struct txn_log_record *rec,
                                 const struct txn_log_part *parts);
long txn_log_load(const char *data_dir, int32_t partitions, txn_log_apply_fn apply, void *arg,
                  char *err, size_t err_bytes);

#endif
