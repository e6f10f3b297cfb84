/* dpdk_io.c - the DPDK packet driver under a shard's userspace TCP/IP stack.
 *
 * One instance per shard, used by the shard's thread only: it owns RX/TX queue pair q of
 * the port (hw/dpdk_port.c), the queue's mbuf pools and its steering ring. It implements
 * struct ustack_io (dataplane/net/ustack.h) and, on top, exposes the stack's net_backend
 * with a poll op added (the stack's own ops table is copied into this struct and
 * extended, so net.h callers see one backend).
 *
 * Per-frame descriptor. Every mbuf of both pools has DPDK_PORT_MBUF_PRIV_BYTES of private
 * area; a frame's struct ustack_pkt lives in its head mbuf's private area, so RX and TX
 * need no allocation besides the mbuf itself.
 *
 * RX (poll): rte_eth_rx_burst on queue q, plus whatever other shards steered to us; each
 * frame is handed to ustack_input() as is -- the payload the Kafka layer receives points
 * into the mbuf (no copy); the stack gives the frame back through pkt_free. A chained
 * frame (larger than one mbuf) is dropped and counted: the stack wants contiguous frames,
 * and with MTU 1500 and 2 KiB mbufs a chain never happens.
 *
 * Steering (ports without hardware RSS and more than one queue; see hw/dpdk_port.c): the
 * owner of an IPv4/TCP frame is hash(src ip, dst ip, src port, dst port) mod queues; a
 * frame this shard does not own goes to the owner's steering ring (full: dropped,
 * counted, TCP retransmits). ARP frames are handled here and a copy goes to every other
 * shard, so each stack's ARP cache learns the peers -- with hardware RSS too, which
 * spreads ARP replies with no regard to who asked. Everything else (ICMP) is handled
 * where it arrives. The client side (connect) needs the answers to come back to the
 * connecting queue, which no hash (ours or the NIC's) promises: a client (the load
 * generator) gives each queue's stack its own range of ephemeral ports
 * (client_port_base/span), and a frame to a port in queue q's range goes to q, with or
 * without hardware RSS.
 *
 * Orphan queues. Steering makes every queue's poller work for the others: a frame for
 * queue q's connection may arrive on any queue (af_packet's kernel fanout hashes flows to
 * sockets with no regard to our client port ranges). The broker's shards live as long as
 * the port, but the load generator's threads end one by one: a queue whose instance was
 * destroyed keeps receiving, and with nobody reading it, the other instances' flows that
 * the kernel hashes there go deaf (a thread waited forever for an answer that sat in a
 * finished thread's socket). So an instance marks its queue an orphan when it is
 * destroyed, and the live instances of the port take turns polling the orphans (a bit
 * per queue says who is at it; one at a time) as if the frames had arrived on their own
 * queue: their own delivered, other live queues' steered on, and frames for the gone
 * queue's stack -- or left in its steering ring -- freed (orphan_dropped). A new
 * instance of the queue takes it back first (loadgen sweeps start a thread per queue
 * for each run).
 *
 * TX: tx_alloc takes an mbuf from the queue's pool (headers, or headers + copied
 * payload). tx_attach adds a data-less mbuf from the ext pool pointing at the user's
 * bytes (rte_pktmbuf_attach_extbuf); its rte_mbuf_ext_shared_info lives in that mbuf's
 * private area with the stack's release callback, which DPDK calls (through
 * ext_buf_free) when the segment is freed -- by the PMD once the NIC is done with it.
 * tx_burst queues frames in a per-shard buffer of DPDK_TX_BUFFER frames, flushed when
 * full and at the end of every poll, so a loop iteration costs one rte_eth_tx_burst
 * (on af_packet: one sendto). Frames the queue does not take after a few tries are
 * freed and counted; TCP retransmits them.
 *
 * Test faults (dpdk_port_config's fault_* percentages, for hosts without netem): TCP
 * frames are dropped with probability drop% on RX and on TX, and with reorder% one is
 * held back and delivered/sent after the frames that follow it (at most one held per
 * direction, released after DPDK_FAULT_HOLD_US at the latest). A xorshift generator
 * seeded per queue decides; the counters say what was done.
 *
 * The external memory is the shard's own (chunk pools): on net_af_packet and net_tap the
 * PMD copies it with the CPU, so no DMA mapping is needed. A real NIC would need that
 * memory registered (rte_extmem_register + rte_dev_dma_map): not done here. */
