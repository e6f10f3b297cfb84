/* router_produce.c - Produce on the router: the origin decodes the request into one part
 * per partition (router_handle_produce); each owner validates every batch down to its
 * records (as Kafka's LogValidator: CRC, lengths, count, offset deltas; a compressed
 * batch is decompressed into the router's check scratch), converts legacy message sets
 * (Produce v0-v2) to one v2 batch, stamps LogAppendTime on a copy when the topic says so,
 * and appends (router_produce_part); the answer is encoded on the origin when every owner
 * is done (router_encode_produce). acks=all completes after the append is durable,
 * acks=1 once it is written, acks=0 never answers. See router.c for the job lifecycle.
 *
 * Idempotent producers: a batch with a producer id is checked against the partition's
 * producer state on the owner, in append order, right before its append
 * (plog_producer_check; plog_append records it). A duplicate is answered with the
 * original base offset and error NONE, as Kafka does, and is not appended again; when
 * the original is not yet written (acks=all: synced) the answer waits for it
 * (plog_wait), so a retry is never acknowledged before the batch it stands for. A gap
 * gets OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch INVALID_PRODUCER_EPOCH. An idempotent
 * batch must come alone in its partition's records (Kafka's rule for v3+). */
#include "dataplane/router_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/stats.h"
#include "hw/log.h"
#include <inttypes.h>
#include <time.h>

#include "storage/record/batch.h"
#include "storage/record/legacy.h"
#include "storage/record/records.h"

static void append_done(struct plog_append_req *req, int status) {
    struct data_part *p = (struct data_part *)((char *)req - offsetof(struct data_part, append));
    struct router *r = router_of_shard(p->owner);
    if (status < 0) p->error = ERR_KAFKA_STORAGE_ERROR;
    atomic_fetch_add_explicit(&r->appends_done, 1, memory_order_release);
    router_owner_op_done(r, p->job);
}

static int64_t wall_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Validate every batch of a v2 records field down to each record, as Kafka's
 * LogValidator does (CRC, lengths, record count, offset deltas 0..n-1; a compressed batch
 * is decompressed into check_scratch for that). Returns the number of batches or a
 * negated Kafka error code. */
static int count_v2_batches(struct router *r, const uint8_t *buf, size_t len,
                            int64_t max_message_bytes, bool *transactional) {
    size_t off = 0;
    int n = 0;
    *transactional = false;
    while (off < len) {
        struct record_batch_header h;
        enum record_error e = record_batch_check_records(buf + off, len - off, &r->codecs,
                                                         r->check_scratch, CHECK_SCRATCH_BYTES,
                                                         RECORD_ITER_STRICT_OFFSETS, &h);
        if (e != RECORD_OK) return -record_error_kafka_code(e);
        /* Control batches (transaction markers) are the coordinator's alone, and a
         * transactional batch needs a producer id (Kafka's LogValidator: INVALID_RECORD). */
        if ((h.attributes & RECORD_ATTR_CONTROL) ||
            ((h.attributes & RECORD_ATTR_TRANSACTIONAL) && h.producer_id < 0))
            return -ERR_INVALID_RECORD;
        *transactional |= (h.attributes & RECORD_ATTR_TRANSACTIONAL) != 0;
        size_t size = record_batch_size_bytes(&h);
        if ((int64_t)size > max_message_bytes) return -ERR_MESSAGE_TOO_LARGE;
        off += size;
        n++;
    }
    return n > 0 ? n : -ERR_CORRUPT_MESSAGE;
}

/* Per shard thread: rejected sequences and duplicates are logged, at a bounded rate. */
static _Thread_local struct log_ratelimit sequence_rejected_rl = LOG_RATELIMIT_INIT(10, 1);
static _Thread_local struct log_ratelimit duplicate_rl = LOG_RATELIMIT_INIT(10, 1);

/* The idempotence check of a part's batch (see the top comment). Returns true when the
 * part is answered without an append (a duplicate, or an error). */
