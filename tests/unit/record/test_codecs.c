/* test_codecs.c - the five Kafka codecs: round trips, data written by the real
 * gzip/zstd/lz4 command-line tools and by libsnappy itself (raw and in a hand-made
 * xerial frame), exact output limits, compression bombs stopped at the limit,
 * corrupt and truncated input, the KAFKA-3160 lz4 header quirk. */
#include <criterion/criterion.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record/bytes.h"
#include "storage/record/compress.h"
#include "test_util.h"

static struct record_codecs codecs;

static void setup(void) {
    cr_assert_eq(record_codecs_init(&codecs), RECORD_OK);
}

static void teardown(void) {
    record_codecs_destroy(&codecs);
}

TestSuite(codecs, .init = setup, .fini = teardown);

static const enum record_codec all_codecs[] = {RECORD_CODEC_NONE, RECORD_CODEC_GZIP,
                                               RECORD_CODEC_SNAPPY, RECORD_CODEC_LZ4,
                                               RECORD_CODEC_ZSTD};

/* Compress then decompress src with codec; check the bytes and the exact limit. */
static void round_trip(enum record_codec codec, const uint8_t *src, size_t len) {
    size_t bound = record_compress_bound(codec, len);
    uint8_t *z = malloc(bound + 1);
    uint8_t *out = malloc(len + 1);
    size_t z_len = 0, out_len = 0;
    cr_assert_eq(record_compress(&codecs, codec, src, len, z, bound, &z_len), RECORD_OK,
                 "%s compress of %zu", record_codec_name(codec), len);
    cr_assert_leq(z_len, bound);
    cr_assert_eq(record_decompress(&codecs, codec, z, z_len, out, len, &out_len, 0), RECORD_OK,
                 "%s decompress of %zu", record_codec_name(codec), len);
    cr_assert_eq(out_len, len);
    cr_assert(len == 0 || memcmp(out, src, len) == 0);
    if (len > 0) {
        cr_assert_eq(record_decompress(&codecs, codec, z, z_len, out, len - 1, &out_len, 0),
                     RECORD_ERR_TOO_LARGE, "%s limit len-1", record_codec_name(codec));
    }
    free(z);
    free(out);
}

Test(codecs, round_trip_text_every_codec) {
    size_t len;
    uint8_t *text = load_vector("text.txt", &len);
    for (size_t i = 0; i < 5; i++) {
        round_trip(all_codecs[i], text, len);
        round_trip(all_codecs[i], text, 1);
        round_trip(all_codecs[i], text, 40000); /* spans xerial / lz4 blocks */
    }
    free(text);
}

Test(codecs, round_trip_incompressible_and_empty) {
    size_t len = 200000;
    uint8_t *noise = malloc(len);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        noise[i] = (uint8_t)x;
    }
    for (size_t i = 0; i < 5; i++) {
        round_trip(all_codecs[i], noise, len);
        if (all_codecs[i] != RECORD_CODEC_NONE) {
            /* empty input compresses to a valid empty stream */
            uint8_t z[256], out[8];
            size_t z_len, out_len = 99;
            cr_assert_eq(record_compress(&codecs, all_codecs[i], noise, 0, z, sizeof(z), &z_len),
                         RECORD_OK);
            cr_assert_eq(record_decompress(&codecs, all_codecs[i], z, z_len, out, sizeof(out),
                                           &out_len, 0), RECORD_OK, "%s", record_codec_name(all_codecs[i]));
            cr_assert_eq(out_len, 0u);
        }
    }
    free(noise);
}

/* Files written by the gzip, zstd and lz4 CLIs (see vectors/gen_vectors.sh). */
static void cli_vector(const char *name, enum record_codec codec) {
    size_t text_len, z_len, out_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    uint8_t *z = load_vector(name, &z_len);
    uint8_t *out = malloc(text_len);
    cr_assert_eq(record_decompress(&codecs, codec, z, z_len, out, text_len, &out_len, 0),
                 RECORD_OK, "%s", name);
    cr_assert_eq(out_len, text_len);
    cr_assert(memcmp(out, text, text_len) == 0);
    cr_assert_eq(record_decompress(&codecs, codec, z, z_len, out, text_len / 2, &out_len, 0),
                 RECORD_ERR_TOO_LARGE, "%s half limit", name);
    /* truncated input: never OK, never past the limit */
    size_t cuts[] = {0, 1, 5, z_len / 3, z_len / 2, z_len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        enum record_error err = record_decompress(&codecs, codec, z, cuts[i], out, text_len,
                                                  &out_len, 0);
        cr_assert_eq(err, RECORD_ERR_DECOMPRESS, "%s cut at %zu gave %s", name, cuts[i],
                     record_error_str(err));
    }
    /* a flipped byte in the middle: the stream's checksum or structure catches it */
    z[z_len / 2] ^= 0x55;
    cr_assert_eq(record_decompress(&codecs, codec, z, z_len, out, text_len, &out_len, 0),
                 RECORD_ERR_DECOMPRESS, "%s corrupt", name);
    free(text);
    free(z);
    free(out);
}

