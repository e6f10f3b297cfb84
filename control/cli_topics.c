/* cli_topics.c - `sluice topics list|create|describe|delete|alter-config|add-partitions`.
 *
 * Each action is one or two Kafka requests to the bootstrap broker (Metadata, CreateTopics,
 * DeleteTopics, CreatePartitions; alter-config is IncrementalAlterConfigs through
 * cli_configs.c), at the highest version both sides know. The answer is printed as a table
 * (or --json); any per-topic error makes the exit status 1, a bad command line 2. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli.h"
#include "control/cli_common.h"
#include "control/cli_configs.h"
#include "control/cli_table.h"

#define TOPICS_MAX_CONFIGS 256

static const char topics_usage[] =
    "usage: sluice topics <action> [options]\n"
    "  list                                      every topic with its partition count\n"
    "  create NAME... [--partitions N] [--replication-factor N] [--config K=V]...\n"
    "         [--if-not-exists] [--validate-only]\n"
    "  describe [NAME...]                        partitions, leaders, replicas, ISR\n"
    "  delete NAME... [--if-exists]\n"
    "  alter-config NAME [--set K=V]... [--delete K]... [--validate-only]\n"
    "  add-partitions NAME --partitions TOTAL [--validate-only]\n";

static int usage_error(const struct cli_common *o, const char *why) {
    cli_fail(o, CLI_EXIT_USAGE, "%s", why);
    fputs(topics_usage, stderr);
    return CLI_EXIT_USAGE;
}

/* ---- per-topic result rows (create, delete, add-partitions) ----------------------- */

static const struct cli_column result_columns[] = {
    {"TOPIC", "topic", CLI_TEXT},
    {"RESULT", "result", CLI_TEXT},
    {"MESSAGE", "message", CLI_TEXT},
};

/* Adds one row; returns true when the row is a failure the exit status must report. */
static bool add_result(struct cli_table *t, struct kafka_str name, int16_t code,
                       struct kafka_str message, int16_t tolerated_code) {
    char name_buf[512], msg_buf[1024];
    bool ok = code == 0 || code == tolerated_code;
    const char *cells[3] = {cli_str(name, name_buf, sizeof name_buf),
                            code == 0 ? "OK" : kafka_error_name(code),
                            cli_str(message, msg_buf, sizeof msg_buf)};
    cli_table_add_row(t, cells);
    return !ok;
}

/* ---- list / describe -------------------------------------------------------------- */

