/* fuzz_records.c - libFuzzer target for the record layer.
 *
 * Every input is tried as: a RecordBatch v2 (validate contiguous and in three
 * fragments -- the two must agree --, then iterate with and without
 * the CRC check so the fuzzer can reach the record parser, walking headers and
 * control keys; a batch that reads cleanly is down-converted to a legacy set and
 * read back), a legacy MessageSet (iterate, convert to v2 and read the result
 * back), and a compressed payload for each codec. All buffers are fixed and
 * bounded; the codec contexts are made once. Any crash, sanitizer report or
 * assertion is a bug; error values are the expected outcome for junk. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "storage/record/legacy.h"
#include "storage/record/records.h"

#define FUZZ_LIMIT_BYTES (256u << 10)

static struct record_codecs codecs;
static uint8_t scratch[FUZZ_LIMIT_BYTES];
static uint8_t records_buf[FUZZ_LIMIT_BYTES];
static uint8_t out[FUZZ_LIMIT_BYTES];
static uint8_t v2[FUZZ_LIMIT_BYTES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t iterate_batch(const uint8_t *data, size_t size, unsigned flags) {
    struct record_iter it;
    if (record_iter_init(&it, data, size, &codecs, scratch, sizeof(scratch), flags) != RECORD_OK)
        return 0;
    struct record_view r;
    size_t n = 0;
    while (record_iter_next(&it, &r)) {
        const uint8_t *hp = r.headers;
        struct record_header_view h;
        int32_t headers = 0;
        while (record_header_next(&hp, r.headers_end, &h))
            headers++;
        if (headers != r.header_count)
            abort();
        if (it.header.attributes & RECORD_ATTR_CONTROL) {
            struct record_control ctl;
            (void)record_control_parse(&r, &ctl);
        }
        n++;
    }
    if (n > (size_t)it.header.record_count)
        abort();
    if (it.err == RECORD_OK && n != (size_t)it.header.record_count)
        abort();
    return n;
}

static void legacy(const uint8_t *data, size_t size) {
    struct legacy_iter it;
    legacy_iter_init(&it, data, size, &codecs, scratch, sizeof(scratch));
    struct legacy_message_view m;
    size_t n = 0;
    while (legacy_iter_next(&it, &m))
        n++;
    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    size_t v2_len;
    enum record_codec codec = (enum record_codec)(size % RECORD_CODEC_COUNT);
    if (legacy_set_to_batch(&codecs, data, size, codec, &bufs, v2, sizeof(v2), &v2_len) != RECORD_OK)
        return;
    /* a converted set must read back as a valid batch holding every message */
    if (it.err != RECORD_OK || iterate_batch(v2, v2_len, RECORD_ITER_STRICT_OFFSETS) != n)
        abort();
}

/* A batch that iterated cleanly must down-convert to a legacy set holding as many
 * messages (control batches: none), which must read back. */
static void down_convert(const uint8_t *data, size_t size, size_t records) {
    struct record_batch_header h;
    if (records == 0 || record_batch_validate(data, size, &h) != RECORD_OK)
        return;
    struct legacy_convert_buffers bufs = {scratch, sizeof(scratch), records_buf,
                                          sizeof(records_buf)};
    int8_t magic = (int8_t)(size & 1);
    enum record_codec codec = (enum record_codec)(size % RECORD_CODEC_ZSTD);
    size_t len;
    if (legacy_from_batch(&codecs, data, size, magic, codec, &bufs, out, sizeof(out), &len) !=
        RECORD_OK)
        return;
    struct legacy_iter it;
    legacy_iter_init(&it, out, len, &codecs, scratch, sizeof(scratch));
    struct legacy_message_view m;
    size_t n = 0;
    while (legacy_iter_next(&it, &m))
        n++;
    size_t want = (h.attributes & RECORD_ATTR_CONTROL) ? 0 : records;
    if (it.err != RECORD_OK || n != want) {
        fprintf(stderr, "down_convert: size %zu magic %d codec %d len %zu: %zu of %zu messages, %s\n",
                size, magic, codec, len, n, want, record_error_str(it.err));
        abort();
    }
}

/* Field by field: the struct has padding that memcmp would compare. */
static bool same_header(const struct record_batch_header *a, const struct record_batch_header *b) {
    return a->base_offset == b->base_offset && a->batch_length == b->batch_length &&
           a->partition_leader_epoch == b->partition_leader_epoch && a->magic == b->magic &&
           a->crc == b->crc && a->attributes == b->attributes &&
           a->last_offset_delta == b->last_offset_delta &&
           a->base_timestamp == b->base_timestamp && a->max_timestamp == b->max_timestamp &&
           a->producer_id == b->producer_id && a->producer_epoch == b->producer_epoch &&
           a->base_sequence == b->base_sequence && a->record_count == b->record_count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (codecs.zstd_dctx == NULL && record_codecs_init(&codecs) != RECORD_OK)
        abort();
    struct record_batch_header h, h_iov;
    enum record_error err = record_batch_validate(data, size, &h);
    /* Fragmented validation must agree exactly with the contiguous one. */
    if (size > 0) {
        size_t a = data[0] % (size + 1), b = a + (size - a) / 2;
        struct iovec iov[3] = {{(void *)data, a}, {(void *)(data + a), b - a},
                               {(void *)(data + b), size - b}};
        if (record_batch_validate_iov(iov, 3, &h_iov) != err)
            abort();
        if (err == RECORD_OK && !same_header(&h, &h_iov))
            abort();
    }
    size_t n = iterate_batch(data, size, 0);
    down_convert(data, size, n);
    iterate_batch(data, size, RECORD_ITER_SKIP_CRC);
    iterate_batch(data, size, RECORD_ITER_SKIP_CRC | RECORD_ITER_STRICT_OFFSETS);
    legacy(data, size);
    for (int c = 1; c < RECORD_CODEC_COUNT; c++) {
        size_t out_len;
        enum record_error dec_err = record_decompress(&codecs, (enum record_codec)c, data, size, out,
                                                  sizeof(out), &out_len,
                                                  RECORD_DECOMPRESS_LZ4_LEGACY_HC);
        if (dec_err == RECORD_OK && out_len > sizeof(out))
            abort();
    }
    return 0;
}
