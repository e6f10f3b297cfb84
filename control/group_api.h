/* group_api.h - the group APIs on the control thread: decode, call the coordinator and the
 * offset store, encode; durable commits through __consumer_offsets. See group_api.c. */
#ifndef SLUICE_CONTROL_GROUP_API_H
#define SLUICE_CONTROL_GROUP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/group_coordinator.h"
#include "dataplane/kafka/wire.h"

struct control_plane;
struct control_job;

/* execute result: the job is kept and answered later through control_plane_answer(). */
#define GROUP_API_PARKED 1

struct group_api {
    struct control_plane *cp;
    struct group_coordinator gc;
    int32_t offsets_partitions;     /* offsets.topic.num.partitions, or the existing topic's */
    uint32_t writes_in_flight;      /* appends to __consumer_offsets not yet answered */
    uint64_t last_tick_ms;
};

/* Set up from the broker config and replay __consumer_offsets (before shards start).
 * 0 or -1 with err. */
int group_api_init(struct group_api *api, struct control_plane *cp, const char *data_dir,
                   char *err, size_t err_bytes);
void group_api_destroy(struct group_api *api);

/* Is api_key one of the group APIs (OffsetCommit, OffsetFetch, JoinGroup, Heartbeat,
 * LeaveGroup, SyncGroup, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete)? */
bool group_api_handles(int16_t api_key);
/* 0 with resp (a union kafka_response_any) filled: encode and answer now;
 * GROUP_API_PARKED: answered later; another value: a codec error (the connection closes). */
int group_api_execute(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                      void *resp);
/* Timers (control loop). */
void group_api_tick(struct group_api *api);
/* A topic was deleted: its committed offsets go (in memory; tombstones are not written). */
void group_api_topic_deleted(struct group_api *api, const char *topic);

/* Lag for the admin CLI and metrics: every committed offset, in no particular order.
 * fn returns false to stop. */
typedef bool (*group_offset_visit_fn)(void *arg, const char *group, const char *topic,
                                      int32_t partition, int64_t committed_offset);
void group_api_visit_offsets(struct group_api *api, group_offset_visit_fn fn, void *arg);

#endif
