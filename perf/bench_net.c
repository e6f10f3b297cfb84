/* bench_net.c - small-request rate and idle-connection hold, a Kafka client side.
 *
 *   bench_net rate HOST:PORT [conns] [depth] [seconds] [apiversions|metadata]
 *       Opens `conns` connections and keeps `depth` requests in flight on each
 *       (pipelined), for `seconds`; prints requests/s. Requests are encoded once with the
 *       project's codec (dataplane/kafka) and only their correlation id is patched; every
 *       response is checked to carry the next correlation id of its connection (responses
 *       in request order) and is counted. The rate is over `seconds` after a 0.5 s warm-up;
 *       total_requests includes the warm-up (to divide by the server's CPU time).
 *   bench_net idle HOST:PORT conns seconds
 *       Opens `conns` connections, completes one ApiVersions on each, prints "held N" and
 *       keeps them open (idle) for `seconds` (the RSS of the broker is read meanwhile).
 *
 * One thread, epoll, non-blocking sockets; a fixed per-connection buffer (no allocation
 * after start). Exit status 1 on any protocol error (wrong correlation id, closed socket). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/kafka/kafka_msgs.h"
#include "dataplane/kafka/wire.h"

#define MAX_CONNS 20000
#define MAX_DEPTH 1024
#define RX_BYTES (256 * 1024)
#define REQ_MAX_BYTES 256

struct bconn {
    int fd;
    uint32_t next_send_corr;
    uint32_t next_recv_corr;
    uint32_t in_flight;
    uint32_t rx_len;
    uint8_t *rx;
};

static uint8_t req_template[REQ_MAX_BYTES];
static size_t req_bytes;
static int16_t req_api_key;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int encode_template(const char *api) {
    struct kafka_writer w;
    kafka_writer_init(&w, req_template, sizeof req_template);
    size_t size_at = kafka_writer_reserve(&w, 4);
    struct kafka_request_header h;
    int16_t version;
    if (strcmp(api, "metadata") == 0) {
        req_api_key = KAFKA_API_METADATA;
        version = 12;
    } else {
        req_api_key = KAFKA_API_API_VERSIONS;
        version = 3;
    }
    int hv = kafka_request_header_version(req_api_key, version);
    kafka_request_header_init(&h, (int16_t)hv);
    h.request_api_key = req_api_key;
    h.request_api_version = version;
    h.correlation_id = 0;
    h.client_id = kafka_str_from_cstr("bench_net");
    kafka_request_header_encode(&w, (int16_t)hv, &h);
    if (req_api_key == KAFKA_API_METADATA) {
        struct kafka_metadata_request m;
        kafka_metadata_request_init(&m, version);
        m.topics = NULL;
        m.topics_count = -1;
        kafka_metadata_request_encode(&w, version, &m);
    } else {
        struct kafka_api_versions_request m;
        kafka_api_versions_request_init(&m, version);
        m.client_software_name = kafka_str_from_cstr("bench-net");
        m.client_software_version = kafka_str_from_cstr("1.0");
        kafka_api_versions_request_encode(&w, version, &m);
    }
    if (w.err != 0) return -1;
    kafka_writer_patch_int32(&w, size_at, (int32_t)(w.len_bytes - 4));
    req_bytes = w.len_bytes;
    return 0;
}

static int connect_to(const char *hostport) {
    char host[128];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Write n pipelined requests (blocking is fine: they are small and the peer reads). */
static int send_requests(struct bconn *c, uint32_t n) {
    uint8_t buf[MAX_DEPTH * REQ_MAX_BYTES];
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(buf + len, req_template, req_bytes);
        uint32_t corr = htonl(c->next_send_corr++);
        memcpy(buf + len + 8, &corr, 4); /* size(4) api_key(2) api_version(2) corr(4) */
        len += req_bytes;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    c->in_flight += n;
    return 0;
}

