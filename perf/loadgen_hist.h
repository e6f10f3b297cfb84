/* loadgen_hist.h - an HDR-style latency histogram: log-linear buckets, bounded memory.
 *
 * Values are microseconds (uint64). Values below HIST_LINEAR_US land in a bucket of
 * their own (exact); above, every power of two is split into HIST_SUB_BUCKETS equal
 * buckets, so a reported percentile is within 1/HIST_SUB_BUCKETS (0.8 %) of the true
 * value. Values beyond HIST_MAX_US are clamped (and counted in `clamped`). The whole
 * histogram is one fixed array of HIST_BUCKETS counters (about 36 KiB): no allocation.
 *
 * One thread writes a histogram; another may read it while it is written (the live
 * progress line), so counters are relaxed atomics: the writer's increments are plain
 * load+store (single writer), a reader sees some recent state of each counter. */
#ifndef SLUICE_PERF_LOADGEN_HIST_H
#define SLUICE_PERF_LOADGEN_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define HIST_LINEAR_US 256u      /* exact below this */
#define HIST_SUB_BUCKETS 128u    /* per power of two above it */
#define HIST_MAX_LOG2 40u        /* 2^40 us = 12.7 days: anything above is clamped */
#define HIST_MAX_US ((UINT64_C(1) << HIST_MAX_LOG2) - 1)
#define HIST_BUCKETS (HIST_LINEAR_US + (HIST_MAX_LOG2 - 8u) * HIST_SUB_BUCKETS)

struct hist {
    _Atomic uint64_t counts[HIST_BUCKETS];
    _Atomic uint64_t total;
    _Atomic uint64_t sum_us;
    _Atomic uint64_t min_us;     /* UINT64_MAX while empty */
    _Atomic uint64_t max_us;
    _Atomic uint64_t clamped;
};

void hist_init(struct hist *h);
/* Add `count` observations of value_us. Single writer per histogram. */
void hist_record_n(struct hist *h, uint64_t value_us, uint64_t count);
static inline void hist_record(struct hist *h, uint64_t value_us) {
    hist_record_n(h, value_us, 1);
}
/* dst += src (dst has a single writer: the caller). */
void hist_merge(struct hist *dst, const struct hist *src);
uint64_t hist_count(const struct hist *h);
/* The smallest bucket upper bound below which at least p percent (0..100) of the values
 * lie, capped at the exact maximum; 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);
uint64_t hist_max(const struct hist *h);
uint64_t hist_min(const struct hist *h);

/* Bucket arithmetic (exposed for the unit test). */
uint32_t hist_bucket_of(uint64_t value_us);
uint64_t hist_bucket_low(uint32_t bucket);
uint64_t hist_bucket_high(uint32_t bucket);

#endif
