/* serve.c - `sluice serve`: build the config from defaults, file and flags, then boot.
 *
 * Flags are shorthands for config keys: --listen HOST:PORT sets listeners,
 * --data-dir sets log.dirs, --cores sets sluice.cores; --set k=v sets anything. The
 * config file is applied first and the flags after it, in the order given, whatever
 * their position on the command line. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "control/cli.h"
#include "control/config.h"
#include "control/broker.h"
#include "hw/log.h"

static void serve_usage(FILE *out) {
    fprintf(out,
            "usage: sluice serve [--config FILE] [--set key=value]... [--listen HOST:PORT]\n"
            "                    [--data-dir DIR] [--cores N|LIST]\n"
            "Runs the broker. Without options: listener 127.0.0.1:9092, data in\n"
            "./sluice-data, all online cores, kernel sockets through io_uring.\n"
            "--cores takes a count (4), a list (0,2-3) or all; one given core is a\n"
            "one-element range (3-3). SIGINT/SIGTERM stop it gracefully (exit 0).\n");
}

static int apply_flag(struct config *cfg, int opt, const char *arg) {
    char err[256], assignment[CONFIG_MAX_VALUE_BYTES + 64];
    switch (opt) {
    case 'l': snprintf(assignment, sizeof assignment, "listeners=PLAINTEXT://%s", arg); break;
    case 'd': snprintf(assignment, sizeof assignment, "log.dirs=%s", arg); break;
    case 'c': snprintf(assignment, sizeof assignment, "sluice.cores=%s", arg); break;
    case 's': snprintf(assignment, sizeof assignment, "%s", arg); break;
    default: return 0;
    }
    if (config_set_assignment(cfg, assignment, err, sizeof err) != 0) {
        fprintf(stderr, "sluice serve: %s\n", err);
        return -1;
    }
    return 0;
}

int cmd_serve(int argc, char **argv) {
    static const struct option options[] = {
        {"config", required_argument, NULL, 'f'}, {"set", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'l'}, {"data-dir", required_argument, NULL, 'd'},
        {"cores", required_argument, NULL, 'c'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct config cfg; /* large; built once */
    config_init(&cfg);
    const char *config_path = NULL;
    int opt;
    optind = 1;
    /* First pass: find --config so the file is applied before every flag. */
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == 'f') config_path = optarg;
        if (opt == 'h') { serve_usage(stdout); return 0; }
        if (opt == '?') { serve_usage(stderr); return 2; }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char err[512];
    if (config_path && config_load_file(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "sluice serve: %s\n", err);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1)
        if (apply_flag(&cfg, opt, optarg) != 0) return 2;
    enum log_level level;
    if (!log_parse_level(config_get(&cfg, "sluice.log.level"), &level)) {
        fprintf(stderr, "sluice serve: sluice.log.level must be debug, info, warn or error\n");
        return 2;
    }
    log_set_level(level);
    return broker_run(&cfg);
}
