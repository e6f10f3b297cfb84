/* test_ustack_garbage.c - robustness: a seeded stream of mutated frames (valid TCP, ARP
 * and ICMP frames with random bytes changed, truncated or extended; half of them with
 * their checksums recomputed so the damage reaches the TCP state machine) is fed to a
 * stack that has a listener and an established connection, with time moving on. The
 * stack must neither crash nor trip ASan/UBSan (run this under the sanitizer build),
 * must keep every bound, and must give every frame back to the pool. The established
 * connection's counters are only checked for sanity: garbage may legitimately reset it. */
#include <stdlib.h>

#include "tests/unit/net/frame_csum_fix.h"
#include "tests/unit/net/ustack_pair.h"

static struct side S;
static uint64_t now_us = 1000000;
static int closed_count;

static int on_accepted(void *ctx, struct net_conn *c) {
    (void)ctx, (void)c;
    return 0;
}
static void on_received(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx, (void)c, (void)d, (void)n;
}
static void on_closed(void *ctx, struct net_conn *c, int reason) {
    (void)ctx, (void)c, (void)reason;
    closed_count++;
}

static size_t base_tcp(uint8_t *f, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags,
                       size_t plen) {
    memset(f, 0, 14 + 20 + 28 + plen);
    memcpy(f, MAC_SERVER, 6);
    memcpy(f + 6, MAC_CLIENT, 6);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    size_t total = 20 + 28 + plen;
    ip[2] = (uint8_t)(total >> 8), ip[3] = (uint8_t)total;
    ip[8] = 64, ip[9] = 6;
    ip[12] = 10, ip[15] = 1, ip[16] = 10, ip[19] = 2;
    uint8_t *t = ip + 20;
    t[0] = (uint8_t)(sport >> 8), t[1] = (uint8_t)sport, t[2] = 0x23, t[3] = 0x84; /* 9092 */
    for (int i = 0; i < 4; i++) t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
    for (int i = 0; i < 4; i++) t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
    t[12] = 7 << 4;
    t[13] = flags;
    t[14] = 0xff, t[15] = 0xff;
    uint8_t opts[8] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7};
    memcpy(t + 20, opts, 8);
    for (size_t i = 0; i < plen; i++) t[28 + i] = (uint8_t)i;
    frame_fix_checksums(f, 14 + total);
    return 14 + total;
}

