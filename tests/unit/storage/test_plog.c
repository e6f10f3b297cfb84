/* test_plog.c - the partition log on real files in a fresh temp dir with a real
 * io_uring: round trips across rolls (from cache and, after reopen, from disk), index
 * lookups by offset and time, retention by time and size, DeleteRecords, KIP-74, the
 * tail truncated at every byte of its last batch, and a flipped byte in the middle;
 * pipelined flushes: acks in offset order when real completions are delivered in
 * reverse, partial-block flushes mixed in (RWF_DSYNC and fdatasync), a flush that
 * writes past a partial block still in flight (and that write failing), a real write
 * error mid-pipeline, the fdatasync of a sealed segment before a later durable ack,
 * the preallocated zero tail cut at seal and close, and the index files written through
 * the ring at seal. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/storage/harness.h"

#define CHUNK_BYTES (256u * 1024u)
#define MAX_BATCH (300u * 1024u)

static struct harness H;
static char g_dir[256];
static uint8_t g_batch[MAX_BATCH], g_scratch[MAX_BATCH];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sluice-plog-XXXXXX");
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
    cfg.segment_bytes = 64 * 1024;
    cfg.index_interval_bytes = 1024;
    cfg.preallocate_step_bytes = 256 * 1024;
    cfg.retention_ms = -1;
    cfg.segment_ms = -1;
    return cfg;
}

static struct plog *open_log(const struct plog_config *cfg) {
    int err = 0;
    struct plog *log = plog_open(&H.shard, g_dir, "t", 0, cfg, &err);
    cr_assert_not_null(log, "plog_open failed: %d", err);
    return log;
}

struct appended {
    int64_t base, last;
    uint64_t seed;
    int records, value_bytes;
    int64_t ts;
};

#define MAX_APPENDED 2048
static struct appended g_app[MAX_APPENDED];
static int g_app_count;

static int64_t append_one(struct plog *log, uint64_t seed, int records, int value_bytes,
                          int64_t ts, bool durable) {
    size_t len = build_batch(g_batch, sizeof g_batch, seed, records, value_bytes, ts, g_scratch);
    cr_assert(len > 0);
    int64_t off = harness_append(&H, log, g_batch, (uint32_t)len, durable);
    cr_assert(off >= 0, "append failed: %lld", (long long)off);
    cr_assert_lt(g_app_count, MAX_APPENDED);
    g_app[g_app_count++] = (struct appended){off, off + records - 1, seed, records, value_bytes, ts};
    return off;
}

/* Read everything from `from` with max_bytes per fetch, checking every batch against
 * what was appended; returns the number of batches seen. */
static int read_all_and_check(struct plog *log, int64_t from, uint32_t max_bytes) {
    int64_t next = from;
    int seen = 0;
    int idx = 0;
    while (idx < g_app_count && g_app[idx].last < from) idx++;
    for (int rounds = 0; next < plog_high_watermark(log); rounds++) {
        cr_assert_lt(rounds, 100000);
        struct sync_read r;
        int rc = harness_read(&H, log, &r, next, max_bytes);
        cr_assert_eq(rc, 1, "read at %lld: %d", (long long)next, rc);
        cr_assert_gt(r.req.bytes, 0, "empty read below the high watermark");
        for (uint32_t f = 0; f < r.req.frag_count; f++) {
            const uint8_t *p = r.req.frags[f].ptr;
            uint32_t left = r.req.frags[f].len;
            while (left > 0) {
                struct record_batch_header h;
                cr_assert_eq(record_batch_header_parse(p, left, &h), RECORD_OK);
                uint32_t size = (uint32_t)record_batch_size_bytes(&h);
                cr_assert_leq(size, left);
                cr_assert(verify_batch(p, size), "batch at %lld corrupt", (long long)h.base_offset);
                cr_assert_lt(idx, g_app_count);
                cr_assert_eq(h.base_offset, g_app[idx].base);
                cr_assert_eq(record_batch_last_offset(&h), g_app[idx].last);
                idx++;
                seen++;
                p += size;
                left -= size;
            }
        }
        next = r.req.next_offset;
        plog_read_release(log, &r.req);
    }
    cr_assert_eq(idx, g_app_count, "not every batch was read back");
    return seen;
}

TestSuite(plog, .init = setup, .fini = teardown, .timeout = 120);

Test(plog, round_trip_across_rolls_cache_and_disk) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    uint64_t rng = 42;
    for (int i = 0; i < 300; i++) {
        int records = 1 + (int)(splitmix64(&rng) % 20);
        int value = 10 + (int)(splitmix64(&rng) % 400);
        append_one(log, splitmix64(&rng), records, value, 1000 + i, i % 3 == 0);
    }
    cr_expect_gt(log->segment_count, 10, "segments rolled: %u", log->segment_count);
    cr_expect_eq(plog_high_watermark(log), g_app[g_app_count - 1].last + 1);
    read_all_and_check(log, 0, 1);
    read_all_and_check(log, 0, 5000);
    read_all_and_check(log, 0, 1u << 20);
    /* an offset inside a batch returns that batch */
    read_all_and_check(log, g_app[100].base + (g_app[100].last > g_app[100].base ? 1 : 0), 3000);
    int64_t end = plog_log_end_offset(log);
    plog_close(log);

    log = open_log(&cfg); /* cold: every read is a READ_FIXED */
    cr_assert_eq(plog_log_end_offset(log), end);
    uint64_t misses = H.shard.cache.misses;
    read_all_and_check(log, 0, 7000);
    cr_expect_gt(H.shard.cache.misses, misses, "reads after reopen must miss the cache");
    read_all_and_check(log, g_app[150].base, 1);
    /* appends continue after reopen */
    append_one(log, 7, 3, 100, 99999, true);
    read_all_and_check(log, g_app[g_app_count - 2].base, 1u << 20);
    plog_close(log);
}

Test(plog, tailing_reader_is_served_from_cache) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    append_one(log, 1, 5, 100, 1, false);
    uint64_t misses = H.shard.cache.misses;
    int64_t next = 0;
    for (int i = 0; i < 200; i++) {
        append_one(log, 100 + (uint64_t)i, 4, 200, 2 + i, false);
        struct sync_read r;
        cr_assert_eq(harness_read(&H, log, &r, next, 1u << 20), 1);
        cr_assert_gt(r.req.bytes, 0);
        next = r.req.next_offset;
        plog_read_release(log, &r.req);
    }
    cr_expect_eq(next, plog_log_end_offset(log));
    cr_expect_eq(H.shard.cache.misses, misses, "a tailing reader must not touch the disk");
    plog_close(log);
}

