/* stats.h - per-shard counters and histograms for the metrics endpoint.
 *
 * Ownership: one struct shard_stats per shard, written ONLY by that shard's thread and
 * read by the control thread while the shard runs. No lock, no atomic read-modify-write
 * on the data path: every field is an _Atomic uint64_t that its single writer updates
 * with a relaxed load + relaxed store (a plain add on x86), and the reader loads with
 * relaxed order. A reader may see one counter a little ahead of another (a request
 * counted before its latency bucket); each value is itself exact and never torn.
 * Counters only grow (Prometheus counters); gauges are derived by the reader
 * (open connections = accepted - closed, summed over shards).
 *
 * Errors by (api, error code) live in a small open-addressing table: the shard claims a
 * slot by storing its key with release order after the slot's count, the reader loads the
 * key with acquire order. A full table counts the rest in errors_dropped (bounded memory,
 * and never a reason to allocate).
 *
 * Latency histograms: per API, non-cumulative buckets with fixed upper bounds
 * (stats_latency_bounds_us); the reader makes them cumulative for Prometheus.
 *
 * Topics: bytes and messages in (produced, on the partition's owner shard) and out
 * (fetched) per topic name, in a bounded open-addressing table per shard
 * (STATS_MAX_TOPICS); the shard writes the name, then publishes the slot with a release
 * store of `used`. A topic that finds the table full is counted under other_topics.
 * The hooks sit deep in the router, so the shard's stats are reached through a
 * thread-local pointer the shard thread binds once at start (stats_bind_thread);
 * threads that never bind (unit tests, control) count nothing.
 *
 * Partitions: once a second the shard republishes a table of its open partitions (topic
 * id, partition, high watermark, log start offset, bytes on disk), at most
 * STATS_MAX_PARTITIONS, under a sequence lock: partitions_seq is odd while the shard
 * rewrites the table; a reader copies it and keeps the copy only if the sequence was even
 * and unchanged across the copy (every field is a relaxed atomic, so a torn copy is
 * detected, never undefined). */
#ifndef SLUICE_DATAPLANE_STATS_H
#define SLUICE_DATAPLANE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/latency.h"

#define STATS_API_SLOTS 72           /* Kafka api keys 0..71 */
#define STATS_LATENCY_BUCKETS LATENCY_BUCKETS /* hw/latency.h; the last one is +Inf */
#define STATS_ERROR_SLOTS 128
#define STATS_MAX_TOPICS 256          /* per shard; a power of two */
#define STATS_TOPIC_NAME_BYTES 256    /* Kafka topic names have at most 249 bytes */
#define STATS_MAX_PARTITIONS 4096     /* published per shard; the rest are counted */

struct stats_error_slot {
    _Atomic uint32_t key; /* 0 empty; else ((uint32_t)api << 16 | (uint16_t)code) + 1 */
    _Atomic uint64_t count;
};

struct stats_topic_counters {
    _Atomic uint64_t bytes_in, messages_in, bytes_out, messages_out;
};

struct stats_topic {
    _Atomic uint32_t used; /* 1 once name is set (release) */
    uint32_t name_len;
    char name[STATS_TOPIC_NAME_BYTES];
    struct stats_topic_counters c;
};

struct stats_partition {
    _Atomic uint64_t id_hi, id_lo; /* topic id, big-endian halves */
    _Atomic int64_t partition, high_watermark, log_start_offset, size_bytes;
};

/* A reader's copy of one published partition. */
struct stats_partition_copy {
    uint8_t topic_id[16];
    int32_t partition;
    int64_t high_watermark, log_start_offset, size_bytes;
};

