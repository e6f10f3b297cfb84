/* loadgen_assign.c - consumer protocol bytes and the range assignor (see loadgen_assign.h).
 *
 * Read with the codec's bounds-checked reader (a malformed member's metadata fails the
 * parse, never reads past it), written with its writer (overflow sets w.err). */
#include "perf/loadgen_assign.h"

#include <string.h>

static uint32_t topic_first_g(const struct lg_assign_topics *t, uint32_t topic) {
    uint32_t g = 0;
    for (uint32_t k = 0; k < topic; k++) g += t->partitions[k];
    return g;
}

static int topic_of(const struct lg_assign_topics *t, struct kafka_str name) {
    for (uint32_t k = 0; k < t->count; k++)
        if (kafka_str_equals_cstr(name, t->names[k])) return (int)k;
    return -1;
}

size_t lg_subscription_max_bytes(const struct lg_assign_topics *t) {
    size_t n = 2 + 4 + 4;
    for (uint32_t k = 0; k < t->count; k++) n += 2 + strlen(t->names[k]);
    return n;
}

size_t lg_assignment_max_bytes(const struct lg_assign_topics *t, uint32_t owned_partitions) {
    size_t n = 2 + 4 + 4 + (size_t)owned_partitions * 4;
    for (uint32_t k = 0; k < t->count; k++) n += 2 + strlen(t->names[k]) + 4;
    return n;
}

size_t lg_subscription_encode(uint8_t *out, size_t cap_bytes, const struct lg_assign_topics *t) {
    struct kafka_writer w;
    kafka_writer_init(&w, out, cap_bytes);
    kafka_write_int16(&w, 0);
    kafka_write_array_len(&w, (int32_t)t->count, false);
    for (uint32_t k = 0; k < t->count; k++)
        kafka_write_string(&w, kafka_str_from_cstr(t->names[k]), false);
    kafka_write_bytes(&w, (struct kafka_bytes){.ptr = NULL, .len = -1}, false);
    return w.err ? 0 : w.len_bytes;
}

int lg_subscription_topics(const uint8_t *p, size_t len, const struct lg_assign_topics *t,
                           uint8_t *subscribed) {
    memset(subscribed, 0, t->count);
    struct kafka_reader r;
    kafka_reader_init(&r, p, len);
    int16_t version = kafka_read_int16(&r);
    int32_t n = kafka_read_array_len(&r, false, 2);
    for (int32_t i = 0; i < n && !r.err; i++) {
        int k = topic_of(t, kafka_read_string(&r, false));
        if (k >= 0) subscribed[k] = 1;
    }
    return r.err || version < 0 || n < 0 ? -1 : 0;
}

size_t lg_assignment_encode(uint8_t *out, size_t cap_bytes, const struct lg_assign_topics *t,
                            const int32_t *owner, int32_t member) {
    struct kafka_writer w;
    kafka_writer_init(&w, out, cap_bytes);
    kafka_write_int16(&w, 0);
    size_t count_at = kafka_writer_reserve(&w, 4);
    int32_t topics = 0;
    for (uint32_t k = 0, g0 = 0; k < t->count; g0 += t->partitions[k], k++) {
        int32_t mine = 0;
        for (uint32_t p = 0; p < t->partitions[k]; p++) mine += owner[g0 + p] == member;
        if (mine == 0) continue;
        kafka_write_string(&w, kafka_str_from_cstr(t->names[k]), false);
        kafka_write_int32(&w, mine);
        for (uint32_t p = 0; p < t->partitions[k]; p++)
            if (owner[g0 + p] == member) kafka_write_int32(&w, (int32_t)p);
        topics++;
    }
    kafka_write_bytes(&w, (struct kafka_bytes){.ptr = NULL, .len = -1}, false);
    if (w.err) return 0;
    kafka_writer_patch_int32(&w, count_at, topics);
    return w.len_bytes;
}

int32_t lg_assignment_decode(const uint8_t *p, size_t len, const struct lg_assign_topics *t,
                             uint32_t *gs, uint32_t cap) {
    struct kafka_reader r;
    kafka_reader_init(&r, p, len);
    if (len == 0) return 0; /* an empty assignment: nothing for this member */
    int16_t version = kafka_read_int16(&r);
    int32_t topics = kafka_read_array_len(&r, false, 6);
    uint32_t n = 0;
    for (int32_t i = 0; i < topics && !r.err; i++) {
        int k = topic_of(t, kafka_read_string(&r, false));
        int32_t parts = kafka_read_array_len(&r, false, 4);
        for (int32_t j = 0; j < parts && !r.err; j++) {
            int32_t part = kafka_read_int32(&r);
            if (k < 0 || part < 0 || (uint32_t)part >= t->partitions[k]) continue;
            if (n == cap) return -1;
            gs[n++] = topic_first_g(t, (uint32_t)k) + (uint32_t)part;
        }
    }
    return r.err || version < 0 || topics < 0 ? -1 : (int32_t)n;
}

static int id_cmp(struct kafka_str a, struct kafka_str b) {
    int32_t al = a.len > 0 ? a.len : 0, bl = b.len > 0 ? b.len : 0;
    int c = memcmp(a.ptr ? a.ptr : "", b.ptr ? b.ptr : "", (size_t)(al < bl ? al : bl));
    return c ? c : (al > bl) - (al < bl);
}

void lg_range_assign(const struct kafka_str *ids, uint32_t member_count,
                     const uint8_t *subscribed, const struct lg_assign_topics *t,
                     uint32_t *order, int32_t *owner) {
    for (uint32_t i = 0; i < member_count; i++) { /* insertion sort: a rebalance, not hot */
        uint32_t j = i;
        while (j > 0 && id_cmp(ids[order[j - 1]], ids[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (uint32_t k = 0, g0 = 0; k < t->count; g0 += t->partitions[k], k++) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < member_count; i++) n += subscribed[order[i] * t->count + k];
        uint32_t parts = t->partitions[k], next = 0, rank = 0;
        for (uint32_t p = 0; p < parts; p++) owner[g0 + p] = -1;
        for (uint32_t i = 0; i < member_count && n > 0; i++) {
            uint32_t m = order[i];
            if (!subscribed[m * t->count + k]) continue;
            uint32_t take = parts / n + (rank < parts % n ? 1 : 0);
            for (uint32_t p = 0; p < take; p++) owner[g0 + next++] = (int32_t)m;
            rank++;
        }
    }
}
