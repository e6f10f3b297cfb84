/* ustack_internal.h - what the stack's files share: the stack and connection structs,
 * wire header layouts, sequence arithmetic, checksums and the TX batch.
 *
 * Files: ustack.c (create/destroy, input dispatch, poll, deferred work, TX batch),
 * ustack_csum.c (Internet checksum), ustack_eth_arp.c (Ethernet, ARP cache and pending
 * queue), ustack_ip.c (IPv4 and ICMP echo), ustack_tcp_conn.c (connection slots, lookup,
 * receive queue, send records), ustack_tcp_in.c (segment arrival), ustack_tcp_out.c
 * (segment building, output, timers), ustack_backend.c (net_backend ops). */
#ifndef SLUICE_DATAPLANE_NET_USTACK_INTERNAL_H
#define SLUICE_DATAPLANE_NET_USTACK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dataplane/net/ustack.h"

#define USTACK_NONE UINT32_MAX
#define USTACK_TX_BATCH 32u
#define USTACK_MAX_LISTENERS 4u
#define USTACK_TXREC_PER_CONN 8u   /* net_sends being transmitted per connection */

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* TCP timers (microseconds). RTO min is Linux's 200 ms rather than RFC 6298's 1 s. */
#define TCP_RTO_INITIAL_US 1000000u
#define TCP_RTO_MIN_US 200000u
#define TCP_RTO_MAX_US 60000000u
#define TCP_PERSIST_MIN_US 200000u
#define TCP_TX_RETRY_US 1000u        /* output again after the driver had no TX frame */
#define TCP_PROBE_MIN_US 10000u       /* loss probe timeout floor */
#define TCP_PROBE_DACK_US 40000u      /* allowance for a peer's delayed ACK of one segment */
#define TCP_MAX_RETRIES 12u
#define TCP_SYN_RETRIES 6u
#define TCP_PERSIST_MAX_PROBES 15u   /* zero-window probes unanswered in a row: reset */
#define TCP_KEEPALIVE_RETRY_US 200000u /* keepalive probe again after no TX frame */
#define TCP_CLOSE_LINGER_US 10000000u /* closing with data unACKed: reset after this */
#define TCP_FIN_WAIT_2_US 30000000u /* FIN_WAIT_2 without the peer's FIN: give up */
#define ARP_RETRY_US 200000u
#define ARP_GIVE_UP_US 1000000u

/* Sequence arithmetic modulo 2^32. */
static inline bool seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline bool seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline bool seq_ge(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }

/* Big-endian loads and stores (frames are byte arrays, never cast to structs). */
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- checksum (ustack_csum.c) ---- */
/* Adds len bytes to a running one's-complement sum; `odd` tracks whether an odd number
 * of bytes came before, so a sum can span buffers of any length. */
struct csum {
    uint64_t acc;
    bool odd;
};
void csum_add(struct csum *c, const uint8_t *data, size_t len);
uint16_t csum_fold(const struct csum *c); /* the complemented 16-bit result */
uint32_t csum_pseudo(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, uint16_t l4_len);

/* ---- TCP ---- */
enum tcp_state {
    TCP_CLOSED = 0,
    TCP_SYN_SENT,
    TCP_SYN_RCVD,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT_1,
    TCP_FIN_WAIT_2,
    TCP_CLOSING,
    TCP_TIME_WAIT,
    TCP_CLOSE_WAIT,
    TCP_LAST_ACK,
};

/* A received segment held by a connection: in-order bytes the user has not taken yet
 * (paused), or bytes beyond a hole. */
struct rxseg {
    struct ustack_pkt *pkt;
    const uint8_t *data;
    uint32_t seq;
    uint32_t len;
};

/* A net_send being transmitted: its bytes are [start_seq, start_seq + len). */
struct txrec {
    struct net_send *send;
    struct tcb *conn;
    uint32_t start_seq, len;
    uint32_t refs;   /* TX frames still holding its bytes (zero copy) */
    bool finished;   /* ACKed, or cancelled */
    int status;
};

struct tcb {
    struct net_conn base; /* first: the backend's view */
    struct ustack *stack;
    enum tcp_state state;
    uint32_t slot;
    uint32_t hash_next;   /* next slot in the lookup chain */
    uint32_t defer_next;  /* next slot in the deferred-work list */
    bool on_defer_list;
    bool in_use;
    uint8_t listener;     /* index of the listener that created it (server side) */
    bool server;

