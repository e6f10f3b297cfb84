/* test_wire_scatter.c: records values in several byte ranges (kafka_writer_set_scatter /
 * kafka_write_records_iov), as the Fetch encoder uses them for a partition whose batches
 * lie in several cache fragments. The same Fetch response is encoded by an iovec writer
 * (ranges referenced in place, one iovec each), a copying writer and a sizer, and against
 * a reference encoding whose records are one contiguous buffer: the bytes, sizes and the
 * decoded records must agree; a list too short for the ranges is KAFKA_ERR_IOV_FULL. */
#include <criterion/criterion.h>
#include <string.h>

#include "dataplane/kafka/kafka_msgs.h"

#define PARTS 3

static uint8_t range_mem[3][700];  /* partition 0's records, in 3 ranges */
static uint8_t plain[250];         /* partition 1's records, one plain buffer */
static uint8_t joined[2100];       /* partition 0's ranges, contiguous (the reference) */
static uint8_t out[64 * 1024], flat[64 * 1024], ref[64 * 1024];
static uint8_t arena_mem[64 * 1024];

static struct kafka_fetch_response_partition_data parts[PARTS];
static struct kafka_fetch_response_fetchable_topic_response topic;
static struct kafka_fetch_response msg;
static struct iovec ranges[3];
static struct kafka_scatter scatter[PARTS];

static void setup(void)
{
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < sizeof(range_mem[i]); j++)
            range_mem[i][j] = (uint8_t)(i * 31 + j * 7);
        size_t len = 300 + (size_t)i * 200; /* 300, 500, 700: ranges of different sizes */
        ranges[i] = (struct iovec){ range_mem[i], len };
    }
    memset(plain, 'p', sizeof(plain));
    memset(parts, 0, sizeof(parts));
    for (int i = 0; i < PARTS; i++) {
        parts[i].partition_index = i;
        parts[i].diverging_epoch.epoch = -1;
        parts[i].diverging_epoch.end_offset = -1;
        parts[i].current_leader.leader_id = -1;
        parts[i].current_leader.leader_epoch = -1;
        parts[i].snapshot_id.end_offset = -1;
        parts[i].snapshot_id.epoch = -1;
        parts[i].preferred_read_replica = -1;
    }
    scatter[0] = (struct kafka_scatter){ ranges, 3 };
    parts[0].records = (struct kafka_bytes){ (const uint8_t *)&scatter[0], 1500 };
    parts[1].records = (struct kafka_bytes){ plain, sizeof(plain) };
    parts[2].records = (struct kafka_bytes){ (const uint8_t *)"", 0 };
    memset(&topic, 0, sizeof(topic));
    topic.topic = kafka_str_from_cstr("t");
    topic.partitions = parts;
    topic.partitions_count = PARTS;
    kafka_fetch_response_init(&msg, 12);
    msg.responses = &topic;
    msg.responses_count = 1;
}

/* The reference: the same response with partition 0's ranges joined in one buffer. */
static size_t encode_reference(int16_t version)
{
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(joined + at, ranges[i].iov_base, ranges[i].iov_len);
        at += ranges[i].iov_len;
    }
    struct kafka_bytes saved = parts[0].records;
    parts[0].records = (struct kafka_bytes){ joined, (int32_t)at };
    struct kafka_writer w;
    kafka_writer_init(&w, ref, sizeof(ref));
    cr_assert_eq(kafka_fetch_response_encode(&w, version, &msg), 0);
    parts[0].records = saved;
    return w.len_bytes;
}

