/* test_group_coordinator.c - the classic rebalance protocol on the real coordinator, with a
 * test clock: MEMBER_ID_REQUIRED, a two-member rebalance (parked JoinGroups answered
 * together, the leader gets every subscription, parked SyncGroups get the leader's
 * assignment), Kafka's error codes for bad requests (unknown member, wrong generation,
 * heartbeat after leave, fenced instance, bad session timeout, protocol mismatch),
 * session and rebalance timeouts, the initial rebalance delay, static membership
 * (a restart keeps the assignment without a rebalance), DeleteGroups and offset expiry.
 * The reply callbacks record what each waiter was answered. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "control/group_coordinator.h"

#define SLOTS 16

struct answer {
    bool answered;
    bool is_sync;
    int16_t error_code;
    int32_t generation_id;
    char member_id[GROUP_NAME_MAX_BYTES + 1];
    char leader_id[GROUP_NAME_MAX_BYTES + 1];
    bool is_leader;
    int members;
    char assignment[64];
};

static struct answer answers[SLOTS];
static int expired_calls;

static void on_expired(void *ctx, const struct group *g) {
    (void)ctx;
    cr_assert_eq(g->offsets.count, 1, "called while the offsets are still there");
    expired_calls++;
}
static struct group_coordinator gc;

static void on_join(void *ctx, void *waiter, int16_t version, const struct group_join_answer *a) {
    (void)ctx;
    (void)version;
    struct answer *s = waiter;
    cr_assert(!s->answered, "a waiter answered twice");
    s->answered = true;
    s->error_code = a->error_code;
    s->generation_id = a->generation_id;
    snprintf(s->member_id, sizeof s->member_id, "%s", a->member_id);
    snprintf(s->leader_id, sizeof s->leader_id, "%s", a->leader_id ? a->leader_id : "");
    s->is_leader = a->is_leader;
    s->members = 0;
    if (a->is_leader)
        for (const struct group_member *m = a->group->members; m; m = m->next)
            s->members += !m->pending;
}

static void on_sync(void *ctx, void *waiter, int16_t error_code, const struct group *g,
                    const uint8_t *assignment, uint32_t bytes) {
    (void)ctx;
    (void)g;
    struct answer *s = waiter;
    cr_assert(!s->answered, "a waiter answered twice");
    s->answered = true;
    s->is_sync = true;
    s->error_code = error_code;
    snprintf(s->assignment, sizeof s->assignment, "%.*s", (int)bytes, assignment ? (const char *)assignment : "");
}

static void setup_with_delay(int32_t delay_ms) {
    memset(answers, 0, sizeof answers);
    struct group_config cfg = {.min_session_timeout_ms = 6000, .max_session_timeout_ms = 300000,
                               .initial_rebalance_delay_ms = delay_ms, .max_size = 100,
                               .offsets_retention_ms = 60000};
    struct group_replies r = {.ctx = NULL, .join = on_join, .sync = on_sync,
                              .expired = on_expired};
    expired_calls = 0;
    group_coordinator_init(&gc, &cfg, &r);
}

static void setup(void) { setup_with_delay(0); }
static void teardown(void) { group_coordinator_destroy(&gc); }

TestSuite(group, .init = setup, .fini = teardown);

static struct answer *slot(int i) {
    memset(&answers[i], 0, sizeof answers[i]);
    return &answers[i];
}

/* A JoinGroup of the "consumer" type offering one protocol. */
static bool join(int s, const char *member_id, const char *instance, const char *protocol,
                 const char *meta, int16_t version, uint64_t now) {
    struct group_join_args a = {
        .group_id = "g", .group_len = 1, .member_id = member_id, .member_len = strlen(member_id),
        .instance_id = instance, .instance_len = instance ? strlen(instance) : 0,
        .client_id = "c", .client_host = "/127.0.0.1", .session_timeout_ms = 10000,
        .rebalance_timeout_ms = 30000, .protocol_type = "consumer", .protocol_type_len = 8,
        .protocol_count = 1, .version = version, .waiter = slot(s)};
    a.protocol_names[0] = protocol;
    a.protocol_name_lens[0] = strlen(protocol);
    a.protocol_metadata[0] = (const uint8_t *)meta;
    a.protocol_metadata_bytes[0] = (uint32_t)strlen(meta);
    return group_join(&gc, &a, now);
}

static bool sync_(int s, const char *member_id, int32_t generation,
                  const struct group_sync_assignment *as, int n, uint64_t now) {
    return group_sync(&gc, "g", 1, generation, member_id, strlen(member_id), NULL, 0, NULL, 0,
                      NULL, 0, as, n, slot(s), now);
}

static int16_t heartbeat(const char *member_id, int32_t generation, uint64_t now) {
    return group_heartbeat(&gc, "g", 1, generation, member_id, strlen(member_id), NULL, 0, now);
}

