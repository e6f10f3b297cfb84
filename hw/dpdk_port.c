/* dpdk_port.c - EAL init and one ethdev port set up for the shards.
 *
 * EAL. The control thread calls rte_eal_init once, before the shards start, with:
 *     sluice --in-memory|--no-shconf --file-prefix=sluicePID --no-telemetry
 *            --log-level=*:warning --lcores=0@(CPUS)
 *            [--no-huge -m MB]  <dpdk.eal.args split on blanks>
 * --in-memory (with hugepages) or --no-shconf (--no-huge) and a per-process file prefix:
 * two sluice processes (the two-process test, loadgen -> broker) never share or collide
 * on a runtime directory. The only EAL
 * lcore is the main one, mapped to the CPUs the calling thread may already run on, so
 * the EAL does not move the control thread. Hugepages are used when the host has free
 * ones; otherwise --no-huge with memory sized from the queue count.
 *
 * Threads. The shards stay sluice's own pinned pthreads (they own an io_uring, the
 * storage and the mesh; the broker starts and joins them the same way with or without
 * DPDK). Each registers itself with rte_thread_register(), which gives it an lcore id:
 * that is all the mempool per-lcore caches and rte_lcore_id() need. Running them as EAL
 * lcores instead would tie shard start, pinning and exit to rte_eal_remote_launch.
 *
 * Queues. One RX/TX queue pair per shard; queue i belongs to shard i only (no locks).
 * Each queue has its own mbuf pool on its shard's NUMA node (falling back to any node:
 * --no-huge memory is on node 0) used for the frames it receives and the headers it
 * sends. When the device hashes the TCP/IPv4 4-tuple in hardware (RSS), every packet
 * of a connection arrives on one queue and that is all. Otherwise (net_af_packet, whose
 * "queues" are sockets in a kernel fanout group -- hash with rollover, so a busy socket
 * spills flows onto others -- and net_tap) the shards steer in software: the receiving
 * shard hashes the 4-tuple itself and hands a frame it does not own to the owner's
 * steering ring (an rte_ring, multi-producer single-consumer, bounded; full: the frame
 * is dropped and TCP retransmits). ARP frames are copied to every shard, so each
 * shard's ARP cache learns. dataplane/net/dpdk_io.c does the steering.
 *
 * Without DPDK (SLUICE_HAVE_DPDK 0) the functions exist and open fails with -ENOTSUP. */
#include "hw/dpdk_port.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/log.h"
#include "sluice_config.h"

void dpdk_format_mac(const uint8_t mac[6], char *out, size_t out_bytes) {
    snprintf(out, out_bytes, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
}

#if SLUICE_HAVE_DPDK

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#define DPDK_DEFAULT_MBUFS 8191u      /* 2^n - 1: the mempool ring's best size */
#define DPDK_MBUF_CACHE 256u
#define DPDK_RX_DESC 1024u
#define DPDK_TX_DESC 1024u
#define DPDK_STEER_RING_SLOTS 1024u
#define DPDK_NOHUGE_BASE_MB 64u
#define DPDK_ARG_BYTES 4096u

struct dpdk_port {
    uint16_t port_id;
    uint16_t queue_count;
    bool hw_rss;
    bool hugepages;
    uint32_t fault_drop_percent, fault_reorder_percent;
    struct rte_mempool *pools[DPDK_PORT_MAX_QUEUES];
    struct rte_mempool *ext_pools[DPDK_PORT_MAX_QUEUES];
    struct rte_ring *steer[DPDK_PORT_MAX_QUEUES];
    struct rte_eth_dev_info dev_info;
};

static bool eal_initialised;

static uint64_t hugepages_free(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long free_pages = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "HugePages_Free: %llu", &free_pages) == 1) break;
    fclose(f);
    return free_pages;
}

