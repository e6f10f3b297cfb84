/* cli_configs.c - `sluice configs describe|alter` (--topic NAME | --broker ID).
 *
 * describe is DescribeConfigs (v0-4): by default only values that differ from the default
 * (as kafka-configs.sh --describe), every key with --all, or the keys named. alter is
 * IncrementalAlterConfigs (v0-1): --set K=V and --delete K, so keys not named keep their
 * values (unlike the legacy full-replace AlterConfigs). */
#include "control/cli_configs.h"

#include <stdio.h>
#include <string.h>

#include "control/cli.h"
#include "control/cli_table.h"

#define CONFIGS_MAX_ITEMS 256
#define CONFIG_SOURCE_DEFAULT 5
#define CONFIG_OP_SET 0
#define CONFIG_OP_DELETE 1

static const char configs_usage[] =
    "usage: sluice configs <action> (--topic NAME | --broker ID) [options]\n"
    "  describe [KEY...] [--all]                 overrides only, unless --all or keys given\n"
    "  alter [--set K=V]... [--delete K]... [--validate-only]\n";

static const char *source_name(int8_t source) {
    static const char *const names[] = {
        "UNKNOWN", "DYNAMIC_TOPIC_CONFIG", "DYNAMIC_BROKER_CONFIG",
        "DYNAMIC_DEFAULT_BROKER_CONFIG", "STATIC_BROKER_CONFIG", "DEFAULT_CONFIG",
        "DYNAMIC_BROKER_LOGGER_CONFIG", "CLIENT_METRICS_CONFIG", "GROUP_CONFIG"};
    if (source < 0 || (size_t)source >= sizeof names / sizeof names[0]) return "UNKNOWN";
    return names[source];
}

