/* check.c - `sluice check`: what this machine offers and lacks, one line each.
 * The probes live in hw/probe.c; this prints them and turns a missing required feature
 * into a non-zero exit status (1). */
#include <stdio.h>
#include <string.h>

#include "control/cli.h"
#include "hw/probe.h"
#include "sluice_config.h"

int cmd_check(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: sluice check\nPrints what this host offers the broker; exits 1 when a "
               "required feature is missing.\n");
        return 0;
    }
    static struct probe_report report;
    probe_host(&report, "/sys", SLUICE_HAVE_DPDK);
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
