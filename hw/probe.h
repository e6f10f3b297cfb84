/* probe.h - what this host offers the broker: io_uring features, kernel, memory, cores.
 *
 * Each probe fills one struct probe_result line: a name, whether the feature is there,
 * whether the broker requires it, and a short human detail. io_uring opcodes are checked
 * with io_uring_get_probe_ring() AND, where a probe cannot tell (provided buffer rings,
 * multishot flags), with a real setup attempt on a scratch ring. `sluice check` prints
 * the lines and fails when a required one is missing. */
#ifndef SLUICE_HW_PROBE_H
#define SLUICE_HW_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#define PROBE_MAX_RESULTS 32

struct probe_result {
    char name[48];
    bool ok;
    bool required;
    char detail[160];
};

struct probe_report {
    int count;
    struct probe_result results[PROBE_MAX_RESULTS];
};

/* Run every probe; sysfs_root is "/sys" (a parameter for tests); dpdk_built says
 * whether the binary has the DPDK backend compiled in. */
void probe_host(struct probe_report *report, const char *sysfs_root, bool dpdk_built);
/* true when every required result is ok. */
bool probe_report_ok(const struct probe_report *report);

#endif
