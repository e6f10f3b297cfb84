/* test_ustack_script.c - packet scripts for the userspace stack: the test plays the peer
 * (10.0.0.1) with hand-built frames and checks, field by field, the frames the stack
 * (10.0.0.2, listening on 9092 through its net_backend) sends back, its counters and the
 * net_backend events. Time is virtual (now_us). Checksums of the frames we receive are
 * verified with the test's own RFC 1071 implementation. */
#include <arpa/inet.h>

#include "tests/unit/net/ustack_pair.h"

static uint64_t now_us;
static struct side S;
static bool offer_sack; /* SYNs from the peer carry SACK-permitted */

/* ---- what the user of the backend saw ---- */
static struct {
    struct net_conn *conn;
    int accepted, closed, close_reason;
    uint8_t rx[1u << 20];
    size_t rx_len;
    int done_calls, done_status;
    bool refuse;
    bool echo, close_in_rx;
    struct net_send echo_send;
    struct iovec echo_iov;
    uint8_t echo_buf[64];
} ev;

static void on_done(struct net_send *s, int status);

static int on_accepted(void *ctx, struct net_conn *c) {
    (void)ctx;
    if (ev.refuse) return -1;
    ev.accepted++;
    ev.conn = c;
    return 0;
}
static void on_received(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx;
    (void)c;
    cr_assert_leq(ev.rx_len + n, sizeof(ev.rx));
    memcpy(ev.rx + ev.rx_len, d, n);
    ev.rx_len += n;
    if (ev.echo) { /* a send from inside received: queued, never re-entered */
        ev.echo = false;
        memcpy(ev.echo_buf, d, n < sizeof(ev.echo_buf) ? n : sizeof(ev.echo_buf));
        ev.echo_iov = (struct iovec){ev.echo_buf, n < sizeof(ev.echo_buf) ? n : sizeof(ev.echo_buf)};
        ev.echo_send = (struct net_send){.iov = &ev.echo_iov, .iov_count = 1, .done = on_done};
        cr_assert_eq(net_send(S.nb, c, &ev.echo_send), 0);
    }
    if (ev.close_in_rx) {
        ev.close_in_rx = false;
        net_close(S.nb, c);
        cr_assert_eq(ev.closed, 0, "closed is deferred out of received");
    }
}
static void on_closed(void *ctx, struct net_conn *c, int reason) {
    (void)ctx;
    (void)c;
    ev.closed++;
    ev.close_reason = reason;
}
static void on_done(struct net_send *s, int status) {
    (void)s;
    ev.done_calls++;
    ev.done_status = status;
}

static struct ustack_config ka_cfg; /* keepalive_* for the next setup_stack */

static void setup_stack(uint32_t syn_backlog, uint16_t max_segs) {
    memset(&ev, 0, sizeof(ev));
    offer_sack = false;
    now_us = 1000000;
    struct ustack_config cfg = {.isn_seed = 1000, .syn_backlog = syn_backlog,
                                .time_wait_us = 100000,
                                .keepalive_idle_ms = ka_cfg.keepalive_idle_ms,
                                .keepalive_interval_ms = ka_cfg.keepalive_interval_ms,
                                .keepalive_probes = ka_cfg.keepalive_probes};
    make_stack(&S, IP_SERVER, MAC_SERVER, 1024, max_segs, &cfg);
    struct net_events e = {on_accepted, on_received, on_closed};
    attach_backend(&S, &e, NULL);
    cr_assert_eq(net_listen(S.nb, "10.0.0.2", 9092), 9092);
}
static void setup(void) { setup_stack(0, 4); }
static void teardown(void) { destroy_side(&S); }

/* ---- building frames as the peer ---- */
static uint16_t ref_csum(const uint8_t *p, size_t n, uint32_t sum) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)), put16(p + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static size_t mk_eth(uint8_t *f, const uint8_t *dst_mac, uint16_t type) {
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, MAC_CLIENT, 6);
    put16(f + 12, type);
    return 14;
}

static size_t mk_ip(uint8_t *f, uint32_t src, uint32_t dst, uint8_t proto, size_t l4_len) {
    size_t o = mk_eth(f, MAC_SERVER, 0x0800);
    uint8_t *h = f + o;
    memset(h, 0, 20);
    h[0] = 0x45;
    put16(h + 2, (uint16_t)(20 + l4_len));
    put16(h + 6, 0x4000);
    h[8] = 64;
    h[9] = proto;
    put32(h + 12, src);
    put32(h + 16, dst);
    put16(h + 10, ref_csum(h, 20, 0));
    return o + 20;
}

static uint32_t pseudo(uint32_t src, uint32_t dst, size_t len) {
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + (uint32_t)len;
}

/* A TCP segment from the peer; opts: "mss" 1460 and wscale 7 when with_opts. */
static size_t mk_tcp_from(uint8_t *f, uint32_t src_ip, uint16_t sport, uint16_t dport,
                          uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                          bool with_opts, const void *payload, size_t plen) {
    size_t hl = with_opts ? (offer_sack ? 32 : 28) : 20;
    size_t o = mk_ip(f, src_ip, IP_SERVER, 6, hl + plen);
    uint8_t *t = f + o;
    memset(t, 0, hl);
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)((hl / 4) << 4);
    t[13] = flags;
    put16(t + 14, wnd);
    if (with_opts) {
        uint8_t opts[12] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2};
        memcpy(t + 20, opts, offer_sack ? 12 : 8);
    }
    if (plen) memcpy(t + hl, payload, plen);
    put16(t + 16, ref_csum(t, hl + plen, pseudo(src_ip, IP_SERVER, hl + plen)));
    return o + hl + plen;
}
static size_t mk_tcp(uint8_t *f, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags,
                     uint16_t wnd, const void *payload, size_t plen) {
    return mk_tcp_from(f, IP_CLIENT, sport, 9092, seq, ack, flags, wnd, false, payload, plen);
}

static void inject(const uint8_t *f, size_t n) {
    struct ustack_pkt *p = ustack_wire_rx_frame(&S.port, f, n);
    cr_assert_not_null(p);
    ustack_input(S.stack, &p, 1, now_us);
}

/* ---- reading what the stack sent ---- */
struct out {
    uint16_t ethertype;
    uint8_t proto;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t wnd, opt_mss;
    int opt_wscale;
    bool sack_permitted;
    int sack_count;
    uint32_t sack[4][2];
    size_t plen;
    uint8_t payload[2048];
    uint8_t raw[4096];
    size_t raw_len;
};

static bool next_out(struct out *o) {
    memset(o, 0, sizeof(*o));
    int n = ustack_wire_take(&S.port, o->raw, sizeof(o->raw));
    cr_assert_geq(n, 0);
    if (n == 0) return false;
    o->raw_len = (size_t)n;
    const uint8_t *f = o->raw;
    cr_assert_eq(memcmp(f + 6, MAC_SERVER, 6), 0, "source MAC");
    o->ethertype = get16(f + 12);
    if (o->ethertype != 0x0800) return true;
    const uint8_t *ip = f + 14;
    cr_assert_eq(ip[0], 0x45);
    cr_assert_eq(ref_csum(ip, 20, 0), 0, "IP header checksum");
    cr_assert_eq(get16(ip + 6) & 0x3fff, 0, "never fragmented");
    size_t total = get16(ip + 2);
    cr_assert_eq(total + 14, o->raw_len);
    o->proto = ip[9];
    const uint8_t *t = ip + 20;
    size_t l4 = total - 20;
    if (o->proto != 6) {
        o->plen = l4;
        memcpy(o->payload, t, l4);
        return true;
    }
    cr_assert_eq(ref_csum(t, l4, pseudo(IP_SERVER, get32(ip + 16), l4)), 0, "TCP checksum");
    o->sport = get16(t);
    o->dport = get16(t + 2);
    o->seq = get32(t + 4);
    o->ack = get32(t + 8);
    o->flags = t[13];
    o->wnd = get16(t + 14);
    size_t hl = (size_t)(t[12] >> 4) * 4;
    o->opt_wscale = -1;
    for (size_t i = 20; i < hl;) {
        if (t[i] == 1) {
            i++;
            continue;
        }
        if (t[i] == 0) break;
        if (t[i] == 2) o->opt_mss = get16(t + i + 2);
        if (t[i] == 3) o->opt_wscale = t[i + 2];
        if (t[i] == 4) o->sack_permitted = true;
        if (t[i] == 5) {
            o->sack_count = (t[i + 1] - 2) / 8;
            for (int k = 0; k < o->sack_count && k < 4; k++) {
                o->sack[k][0] = get32(t + i + 2 + 8 * k);
                o->sack[k][1] = get32(t + i + 6 + 8 * k);
            }
        }
        i += t[i + 1];
    }
    o->plen = l4 - hl;
    memcpy(o->payload, t + hl, o->plen);
    return true;
}

