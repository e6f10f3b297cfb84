/* config.c - the registry of broker keys, properties parsing and typed lookups.
 * See config.h for the model. Properties syntax follows java.util.Properties closely
 * enough for broker files: '#' and '!' comments, key=value, key: value or "key value",
 * surrounding whitespace trimmed, a trailing backslash continues the line. */
#include "control/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hw/log.h"

#define KIB (1024LL)
#define MIB (1024LL * 1024LL)
#define GIB (1024LL * 1024LL * 1024LL)

static const struct config_key registry[] = {
    /* listeners and identity */
    {"listeners", CONFIG_LIST, "PLAINTEXT://127.0.0.1:9092", 0, 0,
     "Listener the broker accepts Kafka clients on (one PLAINTEXT host:port)."},
    {"advertised.listeners", CONFIG_LIST, NULL, 0, 0,
     "Listener given to clients in Metadata; defaults to listeners."},
    {"node.id", CONFIG_INT, "1", 0, INT32_MAX, "This broker's id in Metadata."},
    {"log.dirs", CONFIG_STRING, "./sluice-data", 0, 0, "Data directory."},
    /* topics */
    {"num.partitions", CONFIG_INT, "1", 1, 1000000, "Partitions of an auto-created topic."},
    {"default.replication.factor", CONFIG_INT, "1", 1, 32767,
     "Replication factor of auto-created topics (only 1 can be honoured)."},
    {"auto.create.topics.enable", CONFIG_BOOL, "true", 0, 0,
     "Create a topic on first Metadata or Produce for it."},
    {"message.max.bytes", CONFIG_INT, "1048588", 0, INT32_MAX,
     "Largest record batch the broker accepts."},
    /* log */
    {"log.retention.ms", CONFIG_LONG, NULL, -1, INT64_MAX,
     "Retention time; overrides log.retention.hours when set (-1 = forever)."},
    {"log.retention.hours", CONFIG_INT, "168", -1, INT32_MAX, "Retention time in hours."},
    {"log.retention.bytes", CONFIG_LONG, "-1", -1, INT64_MAX,
     "Retention size per partition (-1 = unbounded)."},
    {"log.segment.bytes", CONFIG_INT, "1073741824", 14, INT32_MAX, "Segment roll size."},
    {"log.roll.ms", CONFIG_LONG, NULL, 1, INT64_MAX, "Segment roll age in ms."},
    {"log.roll.hours", CONFIG_INT, "168", 1, INT32_MAX, "Segment roll age in hours."},
    {"log.flush.interval.messages", CONFIG_LONG, "9223372036854775807", 1, INT64_MAX,
     "Accepted for compatibility; acks=all appends are always fsynced."},
    /* broker defaults of topic configs (topic_config.c names each key's synonyms; values
     * are validated as the topic key's at boot) */
    {"log.retention.minutes", CONFIG_INT, NULL, -1, INT32_MAX,
     "Retention time in minutes; overrides log.retention.hours when set."},
    {"log.cleanup.policy", CONFIG_LIST, "delete", 0, 0,
     "Default cleanup.policy (compact is refused until compaction exists)."},
    {"compression.type", CONFIG_STRING, "producer", 0, 0,
     "Default topic compression.type (producer keeps the producer's codec)."},
    {"log.message.timestamp.type", CONFIG_STRING, "CreateTime", 0, 0,
     "Default message.timestamp.type: CreateTime or LogAppendTime."},
    {"log.message.timestamp.difference.max.ms", CONFIG_LONG, "9223372036854775807", 0,
     INT64_MAX, "Default message.timestamp.difference.max.ms."},
    {"log.message.downconversion.enable", CONFIG_BOOL, "true", 0, 0,
     "Default message.downconversion.enable."},
    {"min.insync.replicas", CONFIG_INT, "1", 1, INT32_MAX,
     "Default min.insync.replicas (one node: 1)."},
    {"log.index.interval.bytes", CONFIG_INT, "4096", 0, INT32_MAX,
     "Default index.interval.bytes: bytes of log between two offset index entries."},
    {"log.index.size.max.bytes", CONFIG_INT, "10485760", 4, INT32_MAX,
     "Default segment.index.bytes."},
    {"log.preallocate", CONFIG_BOOL, "false", 0, 0, "Default preallocate."},
    {"log.segment.delete.delay.ms", CONFIG_LONG, "60000", 0, INT64_MAX,
     "Default file.delete.delay.ms."},
    {"log.flush.interval.ms", CONFIG_LONG, NULL, 0, INT64_MAX,
     "Accepted for compatibility (default flush.ms); acks=all appends are always fsynced."},
    {"log.flush.scheduler.interval.ms", CONFIG_LONG, "9223372036854775807", 0, INT64_MAX,
     "Accepted for compatibility; acks=all appends are always fsynced."},
    {"log.cleaner.delete.retention.ms", CONFIG_LONG, "86400000", 0, INT64_MAX,
     "Default delete.retention.ms."},
    {"log.cleaner.min.compaction.lag.ms", CONFIG_LONG, "0", 0, INT64_MAX,
     "Default min.compaction.lag.ms."},
    {"unclean.leader.election.enable", CONFIG_BOOL, "false", 0, 0,
     "Accepted for compatibility; a single node has no other replica to elect."},
    /* idempotent producers (storage/producer_state.h) */
    {"producer.id.expiration.ms", CONFIG_INT, "86400000", 1, INT32_MAX,
     "A producer id idle this long is forgotten by the partitions it wrote to."},
    {"sluice.max.producers.per.partition", CONFIG_INT, "4096", 1, 1000000,
     "Idempotent producers one partition remembers; a new one evicts the least recently "
     "used (whose retried duplicates are then no longer recognised)."},
    /* consumer groups (control/group_coordinator.c) */
    {"offsets.topic.num.partitions", CONFIG_INT, "50", 1, 1000,
     "Partitions of __consumer_offsets, created on the first offset commit."},
    {"offsets.retention.minutes", CONFIG_INT, "10080", 1, INT32_MAX,
     "An empty group's committed offsets are kept this long after it became empty."},
    {"group.min.session.timeout.ms", CONFIG_INT, "6000", 0, INT32_MAX,
     "Smallest session timeout a group member may ask for."},
    {"group.max.session.timeout.ms", CONFIG_INT, "1800000", 0, INT32_MAX,
     "Largest session timeout a group member may ask for."},
    {"group.initial.rebalance.delay.ms", CONFIG_INT, "3000", 0, INT32_MAX,
     "How long the first rebalance of an empty group waits for more members."},
    {"group.max.size", CONFIG_INT, "2147483647", 1, INT32_MAX,
     "Most members one group may have (sluice caps it at 10000)."},
    /* transactions (control/txn_api.c) */
    {"transaction.max.timeout.ms", CONFIG_INT, "900000", 1, INT32_MAX,
     "Largest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT)."},
    {"transactional.id.expiration.ms", CONFIG_INT, "604800000", 1, INT32_MAX,
     "A transactional id with no transaction for this long is forgotten."},
    {"transaction.state.log.num.partitions", CONFIG_INT, "4", 1, 1000,
     "Partitions of __transaction_state, created on first use (Kafka: 50; one node's "
     "coordinator is one thread, 4 spread its appends over up to 4 shards)."},
    {"transaction.abort.timed.out.transaction.cleanup.interval.ms", CONFIG_INT, "10000", 1,
     INT32_MAX, "How often transactions past their timeout are looked for and aborted."},
    /* network */
    {"socket.request.max.bytes", CONFIG_INT, "104857600", 1, INT32_MAX,
     "Largest request frame; larger ones close the connection."},
    {"connections.max.idle.ms", CONFIG_LONG, "600000", 1, INT64_MAX,
     "Idle connections are closed after this long."},
    {"max.connections", CONFIG_INT, "10000", 1, INT32_MAX,
     "Connections accepted at once across all shards."},
    {"queued.max.requests", CONFIG_INT, "500", 1, INT32_MAX,
     "Requests queued per shard before it stops reading."},
    /* sluice runtime */
    {"sluice.cores", CONFIG_STRING, "all", 0, 0,
     "Cores for shards: a count N or a list like 0,2-3 (all = every online core)."},
    {"sluice.metrics.listen", CONFIG_STRING, "127.0.0.1:9644", 0, 0,
     "HTTP listener (IPV4:PORT) of the Prometheus endpoint GET /metrics; empty: none."},
    {"sluice.idle.policy", CONFIG_STRING, "block", 0, 0,
     "What an idle shard does: block (wait in io_uring) or poll (spin)."},
    {"sluice.idle.block.timeout.ms", CONFIG_INT, "100", 1, 60000,
     "Longest a blocked shard sleeps before checking timers."},
    {"sluice.shard.buffer.bytes", CONFIG_LONG, "67108864", 1 * MIB, 64 * GIB,
     "Storage chunk memory each shard allocates and registers at start (the network's "
     "64 KiB chunks, receive buffers + 256, come on top)."},
    {"sluice.batch.cache.bytes", CONFIG_LONG, "268435456", 0, 1024 * GIB,
     "Batch cache budget per shard."},
    {"sluice.storage.dsync.writes", CONFIG_BOOL, "true", 0, 0,
     "acks=all flushes write with RWF_DSYNC instead of write + fdatasync (false: the latter)."},
    {"sluice.storage.chunk.bytes", CONFIG_LONG, "1114112", 64 * 1024, 1 * GIB,
     "Storage chunk size (a multiple of 4096); a stored batch must fit in one minus 4 KiB."},
    {"sluice.log.level", CONFIG_STRING, "info", 0, 0, "debug, info, warn or error."},
    {"sluice.cluster.id", CONFIG_STRING, "sluice-cluster-0001", 0, 0,
     "Cluster id given to clients in Metadata."},
    {"sluice.conn.max.inflight", CONFIG_INT, "1024", 1, 1000000,
     "Responses queued per connection before the broker stops reading it."},
    {"sluice.net.recv.buffers", CONFIG_INT, "128", 16, 32768,
     "Provided receive buffers (64 KiB chunks) per shard; a power of two."},
    {"sluice.net.zc.threshold.bytes", CONFIG_LONG, "65536", 0, INT32_MAX,
     "Sends at least this large use SEND_ZC (0 = never)."},
    {"sluice.net.zc.local.peers", CONFIG_BOOL, "false", 0, 0,
     "Use SEND_ZC to clients on this host too (the kernel copies loopback sends anyway)."},
    {"sluice.replication.factor.clamp", CONFIG_BOOL, "false", 0, 0,
     "Clamp a requested replication factor above 1 to 1 (with a warning) instead of failing."},
    {"sluice.max.topics", CONFIG_INT, "10000", 1, 1000000,
     "Most topics the catalogue holds; creating more fails with POLICY_VIOLATION."},
    {"sluice.max.partitions.per.topic", CONFIG_INT, "10000", 1, 1000000,
     "Most partitions one topic may have; more fails with INVALID_PARTITIONS."},
    {"sluice.shard.input.max.bytes", CONFIG_LONG, "268435456", 65536, 64 * GIB,
     "Soft budget for partial request bytes a shard buffers; above it, reading pauses."},
    {"sluice.shutdown.timeout.ms", CONFIG_INT, "4000", 100, 600000,
     "Graceful stop: longest wait for in-flight responses to leave."},
    /* dpdk */
    {"dpdk.enabled", CONFIG_BOOL, "false", 0, 0, "Use the DPDK backend instead of sockets."},
    {"dpdk.eal.args", CONFIG_STRING, "", 0, 0, "Extra EAL arguments (e.g. --vdev=...)."},
    {"dpdk.port", CONFIG_INT, "0", 0, 1023, "DPDK port id."},
    {"dpdk.ip", CONFIG_STRING, NULL, 0, 0, "IPv4 address of the DPDK port."},
    {"dpdk.netmask", CONFIG_STRING, "255.255.255.0", 0, 0, "Netmask of the DPDK port."},
    {"dpdk.gateway", CONFIG_STRING, NULL, 0, 0, "Default gateway for the DPDK port."},
    {"dpdk.tcp.keepalive.ms", CONFIG_INT, "0", 0, INT32_MAX,
     "TCP keepalive of the DPDK stack: idle time before the first probe (0 = off)."},
    {"dpdk.tcp.keepalive.interval.ms", CONFIG_INT, "75000", 1, INT32_MAX,
     "TCP keepalive: time between unanswered probes."},
    {"dpdk.tcp.keepalive.probes", CONFIG_INT, "9", 1, 1000,
     "TCP keepalive: unanswered probes before the connection is reset."},
    {"dpdk.test.drop.percent", CONFIG_INT, "0", 0, 100,
     "Test fault (hosts without netem): percent of TCP frames the driver drops, both ways."},
    {"dpdk.test.reorder.percent", CONFIG_INT, "0", 0, 100,
     "Test fault: percent of TCP frames the driver holds back behind later ones."},
};