Test(plog, out_of_range_and_empty_at_high_watermark) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    append_one(log, 1, 5, 100, 1, true);
    struct sync_read r;
    cr_expect_eq(harness_read(&H, log, &r, 6, 1000), -ERANGE);
    cr_expect_eq(harness_read(&H, log, &r, -1, 1000), -ERANGE);
    cr_expect_eq(harness_read(&H, log, &r, 5, 1000), 1);
    cr_expect_eq(r.req.bytes, 0);
    plog_close(log);
}

Test(plog, kip74_oversized_first_batch_is_returned_whole) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    append_one(log, 1, 100, 1000, 1, true); /* ~100 KB */
    append_one(log, 2, 1, 10, 2, true);
    struct sync_read r;
    cr_assert_eq(harness_read(&H, log, &r, 0, 100), 1);
    struct record_batch_header h;
    cr_assert_eq(record_batch_header_parse(r.req.frags[0].ptr, r.req.frags[0].len, &h), RECORD_OK);
    cr_expect_eq(r.req.bytes, record_batch_size_bytes(&h), "exactly the first batch, whole");
    cr_expect_gt(r.req.bytes, 100000);
    cr_expect_eq(r.req.next_offset, 100);
    cr_expect(verify_batch(r.req.frags[0].ptr, r.req.bytes));
    plog_read_release(log, &r.req);
    plog_close(log);
    /* and from disk after reopen */
    log = open_log(&cfg);
    cr_assert_eq(harness_read(&H, log, &r, 0, 1), 1);
    cr_expect_eq(r.req.bytes, record_batch_size_bytes(&h));
    cr_expect(verify_batch(r.req.frags[0].ptr, r.req.bytes));
    plog_read_release(log, &r.req);
    plog_close(log);
}

static int64_t brute_offset_for_time(int64_t t, int64_t log_end) {
    for (int i = 0; i < g_app_count; i++) {
        int64_t max_ts = g_app[i].ts; /* every record has the batch timestamp */
        if (max_ts >= t) return g_app[i].base;
    }
    return log_end;
}

Test(plog, offset_and_time_lookups) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    uint64_t rng = 9;
    int64_t ts = 1000000;
    for (int i = 0; i < 400; i++) {
        /* mostly increasing, sometimes going back in time */
        ts += (int64_t)(splitmix64(&rng) % 50) - 10;
        append_one(log, splitmix64(&rng), 1 + (int)(splitmix64(&rng) % 5), 50, ts, false);
    }
    for (int reopen = 0; reopen < 2; reopen++) {
        for (int64_t t = 999000; t < ts + 100; t += 7) {
            int64_t want = brute_offset_for_time(t, plog_log_end_offset(log));
            cr_assert_eq(plog_offset_for_timestamp(log, t), want, "t=%lld", (long long)t);
        }
        /* every offset maps to its batch */
        for (int i = 0; i < g_app_count; i += 13) {
            for (int64_t o = g_app[i].base; o <= g_app[i].last; o++) {
                struct sync_read r;
                cr_assert_eq(harness_read(&H, log, &r, o, 1), 1);
                struct record_batch_header h;
                cr_assert_eq(record_batch_header_parse(r.req.frags[0].ptr, r.req.frags[0].len, &h),
                             RECORD_OK);
                cr_assert_eq(h.base_offset, g_app[i].base);
                plog_read_release(log, &r.req);
            }
        }
        plog_close(log);
        log = open_log(&cfg); /* indexes from files (sealed) and rebuilt (tail) */
    }
    plog_close(log);
}

static int count_files(const char *suffix) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/t-0", g_dir);
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), s = strlen(suffix);
        n += l > s && strcmp(de->d_name + l - s, suffix) == 0;
    }
    closedir(d);
    return n;
}

Test(plog, retention_by_time_and_size_and_delete_records) {
    struct plog_config cfg = small_config();
    cfg.retention_ms = 10000;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    /* old data (ts 1000..), then recent data (ts now) */
    int64_t now = 10000000;
    for (int i = 0; i < 150; i++) append_one(log, (uint64_t)i, 6, 200, 1000 + i, false);
    int64_t first_recent = -1;
    for (int i = 0; i < 150; i++) {
        int64_t off = append_one(log, 1000 + (uint64_t)i, 6, 200, now - 5000, false);
        if (first_recent < 0) first_recent = off;
    }
    uint32_t segs = log->segment_count;
    cr_assert_gt(segs, 4);
    int deleted = plog_enforce_retention(log, now);
    cr_expect_gt(deleted, 0);
    /* every segment whose newest batch is old is gone; the recent ones stay */
    cr_expect_leq(plog_log_start_offset(log), first_recent);
    cr_expect_eq(log->segments[0]->base_offset, plog_log_start_offset(log));
    cr_expect_geq(log->segments[0]->max_timestamp_ms, now - 10000);
    cr_expect_eq(count_files(".log"), (int)log->segment_count);
    struct sync_read r;
    cr_expect_eq(harness_read(&H, log, &r, 0, 100), -ERANGE, "deleted offsets are out of range");

    /* size: keep at most ~3 segments' worth */
    cfg.retention_bytes = 2 * 64 * 1024;
    log->cfg.retention_bytes = cfg.retention_bytes;
    log->cfg.retention_ms = -1;
    plog_enforce_retention(log, now);
    cr_expect_lt(plog_size_bytes(log) - log->segments[0]->size_bytes, (uint64_t)cfg.retention_bytes);
    int64_t start = plog_log_start_offset(log);
    cr_expect_gt(start, first_recent);

    /* DeleteRecords moves the start inside a segment; persisted across reopen */
    int64_t target = start + 10;
    cr_expect_eq(plog_delete_records(log, target), 0);
    cr_expect_eq(plog_log_start_offset(log), target);
    cr_expect_eq(plog_delete_records(log, plog_high_watermark(log) + 1), -ERANGE);
    plog_close(log);
    log = open_log(&cfg);
    cr_expect_eq(plog_log_start_offset(log), target);
    cr_expect_eq(harness_read(&H, log, &r, target - 1, 100), -ERANGE);
    cr_expect_eq(harness_read(&H, log, &r, target, 100), 1);
    cr_expect_gt(r.req.bytes, 0);
    plog_read_release(log, &r.req);
    plog_close(log);
}

