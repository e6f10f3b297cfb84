/* wire.h: Kafka wire primitives -- a bounds-checked reader, a grow-free writer with optional
 * zero-copy iovecs for record data, and a bump arena for decoded arrays.
 *
 * Design
 * - struct kafka_reader is a cursor over [pos, end). Every read checks the bytes left; on
 *   the first problem it records an error code in `err` (sticky: later errors never replace
 *   it), moves pos to end and returns 0/empty, so generated decoders can read a run of fields
 *   and check once. Nothing is read past `end`.
 * - Strings, bytes and records decode as VIEWS into the input buffer (no copy): the input
 *   must outlive the decoded message. len == -1 means null.
 * - Array counts are validated against the bytes left (count * minimum element size) before
 *   anything is allocated, so a count of 2^31-1 fails at once. Arrays are carved from a
 *   struct kafka_arena: a bounded bump allocator over caller memory; exhaustion is an error
 *   (KAFKA_ERR_ARENA), never a malloc.
 * - struct kafka_writer writes into a caller buffer and never allocates; a full buffer is
 *   KAFKA_ERR_NO_SPACE. A writer made with kafka_writer_init_sizer() only counts bytes
 *   (used for tagged-field sizes and to size a buffer before encoding).
 * - Zero copy: a writer made with kafka_writer_init_iov() also keeps a bounded iovec list.
 *   A `records` field then closes the current inline segment (one iovec into buf) and
 *   appends one iovec pointing at the caller's record bytes instead of copying them. After
 *   encoding, kafka_writer_finish() closes the last inline segment; the iovecs, in order,
 *   are the message. A writer without an iovec list copies records inline.
 * - Scattered records: a records value may live in several byte ranges (a partition's
 *   batches in several chunk fragments). The encoder registers a list of them on the
 *   writer (kafka_writer_set_scatter) and puts into the message a records value whose ptr
 *   is the address of a list entry and whose len is that entry's total: the generated code
 *   is unchanged, and kafka_write_records writes the entry's ranges -- one iovec each in
 *   iovec mode, copied by other writers, counted by a sizer.
 *
 * Public API
 *   reader: kafka_reader_init, kafka_reader_remaining, kafka_reader_fail, kafka_read_int8/
 *     int16/int32/int64/uint16/float64/bool/uuid, kafka_read_varint/varlong (zigzag),
 *     kafka_read_uvarint, kafka_read_string/bytes(r, compact), kafka_read_array_len(r,
 *     compact, min_elem_bytes), kafka_read_tag_count, kafka_read_tag_body, kafka_skip_tags.
 *   writer: kafka_writer_init/init_iov/init_sizer, kafka_writer_size, kafka_writer_fail,
 *     kafka_write_* (same types), kafka_write_records, kafka_write_array_len,
 *     kafka_writer_reserve + kafka_writer_patch_int32 (frame size prefixes),
 *     kafka_writer_finish (iovec mode), kafka_writer_set_scatter + kafka_write_records_iov
 *     (records in several ranges).
 *   arena: kafka_arena_init, kafka_arena_reset, kafka_arena_alloc.
 *   errors: KAFKA_ERR_* (negative), kafka_err_str().
 */
#ifndef SLUICE_KAFKA_WIRE_H
#define SLUICE_KAFKA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum kafka_wire_err {
    KAFKA_OK = 0,
    KAFKA_ERR_TRUNCATED = -1,         /* input ends inside a value */
    KAFKA_ERR_LENGTH = -2,            /* negative/oversized length or count */
    KAFKA_ERR_VARINT = -3,            /* varint longer than 5 (10) bytes */
    KAFKA_ERR_ARENA = -4,             /* arena exhausted */
    KAFKA_ERR_NO_SPACE = -5,          /* writer buffer too small */
    KAFKA_ERR_IOV_FULL = -6,          /* writer iovec list full */
    KAFKA_ERR_VERSION = -7,           /* version outside the message's range */
    KAFKA_ERR_NULL = -8,              /* null where the version does not allow it */
    KAFKA_ERR_UNSUPPORTED_FIELD = -9, /* non-default, non-ignorable field absent at version */
    KAFKA_ERR_UNKNOWN_API = -10,      /* api key not implemented */
};

const char *kafka_err_str(int err);

/* A string view; len -1 = null. Not NUL-terminated. */
struct kafka_str {
    const char *ptr;
    int32_t len;
};

/* A bytes (or records) view; len -1 = null. */
struct kafka_bytes {
    const uint8_t *ptr;
    int32_t len;
};

struct kafka_uuid {
    uint8_t bytes[16];
};

#define KAFKA_STRING_MAX_BYTES 32767 /* Kafka strings have an int16 length */

struct kafka_reader {
    const uint8_t *pos;
    const uint8_t *end;
    int err; /* first error (KAFKA_ERR_*), 0 while fine */
};

