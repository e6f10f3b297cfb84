/* ustack_tcp_conn.c - TCP connection slots and what happens to a connection outside
 * segment parsing: lookup, the receive queue, send records, and the deferred work that
 * talks to the user.
 *
 * Slots: a fixed array (cfg.max_conns) with a free list; lookup by 4-tuple through a
 * chained hash. A slot goes back to the free list only when the connection is CLOSED (or
 * its TIME_WAIT expired), the user has been told `closed`, and no TX frame still holds any
 * of its send records (zero-copy references) -- so a release callback never lands in a
 * reused slot.
 *
 * Receive queue: a per-connection array of cfg.rcv_max_pkts held segments, sorted by
 * sequence. Entries below rcv_nxt are in-order bytes the user has not taken (it paused);
 * entries above are out-of-order segments waiting for a hole to fill. Held frames are the
 * driver's buffers, lent to the user when delivered and freed right after. The advertised
 * window is the receive buffer minus the undelivered in-order bytes, further limited by
 * the free queue entries (a peer sending tiny segments cannot pin more frames than that).
 *
 * Send records: the user's net_sends enter a ring of USTACK_TXREC_PER_CONN records (more
 * wait in a list); each record maps its bytes to a sequence range. A record finishes when
 * the peer ACKs its last byte (or when the connection is cancelled) and is completed
 * (`done`) in queue order once no TX frame references its bytes.
 *
 * Close: user close, the peer's FIN (after the data before it was delivered) and aborts
 * all arrive at tcb_begin_close/tcb_abort. Close is graceful, as shutdown(2) of a kernel
 * socket: sends already in the record ring (handed to "the kernel") keep going and
 * complete when ACKed, sends still waiting are cancelled (-ECANCELED), the FIN follows the
 * last byte; `closed` runs once every send has completed. A peer that does not take the
 * rest within TCP_CLOSE_LINGER_US is reset (the sends complete with -ETIMEDOUT). */
#include <assert.h>

#include "dataplane/net/ustack_internal.h"

static uint32_t tuple_hash(uint32_t lip, uint16_t lport, uint32_t rip, uint16_t rport) {
    uint32_t h = rip * 2654435761u;
    h ^= ((uint32_t)rport << 16 | lport) * 2246822519u;
    h ^= lip * 3266489917u;
    h ^= h >> 15;
    return h;
}

struct tcb *tcb_lookup(struct ustack *s, uint32_t lip, uint16_t lport, uint32_t rip,
                       uint16_t rport) {
    uint32_t i = s->buckets[tuple_hash(lip, lport, rip, rport) & s->bucket_mask];
    while (i != USTACK_NONE) {
        struct tcb *c = &s->tcbs[i];
        if (c->remote_port == rport && c->local_port == lport && c->remote_ip == rip &&
            c->local_ip == lip)
            return c;
        i = c->hash_next;
    }
    return NULL;
}

uint32_t tcp_isn(struct ustack *s, const struct tcb *c) {
    uint32_t clock = (uint32_t)(s->now_us / 4);
    if (s->cfg.isn_seed) return s->cfg.isn_seed + clock;
    return tuple_hash(c->local_ip ^ s->isn_secret, c->local_port, c->remote_ip,
                      c->remote_port) + clock;
}

struct tcb *tcb_alloc(struct ustack *s, uint32_t lip, uint16_t lport, uint32_t rip,
                      uint16_t rport) {
    if (s->free_head == USTACK_NONE) return NULL;
    struct tcb *c = &s->tcbs[s->free_head];
    s->free_head = c->hash_next;
    if (c->slot + 1 > s->slots_high) s->slots_high = c->slot + 1;
    assert(!c->in_use && c->rxq_count == 0 && c->tx_refs == 0);
    uint32_t slot = c->slot;
    struct rxseg *rxq = c->rxq;
    memset(c, 0, sizeof(*c));
    c->slot = slot;
    c->base.id = slot;
    c->stack = s;
    c->rxq = rxq;
    c->in_use = true;
    c->local_ip = lip;
    c->local_port = lport;
    c->remote_ip = rip;
    c->remote_port = rport;
    c->mss = 536;
    c->rto_us = TCP_RTO_INITIAL_US;
    c->ssthresh = UINT32_MAX / 2;
    c->defer_next = USTACK_NONE;
    uint32_t b = tuple_hash(lip, lport, rip, rport) & s->bucket_mask;
    c->hash_next = s->buckets[b];
    s->buckets[b] = slot;
    s->conn_count++;
    return c;
}

