/* ustack_tcp_out.c - TCP segments out: building, the send loop, retransmission, timers.
 *
 * Options: MSS, window scale and SACK-permitted on SYNs; as a receiver we send SACK
 * blocks (RFC 2018) for the out-of-order data we hold, so a SACK-capable sender (Linux)
 * repairs several holes per round trip. As a sender we ignore SACK blocks we receive
 * (allowed: they are advisory) and recover with NewReno and the loss probe.
 *
 * Building: a frame from io->tx_alloc gets Ethernet + IPv4 + TCP headers written in its
 * linear buffer; the payload, taken from the send records at a sequence number, is either
 * attached as external segments (zero copy: the user's iovec bytes, referenced until the
 * driver releases them) or copied after the headers. Zero copy is used when the port has
 * tx_attach and enough segments for the payload's pieces and the payload is at least
 * USTACK_ZC_MIN_BYTES; otherwise copying is cheaper. The TCP checksum covers the pieces
 * where they lie, or is left to the NIC (pseudo-header sum in the field) when offloaded.
 *
 * Send loop (tcp_output): segments of at most MSS while the usable window -- the smaller
 * of the peer's window, the congestion window and cfg.snd_buf_bytes, minus what is in
 * flight -- allows; no Nagle (the Kafka layer sends whole responses, like TCP_NODELAY on
 * the kernel backend). Our FIN follows the last byte once close queued it.
 *
 * Retransmission (RFC 6298): one RTT measurement at a time (Karn: none across a
 * retransmission), RTO = SRTT + 4 RTTVAR clamped to [200 ms, 60 s], doubled on each
 * expiry; an expiry goes back to snd_una with cwnd = 1 MSS (go-back-N as the window
 * reopens). Congestion control is NewReno (RFC 6582), in tcp_in's ACK processing.
 * Zero-window probes (persist timer) send an empty segment one below snd_una, as Linux
 * does: the peer answers with an ACK that carries its current window. The interval backs
 * off from max(RTO, 200 ms) to 60 s. A peer that answers (any segment, window 0 or not) is
 * probed forever; after TCP_PERSIST_MAX_PROBES probes in a row without a word from it the
 * connection is given up as on an RTO give-up (RST, -ETIMEDOUT), as Linux's tcp_probe_timer
 * does after tcp_retries2.
 *
 * Keepalive (cfg.keepalive_*, off unless keepalive_idle_ms is set): an ESTABLISHED
 * connection with nothing in flight and nothing heard for the idle time gets an empty ACK
 * one below snd_nxt (RFC 1122 4.2.3.6, as Linux): the peer answers with an ACK. Received
 * segments only stamp last_rx_us and clear probes_out (tcp_input); the one timer, ka_at_us,
 * is checked lazily: when it fires it is moved to last_rx_us + idle if something arrived,
 * else a probe goes and it is set to the interval; `probes` unanswered probes reset the
 * connection. While data is in flight or waits for the window the RTO or persist timer
 * judges the peer and keepalive only looks again an idle time later.
 *
 * Timers are deadlines in the tcb (0 = off), scanned by ustack_poll when the earliest
 * deadline the stack knows of is due. */
#include <assert.h>

#include "dataplane/net/ustack_internal.h"

#define USTACK_ZC_MIN_BYTES 512u

struct payload {
    uint32_t seq, len;
};

static void set_timer(struct tcb *c, uint64_t *field, uint64_t at_us) {
    *field = at_us;
    ustack_timer_hint(c->stack, at_us);
}

void tcp_set_state(struct tcb *c, enum tcp_state st) {
    struct ustack *s = c->stack;
    if (c->state == TCP_SYN_RCVD && c->server && s->listeners[c->listener].half_open)
        s->listeners[c->listener].half_open--;
    if (st == TCP_ESTABLISHED) {
        s->stats.tcp_conns_opened++;
        c->last_rx_us = s->now_us; /* the handshake's last segment just arrived */
        if (s->cfg.keepalive_idle_ms)
            set_timer(c, &c->ka_at_us, s->now_us + (uint64_t)s->cfg.keepalive_idle_ms * 1000u);
    }
    c->state = st;
}