#include "dataplane/net/dpdk_io.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include "dataplane/net/ustack.h"
#include "hw/dpdk_port.h"
#include "hw/log.h"
#include "hw/uring_op.h" /* container_of */

#define DPDK_RX_BURST 32u
#define DPDK_TX_BUFFER 64u
#define DPDK_TX_TRIES 4u
#define DPDK_MAX_SEGMENTS 16u
#define DPDK_FAULT_HOLD_US 2000u

/* The private area of an ext-pool mbuf: the shared info DPDK wants for an external
 * buffer, and the stack's release callback. */
struct ext_seg {
    struct rte_mbuf_ext_shared_info shinfo;
    void (*release)(void *arg);
    void *release_arg;
};

struct dpdk_io {
    struct net_backend_ops ops;          /* the stack backend's ops + poll */
    const struct net_backend_ops *inner; /* the stack backend's own table */
    struct net_backend *backend;
    struct ustack *stack;
    struct ustack_io io;
    uint16_t port_id, queue, queue_count;
    bool steer;                          /* more than one queue: ARP copies, and ... */
    bool steer_tcp;                      /* ... TCP flows by our hash (no hw RSS) */
    uint16_t client_port_base, client_port_span; /* see net_dpdk_config */
    struct rte_mempool *pool, *ext_pool;
    struct rte_ring *own_ring;
    struct rte_ring *rings[DPDK_PORT_MAX_QUEUES];
    struct rte_mbuf *tx_buf[DPDK_TX_BUFFER];
    uint16_t tx_count;
    struct net_dpdk_stats stats;
    /* test faults */
    uint32_t drop_percent, reorder_percent;
    uint64_t rng;
    struct rte_mbuf *rx_held, *tx_held;
    uint64_t rx_held_us, tx_held_us;
    uint64_t now_us;                     /* of the current poll */
};

_Static_assert(sizeof(struct ustack_pkt) <= DPDK_PORT_MBUF_PRIV_BYTES, "pkt fits priv");
_Static_assert(sizeof(struct ext_seg) <= DPDK_PORT_MBUF_PRIV_BYTES, "ext_seg fits priv");
_Static_assert(DPDK_PORT_MAX_QUEUES <= 64, "a queue is a bit of a uint64_t");

/* The orphan queues of a port (see the top of the file), shared by its instances, which
 * live on different threads. Bit q stands for queue q. */
struct orphans {
    _Atomic uint64_t gone;    /* queue q's instance was destroyed */
    _Atomic uint64_t polling; /* an instance is polling queue q (as an orphan, or taking
                                 it back): whoever set the bit, alone */
};
static struct orphans port_orphans[RTE_MAX_ETHPORTS];

static struct ustack_pkt *pkt_of(struct rte_mbuf *m) { return rte_mbuf_to_priv(m); }

static struct orphans *orphans_of(const struct dpdk_io *d) { return &port_orphans[d->port_id]; }

static bool queue_gone(const struct dpdk_io *d, int q) {
    uint64_t gone = atomic_load_explicit(&orphans_of(d)->gone, memory_order_acquire);
    return (gone >> q) & 1u;
}

/* ---- test faults ------------------------------------------------------------------- */

static bool is_ipv4_tcp(const struct rte_mbuf *m) {
    if (m->data_len < sizeof(struct rte_ether_hdr) + 20) return false;
    const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
    const uint8_t *ip = (const uint8_t *)(eth + 1);
    return eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) && ip[9] == IPPROTO_TCP;
}

