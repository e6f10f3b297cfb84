/* loadgen_opts.c - the workload description: one table of keys, three ways to set them.
 *
 * A workload file holds `key=value` or `key: value` lines (so a flat YAML file works;
 * '#' starts a comment), and every key is also a flag: `--rate=50000` or `--rate 50000`.
 * Flags are applied after the file, in order, so they override it. Keys follow
 * OpenMessaging-Benchmark's vocabulary where it has one (partitions, message size,
 * producer rate, batch size, linger). Every value is range-checked here; the run never
 * sees an impossible workload. */
#include "perf/loadgen.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/record/batch.h"

void lg_options_default(struct lg_options *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->port = 9092;
    snprintf(o->topic, sizeof o->topic, "loadgen");
    o->topics = 1;
    o->partitions = 1;
    o->create_topics = true;
    o->replication_factor = 1;
    o->message_bytes = 1024;
    o->message_bytes_max = 1024;
    o->key_count = 1000;
    o->zipf_s = 0.99;
    o->batch_bytes = 64 * 1024;
    o->linger_ms = 1;
    o->acks = 1;
    o->codec = RECORD_CODEC_NONE;
    o->max_inflight = 5;
    o->request_timeout_ms = 30000;
    o->producers = 1;
    o->consumers = 1;
    o->fetch_max_bytes = 4 << 20;
    o->fetch_partition_max_bytes = 1 << 20;
    snprintf(o->dpdk_netmask, sizeof o->dpdk_netmask, "255.255.255.0");
    o->fetch_max_wait_ms = 100;
    o->session_timeout_ms = 10000;
    o->heartbeat_interval_ms = 3000;
    o->auto_commit_interval_ms = 5000;
    o->warmup_s = 1;
    o->duration_s = 10;
    o->drain_s = 5;
    o->threads = 1;
    o->cpu_count = 0;
}

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || x > max) return -1;
    uint64_t mult = 1;
    if (strncmp(end, "KiB", 3) == 0) mult = 1024, end += 3;
    else if (strncmp(end, "MiB", 3) == 0) mult = 1 << 20, end += 3;
    else if (*end == 'k' || *end == 'K') mult = 1000, end++;
    else if (*end == 'M') mult = 1000000, end++;
    if (*end != '\0' || x > max / mult || x * mult < min) return -1;
    *out = x * mult;
    return 0;
}

static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out) {
    uint64_t x;
    if (parse_u64(v, min, max, &x) != 0) return -1;
    *out = (uint32_t)x;
    return 0;
}

static int parse_double(const char *v, double min, double max, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*end == 'k' || *end == 'K') x *= 1e3, end++;
    else if (*end == 'M') x *= 1e6, end++;
    if (errno || end == v || *end != '\0' || !(x >= min && x <= max)) return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out) {
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *out = false;
    else return -1;
    return 0;
}

static int parse_bootstrap(struct lg_options *o, const char *v) {
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof o->host) return -1;
    uint32_t port;
    if (parse_u32(colon + 1, 1, 65535, &port) != 0) return -1;
    memcpy(o->host, v, (size_t)(colon - v));
    o->host[colon - v] = '\0';
    o->port = (uint16_t)port;
    return 0;
}

/* "1024" or "uniform:100-2000" */
static int parse_size(struct lg_options *o, const char *v) {
    uint32_t lo, hi;
    if (strncmp(v, "uniform:", 8) == 0) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", v + 8);
        char *dash = strchr(buf, '-');
        if (!dash) return -1;
        *dash = '\0';
        if (parse_u32(buf, 24, 1 << 20, &lo) || parse_u32(dash + 1, 24, 1 << 20, &hi) || hi < lo)
            return -1;
        o->size_dist = LG_SIZE_UNIFORM;
    } else {
        if (parse_u32(v, 24, 1 << 20, &lo)) return -1;
        hi = lo;
        o->size_dist = LG_SIZE_FIXED;
    }
    o->message_bytes = lo;
    o->message_bytes_max = hi;
    return 0;
}

