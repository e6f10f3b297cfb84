/* test_config.c - properties parsing, precedence, validation of the broker config. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/config.h"

static struct config cfg;
static char err[512];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(config, defaults_come_from_the_registry) {
    config_init(&cfg);
    cr_assert_str_eq(config_get(&cfg, "listeners"), "PLAINTEXT://127.0.0.1:9092");
    cr_assert_eq(config_get_i64(&cfg, "num.partitions"), 1);
    cr_assert(config_get_bool(&cfg, "auto.create.topics.enable"));
    cr_assert_eq(config_get_i64(&cfg, "socket.request.max.bytes"), 104857600);
    cr_assert_null(config_get(&cfg, "log.retention.ms"));
    cr_assert_null(config_get(&cfg, "no.such.key"));
    cr_assert_eq(config_source_of(&cfg, "num.partitions"), CONFIG_SOURCE_DEFAULT);
}

Test(config, properties_file_syntax) {
    config_init(&cfg);
    char path[] = "/tmp/sluice-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    write_file(path,
               "# a comment\n"
               "! another comment\n"
               "\n"
               "num.partitions=6\n"
               "  log.dirs : /var/lib/sluice  \n"
               "auto.create.topics.enable false\n"
               "advertised.listeners=PLAINTEXT://broker1:9092,\\\n"
               "    PLAINTEXT://broker2:9092\n");
    cr_assert_eq(config_load_file(&cfg, path, err, sizeof err), 0, "%s", err);
    unlink(path);
    cr_assert_eq(config_get_i64(&cfg, "num.partitions"), 6);
    cr_assert_str_eq(config_get(&cfg, "log.dirs"), "/var/lib/sluice");
    cr_assert_not(config_get_bool(&cfg, "auto.create.topics.enable"));
    cr_assert_str_eq(config_get(&cfg, "advertised.listeners"),
                     "PLAINTEXT://broker1:9092,PLAINTEXT://broker2:9092");
    cr_assert_eq(config_source_of(&cfg, "num.partitions"), CONFIG_SOURCE_FILE);
}

Test(config, overrides_win_over_the_file) {
    config_init(&cfg);
    cr_assert_eq(config_set(&cfg, "num.partitions", "3", CONFIG_SOURCE_FILE, err, sizeof err), 0);
    cr_assert_eq(config_set_assignment(&cfg, "num.partitions=12", err, sizeof err), 0);
    cr_assert_eq(config_get_i64(&cfg, "num.partitions"), 12);
    cr_assert_eq(config_source_of(&cfg, "num.partitions"), CONFIG_SOURCE_OVERRIDE);
}

Test(config, bad_values_are_refused_with_a_message) {
    config_init(&cfg);
    cr_assert_eq(config_set_assignment(&cfg, "num.partitions=many", err, sizeof err), -1);
    cr_assert(strstr(err, "num.partitions") != NULL, "%s", err);
    cr_assert_eq(config_set_assignment(&cfg, "num.partitions=0", err, sizeof err), -1);
    cr_assert_eq(config_set_assignment(&cfg, "auto.create.topics.enable=yes", err, sizeof err), -1);
    cr_assert_eq(config_set_assignment(&cfg, "=3", err, sizeof err), -1);
    cr_assert_eq(config_set_assignment(&cfg, "num.partitions", err, sizeof err), -1);
    /* the value that failed did not replace the default */
    cr_assert_eq(config_get_i64(&cfg, "num.partitions"), 1);
}

Test(config, unknown_keys_are_kept) {
    config_init(&cfg);
    cr_assert_eq(config_set_assignment(&cfg, "zookeeper.connect=localhost:2181", err, sizeof err), 0);
    cr_assert_str_eq(config_get(&cfg, "zookeeper.connect"), "localhost:2181");
}

Test(config, a_missing_file_is_an_error) {
    config_init(&cfg);
    cr_assert_eq(config_load_file(&cfg, "/nonexistent/sluice.properties", err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/sluice.properties") != NULL);
}

Test(config, the_table_is_bounded) {
    config_init(&cfg);
    char kv[64];
    int accepted = 0;
    for (int i = 0; i < CONFIG_MAX_ENTRIES + 10; i++) {
        snprintf(kv, sizeof kv, "custom.key.%d=%d", i, i);
        if (config_set_assignment(&cfg, kv, err, sizeof err) == 0) accepted++;
    }
    cr_assert_eq(accepted, CONFIG_MAX_ENTRIES);
}