Test(plog, roll_by_age) {
    struct plog_config cfg = small_config();
    cfg.segment_ms = 1000;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    append_one(log, 1, 1, 10, 1, false);
    cr_expect_eq(plog_maybe_roll_by_age(log, log->segments[0]->created_ms + 10), 0);
    cr_expect_eq(plog_maybe_roll_by_age(log, log->segments[0]->created_ms + 1000), 1);
    cr_expect_eq(log->segment_count, 2);
    append_one(log, 2, 1, 10, 2, true);
    read_all_and_check(log, 0, 1);
    plog_close(log);
}

static void read_file(const char *path, uint8_t **data, size_t *len) {
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    *len = (size_t)st.st_size;
    *data = malloc(*len + 1);
    cr_assert_eq(pread(fd, *data, *len, 0), (ssize_t)*len);
    close(fd);
}

static void write_file(const char *path, const uint8_t *data, size_t len) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

Test(plog, recovery_at_every_cut_of_the_last_batch) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    for (int i = 0; i < 20; i++) append_one(log, (uint64_t)i * 100, 3, 60, i, true);
    plog_close(log);
    char path[400];
    snprintf(path, sizeof path, "%s/t-0/%020d.log", g_dir, 0);
    uint8_t *orig;
    size_t orig_len;
    read_file(path, &orig, &orig_len);
    /* position of the last batch */
    size_t last_pos = 0, pos = 0;
    while (pos < orig_len) {
        struct record_batch_header h;
        cr_assert_eq(record_batch_header_parse(orig + pos, orig_len - pos, &h), RECORD_OK);
        last_pos = pos;
        pos += record_batch_size_bytes(&h);
    }
    cr_assert_eq(pos, orig_len);
    struct appended last = g_app[g_app_count - 1];
    int full_count = g_app_count;
    for (size_t cut = last_pos; cut <= orig_len; cut++) {
        write_file(path, orig, cut);
        g_app_count = full_count;
        log = open_log(&cfg);
        if (cut == orig_len) {
            cr_assert_eq(plog_log_end_offset(log), last.last + 1);
        } else {
            cr_assert_eq(plog_log_end_offset(log), last.base, "cut=%zu", cut);
            g_app_count = full_count - 1;
        }
        read_all_and_check(log, 0, 1u << 20);
        /* appends continue at the recovered end */
        int64_t off = append_one(log, 555, 2, 30, 100, true);
        cr_assert_eq(off, plog_log_end_offset(log) - 2);
        read_all_and_check(log, 0, 1u << 20);
        plog_close(log);
        g_app_count = full_count;
        g_app[full_count - 1] = last; /* the append above reused the slot */
    }
    free(orig);
}

Test(plog, flipped_byte_in_the_middle_truncates_there) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    for (int i = 0; i < 40; i++) append_one(log, (uint64_t)i * 100, 3, 60, i, true);
    plog_close(log);
    char path[400];
    snprintf(path, sizeof path, "%s/t-0/%020d.log", g_dir, 0);
    uint8_t *data;
    size_t len;
    read_file(path, &data, &len);
    /* find batch 20 and flip a byte in its records */
    size_t pos = 0;
    for (int i = 0; i < 20; i++) {
        struct record_batch_header h;
        record_batch_header_parse(data + pos, len - pos, &h);
        pos += record_batch_size_bytes(&h);
    }
    data[pos + RECORD_BATCH_HEADER_BYTES + 5] ^= 0x40;
    write_file(path, data, len);
    free(data);
    log = open_log(&cfg);
    cr_assert_eq(plog_log_end_offset(log), g_app[20].base);
    g_app_count = 20;
    read_all_and_check(log, 0, 4096);
    int64_t off = append_one(log, 77, 1, 10, 1, true);
    cr_expect_eq(off, g_app[19].last + 1);
    read_all_and_check(log, 0, 4096);
    plog_close(log);
}

Test(plog, cold_sequential_reads_use_readahead) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 4u << 20; /* many chunks per segment */
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    uint64_t rng = 5;
    while (plog_size_bytes(log) < (5u << 20)) { /* two segments, mixed batch sizes */
        bool big = splitmix64(&rng) % 8 == 0;
        append_one(log, splitmix64(&rng), big ? 150 : 2, big ? 1000 : 700, 1, false);
    }
    plog_close(log);
    log = open_log(&cfg);
    uint64_t before = H.shard.readahead_issued;
    read_all_and_check(log, 0, 64 * 1024);
    cr_expect_gt(H.shard.readahead_issued, before, "sequential cold reads must read ahead");
    read_all_and_check(log, g_app[g_app_count / 3].base, 1); /* again, from the cache */
    plog_close(log);
}

/* A cache budget of one and a half chunks (one entry): reaching read-ahead data schedules
 * more read-ahead, whose chunk allocations evict from the cache -- never the entry the
 * reader is using (it would read through a zeroed entry: seen as an assertion in fetch
 * fan-out with a 2 MiB cache). Fails without the pin in read_continue. */
Test(plog, readahead_with_a_tiny_cache_keeps_the_entry_in_use) {
    harness_fini(&H);
    cr_assert_eq(harness_init(&H, CHUNK_BYTES, 64, 3u * CHUNK_BYTES / 2), 0);
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 4u << 20;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    uint64_t rng = 11;
    while (plog_size_bytes(log) < (3u << 20))
        append_one(log, splitmix64(&rng), 20, 900, 1, false);
    plog_close(log);
    log = open_log(&cfg);
    for (int pass = 0; pass < 3; pass++) /* cold, then with read-ahead entries about */
        read_all_and_check(log, 0, 64 * 1024);
    cr_expect_gt(H.shard.readahead_issued, 0u, "the reads went through read-ahead");
    plog_close(log);
}

struct counted {
    struct plog_append_req req;
    int status;
    int order;
};
static int g_done_order;
static void counted_done(struct plog_append_req *req, int status) {
    struct counted *c = (struct counted *)req;
    c->status = status;
    c->order = ++g_done_order;
}

