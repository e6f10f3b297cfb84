/* mesh.c - full mesh of SPSC rings with eventfd doorbells. See mesh.h. */
#include "dataplane/mesh.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct spsc_ring *ring_at(struct mesh *m, int from, int to) {
    assert(from >= 0 && from < m->endpoint_count && to >= 0 && to < m->endpoint_count);
    return &m->rings[from * m->endpoint_count + to];
}

int mesh_init(struct mesh *m, int shard_count, uint32_t ring_capacity) {
    memset(m, 0, sizeof *m);
    if (shard_count < 1 || shard_count > MESH_MAX_SHARDS) return -1;
    m->shard_count = shard_count;
    m->endpoint_count = shard_count + 1;
    m->ring_capacity = ring_capacity;
    size_t n = (size_t)m->endpoint_count;
    m->rings = calloc(n * n, sizeof m->rings[0]);
    m->endpoints = calloc(n, sizeof m->endpoints[0]);
    if (!m->rings || !m->endpoints) goto fail;
    for (size_t i = 0; i < n; i++) m->endpoints[i].doorbell_fd = -1;
    for (int from = 0; from < m->endpoint_count; from++)
        for (int to = 0; to < m->endpoint_count; to++)
            if (from != to && spsc_init(ring_at(m, from, to), ring_capacity) != 0) goto fail;
    for (size_t i = 0; i < n; i++) {
        m->endpoints[i].doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m->endpoints[i].doorbell_fd < 0) goto fail;
        atomic_init(&m->endpoints[i].sleeping, 0);
    }
    return 0;
fail:
    mesh_destroy(m);
    return -1;
}

void mesh_destroy(struct mesh *m) {
    if (m->rings) {
        for (int i = 0; i < m->endpoint_count * m->endpoint_count; i++)
            spsc_destroy(&m->rings[i]);
    }
    if (m->endpoints) {
        for (int i = 0; i < m->endpoint_count; i++)
            if (m->endpoints[i].doorbell_fd >= 0) close(m->endpoints[i].doorbell_fd);
    }
    free(m->rings);
    free(m->endpoints);
    memset(m, 0, sizeof *m);
}

bool mesh_send(struct mesh *m, int from, int to, struct shard_msg *msg) {
    assert(from != to);
    msg->from = (uint16_t)from;
    if (!spsc_push(ring_at(m, from, to), msg)) return false;
    atomic_thread_fence(memory_order_seq_cst);
    struct mesh_endpoint *ep = &m->endpoints[to];
    if (atomic_load_explicit(&ep->sleeping, memory_order_relaxed)) {
        uint64_t one = 1;
        ssize_t w = write(ep->doorbell_fd, &one, sizeof one);
        (void)w; /* EAGAIN means the counter is already non-zero: it is rung */
        ep->doorbells_rung++;
    }
    return true;
}

unsigned mesh_drain(struct mesh *m, int self, unsigned budget,
                    void (*handle)(void *ctx, const struct shard_msg *msg), void *ctx) {
    unsigned handled = 0;
    bool progress = true;
    while (handled < budget && progress) {
        progress = false;
        for (int from = 0; from < m->endpoint_count && handled < budget; from++) {
            if (from == self) continue;
            struct shard_msg msg;
            if (!spsc_pop(ring_at(m, from, self), &msg)) continue;
            handle(ctx, &msg);
            handled++;
            progress = true;
        }
    }
    return handled;
}

static bool has_incoming(struct mesh *m, int self) {
    for (int from = 0; from < m->endpoint_count; from++)
        if (from != self && spsc_count(ring_at(m, from, self)) > 0) return true;
    return false;
}

bool mesh_prepare_sleep(struct mesh *m, int self) {
    struct mesh_endpoint *ep = &m->endpoints[self];
    atomic_store_explicit(&ep->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (has_incoming(m, self)) {
        atomic_store_explicit(&ep->sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

void mesh_awake(struct mesh *m, int self) {
    atomic_store_explicit(&m->endpoints[self].sleeping, 0, memory_order_relaxed);
}

void mesh_doorbell_clear(struct mesh *m, int self) {
    uint64_t value;
    ssize_t r = read(m->endpoints[self].doorbell_fd, &value, sizeof value);
    (void)r; /* EAGAIN: nothing was rung */
}

int mesh_doorbell_fd(const struct mesh *m, int self) { return m->endpoints[self].doorbell_fd; }
