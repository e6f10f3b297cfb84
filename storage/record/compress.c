/* compress.c - gzip (isa-l igzip), snappy (raw + xerial), lz4 frame, zstd.
 *
 * Design: one switch on the Kafka codec id; one function per codec and direction.
 * Every decompressor is a loop that feeds the library and watches for progress:
 * each turn must consume input or produce output, otherwise the loop stops --
 * with RECORD_ERR_TOO_LARGE when the caller's output limit is full (a bomb, or a
 * batch bigger than the caller accepts) and RECORD_ERR_DECOMPRESS when the input
 * ran out first (truncated or corrupt data). Loops are therefore bounded by
 * src_len + dst_limit turns, and no call allocates: the contexts are made once in
 * record_codecs_init(). See compress.h for the formats. */
#include "storage/record/compress.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zstd_errors.h>

#include "storage/record/bytes.h"

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_BYTES 16 /* magic(8) + version(4) + compatible version(4) */
#define XERIAL_VERSION 1
#define XERIAL_COMPAT_VERSION 1

const char *record_codec_name(enum record_codec codec) {
    switch (codec) {
    case RECORD_CODEC_NONE: return "none";
    case RECORD_CODEC_GZIP: return "gzip";
    case RECORD_CODEC_SNAPPY: return "snappy";
    case RECORD_CODEC_LZ4: return "lz4";
    case RECORD_CODEC_ZSTD: return "zstd";
    }
    return "unknown";
}

enum record_error record_codecs_init(struct record_codecs *c) {
    assert(c != NULL);
    memset(c, 0, sizeof(*c));
    c->gzip_level_buf = malloc(RECORD_GZIP_LEVEL_BUF_BYTES);
    c->zstd_cctx = ZSTD_createCCtx();
    c->zstd_dctx = ZSTD_createDCtx();
    bool ok = c->gzip_level_buf != NULL && c->zstd_cctx != NULL && c->zstd_dctx != NULL;
    ok = ok && !LZ4F_isError(LZ4F_createCompressionContext(&c->lz4_cctx, LZ4F_VERSION));
    ok = ok && !LZ4F_isError(LZ4F_createDecompressionContext(&c->lz4_dctx, LZ4F_VERSION));
    ok = ok && !ZSTD_isError(ZSTD_CCtx_setParameter(c->zstd_cctx, ZSTD_c_compressionLevel,
                                                    RECORD_ZSTD_LEVEL));
    ok = ok && !ZSTD_isError(ZSTD_DCtx_setParameter(c->zstd_dctx, ZSTD_d_windowLogMax,
                                                    RECORD_ZSTD_WINDOW_LOG_MAX));
    if (!ok) {
        record_codecs_destroy(c);
        return RECORD_ERR_NO_SPACE;
    }
    isal_inflate_init(&c->gzip_inflate);
    return RECORD_OK;
}

void record_codecs_destroy(struct record_codecs *c) {
    if (c == NULL)
        return;
    free(c->gzip_level_buf);
    ZSTD_freeCCtx(c->zstd_cctx);
    ZSTD_freeDCtx(c->zstd_dctx);
    if (c->lz4_cctx != NULL)
        LZ4F_freeCompressionContext(c->lz4_cctx);
    if (c->lz4_dctx != NULL)
        LZ4F_freeDecompressionContext(c->lz4_dctx);
    memset(c, 0, sizeof(*c));
}

/* Kafka's Java client and librdkafka both write independent 64 KiB blocks, no
 * content size, no checksums beyond the header checksum. */
static const LZ4F_preferences_t lz4_prefs = {
    .frameInfo = {.blockSizeID = LZ4F_max64KB, .blockMode = LZ4F_blockIndependent},
    .compressionLevel = 0,
};

static size_t xerial_block_count(size_t src_len) {
    return (src_len + RECORD_XERIAL_BLOCK_BYTES - 1) / RECORD_XERIAL_BLOCK_BYTES;
}