/* none | round-robin | random | zipf (key count from `keys`) */
static int parse_key_dist(struct lg_options *o, const char *v) {
    if (!strcmp(v, "none")) o->key_dist = LG_KEY_NONE;
    else if (!strcmp(v, "round-robin")) o->key_dist = LG_KEY_ROUND_ROBIN;
    else if (!strcmp(v, "random") || !strcmp(v, "uniform")) o->key_dist = LG_KEY_RANDOM;
    else if (!strcmp(v, "zipf")) o->key_dist = LG_KEY_ZIPF;
    else return -1;
    return 0;
}

static int parse_codec(struct lg_options *o, const char *v) {
    static const char *names[RECORD_CODEC_COUNT] = {"none", "gzip", "snappy", "lz4", "zstd"};
    for (int i = 0; i < RECORD_CODEC_COUNT; i++)
        if (!strcmp(v, names[i])) {
            o->codec = i;
            return 0;
        }
    return -1;
}

static int parse_cpus(struct lg_options *o, const char *v) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    o->cpu_count = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        uint32_t cpu;
        if (o->cpu_count >= LG_MAX_THREADS || parse_u32(tok, 0, 4095, &cpu)) return -1;
        o->cpus[o->cpu_count++] = (int)cpu;
    }
    if (o->cpu_count == 0) return -1;
    o->threads = o->cpu_count;
    return 0;
}

static int parse_sweep(struct lg_options *o, const char *v) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    o->sweep_count = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        double pct;
        if (o->sweep_count >= LG_MAX_SWEEP || parse_double(tok, 1, 100, &pct)) return -1;
        o->sweep_pct[o->sweep_count++] = pct;
    }
    return o->sweep_count ? 0 : -1;
}

static int parse_acks(struct lg_options *o, const char *v) {
    if (!strcmp(v, "all") || !strcmp(v, "-1")) o->acks = -1;
    else if (!strcmp(v, "1")) o->acks = 1;
    else if (!strcmp(v, "0")) o->acks = 0;
    else return -1;
    return 0;
}

struct opt_key {
    const char *name;
    const char *help;
};

/* The keys, for --help (the switch in lg_options_set is the other half). */
static const struct opt_key keys[] = {
    {"bootstrap", "HOST:PORT of the broker (127.0.0.1:9092)"},
    {"topic", "topic name, or name prefix with topics > 1 (loadgen)"},
    {"topics", "number of topics (1)"},
    {"partitions", "partitions per topic, for topics it creates (1)"},
    {"create-topics", "create missing topics: true|false (true)"},
    {"replication-factor", "for topics it creates (1)"},
    {"message-size", "bytes per message value: N or uniform:MIN-MAX, >= 24 (1024)"},
    {"key-distribution", "none|round-robin|random|zipf (none)"},
    {"keys", "distinct keys (1000)"},
    {"zipf-exponent", "zipf s (0.99)"},
    {"rate", "messages/s over all producers, 0 = as fast as possible (0)"},
    {"batch-size", "bytes per partition batch (64KiB)"},
    {"linger-ms", "seal a batch this long after its first message (1)"},
    {"acks", "0|1|all (1)"},
    {"compression", "none|gzip|snappy|lz4|zstd (none)"},
    {"max-in-flight", "produce requests in flight per connection (5)"},
    {"request-timeout-ms", "a produce request unanswered this long fails: its messages "
                           "count as produce errors and the connection is closed (30000)"},
    {"producers", "producer connections (1)"},
    {"consumers", "consumer connections (1)"},
    {"consumer-mode", "fanout (each reads every partition) | split (1)"},
    {"consume-from", "latest|earliest; --group: where uncommitted partitions start (latest)"},
    {"group", "NAME: the consumers are one consumer group (range assignor, offsets "
              "committed; none: consumer-mode)"},
    {"session-timeout-ms", "group session timeout (10000)"},
    {"heartbeat-interval-ms", "group heartbeat interval (3000)"},
    {"auto-commit-interval-ms", "group offset commit interval (5000)"},
    {"fetch-max-bytes", "per fetch response (4MiB)"},
    {"fetch-partition-max-bytes", "per partition in a fetch (1MiB)"},
    {"fetch-max-wait-ms", "(100)"},
    {"warmup", "seconds measured but not reported (1)"},
    {"duration", "seconds reported (10)"},
    {"messages", "stop producing after this many messages (0 = by duration)"},
    {"drain", "seconds consumers may catch up after producers stop (5)"},
    {"threads", "pinned threads (1)"},
    {"cpus", "pin list, e.g. 0,1 (sets threads)"},
    {"json", "write machine-readable results to FILE"},
    {"sweep", "percents of the measured maximum rate, e.g. 10,50,80"},
    {"quiet", "no live progress line: true|false"},
    {"dpdk", "client connections (with --group, the coordinator's too) through DPDK + "
             "the userspace stack (bare --dpdk: true)"},
    {"dpdk-eal-args", "EAL arguments, e.g. \"--no-pci --vdev=net_af_packet0,iface=X\""},
    {"dpdk-ip", "IPv4 address of the DPDK port (required with --dpdk)"},
    {"dpdk-netmask", "(255.255.255.0)"},
    {"dpdk-gateway", "gateway for off-link brokers (none)"},
    {"dpdk-port", "DPDK port id (0)"},
};