void kafka_reader_init(struct kafka_reader *r, const void *data, size_t size_bytes);
/* Record `err` unless an error is already recorded; returns the recorded error. */
int kafka_reader_fail(struct kafka_reader *r, int err);

double kafka_read_float64(struct kafka_reader *r);
struct kafka_uuid kafka_read_uuid(struct kafka_reader *r);
int32_t kafka_read_varint(struct kafka_reader *r);
int64_t kafka_read_varlong(struct kafka_reader *r);
uint64_t kafka_read_uvarlong(struct kafka_reader *r);
/* compact: unsigned varint length+1 (0 = null); else int16 (string) / int32 (bytes). */
struct kafka_str kafka_read_string(struct kafka_reader *r, bool compact);
struct kafka_bytes kafka_read_bytes(struct kafka_reader *r, bool compact);
/* Element count (-1 = null); fails unless count * min_elem_bytes <= bytes left. */
int32_t kafka_read_array_len(struct kafka_reader *r, bool compact, size_t min_elem_bytes);
/* Tagged field section: count, then per field: tag, size, body. */
uint32_t kafka_read_tag_count(struct kafka_reader *r);
/* Read a tagged field's size; point `body` at its bytes and step r past them. */
int kafka_read_tag_body(struct kafka_reader *r, struct kafka_reader *body);
/* Skip a whole tagged field section (all tags unknown). */
int kafka_skip_tags(struct kafka_reader *r);

struct kafka_writer {
    uint8_t *buf;          /* NULL for a sizer */
    size_t cap_bytes;
    size_t len_bytes;      /* bytes in buf (a sizer counts all bytes here) */
    size_t external_bytes; /* record bytes referenced by iovecs, not copied */
    struct iovec *iov;     /* NULL: records are copied inline */
    uint32_t iov_cap;
    uint32_t iov_count;
    size_t segment_start_bytes; /* start in buf of the inline segment not yet in iov */
    const struct kafka_scatter *scatter; /* records values that point into it are lists */
    uint32_t scatter_count;
    int err;
};

/* One records value in several byte ranges, in order. */
struct kafka_scatter {
    const struct iovec *iov;
    uint32_t iov_count;
};

void kafka_writer_init(struct kafka_writer *w, void *buf, size_t cap_bytes);
void kafka_writer_init_iov(struct kafka_writer *w, void *buf, size_t cap_bytes,
    struct iovec *iov, uint32_t iov_cap);
void kafka_writer_init_sizer(struct kafka_writer *w);
/* Total encoded size: inline bytes plus referenced record bytes. */
size_t kafka_writer_size(const struct kafka_writer *w);
int kafka_writer_fail(struct kafka_writer *w, int err);
/* Reserve n bytes to be patched later; returns their offset in buf. */
size_t kafka_writer_reserve(struct kafka_writer *w, size_t n_bytes);
void kafka_writer_patch_int32(struct kafka_writer *w, size_t offset_bytes, int32_t value);
/* iovec mode: close the last inline segment. Returns the iovec count or an error. */
int kafka_writer_finish(struct kafka_writer *w);

void kafka_write_raw(struct kafka_writer *w, const void *data, size_t n_bytes);
void kafka_write_float64(struct kafka_writer *w, double v);
void kafka_write_uuid(struct kafka_writer *w, struct kafka_uuid v);
void kafka_write_varint(struct kafka_writer *w, int32_t v);
void kafka_write_varlong(struct kafka_writer *w, int64_t v);
void kafka_write_uvarlong(struct kafka_writer *w, uint64_t v);
void kafka_write_string(struct kafka_writer *w, struct kafka_str s, bool compact);
void kafka_write_bytes(struct kafka_writer *w, struct kafka_bytes b, bool compact);
/* Like bytes, but in iovec mode the data is referenced, not copied. */
void kafka_write_records(struct kafka_writer *w, struct kafka_bytes b, bool compact);
void kafka_write_array_len(struct kafka_writer *w, int32_t count, bool compact);
/* Records made of iov_count ranges (length prefix = their total): referenced in iovec mode
 * (one iovec per range), copied otherwise. */
void kafka_write_records_iov(struct kafka_writer *w, const struct iovec *iov,
    uint32_t iov_count, bool compact);
/* From now on a records value whose ptr is &list[i] (len = list[i]'s total bytes) is
 * written as kafka_write_records_iov(list[i]). list must outlive the encoding. */
void kafka_writer_set_scatter(struct kafka_writer *w, const struct kafka_scatter *list,
    uint32_t count);

/* ---- inline fast paths ----------------------------------------------------------------
 * Fixed-width values and one-byte varints are most of the codec's work; they are inline
 * here, the rest is in wire.c. After any reader error pos == end, so the bounds check
 * alone keeps every later read failing (the error code stays the first one). */

