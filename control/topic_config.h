/* topic_config.h - per-topic configuration: Kafka's topic keys, their defaults, validation,
 * incremental alteration and the DescribeConfigs view.
 *
 * A topic stores only its overrides (struct topic_config: a bitmask of set keys plus each
 * value as a normalized string). Everything else follows Kafka's layering: the effective
 * value of a key is the topic override if set, else the broker key that Kafka maps it to
 * (retention.ms <- log.retention.ms | log.retention.minutes | log.retention.hours,
 * segment.ms <- log.roll.ms | log.roll.hours, max.message.bytes <- message.max.bytes, ...)
 * when that is set in the broker config, else Kafka's default. The table of keys lives in
 * topic_config.c, one row per key, as control/config.c does for broker keys.
 *
 * Validation follows Kafka's ConfigDef for topics: type, range and the allowed values of
 * enums and lists. cleanup.policy=compact is refused until compaction exists. A value is
 * normalized when stored (booleans lower case, list items trimmed), so a stored value never
 * holds whitespace and fits TOPIC_CONFIG_VALUE_BYTES.
 *
 * Error results are Kafka error codes (INVALID_CONFIG, INVALID_REQUEST) plus a message, as
 * the CreateTopics / IncrementalAlterConfigs handlers answer them. */
#ifndef SLUICE_CONTROL_TOPIC_CONFIG_H
#define SLUICE_CONTROL_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/config.h"

/* Kafka error codes used by topic configs (numbers as Kafka's Errors enum). */
#define TOPIC_CONFIG_ERR_NONE 0
#define TOPIC_CONFIG_ERR_INVALID_REQUEST 42
#define TOPIC_CONFIG_ERR_INVALID_CONFIG 40

/* DescribeConfigsResponse ConfigType numbering. */
enum kafka_config_type {
    KAFKA_CONFIG_TYPE_UNKNOWN = 0,
    KAFKA_CONFIG_TYPE_BOOLEAN = 1,
    KAFKA_CONFIG_TYPE_STRING = 2,
    KAFKA_CONFIG_TYPE_INT = 3,
    KAFKA_CONFIG_TYPE_SHORT = 4,
    KAFKA_CONFIG_TYPE_LONG = 5,
    KAFKA_CONFIG_TYPE_DOUBLE = 6,
    KAFKA_CONFIG_TYPE_LIST = 7,
    KAFKA_CONFIG_TYPE_CLASS = 8,
    KAFKA_CONFIG_TYPE_PASSWORD = 9
};

/* DescribeConfigsResponse ConfigSource numbering. */
enum kafka_config_source {
    KAFKA_CONFIG_SOURCE_UNKNOWN = 0,
    KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG = 1,
    KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG = 2,
    KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG = 3,
    KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG = 4,
    KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG = 5
};

/* IncrementalAlterConfigsRequest ConfigOperation numbering. */
enum topic_config_op {
    TOPIC_CONFIG_OP_SET = 0,
    TOPIC_CONFIG_OP_DELETE = 1,
    TOPIC_CONFIG_OP_APPEND = 2,
    TOPIC_CONFIG_OP_SUBTRACT = 3
};

enum topic_config_key {
    TOPIC_CONFIG_CLEANUP_POLICY,
    TOPIC_CONFIG_COMPRESSION_TYPE,
    TOPIC_CONFIG_DELETE_RETENTION_MS,
    TOPIC_CONFIG_FILE_DELETE_DELAY_MS,
    TOPIC_CONFIG_FLUSH_MESSAGES,
    TOPIC_CONFIG_FLUSH_MS,
    TOPIC_CONFIG_INDEX_INTERVAL_BYTES,
    TOPIC_CONFIG_MAX_MESSAGE_BYTES,
    TOPIC_CONFIG_MESSAGE_DOWNCONVERSION_ENABLE,
    TOPIC_CONFIG_MESSAGE_TIMESTAMP_DIFFERENCE_MAX_MS,
    TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE,
    TOPIC_CONFIG_MIN_COMPACTION_LAG_MS,
    TOPIC_CONFIG_MIN_INSYNC_REPLICAS,
    TOPIC_CONFIG_PREALLOCATE,
    TOPIC_CONFIG_RETENTION_BYTES,
    TOPIC_CONFIG_RETENTION_MS,
    TOPIC_CONFIG_SEGMENT_BYTES,
    TOPIC_CONFIG_SEGMENT_INDEX_BYTES,
    TOPIC_CONFIG_SEGMENT_MS,
    TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE,
    TOPIC_CONFIG_KEY_COUNT
};

#define TOPIC_CONFIG_VALUE_BYTES 64
#define TOPIC_CONFIG_MAX_BROKER_SYNONYMS 3
/* Synonyms of one key: the topic override, each broker synonym, the default. */
#define TOPIC_CONFIG_MAX_SYNONYMS (TOPIC_CONFIG_MAX_BROKER_SYNONYMS + 2)
/* Longest list of ops one alter call applies. */
#define TOPIC_CONFIG_MAX_OPS 64

