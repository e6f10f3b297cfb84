/* harness.h - a tiny shard for storage tests and tools: a real io_uring, a registered
 * chunk pool, a storage_shard, and a synchronous driver loop (poll storage, submit,
 * wait, dispatch) standing in for the shard loop. Also builds RecordBatch v2 batches
 * whose record values are derived from a seed so readers can verify their content. */
#ifndef SLUICE_TESTS_STORAGE_HARNESS_H
#define SLUICE_TESTS_STORAGE_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/chunk.h"
#include "storage/partition_log.h"
#include "storage/record/batch.h"
#include "storage/record/records.h"

struct harness {
    struct io_uring ring;
    struct chunk_pool pool;
    struct storage_shard shard;
};

static inline int harness_init(struct harness *h, size_t chunk_bytes, uint32_t chunks,
                               uint64_t cache_budget_bytes) {
    int rc = io_uring_queue_init(256, &h->ring, 0);
    if (rc < 0) return rc;
    if ((rc = chunk_pool_init(&h->pool, chunk_bytes, chunks)) < 0) return rc;
    if ((rc = chunk_pool_register(&h->pool, &h->ring)) < 0) return rc;
    return storage_shard_init(&h->shard, &h->ring, &h->pool, cache_budget_bytes);
}

static inline void harness_fini(struct harness *h) {
    storage_shard_destroy(&h->shard);
    chunk_pool_destroy(&h->pool);
    io_uring_queue_exit(&h->ring);
}

/* One shard loop iteration: queue flushes, submit, wait for one CQE, dispatch. */
static inline void harness_step(struct harness *h) {
    storage_poll(&h->shard);
    if (h->shard.inflight_ops == 0 && io_uring_sq_ready(&h->ring) == 0) return;
    io_uring_submit_and_wait(&h->ring, 1);
    uring_op_dispatch_ready(&h->ring, 1024);
}

struct sync_append {
    struct plog_append_req req;
    bool done;
    int status;
};

static inline void sync_append_done(struct plog_append_req *req, int status) {
    struct sync_append *a = (struct sync_append *)req;
    a->done = true;
    a->status = status;
}

/* Append and wait for the completion; returns the base offset or a negative errno. */
static inline int64_t harness_append(struct harness *h, struct plog *log, const uint8_t *batch,
                                     uint32_t len, bool durable) {
    struct sync_append a = {.req = {.done = sync_append_done}};
    int64_t off = plog_append(log, batch, len, durable, &a.req);
    if (off < 0) return off;
    for (int i = 0; !a.done; i++) {
        if (i > 100000) return -ETIMEDOUT;
        harness_step(h);
    }
    return a.status < 0 ? a.status : off;
}

struct sync_read {
    struct plog_read_req req;
    bool done;
    int status;
};

static inline void sync_read_done(struct plog_read_req *req, int status) {
    struct sync_read *r = (struct sync_read *)req;
    r->done = true;
    r->status = status;
}

/* Read and wait; returns 1 on success (frags in r->req) or a negative errno. */
static inline int harness_read(struct harness *h, struct plog *log, struct sync_read *r,
                               int64_t offset, uint32_t max_bytes) {
    memset(r, 0, sizeof *r);
    r->req.offset = offset;
    r->req.max_bytes = max_bytes;
    r->req.done = sync_read_done;
    int rc = plog_read(log, &r->req);
    if (rc != 0) return rc;
    for (int i = 0; !r->done; i++) {
        if (i > 100000) return -ETIMEDOUT;
        harness_step(h);
    }
    return r->status < 0 ? r->status : 1;
}

static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void fill_pattern(uint8_t *out, size_t len, uint64_t seed) {
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = splitmix64(&seed);
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(out + i, &v, n);
    }
}

#define HARNESS_MAX_RECORDS 512

/* Build a batch of record_count records with value_bytes each; key = 8-byte seed + i,
 * value = pattern(seed + i). Returns the batch size or 0. */
static inline size_t build_batch(uint8_t *buf, size_t cap, uint64_t seed, int record_count,
                                 int value_bytes, int64_t timestamp_ms, uint8_t *scratch) {
    static _Thread_local struct record_in recs[HARNESS_MAX_RECORDS];
    static _Thread_local uint64_t keys[HARNESS_MAX_RECORDS];
    if (record_count > HARNESS_MAX_RECORDS) return 0;
    for (int i = 0; i < record_count; i++) {
        keys[i] = seed + (uint64_t)i;
        fill_pattern(scratch + (size_t)i * (size_t)value_bytes, (size_t)value_bytes, keys[i]);
        recs[i] = (struct record_in){.key = (const uint8_t *)&keys[i], .key_len = 8,
                                     .value = scratch + (size_t)i * (size_t)value_bytes,
                                     .value_len = value_bytes, .timestamp_ms = timestamp_ms};
    }
    struct record_batch_spec spec = record_batch_spec_default();
    size_t out = 0;
    if (record_batch_write(NULL, &spec, recs, record_count, buf, cap, NULL, 0, &out) != RECORD_OK)
        return 0;
    return out;
}

/* Check a stored batch: CRC, and every record's value equals pattern(key). */
static inline bool verify_batch(const uint8_t *batch, size_t len) {
    struct record_batch_header h;
    if (record_batch_validate(batch, len, &h) != RECORD_OK) return false;
    struct record_iter it;
    if (record_iter_init(&it, batch, len, NULL, NULL, 0, 0) != RECORD_OK) return false;
    struct record_view r;
    int n = 0;
    static _Thread_local uint8_t expect[1 << 20];
    while (record_iter_next(&it, &r)) {
        uint64_t key;
        if (r.key.len != 8 || r.value.len < 0 || r.value.len > (int32_t)sizeof expect)
            return false;
        memcpy(&key, r.key.data, 8);
        fill_pattern(expect, (size_t)r.value.len, key);
        if (memcmp(expect, r.value.data, (size_t)r.value.len) != 0) return false;
        n++;
    }
    return it.err == RECORD_OK && n == h.record_count;
}

#endif