static bool check_idempotent(struct router *r, struct data_part *p, struct plog *log,
                             const uint8_t *buf, size_t len, int batches) {
    struct record_batch_header h;
    if (record_batch_header_parse(buf, len, &h) != RECORD_OK || h.producer_id < 0) return false;
    if (batches != 1) {
        p->error = p->job->version >= 8 ? ERR_INVALID_RECORD : ERR_CORRUPT_MESSAGE;
        return true;
    }
    struct producer_batch dup;
    int verdict = plog_producer_check(log, &h, &dup);
    if (verdict < 0) {
        p->error = ERR_KAFKA_STORAGE_ERROR;
        return true;
    }
    if (verdict != PRODUCER_DUPLICATE) {
        p->error = producer_verdict_kafka_code((enum producer_verdict)verdict);
        if (p->error && log_ratelimit_ok(&sequence_rejected_rl))
            log_warn("produce_sequence_rejected", "partition=%d producer_id=%" PRId64
                     " epoch=%d base_sequence=%d error=%d", p->partition, h.producer_id,
                     h.producer_epoch, h.base_sequence, p->error);
        return p->error != 0;
    }
    if (log_ratelimit_ok(&duplicate_rl))
        log_info("produce_duplicate", "partition=%d producer_id=%" PRId64 " epoch=%d"
                 " base_sequence=%d original_offset=%" PRId64, p->partition, h.producer_id,
                 h.producer_epoch, h.base_sequence, dup.base_offset);
    p->base_offset = dup.base_offset;
    p->log_start = plog_log_start_offset(log);
    p->append.done = append_done;
    int rc = plog_wait(log, dup.base_offset + dup.last_offset_delta + 1, p->job->acks == -1,
                       &p->append);
    if (rc < 0) p->error = ERR_KAFKA_STORAGE_ERROR;
    if (rc == 0) p->job->owner_pending[r->cfg.shard_id]++;
    return true;
}

/* Backpressure on storage memory. When the first batch cannot get a tail chunk now
 * (every chunk is held by flushes in flight or by other partitions' tails), the part
 * waits on the owner, FIFO, and is produced again from the start on a later tick, once
 * storage_poll has freed chunks -- rather than answering KAFKA_STORAGE_ERROR, which a
 * client must retry and which a producer without retries counts as a failure. The wait is
 * bounded by PRODUCE_BUFFER_WAIT_MS (then the error is answered) and by the jobs that can
 * exist (KSERVER_MAX_PIPELINE per connection). Only parts whose bytes live in the job's
 * own copy of the request wait (not a converted legacy set, which sits in a shared
 * scratch buffer). A part whose partition already has a part waiting waits behind it
 * whatever the buffers, so the log keeps request order (partition_waiting). */
#define PRODUCE_BUFFER_WAIT_MS 5000u

static _Thread_local struct log_ratelimit buffer_wait_rl = LOG_RATELIMIT_INIT(5, 1);

/* Park p on the owner's FIFO (or answer KAFKA_STORAGE_ERROR past its deadline). */
static void park_for_buffers(struct router *r, struct data_part *p) {
    if (p->buffer_wait_deadline_ms == 0) {
        p->buffer_wait_deadline_ms = r->now_ms + PRODUCE_BUFFER_WAIT_MS;
        if (log_ratelimit_ok(&buffer_wait_rl))
            log_info("produce_waiting_for_buffers", "partition=%d", p->partition);
    } else if (r->now_ms >= p->buffer_wait_deadline_ms) {
        log_warn("produce_no_buffers", "partition=%d waited_ms=%u", p->partition,
                 PRODUCE_BUFFER_WAIT_MS);
        p->error = ERR_KAFKA_STORAGE_ERROR;
        return;
    }
    p->next_buffer_wait = NULL;
    if (r->buffer_wait_last) r->buffer_wait_last->next_buffer_wait = p;
    else r->buffer_wait_first = p;
    r->buffer_wait_last = p;
    p->job->owner_pending[r->cfg.shard_id]++; /* the job waits for this part */
}

static bool buffer_wait(struct router *r, struct data_part *p, struct plog *log,
                        const uint8_t *buf, size_t len) {
    struct record_batch_header h;
    if (record_batch_header_parse(buf, len, &h) != RECORD_OK) return false;
    if (plog_reserve(log, (uint32_t)record_batch_size_bytes(&h)) != -ENOBUFS) return false;
    if (buf != p->records.ptr) return false; /* answered KAFKA_STORAGE_ERROR by the append */
    park_for_buffers(r, p);
    return true;
}

