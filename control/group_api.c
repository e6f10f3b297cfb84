/* group_api.c - the group APIs as control-plane jobs: decode the request, ask the
 * coordinator (group_coordinator.c) and the offset tables (group_offsets.c), encode.
 *
 * Parked answers. JoinGroup and SyncGroup are always answered through the coordinator's
 * reply callbacks (join_reply / sync_reply below): the job is the waiter, and the
 * callback builds the response in control's arena and hands it to control_plane_answer(),
 * which encodes it and sends the job back to its shard -- at once, or when a rebalance
 * completes on another member's request or on a timer.
 *
 * Durable commits. OffsetCommit checks the member and generation, checks each partition
 * (the topic exists, the partition is in range, the metadata fits in
 * offset.metadata.max.bytes), then writes one RecordBatch v2 holding an offset-commit
 * record per accepted partition (Kafka's format, group_offsets.h) to the group's
 * __consumer_offsets partition through control_plane_internal_append(): the owner
 * shard appends it with acks=all semantics. Only when that append is durable are the
 * offsets applied to the in-memory table and the client answered (its request is
 * decoded again from the job for the answer, because control's arena is per job).
 * A failed append answers COORDINATOR_NOT_AVAILABLE (clients retry it). OffsetDelete
 * writes tombstones the same way. The topic itself is created on the first write
 * (offsets.topic.num.partitions partitions, internal), as Kafka creates it lazily.
 *
 * DeleteGroups removes the group and its offsets in memory and writes tombstones for
 * them (and for the group metadata key), answering after the append.
 *
 * Expired offsets (offsets.retention.minutes) get tombstones the same way, with nobody
 * waiting for them.
 *
 * Not done here: group metadata records (a restarted broker knows each group's
 * offsets, and its members simply rejoin an Empty group); tombstones for the offsets of
 * a deleted topic -- dropped in memory, and at reload offsets of topics the catalogue
 * no longer has are skipped.
 * Commits inside transactions (TxnOffsetCommit) belong to the transaction coordinator. */
#include "control/group_api.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "control/control_plane.h"
#include "hw/log.h"
#include "storage/record/records.h"

#define ERR_COORDINATOR_NOT_AVAILABLE 15
#define ERR_INVALID_COMMIT_OFFSET_SIZE 28
#define ERR_KAFKA_STORAGE_ERROR 56
#define ERR_MESSAGE_TOO_LARGE 10
#define ERR_GROUP_SUBSCRIBED_TO_TOPIC 86
#define GROUP_BATCH_MAX_BYTES (1u << 20) /* fits a storage chunk (1 MiB + 64 KiB - 4 KiB) */

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slen(struct kafka_str s) { return s.len > 0 ? (size_t)s.len : 0; }

/* ---- parked answers ------------------------------------------------------------------ */

static struct kafka_bytes bytes_of(const uint8_t *p, uint32_t n) {
    return (struct kafka_bytes){p ? p : (const uint8_t *)"", (int32_t)n};
}

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

struct delete_groups_wait;
static int16_t delete_group_write(struct group_api *api, const struct group *g,
                                  struct delete_groups_wait *parent, int32_t index);

/* Expired offsets: tombstones, so a restart does not bring them back. */
static void expired_reply(void *ctx, const struct group *g) {
    struct group_api *api = ctx;
    if (g->offsets.count == 0) return;
    int16_t ec = delete_group_write(api, g, NULL, 0);
    if (ec != 0) log_warn("offsets_expire_write_failed", "group=%s error=%d", g->group_id, ec);
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
                                    .expired = expired_reply};
    group_coordinator_init(&api->gc, &gcfg, &replies);
    const struct catalog_topic *t = catalog_find(&cp->catalog, GROUP_OFFSETS_TOPIC);
    api->offsets_partitions = t ? t->partition_count
                                : (int32_t)config_get_i64(c, "offsets.topic.num.partitions");
    if (!t) return 0;
    long n = group_offsets_load(data_dir, t->partition_count, replay_record, api, err, err_bytes);
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
    case KAFKA_API_OFFSET_DELETE:
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
        .client_id = "consumer", .client_host = "",
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

