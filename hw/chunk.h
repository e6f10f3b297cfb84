/* chunk.h - a shard's registered buffer memory, carved into fixed-size chunks.
 *
 * Each shard maps one region at start (2 MiB hugepages tried first, else normal pages
 * with MADV_HUGEPAGE), prefaults and locks it, and splits it into chunk_count chunks of
 * chunk_bytes each (a multiple of 4096, so every chunk is O_DIRECT aligned). The region
 * is registered with the shard's io_uring as fixed buffers, split into iovecs of at most
 * 1 GiB that never cut a chunk, so storage uses READ_FIXED/WRITE_FIXED and the network
 * layer receives and sends from the same memory.
 *
 * Chunks are reference counted. chunk_alloc() hands out a chunk with one reference;
 * chunk_ref()/chunk_unref() take any pointer inside a chunk (so a fragment pointing into
 * the middle of a chunk pins the whole chunk); the chunk returns to the free stack when
 * its count drops to zero. An exhausted pool returns NULL: that is backpressure, never a
 * reason to allocate more. The pool is not thread-safe: it belongs to one shard.
 *
 * A fragment (struct frag) is a byte range inside one chunk; record batches travel from
 * the storage cache to the network as frag lists, each frag holding one reference. */
#ifndef SLUICE_HW_CHUNK_H
#define SLUICE_HW_CHUNK_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_ALIGN_BYTES 4096u
#define CHUNK_MAX_IOVEC_BYTES (1ull << 30)

struct chunk_pool {
    uint8_t *base;             /* start of the region (chunk 0) */
    size_t map_bytes;          /* length of the mapping (rounded to the page size used) */
    size_t chunk_bytes;
    uint32_t chunk_count;
    uint32_t free_count;       /* entries used in free_stack */
    uint32_t *free_stack;      /* indexes of free chunks; allocated once at init */
    uint32_t *refcounts;       /* one per chunk; 0 = free */
    uint32_t chunks_per_iovec; /* chunks in each registered iovec (the last may be short) */
    uint32_t iovec_count;
    bool hugepages;            /* true when MAP_HUGETLB succeeded */
    bool locked;               /* true when mlock succeeded */
    struct io_uring *ring;     /* set by chunk_pool_register */
};

/* A byte range inside one chunk. The holder owns one reference on the chunk. */
struct frag {
    void *ptr;
    uint32_t len;
};

/* Map, prefault and lock chunk_count chunks of chunk_bytes (a multiple of 4096, at most
 * 1 GiB). Returns 0 or -errno (-EINVAL for bad sizes, -ENOMEM when the map fails). */
int chunk_pool_init(struct chunk_pool *p, size_t chunk_bytes, uint32_t chunk_count);

/* Register the region with ring as fixed buffers. Returns 0 or -errno. After it,
 * chunk_buf_index() gives the buf_index for io_uring_prep_{read,write}_fixed. */
int chunk_pool_register(struct chunk_pool *p, struct io_uring *ring);

/* Unregister (if registered), unmap and free the pool's tables. Chunks still referenced
 * are a bug in the caller; destroy asserts in debug builds that none remain. */
void chunk_pool_destroy(struct chunk_pool *p);

/* A free chunk with refcount 1, or NULL when the pool is exhausted (backpressure). */
void *chunk_alloc(struct chunk_pool *p);

/* Take or drop a reference on the chunk containing any_ptr_inside_chunk. unref frees the
 * chunk when its count reaches zero. */
void chunk_ref(struct chunk_pool *p, const void *any_ptr_inside_chunk);
void chunk_unref(struct chunk_pool *p, const void *any_ptr_inside_chunk);

uint32_t chunk_pool_free_count(const struct chunk_pool *p);

/* True when ptr lies inside the pool's chunks. */
bool chunk_pool_contains(const struct chunk_pool *p, const void *ptr);

/* Index of the chunk holding ptr (ptr must be inside the pool). */
uint32_t chunk_index(const struct chunk_pool *p, const void *ptr);

/* Start of the chunk holding ptr. */
void *chunk_start(const struct chunk_pool *p, const void *ptr);

/* Current reference count of the chunk holding ptr (for tests and assertions). */
uint32_t chunk_refcount(const struct chunk_pool *p, const void *ptr);

/* buf_index for READ_FIXED/WRITE_FIXED of an I/O starting at ptr. The I/O must not
 * extend past the end of ptr's chunk (chunks never straddle two iovecs). */
int chunk_buf_index(const struct chunk_pool *p, const void *ptr);

static inline void frag_release(struct chunk_pool *p, struct frag *f) {
    if (f->ptr) chunk_unref(p, f->ptr);
    f->ptr = NULL;
    f->len = 0;
}

#endif
