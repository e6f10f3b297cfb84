/* txn_coordinator.c - Kafka's transaction state machine (KIP-98, KIP-360), in memory.
 *
 * One struct txn per transactional id, in a chained hash table (TXN_MAX_IDS at most).
 * Every change goes through a prepared transition: the request handler checks the
 * producer id and epoch, builds the next image (txn->next, txn->pending), and the caller
 * writes it to __transaction_state; only when that write is durable does the image
 * become current (txn_write_done). While a transition is pending every other request for
 * the id gets CONCURRENT_TRANSACTIONS, as in Kafka, and clients retry it.
 *
 *   Empty/CompleteCommit/CompleteAbort --AddPartitions--> Ongoing --EndTxn--> Prepare*
 *   Prepare* --every marker durable--> Complete*      (txn_prepare_complete; or
 *                                        txn_complete_unlogged when the next
 *                                        transaction's first request is waiting)
 *   Ongoing --timeout--> PrepareAbort, epoch + 1      (txn_next_expired: fences the zombie)
 *   Ongoing --InitProducerId--> PrepareAbort, epoch + 1, the caller retries
 *   Empty/Complete* --InitProducerId--> Empty, epoch + 1 (a new producer id once the
 *                                        epoch is exhausted)
 *   Empty/Complete* idle past transactional.id.expiration.ms --> Dead (a tombstone)
 *
 * Errors as Kafka's TransactionCoordinator answers them: an unknown id or another
 * producer id is INVALID_PRODUCER_ID_MAPPING, another epoch PRODUCER_FENCED (the API
 * layer turns it into INVALID_PRODUCER_EPOCH for versions that predate it), EndTxn in the
 * wrong state INVALID_TXN_STATE, a retried EndTxn of a completed transaction succeeds.
 *
 * Partitions are kept in order of addition; those added by a pending AddPartitions sit
 * after part_durable and are dropped when its write fails. Offsets a TxnOffsetCommit
 * wrote wait in the transaction until its commit marker reaches the group's partition. */
#include "control/txn_coordinator.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>


static const char *const state_names[] = {
    "Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort",
    "Dead", "PrepareEpochFence"};

const char *txn_state_name(enum txn_state s) {
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "Unknown";
}

int txn_state_from_name(const char *name, size_t len) {
    for (int i = 0; i < (int)(sizeof state_names / sizeof state_names[0]); i++)
        if (strlen(state_names[i]) == len && memcmp(state_names[i], name, len) == 0) return i;
    return -1;
}

static uint32_t hash_id(const char *id, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)id[i]) * 16777619u;
    return h % TXN_HASH_BUCKETS;
}

void txn_coordinator_init(struct txn_coordinator *c, const struct txn_coordinator_config *cfg) {
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    assert(cfg->max_timeout_ms > 0 && cfg->id_expiration_ms > 0 && cfg->allocate);
}

static void parts_truncate(struct txn *t, uint32_t keep) {
    for (uint32_t i = keep; i < t->part_count; i++) free(t->parts[i].topic);
    t->part_count = keep;
    if (t->part_durable > keep) t->part_durable = keep;
}

static void offset_free(struct txn_offset *o) {
    free(o->group);
    free(o->topic);
    free(o->metadata);
}

static void offsets_clear(struct txn *t) {
    for (uint32_t i = 0; i < t->offset_count; i++) offset_free(&t->offsets[i]);
    t->offset_count = 0;
}

static void txn_free(struct txn *t) {
    parts_truncate(t, 0);
    offsets_clear(t);
    free(t->parts);
    free(t->offsets);
    free(t->id);
    free(t);
}

void txn_coordinator_destroy(struct txn_coordinator *c) {
    struct txn *t = c->all;
    while (t) {
        struct txn *n = t->all_next;
        txn_free(t);
        t = n;
    }
    memset(c, 0, sizeof *c);
}

