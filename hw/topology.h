/* topology.h - CPU topology from sysfs, core selection and thread pinning.
 *
 * The broker runs one shard thread per core it is given. topology_load() reads what the
 * kernel publishes under /sys/devices/system (online CPUs, the NUMA node of each, the
 * hyperthread siblings of each) into a fixed-size table. cores_select() turns the
 * sluice.cores value ("all", a count "N", or a list "0,2-3") into the cores shards run on;
 * a count prefers one hyperthread per physical core before using siblings, and stays on
 * the lowest NUMA node first. The sysfs root is a parameter so tests can point it at a
 * fabricated tree. No allocation: everything lives in struct cpu_topology. */
#ifndef SLUICE_HW_TOPOLOGY_H
#define SLUICE_HW_TOPOLOGY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define TOPO_MAX_CPUS 1024

struct cpu_topology {
    int online_count;             /* entries in online[] */
    int online[TOPO_MAX_CPUS];    /* online CPU ids, ascending */
    int node_of[TOPO_MAX_CPUS];   /* NUMA node of each CPU id (0 when unknown) */
    int core_of[TOPO_MAX_CPUS];   /* lowest sibling: CPUs with equal core_of share a core */
    int node_count;               /* NUMA nodes seen (at least 1) */
    int physical_core_count;      /* distinct core_of values among online CPUs */
};

/* Parse a kernel cpulist ("0-3,8,10-11") into ascending unique ids. Returns the count,
 * or -1 when the text does not parse, an id is >= max_id, or more than max_out ids. */
int cpulist_parse(const char *text, int *out, int max_out, int max_id);

/* Load from sysfs_root ("/sys" in production). 0 or -1 with a message in err. */
int topology_load(struct cpu_topology *topo, const char *sysfs_root, char *err,
                  size_t err_bytes);

/* "all" | "N" | cpulist. Fills cores[] (at most max_cores). Returns the count or -1 with a
 * message in err (not a number/list, a core that is not online, N > online, N = 0). */
int cores_select(const struct cpu_topology *topo, const char *spec, int *cores,
                 int max_cores, char *err, size_t err_bytes);

/* A core for the control thread that no shard uses, when more than 2 CPUs are online and
 * one is free; -1 otherwise (the control thread then stays unpinned). */
int control_core_pick(const struct cpu_topology *topo, const int *shard_cores, int count);

/* Pin the calling thread to one CPU. 0 or an errno value. */
int topology_pin_self(int cpu);

bool topology_is_online(const struct cpu_topology *topo, int cpu);

#endif
