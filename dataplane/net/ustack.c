/* ustack.c - the stack's frame: create/destroy, the input entry, timers, deferred work
 * and the TX batch.
 *
 * Everything is allocated here, once: connection slots (with their receive-queue
 * entries), the lookup hash, the ARP cache and its pending queue. After create the stack
 * allocates nothing.
 *
 * Deferred work: the user's callbacks (received, done, closed, accepted, connected) may
 * call back into the backend (send, close, pause/resume). To keep that free of recursion
 * and of use-after-free, user callbacks run only from ustack_input and ustack_poll:
 * `received` of a fresh in-order segment and `accepted` where tcp_input meets them, the
 * rest (held data after a resume, done, closed, connected) from the deferred list -- a
 * connection with something to do is queued on it, and ustack_run_deferred(), at the end
 * of both entry points, works it until it is empty. Backend ops called from inside a
 * callback only change state, send and queue (in_deferred is held while frames and timers
 * are processed, so nothing nests); ops called from outside never call the user at all
 * (ustack_backend.c). Connection slots are released only in the deferred loop, so a tcb
 * stays valid for the whole of any call that found it.
 *
 * TX: frames are collected in a batch of USTACK_TX_BATCH and handed to the driver when
 * the batch is full or the entry point returns. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "dataplane/net/ustack_internal.h"

static uint32_t pow2_at_least(uint32_t n) {
    uint32_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

static void config_defaults(struct ustack_config *c) {
    if (!c->max_conns) c->max_conns = 1024;
    if (!c->syn_backlog) c->syn_backlog = 128;
    if (!c->rcv_buf_bytes) c->rcv_buf_bytes = 256u * 1024u;
    if (!c->rcv_max_pkts) c->rcv_max_pkts = 256;
    if (!c->snd_buf_bytes) c->snd_buf_bytes = 1024u * 1024u;
    if (!c->arp_cache_entries) c->arp_cache_entries = 64;
    if (!c->arp_pending_pkts) c->arp_pending_pkts = 64;
    if (!c->time_wait_us) c->time_wait_us = 2000000u;
    if (!c->delayed_ack_us) c->delayed_ack_us = 500u;
    if (!c->ephemeral_port_lo || !c->ephemeral_port_hi ||
        c->ephemeral_port_lo > c->ephemeral_port_hi) {
        c->ephemeral_port_lo = 32768;
        c->ephemeral_port_hi = 60999;
    }
    if (c->keepalive_idle_ms) {
        if (!c->keepalive_interval_ms) c->keepalive_interval_ms = 75000;
        if (!c->keepalive_probes) c->keepalive_probes = 9;
    }
}

struct ustack *ustack_create(const struct ustack_config *cfg, const struct ustack_port *port,
                             const struct ustack_io *io, void *io_ctx, char *err,
                             size_t err_bytes) {
    if (!io || !io->tx_alloc || !io->tx_burst || !io->pkt_free) {
        snprintf(err, err_bytes, "ustack: io needs tx_alloc, tx_burst and pkt_free");
        return NULL;
    }
    if (port->mtu < 576 || port->mtu > 9000) {
        snprintf(err, err_bytes, "ustack: mtu %u out of range 576..9000", port->mtu);
        return NULL;
    }
    if (cfg->ip == 0) {
        snprintf(err, err_bytes, "ustack: no IPv4 address");
        return NULL;
    }
    struct ustack *s = calloc(1, sizeof(*s));
    if (!s) goto oom;
    s->cfg = *cfg;
    config_defaults(&s->cfg);
    if (s->cfg.max_conns > (1u << 20) || s->cfg.rcv_max_pkts > 65536 ||
        s->cfg.rcv_buf_bytes > (1u << 30) || s->cfg.snd_buf_bytes > (1u << 30)) {
        snprintf(err, err_bytes, "ustack: limits too large");
        free(s);
        return NULL;
    }
    s->port = *port;
    s->io = io;
    s->io_ctx = io_ctx;
    s->mss_local = (uint16_t)(port->mtu - 40);
    while (s->wscale_local < 14 && (s->cfg.rcv_buf_bytes >> s->wscale_local) > 65535)
        s->wscale_local++;
    if (s->cfg.isn_seed == 0 && getrandom(&s->isn_secret, sizeof(s->isn_secret), 0) < 0)
        s->isn_secret = (uint32_t)(uintptr_t)s * 2654435761u;
    s->next_ephemeral = s->cfg.ephemeral_port_lo;
    s->next_timer_us = UINT64_MAX;
    s->defer_head = s->defer_tail = USTACK_NONE;

    uint32_t n = s->cfg.max_conns;
    s->tcbs = calloc(n, sizeof(*s->tcbs));
    s->rxsegs = calloc((size_t)n * s->cfg.rcv_max_pkts, sizeof(*s->rxsegs));
    uint32_t nb = pow2_at_least(n * 2);
    s->buckets = malloc(nb * sizeof(*s->buckets));
    s->arp = calloc(s->cfg.arp_cache_entries, sizeof(*s->arp));
    s->arp_q = calloc(s->cfg.arp_pending_pkts, sizeof(*s->arp_q));
    if (!s->tcbs || !s->rxsegs || !s->buckets || !s->arp || !s->arp_q) {
        ustack_destroy(s);
        goto oom;
    }
    s->bucket_mask = nb - 1;
    for (uint32_t i = 0; i < nb; i++) s->buckets[i] = USTACK_NONE;
    for (uint32_t i = 0; i < n; i++) {
        struct tcb *c = &s->tcbs[i];
        c->slot = i;
        c->base.id = i;
        c->stack = s;
        c->rxq = &s->rxsegs[(size_t)i * s->cfg.rcv_max_pkts];
        c->hash_next = i + 1 < n ? i + 1 : USTACK_NONE;
    }
    s->free_head = 0;
    return s;
oom:
    snprintf(err, err_bytes, "ustack: out of memory");
    return NULL;
}

static void tcb_free_held(struct ustack *s, struct tcb *c) {
    for (uint32_t i = 0; i < c->rxq_count; i++) s->io->pkt_free(s->io_ctx, c->rxq[i].pkt);
    c->rxq_count = 0;
}

void ustack_destroy(struct ustack *s) {
    if (!s) return;
    ustack_tx_flush(s);
    if (s->tcbs) {
        for (uint32_t i = 0; i < s->cfg.max_conns; i++)
            if (s->tcbs[i].in_use) tcb_free_held(s, &s->tcbs[i]);
    }
    if (s->arp_q) arp_destroy_pending(s);
    free(s->tcbs);
    free(s->rxsegs);
    free(s->buckets);
    free(s->arp);
    free(s->arp_q);
    free(s);
}

void ustack_tx_push(struct ustack *s, struct ustack_pkt *pkt) {
    if (s->tx_count == USTACK_TX_BATCH) ustack_tx_flush(s);
    s->tx_batch[s->tx_count++] = pkt;
    s->stats.tx_frames++;
}

void ustack_tx_flush(struct ustack *s) {
    if (s->tx_count == 0) return;
    uint16_t n = s->tx_count;
    s->tx_count = 0; /* before the call: a release callback may not see stale frames */
    s->io->tx_burst(s->io_ctx, s->tx_batch, n);
}

