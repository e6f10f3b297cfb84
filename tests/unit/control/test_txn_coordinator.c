/* test_txn_coordinator.c - the transaction state machine: Kafka's transitions and error
 * codes, epoch bumps and fencing, KIP-360 recovery, producer id rotation at an exhausted
 * epoch, failed writes dropping their transition, markers, the timeout abort with an
 * epoch bump, id expiry, pending offsets, and the reload from log records. */
#include <criterion/criterion.h>
#include <string.h>

#include "control/txn_coordinator.h"

#define MAX_TIMEOUT_MS 60000
#define EXPIRATION_MS 100000

static int64_t next_pid;
static int alloc_fails;

static int allocate(void *arg, int64_t *pid) {
    (void)arg;
    if (alloc_fails) return -5;
    *pid = next_pid++;
    return 0;
}

static struct txn_coordinator tc;

static void setup(void) {
    next_pid = 100;
    alloc_fails = 0;
    struct txn_coordinator_config cfg = {.max_timeout_ms = MAX_TIMEOUT_MS,
                                         .id_expiration_ms = EXPIRATION_MS,
                                         .allocate = allocate};
    txn_coordinator_init(&tc, &cfg);
}

static void teardown(void) { txn_coordinator_destroy(&tc); }

static const struct txn_log_part P0 = {"t", 1, 0}, P1 = {"t", 1, 1};

/* InitProducerId that must write; the write succeeds. Returns the txn. */
static struct txn *init_ok(const char *id, int64_t pid, int16_t epoch, int64_t now) {
    struct txn_result r = txn_init_producer(&tc, id, strlen(id), 30000, pid, epoch, now);
    cr_assert_eq(r.error, 0);
    cr_assert(r.write && r.txn && r.txn->pending);
    cr_assert_eq(txn_write_done(&tc, r.txn, true), TXN_EMPTY);
    return r.txn;
}

static void add_ok(struct txn *t, const struct txn_log_part *parts, uint32_t n, int64_t now) {
    struct txn_result r = txn_add_partitions(&tc, t->id, t->id_len, t->cur.producer_id,
                                             t->cur.producer_epoch, parts, n, now);
    cr_assert_eq(r.error, 0);
    if (r.write) cr_assert_eq(txn_write_done(&tc, t, true), TXN_ONGOING);
}

TestSuite(txn, .init = setup, .fini = teardown);

Test(txn, init_new_id_epoch_zero_then_bumps) {
    struct txn *t = init_ok("a", -1, -1, 1000);
    cr_assert_eq(t->cur.producer_id, 100);
    cr_assert_eq(t->cur.producer_epoch, 0);
    cr_assert_eq(t->cur.timeout_ms, 30000);
    init_ok("a", -1, -1, 1001);
    cr_assert_eq(t->cur.producer_id, 100);
    cr_assert_eq(t->cur.producer_epoch, 1);
    cr_assert_eq(t->cur.last_producer_epoch, 0);
    cr_assert_eq(tc.count, 1);
}

Test(txn, invalid_timeout_and_empty_id) {
    cr_assert_eq(txn_init_producer(&tc, "a", 1, MAX_TIMEOUT_MS + 1, -1, -1, 0).error,
                 TXN_ERR_INVALID_TRANSACTION_TIMEOUT);
    cr_assert_eq(txn_init_producer(&tc, "a", 1, 0, -1, -1, 0).error,
                 TXN_ERR_INVALID_TRANSACTION_TIMEOUT);
    cr_assert_eq(txn_init_producer(&tc, "", 0, 1000, -1, -1, 0).error, TXN_ERR_INVALID_REQUEST);
    cr_assert_eq(tc.count, 0);
}

Test(txn, pending_write_answers_concurrent_transactions) {
    struct txn_result r = txn_init_producer(&tc, "a", 1, 1000, -1, -1, 0);
    cr_assert(r.write);
    cr_assert_eq(txn_init_producer(&tc, "a", 1, 1000, -1, -1, 0).error,
                 TXN_ERR_CONCURRENT_TRANSACTIONS);
    txn_write_done(&tc, r.txn, true);
    r = txn_add_partitions(&tc, "a", 1, 100, 0, &P0, 1, 5);
    cr_assert(r.write && r.error == 0);
    cr_assert_eq(txn_end(&tc, "a", 1, 100, 0, true, 6).error, TXN_ERR_CONCURRENT_TRANSACTIONS);
    cr_assert_eq(txn_add_partitions(&tc, "a", 1, 100, 0, &P1, 1, 6).error,
                 TXN_ERR_CONCURRENT_TRANSACTIONS);
}

