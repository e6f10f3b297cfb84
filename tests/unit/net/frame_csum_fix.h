/* frame_csum_fix.h - test helper: recompute the IPv4 header checksum and the TCP/ICMP
 * checksum of an Ethernet frame whose headers still make sense, so mutated or scripted
 * frames get past the stack's checksum checks. Header-only; used by the garbage test
 * (tests/unit/net/test_ustack_garbage.c) and the fuzz target (tests/fuzz/fuzz_ustack.c). */
#ifndef SLUICE_TESTS_UNIT_NET_FRAME_CSUM_FIX_H
#define SLUICE_TESTS_UNIT_NET_FRAME_CSUM_FIX_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t frame_sum16(const uint8_t *p, size_t n, uint32_t sum) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static inline uint32_t frame_get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void frame_fix_checksums(uint8_t *f, size_t n) {
    if (n < 34 || f[12] != 0x08 || f[13] != 0x00) return;
    uint8_t *ip = f + 14;
    size_t hl = (size_t)(ip[0] & 15) * 4;
    size_t total = (size_t)(ip[2] << 8 | ip[3]);
    if (hl < 20 || 14 + hl > n) return;
    ip[10] = ip[11] = 0;
    uint16_t c = frame_sum16(ip, hl, 0);
    ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
    if (total < hl || 14 + total > n) return;
    uint8_t *l4 = ip + hl;
    size_t l4n = total - hl;
    if (ip[9] == 6 && l4n >= 18) {
        uint32_t src = frame_get32(ip + 12), dst = frame_get32(ip + 16);
        uint32_t ps = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 +
                      (uint32_t)l4n;
        l4[16] = l4[17] = 0;
        c = frame_sum16(l4, l4n, ps);
        l4[16] = (uint8_t)(c >> 8), l4[17] = (uint8_t)c;
    } else if (ip[9] == 1 && l4n >= 4) {
        l4[2] = l4[3] = 0;
        c = frame_sum16(l4, l4n, 0);
        l4[2] = (uint8_t)(c >> 8), l4[3] = (uint8_t)c;
    }
}

#endif
