/* topic_config.c - the table of Kafka topic keys, validation, alteration and describe.
 * See topic_config.h for the model. The table below gives, for each key, Kafka's type,
 * default, range or allowed values, and the broker keys Kafka takes its default from (in
 * Kafka's precedence order, with the unit factor where a broker key counts hours or
 * minutes). Every function here works on fixed-size buffers: a topic's overrides are one
 * plain struct and nothing allocates. */
#include "control/topic_config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LONG_MAX_STR "9223372036854775807"
#define HOUR_MS (3600LL * 1000LL)
#define MINUTE_MS (60LL * 1000LL)

static const char *const cleanup_policies[] = {"delete", "compact", NULL};
static const char *const compression_types[] = {"producer", "uncompressed", "gzip", "snappy",
                                                "lz4", "zstd", NULL};
static const char *const timestamp_types[] = {"CreateTime", "LogAppendTime", NULL};

#define SYN1(a) {a, NULL, NULL}, {0, 0, 0}
#define SYN2(a, b, ua, ub) {a, b, NULL}, {ua, ub, 0}
#define SYN3(a, b, c, ua, ub, uc) {a, b, c}, {ua, ub, uc}

/* Order matches enum topic_config_key. */
static const struct topic_config_def defs[TOPIC_CONFIG_KEY_COUNT] = {
    {"cleanup.policy", KAFKA_CONFIG_TYPE_LIST, "delete", 0, 0, cleanup_policies,
     SYN1("log.cleanup.policy"), "log.cleanup.policy", "delete",
     "delete: old segments are removed by retention.ms/retention.bytes (compact is not "
     "supported yet)."},
    {"compression.type", KAFKA_CONFIG_TYPE_STRING, "producer", 0, 0, compression_types,
     SYN1("compression.type"), "compression.type", "producer",
     "Compression of stored batches; producer keeps the producer's codec."},
    {"delete.retention.ms", KAFKA_CONFIG_TYPE_LONG, "86400000", 0, INT64_MAX, NULL,
     SYN1("log.cleaner.delete.retention.ms"), "log.cleaner.delete.retention.ms", "86400000",
     "How long delete tombstones are kept on compacted topics."},
    {"file.delete.delay.ms", KAFKA_CONFIG_TYPE_LONG, "60000", 0, INT64_MAX, NULL,
     SYN1("log.segment.delete.delay.ms"), "log.segment.delete.delay.ms", "60000",
     "Wait before a segment removed by retention is deleted from disk."},
    {"flush.messages", KAFKA_CONFIG_TYPE_LONG, LONG_MAX_STR, 1, INT64_MAX, NULL,
     SYN1("log.flush.interval.messages"), "log.flush.interval.messages", LONG_MAX_STR,
     "Accepted for compatibility; acks=all appends are always fsynced."},
    {"flush.ms", KAFKA_CONFIG_TYPE_LONG, LONG_MAX_STR, 0, INT64_MAX, NULL,
     SYN2("log.flush.interval.ms", "log.flush.scheduler.interval.ms", 0, 0),
     "log.flush.scheduler.interval.ms", LONG_MAX_STR,
     "Accepted for compatibility; acks=all appends are always fsynced."},
    {"index.interval.bytes", KAFKA_CONFIG_TYPE_INT, "4096", 0, INT32_MAX, NULL,
     SYN1("log.index.interval.bytes"), "log.index.interval.bytes", "4096",
     "Bytes of log between two offset index entries."},
    {"max.message.bytes", KAFKA_CONFIG_TYPE_INT, "1048588", 0, INT32_MAX, NULL,
     SYN1("message.max.bytes"), "message.max.bytes", "1048588",
     "Largest record batch the topic accepts."},
    {"message.downconversion.enable", KAFKA_CONFIG_TYPE_BOOLEAN, "true", 0, 0, NULL,
     SYN1("log.message.downconversion.enable"), "log.message.downconversion.enable", "true",
     "Whether old fetch versions may get batches down-converted."},
    {"message.timestamp.difference.max.ms", KAFKA_CONFIG_TYPE_LONG, LONG_MAX_STR, 0,
     INT64_MAX, NULL, SYN1("log.message.timestamp.difference.max.ms"),
     "log.message.timestamp.difference.max.ms", LONG_MAX_STR,
     "Largest allowed gap between a CreateTime timestamp and the broker's clock."},
    {"message.timestamp.type", KAFKA_CONFIG_TYPE_STRING, "CreateTime", 0, 0, timestamp_types,
     SYN1("log.message.timestamp.type"), "log.message.timestamp.type", "CreateTime",
     "CreateTime keeps the producer's timestamp; LogAppendTime stamps the broker's."},
    {"min.compaction.lag.ms", KAFKA_CONFIG_TYPE_LONG, "0", 0, INT64_MAX, NULL,
     SYN1("log.cleaner.min.compaction.lag.ms"), "log.cleaner.min.compaction.lag.ms", "0",
     "Youngest a record may be and still be compacted."},
    {"min.insync.replicas", KAFKA_CONFIG_TYPE_INT, "1", 1, INT32_MAX, NULL,
     SYN1("min.insync.replicas"), "min.insync.replicas", "1",
     "Replicas that must acknowledge an acks=all write (one node: 1)."},
    {"preallocate", KAFKA_CONFIG_TYPE_BOOLEAN, "false", 0, 0, NULL, SYN1("log.preallocate"),
     "log.preallocate", "false", "Preallocate segment files on roll."},
    {"retention.bytes", KAFKA_CONFIG_TYPE_LONG, "-1", -1, INT64_MAX, NULL,
     SYN1("log.retention.bytes"), "log.retention.bytes", "-1",
     "Size per partition above which old segments are deleted (-1 = unbounded)."},
    {"retention.ms", KAFKA_CONFIG_TYPE_LONG, "604800000", -1, INT64_MAX, NULL,
     SYN3("log.retention.ms", "log.retention.minutes", "log.retention.hours", 0, MINUTE_MS,
          HOUR_MS),
     "log.retention.hours", "168", "Age after which old segments are deleted (-1 = forever)."},
    {"segment.bytes", KAFKA_CONFIG_TYPE_INT, "1073741824", 14, INT32_MAX, NULL,
     SYN1("log.segment.bytes"), "log.segment.bytes", "1073741824", "Segment roll size."},
    {"segment.index.bytes", KAFKA_CONFIG_TYPE_INT, "10485760", 4, INT32_MAX, NULL,
     SYN1("log.index.size.max.bytes"), "log.index.size.max.bytes", "10485760",
     "Largest offset index of one segment."},
    {"segment.ms", KAFKA_CONFIG_TYPE_LONG, "604800000", 1, INT64_MAX, NULL,
     SYN2("log.roll.ms", "log.roll.hours", 0, HOUR_MS), "log.roll.hours", "168",
     "Segment roll age."},
    {"unclean.leader.election.enable", KAFKA_CONFIG_TYPE_BOOLEAN, "false", 0, 0, NULL,
     SYN1("unclean.leader.election.enable"), "unclean.leader.election.enable", "false",
     "Accepted for compatibility; a single node has no other replica to elect."},
};

