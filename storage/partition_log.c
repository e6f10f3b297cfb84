/* partition_log.c - the partition log: append, group-commit flush, reads, lookups,
 * roll, retention and recovery. The design is described in partition_log.h. */
#include "storage/partition_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hw/log.h"
#include "storage/record/batch.h"
#include "storage/record/control_batch.h"

#define BLOCK_BYTES 4096u
#define META_FILE "log-start-offset"
#define PLOG_READ_MAX_STEPS 64 /* segment hops in one read */

static uint64_t align_down(uint64_t n) { return n & ~(uint64_t)(BLOCK_BYTES - 1); }
static uint64_t align_up(uint64_t n) { return align_down(n + BLOCK_BYTES - 1); }

static uint64_t monotonic_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void plog_config_default(struct plog_config *cfg) {
    cfg->segment_bytes = 1ull << 30;
    cfg->segment_ms = 7ll * 24 * 3600 * 1000;
    cfg->retention_ms = 7ll * 24 * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->index_interval_bytes = 4096;
    cfg->preallocate_step_bytes = 64ull << 20;
    cfg->dsync_writes = true;
    cfg->max_producers = PRODUCER_STATE_DEFAULT_MAX;
    cfg->producer_expiration_ms = PRODUCER_STATE_DEFAULT_EXPIRATION_MS;
}

/* ---------------------------------------------------------------- shard */

int storage_shard_init(struct storage_shard *s, struct io_uring *ring, struct chunk_pool *pool,
                       uint64_t cache_budget_bytes) {
    memset(s, 0, sizeof *s);
    s->ring = ring;
    s->pool = pool;
    return batch_cache_init(&s->cache, pool, cache_budget_bytes);
}

void storage_shard_destroy(struct storage_shard *s) {
    assert(s->dirty_first == NULL && s->logs_first == NULL);
    batch_cache_destroy(&s->cache);
}

/* An SQE, submitting what is queued when the SQ is full (the chain builder checks for
 * room first so a linked chain is never split). */
static struct io_uring_sqe *get_sqe(struct storage_shard *s) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(s->ring);
    if (!sqe) {
        io_uring_submit(s->ring);
        sqe = io_uring_get_sqe(s->ring);
    }
    assert(sqe);
    return sqe;
}

static void mark_dirty(struct plog *log) {
    if (log->dirty_listed) return;
    log->dirty_listed = true;
    log->dirty_next = log->shard->dirty_first;
    log->shard->dirty_first = log;
}

/* ---------------------------------------------------------------- completion of appends */

static void complete_list(struct plog_append_req *first, int status) {
    while (first) {
        struct plog_append_req *next = first->next; /* done() may reuse req */
        first->next = NULL;
        first->done(first, status);
        first = next;
    }
}

static void fail_partition(struct plog *log, int err) {
    if (!log->failed) {
        log->failed = err;
        log_error("storage_partition_failed", "dir=%s errno=%d err=%s hw=%" PRId64, log->dir,
                  -err, strerror(-err), log->high_watermark);
    }
    /* in offset order: every flush in flight, oldest first, then the pending appends */
    for (uint32_t i = 0; i < log->flush_count; i++) {
        struct plog_flush *f = &log->flush_ring[(log->flush_head + i) % PLOG_MAX_FLUSHES];
        struct plog_append_req *reqs = f->reqs_first;
        f->reqs_first = f->reqs_last = NULL;
        complete_list(reqs, -EIO);
    }
    struct plog_append_req *pending = log->pending_first;
    log->pending_first = log->pending_last = NULL;
    complete_list(pending, -EIO);
    struct plog_append_req *waiters = log->waiters_first;
    log->waiters_first = NULL;
    complete_list(waiters, -EIO);
}

/* ---------------------------------------------------------------- tail chunks */

static struct segment *active_segment(struct plog *log) {
    assert(log->segment_count > 0);
    return log->segments[log->segment_count - 1];
}

/* Give back the tail chunk of every idle log (its data is written and no flush is in
 * flight): the partly filled last block is kept in the log's 4 KiB carry buffer, and
 * the chunk stays in the cache as an ordinary, evictable entry. Called when the pool is
 * exhausted, so a shard with more partitions than chunks keeps working. */
static unsigned release_idle_tails(struct storage_shard *s) {
    unsigned released = 0;
    for (struct plog *log = s->logs_first; log; log = log->next_open) {
        if (log->flush_count > 0 || log->tail_count != 1) continue;
        struct tail_chunk *t = &log->tail[0];
        if (t->written_bytes != t->fill_bytes) continue;
        uint32_t block = (uint32_t)align_down(t->fill_bytes);
        log->carry_base = t->file_base + block;
        log->carry_seg = t->seg;
        memcpy(log->carry_buf, t->chunk + block, t->fill_bytes - block);
        t->entry->pins--;
        chunk_unref(s->pool, t->chunk);
        log->tail_count = 0;
        released++;
    }
    return released;
}

/* A chunk for the writer or a reader: evicts cold cache entries, and when that is not
 * enough, releases idle logs' tail chunks. */
static uint8_t *storage_alloc_chunk(struct storage_shard *s) {
    uint8_t *chunk = batch_cache_alloc_chunk(&s->cache);
    if (!chunk && release_idle_tails(s) > 0) chunk = batch_cache_alloc_chunk(&s->cache);
    return chunk;
}

/* Start a new tail chunk for seg at the aligned-down end of its data, carrying the
 * partly filled last block from the previous tail chunk or from the carry buffer. */
static int tail_chunk_start(struct plog *log, struct segment *seg) {
    if (log->tail_count == PLOG_MAX_TAIL_CHUNKS) return -ENOBUFS;
    struct storage_shard *s = log->shard;
    uint8_t *chunk = storage_alloc_chunk(s);
    if (!chunk) return -ENOBUFS;
    uint64_t file_base = align_down(seg->size_bytes);
    uint32_t carry = (uint32_t)(seg->size_bytes - file_base);
    struct tail_chunk *prev = log->tail_count ? &log->tail[log->tail_count - 1] : NULL;
    if (prev) prev->cut_offset = log->block_cut_offset; /* prev ends at that cut now */
    uint32_t on_disk_bytes = 0; /* of the carried block: only the carry buffer's is */
    if (carry > 0 && prev && prev->seg == seg) {
        assert(prev->file_base + prev->fill_bytes == seg->size_bytes);
        memcpy(chunk, prev->chunk + (file_base - prev->file_base), carry);
    } else if (carry > 0) { /* after open or an idle release */
        assert(log->carry_seg == seg && log->carry_base == file_base);
        memcpy(chunk, log->carry_buf, carry);
        on_disk_bytes = carry;
    }
    struct cache_entry *e = batch_cache_insert(&s->cache, seg, chunk, file_base, carry);
    e->pins++;
    chunk_ref(s->pool, chunk); /* the writer's own reference, dropped when retired */
    log->tail[log->tail_count++] = (struct tail_chunk){
        .chunk = chunk, .seg = seg, .entry = e, .file_base = file_base, .fill_bytes = carry,
        .written_bytes = on_disk_bytes, .issued_bytes = on_disk_bytes};
    return 0;
}

/* ---------------------------------------------------------------- preallocation */

/* Preallocation sets the file size ahead of the writes (fallocate mode 0, unwritten
 * extents), so the O_DIRECT writes land inside i_size. On ext4 a direct write that
 * extends i_size is done synchronously under the inode lock, which serialises the
 * pipelined flushes of a partition: fio's 64 KiB x 5-in-flight O_DSYNC writes ran at
 * 237 MB/s extending (KEEP_SIZE) and 751 MB/s inside i_size on this VM. The step grows
 * with the segment (the configured step, then as much as is allocated, up to
 * PLOG_PREALLOCATE_MAX_STEP_BYTES), so an idle partition still costs one step of disk
 * and a busy one fallocates rarely. The zero tail this leaves is trimmed when the
 * segment is sealed, at a clean close, and by recovery (which stops at zeros). */
#define PLOG_PREALLOCATE_MAX_STEP_BYTES (16ull << 20)

static uint64_t preallocate_step(const struct plog *log, const struct segment *seg) {
    uint64_t step = log->cfg.preallocate_step_bytes;
    if (step >= PLOG_PREALLOCATE_MAX_STEP_BYTES) return step;
    uint64_t grown = seg->allocated_bytes < PLOG_PREALLOCATE_MAX_STEP_BYTES
                         ? seg->allocated_bytes : PLOG_PREALLOCATE_MAX_STEP_BYTES;
    return grown > step ? grown : step;
}

static bool segment_is_open(const struct plog *log, const struct segment *seg) {
    for (uint32_t i = 0; i < log->segment_count; i++)
        if (log->segments[i] == seg) return true;
    return false;
}

/* Cut a sealed segment's file back to its data (aligned up: the last block was written
 * zero padded). Blocking (ftruncate), once per segment; the seal's fdatasync covers it. */
static void trim_sealed(struct plog *log, struct segment *seg) {
    assert(seg->sealed);
    if (ftruncate(seg->fd, (off_t)align_up(seg->size_bytes)) != 0)
        log_warn("segment_trim_failed", "dir=%s segment=%" PRId64 " errno=%d", log->dir,
                 seg->base_offset, errno);
    seg->allocated_bytes = align_up(seg->size_bytes);
}

static void alloc_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    (void)flags;
    struct plog *log = container_of(op, struct flush_op, op)->log;
    struct segment *seg = log->alloc_seg;
    log->shard->inflight_ops--;
    log->alloc_in_flight = false;
    log->alloc_seg = NULL;
    if (seg != active_segment(log)) {
        /* Sealed while the fallocate ran: if its data is already down (and trimmed),
         * trim again, as the fallocate may have grown the file after that. */
        if (segment_is_open(log, seg) && seg->sealed && log->seal_pending != seg)
            trim_sealed(log, seg);
        return;
    }
    if (res < 0) { /* warn once per segment and stop preallocating it; writes decide */
        log_warn("storage_fallocate_failed", "dir=%s errno=%d", log->dir, -res);
        seg->allocated_bytes = log->cfg.segment_bytes;
        return;
    }
    if (log->alloc_target_bytes > seg->allocated_bytes)
        seg->allocated_bytes = log->alloc_target_bytes;
}

