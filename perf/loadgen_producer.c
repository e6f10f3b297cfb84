/* loadgen_producer.c - a producer connection: open-loop messages into RecordBatch v2.
 *
 * Partitions: producer j of P owns the global partitions g with g % P == j, so each
 * partition has exactly one writer and its sequence numbers are one stream (what makes
 * the consumers' loss / duplicate / order check exact).
 *
 * Batches: a fixed pool of slots, each with a staging area for message keys and values,
 * the record descriptors, the intended send time of every message, and an output buffer
 * for the encoded batch. A partition fills one slot at a time; the slot is sealed
 * (encoded with record_batch_write: CRC32C, optional compression) when the next message
 * would pass batch-size or when linger-ms has passed since its first message's intended
 * time. Without compression a message is encoded straight into the output buffer as it
 * is generated, its value copied once from a template that differs per message only in
 * its 24-byte payload header (the filler is the same bytes every time), and sealing
 * writes just the batch header and CRC32C: one copy per produced byte instead of two.
 * Sealed slots wait in a FIFO; a produce request takes at most one per partition
 * (and LG_REQ_MAX_BATCHES) and references their bytes through iovecs -- not copied.
 *
 * Backpressure: when every slot is busy (requests in flight) generation stops; messages
 * keep falling due on the schedule and are charged their waiting time when they are
 * finally generated (intended time, not generation time, is what latency is measured
 * from).
 *
 * A request completes when both its send is done and (acks != 0) its response arrived,
 * in either order; only then do its slots return to the pool. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hw/log.h"
#include "perf/loadgen_worker.h"

enum slot_state { SLOT_FREE = 0, SLOT_FILLING, SLOT_SEALED, SLOT_INFLIGHT };

struct slot {
    enum slot_state state;
    uint32_t part;               /* index into the producer's partitions */
    uint32_t count;
    uint64_t value_bytes;        /* message values in the batch (what MB/s counts) */
    size_t staging_used;
    uint8_t *staging;
    struct record_in *recs;
    uint64_t *intended_ns;
    uint8_t *out;                /* the encoded batch */
    size_t out_len;
    size_t direct_bytes;         /* uncompressed: records encoded at out + header so far */
    int64_t base_ts_ms, max_ts_ms; /* uncompressed: the batch's first and max timestamps */
    uint32_t next_sealed;        /* FIFO link */
};

struct ppart {
    uint32_t g;                  /* global partition */
    int32_t filling;             /* slot, -1 none */
    bool queued;                 /* has a sealed slot in the FIFO */
    uint64_t next_seq;
};

struct preq {
    int32_t correlation_id;
    uint32_t slot_count;
    uint32_t slots[LG_REQ_MAX_BATCHES];
    bool send_done, answered, in_use;
    uint64_t sent_ns;            /* when it was handed to the connection */
    struct net_send send;
    struct iovec iov[NET_SEND_MAX_IOV];
    uint8_t inline_buf[LG_REQ_INLINE_BYTES];
    struct lg_producer *owner;
};

struct lg_producer {
    enum lg_kind kind;           /* first: the worker dispatches on it */
    struct lg_worker *w;
    uint32_t number;             /* global producer number */
    struct net_conn *conn;
    bool connected, closed, finished;
    bool scheduled;              /* the schedule started (sh->go was set) */
    struct ppart *parts;
    uint32_t part_count, sticky;
    struct slot *slots;
    uint32_t slot_count, free_count;
    uint32_t sealed_head, sealed_tail, sealed_count;
    struct preq *reqs;
    uint32_t req_head, req_count; /* FIFO ring of max_inflight */
    int32_t next_correlation_id;
    struct lg_schedule schedule;
    uint64_t messages_left;      /* UINT64_MAX: by time */
    uint32_t max_records;
    size_t staging_bytes, out_bytes;
    uint64_t key_rr;
    struct lg_frames frames;
    uint8_t *arena_mem;
    struct kafka_arena arena;
    uint8_t filler[256];
    bool direct;                 /* no compression: records encoded as generated */
    uint8_t *value_template;     /* payload header slot + filler, message_bytes_max long */
};

#define NO_SLOT UINT32_MAX
/* A record's bytes besides its key and value: length, attributes, timestamp and offset
 * deltas, key and value lengths, header count, as varints (an upper bound). */
#define LG_RECORD_OVERHEAD_MAX_BYTES 24

