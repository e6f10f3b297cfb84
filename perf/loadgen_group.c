/* loadgen_group.c - a consumer's membership in a consumer group (--group).
 *
 * Each consumer has a second connection, to the group coordinator (setup found it with
 * FindCoordinator), so a long-poll fetch on the data connection never delays a
 * heartbeat. On it, one request at a time, Kafka's classic consumer protocol:
 *
 *   JoinGroup (protocol type "consumer", one protocol: "range" with a
 *     ConsumerProtocolSubscription v0 to every loadgen topic). The first JoinGroup
 *     (v4+) is answered MEMBER_ID_REQUIRED with the id to join again with.
 *   SyncGroup: the leader runs the range assignor over every member's subscription
 *     (loadgen_assign.c) and sends each member's ConsumerProtocolAssignment; every
 *     member gets its own back.
 *   OffsetFetch for the assigned partitions: a committed offset is where reading starts,
 *     else the --consume-from offset setup listed. Then the consumer fetches exactly
 *     those partitions on its data connection (to the broker it already reads from).
 *   Heartbeat every heartbeat interval (every 100 ms until producing starts, so the
 *     group settles quickly), OffsetCommit of the positions every auto-commit interval.
 *   REBALANCE_IN_PROGRESS (or ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID) in a heartbeat:
 *     stop reading, commit the positions, give the partitions back and join again
 *     (eager protocol: every member revokes everything before the next generation).
 *   The end: a member that has read everything (or gave up after the drain time) waits
 *     until every member has, commits its final positions, waits until every member has
 *     committed (so no LeaveGroup rebalances a group someone still commits in), then
 *     sends LeaveGroup.
 *
 * The correctness check. A partition's sequence state (next expected sequence, unique
 * count) lives with whichever member holds it and is published to struct lg_shared when
 * the member gives the partition back, so the next holder continues the same check and
 * lost / duplicated / out of order stay exact per partition. Producing starts only when
 * every consumer is a member of the same generation with its assignment and start
 * offsets (the main thread waits for it), so no message is missed by a member still
 * joining. A rebalance mid-run: the new holder starts at the committed offset, which is
 * the old holder's position when its commit before rejoining succeeded; if it did not,
 * the new holder reads some records again. Those (sequence below the expected one and
 * offset below the furthest position a holder reached -- the new holder may pass the
 * partition on before it has read that far again) are counted as redelivered -- Kafka's
 * at-least-once -- not as duplicated, and do not fail the check. A member that leaves
 * or fails while others still read makes its partitions move the same way. Rebalances
 * are counted as the distinct generations the members synced into (the first included;
 * rebalances_mid_run: those after producing started).
 *
 * Memory: the request buffer, the frame buffer and the decode arena are sized at start
 * for this run's topics, partitions and consumers (plus LG_GROUP_EXTRA_MEMBERS members
 * from outside, e.g. a Kafka consumer in the same group); the leader's scratch is one
 * per worker (struct lg_leader). A group larger than that fails the member that leads
 * it, with a message.
 *
 * Nothing is waited for forever: the coordinator connection must be up within 10 s and
 * each request answered within 30 s (a JoinGroup: the rebalance timeout plus 5 s), as
 * with a Kafka consumer's defaults, or the member fails with a message (answer_overdue).
 * Every other wait (a retry, the others at the end) has its own deadline. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf/loadgen_assign.h"
#include "perf/loadgen_worker.h"

#define LG_GROUP_EXTRA_MEMBERS 16
#define LG_MEMBER_ID_BYTES 256
#define LG_GROUP_FAST_HEARTBEAT_NS (100 * 1000000ull) /* until producing starts */
#define LG_GROUP_RETRY_NS (200 * 1000000ull)
#define LG_GROUP_FINAL_GRACE_NS (10 * 1000000000ull)
/* Bounds on what a member waits for, as a Kafka consumer's defaults: the connection
 * setup timeout, request.timeout.ms, and the JoinGroup's lapse past the rebalance timeout.
 * A gap of LG_GROUP_STALL_NS between two steps (the loop steps every few ms) means the
 * thread did not run -- stopped, starved -- and does not count against the coordinator. */
#define LG_GROUP_CONNECT_TIMEOUT_NS (10 * 1000000000ull)
#define LG_GROUP_REQUEST_TIMEOUT_NS (30 * 1000000000ull)
#define LG_GROUP_JOIN_LAPSE_NS (5 * 1000000000ull)
#define LG_GROUP_STALL_NS (500 * 1000000ull)

/* Kafka error codes the state machine reacts to */
#define ERR_COORDINATOR_LOAD_IN_PROGRESS 14
#define ERR_COORDINATOR_NOT_AVAILABLE 15
#define ERR_NOT_COORDINATOR 16
#define ERR_ILLEGAL_GENERATION 22
#define ERR_UNKNOWN_MEMBER_ID 25
#define ERR_REBALANCE_IN_PROGRESS 27
#define ERR_MEMBER_ID_REQUIRED 79
#define ERR_UNSTABLE_OFFSET_COMMIT 88

