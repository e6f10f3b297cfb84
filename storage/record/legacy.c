/* legacy.c - MessageSet v0/v1: iterate, write, and convert to RecordBatch v2.
 *
 * The iterator is flat, not recursive: it holds at most one decompressed wrapper
 * (in the caller's scratch) and yields its inner messages before moving to the next
 * outer message; an inner message that is itself compressed is an error, as in
 * Kafka. Every message is checked fully (size, magic, CRC32, key/value lengths
 * ending exactly at the message end) before anything in it is returned. See
 * legacy.h for the format and for the conversion decisions (legacy -> v2 on the way
 * in; v2 -> legacy for consumers that fetch an old message format). */
#include "storage/record/legacy.h"

#include <assert.h>
#include <string.h>

#include "storage/record/bytes.h"
#include "storage/record/crc.h"

static size_t legacy_header_bytes(int8_t magic) {
    return magic == 0 ? LEGACY_V0_HEADER_BYTES : LEGACY_V1_HEADER_BYTES;
}

/* An int32-length byte field (-1 = null) inside [*p, end), followed by at least
 * after_bytes more bytes. */
static bool take_bytes(const uint8_t **p, const uint8_t *end, size_t after_bytes,
                       struct record_bytes *out) {
    if ((size_t)(end - *p) < 4 + after_bytes)
        return false;
    int32_t len = (int32_t)be32_load(*p);
    *p += 4;
    if (len == -1) {
        out->data = NULL;
        out->len = -1;
        return true;
    }
    if (len < 0 || (size_t)len > (size_t)(end - *p) - after_bytes)
        return false;
    out->data = *p;
    out->len = len;
    *p += len;
    return true;
}

/* Parse the message at [pos, end) into out; *next is where the following one starts. */
static enum record_error parse_message(const uint8_t *pos, const uint8_t *end,
                                       struct legacy_message_view *out, const uint8_t **next) {
    size_t avail = (size_t)(end - pos);
    if (avail < LEGACY_LOG_OVERHEAD_BYTES)
        return RECORD_ERR_TRUNCATED;
    int32_t size = (int32_t)be32_load(pos + 8);
    if (size < LEGACY_V0_HEADER_BYTES)
        return RECORD_ERR_BAD_LENGTH;
    if ((size_t)size > avail - LEGACY_LOG_OVERHEAD_BYTES)
        return RECORD_ERR_TRUNCATED;
    const uint8_t *msg = pos + LEGACY_LOG_OVERHEAD_BYTES;
    const uint8_t *msg_end = msg + size;
    out->offset = (int64_t)be64_load(pos);
    out->magic = (int8_t)msg[4];
    if (out->magic != 0 && out->magic != 1)
        return RECORD_ERR_BAD_MAGIC;
    if ((size_t)size < legacy_header_bytes(out->magic))
        return RECORD_ERR_BAD_LENGTH;
    if (crc32_legacy(msg + 4, (size_t)size - 4) != be32_load(msg))
        return RECORD_ERR_BAD_CRC;
    out->attributes = (int8_t)msg[5];
    const uint8_t *p = msg + 6;
    out->timestamp = LEGACY_NO_TIMESTAMP;
    if (out->magic == 1) {
        out->timestamp = (int64_t)be64_load(p);
        p += 8;
    }
    if (!take_bytes(&p, msg_end, 4, &out->key) || !take_bytes(&p, msg_end, 0, &out->value))
        return RECORD_ERR_BAD_RECORD;
    if (p != msg_end)
        return RECORD_ERR_BAD_RECORD;
    *next = msg_end;
    return RECORD_OK;
}

void legacy_iter_init(struct legacy_iter *it, const uint8_t *set, size_t len,
                      struct record_codecs *codecs, uint8_t *scratch, size_t scratch_cap) {
    assert(it != NULL);
    memset(it, 0, sizeof(*it));
    it->pos = set;
    it->end = set + len;
    it->codecs = codecs;
    it->scratch = scratch;
    it->scratch_cap = scratch_cap;
}

static bool legacy_fail(struct legacy_iter *it, enum record_error err) {
    it->err = err;
    it->pos = it->end;
    it->inner_pos = it->inner_end = NULL;
    return false;
}

