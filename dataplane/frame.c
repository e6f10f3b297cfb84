/* frame.c - Kafka size-prefixed framing, and the per-thread cache of big frame blocks.
 * See frame.h. */
#include "dataplane/frame.h"

#include <stdlib.h>

enum frame_status frame_scan(const uint8_t *buf, size_t len_bytes, uint32_t max_frame_bytes,
                             uint32_t *body_bytes) {
    *body_bytes = 0;
    if (len_bytes < 4) return FRAME_NEED_MORE;
    int32_t size = (int32_t)frame_be32(buf);
    if (size <= 0) return FRAME_BAD_SIZE;
    *body_bytes = (uint32_t)size;
    if ((uint32_t)size > max_frame_bytes) return FRAME_TOO_LARGE;
    if (len_bytes - 4 < (size_t)size) return FRAME_NEED_MORE;
    return FRAME_COMPLETE;
}

/* ---- big frame blocks -------------------------------------------------------------- */

static _Thread_local uint8_t *cached_block[FRAME_BLOCK_CACHE];
static _Thread_local uint32_t cached_cap[FRAME_BLOCK_CACHE];
static _Thread_local uint32_t cached_count;

static bool cacheable(size_t bytes) {
    return bytes >= FRAME_BLOCK_MIN_BYTES && bytes <= FRAME_BLOCK_MAX_BYTES;
}

uint8_t *frame_block_get(size_t bytes, uint32_t *cap_bytes) {
    if (!cacheable(bytes)) {
        *cap_bytes = (uint32_t)bytes;
        return malloc(bytes ? bytes : 1);
    }
    uint32_t best = FRAME_BLOCK_CACHE;
    for (uint32_t i = 0; i < cached_count; i++)
        if (cached_cap[i] >= bytes &&
            (best == FRAME_BLOCK_CACHE || cached_cap[i] < cached_cap[best]))
            best = i;
    if (best < FRAME_BLOCK_CACHE) {
        uint8_t *block = cached_block[best];
        *cap_bytes = cached_cap[best];
        cached_count--;
        cached_block[best] = cached_block[cached_count];
        cached_cap[best] = cached_cap[cached_count];
        return block;
    }
    /* Rounded up to 64 KiB, so a slightly bigger request next time still fits. */
    size_t rounded = (bytes + (64u << 10) - 1) & ~(size_t)((64u << 10) - 1);
    if (rounded > FRAME_BLOCK_MAX_BYTES) rounded = FRAME_BLOCK_MAX_BYTES;
    *cap_bytes = (uint32_t)rounded;
    return malloc(rounded);
}

void frame_block_put(uint8_t *block, uint32_t cap_bytes) {
    if (!block) return;
    if (!cacheable(cap_bytes) || cached_count == FRAME_BLOCK_CACHE) {
        free(block);
        return;
    }
    cached_block[cached_count] = block;
    cached_cap[cached_count] = cap_bytes;
    cached_count++;
}

void frame_blocks_release(void) {
    while (cached_count > 0) free(cached_block[--cached_count]);
}