const struct config_key *config_registry(size_t *count) {
    *count = sizeof registry / sizeof registry[0];
    return registry;
}

const struct config_key *config_registry_find(const char *name) {
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (strcmp(registry[i].name, name) == 0) return &registry[i];
    return NULL;
}

void config_init(struct config *cfg) { memset(cfg, 0, sizeof *cfg); }

static bool parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out) {
    if (strcasecmp(s, "true") == 0) { *out = true; return true; }
    if (strcasecmp(s, "false") == 0) { *out = false; return true; }
    return false;
}

int config_validate(const struct config_key *key, const char *value, char *err,
                    size_t err_bytes) {
    int64_t v;
    bool b;
    switch (key->type) {
    case CONFIG_INT:
    case CONFIG_LONG:
        if (!parse_i64(value, &v)) {
            snprintf(err, err_bytes, "%s: '%s' is not an integer", key->name, value);
            return -1;
        }
        if (v < key->min_value || v > key->max_value) {
            snprintf(err, err_bytes, "%s: %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
                     key->name, v, key->min_value, key->max_value);
            return -1;
        }
        return 0;
    case CONFIG_BOOL:
        if (!parse_bool(value, &b)) {
            snprintf(err, err_bytes, "%s: '%s' is not true or false", key->name, value);
            return -1;
        }
        return 0;
    case CONFIG_STRING:
    case CONFIG_LIST:
        return 0;
    }
    return 0;
}

