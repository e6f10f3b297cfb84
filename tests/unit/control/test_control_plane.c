/* test_control_plane.c - the control thread's side of the control-plane round trip, with
 * the real mesh and the real catalogue in a fresh temp dir (no shard threads: the test
 * plays shard 0's end of the mesh). A CreateTopics job goes to control, comes back with
 * an encoded response that the C codec decodes, and shard 0's topic_source sees the new
 * topic (placement, configs) only after the reply was sent; DeleteTopics by id removes it;
 * an undecodable request comes back with no response; auto-creation creates with the
 * broker defaults; IncrementalAlterConfigs, AlterConfigs (full replace) and
 * CreatePartitions reach shard 0's snapshot by reply time, validate_only changes nothing,
 * and compact / unknown topic / a partition decrease get their Kafka error codes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/config.h"
#include "control/control_plane.h"

static struct config broker;
static struct mesh mesh;
static struct control_plane cp;
static struct topic_source src;
static char dir[64];
static char err[512];

static void setup(void) {
    config_init(&broker);
    cr_assert_eq(config_set(&broker, "num.partitions", "3", CONFIG_SOURCE_OVERRIDE, err,
                            sizeof err), 0, "%s", err);
    snprintf(dir, sizeof dir, "/tmp/sluice-cp-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(mesh_init(&mesh, 2, 64), 0);
    cr_assert_eq(control_plane_init(&cp, &mesh, dir, &broker, err, sizeof err), 0, "%s", err);
    cp.node_id = 1;
    control_plane_topic_source(&cp, 0, &src);
    control_plane_topic_source(&cp, 1, &(struct topic_source){0});
}

static void teardown(void) {
    control_plane_destroy(&cp);
    mesh_destroy(&mesh);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(control_plane, .init = setup, .fini = teardown);

static struct control_job *received;

static void on_reply(void *ctx, const struct shard_msg *msg) {
    (void)ctx;
    cr_assert_eq(msg->type, ROUTER_MSG_CONTROL_REPLY);
    received = msg->ptr;
}

/* Send a job as shard 0, let control handle it, and collect the reply. */
static struct control_job *round_trip(int16_t api_key, int16_t version, const uint8_t *body,
                                      size_t len) {
    struct control_job *job = calloc(1, sizeof *job);
    cr_assert_not_null(job);
    job->request = malloc(len ? len : 1);
    memcpy(job->request, body, len);
    job->request_bytes = (uint32_t)len;
    job->api_key = api_key;
    job->api_version = version;
    job->origin_shard = 0;
    struct shard_msg m = {.type = ROUTER_MSG_CONTROL_REQ, .from = 0, .ptr = job};
    control_plane_on_message(&cp, &m);
    received = NULL;
    cr_assert_eq(mesh_drain(&mesh, 0, 16, on_reply, NULL), 1u);
    cr_assert_eq(received, job);
    return job;
}

static void job_free(struct control_job *job) {
    free(job->request);
    free(job->response);
    free(job);
}

static size_t encode_create(uint8_t *buf, size_t cap, const char *name, int32_t partitions,
                            const char *config_key, const char *config_value) {
    struct kafka_create_topics_request req;
    kafka_create_topics_request_init(&req, 7);
    struct kafka_create_topics_request_creatable_topic t = {0};
    struct kafka_create_topics_request_creatable_topic_config c = {
        .name = kafka_str_from_cstr(config_key), .value = kafka_str_from_cstr(config_value)};
    t.name = kafka_str_from_cstr(name);
    t.num_partitions = partitions;
    t.replication_factor = -1;
    t.configs = &c;
    t.configs_count = config_key ? 1 : 0;
    req.topics = &t;
    req.topics_count = 1;
    req.timeout_ms = 1000;
    struct kafka_writer w;
    kafka_writer_init(&w, buf, cap);
    cr_assert_eq(kafka_create_topics_request_encode(&w, 7, &req), 0);
    return w.len_bytes;
}

