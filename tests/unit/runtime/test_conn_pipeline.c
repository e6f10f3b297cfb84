/* test_conn_pipeline.c - pipelined requests on one connection (conn.c's request ring),
 * over the real kernel-socket backend (io_uring, loopback TCP):
 * - several deferred requests are in progress at once and may complete in any order;
 *   their responses still leave in request order, none before the earlier ones;
 * - a request answered at once behind a deferred one waits for it (held in its slot),
 *   also when the answer is too big for the slot's inline buffer;
 * - a request without a response (Produce acks=0) keeps its place and sends nothing;
 * - a control-plane request runs alone: it starts when the earlier ones are done, and
 *   nothing after it starts before it is done;
 * - the number of requests in progress is bounded by max_inflight_per_conn;
 * - a failed request closes the connection after the responses before it;
 * - a big frame buffered whole is offered to its handler (handler_ctx.frame_block), which
 *   keeps the block instead of copying: the bytes stay intact while the connection
 *   goes on reading into a new stash; also a frame that waited while the connection was
 *   paused, with more bytes arriving behind it; but not a small frame left alone in a
 *   stash grown for many;
 * - a connection's idle time starts at its accept, stamped with the clock of the
 *   iteration that accepted it (kserver_clock), not that of an older tick.
 *
 * The test drives one connection layer on its own io_uring from this thread (the shard
 * loop in miniature), with its own handler table: Produce (api 0) defers and the test
 * completes it, Metadata (api 3) answers at once, FindCoordinator (api 10) defers. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/conn.h"
#include "dataplane/frame.h"
#include "dataplane/net/uring_sock.h"
#include "hw/uring_op.h"

#define CHUNK_BYTES (64u * 1024u)
#define RECV_BUFFERS 16u
#define API_PRODUCE 0
#define API_METADATA 3
#define API_FIND_COORDINATOR 10
#define MAX_TOKENS 64

static struct io_uring ring;
static struct chunk_pool pool;
static uint8_t *recv_buffers[RECV_BUFFERS];
static struct kserver *ks;
static struct net_backend *net;
static struct broker_identity identity = {.node_id = 1, .advertised_host = "127.0.0.1",
                                          .cluster_id = "t"};
static _Atomic int32_t connections;
static int port;

/* ---- handlers -------------------------------------------------------------------- */

static struct conn_token tokens[MAX_TOKENS];
static int32_t token_ids[MAX_TOKENS]; /* the correlation id of each deferred request */
static unsigned token_count;
static unsigned metadata_calls;
static uint32_t metadata_body_bytes = 4; /* what the Metadata handler answers */

/* Frame blocks the produce handler kept (offered for big frames), with their bodies. */
static struct kept {
    uint8_t *block;
    uint32_t cap;
    const uint8_t *body;
    size_t bytes;
    int32_t id;
} kept[8];
static unsigned kept_count;
static unsigned big_bodies_intact; /* big Produce bodies whose pattern the handler saw whole */

static bool body_pattern_ok(const uint8_t *body, size_t bytes, int32_t id);

static int defer_handler(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                         struct kafka_reader *body, struct kafka_writer *w) {
    (void)w;
    cr_assert_lt(token_count, MAX_TOKENS);
    if (ctx->frame_block) {
        cr_assert_lt(kept_count, 8);
        ctx->frame_block_taken = true;
        kept[kept_count++] = (struct kept){ctx->frame_block, ctx->frame_block_cap, body->pos,
                                           (size_t)(body->end - body->pos),
                                           hdr->correlation_id};
    }
    size_t body_bytes = (size_t)(body->end - body->pos);
    if (body_bytes >= (64u << 10) && body_pattern_ok(body->pos, body_bytes, hdr->correlation_id))
        big_bodies_intact++;
    token_ids[token_count] = hdr->correlation_id;
    tokens[token_count++] = ctx->token;
    return HANDLER_DEFERRED;
}

