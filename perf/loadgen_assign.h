/* loadgen_assign.h - the client half of a consumer group's bytes: Kafka's consumer
 * protocol formats (ConsumerProtocolSubscription / ConsumerProtocolAssignment, written
 * as version 0, read at any version) and the range assignor the group leader runs.
 * Pure functions, no I/O (tests/unit/perf/test_loadgen_assign.c).
 *
 * Partitions are named by a global index g: the topics' partitions flattened in topic
 * order (topic t's partition p is g = sum of the partitions of topics < t, plus p), the
 * numbering struct lg_shared uses. */
#ifndef SLUICE_PERF_LOADGEN_ASSIGN_H
#define SLUICE_PERF_LOADGEN_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "dataplane/kafka/wire.h"

#define LG_GROUP_PROTOCOL_TYPE "consumer"
#define LG_GROUP_ASSIGNOR "range"

/* The topics of a run, as the assignor sees them. */
struct lg_assign_topics {
    const char *const *names;
    const uint32_t *partitions;        /* per topic */
    uint32_t count;
};

/* Bytes of a subscription to every topic, and of one member's assignment at most. */
size_t lg_subscription_max_bytes(const struct lg_assign_topics *t);
size_t lg_assignment_max_bytes(const struct lg_assign_topics *t, uint32_t owned_partitions);

/* Subscription v0 to every topic: [int16 0][topics][null user data]. Length, 0 if cap
 * is too small. */
size_t lg_subscription_encode(uint8_t *out, size_t cap_bytes, const struct lg_assign_topics *t);
/* Which topics a member's subscription (any version: v1+ only append fields) names:
 * subscribed[t] = 1 or 0. 0, or -1 if it does not parse. */
int lg_subscription_topics(const uint8_t *p, size_t len, const struct lg_assign_topics *t,
                           uint8_t *subscribed);

/* Assignment v0 of the partitions with owner[g] == member (topics without any are left
 * out). Length, 0 if cap is too small. */
size_t lg_assignment_encode(uint8_t *out, size_t cap_bytes, const struct lg_assign_topics *t,
                            const int32_t *owner, int32_t member);
/* The global partitions an assignment (any version) names, in its order; topics and
 * partitions of other runs are skipped. Count, or -1 if it does not parse or more than
 * cap would be needed. */
int32_t lg_assignment_decode(const uint8_t *p, size_t len, const struct lg_assign_topics *t,
                             uint32_t *gs, uint32_t cap);

/* Kafka's RangeAssignor: members ordered by member id (bytewise); for each topic, the
 * n members subscribed to it (subscribed[m * topic count + t]) take consecutive ranges
 * of its P partitions in that order, P / n each and one more for the first P % n.
 * owner[g] = member index (into ids), -1 when no member subscribes to its topic.
 * order is scratch for member_count entries. */
void lg_range_assign(const struct kafka_str *ids, uint32_t member_count,
                     const uint8_t *subscribed, const struct lg_assign_topics *t,
                     uint32_t *order, int32_t *owner);

#endif
