/* test_txn.c - transactions in the partition's storage: the txn_state pieces alone
 * (aborted index ring, completing queue, LSO), then the partition log on real files and
 * a real io_uring: a transactional batch opens a transaction and holds the LSO, a
 * COMMIT/ABORT marker closes it (the LSO waits until the marker is written), ABORT
 * indexes the transaction, a read with stable_only stops at the LSO, a marker with an
 * old epoch or a malformed control batch is refused, and all of it comes back after a
 * reopen from the snapshot, from a roll snapshot plus a scan, and from a full scan. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/record/control_batch.h"
#include "storage/record/crc.h"
#include "storage/txn_state.h"
#include "tests/storage/harness.h"

#define CHUNK_BYTES (256u * 1024u)

/* ---------------------------------------------------------------- txn_state alone */

Test(txn_state, aborted_index_collect_and_trim) {
    struct txn_log ts;
    cr_assert_eq(txn_log_init(&ts), 0);
    /* (pid, first, last): a long transaction 5..40 ends after a short one 20..30 */
    cr_assert_eq(txn_aborted_add(&ts, 1, 0, 10), 0);
    cr_assert_eq(txn_aborted_add(&ts, 2, 20, 30), 0);
    cr_assert_eq(txn_aborted_add(&ts, 3, 5, 40), 0);
    cr_assert_eq(txn_aborted_add(&ts, 4, 50, 60), 0);
    struct txn_aborted out[8];
    uint32_t n = txn_aborted_collect(&ts, 11, 25, out, 8);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].producer_id, 2);
    cr_assert_eq(out[1].producer_id, 3);
    n = txn_aborted_collect(&ts, 0, 1, out, 8); /* only the first starts below 1 */
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].producer_id, 1);
    cr_assert_eq(txn_aborted_collect(&ts, 61, 100, out, 8), 0);
    cr_assert_eq(txn_aborted_collect(&ts, 0, 100, out, 2), 2, "max is honoured");
    cr_assert_eq(txn_aborted_trim(&ts, 31), 2);
    cr_assert_eq(ts.aborted_count, 2);
    cr_assert_eq(txn_aborted_at(&ts, 0)->producer_id, 3);
    txn_log_free(&ts);
}

Test(txn_state, aborted_ring_grows_then_wraps) {
    struct txn_log ts;
    cr_assert_eq(txn_log_init(&ts), 0);
    for (int64_t i = 0; i < 1000; i++) {
        cr_assert_eq(txn_aborted_add(&ts, i, 2 * i, 2 * i + 1), 0);
        if (i % 7 == 0) (void)txn_aborted_trim(&ts, 2 * i - 20); /* wrap the ring */
    }
    for (uint32_t i = 1; i < ts.aborted_count; i++)
        cr_assert_lt(txn_aborted_at(&ts, i - 1)->last_offset, txn_aborted_at(&ts, i)->last_offset);
    struct txn_aborted out[4];
    cr_assert_eq(txn_aborted_collect(&ts, 1990, 1995, out, 4), 3);
    cr_assert_eq(out[0].producer_id, 995);
    txn_log_free(&ts);
}

Test(txn_state, lso_and_completing_queue) {
    struct txn_log ts;
    cr_assert_eq(txn_log_init(&ts), 0);
    cr_assert_eq(txn_last_stable_offset(&ts, 100, -1), 100);
    cr_assert_eq(txn_last_stable_offset(&ts, 100, 40), 40);
    cr_assert_eq(txn_last_stable_offset(&ts, 30, 40), 30, "never past the high watermark");
    cr_assert_eq(txn_completing_push(&ts, 10, 50), 0); /* marker at 50, not written */
    cr_assert_eq(txn_last_stable_offset(&ts, 50, -1), 10);
    txn_completing_written(&ts, 50);
    cr_assert_eq(ts.completing_count, 1, "the marker itself is not below 50");
    txn_completing_written(&ts, 51);
    cr_assert_eq(txn_last_stable_offset(&ts, 51, -1), 51);
    for (int i = 0; i < TXN_COMPLETING_MAX; i++) cr_assert_eq(txn_completing_push(&ts, i, 100 + i), 0);
    cr_assert(txn_completing_full(&ts));
    cr_assert_eq(txn_completing_push(&ts, 1, 1000), -ENOBUFS);
    txn_log_free(&ts);
}