static void maybe_preallocate(struct plog *log, struct segment *seg) {
    uint64_t step = preallocate_step(log, seg);
    if (step == 0 || log->alloc_in_flight || seg->allocated_bytes >= log->cfg.segment_bytes ||
        seg->size_bytes + step / 2 < seg->allocated_bytes)
        return;
    uint64_t target = seg->allocated_bytes + step;
    if (target > log->cfg.segment_bytes) target = align_up(log->cfg.segment_bytes);
    struct io_uring_sqe *sqe = get_sqe(log->shard);
    io_uring_prep_fallocate(sqe, seg->fd, 0, (off_t)seg->allocated_bytes,
                            (off_t)(target - seg->allocated_bytes));
    log->alloc_op.op.complete = alloc_complete;
    log->alloc_op.log = log;
    uring_op_attach(sqe, &log->alloc_op.op);
    log->alloc_in_flight = true;
    log->alloc_seg = seg;
    log->alloc_target_bytes = target;
    log->shard->inflight_ops++;
}

/* ---------------------------------------------------------------- roll */

static int open_segment_file(struct plog *log, int64_t base, int flags) {
    char name[SEGMENT_NAME_BYTES];
    segment_file_name(name, sizeof name, base, ".log");
    return openat(log->dir_fd, name, flags | O_DIRECT | O_CLOEXEC, 0644);
}

static void unlink_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    (void)res; /* a snapshot file already gone is what we wanted */
    (void)flags;
    struct plog *log = container_of(op, struct plog, unlink_op);
    assert(log->unlinks_in_flight > 0);
    log->unlinks_in_flight--;
    log->shard->inflight_ops--;
}

/* Unlink name in the log's directory through the ring. Submitted at once: the kernel
 * copies the name at submission, and callers' names are on their stacks. Counted, so
 * the log is not closed (and its dir_fd's number reused) while one is in flight. */
static void unlink_with_ring(struct plog *log, const char *name) {
    struct io_uring_sqe *sqe = get_sqe(log->shard);
    io_uring_prep_unlinkat(sqe, log->dir_fd, name, 0);
    log->unlink_op.complete = unlink_complete;
    uring_op_attach(sqe, &log->unlink_op);
    log->unlinks_in_flight++;
    log->shard->inflight_ops++;
    io_uring_submit(log->shard->ring);
}

/* Keep the newest two snapshots: offset is written, drop the one before the previous
 * (through the ring when with_ring). */
static void snapshot_written(struct plog *log, int64_t offset, bool with_ring) {
    if (log->snapshot_offsets[1] >= 0) {
        char name[SEGMENT_NAME_BYTES];
        producer_snapshot_file_name(name, sizeof name, log->snapshot_offsets[1]);
        if (with_ring) {
            unlink_with_ring(log, name);
        } else {
            (void)unlinkat(log->dir_fd, name, 0);
        }
    }
    log->snapshot_offsets[1] = log->snapshot_offsets[0];
    log->snapshot_offsets[0] = offset;
}

/* Snapshot the producer state as of the log end (at close), keeping the newest two. A
 * failure only costs a longer scan at the next open. Blocking. */
static void write_producer_snapshot(struct plog *log) {
    int64_t offset = log->log_end_offset;
    if (offset == log->snapshot_offsets[0]) return;
    int rc = producer_state_write_snapshot(&log->producers, &log->txn, log->dir, offset);
    if (rc < 0) {
        log_warn("producer_snapshot_failed", "dir=%s offset=%" PRId64 " errno=%d", log->dir,
                 offset, -rc);
        return;
    }
    snapshot_written(log, offset, false);
}

static void snapshot_write_done(struct file_write *fw, int err) {
    struct plog *log = fw->user;
    log->shard->inflight_ops--;
    free(log->snap_buf);
    log->snap_buf = NULL;
    if (err < 0) {
        log_warn("producer_snapshot_failed", "dir=%s offset=%" PRId64 " errno=%d", log->dir,
                 log->snap_offset, -err);
        unlink_with_ring(log, fw->name); /* the temp file, if any */
        return;
    }
    snapshot_written(log, log->snap_offset, true);
}

/* The snapshot a roll takes, through the ring (the blocking way while an earlier one is
 * still in flight). */
static void roll_producer_snapshot(struct plog *log) {
    int64_t offset = log->log_end_offset;
    if (offset == log->snapshot_offsets[0]) return;
    if (log->snap_write.busy) {
        write_producer_snapshot(log);
        return;
    }
    size_t size;
    int rc = producer_state_encode_snapshot(&log->producers, &log->txn, offset, &log->snap_buf,
                                            &size);
    if (rc < 0) {
        log_warn("producer_snapshot_failed", "dir=%s offset=%" PRId64 " errno=%d", log->dir,
                 offset, -rc);
        return;
    }
    char name[SEGMENT_NAME_BYTES], tmp[SEGMENT_NAME_BYTES + 8];
    producer_snapshot_file_name(name, sizeof name, offset);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    struct iovec iov = {.iov_base = log->snap_buf, .iov_len = size};
    log->snap_write.user = log;
    log->snap_offset = offset;
    rc = file_write_start(&log->snap_write, log->shard->ring, log->dir_fd, tmp, name, &iov, 1,
                          snapshot_write_done);
    assert(rc == 0);
    (void)rc;
    log->shard->inflight_ops++;
}

static int roll(struct plog *log) {
    if (log->segment_count == PLOG_MAX_SEGMENTS) return -ENOSPC;
    uint64_t t0_us = monotonic_us();
    struct segment *old = active_segment(log);
    struct segment *seg = malloc(sizeof *seg);
    if (!seg) return -ENOMEM;
    int rc = segment_init(seg, log->log_end_offset, log->cfg.segment_bytes,
                          log->cfg.index_interval_bytes);
    if (rc < 0) {
        free(seg);
        return rc;
    }
    seg->fd = open_segment_file(log, seg->base_offset, O_RDWR | O_CREAT | O_TRUNC);
    if (seg->fd < 0) {
        rc = -errno;
        segment_free(seg);
        free(seg);
        return rc;
    }
    seg->created_ms = wall_ms();
    seg->needs_dir_sync = true;
    old->sealed = true;
    log->block_cut_offset = seg->base_offset; /* the old segment ends at a flush cut */
    if (log->seal_pending) { /* two rolls within one flush: write what we have */
        (void)segment_write_indexes(log->seal_pending, log->dir);
        log->seal_pending->index_dirty = false;
        trim_sealed(log, log->seal_pending);
    }
    old->index_dirty = true;
    segment_shrink_indexes(old);
    log->seal_pending = old;
    log->segments[log->segment_count++] = seg;
    roll_producer_snapshot(log);
    log_info("segment_roll", "dir=%s base_offset=%" PRId64 " prev_bytes=%" PRIu64
             " blocking_us=%" PRIu64, log->dir, seg->base_offset, old->size_bytes,
             monotonic_us() - t0_us);
    return 0;
}

int plog_maybe_roll_by_age(struct plog *log, int64_t now_ms) {
    struct segment *seg = active_segment(log);
    if (log->failed || log->cfg.segment_ms <= 0 || seg->size_bytes == 0 ||
        now_ms - seg->created_ms < log->cfg.segment_ms)
        return 0;
    return roll(log) == 0 ? 1 : 0;
}

/* ---------------------------------------------------------------- append */

/* Keep block_cut_offset: the end of the batches that lie wholly below the last block
 * boundary of the active segment, which is where a whole-blocks flush stops. A batch
 * at [pos, pos + len) that ends on a boundary moves the cut past itself; one that
 * crosses a boundary moves it to its own start; one inside the last block leaves it. */
static void note_block_cut(struct plog *log, uint64_t pos, uint32_t len_bytes,
                           int64_t base_offset, int64_t end_offset) {
    uint64_t end = pos + len_bytes;
    uint64_t boundary = align_down(end);
    if (boundary == end) log->block_cut_offset = end_offset;
    else if (pos < boundary) log->block_cut_offset = base_offset;
    assert(log->block_cut_offset <= end_offset);
}

/* Record an appended (or, at open, scanned) batch in the producer state. */
static void note_producer_batch(struct plog *log, const struct record_batch_header *h,
                                int64_t base_offset, int64_t now_ms) {
    if (h->producer_id < 0 || (h->attributes & RECORD_ATTR_CONTROL)) return;
    if (h->base_sequence < 0) { /* not idempotent: only a transaction to open, if any */
        if (h->attributes & RECORD_ATTR_TRANSACTIONAL)
            producer_state_begin_txn(&log->producers, h->producer_id, h->producer_epoch,
                                     base_offset, now_ms);
        return;
    }
    struct producer_append a = {.producer_id = h->producer_id, .epoch = h->producer_epoch,
                                .first_seq = h->base_sequence,
                                .last_offset_delta = h->last_offset_delta,
                                .max_timestamp_ms = h->max_timestamp,
                                .transactional = (h->attributes & RECORD_ATTR_TRANSACTIONAL) != 0};
    (void)producer_state_update(&log->producers, &a, base_offset, now_ms);
}

/* Record a transaction marker appended at marker_offset (or scanned at open, when it is
 * already written: then no completing entry holds the LSO). */
static void note_txn_marker(struct plog *log, const struct record_batch_header *h, int type,
                            int32_t coordinator_epoch, int64_t marker_offset, bool written,
                            int64_t now_ms) {
    int64_t first = producer_state_end_txn(&log->producers, h->producer_id, h->producer_epoch,
                                           coordinator_epoch, now_ms);
    if (first < 0) return; /* nothing of this producer's transaction landed here */
    if (type == CONTROL_TYPE_ABORT &&
        txn_aborted_add(&log->txn, h->producer_id, first, marker_offset) > 0)
        log_warn("txn_aborted_index_full", "dir=%s dropped=%" PRIu64, log->dir,
                 log->txn.aborted_dropped);
    if (!written) {
        int rc = txn_completing_push(&log->txn, first, marker_offset);
        assert(rc == 0); /* plog_append checked for room */
        (void)rc;
    }
}

/* Check a control batch before it is appended: a well-formed marker (*type), from a
 * producer not fenced by a newer epoch, with room to track its completion. */
static int check_txn_marker(struct plog *log, const uint8_t *batch, uint32_t len_bytes,
                            const struct record_batch_header *h, int *type,
                            int32_t *coordinator_epoch) {
    *type = control_batch_type(batch, len_bytes);
    if (h->producer_id < 0 || *type < 0) return -EBADMSG;
    *coordinator_epoch = control_batch_coordinator_epoch(batch, len_bytes);
    if (producer_state_check_marker(&log->producers, h->producer_id, h->producer_epoch,
                                    wall_ms()) == PRODUCER_FENCED)
        return -ESTALE;
    if (txn_completing_full(&log->txn)) return -ENOBUFS;
    return 0;
}

