/* router_metadata.c - Metadata, answered on the connection's shard from its catalogue
 * snapshot: this one broker, every (or each named) topic with its partitions led by this
 * node. A named topic that does not exist is auto-created when the broker allows it: the
 * request goes to control (ROUTER_MSG_AUTO_CREATE, best effort) and the answer is
 * LEADER_NOT_AVAILABLE at once, as Kafka answers while a topic is being created. */
#include "dataplane/router_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/log.h"

/* ---- Metadata ---------------------------------------------------------------------- */

static bool topic_name_legal(struct kafka_str n) {
    if (n.len <= 0 || n.len > 249) return false;
    if ((n.len == 1 && n.ptr[0] == '.') || (n.len == 2 && n.ptr[0] == '.' && n.ptr[1] == '.'))
        return false;
    for (int32_t i = 0; i < n.len; i++) {
        char c = n.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static void request_auto_create(struct router *r, struct kafka_str name) {
    char *copy = malloc((size_t)name.len + 1);
    if (!copy) return;
    memcpy(copy, name.ptr, (size_t)name.len);
    copy[name.len] = '\0';
    struct shard_msg m = {.type = ROUTER_MSG_AUTO_CREATE, .ptr = copy};
    /* Best effort and never queued: a full ring drops the request, and the client, told
     * LEADER_NOT_AVAILABLE, asks again (so a flood of names cannot grow the outbox). */
    if (r->outbox_count > 0 || !mesh_send(r->cfg.mesh, r->cfg.shard_id,
                                          mesh_control_id(r->cfg.mesh), &m))
        free(copy);
}

/* Every partition of every topic is alike here (led by this node, replicas = isr =
 * [this node], epoch 0) but for its index, so all topics share one array of the largest
 * partition count: the arena holds one array per response, not one per topic. */
static struct kafka_metadata_response_metadata_response_partition *shared_partitions(
    struct handler_ctx *ctx, int32_t count) {
    struct kafka_metadata_response_metadata_response_partition *parts = kafka_arena_alloc(
        ctx->arena, (size_t)(count ? count : 1), sizeof parts[0],
        _Alignof(struct kafka_metadata_response_metadata_response_partition));
    int32_t *node = kafka_arena_alloc(ctx->arena, 1, sizeof *node, _Alignof(int32_t));
    if (!parts || !node) return NULL;
    *node = ctx->identity->node_id;
    for (int32_t p = 0; p < count; p++) {
        struct kafka_metadata_response_metadata_response_partition *x = &parts[p];
        memset(x, 0, sizeof *x);
        x->partition_index = p;
        x->leader_id = *node;
        x->leader_epoch = 0;
        x->replica_nodes = node;
        x->replica_nodes_count = 1;
        x->isr_nodes = node;
        x->isr_nodes_count = 1;
        x->offline_replicas = NULL;
        x->offline_replicas_count = 0;
    }
    return parts;
}

static void fill_topic(const struct topic_info *t,
                       struct kafka_metadata_response_metadata_response_partition *parts,
                       struct kafka_metadata_response_metadata_response_topic *out) {
    out->error_code = 0;
    out->name = kafka_str_from_cstr(t->name);
    memcpy(out->topic_id.bytes, t->id, 16);
    out->is_internal = t->internal;
    out->topic_authorized_operations = INT32_MIN;
    out->partitions_count = t->partition_count;
    out->partitions = parts;
}

int router_handle_metadata(struct handler_ctx *ctx, const struct kafka_request_header *hdr,
                           struct kafka_reader *body, struct kafka_writer *w) {
    struct router *r = router_of_ctx(ctx);
    int16_t version = hdr->request_api_version;
    struct kafka_metadata_request req;
    int rc = kafka_metadata_request_decode(body, version, &req, ctx->arena);
    if (rc != 0) return rc;
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp, version);
    if (handlers_metadata_self(ctx, &resp) != 0) return KAFKA_ERR_ARENA;
    /* No refresh here: the handler may run again to size the response and must see the
     * same snapshot (the loop refreshes before reading any request). */
    /* v0: an empty list means all topics; v1+: null means all. */
    bool all = req.topics_count < 0 || (version == 0 && req.topics_count == 0);
    size_t n = all ? r->cfg.topics.count(r->cfg.topics.reader) : (size_t)req.topics_count;
    resp.topics_count = (int32_t)n;
    resp.topics = kafka_arena_alloc(ctx->arena, n ? n : 1, sizeof resp.topics[0],
                                    _Alignof(struct kafka_metadata_response_metadata_response_topic));
    if (!resp.topics) return KAFKA_ERR_ARENA;
    bool may_create = r->cfg.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    int32_t max_partitions = 0;
    for (size_t i = 0; i < n; i++) {
        struct kafka_metadata_response_metadata_response_topic *t = &resp.topics[i];
        memset(t, 0, sizeof *t);
        t->topic_authorized_operations = INT32_MIN;
        struct topic_info info;
        bool found;
        if (all) {
            found = r->cfg.topics.at(r->cfg.topics.reader, i, &info);
        } else {
            struct kafka_str name = req.topics[i].name;
            t->name = name;
            t->topic_id = req.topics[i].topic_id;
            found = name.len >= 0
                        ? r->cfg.topics.find(r->cfg.topics.reader, name.ptr, (size_t)name.len, &info)
                        : r->cfg.topics.find_id(r->cfg.topics.reader, req.topics[i].topic_id.bytes,
                                                &info);
            if (!found) {
                if (name.len < 0) {
                    t->error_code = ERR_UNKNOWN_TOPIC_ID;
                    if (version < 12) t->name = kafka_str_from_cstr("");
                } else if (!topic_name_legal(name)) {
                    t->error_code = ERR_INVALID_TOPIC;
                } else if (may_create) {
                    if (w->buf) request_auto_create(r, name); /* not from the sizing pass */
                    t->error_code = ERR_LEADER_NOT_AVAILABLE;
                } else {
                    t->error_code = ERR_UNKNOWN_TOPIC_OR_PARTITION;
                }
                continue;
            }
        }
        if (found) {
            fill_topic(&info, NULL, t);
            if (info.partition_count > max_partitions) max_partitions = info.partition_count;
        }
    }
    struct kafka_metadata_response_metadata_response_partition *parts =
        shared_partitions(ctx, max_partitions);
    if (!parts) return KAFKA_ERR_ARENA;
    for (size_t i = 0; i < n; i++)
        if (resp.topics[i].partitions_count > 0) resp.topics[i].partitions = parts;
    return kafka_metadata_response_encode(w, version, &resp);
}