/* ---- writes to __consumer_offsets ------------------------------------------------ */

enum write_kind { WRITE_COMMIT, WRITE_OFFSET_DELETE, WRITE_DELETE_GROUP, WRITE_EXPIRED };

/* A DeleteGroups request waiting for the tombstones of each deleted group. */
struct delete_groups_wait {
    struct control_job *job;
    int16_t *errors;             /* per group, in request order */
    int32_t count;
    int32_t writes_left;
};

struct offsets_write {
    struct group_api *api;
    struct control_job *job;
    enum write_kind kind;
    struct group *group;          /* commits: held (commits_in_flight) until done */
    int16_t *errors;              /* per partition in request order; 0 = in the batch */
    uint32_t error_count;
    int64_t timestamp_ms;
    uint8_t *batch;
    struct delete_groups_wait *parent; /* DeleteGroups: answered when all its writes are */
    int32_t parent_index;
    struct internal_append_job append;
};

static void write_free(struct offsets_write *w) {
    free(w->errors);
    free(w->batch);
    free(w);
}

static int16_t append_error(int16_t ec) {
    if (ec == ERR_MESSAGE_TOO_LARGE) return ERR_INVALID_COMMIT_OFFSET_SIZE;
    if (ec == 0) return 0;
    return ERR_COORDINATOR_NOT_AVAILABLE; /* storage error, topic not there yet: retriable */
}

/* The __consumer_offsets topic, created on first need. NULL when it cannot be. */
static const struct catalog_topic *offsets_topic(struct group_api *api) {
    struct control_plane *cp = api->cp;
    const struct catalog_topic *t = catalog_find(&cp->catalog, GROUP_OFFSETS_TOPIC);
    if (t) return t;
    struct catalog_create_request req = {.name = GROUP_OFFSETS_TOPIC,
                                         .partition_count = api->offsets_partitions,
                                         .replication_factor = 1, .internal = true};
    struct catalog_result res;
    int16_t ec = catalog_create_topic(&cp->catalog, &req, false, &res);
    log_info("offsets_topic_created", "partitions=%d error=%d", api->offsets_partitions, ec);
    if (ec != 0) return NULL;
    control_plane_publish(cp);
    return catalog_find(&cp->catalog, GROUP_OFFSETS_TOPIC);
}

static void write_done(struct internal_append_job *aj);

/* Build the batch from records and send it to the group's partition. 0 or an error code
 * to answer with (the write is then not in flight). */
static int16_t write_send(struct offsets_write *w, const char *group, size_t group_len,
                          const struct record_in *recs, int32_t count) {
    size_t records_bytes = record_batch_records_bytes(recs, count);
    size_t cap = RECORD_BATCH_HEADER_BYTES + records_bytes;
    if (records_bytes == 0 || cap > GROUP_BATCH_MAX_BYTES) return ERR_INVALID_COMMIT_OFFSET_SIZE;
    const struct catalog_topic *t = offsets_topic(w->api);
    if (!t) return ERR_COORDINATOR_NOT_AVAILABLE;
    w->batch = malloc(cap);
    if (!w->batch) return ERR_COORDINATOR_NOT_AVAILABLE;
    struct record_batch_spec spec = record_batch_spec_default();
    size_t len = 0;
    if (record_batch_write(NULL, &spec, recs, count, w->batch, cap, NULL, 0, &len) != RECORD_OK)
        return GROUP_ERR_UNKNOWN_SERVER_ERROR;
    memcpy(w->append.topic_id, t->id, 16);
    w->append.partition = group_offsets_partition_for(group, group_len, t->partition_count);
    w->append.batch = w->batch;
    w->append.batch_bytes = (uint32_t)len;
    w->append.done = write_done;
    w->append.user = w;
    int16_t ec = control_plane_internal_append(w->api->cp, &w->append);
    if (ec != 0) return append_error(ec);
    w->api->writes_in_flight++;
    if (w->group) w->group->commits_in_flight++;
    return 0;
}

