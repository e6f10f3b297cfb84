/* ustack_tcp_in.c - TCP segment arrival (RFC 9293 3.10.7), NewReno ACK processing.
 *
 * Order of work for a segment: header and checksum checks (drops counted); connection
 * lookup; with none, a SYN to a listener opens a half-open connection (bounded by the
 * listener's backlog and the free slots), anything else but a RST is answered with a
 * RST; SYN_SENT has its own rules; otherwise: sequence acceptability against the window
 * we advertised (unacceptable: dropped, counted, answered with an ACK), RST (RFC 5961:
 * only the exact next sequence resets, other in-window RSTs get a challenge ACK), SYN in
 * a synchronized state (challenge ACK), the ACK (SYN_RCVD -> ESTABLISHED, window update,
 * duplicate-ACK counting and NewReno fast retransmit/recovery, RTT sample, our FIN's
 * acknowledgement), then the payload (trimmed to the window, delivered or queued), then
 * FIN. ACKs for data are delayed (cfg.delayed_ack_us) unless two full segments are
 * unacknowledged, a hole was seen or filled, or a FIN arrived.
 *
 * Options: MSS, window scale and SACK-permitted are read from SYNs (malformed options end
 * parsing, never the segment); timestamps are not offered, so not used. SACK blocks in
 * ACKs are ignored (see ustack_tcp_out.c). */
#include <assert.h>

#include "dataplane/net/ustack_internal.h"

struct seg {
    uint32_t seq, ack, len; /* len: payload bytes */
    uint16_t wnd, sport, dport;
    uint8_t flags;
    const uint8_t *payload;
    uint16_t opt_mss;
    int opt_wscale; /* -1: absent */
    bool opt_sack_permitted;
};

static void parse_options(struct seg *sg, const uint8_t *o, uint32_t n) {
    uint32_t i = 0;
    while (i < n) {
        uint8_t kind = o[i];
        if (kind == 0) break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= n) break;
        uint8_t len = o[i + 1];
        if (len < 2 || i + len > n) break;
        if (kind == 2 && len == 4) sg->opt_mss = rd16(o + i + 2);
        if (kind == 3 && len == 3) sg->opt_wscale = o[i + 2] > 14 ? 14 : o[i + 2];
        if (kind == 4 && len == 2) sg->opt_sack_permitted = true;
        i += len;
    }
}

static int find_listener(struct ustack *s, uint32_t ip, uint16_t port) {
    for (uint32_t i = 0; i < USTACK_MAX_LISTENERS; i++) {
        struct listener *l = &s->listeners[i];
        if (l->active && l->port == port && (l->ip == 0 || l->ip == ip)) return (int)i;
    }
    return -1;
}

static void apply_syn_options(struct tcb *c, const struct seg *sg) {
    struct ustack *s = c->stack;
    uint16_t mss = sg->opt_mss ? sg->opt_mss : 536;
    if (mss > s->mss_local) mss = s->mss_local;
    if (mss < 64) mss = 64;
    c->mss = mss;
    if (sg->opt_wscale >= 0) {
        c->wscale_ok = true;
        c->snd_wscale = (uint8_t)sg->opt_wscale;
        c->rcv_wscale = s->wscale_local;
    } else {
        c->wscale_ok = false;
        c->snd_wscale = 0;
        c->rcv_wscale = 0;
    }
    c->sack_ok = sg->opt_sack_permitted;
    c->cwnd = 10u * c->mss; /* RFC 6928 */
}

static void listen_input(struct ustack *s, int li, uint32_t src, uint32_t dst,
                         const struct seg *sg, const uint8_t *src_mac) {
    struct listener *l = &s->listeners[li];
    if (l->half_open >= s->cfg.syn_backlog) {
        s->stats.tcp_backlog_full++;
        return;
    }
    struct tcb *c = tcb_alloc(s, dst, sg->dport, src, sg->sport);
    if (!c) {
        s->stats.tcp_backlog_full++;
        return;
    }
    c->server = true;
    c->listener = (uint8_t)li;
    memcpy(c->remote_mac, src_mac, 6);
    c->remote_mac_known = true;
    c->state = TCP_SYN_RCVD;
    l->half_open++;
    c->irs = sg->seq;
    c->rcv_nxt = sg->seq + 1;
    c->rcv_adv = c->rcv_nxt;
    apply_syn_options(c, sg);
    c->snd_wnd = sg->wnd; /* a SYN's window is never scaled */
    c->snd_wl1 = sg->seq;
    c->iss = tcp_isn(s, c);
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->snd_tail = c->iss + 1; /* data starts after our SYN */
    tcp_send_syn(c, true);
}

