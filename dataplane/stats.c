/* stats.c - the writer and reader helpers of the per-shard statistics (see stats.h). */
#include "dataplane/stats.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

static _Thread_local struct shard_stats *thread_stats;

/* 100 us .. 10 s, roughly 1-2.5-5 steps, then +Inf (hw/latency.h). */
const uint64_t stats_latency_bounds_us[STATS_LATENCY_BUCKETS] = LATENCY_BOUNDS_US_INIT;

void stats_request(struct shard_stats *s, int16_t api_key, uint64_t latency_us) {
    if (api_key < 0 || api_key >= STATS_API_SLOTS) return;
    unsigned b = latency_bucket(latency_us);
    assert(b < STATS_LATENCY_BUCKETS);
    stats_add(&s->requests[api_key], 1);
    stats_add(&s->latency_buckets[api_key][b], 1);
    stats_add(&s->latency_sum_us[api_key], latency_us);
}

void stats_error(struct shard_stats *s, int16_t api_key, int16_t error_code) {
    uint32_t key = ((uint32_t)(uint16_t)api_key << 16 | (uint16_t)error_code) + 1;
    unsigned start = (key * 2654435761u) % STATS_ERROR_SLOTS;
    for (unsigned n = 0; n < STATS_ERROR_SLOTS; n++) {
        struct stats_error_slot *slot = &s->errors[(start + n) % STATS_ERROR_SLOTS];
        uint32_t k = atomic_load_explicit(&slot->key, memory_order_relaxed);
        if (k == key) {
            stats_add(&slot->count, 1);
            return;
        }
        if (k == 0) { /* claim: count first, then publish the key */
            atomic_store_explicit(&slot->count, 1, memory_order_relaxed);
            atomic_store_explicit(&slot->key, key, memory_order_release);
            return;
        }
    }
    stats_add(&s->errors_dropped, 1);
}

bool stats_error_at(const struct shard_stats *s, unsigned i, int16_t *api_key,
                    int16_t *error_code, uint64_t *count) {
    assert(i < STATS_ERROR_SLOTS);
    const struct stats_error_slot *slot = &s->errors[i];
    uint32_t k = atomic_load_explicit((_Atomic uint32_t *)&slot->key, memory_order_acquire);
    if (k == 0) return false;
    k -= 1;
    *api_key = (int16_t)(uint16_t)(k >> 16);
    *error_code = (int16_t)(uint16_t)(k & 0xffff);
    *count = stats_read(&slot->count);
    return true;
}

void stats_bind_thread(struct shard_stats *s) { thread_stats = s; }

static uint32_t name_hash(const char *name, uint32_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < len; i++) h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* The topic's counters in the thread's table, claiming a slot on first use. */
static struct stats_topic_counters *topic_counters(const char *name, uint32_t len) {
    struct shard_stats *s = thread_stats;
    if (len == 0 || len >= STATS_TOPIC_NAME_BYTES) return &s->other_topics;
    uint32_t start = name_hash(name, len) & (STATS_MAX_TOPICS - 1);
    for (uint32_t n = 0; n < STATS_MAX_TOPICS; n++) {
        struct stats_topic *t = &s->topics[(start + n) & (STATS_MAX_TOPICS - 1)];
        if (!atomic_load_explicit(&t->used, memory_order_relaxed)) { /* only we write it */
            memcpy(t->name, name, len);
            t->name[len] = '\0';
            t->name_len = len;
            atomic_store_explicit(&t->used, 1, memory_order_release);
            return &t->c;
        }
        if (t->name_len == len && memcmp(t->name, name, len) == 0) return &t->c;
    }
    return &s->other_topics;
}

void stats_topic_in(const char *name, uint32_t name_len, uint64_t bytes, uint64_t messages) {
    if (!thread_stats) return;
    struct stats_topic_counters *c = topic_counters(name, name_len);
    stats_add(&c->bytes_in, bytes);
    stats_add(&c->messages_in, messages);
}

void stats_topic_out(const char *name, uint32_t name_len, uint64_t bytes, uint64_t messages) {
    if (!thread_stats) return;
    struct stats_topic_counters *c = topic_counters(name, name_len);
    stats_add(&c->bytes_out, bytes);
    stats_add(&c->messages_out, messages);
}