size_t record_compress_bound(enum record_codec codec, size_t src_len) {
    switch (codec) {
    case RECORD_CODEC_NONE: return src_len;
    case RECORD_CODEC_GZIP: return src_len + src_len / 4 + 1024;
    case RECORD_CODEC_SNAPPY:
        return XERIAL_HEADER_BYTES + xerial_block_count(src_len) * (4 + 32) + src_len +
               src_len / 6 + 1;
    case RECORD_CODEC_LZ4: return LZ4F_compressFrameBound(src_len, &lz4_prefs);
    case RECORD_CODEC_ZSTD: return ZSTD_compressBound(src_len);
    }
    return 0;
}

/* ---- gzip ------------------------------------------------------------------ */

static enum record_error gzip_compress(struct record_codecs *c, const uint8_t *src,
                                       size_t src_len, uint8_t *dst, size_t dst_cap,
                                       size_t *out_len) {
    struct isal_zstream *s = &c->gzip_deflate;
    isal_deflate_init(s);
    s->level = 1;
    s->level_buf = c->gzip_level_buf;
    s->level_buf_size = RECORD_GZIP_LEVEL_BUF_BYTES;
    s->gzip_flag = IGZIP_GZIP;
    s->end_of_stream = 1;
    s->flush = NO_FLUSH;
    s->next_in = (uint8_t *)src;
    s->avail_in = (uint32_t)src_len;
    s->next_out = dst;
    s->avail_out = dst_cap > UINT32_MAX ? UINT32_MAX : (uint32_t)dst_cap;
    if (isal_deflate(s) != COMP_OK)
        return RECORD_ERR_INVALID_ARG;
    if (s->internal_state.state != ZSTATE_END)
        return RECORD_ERR_NO_SPACE;
    *out_len = s->total_out;
    return RECORD_OK;
}

/* The output limit is full and the stream is not finished: is there more output
 * (a bomb, or a batch too big: TOO_LARGE) or is the input cut short (DECOMPRESS)?
 * Each probe decodes into a few bytes of stack, never into the caller's buffer. */
#define PROBE_BYTES 64

static enum record_error gzip_probe_more(struct inflate_state *st) {
    uint8_t probe[PROBE_BYTES];
    st->next_out = probe;
    st->avail_out = sizeof(probe);
    if (isal_inflate(st) < 0)
        return RECORD_ERR_DECOMPRESS;
    return st->next_out != probe ? RECORD_ERR_TOO_LARGE : RECORD_ERR_DECOMPRESS;
}

static enum record_error gzip_decompress(struct record_codecs *c, const uint8_t *src,
                                         size_t src_len, uint8_t *dst, size_t dst_limit,
                                         size_t *out_len) {
    struct inflate_state *st = &c->gzip_inflate;
    const uint8_t *in = src, *in_end = src + src_len;
    uint8_t *out = dst, *out_end = dst + dst_limit;
    bool member_started = false;

    /* One turn per isal_inflate() call; members are read one after another. */
    while (in < in_end || member_started) {
        if (!member_started) {
            isal_inflate_reset(st);
            st->crc_flag = ISAL_GZIP;
            member_started = true;
        }
        st->next_in = (uint8_t *)in;
        st->avail_in = (uint32_t)(in_end - in);
        st->next_out = out;
        st->avail_out = (uint32_t)(out_end - out);
        if (isal_inflate(st) < 0)
            return RECORD_ERR_DECOMPRESS;
        bool progress = st->next_in != in || st->next_out != out;
        in = st->next_in;
        out = st->next_out;
        if (st->block_state == ISAL_BLOCK_FINISH) {
            member_started = false;
            continue;
        }
        if (!progress)
            return out == out_end ? gzip_probe_more(st) : RECORD_ERR_DECOMPRESS;
    }
    if (src_len == 0)
        return RECORD_ERR_DECOMPRESS;
    *out_len = (size_t)(out - dst);
    return RECORD_OK;
}

/* ---- snappy ---------------------------------------------------------------- */