static void decode_create(const struct control_job *job,
                          struct kafka_create_topics_response *resp, struct kafka_arena *a) {
    cr_assert_not_null(job->response);
    struct kafka_reader r;
    kafka_reader_init(&r, job->response, job->response_bytes);
    cr_assert_eq(kafka_create_topics_response_decode(&r, 7, resp, a), 0);
    cr_assert_eq(kafka_reader_remaining(&r), 0u);
    cr_assert_eq(resp->topics_count, 1);
}

Test(control_plane, create_then_snapshot_then_delete_by_id) {
    static uint8_t buf[4096], arena_mem[65536];
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof arena_mem);
    struct topic_info info;
    cr_assert(!src.find(src.reader, "orders", 6, &info));
    size_t len = encode_create(buf, sizeof buf, "orders", -1, "max.message.bytes", "5000");
    struct control_job *job = round_trip(19, 7, buf, len);
    struct kafka_create_topics_response resp;
    decode_create(job, &resp, &arena);
    cr_assert_eq(resp.topics[0].error_code, 0);
    cr_assert_eq(resp.topics[0].num_partitions, 3, "num.partitions for -1");
    uint8_t id[16];
    memcpy(id, resp.topics[0].topic_id.bytes, 16);
    job_free(job);
    /* The reply was sent after the publication: shard 0 sees the topic at once. */
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "orders", 6, &info));
    cr_assert_eq(info.partition_count, 3);
    cr_assert_eq(memcmp(info.id, id, 16), 0);
    cr_assert_eq(info.max_message_bytes, 5000);
    for (int32_t p = 0; p < 3; p++) cr_assert(info.partition_shard[p] < 2);

    /* The same name again: TOPIC_ALREADY_EXISTS with a message. */
    job = round_trip(19, 7, buf, len);
    kafka_arena_reset(&arena);
    decode_create(job, &resp, &arena);
    cr_assert_eq(resp.topics[0].error_code, 36);
    cr_assert(resp.topics[0].error_message.len > 0);
    job_free(job);

    /* DeleteTopics v6 by id. */
    struct kafka_delete_topics_request del;
    kafka_delete_topics_request_init(&del, 6);
    struct kafka_delete_topics_request_delete_topic_state st = {0};
    st.name = kafka_str_from_cstr(NULL);
    memcpy(st.topic_id.bytes, id, 16);
    del.topics = &st;
    del.topics_count = 1;
    struct kafka_writer w;
    kafka_writer_init(&w, buf, sizeof buf);
    cr_assert_eq(kafka_delete_topics_request_encode(&w, 6, &del), 0);
    job = round_trip(20, 6, buf, w.len_bytes);
    struct kafka_reader r;
    kafka_reader_init(&r, job->response, job->response_bytes);
    struct kafka_delete_topics_response dresp;
    kafka_arena_reset(&arena);
    cr_assert_eq(kafka_delete_topics_response_decode(&r, 6, &dresp, &arena), 0);
    cr_assert_eq(dresp.responses_count, 1);
    cr_assert_eq(dresp.responses[0].error_code, 0);
    cr_assert(kafka_str_equals_cstr(dresp.responses[0].name, "orders"));
    job_free(job);
    src.refresh(src.reader);
    cr_assert(!src.find(src.reader, "orders", 6, &info));
    cr_assert(!src.find_id(src.reader, id, &info));
}

Test(control_plane, undecodable_request_gets_no_response) {
    const uint8_t garbage[3] = {0xff, 0xff, 0xff};
    struct control_job *job = round_trip(19, 7, garbage, sizeof garbage);
    cr_assert_null(job->response, "the shard closes the connection instead");
    job_free(job);
}

Test(control_plane, auto_create_uses_broker_defaults) {
    char *name = strdup("auto-made");
    struct shard_msg m = {.type = ROUTER_MSG_AUTO_CREATE, .from = 0, .ptr = name};
    control_plane_on_message(&cp, &m); /* takes ownership of name */
    struct topic_info info;
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "auto-made", 9, &info));
    cr_assert_eq(info.partition_count, 3);
    /* An illegal name is refused by the catalogue; nothing is created. */
    m.ptr = strdup("bad name");
    control_plane_on_message(&cp, &m);
    src.refresh(src.reader);
    cr_assert_eq(src.count(src.reader), 1u);
}

