/* fuzz_request.c: libFuzzer target for the Kafka request (and response) codec.
 *
 * Input: 2 bytes api key, 2 bytes api version (big-endian), then a frame without its size
 * prefix: header + body. An unknown key or version is folded into the implemented range.
 * The version's top bit selects the response codec (response header + response body; the
 * broker's own clients -- loadgen, admin CLI -- decode responses from any broker); without
 * it the input is a request, as the broker receives it.
 * Decoding uses a bounded arena and must never crash or read out of bounds. When decoding
 * succeeds, re-encoding must succeed, and the re-encoded bytes must decode again and
 * re-encode to themselves (the codec's output is a fixed point). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dataplane/kafka/kafka_msgs.h"

#define ARENA_BYTES (1024 * 1024)
#define OUT_BYTES (2 * 1024 * 1024)
#define RESPONSE_FLAG 0x8000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t arena_mem[ARENA_BYTES];
static uint8_t out1[OUT_BYTES], out2[OUT_BYTES];
static union {
    union kafka_request_any req;
    union kafka_response_any resp;
} msg1, msg2;

struct target {
    const struct kafka_api_info *api;
    int16_t version;
    int16_t header_version;
    int is_response;
};

static struct target pick(const uint8_t *data)
{
    struct target t;
    int16_t key = (int16_t)((data[0] << 8) | data[1]);
    uint16_t raw = (uint16_t)((data[2] << 8) | data[3]);
    t.is_response = (raw & RESPONSE_FLAG) != 0;
    int16_t v = (int16_t)(raw & ~RESPONSE_FLAG);
    t.api = kafka_api_lookup(key);
    if (t.api == NULL)
        t.api = &kafka_api_table()[(uint16_t)key % KAFKA_API_COUNT];
    if (v < t.api->min_version || v > t.api->max_version)
        v = (int16_t)(t.api->min_version +
            (uint16_t)v % (uint16_t)(t.api->max_version - t.api->min_version + 1));
    t.version = v;
    t.header_version = (int16_t)(t.is_response
        ? kafka_response_header_version(t.api->api_key, v)
        : kafka_request_header_version(t.api->api_key, v));
    if (t.header_version < 0)
        __builtin_trap(); /* the table must cover every implemented version */
    return t;
}

/* Decode header + body; 0 when all of it parsed. */
static int decode(const struct target *t, const uint8_t *p, size_t n, void *header,
    void *msg, struct kafka_arena *arena)
{
    struct kafka_reader r;
    kafka_reader_init(&r, p, n);
    if (t->is_response) {
        int rc = kafka_response_header_decode(&r, t->header_version, header, arena);
        return rc != 0 ? rc
                       : kafka_response_decode(t->api->api_key, t->version, &r, arena, msg);
    }
    int rc = kafka_request_header_decode(&r, t->header_version, header, arena);
    return rc != 0 ? rc : kafka_request_decode(t->api->api_key, t->version, &r, arena, msg);
}

/* Encode header + body; a decoded message must always encode. */
static size_t encode(const struct target *t, const void *header, const void *msg,
    uint8_t *out)
{
    struct kafka_writer w;
    kafka_writer_init(&w, out, OUT_BYTES);
    int rc;
    if (t->is_response) {
        rc = kafka_response_header_encode(&w, t->header_version, header);
        if (rc == 0)
            rc = kafka_response_encode(t->api->api_key, t->version, &w, msg);
    } else {
        rc = kafka_request_header_encode(&w, t->header_version, header);
        if (rc == 0)
            rc = kafka_request_encode(t->api->api_key, t->version, &w, msg);
    }
    if (rc != 0)
        __builtin_trap();
    return w.len_bytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    struct target t = pick(data);
    union {
        struct kafka_request_header req;
        struct kafka_response_header resp;
    } h1, h2;
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
    if (decode(&t, data + 4, size - 4, &h1, &msg1, &arena) != 0)
        return 0;
    size_t n1 = encode(&t, &h1, &msg1, out1);
    /* msg1's arrays stay in the first part of the arena; decode again after them */
    struct kafka_arena arena2;
    kafka_arena_init(&arena2, arena_mem + arena.used_bytes, sizeof(arena_mem) - arena.used_bytes);
    if (decode(&t, out1, n1, &h2, &msg2, &arena2) != 0)
        __builtin_trap();
    size_t n2 = encode(&t, &h2, &msg2, out2);
    if (n2 != n1 || memcmp(out1, out2, n1) != 0)
        __builtin_trap();
    return 0;
}