/* The window to advertise, never moving the right edge left (RFC 7323 2.4). */
static uint16_t advertise(struct tcb *c, bool syn) {
    uint32_t wnd = tcb_rcv_window(c);
    uint32_t right = c->rcv_nxt + wnd;
    if (seq_lt(right, c->rcv_adv)) right = c->rcv_adv;
    c->rcv_adv = right;
    uint32_t adv = right - c->rcv_nxt;
    if (syn) return (uint16_t)(adv > 65535 ? 65535 : adv);
    adv >>= c->rcv_wscale;
    return (uint16_t)(adv > 65535 ? 65535 : adv);
}

/* Locate the send record and iovec position of sequence number seq. */
static bool locate(struct tcb *c, uint32_t seq, uint32_t *rec_k, int *iov_i, size_t *iov_off) {
    for (uint32_t k = 0; k < c->txrec_count; k++) {
        struct txrec *r = &c->txrecs[(c->txrec_head + k) % USTACK_TXREC_PER_CONN];
        if (!(seq_ge(seq, r->start_seq) && seq_lt(seq, r->start_seq + r->len))) continue;
        size_t off = seq - r->start_seq;
        int i = 0;
        while (off >= r->send->iov[i].iov_len) {
            off -= r->send->iov[i].iov_len;
            i++;
            assert(i < r->send->iov_count);
        }
        *rec_k = k;
        *iov_i = i;
        *iov_off = off;
        return true;
    }
    return false;
}

/* Walk the payload's pieces; with attach, reference each in pkt; else copy to dst. The
 * checksum accumulates over the bytes either way. Returns pieces, or -1 if an attach was
 * refused. */
static int payload_walk(struct tcb *c, struct payload pl, struct ustack_pkt *pkt, uint8_t *dst,
                        struct csum *cs, bool attach, bool count_only) {
    struct ustack *s = c->stack;
    uint32_t k;
    int i;
    size_t off;
    bool found = locate(c, pl.seq, &k, &i, &off);
    assert(found);
    (void)found;
    uint32_t left = pl.len;
    int pieces = 0;
    while (left) {
        struct txrec *r = &c->txrecs[(c->txrec_head + k) % USTACK_TXREC_PER_CONN];
        const struct iovec *v = &r->send->iov[i];
        size_t n = v->iov_len - off;
        if (n > left) n = left;
        const uint8_t *bytes = (const uint8_t *)v->iov_base + off;
        if (n) {
            pieces++;
            if (!count_only) {
                if (cs) csum_add(cs, bytes, n);
                if (attach) {
                    if (s->io->tx_attach(s->io_ctx, pkt, bytes, (uint32_t)n, txrec_release, r))
                        return -1;
                    r->refs++;
                    c->tx_refs++;
                } else {
                    memcpy(dst, bytes, n);
                    dst += n;
                }
            }
        }
        left -= (uint32_t)n;
        off = 0;
        if (++i == r->send->iov_count) {
            i = 0;
            k++;
            assert(left == 0 || k < c->txrec_count);
        }
    }
    return pieces;
}

/* Options of one segment: MSS, window scale and SACK-permitted on SYNs, SACK blocks on
 * ACKs while out-of-order data is held (RFC 2018: the block holding the most recent
 * out-of-order segment first). At most 3 blocks fit beside nothing else. */
struct tcp_opts {
    uint16_t mss;        /* 0: absent */
    int wscale;          /* -1: absent */
    bool sack_permitted;
    uint8_t sack_count;
    uint32_t sack[3][2]; /* [left, right) */
};

