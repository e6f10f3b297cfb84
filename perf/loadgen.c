/* loadgen.c - `sluice loadgen`: parse the workload, prepare the topics, run the workers,
 * report.
 *
 * A run: the shared state is built (partition maps, per-partition acked offsets), the
 * schedule origin is set a little ahead of now, the worker threads start and connect.
 * The main thread samples the workers' counters every second for the progress line,
 * snapshots them when the warm-up ends and when the producers stop, and reports the
 * difference (the measured window). Latency histograms only ever hold messages whose
 * intended send time is inside the measured window. The correctness check (lost,
 * duplicated, out of order, CRC) covers the whole run, warm-up included.
 *
 * --group: the consumers join a consumer group first (loadgen_group.c); the schedule
 * origin is set, and the producers told to go, only once every consumer is a member of
 * the same generation with its assignment and start offsets (at most
 * LG_GROUP_SETTLE_NS). Lost messages are then counted per partition from the state the
 * members published, whoever held the partition last.
 *
 * A sweep first runs at rate 0 (as fast as possible) to measure the maximum acked rate,
 * then once per requested percentage of it.
 *
 * Exit status: 0 all well; 1 the run could not be done; 3 the correctness check failed
 * (anything lost, duplicated or corrupt; out of order when no batch was refused). */
#include "perf/loadgen.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "perf/loadgen_report.h"
#include "perf/loadgen_setup.h"
#include "perf/loadgen_worker.h"
#include "hw/dpdk_port.h"

#define LG_START_DELAY_NS (20 * 1000000ull)
#define LG_TICK_NS (10 * 1000000ull)
#define LG_GROUP_SETTLE_NS (60 * 1000000000ull)

static _Atomic int interrupted;

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&interrupted, 1);
}

static void counters_sum(struct lg_worker *ws, uint32_t n, struct lg_result *r) {
    memset(r, 0, offsetof(struct lg_result, produce_latency));
    for (uint32_t i = 0; i < n; i++) {
        struct lg_counters *c = &ws[i].counters;
        r->produced_msgs += atomic_load(&c->produced_msgs);
        r->produced_bytes += atomic_load(&c->produced_bytes);
        r->acked_msgs += atomic_load(&c->acked_msgs);
        r->acked_bytes += atomic_load(&c->acked_bytes);
        r->produce_errors += atomic_load(&c->produce_errors);
        r->consumed_msgs += atomic_load(&c->consumed_msgs);
        r->consumed_bytes += atomic_load(&c->consumed_bytes);
        r->consumed_batches += atomic_load(&c->consumed_batches);
        r->crc_errors += atomic_load(&c->crc_errors);
        r->duplicated += atomic_load(&c->duplicated);
        r->out_of_order += atomic_load(&c->out_of_order);
        r->fetch_errors += atomic_load(&c->fetch_errors);
        r->conn_errors += atomic_load(&c->conn_errors);
        r->lost += atomic_load(&c->lost);
        r->unread += atomic_load(&c->unread);
        r->redelivered += atomic_load(&c->redelivered);
        r->commit_errors += atomic_load(&c->commit_errors);
    }
}

/* d = a - b for the throughput counters. */
static void counters_diff(const struct lg_result *a, const struct lg_result *b,
                          struct lg_result *d) {
    memset(d, 0, offsetof(struct lg_result, produce_latency));
    d->produced_msgs = a->produced_msgs - b->produced_msgs;
    d->produced_bytes = a->produced_bytes - b->produced_bytes;
    d->acked_msgs = a->acked_msgs - b->acked_msgs;
    d->acked_bytes = a->acked_bytes - b->acked_bytes;
    d->consumed_msgs = a->consumed_msgs - b->consumed_msgs;
    d->consumed_bytes = a->consumed_bytes - b->consumed_bytes;
    d->consumed_batches = a->consumed_batches - b->consumed_batches;
}

static void hists_merge(struct lg_worker *ws, uint32_t n, struct lg_result *r) {
    hist_init(&r->produce_latency);
    hist_init(&r->e2e_latency);
    for (uint32_t i = 0; i < n; i++) {
        hist_merge(&r->produce_latency, &ws[i].produce_latency);
        hist_merge(&r->e2e_latency, &ws[i].e2e_latency);
    }
}

static void sleep_ns(uint64_t ns);
static bool all_done(struct lg_worker *ws, uint32_t n);