Test(plog, group_commit_one_flush_per_iteration_and_ack_order) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    struct plog *log = open_log(&cfg);
    size_t len = build_batch(g_batch, sizeof g_batch, 3, 4, 100, 1, g_scratch);
    struct counted c[10];
    memset(c, 0, sizeof c);
    g_done_order = 0;
    for (int i = 0; i < 10; i++) {
        c[i].req.done = counted_done;
        cr_assert_eq(plog_append(log, g_batch, (uint32_t)len, i % 2 == 0, &c[i].req), 4 * i);
    }
    cr_expect_eq(plog_high_watermark(log), 0, "nothing is visible before the flush");
    uint64_t flushes = log->flushes, fsyncs = log->fsyncs;
    cr_assert_gt(storage_poll(&H.shard), 0);
    cr_expect_eq(log->flushes, flushes + 1, "one loop iteration, one flush");
    for (int i = 0; i < 1000 && g_done_order < 10; i++) harness_step(&H);
    cr_assert_eq(g_done_order, 10);
    cr_expect_eq(log->fsyncs, fsyncs + 1, "one fdatasync for the whole group");
    for (int i = 0; i < 10; i++) cr_expect_eq(c[i].status, 0);
    /* acks=1 (odd) appends complete when written, before the acks=all ones */
    for (int i = 1; i < 10; i += 2) cr_expect_leq(c[i].order, 5);
    for (int i = 0; i < 10; i += 2) cr_expect_gt(c[i].order, 5);
    cr_expect_eq(plog_high_watermark(log), 40);
    cr_expect_eq(log->durable_offset, 40);
    plog_close(log);
}

Test(plog, bad_appends_are_refused_without_damage) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    append_one(log, 1, 2, 10, 1, true);
    size_t len = build_batch(g_batch, sizeof g_batch, 3, 4, 100, 1, g_scratch);
    cr_expect_eq(plog_append(log, g_batch, (uint32_t)len - 1, true, NULL), -EBADMSG);
    cr_expect_eq(plog_append(log, g_batch, 10, true, NULL), -EBADMSG);
    g_batch[16] = 1; /* magic 1 */
    cr_expect_eq(plog_append(log, g_batch, (uint32_t)len, true, NULL), -EBADMSG);
    len = build_batch(g_batch, sizeof g_batch, 3, 260, 1000, 1, g_scratch); /* > chunk */
    cr_assert_gt(len, CHUNK_BYTES - 4096);
    cr_expect_eq(plog_append(log, g_batch, (uint32_t)len, true, NULL), -EMSGSIZE);
    cr_expect_eq(plog_log_end_offset(log), 2);
    append_one(log, 2, 2, 10, 1, true);
    read_all_and_check(log, 0, 1 << 20);
    plog_close(log);
}

Test(plog, missing_or_stale_indexes_are_rebuilt) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    uint64_t rng = 11;
    int64_t ts = 5000;
    for (int i = 0; i < 200; i++) {
        ts += (int64_t)(splitmix64(&rng) % 20);
        append_one(log, splitmix64(&rng), 1 + (int)(splitmix64(&rng) % 6), 400, ts, true);
    }
    uint32_t segs = log->segment_count;
    cr_assert_gt(segs, 3);
    int64_t base1 = log->segments[1]->base_offset, base2 = log->segments[2]->base_offset;
    plog_close(log);
    char path[400];
    /* segment 1: index files removed; segment 2: offset index cut short (stale) */
    snprintf(path, sizeof path, "%s/t-0/%020lld.index", g_dir, (long long)base1);
    cr_assert_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/t-0/%020lld.timeindex", g_dir, (long long)base1);
    cr_assert_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/t-0/%020lld.index", g_dir, (long long)base2);
    cr_assert_eq(truncate(path, 13), 0);
    log = open_log(&cfg);
    cr_assert_eq(log->segment_count, segs);
    cr_expect_gt(log->segments[1]->index_count, 0);
    cr_expect_gt(log->segments[2]->index_count, 0);
    snprintf(path, sizeof path, "%s/t-0/%020lld.index", g_dir, (long long)base1);
    cr_expect_eq(access(path, F_OK), 0, "a rebuilt index is written back");
    for (int64_t t = 4990; t < ts + 10; t += 3)
        cr_assert_eq(plog_offset_for_timestamp(log, t), brute_offset_for_time(t, plog_log_end_offset(log)));
    read_all_and_check(log, 0, 3000);
    read_all_and_check(log, base2 + 1, 1);
    plog_close(log);
}

Test(plog, more_partitions_than_chunks) {
    struct plog_config cfg = small_config();
    enum { PARTS = 100 }; /* the pool has 64 chunks */
    struct plog *logs[PARTS];
    for (int p = 0; p < PARTS; p++) {
        int err = 0;
        logs[p] = plog_open(&H.shard, g_dir, "many", p, &cfg, &err);
        cr_assert_not_null(logs[p], "open %d: %d", p, err);
    }
    for (int round = 0; round < 3; round++) {
        for (int p = 0; p < PARTS; p++) {
            size_t len = build_batch(g_batch, sizeof g_batch, (uint64_t)(p * 10 + round), 2,
                                     300, round, g_scratch);
            int64_t off = harness_append(&H, logs[p], g_batch, (uint32_t)len, round == 2);
            cr_assert_eq(off, 2 * round, "partition %d round %d: %lld", p, round, (long long)off);
        }
    }
    for (int p = 0; p < PARTS; p++) {
        struct sync_read r;
        cr_assert_eq(harness_read(&H, logs[p], &r, 0, 1 << 20), 1);
        cr_assert_eq(r.req.next_offset, 6);
        const uint8_t *q = r.req.frags[0].ptr;
        for (int b = 0; b < 3; b++) { /* each partition's three batches, intact */
            struct record_batch_header h;
            cr_assert_eq(record_batch_header_parse(q, 1 << 20, &h), RECORD_OK);
            cr_assert(verify_batch(q, record_batch_size_bytes(&h)));
            cr_assert_eq(h.base_offset, 2 * b);
            q += record_batch_size_bytes(&h);
        }
        plog_read_release(logs[p], &r.req);
    }
    for (int p = 0; p < PARTS; p++) plog_close(logs[p]);
    /* and after reopening, the partial last blocks were carried correctly */
    for (int p = 0; p < PARTS; p += 7) {
        int err = 0;
        struct plog *log = plog_open(&H.shard, g_dir, "many", p, &cfg, &err);
        cr_assert_eq(plog_log_end_offset(log), 6);
        size_t len = build_batch(g_batch, sizeof g_batch, 99, 1, 10, 9, g_scratch);
        cr_assert_eq(harness_append(&H, log, g_batch, (uint32_t)len, true), 6);
        struct sync_read r;
        cr_assert_eq(harness_read(&H, log, &r, 0, 1 << 20), 1);
        cr_assert_eq(r.req.next_offset, 7);
        plog_read_release(log, &r.req);
        plog_close(log);
    }
}

