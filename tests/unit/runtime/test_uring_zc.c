/* test_uring_zc.c - the kernel-socket backend's large sends over real io_uring and
 * loopback TCP, to a peer that reads slowly (1 KiB a read).
 *
 * A 2 MiB send of 3 iovecs (small head, 2 MiB body, small tail: the shape of a zero-copy
 * Fetch response) to a client with SO_RCVBUF 4096 used to stop after 96-196 KiB: the
 * kernel took 1.2 MiB of the SENDMSG_ZC, sent part of it into the peer's ~1.8 KiB
 * window and then sent nothing more, so its notification never came (a single iovec
 * whose data starts 2048 bytes into a page stalls the same way). The backend now sends
 * such a peer plain SENDMSG (see peer_window_allows_zc in uring_sock.c). The tests check,
 * for narrow and wide peer windows, zero copy on and off: every byte arrives in order,
 * `done` runs exactly once with 0, and only after every zero-copy notification of the
 * send has been seen; a zero-copy send the kernel takes in parts is continued.
 *
 * The test drives the backend on its own io_uring from this thread (the shard loop in
 * miniature: submit, wait briefly, dispatch completions). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/net/uring_sock.h"
#include "hw/uring_op.h"

#define RECV_BUFFERS 8u
#define RECV_BUFFER_BYTES 4096u
#define BODY_BYTES (2u << 20)

static struct io_uring ring;
static uint8_t *recv_buffers[RECV_BUFFERS];
static struct net_backend *net;
static struct net_conn *server_conn;
static int port;

static int on_accepted(void *ctx, struct net_conn *c) {
    (void)ctx;
    cr_assert_null(server_conn);
    server_conn = c;
    return 0;
}

static void on_received(void *ctx, struct net_conn *c, const uint8_t *data, size_t len) {
    (void)ctx, (void)c, (void)data, (void)len;
}

static void on_closed(void *ctx, struct net_conn *c, int reason) {
    (void)ctx, (void)reason;
    if (c == server_conn) server_conn = NULL;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pump(void) {
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
    struct io_uring_cqe *cqe = NULL;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
    uring_op_dispatch_ready(&ring, 256);
    net_tick(net, now_ms());
    io_uring_submit(&ring);
}

#define PUMP_UNTIL(cond) do { \
        uint64_t until_ms = now_ms() + 5000; \
        while (!(cond) && now_ms() < until_ms) pump(); \
        cr_assert(cond, "timed out waiting for " #cond); \
    } while (0)

static void setup_with(size_t zc_threshold_bytes) {
    cr_assert_eq(io_uring_queue_init(64, &ring, 0), 0);
    for (unsigned i = 0; i < RECV_BUFFERS; i++) {
        recv_buffers[i] = malloc(RECV_BUFFER_BYTES);
        cr_assert_not_null(recv_buffers[i]);
    }
    struct net_events events = {on_accepted, on_received, on_closed};
    struct net_uring_config nc = {
        .ring = &ring, .max_conns = 4, .recv_buffer_count = RECV_BUFFERS,
        .recv_buffer_bytes = RECV_BUFFER_BYTES, .recv_buffers = recv_buffers, .buf_group = 3,
        .zc_threshold_bytes = zc_threshold_bytes, .listen_backlog = 8};
    char err[256];
    net = net_uring_create(&nc, &events, NULL, err, sizeof err);
    cr_assert_not_null(net, "%s", err);
    port = net_listen(net, "127.0.0.1", 0);
    cr_assert_gt(port, 0);
    server_conn = NULL;
}

static void setup_zc(void) { setup_with(32 * 1024); }
static void setup_plain(void) { setup_with(0); }

static void teardown(void) {
    net_destroy(net);
    for (unsigned i = 0; i < RECV_BUFFERS; i++) free(recv_buffers[i]);
    io_uring_queue_exit(&ring);
}

static int client_connect(int rcvbuf_bytes) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    PUMP_UNTIL(server_conn != NULL);
    return fd;
}

/* The backend does not show its fds: find the accepted socket whose peer is the
 * client's fd and shrink its send buffer. */
static void set_server_sndbuf(int client_fd, int sndbuf_bytes) {
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    cr_assert_eq(getsockname(client_fd, (struct sockaddr *)&mine, &len), 0);
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in peer;
        len = sizeof peer;
        if (fd == client_fd || getpeername(fd, (struct sockaddr *)&peer, &len) != 0) continue;
        if (peer.sin_port != mine.sin_port || peer.sin_addr.s_addr != mine.sin_addr.s_addr)
            continue;
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf_bytes, sizeof sndbuf_bytes), 0);
        return;
    }
    cr_assert_fail("the server side of the connection was not found");
}

/* ---- one send and what its done callback saw ----------------------------------------- */

struct tracked_send {
    struct net_send send;
    struct iovec iov[3];
    unsigned done_calls;
    int done_status;
    size_t done_at_bytes_read; /* client bytes read when done ran */
    struct net_uring_stats done_at_stats; /* backend counters when done ran */
};

static size_t client_bytes_read;

static void tracked_done(struct net_send *s, int status) {
    struct tracked_send *t = s->user;
    t->done_calls++;
    t->done_status = status;
    t->done_at_bytes_read = client_bytes_read;
    net_uring_stats(net, &t->done_at_stats);
}