struct lg_producer *lg_producer_at(struct lg_worker *w, uint32_t i) {
    assert(i < w->producer_count);
    return &w->producers[i];
}

bool lg_producer_finished(const struct lg_producer *p) { return p->finished; }

static size_t max_record_overhead_bytes(void) {
    return 32 + LG_KEY_MAX_BYTES; /* length, attributes, deltas, key/value lengths */
}

static int producer_alloc(struct lg_worker *w, struct lg_producer *p, uint32_t number) {
    const struct lg_shared *sh = w->sh;
    const struct lg_options *o = sh->o;
    p->kind = LG_KIND_PRODUCER;
    p->w = w;
    p->number = number;
    p->parts = calloc(sh->partition_count / o->producers + 1, sizeof p->parts[0]);
    if (!p->parts) return -1;
    for (uint32_t g = number; g < sh->partition_count; g += o->producers) {
        p->parts[p->part_count] = (struct ppart){.g = g, .filling = -1};
        p->part_count++;
    }
    p->max_records = o->batch_bytes / o->message_bytes + 1;
    p->staging_bytes = o->batch_bytes + (size_t)LG_KEY_MAX_BYTES * p->max_records;
    size_t records_bytes = p->staging_bytes + max_record_overhead_bytes() * p->max_records;
    p->out_bytes = record_compress_bound((enum record_codec)o->codec, records_bytes) + 128;
    uint32_t per_req = p->part_count < LG_REQ_MAX_BATCHES ? p->part_count : LG_REQ_MAX_BATCHES;
    p->slot_count = p->part_count ? p->part_count + o->max_inflight * per_req + 1 : 0;
    p->slots = calloc(p->slot_count ? p->slot_count : 1, sizeof p->slots[0]);
    p->reqs = calloc(o->max_inflight, sizeof p->reqs[0]);
    if (!p->slots || !p->reqs) return -1;
    for (uint32_t i = 0; i < p->slot_count; i++) {
        struct slot *s = &p->slots[i];
        s->staging = malloc(p->staging_bytes);
        s->recs = calloc(p->max_records, sizeof s->recs[0]);
        s->intended_ns = calloc(p->max_records, sizeof s->intended_ns[0]);
        s->out = malloc(p->out_bytes);
        if (!s->staging || !s->recs || !s->intended_ns || !s->out) return -1;
    }
    p->free_count = p->slot_count;
    p->sealed_head = p->sealed_tail = NO_SLOT;
    for (uint32_t i = 0; i < o->max_inflight; i++) p->reqs[i].owner = p;
    p->frames.cap_bytes = 1 << 20; /* produce responses are small */
    p->frames.buf = malloc(p->frames.cap_bytes);
    p->arena_mem = malloc(1 << 20);
    if (!p->frames.buf || !p->arena_mem) return -1;
    kafka_arena_init(&p->arena, p->arena_mem, 1 << 20);
    for (size_t i = 0; i < sizeof p->filler; i++) p->filler[i] = (uint8_t)('a' + i % 26);
    uint32_t max_value = o->message_bytes_max > o->message_bytes ? o->message_bytes_max
                                                                   : o->message_bytes;
    p->direct = o->codec == RECORD_CODEC_NONE;
    p->value_template = malloc(max_value > LG_PAYLOAD_HEADER_BYTES ? max_value
                                                                   : LG_PAYLOAD_HEADER_BYTES);
    if (!p->value_template) return -1;
    for (uint32_t off = LG_PAYLOAD_HEADER_BYTES; off < max_value; off++)
        p->value_template[off] = p->filler[(off - LG_PAYLOAD_HEADER_BYTES) % sizeof p->filler];
    p->next_correlation_id = 1;
    p->messages_left = UINT64_MAX;
    if (o->messages > 0) {
        uint64_t active = o->producers < sh->partition_count ? o->producers : sh->partition_count;
        p->messages_left = number < active ? o->messages / active +
                                                 (number < o->messages % active ? 1 : 0)
                                           : 0;
    }
    if (p->part_count == 0) p->finished = true;
    return 0;
}

struct lg_producer *lg_producers_create(struct lg_worker *w) {
    w->producers = calloc(w->producer_count ? w->producer_count : 1, sizeof w->producers[0]);
    if (!w->producers) return NULL;
    for (uint32_t i = 0; i < w->producer_count; i++)
        if (producer_alloc(w, &w->producers[i], w->producer_first + i) != 0) return NULL;
    return w->producers;
}

