/* producer_state.c - the idempotent-producer table of one partition (see the header for
 * the rules, the bounds and the snapshot format).
 *
 * Entries live in one array, indexes [0, count); a removed entry is replaced by the last
 * one (its hash chain and LRU links are patched), so the array stays dense and a snapshot
 * is a walk over it. The hash chains and the LRU list hold array indexes, PRODUCER_NONE
 * ending them. */
#include "storage/producer_state.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "storage/record/crc.h"

#define PRODUCER_NONE UINT32_MAX
#define SNAPSHOT_MAGIC 0x53504c53u /* "SLPS" little-endian */
#define SNAPSHOT_VERSION 2u
#define SNAPSHOT_HEADER_BYTES 24u
#define SNAPSHOT_ENTRY_BYTES_V1 20u
#define SNAPSHOT_ENTRY_BYTES 32u
#define SNAPSHOT_BATCH_BYTES 28u
#define SNAPSHOT_ABORTED_BYTES 24u
#define SNAPSHOT_NAME_BYTES 64

/* ---------------------------------------------------------------- table */

static uint32_t bucket_of(const struct producer_state *ps, int64_t producer_id) {
    uint64_t h = (uint64_t)producer_id * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & (ps->bucket_count - 1);
}

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

static void rehash(struct producer_state *ps) {
    for (uint32_t b = 0; b < ps->bucket_count; b++) ps->buckets[b] = PRODUCER_NONE;
    for (uint32_t i = 0; i < ps->count; i++) {
        uint32_t b = bucket_of(ps, ps->entries[i].producer_id);
        ps->entries[i].hash_next = ps->buckets[b];
        ps->buckets[b] = i;
    }
}

/* Resize to new_capacity entries (>= count). Returns 0 or -ENOMEM (state unchanged). */
static int resize(struct producer_state *ps, uint32_t new_capacity) {
    assert(new_capacity >= ps->count && new_capacity <= ps->max_producers);
    uint32_t bucket_count = pow2_at_least(new_capacity);
    struct producer_entry *e = realloc(ps->entries, new_capacity * sizeof *e);
    if (!e) return -ENOMEM;
    ps->entries = e;
    uint32_t *b = realloc(ps->buckets, bucket_count * sizeof *b);
    if (!b) return -ENOMEM; /* entries grew; capacity stays: still consistent */
    ps->buckets = b;
    ps->bucket_count = bucket_count;
    ps->capacity = new_capacity;
    rehash(ps);
    return 0;
}

int producer_state_init(struct producer_state *ps, uint32_t max_producers, int64_t expiration_ms) {
    assert(max_producers >= 1);
    memset(ps, 0, sizeof *ps);
    ps->max_producers = max_producers;
    ps->expiration_ms = expiration_ms;
    ps->lru_head = ps->lru_tail = PRODUCER_NONE;
    ps->oldest_txn_offset = -1;
    uint32_t cap = max_producers < PRODUCER_STATE_INITIAL_CAPACITY ? max_producers
                                                                   : PRODUCER_STATE_INITIAL_CAPACITY;
    return resize(ps, cap);
}

void producer_state_free(struct producer_state *ps) {
    free(ps->entries);
    free(ps->buckets);
    memset(ps, 0, sizeof *ps);
}

void producer_state_clear(struct producer_state *ps) {
    ps->count = 0;
    ps->open_txns = 0;
    ps->oldest_txn_offset = -1;
    ps->lru_head = ps->lru_tail = PRODUCER_NONE;
    for (uint32_t b = 0; b < ps->bucket_count; b++) ps->buckets[b] = PRODUCER_NONE;
}

static uint32_t find_index(const struct producer_state *ps, int64_t producer_id) {
    uint32_t i = ps->buckets[bucket_of(ps, producer_id)];
    for (uint32_t steps = 0; i != PRODUCER_NONE; steps++) {
        assert(steps <= ps->count);
        if (ps->entries[i].producer_id == producer_id) return i;
        i = ps->entries[i].hash_next;
    }
    return PRODUCER_NONE;
}

