/* topology.c - sysfs CPU topology, core selection and pinning. See topology.h.
 *
 * Sources read (all optional except the online list):
 *   <root>/devices/system/cpu/online                           online CPUs
 *   <root>/devices/system/cpu/cpuN/topology/thread_siblings_list  hyperthreads of N
 *   <root>/devices/system/node/nodeK/cpulist                   CPUs of NUMA node K
 * A missing siblings file means "its own core"; a missing node tree means one node. */
#include "hw/topology.h"

#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPO_MAX_NODES 64
#define TOPO_LINE_BYTES 4096

/* Read one small text file into buf; false when missing or empty. */
static bool read_text(const char *path, char *buf, size_t buf_bytes) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, buf_bytes - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
    return n > 0;
}

static bool parse_uint(const char **p, int *out) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return false;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 1000000) return false;
        s++;
    }
    *out = (int)v;
    *p = s;
    return true;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int cpulist_parse(const char *text, int *out, int max_out, int max_id) {
    assert(max_out >= 0 && max_id > 0);
    if (!text || !*text) return -1;
    /* Mark ids in a bitmap first: ranges may overlap and arrive unsorted. */
    unsigned char seen[TOPO_MAX_CPUS];
    if (max_id > TOPO_MAX_CPUS) max_id = TOPO_MAX_CPUS;
    memset(seen, 0, sizeof seen);
    const char *p = text;
    for (;;) {
        int lo, hi;
        if (!parse_uint(&p, &lo)) return -1;
        hi = lo;
        if (*p == '-') {
            p++;
            if (!parse_uint(&p, &hi) || hi < lo) return -1;
        }
        if (hi >= max_id) return -1;
        for (int c = lo; c <= hi; c++) seen[c] = 1;
        if (*p == '\0') break;
        if (*p != ',') return -1;
        p++;
    }
    int count = 0;
    for (int c = 0; c < max_id; c++) {
        if (!seen[c]) continue;
        if (count == max_out) return -1;
        out[count++] = c;
    }
    return count;
}

bool topology_is_online(const struct cpu_topology *topo, int cpu) {
    for (int i = 0; i < topo->online_count; i++)
        if (topo->online[i] == cpu) return true;
    return false;
}

static void load_siblings(struct cpu_topology *topo, const char *root) {
    char path[512], line[TOPO_LINE_BYTES];
    int sib[TOPO_MAX_CPUS];
    for (int i = 0; i < topo->online_count; i++) {
        int cpu = topo->online[i];
        topo->core_of[cpu] = cpu;
        snprintf(path, sizeof path, "%s/devices/system/cpu/cpu%d/topology/thread_siblings_list",
                 root, cpu);
        if (!read_text(path, line, sizeof line)) continue;
        int n = cpulist_parse(line, sib, TOPO_MAX_CPUS, TOPO_MAX_CPUS);
        if (n > 0) topo->core_of[cpu] = sib[0]; /* ascending: sib[0] is the lowest */
    }
    int distinct = 0;
    for (int i = 0; i < topo->online_count; i++) {
        int cpu = topo->online[i];
        if (topo->core_of[cpu] == cpu || !topology_is_online(topo, topo->core_of[cpu]))
            distinct++;
    }
    topo->physical_core_count = distinct;
}

static void load_nodes(struct cpu_topology *topo, const char *root) {
    char path[512], line[TOPO_LINE_BYTES];
    int cpus[TOPO_MAX_CPUS];
    topo->node_count = 1;
    for (int node = 0; node < TOPO_MAX_NODES; node++) {
        snprintf(path, sizeof path, "%s/devices/system/node/node%d/cpulist", root, node);
        if (!read_text(path, line, sizeof line)) continue;
        int n = cpulist_parse(line, cpus, TOPO_MAX_CPUS, TOPO_MAX_CPUS);
        for (int i = 0; i < n; i++) topo->node_of[cpus[i]] = node;
        if (node + 1 > topo->node_count) topo->node_count = node + 1;
    }
}

