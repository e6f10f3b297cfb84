/* group_api.c - the group APIs as control-plane jobs: decode the request, ask the
 * coordinator (group_coordinator.c) and the offset tables (group_offsets.c), encode.
 *
 * Parked answers. JoinGroup and SyncGroup are always answered through the coordinator's
 * reply callbacks (join_reply / sync_reply below): the job is the waiter, and the
 * callback builds the response in control's arena and hands it to control_plane_answer(),
 * which encodes it and sends the job back to its shard -- at once, or when a rebalance
 * completes on another member's request or on a timer.
 *
 * Reads (OffsetFetch, DescribeGroups, ListGroups) answer from memory at once. Everything
 * that writes __consumer_offsets (OffsetCommit, OffsetDelete, DeleteGroups, expired
 * offsets) is in group_writes.c. At boot the records of __consumer_offsets are replayed
 * here (replay_record) into the coordinator's groups.
 *
 * Transactions: TxnOffsetCommit is written by group_writes.c; its offsets wait in the
 * transaction coordinator (txn_api.c) until the commit marker. OffsetFetch v7+ with
 * require_stable answers UNSTABLE_OFFSET_COMMIT (88) for a partition with such a pending
 * commit, as Kafka does. At boot a transactional commit counts only when its COMMIT
 * marker follows it (group_offsets_load_txn); open ones go back to their transaction.
 *
 * Not done: group metadata records (a restarted broker knows each group's offsets, and
 * its members simply rejoin an Empty group). */
#include "control/group_api.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/control_plane.h"
#include "control/group_writes.h"
#include "control/txn_api.h"
#include "hw/log.h"

/* ---- parked answers ------------------------------------------------------------------ */

static void join_reply(void *ctx, void *waiter, int16_t version, const struct group_join_answer *a) {
    struct group_api *api = ctx;
    struct control_plane *cp = api->cp;
    struct control_job *job = waiter;
    struct kafka_join_group_response resp;
    kafka_join_group_response_init(&resp, version);
    resp.error_code = a->error_code;
    resp.generation_id = a->generation_id;
    resp.protocol_type = kafka_str_from_cstr(a->protocol_type);
    resp.protocol_name = kafka_str_from_cstr(a->protocol_name ? a->protocol_name
                                             : (version >= 7 ? NULL : ""));
    resp.leader = kafka_str_from_cstr(a->leader_id);
    resp.member_id = kafka_str_from_cstr(a->member_id);
    resp.skip_assignment = a->skip_assignment;
    resp.members = NULL;
    resp.members_count = 0;
    if (a->is_leader && a->group) {
        const struct group *g = a->group;
        resp.members = KAFKA_ARENA_ARRAY(&cp->arena, g->member_count ? g->member_count : 1,
                                         resp.members);
        if (!resp.members) {
            control_plane_answer(cp, job, NULL);
            return;
        }
        int32_t n = 0;
        for (const struct group_member *m = g->members; m; m = m->next) {
            if (m->pending) continue;
            const struct group_protocol *p = group_member_protocol(g, m);
            resp.members[n].member_id = kafka_str_from_cstr(m->member_id);
            resp.members[n].group_instance_id = kafka_str_from_cstr(m->instance_id);
            resp.members[n].metadata = p ? bytes_of(p->metadata, p->metadata_bytes)
                                         : bytes_of(NULL, 0);
            n++;
        }
        resp.members_count = n;
    }
    control_plane_answer(cp, job, &resp);
}

static void sync_reply(void *ctx, void *waiter, int16_t error_code, const struct group *g,
                       const uint8_t *assignment, uint32_t assignment_bytes) {
    struct group_api *api = ctx;
    struct control_job *job = waiter;
    struct kafka_sync_group_response resp;
    kafka_sync_group_response_init(&resp, job->api_version);
    resp.error_code = error_code;
    resp.protocol_type = kafka_str_from_cstr(error_code == 0 && g ? g->protocol_type : NULL);
    resp.protocol_name = kafka_str_from_cstr(error_code == 0 && g ? g->protocol_name : NULL);
    resp.assignment = bytes_of(assignment, assignment_bytes);
    control_plane_answer(api->cp, job, &resp);
}