enum gstate {
    G_JOIN,           /* send JoinGroup */
    G_SYNC,           /* send the SyncGroup encoded when the join was answered */
    G_OFFSETS,        /* send OffsetFetch for the assignment */
    G_STABLE,         /* reading: heartbeats and periodic commits */
    G_REJOIN_COMMIT,  /* commit before joining again */
    G_FINAL_DRAINED,  /* read everything: wait for the others, then commit */
    G_FINAL_COMMITTED,/* committed: wait for the others, then leave */
    G_LEAVE,          /* send LeaveGroup */
    G_DONE,
};

/* The leader's assignor scratch, one per worker (only used while encoding a SyncGroup). */
struct lg_leader {
    uint32_t max_members;
    struct kafka_str *ids;
    uint8_t *subscribed;          /* max_members x topics */
    uint32_t *order;
    int32_t *owner;               /* per global partition */
    struct kafka_sync_group_request_sync_group_request_assignment *assignments;
    uint8_t *bytes;               /* the members' encoded assignments */
    size_t bytes_cap;
};

struct lg_group {
    enum lg_kind kind;            /* first: the worker dispatches on it */
    struct lg_worker *w;
    struct lg_consumer *c;
    uint32_t number;
    struct net_conn *conn;
    bool connected, closed, closing, send_busy, counted_drained, counted_committed;
    enum gstate state;
    int16_t awaiting;             /* api key of the request in flight, -1 none */
    int16_t awaiting_version;
    int32_t correlation_id;
    char member_id[LG_MEMBER_ID_BYTES];
    int32_t generation;
    uint64_t retry_at_ns, next_heartbeat_ns, next_commit_ns, final_deadline_ns;
    uint64_t answer_by_ns;        /* the connect, or the request in flight, fails after
                                     this (0: nothing awaited) */
    uint64_t last_step_ns;        /* to tell a stall of this thread (see LG_GROUP_STALL_NS) */
    struct lg_assign_topics topics;
    const char *names[LG_MAX_TOPICS];
    uint8_t *subscription;
    size_t subscription_len;
    uint32_t *assigned;           /* global partitions of this generation */
    int64_t *offsets;             /* their start offsets, then positions to commit */
    uint32_t assigned_count, commit_count;
    struct kafka_offset_commit_request_offset_commit_request_topic *commit_topics;
    struct kafka_offset_commit_request_offset_commit_request_partition *commit_parts;
    struct kafka_offset_fetch_request_offset_fetch_request_topic *fetch_topics;
    int32_t *fetch_parts;
    uint8_t *req_buf;
    size_t req_bytes, req_len;
    bool req_ready;               /* req_buf holds an encoded request not yet sent */
    struct net_send send;
    struct iovec iov[1];
    struct lg_frames frames;
    uint8_t *arena_mem;
    size_t arena_bytes;
    struct kafka_arena arena;
};

/* ---- sizes and allocation ---------------------------------------------------------- */

static uint32_t max_members(const struct lg_shared *sh) {
    return sh->o->consumers + LG_GROUP_EXTRA_MEMBERS;
}

/* Every member's assignment together: a topic entry needs a partition of its own. */
static size_t assignments_bytes(const struct lg_shared *sh) {
    size_t n = (size_t)max_members(sh) * 16;
    for (uint32_t t = 0; t < sh->c->topic_count; t++)
        n += (size_t)sh->c->topics[t].partitions * (4 + 8 + strlen(sh->c->topics[t].name));
    return n;
}

static size_t names_bytes(const struct lg_shared *sh) {
    size_t n = 0;
    for (uint32_t t = 0; t < sh->c->topic_count; t++) n += 16 + strlen(sh->c->topics[t].name);
    return n;
}

struct lg_leader *lg_leader_create(const struct lg_shared *sh) {
    struct lg_leader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    uint32_t m = max_members(sh);
    l->max_members = m;
    l->ids = calloc(m, sizeof l->ids[0]);
    l->subscribed = calloc((size_t)m * sh->c->topic_count, 1);
    l->order = calloc(m, sizeof l->order[0]);
    l->owner = calloc(sh->partition_count ? sh->partition_count : 1, sizeof l->owner[0]);
    l->assignments = calloc(m, sizeof l->assignments[0]);
    l->bytes_cap = assignments_bytes(sh);
    l->bytes = malloc(l->bytes_cap);
    if (!l->ids || !l->subscribed || !l->order || !l->owner || !l->assignments || !l->bytes) {
        lg_leader_destroy(l);
        return NULL;
    }
    return l;
}

void lg_leader_destroy(struct lg_leader *l) {
    if (!l) return;
    free(l->ids);
    free(l->subscribed);
    free(l->order);
    free(l->owner);
    free(l->assignments);
    free(l->bytes);
    free(l);
}