/* The last (relative) offset in an inner v1 set; the full checks come later. */
static int64_t last_inner_offset(const uint8_t *p, const uint8_t *end) {
    int64_t last = 0;
    while ((size_t)(end - p) >= LEGACY_LOG_OVERHEAD_BYTES) {
        int32_t size = (int32_t)be32_load(p + 8);
        if (size < 0 || (size_t)size > (size_t)(end - p) - LEGACY_LOG_OVERHEAD_BYTES)
            break;
        last = (int64_t)be64_load(p);
        p += LEGACY_LOG_OVERHEAD_BYTES + (size_t)size;
    }
    return last;
}

/* Decompress wrapper w into scratch and make its messages the inner set. */
static enum record_error open_wrapper(struct legacy_iter *it, const struct legacy_message_view *w) {
    enum record_codec codec = (enum record_codec)(w->attributes & LEGACY_ATTR_COMPRESSION_MASK);
    /* zstd exists only from message format v2 on (Kafka rejects it in v0/v1 too) */
    if ((unsigned)codec >= RECORD_CODEC_COUNT || codec == RECORD_CODEC_ZSTD)
        return RECORD_ERR_UNSUPPORTED_CODEC;
    if (w->value.len <= 0)
        return RECORD_ERR_BAD_RECORD;
    if (it->codecs == NULL || it->scratch == NULL)
        return RECORD_ERR_INVALID_ARG;
    unsigned flags = (w->magic == 0 && codec == RECORD_CODEC_LZ4) ? RECORD_DECOMPRESS_LZ4_LEGACY_HC : 0;
    size_t inner_bytes = 0;
    enum record_error err = record_decompress(it->codecs, codec, w->value.data,
                                              (size_t)w->value.len, it->scratch,
                                              it->scratch_cap, &inner_bytes, flags);
    if (err != RECORD_OK)
        return err;
    if (inner_bytes == 0)
        return RECORD_ERR_BAD_RECORD;
    it->inner_pos = it->scratch;
    it->inner_end = it->scratch + inner_bytes;
    it->inner_magic = w->magic;
    it->inner_log_append = w->magic == 1 && (w->attributes & LEGACY_ATTR_LOG_APPEND_TIME);
    it->wrapper_timestamp = w->timestamp;
    it->inner_offset_shift = 0;
    if (w->magic == 1)
        it->inner_offset_shift =
            sub_wrap64(w->offset, last_inner_offset(it->inner_pos, it->inner_end));
    return RECORD_OK;
}

static bool next_inner(struct legacy_iter *it, struct legacy_message_view *out) {
    const uint8_t *next;
    enum record_error err = parse_message(it->inner_pos, it->inner_end, out, &next);
    if (err != RECORD_OK)
        return legacy_fail(it, err);
    if ((out->attributes & LEGACY_ATTR_COMPRESSION_MASK) != 0 || out->magic != it->inner_magic)
        return legacy_fail(it, RECORD_ERR_BAD_RECORD);
    out->offset = add_wrap64(out->offset, it->inner_offset_shift);
    if (it->inner_log_append)
        out->timestamp = it->wrapper_timestamp;
    it->inner_pos = next;
    assert(it->inner_pos <= it->inner_end);
    return true;
}

bool legacy_iter_next(struct legacy_iter *it, struct legacy_message_view *out) {
    assert(it != NULL && out != NULL);
    if (it->err != RECORD_OK)
        return false;
    if (it->inner_pos != NULL && it->inner_pos < it->inner_end)
        return next_inner(it, out);
    it->inner_pos = it->inner_end = NULL;
    if (it->pos >= it->end)
        return false;
    const uint8_t *next;
    enum record_error err = parse_message(it->pos, it->end, out, &next);
    if (err != RECORD_OK)
        return legacy_fail(it, err);
    it->pos = next;
    assert(it->pos <= it->end);
    if ((out->attributes & LEGACY_ATTR_COMPRESSION_MASK) == 0)
        return true;
    struct legacy_message_view wrapper = *out;
    err = open_wrapper(it, &wrapper);
    if (err != RECORD_OK)
        return legacy_fail(it, err);
    return next_inner(it, out);
}

/* ---- writer ------------------------------------------------------------------ */

size_t legacy_message_bytes(int8_t magic, int32_t key_len, int32_t value_len) {
    return LEGACY_LOG_OVERHEAD_BYTES + legacy_header_bytes(magic) +
           (key_len > 0 ? (size_t)key_len : 0) + (value_len > 0 ? (size_t)value_len : 0);
}