/* ---- setup ------------------------------------------------------------------------- */

static void replay_record(void *arg, const struct group_record *rec) {
    struct group_api *api = arg;
    if (rec->key_version == GROUP_KEY_GROUP_METADATA) {
        if (!rec->tombstone) return; /* sluice writes none; Kafka's carry members: not used */
        struct group *g = group_find(&api->gc, rec->group, rec->group_len);
        if (g && g->member_count == 0) group_delete(&api->gc, rec->group, rec->group_len);
        return;
    }
    if (rec->topic_len == 0 || rec->topic_len > GROUP_TOPIC_MAX_BYTES ||
        rec->metadata_len > GROUP_METADATA_MAX_BYTES)
        return;
    char topic[GROUP_TOPIC_MAX_BYTES + 1];
    memcpy(topic, rec->topic, rec->topic_len);
    topic[rec->topic_len] = '\0';
    if (!rec->tombstone && !catalog_find(&api->cp->catalog, topic))
        return; /* the topic was deleted: its offsets went with it (no tombstones written) */
    uint64_t now = mono_ms();
    struct group *g = rec->tombstone ? group_find(&api->gc, rec->group, rec->group_len)
                                     : group_get_or_create(&api->gc, rec->group, rec->group_len, now);
    if (!g) return;
    if (rec->tombstone) {
        group_offsets_delete(&g->offsets, rec->topic, rec->topic_len, rec->partition);
        return;
    }
    g->last_commit_ms = now;
    if (group_offsets_put(&g->offsets, rec->topic, rec->topic_len, rec->partition, rec->offset,
                          rec->leader_epoch, rec->metadata, rec->metadata_len,
                          rec->commit_timestamp_ms) != 0)
        log_warn("group_offsets_replay_full", "group=%.*s", (int)rec->group_len, rec->group);
}

/* A transactional commit still open at the end of the log: back to its transaction. */
static void replay_pending(void *arg, int64_t producer_id, int16_t producer_epoch,
                           const struct group_record *rec) {
    struct group_api *api = arg;
    (void)producer_epoch;
    if (api->cp->txns) txn_api_restore_offset(api->cp->txns, producer_id, rec);
}

int group_api_init(struct group_api *api, struct control_plane *cp, const char *data_dir,
                   char *err, size_t err_bytes) {
    memset(api, 0, sizeof *api);
    api->cp = cp;
    const struct config *c = cp->broker;
    struct group_config gcfg = {
        .min_session_timeout_ms = (int32_t)config_get_i64(c, "group.min.session.timeout.ms"),
        .max_session_timeout_ms = (int32_t)config_get_i64(c, "group.max.session.timeout.ms"),
        .initial_rebalance_delay_ms =
            (int32_t)config_get_i64(c, "group.initial.rebalance.delay.ms"),
        .max_size = (int32_t)config_get_i64(c, "group.max.size"),
        .offsets_retention_ms = config_get_i64(c, "offsets.retention.minutes") * 60000,
    };
    struct group_replies replies = {.ctx = api, .join = join_reply, .sync = sync_reply,
                                    .expired = group_writes_expired};
    group_coordinator_init(&api->gc, &gcfg, &replies);
    const struct catalog_topic *t = catalog_find(&cp->catalog, GROUP_OFFSETS_TOPIC);
    api->offsets_partitions = t ? t->partition_count
                                : (int32_t)config_get_i64(c, "offsets.topic.num.partitions");
    if (!t) return 0;
    long n = group_offsets_load_txn(data_dir, t->partition_count, replay_record, replay_pending,
                                    api, err, err_bytes);
    if (n < 0) return -1;
    log_info("group_offsets_loaded", "records=%ld groups=%u partitions=%d", n,
             api->gc.group_count, t->partition_count);
    return 0;
}

static void job_free(struct control_job *job) {
    free(job->request);
    free(job->response);
    free(job);
}