const struct topic_config_def *topic_config_defs(size_t *count) {
    *count = TOPIC_CONFIG_KEY_COUNT;
    return defs;
}

int topic_config_find(const char *name) {
    for (int k = 0; k < TOPIC_CONFIG_KEY_COUNT; k++)
        if (strcmp(defs[k].name, name) == 0) return k;
    return -1;
}

void topic_config_init(struct topic_config *tc) { memset(tc, 0, sizeof *tc); }

bool topic_config_is_set(const struct topic_config *tc, int key) {
    assert(key >= 0 && key < TOPIC_CONFIG_KEY_COUNT);
    return (tc->set_mask >> key) & 1u;
}

/* Copy s without leading/trailing blanks into out (out_bytes); false when it does not fit. */
static bool copy_trimmed(const char *s, size_t len, char *out, size_t out_bytes) {
    while (len > 0 && (*s == ' ' || *s == '\t')) { s++; len--; }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    if (len >= out_bytes) return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static bool parse_i64(const char *s, int64_t *out) {
    if (*s == '\0') return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = v;
    return true;
}

static bool in_allowed(const char *const *allowed, const char *s) {
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(allowed[i], s) == 0) return true;
    return false;
}

static int16_t invalid(char *err, size_t err_bytes, const char *fmt, const char *a,
                       const char *b) {
    snprintf(err, err_bytes, fmt, a, b);
    return TOPIC_CONFIG_ERR_INVALID_CONFIG;
}

