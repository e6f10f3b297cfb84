/* test_conn_zc.c - kserver_complete_zc over the real kernel-socket backend (io_uring,
 * loopback TCP): a zero-copy response arrives byte for byte and its release runs exactly
 * once -- after the send's done, not before; when the peer goes away with one response
 * in a stuck send and another queued behind it; at once when the connection is gone,
 * and responses (zero-copy or not) leave in request order, also when pipelined requests
 * complete out of order;
 * when the iovec list would overflow (copied instead) and when the referenced bytes are
 * small (copied instead).
 *
 * The test drives one connection layer on its own io_uring from this thread (the shard
 * loop in miniature: submit, wait briefly, dispatch completions, tick). Its handler
 * table has one API: every request defers (as Fetch does) and the test completes it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/conn.h"
#include "dataplane/net/uring_sock.h"
#include "hw/uring_op.h"

#define CHUNK_BYTES (64u * 1024u)
#define RECV_BUFFERS 16u
#define API_KEY 1 /* Fetch v4: request header v1, response header v0 */

static struct io_uring ring;
static struct chunk_pool pool;
static uint8_t *recv_buffers[RECV_BUFFERS];
static struct kserver *ks;
static struct net_backend *net;
static struct broker_identity identity = {.node_id = 1, .advertised_host = "127.0.0.1",
                                          .cluster_id = "t"};
static _Atomic int32_t connections;
static int port;

/* ---- the handler: every request defers ------------------------------------------ */

static struct conn_token tokens[8];
static unsigned token_count;

static int defer_handler(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                         struct kafka_reader *body, struct kafka_writer *w) {
    (void)hdr, (void)body, (void)w;
    cr_assert_lt(token_count, 8);
    tokens[token_count++] = ctx->token;
    return HANDLER_DEFERRED;
}

static const struct handler the_handler = {API_KEY, 0, 12, defer_handler};

static const struct handler *find_handler(int16_t api_key) {
    return api_key == API_KEY ? &the_handler : NULL;
}

/* ---- a response body: inline bytes, then records referencing a caller buffer ----- */

struct zc_body {
    const uint8_t *data;
    size_t data_bytes;
    unsigned pieces;     /* records fields the data is cut into */
    unsigned calls;      /* body() runs */
    unsigned released;   /* release() runs */
};

static int zc_body_fn(void *arg, struct kafka_writer *w) {
    struct zc_body *b = arg;
    b->calls++;
    kafka_write_int32(w, 0x11223344);
    size_t at = 0;
    for (unsigned i = 0; i < b->pieces; i++) {
        size_t n = b->data_bytes / b->pieces + (i == b->pieces - 1 ? b->data_bytes % b->pieces : 0);
        kafka_write_records(w, (struct kafka_bytes){b->data + at, (int32_t)n}, false);
        at += n;
    }
    kafka_write_int16(w, 0x5566);
    return w->err;
}

static void zc_release(void *arg) {
    struct zc_body *b = arg;
    b->released++;
}

/* The bytes a client must receive for b: size, correlation id, body. */
static size_t expected_response(const struct zc_body *b, int32_t correlation_id, uint8_t *out) {
    size_t body_bytes = 4 + b->pieces * 4 + b->data_bytes + 2;
    size_t at = 0;
    uint32_t size = (uint32_t)(4 + body_bytes);
    for (int i = 3; i >= 0; i--) out[at++] = (uint8_t)(size >> (8 * i));
    for (int i = 3; i >= 0; i--) out[at++] = (uint8_t)((uint32_t)correlation_id >> (8 * i));
    out[at++] = 0x11, out[at++] = 0x22, out[at++] = 0x33, out[at++] = 0x44;
    size_t off = 0;
    for (unsigned i = 0; i < b->pieces; i++) {
        size_t n = b->data_bytes / b->pieces + (i == b->pieces - 1 ? b->data_bytes % b->pieces : 0);
        for (int k = 3; k >= 0; k--) out[at++] = (uint8_t)((uint32_t)n >> (8 * k));
        memcpy(out + at, b->data + off, n);
        at += n, off += n;
    }
    out[at++] = 0x55, out[at++] = 0x66;
    return at;
}

/* ---- the loop in miniature ---------------------------------------------------------- */

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

