/* batch.c - parse, validate and patch the RecordBatch v2 header.
 *
 * The broker stores batches as produced, so the only things it ever changes in a
 * batch are the fields the CRC does not cover (base_offset, partition_leader_epoch)
 * and, for topics with message.timestamp.type=LogAppendTime, max_timestamp plus the
 * timestamp-type attribute bit, after which the CRC32C is recomputed. Everything
 * here works on bytes in place: no allocation, no copies. */
#include "storage/record/batch.h"

#include <assert.h>
#include <string.h>
#include <sys/uio.h>

#include "storage/record/bytes.h"
#include "storage/record/crc.h"

static const char *const record_error_names[RECORD_ERR_COUNT_] = {
    [RECORD_OK] = "ok",
    [RECORD_ERR_TRUNCATED] = "truncated",
    [RECORD_ERR_BAD_LENGTH] = "bad_length",
    [RECORD_ERR_BAD_MAGIC] = "bad_magic",
    [RECORD_ERR_BAD_CRC] = "bad_crc",
    [RECORD_ERR_BAD_RECORD] = "bad_record",
    [RECORD_ERR_BAD_COUNT] = "bad_count",
    [RECORD_ERR_UNSUPPORTED_CODEC] = "unsupported_codec",
    [RECORD_ERR_DECOMPRESS] = "decompress",
    [RECORD_ERR_TOO_LARGE] = "too_large",
    [RECORD_ERR_NO_SPACE] = "no_space",
    [RECORD_ERR_INVALID_ARG] = "invalid_arg",
};

const char *record_error_str(enum record_error err) {
    if ((unsigned)err >= RECORD_ERR_COUNT_)
        return "unknown";
    return record_error_names[err];
}

int16_t record_error_kafka_code(enum record_error err) {
    switch (err) {
    case RECORD_OK: return 0;
    case RECORD_ERR_TRUNCATED:
    case RECORD_ERR_BAD_LENGTH:
    case RECORD_ERR_BAD_MAGIC:
    case RECORD_ERR_BAD_CRC:
    case RECORD_ERR_BAD_RECORD:
    case RECORD_ERR_BAD_COUNT:
    case RECORD_ERR_DECOMPRESS: return 2;          /* CORRUPT_MESSAGE */
    case RECORD_ERR_TOO_LARGE: return 10;          /* MESSAGE_TOO_LARGE */
    case RECORD_ERR_UNSUPPORTED_CODEC: return 76;  /* UNSUPPORTED_COMPRESSION_TYPE */
    case RECORD_ERR_NO_SPACE:
    case RECORD_ERR_INVALID_ARG:
    case RECORD_ERR_COUNT_: break;
    }
    return -1; /* UNKNOWN_SERVER_ERROR */
}

enum record_error record_batch_header_parse(const uint8_t *buf, size_t len,
                                            struct record_batch_header *out) {
    assert(out != NULL);
    if (buf == NULL || len < RECORD_BATCH_HEADER_BYTES)
        return RECORD_ERR_TRUNCATED;
    out->base_offset = (int64_t)be64_load(buf + 0);
    out->batch_length = (int32_t)be32_load(buf + 8);
    out->partition_leader_epoch = (int32_t)be32_load(buf + 12);
    out->magic = (int8_t)buf[16];
    out->crc = be32_load(buf + 17);
    out->attributes = (int16_t)be16_load(buf + 21);
    out->last_offset_delta = (int32_t)be32_load(buf + 23);
    out->base_timestamp = (int64_t)be64_load(buf + 27);
    out->max_timestamp = (int64_t)be64_load(buf + 35);
    out->producer_id = (int64_t)be64_load(buf + 43);
    out->producer_epoch = (int16_t)be16_load(buf + 51);
    out->base_sequence = (int32_t)be32_load(buf + 53);
    out->record_count = (int32_t)be32_load(buf + 57);

    if (out->batch_length < RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_OVERHEAD_BYTES)
        return RECORD_ERR_BAD_LENGTH;
    if (out->magic != RECORD_BATCH_MAGIC)
        return RECORD_ERR_BAD_MAGIC;
    if (out->record_count < 0)
        return RECORD_ERR_BAD_COUNT;
    return RECORD_OK;
}

enum record_error record_batch_validate(const uint8_t *buf, size_t len,
                                        struct record_batch_header *out) {
    enum record_error err = record_batch_header_parse(buf, len, out);
    if (err != RECORD_OK)
        return err;
    size_t total_bytes = record_batch_size_bytes(out);
    if (total_bytes > len)
        return RECORD_ERR_TRUNCATED;
    uint32_t crc = crc32c(buf + RECORD_BATCH_ATTRIBUTES_OFFSET,
                          total_bytes - RECORD_BATCH_ATTRIBUTES_OFFSET);
    if (crc != out->crc)
        return RECORD_ERR_BAD_CRC;
    return RECORD_OK;
}

