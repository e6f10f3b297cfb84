/* test_ustack_tap.c - the userspace stack against the real Linux TCP/IP stack, over a TAP
 * device (no DPDK needed): the kernel gets 10.213.N.1/24 on the TAP, the stack is
 * 10.213.N.2 behind it and serves an echo service on port 9092 through its net_backend.
 * A kernel socket connects, writes 8 MiB and reads the echo back byte for byte; ping
 * (a raw ICMP socket) gets answers; a connection to a closed port is refused (RST). The frames move between
 * the TAP fd and a ustack_wire port (its frame pool and outbox), in one thread.
 * Skipped where no TAP device can be created (no /dev/net/tun or no CAP_NET_ADMIN). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/net/ustack.h"
#include "dataplane/net/ustack_wire.h"

/* Each test process (criterion forks one per test, and several builds may run the suite
 * at once) gets its own TAP name and subnet 10.213.N.0/24 from its pid. */
static char tap_name[IFNAMSIZ];
static char peer_ip[32];
static uint32_t subnet_octet;
#define ECHO_SLOTS 64
#define ECHO_BUF (1u << 20)

static int tap_fd = -1;
static struct ustack_wire_port port;
static struct net_backend *nb;
static struct ustack *stack;

/* ---- the echo service on the stack ---- */
static struct {
    struct net_conn *conn;
    uint8_t *buf;          /* ring of ECHO_BUF bytes */
    uint64_t head, tail;   /* bytes received / bytes completed */
    struct net_send sends[ECHO_SLOTS];
    struct iovec iov[ECHO_SLOTS][2];
    uint32_t s_head, s_count;
    bool paused;
    int accepted, closed;
} echo;

static struct {
    bool active;  /* the stack is the client (the connection is not the echo service's) */
    int connected_status, closed, close_reason;
    uint64_t got, bad;
    struct net_conn *conn;
} client;


static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void echo_done(struct net_send *s, int status) {
    (void)status;
    size_t n = s->iov[0].iov_len + (s->iov_count > 1 ? s->iov[1].iov_len : 0);
    echo.tail += n;
    echo.s_head = (echo.s_head + 1) % ECHO_SLOTS;
    echo.s_count--;
    if (echo.paused && echo.conn) {
        echo.paused = false;
        net_recv_resume(nb, echo.conn);
    }
}

static int on_accepted(void *ctx, struct net_conn *c) {
    (void)ctx;
    echo.conn = c;
    echo.accepted++;
    return 0;
}
static uint8_t pattern(uint64_t i);

static void on_received(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx;
    if (client.active && c == client.conn) {
        for (size_t i = 0; i < n; i++) {
            uint8_t want = pattern(client.got + i) ^ 0xffu;
            if (d[i] != want) client.bad++;
        }
        client.got += n;
        return;
    }
    /* the stack never delivers more than the window we advertised: it fits */
    cr_assert_leq(echo.head - echo.tail + n, ECHO_BUF);
    cr_assert_lt(echo.s_count, ECHO_SLOTS);
    size_t at = echo.head % ECHO_BUF;
    size_t first = n < ECHO_BUF - at ? n : ECHO_BUF - at;
    memcpy(echo.buf + at, d, first);
    memcpy(echo.buf, d + first, n - first);
    uint32_t k = (echo.s_head + echo.s_count) % ECHO_SLOTS;
    echo.iov[k][0] = (struct iovec){echo.buf + at, first};
    echo.iov[k][1] = (struct iovec){echo.buf, n - first};
    echo.sends[k] = (struct net_send){.iov = echo.iov[k], .iov_count = n > first ? 2 : 1,
                                      .done = echo_done};
    echo.s_count++;
    echo.head += n;
    cr_assert_eq(net_send(nb, c, &echo.sends[k]), 0);
    if (!echo.paused && (echo.s_count > ECHO_SLOTS - 2 ||
                         echo.head - echo.tail > ECHO_BUF - 300u * 1024u)) {
        echo.paused = true;
        net_recv_pause(nb, c);
    }
}
static void on_closed(void *ctx, struct net_conn *c, int reason) {
    (void)ctx, (void)reason;
    if (client.active && c == client.conn) {
        client.closed++;
        client.close_reason = reason;
        return;
    }
    echo.closed++;
    echo.conn = NULL;
}

