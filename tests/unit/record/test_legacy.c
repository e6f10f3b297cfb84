/* test_legacy.c - MessageSet v0/v1: known CRC32 vectors, sets written by
 * kafka-python (plain and gzip wrappers) read and converted to v2, our writer ->
 * reader -> converter round trips for every codec (lz4 v0 with the KAFKA-3160
 * header), and malformed sets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record/bytes.h"
#include "storage/record/crc.h"
#include "storage/record/legacy.h"
#include "test_util.h"

static struct record_codecs codecs;
static uint8_t scratch[1 << 20];
static uint8_t records_buf[1 << 20];
static uint8_t out[1 << 20];
static uint8_t v2[1 << 20];

static void setup(void) {
    cr_assert_eq(record_codecs_init(&codecs), RECORD_OK);
}

static void teardown(void) {
    record_codecs_destroy(&codecs);
}

TestSuite(legacy, .init = setup, .fini = teardown);

/* CRCs computed with Python's zlib.crc32, not isa-l. */
static const uint8_t v0_msg[] = {
    0, 0, 0, 0, 0, 0, 0, 7, /* offset 7 */
    0, 0, 0, 17,            /* size */
    0x43, 0xdc, 0x3f, 0xaf, /* crc */
    0, 0,                   /* magic 0, attributes */
    0xff, 0xff, 0xff, 0xff, /* key null */
    0, 0, 0, 3, 'a', 'b', 'c',
};
static const uint8_t v1_msg[] = {
    0, 0, 0, 0, 0, 0, 0, 9, /* offset 9 */
    0, 0, 0, 27,            /* size */
    0x4b, 0xcb, 0x9e, 0x83, /* crc */
    1, 0,                   /* magic 1, attributes */
    0, 0, 0, 0, 0, 0, 0x03, 0xe8, /* timestamp 1000 */
    0, 0, 0, 2, 'k', 'k',
    0, 0, 0, 3, 'a', 'b', 'c',
};

Test(legacy, known_crc_vectors) {
    struct legacy_iter it;
    struct legacy_message_view m;
    legacy_iter_init(&it, v0_msg, sizeof(v0_msg), NULL, NULL, 0);
    cr_assert(legacy_iter_next(&it, &m));
    cr_assert_eq(m.offset, 7);
    cr_assert_eq(m.magic, 0);
    cr_assert_eq(m.timestamp, LEGACY_NO_TIMESTAMP);
    cr_assert_eq(m.key.len, -1);
    cr_assert_eq(m.value.len, 3);
    cr_assert(memcmp(m.value.data, "abc", 3) == 0);
    cr_assert_not(legacy_iter_next(&it, &m));
    cr_assert_eq(it.err, RECORD_OK);

    legacy_iter_init(&it, v1_msg, sizeof(v1_msg), NULL, NULL, 0);
    cr_assert(legacy_iter_next(&it, &m));
    cr_assert_eq(m.offset, 9);
    cr_assert_eq(m.magic, 1);
    cr_assert_eq(m.timestamp, 1000);
    cr_assert(m.key.len == 2 && memcmp(m.key.data, "kk", 2) == 0);
    cr_assert(m.value.len == 3 && memcmp(m.value.data, "abc", 3) == 0);
    cr_assert_not(legacy_iter_next(&it, &m));
    cr_assert_eq(it.err, RECORD_OK);

    /* our writer produces the same bytes */
    size_t len;
    struct legacy_message_in in0 = {.offset = 7, .key_len = -1,
                                    .value = (const uint8_t *)"abc", .value_len = 3};
    cr_assert_eq(legacy_set_write(&codecs, 0, RECORD_CODEC_NONE, &in0, 1, out, sizeof(out), NULL,
                                  0, &len), RECORD_OK);
    cr_assert_eq(len, sizeof(v0_msg));
    cr_assert(memcmp(out, v0_msg, len) == 0);
    struct legacy_message_in in1 = {.offset = 9, .timestamp_ms = 1000,
                                    .key = (const uint8_t *)"kk", .key_len = 2,
                                    .value = (const uint8_t *)"abc", .value_len = 3};
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_NONE, &in1, 1, out, sizeof(out), NULL,
                                  0, &len), RECORD_OK);
    cr_assert_eq(len, sizeof(v1_msg));
    cr_assert(memcmp(out, v1_msg, len) == 0);
}

static char pad_value[128];

static const char *padded(int i) {
    snprintf(pad_value, sizeof(pad_value), "value-%d", i);
    memset(pad_value + 7, '.', 100);
    return pad_value;
}

