/* bench_record.c - micro-benchmarks of the record layer.
 *
 * 1. CRC32C (isa-l) throughput next to memcpy throughput, measured in the same run
 *    on the same buffer sizes (64 KiB and 1 MiB), so the CRC cost reads as a
 *    fraction of a copy on this machine.
 * 2. Each Kafka codec's compress and decompress throughput (MB/s of uncompressed
 *    bytes) on RecordBatch v2 record sections of 16 KiB, each holding 16 records of
 *    ~1 KiB JSON-like text (repeated field names, varying numbers and strings), laid
 *    out by the record writer exactly as they would be compressed in a batch.
 *
 * 3. The v2 writer (layout + CRC32C) and reader (CRC32C check + parse every record)
 *    on one uncompressed 16 KiB batch of the same records.
 *
 * Each measurement runs for at least BENCH_MIN_MS wall time; the figure printed is
 * bytes / elapsed. Usage: bench_record [min_ms] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/record/compress.h"
#include "storage/record/crc.h"
#include "storage/record/records.h"

#define BENCH_MIN_MS_DEFAULT 500
#define BATCH_BYTES (16 * 1024)
#define RECORD_BYTES 1024
#define RECORDS_PER_BATCH (BATCH_BYTES / RECORD_BYTES)
#define BATCH_COUNT 64 /* distinct batches cycled through: 1 MiB of input */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile uint32_t sink;

static double bench_crc(const uint8_t *buf, size_t len, uint64_t min_ns) {
    uint64_t start = now_ns(), bytes = 0, elapsed;
    do {
        for (int i = 0; i < 16; i++) {
            sink ^= crc32c(buf, len);
            bytes += len;
        }
        elapsed = now_ns() - start;
    } while (elapsed < min_ns);
    return (double)bytes / (double)elapsed; /* GB/s = bytes per ns */
}

static double bench_memcpy(uint8_t *dst, const uint8_t *src, size_t len, uint64_t min_ns) {
    uint64_t start = now_ns(), bytes = 0, elapsed;
    do {
        for (int i = 0; i < 16; i++) {
            memcpy(dst, src, len);
            sink ^= dst[i * 7 % len];
            bytes += len;
        }
        elapsed = now_ns() - start;
    } while (elapsed < min_ns);
    return (double)bytes / (double)elapsed;
}

/* ~1 KiB of JSON-ish text for record i: fixed field names, varying values. */
static int json_record(char *out, size_t cap, uint32_t i, uint64_t *rng) {
    static const char *const cities[] = {"Lisbon", "Osaka", "Denver", "Nairobi", "Oslo",
                                         "Lima", "Perth", "Quebec"};
    static const char *const events[] = {"page_view", "add_to_cart", "checkout", "login",
                                         "search"};
    int n = 0;
    n += snprintf(out + n, cap - (size_t)n,
                  "{\"event_id\":\"%08x-%04x\",\"ts\":%llu,\"type\":\"%s\",\"user\":{\"id\":%u,"
                  "\"city\":\"%s\",\"premium\":%s},\"items\":[",
                  i * 2654435761u, (unsigned)(*rng & 0xffff),
                  (unsigned long long)(1700000000000ull + i * 13), events[i % 5],
                  (unsigned)(*rng % 1000000), cities[(*rng >> 20) % 8],
                  (*rng >> 7) & 1 ? "true" : "false");
    while ((size_t)n < RECORD_BYTES - 120) {
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        n += snprintf(out + n, cap - (size_t)n,
                      "{\"sku\":\"SKU-%05u\",\"qty\":%u,\"price\":%u.%02u,\"tag\":\"t%u\"},",
                      (unsigned)(*rng % 100000), (unsigned)(*rng >> 40) % 9 + 1,
                      (unsigned)(*rng >> 24) % 500, (unsigned)(*rng >> 16) % 100,
                      (unsigned)(*rng >> 50) % 40);
    }
    n += snprintf(out + n, cap - (size_t)n, "{}],\"ok\":true}");
    return n;
}