int64_t plog_last_stable_offset(const struct plog *log) {
    int64_t lso = txn_last_stable_offset(&log->txn, log->high_watermark,
                                         producer_state_oldest_txn(&log->producers));
    /* a transaction whose start retention or DeleteRecords removed holds nothing back
     * below the log start (read_committed readers start there) */
    return lso < log->log_start_offset ? log->log_start_offset : lso;
}

uint32_t plog_aborted_txns(const struct plog *log, int64_t from_offset, int64_t to_offset,
                           struct txn_aborted *out, uint32_t max) {
    return txn_aborted_collect(&log->txn, from_offset, to_offset, out, max);
}

int plog_producer_check(struct plog *log, const struct record_batch_header *h,
                        struct producer_batch *dup) {
    if (log->failed) return -EIO;
    assert(h->producer_id >= 0);
    if (h->base_sequence < 0 || h->last_offset_delta < 0) return PRODUCER_OUT_OF_ORDER;
    struct producer_append a = {.producer_id = h->producer_id, .epoch = h->producer_epoch,
                                .first_seq = h->base_sequence,
                                .last_offset_delta = h->last_offset_delta,
                                .max_timestamp_ms = h->max_timestamp};
    return (int)producer_state_check(&log->producers, &a, wall_ms(), dup);
}

static bool wait_satisfied(const struct plog *log, const struct plog_append_req *req) {
    return req->end_offset <= log->high_watermark &&
           (!req->durable || req->end_offset <= log->durable_offset);
}

int plog_wait(struct plog *log, int64_t end_offset, bool durable, struct plog_append_req *req) {
    if (log->failed) return -EIO;
    assert(end_offset <= log->log_end_offset);
    req->base_offset = -1;
    req->end_offset = end_offset;
    /* The original asked for no sync (acks=1) when nothing up to its end did: waiting
     * for one would wait for a later durable append that may never come. */
    req->durable = durable && end_offset <= log->durable_wanted_offset;
    if (wait_satisfied(log, req)) return 1;
    req->next = log->waiters_first;
    log->waiters_first = req;
    return 0;
}

/* Complete the waiters whose originals are now written (and synced when asked). */
static void wake_waiters(struct plog *log) {
    struct plog_append_req **pp = &log->waiters_first, *done = NULL;
    while (*pp) {
        struct plog_append_req *r = *pp;
        if (wait_satisfied(log, r)) {
            *pp = r->next;
            r->next = done;
            done = r;
        } else {
            pp = &r->next;
        }
    }
    complete_list(done, 0);
}

int plog_reserve(struct plog *log, uint32_t len_bytes) {
    if (log->failed) return -EIO;
    if (len_bytes > log->shard->pool->chunk_bytes - BLOCK_BYTES) return -EMSGSIZE;
    struct segment *seg = active_segment(log);
    if ((seg->size_bytes > 0 && seg->size_bytes + len_bytes > log->cfg.segment_bytes) ||
        !segment_index_has_room(seg) ||
        (log->cfg.segment_ms > 0 && seg->size_bytes > 0 &&
         wall_ms() - seg->created_ms >= log->cfg.segment_ms)) {
        int rc = roll(log);
        if (rc < 0) return rc;
        seg = active_segment(log);
    }
    struct tail_chunk *t = log->tail_count ? &log->tail[log->tail_count - 1] : NULL;
    if (!t || t->seg != seg || t->fill_bytes + len_bytes > log->shard->pool->chunk_bytes)
        return tail_chunk_start(log, seg);
    return 0;
}

int64_t plog_append(struct plog *log, const uint8_t *batch, uint32_t len_bytes, bool durable,
                    struct plog_append_req *req) {
    if (log->failed) return -EIO;
    struct record_batch_header h;
    if (record_batch_header_parse(batch, len_bytes, &h) != RECORD_OK ||
        record_batch_size_bytes(&h) != len_bytes || h.last_offset_delta < 0)
        return -EBADMSG;
    int marker_type = -1;
    int32_t coordinator_epoch = -1;
    bool marker = (h.attributes & RECORD_ATTR_CONTROL) != 0;
    int rc = marker ? check_txn_marker(log, batch, len_bytes, &h, &marker_type,
                                       &coordinator_epoch)
                    : 0;
    if (rc < 0) return rc;
    rc = plog_reserve(log, len_bytes);
    if (rc < 0) return rc;
    struct segment *seg = active_segment(log);
    struct tail_chunk *t = &log->tail[log->tail_count - 1];
    assert(t->seg == seg && t->fill_bytes + len_bytes <= log->shard->pool->chunk_bytes);
    assert(t->file_base + t->fill_bytes == seg->size_bytes);
    int64_t base_offset = log->log_end_offset;
    int64_t end_offset = base_offset + h.last_offset_delta + 1;
    uint8_t *dst = t->chunk + t->fill_bytes;
    memcpy(dst, batch, len_bytes);
    record_batch_set_base_offset(dst, base_offset);
    note_block_cut(log, seg->size_bytes, len_bytes, base_offset, end_offset);
    segment_note_batch(seg, (uint32_t)seg->size_bytes, base_offset, end_offset,
                       h.max_timestamp, len_bytes, log->cfg.index_interval_bytes);
    t->fill_bytes += len_bytes;
    t->entry->valid_bytes = t->fill_bytes;
    log->log_end_offset = end_offset;
    log->appends++;
    if (marker)
        note_txn_marker(log, &h, marker_type, coordinator_epoch, base_offset, false, wall_ms());
    else
        note_producer_batch(log, &h, base_offset, wall_ms());
    if (req) {
        req->base_offset = base_offset;
        req->end_offset = end_offset;
        req->durable = durable;
        req->next = NULL;
        if (log->pending_last) log->pending_last->next = req;
        else log->pending_first = req;
        log->pending_last = req;
    }
    if (durable) log->durable_wanted_offset = end_offset;
    mark_dirty(log);
    maybe_preallocate(log, seg);
    return base_offset;
}

/* ---------------------------------------------------------------- flush */

static struct plog_flush *flush_at(struct plog *log, uint32_t i) {
    assert(i < log->flush_count);
    return &log->flush_ring[(log->flush_head + i) % PLOG_MAX_FLUSHES];
}

static struct tail_chunk *tail_find(struct plog *log, const uint8_t *chunk) {
    for (uint32_t i = 0; i < log->tail_count; i++)
        if (log->tail[i].chunk == chunk) return &log->tail[i];
    return NULL;
}

/* Move the pending appends that end at or below the flush's end into it (the pending
 * list is in offset order, so it is a prefix). */
static void flush_take_reqs(struct plog *log, struct plog_flush *f) {
    f->reqs_first = f->reqs_last = NULL;
    while (log->pending_first && log->pending_first->end_offset <= f->end_offset) {
        struct plog_append_req *r = log->pending_first;
        log->pending_first = r->next;
        r->next = NULL;
        if (f->reqs_last) f->reqs_last->next = r;
        else f->reqs_first = r;
        f->reqs_last = r;
    }
    if (!log->pending_first) log->pending_last = NULL;
}

/* Complete the non-durable appends of the flush (acks=1: the bytes are written). */
static void complete_written(struct plog_flush *f) {
    struct plog_append_req **pp = &f->reqs_first, *done = NULL, **done_tail = &done;
    f->reqs_last = NULL;
    while (*pp) {
        struct plog_append_req *r = *pp;
        if (!r->durable) {
            *pp = r->next;
            r->next = NULL;
            *done_tail = r;
            done_tail = &r->next;
        } else {
            f->reqs_last = r;
            pp = &r->next;
        }
    }
    complete_list(done, 0);
}

static void flush_op_complete(struct uring_op *op, int32_t res, uint32_t flags);
static void deferred_release(struct plog *log, struct plog_flush *p);

static void flush_add(struct plog_flush *f, struct io_uring_sqe *sqe, uint32_t expected_bytes) {
    assert(f->ops_issued < PLOG_FLUSH_MAX_OPS);
    struct flush_op *fo = &f->ops[f->ops_issued++];
    fo->op.complete = flush_op_complete;
    fo->log = f->log;
    fo->flush = f;
    fo->expected_bytes = expected_bytes;
    uring_op_attach(sqe, &fo->op);
    f->log->shard->inflight_ops++;
}

/* Phase 2: fdatasync every file the flush wrote (and the directory after a roll).
 * Issued when the flush's writes are applied, i.e. after they and the writes of every
 * earlier flush completed, so each fdatasync covers all of them in its file. */
static void flush_start_sync(struct plog_flush *f) {
    struct storage_shard *s = f->log->shard;
    f->phase = FLUSH_SYNCING;
    f->ops_issued = f->ops_done = 0;
    f->phase_start_us = monotonic_us();
    bool dir_sync = false;
    for (uint32_t i = 0; i < f->seg_count; i++) {
        struct io_uring_sqe *sqe = get_sqe(s);
        io_uring_prep_fsync(sqe, f->segs[i]->fd, IORING_FSYNC_DATASYNC);
        flush_add(f, sqe, 0);
        dir_sync |= f->segs[i]->needs_dir_sync;
    }
    if (dir_sync) {
        struct io_uring_sqe *sqe = get_sqe(s);
        io_uring_prep_fsync(sqe, f->log->dir_fd, 0);
        flush_add(f, sqe, 0);
    }
    f->log->fsyncs++;
}

/* Drop written tail chunks that are no longer appended into (all but the last). */
static void tail_retire_written(struct plog *log) {
    uint32_t keep_from = 0;
    while (keep_from + 1 < log->tail_count || (keep_from < log->tail_count &&
                                                log->tail[keep_from].seg->sealed)) {
        struct tail_chunk *t = &log->tail[keep_from];
        if (t->written_bytes < t->fill_bytes) break;
        for (uint32_t i = 0; i < log->flush_count; i++) { /* no later flush covers it */
            const struct plog_flush *f = flush_at(log, i);
            for (uint32_t c = 0; f->phase == FLUSH_WRITING && c < f->chunk_count; c++)
                assert(f->chunks[c].chunk != t->chunk || f->chunks[c].issued_bytes <=
                                                             t->written_bytes);
        }
        assert(t->entry->pins > 0);
        t->entry->pins--;
        chunk_unref(log->shard->pool, t->chunk); /* the writer's reference */
        keep_from++;
    }
    if (keep_from == 0) return;
    memmove(log->tail, log->tail + keep_from, (log->tail_count - keep_from) * sizeof log->tail[0]);
    log->tail_count -= keep_from;
}

