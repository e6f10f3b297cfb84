/* ustack_backend.c - the net_backend (net.h) on a userspace stack.
 *
 * The backend is the stack itself (struct ustack embeds its struct net_backend), so the
 * ops are thin: they find the tcb (net_conn is its first member), change its state, send
 * what that allows at once (frames go to the driver before the op returns) and leave the
 * rest to the deferred-work loop (ustack.c). Like the kernel backend, an op never calls a
 * user callback: received, done, closed and connected run only from ustack_input and
 * ustack_poll (the driver's loop) -- so the Kafka layer is never re-entered from inside
 * its own call to send/resume/close, for this or any other connection.
 *
 * What the ops mean here:
 *   listen      one of USTACK_MAX_LISTENERS (host: our address or 0.0.0.0); returns the
 *               port (port 0 picks one in the ephemeral range) or -errno
 *   send        the net_send joins the connection's send queue; done runs when the peer
 *               has ACKed all its bytes and the driver released every frame that held
 *               them (0), or when the connection closes (-ECANCELED / the reset reason)
 *   recv_pause  received segments are held by the connection (bounded) and the window we
 *               advertise shrinks with them, down to zero; after resume the next poll
 *               delivers what was held and reopens the window (a window update is sent)
 *   close       graceful, as shutdown(2): sends already handed over finish (done 0 when
 *               ACKed), sends still waiting get -ECANCELED, the FIN follows the data;
 *               `closed` runs from a later input/poll once every send has completed. A
 *               peer that takes nothing for 10 s is reset (sends: -ETIMEDOUT)
 *   connect     an active open from an ephemeral port; connected(0) on ESTABLISHED,
 *               connected(-errno) then closed on RST/timeout
 *   closing_count  connections the user no longer sees that are still closing on the
 *               wire: FIN_WAIT_1/2, CLOSING, LAST_ACK. `closed` runs as soon as the sends
 *               are done, before our FIN is ACKed (as close(2) returns before the kernel's
 *               FIN is), and only this stack retransmits that FIN and ACKs the peer's: a
 *               client that exits (loadgen) polls until this is 0 (bounded: the close
 *               linger, the FIN_WAIT_2 timeout). TIME_WAIT is not counted: our last ACK
 *               has gone, only its loss would still need us
 *   tick        ustack_poll(now_ms * 1000): use one clock for input, poll and tick. */
#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>

#include "dataplane/net/ustack_internal.h"

static struct ustack *stack_of(struct net_backend *b) { return (struct ustack *)b; }

static int parse_ipv4(const char *host, uint32_t *out) {
    if (!host || !*host) {
        *out = 0;
        return 0;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) return -EINVAL;
    *out = ntohl(a.s_addr);
    return 0;
}

static int ub_listen(struct net_backend *b, const char *host, uint16_t port) {
    struct ustack *s = stack_of(b);
    uint32_t ip;
    if (parse_ipv4(host, &ip) != 0 || (ip != 0 && ip != s->cfg.ip)) return -EADDRNOTAVAIL;
    if (port == 0) port = s->cfg.ephemeral_port_lo + (uint16_t)(s->isn_secret % 1000u);
    int free_i = -1;
    for (uint32_t i = 0; i < USTACK_MAX_LISTENERS; i++) {
        if (s->listeners[i].active && s->listeners[i].port == port) return -EADDRINUSE;
        if (!s->listeners[i].active && free_i < 0) free_i = (int)i;
    }
    if (free_i < 0) return -ENOSPC;
    s->listeners[free_i] = (struct listener){.active = true, .ip = ip, .port = port};
    return port; /* as the kernel backend: the port listened on (port 0: one chosen) */
}

static void ub_stop_listening(struct net_backend *b) {
    struct ustack *s = stack_of(b);
    for (uint32_t i = 0; i < USTACK_MAX_LISTENERS; i++) s->listeners[i].active = false;
}

static int ub_send(struct net_backend *b, struct net_conn *nc, struct net_send *snd) {
    struct ustack *s = stack_of(b);
    struct tcb *c = (struct tcb *)nc;
    assert(c->in_use && snd->iov_count >= 1 && snd->iov_count <= NET_SEND_MAX_IOV);
    if (!c->user_attached || c->close_requested || c->connect_pending) return -EPIPE;
    size_t total = 0;
    for (int i = 0; i < snd->iov_count; i++) total += snd->iov[i].iov_len;
    if (total > (1u << 30)) return -EMSGSIZE;
    snd->bytes_left = total;
    snd->next = NULL;
    if (c->wait_tail) c->wait_tail->next = snd;
    else c->wait_head = snd;
    c->wait_tail = snd;
    tcb_fill_ring(c);
    if (c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT) tcp_output(c);
    ustack_tx_flush(s);
    return 0;
}

static void ub_recv_pause(struct net_backend *b, struct net_conn *nc) {
    (void)b;
    ((struct tcb *)nc)->user_paused = true;
}

static void ub_recv_resume(struct net_backend *b, struct net_conn *nc) {
    struct ustack *s = stack_of(b);
    struct tcb *c = (struct tcb *)nc;
    if (!c->user_paused) return;
    c->user_paused = false;
    ustack_defer(s, c); /* held bytes are delivered, and the window reopened, by the next
                           ustack_input/ustack_poll */
}