/* Parse complete responses; returns how many, -1 on a protocol error. */
static int parse_responses(struct bconn *c) {
    uint32_t off = 0;
    int count = 0;
    while (c->rx_len - off >= 8) {
        uint32_t size = ntohl(*(uint32_t *)(c->rx + off));
        if (size < 4 || size > RX_BYTES - 4) return -1;
        if (c->rx_len - off < 4 + size) break;
        uint32_t corr = ntohl(*(uint32_t *)(c->rx + off + 4));
        if (corr != c->next_recv_corr) {
            fprintf(stderr, "bench_net: correlation id %u, expected %u\n", corr,
                    c->next_recv_corr);
            return -1;
        }
        c->next_recv_corr++;
        c->in_flight--;
        off += 4 + size;
        count++;
    }
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
    return count;
}

static int read_some(struct bconn *c) {
    ssize_t r = recv(c->fd, c->rx + c->rx_len, RX_BYTES - c->rx_len, MSG_DONTWAIT);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN ? 0 : -1;
    c->rx_len += (uint32_t)r;
    return parse_responses(c);
}

static struct bconn conns[MAX_CONNS];

static int open_conns(const char *target, int n) {
    for (int i = 0; i < n; i++) {
        conns[i].fd = connect_to(target);
        if (conns[i].fd < 0) {
            fprintf(stderr, "bench_net: connect %s failed at %d: %s\n", target, i, strerror(errno));
            return -1;
        }
        conns[i].rx = malloc(RX_BYTES);
        if (!conns[i].rx) return -1;
    }
    return 0;
}

static int run_rate(const char *target, int n, uint32_t depth, double seconds) {
    if (open_conns(target, n) != 0) return 1;
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        if (send_requests(&conns[i], depth) != 0) return 1;
    }
    uint64_t done = 0, warm = 0;
    double start = now_s(), measure_from = start + 0.5, end = measure_from + seconds;
    bool measuring = false;
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        if (!measuring && t >= measure_from) {
            measuring = true;
            warm = done;
        }
        if (t >= end) break;
        int k = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < k; e++) {
            struct bconn *c = &conns[evs[e].data.u32];
            int got = read_some(c);
            if (got < 0) {
                fprintf(stderr, "bench_net: connection %u failed\n", evs[e].data.u32);
                return 1;
            }
            done += (uint64_t)got;
            if (got > 0 && send_requests(c, (uint32_t)got) != 0) return 1;
        }
    }
    double rate = (double)(done - warm) / seconds;
    printf("bench_net rate api=%s conns=%d depth=%u seconds=%.1f total_requests=%llu "
           "requests=%llu requests_per_s=%.0f\n",
           req_api_key == KAFKA_API_METADATA ? "metadata" : "apiversions", n, depth, seconds,
           (unsigned long long)done, (unsigned long long)(done - warm), rate);
    return 0;
}

static int run_idle(const char *target, int n, double seconds) {
    if (open_conns(target, n) != 0) return 1;
    for (int i = 0; i < n; i++) {
        if (send_requests(&conns[i], 1) != 0) return 1;
        while (conns[i].in_flight > 0) {
            ssize_t r = recv(conns[i].fd, conns[i].rx + conns[i].rx_len,
                             RX_BYTES - conns[i].rx_len, 0);
            if (r <= 0) {
                fprintf(stderr, "bench_net: idle connection %d closed\n", i);
                return 1;
            }
            conns[i].rx_len += (uint32_t)r;
            if (parse_responses(&conns[i]) < 0) return 1;
        }
    }
    printf("held %d\n", n);
    fflush(stdout);
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_net rate HOST:PORT [conns] [depth] [seconds] "
                        "[apiversions|metadata]\n       bench_net idle HOST:PORT conns seconds\n");
        return 2;
    }
    const char *mode = argv[1], *target = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 50;
    if (n < 1 || n > MAX_CONNS) return 2;
    if (strcmp(mode, "idle") == 0) {
        encode_template("apiversions");
        return run_idle(target, n, argc > 4 ? atof(argv[4]) : 5.0);
    }
    uint32_t depth = argc > 4 ? (uint32_t)atoi(argv[4]) : 16;
    double seconds = argc > 5 ? atof(argv[5]) : 5.0;
    if (depth < 1 || depth > MAX_DEPTH) return 2;
    if (encode_template(argc > 6 ? argv[6] : "apiversions") != 0) return 2;
    return run_rate(target, n, depth, seconds);
}
