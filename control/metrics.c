/* metrics.c - render the shards' statistics as Prometheus text (see metrics.h).
 *
 * Each family gets its # HELP and # TYPE lines once, then its samples. Label values are
 * Kafka API names and error names (fixed identifiers: nothing to escape) and shard ids.
 * Histograms are made cumulative here from the shards' per-bucket counts; a histogram's
 * _count is the sum of the buckets read, so it always equals its +Inf bucket. */
#include "control/metrics.h"

#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli_client.h"
#include "dataplane/kafka/kafka_msgs.h"
#include "hw/log.h"
#include "sluice_config.h"

int metrics_init(struct metrics *m, int shard_count, const struct shard_stats *stats,
                 const struct shard *shards) {
    assert(shard_count > 0 && shard_count <= MESH_MAX_SHARDS);
    memset(m, 0, sizeof *m);
    m->shard_count = shard_count;
    m->stats = stats;
    m->shards = shards;
    m->topic_slots = 1;
    while (m->topic_slots < 2u * (size_t)shard_count * STATS_MAX_TOPICS) m->topic_slots *= 2;
    m->topics = calloc(m->topic_slots, sizeof m->topics[0]);
    m->partitions = calloc((size_t)shard_count * STATS_MAX_PARTITIONS, sizeof m->partitions[0]);
    m->partition_index_slots = 1;
    while (m->partition_index_slots < 2u * (size_t)shard_count * STATS_MAX_PARTITIONS)
        m->partition_index_slots *= 2;
    m->partition_index = calloc(m->partition_index_slots, sizeof m->partition_index[0]);
    if (!m->partition_index) return -1;
    m->buf = malloc(METRICS_BUFFER_BYTES);
    return m->buf && m->topics && m->partitions ? 0 : -1;
}

void metrics_destroy(struct metrics *m) {
    free(m->buf);
    free(m->topics);
    free(m->partitions);
    free(m->partition_index);
    m->partitions = NULL;
    m->partition_index = NULL;
    m->buf = NULL;
    m->topics = NULL;
}

/* Append printf output; a full buffer sets len past the capacity (checked at the end). */
static void emit(struct metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct metrics *m, const char *fmt, ...) {
    if (m->len_bytes >= METRICS_BUFFER_BYTES) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->len_bytes, METRICS_BUFFER_BYTES - m->len_bytes, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    m->len_bytes += (size_t)n; /* may exceed the capacity: the render then fails */
}