struct txn *txn_find(struct txn_coordinator *c, const char *id, size_t id_len) {
    for (struct txn *t = c->buckets[hash_id(id, id_len)]; t; t = t->hash_next)
        if (t->id_len == id_len && memcmp(t->id, id, id_len) == 0) return t;
    return NULL;
}

static bool open_state(enum txn_state s) {
    return s == TXN_ONGOING || s == TXN_PREPARE_COMMIT || s == TXN_PREPARE_ABORT;
}

struct txn *txn_find_producer(struct txn_coordinator *c, int64_t producer_id) {
    for (struct txn *t = c->all; t; t = t->all_next)
        if (t->cur.producer_id == producer_id && open_state(t->cur.state)) return t;
    return NULL;
}

static struct txn *txn_create(struct txn_coordinator *c, const char *id, size_t id_len) {
    if (c->count >= TXN_MAX_IDS || id_len == 0 || id_len > TXN_ID_MAX_BYTES) return NULL;
    struct txn *t = calloc(1, sizeof *t);
    char *copy = malloc(id_len + 1);
    if (!t || !copy) {
        free(t);
        free(copy);
        return NULL;
    }
    memcpy(copy, id, id_len);
    copy[id_len] = '\0';
    t->id = copy;
    t->id_len = (uint16_t)id_len;
    t->cur = (struct txn_image){.producer_id = -1, .last_producer_id = -1, .producer_epoch = -1,
                                .last_producer_epoch = -1, .state = TXN_EMPTY, .start_ms = -1};
    uint32_t b = hash_id(id, id_len);
    t->hash_next = c->buckets[b];
    c->buckets[b] = t;
    t->all_next = c->all;
    c->all = t;
    c->count++;
    return t;
}

static void txn_remove(struct txn_coordinator *c, struct txn *t) {
    struct txn **pp = &c->buckets[hash_id(t->id, t->id_len)];
    while (*pp != t) pp = &(*pp)->hash_next;
    *pp = t->hash_next;
    pp = &c->all;
    while (*pp != t) pp = &(*pp)->all_next;
    *pp = t->all_next;
    assert(c->count > 0);
    c->count--;
    txn_free(t);
}

static struct txn_result result(int16_t error, bool write, struct txn *t) {
    return (struct txn_result){.error = error, .write = write, .txn = t};
}

/* Prepare next from cur with state s at now_ms. */
static void prepare(struct txn *t, enum txn_state s, int64_t now_ms) {
    assert(!t->pending);
    t->next = t->cur;
    t->next.state = s;
    t->next.update_ms = now_ms;
    t->pending = true;
}

/* An abort that also bumps the epoch: the producer that owned the transaction is fenced
 * from the data partitions by the markers (written with the new epoch). */
static void prepare_fencing_abort(struct txn *t, int64_t now_ms) {
    prepare(t, TXN_PREPARE_ABORT, now_ms);
    if (t->cur.producer_epoch < INT16_MAX) {
        t->next.last_producer_epoch = t->cur.producer_epoch;
        t->next.producer_epoch = (int16_t)(t->cur.producer_epoch + 1);
    }
}

/* ---- InitProducerId ------------------------------------------------------------------- */

/* KIP-360: a producer naming its current id may continue unless another producer took the
 * id over. */
static bool valid_expected(const struct txn *t, int64_t producer_id, int16_t epoch) {
    return t->cur.producer_epoch == -1 || producer_id == t->cur.producer_id ||
           (producer_id == t->cur.last_producer_id && epoch >= TXN_EPOCH_EXHAUSTED);
}

