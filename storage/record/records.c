/* records.c - read and write the records of a RecordBatch v2.
 *
 * A record (all varints zigzag-signed):
 *   length varint | attributes int8 | timestamp_delta varlong | offset_delta varint |
 *   key_len varint, key | value_len varint, value |
 *   header_count varint, [hkey_len varint, hkey, hvalue_len varint, hvalue]...
 * length counts the bytes after itself; a length of -1 marks a null key/value.
 *
 * Reading is a bounded cursor over the records section: every read checks against
 * the record's own end, so a lying length can never move the cursor outside the
 * section, and every loop runs at most as many turns as there are bytes. The
 * writer computes exact sizes first and then encodes, so it never writes past the
 * caller's buffer and can report the size it needs. */
#include "storage/record/records.h"

#include <assert.h>
#include <string.h>

#include "storage/record/bytes.h"
#include "storage/record/crc.h"

/* ---- reader ------------------------------------------------------------------ */

struct cursor {
    const uint8_t *pos;
    const uint8_t *end;
};

static bool cur_varint(struct cursor *c, int32_t *out) {
    size_t n = varint_read(c->pos, c->end, out);
    c->pos += n;
    return n > 0;
}

static bool cur_varlong(struct cursor *c, int64_t *out) {
    size_t n = varlong_read(c->pos, c->end, out);
    c->pos += n;
    return n > 0;
}

/* A varint length then that many bytes; -1 (null) allowed only if nullable. */
static bool cur_bytes(struct cursor *c, bool nullable, struct record_bytes *out) {
    int32_t len;
    if (!cur_varint(c, &len))
        return false;
    if (len == -1 && nullable) {
        out->data = NULL;
        out->len = -1;
        return true;
    }
    if (len < 0 || (size_t)len > (size_t)(c->end - c->pos))
        return false;
    out->data = c->pos;
    out->len = len;
    c->pos += len;
    return true;
}

enum record_error record_iter_init(struct record_iter *it, const uint8_t *batch, size_t len,
                                   struct record_codecs *codecs, uint8_t *scratch,
                                   size_t scratch_cap, unsigned flags) {
    assert(it != NULL);
    memset(it, 0, sizeof(*it));
    it->flags = flags;
    it->prev_offset_delta = -1;
    enum record_error err = (flags & RECORD_ITER_SKIP_CRC)
                                ? record_batch_header_parse(batch, len, &it->header)
                                : record_batch_validate(batch, len, &it->header);
    if (err == RECORD_OK && record_batch_size_bytes(&it->header) > len)
        err = RECORD_ERR_TRUNCATED;
    if (err == RECORD_OK && it->header.last_offset_delta < 0)
        err = RECORD_ERR_BAD_COUNT;
    if (err != RECORD_OK) {
        it->err = err;
        return err;
    }
    const uint8_t *section = batch + RECORD_BATCH_HEADER_BYTES;
    size_t section_bytes = record_batch_size_bytes(&it->header) - RECORD_BATCH_HEADER_BYTES;
    enum record_codec codec = record_batch_codec(&it->header);
    /* An empty batch (record_count 0, kept by compaction for producer state) has no
     * records section to decompress, whatever its attributes say. */
    if (codec == RECORD_CODEC_NONE || (section_bytes == 0 && it->header.record_count == 0)) {
        it->pos = section;
        it->end = section + section_bytes;
    } else if ((unsigned)codec >= RECORD_CODEC_COUNT) {
        err = RECORD_ERR_UNSUPPORTED_CODEC;
    } else if (codecs == NULL || scratch == NULL) {
        err = RECORD_ERR_INVALID_ARG;
    } else {
        size_t out_bytes = 0;
        err = record_decompress(codecs, codec, section, section_bytes, scratch, scratch_cap,
                                &out_bytes, 0);
        it->pos = scratch;
        it->end = scratch + out_bytes;
    }
    it->records_left = it->header.record_count;
    it->err = err;
    return err;
}

static bool iter_fail(struct record_iter *it, enum record_error err) {
    it->err = err;
    it->records_left = 0;
    it->pos = it->end;
    return false;
}

static bool offset_delta_ok(const struct record_iter *it, int32_t offset_delta) {
    if (it->flags & RECORD_ITER_STRICT_OFFSETS)
        return offset_delta == it->next_index;
    return offset_delta > it->prev_offset_delta &&
           offset_delta <= it->header.last_offset_delta;
}