static uint32_t fault_roll(struct dpdk_io *d) { /* 0..99 */
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return (uint32_t)(d->rng % 100u);
}

/* Apply drop/reorder to mbufs[0..n): keeps survivors in order at the front, may swap
 * one into *held (and let the previously held one in at the end). Returns the count. */
static uint16_t faults_apply(struct dpdk_io *d, struct rte_mbuf **mbufs, uint16_t n,
                             struct rte_mbuf **held, uint64_t *held_us, uint64_t now_us,
                             uint16_t cap) {
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = mbufs[i];
        if (!is_ipv4_tcp(m)) {
            mbufs[kept++] = m;
            continue;
        }
        if (fault_roll(d) < d->drop_percent) {
            d->stats.fault_dropped++;
            rte_pktmbuf_free(m);
            continue;
        }
        if (!*held && fault_roll(d) < d->reorder_percent) {
            d->stats.fault_reordered++;
            *held = m;
            *held_us = now_us;
            continue;
        }
        mbufs[kept++] = m;
    }
    /* the held frame goes after later frames, or alone once it has waited long enough */
    if (*held && kept < cap && (kept > 0 || now_us - *held_us >= DPDK_FAULT_HOLD_US)) {
        bool just_held = kept > 0 && *held_us == now_us;
        if (!just_held) {
            mbufs[kept++] = *held;
            *held = NULL;
        }
    }
    return kept;
}

/* ---- TX ---------------------------------------------------------------------------- */

static struct ustack_pkt *io_tx_alloc(void *ctx) {
    struct dpdk_io *d = ctx;
    struct rte_mbuf *m = rte_pktmbuf_alloc(d->pool);
    if (!m) return NULL;
    struct ustack_pkt *p = pkt_of(m);
    memset(p, 0, sizeof *p);
    p->data = rte_pktmbuf_mtod(m, uint8_t *);
    p->room = rte_pktmbuf_tailroom(m);
    p->driver = m;
    return p;
}

static void ext_buf_free(void *addr, void *opaque) {
    (void)addr;
    struct ext_seg *seg = opaque;
    seg->release(seg->release_arg);
}

static int io_tx_attach(void *ctx, struct ustack_pkt *pkt, const uint8_t *bytes,
                        uint32_t len, void (*release)(void *release_arg), void *release_arg) {
    struct dpdk_io *d = ctx;
    struct rte_mbuf *head = pkt->driver;
    if (head->nb_segs >= DPDK_MAX_SEGMENTS || len > UINT16_MAX) return -1;
    struct rte_mbuf *m = rte_pktmbuf_alloc(d->ext_pool);
    if (!m) return -1;
    struct ext_seg *seg = rte_mbuf_to_priv(m);
    seg->release = release;
    seg->release_arg = release_arg;
    seg->shinfo.free_cb = ext_buf_free;
    seg->shinfo.fcb_opaque = seg;
    rte_mbuf_ext_refcnt_set(&seg->shinfo, 1);
    void *addr = (void *)(uintptr_t)bytes;
    rte_iova_t iova = rte_eal_iova_mode() == RTE_IOVA_VA ? (rte_iova_t)(uintptr_t)bytes
                                                          : rte_mem_virt2iova(addr);
    rte_pktmbuf_attach_extbuf(m, addr, iova, (uint16_t)len, &seg->shinfo);
    m->data_len = (uint16_t)len;
    m->pkt_len = len;
    /* Link at the tail by hand: the head's lengths are set in flush, once the stack has
     * written its headers (pkt->len). */
    struct rte_mbuf *last = rte_pktmbuf_lastseg(head);
    last->next = m;
    head->nb_segs++;
    d->stats.tx_zero_copy_segments++;
    return 0;
}

static void io_pkt_free(void *ctx, struct ustack_pkt *pkt) {
    (void)ctx;
    rte_pktmbuf_free(pkt->driver); /* the chain: attached segments release their bytes */
}

