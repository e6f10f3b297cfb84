/* router_stats.h - the router's side of the partition metrics (router_stats.c). */
#ifndef SLUICE_DATAPLANE_ROUTER_STATS_H
#define SLUICE_DATAPLANE_ROUTER_STATS_H

#include <stdint.h>

struct router;
struct shard_stats;

/* Once a second (called every loop turn): republish the shard's open partitions into
 * s's partition table. No-op when s is NULL. Shard thread only. */
void router_publish_stats(struct router *r, struct shard_stats *s, uint64_t now_ms);

#endif
