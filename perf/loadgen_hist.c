/* loadgen_hist.c - log-linear latency buckets (see loadgen_hist.h).
 *
 * Bucket of value v:
 *   v < 256:  bucket v (width 1 us)
 *   else:     e = floor(log2 v) (8..39), top = v >> (e - 7) in [128, 256):
 *             bucket 256 + (e - 8) * 128 + (top - 128), width 2^(e - 7)
 * so the buckets are contiguous and increasing in value, and percentile is one walk. */
#include "perf/loadgen_hist.h"

#include <assert.h>

#define RELAXED memory_order_relaxed

static inline void add_relaxed(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, RELAXED) + n, RELAXED);
}

static inline uint64_t get(const _Atomic uint64_t *c) {
    return atomic_load_explicit(c, RELAXED);
}

void hist_init(struct hist *h) {
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) atomic_init(&h->counts[i], 0);
    atomic_init(&h->total, 0);
    atomic_init(&h->sum_us, 0);
    atomic_init(&h->min_us, UINT64_MAX);
    atomic_init(&h->max_us, 0);
    atomic_init(&h->clamped, 0);
}

uint32_t hist_bucket_of(uint64_t v) {
    if (v < HIST_LINEAR_US) return (uint32_t)v;
    if (v > HIST_MAX_US) v = HIST_MAX_US;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
    assert(e >= 8 && e < HIST_MAX_LOG2);
    uint64_t top = v >> (e - 7);
    assert(top >= 128 && top < 256);
    return HIST_LINEAR_US + (e - 8) * HIST_SUB_BUCKETS + (uint32_t)(top - 128);
}

uint64_t hist_bucket_low(uint32_t b) {
    assert(b < HIST_BUCKETS);
    if (b < HIST_LINEAR_US) return b;
    uint32_t e = 8 + (b - HIST_LINEAR_US) / HIST_SUB_BUCKETS;
    uint64_t top = 128 + (b - HIST_LINEAR_US) % HIST_SUB_BUCKETS;
    return top << (e - 7);
}

uint64_t hist_bucket_high(uint32_t b) {
    assert(b < HIST_BUCKETS);
    if (b < HIST_LINEAR_US) return b;
    uint32_t e = 8 + (b - HIST_LINEAR_US) / HIST_SUB_BUCKETS;
    return hist_bucket_low(b) + (UINT64_C(1) << (e - 7)) - 1;
}

void hist_record_n(struct hist *h, uint64_t v, uint64_t n) {
    if (n == 0) return;
    if (v > HIST_MAX_US) {
        add_relaxed(&h->clamped, n);
        v = HIST_MAX_US;
    }
    add_relaxed(&h->counts[hist_bucket_of(v)], n);
    add_relaxed(&h->total, n);
    add_relaxed(&h->sum_us, v * n);
    if (v < get(&h->min_us)) atomic_store_explicit(&h->min_us, v, RELAXED);
    if (v > get(&h->max_us)) atomic_store_explicit(&h->max_us, v, RELAXED);
}

void hist_merge(struct hist *dst, const struct hist *src) {
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) add_relaxed(&dst->counts[i], get(&src->counts[i]));
    add_relaxed(&dst->total, get(&src->total));
    add_relaxed(&dst->sum_us, get(&src->sum_us));
    add_relaxed(&dst->clamped, get(&src->clamped));
    if (get(&src->min_us) < get(&dst->min_us))
        atomic_store_explicit(&dst->min_us, get(&src->min_us), RELAXED);
    if (get(&src->max_us) > get(&dst->max_us))
        atomic_store_explicit(&dst->max_us, get(&src->max_us), RELAXED);
}

uint64_t hist_count(const struct hist *h) { return get(&h->total); }
uint64_t hist_max(const struct hist *h) { return get(&h->max_us); }

uint64_t hist_min(const struct hist *h) {
    uint64_t m = get(&h->min_us);
    return m == UINT64_MAX ? 0 : m;
}

double hist_mean(const struct hist *h) {
    uint64_t n = get(&h->total);
    return n ? (double)get(&h->sum_us) / (double)n : 0.0;
}

uint64_t hist_percentile(const struct hist *h, double p) {
    /* The bucket counters may be a little ahead of `total` while a writer runs: sum the
     * buckets instead so the walk always finds its rank. */
    uint64_t total = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) total += get(&h->counts[i]);
    if (total == 0) return 0;
    if (p < 0) p = 0;
    if (p > 100) p = 100;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)total + 0.999999);
    if (rank == 0) rank = 1;
    if (rank > total) rank = total;
    uint64_t seen = 0, max_us = get(&h->max_us);
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += get(&h->counts[i]);
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            return v < max_us ? v : max_us;
        }
    }
    return max_us;
}