struct lg_group *lg_group_create(struct lg_worker *w, struct lg_consumer *c, uint32_t number) {
    const struct lg_shared *sh = w->sh;
    struct lg_group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->kind = LG_KIND_GROUP;
    g->w = w;
    g->c = c;
    g->number = number;
    g->awaiting = -1;
    g->generation = -1;
    for (uint32_t t = 0; t < sh->c->topic_count; t++) g->names[t] = sh->c->topics[t].name;
    g->topics = (struct lg_assign_topics){.names = g->names, .count = sh->c->topic_count,
                                          .partitions = NULL};
    uint32_t np = sh->partition_count ? sh->partition_count : 1;
    uint32_t *parts = calloc(LG_MAX_TOPICS, sizeof parts[0]);
    g->assigned = calloc(np, sizeof g->assigned[0]);
    g->offsets = calloc(np, sizeof g->offsets[0]);
    g->commit_topics = calloc(LG_MAX_TOPICS, sizeof g->commit_topics[0]);
    g->commit_parts = calloc(np, sizeof g->commit_parts[0]);
    g->fetch_topics = calloc(LG_MAX_TOPICS, sizeof g->fetch_topics[0]);
    g->fetch_parts = calloc(np, sizeof g->fetch_parts[0]);
    if (!parts || !g->assigned || !g->offsets || !g->commit_topics || !g->commit_parts ||
        !g->fetch_topics || !g->fetch_parts)
        goto fail;
    for (uint32_t t = 0; t < sh->c->topic_count; t++) parts[t] = sh->c->topics[t].partitions;
    g->topics.partitions = parts;
    size_t sub_max = lg_subscription_max_bytes(&g->topics);
    g->subscription = malloc(sub_max);
    if (!g->subscription) goto fail;
    g->subscription_len = lg_subscription_encode(g->subscription, sub_max, &g->topics);
    assert(g->subscription_len > 0);
    /* SyncGroup (the leader's) or OffsetCommit, whichever is larger, plus headers */
    g->req_bytes = 8192 + (size_t)max_members(sh) * (LG_MEMBER_ID_BYTES + 16) +
                   assignments_bytes(sh) + names_bytes(sh) + (size_t)np * 40;
    g->req_buf = malloc(g->req_bytes);
    /* the leader's JoinGroup answer carries every member's metadata (a Kafka client's
     * is longer than ours: owned partitions, rack) */
    g->frames.cap_bytes = 65536 +
                          (size_t)max_members(sh) * (sub_max + 2 * LG_MEMBER_ID_BYTES + 512) +
                          lg_assignment_max_bytes(&g->topics, np) + names_bytes(sh) +
                          (size_t)np * 40;
    g->frames.buf = malloc(g->frames.cap_bytes);
    g->arena_bytes = 65536 + (size_t)max_members(sh) * 64 + (size_t)np * 64;
    g->arena_mem = malloc(g->arena_bytes);
    if (!g->req_buf || !g->frames.buf || !g->arena_mem) goto fail;
    kafka_arena_init(&g->arena, g->arena_mem, g->arena_bytes);
    return g;
fail:
    g->topics.partitions = parts;
    lg_group_destroy(g);
    return NULL;
}

void lg_group_destroy(struct lg_group *g) {
    if (!g) return;
    free((void *)g->topics.partitions);
    free(g->subscription);
    free(g->assigned);
    free(g->offsets);
    free(g->commit_topics);
    free(g->commit_parts);
    free(g->fetch_topics);
    free(g->fetch_parts);
    free(g->req_buf);
    free(g->frames.buf);
    free(g->arena_mem);
    free(g);
}

/* ---- small helpers ----------------------------------------------------------------- */

static const struct lg_versions *versions(const struct lg_group *g) {
    return &g->w->sh->c->versions;
}

static struct kafka_str member_str(const struct lg_group *g) {
    return kafka_str_from_cstr(g->member_id);
}

static void set_member_id(struct lg_group *g, struct kafka_str id) {
    int n = id.len > 0 && id.len < LG_MEMBER_ID_BYTES ? (int)id.len : 0;
    if (n) memcpy(g->member_id, id.ptr, (size_t)n);
    g->member_id[n] = '\0';
}

static void count_drained(struct lg_group *g) {
    if (g->counted_drained) return;
    g->counted_drained = true;
    atomic_fetch_add(&g->w->sh->group_drained, 1);
}

static void count_committed(struct lg_group *g) {
    count_drained(g);
    if (g->counted_committed) return;
    g->counted_committed = true;
    atomic_fetch_add(&g->w->sh->group_committed, 1);
}

/* Give the partitions back (publishing their check state) and stop being counted as a
 * reader of this generation. */
static void give_back(struct lg_group *g) {
    lg_consumer_revoke(g->c);
    atomic_store(&g->w->sh->member_generation[g->number], -1);
}

static void finish(struct lg_group *g) {
    give_back(g);
    count_committed(g); /* whoever waits for this member, waits no longer */
    g->state = G_DONE;
    if (g->conn && !g->closed && !g->closing) net_close(g->w->net, g->conn);
    g->closing = true;
}

static void fail(struct lg_group *g, const char *what, int error_code) {
    struct lg_worker *w = g->w;
    if (!w->error[0])
        snprintf(w->error, sizeof w->error, "group %s: %s (error %d)", w->sh->o->group, what,
                 error_code);
    lg_add(&w->counters.conn_errors, 1);
    finish(g);
}

static bool retriable(int16_t ec) {
    return ec == ERR_COORDINATOR_LOAD_IN_PROGRESS || ec == ERR_COORDINATOR_NOT_AVAILABLE ||
           ec == ERR_NOT_COORDINATOR;
}

