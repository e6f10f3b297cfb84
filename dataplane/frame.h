/* frame.h - Kafka request framing: a 4-byte big-endian size, then that many bytes.
 *
 * frame_scan() looks at the bytes a connection has received and says whether the first
 * frame is complete, needs more bytes, or is refused. The size is checked as soon as its
 * 4 bytes are there, BEFORE anything of the body is buffered, so an oversized or negative
 * size closes the connection without allocating for it (socket.request.max.bytes). */
#ifndef SLUICE_DATAPLANE_FRAME_H
#define SLUICE_DATAPLANE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum frame_status {
    FRAME_COMPLETE = 0,  /* body at buf+4, *body_bytes long; the frame is 4+body bytes */
    FRAME_NEED_MORE = 1, /* incomplete (the size, if known, was acceptable) */
    FRAME_TOO_LARGE = 2, /* size > max_frame_bytes */
    FRAME_BAD_SIZE = 3,  /* size <= 0 */
};

/* body_bytes is set for COMPLETE, NEED_MORE with a known size (else 0), and TOO_LARGE. */
enum frame_status frame_scan(const uint8_t *buf, size_t len_bytes, uint32_t max_frame_bytes,
                             uint32_t *body_bytes);

static inline uint32_t frame_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline void frame_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Big frame blocks. A request of FRAME_BLOCK_MIN_BYTES .. FRAME_BLOCK_MAX_BYTES is
 * buffered whole in one malloc'd block (the connection's stash, or a router job's copy
 * of the request), and such blocks are recycled per thread, FRAME_BLOCK_CACHE at most:
 * a fresh malloc that large is a fresh mapping (above glibc's mmap threshold), faulted
 * in and zeroed page by page, for every big Produce. A block can change hands (a
 * handler keeps the stash that holds its frame) and threads; free it with
 * frame_block_put, or with free(). */
#define FRAME_BLOCK_MIN_BYTES (128u << 10)
#define FRAME_BLOCK_MAX_BYTES (2u << 20)
/* A connection's full pipeline (16 requests in progress, each keeping its frame's block)
 * plus its stash and later blocks, with room to spare: with 8, a 1 MiB producer 32 deep
 * took 100,000+ page faults per GB in fresh blocks. */
#define FRAME_BLOCK_CACHE 24u

/* A malloc'd block of at least bytes; *cap_bytes is its real size. NULL when out of
 * memory. */
uint8_t *frame_block_get(size_t bytes, uint32_t *cap_bytes);
/* Keep block (cap_bytes is its real size) for a later get, or free it. NULL is ignored. */
void frame_block_put(uint8_t *block, uint32_t cap_bytes);
/* Free this thread's cached blocks (at shutdown; the cache works again afterwards). */
void frame_blocks_release(void);

#endif