/* Lay out BATCH_COUNT record sections with the real record writer. */
static size_t make_batches(uint8_t *sections, size_t *lens) {
    static char text[RECORDS_PER_BATCH][RECORD_BYTES + 256];
    static char keys[RECORDS_PER_BATCH][16];
    struct record_in recs[RECORDS_PER_BATCH];
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t total = 0;
    for (int b = 0; b < BATCH_COUNT; b++) {
        for (int r = 0; r < RECORDS_PER_BATCH; r++) {
            uint32_t i = (uint32_t)(b * RECORDS_PER_BATCH + r);
            int vlen = json_record(text[r], sizeof(text[r]), i, &rng);
            int klen = snprintf(keys[r], sizeof(keys[r]), "user-%u", (unsigned)(rng % 5000));
            recs[r] = (struct record_in){.key = (const uint8_t *)keys[r], .key_len = klen,
                                         .value = (const uint8_t *)text[r], .value_len = vlen,
                                         .timestamp_ms = 1700000000000LL + i};
        }
        uint8_t *p = sections + (size_t)b * BATCH_BYTES * 2;
        size_t n = 0;
        for (int r = 0; r < RECORDS_PER_BATCH; r++) {
            n += record_encode(p + n, &recs[r], r, r);
        }
        lens[b] = n;
        total += n;
    }
    return total;
}

static void bench_codec(struct record_codecs *c, enum record_codec codec, const uint8_t *sections,
                        const size_t *lens, uint64_t min_ns) {
    size_t bound = record_compress_bound(codec, BATCH_BYTES * 2);
    uint8_t *z = malloc((size_t)BATCH_COUNT * bound);
    size_t *z_lens = malloc(sizeof(size_t) * BATCH_COUNT);
    uint8_t *out = malloc(BATCH_BYTES * 2);
    uint64_t in_bytes = 0, z_bytes = 0, start = now_ns(), elapsed;
    int b = 0;
    do {
        const uint8_t *src = sections + (size_t)b * BATCH_BYTES * 2;
        if (record_compress(c, codec, src, lens[b], z + (size_t)b * bound, bound, &z_lens[b]) !=
            RECORD_OK) {
            fprintf(stderr, "compress failed\n");
            exit(1);
        }
        in_bytes += lens[b];
        z_bytes += z_lens[b];
        b = (b + 1) % BATCH_COUNT;
        elapsed = now_ns() - start;
    } while (elapsed < min_ns || b != 0);
    double compress_mbps = (double)in_bytes / (double)elapsed * 1000.0;
    double ratio = (double)in_bytes / (double)z_bytes;

    in_bytes = 0;
    start = now_ns();
    do {
        size_t out_len;
        if (record_decompress(c, codec, z + (size_t)b * bound, z_lens[b], out, BATCH_BYTES * 2,
                              &out_len, 0) != RECORD_OK ||
            out_len != lens[b]) {
            fprintf(stderr, "decompress failed\n");
            exit(1);
        }
        sink ^= out[out_len / 2];
        in_bytes += out_len;
        b = (b + 1) % BATCH_COUNT;
        elapsed = now_ns() - start;
    } while (elapsed < min_ns);
    double decompress_mbps = (double)in_bytes / (double)elapsed * 1000.0;
    printf("codec %-6s  compress %8.1f MB/s  decompress %8.1f MB/s  ratio %5.2f\n",
           record_codec_name(codec), compress_mbps, decompress_mbps, ratio);
    free(z);
    free(z_lens);
    free(out);
}

/* Writer and reader of uncompressed 16 KiB batches: record_batch_write (layout + CRC)
 * and record_iter_init (CRC check) + record_iter_next over every record. */