void record_batch_set_base_offset(uint8_t *buf, int64_t base_offset) {
    assert(buf != NULL);
    be64_store(buf, (uint64_t)base_offset);
}

void record_batch_set_partition_leader_epoch(uint8_t *buf, int32_t epoch) {
    assert(buf != NULL);
    be32_store(buf + 12, (uint32_t)epoch);
}

uint32_t record_batch_update_crc(uint8_t *buf) {
    assert(buf != NULL);
    int32_t batch_length = (int32_t)be32_load(buf + 8);
    assert(batch_length >= RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_OVERHEAD_BYTES);
    size_t total_bytes = (size_t)RECORD_BATCH_OVERHEAD_BYTES + (size_t)batch_length;
    uint32_t crc = crc32c(buf + RECORD_BATCH_ATTRIBUTES_OFFSET,
                          total_bytes - RECORD_BATCH_ATTRIBUTES_OFFSET);
    be32_store(buf + RECORD_BATCH_CRC_OFFSET, crc);
    return crc;
}

void record_batch_set_log_append_time(uint8_t *buf, int64_t timestamp_ms) {
    assert(buf != NULL);
    uint16_t attributes = be16_load(buf + RECORD_BATCH_ATTRIBUTES_OFFSET);
    attributes |= RECORD_ATTR_TIMESTAMP_LOG_APPEND;
    be16_store(buf + RECORD_BATCH_ATTRIBUTES_OFFSET, attributes);
    be64_store(buf + RECORD_BATCH_MAX_TIMESTAMP_OFFSET, (uint64_t)timestamp_ms);
    record_batch_update_crc(buf);
}

int64_t record_batch_last_offset(const struct record_batch_header *h) {
    assert(h != NULL);
    return add_wrap64(h->base_offset, h->last_offset_delta);
}

int32_t record_batch_last_sequence(const struct record_batch_header *h) {
    assert(h != NULL);
    if (h->base_sequence < 0)
        return h->base_sequence;
    int64_t seq = (int64_t)h->base_sequence + h->last_offset_delta;
    if (seq > INT32_MAX)
        seq -= (int64_t)INT32_MAX + 1;
    return (int32_t)seq;
}

/* Copy up to len bytes starting at the beginning of the fragments into dst. */
static size_t iov_gather(const struct iovec *iov, int iov_count, uint8_t *dst, size_t len) {
    size_t copied = 0;
    for (int i = 0; i < iov_count && copied < len; i++) {
        size_t n = iov[i].iov_len < len - copied ? iov[i].iov_len : len - copied;
        if (n > 0)
            memcpy(dst + copied, iov[i].iov_base, n);
        copied += n;
    }
    return copied;
}

enum record_error record_batch_validate_iov(const struct iovec *iov, int iov_count,
                                            struct record_batch_header *out) {
    assert(out != NULL);
    if (iov == NULL || iov_count <= 0 || iov_count > RECORD_BATCH_MAX_IOV)
        return RECORD_ERR_TRUNCATED;
    uint8_t header[RECORD_BATCH_HEADER_BYTES];
    size_t got = iov_gather(iov, iov_count, header, sizeof(header));
    enum record_error err = record_batch_header_parse(header, got, out);
    if (err != RECORD_OK)
        return err;
    /* CRC32C over [attributes, end of batch), piece by piece. */
    size_t total_bytes = record_batch_size_bytes(out);
    size_t pos = 0;
    uint32_t crc = 0;
    for (int i = 0; i < iov_count && pos < total_bytes; i++) {
        const uint8_t *base = iov[i].iov_base;
        size_t frag_start = pos, frag_end = pos + iov[i].iov_len;
        if (frag_end > total_bytes)
            frag_end = total_bytes;
        size_t from = frag_start > RECORD_BATCH_ATTRIBUTES_OFFSET ? frag_start
                                                                  : RECORD_BATCH_ATTRIBUTES_OFFSET;
        if (from < frag_end)
            crc = crc32c_update(crc, base + (from - frag_start), frag_end - from);
        pos = frag_end;
    }
    if (pos < total_bytes)
        return RECORD_ERR_TRUNCATED;
    if (crc != out->crc)
        return RECORD_ERR_BAD_CRC;
    return RECORD_OK;
}
