/* fuzz_ustack.c - libFuzzer target for the userspace TCP/IPv4 stack (dataplane/net/ustack*).
 *
 * Each input runs a fresh server stack (10.0.0.2, MAC 02:00:00:00:00:02) on an in-memory
 * ustack_wire port, with a net_backend listening on 9092 whose user accepts connections
 * and, on received data, echoes a little back, sometimes pauses, sends a lot or closes --
 * so the send, ACK, retransmit, persist, keepalive and close paths are reachable. The
 * clock is virtual. The input is a sequence of records [op][len:2 BE][len bytes], at most
 * FUZZ_MAX_RECORDS of them; (op & 7) % OP_COUNT is:
 *   OP_RAW    the bytes as an Ethernet frame, untouched
 *   OP_FIXED  the same with the IPv4 header and TCP/ICMP checksums recomputed, so the
 *             damage gets past the checksum checks and into the protocol logic
 *   OP_REL    OP_FIXED for a TCP frame whose seq and ack are offsets from what the stack
 *             last told that peer port (its ack, and its seq + what it sent), so the
 *             fuzzer reaches ESTABLISHED and beyond without guessing sequence numbers
 *   OP_CLOCK  advance the clock by the first two bytes (BE) in ms and run ustack_poll
 *   OP_DRAIN  take every frame the stack sent off the port (as the NIC would), noting
 *             the sequence numbers for OP_REL
 *   OP_USER   the user acts on connection bytes[0]: resume, close, send big, pause; or
 *             connects to 10.0.bytes[3].bytes[2]:9093 (client side, ARP resolution and
 *             the gateway route: frames the stack sends to a MAC it does not know yet)
 * The top three bits of the first op byte choose the port: bit 5 TX checksum offloads,
 * bit 6 a driver that takes one external segment per frame (the stack falls back to
 * copying), bit 7 a pool of FUZZ_FRAMES_SMALL frames (tx_alloc and RX run dry).
 * At the end the outbox is drained and the backend destroyed: every frame must be back
 * in the pool (checked; ASan checks the memory). Any crash, sanitizer report or abort is
 * a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/net/ustack.h"
#include "dataplane/net/ustack_wire.h"
#include "tests/unit/net/frame_csum_fix.h"

#define FUZZ_MAX_RECORDS 256
#define FUZZ_FRAMES 512          /* the port's pool */
#define FUZZ_FRAMES_SMALL 16     /* ... or one that runs dry */
#define FUZZ_MAX_CONNS 8
#define FUZZ_PEERS 8             /* peer ports whose sequence numbers are tracked */
#define SERVER_IP 0x0a000002u
#define SERVER_PORT 9092

enum { OP_RAW, OP_FIXED, OP_REL, OP_CLOCK, OP_DRAIN, OP_USER, OP_COUNT };

static const uint8_t server_mac[6] = {0x02, 0, 0, 0, 0, 0x02};

/* The user of the backend: one send in flight per connection, from static bytes. */
struct fuzz_conn {
    struct net_conn *c;
    struct net_send snd;
    struct iovec iov[2];
    bool busy;
};

/* What the stack last told a peer port: OP_REL frames are relative to it. */
struct fuzz_peer {
    uint16_t port;
    uint32_t seq, ack;  /* the stack's next seq, and the ack it sent */
};

