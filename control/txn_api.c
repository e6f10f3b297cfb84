/* txn_api.c - the transaction coordinator's APIs, its log and its markers.
 *
 * Requests. Each API decodes the job, asks the state machine (txn_coordinator.c) and,
 * when it prepared a transition, writes the transactional id's next image to its
 * __transaction_state partition (one record, Kafka's TransactionLog format, txn_log.c)
 * with control_plane_internal_append(): the owner shard appends it durably. The job is
 * parked on the transaction (txn->waiter) and answered only when the write is durable,
 * so an answer never promises what a crash could lose. A write that cannot be sent or
 * that fails drops the transition and answers COORDINATOR_NOT_AVAILABLE (retriable).
 *
 * EndTxn as in Kafka: PrepareCommit/PrepareAbort is written, the client is answered,
 * then a marker (a control batch, storage/record/control_batch.h) goes to every
 * partition of the transaction -- including the group's __consumer_offsets partition
 * when offsets were added -- as an internal append on its owner shard; when every
 * marker is durable, CompleteCommit/CompleteAbort is written. Markers that fail
 * (storage error, too many appends in flight) go again from the tick after
 * TXN_MARKER_BACKOFF_MS; a partition whose topic was deleted is dropped, as Kafka does.
 * While markers are out, Kafka answers the producer's next request (the next
 * transaction's AddPartitionsToTxn/AddOffsetsToTxn) CONCURRENT_TRANSACTIONS and the
 * client retries it after a backoff (librdkafka: 20 ms, far longer than the markers
 * take here). sluice instead keeps one such request per transactional id (txn->queued)
 * and runs it when the transaction completes; if that takes longer than
 * TXN_QUEUE_MAX_MS (markers failing), it gets CONCURRENT_TRANSACTIONS after all.
 *
 * Offsets. TxnOffsetCommit (group_writes.c) writes a transactional batch to the group's
 * __consumer_offsets partition; the offsets then wait in the transaction. When the
 * COMMIT marker for that partition is durable they go into the group's table (visible
 * to OffsetFetch); an ABORT drops them. OffsetFetch with require_stable answers
 * UNSTABLE_OFFSET_COMMIT for a partition with a pending one.
 *
 * Timers (the tick, every transaction.abort.timed.out.transaction.cleanup.interval.ms):
 * an Ongoing transaction past its timeout is aborted with an epoch bump (the producer
 * that let it time out is fenced); an id idle past transactional.id.expiration.ms gets a
 * tombstone and is forgotten.
 *
 * Boot. __transaction_state is scanned before the shards start (txn_log_load); the last
 * record of each id wins. Transactions found in PrepareCommit/PrepareAbort get their
 * markers again on the first tick (the shards run by then) and complete; Ongoing ones
 * wait for their client's EndTxn or for their timeout. Loading ends before the first
 * request can arrive, so COORDINATOR_LOAD_IN_PROGRESS is never needed.
 *
 * The topic is created on first use (as Kafka does) with
 * transaction.state.log.num.partitions partitions; Kafka compacts it, sluice keeps it
 * (retention.ms=-1) until compaction exists: records are small, one per transition.
 * Coordinator epoch: one node that is always the coordinator, so markers carry 0. */
#include "control/txn_api.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_plane.h"
#include "control/group_api.h"
#include "control/group_writes.h"
#include "hw/log.h"
#include "storage/record/control_batch.h"
#include "storage/record/records.h"

#define TXN_BATCH_MAX_BYTES (1u << 20)   /* fits a storage chunk */
#define TXN_MARKER_BACKOFF_MS 100u
#define TXN_EXPIRE_PER_TICK 1000u
#define TXN_COORDINATOR_EPOCH 0
#define TXN_QUEUE_MAX_MS 1000u

/* ---- writes to __transaction_state ------------------------------------------------- */

struct txn_write {
    struct txn_api *api;
    struct txn *txn;
    uint8_t *batch;
    struct internal_append_job job;
};

struct marker_write {
    struct txn_api *api;
    struct txn *txn;
    uint32_t part;
    bool commit;
    uint8_t batch[CONTROL_BATCH_MAX_BYTES];
    struct internal_append_job job;
};

static void write_done(struct internal_append_job *job);
static void send_markers(struct txn_api *api, struct txn *t);

/* The topic, created on first need. NULL when it cannot be. */
static const struct catalog_topic *log_topic(struct txn_api *api) {
    struct control_plane *cp = api->cp;
    const struct catalog_topic *t = catalog_find(&cp->catalog, TXN_LOG_TOPIC);
    if (t) return t;
    static const struct catalog_config_kv configs[] = {
        {"retention.ms", "-1"}, {"retention.bytes", "-1"}, {"segment.bytes", "104857600"}};
    struct catalog_create_request req = {.name = TXN_LOG_TOPIC,
                                         .partition_count = api->log_partitions,
                                         .replication_factor = 1, .configs = configs,
                                         .config_count = sizeof configs / sizeof configs[0],
                                         .internal = true};
    struct catalog_result res;
    int16_t ec = catalog_create_topic(&cp->catalog, &req, false, &res);
    log_info("txn_log_topic_created", "partitions=%d error=%d", api->log_partitions, ec);
    if (ec != 0) return NULL;
    control_plane_publish(cp);
    return catalog_find(&cp->catalog, TXN_LOG_TOPIC);
}