static struct out expect_tcp(uint8_t flags) {
    struct out o;
    cr_assert(next_out(&o), "expected a TCP segment with flags %#x", flags);
    cr_assert_eq(o.proto, 6);
    cr_assert_eq(o.flags, flags, "flags %#x, expected %#x", o.flags, flags);
    return o;
}

static void expect_nothing(void) {
    struct out o;
    cr_assert_not(next_out(&o), "unexpected frame (flags %#x)", o.flags);
}

static struct ustack_stats stats(void) {
    struct ustack_stats st;
    ustack_stats(S.stack, &st);
    return st;
}

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

/* Three-way handshake from port sport with peer ISN isn; returns the stack's ISN. */
static uint32_t handshake(uint16_t sport, uint32_t isn, uint16_t wnd) {
    uint8_t f[2048];
    inject(f, mk_tcp_from(f, IP_CLIENT, sport, 9092, isn, 0, F_SYN, 65535, true, NULL, 0));
    struct out sa = expect_tcp(F_SYN | F_ACK);
    cr_assert_eq(sa.ack, isn + 1);
    cr_assert_eq(sa.opt_mss, 1460);
    cr_assert_eq(sa.opt_wscale, 3, "256 KiB buffer needs shift 3");
    inject(f, mk_tcp(f, sport, isn + 1, sa.seq + 1, F_ACK, wnd, NULL, 0));
    expect_nothing();
    return sa.seq;
}

TestSuite(ustack_script, .init = setup, .fini = teardown);

Test(ustack_script, handshake_data_and_delayed_ack) {
    uint8_t f[2048];
    uint32_t iss = handshake(40000, 5000, 1000);
    cr_assert_eq(ev.accepted, 1);
    inject(f, mk_tcp(f, 40000, 5001, iss + 1, F_ACK | F_PSH, 1000, "hello", 5));
    cr_assert_eq(ev.rx_len, 5);
    cr_assert_eq(memcmp(ev.rx, "hello", 5), 0);
    expect_nothing(); /* the ACK is delayed */
    now_us += 600;
    ustack_poll(S.stack, now_us);
    struct out a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 5006);
    cr_assert_eq(a.wnd, (256u * 1024u) >> 3);
    cr_assert_eq(stats().tcp_delayed_acks, 1);
    /* the stack sends; the peer's window scale 7 applies to its 1000 */
    struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
    struct net_send s = {.iov = iov, .iov_count = 2, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(d.seq, iss + 1);
    cr_assert_eq(d.plen, 5);
    cr_assert_eq(memcmp(d.payload, "world", 5), 0);
    cr_assert_eq(ev.done_calls, 0, "done only when ACKed");
    inject(f, mk_tcp(f, 40000, 5006, iss + 6, F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, 0);
    char name[32];
    cr_assert_eq(net_peer_name(S.nb, ev.conn, name, sizeof(name)), 0);
    cr_assert_str_eq(name, "10.0.0.1");
    /* two full segments are ACKed at once, without waiting */
    uint8_t big[1460];
    memset(big, 'x', sizeof(big));
    inject(f, mk_tcp(f, 40000, 5006, iss + 6, F_ACK, 1000, big, sizeof(big)));
    expect_nothing();
    inject(f, mk_tcp(f, 40000, 5006 + 1460, iss + 6, F_ACK, 1000, big, sizeof(big)));
    struct out a2 = expect_tcp(F_ACK);
    cr_assert_eq(a2.ack, 5006 + 2920);
}

Test(ustack_script, rst_for_unknown_connections) {
    uint8_t f[2048];
    /* an ACK for nothing: RST with seq = its ack */
    inject(f, mk_tcp(f, 41000, 777, 12345, F_ACK, 1000, NULL, 0));
    struct out r = expect_tcp(F_RST);
    cr_assert_eq(r.seq, 12345);
    /* a SYN to a port nobody listens on: RST+ACK acking the SYN */
    inject(f, mk_tcp_from(f, IP_CLIENT, 41001, 9999, 100, 0, F_SYN, 1000, false, NULL, 0));
    r = expect_tcp(F_RST | F_ACK);
    cr_assert_eq(r.ack, 101);
    cr_assert_eq(r.seq, 0);
    /* data without ACK: ack covers the data */
    inject(f, mk_tcp(f, 41002, 500, 0, F_PSH, 1000, "abc", 3));
    r = expect_tcp(F_RST | F_ACK);
    cr_assert_eq(r.ack, 503);
    /* a RST is never answered */
    inject(f, mk_tcp(f, 41003, 500, 0, F_RST, 0, NULL, 0));
    expect_nothing();
    cr_assert_eq(stats().tcp_no_listener_rst, 3);
    cr_assert_eq(ev.accepted, 0);
}

Test(ustack_script, out_of_window_segments_dropped) {
    uint8_t f[2048];
    uint32_t iss = handshake(40001, 1000, 1000);
    /* far beyond the 256 KiB window */
    inject(f, mk_tcp(f, 40001, 1001 + 10000000, iss + 1, F_ACK, 1000, "zzz", 3));
    struct out a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1001);
    cr_assert_eq(ev.rx_len, 0);
    cr_assert_eq(stats().tcp_out_of_window, 1);
    /* an old duplicate is ACKed too, counted as duplicate */
    inject(f, mk_tcp(f, 40001, 1001, iss + 1, F_ACK, 1000, "abcd", 4));
    now_us += 1000;
    ustack_poll(S.stack, now_us);
    expect_tcp(F_ACK);
    inject(f, mk_tcp(f, 40001, 1001, iss + 1, F_ACK, 1000, "abcd", 4));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1005);
    cr_assert_eq(ev.rx_len, 4);
    cr_assert_eq(stats().tcp_dup_segments, 1);
    /* a RST out of window is dropped silently; in window but not exact gets a challenge
     * ACK (RFC 5961) */
    inject(f, mk_tcp(f, 40001, 1005 + 10000000, 0, F_RST, 0, NULL, 0));
    expect_nothing();
    inject(f, mk_tcp(f, 40001, 1005 + 10, 0, F_RST, 0, NULL, 0));
    expect_tcp(F_ACK);
    cr_assert_eq(ev.closed, 0);
    /* the exact RST resets */
    inject(f, mk_tcp(f, 40001, 1005, 0, F_RST, 0, NULL, 0));
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.close_reason, -ECONNRESET);
    cr_assert_eq(net_conn_count(S.nb), 0);
}

Test(ustack_script, sequence_wraparound) {
    uint8_t f[2048];
    uint32_t isn = 0xfffffff0u;
    uint32_t iss = handshake(40002, isn, 1000);
    uint32_t seq = isn + 1;
    /* in order across the wrap: 0xfffffff1..+30 */
    inject(f, mk_tcp(f, 40002, seq, iss + 1, F_ACK, 1000, "0123456789", 10));
    inject(f, mk_tcp(f, 40002, seq + 10, iss + 1, F_ACK, 1000, "abcdefghij", 10));
    /* out of order across the wrap: the third then the fourth's gap filled */
    inject(f, mk_tcp(f, 40002, seq + 30, iss + 1, F_ACK, 1000, "ZYXWV", 5));
    struct out a = expect_tcp(F_ACK); /* immediate duplicate ACK for the hole */
    cr_assert_eq(a.ack, seq + 20);
    cr_assert(seq + 20 < 100, "the ACK wrapped");
    inject(f, mk_tcp(f, 40002, seq + 20, iss + 1, F_ACK, 1000, "KLMNOPQRST", 10));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, seq + 35);
    cr_assert_eq(ev.rx_len, 35);
    cr_assert_eq(memcmp(ev.rx, "0123456789abcdefghijKLMNOPQRSTZYXWV", 35), 0);
    cr_assert_eq(stats().tcp_ooo_queued, 1);
}

