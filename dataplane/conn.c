/* conn.c - Kafka connections: framing, dispatch, in-order responses, limits.
 *
 * Input. Received bytes are scanned in place (frame.h): every complete frame in the
 * backend's receive buffer is handled straight from it, without a copy. Only the tail
 * of a buffer (a partial frame, or frames left while the connection is paused) is
 * copied into the connection's stash, which grows to what that tail needs and is bounded
 * by socket.request.max.bytes plus one receive burst; an idle connection holds no stash.
 * A frame in progress is completed with the received bytes up to its end only (the rest
 * is handled in place), so a big frame lies alone in its stash block: its handler may
 * keep that block instead of copying the request (handler_ctx.frame_block; Produce
 * does), and the connection starts a new stash. Big blocks (frame.h) are recycled per
 * thread, so a 1 MiB Produce costs neither a copy into its job nor fresh pages.
 * A paused connection keeps that property: the bytes that arrive behind a big frame
 * waiting in the stash go to a second buffer (later), handled in arrival order on
 * resume, so the waiting frame is neither copied by its job nor has its block regrown
 * around it (a fresh mapping each time). Only a block made for its frame is offered
 * (stash_is_frame_block): a small frame left alone in a stash grown for many is copied,
 * and the stash stays.
 * The frame size is checked as soon as its 4 bytes arrive, before any body is buffered.
 * All stashes of a shard share a soft budget (sluice.shard.input.max.bytes, see
 * stash_append) so many large half-sent requests cannot grow the shard without bound.
 *
 * Dispatch. The request header is decoded, the api key looked up in the handler table
 * (handlers.h); an api key without a handler closes the connection (logged,
 * rate-limited), as Kafka does with a request it cannot parse. ApiVersions at an
 * unsupported version is answered (v0 fallback) by its handler.
 *
 * Pipelining. A handler may answer later (HANDLER_DEFERRED: a request routed to other
 * shards or to control); the connection goes on reading, so a client that pipelines
 * (librdkafka: max.in.flight 5) has several requests in progress at once -- several
 * Produce requests of one connection reach the log in one group commit instead of one
 * fdatasync each. Each request in progress holds a slot of the connection's request
 * ring (KSERVER_MAX_PIPELINE slots, fewer when max_inflight_per_conn says so), in
 * arrival order; its token names the slot (conn_token.request). Responses leave in
 * request order: a response is appended to the output only when every earlier request
 * has answered; one that is ready earlier (a deferred request completed before an
 * earlier one, or a request answered at once behind a deferred one) is encoded into its
 * slot -- a small inline buffer, or an exact-size heap block for a big one -- and moved
 * to the output when the slots before it are done (conn_drain). A request without a
 * response (Produce acks=0) keeps its slot until it completes and then leaves nothing,
 * so it never lets a later response overtake an earlier one.
 * Only data-path requests overlap (Produce, Fetch, ListOffsets, Metadata, ApiVersions:
 * may_overlap); any other request (the control plane: groups, transactions, admin) is
 * handled only when nothing else is in progress, and nothing else is handled while it
 * is, as Kafka mutes a channel with a request in progress -- so a control-plane request
 * never runs out of order with the requests around it. A completion at the head of the
 * ring may use one spare output slot and falls back to an exact-size heap block when no
 * chunk is free, so it never has to wait; with the output full it is held in its slot.
 *
 * Output, in request order. Responses are appended in arrival order to a short FIFO of
 * output blocks: 64 KiB chunks of the shard's chunk
 * pool, or, for one response bigger than a chunk, a heap block of its exact size. At most
 * one send per connection is in flight; it carries every block queued when it started.
 * Blocks are frozen once in a send, released when it completes. Pipelining is bounded:
 * at max_inflight_per_conn requests in progress plus queued responses, a full request
 * ring, a full block FIFO, or an empty chunk pool, the connection stops reading
 * (net_recv_pause) and resumes when a request completes or a send completes (or, for the
 * pool, when the tick sees free chunks).
 *
 * Zero-copy completions (kserver_complete_zc, for Fetch). The response is encoded with an
 * iovec-mode writer into a fresh chunk: size prefix, header and the other inline fields
 * fill the chunk's front, the record bytes stay where the caller holds them (batch cache
 * chunks) and are referenced by iovecs kept at the chunk's end (NET_SEND_MAX_IOV of
 * them). That block sits in the FIFO like any other but is sent alone, with its own iovec
 * list (big ones go out as SENDMSG_ZC), and its release(arg) runs exactly once when the
 * block is released: after that send's done (0 or error), or when the connection closes
 * or the server is destroyed with it still queued. No new response is ever appended to
 * it, so request order holds. When the iovecs would not fit (many partitions), no chunk
 * is free, the referenced bytes are small (a copy is cheaper than a separate send), or
 * an earlier request of the connection is still in progress, the response takes the
 * copying path and release runs at once.
 *
 * Closing is requested with want_close and carried out by conn_settle() at the end of
 * each entry point (received, send done, tick), so no callback frees a connection that
 * a caller further up the stack is still using. Queued responses are flushed before the
 * close (reading stops meanwhile); an idle timeout closes at once.
 *
 * Metrics (cfg.stats, dataplane/stats.h): connections accepted/closed, and per API the
 * requests answered with their latency (frame handled -> response queued; a deferred
 * request from its arrival to kserver_complete), and requests refused at the framing
 * level (unsupported version: 35, unparsable: -1). */
#include "dataplane/conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/frame.h"
#include "dataplane/kafka/kafka_msgs.h"
#include "hw/log.h"

#define OUT_BLOCKS 4                  /* blocks new responses may use */
#define OUT_SLOTS (OUT_BLOCKS + 1)    /* + one for a deferred completion */
#define ARENA_BYTES (1u << 20)
#define STASH_SLACK_BYTES (1u << 20) /* bytes that may arrive after a pause is asked */
#define ZC_MIN_EXTERNAL_BYTES (16u << 10) /* below this a zero-copy response is copied */
#define HELD_INLINE_BYTES 192u        /* a held response this small needs no heap block */

/* A request in progress, in the connection's request ring. */
enum slot_state {
    SLOT_PENDING = 1, /* deferred: its handler answers later */
    SLOT_READY,       /* answered, the response is held here until its turn */
    SLOT_DONE,        /* answered, nothing (more) to send: acks=0, or already queued */
    SLOT_FAILED,      /* kserver_fail: the connection closes when this reaches the head */
};

struct req_slot {
    uint32_t request;            /* conn_token.request */
    uint8_t state;               /* enum slot_state */
    bool alone;                  /* a request that must not overlap others (!may_overlap) */
    int8_t rhv;                  /* response header version */
    int16_t api_key;
    int32_t correlation_id;
    uint64_t start_us;           /* when the request arrived (metrics) */
    uint8_t *held;               /* READY: the encoded response, size prefix included */
    uint32_t held_bytes;
    bool held_heap;              /* held is a malloc'd block (else inline_bytes) */
    uint8_t inline_bytes[HELD_INLINE_BYTES];
};

