/* loadgen_rate.c - open-loop schedule and the zipf key sampler (see loadgen_rate.h). */
#include "perf/loadgen_rate.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

void lg_schedule_init(struct lg_schedule *s, uint64_t start_ns, double rate_msgs) {
    assert(rate_msgs >= 0);
    s->start_ns = start_ns;
    s->interval_ns = rate_msgs > 0 ? 1e9 / rate_msgs : 0;
    s->next_index = 0;
}

static uint64_t due_ns(const struct lg_schedule *s) {
    return s->start_ns + (uint64_t)((double)s->next_index * s->interval_ns);
}

int lg_schedule_take(struct lg_schedule *s, uint64_t now_ns, uint64_t *intended_ns) {
    if (now_ns < s->start_ns) return 0;
    if (s->interval_ns == 0) {
        *intended_ns = now_ns;
        s->next_index++;
        return 1;
    }
    uint64_t due = due_ns(s);
    if (due > now_ns) return 0;
    *intended_ns = due;
    s->next_index++;
    return 1;
}

uint64_t lg_schedule_wait_ns(const struct lg_schedule *s, uint64_t now_ns) {
    if (now_ns < s->start_ns) return s->start_ns - now_ns;
    if (s->interval_ns == 0) return 0;
    uint64_t due = due_ns(s);
    return due > now_ns ? due - now_ns : 0;
}

int lg_zipf_init(struct lg_zipf *z, uint32_t n, double s) {
    assert(n > 0 && s > 0);
    if (n > LG_ZIPF_MAX_KEYS) return -1;
    z->cdf = malloc((size_t)n * sizeof z->cdf[0]);
    if (!z->cdf) return -1;
    z->n = n;
    double sum = 0;
    for (uint32_t k = 0; k < n; k++) {
        sum += 1.0 / pow((double)k + 1.0, s);
        z->cdf[k] = sum;
    }
    for (uint32_t k = 0; k < n; k++) z->cdf[k] /= sum;
    z->cdf[n - 1] = 1.0;
    return 0;
}

uint32_t lg_zipf_sample(const struct lg_zipf *z, uint64_t *rng) {
    double u = (double)(lg_rand_next(rng) >> 11) * (1.0 / 9007199254740992.0); /* [0,1) */
    uint32_t lo = 0, hi = z->n - 1;
    while (lo < hi) { /* first k with cdf[k] > u */
        uint32_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

void lg_zipf_destroy(struct lg_zipf *z) {
    free(z->cdf);
    z->cdf = NULL;
    z->n = 0;
}