/* ---------------------------------------------------------------- in the partition log */

static struct harness H;
static char g_dir[256];
static uint8_t g_batch[64 * 1024];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sluice-txn-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    cr_assert_eq(harness_init(&H, CHUNK_BYTES, 64, 32u * CHUNK_BYTES), 0);
}

static void teardown(void) {
    harness_fini(&H);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct plog *open_log(uint64_t segment_bytes) {
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = segment_bytes;
    cfg.index_interval_bytes = 1024;
    cfg.preallocate_step_bytes = 64 * 1024;
    cfg.retention_ms = -1;
    cfg.segment_ms = -1;
    int err = 0;
    struct plog *log = plog_open(&H.shard, g_dir, "t", 0, &cfg, &err);
    cr_assert_not_null(log, "plog_open failed: %d", err);
    return log;
}

/* Append a batch of `records` records from producer pid (transactional or not). */
static int64_t append_data(struct plog *log, int64_t pid, int16_t epoch, int32_t seq,
                           int records, bool transactional) {
    static struct record_in recs[16];
    static uint8_t value[200];
    cr_assert_leq(records, 16);
    for (int i = 0; i < records; i++)
        recs[i] = (struct record_in){.value = value, .value_len = sizeof value,
                                     .key_len = -1, .timestamp_ms = 1700000000000LL};
    struct record_batch_spec spec = record_batch_spec_default();
    spec.producer_id = pid;
    spec.producer_epoch = epoch;
    spec.base_sequence = seq;
    spec.transactional = transactional;
    size_t len = 0;
    cr_assert_eq(record_batch_write(NULL, &spec, recs, records, g_batch, sizeof g_batch, NULL, 0,
                                    &len), RECORD_OK);
    return harness_append(&H, log, g_batch, (uint32_t)len, true);
}

static int64_t append_marker(struct plog *log, int64_t pid, int16_t epoch, int type) {
    uint8_t m[CONTROL_BATCH_MAX_BYTES];
    int len = control_batch_build(m, sizeof m, pid, epoch, type, 0, 1700000000000LL);
    cr_assert_gt(len, 0);
    return harness_append(&H, log, m, (uint32_t)len, true);
}

/* Read from offset (read_committed when stable_only); returns the offset after the last
 * batch returned. */
static int64_t read_to(struct plog *log, int64_t offset, bool stable_only) {
    struct sync_read r;
    memset(&r, 0, sizeof r);
    r.req.offset = offset;
    r.req.max_bytes = 1u << 20;
    r.req.stable_only = stable_only;
    r.req.done = sync_read_done;
    int rc = plog_read(log, &r.req);
    for (int i = 0; rc == 0 && !r.done; i++) {
        cr_assert_lt(i, 100000);
        harness_step(&H);
    }
    cr_assert_geq(rc, 0);
    cr_assert_geq(r.status, 0);
    int64_t next = r.req.frag_count ? r.req.next_offset : offset;
    plog_read_release(log, &r.req);
    return next;
}

TestSuite(plog_txn, .init = setup, .fini = teardown, .timeout = 60);

Test(plog_txn, open_commit_moves_lso_and_read_committed_stops_there) {
    struct plog *log = open_log(1u << 20);
    cr_assert_eq(append_data(log, -1, -1, -1, 5, false), 0);          /* 0..4 plain */
    cr_assert_eq(append_data(log, 7, 0, 0, 10, true), 5);             /* 5..14 txn */
    cr_assert_eq(append_data(log, 8, 0, 0, 5, false), 15);            /* 15..19 idem */
    cr_assert_eq(plog_high_watermark(log), 20);
    cr_assert_eq(plog_last_stable_offset(log), 5, "the open transaction holds the LSO");
    cr_assert_eq(read_to(log, 0, true), 5, "read_committed stops at the LSO");
    cr_assert_eq(read_to(log, 5, true), 5, "nothing at or past the LSO");
    cr_assert_eq(read_to(log, 0, false), 20, "read_uncommitted reads to the high watermark");
    cr_assert_eq(append_data(log, 7, 0, 10, 5, true), 20);            /* 20..24 same txn */
    cr_assert_eq(plog_last_stable_offset(log), 5);
    cr_assert_eq(append_marker(log, 7, 0, CONTROL_TYPE_COMMIT), 25);
    cr_assert_eq(plog_last_stable_offset(log), 26);
    cr_assert_eq(read_to(log, 5, true), 26);
    struct txn_aborted out[4];
    cr_assert_eq(plog_aborted_txns(log, 0, 100, out, 4), 0, "a commit is not indexed");
    const struct producer_entry *e = producer_state_find(&log->producers, 7);
    cr_assert_not_null(e);
    cr_assert_eq(e->txn_first_offset, -1);
    plog_close(log);
}

Test(plog_txn, lso_waits_for_the_marker_write) {
    struct plog *log = open_log(1u << 20);
    cr_assert_eq(append_data(log, 7, 0, 0, 3, true), 0);
    uint8_t m[CONTROL_BATCH_MAX_BYTES];
    int len = control_batch_build(m, sizeof m, 7, 0, CONTROL_TYPE_COMMIT, 0, 0);
    struct sync_append a = {.req = {.done = sync_append_done}};
    cr_assert_eq(plog_append(log, m, (uint32_t)len, true, &a.req), 3);
    cr_assert_eq(producer_state_oldest_txn(&log->producers), -1, "closed in the state");
    cr_assert_eq(plog_last_stable_offset(log), 0, "but the marker is not written yet");
    for (int i = 0; !a.done; i++) {
        cr_assert_lt(i, 100000);
        harness_step(&H);
    }
    cr_assert_eq(a.status, 0);
    cr_assert_eq(plog_last_stable_offset(log), 4);
    plog_close(log);
}

Test(plog_txn, abort_is_indexed_and_two_producers_overlap) {
    struct plog *log = open_log(1u << 20);
    cr_assert_eq(append_data(log, 1, 0, 0, 4, true), 0);   /* p1 0..3 */
    cr_assert_eq(append_data(log, 2, 0, 0, 4, true), 4);   /* p2 4..7 */
    cr_assert_eq(plog_last_stable_offset(log), 0);
    cr_assert_eq(append_marker(log, 2, 0, CONTROL_TYPE_ABORT), 8);
    cr_assert_eq(plog_last_stable_offset(log), 0, "p1 is still open");
    cr_assert_eq(append_marker(log, 1, 0, CONTROL_TYPE_COMMIT), 9);
    cr_assert_eq(plog_last_stable_offset(log), 10);
    struct txn_aborted out[4];
    cr_assert_eq(plog_aborted_txns(log, 0, 10, out, 4), 1);
    cr_assert_eq(out[0].producer_id, 2);
    cr_assert_eq(out[0].first_offset, 4);
    cr_assert_eq(out[0].last_offset, 8);
    cr_assert_eq(plog_aborted_txns(log, 0, 4, out, 4), 0, "a fetch ending before it");
    cr_assert_eq(plog_aborted_txns(log, 9, 10, out, 4), 0, "a fetch after its marker");
    /* a second transaction of p2, same epoch, new sequence continues */
    cr_assert_eq(append_data(log, 2, 0, 4, 2, true), 10);
    cr_assert_eq(plog_last_stable_offset(log), 10);
    cr_assert_eq(append_marker(log, 2, 0, CONTROL_TYPE_ABORT), 12);
    cr_assert_eq(plog_aborted_txns(log, 0, 100, out, 4), 2);
    cr_assert_eq(out[1].first_offset, 10);
    cr_assert_eq(out[1].last_offset, 12);
    plog_close(log);
}

Test(plog_txn, markers_fenced_and_malformed_refused) {
    struct plog *log = open_log(1u << 20);
    cr_assert_eq(append_data(log, 3, 5, 0, 2, true), 0);
    uint8_t m[CONTROL_BATCH_MAX_BYTES];
    int len = control_batch_build(m, sizeof m, 3, 4, CONTROL_TYPE_ABORT, 0, 0);
    cr_assert_eq(plog_append(log, m, (uint32_t)len, true, NULL), -ESTALE, "epoch 4 < 5");
    cr_assert_eq(plog_log_end_offset(log), 2, "nothing appended");
    /* a control batch whose record is not a marker (type 9, CRC fixed up) */
    len = control_batch_build(m, sizeof m, 3, 5, CONTROL_TYPE_ABORT, 0, 0);
    m[len - 9] = 9; /* key: ... int16 type = 9 (second byte of the type field) */
    record_batch_update_crc(m);
    cr_assert_eq(control_batch_type(m, (size_t)len), -1);
    cr_assert_eq(plog_append(log, m, (uint32_t)len, true, NULL), -EBADMSG);
    /* a bumped epoch (the coordinator's abort after fencing) is accepted */
    cr_assert_eq(append_marker(log, 3, 6, CONTROL_TYPE_ABORT), 2);
    cr_assert_eq(producer_state_find(&log->producers, 3)->epoch, 6);
    cr_assert_eq(plog_last_stable_offset(log), 3);
    /* and the old epoch's data is now fenced by the idempotence check */
    struct record_batch_header h = {.producer_id = 3, .producer_epoch = 5, .base_sequence = 2,
                                    .last_offset_delta = 0};
    cr_assert_eq(plog_producer_check(log, &h, NULL), PRODUCER_FENCED);
    plog_close(log);
}

/* A workload leaving: p1 committed, p2 aborted, p3 open, over several segments. */
static void txn_workload(struct plog *log) {
    int32_t seq[4] = {0};
    for (int round = 0; round < 6; round++) {
        for (int64_t p = 1; p <= 3; p++) {
            cr_assert_geq(append_data(log, p, 0, seq[p], 4, true), 0);
            seq[p] += 4;
        }
        if (round == 5) break;
        cr_assert_geq(append_marker(log, 1, 0, CONTROL_TYPE_COMMIT), 0);
        cr_assert_geq(append_marker(log, 2, 0, CONTROL_TYPE_ABORT), 0);
    }
    cr_assert_geq(append_marker(log, 1, 0, CONTROL_TYPE_COMMIT), 0);
    cr_assert_geq(append_marker(log, 2, 0, CONTROL_TYPE_ABORT), 0);
    /* p3's transaction has been open since offset 8 (round 0: p1 0..3, p2 4..7) */
}

static void expect_workload(struct plog *log, const struct txn_aborted *want, uint32_t want_n) {
    cr_assert_eq(plog_last_stable_offset(log), 8, "p3 still open at 8");
    cr_assert_eq(producer_state_find(&log->producers, 3)->txn_first_offset, 8);
    cr_assert_eq(log->producers.open_txns, 1);
    struct txn_aborted out[16];
    uint32_t n = plog_aborted_txns(log, 0, INT64_MAX, out, 16);
    cr_assert_eq(n, want_n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(out[i].producer_id, want[i].producer_id);
        cr_assert_eq(out[i].first_offset, want[i].first_offset);
        cr_assert_eq(out[i].last_offset, want[i].last_offset);
    }
}

Test(plog_txn, recovered_from_snapshot_roll_snapshot_and_full_scan) {
    struct plog *log = open_log(4096); /* rolls every few batches */
    txn_workload(log);
    cr_assert_gt(log->segment_count, 3);
    struct txn_aborted want[16];
    uint32_t want_n = plog_aborted_txns(log, 0, INT64_MAX, want, 16);
    cr_assert_eq(want_n, 6);
    expect_workload(log, want, want_n);
    plog_close(log);

    log = open_log(4096); /* the close snapshot */
    cr_assert_eq(log->producer_batches_scanned, 0);
    expect_workload(log, want, want_n);
    plog_close(log);

    char cmd[400]; /* drop the close snapshot: a roll snapshot plus a scan */
    snprintf(cmd, sizeof cmd, "ls %s/t-0/*.snapshot | tail -1 | xargs rm", g_dir);
    cr_assert_eq(system(cmd), 0);
    log = open_log(4096);
    cr_assert_gt(log->producer_batches_scanned, 0);
    expect_workload(log, want, want_n);
    plog_close(log);

    snprintf(cmd, sizeof cmd, "rm -f %s/t-0/*.snapshot", g_dir); /* a full scan */
    cr_assert_eq(system(cmd), 0);
    log = open_log(4096);
    cr_assert_eq(log->producer_batches_scanned, 6 * 3 + 6 * 2);
    expect_workload(log, want, want_n);
    /* commit p3 now: the LSO reaches the high watermark, it never went back */
    int64_t lso_before = plog_last_stable_offset(log);
    cr_assert_geq(append_marker(log, 3, 0, CONTROL_TYPE_COMMIT), 0);
    cr_assert_geq(plog_last_stable_offset(log), lso_before);
    cr_assert_eq(plog_last_stable_offset(log), plog_high_watermark(log));
    plog_close(log);
}

Test(plog_txn, delete_records_trims_the_aborted_index) {
    struct plog *log = open_log(4096);
    txn_workload(log);
    struct txn_aborted out[16];
    uint32_t n = plog_aborted_txns(log, 0, INT64_MAX, out, 16);
    cr_assert_eq(n, 6);
    int64_t cut = out[2].last_offset + 1; /* past the third aborted transaction */
    cr_assert_eq(plog_delete_records(log, cut), 0);
    cr_assert_eq(log->txn.aborted_count, 3);
    plog_close(log);
    log = open_log(4096);
    cr_assert_eq(log->txn.aborted_count, 3, "trimmed in the snapshot too");
    plog_close(log);
}

/* A version-1 snapshot (written before transactions) is still read. Laid out by hand. */
static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

Test(plog_txn, version_1_snapshot_still_read) {
    uint8_t buf[24 + 20 + 28];
    memset(buf, 0, sizeof buf);
    uint8_t *e = buf + 24;
    put_le(e, 42, 8);                  /* producer id */
    put_le(e + 8, 3, 2);               /* epoch */
    put_le(e + 10, 1, 2);              /* one batch kept */
    put_le(e + 12, 1700000000000ull, 8);
    uint8_t *b = e + 20;
    put_le(b, 0, 4);                   /* first seq */
    put_le(b + 4, 9, 4);               /* last seq */
    put_le(b + 8, 100, 8);             /* base offset */
    put_le(b + 16, 9, 4);              /* last offset delta */
    put_le(b + 20, 1700000000000ull, 8);
    put_le(buf, 0x53504c53u, 4);       /* "SLPS" */
    put_le(buf + 4, 1, 2);             /* version 1 */
    put_le(buf + 8, 1, 4);             /* one producer */
    put_le(buf + 12, 110, 8);          /* as of offset 110 */
    put_le(buf + 20, crc32c(buf + 24, sizeof buf - 24), 4);
    char path[400];
    snprintf(path, sizeof path, "%s/%020d.snapshot", g_dir, 110);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, sizeof buf, f), sizeof buf);
    fclose(f);
    struct producer_state ps;
    struct txn_log ts;
    cr_assert_eq(producer_state_init(&ps, 16, 0), 0);
    cr_assert_eq(txn_log_init(&ts), 0);
    cr_assert_eq(producer_state_read_snapshot(&ps, &ts, g_dir, 110, 1700000000000LL), 0);
    const struct producer_entry *pe = producer_state_find(&ps, 42);
    cr_assert_not_null(pe);
    cr_assert_eq(pe->epoch, 3);
    cr_assert_eq(pe->batch_count, 1);
    cr_assert_eq(pe->txn_first_offset, -1);
    cr_assert_eq(ts.aborted_count, 0);
    struct producer_append a = {.producer_id = 42, .epoch = 3, .first_seq = 0,
                                .last_offset_delta = 9};
    struct producer_batch dup;
    cr_assert_eq(producer_state_check(&ps, &a, 1700000000000LL, &dup), PRODUCER_DUPLICATE);
    cr_assert_eq(dup.base_offset, 100);
    /* and the v2 round trip keeps an open transaction and the aborted index */
    a = (struct producer_append){.producer_id = 42, .epoch = 3, .first_seq = 10,
                                 .last_offset_delta = 0, .transactional = true};
    cr_assert_eq(producer_state_update(&ps, &a, 110, 1700000000000LL), 0);
    cr_assert_eq(txn_aborted_add(&ts, 7, 50, 60), 0);
    cr_assert_eq(producer_state_write_snapshot(&ps, &ts, g_dir, 111), 0);
    producer_state_clear(&ps);
    txn_log_clear(&ts);
    cr_assert_eq(producer_state_read_snapshot(&ps, &ts, g_dir, 111, 1700000000000LL), 0);
    cr_assert_eq(producer_state_find(&ps, 42)->txn_first_offset, 110);
    cr_assert_eq(producer_state_oldest_txn(&ps), 110);
    cr_assert_eq(ts.aborted_count, 1);
    cr_assert_eq(txn_aborted_at(&ts, 0)->last_offset, 60);
    producer_state_free(&ps);
    txn_log_free(&ts);
}