/* Answers at once: metadata_body_bytes bytes, each the correlation id's low byte. */
static int metadata_handler(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                            struct kafka_reader *body, struct kafka_writer *w) {
    (void)ctx, (void)body;
    if (w->buf) metadata_calls++; /* a sizing pass is not a call that answers */
    for (uint32_t i = 0; i < metadata_body_bytes; i++)
        kafka_write_int8(w, (int8_t)hdr->correlation_id);
    return w->err;
}

static const struct handler produce = {API_PRODUCE, 0, 8, defer_handler};
static const struct handler metadata = {API_METADATA, 0, 8, metadata_handler};
static const struct handler find_coordinator = {API_FIND_COORDINATOR, 0, 2, defer_handler};

static const struct handler *find_handler(int16_t api_key) {
    if (api_key == API_PRODUCE) return &produce;
    if (api_key == API_METADATA) return &metadata;
    if (api_key == API_FIND_COORDINATOR) return &find_coordinator;
    return NULL;
}

/* A deferred request's body: its correlation id twice. */
static int id_body_fn(void *arg, struct kafka_writer *w) {
    int32_t id = *(const int32_t *)arg;
    kafka_write_int32(w, id);
    kafka_write_int32(w, id);
    return w->err;
}

/* ---- the loop in miniature ------------------------------------------------------- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pump(void) {
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000000};
    struct io_uring_cqe *cqe = NULL;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
    uring_op_dispatch_ready(&ring, 256);
    kserver_tick(ks, now_ms());
    net_tick(net, now_ms());
    io_uring_submit(&ring);
}

/* pump() on a clock of the test's choosing (set before the CQEs, as the shard does). */
static void pump_at(uint64_t clock_ms) {
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000000};
    struct io_uring_cqe *cqe = NULL;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
    kserver_clock(ks, clock_ms);
    uring_op_dispatch_ready(&ring, 256);
    kserver_tick(ks, clock_ms);
    net_tick(net, clock_ms);
    io_uring_submit(&ring);
}

static void pump_some(void) {
    for (int i = 0; i < 30; i++) pump();
}

#define PUMP_UNTIL(cond) do { \
        uint64_t until_ms = now_ms() + 5000; \
        while (!(cond) && now_ms() < until_ms) pump(); \
        cr_assert(cond, "timed out waiting for " #cond); \
    } while (0)

static void setup_with(uint32_t max_inflight) {
    cr_assert_eq(io_uring_queue_init(256, &ring, 0), 0);
    cr_assert_eq(chunk_pool_init(&pool, CHUNK_BYTES, 64), 0);
    for (unsigned i = 0; i < RECV_BUFFERS; i++) recv_buffers[i] = chunk_alloc(&pool);
    struct kserver_config kc = {
        .max_conns = 8, .max_request_bytes = 1 << 20, .idle_timeout_ms = 60000,
        .max_inflight_per_conn = max_inflight, .max_connections = 8,
        .connections = &connections, .max_response_bytes = 64u << 20,
        .max_input_bytes = 1 << 20, .identity = &identity, .pool = &pool,
        .find_handler = find_handler};
    ks = kserver_create(&kc);
    cr_assert(ks);
    struct net_events events;
    kserver_net_events(&events);
    struct net_uring_config nc = {
        .ring = &ring, .max_conns = 8, .recv_buffer_count = RECV_BUFFERS,
        .recv_buffer_bytes = CHUNK_BYTES, .recv_buffers = recv_buffers, .buf_group = 7,
        .zc_threshold_bytes = 0, .listen_backlog = 16};
    char err[256];
    net = net_uring_create(&nc, &events, ks, err, sizeof err);
    cr_assert(net, "%s", err);
    kserver_attach(ks, net);
    kserver_tick(ks, now_ms());
    port = net_listen(net, "127.0.0.1", 0);
    cr_assert_gt(port, 0);
    token_count = 0;
    kept_count = 0;
    big_bodies_intact = 0;
    metadata_calls = 0;
    metadata_body_bytes = 4;
}

static void setup(void) { setup_with(16); }
static void setup_deep(void) { setup_with(KSERVER_MAX_PIPELINE + 8); }
static void setup_three(void) { setup_with(3); }