/* Join again: after a rebalance notice, an expired generation or an unknown member. */
static void rejoin(struct lg_group *g, int16_t ec) {
    give_back(g);
    if (ec == ERR_UNKNOWN_MEMBER_ID) g->member_id[0] = '\0';
    g->state = G_JOIN;
}

/* ---- requests ---------------------------------------------------------------------- */

static int encode(struct lg_group *g, int16_t api, int16_t version, const void *msg) {
    struct kafka_writer wr;
    kafka_writer_init(&wr, g->req_buf, g->req_bytes);
    g->correlation_id++;
    int rc = lg_request_encode(&wr, api, version, g->correlation_id, msg);
    if (rc != 0) {
        snprintf(g->w->error, sizeof g->w->error, "group %s: encode api %d: %s",
                 g->w->sh->o->group, api, kafka_err_str(rc));
        return -1;
    }
    g->req_len = wr.len_bytes;
    g->req_ready = true;
    g->awaiting = api;
    g->awaiting_version = version;
    return 0;
}

static void on_sent(struct net_send *send, int status) {
    struct lg_group *g = send->user;
    g->send_busy = false;
    if (status != 0) lg_add(&g->w->counters.conn_errors, 1);
}

/* How long a request may go unanswered: the coordinator holds a JoinGroup until every
 * member has rejoined, for up to the rebalance timeout (send_join: 3 session timeouts). */
static uint64_t answer_timeout_ns(const struct lg_group *g, int16_t api) {
    if (api != KAFKA_API_JOIN_GROUP) return LG_GROUP_REQUEST_TIMEOUT_NS;
    uint64_t join_ns = (uint64_t)g->w->sh->o->session_timeout_ms * 3 * 1000000ull +
                       LG_GROUP_JOIN_LAPSE_NS;
    return join_ns > LG_GROUP_REQUEST_TIMEOUT_NS ? join_ns : LG_GROUP_REQUEST_TIMEOUT_NS;
}

static int send_encoded(struct lg_group *g) {
    assert(g->awaiting >= 0);
    g->answer_by_ns = lg_now_ns() + answer_timeout_ns(g, g->awaiting);
    g->iov[0] = (struct iovec){.iov_base = g->req_buf, .iov_len = g->req_len};
    g->send = (struct net_send){.iov = g->iov, .iov_count = 1, .done = on_sent, .user = g};
    g->req_ready = false;
    g->send_busy = true;
    return net_send(g->w->net, g->conn, &g->send);
}

static int send_join(struct lg_group *g) {
    const struct lg_options *o = g->w->sh->o;
    int16_t ver = versions(g)->join_group;
    struct kafka_join_group_request_join_group_request_protocol proto = {
        .name = kafka_str_from_cstr(LG_GROUP_ASSIGNOR),
        .metadata = {.ptr = g->subscription, .len = (int32_t)g->subscription_len},
    };
    struct kafka_join_group_request req;
    kafka_join_group_request_init(&req, ver);
    req.group_id = kafka_str_from_cstr(o->group);
    req.session_timeout_ms = (int32_t)o->session_timeout_ms;
    /* how long the coordinator waits for every member to rejoin */
    req.rebalance_timeout_ms = (int32_t)(o->session_timeout_ms * 3);
    req.member_id = member_str(g);
    req.protocol_type = kafka_str_from_cstr(LG_GROUP_PROTOCOL_TYPE);
    req.protocols = &proto;
    req.protocols_count = 1;
    return encode(g, KAFKA_API_JOIN_GROUP, ver, &req);
}

static int send_heartbeat(struct lg_group *g) {
    int16_t ver = versions(g)->heartbeat;
    struct kafka_heartbeat_request req;
    kafka_heartbeat_request_init(&req, ver);
    req.group_id = kafka_str_from_cstr(g->w->sh->o->group);
    req.generation_id = g->generation;
    req.member_id = member_str(g);
    return encode(g, KAFKA_API_HEARTBEAT, ver, &req);
}

static int send_offset_fetch(struct lg_group *g) {
    const struct lg_shared *sh = g->w->sh;
    int16_t ver = versions(g)->offset_fetch;
    int32_t topics = 0;
    uint32_t np = 0;
    for (uint32_t t = 0; t < sh->c->topic_count; t++) {
        struct kafka_offset_fetch_request_offset_fetch_request_topic *ft =
            &g->fetch_topics[topics];
        *ft = (struct kafka_offset_fetch_request_offset_fetch_request_topic){
            .name = kafka_str_from_cstr(sh->c->topics[t].name),
            .partition_indexes = &g->fetch_parts[np]};
        for (uint32_t i = 0; i < g->assigned_count; i++)
            if (sh->part_topic[g->assigned[i]] == t) {
                g->fetch_parts[np++] = (int32_t)sh->part_index[g->assigned[i]];
                ft->partition_indexes_count++;
            }
        if (ft->partition_indexes_count > 0) topics++;
    }
    struct kafka_offset_fetch_request req;
    kafka_offset_fetch_request_init(&req, ver);
    req.group_id = kafka_str_from_cstr(sh->o->group);
    req.topics = g->fetch_topics;
    req.topics_count = topics;
    return encode(g, KAFKA_API_OFFSET_FETCH, ver, &req);
}