const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id) {
    uint32_t i = find_index(ps, producer_id);
    return i == PRODUCER_NONE ? NULL : &ps->entries[i];
}

static void lru_unlink(struct producer_state *ps, uint32_t i) {
    struct producer_entry *e = &ps->entries[i];
    if (e->lru_prev != PRODUCER_NONE) ps->entries[e->lru_prev].lru_next = e->lru_next;
    else ps->lru_head = e->lru_next;
    if (e->lru_next != PRODUCER_NONE) ps->entries[e->lru_next].lru_prev = e->lru_prev;
    else ps->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = PRODUCER_NONE;
}

static void lru_push_front(struct producer_state *ps, uint32_t i) {
    struct producer_entry *e = &ps->entries[i];
    e->lru_prev = PRODUCER_NONE;
    e->lru_next = ps->lru_head;
    if (ps->lru_head != PRODUCER_NONE) ps->entries[ps->lru_head].lru_prev = i;
    else ps->lru_tail = i;
    ps->lru_head = i;
}

/* Unlink entry i from its hash chain. */
static void hash_unlink(struct producer_state *ps, uint32_t i) {
    uint32_t *pp = &ps->buckets[bucket_of(ps, ps->entries[i].producer_id)];
    while (*pp != i) {
        assert(*pp != PRODUCER_NONE);
        pp = &ps->entries[*pp].hash_next;
    }
    *pp = ps->entries[i].hash_next;
}

/* Recompute the oldest open transaction (after the oldest one closed). */
static void txn_rescan_oldest(struct producer_state *ps) {
    ps->oldest_txn_offset = -1;
    uint32_t seen = 0;
    for (uint32_t i = 0; i < ps->count && seen < ps->open_txns; i++) {
        int64_t f = ps->entries[i].txn_first_offset;
        if (f < 0) continue;
        seen++;
        if (ps->oldest_txn_offset < 0 || f < ps->oldest_txn_offset) ps->oldest_txn_offset = f;
    }
    assert(seen == ps->open_txns);
}

static void txn_open(struct producer_state *ps, struct producer_entry *e, int64_t first_offset) {
    assert(e->txn_first_offset < 0 && first_offset >= 0);
    e->txn_first_offset = first_offset;
    ps->open_txns++;
    if (ps->oldest_txn_offset < 0 || first_offset < ps->oldest_txn_offset)
        ps->oldest_txn_offset = first_offset;
}

/* Close e's open transaction (if any); returns its first offset or -1. */
static int64_t txn_close(struct producer_state *ps, struct producer_entry *e) {
    int64_t first = e->txn_first_offset;
    if (first < 0) return -1;
    assert(ps->open_txns > 0);
    e->txn_first_offset = -1;
    ps->open_txns--;
    if (first == ps->oldest_txn_offset) txn_rescan_oldest(ps);
    return first;
}

/* Remove entry i; the last entry moves into its slot. */
static void remove_entry(struct producer_state *ps, uint32_t i) {
    assert(i < ps->count);
    (void)txn_close(ps, &ps->entries[i]);
    hash_unlink(ps, i);
    lru_unlink(ps, i);
    uint32_t last = ps->count - 1;
    if (i != last) { /* move the last entry into slot i, patching who points at it */
        ps->entries[i] = ps->entries[last];
        struct producer_entry *e = &ps->entries[i];
        uint32_t *pp = &ps->buckets[bucket_of(ps, e->producer_id)];
        while (*pp != last) {
            assert(*pp != PRODUCER_NONE);
            pp = &ps->entries[*pp].hash_next;
        }
        *pp = i;
        if (e->lru_prev != PRODUCER_NONE) ps->entries[e->lru_prev].lru_next = i;
        else ps->lru_head = i;
        if (e->lru_next != PRODUCER_NONE) ps->entries[e->lru_next].lru_prev = i;
        else ps->lru_tail = i;
    }
    ps->count--;
}

