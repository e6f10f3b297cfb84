/* cli_common.h - what every admin subcommand shares: the common options
 * (--bootstrap-server/-b HOST:PORT, --json, --timeout-ms N, --help), argument helpers,
 * error reporting with the CLI's exit codes, and a Metadata lookup.
 *
 * Exit codes: 0 success; 1 the broker refused or could not be reached (a Kafka error, an
 * unknown topic, a timeout); 2 a bad command line. Errors go to stderr as
 * "sluice <command>: <sentence>". */
#ifndef SLUICE_CONTROL_CLI_COMMON_H
#define SLUICE_CONTROL_CLI_COMMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "control/cli_client.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2

enum { CLI_OPT_JSON = 1000, CLI_OPT_TIMEOUT, CLI_OPT_FIRST_COMMAND_OPTION };

#define CLI_COMMON_LONG_OPTIONS                                        \
    {"bootstrap-server", required_argument, 0, 'b'},                   \
    {"json", no_argument, 0, CLI_OPT_JSON},                            \
    {"timeout-ms", required_argument, 0, CLI_OPT_TIMEOUT},             \
    {"help", no_argument, 0, 'h'}
#define CLI_COMMON_SHORT_OPTIONS "b:h"
#define CLI_COMMON_USAGE                                                                    \
    "common options:\n"                                                                     \
    "  -b, --bootstrap-server HOST:PORT  broker to ask (default " CLI_DEFAULT_BOOTSTRAP ")\n" \
    "      --json                        JSON output instead of a table\n"                  \
    "      --timeout-ms N                per-request timeout (default 10000)\n"

struct cli_common {
    const char *command; /* "topics create", for messages */
    const char *bootstrap;
    int timeout_ms;
    bool json;
    bool help;
};

void cli_common_init(struct cli_common *o, const char *command);
/* Handle a common option from getopt_long; 1 handled, 0 not common, -1 bad value. */
int cli_common_option(struct cli_common *o, int opt, const char *arg);
/* getopt_long over argv (argv[0] = the action), resetting getopt's state first. */
void cli_getopt_reset(void);

/* Print "sluice <command>: <message>" to stderr; returns `code`. */
int cli_fail(const struct cli_common *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Strict decimal parsing: the whole string, within [min, max]. */
int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Milliseconds since the epoch from "YYYY-MM-DDTHH:MM:SS[.mmm][Z]" (UTC) or a number. */
int cli_parse_datetime_ms(const char *s, int64_t *out_ms);

/* Connect to o->bootstrap: 0, or (reason printed) CLI_EXIT_USAGE for a malformed address,
 * CLI_EXIT_FAILED for an unreachable broker. */
int cli_connect(const struct cli_common *o, struct kclient *c);

/* Metadata for the named topics (count 0: every topic). */
int cli_metadata(const struct cli_common *o, struct kclient *c, char *const *topics,
                 int topic_count, struct kafka_metadata_response *resp);

/* A NUL-terminated copy of a Kafka string view into buf ("" for null). */
const char *cli_str(struct kafka_str s, char *buf, size_t cap);

#endif