Test(ustack_script, retransmit_after_rto) {
    uint8_t f[2048];
    uint32_t iss = handshake(40003, 1000, 1000);
    struct iovec iov = {"payload", 7};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(d.seq, iss + 1);
    now_us += 999000;
    ustack_poll(S.stack, now_us);
    expect_nothing(); /* initial RTO is 1 s */
    now_us += 2000;
    ustack_poll(S.stack, now_us);
    struct out r = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(r.seq, iss + 1);
    cr_assert_eq(memcmp(r.payload, "payload", 7), 0);
    cr_assert_eq(stats().tcp_retransmits_rto, 1);
    /* backed off: 2 s */
    now_us += 1500000;
    ustack_poll(S.stack, now_us);
    expect_nothing();
    now_us += 600000;
    ustack_poll(S.stack, now_us);
    expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(stats().tcp_retransmits_rto, 2);
    inject(f, mk_tcp(f, 40003, 1001, iss + 8, F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, 0);
    now_us += 10000000;
    ustack_poll(S.stack, now_us);
    expect_nothing(); /* nothing outstanding: no more retransmissions */
}

Test(ustack_script, fast_retransmit_on_three_dup_acks) {
    uint8_t f[2048];
    /* the peer offers MSS 1460 and window 1000 << 7 */
    uint32_t iss = handshake(40004, 1000, 1000);
    static uint8_t data[5 * 1460];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)i;
    struct iovec iov = {data, sizeof(data)};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    uint32_t seqs[5];
    for (int i = 0; i < 5; i++) {
        struct out d = expect_tcp(i == 4 ? (F_ACK | F_PSH) : F_ACK);
        seqs[i] = d.seq;
        cr_assert_eq(d.plen, 1460);
        cr_assert_eq(memcmp(d.payload, data + i * 1460, 1460), 0, "zero-copy bytes");
    }
    expect_nothing();
    /* segment 2 lost: the peer ACKs 1 and repeats that ACK for 3, 4, 5 */
    inject(f, mk_tcp(f, 40004, 1001, seqs[1], F_ACK, 1000, NULL, 0));
    inject(f, mk_tcp(f, 40004, 1001, seqs[1], F_ACK, 1000, NULL, 0));
    inject(f, mk_tcp(f, 40004, 1001, seqs[1], F_ACK, 1000, NULL, 0));
    expect_nothing();
    inject(f, mk_tcp(f, 40004, 1001, seqs[1], F_ACK, 1000, NULL, 0));
    struct out r = expect_tcp(F_ACK);
    cr_assert_eq(r.seq, seqs[1]);
    cr_assert_eq(r.plen, 1460);
    cr_assert_eq(stats().tcp_retransmits_fast, 1);
    cr_assert_eq(stats().tcp_retransmits_rto, 0);
    /* a partial ACK (NewReno): up to segment 3; segment 4 is resent at once */
    inject(f, mk_tcp(f, 40004, 1001, seqs[3], F_ACK, 1000, NULL, 0));
    r = expect_tcp(F_ACK);
    cr_assert_eq(r.seq, seqs[3]);
    inject(f, mk_tcp(f, 40004, 1001, iss + 1 + sizeof(data), F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, 0);
}

Test(ustack_script, zero_window_probe) {
    uint8_t f[2048];
    uint32_t iss = handshake(40005, 1000, 0); /* the peer's window is closed */
    struct iovec iov = {"blocked", 7};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    expect_nothing();
    now_us += 1100000; /* persist timer: max(RTO 1 s, 200 ms) */
    ustack_poll(S.stack, now_us);
    struct out p = expect_tcp(F_ACK);
    cr_assert_eq(p.seq, iss, "probe one below snd_una");
    cr_assert_eq(p.plen, 0);
    cr_assert_eq(stats().tcp_zero_window_probes, 1);
    /* still closed: the next probe backs off (2 s) */
    inject(f, mk_tcp(f, 40005, 1001, iss + 1, F_ACK, 0, NULL, 0));
    now_us += 1100000;
    ustack_poll(S.stack, now_us);
    expect_nothing();
    now_us += 1000000;
    ustack_poll(S.stack, now_us);
    expect_tcp(F_ACK);
    cr_assert_eq(stats().tcp_zero_window_probes, 2);
    /* the window opens: data flows */
    inject(f, mk_tcp(f, 40005, 1001, iss + 1, F_ACK, 100, NULL, 0));
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(memcmp(d.payload, "blocked", 7), 0);
}

Test(ustack_script, syn_flood_beyond_backlog) {
    teardown(); /* again with a backlog of 8 */
    setup_stack(8, 4);
    uint8_t f[2048];
    uint32_t iss = handshake(40006, 1000, 1000);
    for (uint16_t i = 0; i < 100; i++)
        inject(f, mk_tcp_from(f, 0x0a000100u + i, (uint16_t)(20000 + i), 9092, 77, 0, F_SYN,
                              1000, true, NULL, 0));
    int synacks = 0;
    struct out o;
    while (next_out(&o)) {
        cr_assert_eq(o.flags, F_SYN | F_ACK);
        synacks++;
    }
    cr_assert_eq(synacks, 8);
    cr_assert_eq(stats().tcp_backlog_full, 92);
    /* the established connection keeps working */
    inject(f, mk_tcp(f, 40006, 1001, iss + 1, F_ACK | F_PSH, 1000, "still", 5));
    cr_assert_eq(ev.rx_len, 5);
    struct iovec iov = {"alive", 5};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(memcmp(d.payload, "alive", 5), 0);
    /* the half-open ones time out (SYN-ACK retries), freeing the backlog */
    for (int i = 0; i < 10; i++) {
        now_us += 60000000;
        ustack_poll(S.stack, now_us);
        while (next_out(&o)) {
        }
    }
    inject(f, mk_tcp_from(f, 0x0a000200u, 30000, 9092, 5, 0, F_SYN, 1000, true, NULL, 0));
    expect_tcp(F_SYN | F_ACK);
}

Test(ustack_script, malformed_and_bad_checksums_counted) {
    uint8_t f[2048] = {0};
    uint8_t g[2048];
    size_t n;
    inject(f, 10); /* shorter than Ethernet */
    cr_assert_eq(stats().rx_malformed_eth, 1);
    n = mk_tcp(f, 42000, 1, 0, F_SYN, 1000, NULL, 0);
    memcpy(g, f, n);
    g[14] = 0x55; /* IP version 5 */
    inject(g, n);
    cr_assert_eq(stats().rx_malformed_ip, 1);
    memcpy(g, f, n);
    put16(g + 16, 1500); /* total length beyond the frame */
    inject(g, n);
    cr_assert_eq(stats().rx_malformed_ip, 2);
    memcpy(g, f, n);
    g[14] = 0x44; /* header length 16 */
    inject(g, n);
    cr_assert_eq(stats().rx_malformed_ip, 3);
    memcpy(g, f, n);
    g[24] ^= 0xff; /* IP header checksum */
    inject(g, n);
    cr_assert_eq(stats().rx_bad_ip_csum, 1);
    memcpy(g, f, n);
    put16(g + 20, 0x2000); /* more fragments */
    put16(g + 24, 0);
    put16(g + 24, ref_csum(g + 14, 20, 0));
    inject(g, n);
    cr_assert_eq(stats().rx_ip_fragments, 1);
    memcpy(g, f, n);
    g[34 + 16] ^= 0x01; /* TCP checksum */
    inject(g, n);
    cr_assert_eq(stats().rx_bad_tcp_csum, 1);
    memcpy(g, f, n);
    g[34 + 12] = 0x40; /* data offset 4 words */
    inject(g, n);
    cr_assert_eq(stats().rx_malformed_tcp, 1);
    memcpy(g, f, n);
    g[34 + 12] = 0xf0; /* data offset beyond the segment */
    inject(g, n);
    cr_assert_eq(stats().rx_malformed_tcp, 2);
    n = mk_tcp(f, 42000, 1, 0, F_SYN | F_FIN, 1000, NULL, 0); /* SYN+FIN */
    inject(f, n);
    cr_assert_eq(stats().rx_malformed_tcp, 3);
    n = mk_eth(f, MAC_SERVER, 0x86dd); /* IPv6 */
    memset(f + n, 0, 40);
    inject(f, n + 40);
    cr_assert_eq(stats().rx_unknown_ethertype, 1);
    n = mk_eth(f, (const uint8_t[6]){2, 9, 9, 9, 9, 9}, 0x0800); /* another host's MAC */
    inject(f, n + 40);
    cr_assert_eq(stats().rx_not_for_us, 1);
    expect_nothing();
    cr_assert_eq(ev.accepted, 0);
    cr_assert_eq(S.port.in_use, 0, "every dropped frame went back to the pool");
}

static size_t mk_arp(uint8_t *f, uint16_t op, const uint8_t *dst_mac, uint32_t sender_ip,
                     uint32_t target_ip) {
    size_t o = mk_eth(f, dst_mac, 0x0806);
    uint8_t *a = f + o;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, MAC_CLIENT, 6);
    put32(a + 14, sender_ip);
    memset(a + 18, 0, 6);
    put32(a + 24, target_ip);
    return o + 28;
}