/* ---- OffsetCommit ------------------------------------------------------------------ */

static int16_t partition_check(struct control_plane *cp, struct kafka_str topic, int32_t partition,
                               struct kafka_str metadata) {
    char name[GROUP_TOPIC_MAX_BYTES + 1];
    if (slen(topic) == 0 || slen(topic) > GROUP_TOPIC_MAX_BYTES)
        return GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    memcpy(name, topic.ptr, slen(topic));
    name[slen(topic)] = '\0';
    const struct catalog_topic *t = catalog_find(&cp->catalog, name);
    if (!t || partition < 0 || partition >= t->partition_count)
        return GROUP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (slen(metadata) > GROUP_METADATA_MAX_BYTES) return GROUP_ERR_OFFSET_METADATA_TOO_LARGE;
    return 0;
}

/* The response from the request and one error per partition (flattened, in order). */
static int commit_response(struct kafka_arena *arena, const struct kafka_offset_commit_request *req,
                           const int16_t *errors, int16_t all_error,
                           struct kafka_offset_commit_response *resp, int16_t version) {
    kafka_offset_commit_response_init(resp, version);
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = KAFKA_ARENA_ARRAY(arena, nt ? nt : 1, resp->topics);
    if (!resp->topics) return KAFKA_ERR_ARENA;
    resp->topics_count = nt;
    uint32_t k = 0;
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_offset_commit_request_offset_commit_request_topic *t = &req->topics[i];
        int32_t np = t->partitions_count > 0 ? t->partitions_count : 0;
        resp->topics[i].name = t->name;
        resp->topics[i].partitions = KAFKA_ARENA_ARRAY(arena, np ? np : 1, resp->topics[i].partitions);
        if (!resp->topics[i].partitions) return KAFKA_ERR_ARENA;
        resp->topics[i].partitions_count = np;
        for (int32_t j = 0; j < np; j++, k++) {
            resp->topics[i].partitions[j].partition_index = t->partitions[j].partition_index;
            resp->topics[i].partitions[j].error_code =
                errors && errors[k] ? errors[k] : all_error;
        }
    }
    return 0;
}

static uint32_t commit_partition_count(const struct kafka_offset_commit_request *req) {
    uint32_t n = 0;
    for (int32_t i = 0; i < req->topics_count; i++)
        n += req->topics[i].partitions_count > 0 ? (uint32_t)req->topics[i].partitions_count : 0;
    return n;
}