static enum record_error snappy_raw_decompress(const uint8_t *src, size_t src_len,
                                               uint8_t *dst, size_t dst_limit,
                                               size_t *out_len) {
    size_t need_bytes;
    if (snappy_uncompressed_length((const char *)src, src_len, &need_bytes) != SNAPPY_OK)
        return RECORD_ERR_DECOMPRESS;
    if (need_bytes > dst_limit)
        return RECORD_ERR_TOO_LARGE;
    size_t got_bytes = dst_limit;
    if (snappy_uncompress((const char *)src, src_len, (char *)dst, &got_bytes) != SNAPPY_OK)
        return RECORD_ERR_DECOMPRESS;
    assert(got_bytes == need_bytes);
    *out_len = got_bytes;
    return RECORD_OK;
}

static bool is_xerial(const uint8_t *src, size_t src_len) {
    return src_len >= XERIAL_HEADER_BYTES && memcmp(src, xerial_magic, 8) == 0;
}

static enum record_error xerial_decompress(const uint8_t *src, size_t src_len, uint8_t *dst,
                                           size_t dst_limit, size_t *out_len) {
    size_t in_pos = XERIAL_HEADER_BYTES, out_pos = 0;
    while (in_pos < src_len) {
        if (src_len - in_pos < 4)
            return RECORD_ERR_DECOMPRESS;
        uint32_t block_bytes = be32_load(src + in_pos);
        in_pos += 4;
        if (block_bytes == 0 || block_bytes > src_len - in_pos)
            return RECORD_ERR_DECOMPRESS;
        size_t got_bytes;
        enum record_error err = snappy_raw_decompress(src + in_pos, block_bytes, dst + out_pos,
                                                      dst_limit - out_pos, &got_bytes);
        if (err != RECORD_OK)
            return err;
        in_pos += block_bytes;
        out_pos += got_bytes;
        assert(out_pos <= dst_limit);
    }
    *out_len = out_pos;
    return RECORD_OK;
}

static enum record_error snappy_decompress(const uint8_t *src, size_t src_len, uint8_t *dst,
                                           size_t dst_limit, size_t *out_len) {
    if (is_xerial(src, src_len))
        return xerial_decompress(src, src_len, dst, dst_limit, out_len);
    return snappy_raw_decompress(src, src_len, dst, dst_limit, out_len);
}

/* Writes the xerial framing with RECORD_XERIAL_BLOCK_BYTES blocks, as snappy-java. */
static enum record_error snappy_compress_xerial(const uint8_t *src, size_t src_len,
                                                uint8_t *dst, size_t dst_cap,
                                                size_t *out_len) {
    if (dst_cap < XERIAL_HEADER_BYTES)
        return RECORD_ERR_NO_SPACE;
    memcpy(dst, xerial_magic, 8);
    be32_store(dst + 8, XERIAL_VERSION);
    be32_store(dst + 12, XERIAL_COMPAT_VERSION);
    size_t out_pos = XERIAL_HEADER_BYTES;
    for (size_t in_pos = 0; in_pos < src_len; in_pos += RECORD_XERIAL_BLOCK_BYTES) {
        size_t block_in = src_len - in_pos;
        if (block_in > RECORD_XERIAL_BLOCK_BYTES)
            block_in = RECORD_XERIAL_BLOCK_BYTES;
        if (dst_cap - out_pos < 4 + snappy_max_compressed_length(block_in))
            return RECORD_ERR_NO_SPACE;
        size_t block_out = dst_cap - out_pos - 4;
        if (snappy_compress((const char *)src + in_pos, block_in, (char *)dst + out_pos + 4,
                            &block_out) != SNAPPY_OK)
            return RECORD_ERR_NO_SPACE;
        be32_store(dst + out_pos, (uint32_t)block_out);
        out_pos += 4 + block_out;
    }
    *out_len = out_pos;
    return RECORD_OK;
}

/* ---- lz4 ------------------------------------------------------------------- */

/* xxHash32 (seed 0) for the few bytes of an LZ4 frame header. */
#define XXH_P1 2654435761u
#define XXH_P2 2246822519u
#define XXH_P3 3266489917u
#define XXH_P4 668265263u
#define XXH_P5 374761393u

static uint32_t rotl32(uint32_t x, unsigned r) {
    return (x << r) | (x >> (32 - r));
}