/* Build t's next image as one record; NULL when it does not fit or memory is short. */
static uint8_t *build_record(const struct txn *t, uint32_t *len_out) {
    struct txn_log_part *parts = NULL;
    uint32_t n = 0;
    if (!txn_next_is_tombstone(t) && t->part_count > 0) {
        parts = malloc(t->part_count * sizeof parts[0]);
        if (!parts) return NULL;
        n = txn_next_parts(t, parts, t->part_count);
    }
    size_t kb = txn_log_key_bytes(t->id_len);
    size_t vb = txn_next_is_tombstone(t) ? 0 : txn_log_value_bytes(parts, n);
    uint8_t *kv = malloc(kb + vb);
    uint8_t *batch = NULL;
    if (kv) {
        txn_log_key_write(kv, t->id, t->id_len);
        struct txn_log_value v;
        txn_next_value(t, &v);
        if (!txn_next_is_tombstone(t)) txn_log_value_write(kv + kb, &v, parts, n);
        struct record_in rec = {.key = kv, .key_len = (int32_t)kb, .value = kv + kb,
                                .value_len = txn_next_is_tombstone(t) ? -1 : (int32_t)vb,
                                .timestamp_ms = t->next.update_ms};
        size_t cap = RECORD_BATCH_HEADER_BYTES + record_batch_records_bytes(&rec, 1);
        batch = cap <= TXN_BATCH_MAX_BYTES ? malloc(cap) : NULL;
        struct record_batch_spec spec = record_batch_spec_default();
        size_t len = 0;
        if (batch &&
            record_batch_write(NULL, &spec, &rec, 1, batch, cap, NULL, 0, &len) != RECORD_OK) {
            free(batch);
            batch = NULL;
        }
        *len_out = (uint32_t)len;
    }
    free(kv);
    free(parts);
    return batch;
}

/* Write t's prepared transition. 0, or an error code after which the transition is
 * dropped (txn_write_done(false) done here; t->waiter is the caller's to answer). */
