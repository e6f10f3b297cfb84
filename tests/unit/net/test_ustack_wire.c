/* test_ustack_wire.c - two userspace stacks joined by the in-memory wire move a byte
 * stream through the net_backend interface (client connect -> server accept), checked
 * byte for byte: clean wire with zero-copy TX, a lossy reordering wire, and a receiver
 * that pauses (window closes to zero, persist probes) and resumes. Afterwards both
 * sides have closed cleanly and every frame is back in its pool. */
#include "tests/unit/net/ustack_pair.h"

#define SEND_BYTES (256u * 1024u)
#define SENDS_IN_FLIGHT 2

static uint64_t now_us = 1000;

static uint8_t pattern(uint64_t off) { return (uint8_t)(off ^ (off >> 8) ^ (off >> 19) ^ 0x5a); }

struct xfer {
    struct side cli, srv;
    struct ustack_wire wire;
    uint64_t total_bytes;
    /* client */
    struct net_conn *cconn;
    bool connected, cli_closed;
    int connect_status;
    uint64_t queued, acked;
    struct net_send sends[SENDS_IN_FLIGHT];
    struct iovec iov[SENDS_IN_FLIGHT][4];
    uint8_t *bufs[SENDS_IN_FLIGHT];
    bool busy[SENDS_IN_FLIGHT];
    /* server */
    struct net_conn *sconn;
    uint64_t received, mismatches, since_pause;
    bool srv_closed, paused;
    int srv_close_reason;
    uint64_t pause_every, pause_us, resume_at_us, pauses;
};

static void client_send_more(struct xfer *x);

static void send_done(struct net_send *s, int status) {
    struct xfer *x = s->user;
    cr_assert_eq(status, 0, "send failed %d", status);
    x->busy[s - x->sends] = false;
    uint64_t n = 0;
    for (int i = 0; i < s->iov_count; i++) n += s->iov[i].iov_len;
    x->acked += n;
    client_send_more(x);
}

static void client_send_more(struct xfer *x) {
    for (int k = 0; k < SENDS_IN_FLIGHT && x->queued < x->total_bytes; k++) {
        if (x->busy[k]) continue;
        uint64_t n = x->total_bytes - x->queued;
        if (n > SEND_BYTES) n = SEND_BYTES;
        for (uint64_t i = 0; i < n; i++) x->bufs[k][i] = pattern(x->queued + i);
        /* uneven pieces, one of them odd-sized: checksums across segment boundaries */
        size_t cut[4] = {n / 7 + 1, n / 3, n / 5 + 3, 0};
        size_t used = 0;
        int cnt = 0;
        for (int i = 0; i < 3 && used < n; i++) {
            size_t m = cut[i] < n - used ? cut[i] : n - used;
            x->iov[k][cnt++] = (struct iovec){x->bufs[k] + used, m};
            used += m;
        }
        if (used < n) x->iov[k][cnt++] = (struct iovec){x->bufs[k] + used, n - used};
        x->sends[k] = (struct net_send){.iov = x->iov[k], .iov_count = cnt, .done = send_done,
                                        .user = x};
        x->busy[k] = true;
        x->queued += n;
        cr_assert_eq(net_send(x->cli.nb, x->cconn, &x->sends[k]), 0);
    }
    if (x->acked == x->total_bytes && !x->cli_closed && x->cconn) {
        struct net_conn *c = x->cconn;
        x->cconn = NULL;
        net_close(x->cli.nb, c);
    }
}

static void on_connected(struct net_conn *c, int status) {
    struct xfer *x = c->user;
    x->connected = status == 0;
    x->connect_status = status;
    if (status == 0) client_send_more(x);
}

static int cli_accepted(void *ctx, struct net_conn *c) {
    (void)ctx;
    (void)c;
    return -1; /* the client listens nowhere */
}
static void cli_received(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    (void)ctx, (void)c, (void)d, (void)n;
    cr_assert_fail("client received bytes");
}
static void cli_closed(void *ctx, struct net_conn *c, int reason) {
    struct xfer *x = ctx;
    (void)c;
    cr_assert_eq(reason, 0);
    x->cli_closed = true;
}

static int srv_accepted(void *ctx, struct net_conn *c) {
    struct xfer *x = ctx;
    cr_assert_null(x->sconn);
    x->sconn = c;
    c->user = x;
    return 0;
}
static void srv_received(void *ctx, struct net_conn *c, const uint8_t *d, size_t n) {
    struct xfer *x = ctx;
    cr_assert_eq(c, x->sconn);
    for (size_t i = 0; i < n; i++)
        if (d[i] != pattern(x->received + i)) x->mismatches++;
    x->received += n;
    x->since_pause += n;
    if (x->pause_every && x->since_pause >= x->pause_every && !x->paused) {
        x->since_pause = 0;
        x->paused = true;
        x->pauses++;
        x->resume_at_us = now_us + x->pause_us; /* the consumer stalls */
        net_recv_pause(x->srv.nb, c);
    }
}
static void srv_closed(void *ctx, struct net_conn *c, int reason) {
    struct xfer *x = ctx;
    (void)c;
    x->srv_closed = true;
    x->srv_close_reason = reason;
}