static int16_t normalize_number(const struct topic_config_def *d, const char *v, char *out,
                                char *err, size_t err_bytes) {
    int64_t n;
    if (!parse_i64(v, &n))
        return invalid(err, err_bytes, "Invalid value %s for configuration %s: not a number",
                       v, d->name);
    if (n < d->min_value || n > d->max_value) {
        snprintf(err, err_bytes,
                 "Invalid value %s for configuration %s: must be in [%" PRId64 ", %" PRId64 "]",
                 v, d->name, d->min_value, d->max_value);
        return TOPIC_CONFIG_ERR_INVALID_CONFIG;
    }
    snprintf(out, TOPIC_CONFIG_VALUE_BYTES, "%" PRId64, n);
    return 0;
}

/* cleanup.policy: comma-separated items, each allowed, no duplicates, not empty. */
static int16_t normalize_list(const struct topic_config_def *d, const char *v, char *out,
                              char *err, size_t err_bytes) {
    char item[TOPIC_CONFIG_VALUE_BYTES];
    size_t used = 0;
    int items = 0;
    out[0] = '\0';
    const char *p = v;
    for (int guard = 0; guard < TOPIC_CONFIG_VALUE_BYTES; guard++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!copy_trimmed(p, len, item, sizeof item) || item[0] == '\0')
            return invalid(err, err_bytes, "Invalid value %s for configuration %s: "
                           "empty or overlong list item", v, d->name);
        if (!in_allowed(d->allowed, item))
            return invalid(err, err_bytes, "Invalid value %s for configuration %s: "
                           "String must be one of: delete, compact", v, d->name);
        if (strcmp(d->name, "cleanup.policy") == 0 && strcmp(item, "compact") == 0) {
            snprintf(err, err_bytes, "cleanup.policy=compact is not supported yet: log "
                     "compaction is not implemented");
            return TOPIC_CONFIG_ERR_INVALID_CONFIG;
        }
        /* Skip a repeated item (Kafka keeps the set semantics of the policy). */
        char probe[TOPIC_CONFIG_VALUE_BYTES + 2];
        char hay[TOPIC_CONFIG_VALUE_BYTES + 2];
        snprintf(probe, sizeof probe, ",%s,", item);
        snprintf(hay, sizeof hay, ",%s,", out);
        if (!strstr(hay, probe)) {
            size_t n = strlen(item);
            if (used + n + (items ? 1 : 0) >= TOPIC_CONFIG_VALUE_BYTES)
                return invalid(err, err_bytes, "Invalid value %s for configuration %s: "
                               "too long", v, d->name);
            if (items) out[used++] = ',';
            memcpy(out + used, item, n + 1);
            used += n;
            items++;
        }
        if (!comma) return 0;
        p = comma + 1;
    }
    return invalid(err, err_bytes, "Invalid value %s for configuration %s: too many items", v,
                   d->name);
}