static int16_t state_write(struct txn_api *api, struct txn *t) {
    assert(t->pending);
    const struct catalog_topic *topic = log_topic(api);
    struct txn_write *w = topic ? calloc(1, sizeof *w) : NULL;
    uint32_t len = 0;
    uint8_t *batch = w ? build_record(t, &len) : NULL;
    if (!batch) {
        free(w);
        txn_write_done(&api->tc, t, false);
        return TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    *w = (struct txn_write){.api = api, .txn = t, .batch = batch};
    memcpy(w->job.topic_id, topic->id, 16);
    w->job.partition = txn_log_partition_for(t->id, t->id_len, topic->partition_count);
    w->job.batch = batch;
    w->job.batch_bytes = len;
    w->job.done = write_done;
    w->job.user = w;
    int16_t ec = control_plane_internal_append(api->cp, &w->job);
    if (ec != 0) {
        free(batch);
        free(w);
        txn_write_done(&api->tc, t, false);
        return TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    api->writes_in_flight++;
    return 0;
}

/* ---- answers to parked requests ------------------------------------------------------ */

/* PRODUCER_FENCED exists from InitProducerId v4, AddPartitions/AddOffsets/EndTxn v2. */
static int16_t version_error(int16_t api_key, int16_t version, int16_t ec) {
    if (ec != TXN_ERR_PRODUCER_FENCED) return ec;
    int16_t first = api_key == KAFKA_API_INIT_PRODUCER_ID ? 4 : 2;
    return version >= first ? ec : TXN_ERR_INVALID_PRODUCER_EPOCH;
}

static int add_partitions_response(struct kafka_arena *arena,
                                   const struct kafka_add_partitions_to_txn_request *req,
                                   const int16_t *errors, int16_t all_error, int16_t version,
                                   struct kafka_add_partitions_to_txn_response *resp);

/* Answer a parked job of t with ec (0: success, the state is t->cur). */
static void answer_job(struct txn_api *api, struct txn *t, struct control_job *job, int16_t ec) {
    struct control_plane *cp = api->cp;
    kafka_arena_reset(&cp->arena);
    ec = version_error(job->api_key, job->api_version, ec);
    union kafka_response_any resp;
    switch (job->api_key) {
    case KAFKA_API_INIT_PRODUCER_ID:
        kafka_init_producer_id_response_init(&resp.init_producer_id, job->api_version);
        resp.init_producer_id.error_code = ec;
        resp.init_producer_id.producer_id = ec ? -1 : t->cur.producer_id;
        resp.init_producer_id.producer_epoch = ec ? -1 : t->cur.producer_epoch;
        break;
    case KAFKA_API_ADD_OFFSETS_TO_TXN:
        kafka_add_offsets_to_txn_response_init(&resp.add_offsets_to_txn, job->api_version);
        resp.add_offsets_to_txn.error_code = ec;
        break;
    case KAFKA_API_END_TXN:
        kafka_end_txn_response_init(&resp.end_txn, job->api_version);
        resp.end_txn.error_code = ec;
        break;
    case KAFKA_API_ADD_PARTITIONS_TO_TXN: {
        struct kafka_reader r;
        struct kafka_add_partitions_to_txn_request req;
        kafka_reader_init(&r, job->request, job->request_bytes);
        if (kafka_add_partitions_to_txn_request_decode(&r, job->api_version, &req, &cp->arena) != 0 ||
            add_partitions_response(&cp->arena, &req, NULL, ec, job->api_version,
                                    &resp.add_partitions_to_txn) != 0) {
            control_plane_answer(cp, job, NULL);
            return;
        }
        break;
    }
    default: assert(!"a parked job of another API");
    }
    control_plane_answer(cp, job, &resp);
}

static void answer_waiter(struct txn_api *api, struct txn *t, int16_t ec) {
    struct control_job *job = t->waiter;
    t->waiter = NULL;
    if (job) answer_job(api, t, job, ec);
}

/* The next transaction's first request, sent while t's markers are out: it waits for
 * the completion instead of being told to retry (see the top comment). */
static bool queue_behind_markers(struct txn_api *api, struct control_job *job,
                                 struct kafka_str id, int64_t producer_id, int16_t epoch) {
    struct txn *t = txn_find(&api->tc, id.ptr, slen(id));
    if (!t || t->queued || t->cur.producer_id != producer_id ||
        t->cur.producer_epoch != epoch ||
        (t->cur.state != TXN_PREPARE_COMMIT && t->cur.state != TXN_PREPARE_ABORT))
        return false;
    t->queued = job;
    t->queued_at_ms = mono_ms();
    api->queued_count++;
    return true;
}

/* t completed: run its queued request now. */
static void run_queued(struct txn_api *api, struct txn *t) {
    struct control_job *job = t->queued;
    if (!job) return;
    t->queued = NULL;
    assert(api->queued_count > 0);
    api->queued_count--;
    struct control_plane *cp = api->cp;
    kafka_arena_reset(&cp->arena);
    struct kafka_reader r;
    kafka_reader_init(&r, job->request, job->request_bytes);
    union kafka_response_any resp;
    int rc = txn_api_execute(api, job, &r, &resp);
    if (rc != GROUP_API_PARKED) control_plane_answer(cp, job, rc == 0 ? &resp : NULL);
}

/* Queued requests whose transaction has not completed in TXN_QUEUE_MAX_MS: retry. */
static void expire_queued(struct txn_api *api, uint64_t now) {
    for (struct txn *t = api->tc.all; t && api->queued_count > 0; t = t->all_next) {
        if (!t->queued || now < t->queued_at_ms + TXN_QUEUE_MAX_MS) continue;
        struct control_job *job = t->queued;
        t->queued = NULL;
        api->queued_count--;
        answer_job(api, t, job, TXN_ERR_CONCURRENT_TRANSACTIONS);
    }
}

/* Write t's current image again: its completion was never logged and nothing
 * superseded it. */
static void relog(struct txn_api *api, struct txn *t) {
    txn_prepare_relog(t, wall_ms());
    if (state_write(api, t) != 0) api->retry_needed = true;
}

/* Every marker of t is durable: write the completion. When the producer's next
 * request is already waiting, it runs at once and its record (Ongoing, durable before
 * it is answered) stands for the completion too: the markers are durable, so a reload
 * that finds it has nothing left to finish; a crash before it is durable leaves
 * Prepare* last, whose markers are re-sent. One fdatasync per transaction saved. */
static void complete(struct txn_api *api, struct txn *t) {
    if (t->pending) return;
    if (t->queued) {
        txn_complete_unlogged(t, wall_ms());
        run_queued(api, t);
        if (!t->pending) relog(api, t); /* the request wrote nothing: log the completion */
        return;
    }
    txn_prepare_complete(t, wall_ms());
    if (state_write(api, t) != 0) api->retry_needed = true;
}

static void write_done(struct internal_append_job *job) {
    struct txn_write *w = job->user;
    struct txn_api *api = w->api;
    struct txn *t = w->txn;
    assert(api->writes_in_flight > 0);
    api->writes_in_flight--;
    bool ok = job->error_code == 0;
    if (!ok)
        log_warn("txn_log_write_failed", "transactional_id=%s error=%d", t->id, job->error_code);
    enum txn_state prev = t->cur.state;
    enum txn_state s = txn_write_done(&api->tc, t, ok);
    free(w->batch);
    free(w);
    if (s == TXN_DEAD) return; /* t is gone (an expired id) */
    if (ok && s != prev)
        log_info("txn_state", "transactional_id=%s producer_id=%" PRId64 " epoch=%d state=%s",
                 t->id, t->cur.producer_id, t->cur.producer_epoch, txn_state_name(s));
    answer_waiter(api, t, ok ? 0 : TXN_ERR_COORDINATOR_NOT_AVAILABLE);
    if (!ok) {
        if (s == TXN_PREPARE_COMMIT || s == TXN_PREPARE_ABORT || t->log_behind)
            api->retry_needed = true;
        return;
    }
    if (s == TXN_PREPARE_COMMIT || s == TXN_PREPARE_ABORT) send_markers(api, t);
    if (s == TXN_COMPLETE_COMMIT || s == TXN_COMPLETE_ABORT) run_queued(api, t);
}

/* ---- markers ------------------------------------------------------------------------- */

/* Offsets of t whose group lives in __consumer_offsets partition p: into the groups'
 * tables (commit) or gone (abort). */
static void settle_offsets(struct txn_api *api, struct txn *t, int32_t p, int32_t partitions,
                           bool commit) {
    struct group_api *groups = api->cp->groups;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < t->offset_count; i++) {
        struct txn_offset *o = &t->offsets[i];
        if (group_offsets_partition_for(o->group, strlen(o->group), partitions) != p) {
            t->offsets[kept++] = *o;
            continue;
        }
        struct group *g = commit ? group_get_or_create(&groups->gc, o->group, strlen(o->group),
                                                       mono_ms())
                                 : NULL;
        if (g && group_offsets_put(&g->offsets, o->topic, strlen(o->topic), o->partition,
                                   o->offset, o->leader_epoch, o->metadata,
                                   strlen(o->metadata), o->commit_timestamp_ms) == 0)
            g->last_commit_ms = mono_ms();
        else if (commit)
            log_warn("txn_offset_apply_failed", "group=%s topic=%s partition=%d", o->group,
                     o->topic, o->partition);
        free(o->group);
        free(o->topic);
        free(o->metadata);
    }
    t->offset_count = kept;
}

static void marker_done(struct internal_append_job *job) {
    struct marker_write *m = job->user;
    struct txn_api *api = m->api;
    struct txn *t = m->txn;
    assert(api->writes_in_flight > 0 && m->part < t->part_count);
    api->writes_in_flight--;
    struct txn_part *part = &t->parts[m->part];
    part->marker_in_flight = false;
    int16_t ec = job->error_code;
    if (ec == TXN_ERR_INVALID_PRODUCER_EPOCH || ec == TXN_ERR_PRODUCER_FENCED) {
        /* the partition knows a newer epoch of this producer: nothing left to end there */
        log_warn("txn_marker_stale", "transactional_id=%s topic=%s partition=%d error=%d",
                 t->id, part->topic, part->partition, ec);
        ec = 0;
    }
    if (ec != 0) {
        log_warn("txn_marker_failed", "transactional_id=%s topic=%s partition=%d error=%d",
                 t->id, part->topic, part->partition, ec);
        t->marker_retry_at_ms = mono_ms() + TXN_MARKER_BACKOFF_MS;
        api->retry_needed = true;
        free(m);
        return;
    }
    part->marker_done = true;
    if (strcmp(part->topic, GROUP_OFFSETS_TOPIC) == 0) {
        const struct catalog_topic *ot = catalog_find(&api->cp->catalog, GROUP_OFFSETS_TOPIC);
        if (ot) settle_offsets(api, t, part->partition, ot->partition_count, m->commit);
    }
    free(m);
    if (txn_markers_all_done(t)) complete(api, t);
}

/* Send the markers of t's partitions that are neither durable nor in flight. */
static void send_markers(struct txn_api *api, struct txn *t) {
    assert(t->cur.state == TXN_PREPARE_COMMIT || t->cur.state == TXN_PREPARE_ABORT);
    bool commit = t->cur.state == TXN_PREPARE_COMMIT;
    for (uint32_t i = 0; i < t->part_count; i++) {
        struct txn_part *part = &t->parts[i];
        if (part->marker_done || part->marker_in_flight) continue;
        const struct catalog_topic *topic = catalog_find(&api->cp->catalog, part->topic);
        if (!topic || part->partition >= topic->partition_count) {
            log_warn("txn_marker_dropped", "transactional_id=%s topic=%s partition=%d",
                     t->id, part->topic, part->partition);
            part->marker_done = true; /* the topic is gone: nothing to end there */
            continue;
        }
        struct marker_write *m = calloc(1, sizeof *m);
        int len = m ? control_batch_build(m->batch, sizeof m->batch, t->cur.producer_id,
                                          t->cur.producer_epoch,
                                          commit ? CONTROL_TYPE_COMMIT : CONTROL_TYPE_ABORT,
                                          TXN_COORDINATOR_EPOCH, wall_ms())
                    : -1;
        if (len <= 0) {
            free(m);
            api->retry_needed = true;
            return;
        }
        m->api = api;
        m->txn = t;
        m->part = i;
        m->commit = commit;
        memcpy(m->job.topic_id, topic->id, 16);
        m->job.partition = part->partition;
        m->job.batch = m->batch;
        m->job.batch_bytes = (uint32_t)len;
        m->job.done = marker_done;
        m->job.user = m;
        if (control_plane_internal_append(api->cp, &m->job) != 0) {
            free(m);
            t->marker_retry_at_ms = mono_ms() + TXN_MARKER_BACKOFF_MS;
            api->retry_needed = true;
            return;
        }
        part->marker_in_flight = true;
        api->writes_in_flight++;
    }
    if (txn_markers_all_done(t)) complete(api, t);
}

/* ---- setup and timers ------------------------------------------------------------------- */

static int allocate_id(void *arg, int64_t *id) {
    return producer_ids_allocate(arg, id);
}

static void replay(void *arg, const struct txn_log_record *rec, const struct txn_log_part *parts) {
    txn_replay(&((struct txn_api *)arg)->tc, rec, parts);
}

int txn_api_init(struct txn_api *api, struct control_plane *cp, const char *data_dir,
                 char *err, size_t err_bytes) {
    memset(api, 0, sizeof *api);
    api->cp = cp;
    const struct config *c = cp->broker;
    struct txn_coordinator_config tcfg = {
        .max_timeout_ms = (int32_t)config_get_i64(c, "transaction.max.timeout.ms"),
        .id_expiration_ms = config_get_i64(c, "transactional.id.expiration.ms"),
        .allocate = allocate_id, .allocate_arg = &cp->producer_ids};
    txn_coordinator_init(&api->tc, &tcfg);
    api->abort_interval_ms =
        config_get_i64(c, "transaction.abort.timed.out.transaction.cleanup.interval.ms");
    api->last_expire_ms = mono_ms();
    const struct catalog_topic *t = catalog_find(&cp->catalog, TXN_LOG_TOPIC);
    api->log_partitions = t ? t->partition_count
                            : (int32_t)config_get_i64(c, "transaction.state.log.num.partitions");
    if (!t) return 0;
    long n = txn_log_load(data_dir, t->partition_count, replay, api, err, err_bytes);
    if (n < 0) return -1;
    uint32_t open = 0;
    for (struct txn *x = api->tc.all; x; x = x->all_next) {
        if (x->cur.state == TXN_PREPARE_COMMIT || x->cur.state == TXN_PREPARE_ABORT) {
            txn_markers_reset(x);
            api->recovering = true;
        }
        open += x->cur.state >= TXN_ONGOING && x->cur.state <= TXN_PREPARE_ABORT;
    }
    log_info("txn_log_loaded", "records=%ld ids=%u open=%u partitions=%d", n, api->tc.count,
             open, t->partition_count);
    return 0;
}

void txn_api_destroy(struct txn_api *api) {
    for (struct txn *t = api->tc.all; t; t = t->all_next) {
        struct control_job *jobs[2] = {t->waiter, t->queued};
        for (int i = 0; i < 2; i++) {
            if (!jobs[i]) continue;
            free(jobs[i]->request);
            free(jobs[i]->response);
            free(jobs[i]);
        }
        t->waiter = t->queued = NULL;
    }
    txn_coordinator_destroy(&api->tc);
}

/* Prepare* transactions: markers that failed go again; a completion that failed too. */
static void retry(struct txn_api *api, uint64_t now) {
    api->retry_needed = false;
    for (struct txn *t = api->tc.all; t; t = t->all_next) {
        if (t->pending) continue;
        if (t->log_behind) {
            relog(api, t);
            continue;
        }
        if (t->cur.state != TXN_PREPARE_COMMIT && t->cur.state != TXN_PREPARE_ABORT) continue;
        if (txn_markers_all_done(t)) complete(api, t);
        else if (t->marker_retry_at_ms <= now) send_markers(api, t);
        else api->retry_needed = true;
    }
}

static void expire(struct txn_api *api) {
    int64_t now = wall_ms();
    for (uint32_t i = 0; i < TXN_EXPIRE_PER_TICK; i++) {
        struct txn *t = txn_next_expired(&api->tc, now);
        if (!t) return;
        log_info(t->next.state == TXN_DEAD ? "txn_id_expired" : "txn_timed_out",
                 "transactional_id=%s producer_id=%" PRId64 " epoch=%d", t->id,
                 t->cur.producer_id, t->cur.producer_epoch);
        if (state_write(api, t) != 0) return; /* dropped: tried again next interval */
    }
}

void txn_api_tick(struct txn_api *api) {
    uint64_t now = mono_ms();
    if (api->recovering) {
        api->recovering = false;
        for (struct txn *t = api->tc.all; t; t = t->all_next)
            if (!t->pending && (t->cur.state == TXN_PREPARE_COMMIT ||
                                t->cur.state == TXN_PREPARE_ABORT)) {
                log_info("txn_recovering", "transactional_id=%s state=%s", t->id,
                         txn_state_name(t->cur.state));
                send_markers(api, t);
            }
    }
    if (api->retry_needed && now >= api->last_retry_ms + TXN_MARKER_BACKOFF_MS) {
        api->last_retry_ms = now;
        retry(api, now);
    }
    if (api->queued_count > 0 && now >= api->last_queue_check_ms + 50) {
        api->last_queue_check_ms = now;
        expire_queued(api, now);
    }
    if (now >= api->last_expire_ms + (uint64_t)api->abort_interval_ms) {
        api->last_expire_ms = now;
        expire(api);
    }
}

/* ---- InitProducerId ----------------------------------------------------------------- */

int txn_api_init_producer(struct txn_api *api, struct control_job *job,
                          const struct kafka_init_producer_id_request *req,
                          struct kafka_init_producer_id_response *resp) {
    resp->throttle_time_ms = 0;
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    int64_t pid = job->api_version >= 3 ? req->producer_id : -1;
    int16_t epoch = job->api_version >= 3 ? req->producer_epoch : -1;
    struct txn_result res = txn_init_producer(&api->tc, req->transactional_id.ptr,
                                              slen(req->transactional_id),
                                              req->transaction_timeout_ms, pid, epoch, wall_ms());
    int16_t ec = res.error;
    if (res.write) {
        int16_t wec = state_write(api, res.txn);
        if (wec == 0 && ec == 0) {
            assert(!res.txn->waiter);
            res.txn->waiter = job;
            return GROUP_API_PARKED;
        }
        if (ec == 0) ec = wec;
    }
    resp->error_code = version_error(KAFKA_API_INIT_PRODUCER_ID, job->api_version, ec);
    if (ec == 0) {
        resp->producer_id = res.txn->cur.producer_id;
        resp->producer_epoch = res.txn->cur.producer_epoch;
    }
    log_info("init_producer_id_txn", "transactional_id=%.*s error=%d",
             (int)slen(req->transactional_id), req->transactional_id.ptr, resp->error_code);
    return 0;
}

/* ---- AddPartitionsToTxn ------------------------------------------------------------- */

static int add_partitions_response(struct kafka_arena *arena,
                                   const struct kafka_add_partitions_to_txn_request *req,
                                   const int16_t *errors, int16_t all_error, int16_t version,
                                   struct kafka_add_partitions_to_txn_response *resp) {
    kafka_add_partitions_to_txn_response_init(resp, version);
    int32_t nt = req->v3_and_below_topics_count > 0 ? req->v3_and_below_topics_count : 0;
    resp->results_by_topic_v3_and_below = KAFKA_ARENA_ARRAY(arena, nt ? nt : 1,
                                                            resp->results_by_topic_v3_and_below);
    if (!resp->results_by_topic_v3_and_below) return KAFKA_ERR_ARENA;
    resp->results_by_topic_v3_and_below_count = nt;
    uint32_t k = 0;
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_add_partitions_to_txn_request_add_partitions_to_txn_topic *t =
            &req->v3_and_below_topics[i];
        struct kafka_add_partitions_to_txn_response_add_partitions_to_txn_topic_result *out =
            &resp->results_by_topic_v3_and_below[i];
        int32_t np = t->partitions_count > 0 ? t->partitions_count : 0;
        out->name = t->name;
        out->results_by_partition = KAFKA_ARENA_ARRAY(arena, np ? np : 1, out->results_by_partition);
        if (!out->results_by_partition) return KAFKA_ERR_ARENA;
        out->results_by_partition_count = np;
        for (int32_t j = 0; j < np; j++, k++) {
            out->results_by_partition[j].partition_index = t->partitions[j];
            out->results_by_partition[j].partition_error_code =
                errors && errors[k] ? errors[k] : all_error;
        }
    }
    return 0;
}

