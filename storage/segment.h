/* segment.h - one log segment: a file of RecordBatch v2 bytes plus its two indexes.
 *
 * Files, in <data-dir>/<topic>-<partition>/:
 *   <20-digit base offset>.log        batches back to back, base offsets assigned
 *   <20-digit base offset>.index      sparse offset index: (relative offset, position)
 *   <20-digit base offset>.timeindex  time index: (max timestamp so far, relative offset,
 *                                     position), one entry each time the running maximum
 *                                     timestamp of the segment grows
 * Index files are native-endian arrays followed by a trailer (magic, entry count, the
 * segment size and next offset they cover). They are written when a segment is sealed
 * and at close; on open they are loaded if their trailer agrees with the segment, then
 * the remainder past the covered size is scanned; otherwise they are rebuilt by a header
 * scan. The .log file may be longer than its logical size by < 4 KiB of zero padding
 * (O_DIRECT writes whole blocks); the logical size is where the batch scan stops.
 *
 * Both indexes live in memory for every open segment (arrays sized at creation from
 * segment.bytes and index.interval.bytes, trimmed to their use when the segment is
 * sealed; a full index rolls the segment, as in Kafka).
 * Only RecordBatch v2 is stored: legacy MessageSets are converted by the records layer
 * before append, so every batch here starts with the 61-byte v2 header. */
#ifndef SLUICE_STORAGE_SEGMENT_H
#define SLUICE_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct offset_index_entry {
    uint32_t relative_offset;
    uint32_t position;
};

struct time_index_entry {
    int64_t timestamp_ms;
    uint32_t relative_offset;
    uint32_t position;
};

struct segment {
    int64_t base_offset;
    int64_t next_offset;        /* offset after the last batch (exclusive end) */
    uint64_t size_bytes;        /* logical size: end of the last complete batch */
    uint64_t allocated_bytes;   /* file size set by fallocate so far */
    int64_t max_timestamp_ms;   /* largest batch max_timestamp (-1: none) */
    int64_t created_ms;         /* wall clock when created or opened (segment.ms) */
    int fd;                     /* O_DIRECT; O_RDWR for the active segment */
    bool sealed;
    bool needs_dir_sync;        /* the file is new: fsync the directory on next durable flush */
    bool index_dirty;           /* sealed, index files not yet written */
    uint64_t written_bytes;     /* bytes of the file known written (readable from disk) */
    uint32_t reads_in_flight;   /* disk reads targeting this segment (retention waits) */
    uint64_t bytes_since_index;
    struct offset_index_entry *index;
    uint32_t index_count, index_capacity;
    struct time_index_entry *time_index;
    uint32_t time_index_count, time_index_capacity;
    struct cache_entry *cache_first; /* cached ranges of this segment (batch_cache.c), */
    struct cache_entry *cache_last;  /* sorted by file position */
};

#define SEGMENT_NAME_BYTES 32 /* "<20 digits>.timeindex" + NUL */

/* An index file is its entries followed by this trailer, checked when it is loaded. */
#define SEGMENT_INDEX_TRAILER_MAGIC 0x534c4958u /* "SLIX" */
struct segment_index_trailer {
    uint32_t magic;
    uint32_t entry_count;
    uint64_t covered_size_bytes;
    int64_t next_offset;
    int64_t max_timestamp_ms;
};

enum segment_index { SEGMENT_OFFSET_INDEX = 0, SEGMENT_TIME_INDEX = 1 };

/* The bytes of one index file of a segment, for a write through the ring: iov[0] the
 * entries (the segment's own arrays: keep it alive and unchanged until written), iov[1]
 * the trailer, filled into *t; name its file name. */
void segment_index_file(const struct segment *seg, enum segment_index which,
                        struct iovec iov[2], struct segment_index_trailer *t, char *name,
                        size_t name_bytes);

void segment_file_name(char *out, size_t out_bytes, int64_t base_offset, const char *suffix);

/* Allocate the in-memory indexes. Returns 0 or -ENOMEM. */
int segment_init(struct segment *seg, int64_t base_offset, uint64_t segment_bytes,
                 uint32_t index_interval_bytes);
void segment_free(struct segment *seg);

/* Sealed: give back the unused tail of both index arrays (they were sized for a full
 * segment; calloc'ed pages are only resident once touched, so this trims the address
 * space more than memory). */
void segment_shrink_indexes(struct segment *seg);

/* Record a batch appended at position (updates sizes, offsets, both indexes). Returns
 * false when an index is full (the caller rolls before appending). */
bool segment_index_has_room(const struct segment *seg);
void segment_note_batch(struct segment *seg, uint32_t position, int64_t base_offset,
                        int64_t next_offset, int64_t max_timestamp_ms, uint32_t size_bytes,
                        uint32_t index_interval_bytes);

/* Largest indexed position whose offset is <= offset (0 when none). */
uint32_t segment_lookup_position(const struct segment *seg, int64_t offset,
                                 int64_t *entry_offset);

/* Position of the last indexed batch start below end_position (0 when none). */
uint32_t segment_indexed_position_before(const struct segment *seg, uint64_t end_position);

/* First batch whose max timestamp >= timestamp_ms: its base offset and position.
 * Returns false when no batch in the segment qualifies. */
bool segment_lookup_time(const struct segment *seg, int64_t timestamp_ms,
                         int64_t *offset, uint32_t *position);

/* Scan batches in the file from position (whose batch starts at start_offset) with plain
 * pread on a buffered descriptor (open/recovery time only), adding index entries. Every
 * batch's CRC32C is checked (see recover_segment). Stops at the first batch that does not
 * check and sets seg->size_bytes there. Returns the number of bytes past the logical end
 * that were not zero (0 = clean end), or -errno on an I/O error. */
int64_t segment_scan(struct segment *seg, const char *dir, uint64_t position,
                     int64_t start_offset, uint32_t index_interval_bytes,
                     char *reason, size_t reason_bytes);

/* Write both index files, blocking (at close; partition_log.c writes them through the
 * ring at seal). Returns 0 or -errno. */
int segment_write_indexes(const struct segment *seg, const char *dir);

/* Load the index files if their trailer matches; returns true when loaded. The caller
 * then scans from seg->size_bytes (covered size) to pick up anything newer. */
bool segment_load_indexes(struct segment *seg, const char *dir);

#endif
