/* records.h - the records inside a RecordBatch v2: reader (iterator) and writer.
 *
 * Reader: record_iter_init() validates the batch (header, length, CRC32C), and for a
 * compressed batch decompresses the records section into a caller-provided buffer
 * with a hard limit. record_iter_next() then yields one record at a time as a view
 * into that memory: no allocation per record, nothing copied. Each record is
 * checked as it is read (lengths within the record, varints well formed, offset
 * deltas increasing and <= last_offset_delta); at the end the record count and the
 * records section's length must match the header exactly.
 *
 *   struct record_iter it;
 *   record_iter_init(&it, batch, len, codecs, scratch, scratch_cap, 0);
 *   struct record_view r;
 *   while (record_iter_next(&it, &r)) { ... r.key, r.value, r.offset ... }
 *   if (it.err != RECORD_OK) ... corrupt batch ...
 *
 * Writer: record_batch_write() lays out a whole batch (header, records, optional
 * compression of the records section, CRC32C) into a caller buffer; it reports the
 * size it needs when the buffer is too small. */
#ifndef SLUICE_STORAGE_RECORD_RECORDS_H
#define SLUICE_STORAGE_RECORD_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/record/batch.h"
#include "storage/record/compress.h"

/* A nullable byte string inside a record: len == -1 means null (data is NULL). */
struct record_bytes {
    const uint8_t *data;
    int32_t len;
};

struct record_view {
    int8_t attributes;
    int64_t timestamp_delta;
    int64_t timestamp;       /* base_timestamp + delta, or max_timestamp for LogAppendTime */
    int32_t offset_delta;
    int64_t offset;          /* base_offset + offset_delta */
    struct record_bytes key;
    struct record_bytes value;
    int32_t header_count;
    const uint8_t *headers;  /* header_count encoded headers: walk with record_header_next() */
    const uint8_t *headers_end;
};

struct record_header_view {
    struct record_bytes key;   /* never null */
    struct record_bytes value; /* nullable */
};

/* record_iter_init() flags */
/* A batch straight from a producer: offset deltas must be exactly 0, 1, 2, ... and
 * the last one equal to last_offset_delta (compacted batches on disk have gaps). */
#define RECORD_ITER_STRICT_OFFSETS 0x1u
/* Skip the CRC32C check (the caller validated the batch already). */
#define RECORD_ITER_SKIP_CRC 0x2u

struct record_iter {
    struct record_batch_header header;
    const uint8_t *pos;        /* next record in the (decompressed) records section */
    const uint8_t *end;
    int32_t records_left;
    int32_t next_index;
    int32_t prev_offset_delta; /* -1 before the first record */
    unsigned flags;
    enum record_error err;     /* RECORD_OK while iterating and at a clean end */
};

/* Validate batch[0..len) and prepare to iterate its records. codecs and scratch are
 * needed only for compressed batches: the records section is decompressed into
 * scratch, at most scratch_cap bytes (RECORD_ERR_TOO_LARGE beyond). Returns the
 * error (also left in it->err); on error record_iter_next() yields nothing. */
enum record_error record_iter_init(struct record_iter *it, const uint8_t *batch, size_t len,
                                   struct record_codecs *codecs, uint8_t *scratch,
                                   size_t scratch_cap, unsigned flags);

/* Next record, or false at the end or on error (then it->err says which). */
bool record_iter_next(struct record_iter *it, struct record_view *out);

/* Validate a whole batch down to every record (what a broker does before it appends
 * a producer's batch: pass RECORD_ITER_STRICT_OFFSETS). Fills *out (may be NULL) with
 * the header when it parsed. Returns the first error, RECORD_OK if all is well. */
enum record_error record_batch_check_records(const uint8_t *batch, size_t len,
                                             struct record_codecs *codecs, uint8_t *scratch,
                                             size_t scratch_cap, unsigned flags,
                                             struct record_batch_header *out);

/* Walk the headers of a record the iterator returned (already validated):
 *   const uint8_t *p = r.headers; struct record_header_view h;
 *   while (record_header_next(&p, r.headers_end, &h)) ... */
bool record_header_next(const uint8_t **pos, const uint8_t *end, struct record_header_view *out);

/* Control records (transaction markers) in a batch with RECORD_ATTR_CONTROL. The key
 * is version int16 + type int16; the value version int16 + coordinator_epoch int32. */
enum record_control_type { RECORD_CONTROL_ABORT = 0, RECORD_CONTROL_COMMIT = 1 };
#define RECORD_CONTROL_KEY_BYTES 4
#define RECORD_CONTROL_VALUE_BYTES 6
struct record_control {
    int16_t version;
    int16_t type;
    int32_t coordinator_epoch; /* -1 if the value is absent */
};
enum record_error record_control_parse(const struct record_view *r, struct record_control *out);
void record_control_key_write(uint8_t out[RECORD_CONTROL_KEY_BYTES], int16_t type);
void record_control_value_write(uint8_t out[RECORD_CONTROL_VALUE_BYTES],
                                int32_t coordinator_epoch);

/* ---- writer ------------------------------------------------------------------ */

struct record_header_in {
    const uint8_t *key;
    int32_t key_len;   /* >= 0 */
    const uint8_t *value;
    int32_t value_len; /* -1 = null */
};

struct record_in {
    const uint8_t *key;
    int32_t key_len;   /* -1 = null */
    const uint8_t *value;
    int32_t value_len; /* -1 = null */
    int64_t timestamp_ms;
    const struct record_header_in *headers;
    int32_t header_count;
};

struct record_batch_spec {
    int64_t base_offset;
    int32_t partition_leader_epoch;
    int64_t producer_id;    /* -1 when not idempotent */
    int16_t producer_epoch; /* -1 when not idempotent */
    int32_t base_sequence;  /* -1 when not idempotent */
    enum record_codec codec;
    bool transactional;
    bool control;
};

/* A spec for a plain producer batch: no idempotence, no compression. */
struct record_batch_spec record_batch_spec_default(void);

/* Bytes the uncompressed records section of these records takes, or 0 if a record
 * is invalid (negative lengths other than -1, or a record over INT32_MAX bytes). */
size_t record_batch_records_bytes(const struct record_in *records, int32_t record_count);

/* Write a whole batch into buf. For a compressed codec the records are first laid out
 * in scratch (needs record_batch_records_bytes() bytes; may be NULL for NONE).
 * On RECORD_ERR_NO_SPACE *out_len is the buf size that would suffice (for compressed
 * codecs the compression bound) -- or, if scratch was too small, 0. On RECORD_OK
 * *out_len is the batch size. */
enum record_error record_batch_write(struct record_codecs *codecs,
                                     const struct record_batch_spec *spec,
                                     const struct record_in *records, int32_t record_count,
                                     uint8_t *buf, size_t buf_cap, uint8_t *scratch,
                                     size_t scratch_cap, size_t *out_len);

/* Lower-level pieces, used by the legacy converter: the encoded size of one record,
 * and writing it at p (room checked by the caller). */
size_t record_encoded_bytes(const struct record_in *r, int64_t timestamp_delta,
                            int32_t offset_delta);
size_t record_encode(uint8_t *p, const struct record_in *r, int64_t timestamp_delta,
                     int32_t offset_delta);
/* Fill the 61-byte header (CRC left 0) for a records section of records_bytes. */
void record_batch_header_write(uint8_t *buf, const struct record_batch_spec *spec,
                               int32_t record_count, int64_t base_timestamp,
                               int64_t max_timestamp, size_t records_bytes);

#endif