struct shard_stats {
    _Atomic uint64_t requests[STATS_API_SLOTS];
    _Atomic uint64_t latency_buckets[STATS_API_SLOTS][STATS_LATENCY_BUCKETS];
    _Atomic uint64_t latency_sum_us[STATS_API_SLOTS];
    struct stats_error_slot errors[STATS_ERROR_SLOTS];
    _Atomic uint64_t errors_dropped;
    _Atomic uint64_t connections_accepted;
    _Atomic uint64_t connections_closed;
    _Atomic uint64_t uring_submitted;  /* SQEs handed to the kernel */
    _Atomic uint64_t uring_completed;  /* CQEs reaped */
    struct stats_topic topics[STATS_MAX_TOPICS];
    struct stats_topic_counters other_topics; /* topics that found the table full */
    /* storage, copied from the shard's batch cache and logs with the partition table */
    _Atomic uint64_t cache_bytes, cache_budget_bytes, cache_hits, cache_misses,
        cache_evictions;
    _Atomic uint64_t partitions_failed; /* open partitions failed by a storage error */
    _Atomic uint64_t disk_write_buckets[STATS_LATENCY_BUCKETS], disk_write_sum_us;
    _Atomic uint64_t disk_fsync_buckets[STATS_LATENCY_BUCKETS], disk_fsync_sum_us;
    _Atomic uint64_t storage_io_errors;
    _Atomic uint32_t partitions_seq;
    _Atomic uint32_t partition_count;
    _Atomic uint64_t partitions_unpublished; /* open beyond STATS_MAX_PARTITIONS */
    struct stats_partition partitions[STATS_MAX_PARTITIONS];
} __attribute__((aligned(64)));

/* Upper bounds of the latency buckets in microseconds; the last is UINT64_MAX (+Inf). */
extern const uint64_t stats_latency_bounds_us[STATS_LATENCY_BUCKETS];

static inline void stats_add(_Atomic uint64_t *counter, uint64_t n) {
    uint64_t v = atomic_load_explicit(counter, memory_order_relaxed);
    atomic_store_explicit(counter, v + n, memory_order_relaxed);
}

static inline uint64_t stats_read(const _Atomic uint64_t *counter) {
    return atomic_load_explicit((_Atomic uint64_t *)counter, memory_order_relaxed);
}

/* A request answered (or deferred and then answered) after latency_us. */
void stats_request(struct shard_stats *s, int16_t api_key, uint64_t latency_us);
/* A request of api_key that failed with a Kafka error code (or -1: connection closed
 * because the request could not be parsed or its version is unsupported). */
void stats_error(struct shard_stats *s, int16_t api_key, int16_t error_code);

/* The calling thread's shard statistics (NULL: count nothing). */
void stats_bind_thread(struct shard_stats *s);
/* Produced / fetched through this shard (the thread's bound stats; no-op unbound). */
void stats_topic_in(const char *name, uint32_t name_len, uint64_t bytes, uint64_t messages);
void stats_topic_out(const char *name, uint32_t name_len, uint64_t bytes, uint64_t messages);
/* Records in the complete v2 batches of buf (a partial last batch is not counted). */
uint64_t stats_count_records(const uint8_t *buf, size_t len_bytes);

/* Writer (the shard): rewrite the partition table. begin, put each (index < max), end. */
void stats_partitions_begin(struct shard_stats *s);
void stats_partition_put(struct shard_stats *s, uint32_t index, const uint8_t topic_id[16],
                         int32_t partition, int64_t high_watermark, int64_t log_start_offset,
                         int64_t size_bytes);
void stats_partitions_end(struct shard_stats *s, uint32_t count, uint64_t unpublished);
/* Reader: copy the table into out (STATS_MAX_PARTITIONS entries); the count, or -1 when
 * the shard kept rewriting it through every attempt. */
int stats_partitions_read(const struct shard_stats *s, struct stats_partition_copy *out);

/* stats_error on the calling thread's bound stats (no-op unbound). */
void stats_error_here(int16_t api_key, int16_t error_code);

/* Reader side: the error slot i's api, code and count; false when the slot is empty. */
_Bool stats_error_at(const struct shard_stats *s, unsigned i, int16_t *api_key,
                     int16_t *error_code, uint64_t *count);

#endif
