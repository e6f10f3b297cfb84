/* metrics_http.h - the Prometheus endpoint: GET /metrics on an HTTP listener
 * (sluice.metrics.listen, default 127.0.0.1:9644), served by the control thread.
 *
 * libmicrohttpd runs in external-epoll mode: no thread of its own. Its epoll descriptor
 * (metrics_http_fd) joins the control loop's poll set; when it is readable, or the loop
 * turns anyway, metrics_http_run() lets the library accept, read and answer. Each
 * /metrics request renders struct metrics afresh. Connections are bounded
 * (METRICS_HTTP_MAX_CONNECTIONS) and time out after METRICS_HTTP_TIMEOUT_S. */
#ifndef SLUICE_CONTROL_METRICS_HTTP_H
#define SLUICE_CONTROL_METRICS_HTTP_H

#include <stddef.h>

#include "control/metrics.h"

#define METRICS_HTTP_MAX_CONNECTIONS 16
#define METRICS_HTTP_TIMEOUT_S 10

struct MHD_Daemon;

struct metrics_http {
    struct MHD_Daemon *daemon; /* NULL: not serving */
    struct metrics *metrics;
    int epoll_fd;
    int port;                  /* bound port */
    unsigned long long scrapes;
};

/* Listen on "host:port" (port 0: any). 0, or -1 with a sentence in err. */
int metrics_http_start(struct metrics_http *h, const char *hostport, struct metrics *m,
                       char *err, size_t err_bytes);
/* The descriptor to poll for readability; -1 when not serving. */
int metrics_http_fd(const struct metrics_http *h);
/* Serve whatever is ready; never blocks. */
void metrics_http_run(struct metrics_http *h);
void metrics_http_stop(struct metrics_http *h);

#endif
