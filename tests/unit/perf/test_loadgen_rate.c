/* test_loadgen_rate.c - the open-loop schedule and the zipf sampler. */
#include <criterion/criterion.h>
#include <math.h>

#include "perf/loadgen_rate.h"

Test(schedule, intended_times_follow_the_schedule_not_the_caller) {
    struct lg_schedule s;
    lg_schedule_init(&s, 1000000000ull, 1000); /* 1000 msg/s: one per ms */
    uint64_t t;
    cr_assert_eq(lg_schedule_take(&s, 999999999ull, &t), 0); /* not yet */
    cr_assert_eq(lg_schedule_wait_ns(&s, 999999000ull), 1000);
    /* the caller was late by 10.5 ms: 11 messages are due, each at its own time */
    uint64_t now = 1010500000ull;
    int n = 0;
    while (lg_schedule_take(&s, now, &t)) {
        cr_assert_eq(t, 1000000000ull + (uint64_t)n * 1000000ull);
        n++;
    }
    cr_assert_eq(n, 11);
    cr_assert_eq(lg_schedule_wait_ns(&s, now), 500000);
}

Test(schedule, rate_zero_is_as_fast_as_possible) {
    struct lg_schedule s;
    lg_schedule_init(&s, 5, 0);
    uint64_t t;
    cr_assert_eq(lg_schedule_take(&s, 4, &t), 0); /* not before the start */
    cr_assert_eq(lg_schedule_wait_ns(&s, 2), 3);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(lg_schedule_take(&s, 77 + (uint64_t)i, &t), 1);
        cr_assert_eq(t, 77 + (uint64_t)i); /* intended = when generated */
    }
    cr_assert_eq(lg_schedule_wait_ns(&s, 200), 0);
}

Test(zipf, frequencies_follow_the_law) {
    struct lg_zipf z;
    cr_assert_eq(lg_zipf_init(&z, 100, 1.0), 0);
    enum { N = 400000 };
    static uint32_t counts[100];
    uint64_t rng = 42;
    for (int i = 0; i < N; i++) {
        uint32_t k = lg_zipf_sample(&z, &rng);
        cr_assert(k < 100);
        counts[k]++;
    }
    double h = 0;
    for (int k = 1; k <= 100; k++) h += 1.0 / k;
    for (int k = 0; k < 5; k++) {
        double want = N / ((k + 1) * h);
        cr_assert(fabs(counts[k] - want) < 0.03 * want, "key %d: %u vs %.0f", k, counts[k], want);
    }
    cr_assert(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]);
    lg_zipf_destroy(&z);
    cr_assert_neq(lg_zipf_init(&z, LG_ZIPF_MAX_KEYS + 1, 1.0), 0);
}

Test(rand, below_is_in_range_and_uniform_enough) {
    uint64_t rng = 7;
    static uint32_t c[10];
    for (int i = 0; i < 100000; i++) {
        uint64_t v = lg_rand_below(&rng, 10);
        cr_assert(v < 10);
        c[v]++;
    }
    for (int i = 0; i < 10; i++) cr_assert(c[i] > 9400 && c[i] < 10600);
}
