/* loadgen_consumer.c - a consumer connection: fetch, verify, measure end to end.
 *
 * Assigned partitions (no group protocol): in fanout mode every consumer reads every
 * partition (tailing fan-out), in split mode consumer k of C reads the global partitions
 * g with g % C == k. One fetch is in flight at a time, covering all of the consumer's
 * partitions, from the offsets the setup listed (latest or earliest).
 *
 * --group: the consumer's group membership (loadgen_group.c, its own connection to the
 * coordinator) assigns and revokes its partitions; it reads nothing while it has no
 * assignment, and a fetch answered after a revoke is dropped. A partition's check state
 * moves with it through struct lg_shared (see loadgen_group.c), and a record read again
 * after a rebalance below the furthest position a holder reached (not just the previous
 * holder's: it may have given the partition back before it read that far again) counts
 * as redelivered, not duplicated. The consumer is finished when its membership is (it
 * left the group).
 *
 * Every batch's CRC32C is checked (record_iter_init) and every record read. A record
 * whose value carries this run's payload header is checked against its partition's
 * sequence: the expected one counts as unique, a lower one as duplicated, a higher one
 * as out of order (a gap). End-to-end latency is now minus the intended send time in
 * the payload (same process, same monotonic clock). Messages of another run (an
 * earlier loadgen into the same topic) are counted but not sequence-checked.
 *
 * The consumer is finished when the producers are, and a fetch sent after that found
 * every partition at its high watermark and past every acknowledged offset (with acks=0,
 * which acknowledges nothing, when it has seen every message sent) -- or when
 * drain seconds have passed since the producers finished. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/log.h"
#include "perf/loadgen_worker.h"

struct cpart {
    uint32_t g;
    int64_t fetch_offset;
    int64_t high_watermark;
    uint64_t expected_seq;       /* next sequence of this run */
    uint64_t unique;             /* this run's messages seen once, in order */
    int64_t redeliver_below;     /* --group: the previous holder's position, -1 */
};

struct lg_consumer {
    enum lg_kind kind;           /* first: the worker dispatches on it */
    struct lg_worker *w;
    uint32_t number;
    struct net_conn *conn;
    bool connected, closed, finished;
    bool reading_done;           /* caught up (or gave up); finished unless in a group */
    bool assigned;               /* has its partitions (always, without a group) */
    struct lg_group *group;      /* --group: its membership, else NULL */
    uint32_t assign_epoch;       /* bumped by each revoke: older fetches are dropped */
    uint32_t fetch_epoch;        /* assign_epoch when the fetch in flight was sent */
    bool fetch_in_flight, fetch_after_producers;
    bool send_busy;              /* the backend still holds `send` */
    uint64_t retry_at_ns, producers_done_ns;
    struct cpart *parts;
    uint32_t part_count;
    uint32_t first_part;         /* parts[] index the next fetch lists first (rotation) */
    int32_t *local_of_g;         /* global partition -> index in parts, -1 */
    int32_t correlation_id;
    struct kafka_fetch_request_fetch_topic *req_topics;
    struct kafka_fetch_request_fetch_partition *req_parts;
    uint8_t *req_buf;
    size_t req_bytes;
    struct net_send send;
    struct iovec iov[1];
    struct lg_frames frames;
    uint8_t *arena_mem;
    size_t arena_bytes;
    struct kafka_arena arena;
};

struct lg_consumer *lg_consumer_at(struct lg_worker *w, uint32_t i) {
    assert(i < w->consumer_count);
    return &w->consumers[i];
}

bool lg_consumer_finished(const struct lg_consumer *c) { return c->finished; }

bool lg_consumer_reading_done(const struct lg_consumer *c) { return c->reading_done; }

struct lg_group *lg_consumer_group(struct lg_consumer *c) { return c->group; }

