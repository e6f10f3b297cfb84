/* test_txn_log.c - __transaction_state records in Kafka's TransactionLog layout (bytes
 * checked against the format, not only round-tripped), malformed records refused, the
 * partition of an id (Java hashCode, values computed in Python), the reload from real
 * segment files, and the __consumer_offsets reload's handling of transactional offset
 * commits: counted only after their producer's COMMIT marker, never after ABORT, handed
 * over when still open. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control/group_offsets.h"
#include "control/txn_log.h"
#include "storage/record/control_batch.h"
#include "storage/record/records.h"

Test(txn_log, value_layout_is_kafkas) {
    struct txn_log_part parts[3] = {{"ab", 2, 1}, {"ab", 2, 4}, {"c", 1, 0}};
    struct txn_log_value v = {.producer_id = 0x0102030405060708, .producer_epoch = 3,
                              .timeout_ms = 60000, .state = 2, .update_ms = 11, .start_ms = 10};
    uint8_t key[32], value[128];
    size_t kb = txn_log_key_bytes(3), vb = txn_log_value_bytes(parts, 3);
    cr_assert_eq(kb, 2 + 2 + 3);
    /* version, pid, epoch, timeout, status, 2 topics: (2+2+4+8) + (2+1+4+4), update, start */
    cr_assert_eq(vb, 2 + 8 + 2 + 4 + 1 + 4 + 16 + 11 + 8 + 8);
    txn_log_key_write(key, "tid", 3);
    txn_log_value_write(value, &v, parts, 3);
    const uint8_t want_key[] = {0, 0, 0, 3, 't', 'i', 'd'};
    cr_assert_eq(memcmp(key, want_key, sizeof want_key), 0);
    const uint8_t want_value[] = {
        0, 0,                                   /* value version 0 */
        1, 2, 3, 4, 5, 6, 7, 8,                 /* producer id */
        0, 3,                                   /* epoch */
        0, 0, 0xea, 0x60,                       /* timeout 60000 */
        2,                                      /* PrepareCommit */
        0, 0, 0, 2,                             /* 2 topics */
        0, 2, 'a', 'b', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4,
        0, 1, 'c', 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 11,                /* last update */
        0, 0, 0, 0, 0, 0, 0, 10};               /* start */
    cr_assert_eq(sizeof want_value, vb);
    cr_assert_eq(memcmp(value, want_value, vb), 0);
    struct txn_log_record rec;
    struct txn_log_part out[4];
    cr_assert_eq(txn_log_decode(key, (int32_t)kb, value, (int32_t)vb, &rec, out, 4), 0);
    cr_assert_eq(rec.id_len, 3);
    cr_assert_eq(memcmp(rec.id, "tid", 3), 0);
    cr_assert(!rec.tombstone);
    cr_assert_eq(rec.value.producer_id, v.producer_id);
    cr_assert_eq(rec.value.producer_epoch, 3);
    cr_assert_eq(rec.value.timeout_ms, 60000);
    cr_assert_eq(rec.value.state, 2);
    cr_assert_eq(rec.value.update_ms, 11);
    cr_assert_eq(rec.value.start_ms, 10);
    cr_assert_eq(rec.part_count, 3);
    cr_assert_eq(out[1].partition, 4);
    cr_assert_eq(out[2].topic_len, 1);
    cr_assert_eq(out[2].topic[0], 'c');
    /* more partitions than the caller has room for: refused, never overrun */
    cr_assert_eq(txn_log_decode(key, (int32_t)kb, value, (int32_t)vb, &rec, out, 2), -1);
    /* every truncation is refused */
    for (size_t n = 0; n < vb; n++)
        cr_assert_eq(txn_log_decode(key, (int32_t)kb, value, (int32_t)n, &rec, out, 4), -1,
                     "value cut at %zu", n);
    for (size_t n = 0; n < kb; n++)
        cr_assert_eq(txn_log_decode(key, (int32_t)n, value, (int32_t)vb, &rec, out, 4), -1);
    value[1] = 1; /* a flexible version-1 value: not understood here */
    cr_assert_eq(txn_log_decode(key, (int32_t)kb, value, (int32_t)vb, &rec, out, 4), -1);
    cr_assert_eq(txn_log_decode(key, (int32_t)kb, NULL, -1, &rec, out, 4), 0);
    cr_assert(rec.tombstone);
}

Test(txn_log, partition_for_matches_kafka) {
    /* abs(Java "x".hashCode()) % n, from Python */
    cr_assert_eq(txn_log_partition_for("tx-basic", 8, 4), 1);
    cr_assert_eq(txn_log_partition_for("tx-1", 4, 50), 20);
    cr_assert_eq(txn_log_partition_for("my-transactional-id", 19, 50), 46);
}