static struct config_entry *find_entry(struct config *cfg, const char *key) {
    for (int i = 0; i < cfg->entry_count; i++)
        if (strcmp(cfg->entries[i].key, key) == 0) return &cfg->entries[i];
    return NULL;
}

int config_set(struct config *cfg, const char *key, const char *value,
               enum config_source source, char *err, size_t err_bytes) {
    if (strlen(key) == 0 || strlen(key) >= CONFIG_MAX_KEY_BYTES) {
        snprintf(err, err_bytes, "config key is empty or longer than %d bytes",
                 CONFIG_MAX_KEY_BYTES - 1);
        return -1;
    }
    if (strlen(value) >= CONFIG_MAX_VALUE_BYTES) {
        snprintf(err, err_bytes, "%s: value longer than %d bytes", key,
                 CONFIG_MAX_VALUE_BYTES - 1);
        return -1;
    }
    const struct config_key *reg = config_registry_find(key);
    if (reg) {
        if (config_validate(reg, value, err, err_bytes) != 0) return -1;
    } else {
        log_warn("config_unknown_key", "key=%s", key);
    }
    struct config_entry *e = find_entry(cfg, key);
    if (!e) {
        if (cfg->entry_count >= CONFIG_MAX_ENTRIES) {
            snprintf(err, err_bytes, "more than %d config entries", CONFIG_MAX_ENTRIES);
            return -1;
        }
        e = &cfg->entries[cfg->entry_count++];
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    snprintf(e->value, sizeof e->value, "%s", value);
    e->source = source;
    return 0;
}

int config_set_assignment(struct config *cfg, const char *assignment, char *err,
                          size_t err_bytes) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        snprintf(err, err_bytes, "expected key=value, got '%s'", assignment);
        return -1;
    }
    char key[CONFIG_MAX_KEY_BYTES];
    size_t key_len = (size_t)(eq - assignment);
    if (key_len >= sizeof key) {
        snprintf(err, err_bytes, "config key too long in '%s'", assignment);
        return -1;
    }
    memcpy(key, assignment, key_len);
    key[key_len] = '\0';
    return config_set(cfg, key, eq + 1, CONFIG_SOURCE_OVERRIDE, err, err_bytes);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\f') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\n' || s[n - 1] == '\f'))
        s[--n] = '\0';
    return s;
}

