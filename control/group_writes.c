/* group_writes.c - the group APIs that write __consumer_offsets: OffsetCommit,
 * OffsetDelete, DeleteGroups, and the tombstones of expired offsets.
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
 * writes tombstones the same way (refused with GROUP_SUBSCRIBED_TO_TOPIC for a topic a
 * member of the consumer group subscribes to). The topic itself is created on the first
 * write (offsets.topic.num.partitions partitions, internal), as Kafka creates it lazily.
 *
 * TxnOffsetCommit writes the same records as one transactional batch of the producer
 * (its id and epoch, the transactional bit) once the transaction coordinator agrees
 * (txn_api_check_offsets); the offsets then wait in the transaction and reach the
 * group's table only with the COMMIT marker (txn_api.c).
 *
 * DeleteGroups removes each Empty group and its offsets in memory and writes tombstones
 * for them (and for the group metadata key), answering after every append. Expired
 * offsets (offsets.retention.minutes) get tombstones the same way, with nobody waiting.
 *
 * Not done: tombstones for the offsets of a deleted topic -- they are dropped in memory,
 * and at reload offsets of topics the catalogue no longer has are skipped. A batch is
 * bounded by GROUP_BATCH_MAX_BYTES (one storage chunk): a commit or a deletion larger
 * than that (some ten thousand partitions) is refused with INVALID_COMMIT_OFFSET_SIZE. */
#include "control/group_writes.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_plane.h"
#include "control/txn_api.h"
#include "hw/log.h"
#include "storage/record/records.h"

#define ERR_COORDINATOR_NOT_AVAILABLE 15
#define ERR_INVALID_COMMIT_OFFSET_SIZE 28
#define ERR_KAFKA_STORAGE_ERROR 56
#define ERR_MESSAGE_TOO_LARGE 10
#define ERR_GROUP_SUBSCRIBED_TO_TOPIC 86
#define GROUP_BATCH_MAX_BYTES (1u << 20) /* fits a storage chunk (1 MiB + 64 KiB - 4 KiB) */
/* ---- writes to __consumer_offsets ------------------------------------------------ */

enum write_kind { WRITE_COMMIT, WRITE_OFFSET_DELETE, WRITE_DELETE_GROUP, WRITE_EXPIRED,
                  WRITE_TXN_COMMIT };

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
const struct catalog_topic *group_writes_offsets_topic(struct group_api *api) {
    struct control_plane *cp = api->cp;
    const struct catalog_topic *t = catalog_find(&cp->catalog, GROUP_OFFSETS_TOPIC);
    if (t) return t;
    /* Kafka compacts this topic. Until sluice compacts, time or size retention would
     * delete commits still in force (a group that has not committed for a week would
     * restart from its reset policy), so nothing is deleted: the log grows with the
     * commits, in Kafka's offsets.topic.segment.bytes segments. */
    static const struct catalog_config_kv configs[] = {
        {"retention.ms", "-1"}, {"retention.bytes", "-1"}, {"segment.bytes", "104857600"}};
    struct catalog_create_request req = {.name = GROUP_OFFSETS_TOPIC,
                                         .partition_count = api->offsets_partitions,
                                         .replication_factor = 1, .configs = configs,
                                         .config_count = sizeof configs / sizeof configs[0],
                                         .internal = true};
    struct catalog_result res;
    int16_t ec = catalog_create_topic(&cp->catalog, &req, false, &res);
    log_info("offsets_topic_created", "partitions=%d error=%d", api->offsets_partitions, ec);
    if (ec != 0) return NULL;
    control_plane_publish(cp);
    return catalog_find(&cp->catalog, GROUP_OFFSETS_TOPIC);
}

static void write_done(struct internal_append_job *aj);
static int16_t write_send_spec(struct offsets_write *w, const char *group, size_t group_len,
                               const struct record_in *recs, int32_t count,
                               const struct record_batch_spec *spec);

/* Build the batch from records and send it to the group's partition. 0 or an error code
 * to answer with (the write is then not in flight). */
static int16_t write_send(struct offsets_write *w, const char *group, size_t group_len,
                          const struct record_in *recs, int32_t count) {
    struct record_batch_spec spec = record_batch_spec_default();
    return write_send_spec(w, group, group_len, recs, count, &spec);
}

/* The same with a batch spec (TxnOffsetCommit: the producer's id and epoch, the
 * transactional bit). */