/* ---- moving frames between the TAP and the stack ---- */
static uint32_t drop_ppm; /* frames from the stack to the kernel dropped (seeded) */
static uint64_t drop_rng = 88172645463325252ull, dropped;

static bool drop_this(void) {
    if (!drop_ppm) return false;
    drop_rng ^= drop_rng << 13;
    drop_rng ^= drop_rng >> 7;
    drop_rng ^= drop_rng << 17;
    return drop_rng % 1000000u < drop_ppm;
}

static int pump(void) {
    static uint8_t buf[USTACK_WIRE_FRAME_BYTES * 2];
    int moved = 0;
    struct ustack_pkt *burst[32];
    uint16_t n = 0;
    for (;;) {
        ssize_t r = read(tap_fd, buf, sizeof(buf));
        if (r <= 0) break;
        struct ustack_pkt *p = ustack_wire_rx_frame(&port, buf, (size_t)r);
        if (!p) continue;
        burst[n++] = p;
        moved++;
        if (n == 32) {
            ustack_input(stack, burst, n, mono_us());
            n = 0;
        }
    }
    if (n) ustack_input(stack, burst, n, mono_us());
    ustack_poll(stack, mono_us());
    int len;
    while ((len = ustack_wire_take(&port, buf, sizeof(buf))) > 0) {
        moved++;
        if (drop_this()) {
            dropped++;
            continue;
        }
        if (write(tap_fd, buf, (size_t)len) < 0 && errno != EAGAIN) cr_assert_fail("tap write");
    }
    return moved;
}

static bool setup_tap(void) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (fd < 0) return false;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    subnet_octet = 1 + (uint32_t)getpid() % 250;
    snprintf(tap_name, sizeof(tap_name), "ustk%u", (unsigned)getpid() % 100000u);
    snprintf(peer_ip, sizeof(peer_ip), "10.213.%u.2", subnet_octet);
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap_name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        close(fd);
        return false;
    }
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip addr add 10.213.%u.1/24 dev %s && ip link set %s mtu 1500 up",
             subnet_octet, tap_name, tap_name);
    if (system(cmd) != 0) {
        close(fd);
        return false;
    }
    tap_fd = fd;
    return true;
}

static void setup(void) {
    if (!setup_tap()) return;
    cr_assert_eq(ustack_wire_port_init(&port, 4096, 4), 0);
    struct ustack_config cfg = {.ip = 0x0ad50002u | subnet_octet << 8, .netmask = 0xffffff00u};
    struct ustack_port up = {.mac = {0x02, 0xd1, 0, 0, 0, 2}, .mtu = 1500, .tx_max_segments = 4};
    char err[128];
    stack = ustack_create(&cfg, &up, ustack_wire_io(&port), &port, err, sizeof(err));
    cr_assert_not_null(stack, "%s", err);
    port.stack = stack;
    struct net_events ev = {on_accepted, on_received, on_closed};
    nb = ustack_backend_create(stack, &ev, NULL, err, sizeof(err));
    cr_assert_not_null(nb);
    cr_assert_eq(net_listen(nb, "0.0.0.0", 9092), 9092);
    echo.buf = malloc(ECHO_BUF);
}

static void teardown(void) {
    if (tap_fd < 0) return;
    static uint8_t buf[USTACK_WIRE_FRAME_BYTES * 2];
    while (ustack_wire_take(&port, buf, sizeof(buf)) > 0) {
    }
    net_destroy(nb);
    ustack_wire_port_fini(&port);
    close(tap_fd); /* a non-persistent TAP goes away with its fd */
    tap_fd = -1;
    free(echo.buf);
}