/* Commit the positions in assigned/offsets (commit_count of them). */
static int send_commit(struct lg_group *g) {
    const struct lg_shared *sh = g->w->sh;
    int16_t ver = versions(g)->offset_commit;
    int32_t topics = 0;
    uint32_t np = 0;
    for (uint32_t t = 0; t < sh->c->topic_count; t++) {
        struct kafka_offset_commit_request_offset_commit_request_topic *ct =
            &g->commit_topics[topics];
        *ct = (struct kafka_offset_commit_request_offset_commit_request_topic){
            .name = kafka_str_from_cstr(sh->c->topics[t].name),
            .partitions = &g->commit_parts[np]};
        for (uint32_t i = 0; i < g->commit_count; i++) {
            if (sh->part_topic[g->assigned[i]] != t) continue;
            struct kafka_offset_commit_request_offset_commit_request_partition *cp =
                &g->commit_parts[np++];
            memset(cp, 0, sizeof *cp);
            cp->partition_index = (int32_t)sh->part_index[g->assigned[i]];
            cp->committed_offset = g->offsets[i];
            cp->committed_leader_epoch = -1;
            cp->commit_timestamp = -1;
            cp->committed_metadata = kafka_str_from_cstr("");
            ct->partitions_count++;
        }
        if (ct->partitions_count > 0) topics++;
    }
    struct kafka_offset_commit_request req;
    kafka_offset_commit_request_init(&req, ver);
    req.group_id = kafka_str_from_cstr(sh->o->group);
    req.generation_id_or_member_epoch = g->generation;
    req.member_id = member_str(g);
    req.topics = g->commit_topics;
    req.topics_count = topics;
    return encode(g, KAFKA_API_OFFSET_COMMIT, ver, &req);
}

/* Take the consumer's positions for the next commit (nothing to commit: -1). */
static int prepare_commit(struct lg_group *g) {
    g->commit_count = lg_consumer_positions(g->c, g->assigned, g->offsets);
    return g->commit_count > 0 ? 0 : -1;
}

static int send_leave(struct lg_group *g) {
    int16_t ver = versions(g)->leave_group;
    struct kafka_leave_group_request_member_identity me = {
        .member_id = member_str(g), .group_instance_id = {NULL, -1},
        .reason = {NULL, -1}};
    struct kafka_leave_group_request req;
    kafka_leave_group_request_init(&req, ver);
    req.group_id = kafka_str_from_cstr(g->w->sh->o->group);
    if (ver >= 3) {
        req.members = &me;
        req.members_count = 1;
    } else {
        req.member_id = member_str(g);
    }
    return encode(g, KAFKA_API_LEAVE_GROUP, ver, &req);
}

/* ---- the leader's assignment ------------------------------------------------------- */

static int encode_sync(struct lg_group *g, const struct kafka_join_group_response *jr,
                       bool leader) {
    struct lg_leader *l = g->w->leader;
    int16_t ver = versions(g)->sync_group;
    struct kafka_sync_group_request req;
    kafka_sync_group_request_init(&req, ver);
    req.group_id = kafka_str_from_cstr(g->w->sh->o->group);
    req.generation_id = g->generation;
    req.member_id = member_str(g);
    if (ver >= 5) {
        req.protocol_type = kafka_str_from_cstr(LG_GROUP_PROTOCOL_TYPE);
        req.protocol_name = kafka_str_from_cstr(LG_GROUP_ASSIGNOR);
    }
    if (leader) {
        uint32_t n = (uint32_t)jr->members_count;
        if (jr->members_count < 0 || n > l->max_members) {
            fail(g, "more members than loadgen has room for", 0);
            return -1;
        }
        uint32_t tc = g->topics.count;
        for (uint32_t m = 0; m < n; m++) {
            l->ids[m] = jr->members[m].member_id;
            const struct kafka_bytes *md = &jr->members[m].metadata;
            if (lg_subscription_topics(md->ptr, md->len > 0 ? (size_t)md->len : 0, &g->topics,
                                       &l->subscribed[m * tc]) != 0)
                memset(&l->subscribed[m * tc], 0, tc); /* unreadable: assign it nothing */
        }
        lg_range_assign(l->ids, n, l->subscribed, &g->topics, l->order, l->owner);
        size_t at = 0;
        for (uint32_t m = 0; m < n; m++) {
            size_t len = lg_assignment_encode(l->bytes + at, l->bytes_cap - at, &g->topics,
                                              l->owner, (int32_t)m);
            if (len == 0) {
                fail(g, "assignment larger than loadgen has room for", 0);
                return -1;
            }
            l->assignments[m] = (struct kafka_sync_group_request_sync_group_request_assignment){
                .member_id = l->ids[m], .assignment = {.ptr = l->bytes + at, .len = (int32_t)len}};
            at += len;
        }
        req.assignments = l->assignments;
        req.assignments_count = (int32_t)n;
    }
    return encode(g, KAFKA_API_SYNC_GROUP, ver, &req);
}