static void run_transfer(uint64_t total, uint16_t max_segs, uint32_t loss_ppm,
                         uint32_t reorder_ppm, uint64_t pause_every, uint64_t pause_us) {
    static struct xfer xs;
    struct xfer *x = &xs;
    memset(x, 0, sizeof(*x));
    x->total_bytes = total;
    x->pause_every = pause_every;
    x->pause_us = pause_us;
    for (int k = 0; k < SENDS_IN_FLIGHT; k++) x->bufs[k] = malloc(SEND_BYTES);
    struct ustack_config cfg = {.isn_seed = 0xfffff000u}; /* sequence numbers wrap early */
    make_stack(&x->cli, IP_CLIENT, MAC_CLIENT, 4096, max_segs, &cfg);
    make_stack(&x->srv, IP_SERVER, MAC_SERVER, 4096, max_segs, &cfg);
    struct net_events cev = {cli_accepted, cli_received, cli_closed};
    struct net_events sev = {srv_accepted, srv_received, srv_closed};
    attach_backend(&x->cli, &cev, x);
    attach_backend(&x->srv, &sev, x);
    ustack_wire_join(&x->wire, &x->cli.port, &x->srv.port, 42, loss_ppm, reorder_ppm);
    cr_assert_eq(net_listen(x->srv.nb, "0.0.0.0", 9092), 9092);
    int err = 0;
    x->cconn = net_connect(x->cli.nb, "10.0.0.2", 9092, x, on_connected, &err);
    cr_assert_not_null(x->cconn, "connect %d", err);

    uint64_t rounds = 0;
    for (;;) {
        cr_assert_lt(++rounds, 50000000ull, "no progress");
        if (x->paused && now_us >= x->resume_at_us) {
            x->paused = false;
            net_recv_resume(x->srv.nb, x->sconn);
        }
        uint32_t moved = ustack_wire_pump(&x->wire, now_us);
        ustack_poll(x->cli.stack, now_us);
        ustack_poll(x->srv.stack, now_us);
        if (moved) {
            now_us += 20; /* one wire hop */
            continue;
        }
        uint64_t next = ustack_next_timer_us(x->cli.stack);
        uint64_t n2 = ustack_next_timer_us(x->srv.stack);
        if (n2 < next) next = n2;
        if (x->paused && x->resume_at_us < next) next = x->resume_at_us;
        if (next == UINT64_MAX && x->cli_closed && x->srv_closed) break;
        cr_assert_neq(next, UINT64_MAX, "stalled: received %lu of %lu", x->received, total);
        now_us = next > now_us ? next : now_us + 1;
    }
    cr_assert(x->connected);
    cr_assert_eq(net_conn_count(x->cli.nb), 0);
    cr_assert_eq(x->cli.port.in_use, 0, "client frames leaked: %u", x->cli.port.in_use);
    cr_assert_eq(x->received, total);
    cr_assert_eq(x->mismatches, 0);
    cr_assert_eq(x->srv_close_reason, 0);
    cr_assert_eq(net_conn_count(x->srv.nb), 0);
    cr_assert_eq(x->srv.port.in_use, 0, "server frames leaked: %u", x->srv.port.in_use);
    if (pause_every) cr_assert_gt(x->pauses, 0);
    struct ustack_stats cs, ss;
    ustack_stats(x->cli.stack, &cs);
    ustack_stats(x->srv.stack, &ss);
    cr_log_info("total=%lu lost=%lu reordered=%lu rto=%lu fast=%lu loss_probes=%lu "
                "zwin_probes=%lu ooo=%lu delayed_acks=%lu pauses=%lu",
                total, x->wire.lost, x->wire.reordered, cs.tcp_retransmits_rto,
                cs.tcp_retransmits_fast, cs.tcp_loss_probes, cs.tcp_zero_window_probes,
                ss.tcp_ooo_queued, ss.tcp_delayed_acks, x->pauses);
    /* a pause longer than the persist timer: the sender probes the zero window */
    if (pause_us > 200000) cr_assert_gt(cs.tcp_zero_window_probes, 0);
    if (loss_ppm)
        cr_assert_gt(cs.tcp_retransmits_rto + cs.tcp_retransmits_fast + cs.tcp_loss_probes, 0);
    cr_assert_eq(ss.rx_bad_tcp_csum, 0);
    cr_assert_eq(cs.rx_bad_tcp_csum, 0);
    destroy_side(&x->cli);
    destroy_side(&x->srv);
    for (int k = 0; k < SENDS_IN_FLIGHT; k++) free(x->bufs[k]);
}

Test(ustack_wire, clean_64MiB_zero_copy) { run_transfer(64ull << 20, 4, 0, 0, 0, 0); }

Test(ustack_wire, clean_16MiB_copy) { run_transfer(16ull << 20, 0, 0, 0, 0, 0); }

Test(ustack_wire, lossy_reordering_8MiB) { run_transfer(8ull << 20, 4, 10000, 20000, 0, 0); }

Test(ustack_wire, receiver_pauses_4MiB) { run_transfer(4ull << 20, 4, 0, 0, 512u * 1024u, 5000); }

Test(ustack_wire, lossy_and_pausing_4MiB) {
    run_transfer(4ull << 20, 0, 20000, 50000, 300u * 1024u, 5000);
}

Test(ustack_wire, long_pauses_probe_zero_window_2MiB) {
    run_transfer(2ull << 20, 4, 0, 0, 700u * 1024u, 900000);
}
