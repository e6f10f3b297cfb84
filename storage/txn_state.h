/* txn_state.h - the transaction side of one partition (KIP-98): the aborted-transaction
 * index, the transactions whose end marker is appended but not yet written, and the last
 * stable offset (LSO) computed from them.
 *
 * Who holds what. Which producers have a transaction open, and since which offset,
 * lives in each producer's entry (producer_state.h: txn_first_offset), so it is
 * snapshotted, evicted and recovered with the rest of the producer's state. This file
 * holds what is per partition rather than per producer:
 *   - the aborted index: (producer id, first offset, last offset = the ABORT marker's
 *     offset) per aborted transaction, in marker order, so sorted by last offset.
 *     read_committed Fetch lists the entries whose range overlaps what it returns, and
 *     the consumer drops that producer's batches from first offset until it meets the
 *     marker. Kafka keeps a .txnindex per segment; sluice keeps one ring per partition
 *     that travels in the producer snapshot (format in producer_state.h) and is rebuilt
 *     from the log by the header scan at open. Retention and DeleteRecords trim it.
 *   - the completing queue: a transaction whose marker is appended but not yet written
 *     (the high watermark is still at or below the marker) still holds the LSO at its
 *     first offset, as Kafka keeps a completed transaction "unreplicated" until the high
 *     watermark passes its marker. Otherwise a read_committed consumer could see data
 *     whose commit a crash may yet lose.
 *
 * LSO = min(high watermark, first offset of the oldest open transaction, first offset
 * of every completing transaction). It never moves backward: a transaction opens at the
 * log end, which is at or past the high watermark.
 *
 * Bounds: the aborted ring grows by doubling up to TXN_ABORTED_MAX entries; past that
 * the oldest entry is dropped (counted, logged by the caller) -- a consumer reading
 * that far back at read_committed would then see that transaction's records. The
 * completing queue holds TXN_COMPLETING_MAX entries; a marker that finds it full is
 * refused (-ENOBUFS, the caller retries after the next flush). Nothing here blocks; the
 * index is written whole with each producer snapshot (24 bytes an entry, at a roll and at
 * close: the snapshot's blocking write, a documented debt of partition_log.h). Measured
 * in perf/results/txn-storage.md. */
#ifndef SLUICE_STORAGE_TXN_STATE_H
#define SLUICE_STORAGE_TXN_STATE_H

#include <stdbool.h>
#include <stdint.h>

#define TXN_ABORTED_INITIAL 16
#define TXN_ABORTED_MAX (1u << 20)  /* aborted transactions indexed per partition */
#define TXN_COMPLETING_MAX 256      /* markers appended but not yet written */

struct txn_aborted {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset;            /* the ABORT marker's offset */
};

struct txn_completing {
    int64_t first_offset;
    int64_t marker_offset;
};

struct txn_log {
    struct txn_aborted *aborted;    /* ring, oldest at aborted_head */
    uint32_t aborted_cap, aborted_head, aborted_count;
    uint64_t aborted_dropped;       /* lost to the bound */
    int64_t aborted_max_span;       /* largest last - first indexed (bounds a lookup) */
    struct txn_completing completing[TXN_COMPLETING_MAX]; /* FIFO in marker order */
    uint32_t completing_head, completing_count;
};

int txn_log_init(struct txn_log *ts);
void txn_log_free(struct txn_log *ts);
void txn_log_clear(struct txn_log *ts);

/* Index an aborted transaction. last_offset must be >= every indexed last offset.
 * Returns 0, or 1 when the oldest entry was dropped to stay within the bound. */
int txn_aborted_add(struct txn_log *ts, int64_t producer_id, int64_t first_offset,
                    int64_t last_offset);

/* The i-th indexed entry, oldest first (i < aborted_count). */
const struct txn_aborted *txn_aborted_at(const struct txn_log *ts, uint32_t i);

/* Drop the entries wholly below log_start_offset (last offset < it). Returns how many. */
uint32_t txn_aborted_trim(struct txn_log *ts, int64_t log_start_offset);

/* Copy out, oldest first, up to max entries that overlap [from_offset, to_offset):
 * last_offset >= from_offset and first_offset < to_offset. Returns how many; with out
 * NULL only counts them (up to max). */
uint32_t txn_aborted_collect(const struct txn_log *ts, int64_t from_offset,
                             int64_t to_offset, struct txn_aborted *out, uint32_t max);

/* A marker closing a transaction that began at first_offset was appended at
 * marker_offset, not yet written. 0, or -ENOBUFS when the queue is full. */
int txn_completing_push(struct txn_log *ts, int64_t first_offset, int64_t marker_offset);
bool txn_completing_full(const struct txn_log *ts);

/* The high watermark moved: forget the completing transactions whose marker is below it. */
void txn_completing_written(struct txn_log *ts, int64_t high_watermark);

/* LSO from the high watermark and the oldest open transaction's first offset (-1 when
 * none is open). */
int64_t txn_last_stable_offset(const struct txn_log *ts, int64_t high_watermark,
                               int64_t oldest_open_offset);

#endif