static int offset_commit(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                         void *resp_out) {
    struct control_plane *cp = api->cp;
    struct kafka_offset_commit_request req;
    int rc = kafka_offset_commit_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    uint64_t now = mono_ms();
    int16_t ec = group_commit_check(&api->gc, req.group_id.ptr, slen(req.group_id),
                                    job->api_version >= 1 ? req.generation_id_or_member_epoch : -1,
                                    req.member_id.ptr, slen(req.member_id),
                                    req.group_instance_id.len >= 0 ? req.group_instance_id.ptr : NULL,
                                    slen(req.group_instance_id), now);
    struct group *g = ec == 0 ? group_get_or_create(&api->gc, req.group_id.ptr, slen(req.group_id), now)
                              : NULL;
    if (ec == 0 && !g) ec = ERR_COORDINATOR_NOT_AVAILABLE;
    uint32_t count = commit_partition_count(&req);
    if (ec != 0 || count == 0)
        return commit_response(&cp->arena, &req, NULL, ec, resp_out, job->api_version);
    struct offsets_write *w = calloc(1, sizeof *w);
    struct record_in *recs = calloc(count, sizeof *recs);
    if (!w || !recs || !(w->errors = calloc(count, sizeof w->errors[0]))) {
        free(recs);
        if (w) write_free(w);
        return commit_response(&cp->arena, &req, NULL, ERR_COORDINATOR_NOT_AVAILABLE, resp_out,
                               job->api_version);
    }
    w->api = api;
    w->job = job;
    w->kind = WRITE_COMMIT;
    w->group = g;
    w->error_count = count;
    w->timestamp_ms = wall_ms();
    int32_t n = 0;
    uint32_t k = 0;
    size_t glen = slen(req.group_id);
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_offset_commit_request_offset_commit_request_topic *t = &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            const struct kafka_offset_commit_request_offset_commit_request_partition *p =
                &t->partitions[j];
            w->errors[k] = partition_check(cp, t->name, p->partition_index, p->committed_metadata);
            if (w->errors[k]) continue;
            size_t kb = group_record_offset_key_bytes(glen, slen(t->name));
            size_t vb = group_record_offset_value_bytes(slen(p->committed_metadata));
            uint8_t *kv = kafka_arena_alloc(&cp->arena, kb + vb, 1, 1);
            if (!kv) {
                w->errors[k] = ERR_COORDINATOR_NOT_AVAILABLE;
                continue;
            }
            int64_t ts = job->api_version == 1 && p->commit_timestamp >= 0 ? p->commit_timestamp
                                                                          : w->timestamp_ms;
            group_record_offset_key_write(kv, req.group_id.ptr, glen, t->name.ptr, slen(t->name),
                                          p->partition_index);
            group_record_offset_value_write(kv + kb, p->committed_offset,
                                            job->api_version >= 6 ? p->committed_leader_epoch : -1,
                                            p->committed_metadata.ptr,
                                            slen(p->committed_metadata), ts);
            recs[n++] = (struct record_in){.key = kv, .key_len = (int32_t)kb, .value = kv + kb,
                                           .value_len = (int32_t)vb, .timestamp_ms = w->timestamp_ms};
        }
    }
    ec = n > 0 ? write_send(w, req.group_id.ptr, glen, recs, n) : 0;
    free(recs);
    if (n > 0 && ec == 0) return GROUP_API_PARKED;
    rc = commit_response(&cp->arena, &req, w->errors, ec, resp_out, job->api_version);
    write_free(w);
    return rc;
}

/* The append is durable (or failed): apply and answer. */
static void commit_done(struct offsets_write *w) {
    struct control_plane *cp = w->api->cp;
    struct control_job *job = w->job;
    kafka_arena_reset(&cp->arena);
    struct kafka_reader r;
    kafka_reader_init(&r, job->request, job->request_bytes);
    struct kafka_offset_commit_request req;
    struct kafka_offset_commit_response resp;
    if (kafka_offset_commit_request_decode(&r, job->api_version, &req, &cp->arena) != 0) {
        control_plane_answer(cp, job, NULL);
        return;
    }
    int16_t ec = append_error(w->append.error_code);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count && ec == 0; i++) {
        const struct kafka_offset_commit_request_offset_commit_request_topic *t = &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            const struct kafka_offset_commit_request_offset_commit_request_partition *p =
                &t->partitions[j];
            if (w->errors[k]) continue;
            int64_t ts = job->api_version == 1 && p->commit_timestamp >= 0 ? p->commit_timestamp
                                                                          : w->timestamp_ms;
            if (group_offsets_put(&w->group->offsets, t->name.ptr, slen(t->name),
                                  p->partition_index, p->committed_offset,
                                  job->api_version >= 6 ? p->committed_leader_epoch : -1,
                                  p->committed_metadata.ptr, slen(p->committed_metadata), ts) != 0)
                w->errors[k] = GROUP_ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    w->group->last_commit_ms = mono_ms();
    if (commit_response(&cp->arena, &req, w->errors, ec, &resp, job->api_version) != 0)
        control_plane_answer(cp, job, NULL);
    else
        control_plane_answer(cp, job, &resp);
}

