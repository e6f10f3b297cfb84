/* partition_log.h - a partition's log on io_uring: append, group-commit flush, reads,
 * lookups, roll, retention and recovery.
 *
 * Ownership: one struct storage_shard per shard holds the shard's io_uring (borrowed
 * from the shard), chunk pool (borrowed) and batch cache (owned); each partition log
 * belongs to one storage_shard. Nothing here is thread-safe and nothing blocks after
 * plog_open() except the points listed under "Blocking" below.
 *
 * Write path. plog_append() copies a RecordBatch v2 (already validated by the caller;
 * the log stores v2 only, the records layer converts legacy sets first) into the
 * partition's tail chunk, writes the assigned base offset into it, updates the
 * in-memory indexes and returns the base offset at once. The chunk maps a 4 KiB
 * aligned range of the segment file; when a batch does not fit in what is left of the
 * chunk, a new chunk starts at the aligned-down end and the partly filled last block
 * is copied into it. storage_poll(), called once per shard loop iteration, turns
 * everything appended since the last flush into one flush per partition (group
 * commit), in two phases ordered in code: (1) WRITE_FIXED of each dirty aligned range,
 * all in parallel -- the ranges never overlap, because a chunk followed by another
 * chunk of the same segment stops at its last whole block and the partial block is
 * written (zero padded) by the newest chunk; when every write has completed, acks=1
 * appends complete and the high watermark moves; (2) if any append in the group asked
 * for durability, IORING_OP_FSYNC(DATASYNC) of each file written (and of the directory
 * after a roll); when those complete, the acks=all appends complete. The flush whose
 * writes complete a sealed segment's data also fdatasyncs that segment, durable or not,
 * so an acks=all batch in a later segment is never acknowledged while an earlier
 * segment's tail is still only in the page cache (recovery ends the log at such a gap).
 * Callbacks get 0 or a negative errno; acks=0 appends pass no request.
 *
 * Pipelined flushes. Up to PLOG_MAX_FLUSHES flushes are in flight per partition, so
 * the device queue stays full instead of draining once per flush. The one hazard is
 * the partly filled last block: a flush that writes it (zero padded) must complete
 * before any later flush rewrites that block. So a flush started while another is in
 * flight, or one larger than PLOG_PIPELINE_MIN_BYTES, writes whole blocks only: it
 * stops at the last block boundary and acknowledges only the batches wholly before it
 * (the batch straddling the boundary, and those after, go to a later flush). A flush
 * that does write a partial block (a small flush with nothing in flight: the latency
 * case) does not hold the next one back: the next flush issues its writes at once,
 * except its write of that one block, which is held in log->deferred and submitted
 * when the partial flush's writes complete (the way a per-block write chain works).
 * Before, the next flush waited for the whole partial flush, and one producer with
 * 1 MiB requests in flight saw mostly one flush at a time: after each whole-blocks
 * flush the straddling batch's last block went alone, and blocked the next request. Completions may arrive in any order; flushes are retired strictly in the
 * order they started: a flush's writes are applied (high watermark, acks=1 callbacks,
 * fdatasync issued) only after every earlier flush's writes were, and its acks=all
 * callbacks run (and the durable offset moves) only after every earlier flush is
 * done. So acks=1 callbacks run in offset order, acks=all callbacks run in offset order,
 * and each runs only when everything before it is written (acks=all: and synced by an
 * fdatasync issued after those writes completed). An acks=1 callback may run before an
 * earlier acks=all one, which waits for its fdatasync.
 *
 * RWF_DSYNC. With cfg.dsync_writes a durable flush writes with RWF_DSYNC and skips
 * phase 2: each write is durable when it completes, and retiring flushes in order
 * keeps acks=all behind every earlier flush. That is allowed only when every earlier
 * flush that wrote without sync is covered by a later flush's fdatasync (plain_write_seq
 * <= fsync_seq) -- a FUA write makes only its own blocks durable. A flush that must also
 * sync a directory or a sealed segment still runs phase 2. On ext4 over this VM's
 * disk (volatile cache, no FUA) the kernel still flushes, so throughput is the same
 * within noise, but the shard does one request per flush instead of two: broker CPU
 * per acknowledged byte 28 % lower with 64 KiB requests, 9 % with 1 MiB ones
 * (perf/results/pipeline.md, section 7).
 * sluice.storage.dsync.writes=false brings back write + fdatasync.
 *
 * A write or fsync error (ENOSPC, EIO, short write) puts the partition in a failed
 * state: the appends of the failed group and every later append get -EIO
 * (KAFKA_STORAGE_ERROR); data already acknowledged is not touched (a rewrite only ever
 * covers blocks at or after the durable end). Other partitions are unaffected. A
 * failed partition is brought back by closing and reopening it (recovery truncates
 * whatever was not acknowledged), as Kafka takes a failed log dir offline.
 *
 * Read path. plog_read() returns whole batches from the batch containing the requested
 * offset, up to max_bytes but always at least the first batch whole (KIP-74), and never
 * beyond the high watermark (the end of the last completed write). Bytes are returned
 * as fragments referencing chunk memory (each holds a chunk reference; release them
 * with frag_release). A cache miss issues a READ_FIXED of one chunk into a fresh chunk
 * and answers through the request's callback. Sequential read-ahead for catch-up
 * readers: a miss, and the first hit on a read-ahead chunk, keep up to
 * STORAGE_READAHEAD_CHUNKS further chunks in flight. Each starts at the aligned-down
 * position of the last indexed batch start inside the chunk before it, so a batch
 * never straddles two read-ahead chunks (the overlap is at most one index interval
 * plus one batch).
 *
 * Memory: a log holds a tail chunk only while it appends; when the pool runs dry, the
 * tail chunks of idle logs (everything written, no flush in flight) are released and
 * their partial last block kept in a 4 KiB carry buffer, so a shard can own more
 * partitions than it has chunks.
 *
 * Blocking (documented debts): a roll creates the new segment file (openat); the seal
 * cuts the sealed file's zero tail (ftruncate); retention unlinks files with
 * unlinkat(2). These are rare (once per segment), but they are syscalls on the shard:
 * 0.2-1 ms each measured under load here (the segment_roll and segment_sealed log lines
 * carry blocking_us). The sealed segment's index files and the producer snapshot a
 * roll takes, once the biggest of them (three file creations), go through the ring
 * (file_write.h).
 * Everything per append, per flush, per fetch and the log start offset go through
 * io_uring.
 *
 * Idempotent producers. Each log holds its partition's producer state
 * (storage/producer_state.h). The caller checks a batch with plog_producer_check()
 * before plog_append(); plog_append() records every batch carrying a producer id in the
 * state as it assigns the offset, so the state always describes exactly the batches
 * appended, in append order (a later write failure fails the partition: every later
 * append and check answers -EIO, and a reopen rebuilds the state from what recovery
 * kept). A duplicate whose original is not yet written (or, for acks=all, not yet
 * synced) waits with plog_wait() and is answered when the original is. The state is
 * snapshotted to <log end offset>.snapshot at every segment roll and at clean close
 * (blocking write + rename, like the roll itself; at most two are kept). plog_open()
 * loads the newest snapshot not beyond the recovered log end (newer ones are deleted:
 * a crash cut the log shorter than they describe) and scans the batch headers from
 * there to the end, which is at most about one segment (a buffered pread per 64 KiB
 * and no CRC work: recovery already checked the tail); without a usable snapshot it
 * scans every segment, headers only, reading each segment file once.
 *
 * Transactions (KIP-98). A transactional data batch opens its producer's transaction
 * (if none is open) at its base offset; a control batch (a COMMIT/ABORT marker, built
 * by storage/record/control_batch.h and appended by the coordinator through the
 * owner's internal append) closes it, and an ABORT adds the transaction to the aborted
 * index (storage/txn_state.h). plog_append refuses a marker whose epoch is older than
 * its producer's (-ESTALE) and one that is not a well-formed marker (-EBADMSG); a
 * client's own control batches are refused by the router before they get here.
 * plog_last_stable_offset() is the LSO; a read with stable_only (read_committed) stops
 * there. Open transactions and the aborted index travel in the producer snapshot and
 * are rebuilt by the same header scan at open (markers are read whole: they are tiny). */