/* Whether an earlier part of p's partition waits for buffers: then p waits behind it,
 * so pipelined requests of a connection (an idempotent producer's sequences) reach the
 * log in request order even under backpressure. The walk is bounded by the jobs. */
static bool partition_waiting(const struct router *r, const struct data_part *p) {
    for (const struct data_part *w = r->buffer_wait_first; w; w = w->next_buffer_wait)
        if (w->partition == p->partition && memcmp(w->id, p->id, 16) == 0) return true;
    return false;
}

unsigned router_produce_retry(struct router *r) {
    struct data_part *list = r->buffer_wait_first;
    r->buffer_wait_first = r->buffer_wait_last = NULL;
    unsigned work = 0;
    while (list) {
        struct data_part *p = list;
        list = p->next_buffer_wait;
        struct plog *log = router_ptable_find(r, p->id, p->partition);
        struct topic_info t;
        if (!log || !r->cfg.topics.find_id(r->cfg.topics.reader, p->id, &t))
            p->error = ERR_UNKNOWN_TOPIC_OR_PARTITION; /* deleted while it waited */
        else
            router_produce_part(r, p, &t, log); /* may wait again: back on the list */
        router_owner_op_done(r, p->job);      /* the wait's own count */
        work++;
    }
    return work;
}

void router_produce_part(struct router *r, struct data_part *p, const struct topic_info *t,
                         struct plog *log) {
    const uint8_t *buf = p->records.ptr;
    size_t len = p->records.len > 0 ? (size_t)p->records.len : 0;
    if (len < 17) {
        p->error = ERR_CORRUPT_MESSAGE;
        return;
    }
    if (partition_waiting(r, p)) {
        park_for_buffers(r, p);
        return;
    }
    if (buf[16] < 2 && p->job->version >= 3) { /* v3+ carries record batches only */
        p->error = p->job->version >= 8 ? ERR_INVALID_RECORD : ERR_CORRUPT_MESSAGE;
        return;
    }
    if (buf[16] < 2) { /* a legacy message set (Produce v0-v2): convert to one v2 batch */
        struct legacy_convert_buffers bufs = {r->convert_decompress, CONVERT_BYTES,
                                              r->convert_records, CONVERT_BYTES};
        size_t out_len = 0;
        enum record_error e = legacy_set_to_batch(&r->codecs, buf, len, RECORD_CODEC_NONE,
                                                  &bufs, r->convert_out, CONVERT_BYTES,
                                                  &out_len);
        if (e != RECORD_OK) {
            p->error = record_error_kafka_code(e);
            return;
        }
        buf = r->convert_out;
        len = out_len;
    }
    bool transactional = false;
    int batches = count_v2_batches(r, buf, len, t->max_message_bytes, &transactional);
    if (batches < 0) {
        p->error = (int16_t)-batches;
        if (p->error == ERR_INVALID_RECORD && p->job->version < 8) p->error = ERR_CORRUPT_MESSAGE;
        return;
    }
    if (transactional && !p->job->has_transactional_id) { /* as Kafka's KafkaApis answers */
        p->error = ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return;
    }
    if (log->failed) {
        p->error = ERR_KAFKA_STORAGE_ERROR;
        return;
    }
    if (check_idempotent(r, p, log, buf, len, batches)) return;
    if (buffer_wait(r, p, log, buf, len)) return;
    int64_t now_ms = wall_clock_ms();
    size_t off = 0;
    uint8_t *scratch = r->convert_out;
    for (int i = 0; i < batches; i++) {
        struct record_batch_header h;
        record_batch_header_parse(buf + off, len - off, &h);
        size_t size = record_batch_size_bytes(&h);
        const uint8_t *batch = buf + off;
        if (t->log_append_time) { /* rewrite a copy: the request bytes stay as they came */
            if (batch != scratch) memmove(scratch, batch, size);
            record_batch_set_log_append_time(scratch, now_ms);
            batch = scratch;
            p->log_append_time_ms = now_ms;
        }
        bool last = i == batches - 1;
        if (last) {
            p->append.done = append_done;
            p->append.durable = p->job->acks == -1;
        }
        int64_t base = plog_append(log, batch, (uint32_t)size, p->job->acks == -1,
                                   last ? &p->append : NULL);
        if (base < 0) {
            /* -EMSGSIZE: the batch does not fit in one storage chunk (sluice.storage.chunk.bytes
             * less 4 KiB; the default takes 1 MiB batches). -ENOBUFS (no
             * chunk free) is answered KAFKA_STORAGE_ERROR, which producers retry. */
            p->error = base == -EMSGSIZE ? ERR_MESSAGE_TOO_LARGE : ERR_KAFKA_STORAGE_ERROR;
            if (base == -ENOBUFS) log_warn("produce_no_buffers", "partition=%d", p->partition);
            return;
        }
        if (i == 0) p->base_offset = base;
        if (last) p->job->owner_pending[r->cfg.shard_id]++;
        off += size;
    }
    stats_topic_in(t->name, (uint32_t)strlen(t->name), len, stats_count_records(buf, len));
    p->log_start = plog_log_start_offset(log);
}


