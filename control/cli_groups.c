/* cli_groups.c - `sluice groups list|describe|delete|reset-offsets`.
 *
 * Group APIs go to the group's coordinator (FindCoordinator on the bootstrap broker; a
 * second connection when the coordinator is another broker). describe joins three answers
 * as kafka-consumer-groups.sh --describe does: DescribeGroups (members and, for the
 * "consumer" protocol, their assignments), OffsetFetch (committed offsets) and ListOffsets
 * (log-end offsets, from the bootstrap broker), one row per partition that has a committed
 * offset or an owner: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID
 * HOST CLIENT-ID.
 *
 * reset-offsets computes new offsets for the partitions of --topic (or every topic the
 * group has committed, --all-topics) from --to-earliest, --to-latest, --to-offset N,
 * --to-datetime T or --shift-by N, clamped to [log start, log end] as Kafka's tool does.
 * It is a dry run unless --execute is given; --execute commits them with OffsetCommit
 * outside any generation (generation -1, no member id), which a coordinator accepts only
 * while the group has no active members: the command refuses a group that is not Empty or
 * Dead, before sending anything. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/cli.h"
#include "control/cli_common.h"
#include "control/cli_offsets.h"
#include "control/cli_table.h"

#define GROUPS_MAX_TOPICS 256
#define GROUPS_MAX_NAMES 256

static const char groups_usage[] =
    "usage: sluice groups <action> [options]\n"
    "  list                                      every group with its state\n"
    "  describe GROUP...                         offsets, lag and owner per partition\n"
    "  delete GROUP...\n"
    "  reset-offsets GROUP (--topic NAME... | --all-topics)\n"
    "        (--to-earliest | --to-latest | --to-offset N | --to-datetime T | --shift-by N)\n"
    "        [--dry-run (default) | --execute]\n";

static int usage_error(const struct cli_common *o, const char *why) {
    cli_fail(o, CLI_EXIT_USAGE, "%s", why);
    fputs(groups_usage, stderr);
    return CLI_EXIT_USAGE;
}

/* ---- coordinator ------------------------------------------------------------------- */

/* The client to send group's requests to: c itself, or `other` connected to the
 * coordinator FindCoordinator names. NULL (message printed) on failure. */
static struct kclient *coordinator(const struct cli_common *o, struct kclient *c,
                                   const char *group, struct kclient *other) {
    int16_t v = kclient_pick_version(c, KAFKA_API_FIND_COORDINATOR, 0, 4);
    if (v < 0) return cli_fail(o, 0, "%s", c->err), NULL;
    struct kafka_find_coordinator_request req;
    kafka_find_coordinator_request_init(&req, v);
    if (v >= 4) {
        req.coordinator_keys = KCLIENT_ARRAY(c, 1, req.coordinator_keys);
        if (!req.coordinator_keys) return cli_fail(o, 0, "%s", c->err), NULL;
        req.coordinator_keys[0] = kafka_str_from_cstr(group);
        req.coordinator_keys_count = 1;
    } else {
        req.key = kafka_str_from_cstr(group);
    }
    struct kafka_find_coordinator_response resp;
    if (kclient_call(c, KAFKA_API_FIND_COORDINATOR, v, &req, &resp) != 0)
        return cli_fail(o, 0, "%s", c->err), NULL;
    int16_t code = resp.error_code;
    struct kafka_str host = resp.host;
    int32_t port = resp.port;
    if (v >= 4) {
        if (resp.coordinators_count != 1)
            return cli_fail(o, 0, "FindCoordinator answered %d keys", resp.coordinators_count), NULL;
        code = resp.coordinators[0].error_code;
        host = resp.coordinators[0].host;
        port = resp.coordinators[0].port;
    }
    if (code != 0)
        return cli_fail(o, 0, "group '%s': no coordinator: %s", group, kafka_error_name(code)), NULL;
    char host_buf[256], addr[300];
    cli_str(host, host_buf, sizeof host_buf);
    if (strcmp(host_buf, c->host) == 0 && port == c->port) return c;
    snprintf(addr, sizeof addr, strchr(host_buf, ':') ? "[%s]:%d" : "%s:%d", host_buf, port);
    if (kclient_connect(other, addr, c->timeout_ms) != 0) {
        cli_fail(o, 0, "group coordinator: %s", other->err);
        kclient_close(other);
        return NULL;
    }
    return other;
}