static void teardown(void) {
    net_destroy(net);
    kserver_destroy(ks);
    for (unsigned i = 0; i < RECV_BUFFERS; i++) chunk_unref(&pool, recv_buffers[i]);
    chunk_pool_destroy(&pool);
    io_uring_queue_exit(&ring);
}

/* A non-blocking client socket connected to the server (not yet accepted). */
static int client_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int client_connect(void) {
    int fd = client_socket();
    PUMP_UNTIL(kserver_conn_count(ks) == 1);
    return fd;
}

/* ---- requests and responses ------------------------------------------------------ */

/* Append one request (header v1: api key, version 1, correlation id, null client id,
 * then 4 body bytes) to buf; returns its length. */
static size_t put_request(uint8_t *buf, int16_t api_key, int32_t id) {
    uint8_t f[] = {0, 0, 0, 14, (uint8_t)(api_key >> 8), (uint8_t)api_key, 0, 1,
                   (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id,
                   0xff, 0xff, 9, 9, 9, 9};
    memcpy(buf, f, sizeof f);
    return sizeof f;
}

/* Write the requests (api key, id pairs) in one write. */
static void send_requests(int fd, const int16_t *apis, const int32_t *ids, unsigned n) {
    static uint8_t buf[64 * 18];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) len += put_request(buf + len, apis[i], ids[i]);
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
}

static void send_produces(int fd, int32_t first_id, unsigned n) {
    int16_t apis[32];
    int32_t ids[32];
    cr_assert_leq(n, 32);
    for (unsigned i = 0; i < n; i++) apis[i] = API_PRODUCE, ids[i] = first_id + (int32_t)i;
    send_requests(fd, apis, ids, n);
}

static struct conn_token token_of(int32_t id) {
    for (unsigned i = 0; i < token_count; i++)
        if (token_ids[i] == id) return tokens[i];
    cr_assert_fail("no deferred request with correlation id %d", id);
    return tokens[0];
}

static int32_t complete_ids[MAX_TOKENS]; /* body_fn args must outlive the call only */

static void complete(int32_t id) {
    complete_ids[id % MAX_TOKENS] = id;
    cr_assert(kserver_complete(ks, token_of(id), id_body_fn, &complete_ids[id % MAX_TOKENS]));
}

static void client_read(int fd, uint8_t *out, size_t n) {
    size_t got = 0;
    uint64_t until_ms = now_ms() + 10000;
    while (got < n && now_ms() < until_ms) {
        ssize_t r = read(fd, out + got, n - got);
        if (r > 0) got += (size_t)r;
        else pump();
    }
    cr_assert_eq(got, n, "read %zu of %zu bytes", got, n);
}

static int32_t be32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* Read one deferred request's response and check it is id's. */
static void expect_completed(int fd, int32_t id) {
    uint8_t r[16];
    client_read(fd, r, sizeof r);
    cr_assert_eq(be32(r), 12, "size");
    cr_assert_eq(be32(r + 4), id, "response for %d expected, got %d", id, be32(r + 4));
    cr_assert_eq(be32(r + 8), id);
    cr_assert_eq(be32(r + 12), id);
}

/* Read one Metadata response (metadata_body_bytes bytes of id). */
static void expect_metadata(int fd, int32_t id) {
    static uint8_t r[8 + (256u << 10)];
    cr_assert_leq(metadata_body_bytes, 256u << 10);
    client_read(fd, r, 8 + metadata_body_bytes);
    cr_assert_eq(be32(r), (int32_t)(4 + metadata_body_bytes));
    cr_assert_eq(be32(r + 4), id, "metadata %d expected, got %d", id, be32(r + 4));
    for (uint32_t i = 0; i < metadata_body_bytes; i++)
        cr_assert_eq(r[8 + i], (uint8_t)id, "metadata byte %u", i);
}

static void expect_nothing(int fd) {
    pump_some();
    uint8_t b;
    cr_assert_eq(read(fd, &b, 1), -1, "a response left before an earlier one");
}