/* Write the TCP header at h; returns its length. */
static uint32_t tcp_header(uint8_t *h, uint16_t sport, uint16_t dport, uint32_t seq,
                           uint32_t ack, uint8_t flags, uint16_t wnd,
                           const struct tcp_opts *opt) {
    uint32_t hl = 20;
    uint8_t *o = h + 20;
    if (opt && opt->mss) {
        o[0] = 2;
        o[1] = 4;
        wr16(o + 2, opt->mss);
        o += 4;
        hl += 4;
    }
    if (opt && opt->wscale >= 0) {
        o[0] = 1; /* NOP */
        o[1] = 3;
        o[2] = 3;
        o[3] = (uint8_t)opt->wscale;
        o += 4;
        hl += 4;
    }
    if (opt && opt->sack_permitted) {
        o[0] = 1;
        o[1] = 1;
        o[2] = 4;
        o[3] = 2;
        o += 4;
        hl += 4;
    }
    if (opt && opt->sack_count) {
        o[0] = 1;
        o[1] = 1;
        o[2] = 5;
        o[3] = (uint8_t)(2 + 8 * opt->sack_count);
        o += 4;
        for (uint8_t i = 0; i < opt->sack_count; i++) {
            wr32(o, opt->sack[i][0]);
            wr32(o + 4, opt->sack[i][1]);
            o += 8;
        }
        hl += 4 + 8u * opt->sack_count;
    }
    assert(hl <= USTACK_TCP_HDR_MAX_BYTES);
    wr16(h, sport);
    wr16(h + 2, dport);
    wr32(h + 4, seq);
    wr32(h + 8, ack);
    h[12] = (uint8_t)((hl / 4) << 4);
    h[13] = flags;
    wr16(h + 14, wnd);
    wr16(h + 16, 0);
    wr16(h + 18, 0);
    return hl;
}

/* The SACK blocks describing the out-of-order data held. */
static void sack_blocks(const struct tcb *c, struct tcp_opts *opt) {
    uint32_t ranges[8][2];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->rxq_count; i++) {
        const struct rxseg *e = &c->rxq[i];
        if (!seq_gt(e->seq, c->rcv_nxt)) continue;
        if (n && seq_le(e->seq, ranges[n - 1][1])) {
            if (seq_gt(e->seq + e->len, ranges[n - 1][1])) ranges[n - 1][1] = e->seq + e->len;
        } else if (n < 8) {
            ranges[n][0] = e->seq;
            ranges[n][1] = e->seq + e->len;
            n++;
        } else {
            break;
        }
    }
    uint32_t first = n;
    for (uint32_t i = 0; i < n; i++)
        if (seq_ge(c->sack_recent_seq, ranges[i][0]) && seq_lt(c->sack_recent_seq, ranges[i][1]))
            first = i;
    if (first < n) {
        opt->sack[0][0] = ranges[first][0];
        opt->sack[0][1] = ranges[first][1];
        opt->sack_count = 1;
    }
    for (uint32_t i = 0; i < n && opt->sack_count < 3; i++) {
        if (i == first) continue;
        opt->sack[opt->sack_count][0] = ranges[i][0];
        opt->sack[opt->sack_count][1] = ranges[i][1];
        opt->sack_count++;
    }
}

static void finish_csum(struct ustack *s, struct ustack_pkt *pkt, uint8_t *th, uint32_t hl,
                        uint32_t dst_ip, uint32_t payload_len, struct csum *payload_cs) {
    uint16_t l4_len = (uint16_t)(hl + payload_len);
    uint32_t pseudo = csum_pseudo(s->cfg.ip, dst_ip, IPPROTO_TCP_, l4_len);
    pkt->l4_bytes = (uint16_t)hl;
    if (s->port.tx_tcp_csum_offload) {
        wr16(th + 16, (uint16_t)pseudo);
        pkt->flags |= USTACK_PKT_TX_TCP_CSUM;
        return;
    }
    struct csum c = {.acc = pseudo};
    csum_add(&c, th, hl);
    if (payload_cs) {
        /* the payload starts on an even offset (hl is a multiple of 4) */
        c.acc += payload_cs->acc;
    }
    wr16(th + 16, csum_fold(&c));
}

