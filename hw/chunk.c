/* chunk.c - the shard's registered chunk pool. See chunk.h.
 *
 * Layout: one anonymous mapping; chunk i starts at base + i * chunk_bytes. The free list
 * is a stack of chunk indexes (LIFO keeps recently used, cache-warm chunks in use), and a
 * parallel array holds each chunk's reference count. Both tables are allocated once in
 * chunk_pool_init; alloc/ref/unref are O(1) and never allocate. */
#include "hw/chunk.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "hw/log.h"

#define HUGEPAGE_BYTES (2u * 1024u * 1024u)

static size_t round_up(size_t n, size_t align) { return (n + align - 1) / align * align; }

static void *map_region(size_t region_bytes, size_t *map_bytes, bool *hugepages) {
    size_t huge_bytes = round_up(region_bytes, HUGEPAGE_BYTES);
    void *mem = mmap(NULL, huge_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
    if (mem != MAP_FAILED) {
        *map_bytes = huge_bytes;
        *hugepages = true;
        return mem;
    }
    mem = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
               0);
    if (mem == MAP_FAILED) return NULL;
    /* Transparent hugepages where the kernel allows; then prefault every page. */
    (void)madvise(mem, region_bytes, MADV_HUGEPAGE);
    (void)madvise(mem, region_bytes, MADV_POPULATE_WRITE);
    *map_bytes = region_bytes;
    *hugepages = false;
    return mem;
}

int chunk_pool_init(struct chunk_pool *p, size_t chunk_bytes, uint32_t chunk_count) {
    memset(p, 0, sizeof *p);
    if (chunk_bytes == 0 || chunk_bytes % CHUNK_ALIGN_BYTES != 0 ||
        chunk_bytes > CHUNK_MAX_IOVEC_BYTES || chunk_count == 0)
        return -EINVAL;
    size_t region_bytes = chunk_bytes * (size_t)chunk_count;
    if (region_bytes / chunk_bytes != chunk_count) return -EINVAL;

    p->free_stack = calloc(chunk_count, sizeof *p->free_stack);
    p->refcounts = calloc(chunk_count, sizeof *p->refcounts);
    if (!p->free_stack || !p->refcounts) {
        free(p->free_stack);
        free(p->refcounts);
        memset(p, 0, sizeof *p);
        return -ENOMEM;
    }
    p->base = map_region(region_bytes, &p->map_bytes, &p->hugepages);
    if (!p->base) {
        int err = errno ? -errno : -ENOMEM;
        free(p->free_stack);
        free(p->refcounts);
        memset(p, 0, sizeof *p);
        return err;
    }
    p->locked = mlock(p->base, p->map_bytes) == 0;
    if (!p->locked)
        log_warn("chunk_pool_mlock_failed", "bytes=%zu errno=%d", p->map_bytes, errno);
    p->chunk_bytes = chunk_bytes;
    p->chunk_count = chunk_count;
    /* Push in reverse so the first allocations come from the start of the region. */
    for (uint32_t i = 0; i < chunk_count; i++) p->free_stack[i] = chunk_count - 1 - i;
    p->free_count = chunk_count;
    p->chunks_per_iovec = (uint32_t)(CHUNK_MAX_IOVEC_BYTES / chunk_bytes);
    if (p->chunks_per_iovec > chunk_count) p->chunks_per_iovec = chunk_count;
    p->iovec_count = (chunk_count + p->chunks_per_iovec - 1) / p->chunks_per_iovec;
    log_debug("chunk_pool_init", "chunk_bytes=%zu chunks=%u hugepages=%d locked=%d",
              chunk_bytes, chunk_count, p->hugepages, p->locked);
    return 0;
}

int chunk_pool_register(struct chunk_pool *p, struct io_uring *ring) {
    assert(p->base && !p->ring);
    struct iovec *iovs = calloc(p->iovec_count, sizeof *iovs);
    if (!iovs) return -ENOMEM;
    for (uint32_t i = 0; i < p->iovec_count; i++) {
        uint32_t first = i * p->chunks_per_iovec;
        uint32_t n = p->chunk_count - first;
        if (n > p->chunks_per_iovec) n = p->chunks_per_iovec;
        iovs[i].iov_base = p->base + (size_t)first * p->chunk_bytes;
        iovs[i].iov_len = (size_t)n * p->chunk_bytes;
    }
    int rc = io_uring_register_buffers(ring, iovs, p->iovec_count);
    free(iovs);
    if (rc < 0) return rc;
    p->ring = ring;
    return 0;
}

void chunk_pool_destroy(struct chunk_pool *p) {
    if (!p->base) return;
    if (p->ring) (void)io_uring_unregister_buffers(p->ring);
    if (p->locked) (void)munlock(p->base, p->map_bytes);
    munmap(p->base, p->map_bytes);
    free(p->free_stack);
    free(p->refcounts);
    memset(p, 0, sizeof *p);
}

bool chunk_pool_contains(const struct chunk_pool *p, const void *ptr) {
    const uint8_t *b = ptr;
    return p->base && b >= p->base && b < p->base + p->chunk_bytes * (size_t)p->chunk_count;
}

uint32_t chunk_index(const struct chunk_pool *p, const void *ptr) {
    assert(chunk_pool_contains(p, ptr));
    return (uint32_t)((size_t)((const uint8_t *)ptr - p->base) / p->chunk_bytes);
}

void *chunk_start(const struct chunk_pool *p, const void *ptr) {
    return p->base + (size_t)chunk_index(p, ptr) * p->chunk_bytes;
}

uint32_t chunk_refcount(const struct chunk_pool *p, const void *ptr) {
    return p->refcounts[chunk_index(p, ptr)];
}

void *chunk_alloc(struct chunk_pool *p) {
    if (p->free_count == 0) return NULL;
    uint32_t idx = p->free_stack[--p->free_count];
    assert(idx < p->chunk_count && p->refcounts[idx] == 0);
    p->refcounts[idx] = 1;
    return p->base + (size_t)idx * p->chunk_bytes;
}

void chunk_ref(struct chunk_pool *p, const void *any_ptr_inside_chunk) {
    uint32_t idx = chunk_index(p, any_ptr_inside_chunk);
    assert(p->refcounts[idx] > 0 && p->refcounts[idx] < UINT32_MAX);
    p->refcounts[idx]++;
}

void chunk_unref(struct chunk_pool *p, const void *any_ptr_inside_chunk) {
    uint32_t idx = chunk_index(p, any_ptr_inside_chunk);
    assert(p->refcounts[idx] > 0);
    if (--p->refcounts[idx] == 0) {
        assert(p->free_count < p->chunk_count);
        p->free_stack[p->free_count++] = idx;
    }
}

uint32_t chunk_pool_free_count(const struct chunk_pool *p) { return p->free_count; }

int chunk_buf_index(const struct chunk_pool *p, const void *ptr) {
    assert(p->ring);
    return (int)(chunk_index(p, ptr) / p->chunks_per_iovec);
}