/* ---- responses --------------------------------------------------------------------- */

static void on_join(struct lg_group *g, const struct kafka_join_group_response *r, uint64_t now) {
    if (r->error_code == ERR_MEMBER_ID_REQUIRED) {
        set_member_id(g, r->member_id);
        g->state = G_JOIN;
    } else if (r->error_code == ERR_UNKNOWN_MEMBER_ID ||
               r->error_code == ERR_REBALANCE_IN_PROGRESS ||
               r->error_code == ERR_ILLEGAL_GENERATION) {
        rejoin(g, r->error_code);
    } else if (retriable(r->error_code)) {
        g->state = G_JOIN;
        g->retry_at_ns = now + LG_GROUP_RETRY_NS;
    } else if (r->error_code != 0) {
        fail(g, "JoinGroup", r->error_code);
    } else if (g->send_busy) { /* the join's send not yet reported done: cannot reuse */
        g->state = G_JOIN;
        g->retry_at_ns = now + LG_GROUP_RETRY_NS;
    } else {
        set_member_id(g, r->member_id);
        g->generation = r->generation_id;
        bool leader = kafka_str_equals(r->leader, r->member_id);
        if (encode_sync(g, r, leader) == 0) g->state = G_SYNC;
        else if (g->state != G_DONE) fail(g, "SyncGroup encode", 0);
    }
}

static void count_generation(struct lg_group *g) {
    struct lg_shared *sh = g->w->sh;
    int32_t seen = atomic_load(&sh->group_generation);
    while (g->generation > seen)
        if (atomic_compare_exchange_weak(&sh->group_generation, &seen, g->generation)) {
            atomic_fetch_add(&sh->rebalances, 1);
            if (atomic_load(&sh->go)) atomic_fetch_add(&sh->rebalances_mid_run, 1);
            break;
        }
}

static void on_sync(struct lg_group *g, const struct kafka_sync_group_response *r) {
    if (r->error_code == ERR_REBALANCE_IN_PROGRESS || r->error_code == ERR_ILLEGAL_GENERATION ||
        r->error_code == ERR_UNKNOWN_MEMBER_ID) {
        rejoin(g, r->error_code);
        return;
    }
    if (r->error_code != 0) {
        fail(g, "SyncGroup", r->error_code);
        return;
    }
    size_t len = r->assignment.len > 0 ? (size_t)r->assignment.len : 0;
    int32_t n = lg_assignment_decode(r->assignment.ptr, len, &g->topics, g->assigned,
                                     g->w->sh->partition_count);
    if (n < 0) {
        fail(g, "assignment does not parse", 0);
        return;
    }
    g->assigned_count = (uint32_t)n;
    count_generation(g);
    g->state = G_OFFSETS;
}

static int64_t default_start(const struct lg_shared *sh, uint32_t gp) {
    return sh->c->topics[sh->part_topic[gp]].start_offsets[sh->part_index[gp]];
}

static void become_stable(struct lg_group *g, uint64_t now) {
    struct lg_shared *sh = g->w->sh;
    lg_consumer_assign(g->c, g->assigned, g->offsets, g->assigned_count);
    g->state = G_STABLE;
    g->next_heartbeat_ns = now;
    g->next_commit_ns = now + (uint64_t)sh->o->auto_commit_interval_ms * 1000000ull;
    atomic_store(&sh->member_generation[g->number], g->generation);
}

static void on_offset_fetch(struct lg_group *g, const struct kafka_offset_fetch_response *r,
                            uint64_t now) {
    const struct lg_shared *sh = g->w->sh;
    if (retriable(r->error_code) || r->error_code == ERR_UNSTABLE_OFFSET_COMMIT) {
        g->retry_at_ns = now + LG_GROUP_RETRY_NS;
        return; /* state stays G_OFFSETS */
    }
    if (r->error_code != 0) {
        fail(g, "OffsetFetch", r->error_code);
        return;
    }
    for (uint32_t i = 0; i < g->assigned_count; i++)
        g->offsets[i] = default_start(sh, g->assigned[i]);
    for (int32_t t = 0; t < r->topics_count; t++) {
        const struct kafka_offset_fetch_response_offset_fetch_response_topic *rt = &r->topics[t];
        for (int32_t p = 0; p < rt->partitions_count; p++) {
            const struct kafka_offset_fetch_response_offset_fetch_response_partition *rp =
                &rt->partitions[p];
            if (rp->error_code != 0 || rp->committed_offset < 0) continue;
            for (uint32_t i = 0; i < g->assigned_count; i++) {
                uint32_t gp = g->assigned[i];
                if ((int32_t)sh->part_index[gp] == rp->partition_index &&
                    kafka_str_equals_cstr(rt->name, sh->c->topics[sh->part_topic[gp]].name))
                    g->offsets[i] = rp->committed_offset;
            }
        }
    }
    become_stable(g, now);
}