/* v4+ two-step join of a new dynamic member; returns its member id in out. */
static void join_new(int s, char *out, uint64_t now) {
    cr_assert(join(s, "", NULL, "range", "sub", 9, now));
    cr_assert_eq(answers[s].error_code, GROUP_ERR_MEMBER_ID_REQUIRED);
    cr_assert_neq(answers[s].member_id[0], '\0');
    strcpy(out, answers[s].member_id);
}

Test(group, single_member_join_sync_heartbeat) {
    char a[256];
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "sub", 9, 0)); /* everyone (itself) joined: at once */
    cr_assert_eq(answers[1].error_code, 0);
    cr_assert_eq(answers[1].generation_id, 1);
    cr_assert(answers[1].is_leader);
    cr_assert_eq(answers[1].members, 1);
    struct group_sync_assignment as = {a, strlen(a), (const uint8_t *)"P0-5", 4};
    cr_assert(sync_(2, a, 1, &as, 1, 0));
    cr_assert_eq(answers[2].error_code, 0);
    cr_assert_str_eq(answers[2].assignment, "P0-5");
    cr_assert_eq(group_find(&gc, "g", 1)->state, GROUP_STABLE);
    cr_assert_eq(heartbeat(a, 1, 100), 0);
}

Test(group, two_members_rebalance_together) {
    char a[256], b[256];
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "subA", 9, 0));
    struct group_sync_assignment as1 = {a, strlen(a), (const uint8_t *)"all", 3};
    cr_assert(sync_(2, a, 1, &as1, 1, 0));
    join_new(3, b, 10);
    cr_assert(!join(4, b, NULL, "range", "subB", 9, 10)); /* parked: A must rejoin */
    cr_assert(!answers[4].answered);
    cr_assert_eq(heartbeat(a, 1, 20), GROUP_ERR_REBALANCE_IN_PROGRESS);
    cr_assert(join(5, a, NULL, "range", "subA", 9, 30)); /* completes the rebalance ... */
    cr_assert(answers[4].answered && answers[5].answered); /* ... answering both */
    cr_assert_eq(answers[4].generation_id, 2);
    cr_assert_eq(answers[5].generation_id, 2);
    cr_assert(answers[5].is_leader, "the old leader keeps leading");
    cr_assert_eq(answers[5].members, 2);
    cr_assert(!answers[4].is_leader);
    cr_assert_str_eq(answers[4].leader_id, a);
    cr_assert(!sync_(6, b, 2, NULL, 0, 40)); /* follower waits for the leader */
    cr_assert(!answers[6].answered);
    struct group_sync_assignment as2[2] = {{a, strlen(a), (const uint8_t *)"pa", 2},
                                           {b, strlen(b), (const uint8_t *)"pb", 2}};
    cr_assert(sync_(7, a, 2, as2, 2, 50));
    cr_assert_str_eq(answers[7].assignment, "pa");
    cr_assert(answers[6].answered);
    cr_assert_str_eq(answers[6].assignment, "pb");
    cr_assert_eq(heartbeat(b, 2, 60), 0);
    cr_assert_eq(heartbeat(b, 1, 60), GROUP_ERR_ILLEGAL_GENERATION);
}