void lg_options_usage(void) {
    printf("usage: sluice loadgen [--workload FILE] [--KEY=VALUE | --KEY VALUE]...\n\n");
    printf("A workload file holds KEY=VALUE (or KEY: VALUE) lines with the same keys.\n\n");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        printf("  --%-26s %s\n", keys[i].name, keys[i].help);
}

static int copy_text(char *out, size_t out_bytes, const char *v) {
    size_t n = strlen(v);
    if (n >= out_bytes) return -1;
    memcpy(out, v, n + 1);
    return 0;
}

int lg_options_set(struct lg_options *o, const char *k, const char *v, char *err,
                   size_t err_bytes) {
    int rc = -1;
    uint32_t u32 = 0;
    if (!strcmp(k, "bootstrap")) rc = parse_bootstrap(o, v);
    else if (!strcmp(k, "topic")) {
        size_t n = strlen(v);
        rc = (n > 0 && n < 180) ? 0 : -1;
        if (rc == 0) memcpy(o->topic, v, n + 1);
    } else if (!strcmp(k, "topics")) rc = parse_u32(v, 1, LG_MAX_TOPICS, &o->topics);
    else if (!strcmp(k, "partitions")) rc = parse_u32(v, 1, LG_MAX_PARTITIONS, &o->partitions);
    else if (!strcmp(k, "create-topics")) rc = parse_bool(v, &o->create_topics);
    else if (!strcmp(k, "replication-factor")) {
        rc = parse_u32(v, 1, 32, &u32);
        o->replication_factor = (int16_t)u32;
    } else if (!strcmp(k, "message-size")) rc = parse_size(o, v);
    else if (!strcmp(k, "key-distribution")) rc = parse_key_dist(o, v);
    else if (!strcmp(k, "keys")) rc = parse_u32(v, 1, 1 << 24, &o->key_count);
    else if (!strcmp(k, "zipf-exponent")) rc = parse_double(v, 0.01, 10, &o->zipf_s);
    else if (!strcmp(k, "rate")) rc = parse_double(v, 0, 1e9, &o->rate_msgs);
    else if (!strcmp(k, "batch-size")) rc = parse_u32(v, 128, 16 << 20, &o->batch_bytes);
    else if (!strcmp(k, "linger-ms")) rc = parse_u32(v, 0, 60000, &o->linger_ms);
    else if (!strcmp(k, "acks")) rc = parse_acks(o, v);
    else if (!strcmp(k, "compression")) rc = parse_codec(o, v);
    else if (!strcmp(k, "max-in-flight")) rc = parse_u32(v, 1, 64, &o->max_inflight);
    else if (!strcmp(k, "request-timeout-ms"))
        rc = parse_u32(v, 100, 3600000, &o->request_timeout_ms);
    else if (!strcmp(k, "producers")) rc = parse_u32(v, 0, LG_MAX_CONNS, &o->producers);
    else if (!strcmp(k, "consumers")) rc = parse_u32(v, 0, LG_MAX_CONNS, &o->consumers);
    else if (!strcmp(k, "consumer-mode")) {
        rc = 0;
        if (!strcmp(v, "fanout")) o->consumer_mode = LG_CONSUMERS_FANOUT;
        else if (!strcmp(v, "split")) o->consumer_mode = LG_CONSUMERS_SPLIT;
        else rc = -1;
    } else if (!strcmp(k, "consume-from")) {
        rc = 0;
        if (!strcmp(v, "latest")) o->consume_from = LG_FROM_LATEST;
        else if (!strcmp(v, "earliest")) o->consume_from = LG_FROM_EARLIEST;
        else rc = -1;
    } else if (!strcmp(k, "group")) {
        rc = strpbrk(v, "\"\\") ? -1 : copy_text(o->group, sizeof o->group, v); /* JSON */
        for (const char *c = v; rc == 0 && *c; c++)
            if ((unsigned char)*c < 0x20) rc = -1;
    }
    else if (!strcmp(k, "session-timeout-ms"))
        rc = parse_u32(v, 1000, 3600000, &o->session_timeout_ms);
    else if (!strcmp(k, "heartbeat-interval-ms"))
        rc = parse_u32(v, 10, 3600000, &o->heartbeat_interval_ms);
    else if (!strcmp(k, "auto-commit-interval-ms"))
        rc = parse_u32(v, 10, 3600000, &o->auto_commit_interval_ms);
    else if (!strcmp(k, "fetch-max-bytes"))
        rc = parse_u32(v, 1024, 64 << 20, &o->fetch_max_bytes);
    else if (!strcmp(k, "fetch-partition-max-bytes"))
        rc = parse_u32(v, 1024, 64 << 20, &o->fetch_partition_max_bytes);
    else if (!strcmp(k, "fetch-max-wait-ms")) rc = parse_u32(v, 0, 30000, &o->fetch_max_wait_ms);
    else if (!strcmp(k, "warmup")) rc = parse_double(v, 0, 3600, &o->warmup_s);
    else if (!strcmp(k, "duration")) rc = parse_double(v, 0.1, 86400, &o->duration_s);
    else if (!strcmp(k, "messages")) rc = parse_u64(v, 0, UINT64_C(1) << 48, &o->messages);
    else if (!strcmp(k, "drain")) rc = parse_double(v, 0, 3600, &o->drain_s);
    else if (!strcmp(k, "threads")) rc = parse_u32(v, 1, LG_MAX_THREADS, &o->threads);
    else if (!strcmp(k, "cpus")) rc = parse_cpus(o, v);
    else if (!strcmp(k, "json")) {
        rc = strlen(v) < sizeof o->json_path ? 0 : -1;
        if (rc == 0) snprintf(o->json_path, sizeof o->json_path, "%s", v);
    } else if (!strcmp(k, "sweep")) rc = parse_sweep(o, v);
    else if (!strcmp(k, "quiet")) rc = parse_bool(v, &o->quiet);
    else if (!strcmp(k, "dpdk")) rc = parse_bool(v, &o->dpdk);
    else if (!strcmp(k, "dpdk-eal-args")) rc = copy_text(o->dpdk_eal_args, sizeof o->dpdk_eal_args, v);
    else if (!strcmp(k, "dpdk-ip")) rc = copy_text(o->dpdk_ip, sizeof o->dpdk_ip, v);
    else if (!strcmp(k, "dpdk-netmask")) rc = copy_text(o->dpdk_netmask, sizeof o->dpdk_netmask, v);
    else if (!strcmp(k, "dpdk-gateway")) rc = copy_text(o->dpdk_gateway, sizeof o->dpdk_gateway, v);
    else if (!strcmp(k, "dpdk-port")) {
        rc = parse_u32(v, 0, 1023, &u32);
        o->dpdk_port = (uint16_t)u32;
    } else {
        snprintf(err, err_bytes, "unknown key '%s'", k);
        return -1;
    }
    if (rc != 0) snprintf(err, err_bytes, "bad value '%s' for %s", v, k);
    return rc;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

int lg_options_load_file(struct lg_options *o, const char *path, char *err, size_t err_bytes) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_bytes, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (*s == '\0' || !strcmp(s, "---")) continue;
        char *sep = strpbrk(s, "=:");
        if (!sep) {
            snprintf(err, err_bytes, "%s:%d: expected key=value", path, lineno);
            rc = -1;
            break;
        }
        *sep = '\0';
        char msg[256];
        if (lg_options_set(o, trim(s), trim(sep + 1), msg, sizeof msg) != 0) {
            snprintf(err, err_bytes, "%s:%d: %s", path, lineno, msg);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

static int bad_flag(const char *arg, char *err, size_t err_bytes) {
    snprintf(err, err_bytes, "bad flag '%s' (want --key=value or --key value)", arg);
    return -1;
}

/* --workload FILE is applied first wherever it appears; then the flags in order. */
int lg_options_parse_args(struct lg_options *o, int argc, char **argv, char *err,
                          size_t err_bytes) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--workload")) {
            if (i + 1 >= argc) {
                snprintf(err, err_bytes, "--workload needs a file");
                return -1;
            }
            if (lg_options_load_file(o, argv[i + 1], err, err_bytes) != 0) return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, err_bytes, "unexpected argument '%s'", a);
            return -1;
        }
        a += 2;
        char key[64];
        const char *value;
        const char *eq = strchr(a, '=');
        if (eq) {
            if ((size_t)(eq - a) >= sizeof key) return bad_flag(argv[i], err, err_bytes);
            memcpy(key, a, (size_t)(eq - a));
            key[eq - a] = '\0';
            value = eq + 1;
        } else if (!strcmp(a, "dpdk") && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
            snprintf(key, sizeof key, "dpdk"); /* a bare switch */
            value = "true";
        } else {
            if (strlen(a) >= sizeof key || i + 1 >= argc)
                return bad_flag(argv[i], err, err_bytes);
            snprintf(key, sizeof key, "%s", a);
            value = argv[++i];
        }
        if (!strcmp(key, "workload")) continue;
        if (lg_options_set(o, key, value, err, err_bytes) != 0) return -1;
    }
    return 0;
}

