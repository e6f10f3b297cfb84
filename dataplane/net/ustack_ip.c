/* ustack_ip.c - IPv4 input and header building, and ICMP echo (ping) replies.
 *
 * Input checks, each with its own counter: version 4, header length 20..60 within the
 * frame, total length covering the header and within the frame (Ethernet padding beyond
 * it is ignored), header checksum (unless the NIC vouched for it), destination our
 * address. Fragments (MF set or a nonzero offset) are dropped and counted: we never send
 * a datagram larger than the MTU nor set up reassembly. TCP goes to tcp_input, ICMP echo
 * requests are answered from a fresh frame (the payload copied, at most the MTU), other
 * protocols are counted.
 *
 * Output: 20-byte headers, DF set, TTL 64, the ID from a per-stack counter; the header
 * checksum is computed here unless the port offloads it. */
#include <assert.h>

#include "dataplane/net/ustack_internal.h"

void ip_build_header(struct ustack *s, struct ustack_pkt *pkt, uint8_t *h, uint32_t dst_ip,
                     uint8_t proto, uint32_t l4_bytes) {
    h[0] = 0x45;
    h[1] = 0;
    wr16(h + 2, (uint16_t)(20 + l4_bytes));
    wr16(h + 4, s->ip_id++);
    wr16(h + 6, 0x4000); /* DF */
    h[8] = 64;
    h[9] = proto;
    wr16(h + 10, 0);
    wr32(h + 12, s->cfg.ip);
    wr32(h + 16, dst_ip);
    pkt->l2_bytes = 14;
    pkt->l3_bytes = 20;
    if (s->port.tx_ip_csum_offload) {
        pkt->flags |= USTACK_PKT_TX_IP_CSUM;
    } else {
        struct csum c = {0};
        csum_add(&c, h, 20);
        wr16(h + 10, csum_fold(&c));
    }
}

static void icmp_input(struct ustack *s, struct ustack_pkt *pkt, uint32_t src_ip,
                       const uint8_t *icmp, uint32_t len) {
    if (len < 8) {
        s->stats.rx_malformed_icmp++;
        return;
    }
    if (!(pkt->flags & USTACK_PKT_RX_L4_CSUM_GOOD)) {
        struct csum c = {0};
        csum_add(&c, icmp, len);
        if (csum_fold(&c) != 0 || (pkt->flags & USTACK_PKT_RX_L4_CSUM_BAD)) {
            s->stats.rx_bad_icmp_csum++;
            return;
        }
    }
    if (icmp[0] != 8 || icmp[1] != 0) return; /* only echo requests need us */
    if (len > (uint32_t)s->port.mtu - 20) return;
    struct ustack_pkt *r = s->io->tx_alloc(s->io_ctx);
    if (!r) {
        s->stats.tx_alloc_failed++;
        return;
    }
    assert(r->room >= 14 + 20 + len);
    uint8_t *reply = r->data + 34;
    memcpy(reply, icmp, len);
    reply[0] = 0; /* echo reply */
    wr16(reply + 2, 0);
    struct csum c = {0};
    csum_add(&c, reply, len);
    wr16(reply + 2, csum_fold(&c));
    r->flags = 0;
    ip_build_header(s, r, r->data + 14, src_ip, IPPROTO_ICMP_, len);
    r->l4_bytes = 0;
    r->len = 34 + len;
    s->stats.icmp_echo_answered++;
    eth_output_ipv4(s, r, src_ip, pkt->data + 6); /* back to the sender's MAC */
}

bool ip_input(struct ustack *s, struct ustack_pkt *pkt, const uint8_t *ip, uint32_t ip_bytes) {
    if (ip_bytes < 20 || (ip[0] >> 4) != 4) {
        s->stats.rx_malformed_ip++;
        return false;
    }
    uint32_t hl = (uint32_t)(ip[0] & 0x0f) * 4;
    uint32_t total = rd16(ip + 2);
    if (hl < 20 || hl > ip_bytes || total < hl || total > ip_bytes) {
        s->stats.rx_malformed_ip++;
        return false;
    }
    if ((pkt->flags & USTACK_PKT_RX_IP_CSUM_BAD) ||
        !(pkt->flags & USTACK_PKT_RX_IP_CSUM_GOOD)) {
        struct csum c = {0};
        csum_add(&c, ip, hl);
        if (csum_fold(&c) != 0 || (pkt->flags & USTACK_PKT_RX_IP_CSUM_BAD)) {
            s->stats.rx_bad_ip_csum++;
            return false;
        }
    }
    uint32_t dst = rd32(ip + 16);
    uint32_t src = rd32(ip + 12);
    if (dst != s->cfg.ip) {
        s->stats.rx_not_for_us++;
        return false;
    }
    uint16_t frag = rd16(ip + 6);
    if ((frag & 0x2000) || (frag & 0x1fff)) {
        s->stats.rx_ip_fragments++;
        return false;
    }
    const uint8_t *l4 = ip + hl;
    uint32_t l4_bytes = total - hl;
    switch (ip[9]) {
    case IPPROTO_TCP_:
        return tcp_input(s, pkt, src, dst, l4, l4_bytes, pkt->data + 6);
    case IPPROTO_ICMP_:
        icmp_input(s, pkt, src, l4, l4_bytes);
        return false;
    default:
        s->stats.rx_ip_unknown_proto++;
        return false;
    }
}