static void write_batch(FILE *f, const struct record_batch_spec *spec, const struct record_in *r,
                        int32_t n, int64_t base_offset) {
    uint8_t buf[4096];
    size_t len;
    struct record_batch_spec s = *spec;
    s.base_offset = base_offset;
    cr_assert_eq(record_batch_write(NULL, &s, r, n, buf, sizeof buf, NULL, 0, &len), RECORD_OK);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
}

static void write_marker(FILE *f, int64_t pid, int16_t epoch, int type, int64_t base_offset) {
    uint8_t buf[CONTROL_BATCH_MAX_BYTES];
    int len = control_batch_build(buf, sizeof buf, pid, epoch, type, 0, 1);
    cr_assert_gt(len, 0);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(base_offset >> (56 - 8 * i));
    /* the base offset is outside the CRC: no need to recompute it */
    cr_assert_eq(fwrite(buf, 1, (size_t)len, f), (size_t)len);
}

static FILE *segment(const char *dir, const char *topic, int partition) {
    char pdir[256], path[320];
    snprintf(pdir, sizeof pdir, "%s/%s-%d", dir, topic, partition);
    cr_assert_eq(mkdir(pdir, 0755), 0);
    snprintf(path, sizeof path, "%s/%020d.log", pdir, 0);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    return f;
}

static void rm_rf(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

struct states {
    int records;
    int8_t last_state[2];   /* ids "a" and "b" */
    uint32_t last_parts[2];
    int tombstones;
};

static void apply_state(void *arg, const struct txn_log_record *rec,
                        const struct txn_log_part *parts) {
    (void)parts;
    struct states *s = arg;
    int i = rec->id[0] == 'a' ? 0 : 1;
    s->records++;
    if (rec->tombstone) {
        s->tombstones++;
        return;
    }
    s->last_state[i] = rec->value.state;
    s->last_parts[i] = rec->part_count;
}

static void put_state(FILE *f, const char *id, int8_t state, uint32_t nparts, int64_t off) {
    struct txn_log_part parts[2] = {{"t", 1, 0}, {"t", 1, 1}};
    struct txn_log_value v = {.producer_id = 1, .producer_epoch = 0, .timeout_ms = 1000,
                              .state = state, .update_ms = 1, .start_ms = 1};
    uint8_t k[16], val[128];
    size_t kb = txn_log_key_bytes(strlen(id)), vb = txn_log_value_bytes(parts, nparts);
    txn_log_key_write(k, id, strlen(id));
    txn_log_value_write(val, &v, parts, nparts);
    struct record_in r = {.key = k, .key_len = (int32_t)kb, .value = val,
                          .value_len = (int32_t)vb, .timestamp_ms = 1};
    struct record_batch_spec spec = record_batch_spec_default();
    write_batch(f, &spec, &r, 1, off);
}

Test(txn_log, reload_from_segments) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sluice-txnlog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    FILE *f = segment(dir, TXN_LOG_TOPIC, 1);
    put_state(f, "a", 1, 1, 0);
    put_state(f, "a", 2, 2, 1);
    put_state(f, "b", 1, 1, 2);
    uint8_t k[16];
    size_t kb = txn_log_key_bytes(1);
    txn_log_key_write(k, "b", 1);
    struct record_in tomb = {.key = k, .key_len = (int32_t)kb, .value_len = -1};
    struct record_batch_spec spec = record_batch_spec_default();
    write_batch(f, &spec, &tomb, 1, 3);
    static const uint8_t zeros[4096]; /* the preallocated tail */
    cr_assert_eq(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
    fclose(f);
    struct states s = {0};
    char err[256];
    cr_assert_eq(txn_log_load(dir, 4, apply_state, &s, err, sizeof err), 4, "%s", err);
    cr_assert_eq(s.records, 4);
    cr_assert_eq(s.last_state[0], 2);
    cr_assert_eq(s.last_parts[0], 2);
    cr_assert_eq(s.tombstones, 1);
    rm_rf(dir);
}

struct offsets_seen {
    int applied;
    int64_t last_offset[3];  /* by topic partition */
    int pending;
    int64_t pending_pid;
};

static void apply_offset(void *arg, const struct group_record *rec) {
    struct offsets_seen *s = arg;
    s->applied++;
    s->last_offset[rec->partition] = rec->offset;
}

static void pending_offset(void *arg, int64_t pid, int16_t epoch, const struct group_record *rec) {
    struct offsets_seen *s = arg;
    (void)epoch;
    s->pending++;
    s->pending_pid = pid;
    cr_assert_eq(rec->offset, 300);
}

static void put_offset(FILE *f, int64_t pid, int32_t partition, int64_t offset, int64_t at) {
    uint8_t k[64], v[64];
    size_t kb = group_record_offset_key_bytes(1, 1), vb = group_record_offset_value_bytes(0);
    group_record_offset_key_write(k, "g", 1, "t", 1, partition);
    group_record_offset_value_write(v, offset, -1, "", 0, 1);
    struct record_in r = {.key = k, .key_len = (int32_t)kb, .value = v, .value_len = (int32_t)vb,
                          .timestamp_ms = 1};
    struct record_batch_spec spec = record_batch_spec_default();
    if (pid >= 0) {
        spec.producer_id = pid;
        spec.producer_epoch = 0;
        spec.base_sequence = 0;
        spec.transactional = true;
    }
    write_batch(f, &spec, &r, 1, at);
}

Test(txn_log, offsets_reload_counts_transactional_commits_only_after_commit) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sluice-txnoff-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    FILE *f = segment(dir, GROUP_OFFSETS_TOPIC, 0);
    put_offset(f, -1, 0, 10, 0);              /* plain: applied at once */
    put_offset(f, 7, 0, 100, 1);              /* producer 7 ... */
    put_offset(f, 8, 1, 200, 2);              /* producer 8 ... */
    put_offset(f, -1, 0, 11, 3);              /* plain, before 7's commit */
    write_marker(f, 7, 0, CONTROL_TYPE_COMMIT, 4); /* 7 commits: 100 lands here */
    write_marker(f, 8, 0, CONTROL_TYPE_ABORT, 5);  /* 8 aborts: 200 never counts */
    put_offset(f, 9, 2, 300, 6);              /* producer 9: still open at the end */
    fclose(f);
    struct offsets_seen s = {0};
    char err[256];
    long n = group_offsets_load_txn(dir, 1, apply_offset, pending_offset, &s, err, sizeof err);
    cr_assert_eq(n, 3, "%s", err);
    cr_assert_eq(s.last_offset[0], 100);      /* replayed at the marker, after 11 */
    cr_assert_eq(s.last_offset[1], 0);        /* aborted */
    cr_assert_eq(s.last_offset[2], 0);
    cr_assert_eq(s.pending, 1);
    cr_assert_eq(s.pending_pid, 9);
    /* the plain loader (no pending callback) drops the open one and still honours markers */
    struct offsets_seen s2 = {0};
    cr_assert_eq(group_offsets_load(dir, 1, apply_offset, &s2, err, sizeof err), 3);
    cr_assert_eq(s2.last_offset[0], 100);
    cr_assert_eq(s2.last_offset[1], 0);
    rm_rf(dir);
}