static void debug_state(void) {
    struct kserver_stats st;
    kserver_stats(ks, &st);
    struct net_uring_stats ns;
    net_uring_stats(net, &ns);
    fprintf(stderr, "requests=%lu bad=%lu unsup=%lu recv_bytes=%lu conns=%u enobufs=%lu\n",
            st.requests, st.closed_bad_frame, st.closed_unsupported, ns.recv_bytes,
            kserver_conn_count(ks), ns.recv_enobufs);
}

#define PUMP_UNTIL(cond) do { \
        uint64_t until_ms = now_ms() + 5000; \
        while (!(cond) && now_ms() < until_ms) pump(); \
        if (!(cond)) debug_state(); \
        cr_assert(cond, "timed out waiting for " #cond); \
    } while (0)

static void setup(void) {
    cr_assert_eq(io_uring_queue_init(256, &ring, 0), 0);
    cr_assert_eq(chunk_pool_init(&pool, CHUNK_BYTES, 64), 0);
    for (unsigned i = 0; i < RECV_BUFFERS; i++) recv_buffers[i] = chunk_alloc(&pool);
    struct kserver_config kc = {
        .max_conns = 8, .max_request_bytes = 1 << 20, .idle_timeout_ms = 60000,
        .max_inflight_per_conn = 16, .max_connections = 8, .connections = &connections,
        .max_response_bytes = 64u << 20, .max_input_bytes = 1 << 20, .identity = &identity,
        .pool = &pool, .find_handler = find_handler};
    ks = kserver_create(&kc);
    cr_assert(ks);
    struct net_events events;
    kserver_net_events(&events);
    struct net_uring_config nc = {
        .ring = &ring, .max_conns = 8, .recv_buffer_count = RECV_BUFFERS,
        .recv_buffer_bytes = CHUNK_BYTES, .recv_buffers = recv_buffers, .buf_group = 7,
        .zc_threshold_bytes = 32 * 1024, .listen_backlog = 16};
    char err[256];
    net = net_uring_create(&nc, &events, ks, err, sizeof err);
    cr_assert(net, "%s", err);
    kserver_attach(ks, net);
    kserver_tick(ks, now_ms()); /* the clock, before any connection (idle timeouts) */
    port = net_listen(net, "127.0.0.1", 0);
    cr_assert_gt(port, 0);
    token_count = 0;
}

static void teardown(void) {
    net_destroy(net);
    kserver_destroy(ks);
    for (unsigned i = 0; i < RECV_BUFFERS; i++) chunk_unref(&pool, recv_buffers[i]);
    chunk_pool_destroy(&pool);
    io_uring_queue_exit(&ring);
}

/* A connected, non-blocking client socket (accepted by the server once pumped). */
static int client_connect(int rcvbuf_bytes) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    if (rcvbuf_bytes > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    PUMP_UNTIL(kserver_conn_count(ks) == 1);
    return fd;
}

/* Send one request (api key 1 v4, header v1) the handler defers; wait until it has. */
static void send_request(int fd, int32_t correlation_id) {
    uint8_t f[] = {0, 0, 0, 16, 0, API_KEY, 0, 4,
                   (uint8_t)(correlation_id >> 24), (uint8_t)(correlation_id >> 16),
                   (uint8_t)(correlation_id >> 8), (uint8_t)correlation_id,
                   0, 2, 'z', 'c', 1, 2, 3, 4};
    unsigned before = token_count;
    cr_assert_eq(write(fd, f, sizeof f), (ssize_t)sizeof f);
    PUMP_UNTIL(token_count == before + 1);
}

/* Two requests in one write: both are deferred at once (pipelined). */
static void send_two_requests(int fd, int32_t first_id, int32_t second_id) {
    uint8_t f[40];
    for (int k = 0; k < 2; k++) {
        int32_t id = k == 0 ? first_id : second_id;
        uint8_t one[] = {0, 0, 0, 16, 0, API_KEY, 0, 4, (uint8_t)(id >> 24), (uint8_t)(id >> 16),
                         (uint8_t)(id >> 8), (uint8_t)id, 0, 2, 'z', 'c', 1, 2, 3, 4};
        memcpy(f + 20 * k, one, 20);
    }
    unsigned before = token_count;
    cr_assert_eq(write(fd, f, sizeof f), (ssize_t)sizeof f);
    PUMP_UNTIL(token_count == before + 2);
}

