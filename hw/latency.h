/* latency.h - the latency bucket bounds every sluice histogram shares (request latency in
 * dataplane/stats.h, disk write and fdatasync latency in storage), so the metrics endpoint
 * renders them all with one set of Prometheus `le` bounds: 100 us .. 10 s, then +Inf. */
#ifndef SLUICE_HW_LATENCY_H
#define SLUICE_HW_LATENCY_H

#include <stdint.h>

#define LATENCY_BUCKETS 16
#define LATENCY_BOUNDS_US_INIT                                                       \
    {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,  \
     1000000, 2500000, 10000000, UINT64_MAX}

/* The bucket of a latency: the first bound >= latency_us (the last is +Inf). */
static inline unsigned latency_bucket(uint64_t latency_us) {
    static const uint64_t bounds[LATENCY_BUCKETS] = LATENCY_BOUNDS_US_INIT;
    unsigned b = 0;
    while (latency_us > bounds[b]) b++;
    return b;
}

/* A shard-private histogram (plain counters: one thread writes and copies it out). */
struct latency_histogram {
    uint64_t buckets[LATENCY_BUCKETS];
    uint64_t sum_us;
};

static inline void latency_observe(struct latency_histogram *h, uint64_t latency_us) {
    h->buckets[latency_bucket(latency_us)]++;
    h->sum_us += latency_us;
}

#endif
