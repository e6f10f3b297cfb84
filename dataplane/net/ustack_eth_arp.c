/* ustack_eth_arp.c - Ethernet framing and ARP (RFC 826) for one IPv4 address.
 *
 * Input: frames shorter than an Ethernet header are counted malformed; frames for another
 * unicast MAC are counted not-for-us; IPv4 goes to ip_input, ARP is handled here, other
 * ethertypes are counted and dropped. VLAN tags are not supported (counted unknown).
 *
 * ARP: we answer requests for our address and learn the sender (a request that names us
 * updates or inserts its sender, a reply updates or inserts). The cache is a small array
 * (cfg.arp_cache_entries) searched linearly -- a shard talks to a handful of next hops:
 * the gateway and the hosts on its link -- replaced least-recently-used.
 *
 * Output: eth_output_ipv4 finds the next hop (the destination on-link, else the gateway)
 * and its MAC; when unknown, the frame waits in a bounded queue (cfg.arp_pending_pkts,
 * for the whole stack) while a request goes out, repeated every ARP_RETRY_US; frames that
 * wait ARP_GIVE_UP_US, or find the queue full, are dropped and counted (TCP retransmits). */
#include <assert.h>

#include "dataplane/net/ustack_internal.h"

static const uint8_t broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static struct arp_entry *arp_find(struct ustack *s, uint32_t ip) {
    for (uint32_t i = 0; i < s->cfg.arp_cache_entries; i++)
        if (s->arp[i].ip == ip && s->arp[i].ip != 0) return &s->arp[i];
    return NULL;
}

static struct arp_entry *arp_slot(struct ustack *s, uint32_t ip) {
    struct arp_entry *e = arp_find(s, ip);
    if (e) return e;
    struct arp_entry *victim = &s->arp[0];
    for (uint32_t i = 0; i < s->cfg.arp_cache_entries; i++) {
        if (s->arp[i].ip == 0) return &s->arp[i];
        if (s->arp[i].used_us < victim->used_us) victim = &s->arp[i];
    }
    victim->ip = 0;
    victim->valid = false;
    return victim;
}

bool arp_lookup(struct ustack *s, uint32_t ip, uint8_t mac_out[6]) {
    struct arp_entry *e = arp_find(s, ip);
    if (!e || !e->valid) return false;
    e->used_us = s->now_us;
    memcpy(mac_out, e->mac, 6);
    return true;
}

static void arp_send(struct ustack *s, uint16_t op, const uint8_t *dst_mac, uint32_t target_ip,
                     const uint8_t *target_mac) {
    struct ustack_pkt *p = s->io->tx_alloc(s->io_ctx);
    if (!p) {
        s->stats.tx_alloc_failed++;
        return;
    }
    assert(p->room >= 60);
    uint8_t *f = p->data;
    memset(f, 0, 60); /* the minimum Ethernet payload, padded */
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, s->port.mac, 6);
    wr16(f + 12, ETHERTYPE_ARP);
    uint8_t *a = f + 14;
    wr16(a, 1);              /* hardware: Ethernet */
    wr16(a + 2, ETHERTYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    wr16(a + 6, op);
    memcpy(a + 8, s->port.mac, 6);
    wr32(a + 14, s->cfg.ip);
    memcpy(a + 18, target_mac, 6);
    wr32(a + 24, target_ip);
    p->len = 60;
    p->flags = 0;
    p->l2_bytes = 14;
    p->l3_bytes = 0;
    p->l4_bytes = 0;
    ustack_tx_push(s, p);
}

/* Send what waited for ip's MAC. */
static void arp_release_pending(struct ustack *s, uint32_t ip, const uint8_t *mac) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->arp_q_count; i++) {
        struct arp_pending *q = &s->arp_q[i];
        if (q->next_hop == ip) {
            memcpy(q->pkt->data, mac, 6);
            ustack_tx_push(s, q->pkt);
        } else {
            s->arp_q[kept++] = *q;
        }
    }
    s->arp_q_count = kept;
}