static const int64_t kp_ts[3] = {1700000000000LL, 1700000000007LL, 1700000000003LL};

/* Check a v2 batch holds the three kafka-python messages, in order. */
static void check_converted(const uint8_t *batch, size_t len, int magic) {
    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, batch, len, &codecs, scratch, sizeof(scratch),
                                  RECORD_ITER_STRICT_OFFSETS), RECORD_OK);
    cr_assert_eq(it.header.record_count, 3);
    cr_assert_eq(it.header.max_timestamp, magic == 1 ? kp_ts[1] : -1);
    struct record_view r;
    for (int i = 0; i < 3; i++) {
        cr_assert(record_iter_next(&it, &r), "record %d: %s", i, record_error_str(it.err));
        cr_assert_eq(r.offset, it.header.base_offset + i);
        cr_assert_eq(r.timestamp, magic == 1 ? kp_ts[i] : -1);
        if (i == 1) {
            cr_assert_eq(r.key.len, -1);
        } else {
            char key[16];
            snprintf(key, sizeof(key), "key-%d", i);
            cr_assert(r.key.len == 5 && memcmp(r.key.data, key, 5) == 0);
        }
        if (i == 2)
            cr_assert_eq(r.value.len, -1);
        else
            cr_assert(r.value.len == 107 && memcmp(r.value.data, padded(i), 107) == 0);
        cr_assert_eq(r.header_count, 0);
    }
    cr_assert_not(record_iter_next(&it, &r));
    cr_assert_eq(it.err, RECORD_OK);
}

static void kafka_python_set(const char *file, int magic, bool compressed) {
    size_t len;
    uint8_t *set = load_vector(file, &len);
    struct legacy_iter it;
    legacy_iter_init(&it, set, len, &codecs, scratch, sizeof(scratch));
    struct legacy_message_view m;
    int64_t first_offset = 0;
    for (int i = 0; i < 3; i++) {
        cr_assert(legacy_iter_next(&it, &m), "%s msg %d: %s", file, i, record_error_str(it.err));
        cr_assert_eq(m.magic, magic);
        if (i == 0)
            first_offset = m.offset;
        cr_assert_eq(m.offset, first_offset + i);
        cr_assert_eq(m.timestamp, magic == 1 ? kp_ts[i] : LEGACY_NO_TIMESTAMP);
    }
    cr_assert_not(legacy_iter_next(&it, &m));
    cr_assert_eq(it.err, RECORD_OK);

    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    for (int c = 0; c < RECORD_CODEC_COUNT; c++) {
        size_t v2_len;
        cr_assert_eq(legacy_set_to_batch(&codecs, set, len, (enum record_codec)c, &bufs, v2,
                                         sizeof(v2), &v2_len), RECORD_OK);
        struct record_batch_header h;
        cr_assert_eq(record_batch_validate(v2, v2_len, &h), RECORD_OK);
        cr_assert_eq((int)record_batch_codec(&h), c);
        cr_assert_eq(h.base_offset, first_offset);
        check_converted(v2, v2_len, magic);
    }
    (void)compressed;
    free(set);
}

Test(legacy, kafka_python_v0_plain) { kafka_python_set("kp_v0_none.bin", 0, false); }
Test(legacy, kafka_python_v0_gzip) { kafka_python_set("kp_v0_gzip.bin", 0, true); }
Test(legacy, kafka_python_v1_plain) { kafka_python_set("kp_v1_none.bin", 1, false); }
Test(legacy, kafka_python_v1_gzip) { kafka_python_set("kp_v1_gzip.bin", 1, true); }

#define N 300
static struct legacy_message_in msgs[N];
static char keys[N][16], values[N][64];

static void make_msgs(void) {
    for (int i = 0; i < N; i++) {
        int kl = snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        int vl = snprintf(values[i], sizeof(values[i]), "{\"seq\":%d,\"v\":\"%d\"}", i, i * 17);
        msgs[i] = (struct legacy_message_in){
            .offset = 500 + i, .timestamp_ms = 1600000000000LL + i * 3,
            .key = (const uint8_t *)keys[i], .key_len = i % 5 == 0 ? -1 : kl,
            .value = (const uint8_t *)values[i], .value_len = i % 9 == 4 ? -1 : vl};
    }
}

