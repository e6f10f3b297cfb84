/* test_records.c - records inside a v2 batch: batches written by kafka-python (an
 * independent implementation) read back field by field; our writer -> our reader
 * round trips for every codec, null keys/values, headers, many records, control
 * batches; and every kind of malformed record section yields an error value. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record/bytes.h"
#include "storage/record/records.h"
#include "test_util.h"

static struct record_codecs codecs;
static uint8_t scratch[1 << 20];

static void setup(void) {
    cr_assert_eq(record_codecs_init(&codecs), RECORD_OK);
}

static void teardown(void) {
    record_codecs_destroy(&codecs);
}

TestSuite(records, .init = setup, .fini = teardown);

static bool bytes_eq(struct record_bytes b, const char *s, size_t len) {
    return b.len == (int32_t)len && memcmp(b.data, s, len) == 0;
}

static char pad_value[128];

static const char *padded(int i) {
    snprintf(pad_value, sizeof(pad_value), "value-%d", i);
    memset(pad_value + 7, '.', 100);
    return pad_value;
}

/* The batch gen_vectors.sh made with kafka-python (see the records there). */
static void check_kafka_python_batch(const char *file, enum record_codec codec) {
    size_t len;
    uint8_t *batch = load_vector(file, &len);
    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, batch, len, &codecs, scratch, sizeof(scratch),
                                  RECORD_ITER_STRICT_OFFSETS), RECORD_OK);
    cr_assert_eq(record_batch_codec(&it.header), codec);
    cr_assert_eq(it.header.producer_id, 4242);
    cr_assert_eq(it.header.producer_epoch, 7);
    cr_assert_eq(it.header.base_sequence, 100);
    cr_assert_eq(it.header.record_count, 3);
    cr_assert_eq(it.header.last_offset_delta, 2);
    cr_assert_eq(it.header.base_timestamp, 1700000000000LL);
    cr_assert_eq(it.header.max_timestamp, 1700000000007LL);

    struct record_view r;
    cr_assert(record_iter_next(&it, &r));
    cr_assert_eq(r.offset, 0);
    cr_assert_eq(r.timestamp, 1700000000000LL);
    cr_assert(bytes_eq(r.key, "key-0", 5));
    cr_assert(bytes_eq(r.value, padded(0), 107));
    cr_assert_eq(r.header_count, 2);
    const uint8_t *hp = r.headers;
    struct record_header_view h;
    cr_assert(record_header_next(&hp, r.headers_end, &h));
    cr_assert(bytes_eq(h.key, "h1", 2));
    cr_assert(bytes_eq(h.value, "v1", 2));
    cr_assert(record_header_next(&hp, r.headers_end, &h));
    cr_assert(bytes_eq(h.key, "h2", 2));
    cr_assert_eq(h.value.len, -1);
    cr_assert_null(h.value.data);
    cr_assert_not(record_header_next(&hp, r.headers_end, &h));

    cr_assert(record_iter_next(&it, &r));
    cr_assert_eq(r.offset, 1);
    cr_assert_eq(r.timestamp, 1700000000007LL);
    cr_assert_eq(r.key.len, -1);
    cr_assert(bytes_eq(r.value, padded(1), 107));
    cr_assert_eq(r.header_count, 0);

    cr_assert(record_iter_next(&it, &r));
    cr_assert_eq(r.offset, 2);
    cr_assert_eq(r.timestamp, 1700000000003LL);
    cr_assert(bytes_eq(r.key, "key-2", 5));
    cr_assert_eq(r.value.len, -1);

    cr_assert_not(record_iter_next(&it, &r));
    cr_assert_eq(it.err, RECORD_OK);
    free(batch);
}

Test(records, kafka_python_plain) { check_kafka_python_batch("kp_v2_none.bin", RECORD_CODEC_NONE); }
Test(records, kafka_python_gzip) { check_kafka_python_batch("kp_v2_gzip.bin", RECORD_CODEC_GZIP); }

/* ---- writer -> reader -------------------------------------------------------- */

#define MANY 1000

struct fixture {
    struct record_in recs[MANY];
    struct record_header_in hdrs[MANY][3];
    char keys[MANY][24];
    char values[MANY][160];
};

static struct fixture fx;