static void family(struct metrics *m, const char *name, const char *type, const char *help) {
    emit(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *api_name(int api_key) {
    const struct kafka_api_info *info = kafka_api_lookup((int16_t)api_key);
    return info ? info->name : NULL;
}

static uint64_t sum_requests(const struct metrics *m, int api) {
    uint64_t total = 0;
    for (int s = 0; s < m->shard_count; s++) total += stats_read(&m->stats[s].requests[api]);
    return total;
}

static void render_requests(struct metrics *m) {
    family(m, "sluice_requests_total", "counter", "Kafka requests answered, by API.");
    for (int api = 0; api < STATS_API_SLOTS; api++) {
        uint64_t n = sum_requests(m, api);
        if (n > 0 && api_name(api))
            emit(m, "sluice_requests_total{api=\"%s\"} %llu\n", api_name(api),
                 (unsigned long long)n);
    }
}

static void render_latency(struct metrics *m) {
    family(m, "sluice_request_latency_seconds", "histogram",
           "Time from a request's arrival to its response being queued, by API.");
    for (int api = 0; api < STATS_API_SLOTS; api++) {
        if (sum_requests(m, api) == 0 || !api_name(api)) continue;
        uint64_t cumulative = 0, sum_us = 0;
        for (int b = 0; b < STATS_LATENCY_BUCKETS; b++) {
            for (int s = 0; s < m->shard_count; s++)
                cumulative += stats_read(&m->stats[s].latency_buckets[api][b]);
            if (b + 1 < STATS_LATENCY_BUCKETS)
                emit(m, "sluice_request_latency_seconds_bucket{api=\"%s\",le=\"%g\"} %llu\n",
                     api_name(api), (double)stats_latency_bounds_us[b] / 1e6,
                     (unsigned long long)cumulative);
            else
                emit(m, "sluice_request_latency_seconds_bucket{api=\"%s\",le=\"+Inf\"} %llu\n",
                     api_name(api), (unsigned long long)cumulative);
        }
        for (int s = 0; s < m->shard_count; s++) sum_us += stats_read(&m->stats[s].latency_sum_us[api]);
        emit(m, "sluice_request_latency_seconds_sum{api=\"%s\"} %.6f\n", api_name(api),
             (double)sum_us / 1e6);
        emit(m, "sluice_request_latency_seconds_count{api=\"%s\"} %llu\n", api_name(api),
             (unsigned long long)cumulative);
    }
}

/* Errors are summed over shards: gather (api, code) pairs into a bounded local table. */
struct error_sum {
    int16_t api, code;
    uint64_t count;
};

static void render_errors(struct metrics *m) {
    enum { MAX_PAIRS = STATS_ERROR_SLOTS * 2 };
    struct error_sum sums[MAX_PAIRS];
    int pairs = 0;
    uint64_t dropped = 0;
    for (int s = 0; s < m->shard_count; s++) {
        dropped += stats_read(&m->stats[s].errors_dropped);
        for (unsigned i = 0; i < STATS_ERROR_SLOTS; i++) {
            struct error_sum e;
            if (!stats_error_at(&m->stats[s], i, &e.api, &e.code, &e.count)) continue;
            int j = 0;
            while (j < pairs && (sums[j].api != e.api || sums[j].code != e.code)) j++;
            if (j == pairs && pairs == MAX_PAIRS) {
                dropped += e.count;
                continue;
            }
            if (j == pairs) sums[pairs++] = (struct error_sum){e.api, e.code, 0};
            sums[j].count += e.count;
        }
    }
    family(m, "sluice_request_errors_total", "counter",
           "Requests refused, by API and Kafka error code (code -1: the connection was "
           "closed because the request could not be parsed).");
    for (int j = 0; j < pairs; j++) {
        const char *api = api_name(sums[j].api);
        emit(m, "sluice_request_errors_total{api=\"%s\",code=\"%d\",error=\"%s\"} %llu\n",
             api ? api : "unknown", sums[j].code,
             sums[j].code == -1 ? "CLOSED" : kafka_error_name(sums[j].code),
             (unsigned long long)sums[j].count);
    }
    family(m, "sluice_request_errors_untracked_total", "counter",
           "Errors not broken down because the per-shard error table was full.");
    emit(m, "sluice_request_errors_untracked_total %llu\n", (unsigned long long)dropped);
}

static void render_connections(struct metrics *m) {
    uint64_t accepted = 0, closed = 0;
    for (int s = 0; s < m->shard_count; s++) {
        accepted += stats_read(&m->stats[s].connections_accepted);
        closed += stats_read(&m->stats[s].connections_closed);
    }
    family(m, "sluice_connections_accepted_total", "counter", "Client connections accepted.");
    emit(m, "sluice_connections_accepted_total %llu\n", (unsigned long long)accepted);
    family(m, "sluice_connections_closed_total", "counter", "Client connections closed.");
    emit(m, "sluice_connections_closed_total %llu\n", (unsigned long long)closed);
    family(m, "sluice_connections_open", "gauge", "Client connections open now.");
    /* closed is read after accepted, so it can only lag: never negative */
    emit(m, "sluice_connections_open %llu\n",
         (unsigned long long)(accepted >= closed ? accepted - closed : 0));
}

static void render_shards(struct metrics *m) {
    family(m, "sluice_shard_busy_seconds_total", "counter",
           "Time a shard's loop spent in iterations that did work.");
    for (int s = 0; s < m->shard_count; s++)
        emit(m, "sluice_shard_busy_seconds_total{shard=\"%d\"} %.6f\n", s,
             (double)atomic_load_explicit(&m->shards[s].loop.busy_ns, memory_order_relaxed) / 1e9);
    family(m, "sluice_shard_busy_ratio", "gauge",
           "Share of a shard's loop time that did work, since the previous scrape.");
    for (int s = 0; s < m->shard_count; s++) {
        uint64_t busy = atomic_load_explicit(&m->shards[s].loop.busy_ns, memory_order_relaxed);
        uint64_t idle = atomic_load_explicit(&m->shards[s].loop.idle_ns, memory_order_relaxed);
        uint64_t d_busy = busy - m->last_busy_ns[s], d_idle = idle - m->last_idle_ns[s];
        double ratio = d_busy + d_idle ? (double)d_busy / (double)(d_busy + d_idle) : 0.0;
        m->last_busy_ns[s] = busy;
        m->last_idle_ns[s] = idle;
        emit(m, "sluice_shard_busy_ratio{shard=\"%d\"} %.4f\n", s, ratio);
    }
    family(m, "sluice_uring_submissions_total", "counter",
           "io_uring SQEs a shard's loop submitted (network and disk).");
    for (int s = 0; s < m->shard_count; s++)
        emit(m, "sluice_uring_submissions_total{shard=\"%d\"} %llu\n", s,
             (unsigned long long)stats_read(&m->stats[s].uring_submitted));
    family(m, "sluice_uring_completions_total", "counter",
           "io_uring CQEs a shard's loop reaped (network and disk).");
    for (int s = 0; s < m->shard_count; s++)
        emit(m, "sluice_uring_completions_total{shard=\"%d\"} %llu\n", s,
             (unsigned long long)stats_read(&m->stats[s].uring_completed));
}

static struct metrics_topic *topic_slot(struct metrics *m, const char *name, uint32_t len) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) h = (h ^ (uint8_t)name[i]) * 16777619u;
    for (size_t n = 0; n < m->topic_slots; n++) {
        struct metrics_topic *t = &m->topics[(h + n) & (m->topic_slots - 1)];
        if (!t->name) {
            *t = (struct metrics_topic){.name = name, .name_len = len};
            return t;
        }
        if (t->name_len == len && memcmp(t->name, name, len) == 0) return t;
    }
    return NULL; /* cannot happen: the table has room for every shard's table twice */
}