void lg_producers_destroy(struct lg_worker *w) {
    if (!w->producers) return;
    for (uint32_t i = 0; i < w->producer_count; i++) {
        struct lg_producer *p = &w->producers[i];
        for (uint32_t s = 0; p->slots && s < p->slot_count; s++) {
            free(p->slots[s].staging);
            free(p->slots[s].recs);
            free(p->slots[s].intended_ns);
            free(p->slots[s].out);
        }
        free(p->slots);
        free(p->reqs);
        free(p->parts);
        free(p->frames.buf);
        free(p->arena_mem);
        free(p->value_template);
    }
    free(w->producers);
    w->producers = NULL;
}

static void producer_finish(struct lg_producer *p) {
    if (p->finished) return;
    p->finished = true;
    if (atomic_fetch_sub(&p->w->sh->producers_running, 1) == 1)
        atomic_store(&p->w->sh->producers_done_ns, lg_now_ns());
}

/* ---- responses --------------------------------------------------------------------- */

static void slot_release(struct lg_producer *p, uint32_t id) {
    struct slot *s = &p->slots[id];
    assert(s->state == SLOT_INFLIGHT);
    s->state = SLOT_FREE;
    s->count = 0;
    s->value_bytes = 0;
    s->staging_used = 0;
    s->direct_bytes = 0;
    p->free_count++;
}

