/* check.c - `sluice check`: what this machine offers and lacks, one line each.
 * The probes live in hw/probe.c; this prints them and turns a missing required feature
 * into a non-zero exit status (1). With --config/--set giving dpdk.enabled=true it also
 * brings the DPDK port up as `sluice serve` would (EAL, one queue pair per shard core)
 * and reports its driver, link, MAC, MTU, queues and RSS; a port that does not come up
 * is a missing required feature then. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "control/cli.h"
#include "control/config.h"
#include "hw/dpdk_port.h"
#include "hw/probe.h"
#include "hw/topology.h"
#include "sluice_config.h"

static void add_line(struct probe_report *r, const char *name, bool ok, bool required,
                     const char *detail) {
    if (r->count >= PROBE_MAX_RESULTS) return;
    struct probe_result *res = &r->results[r->count++];
    snprintf(res->name, sizeof res->name, "%s", name);
    res->ok = ok;
    res->required = required;
    size_t len = strlen(detail); /* long EAL messages are cut to the line */
    if (len >= sizeof res->detail) len = sizeof res->detail - 1;
    memcpy(res->detail, detail, len);
    res->detail[len] = '\0';
}

/* Open the port as the broker would (queue per shard core) and describe it. */
static void probe_dpdk_port(struct probe_report *r, const struct config *cfg) {
    static struct cpu_topology topo;
    static int cores[DPDK_PORT_MAX_QUEUES], nodes[DPDK_PORT_MAX_QUEUES];
    char err[256], detail[160];
    int shards = -1;
    if (topology_load(&topo, "/sys", err, sizeof err) == 0)
        shards = cores_select(&topo, config_get(cfg, "sluice.cores"), cores,
                              DPDK_PORT_MAX_QUEUES, err, sizeof err);
    if (shards <= 0) {
        add_line(r, "dpdk port", false, true, err);
        return;
    }
    for (int i = 0; i < shards; i++) nodes[i] = topo.node_of[cores[i]];
    struct dpdk_port_config pc = {
        .eal_args = config_get(cfg, "dpdk.eal.args"),
        .port_id = (uint16_t)config_get_i64(cfg, "dpdk.port"),
        .queue_count = (uint16_t)shards,
        .queue_nodes = nodes,
    };
    struct dpdk_port *port = NULL;
    if (dpdk_port_open(&pc, &port, err, sizeof err) != 0) {
        add_line(r, "dpdk port", false, true, err);
        return;
    }
    struct dpdk_port_info info;
    dpdk_port_info(port, &info);
    char mac[24];
    dpdk_format_mac(info.mac, mac, sizeof mac);
    snprintf(detail, sizeof detail, "%u %s (%s) link %s %u Mb/s mac %s mtu %u", info.port_id,
             info.name, info.driver, info.link_up ? "up" : "DOWN", info.link_speed_mbps, mac,
             info.mtu);
    add_line(r, "dpdk port", true, true, detail);
    snprintf(detail, sizeof detail, "%u rx/tx pair(s), %s, %s, tx csum offload %s",
             info.queue_count,
             info.queue_count == 1 ? "one queue"
             : info.hw_rss         ? "hw RSS on the TCP/IPv4 4-tuple"
                                   : "software steering (no hw RSS)",
             info.hugepages ? "hugepages" : "--no-huge", info.tx_csum_tcp ? "yes" : "no");
    add_line(r, "dpdk queues", true, true, detail);
    dpdk_port_close(port);
}

static int check_config(struct config *cfg, int argc, char **argv) {
    static const struct option options[] = {
        {"config", required_argument, NULL, 'f'}, {"set", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    char err[512];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'f' && config_load_file(cfg, optarg, err, sizeof err) != 0) {
            fprintf(stderr, "sluice check: %s\n", err);
            return -1;
        }
        if (opt == 's' && config_set_assignment(cfg, optarg, err, sizeof err) != 0) {
            fprintf(stderr, "sluice check: %s\n", err);
            return -1;
        }
        if (opt == '?') return -1;
    }
    return 0;
}

int cmd_check(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: sluice check [--config FILE] [--set key=value]...\nPrints what this "
               "host offers the broker; exits 1 when a required feature is missing.\n"
               "With dpdk.enabled=true, also brings the DPDK port up and reports it.\n");
        return 0;
    }
    static struct config cfg;
    config_init(&cfg);
    if (check_config(&cfg, argc, argv) != 0) return 2;
    static struct probe_report report;
    probe_host(&report, "/sys", SLUICE_HAVE_DPDK);
    if (config_get_bool(&cfg, "dpdk.enabled")) probe_dpdk_port(&report, &cfg);
    for (int i = 0; i < report.count; i++) {
        const struct probe_result *r = &report.results[i];
        const char *status = r->ok ? "ok" : (r->required ? "MISSING" : "absent");
        printf("%-8s %-32s %s%s\n", status, r->name, r->detail,
               !r->ok && r->required ? " (required)" : "");
    }
    bool ok = probe_report_ok(&report);
    printf("%s\n", ok ? "ready: every required feature is present"
                      : "not ready: a required feature is missing");
    return ok ? 0 : 1;
}
