/* uring_sock.c - kernel sockets driven by the shard's io_uring (the default backend).
 *
 * Per shard: one SO_REUSEPORT listener (the kernel spreads connections over the shards'
 * listeners), kept armed with one multishot ACCEPT. Per connection: one multishot RECV
 * that picks its buffer from a provided-buffer ring registered with the shard's ring
 * (so an idle connection pins no receive memory), and at most one send in flight: the
 * head of a FIFO of struct net_send. A send is SENDMSG over the user's iovec list, or
 * SENDMSG_ZC when it is at least zc_threshold_bytes; a zero-copy send's `done` runs on
 * its notification CQE, when the kernel has let go of the pages. Short sends advance the
 * iovec in place and resubmit. Every socket gets TCP_NODELAY.
 *
 * Zero copy only pays off when the pages go to a NIC. Delivered on this host (loopback,
 * or the host's own address) the kernel copies them anyway (skb_copy_ubufs) and the
 * notification CQE is pure overhead: with 4 tailing consumers on loopback the broker
 * delivered 1152 MB/s with SENDMSG_ZC and 1643 MB/s without (perf/results/zc-local.md). So
 * with zc_skip_local_peers a connection whose peer is local (checked once, at accept or
 * connect) always uses SENDMSG.
 *
 * Received bytes are handed to the user in the callback and the buffer goes straight
 * back to the ring, so the ring only runs dry when the shard falls behind; then the
 * kernel ends the multishot recv with ENOBUFS and it is re-armed once the CQEs ahead of
 * it (which returned their buffers) have been processed.
 *
 * Close: shutdown(2) ends the multishot recv and any pending send; the fd is closed and
 * the user's `closed` runs only when no operation of the connection is still in the
 * kernel, so a uring_op never outlives its connection slot. Connection slots are a fixed
 * array with a free list, sized max_conns at create: a full table refuses the accept.
 *
 * Stopping the listener: shutdown(2) takes it out of LISTEN at once (its accept backlog
 * is reset then, by the broker that is going away) before the multishot ACCEPT is
 * cancelled. close(2) alone is not enough: an ACCEPT still in the kernel holds a
 * reference to the socket, so it stays in the SO_REUSEPORT group, accepting, until the
 * ring is torn down -- which the kernel does asynchronously after the process exits. A
 * broker restarted on the same port would then share it with that orphan listener:
 * connections the kernel hashed onto it were reset when it finally went away.
 *
 * Client side (the load generator): connect takes a slot, makes a non-blocking socket
 * and submits one IORING_OP_CONNECT (the address lives in the slot until it completes);
 * on success the connection is armed exactly like an accepted one. */
#include "dataplane/net/uring_sock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_snd_wnd (glibc's lacks it) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hw/log.h"
#include "hw/uring_op.h"

#define NO_SLOT UINT32_MAX
/* SENDMSG_ZC only to a peer advertising at least this receive window (see
 * peer_window_allows_zc). */
#define ZC_MIN_PEER_WINDOW_BYTES (64u * 1024u)

struct uconn {
    struct net_conn base;
    struct net_uring *owner;
    int fd;
    struct uring_op recv_op;
    struct uring_op send_op;
    struct uring_op connect_op;
    struct sockaddr_in connect_addr;
    void (*connected)(struct net_conn *c, int status);
    struct msghdr msg;
    struct net_send *send_head;
    struct net_send *send_tail;
    int close_reason;
    int send_error;
    uint32_t next_free;
    bool in_use;
    bool recv_armed;
    bool recv_paused;
    bool send_active;
    bool send_zc;
    bool local_peer;             /* peer on this host: no SENDMSG_ZC (zc_skip_local_peers) */
    bool zc_notif_pending;
    bool connecting;
    bool closing;
};

struct listener {
    struct uring_op accept_op;
    struct net_uring *owner;
    int fd;
    bool armed;
    bool stopping;
    bool rearm_pending;
};

struct net_uring {
    struct net_backend base;
    struct net_uring_config cfg;
    struct io_uring_buf_ring *buf_ring;
    size_t buf_ring_bytes;
    int buf_mask;
    bool buf_ring_registered;
    bool zc_supported;
    struct uconn *conns;
    uint32_t free_head;
    uint32_t live_conns;
    struct listener listener;
    bool has_listener;
    struct net_uring_stats stats;
    struct log_ratelimit refuse_rl;
    struct log_ratelimit error_rl;
};

