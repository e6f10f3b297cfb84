/* test_frame.c - Kafka framing: the size is judged before any body is buffered. */
#include <criterion/criterion.h>
#include <string.h>

#include "dataplane/frame.h"

static void put(uint8_t *b, int32_t size) { frame_put_be32(b, (uint32_t)size); }

Test(frame, needs_four_bytes_of_size) {
    uint8_t b[4] = {0, 0, 0};
    uint32_t body = 7;
    cr_expect_eq(frame_scan(b, 0, 100, &body), FRAME_NEED_MORE);
    cr_expect_eq(frame_scan(b, 3, 100, &body), FRAME_NEED_MORE);
    cr_expect_eq(body, 0);
}

Test(frame, complete_and_partial) {
    uint8_t b[64];
    memset(b, 0xab, sizeof b);
    put(b, 10);
    uint32_t body;
    cr_expect_eq(frame_scan(b, 4, 100, &body), FRAME_NEED_MORE);
    cr_expect_eq(body, 10, "size known before the body arrives");
    cr_expect_eq(frame_scan(b, 13, 100, &body), FRAME_NEED_MORE);
    cr_expect_eq(frame_scan(b, 14, 100, &body), FRAME_COMPLETE);
    cr_expect_eq(body, 10);
    cr_expect_eq(frame_scan(b, 64, 100, &body), FRAME_COMPLETE, "trailing bytes are the next frame");
}

Test(frame, refuses_bad_sizes_from_the_prefix_alone) {
    uint8_t b[4];
    uint32_t body;
    put(b, -1);
    cr_expect_eq(frame_scan(b, 4, 100, &body), FRAME_BAD_SIZE);
    put(b, 0);
    cr_expect_eq(frame_scan(b, 4, 100, &body), FRAME_BAD_SIZE);
    put(b, INT32_MIN);
    cr_expect_eq(frame_scan(b, 4, 100, &body), FRAME_BAD_SIZE);
    put(b, INT32_MAX);
    cr_expect_eq(frame_scan(b, 4, 104857600, &body), FRAME_TOO_LARGE);
    put(b, 101);
    cr_expect_eq(frame_scan(b, 4, 100, &body), FRAME_TOO_LARGE);
    put(b, 100);
    cr_expect_eq(frame_scan(b, 4, 100, &body), FRAME_NEED_MORE, "exactly the max is allowed");
}

Test(frame, walks_a_pipelined_stream) {
    uint8_t b[3 * 12];
    for (int i = 0; i < 3; i++) {
        put(b + 12 * i, 8);
        memset(b + 12 * i + 4, i, 8);
    }
    size_t off = 0;
    int frames = 0;
    uint32_t body;
    while (frame_scan(b + off, sizeof b - off, 100, &body) == FRAME_COMPLETE) {
        cr_expect_eq(b[off + 4], frames);
        off += 4 + body;
        frames++;
    }
    cr_expect_eq(frames, 3);
    cr_expect_eq(off, sizeof b);
}