/* ---- OffsetFetch ------------------------------------------------------------------- */

/* Topics with committed offsets in g (sorted table: each topic's entries are adjacent). */
static int32_t distinct_topics(const struct group *g) {
    int32_t n = 0;
    for (uint32_t i = 0; i < g->offsets.count; i++)
        n += i == 0 || strcmp(g->offsets.items[i].topic, g->offsets.items[i - 1].topic) != 0;
    return n;
}

static void fill_partition(const struct group *g, struct kafka_str topic, int32_t partition,
                           int64_t *offset, int32_t *epoch, struct kafka_str *metadata) {
    const struct group_offset *o =
        g ? group_offsets_get(&g->offsets, topic.ptr, slen(topic), partition) : NULL;
    *offset = o ? o->offset : -1;
    *epoch = o ? o->leader_epoch : -1;
    *metadata = kafka_str_from_cstr(o ? o->metadata : "");
}

/* One group's answer in the v0-7 shape. */
static int fetch_v0(struct kafka_arena *arena, const struct group *g,
                    const struct kafka_offset_fetch_request *req,
                    struct kafka_offset_fetch_response *resp) {
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
            fill_partition(g, out->name, p->partition_index, &p->committed_offset,
                           &p->committed_leader_epoch, &p->metadata);
        }
        if (all) e += (uint32_t)np;
    }
    return 0;
}