/* At shutdown (shards stopped): parked requests are dropped with their jobs. */
void group_api_destroy(struct group_api *api) {
    for (struct group *g = api->gc.groups; g; g = g->next)
        for (struct group_member *m = g->members; m; m = m->next) {
            if (m->join_waiter) job_free(m->join_waiter);
            if (m->sync_waiter) job_free(m->sync_waiter);
            m->join_waiter = m->sync_waiter = NULL;
        }
    group_coordinator_destroy(&api->gc);
}

bool group_api_handles(int16_t api_key) {
    switch (api_key) {
    case KAFKA_API_OFFSET_COMMIT: case KAFKA_API_OFFSET_FETCH: case KAFKA_API_JOIN_GROUP:
    case KAFKA_API_HEARTBEAT: case KAFKA_API_LEAVE_GROUP: case KAFKA_API_SYNC_GROUP:
    case KAFKA_API_DESCRIBE_GROUPS: case KAFKA_API_LIST_GROUPS: case KAFKA_API_DELETE_GROUPS:
    case KAFKA_API_OFFSET_DELETE: case KAFKA_API_TXN_OFFSET_COMMIT:
        return true;
    default:
        return false;
    }
}

/* Timers run every GROUP_TICK_MS at most: session timeouts are seconds long. */
#define GROUP_TICK_MS 50u

void group_api_tick(struct group_api *api) {
    uint64_t now = mono_ms();
    if (now < api->last_tick_ms + GROUP_TICK_MS) return;
    api->last_tick_ms = now;
    kafka_arena_reset(&api->cp->arena); /* parked answers are built in it */
    group_tick(&api->gc, now);
}

void group_api_topic_deleted(struct group_api *api, const char *topic) {
    for (struct group *g = api->gc.groups; g; g = g->next) {
        uint32_t n = group_offsets_delete_topic(&g->offsets, topic, strlen(topic));
        if (n) log_info("group_offsets_topic_deleted", "group=%s topic=%s offsets=%u",
                        g->group_id, topic, n);
    }
}

void group_api_visit_offsets(struct group_api *api, group_offset_visit_fn fn, void *arg) {
    for (struct group *g = api->gc.groups; g; g = g->next)
        for (uint32_t i = 0; i < g->offsets.count; i++) {
            const struct group_offset *o = &g->offsets.items[i];
            if (!fn(arg, g->group_id, o->topic, o->partition, o->offset)) return;
        }
}

/* ---- JoinGroup / SyncGroup / Heartbeat / LeaveGroup -------------------------------- */

static int join_group(struct group_api *api, struct control_job *job, struct kafka_reader *r) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_join_group_request req;
    int rc = kafka_join_group_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct group_join_args a = {
        .group_id = req.group_id.ptr, .group_len = slen(req.group_id),
        .member_id = req.member_id.ptr, .member_len = slen(req.member_id),
        .instance_id = req.group_instance_id.len >= 0 ? req.group_instance_id.ptr : NULL,
        .instance_len = slen(req.group_instance_id),
        .client_id = job->client_id, .client_host = job->client_host,
        .session_timeout_ms = req.session_timeout_ms,
        .rebalance_timeout_ms = job->api_version >= 1 ? req.rebalance_timeout_ms
                                                      : req.session_timeout_ms,
        .protocol_type = req.protocol_type.ptr, .protocol_type_len = slen(req.protocol_type),
        .protocol_count = req.protocols_count > GROUP_MAX_PROTOCOLS ? GROUP_MAX_PROTOCOLS + 1
                                                                    : req.protocols_count,
        .version = job->api_version, .waiter = job};
    for (int32_t i = 0; i < req.protocols_count && i < GROUP_MAX_PROTOCOLS; i++) {
        a.protocol_names[i] = req.protocols[i].name.ptr;
        a.protocol_name_lens[i] = slen(req.protocols[i].name);
        a.protocol_metadata[i] = req.protocols[i].metadata.ptr;
        a.protocol_metadata_bytes[i] =
            req.protocols[i].metadata.len > 0 ? (uint32_t)req.protocols[i].metadata.len : 0;
    }
    group_join(&api->gc, &a, mono_ms());
    return GROUP_API_PARKED; /* answered through join_reply, now or later */
}

