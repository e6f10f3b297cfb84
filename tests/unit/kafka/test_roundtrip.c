/* test_roundtrip.c: every implemented API, every version, request and response:
 * fill with non-default values valid at that version (deterministic per seed), encode,
 * decode (must consume every byte), compare decoded fields with the originals, encode again
 * and compare bytes. Also: the sizer agrees with the real encoding, and the iovec (zero
 * copy) encoding concatenates to the same bytes as the copying one. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/kafka/kafka_msgs.h"
#include "dataplane/kafka/kafka_msgs_fill.h"

#define BUF_BYTES (256 * 1024)
#define ARENA_BYTES (1024 * 1024)
#define SEEDS_PER_VERSION 12

static uint8_t buf_a[BUF_BYTES], buf_b[BUF_BYTES], buf_iov[BUF_BYTES];
static uint8_t arena_fill_mem[ARENA_BYTES], arena_dec_mem[ARENA_BYTES];

typedef int (*encode_fn)(int16_t, int16_t, struct kafka_writer *, const void *);
typedef int (*decode_fn)(int16_t, int16_t, struct kafka_reader *, struct kafka_arena *, void *);
typedef int (*fill_fn)(int16_t, int16_t, void *, struct kafka_arena *, uint32_t *);
typedef bool (*equal_fn)(int16_t, const void *, const void *);

struct kind {
    const char *name;
    fill_fn fill;
    encode_fn encode;
    decode_fn decode;
    equal_fn equal;
};

static const struct kind kinds[2] = {
    { "request", kafka_request_fill, kafka_request_encode, kafka_request_decode,
      kafka_request_equal },
    { "response", kafka_response_fill, kafka_response_encode, kafka_response_decode,
      kafka_response_equal },
};

static size_t round_trip_one(const struct kind *k, const struct kafka_api_info *api,
    int16_t version, uint32_t seed)
{
    static union {
        union kafka_request_any req;
        union kafka_response_any resp;
    } orig, dec;
    struct kafka_arena fill_arena, dec_arena;
    kafka_arena_init(&fill_arena, arena_fill_mem, sizeof(arena_fill_mem));
    kafka_arena_init(&dec_arena, arena_dec_mem, sizeof(arena_dec_mem));
    uint32_t s = seed;
    cr_assert_eq(k->fill(api->api_key, version, &orig, &fill_arena, &s), 0);

    struct kafka_writer w;
    kafka_writer_init(&w, buf_a, sizeof(buf_a));
    int rc = k->encode(api->api_key, version, &w, &orig);
    cr_assert_eq(rc, 0, "%s %s v%d seed %u: encode: %s", api->name, k->name, version, seed,
        kafka_err_str(rc));
    size_t len_a = w.len_bytes;

    struct kafka_writer sizer;
    kafka_writer_init_sizer(&sizer);
    cr_assert_eq(k->encode(api->api_key, version, &sizer, &orig), 0);
    cr_assert_eq(kafka_writer_size(&sizer), len_a, "%s %s v%d: sizer disagrees", api->name,
        k->name, version);

    struct kafka_reader r;
    kafka_reader_init(&r, buf_a, len_a);
    rc = k->decode(api->api_key, version, &r, &dec_arena, &dec);
    cr_assert_eq(rc, 0, "%s %s v%d seed %u: decode: %s", api->name, k->name, version, seed,
        kafka_err_str(rc));
    cr_assert_eq(kafka_reader_remaining(&r), 0, "%s %s v%d: %zu bytes left", api->name,
        k->name, version, kafka_reader_remaining(&r));
    cr_assert(k->equal(api->api_key, &orig, &dec), "%s %s v%d seed %u: decoded fields differ",
        api->name, k->name, version, seed);

    kafka_writer_init(&w, buf_b, sizeof(buf_b));
    cr_assert_eq(k->encode(api->api_key, version, &w, &dec), 0);
    cr_assert_eq(w.len_bytes, len_a);
    cr_assert(memcmp(buf_a, buf_b, len_a) == 0, "%s %s v%d seed %u: re-encode differs",
        api->name, k->name, version, seed);

    /* zero-copy mode: the iovecs, concatenated, are the same message */
    struct iovec iov[512];
    kafka_writer_init_iov(&w, buf_iov, sizeof(buf_iov), iov, 512);
    cr_assert_eq(k->encode(api->api_key, version, &w, &orig), 0);
    int n_iov = kafka_writer_finish(&w);
    cr_assert_geq(n_iov, 0);
    cr_assert_eq(kafka_writer_size(&w), len_a);
    size_t off = 0;
    for (int i = 0; i < n_iov; i++) {
        cr_assert_leq(off + iov[i].iov_len, len_a);
        cr_assert(memcmp(buf_a + off, iov[i].iov_base, iov[i].iov_len) == 0);
        off += iov[i].iov_len;
    }
    cr_assert_eq(off, len_a);
    return len_a;
}

