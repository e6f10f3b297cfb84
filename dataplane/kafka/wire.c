/* wire.c: Kafka wire primitives (see wire.h for the design).
 *
 * All multi-byte integers are big-endian on the wire. Varints follow protobuf/Kafka:
 * 7 bits a byte, low group first, high bit = more; signed ones are zigzag encoded. As in
 * Kafka's ByteUtils, an unsigned varint is at most 5 bytes and a varlong at most 10; the
 * unused high bits of the last byte are ignored.
 */
#include "dataplane/kafka/wire.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

const char *kafka_err_str(int err)
{
    switch (err) {
    case KAFKA_OK: return "ok";
    case KAFKA_ERR_TRUNCATED: return "truncated";
    case KAFKA_ERR_LENGTH: return "bad length";
    case KAFKA_ERR_VARINT: return "varint too long";
    case KAFKA_ERR_ARENA: return "arena exhausted";
    case KAFKA_ERR_NO_SPACE: return "buffer too small";
    case KAFKA_ERR_IOV_FULL: return "iovec list full";
    case KAFKA_ERR_VERSION: return "unsupported version";
    case KAFKA_ERR_NULL: return "null not allowed";
    case KAFKA_ERR_UNSUPPORTED_FIELD: return "field not supported at version";
    case KAFKA_ERR_UNKNOWN_API: return "unknown api key";
    default: return "unknown error";
    }
}

/* ---- reader ---------------------------------------------------------------------------- */

void kafka_reader_init(struct kafka_reader *r, const void *data, size_t size_bytes)
{
    assert(data != NULL || size_bytes == 0);
    r->pos = data;
    r->end = data == NULL ? r->pos : r->pos + size_bytes;
    r->err = 0;
}

int kafka_reader_fail(struct kafka_reader *r, int err)
{
    assert(err < 0);
    if (r->err == 0)
        r->err = err;
    r->pos = r->end;
    return r->err;
}

double kafka_read_float64(struct kafka_reader *r)
{
    const uint8_t *p = kafka_reader_take(r, 8);
    if (p == NULL)
        return 0.0;
    uint64_t bits = kafka_load_be(p, 8);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

struct kafka_uuid kafka_read_uuid(struct kafka_reader *r)
{
    struct kafka_uuid u;
    const uint8_t *p = kafka_reader_take(r, sizeof(u.bytes));
    if (p == NULL)
        memset(&u, 0, sizeof(u));
    else
        memcpy(u.bytes, p, sizeof(u.bytes));
    return u;
}

/* Unsigned varint of at most max_bytes bytes. */
static uint64_t read_uvar(struct kafka_reader *r, unsigned max_bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < max_bytes; i++) {
        const uint8_t *p = kafka_reader_take(r, 1);
        if (p == NULL)
            return 0;
        v |= (uint64_t)(p[0] & 0x7f) << (7 * i);
        if ((p[0] & 0x80) == 0)
            return v;
    }
    kafka_reader_fail(r, KAFKA_ERR_VARINT);
    return 0;
}

uint32_t kafka_read_uvarint_slow(struct kafka_reader *r)
{
    return (uint32_t)read_uvar(r, 5);
}

uint64_t kafka_read_uvarlong(struct kafka_reader *r)
{
    return read_uvar(r, 10);
}

