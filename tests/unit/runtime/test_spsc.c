/* test_spsc.c - the SPSC ring and the mesh: bounds, order across threads, doorbells. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>

#include "dataplane/mesh.h"
#include "dataplane/spsc.h"

Test(spsc, rejects_bad_capacity) {
    struct spsc_ring r;
    cr_expect_eq(spsc_init(&r, 0), -1);
    cr_expect_eq(spsc_init(&r, 3), -1);
    cr_expect_eq(spsc_init(&r, 1), -1);
}

Test(spsc, full_is_backpressure_and_order_is_fifo) {
    struct spsc_ring r;
    cr_assert_eq(spsc_init(&r, 8), 0);
    for (uint64_t i = 0; i < 8; i++) {
        struct shard_msg m = {.type = 1, .arg64 = i};
        cr_assert(spsc_push(&r, &m));
    }
    struct shard_msg extra = {.arg64 = 99};
    cr_expect_not(spsc_push(&r, &extra), "a full ring must refuse");
    cr_expect_eq(spsc_count(&r), 8);
    struct shard_msg out;
    for (uint64_t i = 0; i < 8; i++) {
        cr_assert(spsc_pop(&r, &out));
        cr_expect_eq(out.arg64, i);
    }
    cr_expect_not(spsc_pop(&r, &out));
    spsc_destroy(&r);
}

Test(spsc, indices_wrap) {
    struct spsc_ring r;
    cr_assert_eq(spsc_init(&r, 4), 0);
    atomic_store(&r.head, UINT32_MAX - 2);
    atomic_store(&r.tail, UINT32_MAX - 2);
    r.head_cached = r.tail_cached = UINT32_MAX - 2;
    struct shard_msg out;
    for (uint64_t i = 0; i < 20; i++) {
        struct shard_msg m = {.arg64 = i};
        cr_assert(spsc_push(&r, &m));
        cr_assert(spsc_pop(&r, &out));
        cr_expect_eq(out.arg64, i);
    }
    spsc_destroy(&r);
}

#define THREAD_MESSAGES 2000000u

static void *producer(void *arg) {
    struct spsc_ring *r = arg;
    for (uint64_t i = 0; i < THREAD_MESSAGES;) {
        struct shard_msg m = {.type = 7, .arg64 = i};
        if (spsc_push(r, &m)) i++;
    }
    return NULL;
}

Test(spsc, two_threads_every_message_once_in_order) {
    struct spsc_ring r;
    cr_assert_eq(spsc_init(&r, 64), 0);
    pthread_t t;
    pthread_create(&t, NULL, producer, &r);
    uint64_t expect = 0;
    struct shard_msg out;
    while (expect < THREAD_MESSAGES) {
        if (!spsc_pop(&r, &out)) continue;
        cr_assert_eq(out.arg64, expect, "got %lu expected %lu", (unsigned long)out.arg64,
                     (unsigned long)expect);
        expect++;
    }
    pthread_join(t, NULL);
    cr_expect_not(spsc_pop(&r, &out));
    spsc_destroy(&r);
}

static unsigned drained;
static void count_msg(void *ctx, const struct shard_msg *m) {
    (void)ctx;
    (void)m;
    drained++;
}

Test(mesh, every_pair_has_a_ring_and_the_doorbell_rings_only_for_sleepers) {
    struct mesh m;
    cr_assert_eq(mesh_init(&m, 3, 4), 0);
    cr_expect_eq(mesh_control_id(&m), 3);
    /* 0 -> 1 while 1 is awake: no doorbell. */
    struct shard_msg msg = {.type = 1};
    cr_assert(mesh_send(&m, 0, 1, &msg));
    struct pollfd p = {.fd = mesh_doorbell_fd(&m, 1), .events = POLLIN};
    cr_expect_eq(poll(&p, 1, 0), 0, "no doorbell for an awake receiver");
    /* A waiting message forbids sleep. */
    cr_expect_not(mesh_prepare_sleep(&m, 1));
    drained = 0;
    cr_expect_eq(mesh_drain(&m, 1, 100, count_msg, NULL), 1);
    /* Asleep: a send rings. */
    cr_assert(mesh_prepare_sleep(&m, 1));
    cr_assert(mesh_send(&m, 3, 1, &msg));
    cr_expect_eq(poll(&p, 1, 0), 1, "doorbell for a sleeping receiver");
    mesh_awake(&m, 1);
    mesh_doorbell_clear(&m, 1);
    cr_expect_eq(poll(&p, 1, 0), 0);
    /* Bound: 4 per ring, then backpressure, independent per sender. */
    for (int i = 0; i < 4; i++) cr_assert(mesh_send(&m, 2, 0, &msg));
    cr_expect_not(mesh_send(&m, 2, 0, &msg));
    cr_expect(mesh_send(&m, 1, 0, &msg), "another sender's ring is separate");
    cr_expect_eq(mesh_drain(&m, 0, 100, count_msg, NULL), 5);
    mesh_destroy(&m);
}
