/* ustack_pair.h - test scaffolding: two userspace stacks (10.0.0.1 "client" and 10.0.0.2
 * "server") on ustack_wire ports joined by an in-memory wire, each with its net_backend,
 * and a virtual clock. Header-only: each test file includes it once. */
#ifndef SLUICE_TESTS_UNIT_NET_USTACK_PAIR_H
#define SLUICE_TESTS_UNIT_NET_USTACK_PAIR_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dataplane/net/ustack.h"
#include "dataplane/net/ustack_wire.h"

#define IP_CLIENT 0x0a000001u
#define IP_SERVER 0x0a000002u
static const uint8_t MAC_CLIENT[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t MAC_SERVER[6] = {0x02, 0, 0, 0, 0, 0x02};

struct side {
    struct ustack_wire_port port;
    struct net_backend *nb;
    struct ustack *stack;
};

static inline struct ustack *make_stack(struct side *sd, uint32_t ip, const uint8_t *mac,
                                 uint32_t frames, uint16_t max_segs,
                                 const struct ustack_config *tmpl) {
    cr_assert_eq(ustack_wire_port_init(&sd->port, frames, max_segs), 0);
    struct ustack_config cfg = tmpl ? *tmpl : (struct ustack_config){0};
    cfg.ip = ip;
    cfg.netmask = 0xffffff00u;
    struct ustack_port port = {.mtu = 1500, .tx_max_segments = max_segs};
    memcpy(port.mac, mac, 6);
    char err[128];
    struct ustack *s = ustack_create(&cfg, &port, ustack_wire_io(&sd->port), &sd->port, err,
                                     sizeof(err));
    cr_assert_not_null(s, "%s", err);
    sd->port.stack = s;
    sd->stack = s;
    return s;
}

static inline void attach_backend(struct side *sd, const struct net_events *ev, void *ctx) {
    char err[128];
    sd->nb = ustack_backend_create(sd->stack, ev, ctx, err, sizeof(err));
    cr_assert_not_null(sd->nb, "%s", err);
}

static inline void destroy_side(struct side *sd) {
    static uint8_t scratch[USTACK_WIRE_FRAME_BYTES * 2];
    while (ustack_wire_take(&sd->port, scratch, sizeof(scratch)) != 0) {
    } /* frames still in the outbox release their segments while the stack lives */
    if (sd->nb) net_destroy(sd->nb);
    else ustack_destroy(sd->stack);
    ustack_wire_port_fini(&sd->port);
    memset(sd, 0, sizeof(*sd));
}

#endif
