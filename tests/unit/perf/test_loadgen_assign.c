/* test_loadgen_assign.c - the range assignor (partitions split over group members, the
 * way Kafka's RangeAssignor does) and the consumer protocol bytes it travels in. */
#include <criterion/criterion.h>
#include <string.h>

#include "perf/loadgen_assign.h"

static const char *const names[] = {"alpha", "beta"};

static struct kafka_str id(const char *s) { return kafka_str_from_cstr(s); }

/* 3 members (given out of order), one topic of 7 partitions: 3, 2, 2 by member id. */
Test(assign, range_one_topic_uneven) {
    uint32_t parts[] = {7};
    struct lg_assign_topics t = {.names = names, .partitions = parts, .count = 1};
    struct kafka_str ids[] = {id("m-c"), id("m-a"), id("m-b")};
    uint8_t sub[] = {1, 1, 1};
    uint32_t order[3];
    int32_t owner[7];
    lg_range_assign(ids, 3, sub, &t, order, owner);
    int32_t want[] = {1, 1, 1, 2, 2, 0, 0}; /* m-a: 0-2, m-b: 3-4, m-c: 5-6 */
    for (int p = 0; p < 7; p++) cr_assert_eq(owner[p], want[p], "partition %d", p);
}

/* Every partition has exactly one owner, and counts differ by at most one per topic. */
Test(assign, range_every_partition_once) {
    uint32_t parts[] = {6, 5};
    struct lg_assign_topics t = {.names = names, .partitions = parts, .count = 2};
    struct kafka_str ids[] = {id("x"), id("y"), id("z"), id("w")};
    uint8_t sub[8];
    memset(sub, 1, sizeof sub);
    uint32_t order[4];
    int32_t owner[11];
    lg_range_assign(ids, 4, sub, &t, order, owner);
    for (uint32_t k = 0, g0 = 0; k < 2; g0 += parts[k], k++) {
        int count[4] = {0};
        for (uint32_t p = 0; p < parts[k]; p++) {
            cr_assert(owner[g0 + p] >= 0 && owner[g0 + p] < 4);
            count[owner[g0 + p]]++;
        }
        int lo = 100, hi = 0;
        for (int m = 0; m < 4; m++) {
            lo = count[m] < lo ? count[m] : lo;
            hi = count[m] > hi ? count[m] : hi;
        }
        cr_assert_leq(hi - lo, 1, "topic %u", k);
    }
    /* ranges are per topic: the first member in id order (w) gets the first ones */
    cr_assert_eq(owner[0], 3);
    cr_assert_eq(owner[6], 3);
}

/* More members than partitions: the last ones by id get nothing. */
Test(assign, range_more_members_than_partitions) {
    uint32_t parts[] = {2};
    struct lg_assign_topics t = {.names = names, .partitions = parts, .count = 1};
    struct kafka_str ids[] = {id("c"), id("b"), id("a")};
    uint8_t sub[] = {1, 1, 1};
    uint32_t order[3];
    int32_t owner[2];
    lg_range_assign(ids, 3, sub, &t, order, owner);
    cr_assert_eq(owner[0], 2); /* a */
    cr_assert_eq(owner[1], 1); /* b */
}

/* A member subscribed to other topics (a Kafka consumer in the same group) gets none of
 * ours; a topic nobody subscribes to is owned by no one. */
Test(assign, range_respects_subscriptions) {
    uint32_t parts[] = {4, 2};
    struct lg_assign_topics t = {.names = names, .partitions = parts, .count = 2};
    struct kafka_str ids[] = {id("a"), id("b")};
    uint8_t sub[] = {1, 0, 0, 0}; /* a: alpha; b: neither */
    uint32_t order[2];
    int32_t owner[6];
    lg_range_assign(ids, 2, sub, &t, order, owner);
    for (int p = 0; p < 4; p++) cr_assert_eq(owner[p], 0);
    cr_assert_eq(owner[4], -1);
    cr_assert_eq(owner[5], -1);
}

Test(assign, subscription_round_trip) {
    uint32_t parts[] = {3, 3};
    struct lg_assign_topics t = {.names = names, .partitions = parts, .count = 2};
    uint8_t buf[64], sub[2];
    size_t n = lg_subscription_encode(buf, sizeof buf, &t);
    cr_assert_eq(n, lg_subscription_max_bytes(&t));
    /* v0: int16 version 0, 2 topics, "alpha", "beta", null user data */
    static const uint8_t want[] = {0, 0, 0, 0, 0, 2, 0, 5, 'a', 'l', 'p', 'h', 'a',
                                   0, 4, 'b', 'e', 't', 'a', 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(n, sizeof want);
    cr_assert_arr_eq(buf, want, sizeof want);
    cr_assert_eq(lg_subscription_topics(buf, n, &t, sub), 0);
    cr_assert(sub[0] == 1 && sub[1] == 1);
    cr_assert_eq(lg_subscription_encode(buf, 10, &t), 0); /* too small */
    cr_assert_eq(lg_subscription_topics(buf, 3, &t, sub), -1); /* truncated */
}

Test(assign, assignment_round_trip) {
    uint32_t parts[] = {3, 2};
    struct lg_assign_topics t = {.names = names, .partitions = parts, .count = 2};
    int32_t owner[] = {0, 1, 0, -1, 0};
    uint8_t buf[128];
    size_t n = lg_assignment_encode(buf, sizeof buf, &t, owner, 0);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, lg_assignment_max_bytes(&t, 5));
    uint32_t gs[8];
    int32_t got = lg_assignment_decode(buf, n, &t, gs, 8);
    cr_assert_eq(got, 3);
    cr_assert_eq(gs[0], 0); /* alpha/0 */
    cr_assert_eq(gs[1], 2); /* alpha/2 */
    cr_assert_eq(gs[2], 4); /* beta/1 */
    cr_assert_eq(lg_assignment_decode(buf, n, &t, gs, 2), -1); /* no room */
    cr_assert_eq(lg_assignment_decode(buf, 0, &t, gs, 8), 0);  /* empty: nothing */
    cr_assert_eq(lg_assignment_decode(buf, n - 6, &t, gs, 8), -1);
    /* member 1 owns only alpha/1: one topic entry */
    n = lg_assignment_encode(buf, sizeof buf, &t, owner, 1);
    got = lg_assignment_decode(buf, n, &t, gs, 8);
    cr_assert_eq(got, 1);
    cr_assert_eq(gs[0], 1);
}
