/* metrics_http.c - GET /metrics over libmicrohttpd on the control thread (see
 * metrics_http.h). Anything but GET /metrics is 404 (405 for another method on it). */
#include "control/metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>


#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status,
                                  const char *text) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    struct metrics_http *h = cls;
    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) { /* first call: headers only; answer on the next */
        *req_cls = h;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* a body nobody asked for: drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") != 0) return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n");
    size_t len = metrics_render(h->metrics);
    if (len == 0) return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics overflow\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, h->metrics->buf,
                                                             MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    h->scrapes++;
    return rc;
}

/* "a.b.c.d:port", port 0..65535 (0: the kernel picks). */
static int parse_listen(const char *s, char *host, size_t host_bytes, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= host_bytes) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

int metrics_http_start(struct metrics_http *h, const char *hostport, struct metrics *m,
                       char *err, size_t err_bytes) {
    memset(h, 0, sizeof *h);
    h->epoll_fd = -1;
    h->metrics = m;
    char host[64];
    int port;
    if (parse_listen(hostport, host, sizeof host, &port) != 0) {
        snprintf(err, err_bytes, "sluice.metrics.listen '%s': want IPV4:PORT", hostport);
        return -1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, err_bytes, "sluice.metrics.listen '%s': want an IPv4 address", hostport);
        return -1;
    }
    h->daemon = MHD_start_daemon(
        MHD_USE_EPOLL, (uint16_t)port, NULL, NULL, on_request, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_HTTP_TIMEOUT_S,
        MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, err_bytes, "cannot serve metrics on %s (port in use?)", hostport);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    h->epoll_fd = info ? info->epoll_fd : -1;
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    if (h->epoll_fd < 0) {
        metrics_http_stop(h);
        snprintf(err, err_bytes, "libmicrohttpd gave no epoll descriptor");
        return -1;
    }
    return 0;
}

int metrics_http_fd(const struct metrics_http *h) { return h->daemon ? h->epoll_fd : -1; }

void metrics_http_run(struct metrics_http *h) {
    if (h->daemon) MHD_run(h->daemon);
}

void metrics_http_stop(struct metrics_http *h) {
    if (h->daemon) MHD_stop_daemon(h->daemon);
    h->daemon = NULL;
    h->epoll_fd = -1;
}
