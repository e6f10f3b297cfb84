/* group_offsets.c - committed offsets in memory, their __consumer_offsets records, and
 * the reload at boot.
 *
 * In memory: each group holds a table of its offsets sorted by (topic, partition), so a
 * lookup is a binary search and OffsetFetch of a whole group walks it in order. A commit
 * replaces an entry or inserts one (memmove); a group's table is bounded by
 * GROUP_OFFSETS_MAX_PER_GROUP. This is the control thread's slow path: entries own their
 * strings (malloc), nothing here runs on a shard.
 *
 * On disk: Kafka's record format, so Kafka tools (kafka-console-consumer with the
 * offsets formatter, kafka-dump-log) read sluice's __consumer_offsets unchanged. Every
 * field is big-endian, strings are int16 length + bytes (the non-flexible versions):
 *   offset commit key    int16 1, string group, string topic, int32 partition
 *   offset commit value  int16 3, int64 offset, int32 leader epoch, string metadata,
 *                        int64 commit timestamp
 *   group metadata key   int16 2, string group      (only its tombstone is written here)
 * A null value is a tombstone: the key is deleted (OffsetDelete, DeleteGroups, a
 * deleted topic's offsets).
 *
 * Reload: before the shards start (so no shard has the partitions open), the segment
 * files of each __consumer_offsets partition are scanned read-only with pread and the
 * record iterator, in base-offset order, and every record is replayed (last one wins,
 * tombstones delete). Scanning the files rather than opening the logs through a
 * temporary storage shard keeps the control thread off io_uring and the chunk pools,
 * and it reads exactly what recovery keeps: the scan of a partition stops at the first
 * batch whose header or CRC does not check (the preallocated zero tail, or a torn
 * write), which is where recovery ends the log when the owner shard opens it.
 *
 * Transactional commits (TxnOffsetCommit) are batches with the transactional bit: the
 * reload holds a copy of each until its producer's marker comes in the same partition
 * (COMMIT: replayed there, ABORT: dropped); what is still held at the end is handed to
 * the transaction coordinator, which finishes those transactions. */
#include "control/group_offsets.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/log.h"
#include "storage/record/control_batch.h"
#include "storage/record/records.h"

/* ---- the table -------------------------------------------------------------------- */

void group_offsets_init(struct group_offset_table *t) { memset(t, 0, sizeof *t); }

static void entry_free(struct group_offset *e) {
    free(e->topic);
    free(e->metadata);
}

void group_offsets_free(struct group_offset_table *t) {
    for (uint32_t i = 0; i < t->count; i++) entry_free(&t->items[i]);
    free(t->items);
    memset(t, 0, sizeof *t);
}

static int key_cmp(const struct group_offset *e, const char *topic, size_t topic_len,
                   int32_t partition) {
    size_t elen = strlen(e->topic);
    size_t n = elen < topic_len ? elen : topic_len;
    int c = memcmp(e->topic, topic, n);
    if (c != 0) return c;
    if (elen != topic_len) return elen < topic_len ? -1 : 1;
    if (e->partition != partition) return e->partition < partition ? -1 : 1;
    return 0;
}

/* The index of the entry, or where it would go (*found false). */
static uint32_t find_slot(const struct group_offset_table *t, const char *topic,
                          size_t topic_len, int32_t partition, bool *found) {
    uint32_t lo = 0, hi = t->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(&t->items[mid], topic, topic_len, partition);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = false;
    return lo;
}

const struct group_offset *group_offsets_get(const struct group_offset_table *t,
                                             const char *topic, size_t topic_len,
                                             int32_t partition) {
    bool found;
    uint32_t i = find_slot(t, topic, topic_len, partition, &found);
    return found ? &t->items[i] : NULL;
}