/* Record i: key null every 7th, value null every 11th, i % 4 headers (max 3). */
static void make_records(int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        struct record_in *r = &fx.recs[i];
        memset(r, 0, sizeof(*r));
        int klen = snprintf(fx.keys[i], sizeof(fx.keys[i]), "user-%d", i * 7919 % 1000);
        int vlen = snprintf(fx.values[i], sizeof(fx.values[i]),
                            "{\"id\":%d,\"name\":\"n%d\",\"amount\":%d.%02d,\"ok\":%s}", i,
                            i * 31, i * 13, i % 100, i % 2 ? "true" : "false");
        r->key = (const uint8_t *)fx.keys[i];
        r->key_len = i % 7 == 0 ? -1 : klen;
        r->value = (const uint8_t *)fx.values[i];
        r->value_len = i % 11 == 0 ? -1 : vlen;
        r->timestamp_ms = 1700000000000LL + (i * 37) % 1000 - 500; /* not monotonic */
        r->header_count = i % 4 == 3 ? 3 : i % 4;
        for (int32_t h = 0; h < r->header_count; h++) {
            fx.hdrs[i][h] = (struct record_header_in){
                .key = (const uint8_t *)"trace", .key_len = 5 - h,
                .value = (const uint8_t *)fx.keys[i], .value_len = h == 1 ? -1 : 3};
        }
        r->headers = fx.hdrs[i];
    }
}

static void check_records(const uint8_t *batch, size_t len, int32_t n, int64_t base_offset) {
    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, batch, len, &codecs, scratch, sizeof(scratch),
                                  RECORD_ITER_STRICT_OFFSETS), RECORD_OK);
    int64_t max_ts = fx.recs[0].timestamp_ms;
    for (int32_t i = 0; i < n; i++)
        if (fx.recs[i].timestamp_ms > max_ts)
            max_ts = fx.recs[i].timestamp_ms;
    cr_assert_eq(it.header.max_timestamp, max_ts);
    cr_assert_eq(it.header.base_timestamp, fx.recs[0].timestamp_ms);
    struct record_view r;
    int32_t i = 0;
    while (record_iter_next(&it, &r)) {
        const struct record_in *w = &fx.recs[i];
        cr_assert_eq(r.offset, base_offset + i);
        cr_assert_eq(r.timestamp, w->timestamp_ms);
        cr_assert_eq(r.key.len, w->key_len);
        cr_assert(w->key_len < 0 || memcmp(r.key.data, w->key, (size_t)w->key_len) == 0);
        cr_assert_eq(r.value.len, w->value_len);
        cr_assert(w->value_len < 0 || memcmp(r.value.data, w->value, (size_t)w->value_len) == 0);
        cr_assert_eq(r.header_count, w->header_count);
        const uint8_t *hp = r.headers;
        struct record_header_view h;
        for (int32_t k = 0; k < w->header_count; k++) {
            cr_assert(record_header_next(&hp, r.headers_end, &h));
            cr_assert_eq(h.key.len, w->headers[k].key_len);
            cr_assert_eq(h.value.len, w->headers[k].value_len);
        }
        cr_assert_not(record_header_next(&hp, r.headers_end, &h));
        i++;
    }
    cr_assert_eq(it.err, RECORD_OK, "%s", record_error_str(it.err));
    cr_assert_eq(i, n);
}

static uint8_t out[1 << 20];

Test(records, round_trip_every_codec) {
    make_records(MANY);
    int32_t counts[] = {1, 2, 17, MANY};
    for (int c = 0; c < RECORD_CODEC_COUNT; c++) {
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
            struct record_batch_spec spec = record_batch_spec_default();
            spec.codec = (enum record_codec)c;
            spec.base_offset = 1000 + c;
            spec.producer_id = 9;
            spec.producer_epoch = 2;
            spec.base_sequence = 5;
            size_t len;
            cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, counts[k], out, sizeof(out),
                                            scratch, sizeof(scratch), &len), RECORD_OK);
            struct record_batch_header h;
            cr_assert_eq(record_batch_validate(out, len, &h), RECORD_OK);
            cr_assert_eq((int)record_batch_codec(&h), c);
            cr_assert_eq(h.producer_id, 9);
            cr_assert_eq(h.base_sequence, 5);
            cr_assert_eq(h.record_count, counts[k]);
            cr_assert_eq(record_batch_last_offset(&h), 1000 + c + counts[k] - 1);
            /* the reader decompresses into scratch; copy the batch out of `out` first
             * is not needed: scratch and out are different buffers */
            check_records(out, len, counts[k], 1000 + c);
        }
    }
}

