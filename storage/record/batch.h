/* batch.h - the RecordBatch v2 header (Kafka message format "magic 2").
 *
 * A stored batch is exactly the bytes a producer sent, with the broker's base
 * offset written into the first 8 bytes:
 *
 *   off  size field                      covered by CRC32C?
 *     0     8 base_offset                no  (rewritten by the broker)
 *     8     4 batch_length               no  (bytes after this field)
 *    12     4 partition_leader_epoch     no
 *    16     1 magic (= 2)                no
 *    17     4 crc (CRC32C)               no
 *    21     2 attributes                 yes, from here ...
 *    23     4 last_offset_delta
 *    27     8 base_timestamp
 *    35     8 max_timestamp
 *    43     8 producer_id
 *    51     2 producer_epoch
 *    53     4 base_sequence
 *    57     4 record_count
 *    61     . records (possibly compressed) ... to the end of the batch
 *
 * All integers are big-endian. The whole batch is RECORD_BATCH_OVERHEAD_BYTES +
 * batch_length bytes. Parsing never allocates and never reads outside [buf, buf+len). */
#ifndef SLUICE_STORAGE_RECORD_BATCH_H
#define SLUICE_STORAGE_RECORD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define RECORD_BATCH_HEADER_BYTES 61
#define RECORD_BATCH_OVERHEAD_BYTES 12 /* base_offset(8) + batch_length(4) */
#define RECORD_BATCH_CRC_OFFSET 17
#define RECORD_BATCH_ATTRIBUTES_OFFSET 21 /* CRC32C covers from here to the end */
#define RECORD_BATCH_MAX_TIMESTAMP_OFFSET 35
#define RECORD_BATCH_MAGIC 2

struct record_batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
};

/* attributes bits */
#define RECORD_ATTR_COMPRESSION_MASK 0x07
#define RECORD_ATTR_TIMESTAMP_LOG_APPEND 0x08
#define RECORD_ATTR_TRANSACTIONAL 0x10
#define RECORD_ATTR_CONTROL 0x20
#define RECORD_ATTR_DELETE_HORIZON 0x40

/* Kafka codec ids (the low 3 attribute bits, also the legacy message attributes). */
enum record_codec {
    RECORD_CODEC_NONE = 0,
    RECORD_CODEC_GZIP = 1,
    RECORD_CODEC_SNAPPY = 2,
    RECORD_CODEC_LZ4 = 3,
    RECORD_CODEC_ZSTD = 4,
};
#define RECORD_CODEC_COUNT 5

enum record_error {
    RECORD_OK = 0,
    RECORD_ERR_TRUNCATED,         /* buffer ends before the structure does */
    RECORD_ERR_BAD_LENGTH,        /* a length field is negative or impossible */
    RECORD_ERR_BAD_MAGIC,         /* not the format version expected */
    RECORD_ERR_BAD_CRC,           /* checksum mismatch */
    RECORD_ERR_BAD_RECORD,        /* a record inside does not parse */
    RECORD_ERR_BAD_COUNT,         /* record count / offset deltas disagree with the header */
    RECORD_ERR_UNSUPPORTED_CODEC, /* codec id 5..7 */
    RECORD_ERR_DECOMPRESS,        /* compressed payload is corrupt */
    RECORD_ERR_TOO_LARGE,         /* output would exceed the caller's limit */
    RECORD_ERR_NO_SPACE,          /* writer: caller buffer too small (needed size reported) */
    RECORD_ERR_INVALID_ARG,       /* writer: caller asked for something impossible */
    RECORD_ERR_COUNT_
};

const char *record_error_str(enum record_error err);

/* The Kafka error code a produce response carries for a batch that failed with err:
 * NONE (0) for RECORD_OK; CORRUPT_MESSAGE (2) for anything malformed (CRC, lengths,
 * magic, records, counts, undecodable payload); MESSAGE_TOO_LARGE (10) when the
 * decompressed records exceed the limit; UNSUPPORTED_COMPRESSION_TYPE (76) for codec
 * ids 5..7; UNKNOWN_SERVER_ERROR (-1) for the caller-side errors (NO_SPACE,
 * INVALID_ARG). A handler answering Produce v8+ may prefer INVALID_RECORD (87) for
 * BAD_RECORD / BAD_COUNT, as Kafka's LogValidator does. */
int16_t record_error_kafka_code(enum record_error err);

/* Parse the fixed 61-byte header (big-endian) at buf; checks lengths and magic only:
 * len >= 61, batch_length >= 49 (a header with no records), magic == 2, record_count
 * >= 0. It does NOT require the whole batch to be in buf, so a reader may call it on
 * the first 61 bytes to learn how much more to read (RECORD_BATCH_OVERHEAD_BYTES +
 * out->batch_length). */
enum record_error record_batch_header_parse(const uint8_t *buf, size_t len,
                                            struct record_batch_header *out);

/* Full validation of one stored batch: header, batch_length within len, CRC32C over
 * attributes..end. Bytes after the batch in buf are ignored. Does not look inside the
 * records (see record_iter in records.h for that). */
enum record_error record_batch_validate(const uint8_t *buf, size_t len,
                                        struct record_batch_header *out);

/* Total bytes of the batch described by h (12 + batch_length). */
static inline size_t record_batch_size_bytes(const struct record_batch_header *h) {
    return (size_t)RECORD_BATCH_OVERHEAD_BYTES + (size_t)h->batch_length;
}

static inline enum record_codec record_batch_codec(const struct record_batch_header *h) {
    return (enum record_codec)(h->attributes & RECORD_ATTR_COMPRESSION_MASK);
}

/* Rewrite base_offset in place (CRC does not cover it). buf holds a whole batch. */
void record_batch_set_base_offset(uint8_t *buf, int64_t base_offset);

/* Rewrite partition_leader_epoch in place (not covered by the CRC either). */
void record_batch_set_partition_leader_epoch(uint8_t *buf, int32_t epoch);

/* Broker-side LogAppendTime: set max_timestamp and the LOG_APPEND_TIME attribute bit,
 * then recompute the CRC32C. buf holds a whole batch that already validated. */
void record_batch_set_log_append_time(uint8_t *buf, int64_t timestamp_ms);

/* base_offset + last_offset_delta */
int64_t record_batch_last_offset(const struct record_batch_header *h);

/* Sequence number of the batch's last record for idempotent producers:
 * base_sequence + last_offset_delta, wrapping past INT32_MAX to 0 as Kafka's
 * DefaultRecordBatch.incrementSequence does; -1 (NO_SEQUENCE) stays -1. */
int32_t record_batch_last_sequence(const struct record_batch_header *h);

/* Validate a batch held in fragments (e.g. chunks of a receive buffer) without
 * gathering it: the header is copied out to parse it, the CRC32C runs over the
 * pieces. The batch starts at iov[0]; bytes after its end are ignored. Same checks
 * and errors as record_batch_validate(). iov_count is bounded by
 * RECORD_BATCH_MAX_IOV. */
struct iovec;
#define RECORD_BATCH_MAX_IOV 1024
enum record_error record_batch_validate_iov(const struct iovec *iov, int iov_count,
                                            struct record_batch_header *out);

/* Recompute and store the CRC32C of a whole batch (after the writer or an in-place
 * edit of a covered field). Returns the CRC stored. */
uint32_t record_batch_update_crc(uint8_t *buf);

#endif