/* Build and send one segment of the connection. */
static bool tcb_emit(struct tcb *c, uint32_t seq, uint32_t len, uint8_t flags) {
    struct ustack *s = c->stack;
    struct ustack_pkt *pkt = s->io->tx_alloc(s->io_ctx);
    if (!pkt) {
        s->stats.tx_alloc_failed++;
        return false;
    }
    assert(pkt->room >= USTACK_TX_HEADROOM_BYTES + s->port.mtu);
    pkt->flags = 0;
    uint8_t *th = pkt->data + 34;
    bool syn = flags & TCP_SYN;
    struct tcp_opts opt = {.wscale = -1};
    if (syn) {
        bool offer = !(flags & TCP_ACK); /* our SYN offers; a SYN-ACK answers the offer */
        opt.mss = s->mss_local;
        if (offer || c->wscale_ok) opt.wscale = c->rcv_wscale;
        opt.sack_permitted = offer || c->sack_ok;
    } else if ((flags & TCP_ACK) && c->sack_ok && c->rxq_count) {
        sack_blocks(c, &opt);
    }
    uint32_t ack = (flags & TCP_ACK) ? c->rcv_nxt : 0;
    uint32_t hl = tcp_header(th, c->local_port, c->remote_port, seq, ack, flags,
                             advertise(c, syn), &opt);
    struct csum pcs = {0};
    if (len) {
        struct payload pl = {seq, len};
        int pieces = payload_walk(c, pl, NULL, NULL, NULL, false, true);
        bool zc = s->io->tx_attach && len >= USTACK_ZC_MIN_BYTES &&
                  pieces <= (int)s->port.tx_max_segments;
        if (zc && payload_walk(c, pl, pkt, NULL, &pcs, true, false) < 0) {
            s->io->pkt_free(s->io_ctx, pkt); /* releases what was attached */
            pkt = s->io->tx_alloc(s->io_ctx);
            if (!pkt) {
                s->stats.tx_alloc_failed++;
                return false;
            }
            pkt->flags = 0;
            th = pkt->data + 34; /* the old frame is gone: rebuild the header */
            hl = tcp_header(th, c->local_port, c->remote_port, seq, ack, flags,
                            advertise(c, syn), &opt);
            zc = false;
            pcs = (struct csum){0};
        }
        if (!zc) payload_walk(c, pl, pkt, th + hl, &pcs, false, false);
        pkt->len = 34 + hl + (zc ? 0 : len);
    } else {
        pkt->len = 34 + hl;
    }
    ip_build_header(s, pkt, pkt->data + 14, c->remote_ip, IPPROTO_TCP_, hl + len);
    finish_csum(s, pkt, th, hl, c->remote_ip, len, len ? &pcs : NULL);
    if (flags & TCP_ACK) {
        c->dack_at_us = 0;
        c->unacked_segs = 0;
        c->ack_now = false;
    }
    if (flags & TCP_RST) s->stats.tcp_rst_sent++;
    eth_output_ipv4(s, pkt, c->remote_ip, c->remote_mac_known ? c->remote_mac : NULL);
    return true;
}

void tcp_arm_rto(struct tcb *c) {
    c->probe_at_us = 0;
    if (c->snd_max == c->snd_una) {
        c->rto_at_us = 0;
        return;
    }
    uint64_t now = c->stack->now_us;
    set_timer(c, &c->rto_at_us, now + c->rto_us);
    /* Loss probe (after RFC 8985's tail loss probe): a request/response stream often has
     * too few segments after a loss for three duplicate ACKs, and waiting a whole RTO
     * (>= 200 ms) is long. Without SACK the hole is always at snd_una, so the probe
     * resends that segment after 2 SRTT (plus a delayed-ACK allowance for one segment
     * in flight), once per ACK advance, without touching cwnd. */
    if (c->srtt_us == 0 || c->in_recovery || c->state < TCP_ESTABLISHED) return;
    uint64_t pto = 2ull * c->srtt_us;
    if (c->snd_max - c->snd_una <= c->mss) pto += TCP_PROBE_DACK_US;
    if (pto < TCP_PROBE_MIN_US) pto = TCP_PROBE_MIN_US;
    if (pto < c->rto_us) set_timer(c, &c->probe_at_us, now + pto);
}

void tcp_send_ack(struct tcb *c) { tcb_emit(c, c->snd_nxt, 0, TCP_ACK); }

void tcp_send_syn(struct tcb *c, bool with_ack) {
    tcb_emit(c, c->iss, 0, (uint8_t)(TCP_SYN | (with_ack ? TCP_ACK : 0)));
    c->snd_nxt = c->iss + 1;
    if (seq_lt(c->snd_max, c->snd_nxt)) c->snd_max = c->snd_nxt;
    if (!c->rto_at_us) tcp_arm_rto(c);
}

void tcp_send_rst(struct tcb *c) { tcb_emit(c, c->snd_max, 0, TCP_RST | TCP_ACK); }