static int consumer_alloc(struct lg_worker *w, struct lg_consumer *c, uint32_t number) {
    const struct lg_shared *sh = w->sh;
    const struct lg_options *o = sh->o;
    c->kind = LG_KIND_CONSUMER;
    c->w = w;
    c->number = number;
    c->parts = calloc(sh->partition_count, sizeof c->parts[0]);
    c->local_of_g = malloc(sh->partition_count * sizeof c->local_of_g[0]);
    c->req_topics = calloc(LG_MAX_TOPICS, sizeof c->req_topics[0]);
    c->req_parts = calloc(sh->partition_count, sizeof c->req_parts[0]);
    c->req_bytes = 1024 + (size_t)sh->c->topic_count * (LG_TOPIC_NAME_BYTES + 64) +
                   (size_t)sh->partition_count * 48;
    c->req_buf = malloc(c->req_bytes);
    c->frames.cap_bytes = (size_t)o->fetch_max_bytes + o->batch_bytes + (1 << 20);
    c->frames.buf = malloc(c->frames.cap_bytes);
    c->arena_bytes = (1 << 20) + (size_t)sh->partition_count * 256;
    c->arena_mem = malloc(c->arena_bytes);
    if (!c->parts || !c->local_of_g || !c->req_topics || !c->req_parts || !c->req_buf ||
        !c->frames.buf || !c->arena_mem)
        return -1;
    kafka_arena_init(&c->arena, c->arena_mem, c->arena_bytes);
    for (uint32_t g = 0; g < sh->partition_count; g++) c->local_of_g[g] = -1;
    if (o->group[0]) { /* partitions come from the group */
        c->group = lg_group_create(w, c, number);
        return c->group ? 0 : -1;
    }
    c->assigned = true;
    for (uint32_t g = 0; g < sh->partition_count; g++) {
        bool mine = o->consumer_mode == LG_CONSUMERS_FANOUT || g % o->consumers == number;
        if (!mine) continue;
        const struct lg_topic *t = &sh->c->topics[sh->part_topic[g]];
        c->local_of_g[g] = (int32_t)c->part_count;
        c->parts[c->part_count++] = (struct cpart){
            .g = g, .fetch_offset = t->start_offsets[sh->part_index[g]], .high_watermark = -1};
    }
    if (c->part_count == 0) c->finished = c->reading_done = true;
    return 0;
}

struct lg_consumer *lg_consumers_create(struct lg_worker *w) {
    w->consumers = calloc(w->consumer_count ? w->consumer_count : 1, sizeof w->consumers[0]);
    if (!w->consumers) return NULL;
    if (w->sh->o->group[0] && w->consumer_count > 0 && !(w->leader = lg_leader_create(w->sh)))
        return NULL;
    for (uint32_t i = 0; i < w->consumer_count; i++)
        if (consumer_alloc(w, &w->consumers[i], w->consumer_first + i) != 0) return NULL;
    return w->consumers;
}

void lg_consumers_destroy(struct lg_worker *w) {
    if (!w->consumers) return;
    for (uint32_t i = 0; i < w->consumer_count; i++) {
        struct lg_consumer *c = &w->consumers[i];
        free(c->parts);
        free(c->local_of_g);
        free(c->req_topics);
        free(c->req_parts);
        free(c->req_buf);
        free(c->frames.buf);
        free(c->arena_mem);
        lg_group_destroy(c->group);
    }
    lg_leader_destroy(w->leader);
    w->leader = NULL;
    free(w->consumers);
    w->consumers = NULL;
}

uint64_t lg_consumer_lost(const struct lg_worker *w, struct lg_consumer *c, uint64_t *unread) {
    if (c->group) { /* publish what it still holds; run_once counts per partition */
        lg_consumer_revoke(c);
        return 0;
    }
    uint64_t lost = 0;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *cp = &c->parts[i];
        uint64_t acked = atomic_load(&w->sh->acked_msgs[cp->g]);
        if (acked <= cp->unique) continue;
        uint64_t missing = acked - cp->unique;
        if (cp->fetch_offset < atomic_load(&w->sh->acked_end[cp->g])) {
            *unread += missing;
            atomic_fetch_add(&w->sh->part_unread[cp->g], missing);
        } else {
            lost += missing;
            atomic_fetch_add(&w->sh->part_lost[cp->g], missing);
        }
    }
    return lost;
}