static int16_t write_send_spec(struct offsets_write *w, const char *group, size_t group_len,
                               const struct record_in *recs, int32_t count,
                               const struct record_batch_spec *spec) {
    size_t records_bytes = record_batch_records_bytes(recs, count);
    size_t cap = RECORD_BATCH_HEADER_BYTES + records_bytes;
    if (records_bytes == 0 || cap > GROUP_BATCH_MAX_BYTES) return ERR_INVALID_COMMIT_OFFSET_SIZE;
    const struct catalog_topic *t = group_writes_offsets_topic(w->api);
    if (!t) return ERR_COORDINATOR_NOT_AVAILABLE;
    w->batch = malloc(cap);
    if (!w->batch) return ERR_COORDINATOR_NOT_AVAILABLE;
    size_t len = 0;
    if (record_batch_write(NULL, spec, recs, count, w->batch, cap, NULL, 0, &len) != RECORD_OK)
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

int group_writes_offset_commit(struct group_api *api, struct control_job *job,
                                struct kafka_reader *r,
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

/* ---- TxnOffsetCommit ------------------------------------------------------------------ */

/* The response from the request and one error per partition (flattened, in order). */
static int txn_commit_response(struct kafka_arena *arena,
                               const struct kafka_txn_offset_commit_request *req,
                               const int16_t *errors, int16_t all_error,
                               struct kafka_txn_offset_commit_response *resp, int16_t version) {
    kafka_txn_offset_commit_response_init(resp, version);
    int32_t nt = req->topics_count > 0 ? req->topics_count : 0;
    resp->topics = KAFKA_ARENA_ARRAY(arena, nt ? nt : 1, resp->topics);
    if (!resp->topics) return KAFKA_ERR_ARENA;
    resp->topics_count = nt;
    uint32_t k = 0;
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_txn_offset_commit_request_txn_offset_commit_request_topic *t =
            &req->topics[i];
        int32_t np = t->partitions_count > 0 ? t->partitions_count : 0;
        resp->topics[i].name = t->name;
        resp->topics[i].partitions = KAFKA_ARENA_ARRAY(arena, np ? np : 1, resp->topics[i].partitions);
        if (!resp->topics[i].partitions) return KAFKA_ERR_ARENA;
        resp->topics[i].partitions_count = np;
        for (int32_t j = 0; j < np; j++, k++) {
            resp->topics[i].partitions[j].partition_index = t->partitions[j].partition_index;
            resp->topics[i].partitions[j].error_code = errors && errors[k] ? errors[k] : all_error;
        }
    }
    return 0;
}

/* Offsets inside a transaction: checked against the transaction coordinator (the
 * producer's id and epoch, an Ongoing transaction) and, from v3, the group generation;
 * written as one transactional batch of the producer to the group's partition; once
 * durable they wait in the transaction (txn_api.c) for its marker. */
int group_writes_txn_offset_commit(struct group_api *api, struct control_job *job,
                                   struct kafka_reader *r, void *resp_out) {
    struct control_plane *cp = api->cp;
    struct kafka_txn_offset_commit_request req;
    int rc = kafka_txn_offset_commit_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    int16_t ec = cp->txns ? txn_api_check_offsets(cp->txns, req.transactional_id,
                                                  req.producer_id, req.producer_epoch)
                          : ERR_COORDINATOR_NOT_AVAILABLE;
    if (ec == 0 && (slen(req.group_id) == 0 || slen(req.group_id) > GROUP_ID_MAX_BYTES))
        ec = GROUP_ERR_INVALID_GROUP_ID;
    if (ec == 0 && job->api_version >= 3 && slen(req.member_id) > 0)
        ec = group_commit_check(&api->gc, req.group_id.ptr, slen(req.group_id), req.generation_id,
                                req.member_id.ptr, slen(req.member_id),
                                req.group_instance_id.len >= 0 ? req.group_instance_id.ptr : NULL,
                                slen(req.group_instance_id), mono_ms());
    uint32_t count = 0;
    for (int32_t i = 0; i < req.topics_count; i++)
        count += req.topics[i].partitions_count > 0 ? (uint32_t)req.topics[i].partitions_count : 0;
    if (ec != 0 || count == 0)
        return txn_commit_response(&cp->arena, &req, NULL, ec, resp_out, job->api_version);
    struct offsets_write *w = calloc(1, sizeof *w);
    struct record_in *recs = calloc(count, sizeof *recs);
    if (!w || !recs || !(w->errors = calloc(count, sizeof w->errors[0]))) {
        free(recs);
        if (w) write_free(w);
        return txn_commit_response(&cp->arena, &req, NULL, ERR_COORDINATOR_NOT_AVAILABLE,
                                   resp_out, job->api_version);
    }
    *w = (struct offsets_write){.api = api, .job = job, .kind = WRITE_TXN_COMMIT,
                                .errors = w->errors, .error_count = count,
                                .timestamp_ms = wall_ms()};
    size_t glen = slen(req.group_id);
    int32_t n = 0;
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_txn_offset_commit_request_txn_offset_commit_request_topic *t =
            &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            const struct kafka_txn_offset_commit_request_txn_offset_commit_request_partition *p =
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
            group_record_offset_key_write(kv, req.group_id.ptr, glen, t->name.ptr, slen(t->name),
                                          p->partition_index);
            group_record_offset_value_write(kv + kb, p->committed_offset,
                                            job->api_version >= 2 ? p->committed_leader_epoch : -1,
                                            p->committed_metadata.ptr,
                                            slen(p->committed_metadata), w->timestamp_ms);
            recs[n++] = (struct record_in){.key = kv, .key_len = (int32_t)kb, .value = kv + kb,
                                           .value_len = (int32_t)vb, .timestamp_ms = w->timestamp_ms};
        }
    }
    /* As Kafka's coordinator writes it: the producer's id and epoch, sequence 0 (the log
     * applies no sequence rules to the coordinator's own appends), transactional. */
    struct record_batch_spec spec = record_batch_spec_default();
    spec.producer_id = req.producer_id;
    spec.producer_epoch = req.producer_epoch;
    spec.base_sequence = 0;
    spec.transactional = true;
    ec = n > 0 ? write_send_spec(w, req.group_id.ptr, glen, recs, n, &spec) : 0;
    free(recs);
    if (n > 0 && ec == 0) return GROUP_API_PARKED;
    rc = txn_commit_response(&cp->arena, &req, w->errors, ec, resp_out, job->api_version);
    write_free(w);
    return rc;
}