/* ---- answers ---------------------------------------------------------------------- */

static int describe_group(const struct cli_common *o, struct kclient *c, const char *group,
                          struct kafka_describe_groups_response_described_group **out) {
    int16_t v = kclient_pick_version(c, KAFKA_API_DESCRIBE_GROUPS, 0, 5);
    if (v < 0) return cli_fail(o, -1, "%s", c->err);
    struct kafka_describe_groups_request req;
    kafka_describe_groups_request_init(&req, v);
    req.groups = KCLIENT_ARRAY(c, 1, req.groups);
    if (!req.groups) return cli_fail(o, -1, "%s", c->err);
    req.groups[0] = kafka_str_from_cstr(group);
    req.groups_count = 1;
    struct kafka_describe_groups_response resp;
    if (kclient_call(c, KAFKA_API_DESCRIBE_GROUPS, v, &req, &resp) != 0)
        return cli_fail(o, -1, "%s", c->err);
    if (resp.groups_count != 1)
        return cli_fail(o, -1, "DescribeGroups answered %d groups", resp.groups_count);
    if (resp.groups[0].error_code != 0)
        return cli_fail(o, -1, "group '%s': %s", group, kafka_error_name(resp.groups[0].error_code));
    *out = &resp.groups[0];
    return 0;
}

/* Committed offsets of every topic (v2+: a null topic list means all). */
static int fetch_offsets(const struct cli_common *o, struct kclient *c, const char *group,
                         struct kafka_offset_fetch_response *resp) {
    int16_t v = kclient_pick_version(c, KAFKA_API_OFFSET_FETCH, 2, 7);
    if (v < 0) return cli_fail(o, -1, "%s", c->err);
    struct kafka_offset_fetch_request req;
    kafka_offset_fetch_request_init(&req, v);
    req.group_id = kafka_str_from_cstr(group);
    req.topics_count = -1;
    if (kclient_call(c, KAFKA_API_OFFSET_FETCH, v, &req, resp) != 0)
        return cli_fail(o, -1, "%s", c->err);
    if (resp->error_code != 0)
        return cli_fail(o, -1, "group '%s': OffsetFetch: %s", group,
                        kafka_error_name(resp->error_code));
    return 0;
}

/* ---- one row per partition ---------------------------------------------------------- */

struct part_row {
    struct kafka_str topic;
    int32_t partition;
    int64_t committed;   /* -1: none */
    int32_t member;      /* index in the group's members, -1: no owner */
    int64_t new_offset;  /* reset-offsets: the target, -1: none */
};

struct row_set {
    struct part_row *rows;
    int32_t count, cap;
};

static struct part_row *row_find_or_add(struct row_set *s, struct kafka_str topic,
                                        int32_t partition) {
    for (int32_t i = 0; i < s->count; i++)
        if (s->rows[i].partition == partition && kafka_str_equals(s->rows[i].topic, topic))
            return &s->rows[i];
    if (s->count == s->cap) return NULL;
    s->rows[s->count] = (struct part_row){topic, partition, -1, -1, -1};
    return &s->rows[s->count++];
}

/* ConsumerProtocol assignment: int16 version, [string topic, [int32 partition]], bytes.
 * Calls back per partition; a malformed assignment stops quietly (reader error). */
static int32_t assignment_partitions(struct kafka_bytes bytes, struct row_set *s, int32_t member) {
    if (bytes.len <= 0) return 0;
    struct kafka_reader r;
    kafka_reader_init(&r, bytes.ptr, (size_t)bytes.len);
    kafka_read_int16(&r);
    int32_t topics = kafka_read_array_len(&r, false, 6);
    int32_t n = 0;
    for (int32_t t = 0; t < topics && r.err == 0; t++) {
        struct kafka_str topic = kafka_read_string(&r, false);
        int32_t parts = kafka_read_array_len(&r, false, 4);
        for (int32_t p = 0; p < parts && r.err == 0; p++) {
            int32_t partition = kafka_read_int32(&r);
            if (!s) {
                n++;
                continue;
            }
            struct part_row *row = row_find_or_add(s, topic, partition);
            if (row) row->member = member;
        }
    }
    return n;
}

