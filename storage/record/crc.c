/* crc.c - CRC32C and CRC32 on isa-l.
 *
 * isa-l's crc32_iscsi() works on the raw register: it neither pre- nor post-inverts,
 * so the conventional value is ~crc32_iscsi(buf, len, ~crc). crc32_gzip_refl() already
 * inverts on both sides, as zlib's crc32() does. */
#include "storage/record/crc.h"

#include <isa-l/crc.h>

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len_bytes) {
    /* isa-l takes an int length; feed very large buffers in pieces. */
    const unsigned char *p = buf;
    uint32_t reg = ~crc;
    while (len_bytes > 0) {
        size_t n = len_bytes > (1u << 30) ? (1u << 30) : len_bytes;
        reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
        p += n;
        len_bytes -= n;
    }
    return ~reg;
}

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len_bytes) {
    const unsigned char *p = buf;
    while (len_bytes > 0) {
        size_t n = len_bytes > (1u << 30) ? (1u << 30) : len_bytes;
        crc = crc32_gzip_refl(crc, p, (uint64_t)n);
        p += n;
        len_bytes -= n;
    }
    return crc;
}