Test(legacy, round_trip_and_convert_every_codec) {
    make_msgs();
    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    for (int magic = 0; magic <= 1; magic++) {
        for (int c = 0; c < RECORD_CODEC_COUNT; c++) {
            size_t len;
            static uint8_t wscratch[1 << 20];
            if (c == RECORD_CODEC_ZSTD) { /* v2 only, in Kafka and here */
                cr_assert_eq(legacy_set_write(&codecs, (int8_t)magic, RECORD_CODEC_ZSTD, msgs, N,
                                              out, sizeof(out), wscratch, sizeof(wscratch), &len),
                             RECORD_ERR_UNSUPPORTED_CODEC);
                continue;
            }
            cr_assert_eq(legacy_set_write(&codecs, (int8_t)magic, (enum record_codec)c, msgs, N,
                                          out, sizeof(out), wscratch, sizeof(wscratch), &len),
                         RECORD_OK);
            struct legacy_iter it;
            legacy_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch));
            struct legacy_message_view m;
            int i = 0;
            while (legacy_iter_next(&it, &m)) {
                cr_assert_eq(m.offset, msgs[i].offset, "magic %d codec %d msg %d", magic, c, i);
                cr_assert_eq(m.timestamp, magic ? msgs[i].timestamp_ms : -1);
                cr_assert_eq(m.key.len, msgs[i].key_len);
                cr_assert_eq(m.value.len, msgs[i].value_len);
                cr_assert(m.value.len < 0 ||
                          memcmp(m.value.data, msgs[i].value, (size_t)m.value.len) == 0);
                i++;
            }
            cr_assert_eq(it.err, RECORD_OK, "magic %d codec %d: %s", magic, c,
                         record_error_str(it.err));
            cr_assert_eq(i, N);

            size_t v2_len;
            cr_assert_eq(legacy_set_to_batch(&codecs, out, len, (enum record_codec)c, &bufs, v2,
                                             sizeof(v2), &v2_len), RECORD_OK);
            struct record_iter rit;
            cr_assert_eq(record_iter_init(&rit, v2, v2_len, &codecs, scratch, sizeof(scratch),
                                          RECORD_ITER_STRICT_OFFSETS), RECORD_OK);
            cr_assert_eq(rit.header.base_offset, 500);
            struct record_view r;
            i = 0;
            while (record_iter_next(&rit, &r)) {
                cr_assert_eq(r.offset, 500 + i);
                cr_assert_eq(r.timestamp, magic ? msgs[i].timestamp_ms : -1);
                cr_assert_eq(r.key.len, msgs[i].key_len);
                cr_assert(r.key.len < 0 || memcmp(r.key.data, msgs[i].key, (size_t)r.key.len) == 0);
                cr_assert_eq(r.value.len, msgs[i].value_len);
                i++;
            }
            cr_assert_eq(rit.err, RECORD_OK);
            cr_assert_eq(i, N);
        }
    }
}

/* Magic-0 lz4 wrappers carry the KAFKA-3160 header checksum; liblz4 alone refuses it. */
Test(legacy, v0_lz4_wrapper_uses_legacy_header) {
    make_msgs();
    size_t len, raw_len;
    static uint8_t wscratch[1 << 20];
    cr_assert_eq(legacy_set_write(&codecs, 0, RECORD_CODEC_LZ4, msgs, 10, out, sizeof(out),
                                  wscratch, sizeof(wscratch), &len), RECORD_OK);
    const uint8_t *value = out + LEGACY_LOG_OVERHEAD_BYTES + LEGACY_V0_HEADER_BYTES;
    size_t value_len = len - LEGACY_LOG_OVERHEAD_BYTES - LEGACY_V0_HEADER_BYTES;
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, value, value_len, scratch,
                                   sizeof(scratch), &raw_len, 0), RECORD_ERR_DECOMPRESS);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, value, value_len, scratch,
                                   sizeof(scratch), &raw_len, RECORD_DECOMPRESS_LZ4_LEGACY_HC),
                 RECORD_OK);
}

/* v1 wrapper with LogAppendTime: inner messages take the wrapper's timestamp. */
Test(legacy, v1_wrapper_log_append_time) {
    make_msgs();
    size_t len;
    static uint8_t wscratch[1 << 20];
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_GZIP, msgs, 4, out, sizeof(out),
                                  wscratch, sizeof(wscratch), &len), RECORD_OK);
    uint8_t *msg = out + LEGACY_LOG_OVERHEAD_BYTES;
    msg[5] |= LEGACY_ATTR_LOG_APPEND_TIME;
    be64_store(msg + 6, 4242);
    be32_store(msg, crc32_legacy(msg + 4, len - LEGACY_LOG_OVERHEAD_BYTES - 4));
    struct legacy_iter it;
    legacy_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch));
    struct legacy_message_view m;
    int n = 0;
    while (legacy_iter_next(&it, &m)) {
        cr_assert_eq(m.timestamp, 4242);
        cr_assert_eq(m.offset, 500 + n);
        n++;
    }
    cr_assert_eq(it.err, RECORD_OK);
    cr_assert_eq(n, 4);
}

