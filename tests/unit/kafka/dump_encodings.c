/* dump_encodings.c: print, for every implemented API and version, request and response,
 * a few filled messages encoded by the C codec, one a line:
 *     request|response <api_key> <version> <hex bytes>
 * check_crossimpl.py decodes them with an independent implementation. */
#include <stdio.h>

#include "dataplane/kafka/kafka_msgs.h"
#include "dataplane/kafka/kafka_msgs_fill.h"

#define SEEDS 4

static uint8_t out[256 * 1024];
static uint8_t arena_mem[1024 * 1024];
static union {
    union kafka_request_any req;
    union kafka_response_any resp;
} msg;

int main(void)
{
    const struct kafka_api_info *t = kafka_api_table();
    for (int i = 0; i < KAFKA_API_COUNT; i++) {
        for (int16_t v = t[i].min_version; v <= t[i].max_version; v++) {
            for (int kind = 0; kind < 2; kind++) {
                for (uint32_t seed = 1; seed <= SEEDS; seed++) {
                    struct kafka_arena arena;
                    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
                    uint32_t s = seed * 7919u;
                    struct kafka_writer w;
                    kafka_writer_init(&w, out, sizeof(out));
                    int rc;
                    if (kind == 0) {
                        kafka_request_fill(t[i].api_key, v, &msg, &arena, &s);
                        rc = kafka_request_encode(t[i].api_key, v, &w, &msg);
                    } else {
                        kafka_response_fill(t[i].api_key, v, &msg, &arena, &s);
                        rc = kafka_response_encode(t[i].api_key, v, &w, &msg);
                    }
                    if (rc != 0) {
                        fprintf(stderr, "%s v%d: encode: %s\n", t[i].name, v, kafka_err_str(rc));
                        return 1;
                    }
                    printf("%s %d %d ", kind == 0 ? "request" : "response", t[i].api_key, v);
                    for (size_t b = 0; b < w.len_bytes; b++)
                        printf("%02x", out[b]);
                    printf("\n");
                }
            }
        }
    }
    return 0;
}
