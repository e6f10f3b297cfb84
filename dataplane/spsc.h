/* spsc.h - a bounded single-producer single-consumer ring of fixed-size messages.
 *
 * The building block of the cross-shard mesh (mesh.h). Capacity is a power of two fixed
 * at init; the slot array is allocated once by the caller-facing init and never grows.
 * The producer owns `tail`, the consumer owns `head`; each keeps a cached copy of the
 * other's index so the common case touches no shared cache line. Indices are free-running
 * 32-bit counters (wrap is harmless because capacity divides 2^32). A full ring is the
 * producer's backpressure signal: spsc_push() returns false and nothing is allocated. */
#ifndef SLUICE_DATAPLANE_SPSC_H
#define SLUICE_DATAPLANE_SPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* One message between threads: a type, the sender, and a small payload. Anything larger
 * travels as a pointer whose ownership passes with the message. */
struct shard_msg {
    uint16_t type;
    uint16_t from;
    uint32_t arg32;
    uint64_t arg64;
    void *ptr;
};

#define SPSC_CACHE_LINE 64

struct spsc_ring {
    alignas(SPSC_CACHE_LINE) _Atomic uint32_t tail; /* written by the producer */
    uint32_t head_cached;                           /* producer's view of head */
    alignas(SPSC_CACHE_LINE) _Atomic uint32_t head; /* written by the consumer */
    uint32_t tail_cached;                           /* consumer's view of tail */
    alignas(SPSC_CACHE_LINE) uint32_t mask;
    uint32_t capacity;
    struct shard_msg *slots;
};

/* capacity must be a power of two >= 2. 0 or -1 (bad capacity / out of memory). */
int spsc_init(struct spsc_ring *r, uint32_t capacity);
void spsc_destroy(struct spsc_ring *r);

/* Producer side. false when full (the message is not queued). */
bool spsc_push(struct spsc_ring *r, const struct shard_msg *msg);
/* Consumer side. false when empty. */
bool spsc_pop(struct spsc_ring *r, struct shard_msg *out);
/* Either side; a snapshot. */
uint32_t spsc_count(const struct spsc_ring *r);

#endif
