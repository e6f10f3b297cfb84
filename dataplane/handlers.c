/* handlers.c - ApiVersions and Metadata, the APIs a broker with no topics can answer.
 *
 * ApiVersions answers the handler table (so it advertises exactly what is implemented).
 * A version this broker does not support gets, as Kafka does, a v0-format response with
 * UNSUPPORTED_VERSION (35) and the supported ranges, so the client can retry at a version
 * both sides know. Metadata lists this one broker (advertised host/port), the cluster id
 * and this node as controller; every named topic is UNKNOWN_TOPIC_OR_PARTITION until the
 * topic catalogue exists (storage/control issues). DescribeCluster is answered here too,
 * from the broker identity: this one node, the cluster id, this node as controller.
 * The admin APIs on topic configs and partitions (DescribeConfigs, AlterConfigs,
 * IncrementalAlterConfigs, CreatePartitions) go to control (control_plane.c). */
#include "dataplane/handlers.h"

#include <assert.h>
#include <string.h>

#include "dataplane/router.h"

static int handle_api_versions(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                               struct kafka_reader *body, struct kafka_writer *w);
static int handle_metadata(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                           struct kafka_reader *body, struct kafka_writer *w);

static int handle_routed(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                         struct kafka_reader *body, struct kafka_writer *w);
static int handle_describe_cluster(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                   struct kafka_reader *body, struct kafka_writer *w);
static int handle_find_coordinator(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                   struct kafka_reader *body, struct kafka_writer *w);

/* Versions: -1 takes the codec's whole range. Produce from v0 (legacy message sets are
 * converted to v2), up to 9 (v10+ adds nothing sluice uses, v9 is what clients of 2024
 * send); Fetch from v4 (v0-v3 consumers expect legacy message sets and this broker does
 * not down-convert; every client here negotiates v4+) to 13 (topic ids); ListOffsets
 * 0-7 (v7: max timestamp; v8+ are tiered-storage lookups, KIP-405/1005). */
static struct handler handlers[] = {
    {KAFKA_API_PRODUCE, 0, 9, handle_routed},
    {KAFKA_API_FETCH, 4, 13, handle_routed},
    {KAFKA_API_LIST_OFFSETS, 0, 7, handle_routed},
    {KAFKA_API_METADATA, 0, 12, handle_metadata},
    {KAFKA_API_API_VERSIONS, 0, -1, handle_api_versions},
    {KAFKA_API_CREATE_TOPICS, 0, 7, handle_routed},
    {KAFKA_API_DELETE_TOPICS, 0, 6, handle_routed},
    {KAFKA_API_DESCRIBE_CONFIGS, 0, -1, handle_routed},
    {KAFKA_API_ALTER_CONFIGS, 0, -1, handle_routed},
    {KAFKA_API_INCREMENTAL_ALTER_CONFIGS, 0, -1, handle_routed},
    {KAFKA_API_CREATE_PARTITIONS, 0, -1, handle_routed},
    {KAFKA_API_DESCRIBE_CLUSTER, 0, -1, handle_describe_cluster},
    {KAFKA_API_DELETE_RECORDS, 0, -1, handle_routed},
    {KAFKA_API_OFFSET_FOR_LEADER_EPOCH, 0, -1, handle_routed},
    {KAFKA_API_DESCRIBE_LOG_DIRS, 0, -1, handle_routed},
    {KAFKA_API_DESCRIBE_PRODUCERS, 0, -1, handle_routed}, /* router_partition.c */
    {KAFKA_API_INIT_PRODUCER_ID, 0, -1, handle_routed}, /* control: producer_ids.c */
    /* consumer groups: control/group_api.c (FindCoordinator answered here: this node).
     * OffsetCommit/OffsetFetch v9 (KIP-848) carry member epochs that only the new consumer
     * protocol fills in; for classic groups they are answered as v8, as Kafka does.
     * FindCoordinator v5-6: TRANSACTION_ABORTABLE and share groups, neither of which exists
     * here (a share-group key gets INVALID_REQUEST). */
    {KAFKA_API_FIND_COORDINATOR, 0, -1, handle_find_coordinator},
    {KAFKA_API_JOIN_GROUP, 0, 9, handle_routed},
    {KAFKA_API_SYNC_GROUP, 0, 5, handle_routed},
    {KAFKA_API_HEARTBEAT, 0, 4, handle_routed},
    {KAFKA_API_LEAVE_GROUP, 0, 5, handle_routed},
    {KAFKA_API_OFFSET_COMMIT, 0, -1, handle_routed},
    {KAFKA_API_OFFSET_FETCH, 0, -1, handle_routed},
    {KAFKA_API_DESCRIBE_GROUPS, 0, 5, handle_routed},
    {KAFKA_API_LIST_GROUPS, 0, 5, handle_routed},
    {KAFKA_API_DELETE_GROUPS, 0, 2, handle_routed},
    {KAFKA_API_OFFSET_DELETE, 0, 0, handle_routed},
    /* transactions: control/txn_api.c (TxnOffsetCommit: group_writes.c). Versions as
     * clients send them: AddPartitionsToTxn v4+ is broker-to-broker (KIP-890), and v4+
     * of the others adds TRANSACTION_ABORTABLE, which this coordinator never answers. */
    {KAFKA_API_ADD_PARTITIONS_TO_TXN, 0, 3, handle_routed},
    {KAFKA_API_ADD_OFFSETS_TO_TXN, 0, 3, handle_routed},
    {KAFKA_API_END_TXN, 0, 3, handle_routed},
    {KAFKA_API_TXN_OFFSET_COMMIT, 0, 3, handle_routed},
    {KAFKA_API_DESCRIBE_TRANSACTIONS, 0, 0, handle_routed},
    {KAFKA_API_LIST_TRANSACTIONS, 0, 1, handle_routed},
};
#define HANDLER_COUNT (sizeof handlers / sizeof handlers[0])

