/* dpdk_io.h - the DPDK backend: one port queue driving a userspace TCP/IP stack.
 *
 * net_dpdk_create() builds, on the calling shard's thread, the packet driver for queue q
 * of a port opened by hw/dpdk_port.h, a ustack (dataplane/net/ustack.h) on it, and the
 * stack's net_backend, to which it adds the poll op (net.h): the shard polls it every
 * loop iteration. See dpdk_io.c for RX, TX, zero copy, steering and the queues of
 * instances destroyed before the others (a live instance polls them). */
#ifndef SLUICE_DATAPLANE_NET_DPDK_IO_H
#define SLUICE_DATAPLANE_NET_DPDK_IO_H

#include <stddef.h>
#include <stdint.h>

#include "dataplane/net/net.h"

struct dpdk_port;

struct net_dpdk_config {
    struct dpdk_port *port;
    uint16_t queue;                 /* the shard's queue pair */
    uint32_t ip, netmask, gateway;  /* host byte order (gateway 0: on-link only) */
    uint32_t max_conns;             /* TCP connection slots (0: the stack's default) */
    /* TCP keepalive (ustack_config.keepalive_*): idle 0 = off (the load generator) */
    uint32_t keepalive_idle_ms, keepalive_interval_ms, keepalive_probes;
    /* Client side over several queues (the load generator): queue q's stack takes its
     * ephemeral ports from [base + q*span, base + (q+1)*span), and a TCP frame whose
     * destination port falls in that range is steered to q. 0: off (server side). */
    uint16_t client_port_base, client_port_span;
};

/* Counters of the driver (the stack has its own: ustack_stats). */
struct net_dpdk_stats {
    uint64_t rx_packets, tx_packets;
    uint64_t rx_multi_seg_dropped;  /* a chained RX frame (larger than an mbuf) */
    uint64_t tx_dropped;            /* the queue refused them after retries */
    uint64_t tx_zero_copy_segments; /* external segments attached */
    uint64_t steered_out, steered_in, steer_dropped; /* software steering */
    uint64_t arp_copies;            /* ARP frames copied to the other shards */
    uint64_t orphan_rx;             /* frames taken from queues whose instance is gone */
    uint64_t orphan_dropped;        /* frames for a gone instance (its stack is no more) */
    uint64_t fault_dropped, fault_reordered; /* test faults (hw/dpdk_port.h) */
};

/* NULL on failure, with a message in err. Must run on the thread that will poll it. */
struct net_backend *net_dpdk_create(const struct net_dpdk_config *cfg,
                                    const struct net_events *events, void *events_ctx,
                                    char *err, size_t err_bytes);
/* true when b was made by net_dpdk_create. */
bool net_dpdk_is(const struct net_backend *b);
void net_dpdk_stats(const struct net_backend *b, struct net_dpdk_stats *out);
/* "10.0.0.1" -> host byte order; -1 when not a dotted quad. */
int net_dpdk_parse_ipv4(const char *text, uint32_t *out);

#endif
