/* compress.h - Kafka's record compression codecs behind one dispatch.
 *
 * Codec ids are Kafka's (enum record_codec in batch.h): 0 none, 1 gzip, 2 snappy,
 * 3 lz4, 4 zstd. Every call writes into a caller buffer with an explicit capacity;
 * decompression stops at that limit with RECORD_ERR_TOO_LARGE, so a compression
 * bomb costs at most the limit in output bytes and never an allocation.
 *
 * Library contexts (isa-l deflate/inflate state and level buffer, zstd CCtx/DCtx,
 * lz4 frame contexts) are created once in record_codecs_init() -- one struct per
 * shard, not thread-safe -- and reused for every call. The one exception we cannot
 * avoid is snappy: libsnappy's C API allocates its hash table per compress call
 * (decompression does not allocate), and liblz4's decompression context, which is
 * replaced after a frame that did not finish (see lz4_decompress in compress.c).
 *
 * Formats on the wire:
 *   gzip   RFC 1952 members (concatenated members are read in sequence), via igzip.
 *   snappy raw snappy blocks, or the xerial/snappy-java framing Java clients write:
 *          "\x82SNAPPY\0" int32 version int32 compat, then [int32 len][raw block]...
 *          Both are detected on read; compression writes xerial, as Java does.
 *   lz4    the LZ4 frame format. RECORD_DECOMPRESS_LZ4_LEGACY_HC accepts the broken
 *          frame header checksum of Kafka magic-0 sets (KAFKA-3160: the checksum was
 *          computed over the magic bytes too).
 *   zstd   zstd frames, streamed into the caller buffer with a window limit. */
#ifndef SLUICE_STORAGE_RECORD_COMPRESS_H
#define SLUICE_STORAGE_RECORD_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <isa-l/igzip_lib.h>
#include <lz4frame.h>
#include <zstd.h>

#include "storage/record/batch.h"

/* igzip level 1: the fastest level that still compresses with Huffman + LZ77. */
#define RECORD_GZIP_LEVEL_BUF_BYTES ISAL_DEF_LVL1_DEFAULT
#define RECORD_ZSTD_LEVEL 3
/* Largest zstd window we accept: 2^24 = 16 MiB of DCtx memory, allocated once. */
#define RECORD_ZSTD_WINDOW_LOG_MAX 24
/* snappy-java's default block size, used when writing xerial frames. */
#define RECORD_XERIAL_BLOCK_BYTES (32 * 1024)
/* Largest single input we handle (isa-l and lz4 count in 32-bit ints). */
#define RECORD_CODEC_MAX_INPUT_BYTES ((size_t)1 << 30)

/* flags for record_decompress() */
#define RECORD_DECOMPRESS_LZ4_LEGACY_HC 0x1u

struct record_codecs {
    struct isal_zstream gzip_deflate;
    struct inflate_state gzip_inflate;
    uint8_t *gzip_level_buf; /* RECORD_GZIP_LEVEL_BUF_BYTES, allocated at init */
    ZSTD_CCtx *zstd_cctx;
    ZSTD_DCtx *zstd_dctx;
    LZ4F_cctx *lz4_cctx;
    LZ4F_dctx *lz4_dctx;
    bool lz4_dctx_dirty; /* its last frame did not finish: replace before reuse */
};

/* Allocate every context once. Returns RECORD_OK or RECORD_ERR_NO_SPACE (out of
 * memory); on failure nothing is left allocated. */
enum record_error record_codecs_init(struct record_codecs *c);
void record_codecs_destroy(struct record_codecs *c);

/* Largest output record_compress() may need for src_len input bytes. */
size_t record_compress_bound(enum record_codec codec, size_t src_len);

/* Compress src into dst (capacity dst_cap). RECORD_ERR_NO_SPACE if dst is smaller
 * than what the codec produced (size dst with record_compress_bound()). */
enum record_error record_compress(struct record_codecs *c, enum record_codec codec,
                                  const uint8_t *src, size_t src_len, uint8_t *dst,
                                  size_t dst_cap, size_t *out_len);

/* Decompress src into dst, writing at most dst_limit bytes. RECORD_ERR_TOO_LARGE if
 * the data decompresses to more, RECORD_ERR_DECOMPRESS if it is corrupt or
 * truncated, RECORD_ERR_UNSUPPORTED_CODEC for ids outside 0..4, RECORD_ERR_NO_SPACE
 * if the lz4 context could not be re-created (out of memory). */
enum record_error record_decompress(struct record_codecs *c, enum record_codec codec,
                                    const uint8_t *src, size_t src_len, uint8_t *dst,
                                    size_t dst_limit, size_t *out_len, unsigned flags);

const char *record_codec_name(enum record_codec codec);

/* Rewrite the header checksum of the LZ4 frame at frame[0..len) the way Kafka's
 * magic-0 producers computed it (KAFKA-3160), for writing legacy v0 sets. Returns
 * false if frame does not start with an LZ4 frame header. */
bool record_lz4_set_legacy_header_checksum(uint8_t *frame, size_t len);

#endif