static void add_counters(struct metrics_topic *t, const struct stats_topic_counters *c) {
    t->bytes_in += stats_read(&c->bytes_in);
    t->messages_in += stats_read(&c->messages_in);
    t->bytes_out += stats_read(&c->bytes_out);
    t->messages_out += stats_read(&c->messages_out);
}

static void render_topics(struct metrics *m) {
    memset(m->topics, 0, m->topic_slots * sizeof m->topics[0]);
    struct metrics_topic other = {.name = "_other", .name_len = 6};
    for (int s = 0; s < m->shard_count; s++) {
        add_counters(&other, &m->stats[s].other_topics);
        for (unsigned i = 0; i < STATS_MAX_TOPICS; i++) {
            const struct stats_topic *st = &m->stats[s].topics[i];
            if (!atomic_load_explicit((_Atomic uint32_t *)&st->used, memory_order_acquire))
                continue;
            struct metrics_topic *t = topic_slot(m, st->name, st->name_len);
            assert(t != NULL);
            add_counters(t, &st->c);
        }
    }
    static const struct {
        const char *name, *help;
        size_t offset;
    } families[] = {
        {"sluice_topic_bytes_in_total", "Record batch bytes produced to a topic.",
         offsetof(struct metrics_topic, bytes_in)},
        {"sluice_topic_messages_in_total", "Records produced to a topic.",
         offsetof(struct metrics_topic, messages_in)},
        {"sluice_topic_bytes_out_total", "Record batch bytes fetched from a topic.",
         offsetof(struct metrics_topic, bytes_out)},
        {"sluice_topic_messages_out_total", "Records fetched from a topic (whole batches).",
         offsetof(struct metrics_topic, messages_out)},
    };
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        family(m, families[f].name, "counter", families[f].help);
        for (size_t i = 0; i <= m->topic_slots; i++) {
            const struct metrics_topic *t = i < m->topic_slots ? &m->topics[i] : &other;
            if (!t->name) continue;
            uint64_t v = *(const uint64_t *)((const char *)t + families[f].offset);
            if (t == &other && v == 0) continue;
            /* Kafka topic names are [a-zA-Z0-9._-]: nothing to escape in a label */
            emit(m, "%s{topic=\"%.*s\"} %llu\n", families[f].name, (int)t->name_len, t->name,
                 (unsigned long long)v);
        }
    }
}