static uint32_t le32_load(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint32_t xxh32(const uint8_t *p, size_t len) {
    const uint8_t *end = p + len;
    uint32_t h;
    if (len >= 16) {
        uint32_t v[4] = {XXH_P1 + XXH_P2, XXH_P2, 0, 0u - XXH_P1};
        while (end - p >= 16) {
            for (int i = 0; i < 4; i++, p += 4)
                v[i] = rotl32(v[i] + le32_load(p) * XXH_P2, 13) * XXH_P1;
        }
        h = rotl32(v[0], 1) + rotl32(v[1], 7) + rotl32(v[2], 12) + rotl32(v[3], 18);
    } else {
        h = XXH_P5;
    }
    h += (uint32_t)len;
    for (; end - p >= 4; p += 4)
        h = rotl32(h + le32_load(p) * XXH_P3, 17) * XXH_P4;
    for (; p < end; p++)
        h = rotl32(h + (*p) * XXH_P5, 11) * XXH_P1;
    h ^= h >> 15;
    h *= XXH_P2;
    h ^= h >> 13;
    h *= XXH_P3;
    h ^= h >> 16;
    return h;
}

#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_FRAME_HEADER_MAX_BYTES 19

/* Length of the frame header through its checksum byte, or 0 if it is not one. */
static size_t lz4_frame_header_bytes(const uint8_t *src, size_t src_len) {
    if (src_len < 7 || le32_load(src) != LZ4_FRAME_MAGIC)
        return 0;
    uint8_t flg = src[4];
    size_t n = 4 + 2 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0) + 1;
    return n <= src_len ? n : 0;
}

/* KAFKA-3160: before message format v1, Kafka computed the header checksum over
 * the magic number as well. If the checksum in src matches that, fix it in a copy
 * of the header so liblz4 accepts the frame. Returns the header length patched
 * into hdr, or 0 to use src as is. */
static size_t lz4_fix_legacy_header(const uint8_t *src, size_t src_len,
                                    uint8_t hdr[LZ4_FRAME_HEADER_MAX_BYTES]) {
    size_t n = lz4_frame_header_bytes(src, src_len);
    if (n == 0)
        return 0;
    uint8_t stored = src[n - 1];
    uint8_t correct = (uint8_t)(xxh32(src + 4, n - 5) >> 8);
    uint8_t broken = (uint8_t)(xxh32(src, n - 1) >> 8);
    if (stored == correct || stored != broken)
        return 0;
    memcpy(hdr, src, n);
    hdr[n - 1] = correct;
    return n;
}

bool record_lz4_set_legacy_header_checksum(uint8_t *frame, size_t len) {
    size_t n = lz4_frame_header_bytes(frame, len);
    if (n == 0)
        return false;
    frame[n - 1] = (uint8_t)(xxh32(frame, n - 1) >> 8);
    return true;
}

/* liblz4 1.9.4's LZ4F_resetDecompressionContext() does not clear the remaining
 * content size of a frame abandoned midway (after an error or at our output limit);
 * the next frame without a content size then fails with frameSize_wrong. fuzz_records
 * found it. So a context whose last frame did not finish is replaced -- an
 * allocation on the error path only; a clean frame leaves the context as is. */
static bool lz4_dctx_ready(struct record_codecs *c) {
    if (c->lz4_dctx != NULL && !c->lz4_dctx_dirty) {
        LZ4F_resetDecompressionContext(c->lz4_dctx);
        return true;
    }
    if (c->lz4_dctx != NULL)
        LZ4F_freeDecompressionContext(c->lz4_dctx);
    c->lz4_dctx = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&c->lz4_dctx, LZ4F_VERSION)))
        c->lz4_dctx = NULL;
    c->lz4_dctx_dirty = false;
    return c->lz4_dctx != NULL;
}

static enum record_error lz4_decompress_frames(struct record_codecs *c, const uint8_t *src,
                                               size_t src_len, uint8_t *dst, size_t dst_limit,
                                               size_t *out_len, unsigned flags);

static enum record_error lz4_decompress(struct record_codecs *c, const uint8_t *src,
                                        size_t src_len, uint8_t *dst, size_t dst_limit,
                                        size_t *out_len, unsigned flags) {
    if (!lz4_dctx_ready(c))
        return RECORD_ERR_NO_SPACE;
    enum record_error err = lz4_decompress_frames(c, src, src_len, dst, dst_limit, out_len, flags);
    c->lz4_dctx_dirty = err != RECORD_OK;
    return err;
}

