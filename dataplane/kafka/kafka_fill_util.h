/* kafka_fill_util.h: test support for the generated fillers (kafka_msgs_fill.c).
 *
 * A small deterministic generator (xorshift32 over a caller-held seed) and pools of
 * strings, bytes and record payloads, so that a filled message is reproducible from its
 * seed. Views returned point at static storage. Not part of the broker library.
 */
#ifndef SLUICE_KAFKA_FILL_UTIL_H
#define SLUICE_KAFKA_FILL_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "dataplane/kafka/wire.h"

uint32_t kafka_fill_next(uint32_t *seed);
void kafka_fill_uuid(struct kafka_uuid *u, uint32_t *seed);
/* Null only when nullable, about one time in four. */
struct kafka_str kafka_fill_str(uint32_t *seed, bool nullable);
struct kafka_bytes kafka_fill_bytes(uint32_t *seed, bool nullable);
struct kafka_bytes kafka_fill_records(uint32_t *seed, bool nullable);
/* An array count 0..2, or -1 (null) when nullable. */
int32_t kafka_fill_count(uint32_t *seed, bool nullable);

#endif