static void on_heartbeat(struct lg_group *g, int16_t ec, uint64_t now) {
    if (ec == 0) return;
    bool final = g->state == G_FINAL_DRAINED || g->state == G_FINAL_COMMITTED;
    if (final) return; /* reading is over: a late rebalance changes nothing for us */
    if (ec == ERR_REBALANCE_IN_PROGRESS) {
        /* commit where we are, then give everything back and join again */
        if (prepare_commit(g) == 0) g->state = G_REJOIN_COMMIT;
        else rejoin(g, ec);
        give_back(g);
    } else if (ec == ERR_ILLEGAL_GENERATION || ec == ERR_UNKNOWN_MEMBER_ID) {
        rejoin(g, ec);
    } else if (!retriable(ec)) {
        fail(g, "Heartbeat", ec);
    } else {
        g->next_heartbeat_ns = now + LG_GROUP_RETRY_NS;
    }
}

static void on_commit(struct lg_group *g, const struct kafka_offset_commit_response *r) {
    bool errors = false;
    for (int32_t t = 0; t < r->topics_count; t++)
        for (int32_t p = 0; p < r->topics[t].partitions_count; p++)
            errors |= r->topics[t].partitions[p].error_code != 0;
    if (errors) lg_add(&g->w->counters.commit_errors, 1);
    if (g->state == G_REJOIN_COMMIT) {
        g->state = G_JOIN;
    } else if (g->state == G_FINAL_DRAINED) {
        count_committed(g);
        g->state = G_FINAL_COMMITTED;
    }
}

static int on_frame(void *ctx, const uint8_t *frame, size_t len) {
    struct lg_group *g = ctx;
    if (g->awaiting < 0 || g->req_ready) return -1;
    union {
        struct kafka_join_group_response join;
        struct kafka_sync_group_response sync;
        struct kafka_heartbeat_response heartbeat;
        struct kafka_offset_fetch_response offset_fetch;
        struct kafka_offset_commit_response commit;
        struct kafka_leave_group_response leave;
    } r;
    int32_t corr;
    int16_t api = g->awaiting;
    kafka_arena_reset(&g->arena);
    if (lg_response_decode(frame, len, api, g->awaiting_version, &corr, &r, &g->arena) != 0 ||
        corr != g->correlation_id)
        return -1;
    g->awaiting = -1;
    g->answer_by_ns = 0;
    uint64_t now = lg_now_ns();
    if (g->state == G_DONE) return 0;
    switch (api) {
    case KAFKA_API_JOIN_GROUP: on_join(g, &r.join, now); break;
    case KAFKA_API_SYNC_GROUP: on_sync(g, &r.sync); break;
    case KAFKA_API_OFFSET_FETCH: on_offset_fetch(g, &r.offset_fetch, now); break;
    case KAFKA_API_HEARTBEAT: on_heartbeat(g, r.heartbeat.error_code, now); break;
    case KAFKA_API_OFFSET_COMMIT: on_commit(g, &r.commit); break;
    case KAFKA_API_LEAVE_GROUP: finish(g); break;
    default: return -1;
    }
    return 0;
}

/* ---- connection and step ----------------------------------------------------------- */

static void on_connected(struct net_conn *nc, int status) {
    struct lg_group *g = nc->user;
    if (status == 0) {
        g->connected = true;
        g->answer_by_ns = 0;
        return;
    }
    snprintf(g->w->error, sizeof g->w->error, "group coordinator connect: %s", strerror(-status));
}

void lg_group_connect(struct lg_group *g) {
    struct lg_worker *w = g->w;
    const struct lg_cluster *cl = w->sh->c;
    int err = 0;
    g->conn = net_connect(w->net, cl->coordinator_host, cl->coordinator_port, g, on_connected,
                          &err);
    if (!g->conn) {
        g->closed = true;
        fail(g, "coordinator connect", err);
        return;
    }
    g->answer_by_ns = lg_now_ns() + LG_GROUP_CONNECT_TIMEOUT_NS;
    w->conns_open++;
}

int lg_group_received(struct lg_group *g, const uint8_t *data, size_t len) {
    return lg_frames_push(&g->frames, data, len, on_frame, g);
}

void lg_group_closed(struct lg_group *g, int reason) {
    g->closed = true;
    g->conn = NULL;
    g->w->conns_open--;
    if (g->state != G_DONE) fail(g, "coordinator connection closed", reason);
}

struct net_conn *lg_group_conn(struct lg_group *g) {
    return g->closed || g->closing ? NULL : g->conn;
}

bool lg_group_done(const struct lg_group *g) { return g->state == G_DONE; }

static uint64_t heartbeat_interval_ns(const struct lg_group *g) {
    if (!atomic_load(&g->w->sh->go)) return LG_GROUP_FAST_HEARTBEAT_NS;
    return (uint64_t)g->w->sh->o->heartbeat_interval_ms * 1000000ull;
}

/* A stable member: read to the end? then the final phase; else commit or heartbeat. */
static int step_stable(struct lg_group *g, uint64_t now) {
    const struct lg_shared *sh = g->w->sh;
    if (lg_consumer_reading_done(g->c)) {
        count_drained(g);
        g->state = G_FINAL_DRAINED;
        g->final_deadline_ns = now + LG_GROUP_FINAL_GRACE_NS +
                               (uint64_t)(sh->o->drain_s * 1e9);
        return 0;
    }
    if (now >= g->next_commit_ns) {
        g->next_commit_ns = now + (uint64_t)sh->o->auto_commit_interval_ms * 1000000ull;
        if (prepare_commit(g) == 0) return send_commit(g);
    }
    if (now >= g->next_heartbeat_ns) {
        g->next_heartbeat_ns = now + heartbeat_interval_ns(g);
        return send_heartbeat(g);
    }
    return 0;
}

