/* test_wire.c: hand-checked wire bytes (built byte by byte from the protocol spec) and bad
 * input: truncation at every byte, bad lengths and counts, varint overflow, tagged fields
 * (unknown, past the end), arena exhaustion, writer buffer/iovec exhaustion. */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "dataplane/kafka/kafka_msgs.h"
#include "dataplane/kafka/kafka_msgs_fill.h"

static uint8_t out[64 * 1024];
static uint8_t arena_mem[256 * 1024];
static struct kafka_arena arena;

static void setup(void)
{
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
}

/* Encode with the writer and compare with the expected bytes. */
#define ASSERT_BYTES(w, expect) do { \
        cr_assert_eq((w)->err, 0, "writer error %s", kafka_err_str((w)->err)); \
        cr_assert_eq((w)->len_bytes, sizeof(expect), "size %zu != %zu", (w)->len_bytes, \
            sizeof(expect)); \
        cr_assert(memcmp(out, expect, sizeof(expect)) == 0, "bytes differ"); \
    } while (0)

/* ---- hand-checked bytes --------------------------------------------------------------- */

Test(wire_bytes, api_versions_v0_request, .init = setup)
{
    static const uint8_t frame[] = {
        0x00, 0x12,             /* api key 18 */
        0x00, 0x00,             /* version 0 */
        0x00, 0x00, 0x00, 0x01, /* correlation id 1 */
        0x00, 0x02, 'a', 'b',   /* client id "ab" (int16 length) */
        /* ApiVersions v0 request: no fields */
    };
    cr_assert_eq(kafka_request_header_version(18, 0), 1);
    struct kafka_reader r;
    kafka_reader_init(&r, frame, sizeof(frame));
    struct kafka_request_header h;
    cr_assert_eq(kafka_request_header_decode(&r, 1, &h, &arena), 0);
    cr_assert_eq(h.request_api_key, 18);
    cr_assert_eq(h.request_api_version, 0);
    cr_assert_eq(h.correlation_id, 1);
    cr_assert(kafka_str_equals_cstr(h.client_id, "ab"));
    struct kafka_api_versions_request m;
    cr_assert_eq(kafka_api_versions_request_decode(&r, 0, &m, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);

    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    kafka_request_header_encode(&w, 1, &h);
    kafka_api_versions_request_encode(&w, 0, &m);
    ASSERT_BYTES(&w, frame);
}

Test(wire_bytes, api_versions_v3_request, .init = setup)
{
    static const uint8_t frame[] = {
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x07,
        0x00, 0x04, 'k', 'c', 'a', 't', /* client id: NOT compact even in header v2 */
        0x00,                           /* header tagged fields: none */
        0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f', 'k', 'a', /* compact, len+1 = 11 */
        0x06, '2', '.', '0', '.', '2',
        0x00,                           /* body tagged fields: none */
    };
    cr_assert_eq(kafka_request_header_version(18, 3), 2);
    struct kafka_reader r;
    kafka_reader_init(&r, frame, sizeof(frame));
    struct kafka_request_header h;
    cr_assert_eq(kafka_request_header_decode(&r, 2, &h, &arena), 0);
    cr_assert_eq(h.correlation_id, 7);
    cr_assert(kafka_str_equals_cstr(h.client_id, "kcat"));
    struct kafka_api_versions_request m;
    cr_assert_eq(kafka_api_versions_request_decode(&r, 3, &m, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);
    cr_assert(kafka_str_equals_cstr(m.client_software_name, "librdkafka"));
    cr_assert(kafka_str_equals_cstr(m.client_software_version, "2.0.2"));

    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    struct kafka_request_header h2 = { 18, 3, 7, kafka_str_from_cstr("kcat") };
    struct kafka_api_versions_request m2;
    kafka_api_versions_request_init(&m2, 3);
    m2.client_software_name = kafka_str_from_cstr("librdkafka");
    m2.client_software_version = kafka_str_from_cstr("2.0.2");
    kafka_request_header_encode(&w, 2, &h2);
    kafka_api_versions_request_encode(&w, 3, &m2);
    ASSERT_BYTES(&w, frame);
}

Test(wire_bytes, api_versions_v0_response, .init = setup)
{
    static const uint8_t expect[] = {
        0x00, 0x00, 0x00, 0x2a,             /* response header v0: correlation id 42 */
        0x00, 0x00,                         /* error code 0 */
        0x00, 0x00, 0x00, 0x02,             /* api keys: int32 count 2 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x09, /* Produce 0-9 */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
    };
    struct kafka_api_versions_response_api_version keys[2] = { { 0, 0, 9 }, { 18, 0, 3 } };
    struct kafka_api_versions_response m;
    kafka_api_versions_response_init(&m, 0);
    m.api_keys = keys;
    m.api_keys_count = 2;
    struct kafka_response_header h = { 42 };
    cr_assert_eq(kafka_response_header_version(18, 0), 0);
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(kafka_response_header_encode(&w, 0, &h), 0);
    cr_assert_eq(kafka_api_versions_response_encode(&w, 0, &m), 0);
    ASSERT_BYTES(&w, expect);

    struct kafka_reader r;
    kafka_reader_init(&r, expect + 4, sizeof(expect) - 4);
    struct kafka_api_versions_response d;
    cr_assert_eq(kafka_api_versions_response_decode(&r, 0, &d, &arena), 0);
    cr_assert_eq(d.api_keys_count, 2);
    cr_assert_eq(d.api_keys[1].api_key, 18);
    cr_assert_eq(d.api_keys[1].max_version, 3);
}

Test(wire_bytes, api_versions_v3_response_with_tag, .init = setup)
{
    static const uint8_t expect[] = {
        0x00, 0x00, 0x00, 0x2a,             /* header v0 even though v3 is flexible */
        0x00, 0x00,                         /* error code */
        0x03,                               /* compact array: 2 + 1 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, /* Produce 0-9, no tags */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00, /* ApiVersions 0-3, no tags */
        0x00, 0x00, 0x00, 0x64,             /* throttle time 100 ms */
        0x01,                               /* one tagged field */
        0x01, 0x08,                         /* tag 1 (FinalizedFeaturesEpoch), size 8 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    };
    struct kafka_api_versions_response_api_version keys[2] = { { 0, 0, 9 }, { 18, 0, 3 } };
    struct kafka_api_versions_response m;
    kafka_api_versions_response_init(&m, 3);
    m.api_keys = keys;
    m.api_keys_count = 2;
    m.throttle_time_ms = 100;
    m.finalized_features_epoch = 5;
    cr_assert_eq(kafka_response_header_version(18, 3), 0);
    struct kafka_response_header h = { 42 };
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    kafka_response_header_encode(&w, 0, &h);
    kafka_api_versions_response_encode(&w, 3, &m);
    ASSERT_BYTES(&w, expect);

    struct kafka_reader r;
    kafka_reader_init(&r, expect + 4, sizeof(expect) - 4);
    struct kafka_api_versions_response d;
    cr_assert_eq(kafka_api_versions_response_decode(&r, 3, &d, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);
    cr_assert_eq(d.finalized_features_epoch, 5);
    cr_assert_eq(d.throttle_time_ms, 100);
    cr_assert_eq(d.supported_features_count, 0);
}

Test(wire_bytes, response_header_v1, .init = setup)
{
    static const uint8_t expect[] = { 0x7f, 0xff, 0xff, 0xff, 0x00 };
    struct kafka_response_header h = { INT32_MAX };
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(kafka_response_header_encode(&w, 1, &h), 0);
    ASSERT_BYTES(&w, expect);
}

Test(wire_bytes, metadata_v1_request, .init = setup)
{
    static const uint8_t one_topic[] = {
        0x00, 0x00, 0x00, 0x01,    /* topics: int32 count 1 */
        0x00, 0x02, 't', '1',      /* name "t1" */
    };
    static const uint8_t all_topics[] = { 0xff, 0xff, 0xff, 0xff }; /* null: all topics */
    struct kafka_metadata_request m;
    struct kafka_reader r;
    kafka_reader_init(&r, one_topic, sizeof(one_topic));
    cr_assert_eq(kafka_metadata_request_decode(&r, 1, &m, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);
    cr_assert_eq(m.topics_count, 1);
    cr_assert(kafka_str_equals_cstr(m.topics[0].name, "t1"));
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    kafka_metadata_request_encode(&w, 1, &m);
    ASSERT_BYTES(&w, one_topic);

    kafka_reader_init(&r, all_topics, sizeof(all_topics));
    cr_assert_eq(kafka_metadata_request_decode(&r, 1, &m, &arena), 0);
    cr_assert_eq(m.topics_count, -1);
    kafka_writer_init(&w, out, sizeof(out));
    kafka_metadata_request_encode(&w, 1, &m);
    ASSERT_BYTES(&w, all_topics);
    /* v0 has no null topic list */
    kafka_reader_init(&r, all_topics, sizeof(all_topics));
    cr_assert_eq(kafka_metadata_request_decode(&r, 0, &m, &arena), KAFKA_ERR_NULL);
}

Test(wire_bytes, metadata_v9_request, .init = setup)
{
    static const uint8_t expect[] = {
        0x02,                 /* topics: compact count 1 + 1 */
        0x03, 't', '1',       /* name: compact "t1" */
        0x00,                 /* topic tagged fields */
        0x01,                 /* allow_auto_topic_creation true */
        0x00,                 /* include_cluster_authorized_operations (v8-10) */
        0x01,                 /* include_topic_authorized_operations */
        0x00,                 /* tagged fields */
    };
    struct kafka_metadata_request_metadata_request_topic topic;
    memset(&topic, 0, sizeof(topic));
    topic.name = kafka_str_from_cstr("t1");
    struct kafka_metadata_request m;
    kafka_metadata_request_init(&m, 9);
    cr_assert(m.allow_auto_topic_creation); /* JSON default true */
    m.topics = &topic;
    m.topics_count = 1;
    m.include_topic_authorized_operations = true;
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(kafka_metadata_request_encode(&w, 9, &m), 0);
    ASSERT_BYTES(&w, expect);

    struct kafka_reader r;
    kafka_reader_init(&r, expect, sizeof(expect));
    struct kafka_metadata_request d;
    cr_assert_eq(kafka_metadata_request_decode(&r, 9, &d, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);
    cr_assert(d.allow_auto_topic_creation && d.include_topic_authorized_operations);
    cr_assert(!d.include_cluster_authorized_operations);
    cr_assert(kafka_str_equals_cstr(d.topics[0].name, "t1"));
}

Test(wire_bytes, varints)
{
    struct { int32_t v; uint8_t enc[5]; size_t n; } cases[] = {
        { 0, { 0x00 }, 1 }, { -1, { 0x01 }, 1 }, { 1, { 0x02 }, 1 }, { 63, { 0x7e }, 1 },
        { -64, { 0x7f }, 1 }, { 64, { 0x80, 0x01 }, 2 },
        { INT32_MAX, { 0xfe, 0xff, 0xff, 0xff, 0x0f }, 5 },
        { INT32_MIN, { 0xff, 0xff, 0xff, 0xff, 0x0f }, 5 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kafka_writer w;
        kafka_writer_init(&w, out, sizeof(out));
        kafka_write_varint(&w, cases[i].v);
        cr_assert_eq(w.len_bytes, cases[i].n);
        cr_assert(memcmp(out, cases[i].enc, cases[i].n) == 0, "varint %d", cases[i].v);
        struct kafka_reader r;
        kafka_reader_init(&r, cases[i].enc, cases[i].n);
        cr_assert_eq(kafka_read_varint(&r), cases[i].v);
        cr_assert_eq(r.err, 0);
    }
    static const uint8_t u300[] = { 0xac, 0x02 };
    struct kafka_reader r;
    kafka_reader_init(&r, u300, 2);
    cr_assert_eq(kafka_read_uvarint(&r), 300);
    int64_t longs[] = { 0, -1, INT64_MAX, INT64_MIN, 1234567890123LL };
    for (size_t i = 0; i < 5; i++) {
        struct kafka_writer w;
        kafka_writer_init(&w, out, sizeof(out));
        kafka_write_varlong(&w, longs[i]);
        kafka_reader_init(&r, out, w.len_bytes);
        cr_assert_eq(kafka_read_varlong(&r), longs[i]);
        cr_assert_eq(kafka_reader_remaining(&r), 0);
    }
}

/* ---- bad input -------------------------------------------------------------------------- */

typedef int (*fill_fn)(int16_t, int16_t, void *, struct kafka_arena *, uint32_t *);
typedef int (*encode_fn)(int16_t, int16_t, struct kafka_writer *, const void *);
typedef int (*decode_fn)(int16_t, int16_t, struct kafka_reader *, struct kafka_arena *, void *);

static void truncate_everywhere(int16_t api_key, int16_t version, uint32_t seed, fill_fn fill,
    encode_fn encode, decode_fn decode)
{
    static union {
        union kafka_request_any req;
        union kafka_response_any resp;
    } m, d;
    static uint8_t fill_mem[256 * 1024];
    static uint8_t copy[64 * 1024];
    struct kafka_arena fa;
    kafka_arena_init(&fa, fill_mem, sizeof(fill_mem));
    cr_assert_eq(fill(api_key, version, &m, &fa, &seed), 0);
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(encode(api_key, version, &w, &m), 0);
    size_t full = w.len_bytes;
    for (size_t n = 0; n < full; n++) {
        /* a separate heap-less copy of exactly n bytes, so ASan would see an overread */
        memcpy(copy + sizeof(copy) - n, out, n);
        struct kafka_reader r;
        kafka_reader_init(&r, copy + sizeof(copy) - n, n);
        kafka_arena_reset(&arena);
        int rc = decode(api_key, version, &r, &arena, &d);
        cr_assert_neq(rc, 0, "api %d v%d: prefix of %zu/%zu bytes decoded", api_key, version,
            n, full);
    }
    struct kafka_reader r;
    kafka_reader_init(&r, out, full);
    cr_assert_eq(decode(api_key, version, &r, &arena, &d), 0);
}

Test(wire_bad, truncated_at_every_byte, .init = setup)
{
    const struct kafka_api_info *t = kafka_api_table();
    for (int i = 0; i < KAFKA_API_COUNT; i++)
        for (int16_t v = t[i].min_version; v <= t[i].max_version; v++)
            for (uint32_t seed = 77; seed < 80; seed++) {
                truncate_everywhere(t[i].api_key, v, seed + (uint32_t)v, kafka_request_fill,
                    kafka_request_encode, kafka_request_decode);
                truncate_everywhere(t[i].api_key, v, seed + (uint32_t)v, kafka_response_fill,
                    kafka_response_encode, kafka_response_decode);
            }
}

Test(wire_bad, string_lengths, .init = setup)
{
    static const uint8_t neg[] = { 0xff, 0xfe, 'a' };   /* int16 -2 */
    static const uint8_t past[] = { 0x00, 0x05, 'a' };  /* 5 > 1 byte left */
    static const uint8_t cpast[] = { 0xff, 0xff, 0x03 }; /* compact len 65534, no bytes */
    struct kafka_reader r;
    kafka_reader_init(&r, neg, sizeof(neg));
    kafka_read_string(&r, false);
    cr_assert_eq(r.err, KAFKA_ERR_LENGTH);
    kafka_reader_init(&r, past, sizeof(past));
    kafka_read_string(&r, false);
    cr_assert_eq(r.err, KAFKA_ERR_TRUNCATED);
    kafka_reader_init(&r, cpast, sizeof(cpast));
    kafka_read_string(&r, true);
    cr_assert_neq(r.err, 0);
    /* bytes: int32 -5 and INT32_MAX */
    static const uint8_t bneg[] = { 0xff, 0xff, 0xff, 0xfb };
    static const uint8_t bbig[] = { 0x7f, 0xff, 0xff, 0xff, 0x00 };
    kafka_reader_init(&r, bneg, sizeof(bneg));
    kafka_read_bytes(&r, false);
    cr_assert_eq(r.err, KAFKA_ERR_LENGTH);
    kafka_reader_init(&r, bbig, sizeof(bbig));
    kafka_read_bytes(&r, false);
    cr_assert_eq(r.err, KAFKA_ERR_TRUNCATED);
    /* sticky: the first error stays, later reads return zero values */
    cr_assert_eq(kafka_read_int32(&r), 0);
    cr_assert_eq(r.err, KAFKA_ERR_TRUNCATED);
}

Test(wire_bad, array_counts, .init = setup)
{
    /* Metadata v1 request with topics count 2^31-1 and a few bytes: must fail before any
     * arena allocation */
    static const uint8_t huge[] = { 0x7f, 0xff, 0xff, 0xff, 0x00, 0x01, 'a' };
    static const uint8_t neg[] = { 0xff, 0xff, 0xff, 0xfe };
    static const uint8_t chuge[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00 }; /* compact 2^32-2 */
    static const uint8_t cbig[] = { 0x80, 0x80, 0x04, 0x02, 'a', 0x00 };   /* compact 65535 */
    struct kafka_metadata_request m;
    struct kafka_reader r;
    kafka_reader_init(&r, huge, sizeof(huge));
    cr_assert_eq(kafka_metadata_request_decode(&r, 1, &m, &arena), KAFKA_ERR_LENGTH);
    cr_assert_eq(arena.used_bytes, 0);
    kafka_reader_init(&r, neg, sizeof(neg));
    cr_assert_eq(kafka_metadata_request_decode(&r, 1, &m, &arena), KAFKA_ERR_LENGTH);
    kafka_reader_init(&r, chuge, sizeof(chuge));
    cr_assert_eq(kafka_metadata_request_decode(&r, 9, &m, &arena), KAFKA_ERR_LENGTH);
    kafka_reader_init(&r, cbig, sizeof(cbig));
    cr_assert_eq(kafka_metadata_request_decode(&r, 9, &m, &arena), KAFKA_ERR_LENGTH);
    cr_assert_eq(arena.used_bytes, 0);
    /* struct arrays: the count is checked against the element's minimum wire size (a
     * Produce v9 partition is at least 6 bytes: index, compact records, tag section) */
    static const uint8_t produce[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x75, 0x30, /* txn id null, acks 0, timeout */
        0x02, 0x02, 'a',                                /* 1 topic "a" */
        0x04,                                           /* 3 partitions ... */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 12 bytes */
    };
    static struct kafka_produce_request pr;
    kafka_arena_reset(&arena);
    kafka_reader_init(&r, produce, sizeof(produce));
    cr_assert_eq(kafka_produce_request_decode(&r, 9, &pr, &arena), KAFKA_ERR_LENGTH);
    /* int32 arrays: count * 4 must fit in what is left */
    static const uint8_t ints[] = { 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00 };
    kafka_reader_init(&r, ints, sizeof(ints));
    cr_assert_eq(kafka_read_array_len(&r, false, 4), 0);
    cr_assert_eq(r.err, KAFKA_ERR_LENGTH);
}

Test(wire_bad, varint_overflow)
{
    static const uint8_t six[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
    static const uint8_t eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x01 };
    static const uint8_t unfinished[] = { 0x80, 0x80 };
    struct kafka_reader r;
    kafka_reader_init(&r, six, sizeof(six));
    kafka_read_uvarint(&r);
    cr_assert_eq(r.err, KAFKA_ERR_VARINT);
    kafka_reader_init(&r, six, sizeof(six));
    kafka_read_varint(&r);
    cr_assert_eq(r.err, KAFKA_ERR_VARINT);
    kafka_reader_init(&r, eleven, sizeof(eleven));
    kafka_read_varlong(&r);
    cr_assert_eq(r.err, KAFKA_ERR_VARINT);
    kafka_reader_init(&r, eleven, 10); /* ten bytes, the last still says "more" */
    kafka_read_varlong(&r);
    cr_assert_eq(r.err, KAFKA_ERR_VARINT);
    kafka_reader_init(&r, unfinished, sizeof(unfinished));
    kafka_read_uvarint(&r);
    cr_assert_eq(r.err, KAFKA_ERR_TRUNCATED);
}

Test(wire_bad, unknown_tags_skipped, .init = setup)
{
    /* ApiVersions v3 request with an unknown tag 9 (3 bytes) and tag 200 (0 bytes) */
    static const uint8_t body[] = {
        0x02, 'x', 0x02, 'y',
        0x02,                      /* two tagged fields */
        0x09, 0x03, 0xaa, 0xbb, 0xcc,
        0xc8, 0x01, 0x00,          /* tag 200 as a two-byte varint, size 0 */
    };
    struct kafka_api_versions_request m;
    struct kafka_reader r;
    kafka_reader_init(&r, body, sizeof(body));
    cr_assert_eq(kafka_api_versions_request_decode(&r, 3, &m, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);
    cr_assert(kafka_str_equals_cstr(m.client_software_name, "x"));
    cr_assert(kafka_str_equals_cstr(m.client_software_version, "y"));

    /* a known tag among unknown ones, out of order: ApiVersions v3 response */
    static const uint8_t resp[] = {
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x03,
        0x05, 0x01, 0x00,                      /* unknown tag 5 */
        0x03, 0x01, 0x01,                      /* tag 3: zk_migration_ready = true */
        0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 9,    /* tag 1: finalized epoch 9 */
    };
    struct kafka_api_versions_response d;
    kafka_reader_init(&r, resp, sizeof(resp));
    cr_assert_eq(kafka_api_versions_response_decode(&r, 3, &d, &arena), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0);
    cr_assert(d.zk_migration_ready);
    cr_assert_eq(d.finalized_features_epoch, 9);
}

Test(wire_bad, tag_body_shorter_than_field, .init = setup)
{
    /* ApiVersions v3 response, tag 1 (int64 FinalizedFeaturesEpoch) with a 2-byte body */
    static const uint8_t resp[] = {
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x01, 0x02, 0x00, 0x05,
    };
    /* tag 0 (SupportedFeatures array) whose body says 3 entries but holds one byte */
    static const uint8_t resp2[] = {
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x04,
    };
    struct kafka_api_versions_response d;
    struct kafka_reader r;
    kafka_reader_init(&r, resp, sizeof(resp));
    cr_assert_eq(kafka_api_versions_response_decode(&r, 3, &d, &arena), KAFKA_ERR_TRUNCATED);
    cr_assert_eq(r.err, KAFKA_ERR_TRUNCATED);
    kafka_reader_init(&r, resp2, sizeof(resp2));
    cr_assert_neq(kafka_api_versions_response_decode(&r, 3, &d, &arena), 0);
    cr_assert_neq(r.err, 0);
}

Test(wire_bad, tag_past_end, .init = setup)
{
    static const uint8_t body[] = { 0x02, 'x', 0x02, 'y', 0x01, 0x09, 0x10, 0xaa };
    static const uint8_t many[] = { 0x02, 'x', 0x02, 'y', 0xff, 0xff, 0x03, 0x00 };
    struct kafka_api_versions_request m;
    struct kafka_reader r;
    kafka_reader_init(&r, body, sizeof(body));
    cr_assert_eq(kafka_api_versions_request_decode(&r, 3, &m, &arena), KAFKA_ERR_TRUNCATED);
    kafka_reader_init(&r, many, sizeof(many));
    cr_assert_eq(kafka_api_versions_request_decode(&r, 3, &m, &arena), KAFKA_ERR_LENGTH);
}

Test(wire_bad, arena_exhausted)
{
    /* Metadata v1 request with 50 one-letter topics; an arena of 64 bytes cannot hold them */
    static uint8_t body[4 + 50 * 3];
    body[3] = 50;
    for (int i = 0; i < 50; i++) {
        body[4 + i * 3 + 1] = 1;
        body[4 + i * 3 + 2] = (uint8_t)('a' + i % 26);
    }
    static uint8_t small[64];
    struct kafka_arena a;
    kafka_arena_init(&a, small, sizeof(small));
    struct kafka_metadata_request m;
    struct kafka_reader r;
    kafka_reader_init(&r, body, sizeof(body));
    cr_assert_eq(kafka_metadata_request_decode(&r, 1, &m, &a), KAFKA_ERR_ARENA);
    kafka_arena_init(&a, arena_mem, sizeof(arena_mem));
    kafka_reader_init(&r, body, sizeof(body));
    cr_assert_eq(kafka_metadata_request_decode(&r, 1, &m, &a), 0);
    cr_assert_eq(m.topics_count, 50);
    cr_assert(kafka_str_equals_cstr(m.topics[49].name, "x"));
    /* alloc overflow */
    cr_assert_null(kafka_arena_alloc(&a, SIZE_MAX / 2, 4, 4));
}

Test(wire_bad, writer_too_small)
{
    static struct kafka_produce_request m;
    static uint8_t fill_mem[64 * 1024];
    struct kafka_arena fa;
    kafka_arena_init(&fa, fill_mem, sizeof(fill_mem));
    uint32_t seed = 5;
    kafka_produce_request_fill(&m, 9, &fa, &seed);
    struct kafka_writer w;
    kafka_writer_init_sizer(&w);
    cr_assert_eq(kafka_produce_request_encode(&w, 9, &m), 0);
    size_t need = kafka_writer_size(&w);
    for (size_t cap = 0; cap < need; cap++) {
        kafka_writer_init(&w, out, cap);
        cr_assert_eq(kafka_produce_request_encode(&w, 9, &m), KAFKA_ERR_NO_SPACE);
        cr_assert_leq(w.len_bytes, cap);
    }
    kafka_writer_init(&w, out, need);
    cr_assert_eq(kafka_produce_request_encode(&w, 9, &m), 0);
}

Test(wire_bad, iov_full_and_zero_copy)
{
    /* Fetch v12 response, 3 partitions with records: 3 record iovecs + 4 inline pieces */
    static uint8_t batch[3][100];
    struct kafka_fetch_response_partition_data parts[3];
    for (int i = 0; i < 3; i++) {
        memset(batch[i], 'a' + i, sizeof(batch[i]));
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].partition_index = i;
        parts[i].records = (struct kafka_bytes){ batch[i], sizeof(batch[i]) };
        parts[i].diverging_epoch.epoch = -1;
        parts[i].diverging_epoch.end_offset = -1;
        parts[i].current_leader.leader_id = -1;
        parts[i].current_leader.leader_epoch = -1;
        parts[i].snapshot_id.end_offset = -1;
        parts[i].snapshot_id.epoch = -1;
        parts[i].preferred_read_replica = -1;
    }
    struct kafka_fetch_response_fetchable_topic_response topic;
    memset(&topic, 0, sizeof(topic));
    topic.topic = kafka_str_from_cstr("t");
    topic.partitions = parts;
    topic.partitions_count = 3;
    struct kafka_fetch_response m;
    kafka_fetch_response_init(&m, 12);
    m.responses = &topic;
    m.responses_count = 1;

    struct iovec iov[7];
    struct kafka_writer w;
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 6);
    kafka_fetch_response_encode(&w, 12, &m);
    cr_assert_eq(kafka_writer_finish(&w), KAFKA_ERR_IOV_FULL);
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 7);
    cr_assert_eq(kafka_fetch_response_encode(&w, 12, &m), 0);
    cr_assert_eq(kafka_writer_finish(&w), 7);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(iov[1 + 2 * i].iov_base, batch[i]); /* referenced, not copied */
        cr_assert_eq(iov[1 + 2 * i].iov_len, 100);
    }
    cr_assert_eq(w.external_bytes, 300);
    /* the copy mode encoding is the concatenation */
    static uint8_t flat[4096];
    struct kafka_writer fw;
    kafka_writer_init(&fw, flat, sizeof(flat));
    cr_assert_eq(kafka_fetch_response_encode(&fw, 12, &m), 0);
    cr_assert_eq(fw.len_bytes, kafka_writer_size(&w));
    size_t off = 0;
    for (int i = 0; i < 7; i++) {
        cr_assert(memcmp(flat + off, iov[i].iov_base, iov[i].iov_len) == 0);
        off += iov[i].iov_len;
    }
}

Test(wire_bad, encode_null_where_not_allowed)
{
    struct kafka_metadata_request m;
    kafka_metadata_request_init(&m, 0);
    m.topics_count = -1;
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(kafka_metadata_request_encode(&w, 0, &m), KAFKA_ERR_NULL);
    m.topics_count = 2; /* items missing: an error, not a crash */
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(kafka_metadata_request_encode(&w, 0, &m), KAFKA_ERR_LENGTH);
    struct kafka_request_header h = { 3, 0, 1, { NULL, -1 } };
    kafka_writer_init(&w, out, sizeof(out));
    cr_assert_eq(kafka_request_header_encode(&w, 1, &h), 0); /* client id nullable */
    struct kafka_str too_long = { "x", KAFKA_STRING_MAX_BYTES + 1 };
    kafka_writer_init(&w, out, sizeof(out));
    kafka_write_string(&w, too_long, false);
    cr_assert_eq(w.err, KAFKA_ERR_LENGTH);
}