/* ---- admin APIs: each change is in shard 0's snapshot by the time the reply arrives */

static int16_t incremental_set(const char *topic, const char *key, const char *value,
                               bool validate_only) {
    static uint8_t buf[4096], arena_mem[16384];
    struct kafka_incremental_alter_configs_request req;
    kafka_incremental_alter_configs_request_init(&req, 1);
    struct kafka_incremental_alter_configs_request_alterable_config c = {
        .name = kafka_str_from_cstr(key), .config_operation = 0,
        .value = kafka_str_from_cstr(value)};
    struct kafka_incremental_alter_configs_request_alter_configs_resource res = {
        .resource_type = 2, .resource_name = kafka_str_from_cstr(topic), .configs = &c,
        .configs_count = 1};
    req.resources = &res;
    req.resources_count = 1;
    req.validate_only = validate_only;
    struct kafka_writer w;
    kafka_writer_init(&w, buf, sizeof buf);
    cr_assert_eq(kafka_incremental_alter_configs_request_encode(&w, 1, &req), 0);
    struct control_job *job = round_trip(44, 1, buf, w.len_bytes);
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof arena_mem);
    struct kafka_reader r;
    kafka_reader_init(&r, job->response, job->response_bytes);
    struct kafka_incremental_alter_configs_response resp;
    cr_assert_eq(kafka_incremental_alter_configs_response_decode(&r, 1, &resp, &arena), 0);
    cr_assert_eq(resp.responses_count, 1);
    int16_t ec = resp.responses[0].error_code;
    job_free(job);
    return ec;
}

static int16_t alter_replace_empty(const char *topic) {
    static uint8_t buf[4096], arena_mem[16384];
    struct kafka_alter_configs_request req;
    kafka_alter_configs_request_init(&req, 2);
    struct kafka_alter_configs_request_alter_configs_resource res = {
        .resource_type = 2, .resource_name = kafka_str_from_cstr(topic), .configs = NULL,
        .configs_count = 0};
    req.resources = &res;
    req.resources_count = 1;
    struct kafka_writer w;
    kafka_writer_init(&w, buf, sizeof buf);
    cr_assert_eq(kafka_alter_configs_request_encode(&w, 2, &req), 0);
    struct control_job *job = round_trip(33, 2, buf, w.len_bytes);
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof arena_mem);
    struct kafka_reader r;
    kafka_reader_init(&r, job->response, job->response_bytes);
    struct kafka_alter_configs_response resp;
    cr_assert_eq(kafka_alter_configs_response_decode(&r, 2, &resp, &arena), 0);
    int16_t ec = resp.responses[0].error_code;
    job_free(job);
    return ec;
}

static int16_t create_partitions(const char *topic, int32_t count, bool validate_only) {
    static uint8_t buf[4096], arena_mem[16384];
    struct kafka_create_partitions_request req;
    kafka_create_partitions_request_init(&req, 3);
    struct kafka_create_partitions_request_create_partitions_topic t = {
        .name = kafka_str_from_cstr(topic), .count = count, .assignments = NULL,
        .assignments_count = -1};
    req.topics = &t;
    req.topics_count = 1;
    req.validate_only = validate_only;
    struct kafka_writer w;
    kafka_writer_init(&w, buf, sizeof buf);
    cr_assert_eq(kafka_create_partitions_request_encode(&w, 3, &req), 0);
    struct control_job *job = round_trip(37, 3, buf, w.len_bytes);
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof arena_mem);
    struct kafka_reader r;
    kafka_reader_init(&r, job->response, job->response_bytes);
    struct kafka_create_partitions_response resp;
    cr_assert_eq(kafka_create_partitions_response_decode(&r, 3, &resp, &arena), 0);
    int16_t ec = resp.results[0].error_code;
    job_free(job);
    return ec;
}