struct out_block {
    uint8_t *base;
    uint32_t len_bytes;
    uint32_t cap_bytes;
    uint32_t responses;
    bool heap;
    bool zc;                     /* a zero-copy response: sent alone, with its own iovecs */
    uint32_t iov_count;          /* zc: the iovecs at iov (inside the chunk, past cap_bytes) */
    struct iovec *iov;
    size_t external_bytes;       /* zc: bytes the iovecs reference outside the block */
    void (*release)(void *arg);  /* zc: runs once when the block is released */
    void *release_arg;
};

struct kconn {
    struct net_conn *nc;
    struct kserver *ks;
    uint64_t last_active_ms;
    uint8_t *stash;
    uint32_t stash_len;
    uint32_t stash_cap;
    uint8_t *later;              /* bytes that came behind a big frame waiting while paused */
    uint32_t later_len;
    uint32_t later_cap;
    struct out_block out[OUT_SLOTS];
    uint8_t out_head;
    uint8_t out_count;
    uint8_t out_sending;         /* blocks (from out_head) in the send in flight */
    uint32_t inflight;           /* responses queued or being sent */
    struct net_send send;
    struct iovec iov[OUT_SLOTS];
    bool in_use;
    bool paused;
    bool waiting_room;           /* paused until the shard has chunks / input budget */
    bool want_close;
    bool force_close;            /* close without waiting for queued responses */
    bool close_requested;
    bool alone;                  /* a request that runs alone is in progress */
    uint32_t generation;         /* tells this connection from a later one in the slot */
    uint32_t head_request;       /* request number of the oldest slot */
    uint32_t slot_count;         /* requests in progress (slots from head_request on) */
};

struct kserver {
    struct kserver_config cfg;
    struct net_backend *net;
    struct kconn *conns;
    struct req_slot *slots;      /* KSERVER_MAX_PIPELINE per connection slot */
    uint32_t pipeline_depth;     /* slots a connection may use */
    unsigned live;
    unsigned waiters;            /* connections with waiting_room */
    size_t stash_bytes;          /* capacity of every stash: the shard's input buffering */
    bool draining;
    uint64_t now_ms;
    uint64_t next_sweep_ms;
    uint32_t next_generation;
    struct kafka_arena arena;
    uint8_t *arena_mem;
    struct kserver_stats stats;
    struct log_ratelimit bad_frame_rl;
    struct log_ratelimit unsupported_rl;
    struct log_ratelimit refuse_rl;
};

enum req_result { REQ_DONE, REQ_WAIT, REQ_CLOSE, REQ_DEFERRED };

static void conn_flush(struct kserver *ks, struct kconn *c);
static void conn_progress(struct kserver *ks, struct kconn *c);
static void stash_handed_over(struct kserver *ks, struct kconn *c);

/* The stash holds one complete big frame and is a block made for it (the frame fills
 * more than half of it): its handler may keep the block (encode_response). A small
 * frame left alone in a stash grown for many is not offered: the job would keep
 * megabytes for it, and the connection would regrow its stash from nothing. */
static bool stash_is_frame_block(const struct kconn *c) {
    return c->stash_len >= 4 && c->stash_len == 4 + (size_t)frame_be32(c->stash) &&
           c->stash_cap >= FRAME_BLOCK_MIN_BYTES && c->stash_cap / 2 < c->stash_len;
}

static uint64_t clock_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000ull;
}

static void count_request(struct kserver *ks, int16_t api_key, uint64_t start_us) {
    if (ks->cfg.stats) stats_request(ks->cfg.stats, api_key, clock_us() - start_us);
}

static void count_refused(struct kserver *ks, int16_t api_key, int16_t error_code) {
    if (ks->cfg.stats) stats_error(ks->cfg.stats, api_key, error_code);
}

/* ---- closing and pausing ----------------------------------------------------------- */

/* Carry out a requested close. Responses already queued leave first (a good request
 * pipelined before a bad frame is answered, as Kafka does), unless force_close. */
static void conn_settle(struct kserver *ks, struct kconn *c) {
    if (!c->in_use || !c->want_close || c->close_requested) return;
    if (c->out_count > 0 && !c->force_close) {
        if (!c->paused) {
            c->paused = true;
            net_recv_pause(ks->net, c->nc);
        }
        conn_flush(ks, c); /* on_send_done settles again */
        return;
    }
    c->close_requested = true;
    net_close(ks->net, c->nc); /* may run closed() now: c must not be used after this */
}

static void conn_pause(struct kserver *ks, struct kconn *c) {
    if (c->paused) return;
    c->paused = true;
    ks->stats.paused++;
    net_recv_pause(ks->net, c->nc);
}

/* ---- output blocks ----------------------------------------------------------------- */

static struct out_block *out_at(struct kconn *c, unsigned i) {
    assert(i < c->out_count);
    return &c->out[(c->out_head + i) % OUT_SLOTS];
}

static void block_release(struct kserver *ks, struct out_block *b) {
    if (b->heap) free(b->base);
    else if (b->base) chunk_unref(ks->cfg.pool, b->base);
    void (*release)(void *arg) = b->release;
    void *release_arg = b->release_arg;
    memset(b, 0, sizeof *b);
    if (release) release(release_arg); /* the referenced bytes are no longer needed */
}

/* The last block when it can still take bytes (a chunk not yet in a send). */
static struct out_block *out_tail_open(struct kconn *c) {
    if (c->out_count == 0 || c->out_count == c->out_sending) return NULL;
    struct out_block *b = out_at(c, c->out_count - 1u);
    return b->heap || b->zc ? NULL : b;
}

static struct out_block *out_push(struct kconn *c) {
    if (c->out_count == OUT_SLOTS) return NULL;
    struct out_block *b = &c->out[(c->out_head + c->out_count) % OUT_SLOTS];
    c->out_count++;
    memset(b, 0, sizeof *b);
    return b;
}

/* Park c until the tick sees shard resources (chunks, input budget) again. */
static void wait_for_room(struct kserver *ks, struct kconn *c) {
    if (!c->waiting_room) {
        c->waiting_room = true;
        ks->waiters++;
    }
    conn_pause(ks, c);
}

/* A new chunk block. A deferred completion (completing) may take the spare slot and
 * never parks the connection: without a chunk it falls back to a heap block. */
static struct out_block *out_new_chunk(struct kserver *ks, struct kconn *c, bool completing) {
    if (c->out_count >= (completing ? OUT_SLOTS : OUT_BLOCKS)) return NULL;
    uint8_t *mem = chunk_alloc(ks->cfg.pool);
    if (!mem) {
        if (!completing) wait_for_room(ks, c);
        return NULL;
    }
    struct out_block *b = out_push(c);
    b->base = mem;
    b->cap_bytes = (uint32_t)ks->cfg.pool->chunk_bytes;
    return b;
}

/* Drop an empty open tail block (a fresh chunk the response did not fit in). */
static void out_drop_empty_tail(struct kserver *ks, struct kconn *c) {
    struct out_block *b = out_tail_open(c);
    if (b && b->len_bytes == 0) {
        block_release(ks, b);
        c->out_count--;
    }
}

/* ---- request slots ----------------------------------------------------------------- */

/* Requests that may be in progress together with others of their connection: the data
 * path. Anything else runs alone (see the top comment). */