static int compare_topics(const void *a, const void *b) {
    const struct kafka_metadata_response_metadata_response_topic *x = *(void *const *)a;
    const struct kafka_metadata_response_metadata_response_topic *y = *(void *const *)b;
    int32_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int cmp = n > 0 ? memcmp(x->name.ptr, y->name.ptr, (size_t)n) : 0;
    return cmp ? cmp : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

/* Topics of a Metadata answer sorted by name (pointers into resp, from the arena). */
static const struct kafka_metadata_response_metadata_response_topic **
sorted_topics(struct kclient *c, const struct kafka_metadata_response *resp) {
    const struct kafka_metadata_response_metadata_response_topic **order =
        kclient_alloc(c, (size_t)(resp->topics_count > 0 ? resp->topics_count : 1),
                      sizeof *order, _Alignof(void *));
    if (!order) return NULL;
    for (int32_t i = 0; i < resp->topics_count; i++) order[i] = &resp->topics[i];
    if (resp->topics_count > 1)
        qsort(order, (size_t)resp->topics_count, sizeof *order, compare_topics);
    return order;
}

static void format_ids(char *buf, size_t cap, const int32_t *ids, int32_t count) {
    size_t len = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < count && len + 12 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%d" : "%d", ids[i]);
}

static int topics_list(struct cli_common *o, struct kclient *c, int argc, char **argv) {
    if (argc > 0) return usage_error(o, "list takes no topic names (use describe)");
    struct kafka_metadata_response resp;
    if (cli_metadata(o, c, NULL, 0, &resp) != 0) return CLI_EXIT_FAILED;
    const struct kafka_metadata_response_metadata_response_topic **order = sorted_topics(c, &resp);
    if (!order) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    static const struct cli_column columns[] = {
        {"TOPIC", "topic", CLI_TEXT},
        {"PARTITIONS", "partitions", CLI_NUMBER},
        {"REPLICATION-FACTOR", "replication_factor", CLI_NUMBER},
        {"INTERNAL", "internal", CLI_TEXT},
    };
    struct cli_table t;
    cli_table_init(&t, columns, 4);
    for (int32_t i = 0; i < resp.topics_count; i++) {
        const struct kafka_metadata_response_metadata_response_topic *topic = order[i];
        char name[512], parts[16], rf[16];
        snprintf(parts, sizeof parts, "%d", topic->partitions_count);
        snprintf(rf, sizeof rf, "%d",
                 topic->partitions_count > 0 ? topic->partitions[0].replica_nodes_count : 0);
        const char *cells[4] = {cli_str(topic->name, name, sizeof name), parts, rf,
                                topic->is_internal ? "true" : "false"};
        cli_table_add_row(&t, cells);
    }
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return CLI_EXIT_OK;
}

static int topics_describe(struct cli_common *o, struct kclient *c, int argc, char **argv) {
    struct kafka_metadata_response resp;
    if (cli_metadata(o, c, argv, argc, &resp) != 0) return CLI_EXIT_FAILED;
    const struct kafka_metadata_response_metadata_response_topic **order = sorted_topics(c, &resp);
    if (!order) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    static const struct cli_column columns[] = {
        {"TOPIC", "topic", CLI_TEXT},       {"TOPIC-ID", "topic_id", CLI_TEXT},
        {"PARTITION", "partition", CLI_NUMBER}, {"LEADER", "leader", CLI_NUMBER},
        {"REPLICAS", "replicas", CLI_TEXT}, {"ISR", "isr", CLI_TEXT},
    };
    struct cli_table t;
    cli_table_init(&t, columns, 6);
    int exit_code = CLI_EXIT_OK;
    for (int32_t i = 0; i < resp.topics_count; i++) {
        const struct kafka_metadata_response_metadata_response_topic *topic = order[i];
        char name[512], id[40];
        cli_str(topic->name, name, sizeof name);
        if (topic->error_code != 0) {
            exit_code = cli_fail(o, CLI_EXIT_FAILED, "topic '%s': %s", name,
                                 kafka_error_name(topic->error_code));
            continue;
        }
        for (int b = 0; b < 16; b++)
            snprintf(id + 2 * b, sizeof id - 2 * (size_t)b, "%02x", topic->topic_id.bytes[b]);
        for (int32_t p = 0; p < topic->partitions_count; p++) {
            const struct kafka_metadata_response_metadata_response_partition *part =
                &topic->partitions[p];
            char index[16], leader[16], replicas[256], isr[256];
            snprintf(index, sizeof index, "%d", part->partition_index);
            snprintf(leader, sizeof leader, "%d", part->leader_id);
            format_ids(replicas, sizeof replicas, part->replica_nodes, part->replica_nodes_count);
            format_ids(isr, sizeof isr, part->isr_nodes, part->isr_nodes_count);
            const char *cells[6] = {name, kafka_uuid_is_zero(topic->topic_id) ? "" : id,
                                    index, leader, replicas, isr};
            cli_table_add_row(&t, cells);
        }
    }
    if (t.row_count > 0 || exit_code == CLI_EXIT_OK) cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return exit_code;
}

/* ---- create ----------------------------------------------------------------------- */

struct create_args {
    int64_t partitions;
    int64_t replication_factor;
    const char *configs[TOPICS_MAX_CONFIGS];
    int config_count;
    bool if_not_exists;
    bool validate_only;
};

static int topics_create_send(struct cli_common *o, struct kclient *c, char **names,
                              int name_count, const struct create_args *a) {
    int16_t v = kclient_pick_version(c, KAFKA_API_CREATE_TOPICS, 0, 7);
    if (v < 0) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    if (v < 4 && (a->partitions < 0 || a->replication_factor < 0))
        return cli_fail(o, CLI_EXIT_USAGE, "this broker (CreateTopics v%d) needs "
                        "--partitions and --replication-factor", v);
    struct kafka_create_topics_request req;
    kafka_create_topics_request_init(&req, v);
    req.timeout_ms = o->timeout_ms;
    req.validate_only = a->validate_only;
    req.topics = KCLIENT_ARRAY(c, name_count, req.topics);
    struct kafka_create_topics_request_creatable_topic_config *configs =
        KCLIENT_ARRAY(c, a->config_count ? a->config_count : 1, configs);
    if (!req.topics || !configs) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    for (int i = 0; i < a->config_count; i++) {
        const char *eq = strchr(a->configs[i], '=');
        assert(eq != NULL); /* checked while parsing */
        configs[i].name = (struct kafka_str){a->configs[i], (int32_t)(eq - a->configs[i])};
        configs[i].value = kafka_str_from_cstr(eq + 1);
    }
    for (int i = 0; i < name_count; i++) {
        struct kafka_create_topics_request_creatable_topic *t = &req.topics[i];
        memset(t, 0, sizeof *t);
        t->name = kafka_str_from_cstr(names[i]);
        t->num_partitions = (int32_t)a->partitions;
        t->replication_factor = (int16_t)a->replication_factor;
        t->configs = configs;
        t->configs_count = a->config_count;
    }
    req.topics_count = name_count;
    struct kafka_create_topics_response resp;
    if (kclient_call(c, KAFKA_API_CREATE_TOPICS, v, &req, &resp) != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct cli_table t;
    cli_table_init(&t, result_columns, 3);
    bool failed = false;
    for (int32_t i = 0; i < resp.topics_count; i++)
        failed |= add_result(&t, resp.topics[i].name, resp.topics[i].error_code,
                             resp.topics[i].error_message, a->if_not_exists ? 36 : 0);
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

enum { OPT_PARTITIONS = CLI_OPT_FIRST_COMMAND_OPTION, OPT_RF, OPT_CONFIG, OPT_IF_NOT_EXISTS,
       OPT_IF_EXISTS, OPT_VALIDATE_ONLY, OPT_SET, OPT_DELETE };

static const struct option topics_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    {"partitions", required_argument, 0, OPT_PARTITIONS},
    {"replication-factor", required_argument, 0, OPT_RF},
    {"config", required_argument, 0, OPT_CONFIG},
    {"if-not-exists", no_argument, 0, OPT_IF_NOT_EXISTS},
    {"if-exists", no_argument, 0, OPT_IF_EXISTS},
    {"validate-only", no_argument, 0, OPT_VALIDATE_ONLY},
    {"set", required_argument, 0, OPT_SET},
    {"delete", required_argument, 0, OPT_DELETE},
    {0, 0, 0, 0},
};

/* ---- delete ----------------------------------------------------------------------- */

static int topics_delete(struct cli_common *o, struct kclient *c, char **names, int name_count,
                         bool if_exists) {
    int16_t v = kclient_pick_version(c, KAFKA_API_DELETE_TOPICS, 0, 6);
    if (v < 0) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct kafka_delete_topics_request req;
    kafka_delete_topics_request_init(&req, v);
    req.timeout_ms = o->timeout_ms;
    if (v >= 6) {
        req.topics = KCLIENT_ARRAY(c, name_count, req.topics);
        if (!req.topics) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
        for (int i = 0; i < name_count; i++) {
            memset(&req.topics[i], 0, sizeof req.topics[i]);
            req.topics[i].name = kafka_str_from_cstr(names[i]);
        }
        req.topics_count = name_count;
    } else {
        req.topic_names = KCLIENT_ARRAY(c, name_count, req.topic_names);
        if (!req.topic_names) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
        for (int i = 0; i < name_count; i++) req.topic_names[i] = kafka_str_from_cstr(names[i]);
        req.topic_names_count = name_count;
    }
    struct kafka_delete_topics_response resp;
    if (kclient_call(c, KAFKA_API_DELETE_TOPICS, v, &req, &resp) != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct cli_table t;
    cli_table_init(&t, result_columns, 3);
    bool failed = false;
    for (int32_t i = 0; i < resp.responses_count; i++)
        failed |= add_result(&t, resp.responses[i].name, resp.responses[i].error_code,
                             resp.responses[i].error_message, if_exists ? 3 : 0);
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

/* ---- add-partitions --------------------------------------------------------------- */

static int topics_add_partitions(struct cli_common *o, struct kclient *c, const char *name,
                                 int64_t total, bool validate_only) {
    int16_t v = kclient_pick_version(c, KAFKA_API_CREATE_PARTITIONS, 0, 3);
    if (v < 0) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct kafka_create_partitions_request req;
    kafka_create_partitions_request_init(&req, v);
    req.timeout_ms = o->timeout_ms;
    req.validate_only = validate_only;
    req.topics = KCLIENT_ARRAY(c, 1, req.topics);
    if (!req.topics) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    memset(req.topics, 0, sizeof req.topics[0]);
    req.topics[0].name = kafka_str_from_cstr(name);
    req.topics[0].count = (int32_t)total;
    req.topics[0].assignments_count = -1; /* null: the broker places them */
    req.topics_count = 1;
    struct kafka_create_partitions_response resp;
    if (kclient_call(c, KAFKA_API_CREATE_PARTITIONS, v, &req, &resp) != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct cli_table t;
    cli_table_init(&t, result_columns, 3);
    bool failed = false;
    for (int32_t i = 0; i < resp.results_count; i++)
        failed |= add_result(&t, resp.results[i].name, resp.results[i].error_code,
                             resp.results[i].error_message, 0);
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

/* ---- the command ------------------------------------------------------------------ */

struct topics_args {
    struct create_args create;
    bool if_exists;
    const char *sets[TOPICS_MAX_CONFIGS];
    int set_count;
    const char *deletes[TOPICS_MAX_CONFIGS];
    int delete_count;
};

/* Command options; returns 0, or an exit code for a bad one. */
static int parse_topics_option(struct cli_common *o, struct topics_args *a, int opt,
                               const char *arg) {
    struct create_args *ca = &a->create;
    switch (opt) {
    case OPT_PARTITIONS:
        if (cli_parse_int64(arg, 1, INT32_MAX, &ca->partitions) != 0)
            return usage_error(o, "--partitions wants a positive count");
        return 0;
    case OPT_RF:
        if (cli_parse_int64(arg, 1, INT16_MAX, &ca->replication_factor) != 0)
            return usage_error(o, "--replication-factor wants a positive count");
        return 0;
    case OPT_CONFIG:
    case OPT_SET:
        if (!strchr(arg, '=') || arg[0] == '=') return usage_error(o, "a config is KEY=VALUE");
        if (opt == OPT_CONFIG && ca->config_count < TOPICS_MAX_CONFIGS)
            ca->configs[ca->config_count++] = arg;
        else if (opt == OPT_SET && a->set_count < TOPICS_MAX_CONFIGS)
            a->sets[a->set_count++] = arg;
        else
            return usage_error(o, "too many configs");
        return 0;
    case OPT_DELETE:
        if (a->delete_count >= TOPICS_MAX_CONFIGS) return usage_error(o, "too many configs");
        a->deletes[a->delete_count++] = arg;
        return 0;
    case OPT_IF_NOT_EXISTS: ca->if_not_exists = true; return 0;
    case OPT_IF_EXISTS: a->if_exists = true; return 0;
    case OPT_VALIDATE_ONLY: ca->validate_only = true; return 0;
    default: return usage_error(o, "unknown option");
    }
}

static int run_action(struct cli_common *o, struct kclient *c, const char *action,
                      struct topics_args *a, int argc, char **argv) {
    if (strcmp(action, "list") == 0) return topics_list(o, c, argc, argv);
    if (strcmp(action, "describe") == 0) return topics_describe(o, c, argc, argv);
    if (strcmp(action, "create") == 0) return topics_create_send(o, c, argv, argc, &a->create);
    if (strcmp(action, "delete") == 0) return topics_delete(o, c, argv, argc, a->if_exists);
    if (strcmp(action, "alter-config") == 0)
        return cli_configs_alter(o, c, CLI_RESOURCE_TOPIC, argv[0], a->sets, a->set_count,
                                 a->deletes, a->delete_count, a->create.validate_only);
    assert(strcmp(action, "add-partitions") == 0);
    return topics_add_partitions(o, c, argv[0], a->create.partitions, a->create.validate_only);
}

/* Positional-argument rules per action, before anything is sent. */
static int check_action(struct cli_common *o, const char *action, const struct topics_args *a,
                        int argc) {
    bool needs_names = strcmp(action, "create") == 0 || strcmp(action, "delete") == 0;
    bool needs_one = strcmp(action, "alter-config") == 0 ||
                     strcmp(action, "add-partitions") == 0;
    bool known = needs_names || needs_one || strcmp(action, "list") == 0 ||
                 strcmp(action, "describe") == 0;
    if (!known) return usage_error(o, "unknown action");
    if (needs_names && argc < 1) return usage_error(o, "name at least one topic");
    if (needs_one && argc != 1) return usage_error(o, "name exactly one topic");
    if (strcmp(action, "add-partitions") == 0 && a->create.partitions < 1)
        return usage_error(o, "add-partitions needs --partitions TOTAL");
    if (strcmp(action, "alter-config") == 0 && a->set_count + a->delete_count == 0)
        return usage_error(o, "alter-config needs --set K=V or --delete K");
    return 0;
}

int cmd_topics(int argc, char **argv) {
    struct cli_common o;
    cli_common_init(&o, "topics");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(topics_usage, argc < 2 ? stderr : stdout);
        fputs(CLI_COMMON_USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const char *action = argv[1];
    struct topics_args a;
    memset(&a, 0, sizeof a);
    a.create.partitions = -1;
    a.create.replication_factor = -1;
    cli_getopt_reset();
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, CLI_COMMON_SHORT_OPTIONS, topics_options,
                              NULL)) != -1) {
        if (opt == '?') return usage_error(&o, "bad option");
        int handled = cli_common_option(&o, opt, optarg);
        if (handled < 0) return usage_error(&o, "bad --timeout-ms");
        if (handled == 0) {
            int rc = parse_topics_option(&o, &a, opt, optarg);
            if (rc != 0) return rc;
        }
    }
    if (o.help) {
        fputs(topics_usage, stdout);
        fputs(CLI_COMMON_USAGE, stdout);
        return CLI_EXIT_OK;
    }
    int pos_count = argc - 1 - optind;
    char **pos = argv + 1 + optind;
    int rc = check_action(&o, action, &a, pos_count);
    if (rc != 0) return rc;
    struct kclient c;
    int connect_rc = cli_connect(&o, &c);
    if (connect_rc != 0) return connect_rc;
    rc = run_action(&o, &c, action, &a, pos_count, pos);
    kclient_close(&c);
    return rc;
}
