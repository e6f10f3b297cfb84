/* test_metrics.c - per-shard statistics (dataplane/stats.c) and their Prometheus
 * rendering (control/metrics.c): bucket placement, cumulative histograms whose _count
 * equals the +Inf bucket, sums over shards, the bounded error table, the busy ratio
 * between renders, and a reader thread that renders while a writer thread counts (the
 * values it sees never go backwards). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/metrics.h"
#include "dataplane/stats.h"

static struct shard_stats stats[2];
static struct shard shards[2];
static struct metrics m;

static void setup(void) {
    memset(stats, 0, sizeof stats);
    memset(shards, 0, sizeof shards);
    cr_assert_eq(metrics_init(&m, 2, stats, shards), 0);
}

static void teardown(void) { metrics_destroy(&m); }

/* The value of the sample line that starts with `series ` in the last render. */
static double sample(const char *series) {
    size_t n = strlen(series);
    const char *p = m.buf;
    const char *end = m.buf + m.len_bytes;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > n && strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = eol + 1;
    }
    cr_assert_fail("no sample %s", series);
    return -1;
}

TestSuite(metrics, .init = setup, .fini = teardown);

Test(metrics, latency_buckets_are_cumulative_and_count_matches) {
    stats_request(&stats[0], 0, 50);        /* <= 100 us */
    stats_request(&stats[0], 0, 100);       /* <= 100 us (bounds are inclusive) */
    stats_request(&stats[1], 0, 101);       /* <= 250 us */
    stats_request(&stats[1], 0, 20000000);  /* beyond 10 s: +Inf only */
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_requests_total{api=\"Produce\"}"), 4);
    cr_assert_eq(sample("sluice_request_latency_seconds_bucket{api=\"Produce\",le=\"0.0001\"}"), 2);
    cr_assert_eq(sample("sluice_request_latency_seconds_bucket{api=\"Produce\",le=\"0.00025\"}"), 3);
    cr_assert_eq(sample("sluice_request_latency_seconds_bucket{api=\"Produce\",le=\"10\"}"), 3);
    cr_assert_eq(sample("sluice_request_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"), 4);
    cr_assert_eq(sample("sluice_request_latency_seconds_count{api=\"Produce\"}"), 4);
    cr_assert_float_eq(sample("sluice_request_latency_seconds_sum{api=\"Produce\"}"),
                       (50 + 100 + 101 + 20000000) / 1e6, 1e-9);
    cr_assert_null(strstr(m.buf, "api=\"Fetch\""), "an API never used has no series");
}

Test(metrics, errors_sum_over_shards_and_table_is_bounded) {
    stats_error(&stats[0], 0, 35);
    stats_error(&stats[1], 0, 35);
    stats_error(&stats[1], 1, -1);
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_request_errors_total{api=\"Produce\",code=\"35\","
                        "error=\"UNSUPPORTED_VERSION\"}"), 2);
    cr_assert_eq(sample("sluice_request_errors_total{api=\"Fetch\",code=\"-1\",error=\"CLOSED\"}"), 1);
    /* 2 keys used on shard 1; fill the table with distinct codes, then overflow by 10 */
    for (int code = 100; code < 100 + STATS_ERROR_SLOTS - 2 + 10; code++)
        stats_error(&stats[1], 3, (int16_t)code);
    cr_assert_eq(stats_read(&stats[1].errors_dropped), 10);
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_request_errors_untracked_total"), 10);
}

Test(metrics, connections_and_busy_ratio_between_renders) {
    stats_add(&stats[0].connections_accepted, 5);
    stats_add(&stats[1].connections_accepted, 2);
    stats_add(&stats[0].connections_closed, 3);
    atomic_store(&shards[1].loop.busy_ns, 1000000000);
    atomic_store(&shards[1].loop.idle_ns, 3000000000);
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_connections_open"), 4);
    cr_assert_eq(sample("sluice_connections_accepted_total"), 7);
    cr_assert_float_eq(sample("sluice_shard_busy_ratio{shard=\"1\"}"), 0.25, 1e-4);
    cr_assert_eq(sample("sluice_shard_busy_ratio{shard=\"0\"}"), 0);
    atomic_store(&shards[1].loop.busy_ns, 2000000000); /* +1 s busy, +0 s idle since the render */
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_float_eq(sample("sluice_shard_busy_ratio{shard=\"1\"}"), 1.0, 1e-4);
    cr_assert_float_eq(sample("sluice_shard_busy_seconds_total{shard=\"1\"}"), 2.0, 1e-6);
}

#define WRITER_REQUESTS 200000

static void *writer(void *arg) {
    struct shard_stats *s = arg;
    for (int i = 0; i < WRITER_REQUESTS; i++) stats_request(s, 1, (uint64_t)(i % 3000));
    return NULL;
}