static struct ustack_wire_port ports[4]; /* by variant bits 6..7, made once */
static struct ustack_wire_port *port;
static struct net_backend *nb;
static uint64_t now_us;
static struct fuzz_conn conns[FUZZ_MAX_CONNS];
static struct fuzz_peer peers[FUZZ_PEERS];
static uint32_t next_peer;
static uint8_t small_bytes[64] = "sluice says hello; the rest is padding to sixty-four bytes..";
static uint8_t big_bytes[48u << 10];
static uint8_t frame[USTACK_WIRE_FRAME_BYTES];
static uint8_t out[USTACK_WIRE_FRAME_BYTES * 2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_conn *conn_of(struct net_conn *c) {
    if (c->id >= FUZZ_MAX_CONNS) abort(); /* ids are slots below max_conns */
    return &conns[c->id];
}

static void on_done(struct net_send *s, int status) {
    (void)status;
    ((struct fuzz_conn *)s->user)->busy = false;
}

static void user_send(struct fuzz_conn *fc, size_t len, bool big) {
    if (!fc->c || fc->busy) return;
    const uint8_t *b = big ? big_bytes : small_bytes;
    size_t cap = big ? sizeof(big_bytes) : sizeof(small_bytes);
    if (len == 0 || len > cap) len = cap;
    size_t half = len / 2;
    fc->iov[0] = (struct iovec){(void *)b, half ? half : len};
    fc->iov[1] = (struct iovec){(void *)(b + half), len - half};
    fc->snd = (struct net_send){.iov = fc->iov, .iov_count = half ? 2 : 1, .done = on_done,
                                .user = fc};
    if (net_send(nb, fc->c, &fc->snd) == 0) fc->busy = true;
}

static int on_accepted(void *ctx, struct net_conn *c) {
    (void)ctx;
    char name[32];
    if (net_peer_name(nb, c, name, sizeof(name)) == 0 && name[strlen(name) - 1] == '9')
        return -1; /* refuse peers x.x.x.9, x.x.x.19, ...: the refused path */
    struct fuzz_conn *fc = conn_of(c);
    *fc = (struct fuzz_conn){.c = c};
    c->user = fc;
    return 0;
}

static void on_received(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx;
    struct fuzz_conn *fc = c->user;
    if (!fc || n == 0) return;
    switch (d[0] & 15) {
    case 1: net_close(nb, c); break;
    case 2: net_recv_pause(nb, c); break;
    case 3: user_send(fc, (size_t)d[n - 1] << 8, true); break;
    default: user_send(fc, n, false); break;
    }
}

static void on_closed(void *ctx, struct net_conn *c, int reason) {
    (void)ctx, (void)reason;
    struct fuzz_conn *fc = c->user;
    if (fc) fc->c = NULL;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static struct fuzz_peer *peer_find(uint16_t p) {
    for (uint32_t i = 0; i < FUZZ_PEERS; i++)
        if (peers[i].port == p) return &peers[i];
    return NULL;
}

/* OP_REL: the TCP frame's seq/ack become offsets from the peer's tracked numbers. */
static void make_relative(uint8_t *f, size_t n) {
    if (n < 14 + 20 + 20 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 6) return;
    size_t hl = (size_t)(f[14] & 15) * 4;
    if (hl < 20 || 14 + hl + 20 > n) return;
    uint8_t *t = f + 14 + hl;
    struct fuzz_peer *p = peer_find((uint16_t)(t[0] << 8 | t[1]));
    if (!p) return;
    put32(t + 4, p->ack + frame_get32(t + 4));
    put32(t + 8, p->seq + frame_get32(t + 8));
}

/* Note the numbers of a TCP frame the stack sent. */
static void track(const uint8_t *f, int len) {
    if (len < 54 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 6) return;
    size_t hl = (size_t)(f[14] & 15) * 4, total = (size_t)(f[16] << 8 | f[17]);
    const uint8_t *t = f + 14 + hl;
    if (hl < 20 || 14 + hl + 20 > (size_t)len || total < hl + 20) return;
    size_t payload = total - hl - (size_t)(t[12] >> 4) * 4;
    uint16_t dport = (uint16_t)(t[2] << 8 | t[3]);
    struct fuzz_peer *p = peer_find(dport);
    if (!p) {
        p = &peers[next_peer++ % FUZZ_PEERS];
        p->port = dport;
    }
    p->seq = frame_get32(t + 4) + (uint32_t)payload + ((t[13] & 0x02) ? 1u : 0u) +
             ((t[13] & 0x01) ? 1u : 0u);
    if (t[13] & 0x10) p->ack = frame_get32(t + 8);
}

static void drain(bool note) {
    int len;
    while ((len = ustack_wire_take(port, out, sizeof(out))) != 0)
        if (note) track(out, len);
}

static void feed(struct ustack *s, uint8_t op, const uint8_t *bytes, size_t n) {
    if (n > sizeof(frame)) n = sizeof(frame);
    memcpy(frame, bytes, n);
    if (op == OP_REL) make_relative(frame, n);
    if (op != OP_RAW) frame_fix_checksums(frame, n);
    struct ustack_pkt *p = ustack_wire_rx_frame(port, frame, n);
    if (p) ustack_input(s, &p, 1, now_us);
}

static void on_connected(struct net_conn *c, int status) {
    if (status == 0) user_send(c->user, 1, false);
}

static void user_connect(const uint8_t *bytes, size_t n) {
    char host[32];
    snprintf(host, sizeof(host), "10.0.%u.%u", n > 3 ? bytes[3] : 0u, n > 2 ? bytes[2] : 1u);
    int err;
    struct net_conn *c = net_connect(nb, host, 9093, NULL, on_connected, &err);
    if (!c) return;
    struct fuzz_conn *fc = conn_of(c);
    *fc = (struct fuzz_conn){.c = c};
    c->user = fc;
}

static void user_op(const uint8_t *bytes, size_t n) {
    if (n < 2) return;
    if ((bytes[1] & 7) == 4) {
        user_connect(bytes, n);
        return;
    }
    struct fuzz_conn *fc = &conns[bytes[0] % FUZZ_MAX_CONNS];
    if (!fc->c) return;
    switch (bytes[1] & 3) {
    case 0: net_recv_resume(nb, fc->c); break;
    case 1: net_close(nb, fc->c); break;
    case 2: user_send(fc, n > 2 ? (size_t)bytes[2] << 8 : 0, true); break;
    default: net_recv_pause(nb, fc->c); break;
    }
}

static void run_record(struct ustack *s, uint8_t op, const uint8_t *bytes, size_t n) {
    op = (uint8_t)((op & 7) % OP_COUNT);
    switch (op) {
    case OP_RAW: case OP_FIXED: case OP_REL: feed(s, op, bytes, n); break;
    case OP_CLOCK:
        now_us += 1000u * (n >= 2 ? (uint32_t)(bytes[0] << 8 | bytes[1]) : n ? bytes[0] : 1u);
        ustack_poll(s, now_us);
        break;
    case OP_DRAIN: drain(true); break;
    default: user_op(bytes, n); break;
    }
}

static struct ustack *setup(uint8_t variant) {
    port = &ports[(variant >> 6) & 3];
    if (port->frames == NULL) { /* the pool is made once and must be whole after each run */
        uint32_t frames = (variant & 0x80) ? FUZZ_FRAMES_SMALL : FUZZ_FRAMES;
        if (ustack_wire_port_init(port, frames, (variant & 0x40) ? 1 : 4) != 0) abort();
    }
    struct ustack_config cfg = {.ip = SERVER_IP, .netmask = 0xffffff00u,
                                .gateway = 0x0a0000feu, .max_conns = FUZZ_MAX_CONNS,
                                .syn_backlog = 4, .rcv_buf_bytes = 16u << 10,
                                .rcv_max_pkts = 16, .snd_buf_bytes = 64u << 10,
                                .arp_cache_entries = 4, .arp_pending_pkts = 8,
                                .isn_seed = 1000, .keepalive_idle_ms = 1000,
                                .keepalive_interval_ms = 500, .keepalive_probes = 3};
    struct ustack_port p = {.mtu = 1500, .tx_max_segments = 4,
                            .tx_ip_csum_offload = variant & 0x20,
                            .tx_tcp_csum_offload = variant & 0x20};
    memcpy(p.mac, server_mac, 6);
    char err[128];
    struct ustack *s = ustack_create(&cfg, &p, ustack_wire_io(port), port, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "fuzz_ustack: %s\n", err);
        abort();
    }
    port->stack = s;
    nb = ustack_backend_create(s, &(struct net_events){on_accepted, on_received, on_closed},
                               NULL, err, sizeof(err));
    if (!nb || net_listen(nb, "0.0.0.0", SERVER_PORT) != SERVER_PORT) {
        fprintf(stderr, "fuzz_ustack: backend: %s\n", err);
        abort();
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (big_bytes[1] == 0)
        for (size_t i = 0; i < sizeof(big_bytes); i++) big_bytes[i] = (uint8_t)(i * 31u);
    memset(conns, 0, sizeof(conns));
    memset(peers, 0, sizeof(peers));
    next_peer = 0;
    now_us = 1000000;
    struct ustack *s = setup(size ? data[0] : 0);
    size_t off = 0;
    for (int r = 0; r < FUZZ_MAX_RECORDS && off + 3 <= size; r++) {
        size_t n = (size_t)(data[off + 1] << 8 | data[off + 2]);
        if (n > size - off - 3) n = size - off - 3;
        run_record(s, data[off], data + off + 3, n);
        off += 3 + n;
    }
    drain(false); /* frames still in the outbox release their segments while the stack lives */
    net_destroy(nb);
    if (port->in_use != 0 || port->out_count != 0) {
        fprintf(stderr, "fuzz_ustack: %u frames not back in the pool\n", port->in_use);
        abort();
    }
    return 0;
}
