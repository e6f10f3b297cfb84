/* test_topic_config.c - topic key validation, defaults taken from broker keys, the
 * DescribeConfigs view (source, type, synonyms in Kafka's order) and incremental alter ops
 * including atomic failure. */
#include <criterion/criterion.h>
#include <string.h>

#include "control/config.h"
#include "control/topic_config.h"

static struct config broker;
static struct topic_config tc;
static char err[256];

static void setup(void) {
    config_init(&broker);
    topic_config_init(&tc);
    err[0] = '\0';
}

static void broker_set(const char *key, const char *value) {
    char msg[256];
    cr_assert_eq(config_set(&broker, key, value, CONFIG_SOURCE_FILE, msg, sizeof msg), 0, "%s",
                 msg);
}

static const char *effective(int key) {
    static char value[TOPIC_CONFIG_VALUE_BYTES];
    topic_config_effective(&tc, &broker, key, value);
    return value;
}

TestSuite(topic_config, .init = setup);

Test(topic_config, every_key_has_its_kafka_default) {
    struct { const char *name, *value; } expected[] = {
        {"cleanup.policy", "delete"},
        {"compression.type", "producer"},
        {"delete.retention.ms", "86400000"},
        {"file.delete.delay.ms", "60000"},
        {"flush.messages", "9223372036854775807"},
        {"flush.ms", "9223372036854775807"},
        {"index.interval.bytes", "4096"},
        {"max.message.bytes", "1048588"},
        {"message.downconversion.enable", "true"},
        {"message.timestamp.difference.max.ms", "9223372036854775807"},
        {"message.timestamp.type", "CreateTime"},
        {"min.compaction.lag.ms", "0"},
        {"min.insync.replicas", "1"},
        {"preallocate", "false"},
        {"retention.bytes", "-1"},
        {"retention.ms", "604800000"},
        {"segment.bytes", "1073741824"},
        {"segment.index.bytes", "10485760"},
        {"segment.ms", "604800000"},
        {"unclean.leader.election.enable", "false"},
    };
    size_t n = sizeof expected / sizeof expected[0];
    cr_assert_eq(n, TOPIC_CONFIG_KEY_COUNT);
    for (size_t i = 0; i < n; i++) {
        int key = topic_config_find(expected[i].name);
        cr_assert_geq(key, 0, "%s", expected[i].name);
        char value[TOPIC_CONFIG_VALUE_BYTES];
        cr_assert_eq(topic_config_effective(&tc, &broker, key, value),
                     KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG);
        cr_assert_str_eq(value, expected[i].value, "%s", expected[i].name);
    }
    cr_assert_eq(topic_config_find("no.such.key"), -1);
}