int topology_load(struct cpu_topology *topo, const char *sysfs_root, char *err,
                  size_t err_bytes) {
    memset(topo, 0, sizeof *topo);
    char path[512], line[TOPO_LINE_BYTES];
    snprintf(path, sizeof path, "%s/devices/system/cpu/online", sysfs_root);
    if (!read_text(path, line, sizeof line)) {
        snprintf(err, err_bytes, "cannot read %s", path);
        return -1;
    }
    int n = cpulist_parse(line, topo->online, TOPO_MAX_CPUS, TOPO_MAX_CPUS);
    if (n <= 0) {
        snprintf(err, err_bytes, "%s: cannot parse '%s'", path, line);
        return -1;
    }
    topo->online_count = n;
    load_siblings(topo, sysfs_root);
    load_nodes(topo, sysfs_root);
    return 0;
}

/* A count: one CPU per physical core first (lowest node first), then the siblings. */
static int select_count(const struct cpu_topology *topo, int want, int *cores) {
    int count = 0;
    for (int pass = 0; pass < 2 && count < want; pass++) {
        for (int node = 0; node < topo->node_count && count < want; node++) {
            for (int i = 0; i < topo->online_count && count < want; i++) {
                int cpu = topo->online[i];
                if (topo->node_of[cpu] != node) continue;
                bool primary = topo->core_of[cpu] == cpu;
                if ((pass == 0) != primary) continue;
                cores[count++] = cpu;
            }
        }
    }
    /* Any CPU missed (a sibling whose primary is offline, nodes beyond node_count). */
    for (int i = 0; i < topo->online_count && count < want; i++) {
        bool taken = false;
        for (int j = 0; j < count; j++) taken |= cores[j] == topo->online[i];
        if (!taken) cores[count++] = topo->online[i];
    }
    qsort(cores, (size_t)count, sizeof cores[0], cmp_int);
    return count;
}

int cores_select(const struct cpu_topology *topo, const char *spec, int *cores,
                 int max_cores, char *err, size_t err_bytes) {
    assert(topo->online_count > 0);
    if (!spec || strcmp(spec, "all") == 0 || strcmp(spec, "") == 0) {
        if (topo->online_count > max_cores) {
            snprintf(err, err_bytes, "%d online cores, at most %d shards", topo->online_count,
                     max_cores);
            return -1;
        }
        memcpy(cores, topo->online, (size_t)topo->online_count * sizeof cores[0]);
        return topo->online_count;
    }
    bool is_list = strchr(spec, ',') || strchr(spec, '-');
    if (!is_list) {
        const char *p = spec;
        int want;
        if (!parse_uint(&p, &want) || *p != '\0') {
            snprintf(err, err_bytes, "sluice.cores: '%s' is not all, a count or a list", spec);
            return -1;
        }
        if (want < 1 || want > topo->online_count || want > max_cores) {
            snprintf(err, err_bytes, "sluice.cores: %d cores asked, %d online (max %d)", want,
                     topo->online_count, max_cores);
            return -1;
        }
        return select_count(topo, want, cores);
    }
    int n = cpulist_parse(spec, cores, max_cores, TOPO_MAX_CPUS);
    if (n <= 0) {
        snprintf(err, err_bytes, "sluice.cores: '%s' is not a core list", spec);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!topology_is_online(topo, cores[i])) {
            snprintf(err, err_bytes, "sluice.cores: core %d is not online", cores[i]);
            return -1;
        }
    }
    return n;
}

int control_core_pick(const struct cpu_topology *topo, const int *shard_cores, int count) {
    if (topo->online_count <= 2) return -1;
    for (int i = topo->online_count - 1; i >= 0; i--) {
        int cpu = topo->online[i];
        bool used = false;
        for (int j = 0; j < count; j++) used |= shard_cores[j] == cpu;
        if (!used) return cpu;
    }
    return -1;
}

int topology_pin_self(int cpu) {
    assert(cpu >= 0 && cpu < CPU_SETSIZE);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