/* "(0-3,6)": the CPUs this thread may run on, as ranges, for --lcores=0@(...). */
static int current_cpus(char *out, size_t out_bytes) {
    cpu_set_t set;
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0) return -1;
    size_t used = 0;
    out[used++] = '(';
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        int last = cpu;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) last++;
        int n = last > cpu ? snprintf(out + used, out_bytes - used, "%s%d-%d",
                                      used > 1 ? "," : "", cpu, last)
                           : snprintf(out + used, out_bytes - used, "%s%d",
                                      used > 1 ? "," : "", cpu);
        if (n < 0 || (size_t)n >= out_bytes - used - 1) return -1;
        used += (size_t)n;
        cpu = last;
    }
    if (used == 1 || used + 2 > out_bytes) return -1;
    out[used++] = ')';
    out[used] = '\0';
    return 0;
}

/* The EAL's argv: our fixed arguments, then dpdk.eal.args split on blanks. The strings
 * live in static storage: the EAL may keep pointers into argv. */
static int build_eal_args(const struct dpdk_port_config *cfg, bool hugepages, char **argv,
                          int *argc, char *err, size_t err_bytes) {
    static char text[DPDK_ARG_BYTES];
    static char lcores[512];
    static char mem_mb[16];
    int n = 0;
    argv[n++] = "sluice";
    /* With hugepages --in-memory (no hugetlbfs files); without, the EAL refuses it
     * (--no-huge runs in legacy mode) and --no-shconf with a per-process prefix does. */
    static char prefix[48];
    snprintf(prefix, sizeof prefix, "--file-prefix=sluice%ld", (long)getpid());
    argv[n++] = hugepages ? "--in-memory" : "--no-shconf";
    argv[n++] = prefix;
    argv[n++] = "--no-telemetry";
    argv[n++] = "--log-level=*:warning";
    char cpus[480];
    if (current_cpus(cpus, sizeof cpus) != 0) {
        snprintf(err, err_bytes, "cannot read this thread's CPU affinity");
        return -EINVAL;
    }
    snprintf(lcores, sizeof lcores, "--lcores=0@%s", cpus);
    argv[n++] = lcores;
    if (!hugepages) {
        argv[n++] = "--no-huge";
        argv[n++] = "-m";
        /* pools: mbufs * ~2.3 KiB each, plus rings and the EAL's own */
        uint32_t per_queue = cfg->mbufs_per_queue ? cfg->mbufs_per_queue : DPDK_DEFAULT_MBUFS;
        uint64_t mb = DPDK_NOHUGE_BASE_MB +
                      ((uint64_t)cfg->queue_count * per_queue * 2560u >> 20) * 2u; /* + ext pools */
        snprintf(mem_mb, sizeof mem_mb, "%llu", (unsigned long long)mb);
        argv[n++] = mem_mb;
    }
    const char *src = cfg->eal_args ? cfg->eal_args : "";
    if (strlen(src) >= sizeof text) {
        snprintf(err, err_bytes, "dpdk.eal.args longer than %u bytes", DPDK_ARG_BYTES - 1);
        return -EINVAL;
    }
    strcpy(text, src);
    for (char *save = NULL, *tok = strtok_r(text, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (n >= DPDK_PORT_EAL_ARGS_MAX - 1) {
            snprintf(err, err_bytes, "dpdk.eal.args: more than %d arguments",
                     DPDK_PORT_EAL_ARGS_MAX - 12);
            return -E2BIG;
        }
        argv[n++] = tok;
    }
    argv[n] = NULL;
    *argc = n;
    return 0;
}

/* A pool on node (or any node when that has no memory: --no-huge memory is on one). */
static struct rte_mempool *pool_on_node(const char *name, uint32_t mbufs, uint16_t data_room,
                                        int node) {
    int socket = node >= 0 ? node : SOCKET_ID_ANY;
    struct rte_mempool *mp = rte_pktmbuf_pool_create(name, mbufs, DPDK_MBUF_CACHE,
                                                     DPDK_PORT_MBUF_PRIV_BYTES, data_room,
                                                     socket);
    if (!mp && socket != SOCKET_ID_ANY)
        mp = rte_pktmbuf_pool_create(name, mbufs, DPDK_MBUF_CACHE, DPDK_PORT_MBUF_PRIV_BYTES,
                                     data_room, SOCKET_ID_ANY);
    return mp;
}

static int pools_create(struct dpdk_port *p, const struct dpdk_port_config *cfg, char *err,
                        size_t err_bytes) {
    uint32_t mbufs = cfg->mbufs_per_queue ? cfg->mbufs_per_queue : DPDK_DEFAULT_MBUFS;
    for (uint16_t q = 0; q < p->queue_count; q++) {
        int node = cfg->queue_nodes ? cfg->queue_nodes[q] : -1;
        char name[RTE_MEMPOOL_NAMESIZE];
        snprintf(name, sizeof name, "sluice_q%u", q);
        p->pools[q] = pool_on_node(name, mbufs, RTE_MBUF_DEFAULT_BUF_SIZE, node);
        snprintf(name, sizeof name, "sluice_ext%u", q);
        if (p->pools[q]) p->ext_pools[q] = pool_on_node(name, mbufs, 0, node);
        if (!p->pools[q] || !p->ext_pools[q]) {
            snprintf(err, err_bytes, "mbuf pool for queue %u: %s", q, rte_strerror(rte_errno));
            return -ENOMEM;
        }
        snprintf(name, sizeof name, "sluice_steer%u", q);
        p->steer[q] = rte_ring_create(name, DPDK_STEER_RING_SLOTS, SOCKET_ID_ANY,
                                      RING_F_SC_DEQ);
        if (!p->steer[q]) {
            snprintf(err, err_bytes, "steering ring %u: %s", q, rte_strerror(rte_errno));
            return -ENOMEM;
        }
    }
    return 0;
}

static int port_configure(struct dpdk_port *p, char *err, size_t err_bytes) {
    uint16_t port = p->port_id;
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    uint64_t want_rss = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
    p->hw_rss = p->queue_count > 1 && (p->dev_info.flow_type_rss_offloads & want_rss) != 0;
    if (p->hw_rss) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = want_rss & p->dev_info.flow_type_rss_offloads;
    }
    if (p->dev_info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS; /* header + attached payload */
    int rc = rte_eth_dev_configure(port, p->queue_count, p->queue_count, &conf);
    if (rc != 0) {
        snprintf(err, err_bytes, "rte_eth_dev_configure(port %u, %u queues): %s", port,
                 p->queue_count, rte_strerror(-rc));
        return rc;
    }
    uint16_t rx_desc = DPDK_RX_DESC, tx_desc = DPDK_TX_DESC;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_desc, &tx_desc);
    if (rc != 0) {
        snprintf(err, err_bytes, "descriptor counts: %s", rte_strerror(-rc));
        return rc;
    }
    for (uint16_t q = 0; q < p->queue_count; q++) {
        int socket = p->pools[q]->socket_id; /* SOCKET_ID_ANY (-1) passes as any */
        rc = rte_eth_rx_queue_setup(port, q, rx_desc, (unsigned)socket, NULL, p->pools[q]);
        if (rc == 0) rc = rte_eth_tx_queue_setup(port, q, tx_desc, (unsigned)socket, NULL);
        if (rc != 0) {
            snprintf(err, err_bytes, "queue %u setup: %s", q, rte_strerror(-rc));
            return rc;
        }
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0) {
        snprintf(err, err_bytes, "rte_eth_dev_start: %s", rte_strerror(-rc));
        return rc;
    }
    return 0;
}