Test(codecs, gzip_cli) { cli_vector("text.txt.gz", RECORD_CODEC_GZIP); }
Test(codecs, zstd_cli) { cli_vector("text.txt.zst", RECORD_CODEC_ZSTD); }
Test(codecs, lz4_cli) { cli_vector("text.txt.lz4", RECORD_CODEC_LZ4); }

Test(codecs, gzip_concatenated_members) {
    size_t text_len, z_len, out_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    uint8_t *z = load_vector("text.txt.gz", &z_len);
    uint8_t *zz = malloc(2 * z_len);
    memcpy(zz, z, z_len);
    memcpy(zz + z_len, z, z_len);
    uint8_t *out = malloc(2 * text_len);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_GZIP, zz, 2 * z_len, out, 2 * text_len,
                                   &out_len, 0), RECORD_OK);
    cr_assert_eq(out_len, 2 * text_len);
    cr_assert(memcmp(out + text_len, text, text_len) == 0);
    free(text);
    free(z);
    free(zz);
    free(out);
}

Test(codecs, snappy_raw_from_libsnappy) {
    size_t text_len, out_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    size_t z_cap = snappy_max_compressed_length(text_len), z_len = z_cap;
    uint8_t *z = malloc(z_cap), *out = malloc(text_len);
    cr_assert_eq(snappy_compress((const char *)text, text_len, (char *)z, &z_len), SNAPPY_OK);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, z, z_len, out, text_len,
                                   &out_len, 0), RECORD_OK);
    cr_assert_eq(out_len, text_len);
    cr_assert(memcmp(out, text, text_len) == 0);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, z, z_len, out, text_len - 1,
                                   &out_len, 0), RECORD_ERR_TOO_LARGE);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, z, z_len / 2, out, text_len,
                                   &out_len, 0), RECORD_ERR_DECOMPRESS);
    free(text);
    free(z);
    free(out);
}

/* xerial framing built by hand: magic, version 1, compat 1, two snappy blocks. */
Test(codecs, snappy_xerial_hand_made) {
    size_t text_len, out_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    size_t half = text_len / 2;
    size_t cap = 16 + 2 * (4 + snappy_max_compressed_length(text_len));
    uint8_t *frame = malloc(cap), *out = malloc(text_len);
    memcpy(frame, "\x82SNAPPY\0", 8);
    be32_store(frame + 8, 1);
    be32_store(frame + 12, 1);
    size_t pos = 16;
    for (int i = 0; i < 2; i++) {
        const uint8_t *part = text + (i ? half : 0);
        size_t part_len = i ? text_len - half : half;
        size_t n = cap - pos - 4;
        cr_assert_eq(snappy_compress((const char *)part, part_len, (char *)frame + pos + 4, &n),
                     SNAPPY_OK);
        be32_store(frame + pos, (uint32_t)n);
        pos += 4 + n;
    }
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, frame, pos, out, text_len,
                                   &out_len, 0), RECORD_OK);
    cr_assert_eq(out_len, text_len);
    cr_assert(memcmp(out, text, text_len) == 0);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, frame, pos, out, half + 10,
                                   &out_len, 0), RECORD_ERR_TOO_LARGE);
    /* truncated block and a lying block length */
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, frame, pos - 3, out, text_len,
                                   &out_len, 0), RECORD_ERR_DECOMPRESS);
    be32_store(frame + 16, 0x7fffffff);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, frame, pos, out, text_len,
                                   &out_len, 0), RECORD_ERR_DECOMPRESS);
    /* our own writer produces xerial */
    size_t z_len;
    uint8_t *z = malloc(record_compress_bound(RECORD_CODEC_SNAPPY, text_len));
    cr_assert_eq(record_compress(&codecs, RECORD_CODEC_SNAPPY, text, text_len, z,
                                 record_compress_bound(RECORD_CODEC_SNAPPY, text_len), &z_len),
                 RECORD_OK);
    cr_assert(memcmp(z, "\x82SNAPPY\0", 8) == 0);
    free(z);
    free(text);
    free(frame);
    free(out);
}