static void arp_input(struct ustack *s, struct ustack_pkt *pkt) {
    const uint8_t *a = pkt->data + 14;
    if (pkt->len < 14 + 28 || rd16(a) != 1 || rd16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 ||
        a[5] != 4) {
        s->stats.rx_malformed_eth++;
        return;
    }
    uint16_t op = rd16(a + 6);
    const uint8_t *sender_mac = a + 8;
    uint32_t sender_ip = rd32(a + 14);
    uint32_t target_ip = rd32(a + 24);
    if (op != 1 && op != 2) {
        s->stats.rx_malformed_eth++;
        return;
    }
    /* RFC 826 merge: update a known sender; insert one that talks to us. */
    struct arp_entry *e = sender_ip ? arp_find(s, sender_ip) : NULL;
    if (!e && sender_ip && target_ip == s->cfg.ip) e = arp_slot(s, sender_ip);
    if (e) {
        e->ip = sender_ip;
        memcpy(e->mac, sender_mac, 6);
        e->valid = true;
        e->used_us = s->now_us;
        arp_release_pending(s, sender_ip, sender_mac);
    }
    if (op == 2) {
        s->stats.arp_replies_received++;
        return;
    }
    if (target_ip != s->cfg.ip) {
        s->stats.rx_not_for_us++;
        return;
    }
    s->stats.arp_requests_answered++;
    arp_send(s, 2, sender_mac, sender_ip, sender_mac);
}

void eth_input(struct ustack *s, struct ustack_pkt *pkt) {
    bool kept = false;
    if (pkt->len < 14) {
        s->stats.rx_malformed_eth++;
    } else if (memcmp(pkt->data, s->port.mac, 6) != 0 &&
               memcmp(pkt->data, broadcast_mac, 6) != 0) {
        s->stats.rx_not_for_us++;
    } else {
        uint16_t type = rd16(pkt->data + 12);
        if (type == ETHERTYPE_IPV4) kept = ip_input(s, pkt, pkt->data + 14, pkt->len - 14);
        else if (type == ETHERTYPE_ARP) arp_input(s, pkt);
        else s->stats.rx_unknown_ethertype++;
    }
    if (!kept) s->io->pkt_free(s->io_ctx, pkt);
}

static bool on_link(const struct ustack *s, uint32_t ip) {
    return (ip & s->cfg.netmask) == (s->cfg.ip & s->cfg.netmask);
}

void eth_output_ipv4(struct ustack *s, struct ustack_pkt *pkt, uint32_t dst_ip,
                     const uint8_t *mac) {
    uint8_t *f = pkt->data;
    memcpy(f + 6, s->port.mac, 6);
    wr16(f + 12, ETHERTYPE_IPV4);
    if (mac) {
        memcpy(f, mac, 6);
        ustack_tx_push(s, pkt);
        return;
    }
    uint32_t hop = on_link(s, dst_ip) ? dst_ip : s->cfg.gateway;
    if (hop == 0) { /* no route */
        s->stats.arp_pending_dropped++;
        s->io->pkt_free(s->io_ctx, pkt);
        return;
    }
    if (arp_lookup(s, hop, f)) {
        ustack_tx_push(s, pkt);
        return;
    }
    if (s->arp_q_count == s->cfg.arp_pending_pkts) {
        s->stats.arp_pending_dropped++;
        s->io->pkt_free(s->io_ctx, pkt);
        return;
    }
    s->arp_q[s->arp_q_count++] = (struct arp_pending){pkt, hop, s->now_us};
    struct arp_entry *e = arp_slot(s, hop);
    if (e->ip != hop || e->last_request_us == 0 ||
        s->now_us - e->last_request_us >= ARP_RETRY_US) {
        e->ip = hop;
        e->valid = false;
        e->last_request_us = s->now_us ? s->now_us : 1;
        e->used_us = s->now_us;
        static const uint8_t zero_mac[6] = {0};
        s->stats.arp_requests_sent++;
        arp_send(s, 1, broadcast_mac, hop, zero_mac);
    }
    ustack_timer_hint(s, s->now_us + ARP_RETRY_US);
}

/* Drop what waited too long; ask again for what still waits. */
void arp_poll(struct ustack *s) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->arp_q_count; i++) {
        struct arp_pending *q = &s->arp_q[i];
        if (s->now_us - q->queued_us >= ARP_GIVE_UP_US) {
            s->stats.arp_pending_dropped++;
            s->io->pkt_free(s->io_ctx, q->pkt);
            continue;
        }
        struct arp_entry *e = arp_find(s, q->next_hop);
        if (e && !e->valid && s->now_us - e->last_request_us >= ARP_RETRY_US) {
            static const uint8_t zero_mac[6] = {0};
            e->last_request_us = s->now_us;
            s->stats.arp_requests_sent++;
            arp_send(s, 1, broadcast_mac, q->next_hop, zero_mac);
        }
        s->arp_q[kept++] = *q;
    }
    s->arp_q_count = kept;
    if (kept) ustack_timer_hint(s, s->now_us + ARP_RETRY_US);
}

void arp_destroy_pending(struct ustack *s) {
    for (uint32_t i = 0; i < s->arp_q_count; i++) s->io->pkt_free(s->io_ctx, s->arp_q[i].pkt);
    s->arp_q_count = 0;
}