static char *dup_bytes(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (!d) return NULL;
    if (len) memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

int group_offsets_put(struct group_offset_table *t, const char *topic, size_t topic_len,
                      int32_t partition, int64_t offset, int32_t leader_epoch,
                      const char *metadata, size_t metadata_len, int64_t commit_timestamp_ms) {
    assert(topic_len <= GROUP_TOPIC_MAX_BYTES);
    char *md = dup_bytes(metadata ? metadata : "", metadata ? metadata_len : 0);
    if (!md) return -1;
    bool found;
    uint32_t i = find_slot(t, topic, topic_len, partition, &found);
    if (!found) {
        if (t->count >= GROUP_OFFSETS_MAX_PER_GROUP) goto fail;
        if (t->count == t->capacity) {
            uint32_t cap = t->capacity ? t->capacity * 2 : 16;
            struct group_offset *items = realloc(t->items, cap * sizeof items[0]);
            if (!items) goto fail;
            t->items = items;
            t->capacity = cap;
        }
        char *name = dup_bytes(topic, topic_len);
        if (!name) goto fail;
        memmove(&t->items[i + 1], &t->items[i], (t->count - i) * sizeof t->items[0]);
        t->count++;
        t->items[i] = (struct group_offset){.topic = name, .partition = partition};
    } else {
        free(t->items[i].metadata);
    }
    struct group_offset *e = &t->items[i];
    e->offset = offset;
    e->leader_epoch = leader_epoch;
    e->metadata = md;
    e->commit_timestamp_ms = commit_timestamp_ms;
    return 0;
fail:
    free(md);
    return -1;
}

static void remove_at(struct group_offset_table *t, uint32_t i) {
    assert(i < t->count);
    entry_free(&t->items[i]);
    memmove(&t->items[i], &t->items[i + 1], (t->count - i - 1) * sizeof t->items[0]);
    t->count--;
}

bool group_offsets_delete(struct group_offset_table *t, const char *topic, size_t topic_len,
                          int32_t partition) {
    bool found;
    uint32_t i = find_slot(t, topic, topic_len, partition, &found);
    if (found) remove_at(t, i);
    return found;
}

uint32_t group_offsets_delete_topic(struct group_offset_table *t, const char *topic,
                                    size_t topic_len) {
    bool found;
    uint32_t i = find_slot(t, topic, topic_len, INT32_MIN, &found);
    uint32_t removed = 0;
    while (i < t->count && strlen(t->items[i].topic) == topic_len &&
           memcmp(t->items[i].topic, topic, topic_len) == 0) {
        remove_at(t, i);
        removed++;
    }
    return removed;
}

/* ---- record encoding ------------------------------------------------------------- */

static uint8_t *put16(uint8_t *p, int16_t v) {
    p[0] = (uint8_t)((uint16_t)v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, int32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)((uint32_t)v >> (24 - 8 * i));
    return p + 4;
}

static uint8_t *put64(uint8_t *p, int64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    return p + 8;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len) {
    assert(len <= INT16_MAX);
    p = put16(p, (int16_t)len);
    if (len) memcpy(p, s, len);
    return p + len;
}

size_t group_record_offset_key_bytes(size_t group_len, size_t topic_len) {
    return 2 + 2 + group_len + 2 + topic_len + 4;
}

size_t group_record_offset_value_bytes(size_t metadata_len) {
    return 2 + 8 + 4 + 2 + metadata_len + 8;
}

void group_record_offset_key_write(uint8_t *out, const char *group, size_t group_len,
                                   const char *topic, size_t topic_len, int32_t partition) {
    uint8_t *p = put16(out, GROUP_KEY_OFFSET_COMMIT);
    p = put_str(p, group, group_len);
    p = put_str(p, topic, topic_len);
    put32(p, partition);
}

void group_record_offset_value_write(uint8_t *out, int64_t offset, int32_t leader_epoch,
                                     const char *metadata, size_t metadata_len,
                                     int64_t commit_timestamp_ms) {
    uint8_t *p = put16(out, 3);
    p = put64(p, offset);
    p = put32(p, leader_epoch);
    p = put_str(p, metadata, metadata_len);
    put64(p, commit_timestamp_ms);
}

size_t group_record_group_key_bytes(size_t group_len) { return 2 + 2 + group_len; }

void group_record_group_key_write(uint8_t *out, const char *group, size_t group_len) {
    put_str(put16(out, GROUP_KEY_GROUP_METADATA), group, group_len);
}

/* ---- record decoding ------------------------------------------------------------- */

struct cursor {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get_be(struct cursor *c, int bytes) {
    if (c->bad || c->end - c->p < bytes) {
        c->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | c->p[i];
    c->p += bytes;
    return v;
}

static const char *get_str(struct cursor *c, uint16_t *len) {
    int16_t n = (int16_t)get_be(c, 2);
    if (c->bad || n < 0 || c->end - c->p < n) {
        c->bad = true;
        *len = 0;
        return NULL;
    }
    const char *s = (const char *)c->p;
    c->p += n;
    *len = (uint16_t)n;
    return s;
}

/* Offset commit values: v0 (offset, metadata, timestamp), v1 (+ expire timestamp),
 * v2 (as v0), v3 (+ leader epoch). v4 is flexible (tagged fields after): sluice never
 * writes it and skips such records. */
static int decode_offset_value(struct cursor *c, struct group_record *out) {
    int16_t version = (int16_t)get_be(c, 2);
    if (version < 0 || version > 3) return -1;
    out->offset = (int64_t)get_be(c, 8);
    out->leader_epoch = version >= 3 ? (int32_t)get_be(c, 4) : -1;
    out->metadata = get_str(c, &out->metadata_len);
    out->commit_timestamp_ms = (int64_t)get_be(c, 8);
    if (version == 1) (void)get_be(c, 8);
    return c->bad ? -1 : 0;
}

int group_record_decode(const uint8_t *key, int32_t key_len, const uint8_t *value,
                        int32_t value_len, struct group_record *out) {
    memset(out, 0, sizeof *out);
    if (!key || key_len < 2) return -1;
    struct cursor k = {key, key + key_len, false};
    out->key_version = (int16_t)get_be(&k, 2);
    if (out->key_version != 0 && out->key_version != GROUP_KEY_OFFSET_COMMIT &&
        out->key_version != GROUP_KEY_GROUP_METADATA)
        return -1;
    if (out->key_version == 0) out->key_version = GROUP_KEY_OFFSET_COMMIT; /* same layout */
    out->group = get_str(&k, &out->group_len);
    if (out->key_version == GROUP_KEY_OFFSET_COMMIT) {
        out->topic = get_str(&k, &out->topic_len);
        out->partition = (int32_t)get_be(&k, 4);
    }
    if (k.bad) return -1;
    out->tombstone = value_len < 0;
    if (out->tombstone || out->key_version != GROUP_KEY_OFFSET_COMMIT) return 0;
    struct cursor v = {value, value + value_len, false};
    return decode_offset_value(&v, out);
}

/* ---- coordinator partition ------------------------------------------------------- */

/* Java's String.hashCode over UTF-16 code units: decode UTF-8; an invalid byte counts
 * as itself (Java would have replaced it, but Kafka group ids are valid strings). */
static int32_t java_string_hash(const char *s, size_t len) {
    uint32_t h = 0;
    const uint8_t *p = (const uint8_t *)s, *end = p + len;
    while (p < end) {
        uint32_t cp = *p++;
        int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
        if (extra > 0 && end - p >= extra) {
            cp &= 0x3Fu >> extra;
            for (int i = 0; i < extra; i++) cp = cp << 6 | (*p++ & 0x3Fu);
        }
        if (cp >= 0x10000) { /* a surrogate pair */
            cp -= 0x10000;
            h = 31 * h + (0xD800 + (cp >> 10));
            h = 31 * h + (0xDC00 + (cp & 0x3FF));
        } else {
            h = 31 * h + cp;
        }
    }
    return (int32_t)h;
}

int32_t group_offsets_partition_for(const char *group, size_t group_len, int32_t partitions) {
    assert(partitions > 0);
    int32_t h = java_string_hash(group, group_len);
    /* Kafka's Utils.abs: INT32_MIN maps to 0, not to itself. */
    int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    return a % partitions;
}

/* ---- reload at boot ---------------------------------------------------------------- */

#define LOAD_MAX_SEGMENTS 4096u
#define LOAD_MAX_BATCH_BYTES (16u << 20)

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Base offsets of the segment files in dir, sorted. Count, or -1 (no such dir: 0). */
static long list_segments(const char *dir, int64_t *bases, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len != 24 || strcmp(de->d_name + 20, ".log") != 0) continue;
        char *end;
        long long base = strtoll(de->d_name, &end, 10);
        if (end != de->d_name + 20 || (size_t)n >= cap) continue;
        bases[n++] = base;
    }
    closedir(d);
    qsort(bases, (size_t)n, sizeof bases[0], cmp_i64);
    return n;
}

/* Replay one uncompressed batch's records. */
static long replay_batch(const uint8_t *batch, size_t len, group_record_apply_fn apply,
                         void *arg) {
    struct record_iter it;
    if (record_iter_init(&it, batch, len, NULL, NULL, 0, RECORD_ITER_SKIP_CRC) != RECORD_OK)
        return 0; /* compressed or odd: not something sluice writes here */
    if (it.header.attributes & RECORD_ATTR_CONTROL) return 0;
    long applied = 0;
    struct record_view r;
    while (record_iter_next(&it, &r)) {
        struct group_record rec;
        if (group_record_decode(r.key.data, r.key.len, r.value.data, r.value.len, &rec) != 0)
            continue;
        apply(arg, &rec);
        applied++;
    }
    return applied;
}

/* Scan one segment file; false when it ended early (a torn tail: stop the partition). */
static bool scan_segment(const char *path, int32_t partition, uint8_t **buf, size_t *buf_cap,
                         group_log_batch_fn fn, void *arg, long *batches) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    off_t pos = 0;
    bool clean = true;
    for (;;) {
        uint8_t head[RECORD_BATCH_HEADER_BYTES];
        ssize_t n = pread(fd, head, sizeof head, pos);
        if (n != (ssize_t)sizeof head) break; /* the end */
        int32_t blen = (int32_t)((uint32_t)head[8] << 24 | (uint32_t)head[9] << 16 |
                                 (uint32_t)head[10] << 8 | head[11]);
        if (blen <= 0) break; /* zero fill: the log ends here */
        size_t total = RECORD_BATCH_OVERHEAD_BYTES + (size_t)blen;
        if (total > LOAD_MAX_BATCH_BYTES || total < RECORD_BATCH_HEADER_BYTES) {
            clean = false;
            break;
        }
        if (total > *buf_cap) {
            uint8_t *nb = realloc(*buf, total);
            if (!nb) {
                clean = false;
                break;
            }
            *buf = nb;
            *buf_cap = total;
        }
        if (pread(fd, *buf, total, pos) != (ssize_t)total) {
            clean = false;
            break;
        }
        struct record_batch_header h;
        if (record_batch_validate(*buf, total, &h) != RECORD_OK) {
            clean = false;
            break;
        }
        fn(arg, partition, *buf, total, &h);
        (*batches)++;
        pos += (off_t)total;
    }
    close(fd);
    return clean;
}

