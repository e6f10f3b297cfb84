/* test_shard_loop.c - the run-to-completion loop (dataplane/shard_loop.c) with a real
 * io_uring and a test role: CQEs of the role's SQEs are dispatched to their uring_op
 * (after the iteration's begin hook, where the broker refreshes its catalogue),
 * an idle blocking loop waits no longer than the role's next timer (and does wait:
 * few iterations, idle time counted), a polling loop never waits, and a second run
 * with other ops carries on on the same ring. */
#include <criterion/criterion.h>
#include <time.h>

#include "dataplane/shard_loop.h"
#include "hw/uring_op.h"

struct role {
    struct shard_loop *loop;
    uint64_t start_ns, end_ns, timer_every_ns, next_timer_ns, begin_ns, work_ns;
    unsigned begins, iterations, timers, nops_sent, nops_done;
    struct uring_op nop;
};

static void nop_done(struct uring_op *op, int32_t res, uint32_t flags) {
    (void)flags;
    struct role *r = container_of(op, struct role, nop);
    cr_expect_eq(res, 0);
    cr_expect_eq(r->begins, r->iterations + 1, "begin ran before this iteration's CQEs");
    r->nops_done++;
}

/* begin's clock is read after the last wait: never older than the previous work's. */
static void role_begin(void *ctx, uint64_t now_ns) {
    struct role *r = ctx;
    cr_expect_geq(now_ns, r->begin_ns, "begin's clock goes forward");
    cr_expect_geq(now_ns, r->work_ns, "begin's clock is not older than the last work's");
    r->begin_ns = now_ns;
    r->begins++;
}

/* Every timer_every_ns: one NOP through the ring. */
static unsigned role_work(void *ctx, uint64_t now_ns) {
    struct role *r = ctx;
    cr_expect_geq(now_ns, r->begin_ns, "work's clock is not older than begin's");
    r->work_ns = now_ns;
    r->iterations++;
    if (now_ns < r->next_timer_ns) return 0;
    r->timers++;
    r->next_timer_ns = now_ns + r->timer_every_ns;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->loop->ring);
    cr_assert_not_null(sqe);
    io_uring_prep_nop(sqe);
    uring_op_attach(sqe, &r->nop);
    r->nops_sent++;
    return 1;
}

static bool role_done(void *ctx, uint64_t now_ns) {
    struct role *r = ctx;
    return now_ns >= r->end_ns && r->nops_done == r->nops_sent;
}

static uint64_t role_wait_ns(void *ctx, uint64_t now_ns, uint64_t max_ns) {
    struct role *r = ctx;
    uint64_t until = r->next_timer_ns > now_ns ? r->next_timer_ns - now_ns : 0;
    return until < max_ns ? until : max_ns;
}

static const struct shard_loop_ops role_ops = {
    .begin = role_begin, .work = role_work, .done = role_done, .wait_ns = role_wait_ns};

static void run_for(struct shard_loop *l, struct role *r, uint64_t run_ns, uint64_t every_ns) {
    r->loop = l;
    r->nop.complete = nop_done;
    r->start_ns = shard_loop_clock_ns();
    r->end_ns = r->start_ns + run_ns;
    r->timer_every_ns = every_ns;
    r->next_timer_ns = r->start_ns;
    shard_loop_run(l, &role_ops, r);
}

static void init_loop(struct shard_loop *l, enum idle_policy idle) {
    struct shard_loop_config cfg = {.idle = idle, .max_wait_ns = 1000000000ull,
                                    .cqe_budget = 64};
    cr_assert_eq(shard_loop_init(l, &cfg, 64, 256), 0);
}

Test(shard_loop, blocking_loop_waits_until_the_roles_next_timer) {
    struct shard_loop l;
    init_loop(&l, IDLE_BLOCK);
    struct role r = {0};
    run_for(&l, &r, 300000000ull, 20000000ull); /* 300 ms, a timer every 20 ms */
    cr_expect_geq(r.timers, 14, "the timers ran (%u)", r.timers);
    cr_expect_eq(r.nops_done, r.nops_sent, "every CQE reached its op");
    /* each timer: its NOP's completion and at most a few wake-ups, not a busy spin */
    cr_expect_lt(r.iterations, 8 * r.timers + 8, "%u iterations", r.iterations);
    uint64_t idle = atomic_load(&l.idle_ns), busy = atomic_load(&l.busy_ns);
    cr_expect_gt(idle, 200000000ull, "idle %llu ns", (unsigned long long)idle);
    cr_expect_lt(busy, idle);
    /* a second run (a closing phase) carries on with the same ring and accounting */
    struct role r2 = {0};
    run_for(&l, &r2, 50000000ull, 10000000ull);
    cr_expect_eq(r2.nops_done, r2.nops_sent);
    cr_expect_geq(atomic_load(&l.idle_ns), idle);
    shard_loop_fini(&l);
}

Test(shard_loop, polling_loop_never_waits) {
    struct shard_loop l;
    init_loop(&l, IDLE_POLL);
    struct role r = {0};
    run_for(&l, &r, 100000000ull, 20000000ull); /* 100 ms */
    cr_expect_eq(r.nops_done, r.nops_sent);
    cr_expect_gt(r.iterations, 1000u, "spins (%u iterations)", r.iterations);
    shard_loop_fini(&l);
}