static int sync_group(struct group_api *api, struct control_job *job, struct kafka_reader *r) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_sync_group_request req;
    int rc = kafka_sync_group_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    int32_t n = req.assignments_count > 0 ? req.assignments_count : 0;
    struct group_sync_assignment *as = KAFKA_ARENA_ARRAY(arena, n ? n : 1, as);
    if (!as) return KAFKA_ERR_ARENA;
    for (int32_t i = 0; i < n; i++)
        as[i] = (struct group_sync_assignment){
            .member_id = req.assignments[i].member_id.ptr,
            .member_len = slen(req.assignments[i].member_id),
            .assignment = req.assignments[i].assignment.ptr,
            .assignment_bytes = req.assignments[i].assignment.len > 0
                                    ? (uint32_t)req.assignments[i].assignment.len : 0};
    bool v5 = job->api_version >= 5;
    group_sync(&api->gc, req.group_id.ptr, slen(req.group_id), req.generation_id,
               req.member_id.ptr, slen(req.member_id),
               req.group_instance_id.len >= 0 ? req.group_instance_id.ptr : NULL,
               slen(req.group_instance_id),
               v5 && req.protocol_type.len >= 0 ? req.protocol_type.ptr : NULL,
               slen(req.protocol_type),
               v5 && req.protocol_name.len >= 0 ? req.protocol_name.ptr : NULL,
               slen(req.protocol_name), as, n, job, mono_ms());
    return GROUP_API_PARKED;
}

static int heartbeat(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                     void *resp_out) {
    struct kafka_heartbeat_request req;
    int rc = kafka_heartbeat_request_decode(r, job->api_version, &req, &api->cp->arena);
    if (rc != 0) return rc;
    struct kafka_heartbeat_response *resp = resp_out;
    kafka_heartbeat_response_init(resp, job->api_version);
    resp->error_code = group_heartbeat(
        &api->gc, req.group_id.ptr, slen(req.group_id), req.generation_id, req.member_id.ptr,
        slen(req.member_id), req.group_instance_id.len >= 0 ? req.group_instance_id.ptr : NULL,
        slen(req.group_instance_id), mono_ms());
    return 0;
}

static int leave_group(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                       void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_leave_group_request req;
    int rc = kafka_leave_group_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct kafka_leave_group_response *resp = resp_out;
    kafka_leave_group_response_init(resp, job->api_version);
    uint64_t now = mono_ms();
    if (job->api_version < 3) {
        resp->error_code = group_leave(&api->gc, req.group_id.ptr, slen(req.group_id),
                                       req.member_id.ptr, slen(req.member_id), NULL, 0, now);
        return 0;
    }
    int32_t n = req.members_count > 0 ? req.members_count : 0;
    resp->members = KAFKA_ARENA_ARRAY(arena, n ? n : 1, resp->members);
    if (!resp->members) return KAFKA_ERR_ARENA;
    resp->members_count = n;
    if (!group_find(&api->gc, req.group_id.ptr, slen(req.group_id))) /* Kafka: top level */
        resp->error_code = GROUP_ERR_UNKNOWN_MEMBER_ID;
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_leave_group_request_member_identity *mi = &req.members[i];
        resp->members[i].member_id = mi->member_id;
        resp->members[i].group_instance_id = mi->group_instance_id;
        resp->members[i].error_code = group_leave(
            &api->gc, req.group_id.ptr, slen(req.group_id), mi->member_id.ptr,
            slen(mi->member_id), mi->group_instance_id.len >= 0 ? mi->group_instance_id.ptr : NULL,
            slen(mi->group_instance_id), now);
    }
    return 0;
}

/* ---- OffsetFetch ------------------------------------------------------------------- */

#define ERR_UNSTABLE_OFFSET_COMMIT 88

/* Topics with committed offsets in g (sorted table: each topic's entries are adjacent). */
static int32_t distinct_topics(const struct group *g) {
    int32_t n = 0;
    for (uint32_t i = 0; i < g->offsets.count; i++)
        n += i == 0 || strcmp(g->offsets.items[i].topic, g->offsets.items[i - 1].topic) != 0;
    return n;
}

