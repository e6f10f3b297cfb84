/* bench_txn_recovery.c - what transactions cost the partition log: appending N
 * transactions (one 10-record transactional batch + its marker, every other one
 * aborted), then reopening the partition from its close snapshot and from a full header
 * scan (markers read whole), and collecting the aborted transactions of 1 MiB windows
 * as a read_committed Fetch does. Real files, real io_uring (the storage test harness).
 *
 *   bench_txn_recovery [transactions] [dir]     (defaults: 100000, /tmp)
 *
 * Prints one line per phase. Not a test: built beside them, run by hand. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/record/control_batch.h"
#include "tests/storage/harness.h"

static struct harness H;
static uint8_t g_batch[64 * 1024];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static struct plog *open_log(const char *dir) {
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 64u << 20;
    cfg.retention_ms = -1;
    int err = 0;
    struct plog *log = plog_open(&H.shard, dir, "bench", 0, &cfg, &err);
    if (!log) {
        fprintf(stderr, "plog_open: %d\n", err);
        exit(1);
    }
    return log;
}

static uint32_t txn_batch(int64_t pid, int32_t seq) {
    static struct record_in recs[10];
    static uint8_t value[100];
    for (int i = 0; i < 10; i++)
        recs[i] = (struct record_in){.value = value, .value_len = sizeof value, .key_len = -1,
                                     .timestamp_ms = 1700000000000LL};
    struct record_batch_spec spec = record_batch_spec_default();
    spec.producer_id = pid;
    spec.producer_epoch = 0;
    spec.base_sequence = seq;
    spec.transactional = true;
    size_t len = 0;
    if (record_batch_write(NULL, &spec, recs, 10, g_batch, sizeof g_batch, NULL, 0, &len) != RECORD_OK)
        exit(1);
    return (uint32_t)len;
}

static void append_or_die(struct plog *log, const uint8_t *b, uint32_t len) {
    for (int tries = 0;; tries++) {
        int64_t off = plog_append(log, b, len, false, NULL);
        if (off >= 0) return;
        if ((off != -ENOBUFS) || tries > 100000) {
            fprintf(stderr, "append: %lld\n", (long long)off);
            exit(1);
        }
        harness_step(&H); /* markers waiting for their write, or no chunk: let flushes run */
    }
}

static void drain(struct plog *log) {
    while (plog_high_watermark(log) < plog_log_end_offset(log)) harness_step(&H);
}

int main(int argc, char **argv) {
    long txns = argc > 1 ? atol(argv[1]) : 100000;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/sluice-bench-txn-XXXXXX", argc > 2 ? argv[2] : "/tmp");
    if (!mkdtemp(dir) || harness_init(&H, 1u << 20, 64, 32u << 20) != 0) return 1;
    struct plog *log = open_log(dir);
    uint8_t marker[CONTROL_BATCH_MAX_BYTES];
    double t0 = now_s();
    for (long i = 0; i < txns; i++) {
        int64_t pid = i % 16; /* 16 producers take turns */
        uint32_t len = txn_batch(pid, (int32_t)(i / 16 * 10));
        append_or_die(log, g_batch, len);
        int mlen = control_batch_build(marker, sizeof marker, pid, 0,
                                       i % 2 ? CONTROL_TYPE_COMMIT : CONTROL_TYPE_ABORT, 0, 0);
        append_or_die(log, marker, (uint32_t)mlen);
        if (i % 64 == 63) harness_step(&H);
    }
    drain(log);
    double t1 = now_s();
    printf("append: %ld transactions (batch + marker), %.0f txn/s, log end %lld, aborted %u, lso %lld\n",
           txns, (double)txns / (t1 - t0), (long long)plog_log_end_offset(log),
           log->txn.aborted_count, (long long)plog_last_stable_offset(log));
    struct txn_aborted *out = malloc(1024 * sizeof *out);
    t0 = now_s();
    uint64_t listed = 0, windows = 0;
    int64_t window = (1 << 20) / 1200 * 11; /* offsets in ~1 MiB of these batches */
    for (int64_t from = 0; from < plog_log_end_offset(log); from += window, windows++)
        listed += plog_aborted_txns(log, from, from + window, out, 1024);
    t1 = now_s();
    printf("collect: %llu windows of %lld offsets, %llu aborted listed, %.2f us/window\n",
           (unsigned long long)windows, (long long)window, (unsigned long long)listed,
           (t1 - t0) * 1e6 / (double)windows);
    t0 = now_s();
    plog_close(log);
    t1 = now_s();
    printf("close (snapshot incl. aborted index): %.1f ms\n", (t1 - t0) * 1e3);
    t0 = now_s();
    log = open_log(dir);
    t1 = now_s();
    printf("reopen from snapshot: %.1f ms, batches scanned %llu, aborted %u\n", (t1 - t0) * 1e3,
           (unsigned long long)log->producer_batches_scanned, log->txn.aborted_count);
    plog_close(log);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -f %s/bench-0/*.snapshot", dir);
    if (system(cmd) != 0) return 1;
    t0 = now_s();
    log = open_log(dir);
    t1 = now_s();
    printf("reopen by full scan: %.1f ms, batches scanned %llu, aborted %u\n", (t1 - t0) * 1e3,
           (unsigned long long)log->producer_batches_scanned, log->txn.aborted_count);
    plog_close(log);
    free(out);
    harness_fini(&H);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