/* ---- tests ----------------------------------------------------------------------- */

Test(conn_pipeline, completions_in_any_order_leave_in_request_order, .init = setup,
     .fini = teardown) {
    int fd = client_connect();
    send_produces(fd, 1, 6);
    PUMP_UNTIL(token_count == 6); /* all six in progress at once */
    static const int32_t order[] = {6, 4, 5, 2, 3};
    for (unsigned i = 0; i < 5; i++) {
        complete(order[i]);
        expect_nothing(fd); /* 1 is still in progress: nothing may leave */
    }
    complete(1);
    for (int32_t id = 1; id <= 6; id++) expect_completed(fd, id);
    /* and the connection goes on: a second round completing in order */
    send_produces(fd, 7, 3);
    PUMP_UNTIL(token_count == 9);
    for (int32_t id = 7; id <= 9; id++) complete(id);
    for (int32_t id = 7; id <= 9; id++) expect_completed(fd, id);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

Test(conn_pipeline, answers_behind_a_deferred_request_wait_and_acks0_sends_nothing,
     .init = setup, .fini = teardown) {
    int fd = client_connect();
    /* produce 1, metadata 2 (answered at once), produce 3 (acks=0), produce 4, metadata 5 */
    static const int16_t apis[] = {API_PRODUCE, API_METADATA, API_PRODUCE, API_PRODUCE,
                                   API_METADATA};
    static const int32_t ids[] = {1, 2, 3, 4, 5};
    send_requests(fd, apis, ids, 5);
    PUMP_UNTIL(token_count == 3 && metadata_calls == 2);
    expect_nothing(fd); /* the metadata answers wait behind produce 1 */
    complete(4);
    cr_assert(kserver_complete(ks, token_of(3), NULL, NULL)); /* acks=0: no response */
    expect_nothing(fd);
    complete(1);
    expect_completed(fd, 1);
    expect_metadata(fd, 2);
    expect_completed(fd, 4);
    expect_metadata(fd, 5);
    expect_nothing(fd);
    /* a completion for a request already answered is refused */
    cr_assert_not(kserver_complete(ks, token_of(3), NULL, NULL));
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

Test(conn_pipeline, a_held_answer_bigger_than_its_slot, .init = setup, .fini = teardown) {
    int fd = client_connect();
    for (int round = 0; round < 2; round++) {
        /* 1000 B: a heap block copied into a chunk; 200 KiB: bigger than a chunk, the
         * heap block itself goes to the output */
        metadata_body_bytes = round == 0 ? 1000 : 200u << 10;
        int32_t base = 10 * round;
        static int16_t apis[] = {API_PRODUCE, API_METADATA, API_PRODUCE};
        int32_t ids[] = {base + 1, base + 2, base + 3};
        send_requests(fd, apis, ids, 3);
        PUMP_UNTIL(token_count == 2u * (unsigned)round + 2u);
        complete(base + 3);
        complete(base + 1);
        expect_completed(fd, base + 1);
        expect_metadata(fd, base + 2);
        expect_completed(fd, base + 3);
    }
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

Test(conn_pipeline, a_control_plane_request_runs_alone, .init = setup, .fini = teardown) {
    int fd = client_connect();
    static const int16_t apis[] = {API_PRODUCE, API_PRODUCE, API_FIND_COORDINATOR,
                                   API_PRODUCE, API_METADATA};
    static const int32_t ids[] = {1, 2, 3, 4, 5};
    send_requests(fd, apis, ids, 5);
    PUMP_UNTIL(token_count == 2);
    pump_some();
    cr_assert_eq(token_count, 2, "FindCoordinator started with produce requests in progress");
    complete(2);
    pump_some();
    cr_assert_eq(token_count, 2, "FindCoordinator started before produce 1 was done");
    complete(1);
    PUMP_UNTIL(token_count == 3);
    cr_assert_eq(token_ids[2], 3);
    pump_some();
    cr_assert_eq(token_count, 3, "a request started while FindCoordinator was in progress");
    cr_assert_eq(metadata_calls, 0);
    complete(3);
    PUMP_UNTIL(token_count == 4 && metadata_calls == 1);
    complete(4);
    for (int32_t id = 1; id <= 4; id++) expect_completed(fd, id);
    expect_metadata(fd, 5);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

Test(conn_pipeline, requests_in_progress_are_bounded, .init = setup_three, .fini = teardown) {
    int fd = client_connect();
    send_produces(fd, 1, 7);
    PUMP_UNTIL(token_count == 3);
    pump_some();
    cr_assert_eq(token_count, 3, "more requests in progress than max_inflight_per_conn");
    complete(1);
    expect_completed(fd, 1);
    PUMP_UNTIL(token_count == 4);
    complete(3);
    complete(2);
    expect_completed(fd, 2);
    expect_completed(fd, 3);
    PUMP_UNTIL(token_count == 6);
    pump_some();
    cr_assert_eq(token_count, 6);
    for (int32_t id = 4; id <= 6; id++) complete(id);
    PUMP_UNTIL(token_count == 7);
    complete(7);
    for (int32_t id = 4; id <= 7; id++) expect_completed(fd, id);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

/* A client with as many requests in flight as KSERVER_MAX_PIPELINE has them all in
 * progress at once (16: more than the Java producer's 5, as librdkafka pipelines); the
 * next one waits for a place, without losing its order. */
Test(conn_pipeline, a_full_pipeline_is_in_progress_at_once, .init = setup_deep,
     .fini = teardown) {
    cr_assert_geq(KSERVER_MAX_PIPELINE, 16);
    int fd = client_connect();
    send_produces(fd, 1, KSERVER_MAX_PIPELINE + 1);
    PUMP_UNTIL(token_count == KSERVER_MAX_PIPELINE);
    pump_some();
    cr_assert_eq(token_count, KSERVER_MAX_PIPELINE, "one past the pipeline waits");
    for (int32_t id = 1; id <= (int32_t)KSERVER_MAX_PIPELINE; id++) complete(id);
    PUMP_UNTIL(token_count == KSERVER_MAX_PIPELINE + 1);
    complete((int32_t)KSERVER_MAX_PIPELINE + 1);
    for (int32_t id = 1; id <= (int32_t)KSERVER_MAX_PIPELINE + 1; id++) expect_completed(fd, id);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

Test(conn_pipeline, a_failed_request_closes_after_the_earlier_responses, .init = setup,
     .fini = teardown) {
    int fd = client_connect();
    send_produces(fd, 1, 3);
    PUMP_UNTIL(token_count == 3);
    kserver_fail(ks, token_of(2));
    complete(3); /* later than the failure: never sent */
    expect_nothing(fd);
    complete(1);
    expect_completed(fd, 1);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
    uint8_t b;
    ssize_t r = read(fd, &b, 1);
    cr_assert_eq(r, 0, "the connection should be closed with nothing more sent");
    close(fd);
}

/* Write all of buf to the non-blocking socket, pumping the server meanwhile. */
static void write_all(int fd, const uint8_t *buf, size_t len) {
    size_t at = 0;
    uint64_t until_ms = now_ms() + 10000;
    while (at < len && now_ms() < until_ms) {
        ssize_t n = write(fd, buf + at, len - at);
        if (n > 0) at += (size_t)n;
        pump();
    }
    cr_assert_eq(at, len);
}

/* A Produce request (header v1) with a body of body_bytes bytes of a pattern. */
static size_t put_big_request(uint8_t *buf, int32_t id, size_t body_bytes) {
    size_t len = put_request(buf, API_PRODUCE, id) - 4; /* without the 4 small body bytes */
    for (size_t i = 0; i < body_bytes; i++) buf[len + i] = (uint8_t)(i * 7u + (uint32_t)id);
    uint32_t size = (uint32_t)(len - 4 + body_bytes);
    buf[0] = (uint8_t)(size >> 24), buf[1] = (uint8_t)(size >> 16);
    buf[2] = (uint8_t)(size >> 8), buf[3] = (uint8_t)size;
    return len + body_bytes;
}

static bool body_pattern_ok(const uint8_t *body, size_t bytes, int32_t id) {
    for (size_t i = 0; i < bytes; i++)
        if (body[i] != (uint8_t)(i * 7u + (uint32_t)id)) return false;
    return true;
}

static void check_pattern(const struct kept *k, int32_t id, size_t body_bytes) {
    cr_assert_eq(k->bytes, body_bytes);
    cr_assert_geq(k->body, k->block);
    cr_assert_leq(k->body + k->bytes, k->block + k->cap);
    for (size_t i = 0; i < body_bytes; i++)
        cr_assert_eq(k->body[i], (uint8_t)(i * 7u + (uint32_t)id), "byte %zu of request %d", i,
                     id);
}

Test(conn_pipeline, a_big_frame_block_is_kept_by_its_handler, .init = setup, .fini = teardown) {
    static uint8_t buf[1u << 20];
    const size_t big = 300u << 10;
    int fd = client_connect();
    /* a big request and a small one behind it in the same bytes, then another big one */
    size_t len = put_big_request(buf, 1, big);
    len += put_request(buf + len, API_PRODUCE, 2);
    write_all(fd, buf, len);
    PUMP_UNTIL(token_count == 2);
    cr_assert_eq(kept_count, 1, "the big frame's block was not offered");
    len = put_big_request(buf, 3, big);
    write_all(fd, buf, len);
    PUMP_UNTIL(token_count == 3);
    cr_assert_eq(kept_count, 2);
    cr_assert_neq(kept[0].block, kept[1].block);
    check_pattern(&kept[0], 1, big); /* untouched by the reads after it */
    check_pattern(&kept[1], 3, big);
    struct kserver_stats st;
    kserver_stats(ks, &st);
    cr_assert_eq(st.frames_kept, 2);
    for (int32_t id = 1; id <= 3; id++) complete(id);
    for (int32_t id = 1; id <= 3; id++) expect_completed(fd, id);
    for (unsigned i = 0; i < kept_count; i++) frame_block_put(kept[i].block, kept[i].cap);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

/* Write what the socket takes of buf from *at on, without waiting. */
static void write_some(int fd, const uint8_t *buf, size_t len, size_t *at) {
    ssize_t n = *at < len ? write(fd, buf + *at, len - *at) : 0;
    if (n > 0) *at += (size_t)n;
}

/* Six big requests behind a pipeline of three: the connection pauses with the fourth
 * complete in its stash and the fifth's first bytes behind it. Those bytes are set
 * aside (later), so the waiting frame is offered to its handler alone in its block,
 * intact, and every request is handled whole and in order. (They were appended behind
 * the waiting frame: its block was regrown -- a fresh mapping -- and the frame copied
 * by its job.) */
Test(conn_pipeline, a_paused_connection_keeps_its_waiting_frame_alone, .init = setup_three,
     .fini = teardown) {
    enum { REQUESTS = 6 };
    const size_t big = 300u << 10;
    static uint8_t buf[REQUESTS * ((300u << 10) + 64)];
    size_t len = 0, at = 0;
    for (int32_t id = 1; id <= REQUESTS; id++) len += put_big_request(buf + len, id, big);
    int fd = client_connect();
    uint64_t deadline_ms = now_ms() + 5000;
    while ((token_count < 3 || at < len) && now_ms() < deadline_ms) { /* until it stops taking */
        size_t before = at;
        write_some(fd, buf, len, &at);
        pump();
        if (token_count == 3 && at == before) break;
    }
    pump_some();
    struct kserver_stats st;
    kserver_stats(ks, &st);
    cr_assert_eq(token_count, 3);
    cr_assert_geq(st.paused, 1, "the fourth request waited with the connection paused");
    for (int32_t id = 1; id <= REQUESTS; id++) {
        complete(id);
        expect_completed(fd, id);
        unsigned want = (unsigned)(id + 3 < REQUESTS ? id + 3 : REQUESTS);
        deadline_ms = now_ms() + 5000;
        while (token_count < want && now_ms() < deadline_ms) {
            write_some(fd, buf, len, &at);
            pump();
        }
        cr_assert_eq(token_count, want);
    }
    cr_assert_eq(at, len);
    for (unsigned i = 0; i < REQUESTS; i++)
        cr_assert_eq(token_ids[i], (int32_t)i + 1, "requests started in order");
    cr_assert_eq(big_bodies_intact, REQUESTS, "every request handled whole");
    bool waiting_kept = false;
    for (unsigned i = 0; i < kept_count; i++) {
        check_pattern(&kept[i], kept[i].id, big);
        waiting_kept |= kept[i].id == 4;
    }
    cr_assert(waiting_kept, "the frame that waited was offered alone in its block");
    kserver_stats(ks, &st);
    cr_assert_eq(st.frames_kept, kept_count);
    for (unsigned i = 0; i < kept_count; i++) frame_block_put(kept[i].block, kept[i].cap);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

/* Ten 70 KiB requests behind a pipeline of three wait in the stash, which grows to
 * hold them. The last one left alone there is not offered the stash's block: a job
 * would keep hundreds of KiB for a 70 KiB request and the connection would regrow its
 * stash from nothing at every pause (about one page fault per 4 KiB produced, at 64
 * requests of 64 KiB in flight). A kept block is always one made for its frame. */
Test(conn_pipeline, a_small_frame_does_not_take_a_grown_stash, .init = setup_three,
     .fini = teardown) {
    enum { REQUESTS = 10 };
    const size_t body = 70u << 10;
    static uint8_t buf[REQUESTS * ((70u << 10) + 64)];
    size_t len = 0;
    for (int32_t id = 1; id <= REQUESTS; id++) len += put_big_request(buf + len, id, body);
    int fd = client_connect();
    write_all(fd, buf, len);
    PUMP_UNTIL(token_count == 3);
    pump_some();
    for (int32_t id = 1; id <= REQUESTS; id++) {
        complete(id);
        expect_completed(fd, id);
        unsigned want = (unsigned)(id + 3 < REQUESTS ? id + 3 : REQUESTS);
        PUMP_UNTIL(token_count == want);
    }
    cr_assert_eq(big_bodies_intact, REQUESTS, "every request handled whole");
    for (unsigned i = 0; i < REQUESTS; i++) cr_assert_eq(token_ids[i], (int32_t)i + 1);
    for (unsigned i = 0; i < kept_count; i++)
        cr_assert_lt(kept[i].cap / 2, kept[i].bytes + 16, "request %d kept a %u-byte block",
                     kept[i].id, kept[i].cap);
    for (unsigned i = 0; i < kept_count; i++) frame_block_put(kept[i].block, kept[i].cap);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

/* The loop slept 59.9 s since its last tick (idle timeout 60 s), then accepted a client.
 * 1.5 s later (an idle sweep is due) that client has been idle 1.5 s, not 61.4 s: it
 * stays open. (The broker
 * stamped accepts with the last tick's clock, and before its first tick with 0: a
 * connection accepted right after start was closed as idle at once.) */
Test(conn_pipeline, idle_time_starts_at_the_accept, .init = setup, .fini = teardown) {
    uint64_t woke_ms = now_ms() + 59900;
    int fd = client_socket();
    for (int i = 0; i < 2500 && kserver_conn_count(ks) == 0; i++) pump_at(woke_ms);
    cr_assert_eq(kserver_conn_count(ks), 1, "accepted");
    for (int i = 0; i < 10; i++) pump_at(woke_ms + 1500); /* an idle sweep runs */
    cr_expect_eq(kserver_conn_count(ks), 1, "1.5 s after its accept it is not idle");
    uint8_t b;
    cr_expect_eq(read(fd, &b, 1), -1, "the broker did not close it");
    close(fd);
    for (int i = 0; i < 2500 && kserver_conn_count(ks) > 0; i++) pump_at(woke_ms + 1500);
    cr_expect_eq(kserver_conn_count(ks), 0);
}