int dpdk_port_open(const struct dpdk_port_config *cfg, struct dpdk_port **out, char *err,
                   size_t err_bytes) {
    *out = NULL;
    if (cfg->queue_count < 1 || cfg->queue_count > DPDK_PORT_MAX_QUEUES) {
        snprintf(err, err_bytes, "queue count %u not in 1..%d", cfg->queue_count,
                 DPDK_PORT_MAX_QUEUES);
        return -EINVAL;
    }
    if (eal_initialised) {
        snprintf(err, err_bytes, "the EAL is initialised once per process");
        return -EALREADY;
    }
    bool hugepages = hugepages_free() > 0;
    static char *argv[DPDK_PORT_EAL_ARGS_MAX];
    int argc = 0;
    int rc = build_eal_args(cfg, hugepages, argv, &argc, err, err_bytes);
    if (rc != 0) return rc;
    if (rte_eal_init(argc, argv) < 0) {
        snprintf(err, err_bytes, "rte_eal_init: %s", rte_strerror(rte_errno));
        return -rte_errno ? -rte_errno : -EINVAL;
    }
    eal_initialised = true;
    struct dpdk_port *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_bytes, "out of memory");
        rte_eal_cleanup();
        return -ENOMEM;
    }
    p->port_id = cfg->port_id;
    p->queue_count = cfg->queue_count;
    p->hugepages = hugepages;
    p->fault_drop_percent = cfg->fault_drop_percent;
    p->fault_reorder_percent = cfg->fault_reorder_percent;
    if (!rte_eth_dev_is_valid_port(p->port_id)) {
        snprintf(err, err_bytes, "no DPDK port %u (%u ports; pass a device: dpdk.eal.args="
                 "\"--vdev=net_af_packet0,iface=IF\" or bind a NIC)", p->port_id,
                 rte_eth_dev_count_avail());
        rc = -ENODEV;
        goto fail;
    }
    rc = rte_eth_dev_info_get(p->port_id, &p->dev_info);
    if (rc != 0) {
        snprintf(err, err_bytes, "rte_eth_dev_info_get: %s", rte_strerror(-rc));
        goto fail;
    }
    if (p->dev_info.max_rx_queues < p->queue_count || p->dev_info.max_tx_queues < p->queue_count) {
        snprintf(err, err_bytes, "port %u has %u rx / %u tx queues, %u shards need one pair "
                 "each (net_af_packet: qpairs=%u)", p->port_id, p->dev_info.max_rx_queues,
                 p->dev_info.max_tx_queues, p->queue_count, p->queue_count);
        rc = -ENOSPC;
        goto fail;
    }
    rc = pools_create(p, cfg, err, err_bytes);
    if (rc == 0) rc = port_configure(p, err, err_bytes);
    if (rc != 0) goto fail;
    *out = p;
    return 0;
