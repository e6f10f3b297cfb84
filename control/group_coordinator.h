/* group_coordinator.h - the classic consumer group protocol's state machine: groups,
 * members, generations, rebalances, timers, and each group's committed offsets.
 * See group_coordinator.c. Control thread only; knows nothing of the wire: requests come
 * in as plain arguments (group_api.c decodes them) and answers that must wait (JoinGroup
 * until the rebalance completes, SyncGroup until the leader's assignment arrives) go out
 * through struct group_replies, holding the caller's opaque waiter. */
#ifndef SLUICE_CONTROL_GROUP_COORDINATOR_H
#define SLUICE_CONTROL_GROUP_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/group_offsets.h"

/* Kafka error codes the coordinator answers with. */
#define GROUP_ERR_NONE 0
#define GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION 3
#define GROUP_ERR_OFFSET_METADATA_TOO_LARGE 12
#define GROUP_ERR_COORDINATOR_NOT_AVAILABLE 15
#define GROUP_ERR_ILLEGAL_GENERATION 22
#define GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL 23
#define GROUP_ERR_INVALID_GROUP_ID 24
#define GROUP_ERR_UNKNOWN_MEMBER_ID 25
#define GROUP_ERR_INVALID_SESSION_TIMEOUT 26
#define GROUP_ERR_REBALANCE_IN_PROGRESS 27
#define GROUP_ERR_INVALID_REQUEST 42
#define GROUP_ERR_NON_EMPTY_GROUP 68
#define GROUP_ERR_GROUP_ID_NOT_FOUND 69
#define GROUP_ERR_MEMBER_ID_REQUIRED 79
#define GROUP_ERR_GROUP_MAX_SIZE_REACHED 81
#define GROUP_ERR_FENCED_INSTANCE_ID 82
#define GROUP_ERR_UNKNOWN_SERVER_ERROR (-1)

#define GROUP_MAX_GROUPS 100000u       /* groups the coordinator holds */
#define GROUP_MAX_PROTOCOLS 16         /* assignment protocols one member may offer */
#define GROUP_NAME_MAX_BYTES 255u      /* protocol type / name / member / instance ids */
#define GROUP_MAX_MEMBERS 10000u       /* members of one group (group.max.size caps lower) */

enum group_state {
    GROUP_EMPTY,
    GROUP_PREPARING_REBALANCE,
    GROUP_COMPLETING_REBALANCE,
    GROUP_STABLE,
    GROUP_DEAD,
};
const char *group_state_name(enum group_state s); /* Kafka's names: "Empty", "Stable", ... */
/* -1 when name is not a state (ListGroups' filter is case-insensitive, as Kafka's). */
int group_state_parse(const char *name, size_t len);

struct group_protocol {
    char *name;
    uint8_t *metadata;
    uint32_t metadata_bytes;
};

struct group_member {
    char *member_id;
    char *instance_id;           /* NULL: a dynamic member */
    char *client_id;
    char *client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    struct group_protocol protocols[GROUP_MAX_PROTOCOLS];
    int protocol_count;
    uint8_t *assignment;         /* from the leader's SyncGroup */
    uint32_t assignment_bytes;
    uint64_t last_seen_ms;       /* last heartbeat, join or sync */
    bool pending;                /* got MEMBER_ID_REQUIRED, has not joined yet */
    void *join_waiter;           /* a JoinGroup parked until the rebalance completes */
    int16_t join_version;
    void *sync_waiter;           /* a SyncGroup parked until the leader's assignment */
    struct group_member *next;
};

struct group {
    char *group_id;
    enum group_state state;
    int32_t generation_id;
    char *protocol_type;         /* NULL until a member joins */
    char *protocol_name;         /* chosen at the end of a rebalance */
    struct group_member *members; /* joined and pending members, in join order */
    uint32_t member_count;        /* not counting pending ones */
    struct group_member *leader;
    uint64_t rebalance_deadline_ms;  /* PreparingRebalance: when it completes anyway */
    uint64_t initial_delay_until_ms; /* PreparingRebalance from Empty: not before */
    uint64_t rebalance_start_ms;     /* bounds how far the initial delay extends */
    uint64_t empty_since_ms;         /* offsets expire offsets.retention.minutes after */
    uint64_t last_commit_ms;         /* ... or after the last commit, if later */
    struct group_offset_table offsets;
    uint32_t commits_in_flight;      /* OffsetCommits waiting for their append */
    struct group *next;
};

struct group_join_args {
    const char *group_id; size_t group_len;
    const char *member_id; size_t member_len;      /* "" for a new member */
    const char *instance_id; size_t instance_len;  /* NULL: dynamic member */
    const char *client_id; const char *client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    const char *protocol_type; size_t protocol_type_len;
    int protocol_count;
    const char *protocol_names[GROUP_MAX_PROTOCOLS];
    size_t protocol_name_lens[GROUP_MAX_PROTOCOLS];
    const uint8_t *protocol_metadata[GROUP_MAX_PROTOCOLS];
    uint32_t protocol_metadata_bytes[GROUP_MAX_PROTOCOLS];
    int16_t version;
    void *waiter;                /* kept when the answer must wait */
};

/* A JoinGroup answer. member->protocols hold the metadata the leader needs
 * (group_member_protocol_metadata()). */