static void put_bytes32(uint8_t **p, const uint8_t *data, int32_t len) {
    be32_store(*p, (uint32_t)len);
    *p += 4;
    if (len > 0) {
        memmove(*p, data, (size_t)len); /* may already be in place (wrapper values) */
        *p += len;
    }
}

/* Write one message at p; returns its size. Room checked by the caller. */
static size_t write_message(uint8_t *p, int8_t magic, int8_t attributes, int64_t offset,
                            int64_t timestamp_ms, const uint8_t *key, int32_t key_len,
                            const uint8_t *value, int32_t value_len) {
    size_t total = legacy_message_bytes(magic, key_len, value_len);
    be64_store(p, (uint64_t)offset);
    be32_store(p + 8, (uint32_t)(total - LEGACY_LOG_OVERHEAD_BYTES));
    uint8_t *msg = p + LEGACY_LOG_OVERHEAD_BYTES;
    uint8_t *q = msg + 4;
    *q++ = (uint8_t)magic;
    *q++ = (uint8_t)attributes;
    if (magic == 1) {
        be64_store(q, (uint64_t)timestamp_ms);
        q += 8;
    }
    /* The value goes first when it is already in place after the key field. */
    uint8_t *value_at = q + 4 + (key_len > 0 ? (size_t)key_len : 0);
    uint8_t *v = value_at;
    put_bytes32(&v, value, value_len);
    put_bytes32(&q, key, key_len);
    assert(q == value_at);
    be32_store(msg, crc32_legacy(msg + 4, total - LEGACY_LOG_OVERHEAD_BYTES - 4));
    return total;
}

static bool legacy_args_ok(int8_t magic, const struct legacy_message_in *msgs, int32_t count) {
    if ((magic != 0 && magic != 1) || msgs == NULL || count <= 0)
        return false;
    for (int32_t i = 0; i < count; i++)
        if (msgs[i].key_len < -1 || msgs[i].value_len < -1)
            return false;
    return true;
}

/* The uncompressed set; inner_offsets: v1 relative. Returns bytes or 0 if no room. */
static size_t write_plain_set(uint8_t *buf, size_t cap, int8_t magic,
                              const struct legacy_message_in *msgs, int32_t count,
                              bool relative_offsets) {
    size_t total = 0;
    for (int32_t i = 0; i < count; i++)
        total += legacy_message_bytes(magic, msgs[i].key_len, msgs[i].value_len);
    if (total > cap)
        return 0;
    uint8_t *p = buf;
    for (int32_t i = 0; i < count; i++) {
        const struct legacy_message_in *m = &msgs[i];
        int64_t offset = relative_offsets ? i : m->offset;
        p += write_message(p, magic, 0, offset, m->timestamp_ms, m->key, m->key_len, m->value,
                           m->value_len);
    }
    return total;
}

enum record_error legacy_set_write(struct record_codecs *codecs, int8_t magic,
                                   enum record_codec codec, const struct legacy_message_in *msgs,
                                   int32_t count, uint8_t *buf, size_t buf_cap, uint8_t *scratch,
                                   size_t scratch_cap, size_t *out_len) {
    assert(out_len != NULL);
    *out_len = 0;
    if (!legacy_args_ok(magic, msgs, count))
        return RECORD_ERR_INVALID_ARG;
    if ((unsigned)codec >= RECORD_CODEC_COUNT || codec == RECORD_CODEC_ZSTD)
        return RECORD_ERR_UNSUPPORTED_CODEC;
    if (codec == RECORD_CODEC_NONE) {
        size_t n = write_plain_set(buf, buf_cap, magic, msgs, count, false);
        *out_len = n;
        return n == 0 ? RECORD_ERR_NO_SPACE : RECORD_OK;
    }
    if (codecs == NULL || scratch == NULL)
        return RECORD_ERR_INVALID_ARG;
    size_t inner_bytes = write_plain_set(scratch, scratch_cap, magic, msgs, count, magic == 1);
    size_t wrapper_hdr = LEGACY_LOG_OVERHEAD_BYTES + legacy_header_bytes(magic);
    if (inner_bytes == 0 || buf_cap < wrapper_hdr)
        return RECORD_ERR_NO_SPACE;
    uint8_t *value_at = buf + wrapper_hdr;
    size_t value_bytes;
    enum record_error err = record_compress(codecs, codec, scratch, inner_bytes, value_at,
                                            buf_cap - wrapper_hdr, &value_bytes);
    if (err != RECORD_OK)
        return err;
    if (value_bytes > INT32_MAX - wrapper_hdr)
        return RECORD_ERR_TOO_LARGE;
    if (magic == 0 && codec == RECORD_CODEC_LZ4)
        record_lz4_set_legacy_header_checksum(value_at, value_bytes);
    int64_t max_ts = msgs[0].timestamp_ms;
    for (int32_t i = 1; i < count; i++)
        if (msgs[i].timestamp_ms > max_ts)
            max_ts = msgs[i].timestamp_ms;
    *out_len = write_message(buf, magic, (int8_t)codec, msgs[count - 1].offset, max_ts, NULL, -1,
                             value_at, (int32_t)value_bytes);
    return RECORD_OK;
}