static int compare_rows(const void *a, const void *b) {
    const struct part_row *x = a, *y = b;
    int32_t n = x->topic.len < y->topic.len ? x->topic.len : y->topic.len;
    int cmp = n > 0 ? memcmp(x->topic.ptr, y->topic.ptr, (size_t)n) : 0;
    if (cmp == 0) cmp = (x->topic.len > y->topic.len) - (x->topic.len < y->topic.len);
    return cmp ? cmp : (x->partition > y->partition) - (x->partition < y->partition);
}

static bool is_consumer_group(const struct kafka_describe_groups_response_described_group *g) {
    return kafka_str_equals_cstr(g->protocol_type, "consumer");
}

/* Every partition with a committed offset or an owner, sorted. */
static int collect_rows(struct kclient *c,
                        const struct kafka_describe_groups_response_described_group *g,
                        const struct kafka_offset_fetch_response *offsets, struct row_set *s) {
    int32_t cap = 0;
    for (int32_t t = 0; t < offsets->topics_count; t++) cap += offsets->topics[t].partitions_count;
    for (int32_t m = 0; m < g->members_count && is_consumer_group(g); m++)
        cap += assignment_partitions(g->members[m].member_assignment, NULL, m);
    s->rows = KCLIENT_ARRAY(c, cap > 0 ? cap : 1, s->rows);
    if (!s->rows) return -1;
    s->cap = cap;
    s->count = 0;
    for (int32_t t = 0; t < offsets->topics_count; t++) {
        const struct kafka_offset_fetch_response_offset_fetch_response_topic *ot = &offsets->topics[t];
        for (int32_t p = 0; p < ot->partitions_count; p++) {
            struct part_row *row = row_find_or_add(s, ot->name, ot->partitions[p].partition_index);
            if (row && ot->partitions[p].error_code == 0)
                row->committed = ot->partitions[p].committed_offset;
        }
    }
    for (int32_t m = 0; m < g->members_count && is_consumer_group(g); m++)
        assignment_partitions(g->members[m].member_assignment, s, m);
    if (s->count > 1) qsort(s->rows, (size_t)s->count, sizeof s->rows[0], compare_rows);
    return 0;
}

/* Metadata for the distinct topics of the rows (bounded by GROUPS_MAX_TOPICS). */
static int rows_metadata(const struct cli_common *o, struct kclient *c, const struct row_set *s,
                         struct kafka_metadata_response *md) {
    static char names[GROUPS_MAX_TOPICS][256];
    static char *list[GROUPS_MAX_TOPICS];
    int n = 0;
    for (int32_t i = 0; i < s->count; i++) {
        char name[256];
        cli_str(s->rows[i].topic, name, sizeof name);
        int j = 0;
        while (j < n && strcmp(names[j], name) != 0) j++;
        if (j < n) continue;
        if (n == GROUPS_MAX_TOPICS) return cli_fail(o, -1, "more than %d topics", GROUPS_MAX_TOPICS);
        snprintf(names[n], sizeof names[n], "%s", name);
        list[n] = names[n];
        n++;
    }
    if (n == 0) {
        memset(md, 0, sizeof *md);
        return 0;
    }
    return cli_metadata(o, c, list, n, md);
}

static void fmt_i64(char *buf, size_t cap, int64_t v) {
    if (v < 0) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%lld", (long long)v);
}

/* ---- describe -------------------------------------------------------------------- */

static const struct cli_column describe_columns[] = {
    {"GROUP", "group", CLI_TEXT},
    {"TOPIC", "topic", CLI_TEXT},
    {"PARTITION", "partition", CLI_NUMBER},
    {"CURRENT-OFFSET", "current_offset", CLI_NUMBER},
    {"LOG-END-OFFSET", "log_end_offset", CLI_NUMBER},
    {"LAG", "lag", CLI_NUMBER},
    {"CONSUMER-ID", "consumer_id", CLI_TEXT},
    {"HOST", "host", CLI_TEXT},
    {"CLIENT-ID", "client_id", CLI_TEXT},
};

