/* bench_ustack.c - CPU cost per packet of the userspace TCP/IP stack.
 *
 *   bench_ustack [MiB] [mss_bytes] [zc|copy]
 *
 * Two stacks (client 10.0.0.1 -> server 10.0.0.2) on ustack_wire ports; the client sends
 * MiB mebibytes through the net_backend (4 sends of 256 KiB in flight), the server takes
 * the bytes as they are lent (zero-copy delivery, only counted). The port MTU is set so
 * the MSS is mss_bytes (1024 or 1460): every data segment is that size.
 *
 * What is timed (thread CPU time, and rdtsc which also counts preemption) is the stack's
 * own work only: ustack_input
 * of each burst on the receiving side (parsing, checksum verification, reassembly,
 * delivery, ACK generation; on the sender: ACK processing, window/cwnd, completion and
 * new segments), ustack_poll and net_send. Moving frames between the ports (the "wire":
 * flattening a frame and copying it into the other port's pool, as a NIC's DMA would) is
 * outside the timed region. Results: CPU ns (and cycles at the TSC rate) per data segment
 * (each one costs the
 * sender's TX, the receiver's RX and their share of ACK work), and per frame (data
 * segments + ACKs). Checksums are computed in software (no offload, as on af_packet). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "dataplane/net/ustack.h"
#include "dataplane/net/ustack_wire.h"

#define SEND_BYTES (256u * 1024u)
#define SENDS 4

struct side {
    struct ustack_wire_port port;
    struct ustack *stack;
    struct net_backend *nb;
};

static struct side cli, srv;
static uint64_t now_us = 1, stack_cycles, stack_ns, frames_in, sections;
static uint64_t total_bytes, queued, received;
static struct net_conn *cconn;
static struct net_send sends[SENDS];
static struct iovec iovs[SENDS];
static uint8_t *payload;
static bool up, cli_closed, srv_closed;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of this thread: unlike rdtsc it does not count time the thread was preempted
 * (this machine is shared), at the price of a system call per reading. */
static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void send_more(void);

static void on_done(struct net_send *s, int status) {
    if (status != 0) {
        fprintf(stderr, "send failed %d\n", status);
        exit(1);
    }
    s->user = NULL;
    send_more();
}

static void send_more(void) {
    for (int k = 0; k < SENDS && queued < total_bytes; k++) {
        if (sends[k].user) continue;
        iovs[k] = (struct iovec){payload, SEND_BYTES};
        sends[k] = (struct net_send){.iov = &iovs[k], .iov_count = 1, .done = on_done,
                                     .user = &sends[k]};
        queued += SEND_BYTES;
        if (net_send(cli.nb, cconn, &sends[k]) != 0) exit(1);
    }
}

static void on_connected(struct net_conn *c, int status) {
    (void)c;
    if (status) exit(1);
    up = true;
}
static int refuse(void *ctx, struct net_conn *c) { (void)ctx, (void)c; return -1; }
static int accept_one(void *ctx, struct net_conn *c) { (void)ctx, (void)c; return 0; }
static void count_rx(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx, (void)c, (void)d;
    received += n;
}
static void no_rx(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx, (void)c, (void)d, (void)n;
}
static void cli_closed_cb(void *ctx, struct net_conn *c, int r) { (void)ctx, (void)c, (void)r; cli_closed = true; }
static void srv_closed_cb(void *ctx, struct net_conn *c, int r) { (void)ctx, (void)c, (void)r; srv_closed = true; }

static void make(struct side *sd, uint32_t ip, uint8_t last, uint16_t mtu, uint16_t segs,
                 const struct net_events *ev) {
    if (ustack_wire_port_init(&sd->port, 8192, segs) != 0) exit(1);
    struct ustack_config cfg = {.ip = ip, .netmask = 0xffffff00u, .rcv_buf_bytes = 1u << 20,
                                .rcv_max_pkts = 1024, .snd_buf_bytes = 1u << 20};
    struct ustack_port port = {.mac = {2, 0, 0, 0, 0, last}, .mtu = mtu, .tx_max_segments = segs};
    char err[128];
    sd->stack = ustack_create(&cfg, &port, ustack_wire_io(&sd->port), &sd->port, err, sizeof(err));
    if (!sd->stack) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    sd->port.stack = sd->stack;
    sd->nb = ustack_backend_create(sd->stack, ev, NULL, err, sizeof(err));
    if (!sd->nb) exit(1);
}

/* Move frames from one port to the other; only ustack_input is timed. */
static uint32_t cross(struct side *from, struct side *to) {
    static uint8_t buf[USTACK_WIRE_FRAME_BYTES * 2];
    struct ustack_pkt *burst[32];
    uint16_t n = 0;
    uint32_t moved = 0;
    int len;
    while ((len = ustack_wire_take(&from->port, buf, sizeof(buf))) > 0) {
        struct ustack_pkt *p = ustack_wire_rx_frame(&to->port, buf, (size_t)len);
        if (!p) continue;
        burst[n++] = p;
        moved++;
        if (n == 32 || from->port.out_count == 0) {
            uint64_t t0 = __rdtsc(), n0 = cpu_ns();
            ustack_input(to->stack, burst, n, now_us);
            stack_cycles += __rdtsc() - t0;
            stack_ns += cpu_ns() - n0;
    sections++;
            frames_in += n;
            n = 0;
        }
    }
    return moved;
}