/* One group of a v8+ request. */
static int fetch_v8(struct kafka_arena *arena, const struct group *g,
                    const struct kafka_offset_fetch_request_offset_fetch_request_group *rg,
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
            fill_partition(g, t->name, p->partition_index, &p->committed_offset,
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
        return fetch_v0(arena, g, &req, resp);
    }
    int32_t n = req.groups_count > 0 ? req.groups_count : 0;
    resp->groups = KAFKA_ARENA_ARRAY(arena, n ? n : 1, resp->groups);
    if (!resp->groups) return KAFKA_ERR_ARENA;
    resp->groups_count = n;
    for (int32_t i = 0; i < n; i++) {
        const struct group *g =
            group_find(&api->gc, req.groups[i].group_id.ptr, slen(req.groups[i].group_id));
        rc = fetch_v8(arena, g, &req.groups[i], &resp->groups[i]);
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

/* ---- DeleteGroups / OffsetDelete ---------------------------------------------------- */

/* Tombstones for every offset of g and for the group itself: for DeleteGroups (parent
 * answered when all its writes are) or for expired offsets (parent NULL: nobody waits). */
static int16_t delete_group_write(struct group_api *api, const struct group *g,
                                  struct delete_groups_wait *parent, int32_t index) {
    struct kafka_arena *arena = &api->cp->arena;
    uint32_t count = g->offsets.count + 1;
    struct offsets_write *w = calloc(1, sizeof *w);
    struct record_in *recs = calloc(count, sizeof *recs);
    if (!w || !recs) {
        free(w);
        free(recs);
        return ERR_COORDINATOR_NOT_AVAILABLE;
    }
    size_t glen = strlen(g->group_id);
    int64_t now = wall_ms();
    for (uint32_t i = 0; i < g->offsets.count; i++) {
        const struct group_offset *o = &g->offsets.items[i];
        size_t kb = group_record_offset_key_bytes(glen, strlen(o->topic));
        uint8_t *k = kafka_arena_alloc(arena, kb, 1, 1);
        if (!k) {
            free(recs);
            free(w);
            return ERR_COORDINATOR_NOT_AVAILABLE;
        }
        group_record_offset_key_write(k, g->group_id, glen, o->topic, strlen(o->topic), o->partition);
        recs[i] = (struct record_in){.key = k, .key_len = (int32_t)kb, .value_len = -1,
                                     .timestamp_ms = now};
    }
    size_t gb = group_record_group_key_bytes(glen);
    uint8_t *gk = kafka_arena_alloc(arena, gb, 1, 1);
    if (!gk) {
        free(recs);
        free(w);
        return ERR_COORDINATOR_NOT_AVAILABLE;
    }
    group_record_group_key_write(gk, g->group_id, glen);
    recs[count - 1] = (struct record_in){.key = gk, .key_len = (int32_t)gb, .value_len = -1,
                                         .timestamp_ms = now};
    w->api = api;
    w->job = parent ? parent->job : NULL;
    w->kind = parent ? WRITE_DELETE_GROUP : WRITE_EXPIRED;
    w->parent = parent;
    w->parent_index = index;
    int16_t ec = write_send(w, g->group_id, glen, recs, (int32_t)count);
    free(recs);
    if (ec != 0) write_free(w);
    return ec;
}

static int delete_groups_answer(struct group_api *api, struct delete_groups_wait *dw,
                                struct kafka_delete_groups_response *resp) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_reader r;
    struct kafka_delete_groups_request req;
    kafka_reader_init(&r, dw->job->request, dw->job->request_bytes);
    int rc = kafka_delete_groups_request_decode(&r, dw->job->api_version, &req, arena);
    if (rc != 0) return rc;
    kafka_delete_groups_response_init(resp, dw->job->api_version);
    resp->results = KAFKA_ARENA_ARRAY(arena, dw->count ? dw->count : 1, resp->results);
    if (!resp->results) return KAFKA_ERR_ARENA;
    resp->results_count = dw->count;
    for (int32_t i = 0; i < dw->count; i++) {
        resp->results[i].group_id = req.groups_names[i];
        resp->results[i].error_code = dw->errors[i];
    }
    return 0;
}

static int delete_groups(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                         void *resp_out) {
    struct kafka_delete_groups_request req;
    int rc = kafka_delete_groups_request_decode(r, job->api_version, &req, &api->cp->arena);
    if (rc != 0) return rc;
    int32_t n = req.groups_names_count > 0 ? req.groups_names_count : 0;
    struct delete_groups_wait *dw = calloc(1, sizeof *dw);
    if (!dw || !(dw->errors = calloc((size_t)(n ? n : 1), sizeof dw->errors[0]))) {
        free(dw);
        return KAFKA_ERR_ARENA;
    }
    dw->job = job;
    dw->count = n;
    dw->writes_left = 1; /* this function's own reference */
    for (int32_t i = 0; i < n; i++) {
        struct kafka_str name = req.groups_names[i];
        struct group *g = group_find(&api->gc, name.ptr, slen(name));
        int16_t ec = group_delete_check(&api->gc, name.ptr, slen(name));
        if (ec == 0 && g->offsets.count + g->member_count > 0) {
            ec = delete_group_write(api, g, dw, i);
            if (ec == 0) dw->writes_left++;
        }
        if (ec == 0) ec = group_delete(&api->gc, name.ptr, slen(name));
        dw->errors[i] = ec;
    }
    if (--dw->writes_left > 0) return GROUP_API_PARKED;
    rc = delete_groups_answer(api, dw, resp_out);
    free(dw->errors);
    free(dw);
    return rc;
}

/* Does a member of g subscribe to topic? Reads ConsumerProtocolSubscription (int16
 * version, array of topic strings) of the chosen protocol, the "consumer" type only. */
static bool group_subscribes(const struct group *g, struct kafka_str topic) {
    if (!g->protocol_type || strcmp(g->protocol_type, "consumer") != 0) return false;
    for (const struct group_member *m = g->members; m; m = m->next) {
        const struct group_protocol *p = m->pending ? NULL : group_member_protocol(g, m);
        if (!p) continue;
        struct kafka_reader r;
        kafka_reader_init(&r, p->metadata, p->metadata_bytes);
        (void)kafka_read_int16(&r);
        int32_t n = kafka_read_array_len(&r, false, 2);
        for (int32_t i = 0; i < n && r.err == 0; i++) {
            struct kafka_str s = kafka_read_string(&r, false);
            if (r.err == 0 && kafka_str_equals(s, topic)) return true;
        }
    }
    return false;
}

static int offset_delete_response(struct kafka_arena *arena, const struct kafka_offset_delete_request *req,
                                  const int16_t *errors, int16_t all_error,
                                  struct kafka_offset_delete_response *resp, int16_t version) {
    kafka_offset_delete_response_init(resp, version);
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = KAFKA_ARENA_ARRAY(arena, nt ? nt : 1, resp->topics);
    if (!resp->topics) return KAFKA_ERR_ARENA;
    resp->topics_count = nt;
    uint32_t k = 0;
    for (int32_t i = 0; i < nt; i++) {
        int32_t np = req->topics[i].partitions_count > 0 ? req->topics[i].partitions_count : 0;
        resp->topics[i].name = req->topics[i].name;
        resp->topics[i].partitions = KAFKA_ARENA_ARRAY(arena, np ? np : 1, resp->topics[i].partitions);
        if (!resp->topics[i].partitions) return KAFKA_ERR_ARENA;
        resp->topics[i].partitions_count = np;
        for (int32_t j = 0; j < np; j++, k++) {
            resp->topics[i].partitions[j].partition_index =
                req->topics[i].partitions[j].partition_index;
            resp->topics[i].partitions[j].error_code = errors && errors[k] ? errors[k] : all_error;
        }
    }
    return 0;
}

static int offset_delete(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                         void *resp_out) {
    struct control_plane *cp = api->cp;
    struct kafka_offset_delete_request req;
    int rc = kafka_offset_delete_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_offset_delete_response *resp = resp_out;
    struct group *g = group_find(&api->gc, req.group_id.ptr, slen(req.group_id));
    uint32_t count = 0;
    for (int32_t i = 0; i < req.topics_count; i++)
        count += req.topics[i].partitions_count > 0 ? (uint32_t)req.topics[i].partitions_count : 0;
    if (!g || count == 0) {
        rc = offset_delete_response(&cp->arena, &req, NULL, 0, resp, job->api_version);
        resp->error_code = g ? 0 : GROUP_ERR_GROUP_ID_NOT_FOUND;
        return rc;
    }
    struct offsets_write *w = calloc(1, sizeof *w);
    struct record_in *recs = calloc(count, sizeof *recs);
    if (!w || !recs || !(w->errors = calloc(count, sizeof w->errors[0]))) {
        free(recs);
        if (w) write_free(w);
        return KAFKA_ERR_ARENA;
    }
    w->api = api;
    w->job = job;
    w->kind = WRITE_OFFSET_DELETE;
    w->group = g;
    w->error_count = count;
    size_t glen = slen(req.group_id);
    int32_t n = 0;
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_offset_delete_request_offset_delete_request_topic *t = &req.topics[i];
        bool subscribed = group_subscribes(g, t->name);
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            int32_t part = t->partitions[j].partition_index;
            w->errors[k] = subscribed ? ERR_GROUP_SUBSCRIBED_TO_TOPIC
                                      : partition_check(cp, t->name, part, kafka_str_from_cstr(""));
            if (w->errors[k] || !group_offsets_get(&g->offsets, t->name.ptr, slen(t->name), part))
                continue;
            size_t kb = group_record_offset_key_bytes(glen, slen(t->name));
            uint8_t *key = kafka_arena_alloc(&cp->arena, kb, 1, 1);
            if (!key) return KAFKA_ERR_ARENA;
            group_record_offset_key_write(key, req.group_id.ptr, glen, t->name.ptr, slen(t->name), part);
            recs[n++] = (struct record_in){.key = key, .key_len = (int32_t)kb, .value_len = -1,
                                           .timestamp_ms = wall_ms()};
        }
    }
    int16_t ec = n > 0 ? write_send(w, req.group_id.ptr, glen, recs, n) : 0;
    free(recs);
    if (n > 0 && ec == 0) return GROUP_API_PARKED;
    rc = offset_delete_response(&cp->arena, &req, w->errors, ec, resp, job->api_version);
    write_free(w);
    return rc;
}