/* Parse the record body [c.pos, c.end) into out; false if it is malformed. */
static bool parse_record_body(struct cursor *c, struct record_view *out) {
    if (c->pos >= c->end)
        return false;
    out->attributes = (int8_t)*c->pos++;
    if (!cur_varlong(c, &out->timestamp_delta) || !cur_varint(c, &out->offset_delta))
        return false;
    if (!cur_bytes(c, true, &out->key) || !cur_bytes(c, true, &out->value))
        return false;
    if (!cur_varint(c, &out->header_count) || out->header_count < 0)
        return false;
    out->headers = c->pos;
    for (int32_t i = 0; i < out->header_count; i++) {
        struct record_bytes hkey, hvalue;
        if (!cur_bytes(c, false, &hkey) || !cur_bytes(c, true, &hvalue))
            return false;
    }
    out->headers_end = c->pos;
    return c->pos == c->end;
}

bool record_iter_next(struct record_iter *it, struct record_view *out) {
    assert(it != NULL && out != NULL);
    if (it->err != RECORD_OK)
        return false;
    if (it->records_left == 0) {
        if (it->pos != it->end)
            return iter_fail(it, RECORD_ERR_BAD_COUNT);
        if ((it->flags & RECORD_ITER_STRICT_OFFSETS) &&
            it->prev_offset_delta != it->header.last_offset_delta)
            return iter_fail(it, RECORD_ERR_BAD_COUNT);
        return false;
    }
    if (it->pos == it->end)
        return iter_fail(it, RECORD_ERR_BAD_COUNT);

    struct cursor c = {.pos = it->pos, .end = it->end};
    int32_t length_bytes;
    if (!cur_varint(&c, &length_bytes) || length_bytes < 0 ||
        (size_t)length_bytes > (size_t)(c.end - c.pos))
        return iter_fail(it, RECORD_ERR_BAD_RECORD);
    struct cursor body = {.pos = c.pos, .end = c.pos + length_bytes};
    if (!parse_record_body(&body, out))
        return iter_fail(it, RECORD_ERR_BAD_RECORD);
    if (!offset_delta_ok(it, out->offset_delta))
        return iter_fail(it, RECORD_ERR_BAD_COUNT);

    const struct record_batch_header *h = &it->header;
    out->offset = add_wrap64(h->base_offset, out->offset_delta);
    out->timestamp = (h->attributes & RECORD_ATTR_TIMESTAMP_LOG_APPEND)
                         ? h->max_timestamp
                         : add_wrap64(h->base_timestamp, out->timestamp_delta);
    it->prev_offset_delta = out->offset_delta;
    it->pos = body.end;
    assert(it->pos <= it->end);
    it->records_left--;
    it->next_index++;
    return true;
}

bool record_header_next(const uint8_t **pos, const uint8_t *end, struct record_header_view *out) {
    assert(pos != NULL && out != NULL);
    if (*pos >= end)
        return false;
    struct cursor c = {.pos = *pos, .end = end};
    if (!cur_bytes(&c, false, &out->key) || !cur_bytes(&c, true, &out->value))
        return false;
    *pos = c.pos;
    return true;
}

enum record_error record_control_parse(const struct record_view *r, struct record_control *out) {
    assert(r != NULL && out != NULL);
    if (r->key.len < RECORD_CONTROL_KEY_BYTES)
        return RECORD_ERR_BAD_RECORD;
    out->version = (int16_t)be16_load(r->key.data);
    out->type = (int16_t)be16_load(r->key.data + 2);
    out->coordinator_epoch = -1;
    if (r->value.len >= RECORD_CONTROL_VALUE_BYTES)
        out->coordinator_epoch = (int32_t)be32_load(r->value.data + 2);
    if (out->version < 0)
        return RECORD_ERR_BAD_RECORD;
    return RECORD_OK;
}

void record_control_key_write(uint8_t out[RECORD_CONTROL_KEY_BYTES], int16_t type) {
    be16_store(out, 0);
    be16_store(out + 2, (uint16_t)type);
}

void record_control_value_write(uint8_t out[RECORD_CONTROL_VALUE_BYTES],
                                int32_t coordinator_epoch) {
    be16_store(out, 0);
    be32_store(out + 2, (uint32_t)coordinator_epoch);
}

/* ---- writer ------------------------------------------------------------------ */

struct record_batch_spec record_batch_spec_default(void) {
    struct record_batch_spec s = {
        .base_offset = 0,
        .partition_leader_epoch = -1,
        .producer_id = -1,
        .producer_epoch = -1,
        .base_sequence = -1,
        .codec = RECORD_CODEC_NONE,
    };
    return s;
}