#ifndef SLUICE_STORAGE_PARTITION_LOG_H
#define SLUICE_STORAGE_PARTITION_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/chunk.h"
#include "hw/latency.h"
#include "hw/uring_op.h"
#include "storage/batch_cache.h"
#include "storage/file_write.h"
#include "storage/producer_state.h"
#include "storage/segment.h"

#define PLOG_MAX_SEGMENTS 4096       /* per partition */
#define PLOG_MAX_TAIL_CHUNKS 16      /* chunks appended into but not yet fully written */
#define PLOG_FLUSH_MAX_OPS (PLOG_MAX_TAIL_CHUNKS + 4)
#define PLOG_MAX_FLUSHES 8           /* flushes in flight per partition (pipelined) */
#define PLOG_FLUSH_MAX_WRITES 4      /* chunk writes per flush */
#define PLOG_PIPELINE_MIN_BYTES (128u * 1024u) /* larger flushes write whole blocks only */
#define PLOG_READ_MAX_FRAGS 16
#define PLOG_PATH_BYTES 1024

struct storage_shard;
struct plog;
struct record_batch_header;

struct plog_config {
    uint64_t segment_bytes;          /* segment.bytes */
    int64_t segment_ms;              /* segment.ms (<= 0: never by age) */
    int64_t retention_ms;            /* retention.ms (< 0: forever) */
    int64_t retention_bytes;         /* retention.bytes (< 0: unlimited) */
    uint32_t index_interval_bytes;   /* index.interval.bytes */
    uint64_t preallocate_step_bytes; /* fallocate step */
    bool dsync_writes;               /* durable flushes write with RWF_DSYNC (see above) */
    uint32_t max_producers;          /* idempotent producers kept per partition (LRU) */
    int64_t producer_expiration_ms;  /* producer.id.expiration.ms */
};

