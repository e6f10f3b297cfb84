/* main.c - the one sluice binary: a table of subcommands.
 *
 *   sluice serve [--config FILE] [--set k=v]... [--listen HOST:PORT] [--data-dir DIR]
 *                [--cores N|LIST]                   the broker
 *   sluice check                                     is this machine ready
 *   sluice version
 *   sluice topics|groups|configs|offsets ...         admin CLI (control/cli_*.c)
 *   sluice loadgen ...                               load against any broker (perf/)
 *
 * Each subcommand lives with the subsystem it belongs to and has the shape
 * int cmd(int argc, char **argv), argv[0] being the subcommand's name. */
#include <stdio.h>
#include <string.h>

#include "control/cli.h"
#include "perf/loadgen.h"
#include "sluice_config.h"

static int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("sluice %s (dpdk %s)\n", SLUICE_VERSION, SLUICE_HAVE_DPDK ? "built in" : "not built");
    return 0;
}

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"serve", cmd_serve, "run the broker (defaults: 127.0.0.1:9092, ./sluice-data)"},
    {"check", cmd_check, "report what this machine offers and lacks"},
    {"loadgen", cmd_loadgen, "generate Kafka load against any broker and measure it"},
    {"topics", cmd_topics, "list|create|describe|delete|alter-config|add-partitions topics"},
    {"configs", cmd_configs, "describe|alter topic and broker configs"},
    {"offsets", cmd_offsets, "earliest/latest/by-time offsets per partition"},
    {"groups", cmd_groups, "list|describe|delete|reset-offsets consumer groups"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: sluice <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-9s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n'sluice <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
