/* bench_storage.c - the storage engine's throughput, one partition on one shard.
 *
 *   bench_storage append DIR BATCH_BYTES DURABLE(0|1) TOTAL_MIB
 *       appends batches of 1 KiB records (BATCH_BYTES each) as fast as the engine takes
 *       them, flushing once per loop iteration (group commit), with fdatasync per flush
 *       when DURABLE; prints "append_mib_s=<n>" measured until the last byte is written
 *       (and synced).
 *   bench_storage read DIR TOTAL_MIB
 *       writes TOTAL_MIB of 16 KiB batches, then:
 *       tail: fetches (1 MiB max_bytes) over the cached tail again and again, copying the
 *             fragments out as a socket send would, vs plain memcpy of the same bytes;
 *       cold: reopens the log (empty cache) and reads it all (READ_FIXED, chunk-sized
 *             reads), copying nothing.
 *       prints "tail_mib_s=", "memcpy_mib_s=", "cold_mib_s=".
 * The driver loop is the shard loop in miniature: append what fits, storage_poll,
 * submit, wait for a completion, dispatch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hw/log.h"
#include "tests/storage/harness.h"

#define CHUNK_BYTES (2u << 20)
#define CHUNK_COUNT 48
#define RECORD_VALUE_BYTES 1000 /* ~1 KiB records with key and framing */

static struct harness H;
static uint8_t g_batch[1 << 20], g_scratch[1 << 20];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static struct plog *open_bench_log(const char *dir) {
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 1ull << 30;
    cfg.retention_ms = -1;
    cfg.preallocate_step_bytes = 128ull << 20;
    int err;
    struct plog *log = plog_open(&H.shard, dir, "bench", 0, &cfg, &err);
    if (!log) {
        fprintf(stderr, "open: %d\n", err);
        exit(1);
    }
    return log;
}

/* Build one batch of about batch_bytes from 1 KiB records. */
static uint32_t make_batch(uint32_t batch_bytes) {
    int records = (int)(batch_bytes / 1024);
    if (records < 1) records = 1;
    size_t len = build_batch(g_batch, sizeof g_batch, 12345, records, RECORD_VALUE_BYTES,
                             1700000000000, g_scratch);
    if (len == 0) exit(1);
    return (uint32_t)len;
}

static double append_run(struct plog *log, uint32_t batch_bytes, bool durable,
                         uint64_t total_bytes, uint64_t *written_bytes) {
    uint32_t len = make_batch(batch_bytes);
    uint64_t appended = 0;
    double t0 = now_s();
    while (appended < total_bytes) {
        /* one loop iteration: append until the chunk budget pushes back */
        for (int i = 0; i < 256 && appended < total_bytes; i++) {
            int64_t off = plog_append(log, g_batch, len, durable, NULL);
            if (off == -ENOBUFS) break;
            if (off < 0) {
                fprintf(stderr, "append: %lld\n", (long long)off);
                exit(1);
            }
            appended += len;
        }
        harness_step(&H);
    }
    while (plog_high_watermark(log) < plog_log_end_offset(log) ||
           (durable && log->durable_offset < plog_log_end_offset(log)))
        harness_step(&H);
    *written_bytes = appended;
    return now_s() - t0;
}

static int cmd_append(const char *dir, uint32_t batch_bytes, bool durable, uint64_t total_mib) {
    struct plog *log = open_bench_log(dir);
    uint64_t bytes;
    double cpu0 = cpu_s();
    double secs = append_run(log, batch_bytes, durable, total_mib << 20, &bytes);
    double cpu = cpu_s() - cpu0;
    printf("append batch_bytes=%u durable=%d bytes=%llu secs=%.3f cpu_secs=%.3f flushes=%llu "
           "fsyncs=%llu pipelined=%llu max_in_flight=%u append_mib_s=%.1f\n",
           batch_bytes, durable, (unsigned long long)bytes, secs, cpu,
           (unsigned long long)log->flushes, (unsigned long long)log->fsyncs,
           (unsigned long long)log->flushes_pipelined, log->max_flushes_in_flight,
           (double)bytes / secs / (1 << 20));
    plog_close(log);
    return 0;
}