TestSuite(ustack_tap, .init = setup, .fini = teardown, .timeout = 60);

static uint8_t pattern(uint64_t i) { return (uint8_t)(i * 7 + (i >> 11)); }

static void echo_run(uint64_t total) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9092)};
    inet_pton(AF_INET, peer_ip, &a.sin_addr);
    int r = connect(s, (struct sockaddr *)&a, sizeof(a));
    cr_assert(r == 0 || errno == EINPROGRESS);
    static uint8_t out[65536], in[65536];
    uint64_t sent = 0, got = 0, bad = 0;
    uint64_t deadline = mono_us() + 40000000u;
    while (got < total) {
        cr_assert_lt(mono_us(), deadline, "timeout: sent %lu got %lu", sent, got);
        int moved = pump();
        if (sent < total) {
            size_t n = total - sent < sizeof(out) ? total - sent : sizeof(out);
            for (size_t i = 0; i < n; i++) out[i] = pattern(sent + i);
            ssize_t w = send(s, out, n, MSG_NOSIGNAL);
            if (w > 0) sent += (uint64_t)w;
            else cr_assert(errno == EAGAIN || errno == ENOTCONN, "send: %s", strerror(errno));
        }
        ssize_t rd = recv(s, in, sizeof(in), 0);
        if (rd > 0) {
            for (ssize_t i = 0; i < rd; i++) bad += in[i] != pattern(got + (uint64_t)i);
            got += (uint64_t)rd;
        } else {
            cr_assert(rd < 0 && errno == EAGAIN, "recv: %zd %s", rd, strerror(errno));
        }
        if (!moved) {
            struct pollfd pf[2] = {{tap_fd, POLLIN, 0}, {s, POLLIN, 0}};
            poll(pf, 2, 1);
        }
    }
    cr_assert_eq(bad, 0);
    cr_assert_eq(echo.accepted, 1);
    close(s); /* the kernel's FIN: the stack closes its side */
    uint64_t until = mono_us() + 3000000;
    while (echo.closed == 0 && mono_us() < until) {
        if (!pump()) {
            struct pollfd pf = {tap_fd, POLLIN, 0};
            poll(&pf, 1, 1);
        }
    }
    cr_assert_eq(echo.closed, 1);
    struct ustack_stats st;
    ustack_stats(stack, &st);
    cr_log_info("rx_frames=%lu tx_frames=%lu rto=%lu fast=%lu probes=%lu ooo=%lu bad_csum=%lu",
                st.rx_frames, st.tx_frames, st.tcp_retransmits_rto, st.tcp_retransmits_fast, st.tcp_loss_probes,
                st.tcp_ooo_queued, st.rx_bad_tcp_csum);
    cr_assert_eq(st.rx_bad_tcp_csum, 0);
    cr_assert_eq(st.rx_bad_ip_csum, 0);
    if (drop_ppm) cr_assert_gt(st.tcp_retransmits_rto + st.tcp_retransmits_fast + st.tcp_loss_probes, 0);
}

Test(ustack_tap, kernel_client_echo_8MiB) {
    if (tap_fd < 0) cr_skip_test("cannot create a TAP device here");
    echo_run(8u << 20);
}

/* netem on the kernel's side (loss, reordering, delay) and 2% loss on ours. */
Test(ustack_tap, kernel_client_echo_lossy_2MiB) {
    if (tap_fd < 0) cr_skip_test("cannot create a TAP device here");
    char cmd[160];
    snprintf(cmd, sizeof(cmd),
             "tc qdisc add dev %s root netem loss 2%% reorder 5%% delay 1ms 2>/dev/null",
             tap_name);
    bool netem = system(cmd) == 0;
    drop_ppm = 20000;
    echo_run(2u << 20);
    struct ustack_stats st;
    ustack_stats(stack, &st);
    cr_log_info("netem=%d dropped_by_test=%lu ooo=%lu dup=%lu", netem, dropped,
                st.tcp_ooo_queued, st.tcp_dup_segments);
    cr_assert_gt(dropped, 0);
}