static int shared_init(struct lg_shared *sh, const struct lg_options *o,
                       const struct lg_cluster *c) {
    memset(sh, 0, sizeof *sh);
    sh->o = o;
    sh->c = c;
    for (uint32_t t = 0; t < c->topic_count; t++) sh->partition_count += c->topics[t].partitions;
    uint32_t n = sh->partition_count;
    sh->part_topic = calloc(n, sizeof sh->part_topic[0]);
    sh->part_index = calloc(n, sizeof sh->part_index[0]);
    sh->acked_end = calloc(n, sizeof sh->acked_end[0]);
    sh->acked_msgs = calloc(n, sizeof sh->acked_msgs[0]);
    sh->part_lost = calloc(n, sizeof sh->part_lost[0]);
    sh->part_unread = calloc(n, sizeof sh->part_unread[0]);
    sh->part_duplicated = calloc(n, sizeof sh->part_duplicated[0]);
    sh->part_out_of_order = calloc(n, sizeof sh->part_out_of_order[0]);
    sh->part_unique = calloc(n, sizeof sh->part_unique[0]);
    sh->part_expected_seq = calloc(n, sizeof sh->part_expected_seq[0]);
    sh->part_position = calloc(n, sizeof sh->part_position[0]);
    sh->member_generation = calloc(o->consumers ? o->consumers : 1,
                                   sizeof sh->member_generation[0]);
    if (!sh->part_topic || !sh->part_index || !sh->acked_end || !sh->acked_msgs ||
        !sh->part_lost || !sh->part_unread || !sh->part_duplicated || !sh->part_out_of_order ||
        !sh->part_unique || !sh->part_expected_seq || !sh->part_position ||
        !sh->member_generation)
        return -1;
    for (uint32_t i = 0; i < o->consumers; i++) atomic_init(&sh->member_generation[i], -1);
    atomic_init(&sh->group_generation, -1);
    uint32_t g = 0;
    for (uint32_t t = 0; t < c->topic_count; t++)
        for (uint32_t p = 0; p < c->topics[t].partitions; p++, g++) {
            sh->part_topic[g] = t;
            sh->part_index[g] = p;
            atomic_init(&sh->acked_end[g], -1);
            atomic_init(&sh->acked_msgs[g], 0);
            atomic_init(&sh->part_lost[g], 0);
            atomic_init(&sh->part_unread[g], 0);
            atomic_init(&sh->part_duplicated[g], 0);
            atomic_init(&sh->part_out_of_order[g], 0);
            atomic_init(&sh->part_unique[g], 0);
            atomic_init(&sh->part_expected_seq[g], 0);
            atomic_init(&sh->part_position[g], -1);
        }
    return 0;
}

static void shared_fini(struct lg_shared *sh) {
    free(sh->part_topic);
    free(sh->part_index);
    free((void *)sh->acked_end);
    free((void *)sh->acked_msgs);
    free((void *)sh->part_lost);
    free((void *)sh->part_unread);
    free((void *)sh->part_duplicated);
    free((void *)sh->part_out_of_order);
    free((void *)sh->part_unique);
    free((void *)sh->part_expected_seq);
    free((void *)sh->part_position);
    free((void *)sh->member_generation);
}

/* Schedule origin, warm-up end and produce deadline, from now; then the producers go. */
static void set_times_and_go(struct lg_shared *sh, const struct lg_options *o) {
    sh->start_ns = lg_now_ns() + LG_START_DELAY_NS;
    sh->measure_from_ns = sh->start_ns + (uint64_t)(o->warmup_s * 1e9);
    sh->produce_until_ns = o->messages > 0 ? UINT64_MAX
                                           : sh->measure_from_ns + (uint64_t)(o->duration_s * 1e9);
    atomic_store(&sh->go, 1);
}

/* --group: every consumer reads in the same generation (-1 while not). */
static bool group_settled(struct lg_shared *sh, uint32_t consumers) {
    int32_t gen = atomic_load(&sh->member_generation[0]);
    for (uint32_t i = 0; i < consumers; i++)
        if (atomic_load(&sh->member_generation[i]) != gen) return false;
    return gen >= 0;
}