static void run_seed(unsigned seed) {
    struct ustack_config cfg = {.isn_seed = 7, .max_conns = 64, .syn_backlog = 16,
                                .rcv_max_pkts = 32};
    make_stack(&S, IP_SERVER, MAC_SERVER, 4096, 4, &cfg);
    struct net_events ev = {on_accepted, on_received, on_closed};
    attach_backend(&S, &ev, NULL);
    cr_assert_eq(net_listen(S.nb, "0.0.0.0", 9092), 9092);
    srand(seed);
    static uint8_t f[2048], out[4096];
    uint64_t frames = 0;
    /* what the stack told each peer port in its last SYN-ACK/ACK: plausible seq/ack */
    uint32_t their_seq[8] = {0}, their_ack[8] = {0};
    for (int round = 0; round < 200000; round++) {
        size_t n;
        int kind = rand() % 8;
        uint16_t sport = (uint16_t)(40000 + rand() % 8); /* few ports: tuples recur */
        uint32_t seq = (uint32_t)rand() * 2654435761u, ack = (uint32_t)rand() * 40503u;
        if (rand() % 4 != 0) { /* mostly in sequence, so connections open and carry data */
            seq = their_ack[sport - 40000] + (uint32_t)(rand() % 3 == 0 ? rand() % 3000 : 0);
            ack = their_seq[sport - 40000];
        }
        if (kind == 0) n = base_tcp(f, sport, seq, 0, 0x02, 0);                /* SYN */
        else if (kind == 1) n = base_tcp(f, sport, seq, ack, 0x10, (size_t)(rand() % 1400));
        else if (kind == 2) n = base_tcp(f, sport, seq, ack, 0x11, 0);         /* FIN */
        else if (kind == 3) n = base_tcp(f, sport, seq, ack, 0x04, 0);         /* RST */
        else if (kind == 4) n = base_tcp(f, sport, seq, ack, (uint8_t)rand(), (size_t)(rand() % 64));
        else if (kind == 5) { /* ARP */
            n = 42;
            memset(f, 0xff, 6);
            memcpy(f + 6, MAC_CLIENT, 6);
            uint8_t arp[30] = {0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, (uint8_t)(1 + rand() % 2)};
            memcpy(f + 12, arp, 10);
            memcpy(f + 22, MAC_CLIENT, 6);
            f[28] = 10, f[29] = 0, f[30] = 0, f[31] = (uint8_t)rand();
            memset(f + 32, 0, 6);
            f[38] = 10, f[39] = 0, f[40] = 0, f[41] = (uint8_t)(rand() % 3);
        } else { /* ICMP echo */
            n = base_tcp(f, sport, 0, 0, 0, (size_t)(rand() % 100));
            f[14 + 9] = 1;
            f[34] = 8, f[35] = 0;
            frame_fix_checksums(f, n);
        }
        int mutations = rand() % 4;
        for (int m = 0; m < mutations; m++) f[rand() % (n < 80 ? n : 80)] = (uint8_t)rand();
        if (rand() % 8 == 0) n = (size_t)rand() % (n + 1);          /* truncated */
        if (rand() % 16 == 0 && n < 1500) n += (size_t)rand() % 40;  /* trailing junk */
        if (rand() % 2) frame_fix_checksums(f, n);
        struct ustack_pkt *p = ustack_wire_rx_frame(&S.port, f, n);
        cr_assert_not_null(p, "frame pool exhausted: the stack holds frames without bound");
        ustack_input(S.stack, &p, 1, now_us);
        frames++;
        now_us += (uint64_t)(rand() % 2000);
        if (round % 64 == 0) ustack_poll(S.stack, now_us);
        int len;
        while ((len = ustack_wire_take(&S.port, out, sizeof(out))) > 0) {
            if (len < 54 || out[12] != 0x08 || out[23] != 6) continue;
            const uint8_t *t = out + 34;
            uint16_t dport = (uint16_t)(t[2] << 8 | t[3]);
            if (dport < 40000 || dport >= 40008) continue;
            uint32_t tseq = (uint32_t)t[4] << 24 | t[5] << 16 | t[6] << 8 | t[7];
            uint32_t tack = (uint32_t)t[8] << 24 | t[9] << 16 | t[10] << 8 | t[11];
            their_seq[dport - 40000] = tseq + ((t[13] & 0x02) ? 1 : 0);
            if (t[13] & 0x10) their_ack[dport - 40000] = tack;
        }
        cr_assert_leq(net_conn_count(S.nb), 64);
        cr_assert_leq(S.port.in_use, 64u * 32u + 64u, "held frames within max_conns x rcv_max_pkts");
    }
    struct ustack_stats st;
    ustack_stats(S.stack, &st);
    cr_log_info("frames=%lu malformed eth/ip/tcp=%lu/%lu/%lu bad csum ip/tcp=%lu/%lu rst_sent=%lu "
                "opened=%lu closed=%lu backlog_full=%lu out_of_window=%lu",
                frames, st.rx_malformed_eth, st.rx_malformed_ip, st.rx_malformed_tcp,
                st.rx_bad_ip_csum, st.rx_bad_tcp_csum, st.tcp_rst_sent, st.tcp_conns_opened,
                st.tcp_conns_closed, st.tcp_backlog_full, st.tcp_out_of_window);
    cr_assert_eq(st.rx_frames, frames);
    cr_assert_gt(st.rx_malformed_tcp + st.rx_malformed_ip, 0);
    cr_assert_gt(st.rx_bad_tcp_csum, 0);
    cr_assert_gt(st.tcp_conns_opened, 0, "some garbage still made it to ESTABLISHED");
    cr_assert_gt(st.tcp_rx_bytes, 0, "and carried data");
    while (ustack_wire_take(&S.port, out, sizeof(out)) > 0) {
    }
    net_destroy(S.nb);
    cr_assert_eq(S.port.in_use, 0, "every frame back in the pool after destroy");
    ustack_wire_port_fini(&S.port);
    memset(&S, 0, sizeof(S));
}

Test(ustack_garbage, mutated_frames_never_crash_or_leak) {
    for (unsigned seed = 1; seed <= 4; seed++) run_seed(seed * 7919u);
}
