/* router.c - request routing on a shard: partitions to their owners, control-plane
 * requests to the control thread, and the answers back to the connection.
 *
 * Deferral. A handler that cannot answer at once copies the request frame into a job,
 * returns HANDLER_DEFERRED and keeps the connection's conn_token; conn.c keeps the
 * request's place in the response order and goes on reading (pipelining: up to
 * KSERVER_MAX_PIPELINE requests per connection; a control-plane request runs alone).
 * When the job is done the router calls kserver_complete() with a function that encodes
 * the response body from the job; jobs may finish in any order. A connection has at
 * most KSERVER_MAX_PIPELINE jobs, which bounds jobs by max.connections times that.
 * Jobs of one connection for one partition reach its owner in request order (one ring
 * per pair of shards, the outbox keeps order, the origin serves its own parts at once)
 * and a part never overtakes an earlier one waiting for buffers (router_produce.c).
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
 * Files: this one holds routing, the partition table, jobs and the mesh; each API family
 * has its own file (router_produce.c, router_fetch.c, router_partition.c for ListOffsets,
 * DeleteRecords, OffsetForLeaderEpoch and DescribeLogDirs, router_metadata.c), and
 * router_internal.h is what they share.
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
 * A job holds a copy of its request (at most socket.request.max.bytes; at most
 * KSERVER_MAX_PIPELINE jobs per connection). Fetch data: the origin's own parts keep
 * the log's fragments and are sent zero-copy; other owners' parts are copied once (router_fetch.c). ListOffsets answers timestamp -1 (the offset is right; the record's timestamp
 * would need a read). DeleteRecords answers once the new log start is set in memory (its
 * checkpoint is written through the ring, as Kafka checkpoints it); OffsetForLeaderEpoch
 * knows one epoch, 0, which ends at the log end. DescribeLogDirs is a partition request
 * too: each owner reports plog_size_bytes of its parts; a request for every topic is
 * bounded by ROUTER_MAX_PARTS like any other (beyond it the connection closes). */
#include "dataplane/router_internal.h"

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

#include "dataplane/frame.h"
#include "dataplane/router_stats.h"
#include "hw/log.h"
#include "storage/record/batch.h"
#include "storage/record/legacy.h"
#include "storage/record/records.h"

/* Every shard's router, for the appends_done counters parked fetches read. Set by each
 * shard during its setup; NULL until then (a fetch can arrive at shard 0 before shard 1
 * has started). One broker per process. */
static struct router *_Atomic all_routers[MESH_MAX_SHARDS];

/* ---- outbox ------------------------------------------------------------------------ */