Test(txn, commit_cycle_with_markers) {
    struct txn *t = init_ok("a", -1, -1, 0);
    add_ok(t, &P0, 1, 10);
    cr_assert_eq(t->cur.state, TXN_ONGOING);
    cr_assert_eq(t->cur.start_ms, 10);
    add_ok(t, &P0, 1, 11); /* already in: no write */
    cr_assert(!t->pending);
    add_ok(t, &P1, 1, 12);
    cr_assert_eq(t->part_count, 2);
    cr_assert_eq(t->cur.start_ms, 10); /* the transaction started at the first add */
    struct txn_result r = txn_end(&tc, "a", 1, t->cur.producer_id, 0, true, 20);
    cr_assert(r.error == 0 && r.write);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_PREPARE_COMMIT);
    cr_assert(!txn_markers_all_done(t));
    /* while the markers are out: retried EndTxn and AddPartitions are told to wait,
     * the opposite decision is refused */
    cr_assert_eq(txn_end(&tc, "a", 1, 100, 0, true, 21).error, TXN_ERR_CONCURRENT_TRANSACTIONS);
    cr_assert_eq(txn_end(&tc, "a", 1, 100, 0, false, 21).error, TXN_ERR_INVALID_TXN_STATE);
    cr_assert_eq(txn_add_partitions(&tc, "a", 1, 100, 0, &P0, 1, 21).error,
                 TXN_ERR_CONCURRENT_TRANSACTIONS);
    t->parts[0].marker_done = true;
    cr_assert(!txn_markers_all_done(t));
    t->parts[1].marker_done = true;
    cr_assert(txn_markers_all_done(t));
    txn_prepare_complete(t, 30);
    cr_assert_eq(t->next.state, TXN_COMPLETE_COMMIT);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_COMPLETE_COMMIT);
    cr_assert_eq(t->part_count, 0);
    cr_assert_eq(t->cur.start_ms, -1);
    /* a retried commit of the completed transaction succeeds, an abort does not */
    r = txn_end(&tc, "a", 1, 100, 0, true, 31);
    cr_assert(r.error == 0 && !r.write);
    cr_assert_eq(txn_end(&tc, "a", 1, 100, 0, false, 31).error, TXN_ERR_INVALID_TXN_STATE);
    /* the next transaction starts from CompleteCommit */
    add_ok(t, &P1, 1, 40);
    cr_assert_eq(t->cur.state, TXN_ONGOING);
    cr_assert_eq(t->cur.start_ms, 40);
}

Test(txn, producer_checks) {
    struct txn *t = init_ok("a", -1, -1, 0);
    cr_assert_eq(txn_add_partitions(&tc, "nosuch", 6, 100, 0, &P0, 1, 1).error,
                 TXN_ERR_INVALID_PRODUCER_ID_MAPPING);
    cr_assert_eq(txn_add_partitions(&tc, "a", 1, 101, 0, &P0, 1, 1).error,
                 TXN_ERR_INVALID_PRODUCER_ID_MAPPING);
    cr_assert_eq(txn_add_partitions(&tc, "a", 1, 100, 1, &P0, 1, 1).error,
                 TXN_ERR_PRODUCER_FENCED);
    cr_assert_eq(txn_end(&tc, "a", 1, 100, 0, true, 1).error, TXN_ERR_INVALID_TXN_STATE); /* Empty */
    cr_assert_eq(txn_check_offsets(&tc, "a", 1, 100, 0), TXN_ERR_INVALID_TXN_STATE);
    add_ok(t, &P0, 1, 2);
    cr_assert_eq(txn_check_offsets(&tc, "a", 1, 100, 0), 0);
    cr_assert_eq(txn_check_offsets(&tc, "a", 1, 100, 1), TXN_ERR_INVALID_PRODUCER_EPOCH);
    cr_assert_eq(txn_check_offsets(&tc, "b", 1, 100, 0), TXN_ERR_INVALID_PRODUCER_ID_MAPPING);
}

Test(txn, second_producer_fences_the_first) {
    struct txn *t = init_ok("a", -1, -1, 0);
    add_ok(t, &P0, 1, 1);
    /* a new producer's InitProducerId: the open transaction is aborted with epoch 1 and
     * the caller told to retry */
    struct txn_result r = txn_init_producer(&tc, "a", 1, 30000, -1, -1, 2);
    cr_assert_eq(r.error, TXN_ERR_CONCURRENT_TRANSACTIONS);
    cr_assert(r.write);
    cr_assert_eq(t->next.state, TXN_PREPARE_ABORT);
    cr_assert_eq(t->next.producer_epoch, 1);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_PREPARE_ABORT);
    cr_assert_eq(txn_init_producer(&tc, "a", 1, 30000, -1, -1, 3).error,
                 TXN_ERR_CONCURRENT_TRANSACTIONS); /* markers still out */
    /* the old producer (epoch 0) is fenced */
    cr_assert_eq(txn_end(&tc, "a", 1, 100, 0, true, 3).error, TXN_ERR_PRODUCER_FENCED);
    t->parts[0].marker_done = true;
    txn_prepare_complete(t, 4);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_COMPLETE_ABORT);
    init_ok("a", -1, -1, 5);
    cr_assert_eq(t->cur.producer_epoch, 2);
    cr_assert_eq(t->cur.producer_id, 100);
}