/* The topic's catalogue entry when partition is in range (and the name fits). */
static const struct catalog_topic *find_partition(struct txn_api *api, struct kafka_str name,
                                                  int32_t partition) {
    char buf[CATALOG_TOPIC_NAME_MAX_BYTES + 1];
    if (slen(name) == 0 || slen(name) >= sizeof buf) return NULL;
    memcpy(buf, name.ptr, slen(name));
    buf[slen(name)] = '\0';
    const struct catalog_topic *t = catalog_find(&api->cp->catalog, buf);
    return t && partition >= 0 && partition < t->partition_count ? t : NULL;
}

static int add_partitions(struct txn_api *api, struct control_job *job, struct kafka_reader *r,
                          void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_add_partitions_to_txn_request req;
    int rc = kafka_add_partitions_to_txn_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    uint32_t count = 0;
    for (int32_t i = 0; i < req.v3_and_below_topics_count; i++)
        count += req.v3_and_below_topics[i].partitions_count > 0
                     ? (uint32_t)req.v3_and_below_topics[i].partitions_count : 0;
    int16_t *errors = KAFKA_ARENA_ARRAY(arena, count ? count : 1, errors);
    struct txn_log_part *parts = KAFKA_ARENA_ARRAY(arena, count ? count : 1, parts);
    if (!errors || !parts) return KAFKA_ERR_ARENA;
    bool unknown = false;
    uint32_t k = 0;
    for (int32_t i = 0; i < req.v3_and_below_topics_count; i++) {
        const struct kafka_add_partitions_to_txn_request_add_partitions_to_txn_topic *t =
            &req.v3_and_below_topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            const struct catalog_topic *ct = find_partition(api, t->name, t->partitions[j]);
            errors[k] = ct && !ct->internal ? 0 : TXN_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            unknown = unknown || errors[k];
            parts[k] = (struct txn_log_part){t->name.ptr, (uint16_t)slen(t->name), t->partitions[j]};
        }
    }
    if (unknown) /* Kafka: the others are not attempted */
        return add_partitions_response(arena, &req, errors, TXN_ERR_OPERATION_NOT_ATTEMPTED,
                                       job->api_version, resp_out);
    if (queue_behind_markers(api, job, req.v3_and_below_transactional_id,
                             req.v3_and_below_producer_id, req.v3_and_below_producer_epoch))
        return GROUP_API_PARKED;
    struct txn_result res = txn_add_partitions(
        &api->tc, req.v3_and_below_transactional_id.ptr, slen(req.v3_and_below_transactional_id),
        req.v3_and_below_producer_id, req.v3_and_below_producer_epoch, parts, count, wall_ms());
    int16_t ec = res.error;
    if (ec == 0 && res.write) {
        ec = state_write(api, res.txn);
        if (ec == 0) {
            res.txn->waiter = job;
            return GROUP_API_PARKED;
        }
    }
    return add_partitions_response(arena, &req, NULL,
                                   version_error(job->api_key, job->api_version, ec),
                                   job->api_version, resp_out);
}