/* ---- records ----------------------------------------------------------------------- */

static void check_record(struct lg_consumer *c, struct cpart *cp, const struct record_view *r,
                         uint64_t now_ns) {
    struct lg_worker *w = c->w;
    const struct lg_shared *sh = w->sh;
    lg_add(&w->counters.consumed_msgs, 1);
    if (r->value.len > 0) lg_add(&w->counters.consumed_bytes, (uint64_t)r->value.len);
    if (r->value.len < LG_PAYLOAD_HEADER_BYTES) return;
    const uint8_t *v = r->value.data;
    if (lg_get_u32(v) != LG_PAYLOAD_MAGIC || lg_get_u32(v + 4) != sh->run_id) return;
    uint64_t seq = lg_get_u64(v + 8), intended_ns = lg_get_u64(v + 16);
    if (seq == cp->expected_seq) {
        cp->expected_seq++;
        cp->unique++;
    } else if (seq < cp->expected_seq && r->offset < cp->redeliver_below) {
        lg_add(&w->counters.redelivered, 1); /* read again after a rebalance */
    } else if (seq < cp->expected_seq) {
        lg_add(&w->counters.duplicated, 1);
        atomic_fetch_add_explicit(&sh->part_duplicated[cp->g], 1, memory_order_relaxed);
    } else {
        lg_add(&w->counters.out_of_order, 1);
        atomic_fetch_add_explicit(&sh->part_out_of_order[cp->g], 1, memory_order_relaxed);
        cp->expected_seq = seq + 1;
        cp->unique++;
    }
    if (intended_ns >= sh->measure_from_ns && now_ns >= intended_ns)
        hist_record(&w->e2e_latency, (now_ns - intended_ns) / 1000);
}

static void consume_records(struct lg_consumer *c, struct cpart *cp, struct kafka_bytes recs,
                            uint64_t now_ns) {
    struct lg_worker *w = c->w;
    const uint8_t *p = recs.ptr;
    size_t left = recs.len > 0 ? (size_t)recs.len : 0;
    while (left >= RECORD_BATCH_HEADER_BYTES) {
        struct record_batch_header h;
        if (record_batch_header_parse(p, left, &h) != RECORD_OK) {
            lg_add(&w->counters.crc_errors, 1);
            return;
        }
        size_t size = record_batch_size_bytes(&h);
        if (size > left) return; /* a partial batch at the end of the response */
        int64_t last = record_batch_last_offset(&h);
        if (last >= cp->fetch_offset) {
            struct record_iter it;
            if (record_iter_init(&it, p, size, &w->codecs, w->scratch, w->scratch_bytes, 0) !=
                RECORD_OK) {
                lg_add(&w->counters.crc_errors, 1);
            } else {
                lg_add(&w->counters.consumed_batches, 1);
                bool control = (h.attributes & RECORD_ATTR_CONTROL) != 0;
                struct record_view r;
                while (record_iter_next(&it, &r))
                    if (!control && r.offset >= cp->fetch_offset) check_record(c, cp, &r, now_ns);
                if (it.err != RECORD_OK) lg_add(&w->counters.crc_errors, 1);
            }
            cp->fetch_offset = last + 1;
        }
        p += size;
        left -= size;
    }
}

static int topic_index(const struct lg_cluster *cl, struct kafka_str name) {
    for (uint32_t t = 0; t < cl->topic_count; t++)
        if (kafka_str_equals_cstr(name, cl->topics[t].name)) return (int)t;
    return -1;
}