static enum record_error lz4_decompress_frames(struct record_codecs *c, const uint8_t *src,
                                               size_t src_len, uint8_t *dst, size_t dst_limit,
                                               size_t *out_len, unsigned flags) {
    uint8_t hdr[LZ4_FRAME_HEADER_MAX_BYTES];
    size_t hdr_len = 0;
    if (flags & RECORD_DECOMPRESS_LZ4_LEGACY_HC)
        hdr_len = lz4_fix_legacy_header(src, src_len, hdr);

    size_t in_pos = 0, out_pos = 0, hint = 1;
    unsigned stalled_turns = 0;
    while (in_pos < src_len || hint != 0) {
        /* While in the patched header, read from the copy. */
        const uint8_t *in = in_pos < hdr_len ? hdr + in_pos : src + in_pos;
        size_t in_n = in_pos < hdr_len ? hdr_len - in_pos : src_len - in_pos;
        size_t out_n = dst_limit - out_pos;
        hint = LZ4F_decompress(c->lz4_dctx, dst + out_pos, &out_n, in, &in_n, NULL);
        if (LZ4F_isError(hint))
            return RECORD_ERR_DECOMPRESS;
        in_pos += in_n;
        out_pos += out_n;
        assert(in_pos <= src_len && out_pos <= dst_limit);
        /* liblz4 may need one empty turn to change state; two means stuck. */
        stalled_turns = (in_n == 0 && out_n == 0) ? stalled_turns + 1 : 0;
        if (stalled_turns >= 2) {
            if (out_pos < dst_limit)
                return RECORD_ERR_DECOMPRESS;
            uint8_t probe[PROBE_BYTES];
            size_t probe_n = sizeof(probe);
            in = in_pos < hdr_len ? hdr + in_pos : src + in_pos;
            in_n = in_pos < hdr_len ? hdr_len - in_pos : src_len - in_pos;
            hint = LZ4F_decompress(c->lz4_dctx, probe, &probe_n, in, &in_n, NULL);
            return !LZ4F_isError(hint) && probe_n > 0 ? RECORD_ERR_TOO_LARGE
                                                      : RECORD_ERR_DECOMPRESS;
        }
    }
    if (src_len == 0)
        return RECORD_ERR_DECOMPRESS;
    *out_len = out_pos;
    return RECORD_OK;
}

static enum record_error lz4_compress(struct record_codecs *c, const uint8_t *src,
                                      size_t src_len, uint8_t *dst, size_t dst_cap,
                                      size_t *out_len) {
    if (dst_cap < LZ4F_compressFrameBound(src_len, &lz4_prefs))
        return RECORD_ERR_NO_SPACE;
    size_t n = LZ4F_compressBegin(c->lz4_cctx, dst, dst_cap, &lz4_prefs);
    if (LZ4F_isError(n))
        return RECORD_ERR_INVALID_ARG;
    size_t pos = n;
    n = LZ4F_compressUpdate(c->lz4_cctx, dst + pos, dst_cap - pos, src, src_len, NULL);
    if (LZ4F_isError(n))
        return RECORD_ERR_NO_SPACE;
    pos += n;
    n = LZ4F_compressEnd(c->lz4_cctx, dst + pos, dst_cap - pos, NULL);
    if (LZ4F_isError(n))
        return RECORD_ERR_NO_SPACE;
    *out_len = pos + n;
    return RECORD_OK;
}

/* ---- zstd ------------------------------------------------------------------ */