static void tx_flush(struct dpdk_io *d, uint64_t now_us) {
    if (d->drop_percent || d->reorder_percent)
        d->tx_count = faults_apply(d, d->tx_buf, d->tx_count, &d->tx_held, &d->tx_held_us,
                                   now_us, DPDK_TX_BUFFER);
    uint16_t sent = 0;
    for (unsigned tries = 0; sent < d->tx_count && tries < DPDK_TX_TRIES; tries++)
        sent += rte_eth_tx_burst(d->port_id, d->queue, d->tx_buf + sent, d->tx_count - sent);
    d->stats.tx_packets += sent;
    if (sent < d->tx_count) {
        d->stats.tx_dropped += d->tx_count - sent;
        rte_pktmbuf_free_bulk(d->tx_buf + sent, d->tx_count - sent);
    }
    d->tx_count = 0;
}

static void io_tx_burst(void *ctx, struct ustack_pkt **pkts, uint16_t n) {
    struct dpdk_io *d = ctx;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *head = pkts[i]->driver;
        head->data_len = (uint16_t)pkts[i]->len;
        uint32_t total = 0;
        for (struct rte_mbuf *m = head; m; m = m->next) total += m->data_len;
        head->pkt_len = total;
        if (d->tx_count == DPDK_TX_BUFFER) tx_flush(d, d->now_us);
        d->tx_buf[d->tx_count++] = head;
    }
}

/* ---- RX ---------------------------------------------------------------------------- */

/* The steering owner of a frame: a queue, or -1 for "here" (not IPv4/TCP), or -2 for
 * ARP (here, and copied to everyone). */
static int frame_owner(const struct dpdk_io *d, struct rte_mbuf *m) {
    if (m->data_len < sizeof(struct rte_ether_hdr)) return -1;
    const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
    uint16_t type = rte_be_to_cpu_16(eth->ether_type);
    if (type == RTE_ETHER_TYPE_ARP) return -2;
    if (type != RTE_ETHER_TYPE_IPV4 || (!d->steer_tcp && !d->client_port_span)) return -1;
    const uint8_t *ip = (const uint8_t *)(eth + 1);
    uint32_t left = m->data_len - (uint32_t)sizeof *eth;
    if (left < 20 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP) return -1;
    uint32_t ihl = (ip[0] & 0x0fu) * 4u;
    if (ihl < 20 || left < ihl + 4) return -1;
    uint32_t src, dst, ports;
    memcpy(&src, ip + 12, 4);
    memcpy(&dst, ip + 16, 4);
    memcpy(&ports, ip + ihl, 4);
    uint16_t dst_port = (uint16_t)(ip[ihl + 2] << 8 | ip[ihl + 3]);
    if (d->client_port_span && dst_port >= d->client_port_base &&
        (uint32_t)(dst_port - d->client_port_base) <
            (uint32_t)d->client_port_span * d->queue_count)
        return (dst_port - d->client_port_base) / d->client_port_span; /* our connect */
    if (!d->steer_tcp) return -1; /* hw RSS placed it */
    uint64_t h = ((uint64_t)src << 32 | dst) ^ ((uint64_t)ports * 0x9e3779b97f4a7c15ull);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (int)(h % d->queue_count);
}

static void arp_copy_to_others(struct dpdk_io *d, struct rte_mbuf *m) {
    for (uint16_t q = 0; q < d->queue_count; q++) {
        if (q == d->queue || queue_gone(d, q)) continue;
        struct rte_mbuf *c = rte_pktmbuf_copy(m, d->pool, 0, UINT32_MAX);
        if (c && rte_ring_mp_enqueue(d->rings[q], c) == 0) {
            d->stats.arp_copies++;
        } else {
            if (c) rte_pktmbuf_free(c);
            d->stats.steer_dropped++;
        }
    }
}

