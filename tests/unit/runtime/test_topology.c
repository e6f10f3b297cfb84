/* test_topology.c - cpulist parsing, sysfs topology (a fabricated tree and this host),
 * core selection and pinning. */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw/topology.h"

Test(cpulist, parses_ranges_and_lists) {
    int out[16];
    cr_assert_eq(cpulist_parse("0-3,8,10-11", out, 16, 64), 7);
    int want[] = {0, 1, 2, 3, 8, 10, 11};
    for (int i = 0; i < 7; i++) cr_expect_eq(out[i], want[i]);
    cr_assert_eq(cpulist_parse("5", out, 16, 64), 1);
    cr_expect_eq(out[0], 5);
    cr_assert_eq(cpulist_parse("3,1-2,2", out, 16, 64), 3, "overlaps and disorder collapse");
    cr_expect_eq(out[0], 1);
    cr_expect_eq(out[2], 3);
}

Test(cpulist, rejects_garbage) {
    int out[4];
    const char *bad[] = {"", "a", "1-", "-1", "3-1", "1,,2", "1 2", "0-99", "1,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(cpulist_parse(bad[i], out, 4, 64), -1, "'%s' must not parse", bad[i]);
    cr_expect_eq(cpulist_parse("0-4", out, 4, 64), -1, "more ids than room");
}

static void write_file(const char *dir, const char *rel, const char *text) {
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    cr_assert_eq(system(cmd), 0);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

/* 2 nodes x 2 cores x 2 threads: cpus 0-3 on node 0 (siblings 0/2, 1/3), 4-7 node 1. */
static void fake_sysfs(char *dir) {
    strcpy(dir, "/tmp/sluice-topo-XXXXXX");
    cr_assert(mkdtemp(dir));
    write_file(dir, "devices/system/cpu/online", "0-7\n");
    const char *sib[] = {"0,2", "1,3", "0,2", "1,3", "4,6", "5,7", "4,6", "5,7"};
    for (int c = 0; c < 8; c++) {
        char rel[128];
        snprintf(rel, sizeof rel, "devices/system/cpu/cpu%d/topology/thread_siblings_list", c);
        write_file(dir, rel, sib[c]);
    }
    write_file(dir, "devices/system/node/node0/cpulist", "0-3\n");
    write_file(dir, "devices/system/node/node1/cpulist", "4-7\n");
}

Test(topology, reads_a_fabricated_tree) {
    char dir[64], err[256];
    fake_sysfs(dir);
    static struct cpu_topology t;
    cr_assert_eq(topology_load(&t, dir, err, sizeof err), 0, "%s", err);
    cr_expect_eq(t.online_count, 8);
    cr_expect_eq(t.node_count, 2);
    cr_expect_eq(t.physical_core_count, 4);
    cr_expect_eq(t.node_of[5], 1);
    cr_expect_eq(t.core_of[2], 0);
    cr_expect_eq(t.core_of[7], 5);

    int cores[16];
    cr_assert_eq(cores_select(&t, "all", cores, 16, err, sizeof err), 8);
    /* A count takes one thread per physical core first, node 0 first. */
    cr_assert_eq(cores_select(&t, "2", cores, 16, err, sizeof err), 2);
    cr_expect_eq(cores[0], 0);
    cr_expect_eq(cores[1], 1);
    cr_assert_eq(cores_select(&t, "4", cores, 16, err, sizeof err), 4);
    int want4[] = {0, 1, 4, 5};
    for (int i = 0; i < 4; i++) cr_expect_eq(cores[i], want4[i]);
    cr_assert_eq(cores_select(&t, "5", cores, 16, err, sizeof err), 5, "then siblings");
    cr_assert_eq(cores_select(&t, "2,4-5", cores, 16, err, sizeof err), 3);
    cr_expect_eq(cores[0], 2);
    cr_expect_eq(cores_select(&t, "9", cores, 16, err, sizeof err), -1);
    cr_expect_eq(cores_select(&t, "0", cores, 16, err, sizeof err), -1);
    cr_expect_eq(cores_select(&t, "x", cores, 16, err, sizeof err), -1);
    cr_expect_eq(cores_select(&t, "6-9", cores, 16, err, sizeof err), -1, "9 is not online");
    /* Control gets a free core when there are more than 2. */
    int two[] = {0, 1};
    cr_expect_eq(control_core_pick(&t, two, 2), 7);
    int all[] = {0, 1, 2, 3, 4, 5, 6, 7};
    cr_expect_eq(control_core_pick(&t, all, 8), -1);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(topology, missing_tree_is_an_error) {
    static struct cpu_topology t;
    char err[256];
    cr_expect_eq(topology_load(&t, "/nonexistent-sysfs", err, sizeof err), -1);
    cr_expect(strlen(err) > 0);
}

Test(topology, this_host_and_pinning) {
    static struct cpu_topology t;
    char err[256];
    cr_assert_eq(topology_load(&t, "/sys", err, sizeof err), 0, "%s", err);
    cr_expect_eq(t.online_count, sysconf(_SC_NPROCESSORS_ONLN));
    int cpu = t.online[t.online_count - 1];
    cr_assert_eq(topology_pin_self(cpu), 0);
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    cr_expect_eq(CPU_COUNT(&set), 1);
    cr_expect(CPU_ISSET(cpu, &set));
    cr_expect_eq(sched_getcpu(), cpu);
}