void router_send(struct router *r, int to, struct shard_msg *msg) {
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

struct plog *router_ptable_find(struct router *r, const uint8_t id[16], int32_t partition) {
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

void router_begin(struct router *r, uint64_t now_ms) {
    assert(now_ms >= r->now_ms);
    r->now_ms = now_ms;
    router_refresh(r);
}

/* From inside a callback (a mesh message, a handler): take the newest snapshot and open
 * the partitions it newly places here, but close nothing -- plog_close waits on the ring
 * and runs other completions, which must not re-enter a connection mid-request. The next
 * loop turn's router_refresh does the full sync (r->epoch is left behind on purpose). */
void router_refresh_open_only(struct router *r) {
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


/* ---- setup ------------------------------------------------------------------------- */

int router_init(struct router *r, const struct router_config *cfg, char *err, size_t err_bytes) {
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    r->shard_count = cfg->mesh->shard_count;
    r->outbox_cap = (cfg->max_conns * KSERVER_MAX_PIPELINE + 2u) *
                        (uint32_t)(r->shard_count + 1) + ROUTER_MAX_INTERNAL_APPENDS;
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
    /* Closing a log completes its appends still in flight (append_done looks this
     * router up by shard): unregister only after. */
    if (r->table) {
        for (uint32_t i = 0; i < ROUTER_PTABLE_SLOTS; i++)
            if (r->table[i].used && r->table[i].log) plog_close(r->table[i].log);
    }
    if (r->cfg.mesh) atomic_store_explicit(&all_routers[r->cfg.shard_id], NULL,
                                           memory_order_release);
    /* Parked and answered jobs have heard from every owner: free them. (A job still
     * waiting for another shard at shutdown is left to the process exit.) */
    struct data_job *lists[2] = {r->parked, r->ready};
    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct data_job *job = lists[i];
            lists[i] = job->next_parked;
            router_job_free(job);
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
    frame_blocks_release(); /* the jobs freed above gave their blocks back */
}

/* ---- jobs -------------------------------------------------------------------------- */

/* The job's request body: a Produce keeps the connection's block when the frame lies
 * alone in it (ctx->frame_block: no copy); otherwise a copy, in a block from the cache
 * of big frame blocks (frame.h) when it is big. */
static bool job_frame(struct data_job *job, struct handler_ctx *ctx,
                      const struct kafka_reader *body) {
    size_t bytes = (size_t)(body->end - body->pos);
    job->frame_bytes = (uint32_t)bytes;
    if (ctx->frame_block && ctx->hdr->request_api_key == KAFKA_API_PRODUCE) {
        assert(body->pos >= ctx->frame_block &&
               body->end <= ctx->frame_block + ctx->frame_block_cap);
        ctx->frame_block_taken = true;
        job->frame_block = ctx->frame_block;
        job->frame_block_cap = ctx->frame_block_cap;
        job->frame_block_kept = true;
        job->frame = (uint8_t *)body->pos;
        return true;
    }
    job->frame = frame_block_get(bytes, &job->frame_block_cap);
    if (!job->frame) return false;
    job->frame_block = job->frame;
    memcpy(job->frame, body->pos, bytes);
    return true;
}

struct data_job *router_job_new(struct router *r, struct handler_ctx *ctx,
                                const struct kafka_reader *body) {
    struct data_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->owner_pending = calloc((size_t)r->shard_count, sizeof job->owner_pending[0]);
    job->seen_appends = calloc((size_t)r->shard_count, sizeof job->seen_appends[0]);
    if (!job->owner_pending || !job->seen_appends || !job_frame(job, ctx, body)) {
        free(job->owner_pending);
        free(job->seen_appends);
        free(job);
        return NULL;
    }
    job->origin = r;
    job->origin_shard = r->cfg.shard_id;
    job->token = ctx->token;
    job->api_key = ctx->hdr->request_api_key;
    job->version = ctx->hdr->request_api_version;
    return job;
}

void router_job_free(struct data_job *job) {
    for (uint32_t i = 0; i < job->part_count; i++) router_fetch_part_drop(&job->parts[i]);
    free(job->parts);
    /* (router_partition.c may have replaced a copied frame: then free that) */
    if (job->frame_block_kept || (job->frame_block && job->frame == job->frame_block))
        frame_block_put(job->frame_block, job->frame_block_cap);
    else
        free(job->frame);
    free(job->owner_pending);
    free(job->seen_appends);
    free(job);
}

struct router *router_of_shard(int shard) {
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
void router_job_dispatch(struct router *r, struct data_job *job) {
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

void router_owner_op_done(struct router *r, struct data_job *job) {
    uint32_t *pending = &job->owner_pending[r->cfg.shard_id];
    assert(*pending > 0);
    if (--*pending > 0) return;
    if (job->origin == r) {
        origin_part_done(r, job);
        return;
    }
    /* At shutdown the origin shard may have stopped already, its router torn down (so
     * its id is read from the job): the report then waits in its ring, unread, and the
     * job is left to the process exit, like every job waiting on another shard. */
    struct shard_msg m = {.type = ROUTER_MSG_PART_DONE, .ptr = job};
    router_send(r, job->origin_shard, &m);
}



static void owner_process(struct router *r, struct data_job *job) {
    uint32_t *pending = &job->owner_pending[r->cfg.shard_id];
    *pending = 1; /* guard */
    int64_t fetch_budget_bytes = job->api_key == KAFKA_API_FETCH ? job->max_bytes : 0;
    for (uint32_t i = 0; i < job->part_count; i++) {
        struct data_part *p = &job->parts[i];
        if (p->owner != r->cfg.shard_id || p->error != ERR_NONE) continue;
        struct plog *log = router_ptable_find(r, p->id, p->partition);
        struct topic_info t;
        if (!log) { /* a snapshot newer than ours may hold it */
            router_refresh_open_only(r);
            log = router_ptable_find(r, p->id, p->partition);
        }
        if (!log || !r->cfg.topics.find_id(r->cfg.topics.reader, p->id, &t)) {
            p->error = ERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        if (job->api_key == KAFKA_API_PRODUCE) router_produce_part(r, p, &t, log);
        else if (job->api_key == KAFKA_API_FETCH) router_fetch_part(r, p, log, &fetch_budget_bytes);
        else if (job->api_key == KAFKA_API_DELETE_RECORDS) router_delete_records_part(p, log);
        else if (job->api_key == KAFKA_API_OFFSET_FOR_LEADER_EPOCH) router_leader_epoch_part(p, log);
        else if (job->api_key == KAFKA_API_DESCRIBE_LOG_DIRS)
            p->offset = (int64_t)plog_size_bytes(log);
        else if (job->api_key == KAFKA_API_DESCRIBE_PRODUCERS)
            router_describe_producers_part(p, log);
        else router_list_offsets_part(r, p, log);
    }
    router_owner_op_done(r, job);
}

/* ---- origin side ------------------------------------------------------------------- */

/* The result arrays of a split request's answer (one per topic, one per part), zeroed,
 * in the router's arena; at least one element so an empty answer still gets a valid
 * pointer. NULL when the arena is full (the encoder then answers KAFKA_ERR_ARENA). */
void *router_job_array(struct router *r, uint32_t count, size_t elem_bytes, size_t align) {
    size_t n = count ? count : 1;
    void *p = kafka_arena_alloc(&r->arena, n, elem_bytes, align);
    if (p) memset(p, 0, n * elem_bytes);
    return p;
}
#define JOB_ARRAY(r, count, ptr) \
    router_job_array((r), (count), sizeof(*(ptr)), _Alignof(__typeof__(*(ptr))))

static int encode_raw(void *arg, struct kafka_writer *w);


static void job_finish(struct router *r, struct data_job *job) {
    router_count_part_errors(job); /* metrics: per-partition error codes by API */
    response_body_fn fn;
    switch (job->api_key) {
    case KAFKA_API_PRODUCE: fn = router_encode_produce; break;
    case KAFKA_API_FETCH: fn = router_encode_fetch; break;
    case KAFKA_API_DELETE_RECORDS: fn = router_encode_delete_records; break;
    case KAFKA_API_OFFSET_FOR_LEADER_EPOCH: fn = router_encode_leader_epoch; break;
    case KAFKA_API_DESCRIBE_LOG_DIRS: fn = router_encode_log_dirs; break;
    case KAFKA_API_DESCRIBE_PRODUCERS: fn = router_encode_describe_producers; break;
    default: fn = router_encode_list_offsets;
    }
    if (job->api_key == KAFKA_API_PRODUCE && job->acks == 0) fn = NULL;
    if (job->api_key == KAFKA_API_FETCH) { /* its release frees the job */
        kserver_complete_zc(r->ks, job->token, fn, job, router_fetch_release);
        return;
    }
    kserver_complete(r->ks, job->token, fn, job);
    router_job_free(job);
}

static void origin_part_done(struct router *r, struct data_job *job) {
    assert(job->origin == r && job->owners_waiting > 0);
    if (--job->owners_waiting > 0) return;
    if (job->api_key == KAFKA_API_FETCH && job->max_wait_ms > 0 &&
        router_fetch_bytes(job) < (uint32_t)(job->min_bytes > 0 ? job->min_bytes : 1) &&
        !router_fetch_has_error(job) && r->now_ms < job->deadline_ms) {
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
        for (uint32_t i = 0; i < job->part_count; i++) /* release before re-read */
            router_fetch_part_drop(&job->parts[i]);
        router_job_dispatch(r, job);
    }
    return work;
}

unsigned router_tick(struct router *r, uint64_t now_ms) {
    r->now_ms = now_ms;
    unsigned work = storage_poll(&r->storage);
    if (r->buffer_wait_first) work += router_produce_retry(r);
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

/* ---- control's appends to internal topics ----------------------------------------- */

static void internal_append_answer(struct router *r, struct internal_append_job *job) {
    struct shard_msg m = {.type = ROUTER_MSG_INTERNAL_APPEND_DONE, .ptr = job};
    router_send(r, mesh_control_id(r->cfg.mesh), &m);
}

static void internal_append_done(struct plog_append_req *req, int status) {
    struct internal_append_job *job =
        (struct internal_append_job *)((char *)req - offsetof(struct internal_append_job, append));
    struct router *r = router_of_shard(job->owner_shard);
    if (status < 0) {
        job->error_code = ERR_KAFKA_STORAGE_ERROR;
        job->base_offset = -1;
    } else {
        job->base_offset = req->base_offset;
    }
    atomic_fetch_add_explicit(&r->appends_done, 1, memory_order_release);
    internal_append_answer(r, job);
}

static void internal_append(struct router *r, struct internal_append_job *job) {
    job->owner_shard = r->cfg.shard_id;
    job->error_code = ERR_NONE;
    job->base_offset = -1;
    struct plog *log = router_ptable_find(r, job->topic_id, job->partition);
    if (!log) { /* created a moment ago: a snapshot newer than ours holds it */
        router_refresh_open_only(r);
        log = router_ptable_find(r, job->topic_id, job->partition);
    }
    struct record_batch_header h;
    if (!log) {
        job->error_code = ERR_UNKNOWN_TOPIC_OR_PARTITION;
    } else if (record_batch_validate(job->batch, job->batch_bytes, &h) != RECORD_OK ||
               record_batch_size_bytes(&h) != job->batch_bytes) {
        job->error_code = ERR_CORRUPT_MESSAGE;
    } else if (log->failed) {
        job->error_code = ERR_KAFKA_STORAGE_ERROR;
    } else {
        job->append.done = internal_append_done;
        job->append.durable = true;
        int64_t base = plog_append(log, job->batch, job->batch_bytes, true, &job->append);
        if (base >= 0) return; /* answered by internal_append_done */
        /* -ESTALE: a transaction marker older than its producer's epoch (fenced);
         * -EBADMSG: a control batch that is not a marker; -ENOBUFS: no buffer, or too
         * many markers not yet written -- KAFKA_STORAGE_ERROR, which control retries. */
        job->error_code = base == -EMSGSIZE  ? ERR_MESSAGE_TOO_LARGE
                          : base == -ESTALE  ? ERR_INVALID_PRODUCER_EPOCH
                          : base == -EBADMSG ? ERR_CORRUPT_MESSAGE
                                             : ERR_KAFKA_STORAGE_ERROR;
        log_warn("internal_append_failed", "partition=%d err=%s", job->partition,
                 strerror((int)-base));
    }
    internal_append_answer(r, job);
}

void router_on_message(struct router *r, const struct shard_msg *msg) {
    switch (msg->type) {
    case ROUTER_MSG_PART_REQ:
        owner_process(r, msg->ptr);
        break;
    case ROUTER_MSG_PART_DONE:
        origin_part_done(r, msg->ptr);
        break;
    case ROUTER_MSG_INTERNAL_APPEND:
        internal_append(r, msg->ptr);
        break;
    case ROUTER_MSG_CONTROL_REPLY: {
        struct control_job *cj = msg->ptr;
        router_refresh_open_only(r); /* the answer may name topics of a newer snapshot */
        struct kafka_bytes body = {cj->response, (int32_t)cj->response_bytes};
        if (cj->response)
            router_count_control_errors(&r->arena, cj->api_key, cj->api_version, cj->response,
                                        cj->response_bytes);
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

struct router *router_of_ctx(struct handler_ctx *ctx) {
    assert(ctx->owner);
    return ctx->owner;
}

int router_handle_control(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                          struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    struct router *r = router_of_ctx(ctx);
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
    if (hdr->client_id.len > 0)
        snprintf(cj->client_id, sizeof cj->client_id, "%.*s", (int)hdr->client_id.len,
                 hdr->client_id.ptr);
    if (cj->api_key == KAFKA_API_JOIN_GROUP && r->ks) { /* DescribeGroups reports it */
        char ip[ROUTER_CLIENT_HOST_BYTES - 1];
        if (kserver_peer_name(r->ks, ctx->token, ip, sizeof ip) == 0)
            snprintf(cj->client_host, sizeof cj->client_host, "/%s", ip); /* Kafka's form */
    }
    struct shard_msg m = {.type = ROUTER_MSG_CONTROL_REQ, .ptr = cj};
    router_send(r, mesh_control_id(r->cfg.mesh), &m);
    return HANDLER_DEFERRED;
}

bool router_lookup_part(struct router *r, struct data_part *p, bool by_id) {
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

int router_job_alloc_parts(struct data_job *job, uint32_t count) {
    if (count > ROUTER_MAX_PARTS) return -1;
    job->parts = calloc(count ? count : 1, sizeof job->parts[0]);
    if (!job->parts) return -1;
    job->part_count = count;
    for (uint32_t i = 0; i < count; i++) job->parts[i].job = job;
    return 0;
}