void tcp_send_rst_for(struct ustack *s, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
                      uint16_t dport, uint32_t seq, uint32_t ack, bool with_ack,
                      const uint8_t *mac) {
    (void)src_ip;
    struct ustack_pkt *pkt = s->io->tx_alloc(s->io_ctx);
    if (!pkt) {
        s->stats.tx_alloc_failed++;
        return;
    }
    pkt->flags = 0;
    uint8_t *th = pkt->data + 34;
    uint32_t hl = tcp_header(th, sport, dport, seq, with_ack ? ack : 0,
                             (uint8_t)(TCP_RST | (with_ack ? TCP_ACK : 0)), 0, NULL);
    pkt->len = 34 + hl;
    ip_build_header(s, pkt, pkt->data + 14, dst_ip, IPPROTO_TCP_, hl);
    finish_csum(s, pkt, th, hl, dst_ip, 0, NULL);
    s->stats.tcp_rst_sent++;
    eth_output_ipv4(s, pkt, dst_ip, mac);
}

static uint32_t usable_window(const struct tcb *c) {
    uint32_t wnd = c->snd_wnd < c->cwnd ? c->snd_wnd : c->cwnd;
    if (wnd > c->stack->cfg.snd_buf_bytes) wnd = c->stack->cfg.snd_buf_bytes;
    return wnd;
}

/* The driver had no TX frame: nothing may be in flight to bring an ACK that would call
 * tcp_output again, so a timer does (the persist timer: with the window open it only
 * runs the output). */
static void output_retry_later(struct tcb *c) {
    if (!c->persist_at_us) set_timer(c, &c->persist_at_us, c->stack->now_us + TCP_TX_RETRY_US);
}

void tcp_output(struct tcb *c) {
    struct ustack *s = c->stack;
    switch (c->state) {
    case TCP_ESTABLISHED:
    case TCP_CLOSE_WAIT:
    case TCP_FIN_WAIT_1:
    case TCP_CLOSING:
    case TCP_LAST_ACK:
        break;
    default:
        if (c->ack_now && c->state != TCP_CLOSED && c->state != TCP_SYN_SENT)
            tcp_send_ack(c);
        return;
    }
    bool sent = false;
    for (;;) {
        uint32_t in_flight = c->snd_nxt - c->snd_una;
        uint32_t avail = seq_lt(c->snd_nxt, c->snd_tail) ? c->snd_tail - c->snd_nxt : 0;
        if (avail == 0) {
            if (c->fin_queued && c->snd_nxt == c->snd_tail) {
                if (!tcb_emit(c, c->snd_nxt, 0, TCP_FIN | TCP_ACK)) {
                    output_retry_later(c);
                    break;
                }
                c->fin_sent = true;
                c->snd_nxt++;
                if (seq_lt(c->snd_max, c->snd_nxt)) c->snd_max = c->snd_nxt;
                sent = true;
            }
            break;
        }
        uint32_t wnd = usable_window(c);
        if (in_flight >= wnd) {
            if (c->snd_wnd == 0 && in_flight == 0 && !c->persist_at_us) {
                uint64_t base = c->rto_us > TCP_PERSIST_MIN_US ? c->rto_us : TCP_PERSIST_MIN_US;
                c->persist_backoff = 0;
                c->probes_out = 0;
                set_timer(c, &c->persist_at_us, s->now_us + base);
            }
            break;
        }
        uint32_t len = avail;
        if (len > wnd - in_flight) len = wnd - in_flight;
        if (len > c->mss) len = c->mss;
        bool last = len == avail;
        uint8_t flags = TCP_ACK | (last ? TCP_PSH : 0);
        bool fin = last && c->fin_queued;
        if (fin) flags |= TCP_FIN;
        if (!tcb_emit(c, c->snd_nxt, len, flags)) {
            output_retry_later(c);
            break;
        }
        if (!c->rtt_timing && c->snd_nxt == c->snd_max) {
            c->rtt_timing = true;
            c->rtt_seq = c->snd_nxt + len;
            c->rtt_start_us = s->now_us;
        }
        c->snd_nxt += len + (fin ? 1 : 0);
        if (fin) c->fin_sent = true;
        if (seq_gt(c->snd_nxt, c->snd_max)) {
            s->stats.tcp_tx_bytes += c->snd_nxt - c->snd_max - (fin ? 1 : 0);
            c->snd_max = c->snd_nxt;
        }
        c->persist_at_us = 0;
        sent = true;
    }
    /* armed once the burst is out, so the loss probe sees the whole flight */
    if (sent && !c->rto_at_us) tcp_arm_rto(c);
    if (c->ack_now) tcp_send_ack(c);
}