static void no_connection(struct ustack *s, uint32_t src, uint32_t dst, const struct seg *sg,
                          const uint8_t *src_mac) {
    if (sg->flags & TCP_RST) return;
    int li = find_listener(s, dst, sg->dport);
    if (li >= 0 && (sg->flags & (TCP_SYN | TCP_ACK | TCP_FIN)) == TCP_SYN) {
        listen_input(s, li, src, dst, sg, src_mac);
        return;
    }
    s->stats.tcp_no_listener_rst++;
    if (sg->flags & TCP_ACK) {
        tcp_send_rst_for(s, dst, src, sg->dport, sg->sport, sg->ack, 0, false, src_mac);
    } else {
        uint32_t ack = sg->seq + sg->len + ((sg->flags & TCP_SYN) ? 1 : 0) +
                       ((sg->flags & TCP_FIN) ? 1 : 0);
        tcp_send_rst_for(s, dst, src, sg->dport, sg->sport, 0, ack, true, src_mac);
    }
}

static void syn_sent_input(struct tcb *c, const struct seg *sg) {
    struct ustack *s = c->stack;
    if (sg->flags & TCP_ACK) {
        if (sg->ack != c->iss + 1) {
            if (!(sg->flags & TCP_RST))
                tcp_send_rst_for(s, c->local_ip, c->remote_ip, c->local_port, c->remote_port,
                                 sg->ack, 0, false, c->remote_mac_known ? c->remote_mac : NULL);
            return;
        }
        if (sg->flags & TCP_RST) {
            s->stats.tcp_rst_received++;
            c->close_reason = -ECONNREFUSED;
            tcb_abort(c, -ECONNREFUSED);
            return;
        }
    } else if (sg->flags & TCP_RST) {
        return;
    }
    if (!(sg->flags & TCP_SYN)) return;
    c->irs = sg->seq;
    c->rcv_nxt = sg->seq + 1;
    c->rcv_adv = c->rcv_nxt;
    apply_syn_options(c, sg);
    c->snd_wnd = sg->wnd;
    c->snd_wl1 = sg->seq;
    c->snd_wl2 = sg->ack;
    if (!(sg->flags & TCP_ACK)) { /* simultaneous open */
        tcp_set_state(c, TCP_SYN_RCVD);
        tcp_send_syn(c, true);
        return;
    }
    c->snd_una = sg->ack;
    c->snd_tail = c->snd_una;
    c->retries = 0;
    c->rto_at_us = 0;
    if (c->rtt_timing) {
        tcp_rtt_sample(c, (uint32_t)(s->now_us - c->rtt_start_us));
        c->rtt_timing = false;
    }
    tcp_set_state(c, TCP_ESTABLISHED);
    tcp_send_ack(c);
    ustack_defer(s, c); /* runs connected(0) */
}

/* RFC 9293 acceptability test against the window we advertised. */
static bool acceptable(const struct tcb *c, const struct seg *sg) {
    uint32_t wnd = c->rcv_adv - c->rcv_nxt;
    uint32_t seg_len = sg->len + ((sg->flags & TCP_SYN) ? 1 : 0) + ((sg->flags & TCP_FIN) ? 1 : 0);
    if (seg_len == 0) {
        if (wnd == 0) return sg->seq == c->rcv_nxt;
        return seq_ge(sg->seq, c->rcv_nxt) && seq_lt(sg->seq, c->rcv_nxt + wnd);
    }
    if (wnd == 0) return false;
    uint32_t last = sg->seq + seg_len - 1;
    return (seq_ge(sg->seq, c->rcv_nxt) && seq_lt(sg->seq, c->rcv_nxt + wnd)) ||
           (seq_ge(last, c->rcv_nxt) && seq_lt(last, c->rcv_nxt + wnd));
}