Test(topic_config, validation_of_types_ranges_and_enums) {
    struct { const char *name, *value; bool ok; const char *normalized; } cases[] = {
        {"retention.ms", "-1", true, "-1"},
        {"retention.ms", "-2", false, NULL},
        {"retention.ms", " 1000 ", true, "1000"},
        {"retention.ms", "10s", false, NULL},
        {"retention.ms", "", false, NULL},
        {"retention.ms", "9223372036854775808", false, NULL},
        {"segment.bytes", "13", false, NULL},
        {"segment.bytes", "14", true, "14"},
        {"segment.bytes", "2147483648", false, NULL},
        {"max.message.bytes", "-1", false, NULL},
        {"min.insync.replicas", "0", false, NULL},
        {"min.insync.replicas", "1", true, "1"},
        {"segment.ms", "0", false, NULL},
        {"segment.index.bytes", "3", false, NULL},
        {"flush.messages", "0", false, NULL},
        {"preallocate", "TRUE", true, "true"},
        {"preallocate", "yes", false, NULL},
        {"unclean.leader.election.enable", "False", true, "false"},
        {"message.timestamp.type", "LogAppendTime", true, "LogAppendTime"},
        {"message.timestamp.type", "logappendtime", false, NULL},
        {"compression.type", "zstd", true, "zstd"},
        {"compression.type", "uncompressed", true, "uncompressed"},
        {"compression.type", "brotli", false, NULL},
        {"cleanup.policy", "delete", true, "delete"},
        {"cleanup.policy", " delete , delete", true, "delete"},
        {"cleanup.policy", "", false, NULL},
        {"cleanup.policy", "remove", false, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct topic_config one;
        topic_config_init(&one);
        int16_t rc = topic_config_set(&one, cases[i].name, cases[i].value, err, sizeof err);
        if (cases[i].ok) {
            cr_assert_eq(rc, 0, "%s=%s: %s", cases[i].name, cases[i].value, err);
            int key = topic_config_find(cases[i].name);
            cr_assert(topic_config_is_set(&one, key));
            cr_assert_str_eq(one.values[key], cases[i].normalized);
        } else {
            cr_assert_eq(rc, TOPIC_CONFIG_ERR_INVALID_CONFIG, "%s=%s accepted", cases[i].name,
                         cases[i].value);
            cr_assert_eq(one.set_mask, 0);
            cr_assert_neq(err[0], '\0');
        }
    }
    cr_assert_eq(topic_config_set(&tc, "no.such.key", "1", err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
    cr_assert(strstr(err, "Unknown topic config name: no.such.key"));
}

Test(topic_config, compaction_is_refused_with_a_clear_message) {
    const char *values[] = {"compact", "compact,delete", "delete,compact"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(topic_config_set(&tc, "cleanup.policy", values[i], err, sizeof err),
                     TOPIC_CONFIG_ERR_INVALID_CONFIG);
        cr_assert_str_eq(err, "cleanup.policy=compact is not supported yet: log compaction is "
                              "not implemented");
    }
    cr_assert_eq(tc.set_mask, 0);
}

Test(topic_config, defaults_come_from_broker_keys) {
    broker_set("log.retention.hours", "24");
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_MS), "86400000");
    broker_set("log.retention.minutes", "30");
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_MS), "1800000");
    broker_set("log.retention.ms", "5000");
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_MS), "5000");
    broker_set("log.roll.hours", "2");
    cr_assert_str_eq(effective(TOPIC_CONFIG_SEGMENT_MS), "7200000");
    broker_set("log.roll.ms", "60000");
    cr_assert_str_eq(effective(TOPIC_CONFIG_SEGMENT_MS), "60000");
    broker_set("log.retention.bytes", "1048576");
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_BYTES), "1048576");
    broker_set("log.segment.bytes", "16777216");
    cr_assert_str_eq(effective(TOPIC_CONFIG_SEGMENT_BYTES), "16777216");
    broker_set("message.max.bytes", "2000000");
    cr_assert_str_eq(effective(TOPIC_CONFIG_MAX_MESSAGE_BYTES), "2000000");
    broker_set("compression.type", "lz4");
    cr_assert_str_eq(effective(TOPIC_CONFIG_COMPRESSION_TYPE), "lz4");

    struct topic_config_values v;
    topic_config_resolve(&tc, &broker, &v);
    cr_assert_eq(v.retention_ms, 5000);
    cr_assert_eq(v.segment_ms, 60000);
    cr_assert_eq(v.retention_bytes, 1048576);
    cr_assert_eq(v.segment_bytes, 16777216);
    cr_assert_eq(v.max_message_bytes, 2000000);
    cr_assert_eq(v.compression, TOPIC_COMPRESSION_LZ4);
    cr_assert(v.cleanup_delete);
    cr_assert_not(v.cleanup_compact);
    cr_assert_eq(v.message_timestamp_type, TOPIC_TIMESTAMP_CREATE_TIME);

    /* A topic override beats the broker. */
    cr_assert_eq(topic_config_set(&tc, "retention.ms", "123", err, sizeof err), 0);
    topic_config_resolve(&tc, &broker, &v);
    cr_assert_eq(v.retention_ms, 123);
    cr_assert_eq(topic_config_check_broker(&broker, err, sizeof err), 0, "%s", err);
}

Test(topic_config, negative_broker_retention_means_forever) {
    broker_set("log.retention.hours", "-1");
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_MS), "-1");
}

Test(topic_config, a_broker_default_invalid_for_topics_is_refused_at_start) {
    cr_assert_eq(topic_config_check_broker(&broker, err, sizeof err), 0);
    broker_set("log.cleanup.policy", "compact");
    cr_assert_eq(topic_config_check_broker(&broker, err, sizeof err), -1);
    cr_assert(strstr(err, "log.cleanup.policy"), "%s", err);
    cr_assert(strstr(err, "compaction is not implemented"), "%s", err);
}