static void bench_write_read(const struct record_in *recs, int32_t count, uint64_t min_ns) {
    static uint8_t batch[BATCH_BYTES * 2];
    struct record_batch_spec spec = record_batch_spec_default();
    size_t len = 0;
    uint64_t bytes = 0, records = 0, start = now_ns(), elapsed;
    do {
        if (record_batch_write(NULL, &spec, recs, count, batch, sizeof(batch), NULL, 0, &len) !=
            RECORD_OK) {
            fprintf(stderr, "write failed\n");
            exit(1);
        }
        bytes += len;
        records += (uint64_t)count;
        elapsed = now_ns() - start;
    } while (elapsed < min_ns);
    printf("v2 write  %6zu B batches  %8.1f MB/s  %6.2f M records/s\n", len,
           (double)bytes / (double)elapsed * 1000.0, (double)records / (double)elapsed * 1000.0);

    bytes = records = 0;
    start = now_ns();
    do {
        struct record_iter it;
        if (record_iter_init(&it, batch, len, NULL, NULL, 0, RECORD_ITER_STRICT_OFFSETS) !=
            RECORD_OK) {
            fprintf(stderr, "iter failed\n");
            exit(1);
        }
        struct record_view r;
        while (record_iter_next(&it, &r)) {
            sink ^= (uint32_t)r.value.len;
            records++;
        }
        if (it.err != RECORD_OK)
            exit(1);
        bytes += len;
        elapsed = now_ns() - start;
    } while (elapsed < min_ns);
    printf("v2 read   %6zu B batches  %8.1f MB/s  %6.2f M records/s (CRC32C + every record)\n",
           len, (double)bytes / (double)elapsed * 1000.0,
           (double)records / (double)elapsed * 1000.0);
}

int main(int argc, char **argv) {
    uint64_t min_ns = (uint64_t)(argc > 1 ? atoi(argv[1]) : BENCH_MIN_MS_DEFAULT) * 1000000ull;
    size_t sizes[] = {64 * 1024, 1024 * 1024};
    uint8_t *a = malloc(1024 * 1024), *b = malloc(1024 * 1024);
    for (size_t i = 0; i < 1024 * 1024; i++)
        a[i] = (uint8_t)(i * 131 + (i >> 9));
    memset(b, 0, 1024 * 1024);
    for (size_t s = 0; s < 2; s++) {
        double crc = bench_crc(a, sizes[s], min_ns);
        double copy = bench_memcpy(b, a, sizes[s], min_ns);
        printf("buffer %7zu B  crc32c %6.2f GB/s  memcpy %6.2f GB/s  crc/memcpy %.2f\n",
               sizes[s], crc, copy, crc / copy);
    }
    free(a);
    free(b);

    uint8_t *sections = malloc((size_t)BATCH_COUNT * BATCH_BYTES * 2);
    size_t lens[BATCH_COUNT];
    size_t total = make_batches(sections, lens);
    printf("codec input: %d record sections, %zu B average, %d records of ~%d B each\n",
           BATCH_COUNT, total / BATCH_COUNT, RECORDS_PER_BATCH, RECORD_BYTES);
    struct record_codecs codecs;
    if (record_codecs_init(&codecs) != RECORD_OK)
        return 1;
    for (int c = 1; c < RECORD_CODEC_COUNT; c++)
        bench_codec(&codecs, (enum record_codec)c, sections, lens, min_ns);
    record_codecs_destroy(&codecs);
    free(sections);

    static char text[RECORDS_PER_BATCH][RECORD_BYTES + 256];
    struct record_in recs[RECORDS_PER_BATCH];
    uint64_t rng = 12345;
    for (int r = 0; r < RECORDS_PER_BATCH; r++) {
        int vlen = json_record(text[r], sizeof(text[r]), (uint32_t)r, &rng);
        recs[r] = (struct record_in){.key_len = -1, .value = (const uint8_t *)text[r],
                                     .value_len = vlen, .timestamp_ms = 1700000000000LL + r};
    }
    bench_write_read(recs, RECORDS_PER_BATCH, min_ns);
    return 0;
}
