/* ustack_wire.h - an in-memory packet driver for the userspace stack: a "port" with a
 * fixed pool of frames implementing struct ustack_io, and a wire joining two ports with
 * optional seeded loss and reordering.
 *
 * It exists for the unit tests and the micro-benchmark (no NIC, no DPDK): the stack runs
 * exactly as on a real port -- zero-copy TX attaches external segments that are released
 * only when the frame has crossed the wire, RX frames are lent to the stack and given
 * back. Everything is allocated at init; an empty pool fails tx_alloc (counted) and a
 * full outbox drops (counted), as a NIC would. */
#ifndef SLUICE_DATAPLANE_NET_USTACK_WIRE_H
#define SLUICE_DATAPLANE_NET_USTACK_WIRE_H

#include <stdint.h>
#include <stddef.h>

#include "dataplane/net/ustack.h"

#define USTACK_WIRE_FRAME_BYTES 2048u
#define USTACK_WIRE_MAX_SEGS 8u
#define USTACK_WIRE_OUTBOX 4096u

struct uwire_ext {
    const uint8_t *bytes;
    uint32_t len;
    void (*release)(void *arg);
    void *arg;
};

struct uwire_frame {
    struct ustack_pkt pkt;
    uint32_t next_free;
    bool in_use;
    uint8_t n_ext;
    struct uwire_ext ext[USTACK_WIRE_MAX_SEGS];
    uint8_t buf[USTACK_WIRE_FRAME_BYTES];
};

struct ustack_wire_port {
    struct uwire_frame *frames;
    uint32_t frame_count, free_head, in_use;
    uint16_t max_segs;              /* external segments per TX frame (0: no zero copy) */
    struct ustack_pkt *out[USTACK_WIRE_OUTBOX]; /* sent frames not yet on the wire */
    uint32_t out_head, out_count;
    struct ustack *stack;           /* the stack fed by this port (set by the user) */
    uint64_t tx_frames, tx_dropped, alloc_failed, rx_dropped_no_frame;
};

/* 0 or -ENOMEM. max_segs > 0 enables tx_attach (capped at USTACK_WIRE_MAX_SEGS). */
int ustack_wire_port_init(struct ustack_wire_port *p, uint32_t frames, uint16_t max_segs);
void ustack_wire_port_fini(struct ustack_wire_port *p);
/* The io ops to give ustack_create, with the port as ctx. max_segs 0: tx_attach NULL. */
const struct ustack_io *ustack_wire_io(const struct ustack_wire_port *p);

/* Take the oldest sent frame off the port, flattened (linear bytes then the external
 * segments) into out; the frame is freed (releasing its segments). Returns its length,
 * 0 when nothing was sent, or -1 if it does not fit in out_bytes (dropped). */
int ustack_wire_take(struct ustack_wire_port *p, uint8_t *out, size_t out_bytes);
/* A received frame from the port's pool holding a copy of bytes, to pass to
 * ustack_input; NULL when the pool is empty or len is too large. */
struct ustack_pkt *ustack_wire_rx_frame(struct ustack_wire_port *p, const uint8_t *bytes,
                                        size_t len);

/* Two ports joined. */
struct ustack_wire {
    struct ustack_wire_port *a, *b;
    uint64_t rng;
    uint32_t loss_ppm, reorder_ppm;  /* per frame, parts per million */
    struct ustack_pkt *held_to_a, *held_to_b; /* a frame kept back to reorder */
    uint64_t delivered, lost, reordered;
};
void ustack_wire_join(struct ustack_wire *w, struct ustack_wire_port *a,
                      struct ustack_wire_port *b, uint64_t seed, uint32_t loss_ppm,
                      uint32_t reorder_ppm);
/* Move every frame sent so far across the wire into the other port's stack (as
 * ustack_input at now_us). Returns the frames moved; 0 means the wire is idle. */
uint32_t ustack_wire_pump(struct ustack_wire *w, uint64_t now_us);

#endif
