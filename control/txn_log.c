/* txn_log.c - __transaction_state records and their reload.
 *
 * Kafka's TransactionLog format (TransactionLogKey / TransactionLogValue, the
 * non-flexible version 0), so Kafka's tools read sluice's log. Big-endian; strings are
 * int16 length + bytes; arrays int32 count + items:
 *   key    int16 0, string transactional_id
 *   value  int16 0, int64 producer_id, int16 producer_epoch, int32 transaction_timeout_ms,
 *          int8 status, [string topic, [int32 partition]] partitions (nullable),
 *          int64 last_update_timestamp_ms, int64 start_timestamp_ms
 * A null value (tombstone) removes an expired transactional id. Status bytes are Kafka's:
 * Empty 0, Ongoing 1, PrepareCommit 2, PrepareAbort 3, CompleteCommit 4, CompleteAbort 5,
 * Dead 6, PrepareEpochFence 7.
 *
 * The coordinator writes one record per state transition (txn_api.c), a plain batch
 * appended durably to the id's partition. Reload at boot scans the partitions' segment
 * files read-only (group_log_scan, the scanner __consumer_offsets uses) before the shards
 * start; the last record of each id wins. */
#include "control/txn_log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/group_offsets.h"
#include "storage/record/records.h"

#define TXN_LOG_KEY_VERSION 0
#define TXN_LOG_VALUE_VERSION 0

static uint8_t *put_be(uint8_t *p, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) p[bytes - 1 - i] = (uint8_t)(v >> (8 * i));
    return p + bytes;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len) {
    assert(len <= TXN_ID_MAX_BYTES);
    p = put_be(p, len, 2);
    if (len) memcpy(p, s, len);
    return p + len;
}

size_t txn_log_key_bytes(size_t id_len) { return 2 + 2 + id_len; }

void txn_log_key_write(uint8_t *out, const char *id, size_t id_len) {
    out = put_be(out, TXN_LOG_KEY_VERSION, 2);
    put_str(out, id, id_len);
}

static bool same_topic(const struct txn_log_part *a, const struct txn_log_part *b) {
    return a->topic_len == b->topic_len && memcmp(a->topic, b->topic, a->topic_len) == 0;
}

/* Length of the run of partitions of parts[i]'s topic starting at i. */
static uint32_t run_length(const struct txn_log_part *parts, uint32_t count, uint32_t i) {
    uint32_t n = 1;
    while (i + n < count && same_topic(&parts[i], &parts[i + n])) n++;
    return n;
}

size_t txn_log_value_bytes(const struct txn_log_part *parts, uint32_t part_count) {
    size_t n = 2 + 8 + 2 + 4 + 1 + 4 + 8 + 8;
    for (uint32_t i = 0; i < part_count;) {
        uint32_t run = run_length(parts, part_count, i);
        n += 2 + parts[i].topic_len + 4 + 4 * (size_t)run;
        i += run;
    }
    return n;
}

void txn_log_value_write(uint8_t *out, const struct txn_log_value *v,
                         const struct txn_log_part *parts, uint32_t part_count) {
    uint8_t *p = put_be(out, TXN_LOG_VALUE_VERSION, 2);
    p = put_be(p, (uint64_t)v->producer_id, 8);
    p = put_be(p, (uint64_t)(uint16_t)v->producer_epoch, 2);
    p = put_be(p, (uint64_t)(uint32_t)v->timeout_ms, 4);
    p = put_be(p, (uint8_t)v->state, 1);
    uint32_t topics = 0;
    for (uint32_t i = 0; i < part_count; i += run_length(parts, part_count, i)) topics++;
    p = put_be(p, topics, 4);
    for (uint32_t i = 0; i < part_count;) {
        uint32_t run = run_length(parts, part_count, i);
        p = put_str(p, parts[i].topic, parts[i].topic_len);
        p = put_be(p, run, 4);
        for (uint32_t j = 0; j < run; j++) p = put_be(p, (uint32_t)parts[i + j].partition, 4);
        i += run;
    }
    p = put_be(p, (uint64_t)v->update_ms, 8);
    put_be(p, (uint64_t)v->start_ms, 8);
}

/* ---- decoding ------------------------------------------------------------------------ */

