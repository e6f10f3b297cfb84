/* control_batch.c - build and recognise transaction markers (control batches).
 *
 * Building reuses the record writer (records.c) with one uncompressed record, so a
 * marker is byte-for-byte what Kafka's MemoryRecords.withEndTransactionMarker lays
 * out. Recognising runs the full record iterator over the batch (header, CRC32C,
 * record framing) and reads the first record's key: a client can send anything, so
 * nothing is trusted before it is checked. Markers are never compressed by Kafka;
 * a compressed "control batch" is treated as malformed (no scratch space needed). */
#include "storage/record/control_batch.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>

#include "storage/record/records.h"

int control_batch_build(uint8_t *out, size_t out_bytes, int64_t producer_id,
                        int16_t producer_epoch, int type, int32_t coordinator_epoch,
                        int64_t timestamp_ms) {
    if (type != CONTROL_TYPE_ABORT && type != CONTROL_TYPE_COMMIT)
        return -EINVAL;
    if (out == NULL)
        return -ENOSPC;
    uint8_t key[RECORD_CONTROL_KEY_BYTES];
    uint8_t value[RECORD_CONTROL_VALUE_BYTES];
    record_control_key_write(key, (int16_t)type);
    record_control_value_write(value, coordinator_epoch);
    struct record_in rec = {
        .key = key,
        .key_len = RECORD_CONTROL_KEY_BYTES,
        .value = value,
        .value_len = RECORD_CONTROL_VALUE_BYTES,
        .timestamp_ms = timestamp_ms,
    };
    struct record_batch_spec spec = record_batch_spec_default();
    spec.producer_id = producer_id;
    spec.producer_epoch = producer_epoch;
    spec.base_sequence = -1;
    spec.transactional = true;
    spec.control = true;
    size_t len = 0;
    enum record_error err =
        record_batch_write(NULL, &spec, &rec, 1, out, out_bytes, NULL, 0, &len);
    if (err == RECORD_ERR_NO_SPACE)
        return -ENOSPC;
    if (err != RECORD_OK)
        return -EINVAL;
    assert(len > 0 && len <= CONTROL_BATCH_MAX_BYTES);
    return (int)len;
}

/* Parse the first control record of batch; false if it is not a well-formed marker. */
static bool control_batch_first(const uint8_t *batch, size_t len_bytes,
                                struct record_control *out) {
    struct record_iter it;
    if (record_iter_init(&it, batch, len_bytes, NULL, NULL, 0, 0) != RECORD_OK)
        return false;
    if ((it.header.attributes & RECORD_ATTR_CONTROL) == 0)
        return false;
    if (record_batch_codec(&it.header) != RECORD_CODEC_NONE)
        return false;
    struct record_view r;
    if (!record_iter_next(&it, &r))
        return false;
    if (record_control_parse(&r, out) != RECORD_OK)
        return false;
    if (out->version != 0)
        return false;
    return out->type == CONTROL_TYPE_ABORT || out->type == CONTROL_TYPE_COMMIT;
}

int control_batch_type(const uint8_t *batch, size_t len_bytes) {
    struct record_control c;
    if (!control_batch_first(batch, len_bytes, &c))
        return -1;
    return c.type;
}

int32_t control_batch_coordinator_epoch(const uint8_t *batch, size_t len_bytes) {
    struct record_control c;
    if (!control_batch_first(batch, len_bytes, &c))
        return -1;
    return c.coordinator_epoch;
}
