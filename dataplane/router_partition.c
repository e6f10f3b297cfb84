/* router_partition.c - the partition APIs other than Produce and Fetch, on the router:
 * ListOffsets (earliest, latest -- the LSO at read_committed --, by timestamp, max
 * timestamp), DescribeProducers (each owner copies its partitions' producer state:
 * epoch, last sequence and timestamp, coordinator epoch, open transaction's start),
 * DeleteRecords (moves the log start; the
 * checkpoint is written through the ring), OffsetForLeaderEpoch (one epoch, 0, which ends
 * at the log end) and DescribeLogDirs (each owner reports its parts' sizes; a request for
 * every topic is bounded by ROUTER_MAX_PARTS like any other). Each is a decode into parts
 * (router_handle_*), an owner step (router_*_part, synchronous on the owner) and an encode
 * on the origin (router_encode_*). See router.c for the job lifecycle. */
#include "dataplane/router_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <sys/statvfs.h>

#include "hw/log.h"
#include "storage/record/records.h"
#include "storage/segment.h"

/* ---- ListOffsets -------------------------------------------------------------------- */

#define LIST_OFFSETS_MAX_TIMESTAMP (-3) /* KIP-734, v7+ */

/* The largest batch timestamp of the log (-1 when empty). Segments keep theirs. */
static int64_t log_max_timestamp(const struct plog *log) {
    int64_t max_ms = -1;
    for (uint32_t i = 0; i < log->segment_count; i++)
        if (log->segments[i]->max_timestamp_ms > max_ms)
            max_ms = log->segments[i]->max_timestamp_ms;
    return max_ms;
}

/* The first record at or after p->offset whose timestamp reaches target_ms, in the batch
 * the read returned (the time index named it: the first batch whose max timestamp
 * reaches the target, so the record is in it). Answers its offset and timestamp. */
static void list_offsets_scan(struct router *r, struct data_part *p, const uint8_t *buf,
                              size_t len, int64_t target_ms) {
    struct record_iter it;
    if (record_iter_init(&it, buf, len, &r->codecs, r->check_scratch, CHECK_SCRATCH_BYTES, 0) !=
        RECORD_OK) {
        p->error = ERR_CORRUPT_MESSAGE;
        log_warn("list_offsets_bad_batch", "partition=%d offset=%lld", p->partition,
                 (long long)p->offset);
        return;
    }
    struct record_view rec;
    while (record_iter_next(&it, &rec)) {
        if (rec.offset < p->offset || rec.timestamp < target_ms) continue;
        p->offset = rec.offset;
        p->timestamp = rec.timestamp;
        return;
    }
    p->offset = -1; /* the index and the batch disagree: answer "none" as Kafka would */
    p->timestamp = -1;
}

static void list_offsets_read_done(struct plog_read_req *req, int status);

/* The read came back (from the cache at once, or from the disk): the batch's fragments
 * are copied into one buffer for the record walk (one batch, <= max.message.bytes). */
static void list_offsets_finish_read(struct data_part *p, struct plog *log, int status) {
    struct part_read *pr = p->read;
    struct plog_read_req *rq = &pr->req;
    int64_t target_ms = p->timestamp;
    p->timestamp = -1;
    uint8_t *buf = status >= 0 && rq->bytes > 0 ? malloc(rq->bytes) : NULL;
    if (buf) {
        uint32_t at = 0;
        for (uint32_t i = 0; i < rq->frag_count; i++) {
            memcpy(buf + at, rq->frags[i].ptr, rq->frags[i].len);
            at += rq->frags[i].len;
        }
        list_offsets_scan(pr->owner, p, buf, at, target_ms);
        free(buf);
    } else {
        p->error = status < 0 ? ERR_KAFKA_STORAGE_ERROR : ERR_UNKNOWN_SERVER_ERROR;
    }
    plog_read_release(log, rq);
    free(pr);
    p->read = NULL;
}

static void list_offsets_read_done(struct plog_read_req *req, int status) {
    struct part_read *pr = (struct part_read *)((char *)req - offsetof(struct part_read, req));
    struct data_part *p = pr->part;
    struct router *r = pr->owner;
    list_offsets_finish_read(p, req->log, status);
    router_owner_op_done(r, p->job);
}

