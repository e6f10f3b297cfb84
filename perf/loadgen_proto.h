/* loadgen_proto.h - the client half of the Kafka wire: request frames out, response
 * frames in, on the project's generated codec (dataplane/kafka). No I/O here. */
#ifndef SLUICE_PERF_LOADGEN_PROTO_H
#define SLUICE_PERF_LOADGEN_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "dataplane/kafka/kafka_msgs.h"

#define LG_CLIENT_ID "sluice-loadgen"

/* The API versions the load generator speaks, and the highest the broker offered. */
struct lg_versions {
    int16_t produce, fetch, list_offsets, metadata, create_topics;
    /* consumer groups (--group); -1 where the broker lacks them */
    int16_t find_coordinator, join_group, sync_group, heartbeat, leave_group;
    int16_t offset_commit, offset_fetch;
};

/* Encode [int32 size][request header][body] with w (iovec mode keeps record bytes
 * by reference). Returns 0 or a KAFKA_ERR_*. */
int lg_request_encode(struct kafka_writer *w, int16_t api_key, int16_t version,
                      int32_t correlation_id, const void *msg);

/* Decode a response frame (without its size prefix). The body's strings, bytes and
 * records point into frame; arrays come from arena. */
int lg_response_decode(const uint8_t *frame, size_t len_bytes, int16_t api_key,
                       int16_t version, int32_t *correlation_id, void *msg,
                       struct kafka_arena *arena);

/* The correlation id of a response frame (the first 4 bytes), -1 if too short. */
int32_t lg_frame_correlation_id(const uint8_t *frame, size_t len_bytes);

#endif