void plog_config_default(struct plog_config *cfg);

/* An append waiting for its write (and fsync when durable). Owned by the caller until
 * done() runs; no allocation in the log. */
struct plog_append_req {
    void (*done)(struct plog_append_req *req, int status);
    int64_t base_offset;       /* set by plog_append */
    int64_t end_offset;        /* last offset + 1 */
    bool durable;
    struct plog_append_req *next;
};

struct plog_read_req {
    /* in */
    int64_t offset;
    uint32_t max_bytes;
    bool stable_only;          /* read_committed: stop at the LSO, not the high watermark */
    void (*done)(struct plog_read_req *req, int status); /* only for async completion */
    /* out */
    struct frag frags[PLOG_READ_MAX_FRAGS];
    uint32_t frag_count;
    uint32_t bytes;
    int64_t next_offset;       /* offset after the last batch returned */
    /* private */
    struct uring_op op;
    struct plog *log;
    uint8_t *chunk;
    uint64_t file_base;
    struct segment *seg;
    int32_t status;
};

/* One write-side chunk: maps [file_base, file_base + fill_bytes) of seg. */
struct tail_chunk {
    uint8_t *chunk;
    struct segment *seg;
    struct cache_entry *entry;
    uint64_t file_base;
    uint32_t fill_bytes;
    uint32_t written_bytes;    /* bytes known on disk (writes completed and applied) */
    uint32_t issued_bytes;     /* bytes a started flush covers (>= written_bytes) */
    int64_t cut_offset;        /* once a later chunk exists: end of the batches wholly
                                * below this chunk's last block boundary */
};

struct plog_flush;

struct flush_op {
    struct uring_op op;
    struct plog *log;
    struct plog_flush *flush;  /* NULL for the preallocation and metadata ops */
    uint32_t expected_bytes;   /* writes: a shorter result is a failure */
};

/* What one flush covered of one tail chunk (applied to written_bytes in order). */
struct flush_chunk {
    uint8_t *chunk;
    uint32_t issued_bytes;
};