/* --group: wait until the group has settled, then go. 0, or -1 (the run is aborted). */
static int wait_group_settled(struct lg_shared *sh, const struct lg_options *o,
                              struct lg_worker *ws, uint32_t n) {
    uint64_t deadline = lg_now_ns() + LG_GROUP_SETTLE_NS;
    int rc = 0;
    while (!group_settled(sh, o->consumers)) {
        if (atomic_load(&interrupted) || lg_now_ns() > deadline || all_done(ws, n)) {
            if (!atomic_load(&interrupted))
                fprintf(stderr, "loadgen: group %s: the consumers did not all get an "
                        "assignment in one generation\n", o->group);
            atomic_store(&sh->abort, 1);
            rc = -1;
            break;
        }
        sleep_ns(LG_TICK_NS);
    }
    if (rc == 0 && !o->quiet)
        fprintf(stderr, "loadgen: group %s: %u members in generation %d\n", o->group,
                o->consumers, atomic_load(&sh->member_generation[0]));
    set_times_and_go(sh, o); /* after an abort: the producers see it and finish */
    return rc;
}

/* --group: a partition's messages acked but not read by whoever held it last. */
static uint64_t group_lost(struct lg_shared *sh) {
    uint64_t lost = 0;
    for (uint32_t g = 0; g < sh->partition_count; g++) {
        uint64_t acked = atomic_load(&sh->acked_msgs[g]), seen = atomic_load(&sh->part_unique[g]);
        if (acked <= seen) continue;
        atomic_store(&sh->part_lost[g], acked - seen);
        lost += acked - seen;
    }
    return lost;
}

