/* control_plane.c - the control thread's side of the control-plane round trip.
 *
 * Shards send struct control_job (dataplane/router.h) over the mesh. Control owns the
 * catalogue: it decodes the request body the job carries, acts on the catalogue (each
 * change is persisted before it returns, see catalog.h), publishes a new snapshot when
 * something changed -- before answering, so the shard that gets the answer, and every
 * shard the client talks to next, can already see the change -- encodes the response
 * body into a buffer of its exact size and sends the job back. A reply a full ring
 * refuses waits in a list retried on every loop turn (bounded: one job per connection).
 *
 * Adding a control API: a case in control_plane_on_message's dispatch (execute_job) that
 * decodes, acts and encodes, and a row for it in dataplane/handlers.c.
 *
 * Admin APIs here: DescribeConfigs (topic keys from topic_config_describe; the broker
 * resource, named by node id, from the static config registry, every key read-only),
 * AlterConfigs (a full replace of a topic's overrides, expressed as SET ops for the keys
 * given and DELETE ops for every other key, applied atomically), IncrementalAlterConfigs
 * (the request's ops as they are), CreatePartitions (no manual assignments: placement is
 * hash mod shards). Changes persist in the catalogue before the answer and reach the
 * shards through the new snapshot (new partitions are opened by their owners). Dynamic
 * broker configs do not exist: altering a broker resource is refused with a message.
 *
 * It also implements the shards' struct topic_source over catalog_reader: lookups in the
 * snapshot a shard holds, converted to struct topic_info; each shard's reader (struct
 * control_reader) also carries the broker-level producer-state bounds
 * (producer.id.expiration.ms, sluice.max.producers.per.partition) into every partition's
 * plog_config.
 *
 * InitProducerId is answered here too, by control/producer_ids.c (ids persisted in blocks);
 * with a transactional id by the transaction coordinator (control/txn_api.c), which also
 * answers AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, List/DescribeTransactions. */
#include "control/control_plane.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/group_api.h"
#include "control/txn_api.h"
#include "hw/log.h"

#define CREATE_NAME_BYTES (CATALOG_TOPIC_NAME_MAX_BYTES + 1)
#define CONTROL_ARENA_BYTES (4u << 20)
#define CONTROL_MAX_CONFIGS 64
#define ERR_INVALID_REQUEST 42
#define ERR_INVALID_REPLICA_ASSIGNMENT 39

/* ---- topic_source over the catalogue snapshot -------------------------------------- */

static void snapshot_info(const struct control_reader *r, const struct catalog_snapshot_topic *t,
                          struct topic_info *out) {
    out->name = t->name;
    out->id = t->id;
    out->partition_count = t->partition_count;
    out->internal = t->internal;
    out->partition_shard = t->partition_shard;
    out->max_message_bytes = t->config.max_message_bytes;
    out->log_append_time = t->config.message_timestamp_type == TOPIC_TIMESTAMP_LOG_APPEND_TIME;
    plog_config_default(&out->log);
    out->log.segment_bytes = (uint64_t)t->config.segment_bytes;
    out->log.segment_ms = t->config.segment_ms;
    out->log.retention_ms = t->config.retention_ms;
    out->log.retention_bytes = t->config.retention_bytes;
    out->log.index_interval_bytes = (uint32_t)t->config.index_interval_bytes;
    out->log.max_producers = r->max_producers;
    out->log.producer_expiration_ms = r->producer_expiration_ms;
    out->log.dsync_writes = r->dsync_writes;
    /* preallocate=true: the whole segment up front, as Kafka does. false (Kafka's default,
     * no preallocation): sluice still fallocates ahead of the writes, from 1 MiB steps
     * growing with the segment up to 16 MiB (partition_log.c), so an idle partition
     * wastes at most 1 MiB (the storage default, 64 MiB, would cost 64 GB of disk for
     * 1000 partitions holding one message each). */
    out->log.preallocate_step_bytes =
        t->config.preallocate ? (uint64_t)t->config.segment_bytes : 1ull << 20;
}

static uint64_t src_refresh(void *reader) {
    return catalog_reader_refresh(&((struct control_reader *)reader)->catalog)->epoch;
}

static size_t src_count(void *reader) {
    return ((struct control_reader *)reader)->catalog.held->topic_count;
}

static bool src_at(void *reader, size_t index, struct topic_info *out) {
    const struct control_reader *r = reader;
    const struct catalog_snapshot *snap = r->catalog.held;
    if (index >= snap->topic_count) return false;
    snapshot_info(r, &snap->topics[index], out);
    return true;
}

static bool src_find(void *reader, const char *name, size_t name_len, struct topic_info *out) {
    char buf[CREATE_NAME_BYTES];
    if (name_len == 0 || name_len >= sizeof buf) return false;
    memcpy(buf, name, name_len);
    buf[name_len] = '\0';
    const struct control_reader *r = reader;
    const struct catalog_snapshot_topic *t = catalog_snapshot_find(r->catalog.held, buf);
    if (!t) return false;
    snapshot_info(r, t, out);
    return true;
}

static bool src_find_id(void *reader, const uint8_t id[16], struct topic_info *out) {
    const struct control_reader *r = reader;
    const struct catalog_snapshot_topic *t = catalog_snapshot_find_id(r->catalog.held, id);
    if (!t) return false;
    snapshot_info(r, t, out);
    return true;
}