static struct io_uring_sqe *get_sqe(struct net_uring *nu) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(nu->cfg.ring);
    if (!sqe) {
        io_uring_submit(nu->cfg.ring); /* SQ full: flush it, then there is room */
        sqe = io_uring_get_sqe(nu->cfg.ring);
    }
    assert(sqe);
    return sqe;
}

/* ---- listener ---------------------------------------------------------------------- */

static void accept_complete(struct uring_op *op, int32_t res, uint32_t flags);

static void arm_accept(struct listener *l) {
    assert(!l->armed && !l->stopping);
    struct io_uring_sqe *sqe = get_sqe(l->owner);
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    uring_op_attach(sqe, &l->accept_op);
    l->armed = true;
}

static void recv_arm(struct uconn *c);

static struct uconn *slot_take(struct net_uring *nu) {
    if (nu->free_head == NO_SLOT) return NULL;
    struct uconn *c = &nu->conns[nu->free_head];
    assert(!c->in_use);
    nu->free_head = c->next_free;
    uint32_t id = c->base.id;
    memset(c, 0, sizeof *c);
    c->base.id = id;
    c->owner = nu;
    c->fd = -1;
    c->in_use = true;
    c->next_free = NO_SLOT;
    nu->live_conns++;
    return c;
}

static void slot_give_back(struct net_uring *nu, struct uconn *c) {
    assert(c->in_use && nu->live_conns > 0);
    c->in_use = false;
    c->next_free = nu->free_head;
    nu->free_head = c->base.id;
    nu->live_conns--;
}

/* The peer is on this host: a loopback address, or the same address as ours. */
static bool peer_is_local(int fd) {
    struct sockaddr_storage peer, self;
    socklen_t peer_len = sizeof peer, self_len = sizeof self;
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0 ||
        getsockname(fd, (struct sockaddr *)&self, &self_len) != 0)
        return false;
    if (peer.ss_family == AF_INET && self.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
        const struct sockaddr_in *s = (const struct sockaddr_in *)&self;
        return (ntohl(p->sin_addr.s_addr) >> 24) == 127 || p->sin_addr.s_addr == s->sin_addr.s_addr;
    }
    if (peer.ss_family == AF_INET6 && self.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&self;
        if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && p->sin6_addr.s6_addr[12] == 127) return true;
        return memcmp(&p->sin6_addr, &s->sin6_addr, sizeof p->sin6_addr) == 0;
    }
    return false;
}

static void note_local_peer(struct net_uring *nu, struct uconn *c) {
    c->local_peer = nu->cfg.zc_skip_local_peers && peer_is_local(c->fd);
    if (c->local_peer) nu->stats.conns_local_peer++;
}

static void on_new_socket(struct net_uring *nu, int fd) {
    struct uconn *c = slot_take(nu);
    if (!c) {
        close(fd);
        nu->stats.refused++;
        if (log_ratelimit_ok(&nu->refuse_rl))
            log_warn("conn_refused", "reason=slots_full max_conns=%u", nu->cfg.max_conns);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    note_local_peer(nu, c);
    nu->stats.accepted++;
    if (nu->base.events.accepted(nu->base.events_ctx, &c->base) != 0) {
        close(fd);
        nu->stats.refused++;
        slot_give_back(nu, c);
        return;
    }
    recv_arm(c);
}

static void accept_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    struct listener *l = container_of(op, struct listener, accept_op);
    struct net_uring *nu = l->owner;
    if (res >= 0) {
        if (l->stopping) close(res);
        else on_new_socket(nu, res);
    } else if (res != -ECANCELED && !l->stopping && log_ratelimit_ok(&nu->error_rl)) {
        log_warn("accept_error", "err=%s", strerror(-res));
    }
    if (flags & IORING_CQE_F_MORE) return;
    l->armed = false;
    if (l->stopping) {
        close(l->fd);
        l->fd = -1;
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM) {
        l->rearm_pending = true; /* out of fds: retry on the next tick, do not spin */
    } else {
        arm_accept(l);
    }
}