static struct txn_result bump_epoch(struct txn_coordinator *c, struct txn *t, int32_t timeout_ms,
                                    int64_t now_ms) {
    int64_t id = t->cur.producer_id;
    int16_t epoch = t->cur.producer_epoch;
    int64_t last_id = t->cur.last_producer_id;
    int16_t last_epoch = epoch;
    if (id < 0 || epoch >= TXN_EPOCH_EXHAUSTED) { /* a fresh id (first use, or rotation) */
        int64_t fresh;
        if (c->cfg.allocate(c->cfg.allocate_arg, &fresh) != 0)
            return result(TXN_ERR_COORDINATOR_NOT_AVAILABLE, false, t);
        last_id = id;
        id = fresh;
        epoch = 0;
        last_epoch = -1;
    } else {
        epoch++;
    }
    prepare(t, TXN_EMPTY, now_ms);
    t->next.producer_id = id;
    t->next.last_producer_id = last_id;
    t->next.producer_epoch = epoch;
    t->next.last_producer_epoch = last_epoch;
    t->next.timeout_ms = timeout_ms;
    t->next.start_ms = -1;
    return result(0, true, t);
}

struct txn_result txn_init_producer(struct txn_coordinator *c, const char *id, size_t id_len,
                                    int32_t timeout_ms, int64_t producer_id, int16_t epoch,
                                    int64_t now_ms) {
    if (id_len == 0 || id_len > TXN_ID_MAX_BYTES)
        return result(TXN_ERR_INVALID_REQUEST, false, NULL);
    if (timeout_ms <= 0 || timeout_ms > c->cfg.max_timeout_ms)
        return result(TXN_ERR_INVALID_TRANSACTION_TIMEOUT, false, NULL);
    struct txn *t = txn_find(c, id, id_len);
    if (!t && !(t = txn_create(c, id, id_len)))
        return result(TXN_ERR_COORDINATOR_NOT_AVAILABLE, false, NULL);
    if (t->pending) return result(TXN_ERR_CONCURRENT_TRANSACTIONS, false, t);
    bool expected = producer_id >= 0 && epoch >= 0;
    if (expected && !valid_expected(t, producer_id, epoch))
        return result(TXN_ERR_PRODUCER_FENCED, false, t);
    switch (t->cur.state) {
    case TXN_ONGOING: /* abort it (fencing the old producer); the client retries */
        prepare_fencing_abort(t, now_ms);
        return result(TXN_ERR_CONCURRENT_TRANSACTIONS, true, t);
    case TXN_EMPTY:
    case TXN_COMPLETE_COMMIT:
    case TXN_COMPLETE_ABORT:
        if (!expected || t->cur.producer_epoch == -1 || epoch == t->cur.producer_epoch)
            return bump_epoch(c, t, timeout_ms, now_ms);
        if (epoch == t->cur.last_producer_epoch) /* a retry of a bump already done */
            return result(0, false, t);
        return result(TXN_ERR_PRODUCER_FENCED, false, t);
    default: /* Prepare*: markers being written; Dead: being removed */
        return result(TXN_ERR_CONCURRENT_TRANSACTIONS, false, t);
    }
}

/* ---- AddPartitionsToTxn / AddOffsetsToTxn / EndTxn ------------------------------------- */

/* The checks every request of a running producer passes first. */
static int16_t check_producer(struct txn *t, int64_t producer_id, int16_t epoch) {
    if (!t || t->cur.producer_id < 0 || t->cur.producer_id != producer_id)
        return TXN_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != t->cur.producer_epoch) return TXN_ERR_PRODUCER_FENCED;
    if (t->pending) return TXN_ERR_CONCURRENT_TRANSACTIONS;
    return 0;
}

static bool has_part(const struct txn *t, const char *topic, size_t topic_len, int32_t partition) {
    for (uint32_t i = 0; i < t->part_count; i++)
        if (t->parts[i].partition == partition && t->parts[i].topic_len == topic_len &&
            memcmp(t->parts[i].topic, topic, topic_len) == 0)
            return true;
    return false;
}