static size_t bytes_field_size(int32_t len) {
    return varlong_size(len) + (len > 0 ? (size_t)len : 0);
}

static bool record_in_valid(const struct record_in *r) {
    if (r->key_len < -1 || r->value_len < -1 || r->header_count < 0)
        return false;
    if ((r->key_len > 0 && r->key == NULL) || (r->value_len > 0 && r->value == NULL))
        return false;
    if (r->header_count > 0 && r->headers == NULL)
        return false;
    for (int32_t i = 0; i < r->header_count; i++) {
        const struct record_header_in *h = &r->headers[i];
        if (h->key_len < 0 || h->value_len < -1)
            return false;
    }
    return true;
}

static size_t record_body_bytes(const struct record_in *r, int64_t timestamp_delta,
                                int32_t offset_delta) {
    size_t n = 1 + varlong_size(timestamp_delta) + varlong_size(offset_delta);
    n += bytes_field_size(r->key_len) + bytes_field_size(r->value_len);
    n += varlong_size(r->header_count);
    for (int32_t i = 0; i < r->header_count; i++)
        n += bytes_field_size(r->headers[i].key_len) + bytes_field_size(r->headers[i].value_len);
    return n;
}

size_t record_encoded_bytes(const struct record_in *r, int64_t timestamp_delta,
                            int32_t offset_delta) {
    if (!record_in_valid(r))
        return 0;
    size_t body = record_body_bytes(r, timestamp_delta, offset_delta);
    if (body > INT32_MAX - VARINT_MAX_BYTES)
        return 0;
    return varlong_size((int64_t)body) + body;
}

static size_t put_bytes(uint8_t *p, const uint8_t *data, int32_t len) {
    size_t n = varlong_write(p, len);
    if (len > 0) {
        memcpy(p + n, data, (size_t)len);
        n += (size_t)len;
    }
    return n;
}

size_t record_encode(uint8_t *p, const struct record_in *r, int64_t timestamp_delta,
                     int32_t offset_delta) {
    size_t body = record_body_bytes(r, timestamp_delta, offset_delta);
    size_t n = varlong_write(p, (int64_t)body);
    size_t body_start = n;
    p[n++] = 0; /* record attributes: unused by Kafka */
    n += varlong_write(p + n, timestamp_delta);
    n += varlong_write(p + n, offset_delta);
    n += put_bytes(p + n, r->key, r->key_len);
    n += put_bytes(p + n, r->value, r->value_len);
    n += varlong_write(p + n, r->header_count);
    for (int32_t i = 0; i < r->header_count; i++) {
        const struct record_header_in *h = &r->headers[i];
        n += put_bytes(p + n, h->key, h->key_len);
        n += put_bytes(p + n, h->value, h->value_len);
    }
    assert(n - body_start == body);
    return n;
}

size_t record_batch_records_bytes(const struct record_in *records, int32_t record_count) {
    if (record_count <= 0 || records == NULL)
        return 0;
    int64_t base_ts = records[0].timestamp_ms;
    size_t total = 0;
    for (int32_t i = 0; i < record_count; i++) {
        int64_t delta = (int64_t)((uint64_t)records[i].timestamp_ms - (uint64_t)base_ts);
        size_t n = record_encoded_bytes(&records[i], delta, i);
        if (n == 0 || total + n > INT32_MAX)
            return 0;
        total += n;
    }
    return total;
}

void record_batch_header_write(uint8_t *buf, const struct record_batch_spec *spec,
                               int32_t record_count, int64_t base_timestamp,
                               int64_t max_timestamp, size_t records_bytes) {
    assert(records_bytes <= INT32_MAX - RECORD_BATCH_HEADER_BYTES);
    uint16_t attributes = (uint16_t)(spec->codec & RECORD_ATTR_COMPRESSION_MASK);
    if (spec->transactional)
        attributes |= RECORD_ATTR_TRANSACTIONAL;
    if (spec->control)
        attributes |= RECORD_ATTR_CONTROL;
    size_t batch_length = RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_OVERHEAD_BYTES + records_bytes;
    be64_store(buf + 0, (uint64_t)spec->base_offset);
    be32_store(buf + 8, (uint32_t)batch_length);
    be32_store(buf + 12, (uint32_t)spec->partition_leader_epoch);
    buf[16] = RECORD_BATCH_MAGIC;
    be32_store(buf + 17, 0);
    be16_store(buf + 21, attributes);
    be32_store(buf + 23, (uint32_t)(record_count - 1));
    be64_store(buf + 27, (uint64_t)base_timestamp);
    be64_store(buf + 35, (uint64_t)max_timestamp);
    be64_store(buf + 43, (uint64_t)spec->producer_id);
    be16_store(buf + 51, (uint16_t)spec->producer_epoch);
    be32_store(buf + 53, (uint32_t)spec->base_sequence);
    be32_store(buf + 57, (uint32_t)record_count);
}