static int cmd_read(const char *dir, uint64_t total_mib) {
    struct plog *log = open_bench_log(dir);
    uint64_t bytes;
    append_run(log, 16384, false, total_mib << 20, &bytes);

    /* tail: fetch the newest cached bytes (what a tailing consumer asks for) and copy
     * them out; the cache holds the last ~CHUNK_COUNT/2 chunks */
    static uint8_t out[1 << 20];
    int64_t hw = plog_high_watermark(log);
    int64_t tail_start = hw - (int64_t)((16u << 20) / 1024); /* last ~16 MiB of offsets */
    if (tail_start < 0) tail_start = 0;
    uint64_t misses0 = H.shard.cache.misses;
    uint64_t copied = 0;
    double t0 = now_s();
    for (int pass = 0; pass < 40; pass++) {
        int64_t next = tail_start;
        while (next < hw) {
            struct sync_read r;
            if (harness_read(&H, log, &r, next, 1 << 20) != 1) exit(1);
            size_t at = 0;
            for (uint32_t f = 0; f < r.req.frag_count; f++) {
                memcpy(out + at, r.req.frags[f].ptr, r.req.frags[f].len);
                at += r.req.frags[f].len;
            }
            copied += r.req.bytes;
            next = r.req.next_offset;
            plog_read_release(log, &r.req);
        }
    }
    double tail_s = now_s() - t0;
    uint64_t tail_misses = H.shard.cache.misses - misses0;

    /* memcpy of the same volume, same block size, from a 16 MiB source */
    size_t src_bytes = 16u << 20;
    uint8_t *src = malloc(src_bytes);
    memset(src, 7, src_bytes);
    t0 = now_s();
    uint64_t mc = 0;
    while (mc < copied) {
        for (size_t at = 0; at < src_bytes && mc < copied; at += sizeof out) {
            memcpy(out, src + at, sizeof out);
            mc += sizeof out;
        }
    }
    double memcpy_s = now_s() - t0;
    free(src);
    printf("tail bytes=%llu secs=%.3f cache_misses=%llu tail_mib_s=%.1f memcpy_mib_s=%.1f\n",
           (unsigned long long)copied, tail_s, (unsigned long long)tail_misses,
           (double)copied / tail_s / (1 << 20), (double)mc / memcpy_s / (1 << 20));
    plog_close(log);

    /* cold: a fresh log object has an empty cache; every byte comes from READ_FIXED */
    log = open_bench_log(dir);
    misses0 = H.shard.cache.misses;
    uint64_t read_bytes = 0;
    int64_t next = 0;
    t0 = now_s();
    while (next < plog_high_watermark(log)) {
        struct sync_read r;
        if (harness_read(&H, log, &r, next, 1 << 20) != 1) exit(1);
        read_bytes += r.req.bytes;
        next = r.req.next_offset;
        plog_read_release(log, &r.req);
    }
    double cold_s = now_s() - t0;
    printf("cold bytes=%llu secs=%.3f cache_misses=%llu readahead_reads=%llu cold_mib_s=%.1f\n",
           (unsigned long long)read_bytes, cold_s,
           (unsigned long long)(H.shard.cache.misses - misses0),
           (unsigned long long)H.shard.readahead_issued,
           (double)read_bytes / cold_s / (1 << 20));
    plog_close(log);
    return 0;
}

int main(int argc, char **argv) {
    if (harness_init(&H, CHUNK_BYTES, CHUNK_COUNT, (uint64_t)CHUNK_BYTES * CHUNK_COUNT / 2) != 0) {
        fprintf(stderr, "harness init failed\n");
        return 1;
    }
    log_set_level(LOG_WARN);
    int rc = 2;
    if (argc == 6 && strcmp(argv[1], "append") == 0)
        rc = cmd_append(argv[2], (uint32_t)atoi(argv[3]), atoi(argv[4]) != 0,
                        (uint64_t)atoll(argv[5]));
    else if (argc == 4 && strcmp(argv[1], "read") == 0)
        rc = cmd_read(argv[2], (uint64_t)atoll(argv[3]));
    else
        fprintf(stderr, "usage: bench_storage append DIR BATCH_BYTES DURABLE TOTAL_MIB | "
                        "read DIR TOTAL_MIB\n");
    harness_fini(&H);
    return rc;
}