static void tcb_unhash(struct tcb *c) {
    struct ustack *s = c->stack;
    uint32_t *p = &s->buckets[tuple_hash(c->local_ip, c->local_port, c->remote_ip,
                                         c->remote_port) & s->bucket_mask];
    while (*p != c->slot) {
        assert(*p != USTACK_NONE);
        p = &s->tcbs[*p].hash_next;
    }
    *p = c->hash_next;
}

static void rxq_free_all(struct tcb *c) {
    struct ustack *s = c->stack;
    for (uint32_t i = 0; i < c->rxq_count; i++) s->io->pkt_free(s->io_ctx, c->rxq[i].pkt);
    c->rxq_count = 0;
    c->rx_inorder_bytes = 0;
}

void tcb_release_if_done(struct tcb *c) {
    if (!c->in_use || c->state != TCP_CLOSED || c->user_attached || c->on_defer_list ||
        c->tx_refs || c->txrec_count || c->wait_head)
        return;
    struct ustack *s = c->stack;
    rxq_free_all(c);
    tcb_unhash(c);
    c->in_use = false;
    c->hash_next = s->free_head;
    s->free_head = c->slot;
    s->conn_count--;
    s->stats.tcp_conns_closed++;
}

uint32_t tcb_rcv_window(const struct tcb *c) {
    const struct ustack *s = c->stack;
    uint32_t free_bytes = s->cfg.rcv_buf_bytes - c->rx_inorder_bytes;
    uint32_t free_slots = s->cfg.rcv_max_pkts - c->rxq_count;
    uint64_t slot_bytes = (uint64_t)free_slots * s->mss_local;
    if (slot_bytes < free_bytes) free_bytes = (uint32_t)slot_bytes;
    /* Receiver silly-window avoidance (RFC 1122): no window below min(MSS, buffer/2). */
    uint32_t floor = s->mss_local < s->cfg.rcv_buf_bytes / 2 ? s->mss_local
                                                              : s->cfg.rcv_buf_bytes / 2;
    return free_bytes < floor ? 0 : free_bytes;
}

static bool deliverable(const struct tcb *c) {
    return c->user_attached && !c->user_paused && !c->close_requested;
}

static void rxq_remove(struct tcb *c, uint32_t i) {
    memmove(&c->rxq[i], &c->rxq[i + 1], (c->rxq_count - i - 1) * sizeof(c->rxq[0]));
    c->rxq_count--;
}

/* Hand held in-order bytes to the user while it takes them. */
static void deliver_held(struct tcb *c) {
    struct ustack *s = c->stack;
    while (c->rxq_count && seq_lt(c->rxq[0].seq, c->rcv_nxt) && deliverable(c)) {
        struct rxseg e = c->rxq[0];
        rxq_remove(c, 0);
        assert(c->rx_inorder_bytes >= e.len);
        c->rx_inorder_bytes -= e.len;
        s->nb.events.received(s->nb.events_ctx, &c->base, e.data, e.len);
        s->io->pkt_free(s->io_ctx, e.pkt);
    }
}

/* Out-of-order entries from index i on that the new rcv_nxt reaches become in-order. */
static void rxq_merge(struct tcb *c, uint32_t i) {
    struct ustack *s = c->stack;
    while (i < c->rxq_count && seq_le(c->rxq[i].seq, c->rcv_nxt)) {
        struct rxseg *e = &c->rxq[i];
        uint32_t overlap = c->rcv_nxt - e->seq;
        if (overlap >= e->len) { /* wholly old */
            s->io->pkt_free(s->io_ctx, e->pkt);
            rxq_remove(c, i);
            continue;
        }
        e->data += overlap;
        e->len -= overlap;
        e->seq = c->rcv_nxt;
        c->rcv_nxt += e->len;
        c->rx_inorder_bytes += e->len;
        i++;
    }
}