Test(ustack_tap, ping_and_refused_port) {
    if (tap_fd < 0) cr_skip_test("cannot create a TAP device here");
    /* the kernel pings us through a raw ICMP socket: 3 echo requests, 3 replies */
    int icmp = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
    if (icmp < 0) cr_skip_test("no raw sockets here");
    struct sockaddr_in dst = {.sin_family = AF_INET};
    inet_pton(AF_INET, peer_ip, &dst.sin_addr);
    int replies = 0;
    for (uint16_t seq = 1; seq <= 3; seq++) {
        uint8_t req[64] = {8, 0, 0, 0, 0x4d, 0x31, (uint8_t)(seq >> 8), (uint8_t)seq};
        for (int i = 8; i < 64; i++) req[i] = (uint8_t)(i + seq);
        uint32_t sum = 0;
        for (int i = 0; i < 64; i += 2) sum += (uint32_t)(req[i] << 8 | req[i + 1]);
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        req[2] = (uint8_t)(~sum >> 8);
        req[3] = (uint8_t)~sum;
        cr_assert_eq(sendto(icmp, req, sizeof(req), 0, (struct sockaddr *)&dst, sizeof(dst)), 64);
        uint64_t until = mono_us() + 2000000;
        bool answered = false;
        while (!answered && mono_us() < until) {
            pump();
            uint8_t rep[256];
            ssize_t n = recv(icmp, rep, sizeof(rep), 0);
            if (n < 28) {
                struct pollfd pf = {tap_fd, POLLIN, 0};
                poll(&pf, 1, 1);
                continue;
            }
            size_t hl = (size_t)(rep[0] & 15) * 4; /* raw sockets include the IP header */
            const uint8_t *r = rep + hl;
            if (r[0] == 0 && r[4] == 0x4d && r[5] == 0x31 && r[7] == (uint8_t)seq) {
                cr_assert_eq((size_t)n - hl, sizeof(req));
                cr_assert_eq(memcmp(r + 8, req + 8, 56), 0, "echo payload");
                answered = true;
                replies++;
            }
        }
    }
    close(icmp);
    cr_assert_eq(replies, 3);
    struct ustack_stats st;
    ustack_stats(stack, &st);
    cr_assert_geq(st.icmp_echo_answered, 3);
    cr_assert_geq(st.arp_requests_answered, 1);
    /* a closed port: the kernel's connect is refused by our RST */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9999)};
    inet_pton(AF_INET, peer_ip, &a.sin_addr);
    connect(s, (struct sockaddr *)&a, sizeof(a));
    int err = 0;
    uint64_t until = mono_us() + 3000000;
    while (mono_us() < until) {
        pump();
        struct pollfd pf = {s, POLLOUT, 0};
        if (poll(&pf, 1, 1) > 0) {
            socklen_t l = sizeof(err);
            getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l);
            break;
        }
    }
    close(s);
    cr_assert_eq(err, ECONNREFUSED, "got %d", err);
}

static void client_connected(struct net_conn *c, int status) {
    (void)c;
    client.connected_status = status == 0 ? 1 : status;
}
static int client_sends_done;
static void client_send_done(struct net_send *s, int status) {
    (void)s;
    cr_assert_eq(status, 0);
    client_sends_done++;
}

/* The stack as the client (the load generator's side): ARP resolves the kernel's MAC,
 * the kernel accepts, 4 MiB go up and 1 MiB comes back, then the stack closes. */