/* The transactional batch is durable (or failed): the offsets wait in the transaction. */
static void txn_commit_done(struct offsets_write *w) {
    struct control_plane *cp = w->api->cp;
    struct control_job *job = w->job;
    kafka_arena_reset(&cp->arena);
    struct kafka_reader r;
    kafka_reader_init(&r, job->request, job->request_bytes);
    struct kafka_txn_offset_commit_request req;
    struct kafka_txn_offset_commit_response resp;
    if (kafka_txn_offset_commit_request_decode(&r, job->api_version, &req, &cp->arena) != 0) {
        control_plane_answer(cp, job, NULL);
        return;
    }
    int16_t ec = append_error(w->append.error_code);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count && ec == 0; i++) {
        const struct kafka_txn_offset_commit_request_txn_offset_commit_request_topic *t =
            &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            const struct kafka_txn_offset_commit_request_txn_offset_commit_request_partition *p =
                &t->partitions[j];
            if (w->errors[k]) continue;
            if (txn_api_offsets_written(cp->txns, req.transactional_id, req.group_id.ptr,
                                        slen(req.group_id), t->name.ptr, slen(t->name),
                                        p->partition_index, p->committed_offset,
                                        job->api_version >= 2 ? p->committed_leader_epoch : -1,
                                        p->committed_metadata.ptr, slen(p->committed_metadata),
                                        w->timestamp_ms) != 0)
                w->errors[k] = GROUP_ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    if (txn_commit_response(&cp->arena, &req, w->errors, ec, &resp, job->api_version) != 0)
        control_plane_answer(cp, job, NULL);
    else
        control_plane_answer(cp, job, &resp);
}

struct delete_groups_wait;
static int16_t delete_group_write(struct group_api *api, const struct group *g,
                                  struct delete_groups_wait *parent, int32_t index);

/* Expired offsets: tombstones, so a restart does not bring them back. */
void group_writes_expired(void *ctx, const struct group *g) {
    struct group_api *api = ctx;
    if (g->offsets.count == 0) return;
    int16_t ec = delete_group_write(api, g, NULL, 0);
    if (ec != 0) log_warn("offsets_expire_write_failed", "group=%s error=%d", g->group_id, ec);
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

int group_writes_delete_groups(struct group_api *api, struct control_job *job,
                                struct kafka_reader *r,
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

int group_writes_offset_delete(struct group_api *api, struct control_job *job,
                                struct kafka_reader *r,
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
    case WRITE_TXN_COMMIT: txn_commit_done(w); break;
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