/* A new entry for producer_id, evicting the least recently used when full. */
static uint32_t add_entry(struct producer_state *ps, int64_t producer_id) {
    if (ps->count == ps->capacity && ps->capacity < ps->max_producers) {
        uint32_t want = ps->capacity * 2 > ps->max_producers ? ps->max_producers : ps->capacity * 2;
        (void)resize(ps, want); /* on -ENOMEM: evict below instead */
    }
    if (ps->count == ps->capacity) { /* the LRU entry with no open transaction */
        assert(ps->lru_tail != PRODUCER_NONE);
        uint32_t victim = ps->lru_tail;
        for (uint32_t k = 0; k < ps->count && victim != PRODUCER_NONE; k++) {
            if (ps->entries[victim].txn_first_offset < 0) break;
            victim = ps->entries[victim].lru_prev;
        }
        if (victim == PRODUCER_NONE) victim = ps->lru_tail; /* all open: the LRU anyway */
        remove_entry(ps, victim);
        ps->evictions++;
    }
    uint32_t i = ps->count++;
    struct producer_entry *e = &ps->entries[i];
    memset(e, 0, sizeof *e);
    e->producer_id = producer_id;
    e->epoch = -1;
    e->txn_first_offset = -1;
    e->coordinator_epoch = -1;
    uint32_t b = bucket_of(ps, producer_id);
    e->hash_next = ps->buckets[b];
    ps->buckets[b] = i;
    e->lru_prev = e->lru_next = PRODUCER_NONE;
    lru_push_front(ps, i);
    return i;
}

/* ---------------------------------------------------------------- rules */

int16_t producer_verdict_kafka_code(enum producer_verdict v) {
    switch (v) {
    case PRODUCER_OUT_OF_ORDER: return 45;
    case PRODUCER_FENCED: return 47;
    default: return 0;
    }
}

int32_t producer_last_seq(int32_t first_seq, int32_t last_offset_delta) {
    assert(first_seq >= 0 && last_offset_delta >= 0);
    if (first_seq > INT32_MAX - last_offset_delta)
        return last_offset_delta - (INT32_MAX - first_seq) - 1;
    return first_seq + last_offset_delta;
}

static bool in_sequence(int32_t last_seq, int32_t next_seq) {
    return (int64_t)next_seq == (int64_t)last_seq + 1 || (next_seq == 0 && last_seq == INT32_MAX);
}

static const struct producer_batch *kept_batch(const struct producer_entry *e, uint32_t k) {
    assert(k < e->batch_count);
    return &e->batches[(e->batch_head + k) % PRODUCER_BATCHES_KEPT];
}

enum producer_verdict producer_state_check(const struct producer_state *ps,
                                           const struct producer_append *a, int64_t now_ms,
                                           struct producer_batch *dup) {
    assert(a->producer_id >= 0);
    uint32_t i = find_index(ps, a->producer_id);
    if (i == PRODUCER_NONE) return PRODUCER_APPEND; /* KIP-360: any sequence */
    const struct producer_entry *e = &ps->entries[i];
    if (ps->expiration_ms > 0 && now_ms - e->last_used_ms > ps->expiration_ms &&
        e->txn_first_offset < 0)
        return PRODUCER_APPEND; /* expired: as unknown (never with a transaction open) */
    if (a->epoch < e->epoch) return PRODUCER_FENCED;
    if (a->epoch > e->epoch) return a->first_seq == 0 ? PRODUCER_APPEND : PRODUCER_OUT_OF_ORDER;
    int32_t last_seq = producer_last_seq(a->first_seq, a->last_offset_delta);
    for (uint32_t k = 0; k < e->batch_count; k++) {
        const struct producer_batch *b = kept_batch(e, k);
        if (b->first_seq == a->first_seq && b->last_seq == last_seq) {
            if (dup) *dup = *b;
            return PRODUCER_DUPLICATE;
        }
    }
    if (e->batch_count == 0) /* epoch known, no sequence yet: it starts at 0 */
        return a->first_seq == 0 ? PRODUCER_APPEND : PRODUCER_OUT_OF_ORDER;
    const struct producer_batch *newest = kept_batch(e, e->batch_count - 1u);
    return in_sequence(newest->last_seq, a->first_seq) ? PRODUCER_APPEND : PRODUCER_OUT_OF_ORDER;
}

