/* router.c - request routing on a shard: partitions to their owners, control-plane
 * requests to the control thread, and the answers back to the connection.
 *
 * Deferral. A handler that cannot answer at once copies the request frame into a job,
 * returns HANDLER_DEFERRED and keeps the connection's conn_token; the connection stops
 * reading (Kafka mutes a channel while a request is in progress), so responses leave in
 * request order with no reordering buffer. When the job is done the router calls
 * kserver_complete() with a function that encodes the response body from the job.
 * Each connection has at most one job, which bounds jobs by max.connections.
 *
 * Control-plane round trip (CreateTopics, DeleteTopics): struct control_job carries the
 * request body to control (ROUTER_MSG_CONTROL_REQ); control decodes it, changes the
 * catalogue, publishes a new snapshot, encodes the response body and sends the job back
 * (ROUTER_MSG_CONTROL_REPLY). Adding a control API (CreatePartitions, AlterConfigs, ...)
 * = a row `{KEY, 0, -1, router_handle_control}` in handlers.c plus a case in
 * control/control_plane.c that decodes, acts and encodes. Metadata auto-creation sends
 * ROUTER_MSG_AUTO_CREATE and answers LEADER_NOT_AVAILABLE at once, as Kafka does.
 *
 * Partition requests (Produce, Fetch, ListOffsets, DeleteRecords, OffsetForLeaderEpoch):
 * the connection's shard (the origin)
 * decodes the request from its copy, makes one struct data_part per partition, looks
 * each up in its catalogue snapshot and sends the job once to every owner shard
 * (ROUTER_MSG_PART_REQ; the origin itself is served without a message). An owner works
 * only on its own parts (appends, reads, lookups) and answers ROUTER_MSG_PART_DONE when
 * its last async operation completes; the origin assembles the response when every
 * owner has answered. Parts of different owners are written by different threads only,
 * and the ring's release/acquire orders them with the origin. Adding a partition API
 * (DeleteRecords, OffsetForLeaderEpoch, ...) = a handler that decodes into parts (like
 * router_handle_list_offsets), a case in owner_process, a case in job_finish with its
 * encode function, and a row in handlers.c.
 *
 * Partition table. On a new snapshot the shard rebuilds its table of open logs
 * (topic id, partition) -> plog: logs it owns and has open are carried over, new ones
 * are opened (plog_open: blocking file I/O, at startup and when a topic is created --
 * a known, short stall), logs of deleted topics are closed and their directories
 * removed (also blocking, rare). Only the loop's refresh closes anything: plog_close
 * waits on the ring and runs other completions, so a refresh from inside a callback
 * (refresh_open_only) only opens.
 *
 * Fetch long poll: a fetch with less than min_bytes and max_wait_ms > 0 is parked on its
 * origin; each tick compares the owners' appends_done counters with what it saw when it
 * read, and re-reads when an owner appended, or answers at the deadline. A wake from
 * another shard is seen when the origin's loop turns: while it has parked fetches, a shard
 * sleeps at most ROUTER_PARKED_POLL_MS (router_wait_ms), so that wake costs <= 2 ms.
 *
 * Bounds: a full mesh ring is retried from the outbox (sized for every job's messages),
 * parts per request <= ROUTER_MAX_PARTS, open partitions <= ROUTER_PTABLE_SLOTS / 2.
 * A job holds a copy of its request (at most socket.request.max.bytes; one job per
 * connection). Fetch data is copied from the log's fragments into the job (no zero copy
 * yet). ListOffsets answers timestamp -1 (the offset is right; the record's timestamp
 * would need a read). DeleteRecords answers once the new log start is set in memory (its
 * checkpoint is written through the ring, as Kafka checkpoints it); OffsetForLeaderEpoch
 * knows one epoch, 0, which ends at the log end. DescribeLogDirs is a partition request
 * too: each owner reports plog_size_bytes of its parts; a request for every topic is
 * bounded by ROUTER_MAX_PARTS like any other (beyond it the connection closes). */
#include "dataplane/router.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "hw/log.h"
#include "storage/record/batch.h"
#include "storage/record/legacy.h"
#include "storage/record/records.h"

#define ERR_NONE 0
#define ERR_OFFSET_OUT_OF_RANGE 1
#define ERR_CORRUPT_MESSAGE 2
#define ERR_UNKNOWN_TOPIC_OR_PARTITION 3
#define ERR_LEADER_NOT_AVAILABLE 5
#define ERR_MESSAGE_TOO_LARGE 10
#define ERR_INVALID_TOPIC 17
#define ERR_RECORD_LIST_TOO_LARGE 18
#define ERR_INVALID_REQUIRED_ACKS 21
#define ERR_KAFKA_STORAGE_ERROR 56
#define ERR_UNKNOWN_SERVER_ERROR (-1)
#define ERR_UNKNOWN_TOPIC_ID 100
#define ERR_INVALID_RECORD 87
#define ERR_FENCED_LEADER_EPOCH 74
#define ERR_UNKNOWN_LEADER_EPOCH 75
#define DELETE_RECORDS_HIGH_WATERMARK (-1)
#define LEADER_EPOCH 0             /* this broker never changes leader: epoch 0 forever */

#define ROUTER_ARENA_BYTES (4u << 20)
#define CHECK_SCRATCH_BYTES (8u << 20) /* a produced batch's records, decompressed; above
                                          this it is refused with MESSAGE_TOO_LARGE */
#define CONVERT_BYTES (2u << 20)   /* a converted legacy set; larger ones are refused */

struct data_part {
    struct data_job *job;
    uint32_t topic_index;          /* in the request */
    struct kafka_str name;
    uint8_t id[16];
    int32_t partition;
    int owner;                     /* -1: unknown topic/partition */
    int16_t error;
    int64_t log_start, high_watermark;
    /* produce */
    struct kafka_bytes records;
    int64_t base_offset, log_append_time_ms;
    struct plog_append_req append;
    /* fetch */
    int64_t fetch_offset;
    int32_t max_bytes;
    uint8_t *data;
    uint32_t data_bytes;
    struct part_read *read;
    /* list offsets; delete records (offset: requested, then the low watermark) */
    int64_t timestamp, offset;
    /* offset for leader epoch */
    int32_t leader_epoch, current_leader_epoch;
};