Test(records, writer_reports_needed_size) {
    make_records(50);
    struct record_batch_spec spec = record_batch_spec_default();
    size_t need;
    uint8_t small[100];
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 50, small, sizeof(small), NULL, 0,
                                    &need), RECORD_ERR_NO_SPACE);
    cr_assert_gt(need, sizeof(small));
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 50, out, need, NULL, 0, &len),
                 RECORD_OK);
    cr_assert_eq(len, need);
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 50, out, need - 1, NULL, 0, &len),
                 RECORD_ERR_NO_SPACE);
    spec.codec = RECORD_CODEC_ZSTD;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 50, small, sizeof(small), scratch,
                                    sizeof(scratch), &need), RECORD_ERR_NO_SPACE);
    cr_assert_gt(need, sizeof(small));
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 50, out, need, scratch,
                                    sizeof(scratch), &len), RECORD_OK);
    /* scratch too small for the uncompressed records */
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 50, out, sizeof(out), scratch, 10,
                                    &len), RECORD_ERR_NO_SPACE);
    /* invalid records */
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 0, out, sizeof(out), scratch,
                                    sizeof(scratch), &len), RECORD_ERR_INVALID_ARG);
    struct record_in bad = fx.recs[1];
    bad.key_len = -2;
    cr_assert_eq(record_batch_write(&codecs, &spec, &bad, 1, out, sizeof(out), scratch,
                                    sizeof(scratch), &len), RECORD_ERR_INVALID_ARG);
}

Test(records, control_batch_commit_and_abort) {
    for (int16_t type = 0; type <= 1; type++) {
        uint8_t key[RECORD_CONTROL_KEY_BYTES], value[RECORD_CONTROL_VALUE_BYTES];
        record_control_key_write(key, type);
        record_control_value_write(value, 42);
        struct record_in r = {.key = key, .key_len = sizeof(key), .value = value,
                              .value_len = sizeof(value), .timestamp_ms = 5};
        struct record_batch_spec spec = record_batch_spec_default();
        spec.transactional = true;
        spec.control = true;
        spec.producer_id = 77;
        spec.producer_epoch = 3;
        size_t len;
        cr_assert_eq(record_batch_write(&codecs, &spec, &r, 1, out, sizeof(out), NULL, 0, &len),
                     RECORD_OK);
        struct record_iter it;
        cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch), 0),
                     RECORD_OK);
        cr_assert(it.header.attributes & RECORD_ATTR_CONTROL);
        cr_assert(it.header.attributes & RECORD_ATTR_TRANSACTIONAL);
        struct record_view v;
        cr_assert(record_iter_next(&it, &v));
        struct record_control ctl;
        cr_assert_eq(record_control_parse(&v, &ctl), RECORD_OK);
        cr_assert_eq(ctl.version, 0);
        cr_assert_eq(ctl.type, type == 1 ? RECORD_CONTROL_COMMIT : RECORD_CONTROL_ABORT);
        cr_assert_eq(ctl.coordinator_epoch, 42);
        /* a control record with a short key is an error, not a crash */
        v.key.len = 3;
        cr_assert_eq(record_control_parse(&v, &ctl), RECORD_ERR_BAD_RECORD);
        v.key.len = -1;
        v.key.data = NULL;
        cr_assert_eq(record_control_parse(&v, &ctl), RECORD_ERR_BAD_RECORD);
    }
}

Test(records, log_append_time_applies_to_every_record) {
    make_records(5);
    struct record_batch_spec spec = record_batch_spec_default();
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 5, out, sizeof(out), NULL, 0, &len),
                 RECORD_OK);
    record_batch_set_log_append_time(out, 1234567);
    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch), 0), RECORD_OK);
    struct record_view r;
    int n = 0;
    while (record_iter_next(&it, &r)) {
        cr_assert_eq(r.timestamp, 1234567);
        n++;
    }
    cr_assert_eq(n, 5);
    cr_assert_eq(it.err, RECORD_OK);
}

/* ---- malformed record sections ------------------------------------------------ */

/* A plain batch of 3 small records to corrupt. */
static size_t small_batch(uint8_t *buf, size_t cap) {
    make_records(3);
    struct record_batch_spec spec = record_batch_spec_default();
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 3, buf, cap, NULL, 0, &len), RECORD_OK);
    return len;
}

static enum record_error iterate_all(const uint8_t *buf, size_t len, unsigned flags, int *count) {
    struct record_iter it;
    *count = 0;
    if (record_iter_init(&it, buf, len, &codecs, scratch, sizeof(scratch), flags) != RECORD_OK)
        return it.err;
    struct record_view r;
    while (record_iter_next(&it, &r))
        (*count)++;
    return it.err;
}

