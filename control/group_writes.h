/* group_writes.h - the group APIs that write __consumer_offsets (group_writes.c), and the
 * small helpers group_api.c and group_writes.c share. Control thread only. */
#ifndef SLUICE_CONTROL_GROUP_WRITES_H
#define SLUICE_CONTROL_GROUP_WRITES_H

#include <stdint.h>
#include <time.h>

#include "control/group_api.h"

/* Each decodes the job's request; 0 with resp filled (answer now), GROUP_API_PARKED
 * (answered through control_plane_answer() once the append is durable), or a codec
 * error. */
int group_writes_offset_commit(struct group_api *api, struct control_job *job,
                               struct kafka_reader *r, void *resp);
int group_writes_offset_delete(struct group_api *api, struct control_job *job,
                               struct kafka_reader *r, void *resp);
int group_writes_delete_groups(struct group_api *api, struct control_job *job,
                               struct kafka_reader *r, void *resp);
/* TxnOffsetCommit: a transactional batch; the offsets wait in the transaction. */
int group_writes_txn_offset_commit(struct group_api *api, struct control_job *job,
                                   struct kafka_reader *r, void *resp);
/* The __consumer_offsets topic, created on first need; NULL when it cannot be. */
struct catalog_topic;
const struct catalog_topic *group_writes_offsets_topic(struct group_api *api);
/* The coordinator's expiry callback (ctx = struct group_api): tombstones for g. */
void group_writes_expired(void *ctx, const struct group *g);

static inline uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline size_t slen(struct kafka_str s) { return s.len > 0 ? (size_t)s.len : 0; }

/* A bytes view of p (never null: Kafka's non-nullable bytes). */
static inline struct kafka_bytes bytes_of(const uint8_t *p, uint32_t n) {
    return (struct kafka_bytes){p ? p : (const uint8_t *)"", (int32_t)n};
}

#endif
