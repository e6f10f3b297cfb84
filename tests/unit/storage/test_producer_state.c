/* test_producer_state.c - the idempotent-producer table: duplicates inside and outside
 * the window of 5, gaps, epoch fencing and bumps, sequence wraparound, the LRU bound,
 * expiry, snapshot round trip, a torn snapshot, and snapshot selection. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/producer_state.h"

#define NOW_MS 1700000000000LL

static struct producer_state ps;

static void setup(void) { cr_assert_eq(producer_state_init(&ps, 64, 3600 * 1000), 0); }
static void teardown(void) { producer_state_free(&ps); }

static struct producer_append batch(int64_t pid, int16_t epoch, int32_t first_seq, int32_t count) {
    return (struct producer_append){.producer_id = pid, .epoch = epoch, .first_seq = first_seq,
                                    .last_offset_delta = count - 1, .max_timestamp_ms = NOW_MS};
}

/* check, and when APPEND record it at *next_offset (advanced by the count). */
static enum producer_verdict produce(int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                                     int64_t *next_offset, struct producer_batch *dup) {
    struct producer_append a = batch(pid, epoch, seq, count);
    enum producer_verdict v = producer_state_check(&ps, &a, NOW_MS, dup);
    if (v == PRODUCER_APPEND) {
        cr_assert_eq(producer_state_update(&ps, &a, *next_offset, NOW_MS), 0);
        *next_offset += count;
    }
    return v;
}

TestSuite(producer_state, .init = setup, .fini = teardown);

