/* test_group_offsets.c - the offset table, Kafka's __consumer_offsets record format, the
 * coordinator partition (Java String.hashCode, values computed independently from the
 * UTF-16 encoding in Python), and the reload from real segment files written with the
 * record writer, including a torn tail that must end the scan. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control/group_offsets.h"
#include "storage/record/records.h"

Test(group_offsets, table_put_get_replace_delete) {
    struct group_offset_table t;
    group_offsets_init(&t);
    cr_assert_eq(group_offsets_put(&t, "b", 1, 1, 10, 3, "m1", 2, 1000), 0);
    cr_assert_eq(group_offsets_put(&t, "a", 1, 7, 70, -1, NULL, 0, 1000), 0);
    cr_assert_eq(group_offsets_put(&t, "b", 1, 0, 5, -1, "", 0, 1000), 0);
    cr_assert_eq(group_offsets_put(&t, "ab", 2, 0, 1, -1, "", 0, 1000), 0);
    cr_assert_eq(t.count, 4);
    /* sorted by (topic, partition) */
    cr_assert_str_eq(t.items[0].topic, "a");
    cr_assert_str_eq(t.items[1].topic, "ab");
    cr_assert_str_eq(t.items[2].topic, "b");
    cr_assert_eq(t.items[2].partition, 0);
    cr_assert_eq(t.items[3].partition, 1);
    const struct group_offset *o = group_offsets_get(&t, "b", 1, 1);
    cr_assert_not_null(o);
    cr_assert_eq(o->offset, 10);
    cr_assert_eq(o->leader_epoch, 3);
    cr_assert_str_eq(o->metadata, "m1");
    cr_assert_eq(group_offsets_put(&t, "b", 1, 1, 11, 4, "m2", 2, 2000), 0); /* replace */
    cr_assert_eq(t.count, 4);
    o = group_offsets_get(&t, "b", 1, 1);
    cr_assert_eq(o->offset, 11);
    cr_assert_str_eq(o->metadata, "m2");
    cr_assert_null(group_offsets_get(&t, "b", 1, 2));
    cr_assert_null(group_offsets_get(&t, "bb", 2, 1));
    cr_assert(group_offsets_delete(&t, "a", 1, 7));
    cr_assert(!group_offsets_delete(&t, "a", 1, 7));
    cr_assert_eq(group_offsets_delete_topic(&t, "b", 1), 2);
    cr_assert_eq(t.count, 1);
    cr_assert_str_eq(t.items[0].topic, "ab");
    group_offsets_free(&t);
}

Test(group_offsets, record_round_trip_in_kafka_layout) {
    uint8_t key[64], value[64];
    size_t kb = group_record_offset_key_bytes(2, 3);
    size_t vb = group_record_offset_value_bytes(4);
    cr_assert_eq(kb, 2 + 2 + 2 + 2 + 3 + 4);
    cr_assert_eq(vb, 2 + 8 + 4 + 2 + 4 + 8);
    group_record_offset_key_write(key, "g1", 2, "top", 3, 7);
    group_record_offset_value_write(value, 1234567890123, 5, "meta", 4, 1700000000000);
    /* key version 1, int16 length strings, big-endian partition */
    const uint8_t want_key[] = {0, 1, 0, 2, 'g', '1', 0, 3, 't', 'o', 'p', 0, 0, 0, 7};
    cr_assert_eq(memcmp(key, want_key, sizeof want_key), 0);
    cr_assert_eq(value[0], 0);
    cr_assert_eq(value[1], 3); /* value version 3 */
    struct group_record rec;
    cr_assert_eq(group_record_decode(key, (int32_t)kb, value, (int32_t)vb, &rec), 0);
    cr_assert_eq(rec.key_version, GROUP_KEY_OFFSET_COMMIT);
    cr_assert_eq(rec.group_len, 2);
    cr_assert_eq(memcmp(rec.group, "g1", 2), 0);
    cr_assert_eq(rec.topic_len, 3);
    cr_assert_eq(rec.partition, 7);
    cr_assert_eq(rec.offset, 1234567890123);
    cr_assert_eq(rec.leader_epoch, 5);
    cr_assert_eq(rec.metadata_len, 4);
    cr_assert_eq(rec.commit_timestamp_ms, 1700000000000);
    cr_assert(!rec.tombstone);
    cr_assert_eq(group_record_decode(key, (int32_t)kb, NULL, -1, &rec), 0);
    cr_assert(rec.tombstone);
    /* group metadata key (version 2) and junk */
    size_t gb = group_record_group_key_bytes(2);
    group_record_group_key_write(key, "g1", 2);
    cr_assert_eq(group_record_decode(key, (int32_t)gb, NULL, -1, &rec), 0);
    cr_assert_eq(rec.key_version, GROUP_KEY_GROUP_METADATA);
    cr_assert_eq(group_record_decode(key, 3, NULL, -1, &rec), -1);          /* truncated */
    const uint8_t bad_version[] = {0, 9, 0, 0};
    cr_assert_eq(group_record_decode(bad_version, 4, NULL, -1, &rec), -1);
    group_record_offset_key_write(key, "g1", 2, "top", 3, 7);
    cr_assert_eq(group_record_decode(key, (int32_t)kb, value, 10, &rec), -1); /* short value */
}