/* The partitions the check flagged, after the workers have finished. */
static void collect_problems(const struct lg_shared *sh, struct lg_result *out) {
    out->problem_count = out->problem_partitions = 0;
    for (uint32_t g = 0; g < sh->partition_count; g++) {
        uint64_t lost = atomic_load(&sh->part_lost[g]);
        uint64_t unread = atomic_load(&sh->part_unread[g]);
        uint64_t dup = atomic_load(&sh->part_duplicated[g]);
        uint64_t ooo = atomic_load(&sh->part_out_of_order[g]);
        if (!lost && !unread && !dup && !ooo) continue;
        out->problem_partitions++;
        if (out->problem_count == LG_MAX_PROBLEMS) continue;
        struct lg_partition_problem *pp = &out->problems[out->problem_count++];
        snprintf(pp->topic, sizeof pp->topic, "%s", sh->c->topics[sh->part_topic[g]].name);
        pp->partition = sh->part_index[g];
        pp->acked = atomic_load(&sh->acked_msgs[g]);
        pp->lost = lost;
        pp->unread = unread;
        pp->duplicated = dup;
        pp->out_of_order = ooo;
    }
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static bool all_done(struct lg_worker *ws, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (!atomic_load(&ws[i].done)) return false;
    return true;
}

/* The main thread's part of a run: progress lines and the two snapshots. */
static void watch(const struct lg_options *o, struct lg_shared *sh, struct lg_worker *ws,
                  uint32_t n, struct lg_result *at_start, struct lg_result *at_end,
                  uint64_t *window_start_ns, uint64_t *window_end_ns) {
    bool started = false, ended = false;
    struct lg_result last, now_r, delta;
    memset(&last, 0, sizeof last);
    memset(at_start, 0, offsetof(struct lg_result, produce_latency));
    *window_start_ns = sh->start_ns;
    uint64_t last_print = sh->start_ns;
    struct lg_result *live = malloc(sizeof *live);
    while (!all_done(ws, n)) {
        sleep_ns(LG_TICK_NS);
        uint64_t now = lg_now_ns();
        if (atomic_load(&interrupted)) atomic_store(&sh->abort, 1);
        if (!started && now >= sh->measure_from_ns) {
            if (o->warmup_s > 0) counters_sum(ws, n, at_start); /* else: zero at start */
            *window_start_ns = o->warmup_s > 0 ? now : sh->measure_from_ns;
            started = true;
        }
        bool producers_done = atomic_load(&sh->producers_running) == 0;
        /* without producers (a catch-up read) the window is the consumers' whole run */
        if (!ended && o->producers > 0 && (producers_done || now >= sh->produce_until_ns)) {
            /* the window ends when the last producer did (seen up to a tick later) */
            counters_sum(ws, n, at_end);
            uint64_t done_ns = atomic_load(&sh->producers_done_ns);
            *window_end_ns = producers_done && done_ns && done_ns < now ? done_ns : now;
            if (!started) { /* everything happened inside the first tick */
                *window_start_ns = sh->measure_from_ns;
                started = true;
            }
            ended = true;
        }
        if (!o->quiet && live && now >= last_print + 1000000000ull && !all_done(ws, n)) {
            counters_sum(ws, n, &now_r);
            counters_diff(&now_r, &last, &delta);
            hists_merge(ws, n, live);
            memcpy(live, &now_r, offsetof(struct lg_result, produce_latency));
            lg_report_progress(stderr, (double)(now - sh->start_ns) / 1e9,
                               (double)(now - last_print) / 1e9, &delta, live);
            last = now_r;
            last_print = now;
        }
    }
    free(live);
    if (!ended) {
        counters_sum(ws, n, at_end);
        *window_end_ns = lg_now_ns();
    }
}

/* One run at rate_msgs (0 = max). Returns 0, or -1 if it could not run. */
static int run_once(const struct lg_options *o, const struct lg_cluster *c, const struct lg_zipf *z,
                    double rate_msgs, struct lg_result *out) {
    struct lg_shared sh;
    if (shared_init(&sh, o, c) != 0) {
        shared_fini(&sh);
        fprintf(stderr, "loadgen: out of memory\n");
        return -1;
    }
    sh.zipf = z;
    uint32_t active = o->producers < sh.partition_count ? o->producers : sh.partition_count;
    if (active < o->producers)
        fprintf(stderr, "loadgen: %u producers idle (only %u partitions)\n",
                o->producers - active, sh.partition_count);
    atomic_init(&sh.producers_running, active);
    sh.rate_per_producer = active ? rate_msgs / active : 0;
    sh.run_id = (uint32_t)(lg_now_ns() ^ ((uint64_t)getpid() << 16));
    bool group = o->group[0] && o->consumers > 0;
    if (!group) set_times_and_go(&sh, o);
    uint32_t n = o->threads;
    struct lg_worker *ws = calloc(n, sizeof ws[0]);
    if (!ws) {
        shared_fini(&sh);
        return -1;
    }
    uint32_t started = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct lg_worker *w = &ws[i];
        w->sh = &sh;
        w->index = i;
        w->cpu = o->cpu_count ? o->cpus[i % o->cpu_count] : -1;
        w->producer_first = (uint32_t)((uint64_t)o->producers * i / n);
        w->producer_count = (uint32_t)((uint64_t)o->producers * (i + 1) / n) - w->producer_first;
        w->consumer_first = (uint32_t)((uint64_t)o->consumers * i / n);
        w->consumer_count = (uint32_t)((uint64_t)o->consumers * (i + 1) / n) - w->consumer_first;
        if (lg_worker_start(w) != 0) {
            atomic_store(&sh.abort, 1);
            rc = -1;
            break;
        }
        started++;
    }
    struct lg_result a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    uint64_t t0 = 0, t1 = 0;
    if (rc == 0 && group && wait_group_settled(&sh, o, ws, n) != 0) rc = -1;
    else if (rc != 0 && group) set_times_and_go(&sh, o);
    if (rc == 0) watch(o, &sh, ws, n, &a, &b, &t0, &t1);
    for (uint32_t i = 0; i < started; i++) lg_worker_join(&ws[i]);
    for (uint32_t i = 0; i < started; i++)
        if (ws[i].error[0]) {
            fprintf(stderr, "loadgen: thread %u: %s\n", i, ws[i].error);
            if (ws[i].failed) rc = -1;
        }
    struct lg_result final;
    counters_sum(ws, started, &final);
    counters_diff(&b, &a, out);
    out->produce_errors = final.produce_errors;
    out->crc_errors = final.crc_errors;
    out->lost = final.lost;
    out->unread = final.unread;
    out->duplicated = final.duplicated;
    out->out_of_order = final.out_of_order;
    out->fetch_errors = final.fetch_errors;
    out->conn_errors = final.conn_errors;
    out->redelivered = final.redelivered;
    out->commit_errors = final.commit_errors;
    if (group) out->lost = group_lost(&sh);
    out->rebalances = atomic_load(&sh.rebalances);
    out->rebalances_mid_run = atomic_load(&sh.rebalances_mid_run);
    snprintf(out->group, sizeof out->group, "%s", o->group);
    out->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    out->rate_target_msgs = rate_msgs;
    hists_merge(ws, started, out);
    collect_problems(&sh, out);
    free(ws);
    shared_fini(&sh);
    return rc;
}

/* Out of order alone is expected after refused batches (their sequence numbers leave a
 * gap, loadgen does not retry), so it fails the check only when nothing was refused.
 * Unread messages fail it too: the check did not cover them. */
static bool check_failed(const struct lg_result *r) {
    return r->lost || r->unread || r->duplicated || r->crc_errors ||
           (r->out_of_order && !r->produce_errors);
}