static void add_describe_row(struct cli_table *t, const char *group, const struct part_row *row,
                             const struct kafka_describe_groups_response_described_group *g,
                             const struct kafka_list_offsets_response *ends) {
    const struct kafka_list_offsets_response_list_offsets_partition_response *end =
        ends ? cli_find_offset(ends, row->topic, row->partition) : NULL;
    int64_t log_end = end && end->error_code == 0 ? end->offset : -1;
    char topic[256], part[16], cur[24], lend[24], lag[24], member[256], host[256], client[256];
    cli_str(row->topic, topic, sizeof topic);
    snprintf(part, sizeof part, "%d", row->partition);
    fmt_i64(cur, sizeof cur, row->committed);
    fmt_i64(lend, sizeof lend, log_end);
    fmt_i64(lag, sizeof lag, row->committed >= 0 && log_end >= 0
                                 ? (log_end > row->committed ? log_end - row->committed : 0)
                                 : -1);
    const struct kafka_describe_groups_response_described_group_member *m =
        row->member >= 0 ? &g->members[row->member] : NULL;
    const char *cells[9] = {group, topic, part, cur, lend, lag,
                            m ? cli_str(m->member_id, member, sizeof member) : "-",
                            m ? cli_str(m->client_host, host, sizeof host) : "-",
                            m ? cli_str(m->client_id, client, sizeof client) : "-"};
    cli_table_add_row(t, cells);
}

static int describe_one(const struct cli_common *o, struct kclient *c, const char *group,
                        struct cli_table *t) {
    struct kclient other;
    struct kclient *coord = coordinator(o, c, group, &other);
    if (!coord) return CLI_EXIT_FAILED;
    int rc = CLI_EXIT_FAILED;
    struct kafka_describe_groups_response_described_group *g;
    struct kafka_offset_fetch_response offsets;
    struct row_set rows = {0};
    struct kafka_metadata_response md;
    struct kafka_list_offsets_response ends;
    if (describe_group(o, coord, group, &g) != 0 || fetch_offsets(o, coord, group, &offsets) != 0)
        goto out;
    if (collect_rows(coord, g, &offsets, &rows) != 0) {
        cli_fail(o, 0, "%s", coord->err);
        goto out;
    }
    if (rows_metadata(o, c, &rows, &md) != 0) goto out;
    bool have_ends = md.topics_count > 0;
    if (have_ends && cli_list_offsets(o, c, &md, CLI_TIME_LATEST, &ends) != 0) goto out;
    if (rows.count == 0 && g->members_count == 0) {
        if (kafka_str_equals_cstr(g->group_state, "Dead")) {
            cli_fail(o, 0, "group '%s' does not exist", group);
            goto out;
        }
        fprintf(stderr, "group '%s' has no members and no committed offsets\n", group);
    }
    for (int32_t i = 0; i < rows.count; i++)
        add_describe_row(t, group, &rows.rows[i], g, have_ends ? &ends : NULL);
    rc = CLI_EXIT_OK;
out:
    if (coord == &other) kclient_close(&other);
    return rc;
}

static int groups_describe(const struct cli_common *o, struct kclient *c, char **groups,
                           int count) {
    struct cli_table t;
    cli_table_init(&t, describe_columns, 9);
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < count; i++)
        if (describe_one(o, c, groups[i], &t) != CLI_EXIT_OK) rc = CLI_EXIT_FAILED;
    if (t.row_count > 0 || rc == CLI_EXIT_OK) cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return rc;
}

/* ---- list / delete ----------------------------------------------------------------- */