static void on_new_ack(struct tcb *c, const struct seg *sg) {
    struct ustack *s = c->stack;
    uint32_t acked = sg->ack - c->snd_una;
    c->snd_una = sg->ack;
    if (seq_lt(c->snd_nxt, c->snd_una)) c->snd_nxt = c->snd_una;
    c->retries = 0;
    if (c->rtt_timing && seq_ge(sg->ack, c->rtt_seq)) {
        tcp_rtt_sample(c, (uint32_t)(s->now_us - c->rtt_start_us));
        c->rtt_timing = false;
    }
    if (c->in_recovery) {
        if (seq_ge(sg->ack, c->recover)) { /* full ACK: leave recovery (RFC 6582 3.2.3) */
            uint32_t flight = c->snd_max - c->snd_una;
            c->cwnd = c->ssthresh < flight + c->mss ? c->ssthresh : flight + c->mss;
            c->in_recovery = false;
        } else { /* partial ACK: resend the next hole, deflate */
            tcp_retransmit_head(c);
            s->stats.tcp_retransmits_fast++;
            c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
            c->cwnd += c->mss;
        }
    } else if (c->cwnd < c->ssthresh) {
        c->cwnd += acked < c->mss ? acked : c->mss; /* slow start */
    } else {
        uint32_t inc = (uint32_t)((uint64_t)c->mss * c->mss / (c->cwnd ? c->cwnd : 1));
        c->cwnd += inc ? inc : 1; /* congestion avoidance */
    }
    if (c->cwnd > 2u * s->cfg.snd_buf_bytes) c->cwnd = 2u * s->cfg.snd_buf_bytes;
    c->dupacks = 0;
    tcp_arm_rto(c);
    tcb_ack_sends(c);
}

static void on_dup_ack(struct tcb *c) {
    struct ustack *s = c->stack;
    c->dupacks++;
    if (c->in_recovery) {
        c->cwnd += c->mss; /* inflate: a segment left the network */
        return;
    }
    if (c->dupacks != 3) return;
    if (seq_le(c->snd_una, c->recover) && c->recover != c->iss) {
        /* RFC 6582 4.1: no new recovery for the same losses */
        if (seq_lt(c->snd_una, c->recover)) return;
    }
    uint32_t flight = c->snd_max - c->snd_una;
    c->ssthresh = flight / 2 > 2u * c->mss ? flight / 2 : 2u * c->mss;
    c->recover = c->snd_max;
    c->in_recovery = true;
    tcp_retransmit_head(c);
    s->stats.tcp_retransmits_fast++;
    c->cwnd = c->ssthresh + 3u * c->mss;
}

/* ACK processing for synchronized states; false: stop processing the segment. */
static bool process_ack(struct tcb *c, const struct seg *sg) {
    struct ustack *s = c->stack;
    if (c->state == TCP_SYN_RCVD) {
        if (!(seq_gt(sg->ack, c->snd_una) && seq_le(sg->ack, c->snd_max))) {
            tcp_send_rst_for(s, c->local_ip, c->remote_ip, c->local_port, c->remote_port,
                             sg->ack, 0, false, c->remote_mac);
            return false;
        }
        tcp_set_state(c, TCP_ESTABLISHED);
        c->snd_una = sg->ack;
        c->snd_nxt = c->snd_una;
        c->snd_tail = c->snd_una;
        c->snd_wnd = (uint32_t)sg->wnd << c->snd_wscale;
        c->snd_wl1 = sg->seq;
        c->snd_wl2 = sg->ack;
        c->retries = 0;
        c->rto_at_us = 0;
        if (c->rtt_timing) c->rtt_timing = false;
        if (c->srtt_us == 0) c->rto_us = TCP_RTO_INITIAL_US;
        if (s->nb.events.accepted(s->nb.events_ctx, &c->base) != 0) {
            tcp_send_rst(c);
            tcb_abort(c, 0);
            return false;
        }
        c->user_attached = true;
        s->user_conns++;
        return true;
    }
    if (seq_gt(sg->ack, c->snd_max)) { /* ACKs what we never sent */
        c->ack_now = true;
        return false;
    }
    uint32_t wnd = (uint32_t)sg->wnd << c->snd_wscale;
    bool window_update = false;
    if (seq_lt(c->snd_wl1, sg->seq) || (c->snd_wl1 == sg->seq && seq_le(c->snd_wl2, sg->ack))) {
        window_update = wnd != c->snd_wnd;
        c->snd_wnd = wnd;
        c->snd_wl1 = sg->seq;
        c->snd_wl2 = sg->ack;
    }
    if (seq_gt(sg->ack, c->snd_una)) {
        on_new_ack(c, sg);
    } else if (sg->ack == c->snd_una && sg->len == 0 && !window_update &&
               !(sg->flags & (TCP_SYN | TCP_FIN)) && c->snd_max != c->snd_una &&
               c->snd_wnd != 0) { /* ACKs of a closed window are not loss signals */
        on_dup_ack(c);
    }
    if (c->snd_wnd) c->persist_at_us = 0;
    bool fin_acked = c->fin_sent && c->snd_una == c->snd_max && seq_gt(c->snd_max, c->snd_tail);
    if (fin_acked) {
        switch (c->state) {
        case TCP_FIN_WAIT_1:
            tcp_set_state(c, TCP_FIN_WAIT_2);
            /* the user is gone already: a peer that never sends its FIN must not hold
             * the slot forever (Linux's tcp_fin_timeout) */
            c->tw_at_us = s->now_us + TCP_FIN_WAIT_2_US;
            ustack_timer_hint(s, c->tw_at_us);
            break;
        case TCP_CLOSING:
            tcp_set_state(c, TCP_TIME_WAIT);
            c->rto_at_us = 0;
            c->tw_at_us = s->now_us + s->cfg.time_wait_us;
            ustack_timer_hint(s, c->tw_at_us);
            break;
        case TCP_LAST_ACK:
            tcp_set_state(c, TCP_CLOSED);
            c->rto_at_us = 0;
            ustack_defer(s, c);
            return false;
        default:
            break;
        }
    }
    ustack_defer(s, c); /* the window may allow more output */
    return true;
}