int16_t topic_config_normalize(int key, const char *value, char *normalized, char *err,
                               size_t err_bytes) {
    assert(key >= 0 && key < TOPIC_CONFIG_KEY_COUNT);
    const struct topic_config_def *d = &defs[key];
    char v[TOPIC_CONFIG_VALUE_BYTES];
    if (!value) return invalid(err, err_bytes, "Null value%s for configuration %s", "", d->name);
    if (!copy_trimmed(value, strlen(value), v, sizeof v))
        return invalid(err, err_bytes, "Invalid value for configuration %s%s: longer than 63 "
                       "bytes", d->name, "");
    switch (d->type) {
    case KAFKA_CONFIG_TYPE_INT:
    case KAFKA_CONFIG_TYPE_LONG:
        return normalize_number(d, v, normalized, err, err_bytes);
    case KAFKA_CONFIG_TYPE_BOOLEAN:
        if (strcasecmp(v, "true") != 0 && strcasecmp(v, "false") != 0)
            return invalid(err, err_bytes, "Invalid value %s for configuration %s: Expected "
                           "value to be either true or false", v, d->name);
        snprintf(normalized, TOPIC_CONFIG_VALUE_BYTES, "%s",
                 strcasecmp(v, "true") == 0 ? "true" : "false");
        return 0;
    case KAFKA_CONFIG_TYPE_STRING:
        assert(d->allowed);
        if (!in_allowed(d->allowed, v))
            return invalid(err, err_bytes, "Invalid value %s for configuration %s: not one of "
                           "the allowed values", v, d->name);
        snprintf(normalized, TOPIC_CONFIG_VALUE_BYTES, "%s", v);
        return 0;
    case KAFKA_CONFIG_TYPE_LIST:
        return normalize_list(d, v, normalized, err, err_bytes);
    default:
        assert(!"topic config type without a validator");
        return TOPIC_CONFIG_ERR_INVALID_CONFIG;
    }
}

/* Zero-filled, so two configs with equal overrides compare equal byte for byte. */
static void store_value(struct topic_config *tc, int key, const char *norm) {
    memset(tc->values[key], 0, TOPIC_CONFIG_VALUE_BYTES);
    snprintf(tc->values[key], TOPIC_CONFIG_VALUE_BYTES, "%s", norm);
    tc->set_mask |= 1u << key;
}

int16_t topic_config_set(struct topic_config *tc, const char *name, const char *value,
                         char *err, size_t err_bytes) {
    int key = topic_config_find(name);
    if (key < 0) return invalid(err, err_bytes, "Unknown topic config name: %s%s", name, "");
    char norm[TOPIC_CONFIG_VALUE_BYTES];
    int16_t rc = topic_config_normalize(key, value, norm, err, err_bytes);
    if (rc != 0) return rc;
    store_value(tc, key, norm);
    return 0;
}

/* The broker's value for synonym i of key converted to the topic key's unit; false when
 * the broker does not set it or the value does not convert. */
static bool broker_synonym_value(const struct config *broker, int key, int i,
                                 char out[TOPIC_CONFIG_VALUE_BYTES]) {
    const struct topic_config_def *d = &defs[key];
    const char *name = d->broker_synonyms[i];
    if (!broker || !name || config_source_of(broker, name) == CONFIG_SOURCE_DEFAULT) return false;
    const char *raw = config_get(broker, name);
    if (!raw) return false;
    if (d->broker_unit_ms[i] == 0) {
        char err[8];
        return topic_config_normalize(key, raw, out, err, sizeof err) == 0;
    }
    int64_t n;
    if (!parse_i64(raw, &n)) return false;
    int64_t unit = d->broker_unit_ms[i];
    if (n < 0) n = -1; /* Kafka: a negative retention means forever */
    else if (n > INT64_MAX / unit) n = INT64_MAX;
    else n *= unit;
    snprintf(out, TOPIC_CONFIG_VALUE_BYTES, "%" PRId64, n);
    return true;
}

enum kafka_config_source topic_config_effective(const struct topic_config *tc,
                                                const struct config *broker, int key,
                                                char value[TOPIC_CONFIG_VALUE_BYTES]) {
    assert(key >= 0 && key < TOPIC_CONFIG_KEY_COUNT);
    if (tc && topic_config_is_set(tc, key)) {
        memcpy(value, tc->values[key], TOPIC_CONFIG_VALUE_BYTES);
        return KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
    }
    for (int i = 0; i < TOPIC_CONFIG_MAX_BROKER_SYNONYMS; i++)
        if (broker_synonym_value(broker, key, i, value))
            return KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG;
    snprintf(value, TOPIC_CONFIG_VALUE_BYTES, "%s", defs[key].default_value);
    return KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG;
}