static enum record_error iterate_set(const uint8_t *set, size_t len, int *count) {
    struct legacy_iter it;
    legacy_iter_init(&it, set, len, &codecs, scratch, sizeof(scratch));
    struct legacy_message_view m;
    *count = 0;
    while (legacy_iter_next(&it, &m))
        (*count)++;
    return it.err;
}

Test(legacy, malformed_sets) {
    uint8_t buf[256];
    int n;
    /* truncated at every byte (0 bytes is an empty set: OK, no messages) */
    for (size_t cut = 1; cut < sizeof(v1_msg); cut++)
        cr_assert_eq(iterate_set(v1_msg, cut, &n), RECORD_ERR_TRUNCATED, "cut %zu", cut);
    cr_assert_eq(iterate_set(v1_msg, 0, &n), RECORD_OK);
    cr_assert_eq(n, 0);
    /* bad CRC */
    memcpy(buf, v1_msg, sizeof(v1_msg));
    buf[sizeof(v1_msg) - 1] ^= 1;
    cr_assert_eq(iterate_set(buf, sizeof(v1_msg), &n), RECORD_ERR_BAD_CRC);
    /* magic 2 in a legacy set */
    memcpy(buf, v1_msg, sizeof(v1_msg));
    buf[16] = 2;
    cr_assert_eq(iterate_set(buf, sizeof(v1_msg), &n), RECORD_ERR_BAD_MAGIC);
    /* message size below the minimum, negative, and past the end */
    int32_t sizes[] = {0, 13, -1, INT32_MIN};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memcpy(buf, v1_msg, sizeof(v1_msg));
        be32_store(buf + 8, (uint32_t)sizes[i]);
        cr_assert_eq(iterate_set(buf, sizeof(v1_msg), &n), RECORD_ERR_BAD_LENGTH);
    }
    memcpy(buf, v1_msg, sizeof(v1_msg));
    be32_store(buf + 8, 1000);
    cr_assert_eq(iterate_set(buf, sizeof(v1_msg), &n), RECORD_ERR_TRUNCATED);
    /* key length that overruns the message (CRC fixed) */
    memcpy(buf, v1_msg, sizeof(v1_msg));
    be32_store(buf + 26, 100);
    be32_store(buf + 12, crc32_legacy(buf + 16, sizeof(v1_msg) - 16));
    cr_assert_eq(iterate_set(buf, sizeof(v1_msg), &n), RECORD_ERR_BAD_RECORD);
    be32_store(buf + 26, (uint32_t)-2);
    be32_store(buf + 12, crc32_legacy(buf + 16, sizeof(v1_msg) - 16));
    cr_assert_eq(iterate_set(buf, sizeof(v1_msg), &n), RECORD_ERR_BAD_RECORD);
    /* a v1 message claiming v0 size */
    memcpy(buf, v0_msg, sizeof(v0_msg));
    buf[16] = 1;
    be32_store(buf + 12, crc32_legacy(buf + 16, sizeof(v0_msg) - 16));
    cr_assert_eq(iterate_set(buf, sizeof(v0_msg), &n), RECORD_ERR_BAD_LENGTH);
}

