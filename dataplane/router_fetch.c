/* router_fetch.c - Fetch on the router: the origin decodes the request into one part per
 * partition (router_handle_fetch), each owner reads from its log (batch cache or disk,
 * router_fetch_part), and the origin encodes the answer (router_encode_fetch) -- at
 * once, or after the long poll in router.c when fewer than min_bytes came back.
 *
 * Zero copy. A part read by the connection's own shard keeps the log's fragments (each
 * holds a chunk reference) in its part_read: the response references the cached batch
 * bytes in place (one iovec per fragment, kafka_writer_set_scatter) and is sent with
 * kserver_complete_zc, whose release (router_fetch_release) frees the job and drops the
 * fragment references -- on this shard, whose pool they belong to, once the kernel no
 * longer needs the bytes. Every consumer tailing a partition on the same shard is thus
 * served from the same cached bytes. A part owned by another shard is copied once, on
 * the owner, into a malloc'd buffer that the origin references without a second copy
 * and frees at release. Why not keep those fragments too: chunk refcounts are
 * single-threaded, so the release would have to travel back to the owner as a mesh
 * message, and a full ring would then have to hold the release in an outbox -- while
 * the owner's cache chunks stay pinned by consumers on other shards; one copy on the
 * owner keeps each pool's memory under its own shard's control. (Was: two copies for
 * every part.) KIP-74: partitions are filled in request order until the
 * response's max_bytes; the first partition's first batch is returned whole even above
 * the limits, so a consumer always progresses. Each owner reads its parts in request
 * order only while its share of max_bytes lasts (router_fetch_part's budget): reading
 * every partition up to its partition_max_bytes and dropping what does not fit at encode
 * time cost a consumer of 100 backlogged partitions ~100 reads (many from disk) per
 * ~4 MiB answer. Sessions (KIP-227) are not kept: a session
 * request is answered with session id 0, which clients take as "full fetches".
 *
 * Transactions (KIP-98). Every answer carries the partition's last stable offset. A
 * read_committed fetch (isolation_level 1) reads only below the LSO (plog_read with
 * stable_only, so neither the kept fragments nor another shard's copy ever hold a batch
 * at or past it) and lists the aborted transactions (producer id, first offset) that
 * overlap the offsets returned, as Kafka's collectAbortedTxns(fetch offset, end of the
 * data) does: the consumer drops those producers' batches up to their ABORT markers. At
 * most FETCH_MAX_ABORTED are listed per partition. A parked read_committed fetch
 * re-reads when its owner completes an append -- a marker's durable append too, which
 * is what moves the LSO. */
#include "dataplane/router_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/stats.h"
#include "hw/log.h"

#include "storage/record/batch.h"

static void read_done(struct plog_read_req *req, int status);
static void fetch_copy(struct data_part *p, struct plog *log);

#define FETCH_MAX_ABORTED 1024u /* aborted transactions listed per partition */