uint32_t kafka_read_uvarint_slow(struct kafka_reader *r);
void kafka_write_uvarint_slow(struct kafka_writer *w, uint32_t v);

static inline size_t kafka_reader_remaining(const struct kafka_reader *r)
{
    return (size_t)(r->end - r->pos);
}

/* The next n bytes, stepping past them; NULL (and KAFKA_ERR_TRUNCATED) when short. */
static inline const uint8_t *kafka_reader_take(struct kafka_reader *r, size_t n)
{
    if (kafka_reader_remaining(r) < n) {
        kafka_reader_fail(r, KAFKA_ERR_TRUNCATED);
        return NULL;
    }
    const uint8_t *p = r->pos;
    r->pos += n;
    return p;
}

static inline uint64_t kafka_load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline int8_t kafka_read_int8(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

static inline int16_t kafka_read_int16(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 2);
    return p ? (int16_t)(uint16_t)kafka_load_be(p, 2) : 0;
}

static inline int32_t kafka_read_int32(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 4);
    return p ? (int32_t)(uint32_t)kafka_load_be(p, 4) : 0;
}

static inline int64_t kafka_read_int64(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 8);
    return p ? (int64_t)kafka_load_be(p, 8) : 0;
}

static inline uint16_t kafka_read_uint16(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 2);
    return p ? (uint16_t)kafka_load_be(p, 2) : 0;
}

static inline uint32_t kafka_read_uint32(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 4);
    return p ? (uint32_t)kafka_load_be(p, 4) : 0;
}

static inline bool kafka_read_bool(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 1);
    return p ? p[0] != 0 : false;
}

static inline uint32_t kafka_read_uvarint(struct kafka_reader *r)
{
    if (r->pos < r->end && *r->pos < 0x80)
        return *r->pos++;
    return kafka_read_uvarint_slow(r);
}

/* Room for n more bytes: a pointer to them (NULL for a sizer, or on error). */
static inline uint8_t *kafka_writer_put(struct kafka_writer *w, size_t n)
{
    if (w->err != 0)
        return NULL;
    if (w->cap_bytes - w->len_bytes < n) {
        kafka_writer_fail(w, KAFKA_ERR_NO_SPACE);
        return NULL;
    }
    uint8_t *p = w->buf ? w->buf + w->len_bytes : NULL;
    w->len_bytes += n;
    return p;
}

static inline void kafka_store_be(struct kafka_writer *w, uint64_t v, size_t n)
{
    uint8_t *p = kafka_writer_put(w, n);
    if (p == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static inline void kafka_write_int8(struct kafka_writer *w, int8_t v)
{
    kafka_store_be(w, (uint8_t)v, 1);
}

static inline void kafka_write_int16(struct kafka_writer *w, int16_t v)
{
    kafka_store_be(w, (uint16_t)v, 2);
}

static inline void kafka_write_int32(struct kafka_writer *w, int32_t v)
{
    kafka_store_be(w, (uint32_t)v, 4);
}

static inline void kafka_write_int64(struct kafka_writer *w, int64_t v)
{
    kafka_store_be(w, (uint64_t)v, 8);
}

static inline void kafka_write_uint16(struct kafka_writer *w, uint16_t v)
{
    kafka_store_be(w, v, 2);
}

static inline void kafka_write_uint32(struct kafka_writer *w, uint32_t v)
{
    kafka_store_be(w, v, 4);
}

static inline void kafka_write_bool(struct kafka_writer *w, bool v)
{
    kafka_store_be(w, v ? 1 : 0, 1);
}

static inline void kafka_write_uvarint(struct kafka_writer *w, uint32_t v)
{
    if (v < 0x80)
        kafka_store_be(w, v, 1);
    else
        kafka_write_uvarint_slow(w, v);
}

struct kafka_arena {
    uint8_t *base;
    size_t cap_bytes;
    size_t used_bytes;
};

void kafka_arena_init(struct kafka_arena *a, void *mem, size_t cap_bytes);
void kafka_arena_reset(struct kafka_arena *a);
/* count * elem_size bytes aligned to align (a power of two); NULL when it does not fit. */
void *kafka_arena_alloc(struct kafka_arena *a, size_t count, size_t elem_size, size_t align);
/* An array of `count` elements of ptr's type (ptr is only used for its type). */
#define KAFKA_ARENA_ARRAY(arena, count, ptr) \
    kafka_arena_alloc((arena), (size_t)(count), sizeof(*(ptr)), _Alignof(__typeof__(*(ptr))))

bool kafka_uuid_is_zero(struct kafka_uuid u);
bool kafka_str_equals(struct kafka_str a, struct kafka_str b);
bool kafka_str_equals_cstr(struct kafka_str s, const char *cstr); /* cstr non-NULL */
bool kafka_bytes_equals(struct kafka_bytes a, struct kafka_bytes b);
struct kafka_str kafka_str_from_cstr(const char *cstr); /* NULL -> null string */

#endif
