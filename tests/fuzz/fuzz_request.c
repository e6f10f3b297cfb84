/* fuzz_request.c: libFuzzer target for the Kafka request codec.
 *
 * Input: 2 bytes api key, 2 bytes api version (big-endian; an unknown key or version is
 * folded into the implemented range), then a request frame without its size prefix:
 * request header + body. Decoding uses a bounded arena and must never crash or read out of
 * bounds. When decoding succeeds, re-encoding must succeed, and the re-encoded bytes must
 * decode again and re-encode to themselves (the codec's output is a fixed point). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dataplane/kafka/kafka_msgs.h"

#define ARENA_BYTES (1024 * 1024)
#define OUT_BYTES (2 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t arena_mem[ARENA_BYTES];
static uint8_t out1[OUT_BYTES], out2[OUT_BYTES];
static union kafka_request_any msg1, msg2;

static const struct kafka_api_info *pick_api(const uint8_t *data, int16_t *version)
{
    int16_t key = (int16_t)((data[0] << 8) | data[1]);
    int16_t v = (int16_t)((data[2] << 8) | data[3]);
    const struct kafka_api_info *api = kafka_api_lookup(key);
    if (api == NULL)
        api = &kafka_api_table()[(uint16_t)key % KAFKA_API_COUNT];
    if (v < api->min_version || v > api->max_version)
        v = (int16_t)(api->min_version +
            (uint16_t)v % (uint16_t)(api->max_version - api->min_version + 1));
    *version = v;
    return api;
}

/* Decode header + body; 0 when all of it parsed. */
static int decode(const struct kafka_api_info *api, int16_t version, const uint8_t *p,
    size_t n, struct kafka_request_header *h, void *msg, struct kafka_arena *arena)
{
    int hv = kafka_request_header_version(api->api_key, version);
    assert(hv >= 0);
    struct kafka_reader r;
    kafka_reader_init(&r, p, n);
    int rc = kafka_request_header_decode(&r, (int16_t)hv, h, arena);
    if (rc != 0)
        return rc;
    return kafka_request_decode(api->api_key, version, &r, arena, msg);
}

static size_t encode(const struct kafka_api_info *api, int16_t version,
    const struct kafka_request_header *h, const void *msg, uint8_t *out)
{
    int hv = kafka_request_header_version(api->api_key, version);
    struct kafka_writer w;
    kafka_writer_init(&w, out, OUT_BYTES);
    int rc = kafka_request_header_encode(&w, (int16_t)hv, h);
    if (rc == 0)
        rc = kafka_request_encode(api->api_key, version, &w, msg);
    if (rc != 0)
        __builtin_trap(); /* a decoded message must always encode */
    return w.len_bytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int16_t version;
    const struct kafka_api_info *api = pick_api(data, &version);
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
    struct kafka_request_header h1, h2;
    if (decode(api, version, data + 4, size - 4, &h1, &msg1, &arena) != 0)
        return 0;
    size_t n1 = encode(api, version, &h1, &msg1, out1);
    /* the re-encoding is canonical: it decodes and re-encodes to itself */
    struct kafka_arena arena2;
    kafka_arena_init(&arena2, arena_mem + arena.used_bytes, sizeof(arena_mem) - arena.used_bytes);
    if (decode(api, version, out1, n1, &h2, &msg2, &arena2) != 0)
        __builtin_trap();
    size_t n2 = encode(api, version, &h2, &msg2, out2);
    if (n2 != n1 || memcmp(out1, out2, n1) != 0)
        __builtin_trap();
    return 0;
}
