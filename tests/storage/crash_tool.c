/* crash_tool.c - the process side of the crash test (crash_test.py drives it).
 *
 *   crash_tool write DIR    append durable batches forever; print "base last" for each
 *                           acknowledged batch on stdout (one write(2) per line, so a
 *                           SIGKILL can only lose lines of batches not yet printed)
 *   crash_tool verify DIR ACKED
 *                           recover the log, read it all, check every batch's CRC and
 *                           record contents, and check every line of ACKED is a batch
 *                           at exactly that offset range; print the log end offset
 *
 * Batches are built by tests/storage/harness.h: record values are a function of their
 * key, so the verifier checks content without knowing what the writer sent. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/storage/harness.h"

#define MAX_INFLIGHT 8
#define MAX_ACKED (1 << 20)

static struct harness H;
static uint8_t batch_buf[1 << 20], scratch[1 << 20];

struct ack {
    struct plog_append_req req;
    bool busy;
};

static void on_ack(struct plog_append_req *req, int status) {
    struct ack *a = (struct ack *)req;
    a->busy = false;
    if (status != 0) {
        fprintf(stderr, "append failed: %d\n", status);
        exit(3);
    }
    char line[64];
    int n = snprintf(line, sizeof line, "%" PRId64 " %" PRId64 "\n", req->base_offset,
                     req->end_offset - 1);
    if (write(STDOUT_FILENO, line, (size_t)n) != n) exit(4);
}

static struct plog_config tool_config(void) {
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 512 * 1024; /* rolls happen during the test */
    cfg.index_interval_bytes = 4096;
    cfg.preallocate_step_bytes = 1 << 20;
    cfg.retention_ms = -1;
    return cfg;
}

static int do_write(const char *dir) {
    struct plog_config cfg = tool_config();
    int err;
    struct plog *log = plog_open(&H.shard, dir, "crash", 0, &cfg, &err);
    if (!log) return 2;
    uint64_t rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    struct ack acks[MAX_INFLIGHT] = {0};
    for (;;) {
        /* a few appends per iteration: one group commit covers them */
        int n = 1 + (int)(splitmix64(&rng) % MAX_INFLIGHT);
        for (int i = 0; i < n; i++) {
            if (acks[i].busy) continue;
            int records = 1 + (int)(splitmix64(&rng) % 20);
            int value = 10 + (int)(splitmix64(&rng) % 3000);
            size_t len = build_batch(batch_buf, sizeof batch_buf, splitmix64(&rng), records,
                                     value, (int64_t)time(NULL) * 1000, scratch);
            acks[i].req.done = on_ack;
            int64_t off = plog_append(log, batch_buf, (uint32_t)len, true, &acks[i].req);
            if (off == -ENOBUFS) break;
            if (off < 0) {
                fprintf(stderr, "append refused: %" PRId64 "\n", off);
                return 3;
            }
            acks[i].busy = true;
        }
        harness_step(&H);
    }
}

static int do_verify(const char *dir, const char *acked_path) {
    struct plog_config cfg = tool_config();
    int err;
    struct plog *log = plog_open(&H.shard, dir, "crash", 0, &cfg, &err);
    if (!log) return 2;
    /* every batch in the log, in order */
    int64_t *bases = malloc(MAX_ACKED * sizeof *bases), *lasts = malloc(MAX_ACKED * sizeof *lasts);
    size_t count = 0;
    int64_t next = plog_log_start_offset(log);
    while (next < plog_high_watermark(log)) {
        struct sync_read r;
        int rc = harness_read(&H, log, &r, next, 1 << 20);
        if (rc != 1 || r.req.bytes == 0) {
            fprintf(stderr, "read at %" PRId64 " failed: %d\n", next, rc);
            return 1;
        }
        for (uint32_t f = 0; f < r.req.frag_count; f++) {
            const uint8_t *p = r.req.frags[f].ptr;
            uint32_t left = r.req.frags[f].len;
            while (left > 0) {
                struct record_batch_header h;
                if (record_batch_header_parse(p, left, &h) != RECORD_OK) return 1;
                uint32_t size = (uint32_t)record_batch_size_bytes(&h);
                if (!verify_batch(p, size)) {
                    fprintf(stderr, "batch at %" PRId64 " corrupt\n", h.base_offset);
                    return 1;
                }
                if (count > 0 && h.base_offset != lasts[count - 1] + 1) {
                    fprintf(stderr, "gap before %" PRId64 "\n", h.base_offset);
                    return 1;
                }
                if (count == MAX_ACKED) return 1;
                bases[count] = h.base_offset;
                lasts[count++] = record_batch_last_offset(&h);
                p += size;
                left -= size;
            }
        }
        next = r.req.next_offset;
        plog_read_release(log, &r.req);
    }
    FILE *f = fopen(acked_path, "r");
    if (!f) return 1;
    long long b, l;
    size_t acked = 0, j = 0;
    while (fscanf(f, "%lld %lld", &b, &l) == 2) {
        while (j < count && bases[j] < b) j++;
        if (j == count || bases[j] != b || lasts[j] != l) {
            fprintf(stderr, "acknowledged batch %lld..%lld missing\n", b, l);
            return 1;
        }
        acked++;
    }
    fclose(f);
    printf("ok batches=%zu acked=%zu log_end=%" PRId64 "\n", count, acked,
           plog_log_end_offset(log));
    plog_close(log);
    free(bases);
    free(lasts);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: crash_tool write DIR | verify DIR ACKED\n");
        return 2;
    }
    if (harness_init(&H, 1 << 20, 64, 32u << 20) != 0) return 2;
    if (strcmp(argv[1], "write") == 0) return do_write(argv[2]);
    if (strcmp(argv[1], "verify") == 0 && argc == 4) {
        int rc = do_verify(argv[2], argv[3]);
        if (rc == 0) harness_fini(&H); /* on failure the log is left open: just exit */
        return rc;
    }
    return 2;
}
