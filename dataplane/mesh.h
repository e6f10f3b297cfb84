/* mesh.h - the full mesh of SPSC rings between shards and the control thread.
 *
 * Endpoints 0..shard_count-1 are the shards; endpoint shard_count is the control thread.
 * Every ordered pair (from, to), from != to, has its own bounded spsc_ring, so each ring
 * has exactly one producer thread and one consumer thread and needs no lock. All rings
 * are allocated once by mesh_init().
 *
 * Doorbell: each endpoint has an eventfd and a `sleeping` flag. A receiver about to block
 * sets sleeping, then looks at its rings once more (mesh_prepare_sleep); a sender pushes,
 * then rings the eventfd only if the receiver is sleeping. A seq_cst fence on both sides
 * makes sure one of them sees the other: no lost wake-up, and no syscall per message
 * while the receiver is busy. A shard keeps an io_uring read armed on its eventfd, so a
 * doorbell ends its io_uring wait; the control thread poll()s it. */
#ifndef SLUICE_DATAPLANE_MESH_H
#define SLUICE_DATAPLANE_MESH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane/spsc.h"

#define MESH_MAX_SHARDS 256

struct mesh_endpoint {
    int doorbell_fd;            /* eventfd */
    _Atomic int sleeping;       /* 1 while the owner may block */
    uint64_t doorbells_rung;    /* by senders to this endpoint (approximate, relaxed) */
};

struct mesh {
    int shard_count;
    int endpoint_count;         /* shard_count + 1 */
    uint32_t ring_capacity;
    struct spsc_ring *rings;    /* endpoint_count * endpoint_count; [from][to] */
    struct mesh_endpoint *endpoints;
};

int mesh_init(struct mesh *m, int shard_count, uint32_t ring_capacity);
void mesh_destroy(struct mesh *m);

static inline int mesh_control_id(const struct mesh *m) { return m->shard_count; }

/* Push msg on the (from, to) ring and ring the doorbell if `to` sleeps. false when the
 * ring is full: the caller keeps the message and retries later (backpressure). */
bool mesh_send(struct mesh *m, int from, int to, struct shard_msg *msg);

/* Pop up to budget messages addressed to self (round robin over senders) and call
 * handle(ctx, msg) for each. Returns how many were handled. */
unsigned mesh_drain(struct mesh *m, int self, unsigned budget,
                    void (*handle)(void *ctx, const struct shard_msg *msg), void *ctx);

/* Sleep protocol: prepare returns false (and clears the flag) when a message is already
 * waiting, so the caller must not block; after waking the caller calls mesh_awake(). */
bool mesh_prepare_sleep(struct mesh *m, int self);
void mesh_awake(struct mesh *m, int self);
/* Read and discard the doorbell counter (for the control thread's poll loop). */
void mesh_doorbell_clear(struct mesh *m, int self);
int mesh_doorbell_fd(const struct mesh *m, int self);

#endif