static void check_version(int16_t version)
{
    size_t ref_bytes = encode_reference(version);

    /* iovec mode: every range and the plain buffer referenced in place */
    struct iovec iov[16];
    struct kafka_writer w;
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 16);
    kafka_writer_set_scatter(&w, scatter, PARTS);
    cr_assert_eq(kafka_fetch_response_encode(&w, version, &msg), 0);
    int n = kafka_writer_finish(&w);
    cr_assert_eq(n, 7, "v%d: %d iovecs (inline, 3 ranges, inline, plain, inline)", version, n);
    cr_assert_eq(w.external_bytes, 1500 + sizeof(plain));
    int found_ranges = 0, found_plain = 0;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++)
            if (iov[i].iov_base == ranges[k].iov_base && iov[i].iov_len == ranges[k].iov_len) {
                cr_assert_eq(found_ranges, k, "ranges in order");
                found_ranges++;
            }
        if (iov[i].iov_base == (void *)plain)
            found_plain++;
        cr_assert_leq(off + iov[i].iov_len, ref_bytes);
        cr_assert(memcmp(ref + off, iov[i].iov_base, iov[i].iov_len) == 0,
            "v%d: iovec %d differs from the reference", version, i);
        off += iov[i].iov_len;
    }
    cr_assert_eq(found_ranges, 3);
    cr_assert_eq(found_plain, 1);
    cr_assert_eq(off, ref_bytes);
    cr_assert_eq(kafka_writer_size(&w), ref_bytes);

    /* copying writer: the same bytes */
    struct kafka_writer fw;
    kafka_writer_init(&fw, flat, sizeof(flat));
    kafka_writer_set_scatter(&fw, scatter, PARTS);
    cr_assert_eq(kafka_fetch_response_encode(&fw, version, &msg), 0);
    cr_assert_eq(fw.len_bytes, ref_bytes);
    cr_assert(memcmp(flat, ref, ref_bytes) == 0);

    /* sizer: the same size */
    struct kafka_writer sz;
    kafka_writer_init_sizer(&sz);
    kafka_writer_set_scatter(&sz, scatter, PARTS);
    cr_assert_eq(kafka_fetch_response_encode(&sz, version, &msg), 0);
    cr_assert_eq(kafka_writer_size(&sz), ref_bytes);

    /* and the bytes decode to the joined records */
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
    struct kafka_reader r;
    kafka_reader_init(&r, flat, fw.len_bytes);
    struct kafka_fetch_response back;
    cr_assert_eq(kafka_fetch_response_decode(&r, version, &back, &arena), 0);
    cr_assert_eq(back.responses[0].partitions_count, PARTS);
    struct kafka_bytes rec = back.responses[0].partitions[0].records;
    cr_assert_eq(rec.len, 1500);
    cr_assert(memcmp(rec.ptr, joined, 1500) == 0);
    cr_assert_eq(back.responses[0].partitions[1].records.len, (int32_t)sizeof(plain));
    cr_assert_eq(back.responses[0].partitions[2].records.len, 0);
}

Test(wire_scatter, fetch_v12_compact, .init = setup)
{
    check_version(12);
}

Test(wire_scatter, fetch_v4_int32_lengths, .init = setup)
{
    check_version(4);
}

Test(wire_scatter, iov_list_too_short, .init = setup)
{
    struct iovec iov[5];
    struct kafka_writer w;
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 5);
    kafka_writer_set_scatter(&w, scatter, PARTS);
    kafka_fetch_response_encode(&w, 12, &msg);
    cr_assert_eq(kafka_writer_finish(&w), KAFKA_ERR_IOV_FULL);
}

Test(wire_scatter, without_scatter_list_a_records_view_is_plain_bytes, .init = setup)
{
    /* a writer without the list must not read a descriptor as a list: plain bytes stay
     * plain, and the writer's list only matches addresses inside it */
    struct kafka_scatter other[1] = { { ranges, 1 } };
    struct iovec iov[16];
    struct kafka_writer w;
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 16);
    kafka_writer_set_scatter(&w, other, 1);
    parts[0].records = (struct kafka_bytes){ joined, 100 };
    cr_assert_eq(kafka_fetch_response_encode(&w, 12, &msg), 0);
    cr_assert_geq(kafka_writer_finish(&w), 1);
    cr_assert_eq(w.external_bytes, 100 + sizeof(plain));
}

Test(wire_scatter, empty_ranges_and_direct_call)
{
    struct iovec two[2] = { { range_mem[0], 0 }, { range_mem[1], 5 } };
    struct iovec iov[4];
    struct kafka_writer w;
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 4);
    kafka_write_records_iov(&w, two, 2, true);
    cr_assert_eq(kafka_writer_finish(&w), 2); /* length prefix, then the one non-empty range */
    cr_assert_eq(out[0], 6);                  /* compact length 5 + 1 */
    cr_assert_eq(iov[1].iov_base, range_mem[1]);
    cr_assert_eq(w.external_bytes, 5);
    kafka_writer_init_iov(&w, out, sizeof(out), iov, 4);
    kafka_write_records_iov(&w, two, 0, false); /* no ranges: empty records */
    cr_assert_eq(kafka_writer_finish(&w), 1);
    cr_assert_eq(w.len_bytes, 4);
    cr_assert_eq(w.external_bytes, 0);
}