Test(roundtrip, every_api_every_version)
{
    const struct kafka_api_info *table = kafka_api_table();
    size_t cases = 0, bytes = 0;
    for (int i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api_info *api = &table[i];
        for (int16_t v = api->min_version; v <= api->max_version; v++)
            for (int k = 0; k < 2; k++)
                for (uint32_t seed = 1; seed <= SEEDS_PER_VERSION; seed++) {
                    bytes += round_trip_one(&kinds[k], api, v, seed * 2654435761u);
                    cases++;
                }
    }
    cr_log_info("round trip: %zu cases, %zu bytes", cases, bytes);
    cr_assert_gt(cases, 1000);
}

/* The filler must actually produce non-default content: a filled message differs from a
 * freshly initialised one for at least one seed at every version (otherwise the round trip
 * above would prove little). */
Test(roundtrip, filler_sets_fields)
{
    static union kafka_request_any a, b;
    static uint8_t mem[ARENA_BYTES];
    const struct kafka_api_info *table = kafka_api_table();
    for (int i = 0; i < KAFKA_API_COUNT; i++) {
        const struct kafka_api_info *api = &table[i];
        for (int16_t v = api->min_version; v <= api->max_version; v++) {
            /* requests without any field at these versions (checked against the JSON) */
            bool differs = (api->api_key == KAFKA_API_LIST_GROUPS && v <= 3)
                || (api->api_key == KAFKA_API_API_VERSIONS && v <= 2);
            for (uint32_t seed = 1; seed <= 8 && !differs; seed++) {
                struct kafka_arena arena;
                kafka_arena_init(&arena, mem, sizeof(mem));
                uint32_t s = seed;
                kafka_request_fill(api->api_key, v, &a, &arena, &s);
                kafka_request_init(api->api_key, v, &b);
                differs = !kafka_request_equal(api->api_key, &a, &b);
            }
            cr_assert(differs, "%s v%d: filler left every field at its default", api->name, v);
        }
    }
}

/* Representative field-level checks on decoded values. */
Test(roundtrip, produce_v9_fields)
{
    static struct kafka_produce_request in, out;
    static uint8_t batch[64];
    memset(batch, 0xab, sizeof(batch));
    struct kafka_produce_request_partition_produce_data part = {
        .index = 7, .records = { batch, sizeof(batch) } };
    struct kafka_produce_request_topic_produce_data topic = {
        .name = kafka_str_from_cstr("orders"), .partition_data = &part,
        .partition_data_count = 1 };
    kafka_produce_request_init(&in, 9);
    in.acks = -1;
    in.timeout_ms = 30000;
    in.transactional_id = kafka_str_from_cstr(NULL);
    in.topic_data = &topic;
    in.topic_data_count = 1;

    struct kafka_writer w;
    kafka_writer_init(&w, buf_a, sizeof(buf_a));
    cr_assert_eq(kafka_produce_request_encode(&w, 9, &in), 0);
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_dec_mem, sizeof(arena_dec_mem));
    struct kafka_reader r;
    kafka_reader_init(&r, buf_a, w.len_bytes);
    cr_assert_eq(kafka_produce_request_decode(&r, 9, &out, &arena), 0);
    cr_assert_eq(out.acks, -1);
    cr_assert_eq(out.timeout_ms, 30000);
    cr_assert_eq(out.transactional_id.len, -1);
    cr_assert_eq(out.topic_data_count, 1);
    cr_assert(kafka_str_equals_cstr(out.topic_data[0].name, "orders"));
    cr_assert_eq(out.topic_data[0].partition_data_count, 1);
    cr_assert_eq(out.topic_data[0].partition_data[0].index, 7);
    cr_assert_eq(out.topic_data[0].partition_data[0].records.len, 64);
    /* records decode as a view into the input buffer, not a copy */
    const uint8_t *p = out.topic_data[0].partition_data[0].records.ptr;
    cr_assert(p >= buf_a && p + 64 <= buf_a + w.len_bytes);
    cr_assert(memcmp(p, batch, 64) == 0);
}