static void on_connected(struct net_conn *c, int status) {
    (void)c;
    ev.done_status = status;
    ev.done_calls++;
}

Test(ustack_script, arp_answer_and_resolve) {
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t f[2048];
    inject(f, mk_arp(f, 1, bcast, IP_CLIENT, IP_SERVER));
    struct out o;
    cr_assert(next_out(&o));
    cr_assert_eq(o.ethertype, 0x0806);
    const uint8_t *a = o.raw + 14;
    cr_assert_eq(get16(a + 6), 2, "a reply");
    cr_assert_eq(memcmp(a + 8, MAC_SERVER, 6), 0);
    cr_assert_eq(get32(a + 14), IP_SERVER);
    cr_assert_eq(memcmp(a + 18, MAC_CLIENT, 6), 0);
    cr_assert_eq(get32(a + 24), IP_CLIENT);
    cr_assert_eq(memcmp(o.raw, MAC_CLIENT, 6), 0);
    inject(f, mk_arp(f, 1, bcast, IP_CLIENT, 0x0a000063u)); /* for someone else */
    expect_nothing();
    cr_assert_eq(stats().arp_requests_answered, 1);
    /* resolving: a connect to an unknown on-link host asks first, SYN waits */
    int err = 0;
    struct net_conn *c = net_connect(S.nb, "10.0.0.7", 80, NULL, on_connected, &err);
    cr_assert_not_null(c);
    cr_assert(next_out(&o));
    cr_assert_eq(o.ethertype, 0x0806);
    cr_assert_eq(get16(o.raw + 14 + 6), 1, "a request");
    cr_assert_eq(get32(o.raw + 14 + 24), 0x0a000007u);
    expect_nothing();
    uint8_t rep[64];
    size_t n = mk_arp(rep, 2, MAC_SERVER, 0x0a000007u, IP_SERVER);
    inject(rep, n);
    struct out syn = expect_tcp(F_SYN);
    cr_assert_eq(memcmp(syn.raw, MAC_CLIENT, 6), 0, "SYN goes to the resolved MAC");
    cr_assert_eq(syn.dport, 80);
    cr_assert_eq(syn.opt_mss, 1460);
    cr_assert_eq(stats().arp_replies_received, 1);
    /* the peer refuses: connected(-ECONNREFUSED), then closed */
    inject(f, mk_tcp_from(f, 0x0a000007u, 80, syn.sport, 0, syn.seq + 1, F_RST | F_ACK, 0,
                          false, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, -ECONNREFUSED);
    cr_assert_eq(ev.closed, 1);
    /* an unanswered resolution gives up and counts the waiting frame */
    c = net_connect(S.nb, "10.0.0.8", 80, NULL, on_connected, &err);
    cr_assert_not_null(c);
    while (next_out(&o)) {
    }
    now_us += 1500000;
    ustack_poll(S.stack, now_us);
    cr_assert_geq(stats().arp_pending_dropped, 1);
}

Test(ustack_script, icmp_echo) {
    uint8_t f[2048];
    uint8_t icmp[40] = {8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01};
    for (int i = 8; i < 40; i++) icmp[i] = (uint8_t)i;
    put16(icmp + 2, ref_csum(icmp, sizeof(icmp), 0));
    size_t o = mk_ip(f, IP_CLIENT, IP_SERVER, 1, sizeof(icmp));
    memcpy(f + o, icmp, sizeof(icmp));
    inject(f, o + sizeof(icmp));
    struct out r;
    cr_assert(next_out(&r));
    cr_assert_eq(r.proto, 1);
    cr_assert_eq(r.plen, sizeof(icmp));
    cr_assert_eq(r.payload[0], 0, "echo reply");
    cr_assert_eq(ref_csum(r.payload, r.plen, 0), 0, "ICMP checksum");
    cr_assert_eq(memcmp(r.payload + 4, icmp + 4, sizeof(icmp) - 4), 0);
    cr_assert_eq(get32(r.raw + 14 + 16), IP_CLIENT);
    icmp[10] ^= 1; /* corrupt */
    memcpy(f + o, icmp, sizeof(icmp));
    inject(f, o + sizeof(icmp));
    expect_nothing();
    cr_assert_eq(stats().rx_bad_icmp_csum, 1);
    cr_assert_eq(stats().icmp_echo_answered, 1);
}

Test(ustack_script, simultaneous_close) {
    uint8_t f[2048];
    uint32_t iss = handshake(40007, 1000, 1000);
    net_close(S.nb, ev.conn); /* nothing unacknowledged: FIN */
    struct out fin = expect_tcp(F_FIN | F_ACK);
    cr_assert_eq(fin.seq, iss + 1);
    cr_assert_eq(ev.closed, 0, "never a callback from inside an op");
    ustack_poll(S.stack, now_us);
    cr_assert_eq(ev.closed, 1, "closed runs once the user's sends are done");
    /* the peer's FIN crosses ours: it does not ACK our FIN yet */
    inject(f, mk_tcp(f, 40007, 1001, iss + 1, F_FIN | F_ACK, 1000, NULL, 0));
    struct out a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1002);
    /* now it ACKs our FIN: TIME_WAIT */
    inject(f, mk_tcp(f, 40007, 1002, iss + 2, F_ACK, 1000, NULL, 0));
    expect_nothing();
    /* in TIME_WAIT a retransmitted FIN is ACKed again */
    inject(f, mk_tcp(f, 40007, 1001, iss + 2, F_FIN | F_ACK, 1000, NULL, 0));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1002);
    uint64_t closed_before = stats().tcp_conns_closed;
    now_us += 200000; /* time_wait_us = 100 ms */
    ustack_poll(S.stack, now_us);
    cr_assert_eq(stats().tcp_conns_closed, closed_before + 1, "TIME_WAIT ended, slot free");
    /* the slot is gone: a late segment gets a RST */
    inject(f, mk_tcp(f, 40007, 1002, iss + 2, F_ACK, 1000, NULL, 0));
    expect_tcp(F_RST);
}