/* A read in flight for one part. */
struct part_read {
    struct plog_read_req req;
    struct data_part *part;
    struct router *owner;
};

struct data_job {
    struct router *origin;
    struct conn_token token;
    int16_t api_key, version;
    uint8_t *frame;                /* a copy of the request body */
    uint32_t frame_bytes;
    struct data_part *parts;
    uint32_t part_count, topic_count;
    uint32_t owners_waiting;
    uint32_t *owner_pending;       /* per shard: async operations still running */
    int16_t acks;
    int32_t max_wait_ms, min_bytes, max_bytes;
    uint64_t deadline_ms;
    uint64_t *seen_appends;        /* per shard, when parked */
    struct data_job *next_parked;
    /* the owner's routers, so an owner can find itself */
    struct router **routers;
};

/* Every shard's router, for the appends_done counters parked fetches read. Set by each
 * shard during its setup; NULL until then (a fetch can arrive at shard 0 before shard 1
 * has started). One broker per process. */
static struct router *_Atomic all_routers[MESH_MAX_SHARDS];

/* ---- outbox ------------------------------------------------------------------------ */

static void router_send(struct router *r, int to, struct shard_msg *msg) {
    if (r->outbox_count == 0 && mesh_send(r->cfg.mesh, r->cfg.shard_id, to, msg)) return;
    assert(r->outbox_count < r->outbox_cap); /* sized for every job's messages */
    struct outbox_entry *e = &r->outbox[(r->outbox_head + r->outbox_count) % r->outbox_cap];
    e->to = to;
    e->msg = *msg;
    r->outbox_count++;
}

static unsigned outbox_retry(struct router *r) {
    unsigned sent = 0;
    while (r->outbox_count > 0) {
        struct outbox_entry *e = &r->outbox[r->outbox_head];
        if (!mesh_send(r->cfg.mesh, r->cfg.shard_id, e->to, &e->msg)) break;
        r->outbox_head = (r->outbox_head + 1) % r->outbox_cap;
        r->outbox_count--;
        sent++;
    }
    return sent;
}

/* ---- partition table --------------------------------------------------------------- */

static uint32_t ptable_hash(const uint8_t id[16], int32_t partition) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) h = (h ^ id[i]) * 16777619u;
    h = (h ^ (uint32_t)partition) * 16777619u;
    return h & (ROUTER_PTABLE_SLOTS - 1u);
}

static struct ptable_entry *ptable_slot(struct ptable_entry *t, const uint8_t id[16],
                                        int32_t partition, bool for_insert) {
    uint32_t i = ptable_hash(id, partition);
    for (uint32_t n = 0; n < ROUTER_PTABLE_SLOTS; n++, i = (i + 1) & (ROUTER_PTABLE_SLOTS - 1)) {
        struct ptable_entry *e = &t[i];
        if (!e->used) return for_insert ? e : NULL;
        if (e->partition == partition && memcmp(e->id, id, 16) == 0) return e;
    }
    return NULL;
}

static struct plog *ptable_find(struct router *r, const uint8_t id[16], int32_t partition) {
    struct ptable_entry *e = ptable_slot(r->table, id, partition, false);
    return e ? e->log : NULL;
}

/* Remove <data_dir>/<topic>-<partition> and its files (blocking; topic deletion only). */
static void remove_partition_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    int fd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        unlinkat(fd, de->d_name, 0);
    }
    closedir(d);
    if (rmdir(dir) != 0) log_warn("partition_dir_remove_failed", "dir=%s err=%s", dir,
                                  strerror(errno));
}

static void open_owned(struct router *r, const struct topic_info *t) {
    for (int32_t p = 0; p < t->partition_count; p++) {
        if (t->partition_shard[p] != r->cfg.shard_id) continue;
        struct ptable_entry *old = ptable_slot(r->table, t->id, p, false);
        struct ptable_entry *e = ptable_slot(r->spare, t->id, p, true);
        assert(e && !e->used);
        memcpy(e->id, t->id, 16);
        e->partition = p;
        e->used = true;
        if (old) {
            e->log = old->log;
            old->log = NULL; /* carried over */
            continue;
        }
        if (r->open_count >= ROUTER_PTABLE_SLOTS / 2) {
            log_error("partition_table_full", "topic=%s partition=%d", t->name, p);
            e->log = NULL;
            continue;
        }
        int err = 0;
        e->log = plog_open(&r->storage, r->cfg.data_dir, t->name, p, &t->log, &err);
        if (!e->log) log_error("partition_open_failed", "topic=%s partition=%d err=%s",
                               t->name, p, strerror(-err));
        else r->open_count++;
    }
}

/* Close (first, so a topic deleted and created again under the same name never reopens
 * the old directory) the logs the new snapshot no longer places here; remove the
 * directories of deleted topics. */
static void close_unowned(struct router *r) {
    for (uint32_t i = 0; i < ROUTER_PTABLE_SLOTS; i++) {
        struct ptable_entry *e = &r->table[i];
        if (!e->used || !e->log) continue;
        struct topic_info t;
        bool exists = r->cfg.topics.find_id(r->cfg.topics.reader, e->id, &t);
        if (exists && e->partition < t.partition_count &&
            t.partition_shard[e->partition] == r->cfg.shard_id)
            continue;
        char dir[PLOG_PATH_BYTES];
        snprintf(dir, sizeof dir, "%s", e->log->dir);
        plog_close(e->log); /* drains its I/O: callbacks of in-flight work run here */
        e->log = NULL;
        r->open_count--;
        if (!exists) remove_partition_dir(dir);
        log_info("partition_closed", "dir=%s deleted=%d", dir, !exists);
    }
}