Test(plog, lost_tail_of_a_sealed_segment_drops_what_follows) {
    /* A crash while a flush spans a roll can leave the old segment short and the new one
     * written: nothing from the lost write on was acknowledged, so recovery must end the
     * log at the first gap instead of leaving a hole in the offsets. */
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    for (int i = 0; i < 250; i++) append_one(log, (uint64_t)i, 3, 300, i, true);
    cr_assert_geq(log->segment_count, 4);
    int64_t base1 = log->segments[1]->base_offset, base2 = log->segments[2]->base_offset;
    plog_close(log);
    char path[400];
    snprintf(path, sizeof path, "%s/t-0/%020lld.log", g_dir, (long long)base1);
    uint8_t *data;
    size_t len;
    read_file(path, &data, &len);
    size_t pos = 0, last_pos = 0;
    while (pos < len) { /* find the last batch of segment 1 */
        struct record_batch_header h;
        if (record_batch_header_parse(data + pos, len - pos, &h) != RECORD_OK) break;
        last_pos = pos;
        pos += record_batch_size_bytes(&h);
    }
    write_file(path, data, last_pos + 20); /* its last write never happened */
    free(data);
    log = open_log(&cfg);
    cr_assert_eq(log->segment_count, 2, "segments after the gap are dropped");
    int idx = 0;
    while (idx < g_app_count && g_app[idx].last < base2) idx++;
    int64_t lost_from = g_app[idx - 1].base; /* the last batch of segment 1 */
    cr_assert_eq(plog_log_end_offset(log), lost_from);
    g_app_count = idx - 1;
    read_all_and_check(log, 0, 1 << 16);
    int64_t off = append_one(log, 4242, 2, 50, 1, true);
    cr_assert_eq(off, lost_from, "appends continue with no gap");
    read_all_and_check(log, 0, 1 << 16);
    snprintf(path, sizeof path, "%s/t-0/%020lld.log", g_dir, (long long)base2);
    cr_expect_neq(access(path, F_OK), 0, "the orphaned segment file is gone");
    plog_close(log);
}

/* A crash while a roll's last flush was in flight can leave the old segment sealed in
 * memory but without index files, its data written out of order: a later block down, an
 * earlier one (a held rewrite of a partial block) not. Such a batch has a whole header and
 * a bad body. Recovery scans that segment with CRCs, ends the log at the bad batch and
 * drops what follows (nothing from there on was acknowledged). */
Test(plog, unsealed_segment_with_a_torn_batch_is_cut_there_by_crc) {
    struct plog_config cfg = small_config();
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    for (int i = 0; i < 250; i++) append_one(log, 7000u + (uint64_t)i, 3, 300, i, true);
    cr_assert_geq(log->segment_count, 4);
    int64_t base1 = log->segments[1]->base_offset;
    plog_close(log);
    char path[400];
    snprintf(path, sizeof path, "%s/t-0/%020lld.index", g_dir, (long long)base1);
    cr_assert_eq(unlink(path), 0); /* its seal never completed */
    snprintf(path, sizeof path, "%s/t-0/%020lld.timeindex", g_dir, (long long)base1);
    cr_assert_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/t-0/%020lld.log", g_dir, (long long)base1);
    uint8_t *data;
    size_t len;
    read_file(path, &data, &len);
    size_t pos = 0;
    int64_t torn_base = -1;
    for (int k = 0; pos < len; k++) { /* the fourth batch: its body zeroed past the header */
        struct record_batch_header h;
        if (record_batch_header_parse(data + pos, len - pos, &h) != RECORD_OK) break;
        size_t size = record_batch_size_bytes(&h);
        if (k == 3) {
            torn_base = h.base_offset;
            memset(data + pos + RECORD_BATCH_HEADER_BYTES, 0, size - RECORD_BATCH_HEADER_BYTES);
            break;
        }
        pos += size;
    }
    cr_assert_geq(torn_base, 0);
    write_file(path, data, len);
    free(data);
    log = open_log(&cfg);
    cr_assert_eq(plog_log_end_offset(log), torn_base, "the log ends at the torn batch");
    cr_assert_eq(log->segment_count, 2, "segments after it are dropped");
    int idx = 0;
    while (idx < g_app_count && g_app[idx].base < torn_base) idx++;
    g_app_count = idx;
    read_all_and_check(log, 0, 1 << 16);
    plog_close(log);
}

/* ---------------------------------------------------------------- pipelined flushes */

/* One shard loop step that waits for every op in flight and then delivers the
 * completions it reaped in reverse order, so later flushes' writes complete before
 * earlier ones' (real I/O, real files: only the delivery order is changed). */
static void reversed_step(void) {
    storage_poll(&H.shard);
    if (H.shard.inflight_ops == 0 && io_uring_sq_ready(&H.ring) == 0) return;
    io_uring_submit_and_wait(&H.ring, H.shard.inflight_ops);
    static struct {
        struct uring_op *op;
        int32_t res;
        uint32_t flags;
    } cqes[256];
    unsigned n = 0;
    struct io_uring_cqe *cqe;
    while (n < 256 && io_uring_peek_cqe(&H.ring, &cqe) == 0) {
        cqes[n].op = io_uring_cqe_get_data(cqe);
        cqes[n].res = cqe->res;
        cqes[n].flags = cqe->flags;
        io_uring_cqe_seen(&H.ring, cqe);
        n++;
    }
    while (n > 0) {
        n--;
        if (cqes[n].op) cqes[n].op->complete(cqes[n].op, cqes[n].res, cqes[n].flags);
    }
}

static struct plog_flush *flush_at_test(struct plog *log, uint32_t i) {
    cr_assert_lt(i, log->flush_count);
    return &log->flush_ring[(log->flush_head + i) % PLOG_MAX_FLUSHES];
}

struct ordered {
    struct plog_append_req req;
    bool done;
    int status;
    int order;
    int64_t hw_at_done, durable_at_done;
};
static struct plog *g_cb_log;
static int g_seq;
static void ordered_done(struct plog_append_req *req, int status) {
    struct ordered *o = (struct ordered *)req;
    cr_assert(!o->done, "completed twice");
    o->done = true;
    o->status = status;
    o->order = ++g_seq;
    o->hw_at_done = plog_high_watermark(g_cb_log);
    o->durable_at_done = g_cb_log->durable_offset;
}

/* A real write error from now on: the active segment's descriptor is replaced by a
 * read-only one (EBADF on write). */