Test(records, record_count_mismatch) {
    size_t len = small_batch(out, sizeof(out));
    int n;
    int32_t counts[] = {2, 4, 1000000, 0};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        be32_store(out + 57, (uint32_t)counts[i]);
        record_batch_update_crc(out);
        cr_assert_eq(iterate_all(out, len, 0, &n), RECORD_ERR_BAD_COUNT, "count %d", counts[i]);
    }
}

Test(records, offset_deltas_checked) {
    size_t len = small_batch(out, sizeof(out));
    int n;
    /* last_offset_delta below the records' deltas */
    be32_store(out + 23, 1);
    record_batch_update_crc(out);
    cr_assert_eq(iterate_all(out, len, 0, &n), RECORD_ERR_BAD_COUNT);
    /* a gap (compacted batch): fine by default, not from a producer */
    be32_store(out + 23, 5);
    record_batch_update_crc(out);
    cr_assert_eq(iterate_all(out, len, 0, &n), RECORD_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(iterate_all(out, len, RECORD_ITER_STRICT_OFFSETS, &n), RECORD_ERR_BAD_COUNT);
    be32_store(out + 23, (uint32_t)-1);
    record_batch_update_crc(out);
    cr_assert_eq(iterate_all(out, len, 0, &n), RECORD_ERR_BAD_COUNT);
}

Test(records, bad_record_lengths_and_varints) {
    size_t len = small_batch(out, sizeof(out));
    uint8_t buf[4096];
    int n;
    const size_t rec0 = RECORD_BATCH_HEADER_BYTES;
    /* record length beyond the section */
    memcpy(buf, out, len);
    buf[rec0] = 0x7e; /* 63 */
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, len, 0, &n), RECORD_ERR_BAD_RECORD);
    /* negative record length */
    memcpy(buf, out, len);
    buf[rec0] = 0x01; /* -1 */
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, len, 0, &n), RECORD_ERR_BAD_RECORD);
    /* record length shorter than its fields: key spills over the record end */
    memcpy(buf, out, len);
    buf[rec0] = (uint8_t)(buf[rec0] - 2);
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, len, 0, &n), RECORD_ERR_BAD_RECORD);
    /* varint overflow: a record length of 6 continuation bytes */
    memcpy(buf, out, RECORD_BATCH_HEADER_BYTES);
    memset(buf + rec0, 0x80, 5);
    buf[rec0 + 5] = 0x01;
    size_t blen = rec0 + 6;
    be32_store(buf + 8, (uint32_t)(blen - 12));
    be32_store(buf + 57, 1);
    be32_store(buf + 23, 0);
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, blen, 0, &n), RECORD_ERR_BAD_RECORD);
    /* a key length of -2 inside a hand-made record */
    uint8_t rec[] = {0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00};
    memcpy(buf + rec0, rec, sizeof(rec));
    blen = rec0 + sizeof(rec);
    be32_store(buf + 8, (uint32_t)(blen - 12));
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, blen, 0, &n), RECORD_ERR_BAD_RECORD);
    /* negative header count */
    uint8_t rec2[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01};
    memcpy(buf + rec0, rec2, sizeof(rec2));
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, blen, 0, &n), RECORD_ERR_BAD_RECORD);
    /* the same with header count 0 parses */
    rec2[6] = 0x00;
    memcpy(buf + rec0, rec2, sizeof(rec2));
    record_batch_update_crc(buf);
    cr_assert_eq(iterate_all(buf, blen, 0, &n), RECORD_OK);
    cr_assert_eq(n, 1);
}

Test(records, truncated_at_every_byte) {
    size_t len = small_batch(out, sizeof(out));
    int n;
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(iterate_all(out, cut, 0, &n), RECORD_ERR_TRUNCATED, "cut %zu", cut);
}

Test(records, compressed_payload_errors) {
    make_records(200);
    struct record_batch_spec spec = record_batch_spec_default();
    spec.codec = RECORD_CODEC_ZSTD;
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 200, out, sizeof(out), scratch,
                                    sizeof(scratch), &len), RECORD_OK);
    struct record_iter it;
    /* decompressed records larger than the caller's limit */
    cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, 1000, 0), RECORD_ERR_TOO_LARGE);
    struct record_view r;
    cr_assert_not(record_iter_next(&it, &r));
    /* no scratch at all */
    cr_assert_eq(record_iter_init(&it, out, len, &codecs, NULL, 0, 0), RECORD_ERR_INVALID_ARG);
    /* payload that does not decompress (CRC fixed so the codec sees it) */
    memset(out + RECORD_BATCH_HEADER_BYTES, 0xab, 16);
    record_batch_update_crc(out);
    cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch), 0),
                 RECORD_ERR_DECOMPRESS);
    /* each codec id 5..7 */
    for (int id = 5; id < 8; id++) {
        be16_store(out + 21, (uint16_t)id);
        record_batch_update_crc(out);
        cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch), 0),
                     RECORD_ERR_UNSUPPORTED_CODEC);
    }
    /* bad CRC */
    be16_store(out + 21, RECORD_CODEC_ZSTD);
    cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch), 0),
                 RECORD_ERR_BAD_CRC);
}