    uint32_t local_ip, remote_ip;
    uint16_t local_port, remote_port;
    uint8_t remote_mac[6];
    bool remote_mac_known;

    /* send side */
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2;
    uint32_t snd_tail;    /* sequence after the last byte queued in the txrec ring */
    uint16_t mss;         /* send MSS (peer's offer, capped by ours) */
    uint8_t snd_wscale, rcv_wscale;
    bool wscale_ok;
    bool sack_ok;         /* both sides sent SACK-permitted: we send SACK blocks */
    uint32_t cwnd, ssthresh, recover;
    uint32_t dupacks;
    bool in_recovery;
    bool fin_queued;      /* our FIN goes at snd_tail once the data is sent */
    bool fin_sent;
    /* RTT (RFC 6298) */
    uint32_t srtt_us, rttvar_us, rto_us;
    bool rtt_timing;
    uint32_t rtt_seq;
    uint64_t rtt_start_us;
    uint32_t retries;
    /* send records: a ring of USTACK_TXREC_PER_CONN, then a wait list */
    struct txrec txrecs[USTACK_TXREC_PER_CONN];
    uint32_t txrec_head, txrec_count;
    struct net_send *wait_head, *wait_tail;
    uint32_t tx_refs; /* sum of txrec refs, for the slot's release */

    /* receive side */
    uint32_t irs, rcv_nxt, rcv_adv; /* rcv_adv: right edge of the window advertised */
    struct rxseg *rxq;              /* rcv_max_pkts entries, sorted by seq */
    uint32_t rxq_count;
    uint32_t rx_inorder_bytes;      /* held bytes below rcv_nxt (paused) */
    uint32_t sack_recent_seq;       /* the latest out-of-order segment (first SACK block) */
    bool fin_received;              /* peer's FIN is in (rcv_nxt counts it) */
    bool ack_now;
    uint32_t unacked_segs;          /* full segments received since our last ACK */

    /* timers: 0 = not armed */
    uint64_t rto_at_us, dack_at_us, tw_at_us, persist_at_us;
    uint64_t probe_at_us; /* loss probe, earlier than the RTO (ustack_tcp_out.c) */
    uint64_t ka_at_us;    /* keepalive (cfg.keepalive_idle_ms set, ESTABLISHED only) */
    uint32_t persist_backoff;
    /* liveness: set by every segment the peer sends us (tcp_input) */
    uint64_t last_rx_us;
    uint32_t probes_out;  /* zero-window or keepalive probes unanswered (as Linux's
                             icsk_probes_out: the two never run at the same time) */

    /* user side */
    bool user_attached;   /* accepted/connect returned, `closed` not yet run */
    bool user_paused;
    bool close_requested; /* user close, peer FIN or abort: sends cancelled, closing */
    bool deliver_pending; /* held in-order data waits for delivery */
    int close_reason;
    void (*connected)(struct net_conn *c, int status);
    bool connect_pending;
};

struct listener {
    bool active;
    uint32_t ip;          /* 0: any */
    uint16_t port;
    uint32_t half_open;   /* SYN_RCVD connections */
};

struct arp_entry {
    uint32_t ip;
    uint8_t mac[6];
    bool valid;
    uint64_t last_request_us; /* for an unresolved entry: when we last asked */
    uint64_t used_us;
};

struct arp_pending {
    struct ustack_pkt *pkt;
    uint32_t next_hop;
    uint64_t queued_us;
};

struct ustack {
    struct net_backend nb; /* the net_backend on this stack (ustack_backend.c) */
    bool backend_made;
    struct ustack_config cfg;
    struct ustack_port port;
    const struct ustack_io *io;
    void *io_ctx;
    struct ustack_stats stats;
    uint64_t now_us;
    uint32_t isn_secret;
    uint16_t mss_local;   /* the MSS we offer: mtu - 40 */
    uint8_t wscale_local;
    uint16_t ip_id;       /* IPv4 identification of the next datagram */

    struct tcb *tcbs;     /* max_conns */
    struct rxseg *rxsegs; /* max_conns * rcv_max_pkts */
    uint32_t free_head;   /* free slot list through hash_next (LIFO: low slots reused) */
    uint32_t slots_high;  /* 1 + the highest slot ever used: the timer scan's bound */
    uint32_t conn_count;  /* slots in use */
    uint32_t user_conns;  /* connections the user sees */
    uint32_t *buckets;
    uint32_t bucket_mask;
    uint32_t defer_head, defer_tail;
    bool in_deferred;
    uint16_t next_ephemeral;
    uint64_t next_timer_us;

