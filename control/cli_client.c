/* cli_client.c - the admin CLI's blocking Kafka client (see cli_client.h).
 *
 * A request is one frame: int32 size, request header (v0-v2 as the API/version needs),
 * body; the answer is one frame: int32 size, response header (v0 or v1), body. The CLI
 * never pipelines, so the answer's correlation id must be the one just sent. Sockets are
 * blocking with SO_RCVTIMEO/SO_SNDTIMEO = timeout_ms; connect is non-blocking + poll so an
 * unreachable address also gives up after timeout_ms. */
#include "control/cli_client.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CLI_CLIENT_ID "sluice-cli"

static void set_err(struct kclient *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct kclient *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

int cli_parse_hostport(const char *s, char *host, size_t host_cap, int *port) {
    const char *colon;
    const char *host_start = s;
    size_t host_len;
    if (s[0] == '[') { /* [v6addr]:port */
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') return -1;
        host_start = s + 1;
        host_len = (size_t)(close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        host_len = (size_t)(colon - s);
    }
    if (host_len == 0 || host_len >= host_cap) return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p <= 0 || p > 65535) return -1;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    *port = (int)p;
    return 0;
}

/* Non-blocking connect bounded by timeout_ms; the socket is blocking again on success. */
static int connect_timeout(int fd, const struct sockaddr *addr, socklen_t len, int timeout_ms) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -1;
    int rc = connect(fd, addr, len);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        rc = poll(&pfd, 1, timeout_ms);
        if (rc == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (rc < 0) return -1;
        int so_err = 0;
        socklen_t so_len = sizeof so_err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_err, &so_len) < 0) return -1;
        if (so_err != 0) {
            errno = so_err;
            return -1;
        }
        rc = 0;
    }
    if (rc < 0) return -1;
    return fcntl(fd, F_SETFL, flags);
}