Test(legacy, bad_wrappers) {
    make_msgs();
    size_t len, inner_len;
    int n;
    static uint8_t wscratch[1 << 20];
    /* a wrapper whose value is a compressed (gzip) set of compressed messages: nested */
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_GZIP, msgs, 3, wscratch,
                                  sizeof(wscratch), scratch, sizeof(scratch), &inner_len),
                 RECORD_OK);
    static uint8_t w2[1 << 16];
    uint8_t *zv = w2 + LEGACY_LOG_OVERHEAD_BYTES + LEGACY_V1_HEADER_BYTES;
    cr_assert_eq(record_compress(&codecs, RECORD_CODEC_GZIP, wscratch, inner_len, zv,
                                 sizeof(w2) - 100, &len), RECORD_OK);
    struct legacy_message_in wrapper_in = {.offset = 2, .key_len = -1, .value = zv,
                                           .value_len = (int32_t)len};
    size_t set_len;
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_NONE, &wrapper_in, 1, out, sizeof(out),
                                  NULL, 0, &set_len), RECORD_OK);
    out[LEGACY_LOG_OVERHEAD_BYTES + 5] = RECORD_CODEC_GZIP;
    be32_store(out + 12, crc32_legacy(out + 16, set_len - 16));
    cr_assert_eq(iterate_set(out, set_len, &n), RECORD_ERR_BAD_RECORD);

    /* a wrapper with a null value */
    struct legacy_message_in empty = {.offset = 0, .key_len = -1, .value_len = -1};
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_NONE, &empty, 1, out, sizeof(out), NULL,
                                  0, &set_len), RECORD_OK);
    out[LEGACY_LOG_OVERHEAD_BYTES + 5] = RECORD_CODEC_SNAPPY;
    be32_store(out + 12, crc32_legacy(out + 16, set_len - 16));
    cr_assert_eq(iterate_set(out, set_len, &n), RECORD_ERR_BAD_RECORD);
    /* codec 6, and zstd (not allowed before message format v2) */
    int8_t codec_ids[] = {6, RECORD_CODEC_ZSTD};
    for (size_t i = 0; i < sizeof(codec_ids); i++) {
        out[LEGACY_LOG_OVERHEAD_BYTES + 5] = (uint8_t)codec_ids[i];
        be32_store(out + 12, crc32_legacy(out + 16, set_len - 16));
        cr_assert_eq(iterate_set(out, set_len, &n), RECORD_ERR_UNSUPPORTED_CODEC);
    }

    /* a gzip wrapper whose value is not gzip */
    struct legacy_message_in junk = {.offset = 0, .key_len = -1,
                                     .value = (const uint8_t *)"not gzip at all", .value_len = 15};
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_NONE, &junk, 1, out, sizeof(out), NULL,
                                  0, &set_len), RECORD_OK);
    out[LEGACY_LOG_OVERHEAD_BYTES + 5] = RECORD_CODEC_GZIP;
    be32_store(out + 12, crc32_legacy(out + 16, set_len - 16));
    cr_assert_eq(iterate_set(out, set_len, &n), RECORD_ERR_DECOMPRESS);

    /* decompressed inner set larger than the limit */
    cr_assert_eq(legacy_set_write(&codecs, 1, RECORD_CODEC_LZ4, msgs, N, out, sizeof(out),
                                  wscratch, sizeof(wscratch), &set_len), RECORD_OK);
    struct legacy_iter it;
    legacy_iter_init(&it, out, set_len, &codecs, scratch, 100);
    struct legacy_message_view m;
    cr_assert_not(legacy_iter_next(&it, &m));
    cr_assert_eq(it.err, RECORD_ERR_TOO_LARGE);

    /* conversion of an empty set, and into a too-small output */
    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    size_t v2_len;
    cr_assert_eq(legacy_set_to_batch(&codecs, out, 0, RECORD_CODEC_NONE, &bufs, v2, sizeof(v2),
                                     &v2_len), RECORD_ERR_BAD_COUNT);
    cr_assert_eq(legacy_set_to_batch(&codecs, out, set_len, RECORD_CODEC_NONE, &bufs, v2, 200,
                                     &v2_len), RECORD_ERR_NO_SPACE);
}

/* v2 -> legacy (down-conversion) -> read back, for both magics and every legacy codec;
 * then legacy -> v2 again gives the same records. */