    struct listener listeners[USTACK_MAX_LISTENERS];

    struct arp_entry *arp;
    struct arp_pending *arp_q;
    uint32_t arp_q_count;

    struct ustack_pkt *tx_batch[USTACK_TX_BATCH];
    uint16_t tx_count;
};

/* ustack.c */
void ustack_tx_push(struct ustack *s, struct ustack_pkt *pkt);
void ustack_tx_flush(struct ustack *s);
void ustack_timer_hint(struct ustack *s, uint64_t at_us);
void ustack_run_deferred(struct ustack *s);
void ustack_defer(struct ustack *s, struct tcb *c);

/* ustack_eth_arp.c */
void eth_input(struct ustack *s, struct ustack_pkt *pkt);
/* Fill the Ethernet header (the frame's first 14 bytes) and send, resolving next_hop's
 * MAC (or queueing the frame until ARP answers). mac may be NULL (look it up). */
void eth_output_ipv4(struct ustack *s, struct ustack_pkt *pkt, uint32_t dst_ip,
                     const uint8_t *mac);
bool arp_lookup(struct ustack *s, uint32_t ip, uint8_t mac_out[6]);
void arp_poll(struct ustack *s);
void arp_destroy_pending(struct ustack *s);

/* ustack_ip.c; returns true when the stack kept the frame (else the caller frees it) */
bool ip_input(struct ustack *s, struct ustack_pkt *pkt, const uint8_t *ip, uint32_t ip_bytes);
/* Write an IPv4 header at hdr (20 bytes) for a payload of l4_bytes. */
void ip_build_header(struct ustack *s, struct ustack_pkt *pkt, uint8_t *hdr, uint32_t dst_ip,
                     uint8_t proto, uint32_t l4_bytes);

/* ustack_tcp_conn.c */
struct tcb *tcb_lookup(struct ustack *s, uint32_t lip, uint16_t lport, uint32_t rip,
                       uint16_t rport);
struct tcb *tcb_alloc(struct ustack *s, uint32_t lip, uint16_t lport, uint32_t rip,
                      uint16_t rport);
void tcb_release_if_done(struct tcb *c);
void tcb_progress(struct tcb *c); /* deferred work: deliver, complete sends, notify */
void tcb_abort(struct tcb *c, int reason);  /* to CLOSED now, no RST */
void tcb_begin_close(struct tcb *c, int reason);
uint32_t tcb_rcv_window(const struct tcb *c);
/* Receive path: returns true when the frame is held by the connection. */
bool tcb_receive_data(struct tcb *c, struct ustack_pkt *pkt, const uint8_t *data,
                      uint32_t seq, uint32_t len);
void tcb_ack_sends(struct tcb *c);        /* finish txrecs below snd_una */
void tcb_cancel_sends(struct tcb *c, int status);
void tcb_fill_ring(struct tcb *c);        /* move waiting sends into the txrec ring */
void txrec_release(void *arg);
uint32_t tcp_isn(struct ustack *s, const struct tcb *c);

/* ustack_tcp_in.c */
bool tcp_input(struct ustack *s, struct ustack_pkt *pkt, uint32_t src_ip, uint32_t dst_ip,
               const uint8_t *seg, uint32_t seg_bytes, const uint8_t *src_mac);

/* ustack_tcp_out.c */
void tcp_output(struct tcb *c);
void tcp_send_ack(struct tcb *c);
void tcp_send_syn(struct tcb *c, bool with_ack);
void tcp_send_rst_for(struct ustack *s, uint32_t src_ip, uint32_t dst_ip, uint16_t sport,
                      uint16_t dport, uint32_t seq, uint32_t ack, bool with_ack,
                      const uint8_t *mac);
void tcp_send_rst(struct tcb *c);
void tcp_retransmit_head(struct tcb *c);
void tcp_timers(struct tcb *c, uint64_t now_us);
void tcp_rtt_sample(struct tcb *c, uint32_t rtt_us);
void tcp_arm_rto(struct tcb *c);
void tcp_set_state(struct tcb *c, enum tcp_state st);

#endif