/* One partition's committed offset; with require_stable (v7+), UNSTABLE_OFFSET_COMMIT
 * while a transaction holds a commit of it that is not yet decided. */
static int16_t fill_partition(const struct group_api *api, const struct group *g,
                              struct kafka_str group_id, bool require_stable,
                              struct kafka_str topic, int32_t partition, int64_t *offset,
                              int32_t *epoch, struct kafka_str *metadata) {
    const struct group_offset *o =
        g ? group_offsets_get(&g->offsets, topic.ptr, slen(topic), partition) : NULL;
    *offset = o ? o->offset : -1;
    *epoch = o ? o->leader_epoch : -1;
    *metadata = kafka_str_from_cstr(o ? o->metadata : "");
    if (require_stable && api->cp->txns &&
        txn_api_offset_pending(api->cp->txns, group_id.ptr, slen(group_id), topic.ptr,
                               slen(topic), partition)) {
        *offset = -1;
        return ERR_UNSTABLE_OFFSET_COMMIT;
    }
    return 0;
}

/* One group's answer in the v0-7 shape. */
static int fetch_v0(const struct group_api *api, struct kafka_arena *arena, const struct group *g,
                    const struct kafka_offset_fetch_request *req, int16_t version,
                    struct kafka_offset_fetch_response *resp) {
    bool stable = version >= 7 && req->require_stable;
    bool all = req->topics_count < 0;
    int32_t nt = all ? (g ? distinct_topics(g) : 0) : req->topics_count;
    resp->topics = KAFKA_ARENA_ARRAY(arena, nt ? nt : 1, resp->topics);
    if (!resp->topics) return KAFKA_ERR_ARENA;
    resp->topics_count = nt;
    uint32_t e = 0;
    for (int32_t i = 0; i < nt; i++) {
        struct kafka_offset_fetch_response_offset_fetch_response_topic *out = &resp->topics[i];
        int32_t np;
        if (all) {
            out->name = kafka_str_from_cstr(g->offsets.items[e].topic);
            np = 0;
            while (e + (uint32_t)np < g->offsets.count &&
                   strcmp(g->offsets.items[e + (uint32_t)np].topic, g->offsets.items[e].topic) == 0)
                np++;
        } else {
            out->name = req->topics[i].name;
            np = req->topics[i].partition_indexes_count > 0 ? req->topics[i].partition_indexes_count : 0;
        }
        out->partitions = KAFKA_ARENA_ARRAY(arena, np ? np : 1, out->partitions);
        if (!out->partitions) return KAFKA_ERR_ARENA;
        out->partitions_count = np;
        for (int32_t j = 0; j < np; j++) {
            struct kafka_offset_fetch_response_offset_fetch_response_partition *p = &out->partitions[j];
            memset(p, 0, sizeof *p);
            p->partition_index = all ? g->offsets.items[e + (uint32_t)j].partition
                                     : req->topics[i].partition_indexes[j];
            p->error_code = fill_partition(api, g, req->group_id, stable, out->name,
                                           p->partition_index, &p->committed_offset,
                                           &p->committed_leader_epoch, &p->metadata);
        }
        if (all) e += (uint32_t)np;
    }
    return 0;
}

