/* test_catalog.c - the topic catalogue on real files in a fresh temp dir: create / delete /
 * add partitions with each Kafka error code, validate_only, topic name rules, persistence
 * and restart, refusal of a truncated or corrupted file, snapshots and their publication to
 * reader threads while the control thread publishes many versions. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/catalog.h"
#include "control/config.h"
#include "storage/record/crc.h"

static struct config broker;
static struct catalog cat;
static char dir[64];
static char err[512];
static struct catalog_result res;

static void setup(void) {
    config_init(&broker);
    snprintf(dir, sizeof dir, "/tmp/sluice-catalog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&cat, 0, sizeof cat);
}

static void teardown(void) {
    catalog_close(&cat);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(catalog, .init = setup, .fini = teardown);

static void broker_set(const char *key, const char *value) {
    cr_assert_eq(config_set(&broker, key, value, CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0,
                 "%s", err);
}

static void open_catalog(uint32_t shards) {
    cr_assert_eq(catalog_open(&cat, dir, &broker, shards, err, sizeof err), 0, "%s", err);
}

static int16_t create(const char *name, int32_t partitions, int16_t rf) {
    struct catalog_create_request req = {.name = name, .partition_count = partitions,
                                         .replication_factor = rf};
    return catalog_create_topic(&cat, &req, false, &res);
}

static char *read_catalog_file(size_t *len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, CATALOG_FILE_NAME);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static void write_catalog_file(const char *data, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, CATALOG_FILE_NAME);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

Test(catalog, create_and_describe) {
    open_catalog(4);
    cr_assert_eq(create("orders", 3, 1), 0, "%s", res.message);
    const struct catalog_topic *t = catalog_find(&cat, "orders");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->name, "orders");
    cr_assert_eq(t->partition_count, 3);
    cr_assert_eq(t->replication_factor, 1);
    cr_assert_eq(t->id[6] >> 4, 4, "UUID version 4");
    cr_assert_eq(t->id[8] >> 6, 2, "RFC 4122 variant");
    for (int32_t p = 0; p < 3; p++) {
        cr_assert_lt(t->partition_shard[p], 4);
        cr_assert_eq(t->partition_shard[p], catalog_default_shard("orders", p, 4));
    }
    cr_assert_eq(catalog_find_id(&cat, t->id), t);
    cr_assert_eq(create("alpha", 1, 1), 0);
    cr_assert_eq(create("zeta", 1, 1), 0);
    cr_assert_eq(catalog_topic_count(&cat), 3);
    cr_assert_str_eq(catalog_topic_at(&cat, 0)->name, "alpha");
    cr_assert_str_eq(catalog_topic_at(&cat, 1)->name, "orders");
    cr_assert_str_eq(catalog_topic_at(&cat, 2)->name, "zeta");
    cr_assert_neq(memcmp(catalog_find(&cat, "alpha")->id, t->id, 16), 0);
}

Test(catalog, create_errors) {
    broker_set("sluice.max.topics", "3");
    broker_set("sluice.max.partitions.per.topic", "100");
    open_catalog(2);
    cr_assert_eq(create("a", 1, 1), 0);
    cr_assert_eq(create("a", 1, 1), CATALOG_ERR_TOPIC_ALREADY_EXISTS);
    cr_assert_str_eq(res.message, "Topic 'a' already exists.");
    cr_assert_eq(create("b", 0, 1), CATALOG_ERR_INVALID_PARTITIONS);
    cr_assert_eq(create("b", -2, 1), CATALOG_ERR_INVALID_PARTITIONS);
    cr_assert_eq(create("b", 101, 1), CATALOG_ERR_INVALID_PARTITIONS);
    cr_assert(strstr(res.message, "sluice.max.partitions.per.topic"));
    cr_assert_eq(create("b", 1, 0), CATALOG_ERR_INVALID_REPLICATION_FACTOR);
    cr_assert_eq(create("b", 1, -2), CATALOG_ERR_INVALID_REPLICATION_FACTOR);
    cr_assert_eq(create("b", 1, 3), CATALOG_ERR_INVALID_REPLICATION_FACTOR);
    cr_assert(strstr(res.message, "sluice.replication.factor.clamp"), "%s", res.message);
    cr_assert_eq(create("b!", 1, 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
    cr_assert_eq(create("__consumer_offsets", 1, 1), CATALOG_ERR_INVALID_REQUEST);
    cr_assert_eq(create("__transaction_state", 1, 1), CATALOG_ERR_INVALID_REQUEST);
    struct catalog_config_kv bad_cfg[] = {{"retention.ms", "soon"}};
    struct catalog_create_request req = {.name = "b", .partition_count = 1,
                                         .replication_factor = 1, .configs = bad_cfg,
                                         .config_count = 1};
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), CATALOG_ERR_INVALID_CONFIG);
    struct catalog_config_kv unknown_cfg[] = {{"retention.weeks", "1"}};
    req.configs = unknown_cfg;
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), CATALOG_ERR_INVALID_CONFIG);
    cr_assert(strstr(res.message, "Unknown topic config name: retention.weeks"), "%s",
              res.message);
    struct catalog_config_kv null_cfg[] = {{"retention.ms", NULL}};
    req.configs = null_cfg;
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), CATALOG_ERR_INVALID_CONFIG);
    struct catalog_config_kv compact[] = {{"cleanup.policy", "compact"}};
    req.configs = compact;
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), CATALOG_ERR_INVALID_CONFIG);
    cr_assert_str_eq(res.message, "cleanup.policy=compact is not supported yet: log "
                                  "compaction is not implemented");
    cr_assert_eq(catalog_topic_count(&cat), 1, "no failed create left a topic behind");
    /* The broker may create its internal topics. */
    req = (struct catalog_create_request){.name = "__consumer_offsets", .partition_count = 2,
                                          .replication_factor = -1, .internal = true};
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), 0, "%s", res.message);
    cr_assert(catalog_find(&cat, "__consumer_offsets")->internal);
    cr_assert_eq(create("c", 1, 1), 0);
    cr_assert_eq(create("d", 1, 1), CATALOG_ERR_POLICY_VIOLATION);
    cr_assert(strstr(res.message, "sluice.max.topics"));
}