void control_plane_topic_source(struct control_plane *cp, int shard, struct topic_source *out) {
    assert(shard >= 0 && shard < cp->shard_count);
    struct control_reader *r = &cp->readers[shard];
    catalog_reader_init(&r->catalog, &cp->publisher, (uint32_t)shard);
    catalog_reader_refresh(&r->catalog);
    r->max_producers = (uint32_t)config_get_i64(cp->broker, "sluice.max.producers.per.partition");
    r->producer_expiration_ms = config_get_i64(cp->broker, "producer.id.expiration.ms");
    r->dsync_writes = config_get_bool(cp->broker, "sluice.storage.dsync.writes");
    assert(r->max_producers >= 1 && r->producer_expiration_ms >= 1);
    *out = (struct topic_source){.reader = &cp->readers[shard], .refresh = src_refresh,
                                 .count = src_count, .at = src_at, .find = src_find,
                                 .find_id = src_find_id};
}

/* ---- setup ------------------------------------------------------------------------- */

int control_plane_init(struct control_plane *cp, struct mesh *mesh, const char *data_dir,
                       const struct config *broker, char *err, size_t err_bytes) {
    memset(cp, 0, sizeof *cp);
    cp->mesh = mesh;
    cp->shard_count = mesh->shard_count;
    cp->broker = broker;
    cp->readers = calloc((size_t)cp->shard_count, sizeof cp->readers[0]);
    cp->arena_mem = malloc(CONTROL_ARENA_BYTES);
    if (!cp->readers || !cp->arena_mem) {
        snprintf(err, err_bytes, "control: out of memory");
        return -1;
    }
    kafka_arena_init(&cp->arena, cp->arena_mem, CONTROL_ARENA_BYTES);
    if (catalog_open(&cp->catalog, data_dir, broker, (uint32_t)cp->shard_count, err,
                     err_bytes) != 0)
        return -1;
    cp->catalog_open = true;
    if (producer_ids_open(&cp->producer_ids, data_dir, err, err_bytes) != 0) return -1;
    if (catalog_publisher_init(&cp->publisher, (uint32_t)cp->shard_count, &cp->catalog) != 0) {
        snprintf(err, err_bytes, "control: catalogue snapshot");
        return -1;
    }
    cp->publisher_ready = true;
    log_info("catalog_loaded", "topics=%zu", catalog_topic_count(&cp->catalog));
    cp->txns = calloc(1, sizeof *cp->txns); /* before the groups: they hand it open commits */
    if (!cp->txns || txn_api_init(cp->txns, cp, data_dir, err, err_bytes) != 0) {
        if (!cp->txns) snprintf(err, err_bytes, "control: out of memory");
        return -1;
    }
    cp->groups = calloc(1, sizeof *cp->groups);
    if (!cp->groups) {
        snprintf(err, err_bytes, "control: out of memory");
        return -1;
    }
    if (group_api_init(cp->groups, cp, data_dir, err, err_bytes) != 0) return -1;
    return 0;
}

void control_plane_destroy(struct control_plane *cp) {
    while (cp->retry_first) {
        struct control_job *j = cp->retry_first;
        cp->retry_first = j->next;
        free(j->request);
        free(j->response);
        free(j);
    }
    if (cp->groups) group_api_destroy(cp->groups);
    free(cp->groups);
    if (cp->txns) txn_api_destroy(cp->txns);
    free(cp->txns);
    if (cp->publisher_ready) catalog_publisher_destroy(&cp->publisher);
    if (cp->catalog_open) catalog_close(&cp->catalog);
    free(cp->readers);
    free(cp->arena_mem);
    memset(cp, 0, sizeof *cp);
}

/* Publish after a change; a lagging reader can make this fail for a while: retried on
 * the next loop turn. */
static void publish(struct control_plane *cp) {
    if (catalog_publish(&cp->publisher, &cp->catalog) != 0) {
        cp->publish_pending = true;
        log_warn("catalog_publish_deferred", "retired=%zu", cp->publisher.retired_count);
        return;
    }
    cp->publish_pending = false;
}

/* ---- CreateTopics ------------------------------------------------------------------ */

