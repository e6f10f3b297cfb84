/* uring_sock.h - the kernel-socket network backend driven by the shard's io_uring.
 * See uring_sock.c for the design. */
#ifndef SLUICE_DATAPLANE_NET_URING_SOCK_H
#define SLUICE_DATAPLANE_NET_URING_SOCK_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/net/net.h"

struct net_uring_config {
    struct io_uring *ring;        /* the shard's ring (completions reaped by the shard) */
    uint32_t max_conns;           /* connection slots, allocated at create */
    uint32_t recv_buffer_count;   /* provided buffers, a power of two <= 32768 */
    uint32_t recv_buffer_bytes;   /* size of each */
    uint8_t *const *recv_buffers; /* count buffers of recv_buffer_bytes each, owned by the
                                     caller (the shard's chunks); must outlive the backend */
    uint16_t buf_group;           /* provided-buffer group id */
    size_t zc_threshold_bytes;    /* sends of at least this many bytes use SENDMSG_ZC;
                                     0 disables zero copy */
    bool zc_skip_local_peers;     /* no SENDMSG_ZC to a peer on this host (loopback
                                     delivery copies the pages anyway) */
    int listen_backlog;
};

struct net_backend *net_uring_create(const struct net_uring_config *cfg,
                                     const struct net_events *events, void *events_ctx,
                                     char *err, size_t err_bytes);

/* Counters for metrics and tests. */
struct net_uring_stats {
    uint64_t accepted, connected, refused, recv_bytes, recv_enobufs, sends, sends_zc, send_bytes;
    uint64_t sends_zc_narrow_window; /* zero-copy-sized sends copied: peer window too small */
    uint64_t conns_local_peer;       /* connections to this host: sent without zero copy
                                        when zc_skip_local_peers */
    uint64_t zc_notifications;       /* SENDMSG_ZC buffer-release notifications seen */
};
void net_uring_stats(const struct net_backend *b, struct net_uring_stats *out);

#endif