/* One group of a v8+ request. */
static int fetch_v8(const struct group_api *api, struct kafka_arena *arena, const struct group *g,
                    const struct kafka_offset_fetch_request_offset_fetch_request_group *rg,
                    bool stable,
                    struct kafka_offset_fetch_response_offset_fetch_response_group *out) {
    bool all = rg->topics_count < 0;
    int32_t nt = all ? (g ? distinct_topics(g) : 0) : rg->topics_count;
    out->group_id = rg->group_id;
    out->error_code = 0;
    out->topics = KAFKA_ARENA_ARRAY(arena, nt ? nt : 1, out->topics);
    if (!out->topics) return KAFKA_ERR_ARENA;
    out->topics_count = nt;
    uint32_t e = 0;
    for (int32_t i = 0; i < nt; i++) {
        struct kafka_offset_fetch_response_offset_fetch_response_topics *t = &out->topics[i];
        int32_t np;
        if (all) {
            t->name = kafka_str_from_cstr(g->offsets.items[e].topic);
            np = 0;
            while (e + (uint32_t)np < g->offsets.count &&
                   strcmp(g->offsets.items[e + (uint32_t)np].topic, g->offsets.items[e].topic) == 0)
                np++;
        } else {
            t->name = rg->topics[i].name;
            np = rg->topics[i].partition_indexes_count > 0 ? rg->topics[i].partition_indexes_count : 0;
        }
        t->partitions = KAFKA_ARENA_ARRAY(arena, np ? np : 1, t->partitions);
        if (!t->partitions) return KAFKA_ERR_ARENA;
        t->partitions_count = np;
        for (int32_t j = 0; j < np; j++) {
            struct kafka_offset_fetch_response_offset_fetch_response_partitions *p = &t->partitions[j];
            memset(p, 0, sizeof *p);
            p->partition_index = all ? g->offsets.items[e + (uint32_t)j].partition
                                     : rg->topics[i].partition_indexes[j];
            p->error_code = fill_partition(api, g, rg->group_id, stable, t->name,
                                           p->partition_index, &p->committed_offset,
                                           &p->committed_leader_epoch, &p->metadata);
        }
        if (all) e += (uint32_t)np;
    }
    return 0;
}