fail:
    dpdk_port_close(p);
    return rc < 0 ? rc : -EIO;
}

/* The EAL leaves its runtime directory (/var/run/dpdk/sluicePID) behind, sometimes with
 * its multi-process socket in it; it is this process's own, so remove it after the
 * EAL's cleanup (before it, the EAL could still create a file there). */
static void runtime_dir_remove(const char *dir) {
    if (!strstr(dir, "/sluice")) return;
    DIR *d = opendir(dir);
    if (!d) return;
    char path[600];
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

void dpdk_port_close(struct dpdk_port *p) {
    if (!p) return;
    struct rte_eth_stats st;
    if (rte_eth_dev_is_valid_port(p->port_id) && rte_eth_stats_get(p->port_id, &st) == 0)
        log_info("dpdk_port_stats", /* imissed: frames the device (kernel ring) dropped */
                 "port=%u ipackets=%llu opackets=%llu imissed=%llu ierrors=%llu oerrors=%llu "
                 "rx_nombuf=%llu", p->port_id, (unsigned long long)st.ipackets,
                 (unsigned long long)st.opackets, (unsigned long long)st.imissed,
                 (unsigned long long)st.ierrors, (unsigned long long)st.oerrors,
                 (unsigned long long)st.rx_nombuf);
    if (rte_eth_dev_is_valid_port(p->port_id)) {
        rte_eth_dev_stop(p->port_id);
        rte_eth_dev_close(p->port_id);
    }
    for (uint16_t q = 0; q < DPDK_PORT_MAX_QUEUES; q++) {
        rte_ring_free(p->steer[q]);
        rte_mempool_free(p->pools[q]);
        rte_mempool_free(p->ext_pools[q]);
    }
    free(p);
    char dir[256]; /* the EAL's name for it, taken before the cleanup */
    snprintf(dir, sizeof dir, "%s", rte_eal_get_runtime_dir());
    rte_eal_cleanup();
    runtime_dir_remove(dir);
}

void dpdk_port_info(const struct dpdk_port *p, struct dpdk_port_info *info) {
    memset(info, 0, sizeof *info);
    info->port_id = p->port_id;
    rte_eth_dev_get_name_by_port(p->port_id, info->name);
    snprintf(info->driver, sizeof info->driver, "%s",
             p->dev_info.driver_name ? p->dev_info.driver_name : "?");
    struct rte_ether_addr mac;
    if (rte_eth_macaddr_get(p->port_id, &mac) == 0) memcpy(info->mac, mac.addr_bytes, 6);
    rte_eth_dev_get_mtu(p->port_id, &info->mtu);
    struct rte_eth_link link;
    memset(&link, 0, sizeof link);
    if (rte_eth_link_get_nowait(p->port_id, &link) == 0) {
        info->link_up = link.link_status == RTE_ETH_LINK_UP;
        info->link_speed_mbps = link.link_speed;
        info->link_full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    }
    info->queue_count = p->queue_count;
    info->hw_rss = p->hw_rss;
    info->hugepages = p->hugepages;
    info->tx_csum_ipv4 = (p->dev_info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0;
    info->tx_csum_tcp = (p->dev_info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) != 0;
    info->rx_csum = (p->dev_info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) != 0;
    info->tx_multi_segs = (p->dev_info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
}

uint16_t dpdk_port_id(const struct dpdk_port *p) { return p->port_id; }
uint16_t dpdk_port_queue_count(const struct dpdk_port *p) { return p->queue_count; }
bool dpdk_port_hw_rss(const struct dpdk_port *p) { return p->hw_rss; }

void dpdk_port_faults(const struct dpdk_port *p, uint32_t *drop_percent,
                      uint32_t *reorder_percent) {
    *drop_percent = p->fault_drop_percent;
    *reorder_percent = p->fault_reorder_percent;
}

void *dpdk_port_pool(const struct dpdk_port *p, uint16_t q) {
    assert(q < p->queue_count);
    return p->pools[q];
}

void *dpdk_port_ext_pool(const struct dpdk_port *p, uint16_t q) {
    assert(q < p->queue_count);
    return p->ext_pools[q];
}

void *dpdk_port_steer_ring(const struct dpdk_port *p, uint16_t q) {
    assert(q < p->queue_count);
    return p->steer[q];
}

int dpdk_port_thread_register(void) {
    if (rte_lcore_id() != LCORE_ID_ANY) return 0; /* the EAL's own thread */
    return rte_thread_register() == 0 ? 0 : -rte_errno;
}

void dpdk_port_thread_unregister(void) { rte_thread_unregister(); }

#else /* !SLUICE_HAVE_DPDK */

int dpdk_port_open(const struct dpdk_port_config *cfg, struct dpdk_port **out, char *err,
                   size_t err_bytes) {
    (void)cfg;
    *out = NULL;
    snprintf(err, err_bytes, "this sluice was built without DPDK (meson -Ddpdk=enabled)");
    return -ENOTSUP;
}
void dpdk_port_close(struct dpdk_port *p) { assert(!p); }
void dpdk_port_info(const struct dpdk_port *p, struct dpdk_port_info *info) {
    (void)p;
    memset(info, 0, sizeof *info);
}
uint16_t dpdk_port_id(const struct dpdk_port *p) { (void)p; return 0; }
uint16_t dpdk_port_queue_count(const struct dpdk_port *p) { (void)p; return 0; }
bool dpdk_port_hw_rss(const struct dpdk_port *p) { (void)p; return false; }
void dpdk_port_faults(const struct dpdk_port *p, uint32_t *drop_percent,
                      uint32_t *reorder_percent) {
    (void)p;
    *drop_percent = 0;
    *reorder_percent = 0;
}
void *dpdk_port_pool(const struct dpdk_port *p, uint16_t q) { (void)p; (void)q; return NULL; }
void *dpdk_port_ext_pool(const struct dpdk_port *p, uint16_t q) {
    (void)p;
    (void)q;
    return NULL;
}
void *dpdk_port_steer_ring(const struct dpdk_port *p, uint16_t q) {
    (void)p;
    (void)q;
    return NULL;
}
int dpdk_port_thread_register(void) { return -ENOTSUP; }
void dpdk_port_thread_unregister(void) {}

#endif
