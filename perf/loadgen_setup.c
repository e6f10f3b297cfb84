/* loadgen_setup.c - blocking admin round trips before a run (see loadgen_setup.h).
 *
 * One plain blocking socket with a receive timeout, one request at a time. The
 * versions chosen are the highest both sides speak, capped where a later version
 * changes what the load generator would have to send (Fetch v13 names topics by id). */
#include "perf/loadgen_setup.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SETUP_FRAME_MAX_BYTES (16u << 20)
#define SETUP_ARENA_BYTES (8u << 20)
#define SETUP_REQUEST_MAX_BYTES (1u << 20)
#define SETUP_TIMEOUT_S 15

struct admin {
    int fd;
    int32_t next_correlation_id;
    uint8_t *frame;        /* SETUP_FRAME_MAX_BYTES: the last response */
    uint8_t *out;          /* SETUP_REQUEST_MAX_BYTES: the request being sent */
    uint8_t *arena_mem;
    struct kafka_arena arena;
    char *err;
    size_t err_bytes;
};

static int admin_open(struct admin *a, const char *host, uint16_t port) {
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port_s, &hints, &res) != 0 || !res) {
        snprintf(a->err, a->err_bytes, "cannot resolve %s", host);
        return -1;
    }
    a->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = a->fd >= 0 ? connect(a->fd, res->ai_addr, res->ai_addrlen) : -1;
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(a->err, a->err_bytes, "connect %s:%u: %s", host, port, strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = SETUP_TIMEOUT_S};
    setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static int io_full(int fd, uint8_t *p, size_t n, int is_write) {
    while (n > 0) {
        ssize_t k = is_write ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Send one request and decode its response into resp. */
static int admin_call(struct admin *a, int16_t api, int16_t version, const void *req,
                      void *resp) {
    uint8_t *out = a->out;
    struct kafka_writer w;
    kafka_writer_init(&w, out, SETUP_REQUEST_MAX_BYTES);
    int32_t corr = a->next_correlation_id++;
    int rc = lg_request_encode(&w, api, version, corr, req);
    if (rc != 0) {
        snprintf(a->err, a->err_bytes, "encode api %d v%d: %s", api, version, kafka_err_str(rc));
        return -1;
    }
    uint8_t size_be[4];
    if (io_full(a->fd, out, w.len_bytes, 1) != 0 || io_full(a->fd, size_be, 4, 0) != 0) {
        snprintf(a->err, a->err_bytes, "api %d: connection failed: %s", api, strerror(errno));
        return -1;
    }
    uint32_t size = ((uint32_t)size_be[0] << 24) | ((uint32_t)size_be[1] << 16) |
                    ((uint32_t)size_be[2] << 8) | size_be[3];
    if (size > SETUP_FRAME_MAX_BYTES || io_full(a->fd, a->frame, size, 0) != 0) {
        snprintf(a->err, a->err_bytes, "api %d: bad or short response (%u bytes)", api, size);
        return -1;
    }
    kafka_arena_reset(&a->arena);
    int32_t got_corr;
    rc = lg_response_decode(a->frame, size, api, version, &got_corr, resp, &a->arena);
    if (rc != 0 || got_corr != corr) {
        snprintf(a->err, a->err_bytes, "api %d v%d: response does not decode (%s)", api,
                 version, rc ? kafka_err_str(rc) : "correlation id");
        return -1;
    }
    return 0;
}

static int16_t pick(const struct kafka_api_versions_response *r, int16_t api, int16_t lo,
                    int16_t hi) {
    for (int32_t i = 0; i < r->api_keys_count; i++) {
        const struct kafka_api_versions_response_api_version *k = &r->api_keys[i];
        if (k->api_key != api) continue;
        int16_t v = k->max_version < hi ? k->max_version : hi;
        return v >= lo && v >= k->min_version ? v : -1;
    }
    return -1;
}

static int fetch_versions(struct admin *a, struct lg_versions *v) {
    struct kafka_api_versions_request req;
    kafka_api_versions_request_init(&req, 0);
    struct kafka_api_versions_response resp;
    if (admin_call(a, KAFKA_API_API_VERSIONS, 0, &req, &resp) != 0) return -1;
    if (resp.error_code != 0) {
        snprintf(a->err, a->err_bytes, "ApiVersions error %d", resp.error_code);
        return -1;
    }
    v->produce = pick(&resp, KAFKA_API_PRODUCE, 3, 9);
    v->fetch = pick(&resp, KAFKA_API_FETCH, 4, 12);
    v->list_offsets = pick(&resp, KAFKA_API_LIST_OFFSETS, 1, 7);
    v->metadata = pick(&resp, KAFKA_API_METADATA, 1, 12);
    v->create_topics = pick(&resp, KAFKA_API_CREATE_TOPICS, 0, 7);
    /* groups: JoinGroup v4+ (MEMBER_ID_REQUIRED); capped below the versions that batch
     * keys (FindCoordinator v4, OffsetFetch v8) or are KIP-848's (OffsetCommit v9) */
    v->find_coordinator = pick(&resp, KAFKA_API_FIND_COORDINATOR, 1, 3);
    v->join_group = pick(&resp, KAFKA_API_JOIN_GROUP, 4, 7);
    v->sync_group = pick(&resp, KAFKA_API_SYNC_GROUP, 1, 5);
    v->heartbeat = pick(&resp, KAFKA_API_HEARTBEAT, 1, 4);
    v->leave_group = pick(&resp, KAFKA_API_LEAVE_GROUP, 1, 4);
    v->offset_commit = pick(&resp, KAFKA_API_OFFSET_COMMIT, 2, 8);
    v->offset_fetch = pick(&resp, KAFKA_API_OFFSET_FETCH, 1, 7);
    if (v->produce < 0 || v->fetch < 0 || v->list_offsets < 0 || v->metadata < 0) {
        snprintf(a->err, a->err_bytes,
                 "broker lacks Produce v3+, Fetch v4+, ListOffsets v1+ or Metadata v1+");
        return -1;
    }
    return 0;
}

/* Metadata for every topic; fills partition counts. Returns the number of topics that
 * are missing (UNKNOWN_TOPIC_OR_PARTITION) or not ready (no leader yet), -1 on error. */
static int fetch_metadata(struct admin *a, const struct lg_versions *v, struct lg_cluster *c) {
    struct kafka_metadata_request req;
    kafka_metadata_request_init(&req, v->metadata);
    struct kafka_metadata_request_metadata_request_topic topics[LG_MAX_TOPICS];
    memset(topics, 0, sizeof topics);
    for (uint32_t i = 0; i < c->topic_count; i++)
        topics[i].name = kafka_str_from_cstr(c->topics[i].name);
    req.topics = topics;
    req.topics_count = (int32_t)c->topic_count;
    req.allow_auto_topic_creation = false;
    struct kafka_metadata_response resp;
    if (admin_call(a, KAFKA_API_METADATA, v->metadata, &req, &resp) != 0) return -1;
    int missing = 0;
    for (uint32_t i = 0; i < c->topic_count; i++) {
        c->topics[i].partitions = 0;
        for (int32_t t = 0; t < resp.topics_count; t++) {
            const struct kafka_metadata_response_metadata_response_topic *mt = &resp.topics[t];
            if (!kafka_str_equals_cstr(mt->name, c->topics[i].name)) continue;
            if (mt->error_code != 0 || mt->partitions_count <= 0) break;
            bool ready = true;
            for (int32_t p = 0; p < mt->partitions_count; p++)
                if (mt->partitions[p].error_code != 0 || mt->partitions[p].leader_id < 0)
                    ready = false;
            if (ready) c->topics[i].partitions = (uint32_t)mt->partitions_count;
        }
        if (c->topics[i].partitions == 0) missing++;
    }
    return missing;
}

static int create_topics(struct admin *a, const struct lg_options *o, struct lg_cluster *c) {
    if (c->versions.create_topics < 0) {
        snprintf(a->err, a->err_bytes, "topics missing and the broker has no CreateTopics");
        return -1;
    }
    struct kafka_create_topics_request req;
    kafka_create_topics_request_init(&req, c->versions.create_topics);
    struct kafka_create_topics_request_creatable_topic topics[LG_MAX_TOPICS];
    memset(topics, 0, sizeof topics);
    int32_t n = 0;
    for (uint32_t i = 0; i < c->topic_count; i++) {
        if (c->topics[i].partitions != 0) continue;
        topics[n].name = kafka_str_from_cstr(c->topics[i].name);
        topics[n].num_partitions = (int32_t)o->partitions;
        topics[n].replication_factor = o->replication_factor;
        n++;
    }
    req.topics = topics;
    req.topics_count = n;
    req.timeout_ms = 10000;
    struct kafka_create_topics_response resp;
    if (admin_call(a, KAFKA_API_CREATE_TOPICS, c->versions.create_topics, &req, &resp) != 0)
        return -1;
    for (int32_t t = 0; t < resp.topics_count; t++) {
        int16_t ec = resp.topics[t].error_code;
        if (ec != 0 && ec != 36 /* TOPIC_ALREADY_EXISTS */) {
            snprintf(a->err, a->err_bytes, "CreateTopics %.*s: error %d",
                     (int)resp.topics[t].name.len, resp.topics[t].name.ptr, ec);
            return -1;
        }
    }
    return 0;
}

static int list_offsets(struct admin *a, const struct lg_options *o, struct lg_cluster *c) {
    int64_t ts = o->consume_from == LG_FROM_EARLIEST ? -2 : -1;
    int16_t ver = c->versions.list_offsets;
    for (uint32_t i = 0; i < c->topic_count; i++) {
        struct lg_topic *t = &c->topics[i];
        struct kafka_list_offsets_request req;
        kafka_list_offsets_request_init(&req, ver);
        req.replica_id = -1;
        struct kafka_list_offsets_request_list_offsets_topic lt = {
            .name = kafka_str_from_cstr(t->name),
            .partitions_count = (int32_t)t->partitions,
        };
        lt.partitions = calloc(t->partitions, sizeof lt.partitions[0]);
        if (!lt.partitions) return -1;
        for (uint32_t p = 0; p < t->partitions; p++) {
            lt.partitions[p].partition_index = (int32_t)p;
            lt.partitions[p].current_leader_epoch = -1;
            lt.partitions[p].timestamp = ts;
            lt.partitions[p].max_num_offsets = 1;
        }
        req.topics = &lt;
        req.topics_count = 1;
        struct kafka_list_offsets_response resp;
        int rc = admin_call(a, KAFKA_API_LIST_OFFSETS, ver, &req, &resp);
        free(lt.partitions);
        if (rc != 0) return -1;
        uint32_t found = 0;
        for (int32_t rt = 0; rt < resp.topics_count; rt++)
            for (int32_t rp = 0; rp < resp.topics[rt].partitions_count; rp++) {
                const struct kafka_list_offsets_response_list_offsets_partition_response *pr =
                    &resp.topics[rt].partitions[rp];
                if (pr->error_code != 0 || pr->partition_index < 0 ||
                    (uint32_t)pr->partition_index >= t->partitions) {
                    snprintf(a->err, a->err_bytes, "ListOffsets %s/%d: error %d", t->name,
                             pr->partition_index, pr->error_code);
                    return -1;
                }
                t->start_offsets[pr->partition_index] = pr->offset;
                found++;
            }
        if (found != t->partitions) {
            snprintf(a->err, a->err_bytes, "ListOffsets %s: %u of %u partitions answered",
                     t->name, found, t->partitions);
            return -1;
        }
    }
    return 0;
}

static void sleep_ms(long ms);

/* --group: the coordinator's address (resolved here: the workers connect by address). */
static int find_coordinator(struct admin *a, const struct lg_options *o, struct lg_cluster *c) {
    const struct lg_versions *v = &c->versions;
    if (v->find_coordinator < 0 || v->join_group < 0 || v->sync_group < 0 ||
        v->heartbeat < 0 || v->leave_group < 0 || v->offset_commit < 0 || v->offset_fetch < 0) {
        snprintf(a->err, a->err_bytes, "--group: the broker lacks the group APIs "
                 "(FindCoordinator v1+, JoinGroup v4+, SyncGroup v1+, OffsetCommit v2+ ...)");
        return -1;
    }
    struct kafka_find_coordinator_request req;
    kafka_find_coordinator_request_init(&req, v->find_coordinator);
    req.key = kafka_str_from_cstr(o->group);
    req.key_type = 0; /* a group */
    struct kafka_find_coordinator_response resp;
    for (int tries = 0;; tries++) { /* the coordinator may still be loading: 10 s */
        if (admin_call(a, KAFKA_API_FIND_COORDINATOR, v->find_coordinator, &req, &resp) != 0)
            return -1;
        if (resp.error_code == 0) break;
        if ((resp.error_code != 14 && resp.error_code != 15) || tries == 100) {
            snprintf(a->err, a->err_bytes, "FindCoordinator %s: error %d", o->group,
                     resp.error_code);
            return -1;
        }
        sleep_ms(100);
    }
    char host[256], port_s[8];
    snprintf(host, sizeof host, "%.*s", resp.host.len > 0 ? (int)resp.host.len : 0,
             resp.host.ptr ? resp.host.ptr : "");
    snprintf(port_s, sizeof port_s, "%d", (int)resp.port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (resp.port <= 0 || resp.port > 65535 || getaddrinfo(host, port_s, &hints, &res) != 0 ||
        !res) {
        snprintf(a->err, a->err_bytes, "coordinator %s:%d does not resolve", host, resp.port);
        return -1;
    }
    const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
    inet_ntop(AF_INET, &sin->sin_addr, c->coordinator_host, sizeof c->coordinator_host);
    c->coordinator_port = (uint16_t)resp.port;
    freeaddrinfo(res);
    return 0;
}

static int admin_init(struct admin *a, const struct lg_options *o, char *err, size_t err_bytes) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->err = err;
    a->err_bytes = err_bytes;
    a->next_correlation_id = 1;
    a->frame = malloc(SETUP_FRAME_MAX_BYTES);
    a->arena_mem = malloc(SETUP_ARENA_BYTES);
    a->out = malloc(SETUP_REQUEST_MAX_BYTES);
    if (!a->frame || !a->arena_mem || !a->out) {
        snprintf(err, err_bytes, "out of memory");
        return -1;
    }
    kafka_arena_init(&a->arena, a->arena_mem, SETUP_ARENA_BYTES);
    return admin_open(a, o->host, o->port);
}

static void admin_close(struct admin *a) {
    if (a->fd >= 0) close(a->fd);
    free(a->frame);
    free(a->arena_mem);
    free(a->out);
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int lg_setup(const struct lg_options *o, struct lg_cluster *c, char *err, size_t err_bytes) {
    memset(c, 0, sizeof *c);
    c->topic_count = o->topics;
    for (uint32_t i = 0; i < o->topics; i++) {
        /* the topic option is at most 179 bytes, so "-<i>" always fits */
        int n = o->topics == 1 ? snprintf(c->topics[i].name, LG_TOPIC_NAME_BYTES, "%.180s", o->topic)
                               : snprintf(c->topics[i].name, LG_TOPIC_NAME_BYTES, "%.180s-%u",
                                          o->topic, i % 1000);
        assert(n > 0 && n < LG_TOPIC_NAME_BYTES);
    }
    struct admin a;
    int rc = admin_init(&a, o, err, err_bytes);
    if (rc == 0) rc = fetch_versions(&a, &c->versions);
    int missing = rc == 0 ? fetch_metadata(&a, &c->versions, c) : -1;
    if (missing > 0 && o->create_topics) {
        if (create_topics(&a, o, c) != 0) missing = -1;
        for (int tries = 0; missing > 0 && tries < 100; tries++) { /* 10 s for leaders */
            sleep_ms(100);
            missing = fetch_metadata(&a, &c->versions, c);
        }
    }
    if (missing > 0) snprintf(err, err_bytes, "%d topic(s) missing or without leaders", missing);
    rc = missing == 0 ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < c->topic_count; i++) {
        c->topics[i].start_offsets = calloc(c->topics[i].partitions, sizeof(int64_t));
        if (!c->topics[i].start_offsets) rc = -1;
    }
    if (rc == 0) rc = list_offsets(&a, o, c);
    if (rc == 0 && o->group[0]) rc = find_coordinator(&a, o, c);
    admin_close(&a);
    return rc;
}

int lg_setup_offsets(const struct lg_options *o, struct lg_cluster *c, char *err,
                     size_t err_bytes) {
    struct admin a;
    int rc = admin_init(&a, o, err, err_bytes);
    if (rc == 0) rc = list_offsets(&a, o, c);
    admin_close(&a);
    return rc;
}

void lg_cluster_destroy(struct lg_cluster *c) {
    for (uint32_t i = 0; i < c->topic_count; i++) {
        free(c->topics[i].start_offsets);
        c->topics[i].start_offsets = NULL;
    }
}
