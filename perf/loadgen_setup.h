/* loadgen_setup.h - what the load generator learns before a run, over one blocking
 * connection: API versions, the topics (created if missing) and their partition counts,
 * the offsets consumers start from, and (--group) the group's coordinator. Not on any
 * hot path. */
#ifndef SLUICE_PERF_LOADGEN_SETUP_H
#define SLUICE_PERF_LOADGEN_SETUP_H

#include "perf/loadgen.h"
#include "perf/loadgen_proto.h"

struct lg_topic {
    char name[LG_TOPIC_NAME_BYTES];
    uint32_t partitions;
    int64_t *start_offsets;   /* partitions entries: where consumers begin */
};

struct lg_cluster {
    struct lg_versions versions;
    uint32_t topic_count;
    struct lg_topic topics[LG_MAX_TOPICS];
    char coordinator_host[64];   /* --group: FindCoordinator's answer, as an address */
    uint16_t coordinator_port;
};

/* Versions, metadata (creating missing topics when asked) and start offsets. */
int lg_setup(const struct lg_options *o, struct lg_cluster *c, char *err, size_t err_bytes);
/* Refresh start_offsets (latest or earliest as the options say): before each sweep run. */
int lg_setup_offsets(const struct lg_options *o, struct lg_cluster *c, char *err,
                     size_t err_bytes);
void lg_cluster_destroy(struct lg_cluster *c);

#endif
