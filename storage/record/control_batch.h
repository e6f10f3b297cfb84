/* control_batch.h - transaction markers: RecordBatch v2 control batches.
 *
 * A transaction ends with one control batch per partition it wrote (KIP-98): the
 * batch has the transactional and control attribute bits, the producer's id and
 * epoch, base sequence -1, and exactly one record whose key is version(int16 0) +
 * type(int16: ABORT 0, COMMIT 1) and whose value is version(int16 0) +
 * coordinator_epoch(int32). The log assigns the base offset like any batch.
 *
 * The coordinator (control/txn_*) builds markers with control_batch_build(); the
 * partition log recognises them with control_batch_type(). Neither allocates. */
#ifndef SLUICE_STORAGE_RECORD_CONTROL_BATCH_H
#define SLUICE_STORAGE_RECORD_CONTROL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define CONTROL_TYPE_ABORT 0
#define CONTROL_TYPE_COMMIT 1
#define CONTROL_BATCH_MAX_BYTES 128

/* A RecordBatch v2 control batch (attributes: transactional | control, base offset
 * 0 -- the log assigns it, base sequence -1, one record: key = int16 version 0 +
 * int16 type, value = int16 version 0 + int32 coordinator epoch), CRC32C set.
 * Returns its length, or -ENOSPC when out_bytes is too small (-EINVAL for a type
 * that is neither ABORT nor COMMIT). */
int control_batch_build(uint8_t *out, size_t out_bytes, int64_t producer_id,
                        int16_t producer_epoch, int type, int32_t coordinator_epoch,
                        int64_t timestamp_ms);

/* The type of a control batch's (first) record: CONTROL_TYPE_*, or -1 when the
 * batch is not a well-formed control batch (header, CRC32C, control attribute, an
 * uncompressed record whose key is at least 4 bytes, version 0 and a known type). */
int control_batch_type(const uint8_t *batch, size_t len_bytes);

/* The coordinator epoch a well-formed control batch carries, or -1. */
int32_t control_batch_coordinator_epoch(const uint8_t *batch, size_t len_bytes);

#endif