Test(ustack_script, passive_close_and_refused_accept) {
    uint8_t f[2048];
    uint32_t iss = handshake(40008, 1000, 1000);
    inject(f, mk_tcp(f, 40008, 1001, iss + 1, F_ACK | F_PSH | F_FIN, 1000, "bye", 3));
    cr_assert_eq(ev.rx_len, 3);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.close_reason, 0);
    /* our ACK of the FIN and then our FIN (LAST_ACK) */
    struct out o;
    bool saw_fin = false;
    while (next_out(&o)) {
        cr_assert(o.flags & F_ACK);
        cr_assert_eq(o.ack, 1005);
        if (o.flags & F_FIN) saw_fin = true;
    }
    cr_assert(saw_fin);
    inject(f, mk_tcp(f, 40008, 1005, iss + 2, F_ACK, 1000, NULL, 0));
    expect_nothing();
    cr_assert_eq(net_conn_count(S.nb), 0);
    /* a refused accept resets the connection */
    ev.refuse = true;
    inject(f, mk_tcp_from(f, IP_CLIENT, 40009, 9092, 50, 0, F_SYN, 1000, true, NULL, 0));
    struct out sa = expect_tcp(F_SYN | F_ACK);
    inject(f, mk_tcp(f, 40009, 51, sa.seq + 1, F_ACK, 1000, NULL, 0));
    expect_tcp(F_RST | F_ACK);
    cr_assert_eq(net_conn_count(S.nb), 0);
}

Test(ustack_script, paused_receiver_closes_window) {
    uint8_t f[2048];
    uint32_t iss = handshake(40010, 1000, 1000);
    net_recv_pause(S.nb, ev.conn);
    static uint8_t big[1460];
    uint32_t seq = 1001;
    uint16_t last_wnd = 0xffff;
    for (int i = 0; i < 200; i++) {
        memset(big, 'a' + i % 26, sizeof(big));
        inject(f, mk_tcp(f, 40010, seq, iss + 1, F_ACK, 1000, big, sizeof(big)));
        seq += sizeof(big);
        struct out o;
        while (next_out(&o)) last_wnd = o.wnd;
    }
    cr_assert_eq(ev.rx_len, 0, "nothing delivered while paused");
    cr_assert_eq(last_wnd, 0, "the window closed");
    uint64_t full = stats().tcp_rcv_queue_full + stats().tcp_out_of_window;
    cr_assert_gt(full, 0, "segments beyond the window/queue were dropped");
    net_recv_resume(S.nb, ev.conn);
    cr_assert_eq(ev.rx_len, 0, "delivery comes from the driver's loop, not the op");
    ustack_poll(S.stack, now_us);
    cr_assert_gt(ev.rx_len, 0);
    cr_assert_eq(ev.rx[0], 'a');
    struct out up = expect_tcp(F_ACK); /* window update */
    cr_assert_gt(up.wnd, 0);
}

