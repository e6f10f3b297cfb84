/* ustack.h - a userspace TCP/IPv4 stack per shard, with no DPDK type in it.
 *
 * The stack sits between a packet driver (the DPDK port, or the in-memory wire of the
 * unit tests) and the Kafka connection layer, which it serves through the ordinary
 * net_backend interface of net.h. One stack per shard, used from the shard's thread only:
 * no locks, no threads, no allocation after create (connection slots, reassembly and send
 * bookkeeping, the ARP cache and its pending queue are all sized by ustack_config).
 *
 * The seam with the driver is struct ustack_io, a packet I/O interface:
 *   - received frames arrive through ustack_input(); the stack owns them from then on and
 *     gives each back with io->pkt_free() when done. In-order TCP payload is lent to the
 *     user straight from the received frame (no copy); out-of-order segments and bytes held
 *     while the user has paused receiving keep their frames until delivered (bounded per
 *     connection: that bound is what the advertised receive window is made of).
 *   - frames to send are taken with io->tx_alloc() (a linear buffer with room for the
 *     Ethernet+IPv4+TCP headers and, when the payload is copied, the payload), may carry
 *     external payload segments added with io->tx_attach() (zero copy: the user's iovec
 *     bytes; the driver calls the release callback once the NIC no longer needs them), and
 *     leave with io->tx_burst(). A user's net_send completes (done) only when all its bytes
 *     are ACKed by the peer and every frame that referenced them has been released.
 *   - the driver describes the port in struct ustack_port: MAC, MTU, checksum offloads
 *     (none on af_packet: the stack computes checksums in software then).
 *
 * Time is given by the caller, in microseconds of a monotonic clock (now_us); the stack
 * never reads a clock itself, so tests drive time by hand.
 *
 * When a connection is given up: data unACKed after TCP_MAX_RETRIES (12) RTO
 * retransmissions; 15 zero-window probes in a row unanswered (a peer that answers, even
 * with window 0, is probed forever, as Linux does; tcp_persist_timeouts); keepalive probes
 * unanswered (ustack_config.keepalive_*, off by default as on a kernel socket without
 * SO_KEEPALIVE; tcp_keepalive_timeouts). Those three send a RST and tell the user `closed`
 * with -ETIMEDOUT. After the user's close, a peer that takes nothing for 10 s is reset, and
 * one that never sends its FIN is forgotten after 30 s in FIN_WAIT_2.
 *
 * IPv4 addresses are uint32_t in host byte order (192.168.0.1 == 0xc0a80001). */
#ifndef SLUICE_DATAPLANE_NET_USTACK_H
#define SLUICE_DATAPLANE_NET_USTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/net/net.h"

#define USTACK_ETH_HDR_BYTES 14u
#define USTACK_IP_HDR_BYTES 20u          /* the stack never sends IP options */
#define USTACK_TCP_HDR_MAX_BYTES 60u
/* Headroom the stack needs in front of a TX payload: Ethernet + IPv4 + TCP with options. */
#define USTACK_TX_HEADROOM_BYTES (USTACK_ETH_HDR_BYTES + USTACK_IP_HDR_BYTES + \
                                  USTACK_TCP_HDR_MAX_BYTES)

/* ---- packets ---------------------------------------------------------------------- */

/* pkt.flags: set by the driver on RX (what the NIC verified), by the stack on TX (what
 * the driver must ask the NIC to compute; only set when the port advertises it). */
#define USTACK_PKT_RX_IP_CSUM_GOOD  (1u << 0) /* the stack skips the IPv4 header checksum */
#define USTACK_PKT_RX_IP_CSUM_BAD   (1u << 1) /* dropped and counted as bad checksum */
#define USTACK_PKT_RX_L4_CSUM_GOOD  (1u << 2) /* the stack skips the TCP/ICMP checksum */
#define USTACK_PKT_RX_L4_CSUM_BAD   (1u << 3)
#define USTACK_PKT_TX_IP_CSUM       (1u << 8) /* NIC fills the IPv4 header checksum */
#define USTACK_PKT_TX_TCP_CSUM      (1u << 9) /* NIC fills the TCP checksum; the stack has put
                                                 the pseudo-header sum in the field, as DPDK
                                                 expects (rte_ipv4_phdr_cksum) */

/* A frame as the stack sees it. The driver owns the memory behind it (for DPDK: an mbuf,
 * `driver` pointing at it; the descriptor itself can live in the mbuf's private area).
 * RX frames must be one contiguous segment (data, len). */