#define BOMB_LIMIT_BYTES (16u << 20)

Test(codecs, zstd_bomb_1gib_stops_at_limit) {
    size_t z_len, out_len = 0;
    uint8_t *z = load_vector("zeros_1g.zst", &z_len);
    cr_assert_lt(z_len, 100000u);
    uint8_t *out = malloc(BOMB_LIMIT_BYTES);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_ZSTD, z, z_len, out, BOMB_LIMIT_BYTES,
                                   &out_len, 0), RECORD_ERR_TOO_LARGE);
    free(z);
    free(out);
}

/* A 1 GiB-of-zeros gzip member, made here with igzip's streaming deflate. */
Test(codecs, gzip_bomb_1gib_stops_at_limit) {
    static uint8_t zeros[1 << 20];
    size_t z_cap = 4u << 20;
    uint8_t *z = malloc(z_cap);
    uint8_t *level_buf = malloc(ISAL_DEF_LVL1_DEFAULT);
    struct isal_zstream s;
    isal_deflate_init(&s);
    s.level = 1;
    s.level_buf = level_buf;
    s.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    s.gzip_flag = IGZIP_GZIP;
    s.next_out = z;
    s.avail_out = (uint32_t)z_cap;
    for (int i = 0; i < 1024; i++) {
        s.next_in = zeros;
        s.avail_in = sizeof(zeros);
        s.end_of_stream = i == 1023;
        cr_assert_eq(isal_deflate(&s), COMP_OK);
        cr_assert_eq(s.avail_in, 0u);
    }
    cr_assert_eq(s.internal_state.state, ZSTATE_END);
    size_t z_len = s.total_out, out_len = 0;
    cr_assert_lt(z_len, z_cap);
    uint8_t *out = malloc(BOMB_LIMIT_BYTES);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_GZIP, z, z_len, out, BOMB_LIMIT_BYTES,
                                   &out_len, 0), RECORD_ERR_TOO_LARGE);
    free(z);
    free(level_buf);
    free(out);
}

Test(codecs, lz4_and_snappy_bombs_stop_at_limit) {
    size_t src_len = 64u << 20;
    uint8_t *zeros = calloc(1, src_len);
    uint8_t *out = malloc(BOMB_LIMIT_BYTES);
    size_t bound = record_compress_bound(RECORD_CODEC_LZ4, src_len), z_len, out_len;
    uint8_t *z = malloc(bound);
    cr_assert_eq(record_compress(&codecs, RECORD_CODEC_LZ4, zeros, src_len, z, bound, &z_len),
                 RECORD_OK);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, z, z_len, out, BOMB_LIMIT_BYTES,
                                   &out_len, 0), RECORD_ERR_TOO_LARGE);
    /* raw snappy that claims 4 GiB - 1 of output */
    uint8_t lie[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_SNAPPY, lie, sizeof(lie), out,
                                   BOMB_LIMIT_BYTES, &out_len, 0), RECORD_ERR_TOO_LARGE);
    free(zeros);
    free(out);
    free(z);
}

Test(codecs, garbage_and_unsupported) {
    uint8_t junk[64], out[1024];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    size_t out_len;
    for (size_t i = 1; i < 5; i++) {
        enum record_error err = record_decompress(&codecs, all_codecs[i], junk, sizeof(junk), out,
                                                  sizeof(out), &out_len, 0);
        cr_assert(err == RECORD_ERR_DECOMPRESS || err == RECORD_ERR_TOO_LARGE,
                  "%s on junk: %s", record_codec_name(all_codecs[i]), record_error_str(err));
        cr_assert_eq(record_decompress(&codecs, all_codecs[i], junk, 0, out, sizeof(out), &out_len,
                                       0), RECORD_ERR_DECOMPRESS);
    }
    for (int id = 5; id < 8; id++) {
        cr_assert_eq(record_decompress(&codecs, (enum record_codec)id, junk, sizeof(junk), out,
                                       sizeof(out), &out_len, 0), RECORD_ERR_UNSUPPORTED_CODEC);
        cr_assert_eq(record_compress(&codecs, (enum record_codec)id, junk, sizeof(junk), out,
                                     sizeof(out), &out_len), RECORD_ERR_UNSUPPORTED_CODEC);
    }
}