static void schedule_ack(struct tcb *c, const struct seg *sg) {
    struct ustack *s = c->stack;
    if (sg->len >= c->mss) c->unacked_segs++;
    if (c->ack_now || c->unacked_segs >= 2) {
        tcp_send_ack(c);
    } else if (!c->dack_at_us) {
        c->dack_at_us = s->now_us + s->cfg.delayed_ack_us;
        ustack_timer_hint(s, c->dack_at_us);
    }
}

static void on_fin(struct tcb *c) {
    struct ustack *s = c->stack;
    c->fin_received = true;
    c->rcv_nxt++;
    c->ack_now = true;
    switch (c->state) {
    case TCP_ESTABLISHED:
        tcp_set_state(c, TCP_CLOSE_WAIT);
        break;
    case TCP_FIN_WAIT_1:
        tcp_set_state(c, TCP_CLOSING); /* our FIN not yet ACKed: simultaneous close */
        break;
    case TCP_FIN_WAIT_2:
        tcp_set_state(c, TCP_TIME_WAIT);
        c->rto_at_us = 0;
        c->tw_at_us = s->now_us + s->cfg.time_wait_us;
        ustack_timer_hint(s, c->tw_at_us);
        break;
    case TCP_TIME_WAIT: /* a retransmitted FIN: restart 2MSL */
        c->tw_at_us = s->now_us + s->cfg.time_wait_us;
        ustack_timer_hint(s, c->tw_at_us);
        break;
    default:
        break;
    }
    ustack_defer(s, c);
}

/* Returns true when the frame is held. */
static bool established_input(struct tcb *c, struct ustack_pkt *pkt, struct seg *sg) {
    struct ustack *s = c->stack;
    if (c->state == TCP_SYN_RCVD && (sg->flags & TCP_SYN) && !(sg->flags & TCP_ACK) &&
        sg->seq == c->irs) {
        tcp_send_syn(c, true); /* our SYN-ACK was lost */
        return false;
    }
    if (!acceptable(c, sg)) {
        if (seq_lt(sg->seq, c->rcv_nxt) && seq_le(sg->seq + sg->len, c->rcv_nxt))
            s->stats.tcp_dup_segments++;
        else
            s->stats.tcp_out_of_window++;
        if (!(sg->flags & TCP_RST)) tcp_send_ack(c);
        return false;
    }
    if (sg->flags & TCP_RST) {
        if (sg->seq != c->rcv_nxt) { /* RFC 5961 3.2 challenge ACK */
            tcp_send_ack(c);
            return false;
        }
        s->stats.tcp_rst_received++;
        if (c->state == TCP_SYN_RCVD) {
            tcb_abort(c, 0);
        } else {
            tcb_abort(c, -ECONNRESET);
        }
        return false;
    }
    if (sg->flags & TCP_SYN) { /* RFC 5961 4.2 */
        tcp_send_ack(c);
        return false;
    }
    if (!(sg->flags & TCP_ACK)) return false;
    if (!process_ack(c, sg)) {
        if (c->ack_now && c->state != TCP_CLOSED) tcp_send_ack(c);
        return false;
    }
    if (c->state == TCP_TIME_WAIT) {
        if (sg->len || (sg->flags & TCP_FIN)) tcp_send_ack(c);
        return false;
    }
    bool kept = false;
    bool takes_data = c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
                      c->state == TCP_FIN_WAIT_2;
    bool fin = (sg->flags & TCP_FIN) != 0;
    if (sg->len && takes_data && !c->fin_received) {
        /* Trim to the window: the left part we already have, the right part beyond. */
        uint32_t seq = sg->seq;
        const uint8_t *data = sg->payload;
        uint32_t len = sg->len;
        if (seq_lt(seq, c->rcv_nxt)) {
            uint32_t d = c->rcv_nxt - seq;
            seq += d;
            data += d;
            len -= d;
        }
        uint32_t right = c->rcv_adv;
        if (seq_gt(seq + len, right)) {
            len = right - seq;
            fin = false;
        }
        if (len) {
            bool in_order = seq == c->rcv_nxt;
            kept = tcb_receive_data(c, pkt, data, seq, len);
            if (c->state == TCP_CLOSED) return kept; /* the user reset it from received */
            if (!in_order) fin = false; /* a FIN beyond a hole waits for its retransmission */
            if (in_order && c->rcv_nxt != seq + len) fin = false;
        }
    } else if (sg->len) {
        fin = false;
    }
    if (fin && !c->fin_received && sg->seq + sg->len == c->rcv_nxt) on_fin(c);
    if (sg->len || fin) schedule_ack(c, sg);
    else if (c->ack_now) tcp_send_ack(c);
    return kept;
}