/* Rebuild the table for the snapshot just loaded: keep what stays ours, open the new. */
static void ptable_sync(struct router *r) {
    close_unowned(r);
    memset(r->spare, 0, ROUTER_PTABLE_SLOTS * sizeof r->spare[0]);
    size_t n = r->cfg.topics.count(r->cfg.topics.reader);
    for (size_t i = 0; i < n; i++) {
        struct topic_info t;
        if (r->cfg.topics.at(r->cfg.topics.reader, i, &t)) open_owned(r, &t);
    }
    for (uint32_t i = 0; i < ROUTER_PTABLE_SLOTS; i++)
        assert(!r->table[i].used || !r->table[i].log); /* every kept log was carried */
    struct ptable_entry *t = r->table;
    r->table = r->spare;
    r->spare = t;
}

void router_refresh(struct router *r) {
    uint64_t epoch = r->cfg.topics.refresh(r->cfg.topics.reader);
    if (epoch == r->epoch) return;
    r->epoch = epoch;
    ptable_sync(r);
}

/* From inside a callback (a mesh message, a handler): take the newest snapshot and open
 * the partitions it newly places here, but close nothing -- plog_close waits on the ring
 * and runs other completions, which must not re-enter a connection mid-request. The next
 * loop turn's router_refresh does the full sync (r->epoch is left behind on purpose). */
static void refresh_open_only(struct router *r) {
    uint64_t epoch = r->cfg.topics.refresh(r->cfg.topics.reader);
    if (epoch == r->epoch) return;
    /* A deleted topic still open here could share its directory name with a new one:
     * leave everything to the loop's full sync (the client retries UNKNOWN_TOPIC...). */
    for (uint32_t i = 0; i < ROUTER_PTABLE_SLOTS; i++) {
        struct topic_info gone;
        const struct ptable_entry *e = &r->table[i];
        if (e->used && e->log && !r->cfg.topics.find_id(r->cfg.topics.reader, e->id, &gone))
            return;
    }
    size_t n = r->cfg.topics.count(r->cfg.topics.reader);
    for (size_t i = 0; i < n; i++) {
        struct topic_info t;
        if (!r->cfg.topics.at(r->cfg.topics.reader, i, &t)) continue;
        for (int32_t p = 0; p < t.partition_count; p++) {
            if (t.partition_shard[p] != r->cfg.shard_id) continue;
            struct ptable_entry *e = ptable_slot(r->table, t.id, p, true);
            if (!e || e->used || r->open_count >= ROUTER_PTABLE_SLOTS / 2) continue;
            int err = 0;
            struct plog *log = plog_open(&r->storage, r->cfg.data_dir, t.name, p, &t.log, &err);
            if (!log) {
                log_error("partition_open_failed", "topic=%s partition=%d err=%s", t.name, p,
                          strerror(-err));
                continue;
            }
            memcpy(e->id, t.id, 16);
            e->partition = p;
            e->used = true;
            e->log = log;
            r->open_count++;
        }
    }
}

static void job_free(struct data_job *job);

/* ---- setup ------------------------------------------------------------------------- */

int router_init(struct router *r, const struct router_config *cfg, char *err, size_t err_bytes) {
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    r->shard_count = cfg->mesh->shard_count;
    r->outbox_cap = (cfg->max_conns + 2u) * (uint32_t)(r->shard_count + 1);
    r->table = calloc(ROUTER_PTABLE_SLOTS, sizeof r->table[0]);
    r->spare = calloc(ROUTER_PTABLE_SLOTS, sizeof r->spare[0]);
    r->outbox = calloc(r->outbox_cap, sizeof r->outbox[0]);
    r->arena_mem = malloc(ROUTER_ARENA_BYTES);
    r->convert_out = malloc(CONVERT_BYTES);
    r->convert_decompress = malloc(CONVERT_BYTES);
    r->convert_records = malloc(CONVERT_BYTES);
    r->check_scratch = malloc(CHECK_SCRATCH_BYTES);
    if (!r->table || !r->spare || !r->outbox || !r->arena_mem || !r->convert_out ||
        !r->convert_decompress || !r->convert_records || !r->check_scratch) {
        snprintf(err, err_bytes, "router: out of memory");
        return -1;
    }
    kafka_arena_init(&r->arena, r->arena_mem, ROUTER_ARENA_BYTES);
    if (record_codecs_init(&r->codecs) != RECORD_OK) {
        snprintf(err, err_bytes, "router: codecs");
        return -1;
    }
    int rc = storage_shard_init(&r->storage, cfg->ring, cfg->pool, cfg->cache_bytes);
    if (rc != 0) {
        snprintf(err, err_bytes, "storage shard: %s", strerror(-rc));
        return -1;
    }
    r->storage_ready = true;
    atomic_store_explicit(&all_routers[cfg->shard_id], r, memory_order_release);
    router_refresh(r); /* opens the partitions this shard owns (blocking, at startup) */
    return 0;
}

void router_attach(struct router *r, struct kserver *ks) { r->ks = ks; }

void router_destroy(struct router *r) {
    if (r->cfg.mesh) atomic_store_explicit(&all_routers[r->cfg.shard_id], NULL,
                                           memory_order_release);
    if (r->table) {
        for (uint32_t i = 0; i < ROUTER_PTABLE_SLOTS; i++)
            if (r->table[i].used && r->table[i].log) plog_close(r->table[i].log);
    }
    /* Parked and answered jobs have heard from every owner: free them. (A job still
     * waiting for another shard at shutdown is left to the process exit.) */
    struct data_job *lists[2] = {r->parked, r->ready};
    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct data_job *job = lists[i];
            lists[i] = job->next_parked;
            job_free(job);
        }
    }
    r->parked = r->ready = NULL;
    if (r->storage_ready) storage_shard_destroy(&r->storage);
    record_codecs_destroy(&r->codecs);
    free(r->table);
    free(r->spare);
    free(r->outbox);
    free(r->arena_mem);
    free(r->convert_out);
    free(r->convert_decompress);
    free(r->convert_records);
    free(r->check_scratch);
    memset(r, 0, sizeof *r);
}

