/* crc.h - the two checksums Kafka's record formats use.
 *
 * CRC32C (Castagnoli) covers RecordBatch v2 from the attributes field to the end;
 * CRC32 (IEEE) covers legacy MessageSet v0/v1 messages. Both run on isa-l's
 * hardware-accelerated kernels. The functions take and return the plain,
 * conventional CRC value (initial 0, as zlib's crc32() and Kafka's Crc32C do), so
 * a buffer may be checksummed in pieces: crc = crc32c_update(crc, piece, len). */
#ifndef SLUICE_STORAGE_RECORD_CRC_H
#define SLUICE_STORAGE_RECORD_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len_bytes);
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len_bytes);

static inline uint32_t crc32c(const void *buf, size_t len_bytes) {
    return crc32c_update(0, buf, len_bytes);
}

static inline uint32_t crc32_legacy(const void *buf, size_t len_bytes) {
    return crc32_update(0, buf, len_bytes);
}

#endif