bool tcb_receive_data(struct tcb *c, struct ustack_pkt *pkt, const uint8_t *data, uint32_t seq,
                      uint32_t len) {
    struct ustack *s = c->stack;
    assert(len > 0 && seq_ge(seq, c->rcv_nxt));
    if (c->close_requested) { /* nobody reads any more: ACK in-order bytes, keep nothing */
        if (seq == c->rcv_nxt) c->rcv_nxt += len;
        return false;
    }
    if (seq == c->rcv_nxt) {
        s->stats.tcp_rx_bytes += len;
        if (c->rxq_count == 0 && deliverable(c)) {
            c->rcv_nxt += len;
            s->nb.events.received(s->nb.events_ctx, &c->base, data, len);
            return false;
        }
        if (c->rxq_count == s->cfg.rcv_max_pkts) {
            s->stats.tcp_rcv_queue_full++;
            s->stats.tcp_rx_bytes -= len;
            return false;
        }
        uint32_t i = 0;
        while (i < c->rxq_count && seq_lt(c->rxq[i].seq, c->rcv_nxt)) i++;
        memmove(&c->rxq[i + 1], &c->rxq[i], (c->rxq_count - i) * sizeof(c->rxq[0]));
        c->rxq[i] = (struct rxseg){pkt, data, seq, len};
        c->rxq_count++;
        c->rcv_nxt += len;
        c->rx_inorder_bytes += len;
        uint32_t had_ooo = c->rxq_count - i - 1;
        rxq_merge(c, i + 1);
        if (had_ooo) c->ack_now = true; /* a hole filled: tell the sender at once */
        deliver_held(c);
        return true;
    }
    /* Out of order: keep it sorted, bounded. */
    if (c->rxq_count == s->cfg.rcv_max_pkts) {
        s->stats.tcp_rcv_queue_full++;
        return false;
    }
    uint32_t i = c->rxq_count;
    while (i > 0 && seq_gt(c->rxq[i - 1].seq, seq)) i--;
    if (i > 0 && c->rxq[i - 1].seq == seq && c->rxq[i - 1].len >= len) {
        s->stats.tcp_dup_segments++;
        return false;
    }
    memmove(&c->rxq[i + 1], &c->rxq[i], (c->rxq_count - i) * sizeof(c->rxq[0]));
    c->rxq[i] = (struct rxseg){pkt, data, seq, len};
    c->rxq_count++;
    s->stats.tcp_ooo_queued++;
    c->sack_recent_seq = seq;
    c->ack_now = true; /* duplicate ACK: drives the sender's fast retransmit */
    return true;
}

void tcb_fill_ring(struct tcb *c) {
    while (c->wait_head && c->txrec_count < USTACK_TXREC_PER_CONN && !c->close_requested) {
        struct net_send *snd = c->wait_head;
        c->wait_head = snd->next;
        if (!c->wait_head) c->wait_tail = NULL;
        snd->next = NULL;
        struct txrec *r = &c->txrecs[(c->txrec_head + c->txrec_count) % USTACK_TXREC_PER_CONN];
        *r = (struct txrec){.send = snd, .conn = c, .start_seq = c->snd_tail,
                            .len = (uint32_t)snd->bytes_left};
        r->finished = r->len == 0;
        c->snd_tail += r->len;
        c->txrec_count++;
        if (r->finished) ustack_defer(c->stack, c);
    }
}

void tcb_ack_sends(struct tcb *c) {
    bool any = false;
    for (uint32_t k = 0; k < c->txrec_count; k++) {
        struct txrec *r = &c->txrecs[(c->txrec_head + k) % USTACK_TXREC_PER_CONN];
        if (r->finished) continue;
        if (!seq_le(r->start_seq + r->len, c->snd_una)) break;
        r->finished = true;
        r->status = 0;
        any = true;
    }
    if (any) ustack_defer(c->stack, c);
}

void tcb_cancel_sends(struct tcb *c, int status) {
    for (uint32_t k = 0; k < c->txrec_count; k++) {
        struct txrec *r = &c->txrecs[(c->txrec_head + k) % USTACK_TXREC_PER_CONN];
        if (!r->finished) {
            r->finished = true;
            r->status = status;
        }
    }
    ustack_defer(c->stack, c);
}

