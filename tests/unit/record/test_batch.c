/* test_batch.c - the RecordBatch v2 header: a hand-built vector from the spec,
 * CRC32C against an independent value, every error path of parse/validate, and
 * the in-place patches (base offset, log append time). */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/uio.h>

#include "storage/record/batch.h"
#include "storage/record/bytes.h"
#include "storage/record/crc.h"

/* One record (key null, value "abc", no headers), base_offset 5, timestamps 1000,
 * no producer id. Written out field by field from the Kafka protocol docs. The CRC
 * 0x7ad800cb was computed by a bit-at-a-time Python CRC32C, not by isa-l. */
static const uint8_t hand_batch[] = {
    0, 0, 0, 0, 0, 0, 0, 5,             /* base_offset 5 */
    0, 0, 0, 59,                        /* batch_length */
    0, 0, 0, 0,                         /* partition_leader_epoch */
    2,                                  /* magic */
    0x7a, 0xd8, 0x00, 0xcb,             /* crc */
    0, 0,                               /* attributes */
    0, 0, 0, 0,                         /* last_offset_delta */
    0, 0, 0, 0, 0, 0, 0x03, 0xe8,       /* base_timestamp 1000 */
    0, 0, 0, 0, 0, 0, 0x03, 0xe8,       /* max_timestamp 1000 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* producer_id -1 */
    0xff, 0xff,                         /* producer_epoch -1 */
    0xff, 0xff, 0xff, 0xff,             /* base_sequence -1 */
    0, 0, 0, 1,                         /* record count */
    0x12, 0x00, 0x00, 0x00,             /* length 9, attributes, ts delta 0, offset delta 0 */
    0x01,                               /* key length -1 (null) */
    0x06, 'a', 'b', 'c',                /* value length 3 */
    0x00,                               /* no headers */
};

Test(batch, crc32c_check_value) {
    cr_assert_eq(crc32c("123456789", 9), 0xe3069283u);
    cr_assert_eq(crc32_legacy("123456789", 9), 0xcbf43926u);
}

Test(batch, hand_built_vector_parses) {
    struct record_batch_header h;
    cr_assert_eq(sizeof(hand_batch), 71u);
    cr_assert_eq(record_batch_validate(hand_batch, sizeof(hand_batch), &h), RECORD_OK);
    cr_assert_eq(h.base_offset, 5);
    cr_assert_eq(h.batch_length, 59);
    cr_assert_eq(h.partition_leader_epoch, 0);
    cr_assert_eq(h.magic, 2);
    cr_assert_eq(h.crc, 0x7ad800cbu);
    cr_assert_eq(h.attributes, 0);
    cr_assert_eq(h.last_offset_delta, 0);
    cr_assert_eq(h.base_timestamp, 1000);
    cr_assert_eq(h.max_timestamp, 1000);
    cr_assert_eq(h.producer_id, -1);
    cr_assert_eq(h.producer_epoch, -1);
    cr_assert_eq(h.base_sequence, -1);
    cr_assert_eq(h.record_count, 1);
    cr_assert_eq(record_batch_last_offset(&h), 5);
    cr_assert_eq(record_batch_size_bytes(&h), sizeof(hand_batch));
    cr_assert_eq(crc32c(hand_batch + 21, sizeof(hand_batch) - 21), 0x7ad800cbu);
}

Test(batch, trailing_bytes_ignored) {
    uint8_t buf[sizeof(hand_batch) + 9];
    memcpy(buf, hand_batch, sizeof(hand_batch));
    memset(buf + sizeof(hand_batch), 0xee, 9);
    struct record_batch_header h;
    cr_assert_eq(record_batch_validate(buf, sizeof(buf), &h), RECORD_OK);
}

Test(batch, truncated_at_every_byte) {
    struct record_batch_header h;
    for (size_t len = 0; len < sizeof(hand_batch); len++) {
        enum record_error err = record_batch_validate(hand_batch, len, &h);
        cr_assert_eq(err, RECORD_ERR_TRUNCATED, "len %zu gave %s", len, record_error_str(err));
    }
    /* The header alone parses: a reader learns how much more to read. */
    cr_assert_eq(record_batch_header_parse(hand_batch, RECORD_BATCH_HEADER_BYTES, &h), RECORD_OK);
    cr_assert_eq(record_batch_header_parse(hand_batch, 60, &h), RECORD_ERR_TRUNCATED);
    cr_assert_eq(record_batch_header_parse(NULL, 0, &h), RECORD_ERR_TRUNCATED);
}