/* Read exactly n bytes while pumping the server. */
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

static uint8_t big[4u << 20];
static uint8_t want[5u << 20], got[5u << 20];

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131u + seed + (i >> 9));
}

Test(conn_zc, released_once_after_the_send, .init = setup, .fini = teardown) {
    int fd = client_connect(0);
    fill(big, 300 * 1024, 1);
    struct zc_body b = {.data = big, .data_bytes = 300 * 1024, .pieces = 5};
    send_request(fd, 42);
    cr_assert(kserver_complete_zc(ks, tokens[0], zc_body_fn, &b, zc_release));
    cr_assert_eq(b.released, 0, "released before the kernel is done with the bytes");
    cr_assert_eq(b.calls, 1, "encoded once (no copying fallback)");
    size_t n = expected_response(&b, 42, want);
    client_read(fd, got, n);
    cr_assert(memcmp(got, want, n) == 0, "response bytes differ");
    struct kserver_stats st;
    kserver_stats(ks, &st);
    cr_assert_eq(st.responses_zc, 1);
    cr_assert_eq(st.responses_zc_copied, 0);
    PUMP_UNTIL(b.released > 0); /* done (after the SEND_ZC notification) */
    for (int i = 0; i < 20; i++) pump();
    cr_assert_eq(b.released, 1);
    /* the connection reads again: a second request is served the same way */
    struct zc_body b2 = {.data = big + 4096, .data_bytes = 64 * 1024, .pieces = 2};
    send_request(fd, 43);
    cr_assert(kserver_complete_zc(ks, tokens[1], zc_body_fn, &b2, zc_release));
    n = expected_response(&b2, 43, want);
    client_read(fd, got, n);
    cr_assert(memcmp(got, want, n) == 0);
    PUMP_UNTIL(b2.released == 1);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
    cr_assert_eq(b.released, 1);
    cr_assert_eq(b2.released, 1);
}

Test(conn_zc, released_once_when_the_peer_goes_with_responses_queued, .init = setup,
     .fini = teardown) {
    int fd = client_connect(4096); /* reads nothing: the first send sticks */
    fill(big, sizeof big, 2);
    struct zc_body first = {.data = big, .data_bytes = sizeof big, .pieces = 4};
    struct zc_body second = {.data = big, .data_bytes = 1u << 20, .pieces = 1};
    send_request(fd, 1);
    cr_assert(kserver_complete_zc(ks, tokens[0], zc_body_fn, &first, zc_release));
    for (int i = 0; i < 50; i++) pump(); /* the 4 MiB send cannot finish */
    cr_assert_eq(first.released, 0);
    send_request(fd, 2); /* the connection reads again after a completion */
    cr_assert(kserver_complete_zc(ks, tokens[1], zc_body_fn, &second, zc_release));
    for (int i = 0; i < 20; i++) pump();
    cr_assert_eq(second.released, 0, "queued behind the first send");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd); /* RST: the stuck send fails, the queued one is never sent */
    PUMP_UNTIL(kserver_conn_count(ks) == 0 && first.released && second.released);
    for (int i = 0; i < 20; i++) pump();
    cr_assert_eq(first.released, 1);
    cr_assert_eq(second.released, 1);
}

static int small_body_fn(void *arg, struct kafka_writer *w) {
    kafka_write_raw(w, arg, 7);
    return w->err;
}