/* ---- AddOffsetsToTxn / EndTxn ----------------------------------------------------------- */

static int add_offsets(struct txn_api *api, struct control_job *job, struct kafka_reader *r,
                       void *resp_out) {
    struct kafka_add_offsets_to_txn_request req;
    int rc = kafka_add_offsets_to_txn_request_decode(r, job->api_version, &req, &api->cp->arena);
    if (rc != 0) return rc;
    struct kafka_add_offsets_to_txn_response *resp = resp_out;
    kafka_add_offsets_to_txn_response_init(resp, job->api_version);
    const struct catalog_topic *ot = group_writes_offsets_topic(api->cp->groups);
    int16_t ec = TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    if (slen(req.group_id) == 0 || slen(req.group_id) > GROUP_ID_MAX_BYTES)
        ec = TXN_ERR_INVALID_REQUEST;
    else if (queue_behind_markers(api, job, req.transactional_id, req.producer_id,
                                  req.producer_epoch))
        return GROUP_API_PARKED;
    else if (ot) {
        struct txn_log_part part = {
            GROUP_OFFSETS_TOPIC, (uint16_t)strlen(GROUP_OFFSETS_TOPIC),
            group_offsets_partition_for(req.group_id.ptr, slen(req.group_id), ot->partition_count)};
        struct txn_result res = txn_add_partitions(&api->tc, req.transactional_id.ptr,
                                                   slen(req.transactional_id), req.producer_id,
                                                   req.producer_epoch, &part, 1, wall_ms());
        ec = res.error;
        if (ec == 0 && res.write) {
            ec = state_write(api, res.txn);
            if (ec == 0) {
                res.txn->waiter = job;
                return GROUP_API_PARKED;
            }
        }
    }
    resp->error_code = version_error(job->api_key, job->api_version, ec);
    return 0;
}

