/* cli_offsets.c - `sluice offsets [TOPIC...] [--time earliest|latest|max-timestamp|MS|DATETIME]`.
 *
 * Metadata names every partition of the topics (all topics when none is named); ListOffsets
 * (v1-7) asks the log start and end offsets, or with --time the first offset whose
 * timestamp is at or after the time (Kafka's offsetsForTimes). Requests go to the
 * bootstrap broker: on a multi-broker cluster a partition it does not lead reports
 * NOT_LEADER_OR_FOLLOWER in the ERROR column and the exit status is 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli.h"
#include "control/cli_common.h"
#include "control/cli_offsets.h"
#include "control/cli_table.h"

static const char offsets_usage[] =
    "usage: sluice offsets [TOPIC...] [--time earliest|latest|max-timestamp|MS|DATETIME]\n"
    "  without --time: EARLIEST-OFFSET and LATEST-OFFSET of every partition;\n"
    "  with --time: the first OFFSET at or after the time (DATETIME: 2026-01-02T03:04:05Z)\n";

int cli_parse_offset_time(const char *s, int64_t *out) {
    if (strcmp(s, "earliest") == 0) *out = CLI_TIME_EARLIEST;
    else if (strcmp(s, "latest") == 0) *out = CLI_TIME_LATEST;
    else if (strcmp(s, "max-timestamp") == 0) *out = CLI_TIME_MAX_TIMESTAMP;
    else return cli_parse_datetime_ms(s, out);
    return 0;
}

int cli_list_offsets(const struct cli_common *o, struct kclient *c,
                     const struct kafka_metadata_response *md, int64_t timestamp,
                     struct kafka_list_offsets_response *resp) {
    int16_t my_min = timestamp == CLI_TIME_MAX_TIMESTAMP ? 7 : 1;
    int16_t v = kclient_pick_version(c, KAFKA_API_LIST_OFFSETS, my_min, 7);
    if (v < 0) return cli_fail(o, -1, "%s", c->err);
    struct kafka_list_offsets_request req;
    kafka_list_offsets_request_init(&req, v);
    req.replica_id = -1;
    req.isolation_level = 0;
    req.topics = KCLIENT_ARRAY(c, md->topics_count > 0 ? md->topics_count : 1, req.topics);
    if (!req.topics) return cli_fail(o, -1, "%s", c->err);
    int32_t n = 0;
    for (int32_t i = 0; i < md->topics_count; i++) {
        const struct kafka_metadata_response_metadata_response_topic *t = &md->topics[i];
        if (t->error_code != 0 || t->partitions_count <= 0) continue;
        struct kafka_list_offsets_request_list_offsets_topic *rt = &req.topics[n++];
        rt->name = t->name;
        rt->partitions = KCLIENT_ARRAY(c, t->partitions_count, rt->partitions);
        if (!rt->partitions) return cli_fail(o, -1, "%s", c->err);
        for (int32_t p = 0; p < t->partitions_count; p++) {
            rt->partitions[p] = (struct kafka_list_offsets_request_list_offsets_partition){
                .partition_index = t->partitions[p].partition_index,
                .current_leader_epoch = -1,
                .timestamp = timestamp,
                .max_num_offsets = 1,
            };
        }
        rt->partitions_count = t->partitions_count;
    }
    req.topics_count = n;
    if (kclient_call(c, KAFKA_API_LIST_OFFSETS, v, &req, resp) != 0)
        return cli_fail(o, -1, "%s", c->err);
    return 0;
}

const struct kafka_list_offsets_response_list_offsets_partition_response *
cli_find_offset(const struct kafka_list_offsets_response *r, struct kafka_str topic,
                int32_t partition) {
    for (int32_t i = 0; i < r->topics_count; i++) {
        if (!kafka_str_equals(r->topics[i].name, topic)) continue;
        for (int32_t p = 0; p < r->topics[i].partitions_count; p++)
            if (r->topics[i].partitions[p].partition_index == partition)
                return &r->topics[i].partitions[p];
    }
    return NULL;
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static const struct cli_column both_columns[] = {
    {"TOPIC", "topic", CLI_TEXT},
    {"PARTITION", "partition", CLI_NUMBER},
    {"EARLIEST-OFFSET", "earliest_offset", CLI_NUMBER},
    {"LATEST-OFFSET", "latest_offset", CLI_NUMBER},
    {"ERROR", "error", CLI_TEXT},
};

static const struct cli_column time_columns[] = {
    {"TOPIC", "topic", CLI_TEXT},
    {"PARTITION", "partition", CLI_NUMBER},
    {"OFFSET", "offset", CLI_NUMBER},
    {"TIMESTAMP", "timestamp", CLI_NUMBER},
    {"ERROR", "error", CLI_TEXT},
};

static void format_offset(char *buf, size_t cap,
                          const struct kafka_list_offsets_response_list_offsets_partition_response *r,
                          bool timestamp) {
    if (!r || r->error_code != 0 || (timestamp ? r->timestamp : r->offset) < 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%lld", (long long)(timestamp ? r->timestamp : r->offset));
}

/* Rows for one topic, partitions in index order. Returns true when a partition failed. */
static bool add_topic_rows(struct cli_table *t,
                           const struct kafka_metadata_response_metadata_response_topic *topic,
                           const struct kafka_list_offsets_response *first,
                           const struct kafka_list_offsets_response *second, int32_t *scratch) {
    char name[512];
    cli_str(topic->name, name, sizeof name);
    for (int32_t p = 0; p < topic->partitions_count; p++)
        scratch[p] = topic->partitions[p].partition_index;
    qsort(scratch, (size_t)topic->partitions_count, sizeof scratch[0], compare_int32);
    bool failed = false;
    for (int32_t p = 0; p < topic->partitions_count; p++) {
        const struct kafka_list_offsets_response_list_offsets_partition_response *a =
            cli_find_offset(first, topic->name, scratch[p]);
        const struct kafka_list_offsets_response_list_offsets_partition_response *b =
            second ? cli_find_offset(second, topic->name, scratch[p]) : a;
        char index[16], col2[24], col3[24];
        snprintf(index, sizeof index, "%d", scratch[p]);
        format_offset(col2, sizeof col2, a, false);
        format_offset(col3, sizeof col3, b, second == NULL);
        const char *error = "";
        if (!a || !b) error = "NO_ANSWER";
        else if (a->error_code != 0) error = kafka_error_name(a->error_code);
        else if (b->error_code != 0) error = kafka_error_name(b->error_code);
        failed |= error[0] != '\0';
        const char *cells[5] = {name, index, col2, col3, error};
        cli_table_add_row(t, cells);
    }
    return failed;
}