static int offset_fetch(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                        void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_offset_fetch_request req;
    int rc = kafka_offset_fetch_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct kafka_offset_fetch_response *resp = resp_out;
    kafka_offset_fetch_response_init(resp, job->api_version);
    if (job->api_version < 8) {
        const struct group *g = group_find(&api->gc, req.group_id.ptr, slen(req.group_id));
        if (job->api_version < 2 && req.topics_count < 0) req.topics_count = 0;
        return fetch_v0(api, arena, g, &req, job->api_version, resp);
    }
    int32_t n = req.groups_count > 0 ? req.groups_count : 0;
    resp->groups = KAFKA_ARENA_ARRAY(arena, n ? n : 1, resp->groups);
    if (!resp->groups) return KAFKA_ERR_ARENA;
    resp->groups_count = n;
    for (int32_t i = 0; i < n; i++) {
        const struct group *g =
            group_find(&api->gc, req.groups[i].group_id.ptr, slen(req.groups[i].group_id));
        rc = fetch_v8(api, arena, g, &req.groups[i], req.require_stable, &resp->groups[i]);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- DescribeGroups / ListGroups ----------------------------------------------------- */

static int describe_one(struct kafka_arena *arena, const struct group *g, struct kafka_str id,
                        struct kafka_describe_groups_response_described_group *out) {
    memset(out, 0, sizeof *out);
    out->group_id = id;
    out->authorized_operations = INT32_MIN;
    out->group_state = kafka_str_from_cstr(g ? group_state_name(g->state) : "Dead");
    out->protocol_type = kafka_str_from_cstr(g && g->protocol_type ? g->protocol_type : "");
    bool stable_ish = g && (g->state == GROUP_STABLE || g->state == GROUP_COMPLETING_REBALANCE);
    out->protocol_data = kafka_str_from_cstr(stable_ish && g->protocol_name ? g->protocol_name : "");
    out->members_count = 0;
    out->members = NULL;
    if (!g || g->member_count == 0) return 0;
    out->members = KAFKA_ARENA_ARRAY(arena, g->member_count, out->members);
    if (!out->members) return KAFKA_ERR_ARENA;
    int32_t n = 0;
    for (const struct group_member *m = g->members; m; m = m->next) {
        if (m->pending) continue;
        struct kafka_describe_groups_response_described_group_member *dm = &out->members[n++];
        const struct group_protocol *p = stable_ish ? group_member_protocol(g, m) : NULL;
        dm->member_id = kafka_str_from_cstr(m->member_id);
        dm->group_instance_id = kafka_str_from_cstr(m->instance_id);
        dm->client_id = kafka_str_from_cstr(m->client_id);
        dm->client_host = kafka_str_from_cstr(m->client_host);
        dm->member_metadata = p ? bytes_of(p->metadata, p->metadata_bytes) : bytes_of(NULL, 0);
        dm->member_assignment = g->state == GROUP_STABLE
                                    ? bytes_of(m->assignment, m->assignment_bytes)
                                    : bytes_of(NULL, 0);
    }
    out->members_count = n;
    return 0;
}

static int describe_groups(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                           void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_describe_groups_request req;
    int rc = kafka_describe_groups_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct kafka_describe_groups_response *resp = resp_out;
    kafka_describe_groups_response_init(resp, job->api_version);
    int32_t n = req.groups_count > 0 ? req.groups_count : 0;
    resp->groups = KAFKA_ARENA_ARRAY(arena, n ? n : 1, resp->groups);
    if (!resp->groups) return KAFKA_ERR_ARENA;
    resp->groups_count = n;
    for (int32_t i = 0; i < n; i++) {
        const struct group *g = group_find(&api->gc, req.groups[i].ptr, slen(req.groups[i]));
        rc = describe_one(arena, g, req.groups[i], &resp->groups[i]);
        if (rc != 0) return rc;
        if (slen(req.groups[i]) == 0) resp->groups[i].error_code = GROUP_ERR_INVALID_GROUP_ID;
    }
    return 0;
}

static bool str_listed(const struct kafka_str *list, int32_t count, const char *s) {
    if (count <= 0) return true; /* no filter */
    for (int32_t i = 0; i < count; i++)
        if (slen(list[i]) == strlen(s) && strncasecmp(list[i].ptr, s, strlen(s)) == 0) return true;
    return false;
}

static int list_groups(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                       void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_list_groups_request req;
    int rc = kafka_list_groups_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct kafka_list_groups_response *resp = resp_out;
    kafka_list_groups_response_init(resp, job->api_version);
    uint32_t cap = api->gc.group_count;
    resp->groups = KAFKA_ARENA_ARRAY(arena, cap ? cap : 1, resp->groups);
    if (!resp->groups) return KAFKA_ERR_ARENA;
    int32_t n = 0;
    for (const struct group *g = api->gc.groups; g; g = g->next) {
        const char *state = group_state_name(g->state);
        if (job->api_version >= 4 && !str_listed(req.states_filter, req.states_filter_count, state))
            continue;
        if (job->api_version >= 5 && !str_listed(req.types_filter, req.types_filter_count, "classic"))
            continue;
        struct kafka_list_groups_response_listed_group *lg = &resp->groups[n++];
        lg->group_id = kafka_str_from_cstr(g->group_id);
        lg->protocol_type = kafka_str_from_cstr(g->protocol_type ? g->protocol_type : "");
        lg->group_state = kafka_str_from_cstr(state);
        lg->group_type = kafka_str_from_cstr("classic");
    }
    resp->groups_count = n;
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------- */

int group_api_execute(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                      void *resp) {
    switch (job->api_key) {
    case KAFKA_API_JOIN_GROUP: return join_group(api, job, r);
    case KAFKA_API_SYNC_GROUP: return sync_group(api, job, r);
    case KAFKA_API_HEARTBEAT: return heartbeat(api, job, r, resp);
    case KAFKA_API_LEAVE_GROUP: return leave_group(api, job, r, resp);
    case KAFKA_API_OFFSET_COMMIT: return group_writes_offset_commit(api, job, r, resp);
    case KAFKA_API_OFFSET_FETCH: return offset_fetch(api, job, r, resp);
    case KAFKA_API_DESCRIBE_GROUPS: return describe_groups(api, job, r, resp);
    case KAFKA_API_LIST_GROUPS: return list_groups(api, job, r, resp);
    case KAFKA_API_DELETE_GROUPS: return group_writes_delete_groups(api, job, r, resp);
    case KAFKA_API_OFFSET_DELETE: return group_writes_offset_delete(api, job, r, resp);
    case KAFKA_API_TXN_OFFSET_COMMIT: return group_writes_txn_offset_commit(api, job, r, resp);
    default: return KAFKA_ERR_UNKNOWN_API;
    }
}