/* ---------------------------------------------------------------- index files */

static void index_file_done(struct file_write *fw, int err) {
    struct plog *log = fw->user;
    log->shard->inflight_ops--;
    if (err < 0 && !log->index_err) log->index_err = err;
    assert(log->index_files_pending > 0 && log->index_seg);
    if (--log->index_files_pending > 0) return;
    struct segment *seg = log->index_seg;
    log->index_seg = NULL;
    if (log->index_err)
        log_warn("segment_index_write_failed", "dir=%s segment=%" PRId64 " errno=%d", log->dir,
                 seg->base_offset, -log->index_err);
    seg->index_dirty = false; /* a missing or torn index is rebuilt by a scan at open */
}

/* A sealed segment's index files: through the ring, or blocking while the ring writer
 * is still busy with the previous segment's (two seals in a row: tiny segments). */
static void write_indexes(struct plog *log, struct segment *seg) {
    if (log->index_seg) {
        int rc = segment_write_indexes(seg, log->dir);
        if (rc < 0) log_warn("segment_index_write_failed", "dir=%s errno=%d", log->dir, -rc);
        seg->index_dirty = false;
        log->index_writes_blocking++;
        return;
    }
    log->index_seg = seg;
    log->index_err = 0;
    log->index_files_pending = 2;
    for (int i = 0; i < 2; i++) {
        struct iovec iov[2];
        char name[SEGMENT_NAME_BYTES];
        segment_index_file(seg, (enum segment_index)i, iov, &log->index_trailers[i], name,
                           sizeof name);
        log->index_files[i].user = log;
        int rc = file_write_start(&log->index_files[i], log->shard->ring, log->dir_fd, name,
                                  NULL, iov, 2, index_file_done);
        assert(rc == 0); /* idle: index_seg was NULL */
        (void)rc;
        log->shard->inflight_ops++;
    }
    log->index_writes_ring++;
}

/* The flush's writes completed, and every earlier flush's writes were applied: record
 * what is on disk, move the high watermark, complete acks=1, write a sealed segment's
 * indexes once its data is down, and start the fdatasyncs of a durable flush. */
static void flush_apply_written(struct plog *log, struct plog_flush *f) {
    assert(f->phase == FLUSH_WRITING && f->ops_done == f->ops_issued && !f->err);
    for (uint32_t i = 0; i < f->chunk_count; i++) {
        struct tail_chunk *t = tail_find(log, f->chunks[i].chunk);
        assert(t); /* retired only once written, and then no later flush covers it */
        if (f->chunks[i].issued_bytes > t->written_bytes) t->written_bytes = f->chunks[i].issued_bytes;
        assert(t->written_bytes <= t->issued_bytes && t->issued_bytes <= t->fill_bytes);
        uint64_t written_end = t->file_base + t->written_bytes;
        if (written_end > t->seg->written_bytes) t->seg->written_bytes = written_end;
    }
    assert(f->end_offset >= log->high_watermark && f->end_offset <= log->log_end_offset);
    log->high_watermark = f->end_offset;
    txn_completing_written(&log->txn, log->high_watermark);
    tail_retire_written(log);
    /* A sealed segment whose data is all down is fdatasynced by this flush even when no
     * append asked for it, so no acks=all batch of a later segment is ever acknowledged
     * while an earlier segment's tail could still be lost (recovery ends the log at a
     * gap and would drop it). */
    bool seal_sync = false;
    struct segment *sealed = log->seal_pending;
    if (sealed && sealed->written_bytes >= sealed->size_bytes) {
        uint64_t t0_us = monotonic_us();
        log->seal_pending = NULL;
        write_indexes(log, sealed);
        trim_sealed(log, sealed);
        log_info("segment_sealed", "dir=%s base_offset=%" PRId64 " blocking_us=%" PRIu64,
                 log->dir, sealed->base_offset, monotonic_us() - t0_us);
        bool listed = false;
        for (uint32_t i = 0; i < f->seg_count; i++) listed |= f->segs[i] == sealed;
        assert(listed || f->seg_count < PLOG_MAX_TAIL_CHUNKS + 1);
        if (!listed) f->segs[f->seg_count++] = sealed;
        seal_sync = true;
    }
    complete_written(f);
    bool dir_sync = false;
    for (uint32_t i = 0; i < f->seg_count; i++) dir_sync |= f->segs[i]->needs_dir_sync;
    if ((f->durable && (!f->dsync || dir_sync)) || seal_sync) {
        flush_start_sync(f);
    } else if (f->durable) { /* RWF_DSYNC: the writes were durable when they completed */
        f->phase = FLUSH_SYNCING; /* with no ops: retired as a synced flush */
        f->ops_issued = f->ops_done = 0;
        log->dsync_flushes++;
    } else {
        f->phase = FLUSH_DONE;
    }
}

/* A flush's fdatasyncs completed and every earlier flush is done. */
static void flush_finish_durable(struct plog *log, struct plog_flush *f) {
    assert(f->end_offset <= log->high_watermark);
    if (f->durable && f->end_offset > log->durable_offset) log->durable_offset = f->end_offset;
    for (uint32_t i = 0; i < f->seg_count; i++) f->segs[i]->needs_dir_sync = false;
    struct plog_append_req *done = f->reqs_first;
    f->reqs_first = f->reqs_last = NULL;
    complete_list(done, 0);
}

/* Called after any completion of a flush op: applies finished flushes in the order
 * they started and retires them from the head of the FIFO. */
static void flush_advance(struct plog *log) {
    for (uint32_t i = 0; i < log->flush_count; i++) { /* writes, in start order */
        struct plog_flush *f = flush_at(log, i);
        if (f->phase != FLUSH_WRITING) continue;
        if (f->ops_done < f->ops_issued) break; /* holds back every later flush */
        if (f->err && !log->failed) fail_partition(log, f->err);
        if (log->failed) f->phase = FLUSH_DONE;
        else flush_apply_written(log, f);
    }
    while (log->flush_count > 0) { /* retire from the head */
        struct plog_flush *f = flush_at(log, 0);
        if (f->phase == FLUSH_WRITING || f->ops_done < f->ops_issued) break;
        if (f->phase == FLUSH_SYNCING) {
            if (f->err && !log->failed) fail_partition(log, f->err);
            if (!log->failed) flush_finish_durable(log, f);
        }
        assert(f->reqs_first == NULL);
        f->phase = FLUSH_DONE;
        log->flush_head = (log->flush_head + 1) % PLOG_MAX_FLUSHES;
        log->flush_count--;
    }
    if (!log->failed && (log->pending_first || log->log_end_offset > log->issued_end_offset))
        mark_dirty(log);
    if (log->waiters_first && !log->failed) wake_waiters(log);
}

static void flush_op_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    (void)flags;
    struct flush_op *fo = container_of(op, struct flush_op, op);
    struct plog_flush *f = fo->flush;
    f->log->shard->inflight_ops--;
    f->ops_done++;
    assert(f->ops_done <= f->ops_issued);
    int32_t err = res < 0 ? res : (fo->expected_bytes && (uint32_t)res != fo->expected_bytes
                                       ? -ENOSPC : 0);
    if (err && !f->err) f->err = err;
    if (err) f->log->shard->io_errors++;
    if (f->ops_done == f->ops_issued && f->log->deferred.after == f) {
        assert(f->phase == FLUSH_WRITING);
        deferred_release(f->log, f);
    }
    if (f->ops_done == f->ops_issued) { /* the phase's last op: its latency (metrics) */
        struct storage_shard *s = f->log->shard;
        latency_observe(f->phase == FLUSH_SYNCING ? &s->fsync_latency : &s->write_latency,
                        monotonic_us() - f->phase_start_us);
        flush_advance(f->log);
    }
}

/* One aligned range of one tail chunk that a flush writes. */
struct flush_range {
    uint32_t tail_index;
    uint32_t start, end; /* chunk-relative, block aligned; start >= end: nothing to write */
};

/* The ranges a flush would write: for each tail chunk, from the block holding the
 * first byte no started flush covers, to the end of its data -- its last whole block
 * when a later chunk of the same segment owns the partial block, or when whole_blocks
 * and the chunk may still grow; else zero padded to the block end. At most
 * PLOG_FLUSH_MAX_WRITES non-empty ranges, so the chunks of a flush come back for
 * reuse while later flushes keep the device busy; *truncated_at is the tail index of
 * the first chunk left to a later flush (tail_count if none). Returns the number of
 * ranges; *write_count counts the non-empty ones. */
static uint32_t flush_plan(const struct plog *log, bool whole_blocks, struct flush_range *r,
                           uint32_t *write_count, uint32_t *truncated_at) {
    uint32_t n = 0;
    *write_count = 0;
    *truncated_at = log->tail_count;
    for (uint32_t i = 0; i < log->tail_count; i++) {
        const struct tail_chunk *t = &log->tail[i];
        if (t->issued_bytes == t->fill_bytes) continue;
        if (*write_count == PLOG_FLUSH_MAX_WRITES) {
            *truncated_at = i;
            break;
        }
        bool successor_same_seg = i + 1 < log->tail_count && log->tail[i + 1].seg == t->seg;
        bool may_grow = !successor_same_seg && !t->seg->sealed;
        uint32_t end = (uint32_t)(successor_same_seg || (whole_blocks && may_grow)
                                      ? align_down(t->fill_bytes)
                                      : align_up(t->fill_bytes));
        r[n] = (struct flush_range){.tail_index = i,
                                    .start = (uint32_t)align_down(t->issued_bytes), .end = end};
        if (r[n].start < r[n].end) (*write_count)++;
        n++;
    }
    return n;
}

static void flush_note_chunk(struct plog_flush *f, uint8_t *chunk, uint32_t issued_bytes) {
    assert(f->chunk_count < 2 * PLOG_MAX_TAIL_CHUNKS);
    f->chunks[f->chunk_count++] = (struct flush_chunk){.chunk = chunk, .issued_bytes = issued_bytes};
}

/* The flush in flight whose zero-padded partial block is still being written, if any
 * (only a flush started with nothing in flight writes one, so there is at most one). */
static struct plog_flush *partial_in_flight(struct plog *log) {
    for (uint32_t i = 0; i < log->flush_count; i++) {
        struct plog_flush *f = flush_at(log, i);
        if (f->wrote_partial && f->phase == FLUSH_WRITING && f->ops_done < f->ops_issued)
            return f;
    }
    return NULL;
}