enum flush_phase { FLUSH_WRITING = 1, FLUSH_SYNCING, FLUSH_DONE };

/* One group commit in flight; a log holds up to PLOG_MAX_FLUSHES in a FIFO. */
struct plog_flush {
    struct plog *log;
    enum flush_phase phase;
    bool durable;
    bool wrote_partial;        /* wrote a zero-padded block that a later flush rewrites */
    bool dsync;                /* durable through RWF_DSYNC writes, no fdatasync needed */
    struct segment *partial_seg; /* wrote_partial: the zero-padded block's file and offset */
    uint64_t partial_block_at;
    int32_t err;
    int64_t end_offset;        /* every offset below it is covered by this or earlier */
    struct plog_append_req *reqs_first, *reqs_last;
    struct flush_op ops[PLOG_FLUSH_MAX_OPS];
    uint32_t ops_issued, ops_done;
    struct flush_chunk chunks[2 * PLOG_MAX_TAIL_CHUNKS]; /* a chunk, and the one before it
                                                          * when this writes its block 0 */
    uint32_t chunk_count;
    struct segment *segs[PLOG_MAX_TAIL_CHUNKS + 1]; /* files written (+ a sealed one
                                                     * to fdatasync) by this flush */
    uint32_t seg_count;
    uint64_t phase_start_us;   /* when the writes / the fdatasyncs were issued (metrics) */
};

struct plog {
    struct storage_shard *shard;
    char dir[PLOG_PATH_BYTES];
    struct plog_config cfg;
    int dir_fd;
    int meta_fd;               /* log-start-offset file */
    struct segment *segments[PLOG_MAX_SEGMENTS];
    uint32_t segment_count;
    int64_t log_start_offset;
    int64_t log_end_offset;    /* next offset to assign */
    int64_t high_watermark;    /* end of the last completed write */
    int64_t durable_offset;    /* end of the last completed fdatasync */
    int failed;                /* 0 or the negative errno that failed the partition */
    /* write side */
    struct tail_chunk tail[PLOG_MAX_TAIL_CHUNKS];
    uint32_t tail_count;
    struct plog_append_req *pending_first, *pending_last;   /* not yet in a flush */
    int64_t durable_wanted_offset; /* end of the last durable append */
    int64_t issued_end_offset;     /* end offset of the newest flush started */
    int64_t block_cut_offset;      /* end of the batches wholly below the active
                                    * segment's last block boundary */
    bool dirty_listed;
    struct plog *dirty_next;
    struct plog_flush flush_ring[PLOG_MAX_FLUSHES]; /* FIFO of flushes in flight */
    uint32_t flush_head, flush_count;
    bool alloc_in_flight;
    struct flush_op alloc_op;
    struct segment *alloc_seg;
    uint64_t alloc_target_bytes;
    struct segment *seal_pending; /* sealed; its indexes are written once its data is */
    uint8_t *carry_buf;           /* 4 KiB, aligned: the partial last block while no tail
                                   * chunk is held (after open, after an idle release) */
    uint64_t carry_base;
    struct segment *carry_seg;
    struct plog *next_open, *prev_open; /* the shard's open logs */
    char meta_buf[32];            /* log start offset being written */
    struct flush_op meta_ops[2];  /* write + fdatasync of the log-start-offset file */
    uint32_t meta_ops_pending;
    bool meta_dirty;              /* changed while a write was in flight */
    /* A sealed segment's two index files, written through the ring (file_write.h) so
     * creating them never blocks the shard; its index_dirty stays set (retention keeps
     * it) until both are done. A seal while they are in flight writes the blocking way. */
    struct segment *index_seg;    /* NULL: idle */
    struct file_write index_files[2];
    struct segment_index_trailer index_trailers[2];
    uint32_t index_files_pending;
    int index_err;
    uint64_t index_writes_ring, index_writes_blocking;
    /* The producer snapshot a roll takes, written the same way (temp file, renamed). */
    struct file_write snap_write;
    uint8_t *snap_buf;            /* encoded snapshot while snap_write is busy */
    int64_t snap_offset;
    struct uring_op unlink_op;    /* old snapshots' unlinks through the ring */
    uint32_t unlinks_in_flight;
    uint32_t reads_in_flight;
    uint64_t appends, flushes, fsyncs;
    uint64_t dsync_flushes;        /* durable flushes made durable by RWF_DSYNC writes */
    uint64_t deferred_blocks;      /* block rewrites held back behind a partial write */
    struct {                       /* a flush's write of the block an earlier flush wrote
                                    * zero padded and is still writing (see above) */
        struct plog_flush *flush;  /* NULL: none */
        struct plog_flush *after;  /* submitted when this flush's writes complete */
        uint32_t op_index;
        int fd;
        uint8_t *buf;
        uint64_t file_at;
    } deferred;
    uint64_t flush_seq;            /* flushes started, numbering them from 1 */
    uint64_t plain_write_seq;      /* the last flush that wrote without RWF_DSYNC or sync */
    uint64_t fsync_seq;            /* the last flush started that will fdatasync */
    uint64_t flushes_pipelined;    /* started while another flush was in flight */
    uint32_t max_flushes_in_flight;
    /* idempotent producers */
    struct producer_state producers;
    struct txn_log txn;          /* aborted index, completing markers (LSO) */
    int64_t snapshot_offsets[2];   /* newest snapshot written, and the one before (-1) */
    struct plog_append_req *waiters_first; /* plog_wait: duplicates waiting on originals */
    uint64_t producer_batches_scanned; /* at open, to rebuild the producer state */
};