/* Versions come from the codec's table: a handler serves every version the codec has.
 * Filled once before any shard starts (the table is read-only afterwards). */
static bool handlers_ready;

void handlers_init(void) {
    for (size_t i = 0; i < HANDLER_COUNT; i++) {
        if (handlers[i].max_version >= 0) continue;
        const struct kafka_api_info *info = kafka_api_lookup(handlers[i].api_key);
        handlers[i].min_version = info ? info->min_version : 0;
        handlers[i].max_version = info ? info->max_version : 0;
    }
    for (size_t i = 0; i < HANDLER_COUNT; i++) { /* never beyond what the codec parses */
        const struct kafka_api_info *info = kafka_api_lookup(handlers[i].api_key);
        assert(info && handlers[i].max_version <= info->max_version);
    }
    handlers_ready = true;
}

const struct handler *handler_find(int16_t api_key) {
    assert(handlers_ready);
    for (size_t i = 0; i < HANDLER_COUNT; i++)
        if (handlers[i].api_key == api_key) return &handlers[i];
    return NULL;
}

const struct handler *handler_table(size_t *count) {
    assert(handlers_ready);
    *count = HANDLER_COUNT;
    return handlers;
}

static int handle_api_versions(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                               struct kafka_reader *body, struct kafka_writer *w) {
    const struct handler *self = handler_find(KAFKA_API_API_VERSIONS);
    int16_t version = hdr->request_api_version;
    bool supported = version >= self->min_version && version <= self->max_version;
    if (supported) {
        struct kafka_api_versions_request req;
        int rc = kafka_api_versions_request_decode(body, version, &req, ctx->arena);
        if (rc != 0) return rc;
    }
    int16_t resp_version = supported ? version : 0;
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp, resp_version);
    resp.error_code = supported ? 0 : KAFKA_ERROR_UNSUPPORTED_VERSION;
    size_t count;
    const struct handler *table = handler_table(&count);
    resp.api_keys = kafka_arena_alloc(ctx->arena, count, sizeof resp.api_keys[0],
                                      _Alignof(struct kafka_api_versions_response_api_version));
    if (!resp.api_keys) return KAFKA_ERR_ARENA;
    for (size_t i = 0; i < count; i++) {
        resp.api_keys[i].api_key = table[i].api_key;
        resp.api_keys[i].min_version = table[i].min_version;
        resp.api_keys[i].max_version = table[i].max_version;
    }
    resp.api_keys_count = (int32_t)count;
    return kafka_api_versions_response_encode(w, resp_version, &resp);
}