Test(group, bad_requests_get_kafka_error_codes) {
    char a[256];
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "s", 9, 0));
    /* SyncGroup from an unknown member, wrong generation */
    cr_assert(sync_(2, "nobody", 1, NULL, 0, 0));
    cr_assert_eq(answers[2].error_code, GROUP_ERR_UNKNOWN_MEMBER_ID);
    cr_assert(sync_(3, a, 7, NULL, 0, 0));
    cr_assert_eq(answers[3].error_code, GROUP_ERR_ILLEGAL_GENERATION);
    /* JoinGroup with an unknown member id, a bad session timeout, another protocol */
    cr_assert(join(4, "ghost", NULL, "range", "s", 9, 0));
    cr_assert_eq(answers[4].error_code, GROUP_ERR_UNKNOWN_MEMBER_ID);
    struct group_join_args bad = {.group_id = "g", .group_len = 1, .member_id = "", .member_len = 0,
                                  .session_timeout_ms = 10, .rebalance_timeout_ms = 100,
                                  .protocol_type = "consumer", .protocol_type_len = 8,
                                  .protocol_count = 1, .version = 9, .waiter = slot(5)};
    bad.protocol_names[0] = "range";
    bad.protocol_name_lens[0] = 5;
    group_join(&gc, &bad, 0);
    cr_assert_eq(answers[5].error_code, GROUP_ERR_INVALID_SESSION_TIMEOUT);
    cr_assert(join(6, "", NULL, "roundrobin", "s", 9, 0));
    cr_assert_eq(answers[6].error_code, GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    /* empty group id */
    bad.group_len = 0;
    bad.session_timeout_ms = 10000;
    bad.waiter = slot(7);
    group_join(&gc, &bad, 0);
    cr_assert_eq(answers[7].error_code, GROUP_ERR_INVALID_GROUP_ID);
    /* heartbeat after leave; leave twice; unknown group */
    cr_assert_eq(group_leave(&gc, "g", 1, a, strlen(a), NULL, 0, 10), 0);
    cr_assert_eq(heartbeat(a, 1, 20), GROUP_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(group_leave(&gc, "g", 1, a, strlen(a), NULL, 0, 10), GROUP_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(group_heartbeat(&gc, "zz", 2, 1, a, strlen(a), NULL, 0, 0),
                 GROUP_ERR_UNKNOWN_MEMBER_ID);
    /* the last member left: Empty, next generation */
    struct group *g = group_find(&gc, "g", 1);
    cr_assert_eq(g->state, GROUP_EMPTY);
    cr_assert_eq(g->generation_id, 2);
}

Test(group, commit_checks) {
    /* simple commits while the group has no members */
    cr_assert_eq(group_commit_check(&gc, "g", 1, -1, "", 0, NULL, 0, 0), 0);
    char a[256];
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "s", 9, 0));
    /* CompletingRebalance: commits wait for the assignment */
    cr_assert_eq(group_commit_check(&gc, "g", 1, 1, a, strlen(a), NULL, 0, 0),
                 GROUP_ERR_REBALANCE_IN_PROGRESS);
    cr_assert(sync_(2, a, 1, NULL, 0, 0));
    cr_assert_eq(group_commit_check(&gc, "g", 1, 1, a, strlen(a), NULL, 0, 0), 0);
    cr_assert_eq(group_commit_check(&gc, "g", 1, 0, a, strlen(a), NULL, 0, 0),
                 GROUP_ERR_ILLEGAL_GENERATION);
    cr_assert_eq(group_commit_check(&gc, "g", 1, 1, "x", 1, NULL, 0, 0),
                 GROUP_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(group_commit_check(&gc, "g", 1, -1, "", 0, NULL, 0, 0),
                 GROUP_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(group_commit_check(&gc, "none", 4, 3, "x", 1, NULL, 0, 0),
                 GROUP_ERR_ILLEGAL_GENERATION);
}

/* Two members at generation 2: a leads with "pa", b follows with "pb". */
static void two_stable(char *a, char *b) {
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "s", 9, 0));
    cr_assert(sync_(2, a, 1, NULL, 0, 0));
    join_new(3, b, 10);
    cr_assert(!join(4, b, NULL, "range", "s", 9, 10));
    cr_assert(join(5, a, NULL, "range", "s", 9, 20));
    cr_assert(!sync_(6, b, 2, NULL, 0, 30));
    struct group_sync_assignment as[2] = {{a, strlen(a), (const uint8_t *)"pa", 2},
                                          {b, strlen(b), (const uint8_t *)"pb", 2}};
    cr_assert(sync_(7, a, 2, as, 2, 40));
    cr_assert_str_eq(answers[6].assignment, "pb");
}

Test(group, session_timeout_moves_partitions) {
    char a[256], b[256];
    two_stable(a, b);
    /* b keeps heartbeating, a goes silent (killed) */
    for (uint64_t t = 1000; t < 12000; t += 1000) cr_assert_eq(heartbeat(b, 2, t), 0);
    group_tick(&gc, 10030);
    cr_assert_eq(group_find(&gc, "g", 1)->state, GROUP_STABLE);
    group_tick(&gc, 10041); /* a's 10 s session is over */
    cr_assert_eq(group_find(&gc, "g", 1)->member_count, 1);
    cr_assert_eq(heartbeat(b, 2, 10042), GROUP_ERR_REBALANCE_IN_PROGRESS);
    cr_assert(join(8, b, NULL, "range", "s", 9, 10043));
    cr_assert_eq(answers[8].generation_id, 3);
    cr_assert(answers[8].is_leader, "b leads once a is gone");
}

Test(group, rebalance_timeout_removes_stragglers) {
    char a[256], b[256];
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "s", 9, 0));
    cr_assert(sync_(2, a, 1, NULL, 0, 0));
    join_new(3, b, 100);
    cr_assert(!join(4, b, NULL, "range", "s", 9, 100));
    /* a keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins */
    for (uint64_t t = 5000; t <= 30000; t += 5000)
        cr_assert_eq(heartbeat(a, 1, t), GROUP_ERR_REBALANCE_IN_PROGRESS);
    group_tick(&gc, 20000);
    cr_assert(!answers[4].answered);
    group_tick(&gc, 30100); /* rebalance timeout (30 s) */
    cr_assert(answers[4].answered);
    cr_assert_eq(answers[4].error_code, 0);
    cr_assert(answers[4].is_leader);
    cr_assert_eq(answers[4].members, 1);
    cr_assert_eq(heartbeat(a, 1, 30200), GROUP_ERR_UNKNOWN_MEMBER_ID);
}