Test(txn_log, random_bytes_never_overrun) {
    /* a fixed-seed generator: random keys/values, and mutations of a valid record */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t key[64], value[256];
    struct txn_log_part valid_parts[3] = {{"ab", 2, 1}, {"ab", 2, 4}, {"c", 1, 0}};
    struct txn_log_value v = {.producer_id = 5, .producer_epoch = 1, .timeout_ms = 1000,
                              .state = 1, .update_ms = 2, .start_ms = 1};
    size_t vb = txn_log_value_bytes(valid_parts, 3);
    int decoded = 0;
    for (int round = 0; round < 200000; round++) {
        bool mutate = round & 1;
        size_t kn = 0, vn = 0;
        if (mutate) {
            txn_log_key_write(key, "id", 2);
            kn = txn_log_key_bytes(2);
            txn_log_value_write(value, &v, valid_parts, 3);
            vn = vb;
        }
        for (int i = 0; i < (mutate ? 3 : 1); i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            if (mutate) {
                value[x % vn] = (uint8_t)(x >> 32);
            } else {
                kn = 4 + x % 16;
                vn = x >> 8 & 0xff;
                for (size_t j = 0; j < sizeof key; j++) key[j] = (uint8_t)(x >> (j % 56));
                key[0] = key[1] = 0;
                for (size_t j = 0; j < vn; j++) value[j] = (uint8_t)(x >> ((j * 7) % 56));
                value[0] = value[1] = 0;
            }
        }
        struct txn_log_record rec;
        struct txn_log_part parts[4];
        if (txn_log_decode(key, (int32_t)kn, value, (int32_t)vn, &rec, parts, 4) == 0) {
            decoded++;
            cr_assert_leq(rec.part_count, 4);
            cr_assert_leq(rec.id_len, kn - 4);
            for (uint32_t i = 0; i < rec.part_count; i++) {
                cr_assert_geq((const uint8_t *)parts[i].topic, value);
                cr_assert_leq((const uint8_t *)parts[i].topic + parts[i].topic_len, value + vn);
            }
        }
    }
    cr_assert_gt(decoded, 0); /* some mutations of the valid record still decode */
}