Test(ustack_script, send_and_close_from_inside_received) {
    uint8_t f[2048];
    uint32_t iss = handshake(40011, 1000, 1000);
    ev.echo = true;
    inject(f, mk_tcp(f, 40011, 1001, iss + 1, F_ACK | F_PSH, 1000, "ping", 4));
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(d.plen, 4);
    cr_assert_eq(memcmp(d.payload, "ping", 4), 0);
    cr_assert_eq(d.ack, 1005, "the echo carries the ACK of the request");
    inject(f, mk_tcp(f, 40011, 1005, iss + 5, F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    /* close from inside received, with everything ACKed: a FIN, closed once */
    ev.close_in_rx = true;
    inject(f, mk_tcp(f, 40011, 1005, iss + 5, F_ACK | F_PSH, 1000, "quit", 4));
    cr_assert_eq(ev.closed, 1);
    struct out o;
    bool fin = false;
    while (next_out(&o)) fin |= (o.flags & F_FIN) != 0;
    cr_assert(fin);
}

Test(ustack_script, syn_reuses_port_in_time_wait) {
    uint8_t f[2048];
    uint32_t iss = handshake(40012, 1000, 1000);
    net_close(S.nb, ev.conn);
    expect_tcp(F_FIN | F_ACK);
    inject(f, mk_tcp(f, 40012, 1001, iss + 2, F_FIN | F_ACK, 1000, NULL, 0)); /* -> TIME_WAIT */
    expect_tcp(F_ACK);
    /* the same client port again, its SYN above the old stream: accepted */
    inject(f, mk_tcp_from(f, IP_CLIENT, 40012, 9092, 900000, 0, F_SYN, 65535, true, NULL, 0));
    struct out sa = expect_tcp(F_SYN | F_ACK);
    cr_assert_eq(sa.ack, 900001);
    inject(f, mk_tcp(f, 40012, 900001, sa.seq + 1, F_ACK, 1000, "new", 3));
    cr_assert_eq(ev.accepted, 2);
    cr_assert_eq(ev.rx_len, 3);
}

Test(ustack_script, fin_wait_2_times_out) {
    uint8_t f[2048];
    uint32_t iss = handshake(40013, 1000, 1000);
    net_close(S.nb, ev.conn);
    expect_tcp(F_FIN | F_ACK);
    inject(f, mk_tcp(f, 40013, 1001, iss + 2, F_ACK, 1000, NULL, 0)); /* FIN_WAIT_2 */
    uint64_t closed_before = stats().tcp_conns_closed;
    now_us += 29000000;
    ustack_poll(S.stack, now_us);
    cr_assert_eq(stats().tcp_conns_closed, closed_before, "still waiting for the peer's FIN");
    now_us += 2000000;
    ustack_poll(S.stack, now_us);
    cr_assert_eq(stats().tcp_conns_closed, closed_before + 1, "the slot is free");
    expect_nothing();
}

/* `closed` comes as soon as the user's sends are done, before the FIN exchange is over;
 * closing_count says the stack still has work on the wire: a client that destroyed the
 * stack at `closed` (loadgen did) never retransmitted a lost FIN, nor ACKed the peer's. */
Test(ustack_script, closing_count_until_the_fin_exchange_is_done) {
    uint8_t f[2048];
    uint32_t iss = handshake(40014, 1000, 1000);
    cr_assert_eq(net_closing_count(S.nb), 0);
    net_close(S.nb, ev.conn);
    struct out fin = expect_tcp(F_FIN | F_ACK);
    ustack_poll(S.stack, now_us);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(net_conn_count(S.nb), 0, "the user sees no connection any more");
    cr_assert_eq(net_closing_count(S.nb), 1, "but our FIN is not ACKed (FIN_WAIT_1)");
    /* that FIN was lost: only a stack that is still polled sends it again */
    now_us += 1100000; /* the initial RTO, 1 s */
    ustack_poll(S.stack, now_us);
    struct out again = expect_tcp(F_FIN | F_ACK);
    cr_assert_eq(again.seq, fin.seq);
    inject(f, mk_tcp(f, 40014, 1001, iss + 2, F_ACK, 1000, NULL, 0));
    cr_assert_eq(net_closing_count(S.nb), 1, "FIN_WAIT_2: the peer's FIN is still to come");
    inject(f, mk_tcp(f, 40014, 1001, iss + 2, F_FIN | F_ACK, 1000, NULL, 0));
    struct out a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1002, "the peer's FIN is ACKed");
    cr_assert_eq(net_closing_count(S.nb), 0, "TIME_WAIT: nothing more to wait for");
    /* passive side: the peer closes first; our FIN (LAST_ACK) waits for its ACK */
    uint32_t iss2 = handshake(40015, 5000, 1000);
    inject(f, mk_tcp(f, 40015, 5001, iss2 + 1, F_FIN | F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.closed, 2);
    bool saw_fin = false;
    struct out o;
    while (next_out(&o)) saw_fin |= (o.flags & F_FIN) != 0;
    cr_assert(saw_fin);
    cr_assert_eq(net_conn_count(S.nb), 0);
    cr_assert_eq(net_closing_count(S.nb), 1, "LAST_ACK");
    inject(f, mk_tcp(f, 40015, 5002, iss2 + 2, F_ACK, 1000, NULL, 0));
    cr_assert_eq(net_closing_count(S.nb), 0);
}

Test(ustack_script, window_closed_on_bytes_in_flight_is_not_loss) {
    uint8_t f[2048];
    uint32_t iss = handshake(40014, 1000, 1000);
    struct iovec iov = {"0123456789", 10};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    expect_tcp(F_ACK | F_PSH);
    /* the peer takes 4 bytes and closes its window on the other 6 */
    inject(f, mk_tcp(f, 40014, 1001, iss + 5, F_ACK, 0, NULL, 0));
    /* for a long time: many RTO/persist periods, the connection must survive */
    for (int i = 0; i < 40; i++) {
        now_us += 60000000;
        ustack_poll(S.stack, now_us);
        struct out o;
        while (next_out(&o)) {
            cr_assert_eq(o.plen, 0, "nothing beyond a zero window (i=%d seq=%u iss=%u len=%zu)", i, o.seq, iss, o.plen);
            cr_assert_eq(o.flags, F_ACK);
        }
        inject(f, mk_tcp(f, 40014, 1001, iss + 5, F_ACK, 0, NULL, 0)); /* still closed */
    }
    cr_assert_eq(ev.closed, 0);
    cr_assert_gt(stats().tcp_zero_window_probes, 0);
    /* the window opens: the 6 bytes go again from snd_una */
    inject(f, mk_tcp(f, 40014, 1001, iss + 5, F_ACK, 100, NULL, 0));
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(d.seq, iss + 5);
    cr_assert_eq(d.plen, 6);
    cr_assert_eq(memcmp(d.payload, "456789", 6), 0);
    inject(f, mk_tcp(f, 40014, 1001, iss + 11, F_ACK, 100, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, 0);
}

Test(ustack_script, loss_probe_before_rto) {
    uint8_t f[2048];
    uint32_t iss = handshake(40015, 1000, 1000);
    static uint8_t data[3000];
    memset(data, 'p', sizeof(data));
    struct iovec iov = {data, 100};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    expect_tcp(F_ACK | F_PSH);
    now_us += 1000; /* an RTT sample of 1 ms: RTO = 200 ms (the floor) */
    inject(f, mk_tcp(f, 40015, 1001, iss + 101, F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    /* a 3000-byte response, all of it lost: too few segments for 3 duplicate ACKs */
    struct iovec iov2 = {data, sizeof(data)};
    struct net_send s2 = {.iov = &iov2, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s2), 0);
    struct out o;
    int segs = 0;
    while (next_out(&o)) segs++;
    cr_assert_eq(segs, 3);
    now_us += 9000;
    ustack_poll(S.stack, now_us);
    expect_nothing(); /* probe timeout: max(2 SRTT, 10 ms) */
    now_us += 2000;
    ustack_poll(S.stack, now_us);
    struct out p = expect_tcp(F_ACK);
    cr_assert_eq(p.seq, iss + 101, "the first unacknowledged segment");
    cr_assert_eq(p.plen, 1460);
    cr_assert_eq(stats().tcp_loss_probes, 1);
    cr_assert_eq(stats().tcp_retransmits_rto, 0);
    /* one probe per ACK advance: the next retransmission is the RTO's */
    now_us += 100000;
    ustack_poll(S.stack, now_us);
    expect_nothing();
    now_us += 100000;
    ustack_poll(S.stack, now_us);
    expect_tcp(F_ACK);
    cr_assert_eq(stats().tcp_retransmits_rto, 1);
}

Test(ustack_script, listen_returns_the_port) {
    cr_assert_eq(net_listen(S.nb, "10.0.0.2", 9092), -EADDRINUSE);
    cr_assert_eq(net_listen(S.nb, "10.0.0.9", 9093), -EADDRNOTAVAIL, "not our address");
    int p = net_listen(S.nb, "", 0);
    cr_assert_geq(p, 32768);
    cr_assert_leq(p, 60999);
    uint8_t f[2048];
    inject(f, mk_tcp_from(f, IP_CLIENT, 40100, (uint16_t)p, 1, 0, F_SYN, 1000, true, NULL, 0));
    expect_tcp(F_SYN | F_ACK);
    net_stop_listening(S.nb);
    inject(f, mk_tcp_from(f, IP_CLIENT, 40101, 9092, 1, 0, F_SYN, 1000, true, NULL, 0));
    expect_tcp(F_RST | F_ACK);
}

Test(ustack_script, sack_blocks_for_out_of_order_data) {
    uint8_t f[2048];
    offer_sack = true;
    inject(f, mk_tcp_from(f, IP_CLIENT, 40016, 9092, 1000, 0, F_SYN, 65535, true, NULL, 0));
    struct out sa = expect_tcp(F_SYN | F_ACK);
    cr_assert(sa.sack_permitted, "SACK-permitted answered");
    uint32_t iss = sa.seq;
    inject(f, mk_tcp(f, 40016, 1001, iss + 1, F_ACK, 1000, NULL, 0));
    /* holes: [1001,1011) missing; [1011,1021) and [1031,1041) arrive, the latter last */
    inject(f, mk_tcp(f, 40016, 1011, iss + 1, F_ACK, 1000, "bbbbbbbbbb", 10));
    struct out a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1001);
    cr_assert_eq(a.sack_count, 1);
    cr_assert_eq(a.sack[0][0], 1011);
    cr_assert_eq(a.sack[0][1], 1021);
    inject(f, mk_tcp(f, 40016, 1031, iss + 1, F_ACK, 1000, "dddddddddd", 10));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.sack_count, 2);
    cr_assert_eq(a.sack[0][0], 1031, "the most recent block first");
    cr_assert_eq(a.sack[0][1], 1041);
    cr_assert_eq(a.sack[1][0], 1011);
    /* the gap between fills: the two blocks merge, still above the first hole */
    inject(f, mk_tcp(f, 40016, 1021, iss + 1, F_ACK, 1000, "cccccccccc", 10));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.sack_count, 1);
    cr_assert_eq(a.sack[0][0], 1011);
    cr_assert_eq(a.sack[0][1], 1041);
    /* the first hole fills: everything in order, no SACK any more */
    inject(f, mk_tcp(f, 40016, 1001, iss + 1, F_ACK, 1000, "aaaaaaaaaa", 10));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1041);
    cr_assert_eq(a.sack_count, 0);
    cr_assert_eq(ev.rx_len, 40);
    cr_assert_eq(memcmp(ev.rx, "aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", 40), 0);
}