Test(codecs, compress_into_small_buffer_is_no_space) {
    size_t text_len, z_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    uint8_t small[64];
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(record_compress(&codecs, all_codecs[i], text, text_len, small, sizeof(small),
                                     &z_len), RECORD_ERR_NO_SPACE, "%s",
                     record_codec_name(all_codecs[i]));
    free(text);
}

/* KAFKA-3160: magic-0 lz4 sets carry a header checksum computed over the magic too.
 * Rewriting the lz4 CLI's frame that way must fail plainly and pass with the flag --
 * which also proves our xxhash32 agrees with liblz4's (the fix recomputes it). */
Test(codecs, lz4_kafka3160_legacy_header_checksum) {
    size_t text_len, z_len, out_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    uint8_t *z = load_vector("text.txt.lz4", &z_len);
    uint8_t *out = malloc(text_len);
    uint8_t hc_before = z[6];
    cr_assert(record_lz4_set_legacy_header_checksum(z, z_len));
    cr_assert_neq(z[6], hc_before); /* the CLI frame has FLG+BD only: HC at byte 6 */
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, z, z_len, out, text_len, &out_len,
                                   0), RECORD_ERR_DECOMPRESS);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, z, z_len, out, text_len, &out_len,
                                   RECORD_DECOMPRESS_LZ4_LEGACY_HC), RECORD_OK);
    cr_assert_eq(out_len, text_len);
    cr_assert(memcmp(out, text, text_len) == 0);
    /* the flag does not loosen anything for a correct frame */
    z[6] = hc_before;
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, z, z_len, out, text_len, &out_len,
                                   RECORD_DECOMPRESS_LZ4_LEGACY_HC), RECORD_OK);
    uint8_t junk_hc = (uint8_t)(hc_before ^ 0x5a);
    z[6] = junk_hc;
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, z, z_len, out, text_len, &out_len,
                                   RECORD_DECOMPRESS_LZ4_LEGACY_HC), RECORD_ERR_DECOMPRESS);
    free(text);
    free(z);
    free(out);
}

/* liblz4 1.9.4's LZ4F_resetDecompressionContext() does not clear the remaining
 * content size of an abandoned frame that declared one; the next frame without a
 * content size then fails with frameSize_wrong. Found by fuzz_records; the codec
 * replaces a context whose last frame did not finish. */
Test(codecs, lz4_context_survives_abandoned_content_size_frame) {
    size_t text_len, z_len, out_len;
    uint8_t *text = load_vector("text.txt", &text_len);
    uint8_t *plain = load_vector("text.txt.lz4", &z_len);
    LZ4F_preferences_t prefs = {.frameInfo = {.contentSize = text_len,
                                              .blockMode = LZ4F_blockIndependent}};
    size_t sized_cap = LZ4F_compressFrameBound(text_len, &prefs);
    uint8_t *sized = malloc(sized_cap), *out = malloc(text_len);
    size_t sized_len = LZ4F_compressFrame(sized, sized_cap, text, text_len, &prefs);
    cr_assert(!LZ4F_isError(sized_len));
    /* abandon the sized frame three ways: limit, truncation, then a full read */
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, sized, sized_len, out, 1000,
                                   &out_len, 0), RECORD_ERR_TOO_LARGE);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, plain, z_len, out, text_len,
                                   &out_len, 0), RECORD_OK);
    cr_assert_eq(out_len, text_len);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, sized, sized_len / 2, out, text_len,
                                   &out_len, 0), RECORD_ERR_DECOMPRESS);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, plain, z_len, out, text_len,
                                   &out_len, 0), RECORD_OK);
    cr_assert_eq(record_decompress(&codecs, RECORD_CODEC_LZ4, sized, sized_len, out, text_len,
                                   &out_len, 0), RECORD_OK);
    cr_assert(memcmp(out, text, text_len) == 0);
    free(text);
    free(plain);
    free(sized);
    free(out);
}