/* Items of list b added to (append) or removed from (subtract) list a, into out. */
static int16_t list_edit(const struct topic_config_def *d, const char *a, const char *b,
                         bool append, char *out, char *err, size_t err_bytes) {
    char joined[2 * TOPIC_CONFIG_VALUE_BYTES + 2];
    size_t used = 0;
    joined[0] = '\0';
    const char *lists[2] = {a, append ? b : ""};
    char hay_b[TOPIC_CONFIG_VALUE_BYTES + 2];
    snprintf(hay_b, sizeof hay_b, ",%s,", b);
    for (int l = 0; l < 2; l++) {
        const char *p = lists[l];
        for (int guard = 0; *p && guard < TOPIC_CONFIG_VALUE_BYTES; guard++) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char item[TOPIC_CONFIG_VALUE_BYTES], probe[TOPIC_CONFIG_VALUE_BYTES + 2];
            if (copy_trimmed(p, len, item, sizeof item)) {
                snprintf(probe, sizeof probe, ",%s,", item);
                bool drop = !append && strstr(hay_b, probe);
                /* a and b are each shorter than TOPIC_CONFIG_VALUE_BYTES: always fits */
                assert(used + strlen(item) + 1 < sizeof joined);
                if (item[0] && !drop) {
                    if (used) joined[used++] = ',';
                    memcpy(joined + used, item, strlen(item) + 1);
                    used += strlen(item);
                }
            }
            if (!comma) break;
            p = comma + 1;
        }
    }
    int key = (int)(d - defs);
    if (joined[0] == '\0')
        return invalid(err, err_bytes, "Invalid value for configuration %s%s: the list would "
                       "be empty", d->name, "");
    return topic_config_normalize(key, joined, out, err, err_bytes);
}

static int16_t apply_op(struct topic_config *tc, const struct config *broker,
                        const struct topic_config_alter_op *op, int key, char *err,
                        size_t err_bytes) {
    const struct topic_config_def *d = &defs[key];
    char norm[TOPIC_CONFIG_VALUE_BYTES], current[TOPIC_CONFIG_VALUE_BYTES];
    int16_t rc;
    switch (op->op) {
    case TOPIC_CONFIG_OP_SET:
        if (!op->value) {
            snprintf(err, err_bytes, "Null value not supported for: %s", d->name);
            return TOPIC_CONFIG_ERR_INVALID_REQUEST;
        }
        rc = topic_config_normalize(key, op->value, norm, err, err_bytes);
        break;
    case TOPIC_CONFIG_OP_DELETE:
        tc->set_mask &= ~(1u << key);
        memset(tc->values[key], 0, TOPIC_CONFIG_VALUE_BYTES);
        return 0;
    case TOPIC_CONFIG_OP_APPEND:
    case TOPIC_CONFIG_OP_SUBTRACT:
        if (d->type != KAFKA_CONFIG_TYPE_LIST)
            return invalid(err, err_bytes, "Config value append or subtract is not allowed for "
                           "config key: %s%s", d->name, "");
        if (!op->value) {
            snprintf(err, err_bytes, "Null value not supported for: %s", d->name);
            return TOPIC_CONFIG_ERR_INVALID_REQUEST;
        }
        topic_config_effective(tc, broker, key, current);
        rc = list_edit(d, current, op->value, op->op == TOPIC_CONFIG_OP_APPEND, norm, err,
                       err_bytes);
        break;
    default:
        snprintf(err, err_bytes, "Unknown config operation %d for %s", (int)op->op, d->name);
        return TOPIC_CONFIG_ERR_INVALID_REQUEST;
    }
    if (rc != 0) return rc;
    store_value(tc, key, norm);
    return 0;
}