/* ---- jobs -------------------------------------------------------------------------- */

static struct data_job *job_new(struct router *r, const struct handler_ctx *ctx,
                                const struct kafka_reader *body) {
    struct data_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    size_t bytes = (size_t)(body->end - body->pos);
    job->frame = malloc(bytes ? bytes : 1);
    job->owner_pending = calloc((size_t)r->shard_count, sizeof job->owner_pending[0]);
    job->seen_appends = calloc((size_t)r->shard_count, sizeof job->seen_appends[0]);
    if (!job->frame || !job->owner_pending || !job->seen_appends) {
        free(job->frame);
        free(job->owner_pending);
        free(job->seen_appends);
        free(job);
        return NULL;
    }
    memcpy(job->frame, body->pos, bytes);
    job->frame_bytes = (uint32_t)bytes;
    job->origin = r;
    job->token = ctx->token;
    job->api_key = ctx->hdr->request_api_key;
    job->version = ctx->hdr->request_api_version;
    return job;
}

static void job_free(struct data_job *job) {
    for (uint32_t i = 0; i < job->part_count; i++) free(job->parts[i].data);
    free(job->parts);
    free(job->frame);
    free(job->owner_pending);
    free(job->seen_appends);
    free(job);
}

static struct router *self_router(int shard) {
    assert(shard >= 0 && shard < MESH_MAX_SHARDS);
    struct router *r = atomic_load_explicit(&all_routers[shard], memory_order_acquire);
    assert(r);
    return r;
}

/* Appends completed on shard s so far (0 while it is starting). */
static uint64_t appends_seen(int shard) {
    struct router *r = atomic_load_explicit(&all_routers[shard], memory_order_acquire);
    return r ? atomic_load_explicit(&r->appends_done, memory_order_acquire) : 0;
}

static void owner_process(struct router *r, struct data_job *job);
static void origin_part_done(struct router *r, struct data_job *job);

/* Send the job to every owner that has parts (the origin serves its own directly). */
static void job_dispatch(struct router *r, struct data_job *job) {
    bool has[MESH_MAX_SHARDS] = {false};
    for (uint32_t i = 0; i < job->part_count; i++)
        if (job->parts[i].owner >= 0) has[job->parts[i].owner] = true;
    job->owners_waiting = 1; /* guard while dispatching */
    for (int s = 0; s < r->shard_count; s++) {
        if (!has[s]) continue;
        job->owners_waiting++;
        job->seen_appends[s] = appends_seen(s);
        if (s == r->cfg.shard_id) continue;
        struct shard_msg m = {.type = ROUTER_MSG_PART_REQ, .arg32 = (uint32_t)s, .ptr = job};
        router_send(r, s, &m);
    }
    if (has[r->cfg.shard_id]) owner_process(r, job);
    origin_part_done(r, job); /* drops the guard */
}

/* ---- owner side -------------------------------------------------------------------- */

static void owner_op_done(struct router *r, struct data_job *job) {
    uint32_t *pending = &job->owner_pending[r->cfg.shard_id];
    assert(*pending > 0);
    if (--*pending > 0) return;
    if (job->origin == r) {
        origin_part_done(r, job);
        return;
    }
    struct shard_msg m = {.type = ROUTER_MSG_PART_DONE, .ptr = job};
    router_send(r, job->origin->cfg.shard_id, &m);
}

static void append_done(struct plog_append_req *req, int status) {
    struct data_part *p = (struct data_part *)((char *)req - offsetof(struct data_part, append));
    struct router *r = self_router(p->owner);
    if (status < 0) p->error = ERR_KAFKA_STORAGE_ERROR;
    atomic_fetch_add_explicit(&r->appends_done, 1, memory_order_release);
    owner_op_done(r, p->job);
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
                            int64_t max_message_bytes) {
    size_t off = 0;
    int n = 0;
    while (off < len) {
        struct record_batch_header h;
        enum record_error e = record_batch_check_records(buf + off, len - off, &r->codecs,
                                                         r->check_scratch, CHECK_SCRATCH_BYTES,
                                                         RECORD_ITER_STRICT_OFFSETS, &h);
        if (e != RECORD_OK) return -record_error_kafka_code(e);
        size_t size = record_batch_size_bytes(&h);
        if ((int64_t)size > max_message_bytes) return -ERR_MESSAGE_TOO_LARGE;
        off += size;
        n++;
    }
    return n > 0 ? n : -ERR_CORRUPT_MESSAGE;
}

static void produce_part(struct router *r, struct data_part *p, const struct topic_info *t,
                         struct plog *log) {
    const uint8_t *buf = p->records.ptr;
    size_t len = p->records.len > 0 ? (size_t)p->records.len : 0;
    if (len < 17) {
        p->error = ERR_CORRUPT_MESSAGE;
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
    int batches = count_v2_batches(r, buf, len, t->max_message_bytes);
    if (batches < 0) {
        p->error = (int16_t)-batches;
        return;
    }
    if (log->failed) {
        p->error = ERR_KAFKA_STORAGE_ERROR;
        return;
    }
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
    p->log_start = plog_log_start_offset(log);
}

static void read_done(struct plog_read_req *req, int status);

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
        } else {
            p->error = ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    plog_read_release(log, rq);
    free(p->read);
    p->read = NULL;
}

