/* router_stats.c - publish this shard's open partitions to its metrics table
 * (dataplane/stats.h) at most once a second: topic id, partition, high watermark, log
 * start offset and bytes on disk, read from each partition's log on the owner shard; and
 * the batch cache's size, hits, misses and evictions, the disk write / fdatasync latency
 * histograms and failed disk operations, and how many partitions a storage error failed (plain shard-private counters, copied here into the atomics control reads). */
#include "dataplane/router_stats.h"

#include "dataplane/router_internal.h"
#include "dataplane/stats.h"

#define ROUTER_STATS_PERIOD_MS 1000u

static _Thread_local uint64_t next_publish_ms; /* per shard thread */

static void copy_histogram(_Atomic uint64_t *buckets, _Atomic uint64_t *sum_us,
                           const struct latency_histogram *h) {
    for (unsigned b = 0; b < LATENCY_BUCKETS; b++)
        atomic_store_explicit(&buckets[b], h->buckets[b], memory_order_relaxed);
    atomic_store_explicit(sum_us, h->sum_us, memory_order_relaxed);
}

void router_publish_stats(struct router *r, struct shard_stats *s, uint64_t now_ms) {
    if (!s || now_ms < next_publish_ms) return;
    next_publish_ms = now_ms + ROUTER_STATS_PERIOD_MS;
    uint32_t count = 0;
    uint64_t unpublished = 0, failed = 0;
    stats_partitions_begin(s);
    for (uint32_t i = 0; i < ROUTER_PTABLE_SLOTS; i++) {
        const struct ptable_entry *e = &r->table[i];
        if (!e->used || !e->log) continue;
        if (e->log->failed) failed++;
        if (count == STATS_MAX_PARTITIONS) {
            unpublished++;
            continue;
        }
        stats_partition_put(s, count++, e->id, e->partition, plog_high_watermark(e->log),
                            plog_log_start_offset(e->log), (int64_t)plog_size_bytes(e->log));
    }
    stats_partitions_end(s, count, unpublished);
    const struct batch_cache *c = &r->storage.cache;
    atomic_store_explicit(&s->cache_bytes, c->cached_bytes, memory_order_relaxed);
    atomic_store_explicit(&s->cache_budget_bytes, c->budget_bytes, memory_order_relaxed);
    atomic_store_explicit(&s->cache_hits, c->hits, memory_order_relaxed);
    atomic_store_explicit(&s->cache_misses, c->misses, memory_order_relaxed);
    atomic_store_explicit(&s->cache_evictions, c->evictions, memory_order_relaxed);
    atomic_store_explicit(&s->partitions_failed, failed, memory_order_relaxed);
    copy_histogram(s->disk_write_buckets, &s->disk_write_sum_us, &r->storage.write_latency);
    copy_histogram(s->disk_fsync_buckets, &s->disk_fsync_sum_us, &r->storage.fsync_latency);
    atomic_store_explicit(&s->storage_io_errors, r->storage.io_errors, memory_order_relaxed);
}

void router_count_part_errors(const struct data_job *job) {
    for (uint32_t i = 0; i < job->part_count; i++)
        if (job->parts[i].error != 0) stats_error_here(job->api_key, job->parts[i].error);
}

/* A control-plane answer's error codes, counted on the shard that sends it: the body
 * control encoded is decoded once more (the slow path; a reply is one per request) and
 * every ErrorCode field in it is visited, nested ones included. */
static void count_control_error(void *ctx, int16_t error_code) {
    if (error_code != 0) stats_error_here(*(const int16_t *)ctx, error_code);
}

void router_count_control_errors(struct kafka_arena *arena, int16_t api_key, int16_t version,
                                 const uint8_t *body, uint32_t body_bytes) {
    union kafka_response_any resp;
    struct kafka_reader rd;
    kafka_reader_init(&rd, body, body_bytes);
    kafka_arena_reset(arena);
    if (kafka_response_decode(api_key, version, &rd, arena, &resp) != 0) return;
    kafka_response_errors(api_key, &resp, count_control_error, &api_key);
}
