/* test_shard.c - real shards (threads, io_uring, listener) driven over the mesh:
 * a blocked shard is woken by the doorbell long before its wait timeout, answers a
 * PING, stops on STOP, and accounts busy and idle time. Also the host probes. */
#include <criterion/criterion.h>
#include <poll.h>
#include <time.h>

#include "dataplane/handlers.h"
#include "dataplane/mesh.h"
#include "dataplane/shard.h"
#include "hw/probe.h"

static struct broker_identity identity = {.node_id = 1, .advertised_host = "127.0.0.1",
                                          .cluster_id = "t"};
static _Atomic int32_t connections;
static unsigned pongs;
static uint64_t pong_sum;

static void on_pong(void *ctx, const struct shard_msg *m) {
    (void)ctx;
    cr_assert_eq(m->type, SHARD_MSG_PONG);
    pongs++;
    pong_sum += m->arg64;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_shards(enum idle_policy idle) {
    handlers_init();
    struct mesh m;
    cr_assert_eq(mesh_init(&m, 2, 64), 0);
    static struct shard shards[2];
    struct shard_config sc = {
        .idle = idle,
        .block_timeout_ms = 20000, /* far longer than the test may take */
        .listen_host = "127.0.0.1",
        .listen_port = 0,
        .mesh = &m,
        .buffer_bytes = 4u << 20,
        .recv_buffer_count = 16,
        .drain_timeout_ms = 2000,
        .server = {.max_conns = 16, .max_request_bytes = 1 << 20, .idle_timeout_ms = 60000,
                   .max_inflight_per_conn = 16, .max_connections = 32,
                   .connections = &connections, .max_response_bytes = 1 << 20,
                   .max_input_bytes = 1 << 20, .identity = &identity},
    };
    for (int i = 0; i < 2; i++) {
        sc.id = i;
        sc.cpu = -1;
        cr_assert_eq(shard_start(&shards[i], &sc), 0, "%s", shards[i].error);
        cr_assert_gt(shards[i].bound_port, 0);
        if (i == 0) sc.listen_port = (uint16_t)shards[0].bound_port; /* SO_REUSEPORT */
    }
    cr_expect_eq(shards[1].bound_port, shards[0].bound_port);
    struct timespec nap = {.tv_sec = 0, .tv_nsec = 200 * 1000000};
    nanosleep(&nap, NULL); /* let both go to sleep */
    int control = mesh_control_id(&m);
    pongs = 0;
    pong_sum = 0;
    double t0 = now_s();
    for (int i = 0; i < 2; i++) {
        struct shard_msg ping = {.type = SHARD_MSG_PING, .arg64 = 100u + (unsigned)i};
        cr_assert(mesh_send(&m, control, i, &ping));
    }
    while (pongs < 2 && now_s() - t0 < 5.0) {
        struct pollfd p = {.fd = mesh_doorbell_fd(&m, control), .events = POLLIN};
        if (mesh_prepare_sleep(&m, control)) poll(&p, 1, 100);
        mesh_awake(&m, control);
        mesh_doorbell_clear(&m, control);
        mesh_drain(&m, control, 16, on_pong, NULL);
    }
    double ping_s = now_s() - t0;
    cr_expect_eq(pongs, 2);
    cr_expect_eq(pong_sum, 201);
    cr_expect_lt(ping_s, 1.0, "a sleeping shard is woken by the doorbell (took %.3f s)", ping_s);
    t0 = now_s();
    for (int i = 0; i < 2; i++) {
        struct shard_msg stop = {.type = SHARD_MSG_STOP};
        cr_assert(mesh_send(&m, control, i, &stop));
    }
    for (int i = 0; i < 2; i++) shard_join(&shards[i]);
    cr_expect_lt(now_s() - t0, 1.0, "STOP ends the shards at once");
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(atomic_load(&shards[i].state), SHARD_EXITED);
        cr_expect_gt(atomic_load(&shards[i].loop.idle_ns), 100000000ull, "idle time counted");
    }
    mesh_destroy(&m);
}

Test(shard, block_policy_doorbell_ping_stop) { run_shards(IDLE_BLOCK); }
Test(shard, poll_policy_ping_stop) { run_shards(IDLE_POLL); }

Test(probe, this_host_reports_every_line) {
    static struct probe_report r;
    probe_host(&r, "/sys", false);
    cr_assert_gt(r.count, 8);
    bool all_required_ok = true, saw_uring = false, saw_cores = false;
    for (int i = 0; i < r.count; i++) {
        cr_expect(strlen(r.results[i].name) > 0 && strlen(r.results[i].detail) > 0);
        if (r.results[i].required && !r.results[i].ok) all_required_ok = false;
        saw_uring |= strcmp(r.results[i].name, "io_uring provided buffer ring") == 0;
        saw_cores |= strcmp(r.results[i].name, "cores") == 0;
    }
    cr_expect(saw_uring && saw_cores);
    cr_expect_eq(probe_report_ok(&r), all_required_ok);
}

Test(probe, missing_sysfs_is_a_missing_requirement) {
    static struct probe_report r;
    probe_host(&r, "/nonexistent-sysfs", false);
    cr_expect_not(probe_report_ok(&r), "no topology -> not ready");
}
