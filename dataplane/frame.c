/* frame.c - Kafka size-prefixed framing. See frame.h. */
#include "dataplane/frame.h"

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
