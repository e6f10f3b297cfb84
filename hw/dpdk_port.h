/* dpdk_port.h - one DPDK ethdev port for the shards: EAL, queues, mbuf pools, report.
 *
 * No DPDK type crosses this header (pools and rings are `void *`), so the control layer
 * and `sluice check` call it whether or not the binary was built with DPDK; without
 * DPDK dpdk_port_open() fails with -ENOTSUP. See dpdk_port.c for the design: EAL
 * arguments, one RX/TX queue pair per shard, RSS or software steering, per-shard pools.
 *
 * Life cycle (one port per process, opened by the control thread before the shards):
 *     dpdk_port_open(cfg)               EAL up, port configured and started
 *     shard i: dpdk_port_thread_register(), then polls queue i through
 *              dataplane/net/dpdk_io.c (pool i, steer ring i)
 *     dpdk_port_close()                 after every shard has exited
 */
#ifndef SLUICE_HW_DPDK_PORT_H
#define SLUICE_HW_DPDK_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DPDK_PORT_MAX_QUEUES 64
#define DPDK_PORT_EAL_ARGS_MAX 32
/* Every mbuf of both pools has this many bytes of private area (the driver keeps its
 * per-frame descriptor there: dataplane/net/dpdk_io.c). */
#define DPDK_PORT_MBUF_PRIV_BYTES 64u

struct dpdk_port_config {
    const char *eal_args;      /* dpdk.eal.args, split on blanks, passed through */
    uint16_t port_id;          /* dpdk.port */
    uint16_t queue_count;      /* one RX/TX pair per shard: 1..DPDK_PORT_MAX_QUEUES */
    const int *queue_nodes;    /* queue_count entries: the shard's NUMA node (-1: any);
                                  NULL: any for all */
    uint32_t mbufs_per_queue;  /* 0: the default (8191) */
    /* Test faults, for machines without netem: the driver drops this percentage of TCP
     * frames and holds back (reorders) this percentage, both ways (dpdk_io.c). 0: off. */
    uint32_t fault_drop_percent;
    uint32_t fault_reorder_percent;
};

/* What `sluice check` and the ready line print. */
struct dpdk_port_info {
    uint16_t port_id;
    char name[64];             /* the device name, e.g. net_af_packet0 */
    char driver[32];
    uint8_t mac[6];
    uint16_t mtu;
    bool link_up;
    uint32_t link_speed_mbps;
    bool link_full_duplex;
    uint16_t queue_count;
    bool hw_rss;               /* RSS on the TCP/IPv4 4-tuple by the device */
    bool hugepages;            /* false: the EAL ran with --no-huge */
    bool tx_csum_ipv4;         /* checksum offloads the device offers */
    bool tx_csum_tcp;
    bool rx_csum;
    bool tx_multi_segs;        /* a TX frame may be a chain (header + attached payload) */
};

struct dpdk_port;

/* EAL init and port setup. 0, or -errno with a message in err. Only once per process
 * (the EAL cannot be initialised twice). */
int dpdk_port_open(const struct dpdk_port_config *cfg, struct dpdk_port **out, char *err,
                   size_t err_bytes);
/* Stop and close the port and clean the EAL up. The shards must have exited. */
void dpdk_port_close(struct dpdk_port *port);

void dpdk_port_info(const struct dpdk_port *port, struct dpdk_port_info *info);
uint16_t dpdk_port_id(const struct dpdk_port *port);
uint16_t dpdk_port_queue_count(const struct dpdk_port *port);
/* Queue q's mbuf pool (struct rte_mempool *), on its shard's NUMA node: RX frames and
 * TX headers. */
void *dpdk_port_pool(const struct dpdk_port *port, uint16_t q);
/* Queue q's pool of data-less mbufs, for attaching external buffers (zero-copy TX). */
void *dpdk_port_ext_pool(const struct dpdk_port *port, uint16_t q);
/* Queue q's steering ring (struct rte_ring *, multi-producer, single-consumer): frames
 * another queue received for a flow queue q owns, and copies of ARP frames. */
void *dpdk_port_steer_ring(const struct dpdk_port *port, uint16_t q);
/* The test faults of the config (percent; 0 0: none). */
void dpdk_port_faults(const struct dpdk_port *port, uint32_t *drop_percent,
                      uint32_t *reorder_percent);
/* true when the device spreads TCP flows by itself (hw RSS) and no steering is needed. */
bool dpdk_port_hw_rss(const struct dpdk_port *port);

/* A shard thread calls this once before touching its queue (and unregister before it
 * exits): it gets an EAL lcore id, so the mempool per-lcore caches work for it. */
int dpdk_port_thread_register(void);
void dpdk_port_thread_unregister(void);

/* "02:00:00:00:00:01" */
void dpdk_format_mac(const uint8_t mac[6], char *out, size_t out_bytes);

#endif