int cli_configs_alter(const struct cli_common *o, struct kclient *c, int8_t resource_type,
                      const char *resource_name, const char *const *sets, int set_count,
                      const char *const *deletes, int delete_count, bool validate_only) {
    int16_t v = kclient_pick_version(c, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 0, 1);
    if (v < 0) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct kafka_incremental_alter_configs_request req;
    kafka_incremental_alter_configs_request_init(&req, v);
    req.validate_only = validate_only;
    req.resources = KCLIENT_ARRAY(c, 1, req.resources);
    int total = set_count + delete_count;
    struct kafka_incremental_alter_configs_request_alterable_config *items =
        KCLIENT_ARRAY(c, total > 0 ? total : 1, items);
    if (!req.resources || !items) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    for (int i = 0; i < set_count; i++) {
        const char *eq = strchr(sets[i], '=');
        items[i].name = (struct kafka_str){sets[i], (int32_t)(eq - sets[i])};
        items[i].config_operation = CONFIG_OP_SET;
        items[i].value = kafka_str_from_cstr(eq + 1);
    }
    for (int i = 0; i < delete_count; i++) {
        items[set_count + i].name = kafka_str_from_cstr(deletes[i]);
        items[set_count + i].config_operation = CONFIG_OP_DELETE;
        items[set_count + i].value = kafka_str_from_cstr(NULL);
    }
    req.resources[0].resource_type = resource_type;
    req.resources[0].resource_name = kafka_str_from_cstr(resource_name);
    req.resources[0].configs = items;
    req.resources[0].configs_count = total;
    req.resources_count = 1;
    struct kafka_incremental_alter_configs_response resp;
    if (kclient_call(c, KAFKA_API_INCREMENTAL_ALTER_CONFIGS, v, &req, &resp) != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    static const struct cli_column columns[] = {
        {"RESOURCE", "resource", CLI_TEXT},
        {"RESULT", "result", CLI_TEXT},
        {"MESSAGE", "message", CLI_TEXT},
    };
    struct cli_table t;
    cli_table_init(&t, columns, 3);
    bool failed = resp.responses_count != 1;
    for (int32_t i = 0; i < resp.responses_count; i++) {
        char name[512], msg[1024];
        int16_t code = resp.responses[i].error_code;
        const char *cells[3] = {cli_str(resp.responses[i].resource_name, name, sizeof name),
                                code == 0 ? "OK" : kafka_error_name(code),
                                cli_str(resp.responses[i].error_message, msg, sizeof msg)};
        cli_table_add_row(&t, cells);
        failed |= code != 0;
    }
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static bool entry_is_default(const struct kafka_describe_configs_response_describe_configs_resource_result *e,
                             int16_t version) {
    return version == 0 ? e->is_default : e->config_source == CONFIG_SOURCE_DEFAULT;
}

static int configs_describe(const struct cli_common *o, struct kclient *c, int8_t type,
                            const char *name, char **keys, int key_count, bool all) {
    int16_t v = kclient_pick_version(c, KAFKA_API_DESCRIBE_CONFIGS, 0, 4);
    if (v < 0) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct kafka_describe_configs_request req;
    kafka_describe_configs_request_init(&req, v);
    req.resources = KCLIENT_ARRAY(c, 1, req.resources);
    if (!req.resources) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    memset(req.resources, 0, sizeof req.resources[0]);
    req.resources[0].resource_type = type;
    req.resources[0].resource_name = kafka_str_from_cstr(name);
    req.resources[0].configuration_keys_count = -1;
    if (key_count > 0) {
        req.resources[0].configuration_keys = KCLIENT_ARRAY(c, key_count, req.resources[0].configuration_keys);
        if (!req.resources[0].configuration_keys) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
        for (int i = 0; i < key_count; i++)
            req.resources[0].configuration_keys[i] = kafka_str_from_cstr(keys[i]);
        req.resources[0].configuration_keys_count = key_count;
    }
    req.resources_count = 1;
    struct kafka_describe_configs_response resp;
    if (kclient_call(c, KAFKA_API_DESCRIBE_CONFIGS, v, &req, &resp) != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    if (resp.results_count != 1)
        return cli_fail(o, CLI_EXIT_FAILED, "broker answered %d resources for 1",
                        resp.results_count);
    const struct kafka_describe_configs_response_describe_configs_result *r = &resp.results[0];
    if (r->error_code != 0) {
        char msg[1024];
        return cli_fail(o, CLI_EXIT_FAILED, "%s '%s': %s %s",
                        type == CLI_RESOURCE_TOPIC ? "topic" : "broker", name,
                        kafka_error_name(r->error_code), cli_str(r->error_message, msg, sizeof msg));
    }
    static const struct cli_column columns[] = {
        {"NAME", "name", CLI_TEXT},           {"VALUE", "value", CLI_TEXT},
        {"SOURCE", "source", CLI_TEXT},       {"READ-ONLY", "read_only", CLI_TEXT},
        {"SENSITIVE", "sensitive", CLI_TEXT},
    };
    struct cli_table t;
    cli_table_init(&t, columns, 5);
    for (int32_t i = 0; i < r->configs_count; i++) {
        const struct kafka_describe_configs_response_describe_configs_resource_result *e = &r->configs[i];
        if (!all && key_count == 0 && entry_is_default(e, v)) continue;
        char key[512], value[CLI_CELL_MAX_BYTES];
        const char *source = v == 0 ? (e->is_default ? "DEFAULT_CONFIG" : "UNKNOWN")
                                    : source_name(e->config_source);
        const char *cells[5] = {cli_str(e->name, key, sizeof key),
                                e->is_sensitive ? "(sensitive)" : cli_str(e->value, value, sizeof value),
                                source, e->read_only ? "true" : "false",
                                e->is_sensitive ? "true" : "false"};
        cli_table_add_row(&t, cells);
    }
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return CLI_EXIT_OK;
}

enum { OPT_TOPIC = CLI_OPT_FIRST_COMMAND_OPTION, OPT_BROKER, OPT_ALL, OPT_SET, OPT_DELETE,
       OPT_VALIDATE_ONLY };

static const struct option configs_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    {"topic", required_argument, 0, OPT_TOPIC},
    {"broker", required_argument, 0, OPT_BROKER},
    {"all", no_argument, 0, OPT_ALL},
    {"set", required_argument, 0, OPT_SET},
    {"delete", required_argument, 0, OPT_DELETE},
    {"validate-only", no_argument, 0, OPT_VALIDATE_ONLY},
    {0, 0, 0, 0},
};

struct configs_args {
    int8_t resource_type; /* 0 until --topic or --broker */
    const char *resource_name;
    bool all;
    bool validate_only;
    const char *sets[CONFIGS_MAX_ITEMS];
    int set_count;
    const char *deletes[CONFIGS_MAX_ITEMS];
    int delete_count;
};

static int usage_error(const struct cli_common *o, const char *why) {
    cli_fail(o, CLI_EXIT_USAGE, "%s", why);
    fputs(configs_usage, stderr);
    return CLI_EXIT_USAGE;
}

static int parse_configs_option(const struct cli_common *o, struct configs_args *a, int opt,
                                const char *arg) {
    int64_t id;
    switch (opt) {
    case OPT_TOPIC:
    case OPT_BROKER:
        if (a->resource_type != 0) return usage_error(o, "give one of --topic or --broker");
        if (opt == OPT_BROKER && cli_parse_int64(arg, 0, INT32_MAX, &id) != 0)
            return usage_error(o, "--broker wants a broker id");
        a->resource_type = opt == OPT_TOPIC ? CLI_RESOURCE_TOPIC : CLI_RESOURCE_BROKER;
        a->resource_name = arg;
        return 0;
    case OPT_ALL: a->all = true; return 0;
    case OPT_VALIDATE_ONLY: a->validate_only = true; return 0;
    case OPT_SET:
        if (!strchr(arg, '=') || arg[0] == '=') return usage_error(o, "--set wants KEY=VALUE");
        if (a->set_count >= CONFIGS_MAX_ITEMS) return usage_error(o, "too many --set");
        a->sets[a->set_count++] = arg;
        return 0;
    case OPT_DELETE:
        if (a->delete_count >= CONFIGS_MAX_ITEMS) return usage_error(o, "too many --delete");
        a->deletes[a->delete_count++] = arg;
        return 0;
    default: return usage_error(o, "unknown option");
    }
}

int cmd_configs(int argc, char **argv) {
    struct cli_common o;
    cli_common_init(&o, "configs");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fputs(configs_usage, out);
        fputs(CLI_COMMON_USAGE, out);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const char *action = argv[1];
    bool describe = strcmp(action, "describe") == 0;
    if (!describe && strcmp(action, "alter") != 0) return usage_error(&o, "unknown action");
    struct configs_args a;
    memset(&a, 0, sizeof a);
    cli_getopt_reset();
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, CLI_COMMON_SHORT_OPTIONS, configs_options,
                              NULL)) != -1) {
        if (opt == '?') return usage_error(&o, "bad option");
        int handled = cli_common_option(&o, opt, optarg);
        if (handled < 0) return usage_error(&o, "bad --timeout-ms");
        int rc = handled ? 0 : parse_configs_option(&o, &a, opt, optarg);
        if (rc != 0) return rc;
    }
    if (o.help) {
        fputs(configs_usage, stdout);
        fputs(CLI_COMMON_USAGE, stdout);
        return CLI_EXIT_OK;
    }
    int pos_count = argc - 1 - optind;
    char **pos = argv + 1 + optind;
    if (a.resource_type == 0) return usage_error(&o, "give --topic NAME or --broker ID");
    if (!describe && pos_count > 0) return usage_error(&o, "alter takes no positional arguments");
    if (!describe && a.set_count + a.delete_count == 0)
        return usage_error(&o, "alter needs --set K=V or --delete K");
    struct kclient c;
    int connect_rc = cli_connect(&o, &c);
    if (connect_rc != 0) return connect_rc;
    int rc = describe ? configs_describe(&o, &c, a.resource_type, a.resource_name, pos,
                                         pos_count, a.all)
                      : cli_configs_alter(&o, &c, a.resource_type, a.resource_name, a.sets,
                                          a.set_count, a.deletes, a.delete_count,
                                          a.validate_only);
    kclient_close(&c);
    return rc;
}
