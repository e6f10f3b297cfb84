/* ustack_wire.c - the in-memory packet driver (see ustack_wire.h).
 *
 * A port's frames come from one array with a free list. TX frames wait in the port's
 * outbox (a ring of USTACK_WIRE_OUTBOX) until the wire, or a test, takes them; taking
 * flattens the frame -- linear bytes, then each attached external segment -- and frees
 * it, which runs the stack's release callbacks: the moment a NIC would have finished
 * DMA. Crossing the wire copies the bytes into a frame of the receiving port's pool, so
 * each side owns only its own memory. Loss drops a frame; reordering keeps one frame
 * back and sends it after the next one (or at the end of the pump). */
#include "dataplane/net/ustack_wire.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct ustack_wire_port *port_of(void *ctx) { return ctx; }

static struct uwire_frame *frame_of(struct ustack_pkt *pkt) {
    return (struct uwire_frame *)pkt; /* pkt is the frame's first member */
}

static struct uwire_frame *frame_get(struct ustack_wire_port *p) {
    if (p->free_head == UINT32_MAX) return NULL;
    struct uwire_frame *f = &p->frames[p->free_head];
    p->free_head = f->next_free;
    assert(!f->in_use);
    f->in_use = true;
    f->n_ext = 0;
    f->pkt = (struct ustack_pkt){.data = f->buf, .room = USTACK_WIRE_FRAME_BYTES, .driver = f};
    p->in_use++;
    return f;
}

static void frame_put(struct ustack_wire_port *p, struct uwire_frame *f) {
    assert(f->in_use);
    for (uint8_t i = 0; i < f->n_ext; i++) f->ext[i].release(f->ext[i].arg);
    f->n_ext = 0;
    f->in_use = false;
    f->next_free = p->free_head;
    p->free_head = (uint32_t)(f - p->frames);
    p->in_use--;
}

static struct ustack_pkt *io_tx_alloc(void *ctx) {
    struct ustack_wire_port *p = port_of(ctx);
    struct uwire_frame *f = frame_get(p);
    if (!f) {
        p->alloc_failed++;
        return NULL;
    }
    return &f->pkt;
}

static int io_tx_attach(void *ctx, struct ustack_pkt *pkt, const uint8_t *bytes, uint32_t len,
                        void (*release)(void *), void *arg) {
    struct ustack_wire_port *p = port_of(ctx);
    struct uwire_frame *f = frame_of(pkt);
    if (f->n_ext >= p->max_segs) return -1;
    f->ext[f->n_ext++] = (struct uwire_ext){bytes, len, release, arg};
    return 0;
}

static void io_tx_burst(void *ctx, struct ustack_pkt **pkts, uint16_t n) {
    struct ustack_wire_port *p = port_of(ctx);
    for (uint16_t i = 0; i < n; i++) {
        if (p->out_count == USTACK_WIRE_OUTBOX) {
            p->tx_dropped++;
            frame_put(p, frame_of(pkts[i]));
            continue;
        }
        p->out[(p->out_head + p->out_count) % USTACK_WIRE_OUTBOX] = pkts[i];
        p->out_count++;
        p->tx_frames++;
    }
}

static void io_pkt_free(void *ctx, struct ustack_pkt *pkt) {
    frame_put(port_of(ctx), frame_of(pkt));
}

static const struct ustack_io io_zc = {io_tx_alloc, io_tx_attach, io_tx_burst, io_pkt_free};
static const struct ustack_io io_copy = {io_tx_alloc, NULL, io_tx_burst, io_pkt_free};

const struct ustack_io *ustack_wire_io(const struct ustack_wire_port *p) {
    return p->max_segs ? &io_zc : &io_copy;
}

int ustack_wire_port_init(struct ustack_wire_port *p, uint32_t frames, uint16_t max_segs) {
    memset(p, 0, sizeof(*p));
    p->frames = calloc(frames, sizeof(*p->frames));
    if (!p->frames) return -ENOMEM;
    p->frame_count = frames;
    for (uint32_t i = 0; i < frames; i++) p->frames[i].next_free = i + 1 < frames ? i + 1 : UINT32_MAX;
    p->free_head = frames ? 0 : UINT32_MAX;
    p->max_segs = max_segs > USTACK_WIRE_MAX_SEGS ? USTACK_WIRE_MAX_SEGS : max_segs;
    return 0;
}

void ustack_wire_port_fini(struct ustack_wire_port *p) {
    while (p->out_count) {
        frame_put(p, frame_of(p->out[p->out_head]));
        p->out_head = (p->out_head + 1) % USTACK_WIRE_OUTBOX;
        p->out_count--;
    }
    free(p->frames);
    p->frames = NULL;
}