static bool may_overlap(int16_t api_key) {
    switch (api_key) {
    case KAFKA_API_PRODUCE:
    case KAFKA_API_FETCH:
    case KAFKA_API_LIST_OFFSETS:
    case KAFKA_API_METADATA:
    case KAFKA_API_API_VERSIONS:
        return true;
    default:
        return false;
    }
}

static struct req_slot *slot_at(struct kserver *ks, struct kconn *c, uint32_t request) {
    size_t conn_index = (size_t)(c - ks->conns);
    return &ks->slots[conn_index * KSERVER_MAX_PIPELINE + request % KSERVER_MAX_PIPELINE];
}

/* The slot of a request still in progress, or NULL. */
static struct req_slot *slot_find(struct kserver *ks, struct kconn *c, uint32_t request) {
    if (request - c->head_request >= c->slot_count) return NULL;
    struct req_slot *s = slot_at(ks, c, request);
    assert(s->request == request);
    return s;
}

static struct req_slot *slot_head(struct kserver *ks, struct kconn *c) {
    return c->slot_count > 0 ? slot_at(ks, c, c->head_request) : NULL;
}

/* The request number the next slot gets (a handler's token carries it). */
static uint32_t next_request(const struct kconn *c) { return c->head_request + c->slot_count; }

static struct req_slot *slot_push(struct kserver *ks, struct kconn *c, int16_t api_key,
                                  int32_t correlation_id, int rhv, uint64_t start_us) {
    assert(c->slot_count < ks->pipeline_depth);
    struct req_slot *s = slot_at(ks, c, next_request(c));
    s->request = next_request(c);
    s->state = SLOT_PENDING;
    s->alone = !may_overlap(api_key);
    s->rhv = (int8_t)rhv;
    s->api_key = api_key;
    s->correlation_id = correlation_id;
    s->start_us = start_us;
    s->held = NULL;
    s->held_bytes = 0;
    s->held_heap = false;
    c->slot_count++;
    return s;
}

static void slot_free_held(struct req_slot *s) {
    if (s->held_heap) free(s->held);
    s->held = NULL;
    s->held_heap = false;
    s->held_bytes = 0;
}

/* Drop the newest slot (a request that turned out not to need one). */
static void slot_unpush(struct kserver *ks, struct kconn *c) {
    assert(c->slot_count > 0);
    c->slot_count--;
    slot_free_held(slot_at(ks, c, next_request(c)));
}

static void slot_pop(struct kserver *ks, struct kconn *c) {
    struct req_slot *s = slot_head(ks, c);
    assert(s && s->state != SLOT_PENDING);
    slot_free_held(s);
    s->state = 0;
    c->head_request++;
    c->slot_count--;
}

static void slots_release_all(struct kserver *ks, struct kconn *c) {
    while (c->slot_count > 0) {
        slot_free_held(slot_head(ks, c));
        c->head_request++;
        c->slot_count--;
    }
}

/* Whether the connection may start the request in frame (body_bytes long) now. */
static bool may_start(const struct kserver *ks, const struct kconn *c, const uint8_t *body,
                      uint32_t body_bytes) {
    if (c->alone || c->slot_count >= ks->pipeline_depth) return false;
    if (c->inflight + c->slot_count >= ks->cfg.max_inflight_per_conn) return false;
    if (c->slot_count == 0 || body_bytes < 2) return true;
    return may_overlap((int16_t)((uint16_t)body[0] << 8 | body[1]));
}

/* ---- requests ---------------------------------------------------------------------- */

static int16_t be16(const uint8_t *p) { return (int16_t)((uint16_t)p[0] << 8 | p[1]); }

/* Where a response body comes from: a handler run now, or a deferred completion. */
struct body_source {
    response_body_fn body;       /* deferred completion; NULL: run the handler */
    void *body_arg;
    const struct handler *h;
    const struct kafka_request_header *hdr;
    const struct kafka_reader *reader;
    struct kconn *c;
    const uint8_t *frame;
    uint32_t frame_bytes;
    int32_t correlation_id;
    uint32_t request;            /* the token's request number */
};

/* Metrics: the error codes of an answer a handler wrote at once (Metadata, FindCoordinator,
 * DescribeCluster; deferred answers are counted where they are made, see router_stats.c).
 * The body is decoded once more from the output block -- only on success with a real
 * writer, so a retried or sized attempt is never counted twice. */
static void count_error_code(void *ctx, int16_t error_code) {
    struct kserver *ks = ((void **)ctx)[0];
    int16_t api_key = *(const int16_t *)((void **)ctx)[1];
    if (error_code != 0) stats_error(ks->cfg.stats, api_key, error_code);
}

static void count_answer_errors(struct kserver *ks, const struct kafka_request_header *hdr,
                                const uint8_t *body, size_t body_bytes) {
    int16_t api = hdr->request_api_key;
    if (!ks->cfg.stats || (api != KAFKA_API_METADATA && api != KAFKA_API_FIND_COORDINATOR &&
                           api != KAFKA_API_DESCRIBE_CLUSTER))
        return;
    union kafka_response_any resp;
    struct kafka_reader rd;
    kafka_reader_init(&rd, body, body_bytes);
    kafka_arena_reset(&ks->arena); /* the handler's structs are encoded already */
    if (kafka_response_decode(api, hdr->request_api_version, &rd, &ks->arena, &resp) != 0)
        return;
    void *ctx[2] = {ks, &api};
    kafka_response_errors(api, &resp, count_error_code, ctx);
}

/* Encode size prefix + response header + body into w. 0, HANDLER_DEFERRED or a
 * KAFKA_ERR_*. */
static int encode_response(struct kserver *ks, const struct body_source *src,
                           int response_header_version, struct kafka_writer *w) {
    size_t size_at = kafka_writer_reserve(w, 4);
    struct kafka_response_header rh = {.correlation_id = src->correlation_id};
    kafka_response_header_encode(w, (int16_t)response_header_version, &rh);
    size_t body_at = w->len_bytes;
    int rc;
    if (src->body) {
        rc = src->body(src->body_arg, w);
    } else {
        kafka_arena_reset(&ks->arena);
        struct kafka_reader r = *src->reader;
        struct handler_ctx ctx = {
            .identity = ks->cfg.identity, .arena = &ks->arena, .owner = ks->cfg.owner,
            .ks = ks, .token = {src->c->nc->id, src->c->generation, src->request},
            .hdr = src->hdr,
            .frame = src->frame, .frame_bytes = src->frame_bytes};
        struct kconn *c = src->c;
        if (c->stash && src->frame == c->stash + 4 && stash_is_frame_block(c)) {
            ctx.frame_block = c->stash;
            ctx.frame_block_cap = c->stash_cap;
        }
        rc = src->h->handle(&ctx, src->hdr, &r, w);
        if (ctx.frame_block_taken) stash_handed_over(ks, c);
    }
    if (rc == 0) rc = w->err;
    if (rc == 0 && w->buf)
        kafka_writer_patch_int32(w, size_at, (int32_t)(kafka_writer_size(w) - 4));
    if (rc == 0 && w->buf && !src->body && !w->iov)
        count_answer_errors(ks, src->hdr, w->buf + body_at, w->len_bytes - body_at);
    return rc;
}