/* One row of the key table. */
struct topic_config_def {
    const char *name;
    enum kafka_config_type type;
    const char *default_value;        /* Kafka's default for the topic key */
    int64_t min_value;                /* INT/LONG */
    int64_t max_value;
    const char *const *allowed;       /* STRING/LIST: NULL-terminated allowed values */
    /* Broker keys in Kafka's precedence order; the value of the first one set wins. */
    const char *broker_synonyms[TOPIC_CONFIG_MAX_BROKER_SYNONYMS];
    int64_t broker_unit_ms[TOPIC_CONFIG_MAX_BROKER_SYNONYMS]; /* 0: same unit as the key */
    /* Name and value under which DescribeConfigs reports the default (Kafka names the
     * broker key that carries the default, e.g. log.retention.hours=168). */
    const char *default_synonym_name;
    const char *default_synonym_value;
    const char *doc;
};

/* A topic's overrides. Plain data: copied by value into snapshots. */
struct topic_config {
    uint32_t set_mask; /* bit k: key k is overridden */
    char values[TOPIC_CONFIG_KEY_COUNT][TOPIC_CONFIG_VALUE_BYTES];
};

/* Effective values, parsed, for the data plane. */
enum topic_timestamp_type { TOPIC_TIMESTAMP_CREATE_TIME = 0, TOPIC_TIMESTAMP_LOG_APPEND_TIME = 1 };
enum topic_compression {
    TOPIC_COMPRESSION_PRODUCER = 0,
    TOPIC_COMPRESSION_UNCOMPRESSED,
    TOPIC_COMPRESSION_GZIP,
    TOPIC_COMPRESSION_SNAPPY,
    TOPIC_COMPRESSION_LZ4,
    TOPIC_COMPRESSION_ZSTD
};

struct topic_config_values {
    bool cleanup_delete;
    bool cleanup_compact;
    enum topic_compression compression;
    int64_t delete_retention_ms;
    int64_t file_delete_delay_ms;
    int64_t flush_messages;
    int64_t flush_ms;
    int64_t index_interval_bytes;
    int64_t max_message_bytes;
    bool message_downconversion_enable;
    int64_t message_timestamp_difference_max_ms;
    enum topic_timestamp_type message_timestamp_type;
    int64_t min_compaction_lag_ms;
    int64_t min_insync_replicas;
    bool preallocate;
    int64_t retention_bytes;
    int64_t retention_ms;
    int64_t segment_bytes;
    int64_t segment_index_bytes;
    int64_t segment_ms;
    bool unclean_leader_election_enable;
};

/* One alter operation as IncrementalAlterConfigs carries it (value NULL for DELETE). */
struct topic_config_alter_op {
    const char *name;
    enum topic_config_op op;
    const char *value;
};

struct topic_config_synonym {
    const char *name;
    char value[TOPIC_CONFIG_VALUE_BYTES];
    enum kafka_config_source source;
};

/* What DescribeConfigs answers for one key of one topic. */
struct topic_config_entry {
    const char *name;
    char value[TOPIC_CONFIG_VALUE_BYTES];
    enum kafka_config_source source;
    bool is_sensitive;
    bool read_only;
    enum kafka_config_type config_type;
    const char *documentation;
    int synonym_count;
    struct topic_config_synonym synonyms[TOPIC_CONFIG_MAX_SYNONYMS];
};

const struct topic_config_def *topic_config_defs(size_t *count);
/* Key id for a Kafka topic key name, -1 when unknown. */
int topic_config_find(const char *name);

void topic_config_init(struct topic_config *tc);
bool topic_config_is_set(const struct topic_config *tc, int key);

/* Validate value for key and write its normalized form (TOPIC_CONFIG_VALUE_BYTES).
 * Returns 0 or INVALID_CONFIG with a message in err. */
int16_t topic_config_normalize(int key, const char *value, char *normalized, char *err,
                               size_t err_bytes);

/* Set one override by name (CreateTopics configs, catalogue reload). 0 or a Kafka error. */
int16_t topic_config_set(struct topic_config *tc, const char *name, const char *value,
                         char *err, size_t err_bytes);

/* Apply ops atomically: all are validated against a copy first; tc changes only when every
 * op is valid. Duplicate keys are INVALID_REQUEST, as Kafka answers them. */
int16_t topic_config_alter(struct topic_config *tc, const struct config *broker,
                           const struct topic_config_alter_op *ops, size_t op_count,
                           char *err, size_t err_bytes);

/* Effective value string of key (override, broker synonym, default) and its source. */
enum kafka_config_source topic_config_effective(const struct topic_config *tc,
                                                const struct config *broker, int key,
                                                char value[TOPIC_CONFIG_VALUE_BYTES]);

/* DescribeConfigs view of key (0 <= key < TOPIC_CONFIG_KEY_COUNT). */
void topic_config_describe(const struct topic_config *tc, const struct config *broker,
                           int key, struct topic_config_entry *out);

/* Every effective value, parsed. */
void topic_config_resolve(const struct topic_config *tc, const struct config *broker,
                          struct topic_config_values *out);

/* Check that the broker keys topics take defaults from hold values valid for the topic
 * keys (e.g. log.cleanup.policy=compact is refused). 0 ok, -1 with err. */
int topic_config_check_broker(const struct config *broker, char *err, size_t err_bytes);

#endif