Test(catalog, defaults_and_clamp) {
    broker_set("num.partitions", "5");
    broker_set("default.replication.factor", "3");
    open_catalog(2);
    cr_assert_eq(create("x", -1, 1), 0, "%s", res.message);
    cr_assert_eq(catalog_find(&cat, "x")->partition_count, 5);
    /* -1 takes default.replication.factor=3, which one node cannot honour. */
    cr_assert_eq(create("y", 1, -1), CATALOG_ERR_INVALID_REPLICATION_FACTOR);
    catalog_close(&cat);
    broker_set("sluice.replication.factor.clamp", "true");
    open_catalog(2);
    cr_assert_eq(create("y", 1, -1), 0, "%s", res.message);
    cr_assert_eq(create("z", 2, 3), 0, "%s", res.message);
    cr_assert_eq(catalog_find(&cat, "z")->replication_factor, 1);
}

Test(catalog, validate_only_changes_nothing) {
    open_catalog(2);
    cr_assert_eq(create("keep", 2, 1), 0);
    size_t len;
    char before[4096];
    char *data = read_catalog_file(&len);
    cr_assert_lt(len, sizeof before);
    memcpy(before, data, len);
    size_t before_len = len;

    struct catalog_config_kv cfg[] = {{"retention.ms", "1000"}};
    struct catalog_create_request req = {.name = "new", .partition_count = 4,
                                         .replication_factor = 1, .configs = cfg,
                                         .config_count = 1};
    cr_assert_eq(catalog_create_topic(&cat, &req, true, &res), 0, "%s", res.message);
    req.name = "keep";
    cr_assert_eq(catalog_create_topic(&cat, &req, true, &res), CATALOG_ERR_TOPIC_ALREADY_EXISTS);
    cr_assert_eq(catalog_create_partitions(&cat, "keep", 8, true, &res), 0);
    cr_assert_eq(catalog_create_partitions(&cat, "keep", 1, true, &res),
                 CATALOG_ERR_INVALID_PARTITIONS);
    struct topic_config_alter_op op = {"retention.ms", TOPIC_CONFIG_OP_SET, "5"};
    cr_assert_eq(catalog_alter_topic_config(&cat, "keep", &op, 1, true, &res), 0);

    cr_assert_eq(catalog_topic_count(&cat), 1);
    cr_assert_null(catalog_find(&cat, "new"));
    cr_assert_eq(catalog_find(&cat, "keep")->partition_count, 2);
    cr_assert_eq(catalog_find(&cat, "keep")->config.set_mask, 0);
    data = read_catalog_file(&len);
    cr_assert_eq(len, before_len);
    cr_assert_eq(memcmp(data, before, len), 0);
}