static enum req_result respond(struct kserver *ks, struct kconn *c,
                               const struct body_source *src, int rhv) {
    struct out_block *b = out_tail_open(c);
    bool fresh = false;
    bool completing = src->body != NULL;
    if (!b) {
        b = out_new_chunk(ks, c, completing);
        fresh = true;
        if (!b && completing) goto heap;
        if (!b) return REQ_WAIT;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        struct kafka_writer w;
        kafka_writer_init(&w, b->base + b->len_bytes, b->cap_bytes - b->len_bytes);
        int rc = encode_response(ks, src, rhv, &w);
        if (rc == HANDLER_DEFERRED) {
            assert(!src->body);
            if (fresh) out_drop_empty_tail(ks, c);
            return REQ_DEFERRED;
        }
        if (rc == 0) {
            b->len_bytes += (uint32_t)w.len_bytes;
            b->responses++;
            c->inflight++;
            ks->stats.requests++;
            return REQ_DONE;
        }
        if (rc != KAFKA_ERR_NO_SPACE) {
            if (log_ratelimit_ok(&ks->bad_frame_rl))
                log_warn("request_failed", "conn=%u correlation_id=%d err=%s", c->nc->id,
                         src->correlation_id, kafka_err_str(rc));
            out_drop_empty_tail(ks, c);
            return REQ_CLOSE;
        }
        if (fresh || b->len_bytes == 0) break; /* a whole chunk is too small */
        b = out_new_chunk(ks, c, completing);
        fresh = true;
        if (!b && completing) goto heap;
        if (!b) return REQ_WAIT;
    }
heap:
    out_drop_empty_tail(ks, c);
    /* Bigger than a chunk: size it, then encode into a heap block of exactly that size. */
    struct kafka_writer sizer;
    kafka_writer_init_sizer(&sizer);
    int rc = encode_response(ks, src, rhv, &sizer);
    size_t need = kafka_writer_size(&sizer);
    if (rc != 0 || need > ks->cfg.max_response_bytes) {
        log_warn("response_too_large", "conn=%u correlation_id=%d bytes=%zu", c->nc->id,
                 src->correlation_id, need);
        return REQ_CLOSE;
    }
    if (c->out_count >= (src->body ? OUT_SLOTS : OUT_BLOCKS)) return REQ_WAIT;
    uint8_t *mem = malloc(need);
    if (!mem) return REQ_CLOSE;
    b = out_push(c);
    *b = (struct out_block){.base = mem, .cap_bytes = (uint32_t)need, .heap = true};
    struct kafka_writer w;
    kafka_writer_init(&w, mem, need);
    rc = encode_response(ks, src, rhv, &w);
    assert(rc == 0 && w.len_bytes == need);
    b->len_bytes = (uint32_t)need;
    b->responses = 1;
    c->inflight++;
    ks->stats.requests++;
    return REQ_DONE;
}

/* Encode a response that must wait for earlier ones into its slot s: the inline buffer,
 * or a heap block of its exact size. The slot becomes READY (conn_drain moves it out). */
static enum req_result hold_response(struct kserver *ks, struct kconn *c, struct req_slot *s,
                                     const struct body_source *src, int rhv) {
    struct kafka_writer w;
    kafka_writer_init(&w, s->inline_bytes, sizeof s->inline_bytes);
    int rc = encode_response(ks, src, rhv, &w);
    if (rc == HANDLER_DEFERRED) {
        assert(!src->body);
        return REQ_DEFERRED;
    }
    if (rc == 0) {
        s->held = s->inline_bytes;
        s->held_bytes = (uint32_t)w.len_bytes;
        s->state = SLOT_READY;
        return REQ_DONE;
    }
    struct kafka_writer sizer;
    kafka_writer_init_sizer(&sizer);
    if (rc == KAFKA_ERR_NO_SPACE) rc = encode_response(ks, src, rhv, &sizer);
    size_t need = kafka_writer_size(&sizer);
    if (rc != 0 || need > ks->cfg.max_response_bytes) {
        if (log_ratelimit_ok(&ks->bad_frame_rl))
            log_warn("request_failed", "conn=%u correlation_id=%d err=%s bytes=%zu",
                     c->nc->id, src->correlation_id, kafka_err_str(rc), need);
        return REQ_CLOSE;
    }
    uint8_t *mem = malloc(need);
    if (!mem) return REQ_CLOSE;
    kafka_writer_init(&w, mem, need);
    rc = encode_response(ks, src, rhv, &w);
    assert(rc == 0 && w.len_bytes == need);
    s->held = mem;
    s->held_heap = true;
    s->held_bytes = (uint32_t)need;
    s->state = SLOT_READY;
    return REQ_DONE;
}

/* Move a READY head slot's response to the output. False when the output has no room
 * (a send completing makes some). */
static bool out_take_held(struct kserver *ks, struct kconn *c, struct req_slot *s) {
    struct out_block *b = out_tail_open(c);
    if (b && b->cap_bytes - b->len_bytes >= s->held_bytes) {
        memcpy(b->base + b->len_bytes, s->held, s->held_bytes);
        b->len_bytes += s->held_bytes;
        b->responses++;
    } else if (c->out_count >= OUT_SLOTS) {
        return false;
    } else if (s->held_heap) { /* hand the block over as it is */
        b = out_push(c);
        *b = (struct out_block){.base = s->held, .len_bytes = s->held_bytes,
                                .cap_bytes = s->held_bytes, .responses = 1, .heap = true};
        s->held = NULL;
        s->held_heap = false;
    } else {
        uint8_t *mem = chunk_alloc(ks->cfg.pool);
        bool heap = mem == NULL;
        if (heap) mem = malloc(s->held_bytes); /* small: no chunk free */
        if (!mem) return false;
        memcpy(mem, s->held, s->held_bytes);
        b = out_push(c);
        *b = (struct out_block){.base = mem, .len_bytes = s->held_bytes, .responses = 1,
                                .heap = heap,
                                .cap_bytes = heap ? s->held_bytes
                                                  : (uint32_t)ks->cfg.pool->chunk_bytes};
    }
    c->inflight++;
    ks->stats.requests++;
    s->state = SLOT_DONE;
    return true;
}

/* Move every answered request at the head of the ring to the output, in order. A failed
 * request at the head closes the connection (after what is queued before it). */
static void conn_drain(struct kserver *ks, struct kconn *c) {
    struct req_slot *s;
    while ((s = slot_head(ks, c)) != NULL) {
        if (s->state == SLOT_PENDING) return;
        if (s->state == SLOT_FAILED) {
            c->want_close = true;
            return;
        }
        if (s->state == SLOT_READY && !out_take_held(ks, c, s)) return;
        slot_pop(ks, c);
    }
}