void txrec_release(void *arg) {
    struct txrec *r = arg;
    struct tcb *c = r->conn;
    assert(r->refs > 0 && c->tx_refs > 0);
    r->refs--;
    c->tx_refs--;
    if (r->refs == 0) ustack_defer(c->stack, c);
}

void tcb_abort(struct tcb *c, int reason) {
    tcp_set_state(c, TCP_CLOSED);
    c->rto_at_us = c->dack_at_us = c->persist_at_us = c->tw_at_us = c->ka_at_us = 0;
    rxq_free_all(c);
    tcb_cancel_sends(c, reason ? reason : -ECANCELED);
    if (c->user_attached && !c->close_requested) {
        c->close_requested = true;
        c->close_reason = reason;
    }
    ustack_defer(c->stack, c);
}

void tcb_begin_close(struct tcb *c, int reason) {
    if (c->close_requested) return;
    c->close_requested = true;
    c->close_reason = reason;
    rxq_free_all(c); /* held bytes will never be read: give the frames back now */
    ustack_defer(c->stack, c);
    switch (c->state) {
    case TCP_SYN_SENT:
    case TCP_SYN_RCVD:
        tcb_abort(c, reason);
        return;
    case TCP_ESTABLISHED:
    case TCP_CLOSE_WAIT:
        /* As shutdown(2) on a kernel socket: what was handed over keeps going, our FIN
         * follows it; only a peer that does not take it within TCP_CLOSE_LINGER_US is
         * reset (tcp_timers). */
        c->fin_queued = true;
        tcp_set_state(c, c->state == TCP_ESTABLISHED ? TCP_FIN_WAIT_1 : TCP_LAST_ACK);
        c->tw_at_us = c->stack->now_us + TCP_CLOSE_LINGER_US;
        ustack_timer_hint(c->stack, c->tw_at_us);
        tcp_output(c);
        return;
    default:
        return; /* already closing */
    }
}

static void complete_sends(struct tcb *c) {
    struct ustack *s = c->stack;
    while (c->txrec_count) {
        struct txrec *r = &c->txrecs[c->txrec_head];
        if (!r->finished || r->refs) break;
        struct net_send *snd = r->send;
        int status = r->status;
        c->txrec_head = (c->txrec_head + 1) % USTACK_TXREC_PER_CONN;
        c->txrec_count--;
        snd->bytes_left = 0;
        snd->done(snd, status);
    }
    if (c->close_requested) {
        while (c->wait_head) {
            struct net_send *snd = c->wait_head;
            c->wait_head = snd->next;
            if (!c->wait_head) c->wait_tail = NULL;
            snd->next = NULL;
            snd->done(snd, -ECANCELED);
        }
    }
    (void)s;
}

void tcb_progress(struct tcb *c) {
    if (!c->in_use) return;
    struct ustack *s = c->stack;
    if (deliverable(c) && c->rx_inorder_bytes) {
        uint32_t before = c->rcv_adv - c->rcv_nxt;
        deliver_held(c);
        uint32_t now = tcb_rcv_window(c);
        if (now > before && now - before >= 2u * s->mss_local && c->state != TCP_CLOSED)
            tcp_send_ack(c); /* window update */
    }
    if (c->fin_received && c->rx_inorder_bytes == 0 && c->user_attached && !c->close_requested)
        tcb_begin_close(c, 0); /* the peer closed: as a kernel recv returning 0 */
    if (c->connect_pending && c->state != TCP_SYN_SENT) {
        c->connect_pending = false;
        int status = c->state == TCP_CLOSED ? (c->close_reason ? c->close_reason : -ECONNREFUSED)
                                            : 0;
        if (status) c->close_reason = status;
        c->connected(&c->base, status);
    }
    complete_sends(c);
    if (!c->close_requested) tcb_fill_ring(c);
    if (c->state != TCP_CLOSED && c->state != TCP_SYN_SENT && c->state != TCP_SYN_RCVD)
        tcp_output(c);
    if (c->user_attached && c->close_requested && !c->connect_pending && c->txrec_count == 0 &&
        !c->wait_head) {
        c->user_attached = false;
        s->user_conns--;
        s->nb.events.closed(s->nb.events_ctx, &c->base, c->close_reason);
    }
    tcb_release_if_done(c);
}