Test(legacy, down_conversion_round_trip) {
    make_msgs();
    struct record_in recs[N];
    struct record_header_in hdr = {.key = (const uint8_t *)"h", .key_len = 1, .value_len = -1};
    for (int i = 0; i < N; i++)
        recs[i] = (struct record_in){.key = msgs[i].key, .key_len = msgs[i].key_len,
                                     .value = msgs[i].value, .value_len = msgs[i].value_len,
                                     .timestamp_ms = msgs[i].timestamp_ms,
                                     .headers = &hdr, .header_count = i % 2};
    struct record_batch_spec spec = record_batch_spec_default();
    spec.base_offset = 7000;
    spec.codec = RECORD_CODEC_ZSTD; /* the stored batch may use any codec */
    static uint8_t batch[1 << 20], wscratch[1 << 20], legacy_set[1 << 20];
    size_t batch_len;
    cr_assert_eq(record_batch_write(&codecs, &spec, recs, N, batch, sizeof(batch), wscratch,
                                    sizeof(wscratch), &batch_len), RECORD_OK);
    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    for (int magic = 0; magic <= 1; magic++) {
        for (int c = 0; c < RECORD_CODEC_ZSTD; c++) {
            size_t set_len;
            cr_assert_eq(legacy_from_batch(&codecs, batch, batch_len, (int8_t)magic,
                                           (enum record_codec)c, &bufs, legacy_set,
                                           sizeof(legacy_set), &set_len), RECORD_OK,
                         "magic %d codec %d", magic, c);
            struct legacy_iter it;
            legacy_iter_init(&it, legacy_set, set_len, &codecs, scratch, sizeof(scratch));
            struct legacy_message_view m;
            int i = 0;
            while (legacy_iter_next(&it, &m)) {
                cr_assert_eq(m.offset, 7000 + i, "magic %d codec %d msg %d", magic, c, i);
                cr_assert_eq(m.magic, magic);
                cr_assert_eq(m.timestamp, magic ? msgs[i].timestamp_ms : LEGACY_NO_TIMESTAMP);
                cr_assert_eq(m.key.len, msgs[i].key_len);
                cr_assert(m.key.len < 0 || memcmp(m.key.data, msgs[i].key, (size_t)m.key.len) == 0);
                cr_assert_eq(m.value.len, msgs[i].value_len);
                cr_assert(m.value.len < 0 ||
                          memcmp(m.value.data, msgs[i].value, (size_t)m.value.len) == 0);
                i++;
            }
            cr_assert_eq(it.err, RECORD_OK, "%s", record_error_str(it.err));
            cr_assert_eq(i, N);
            /* and back up to v2 */
            size_t v2_len;
            cr_assert_eq(legacy_set_to_batch(&codecs, legacy_set, set_len, RECORD_CODEC_NONE,
                                             &bufs, v2, sizeof(v2), &v2_len), RECORD_OK);
            struct record_iter rit;
            cr_assert_eq(record_iter_init(&rit, v2, v2_len, NULL, NULL, 0,
                                          RECORD_ITER_STRICT_OFFSETS), RECORD_OK);
            cr_assert_eq(rit.header.base_offset, 7000);
            cr_assert_eq(rit.header.record_count, N);
        }
    }
    size_t set_len;
    cr_assert_eq(legacy_from_batch(&codecs, batch, batch_len, 1, RECORD_CODEC_ZSTD, &bufs,
                                   legacy_set, sizeof(legacy_set), &set_len),
                 RECORD_ERR_UNSUPPORTED_CODEC);
    cr_assert_eq(legacy_from_batch(&codecs, batch, batch_len, 2, RECORD_CODEC_NONE, &bufs,
                                   legacy_set, sizeof(legacy_set), &set_len),
                 RECORD_ERR_INVALID_ARG);
    cr_assert_eq(legacy_from_batch(&codecs, batch, batch_len, 1, RECORD_CODEC_NONE, &bufs,
                                   legacy_set, 100, &set_len), RECORD_ERR_NO_SPACE);
    cr_assert_eq(legacy_from_batch(&codecs, batch, batch_len, 1, RECORD_CODEC_GZIP, &bufs,
                                   legacy_set, 10, &set_len), RECORD_ERR_NO_SPACE);
    batch[batch_len - 1] ^= 1;
    cr_assert_eq(legacy_from_batch(&codecs, batch, batch_len, 1, RECORD_CODEC_NONE, &bufs,
                                   legacy_set, sizeof(legacy_set), &set_len), RECORD_ERR_BAD_CRC);
}

Test(legacy, down_conversion_drops_control_batches) {
    uint8_t key[RECORD_CONTROL_KEY_BYTES], value[RECORD_CONTROL_VALUE_BYTES];
    record_control_key_write(key, RECORD_CONTROL_COMMIT);
    record_control_value_write(value, 1);
    struct record_in r = {.key = key, .key_len = 4, .value = value, .value_len = 6};
    struct record_batch_spec spec = record_batch_spec_default();
    spec.control = spec.transactional = true;
    size_t len, set_len = 99;
    cr_assert_eq(record_batch_write(&codecs, &spec, &r, 1, v2, sizeof(v2), NULL, 0, &len),
                 RECORD_OK);
    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    cr_assert_eq(legacy_from_batch(&codecs, v2, len, 1, RECORD_CODEC_NONE, &bufs, out,
                                   sizeof(out), &set_len), RECORD_OK);
    cr_assert_eq(set_len, 0u);
}