/* Keep the frames this shard handles at the front of mbufs; the count kept. */
static uint16_t steer(struct dpdk_io *d, struct rte_mbuf **mbufs, uint16_t n) {
    uint16_t kept = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = mbufs[i];
        int owner = frame_owner(d, m);
        if (owner == -2) arp_copy_to_others(d, m);
        if (owner < 0 || owner == d->queue) {
            mbufs[kept++] = m;
            continue;
        }
        if (queue_gone(d, owner)) { /* its stack is gone: nobody would read the ring */
            rte_pktmbuf_free(m);
            d->stats.orphan_dropped++;
            continue;
        }
        if (rte_ring_mp_enqueue(d->rings[owner], m) == 0) {
            d->stats.steered_out++;
        } else {
            rte_pktmbuf_free(m);
            d->stats.steer_dropped++;
        }
    }
    return kept;
}

static unsigned deliver(struct dpdk_io *d, struct rte_mbuf **mbufs, uint16_t n,
                        uint64_t now_us) {
    struct ustack_pkt *pkts[DPDK_RX_BURST + 1];
    assert(n <= DPDK_RX_BURST + 1);
    uint16_t count = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = mbufs[i];
        if (m->nb_segs != 1) {
            d->stats.rx_multi_seg_dropped++;
            rte_pktmbuf_free(m);
            continue;
        }
        struct ustack_pkt *p = pkt_of(m);
        memset(p, 0, sizeof *p);
        p->data = rte_pktmbuf_mtod(m, uint8_t *);
        p->len = m->data_len;
        uint64_t ipf = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
        uint64_t l4f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        if (ipf == RTE_MBUF_F_RX_IP_CKSUM_GOOD) p->flags |= USTACK_PKT_RX_IP_CSUM_GOOD;
        if (ipf == RTE_MBUF_F_RX_IP_CKSUM_BAD) p->flags |= USTACK_PKT_RX_IP_CSUM_BAD;
        if (l4f == RTE_MBUF_F_RX_L4_CKSUM_GOOD) p->flags |= USTACK_PKT_RX_L4_CSUM_GOOD;
        if (l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD) p->flags |= USTACK_PKT_RX_L4_CSUM_BAD;
        p->driver = m;
        pkts[count++] = p;
    }
    d->stats.rx_packets += count;
    if (count > 0) ustack_input(d->stack, pkts, count, now_us);
    return count;
}

/* One burst of orphan queue q, as if it had arrived on ours, and what other instances
 * had steered to q's ring (freed). The caller holds q's polling bit. */
static unsigned poll_orphan(struct dpdk_io *d, uint16_t q, uint64_t now_us) {
    struct rte_mbuf *mbufs[DPDK_RX_BURST];
    uint16_t n = rte_eth_rx_burst(d->port_id, q, mbufs, DPDK_RX_BURST);
    d->stats.orphan_rx += n;
    unsigned work = n;
    n = steer(d, mbufs, n); /* frames whose owner is q itself are dropped there */
    if (n > 0) deliver(d, mbufs, n, now_us);
    unsigned stale = rte_ring_sc_dequeue_burst(d->rings[q], (void **)mbufs, DPDK_RX_BURST,
                                               NULL);
    if (stale > 0) rte_pktmbuf_free_bulk(mbufs, stale);
    d->stats.orphan_dropped += stale;
    return work + stale;
}

/* Poll the port's orphan queues that no other instance is polling right now. */
static unsigned poll_orphans(struct dpdk_io *d, uint64_t now_us) {
    struct orphans *o = orphans_of(d);
    uint64_t gone = atomic_load_explicit(&o->gone, memory_order_acquire);
    if (gone == 0) return 0;
    assert(!((gone >> d->queue) & 1u)); /* ours is live: we are */
    unsigned work = 0;
    for (uint16_t q = 0; q < d->queue_count; q++) {
        uint64_t bit = 1ull << q;
        if (!(gone & bit)) continue;
        if (atomic_fetch_or_explicit(&o->polling, bit, memory_order_acquire) & bit) continue;
        if (atomic_load_explicit(&o->gone, memory_order_acquire) & bit) /* not taken back */
            work += poll_orphan(d, q, now_us);
        atomic_fetch_and_explicit(&o->polling, ~bit, memory_order_release);
    }
    return work;
}

