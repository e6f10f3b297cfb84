/* batch_cache.c - LRU cache of segment ranges in chunks. See batch_cache.h. */
#include "storage/batch_cache.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/segment.h"

int batch_cache_init(struct batch_cache *c, struct chunk_pool *pool, uint64_t budget_bytes) {
    memset(c, 0, sizeof *c);
    c->pool = pool;
    c->budget_bytes = budget_bytes;
    c->entries = calloc(pool->chunk_count, sizeof *c->entries);
    return c->entries ? 0 : -ENOMEM;
}

void batch_cache_destroy(struct batch_cache *c) {
    for (uint32_t i = 0; c->entries && i < c->pool->chunk_count; i++)
        if (c->entries[i].chunk) chunk_unref(c->pool, c->entries[i].chunk);
    free(c->entries);
    memset(c, 0, sizeof *c);
}

static void lru_unlink(struct batch_cache *c, struct cache_entry *e) {
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
    else c->lru_oldest = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
    else c->lru_newest = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_newest(struct batch_cache *c, struct cache_entry *e) {
    e->lru_prev = c->lru_newest;
    e->lru_next = NULL;
    if (c->lru_newest) c->lru_newest->lru_next = e;
    else c->lru_oldest = e;
    c->lru_newest = e;
}

void batch_cache_touch(struct batch_cache *c, struct cache_entry *e) {
    if (c->lru_newest == e) return;
    lru_unlink(c, e);
    lru_push_newest(c, e);
}

static void entry_remove(struct batch_cache *c, struct cache_entry *e) {
    assert(e->chunk && e->pins == 0);
    lru_unlink(c, e);
    if (e->seg_prev) e->seg_prev->seg_next = e->seg_next;
    else e->seg->cache_first = e->seg_next;
    if (e->seg_next) e->seg_next->seg_prev = e->seg_prev;
    else e->seg->cache_last = e->seg_prev;
    chunk_unref(c->pool, e->chunk);
    c->cached_bytes -= c->pool->chunk_bytes;
    memset(e, 0, sizeof *e);
}

static bool evict_one(struct batch_cache *c) {
    for (struct cache_entry *e = c->lru_oldest; e; e = e->lru_next) {
        if (e->pins == 0) {
            entry_remove(c, e);
            c->evictions++;
            return true;
        }
    }
    return false;
}

uint8_t *batch_cache_alloc_chunk(struct batch_cache *c) {
    while (c->cached_bytes + c->pool->chunk_bytes > c->budget_bytes && evict_one(c)) {
    }
    uint8_t *chunk = chunk_alloc(c->pool);
    while (!chunk && evict_one(c)) chunk = chunk_alloc(c->pool);
    return chunk;
}

struct cache_entry *batch_cache_insert(struct batch_cache *c, struct segment *seg,
                                       uint8_t *chunk, uint64_t file_base,
                                       uint32_t valid_bytes) {
    assert(file_base % CHUNK_ALIGN_BYTES == 0 && valid_bytes <= c->pool->chunk_bytes);
    struct cache_entry *e = &c->entries[chunk_index(c->pool, chunk)];
    assert(e->chunk == NULL && chunk_start(c->pool, chunk) == chunk);
    *e = (struct cache_entry){.chunk = chunk, .seg = seg, .file_base = file_base,
                              .valid_bytes = valid_bytes};
    /* Insert sorted by file_base; appends land at the end, so walk from the end. */
    struct cache_entry *after = seg->cache_last;
    while (after && after->file_base > file_base) after = after->seg_prev;
    if (after) {
        e->seg_prev = after;
        e->seg_next = after->seg_next;
        if (after->seg_next) after->seg_next->seg_prev = e;
        else seg->cache_last = e;
        after->seg_next = e;
    } else {
        e->seg_next = seg->cache_first;
        if (seg->cache_first) seg->cache_first->seg_prev = e;
        else seg->cache_last = e;
        seg->cache_first = e;
    }
    lru_push_newest(c, e);
    c->cached_bytes += c->pool->chunk_bytes;
    return e;
}

struct cache_entry *batch_cache_find(struct batch_cache *c, struct segment *seg,
                                     uint64_t position, uint32_t need_bytes) {
    /* From the newest end: tailing readers hit at once. The entry starting last at or
     * before position wins; entries at least a chunk before position cannot hold it. */
    struct cache_entry *best = NULL;
    for (struct cache_entry *x = seg->cache_last; x; x = x->seg_prev) {
        if (x->file_base + c->pool->chunk_bytes <= position) break;
        if (x->file_base <= position && position + need_bytes <= x->file_base + x->valid_bytes) {
            best = x;
            break;
        }
    }
    if (best) {
        c->hits++;
        batch_cache_touch(c, best);
    } else {
        c->misses++;
    }
    return best;
}

void batch_cache_drop_segment(struct batch_cache *c, struct segment *seg) {
    while (seg->cache_first) entry_remove(c, seg->cache_first);
}

bool batch_cache_has_base(const struct batch_cache *c, const struct segment *seg,
                          uint64_t file_base) {
    (void)c;
    for (const struct cache_entry *x = seg->cache_last; x; x = x->seg_prev) {
        if (x->file_base == file_base) return true;
        if (x->file_base < file_base) break;
    }
    return false;
}
