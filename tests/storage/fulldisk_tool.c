/* fulldisk_tool.c - the process side of the full-disk test (full_disk_test.sh runs it
 * in a freshly mounted small ext4 filesystem).
 *
 *   fulldisk_tool DIR
 * 1. appends durable batches to partition 0 and partition 1 and keeps what was acked;
 * 2. fills the filesystem with a filler file until write(2) says ENOSPC;
 * 3. appends durable batches to partition 0 until one fails: it must fail with -EIO
 *    (KAFKA_STORAGE_ERROR) and every later append to it must be refused with -EIO;
 * 4. reads partition 0 back: everything acknowledged is intact, and partition 1 is
 *    unaffected (reads work, it is not failed);
 * 5. deletes the filler, reopens partition 0 (recovery), checks the acknowledged data
 *    again and that durable appends succeed again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/storage/harness.h"

static struct harness H;
static uint8_t batch_buf[1 << 18], scratch[1 << 18];
static int64_t acked_end[2];
static uint64_t seed = 1;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                            \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static struct plog_config tool_config(void) {
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 4 << 20;
    cfg.preallocate_step_bytes = 1 << 20;
    cfg.retention_ms = -1;
    return cfg;
}

static struct plog *open_part(const char *dir, int part) {
    struct plog_config cfg = tool_config();
    int err;
    struct plog *log = plog_open(&H.shard, dir, "full", part, &cfg, &err);
    CHECK(log, "open partition %d: %d", part, err);
    return log;
}

static int64_t append(struct plog *log) {
    size_t len = build_batch(batch_buf, sizeof batch_buf, seed, 16, 1000, 1, scratch);
    seed += 100;
    return harness_append(&H, log, batch_buf, (uint32_t)len, true);
}

/* Read [start, end) and verify every batch; returns batches seen. */
static int check_readable(struct plog *log, int64_t end) {
    int64_t next = 0;
    int batches = 0;
    while (next < end) {
        struct sync_read r;
        int rc = harness_read(&H, log, &r, next, 1 << 20);
        CHECK(rc == 1 && r.req.bytes > 0, "read at %" PRId64 ": %d", next, rc);
        for (uint32_t f = 0; f < r.req.frag_count; f++) {
            const uint8_t *p = r.req.frags[f].ptr;
            uint32_t left = r.req.frags[f].len;
            while (left > 0) {
                struct record_batch_header h;
                CHECK(record_batch_header_parse(p, left, &h) == RECORD_OK, "header");
                uint32_t size = (uint32_t)record_batch_size_bytes(&h);
                CHECK(verify_batch(p, size), "batch %" PRId64 " corrupt", h.base_offset);
                p += size;
                left -= size;
                batches++;
            }
        }
        next = r.req.next_offset;
        plog_read_release(log, &r.req);
    }
    return batches;
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: fulldisk_tool DIR");
    const char *dir = argv[1];
    CHECK(harness_init(&H, 1 << 20, 64, 32u << 20) == 0, "harness");
    struct plog *p0 = open_part(dir, 0), *p1 = open_part(dir, 1);
    for (int i = 0; i < 100; i++) {
        CHECK(append(p0) >= 0, "initial append p0");
        CHECK(append(p1) >= 0, "initial append p1");
    }
    acked_end[0] = plog_log_end_offset(p0);
    acked_end[1] = plog_log_end_offset(p1);

    char filler[512];
    snprintf(filler, sizeof filler, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "filler open");
    static uint8_t junk[1 << 20];
    memset(junk, 0xab, sizeof junk);
    uint64_t filled = 0;
    for (;;) {
        ssize_t n = write(fd, junk, sizeof junk);
        if (n <= 0) break;
        filled += (uint64_t)n;
    }
    fsync(fd);
    close(fd);
    printf("filled %" PRIu64 " bytes\n", filled);

    int64_t rc = 0;
    int ok_after_full = 0;
    for (int i = 0; i < 100000 && rc >= 0; i++) {
        rc = append(p0);
        if (rc >= 0) {
            ok_after_full++;
            acked_end[0] = plog_log_end_offset(p0);
        }
    }
    printf("appends acknowledged after the filesystem filled: %d (preallocated space); "
           "then status %" PRId64 "\n", ok_after_full, rc);
    CHECK(rc == -EIO, "a full disk must fail the append with -EIO, got %" PRId64, rc);
    CHECK(p0->failed == -ENOSPC, "partition failed with %d, expected -ENOSPC", p0->failed);
    CHECK(append(p0) == -EIO, "later appends are refused with -EIO");
    int n0 = check_readable(p0, acked_end[0]);
    int n1 = check_readable(p1, acked_end[1]);
    CHECK(!p1->failed, "partition 1 must not be failed");
    printf("while failed: p0 %d batches intact, p1 %d batches intact\n", n0, n1);

    CHECK(unlink(filler) == 0, "unlink filler");
    plog_close(p0);
    p0 = open_part(dir, 0);
    CHECK(plog_log_end_offset(p0) >= acked_end[0], "acknowledged data lost: end %" PRId64
          " < %" PRId64, plog_log_end_offset(p0), acked_end[0]);
    n0 = check_readable(p0, acked_end[0]);
    for (int i = 0; i < 50; i++) CHECK(append(p0) >= 0, "append after space was freed");
    CHECK(append(p1) >= 0, "append p1");
    check_readable(p0, plog_log_end_offset(p0));
    printf("PASS: after freeing space p0 recovered with %d acknowledged batches intact and "
           "appends resumed (log end %" PRId64 ")\n", n0, plog_log_end_offset(p0));
    plog_close(p0);
    plog_close(p1);
    harness_fini(&H);
    return 0;
}