static int groups_list(const struct cli_common *o, struct kclient *c) {
    int16_t v = kclient_pick_version(c, KAFKA_API_LIST_GROUPS, 0, 4);
    if (v < 0) return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    struct kafka_list_groups_request req;
    kafka_list_groups_request_init(&req, v);
    struct kafka_list_groups_response resp;
    if (kclient_call(c, KAFKA_API_LIST_GROUPS, v, &req, &resp) != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
    if (resp.error_code != 0)
        return cli_fail(o, CLI_EXIT_FAILED, "ListGroups: %s", kafka_error_name(resp.error_code));
    static const struct cli_column columns[] = {
        {"GROUP", "group", CLI_TEXT},
        {"STATE", "state", CLI_TEXT},
        {"PROTOCOL-TYPE", "protocol_type", CLI_TEXT},
    };
    struct cli_table t;
    cli_table_init(&t, columns, 3);
    for (int32_t i = 0; i < resp.groups_count; i++) {
        char id[256], state[64], type[64];
        const char *cells[3] = {cli_str(resp.groups[i].group_id, id, sizeof id),
                                v >= 4 ? cli_str(resp.groups[i].group_state, state, sizeof state) : "-",
                                cli_str(resp.groups[i].protocol_type, type, sizeof type)};
        cli_table_add_row(&t, cells);
    }
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return CLI_EXIT_OK;
}

static int groups_delete(const struct cli_common *o, struct kclient *c, char **groups, int count) {
    static const struct cli_column columns[] = {
        {"GROUP", "group", CLI_TEXT},
        {"RESULT", "result", CLI_TEXT},
    };
    struct cli_table t;
    cli_table_init(&t, columns, 2);
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < count; i++) { /* one request per group: each to its coordinator */
        struct kclient other;
        struct kclient *coord = coordinator(o, c, groups[i], &other);
        int16_t v = coord ? kclient_pick_version(coord, KAFKA_API_DELETE_GROUPS, 0, 2) : -1;
        struct kafka_delete_groups_request req;
        struct kafka_delete_groups_response resp;
        struct kafka_str name = kafka_str_from_cstr(groups[i]);
        bool sent = false;
        if (v >= 0) {
            kafka_delete_groups_request_init(&req, v);
            req.groups_names = &name;
            req.groups_names_count = 1;
            sent = kclient_call(coord, KAFKA_API_DELETE_GROUPS, v, &req, &resp) == 0;
        }
        if (coord && !sent) cli_fail(o, 0, "%s", coord->err);
        int16_t code = sent && resp.results_count == 1 ? resp.results[0].error_code : -1;
        const char *cells[2] = {groups[i], code == 0 ? "OK" : kafka_error_name(code)};
        cli_table_add_row(&t, cells);
        if (code != 0) rc = CLI_EXIT_FAILED;
        if (coord == &other) kclient_close(&other);
    }
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    return rc;
}

/* ---- reset-offsets ---------------------------------------------------------------- */

enum reset_kind { RESET_NONE, RESET_EARLIEST, RESET_LATEST, RESET_OFFSET, RESET_DATETIME,
                  RESET_SHIFT };

struct reset_args {
    enum reset_kind kind;
    int64_t value; /* offset, datetime ms or shift */
    bool all_topics;
    bool execute;
    char *topics[GROUPS_MAX_NAMES];
    int topic_count;
};

/* New offset for one partition, clamped to [start, end]; -1 when there is no base. */
static int64_t reset_target(const struct reset_args *a, int64_t committed, int64_t start,
                            int64_t end, int64_t at_time) {
    int64_t target;
    switch (a->kind) {
    case RESET_EARLIEST: target = start; break;
    case RESET_LATEST: target = end; break;
    case RESET_OFFSET: target = a->value; break;
    case RESET_DATETIME: target = at_time >= 0 ? at_time : end; break;
    case RESET_SHIFT:
        if (committed < 0) return -1;
        target = committed + a->value;
        break;
    default: return -1;
    }
    if (target < start) target = start;
    if (target > end) target = end;
    return target;
}

static int commit_offsets(const struct cli_common *o, struct kclient *coord, const char *group,
                          const struct kafka_metadata_response *md, const struct row_set *plan) {
    int16_t v = kclient_pick_version(coord, KAFKA_API_OFFSET_COMMIT, 2, 8);
    if (v < 0) return cli_fail(o, -1, "%s", coord->err);
    struct kafka_offset_commit_request req;
    kafka_offset_commit_request_init(&req, v);
    req.group_id = kafka_str_from_cstr(group);
    req.generation_id_or_member_epoch = -1;
    req.member_id = kafka_str_from_cstr("");
    req.topics = KCLIENT_ARRAY(coord, md->topics_count > 0 ? md->topics_count : 1, req.topics);
    if (!req.topics) return cli_fail(o, -1, "%s", coord->err);
    for (int32_t t = 0; t < md->topics_count; t++) {
        struct kafka_offset_commit_request_offset_commit_request_topic *rt = &req.topics[req.topics_count];
        rt->name = md->topics[t].name;
        rt->partitions = KCLIENT_ARRAY(coord, plan->count > 0 ? plan->count : 1, rt->partitions);
        if (!rt->partitions) return cli_fail(o, -1, "%s", coord->err);
        rt->partitions_count = 0;
        for (int32_t i = 0; i < plan->count; i++) {
            if (!kafka_str_equals(plan->rows[i].topic, rt->name) || plan->rows[i].new_offset < 0)
                continue;
            rt->partitions[rt->partitions_count++] =
                (struct kafka_offset_commit_request_offset_commit_request_partition){
                    .partition_index = plan->rows[i].partition,
                    .committed_offset = plan->rows[i].new_offset,
                    .committed_leader_epoch = -1, .commit_timestamp = -1,
                    .committed_metadata = kafka_str_from_cstr("")};
        }
        if (rt->partitions_count > 0) req.topics_count++;
    }
    struct kafka_offset_commit_response resp;
    if (kclient_call(coord, KAFKA_API_OFFSET_COMMIT, v, &req, &resp) != 0)
        return cli_fail(o, -1, "%s", coord->err);
    int failed = 0;
    for (int32_t t = 0; t < resp.topics_count; t++)
        for (int32_t p = 0; p < resp.topics[t].partitions_count; p++) {
            int16_t code = resp.topics[t].partitions[p].error_code;
            if (code == 0) continue;
            char name[256];
            cli_fail(o, 0, "commit %s-%d: %s", cli_str(resp.topics[t].name, name, sizeof name),
                     resp.topics[t].partitions[p].partition_index, kafka_error_name(code));
            failed = -1;
        }
    return failed;
}