/* One family of partition gauges from the copies read by render_partitions. */
static void partition_family(struct metrics *m, const char *name, const char *help,
                             size_t offset) {
    family(m, name, "gauge", help);
    for (int s = 0; s < m->shard_count; s++) {
        const struct stats_partition_copy *copies = &m->partitions[(size_t)s * STATS_MAX_PARTITIONS];
        for (int i = 0; i < m->partition_counts[s]; i++) {
            const char *topic = m->topic_name(m->topic_name_ctx, copies[i].topic_id);
            if (!topic) continue;
            emit(m, "%s{topic=\"%s\",partition=\"%d\"} %lld\n", name, topic,
                 copies[i].partition,
                 (long long)*(const int64_t *)((const char *)&copies[i] + offset));
        }
    }
}

static void render_partitions(struct metrics *m) {
    if (!m->topic_name) return;
    uint64_t unpublished = 0;
    for (int s = 0; s < m->shard_count; s++) {
        m->partition_counts[s] =
            stats_partitions_read(&m->stats[s], &m->partitions[(size_t)s * STATS_MAX_PARTITIONS]);
        if (m->partition_counts[s] < 0) m->partition_counts[s] = 0; /* busy: next scrape */
        unpublished += stats_read(&m->stats[s].partitions_unpublished);
    }
    partition_family(m, "sluice_partition_high_watermark",
                     "Offset after the last committed record of a partition.",
                     offsetof(struct stats_partition_copy, high_watermark));
    partition_family(m, "sluice_partition_log_start_offset",
                     "First offset still in a partition's log.",
                     offsetof(struct stats_partition_copy, log_start_offset));
    partition_family(m, "sluice_partition_size_bytes", "Bytes of a partition's segments.",
                     offsetof(struct stats_partition_copy, size_bytes));
    family(m, "sluice_partitions_unpublished", "gauge",
           "Open partitions beyond the per-shard metrics table (not listed above).");
    emit(m, "sluice_partitions_unpublished %llu\n", (unsigned long long)unpublished);
}

static void shard_family(struct metrics *m, const char *name, const char *type,
                         const char *help, size_t offset) {
    family(m, name, type, help);
    for (int s = 0; s < m->shard_count; s++)
        emit(m, "%s{shard=\"%d\"} %llu\n", name, s,
             (unsigned long long)stats_read(
                 (const _Atomic uint64_t *)((const char *)&m->stats[s] + offset)));
}