Test(catalog, topic_name_rules) {
    char name249[250], name250[251];
    memset(name249, 'a', 249);
    name249[249] = '\0';
    memset(name250, 'b', 250);
    name250[250] = '\0';
    struct { const char *name; int16_t code; } cases[] = {
        {"orders", 0},
        {"Orders-2024_v1.x", 0},
        {name249, 0},
        {name250, CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {".", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"..", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"...", 0},
        {"a b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"a/b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"caf\xc3\xa9", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"a:b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
        {"a\nb", CATALOG_ERR_INVALID_TOPIC_EXCEPTION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(catalog_validate_topic_name(cases[i].name, &res), cases[i].code,
                     "case %zu: %s", i, res.message);
    cr_assert_eq(catalog_validate_topic_name(NULL, &res), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);

    open_catalog(1);
    cr_assert_eq(create(name249, 1, 1), 0, "%s", res.message);
    cr_assert_eq(create(name250, 1, 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
    /* '.' and '_' collide. */
    cr_assert_eq(create("metrics.cpu", 1, 1), 0);
    cr_assert_eq(create("metrics_cpu", 1, 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
    cr_assert(strstr(res.message, "collides with existing topic: metrics.cpu"), "%s",
              res.message);
    cr_assert_eq(create("metrics.cpu", 1, 1), CATALOG_ERR_TOPIC_ALREADY_EXISTS);
    cr_assert_eq(create("metrics-cpu", 1, 1), 0);
}

Test(catalog, delete_by_name_and_id) {
    open_catalog(2);
    cr_assert_eq(create("a", 1, 1), 0);
    cr_assert_eq(create("b", 1, 1), 0);
    uint8_t id_b[16];
    memcpy(id_b, catalog_find(&cat, "b")->id, 16);
    cr_assert_eq(catalog_delete_topic(&cat, "a", &res), 0);
    cr_assert_null(catalog_find(&cat, "a"));
    cr_assert_eq(catalog_delete_topic(&cat, "a", &res), CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(catalog_delete_topic_id(&cat, id_b, &res), 0);
    cr_assert_eq(catalog_delete_topic_id(&cat, id_b, &res), CATALOG_ERR_UNKNOWN_TOPIC_ID);
    cr_assert_eq(catalog_topic_count(&cat), 0);
    /* A name collision is gone with the topic it collided with. */
    cr_assert_eq(create("x.y", 1, 1), 0);
    cr_assert_eq(catalog_delete_topic(&cat, "x.y", &res), 0);
    cr_assert_eq(create("x_y", 1, 1), 0);
    /* Recreating a name gives a new id. */
    cr_assert_eq(create("b", 1, 1), 0);
    cr_assert_neq(memcmp(catalog_find(&cat, "b")->id, id_b, 16), 0);
}

Test(catalog, add_partitions_only_grows) {
    broker_set("sluice.max.partitions.per.topic", "16");
    open_catalog(3);
    cr_assert_eq(create("t", 2, 1), 0);
    uint16_t before[2];
    memcpy(before, catalog_find(&cat, "t")->partition_shard, sizeof before);
    cr_assert_eq(catalog_create_partitions(&cat, "t", 2, false, &res),
                 CATALOG_ERR_INVALID_PARTITIONS);
    cr_assert_eq(catalog_create_partitions(&cat, "t", 1, false, &res),
                 CATALOG_ERR_INVALID_PARTITIONS);
    cr_assert_eq(catalog_create_partitions(&cat, "t", 17, false, &res),
                 CATALOG_ERR_INVALID_PARTITIONS);
    cr_assert_eq(catalog_create_partitions(&cat, "nope", 4, false, &res),
                 CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(catalog_create_partitions(&cat, "t", 6, false, &res), 0, "%s", res.message);
    const struct catalog_topic *t = catalog_find(&cat, "t");
    cr_assert_eq(t->partition_count, 6);
    cr_assert_eq(memcmp(t->partition_shard, before, sizeof before), 0);
    for (int32_t p = 2; p < 6; p++)
        cr_assert_eq(t->partition_shard[p], catalog_default_shard("t", p, 3));
}

Test(catalog, alter_config_unknown_topic_and_atomic) {
    open_catalog(1);
    struct topic_config_alter_op op = {"retention.ms", TOPIC_CONFIG_OP_SET, "5"};
    cr_assert_eq(catalog_alter_topic_config(&cat, "nope", &op, 1, false, &res),
                 CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(create("t", 1, 1), 0);
    struct topic_config_alter_op ops[] = {
        {"retention.ms", TOPIC_CONFIG_OP_SET, "5"},
        {"segment.bytes", TOPIC_CONFIG_OP_SET, "1"},
    };
    cr_assert_eq(catalog_alter_topic_config(&cat, "t", ops, 2, false, &res),
                 CATALOG_ERR_INVALID_CONFIG);
    cr_assert_eq(catalog_find(&cat, "t")->config.set_mask, 0);
    cr_assert_eq(catalog_alter_topic_config(&cat, "t", ops, 1, false, &res), 0);
    cr_assert_str_eq(catalog_find(&cat, "t")->config.values[TOPIC_CONFIG_RETENTION_MS], "5");
}

Test(catalog, restart_keeps_ids_configs_and_placement) {
    open_catalog(4);
    struct catalog_config_kv cfg[] = {{"retention.ms", "60000"},
                                      {"compression.type", "zstd"},
                                      {"message.timestamp.type", "LogAppendTime"}};
    struct catalog_create_request req = {.name = "events", .partition_count = 8,
                                         .replication_factor = 1, .configs = cfg,
                                         .config_count = 3};
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), 0, "%s", res.message);
    cr_assert_eq(create("logs.app", 3, 1), 0);
    cr_assert_eq(catalog_create_partitions(&cat, "logs.app", 5, false, &res), 0);
    cr_assert_eq(create("gone", 1, 1), 0);
    cr_assert_eq(catalog_delete_topic(&cat, "gone", &res), 0);
    struct catalog_topic saved[2];
    uint16_t saved_shards[2][8];
    for (size_t i = 0; i < 2; i++) {
        saved[i] = *catalog_topic_at(&cat, i);
        memcpy(saved_shards[i], saved[i].partition_shard,
               (size_t)saved[i].partition_count * sizeof(uint16_t));
    }
    catalog_close(&cat);

    /* Reopen with more shards: stored placement is kept, not recomputed. */
    open_catalog(7);
    cr_assert_eq(catalog_topic_count(&cat), 2);
    for (size_t i = 0; i < 2; i++) {
        const struct catalog_topic *t = catalog_topic_at(&cat, i);
        cr_assert_str_eq(t->name, saved[i].name);
        cr_assert_eq(memcmp(t->id, saved[i].id, 16), 0);
        cr_assert_eq(t->partition_count, saved[i].partition_count);
        cr_assert_eq(memcmp(&t->config, &saved[i].config, sizeof t->config), 0);
        cr_assert_eq(memcmp(t->partition_shard, saved_shards[i],
                            (size_t)t->partition_count * sizeof(uint16_t)), 0);
    }
    const struct catalog_topic *events = catalog_find(&cat, "events");
    bool differs = false;
    for (int32_t p = 0; p < 8; p++)
        differs |= events->partition_shard[p] != catalog_default_shard("events", p, 7);
    cr_assert(differs, "placement would have changed had it been recomputed");
    cr_assert_str_eq(events->config.values[TOPIC_CONFIG_COMPRESSION_TYPE], "zstd");
    cr_assert_null(catalog_find(&cat, "gone"));
    /* The collision rule still sees the reloaded topic. */
    cr_assert_eq(create("logs_app", 1, 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
    catalog_close(&cat);

    /* Reopen with fewer shards: out-of-range placements are folded in and saved. */
    open_catalog(1);
    for (int32_t p = 0; p < 8; p++) cr_assert_eq(catalog_find(&cat, "events")->partition_shard[p], 0);
}

Test(catalog, a_change_that_cannot_be_saved_is_undone) {
    open_catalog(2);
    cr_assert_eq(create("kept", 2, 1), 0);
    /* A directory where the temp file goes makes every save fail (open: EISDIR). */
    char blocker[128];
    snprintf(blocker, sizeof blocker, "%s/%s.tmp", dir, CATALOG_FILE_NAME);
    cr_assert_eq(mkdir(blocker, 0755), 0);
    cr_assert_eq(create("lost", 1, 1), CATALOG_ERR_KAFKA_STORAGE_ERROR);
    cr_assert_null(catalog_find(&cat, "lost"));
    cr_assert_eq(catalog_delete_topic(&cat, "kept", &res), CATALOG_ERR_KAFKA_STORAGE_ERROR);
    cr_assert_not_null(catalog_find(&cat, "kept"));
    cr_assert_eq(catalog_create_partitions(&cat, "kept", 4, false, &res),
                 CATALOG_ERR_KAFKA_STORAGE_ERROR);
    cr_assert_eq(catalog_find(&cat, "kept")->partition_count, 2);
    struct topic_config_alter_op op = {"retention.ms", TOPIC_CONFIG_OP_SET, "5"};
    cr_assert_eq(catalog_alter_topic_config(&cat, "kept", &op, 1, false, &res),
                 CATALOG_ERR_KAFKA_STORAGE_ERROR);
    cr_assert_eq(catalog_find(&cat, "kept")->config.set_mask, 0);
    cr_assert_eq(catalog_topic_count(&cat), 1);
    /* Once the disk works again, so do changes; the file holds what memory holds. */
    cr_assert_eq(rmdir(blocker), 0);
    cr_assert_eq(create("later", 1, 1), 0);
    catalog_close(&cat);
    open_catalog(2);
    cr_assert_eq(catalog_topic_count(&cat), 2);
    cr_assert_eq(catalog_find(&cat, "kept")->partition_count, 2);
    cr_assert_not_null(catalog_find(&cat, "later"));
}

static void expect_refused(const char *why) {
    struct catalog again;
    cr_assert_eq(catalog_open(&again, dir, &broker, 2, err, sizeof err), -1, "%s accepted", why);
    cr_assert(strstr(err, "corrupt"), "%s: %s", why, err);
}

Test(catalog, truncated_or_corrupted_file_is_refused) {
    open_catalog(2);
    cr_assert_eq(create("a", 3, 1), 0);
    cr_assert_eq(create("b", 2, 1), 0);
    catalog_close(&cat);
    size_t len;
    static char good[65536];
    char *data = read_catalog_file(&len);
    cr_assert_lt(len, sizeof good);
    memcpy(good, data, len);

    /* Every truncation is refused, and the file is left as it was (never reset). */
    for (size_t cut = 0; cut < len; cut++) {
        write_catalog_file(good, cut);
        expect_refused("truncated file");
        size_t now;
        read_catalog_file(&now);
        cr_assert_eq(now, cut, "a refused catalogue must not be rewritten");
    }
    /* Any flipped bit is refused. */
    static char bad[65536];
    for (size_t at = 0; at < len; at += 7) {
        memcpy(bad, good, len);
        bad[at] ^= 0x04;
        write_catalog_file(bad, len);
        expect_refused("flipped byte");
    }
    /* An unknown version with a valid checksum is refused with the version named. */
    char body[] = "sluice-catalog 2\nend 0\n";
    char file[128];
    int n = snprintf(file, sizeof file, "%scrc32c %08" PRIx32 "\n", body,
                     crc32c(body, strlen(body)));
    write_catalog_file(file, (size_t)n);
    expect_refused("version 2");
    cr_assert(strstr(err, "version 2"), "%s", err);
    /* A well-formed checksum over a bad body (placement too short) is refused. */
    char body2[] = "sluice-catalog 1\ntopic a 0123456789abcdef0123456789abcdef 2 1 0\n"
                   "placement 0\nend 1\n";
    n = snprintf(file, sizeof file, "%scrc32c %08" PRIx32 "\n", body2,
                 crc32c(body2, strlen(body2)));
    write_catalog_file(file, (size_t)n);
    expect_refused("short placement");
    /* The good file still loads. */
    write_catalog_file(good, len);
    open_catalog(2);
    cr_assert_eq(catalog_topic_count(&cat), 2);
}

/* The checksum keeps random damage away from the parser, so feed the parser mutated bodies
 * that carry a valid checksum: each load must succeed with a sane catalogue or fail cleanly
 * (ASan/UBSan builds make "cleanly" mean no memory error). */
Test(catalog, parser_survives_mutated_bodies_with_valid_checksums, .timeout = 120) {
    open_catalog(3);
    struct catalog_config_kv cfg[] = {{"retention.ms", "1000"}, {"preallocate", "true"}};
    struct catalog_create_request req = {.name = "m.one", .partition_count = 4,
                                         .replication_factor = 1, .configs = cfg,
                                         .config_count = 2};
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), 0);
    cr_assert_eq(create("m-two", 2, 1), 0);
    catalog_close(&cat);
    size_t len;
    static char good[8192];
    char *data = read_catalog_file(&len);
    cr_assert_lt(len, sizeof good);
    memcpy(good, data, len);
    size_t body_len = len - (sizeof "crc32c 00000000\n" - 1);
    static const char alphabet[] = " \n0123456789abcdef-_.xtopicendplacementconfig";
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int loaded = 0, refused = 0;
    for (int round = 0; round < 3000; round++) {
        static char body[8192 + 64];
        memcpy(body, good, body_len);
        size_t n = body_len;
        int edits = 1 + (int)(rng % 3);
        for (int e = 0; e < edits; e++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            size_t at = (size_t)(rng >> 8) % n;
            char c = alphabet[(rng >> 40) % (sizeof alphabet - 1)];
            switch (rng % 3) {
            case 0: body[at] = c; break;                          /* replace */
            case 1: memmove(body + at, body + at + 1, n - at - 1); n--; break; /* delete */
            default:                                              /* insert */
                memmove(body + at + 1, body + at, n - at);
                body[at] = c;
                n++;
            }
        }
        char tail[32];
        int t = snprintf(tail, sizeof tail, "crc32c %08" PRIx32 "\n", crc32c(body, n));
        memcpy(body + n, tail, (size_t)t);
        write_catalog_file(body, n + (size_t)t);
        struct catalog probe;
        if (catalog_open(&probe, dir, &broker, 3, err, sizeof err) != 0) {
            refused++;
            continue;
        }
        loaded++;
        for (size_t i = 0; i < catalog_topic_count(&probe); i++) {
            const struct catalog_topic *tp = catalog_topic_at(&probe, i);
            cr_assert_eq(catalog_validate_topic_name(tp->name, &res), 0);
            if (i > 0) cr_assert_lt(strcmp(catalog_topic_at(&probe, i - 1)->name, tp->name), 0);
            cr_assert_gt(tp->partition_count, 0);
            for (int32_t p = 0; p < tp->partition_count; p++)
                cr_assert_lt(tp->partition_shard[p], 3);
        }
        catalog_close(&probe);
    }
    cr_assert_gt(refused, 0);
    cr_log_info("mutated catalogues: %d loaded, %d refused", loaded, refused);
}

Test(catalog, snapshot_lookups) {
    broker_set("log.retention.ms", "99");
    open_catalog(4);
    cr_assert_eq(create("b", 3, 1), 0);
    cr_assert_eq(create("a", 1, 1), 0);
    struct catalog_config_kv cfg[] = {{"retention.ms", "7"}};
    struct catalog_create_request req = {.name = "c", .partition_count = 2,
                                         .replication_factor = 1, .configs = cfg,
                                         .config_count = 1};
    cr_assert_eq(catalog_create_topic(&cat, &req, false, &res), 0);
    struct catalog_snapshot *snap = catalog_snapshot_build(&cat, 42);
    cr_assert_not_null(snap);
    cr_assert_eq(snap->epoch, 42);
    cr_assert_eq(snap->topic_count, 3);
    cr_assert_str_eq(snap->topics[0].name, "a");
    cr_assert_str_eq(snap->topics[2].name, "c");
    for (size_t i = 0; i < 3; i++) {
        const struct catalog_topic *t = catalog_topic_at(&cat, i);
        const struct catalog_snapshot_topic *s = catalog_snapshot_find(snap, t->name);
        cr_assert_not_null(s);
        cr_assert_eq(catalog_snapshot_find_id(snap, t->id), s);
        for (int32_t p = 0; p < t->partition_count; p++)
            cr_assert_eq(catalog_snapshot_partition_shard(s, p), t->partition_shard[p]);
        cr_assert_eq(catalog_snapshot_partition_shard(s, t->partition_count), -1);
        cr_assert_eq(catalog_snapshot_partition_shard(s, -1), -1);
    }
    cr_assert_eq(catalog_snapshot_find(snap, "c")->config.retention_ms, 7);
    cr_assert_eq(catalog_snapshot_find(snap, "a")->config.retention_ms, 99);
    cr_assert_null(catalog_snapshot_find(snap, "d"));
    uint8_t zero[16] = {0};
    cr_assert_null(catalog_snapshot_find_id(snap, zero));
    /* The snapshot is a copy: later changes do not show through. */
    cr_assert_eq(catalog_delete_topic(&cat, "a", &res), 0);
    cr_assert_not_null(catalog_snapshot_find(snap, "a"));
    catalog_snapshot_free(snap);
}

Test(catalog, reclamation_waits_for_every_reader) {
    open_catalog(2);
    struct catalog_publisher *pub = malloc(sizeof *pub);
    cr_assert_not_null(pub);
    cr_assert_eq(catalog_publisher_init(pub, 2, &cat), 0);
    struct catalog_reader r0, r1;
    catalog_reader_init(&r0, pub, 0);
    catalog_reader_init(&r1, pub, 1);
    cr_assert_eq(catalog_reader_refresh(&r0)->epoch, 1);
    cr_assert_eq(catalog_reader_refresh(&r1)->epoch, 1);
    cr_assert_eq(catalog_publish(pub, &cat), 0);
    cr_assert_eq(pub->retired_count, 1, "epoch 1 is still held");
    cr_assert_eq(catalog_reader_refresh(&r0)->epoch, 2);
    cr_assert_eq(catalog_publisher_reclaim(pub), 1, "r1 still holds epoch 1");
    cr_assert_eq(catalog_reader_refresh(&r1)->epoch, 2);
    cr_assert_eq(catalog_publisher_reclaim(pub), 0);
    /* A reader that never refreshes fills the bounded retired list: publish says retry. */
    int published = 0;
    while (catalog_publish(pub, &cat) == 0) {
        catalog_reader_refresh(&r0);
        published++;
        cr_assert_leq(published, CATALOG_MAX_RETIRED);
    }
    cr_assert_eq(pub->retired_count, CATALOG_MAX_RETIRED);
    catalog_reader_refresh(&r1);
    cr_assert_eq(catalog_publish(pub, &cat), 0, "room again once the laggard moved on");
    catalog_publisher_destroy(pub);
    free(pub);
}

/* ---- two threads: readers look up while control publishes many versions ---- */

#define PUBLISH_ROUNDS 3000
#define READERS 2

struct reader_arg {
    struct catalog_publisher *pub;
    uint32_t slot;
    atomic_bool *stop;
    uint64_t refreshes;
    uint64_t epochs_seen;
    uint64_t lookups;
    int errors;
};

/* Topic "t<k>" always has k % 7 + 1 partitions: a reader can check what it reads. */
static void *reader_main(void *p) {
    struct reader_arg *a = p;
    struct catalog_reader reader;
    catalog_reader_init(&reader, a->pub, a->slot);
    uint64_t last_epoch = 0;
    while (!atomic_load(a->stop)) {
        const struct catalog_snapshot *snap = catalog_reader_refresh(&reader);
        a->refreshes++;
        if (snap->epoch < last_epoch) a->errors++;
        if (snap->epoch != last_epoch) a->epochs_seen++;
        last_epoch = snap->epoch;
        for (size_t i = 0; i < snap->topic_count; i++) {
            const struct catalog_snapshot_topic *t = &snap->topics[i];
            int k = atoi(t->name + 1);
            if (t->partition_count != k % 7 + 1) a->errors++;
            if (catalog_snapshot_find(snap, t->name) != t) a->errors++;
            if (catalog_snapshot_find_id(snap, t->id) != t) a->errors++;
            for (int32_t q = 0; q < t->partition_count; q++)
                if (catalog_snapshot_partition_shard(t, q) < 0 ||
                    catalog_snapshot_partition_shard(t, q) >= 3)
                    a->errors++;
            if (t->config.retention_ms != 604800000) a->errors++;
            a->lookups++;
        }
    }
    return NULL;
}

Test(catalog, snapshot_publication_under_threads, .timeout = 120) {
    /* tmpfs keeps the per-change fsync cheap; the rule under test is the publication. */
    cr_assert_eq(rmdir(dir), 0);
    snprintf(dir, sizeof dir, "/dev/shm/sluice-catalog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    open_catalog(3);
    struct catalog_publisher *pub = malloc(sizeof *pub);
    cr_assert_not_null(pub);
    cr_assert_eq(catalog_publisher_init(pub, READERS, &cat), 0);
    atomic_bool stop = false;
    struct reader_arg args[READERS];
    pthread_t threads[READERS];
    for (uint32_t i = 0; i < READERS; i++) {
        args[i] = (struct reader_arg){.pub = pub, .slot = i, .stop = &stop};
        cr_assert_eq(pthread_create(&threads[i], NULL, reader_main, &args[i]), 0);
    }
    int retries = 0;
    for (int round = 0; round < PUBLISH_ROUNDS; round++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", round % 40);
        if (catalog_find(&cat, name)) {
            if (round % 3 == 0) cr_assert_eq(catalog_delete_topic(&cat, name, &res), 0);
        } else {
            cr_assert_eq(create(name, round % 40 % 7 + 1, 1), 0, "%s", res.message);
        }
        while (catalog_publish(pub, &cat) != 0) {
            retries++;
            sched_yield();
        }
    }
    atomic_store(&stop, true);
    for (uint32_t i = 0; i < READERS; i++) cr_assert_eq(pthread_join(threads[i], NULL), 0);
    for (uint32_t i = 0; i < READERS; i++) {
        cr_assert_eq(args[i].errors, 0, "reader %u saw %d inconsistencies", i, args[i].errors);
        cr_assert_gt(args[i].epochs_seen, 1, "reader %u saw only one version", i);
        cr_assert_gt(args[i].lookups, 0);
    }
    cr_assert_leq(pub->retired_count, CATALOG_MAX_RETIRED);
    cr_log_info("published %d versions, %d retries; reader 0: %" PRIu64 " refreshes, %" PRIu64
                " versions seen", PUBLISH_ROUNDS, retries, args[0].refreshes,
                args[0].epochs_seen);
    catalog_publisher_destroy(pub);
    free(pub);
}