static void offset_delete_done(struct offsets_write *w) {
    struct control_plane *cp = w->api->cp;
    struct control_job *job = w->job;
    kafka_arena_reset(&cp->arena);
    struct kafka_reader r;
    kafka_reader_init(&r, job->request, job->request_bytes);
    struct kafka_offset_delete_request req;
    struct kafka_offset_delete_response resp;
    if (kafka_offset_delete_request_decode(&r, job->api_version, &req, &cp->arena) != 0) {
        control_plane_answer(cp, job, NULL);
        return;
    }
    int16_t ec = append_error(w->append.error_code);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count && ec == 0; i++)
        for (int32_t j = 0; j < req.topics[i].partitions_count; j++, k++)
            if (!w->errors[k])
                group_offsets_delete(&w->group->offsets, req.topics[i].name.ptr,
                                     slen(req.topics[i].name),
                                     req.topics[i].partitions[j].partition_index);
    if (offset_delete_response(&cp->arena, &req, w->errors, ec, &resp, job->api_version) != 0)
        control_plane_answer(cp, job, NULL);
    else
        control_plane_answer(cp, job, &resp);
}

static void write_done(struct internal_append_job *aj) {
    struct offsets_write *w = aj->user;
    assert(w->api->writes_in_flight > 0);
    w->api->writes_in_flight--;
    if (w->group) {
        assert(w->group->commits_in_flight > 0);
        w->group->commits_in_flight--;
    }
    if (aj->error_code)
        log_warn("offsets_write_failed", "kind=%d partition=%d error=%d", w->kind, aj->partition,
                 aj->error_code);
    switch (w->kind) {
    case WRITE_COMMIT: commit_done(w); break;
    case WRITE_OFFSET_DELETE: offset_delete_done(w); break;
    case WRITE_EXPIRED: break; /* logged above when it failed */
    case WRITE_DELETE_GROUP: {
        struct delete_groups_wait *dw = w->parent;
        if (aj->error_code) dw->errors[w->parent_index] = append_error(aj->error_code);
        if (--dw->writes_left == 0) {
            kafka_arena_reset(&w->api->cp->arena);
            struct kafka_delete_groups_response resp;
            if (delete_groups_answer(w->api, dw, &resp) != 0) control_plane_answer(w->api->cp, dw->job, NULL);
            else control_plane_answer(w->api->cp, dw->job, &resp);
            free(dw->errors);
            free(dw);
        }
        break;
    }
    }
    write_free(w);
}

/* ---- dispatch ---------------------------------------------------------------------- */

int group_api_execute(struct group_api *api, struct control_job *job, struct kafka_reader *r,
                      void *resp) {
    switch (job->api_key) {
    case KAFKA_API_JOIN_GROUP: return join_group(api, job, r);
    case KAFKA_API_SYNC_GROUP: return sync_group(api, job, r);
    case KAFKA_API_HEARTBEAT: return heartbeat(api, job, r, resp);
    case KAFKA_API_LEAVE_GROUP: return leave_group(api, job, r, resp);
    case KAFKA_API_OFFSET_COMMIT: return offset_commit(api, job, r, resp);
    case KAFKA_API_OFFSET_FETCH: return offset_fetch(api, job, r, resp);
    case KAFKA_API_DESCRIBE_GROUPS: return describe_groups(api, job, r, resp);
    case KAFKA_API_LIST_GROUPS: return list_groups(api, job, r, resp);
    case KAFKA_API_DELETE_GROUPS: return delete_groups(api, job, r, resp);
    case KAFKA_API_OFFSET_DELETE: return offset_delete(api, job, r, resp);
    default: return KAFKA_ERR_UNKNOWN_API;
    }
}