/* The plan: one row per partition of the chosen topics, with its committed offset and
 * the new one (-1: none: the partition's offsets could not be listed, or --shift-by from
 * no committed offset). */
static int reset_plan(const struct cli_common *o, struct kclient *c,
                      const struct kafka_offset_fetch_response *offsets,
                      const struct reset_args *a, struct kafka_metadata_response *md,
                      struct row_set *plan) {
    char *names[GROUPS_MAX_NAMES];
    int n = 0;
    static char committed_names[GROUPS_MAX_NAMES][256];
    if (a->all_topics) {
        for (int32_t t = 0; t < offsets->topics_count && n < GROUPS_MAX_NAMES; t++) {
            cli_str(offsets->topics[t].name, committed_names[n], sizeof committed_names[n]);
            names[n] = committed_names[n];
            n++;
        }
        if (n == 0) return cli_fail(o, -1, "the group has no committed offsets (--all-topics)");
    } else {
        for (int i = 0; i < a->topic_count; i++) names[n++] = a->topics[i];
    }
    if (cli_metadata(o, c, names, n, md) != 0) return -1;
    int32_t cap = 0;
    for (int32_t t = 0; t < md->topics_count; t++) {
        char name[256];
        if (md->topics[t].error_code != 0)
            return cli_fail(o, -1, "topic '%s': %s", cli_str(md->topics[t].name, name, sizeof name),
                            kafka_error_name(md->topics[t].error_code));
        cap += md->topics[t].partitions_count;
    }
    struct kafka_list_offsets_response starts, ends, times;
    if (cli_list_offsets(o, c, md, CLI_TIME_EARLIEST, &starts) != 0 ||
        cli_list_offsets(o, c, md, CLI_TIME_LATEST, &ends) != 0 ||
        (a->kind == RESET_DATETIME && cli_list_offsets(o, c, md, a->value, &times) != 0))
        return -1;
    plan->rows = KCLIENT_ARRAY(c, cap > 0 ? cap : 1, plan->rows);
    if (!plan->rows) return cli_fail(o, -1, "%s", c->err);
    plan->cap = cap;
    plan->count = 0;
    for (int32_t t = 0; t < md->topics_count; t++) {
        const struct kafka_metadata_response_metadata_response_topic *mt = &md->topics[t];
        for (int32_t p = 0; p < mt->partitions_count; p++) {
            int32_t index = mt->partitions[p].partition_index;
            struct part_row *row = &plan->rows[plan->count++];
            *row = (struct part_row){mt->name, index, -1, -1, -1};
            for (int32_t ot = 0; ot < offsets->topics_count; ot++) {
                if (!kafka_str_equals(offsets->topics[ot].name, mt->name)) continue;
                for (int32_t op = 0; op < offsets->topics[ot].partitions_count; op++)
                    if (offsets->topics[ot].partitions[op].partition_index == index)
                        row->committed = offsets->topics[ot].partitions[op].committed_offset;
            }
            const struct kafka_list_offsets_response_list_offsets_partition_response *s =
                cli_find_offset(&starts, mt->name, index), *e = cli_find_offset(&ends, mt->name, index);
            const struct kafka_list_offsets_response_list_offsets_partition_response *at =
                a->kind == RESET_DATETIME ? cli_find_offset(&times, mt->name, index) : NULL;
            if (!s || !e || s->error_code || e->error_code) continue; /* stays -1: shown as - */
            int64_t target = reset_target(a, row->committed, s->offset, e->offset,
                                          at && at->error_code == 0 ? at->offset : -1);
            row->new_offset = target;
        }
    }
    if (plan->count > 1) qsort(plan->rows, (size_t)plan->count, sizeof plan->rows[0], compare_rows);
    return 0;
}