static void fetch_part(struct router *r, struct data_part *p, struct plog *log) {
    p->log_start = plog_log_start_offset(log);
    p->high_watermark = plog_high_watermark(log);
    if (p->fetch_offset < p->log_start || p->fetch_offset > p->high_watermark) {
        p->error = ERR_OFFSET_OUT_OF_RANGE;
        return;
    }
    if (p->fetch_offset == p->high_watermark || p->max_bytes <= 0) return;
    p->read = calloc(1, sizeof *p->read);
    if (!p->read) {
        p->error = ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    p->read->part = p;
    p->read->owner = r;
    p->read->req.offset = p->fetch_offset;
    p->read->req.max_bytes = (uint32_t)p->max_bytes;
    p->read->req.done = read_done;
    int rc = plog_read(log, &p->read->req);
    if (rc == 1) {
        fetch_copy(p, log);
    } else if (rc == 0) {
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
        fetch_copy(p, req->log);
    }
    owner_op_done(r, p->job);
}

static void list_offsets_part(struct data_part *p, struct plog *log) {
    p->log_start = plog_log_start_offset(log);
    p->high_watermark = plog_high_watermark(log);
    if (p->timestamp == -2) {
        p->offset = p->log_start;
    } else if (p->timestamp == -1) {
        p->offset = p->high_watermark;
    } else if (p->timestamp >= 0) {
        int64_t off = plog_offset_for_timestamp(log, p->timestamp);
        p->offset = off >= p->high_watermark ? -1 : off;
    } else {
        p->offset = -1;
        p->error = ERR_UNKNOWN_SERVER_ERROR;
    }
}

/* DeleteRecords: -1 means the high watermark; beyond it (or another negative) is
 * OFFSET_OUT_OF_RANGE; below the log start changes nothing. Answers the low watermark. */
static void delete_records_part(struct data_part *p, struct plog *log) {
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
static void leader_epoch_part(struct data_part *p, struct plog *log) {
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

static void owner_process(struct router *r, struct data_job *job) {
    uint32_t *pending = &job->owner_pending[r->cfg.shard_id];
    *pending = 1; /* guard */
    for (uint32_t i = 0; i < job->part_count; i++) {
        struct data_part *p = &job->parts[i];
        if (p->owner != r->cfg.shard_id || p->error != ERR_NONE) continue;
        struct plog *log = ptable_find(r, p->id, p->partition);
        struct topic_info t;
        if (!log) { /* a snapshot newer than ours may hold it */
            refresh_open_only(r);
            log = ptable_find(r, p->id, p->partition);
        }
        if (!log || !r->cfg.topics.find_id(r->cfg.topics.reader, p->id, &t)) {
            p->error = ERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (job->api_key == KAFKA_API_PRODUCE) produce_part(r, p, &t, log);
        else if (job->api_key == KAFKA_API_FETCH) fetch_part(r, p, log);
        else if (job->api_key == KAFKA_API_DELETE_RECORDS) delete_records_part(p, log);
        else if (job->api_key == KAFKA_API_OFFSET_FOR_LEADER_EPOCH) leader_epoch_part(p, log);
        else if (job->api_key == KAFKA_API_DESCRIBE_LOG_DIRS)
            p->offset = (int64_t)plog_size_bytes(log);
        else list_offsets_part(p, log);
    }
    owner_op_done(r, job);
}

/* ---- origin side ------------------------------------------------------------------- */

/* The result arrays of a split request's answer (one per topic, one per part), zeroed,
 * in the router's arena; at least one element so an empty answer still gets a valid
 * pointer. NULL when the arena is full (the encoder then answers KAFKA_ERR_ARENA). */
static void *job_array(struct router *r, uint32_t count, size_t elem_bytes, size_t align) {
    size_t n = count ? count : 1;
    void *p = kafka_arena_alloc(&r->arena, n, elem_bytes, align);
    if (p) memset(p, 0, n * elem_bytes);
    return p;
}
#define JOB_ARRAY(r, count, ptr) \
    job_array((r), (count), sizeof(*(ptr)), _Alignof(__typeof__(*(ptr))))

static int encode_produce(void *arg, struct kafka_writer *w);
static int encode_raw(void *arg, struct kafka_writer *w);
static int encode_fetch(void *arg, struct kafka_writer *w);
static int encode_list_offsets(void *arg, struct kafka_writer *w);
static int encode_delete_records(void *arg, struct kafka_writer *w);
static int encode_leader_epoch(void *arg, struct kafka_writer *w);
static int encode_log_dirs(void *arg, struct kafka_writer *w);

static uint32_t fetch_bytes(const struct data_job *job) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < job->part_count; i++) n += job->parts[i].data_bytes;
    return n;
}

static bool fetch_has_error(const struct data_job *job) {
    for (uint32_t i = 0; i < job->part_count; i++)
        if (job->parts[i].error != ERR_NONE) return true;
    return false;
}

static void job_finish(struct router *r, struct data_job *job) {
    response_body_fn fn;
    switch (job->api_key) {
    case KAFKA_API_PRODUCE: fn = encode_produce; break;
    case KAFKA_API_FETCH: fn = encode_fetch; break;
    case KAFKA_API_DELETE_RECORDS: fn = encode_delete_records; break;
    case KAFKA_API_OFFSET_FOR_LEADER_EPOCH: fn = encode_leader_epoch; break;
    case KAFKA_API_DESCRIBE_LOG_DIRS: fn = encode_log_dirs; break;
    default: fn = encode_list_offsets;
    }
    if (job->api_key == KAFKA_API_PRODUCE && job->acks == 0) fn = NULL;
    kserver_complete(r->ks, job->token, fn, job);
    job_free(job);
}

static void origin_part_done(struct router *r, struct data_job *job) {
    assert(job->origin == r && job->owners_waiting > 0);
    if (--job->owners_waiting > 0) return;
    if (job->api_key == KAFKA_API_FETCH && job->max_wait_ms > 0 &&
        fetch_bytes(job) < (uint32_t)(job->min_bytes > 0 ? job->min_bytes : 1) &&
        !fetch_has_error(job) && r->now_ms < job->deadline_ms) {
        job->next_parked = r->parked;
        r->parked = job;
        return;
    }
    /* Answered from the tick, never from inside the handler that made the job (the
     * connection marks itself deferred only after the handler returns). */
    job->next_parked = r->ready;
    r->ready = job;
}

/* A parked fetch re-reads when one of its owners appended since it read, or answers at
 * its deadline. */
static unsigned parked_tick(struct router *r) {
    unsigned work = 0;
    struct data_job **pp = &r->parked;
    while (*pp) {
        struct data_job *job = *pp;
        bool moved = false;
        for (uint32_t i = 0; i < job->part_count && !moved; i++) {
            int s = job->parts[i].owner;
            if (s < 0) continue;
            moved = appends_seen(s) != job->seen_appends[s];
        }
        bool expired = r->now_ms >= job->deadline_ms;
        if (!moved && !expired) {
            pp = &job->next_parked;
            continue;
        }
        *pp = job->next_parked;
        work++;
        if (expired) {
            job->next_parked = r->ready;
            r->ready = job;
            continue;
        }
        for (uint32_t i = 0; i < job->part_count; i++) {
            free(job->parts[i].data);
            job->parts[i].data = NULL;
            job->parts[i].data_bytes = 0;
        }
        job_dispatch(r, job);
    }
    return work;
}

unsigned router_tick(struct router *r, uint64_t now_ms) {
    r->now_ms = now_ms;
    unsigned work = storage_poll(&r->storage);
    work += outbox_retry(r);
    while (r->ready) {
        struct data_job *job = r->ready;
        r->ready = job->next_parked;
        job_finish(r, job);
        work++;
    }
    if (r->parked) work += parked_tick(r);
    return work;
}

uint32_t router_wait_ms(const struct router *r, uint32_t block_timeout_ms) {
    if (!r->parked) return block_timeout_ms;
    return block_timeout_ms < ROUTER_PARKED_POLL_MS ? block_timeout_ms : ROUTER_PARKED_POLL_MS;
}

void router_on_message(struct router *r, const struct shard_msg *msg) {
    switch (msg->type) {
    case ROUTER_MSG_PART_REQ:
        owner_process(r, msg->ptr);
        break;
    case ROUTER_MSG_PART_DONE:
        origin_part_done(r, msg->ptr);
        break;
    case ROUTER_MSG_CONTROL_REPLY: {
        struct control_job *cj = msg->ptr;
        refresh_open_only(r); /* the answer may name topics of a newer snapshot */
        struct kafka_bytes body = {cj->response, (int32_t)cj->response_bytes};
        if (cj->response) kserver_complete(r->ks, cj->token, encode_raw, &body);
        else kserver_fail(r->ks, cj->token); /* control could not decode or answer it */
        free(cj->request);
        free(cj->response);
        free(cj);
        break;
    }
    default:
        log_warn("router_unknown_message", "type=%d from=%d", msg->type, msg->from);
    }
}

/* A response body control already encoded. */
static int encode_raw(void *arg, struct kafka_writer *w) {
    const struct kafka_bytes *b = arg;
    kafka_write_raw(w, b->ptr, (size_t)b->len);
    return w->err;
}

/* ---- handlers ---------------------------------------------------------------------- */

static struct router *ctx_router(struct handler_ctx *ctx) {
    assert(ctx->owner);
    return ctx->owner;
}

int router_handle_control(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = ctx_router(ctx);
    struct control_job *cj = calloc(1, sizeof *cj);
    size_t bytes = (size_t)(body->end - body->pos);
    if (!cj || !(cj->request = malloc(bytes ? bytes : 1))) {
        free(cj);
        return KAFKA_ERR_ARENA;
    }
    memcpy(cj->request, body->pos, bytes);
    cj->request_bytes = (uint32_t)bytes;
    cj->origin_shard = r->cfg.shard_id;
    cj->token = ctx->token;
    cj->api_key = hdr->request_api_key;
    cj->api_version = hdr->request_api_version;
    struct shard_msg m = {.type = ROUTER_MSG_CONTROL_REQ, .ptr = cj};
    router_send(r, mesh_control_id(r->cfg.mesh), &m);
    return HANDLER_DEFERRED;
}

static bool lookup_part(struct router *r, struct data_part *p, bool by_id) {
    struct topic_info t;
    bool found = by_id ? r->cfg.topics.find_id(r->cfg.topics.reader, p->id, &t)
                       : r->cfg.topics.find(r->cfg.topics.reader, p->name.ptr,
                                            p->name.len > 0 ? (size_t)p->name.len : 0, &t);
    if (!found || p->partition < 0 || p->partition >= t.partition_count) {
        p->owner = -1;
        p->error = by_id && !found ? ERR_UNKNOWN_TOPIC_ID : ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return false;
    }
    memcpy(p->id, t.id, 16);
    if (by_id) p->name = kafka_str_from_cstr(t.name);
    p->owner = t.partition_shard[p->partition];
    return true;
}

static int job_alloc_parts(struct data_job *job, uint32_t count) {
    if (count > ROUTER_MAX_PARTS) return -1;
    job->parts = calloc(count ? count : 1, sizeof job->parts[0]);
    if (!job->parts) return -1;
    job->part_count = count;
    for (uint32_t i = 0; i < count; i++) job->parts[i].job = job;
    return 0;
}

int router_handle_produce(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = ctx_router(ctx);
    struct data_job *job = job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_produce_request req;
    int rc = kafka_produce_request_decode(&rd, hdr->request_api_version, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topic_data_count; i++)
        count += (uint32_t)(req.topic_data[i].partition_data_count > 0
                                ? req.topic_data[i].partition_data_count : 0);
    if (rc != 0 || job_alloc_parts(job, count) != 0) {
        job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->acks = req.acks;
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
            lookup_part(r, p, false);
        }
    }
    job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

static int encode_produce(void *arg, struct kafka_writer *w) {
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

int router_handle_fetch(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                        struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = ctx_router(ctx);
    struct data_job *job = job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_fetch_request req;
    int16_t v = hdr->request_api_version;
    int rc = kafka_fetch_request_decode(&rd, v, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || job_alloc_parts(job, count) != 0) {
        job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
    job->max_wait_ms = req.max_wait_ms;
    job->min_bytes = req.min_bytes;
    job->max_bytes = v >= 3 ? req.max_bytes : INT32_MAX;
    if (job->max_bytes <= 0) job->max_bytes = 1;
    job->deadline_ms = r->now_ms + (uint64_t)(req.max_wait_ms > 0 ? req.max_wait_ms : 0);
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
            p->log_start = -1;
            lookup_part(r, p, v >= 13);
        }
    }
    job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

static int encode_fetch(void *arg, struct kafka_writer *w) {
    struct data_job *job = arg;
    struct router *r = job->origin;
    kafka_arena_reset(&r->arena);
    struct kafka_fetch_response resp;
    kafka_fetch_response_init(&resp, job->version);
    resp.session_id = 0; /* no incremental sessions: every fetch is a full fetch */
    resp.responses = JOB_ARRAY(r, job->topic_count, resp.responses);
    struct kafka_fetch_response_partition_data *pd = JOB_ARRAY(r, job->part_count, pd);
    if (!resp.responses || !pd) return KAFKA_ERR_ARENA;
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
        x->last_stable_offset = p->high_watermark;
        x->log_start_offset = p->log_start;
        x->aborted_transactions = NULL;
        x->aborted_transactions_count = job->version >= 4 ? 0 : -1;
        x->preferred_read_replica = -1;
        /* Response max_bytes: the first data always goes (KIP-74), the rest while it fits. */
        bool fits = total == 0 || total + p->data_bytes <= (uint64_t)job->max_bytes;
        if (p->data && fits) {
            x->records = (struct kafka_bytes){p->data, (int32_t)p->data_bytes};
            total += p->data_bytes;
        } else {
            x->records = (struct kafka_bytes){(const uint8_t *)"", 0};
        }
    }
    return kafka_fetch_response_encode(w, job->version, &resp);
}

int router_handle_list_offsets(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                               struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = ctx_router(ctx);
    struct data_job *job = job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_list_offsets_request req;
    int rc = kafka_list_offsets_request_decode(&rd, hdr->request_api_version, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || job_alloc_parts(job, count) != 0) {
        job_free(job);
        return rc != 0 ? rc : KAFKA_ERR_LENGTH;
    }
    job->topic_count = (uint32_t)(req.topics_count > 0 ? req.topics_count : 0);
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
            lookup_part(r, p, false);
        }
    }
    job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

static int encode_list_offsets(void *arg, struct kafka_writer *w) {
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
        x->timestamp = -1;
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
    struct router *r = ctx_router(ctx);
    struct data_job *job = job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_delete_records_request req;
    int rc = kafka_delete_records_request_decode(&rd, hdr->request_api_version, &req, ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || job_alloc_parts(job, count) != 0) {
        job_free(job);
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
            lookup_part(r, p, false);
        }
    }
    job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

static int encode_delete_records(void *arg, struct kafka_writer *w) {
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
    struct router *r = ctx_router(ctx);
    struct data_job *job = job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_offset_for_leader_epoch_request req;
    int rc = kafka_offset_for_leader_epoch_request_decode(&rd, hdr->request_api_version, &req,
                                                          ctx->arena);
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || job_alloc_parts(job, count) != 0) {
        job_free(job);
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
            lookup_part(r, p, false);
        }
    }
    job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