static void flush_write(struct plog_flush *f, const struct tail_chunk *t, uint32_t start,
                        uint32_t end) {
    struct storage_shard *s = f->log->shard;
    struct io_uring_sqe *sqe = get_sqe(s);
    io_uring_prep_write_fixed(sqe, t->seg->fd, t->chunk + start, end - start,
                              t->file_base + start, chunk_buf_index(s->pool, t->chunk));
    if (f->dsync) sqe->rw_flags = RWF_DSYNC;
    flush_add(f, sqe, end - start);
}

/* Hold f's write of the block at t's start (a block the partial flush p is writing):
 * the op is counted in f now and submitted by deferred_release() when p's writes are
 * done. */
static void flush_defer_block(struct plog_flush *f, const struct tail_chunk *t, uint32_t start,
                              struct plog_flush *p) {
    struct plog *log = f->log;
    assert(!log->deferred.flush && f->ops_issued < PLOG_FLUSH_MAX_OPS);
    struct flush_op *fo = &f->ops[f->ops_issued++];
    *fo = (struct flush_op){.log = log, .flush = f, .expected_bytes = BLOCK_BYTES};
    log->deferred.flush = f;
    log->deferred.after = p;
    log->deferred.op_index = (uint32_t)(fo - f->ops);
    log->deferred.fd = t->seg->fd;
    log->deferred.buf = t->chunk + start;
    log->deferred.file_at = t->file_base + start;
    log->deferred_blocks++;
}

/* The partial flush p's writes are done: submit the block write held behind them, or
 * count it failed when p failed (the partition is failing; nothing more is written). */
static void deferred_release(struct plog *log, struct plog_flush *p) {
    assert(log->deferred.after == p);
    struct plog_flush *f = log->deferred.flush;
    struct flush_op *fo = &f->ops[log->deferred.op_index];
    log->deferred.flush = log->deferred.after = NULL;
    if (p->err || log->failed) {
        f->ops_done++;
        if (!f->err) f->err = -EIO;
        return;
    }
    struct storage_shard *s = log->shard;
    struct io_uring_sqe *sqe = get_sqe(s);
    io_uring_prep_write_fixed(sqe, log->deferred.fd, log->deferred.buf, BLOCK_BYTES,
                              log->deferred.file_at, chunk_buf_index(s->pool, log->deferred.buf));
    if (f->dsync) sqe->rw_flags = RWF_DSYNC;
    fo->op.complete = flush_op_complete;
    uring_op_attach(sqe, &fo->op);
    s->inflight_ops++;
}

/* Issue the planned writes of f. A chunk's range may start inside a block an earlier
 * flush wrote zero padded only once that write completed: while it is in flight, f's
 * write of that block is deferred behind it and the rest goes now. */
static void flush_issue(struct plog *log, struct plog_flush *f, const struct flush_range *r,
                        uint32_t n) {
    struct plog_flush *partial = partial_in_flight(log);
    for (uint32_t k = 0; k < n; k++) {
        struct tail_chunk *t = &log->tail[r[k].tail_index];
        if (r[k].start < r[k].end) {
            bool defer = partial && partial->partial_seg == t->seg &&
                         partial->partial_block_at == t->file_base + r[k].start;
            assert(defer || t->issued_bytes % BLOCK_BYTES == 0 ||
                   t->written_bytes == t->issued_bytes);
            if (r[k].end > t->fill_bytes) { /* zero padding of the last block */
                memset(t->chunk + t->fill_bytes, 0, r[k].end - t->fill_bytes);
                if (!t->seg->sealed) {
                    assert(!partial); /* only a flush started with none in flight */
                    f->wrote_partial = true;
                    f->partial_seg = t->seg;
                    f->partial_block_at = t->file_base + r[k].end - BLOCK_BYTES;
                }
            }
            if (defer) {
                flush_defer_block(f, t, r[k].start, partial);
                if (r[k].start + BLOCK_BYTES < r[k].end)
                    flush_write(f, t, r[k].start + BLOCK_BYTES, r[k].end);
            } else {
                flush_write(f, t, r[k].start, r[k].end);
            }
            if (f->seg_count == 0 || f->segs[f->seg_count - 1] != t->seg)
                f->segs[f->seg_count++] = t->seg;
            /* this write covers block 0, the partial last block of the chunk before */
            struct tail_chunk *prev = r[k].tail_index > 0 ? t - 1 : NULL;
            if (r[k].start == 0 && prev && prev->seg == t->seg &&
                prev->issued_bytes < prev->fill_bytes) {
                prev->issued_bytes = prev->fill_bytes;
                flush_note_chunk(f, prev->chunk, prev->issued_bytes);
            }
        }
        uint32_t issued = r[k].end >= t->fill_bytes ? t->fill_bytes : r[k].end;
        if (issued > t->issued_bytes) {
            t->issued_bytes = issued;
            flush_note_chunk(f, t->chunk, issued);
        }
    }
}

/* Start a flush if one may start now (see "Pipelined flushes" in partition_log.h).
 * Returns the SQEs queued, or -1 when it must wait for a flush in flight. */
static int flush_try_start(struct plog *log) {
    if (log->flush_count == PLOG_MAX_FLUSHES) return -1;
    uint64_t unissued_bytes = 0;
    for (uint32_t i = 0; i < log->tail_count; i++)
        unissued_bytes += log->tail[i].fill_bytes - log->tail[i].issued_bytes;
    bool whole_blocks = log->flush_count > 0 || unissued_bytes >= PLOG_PIPELINE_MIN_BYTES;
    struct flush_range ranges[PLOG_MAX_TAIL_CHUNKS];
    uint32_t writes, truncated_at;
    uint32_t n = flush_plan(log, whole_blocks, ranges, &writes, &truncated_at);
    int64_t cut = truncated_at < log->tail_count
                      ? log->tail[ranges[n - 1].tail_index].cut_offset /* not the last chunk */
                      : log->block_cut_offset;
    int64_t end_offset = cut > log->issued_end_offset ? cut : log->issued_end_offset;
    if (whole_blocks && writes == 0 && end_offset == log->issued_end_offset) {
        if (log->flush_count > 0) return -1; /* no whole block yet: wait */
        whole_blocks = false;
        n = flush_plan(log, false, ranges, &writes, &truncated_at);
    }
    if (!whole_blocks && truncated_at == log->tail_count) end_offset = log->log_end_offset;
    struct plog_flush *f = &log->flush_ring[(log->flush_head + log->flush_count) % PLOG_MAX_FLUSHES];
    bool durable = log->durable_wanted_offset > log->issued_end_offset;
    *f = (struct plog_flush){.log = log, .phase = FLUSH_WRITING, .end_offset = end_offset,
                             .durable = durable,
                             .dsync = durable && log->cfg.dsync_writes &&
                                      log->plain_write_seq <= log->fsync_seq,
                             .phase_start_us = monotonic_us()};
    log->flush_seq++;
    if (durable && !f->dsync) log->fsync_seq = log->flush_seq;
    else if (!durable) log->plain_write_seq = log->flush_seq;
    if (log->flush_count > 0) log->flushes_pipelined++;
    log->flush_count++;
    if (log->flush_count > log->max_flushes_in_flight) log->max_flushes_in_flight = log->flush_count;
    log->flushes++;
    flush_issue(log, f, ranges, n);
    assert(end_offset >= log->issued_end_offset && end_offset <= log->log_end_offset);
    log->issued_end_offset = end_offset;
    flush_take_reqs(log, f);
    int queued = (int)f->ops_issued;
    if (f->ops_issued == 0) flush_advance(log); /* nothing new to write */
    return queued;
}

unsigned storage_poll(struct storage_shard *s) {
    unsigned queued = 0;
    struct plog *keep = NULL;
    struct plog *log = s->dirty_first;
    s->dirty_first = NULL;
    while (log) {
        struct plog *next = log->dirty_next;
        log->dirty_next = NULL;
        log->dirty_listed = false;
        if (log->failed) {
            fail_partition(log, log->failed);
        } else {
            /* as many flushes as may start: each ends further on, or writes more */
            while (!log->failed &&
                   (log->pending_first || log->log_end_offset > log->issued_end_offset)) {
                int rc = flush_try_start(log);
                if (rc < 0) {
                    log->dirty_listed = true; /* try again when a flush completes */
                    log->dirty_next = keep;
                    keep = log;
                    break;
                }
                queued += (unsigned)rc;
            }
        }
        log = next;
    }
    while (keep) { /* put back the logs still waiting */
        struct plog *next = keep->dirty_next;
        keep->dirty_next = s->dirty_first;
        s->dirty_first = keep;
        keep = next;
    }
    return queued;
}

/* ---------------------------------------------------------------- reads */

static struct segment *segment_for_offset(const struct plog *log, int64_t offset) {
    uint32_t lo = 0, hi = log->segment_count; /* last segment with base <= offset */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (log->segments[mid]->base_offset <= offset) lo = mid;
        else hi = mid;
    }
    return log->segments[lo];
}

static struct segment *segment_after(const struct plog *log, const struct segment *seg) {
    for (uint32_t i = 0; i + 1 < log->segment_count; i++)
        if (log->segments[i] == seg) return log->segments[i + 1];
    return NULL;
}

static void read_complete(struct uring_op *op, int32_t res, uint32_t flags);

static int read_issue(struct plog *log, struct plog_read_req *req, struct segment *seg,
                      uint64_t position) {
    struct storage_shard *s = log->shard;
    uint8_t *chunk = storage_alloc_chunk(s);
    if (!chunk) return -ENOBUFS;
    uint64_t file_base = align_down(position);
    uint64_t end = align_up(seg->written_bytes);
    uint64_t len = s->pool->chunk_bytes;
    if (file_base + len > end) len = end > file_base ? end - file_base : 0;
    if (len == 0) {
        chunk_unref(s->pool, chunk);
        return -EIO; /* not cached and not on disk: an invariant broke */
    }
    struct io_uring_sqe *sqe = get_sqe(s);
    io_uring_prep_read_fixed(sqe, seg->fd, chunk, (unsigned)len, file_base,
                             chunk_buf_index(s->pool, chunk));
    req->op.complete = read_complete;
    req->chunk = chunk;
    req->seg = seg;
    req->file_base = file_base;
    uring_op_attach(sqe, &req->op);
    seg->reads_in_flight++;
    log->reads_in_flight++;
    s->inflight_ops++;
    return 0;
}