long group_log_scan(const char *data_dir, const char *topic, int32_t partitions,
                    group_log_batch_fn fn, void *arg, char *err, size_t err_bytes) {
    int64_t *bases = malloc(LOAD_MAX_SEGMENTS * sizeof bases[0]);
    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    long batches = 0;
    if (!bases) {
        snprintf(err, err_bytes, "%s: out of memory", topic);
        return -1;
    }
    for (int32_t p = 0; p < partitions; p++) {
        char dir[4096], path[4200];
        snprintf(dir, sizeof dir, "%s/%s-%d", data_dir, topic, p);
        long n = list_segments(dir, bases, LOAD_MAX_SEGMENTS);
        if (n < 0) {
            snprintf(err, err_bytes, "%s: cannot list %s: %s", topic, dir, strerror(errno));
            batches = -1;
            break;
        }
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%020" PRId64 ".log", dir, bases[i]);
            if (!scan_segment(path, p, &buf, &buf_cap, fn, arg, &batches)) {
                log_warn("internal_log_scan_stopped", "file=%s", path);
                break;
            }
        }
    }
    free(buf);
    free(bases);
    return batches;
}

/* Transactional offset commits seen at load whose marker has not come yet: copies of
 * their batches per (partition, producer id), bounded by LOAD_MAX_PENDING_BYTES. */
