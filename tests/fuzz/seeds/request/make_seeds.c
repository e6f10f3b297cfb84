/* make_seeds.c: writes fuzz_request seeds: for every implemented API and version, one
 * request and one response filled by the generated test filler (seed 1), framed as the
 * fuzz target expects: int16 api key, int16 version (top bit set for a response), header,
 * body.
 * Build and run (from the repo root, with a build dir that has the codec):
 *   cc -std=c11 -I. -o /tmp/make_seeds tests/fuzz/seeds/request/make_seeds.c \
 *      dataplane/kafka/wire.c dataplane/kafka/kafka_msgs*.c dataplane/kafka/kafka_fill_util.c
 *   (cd tests/fuzz/seeds/request && /tmp/make_seeds)
 * Golden seeds (golden-*) are tests/data/golden frames with the same 4-byte prefix. */
#include <stdio.h>
#include <stdlib.h>

#include "dataplane/kafka/kafka_msgs.h"
#include "dataplane/kafka/kafka_msgs_fill.h"

static uint8_t out[256 * 1024];
static uint8_t arena_mem[256 * 1024];
static union {
    union kafka_request_any req;
    union kafka_response_any resp;
} msg;

static int write_seed(const struct kafka_api_info *api, int16_t v, int is_response)
{
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
    uint32_t seed = 1;
    struct kafka_writer w;
    kafka_writer_init(&w, out, sizeof(out));
    kafka_write_int16(&w, api->api_key);
    kafka_write_uint16(&w, (uint16_t)((uint16_t)v | (is_response ? 0x8000u : 0u)));
    int rc;
    if (is_response) {
        struct kafka_response_header h = { 1000 + v };
        kafka_response_fill(api->api_key, v, &msg, &arena, &seed);
        kafka_response_header_encode(&w,
            (int16_t)kafka_response_header_version(api->api_key, v), &h);
        rc = kafka_response_encode(api->api_key, v, &w, &msg);
    } else {
        struct kafka_request_header h = { api->api_key, v, 1000 + v,
            kafka_str_from_cstr("seed-client") };
        kafka_request_fill(api->api_key, v, &msg, &arena, &seed);
        kafka_request_header_encode(&w,
            (int16_t)kafka_request_header_version(api->api_key, v), &h);
        rc = kafka_request_encode(api->api_key, v, &w, &msg);
    }
    if (rc != 0) {
        fprintf(stderr, "%s v%d: encode failed\n", api->name, v);
        return 1;
    }
    char name[128];
    snprintf(name, sizeof(name), "fill-%s-%s-v%d", api->name,
        is_response ? "response" : "request", v);
    FILE *f = fopen(name, "wb");
    if (f == NULL || fwrite(out, 1, w.len_bytes, f) != w.len_bytes) {
        perror(name);
        return 1;
    }
    fclose(f);
    return 0;
}

int main(void)
{
    const struct kafka_api_info *t = kafka_api_table();
    for (int i = 0; i < KAFKA_API_COUNT; i++)
        for (int16_t v = t[i].min_version; v <= t[i].max_version; v++)
            if (write_seed(&t[i], v, 0) != 0 || write_seed(&t[i], v, 1) != 0)
                return 1;
    return 0;
}
