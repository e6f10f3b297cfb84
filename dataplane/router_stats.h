/* router_stats.h - the router's side of the partition metrics (router_stats.c). */
#ifndef SLUICE_DATAPLANE_ROUTER_STATS_H
#define SLUICE_DATAPLANE_ROUTER_STATS_H

#include <stdint.h>

struct router;
struct shard_stats;
struct kafka_arena;

/* Once a second (called every loop turn): republish the shard's open partitions into
 * s's partition table. No-op when s is NULL. Shard thread only. */
void router_publish_stats(struct router *r, struct shard_stats *s, uint64_t now_ms);

/* Count the per-partition error codes of a finished data job (Produce, Fetch,
 * ListOffsets, ...) under its API, once, as it is answered. */
struct data_job;
void router_count_part_errors(const struct data_job *job);
/* Count the error codes in a control-plane response body (arena: scratch, reset here). */
void router_count_control_errors(struct kafka_arena *arena, int16_t api_key, int16_t version,
                                 const uint8_t *body, uint32_t body_bytes);

#endif