/* A new instance of queue q: it stops being an orphan, once whoever polls it has let go
 * (one burst: the wait is that short). */
static void queue_take_back(struct dpdk_io *d) {
    struct orphans *o = orphans_of(d);
    uint64_t bit = 1ull << d->queue;
    while (atomic_fetch_or_explicit(&o->polling, bit, memory_order_acquire) & bit) rte_pause();
    atomic_fetch_and_explicit(&o->gone, ~bit, memory_order_relaxed);
    atomic_fetch_and_explicit(&o->polling, ~bit, memory_order_release);
}

/* The instance is gone: from here its queue and steering ring are the live instances'. */
static void queue_orphan(struct dpdk_io *d) {
    atomic_fetch_or_explicit(&orphans_of(d)->gone, 1ull << d->queue, memory_order_release);
}

static unsigned dpdk_poll(struct net_backend *b, uint64_t now_us) {
    struct dpdk_io *d = container_of(b->ops, struct dpdk_io, ops);
    struct rte_mbuf *mbufs[DPDK_RX_BURST + 1]; /* + a frame held back by the faults */
    unsigned work = 0;
    d->now_us = now_us;
    uint16_t n = rte_eth_rx_burst(d->port_id, d->queue, mbufs, DPDK_RX_BURST);
    if (n > 0 && d->steer) n = steer(d, mbufs, n);
    if (d->drop_percent || d->reorder_percent)
        n = faults_apply(d, mbufs, n, &d->rx_held, &d->rx_held_us, now_us, DPDK_RX_BURST + 1);
    if (n > 0) work += deliver(d, mbufs, n, now_us);
    if (d->steer) {
        unsigned got = rte_ring_sc_dequeue_burst(d->own_ring, (void **)mbufs, DPDK_RX_BURST,
                                                 NULL);
        d->stats.steered_in += got;
        if (got > 0) work += deliver(d, mbufs, (uint16_t)got, now_us);
        work += poll_orphans(d, now_us);
    }
    ustack_poll(d->stack, now_us);
    if (d->tx_count > 0 || d->tx_held) {
        work += d->tx_count;
        tx_flush(d, now_us);
    }
    return work;
}

/* ---- the backend ------------------------------------------------------------------- */

/* The stack's drop and TCP counters, one line per shard at stop. */
static void log_stack_stats(const struct dpdk_io *d) {
    struct ustack_stats u;
    ustack_stats(d->stack, &u);
#define U(x) (unsigned long long)u.x
    log_info("ustack_stopped",
             "queue=%u rx_frames=%llu tx_frames=%llu tx_alloc_failed=%llu "
             "rx_malformed_eth=%llu rx_not_for_us=%llu rx_unknown_ethertype=%llu "
             "arp_requests_answered=%llu arp_pending_dropped=%llu rx_malformed_ip=%llu "
             "rx_bad_ip_csum=%llu rx_ip_fragments=%llu rx_ip_unknown_proto=%llu "
             "icmp_echo_answered=%llu rx_malformed_tcp=%llu rx_bad_tcp_csum=%llu "
             "tcp_no_listener_rst=%llu tcp_rst_sent=%llu tcp_rst_received=%llu "
             "tcp_backlog_full=%llu tcp_out_of_window=%llu tcp_rcv_queue_full=%llu "
             "tcp_ooo_queued=%llu tcp_dup_segments=%llu tcp_retransmits_rto=%llu "
             "tcp_retransmits_fast=%llu tcp_zero_window_probes=%llu tcp_conns_opened=%llu "
             "tcp_conns_closed=%llu tcp_rx_bytes=%llu tcp_tx_bytes=%llu "
             "tcp_keepalive_probes=%llu tcp_keepalive_timeouts=%llu tcp_persist_timeouts=%llu",
             d->queue, U(rx_frames), U(tx_frames), U(tx_alloc_failed), U(rx_malformed_eth),
             U(rx_not_for_us), U(rx_unknown_ethertype), U(arp_requests_answered),
             U(arp_pending_dropped), U(rx_malformed_ip), U(rx_bad_ip_csum), U(rx_ip_fragments),
             U(rx_ip_unknown_proto), U(icmp_echo_answered), U(rx_malformed_tcp),
             U(rx_bad_tcp_csum), U(tcp_no_listener_rst), U(tcp_rst_sent), U(tcp_rst_received),
             U(tcp_backlog_full), U(tcp_out_of_window), U(tcp_rcv_queue_full), U(tcp_ooo_queued),
             U(tcp_dup_segments), U(tcp_retransmits_rto), U(tcp_retransmits_fast),
             U(tcp_zero_window_probes), U(tcp_conns_opened), U(tcp_conns_closed),
             U(tcp_rx_bytes), U(tcp_tx_bytes), U(tcp_keepalive_probes),
             U(tcp_keepalive_timeouts), U(tcp_persist_timeouts));
#undef U
}