static void encode_all(uint8_t *p, const struct record_in *records, int32_t record_count) {
    int64_t base_ts = records[0].timestamp_ms;
    for (int32_t i = 0; i < record_count; i++) {
        int64_t delta = (int64_t)((uint64_t)records[i].timestamp_ms - (uint64_t)base_ts);
        p += record_encode(p, &records[i], delta, i);
    }
}

static int64_t max_timestamp_of(const struct record_in *records, int32_t record_count) {
    int64_t max_ts = records[0].timestamp_ms;
    for (int32_t i = 1; i < record_count; i++)
        if (records[i].timestamp_ms > max_ts)
            max_ts = records[i].timestamp_ms;
    return max_ts;
}

enum record_error record_batch_write(struct record_codecs *codecs,
                                     const struct record_batch_spec *spec,
                                     const struct record_in *records, int32_t record_count,
                                     uint8_t *buf, size_t buf_cap, uint8_t *scratch,
                                     size_t scratch_cap, size_t *out_len) {
    assert(spec != NULL && out_len != NULL);
    *out_len = 0;
    if ((unsigned)spec->codec >= RECORD_CODEC_COUNT)
        return RECORD_ERR_UNSUPPORTED_CODEC;
    size_t records_bytes = record_batch_records_bytes(records, record_count);
    if (records_bytes == 0)
        return RECORD_ERR_INVALID_ARG;
    if (records_bytes > INT32_MAX - RECORD_BATCH_HEADER_BYTES)
        return RECORD_ERR_TOO_LARGE;
    size_t section_bytes = records_bytes;

    if (spec->codec == RECORD_CODEC_NONE) {
        if (buf == NULL || buf_cap < RECORD_BATCH_HEADER_BYTES + records_bytes) {
            *out_len = RECORD_BATCH_HEADER_BYTES + records_bytes;
            return RECORD_ERR_NO_SPACE;
        }
        encode_all(buf + RECORD_BATCH_HEADER_BYTES, records, record_count);
    } else {
        if (codecs == NULL)
            return RECORD_ERR_INVALID_ARG;
        if (scratch == NULL || scratch_cap < records_bytes)
            return RECORD_ERR_NO_SPACE;
        size_t bound = RECORD_BATCH_HEADER_BYTES + record_compress_bound(spec->codec, records_bytes);
        if (buf == NULL || buf_cap < RECORD_BATCH_HEADER_BYTES) {
            *out_len = bound;
            return RECORD_ERR_NO_SPACE;
        }
        encode_all(scratch, records, record_count);
        enum record_error err = record_compress(codecs, spec->codec, scratch, records_bytes,
                                                buf + RECORD_BATCH_HEADER_BYTES,
                                                buf_cap - RECORD_BATCH_HEADER_BYTES,
                                                &section_bytes);
        if (err == RECORD_ERR_NO_SPACE)
            *out_len = bound;
        if (err != RECORD_OK)
            return err;
        if (section_bytes > INT32_MAX - RECORD_BATCH_HEADER_BYTES)
            return RECORD_ERR_TOO_LARGE;
    }
    record_batch_header_write(buf, spec, record_count, records[0].timestamp_ms,
                              max_timestamp_of(records, record_count), section_bytes);
    record_batch_update_crc(buf);
    *out_len = RECORD_BATCH_HEADER_BYTES + section_bytes;
    return RECORD_OK;
}

enum record_error record_batch_check_records(const uint8_t *batch, size_t len,
                                             struct record_codecs *codecs, uint8_t *scratch,
                                             size_t scratch_cap, unsigned flags,
                                             struct record_batch_header *out) {
    struct record_iter it;
    enum record_error err = record_iter_init(&it, batch, len, codecs, scratch, scratch_cap, flags);
    if (out != NULL)
        *out = it.header;
    if (err != RECORD_OK)
        return err;
    struct record_view r;
    while (record_iter_next(&it, &r)) {
    }
    return it.err;
}