/* A transactional batch with no sequence (the coordinator's offsets) opens a transaction
 * too; the LSO never lags the log start (DeleteRecords past an open transaction). */
Test(plog_txn, sequence_less_transaction_and_log_start_floor) {
    struct plog *log = open_log(1u << 20);
    cr_assert_eq(append_data(log, -1, -1, -1, 2, false), 0);
    cr_assert_eq(append_data(log, 9, 2, -1, 1, true), 2);
    cr_assert_eq(append_data(log, -1, -1, -1, 2, false), 3);
    cr_assert_eq(plog_last_stable_offset(log), 2);
    cr_assert_eq(producer_state_find(&log->producers, 9)->epoch, 2);
    cr_assert_eq(plog_delete_records(log, 4), 0);
    cr_assert_eq(plog_last_stable_offset(log), 4, "floored at the log start");
    cr_assert_eq(append_marker(log, 9, 2, CONTROL_TYPE_ABORT), 5);
    cr_assert_eq(plog_last_stable_offset(log), 6);
    struct txn_aborted out[2];
    cr_assert_eq(plog_aborted_txns(log, 0, 100, out, 2), 1);
    cr_assert_eq(out[0].first_offset, 2);
    plog_close(log);
}

Test(txn_state, collect_counts_without_out) {
    struct txn_log ts;
    cr_assert_eq(txn_log_init(&ts), 0);
    for (int64_t i = 0; i < 10; i++) cr_assert_eq(txn_aborted_add(&ts, i, 10 * i, 10 * i + 5), 0);
    cr_assert_eq(txn_aborted_collect(&ts, 12, 47, NULL, 100), 4); /* 10..15 .. 40..45 */
    cr_assert_eq(txn_aborted_collect(&ts, 12, 47, NULL, 2), 2);
    txn_log_free(&ts);
}

/* Retention by size deletes the oldest segments: the aborted transactions wholly below
 * the new log start leave the index. */
Test(plog_txn, retention_trims_the_aborted_index) {
    struct plog *log = open_log(4096);
    txn_workload(log);
    cr_assert_eq(log->txn.aborted_count, 6);
    log->cfg.retention_bytes = 4096; /* keep about one segment besides the active one */
    cr_assert_gt(plog_enforce_retention(log, 1700000000000LL), 0);
    int64_t start = plog_log_start_offset(log);
    cr_assert_gt(start, 0);
    struct txn_aborted out[8];
    uint32_t n = plog_aborted_txns(log, 0, INT64_MAX, out, 8);
    cr_assert_lt(n, 6, "some were trimmed");
    for (uint32_t i = 0; i < n; i++) cr_assert_geq(out[i].last_offset, start);
    cr_assert_geq(plog_last_stable_offset(log), start);
    plog_close(log);
}