static int resolve_ipv4(const char *host, uint16_t port, struct sockaddr_in *out) {
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons(port);
    if (inet_pton(AF_INET, host, &out->sin_addr) == 1) return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return -1;
    out->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

static int uring_listen(struct net_backend *b, const char *host, uint16_t port) {
    struct net_uring *nu = (struct net_uring *)b;
    if (nu->has_listener) return -EBUSY;
    struct sockaddr_in addr;
    if (resolve_ipv4(host, port, &addr) != 0) return -EADDRNOTAVAIL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(fd, nu->cfg.listen_backlog) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &len);
    nu->listener = (struct listener){.owner = nu, .fd = fd};
    nu->listener.accept_op.complete = accept_complete;
    nu->has_listener = true;
    arm_accept(&nu->listener);
    return ntohs(bound.sin_port);
}

static void uring_stop_listening(struct net_backend *b) {
    struct net_uring *nu = (struct net_uring *)b;
    struct listener *l = &nu->listener;
    if (!nu->has_listener || l->stopping) return;
    l->stopping = true;
    if (l->fd >= 0) shutdown(l->fd, SHUT_RDWR); /* out of LISTEN now, not at ring exit */
    if (l->armed) {
        struct io_uring_sqe *sqe = get_sqe(nu);
        io_uring_prep_cancel(sqe, &l->accept_op, 0);
        uring_op_attach(sqe, NULL);
    } else if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

/* ---- receive ----------------------------------------------------------------------- */

static void recv_complete(struct uring_op *op, int32_t res, uint32_t flags);
static void close_begin(struct uconn *c, int reason);
static void close_finish_if_quiet(struct uconn *c);

static void recv_arm(struct uconn *c) {
    assert(!c->recv_armed && !c->closing);
    struct io_uring_sqe *sqe = get_sqe(c->owner);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = c->owner->cfg.buf_group;
    c->recv_op.complete = recv_complete;
    uring_op_attach(sqe, &c->recv_op);
    c->recv_armed = true;
}

static void buffer_recycle(struct net_uring *nu, uint16_t bid) {
    uint8_t *addr = nu->cfg.recv_buffers[bid];
    io_uring_buf_ring_add(nu->buf_ring, addr, nu->cfg.recv_buffer_bytes, bid, nu->buf_mask, 0);
    io_uring_buf_ring_advance(nu->buf_ring, 1);
}

static void recv_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    struct uconn *c = container_of(op, struct uconn, recv_op);
    struct net_uring *nu = c->owner;
    if (res > 0) {
        assert(flags & IORING_CQE_F_BUFFER);
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        assert(bid < nu->cfg.recv_buffer_count);
        assert((uint32_t)res <= nu->cfg.recv_buffer_bytes);
        nu->stats.recv_bytes += (uint64_t)res;
        if (!c->closing) {
            const uint8_t *data = nu->cfg.recv_buffers[bid];
            nu->base.events.received(nu->base.events_ctx, &c->base, data, (size_t)res);
        }
        buffer_recycle(nu, bid);
    } else if (res == -ENOBUFS) {
        nu->stats.recv_enobufs++;
    }
    if (flags & IORING_CQE_F_MORE) return;
    c->recv_armed = false;
    if (c->closing) {
        close_finish_if_quiet(c);
    } else if (res == 0) {
        close_begin(c, 0); /* the peer closed */
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        close_begin(c, res);
    } else if (!c->recv_paused) {
        recv_arm(c);
    }
}

static void uring_recv_pause(struct net_backend *b, struct net_conn *conn) {
    struct uconn *c = (struct uconn *)conn;
    if (c->recv_paused || c->closing) return;
    c->recv_paused = true;
    if (c->recv_armed) {
        struct io_uring_sqe *sqe = get_sqe((struct net_uring *)b);
        io_uring_prep_cancel(sqe, &c->recv_op, 0);
        uring_op_attach(sqe, NULL);
    }
}

static void uring_recv_resume(struct net_backend *b, struct net_conn *conn) {
    struct uconn *c = (struct uconn *)conn;
    if (!c->recv_paused) return;
    c->recv_paused = false;
    if (!c->recv_armed && !c->closing) recv_arm(c);
}

/* ---- send -------------------------------------------------------------------------- */

static void send_complete(struct uring_op *op, int32_t res, uint32_t flags);