/* A histogram summed over shards from per-shard buckets at bucket_offset / sum_offset. */
static void shard_histogram(struct metrics *m, const char *name, const char *help,
                            size_t bucket_offset, size_t sum_offset) {
    family(m, name, "histogram", help);
    uint64_t cumulative = 0, sum_us = 0;
    for (int b = 0; b < STATS_LATENCY_BUCKETS; b++) {
        for (int s = 0; s < m->shard_count; s++)
            cumulative += stats_read((const _Atomic uint64_t *)((const char *)&m->stats[s] +
                                                                 bucket_offset) + b);
        if (b + 1 < STATS_LATENCY_BUCKETS)
            emit(m, "%s_bucket{le=\"%g\"} %llu\n", name,
                 (double)stats_latency_bounds_us[b] / 1e6, (unsigned long long)cumulative);
        else
            emit(m, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
    }
    for (int s = 0; s < m->shard_count; s++)
        sum_us += stats_read((const _Atomic uint64_t *)((const char *)&m->stats[s] + sum_offset));
    emit(m, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum_us / 1e6, name,
         (unsigned long long)cumulative);
}

static void render_storage(struct metrics *m) {
    shard_histogram(m, "sluice_disk_write_latency_seconds",
                    "A flush's writes, from issue to the last completion (group commit).",
                    offsetof(struct shard_stats, disk_write_buckets),
                    offsetof(struct shard_stats, disk_write_sum_us));
    shard_histogram(m, "sluice_disk_fsync_latency_seconds",
                    "A flush's fdatasyncs, from issue to the last completion.",
                    offsetof(struct shard_stats, disk_fsync_buckets),
                    offsetof(struct shard_stats, disk_fsync_sum_us));
    shard_family(m, "sluice_storage_io_errors_total", "counter",
                 "Disk writes and fdatasyncs that failed or came back short.",
                 offsetof(struct shard_stats, storage_io_errors));
    shard_family(m, "sluice_batch_cache_bytes", "gauge", "Bytes of the shard's batch cache in use.",
                 offsetof(struct shard_stats, cache_bytes));
    shard_family(m, "sluice_batch_cache_budget_bytes", "gauge", "The shard's batch cache budget.",
                 offsetof(struct shard_stats, cache_budget_bytes));
    shard_family(m, "sluice_batch_cache_hits_total", "counter",
                 "Reads served from the batch cache.", offsetof(struct shard_stats, cache_hits));
    shard_family(m, "sluice_batch_cache_misses_total", "counter",
                 "Reads that went to disk.", offsetof(struct shard_stats, cache_misses));
    shard_family(m, "sluice_batch_cache_evictions_total", "counter",
                 "Chunks evicted from the batch cache.",
                 offsetof(struct shard_stats, cache_evictions));
    shard_family(m, "sluice_storage_failed_partitions", "gauge",
                 "Open partitions a storage error failed (they answer KAFKA_STORAGE_ERROR).",
                 offsetof(struct shard_stats, partitions_failed));
}

/* ---- consumer group lag ---------------------------------------------------------- */

static uint32_t partition_hash(const uint8_t id[16], int32_t partition) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) h = (h ^ id[i]) * 16777619u;
    return (h ^ (uint32_t)partition) * 16777619u;
}

/* Index every copy read by render_partitions (copy i stored as i + 1). */
static void index_partitions(struct metrics *m) {
    memset(m->partition_index, 0, m->partition_index_slots * sizeof m->partition_index[0]);
    size_t mask = m->partition_index_slots - 1;
    for (int s = 0; s < m->shard_count; s++)
        for (int i = 0; i < m->partition_counts[s]; i++) {
            size_t at = (size_t)s * STATS_MAX_PARTITIONS + (size_t)i;
            const struct stats_partition_copy *c = &m->partitions[at];
            size_t h = partition_hash(c->topic_id, c->partition) & mask;
            while (m->partition_index[h]) h = (h + 1) & mask; /* at most half full */
            m->partition_index[h] = (uint32_t)at + 1;
        }
}

static const struct stats_partition_copy *find_partition(const struct metrics *m,
                                                         const uint8_t id[16], int32_t partition) {
    size_t mask = m->partition_index_slots - 1;
    for (size_t h = partition_hash(id, partition) & mask, n = 0; n <= mask; h = (h + 1) & mask, n++) {
        uint32_t v = m->partition_index[h];
        if (!v) return NULL;
        const struct stats_partition_copy *c = &m->partitions[v - 1];
        if (c->partition == partition && memcmp(c->topic_id, id, 16) == 0) return c;
    }
    return NULL;
}