struct ustack_pkt {
    uint8_t *data;    /* first byte of the Ethernet header */
    uint32_t len;     /* RX: frame bytes at data. TX: set by the stack to the linear bytes
                         written at data (headers + any copied payload); attached external
                         segments follow them on the wire, in attach order */
    uint32_t room;    /* TX: bytes writable at data (>= USTACK_TX_HEADROOM_BYTES + MSS for
                         copied payload; tx_alloc must guarantee it) */
    uint32_t flags;   /* USTACK_PKT_* */
    uint16_t l2_bytes, l3_bytes, l4_bytes; /* TX: header lengths, for checksum offload */
    void *driver;     /* the driver's handle, never touched by the stack */
};

/* The port's description, given at create. */
struct ustack_port {
    uint8_t mac[6];
    uint16_t mtu;              /* IP MTU, e.g. 1500; the MSS offered is mtu - 40 */
    bool tx_ip_csum_offload;   /* the NIC can compute IPv4 header checksums */
    bool tx_tcp_csum_offload;  /* the NIC can compute TCP checksums */
    uint16_t tx_max_segments;  /* external segments a TX frame may carry (0: no zero copy,
                                  every payload is copied into the linear buffer) */
};

/* The packet I/O interface the driver implements. Every op gets the driver's ctx. */
struct ustack_io {
    /* A TX frame with room >= USTACK_TX_HEADROOM_BYTES + mtu, or NULL when the pool is
     * empty (the stack retries later; TCP counts it and backs off to its timers). */
    struct ustack_pkt *(*tx_alloc)(void *ctx);
    /* Append external bytes to a TX frame (zero copy). 0, or -1 when the frame cannot take
     * another segment (the stack then copies). On success the driver calls
     * release(release_arg) exactly once, when the frame is freed or sent and the NIC is
     * done with the bytes -- possibly from inside tx_burst or pkt_free. */
    int (*tx_attach)(void *ctx, struct ustack_pkt *pkt, const uint8_t *bytes, uint32_t len,
                     void (*release)(void *release_arg), void *release_arg);
    /* Send n frames. The driver takes ownership of all n: frames it cannot queue it frees
     * (running their release callbacks) and counts; TCP retransmits what is lost. */
    void (*tx_burst)(void *ctx, struct ustack_pkt **pkts, uint16_t n);
    /* Give back a frame: a received one the stack is done with, or a TX frame that was
     * allocated but is not sent. Runs the release callbacks of any attached segments. */
    void (*pkt_free)(void *ctx, struct ustack_pkt *pkt);
};

/* ---- the stack -------------------------------------------------------------------- */

struct ustack_config {
    uint32_t ip, netmask, gateway;  /* host byte order; gateway 0: no route off-link */
    uint32_t max_conns;             /* TCP connection slots (established + handshaking +
                                       TIME_WAIT); 0 -> 1024 */
    uint32_t syn_backlog;           /* half-open (SYN_RCVD) connections per listener;
                                       0 -> 128. SYNs beyond it are dropped and counted */
    uint32_t rcv_buf_bytes;         /* receive window per connection; 0 -> 256 KiB */
    uint32_t rcv_max_pkts;          /* frames a connection may hold (in-order undelivered +
                                       out-of-order); 0 -> 256 */
    uint32_t snd_buf_bytes;         /* unacknowledged bytes in flight per connection, and so
                                       the largest window used; 0 -> 1 MiB */
    uint32_t arp_cache_entries;     /* 0 -> 64 */
    uint32_t arp_pending_pkts;      /* frames waiting for an ARP answer, per stack; 0 -> 64 */
    uint32_t time_wait_us;          /* 0 -> 2 s (2*MSL with a short MSL; shards are reused) */
    uint32_t delayed_ack_us;        /* 0 -> 500 us; the stack also ACKs every 2nd full segment */
    uint32_t isn_seed;              /* 0: initial sequence numbers from a per-stack random
                                       secret, the 4-tuple and the clock (RFC 6528);
                                       nonzero: ISN = isn_seed + now_us / 4 (tests) */
    uint16_t ephemeral_port_lo, ephemeral_port_hi; /* client ports; 0 -> 32768..60999 */
    /* TCP keepalive (as Linux's tcp_keepalive_time/intvl/probes), off by default: an
     * ESTABLISHED connection that received nothing for keepalive_idle_ms, with nothing
     * in flight, gets an empty ACK one below snd_nxt; any segment from the peer resets
     * it; after keepalive_probes unanswered probes keepalive_interval_ms apart the
     * connection is reset and the user told `closed` with -ETIMEDOUT. */
    uint32_t keepalive_idle_ms;     /* 0: off (the default) */
    uint32_t keepalive_interval_ms; /* 0 -> 75000 (when idle is set) */
    uint32_t keepalive_probes;      /* 0 -> 9 (when idle is set) */
};