#define STORAGE_READAHEAD_SLOTS 16 /* read-ahead reads in flight per shard */
#define STORAGE_READAHEAD_CHUNKS 4 /* chunks read ahead of a sequential reader */

/* A read-ahead READ_FIXED in flight; a reader that misses on its range waits on it. */
struct readahead {
    struct uring_op op;
    struct plog *log;
    struct segment *seg;
    uint8_t *chunk;
    uint64_t file_base;
    struct plog_read_req *waiter;
    bool busy;
};

struct storage_shard {
    struct io_uring *ring;
    struct chunk_pool *pool;
    struct batch_cache cache;
    struct readahead readahead[STORAGE_READAHEAD_SLOTS];
    uint64_t readahead_issued;
    struct plog *dirty_first; /* logs with appends not yet flushed */
    struct plog *logs_first;  /* every open log (idle tail chunks are released on need) */
    uint32_t inflight_ops;    /* SQEs submitted and not yet completed */
    /* metrics (shard-private; the router copies them out): a flush's writes, from issue
     * to the last completion, and its fdatasyncs likewise; failed disk operations */
    struct latency_histogram write_latency, fsync_latency;
    uint64_t io_errors;
};

int storage_shard_init(struct storage_shard *s, struct io_uring *ring, struct chunk_pool *pool,
                       uint64_t cache_budget_bytes);
void storage_shard_destroy(struct storage_shard *s);

/* Queue the SQEs of every partition with appends since the last flush (group commit).
 * The shard submits them with the rest of the iteration's SQEs. Returns SQEs queued. */
unsigned storage_poll(struct storage_shard *s);

/* Open (creating if needed) <data_dir>/<topic>-<partition>, running recovery. Blocking.
 * Returns a log or NULL with *err set to a negative errno. */
struct plog *plog_open(struct storage_shard *s, const char *data_dir, const char *topic,
                       int32_t partition, const struct plog_config *cfg, int *err);

/* Close after draining in-flight I/O (blocks on the ring: shutdown/test only). Writes
 * the active segment's indexes. */
void plog_close(struct plog *log);

/* Make room for the next append of len_bytes (a roll when due, a tail chunk with room):
 * 0, or -ENOBUFS when no chunk can be had now (flushes in flight hold them, or the pool is
 * dry: the caller may wait for storage_poll to free some and try again), -EMSGSIZE,
 * -EIO on a failed log. plog_append calls it itself; a caller that would rather wait
 * than fail calls it first. Idempotent: a second call finds the room already made. */
int plog_reserve(struct plog *log, uint32_t len_bytes);