static struct uwire_frame *outbox_pop(struct ustack_wire_port *p) {
    if (!p->out_count) return NULL;
    struct uwire_frame *f = frame_of(p->out[p->out_head]);
    p->out_head = (p->out_head + 1) % USTACK_WIRE_OUTBOX;
    p->out_count--;
    return f;
}

static size_t frame_bytes(const struct uwire_frame *f) {
    size_t n = f->pkt.len;
    for (uint8_t i = 0; i < f->n_ext; i++) n += f->ext[i].len;
    return n;
}

static void flatten(const struct uwire_frame *f, uint8_t *out) {
    memcpy(out, f->pkt.data, f->pkt.len);
    out += f->pkt.len;
    for (uint8_t i = 0; i < f->n_ext; i++) {
        memcpy(out, f->ext[i].bytes, f->ext[i].len);
        out += f->ext[i].len;
    }
}

int ustack_wire_take(struct ustack_wire_port *p, uint8_t *out, size_t out_bytes) {
    struct uwire_frame *f = outbox_pop(p);
    if (!f) return 0;
    size_t n = frame_bytes(f);
    if (n > out_bytes) {
        frame_put(p, f);
        return -1;
    }
    flatten(f, out);
    frame_put(p, f);
    return (int)n;
}

struct ustack_pkt *ustack_wire_rx_frame(struct ustack_wire_port *p, const uint8_t *bytes,
                                        size_t len) {
    if (len > USTACK_WIRE_FRAME_BYTES) return NULL;
    struct uwire_frame *f = frame_get(p);
    if (!f) {
        p->rx_dropped_no_frame++;
        return NULL;
    }
    memcpy(f->buf, bytes, len);
    f->pkt.len = (uint32_t)len;
    return &f->pkt;
}

void ustack_wire_join(struct ustack_wire *w, struct ustack_wire_port *a,
                      struct ustack_wire_port *b, uint64_t seed, uint32_t loss_ppm,
                      uint32_t reorder_ppm) {
    memset(w, 0, sizeof(*w));
    w->a = a;
    w->b = b;
    w->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    w->loss_ppm = loss_ppm;
    w->reorder_ppm = reorder_ppm;
}

static uint32_t rng_ppm(struct ustack_wire *w) {
    w->rng ^= w->rng << 13; /* xorshift64 */
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (uint32_t)(w->rng % 1000000u);
}

/* Cross frames from `from` to `to`, in bursts of up to 32. */
static uint32_t pump_one(struct ustack_wire *w, struct ustack_wire_port *from,
                         struct ustack_wire_port *to, struct ustack_pkt **held,
                         uint64_t now_us) {
    struct ustack_pkt *burst[33];
    uint16_t n = 0;
    uint32_t moved = 0;
    struct uwire_frame *f;
    while ((f = outbox_pop(from)) != NULL) {
        moved++;
        bool lose = w->loss_ppm && rng_ppm(w) < w->loss_ppm;
        struct ustack_pkt *rx = NULL;
        if (!lose) {
            size_t len = frame_bytes(f);
            struct uwire_frame *g = len <= USTACK_WIRE_FRAME_BYTES ? frame_get(to) : NULL;
            if (g) {
                flatten(f, g->buf);
                g->pkt.len = (uint32_t)len;
                rx = &g->pkt;
            } else {
                to->rx_dropped_no_frame++;
            }
        } else {
            w->lost++;
        }
        frame_put(from, f);
        if (!rx) continue;
        if (!*held && w->reorder_ppm && rng_ppm(w) < w->reorder_ppm) {
            *held = rx; /* goes after the next frame */
            w->reordered++;
            continue;
        }
        burst[n++] = rx;
        if (*held) {
            burst[n++] = *held;
            *held = NULL;
        }
        if (n >= 31) {
            w->delivered += n;
            ustack_input(to->stack, burst, n, now_us);
            n = 0;
        }
    }
    if (*held) {
        burst[n++] = *held;
        *held = NULL;
    }
    if (n) {
        w->delivered += n;
        ustack_input(to->stack, burst, n, now_us);
    }
    return moved;
}

uint32_t ustack_wire_pump(struct ustack_wire *w, uint64_t now_us) {
    uint32_t moved = pump_one(w, w->a, w->b, &w->held_to_b, now_us);
    moved += pump_one(w, w->b, w->a, &w->held_to_a, now_us);
    return moved;
}