static int encode_leader_epoch(void *arg, struct kafka_writer *w) {
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
    if (!names || job_alloc_parts(job, count) != 0) {
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
    struct router *r = ctx_router(ctx);
    struct data_job *job = job_new(r, ctx, body);
    if (!job) return KAFKA_ERR_ARENA;
    struct kafka_reader rd;
    kafka_reader_init(&rd, job->frame, job->frame_bytes);
    struct kafka_describe_log_dirs_request req;
    int rc = kafka_describe_log_dirs_request_decode(&rd, hdr->request_api_version, &req,
                                                    ctx->arena);
    if (rc == 0 && req.topics_count < 0) {
        rc = log_dirs_all_topics(r, job);
        if (rc != 0) {
            job_free(job);
            return rc;
        }
        job_dispatch(r, job);
        return HANDLER_DEFERRED;
    }
    uint32_t count = 0;
    for (int32_t i = 0; rc == 0 && i < req.topics_count; i++)
        count += (uint32_t)(req.topics[i].partitions_count > 0 ? req.topics[i].partitions_count : 0);
    if (rc != 0 || job_alloc_parts(job, count) != 0) {
        job_free(job);
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
            lookup_part(r, p, false);
        }
    }
    job_dispatch(r, job);
    return HANDLER_DEFERRED;
}