Test(topic_config, describe_default_only) {
    struct topic_config_entry e;
    topic_config_describe(&tc, &broker, TOPIC_CONFIG_RETENTION_MS, &e);
    cr_assert_str_eq(e.name, "retention.ms");
    cr_assert_str_eq(e.value, "604800000");
    cr_assert_eq(e.source, 5);
    cr_assert_eq(e.config_type, 5); /* LONG */
    cr_assert_not(e.is_sensitive);
    cr_assert_not(e.read_only);
    cr_assert_not_null(e.documentation);
    cr_assert_eq(e.synonym_count, 1);
    cr_assert_str_eq(e.synonyms[0].name, "log.retention.hours");
    cr_assert_str_eq(e.synonyms[0].value, "168");
    cr_assert_eq(e.synonyms[0].source, 5);

    topic_config_describe(&tc, &broker, TOPIC_CONFIG_CLEANUP_POLICY, &e);
    cr_assert_eq(e.config_type, 7); /* LIST */
    topic_config_describe(&tc, &broker, TOPIC_CONFIG_PREALLOCATE, &e);
    cr_assert_eq(e.config_type, 1); /* BOOLEAN */
    topic_config_describe(&tc, &broker, TOPIC_CONFIG_SEGMENT_BYTES, &e);
    cr_assert_eq(e.config_type, 3); /* INT */
    topic_config_describe(&tc, &broker, TOPIC_CONFIG_COMPRESSION_TYPE, &e);
    cr_assert_eq(e.config_type, 2); /* STRING */
}