static void dpdk_destroy(struct net_backend *b) {
    struct dpdk_io *d = container_of(b->ops, struct dpdk_io, ops);
    log_info("dpdk_backend_stopped",
             "queue=%u rx=%llu tx=%llu tx_dropped=%llu zc_segments=%llu steered_out=%llu "
             "steered_in=%llu steer_dropped=%llu arp_copies=%llu orphan_rx=%llu "
             "orphan_dropped=%llu rx_multi_seg=%llu fault_dropped=%llu fault_reordered=%llu",
             d->queue, (unsigned long long)d->stats.rx_packets,
             (unsigned long long)d->stats.tx_packets, (unsigned long long)d->stats.tx_dropped,
             (unsigned long long)d->stats.tx_zero_copy_segments,
             (unsigned long long)d->stats.steered_out, (unsigned long long)d->stats.steered_in,
             (unsigned long long)d->stats.steer_dropped, (unsigned long long)d->stats.arp_copies,
             (unsigned long long)d->stats.orphan_rx, (unsigned long long)d->stats.orphan_dropped,
             (unsigned long long)d->stats.rx_multi_seg_dropped,
             (unsigned long long)d->stats.fault_dropped,
             (unsigned long long)d->stats.fault_reordered);
    log_stack_stats(d);
    b->ops = d->inner;
    net_destroy(b); /* the stack gives its frames back through pkt_free */
    if (d->tx_count > 0) tx_flush(d, d->now_us);
    if (d->rx_held) rte_pktmbuf_free(d->rx_held);
    if (d->tx_held) rte_pktmbuf_free(d->tx_held);
    if (d->steer) { /* frames steered to us that nobody will read */
        struct rte_mbuf *m;
        while (rte_ring_sc_dequeue(d->own_ring, (void **)&m) == 0) rte_pktmbuf_free(m);
        queue_orphan(d); /* last: the queue and the ring are the others' from here */
    }
    free(d);
    dpdk_port_thread_unregister();
}

int net_dpdk_parse_ipv4(const char *text, uint32_t *out) {
    struct in_addr a;
    if (!text || inet_pton(AF_INET, text, &a) != 1) return -1;
    *out = ntohl(a.s_addr);
    return 0;
}

bool net_dpdk_is(const struct net_backend *b) { return b->ops->poll == dpdk_poll; }

void net_dpdk_stats(const struct net_backend *b, struct net_dpdk_stats *out) {
    assert(net_dpdk_is(b));
    const struct dpdk_io *d = container_of(b->ops, struct dpdk_io, ops);
    *out = d->stats;
}