/* Append one batch (len_bytes, a whole RecordBatch v2). Returns the assigned base offset
 * or a negative errno, which the broker maps to Kafka error codes: -EIO failed
 * partition (KAFKA_STORAGE_ERROR), -EMSGSIZE larger than a chunk allows minus 4 KiB
 * (MESSAGE_TOO_LARGE), -EBADMSG not a v2 batch, or a control batch that is not a
 * well-formed marker (CORRUPT_MESSAGE), -ESTALE a marker whose producer epoch is older
 * than the producer's (INVALID_PRODUCER_EPOCH), -ENOBUFS no chunk
 * memory (backpressure: stop reading, retry after the next completions), -ENOSPC/
 * -ENOMEM/-errno from a roll (KAFKA_STORAGE_ERROR). req may be NULL (acks=0); otherwise
 * req->done(req, 0 or -EIO) runs from a completion, after storage_poll and the reap. */
int64_t plog_append(struct plog *log, const uint8_t *batch, uint32_t len_bytes, bool durable,
                    struct plog_append_req *req);

/* Idempotence check of one batch about to be appended (its parsed v2 header; producer
 * id >= 0). Returns PRODUCER_APPEND, PRODUCER_DUPLICATE with *dup the original batch,
 * or an error verdict; -EIO when the partition failed. Does not change the state:
 * plog_append() records the batch. */
int plog_producer_check(struct plog *log, const struct record_batch_header *h,
                        struct producer_batch *dup);

/* Answer a duplicate when its original [.., end_offset) is written (durable: and
 * synced, when the original asked for that). Returns 1 when that is already so, -EIO
 * on a failed partition, or 0 when req was queued: req->done(req, 0 or -EIO) runs from
 * a completion, as for an append. The waiters are bounded by the caller's requests. */
int plog_wait(struct plog *log, int64_t end_offset, bool durable, struct plog_append_req *req);

/* Start a read. Returns 1 when answered now (req->frags filled, possibly empty at the
 * high watermark), 0 when a disk read is in flight (req->done will run), or -ERANGE when
 * offset is outside [log start, log end] (OFFSET_OUT_OF_RANGE), -EIO on a disk error,
 * -ENOBUFS when no chunk is free. A failed partition still serves what it wrote. */
int plog_read(struct plog *log, struct plog_read_req *req);
void plog_read_release(struct plog *log, struct plog_read_req *req);

/* ListOffsets: the first offset whose batch max timestamp >= timestamp_ms, or the log
 * end offset when none. */
int64_t plog_offset_for_timestamp(const struct plog *log, int64_t timestamp_ms);

static inline int64_t plog_log_start_offset(const struct plog *l) { return l->log_start_offset; }
static inline int64_t plog_log_end_offset(const struct plog *l) { return l->log_end_offset; }
static inline int64_t plog_high_watermark(const struct plog *l) { return l->high_watermark; }

/* The last stable offset: min(high watermark, first offset of the oldest transaction not
 * yet decided and written). read_committed consumers read below it. */
int64_t plog_last_stable_offset(const struct plog *log);

/* The aborted transactions overlapping [from_offset, to_offset), oldest first, at most
 * max. Returns how many were copied to out (counted only, when out is NULL). */
uint32_t plog_aborted_txns(const struct plog *log, int64_t from_offset, int64_t to_offset,
                           struct txn_aborted *out, uint32_t max);

/* Delete whole segments past retention.ms (by each segment's largest batch timestamp)
 * or beyond retention.bytes; never the active segment. Returns segments deleted. */
int plog_enforce_retention(struct plog *log, int64_t now_ms);

/* Roll the active segment if it is older than segment.ms. Returns 1 when rolled. */
int plog_maybe_roll_by_age(struct plog *log, int64_t now_ms);

/* DeleteRecords: move the log start offset to offset (<= high watermark), deleting
 * segments wholly below it. The new start is written and fdatasynced through the ring
 * (asynchronously, as Kafka checkpoints it). Returns 0 or -ERANGE. */
int plog_delete_records(struct plog *log, int64_t offset);

uint64_t plog_size_bytes(const struct plog *log);

#endif