typedef struct kafka_describe_log_dirs_response_describe_log_dirs_topic log_dirs_topic;
typedef struct kafka_describe_log_dirs_response_describe_log_dirs_partition log_dirs_partition;

/* One log dir (the data dir). Partitions this broker does not have are left out, as Kafka
 * does. Total and usable bytes from statvfs (a short blocking call, as plog_open). */
static int encode_log_dirs(void *arg, struct kafka_writer *w) {
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

/* ---- Metadata ---------------------------------------------------------------------- */

static bool topic_name_legal(struct kafka_str n) {
    if (n.len <= 0 || n.len > 249) return false;
    if ((n.len == 1 && n.ptr[0] == '.') || (n.len == 2 && n.ptr[0] == '.' && n.ptr[1] == '.'))
        return false;
    for (int32_t i = 0; i < n.len; i++) {
        char c = n.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static void request_auto_create(struct router *r, struct kafka_str name) {
    char *copy = malloc((size_t)name.len + 1);
    if (!copy) return;
    memcpy(copy, name.ptr, (size_t)name.len);
    copy[name.len] = '\0';
    struct shard_msg m = {.type = ROUTER_MSG_AUTO_CREATE, .ptr = copy};
    /* Best effort and never queued: a full ring drops the request, and the client, told
     * LEADER_NOT_AVAILABLE, asks again (so a flood of names cannot grow the outbox). */
    if (r->outbox_count > 0 || !mesh_send(r->cfg.mesh, r->cfg.shard_id,
                                          mesh_control_id(r->cfg.mesh), &m))
        free(copy);
}

/* Every partition of every topic is alike here (led by this node, replicas = isr =
 * [this node], epoch 0) but for its index, so all topics share one array of the largest
 * partition count: the arena holds one array per response, not one per topic. */
static struct kafka_metadata_response_metadata_response_partition *shared_partitions(
    struct handler_ctx *ctx, int32_t count) {
    struct kafka_metadata_response_metadata_response_partition *parts = kafka_arena_alloc(
        ctx->arena, (size_t)(count ? count : 1), sizeof parts[0],
        _Alignof(struct kafka_metadata_response_metadata_response_partition));
    int32_t *node = kafka_arena_alloc(ctx->arena, 1, sizeof *node, _Alignof(int32_t));
    if (!parts || !node) return NULL;
    *node = ctx->identity->node_id;
    for (int32_t p = 0; p < count; p++) {
        struct kafka_metadata_response_metadata_response_partition *x = &parts[p];
        memset(x, 0, sizeof *x);
        x->partition_index = p;
        x->leader_id = *node;
        x->leader_epoch = 0;
        x->replica_nodes = node;
        x->replica_nodes_count = 1;
        x->isr_nodes = node;
        x->isr_nodes_count = 1;
        x->offline_replicas = NULL;
        x->offline_replicas_count = 0;
    }
    return parts;
}

static void fill_topic(const struct topic_info *t,
                       struct kafka_metadata_response_metadata_response_partition *parts,
                       struct kafka_metadata_response_metadata_response_topic *out) {
    out->error_code = 0;
    out->name = kafka_str_from_cstr(t->name);
    memcpy(out->topic_id.bytes, t->id, 16);
    out->is_internal = t->internal;
    out->topic_authorized_operations = INT32_MIN;
    out->partitions_count = t->partition_count;
    out->partitions = parts;
}

int router_handle_metadata(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                           struct kafka_reader *body, struct kafka_writer *w) {
    struct router *r = ctx_router(ctx);
    int16_t version = hdr->request_api_version;
    struct kafka_metadata_request req;
    int rc = kafka_metadata_request_decode(body, version, &req, ctx->arena);
    if (rc != 0) return rc;
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp, version);
    const struct broker_identity *id = ctx->identity;
    resp.brokers = kafka_arena_alloc(ctx->arena, 1, sizeof resp.brokers[0],
                                     _Alignof(struct kafka_metadata_response_metadata_response_broker));
    if (!resp.brokers) return KAFKA_ERR_ARENA;
    resp.brokers[0].node_id = id->node_id;
    resp.brokers[0].host = kafka_str_from_cstr(id->advertised_host);
    resp.brokers[0].port = id->advertised_port;
    resp.brokers[0].rack = kafka_str_from_cstr(NULL);
    resp.brokers_count = 1;
    resp.cluster_id = kafka_str_from_cstr(id->cluster_id);
    resp.controller_id = id->node_id;
    /* No refresh here: the handler may run again to size the response and must see the
     * same snapshot (the loop refreshes before reading any request). */
    /* v0: an empty list means all topics; v1+: null means all. */
    bool all = req.topics_count < 0 || (version == 0 && req.topics_count == 0);
    size_t n = all ? r->cfg.topics.count(r->cfg.topics.reader) : (size_t)req.topics_count;
    resp.topics_count = (int32_t)n;
    resp.topics = kafka_arena_alloc(ctx->arena, n ? n : 1, sizeof resp.topics[0],
                                    _Alignof(struct kafka_metadata_response_metadata_response_topic));
    if (!resp.topics) return KAFKA_ERR_ARENA;
    bool may_create = r->cfg.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    int32_t max_partitions = 0;
    for (size_t i = 0; i < n; i++) {
        struct kafka_metadata_response_metadata_response_topic *t = &resp.topics[i];
        memset(t, 0, sizeof *t);
        t->topic_authorized_operations = INT32_MIN;
        struct topic_info info;
        bool found;
        if (all) {
            found = r->cfg.topics.at(r->cfg.topics.reader, i, &info);
        } else {
            struct kafka_str name = req.topics[i].name;
            t->name = name;
            t->topic_id = req.topics[i].topic_id;
            found = name.len >= 0
                        ? r->cfg.topics.find(r->cfg.topics.reader, name.ptr, (size_t)name.len, &info)
                        : r->cfg.topics.find_id(r->cfg.topics.reader, req.topics[i].topic_id.bytes,
                                                &info);
            if (!found) {
                if (name.len < 0) {
                    t->error_code = ERR_UNKNOWN_TOPIC_ID;
                    if (version < 12) t->name = kafka_str_from_cstr("");
                } else if (!topic_name_legal(name)) {
                    t->error_code = ERR_INVALID_TOPIC;
                } else if (may_create) {
                    if (w->buf) request_auto_create(r, name); /* not from the sizing pass */
                    t->error_code = ERR_LEADER_NOT_AVAILABLE;
                } else {
                    t->error_code = ERR_UNKNOWN_TOPIC_OR_PARTITION;
                }
                continue;
            }
        }
        if (found) {
            fill_topic(&info, NULL, t);
            if (info.partition_count > max_partitions) max_partitions = info.partition_count;
        }
    }
    struct kafka_metadata_response_metadata_response_partition *parts =
        shared_partitions(ctx, max_partitions);
    if (!parts) return KAFKA_ERR_ARENA;
    for (size_t i = 0; i < n; i++)
        if (resp.topics[i].partitions_count > 0) resp.topics[i].partitions = parts;
    return kafka_metadata_response_encode(w, version, &resp);
}