static int open_socket(struct kclient *c) {
    char port_str[16];
    snprintf(port_str, sizeof port_str, "%d", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(c->host, port_str, &hints, &res);
    if (gai != 0) {
        set_err(c, "cannot resolve %s: %s", c->host, gai_strerror(gai));
        return -1;
    }
    int saved_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved_errno = errno;
            continue;
        }
        if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, c->timeout_ms) == 0) {
            c->fd = fd;
            break;
        }
        saved_errno = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        set_err(c, "cannot connect to broker %s:%d: %s", c->host, c->port,
                strerror(saved_errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = c->timeout_ms / 1000,
                         .tv_usec = (c->timeout_ms % 1000) * 1000};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static int send_all(struct kclient *c, const uint8_t *buf, size_t len_bytes) {
    size_t done = 0;
    while (done < len_bytes) {
        ssize_t n = send(c->fd, buf + done, len_bytes - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            set_err(c, "send to %s:%d failed: %s", c->host, c->port,
                    errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

static int recv_all(struct kclient *c, uint8_t *buf, size_t len_bytes) {
    size_t done = 0;
    while (done < len_bytes) {
        ssize_t n = recv(c->fd, buf + done, len_bytes - done, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            set_err(c, "broker %s:%d closed the connection", c->host, c->port);
            return -1;
        }
        if (n < 0) {
            set_err(c, "receive from %s:%d failed: %s", c->host, c->port,
                    errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

void *kclient_alloc(struct kclient *c, size_t count, size_t elem_bytes, size_t align) {
    void *p = kafka_arena_alloc(&c->arena, count, elem_bytes, align);
    if (!p) set_err(c, "client arena full (%u bytes)", CLI_ARENA_BYTES);
    return p;
}

void kclient_reset(struct kclient *c) {
    kafka_arena_reset(&c->arena);
}

/* Encode header + body into send_buf with the size prefix; returns frame bytes or -1. */
static ssize_t encode_request(struct kclient *c, int16_t api_key, int16_t version,
                              const void *req, int32_t correlation_id) {
    int hdr_version = kafka_request_header_version(api_key, version);
    if (hdr_version < 0) {
        set_err(c, "no request header version for api %d v%d", api_key, version);
        return -1;
    }
    struct kafka_writer w;
    kafka_writer_init(&w, c->send_buf, CLI_SEND_BUF_BYTES);
    size_t size_at = kafka_writer_reserve(&w, 4);
    struct kafka_request_header hdr;
    kafka_request_header_init(&hdr, (int16_t)hdr_version);
    hdr.request_api_key = api_key;
    hdr.request_api_version = version;
    hdr.correlation_id = correlation_id;
    hdr.client_id = kafka_str_from_cstr(CLI_CLIENT_ID);
    int rc = kafka_request_header_encode(&w, (int16_t)hdr_version, &hdr);
    if (rc == 0) rc = kafka_request_encode(api_key, version, &w, req);
    if (rc == 0 && w.err != 0) rc = w.err;
    if (rc != 0) {
        set_err(c, "cannot encode %s v%d request: %s",
                kafka_api_lookup(api_key) ? kafka_api_lookup(api_key)->name : "?", version,
                kafka_err_str(rc));
        return -1;
    }
    kafka_writer_patch_int32(&w, size_at, (int32_t)(w.len_bytes - 4));
    return (ssize_t)w.len_bytes;
}

int kclient_call(struct kclient *c, int16_t api_key, int16_t version, const void *req,
                 void *resp) {
    assert(c->fd >= 0);
    const struct kafka_api_info *info = kafka_api_lookup(api_key);
    assert(info != NULL);
    int32_t correlation_id = c->next_correlation_id++;
    ssize_t frame_bytes = encode_request(c, api_key, version, req, correlation_id);
    if (frame_bytes < 0) return -1;
    if (send_all(c, c->send_buf, (size_t)frame_bytes) != 0) return -1;

    uint8_t size_be[4];
    if (recv_all(c, size_be, 4) != 0) return -1;
    uint32_t size_bytes = (uint32_t)kafka_load_be(size_be, 4);
    if (size_bytes < 4 || size_bytes > CLI_MAX_RESPONSE_BYTES) {
        set_err(c, "%s response of %u bytes is out of bounds (max %u)", info->name,
                size_bytes, CLI_MAX_RESPONSE_BYTES);
        return -1;
    }
    uint8_t *frame = kclient_alloc(c, size_bytes, 1, 8);
    if (!frame) return -1;
    if (recv_all(c, frame, size_bytes) != 0) return -1;

    struct kafka_reader r;
    kafka_reader_init(&r, frame, size_bytes);
    struct kafka_response_header rh;
    int rh_version = kafka_response_header_version(api_key, version);
    assert(rh_version >= 0);
    int rc = kafka_response_header_decode(&r, (int16_t)rh_version, &rh, NULL);
    if (rc == 0 && rh.correlation_id != correlation_id) {
        set_err(c, "%s response carries correlation id %d, expected %d", info->name,
                rh.correlation_id, correlation_id);
        return -1;
    }
    if (rc == 0) rc = kafka_response_decode(api_key, version, &r, &c->arena, resp);
    if (rc != 0) {
        set_err(c, "cannot decode %s v%d response from %s:%d: %s", info->name, version,
                c->host, c->port, kafka_err_str(rc));
        return -1;
    }
    return 0;
}

/* ApiVersions v0: every broker answers it, and it lists every API's range. */
static int fetch_api_versions(struct kclient *c) {
    struct kafka_api_versions_request req;
    kafka_api_versions_request_init(&req, 0);
    struct kafka_api_versions_response resp;
    if (kclient_call(c, KAFKA_API_API_VERSIONS, 0, &req, &resp) != 0) return -1;
    if (resp.error_code != 0) {
        set_err(c, "ApiVersions failed: %s", kafka_error_name(resp.error_code));
        return -1;
    }
    for (int32_t i = 0; i < resp.api_keys_count; i++) {
        const struct kafka_api_versions_response_api_version *v = &resp.api_keys[i];
        if (v->api_key < 0 || v->api_key >= CLI_API_KEY_LIMIT) continue;
        c->api[v->api_key] = (struct kclient_api_range){
            .present = true, .min_version = v->min_version, .max_version = v->max_version};
    }
    kclient_reset(c);
    return 0;
}

int kclient_connect(struct kclient *c, const char *bootstrap, int timeout_ms) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : CLI_DEFAULT_TIMEOUT_MS;
    c->next_correlation_id = 1;
    if (cli_parse_hostport(bootstrap, c->host, sizeof c->host, &c->port) != 0) {
        set_err(c, "bad broker address '%s' (want HOST:PORT)", bootstrap);
        return -1;
    }
    c->arena_mem = malloc(CLI_ARENA_BYTES);
    c->send_buf = malloc(CLI_SEND_BUF_BYTES);
    if (!c->arena_mem || !c->send_buf) {
        set_err(c, "out of memory");
        return -1;
    }
    kafka_arena_init(&c->arena, c->arena_mem, CLI_ARENA_BYTES);
    if (open_socket(c) != 0) return -1;
    return fetch_api_versions(c);
}

void kclient_close(struct kclient *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->arena_mem);
    free(c->send_buf);
    c->arena_mem = NULL;
    c->send_buf = NULL;
}

int16_t kclient_pick_version(struct kclient *c, int16_t api_key, int16_t my_min,
                             int16_t my_max) {
    const struct kafka_api_info *info = kafka_api_lookup(api_key);
    assert(info != NULL && api_key >= 0 && api_key < CLI_API_KEY_LIMIT);
    if (!c->api[api_key].present) {
        set_err(c, "broker %s:%d does not support %s", c->host, c->port, info->name);
        return -1;
    }
    int16_t hi = my_max;
    if (hi > info->max_version) hi = info->max_version;
    if (hi > c->api[api_key].max_version) hi = c->api[api_key].max_version;
    int16_t lo = my_min;
    if (lo < c->api[api_key].min_version) lo = c->api[api_key].min_version;
    if (hi < lo) {
        set_err(c, "broker %s:%d supports %s v%d-%d, this CLI v%d-%d", c->host, c->port,
                info->name, c->api[api_key].min_version, c->api[api_key].max_version, my_min,
                my_max);
        return -1;
    }
    return hi;
}

/* Kafka's error codes (org.apache.kafka.common.protocol.Errors), the ones an admin meets. */
static const char *const error_names[] = {
    "NONE", "OFFSET_OUT_OF_RANGE", "CORRUPT_MESSAGE", "UNKNOWN_TOPIC_OR_PARTITION",
    "INVALID_FETCH_SIZE", "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER",
    "REQUEST_TIMED_OUT", "BROKER_NOT_AVAILABLE", "REPLICA_NOT_AVAILABLE", "MESSAGE_TOO_LARGE",
    "STALE_CONTROLLER_EPOCH", "OFFSET_METADATA_TOO_LARGE", "NETWORK_EXCEPTION",
    "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR",
    "INVALID_TOPIC_EXCEPTION", "RECORD_LIST_TOO_LARGE", "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "INVALID_REQUIRED_ACKS", "ILLEGAL_GENERATION",
    "INCONSISTENT_GROUP_PROTOCOL", "INVALID_GROUP_ID", "UNKNOWN_MEMBER_ID",
    "INVALID_SESSION_TIMEOUT", "REBALANCE_IN_PROGRESS", "INVALID_COMMIT_OFFSET_SIZE",
    "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
    "INVALID_TIMESTAMP", "UNSUPPORTED_SASL_MECHANISM", "ILLEGAL_SASL_STATE",
    "UNSUPPORTED_VERSION", "TOPIC_ALREADY_EXISTS", "INVALID_PARTITIONS",
    "INVALID_REPLICATION_FACTOR", "INVALID_REPLICA_ASSIGNMENT", "INVALID_CONFIG",
    "NOT_CONTROLLER", "INVALID_REQUEST", "UNSUPPORTED_FOR_MESSAGE_FORMAT", "POLICY_VIOLATION",
    "OUT_OF_ORDER_SEQUENCE_NUMBER", "DUPLICATE_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH",
    "INVALID_TXN_STATE", "INVALID_PRODUCER_ID_MAPPING", "INVALID_TRANSACTION_TIMEOUT",
    "CONCURRENT_TRANSACTIONS", "TRANSACTION_COORDINATOR_FENCED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "SECURITY_DISABLED", "OPERATION_NOT_ATTEMPTED",
    "KAFKA_STORAGE_ERROR", "LOG_DIR_NOT_FOUND", "SASL_AUTHENTICATION_FAILED",
    "UNKNOWN_PRODUCER_ID", "REASSIGNMENT_IN_PROGRESS", "DELEGATION_TOKEN_AUTH_DISABLED",
    "DELEGATION_TOKEN_NOT_FOUND", "DELEGATION_TOKEN_OWNER_MISMATCH",
    "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", "DELEGATION_TOKEN_AUTHORIZATION_FAILED",
    "DELEGATION_TOKEN_EXPIRED", "INVALID_PRINCIPAL_TYPE", "NON_EMPTY_GROUP",
    "GROUP_ID_NOT_FOUND", "FETCH_SESSION_ID_NOT_FOUND", "INVALID_FETCH_SESSION_EPOCH",
    "LISTENER_NOT_FOUND", "TOPIC_DELETION_DISABLED", "FENCED_LEADER_EPOCH",
    "UNKNOWN_LEADER_EPOCH", "UNSUPPORTED_COMPRESSION_TYPE", "STALE_BROKER_EPOCH",
    "OFFSET_NOT_AVAILABLE", "MEMBER_ID_REQUIRED", "PREFERRED_LEADER_NOT_AVAILABLE",
    "GROUP_MAX_SIZE_REACHED", "FENCED_INSTANCE_ID", "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    "ELECTION_NOT_NEEDED", "NO_REASSIGNMENT_IN_PROGRESS", "GROUP_SUBSCRIBED_TO_TOPIC",
    "INVALID_RECORD", "UNSTABLE_OFFSET_COMMIT",
};

const char *kafka_error_name(int16_t code) {
    static char unnamed[32];
    if (code == -1) return "UNKNOWN_SERVER_ERROR";
    if (code >= 0 && (size_t)code < sizeof error_names / sizeof error_names[0])
        return error_names[code];
    snprintf(unnamed, sizeof unnamed, "ERROR_%d", code);
    return unnamed;
}