static enum req_result handle_request(struct kserver *ks, struct kconn *c,
                                      const uint8_t *frame, uint32_t size_bytes) {
    if (size_bytes < 8) {
        if (log_ratelimit_ok(&ks->bad_frame_rl))
            log_warn("bad_request_header", "conn=%u size=%u", c->nc->id, size_bytes);
        ks->stats.closed_bad_frame++;
        return REQ_CLOSE;
    }
    uint64_t start_us = clock_us();
    int16_t api_key = be16(frame), version = be16(frame + 2);
    const struct handler *h =
        ks->cfg.find_handler ? ks->cfg.find_handler(api_key) : handler_find(api_key);
    bool supported = h && version >= h->min_version && version <= h->max_version;
    int hv = -1;
    if (supported) hv = kafka_request_header_version(api_key, version);
    else if (h && api_key == KAFKA_API_API_VERSIONS) hv = version >= 3 ? 2 : 1;
    if (hv < 0) {
        if (log_ratelimit_ok(&ks->unsupported_rl))
            log_warn("unsupported_request", "conn=%u api_key=%d version=%d", c->nc->id, api_key,
                     version);
        ks->stats.closed_unsupported++;
        count_refused(ks, api_key, h ? KAFKA_ERROR_UNSUPPORTED_VERSION : -1);
        return REQ_CLOSE;
    }
    struct kafka_reader r;
    kafka_reader_init(&r, frame, size_bytes);
    kafka_arena_reset(&ks->arena);
    struct kafka_request_header hdr;
    if (kafka_request_header_decode(&r, (int16_t)hv, &hdr, &ks->arena) != 0) {
        if (log_ratelimit_ok(&ks->bad_frame_rl))
            log_warn("bad_request_header", "conn=%u api_key=%d version=%d", c->nc->id, api_key,
                     version);
        ks->stats.closed_bad_frame++;
        count_refused(ks, api_key, -1);
        return REQ_CLOSE;
    }
    int rhv = kafka_response_header_version(api_key, supported ? version : 0);
    assert(rhv >= 0);
    struct body_source src = {.h = h, .hdr = &hdr, .reader = &r, .c = c, .frame = frame,
                              .frame_bytes = size_bytes, .correlation_id = hdr.correlation_id,
                              .request = next_request(c)};
    /* Behind a request in progress, even an answer given now waits in a slot. */
    struct req_slot *s = NULL;
    if (c->slot_count > 0) s = slot_push(ks, c, api_key, hdr.correlation_id, rhv, start_us);
    enum req_result res = s ? hold_response(ks, c, s, &src, rhv) : respond(ks, c, &src, rhv);
    if (res == REQ_DEFERRED && !s)
        s = slot_push(ks, c, api_key, hdr.correlation_id, rhv, start_us);
    if (res == REQ_DEFERRED) {
        assert(s->request == src.request && s->state == SLOT_PENDING);
        if (s->alone) c->alone = true;
    }
    if (s && res != REQ_DONE && res != REQ_DEFERRED) slot_unpush(ks, c);
    if (res == REQ_DONE) count_request(ks, api_key, start_us);
    if (res == REQ_CLOSE) count_refused(ks, api_key, -1);
    return res;
}

/* Handle every complete frame in buf; returns the bytes consumed. Stops early when the
 * connection must pause or close. */
static size_t conn_process(struct kserver *ks, struct kconn *c, const uint8_t *buf,
                           size_t len_bytes) {
    size_t off = 0;
    while (!c->want_close && !c->paused) {
        uint32_t body;
        enum frame_status st = frame_scan(buf + off, len_bytes - off, ks->cfg.max_request_bytes,
                                          &body);
        if (st == FRAME_NEED_MORE) break;
        if (st != FRAME_COMPLETE) {
            if (log_ratelimit_ok(&ks->bad_frame_rl))
                log_warn("bad_frame_size", "conn=%u size=%d max=%u", c->nc->id,
                         (int32_t)frame_be32(buf + off), ks->cfg.max_request_bytes);
            ks->stats.closed_bad_frame++;
            c->want_close = true;
            break;
        }
        if (!may_start(ks, c, buf + off + 4, body)) {
            conn_pause(ks, c);
            break;
        }
        enum req_result res = handle_request(ks, c, buf + off + 4, body);
        if (res == REQ_WAIT) {
            conn_pause(ks, c);
            break;
        }
        if (res == REQ_CLOSE) {
            c->want_close = true;
            break;
        }
        off += 4 + (size_t)body;
    }
    return off;
}

/* Keep bytes the connection cannot handle yet (a partial frame, or frames that arrived
 * while paused). The first growth for a frame reserves the whole frame (its size is
 * known from the prefix, already checked against socket.request.max.bytes), so a frame
 * in progress never needs more memory to complete, as Kafka allocates a request buffer
 * upfront. The shard's input budget (max_input_bytes) is checked when a connection
 * starts buffering: over it, that connection stops reading until the tick sees room;
 * frames already in progress keep reading, so the budget can never deadlock them. */
static size_t input_limit(const struct kserver *ks) {
    return (size_t)ks->cfg.max_request_bytes + 4 + STASH_SLACK_BYTES;
}

/* A connection holding more input than input_limit closes (logged, rate-limited). */
static bool input_fits(struct kserver *ks, struct kconn *c, size_t held_bytes) {
    if (held_bytes <= input_limit(ks)) return true;
    if (log_ratelimit_ok(&ks->bad_frame_rl))
        log_warn("input_overflow", "conn=%u bytes=%zu", c->nc->id, held_bytes);
    c->want_close = true;
    return false;
}

static bool stash_append(struct kserver *ks, struct kconn *c, const uint8_t *data,
                         size_t len_bytes) {
    bool starting = c->stash_len == 0;
    bool over_budget = starting && ks->stash_bytes + len_bytes > ks->cfg.max_input_bytes;
    size_t need = (size_t)c->stash_len + len_bytes;
    size_t limit = input_limit(ks);
    if (!input_fits(ks, c, need + c->later_len)) return false;
    size_t frame_bytes = starting && len_bytes >= 4 ? 4 + (size_t)frame_be32(data) : 0;
    if (need > c->stash_cap && !over_budget && frame_bytes >= need && frame_bytes <= limit) {
        /* Reserve the whole frame, in a block that may come from (and go back to) the
         * cache of big frame blocks; the empty old stash goes there too. */
        uint32_t cap = 0;
        uint8_t *block = frame_block_get(frame_bytes, &cap);
        if (!block) {
            c->want_close = true;
            return false;
        }
        frame_block_put(c->stash, c->stash_cap);
        ks->stash_bytes -= c->stash_cap;
        ks->stash_bytes += cap;
        c->stash = block;
        c->stash_cap = cap;
    }
    if (need > c->stash_cap) {
        size_t cap = c->stash_cap ? (size_t)c->stash_cap * 2 : 4096;
        while (cap < need) cap *= 2;
        if (cap > limit) cap = limit;
        uint8_t *grown = realloc(c->stash, cap);
        if (!grown) {
            c->want_close = true;
            return false;
        }
        ks->stash_bytes += cap - c->stash_cap;
        c->stash = grown;
        c->stash_cap = (uint32_t)cap;
    }
    memcpy(c->stash + c->stash_len, data, len_bytes);
    c->stash_len = (uint32_t)need;
    if (over_budget) wait_for_room(ks, c);
    return true;
}

static void stash_release(struct kserver *ks, struct kconn *c) {
    assert(c->stash_len == 0);
    ks->stash_bytes -= c->stash_cap;
    frame_block_put(c->stash, c->stash_cap);
    c->stash = NULL;
    c->stash_cap = 0;
}

/* A handler kept the stash's block with its frame (handler_ctx.frame_block): the
 * connection starts afresh. */
static void stash_handed_over(struct kserver *ks, struct kconn *c) {
    ks->stash_bytes -= c->stash_cap;
    c->stash = NULL;
    c->stash_cap = 0;
    c->stash_len = 0;
    ks->stats.frames_kept++;
}

