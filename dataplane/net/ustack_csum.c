/* ustack_csum.c - the Internet checksum (RFC 1071) for IPv4, ICMP and TCP.
 *
 * A sum may span several buffers (the TCP header in the frame, then the user's iovec
 * bytes attached for zero copy), of any length: struct csum carries the running 64-bit
 * accumulator and whether an odd number of bytes has gone in so far. The sum is taken
 * over big-endian 16-bit words; an odd boundary makes the next byte the low half of a
 * word, which we handle by adding that byte alone and continuing with the rest. The bulk
 * of a buffer is summed 8 bytes at a time as two native-order 32-bit halves (no carry
 * handling in the loop: 2^32 additions of 32-bit values cannot overflow 64 bits), folded
 * and byte-swapped once on a little-endian machine: the one's-complement sum does not
 * depend on byte order except for that final swap (RFC 1071 section 2(B)). */
#include <assert.h>

#include "dataplane/net/ustack_internal.h"

void csum_add(struct csum *c, const uint8_t *data, size_t len) {
    if (len == 0) return;
    if (c->odd) {
        c->acc += data[0]; /* low byte of the word begun in the previous buffer */
        data++;
        len--;
        c->odd = false;
    }
    uint64_t acc = c->acc;
    if (len >= 16) {
        uint64_t native = 0;
        while (len >= 8) {
            uint64_t v;
            memcpy(&v, data, 8);
            native += (v & 0xffffffffu) + (v >> 32);
            data += 8;
            len -= 8;
        }
        while (native >> 16) native = (native & 0xffff) + (native >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        native = (uint16_t)((native >> 8) | (native << 8));
#endif
        acc += native;
    }
    while (len >= 4) {
        acc += (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 |
               data[3];
        data += 4;
        len -= 4;
    }
    if (len >= 2) {
        acc += (uint32_t)data[0] << 8 | data[1];
        data += 2;
        len -= 2;
    }
    if (len == 1) {
        acc += (uint32_t)data[0] << 8;
        c->odd = true;
    }
    c->acc = acc;
}

uint16_t csum_fold(const struct csum *c) {
    uint64_t acc = c->acc;
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

uint32_t csum_pseudo(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, uint16_t l4_len) {
    uint64_t acc = (src_ip >> 16) + (src_ip & 0xffff) + (dst_ip >> 16) + (dst_ip & 0xffff) +
                   proto + l4_len;
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint32_t)acc;
}