Test(control_plane, admin_changes_reach_the_shard_snapshot) {
    static uint8_t buf[4096];
    size_t len = encode_create(buf, sizeof buf, "adm", 1, NULL, NULL);
    job_free(round_trip(19, 7, buf, len));
    struct topic_info info;
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "adm", 3, &info));
    int64_t default_max = info.max_message_bytes;

    cr_assert_eq(incremental_set("adm", "max.message.bytes", "7000", true), 0);
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "adm", 3, &info));
    cr_assert_eq(info.max_message_bytes, default_max, "validate_only changed nothing");
    cr_assert_eq(incremental_set("adm", "max.message.bytes", "7000", false), 0);
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "adm", 3, &info));
    cr_assert_eq(info.max_message_bytes, 7000);
    cr_assert_eq(incremental_set("adm", "cleanup.policy", "compact", false), 40);
    cr_assert_eq(incremental_set("nope", "max.message.bytes", "7000", false), 3);

    cr_assert_eq(alter_replace_empty("adm"), 0);
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "adm", 3, &info));
    cr_assert_eq(info.max_message_bytes, default_max, "a full replace with no keys resets");

    cr_assert_eq(create_partitions("adm", 4, true), 0);
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "adm", 3, &info));
    cr_assert_eq(info.partition_count, 1);
    cr_assert_eq(create_partitions("adm", 4, false), 0);
    src.refresh(src.reader);
    cr_assert(src.find(src.reader, "adm", 3, &info));
    cr_assert_eq(info.partition_count, 4);
    for (int32_t p = 0; p < 4; p++) cr_assert(info.partition_shard[p] < 2);
    cr_assert_eq(create_partitions("adm", 2, false), 37);
}

/* ---- appends to internal topics: control's side (the test plays the owner shard) ---- */

static struct internal_append_job *append_seen;
static int appends_answered;

static void on_append(void *ctx, const struct shard_msg *msg) {
    (void)ctx;
    cr_assert_eq(msg->type, ROUTER_MSG_INTERNAL_APPEND);
    append_seen = msg->ptr;
}

static void append_done(struct internal_append_job *job) {
    cr_assert_eq(job->base_offset, 42);
    appends_answered++;
}

Test(control_plane, internal_append_goes_to_the_owner_and_comes_back) {
    static uint8_t buf[4096];
    size_t len = encode_create(buf, sizeof buf, "internal-t", 2, NULL, NULL);
    struct control_job *cj = round_trip(19, 7, buf, len);
    job_free(cj);
    const struct catalog_topic *t = catalog_find(&cp.catalog, "internal-t");
    cr_assert_not_null(t);
    static const uint8_t batch[61];
    struct internal_append_job job = {.partition = 1, .batch = batch, .batch_bytes = 61,
                                      .done = append_done};
    memcpy(job.topic_id, t->id, 16);
    cr_assert_eq(control_plane_internal_append(&cp, &job), 0);
    int owner = t->partition_shard[1];
    cr_assert_eq(job.owner_shard, owner);
    append_seen = NULL;
    cr_assert_eq(mesh_drain(&mesh, owner, 16, on_append, NULL), 1u);
    cr_assert_eq(append_seen, &job);
    cr_assert_eq(cp.appends_in_flight, 1u);
    /* The owner answers. */
    job.base_offset = 42;
    struct shard_msg m = {.type = ROUTER_MSG_INTERNAL_APPEND_DONE, .from = owner, .ptr = &job};
    control_plane_on_message(&cp, &m);
    cr_assert_eq(appends_answered, 1);
    cr_assert_eq(cp.appends_in_flight, 0u);
    /* An unknown partition is refused without a message. */
    job.partition = 2;
    cr_assert_eq(control_plane_internal_append(&cp, &job), KAFKA_ERROR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(cp.appends_in_flight, 0u);
}