static struct cpart *find_part(struct lg_consumer *c, int t, int32_t partition) {
    const struct lg_cluster *cl = c->w->sh->c;
    if (t < 0 || partition < 0 || (uint32_t)partition >= cl->topics[t].partitions) return NULL;
    uint32_t g = 0; /* global index: topics flattened in order */
    for (int k = 0; k < t; k++) g += cl->topics[k].partitions;
    g += (uint32_t)partition;
    int32_t local = c->local_of_g[g];
    return local < 0 ? NULL : &c->parts[local];
}

static bool caught_up(const struct lg_consumer *c) {
    const struct lg_shared *sh = c->w->sh;
    if (!c->assigned) return false;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *cp = &c->parts[i];
        int64_t acked_end = atomic_load(&sh->acked_end[cp->g]);
        if (cp->fetch_offset < cp->high_watermark || cp->fetch_offset < acked_end) return false;
        /* acks=0 tells no offsets: wait until every message sent was seen (or drain) */
        if (sh->o->acks == 0 && cp->unique < atomic_load(&sh->acked_msgs[cp->g])) return false;
    }
    return true;
}

static int on_fetch_response(void *ctx, const uint8_t *frame, size_t len) {
    struct lg_consumer *c = ctx;
    struct lg_worker *w = c->w;
    if (!c->fetch_in_flight) return -1;
    struct kafka_fetch_response resp;
    int32_t corr;
    kafka_arena_reset(&c->arena);
    int16_t ver = w->sh->c->versions.fetch;
    if (lg_response_decode(frame, len, KAFKA_API_FETCH, ver, &corr, &resp, &c->arena) != 0 ||
        corr != c->correlation_id)
        return -1;
    c->fetch_in_flight = false;
    if (c->fetch_epoch != c->assign_epoch) return 0; /* asked for revoked partitions */
    uint64_t now = lg_now_ns();
    bool errors = resp.error_code != 0;
    uint32_t rotate_by = 0; /* past the last partition (in request order) that had records */
    for (int32_t t = 0; t < resp.responses_count; t++) {
        const struct kafka_fetch_response_fetchable_topic_response *tr = &resp.responses[t];
        int ti = topic_index(w->sh->c, tr->topic);
        for (int32_t i = 0; i < tr->partitions_count; i++) {
            const struct kafka_fetch_response_partition_data *pd = &tr->partitions[i];
            struct cpart *cp = find_part(c, ti, pd->partition_index);
            if (!cp) continue;
            if (pd->error_code != 0) {
                errors = true;
                continue;
            }
            cp->high_watermark = pd->high_watermark;
            consume_records(c, cp, pd->records, now);
            uint32_t pos = ((uint32_t)(cp - c->parts) + c->part_count - c->first_part) %
                           c->part_count;
            if (pd->records.len > 0 && pos + 1 > rotate_by) rotate_by = pos + 1;
        }
    }
    if (c->part_count > 0) c->first_part = (c->first_part + rotate_by) % c->part_count;
    if (errors) {
        lg_add(&w->counters.fetch_errors, 1);
        c->retry_at_ns = now + LG_RETRY_BACKOFF_NS;
    }
    if (c->fetch_after_producers && caught_up(c)) c->reading_done = true;
    if (c->reading_done && !c->group) c->finished = true;
    return 0;
}

static void on_fetch_sent(struct net_send *send, int status) {
    struct lg_consumer *c = send->user;
    c->send_busy = false;
    if (status != 0) lg_add(&c->w->counters.conn_errors, 1);
}

/* ---- connection -------------------------------------------------------------------- */

static void on_connected(struct net_conn *nc, int status) {
    struct lg_consumer *c = nc->user;
    if (status == 0) c->connected = true;
    else snprintf(c->w->error, sizeof c->w->error, "consumer connect: %s", strerror(-status));
}