static const struct cli_column reset_columns[] = {
    {"GROUP", "group", CLI_TEXT},
    {"TOPIC", "topic", CLI_TEXT},
    {"PARTITION", "partition", CLI_NUMBER},
    {"CURRENT-OFFSET", "current_offset", CLI_NUMBER},
    {"NEW-OFFSET", "new_offset", CLI_NUMBER},
};

static int groups_reset(const struct cli_common *o, struct kclient *c, const char *group,
                        const struct reset_args *a) {
    struct kclient other;
    struct kclient *coord = coordinator(o, c, group, &other);
    if (!coord) return CLI_EXIT_FAILED;
    int rc = CLI_EXIT_FAILED;
    struct kafka_describe_groups_response_described_group *g;
    struct kafka_offset_fetch_response offsets;
    struct kafka_metadata_response md;
    struct row_set plan = {0};
    if (describe_group(o, coord, group, &g) != 0 || fetch_offsets(o, coord, group, &offsets) != 0)
        goto out;
    bool inactive = kafka_str_equals_cstr(g->group_state, "Empty") ||
                    kafka_str_equals_cstr(g->group_state, "Dead");
    if (a->execute && !inactive) {
        char state[64];
        cli_fail(o, 0, "group '%s' is %s with %d members: offsets can only be reset while it "
                 "has none (stop its consumers first)", group,
                 cli_str(g->group_state, state, sizeof state), g->members_count);
        goto out;
    }
    if (reset_plan(o, c, &offsets, a, &md, &plan) != 0) goto out;
    struct cli_table t;
    cli_table_init(&t, reset_columns, 5);
    for (int32_t i = 0; i < plan.count; i++) {
        char topic[256], part[16], cur[24], next[24];
        snprintf(part, sizeof part, "%d", plan.rows[i].partition);
        fmt_i64(cur, sizeof cur, plan.rows[i].committed);
        fmt_i64(next, sizeof next, plan.rows[i].new_offset);
        const char *cells[5] = {group, cli_str(plan.rows[i].topic, topic, sizeof topic), part,
                                cur, next};
        cli_table_add_row(&t, cells);
    }
    cli_table_print(&t, stdout, o->json);
    cli_table_free(&t);
    if (!a->execute) {
        fprintf(stderr, "dry run: nothing committed (add --execute to commit these offsets)\n");
        rc = CLI_EXIT_OK;
    } else {
        rc = commit_offsets(o, coord, group, &md, &plan) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    }
out:
    if (coord == &other) kclient_close(&other);
    return rc;
}

/* ---- the command ------------------------------------------------------------------ */

enum { OPT_TOPIC = CLI_OPT_FIRST_COMMAND_OPTION, OPT_ALL_TOPICS, OPT_EARLIEST, OPT_LATEST,
       OPT_TO_OFFSET, OPT_TO_DATETIME, OPT_SHIFT_BY, OPT_DRY_RUN, OPT_EXECUTE };

static const struct option groups_options[] = {
    CLI_COMMON_LONG_OPTIONS,
    {"topic", required_argument, 0, OPT_TOPIC},
    {"all-topics", no_argument, 0, OPT_ALL_TOPICS},
    {"to-earliest", no_argument, 0, OPT_EARLIEST},
    {"to-latest", no_argument, 0, OPT_LATEST},
    {"to-offset", required_argument, 0, OPT_TO_OFFSET},
    {"to-datetime", required_argument, 0, OPT_TO_DATETIME},
    {"shift-by", required_argument, 0, OPT_SHIFT_BY},
    {"dry-run", no_argument, 0, OPT_DRY_RUN},
    {"execute", no_argument, 0, OPT_EXECUTE},
    {0, 0, 0, 0},
};