/* Whether the peer's advertised receive window is wide enough for SENDMSG_ZC. With a
 * tiny window (a client with SO_RCVBUF 4096 advertises about 1.8 KiB) the kernel
 * (6.18) takes a megabyte of a zero-copy send into the socket, sends some 100-200 KiB
 * of it and then stops: the persist timer fires but no more data leaves, so the
 * notification never comes. Plain SENDMSG to the same peer completes, and so does
 * SENDMSG_ZC to a peer with a wide window. The window is read per zero-copy-sized send
 * (one non-blocking getsockopt); a kernel whose tcp_info has no tcpi_snd_wnd allows
 * zero copy, as before. A peer whose window is only momentarily small (it stopped
 * reading) gets a copying send for that one send; the next is decided again. */
static bool peer_window_allows_zc(struct uconn *c) {
    struct tcp_info info;
    socklen_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return true;
    if (len < offsetof(struct tcp_info, tcpi_snd_wnd) + sizeof info.tcpi_snd_wnd) return true;
    if (info.tcpi_snd_wnd >= ZC_MIN_PEER_WINDOW_BYTES) return true;
    c->owner->stats.sends_zc_narrow_window++;
    return false;
}

static void send_start(struct uconn *c) {
    struct net_uring *nu = c->owner;
    struct net_send *s = c->send_head;
    assert(s && !c->send_active && !c->zc_notif_pending && s->bytes_left > 0);
    memset(&c->msg, 0, sizeof c->msg);
    c->msg.msg_iov = s->iov;
    c->msg.msg_iovlen = (size_t)s->iov_count;
    c->send_zc = nu->zc_supported && nu->cfg.zc_threshold_bytes > 0 && !c->local_peer &&
                 s->bytes_left >= nu->cfg.zc_threshold_bytes && peer_window_allows_zc(c);
    struct io_uring_sqe *sqe = get_sqe(nu);
    if (c->send_zc) {
        io_uring_prep_sendmsg_zc(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
        nu->stats.sends_zc++;
    } else {
        io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    }
    nu->stats.sends++;
    c->send_op.complete = send_complete;
    uring_op_attach(sqe, &c->send_op);
    c->send_active = true;
}

/* Drop n sent bytes from the front of s's iovec list. */
static void send_advance(struct net_send *s, size_t n) {
    assert(n <= s->bytes_left);
    s->bytes_left -= n;
    while (n > 0) {
        assert(s->iov_count > 0);
        if (n >= s->iov[0].iov_len) {
            n -= s->iov[0].iov_len;
            s->iov++;
            s->iov_count--;
        } else {
            s->iov[0].iov_base = (uint8_t *)s->iov[0].iov_base + n;
            s->iov[0].iov_len -= n;
            n = 0;
        }
    }
    while (s->iov_count > 0 && s->iov[0].iov_len == 0) { /* skip empty fragments */
        s->iov++;
        s->iov_count--;
    }
}

static struct net_send *send_pop(struct uconn *c) {
    struct net_send *s = c->send_head;
    c->send_head = s->next;
    if (!c->send_head) c->send_tail = NULL;
    s->next = NULL;
    return s;
}

/* Complete finished or failed sends and start the next. Runs only when the kernel holds
 * no send of this connection. */
static void send_progress(struct uconn *c) {
    assert(!c->send_active && !c->zc_notif_pending);
    /* A done() callback may queue a send that starts at once (nested): stop then. */
    while (c->send_head && !c->send_active && !c->zc_notif_pending) {
        struct net_send *s = c->send_head;
        int status = c->send_error ? c->send_error : (c->closing ? -ECANCELED : 0);
        if (status == 0 && s->bytes_left > 0) {
            send_start(c);
            return;
        }
        send_pop(c);
        s->done(s, status); /* may queue another send or close: re-read the head */
    }
    if (c->closing && !c->send_active && !c->zc_notif_pending) close_finish_if_quiet(c);
}

static void send_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    struct uconn *c = container_of(op, struct uconn, send_op);
    if (flags & IORING_CQE_F_NOTIF) {
        assert(c->zc_notif_pending);
        c->zc_notif_pending = false;
        c->owner->stats.zc_notifications++;
    } else {
        assert(c->send_active);
        c->send_active = false;
        if (c->send_zc && (flags & IORING_CQE_F_MORE)) c->zc_notif_pending = true;
        if (res < 0) {
            if (!c->send_error) c->send_error = res;
            if (!c->closing) close_begin(c, res);
        } else {
            c->owner->stats.send_bytes += (uint64_t)res;
            send_advance(c->send_head, (size_t)res);
        }
    }
    if (!c->send_active && !c->zc_notif_pending) send_progress(c);
}