static int add_part(struct txn *t, const struct txn_log_part *p) {
    if (t->part_count >= TXN_LOG_MAX_PARTS) return -1;
    if (t->part_count == t->part_cap) {
        uint32_t cap = t->part_cap ? t->part_cap * 2 : 8;
        struct txn_part *np = realloc(t->parts, cap * sizeof np[0]);
        if (!np) return -1;
        t->parts = np;
        t->part_cap = cap;
    }
    char *topic = malloc((size_t)p->topic_len + 1);
    if (!topic) return -1;
    memcpy(topic, p->topic, p->topic_len);
    topic[p->topic_len] = '\0';
    t->parts[t->part_count++] = (struct txn_part){.topic = topic, .topic_len = p->topic_len,
                                                  .partition = p->partition};
    return 0;
}

struct txn_result txn_add_partitions(struct txn_coordinator *c, const char *id, size_t id_len,
                                     int64_t producer_id, int16_t epoch,
                                     const struct txn_log_part *parts, uint32_t count,
                                     int64_t now_ms) {
    struct txn *t = txn_find(c, id, id_len);
    int16_t ec = check_producer(t, producer_id, epoch);
    if (ec != 0) return result(ec, false, t);
    if (t->cur.state == TXN_PREPARE_COMMIT || t->cur.state == TXN_PREPARE_ABORT)
        return result(TXN_ERR_CONCURRENT_TRANSACTIONS, false, t);
    if (t->cur.state == TXN_DEAD || t->cur.state == TXN_PREPARE_EPOCH_FENCE)
        return result(TXN_ERR_INVALID_TXN_STATE, false, t);
    assert(t->part_count == t->part_durable);
    for (uint32_t i = 0; i < count; i++) {
        if (has_part(t, parts[i].topic, parts[i].topic_len, parts[i].partition)) continue;
        if (add_part(t, &parts[i]) != 0) {
            parts_truncate(t, t->part_durable);
            return result(TXN_ERR_COORDINATOR_NOT_AVAILABLE, false, t);
        }
    }
    if (t->cur.state == TXN_ONGOING && t->part_count == t->part_durable)
        return result(0, false, t); /* nothing new */
    bool starts = t->cur.state != TXN_ONGOING;
    prepare(t, TXN_ONGOING, now_ms);
    if (starts) t->next.start_ms = now_ms;
    return result(0, true, t);
}

struct txn_result txn_end(struct txn_coordinator *c, const char *id, size_t id_len,
                          int64_t producer_id, int16_t epoch, bool commit, int64_t now_ms) {
    struct txn *t = txn_find(c, id, id_len);
    int16_t ec = check_producer(t, producer_id, epoch);
    if (ec != 0) return result(ec, false, t);
    switch (t->cur.state) {
    case TXN_ONGOING:
        prepare(t, commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT, now_ms);
        return result(0, true, t);
    case TXN_COMPLETE_COMMIT: return result(commit ? 0 : TXN_ERR_INVALID_TXN_STATE, false, t);
    case TXN_COMPLETE_ABORT: return result(commit ? TXN_ERR_INVALID_TXN_STATE : 0, false, t);
    case TXN_PREPARE_COMMIT:
        return result(commit ? TXN_ERR_CONCURRENT_TRANSACTIONS : TXN_ERR_INVALID_TXN_STATE, false, t);
    case TXN_PREPARE_ABORT:
        return result(commit ? TXN_ERR_INVALID_TXN_STATE : TXN_ERR_CONCURRENT_TRANSACTIONS, false, t);
    default: return result(TXN_ERR_INVALID_TXN_STATE, false, t);
    }
}

/* ---- TxnOffsetCommit -------------------------------------------------------------------- */