static void stash_process(struct kserver *ks, struct kconn *c) {
    if (c->stash_len == 0) return;
    const uint8_t *buf = c->stash;
    size_t used = conn_process(ks, c, buf, c->stash_len);
    if (c->stash != buf) return; /* handed over with its (only) frame */
    assert(used <= c->stash_len);
    memmove(c->stash, c->stash + used, c->stash_len - used);
    c->stash_len -= (uint32_t)used;
    if (c->stash_len == 0 && ks->stash_bytes > ks->cfg.max_input_bytes) stash_release(ks, c);
}

/* How many of the next len bytes complete the stash's frame in progress: up to its
 * size prefix, then up to its end (0 when the stash holds whole frames already). */
static size_t stash_frame_rest(const struct kconn *c, size_t len) {
    size_t want;
    if (c->stash_len < 4) want = 4u - c->stash_len;
    else {
        size_t frame_bytes = 4 + (size_t)frame_be32(c->stash);
        want = frame_bytes > c->stash_len ? frame_bytes - c->stash_len : 0;
    }
    return want < len ? want : len;
}

/* Keep bytes that arrived behind a big frame waiting in a paused connection's stash
 * (see the top of the file). The buffer comes from the frame-block cache, starts at
 * the slack and doubles; with the stash it is bounded by input_limit, and it counts in
 * the shard's input buffering. */
static bool later_append(struct kserver *ks, struct kconn *c, const uint8_t *data,
                         size_t len_bytes) {
    size_t need = (size_t)c->later_len + len_bytes;
    if (!input_fits(ks, c, need + c->stash_len)) return false;
    if (need > c->later_cap) {
        /* What arrives after a pause is mostly within the slack: one block for it. */
        size_t want = (size_t)c->later_cap * 2;
        if (want < STASH_SLACK_BYTES) want = STASH_SLACK_BYTES;
        if (want < need) want = need;
        if (want > input_limit(ks)) want = input_limit(ks);
        uint32_t cap = 0;
        uint8_t *block = frame_block_get(want, &cap);
        if (!block) {
            c->want_close = true;
            return false;
        }
        if (c->later_len > 0) memcpy(block, c->later, c->later_len);
        frame_block_put(c->later, c->later_cap);
        ks->stash_bytes += cap;
        ks->stash_bytes -= c->later_cap;
        c->later = block;
        c->later_cap = cap;
    }
    memcpy(c->later + c->later_len, data, len_bytes);
    c->later_len = (uint32_t)need;
    return true;
}

/* Keep received bytes the connection cannot handle now, in arrival order: behind a big
 * frame waiting alone in a paused connection's stash they go to later, and so does
 * everything after them until later is drained; otherwise into the stash (small
 * frames gain nothing from a block of their own). */
static bool keep_input(struct kserver *ks, struct kconn *c, const uint8_t *data, size_t len) {
    if (c->later_len > 0 || (c->paused && stash_is_frame_block(c)))
        return later_append(ks, c, data, len);
    return stash_append(ks, c, data, len);
}

/* Take received bytes, in order: complete the stash's frame in progress with the bytes
 * up to its end only (a big frame then sits alone in its block, which a handler may
 * keep), handle whole frames in place, keep the rest. Paused, nothing is handled. */
static void conn_take(struct kserver *ks, struct kconn *c, const uint8_t *data, size_t len) {
    size_t used = 0;
    while (c->stash_len > 0 && c->later_len == 0 && used < len && !c->want_close) {
        size_t n = stash_frame_rest(c, len - used);
        if (n == 0) break; /* complete frames wait in the stash: keep behind them */
        if (!stash_append(ks, c, data + used, n)) return;
        used += n;
        if (!c->paused) stash_process(ks, c);
    }
    if (used < len && !c->want_close && c->stash_len == 0 && c->later_len == 0 && !c->paused)
        used += conn_process(ks, c, data + used, len - used);
    if (used < len && !c->want_close && keep_input(ks, c, data + used, len - used) &&
        !c->paused)
        stash_process(ks, c);
}

/* Resumed: handle the bytes set aside while paused. They are taken out first, so a
 * pause while handling them sets the rest aside afresh, behind what it stashes. */
static void later_drain(struct kserver *ks, struct kconn *c) {
    uint8_t *buf = c->later;
    uint32_t len = c->later_len, cap = c->later_cap;
    c->later = NULL;
    c->later_len = c->later_cap = 0;
    conn_take(ks, c, buf, len);
    ks->stash_bytes -= cap;
    frame_block_put(buf, cap);
}

static void later_release(struct kserver *ks, struct kconn *c) {
    ks->stash_bytes -= c->later_cap;
    frame_block_put(c->later, c->later_cap);
    c->later = NULL;
    c->later_len = c->later_cap = 0;
}

/* ---- backend callbacks ------------------------------------------------------------- */

static int on_accepted(void *ctx, struct net_conn *nc) {
    struct kserver *ks = ctx;
    if (ks->draining) return -1;
    int32_t before = atomic_fetch_add(ks->cfg.connections, 1);
    if (before >= ks->cfg.max_connections) {
        atomic_fetch_sub(ks->cfg.connections, 1);
        ks->stats.refused_max_connections++;
        if (log_ratelimit_ok(&ks->refuse_rl))
            log_warn("conn_refused", "reason=max.connections max=%d", ks->cfg.max_connections);
        return -1;
    }
    assert(nc->id < ks->cfg.max_conns);
    assert(ks->now_ms > 0 && "kserver_clock before the first accept: else idle at once");
    struct kconn *c = &ks->conns[nc->id];
    assert(!c->in_use);
    memset(c, 0, sizeof *c);
    c->nc = nc;
    c->ks = ks;
    c->in_use = true;
    c->generation = ++ks->next_generation;
    c->last_active_ms = ks->now_ms;
    nc->user = c;
    ks->live++;
    if (ks->cfg.stats) stats_add(&ks->cfg.stats->connections_accepted, 1);
    return 0;
}

static void on_received(void *ctx, struct net_conn *nc, const uint8_t *data, size_t len) {
    struct kserver *ks = ctx;
    struct kconn *c = nc->user;
    assert(c && c->in_use);
    if (c->want_close) return; /* closing: input is ignored, and is not activity */
    c->last_active_ms = ks->now_ms;
    conn_take(ks, c, data, len);
    conn_flush(ks, c);
    conn_settle(ks, c);
}

static void on_send_done(struct net_send *s, int status) {
    struct kconn *c = s->user;
    struct kserver *ks = c->ks;
    assert(c->out_sending > 0 && c->out_sending <= c->out_count);
    for (unsigned i = 0; i < c->out_sending; i++) {
        struct out_block *b = out_at(c, 0);
        assert(c->inflight >= b->responses);
        c->inflight -= b->responses;
        ks->stats.responses_bytes += b->len_bytes + b->external_bytes;
        block_release(ks, b);
        c->out_head = (uint8_t)((c->out_head + 1) % OUT_SLOTS);
        c->out_count--;
    }
    c->out_sending = 0;
    if (status < 0) return; /* the backend is closing the connection */
    c->last_active_ms = ks->now_ms;
    conn_progress(ks, c);
}

