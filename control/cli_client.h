/* cli_client.h - a small blocking Kafka client for the admin CLI (sluice topics|configs|
 * offsets|groups). It speaks to ANY Kafka broker, not only sluice.
 *
 * One TCP connection, one request at a time: encode with the project's codec
 * (dataplane/kafka), write, read the one answer, decode. On connect it asks ApiVersions
 * (v0, which every broker answers) and remembers the broker's range per API;
 * kclient_pick_version() then chooses the highest version both this CLI and the broker
 * know, so the CLI talks to old and new brokers alike.
 *
 * Memory: one arena (CLI_ARENA_BYTES) allocated at connect holds every response frame and
 * its decoded arrays; decoded strings are views into the frame, so a response stays valid
 * until kclient_reset(). A response larger than CLI_MAX_RESPONSE_BYTES or one that does
 * not fit the arena is an error, never a bigger allocation. Every socket call is bounded
 * by the connection's timeout_ms.
 *
 * Errors: functions return 0 or -1 and leave a human sentence in c->err (unreachable
 * broker, timeout, broker closed, undecodable answer, no common version). Kafka error
 * codes inside responses are the caller's to judge; kafka_error_name() names them. */
#ifndef SLUICE_CONTROL_CLI_CLIENT_H
#define SLUICE_CONTROL_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/kafka/kafka_msgs.h"

#define CLI_MAX_RESPONSE_BYTES (32u << 20)
#define CLI_ARENA_BYTES (96u << 20)
#define CLI_SEND_BUF_BYTES (1u << 20)
#define CLI_API_KEY_LIMIT 128 /* api keys remembered from ApiVersions: 0..127 */
#define CLI_DEFAULT_BOOTSTRAP "127.0.0.1:9092"
#define CLI_DEFAULT_TIMEOUT_MS 10000

struct kclient_api_range {
    bool present;
    int16_t min_version;
    int16_t max_version;
};

struct kclient {
    int fd;
    int timeout_ms;
    int32_t next_correlation_id;
    char host[256];
    int port;
    struct kclient_api_range api[CLI_API_KEY_LIMIT];
    uint8_t *arena_mem;
    struct kafka_arena arena;
    uint8_t *send_buf;
    char err[512];
};

/* Connect to "host:port" (bracketed IPv6 allowed) and learn the broker's API versions. */
int kclient_connect(struct kclient *c, const char *bootstrap, int timeout_ms);
void kclient_close(struct kclient *c);

/* Highest version in [my_min, my_max] the broker supports too (and the codec knows);
 * -1 (and c->err) when there is none. */
int16_t kclient_pick_version(struct kclient *c, int16_t api_key, int16_t my_min, int16_t my_max);

/* Send `req` (the message struct for api_key) at `version`, wait for the answer and decode
 * it into `resp` (the response struct). Views in resp live until kclient_reset(). */
int kclient_call(struct kclient *c, int16_t api_key, int16_t version, const void *req,
                 void *resp);

/* Typed array from the client's arena for building requests (NULL + c->err when full). */
void *kclient_alloc(struct kclient *c, size_t count, size_t elem_bytes, size_t align);
#define KCLIENT_ARRAY(c, count, ptr) \
    kclient_alloc((c), (size_t)(count), sizeof(*(ptr)), _Alignof(__typeof__(*(ptr))))

/* Forget every response (and arena allocation) so far. */
void kclient_reset(struct kclient *c);

/* "UNKNOWN_TOPIC_OR_PARTITION" for 3, "NONE" for 0, "ERROR_<n>" when unnamed (static
 * storage for the last form: use it before the next call). */
const char *kafka_error_name(int16_t code);

/* Split "host:port" into host (NUL-terminated, host_cap bytes) and port; -1 when bad. */
int cli_parse_hostport(const char *s, char *host, size_t host_cap, int *port);

#endif