static int end_txn(struct txn_api *api, struct control_job *job, struct kafka_reader *r,
                   void *resp_out) {
    struct kafka_end_txn_request req;
    int rc = kafka_end_txn_request_decode(r, job->api_version, &req, &api->cp->arena);
    if (rc != 0) return rc;
    struct kafka_end_txn_response *resp = resp_out;
    kafka_end_txn_response_init(resp, job->api_version);
    struct txn_result res = txn_end(&api->tc, req.transactional_id.ptr,
                                    slen(req.transactional_id), req.producer_id,
                                    req.producer_epoch, req.committed, wall_ms());
    int16_t ec = res.error;
    if (ec == 0 && res.write) {
        ec = state_write(api, res.txn);
        if (ec == 0) {
            res.txn->waiter = job;
            return GROUP_API_PARKED;
        }
    }
    resp->error_code = version_error(job->api_key, job->api_version, ec);
    resp->producer_id = res.txn ? res.txn->cur.producer_id : -1;
    resp->producer_epoch = res.txn ? res.txn->cur.producer_epoch : -1;
    return 0;
}

/* ---- ListTransactions / DescribeTransactions --------------------------------------------- */

static bool listed(const struct kafka_list_transactions_request *req, const struct txn *t,
                   int16_t version, int64_t now) {
    if (t->cur.producer_id < 0) return false; /* never written */
    bool state_ok = req->state_filters_count <= 0;
    for (int32_t i = 0; i < req->state_filters_count && !state_ok; i++)
        state_ok = kafka_str_equals_cstr(req->state_filters[i], txn_state_name(t->cur.state));
    bool pid_ok = req->producer_id_filters_count <= 0;
    for (int32_t i = 0; i < req->producer_id_filters_count && !pid_ok; i++)
        pid_ok = req->producer_id_filters[i] == t->cur.producer_id;
    bool duration_ok = version < 1 || req->duration_filter < 0 ||
                       (t->cur.start_ms >= 0 && now - t->cur.start_ms >= req->duration_filter);
    return state_ok && pid_ok && duration_ok;
}