/* Earliest (-2), latest (-1), by timestamp (>= 0) and max timestamp (-3). The last two
 * find the batch through the segments' time indexes and read it (cache or disk) to answer
 * the exact record and its timestamp, as Kafka's findOffsetByTimestamp does; p->timestamp
 * holds the target until then and the answer's timestamp after (-1 for -1/-2). */
void router_list_offsets_part(struct router *r, struct data_part *p, struct plog *log) {
    p->log_start = plog_log_start_offset(log);
    p->high_watermark = plog_high_watermark(log);
    int64_t target_ms = p->timestamp;
    p->timestamp = -1;
    if (target_ms == -2) {
        p->offset = p->log_start;
        return;
    }
    if (target_ms == -1) { /* latest: the LSO for read_committed (KIP-98) */
        p->offset = p->job->isolation_level == 1 ? plog_last_stable_offset(log) : p->high_watermark;
        return;
    }
    if (target_ms == LIST_OFFSETS_MAX_TIMESTAMP && p->job->version >= 7)
        target_ms = log_max_timestamp(log);
    if (target_ms < 0) { /* an empty log's max, or an unknown special value */
        p->offset = -1;
        if (p->job->version < 7 || target_ms != -1) p->error = ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    p->offset = plog_offset_for_timestamp(log, target_ms);
    int64_t limit = p->job->isolation_level == 1 ? plog_last_stable_offset(log) : p->high_watermark;
    if (p->offset >= limit) {
        p->offset = -1;
        return;
    }
    p->read = calloc(1, sizeof *p->read);
    if (!p->read) {
        p->error = ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    p->timestamp = target_ms;
    p->read->part = p;
    p->read->owner = r;
    p->read->req.offset = p->offset;
    p->read->req.max_bytes = 1; /* the first batch, whole */
    p->read->req.stable_only = p->job->isolation_level == 1;
    p->read->req.done = list_offsets_read_done;
    int rc = plog_read(log, &p->read->req);
    if (rc == 1) {
        list_offsets_finish_read(p, log, 0);
    } else if (rc == 0) {
        p->job->owner_pending[r->cfg.shard_id]++;
    } else {
        p->error = rc == -ENOBUFS ? ERR_KAFKA_STORAGE_ERROR : ERR_UNKNOWN_SERVER_ERROR;
        if (rc == -ERANGE) { /* the log start moved past it: nothing to answer */
            p->error = ERR_NONE;
            p->offset = -1;
        }
        p->timestamp = -1;
        free(p->read);
        p->read = NULL;
    }
}

/* DeleteRecords: -1 means the high watermark; beyond it (or another negative) is
 * OFFSET_OUT_OF_RANGE; below the log start changes nothing. Answers the low watermark. */
void router_delete_records_part(struct data_part *p, struct plog *log) {
    int64_t offset = p->offset == DELETE_RECORDS_HIGH_WATERMARK ? plog_high_watermark(log)
                                                                : p->offset;
    if (plog_delete_records(log, offset) != 0) {
        p->error = ERR_OFFSET_OUT_OF_RANGE;
        p->offset = -1;
        return;
    }
    p->offset = plog_log_start_offset(log);
}

/* OffsetForLeaderEpoch with one epoch (0) ever: as Kafka's leader epoch cache answers,
 * epoch 0 ends at the log end and a later (or undefined) epoch is unknown (-1, -1). A
 * current_leader_epoch newer than 0 is UNKNOWN_LEADER_EPOCH (the client knows a leader
 * this broker has not seen); -1 skips the check. */
void router_leader_epoch_part(struct data_part *p, struct plog *log) {
    if (p->current_leader_epoch > LEADER_EPOCH) {
        p->error = ERR_UNKNOWN_LEADER_EPOCH;
    } else if (p->current_leader_epoch >= 0 && p->current_leader_epoch < LEADER_EPOCH) {
        p->error = ERR_FENCED_LEADER_EPOCH; /* unreachable while the epoch is 0 */
    } else if (p->leader_epoch == LEADER_EPOCH) {
        p->offset = plog_log_end_offset(log);
        return;
    }
    p->leader_epoch = -1;
    p->offset = -1;
}

int router_handle_list_offsets(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                               struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_list_offsets_request req;
    int rc = kafka_list_offsets_request_decode(&rd, hdr->request_api_version, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    job->isolation_level = hdr->request_api_version >= 2 ? req.isolation_level : 0;
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_list_offsets_request_list_offsets_topic *lt = &req.topics[i];
        for (int32_t j = 0; j < lt->partitions_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = lt->name;
            p->partition = lt->partitions[j].partition_index;
            p->timestamp = lt->partitions[j].timestamp;
            p->offset = -1;
            router_lookup_part(r, p, false);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

int router_encode_list_offsets(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_list_offsets_response resp;
    kafka_list_offsets_response_init(&resp, job->version);
    resp.topics = JOB_ARRAY(r, job->topic_count, resp.topics);
    struct kafka_list_offsets_response_list_offsets_partition_response *pr = JOB_ARRAY(r, job->part_count, pr);
    int64_t *old = JOB_ARRAY(r, job->part_count, old);
    if (!resp.topics || !pr || !old) return KAFKA_ERR_ARENA;
    resp.topics_count = (int32_t)job->topic_count;
    for (uint32_t i = 0; i < job->part_count; i++) {
        const struct data_part *p = &job->parts[i];
        struct kafka_list_offsets_response_list_offsets_topic_response *tr = &resp.topics[p->topic_index];
        tr->name = p->name;
        if (!tr->partitions) tr->partitions = &pr[i];
        struct kafka_list_offsets_response_list_offsets_partition_response *x =
            &tr->partitions[tr->partitions_count++];
        memset(x, 0, sizeof *x);
        x->partition_index = p->partition;
        x->error_code = p->error;
        x->offset = p->error ? -1 : p->offset;
        x->timestamp = p->error ? -1 : p->timestamp;
        x->leader_epoch = p->error || job->version < 4 ? -1 : 0;
        old[i] = x->offset;
        x->old_style_offsets = &old[i];
        x->old_style_offsets_count = job->version > 0 || p->error || x->offset < 0 ? 0 : 1;
        if (job->version == 0) x->offset = -1; /* v0 answers in old_style_offsets only */
    }
    return kafka_list_offsets_response_encode(w, job->version, &resp);
}

/* ---- DeleteRecords and OffsetForLeaderEpoch ---------------------------------------- */

int router_handle_delete_records(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                 struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_delete_records_request req;
    int rc = kafka_delete_records_request_decode(&rd, hdr->request_api_version, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_delete_records_request_delete_records_topic *t = &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = t->name;
            p->partition = t->partitions[j].partition_index;
            p->offset = t->partitions[j].offset;
            router_lookup_part(r, p, false);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

int router_encode_delete_records(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_delete_records_response resp;
    kafka_delete_records_response_init(&resp, job->version);
    resp.topics = JOB_ARRAY(r, job->topic_count, resp.topics);
    struct kafka_delete_records_response_delete_records_partition_result *pr = JOB_ARRAY(r, job->part_count, pr);
    if (!resp.topics || !pr) return KAFKA_ERR_ARENA;
    resp.topics_count = (int32_t)job->topic_count;
    for (uint32_t i = 0; i < job->part_count; i++) { /* a topic's parts are contiguous */
        const struct data_part *p = &job->parts[i];
        struct kafka_delete_records_response_delete_records_topic_result *tr =
            &resp.topics[p->topic_index];
        tr->name = p->name;
        if (!tr->partitions) tr->partitions = &pr[i];
        struct kafka_delete_records_response_delete_records_partition_result *x =
            &tr->partitions[tr->partitions_count++];
        x->partition_index = p->partition;
        x->error_code = p->error;
        x->low_watermark = p->error ? -1 : p->offset;
    }
    return kafka_delete_records_response_encode(w, job->version, &resp);
}

int router_handle_offset_for_leader_epoch(struct handler_ctx *ctx,
                                          const struct kafka_request_header *hdr,
                                          struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_offset_for_leader_epoch_request req;
    int rc = kafka_offset_for_leader_epoch_request_decode(&rd, hdr->request_api_version, &req,
                                                          ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic *t =
            &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = t->topic;
            p->partition = t->partitions[j].partition;
            p->leader_epoch = t->partitions[j].leader_epoch;
            p->current_leader_epoch = hdr->request_api_version >= 2
                                          ? t->partitions[j].current_leader_epoch : -1;
            p->offset = -1;
            router_lookup_part(r, p, false);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

int router_encode_leader_epoch(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_offset_for_leader_epoch_response resp;
    kafka_offset_for_leader_epoch_response_init(&resp, job->version);
    resp.topics = JOB_ARRAY(r, job->topic_count, resp.topics);
    struct kafka_offset_for_leader_epoch_response_epoch_end_offset *pr = JOB_ARRAY(r, job->part_count, pr);
    if (!resp.topics || !pr) return KAFKA_ERR_ARENA;
    resp.topics_count = (int32_t)job->topic_count;
    for (uint32_t i = 0; i < job->part_count; i++) {
        const struct data_part *p = &job->parts[i];
        struct kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result *tr =
            &resp.topics[p->topic_index];
        tr->topic = p->name;
        if (!tr->partitions) tr->partitions = &pr[i];
        struct kafka_offset_for_leader_epoch_response_epoch_end_offset *x =
            &tr->partitions[tr->partitions_count++];
        x->error_code = p->error;
        x->partition = p->partition;
        x->leader_epoch = p->error ? -1 : p->leader_epoch;
        x->end_offset = p->error ? -1 : p->offset;
    }
    return kafka_offset_for_leader_epoch_response_encode(w, job->version, &resp);
}

/* ---- DescribeLogDirs --------------------------------------------------------------- */

/* Every partition of every topic (a null topic list). The names are copied into a buffer
 * that replaces the job's frame (the request is fully decoded and nothing points into it):
 * the snapshot they come from may be reclaimed before the job completes. */
static int log_dirs_all_topics(struct router *r, struct data_job *job) {
    struct topic_source *src = &r->cfg.topics;
    size_t topic_count = src->count(src->reader), name_bytes = 0;
    uint32_t count = 0;
    struct topic_info t;
    for (size_t i = 0; i < topic_count; i++) {
        if (!src->at(src->reader, i, &t)) return KAFKA_ERR_LENGTH;
        count += (uint32_t)t.partition_count;
        name_bytes += strlen(t.name);
        if (count > ROUTER_MAX_PARTS) return KAFKA_ERR_LENGTH;
    }
    char *names = malloc(name_bytes ? name_bytes : 1);
    if (!names || router_job_alloc_parts(job, count) != 0) {
        free(names);
        return KAFKA_ERR_LENGTH;
    }
    free(job->frame);
    job->frame = (uint8_t *)names;
    job->frame_bytes = (uint32_t)name_bytes;
    job->topic_count = (uint32_t)topic_count;
    uint32_t k = 0;
    for (size_t i = 0; i < topic_count; i++) {
        src->at(src->reader, i, &t);
        size_t len = strlen(t.name);
        memcpy(names, t.name, len);
        for (int32_t j = 0; j < t.partition_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = (struct kafka_str){.ptr = names, .len = (int32_t)len};
            p->partition = j;
            memcpy(p->id, t.id, 16);
            p->owner = t.partition_shard[j];
        }
        names += len;
    }
    assert(k == count);
    return 0;
}

int router_handle_describe_log_dirs(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                    struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_describe_log_dirs_request req;
    int rc = kafka_describe_log_dirs_request_decode(&rd, hdr->request_api_version, &req,
                                                    ctx->arena);
    if (rc == 0 && req.topics_count < 0) {
        rc = log_dirs_all_topics(r, job);
        if (rc != 0) {
            router_job_free(job);
            return rc;
        }
        router_job_dispatch(r, job);
        return HANDLER_DEFERRED;
    }
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_describe_log_dirs_request_describable_log_dir_topic *t = &req.topics[i];
        for (int32_t j = 0; j < t->partitions_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = t->topic;
            p->partition = t->partitions[j];
            router_lookup_part(r, p, false);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

typedef struct kafka_describe_log_dirs_response_describe_log_dirs_topic log_dirs_topic;
typedef struct kafka_describe_log_dirs_response_describe_log_dirs_partition log_dirs_partition;

/* One log dir (the data dir). Partitions this broker does not have are left out, as Kafka
 * does. Total and usable bytes from statvfs (a short blocking call, as plog_open). */
int router_encode_log_dirs(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_describe_log_dirs_response resp;
    kafka_describe_log_dirs_response_init(&resp, job->version);
    struct kafka_describe_log_dirs_response_describe_log_dirs_result *dir =
        kafka_arena_alloc(&r->arena, 1, sizeof *dir,
                          _Alignof(struct kafka_describe_log_dirs_response_describe_log_dirs_result));
    log_dirs_topic *topics = JOB_ARRAY(r, job->topic_count, topics);
    log_dirs_partition *parts = JOB_ARRAY(r, job->part_count, parts);
    if (!dir || !topics || !parts) return KAFKA_ERR_ARENA;
    memset(dir, 0, sizeof *dir);
    dir->log_dir = kafka_str_from_cstr(r->cfg.data_dir);
    struct statvfs fs;
    dir->total_bytes = -1;
    dir->usable_bytes = -1;
    if (statvfs(r->cfg.data_dir, &fs) == 0) {
        dir->total_bytes = (int64_t)((uint64_t)fs.f_blocks * fs.f_frsize);
        dir->usable_bytes = (int64_t)((uint64_t)fs.f_bavail * fs.f_frsize);
    }
    dir->topics = topics;
    uint32_t last_topic = UINT32_MAX, used = 0;
    for (uint32_t i = 0; i < job->part_count; i++) { /* a topic's parts are contiguous */
        const struct data_part *p = &job->parts[i];
        if (p->error != ERR_NONE) continue;
        if (p->topic_index != last_topic) {
            log_dirs_topic *t = &topics[dir->topics_count++];
            t->name = p->name;
            t->partitions = &parts[used];
            t->partitions_count = 0;
            last_topic = p->topic_index;
        }
        log_dirs_topic *t = &topics[dir->topics_count - 1];
        log_dirs_partition *x = &parts[used++];
        t->partitions_count++;
        *x = (log_dirs_partition){.partition_index = p->partition, .partition_size = p->offset,
                                  .offset_lag = 0, .is_future_key = false};
    }
    resp.results = dir;
    resp.results_count = 1;
    return kafka_describe_log_dirs_response_encode(w, job->version, &resp);
}

/* ---- DescribeProducers (KIP-664) ------------------------------------------------------ */

/* The owner copies the partition's producer table (bounded by max_producers). */
void router_describe_producers_part(struct data_part *p, struct plog *log) {
    const struct producer_state *ps = &log->producers;
    if (ps->count == 0) return;
    p->producers = malloc(ps->count * sizeof *p->producers);
    if (!p->producers) {
        p->error = ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    for (uint32_t i = 0; i < ps->count; i++) {
        const struct producer_entry *e = &ps->entries[i];
        const struct producer_batch *newest = producer_entry_newest(e);
        p->producers[i] = (struct kafka_describe_producers_response_producer_state){
            .producer_id = e->producer_id,
            .producer_epoch = e->epoch,
            .last_sequence = newest ? newest->last_seq : -1,
            .last_timestamp = newest ? newest->max_timestamp_ms : -1,
            .coordinator_epoch = e->coordinator_epoch,
            .current_txn_start_offset = e->txn_first_offset,
        };
    }
    p->producer_count = ps->count;
}

int router_handle_describe_producers(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                     struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_describe_producers_request req;
    int rc = kafka_describe_producers_request_decode(&rd, hdr->request_api_version, &req,
                                                     ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partition_indexes_count > 0
                                ? req.topics[i].partition_indexes_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_describe_producers_request_topic_request *t = &req.topics[i];
        for (int32_t j = 0; j < t->partition_indexes_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = t->name;
            p->partition = t->partition_indexes[j];
            router_lookup_part(r, p, false);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

int router_encode_describe_producers(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_describe_producers_response resp;
    kafka_describe_producers_response_init(&resp, job->version);
    resp.topics = JOB_ARRAY(r, job->topic_count, resp.topics);
    struct kafka_describe_producers_response_partition_response *pr = JOB_ARRAY(r, job->part_count, pr);
    if (!resp.topics || !pr) return KAFKA_ERR_ARENA;
    resp.topics_count = (int32_t)job->topic_count;
    for (uint32_t i = 0; i < job->part_count; i++) {
        const struct data_part *p = &job->parts[i];
        struct kafka_describe_producers_response_topic_response *tr = &resp.topics[p->topic_index];
        tr->name = p->name;
        if (!tr->partitions) tr->partitions = &pr[i];
        struct kafka_describe_producers_response_partition_response *x =
            &tr->partitions[tr->partitions_count++];
        memset(x, 0, sizeof *x);
        x->partition_index = p->partition;
        x->error_code = p->error;
        x->error_message = kafka_str_from_cstr(NULL);
        x->active_producers = p->error ? NULL : p->producers;
        x->active_producers_count = p->error ? 0 : (int32_t)p->producer_count;
    }
    return kafka_describe_producers_response_encode(w, job->version, &resp);
}