int32_t kafka_read_varint(struct kafka_reader *r)
{
    uint32_t u = kafka_read_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t kafka_read_varlong(struct kafka_reader *r)
{
    uint64_t u = kafka_read_uvarlong(r);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Length of a string/bytes/array: -1 for null, else >= 0; -2 after an error. */
static int64_t read_len(struct kafka_reader *r, bool compact, size_t width)
{
    int64_t n;
    if (compact)
        n = (int64_t)kafka_read_uvarint(r) - 1;
    else if (width == 2)
        n = kafka_read_int16(r);
    else
        n = kafka_read_int32(r);
    if (r->err != 0)
        return -2;
    if (n < -1 || n > INT32_MAX) {
        kafka_reader_fail(r, KAFKA_ERR_LENGTH);
        return -2;
    }
    return n;
}

struct kafka_str kafka_read_string(struct kafka_reader *r, bool compact)
{
    struct kafka_str s = { NULL, -1 };
    int64_t n = read_len(r, compact, 2);
    if (n == -1 || n == -2) {
        if (n == -2)
            s.len = 0;
        return s;
    }
    if (n > KAFKA_STRING_MAX_BYTES) {
        kafka_reader_fail(r, KAFKA_ERR_LENGTH);
        s.len = 0;
        return s;
    }
    const uint8_t *p = kafka_reader_take(r, (size_t)n);
    if (p == NULL) {
        s.len = 0;
        return s;
    }
    s.ptr = (const char *)p;
    s.len = (int32_t)n;
    return s;
}

struct kafka_bytes kafka_read_bytes(struct kafka_reader *r, bool compact)
{
    struct kafka_bytes b = { NULL, -1 };
    int64_t n = read_len(r, compact, 4);
    if (n == -1)
        return b;
    b.len = 0;
    if (n == -2)
        return b;
    const uint8_t *p = kafka_reader_take(r, (size_t)n);
    if (p == NULL)
        return b;
    b.ptr = p;
    b.len = (int32_t)n;
    return b;
}

int32_t kafka_read_array_len(struct kafka_reader *r, bool compact, size_t min_elem_bytes)
{
    assert(min_elem_bytes > 0);
    int64_t n = read_len(r, compact, 4);
    if (n == -2)
        return 0;
    if (n > 0 && (uint64_t)n > kafka_reader_remaining(r) / min_elem_bytes) {
        kafka_reader_fail(r, KAFKA_ERR_LENGTH);
        return 0;
    }
    return (int32_t)n;
}

uint32_t kafka_read_tag_count(struct kafka_reader *r)
{
    uint32_t n = kafka_read_uvarint(r);
    /* every tagged field takes at least two bytes (tag, size) */
    if (r->err == 0 && n > kafka_reader_remaining(r) / 2) {
        kafka_reader_fail(r, KAFKA_ERR_LENGTH);
        return 0;
    }
    return r->err == 0 ? n : 0;
}

int kafka_read_tag_body(struct kafka_reader *r, struct kafka_reader *body)
{
    uint32_t size_bytes = kafka_read_uvarint(r);
    const uint8_t *p = kafka_reader_take(r, size_bytes);
    if (p == NULL) {
        kafka_reader_init(body, NULL, 0);
        body->err = r->err;
        return r->err;
    }
    kafka_reader_init(body, p, size_bytes);
    return 0;
}

int kafka_skip_tags(struct kafka_reader *r)
{
    uint32_t n = kafka_read_tag_count(r);
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        struct kafka_reader body;
        (void)kafka_read_uvarint(r);
        kafka_read_tag_body(r, &body);
    }
    return r->err;
}

/* ---- writer ---------------------------------------------------------------------------- */

void kafka_writer_init(struct kafka_writer *w, void *buf, size_t cap_bytes)
{
    assert(buf != NULL || cap_bytes == 0);
    memset(w, 0, sizeof(*w));
    w->buf = buf;
    w->cap_bytes = cap_bytes;
}

void kafka_writer_init_iov(struct kafka_writer *w, void *buf, size_t cap_bytes,
    struct iovec *iov, uint32_t iov_cap)
{
    kafka_writer_init(w, buf, cap_bytes);
    assert(iov != NULL && iov_cap > 0);
    w->iov = iov;
    w->iov_cap = iov_cap;
}

void kafka_writer_init_sizer(struct kafka_writer *w)
{
    memset(w, 0, sizeof(*w));
    w->cap_bytes = SIZE_MAX;
}

size_t kafka_writer_size(const struct kafka_writer *w)
{
    return w->len_bytes + w->external_bytes;
}

int kafka_writer_fail(struct kafka_writer *w, int err)
{
    assert(err < 0);
    if (w->err == 0)
        w->err = err;
    return w->err;
}

size_t kafka_writer_reserve(struct kafka_writer *w, size_t n_bytes)
{
    size_t offset = w->len_bytes;
    uint8_t *p = kafka_writer_put(w, n_bytes);
    if (p != NULL)
        memset(p, 0, n_bytes);
    return offset;
}

void kafka_writer_patch_int32(struct kafka_writer *w, size_t offset_bytes, int32_t value)
{
    if (w->err != 0 || w->buf == NULL)
        return;
    assert(offset_bytes + 4 <= w->len_bytes);
    uint32_t u = (uint32_t)value;
    for (size_t i = 0; i < 4; i++)
        w->buf[offset_bytes + i] = (uint8_t)(u >> (8 * (3 - i)));
}

/* Append iovec {base, len} to the list. */
static void push_iov(struct kafka_writer *w, const void *base, size_t len)
{
    if (len == 0 || w->err != 0)
        return;
    if (w->iov_count == w->iov_cap) {
        kafka_writer_fail(w, KAFKA_ERR_IOV_FULL);
        return;
    }
    w->iov[w->iov_count].iov_base = (void *)base;
    w->iov[w->iov_count].iov_len = len;
    w->iov_count++;
}

static void close_segment(struct kafka_writer *w)
{
    assert(w->segment_start_bytes <= w->len_bytes);
    push_iov(w, w->buf + w->segment_start_bytes, w->len_bytes - w->segment_start_bytes);
    w->segment_start_bytes = w->len_bytes;
}

int kafka_writer_finish(struct kafka_writer *w)
{
    if (w->iov != NULL)
        close_segment(w);
    return w->err != 0 ? w->err : (int)w->iov_count;
}

void kafka_write_raw(struct kafka_writer *w, const void *data, size_t n_bytes)
{
    uint8_t *p = kafka_writer_put(w, n_bytes);
    if (p != NULL && n_bytes > 0)
        memcpy(p, data, n_bytes);
}


void kafka_write_float64(struct kafka_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    kafka_store_be(w, bits, 8);
}

void kafka_write_uuid(struct kafka_writer *w, struct kafka_uuid v)
{
    kafka_write_raw(w, v.bytes, sizeof(v.bytes));
}

void kafka_write_uvarlong(struct kafka_writer *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    kafka_write_raw(w, tmp, n);
}

void kafka_write_uvarint_slow(struct kafka_writer *w, uint32_t v)
{
    kafka_write_uvarlong(w, v);
}

void kafka_write_varint(struct kafka_writer *w, int32_t v)
{
    kafka_write_uvarlong(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

void kafka_write_varlong(struct kafka_writer *w, int64_t v)
{
    kafka_write_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* Length prefix for a string/bytes/array of n elements (-1 = null). */
static void write_len(struct kafka_writer *w, int32_t n, bool compact, size_t width)
{
    if (n < -1) {
        kafka_writer_fail(w, KAFKA_ERR_LENGTH);
        return;
    }
    if (compact)
        kafka_write_uvarint(w, (uint32_t)(n + 1));
    else if (width == 2)
        kafka_write_int16(w, (int16_t)n);
    else
        kafka_write_int32(w, n);
}

void kafka_write_string(struct kafka_writer *w, struct kafka_str s, bool compact)
{
    if (s.len > KAFKA_STRING_MAX_BYTES || (s.len > 0 && s.ptr == NULL)) {
        kafka_writer_fail(w, KAFKA_ERR_LENGTH);
        return;
    }
    write_len(w, s.len, compact, 2);
    if (s.len > 0)
        kafka_write_raw(w, s.ptr, (size_t)s.len);
}

void kafka_write_bytes(struct kafka_writer *w, struct kafka_bytes b, bool compact)
{
    if (b.len > 0 && b.ptr == NULL) {
        kafka_writer_fail(w, KAFKA_ERR_LENGTH);
        return;
    }
    write_len(w, b.len, compact, 4);
    if (b.len > 0)
        kafka_write_raw(w, b.ptr, (size_t)b.len);
}

void kafka_writer_set_scatter(struct kafka_writer *w, const struct kafka_scatter *list,
    uint32_t count)
{
    assert(list != NULL || count == 0);
    w->scatter = list;
    w->scatter_count = count;
}

void kafka_write_records_iov(struct kafka_writer *w, const struct iovec *iov,
    uint32_t iov_count, bool compact)
{
    size_t total = 0;
    for (uint32_t i = 0; i < iov_count; i++)
        total += iov[i].iov_len;
    if (total > INT32_MAX) {
        kafka_writer_fail(w, KAFKA_ERR_LENGTH);
        return;
    }
    write_len(w, (int32_t)total, compact, 4);
    if (w->iov == NULL) { /* copy (or, for a sizer, count) */
        for (uint32_t i = 0; i < iov_count; i++)
            kafka_write_raw(w, iov[i].iov_base, iov[i].iov_len);
        return;
    }
    if (total == 0)
        return;
    close_segment(w);
    for (uint32_t i = 0; i < iov_count; i++)
        push_iov(w, iov[i].iov_base, iov[i].iov_len);
    if (w->err == 0)
        w->external_bytes += total;
}

/* The scatter entry b points at, or NULL when b is plain bytes. */
static const struct kafka_scatter *scatter_of(const struct kafka_writer *w,
    struct kafka_bytes b)
{
    if (w->scatter == NULL || b.ptr == NULL)
        return NULL;
    uintptr_t p = (uintptr_t)b.ptr, lo = (uintptr_t)w->scatter;
    uintptr_t hi = (uintptr_t)(w->scatter + w->scatter_count);
    if (p < lo || p >= hi)
        return NULL;
    assert((p - lo) % sizeof(struct kafka_scatter) == 0);
    return (const struct kafka_scatter *)b.ptr;
}

void kafka_write_records(struct kafka_writer *w, struct kafka_bytes b, bool compact)
{
    const struct kafka_scatter *sc = scatter_of(w, b);
    if (sc != NULL) {
        kafka_write_records_iov(w, sc->iov, sc->iov_count, compact);
        return;
    }
    if (w->iov == NULL || b.len <= 0) {
        kafka_write_bytes(w, b, compact);
        return;
    }
    if (b.ptr == NULL) {
        kafka_writer_fail(w, KAFKA_ERR_LENGTH);
        return;
    }
    write_len(w, b.len, compact, 4);
    close_segment(w);
    push_iov(w, b.ptr, (size_t)b.len);
    if (w->err == 0)
        w->external_bytes += (size_t)b.len;
}

void kafka_write_array_len(struct kafka_writer *w, int32_t count, bool compact)
{
    write_len(w, count, compact, 4);
}

/* ---- arena ----------------------------------------------------------------------------- */

void kafka_arena_init(struct kafka_arena *a, void *mem, size_t cap_bytes)
{
    assert(mem != NULL || cap_bytes == 0);
    a->base = mem;
    a->cap_bytes = cap_bytes;
    a->used_bytes = 0;
}

void kafka_arena_reset(struct kafka_arena *a)
{
    a->used_bytes = 0;
}

void *kafka_arena_alloc(struct kafka_arena *a, size_t count, size_t elem_size, size_t align)
{
    assert(align > 0 && (align & (align - 1)) == 0);
    assert(a->used_bytes <= a->cap_bytes);
    if (elem_size != 0 && count > SIZE_MAX / elem_size)
        return NULL;
    size_t size_bytes = count * elem_size;
    uintptr_t at = (uintptr_t)(a->base + a->used_bytes);
    size_t pad = (size_t)((align - (at & (align - 1))) & (align - 1));
    size_t room = a->cap_bytes - a->used_bytes;
    if (pad > room || size_bytes > room - pad)
        return NULL;
    void *p = a->base + a->used_bytes + pad;
    a->used_bytes += pad + size_bytes;
    return p;
}

/* ---- views ----------------------------------------------------------------------------- */

bool kafka_uuid_is_zero(struct kafka_uuid u)
{
    for (size_t i = 0; i < sizeof(u.bytes); i++)
        if (u.bytes[i] != 0)
            return false;
    return true;
}

bool kafka_str_equals(struct kafka_str a, struct kafka_str b)
{
    if (a.len != b.len)
        return false;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

bool kafka_str_equals_cstr(struct kafka_str s, const char *cstr)
{
    assert(cstr != NULL);
    size_t n = strlen(cstr);
    if (s.len < 0 || (size_t)s.len != n)
        return false;
    return n == 0 || memcmp(s.ptr, cstr, n) == 0;
}

bool kafka_bytes_equals(struct kafka_bytes a, struct kafka_bytes b)
{
    if (a.len != b.len)
        return false;
    return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}

struct kafka_str kafka_str_from_cstr(const char *cstr)
{
    struct kafka_str s = { NULL, -1 };
    if (cstr != NULL) {
        size_t n = strlen(cstr);
        assert(n <= KAFKA_STRING_MAX_BYTES);
        s.ptr = cstr;
        s.len = (int32_t)n;
    }
    return s;
}