static int run_sweep(struct lg_options *o, struct lg_cluster *c, const struct lg_zipf *z,
                     struct lg_result *runs, double *pcts, uint32_t *count) {
    char err[256];
    fprintf(stderr, "loadgen: sweep: measuring the maximum rate\n");
    if (run_once(o, c, z, 0, &runs[0]) != 0) return -1;
    lg_report_summary(stdout, &runs[0]);
    double max = runs[0].seconds > 0 ? (double)runs[0].acked_msgs / runs[0].seconds : 0;
    pcts[0] = 100;
    *count = 1;
    if (max <= 0) {
        fprintf(stderr, "loadgen: sweep: nothing was acknowledged\n");
        return -1;
    }
    for (uint32_t i = 0; i < o->sweep_count && !atomic_load(&interrupted); i++) {
        if (lg_setup_offsets(o, c, err, sizeof err) != 0) {
            fprintf(stderr, "loadgen: %s\n", err);
            return -1;
        }
        double rate = max * o->sweep_pct[i] / 100.0;
        fprintf(stderr, "loadgen: sweep: %.0f%% of %.0f = %.0f msg/s\n", o->sweep_pct[i], max,
                rate);
        if (run_once(o, c, z, rate, &runs[*count]) != 0) return -1;
        lg_report_summary(stdout, &runs[*count]);
        pcts[*count] = o->sweep_pct[i];
        (*count)++;
    }
    lg_report_sweep(stdout, runs, pcts, *count);
    return 0;
}

int cmd_loadgen(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            lg_options_usage();
            return 0;
        }
    static struct lg_options o;
    char err[512];
    lg_options_default(&o);
    if (lg_options_parse_args(&o, argc, argv, err, sizeof err) != 0 ||
        lg_options_check(&o, err, sizeof err) != 0) {
        fprintf(stderr, "loadgen: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    static struct lg_cluster cluster;
    if (lg_setup(&o, &cluster, err, sizeof err) != 0) {
        fprintf(stderr, "loadgen: setup: %s\n", err);
        lg_cluster_destroy(&cluster);
        return 1;
    }
    struct lg_zipf zipf = {0};
    if (o.key_dist == LG_KEY_ZIPF && lg_zipf_init(&zipf, o.key_count, o.zipf_s) != 0) {
        fprintf(stderr, "loadgen: zipf over %u keys: too many (max %u)\n", o.key_count,
                LG_ZIPF_MAX_KEYS);
        lg_cluster_destroy(&cluster);
        return 2;
    }
    struct dpdk_port *dpdk = NULL; /* --dpdk: opened once, queue i for thread i */
    if (o.dpdk) {
        struct dpdk_port_config pc = {.eal_args = o.dpdk_eal_args, .port_id = o.dpdk_port,
                                      .queue_count = (uint16_t)o.threads};
        if (dpdk_port_open(&pc, &dpdk, err, sizeof err) != 0) {
            fprintf(stderr, "loadgen: dpdk: %s\n", err);
            lg_zipf_destroy(&zipf);
            lg_cluster_destroy(&cluster);
            return 1;
        }
        lg_worker_use_dpdk(dpdk);
    }
    lg_report_workload(stdout, &o);
    uint32_t count = 0;
    struct lg_result *runs = calloc(LG_MAX_SWEEP + 1, sizeof runs[0]);
    double pcts[LG_MAX_SWEEP + 1] = {0};
    int rc = runs ? 0 : -1;
    if (rc == 0 && o.sweep_count > 0) {
        rc = run_sweep(&o, &cluster, o.key_dist == LG_KEY_ZIPF ? &zipf : NULL, runs, pcts, &count);
    } else if (rc == 0) {
        rc = run_once(&o, &cluster, o.key_dist == LG_KEY_ZIPF ? &zipf : NULL, o.rate_msgs, &runs[0]);
        if (rc == 0) {
            lg_report_summary(stdout, &runs[0]);
            count = 1;
        }
    }
    bool failed_check = false;
    for (uint32_t i = 0; i < count; i++) failed_check |= check_failed(&runs[i]);
    if (count > 0 && o.json_path[0] &&
        lg_report_json(o.json_path, &o, runs, o.sweep_count ? pcts : NULL, count) != 0)
        rc = -1;
    free(runs);
    lg_zipf_destroy(&zipf);
    lg_cluster_destroy(&cluster);
    if (dpdk) dpdk_port_close(dpdk); /* the workers are joined */
    if (rc != 0) return 1;
    return failed_check ? 3 : 0;
}
