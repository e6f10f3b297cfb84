/* txn_state.c - aborted-transaction index, completing queue and LSO of one partition
 * (the design is in txn_state.h).
 *
 * The aborted index is a ring of entries sorted by last offset (markers are appended in
 * offset order), so a Fetch finds the first overlapping entry by binary search and walks
 * forward; trimming pops from the head. First offsets are not sorted (a long transaction
 * may start before a short one that ends first), so the walk cannot stop at the first
 * entry starting past the window; it stops once last offsets pass the window's end plus
 * the longest span indexed, beyond which no entry can start inside the window. */
#include "storage/txn_state.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int txn_log_init(struct txn_log *ts) {
    memset(ts, 0, sizeof *ts);
    ts->aborted = malloc(TXN_ABORTED_INITIAL * sizeof *ts->aborted);
    if (!ts->aborted) return -ENOMEM;
    ts->aborted_cap = TXN_ABORTED_INITIAL;
    return 0;
}

void txn_log_free(struct txn_log *ts) {
    free(ts->aborted);
    memset(ts, 0, sizeof *ts);
}

void txn_log_clear(struct txn_log *ts) {
    ts->aborted_head = ts->aborted_count = 0;
    ts->aborted_max_span = 0;
    ts->completing_head = ts->completing_count = 0;
}

const struct txn_aborted *txn_aborted_at(const struct txn_log *ts, uint32_t i) {
    assert(i < ts->aborted_count);
    return &ts->aborted[(ts->aborted_head + i) % ts->aborted_cap];
}

/* Double the ring (unrolled so the oldest entry lands at 0). 0 or -ENOMEM. */
static int aborted_grow(struct txn_log *ts) {
    uint32_t cap = ts->aborted_cap * 2;
    if (cap > TXN_ABORTED_MAX) cap = TXN_ABORTED_MAX;
    struct txn_aborted *a = malloc(cap * sizeof *a);
    if (!a) return -ENOMEM;
    for (uint32_t i = 0; i < ts->aborted_count; i++) a[i] = *txn_aborted_at(ts, i);
    free(ts->aborted);
    ts->aborted = a;
    ts->aborted_cap = cap;
    ts->aborted_head = 0;
    return 0;
}

int txn_aborted_add(struct txn_log *ts, int64_t producer_id, int64_t first_offset,
                    int64_t last_offset) {
    assert(first_offset <= last_offset);
    assert(ts->aborted_count == 0 ||
           txn_aborted_at(ts, ts->aborted_count - 1)->last_offset <= last_offset);
    int dropped = 0;
    if (ts->aborted_count == ts->aborted_cap &&
        (ts->aborted_cap == TXN_ABORTED_MAX || aborted_grow(ts) != 0)) {
        ts->aborted_head = (ts->aborted_head + 1) % ts->aborted_cap; /* drop the oldest */
        ts->aborted_count--;
        ts->aborted_dropped++;
        dropped = 1;
    }
    uint32_t slot = (ts->aborted_head + ts->aborted_count) % ts->aborted_cap;
    ts->aborted[slot] = (struct txn_aborted){producer_id, first_offset, last_offset};
    ts->aborted_count++;
    if (last_offset - first_offset > ts->aborted_max_span)
        ts->aborted_max_span = last_offset - first_offset;
    return dropped;
}

uint32_t txn_aborted_trim(struct txn_log *ts, int64_t log_start_offset) {
    uint32_t n = 0;
    while (ts->aborted_count > 0 && txn_aborted_at(ts, 0)->last_offset < log_start_offset) {
        ts->aborted_head = (ts->aborted_head + 1) % ts->aborted_cap;
        ts->aborted_count--;
        n++;
    }
    return n;
}

uint32_t txn_aborted_collect(const struct txn_log *ts, int64_t from_offset,
                             int64_t to_offset, struct txn_aborted *out, uint32_t max) {
    uint32_t lo = 0, hi = ts->aborted_count; /* first entry with last_offset >= from */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (txn_aborted_at(ts, mid)->last_offset < from_offset) lo = mid + 1;
        else hi = mid;
    }
    uint32_t n = 0;
    int64_t stop = to_offset > INT64_MAX - ts->aborted_max_span ? INT64_MAX
                                                                : to_offset + ts->aborted_max_span;
    for (uint32_t i = lo; i < ts->aborted_count && n < max; i++) {
        const struct txn_aborted *a = txn_aborted_at(ts, i);
        if (a->last_offset >= stop) break; /* starts at or past to_offset */
        if (a->first_offset >= to_offset) continue;
        if (out) out[n] = *a;
        n++;
    }
    return n;
}

bool txn_completing_full(const struct txn_log *ts) {
    return ts->completing_count == TXN_COMPLETING_MAX;
}

int txn_completing_push(struct txn_log *ts, int64_t first_offset, int64_t marker_offset) {
    if (txn_completing_full(ts)) return -ENOBUFS;
    uint32_t slot = (ts->completing_head + ts->completing_count) % TXN_COMPLETING_MAX;
    ts->completing[slot] = (struct txn_completing){first_offset, marker_offset};
    ts->completing_count++;
    return 0;
}

void txn_completing_written(struct txn_log *ts, int64_t high_watermark) {
    while (ts->completing_count > 0 &&
           ts->completing[ts->completing_head].marker_offset < high_watermark) {
        ts->completing_head = (ts->completing_head + 1) % TXN_COMPLETING_MAX;
        ts->completing_count--;
    }
}

int64_t txn_last_stable_offset(const struct txn_log *ts, int64_t high_watermark,
                               int64_t oldest_open_offset) {
    int64_t lso = high_watermark;
    if (oldest_open_offset >= 0 && oldest_open_offset < lso) lso = oldest_open_offset;
    for (uint32_t i = 0; i < ts->completing_count; i++) {
        const struct txn_completing *c =
            &ts->completing[(ts->completing_head + i) % TXN_COMPLETING_MAX];
        if (c->marker_offset >= high_watermark && c->first_offset < lso) lso = c->first_offset;
    }
    return lso;
}
