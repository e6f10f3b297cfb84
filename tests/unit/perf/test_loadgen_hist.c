/* test_loadgen_hist.c - the latency histogram against exact percentiles of known data. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "perf/loadgen_hist.h"
#include "perf/loadgen_rate.h"

static struct hist h;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact percentile by the same rank rule: the ceil(p/100*n)-th smallest value. */
static uint64_t exact(const uint64_t *sorted, size_t n, double p) {
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank == 0) rank = 1;
    return sorted[rank - 1];
}

Test(hist, buckets_are_contiguous_and_bound_their_values) {
    for (uint32_t b = 0; b + 1 < HIST_BUCKETS; b++) {
        cr_assert_eq(hist_bucket_high(b) + 1, hist_bucket_low(b + 1), "bucket %u", b);
        cr_assert_eq(hist_bucket_of(hist_bucket_low(b)), b);
        cr_assert_eq(hist_bucket_of(hist_bucket_high(b)), b);
    }
    for (uint64_t v = 0; v < 300000; v += 7) {
        uint32_t b = hist_bucket_of(v);
        cr_assert(hist_bucket_low(b) <= v && v <= hist_bucket_high(b));
        /* relative width: exact below 256 us, within 1/128 above */
        cr_assert((double)(hist_bucket_high(b) - hist_bucket_low(b)) <= (double)v / 128.0);
    }
    cr_assert_eq(hist_bucket_of(HIST_MAX_US), HIST_BUCKETS - 1);
}

Test(hist, exact_below_256us) {
    hist_init(&h);
    for (uint64_t v = 1; v <= 200; v++) hist_record(&h, v);
    cr_assert_eq(hist_count(&h), 200);
    cr_assert_eq(hist_percentile(&h, 50), 100);
    cr_assert_eq(hist_percentile(&h, 90), 180);
    cr_assert_eq(hist_percentile(&h, 99), 198);
    cr_assert_eq(hist_percentile(&h, 100), 200);
    cr_assert_eq(hist_min(&h), 1);
    cr_assert_eq(hist_max(&h), 200);
    cr_assert_float_eq(hist_mean(&h), 100.5, 1e-9);
}

Test(hist, percentiles_of_random_data_within_resolution) {
    enum { N = 200000 };
    uint64_t *vals = malloc(N * sizeof vals[0]);
    uint64_t rng = 12345;
    hist_init(&h);
    for (size_t i = 0; i < N; i++) {
        /* a long tail: exponential-ish spread from 1 us to ~1 s */
        uint64_t e = lg_rand_below(&rng, 20);
        vals[i] = 1 + lg_rand_below(&rng, UINT64_C(1) << e);
        hist_record(&h, vals[i]);
    }
    qsort(vals, N, sizeof vals[0], cmp_u64);
    const double ps[] = {50, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint64_t want = exact(vals, N, ps[i]), got = hist_percentile(&h, ps[i]);
        /* reported value is the bucket's top: never below the truth, within 1/128 above */
        cr_assert(got >= want, "p%g: got %lu want %lu", ps[i], got, want);
        cr_assert(got <= want + want / 128 + 1, "p%g: got %lu want %lu", ps[i], got, want);
    }
    cr_assert_eq(hist_max(&h), vals[N - 1]);
    cr_assert_eq(hist_min(&h), vals[0]);
    cr_assert(hist_percentile(&h, 50) <= hist_percentile(&h, 99));
    free(vals);
}

Test(hist, merge_equals_recording_into_one) {
    static struct hist a, b, both;
    hist_init(&a);
    hist_init(&b);
    hist_init(&both);
    uint64_t rng = 99;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = lg_rand_below(&rng, 5000000);
        hist_record(i % 2 ? &a : &b, v);
        hist_record(&both, v);
    }
    hist_merge(&a, &b);
    cr_assert_eq(hist_count(&a), hist_count(&both));
    for (double p = 1; p <= 100; p += 3.3)
        cr_assert_eq(hist_percentile(&a, p), hist_percentile(&both, p));
    cr_assert_eq(hist_max(&a), hist_max(&both));
    cr_assert_eq(hist_min(&a), hist_min(&both));
}

Test(hist, empty_and_clamped) {
    hist_init(&h);
    cr_assert_eq(hist_percentile(&h, 99), 0);
    cr_assert_eq(hist_min(&h), 0);
    hist_record_n(&h, UINT64_MAX, 3);
    cr_assert_eq(hist_count(&h), 3);
    cr_assert_eq(hist_max(&h), HIST_MAX_US);
    cr_assert_eq(hist_percentile(&h, 50), HIST_MAX_US);
}