int producer_state_update(struct producer_state *ps, const struct producer_append *a,
                          int64_t base_offset, int64_t now_ms) {
    assert(a->producer_id >= 0 && a->last_offset_delta >= 0);
    uint32_t i = find_index(ps, a->producer_id);
    if (i == PRODUCER_NONE) i = add_entry(ps, a->producer_id);
    struct producer_entry *e = &ps->entries[i];
    if (a->epoch != e->epoch) { /* a new epoch starts a new sequence */
        e->epoch = a->epoch;
        e->batch_count = 0;
        e->batch_head = 0;
    }
    if (e->batch_count == PRODUCER_BATCHES_KEPT) { /* drop the oldest */
        e->batch_head = (uint8_t)((e->batch_head + 1) % PRODUCER_BATCHES_KEPT);
        e->batch_count--;
    }
    struct producer_batch *b = &e->batches[(e->batch_head + e->batch_count) % PRODUCER_BATCHES_KEPT];
    b->first_seq = a->first_seq;
    b->last_seq = producer_last_seq(a->first_seq, a->last_offset_delta);
    b->base_offset = base_offset;
    b->last_offset_delta = a->last_offset_delta;
    b->max_timestamp_ms = a->max_timestamp_ms;
    e->batch_count++;
    e->last_used_ms = now_ms;
    if (a->transactional && e->txn_first_offset < 0) txn_open(ps, e, base_offset);
    lru_unlink(ps, i);
    lru_push_front(ps, i);
    return 0;
}

void producer_state_begin_txn(struct producer_state *ps, int64_t producer_id, int16_t epoch,
                              int64_t first_offset, int64_t now_ms) {
    assert(producer_id >= 0 && first_offset >= 0);
    uint32_t i = find_index(ps, producer_id);
    if (i == PRODUCER_NONE) {
        i = add_entry(ps, producer_id);
        ps->entries[i].epoch = epoch;
    }
    struct producer_entry *e = &ps->entries[i];
    e->last_used_ms = now_ms;
    if (e->txn_first_offset < 0) txn_open(ps, e, first_offset);
    lru_unlink(ps, i);
    lru_push_front(ps, i);
}

enum producer_verdict producer_state_check_marker(const struct producer_state *ps,
                                                  int64_t producer_id, int16_t epoch,
                                                  int64_t now_ms) {
    uint32_t i = find_index(ps, producer_id);
    if (i == PRODUCER_NONE) return PRODUCER_APPEND;
    const struct producer_entry *e = &ps->entries[i];
    if (ps->expiration_ms > 0 && now_ms - e->last_used_ms > ps->expiration_ms &&
        e->txn_first_offset < 0)
        return PRODUCER_APPEND;
    return epoch < e->epoch ? PRODUCER_FENCED : PRODUCER_APPEND;
}

int64_t producer_state_end_txn(struct producer_state *ps, int64_t producer_id, int16_t epoch,
                               int32_t coordinator_epoch, int64_t now_ms) {
    assert(producer_id >= 0);
    uint32_t i = find_index(ps, producer_id);
    if (i == PRODUCER_NONE) i = add_entry(ps, producer_id);
    struct producer_entry *e = &ps->entries[i];
    if (epoch > e->epoch) { /* a bumped epoch (abort on fencing) starts a new sequence */
        e->epoch = epoch;
        e->batch_count = 0;
        e->batch_head = 0;
    }
    e->coordinator_epoch = coordinator_epoch;
    e->last_used_ms = now_ms;
    lru_unlink(ps, i);
    lru_push_front(ps, i);
    return txn_close(ps, e);
}

/* ---------------------------------------------------------------- snapshots */

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void snapshot_name(char *out, size_t out_bytes, int64_t offset) {
    snprintf(out, out_bytes, "%020" PRId64 "%s", offset, PRODUCER_SNAPSHOT_SUFFIX);
}