Test(ustack_script, output_resumes_after_tx_pool_exhaustion) {
    uint8_t f[2048];
    uint32_t iss = handshake(40017, 1000, 1000);
    /* the driver runs out of TX frames: hoard every free frame of the port */
    static struct ustack_pkt *hoard[2048];
    int n = 0;
    uint8_t byte = 0;
    struct ustack_pkt *p;
    while ((p = ustack_wire_rx_frame(&S.port, &byte, 1)) != NULL) hoard[n++] = p;
    cr_assert_gt(n, 0);
    struct iovec iov = {"late but sent", 13};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    expect_nothing();
    cr_assert_gt(stats().tx_alloc_failed, 0);
    for (int i = 0; i < n; i++) ustack_wire_io(&S.port)->pkt_free(&S.port, hoard[i]);
    now_us += 1500;
    ustack_poll(S.stack, now_us);
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(d.seq, iss + 1);
    cr_assert_eq(memcmp(d.payload, "late but sent", 13), 0);
    inject(f, mk_tcp(f, 40017, 1001, iss + 14, F_ACK, 1000, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
}

Test(ustack_script, close_with_data_in_flight_finishes_it) {
    uint8_t f[2048];
    uint32_t iss = handshake(40018, 1000, 1000);
    struct iovec iov = {"last words", 10};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    expect_tcp(F_ACK | F_PSH); /* lost on the way */
    struct iovec iov2 = {"also sent!", 10};
    struct net_send s2 = {.iov = &iov2, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s2), 0); /* handed over before the close */
    net_close(S.nb, ev.conn);
    struct out o;
    while (next_out(&o)) {
    } /* ...and the FIN after both */
    ustack_poll(S.stack, now_us);
    cr_assert_eq(ev.closed, 0, "closed waits for the sends");
    now_us += 1100000; /* RTO: the data and the FIN go again */
    ustack_poll(S.stack, now_us);
    struct out d = expect_tcp(F_ACK | F_PSH | F_FIN);
    cr_assert_eq(d.seq, iss + 1);
    cr_assert_eq(d.plen, 20);
    cr_assert_eq(memcmp(d.payload, "last wordsalso sent!", 20), 0);
    inject(f, mk_tcp(f, 40018, 1001, iss + 22, F_ACK, 1000, NULL, 0)); /* all + FIN */
    cr_assert_eq(ev.done_calls, 2);
    cr_assert_eq(ev.done_status, 0);
    cr_assert_eq(ev.closed, 1);
    inject(f, mk_tcp(f, 40018, 1001, iss + 22, F_ACK | F_FIN, 1000, NULL, 0));
    expect_tcp(F_ACK); /* TIME_WAIT */
}

Test(ustack_script, close_linger_resets_a_peer_that_takes_nothing) {
    uint8_t f[2048];
    uint32_t iss = handshake(40019, 1000, 0); /* window closed, stays closed */
    struct iovec iov = {"stuck", 5};
    struct net_send s = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &s), 0);
    net_close(S.nb, ev.conn);
    for (int i = 0; i < 9; i++) {
        now_us += 1000000;
        ustack_poll(S.stack, now_us);
        struct out o;
        while (next_out(&o)) cr_assert_neq(o.flags & F_RST, F_RST);
        inject(f, mk_tcp(f, 40019, 1001, iss + 1, F_ACK, 0, NULL, 0));
        struct out o2;
        while (next_out(&o2)) {
        }
    }
    cr_assert_eq(ev.closed, 0);
    now_us += 1500000; /* past the 10 s linger */
    ustack_poll(S.stack, now_us);
    bool rst = false;
    struct out o;
    while (next_out(&o)) rst |= (o.flags & F_RST) != 0;
    cr_assert(rst, "reset after the linger");
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, -ETIMEDOUT);
    cr_assert_eq(ev.closed, 1);
}

Test(ustack_script, data_after_close_is_acked_and_dropped) {
    uint8_t f[2048];
    uint32_t iss = handshake(40020, 1000, 1000);
    net_recv_pause(S.nb, ev.conn);
    inject(f, mk_tcp(f, 40020, 1001, iss + 1, F_ACK, 1000, "held", 4));
    cr_assert_eq(ev.rx_len, 0);
    net_close(S.nb, ev.conn); /* the held bytes will never be read */
    expect_tcp(F_FIN | F_ACK);
    ustack_poll(S.stack, now_us);
    cr_assert_eq(ev.closed, 1);
    uint32_t in_use_before = S.port.in_use;
    inject(f, mk_tcp(f, 40020, 1005, iss + 2, F_ACK | F_PSH, 1000, "more", 4));
    now_us += 1000;
    ustack_poll(S.stack, now_us);
    struct out a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1009, "ACKed though nobody reads");
    cr_assert_eq(S.port.in_use, in_use_before, "and not kept");
    cr_assert_eq(ev.rx_len, 0);
    inject(f, mk_tcp(f, 40020, 1009, iss + 2, F_ACK | F_FIN, 1000, NULL, 0));
    a = expect_tcp(F_ACK);
    cr_assert_eq(a.ack, 1010);
}

/* ---- keepalive and zero-window give-up ---- */

/* The stack again, with keepalive settings. */
static void setup_keepalive(uint32_t idle_ms, uint32_t interval_ms, uint32_t probes) {
    teardown();
    ka_cfg = (struct ustack_config){.keepalive_idle_ms = idle_ms,
                                    .keepalive_interval_ms = interval_ms,
                                    .keepalive_probes = probes};
    setup_stack(0, 4);
    ka_cfg = (struct ustack_config){0};
}

/* Jump to the stack's next timer, again while the timers run without sending (stale or
 * lazily moved deadlines), until a frame comes out; now_us is then the time it was sent. */
static struct out run_to_next_frame(void) {
    struct out o;
    for (int i = 0; i < 16; i++) {
        uint64_t t = ustack_next_timer_us(S.stack);
        cr_assert_neq(t, UINT64_MAX, "no timer armed");
        if (t > now_us) now_us = t;
        ustack_poll(S.stack, now_us);
        if (next_out(&o)) return o;
    }
    cr_assert_fail("the timers sent nothing");
    return o;
}

/* A keepalive probe: an empty ACK one below snd_nxt (iss + 1 here: nothing was sent). */
static void assert_keepalive_probe(const struct out *o, uint32_t iss, uint32_t rcv_nxt) {
    cr_assert_eq(o->proto, 6);
    cr_assert_eq(o->flags, F_ACK, "probe flags %#x", o->flags);
    cr_assert_eq(o->seq, iss, "seq = snd_nxt - 1");
    cr_assert_eq(o->ack, rcv_nxt);
    cr_assert_eq(o->plen, 0);
}

#define SEC 1000000ull

Test(ustack_script, keepalive_off_by_default) {
    uint8_t f[2048];
    uint32_t iss = handshake(40021, 1000, 1000);
    ustack_poll(S.stack, now_us + 2 * SEC); /* the SYN-ACK's old RTO deadline passes */
    now_us += 2 * SEC;
    cr_assert_eq(ustack_next_timer_us(S.stack), UINT64_MAX, "no timer armed when idle");
    for (int i = 0; i < 48; i++) { /* 4 hours in 5-minute steps */
        now_us += 300 * SEC;
        ustack_poll(S.stack, now_us);
        expect_nothing();
    }
    cr_assert_eq(ustack_next_timer_us(S.stack), UINT64_MAX);
    cr_assert_eq(stats().tcp_keepalive_probes, 0);
    cr_assert_eq(stats().tcp_keepalive_timeouts, 0);
    cr_assert_eq(ev.closed, 0);
    cr_assert_eq(net_conn_count(S.nb), 1);
    inject(f, mk_tcp(f, 40021, 1001, iss + 1, F_ACK | F_PSH, 1000, "awake", 5));
    cr_assert_eq(ev.rx_len, 5, "the connection still works");
}

Test(ustack_script, keepalive_probe_answered_restarts_idle) {
    setup_keepalive(10000, 1000, 3); /* idle 10 s, then probes 1 s apart, 3 of them */
    uint8_t f[2048];
    uint64_t t0 = now_us;
    uint32_t iss = handshake(40022, 1000, 1000);
    now_us = t0 + 10 * SEC - 1000;
    ustack_poll(S.stack, now_us);
    expect_nothing();
    struct out p = run_to_next_frame();
    cr_assert_eq(now_us, t0 + 10 * SEC, "first probe after the idle time");
    assert_keepalive_probe(&p, iss, 1001);
    cr_assert_eq(stats().tcp_keepalive_probes, 1);
    /* the peer answers (as Linux does: an ACK of what it has) */
    now_us += 5000;
    uint64_t answered = now_us;
    inject(f, mk_tcp(f, 40022, 1001, iss + 1, F_ACK, 1000, NULL, 0));
    expect_nothing();
    /* the interval's timer finds the answer and waits a whole idle time from it */
    p = run_to_next_frame();
    cr_assert_eq(now_us, answered + 10 * SEC, "idle restarts at the answer");
    assert_keepalive_probe(&p, iss, 1001);
    cr_assert_eq(stats().tcp_keepalive_probes, 2);
    cr_assert_eq(stats().tcp_keepalive_timeouts, 0);
    cr_assert_eq(ev.closed, 0);
    /* the answer cleared the count: 3 more unanswered probes before the reset */
    for (int i = 0; i < 2; i++) {
        uint64_t before = now_us;
        p = run_to_next_frame();
        cr_assert_eq(now_us, before + SEC);
        assert_keepalive_probe(&p, iss, 1001);
    }
    p = run_to_next_frame();
    cr_assert_eq(p.flags, F_RST | F_ACK);
    cr_assert_eq(stats().tcp_keepalive_probes, 4);
    cr_assert_eq(stats().tcp_keepalive_timeouts, 1);
}