static int uring_send(struct net_backend *b, struct net_conn *conn, struct net_send *s) {
    struct uconn *c = (struct uconn *)conn;
    assert(s->iov_count > 0 && s->iov_count <= NET_SEND_MAX_IOV && s->done);
    if (c->closing) return -ECANCELED;
    size_t total = 0;
    for (int i = 0; i < s->iov_count; i++) total += s->iov[i].iov_len;
    s->bytes_left = total;
    s->next = NULL;
    if (c->send_tail) c->send_tail->next = s;
    else c->send_head = s;
    c->send_tail = s;
    (void)b;
    if (!c->send_active && !c->zc_notif_pending) send_progress(c);
    return 0;
}

/* ---- close ------------------------------------------------------------------------- */

static void close_finish_if_quiet(struct uconn *c) {
    if (!c->in_use || c->fd < 0) return; /* already finished by a nested call */
    assert(c->closing);
    if (c->recv_armed || c->send_active || c->zc_notif_pending || c->send_head ||
        c->connecting)
        return;
    struct net_uring *nu = c->owner;
    close(c->fd);
    c->fd = -1;
    nu->base.events.closed(nu->base.events_ctx, &c->base, c->close_reason);
    slot_give_back(nu, c);
}

static void close_begin(struct uconn *c, int reason) {
    if (c->closing) return;
    c->closing = true;
    c->close_reason = reason;
    shutdown(c->fd, SHUT_RDWR); /* ends the multishot recv and any pending send */
    if (!c->send_active && !c->zc_notif_pending) send_progress(c); /* cancels the queue */
    else close_finish_if_quiet(c);
}

static void uring_close(struct net_backend *b, struct net_conn *conn) {
    (void)b;
    close_begin((struct uconn *)conn, 0);
}

/* ---- connect (client side) -------------------------------------------------------- */

static void connect_complete(struct uring_op *op, int32_t res, uint32_t flags) {
    (void)flags;
    struct uconn *c = container_of(op, struct uconn, connect_op);
    assert(c->connecting);
    c->connecting = false;
    if (res == 0 && !c->closing) {
        c->owner->stats.connected++;
        note_local_peer(c->owner, c);
        recv_arm(c);
        c->connected(&c->base, 0);
        return;
    }
    int status = res < 0 ? res : -ECANCELED;
    if (!c->closing) {
        c->connected(&c->base, status);
        close_begin(c, status);
    } else {
        close_finish_if_quiet(c);
    }
}