static uint8_t head[13], body[BODY_BYTES], tail[7];
static uint8_t want[sizeof head + BODY_BYTES + sizeof tail], got[sizeof want];

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131u + seed + (i >> 9));
}

/* Read n bytes in reads of at most read_bytes, pumping the server between reads. */
static void client_read_slowly(int fd, uint8_t *out, size_t n, size_t read_bytes) {
    uint64_t until_ms = now_ms() + 20000;
    client_bytes_read = 0;
    while (client_bytes_read < n && now_ms() < until_ms) {
        size_t ask = n - client_bytes_read < read_bytes ? n - client_bytes_read : read_bytes;
        ssize_t r = read(fd, out + client_bytes_read, ask);
        if (r > 0) client_bytes_read += (size_t)r;
        pump();
    }
    cr_assert_eq(client_bytes_read, n, "read %zu of %zu bytes", client_bytes_read, n);
}

/* Send head|body|tail (or the body alone) to a client with the given receive buffer and
 * check every byte and the done callback. Returns the backend's stats. */
static struct net_uring_stats send_and_check(int rcvbuf_bytes, int iov_count,
                                             int server_sndbuf_bytes) {
    int fd = client_connect(rcvbuf_bytes);
    if (server_sndbuf_bytes > 0) set_server_sndbuf(fd, server_sndbuf_bytes);
    fill(head, sizeof head, 1);
    fill(body, sizeof body, 2);
    fill(tail, sizeof tail, 3);
    static struct tracked_send t;
    memset(&t, 0, sizeof t);
    size_t n = 0;
    if (iov_count == 3) {
        t.iov[0] = (struct iovec){head, sizeof head};
        t.iov[1] = (struct iovec){body, sizeof body};
        t.iov[2] = (struct iovec){tail, sizeof tail};
        memcpy(want, head, sizeof head);
        memcpy(want + sizeof head, body, sizeof body);
        memcpy(want + sizeof head + sizeof body, tail, sizeof tail);
        n = sizeof want;
    } else {
        t.iov[0] = (struct iovec){body, sizeof body};
        memcpy(want, body, sizeof body);
        n = sizeof body;
    }
    t.send = (struct net_send){.iov = t.iov, .iov_count = iov_count, .done = tracked_done,
                               .user = &t};
    cr_assert_eq(net_send(net, server_conn, &t.send), 0);
    client_read_slowly(fd, got, n, 1024);
    cr_assert(memcmp(got, want, n) == 0, "received bytes differ from the sent ones");
    PUMP_UNTIL(t.done_calls > 0);
    for (int i = 0; i < 50; i++) pump(); /* a second done would show up here */
    cr_assert_eq(t.done_calls, 1, "done ran %u times", t.done_calls);
    cr_assert_eq(t.done_status, 0);
    cr_assert_eq(t.done_at_stats.zc_notifications, t.done_at_stats.sends_zc,
                 "done ran after %lu of %lu zero-copy notifications",
                 (unsigned long)t.done_at_stats.zc_notifications,
                 (unsigned long)t.done_at_stats.sends_zc);
    cr_assert_eq(t.done_at_stats.send_bytes, n, "done ran before every byte was sent");
    struct net_uring_stats st;
    net_uring_stats(net, &st);
    cr_assert_eq(st.send_bytes, n);
    close(fd);
    PUMP_UNTIL(server_conn == NULL);
    return st;
}

Test(uring_zc, multi_iovec_to_a_4k_receive_buffer, .init = setup_zc, .fini = teardown) {
    struct net_uring_stats st = send_and_check(4096, 3, 0);
    cr_assert_geq(st.sends_zc_narrow_window, 1, "the narrow window was seen");
}

Test(uring_zc, single_iovec_to_a_4k_receive_buffer, .init = setup_zc, .fini = teardown) {
    struct net_uring_stats st = send_and_check(4096, 1, 0);
    cr_assert_geq(st.sends_zc_narrow_window, 1);
}

Test(uring_zc, multi_iovec_zc_to_a_wide_receive_buffer, .init = setup_zc, .fini = teardown) {
    struct net_uring_stats st = send_and_check(1 << 20, 3, 0);
    cr_assert_geq(st.sends_zc, 1, "the send went zero-copy");
    cr_assert_eq(st.sends_zc_narrow_window, 0);
}

Test(uring_zc, multi_iovec_zc_in_parts, .init = setup_zc, .fini = teardown) {
    /* a wide peer window but a 64 KiB server send buffer: the kernel takes the send in
     * several zero-copy parts */
    struct net_uring_stats st = send_and_check(1 << 20, 3, 64 * 1024);
    cr_assert_gt(st.sends_zc, 1, "the zero-copy send was continued (%lu zc of %lu sends)",
                 (unsigned long)st.sends_zc, (unsigned long)st.sends);
}

Test(uring_zc, multi_iovec_plain_to_a_4k_receive_buffer, .init = setup_plain,
     .fini = teardown) {
    struct net_uring_stats st = send_and_check(4096, 3, 0);
    cr_assert_eq(st.sends_zc, 0);
    cr_assert_eq(st.sends_zc_narrow_window, 0);
}