static void ub_close(struct net_backend *b, struct net_conn *nc) {
    struct ustack *s = stack_of(b);
    struct tcb *c = (struct tcb *)nc;
    if (!c->user_attached) return;
    tcb_begin_close(c, 0); /* FIN after the data; `closed` from a later poll */
    ustack_tx_flush(s);
}

static unsigned ub_conn_count(const struct net_backend *b) {
    return ((const struct ustack *)b)->user_conns;
}

static bool closing_on_the_wire(const struct tcb *c) {
    switch (c->state) {
    case TCP_FIN_WAIT_1:
    case TCP_FIN_WAIT_2:
    case TCP_CLOSING:
    case TCP_LAST_ACK:
        return true;
    default:
        return false;
    }
}

static unsigned ub_closing_count(const struct net_backend *b) {
    const struct ustack *s = (const struct ustack *)b;
    unsigned n = 0;
    for (uint32_t i = 0; i < s->slots_high; i++) { /* slots above were never used */
        const struct tcb *c = &s->tcbs[i];
        if (c->in_use && !c->user_attached && closing_on_the_wire(c)) n++;
    }
    assert(n <= s->conn_count);
    return n;
}

static void ub_tick(struct net_backend *b, uint64_t now_ms) {
    ustack_poll(stack_of(b), now_ms * 1000u);
}

static void ub_destroy(struct net_backend *b) { ustack_destroy(stack_of(b)); }

static uint16_t pick_port(struct ustack *s, uint32_t rip, uint16_t rport) {
    uint32_t span = (uint32_t)s->cfg.ephemeral_port_hi - s->cfg.ephemeral_port_lo + 1;
    for (uint32_t tries = 0; tries < span; tries++) {
        uint16_t p = s->next_ephemeral;
        s->next_ephemeral = p == s->cfg.ephemeral_port_hi ? s->cfg.ephemeral_port_lo
                                                          : (uint16_t)(p + 1);
        if (!tcb_lookup(s, s->cfg.ip, p, rip, rport)) return p;
    }
    return 0;
}

static struct net_conn *ub_connect(struct net_backend *b, const char *host, uint16_t port,
                                   void *user, void (*connected)(struct net_conn *c, int status),
                                   int *err) {
    struct ustack *s = stack_of(b);
    uint32_t rip;
    if (parse_ipv4(host, &rip) != 0 || rip == 0 || port == 0) {
        *err = -EINVAL;
        return NULL;
    }
    uint16_t lport = pick_port(s, rip, port);
    if (!lport) {
        *err = -EADDRNOTAVAIL;
        return NULL;
    }
    struct tcb *c = tcb_alloc(s, s->cfg.ip, lport, rip, port);
    if (!c) {
        *err = -ENOBUFS;
        return NULL;
    }
    c->base.user = user;
    c->connected = connected;
    c->connect_pending = true;
    c->user_attached = true;
    s->user_conns++;
    c->state = TCP_SYN_SENT;
    c->rcv_wscale = s->wscale_local;
    c->iss = tcp_isn(s, c);
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->snd_tail = c->iss + 1;
    c->rtt_timing = true;
    c->rtt_seq = c->iss + 1;
    c->rtt_start_us = s->now_us;
    tcp_send_syn(c, false);
    ustack_tx_flush(s);
    return &c->base;
}

static int ub_peer_name(struct net_backend *b, struct net_conn *nc, char *out, size_t out_bytes) {
    (void)b;
    struct tcb *c = (struct tcb *)nc;
    struct in_addr a = {.s_addr = htonl(c->remote_ip)};
    if (!inet_ntop(AF_INET, &a, out, (socklen_t)out_bytes)) return -ENOSPC;
    return 0;
}

static const struct net_backend_ops ustack_ops = {
    .listen = ub_listen,
    .stop_listening = ub_stop_listening,
    .send = ub_send,
    .recv_pause = ub_recv_pause,
    .recv_resume = ub_recv_resume,
    .close = ub_close,
    .conn_count = ub_conn_count,
    .closing_count = ub_closing_count,
    .tick = ub_tick,
    .destroy = ub_destroy,
    .connect = ub_connect,
    .peer_name = ub_peer_name,
};

struct net_backend *ustack_backend_create(struct ustack *s, const struct net_events *events,
                                          void *events_ctx, char *err, size_t err_bytes) {
    if (!s || !events || !events->accepted || !events->received || !events->closed) {
        snprintf(err, err_bytes, "ustack backend: stack and all events are required");
        return NULL;
    }
    if (s->backend_made) {
        snprintf(err, err_bytes, "ustack backend: the stack already has a backend");
        return NULL;
    }
    s->backend_made = true;
    s->nb.ops = &ustack_ops;
    s->nb.events = *events;
    s->nb.events_ctx = events_ctx;
    s->nb.name = "ustack";
    return &s->nb;
}

struct ustack *ustack_backend_stack(struct net_backend *b) {
    assert(b->ops == &ustack_ops);
    return stack_of(b);
}