static int list_transactions(struct txn_api *api, struct control_job *job, struct kafka_reader *r,
                             void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_list_transactions_request req;
    int rc = kafka_list_transactions_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct kafka_list_transactions_response *resp = resp_out;
    kafka_list_transactions_response_init(resp, job->api_version);
    int32_t nf = req.state_filters_count > 0 ? req.state_filters_count : 0;
    resp->unknown_state_filters = KAFKA_ARENA_ARRAY(arena, nf ? nf : 1, resp->unknown_state_filters);
    uint32_t cap = api->tc.count;
    resp->transaction_states = KAFKA_ARENA_ARRAY(arena, cap ? cap : 1, resp->transaction_states);
    if (!resp->unknown_state_filters || !resp->transaction_states) return KAFKA_ERR_ARENA;
    int32_t unknown = 0;
    for (int32_t i = 0; i < nf; i++)
        if (txn_state_from_name(req.state_filters[i].ptr, slen(req.state_filters[i])) < 0)
            resp->unknown_state_filters[unknown++] = req.state_filters[i];
    resp->unknown_state_filters_count = unknown;
    int32_t n = 0;
    int64_t now = wall_ms();
    for (const struct txn *t = api->tc.all; t; t = t->all_next) {
        if (!listed(&req, t, job->api_version, now)) continue;
        resp->transaction_states[n++] = (struct kafka_list_transactions_response_transaction_state){
            .transactional_id = {t->id, t->id_len}, .producer_id = t->cur.producer_id,
            .transaction_state = kafka_str_from_cstr(txn_state_name(t->cur.state))};
    }
    resp->transaction_states_count = n;
    return 0;
}

static int describe_one(struct kafka_arena *arena, const struct txn *t, struct kafka_str id,
                        struct kafka_describe_transactions_response_transaction_state *out) {
    memset(out, 0, sizeof *out);
    out->transactional_id = id;
    out->transaction_state = kafka_str_from_cstr("");
    out->producer_id = -1;
    out->producer_epoch = -1;
    out->transaction_start_time_ms = -1;
    if (!t || t->cur.producer_id < 0) {
        out->error_code = TXN_ERR_TRANSACTIONAL_ID_NOT_FOUND;
        return 0;
    }
    out->transaction_state = kafka_str_from_cstr(txn_state_name(t->cur.state));
    out->transaction_timeout_ms = t->cur.timeout_ms;
    out->transaction_start_time_ms = t->cur.start_ms;
    out->producer_id = t->cur.producer_id;
    out->producer_epoch = t->cur.producer_epoch;
    uint32_t n = t->part_durable; /* what the log says: pending additions are not in yet */
    out->topics = KAFKA_ARENA_ARRAY(arena, n ? n : 1, out->topics);
    int32_t *ids = KAFKA_ARENA_ARRAY(arena, n ? n : 1, ids);
    if (!out->topics || !ids) return KAFKA_ERR_ARENA;
    /* group the partitions by topic: each topic's ids are a contiguous slice of ids */
    int32_t topics = 0;
    uint32_t used = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool seen = false;
        for (int32_t j = 0; j < topics && !seen; j++)
            seen = kafka_str_equals_cstr(out->topics[j].topic, t->parts[i].topic);
        if (seen) continue;
        struct kafka_describe_transactions_response_topic_data *td = &out->topics[topics++];
        td->topic = (struct kafka_str){t->parts[i].topic, t->parts[i].topic_len};
        td->partitions = ids + used;
        for (uint32_t k = i; k < n; k++)
            if (strcmp(t->parts[k].topic, t->parts[i].topic) == 0)
                ids[used++] = t->parts[k].partition;
        td->partitions_count = (int32_t)(ids + used - td->partitions);
    }
    out->topics_count = topics;
    return 0;
}

