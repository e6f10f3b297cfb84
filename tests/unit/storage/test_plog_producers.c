/* test_plog_producers.c - producer state inside the partition log, on real files and a
 * real io_uring: plog_append records idempotent batches; the state is rebuilt on reopen
 * by a full scan (no snapshot), from a snapshot plus the batches after it (snapshots at
 * rolls and at close), after a torn snapshot, and after a crash-like reopen where a
 * snapshot describes more than the log kept; plog_wait answers a duplicate only once its
 * original is synced. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/storage/harness.h"

#define CHUNK_BYTES (256u * 1024u)

static struct harness H;
static char g_dir[256];
static uint8_t g_batch[64 * 1024], g_scratch[64 * 1024];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sluice-plogprod-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    cr_assert_eq(harness_init(&H, CHUNK_BYTES, 64, 32u * CHUNK_BYTES), 0);
}

static void teardown(void) {
    harness_fini(&H);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct plog_config small_config(void) {
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 8 * 1024; /* rolls every few batches */
    cfg.index_interval_bytes = 1024;
    cfg.preallocate_step_bytes = 64 * 1024;
    cfg.retention_ms = -1;
    cfg.segment_ms = -1;
    return cfg;
}

static struct plog *open_log(void) {
    struct plog_config cfg = small_config();
    int err = 0;
    struct plog *log = plog_open(&H.shard, g_dir, "t", 0, &cfg, &err);
    cr_assert_not_null(log, "plog_open failed: %d", err);
    return log;
}

/* Build an idempotent batch of `records` records (100-byte values). */
static uint32_t idem_batch(int64_t pid, int16_t epoch, int32_t seq, int records) {
    static struct record_in recs[64];
    static uint64_t keys[64];
    cr_assert_leq(records, 64);
    for (int i = 0; i < records; i++) {
        keys[i] = (uint64_t)seq + (uint64_t)i;
        fill_pattern(g_scratch + i * 100, 100, keys[i]);
        recs[i] = (struct record_in){.key = (const uint8_t *)&keys[i], .key_len = 8,
                                     .value = g_scratch + i * 100, .value_len = 100,
                                     .timestamp_ms = 1700000000000LL};
    }
    struct record_batch_spec spec = record_batch_spec_default();
    spec.producer_id = pid;
    spec.producer_epoch = epoch;
    spec.base_sequence = seq;
    size_t out = 0;
    cr_assert_eq(record_batch_write(NULL, &spec, recs, records, g_batch, sizeof g_batch, NULL, 0,
                                    &out), RECORD_OK);
    return (uint32_t)out;
}

static int check(struct plog *log, int64_t pid, int16_t epoch, int32_t seq, int records,
                 struct producer_batch *dup) {
    uint32_t len = idem_batch(pid, epoch, seq, records);
    struct record_batch_header h;
    cr_assert_eq(record_batch_header_parse(g_batch, len, &h), RECORD_OK);
    return plog_producer_check(log, &h, dup);
}

/* Three producers interleaved, 10 batches each of 10 records, durable. Returns the base
 * offset of (producer p, batch b) in offs[p][b]. */
static void produce_all(struct plog *log, int64_t offs[3][10]) {
    for (int b = 0; b < 10; b++) {
        for (int p = 0; p < 3; p++) {
            cr_assert_eq(check(log, 100 + p, 0, b * 10, 10, NULL), PRODUCER_APPEND);
            uint32_t len = idem_batch(100 + p, 0, b * 10, 10);
            offs[p][b] = harness_append(&H, log, g_batch, len, true);
            cr_assert_geq(offs[p][b], 0);
        }
    }
}

static void expect_state(struct plog *log, int64_t offs[3][10]) {
    for (int p = 0; p < 3; p++) {
        struct producer_batch dup;
        for (int b = 5; b < 10; b++) { /* the last five are duplicates, with their offsets */
            cr_assert_eq(check(log, 100 + p, 0, b * 10, 10, &dup), PRODUCER_DUPLICATE,
                         "producer %d batch %d", p, b);
            cr_assert_eq(dup.base_offset, offs[p][b]);
        }
        cr_assert_eq(check(log, 100 + p, 0, 40, 10, NULL), PRODUCER_OUT_OF_ORDER);
        cr_assert_eq(check(log, 100 + p, 0, 110, 10, NULL), PRODUCER_OUT_OF_ORDER);
        cr_assert_eq(check(log, 100 + p, 0, 100, 10, NULL), PRODUCER_APPEND);
        cr_assert_eq(check(log, 100 + p, -1 + 0, 100, 10, NULL), PRODUCER_FENCED);
    }
}

static int count_snapshots(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s/t-0/*.snapshot 2>/dev/null | wc -l", g_dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

TestSuite(plog_producers, .init = setup, .fini = teardown, .timeout = 60);

Test(plog_producers, append_records_state) {
    struct plog *log = open_log();
    int64_t offs[3][10];
    produce_all(log, offs);
    expect_state(log, offs);
    /* a duplicate is not appended by the check: the log end did not move */
    cr_assert_eq(plog_log_end_offset(log), 300);
    plog_close(log);
}