static void make_active_segment_read_only(struct plog *log) {
    char name[PLOG_PATH_BYTES + 64];
    snprintf(name, sizeof name, "%s/%020lld.log", log->dir,
             (long long)log->segments[log->segment_count - 1]->base_offset);
    int ro = open(name, O_RDONLY);
    cr_assert_geq(ro, 0);
    cr_assert_geq(dup2(ro, log->segments[log->segment_count - 1]->fd), 0);
    close(ro);
}

/* Open the log for a test whose appends complete through ordered_done. */
static struct plog *open_ordered(const struct plog_config *cfg) {
    struct plog *log = open_log(cfg);
    g_cb_log = log;
    g_seq = 0;
    g_app_count = 0;
    return log;
}

/* Close, reopen from disk and check the log ends where it did and reads back exactly
 * what was appended. */
static void close_reopen_and_check(struct plog *log, const struct plog_config *cfg) {
    int64_t end = plog_log_end_offset(log);
    plog_close(log);
    log = open_log(cfg);
    cr_assert_eq(plog_log_end_offset(log), end);
    read_all_and_check(log, 0, 100000);
    plog_close(log);
}

#define PIPE_ROUNDS 3
#define PIPE_PER_ROUND 48
static struct ordered g_ord[PIPE_ROUNDS * PIPE_PER_ROUND];

/* Append one ~30 KiB batch (29 records of 1000 bytes) with an ordered request. */
static void append_ordered(struct plog *log, int i, bool durable) {
    size_t len = build_batch(g_batch, sizeof g_batch, 1000u + (uint64_t)i * 100, 29, 1000, 5000 + i,
                             g_scratch);
    cr_assert(len > 0);
    g_ord[i] = (struct ordered){.req = {.done = ordered_done}};
    int64_t off = plog_append(log, g_batch, (uint32_t)len, durable, &g_ord[i].req);
    cr_assert(off >= 0, "append %d: %lld", i, (long long)off);
    cr_assert_lt(g_app_count, MAX_APPENDED);
    g_app[g_app_count++] = (struct appended){off, off + 28, 1000u + (uint64_t)i * 100, 29, 1000, 5000 + i};
}

/* Callbacks of one class (acks=1 or acks=all) ran in offset order, each after the
 * high watermark (and for acks=all the durable offset) passed its last offset. */
static void check_order(int count) {
    for (int durable = 0; durable <= 1; durable++) {
        int last_order = 0;
        for (int i = 0; i < count; i++) {
            struct ordered *o = &g_ord[i];
            if (o->req.durable != (durable == 1)) continue;
            cr_assert(o->done, "append %d never completed", i);
            cr_assert_eq(o->status, 0);
            cr_assert_gt(o->order, last_order, "append %d acked out of offset order", i);
            last_order = o->order;
            cr_assert_geq(o->hw_at_done, o->req.end_offset, "acked above the high watermark");
            if (durable) cr_assert_geq(o->durable_at_done, o->req.end_offset, "acks=all before sync");
        }
    }
}

Test(plog, pipelined_flushes_ack_in_offset_order_when_completions_arrive_reversed) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 1 << 20; /* ~35 batches a segment: the run rolls */
    struct plog *log = open_ordered(&cfg);
    int appended = 0;
    for (int round = 0; round < PIPE_ROUNDS; round++) {
        for (int k = 0; k < PIPE_PER_ROUND; k++, appended++)
            append_ordered(log, appended, appended % 3 == 0 || appended == PIPE_ROUNDS * PIPE_PER_ROUND - 1);
        storage_poll(&H.shard);
        cr_assert_geq(log->flush_count, 2, "~1.4 MiB over 256 KiB chunks: several flushes in flight");
        reversed_step(); /* appends of the next round arrive while flushes are in flight */
        int64_t hw = plog_high_watermark(log);
        cr_assert_leq(hw, plog_log_end_offset(log));
    }
    for (int i = 0; i < 1000 && g_seq < appended; i++) reversed_step();
    cr_assert_eq(g_seq, appended);
    check_order(appended);
    cr_expect_gt(log->flushes_pipelined, 0);
    cr_expect_geq(log->max_flushes_in_flight, 2);
    cr_assert_eq(plog_high_watermark(log), plog_log_end_offset(log));
    cr_assert_eq(log->durable_offset, plog_log_end_offset(log));
    cr_expect_gt(log->segment_count, 2);
    read_all_and_check(log, 0, 1u << 20);
    close_reopen_and_check(log, &cfg); /* from disk: every acknowledged batch, whole */
}

/* Small appends, each flushed with its partial last block while bigger flushes are in
 * flight: the partial block is never written by two flushes at once (asserted in the
 * engine) and the content on disk is exact. */
static void mixed_partial_flushes(bool dsync_writes) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 1 << 20;
    cfg.dsync_writes = dsync_writes;
    struct plog *log = open_ordered(&cfg);
    uint64_t rng = 7;
    int appended = 0;
    for (int step = 0; step < 60; step++) {
        int n = (int)(splitmix64(&rng) % 8); /* 0..7 batches of ~30 KiB, or one tiny one */
        if (n == 0 && appended < PIPE_ROUNDS * PIPE_PER_ROUND) {
            append_one(log, 9000u + (uint64_t)step, 1, 10, 1, false);
        }
        for (int k = 0; k < n && appended < PIPE_ROUNDS * PIPE_PER_ROUND; k++, appended++)
            append_ordered(log, appended, splitmix64(&rng) % 2 == 0);
        if (step % 2) reversed_step();
        else harness_step(&H);
    }
    for (int i = 0; i < 1000 && (g_seq < appended || plog_high_watermark(log) <
                                                          plog_log_end_offset(log)); i++)
        reversed_step();
    check_order(appended);
    cr_assert_eq(plog_high_watermark(log), plog_log_end_offset(log));
    /* whether a flush starts while a partial write is still in flight here depends on
     * the device's timing (CI saw none once): the held write is shown deterministically
     * by flush_after_a_partial_block_write_does_not_wait_for_it */
    if (!dsync_writes) cr_assert_eq(log->dsync_flushes, 0);
    read_all_and_check(log, 0, 1u << 20);
    close_reopen_and_check(log, &cfg);
}

Test(plog, pipelined_flushes_mixed_with_partial_block_flushes) { mixed_partial_flushes(true); }

Test(plog, pipelined_flushes_mixed_with_partial_block_flushes_fdatasync) {
    mixed_partial_flushes(false);
}