static size_t snapshot_size_bytes(const struct producer_state *ps, const struct txn_log *txn) {
    size_t n = SNAPSHOT_HEADER_BYTES;
    for (uint32_t i = 0; i < ps->count; i++)
        n += SNAPSHOT_ENTRY_BYTES + ps->entries[i].batch_count * (size_t)SNAPSHOT_BATCH_BYTES;
    n += 4 + (txn ? txn->aborted_count : 0) * (size_t)SNAPSHOT_ABORTED_BYTES;
    return n;
}

static int write_all(int fd, const uint8_t *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void producer_snapshot_file_name(char *out, size_t out_bytes, int64_t offset) {
    snapshot_name(out, out_bytes, offset);
}

int producer_state_encode_snapshot(const struct producer_state *ps, const struct txn_log *txn,
                                   int64_t offset, uint8_t **out, size_t *out_bytes) {
    /* bounded: max_producers entries and TXN_ABORTED_MAX aborted transactions */
    size_t size = snapshot_size_bytes(ps, txn);
    uint8_t *buf = malloc(size);
    if (!buf) return -ENOMEM;
    uint8_t *p = buf + SNAPSHOT_HEADER_BYTES;
    for (uint32_t i = 0; i < ps->count; i++) {
        const struct producer_entry *e = &ps->entries[i];
        put_u64(p, (uint64_t)e->producer_id);
        put_u16(p + 8, (uint16_t)e->epoch);
        put_u16(p + 10, e->batch_count);
        put_u64(p + 12, (uint64_t)e->last_used_ms);
        put_u64(p + 20, (uint64_t)e->txn_first_offset);
        put_u32(p + 28, (uint32_t)e->coordinator_epoch);
        p += SNAPSHOT_ENTRY_BYTES;
        for (uint32_t k = 0; k < e->batch_count; k++) {
            const struct producer_batch *b = kept_batch(e, k);
            put_u32(p, (uint32_t)b->first_seq);
            put_u32(p + 4, (uint32_t)b->last_seq);
            put_u64(p + 8, (uint64_t)b->base_offset);
            put_u32(p + 16, (uint32_t)b->last_offset_delta);
            put_u64(p + 20, (uint64_t)b->max_timestamp_ms);
            p += SNAPSHOT_BATCH_BYTES;
        }
    }
    uint32_t aborted = txn ? txn->aborted_count : 0;
    put_u32(p, aborted);
    p += 4;
    for (uint32_t i = 0; i < aborted; i++, p += SNAPSHOT_ABORTED_BYTES) {
        const struct txn_aborted *a = txn_aborted_at(txn, i);
        put_u64(p, (uint64_t)a->producer_id);
        put_u64(p + 8, (uint64_t)a->first_offset);
        put_u64(p + 16, (uint64_t)a->last_offset);
    }
    assert((size_t)(p - buf) == size);
    put_u32(buf, SNAPSHOT_MAGIC);
    put_u16(buf + 4, SNAPSHOT_VERSION);
    put_u16(buf + 6, 0);
    put_u32(buf + 8, ps->count);
    put_u64(buf + 12, (uint64_t)offset);
    put_u32(buf + 20, crc32c(buf + SNAPSHOT_HEADER_BYTES, size - SNAPSHOT_HEADER_BYTES));
    *out = buf;
    *out_bytes = size;
    return 0;
}

int producer_state_write_snapshot(const struct producer_state *ps, const struct txn_log *txn,
                                  const char *dir, int64_t offset) {
    uint8_t *buf;
    size_t size;
    int rc = producer_state_encode_snapshot(ps, txn, offset, &buf, &size);
    if (rc < 0) return rc;
    char name[SNAPSHOT_NAME_BYTES], path[1200], tmp[1200];
    snapshot_name(name, sizeof name, offset);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = -errno;
    if (rc == 0) rc = write_all(fd, buf, size);
    if (fd >= 0 && close(fd) != 0 && rc == 0) rc = -errno;
    /* No fsync: a snapshot lost or torn by a crash fails its CRC and the log is scanned
     * from an older snapshot instead; it is an optimisation, never the only copy. */
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc != 0) (void)unlink(tmp);
    free(buf);
    return rc;
}