static struct net_conn *uring_connect(struct net_backend *b, const char *host, uint16_t port,
                                      void *user,
                                      void (*connected)(struct net_conn *c, int status),
                                      int *err) {
    struct net_uring *nu = (struct net_uring *)b;
    assert(connected);
    struct sockaddr_in addr;
    if (resolve_ipv4(host, port, &addr) != 0) {
        *err = -EADDRNOTAVAIL;
        return NULL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    struct uconn *c = slot_take(nu);
    if (!c) {
        close(fd);
        *err = -EMFILE;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->base.user = user;
    c->connected = connected;
    c->connect_addr = addr;
    c->connecting = true;
    c->connect_op.complete = connect_complete;
    struct io_uring_sqe *sqe = get_sqe(nu);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->connect_addr, sizeof c->connect_addr);
    uring_op_attach(sqe, &c->connect_op);
    return &c->base;
}

/* ---- backend ----------------------------------------------------------------------- */

static unsigned uring_conn_count(const struct net_backend *b) {
    return ((const struct net_uring *)b)->live_conns;
}

static void uring_tick(struct net_backend *b, uint64_t now_ms) {
    (void)now_ms;
    struct net_uring *nu = (struct net_uring *)b;
    struct listener *l = &nu->listener;
    if (nu->has_listener && l->rearm_pending && !l->stopping) {
        l->rearm_pending = false;
        arm_accept(l);
    }
}

static void uring_destroy(struct net_backend *b) {
    struct net_uring *nu = (struct net_uring *)b;
    for (uint32_t i = 0; i < nu->cfg.max_conns; i++)
        if (nu->conns[i].in_use && nu->conns[i].fd >= 0) close(nu->conns[i].fd);
    if (nu->has_listener && nu->listener.fd >= 0) {
        shutdown(nu->listener.fd, SHUT_RDWR); /* an ACCEPT in flight would keep it open */
        close(nu->listener.fd);
    }
    if (nu->buf_ring_registered) io_uring_unregister_buf_ring(nu->cfg.ring, nu->cfg.buf_group);
    if (nu->buf_ring) munmap(nu->buf_ring, nu->buf_ring_bytes);
    free(nu->conns);
    free(nu);
}

/* getpeername(2) on demand: a group member's host for DescribeGroups (JoinGroup only). */
static int uring_peer_name(struct net_backend *b, struct net_conn *nc, char *out,
                           size_t out_bytes) {
    (void)b;
    struct uconn *c = (struct uconn *)nc;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
    const void *addr = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                                 : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (!inet_ntop(ss.ss_family, addr, out, (socklen_t)out_bytes)) return -errno;
    return 0;
}

static const struct net_backend_ops uring_ops = {
    .listen = uring_listen,
    .stop_listening = uring_stop_listening,
    .send = uring_send,
    .recv_pause = uring_recv_pause,
    .recv_resume = uring_recv_resume,
    .close = uring_close,
    .conn_count = uring_conn_count,
    .tick = uring_tick,
    .destroy = uring_destroy,
    .connect = uring_connect,
    .peer_name = uring_peer_name,
};

static int setup_buf_ring(struct net_uring *nu) {
    uint32_t count = nu->cfg.recv_buffer_count;
    nu->buf_ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, nu->buf_ring_bytes, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    nu->buf_ring = mem;
    io_uring_buf_ring_init(nu->buf_ring);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)mem,
        .ring_entries = count,
        .bgid = nu->cfg.buf_group,
    };
    int rc = io_uring_register_buf_ring(nu->cfg.ring, &reg, 0);
    if (rc != 0) return rc;
    nu->buf_ring_registered = true;
    nu->buf_mask = io_uring_buf_ring_mask(count);
    for (uint32_t bid = 0; bid < count; bid++)
        io_uring_buf_ring_add(nu->buf_ring,
                              nu->cfg.recv_buffers[bid],
                              nu->cfg.recv_buffer_bytes, (uint16_t)bid, nu->buf_mask, (int)bid);
    io_uring_buf_ring_advance(nu->buf_ring, (int)count);
    return 0;
}

static bool probe_zc(struct io_uring *ring) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (!probe) return false;
    bool ok = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
    io_uring_free_probe(probe);
    return ok;
}

struct net_backend *net_uring_create(const struct net_uring_config *cfg,
                                     const struct net_events *events, void *events_ctx,
                                     char *err, size_t err_bytes) {
    uint32_t count = cfg->recv_buffer_count;
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || !cfg->recv_buffers ||
        cfg->recv_buffer_bytes == 0 || cfg->max_conns == 0) {
        snprintf(err, err_bytes, "net_uring: bad buffer or connection sizes");
        return NULL;
    }
    struct net_uring *nu = calloc(1, sizeof *nu);
    if (!nu) goto oom;
    nu->cfg = *cfg;
    if (nu->cfg.listen_backlog <= 0) nu->cfg.listen_backlog = 4096;
    nu->base.ops = &uring_ops;
    nu->base.events = *events;
    nu->base.events_ctx = events_ctx;
    nu->base.name = "io_uring";
    nu->refuse_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 1);
    nu->error_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 1);
    nu->conns = calloc(cfg->max_conns, sizeof nu->conns[0]);
    if (!nu->conns) goto oom;
    for (uint32_t i = 0; i < cfg->max_conns; i++) {
        nu->conns[i].base.id = i;
        nu->conns[i].fd = -1;
        nu->conns[i].next_free = i + 1 < cfg->max_conns ? i + 1 : NO_SLOT;
    }
    nu->free_head = 0;
    int rc = setup_buf_ring(nu);
    if (rc != 0) {
        snprintf(err, err_bytes, "net_uring: provided buffer ring: %s", strerror(-rc));
        uring_destroy(&nu->base);
        return NULL;
    }
    nu->zc_supported = probe_zc(cfg->ring);
    return &nu->base;
oom:
    snprintf(err, err_bytes, "net_uring: out of memory");
    if (nu) free(nu->conns);
    free(nu);
    return NULL;
}

void net_uring_stats(const struct net_backend *b, struct net_uring_stats *out) {
    *out = ((const struct net_uring *)b)->stats;
}