bool tcp_input(struct ustack *s, struct ustack_pkt *pkt, uint32_t src_ip, uint32_t dst_ip,
               const uint8_t *t, uint32_t n, const uint8_t *src_mac) {
    if (n < 20) {
        s->stats.rx_malformed_tcp++;
        return false;
    }
    uint32_t hl = (uint32_t)(t[12] >> 4) * 4;
    if (hl < 20 || hl > n) {
        s->stats.rx_malformed_tcp++;
        return false;
    }
    if ((pkt->flags & USTACK_PKT_RX_L4_CSUM_BAD) || !(pkt->flags & USTACK_PKT_RX_L4_CSUM_GOOD)) {
        struct csum c = {.acc = csum_pseudo(src_ip, dst_ip, IPPROTO_TCP_, (uint16_t)n)};
        csum_add(&c, t, n);
        if (csum_fold(&c) != 0 || (pkt->flags & USTACK_PKT_RX_L4_CSUM_BAD)) {
            s->stats.rx_bad_tcp_csum++;
            return false;
        }
    }
    struct seg sg = {
        .sport = rd16(t), .dport = rd16(t + 2), .seq = rd32(t + 4), .ack = rd32(t + 8),
        .flags = t[13], .wnd = rd16(t + 14), .payload = t + hl, .len = n - hl,
        .opt_wscale = -1,
    };
    if ((sg.flags & TCP_SYN) && (sg.flags & (TCP_RST | TCP_FIN))) {
        s->stats.rx_malformed_tcp++;
        return false;
    }
    if (sg.sport == 0 || sg.dport == 0) {
        s->stats.rx_malformed_tcp++;
        return false;
    }
    if (sg.flags & TCP_SYN) parse_options(&sg, t + 20, hl - 20);
    struct tcb *c = tcb_lookup(s, dst_ip, sg.dport, src_ip, sg.sport);
    if (!c || c->state == TCP_CLOSED) { /* a CLOSED tcb only waits for its release */
        no_connection(s, src_ip, dst_ip, &sg, src_mac);
        return false;
    }
    if (c->state == TCP_TIME_WAIT && (sg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN &&
        seq_gt(sg.seq, c->rcv_nxt)) {
        /* A new incarnation (RFC 6191 without timestamps: its SYN is above the old
         * stream): end TIME_WAIT and take the SYN as new; the new tcb heads the chain. */
        c->tw_at_us = 0;
        tcp_set_state(c, TCP_CLOSED);
        ustack_defer(s, c);
        no_connection(s, src_ip, dst_ip, &sg, src_mac);
        return false;
    }
    /* The peer is alive: keepalive idles from here, unanswered probes start again. */
    c->last_rx_us = s->now_us;
    c->probes_out = 0;
    if (c->state == TCP_SYN_SENT) {
        if (!c->remote_mac_known) {
            memcpy(c->remote_mac, src_mac, 6);
            c->remote_mac_known = true;
        }
        syn_sent_input(c, &sg);
        return false;
    }
    return established_input(c, pkt, &sg);
}
