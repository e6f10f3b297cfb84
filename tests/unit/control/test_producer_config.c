/* test_producer_config.c - the broker's producer-state keys reach every partition's
 * plog_config. With the real config registry, catalogue and control plane in a fresh temp
 * dir, a topic is created and published, and the struct topic_info a shard's topic_source
 * hands out (by name, by id and by index: all three paths) carries
 * producer.id.expiration.ms and sluice.max.producers.per.partition in its `log` config:
 * Kafka's defaults when unset, the broker's values when set. Out-of-range values are
 * refused by the registry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/config.h"
#include "control/control_plane.h"
#include "storage/producer_state.h"

static struct config broker;
static struct mesh mesh;
static struct control_plane cp;
static struct topic_source src;
static char dir[64];
static char err[512];
static bool cp_open;

static void setup(void) {
    config_init(&broker);
    snprintf(dir, sizeof dir, "/tmp/sluice-pcfg-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(mesh_init(&mesh, 1, 64), 0);
    cp_open = false;
}

static void teardown(void) {
    if (cp_open) control_plane_destroy(&cp);
    mesh_destroy(&mesh);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(producer_config, .init = setup, .fini = teardown);

static void set(const char *key, const char *value) {
    cr_assert_eq(config_set(&broker, key, value, CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0,
                 "%s=%s: %s", key, value, err);
}

/* Open the control plane over `broker`, create topic "t" and return shard 0's view. */
static void open_and_create(void) {
    cr_assert_eq(control_plane_init(&cp, &mesh, dir, &broker, err, sizeof err), 0, "%s", err);
    cp_open = true;
    control_plane_topic_source(&cp, 0, &src);
    struct catalog_create_request req = {.name = "t", .partition_count = 2,
                                         .replication_factor = -1};
    struct catalog_result res;
    cr_assert_eq(catalog_create_topic(&cp.catalog, &req, false, &res), 0);
    control_plane_publish(&cp);
    src.refresh(src.reader);
}

static void expect_log_limits(uint32_t max_producers, int64_t expiration_ms) {
    struct topic_info by_name, by_id, by_index;
    cr_assert(src.find(src.reader, "t", 1, &by_name));
    cr_assert(src.find_id(src.reader, by_name.id, &by_id));
    cr_assert_eq(src.count(src.reader), 1u);
    cr_assert(src.at(src.reader, 0, &by_index));
    const struct topic_info *views[] = {&by_name, &by_id, &by_index};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(views[i]->log.max_producers, max_producers, "view %zu: %u", i,
                     views[i]->log.max_producers);
        cr_assert_eq(views[i]->log.producer_expiration_ms, expiration_ms, "view %zu: %lld", i,
                     (long long)views[i]->log.producer_expiration_ms);
    }
}

Test(producer_config, defaults_are_kafkas) {
    open_and_create();
    /* Kafka: producer.id.expiration.ms = 86400000; sluice's LRU bound: 4096. */
    expect_log_limits(4096, 86400000);
    cr_assert_eq(PRODUCER_STATE_DEFAULT_MAX, 4096);
    cr_assert_eq(PRODUCER_STATE_DEFAULT_EXPIRATION_MS, 86400000);
}

Test(producer_config, broker_values_reach_every_partition_config) {
    set("sluice.max.producers.per.partition", "2");
    set("producer.id.expiration.ms", "60000");
    open_and_create();
    expect_log_limits(2, 60000);
}

Test(producer_config, out_of_range_values_are_refused) {
    cr_assert_neq(config_set(&broker, "sluice.max.producers.per.partition", "0",
                             CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0);
    cr_assert_neq(config_set(&broker, "sluice.max.producers.per.partition", "1000001",
                             CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0);
    cr_assert_neq(config_set(&broker, "producer.id.expiration.ms", "0",
                             CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0);
    cr_assert_neq(config_set(&broker, "producer.id.expiration.ms", "-5",
                             CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0);
    cr_assert_neq(config_set(&broker, "producer.id.expiration.ms", "abc",
                             CONFIG_SOURCE_OVERRIDE, err, sizeof err), 0);
    /* Refused values left the defaults in place. */
    cr_assert_eq(config_get_i64(&broker, "sluice.max.producers.per.partition"), 4096);
    cr_assert_eq(config_get_i64(&broker, "producer.id.expiration.ms"), 86400000);
}