/* The APIs that need partitions or the catalogue go through the shard's router (none
 * when a shard runs without a catalogue, as in unit tests: the connection closes). */
static int handle_routed(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                         struct kafka_reader *body, struct kafka_writer *w) {
    if (!ctx->owner) return KAFKA_ERR_UNKNOWN_API;
    switch (hdr->request_api_key) {
    case KAFKA_API_PRODUCE: return router_handle_produce(ctx, hdr, body, w);
    case KAFKA_API_FETCH: return router_handle_fetch(ctx, hdr, body, w);
    case KAFKA_API_LIST_OFFSETS: return router_handle_list_offsets(ctx, hdr, body, w);
    case KAFKA_API_DELETE_RECORDS: return router_handle_delete_records(ctx, hdr, body, w);
    case KAFKA_API_OFFSET_FOR_LEADER_EPOCH:
        return router_handle_offset_for_leader_epoch(ctx, hdr, body, w);
    case KAFKA_API_DESCRIBE_LOG_DIRS: return router_handle_describe_log_dirs(ctx, hdr, body, w);
    case KAFKA_API_DESCRIBE_PRODUCERS: return router_handle_describe_producers(ctx, hdr, body, w);
    default: return router_handle_control(ctx, hdr, body, w);
    }
}

int handlers_metadata_self(struct handler_ctx *ctx, struct kafka_metadata_response *resp) {
    const struct broker_identity *id = ctx->identity;
    resp->brokers = KAFKA_ARENA_ARRAY(ctx->arena, 1, resp->brokers);
    if (!resp->brokers) return -1;
    resp->brokers[0].node_id = id->node_id;
    resp->brokers[0].host = kafka_str_from_cstr(id->advertised_host);
    resp->brokers[0].port = id->advertised_port;
    resp->brokers[0].rack = kafka_str_from_cstr(NULL);
    resp->brokers_count = 1;
    resp->cluster_id = kafka_str_from_cstr(id->cluster_id);
    resp->controller_id = id->node_id;
    return 0;
}

static int handle_metadata(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                           struct kafka_reader *body, struct kafka_writer *w) {
    if (ctx->owner) return router_handle_metadata(ctx, hdr, body, w);
    int16_t version = hdr->request_api_version;
    struct kafka_metadata_request req;
    int rc = kafka_metadata_request_decode(body, version, &req, ctx->arena);
    if (rc != 0) return rc;
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp, version);
    if (handlers_metadata_self(ctx, &resp) != 0) return KAFKA_ERR_ARENA;
    int32_t topic_count = req.topics_count > 0 ? req.topics_count : 0;
    resp.topics_count = topic_count;
    resp.topics = NULL;
    if (topic_count > 0) {
        resp.topics = kafka_arena_alloc(ctx->arena, (size_t)topic_count, sizeof resp.topics[0],
                                        _Alignof(struct kafka_metadata_response_metadata_response_topic));
        if (!resp.topics) return KAFKA_ERR_ARENA;
    }
    for (int32_t i = 0; i < topic_count; i++) {
        struct kafka_metadata_response_metadata_response_topic *t = &resp.topics[i];
        memset(t, 0, sizeof *t);
        t->error_code = KAFKA_ERROR_UNKNOWN_TOPIC_OR_PARTITION;
        t->name = req.topics[i].name;
        if (t->name.len < 0 && version < 12) t->name = kafka_str_from_cstr("");
        t->topic_id = req.topics[i].topic_id;
        t->is_internal = false;
        t->partitions = NULL;
        t->partitions_count = 0;
        t->topic_authorized_operations = INT32_MIN;
    }
    return kafka_metadata_response_encode(w, version, &resp);
}

/* Kafka's UNSUPPORTED_ENDPOINT_TYPE: v1 may ask for the controllers (endpoint type 2),
 * which only a KRaft controller listener answers. */
#define ERR_UNSUPPORTED_ENDPOINT_TYPE 115
#define ENDPOINT_TYPE_BROKERS 1