/* Every byte of the records section set to a few values (CRC fixed up each time):
 * the iterator must finish with a count <= record_count and OK or an error value
 * (ASan/UBSan watch the reads). */
Test(records, mutations_never_overrun) {
    uint8_t orig[4096], buf[4096];
    size_t len = small_batch(orig, sizeof(orig));
    const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x02, 0x13};
    int errors = 0;
    for (size_t i = RECORD_BATCH_HEADER_BYTES; i < len; i++) {
        for (size_t v = 0; v < sizeof(values); v++) {
            memcpy(buf, orig, len);
            if (buf[i] == values[v])
                continue;
            buf[i] = values[v];
            record_batch_update_crc(buf);
            int n;
            enum record_error err = iterate_all(buf, len, 0, &n);
            cr_assert_leq(n, 3);
            cr_assert(err == RECORD_OK || err == RECORD_ERR_BAD_RECORD || err == RECORD_ERR_BAD_COUNT,
                      "byte %zu value %u: %s", i, values[v], record_error_str(err));
            errors += err != RECORD_OK;
        }
    }
    cr_assert_gt(errors, 0);
}

Test(records, check_records_whole_batch) {
    make_records(40);
    struct record_batch_spec spec = record_batch_spec_default();
    spec.codec = RECORD_CODEC_LZ4;
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 40, out, sizeof(out), scratch,
                                    sizeof(scratch), &len), RECORD_OK);
    struct record_batch_header h;
    cr_assert_eq(record_batch_check_records(out, len, &codecs, scratch, sizeof(scratch),
                                            RECORD_ITER_STRICT_OFFSETS, &h), RECORD_OK);
    cr_assert_eq(h.record_count, 40);
    be32_store(out + 57, 41);
    record_batch_update_crc(out);
    cr_assert_eq(record_batch_check_records(out, len, &codecs, scratch, sizeof(scratch),
                                            RECORD_ITER_STRICT_OFFSETS, &h), RECORD_ERR_BAD_COUNT);
}

/* A batch emptied by compaction: header only, no records, codec bits may be set. */
Test(records, empty_batch_after_compaction) {
    make_records(1);
    struct record_batch_spec spec = record_batch_spec_default();
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 1, out, sizeof(out), NULL, 0, &len),
                 RECORD_OK);
    be32_store(out + 8, RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_OVERHEAD_BYTES);
    be32_store(out + 57, 0);
    be16_store(out + 21, RECORD_CODEC_ZSTD);
    record_batch_update_crc(out);
    int n;
    cr_assert_eq(iterate_all(out, RECORD_BATCH_HEADER_BYTES, 0, &n), RECORD_OK);
    cr_assert_eq(n, 0);
}

/* Offsets and timestamps near the int64 limits wrap instead of overflowing (no UB;
 * run under UBSan with -fno-sanitize-recover to check). */
Test(records, extreme_offsets_and_timestamps_do_not_overflow) {
    make_records(3);
    fx.recs[0].timestamp_ms = INT64_MAX;
    fx.recs[1].timestamp_ms = INT64_MIN;
    struct record_batch_spec spec = record_batch_spec_default();
    spec.base_offset = INT64_MAX;
    size_t len;
    cr_assert_eq(record_batch_write(&codecs, &spec, fx.recs, 3, out, sizeof(out), NULL, 0, &len),
                 RECORD_OK);
    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch), 0), RECORD_OK);
    cr_assert_eq(record_batch_last_offset(&it.header), INT64_MIN + 1);
    struct record_view r;
    cr_assert(record_iter_next(&it, &r));
    cr_assert_eq(r.offset, INT64_MAX);
    cr_assert_eq(r.timestamp, INT64_MAX);
    cr_assert(record_iter_next(&it, &r));
    cr_assert_eq(r.offset, INT64_MIN);
    cr_assert_eq(r.timestamp, INT64_MIN);
    cr_assert(record_iter_next(&it, &r));
    cr_assert_not(record_iter_next(&it, &r));
    cr_assert_eq(it.err, RECORD_OK);
}