void lg_consumer_connect(struct lg_worker *w, struct lg_consumer *c) {
    if (c->group) lg_group_connect(c->group);
    if (c->part_count == 0 && !c->group) return;
    int err = 0;
    c->conn = net_connect(w->net, w->sh->o->host, w->sh->o->port, c, on_connected, &err);
    if (!c->conn) {
        snprintf(w->error, sizeof w->error, "consumer connect: %s", strerror(-err));
        c->closed = c->reading_done = true;
        c->finished = !c->group;
        lg_add(&w->counters.conn_errors, 1);
        return;
    }
    w->conns_open++;
}

int lg_consumer_received(struct lg_consumer *c, const uint8_t *data, size_t len) {
    return lg_frames_push(&c->frames, data, len, on_fetch_response, c);
}

void lg_consumer_closed(struct lg_consumer *c, int reason) {
    c->closed = true;
    c->conn = NULL;
    c->w->conns_open--;
    if (!c->reading_done) {
        lg_add(&c->w->counters.conn_errors, 1);
        if (!c->w->error[0])
            snprintf(c->w->error, sizeof c->w->error, "consumer connection closed (%s)",
                     reason ? strerror(-reason) : "by the broker");
        c->reading_done = true;
        c->finished = !c->group || lg_group_done(c->group);
    }
}

static int send_fetch(struct lg_consumer *c) {
    struct lg_worker *w = c->w;
    const struct lg_shared *sh = w->sh;
    const struct lg_options *o = sh->o;
    int16_t ver = sh->c->versions.fetch;
    int32_t topic_count = 0;
    uint32_t np = 0;
    for (uint32_t t = 0; t < sh->c->topic_count; t++) {
        struct kafka_fetch_request_fetch_topic *ft = &c->req_topics[topic_count];
        memset(ft, 0, sizeof *ft);
        ft->topic = kafka_str_from_cstr(sh->c->topics[t].name);
        ft->partitions = &c->req_parts[np];
        for (uint32_t k = 0; k < c->part_count; k++) {
            const struct cpart *cp = &c->parts[(c->first_part + k) % c->part_count];
            if (sh->part_topic[cp->g] != t) continue;
            c->req_parts[np++] = (struct kafka_fetch_request_fetch_partition){
                .partition = (int32_t)sh->part_index[cp->g],
                .current_leader_epoch = -1,
                .fetch_offset = cp->fetch_offset,
                .last_fetched_epoch = -1,
                .log_start_offset = -1,
                .partition_max_bytes = (int32_t)o->fetch_partition_max_bytes,
            };
            ft->partitions_count++;
        }
        if (ft->partitions_count > 0) topic_count++;
    }
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req, ver);
    req.replica_id = -1;
    req.max_wait_ms = (int32_t)o->fetch_max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = (int32_t)o->fetch_max_bytes;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = c->req_topics;
    req.topics_count = topic_count;
    struct kafka_writer wr;
    kafka_writer_init(&wr, c->req_buf, c->req_bytes);
    c->correlation_id++;
    int rc = lg_request_encode(&wr, KAFKA_API_FETCH, ver, c->correlation_id, &req);
    if (rc != 0) {
        snprintf(w->error, sizeof w->error, "encode fetch: %s", kafka_err_str(rc));
        return -1;
    }
    c->iov[0] = (struct iovec){.iov_base = c->req_buf, .iov_len = wr.len_bytes};
    c->send = (struct net_send){.iov = c->iov, .iov_count = 1, .done = on_fetch_sent, .user = c};
    c->fetch_in_flight = true;
    c->fetch_epoch = c->assign_epoch;
    c->send_busy = true;
    return net_send(w->net, c->conn, &c->send);
}