/* Split one logical properties line into key and value; false for blank/comment. */
static bool split_property(char *line, char **key, char **value) {
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == '!') return false;
    char *sep = s + strcspn(s, "=: \t");
    char *v = sep;
    if (*sep != '\0') {
        *sep = '\0';
        v = trim(sep + 1);
        if (*v == '=' || *v == ':') v = trim(v + 1);
    }
    *key = s;
    *value = v;
    return true;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t err_bytes) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_bytes, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char logical[CONFIG_MAX_KEY_BYTES + CONFIG_MAX_VALUE_BYTES + 16];
    char physical[sizeof logical];
    size_t used = 0;
    int line_no = 0, rc = 0;
    while (fgets(physical, sizeof physical, f)) {
        line_no++;
        size_t n = strlen(physical);
        if (n == sizeof physical - 1 && physical[n - 1] != '\n') {
            snprintf(err, err_bytes, "%s:%d: line too long", path, line_no);
            rc = -1;
            break;
        }
        while (n > 0 && (physical[n - 1] == '\n' || physical[n - 1] == '\r')) physical[--n] = 0;
        bool continues = n > 0 && physical[n - 1] == '\\';
        if (continues) physical[--n] = '\0';
        char *piece = used > 0 ? trim(physical) : physical;
        size_t piece_len = strlen(piece);
        if (used + piece_len >= sizeof logical) {
            snprintf(err, err_bytes, "%s:%d: line too long", path, line_no);
            rc = -1;
            break;
        }
        memcpy(logical + used, piece, piece_len + 1);
        used += piece_len;
        if (continues) continue;
        used = 0;
        char *key, *value;
        if (!split_property(logical, &key, &value)) continue;
        char msg[256];
        if (config_set(cfg, key, value, CONFIG_SOURCE_FILE, msg, sizeof msg) != 0) {
            snprintf(err, err_bytes, "%s:%d: %s", path, line_no, msg);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

const char *config_get(const struct config *cfg, const char *key) {
    for (int i = 0; i < cfg->entry_count; i++)
        if (strcmp(cfg->entries[i].key, key) == 0) return cfg->entries[i].value;
    const struct config_key *reg = config_registry_find(key);
    return reg ? reg->default_value : NULL;
}

int64_t config_get_i64(const struct config *cfg, const char *key) {
    const char *v = config_get(cfg, key);
    int64_t out = 0;
    bool ok = v && parse_i64(v, &out);
    (void)ok; /* values were validated on set; a missing one reads as 0 */
    return out;
}

bool config_get_bool(const struct config *cfg, const char *key) {
    const char *v = config_get(cfg, key);
    bool out = false;
    return v && parse_bool(v, &out) && out;
}

enum config_source config_source_of(const struct config *cfg, const char *key) {
    for (int i = 0; i < cfg->entry_count; i++)
        if (strcmp(cfg->entries[i].key, key) == 0) return cfg->entries[i].source;
    return CONFIG_SOURCE_DEFAULT;
}