Test(producer_state, in_order_batches_append) {
    int64_t off = 0;
    cr_assert_eq(produce(7, 0, 0, 10, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(7, 0, 10, 5, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(off, 15);
    const struct producer_entry *e = producer_state_find(&ps, 7);
    cr_assert_not_null(e);
    cr_assert_eq(e->epoch, 0);
    cr_assert_eq(e->batch_count, 2);
}

Test(producer_state, duplicate_inside_window_answers_original_offset) {
    int64_t off = 100;
    for (int i = 0; i < 5; i++) cr_assert_eq(produce(7, 0, i * 3, 3, &off, NULL), PRODUCER_APPEND);
    struct producer_batch dup;
    for (int i = 0; i < 5; i++) { /* every one of the last 5 is recognised */
        memset(&dup, 0, sizeof dup);
        cr_assert_eq(produce(7, 0, i * 3, 3, &off, &dup), PRODUCER_DUPLICATE);
        cr_assert_eq(dup.base_offset, 100 + i * 3);
        cr_assert_eq(dup.first_seq, i * 3);
        cr_assert_eq(dup.last_seq, i * 3 + 2);
    }
    cr_assert_eq(off, 115, "duplicates were not appended");
    /* a retry covering a different range than any kept batch is not a duplicate */
    cr_assert_eq(produce(7, 0, 3, 6, &off, NULL), PRODUCER_OUT_OF_ORDER);
}

Test(producer_state, duplicate_outside_window_is_out_of_order) {
    int64_t off = 0;
    for (int i = 0; i < 6; i++) cr_assert_eq(produce(7, 0, i, 1, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(7, 0, 0, 1, &off, NULL), PRODUCER_OUT_OF_ORDER, "seq 0 left the window");
    cr_assert_eq(produce(7, 0, 1, 1, &off, NULL), PRODUCER_DUPLICATE);
    cr_assert_eq(producer_verdict_kafka_code(PRODUCER_OUT_OF_ORDER), 45);
}

Test(producer_state, gap_is_out_of_order) {
    int64_t off = 0;
    cr_assert_eq(produce(7, 0, 0, 4, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(7, 0, 5, 1, &off, NULL), PRODUCER_OUT_OF_ORDER);
    cr_assert_eq(produce(7, 0, 4, 1, &off, NULL), PRODUCER_APPEND, "the gap did not change state");
}

Test(producer_state, unknown_producer_any_sequence_kip360) {
    int64_t off = 0;
    cr_assert_eq(produce(9, 3, 1234, 2, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(9, 3, 1236, 1, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(9, 3, 1240, 1, &off, NULL), PRODUCER_OUT_OF_ORDER);
}

Test(producer_state, epoch_fencing_and_bump) {
    int64_t off = 0;
    cr_assert_eq(produce(7, 2, 0, 3, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(7, 1, 3, 1, &off, NULL), PRODUCER_FENCED);
    cr_assert_eq(producer_verdict_kafka_code(PRODUCER_FENCED), 47);
    cr_assert_eq(produce(7, 3, 5, 1, &off, NULL), PRODUCER_OUT_OF_ORDER, "new epoch must start at 0");
    cr_assert_eq(produce(7, 3, 0, 2, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(7, 2, 3, 1, &off, NULL), PRODUCER_FENCED, "old epoch now fenced");
    cr_assert_eq(produce(7, 3, 0, 2, &off, NULL), PRODUCER_DUPLICATE);
    cr_assert_eq(producer_state_find(&ps, 7)->batch_count, 1, "old epoch's batches forgotten");
}

Test(producer_state, sequence_wraps_at_int32_max) {
    cr_assert_eq(producer_last_seq(INT32_MAX - 1, 2), 0);
    cr_assert_eq(producer_last_seq(INT32_MAX, 0), INT32_MAX);
    cr_assert_eq(producer_last_seq(INT32_MAX - 4, 9), 4);
    int64_t off = 0;
    cr_assert_eq(produce(7, 0, INT32_MAX - 2, 3, &off, NULL), PRODUCER_APPEND); /* ends at MAX */
    cr_assert_eq(produce(7, 0, 0, 2, &off, NULL), PRODUCER_APPEND, "0 follows INT32_MAX");
    cr_assert_eq(produce(7, 0, 2, 4, &off, NULL), PRODUCER_APPEND);
    struct producer_batch dup;
    cr_assert_eq(produce(7, 0, INT32_MAX - 2, 3, &off, &dup), PRODUCER_DUPLICATE);
    cr_assert_eq(dup.base_offset, 0);
    /* a batch that itself crosses the wrap */
    cr_assert_eq(produce(8, 0, INT32_MAX - 1, 4, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(8, 0, 2, 1, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(produce(8, 0, INT32_MAX - 1, 4, &off, &dup), PRODUCER_DUPLICATE);
    cr_assert_eq(dup.last_seq, 1);
}

Test(producer_state, lru_eviction_bound) {
    producer_state_free(&ps);
    cr_assert_eq(producer_state_init(&ps, 20, 0), 0);
    int64_t off = 0;
    for (int64_t pid = 0; pid < 20; pid++) cr_assert_eq(produce(pid, 0, 0, 1, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(ps.count, 20);
    /* touch producer 0 so producer 1 is now the least recently used */
    cr_assert_eq(produce(0, 0, 1, 1, &off, NULL), PRODUCER_APPEND);
    for (int64_t pid = 100; pid < 105; pid++) cr_assert_eq(produce(pid, 0, 0, 1, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(ps.count, 20, "never beyond max_producers");
    cr_assert_eq(ps.capacity, 20);
    cr_assert_eq(ps.evictions, 5);
    cr_assert_not_null(producer_state_find(&ps, 0), "recently used survives");
    for (int64_t pid = 1; pid <= 5; pid++) cr_assert_null(producer_state_find(&ps, pid));
    for (int64_t pid = 6; pid < 20; pid++) cr_assert_not_null(producer_state_find(&ps, pid));
    for (int64_t pid = 100; pid < 105; pid++) cr_assert_not_null(producer_state_find(&ps, pid));
    /* survivors keep their state through the moves */
    cr_assert_eq(produce(19, 0, 0, 1, &off, NULL), PRODUCER_DUPLICATE);
    cr_assert_eq(produce(0, 0, 2, 1, &off, NULL), PRODUCER_APPEND);
    /* an evicted producer is unknown again: accepted at any sequence (KIP-360) */
    cr_assert_eq(produce(3, 0, 1, 1, &off, NULL), PRODUCER_APPEND);
}

Test(producer_state, idle_producer_expires) {
    struct producer_append a = batch(7, 0, 0, 1);
    cr_assert_eq(producer_state_update(&ps, &a, 0, NOW_MS), 0);
    struct producer_append next = batch(7, 0, 5, 1);
    cr_assert_eq(producer_state_check(&ps, &next, NOW_MS + 1000, NULL), PRODUCER_OUT_OF_ORDER);
    cr_assert_eq(producer_state_check(&ps, &next, NOW_MS + 3600 * 1000 + 1, NULL), PRODUCER_APPEND);
}

static char dir[64];

static void mkdir_tmp(void) {
    strcpy(dir, "/tmp/test_producer_state_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(producer_state, snapshot_round_trip) {
    mkdir_tmp();
    int64_t off = 0;
    for (int64_t pid = 1; pid <= 30; pid++)
        for (int i = 0; i < (int)(pid % 8); i++) cr_assert_eq(produce(pid, (int16_t)(pid % 3), i * 2, 2, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(producer_state_write_snapshot(&ps, NULL, dir, off), 0);
    struct producer_state copy;
    cr_assert_eq(producer_state_init(&copy, 64, 3600 * 1000), 0);
    cr_assert_eq(producer_state_read_snapshot(&copy, NULL, dir, off, NOW_MS), 0);
    uint32_t with_batches = 0;
    for (int64_t pid = 1; pid <= 30; pid++) {
        const struct producer_entry *a = producer_state_find(&ps, pid), *b = producer_state_find(&copy, pid);
        if (!a) continue;
        with_batches++;
        cr_assert_not_null(b);
        cr_assert_eq(a->epoch, b->epoch);
        cr_assert_eq(a->batch_count, b->batch_count);
        for (uint32_t k = 0; k < a->batch_count; k++) {
            const struct producer_batch *x = &a->batches[(a->batch_head + k) % PRODUCER_BATCHES_KEPT];
            const struct producer_batch *y = &b->batches[(b->batch_head + k) % PRODUCER_BATCHES_KEPT];
            cr_assert_eq(x->first_seq, y->first_seq);
            cr_assert_eq(x->last_seq, y->last_seq);
            cr_assert_eq(x->base_offset, y->base_offset);
        }
    }
    cr_assert_eq(copy.count, with_batches);
    /* the copy answers a duplicate with the original offset */
    struct producer_append dupa = batch(7, 1, 12, 2);
    struct producer_batch dup;
    cr_assert_eq(producer_state_check(&copy, &dupa, NOW_MS, &dup), PRODUCER_DUPLICATE);
    cr_assert_eq(dup.base_offset, producer_state_find(&ps, 7)->batches[(producer_state_find(&ps, 7)->batch_head + 4) % 5].base_offset);
    producer_state_free(&copy);
    rm_dir();
}

Test(producer_state, torn_snapshot_is_rejected) {
    mkdir_tmp();
    int64_t off = 0;
    for (int64_t pid = 1; pid <= 5; pid++) cr_assert_eq(produce(pid, 0, 0, 3, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(producer_state_write_snapshot(&ps, NULL, dir, 15), 0);
    char path[160];
    snprintf(path, sizeof path, "%s/00000000000000000015.snapshot", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 7), 0);
    cr_assert_eq(producer_state_read_snapshot(&ps, NULL, dir, 15, NOW_MS), -EBADMSG);
    cr_assert_eq(ps.count, 0, "a bad snapshot leaves an empty state, not a partial one");
    /* a flipped byte fails the CRC */
    cr_assert_eq(produce(1, 0, 0, 3, &off, NULL), PRODUCER_APPEND);
    cr_assert_eq(producer_state_write_snapshot(&ps, NULL, dir, 15), 0);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b = 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, 30), 1);
    close(fd);
    cr_assert_eq(producer_state_read_snapshot(&ps, NULL, dir, 15, NOW_MS), -EBADMSG);
    cr_assert_eq(producer_state_read_snapshot(&ps, NULL, dir, 99, NOW_MS), -ENOENT);
    rm_dir();
}

Test(producer_state, latest_snapshot_selection_and_cleanup) {
    mkdir_tmp();
    int64_t offsets[] = {10, 50, 120, 200, 300};
    for (int i = 0; i < 5; i++) cr_assert_eq(producer_state_write_snapshot(&ps, NULL, dir, offsets[i]), 0);
    /* the log was cut to 250 by recovery: 300 is beyond it and goes; 120 and 200 kept */
    cr_assert_eq(producer_snapshot_latest(dir, 250), 200);
    char path[160];
    snprintf(path, sizeof path, "%s/00000000000000000300.snapshot", dir);
    cr_assert_neq(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/00000000000000000010.snapshot", dir);
    cr_assert_neq(access(path, F_OK), 0, "older than the two newest: deleted");
    snprintf(path, sizeof path, "%s/00000000000000000120.snapshot", dir);
    cr_assert_eq(access(path, F_OK), 0);
    cr_assert_eq(producer_snapshot_latest(dir, 5), -1);
    rm_dir();
}