int16_t txn_check_offsets(struct txn_coordinator *c, const char *id, size_t id_len,
                          int64_t producer_id, int16_t epoch) {
    struct txn *t = txn_find(c, id, id_len);
    if (!t || t->cur.producer_id != producer_id) return TXN_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != t->cur.producer_epoch) return TXN_ERR_INVALID_PRODUCER_EPOCH;
    if (t->cur.state != TXN_ONGOING) return TXN_ERR_INVALID_TXN_STATE;
    return 0;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int txn_add_offset(struct txn *t, const char *group, size_t group_len, const char *topic,
                   size_t topic_len, int32_t partition, int64_t offset, int32_t leader_epoch,
                   const char *metadata, size_t metadata_len, int64_t commit_timestamp_ms) {
    struct txn_offset o = {.group = dup_n(group, group_len), .topic = dup_n(topic, topic_len),
                           .partition = partition, .offset = offset,
                           .leader_epoch = leader_epoch,
                           .metadata = dup_n(metadata ? metadata : "", metadata_len),
                           .commit_timestamp_ms = commit_timestamp_ms};
    if (!o.group || !o.topic || !o.metadata) {
        offset_free(&o);
        return -1;
    }
    for (uint32_t i = 0; i < t->offset_count; i++) { /* a later commit replaces */
        struct txn_offset *e = &t->offsets[i];
        if (e->partition == partition && strcmp(e->group, o.group) == 0 &&
            strcmp(e->topic, o.topic) == 0) {
            offset_free(e);
            *e = o;
            return 0;
        }
    }
    if (t->offset_count >= TXN_MAX_OFFSETS) {
        offset_free(&o);
        return -1;
    }
    if (t->offset_count == t->offset_cap) {
        uint32_t cap = t->offset_cap ? t->offset_cap * 2 : 8;
        struct txn_offset *no = realloc(t->offsets, cap * sizeof no[0]);
        if (!no) {
            offset_free(&o);
            return -1;
        }
        t->offsets = no;
        t->offset_cap = cap;
    }
    t->offsets[t->offset_count++] = o;
    return 0;
}

bool txn_offset_pending(struct txn_coordinator *c, const char *group, size_t group_len,
                        const char *topic, size_t topic_len, int32_t partition) {
    for (const struct txn *t = c->all; t; t = t->all_next)
        for (uint32_t i = 0; i < t->offset_count; i++) {
            const struct txn_offset *o = &t->offsets[i];
            if (o->partition == partition && strlen(o->group) == group_len &&
                memcmp(o->group, group, group_len) == 0 && strlen(o->topic) == topic_len &&
                memcmp(o->topic, topic, topic_len) == 0)
                return true;
        }
    return false;
}

/* ---- transitions, markers, timers ------------------------------------------------------- */

/* The transaction is over: no partitions, no offsets. */
static void end_transaction(struct txn *t) {
    parts_truncate(t, 0);
    offsets_clear(t);
    t->cur.start_ms = -1;
}

enum txn_state txn_write_done(struct txn_coordinator *c, struct txn *t, bool ok) {
    assert(t->pending);
    t->pending = false;
    if (!ok) {
        parts_truncate(t, t->part_durable);
        return t->cur.state;
    }
    t->cur = t->next;
    t->part_durable = t->part_count;
    t->log_behind = false; /* the last record of t is this one */
    switch (t->cur.state) {
    case TXN_PREPARE_COMMIT:
    case TXN_PREPARE_ABORT:
        txn_markers_reset(t);
        break;
    case TXN_DEAD:
        txn_remove(c, t);
        return TXN_DEAD;
    case TXN_ONGOING: break;
    default: /* Empty, Complete*: the transaction is over */
        end_transaction(t);
    }
    return t->cur.state;
}

void txn_markers_reset(struct txn *t) {
    for (uint32_t i = 0; i < t->part_count; i++) {
        t->parts[i].marker_done = false;
        t->parts[i].marker_in_flight = false;
    }
    t->marker_retry_at_ms = 0;
}

bool txn_markers_all_done(const struct txn *t) {
    for (uint32_t i = 0; i < t->part_count; i++)
        if (!t->parts[i].marker_done) return false;
    return true;
}