static int describe_transactions(struct txn_api *api, struct control_job *job,
                                 struct kafka_reader *r, void *resp_out) {
    struct kafka_arena *arena = &api->cp->arena;
    struct kafka_describe_transactions_request req;
    int rc = kafka_describe_transactions_request_decode(r, job->api_version, &req, arena);
    if (rc != 0) return rc;
    struct kafka_describe_transactions_response *resp = resp_out;
    kafka_describe_transactions_response_init(resp, job->api_version);
    int32_t n = req.transactional_ids_count > 0 ? req.transactional_ids_count : 0;
    resp->transaction_states = KAFKA_ARENA_ARRAY(arena, n ? n : 1, resp->transaction_states);
    if (!resp->transaction_states) return KAFKA_ERR_ARENA;
    resp->transaction_states_count = n;
    for (int32_t i = 0; i < n; i++) {
        struct kafka_str id = req.transactional_ids[i];
        rc = describe_one(arena, txn_find(&api->tc, id.ptr, slen(id)), id,
                          &resp->transaction_states[i]);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- dispatch and the group side --------------------------------------------------------- */

bool txn_api_handles(int16_t api_key) {
    switch (api_key) {
    case KAFKA_API_ADD_PARTITIONS_TO_TXN: case KAFKA_API_ADD_OFFSETS_TO_TXN:
    case KAFKA_API_END_TXN: case KAFKA_API_LIST_TRANSACTIONS:
    case KAFKA_API_DESCRIBE_TRANSACTIONS:
        return true;
    default:
        return false;
    }
}

int txn_api_execute(struct txn_api *api, struct control_job *job, struct kafka_reader *r,
                    void *resp) {
    switch (job->api_key) {
    case KAFKA_API_ADD_PARTITIONS_TO_TXN: return add_partitions(api, job, r, resp);
    case KAFKA_API_ADD_OFFSETS_TO_TXN: return add_offsets(api, job, r, resp);
    case KAFKA_API_END_TXN: return end_txn(api, job, r, resp);
    case KAFKA_API_LIST_TRANSACTIONS: return list_transactions(api, job, r, resp);
    case KAFKA_API_DESCRIBE_TRANSACTIONS: return describe_transactions(api, job, r, resp);
    default: return KAFKA_ERR_UNKNOWN_API;
    }
}

int16_t txn_api_check_offsets(struct txn_api *api, struct kafka_str txn_id, int64_t producer_id,
                              int16_t epoch) {
    return txn_check_offsets(&api->tc, txn_id.ptr, slen(txn_id), producer_id, epoch);
}

int txn_api_offsets_written(struct txn_api *api, struct kafka_str txn_id, const char *group,
                            size_t group_len, const char *topic, size_t topic_len,
                            int32_t partition, int64_t offset, int32_t leader_epoch,
                            const char *metadata, size_t metadata_len, int64_t timestamp_ms) {
    struct txn *t = txn_find(&api->tc, txn_id.ptr, slen(txn_id));
    if (!t) return -1;
    if (t->cur.state != TXN_ONGOING && t->cur.state != TXN_PREPARE_COMMIT &&
        t->cur.state != TXN_PREPARE_ABORT)
        return 0; /* the transaction ended (timed out) meanwhile: its marker decided */
    return txn_add_offset(t, group, group_len, topic, topic_len, partition, offset, leader_epoch,
                          metadata, metadata_len, timestamp_ms);
}

bool txn_api_offset_pending(struct txn_api *api, const char *group, size_t group_len,
                            const char *topic, size_t topic_len, int32_t partition) {
    return txn_offset_pending(&api->tc, group, group_len, topic, topic_len, partition);
}

void txn_api_restore_offset(struct txn_api *api, int64_t producer_id,
                            const struct group_record *rec) {
    if (rec->key_version != GROUP_KEY_OFFSET_COMMIT || rec->tombstone) return;
    struct txn *t = txn_find_producer(&api->tc, producer_id);
    if (!t) {
        log_warn("txn_offset_orphaned", "producer_id=%" PRId64 " group=%.*s", producer_id,
                 (int)rec->group_len, rec->group);
        return;
    }
    if (txn_add_offset(t, rec->group, rec->group_len, rec->topic, rec->topic_len, rec->partition,
                       rec->offset, rec->leader_epoch, rec->metadata, rec->metadata_len,
                       rec->commit_timestamp_ms) != 0)
        log_warn("txn_offset_restore_failed", "producer_id=%" PRId64, producer_id);
}