Test(batch, every_single_bit_flip_in_crc_range_is_caught) {
    uint8_t buf[sizeof(hand_batch)];
    struct record_batch_header h;
    for (size_t i = RECORD_BATCH_ATTRIBUTES_OFFSET; i < sizeof(buf); i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(buf, hand_batch, sizeof(buf));
            buf[i] ^= (uint8_t)(1u << bit);
            enum record_error err = record_batch_validate(buf, sizeof(buf), &h);
            /* record_count's sign bit is rejected before the CRC is looked at */
            if (i == 57 && bit == 7)
                cr_assert_eq(err, RECORD_ERR_BAD_COUNT);
            else
                cr_assert_eq(err, RECORD_ERR_BAD_CRC, "byte %zu bit %d: %s", i, bit,
                             record_error_str(err));
        }
    }
}

Test(batch, bad_magic_and_lengths) {
    uint8_t buf[sizeof(hand_batch)];
    struct record_batch_header h;
    int8_t magics[] = {0, 1, 3, -1, 127};
    for (size_t i = 0; i < sizeof(magics); i++) {
        memcpy(buf, hand_batch, sizeof(buf));
        buf[16] = (uint8_t)magics[i];
        cr_assert_eq(record_batch_validate(buf, sizeof(buf), &h), RECORD_ERR_BAD_MAGIC);
    }
    int32_t lengths[] = {-1, INT32_MIN, 0, 48};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        memcpy(buf, hand_batch, sizeof(buf));
        be32_store(buf + 8, (uint32_t)lengths[i]);
        cr_assert_eq(record_batch_validate(buf, sizeof(buf), &h), RECORD_ERR_BAD_LENGTH);
    }
    /* Oversized: claims more than the buffer holds. */
    memcpy(buf, hand_batch, sizeof(buf));
    be32_store(buf + 8, INT32_MAX);
    cr_assert_eq(record_batch_validate(buf, sizeof(buf), &h), RECORD_ERR_TRUNCATED);
    memcpy(buf, hand_batch, sizeof(buf));
    be32_store(buf + 57, (uint32_t)-5);
    cr_assert_eq(record_batch_header_parse(buf, sizeof(buf), &h), RECORD_ERR_BAD_COUNT);
}

Test(batch, base_offset_rewrite_keeps_crc) {
    uint8_t buf[sizeof(hand_batch)];
    memcpy(buf, hand_batch, sizeof(buf));
    record_batch_set_base_offset(buf, 0x123456789abcLL);
    record_batch_set_partition_leader_epoch(buf, 77);
    struct record_batch_header h;
    cr_assert_eq(record_batch_validate(buf, sizeof(buf), &h), RECORD_OK);
    cr_assert_eq(h.base_offset, 0x123456789abcLL);
    cr_assert_eq(h.partition_leader_epoch, 77);
    cr_assert_eq(record_batch_last_offset(&h), 0x123456789abcLL);
}

Test(batch, log_append_time_recomputes_crc) {
    uint8_t buf[sizeof(hand_batch)];
    memcpy(buf, hand_batch, sizeof(buf));
    record_batch_set_log_append_time(buf, 1700000000123LL);
    struct record_batch_header h;
    cr_assert_eq(record_batch_validate(buf, sizeof(buf), &h), RECORD_OK);
    cr_assert_eq(h.max_timestamp, 1700000000123LL);
    cr_assert(h.attributes & RECORD_ATTR_TIMESTAMP_LOG_APPEND);
    cr_assert_neq(h.crc, 0x7ad800cbu);
    cr_assert_eq(h.base_timestamp, 1000);
}

Test(batch, error_strings) {
    for (int e = 0; e < RECORD_ERR_COUNT_; e++)
        cr_assert_not_null(record_error_str((enum record_error)e));
    cr_assert_str_eq(record_error_str(RECORD_ERR_BAD_CRC), "bad_crc");
    cr_assert_str_eq(record_error_str((enum record_error)999), "unknown");
}

