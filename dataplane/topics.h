/* topics.h - how a shard reads the topic catalogue without depending on control/.
 *
 * The catalogue and its immutable snapshots belong to control (control/catalog.h); the
 * dependency rule (control -> dataplane) forbids the dataplane from calling into it, so
 * control hands every shard a struct topic_source: a reader context plus functions that
 * refresh the shard's snapshot (between loop iterations, never blocking) and look topics
 * up in it. A struct topic_info is a view into the snapshot the shard holds; it stays
 * valid until that shard's next refresh. */
#ifndef SLUICE_DATAPLANE_TOPICS_H
#define SLUICE_DATAPLANE_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/partition_log.h"

struct topic_info {
    const char *name;
    const uint8_t *id;              /* 16 bytes */
    int32_t partition_count;
    bool internal;
    const uint16_t *partition_shard; /* owner shard of each partition */
    int64_t max_message_bytes;      /* max.message.bytes */
    bool log_append_time;           /* message.timestamp.type=LogAppendTime */
    struct plog_config log;         /* segment/retention/index settings */
};

struct topic_source {
    void *reader;                   /* control's per-shard reader */
    /* The newest snapshot's epoch (refreshes the shard's hold on it). */
    uint64_t (*refresh)(void *reader);
    size_t (*count)(void *reader);
    bool (*at)(void *reader, size_t index, struct topic_info *out);
    bool (*find)(void *reader, const char *name, size_t name_len, struct topic_info *out);
    bool (*find_id)(void *reader, const uint8_t id[16], struct topic_info *out);
};

#endif