static int set_kind(const struct cli_common *o, struct reset_args *a, enum reset_kind kind) {
    if (a->kind != RESET_NONE) return usage_error(o, "give one --to-* or --shift-by");
    a->kind = kind;
    return 0;
}

static int parse_groups_option(const struct cli_common *o, struct reset_args *a, int opt,
                               const char *arg) {
    switch (opt) {
    case OPT_TOPIC:
        if (a->topic_count >= GROUPS_MAX_NAMES) return usage_error(o, "too many --topic");
        a->topics[a->topic_count++] = (char *)arg;
        return 0;
    case OPT_ALL_TOPICS: a->all_topics = true; return 0;
    case OPT_EARLIEST: return set_kind(o, a, RESET_EARLIEST);
    case OPT_LATEST: return set_kind(o, a, RESET_LATEST);
    case OPT_TO_OFFSET:
        if (cli_parse_int64(arg, 0, INT64_MAX, &a->value) != 0)
            return usage_error(o, "--to-offset wants an offset >= 0");
        return set_kind(o, a, RESET_OFFSET);
    case OPT_TO_DATETIME:
        if (cli_parse_datetime_ms(arg, &a->value) != 0)
            return usage_error(o, "--to-datetime wants YYYY-MM-DDTHH:MM:SS[.mmm]Z or milliseconds");
        return set_kind(o, a, RESET_DATETIME);
    case OPT_SHIFT_BY:
        if (cli_parse_int64(arg, INT64_MIN / 2, INT64_MAX / 2, &a->value) != 0)
            return usage_error(o, "--shift-by wants a signed count");
        return set_kind(o, a, RESET_SHIFT);
    case OPT_DRY_RUN: return 0;
    case OPT_EXECUTE: a->execute = true; return 0;
    default: return usage_error(o, "unknown option");
    }
}

static int check_action(const struct cli_common *o, const char *action,
                        const struct reset_args *a, int pos_count) {
    bool reset = strcmp(action, "reset-offsets") == 0;
    if (strcmp(action, "list") == 0) return pos_count == 0 ? 0 : usage_error(o, "list takes no groups");
    if (strcmp(action, "describe") != 0 && strcmp(action, "delete") != 0 && !reset)
        return usage_error(o, "unknown action");
    if (pos_count < 1) return usage_error(o, "name at least one group");
    if (!reset) return 0;
    if (pos_count != 1) return usage_error(o, "reset-offsets takes exactly one group");
    if (a->kind == RESET_NONE) return usage_error(o, "reset-offsets needs --to-* or --shift-by");
    if (a->all_topics == (a->topic_count > 0))
        return usage_error(o, "reset-offsets needs --topic NAME... or --all-topics");
    return 0;
}

int cmd_groups(int argc, char **argv) {
    struct cli_common o;
    cli_common_init(&o, "groups");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fputs(groups_usage, out);
        fputs(CLI_COMMON_USAGE, out);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const char *action = argv[1];
    static struct reset_args a;
    memset(&a, 0, sizeof a);
    cli_getopt_reset();
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, CLI_COMMON_SHORT_OPTIONS, groups_options,
                              NULL)) != -1) {
        if (opt == '?') return usage_error(&o, "bad option");
        int handled = cli_common_option(&o, opt, optarg);
        if (handled < 0) return usage_error(&o, "bad --timeout-ms");
        int rc = handled ? 0 : parse_groups_option(&o, &a, opt, optarg);
        if (rc != 0) return rc;
    }
    if (o.help) {
        fputs(groups_usage, stdout);
        fputs(CLI_COMMON_USAGE, stdout);
        return CLI_EXIT_OK;
    }
    int pos_count = argc - 1 - optind;
    char **pos = argv + 1 + optind;
    int rc = check_action(&o, action, &a, pos_count);
    if (rc != 0) return rc;
    struct kclient c;
    rc = cli_connect(&o, &c);
    if (rc != 0) return rc;
    if (strcmp(action, "list") == 0) rc = groups_list(&o, &c);
    else if (strcmp(action, "describe") == 0) rc = groups_describe(&o, &c, pos, pos_count);
    else if (strcmp(action, "delete") == 0) rc = groups_delete(&o, &c, pos, pos_count);
    else rc = groups_reset(&o, &c, pos[0], &a);
    kclient_close(&c);
    return rc;
}