/* RecordBatch v2: baseOffset int64, batchLength int32 (bytes after it), ..., recordCount
 * int32 at byte 57; a batch is 12 + batchLength bytes. */
uint64_t stats_count_records(const uint8_t *buf, size_t len_bytes) {
    uint64_t records = 0;
    size_t off = 0;
    while (len_bytes - off >= 61) {
        const uint8_t *b = buf + off;
        uint32_t batch_length = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 |
                                (uint32_t)b[10] << 8 | b[11];
        if (batch_length < 49 || batch_length > len_bytes - off - 12) break;
        int32_t count = (int32_t)((uint32_t)b[57] << 24 | (uint32_t)b[58] << 16 |
                                  (uint32_t)b[59] << 8 | b[60]);
        if (count > 0) records += (uint64_t)count;
        off += 12 + (size_t)batch_length;
    }
    return records;
}

static uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static void store_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

void stats_partitions_begin(struct shard_stats *s) {
    uint32_t seq = atomic_load_explicit(&s->partitions_seq, memory_order_relaxed);
    assert(seq % 2 == 0);
    atomic_store_explicit(&s->partitions_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* odd before any entry changes */
}

void stats_partition_put(struct shard_stats *s, uint32_t index, const uint8_t topic_id[16],
                         int32_t partition, int64_t high_watermark, int64_t log_start_offset,
                         int64_t size_bytes) {
    assert(index < STATS_MAX_PARTITIONS);
    struct stats_partition *p = &s->partitions[index];
    atomic_store_explicit(&p->id_hi, load_be64(topic_id), memory_order_relaxed);
    atomic_store_explicit(&p->id_lo, load_be64(topic_id + 8), memory_order_relaxed);
    atomic_store_explicit(&p->partition, partition, memory_order_relaxed);
    atomic_store_explicit(&p->high_watermark, high_watermark, memory_order_relaxed);
    atomic_store_explicit(&p->log_start_offset, log_start_offset, memory_order_relaxed);
    atomic_store_explicit(&p->size_bytes, size_bytes, memory_order_relaxed);
}

void stats_partitions_end(struct shard_stats *s, uint32_t count, uint64_t unpublished) {
    assert(count <= STATS_MAX_PARTITIONS);
    atomic_store_explicit(&s->partition_count, count, memory_order_relaxed);
    atomic_store_explicit(&s->partitions_unpublished, unpublished, memory_order_relaxed);
    uint32_t seq = atomic_load_explicit(&s->partitions_seq, memory_order_relaxed);
    atomic_store_explicit(&s->partitions_seq, seq + 1, memory_order_release); /* even: done */
}

int stats_partitions_read(const struct shard_stats *cs, struct stats_partition_copy *out) {
    struct shard_stats *s = (struct shard_stats *)cs; /* atomics are only loaded */
    for (int attempt = 0; attempt < 8; attempt++) {
        uint32_t seq = atomic_load_explicit(&s->partitions_seq, memory_order_acquire);
        if (seq % 2 != 0) continue;
        uint32_t count = atomic_load_explicit(&s->partition_count, memory_order_relaxed);
        if (count > STATS_MAX_PARTITIONS) count = STATS_MAX_PARTITIONS;
        for (uint32_t i = 0; i < count; i++) {
            struct stats_partition *p = &s->partitions[i];
            store_be64(out[i].topic_id, atomic_load_explicit(&p->id_hi, memory_order_relaxed));
            store_be64(out[i].topic_id + 8, atomic_load_explicit(&p->id_lo, memory_order_relaxed));
            out[i].partition = (int32_t)atomic_load_explicit(&p->partition, memory_order_relaxed);
            out[i].high_watermark = atomic_load_explicit(&p->high_watermark, memory_order_relaxed);
            out[i].log_start_offset =
                atomic_load_explicit(&p->log_start_offset, memory_order_relaxed);
            out[i].size_bytes = atomic_load_explicit(&p->size_bytes, memory_order_relaxed);
        }
        atomic_thread_fence(memory_order_acquire); /* the copy before the re-check */
        if (atomic_load_explicit(&s->partitions_seq, memory_order_relaxed) == seq)
            return (int)count;
    }
    return -1;
}

void stats_error_here(int16_t api_key, int16_t error_code) {
    if (thread_stats) stats_error(thread_stats, api_key, error_code);
}