/* Resend the first unacknowledged segment (fast retransmit, NewReno partial ACK). */
void tcp_retransmit_head(struct tcb *c) {
    uint32_t avail = seq_lt(c->snd_una, c->snd_tail) ? c->snd_tail - c->snd_una : 0;
    uint32_t len = avail < c->mss ? avail : c->mss;
    uint8_t flags = TCP_ACK;
    if (len == avail && c->fin_sent) flags |= TCP_FIN;
    if (len == 0 && !(flags & TCP_FIN)) return;
    c->rtt_timing = false;
    tcb_emit(c, c->snd_una, len, flags);
}

void tcp_rtt_sample(struct tcb *c, uint32_t r) {
    if (r == 0) r = 1;
    if (c->srtt_us == 0) {
        c->srtt_us = r;
        c->rttvar_us = r / 2;
    } else {
        uint32_t diff = c->srtt_us > r ? c->srtt_us - r : r - c->srtt_us;
        c->rttvar_us = (3 * c->rttvar_us + diff) / 4;
        c->srtt_us = (7 * c->srtt_us + r) / 8;
    }
    uint64_t rto = (uint64_t)c->srtt_us + 4ull * c->rttvar_us;
    if (rto < TCP_RTO_MIN_US) rto = TCP_RTO_MIN_US;
    if (rto > TCP_RTO_MAX_US) rto = TCP_RTO_MAX_US;
    c->rto_us = (uint32_t)rto;
}

static void rto_expired(struct tcb *c) {
    struct ustack *s = c->stack;
    c->rto_at_us = 0;
    uint32_t limit = (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD) ? TCP_SYN_RETRIES
                                                                           : TCP_MAX_RETRIES;
    if (++c->retries > limit) {
        if (c->state != TCP_SYN_SENT && c->state != TCP_SYN_RCVD) tcp_send_rst(c);
        tcb_abort(c, -ETIMEDOUT);
        return;
    }
    c->rto_us = c->rto_us * 2 > TCP_RTO_MAX_US ? TCP_RTO_MAX_US : c->rto_us * 2;
    c->rtt_timing = false;
    s->stats.tcp_retransmits_rto++;
    if (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD) {
        tcp_send_syn(c, c->state == TCP_SYN_RCVD);
        tcp_arm_rto(c);
        return;
    }
    uint32_t flight = c->snd_max - c->snd_una;
    c->ssthresh = flight / 2 > 2u * c->mss ? flight / 2 : 2u * c->mss;
    c->cwnd = c->mss;
    c->in_recovery = false;
    c->dupacks = 0;
    c->snd_nxt = c->snd_una;
    if (c->snd_wnd == 0 && seq_lt(c->snd_una, c->snd_tail)) {
        /* The peer closed its window on bytes in flight: that is flow control, not loss.
         * The persist timer probes for the window (never giving up while the peer
         * answers, giving up after TCP_PERSIST_MAX_PROBES unanswered ones); the bytes go
         * again from snd_una once it opens. */
        c->retries--;
        c->rto_at_us = 0;
        uint64_t base = c->rto_us > TCP_PERSIST_MIN_US ? c->rto_us : TCP_PERSIST_MIN_US;
        c->persist_backoff = 0;
        c->probes_out = 0;
        set_timer(c, &c->persist_at_us, s->now_us + base);
        return;
    }
    tcp_output(c);
    tcp_arm_rto(c);
}

static void persist_expired(struct tcb *c) {
    struct ustack *s = c->stack;
    c->persist_at_us = 0;
    if (c->snd_wnd != 0 || !seq_lt(c->snd_nxt, c->snd_tail)) {
        tcp_output(c);
        return;
    }
    if (c->probes_out >= TCP_PERSIST_MAX_PROBES) {
        /* not a segment from the peer through all these probes (any would have cleared
         * probes_out): it is gone, as after the RTO's last retry */
        s->stats.tcp_persist_timeouts++;
        tcp_send_rst(c);
        tcb_abort(c, -ETIMEDOUT);
        return;
    }
    s->stats.tcp_zero_window_probes++;
    if (tcb_emit(c, c->snd_una - 1, 0, TCP_ACK)) c->probes_out++; /* unsent: not unanswered */
    if (c->persist_backoff < 10) c->persist_backoff++;
    uint64_t base = c->rto_us > TCP_PERSIST_MIN_US ? c->rto_us : TCP_PERSIST_MIN_US;
    uint64_t wait = base << c->persist_backoff;
    if (wait > TCP_RTO_MAX_US) wait = TCP_RTO_MAX_US;
    set_timer(c, &c->persist_at_us, s->now_us + wait);
}