static int offsets_run(const struct cli_common *o, struct kclient *c, char **topics,
                       int topic_count, bool has_time, int64_t timestamp) {
    struct kafka_metadata_response md;
    if (cli_metadata(o, c, topics, topic_count, &md) != 0) return CLI_EXIT_FAILED;
    int exit_code = CLI_EXIT_OK;
    int32_t max_partitions = 1;
    for (int32_t i = 0; i < md.topics_count; i++) {
        if (md.topics[i].error_code != 0) {
            char name[512];
            exit_code = cli_fail(o, CLI_EXIT_FAILED, "topic '%s': %s",
                                 cli_str(md.topics[i].name, name, sizeof name),
                                 kafka_error_name(md.topics[i].error_code));
        }
        if (md.topics[i].partitions_count > max_partitions)
            max_partitions = md.topics[i].partitions_count;
    }
    struct kafka_list_offsets_response first, second;
    if (cli_list_offsets(o, c, &md, has_time ? timestamp : CLI_TIME_EARLIEST, &first) != 0)
        return CLI_EXIT_FAILED;
    if (!has_time && cli_list_offsets(o, c, &md, CLI_TIME_LATEST, &second) != 0)
        return CLI_EXIT_FAILED;
    int32_t *scratch = KCLIENT_ARRAY(c, max_partitions, scratch);
    if (!scratch) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct cli_table t;
    cli_table_init(&t, has_time ? time_columns : both_columns, 5);
    bool failed = false;
    for (int32_t i = 0; i < md.topics_count; i++)
        if (md.topics[i].error_code == 0)
            failed |= add_topic_rows(&t, &md.topics[i], &first, has_time ? NULL : &second,
                                     scratch);
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return failed ? CLI_EXIT_FAILED : exit_code;
}

enum { OPT_TIME = CLI_OPT_FIRST_COMMAND_OPTION };

static const struct option offsets_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    {"time", required_argument, 0, OPT_TIME},
    {0, 0, 0, 0},
};

static int usage_error(const struct cli_common *o, const char *why) {
    cli_fail(o, CLI_EXIT_USAGE, "%s", why);
    fputs(offsets_usage, stderr);
    return CLI_EXIT_USAGE;
}

int cmd_offsets(int argc, char **argv) {
    struct cli_common o;
    cli_common_init(&o, "offsets");
    bool has_time = false;
    int64_t timestamp = 0;
    cli_getopt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT_OPTIONS, offsets_options, NULL)) !=
           -1) {
        if (opt == '?') return usage_error(&o, "bad option");
        int handled = cli_common_option(&o, opt, optarg);
        if (handled < 0) return usage_error(&o, "bad --timeout-ms");
        if (handled) continue;
        if (opt != OPT_TIME) return usage_error(&o, "unknown option");
        if (cli_parse_offset_time(optarg, &timestamp) != 0)
            return usage_error(&o, "--time wants earliest, latest, max-timestamp, "
                                   "milliseconds or YYYY-MM-DDTHH:MM:SS[.mmm]Z");
        has_time = true;
    }
    if (o.help) {
        fputs(offsets_usage, stdout);
        fputs(CLI_COMMON_USAGE, stdout);
        return CLI_EXIT_OK;
    }
    struct kclient c;
    int connect_rc = cli_connect(&o, &c);
    if (connect_rc != 0) return connect_rc;
    int rc = offsets_run(&o, &c, argv + optind, argc - optind, has_time, timestamp);
    kclient_close(&c);
    return rc;
}
