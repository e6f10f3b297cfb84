/* bench_codec.c: Kafka codec micro-benchmarks.
 *
 *   decode: a Produce v9 request (header v2 + body) carrying one 16 KiB record batch:
 *           request header decode + body decode, arena reset per iteration. Records are a
 *           view, so the cost should not depend on the batch size.
 *   encode: a Fetch v12 response: response header v1 + body with one topic and one
 *           partition whose records are referenced by an iovec (zero copy), then
 *           kafka_writer_finish(). This is the per-partition framing cost of a fetch.
 * Each figure is the best of BENCH_ROUNDS rounds of BENCH_ITERS iterations (ns/op), which
 * filters out noise from other processes on a shared machine.
 * Usage: bench_codec [iterations]   (default 1000000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/kafka/kafka_msgs.h"

#define BENCH_ROUNDS 5
#define BATCH_BYTES (16 * 1024)

static uint8_t batch[BATCH_BYTES];
static uint8_t frame[BATCH_BYTES + 4096];
static uint8_t arena_mem[64 * 1024];
static uint8_t out[4096];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t build_produce_frame(void)
{
    for (size_t i = 0; i < sizeof(batch); i++)
        batch[i] = (uint8_t)(i * 31);
    struct kafka_produce_request_partition_produce_data part = {
        .index = 0, .records = { batch, BATCH_BYTES } };
    struct kafka_produce_request_topic_produce_data topic = {
        .name = kafka_str_from_cstr("bench-topic"), .partition_data = &part,
        .partition_data_count = 1 };
    struct kafka_produce_request req;
    kafka_produce_request_init(&req, 9);
    req.acks = -1;
    req.timeout_ms = 30000;
    req.topic_data = &topic;
    req.topic_data_count = 1;
    struct kafka_request_header h = { KAFKA_API_PRODUCE, 9, 1,
        kafka_str_from_cstr("bench-client") };
    struct kafka_writer w;
    kafka_writer_init(&w, frame, sizeof(frame));
    if (kafka_request_header_encode(&w, 2, &h) != 0 || kafka_produce_request_encode(&w, 9, &req))
        abort();
    return w.len_bytes;
}

static double bench_decode(size_t frame_bytes, long iters, uint64_t *sink)
{
    struct kafka_arena arena;
    kafka_arena_init(&arena, arena_mem, sizeof(arena_mem));
    double best = 1e30;
    for (int round = 0; round < BENCH_ROUNDS; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            struct kafka_reader r;
            struct kafka_request_header h;
            struct kafka_produce_request req;
            kafka_arena_reset(&arena);
            kafka_reader_init(&r, frame, frame_bytes);
            if (kafka_request_header_decode(&r, 2, &h, &arena) != 0 ||
                kafka_produce_request_decode(&r, 9, &req, &arena) != 0 ||
                kafka_reader_remaining(&r) != 0)
                abort();
            *sink += (uint64_t)req.topic_data[0].partition_data[0].records.len;
        }
        double ns = (now_ns() - t0) / (double)iters;
        if (ns < best)
            best = ns;
    }
    return best;
}

static double bench_encode(long iters, uint64_t *sink)
{
    struct kafka_fetch_response_partition_data part;
    memset(&part, 0, sizeof(part));
    part.partition_index = 0;
    part.high_watermark = 1000000;
    part.last_stable_offset = 1000000;
    part.log_start_offset = 0;
    part.aborted_transactions_count = -1;
    part.preferred_read_replica = -1;
    part.diverging_epoch.epoch = -1;
    part.diverging_epoch.end_offset = -1;
    part.current_leader.leader_id = -1;
    part.current_leader.leader_epoch = -1;
    part.snapshot_id.end_offset = -1;
    part.snapshot_id.epoch = -1;
    part.records = (struct kafka_bytes){ batch, BATCH_BYTES };
    struct kafka_fetch_response_fetchable_topic_response topic;
    memset(&topic, 0, sizeof(topic));
    topic.topic = kafka_str_from_cstr("bench-topic");
    topic.partitions = &part;
    topic.partitions_count = 1;
    struct kafka_fetch_response resp;
    kafka_fetch_response_init(&resp, 12);
    resp.session_id = 7;
    resp.responses = &topic;
    resp.responses_count = 1;
    struct kafka_response_header h = { 1 };
    double best = 1e30;
    for (int round = 0; round < BENCH_ROUNDS; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            struct iovec iov[4];
            struct kafka_writer w;
            kafka_writer_init_iov(&w, out, sizeof(out), iov, 4);
            size_t size_at = kafka_writer_reserve(&w, 4);
            h.correlation_id = (int32_t)i;
            kafka_response_header_encode(&w, 1, &h);
            kafka_fetch_response_encode(&w, 12, &resp);
            kafka_writer_patch_int32(&w, size_at, (int32_t)(kafka_writer_size(&w) - 4));
            if (kafka_writer_finish(&w) != 3)
                abort();
            *sink += iov[2].iov_len + w.len_bytes;
        }
        double ns = (now_ns() - t0) / (double)iters;
        if (ns < best)
            best = ns;
    }
    return best;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    if (iters <= 0)
        iters = 1;
    uint64_t sink = 0;
    size_t frame_bytes = build_produce_frame();
    double dec = bench_decode(frame_bytes, iters, &sink);
    double enc = bench_encode(iters, &sink);
    printf("codec produce_v9_decode_16KiB_batch frame_bytes=%zu ns_per_op=%.1f\n",
        frame_bytes, dec);
    printf("codec fetch_v12_response_encode_1topic_1partition_iovec ns_per_op=%.1f\n", enc);
    printf("codec iterations=%ld rounds=%d (best round) sink=%llu\n", iters, BENCH_ROUNDS,
        (unsigned long long)sink);
    return 0;
}