/* ---- conversion ------------------------------------------------------------ */

struct convert_state {
    uint8_t *dst;
    size_t cap;
    size_t used;
    int32_t count;
    int64_t base_offset;
    int64_t base_ts;
    int64_t max_ts;
};

static enum record_error convert_one(struct convert_state *s, const struct legacy_message_view *m) {
    if (s->count == 0) {
        s->base_offset = m->offset;
        s->base_ts = m->timestamp;
        s->max_ts = m->timestamp;
    }
    if (s->count == INT32_MAX)
        return RECORD_ERR_TOO_LARGE;
    if (m->timestamp > s->max_ts)
        s->max_ts = m->timestamp;
    struct record_in r = {
        .key = m->key.data, .key_len = m->key.len,
        .value = m->value.data, .value_len = m->value.len,
        .timestamp_ms = m->timestamp,
    };
    int64_t ts_delta = (int64_t)((uint64_t)m->timestamp - (uint64_t)s->base_ts);
    size_t n = record_encoded_bytes(&r, ts_delta, s->count);
    if (n == 0)
        return RECORD_ERR_BAD_RECORD;
    if (n > s->cap - s->used)
        return RECORD_ERR_NO_SPACE;
    record_encode(s->dst + s->used, &r, ts_delta, s->count);
    s->used += n;
    s->count++;
    return RECORD_OK;
}

enum record_error legacy_set_to_batch(struct record_codecs *codecs, const uint8_t *set,
                                      size_t set_len, enum record_codec out_codec,
                                      const struct legacy_convert_buffers *bufs, uint8_t *out,
                                      size_t out_cap, size_t *out_len) {
    assert(bufs != NULL && out_len != NULL);
    *out_len = 0;
    if ((unsigned)out_codec >= RECORD_CODEC_COUNT)
        return RECORD_ERR_UNSUPPORTED_CODEC;
    if (out == NULL || out_cap < RECORD_BATCH_HEADER_BYTES)
        return RECORD_ERR_NO_SPACE;
    bool plain = out_codec == RECORD_CODEC_NONE;
    if (!plain && (codecs == NULL || bufs->records == NULL))
        return RECORD_ERR_INVALID_ARG;
    struct convert_state s = {
        .dst = plain ? out + RECORD_BATCH_HEADER_BYTES : bufs->records,
        .cap = plain ? out_cap - RECORD_BATCH_HEADER_BYTES : bufs->records_cap,
    };
    if (s.cap > INT32_MAX - RECORD_BATCH_HEADER_BYTES)
        s.cap = INT32_MAX - RECORD_BATCH_HEADER_BYTES;

    struct legacy_iter it;
    legacy_iter_init(&it, set, set_len, codecs, bufs->decompress, bufs->decompress_cap);
    struct legacy_message_view m;
    while (legacy_iter_next(&it, &m)) {
        enum record_error err = convert_one(&s, &m);
        if (err != RECORD_OK)
            return err;
    }
    if (it.err != RECORD_OK)
        return it.err;
    if (s.count == 0)
        return RECORD_ERR_BAD_COUNT;

    size_t section_bytes = s.used;
    if (!plain) {
        enum record_error err = record_compress(codecs, out_codec, s.dst, s.used,
                                                out + RECORD_BATCH_HEADER_BYTES,
                                                out_cap - RECORD_BATCH_HEADER_BYTES,
                                                &section_bytes);
        if (err != RECORD_OK)
            return err;
        if (section_bytes > INT32_MAX - RECORD_BATCH_HEADER_BYTES)
            return RECORD_ERR_TOO_LARGE;
    }
    struct record_batch_spec spec = record_batch_spec_default();
    spec.base_offset = s.base_offset;
    spec.codec = out_codec;
    record_batch_header_write(out, &spec, s.count, s.base_ts, s.max_ts, section_bytes);
    record_batch_update_crc(out);
    *out_len = RECORD_BATCH_HEADER_BYTES + section_bytes;
    return RECORD_OK;
}

