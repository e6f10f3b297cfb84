/* make_seeds.c: writes fuzz_request seeds: for every implemented API and version, one
 * request filled by the generated test filler (seed 1), framed as the fuzz target expects:
 * int16 api key, int16 version, request header, body.
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
static union kafka_request_any msg;

int main(void)
{
    const struct kafka_api_info *t = kafka_api_table();
    for (int i = 0; i < KAFKA_API_COUNT; i++) {
        for (int16_t v = t[i].min_version; v <= t[i].max_version; v++) {
            struct kafka_arena arena;
            kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
            uint32_t seed = 1;
            kafka_request_fill(t[i].api_key, v, &msg, &arena, &seed);
            struct kafka_request_header h = { t[i].api_key, v, 1000 + v,
                kafka_str_from_cstr("seed-client") };
            struct kafka_writer w;
            kafka_writer_init(&w, out, sizeof(out));
            kafka_write_int16(&w, t[i].api_key);
            kafka_write_int16(&w, v);
            kafka_request_header_encode(&w,
                (int16_t)kafka_request_header_version(t[i].api_key, v), &h);
            if (kafka_request_encode(t[i].api_key, v, &w, &msg) != 0) {
                fprintf(stderr, "%s v%d: encode failed\n", t[i].name, v);
                return 1;
            }
            char name[128];
            snprintf(name, sizeof(name), "fill-%s-v%d", t[i].name, v);
            FILE *f = fopen(name, "wb");
            if (f == NULL || fwrite(out, 1, w.len_bytes, f) != w.len_bytes) {
                perror(name);
                return 1;
            }
            fclose(f);
        }
    }
    return 0;
}
