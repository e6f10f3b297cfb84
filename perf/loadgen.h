/* loadgen.h - `sluice loadgen`: a Kafka load generator and correctness checker.
 *
 * The pieces (one file each):
 *   loadgen_opts.c    the workload: key=value file and the same keys as --flags
 *   loadgen_hist.c    HDR-style latency histograms
 *   loadgen_rate.c    open-loop schedule, message sizes and key distributions (zipf)
 *   loadgen_setup.c   blocking admin round trips before the run (versions, metadata,
 *                     create topics, end offsets) on a plain socket
 *   loadgen_assign.c  consumer protocol bytes and the range assignor (--group)
 *   loadgen_group.c   a consumer's group membership: join, sync, heartbeat, commit
 *   loadgen_worker.c  one pinned thread: an io_uring, a net_uring backend used as a
 *                     client, its producer and consumer connections
 *   loadgen_report.c  progress line, summary table, JSON
 *   loadgen.c         the command: threads, warm-up, duration, sweep
 */
#ifndef SLUICE_PERF_LOADGEN_H
#define SLUICE_PERF_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "perf/loadgen_hist.h"

#define LG_MAX_TOPICS 64
#define LG_MAX_PARTITIONS 4096       /* per topic */
#define LG_MAX_THREADS 64
#define LG_MAX_CONNS 1024            /* producers + consumers */
#define LG_MAX_SWEEP 16
#define LG_TOPIC_NAME_BYTES 200
#define LG_GROUP_NAME_BYTES 200

enum lg_size_dist { LG_SIZE_FIXED = 0, LG_SIZE_UNIFORM = 1 };
enum lg_key_dist { LG_KEY_NONE = 0, LG_KEY_ROUND_ROBIN = 1, LG_KEY_RANDOM = 2, LG_KEY_ZIPF = 3 };
enum lg_consume_from { LG_FROM_LATEST = 0, LG_FROM_EARLIEST = 1 };
enum lg_consumer_mode { LG_CONSUMERS_FANOUT = 0, LG_CONSUMERS_SPLIT = 1 };

struct lg_options {
    char host[128];
    uint16_t port;
    char topic[LG_TOPIC_NAME_BYTES];  /* name, or prefix when topics > 1 */
    uint32_t topics;
    uint32_t partitions;              /* per topic; used to create missing topics */
    bool create_topics;
    int16_t replication_factor;
    enum lg_size_dist size_dist;
    uint32_t message_bytes;           /* fixed size, or the uniform minimum */
    uint32_t message_bytes_max;       /* uniform maximum */
    enum lg_key_dist key_dist;
    uint32_t key_count;               /* distinct keys (round-robin, random, zipf) */
    double zipf_s;                    /* zipf exponent */
    double rate_msgs;                 /* total messages/s over all producers; 0 = max */
    uint32_t batch_bytes;             /* seal a partition's batch at this size */
    uint32_t linger_ms;               /* ... or this long after its first message */
    int16_t acks;                     /* 0, 1, -1 (all) */
    int codec;                        /* enum record_codec */
    uint32_t max_inflight;            /* produce requests in flight per connection */
    uint32_t request_timeout_ms;      /* a produce request unanswered this long fails
                                         (Kafka's request.timeout.ms) */
    uint32_t producers;
    uint32_t consumers;
    enum lg_consumer_mode consumer_mode;
    enum lg_consume_from consume_from;
    /* --group: the consumers are members of this consumer group ("" = assigned
     * partitions, consumer-mode decides) */
    char group[LG_GROUP_NAME_BYTES];
    uint32_t session_timeout_ms;
    uint32_t heartbeat_interval_ms;
    uint32_t auto_commit_interval_ms;
    uint32_t fetch_max_bytes;         /* per fetch response */
    uint32_t fetch_partition_max_bytes;
    uint32_t fetch_max_wait_ms;
    double warmup_s;
    double duration_s;
    uint64_t messages;                /* stop after this many (0 = by duration) */
    double drain_s;                   /* how long consumers may catch up at the end */
    uint32_t threads;
    int cpus[LG_MAX_THREADS];         /* pin list (-1 = no pinning) */
    uint32_t cpu_count;
    char json_path[512];
    double sweep_pct[LG_MAX_SWEEP];
    uint32_t sweep_count;
    bool quiet;                       /* no progress lines */
    /* --dpdk: the data connections go through a DPDK port and the userspace TCP stack
     * (setup and admin stay on kernel sockets); thread i drives queue i */
    bool dpdk;
    char dpdk_eal_args[512];
    char dpdk_ip[32], dpdk_netmask[32], dpdk_gateway[32];
    uint16_t dpdk_port;
};

/* A partition where the check found something (the first LG_MAX_PROBLEMS are kept). */
#define LG_MAX_PROBLEMS 32
struct lg_partition_problem {
    char topic[LG_TOPIC_NAME_BYTES];
    uint32_t partition;
    uint64_t acked, lost, unread, duplicated, out_of_order;
};

/* Results of one run (the measured interval, after warm-up). */
struct lg_result {
    double rate_target_msgs;
    double seconds;
    uint64_t produced_msgs, produced_bytes, produce_errors, acked_msgs, acked_bytes;
    uint64_t consumed_msgs, consumed_bytes, consumed_batches;
    uint64_t crc_errors, lost, duplicated, out_of_order, fetch_errors, conn_errors;
    uint64_t unread;  /* acked beyond where a consumer stopped: the drain ended first */
    /* --group: records read again after a partition moved to another member (below the
     * old member's position: Kafka's at-least-once, not counted as duplicated), the
     * generations the members synced into, and how many of those came after the group
     * had settled and producing started */
    uint64_t redelivered, rebalances, rebalances_mid_run, commit_errors;
    struct hist produce_latency;      /* intended send -> ack, us */
    struct hist e2e_latency;          /* intended send -> consumed, us */
    struct lg_partition_problem problems[LG_MAX_PROBLEMS];
    uint32_t problem_count;           /* kept; problem_partitions counts them all */
    uint32_t problem_partitions;
    char group[LG_GROUP_NAME_BYTES];  /* --group, "" without */
};

/* options */
void lg_options_default(struct lg_options *o);
/* Apply one key=value (from a file or a --key=value flag). 0 or -1 with err filled. */
int lg_options_set(struct lg_options *o, const char *key, const char *value, char *err,
                   size_t err_bytes);
int lg_options_load_file(struct lg_options *o, const char *path, char *err, size_t err_bytes);
int lg_options_parse_args(struct lg_options *o, int argc, char **argv, char *err,
                          size_t err_bytes);
int lg_options_check(const struct lg_options *o, char *err, size_t err_bytes);
void lg_options_usage(void);

int cmd_loadgen(int argc, char **argv);

#endif