struct cursor {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get_be(struct cursor *c, int bytes) {
    if (c->bad || c->end - c->p < bytes) {
        c->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | *c->p++;
    return v;
}

static const char *get_str(struct cursor *c, uint16_t *len) {
    int16_t n = (int16_t)get_be(c, 2);
    if (c->bad || n < 0 || c->end - c->p < n) {
        c->bad = true;
        *len = 0;
        return NULL;
    }
    const char *s = (const char *)c->p;
    c->p += n;
    *len = (uint16_t)n;
    return s;
}

static int decode_parts(struct cursor *c, struct txn_log_record *out, struct txn_log_part *parts,
                        uint32_t cap) {
    int32_t topics = (int32_t)get_be(c, 4);
    if (c->bad || topics < -1) return -1;
    for (int32_t t = 0; t < topics; t++) {
        uint16_t topic_len;
        const char *topic = get_str(c, &topic_len);
        int32_t n = (int32_t)get_be(c, 4);
        if (c->bad || n < 0 || (size_t)(c->end - c->p) < 4 * (size_t)n) return -1;
        for (int32_t i = 0; i < n; i++) {
            if (out->part_count >= cap) return -1;
            parts[out->part_count++] = (struct txn_log_part){topic, topic_len,
                                                             (int32_t)get_be(c, 4)};
        }
    }
    return 0;
}

int txn_log_decode(const uint8_t *key, int32_t key_len, const uint8_t *value, int32_t value_len,
                   struct txn_log_record *out, struct txn_log_part *parts, uint32_t parts_cap) {
    memset(out, 0, sizeof *out);
    if (!key || key_len < 4) return -1;
    struct cursor k = {key, key + key_len, false};
    if (get_be(&k, 2) != TXN_LOG_KEY_VERSION) return -1;
    out->id = get_str(&k, &out->id_len);
    if (k.bad || out->id_len == 0) return -1;
    out->tombstone = value_len < 0 || !value;
    if (out->tombstone) return 0;
    struct cursor v = {value, value + value_len, false};
    if (get_be(&v, 2) != TXN_LOG_VALUE_VERSION) return -1;
    out->value.producer_id = (int64_t)get_be(&v, 8);
    out->value.producer_epoch = (int16_t)get_be(&v, 2);
    out->value.timeout_ms = (int32_t)get_be(&v, 4);
    out->value.state = (int8_t)get_be(&v, 1);
    if (decode_parts(&v, out, parts, parts_cap) != 0) return -1;
    out->value.update_ms = (int64_t)get_be(&v, 8);
    out->value.start_ms = (int64_t)get_be(&v, 8);
    if (v.bad || out->value.state < 0 || out->value.state > 7) return -1;
    return 0;
}

int32_t txn_log_partition_for(const char *id, size_t id_len, int32_t partitions) {
    return group_offsets_partition_for(id, id_len, partitions); /* the same Java hash */
}

/* ---- reload -------------------------------------------------------------------------- */

struct load_state {
    txn_log_apply_fn apply;
    void *arg;
    long applied;
    struct txn_log_part *parts; /* TXN_LOG_MAX_PARTS */
};

static void load_batch(void *arg, int32_t partition, const uint8_t *batch, size_t len,
                       const struct record_batch_header *h) {
    (void)partition;
    struct load_state *s = arg;
    if (h->attributes & (RECORD_ATTR_CONTROL | RECORD_ATTR_TRANSACTIONAL)) return;
    struct record_iter it;
    if (record_iter_init(&it, batch, len, NULL, NULL, 0, RECORD_ITER_SKIP_CRC) != RECORD_OK)
        return; /* compressed: not something sluice writes here */
    struct record_view r;
    while (record_iter_next(&it, &r)) {
        struct txn_log_record rec;
        if (txn_log_decode(r.key.data, r.key.len, r.value.data, r.value.len, &rec, s->parts,
                           TXN_LOG_MAX_PARTS) != 0)
            continue;
        s->apply(s->arg, &rec, s->parts);
        s->applied++;
    }
}

long txn_log_load(const char *data_dir, int32_t partitions, txn_log_apply_fn apply, void *arg,
                  char *err, size_t err_bytes) {
    struct load_state s = {.apply = apply, .arg = arg};
    s.parts = calloc(TXN_LOG_MAX_PARTS, sizeof s.parts[0]);
    if (!s.parts) {
        snprintf(err, err_bytes, "transaction log: out of memory");
        return -1;
    }
    long n = group_log_scan(data_dir, TXN_LOG_TOPIC, partitions, load_batch, &s, err, err_bytes);
    free(s.parts);
    return n < 0 ? -1 : s.applied;
}