Test(topic_config, describe_synonyms_in_kafka_order) {
    broker_set("log.retention.ms", "5000");
    cr_assert_eq(topic_config_set(&tc, "retention.ms", "777", err, sizeof err), 0);
    struct topic_config_entry e;
    topic_config_describe(&tc, &broker, TOPIC_CONFIG_RETENTION_MS, &e);
    cr_assert_str_eq(e.value, "777");
    cr_assert_eq(e.source, KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
    cr_assert_eq(e.synonym_count, 3);
    cr_assert_str_eq(e.synonyms[0].name, "retention.ms");
    cr_assert_str_eq(e.synonyms[0].value, "777");
    cr_assert_eq(e.synonyms[0].source, 1);
    cr_assert_str_eq(e.synonyms[1].name, "log.retention.ms");
    cr_assert_str_eq(e.synonyms[1].value, "5000");
    cr_assert_eq(e.synonyms[1].source, 4);
    cr_assert_str_eq(e.synonyms[2].name, "log.retention.hours");
    cr_assert_str_eq(e.synonyms[2].value, "168");
    cr_assert_eq(e.synonyms[2].source, 5);

    /* Without the override the broker key is the source. */
    topic_config_init(&tc);
    topic_config_describe(&tc, &broker, TOPIC_CONFIG_RETENTION_MS, &e);
    cr_assert_str_eq(e.value, "5000");
    cr_assert_eq(e.source, KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG);
    cr_assert_eq(e.synonym_count, 2);
    cr_assert_str_eq(e.synonyms[0].name, "log.retention.ms");
}

Test(topic_config, alter_set_delete_append_subtract) {
    struct topic_config_alter_op set_ops[] = {
        {"retention.ms", TOPIC_CONFIG_OP_SET, "1000"},
        {"compression.type", TOPIC_CONFIG_OP_SET, "gzip"},
    };
    cr_assert_eq(topic_config_alter(&tc, &broker, set_ops, 2, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_MS), "1000");
    cr_assert_str_eq(effective(TOPIC_CONFIG_COMPRESSION_TYPE), "gzip");

    struct topic_config_alter_op del = {"retention.ms", TOPIC_CONFIG_OP_DELETE, NULL};
    cr_assert_eq(topic_config_alter(&tc, &broker, &del, 1, err, sizeof err), 0);
    cr_assert_not(topic_config_is_set(&tc, TOPIC_CONFIG_RETENTION_MS));
    cr_assert_str_eq(effective(TOPIC_CONFIG_RETENTION_MS), "604800000");
    cr_assert(topic_config_is_set(&tc, TOPIC_CONFIG_COMPRESSION_TYPE));

    /* APPEND of an item already present keeps one copy. */
    struct topic_config_alter_op app = {"cleanup.policy", TOPIC_CONFIG_OP_APPEND, "delete"};
    cr_assert_eq(topic_config_alter(&tc, &broker, &app, 1, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(effective(TOPIC_CONFIG_CLEANUP_POLICY), "delete");
    /* APPEND compact yields compact,delete: refused while compaction does not exist. */
    app.value = "compact";
    cr_assert_eq(topic_config_alter(&tc, &broker, &app, 1, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
    cr_assert(strstr(err, "compaction is not implemented"));
    /* SUBTRACT that would empty the list is refused; of an absent item is a no-op. */
    struct topic_config_alter_op sub = {"cleanup.policy", TOPIC_CONFIG_OP_SUBTRACT, "delete"};
    cr_assert_eq(topic_config_alter(&tc, &broker, &sub, 1, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
    sub.value = "compact";
    cr_assert_eq(topic_config_alter(&tc, &broker, &sub, 1, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(effective(TOPIC_CONFIG_CLEANUP_POLICY), "delete");
    /* APPEND/SUBTRACT on a non-list key. */
    struct topic_config_alter_op bad = {"retention.ms", TOPIC_CONFIG_OP_APPEND, "1"};
    cr_assert_eq(topic_config_alter(&tc, &broker, &bad, 1, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
    bad.op = TOPIC_CONFIG_OP_SUBTRACT;
    cr_assert_eq(topic_config_alter(&tc, &broker, &bad, 1, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
}

Test(topic_config, alter_is_atomic) {
    cr_assert_eq(topic_config_set(&tc, "segment.bytes", "1048576", err, sizeof err), 0);
    struct topic_config before = tc;
    struct topic_config_alter_op ops[] = {
        {"retention.ms", TOPIC_CONFIG_OP_SET, "1000"},
        {"segment.bytes", TOPIC_CONFIG_OP_DELETE, NULL},
        {"max.message.bytes", TOPIC_CONFIG_OP_SET, "not-a-number"},
    };
    cr_assert_eq(topic_config_alter(&tc, &broker, ops, 3, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
    cr_assert(strstr(err, "max.message.bytes"), "%s", err);
    cr_assert_eq(memcmp(&tc, &before, sizeof tc), 0);

    struct topic_config_alter_op dup[] = {
        {"retention.ms", TOPIC_CONFIG_OP_SET, "1000"},
        {"retention.ms", TOPIC_CONFIG_OP_SET, "2000"},
    };
    cr_assert_eq(topic_config_alter(&tc, &broker, dup, 2, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_REQUEST);
    struct topic_config_alter_op unknown[] = {
        {"retention.ms", TOPIC_CONFIG_OP_SET, "1000"},
        {"retention.weeks", TOPIC_CONFIG_OP_SET, "1"},
    };
    cr_assert_eq(topic_config_alter(&tc, &broker, unknown, 2, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_CONFIG);
    struct topic_config_alter_op null_set = {"retention.ms", TOPIC_CONFIG_OP_SET, NULL};
    cr_assert_eq(topic_config_alter(&tc, &broker, &null_set, 1, err, sizeof err),
                 TOPIC_CONFIG_ERR_INVALID_REQUEST);
    cr_assert_eq(memcmp(&tc, &before, sizeof tc), 0);
}

Test(topic_config, append_builds_on_the_broker_default) {
    /* The base of APPEND is the effective value, here the broker's log.cleanup.policy. */
    broker_set("log.cleanup.policy", "delete");
    struct topic_config_alter_op app = {"cleanup.policy", TOPIC_CONFIG_OP_APPEND, "delete"};
    cr_assert_eq(topic_config_alter(&tc, &broker, &app, 1, err, sizeof err), 0, "%s", err);
    cr_assert(topic_config_is_set(&tc, TOPIC_CONFIG_CLEANUP_POLICY));
    cr_assert_str_eq(tc.values[TOPIC_CONFIG_CLEANUP_POLICY], "delete");
}