Test(plog_producers, rebuilt_by_full_scan_without_snapshot) {
    struct plog *log = open_log();
    int64_t offs[3][10];
    produce_all(log, offs);
    cr_assert_gt(log->segment_count, 3, "the test wants several segments");
    plog_close(log);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -f %s/t-0/*.snapshot", g_dir);
    cr_assert_eq(system(cmd), 0);
    log = open_log();
    cr_assert_eq(log->producer_batches_scanned, 30, "every batch scanned");
    expect_state(log, offs);
    plog_close(log);
}

Test(plog_producers, rebuilt_from_snapshot_then_scan) {
    struct plog *log = open_log();
    int64_t offs[3][10];
    produce_all(log, offs);
    plog_close(log); /* snapshot at the log end */
    cr_assert_leq(count_snapshots(), 2);
    log = open_log();
    cr_assert_eq(log->producer_batches_scanned, 0, "the close snapshot covers everything");
    expect_state(log, offs);
    plog_close(log);
    /* remove the close snapshot: the newest roll snapshot plus a short scan remain */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s/t-0/*.snapshot | tail -1 | xargs rm", g_dir);
    cr_assert_eq(system(cmd), 0);
    log = open_log();
    cr_assert_gt(log->producer_batches_scanned, 0);
    cr_assert_lt(log->producer_batches_scanned, 30, "scanned only after the snapshot");
    expect_state(log, offs);
    plog_close(log);
}

Test(plog_producers, torn_snapshot_falls_back_to_scan) {
    struct plog *log = open_log();
    int64_t offs[3][10];
    produce_all(log, offs);
    plog_close(log);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "for f in %s/t-0/*.snapshot; do truncate -s 30 $f; done", g_dir);
    cr_assert_eq(system(cmd), 0);
    log = open_log();
    cr_assert_eq(log->producer_batches_scanned, 30);
    expect_state(log, offs);
    plog_close(log);
}

Test(plog_producers, snapshot_beyond_a_cut_log_is_ignored) {
    struct plog *log = open_log();
    int64_t offs[3][10];
    produce_all(log, offs);
    plog_close(log);
    /* Crash-like: the log is cut back (as recovery would after a torn tail) below the
     * close snapshot, which now claims batches the log does not hold. */
    int64_t last_base = offs[2][9];
    log = open_log();
    uint32_t s = log->segment_count - 1;
    while (log->segments[s]->base_offset > last_base) s--;
    int64_t seg_base = log->segments[s]->base_offset;
    plog_close(log);
    char name[400];
    snprintf(name, sizeof name, "%s/t-0/%020lld.log", g_dir, (long long)seg_base);
    int fd = open(name, O_RDONLY);
    cr_assert_geq(fd, 0);
    off_t pos = 0;
    for (int i = 0; i < 1000; i++) { /* walk the batches to the last one's position */
        uint8_t hdr[RECORD_BATCH_HEADER_BYTES];
        cr_assert_eq(pread(fd, hdr, sizeof hdr, pos), (ssize_t)sizeof hdr);
        struct record_batch_header h;
        cr_assert_eq(record_batch_header_parse(hdr, sizeof hdr, &h), RECORD_OK);
        if (h.base_offset == last_base) break;
        pos += (off_t)record_batch_size_bytes(&h);
    }
    close(fd);
    cr_assert_eq(truncate(name, pos + 20), 0); /* a torn last batch */
    log = open_log();
    cr_assert_eq(plog_log_end_offset(log), last_base);
    /* producer 102's batch 9 is gone: a resend is appended again, not a duplicate */
    cr_assert_eq(check(log, 102, 0, 90, 10, NULL), PRODUCER_APPEND);
    struct producer_batch dup;
    cr_assert_eq(check(log, 102, 0, 80, 10, &dup), PRODUCER_DUPLICATE);
    cr_assert_eq(dup.base_offset, offs[2][8]);
    plog_close(log);
}

struct waiter {
    struct plog_append_req req;
    int done, status;
};

static void waiter_done(struct plog_append_req *req, int status) {
    struct waiter *w = (struct waiter *)req;
    w->done++;
    w->status = status;
}

Test(plog_producers, wait_answers_duplicate_when_original_is_durable) {
    struct plog *log = open_log();
    uint32_t len = idem_batch(7, 0, 0, 5);
    struct waiter orig = {.req = {.done = waiter_done}};
    int64_t base = plog_append(log, g_batch, len, true, &orig.req);
    cr_assert_eq(base, 0);
    struct producer_batch dup;
    cr_assert_eq(check(log, 7, 0, 0, 5, &dup), PRODUCER_DUPLICATE);
    struct waiter w = {.req = {.done = waiter_done}};
    cr_assert_eq(plog_wait(log, dup.base_offset + dup.last_offset_delta + 1, true, &w.req), 0,
                 "not yet durable: queued");
    for (int i = 0; i < 1000 && !w.done; i++) harness_step(&H);
    cr_assert_eq(w.done, 1);
    cr_assert_eq(w.status, 0);
    cr_assert_eq(orig.done, 1, "the original is answered too");
    cr_assert_geq(log->durable_offset, 5, "the waiter ran only once synced");
    struct waiter again = {.req = {.done = waiter_done}};
    cr_assert_eq(plog_wait(log, 5, true, &again.req), 1, "now answered at once");
    plog_close(log);
}