Test(group, initial_delay_gathers_members) {
    group_coordinator_destroy(&gc);
    setup_with_delay(3000);
    cr_assert(!join(0, "", "i1", "range", "s", 9, 0)); /* static: no MEMBER_ID_REQUIRED */
    group_tick(&gc, 2000);
    cr_assert(!answers[0].answered, "waits for the initial delay");
    cr_assert(!join(1, "", "i2", "range", "s", 9, 2500)); /* extends the delay */
    group_tick(&gc, 3100);
    cr_assert(!answers[0].answered);
    group_tick(&gc, 5600);
    cr_assert(answers[0].answered && answers[1].answered);
    cr_assert_eq(answers[0].generation_id, 1);
    cr_assert_eq(answers[1].generation_id, 1);
}

Test(group, static_member_restart_keeps_assignment) {
    cr_assert(join(0, "", "inst-a", "range", "s", 9, 0));
    char a[256];
    strcpy(a, answers[0].member_id);
    cr_assert_eq(answers[0].generation_id, 1);
    struct group_sync_assignment as = {a, strlen(a), (const uint8_t *)"p012", 4};
    cr_assert(sync_(1, a, 1, &as, 1, 0));
    /* a dynamic member joins and the group settles at generation 2 */
    char b[256];
    join_new(2, b, 10);
    cr_assert(!join(3, b, NULL, "range", "s", 9, 10));
    cr_assert(!join(4, a, "inst-a", "range", "s", 9, 20) || answers[4].answered);
    cr_assert(answers[3].answered && answers[4].answered);
    struct group_sync_assignment as2[2] = {{a, strlen(a), (const uint8_t *)"p01", 3},
                                           {b, strlen(b), (const uint8_t *)"p2", 2}};
    cr_assert(!sync_(5, b, 2, NULL, 0, 30));
    cr_assert(sync_(6, a, 2, as2, 2, 30));
    /* inst-a restarts: a new JoinGroup without member id, same instance id */
    cr_assert(join(7, "", "inst-a", "range", "s", 9, 40));
    cr_assert_eq(answers[7].error_code, 0);
    cr_assert_eq(answers[7].generation_id, 2, "no new generation");
    char a2[256];
    strcpy(a2, answers[7].member_id);
    cr_assert_str_neq(a2, a);
    cr_assert(sync_(8, a2, 2, NULL, 0, 50));
    cr_assert_str_eq(answers[8].assignment, "p01", "the same partitions");
    cr_assert_eq(heartbeat(b, 2, 60), 0, "the other member sees no rebalance");
    /* the old identity is fenced */
    cr_assert_eq(group_heartbeat(&gc, "g", 1, 2, a, strlen(a), "inst-a", 6, 70),
                 GROUP_ERR_FENCED_INSTANCE_ID);
    cr_assert(join(9, a, "inst-a", "range", "s", 9, 80));
    cr_assert_eq(answers[9].error_code, GROUP_ERR_FENCED_INSTANCE_ID);
    /* batch leave by instance id */
    cr_assert_eq(group_leave(&gc, "g", 1, "", 0, "inst-a", 6, 90), 0);
    cr_assert_eq(group_find(&gc, "g", 1)->member_count, 1);
}

Test(group, delete_and_expire) {
    char a[256];
    join_new(0, a, 0);
    cr_assert(join(1, a, NULL, "range", "s", 9, 0));
    cr_assert_eq(group_delete(&gc, "g", 1), GROUP_ERR_NON_EMPTY_GROUP);
    cr_assert_eq(group_delete(&gc, "nope", 4), GROUP_ERR_GROUP_ID_NOT_FOUND);
    cr_assert_eq(group_leave(&gc, "g", 1, a, strlen(a), NULL, 0, 10), 0);
    cr_assert_eq(group_delete(&gc, "g", 1), 0);
    cr_assert_null(group_find(&gc, "g", 1));
    /* an empty group with offsets expires offsets.retention (60 s) after its last commit */
    struct group *g = group_get_or_create(&gc, "h", 1, 1000);
    cr_assert_not_null(g);
    cr_assert_eq(group_offsets_put(&g->offsets, "t", 1, 0, 5, -1, "", 0, 0), 0);
    g->last_commit_ms = 5000;
    group_tick(&gc, 64000);
    cr_assert_not_null(group_find(&gc, "h", 1));
    cr_assert_eq(expired_calls, 0);
    group_tick(&gc, 65000);
    cr_assert_null(group_find(&gc, "h", 1));
    cr_assert_eq(expired_calls, 1, "the owner was told, to write tombstones");
}