Test(group_offsets, coordinator_partition_is_java_hash) {
    cr_assert_eq(group_offsets_partition_for("g1", 2, 50), 42);
    cr_assert_eq(group_offsets_partition_for("my-group", 8, 50), 12);
    cr_assert_eq(group_offsets_partition_for("console-consumer-12345", 22, 50), 6);
    cr_assert_eq(group_offsets_partition_for("gr\xc3\xbcppe", 7, 50), 12);     /* grüppe */
    cr_assert_eq(group_offsets_partition_for("\xf0\x9f\x98\x80x", 5, 50), 39); /* surrogates */
    cr_assert_eq(group_offsets_partition_for("g1", 2, 1), 0);
}

/* Write records as one batch at *pos of fd. */
static void write_batch(FILE *f, const struct record_in *recs, int32_t n, int64_t base) {
    uint8_t buf[4096];
    size_t len;
    struct record_batch_spec spec = record_batch_spec_default();
    spec.base_offset = base;
    cr_assert_eq(record_batch_write(NULL, &spec, recs, n, buf, sizeof buf, NULL, 0, &len), RECORD_OK);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
}

struct seen {
    int count;
    int64_t last_offset;
    int tombstones;
};

static void apply(void *arg, const struct group_record *rec) {
    struct seen *s = arg;
    s->count++;
    if (rec->tombstone) s->tombstones++;
    else s->last_offset = rec->offset;
}

Test(group_offsets, load_replays_segments_and_stops_at_a_torn_tail) {
    char dir[64], pdir[128], path[256];
    snprintf(dir, sizeof dir, "/tmp/sluice-goff-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(pdir, sizeof pdir, "%s/__consumer_offsets-1", dir);
    cr_assert_eq(mkdir(pdir, 0755), 0);
    uint8_t k[64], v[64];
    size_t kb = group_record_offset_key_bytes(2, 1), vb = group_record_offset_value_bytes(0);
    group_record_offset_key_write(k, "g1", 2, "t", 1, 0);
    snprintf(path, sizeof path, "%s/%020d.log", pdir, 0);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 3; i++) {
        group_record_offset_value_write(v, 100 + i, -1, "", 0, 1);
        struct record_in r = {.key = k, .key_len = (int32_t)kb, .value = v,
                              .value_len = (int32_t)vb, .timestamp_ms = 1};
        write_batch(f, &r, 1, i);
    }
    struct record_in tomb = {.key = k, .key_len = (int32_t)kb, .value_len = -1};
    write_batch(f, &tomb, 1, 3);
    group_record_offset_value_write(v, 999, -1, "", 0, 1);
    struct record_in last = {.key = k, .key_len = (int32_t)kb, .value = v, .value_len = (int32_t)vb};
    uint8_t torn[4096];
    size_t len;
    struct record_batch_spec spec = record_batch_spec_default();
    cr_assert_eq(record_batch_write(NULL, &spec, &last, 1, torn, sizeof torn, NULL, 0, &len), RECORD_OK);
    torn[len - 1] ^= 0xff; /* CRC no longer matches: a torn write */
    cr_assert_eq(fwrite(torn, 1, len, f), len);
    static const uint8_t zeros[4096];
    cr_assert_eq(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
    fclose(f);
    struct seen s = {0};
    char err[256];
    long n = group_offsets_load(dir, 4, apply, &s, err, sizeof err);
    cr_assert_eq(n, 4, "%s", err);
    cr_assert_eq(s.count, 4);
    cr_assert_eq(s.tombstones, 1);
    cr_assert_eq(s.last_offset, 102);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