/* read_committed: the aborted transactions overlapping [fetch offset, end of the data). */
static void fetch_collect_aborted(struct data_part *p, const struct plog *log) {
    const struct plog_read_req *rq = &p->read->req;
    if (!rq->stable_only || rq->bytes == 0 || log->txn.aborted_count == 0) return;
    uint32_t n = plog_aborted_txns(log, p->fetch_offset, rq->next_offset, NULL, FETCH_MAX_ABORTED);
    if (n == 0) return; /* the common case: no allocation */
    p->aborted = malloc(n * sizeof *p->aborted);
    if (!p->aborted) {
        p->error = ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    p->aborted_count = plog_aborted_txns(log, p->fetch_offset, rq->next_offset, p->aborted, n);
    assert(p->aborted_count == n);
}

/* The owner is the origin: keep the fragments for the response (released with the job). */
static void fetch_keep(struct data_part *p) {
    struct plog_read_req *rq = &p->read->req;
    p->data_bytes = rq->bytes;
    for (uint32_t i = 0; i < rq->frag_count; i++)
        stats_topic_out(p->name.ptr, p->name.len > 0 ? (uint32_t)p->name.len : 0,
                        rq->frags[i].len, stats_count_records(rq->frags[i].ptr, rq->frags[i].len));
    if (rq->frag_count == 0) {
        free(p->read);
        p->read = NULL;
    }
}

/* What a read left in the part: kept on the origin, copied for another shard. */
static void fetch_take(struct router *r, struct data_part *p, struct plog *log) {
    p->last_stable = plog_last_stable_offset(log); /* what the read was capped at, or later */
    fetch_collect_aborted(p, log);
    if (p->job->origin == r) fetch_keep(p);
    else fetch_copy(p, log);
}

static void fetch_copy(struct data_part *p, struct plog *log) {
    struct plog_read_req *rq = &p->read->req;
    if (rq->bytes > 0) {
        p->data = malloc(rq->bytes);
        if (p->data) {
            uint32_t at = 0;
            for (uint32_t i = 0; i < rq->frag_count; i++) {
                memcpy(p->data + at, rq->frags[i].ptr, rq->frags[i].len);
                at += rq->frags[i].len;
            }
            p->data_bytes = at;
            stats_topic_out(p->name.ptr, p->name.len > 0 ? (uint32_t)p->name.len : 0, at,
                            stats_count_records(p->data, at));
        } else {
            p->error = ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    plog_read_release(log, rq);
    free(p->read);
    p->read = NULL;
}

void router_fetch_part(struct router *r, struct data_part *p, struct plog *log,
                       int64_t *budget_bytes) {
    p->log_start = plog_log_start_offset(log);
    p->high_watermark = plog_high_watermark(log);
    p->last_stable = plog_last_stable_offset(log);
    if (p->fetch_offset < p->log_start || p->fetch_offset > p->high_watermark) {
        p->error = ERR_OFFSET_OUT_OF_RANGE;
        return;
    }
    bool committed = p->job->isolation_level == 1;
    int64_t limit = committed ? p->last_stable : p->high_watermark;
    if (p->fetch_offset >= limit || p->max_bytes <= 0 || *budget_bytes <= 0) return;
    int64_t allowance = p->max_bytes < *budget_bytes ? p->max_bytes : *budget_bytes;
    p->read = calloc(1, sizeof *p->read);
    if (!p->read) {
        p->error = ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    p->read->part = p;
    p->read->owner = r;
    p->read->req.offset = p->fetch_offset;
    p->read->req.max_bytes = (uint32_t)allowance;
    p->read->req.stable_only = committed;
    p->read->req.done = read_done;
    int rc = plog_read(log, &p->read->req);
    if (rc == 1) {
        *budget_bytes -= p->read->req.bytes; /* before fetch_take, which may free the read */
        fetch_take(r, p, log);
    } else if (rc == 0) {
        *budget_bytes -= allowance;
        p->job->owner_pending[r->cfg.shard_id]++;
    } else {
        p->error = rc == -ERANGE ? ERR_OFFSET_OUT_OF_RANGE : ERR_KAFKA_STORAGE_ERROR;
        if (rc == -ENOBUFS) p->error = ERR_NONE; /* nothing now; the client fetches again */
        free(p->read);
        p->read = NULL;
    }
}

static void read_done(struct plog_read_req *req, int status) {
    struct part_read *pr = (struct part_read *)((char *)req - offsetof(struct part_read, req));
    struct data_part *p = pr->part;
    struct router *r = pr->owner;
    if (status < 0) {
        p->error = status == -ERANGE ? ERR_OFFSET_OUT_OF_RANGE : ERR_KAFKA_STORAGE_ERROR;
        plog_read_release(req->log, req);
        free(pr);
        p->read = NULL;
    } else {
        fetch_take(r, p, req->log);
    }
    router_owner_op_done(r, p->job);
}


void router_fetch_part_drop(struct data_part *p) {
    free(p->producers); /* DescribeProducers' copy: freed with the job like fetch data */
    p->producers = NULL;
    p->producer_count = 0;
    free(p->aborted);
    p->aborted = NULL;
    p->aborted_count = 0;
    free(p->data);
    p->data = NULL;
    p->data_bytes = 0;
    if (!p->read) return;
    struct router *origin = p->job->origin;
    assert(p->owner == origin->cfg.shard_id); /* only the origin's own reads are kept */
    struct plog_read_req *rq = &p->read->req;
    for (uint32_t i = 0; i < rq->frag_count; i++) frag_release(origin->cfg.pool, &rq->frags[i]);
    free(p->read);
    p->read = NULL;
}

void router_fetch_release(void *arg) { router_job_free(arg); }

uint32_t router_fetch_bytes(const struct data_job *job) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < job->part_count; i++) n += job->parts[i].data_bytes;
    return n;
}

bool router_fetch_has_error(const struct data_job *job) {
    for (uint32_t i = 0; i < job->part_count; i++)
        if (job->parts[i].error != ERR_NONE) return true;
    return false;
}


int router_handle_fetch(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                        struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_fetch_request req;
    int16_t v = hdr->request_api_version;
    int rc = kafka_fetch_request_decode(&rd, v, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    job->max_wait_ms = req.max_wait_ms;
    job->isolation_level = v >= 4 ? req.isolation_level : 0;
    job->min_bytes = req.min_bytes;
    job->max_bytes = v >= 3 ? req.max_bytes : INT32_MAX;
    if (job->max_bytes <= 0) job->max_bytes = 1;
    /* The clock is whole milliseconds, truncated: the request arrived up to 1 ms after
     * now_ms, so the deadline counts from now_ms + 1 and the wait is never short. */
    if (req.max_wait_ms > 0) job->deadline_ms = r->now_ms + 1 + (uint64_t)req.max_wait_ms;
    else job->deadline_ms = r->now_ms;
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topics_count; i++) {
        const struct kafka_fetch_request_fetch_topic *ft = &req.topics[i];
        for (int32_t j = 0; j < ft->partitions_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = ft->topic;
            memcpy(p->id, ft->topic_id.bytes, 16);
            p->partition = ft->partitions[j].partition;
            p->fetch_offset = ft->partitions[j].fetch_offset;
            p->max_bytes = ft->partitions[j].partition_max_bytes;
            if (p->max_bytes > job->max_bytes) p->max_bytes = job->max_bytes;
            p->high_watermark = -1;
            p->last_stable = -1;
            p->log_start = -1;
            router_lookup_part(r, p, v >= 13);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

/* The part's record bytes as a list of ranges: its kept fragments, or its one copy. */
static int fetch_scatter(struct router *r, const struct data_part *p, struct kafka_scatter *out) {
    uint32_t n = p->data ? 1 : p->read ? p->read->req.frag_count : 0;
    struct iovec *iov = JOB_ARRAY(r, n, iov);
    if (!iov) return -1;
    if (p->data) {
        iov[0] = (struct iovec){p->data, p->data_bytes};
    } else {
        for (uint32_t i = 0; i < n; i++)
            iov[i] = (struct iovec){p->read->req.frags[i].ptr, p->read->req.frags[i].len};
    }
    *out = (struct kafka_scatter){iov, n};
    return 0;
}

int router_encode_fetch(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_fetch_response resp;
    kafka_fetch_response_init(&resp, job->version);
    resp.session_id = 0; /* no incremental sessions: every fetch is a full fetch */
    resp.responses = JOB_ARRAY(r, job->topic_count, resp.responses);
    struct kafka_fetch_response_partition_data *pd = JOB_ARRAY(r, job->part_count, pd);
    struct kafka_scatter *scatter = JOB_ARRAY(r, job->part_count, scatter);
    if (!resp.responses || !pd || !scatter) return KAFKA_ERR_ARENA;
    kafka_writer_set_scatter(w, scatter, job->part_count);
    resp.responses_count = (int32_t)job->topic_count;
    uint64_t total = 0;
    for (uint32_t i = 0; i < job->part_count; i++) {
        const struct data_part *p = &job->parts[i];
        struct kafka_fetch_response_fetchable_topic_response *tr = &resp.responses[p->topic_index];
        tr->topic = p->name;
        memcpy(tr->topic_id.bytes, p->id, 16);
        if (!tr->partitions) tr->partitions = &pd[i];
        struct kafka_fetch_response_partition_data *x = &tr->partitions[tr->partitions_count++];
        memset(x, 0, sizeof *x);
        x->diverging_epoch.epoch = -1;
        x->diverging_epoch.end_offset = -1;
        x->current_leader.leader_id = -1;
        x->current_leader.leader_epoch = -1;
        x->snapshot_id.end_offset = -1;
        x->snapshot_id.epoch = -1;
        x->partition_index = p->partition;
        x->error_code = p->error;
        x->high_watermark = p->high_watermark;
        x->last_stable_offset = p->last_stable;
        x->log_start_offset = p->log_start;
        x->aborted_transactions = NULL;
        x->aborted_transactions_count = job->version >= 4 ? 0 : -1;
        if (job->version >= 4 && p->aborted_count > 0) {
            struct kafka_fetch_response_aborted_transaction *at = JOB_ARRAY(r, p->aborted_count, at);
            if (!at) return KAFKA_ERR_ARENA;
            for (uint32_t k = 0; k < p->aborted_count; k++) {
                at[k].producer_id = p->aborted[k].producer_id;
                at[k].first_offset = p->aborted[k].first_offset;
            }
            x->aborted_transactions = at;
            x->aborted_transactions_count = (int32_t)p->aborted_count;
        }
        x->preferred_read_replica = -1;
        /* Response max_bytes: the first data always goes (KIP-74), the rest while it fits. */
        bool fits = total == 0 || total + p->data_bytes <= (uint64_t)job->max_bytes;
        if (p->data_bytes > 0 && fits) {
            if (fetch_scatter(r, p, &scatter[i]) != 0) return KAFKA_ERR_ARENA;
            x->records = (struct kafka_bytes){(const uint8_t *)&scatter[i], (int32_t)p->data_bytes};
            total += p->data_bytes;
        } else {
            x->records = (struct kafka_bytes){(const uint8_t *)"", 0};
        }
    }
    return kafka_fetch_response_encode(w, job->version, &resp);
}