Test(txn, kip360_recovery_and_retry) {
    struct txn *t = init_ok("a", -1, -1, 0);
    /* the producer names its current id/epoch: bumped */
    init_ok("a", 100, 0, 1);
    cr_assert_eq(t->cur.producer_epoch, 1);
    /* a retry of that call (it names epoch 0 = the last epoch): answered as is */
    struct txn_result r = txn_init_producer(&tc, "a", 1, 30000, 100, 0, 2);
    cr_assert(r.error == 0 && !r.write);
    cr_assert_eq(t->cur.producer_epoch, 1);
    /* another id, or an epoch that is neither: fenced */
    cr_assert_eq(txn_init_producer(&tc, "a", 1, 30000, 555, 1, 3).error, TXN_ERR_PRODUCER_FENCED);
    cr_assert_eq(txn_init_producer(&tc, "a", 1, 30000, 100, 7, 3).error, TXN_ERR_PRODUCER_FENCED);
}

Test(txn, exhausted_epoch_rotates_the_producer_id) {
    struct txn *t = init_ok("a", -1, -1, 0);
    t->cur.producer_epoch = TXN_EPOCH_EXHAUSTED;
    init_ok("a", -1, -1, 1);
    cr_assert_eq(t->cur.producer_id, 101);
    cr_assert_eq(t->cur.producer_epoch, 0);
    cr_assert_eq(t->cur.last_producer_id, 100);
    alloc_fails = 1;
    t->cur.producer_epoch = TXN_EPOCH_EXHAUSTED;
    cr_assert_eq(txn_init_producer(&tc, "a", 1, 30000, -1, -1, 2).error,
                 TXN_ERR_COORDINATOR_NOT_AVAILABLE);
    cr_assert(!t->pending);
}

Test(txn, failed_write_drops_the_transition) {
    struct txn *t = init_ok("a", -1, -1, 0);
    add_ok(t, &P0, 1, 1);
    struct txn_result r = txn_add_partitions(&tc, "a", 1, 100, 0, &P1, 1, 2);
    cr_assert(r.write);
    cr_assert_eq(t->part_count, 2);
    cr_assert_eq(txn_write_done(&tc, t, false), TXN_ONGOING);
    cr_assert_eq(t->part_count, 1); /* the partition the failed write added is gone */
    r = txn_end(&tc, "a", 1, 100, 0, false, 3);
    cr_assert_eq(txn_write_done(&tc, t, false), TXN_ONGOING);
    cr_assert(!t->pending);
}

Test(txn, timeout_aborts_with_epoch_bump_and_ids_expire) {
    struct txn *t = init_ok("a", -1, -1, 0);
    add_ok(t, &P0, 1, 1000);
    cr_assert_null(txn_next_expired(&tc, 1000 + 30000)); /* not past its timeout yet */
    struct txn *x = txn_next_expired(&tc, 1000 + 30001);
    cr_assert_eq(x, t);
    cr_assert_eq(t->next.state, TXN_PREPARE_ABORT);
    cr_assert_eq(t->next.producer_epoch, 1);
    cr_assert_null(txn_next_expired(&tc, 1000 + 30001)); /* pending: not twice */
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_PREPARE_ABORT);
    cr_assert_eq(txn_add_partitions(&tc, "a", 1, 100, 0, &P0, 1, 40000).error,
                 TXN_ERR_PRODUCER_FENCED); /* the zombie */
    t->parts[0].marker_done = true;
    txn_prepare_complete(t, 40000);
    txn_write_done(&tc, t, true);
    /* idle past transactional.id.expiration.ms: a Dead tombstone, then gone */
    cr_assert_null(txn_next_expired(&tc, 40000 + EXPIRATION_MS));
    x = txn_next_expired(&tc, 40001 + EXPIRATION_MS);
    cr_assert_eq(x, t);
    cr_assert(txn_next_is_tombstone(t));
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_DEAD);
    cr_assert_null(txn_find(&tc, "a", 1));
    cr_assert_eq(tc.count, 0);
}