Test(metrics, render_while_a_shard_writes) {
    pthread_t t;
    pthread_create(&t, NULL, writer, &stats[0]);
    double last = 0;
    for (int i = 0; i < 200; i++) {
        cr_assert_gt(metrics_render(&m), 0);
        if (!strstr(m.buf, "api=\"Fetch\"")) continue;
        double count = sample("sluice_request_latency_seconds_count{api=\"Fetch\"}");
        double inf = sample("sluice_request_latency_seconds_bucket{api=\"Fetch\",le=\"+Inf\"}");
        cr_assert_eq(count, inf);
        cr_assert_geq(count, last, "counts never go backwards");
        last = count;
    }
    pthread_join(t, NULL);
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_requests_total{api=\"Fetch\"}"), WRITER_REQUESTS);
    cr_assert_eq(sample("sluice_request_latency_seconds_count{api=\"Fetch\"}"), WRITER_REQUESTS);
}

static const char *name_of(void *ctx, const uint8_t id[16]) {
    (void)ctx;
    return id[0] == 0xab ? "orders" : NULL; /* any other id: a deleted topic */
}

Test(metrics, partitions_are_named_and_unknown_topics_left_out) {
    uint8_t orders[16] = {0xab, 1, 2, 3}, gone[16] = {0xcd};
    stats_partitions_begin(&stats[1]);
    stats_partition_put(&stats[1], 0, orders, 3, 120, 20, 4096);
    stats_partition_put(&stats[1], 1, gone, 0, 7, 0, 100);
    stats_partitions_end(&stats[1], 2, 5);
    m.topic_name = name_of;
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_partition_high_watermark{topic=\"orders\",partition=\"3\"}"), 120);
    cr_assert_eq(sample("sluice_partition_log_start_offset{topic=\"orders\",partition=\"3\"}"), 20);
    cr_assert_eq(sample("sluice_partition_size_bytes{topic=\"orders\",partition=\"3\"}"), 4096);
    cr_assert_eq(sample("sluice_partitions_unpublished"), 5);
    cr_assert_null(strstr(m.buf, "partition=\"0\""), "the unnamed topic's partition is left out");
}

#define SEQ_ROUNDS 20000

static atomic_bool writer_done;

static void *partition_writer(void *arg) {
    struct shard_stats *s = arg;
    uint8_t id[16] = {0xab};
    for (int64_t gen = 1; gen <= SEQ_ROUNDS; gen++) {
        stats_partitions_begin(s);
        uint32_t n = (uint32_t)(gen % 64) + 1;
        for (uint32_t i = 0; i < n; i++) stats_partition_put(s, i, id, (int32_t)i, gen, gen, gen);
        stats_partitions_end(s, n, 0);
        if (gen % 8 == 0) { /* a gap now and then, as the real once-a-second writer has */
            struct timespec gap = {0, 20000};
            nanosleep(&gap, NULL);
        }
    }
    atomic_store(&writer_done, true);
    return NULL;
}

Test(metrics, a_partition_copy_is_never_torn) {
    static struct stats_partition_copy copy[STATS_MAX_PARTITIONS];
    pthread_t t;
    pthread_create(&t, NULL, partition_writer, &stats[0]);
    int good = 0;
    while (!atomic_load(&writer_done)) {
        int n = stats_partitions_read(&stats[0], copy);
        if (n <= 0) continue;
        good++;
        for (int i = 1; i < n; i++) /* one generation per copy, count matching it */
            cr_assert_eq(copy[i].high_watermark, copy[0].high_watermark);
        cr_assert_eq(n, (int)(copy[0].high_watermark % 64) + 1);
    }
    pthread_join(t, NULL);
    cr_assert_eq(stats_partitions_read(&stats[0], copy), SEQ_ROUNDS % 64 + 1);
    cr_assert_gt(good, 0);
}

static bool id_of(void *ctx, const char *name, uint8_t id[16]) {
    (void)ctx;
    if (strcmp(name, "orders") != 0) return false;
    memset(id, 0, 16);
    id[0] = 0xab;
    return true;
}

static void visit(void *ctx, metrics_offset_fn fn, void *arg) {
    (void)ctx;
    fn(arg, "billing \"eu\"", "orders", 3, 100); /* a quote in a group id is escaped */
    fn(arg, "late", "orders", 3, 150);             /* ahead of the watermark: lag 0 */
    fn(arg, "other", "gone", 0, 1);                /* an unknown topic: no series */
}

Test(metrics, group_lag_from_watermarks) {
    uint8_t orders[16] = {0xab};
    stats_partitions_begin(&stats[0]);
    stats_partition_put(&stats[0], 0, orders, 3, 120, 0, 1);
    stats_partitions_end(&stats[0], 1, 0);
    m.topic_name = name_of;
    m.topic_id = id_of;
    m.visit_offsets = visit;
    cr_assert_gt(metrics_render(&m), 0);
    cr_assert_eq(sample("sluice_consumergroup_lag{group=\"billing \\\"eu\\\"\",topic=\"orders\","
                        "partition=\"3\"}"), 20);
    cr_assert_eq(sample("sluice_consumergroup_lag{group=\"late\",topic=\"orders\",partition=\"3\"}"), 0);
    cr_assert_eq(sample("sluice_consumergroup_committed_offset{group=\"late\",topic=\"orders\","
                        "partition=\"3\"}"), 150);
    cr_assert_null(strstr(m.buf, "group=\"other\""));
}