static bool add_frag(struct plog *log, struct plog_read_req *req, uint8_t *ptr, uint32_t len) {
    struct chunk_pool *pool = log->shard->pool;
    if (req->frag_count > 0) {
        struct frag *f = &req->frags[req->frag_count - 1];
        if ((uint8_t *)f->ptr + f->len == ptr && chunk_start(pool, f->ptr) == chunk_start(pool, ptr)) {
            f->len += len;
            return true;
        }
    }
    if (req->frag_count == PLOG_READ_MAX_FRAGS) return false;
    chunk_ref(pool, ptr);
    req->frags[req->frag_count++] = (struct frag){ptr, len};
    return true;
}

static int read_continue(struct plog *log, struct plog_read_req *req);

static struct readahead *readahead_covering(struct storage_shard *s, const struct segment *seg,
                                            uint64_t position) {
    for (int i = 0; i < STORAGE_READAHEAD_SLOTS; i++) {
        struct readahead *ra = &s->readahead[i];
        if (ra->busy && ra->seg == seg && ra->file_base <= position &&
            position < ra->file_base + s->pool->chunk_bytes)
            return ra;
    }
    return NULL;
}

static void readahead_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    struct readahead *ra = container_of(op, struct readahead, op);
    struct plog *log = ra->log;
    struct storage_shard *s = log->shard;
    s->inflight_ops--;
    ra->seg->reads_in_flight--;
    log->reads_in_flight--;
    ra->busy = false;
    struct plog_read_req *waiter = ra->waiter;
    ra->waiter = NULL;
    if (res > 0) {
        uint64_t valid = (uint64_t)res;
        if (ra->file_base + valid > ra->seg->written_bytes)
            valid = ra->seg->written_bytes - ra->file_base;
        struct cache_entry *e =
            batch_cache_insert(&s->cache, ra->seg, ra->chunk, ra->file_base, (uint32_t)valid);
        e->readahead = true;
    } else {
        chunk_unref(s->pool, ra->chunk);
    }
    ra->chunk = NULL;
    if (waiter) { /* it missed on this range: carry on (reads it from disk on failure) */
        int rc = read_continue(log, waiter);
        if (rc != 0) waiter->done(waiter, rc < 0 ? rc : 0);
    }
}

static void readahead_issue(struct plog *log, struct segment *seg, uint64_t file_base) {
    struct storage_shard *s = log->shard;
    struct readahead *ra = NULL;
    for (int i = 0; i < STORAGE_READAHEAD_SLOTS && !ra; i++)
        if (!s->readahead[i].busy) ra = &s->readahead[i];
    if (!ra || chunk_pool_free_count(s->pool) < s->pool->chunk_count / 8) return;
    uint8_t *chunk = batch_cache_alloc_chunk(&s->cache);
    if (!chunk) return;
    uint64_t len = s->pool->chunk_bytes;
    uint64_t end = align_up(seg->written_bytes);
    if (file_base + len > end) len = end - file_base;
    struct io_uring_sqe *sqe = get_sqe(s);
    io_uring_prep_read_fixed(sqe, seg->fd, chunk, (unsigned)len, file_base,
                             chunk_buf_index(s->pool, chunk));
    *ra = (struct readahead){.op.complete = readahead_complete, .log = log, .seg = seg,
                             .chunk = chunk, .file_base = file_base, .busy = true};
    uring_op_attach(sqe, &ra->op);
    seg->reads_in_flight++;
    log->reads_in_flight++;
    s->inflight_ops++;
    s->readahead_issued++;
}

/* Keep STORAGE_READAHEAD_CHUNKS chunks in flight after the chunk at from_base. Each next
 * chunk starts at the last indexed batch start inside the previous one (aligned down),
 * so every batch is whole in some chunk. */
static void readahead_schedule(struct plog *log, struct segment *seg, uint64_t from_base) {
    struct storage_shard *s = log->shard;
    uint64_t base = from_base;
    for (int k = 0; k < STORAGE_READAHEAD_CHUNKS; k++) {
        uint64_t end = base + s->pool->chunk_bytes;
        if (end >= seg->written_bytes) return;
        uint64_t next = align_down(segment_indexed_position_before(seg, end));
        if (next <= base) return;
        base = next;
        if (batch_cache_has_base(&s->cache, seg, base) || readahead_covering(s, seg, base))
            continue;
        readahead_issue(log, seg, base);
    }
}

/* Where a read stops: the high watermark, or the LSO for read_committed. */
static int64_t read_limit(const struct plog *log, const struct plog_read_req *req) {
    return req->stable_only ? plog_last_stable_offset(log) : log->high_watermark;
}

/* Walk batches from the cache; returns 1 when the answer is complete, 0 when a disk read
 * was issued, or a negative errno. */
static int read_continue(struct plog *log, struct plog_read_req *req) {
    struct batch_cache *cache = &log->shard->cache;
    for (int step = 0; step < PLOG_READ_MAX_STEPS; step++) {
        int64_t want = req->next_offset;
        if (want >= read_limit(log, req)) return 1;
        struct segment *seg = segment_for_offset(log, want);
        if (want >= seg->next_offset) { /* past this segment: the next one */
            struct segment *next = segment_after(log, seg);
            if (!next) return 1;
            req->next_offset = next->base_offset;
            continue;
        }
        int64_t entry_offset;
        uint64_t pos = segment_lookup_position(seg, want, &entry_offset);
        while (pos < seg->size_bytes) {
            struct cache_entry *e = batch_cache_find(cache, seg, pos, RECORD_BATCH_HEADER_BYTES);
            struct record_batch_header h;
            if (e && record_batch_header_parse(e->chunk + (pos - e->file_base),
                                               e->file_base + e->valid_bytes - pos, &h) != RECORD_OK)
                return -EIO; /* stored bytes do not parse: corrupt */
            uint32_t size = e ? (uint32_t)record_batch_size_bytes(&h) : 0;
            if (e && (size > log->shard->pool->chunk_bytes - BLOCK_BYTES ||
                      pos + size > seg->size_bytes))
                return -EIO; /* a length no append could have written: corrupt */
            if (e && pos + size > e->file_base + e->valid_bytes)
                e = batch_cache_find(cache, seg, pos, size);
            if (!e) {
                if (req->frag_count > 0) return 1;
                struct readahead *ra = readahead_covering(log->shard, seg, pos);
                if (ra && !ra->waiter) { /* already on its way */
                    ra->waiter = req;
                    return 0;
                }
                int rc = read_issue(log, req, seg, pos);
                if (rc == 0) readahead_schedule(log, seg, align_down(pos));
                return rc < 0 ? rc : 0;
            }
            if (e->readahead) { /* a sequential reader reached read-ahead data: go on */
                e->readahead = false;
                /* Pinned meanwhile: scheduling allocates chunks, which may evict from the
                 * cache -- with a small budget, this very entry, still used below. */
                e->pins++;
                readahead_schedule(log, seg, e->file_base);
                e->pins--;
            }
            int64_t last = record_batch_last_offset(&h);
            if (last < req->next_offset) {
                pos += size;
                continue;
            }
            if (h.base_offset >= read_limit(log, req)) return 1;
            if (req->bytes > 0 && req->bytes + size > req->max_bytes) return 1;
            if (!add_frag(log, req, e->chunk + (pos - e->file_base), size)) return 1;
            req->bytes += size;
            req->next_offset = last + 1;
            pos += size;
            if (req->bytes >= req->max_bytes) return 1;
        }
        if (req->next_offset < seg->next_offset) req->next_offset = seg->next_offset;
    }
    return 1;
}

static void read_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    struct plog_read_req *req = container_of(op, struct plog_read_req, op);
    struct plog *log = req->log;
    struct storage_shard *s = log->shard;
    s->inflight_ops--;
    req->seg->reads_in_flight--;
    log->reads_in_flight--;
    if (res <= 0) {
        chunk_unref(s->pool, req->chunk);
        req->chunk = NULL;
        log_warn("storage_read_failed", "dir=%s errno=%d", log->dir, -res);
        req->done(req, -EIO);
        return;
    }
    uint64_t valid = (uint64_t)res;
    if (req->file_base + valid > req->seg->written_bytes)
        valid = req->seg->written_bytes - req->file_base;
    batch_cache_insert(&s->cache, req->seg, req->chunk, req->file_base, (uint32_t)valid);
    req->chunk = NULL;
    int rc = read_continue(log, req);
    if (rc != 0) req->done(req, rc < 0 ? rc : 0);
}

int plog_read(struct plog *log, struct plog_read_req *req) {
    req->log = log;
    req->frag_count = 0;
    req->bytes = 0;
    req->next_offset = req->offset;
    req->chunk = NULL;
    /* A failed partition still serves what it wrote: nothing below the high watermark
     * was touched by the failure. */
    if (req->offset < log->log_start_offset || req->offset > log->log_end_offset) return -ERANGE;
    return read_continue(log, req);
}

void plog_read_release(struct plog *log, struct plog_read_req *req) {
    for (uint32_t i = 0; i < req->frag_count; i++) frag_release(log->shard->pool, &req->frags[i]);
    req->frag_count = 0;
    req->bytes = 0;
}

int64_t plog_offset_for_timestamp(const struct plog *log, int64_t timestamp_ms) {
    for (uint32_t i = 0; i < log->segment_count; i++) {
        int64_t offset;
        uint32_t position;
        if (segment_lookup_time(log->segments[i], timestamp_ms, &offset, &position))
            return offset < log->log_start_offset ? log->log_start_offset : offset;
    }
    return log->log_end_offset;
}

uint64_t plog_size_bytes(const struct plog *log) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < log->segment_count; i++) total += log->segments[i]->size_bytes;
    return total;
}

/* ---------------------------------------------------------------- retention */

/* The log start offset lives in a 21-byte file, written and fdatasynced through the
 * ring (Kafka checkpoints it asynchronously too). One write+fsync pair is in flight at
 * a time; a change meanwhile is written when it completes. */
static void persist_log_start(struct plog *log);

static void meta_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    struct plog *log = container_of(op, struct flush_op, op)->log;
    log->shard->inflight_ops--;
    if (res < 0 && res != -ECANCELED)
        log_warn("log_start_persist_failed", "dir=%s errno=%d", log->dir, -res);
    if (--log->meta_ops_pending > 0) return;
    if (log->meta_dirty) persist_log_start(log);
}