Test(ustack_script, keepalive_silent_peer_is_reset) {
    setup_keepalive(10000, 1000, 3);
    uint64_t t0 = now_us;
    uint32_t iss = handshake(40023, 1000, 1000);
    for (int i = 0; i < 3; i++) {
        struct out p = run_to_next_frame();
        cr_assert_eq(now_us, t0 + 10 * SEC + (uint64_t)i * SEC, "probe %d at idle + %d s", i, i);
        assert_keepalive_probe(&p, iss, 1001);
        cr_assert_eq(ev.closed, 0);
    }
    cr_assert_eq(stats().tcp_keepalive_probes, 3);
    struct out r = run_to_next_frame();
    cr_assert_eq(now_us, t0 + 13 * SEC, "reset an interval after the last probe");
    cr_assert_eq(r.flags, F_RST | F_ACK);
    cr_assert_eq(r.seq, iss + 1);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.close_reason, -ETIMEDOUT, "the user is told, as on an RTO give-up");
    cr_assert_eq(stats().tcp_keepalive_timeouts, 1);
    cr_assert_eq(stats().tcp_rst_sent, 1);
    cr_assert_eq(net_conn_count(S.nb), 0);
    now_us += 3600 * SEC;
    ustack_poll(S.stack, now_us);
    expect_nothing();
    cr_assert_eq(ustack_next_timer_us(S.stack), UINT64_MAX, "nothing left armed");
}

Test(ustack_script, keepalive_defaults_75s_interval_9_probes) {
    setup_keepalive(1000, 0, 0); /* idle 1 s; interval and probes from the defaults */
    uint64_t t0 = now_us;
    uint32_t iss = handshake(40024, 1000, 1000);
    for (int i = 0; i < 9; i++) {
        struct out p = run_to_next_frame();
        cr_assert_eq(now_us, t0 + SEC + (uint64_t)i * 75 * SEC);
        assert_keepalive_probe(&p, iss, 1001);
    }
    struct out r = run_to_next_frame();
    cr_assert_eq(now_us, t0 + SEC + 9ull * 75 * SEC);
    cr_assert_eq(r.flags, F_RST | F_ACK);
    cr_assert_eq(stats().tcp_keepalive_probes, 9);
    cr_assert_eq(stats().tcp_keepalive_timeouts, 1);
    cr_assert_eq(ev.close_reason, -ETIMEDOUT);
}

Test(ustack_script, keepalive_idle_restarts_on_data_and_waits_for_data_in_flight) {
    setup_keepalive(10000, 1000, 3);
    uint8_t f[2048];
    uint64_t t0 = now_us;
    uint32_t iss = handshake(40025, 1000, 1000);
    now_us = t0 + 6 * SEC;
    inject(f, mk_tcp(f, 40025, 1001, iss + 1, F_ACK | F_PSH, 1000, "ping", 4));
    cr_assert_eq(ev.rx_len, 4);
    struct out a = run_to_next_frame();
    cr_assert_eq(a.flags, F_ACK);
    cr_assert_eq(a.ack, 1005);
    cr_assert_eq(a.seq, iss + 1, "the delayed ACK, not a probe");
    struct out p = run_to_next_frame();
    cr_assert_eq(now_us, t0 + 16 * SEC, "idle counts from the data");
    assert_keepalive_probe(&p, iss, 1005);
    cr_assert_eq(stats().tcp_keepalive_probes, 1);
    /* we send; the peer ACKs nothing from here on. The RTO retransmits and keepalive does
     * not probe or count while the data is in flight (the RTO gives up on its own) */
    struct iovec iov = {"pong", 4};
    struct net_send snd = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &snd), 0);
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(d.seq, iss + 1);
    uint64_t sent = now_us;
    int resent = 0;
    while (now_us < sent + 60 * SEC) {
        struct out o = run_to_next_frame();
        cr_assert_eq(o.plen, 4, "only retransmissions (flags %#x seq %u)", o.flags, o.seq);
        resent++;
    }
    cr_assert_geq(resent, 5);
    cr_assert_eq(stats().tcp_keepalive_probes, 1);
    cr_assert_eq(stats().tcp_keepalive_timeouts, 0);
    cr_assert_eq(ev.closed, 0);
}

Test(ustack_script, zero_window_answered_is_probed_forever) {
    uint8_t f[2048];
    uint32_t iss = handshake(40026, 1000, 0);
    struct iovec iov = {"waiting", 7};
    struct net_send snd = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &snd), 0);
    expect_nothing();
    for (int i = 0; i < 100; i++) { /* far beyond the 15-probe bound: over 1.5 hours */
        struct out p = run_to_next_frame();
        cr_assert_eq(p.flags, F_ACK, "probe %d: flags %#x", i, p.flags);
        cr_assert_eq(p.seq, iss, "one below snd_una");
        cr_assert_eq(p.plen, 0);
        inject(f, mk_tcp(f, 40026, 1001, iss + 1, F_ACK, 0, NULL, 0)); /* still 0 */
        expect_nothing();
    }
    cr_assert_eq(stats().tcp_zero_window_probes, 100);
    cr_assert_eq(stats().tcp_persist_timeouts, 0);
    cr_assert_eq(stats().tcp_rst_sent, 0);
    cr_assert_eq(ev.closed, 0);
    inject(f, mk_tcp(f, 40026, 1001, iss + 1, F_ACK, 100, NULL, 0));
    struct out d = expect_tcp(F_ACK | F_PSH);
    cr_assert_eq(memcmp(d.payload, "waiting", 7), 0);
    inject(f, mk_tcp(f, 40026, 1001, iss + 8, F_ACK, 100, NULL, 0));
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, 0);
}

Test(ustack_script, zero_window_probes_unanswered_give_up) {
    uint8_t f[2048];
    uint32_t iss = handshake(40027, 1000, 0);
    struct iovec iov = {"nobody home", 11};
    struct net_send snd = {.iov = &iov, .iov_count = 1, .done = on_done};
    cr_assert_eq(net_send(S.nb, ev.conn, &snd), 0);
    uint64_t sent = now_us;
    /* 10 probes unanswered, backing off from 1 s (the RTO) to the 60 s cap */
    uint64_t prev = sent;
    for (int i = 0; i < 10; i++) {
        struct out p = run_to_next_frame();
        cr_assert_eq(p.flags, F_ACK);
        cr_assert_eq(p.seq, iss);
        uint64_t gap = i == 0 ? SEC : (SEC << i) < 60 * SEC ? SEC << i : 60 * SEC;
        cr_assert_eq(now_us - prev, gap, "probe %d after %llu us", i,
                     (unsigned long long)(now_us - prev));
        prev = now_us;
    }
    /* one answer, window still 0: the count starts again */
    inject(f, mk_tcp(f, 40027, 1001, iss + 1, F_ACK, 0, NULL, 0));
    expect_nothing();
    for (int i = 0; i < 15; i++) {
        struct out p = run_to_next_frame();
        cr_assert_eq(p.flags, F_ACK, "probe %d after the answer: flags %#x", i, p.flags);
        cr_assert_eq(now_us - prev, 60 * SEC, "the backoff stays capped");
        prev = now_us;
    }
    cr_assert_eq(ev.closed, 0);
    cr_assert_eq(stats().tcp_persist_timeouts, 0);
    /* the 15th in a row went unanswered too: reset at the next expiry */
    struct out r = run_to_next_frame();
    cr_assert_eq(now_us - prev, 60 * SEC);
    cr_assert_eq(r.flags, F_RST | F_ACK);
    cr_assert_eq(r.seq, iss + 1);
    cr_assert_eq(r.ack, 1001);
    cr_assert_eq(stats().tcp_zero_window_probes, 25);
    cr_assert_eq(stats().tcp_persist_timeouts, 1);
    cr_assert_eq(ev.done_calls, 1);
    cr_assert_eq(ev.done_status, -ETIMEDOUT);
    cr_assert_eq(ev.closed, 1);
    cr_assert_eq(ev.close_reason, -ETIMEDOUT);
    cr_assert_eq(net_conn_count(S.nb), 0);
}