void txn_complete_unlogged(struct txn *t, int64_t now_ms) {
    assert(!t->pending && txn_markers_all_done(t));
    assert(t->cur.state == TXN_PREPARE_COMMIT || t->cur.state == TXN_PREPARE_ABORT);
    t->cur.state = t->cur.state == TXN_PREPARE_COMMIT ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT;
    t->cur.update_ms = now_ms;
    end_transaction(t);
    t->log_behind = true;
}

void txn_prepare_relog(struct txn *t, int64_t now_ms) { prepare(t, t->cur.state, now_ms); }

void txn_prepare_complete(struct txn *t, int64_t now_ms) {
    assert(t->cur.state == TXN_PREPARE_COMMIT || t->cur.state == TXN_PREPARE_ABORT);
    prepare(t, t->cur.state == TXN_PREPARE_COMMIT ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT,
            now_ms);
}

struct txn *txn_next_expired(struct txn_coordinator *c, int64_t now_ms) {
    struct txn *next;
    for (struct txn *t = c->all; t; t = next) {
        next = t->all_next;
        if (t->pending) continue;
        if (t->cur.producer_id < 0) { /* its first write failed: never logged, drop it */
            txn_remove(c, t);
            continue;
        }
        if (t->cur.state == TXN_ONGOING && t->cur.start_ms + t->cur.timeout_ms < now_ms) {
            prepare_fencing_abort(t, now_ms);
            return t;
        }
        bool idle = t->cur.state == TXN_EMPTY || t->cur.state == TXN_COMPLETE_COMMIT ||
                    t->cur.state == TXN_COMPLETE_ABORT;
        if (idle && t->cur.update_ms + c->cfg.id_expiration_ms < now_ms) {
            prepare(t, TXN_DEAD, now_ms);
            return t;
        }
    }
    return NULL;
}

/* ---- the log's view ------------------------------------------------------------------- */

void txn_replay(struct txn_coordinator *c, const struct txn_log_record *rec,
                const struct txn_log_part *parts) {
    struct txn *t = txn_find(c, rec->id, rec->id_len);
    if (rec->tombstone || rec->value.state == TXN_DEAD) {
        if (t) txn_remove(c, t);
        return;
    }
    if (!t && !(t = txn_create(c, rec->id, rec->id_len))) return;
    const struct txn_log_value *v = &rec->value;
    int16_t last_epoch = t->cur.producer_id == v->producer_id &&
                                 t->cur.producer_epoch != v->producer_epoch
                             ? t->cur.producer_epoch : t->cur.last_producer_epoch;
    t->cur = (struct txn_image){.producer_id = v->producer_id, .last_producer_id = -1,
                                .producer_epoch = v->producer_epoch,
                                .last_producer_epoch = last_epoch,
                                .timeout_ms = v->timeout_ms, .state = (enum txn_state)v->state,
                                .start_ms = v->start_ms, .update_ms = v->update_ms};
    parts_truncate(t, 0);
    for (uint32_t i = 0; i < rec->part_count; i++)
        if (!has_part(t, parts[i].topic, parts[i].topic_len, parts[i].partition))
            (void)add_part(t, &parts[i]);
    t->part_durable = t->part_count;
}

bool txn_next_is_tombstone(const struct txn *t) { return t->next.state == TXN_DEAD; }

void txn_next_value(const struct txn *t, struct txn_log_value *out) {
    *out = (struct txn_log_value){.producer_id = t->next.producer_id,
                                  .producer_epoch = t->next.producer_epoch,
                                  .timeout_ms = t->next.timeout_ms,
                                  .state = (int8_t)t->next.state,
                                  .update_ms = t->next.update_ms,
                                  .start_ms = t->next.start_ms};
}

uint32_t txn_next_parts(const struct txn *t, struct txn_log_part *out, uint32_t cap) {
    if (!open_state(t->next.state)) return 0;
    uint32_t n = t->part_count < cap ? t->part_count : cap;
    for (uint32_t i = 0; i < n; i++)
        out[i] = (struct txn_log_part){t->parts[i].topic, t->parts[i].topic_len,
                                       t->parts[i].partition};
    return n;
}
