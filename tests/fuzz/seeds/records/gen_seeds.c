/* gen_seeds.c - writes the fuzz_records seed corpus into the current directory:
 * a v2 batch per codec (with headers, null keys/values), a control batch, and a
 * legacy v0/v1 set per codec. Build and run from this folder:
 *   cc -I../../../.. gen_seeds.c $(ls ../../../../storage/record/[a-z]*.c) \
 *      -lisal -lzstd -llz4 -lsnappy -o /tmp/gen_seeds && /tmp/gen_seeds */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record/legacy.h"
#include "storage/record/records.h"

static uint8_t buf[1 << 16], scratch[1 << 16];

static void save(const char *name, const uint8_t *data, size_t len) {
    FILE *f = fopen(name, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        perror(name);
        exit(1);
    }
    fclose(f);
}

int main(void) {
    struct record_codecs codecs;
    if (record_codecs_init(&codecs) != RECORD_OK)
        return 1;
    struct record_header_in hdr = {.key = (const uint8_t *)"trace", .key_len = 5,
                                   .value = (const uint8_t *)"abc", .value_len = 3};
    struct record_in recs[4] = {
        {.key = (const uint8_t *)"k0", .key_len = 2, .value = (const uint8_t *)"{\"a\":1}",
         .value_len = 7, .timestamp_ms = 1700000000000LL, .headers = &hdr, .header_count = 1},
        {.key_len = -1, .value = (const uint8_t *)"{\"a\":2}", .value_len = 7,
         .timestamp_ms = 1700000000005LL},
        {.key = (const uint8_t *)"k2", .key_len = 2, .value_len = -1,
         .timestamp_ms = 1700000000001LL},
        {.key = (const uint8_t *)"k3", .key_len = 2, .value = (const uint8_t *)"{\"a\":4}",
         .value_len = 7, .timestamp_ms = 1700000000009LL},
    };
    char name[64];
    size_t len;
    for (int c = 0; c < RECORD_CODEC_COUNT; c++) {
        struct record_batch_spec spec = record_batch_spec_default();
        spec.codec = (enum record_codec)c;
        spec.producer_id = 1;
        spec.producer_epoch = 0;
        spec.base_sequence = 0;
        if (record_batch_write(&codecs, &spec, recs, 4, buf, sizeof(buf), scratch,
                               sizeof(scratch), &len) != RECORD_OK)
            return 1;
        snprintf(name, sizeof(name), "v2_%s.bin", record_codec_name(spec.codec));
        save(name, buf, len);
        struct legacy_message_in msgs[3];
        for (int i = 0; i < 3; i++)
            msgs[i] = (struct legacy_message_in){
                .offset = i, .timestamp_ms = recs[i].timestamp_ms, .key = recs[i].key,
                .key_len = recs[i].key_len, .value = recs[i].value, .value_len = recs[i].value_len};
        for (int magic = 0; magic <= 1 && spec.codec != RECORD_CODEC_ZSTD; magic++) {
            if (legacy_set_write(&codecs, (int8_t)magic, spec.codec, msgs, 3, buf, sizeof(buf),
                                 scratch, sizeof(scratch), &len) != RECORD_OK)
                return 1;
            snprintf(name, sizeof(name), "v%d_%s.bin", magic, record_codec_name(spec.codec));
            save(name, buf, len);
        }
    }
    uint8_t key[RECORD_CONTROL_KEY_BYTES], value[RECORD_CONTROL_VALUE_BYTES];
    record_control_key_write(key, RECORD_CONTROL_COMMIT);
    record_control_value_write(value, 3);
    struct record_in ctl = {.key = key, .key_len = 4, .value = value, .value_len = 6,
                            .timestamp_ms = 1700000000000LL};
    struct record_batch_spec spec = record_batch_spec_default();
    spec.control = spec.transactional = true;
    spec.producer_id = 5;
    spec.producer_epoch = 1;
    if (record_batch_write(&codecs, &spec, &ctl, 1, buf, sizeof(buf), NULL, 0, &len) != RECORD_OK)
        return 1;
    save("v2_control_commit.bin", buf, len);
    record_codecs_destroy(&codecs);
    return 0;
}