/* A small acks=all append goes alone (its last block zero padded); ~200 KiB more arrive
 * while it is in flight: the next flush starts at once, holding back only its write of
 * the shared block, which goes when the first flush's write is done -- delivered here in
 * reverse, so the held write is submitted from the completion. Acks in offset order, the
 * disk content exact. */
Test(plog, flush_after_a_partial_block_write_does_not_wait_for_it) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 8 << 20;
    struct plog *log = open_ordered(&cfg);
    append_ordered(log, 0, true);
    storage_poll(&H.shard);
    cr_assert_eq(log->flush_count, 1);
    cr_assert(flush_at_test(log, 0)->wrote_partial, "a lone small flush pads its last block");
    for (int i = 1; i < 8; i++) append_ordered(log, i, true);
    storage_poll(&H.shard);
    cr_assert_eq(log->flush_count, 2, "the next flush started with the partial one in flight");
    cr_assert_eq(log->deferred_blocks, 1);
    cr_assert_not_null(log->deferred.flush);
    for (int i = 0; i < 100 && g_seq < 8; i++) reversed_step();
    cr_assert_eq(g_seq, 8);
    cr_assert_null(log->deferred.flush);
    check_order(8);
    cr_assert_eq(log->durable_offset, plog_log_end_offset(log));
    cr_assert_gt(log->dsync_flushes, 0, "durable only: made durable by RWF_DSYNC writes");
    read_all_and_check(log, 0, 1u << 20);
    close_reopen_and_check(log, &cfg);
}

/* The same shape with the partial flush failing (the segment's descriptor swapped for
 * a read-only one): the held block write is never submitted, every append gets -EIO in
 * offset order, and nothing hangs. */
Test(plog, held_block_write_fails_with_the_partial_flush) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 8 << 20;
    struct plog *log = open_ordered(&cfg);
    append_one(log, 77, 3, 100, 1, true); /* the segment exists and is synced */
    make_active_segment_read_only(log);
    g_app_count = 0;
    append_ordered(log, 0, true);
    storage_poll(&H.shard);
    cr_assert_eq(log->flush_count, 1);
    for (int i = 1; i < 8; i++) append_ordered(log, i, true);
    storage_poll(&H.shard);
    cr_assert_eq(log->flush_count, 2);
    cr_assert_not_null(log->deferred.flush);
    for (int i = 0; i < 100 && g_seq < 8; i++) reversed_step();
    cr_assert_eq(g_seq, 8);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(g_ord[i].status, -EIO, "append %d: %d", i, g_ord[i].status);
        if (i > 0) cr_assert_gt(g_ord[i].order, g_ord[i - 1].order);
    }
    cr_assert_null(log->deferred.flush);
    cr_assert_eq(log->flush_count, 0);
    plog_close(log);
}

/* Preallocation sets the active file's size ahead of the data (writes land inside
 * i_size); a sealed segment is cut back to its data once written, and a clean close
 * cuts the active one. */
Test(plog, preallocated_zero_tail_is_trimmed_at_seal_and_close) {
    struct plog_config cfg = small_config(); /* 64 KiB segments, 256 KiB step */
    cfg.segment_bytes = 1 << 20;
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    append_one(log, 1, 10, 1000, 1, true);
    struct segment *active = log->segments[log->segment_count - 1];
    for (int i = 0; i < 100 && log->alloc_in_flight; i++) harness_step(&H);
    struct stat st;
    cr_assert_eq(fstat(active->fd, &st), 0);
    cr_expect_gt((uint64_t)st.st_size, active->size_bytes, "size set ahead by fallocate");
    for (int i = 0; log->segment_count < 3; i++) {
        cr_assert_lt(i, 400);
        append_one(log, 100u + (uint64_t)i, 10, 1000, 1, i % 2 == 0);
    }
    for (int i = 0; i < 100 && log->alloc_in_flight; i++) harness_step(&H);
    for (uint32_t k = 0; k + 1 < log->segment_count; k++) {
        const struct segment *seg = log->segments[k];
        cr_assert(seg->sealed);
        cr_assert_eq(fstat(seg->fd, &st), 0);
        cr_expect_eq((uint64_t)st.st_size, (seg->size_bytes + 4095) / 4096 * 4096,
                     "sealed segment %u: file %jd bytes, data %llu", k, (intmax_t)st.st_size,
                     (unsigned long long)seg->size_bytes);
    }
    read_all_and_check(log, 0, 1u << 20);
    int64_t end = plog_log_end_offset(log);
    char name[PLOG_PATH_BYTES + 64];
    snprintf(name, sizeof name, "%s/%020lld.log", log->dir,
             (long long)log->segments[log->segment_count - 1]->base_offset);
    uint64_t tail_bytes = log->segments[log->segment_count - 1]->size_bytes;
    plog_close(log);
    cr_assert_eq(stat(name, &st), 0);
    cr_expect_eq((uint64_t)st.st_size, tail_bytes, "clean close leaves no zero tail");
    log = open_log(&cfg);
    cr_assert_eq(plog_log_end_offset(log), end);
    read_all_and_check(log, 0, 100000);
    plog_close(log);
}

/* A write error while flushes are pipelined: the partition fails, every append not yet
 * acknowledged gets -EIO in offset order, the high watermark stays, and after reopen
 * the acknowledged batches are intact and nothing else is there. The error is real:
 * the active segment's descriptor is replaced by a read-only one (EBADF on write). */
Test(plog, write_error_in_a_pipeline_fails_only_the_unacknowledged) {
    struct plog_config cfg = small_config();
    cfg.segment_bytes = 8 << 20;
    struct plog *log = open_ordered(&cfg);
    for (int i = 0; i < PIPE_PER_ROUND; i++) append_ordered(log, i, i % 2 == 0);
    for (int i = 0; i < 1000 && g_seq < PIPE_PER_ROUND; i++) reversed_step();
    check_order(PIPE_PER_ROUND);
    int64_t acked_end = plog_high_watermark(log);
    cr_assert_eq(acked_end, plog_log_end_offset(log));
    int acked_count = g_app_count;

    make_active_segment_read_only(log);
    for (int i = PIPE_PER_ROUND; i < 2 * PIPE_PER_ROUND; i++) append_ordered(log, i, i % 2 == 0);
    storage_poll(&H.shard);
    cr_assert_geq(log->flush_count, 2);
    for (int i = 0; i < 1000 && g_seq < 2 * PIPE_PER_ROUND; i++) reversed_step();
    cr_assert_eq(g_seq, 2 * PIPE_PER_ROUND);
    for (int i = PIPE_PER_ROUND; i < 2 * PIPE_PER_ROUND; i++) {
        cr_assert_eq(g_ord[i].status, -EIO);
        cr_assert_gt(g_ord[i].order, g_ord[i - 1].order, "failed in offset order");
    }
    cr_assert_eq(plog_high_watermark(log), acked_end);
    cr_assert_neq(log->failed, 0);
    cr_assert_eq(plog_append(log, g_batch, 100, false, NULL), -EIO);
    plog_close(log);

    g_app_count = acked_count;
    log = open_log(&cfg);
    cr_assert_eq(plog_log_end_offset(log), acked_end);
    read_all_and_check(log, 0, 100000);
    plog_close(log);
}