/* Encoding a non-default, non-ignorable field at a version that lacks it is an error. */
Test(roundtrip, non_ignorable_field_rejected)
{
    static struct kafka_metadata_request m;
    kafka_metadata_request_init(&m, 3);
    m.allow_auto_topic_creation = false; /* v4+, not ignorable; default true */
    struct kafka_writer w;
    kafka_writer_init(&w, buf_a, sizeof(buf_a));
    cr_assert_eq(kafka_metadata_request_encode(&w, 3, &m), KAFKA_ERR_UNSUPPORTED_FIELD);
    kafka_writer_init(&w, buf_a, sizeof(buf_a));
    cr_assert_eq(kafka_metadata_request_encode(&w, 4, &m), 0);
    /* ignorable fields are silently dropped */
    static struct kafka_api_versions_response avr;
    kafka_api_versions_response_init(&avr, 0);
    avr.throttle_time_ms = 100; /* v1+, ignorable */
    kafka_writer_init(&w, buf_a, sizeof(buf_a));
    cr_assert_eq(kafka_api_versions_response_encode(&w, 0, &avr), 0);
    cr_assert_eq(w.len_bytes, 2 + 4);
}

Test(roundtrip, version_out_of_range)
{
    static struct kafka_metadata_request m;
    kafka_metadata_request_init(&m, 0);
    struct kafka_writer w;
    kafka_writer_init(&w, buf_a, sizeof(buf_a));
    cr_assert_eq(kafka_metadata_request_encode(&w, 13, &m), KAFKA_ERR_VERSION);
    struct kafka_reader r;
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_dec_mem, 64);
    kafka_reader_init(&r, buf_a, 0);
    cr_assert_eq(kafka_metadata_request_decode(&r, -1, &m, &arena), KAFKA_ERR_VERSION);
    cr_assert_eq(kafka_request_decode(9999, 0, &r, &arena, &m), KAFKA_ERR_UNKNOWN_API);
}

Test(roundtrip, api_table)
{
    const struct kafka_api_info *api = kafka_api_lookup(KAFKA_API_API_VERSIONS);
    cr_assert_not_null(api);
    cr_assert_str_eq(api->name, "ApiVersions");
    cr_assert_eq(api->min_version, 0);
    cr_assert_geq(api->max_version, 3);
    cr_assert_eq(api->first_flexible_version, 3);
    cr_assert_eq(kafka_request_header_version(KAFKA_API_API_VERSIONS, 2), 1);
    cr_assert_eq(kafka_request_header_version(KAFKA_API_API_VERSIONS, 3), 2);
    cr_assert_eq(kafka_response_header_version(KAFKA_API_API_VERSIONS, 3), 0);
    cr_assert_eq(kafka_response_header_version(KAFKA_API_METADATA, 8), 0);
    cr_assert_eq(kafka_response_header_version(KAFKA_API_METADATA, 9), 1);
    cr_assert_eq(kafka_request_header_version(KAFKA_API_SASL_HANDSHAKE, 1), 1);
    cr_assert_eq(kafka_request_header_version(KAFKA_API_METADATA, 13), -1);
    cr_assert_null(kafka_api_lookup(4)); /* LeaderAndIsr: not implemented */
    const struct kafka_api_info *t = kafka_api_table();
    for (int i = 1; i < KAFKA_API_COUNT; i++)
        cr_assert_lt(t[i - 1].api_key, t[i].api_key);
    cr_assert_eq(kafka_api_lookup(KAFKA_API_FETCH)->max_version, 17);
}