Test(batch, varint_edges) {
    uint8_t buf[16];
    int64_t values[] = {0, -1, 1, 63, -64, 64, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        size_t n = varlong_write(buf, values[i]);
        cr_assert_eq(n, varlong_size(values[i]));
        int64_t back;
        cr_assert_eq(varlong_read(buf, buf + n, &back), n);
        cr_assert_eq(back, values[i]);
        cr_assert_eq(varlong_read(buf, buf + n - 1, &back), 0u); /* truncated */
    }
    /* -1 is 0x01, 1 is 0x02 (zigzag) */
    cr_assert_eq(varlong_write(buf, -1), 1u);
    cr_assert_eq(buf[0], 0x01);
    int32_t v32;
    /* 6-byte varint: overflow for int32 */
    uint8_t over32[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    cr_assert_eq(varint_read(over32, over32 + sizeof(over32), &v32), 0u);
    /* 5 bytes whose value exceeds 32 bits */
    uint8_t big32[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    cr_assert_eq(varint_read(big32, big32 + sizeof(big32), &v32), 0u);
    uint8_t max32[] = {0xfe, 0xff, 0xff, 0xff, 0x0f};
    cr_assert_eq(varint_read(max32, max32 + sizeof(max32), &v32), 5u);
    cr_assert_eq(v32, INT32_MAX);
    int64_t v64;
    uint8_t over64[11];
    memset(over64, 0x80, sizeof(over64));
    over64[10] = 0x01;
    cr_assert_eq(varlong_read(over64, over64 + sizeof(over64), &v64), 0u);
    uint8_t bad10[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02};
    cr_assert_eq(varlong_read(bad10, bad10 + sizeof(bad10), &v64), 0u);
}

Test(batch, kafka_error_codes) {
    cr_assert_eq(record_error_kafka_code(RECORD_OK), 0);
    cr_assert_eq(record_error_kafka_code(RECORD_ERR_BAD_CRC), 2);
    cr_assert_eq(record_error_kafka_code(RECORD_ERR_TRUNCATED), 2);
    cr_assert_eq(record_error_kafka_code(RECORD_ERR_DECOMPRESS), 2);
    cr_assert_eq(record_error_kafka_code(RECORD_ERR_TOO_LARGE), 10);
    cr_assert_eq(record_error_kafka_code(RECORD_ERR_UNSUPPORTED_CODEC), 76);
    cr_assert_eq(record_error_kafka_code(RECORD_ERR_NO_SPACE), -1);
    cr_assert_eq(record_error_kafka_code((enum record_error)999), -1);
}

Test(batch, last_sequence_wraps_like_kafka) {
    struct record_batch_header h = {.base_sequence = 10, .last_offset_delta = 4};
    cr_assert_eq(record_batch_last_sequence(&h), 14);
    h.base_sequence = INT32_MAX - 1;
    h.last_offset_delta = 3;
    cr_assert_eq(record_batch_last_sequence(&h), 1); /* MAX-1, MAX, 0, 1 */
    h.base_sequence = -1;
    cr_assert_eq(record_batch_last_sequence(&h), -1);
}

/* The hand-built batch split into 2 and 3 fragments at every position validates
 * exactly like the contiguous one; one byte short is TRUNCATED; a flipped byte in
 * any fragment is BAD_CRC. */
Test(batch, validate_fragments_at_every_split) {
    const size_t n = sizeof(hand_batch);
    struct record_batch_header h;
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            struct iovec iov[3] = {{(void *)hand_batch, a},
                                   {(void *)(hand_batch + a), b - a},
                                   {(void *)(hand_batch + b), n - b}};
            cr_assert_eq(record_batch_validate_iov(iov, 3, &h), RECORD_OK, "split %zu/%zu", a, b);
            cr_assert_eq(h.record_count, 1);
            /* drop the last byte from the last non-empty fragment */
            int last = n - b > 0 ? 2 : (b - a > 0 ? 1 : 0);
            iov[last].iov_len--;
            enum record_error err = record_batch_validate_iov(iov, 3, &h);
            cr_assert_eq(err, RECORD_ERR_TRUNCATED, "short split %zu/%zu: %s", a, b,
                         record_error_str(err));
        }
    }
    uint8_t copy[sizeof(hand_batch)];
    for (size_t i = RECORD_BATCH_ATTRIBUTES_OFFSET; i < n; i++) {
        memcpy(copy, hand_batch, n);
        copy[i] ^= 0x10;
        struct iovec iov[2] = {{copy, n / 2}, {copy + n / 2, n - n / 2}};
        enum record_error err = record_batch_validate_iov(iov, 2, &h);
        cr_assert(err == RECORD_ERR_BAD_CRC || (i >= 57 && i < 61 && err == RECORD_ERR_BAD_COUNT),
                  "byte %zu: %s", i, record_error_str(err));
    }
    cr_assert_eq(record_batch_validate_iov(NULL, 0, &h), RECORD_ERR_TRUNCATED);
}