int16_t topic_config_alter(struct topic_config *tc, const struct config *broker,
                           const struct topic_config_alter_op *ops, size_t op_count,
                           char *err, size_t err_bytes) {
    if (op_count > TOPIC_CONFIG_MAX_OPS) {
        snprintf(err, err_bytes, "more than %d config operations in one request",
                 TOPIC_CONFIG_MAX_OPS);
        return TOPIC_CONFIG_ERR_INVALID_REQUEST;
    }
    uint32_t seen_mask = 0;
    for (size_t i = 0; i < op_count; i++) {
        int key = ops[i].name ? topic_config_find(ops[i].name) : -1;
        if (key < 0)
            return invalid(err, err_bytes, "Unknown topic config name: %s%s",
                           ops[i].name ? ops[i].name : "(null)", "");
        if (seen_mask & (1u << key)) {
            snprintf(err, err_bytes, "Error due to duplicate config keys: %s", ops[i].name);
            return TOPIC_CONFIG_ERR_INVALID_REQUEST;
        }
        seen_mask |= 1u << key;
    }
    struct topic_config staged = *tc;
    for (size_t i = 0; i < op_count; i++) {
        int16_t rc = apply_op(&staged, broker, &ops[i], topic_config_find(ops[i].name), err,
                              err_bytes);
        if (rc != 0) return rc;
    }
    *tc = staged;
    return 0;
}

void topic_config_describe(const struct topic_config *tc, const struct config *broker,
                           int key, struct topic_config_entry *out) {
    assert(key >= 0 && key < TOPIC_CONFIG_KEY_COUNT);
    const struct topic_config_def *d = &defs[key];
    memset(out, 0, sizeof *out);
    out->name = d->name;
    out->source = topic_config_effective(tc, broker, key, out->value);
    out->is_sensitive = false;
    out->read_only = false;
    out->config_type = d->type;
    out->documentation = d->doc;
    if (tc && topic_config_is_set(tc, key)) {
        struct topic_config_synonym *s = &out->synonyms[out->synonym_count++];
        s->name = d->name;
        memcpy(s->value, tc->values[key], TOPIC_CONFIG_VALUE_BYTES);
        s->source = KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
    }
    for (int i = 0; i < TOPIC_CONFIG_MAX_BROKER_SYNONYMS && d->broker_synonyms[i]; i++) {
        const char *name = d->broker_synonyms[i];
        if (!broker || config_source_of(broker, name) == CONFIG_SOURCE_DEFAULT) continue;
        struct topic_config_synonym *s = &out->synonyms[out->synonym_count++];
        s->name = name;
        snprintf(s->value, sizeof s->value, "%s", config_get(broker, name));
        s->source = KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG;
    }
    struct topic_config_synonym *s = &out->synonyms[out->synonym_count++];
    s->name = d->default_synonym_name;
    snprintf(s->value, sizeof s->value, "%s", d->default_synonym_value);
    s->source = KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG;
    assert(out->synonym_count <= TOPIC_CONFIG_MAX_SYNONYMS);
}

static int64_t effective_i64(const struct topic_config *tc, const struct config *broker,
                             int key) {
    char v[TOPIC_CONFIG_VALUE_BYTES];
    topic_config_effective(tc, broker, key, v);
    int64_t n = 0;
    bool ok = parse_i64(v, &n);
    assert(ok); /* every stored or derived value was normalized */
    (void)ok;
    return n;
}

static bool effective_bool(const struct topic_config *tc, const struct config *broker,
                           int key) {
    char v[TOPIC_CONFIG_VALUE_BYTES];
    topic_config_effective(tc, broker, key, v);
    return strcmp(v, "true") == 0;
}

