/* net.h - the network backend interface: byte streams, no Kafka.
 *
 * A backend gives a shard listeners and connections. Everything happens on the shard's
 * thread: the backend's completions arrive through the shard loop and it calls back into
 * its user (the Kafka connection layer) through struct net_events. The interface is
 * small so that a second backend (DPDK with a userspace TCP stack) can implement it:
 *
 *   listen        bind host:port (one listener per shard; the kernel backend uses
 *                 SO_REUSEPORT so every shard listens on the same port)
 *   accepted      a new connection; the user may refuse it (returns -1)
 *   received      bytes that arrived, valid only during the call: the backend lends its
 *                 receive buffer and takes it back when the callback returns
 *   recv_pause/   stop / restart delivering bytes (the user's bound on in-flight
 *   recv_resume   requests); bytes already on their way may still arrive once after pause
 *   send          queue an iovec list of fragments; sends leave in queue order; `done`
 *                 runs once when the kernel no longer needs the bytes (after the
 *                 zero-copy notification for a SEND_ZC), with 0 or -errno. The user drops
 *                 its fragment references there.
 *   close         shut the connection; queued sends complete with -ECANCELED; `closed`
 *                 runs exactly once per connection, after which it must not be touched
 *   closing_count (optional) connections whose `closed` has run but whose close the
 *                 backend is still carrying out on the wire: with a userspace stack, our
 *                 FIN not yet ACKed or the peer's FIN not yet received. Only the process
 *                 can finish those (a kernel finishes them after the socket is gone, so the
 *                 kernel backend leaves the op NULL: 0); a client that destroys the backend
 *                 before it is 0 leaves its peers half-open -- ESTABLISHED with a lost FIN,
 *                 or in LAST_ACK with their FIN never ACKed.
 *   stop_listening  close the listeners (graceful shutdown); connections stay.
 *   tick          called by the shard about every few ms for the backend's timers.
 *   poll          (optional; poll-mode backends such as DPDK) receive and transmit what
 *                 is ready, run due timers; returns the work done (packets handled),
 *                 0 when idle. A shard whose backend has it calls it every loop
 *                 iteration and never blocks long in io_uring (shard.c: idle back-off).
 *   connect       (client side, used by the load generator) open a connection to
 *                 host:port; `connected(conn, status)` runs once when it is up (0: bytes
 *                 may be sent and `received` starts) or failed (-errno: `closed` follows).
 *                 A backend without client support leaves the op NULL.
 */
#ifndef SLUICE_DATAPLANE_NET_NET_H
#define SLUICE_DATAPLANE_NET_NET_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define NET_SEND_MAX_IOV 64

/* The public part of a connection; a backend embeds it first in its own struct. */
struct net_conn {
    void *user;      /* owned by the user of the backend */
    uint32_t id;     /* slot number, stable for the connection's life */
};

struct net_send {
    struct iovec *iov;     /* the user's array; the backend may advance it in place */
    int iov_count;         /* 1..NET_SEND_MAX_IOV */
    void (*done)(struct net_send *send, int status);
    void *user;
    /* backend bookkeeping */
    struct net_send *next;
    size_t bytes_left;
};

struct net_events {
    int (*accepted)(void *ctx, struct net_conn *conn);
    void (*received)(void *ctx, struct net_conn *conn, const uint8_t *data, size_t len);
    void (*closed)(void *ctx, struct net_conn *conn, int reason);
};

struct net_backend;

struct net_backend_ops {
    int (*listen)(struct net_backend *b, const char *host, uint16_t port);
    void (*stop_listening)(struct net_backend *b);
    int (*send)(struct net_backend *b, struct net_conn *c, struct net_send *s);
    void (*recv_pause)(struct net_backend *b, struct net_conn *c);
    void (*recv_resume)(struct net_backend *b, struct net_conn *c);
    void (*close)(struct net_backend *b, struct net_conn *c);
    unsigned (*conn_count)(const struct net_backend *b);
    unsigned (*closing_count)(const struct net_backend *b); /* optional (NULL: 0) */
    void (*tick)(struct net_backend *b, uint64_t now_ms); /* timers, retries */
    void (*destroy)(struct net_backend *b);
    struct net_conn *(*connect)(struct net_backend *b, const char *host, uint16_t port,
                                void *user, void (*connected)(struct net_conn *c, int status),
                                int *err);
    /* The peer's address as text ("127.0.0.1"); 0 or -errno. Optional (NULL: -ENOTSUP). */
    int (*peer_name)(struct net_backend *b, struct net_conn *c, char *out, size_t out_bytes);
    /* Poll-mode backends: handle what is ready; the work done (0: idle). Optional. */
    unsigned (*poll)(struct net_backend *b, uint64_t now_us);
};

struct net_backend {
    const struct net_backend_ops *ops;
    struct net_events events;
    void *events_ctx;
    const char *name;
};

static inline int net_listen(struct net_backend *b, const char *host, uint16_t port) {
    return b->ops->listen(b, host, port);
}
static inline void net_stop_listening(struct net_backend *b) { b->ops->stop_listening(b); }
static inline int net_send(struct net_backend *b, struct net_conn *c, struct net_send *s) {
    return b->ops->send(b, c, s);
}
static inline void net_recv_pause(struct net_backend *b, struct net_conn *c) {
    b->ops->recv_pause(b, c);
}
static inline void net_recv_resume(struct net_backend *b, struct net_conn *c) {
    b->ops->recv_resume(b, c);
}
static inline void net_close(struct net_backend *b, struct net_conn *c) { b->ops->close(b, c); }
static inline unsigned net_conn_count(const struct net_backend *b) {
    return b->ops->conn_count(b);
}
static inline unsigned net_closing_count(const struct net_backend *b) {
    return b->ops->closing_count ? b->ops->closing_count(b) : 0;
}
static inline void net_tick(struct net_backend *b, uint64_t now_ms) { b->ops->tick(b, now_ms); }
static inline void net_destroy(struct net_backend *b) { b->ops->destroy(b); }
static inline int net_peer_name(struct net_backend *b, struct net_conn *c, char *out,
                                size_t out_bytes) {
    if (!b->ops->peer_name) return -ENOTSUP;
    return b->ops->peer_name(b, c, out, out_bytes);
}
static inline bool net_polls(const struct net_backend *b) { return b->ops->poll != NULL; }
static inline unsigned net_poll(struct net_backend *b, uint64_t now_us) {
    return b->ops->poll ? b->ops->poll(b, now_us) : 0;
}
/* NULL with *err = -errno when no connection could be started (-ENOTSUP: no client side). */
static inline struct net_conn *net_connect(struct net_backend *b, const char *host,
                                           uint16_t port, void *user,
                                           void (*connected)(struct net_conn *c, int status),
                                           int *err) {
    if (!b->ops->connect) {
        *err = -ENOTSUP;
        return NULL;
    }
    return b->ops->connect(b, host, port, user, connected, err);
}

#endif
