/* cli_offsets.h - ListOffsets helpers shared by `sluice offsets` and `sluice groups`
 * (log-end offsets for lag, reset-offsets targets). */
#ifndef SLUICE_CONTROL_CLI_OFFSETS_H
#define SLUICE_CONTROL_CLI_OFFSETS_H

#include <stdint.h>

#include "control/cli_common.h"

/* Kafka's special ListOffsets timestamps. */
#define CLI_TIME_LATEST (-1)
#define CLI_TIME_EARLIEST (-2)
#define CLI_TIME_MAX_TIMESTAMP (-3)

/* "earliest" | "latest" | "max-timestamp" | milliseconds | ISO-8601 UTC datetime. */
int cli_parse_offset_time(const char *s, int64_t *out);

/* One ListOffsets for every partition of the topics in md (topics with errors skipped). */
int cli_list_offsets(const struct cli_common *o, struct kclient *c,
                     const struct kafka_metadata_response *md, int64_t timestamp,
                     struct kafka_list_offsets_response *resp);

/* The answer for topic/partition in r, or NULL. */
const struct kafka_list_offsets_response_list_offsets_partition_response *
cli_find_offset(const struct kafka_list_offsets_response *r, struct kafka_str topic,
                int32_t partition);

#endif