Test(txn, pending_offsets) {
    struct txn *t = init_ok("a", -1, -1, 0);
    add_ok(t, &P0, 1, 1);
    cr_assert(!txn_offset_pending(&tc, "g", 1, "t", 1, 0));
    cr_assert_eq(txn_add_offset(t, "g", 1, "t", 1, 0, 5, -1, "m", 1, 9), 0);
    cr_assert_eq(txn_add_offset(t, "g", 1, "t", 1, 0, 6, -1, NULL, 0, 9), 0); /* replaces */
    cr_assert_eq(t->offset_count, 1);
    cr_assert_eq(t->offsets[0].offset, 6);
    cr_assert(txn_offset_pending(&tc, "g", 1, "t", 1, 0));
    cr_assert(!txn_offset_pending(&tc, "g", 1, "t", 1, 1));
    cr_assert(!txn_offset_pending(&tc, "h", 1, "t", 1, 0));
    cr_assert_eq(txn_find_producer(&tc, 100), t);
    cr_assert_null(txn_find_producer(&tc, 101));
    txn_end(&tc, "a", 1, 100, 0, false, 2);
    txn_write_done(&tc, t, true);
    t->parts[0].marker_done = true;
    txn_prepare_complete(t, 3);
    txn_write_done(&tc, t, true);
    cr_assert_eq(t->offset_count, 0); /* the transaction ended: nothing pending */
    cr_assert(!txn_offset_pending(&tc, "g", 1, "t", 1, 0));
}

Test(txn, replay_last_record_wins_and_tombstone_removes) {
    struct txn_log_part parts[2] = {{"x", 1, 3}, {"y", 1, 0}};
    struct txn_log_record rec = {.id = "a", .id_len = 1,
                                 .value = {.producer_id = 7, .producer_epoch = 2,
                                           .timeout_ms = 5000, .state = TXN_ONGOING,
                                           .update_ms = 10, .start_ms = 9},
                                 .part_count = 1};
    txn_replay(&tc, &rec, parts);
    rec.value.state = TXN_PREPARE_COMMIT;
    rec.part_count = 2;
    txn_replay(&tc, &rec, parts);
    struct txn *t = txn_find(&tc, "a", 1);
    cr_assert_not_null(t);
    cr_assert_eq(t->cur.state, TXN_PREPARE_COMMIT);
    cr_assert_eq(t->cur.producer_id, 7);
    cr_assert_eq(t->cur.producer_epoch, 2);
    cr_assert_eq(t->part_count, 2);
    cr_assert_eq(t->part_durable, 2);
    cr_assert_str_eq(t->parts[1].topic, "y");
    /* the reloaded PrepareCommit completes once its markers are durable */
    txn_markers_reset(t);
    t->parts[0].marker_done = t->parts[1].marker_done = true;
    txn_prepare_complete(t, 20);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_COMPLETE_COMMIT);
    rec.tombstone = true;
    txn_replay(&tc, &rec, parts);
    cr_assert_null(txn_find(&tc, "a", 1));
}

Test(txn, state_names) {
    cr_assert_str_eq(txn_state_name(TXN_PREPARE_COMMIT), "PrepareCommit");
    cr_assert_eq(txn_state_from_name("CompleteAbort", 13), TXN_COMPLETE_ABORT);
    cr_assert_eq(txn_state_from_name("Bogus", 5), -1);
}

Test(txn, completion_superseded_by_the_next_transaction) {
    struct txn *t = init_ok("a", -1, -1, 0);
    add_ok(t, &P0, 1, 1);
    txn_end(&tc, "a", 1, 100, 0, true, 2);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_PREPARE_COMMIT);
    t->parts[0].marker_done = true;
    /* the next transaction's AddPartitions is waiting: complete in memory only */
    txn_complete_unlogged(t, 3);
    cr_assert_eq(t->cur.state, TXN_COMPLETE_COMMIT);
    cr_assert(t->log_behind && !t->pending);
    cr_assert_eq(t->part_count, 0);
    struct txn_result r = txn_add_partitions(&tc, "a", 1, 100, 0, &P1, 1, 4);
    cr_assert(r.error == 0 && r.write);
    cr_assert_eq(t->next.state, TXN_ONGOING);
    cr_assert_eq(t->next.start_ms, 4);
    /* its write fails: still Complete in memory, the log still behind */
    cr_assert_eq(txn_write_done(&tc, t, false), TXN_COMPLETE_COMMIT);
    cr_assert(t->log_behind);
    cr_assert_eq(t->part_count, 0);
    /* the completion is then logged on its own */
    txn_prepare_relog(t, 5);
    cr_assert_eq(t->next.state, TXN_COMPLETE_COMMIT);
    cr_assert_eq(txn_write_done(&tc, t, true), TXN_COMPLETE_COMMIT);
    cr_assert(!t->log_behind);
    /* and a successful next transition clears it as well */
    txn_end(&tc, "a", 1, 100, 0, true, 6); /* CompleteCommit + commit: a retry, no write */
    add_ok(t, &P1, 1, 7);
    cr_assert_eq(t->cur.state, TXN_ONGOING);
    cr_assert(!t->log_behind);
}
