/* legacy.h - Kafka's legacy MessageSet, message format v0 and v1 (magic 0 / 1).
 *
 * A message set is a sequence of
 *   offset int64 | message_size int32 | crc uint32 | magic int8 | attributes int8 |
 *   [timestamp int64, v1 only] | key_len int32, key | value_len int32, value
 * with CRC32 (IEEE) over magic..end. A compressed set is one "wrapper" message whose
 * attributes carry the codec and whose value is the compressed inner message set.
 * In v1 the inner offsets are relative (0..n-1) and the wrapper's offset is the
 * absolute offset of the last inner message; in v0 inner offsets are absolute.
 * A v1 wrapper with the LogAppendTime attribute (0x08) gives every inner message
 * the wrapper's timestamp. Nesting deeper than one wrapper is rejected, and so is
 * zstd (codec 4), which Kafka allows only from message format v2 on.
 *
 * The broker stores only RecordBatch v2, so legacy sets are converted on the way in
 * (legacy_set_to_batch): kafka-python and other old clients that fall back to
 * Produce v2 / message format v1 get their messages rewritten into one v2 batch.
 * Decisions, as Kafka's own down-conversion-in-reverse (LogValidator) makes them:
 *   - one v2 batch per legacy set, offset deltas 0..n-1 (the broker assigns offsets
 *     anyway), base_offset = the first message's (absolute) offset;
 *   - v1 timestamps are kept (base_timestamp = the first message's); v0 messages
 *     have none and get -1 (NO_TIMESTAMP), as Kafka does;
 *   - keys and values are kept byte for byte; no producer id (-1), no headers;
 *   - the output is compressed with the codec the caller asks for (normally the
 *     wrapper's codec, so a gzip v1 set becomes a gzip v2 batch). */
#ifndef SLUICE_STORAGE_RECORD_LEGACY_H
#define SLUICE_STORAGE_RECORD_LEGACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/record/batch.h"
#include "storage/record/compress.h"
#include "storage/record/records.h"

#define LEGACY_LOG_OVERHEAD_BYTES 12 /* offset(8) + message_size(4) */
#define LEGACY_V0_HEADER_BYTES 14    /* crc(4) magic(1) attributes(1) key_len(4) value_len(4) */
#define LEGACY_V1_HEADER_BYTES 22    /* v0 + timestamp(8) */
#define LEGACY_ATTR_COMPRESSION_MASK 0x07
#define LEGACY_ATTR_LOG_APPEND_TIME 0x08
#define LEGACY_NO_TIMESTAMP (-1)

struct legacy_message_view {
    int64_t offset;    /* absolute (inner v1 offsets are resolved) */
    int8_t magic;
    int8_t attributes; /* of the message itself (inner messages: 0) */
    int64_t timestamp; /* LEGACY_NO_TIMESTAMP for v0 */
    struct record_bytes key;
    struct record_bytes value;
};

struct legacy_iter {
    const uint8_t *pos, *end; /* outer set */
    /* inner set of the current compressed wrapper, decompressed into scratch */
    const uint8_t *inner_pos, *inner_end;
    int64_t inner_offset_shift; /* added to inner offsets (v1: wrapper - last relative) */
    int8_t inner_magic;
    bool inner_log_append;
    int64_t wrapper_timestamp;
    struct record_codecs *codecs;
    uint8_t *scratch;
    size_t scratch_cap;
    enum record_error err;
};

/* Iterate set[0..len). Compressed wrappers are decompressed into scratch (at most
 * scratch_cap bytes); codecs/scratch may be NULL if the set has no wrappers. A
 * partial message at the end is RECORD_ERR_TRUNCATED. */
void legacy_iter_init(struct legacy_iter *it, const uint8_t *set, size_t len,
                      struct record_codecs *codecs, uint8_t *scratch, size_t scratch_cap);
bool legacy_iter_next(struct legacy_iter *it, struct legacy_message_view *out);

/* ---- writer ------------------------------------------------------------------ */

struct legacy_message_in {
    int64_t offset;
    int64_t timestamp_ms; /* ignored for v0 */
    const uint8_t *key;
    int32_t key_len;      /* -1 = null */
    const uint8_t *value;
    int32_t value_len;    /* -1 = null */
};

/* Bytes one uncompressed message takes in a set (with its 12 bytes of overhead). */
size_t legacy_message_bytes(int8_t magic, int32_t key_len, int32_t value_len);

/* Write a message set of magic 0 or 1. codec NONE writes the messages as they are;
 * otherwise the inner set is built in scratch (inner offsets relative for v1,
 * absolute for v0), compressed, and wrapped in one message whose offset is the last
 * message's. Magic-0 lz4 gets the pre-KAFKA-3160 header checksum, as old clients
 * wrote it. RECORD_ERR_NO_SPACE if buf or scratch is too small. */
enum record_error legacy_set_write(struct record_codecs *codecs, int8_t magic,
                                   enum record_codec codec, const struct legacy_message_in *msgs,
                                   int32_t count, uint8_t *buf, size_t buf_cap, uint8_t *scratch,
                                   size_t scratch_cap, size_t *out_len);

/* ---- conversion ------------------------------------------------------------ */

/* Buffers for legacy_set_to_batch(): decompress holds one decompressed wrapper
 * (its capacity is the decompression limit); records holds the uncompressed v2
 * records section when out_codec is not NONE. */
struct legacy_convert_buffers {
    uint8_t *decompress;
    size_t decompress_cap;
    uint8_t *records;
    size_t records_cap;
};

/* Convert a legacy set into one v2 batch in out (see the decisions above).
 * Errors: the iterator's (bad CRC, truncation, bad wrapper), RECORD_ERR_BAD_COUNT for
 * an empty set, RECORD_ERR_NO_SPACE when out or a buffer is too small. */
enum record_error legacy_set_to_batch(struct record_codecs *codecs, const uint8_t *set,
                                      size_t set_len, enum record_codec out_codec,
                                      const struct legacy_convert_buffers *bufs, uint8_t *out,
                                      size_t out_cap, size_t *out_len);

/* ---- down-conversion ------------------------------------------------------ */

/* Rewrite a v2 batch as a legacy set of magic 0 or 1 (for a consumer that fetches
 * with an old message format), as Kafka's down-conversion does: absolute offsets
 * kept, timestamps kept in v1 (dropped in v0), headers dropped (legacy messages
 * have none), control batches produce no messages (*out_len 0, RECORD_OK). With
 * out_codec other than NONE the messages are wrapped in one compressed message
 * (inner offsets relative in v1); zstd is refused for legacy sets. bufs->decompress
 * takes a compressed batch's records, bufs->records the inner set before
 * compression. RECORD_ERR_NO_SPACE when out or a buffer is too small. */
enum record_error legacy_from_batch(struct record_codecs *codecs, const uint8_t *batch,
                                    size_t batch_len, int8_t magic, enum record_codec out_codec,
                                    const struct legacy_convert_buffers *bufs, uint8_t *out,
                                    size_t out_cap, size_t *out_len);

#endif
