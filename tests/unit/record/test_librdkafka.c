/* test_librdkafka.c - message sets and record batches produced by librdkafka (kcat)
 * and captured off the wire (vectors/capture_librdkafka.py): magic 0 and 1 with
 * none/gzip/snappy/lz4 (magic 0 lz4 carries the KAFKA-3160 header checksum), magic 2
 * with all five codecs. Each must read back to the lines of vectors/rdk_msgs.txt
 * ("key:value"; kcat -K: sends an empty key as an empty, not null, key), and legacy
 * sets must convert to v2 intact. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record/legacy.h"
#include "storage/record/records.h"
#include "test_util.h"

#define MSGS 3

static struct record_codecs codecs;
static uint8_t scratch[1 << 20], records_buf[1 << 20], v2[1 << 20];
static struct record_bytes want_key[MSGS], want_value[MSGS];
static uint8_t *msgs_text;

static void setup(void) {
    cr_assert_eq(record_codecs_init(&codecs), RECORD_OK);
    size_t len;
    msgs_text = load_vector("rdk_msgs.txt", &len);
    uint8_t *p = msgs_text, *end = msgs_text + len;
    for (int i = 0; i < MSGS; i++) {
        uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        uint8_t *colon = memchr(p, ':', (size_t)(nl - p));
        cr_assert(nl != NULL && colon != NULL);
        want_key[i] = (struct record_bytes){p, (int32_t)(colon - p)};
        want_value[i] = (struct record_bytes){colon + 1, (int32_t)(nl - colon - 1)};
        p = nl + 1;
    }
}

static void teardown(void) {
    record_codecs_destroy(&codecs);
    free(msgs_text);
}

TestSuite(librdkafka, .init = setup, .fini = teardown);

static void expect_bytes(struct record_bytes got, struct record_bytes want, const char *what,
                         int i) {
    cr_assert_eq(got.len, want.len, "%s %d: len %d want %d", what, i, got.len, want.len);
    cr_assert(want.len <= 0 || memcmp(got.data, want.data, (size_t)want.len) == 0, "%s %d", what,
              i);
}

static void expect_batch(const uint8_t *batch, size_t len, enum record_codec codec) {
    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, batch, len, &codecs, scratch, sizeof(scratch),
                                  RECORD_ITER_STRICT_OFFSETS), RECORD_OK, "%s",
                 record_error_str(it.err));
    cr_assert_eq((int)record_batch_codec(&it.header), (int)codec);
    cr_assert_eq(it.header.record_count, MSGS);
    struct record_view r;
    for (int i = 0; i < MSGS; i++) {
        cr_assert(record_iter_next(&it, &r), "record %d: %s", i, record_error_str(it.err));
        expect_bytes(r.key, want_key[i], "key", i);
        expect_bytes(r.value, want_value[i], "value", i);
    }
    cr_assert_not(record_iter_next(&it, &r));
    cr_assert_eq(it.err, RECORD_OK);
}

static void v2_vector(const char *file, enum record_codec codec) {
    size_t len;
    uint8_t *batch = load_vector(file, &len);
    struct record_batch_header h;
    cr_assert_eq(record_batch_validate(batch, len, &h), RECORD_OK);
    cr_assert_eq(record_batch_size_bytes(&h), len); /* one batch per capture */
    expect_batch(batch, len, codec);
    free(batch);
}

Test(librdkafka, v2_none) { v2_vector("rdk_v2_none.bin", RECORD_CODEC_NONE); }
Test(librdkafka, v2_gzip) { v2_vector("rdk_v2_gzip.bin", RECORD_CODEC_GZIP); }
Test(librdkafka, v2_snappy) { v2_vector("rdk_v2_snappy.bin", RECORD_CODEC_SNAPPY); }
Test(librdkafka, v2_lz4) { v2_vector("rdk_v2_lz4.bin", RECORD_CODEC_LZ4); }
Test(librdkafka, v2_zstd) { v2_vector("rdk_v2_zstd.bin", RECORD_CODEC_ZSTD); }

static void legacy_vector(const char *file, int magic, enum record_codec codec) {
    size_t len;
    uint8_t *set = load_vector(file, &len);
    /* the wrapper (or the first message) says what the producer used */
    cr_assert_eq(set[LEGACY_LOG_OVERHEAD_BYTES + 4], magic);
    cr_assert_eq(set[LEGACY_LOG_OVERHEAD_BYTES + 5] & LEGACY_ATTR_COMPRESSION_MASK, (int)codec);
    struct legacy_iter it;
    legacy_iter_init(&it, set, len, &codecs, scratch, sizeof(scratch));
    struct legacy_message_view m;
    for (int i = 0; i < MSGS; i++) {
        cr_assert(legacy_iter_next(&it, &m), "%s msg %d: %s", file, i, record_error_str(it.err));
        cr_assert_eq(m.magic, magic);
        cr_assert(magic == 0 ? m.timestamp == LEGACY_NO_TIMESTAMP : m.timestamp > 0);
        expect_bytes(m.key, want_key[i], "key", i);
        expect_bytes(m.value, want_value[i], "value", i);
    }
    cr_assert_not(legacy_iter_next(&it, &m));
    cr_assert_eq(it.err, RECORD_OK);

    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    size_t v2_len;
    cr_assert_eq(legacy_set_to_batch(&codecs, set, len, codec, &bufs, v2, sizeof(v2), &v2_len),
                 RECORD_OK);
    expect_batch(v2, v2_len, codec);
    free(set);
}

Test(librdkafka, v0_none) { legacy_vector("rdk_v0_none.bin", 0, RECORD_CODEC_NONE); }
Test(librdkafka, v0_gzip) { legacy_vector("rdk_v0_gzip.bin", 0, RECORD_CODEC_GZIP); }
Test(librdkafka, v0_snappy) { legacy_vector("rdk_v0_snappy.bin", 0, RECORD_CODEC_SNAPPY); }
Test(librdkafka, v0_lz4_kafka3160) { legacy_vector("rdk_v0_lz4.bin", 0, RECORD_CODEC_LZ4); }
Test(librdkafka, v1_none) { legacy_vector("rdk_v1_none.bin", 1, RECORD_CODEC_NONE); }
Test(librdkafka, v1_gzip) { legacy_vector("rdk_v1_gzip.bin", 1, RECORD_CODEC_GZIP); }
Test(librdkafka, v1_snappy) { legacy_vector("rdk_v1_snappy.bin", 1, RECORD_CODEC_SNAPPY); }
Test(librdkafka, v1_lz4) { legacy_vector("rdk_v1_lz4.bin", 1, RECORD_CODEC_LZ4); }

/* librdkafka's magic-0 lz4 really has the broken checksum: plain liblz4 refuses it. */
Test(librdkafka, v0_lz4_header_is_the_broken_one) {
    size_t len, out_len;
    uint8_t *set = load_vector("rdk_v0_lz4.bin", &len);
    const uint8_t *value = set + LEGACY_LOG_OVERHEAD_BYTES + LEGACY_V0_HEADER_BYTES;
    size_t value_len = len - LEGACY_LOG_OVERHEAD_BYTES - LEGACY_V0_HEADER_BYTES;
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, value, value_len, scratch,
                                   sizeof(scratch), &out_len, 0), RECORD_ERR_DECOMPRESS);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, value, value_len, scratch,
                                   sizeof(scratch), &out_len, RECORD_DECOMPRESS_LZ4_LEGACY_HC),
                 RECORD_OK);
    free(set);
}