#define LOAD_MAX_PENDING 4096u
#define LOAD_MAX_PENDING_BYTES (64u << 20)

struct pending_batch {
    int32_t partition;
    int64_t producer_id;
    int16_t producer_epoch;
    uint8_t *bytes;
    size_t len;
};

struct load_state {
    group_record_apply_fn apply;
    group_record_pending_fn pending;
    void *arg;
    long applied;
    struct pending_batch *held;
    uint32_t held_count;
    size_t held_bytes;
};

static void hold_batch(struct load_state *s, int32_t partition, const uint8_t *batch, size_t len,
                       const struct record_batch_header *h) {
    uint8_t *copy = s->held_count < LOAD_MAX_PENDING &&
                            s->held_bytes + len <= LOAD_MAX_PENDING_BYTES
                        ? malloc(len) : NULL;
    if (!copy) {
        log_warn("group_offsets_txn_dropped", "partition=%d producer_id=%" PRId64, partition,
                 h->producer_id);
        return;
    }
    memcpy(copy, batch, len);
    s->held[s->held_count++] = (struct pending_batch){partition, h->producer_id,
                                                      h->producer_epoch, copy, len};
    s->held_bytes += len;
}

/* A marker for producer_id on partition: replay (commit) or drop (abort) its held batches,
 * in the order they were written. */