struct ustack;

/* NULL on failure with a message in err. The stack keeps pointers to io and io_ctx (they
 * must outlive it); port is copied. */
struct ustack *ustack_create(const struct ustack_config *cfg, const struct ustack_port *port,
                             const struct ustack_io *io, void *io_ctx, char *err,
                             size_t err_bytes);
/* Frees every held frame (pkt_free) and all memory. Connections are dropped silently; when
 * a backend sits on the stack, destroy the backend instead (it destroys its stack). */
void ustack_destroy(struct ustack *s);

/* Feed n received frames; the stack owns them from here. Sends what they provoke (ACKs,
 * RSTs, ARP replies, echo replies, newly allowed data) before returning. */
void ustack_input(struct ustack *s, struct ustack_pkt **pkts, uint16_t n, uint64_t now_us);
/* Run the timers due at now_us (RTO, delayed ACK, TIME_WAIT, zero-window probe,
 * keepalive, ARP retries) and flush what they send. Cheap when nothing is due: call it
 * every loop. */
void ustack_poll(struct ustack *s, uint64_t now_us);
/* The earliest time a timer is due (UINT64_MAX: none), for a caller that wants to sleep. */
uint64_t ustack_next_timer_us(const struct ustack *s);

/* Every drop has a reason and a counter. */
struct ustack_stats {
    /* link / network */
    uint64_t rx_frames, tx_frames, tx_alloc_failed;
    uint64_t rx_malformed_eth, rx_not_for_us, rx_unknown_ethertype;
    uint64_t arp_requests_answered, arp_replies_received, arp_requests_sent;
    uint64_t arp_pending_dropped;     /* pending queue full or resolution timed out */
    uint64_t rx_malformed_ip, rx_bad_ip_csum, rx_ip_fragments, rx_ip_unknown_proto;
    uint64_t icmp_echo_answered, rx_malformed_icmp, rx_bad_icmp_csum;
    /* tcp */
    uint64_t rx_malformed_tcp, rx_bad_tcp_csum;
    uint64_t tcp_no_listener_rst;     /* segment for no connection: RST sent */
    uint64_t tcp_rst_sent, tcp_rst_received;
    uint64_t tcp_backlog_full;        /* SYN dropped: listener backlog or slots full */
    uint64_t tcp_out_of_window;       /* segment outside the receive window: dropped (ACKed) */
    uint64_t tcp_rcv_queue_full;      /* in-window segment dropped: frame bound reached */
    uint64_t tcp_ooo_queued, tcp_dup_segments;
    uint64_t tcp_retransmits_rto, tcp_retransmits_fast, tcp_zero_window_probes;
    uint64_t tcp_delayed_acks, tcp_conns_opened, tcp_conns_closed;
    uint64_t tcp_rx_bytes, tcp_tx_bytes; /* payload, first transmission only for tx */
    uint64_t tcp_loss_probes;         /* first unacked segment resent at the probe timeout */
    uint64_t tcp_keepalive_probes;    /* keepalive probes sent */
    uint64_t tcp_keepalive_timeouts;  /* connections reset: keepalive probes unanswered */
    uint64_t tcp_persist_timeouts;    /* connections reset: zero-window probes unanswered */
};
void ustack_stats(const struct ustack *s, struct ustack_stats *out);

/* ---- the net_backend on a stack ------------------------------------------------------- */

/* A net_backend (net.h) whose connections are the stack's TCP connections: listen (host
 * must be the stack's IP or 0.0.0.0), accepted, received (lent from the received frame),
 * send (done when ACKed and released), recv_pause/resume (the receive window closes and
 * reopens), close (graceful: handed-over sends finish, waiting ones get -ECANCELED, then FIN;
 * `closed` once all sends completed), connect (client side, for
 * the load generator; host is dotted IPv4), peer_name, tick (runs ustack_poll with
 * now_ms * 1000), conn_count, closing_count (connections past `closed` whose FIN exchange
 * is not finished: keep polling until 0 before destroying, or the peer is left
 * half-open), destroy (destroys the stack too).
 * Takes ownership of s. NULL on failure with a message in err. */
struct net_backend *ustack_backend_create(struct ustack *s, const struct net_events *events,
                                          void *events_ctx, char *err, size_t err_bytes);
/* The stack under a backend made by ustack_backend_create, for the driver's RX loop. */
struct ustack *ustack_backend_stack(struct net_backend *b);

#endif