/* After reading: heartbeats until every member has read (then commit) and has committed
 * (then leave) -- or until the deadline, if one never does. */
static int step_final(struct lg_group *g, uint64_t now) {
    const struct lg_shared *sh = g->w->sh;
    bool late = now >= g->final_deadline_ns;
    if (g->state == G_FINAL_DRAINED &&
        (late || atomic_load(&sh->group_drained) >= sh->o->consumers)) {
        if (prepare_commit(g) == 0) return send_commit(g);
        count_committed(g);
        g->state = G_FINAL_COMMITTED;
    }
    if (g->state == G_FINAL_COMMITTED &&
        (late || atomic_load(&sh->group_committed) >= sh->o->consumers)) {
        give_back(g);
        g->state = G_LEAVE;
        return send_leave(g);
    }
    if (now >= g->next_heartbeat_ns) {
        g->next_heartbeat_ns = now + heartbeat_interval_ns(g);
        return send_heartbeat(g);
    }
    return 0;
}

static int step_send(struct lg_group *g, uint64_t now) {
    switch (g->state) {
    case G_JOIN: return send_join(g);
    case G_SYNC: return 0; /* encoded when the join was answered */
    case G_OFFSETS:
        if (g->assigned_count > 0) return send_offset_fetch(g);
        become_stable(g, now);
        return 0;
    case G_STABLE: return step_stable(g, now);
    case G_REJOIN_COMMIT: return send_commit(g);
    case G_FINAL_DRAINED:
    case G_FINAL_COMMITTED: return step_final(g, now);
    case G_LEAVE: return send_leave(g);
    case G_DONE: return 0;
    }
    return 0;
}

static const char *api_name(int16_t api) {
    switch (api) {
    case KAFKA_API_JOIN_GROUP: return "JoinGroup";
    case KAFKA_API_SYNC_GROUP: return "SyncGroup";
    case KAFKA_API_HEARTBEAT: return "Heartbeat";
    case KAFKA_API_OFFSET_FETCH: return "OffsetFetch";
    case KAFKA_API_OFFSET_COMMIT: return "OffsetCommit";
    case KAFKA_API_LEAVE_GROUP: return "LeaveGroup";
    default: return "request";
    }
}

/* Nothing the member waits for (the connect, an answer) is waited for forever: a
 * connection that went quiet -- a lost answer, a stack that never delivered it -- ends
 * the membership with an error, as a Kafka client's request timeout does. */
static bool answer_overdue(struct lg_group *g, uint64_t now_ns) {
    uint64_t gap_ns = g->last_step_ns ? now_ns - g->last_step_ns : 0;
    g->last_step_ns = now_ns;
    if (g->answer_by_ns && gap_ns > LG_GROUP_STALL_NS) g->answer_by_ns += gap_ns;
    if (g->answer_by_ns == 0 || now_ns < g->answer_by_ns) return false;
    char what[96];
    if (!g->connected)
        snprintf(what, sizeof what, "coordinator connect not done in %llu ms",
                 (unsigned long long)(LG_GROUP_CONNECT_TIMEOUT_NS / 1000000ull));
    else
        snprintf(what, sizeof what, "%s not answered in %llu ms", api_name(g->awaiting),
                 (unsigned long long)(answer_timeout_ns(g, g->awaiting) / 1000000ull));
    fail(g, what, -ETIMEDOUT);
    return true;
}

uint64_t lg_group_step(struct lg_group *g, uint64_t now_ns) {
    if (g->state == G_DONE) return UINT64_MAX;
    if (atomic_load_explicit(&g->w->sh->abort, memory_order_relaxed)) {
        finish(g); /* no goodbye: the session timeout removes us */
        return UINT64_MAX;
    }
    if (answer_overdue(g, now_ns)) return UINT64_MAX;
    uint64_t overdue_in = g->answer_by_ns ? g->answer_by_ns - now_ns : UINT64_MAX;
    if (!g->connected || g->closed || g->send_busy) return overdue_in;
    if (g->awaiting >= 0 && !g->req_ready) return overdue_in; /* its answer wakes us */
    if (now_ns < g->retry_at_ns) return g->retry_at_ns - now_ns;
    if (!g->req_ready && step_send(g, now_ns) != 0) {
        fail(g, "request", 0);
        return UINT64_MAX;
    }
    if (g->req_ready && send_encoded(g) != 0) {
        fail(g, "send", 0);
        return UINT64_MAX;
    }
    if (g->state == G_DONE || g->awaiting >= 0) return UINT64_MAX;
    if (g->state != G_STABLE) return 1000000; /* joining or waiting for the others */
    uint64_t due = g->next_heartbeat_ns < g->next_commit_ns ? g->next_heartbeat_ns
                                                            : g->next_commit_ns;
    return due > now_ns ? due - now_ns : 0;
}