static void timed_poll(struct side *sd) {
    uint64_t t0 = __rdtsc(), n0 = cpu_ns();
    ustack_poll(sd->stack, now_us);
    stack_cycles += __rdtsc() - t0;
    stack_ns += cpu_ns() - n0;
    sections++;
}

int main(int argc, char **argv) {
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 256;
    unsigned mss = argc > 2 ? (unsigned)atoi(argv[2]) : 1460;
    int zc = argc > 3 ? strcmp(argv[3], "copy") != 0 : 1;
    if (mss < 536 || mss > 1460) {
        fprintf(stderr, "mss 536..1460\n");
        return 2;
    }
    total_bytes = mib << 20;
    payload = malloc(SEND_BYTES);
    for (uint32_t i = 0; i < SEND_BYTES; i++) payload[i] = (uint8_t)(i * 31u);
    struct net_events cev = {refuse, no_rx, cli_closed_cb};
    struct net_events sev = {accept_one, count_rx, srv_closed_cb};
    uint16_t mtu = (uint16_t)(mss + 40);
    make(&cli, 0x0a000001u, 1, mtu, zc ? 4 : 0, &cev);
    make(&srv, 0x0a000002u, 2, mtu, zc ? 4 : 0, &sev);
    if (net_listen(srv.nb, "0.0.0.0", 9092) != 9092) return 1;
    int err;
    cconn = net_connect(cli.nb, "10.0.0.2", 9092, NULL, on_connected, &err);
    if (!cconn) return 1;
    /* ARP for the first SYN, then the handshake */
    while (!up) {
        cross(&cli, &srv);
        cross(&srv, &cli);
        now_us += 10;
    }
    struct ustack_stats s0;
    ustack_stats(srv.stack, &s0);
    uint64_t frames0 = frames_in;
    stack_cycles = stack_ns = 0;
    uint64_t wall0 = mono_ns(), tsc0 = __rdtsc();
    uint64_t t0 = __rdtsc(), n0 = cpu_ns();
    send_more();
    stack_cycles += __rdtsc() - t0;
    stack_ns += cpu_ns() - n0;
    sections++;
    while (received < total_bytes) {
        uint32_t moved = cross(&cli, &srv) + cross(&srv, &cli);
        now_us += 10;
        timed_poll(&cli);
        timed_poll(&srv);
        if (!moved && ustack_next_timer_us(cli.stack) == UINT64_MAX &&
            ustack_next_timer_us(srv.stack) == UINT64_MAX) {
            fprintf(stderr, "stalled at %lu\n", received);
            return 1;
        }
        if (!moved) {
            uint64_t a = ustack_next_timer_us(cli.stack), b = ustack_next_timer_us(srv.stack);
            uint64_t nx = a < b ? a : b;
            if (nx > now_us) now_us = nx;
        }
    }
    uint64_t wall = mono_ns() - wall0;
    double tsc_ghz = (double)(__rdtsc() - tsc0) / (double)wall;
    /* the clock's own cost inside each timed section, measured and taken off */
    uint64_t c0 = cpu_ns();
    for (int i = 0; i < 20000; i++) (void)cpu_ns();
    double clock_ns = (double)(cpu_ns() - c0) / 20001.0;
    double overhead = clock_ns * (double)sections;
    stack_ns = (uint64_t)((double)stack_ns > overhead ? (double)stack_ns - overhead : 0);
    struct ustack_stats ss, cs;
    ustack_stats(srv.stack, &ss);
    ustack_stats(cli.stack, &cs);
    uint64_t data_segs = ss.rx_frames - s0.rx_frames;
    uint64_t frames = frames_in - frames0;
    printf("bench_ustack bytes=%lu mss=%u mode=%s data_segments=%lu frames=%lu "
           "retransmits=%lu\n",
           total_bytes, mss, zc ? "zerocopy" : "copy", data_segs, frames,
           cs.tcp_retransmits_rto + cs.tcp_retransmits_fast);
    printf("stack: %.0f cpu_ns/data_segment (%.0f cycles at the TSC's %.2f GHz) %.0f cpu_ns/frame; "
           "rdtsc incl. preemption %.0f cycles/data_segment; stack %.2f Gbit/s of payload per "
           "core (wall incl. wire %.2f); clock cost %.0f ns x %lu sections taken off\n",
           (double)stack_ns / data_segs, (double)stack_ns / data_segs * tsc_ghz, tsc_ghz,
           (double)stack_ns / frames, (double)stack_cycles / data_segs,
           total_bytes * 8.0 / stack_ns, total_bytes * 8.0 / wall, clock_ns, sections);
    for (int i = 0; i < 100000; i++) { /* the last sends complete when ACKed */
        bool busy = false;
        for (int k = 0; k < SENDS; k++) busy |= sends[k].user != NULL;
        if (!busy) break;
        cross(&cli, &srv);
        cross(&srv, &cli);
        now_us += 1000;
        ustack_poll(cli.stack, now_us);
        ustack_poll(srv.stack, now_us);
    }
    net_close(cli.nb, cconn);
    for (int i = 0; i < 1000 && !(cli_closed && srv_closed); i++) {
        cross(&cli, &srv);
        cross(&srv, &cli);
        now_us += 1000;
        ustack_poll(cli.stack, now_us);
        ustack_poll(srv.stack, now_us);
    }
    net_destroy(cli.nb);
    net_destroy(srv.nb);
    ustack_wire_port_fini(&cli.port);
    ustack_wire_port_fini(&srv.port);
    free(payload);
    return 0;
}