void ustack_timer_hint(struct ustack *s, uint64_t at_us) {
    if (at_us && at_us < s->next_timer_us) s->next_timer_us = at_us;
}

void ustack_defer(struct ustack *s, struct tcb *c) {
    if (c->on_defer_list) return;
    c->on_defer_list = true;
    c->defer_next = USTACK_NONE;
    if (s->defer_tail == USTACK_NONE) s->defer_head = c->slot;
    else s->tcbs[s->defer_tail].defer_next = c->slot;
    s->defer_tail = c->slot;
}

void ustack_run_deferred(struct ustack *s) {
    if (s->in_deferred) return;
    s->in_deferred = true;
    for (;;) {
        while (s->defer_head != USTACK_NONE) {
            struct tcb *c = &s->tcbs[s->defer_head];
            s->defer_head = c->defer_next;
            if (s->defer_head == USTACK_NONE) s->defer_tail = USTACK_NONE;
            c->on_defer_list = false;
            tcb_progress(c);
        }
        ustack_tx_flush(s); /* may run release callbacks, which may defer more work */
        if (s->defer_head == USTACK_NONE) break;
    }
    s->in_deferred = false;
}

void ustack_input(struct ustack *s, struct ustack_pkt **pkts, uint16_t n, uint64_t now_us) {
    if (now_us > s->now_us) s->now_us = now_us;
    /* Callbacks run from here (received, accepted) may call backend ops: they only queue
     * work until the frames are processed. */
    bool outer = !s->in_deferred;
    s->in_deferred = true;
    for (uint16_t i = 0; i < n; i++) {
        s->stats.rx_frames++;
        eth_input(s, pkts[i]);
    }
    if (outer) s->in_deferred = false;
    ustack_run_deferred(s);
}

void ustack_poll(struct ustack *s, uint64_t now_us) {
    if (now_us > s->now_us) s->now_us = now_us;
    if (s->now_us >= s->next_timer_us && !s->in_deferred) {
        s->in_deferred = true;
        s->next_timer_us = UINT64_MAX;
        for (uint32_t i = 0; i < s->slots_high; i++) { /* slots above were never used */
            struct tcb *c = &s->tcbs[i];
            if (c->in_use) tcp_timers(c, s->now_us);
        }
        arp_poll(s);
        s->in_deferred = false;
    }
    ustack_run_deferred(s);
}

uint64_t ustack_next_timer_us(const struct ustack *s) { return s->next_timer_us; }

void ustack_stats(const struct ustack *s, struct ustack_stats *out) { *out = s->stats; }
