/* batch_cache.h - the shard's cache of segment byte ranges in chunk memory.
 *
 * An entry is one chunk holding the bytes of one segment from file_base (4 KiB aligned)
 * for valid_bytes. Entries come from two places: the writer (every chunk the partition
 * log appends into is an entry from the moment it is filled, so a tailing reader is
 * served from memory and never touches the disk) and the reader (a READ_FIXED of a
 * missing range). Entries are indexed by chunk number, so the entry table is allocated
 * once with one slot per chunk in the pool and nothing is allocated afterwards.
 *
 * The cache holds one chunk reference per entry. A reader takes its own reference per
 * fragment it hands out, so eviction (which drops only the cache's reference) never
 * pulls memory from under a fetch in flight. Eviction is LRU over unpinned entries and
 * runs when the number of cached bytes exceeds budget_bytes or when the pool has no
 * free chunk. The writer pins the chunk it is still appending into.
 *
 * Per segment, entries form a list sorted by file_base; lookups walk it from the newest
 * end and stop a chunk before the position (tailing readers hit the first entry). */
#ifndef SLUICE_STORAGE_BATCH_CACHE_H
#define SLUICE_STORAGE_BATCH_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "hw/chunk.h"

struct segment;

struct cache_entry {
    uint8_t *chunk;          /* NULL = slot unused */
    struct segment *seg;
    uint64_t file_base;      /* file position of chunk[0]; multiple of 4096 */
    uint32_t valid_bytes;    /* chunk[0..valid_bytes) mirrors the file */
    uint32_t pins;           /* > 0: not evictable (writer tail, read in flight) */
    bool readahead;          /* filled by read-ahead and not yet hit */
    struct cache_entry *lru_prev, *lru_next; /* lru_next toward most recent */
    struct cache_entry *seg_prev, *seg_next; /* sorted by file_base */
};

struct batch_cache {
    struct chunk_pool *pool;
    struct cache_entry *entries; /* one per chunk in the pool */
    struct cache_entry *lru_oldest, *lru_newest;
    uint64_t budget_bytes;
    uint64_t cached_bytes;       /* chunk_bytes per entry in use */
    uint64_t hits, misses, evictions;
};

int batch_cache_init(struct batch_cache *c, struct chunk_pool *pool, uint64_t budget_bytes);
void batch_cache_destroy(struct batch_cache *c);

/* Make room for one more chunk: evict LRU unpinned entries while over budget or while
 * the pool is empty. Returns a fresh chunk (refcount 1, owned by the caller) or NULL. */
uint8_t *batch_cache_alloc_chunk(struct batch_cache *c);

/* Insert chunk (caller's reference moves to the cache) as the range of seg starting at
 * file_base. Returns the entry. */
struct cache_entry *batch_cache_insert(struct batch_cache *c, struct segment *seg,
                                       uint8_t *chunk, uint64_t file_base,
                                       uint32_t valid_bytes);

/* The entry of seg holding bytes [position, position + need_bytes), or NULL. Marks it
 * most recently used. */
struct cache_entry *batch_cache_find(struct batch_cache *c, struct segment *seg,
                                     uint64_t position, uint32_t need_bytes);

/* Drop every entry of seg (segment deleted or closed). Pinned entries must not exist. */
void batch_cache_drop_segment(struct batch_cache *c, struct segment *seg);

void batch_cache_touch(struct batch_cache *c, struct cache_entry *e);

/* True when an entry of seg starts at file_base (no statistics, no LRU update). */
bool batch_cache_has_base(const struct batch_cache *c, const struct segment *seg,
                          uint64_t file_base);

#endif
