/* test_control_batch.c - transaction markers: build, recognise, reject. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "storage/record/batch.h"
#include "storage/record/bytes.h"
#include "storage/record/control_batch.h"
#include "storage/record/crc.h"
#include "storage/record/records.h"

Test(control_batch, commit_marker_layout) {
    uint8_t buf[CONTROL_BATCH_MAX_BYTES];
    int n = control_batch_build(buf, sizeof(buf), 4242, 7, CONTROL_TYPE_COMMIT, 3, 1700000000000);
    cr_assert_gt(n, RECORD_BATCH_HEADER_BYTES);
    struct record_batch_header h;
    cr_assert_eq(record_batch_validate(buf, (size_t)n, &h), RECORD_OK);
    cr_assert_eq(record_batch_size_bytes(&h), (size_t)n);
    cr_assert_eq(h.base_offset, 0);
    cr_assert_eq(h.attributes, RECORD_ATTR_TRANSACTIONAL | RECORD_ATTR_CONTROL);
    cr_assert_eq(h.producer_id, 4242);
    cr_assert_eq(h.producer_epoch, 7);
    cr_assert_eq(h.base_sequence, -1);
    cr_assert_eq(h.record_count, 1);
    cr_assert_eq(h.last_offset_delta, 0);
    cr_assert_eq(h.base_timestamp, 1700000000000);
    cr_assert_eq(h.max_timestamp, 1700000000000);
    /* The CRC32C covers attributes..end, computed independently here. */
    cr_assert_eq(h.crc, crc32c(buf + RECORD_BATCH_ATTRIBUTES_OFFSET,
                               (size_t)n - RECORD_BATCH_ATTRIBUTES_OFFSET));

    struct record_iter it;
    cr_assert_eq(record_iter_init(&it, buf, (size_t)n, NULL, NULL, 0, RECORD_ITER_STRICT_OFFSETS),
                 RECORD_OK);
    struct record_view r;
    cr_assert(record_iter_next(&it, &r));
    cr_assert_eq(r.key.len, 4);
    cr_assert_eq(be16_load(r.key.data), 0);     /* key version */
    cr_assert_eq(be16_load(r.key.data + 2), 1); /* COMMIT */
    cr_assert_eq(r.value.len, 6);
    cr_assert_eq(be16_load(r.value.data), 0);   /* value version */
    cr_assert_eq(be32_load(r.value.data + 2), 3u);
    cr_assert_eq(r.header_count, 0);
    cr_assert_not(record_iter_next(&it, &r));
    cr_assert_eq(it.err, RECORD_OK);

    cr_assert_eq(control_batch_type(buf, (size_t)n), CONTROL_TYPE_COMMIT);
    cr_assert_eq(control_batch_coordinator_epoch(buf, (size_t)n), 3);
}

Test(control_batch, abort_marker_and_offset_rewrite) {
    uint8_t buf[CONTROL_BATCH_MAX_BYTES];
    int n = control_batch_build(buf, sizeof(buf), 1, 0, CONTROL_TYPE_ABORT, 0, 5);
    cr_assert_gt(n, 0);
    cr_assert_eq(control_batch_type(buf, (size_t)n), CONTROL_TYPE_ABORT);
    /* The log rewrites base offset and leader epoch: not covered by the CRC. */
    record_batch_set_base_offset(buf, 123456);
    record_batch_set_partition_leader_epoch(buf, 9);
    cr_assert_eq(control_batch_type(buf, (size_t)n), CONTROL_TYPE_ABORT);
}

Test(control_batch, too_small_buffer_and_bad_type) {
    uint8_t buf[CONTROL_BATCH_MAX_BYTES];
    int full = control_batch_build(buf, sizeof(buf), 1, 0, CONTROL_TYPE_COMMIT, 0, 0);
    cr_assert_gt(full, 0);
    cr_assert_eq(control_batch_build(buf, (size_t)full - 1, 1, 0, CONTROL_TYPE_COMMIT, 0, 0),
                 -ENOSPC);
    cr_assert_eq(control_batch_build(buf, 0, 1, 0, CONTROL_TYPE_COMMIT, 0, 0), -ENOSPC);
    cr_assert_eq(control_batch_build(buf, sizeof(buf), 1, 0, 2, 0, 0), -EINVAL);
    cr_assert_eq(control_batch_build(buf, sizeof(buf), 1, 0, full, 0, 0), -EINVAL);
}

Test(control_batch, rejects_what_is_not_a_marker) {
    uint8_t buf[CONTROL_BATCH_MAX_BYTES];
    int n = control_batch_build(buf, sizeof(buf), 1, 0, CONTROL_TYPE_COMMIT, 0, 0);
    cr_assert_gt(n, 0);
    /* Every truncation fails. */
    for (int len = 0; len < n; len++)
        cr_assert_eq(control_batch_type(buf, (size_t)len), -1, "len %d", len);
    cr_assert_eq(control_batch_type(NULL, 0), -1);

    /* A flipped payload bit breaks the CRC. */
    uint8_t bad[CONTROL_BATCH_MAX_BYTES];
    memcpy(bad, buf, (size_t)n);
    bad[n - 3] ^= 0x01;
    cr_assert_eq(control_batch_type(bad, (size_t)n), -1);

    /* Control bit cleared (CRC fixed up): an ordinary transactional batch. */
    memcpy(bad, buf, (size_t)n);
    be16_store(bad + RECORD_BATCH_ATTRIBUTES_OFFSET, RECORD_ATTR_TRANSACTIONAL);
    record_batch_update_crc(bad);
    cr_assert_eq(control_batch_type(bad, (size_t)n), -1);

    /* Unknown control type 5 (CRC fixed up). */
    struct record_iter it;
    struct record_view r;
    memcpy(bad, buf, (size_t)n);
    cr_assert_eq(record_iter_init(&it, bad, (size_t)n, NULL, NULL, 0, 0), RECORD_OK);
    cr_assert(record_iter_next(&it, &r));
    be16_store((uint8_t *)r.key.data + 2, 5);
    record_batch_update_crc(bad);
    cr_assert_eq(control_batch_type(bad, (size_t)n), -1);

    /* A plain data batch. */
    struct record_in rec = {.key = (const uint8_t *)"k", .key_len = 1,
                            .value = (const uint8_t *)"v", .value_len = 1};
    struct record_batch_spec spec = record_batch_spec_default();
    size_t len = 0;
    cr_assert_eq(record_batch_write(NULL, &spec, &rec, 1, bad, sizeof(bad), NULL, 0, &len),
                 RECORD_OK);
    cr_assert_eq(control_batch_type(bad, len), -1);
}