/* A label value in the text format: backslash, double quote and newline escaped. */
static void emit_label_value(struct metrics *m, const char *v) {
    char buf[2 * 256 + 1];
    size_t n = 0;
    for (; *v && n + 2 < sizeof buf; v++) {
        if (*v == '\\' || *v == '"') buf[n++] = '\\', buf[n++] = *v;
        else if (*v == '\n') buf[n++] = '\\', buf[n++] = 'n';
        else buf[n++] = *v;
    }
    buf[n] = '\0';
    emit(m, "%s", buf);
}

struct lag_visit {
    struct metrics *m;
    uint32_t series;
    bool committed_pass; /* the committed-offset family; else the lag family */
};

static bool emit_lag(void *arg, const char *group, const char *topic, int32_t partition,
                     int64_t committed) {
    struct lag_visit *v = arg;
    struct metrics *m = v->m;
    if (v->series == METRICS_MAX_LAG_SERIES) {
        if (!v->committed_pass) m->lag_series_dropped++;
        return true; /* keep counting what is left out */
    }
    uint8_t id[16];
    if (!m->topic_id(m->topic_name_ctx, topic, id)) return true;
    const struct stats_partition_copy *c = find_partition(m, id, partition);
    if (!c) return true;
    v->series++;
    int64_t value = v->committed_pass ? committed
                    : (c->high_watermark > committed ? c->high_watermark - committed : 0);
    emit(m, v->committed_pass ? "sluice_consumergroup_committed_offset{group=\""
                              : "sluice_consumergroup_lag{group=\"");
    emit_label_value(m, group);
    emit(m, "\",topic=\"%s\",partition=\"%d\"} %lld\n", topic, partition, (long long)value);
    return true;
}

static void render_group_lag(struct metrics *m) {
    if (!m->visit_offsets || !m->topic_id) return;
    index_partitions(m);
    m->lag_series_dropped = 0;
    struct lag_visit v = {.m = m};
    family(m, "sluice_consumergroup_lag", "gauge",
           "High watermark minus the group's committed offset, per partition.");
    m->visit_offsets(m->visit_offsets_ctx, emit_lag, &v);
    v = (struct lag_visit){.m = m, .committed_pass = true};
    family(m, "sluice_consumergroup_committed_offset", "gauge",
           "A group's committed offset, per partition.");
    m->visit_offsets(m->visit_offsets_ctx, emit_lag, &v);
    family(m, "sluice_consumergroup_lag_series_dropped", "gauge",
           "Committed offsets left out of the lag families (beyond the series bound).");
    emit(m, "sluice_consumergroup_lag_series_dropped %llu\n",
         (unsigned long long)m->lag_series_dropped);
}

size_t metrics_render(struct metrics *m) {
    m->len_bytes = 0;
    family(m, "sluice_build_info", "gauge", "Always 1; the version as a label.");
    emit(m, "sluice_build_info{version=\"%s\"} 1\n", SLUICE_VERSION);
    family(m, "sluice_shards", "gauge", "Shard threads serving clients.");
    emit(m, "sluice_shards %d\n", m->shard_count);
    render_requests(m);
    render_latency(m);
    render_errors(m);
    render_connections(m);
    render_shards(m);
    render_topics(m);
    render_partitions(m);
    render_group_lag(m);
    render_storage(m);
    family(m, "sluice_log_lines_dropped_total", "counter",
           "Shard log lines dropped because the shard's log ring was full.");
    emit(m, "sluice_log_lines_dropped_total %llu\n", (unsigned long long)log_dropped_total());
    family(m, "sluice_under_replicated_partitions", "gauge",
           "Partitions with fewer in-sync replicas than replicas (a single node has none).");
    emit(m, "sluice_under_replicated_partitions 0\n");
    m->renders++;
    if (m->len_bytes >= METRICS_BUFFER_BYTES) return 0;
    return m->len_bytes;
}