struct net_backend *net_dpdk_create(const struct net_dpdk_config *cfg,
                                    const struct net_events *events, void *events_ctx,
                                    char *err, size_t err_bytes) {
    uint16_t queues = dpdk_port_queue_count(cfg->port);
    if (cfg->queue >= queues) {
        snprintf(err, err_bytes, "queue %u of %u", cfg->queue, queues);
        return NULL;
    }
    int rc = dpdk_port_thread_register();
    if (rc != 0) {
        snprintf(err, err_bytes, "rte_thread_register: %s", strerror(-rc));
        return NULL;
    }
    struct dpdk_io *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_bytes, "out of memory");
        dpdk_port_thread_unregister();
        return NULL;
    }
    d->port_id = dpdk_port_id(cfg->port);
    assert(d->port_id < RTE_MAX_ETHPORTS); /* port_orphans is indexed by it */
    d->queue = cfg->queue;
    d->queue_count = queues;
    d->steer = queues > 1;
    d->steer_tcp = d->steer && !dpdk_port_hw_rss(cfg->port);
    d->pool = dpdk_port_pool(cfg->port, cfg->queue);
    d->ext_pool = dpdk_port_ext_pool(cfg->port, cfg->queue);
    for (uint16_t q = 0; q < queues; q++) d->rings[q] = dpdk_port_steer_ring(cfg->port, q);
    d->own_ring = d->rings[cfg->queue];
    dpdk_port_faults(cfg->port, &d->drop_percent, &d->reorder_percent);
    d->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)cfg->queue + 1) * 0xbf58476d1ce4e5b9ull;
    d->io = (struct ustack_io){.tx_alloc = io_tx_alloc, .tx_attach = io_tx_attach,
                               .tx_burst = io_tx_burst, .pkt_free = io_pkt_free};
    struct dpdk_port_info info;
    dpdk_port_info(cfg->port, &info);
    struct ustack_port up = {.mtu = info.mtu ? info.mtu : 1500,
                             .tx_ip_csum_offload = false, /* flags would need l2/l3 setup */
                             .tx_tcp_csum_offload = false,
                             .tx_max_segments = info.tx_multi_segs ? DPDK_MAX_SEGMENTS - 1 : 0};
    memcpy(up.mac, info.mac, sizeof up.mac);
    struct ustack_config sc = {.ip = cfg->ip, .netmask = cfg->netmask,
                               .gateway = cfg->gateway, .max_conns = cfg->max_conns,
                               .keepalive_idle_ms = cfg->keepalive_idle_ms,
                               .keepalive_interval_ms = cfg->keepalive_interval_ms,
                               .keepalive_probes = cfg->keepalive_probes,
                               .isn_seed = 0}; /* RFC 6528 ISNs */
    d->client_port_base = cfg->client_port_base;
    d->client_port_span = cfg->client_port_span;
    if (d->client_port_span) {
        uint32_t lo = (uint32_t)cfg->client_port_base + (uint32_t)cfg->queue * cfg->client_port_span;
        if (lo + cfg->client_port_span - 1 > UINT16_MAX || cfg->client_port_base == 0) {
            snprintf(err, err_bytes, "client ports %u + %u x %u queues exceed 65535",
                     cfg->client_port_base, cfg->client_port_span, queues);
            free(d);
            dpdk_port_thread_unregister();
            return NULL;
        }
        sc.ephemeral_port_lo = (uint16_t)lo;
        sc.ephemeral_port_hi = (uint16_t)(lo + cfg->client_port_span - 1);
    }
    d->stack = ustack_create(&sc, &up, &d->io, d, err, err_bytes);
    if (!d->stack) {
        free(d);
        dpdk_port_thread_unregister();
        return NULL;
    }
    d->backend = ustack_backend_create(d->stack, events, events_ctx, err, err_bytes);
    if (!d->backend) {
        ustack_destroy(d->stack);
        free(d);
        dpdk_port_thread_unregister();
        return NULL;
    }
    d->inner = d->backend->ops;
    d->ops = *d->inner;
    d->ops.poll = dpdk_poll;
    d->ops.destroy = dpdk_destroy;
    d->backend->ops = &d->ops;
    d->backend->name = "dpdk";
    if (d->steer) queue_take_back(d);
    return d->backend;
}
