/* loadgen_rate.h - what to send and when: the open-loop schedule, message sizes, keys.
 *
 * Open loop: message i of a producer is due at start + i * interval, whether or not the
 * broker kept up. Its latency is measured from that intended time, so a stall that
 * delays sending is charged to every message it delayed (coordinated-omission
 * correction). With rate 0 there is no schedule: a message is due when the producer can
 * take it, and its intended time is when it was generated. */
#ifndef SLUICE_PERF_LOADGEN_RATE_H
#define SLUICE_PERF_LOADGEN_RATE_H

#include <stdint.h>

struct lg_schedule {
    uint64_t start_ns;
    double interval_ns;     /* 0: as fast as possible */
    uint64_t next_index;    /* messages taken so far */
};

void lg_schedule_init(struct lg_schedule *s, uint64_t start_ns, double rate_msgs);
/* Nothing is due before start_ns, at any rate. */
/* If a message is due at now_ns, take it: store its intended time and return 1. */
int lg_schedule_take(struct lg_schedule *s, uint64_t now_ns, uint64_t *intended_ns);
/* Nanoseconds until the next message is due (0 if one is due now or rate is 0). */
uint64_t lg_schedule_wait_ns(const struct lg_schedule *s, uint64_t now_ns);

/* xorshift64*: fast, per thread, seeded. */
static inline uint64_t lg_rand_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}
/* Uniform in [0, n). */
static inline uint64_t lg_rand_below(uint64_t *state, uint64_t n) {
    return (uint64_t)(((unsigned __int128)lg_rand_next(state) * n) >> 64);
}

/* Zipf(s) over keys 0..n-1: key k has weight 1/(k+1)^s. The CDF is built once
 * (n doubles, n <= LG_ZIPF_MAX_KEYS) and shared read-only by every thread; a sample is
 * one binary search. */
#define LG_ZIPF_MAX_KEYS (1u << 20)
struct lg_zipf {
    double *cdf;
    uint32_t n;
};
int lg_zipf_init(struct lg_zipf *z, uint32_t n, double s);
uint32_t lg_zipf_sample(const struct lg_zipf *z, uint64_t *rng);
void lg_zipf_destroy(struct lg_zipf *z);

#endif