/* The reading half: ends (reading_done) caught up, given up or aborted. */
static uint64_t read_step(struct lg_worker *w, struct lg_consumer *c, uint64_t now_ns) {
    if (c->reading_done) return UINT64_MAX;
    /* the abort and the drain deadline end reading even before the connect is done */
    if (atomic_load_explicit(&w->sh->abort, memory_order_relaxed)) {
        c->reading_done = true;
        return UINT64_MAX;
    }
    /* a group's drain time starts when producing did (the join comes before) */
    if (atomic_load(&w->sh->producers_running) == 0 && atomic_load(&w->sh->go)) {
        if (c->producers_done_ns == 0) c->producers_done_ns = now_ns;
        if (now_ns > c->producers_done_ns + (uint64_t)(w->sh->o->drain_s * 1e9)) {
            c->reading_done = true; /* gave up: what it did not reach is reported unread */
            return UINT64_MAX;
        }
        if (c->assigned && c->part_count == 0) { /* a member with nothing to read */
            c->reading_done = true;
            return UINT64_MAX;
        }
    }
    if (!c->connected || c->closed) return UINT64_MAX;
    if (!c->assigned || c->part_count == 0) return UINT64_MAX;
    if (c->fetch_in_flight || c->send_busy) return UINT64_MAX;
    if (now_ns < c->retry_at_ns) return c->retry_at_ns - now_ns;
    c->fetch_after_producers = atomic_load(&w->sh->producers_running) == 0;
    if (send_fetch(c) != 0) {
        net_close(w->net, c->conn);
        return UINT64_MAX;
    }
    return UINT64_MAX;
}

uint64_t lg_consumer_step(struct lg_worker *w, struct lg_consumer *c, uint64_t now_ns) {
    if (c->finished) return UINT64_MAX;
    uint64_t wait = read_step(w, c, now_ns);
    if (!c->group) {
        c->finished = c->reading_done;
        return wait;
    }
    uint64_t group_wait = lg_group_step(c->group, now_ns);
    c->finished = lg_group_done(c->group);
    return group_wait < wait ? group_wait : wait;
}

void lg_consumer_assign(struct lg_consumer *c, const uint32_t *gs, const int64_t *offsets,
                        uint32_t n) {
    const struct lg_shared *sh = c->w->sh;
    lg_consumer_revoke(c);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g = gs[i];
        c->local_of_g[g] = (int32_t)i;
        c->parts[i] = (struct cpart){
            .g = g, .fetch_offset = offsets[i], .high_watermark = -1,
            .expected_seq = atomic_load(&sh->part_expected_seq[g]),
            .unique = atomic_load(&sh->part_unique[g]),
            .redeliver_below = atomic_load(&sh->part_position[g])};
    }
    c->part_count = n;
    c->first_part = 0;
    c->assigned = true;
    c->retry_at_ns = 0;
    /* caught up on the old partitions says nothing about these: look again (the
     * drain deadline and an abort still end reading) */
    c->reading_done = c->fetch_after_producers = false;
}

void lg_consumer_revoke(struct lg_consumer *c) {
    struct lg_shared *sh = c->w->sh;
    for (uint32_t i = 0; i < c->part_count; i++) {
        const struct cpart *cp = &c->parts[i];
        atomic_store(&sh->part_expected_seq[cp->g], cp->expected_seq);
        atomic_store(&sh->part_unique[cp->g], cp->unique);
        /* the furthest any holder read: one that gives the partition back before it has
         * read again up to there leaves the rest to the next holder as redelivered */
        if (cp->fetch_offset > atomic_load(&sh->part_position[cp->g]))
            atomic_store(&sh->part_position[cp->g], cp->fetch_offset);
        c->local_of_g[cp->g] = -1;
    }
    c->part_count = 0;
    c->first_part = 0;
    c->assigned = false;
    c->assign_epoch++;
}

uint32_t lg_consumer_positions(const struct lg_consumer *c, uint32_t *gs, int64_t *offsets) {
    for (uint32_t i = 0; i < c->part_count; i++) {
        gs[i] = c->parts[i].g;
        offsets[i] = c->parts[i].fetch_offset;
    }
    return c->part_count;
}

struct net_conn *lg_consumer_conn(struct lg_consumer *c) { return c->closed ? NULL : c->conn; }