int lg_options_check(const struct lg_options *o, char *err, size_t err_bytes) {
    if (o->producers == 0 && o->consumers == 0) {
        snprintf(err, err_bytes, "nothing to do: producers=0 and consumers=0");
        return -1;
    }
    if (o->producers + o->consumers > LG_MAX_CONNS) {
        snprintf(err, err_bytes, "at most %d connections", LG_MAX_CONNS);
        return -1;
    }
    if ((uint64_t)o->message_bytes_max + 512 > o->batch_bytes) {
        snprintf(err, err_bytes, "batch-size must exceed the largest message by 512 bytes");
        return -1;
    }
    if (o->fetch_partition_max_bytes > o->fetch_max_bytes) {
        snprintf(err, err_bytes, "fetch-partition-max-bytes > fetch-max-bytes");
        return -1;
    }
    if (o->dpdk && !o->dpdk_ip[0]) {
        snprintf(err, err_bytes, "--dpdk needs --dpdk-ip (and a queue pair per thread: "
                 "net_af_packet's qpairs=N in --dpdk-eal-args)");
        return -1;
    }
    if (o->group[0] && o->heartbeat_interval_ms >= o->session_timeout_ms) {
        snprintf(err, err_bytes, "heartbeat-interval-ms must be below session-timeout-ms");
        return -1;
    }
    if (o->sweep_count > 0 && o->producers == 0) {
        snprintf(err, err_bytes, "a sweep needs producers");
        return -1;
    }
    return 0;
}
