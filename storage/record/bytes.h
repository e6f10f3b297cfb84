/* bytes.h - big-endian loads/stores and Kafka varints over bounded buffers.
 *
 * Kafka's wire and on-disk formats are big-endian; the record layer reads them
 * with these helpers so no code does pointer casts on unaligned data. Varints are
 * protobuf-style base-128 little-endian groups; Kafka's record fields use the
 * zigzag-signed form (varint/varlong). Readers take an explicit end pointer and
 * return the number of bytes consumed, or 0 for truncated / over-long input: a
 * varint (int32) may use at most 5 bytes, a varlong (int64) at most 10. */
#ifndef SLUICE_STORAGE_RECORD_BYTES_H
#define SLUICE_STORAGE_RECORD_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t be16_load(const uint8_t *p) {
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static inline uint32_t be32_load(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64_load(const uint8_t *p) {
    return ((uint64_t)be32_load(p) << 32) | be32_load(p + 4);
}

static inline void be16_store(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void be32_store(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void be64_store(uint8_t *p, uint64_t v) {
    be32_store(p, (uint32_t)(v >> 32));
    be32_store(p + 4, (uint32_t)v);
}

/* Offsets and timestamps read from the wire may be anything: add them with two's
 * complement wrap-around instead of signed overflow (undefined behaviour). */
static inline int64_t add_wrap64(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static inline int64_t sub_wrap64(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a - (uint64_t)b);
}

#define VARINT_MAX_BYTES 5
#define VARLONG_MAX_BYTES 10

/* Unsigned base-128 read of at most max_bytes bytes. Returns bytes consumed, 0 when
 * the input ends first or the encoding is longer than max_bytes / overflows. */
static inline size_t uvarint_read(const uint8_t *p, const uint8_t *end, size_t max_bytes,
                                  uint64_t *out) {
    uint64_t v = 0;
    for (size_t i = 0; i < max_bytes; i++) {
        if (p + i >= end)
            return 0;
        uint8_t b = p[i];
        unsigned shift = (unsigned)(7 * i);
        /* The last allowed byte may only carry the bits that still fit. */
        if (i == 9 && (b & 0x7e))
            return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            if (max_bytes == VARINT_MAX_BYTES && v > UINT32_MAX)
                return 0;
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* Zigzag-signed varint (int32) and varlong (int64). */
static inline size_t varint_read(const uint8_t *p, const uint8_t *end, int32_t *out) {
    uint64_t u;
    size_t n = uvarint_read(p, end, VARINT_MAX_BYTES, &u);
    if (n == 0)
        return 0;
    uint32_t z = (uint32_t)u;
    *out = (int32_t)((z >> 1) ^ (~(z & 1) + 1));
    return n;
}

static inline size_t varlong_read(const uint8_t *p, const uint8_t *end, int64_t *out) {
    uint64_t u;
    size_t n = uvarint_read(p, end, VARLONG_MAX_BYTES, &u);
    if (n == 0)
        return 0;
    *out = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
    return n;
}

/* Bytes a zigzag varlong of v takes (1..10). */
static inline size_t varlong_size(int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

/* Write a zigzag varlong (also used for int32 varints: same encoding for the same
 * value). The caller has checked the room with varlong_size(). Returns bytes written. */
static inline size_t varlong_write(uint8_t *p, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        p[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (uint8_t)u;
    return n;
}

#endif