static int read_file(const char *path, uint8_t **out, size_t *out_bytes, size_t max_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && ((size_t)st.st_size < SNAPSHOT_HEADER_BYTES || (size_t)st.st_size > max_bytes))
        rc = -EBADMSG;
    uint8_t *buf = rc == 0 ? malloc((size_t)st.st_size) : NULL;
    if (rc == 0 && !buf) rc = -ENOMEM;
    size_t got = 0;
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0) rc = -errno;
        else if (n == 0) rc = -EBADMSG;
        else got += (size_t)n;
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_bytes = got;
    return 0;
}

/* Restore the transaction fields of a v2 entry (after its batches were replayed). */
static void restore_entry_txn(struct producer_state *ps, int64_t producer_id, int16_t epoch,
                              int64_t last_used_ms, int64_t txn_first_offset,
                              int32_t coordinator_epoch) {
    uint32_t idx = find_index(ps, producer_id);
    if (idx == PRODUCER_NONE) idx = add_entry(ps, producer_id);
    struct producer_entry *e = &ps->entries[idx];
    e->epoch = epoch;
    e->last_used_ms = last_used_ms;
    e->coordinator_epoch = coordinator_epoch;
    if (txn_first_offset >= 0 && e->txn_first_offset < 0) txn_open(ps, e, txn_first_offset);
}

/* The aborted-index section of a v2 snapshot at buf[pos..len). 0 or -EBADMSG. */
static int parse_aborted(struct txn_log *txn, const uint8_t *buf, size_t len, size_t *pos) {
    if (len - *pos < 4) return -EBADMSG;
    uint32_t count = get_u32(buf + *pos);
    *pos += 4;
    if (count > TXN_ABORTED_MAX || (len - *pos) / SNAPSHOT_ABORTED_BYTES < count)
        return -EBADMSG;
    int64_t prev_last = INT64_MIN;
    for (uint32_t i = 0; i < count; i++, *pos += SNAPSHOT_ABORTED_BYTES) {
        const uint8_t *p = buf + *pos;
        int64_t pid = (int64_t)get_u64(p), first = (int64_t)get_u64(p + 8),
                last = (int64_t)get_u64(p + 16);
        if (pid < 0 || first < 0 || first > last || last < prev_last) return -EBADMSG;
        prev_last = last;
        if (txn) (void)txn_aborted_add(txn, pid, first, last);
    }
    return 0;
}

