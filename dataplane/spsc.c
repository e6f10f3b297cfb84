/* spsc.c - bounded SPSC ring. See spsc.h for the model.
 * Memory order: the producer writes the slot, then publishes tail with release; the
 * consumer reads tail with acquire before reading the slot, and publishes head with
 * release after copying it out, so the producer may reuse the slot. */
#include "dataplane/spsc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int spsc_init(struct spsc_ring *r, uint32_t capacity) {
    memset(r, 0, sizeof *r);
    if (capacity < 2 || (capacity & (capacity - 1)) != 0) return -1;
    r->slots = calloc(capacity, sizeof r->slots[0]);
    if (!r->slots) return -1;
    r->capacity = capacity;
    r->mask = capacity - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

void spsc_destroy(struct spsc_ring *r) {
    free(r->slots);
    r->slots = NULL;
}

bool spsc_push(struct spsc_ring *r, const struct shard_msg *msg) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - r->head_cached == r->capacity) {
        r->head_cached = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - r->head_cached == r->capacity) return false;
    }
    assert(tail - r->head_cached < r->capacity);
    r->slots[tail & r->mask] = *msg;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

bool spsc_pop(struct spsc_ring *r, struct shard_msg *out) {
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head == r->tail_cached) {
        r->tail_cached = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == r->tail_cached) return false;
    }
    assert(r->tail_cached - head <= r->capacity);
    *out = r->slots[head & r->mask];
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return true;
}

uint32_t spsc_count(const struct spsc_ring *r) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    return tail - head;
}