static void str_copy(char *dst, size_t cap, struct kafka_str s) {
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static void create_one(struct control_plane *cp, int16_t version,
                       const struct kafka_create_topics_request_creatable_topic *t,
                       bool validate_only,
                       struct kafka_create_topics_response_creatable_topic_result *out,
                       bool *changed) {
    struct kafka_arena *arena = &cp->arena;
    char *name = kafka_arena_alloc(arena, CREATE_NAME_BYTES, 1, 1);
    char *message = kafka_arena_alloc(arena, CATALOG_MESSAGE_BYTES, 1, 1);
    if (!name || !message) {
        out->error_code = CATALOG_ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    str_copy(name, CREATE_NAME_BYTES, t->name);
    out->name = t->name;
    out->num_partitions = -1;
    out->replication_factor = -1;
    out->configs_count = version >= 5 ? 0 : -1;
    out->configs = NULL;
    out->error_message = kafka_str_from_cstr(NULL);
    struct catalog_create_request req = {.name = name, .partition_count = t->num_partitions,
                                         .replication_factor = t->replication_factor};
    if (t->assignments_count > 0) { /* manual assignment: only this node can hold them */
        for (int32_t i = 0; i < t->assignments_count; i++) {
            for (int32_t j = 0; j < t->assignments[i].broker_ids_count; j++) {
                if (t->assignments[i].broker_ids[j] != cp->node_id) {
                    out->error_code = ERR_INVALID_REPLICA_ASSIGNMENT;
                    out->error_message = kafka_str_from_cstr("Replicas must be on this broker");
                    return;
                }
            }
        }
        if (t->num_partitions != -1 || t->replication_factor != -1) {
            out->error_code = ERR_INVALID_REQUEST;
            out->error_message = kafka_str_from_cstr(
                "Both numPartitions or replicationFactor and replicasAssignments were set");
            return;
        }
        req.partition_count = t->assignments_count;
    }
    int32_t config_count = t->configs_count > 0 ? t->configs_count : 0;
    if (config_count > CONTROL_MAX_CONFIGS) {
        out->error_code = ERR_INVALID_REQUEST;
        out->error_message = kafka_str_from_cstr("Too many configs");
        return;
    }
    struct catalog_config_kv kv[CONTROL_MAX_CONFIGS];
    for (int32_t i = 0; i < config_count; i++) {
        struct kafka_str k = t->configs[i].name, v = t->configs[i].value;
        char *ks = kafka_arena_alloc(arena, (size_t)(k.len > 0 ? k.len : 0) + 1, 1, 1);
        char *vs = v.len >= 0 ? kafka_arena_alloc(arena, (size_t)v.len + 1, 1, 1) : NULL;
        if (!ks || (v.len >= 0 && !vs)) {
            out->error_code = CATALOG_ERR_UNKNOWN_SERVER_ERROR;
            return;
        }
        str_copy(ks, (size_t)(k.len > 0 ? k.len : 0) + 1, k);
        if (vs) str_copy(vs, (size_t)v.len + 1, v);
        kv[i] = (struct catalog_config_kv){.name = ks, .value = vs};
    }
    req.configs = kv;
    req.config_count = (size_t)config_count;
    struct catalog_result res;
    int16_t ec = catalog_create_topic(&cp->catalog, &req, validate_only, &res);
    out->error_code = ec;
    if (ec != 0) {
        memcpy(message, res.message, CATALOG_MESSAGE_BYTES);
        message[CATALOG_MESSAGE_BYTES - 1] = '\0';
        out->error_message = kafka_str_from_cstr(message);
        return;
    }
    const struct catalog_topic *ct = catalog_find(&cp->catalog, name);
    if (ct) {
        memcpy(out->topic_id.bytes, ct->id, 16);
        out->num_partitions = ct->partition_count;
        out->replication_factor = ct->replication_factor;
    } else { /* validate_only: report what would be created */
        out->num_partitions = req.partition_count > 0
                                  ? req.partition_count
                                  : (int32_t)config_get_i64(cp->broker, "num.partitions");
        out->replication_factor = 1;
    }
    if (!validate_only) *changed = true;
}

static int create_topics(struct control_plane *cp, struct control_job *job,
                         struct kafka_reader *r, void *resp_out) {
    struct kafka_create_topics_request req;
    int rc = kafka_create_topics_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_create_topics_response *resp = resp_out;
    kafka_create_topics_response_init(resp, job->api_version);
    int32_t n = req.topics_count > 0 ? req.topics_count : 0;
    resp->topics_count = n;
    resp->topics = kafka_arena_alloc(&cp->arena, (size_t)(n ? n : 1), sizeof resp->topics[0],
                                     _Alignof(struct kafka_create_topics_response_creatable_topic_result));
    if (!resp->topics) return KAFKA_ERR_ARENA;
    bool changed = false;
    for (int32_t i = 0; i < n; i++) {
        memset(&resp->topics[i], 0, sizeof resp->topics[i]);
        bool dup = false;
        for (int32_t j = 0; j < i; j++)
            dup = dup || kafka_str_equals(req.topics[j].name, req.topics[i].name);
        if (dup) { /* Kafka answers every copy of a duplicated name INVALID_REQUEST */
            resp->topics[i].name = req.topics[i].name;
            resp->topics[i].error_code = ERR_INVALID_REQUEST;
            resp->topics[i].error_message = kafka_str_from_cstr("Duplicate topic name");
            resp->topics[i].num_partitions = -1;
            resp->topics[i].replication_factor = -1;
            resp->topics[i].configs_count = job->api_version >= 5 ? 0 : -1;
            continue;
        }
        create_one(cp, job->api_version, &req.topics[i], req.validate_only, &resp->topics[i],
                   &changed);
        log_info("create_topic", "name=%.*s error=%d validate_only=%d",
                 req.topics[i].name.len > 0 ? (int)req.topics[i].name.len : 0,
                 req.topics[i].name.ptr ? req.topics[i].name.ptr : "",
                 resp->topics[i].error_code, req.validate_only);
    }
    if (changed) publish(cp);
    return 0;
}

/* ---- DeleteTopics ------------------------------------------------------------------ */

static void delete_one(struct control_plane *cp, struct kafka_str name, const uint8_t *id,
                       struct kafka_delete_topics_response_deletable_topic_result *out,
                       bool *changed) {
    struct catalog_result res;
    int16_t ec;
    out->name = name;
    out->error_message = kafka_str_from_cstr(NULL);
    if (name.len >= 0) {
        char buf[CREATE_NAME_BYTES];
        str_copy(buf, sizeof buf, name);
        const struct catalog_topic *t = catalog_find(&cp->catalog, buf);
        if (t) memcpy(out->topic_id.bytes, t->id, 16);
        ec = catalog_delete_topic(&cp->catalog, buf, &res);
    } else {
        memcpy(out->topic_id.bytes, id, 16);
        const struct catalog_topic *t = catalog_find_id(&cp->catalog, id);
        char *nm = NULL;
        if (t && (nm = kafka_arena_alloc(&cp->arena, CREATE_NAME_BYTES, 1, 1)))
            snprintf(nm, CREATE_NAME_BYTES, "%s", t->name);
        out->name = kafka_str_from_cstr(nm);
        ec = catalog_delete_topic_id(&cp->catalog, id, &res);
    }
    out->error_code = ec;
    if (ec != 0) {
        char *m = kafka_arena_alloc(&cp->arena, CATALOG_MESSAGE_BYTES, 1, 1);
        if (m) {
            memcpy(m, res.message, CATALOG_MESSAGE_BYTES);
            m[CATALOG_MESSAGE_BYTES - 1] = '\0';
        }
        out->error_message = kafka_str_from_cstr(m);
    } else {
        *changed = true;
        if (cp->groups && out->name.len > 0) { /* its committed offsets go with it */
            char buf[CREATE_NAME_BYTES];
            str_copy(buf, sizeof buf, out->name);
            group_api_topic_deleted(cp->groups, buf);
        }
    }
}

static int delete_topics(struct control_plane *cp, struct control_job *job,
                         struct kafka_reader *r, void *resp_out) {
    struct kafka_delete_topics_request req;
    int16_t v = job->api_version;
    int rc = kafka_delete_topics_request_decode(r, v, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_delete_topics_response *resp = resp_out;
    kafka_delete_topics_response_init(resp, v);
    int32_t n = v >= 6 ? req.topics_count : req.topic_names_count;
    if (n < 0) n = 0;
    resp->responses_count = n;
    resp->responses = kafka_arena_alloc(&cp->arena, (size_t)(n ? n : 1), sizeof resp->responses[0],
                                        _Alignof(struct kafka_delete_topics_response_deletable_topic_result));
    if (!resp->responses) return KAFKA_ERR_ARENA;
    bool changed = false;
    for (int32_t i = 0; i < n; i++) {
        memset(&resp->responses[i], 0, sizeof resp->responses[i]);
        struct kafka_str name = v >= 6 ? req.topics[i].name : req.topic_names[i];
        const uint8_t *id = v >= 6 ? req.topics[i].topic_id.bytes : NULL;
        delete_one(cp, name, id, &resp->responses[i], &changed);
        log_info("delete_topic", "name=%.*s error=%d", name.len > 0 ? (int)name.len : 0,
                 name.ptr ? name.ptr : "", resp->responses[i].error_code);
    }
    if (changed) publish(cp);
    return 0;
}

/* ---- DescribeConfigs --------------------------------------------------------------- */

#define RESOURCE_TOPIC 2
#define RESOURCE_BROKER 4
#define ERR_UNKNOWN_TOPIC_OR_PARTITION 3
#define ERR_INVALID_PARTITIONS 37

/* A NUL-terminated arena copy of s (NULL when s is null or the arena is full). */
static char *arena_cstr(struct kafka_arena *arena, struct kafka_str s) {
    if (s.len < 0) return NULL;
    char *out = kafka_arena_alloc(arena, (size_t)s.len + 1, 1, 1);
    if (out) str_copy(out, (size_t)s.len + 1, s);
    return out;
}

static struct kafka_str arena_message(struct kafka_arena *arena, const char *text) {
    size_t n = strlen(text);
    char *m = kafka_arena_alloc(arena, n + 1, 1, 1);
    if (m) memcpy(m, text, n + 1);
    return kafka_str_from_cstr(m);
}

/* Is key one of the requested configuration keys (null list = every key)? */
static bool key_wanted(const struct kafka_describe_configs_request_describe_configs_resource *res,
                       const char *key) {
    if (res->configuration_keys_count < 0 || !res->configuration_keys) return true;
    for (int32_t i = 0; i < res->configuration_keys_count; i++)
        if (kafka_str_equals_cstr(res->configuration_keys[i], key)) return true;
    return false;
}

typedef struct kafka_describe_configs_response_describe_configs_resource_result dc_entry;
typedef struct kafka_describe_configs_response_describe_configs_synonym dc_synonym;

static int describe_topic(struct control_plane *cp, const struct kafka_describe_configs_request *req,
                          const struct kafka_describe_configs_request_describe_configs_resource *res,
                          struct kafka_describe_configs_response_describe_configs_result *out) {
    struct kafka_arena *arena = &cp->arena;
    char name[CREATE_NAME_BYTES];
    str_copy(name, sizeof name, res->resource_name);
    const struct catalog_topic *t = catalog_find(&cp->catalog, name);
    if (!t) {
        out->error_code = ERR_UNKNOWN_TOPIC_OR_PARTITION;
        out->error_message = arena_message(arena, "This server does not host this topic.");
        return 0;
    }
    out->configs = kafka_arena_alloc(arena, TOPIC_CONFIG_KEY_COUNT, sizeof out->configs[0],
                                     _Alignof(dc_entry));
    if (!out->configs) return KAFKA_ERR_ARENA;
    size_t def_count;
    const struct topic_config_def *defs = topic_config_defs(&def_count);
    int32_t n = 0;
    for (size_t k = 0; k < def_count; k++) {
        if (!key_wanted(res, defs[k].name)) continue;
        struct topic_config_entry e;
        topic_config_describe(&t->config, cp->broker, (int)k, &e);
        dc_entry *c = &out->configs[n++];
        memset(c, 0, sizeof *c);
        c->name = kafka_str_from_cstr(e.name);
        c->value = arena_message(arena, e.value);
        c->read_only = e.read_only;
        c->is_default = e.source == KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG;
        c->config_source = (int8_t)e.source;
        c->is_sensitive = e.is_sensitive;
        c->config_type = (int8_t)e.config_type;
        c->documentation = kafka_str_from_cstr(req->include_documentation ? e.documentation : NULL);
        c->synonyms_count = 0;
        if (!req->include_synonyms) continue;
        c->synonyms = kafka_arena_alloc(arena, (size_t)e.synonym_count, sizeof c->synonyms[0],
                                        _Alignof(dc_synonym));
        if (!c->synonyms) return KAFKA_ERR_ARENA;
        for (int s = 0; s < e.synonym_count; s++) {
            c->synonyms[s].name = kafka_str_from_cstr(e.synonyms[s].name);
            c->synonyms[s].value = arena_message(arena, e.synonyms[s].value);
            c->synonyms[s].source = (int8_t)e.synonyms[s].source;
        }
        c->synonyms_count = e.synonym_count;
    }
    out->configs_count = n;
    return 0;
}

static int8_t broker_config_type(enum config_type type) {
    switch (type) {
    case CONFIG_INT: return KAFKA_CONFIG_TYPE_INT;
    case CONFIG_LONG: return KAFKA_CONFIG_TYPE_LONG;
    case CONFIG_BOOL: return KAFKA_CONFIG_TYPE_BOOLEAN;
    case CONFIG_LIST: return KAFKA_CONFIG_TYPE_LIST;
    default: return KAFKA_CONFIG_TYPE_STRING;
    }
}

/* Parse a broker resource name: true when it names this node. Sets an error otherwise. */
static bool broker_name_is_self(struct control_plane *cp, struct kafka_str name,
                                int16_t *error_code, const char **message) {
    char buf[16];
    if (name.len <= 0 || name.len >= (int32_t)sizeof buf) {
        *error_code = ERR_INVALID_REQUEST;
        *message = "Broker id must be an integer";
        return false;
    }
    str_copy(buf, sizeof buf, name);
    char *end = NULL;
    long id = strtol(buf, &end, 10);
    if (*end != '\0') {
        *error_code = ERR_INVALID_REQUEST;
        *message = "Broker id must be an integer";
        return false;
    }
    if (id != cp->node_id) {
        *error_code = ERR_INVALID_REQUEST;
        *message = "Unexpected broker id";
        return false;
    }
    return true;
}

/* Broker resource: the static registry (dynamic broker configs do not exist here). An
 * empty name asks for the cluster-wide dynamic defaults, of which there are none. */
static int describe_broker(struct control_plane *cp, const struct kafka_describe_configs_request *req,
                           const struct kafka_describe_configs_request_describe_configs_resource *res,
                           struct kafka_describe_configs_response_describe_configs_result *out) {
    struct kafka_arena *arena = &cp->arena;
    if (res->resource_name.len == 0) return 0;
    const char *message = NULL;
    if (!broker_name_is_self(cp, res->resource_name, &out->error_code, &message)) {
        out->error_message = kafka_str_from_cstr(message);
        return 0;
    }
    size_t count;
    const struct config_key *keys = config_registry(&count);
    out->configs = kafka_arena_alloc(arena, count ? count : 1, sizeof out->configs[0],
                                     _Alignof(dc_entry));
    if (!out->configs) return KAFKA_ERR_ARENA;
    int32_t n = 0;
    for (size_t k = 0; k < count; k++) {
        if (!key_wanted(res, keys[k].name)) continue;
        bool set = config_source_of(cp->broker, keys[k].name) != CONFIG_SOURCE_DEFAULT;
        int8_t source = set ? KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG
                            : KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG;
        dc_entry *c = &out->configs[n++];
        memset(c, 0, sizeof *c);
        c->name = kafka_str_from_cstr(keys[k].name);
        c->value = kafka_str_from_cstr(config_get(cp->broker, keys[k].name));
        c->read_only = true; /* no dynamic broker configs */
        c->is_default = !set;
        c->config_source = source;
        c->is_sensitive = false;
        c->config_type = broker_config_type(keys[k].type);
        c->documentation = kafka_str_from_cstr(req->include_documentation ? keys[k].doc : NULL);
        c->synonyms_count = 0;
        if (!req->include_synonyms) continue;
        c->synonyms = kafka_arena_alloc(arena, 1, sizeof c->synonyms[0], _Alignof(dc_synonym));
        if (!c->synonyms) return KAFKA_ERR_ARENA;
        c->synonyms[0] = (dc_synonym){.name = c->name, .value = c->value, .source = source};
        c->synonyms_count = 1;
    }
    out->configs_count = n;
    return 0;
}

static int describe_configs(struct control_plane *cp, struct control_job *job,
                            struct kafka_reader *r, void *resp_out) {
    struct kafka_describe_configs_request req;
    int rc = kafka_describe_configs_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    if (job->api_version == 0) req.include_synonyms = false;
    struct kafka_describe_configs_response *resp = resp_out;
    kafka_describe_configs_response_init(resp, job->api_version);
    int32_t n = req.resources_count > 0 ? req.resources_count : 0;
    resp->results = kafka_arena_alloc(&cp->arena, (size_t)(n ? n : 1), sizeof resp->results[0],
                                      _Alignof(struct kafka_describe_configs_response_describe_configs_result));
    if (!resp->results) return KAFKA_ERR_ARENA;
    resp->results_count = n;
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_describe_configs_request_describe_configs_resource *res =
            &req.resources[i];
        struct kafka_describe_configs_response_describe_configs_result *out = &resp->results[i];
        memset(out, 0, sizeof *out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        out->error_message = kafka_str_from_cstr(NULL);
        if (res->resource_type == RESOURCE_TOPIC) rc = describe_topic(cp, &req, res, out);
        else if (res->resource_type == RESOURCE_BROKER) rc = describe_broker(cp, &req, res, out);
        else {
            out->error_code = ERR_INVALID_REQUEST;
            out->error_message = kafka_str_from_cstr("Unsupported resource type");
        }
        if (rc != 0) return rc;
        for (int32_t c = 0; c < out->configs_count && job->api_version >= 1; c++)
            out->configs[c].is_default = false; /* v0 only: v1+ carries config_source */
    }
    return 0;
}

/* ---- AlterConfigs and IncrementalAlterConfigs -------------------------------------- */

/* The answer for a resource that is not a topic (0 when it is one). */
static int16_t alter_non_topic(struct control_plane *cp, int8_t type, struct kafka_str name,
                               const char **message) {
    if (type == RESOURCE_TOPIC) return 0;
    int16_t ec = ERR_INVALID_REQUEST;
    if (type != RESOURCE_BROKER) {
        *message = "Unsupported resource type";
        return ec;
    }
    if (name.len != 0 && !broker_name_is_self(cp, name, &ec, message)) return ec;
    *message = "Dynamic broker configs are not supported by sluice: set broker keys in the "
               "properties file (--config) or with --set and restart";
    return ERR_INVALID_REQUEST;
}

/* Apply ops to one topic; fills error code and message. */
static int16_t alter_topic(struct control_plane *cp, struct kafka_str topic,
                           const struct topic_config_alter_op *ops, size_t op_count,
                           bool validate_only, struct kafka_str *message, bool *changed) {
    char name[CREATE_NAME_BYTES];
    str_copy(name, sizeof name, topic);
    struct catalog_result res;
    int16_t ec = catalog_alter_topic_config(&cp->catalog, name, ops, op_count, validate_only,
                                            &res);
    if (ec != 0) {
        res.message[CATALOG_MESSAGE_BYTES - 1] = '\0';
        *message = arena_message(&cp->arena, res.message);
    } else if (!validate_only) {
        *changed = true;
    }
    log_info("alter_topic_config", "name=%s ops=%zu error=%d validate_only=%d", name, op_count,
             ec, validate_only);
    return ec;
}

/* AlterConfigs replaces a topic's overrides: SET each given key, DELETE every other
 * override the topic has. A null value leaves the key unset (Kafka drops it). */
static int16_t full_replace_ops(struct control_plane *cp,
                                const struct kafka_alter_configs_request_alter_configs_resource *res,
                                struct topic_config_alter_op *ops, size_t *op_count,
                                const char **message) {
    size_t n = 0;
    int32_t given = res->configs_count > 0 ? res->configs_count : 0;
    for (int32_t i = 0; i < given; i++) {
        if (res->configs[i].value.len < 0) continue;
        if (n >= TOPIC_CONFIG_MAX_OPS - TOPIC_CONFIG_KEY_COUNT) {
            *message = "Too many configs";
            return ERR_INVALID_REQUEST;
        }
        char *k = arena_cstr(&cp->arena, res->configs[i].name);
        char *v = arena_cstr(&cp->arena, res->configs[i].value);
        if (!k || !v) return CATALOG_ERR_UNKNOWN_SERVER_ERROR;
        ops[n++] = (struct topic_config_alter_op){.name = k, .op = TOPIC_CONFIG_OP_SET, .value = v};
    }
    size_t def_count;
    const struct topic_config_def *defs = topic_config_defs(&def_count);
    for (size_t k = 0; k < def_count; k++) {
        bool named = false;
        for (int32_t i = 0; i < given && !named; i++)
            named = res->configs[i].value.len >= 0 &&
                    kafka_str_equals_cstr(res->configs[i].name, defs[k].name);
        if (named) continue;
        assert(n < TOPIC_CONFIG_MAX_OPS);
        ops[n++] = (struct topic_config_alter_op){.name = defs[k].name,
                                                  .op = TOPIC_CONFIG_OP_DELETE, .value = NULL};
    }
    *op_count = n;
    return 0;
}

static int alter_configs(struct control_plane *cp, struct control_job *job,
                         struct kafka_reader *r, void *resp_out) {
    struct kafka_alter_configs_request req;
    int rc = kafka_alter_configs_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_alter_configs_response *resp = resp_out;
    kafka_alter_configs_response_init(resp, job->api_version);
    int32_t n = req.resources_count > 0 ? req.resources_count : 0;
    resp->responses = kafka_arena_alloc(&cp->arena, (size_t)(n ? n : 1), sizeof resp->responses[0],
                                        _Alignof(struct kafka_alter_configs_response_alter_configs_resource_response));
    if (!resp->responses) return KAFKA_ERR_ARENA;
    resp->responses_count = n;
    bool changed = false;
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_alter_configs_request_alter_configs_resource *res = &req.resources[i];
        struct kafka_alter_configs_response_alter_configs_resource_response *out =
            &resp->responses[i];
        memset(out, 0, sizeof *out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        out->error_message = kafka_str_from_cstr(NULL);
        const char *message = NULL;
        out->error_code = alter_non_topic(cp, res->resource_type, res->resource_name, &message);
        if (out->error_code == 0) {
            struct topic_config_alter_op ops[TOPIC_CONFIG_MAX_OPS];
            size_t op_count = 0;
            out->error_code = full_replace_ops(cp, res, ops, &op_count, &message);
            if (out->error_code == 0)
                out->error_code = alter_topic(cp, res->resource_name, ops, op_count,
                                              req.validate_only, &out->error_message, &changed);
        }
        if (message) out->error_message = kafka_str_from_cstr(message);
    }
    if (changed) publish(cp);
    return 0;
}

static int16_t incremental_ops(struct control_plane *cp,
                               const struct kafka_incremental_alter_configs_request_alter_configs_resource *res,
                               struct topic_config_alter_op *ops, size_t *op_count,
                               const char **message) {
    int32_t n = res->configs_count > 0 ? res->configs_count : 0;
    if (n > TOPIC_CONFIG_MAX_OPS) {
        *message = "Too many configs";
        return ERR_INVALID_REQUEST;
    }
    for (int32_t i = 0; i < n; i++) {
        int8_t op = res->configs[i].config_operation;
        if (op < TOPIC_CONFIG_OP_SET || op > TOPIC_CONFIG_OP_SUBTRACT) {
            *message = "Unknown config operation";
            return ERR_INVALID_REQUEST;
        }
        char *k = arena_cstr(&cp->arena, res->configs[i].name);
        char *v = res->configs[i].value.len >= 0 ? arena_cstr(&cp->arena, res->configs[i].value)
                                                 : NULL;
        if (!k || (res->configs[i].value.len >= 0 && !v)) return CATALOG_ERR_UNKNOWN_SERVER_ERROR;
        ops[i] = (struct topic_config_alter_op){.name = k, .op = (enum topic_config_op)op,
                                                .value = v};
    }
    *op_count = (size_t)n;
    return 0;
}

static int incremental_alter_configs(struct control_plane *cp, struct control_job *job,
                                     struct kafka_reader *r, void *resp_out) {
    struct kafka_incremental_alter_configs_request req;
    int rc = kafka_incremental_alter_configs_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_incremental_alter_configs_response *resp = resp_out;
    kafka_incremental_alter_configs_response_init(resp, job->api_version);
    int32_t n = req.resources_count > 0 ? req.resources_count : 0;
    resp->responses = kafka_arena_alloc(&cp->arena, (size_t)(n ? n : 1), sizeof resp->responses[0],
                                        _Alignof(struct kafka_incremental_alter_configs_response_alter_configs_resource_response));
    if (!resp->responses) return KAFKA_ERR_ARENA;
    resp->responses_count = n;
    bool changed = false;
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_incremental_alter_configs_request_alter_configs_resource *res =
            &req.resources[i];
        struct kafka_incremental_alter_configs_response_alter_configs_resource_response *out =
            &resp->responses[i];
        memset(out, 0, sizeof *out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        out->error_message = kafka_str_from_cstr(NULL);
        const char *message = NULL;
        out->error_code = alter_non_topic(cp, res->resource_type, res->resource_name, &message);
        if (out->error_code == 0) {
            struct topic_config_alter_op ops[TOPIC_CONFIG_MAX_OPS];
            size_t op_count = 0;
            out->error_code = incremental_ops(cp, res, ops, &op_count, &message);
            if (out->error_code == 0)
                out->error_code = alter_topic(cp, res->resource_name, ops, op_count,
                                              req.validate_only, &out->error_message, &changed);
        }
        if (message) out->error_message = kafka_str_from_cstr(message);
    }
    if (changed) publish(cp);
    return 0;
}

/* ---- CreatePartitions -------------------------------------------------------------- */

static int create_partitions(struct control_plane *cp, struct control_job *job,
                             struct kafka_reader *r, void *resp_out) {
    struct kafka_create_partitions_request req;
    int rc = kafka_create_partitions_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_create_partitions_response *resp = resp_out;
    kafka_create_partitions_response_init(resp, job->api_version);
    int32_t n = req.topics_count > 0 ? req.topics_count : 0;
    resp->results = kafka_arena_alloc(&cp->arena, (size_t)(n ? n : 1), sizeof resp->results[0],
                                      _Alignof(struct kafka_create_partitions_response_create_partitions_topic_result));
    if (!resp->results) return KAFKA_ERR_ARENA;
    resp->results_count = n;
    bool changed = false;
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_create_partitions_request_create_partitions_topic *t = &req.topics[i];
        struct kafka_create_partitions_response_create_partitions_topic_result *out =
            &resp->results[i];
        memset(out, 0, sizeof *out);
        out->name = t->name;
        out->error_message = kafka_str_from_cstr(NULL);
        bool dup = false;
        for (int32_t j = 0; j < n; j++)
            dup = dup || (j != i && kafka_str_equals(req.topics[j].name, t->name));
        if (dup) {
            out->error_code = ERR_INVALID_REQUEST;
            out->error_message = kafka_str_from_cstr("Duplicate topic in request.");
            continue;
        }
        if (t->assignments_count > 0) { /* placement is the broker's: hash mod shards */
            out->error_code = ERR_INVALID_REPLICA_ASSIGNMENT;
            out->error_message = kafka_str_from_cstr(
                "Manual partition assignment is not supported by sluice");
            continue;
        }
        char name[CREATE_NAME_BYTES];
        str_copy(name, sizeof name, t->name);
        struct catalog_result res;
        out->error_code = catalog_create_partitions(&cp->catalog, name, t->count,
                                                    req.validate_only, &res);
        if (out->error_code != 0) {
            res.message[CATALOG_MESSAGE_BYTES - 1] = '\0';
            out->error_message = arena_message(&cp->arena, res.message);
        } else if (!req.validate_only) {
            changed = true;
        }
        log_info("create_partitions", "name=%s count=%d error=%d validate_only=%d", name,
                 t->count, out->error_code, req.validate_only);
    }
    if (changed) publish(cp);
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------- */

/* Decode, act, and encode the response body into job->response. */
/* ---- InitProducerId (control/producer_ids.c) --------------------------------------- */

static int init_producer_id(struct control_plane *cp, struct control_job *job,
                            struct kafka_reader *r, void *resp_out) {
    struct kafka_init_producer_id_request req;
    int rc = kafka_init_producer_id_request_decode(r, job->api_version, &req, &cp->arena);
    if (rc != 0) return rc;
    struct kafka_init_producer_id_response *resp = resp_out;
    kafka_init_producer_id_response_init(resp, job->api_version);
    if (req.transactional_id.len > 0) /* transactional: txn_api.c */
        return txn_api_init_producer(cp->txns, job, &req, resp);
    producer_ids_init_producer(&cp->producer_ids, &req, resp);
    return 0;
}

static void encode_job(struct control_job *job, int rc, const void *resp);

/* Returns false when the job was parked: the group APIs answer it later through
 * control_plane_answer(). */
static bool execute_job(struct control_plane *cp, struct control_job *job) {
    kafka_arena_reset(&cp->arena);
    struct kafka_reader r;
    kafka_reader_init(&r, job->request, job->request_bytes);
    union kafka_response_any resp;
    int rc;
    switch (job->api_key) {
    case KAFKA_API_CREATE_TOPICS: rc = create_topics(cp, job, &r, &resp); break;
    case KAFKA_API_DELETE_TOPICS: rc = delete_topics(cp, job, &r, &resp); break;
    case KAFKA_API_DESCRIBE_CONFIGS: rc = describe_configs(cp, job, &r, &resp); break;
    case KAFKA_API_ALTER_CONFIGS: rc = alter_configs(cp, job, &r, &resp); break;
    case KAFKA_API_INCREMENTAL_ALTER_CONFIGS:
        rc = incremental_alter_configs(cp, job, &r, &resp);
        break;
    case KAFKA_API_CREATE_PARTITIONS: rc = create_partitions(cp, job, &r, &resp); break;
    case KAFKA_API_INIT_PRODUCER_ID: rc = init_producer_id(cp, job, &r, &resp); break;
    default:
        rc = group_api_handles(job->api_key) ? group_api_execute(cp->groups, job, &r, &resp)
             : txn_api_handles(job->api_key) ? txn_api_execute(cp->txns, job, &r, &resp)
                                             : KAFKA_ERR_UNKNOWN_API;
    }
    if (rc == GROUP_API_PARKED) return false;
    encode_job(job, rc, &resp);
    return true;
}

/* Encode resp into job->response (NULL on failure: the connection closes). */
static void encode_job(struct control_job *job, int rc, const void *resp) {
    if (rc == 0) {
        struct kafka_writer sizer;
        kafka_writer_init_sizer(&sizer);
        rc = kafka_response_encode(job->api_key, job->api_version, &sizer, resp);
        size_t need = kafka_writer_size(&sizer);
        job->response = rc == 0 ? malloc(need ? need : 1) : NULL;
        if (job->response) {
            struct kafka_writer w;
            kafka_writer_init(&w, job->response, need);
            rc = kafka_response_encode(job->api_key, job->api_version, &w, resp);
            job->response_bytes = (uint32_t)w.len_bytes;
        }
    }
    if (rc != 0 || !job->response) { /* the connection closes, as for a bad request */
        log_warn("control_request_failed", "api_key=%d version=%d err=%s", job->api_key,
                 job->api_version, kafka_err_str(rc));
        free(job->response);
        job->response = NULL;
    }
}

static void reply(struct control_plane *cp, struct control_job *job) {
    struct shard_msg m = {.type = ROUTER_MSG_CONTROL_REPLY, .ptr = job};
    int control = mesh_control_id(cp->mesh);
    if (!cp->retry_first && mesh_send(cp->mesh, control, job->origin_shard, &m)) return;
    job->next = NULL;
    if (cp->retry_last) cp->retry_last->next = job;
    else cp->retry_first = job;
    cp->retry_last = job;
}

void control_plane_answer(struct control_plane *cp, struct control_job *job, const void *resp) {
    encode_job(job, resp ? 0 : KAFKA_ERR_ARENA, resp);
    reply(cp, job);
}

void control_plane_publish(struct control_plane *cp) { publish(cp); }

static void auto_create(struct control_plane *cp, char *name) {
    struct catalog_create_request req = {.name = name, .partition_count = -1,
                                         .replication_factor = -1};
    struct catalog_result res;
    int16_t ec = catalog_create_topic(&cp->catalog, &req, false, &res);
    log_info("auto_create_topic", "name=%s error=%d", name, ec);
    if (ec == 0) publish(cp);
    free(name);
}

/* ---- appends to internal topics (on their owner shards) ---------------------------- */

static bool append_send(struct control_plane *cp, struct internal_append_job *job) {
    struct shard_msg m = {.type = ROUTER_MSG_INTERNAL_APPEND, .ptr = job};
    return mesh_send(cp->mesh, mesh_control_id(cp->mesh), job->owner_shard, &m);
}

int16_t control_plane_internal_append(struct control_plane *cp, struct internal_append_job *job) {
    const struct catalog_topic *t = catalog_find_id(&cp->catalog, job->topic_id);
    if (!t || job->partition < 0 || job->partition >= t->partition_count)
        return KAFKA_ERROR_UNKNOWN_TOPIC_OR_PARTITION;
    if (cp->appends_in_flight >= ROUTER_MAX_INTERNAL_APPENDS) {
        log_warn("internal_append_busy", "in_flight=%u", cp->appends_in_flight);
        return CATALOG_ERR_KAFKA_STORAGE_ERROR;
    }
    assert(job->done);
    job->owner_shard = t->partition_shard[job->partition];
    job->next = NULL;
    cp->appends_in_flight++;
    if (!cp->append_first && append_send(cp, job)) return 0;
    if (cp->append_last) cp->append_last->next = job;
    else cp->append_first = job;
    cp->append_last = job;
    return 0;
}

static void append_retry(struct control_plane *cp) {
    while (cp->append_first && append_send(cp, cp->append_first)) {
        cp->append_first = cp->append_first->next;
        if (!cp->append_first) cp->append_last = NULL;
    }
}

static void append_answered(struct control_plane *cp, struct internal_append_job *job) {
    assert(cp->appends_in_flight > 0);
    cp->appends_in_flight--;
    job->done(job);
}

void control_plane_on_message(struct control_plane *cp, const struct shard_msg *msg) {
    switch (msg->type) {
    case ROUTER_MSG_CONTROL_REQ:
        if (execute_job(cp, msg->ptr)) reply(cp, msg->ptr);
        break;
    case ROUTER_MSG_AUTO_CREATE:
        auto_create(cp, msg->ptr);
        break;
    case ROUTER_MSG_INTERNAL_APPEND_DONE:
        append_answered(cp, msg->ptr);
        break;
    default:
        log_debug("control_message", "type=%d from=%d", msg->type, msg->from);
    }
}

void control_plane_tick(struct control_plane *cp) {
    int control = mesh_control_id(cp->mesh);
    while (cp->retry_first) {
        struct control_job *job = cp->retry_first;
        struct shard_msg m = {.type = ROUTER_MSG_CONTROL_REPLY, .ptr = job};
        if (!mesh_send(cp->mesh, control, job->origin_shard, &m)) break;
        cp->retry_first = job->next;
        if (!cp->retry_first) cp->retry_last = NULL;
    }
    append_retry(cp);
    if (cp->groups) group_api_tick(cp->groups);
    if (cp->txns) txn_api_tick(cp->txns);
    if (cp->publish_pending) publish(cp);
    catalog_publisher_reclaim(&cp->publisher);
}