static void on_closed(void *ctx, struct net_conn *nc, int reason) {
    struct kserver *ks = ctx;
    struct kconn *c = nc->user;
    assert(c && c->in_use);
    while (c->out_count > 0) { /* blocks never sent */
        block_release(ks, out_at(c, 0));
        c->out_head = (uint8_t)((c->out_head + 1) % OUT_SLOTS);
        c->out_count--;
    }
    slots_release_all(ks, c); /* later completions find the connection gone */
    if (c->waiting_room) ks->waiters--;
    ks->stash_bytes -= c->stash_cap;
    frame_block_put(c->stash, c->stash_cap);
    later_release(ks, c);
    log_debug("conn_closed", "conn=%u reason=%d", nc->id, reason);
    memset(c, 0, sizeof *c);
    nc->user = NULL;
    ks->live--;
    atomic_fetch_sub(ks->cfg.connections, 1);
    if (ks->cfg.stats) stats_add(&ks->cfg.stats->connections_closed, 1);
}

void kserver_net_events(struct net_events *out) {
    out->accepted = on_accepted;
    out->received = on_received;
    out->closed = on_closed;
}

/* Read again when the connection paused for a reason that has gone; conn_process
 * pauses again at once when the next frame still cannot start. */
static void conn_resume(struct kserver *ks, struct kconn *c) {
    if (!c->paused || ks->draining || c->want_close || c->waiting_room || c->alone) return;
    c->paused = false;
    stash_process(ks, c);
    if (c->later_len > 0 && !c->paused && !c->want_close) later_drain(ks, c);
    if (!c->paused && !c->want_close) net_recv_resume(ks->net, c->nc);
}

/* After a request completed or a send finished: queue what is now in turn, read more,
 * send, and carry out a close. */
static void conn_progress(struct kserver *ks, struct kconn *c) {
    conn_drain(ks, c);
    conn_resume(ks, c);
    conn_flush(ks, c);
    conn_settle(ks, c);
}

/* Start a send of every queued block when none is in flight. */
static void conn_flush(struct kserver *ks, struct kconn *c) {
    if (c->out_sending > 0 || c->close_requested) return;
    out_drop_empty_tail(ks, c);
    if (c->out_count == 0) return;
    struct out_block *head = out_at(c, 0);
    struct iovec *iov = c->iov;
    unsigned blocks = 0, iov_count = 0;
    if (head->zc) { /* a zero-copy response goes alone, with its own iovec list */
        iov = head->iov;
        iov_count = head->iov_count;
        blocks = 1;
    } else {
        for (; blocks < c->out_count && !out_at(c, blocks)->zc; blocks++) {
            struct out_block *b = out_at(c, blocks);
            c->iov[blocks].iov_base = b->base;
            c->iov[blocks].iov_len = b->len_bytes;
        }
        iov_count = blocks;
    }
    assert(blocks > 0 && iov_count > 0 && iov_count <= NET_SEND_MAX_IOV);
    c->out_sending = (uint8_t)blocks;
    c->send = (struct net_send){.iov = iov, .iov_count = (int)iov_count,
                                .done = on_send_done, .user = c};
    if (net_send(ks->net, c->nc, &c->send) != 0) c->out_sending = 0;
}

/* ---- server ------------------------------------------------------------------------ */

struct kserver *kserver_create(const struct kserver_config *cfg) {
    assert(cfg->pool && cfg->identity && cfg->connections && cfg->max_conns > 0);
    struct kserver *ks = calloc(1, sizeof *ks);
    if (!ks) return NULL;
    ks->cfg = *cfg;
    ks->conns = calloc(cfg->max_conns, sizeof ks->conns[0]);
    /* Pages of a connection slot's requests are touched only when it pipelines. */
    ks->slots = calloc((size_t)cfg->max_conns * KSERVER_MAX_PIPELINE, sizeof ks->slots[0]);
    ks->pipeline_depth = cfg->max_inflight_per_conn < KSERVER_MAX_PIPELINE
                             ? cfg->max_inflight_per_conn : KSERVER_MAX_PIPELINE;
    ks->arena_mem = malloc(ARENA_BYTES);
    if (!ks->conns || !ks->slots || !ks->arena_mem) {
        kserver_destroy(ks);
        return NULL;
    }
    kafka_arena_init(&ks->arena, ks->arena_mem, ARENA_BYTES);
    ks->bad_frame_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 1);
    ks->unsupported_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 1);
    ks->refuse_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 1);
    return ks;
}

void kserver_attach(struct kserver *ks, struct net_backend *net) { ks->net = net; }

/* True when some connection is reading a frame it has started (it will finish it and
 * give its stash back): then waiters can wait for the budget without stalling. */
static bool frame_in_progress(const struct kserver *ks) {
    for (uint32_t i = 0; i < ks->cfg.max_conns; i++) {
        const struct kconn *c = &ks->conns[i];
        if (c->in_use && c->stash_len > 0 && !c->paused) return true;
    }
    return false;
}

static void resume_waiters(struct kserver *ks) {
    /* Over the input budget, admit one waiter at a time, and only when nobody is
     * finishing a frame: progress is guaranteed, the overshoot is one frame. */
    bool over = ks->stash_bytes > ks->cfg.max_input_bytes;
    if (over && frame_in_progress(ks)) return;
    for (uint32_t i = 0; i < ks->cfg.max_conns && ks->waiters > 0; i++) {
        if (chunk_pool_free_count(ks->cfg.pool) == 0) return;
        struct kconn *c = &ks->conns[i];
        if (!c->in_use || !c->waiting_room) continue;
        c->waiting_room = false;
        ks->waiters--;
        conn_progress(ks, c);
        if (over) return;
    }
}

static void idle_sweep(struct kserver *ks) {
    for (uint32_t i = 0; i < ks->cfg.max_conns; i++) {
        struct kconn *c = &ks->conns[i];
        if (!c->in_use) continue;
        if (ks->now_ms - c->last_active_ms >= ks->cfg.idle_timeout_ms) {
            log_debug("conn_idle_close", "conn=%u", i);
            ks->stats.closed_idle++;
            c->want_close = true;
            c->force_close = true; /* a peer that reads nothing must not pin us */
            conn_settle(ks, c);
            continue;
        }
        if (c->stash_len == 0 && c->stash && !c->paused) stash_release(ks, c); /* idle */
    }
}

void kserver_clock(struct kserver *ks, uint64_t now_ms) {
    assert(now_ms >= ks->now_ms);
    ks->now_ms = now_ms;
}

void kserver_tick(struct kserver *ks, uint64_t now_ms) {
    kserver_clock(ks, now_ms);
    if (ks->waiters > 0) resume_waiters(ks);
    if (now_ms >= ks->next_sweep_ms) {
        uint64_t every_ms = ks->cfg.idle_timeout_ms / 4;
        if (every_ms > 1000) every_ms = 1000;
        if (every_ms < 10) every_ms = 10;
        ks->next_sweep_ms = now_ms + every_ms;
        idle_sweep(ks);
    }
}

int kserver_peer_name(struct kserver *ks, struct conn_token token, char *out,
                      size_t out_bytes) {
    if (token.conn_id >= ks->cfg.max_conns) return -ENOENT;
    struct kconn *c = &ks->conns[token.conn_id];
    if (!c->in_use || c->generation != token.generation) return -ENOENT;
    return net_peer_name(ks->net, c->nc, out, out_bytes);
}

