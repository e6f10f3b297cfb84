/* metrics.h - the broker's metrics in the Prometheus text format (version 0.0.4).
 *
 * The control thread aggregates what the shards publish in their struct shard_stats
 * (dataplane/stats.h: single-writer counters read without locks) and their loop times
 * (struct shard busy_ns/idle_ns), and renders one exposition into a buffer allocated
 * once (METRICS_BUFFER_BYTES). Counters are summed over shards except where the shard
 * is the point (loop busy ratio, io_uring traffic: label shard="N").
 *
 * The busy ratio gauge is measured between two renders (scrapes); the first render
 * reports the ratio since the shard started.
 *
 * Partitions (high watermark, log start offset, size) come from each shard's
 * seqlocked table; their topic ids are named through topic_name (the catalogue, which
 * the control thread owns); a partition of a topic no longer named is left out.
 *
 * Consumer group lag: for every committed offset control holds (visit_offsets), the
 * partition's high watermark from those tables minus the offset (never negative), found
 * through a hash index of the tables built per render; at most METRICS_MAX_LAG_SERIES.
 *
 * Per-topic counters are summed over shards (a topic's partitions live on several) in
 * an open-addressing table sized at init for every shard's table full. */
#ifndef SLUICE_CONTROL_METRICS_H
#define SLUICE_CONTROL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/shard.h"
#include "dataplane/stats.h"

#define METRICS_BUFFER_BYTES (4u << 20)
#define METRICS_MAX_LAG_SERIES 10000

struct metrics_topic {
    const char *name; /* NULL: empty slot; points into a shard's stats (never freed) */
    uint32_t name_len;
    uint64_t bytes_in, messages_in, bytes_out, messages_out;
};

/* The name of the topic with this id, NULL when there is none. */
typedef const char *(*metrics_topic_name_fn)(void *ctx, const uint8_t topic_id[16]);
/* The id of the topic with this name; false when there is none. */
typedef bool (*metrics_topic_id_fn)(void *ctx, const char *name, uint8_t topic_id[16]);
/* Every committed offset of every group (fn returns false to stop). */
typedef bool (*metrics_offset_fn)(void *arg, const char *group, const char *topic,
                                  int32_t partition, int64_t committed_offset);
typedef void (*metrics_visit_offsets_fn)(void *ctx, metrics_offset_fn fn, void *arg);

struct metrics {
    int shard_count;
    const struct shard_stats *stats; /* shard_count of them */
    const struct shard *shards;      /* for busy_ns / idle_ns */
    uint64_t last_busy_ns[MESH_MAX_SHARDS];
    uint64_t last_idle_ns[MESH_MAX_SHARDS];
    struct metrics_topic *topics;
    size_t topic_slots;   /* a power of two >= 2 * shards * STATS_MAX_TOPICS */
    struct stats_partition_copy *partitions; /* shard_count * STATS_MAX_PARTITIONS */
    int partition_counts[MESH_MAX_SHARDS];     /* of the last read, -1: unreadable */
    metrics_topic_name_fn topic_name;
    metrics_topic_id_fn topic_id;
    void *topic_name_ctx;             /* for topic_name and topic_id */
    metrics_visit_offsets_fn visit_offsets;
    void *visit_offsets_ctx;
    uint32_t *partition_index;        /* hash of the copies: index + 1, 0 empty */
    size_t partition_index_slots;     /* a power of two >= 2 * every copy */
    uint64_t lag_series_dropped;
    char *buf;
    size_t len_bytes;
    uint64_t renders;
};

int metrics_init(struct metrics *m, int shard_count, const struct shard_stats *stats,
                 const struct shard *shards);
void metrics_destroy(struct metrics *m);
/* Render the exposition into m->buf; returns its length, or 0 when it would not fit
 * (never the case with the bounded series this broker has, but checked). */
size_t metrics_render(struct metrics *m);

#endif