static void persist_log_start(struct plog *log) {
    if (log->meta_ops_pending > 0) {
        log->meta_dirty = true;
        return;
    }
    log->meta_dirty = false;
    int n = snprintf(log->meta_buf, sizeof log->meta_buf, "%020" PRId64 "\n",
                     log->log_start_offset);
    struct storage_shard *s = log->shard;
    if (io_uring_sq_space_left(s->ring) < 2) io_uring_submit(s->ring);
    struct io_uring_sqe *w = get_sqe(s);
    io_uring_prep_write(w, log->meta_fd, log->meta_buf, (unsigned)n, 0);
    w->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *f = get_sqe(s);
    io_uring_prep_fsync(f, log->meta_fd, IORING_FSYNC_DATASYNC);
    for (int i = 0; i < 2; i++) {
        log->meta_ops[i].op.complete = meta_complete;
        log->meta_ops[i].log = log;
        log->meta_ops[i].expected_bytes = 0;
    }
    uring_op_attach(w, &log->meta_ops[0].op);
    uring_op_attach(f, &log->meta_ops[1].op);
    log->meta_ops_pending = 2;
    s->inflight_ops += 2;
}

static bool segment_deletable(const struct plog *log, const struct segment *seg) {
    if (seg == active_segment((struct plog *)log) || seg->reads_in_flight || seg->index_dirty)
        return false;
    for (uint32_t i = 0; i < log->tail_count; i++)
        if (log->tail[i].seg == seg) return false;
    for (uint32_t i = 0; i < log->flush_count; i++) { /* an fdatasync may be in flight */
        const struct plog_flush *f = &log->flush_ring[(log->flush_head + i) % PLOG_MAX_FLUSHES];
        for (uint32_t k = 0; k < f->seg_count; k++)
            if (f->segs[k] == seg) return false;
    }
    return true;
}

static void unlink_segment_files(struct plog *log, int64_t base_offset) {
    const char *suffixes[] = {".log", ".index", ".timeindex"};
    for (int i = 0; i < 3; i++) {
        char name[SEGMENT_NAME_BYTES];
        segment_file_name(name, sizeof name, base_offset, suffixes[i]);
        if (unlinkat(log->dir_fd, name, 0) != 0 && errno != ENOENT)
            log_warn("segment_unlink_failed", "dir=%s file=%s errno=%d", log->dir, name, errno);
    }
}

static void delete_first_segment(struct plog *log) {
    struct segment *seg = log->segments[0];
    batch_cache_drop_segment(&log->shard->cache, seg);
    unlink_segment_files(log, seg->base_offset);
    log_info("segment_deleted", "dir=%s base_offset=%" PRId64 " bytes=%" PRIu64, log->dir,
             seg->base_offset, seg->size_bytes);
    segment_free(seg);
    free(seg);
    memmove(log->segments, log->segments + 1, (log->segment_count - 1) * sizeof log->segments[0]);
    log->segment_count--;
}

int plog_enforce_retention(struct plog *log, int64_t now_ms) {
    int deleted = 0;
    uint64_t total = plog_size_bytes(log);
    while (log->segment_count > 1 && segment_deletable(log, log->segments[0])) {
        struct segment *seg = log->segments[0];
        bool by_time = log->cfg.retention_ms >= 0 && seg->max_timestamp_ms >= 0 &&
                       now_ms - seg->max_timestamp_ms > log->cfg.retention_ms;
        bool by_size = log->cfg.retention_bytes >= 0 &&
                       total - seg->size_bytes >= (uint64_t)log->cfg.retention_bytes;
        bool below_start = seg->next_offset <= log->log_start_offset;
        if (!by_time && !by_size && !below_start) break;
        total -= seg->size_bytes;
        delete_first_segment(log);
        deleted++;
    }
    if (deleted && log->segments[0]->base_offset > log->log_start_offset) {
        log->log_start_offset = log->segments[0]->base_offset;
        persist_log_start(log);
    }
    if (deleted) (void)txn_aborted_trim(&log->txn, log->log_start_offset);
    return deleted;
}

int plog_delete_records(struct plog *log, int64_t offset) {
    if (offset < 0 || offset > log->high_watermark) return -ERANGE;
    if (offset <= log->log_start_offset) return 0;
    log->log_start_offset = offset;
    persist_log_start(log);
    (void)txn_aborted_trim(&log->txn, offset);
    while (log->segment_count > 1 && log->segments[0]->next_offset <= offset &&
           segment_deletable(log, log->segments[0]))
        delete_first_segment(log);
    return 0;
}

/* ---------------------------------------------------------------- open / recovery */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Base offsets of the *.log files in dir, sorted. Returns the count or -errno. */
static int list_segments(const char *dir, int64_t *bases, int max) {
    DIR *d = opendir(dir);
    if (!d) return -errno;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0) continue;
        bool digits = true;
        for (int i = 0; i < 20; i++) digits &= name[i] >= '0' && name[i] <= '9';
        if (!digits) continue;
        if (n == max) {
            closedir(d);
            return -EMFILE;
        }
        bases[n++] = strtoll(name, NULL, 10);
    }
    closedir(d);
    qsort(bases, (size_t)n, sizeof *bases, cmp_i64);
    return n;
}

static int recover_segment(struct plog *log, struct segment *seg, bool is_tail) {
    char reason[64];
    bool loaded = !is_tail && segment_load_indexes(seg, log->dir);
    int fd = open_segment_file(log, seg->base_offset, is_tail ? O_RDWR : O_RDONLY);
    if (fd < 0) return -errno;
    seg->fd = fd;
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    if (loaded && (uint64_t)st.st_size < seg->size_bytes) { /* stale: rebuild */
        int64_t base = seg->base_offset;
        seg->index_count = seg->time_index_count = 0;
        seg->size_bytes = 0;
        seg->next_offset = base;
        seg->max_timestamp_ms = -1;
        loaded = false;
    }
    /* Every scan checks CRCs, not only the tail's: a segment sealed in memory whose
     * indexes never got written (a crash during the roll's last flush) may hold a batch
     * with a whole header and a torn body -- its blocks are written by concurrent ops
     * (a held rewrite of a partial block comes after the blocks behind it). */
    uint64_t from = seg->size_bytes;
    int64_t cut = segment_scan(seg, log->dir, from, seg->next_offset,
                               log->cfg.index_interval_bytes, reason, sizeof reason);
    if (cut < 0) return (int)cut;
    if (cut > 0) /* non-zero bytes past the last good batch: a torn or corrupt tail */
        log_warn("recovery_truncate", "dir=%s segment=%" PRId64 " keep_bytes=%" PRIu64
                 " file_bytes=%jd nonzero_bytes_cut=%" PRId64 " reason=%s",
                 log->dir, seg->base_offset, seg->size_bytes, (intmax_t)st.st_size, cut, reason);
    if (is_tail && (uint64_t)st.st_size != seg->size_bytes) {
        if (ftruncate(fd, (off_t)seg->size_bytes) != 0) return -errno;
        if (cut == 0 && st.st_size - (off_t)seg->size_bytes >= (off_t)BLOCK_BYTES)
            log_info("recovery_trim", "dir=%s segment=%" PRId64 " bytes=%jd", log->dir,
                     seg->base_offset, (intmax_t)(st.st_size - (off_t)seg->size_bytes));
    }
    if (!is_tail && (!loaded || seg->size_bytes != from)) {
        int rc = segment_write_indexes(seg, log->dir);
        if (rc < 0) log_warn("segment_index_write_failed", "dir=%s errno=%d", log->dir, -rc);
    }
    if (!is_tail) segment_shrink_indexes(seg);
    seg->written_bytes = seg->size_bytes;
    seg->allocated_bytes = seg->size_bytes;
    seg->sealed = !is_tail;
    seg->needs_dir_sync = is_tail; /* it may have just been created */
    seg->created_ms = wall_ms();
    return 0;
}

static void read_log_start(struct plog *log) {
    char buf[32] = {0};
    ssize_t n = pread(log->meta_fd, buf, sizeof buf - 1, 0);
    log->log_start_offset = n > 0 ? strtoll(buf, NULL, 10) : 0;
    if (log->log_start_offset < 0) log->log_start_offset = 0;
}

static int plog_open_dir(struct plog *log) {
    int64_t *bases = malloc(PLOG_MAX_SEGMENTS * sizeof *bases);
    if (!bases) return -ENOMEM;
    int n = list_segments(log->dir, bases, PLOG_MAX_SEGMENTS);
    if (n < 0) {
        free(bases);
        return n;
    }
    int rc = 0;
    if (n == 0) bases[n++] = log->log_start_offset;
    for (int i = 0; i < n && rc == 0; i++) {
        struct segment *seg = malloc(sizeof *seg);
        if (!seg) {
            rc = -ENOMEM;
            break;
        }
        /* Size the indexes for the file as it is, in case segment.bytes was lowered. */
        char name[SEGMENT_NAME_BYTES];
        segment_file_name(name, sizeof name, bases[i], ".log");
        struct stat st;
        uint64_t cap_bytes = log->cfg.segment_bytes;
        if (fstatat(log->dir_fd, name, &st, 0) == 0 && (uint64_t)st.st_size > cap_bytes)
            cap_bytes = (uint64_t)st.st_size;
        rc = segment_init(seg, bases[i], cap_bytes, log->cfg.index_interval_bytes);
        if (rc < 0) {
            free(seg);
            break;
        }
        log->segments[log->segment_count++] = seg;
        bool is_tail = i == n - 1;
        if (is_tail) { /* create it if this is a new partition */
            int fd = open_segment_file(log, seg->base_offset, O_RDWR | O_CREAT);
            if (fd < 0) rc = -errno;
            else close(fd);
        }
        if (rc == 0) rc = recover_segment(log, seg, is_tail);
        if (rc == 0 && !is_tail && seg->next_offset != bases[i + 1]) {
            /* The writer keeps offsets contiguous across segments and acknowledges in
             * order, so a segment that ends short of the next one's base lost writes
             * that were never acknowledged -- and so was everything after them. */
            log_warn("recovery_gap", "dir=%s segment=%" PRId64 " ends_at=%" PRId64
                     " next_segment=%" PRId64 " dropped_segments=%d", log->dir,
                     seg->base_offset, seg->next_offset, bases[i + 1], n - 1 - i);
            for (int j = i + 1; j < n; j++) unlink_segment_files(log, bases[j]);
            n = i + 1;
            segment_free(seg); /* recover it again, as the tail */
            rc = segment_init(seg, bases[i], cap_bytes, log->cfg.index_interval_bytes);
            if (rc == 0) rc = recover_segment(log, seg, true);
        }
    }
    free(bases);
    return rc;
}

#define PRODUCER_SCAN_BUF_BYTES (64u * 1024u)