/* The connection a token names while it is open, or NULL. */
static struct kconn *conn_of(struct kserver *ks, struct conn_token token) {
    if (token.conn_id >= ks->cfg.max_conns) return NULL;
    struct kconn *c = &ks->conns[token.conn_id];
    return c->in_use && c->generation == token.generation ? c : NULL;
}

/* The slot of a deferred request still waiting for its answer, or NULL. */
static struct req_slot *pending_slot(struct kserver *ks, struct conn_token token,
                                     struct kconn **conn) {
    struct kconn *c = conn_of(ks, token);
    struct req_slot *s = c ? slot_find(ks, c, token.request) : NULL;
    if (!s || s->state != SLOT_PENDING) return NULL;
    *conn = c;
    return s;
}

/* Encode the answer of pending slot s: straight to the output when s is the head of the
 * ring and the output has room, else into the slot. False when it cannot be encoded. */
static bool answer_slot(struct kserver *ks, struct kconn *c, struct req_slot *s,
                        response_body_fn body, void *arg) {
    struct body_source src = {.body = body, .body_arg = arg, .c = c,
                              .correlation_id = s->correlation_id, .request = s->request};
    if (s == slot_head(ks, c)) {
        enum req_result res = respond(ks, c, &src, s->rhv);
        if (res == REQ_DONE) {
            s->state = SLOT_DONE;
            return true;
        }
        if (res != REQ_WAIT) return false;
    }
    return hold_response(ks, c, s, &src, s->rhv) == REQ_DONE;
}

/* A deferred request is answered (s is READY or DONE now, or the connection closes). */
static void slot_completed(struct kserver *ks, struct kconn *c, struct req_slot *s) {
    if (s->state == SLOT_PENDING) s->state = SLOT_DONE;
    if (s->alone) c->alone = false;
    c->last_active_ms = ks->now_ms;
    count_request(ks, s->api_key, s->start_us);
    conn_progress(ks, c);
}

bool kserver_complete(struct kserver *ks, struct conn_token token, response_body_fn body,
                      void *arg) {
    struct kconn *c = NULL;
    struct req_slot *s = pending_slot(ks, token, &c);
    if (!s) return false;
    if (body && !c->want_close && !answer_slot(ks, c, s, body, arg)) {
        /* Only an oversized or unencodable response fails here. */
        log_warn("deferred_response_failed", "conn=%u api_key=%d", token.conn_id, s->api_key);
        c->want_close = true;
    }
    slot_completed(ks, c, s);
    return true;
}

/* Queue body's response as a zero-copy block (see the top comment). False when it must
 * take the copying path instead (nothing queued, release not taken). */
static bool respond_zc(struct kserver *ks, struct kconn *c, struct req_slot *s,
                       response_body_fn body, void *arg, void (*release)(void *arg)) {
    if (c->out_count >= OUT_SLOTS || s != slot_head(ks, c)) return false;
    size_t iov_bytes = NET_SEND_MAX_IOV * sizeof(struct iovec);
    if (ks->cfg.pool->chunk_bytes < 2 * iov_bytes) return false;
    uint8_t *mem = chunk_alloc(ks->cfg.pool);
    if (!mem) return false;
    size_t cap_bytes = ks->cfg.pool->chunk_bytes - iov_bytes;
    struct iovec *iov = (struct iovec *)(void *)(mem + cap_bytes);
    struct kafka_writer w;
    kafka_writer_init_iov(&w, mem, cap_bytes, iov, NET_SEND_MAX_IOV);
    struct body_source src = {.body = body, .body_arg = arg, .c = c,
                              .correlation_id = s->correlation_id, .request = s->request};
    int rc = encode_response(ks, &src, s->rhv, &w);
    int iov_count = rc == 0 ? kafka_writer_finish(&w) : rc;
    if (iov_count <= 0 || w.external_bytes < ZC_MIN_EXTERNAL_BYTES ||
        kafka_writer_size(&w) > ks->cfg.max_response_bytes) {
        chunk_unref(ks->cfg.pool, mem);
        return false;
    }
    struct out_block *b = out_push(c);
    *b = (struct out_block){.base = mem, .len_bytes = (uint32_t)w.len_bytes,
                            .cap_bytes = (uint32_t)cap_bytes, .responses = 1, .zc = true,
                            .iov = iov, .iov_count = (uint32_t)iov_count,
                            .external_bytes = w.external_bytes, .release = release,
                            .release_arg = arg};
    c->inflight++;
    ks->stats.requests++;
    ks->stats.responses_zc++;
    return true;
}

bool kserver_complete_zc(struct kserver *ks, struct conn_token token, response_body_fn body,
                         void *arg, void (*release)(void *arg)) {
    assert(body && release);
    struct kconn *c = NULL;
    struct req_slot *s = pending_slot(ks, token, &c);
    if (!s) {
        release(arg);
        return false;
    }
    if (!c->want_close && respond_zc(ks, c, s, body, arg, release)) {
        s->state = SLOT_DONE;
        slot_completed(ks, c, s);
        return true;
    }
    if (!c->want_close) ks->stats.responses_zc_copied++;
    bool ok = kserver_complete(ks, token, body, arg); /* the copying path */
    release(arg);
    return ok;
}

void kserver_fail(struct kserver *ks, struct conn_token token) {
    struct kconn *c = NULL;
    struct req_slot *s = pending_slot(ks, token, &c);
    if (!s) return;
    s->state = SLOT_FAILED; /* earlier responses leave first; conn_drain closes */
    c->alone = true;        /* and nothing more is read */
    ks->stats.closed_bad_frame++;
    conn_pause(ks, c);
    conn_progress(ks, c);
}

void kserver_begin_drain(struct kserver *ks) {
    if (ks->draining) return;
    ks->draining = true;
    net_stop_listening(ks->net);
    for (uint32_t i = 0; i < ks->cfg.max_conns; i++) {
        struct kconn *c = &ks->conns[i];
        if (!c->in_use) continue;
        c->want_close = true; /* settle flushes queued responses, then closes */
        conn_settle(ks, c);
    }
}

unsigned kserver_conn_count(const struct kserver *ks) { return ks->live; }

void kserver_stats(const struct kserver *ks, struct kserver_stats *out) { *out = ks->stats; }

void kserver_destroy(struct kserver *ks) {
    if (!ks) return;
    if (ks->conns) {
        for (uint32_t i = 0; i < ks->cfg.max_conns; i++) {
            struct kconn *c = &ks->conns[i];
            if (!c->in_use) continue;
            while (c->out_count > 0) {
                block_release(ks, out_at(c, 0));
                c->out_head = (uint8_t)((c->out_head + 1) % OUT_SLOTS);
                c->out_count--;
            }
            slots_release_all(ks, c);
            frame_block_put(c->stash, c->stash_cap);
            frame_block_put(c->later, c->later_cap);
            atomic_fetch_sub(ks->cfg.connections, 1);
        }
    }
    free(ks->conns);
    free(ks->slots);
    free(ks->arena_mem);
    free(ks);
    frame_blocks_release();
}