static void end_held(struct load_state *s, int32_t partition, int64_t producer_id, bool commit) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->held_count; i++) {
        struct pending_batch *b = &s->held[i];
        if (b->partition != partition || b->producer_id != producer_id) {
            s->held[kept++] = *b;
            continue;
        }
        if (commit) s->applied += replay_batch(b->bytes, b->len, s->apply, s->arg);
        s->held_bytes -= b->len;
        free(b->bytes);
    }
    s->held_count = kept;
}

static void load_batch(void *arg, int32_t partition, const uint8_t *batch, size_t len,
                       const struct record_batch_header *h) {
    struct load_state *s = arg;
    if (h->attributes & RECORD_ATTR_CONTROL) {
        int type = control_batch_type(batch, len);
        if (type == CONTROL_TYPE_COMMIT || type == CONTROL_TYPE_ABORT)
            end_held(s, partition, h->producer_id, type == CONTROL_TYPE_COMMIT);
        return;
    }
    if (h->attributes & RECORD_ATTR_TRANSACTIONAL) {
        hold_batch(s, partition, batch, len, h);
        return;
    }
    s->applied += replay_batch(batch, len, s->apply, s->arg);
}

/* Batches still open at the end of the log: their transactions are for the transaction
 * coordinator to finish (its reload re-sends the markers). */
static void hand_over_pending(struct load_state *s) {
    for (uint32_t i = 0; i < s->held_count; i++) {
        struct pending_batch *b = &s->held[i];
        struct record_iter it;
        if (s->pending &&
            record_iter_init(&it, b->bytes, b->len, NULL, NULL, 0, RECORD_ITER_SKIP_CRC) ==
                RECORD_OK) {
            struct record_view r;
            while (record_iter_next(&it, &r)) {
                struct group_record rec;
                if (group_record_decode(r.key.data, r.key.len, r.value.data, r.value.len,
                                        &rec) == 0)
                    s->pending(s->arg, b->producer_id, b->producer_epoch, &rec);
            }
        }
        free(b->bytes);
    }
    s->held_count = 0;
    s->held_bytes = 0;
}

long group_offsets_load_txn(const char *data_dir, int32_t partitions, group_record_apply_fn apply,
                            group_record_pending_fn pending, void *arg, char *err,
                            size_t err_bytes) {
    struct load_state s = {.apply = apply, .pending = pending, .arg = arg};
    s.held = calloc(LOAD_MAX_PENDING, sizeof s.held[0]);
    if (!s.held) {
        snprintf(err, err_bytes, "group offsets: out of memory");
        return -1;
    }
    long n = group_log_scan(data_dir, GROUP_OFFSETS_TOPIC, partitions, load_batch, &s, err,
                            err_bytes);
    hand_over_pending(&s);
    free(s.held);
    return n < 0 ? -1 : s.applied;
}

long group_offsets_load(const char *data_dir, int32_t partitions, group_record_apply_fn apply,
                        void *arg, char *err, size_t err_bytes) {
    return group_offsets_load_txn(data_dir, partitions, apply, NULL, arg, err, err_bytes);
}