/* The keepalive timer fired (see the top of the file). */
static void keepalive_expired(struct tcb *c) {
    struct ustack *s = c->stack;
    const struct ustack_config *cfg = &s->cfg;
    uint64_t now = s->now_us;
    uint64_t idle = (uint64_t)cfg->keepalive_idle_ms * 1000u;
    c->ka_at_us = 0;
    if (c->snd_una != c->snd_max || seq_lt(c->snd_nxt, c->snd_tail) || c->persist_at_us) {
        /* data waits for an ACK or for the window: the RTO or the persist timer gives up
         * on a silent peer; a probe now would only add to them */
        set_timer(c, &c->ka_at_us, now + idle);
        return;
    }
    if (now - c->last_rx_us < idle) { /* heard from the peer since: idle counts from then */
        set_timer(c, &c->ka_at_us, c->last_rx_us + idle);
        return;
    }
    if (c->probes_out >= cfg->keepalive_probes) {
        s->stats.tcp_keepalive_timeouts++;
        tcp_send_rst(c);
        tcb_abort(c, -ETIMEDOUT);
        return;
    }
    if (!tcb_emit(c, c->snd_nxt - 1, 0, TCP_ACK)) { /* no TX frame: try again soon */
        set_timer(c, &c->ka_at_us, now + TCP_KEEPALIVE_RETRY_US);
        return;
    }
    s->stats.tcp_keepalive_probes++;
    c->probes_out++;
    set_timer(c, &c->ka_at_us, now + (uint64_t)cfg->keepalive_interval_ms * 1000u);
}

void tcp_timers(struct tcb *c, uint64_t now_us) {
    struct ustack *s = c->stack;
    if (c->tw_at_us) {
        if (now_us >= c->tw_at_us) {
            c->tw_at_us = 0;
            if (c->state == TCP_FIN_WAIT_1 || c->state == TCP_CLOSING ||
                c->state == TCP_LAST_ACK) { /* the close linger ran out */
                tcp_send_rst(c);
                tcb_abort(c, -ETIMEDOUT);
                return;
            }
            tcp_set_state(c, TCP_CLOSED); /* TIME_WAIT or FIN_WAIT_2 over */
            ustack_defer(s, c);
            return;
        }
        ustack_timer_hint(s, c->tw_at_us);
    }
    if (c->dack_at_us) {
        if (now_us >= c->dack_at_us) {
            s->stats.tcp_delayed_acks++;
            tcp_send_ack(c);
        } else {
            ustack_timer_hint(s, c->dack_at_us);
        }
    }
    if (c->probe_at_us) {
        if (now_us >= c->probe_at_us) {
            c->probe_at_us = 0;
            if (c->snd_una != c->snd_max && !c->in_recovery && c->state != TCP_CLOSED &&
                c->snd_wnd != 0) {
                s->stats.tcp_loss_probes++;
                tcp_retransmit_head(c);
            }
        } else {
            ustack_timer_hint(s, c->probe_at_us);
        }
    }
    if (c->rto_at_us) {
        if (now_us >= c->rto_at_us) rto_expired(c);
        else ustack_timer_hint(s, c->rto_at_us);
    }
    if (c->persist_at_us && c->in_use && c->state != TCP_CLOSED) {
        if (now_us >= c->persist_at_us) persist_expired(c);
        else ustack_timer_hint(s, c->persist_at_us);
    }
    if (c->ka_at_us) {
        if (c->state != TCP_ESTABLISHED) c->ka_at_us = 0; /* closing: its own timers bound it */
        else if (now_us >= c->ka_at_us) keepalive_expired(c);
        else ustack_timer_hint(s, c->ka_at_us);
    }
}