static void atomic_max_i64(_Atomic int64_t *a, int64_t v) {
    int64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

static void batch_acked(struct lg_producer *p, struct slot *s, int64_t base_offset,
                        uint64_t now_ns) {
    struct lg_worker *w = p->w;
    struct lg_shared *sh = w->sh;
    uint32_t g = p->parts[s->part].g;
    lg_add(&w->counters.acked_msgs, s->count);
    lg_add(&w->counters.acked_bytes, s->value_bytes);
    atomic_fetch_add_explicit(&sh->acked_msgs[g], s->count, memory_order_relaxed);
    if (base_offset >= 0) atomic_max_i64(&sh->acked_end[g], base_offset + s->count);
    for (uint32_t i = 0; i < s->count; i++)
        if (s->intended_ns[i] >= sh->measure_from_ns)
            hist_record(&w->produce_latency, (now_ns - s->intended_ns[i]) / 1000);
}

static void req_retire_head(struct lg_producer *p) {
    while (p->req_count > 0) {
        struct preq *r = &p->reqs[p->req_head];
        if (!r->send_done || !r->answered) return;
        for (uint32_t i = 0; i < r->slot_count; i++) slot_release(p, r->slots[i]);
        r->in_use = false;
        p->req_head = (p->req_head + 1) % p->w->sh->o->max_inflight;
        p->req_count--;
    }
}

static struct slot *find_slot(struct lg_producer *p, struct preq *r, const struct lg_cluster *c,
                              struct kafka_str topic, int32_t partition) {
    for (uint32_t i = 0; i < r->slot_count; i++) {
        struct slot *s = &p->slots[r->slots[i]];
        uint32_t g = p->parts[s->part].g;
        if ((int32_t)p->w->sh->part_index[g] == partition &&
            kafka_str_equals_cstr(topic, c->topics[p->w->sh->part_topic[g]].name))
            return s;
    }
    return NULL;
}

static int on_produce_response(void *ctx, const uint8_t *frame, size_t len) {
    struct lg_producer *p = ctx;
    struct lg_worker *w = p->w;
    if (p->req_count == 0) return -1;
    struct preq *r = NULL;
    for (uint32_t i = 0; i < p->req_count && !r; i++) {
        struct preq *cand = &p->reqs[(p->req_head + i) % w->sh->o->max_inflight];
        if (!cand->answered) r = cand; /* responses come in request order */
    }
    if (!r) return -1;
    struct kafka_produce_response resp;
    int32_t corr;
    kafka_arena_reset(&p->arena);
    int16_t ver = w->sh->c->versions.produce;
    if (lg_response_decode(frame, len, KAFKA_API_PRODUCE, ver, &corr, &resp, &p->arena) != 0 ||
        corr != r->correlation_id)
        return -1;
    uint64_t now = lg_now_ns();
    uint32_t answered = 0;
    for (int32_t t = 0; t < resp.responses_count; t++) {
        const struct kafka_produce_response_topic_produce_response *tr = &resp.responses[t];
        for (int32_t i = 0; i < tr->partition_responses_count; i++) {
            const struct kafka_produce_response_partition_produce_response *pr =
                &tr->partition_responses[i];
            struct slot *s = find_slot(p, r, w->sh->c, tr->name, pr->index);
            if (!s) continue;
            answered++;
            if (pr->error_code == 0) {
                batch_acked(p, s, pr->base_offset, now);
            } else {
                lg_add(&w->counters.produce_errors, s->count);
                if (log_ratelimit_ok(&w->error_rl))
                    log_warn("loadgen_produce_error", "partition=%d error=%d (not retried)",
                             pr->index, pr->error_code);
            }
        }
    }
    if (answered != r->slot_count) /* a batch without an answer failed */
        lg_add(&w->counters.produce_errors, r->slot_count - answered);
    r->answered = true;
    req_retire_head(p);
    return 0;
}

static void on_send_done(struct net_send *send, int status) {
    struct preq *r = send->user;
    struct lg_producer *p = r->owner;
    r->send_done = true;
    if (status != 0) {
        lg_add(&p->w->counters.conn_errors, 1);
        r->answered = true; /* it never will be: count its messages as failed */
        for (uint32_t i = 0; i < r->slot_count; i++)
            lg_add(&p->w->counters.produce_errors, p->slots[r->slots[i]].count);
    }
    if (p->w->sh->o->acks == 0 && !r->answered) {
        uint64_t now = lg_now_ns();
        for (uint32_t i = 0; i < r->slot_count; i++) batch_acked(p, &p->slots[r->slots[i]], -1, now);
        r->answered = true;
    }
    req_retire_head(p);
}

/* ---- connection -------------------------------------------------------------------- */

static void on_connected(struct net_conn *c, int status) {
    struct lg_producer *p = c->user;
    if (status == 0) {
        p->connected = true;
        return;
    }
    snprintf(p->w->error, sizeof p->w->error, "producer connect: %s", strerror(-status));
}

void lg_producer_connect(struct lg_worker *w, struct lg_producer *p) {
    if (p->part_count == 0) return;
    int err = 0;
    p->conn = net_connect(w->net, w->sh->o->host, w->sh->o->port, p, on_connected, &err);
    if (!p->conn) {
        snprintf(w->error, sizeof w->error, "producer connect: %s", strerror(-err));
        p->closed = true;
        lg_add(&w->counters.conn_errors, 1);
        producer_finish(p);
        return;
    }
    w->conns_open++;
}

/* The receive path of a producer connection (dispatched by the worker). */
int lg_producer_received(struct lg_producer *p, const uint8_t *data, size_t len) {
    return lg_frames_push(&p->frames, data, len, on_produce_response, p);
}

void lg_producer_closed(struct lg_producer *p, int reason) {
    p->closed = true;
    p->conn = NULL;
    p->w->conns_open--;
    if (!p->finished) {
        lg_add(&p->w->counters.conn_errors, 1);
        if (!p->w->error[0])
            snprintf(p->w->error, sizeof p->w->error, "producer connection closed (%s)",
                     reason ? strerror(-reason) : "by the broker");
        producer_finish(p);
    }
}

/* ---- generation -------------------------------------------------------------------- */

static uint32_t message_size(struct lg_producer *p) {
    const struct lg_options *o = p->w->sh->o;
    if (o->size_dist == LG_SIZE_FIXED) return o->message_bytes;
    return o->message_bytes +
           (uint32_t)lg_rand_below(&p->w->rng, o->message_bytes_max - o->message_bytes + 1);
}

/* -1: no key; else the key number. */
static int64_t next_key(struct lg_producer *p) {
    const struct lg_options *o = p->w->sh->o;
    switch (o->key_dist) {
    case LG_KEY_NONE: return -1;
    case LG_KEY_ROUND_ROBIN: return (int64_t)(p->key_rr++ % o->key_count);
    case LG_KEY_RANDOM: return (int64_t)lg_rand_below(&p->w->rng, o->key_count);
    case LG_KEY_ZIPF: return lg_zipf_sample(p->w->sh->zipf, &p->w->rng);
    }
    return -1;
}

/* Keyed messages go to the partition of their key (among this producer's partitions,
 * so each partition still has one writer). Unkeyed ones stick to one partition until its
 * batch is sealed, then move on (Kafka's sticky partitioner, KIP-480): spraying them
 * round-robin would make one tiny batch per partition. */
static uint32_t pick_part(struct lg_producer *p, int64_t key) {
    if (key < 0) return p->sticky;
    uint64_t h = (uint64_t)key * UINT64_C(0x9E3779B97F4A7C15);
    return (uint32_t)((h >> 32) % p->part_count);
}

static void sticky_advance(struct lg_producer *p, uint32_t sealed_part) {
    if (sealed_part == p->sticky) p->sticky = (p->sticky + 1) % p->part_count;
}

static void sealed_push(struct lg_producer *p, uint32_t id) {
    p->slots[id].next_sealed = NO_SLOT;
    if (p->sealed_tail == NO_SLOT) p->sealed_head = id;
    else p->slots[p->sealed_tail].next_sealed = id;
    p->sealed_tail = id;
    p->sealed_count++;
}

static int seal(struct lg_producer *p, uint32_t part) {
    struct ppart *pp = &p->parts[part];
    assert(pp->filling >= 0);
    struct slot *s = &p->slots[pp->filling];
    assert(s->state == SLOT_FILLING && s->count > 0);
    struct lg_worker *w = p->w;
    struct record_batch_spec spec = record_batch_spec_default();
    spec.codec = (enum record_codec)w->sh->o->codec;
    enum record_error e = RECORD_OK;
    if (p->direct) { /* the records are in place: header and CRC */
        record_batch_header_write(s->out, &spec, (int32_t)s->count, s->base_ts_ms,
                                  s->max_ts_ms, s->direct_bytes);
        record_batch_update_crc(s->out);
        s->out_len = RECORD_BATCH_HEADER_BYTES + s->direct_bytes;
    } else {
        e = record_batch_write(&w->codecs, &spec, s->recs, (int32_t)s->count, s->out,
                               p->out_bytes, w->scratch, w->scratch_bytes, &s->out_len);
    }
    if (e != RECORD_OK) {
        snprintf(w->error, sizeof w->error, "record_batch_write: %s", record_error_str(e));
        return -1;
    }
    s->state = SLOT_SEALED;
    sealed_push(p, (uint32_t)pp->filling);
    pp->filling = -1;
    return 0;
}

static int32_t slot_take(struct lg_producer *p, uint32_t part) {
    if (p->free_count == 0) return -1;
    for (uint32_t i = 0; i < p->slot_count; i++) {
        struct slot *s = &p->slots[i];
        if (s->state != SLOT_FREE) continue;
        s->state = SLOT_FILLING;
        s->part = part;
        s->count = 0;
        s->value_bytes = 0;
        s->staging_used = 0;
        s->direct_bytes = 0;
        p->free_count--;
        return (int32_t)i;
    }
    assert(0 && "free_count says a slot is free");
    return -1;
}

static bool batch_full(const struct lg_producer *p, const struct ppart *pp, uint32_t size,
                       size_t need) {
    if (pp->filling < 0) return false;
    const struct slot *s = &p->slots[pp->filling];
    /* batch-size bounds the encoded batch, as librdkafka's batch.size does: brokers
     * refuse batches over message.max.bytes (Kafka's default is 1 MiB + 12) */
    size_t encoded = RECORD_BATCH_HEADER_BYTES + s->staging_used + size +
                     (size_t)(s->count + 1) * LG_RECORD_OVERHEAD_MAX_BYTES;
    return s->count == p->max_records || s->staging_used + need > p->staging_bytes ||
           encoded > p->w->sh->o->batch_bytes;
}

/* Stage one message (key, value) in s for record_batch_write at seal time (compressed
 * batches). Returns the staging bytes it took. */
static size_t append_staged(struct lg_producer *p, struct ppart *pp, struct slot *s,
                            int64_t key, uint64_t intended_ns, int64_t wall_ms, uint32_t size) {
    uint8_t *dst = s->staging + s->staging_used;
    struct record_in *r = &s->recs[s->count];
    memset(r, 0, sizeof *r);
    r->timestamp_ms = wall_ms;
    r->key_len = -1;
    size_t key_bytes = 0;
    if (key >= 0) {
        int n = snprintf((char *)dst, LG_KEY_MAX_BYTES, "k%lld", (long long)key);
        r->key = dst;
        r->key_len = n;
        dst += n;
        key_bytes = (size_t)n;
    }
    lg_put_u32(dst, LG_PAYLOAD_MAGIC);
    lg_put_u32(dst + 4, p->w->sh->run_id);
    lg_put_u64(dst + 8, pp->next_seq++);
    lg_put_u64(dst + 16, intended_ns);
    for (uint32_t off = LG_PAYLOAD_HEADER_BYTES; off < size;) {
        uint32_t n = size - off < sizeof p->filler ? size - off : (uint32_t)sizeof p->filler;
        memcpy(dst + off, p->filler, n);
        off += n;
    }
    r->value = dst;
    r->value_len = (int32_t)size;
    return key_bytes + size;
}

/* Encode one message straight into s's output (no compression): its value is the
 * template with this message's payload header. Returns the bytes batch_full counts for
 * it (key and value, as staged). */
static size_t append_direct(struct lg_producer *p, struct ppart *pp, struct slot *s,
                            int64_t key, uint64_t intended_ns, int64_t wall_ms, uint32_t size) {
    uint8_t key_buf[LG_KEY_MAX_BYTES];
    struct record_in r = {.key_len = -1, .value = p->value_template,
                          .value_len = (int32_t)size, .timestamp_ms = wall_ms};
    if (key >= 0) {
        r.key = key_buf;
        r.key_len = snprintf((char *)key_buf, sizeof key_buf, "k%lld", (long long)key);
    }
    uint8_t *v = p->value_template;
    lg_put_u32(v, LG_PAYLOAD_MAGIC);
    lg_put_u32(v + 4, p->w->sh->run_id);
    lg_put_u64(v + 8, pp->next_seq++);
    lg_put_u64(v + 16, intended_ns);
    if (s->count == 0) s->base_ts_ms = s->max_ts_ms = wall_ms;
    if (wall_ms > s->max_ts_ms) s->max_ts_ms = wall_ms;
    int64_t delta_ms = wall_ms - s->base_ts_ms;
    size_t at = RECORD_BATCH_HEADER_BYTES + s->direct_bytes;
    assert(at + record_encoded_bytes(&r, delta_ms, (int32_t)s->count) <= p->out_bytes);
    s->direct_bytes += record_encode(s->out + at, &r, delta_ms, (int32_t)s->count);
    return (r.key_len > 0 ? (size_t)r.key_len : 0) + size;
}

/* Append one message; false when no slot is available (backpressure). */
static bool append_message(struct lg_producer *p, uint64_t intended_ns, int64_t wall_ms) {
    int64_t key = next_key(p);
    uint32_t part = pick_part(p, key);
    struct ppart *pp = &p->parts[part];
    uint32_t size = message_size(p);
    size_t need = size + LG_KEY_MAX_BYTES;
    if (batch_full(p, pp, size, need)) {
        if (seal(p, part) != 0) return false;
        if (key < 0) {
            sticky_advance(p, part);
            part = p->sticky;
            pp = &p->parts[part];
            if (batch_full(p, pp, size, need) && seal(p, part) != 0) return false;
        }
    }
    if (pp->filling < 0 && (pp->filling = slot_take(p, part)) < 0) return false;
    struct slot *s = &p->slots[pp->filling];
    s->staging_used += p->direct ? append_direct(p, pp, s, key, intended_ns, wall_ms, size)
                                 : append_staged(p, pp, s, key, intended_ns, wall_ms, size);
    s->value_bytes += size;
    s->intended_ns[s->count++] = intended_ns;
    lg_add(&p->w->counters.produced_msgs, 1);
    lg_add(&p->w->counters.produced_bytes, size);
    return true;
}

static int64_t wall_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void generate(struct lg_producer *p, uint64_t now_ns) {
    int64_t wall_ms = wall_clock_ms();
    /* bound the work of one step so consumers and completions get their turn */
    for (uint32_t n = 0; n < 4096 && p->messages_left > 0; n++) {
        uint64_t intended;
        uint64_t saved = p->schedule.next_index;
        if (!lg_schedule_take(&p->schedule, now_ns, &intended)) return;
        if (!append_message(p, intended, wall_ms)) {
            p->schedule.next_index = saved; /* still due: taken again when a slot frees */
            return;
        }
        if (p->messages_left != UINT64_MAX) p->messages_left--;
    }
}

static void seal_lingered(struct lg_producer *p, uint64_t now_ns, bool all) {
    uint64_t linger_ns = (uint64_t)p->w->sh->o->linger_ms * 1000000ull;
    for (uint32_t i = 0; i < p->part_count; i++) {
        struct ppart *pp = &p->parts[i];
        if (pp->filling < 0) continue;
        struct slot *s = &p->slots[pp->filling];
        if (all || now_ns >= s->intended_ns[0] + linger_ns) {
            seal(p, i);
            sticky_advance(p, i);
        }
    }
}

/* ---- requests ---------------------------------------------------------------------- */

static int send_request(struct lg_producer *p) {
    struct lg_worker *w = p->w;
    const struct lg_shared *sh = w->sh;
    uint32_t max_inflight = sh->o->max_inflight;
    struct preq *r = &p->reqs[(p->req_head + p->req_count) % max_inflight];
    assert(!r->in_use);
    memset(r, 0, offsetof(struct preq, iov));
    r->owner = p;
    /* Take sealed slots in FIFO order, one per partition; the rest stay queued. */
    uint32_t keep_head = NO_SLOT, keep_tail = NO_SLOT, kept = 0;
    while (p->sealed_head != NO_SLOT) {
        uint32_t id = p->sealed_head;
        p->sealed_head = p->slots[id].next_sealed;
        bool dup = false;
        for (uint32_t i = 0; i < r->slot_count && !dup; i++)
            dup = p->slots[r->slots[i]].part == p->slots[id].part;
        if (dup || r->slot_count == LG_REQ_MAX_BATCHES) {
            p->slots[id].next_sealed = NO_SLOT;
            if (keep_tail == NO_SLOT) keep_head = id;
            else p->slots[keep_tail].next_sealed = id;
            keep_tail = id;
            kept++;
        } else {
            r->slots[r->slot_count++] = id;
        }
    }
    p->sealed_head = keep_head;
    p->sealed_tail = keep_tail;
    p->sealed_count = kept;
    /* Group by topic: the request's topic and partition arrays live on the stack. */
    struct kafka_produce_request_topic_produce_data topics[LG_REQ_MAX_BATCHES];
    struct kafka_produce_request_partition_produce_data parts[LG_REQ_MAX_BATCHES];
    uint32_t topic_of[LG_REQ_MAX_BATCHES];
    int32_t topic_count = 0;
    uint32_t np = 0;
    for (uint32_t i = 0; i < r->slot_count; i++) {
        struct slot *s = &p->slots[r->slots[i]];
        uint32_t g = p->parts[s->part].g;
        uint32_t t = sh->part_topic[g];
        int32_t ti = -1;
        for (int32_t k = 0; k < topic_count; k++)
            if (topic_of[k] == t) ti = k;
        if (ti < 0) { /* first batch of this topic: its partitions follow contiguously */
            ti = topic_count++;
            topic_of[ti] = t;
        }
        (void)ti;
    }
    for (int32_t k = 0; k < topic_count; k++) {
        topics[k].name = kafka_str_from_cstr(sh->c->topics[topic_of[k]].name);
        topics[k].partition_data = &parts[np];
        topics[k].partition_data_count = 0;
        for (uint32_t i = 0; i < r->slot_count; i++) {
            struct slot *s = &p->slots[r->slots[i]];
            uint32_t g = p->parts[s->part].g;
            if (sh->part_topic[g] != topic_of[k]) continue;
            parts[np].index = (int32_t)sh->part_index[g];
            parts[np].records = (struct kafka_bytes){.ptr = s->out, .len = (int32_t)s->out_len};
            np++;
            topics[k].partition_data_count++;
            s->state = SLOT_INFLIGHT;
        }
    }
    struct kafka_produce_request req;
    kafka_produce_request_init(&req, sh->c->versions.produce);
    req.acks = sh->o->acks;
    req.timeout_ms = (int32_t)sh->o->request_timeout_ms;
    req.topic_data = topics;
    req.topic_data_count = topic_count;
    struct kafka_writer wr;
    kafka_writer_init_iov(&wr, r->inline_buf, sizeof r->inline_buf, r->iov, NET_SEND_MAX_IOV);
    r->correlation_id = p->next_correlation_id++;
    int rc = lg_request_encode(&wr, KAFKA_API_PRODUCE, sh->c->versions.produce,
                               r->correlation_id, &req);
    int iov_count = rc == 0 ? kafka_writer_finish(&wr) : rc;
    if (iov_count <= 0) {
        snprintf(w->error, sizeof w->error, "encode produce: %s", kafka_err_str(iov_count));
        return -1;
    }
    r->in_use = true;
    r->sent_ns = lg_now_ns();
    r->send = (struct net_send){.iov = r->iov, .iov_count = iov_count, .done = on_send_done,
                                .user = r};
    p->req_count++;
    if (net_send(w->net, p->conn, &r->send) != 0) {
        r->send_done = true;
        r->answered = true;
        for (uint32_t i = 0; i < r->slot_count; i++)
            lg_add(&w->counters.produce_errors, p->slots[r->slots[i]].count);
        req_retire_head(p);
    }
    return 0;
}

/* The oldest request still waiting for its answer, or NULL. */
static const struct preq *oldest_unanswered(const struct lg_producer *p) {
    uint32_t max_inflight = p->w->sh->o->max_inflight;
    for (uint32_t i = 0; i < p->req_count; i++) {
        const struct preq *r = &p->reqs[(p->req_head + i) % max_inflight];
        if (!r->answered) return r;
    }
    return NULL;
}

/* A request went unanswered for request_timeout_ms (a broker that stopped, or lost the
 * request): as the Java producer does, fail it and every later one -- their messages,
 * and those of batches not sent yet, count as produce errors -- and close the
 * connection. The producer is finished, so the run ends instead of waiting for an
 * answer that may never come. */
static void producer_timed_out(struct lg_worker *w, struct lg_producer *p) {
    uint32_t max_inflight = w->sh->o->max_inflight;
    uint64_t failed_msgs = 0;
    for (uint32_t i = 0; i < p->req_count; i++) {
        struct preq *r = &p->reqs[(p->req_head + i) % max_inflight];
        if (r->answered) continue;
        r->answered = true;
        for (uint32_t k = 0; k < r->slot_count; k++) failed_msgs += p->slots[r->slots[k]].count;
    }
    for (uint32_t id = p->sealed_head; id != NO_SLOT; id = p->slots[id].next_sealed)
        failed_msgs += p->slots[id].count;
    for (uint32_t i = 0; i < p->part_count; i++)
        if (p->parts[i].filling >= 0) failed_msgs += p->slots[p->parts[i].filling].count;
    lg_add(&w->counters.produce_errors, failed_msgs);
    log_warn("loadgen_request_timeout", "producer=%u timeout_ms=%u failed_msgs=%" PRIu64,
             p->number, w->sh->o->request_timeout_ms, failed_msgs);
    if (!w->error[0])
        snprintf(w->error, sizeof w->error,
                 "produce request timed out after %u ms (no answer from the broker): %" PRIu64
                 " messages failed", w->sh->o->request_timeout_ms, failed_msgs);
    producer_finish(p);
    net_close(w->net, p->conn);
}

uint64_t lg_producer_step(struct lg_worker *w, struct lg_producer *p, uint64_t now_ns) {
    if (p->finished || !p->connected || p->closed) return UINT64_MAX;
    const struct preq *oldest = oldest_unanswered(p);
    if (oldest && now_ns > oldest->sent_ns &&
        now_ns - oldest->sent_ns >= (uint64_t)w->sh->o->request_timeout_ms * 1000000ull) {
        producer_timed_out(w, p);
        return UINT64_MAX;
    }
    const struct lg_shared *sh = w->sh;
    if (!p->scheduled) { /* the schedule starts when the main thread says go */
        if (!atomic_load(&sh->go)) return 1000000;
        lg_schedule_init(&p->schedule, sh->start_ns, sh->rate_per_producer);
        p->scheduled = true;
    }
    bool stopping = now_ns >= sh->produce_until_ns || p->messages_left == 0 ||
                    atomic_load_explicit(&w->sh->abort, memory_order_relaxed);
    if (!stopping) generate(p, now_ns);
    seal_lingered(p, now_ns, stopping);
    while (p->sealed_count > 0 && p->req_count < sh->o->max_inflight)
        if (send_request(p) != 0) {
            net_close(w->net, p->conn);
            return UINT64_MAX;
        }
    if (stopping) {
        if (p->req_count == 0 && p->sealed_count == 0) producer_finish(p);
        return 1000000; /* waiting for acks */
    }
    if (p->free_count == 0 || p->req_count == sh->o->max_inflight) return 1000000;
    uint64_t wait = lg_schedule_wait_ns(&p->schedule, now_ns);
    uint64_t linger_ns = (uint64_t)sh->o->linger_ms * 1000000ull;
    for (uint32_t i = 0; i < p->part_count; i++) /* the earliest linger deadline */
        if (p->parts[i].filling >= 0) {
            uint64_t due = p->slots[p->parts[i].filling].intended_ns[0] + linger_ns;
            uint64_t left = due > now_ns ? due - now_ns : 0;
            if (left < wait) wait = left;
        }
    return wait;
}

struct net_conn *lg_producer_conn(struct lg_producer *p) { return p->closed ? NULL : p->conn; }