struct group_join_answer {
    int16_t error_code;
    int32_t generation_id;
    const char *protocol_type;   /* NULL: null */
    const char *protocol_name;
    const char *leader_id;
    const char *member_id;
    const struct group *group;   /* the leader's answer lists group->members */
    bool is_leader;
    bool skip_assignment;        /* v9: a static leader rejoining a stable group */
};

/* Answers for parked requests (the waiter given with the request). */
struct group_replies {
    void *ctx;
    void (*join)(void *ctx, void *waiter, int16_t version, const struct group_join_answer *a);
    void (*sync)(void *ctx, void *waiter, int16_t error_code, const struct group *g,
                 const uint8_t *assignment, uint32_t assignment_bytes);
    /* Optional: g's offsets expired and g is about to be freed (write tombstones). */
    void (*expired)(void *ctx, const struct group *g);
};

struct group_config {
    int32_t min_session_timeout_ms;      /* group.min.session.timeout.ms */
    int32_t max_session_timeout_ms;      /* group.max.session.timeout.ms */
    int32_t initial_rebalance_delay_ms;  /* group.initial.rebalance.delay.ms */
    int32_t max_size;                    /* group.max.size */
    int64_t offsets_retention_ms;        /* offsets.retention.minutes */
};

struct group_coordinator {
    struct group_config cfg;
    struct group_replies replies;
    struct group *groups;        /* a list: groups are few, lookups are per request */
    uint32_t group_count;
    uint64_t member_seq;         /* member id suffixes */
    void *current_waiter;        /* the request being handled: was it answered at once? */
    bool current_answered;
};

void group_coordinator_init(struct group_coordinator *gc, const struct group_config *cfg,
                            const struct group_replies *replies);
/* Frees everything; parked waiters are dropped (the caller owns them). */
void group_coordinator_destroy(struct group_coordinator *gc);

struct group *group_find(struct group_coordinator *gc, const char *group_id, size_t len);
/* Find or create an Empty group (simple commits, reload). NULL when out of memory or
 * GROUP_MAX_GROUPS are held. */
struct group *group_get_or_create(struct group_coordinator *gc, const char *group_id,
                                  size_t len, uint64_t now_ms);
struct group_member *group_member_find(struct group *g, const char *member_id, size_t len);
/* The metadata member offered for the group's chosen protocol (NULL when none). */
const struct group_protocol *group_member_protocol(const struct group *g,
                                                   const struct group_member *m);

/* Every JoinGroup is answered through replies.join with a->waiter: before this returns
 * (errors, MEMBER_ID_REQUIRED with the new id, a rejoin that changes nothing), or later
 * when the rebalance completes. Returns true when it was answered now. */
bool group_join(struct group_coordinator *gc, const struct group_join_args *a,
                uint64_t now_ms);
/* assignments: member ids and their bytes, leader only (count 0 for followers). Answered
 * through replies.sync, now or (CompletingRebalance) when the leader's assignment
 * arrives. Returns true when it was answered now. */
struct group_sync_assignment {
    const char *member_id; size_t member_len;
    const uint8_t *assignment; uint32_t assignment_bytes;
};
bool group_sync(struct group_coordinator *gc, const char *group_id, size_t group_len,
                   int32_t generation_id, const char *member_id, size_t member_len,
                   const char *instance_id, size_t instance_len,
                   const char *protocol_type, size_t protocol_type_len,
                   const char *protocol_name, size_t protocol_name_len,
                   const struct group_sync_assignment *assignments, int assignment_count,
                   void *waiter, uint64_t now_ms);
int16_t group_heartbeat(struct group_coordinator *gc, const char *group_id, size_t group_len,
                        int32_t generation_id, const char *member_id, size_t member_len,
                        const char *instance_id, size_t instance_len, uint64_t now_ms);
/* One member leaving (instance_id may identify it when member_id is ""). */
int16_t group_leave(struct group_coordinator *gc, const char *group_id, size_t group_len,
                    const char *member_id, size_t member_len, const char *instance_id,
                    size_t instance_len, uint64_t now_ms);
/* May this (generation, member) commit offsets now? GROUP_ERR_NONE or the error. A
 * simple commit (generation -1, member "") is allowed while the group has no members. */
int16_t group_commit_check(struct group_coordinator *gc, const char *group_id,
                           size_t group_len, int32_t generation_id, const char *member_id,
                           size_t member_len, const char *instance_id, size_t instance_len,
                           uint64_t now_ms);
/* DeleteGroups: only an Empty group without commits in flight; check, then delete. */
int16_t group_delete_check(struct group_coordinator *gc, const char *group_id, size_t len);
int16_t group_delete(struct group_coordinator *gc, const char *group_id, size_t len);

/* Timers: session timeouts, rebalance timeouts, the initial delay, offset retention.
 * Returns how many things it did. */
unsigned group_tick(struct group_coordinator *gc, uint64_t now_ms);

/* The member id a new member gets: "<client_id>-<sequence>" as Kafka's
 * "<client_id>-<uuid>". Writes into out (GROUP_NAME_MAX_BYTES + 1). */
void group_new_member_id(struct group_coordinator *gc, const char *client_id, char *out);

#endif