void topic_config_resolve(const struct topic_config *tc, const struct config *broker,
                          struct topic_config_values *out) {
    char v[TOPIC_CONFIG_VALUE_BYTES], probe[TOPIC_CONFIG_VALUE_BYTES + 2];
    memset(out, 0, sizeof *out);
    topic_config_effective(tc, broker, TOPIC_CONFIG_CLEANUP_POLICY, v);
    snprintf(probe, sizeof probe, ",%s,", v);
    out->cleanup_delete = strstr(probe, ",delete,") != NULL;
    out->cleanup_compact = strstr(probe, ",compact,") != NULL;
    topic_config_effective(tc, broker, TOPIC_CONFIG_COMPRESSION_TYPE, v);
    for (int i = 0; compression_types[i]; i++)
        if (strcmp(v, compression_types[i]) == 0) out->compression = (enum topic_compression)i;
    topic_config_effective(tc, broker, TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE, v);
    out->message_timestamp_type = strcmp(v, "LogAppendTime") == 0
                                      ? TOPIC_TIMESTAMP_LOG_APPEND_TIME
                                      : TOPIC_TIMESTAMP_CREATE_TIME;
    out->delete_retention_ms = effective_i64(tc, broker, TOPIC_CONFIG_DELETE_RETENTION_MS);
    out->file_delete_delay_ms = effective_i64(tc, broker, TOPIC_CONFIG_FILE_DELETE_DELAY_MS);
    out->flush_messages = effective_i64(tc, broker, TOPIC_CONFIG_FLUSH_MESSAGES);
    out->flush_ms = effective_i64(tc, broker, TOPIC_CONFIG_FLUSH_MS);
    out->index_interval_bytes = effective_i64(tc, broker, TOPIC_CONFIG_INDEX_INTERVAL_BYTES);
    out->max_message_bytes = effective_i64(tc, broker, TOPIC_CONFIG_MAX_MESSAGE_BYTES);
    out->message_downconversion_enable =
        effective_bool(tc, broker, TOPIC_CONFIG_MESSAGE_DOWNCONVERSION_ENABLE);
    out->message_timestamp_difference_max_ms =
        effective_i64(tc, broker, TOPIC_CONFIG_MESSAGE_TIMESTAMP_DIFFERENCE_MAX_MS);
    out->min_compaction_lag_ms = effective_i64(tc, broker, TOPIC_CONFIG_MIN_COMPACTION_LAG_MS);
    out->min_insync_replicas = effective_i64(tc, broker, TOPIC_CONFIG_MIN_INSYNC_REPLICAS);
    out->preallocate = effective_bool(tc, broker, TOPIC_CONFIG_PREALLOCATE);
    out->retention_bytes = effective_i64(tc, broker, TOPIC_CONFIG_RETENTION_BYTES);
    out->retention_ms = effective_i64(tc, broker, TOPIC_CONFIG_RETENTION_MS);
    out->segment_bytes = effective_i64(tc, broker, TOPIC_CONFIG_SEGMENT_BYTES);
    out->segment_index_bytes = effective_i64(tc, broker, TOPIC_CONFIG_SEGMENT_INDEX_BYTES);
    out->segment_ms = effective_i64(tc, broker, TOPIC_CONFIG_SEGMENT_MS);
    out->unclean_leader_election_enable =
        effective_bool(tc, broker, TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE);
}

int topic_config_check_broker(const struct config *broker, char *err, size_t err_bytes) {
    for (int key = 0; key < TOPIC_CONFIG_KEY_COUNT; key++) {
        const struct topic_config_def *d = &defs[key];
        for (int i = 0; i < TOPIC_CONFIG_MAX_BROKER_SYNONYMS && d->broker_synonyms[i]; i++) {
            const char *name = d->broker_synonyms[i];
            if (config_source_of(broker, name) == CONFIG_SOURCE_DEFAULT) continue;
            const char *raw = config_get(broker, name);
            char norm[TOPIC_CONFIG_VALUE_BYTES], msg[192];
            if (d->broker_unit_ms[i] != 0) {
                int64_t n;
                if (!raw || !parse_i64(raw, &n)) {
                    snprintf(err, err_bytes, "broker key %s: '%s' is not an integer", name,
                             raw ? raw : "");
                    return -1;
                }
                continue;
            }
            if (topic_config_normalize(key, raw, norm, msg, sizeof msg) != 0) {
                snprintf(err, err_bytes, "broker key %s (default of topic key %s): %s", name,
                         d->name, msg);
                return -1;
            }
        }
    }
    return 0;
}