static enum record_error zstd_decompress(struct record_codecs *c, const uint8_t *src,
                                         size_t src_len, uint8_t *dst, size_t dst_limit,
                                         size_t *out_len) {
    ZSTD_DCtx_reset(c->zstd_dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {.src = src, .size = src_len, .pos = 0};
    ZSTD_outBuffer out = {.dst = dst, .size = dst_limit, .pos = 0};
    size_t hint = 1;
    while (in.pos < in.size || hint != 0) {
        size_t in_before = in.pos, out_before = out.pos;
        hint = ZSTD_decompressStream(c->zstd_dctx, &out, &in);
        if (ZSTD_isError(hint))
            return RECORD_ERR_DECOMPRESS;
        if (in.pos == in_before && out.pos == out_before) {
            if (out.pos < out.size)
                return RECORD_ERR_DECOMPRESS;
            uint8_t probe[PROBE_BYTES];
            ZSTD_outBuffer more = {.dst = probe, .size = sizeof(probe), .pos = 0};
            hint = ZSTD_decompressStream(c->zstd_dctx, &more, &in);
            return !ZSTD_isError(hint) && more.pos > 0 ? RECORD_ERR_TOO_LARGE
                                                       : RECORD_ERR_DECOMPRESS;
        }
    }
    if (src_len == 0)
        return RECORD_ERR_DECOMPRESS;
    *out_len = out.pos;
    return RECORD_OK;
}

static enum record_error zstd_compress(struct record_codecs *c, const uint8_t *src,
                                       size_t src_len, uint8_t *dst, size_t dst_cap,
                                       size_t *out_len) {
    size_t n = ZSTD_compress2(c->zstd_cctx, dst, dst_cap, src, src_len);
    if (ZSTD_isError(n))
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? RECORD_ERR_NO_SPACE
                                                                   : RECORD_ERR_INVALID_ARG;
    *out_len = n;
    return RECORD_OK;
}

/* ---- dispatch -------------------------------------------------------------- */

enum record_error record_compress(struct record_codecs *c, enum record_codec codec,
                                  const uint8_t *src, size_t src_len, uint8_t *dst,
                                  size_t dst_cap, size_t *out_len) {
    assert(c != NULL && out_len != NULL);
    if (src_len > RECORD_CODEC_MAX_INPUT_BYTES)
        return RECORD_ERR_TOO_LARGE;
    if (dst_cap > UINT32_MAX)
        dst_cap = UINT32_MAX;
    switch (codec) {
    case RECORD_CODEC_NONE:
        if (dst_cap < src_len)
            return RECORD_ERR_NO_SPACE;
        if (src_len > 0)
            memcpy(dst, src, src_len);
        *out_len = src_len;
        return RECORD_OK;
    case RECORD_CODEC_GZIP: return gzip_compress(c, src, src_len, dst, dst_cap, out_len);
    case RECORD_CODEC_SNAPPY: return snappy_compress_xerial(src, src_len, dst, dst_cap, out_len);
    case RECORD_CODEC_LZ4: return lz4_compress(c, src, src_len, dst, dst_cap, out_len);
    case RECORD_CODEC_ZSTD: return zstd_compress(c, src, src_len, dst, dst_cap, out_len);
    }
    return RECORD_ERR_UNSUPPORTED_CODEC;
}

enum record_error record_decompress(struct record_codecs *c, enum record_codec codec,
                                    const uint8_t *src, size_t src_len, uint8_t *dst,
                                    size_t dst_limit, size_t *out_len, unsigned flags) {
    assert(c != NULL && out_len != NULL);
    if (src_len > RECORD_CODEC_MAX_INPUT_BYTES)
        return RECORD_ERR_TOO_LARGE;
    if (dst_limit > UINT32_MAX)
        dst_limit = UINT32_MAX;
    switch (codec) {
    case RECORD_CODEC_NONE:
        if (src_len > dst_limit)
            return RECORD_ERR_TOO_LARGE;
        if (src_len > 0)
            memcpy(dst, src, src_len);
        *out_len = src_len;
        return RECORD_OK;
    case RECORD_CODEC_GZIP: return gzip_decompress(c, src, src_len, dst, dst_limit, out_len);
    case RECORD_CODEC_SNAPPY: return snappy_decompress(src, src_len, dst, dst_limit, out_len);
    case RECORD_CODEC_LZ4:
        return lz4_decompress(c, src, src_len, dst, dst_limit, out_len, flags);
    case RECORD_CODEC_ZSTD: return zstd_decompress(c, src, src_len, dst, dst_limit, out_len);
    }
    return RECORD_ERR_UNSUPPORTED_CODEC;
}
