/* test_ustack_csum.c - the stack's Internet checksum against a plain RFC 1071 reference
 * over random buffers split at random points (odd and even), as a frame's header, copied
 * payload and attached zero-copy segments are summed piece by piece. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "dataplane/net/ustack_internal.h"

static uint16_t ref_csum(const uint8_t *p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

Test(ustack_csum, matches_reference_across_random_splits) {
    static uint8_t buf[9000];
    srand(7);
    for (int round = 0; round < 5000; round++) {
        size_t n = (size_t)rand() % sizeof(buf);
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rand();
        if (round % 3 == 0) memset(buf, 0xff, n); /* carries everywhere */
        struct csum c = {0};
        size_t off = 0;
        while (off < n) {
            size_t piece = 1 + (size_t)rand() % (round % 2 ? 7 : 1500);
            if (piece > n - off) piece = n - off;
            csum_add(&c, buf + off, piece);
            off += piece;
        }
        cr_assert_eq(csum_fold(&c), ref_csum(buf, n), "round %d len %zu", round, n);
    }
}

Test(ustack_csum, pseudo_header) {
    /* 10.0.0.1 -> 10.0.0.2, TCP, 20 bytes: 0x0a00+0x0001+0x0a00+0x0002+6+20 */
    cr_assert_eq(csum_pseudo(0x0a000001u, 0x0a000002u, 6, 20), 0x0a00u + 1 + 0x0a00u + 2 + 6 + 20);
}
