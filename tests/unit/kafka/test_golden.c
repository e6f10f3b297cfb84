/* test_golden.c: request frames captured from real clients (kcat/librdkafka, kafka-python,
 * kafkajs) in tests/data/golden. For each frame listed in MANIFEST (path in the environment
 * variable KAFKA_GOLDEN_MANIFEST, set by meson): decode the request header and body, check
 * the header agrees with the manifest and every byte is consumed, then re-encode header and
 * body and require the identical bytes. A missing or empty manifest fails the test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/kafka/kafka_msgs.h"

#define FRAME_MAX_BYTES (4 * 1024 * 1024)
#define PATH_MAX_BYTES 4096

static uint8_t frame[FRAME_MAX_BYTES], again[FRAME_MAX_BYTES];
static uint8_t arena_mem[8 * 1024 * 1024];

static size_t read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    size_t n = fread(frame, 1, sizeof(frame), f);
    cr_assert(feof(f), "%s larger than %d bytes", path, FRAME_MAX_BYTES);
    fclose(f);
    return n;
}

static void check_frame(const char *path, int16_t api_key, int16_t api_version)
{
    static union kafka_request_any msg;
    size_t size_bytes = read_file(path);
    int hv = kafka_request_header_version(api_key, api_version);
    cr_assert_geq(hv, 0, "%s: api %d v%d not implemented", path, api_key, api_version);

    struct kafka_reader r;
    kafka_reader_init(&r, frame, size_bytes);
    struct kafka_request_header h;
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
    cr_assert_eq(kafka_request_header_decode(&r, (int16_t)hv, &h, &arena), 0, "%s: header", path);
    cr_assert_eq(h.request_api_key, api_key, "%s: header api key", path);
    cr_assert_eq(h.request_api_version, api_version, "%s: header version", path);
    int rc = kafka_request_decode(api_key, api_version, &r, &arena, &msg);
    cr_assert_eq(rc, 0, "%s: body: %s", path, kafka_err_str(rc));
    cr_assert_eq(kafka_reader_remaining(&r), 0, "%s: %zu bytes not consumed", path,
        kafka_reader_remaining(&r));

    struct kafka_writer w;
    kafka_writer_init(&w, again, sizeof(again));
    cr_assert_eq(kafka_request_header_encode(&w, (int16_t)hv, &h), 0);
    cr_assert_eq(kafka_request_encode(api_key, api_version, &w, &msg), 0);
    cr_assert_eq(w.len_bytes, size_bytes, "%s: re-encoded %zu bytes, frame has %zu", path,
        w.len_bytes, size_bytes);
    for (size_t i = 0; i < size_bytes; i++)
        cr_assert_eq(again[i], frame[i], "%s: re-encoding differs at byte %zu", path, i);
}

Test(golden, real_client_frames)
{
    const char *manifest = getenv("KAFKA_GOLDEN_MANIFEST");
    cr_assert_not_null(manifest, "KAFKA_GOLDEN_MANIFEST not set");
    FILE *f = fopen(manifest, "r");
    cr_assert_not_null(f, "open %s: %s", manifest, strerror(errno));
    char dir[PATH_MAX_BYTES / 2];
    snprintf(dir, sizeof(dir), "%s", manifest);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");

    char line[1024];
    int frames = 0;
    int clients_seen = 0; /* bit per client family */
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[512], client[64];
        int key, version;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        cr_assert_eq(sscanf(line, "%511s %d %d %63s", name, &key, &version, client), 4,
            "bad manifest line: %s", line);
        char path[PATH_MAX_BYTES];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        check_frame(path, (int16_t)key, (int16_t)version);
        frames++;
        if (strstr(client, "kcat") || strstr(client, "rdkafka"))
            clients_seen |= 1;
        else if (strstr(client, "python"))
            clients_seen |= 2;
        else if (strstr(client, "kafkajs"))
            clients_seen |= 4;
    }
    fclose(f);
    cr_assert_gt(frames, 0, "manifest %s lists no frames", manifest);
    cr_log_info("golden: %d frames, client families mask %d", frames, clients_seen);
}