static int handle_describe_cluster(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                   struct kafka_reader *body, struct kafka_writer *w) {
    int16_t version = hdr->request_api_version;
    struct kafka_describe_cluster_request req;
    int rc = kafka_describe_cluster_request_decode(body, version, &req, ctx->arena);
    if (rc != 0) return rc;
    struct kafka_describe_cluster_response resp;
    kafka_describe_cluster_response_init(&resp, version);
    const struct broker_identity *id = ctx->identity;
    resp.error_message = kafka_str_from_cstr(NULL);
    resp.endpoint_type = req.endpoint_type;
    resp.cluster_id = kafka_str_from_cstr(id->cluster_id);
    resp.controller_id = id->node_id;
    resp.cluster_authorized_operations = INT32_MIN;
    resp.brokers_count = 0;
    resp.brokers = NULL;
    if (version >= 1 && req.endpoint_type != ENDPOINT_TYPE_BROKERS) {
        resp.error_code = ERR_UNSUPPORTED_ENDPOINT_TYPE;
        resp.error_message = kafka_str_from_cstr("The request was sent to an endpoint of the wrong type.");
        resp.controller_id = -1;
        return kafka_describe_cluster_response_encode(w, version, &resp);
    }
    resp.brokers = kafka_arena_alloc(ctx->arena, 1, sizeof resp.brokers[0],
                                     _Alignof(struct kafka_describe_cluster_response_describe_cluster_broker));
    if (!resp.brokers) return KAFKA_ERR_ARENA;
    resp.brokers[0].broker_id = id->node_id;
    resp.brokers[0].host = kafka_str_from_cstr(id->advertised_host);
    resp.brokers[0].port = id->advertised_port;
    resp.brokers[0].rack = kafka_str_from_cstr(NULL);
    resp.brokers_count = 1;
    return kafka_describe_cluster_response_encode(w, version, &resp);
}

/* FindCoordinator: this node coordinates every group (key type 0) and every
 * transactional id (key type 1, control/txn_api.c); other key types INVALID_REQUEST.
 * v4 batches keys (coordinator_keys -> coordinators). */
#define ERR_INVALID_REQUEST 42

static void coordinator_answer(const struct broker_identity *id, int8_t key_type,
                               int16_t *error_code, struct kafka_str *message, int32_t *node_id,
                               struct kafka_str *host, int32_t *port) {
    bool group = key_type == 0 || key_type == 1; /* a group or a transactional id */
    *error_code = group ? 0 : ERR_INVALID_REQUEST;
    *message = kafka_str_from_cstr(group ? NULL : "Unknown coordinator key type");
    *node_id = group ? id->node_id : -1;
    *host = kafka_str_from_cstr(group ? id->advertised_host : "");
    *port = group ? id->advertised_port : -1;
}

static int handle_find_coordinator(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                                   struct kafka_reader *body, struct kafka_writer *w) {
    int16_t version = hdr->request_api_version;
    struct kafka_find_coordinator_request req;
    int rc = kafka_find_coordinator_request_decode(body, version, &req, ctx->arena);
    if (rc != 0) return rc;
    struct kafka_find_coordinator_response resp;
    kafka_find_coordinator_response_init(&resp, version);
    int8_t key_type = version >= 1 ? req.key_type : 0;
    if (version < 4) {
        coordinator_answer(ctx->identity, key_type, &resp.error_code, &resp.error_message,
                           &resp.node_id, &resp.host, &resp.port);
        return kafka_find_coordinator_response_encode(w, version, &resp);
    }
    int32_t n = req.coordinator_keys_count > 0 ? req.coordinator_keys_count : 0;
    resp.coordinators = KAFKA_ARENA_ARRAY(ctx->arena, n ? n : 1, resp.coordinators);
    if (!resp.coordinators) return KAFKA_ERR_ARENA;
    resp.coordinators_count = n;
    for (int32_t i = 0; i < n; i++) {
        struct kafka_find_coordinator_response_coordinator *c = &resp.coordinators[i];
        c->key = req.coordinator_keys[i];
        coordinator_answer(ctx->identity, key_type, &c->error_code, &c->error_message,
                           &c->node_id, &c->host, &c->port);
    }
    return kafka_find_coordinator_response_encode(w, version, &resp);
}