/* Feed the producer state every batch header of seg at or after from_offset: one
 * buffered pread per 64 KiB, no CRC (recovery checked every segment it scanned; a
 * segment with its index files was sealed after all its data was down). Returns 0 or
 * -errno. */
static int scan_segment_producers(struct plog *log, struct segment *seg, int64_t from_offset,
                                  uint8_t *buf, int64_t now_ms) {
    char name[SEGMENT_NAME_BYTES];
    segment_file_name(name, sizeof name, seg->base_offset, ".log");
    int fd = openat(log->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int64_t entry_offset = seg->base_offset;
    uint64_t pos = from_offset > seg->base_offset
                       ? segment_lookup_position(seg, from_offset, &entry_offset) : 0;
    uint64_t buf_pos = 0, buf_len = 0;
    int rc = 0;
    for (uint64_t batches = 0; pos + RECORD_BATCH_HEADER_BYTES <= seg->size_bytes; batches++) {
        assert(batches <= seg->size_bytes / RECORD_BATCH_HEADER_BYTES);
        if (pos < buf_pos || pos + RECORD_BATCH_HEADER_BYTES > buf_pos + buf_len) {
            ssize_t n = pread(fd, buf, PRODUCER_SCAN_BUF_BYTES, (off_t)pos);
            if (n < (ssize_t)RECORD_BATCH_HEADER_BYTES) {
                rc = n < 0 ? -errno : -EIO;
                break;
            }
            buf_pos = pos;
            buf_len = (uint64_t)n;
        }
        struct record_batch_header h;
        if (record_batch_header_parse(buf + (pos - buf_pos), RECORD_BATCH_HEADER_BYTES, &h) !=
            RECORD_OK) {
            rc = -EIO; /* recovery kept it, so it parsed then */
            break;
        }
        uint64_t size = record_batch_size_bytes(&h);
        if (h.base_offset >= from_offset && (h.attributes & RECORD_ATTR_CONTROL)) {
            /* a marker: its record says COMMIT or ABORT, so read it whole (markers are
             * tiny; anything larger is not one the log accepted) */
            if (size <= PRODUCER_SCAN_BUF_BYTES && pos + size > buf_pos + buf_len) {
                ssize_t n = pread(fd, buf, PRODUCER_SCAN_BUF_BYTES, (off_t)pos);
                if (n < (ssize_t)size) {
                    rc = n < 0 ? -errno : -EIO;
                    break;
                }
                buf_pos = pos;
                buf_len = (uint64_t)n;
            }
            const uint8_t *b = buf + (pos - buf_pos);
            int type = size <= PRODUCER_SCAN_BUF_BYTES ? control_batch_type(b, size) : -1;
            if (type >= 0 && h.producer_id >= 0)
                note_txn_marker(log, &h, type, control_batch_coordinator_epoch(b, size),
                                h.base_offset, true, now_ms);
            log->producer_batches_scanned++;
        } else if (h.base_offset >= from_offset) {
            note_producer_batch(log, &h, h.base_offset, now_ms);
            log->producer_batches_scanned++;
        }
        pos += size;
    }
    close(fd);
    return rc;
}

/* Rebuild the producer state: the newest usable snapshot, then the batches after it. */
static int rebuild_producers(struct plog *log) {
    int64_t now_ms = wall_ms();
    int64_t from = 0;
    int64_t snap = producer_snapshot_latest(log->dir, log->log_end_offset);
    if (snap >= 0) {
        int rc = producer_state_read_snapshot(&log->producers, &log->txn, log->dir, snap, now_ms);
        if (rc == 0) {
            from = snap;
            log->snapshot_offsets[0] = snap;
        } else {
            log_warn("producer_snapshot_unusable", "dir=%s offset=%" PRId64 " errno=%d",
                     log->dir, snap, -rc);
            producer_state_clear(&log->producers);
            txn_log_clear(&log->txn);
        }
    }
    uint8_t *buf = malloc(PRODUCER_SCAN_BUF_BYTES);
    if (!buf) return -ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < log->segment_count && rc == 0; i++) {
        struct segment *seg = log->segments[i];
        if (seg->next_offset <= from || seg->size_bytes == 0) continue;
        rc = scan_segment_producers(log, seg, from, buf, now_ms);
    }
    free(buf);
    (void)txn_aborted_trim(&log->txn, log->log_start_offset);
    if (rc == 0 && (snap >= 0 || log->producers.count > 0))
        log_info("producer_state_rebuilt", "dir=%s snapshot=%" PRId64 " batches_scanned=%" PRIu64
                 " producers=%u open_txns=%u aborted_txns=%u lso=%" PRId64, log->dir, snap,
                 log->producer_batches_scanned, log->producers.count, log->producers.open_txns,
                 log->txn.aborted_count, plog_last_stable_offset(log));
    return rc;
}

static void plog_free(struct plog *log) {
    for (uint32_t i = 0; i < log->segment_count; i++) {
        batch_cache_drop_segment(&log->shard->cache, log->segments[i]);
        segment_free(log->segments[i]);
        free(log->segments[i]);
    }
    if (log->dir_fd >= 0) close(log->dir_fd);
    if (log->meta_fd >= 0) close(log->meta_fd);
    producer_state_free(&log->producers);
    txn_log_free(&log->txn);
    free(log->carry_buf);
    free(log);
}

struct plog *plog_open(struct storage_shard *s, const char *data_dir, const char *topic,
                       int32_t partition, const struct plog_config *cfg, int *err) {
    struct plog *log = calloc(1, sizeof *log);
    if (!log) {
        *err = -ENOMEM;
        return NULL;
    }
    log->shard = s;
    log->cfg = *cfg;
    log->dir_fd = log->meta_fd = -1;
    assert(cfg->index_interval_bytes > 0 && cfg->segment_bytes > 0);
    int n = snprintf(log->dir, sizeof log->dir, "%s/%s-%d", data_dir, topic, partition);
    *err = 0;
    if (n <= 0 || (size_t)n >= sizeof log->dir) *err = -ENAMETOOLONG;
    if (!*err && mkdir(data_dir, 0755) != 0 && errno != EEXIST) *err = -errno;
    if (!*err && mkdir(log->dir, 0755) != 0 && errno != EEXIST) *err = -errno;
    if (!*err && (log->dir_fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        *err = -errno;
    if (!*err && (log->meta_fd = openat(log->dir_fd, META_FILE, O_RDWR | O_CREAT | O_CLOEXEC,
                                        0644)) < 0)
        *err = -errno;
    if (!*err && !(log->carry_buf = aligned_alloc(BLOCK_BYTES, BLOCK_BYTES))) *err = -ENOMEM;
    if (!*err) {
        read_log_start(log);
        *err = plog_open_dir(log);
    }
    log->snapshot_offsets[0] = log->snapshot_offsets[1] = -1;
    if (!*err)
        *err = producer_state_init(&log->producers,
                                   cfg->max_producers ? cfg->max_producers : PRODUCER_STATE_DEFAULT_MAX,
                                   cfg->producer_expiration_ms);
    if (!*err) *err = txn_log_init(&log->txn);
    if (!*err) {
        struct segment *tail = active_segment(log);
        log->log_end_offset = tail->next_offset;
        if (log->log_start_offset < log->segments[0]->base_offset)
            log->log_start_offset = log->segments[0]->base_offset;
        if (log->log_start_offset > log->log_end_offset) log->log_start_offset = log->log_end_offset;
        log->high_watermark = log->durable_offset = log->log_end_offset;
        log->issued_end_offset = log->block_cut_offset = log->log_end_offset;
        log->durable_wanted_offset = log->log_end_offset;
        log->carry_seg = tail;
        log->carry_base = align_down(tail->size_bytes);
        uint32_t carry = (uint32_t)(tail->size_bytes - log->carry_base);
        if (carry > 0) {
            ssize_t got = pread(tail->fd, log->carry_buf, BLOCK_BYTES, (off_t)log->carry_base);
            if (got < (ssize_t)carry) *err = got < 0 ? -errno : -EIO;
        }
    }
    if (!*err) *err = rebuild_producers(log);
    if (*err) {
        log_error("plog_open_failed", "dir=%s errno=%d", log->dir, -*err);
        plog_free(log);
        return NULL;
    }
    log->next_open = s->logs_first;
    if (s->logs_first) s->logs_first->prev_open = log;
    s->logs_first = log;
    log_info("plog_open", "dir=%s segments=%u log_start=%" PRId64 " log_end=%" PRId64, log->dir,
             log->segment_count, log->log_start_offset, log->log_end_offset);
    return log;
}

/* Reap until this log has nothing in flight (shutdown and tests only). */
static void drain(struct plog *log) {
    struct storage_shard *s = log->shard;
    for (int spins = 0; log->flush_count > 0 || log->alloc_in_flight || log->reads_in_flight ||
                        log->meta_ops_pending || log->index_seg || log->snap_write.busy ||
                        log->unlinks_in_flight ||
                        (!log->failed && log->log_end_offset > log->high_watermark);
         spins++) {
        assert(spins < 1000000);
        storage_poll(s);
        io_uring_submit_and_wait(s->ring, 1);
        uring_op_dispatch_ready(s->ring, 256);
    }
}

void plog_close(struct plog *log) {
    struct storage_shard *s = log->shard;
    drain(log);
    if (log->dirty_listed) { /* unlink from the shard's dirty list */
        struct plog **pp = &s->dirty_first;
        while (*pp != log) pp = &(*pp)->dirty_next;
        *pp = log->dirty_next;
    }
    if (log->failed) fail_partition(log, log->failed);
    if (log->prev_open) log->prev_open->next_open = log->next_open;
    else s->logs_first = log->next_open;
    if (log->next_open) log->next_open->prev_open = log->prev_open;
    for (uint32_t i = 0; i < log->tail_count; i++) {
        log->tail[i].entry->pins--;
        chunk_unref(s->pool, log->tail[i].chunk);
    }
    log->tail_count = 0;
    if (!log->failed) { /* clean shutdown: indexes, and no zero padding at the tail */
        struct segment *tail = active_segment(log);
        if (log->seal_pending) {
            (void)segment_write_indexes(log->seal_pending, log->dir);
            trim_sealed(log, log->seal_pending);
        }
        (void)segment_write_indexes(tail, log->dir);
        if (ftruncate(tail->fd, (off_t)tail->size_bytes) != 0)
            log_warn("segment_trim_failed", "dir=%s errno=%d", log->dir, errno);
        write_producer_snapshot(log);
    }
    plog_free(log);
}