/* ---- down-conversion ------------------------------------------------------ */

/* Write the batch's records as plain messages at dst; offsets relative to the
 * batch (0-based, for a v1 wrapper's inner set) or absolute. */
static enum record_error write_records_as_messages(struct record_iter *it, int8_t magic,
                                                   bool relative_offsets, uint8_t *dst,
                                                   size_t cap, size_t *used,
                                                   int64_t *last_offset, int64_t *max_ts) {
    struct record_view r;
    size_t pos = 0;
    while (record_iter_next(it, &r)) {
        size_t n = legacy_message_bytes(magic, r.key.len, r.value.len);
        if (n > cap - pos)
            return RECORD_ERR_NO_SPACE;
        int64_t offset = relative_offsets ? r.offset_delta : r.offset;
        pos += write_message(dst + pos, magic, 0, offset, r.timestamp, r.key.data, r.key.len,
                             r.value.data, r.value.len);
        *last_offset = r.offset;
        if (r.timestamp > *max_ts)
            *max_ts = r.timestamp;
    }
    *used = pos;
    return it->err;
}

enum record_error legacy_from_batch(struct record_codecs *codecs, const uint8_t *batch,
                                    size_t batch_len, int8_t magic, enum record_codec out_codec,
                                    const struct legacy_convert_buffers *bufs, uint8_t *out,
                                    size_t out_cap, size_t *out_len) {
    assert(bufs != NULL && out_len != NULL);
    *out_len = 0;
    if (magic != 0 && magic != 1)
        return RECORD_ERR_INVALID_ARG;
    if ((unsigned)out_codec >= RECORD_CODEC_COUNT || out_codec == RECORD_CODEC_ZSTD)
        return RECORD_ERR_UNSUPPORTED_CODEC;
    struct record_iter it;
    enum record_error err = record_iter_init(&it, batch, batch_len, codecs, bufs->decompress,
                                             bufs->decompress_cap, 0);
    if (err != RECORD_OK)
        return err;
    if (it.header.attributes & RECORD_ATTR_CONTROL)
        return RECORD_OK; /* transaction markers are not messages */
    int64_t last_offset = it.header.base_offset, max_ts = INT64_MIN;
    size_t used = 0;
    if (out_codec == RECORD_CODEC_NONE) {
        err = write_records_as_messages(&it, magic, false, out, out_cap, &used, &last_offset,
                                        &max_ts);
        *out_len = err == RECORD_OK ? used : 0;
        return err;
    }
    if (codecs == NULL || bufs->records == NULL)
        return RECORD_ERR_INVALID_ARG;
    err = write_records_as_messages(&it, magic, magic == 1, bufs->records, bufs->records_cap,
                                    &used, &last_offset, &max_ts);
    if (err != RECORD_OK)
        return err;
    if (used == 0)
        return RECORD_OK; /* an empty batch: nothing to wrap */
    size_t wrapper_hdr = LEGACY_LOG_OVERHEAD_BYTES + legacy_header_bytes(magic);
    if (out_cap < wrapper_hdr)
        return RECORD_ERR_NO_SPACE;
    uint8_t *value_at = out + wrapper_hdr;
    size_t value_bytes;
    err = record_compress(codecs, out_codec, bufs->records, used, value_at, out_cap - wrapper_hdr,
                          &value_bytes);
    if (err != RECORD_OK)
        return err;
    if (value_bytes > INT32_MAX - wrapper_hdr)
        return RECORD_ERR_TOO_LARGE;
    if (magic == 0 && out_codec == RECORD_CODEC_LZ4)
        record_lz4_set_legacy_header_checksum(value_at, value_bytes);
    *out_len = write_message(out, magic, (int8_t)out_codec, last_offset, max_ts, NULL, -1, value_at,
                             (int32_t)value_bytes);
    return RECORD_OK;
}