/* acks=1 traffic across a roll, then one acks=all append in the new segment: the
 * sealed segment was fdatasynced when its data was down, before that ack. */
Test(plog, sealed_segment_is_synced_before_a_later_durable_ack) {
    struct plog_config cfg = small_config(); /* 64 KiB segments */
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    for (int i = 0; i < 8; i++) append_one(log, 300u + (uint64_t)i, 10, 1000, 1, false);
    cr_assert_gt(log->segment_count, 1, "rolled");
    cr_expect_gt(log->fsyncs, 0, "a sealed segment is synced even with acks=1 only");
    uint64_t fsyncs = log->fsyncs;
    for (int i = 0; i < 8; i++) append_one(log, 400u + (uint64_t)i, 1, 100, 1, false);
    cr_expect_eq(log->fsyncs, fsyncs, "no roll, no durable append: no fdatasync");
    append_one(log, 500, 1, 100, 1, true);
    cr_expect_eq(log->durable_offset, plog_log_end_offset(log));
    read_all_and_check(log, 0, 1u << 20);
    plog_close(log);
}

/* A sealed segment's index files are written through the ring (file_write.c), not with
 * blocking calls on the shard: each seal starts an openat -> writev -> close per file,
 * the segment stays index_dirty (retention keeps it) until both are done, and the files
 * hold exactly the in-memory entries and a trailer that loads on reopen. A seal whose
 * index file cannot be created (a directory is in its way) is logged and costs only a
 * rebuild at the next open. The producer snapshot each roll takes goes the same way
 * (temp file renamed into place): the newest two are kept, no temp file is left, and
 * the newest reads back. */
static void check_index_file(const char *dir, const struct segment *seg, enum segment_index which) {
    struct iovec iov[2];
    struct segment_index_trailer t;
    char name[SEGMENT_NAME_BYTES], path[PLOG_PATH_BYTES + 64];
    segment_index_file(seg, which, iov, &t, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *data;
    size_t len;
    read_file(path, &data, &len);
    cr_assert_eq(len, iov[0].iov_len + sizeof t, "%s: %zu bytes", name, len);
    cr_expect_eq(memcmp(data, iov[0].iov_base, iov[0].iov_len), 0, "%s: entries", name);
    cr_expect_eq(memcmp(data + iov[0].iov_len, &t, sizeof t), 0, "%s: trailer", name);
    free(data);
}

Test(plog, sealed_segment_indexes_are_written_through_the_ring) {
    struct plog_config cfg = small_config(); /* 64 KiB segments */
    struct plog *log = open_log(&cfg);
    g_app_count = 0;
    uint64_t rng = 5;
    bool saw_in_flight = false;
    while (log->segment_count < 5) {
        append_one(log, splitmix64(&rng), 1 + (int)(splitmix64(&rng) % 8), 700, 1000, false);
        if (log->index_seg) {
            saw_in_flight = true;
            cr_expect(log->index_seg->index_dirty, "dirty (kept) until both files are written");
        }
    }
    for (int i = 0; i < 1000 && (log->index_seg || log->seal_pending || log->snap_write.busy);
         i++)
        harness_step(&H);
    cr_assert_null(log->index_seg);
    cr_assert(!log->snap_write.busy);
    cr_expect(saw_in_flight, "a seal's index files were seen in flight");
    for (int i = 0; i < 1000 && log->unlinks_in_flight; i++) harness_step(&H);
    cr_assert_eq(log->unlinks_in_flight, 0, "the old snapshots' unlinks completed");
    cr_expect_eq(count_files(".snapshot"), 2, "the newest two snapshots are kept");
    cr_expect_eq(count_files(".tmp"), 0);
    struct producer_state ps;
    cr_assert_eq(producer_state_init(&ps, 16, 60000), 0);
    cr_expect_eq(producer_state_read_snapshot(&ps, NULL, log->dir, log->snapshot_offsets[0], 0),
                 0, "the newest snapshot reads back");
    cr_expect_eq(log->snapshot_offsets[0], log->segments[log->segment_count - 1]->base_offset);
    producer_state_free(&ps);
    uint32_t sealed = log->segment_count - 1;
    cr_expect_gt(log->index_writes_ring, 0);
    cr_expect_eq(log->index_writes_ring + log->index_writes_blocking, sealed);
    for (uint32_t k = 0; k < sealed; k++) {
        cr_expect(!log->segments[k]->index_dirty);
        check_index_file(log->dir, log->segments[k], SEGMENT_OFFSET_INDEX);
        check_index_file(log->dir, log->segments[k], SEGMENT_TIME_INDEX);
    }
    /* the next seal meets a directory where its offset index should go */
    int64_t blocked_base = log->segments[log->segment_count - 1]->base_offset;
    char path[PLOG_PATH_BYTES + 64];
    snprintf(path, sizeof path, "%s/%020lld.index", log->dir, (long long)blocked_base);
    cr_assert_eq(mkdir(path, 0755), 0);
    uint32_t before = log->segment_count;
    while (log->segment_count == before)
        append_one(log, splitmix64(&rng), 1 + (int)(splitmix64(&rng) % 8), 700, 1000, false);
    for (int i = 0; i < 1000 && (log->index_seg || log->seal_pending); i++) harness_step(&H);
    cr_assert_null(log->index_seg);
    cr_expect(!log->segments[before - 1]->index_dirty, "a failed index write ends too");
    plog_close(log);
    cr_assert_eq(rmdir(path), 0);
    log = open_log(&cfg);
    read_all_and_check(log, 0, 100000);
    read_all_and_check(log, blocked_base, 3000);
    plog_close(log);
}