int router_handle_produce(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
    struct data_job *job = router_job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_produce_request req;
    int rc = kafka_produce_request_decode(&rd, hdr->request_api_version, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topic_data_count; i++)
        count += (uint32_t)(req.topic_data[i].partition_data_count > 0
                                ? req.topic_data[i].partition_data_count : 0);
    if (rc != 0 || router_job_alloc_parts(job, count) != 0) {
        router_job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->acks = req.acks;
    job->has_transactional_id = req.transactional_id.len > 0;
    job->topic_count = (uint32_t)(req.topic_data_count > 0 ? req.topic_data_count : 0);
    uint32_t k = 0;
    for (int32_t i = 0; i < req.topic_data_count; i++) {
        const struct kafka_produce_request_topic_produce_data *td = &req.topic_data[i];
        for (int32_t j = 0; j < td->partition_data_count; j++, k++) {
            struct data_part *p = &job->parts[k];
            p->topic_index = (uint32_t)i;
            p->name = td->name;
            p->partition = td->partition_data[j].index;
            p->records = td->partition_data[j].records;
            p->base_offset = -1;
            p->log_append_time_ms = -1;
            p->log_start = -1;
            if (req.acks != 0 && req.acks != 1 && req.acks != -1) {
                p->error = ERR_INVALID_REQUIRED_ACKS;
                p->owner = -1;
                continue;
            }
            router_lookup_part(r, p, false);
        }
    }
    router_job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

int router_encode_produce(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_produce_response resp;
    kafka_produce_response_init(&resp, job->version);
    resp.responses = JOB_ARRAY(r, job->topic_count, resp.responses);
    struct kafka_produce_response_partition_produce_response *pr = JOB_ARRAY(r, job->part_count, pr);
    if (!resp.responses || !pr) return KAFKA_ERR_ARENA;
    resp.responses_count = (int32_t)job->topic_count;
    for (uint32_t i = 0; i < job->part_count; i++) {
        const struct data_part *p = &job->parts[i];
        struct kafka_produce_response_topic_produce_response *tr = &resp.responses[p->topic_index];
        tr->name = p->name;
        if (!tr->partition_responses) tr->partition_responses = &pr[i];
        struct kafka_produce_response_partition_produce_response *x =
            &tr->partition_responses[tr->partition_responses_count++];
        memset(x, 0, sizeof *x);
        x->index = p->partition;
        x->error_code = p->error;
        x->base_offset = p->error ? -1 : p->base_offset;
        x->log_append_time_ms = p->error ? -1 : p->log_append_time_ms;
        x->log_start_offset = p->error ? -1 : p->log_start;
        x->record_errors = NULL;
        x->record_errors_count = 0;
        x->error_message = kafka_str_from_cstr(NULL);
        x->current_leader.leader_id = -1;
        x->current_leader.leader_epoch = -1;
    }
    return kafka_produce_response_encode(w, job->version, &resp);
}
