/* config.h - broker configuration: a Kafka-style properties file plus overrides.
 *
 * Keys are named as Kafka names them (log.retention.ms, num.partitions, ...); sluice's
 * own keys start with "sluice." or "dpdk.". Every key the broker understands is listed
 * once in a registry (config.c) with its type, default and a one-line doc; that table is
 * what DescribeConfigs answers from and what validation checks against. Unknown keys are
 * kept and logged as a warning, as Kafka does.
 *
 * Precedence: registry default < --config FILE < --set key=value (and the flags that are
 * shorthands: --listen, --data-dir, --cores). A config is built once at boot by the
 * control thread and is read-only afterwards; shards read values copied out at start. */
#ifndef SLUICE_CONTROL_CONFIG_H
#define SLUICE_CONTROL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_type { CONFIG_STRING, CONFIG_INT, CONFIG_LONG, CONFIG_BOOL, CONFIG_LIST };

enum config_source {
    CONFIG_SOURCE_DEFAULT = 0, /* registry default */
    CONFIG_SOURCE_FILE = 1,    /* --config FILE */
    CONFIG_SOURCE_OVERRIDE = 2 /* --set and shorthand flags */
};

struct config_key {
    const char *name;
    enum config_type type;
    const char *default_value; /* NULL = no default (null in DescribeConfigs) */
    int64_t min_value;         /* for INT/LONG */
    int64_t max_value;
    const char *doc;
};

#define CONFIG_MAX_ENTRIES 256
#define CONFIG_MAX_KEY_BYTES 128
#define CONFIG_MAX_VALUE_BYTES 1024

struct config_entry {
    char key[CONFIG_MAX_KEY_BYTES];
    char value[CONFIG_MAX_VALUE_BYTES];
    enum config_source source;
};

struct config {
    struct config_entry entries[CONFIG_MAX_ENTRIES];
    int entry_count;
};

void config_init(struct config *cfg);

/* Both return 0 on success, -1 with a message in err on failure. */
int config_load_file(struct config *cfg, const char *path, char *err, size_t err_bytes);
int config_set(struct config *cfg, const char *key, const char *value,
               enum config_source source, char *err, size_t err_bytes);
/* "key=value" as given to --set. */
int config_set_assignment(struct config *cfg, const char *assignment, char *err,
                          size_t err_bytes);

/* Value set or the registry default; NULL when neither exists. */
const char *config_get(const struct config *cfg, const char *key);
int64_t config_get_i64(const struct config *cfg, const char *key);
bool config_get_bool(const struct config *cfg, const char *key);
enum config_source config_source_of(const struct config *cfg, const char *key);

const struct config_key *config_registry_find(const char *name);
const struct config_key *config_registry(size_t *count);

/* Validate a value against a registered key's type and range (0 ok, -1 with err). */
int config_validate(const struct config_key *key, const char *value, char *err,
                    size_t err_bytes);

#endif