/* Parse buf into ps (already cleared). Returns 0 or -EBADMSG. */
static int parse_snapshot(struct producer_state *ps, struct txn_log *txn, const uint8_t *buf,
                          size_t len, int64_t offset, int64_t now_ms) {
    uint16_t version = get_u16(buf + 4);
    if (get_u32(buf) != SNAPSHOT_MAGIC || (version != 1 && version != SNAPSHOT_VERSION) ||
        (int64_t)get_u64(buf + 12) != offset ||
        get_u32(buf + 20) != crc32c(buf + SNAPSHOT_HEADER_BYTES, len - SNAPSHOT_HEADER_BYTES))
        return -EBADMSG;
    size_t entry_bytes = version == 1 ? SNAPSHOT_ENTRY_BYTES_V1 : SNAPSHOT_ENTRY_BYTES;
    uint32_t count = get_u32(buf + 8);
    size_t pos = SNAPSHOT_HEADER_BYTES;
    for (uint32_t i = 0; i < count; i++) {
        if (len - pos < entry_bytes) return -EBADMSG;
        const uint8_t *p = buf + pos;
        struct producer_append a = {.producer_id = (int64_t)get_u64(p),
                                    .epoch = (int16_t)get_u16(p + 8)};
        uint16_t batches = get_u16(p + 10);
        int64_t last_used_ms = (int64_t)get_u64(p + 12);
        int64_t txn_first = version == 1 ? -1 : (int64_t)get_u64(p + 20);
        int32_t coordinator_epoch = version == 1 ? -1 : (int32_t)get_u32(p + 28);
        pos += entry_bytes;
        if (a.producer_id < 0 || batches > PRODUCER_BATCHES_KEPT || txn_first < -1 ||
            (len - pos) / SNAPSHOT_BATCH_BYTES < batches)
            return -EBADMSG;
        if (ps->expiration_ms > 0 && now_ms - last_used_ms > ps->expiration_ms &&
            txn_first < 0) {
            pos += batches * (size_t)SNAPSHOT_BATCH_BYTES; /* expired while stored */
            continue;
        }
        for (uint16_t k = 0; k < batches; k++, pos += SNAPSHOT_BATCH_BYTES) {
            p = buf + pos;
            a.first_seq = (int32_t)get_u32(p);
            a.last_offset_delta = (int32_t)get_u32(p + 16);
            a.max_timestamp_ms = (int64_t)get_u64(p + 20);
            if (a.first_seq < 0 || a.last_offset_delta < 0 ||
                producer_last_seq(a.first_seq, a.last_offset_delta) != (int32_t)get_u32(p + 4))
                return -EBADMSG;
            (void)producer_state_update(ps, &a, (int64_t)get_u64(p + 8), last_used_ms);
        }
        /* the epoch even with no batch kept, and the open transaction */
        restore_entry_txn(ps, a.producer_id, a.epoch, last_used_ms, txn_first,
                          coordinator_epoch);
    }
    if (version >= 2 && parse_aborted(txn, buf, len, &pos) != 0) return -EBADMSG;
    return pos == len ? 0 : -EBADMSG;
}

int producer_state_read_snapshot(struct producer_state *ps, struct txn_log *txn,
                                 const char *dir, int64_t offset, int64_t now_ms) {
    char name[SNAPSHOT_NAME_BYTES], path[1200];
    snapshot_name(name, sizeof name, offset);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t max_bytes = SNAPSHOT_HEADER_BYTES +
                       (size_t)ps->max_producers * (SNAPSHOT_ENTRY_BYTES +
                                                    PRODUCER_BATCHES_KEPT * SNAPSHOT_BATCH_BYTES) +
                       4 + (size_t)TXN_ABORTED_MAX * SNAPSHOT_ABORTED_BYTES;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, max_bytes);
    if (rc != 0) return rc;
    producer_state_clear(ps);
    if (txn) txn_log_clear(txn);
    rc = parse_snapshot(ps, txn, buf, len, offset, now_ms);
    if (rc != 0) {
        producer_state_clear(ps);
        if (txn) txn_log_clear(txn);
    }
    free(buf);
    return rc;
}

static bool parse_snapshot_name(const char *name, int64_t *offset) {
    size_t suffix = strlen(PRODUCER_SNAPSHOT_SUFFIX);
    if (strlen(name) != 20 + suffix || strcmp(name + 20, PRODUCER_SNAPSHOT_SUFFIX) != 0)
        return false;
    for (int i = 0; i < 20; i++)
        if (name[i] < '0' || name[i] > '9') return false;
    *offset = strtoll(name, NULL, 10);
    return true;
}

static void unlink_snapshot(const char *dir, int64_t offset) {
    char name[SNAPSHOT_NAME_BYTES], path[1200];
    snapshot_name(name, sizeof name, offset);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    (void)unlink(path);
}

int64_t producer_snapshot_latest(const char *dir, int64_t max_offset) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int64_t newest = -1, second = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) { /* pass 1: the two newest usable */
        int64_t off;
        if (!parse_snapshot_name(de->d_name, &off) || off > max_offset) continue;
        if (off > newest) {
            second = newest;
            newest = off;
        } else if (off > second) {
            second = off;
        }
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) { /* pass 2: delete the rest */
        int64_t off;
        if (!parse_snapshot_name(de->d_name, &off)) continue;
        if (off > max_offset || off < second) unlink_snapshot(dir, off);
    }
    closedir(d);
    return newest;
}