Test(conn_zc, responses_leave_in_request_order, .init = setup, .fini = teardown) {
    /* A 2 MiB zero-copy response (its send is still in flight while the client reads
     * nothing yet), then a plain one queued behind it; twice, the second time with both
     * requests pipelined. (A peer with a 4 KiB receive buffer is test_uring_zc.c's case:
     * the backend sends plainly into a window that small, see perf/results/zcfix.md.) */
    static const uint8_t plain101[] = {0, 0, 0, 11, 0, 0, 0, 101, 'a', 'b', 'c', 'd', 'e', 'f', 'g'};
    static const uint8_t plain103[] = {0, 0, 0, 11, 0, 0, 0, 103, 'a', 'b', 'c', 'd', 'e', 'f', 'g'};
    int fd = client_connect(0);
    fill(big, 2u << 20, 4);
    struct zc_body a = {.data = big, .data_bytes = 2u << 20, .pieces = 3};
    send_request(fd, 100);
    cr_assert(kserver_complete_zc(ks, tokens[0], zc_body_fn, &a, zc_release));
    send_request(fd, 101);
    cr_assert(kserver_complete(ks, tokens[1], small_body_fn, "abcdefg"));
    for (int i = 0; i < 20; i++) pump();
    cr_assert_eq(a.released, 0);
    size_t n = expected_response(&a, 100, want);
    memcpy(want + n, plain101, sizeof plain101);
    n += sizeof plain101;
    client_read(fd, got, n);
    cr_assert(memcmp(got, want, n) == 0, "responses out of order or corrupt");
    PUMP_UNTIL(a.released == 1);

    struct zc_body c = {.data = big + 100, .data_bytes = 1u << 20, .pieces = 1};
    send_two_requests(fd, 102, 103); /* both in progress at once */
    /* the second answers first: it is held until the first has left */
    cr_assert(kserver_complete(ks, tokens[3], small_body_fn, "abcdefg"));
    for (int i = 0; i < 20; i++) pump();
    uint8_t early[8];
    cr_assert_eq(read(fd, early, sizeof early), -1, "a later response overtook an earlier one");
    cr_assert(kserver_complete_zc(ks, tokens[2], zc_body_fn, &c, zc_release));
    n = expected_response(&c, 102, want);
    memcpy(want + n, plain103, sizeof plain103);
    n += sizeof plain103;
    client_read(fd, got, n);
    cr_assert(memcmp(got, want, n) == 0, "responses out of order or corrupt");
    PUMP_UNTIL(c.released == 1);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
    cr_assert_eq(a.released, 1);
    cr_assert_eq(c.released, 1);
}

Test(conn_zc, released_at_once_when_the_connection_is_gone, .init = setup, .fini = teardown) {
    int fd = client_connect(0);
    send_request(fd, 5);
    kserver_fail(ks, tokens[0]); /* the connection closes (as after a bad request) */
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
    close(fd);
    struct zc_body b = {.data = big, .data_bytes = 100 * 1024, .pieces = 1};
    cr_assert_not(kserver_complete_zc(ks, tokens[0], zc_body_fn, &b, zc_release));
    cr_assert_eq(b.released, 1);
    cr_assert_eq(b.calls, 0);
}

/* Copying fallbacks: the response is right and release has run when complete returns. */
static void check_copied(unsigned pieces, size_t data_bytes, unsigned want_calls) {
    int fd = client_connect(0);
    fill(big, data_bytes, 3);
    struct zc_body b = {.data = big, .data_bytes = data_bytes, .pieces = pieces};
    send_request(fd, 9);
    cr_assert(kserver_complete_zc(ks, tokens[0], zc_body_fn, &b, zc_release));
    cr_assert_eq(b.released, 1, "copied: released at once");
    struct kserver_stats st;
    kserver_stats(ks, &st);
    cr_assert_eq(st.responses_zc, 0);
    cr_assert_eq(st.responses_zc_copied, 1);
    cr_assert_eq(b.calls, want_calls);
    size_t n = expected_response(&b, 9, want);
    client_read(fd, got, n);
    cr_assert(memcmp(got, want, n) == 0);
    for (int i = 0; i < 20; i++) pump();
    cr_assert_eq(b.released, 1);
    close(fd);
    PUMP_UNTIL(kserver_conn_count(ks) == 0);
}

Test(conn_zc, too_many_iovecs_are_copied, .init = setup, .fini = teardown) {
    /* 100 records fields: more than NET_SEND_MAX_IOV iovecs. The copy is bigger than a
     * chunk, so it also goes through the sized heap block (4 encodes: the iovec attempt,
     * the chunk attempt, the sizer, the heap block). */
    check_copied(100, 100 * 1024, 4);
}

Test(conn_zc, small_data_is_copied, .init = setup, .fini = teardown) {
    check_copied(2, 2000, 2); /* iovec attempt, then the copy into a chunk */
}
