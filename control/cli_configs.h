/* cli_configs.h - `sluice configs describe|alter`, and the config change that
 * `sluice topics alter-config` shares with it. */
#ifndef SLUICE_CONTROL_CLI_CONFIGS_H
#define SLUICE_CONTROL_CLI_CONFIGS_H

#include <stdbool.h>

#include "control/cli_common.h"

/* Kafka's ConfigResource.Type values. */
#define CLI_RESOURCE_TOPIC 2
#define CLI_RESOURCE_BROKER 4

/* IncrementalAlterConfigs on one resource: SET each "K=V" in sets, DELETE each key in
 * deletes. Prints a one-row result table; returns a CLI exit code. */
int cli_configs_alter(const struct cli_common *o, struct kclient *c, int8_t resource_type,
                      const char *resource_name, const char *const *sets, int set_count,
                      const char *const *deletes, int delete_count, bool validate_only);

#endif