Test(ustack_tap, stack_client_to_kernel_server) {
    if (tap_fd < 0) cr_skip_test("cannot create a TAP device here");
    char kernel_ip[32];
    snprintf(kernel_ip, sizeof(kernel_ip), "10.213.%u.1", subnet_octet);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(19092)};
    inet_pton(AF_INET, kernel_ip, &a.sin_addr);
    cr_assert_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(ls, 4), 0);
    memset(&client, 0, sizeof(client));
    client.active = true;
    if (getenv("USTACK_TAP_DROP_PPM")) drop_ppm = (uint32_t)atoi(getenv("USTACK_TAP_DROP_PPM"));
    int err = 0;
    client.conn = net_connect(nb, kernel_ip, 19092, NULL, client_connected, &err);
    cr_assert_not_null(client.conn, "connect %d", err);
    const uint64_t up_total = 4u << 20, down_total = 1u << 20;
    static uint8_t upbuf[4u << 20];
    for (uint64_t i = 0; i < up_total; i++) upbuf[i] = pattern(i);
    struct iovec iov[4];
    struct net_send sends[4];
    int ks = -1;
    uint64_t kgot = 0, kbad = 0, ksent = 0;
    static uint8_t kbuf[65536];
    bool sent = false;
    uint64_t deadline = mono_us() + 30000000u;
    while (client.got < down_total || kgot < up_total) {
        cr_assert_lt(mono_us(), deadline, "timeout: kernel got %lu, stack got %lu", kgot,
                     client.got);
        int moved = pump();
        if (client.connected_status == 1 && !sent) {
            for (int k = 0; k < 4; k++) {
                iov[k] = (struct iovec){upbuf + k * (up_total / 4), up_total / 4};
                sends[k] = (struct net_send){.iov = &iov[k], .iov_count = 1,
                                             .done = client_send_done};
                cr_assert_eq(net_send(nb, client.conn, &sends[k]), 0);
            }
            sent = true;
        }
        cr_assert(client.connected_status >= 0, "connect failed %d", client.connected_status);
        if (ks < 0) ks = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
        if (ks >= 0) {
            ssize_t r = recv(ks, kbuf, sizeof(kbuf), 0);
            if (r > 0) {
                for (ssize_t i = 0; i < r; i++) kbad += kbuf[i] != pattern(kgot + (uint64_t)i);
                kgot += (uint64_t)r;
            }
            if (ksent < down_total) {
                size_t n = down_total - ksent < 16384 ? down_total - ksent : 16384;
                for (size_t i = 0; i < n; i++) kbuf[i] = (uint8_t)(0xff ^ pattern(ksent + i));
                ssize_t w = send(ks, kbuf, n, MSG_NOSIGNAL);
                if (w > 0) ksent += (uint64_t)w;
            }
        }
        if (!moved) {
            struct pollfd pf = {tap_fd, POLLIN, 0};
            poll(&pf, 1, 1);
        }
    }
    cr_assert_eq(kbad, 0);
    cr_assert_eq(client.bad, 0);
    uint64_t until = mono_us() + 3000000;
    while (client_sends_done < 4 && mono_us() < until) {
        if (!pump()) {
            struct pollfd pf = {tap_fd, POLLIN, 0};
            poll(&pf, 1, 1);
        }
    }
    cr_assert_eq(client_sends_done, 4, "every send ACKed");
    net_close(nb, client.conn);
    until = mono_us() + 3000000;
    uint8_t tmp[16];
    ssize_t eof = -1;
    while (mono_us() < until && eof != 0) {
        pump();
        eof = recv(ks, tmp, sizeof(tmp), 0);
        if (eof < 0) {
            struct pollfd pf = {tap_fd, POLLIN, 0};
            poll(&pf, 1, 1);
        }
    }
    cr_assert_eq(eof, 0, "the kernel saw our FIN");
    cr_assert_eq(client.closed, 1);
    close(ks);
    close(ls);
    struct ustack_stats st;
    ustack_stats(stack, &st);
    cr_assert_geq(st.arp_replies_received, 1, "the kernel's MAC came from ARP");
    cr_log_info("client: dropped=%lu rto=%lu fast=%lu", dropped, st.tcp_retransmits_rto,
                st.tcp_retransmits_fast);
}
