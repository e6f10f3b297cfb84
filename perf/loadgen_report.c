/* loadgen_report.c - progress line, summary table and JSON of load generator runs.
 * Latencies are kept in microseconds and printed in milliseconds with three decimals. */
#include "perf/loadgen_report.h"

#include <errno.h>
#include <string.h>

#include "storage/record/compress.h"

static double ms(uint64_t us) { return (double)us / 1000.0; }

static double per_s(uint64_t n, double s) { return s > 0 ? (double)n / s : 0; }

void lg_report_progress(FILE *out, double elapsed_s, double interval_s,
                        const struct lg_result *d, const struct lg_result *t) {
    uint64_t errors = t->produce_errors + t->fetch_errors + t->conn_errors + t->crc_errors;
    fprintf(out,
            "[%6.1fs] produce %9.0f msg/s %8.2f MB/s p99 %8.3f ms | consume %9.0f msg/s "
            "%8.2f MB/s e2e p99 %8.3f ms | errors %llu\n",
            elapsed_s, per_s(d->acked_msgs, interval_s), per_s(d->acked_bytes, interval_s) / 1e6,
            ms(hist_percentile(&t->produce_latency, 99)), per_s(d->consumed_msgs, interval_s),
            per_s(d->consumed_bytes, interval_s) / 1e6, ms(hist_percentile(&t->e2e_latency, 99)),
            (unsigned long long)errors);
    fflush(out);
}

void lg_report_workload(FILE *out, const struct lg_options *o) {
    char rate[32];
    if (o->rate_msgs > 0) snprintf(rate, sizeof rate, "%.0f msg/s", o->rate_msgs);
    else snprintf(rate, sizeof rate, "max");
    fprintf(out,
            "loadgen: %s:%u topic %s x%u, %u partitions, %u-%u B messages, acks=%d, %s, "
            "batch %u B, linger %u ms, rate %s, %u producers, %u consumers, %u threads\n",
            o->host, o->port, o->topic, o->topics, o->partitions, o->message_bytes,
            o->message_bytes_max, o->acks, record_codec_name((enum record_codec)o->codec),
            o->batch_bytes, o->linger_ms, rate, o->producers, o->consumers, o->threads);
}

static void latency_row(FILE *out, const char *name, double msgs_s, double mb_s,
                        const struct hist *h) {
    fprintf(out, "%-11s %12.0f %9.2f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %11llu\n", name,
            msgs_s, mb_s, ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)),
            ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)),
            ms(hist_percentile(h, 99.99)), ms(hist_max(h)),
            (unsigned long long)hist_count(h));
}

void lg_report_summary(FILE *out, const struct lg_result *r) {
    fprintf(out, "\n%-11s %12s %9s %9s %9s %9s %9s %9s %9s %11s\n", "", "msgs/s", "MB/s",
            "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "p99.99", "max ms", "samples");
    latency_row(out, "produce", per_s(r->acked_msgs, r->seconds),
                per_s(r->acked_bytes, r->seconds) / 1e6, &r->produce_latency);
    latency_row(out, "end-to-end", per_s(r->consumed_msgs, r->seconds),
                per_s(r->consumed_bytes, r->seconds) / 1e6, &r->e2e_latency);
    fprintf(out,
            "measured %.2f s: produced %llu acked %llu consumed %llu (%llu batches)\n"
            "check: lost %llu unread %llu duplicated %llu out-of-order %llu crc-errors %llu "
            "produce-errors %llu fetch-errors %llu connection-errors %llu\n",
            r->seconds, (unsigned long long)r->produced_msgs,
            (unsigned long long)r->acked_msgs, (unsigned long long)r->consumed_msgs,
            (unsigned long long)r->consumed_batches, (unsigned long long)r->lost,
            (unsigned long long)r->unread,
            (unsigned long long)r->duplicated, (unsigned long long)r->out_of_order,
            (unsigned long long)r->crc_errors, (unsigned long long)r->produce_errors,
            (unsigned long long)r->fetch_errors, (unsigned long long)r->conn_errors);
    if (r->unread)
        fprintf(out, "unread: the drain (--drain) ended before the consumers reached the end of "
                     "what was acked; those messages were not checked\n");
    if (r->group[0])
        fprintf(out,
                "group %s: %llu generations (%llu after producing started), %llu redelivered, "
                "%llu commit errors\n",
                r->group, (unsigned long long)r->rebalances,
                (unsigned long long)r->rebalances_mid_run, (unsigned long long)r->redelivered,
                (unsigned long long)r->commit_errors);
    for (uint32_t i = 0; i < r->problem_count && i < 10; i++) {
        const struct lg_partition_problem *p = &r->problems[i];
        fprintf(out, "  %s/%u: acked %llu lost %llu unread %llu duplicated %llu out-of-order %llu\n",
                p->topic, p->partition, (unsigned long long)p->acked,
                (unsigned long long)p->lost, (unsigned long long)p->unread,
                (unsigned long long)p->duplicated,
                (unsigned long long)p->out_of_order);
    }
    if (r->problem_partitions > 10)
        fprintf(out, "  ... %u partitions with problems in all\n", r->problem_partitions);
}

void lg_report_sweep(FILE *out, const struct lg_result *pts, const double *pct, uint32_t n) {
    fprintf(out, "\n%7s %12s %12s %9s %9s %9s %9s %9s %9s %9s\n", "% max", "target/s",
            "acked/s", "prod p50", "prod p99", "e2e p50", "e2e p99", "e2e p99.9", "e2e max",
            "lost");
    for (uint32_t i = 0; i < n; i++) {
        const struct lg_result *r = &pts[i];
        fprintf(out, "%7.0f %12.0f %12.0f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9llu\n", pct[i],
                r->rate_target_msgs, per_s(r->acked_msgs, r->seconds),
                ms(hist_percentile(&r->produce_latency, 50)),
                ms(hist_percentile(&r->produce_latency, 99)),
                ms(hist_percentile(&r->e2e_latency, 50)),
                ms(hist_percentile(&r->e2e_latency, 99)),
                ms(hist_percentile(&r->e2e_latency, 99.9)), ms(hist_max(&r->e2e_latency)),
                (unsigned long long)r->lost);
    }
}

static void json_hist(FILE *f, const char *name, const struct hist *h) {
    fprintf(f,
            "\"%s\": {\"count\": %llu, \"min\": %llu, \"mean\": %.1f, \"p50\": %llu, "
            "\"p90\": %llu, \"p99\": %llu, \"p99_9\": %llu, \"p99_99\": %llu, \"max\": %llu}",
            name, (unsigned long long)hist_count(h), (unsigned long long)hist_min(h),
            hist_mean(h), (unsigned long long)hist_percentile(h, 50),
            (unsigned long long)hist_percentile(h, 90),
            (unsigned long long)hist_percentile(h, 99),
            (unsigned long long)hist_percentile(h, 99.9),
            (unsigned long long)hist_percentile(h, 99.99), (unsigned long long)hist_max(h));
}

static void json_run(FILE *f, const struct lg_result *r, double pct) {
    fprintf(f, "    {\"sweep_percent\": %.1f, \"rate_target_msgs\": %.1f, \"seconds\": %.3f,\n",
            pct, r->rate_target_msgs, r->seconds);
    fprintf(f,
            "     \"produced_msgs\": %llu, \"produced_bytes\": %llu, \"acked_msgs\": %llu, "
            "\"acked_bytes\": %llu, \"produce_errors\": %llu,\n",
            (unsigned long long)r->produced_msgs, (unsigned long long)r->produced_bytes,
            (unsigned long long)r->acked_msgs, (unsigned long long)r->acked_bytes,
            (unsigned long long)r->produce_errors);
    fprintf(f,
            "     \"consumed_msgs\": %llu, \"consumed_bytes\": %llu, \"consumed_batches\": %llu,\n",
            (unsigned long long)r->consumed_msgs, (unsigned long long)r->consumed_bytes,
            (unsigned long long)r->consumed_batches);
    fprintf(f,
            "     \"produce_msgs_per_s\": %.1f, \"produce_mb_per_s\": %.3f, "
            "\"consume_msgs_per_s\": %.1f, \"consume_mb_per_s\": %.3f,\n",
            per_s(r->acked_msgs, r->seconds), per_s(r->acked_bytes, r->seconds) / 1e6,
            per_s(r->consumed_msgs, r->seconds), per_s(r->consumed_bytes, r->seconds) / 1e6);
    fprintf(f,
            "     \"lost\": %llu, \"unread\": %llu, \"duplicated\": %llu, \"out_of_order\": %llu, "
            "\"crc_errors\": %llu, \"fetch_errors\": %llu, \"connection_errors\": %llu,\n     ",
            (unsigned long long)r->lost, (unsigned long long)r->unread,
            (unsigned long long)r->duplicated,
            (unsigned long long)r->out_of_order, (unsigned long long)r->crc_errors,
            (unsigned long long)r->fetch_errors, (unsigned long long)r->conn_errors);
    fprintf(f,
            "\"group\": \"%s\", \"rebalances\": %llu, \"rebalances_mid_run\": %llu, "
            "\"redelivered\": %llu, \"commit_errors\": %llu,\n     ",
            r->group, (unsigned long long)r->rebalances,
            (unsigned long long)r->rebalances_mid_run, (unsigned long long)r->redelivered,
            (unsigned long long)r->commit_errors);
    json_hist(f, "produce_latency_us", &r->produce_latency);
    fprintf(f, ",\n     ");
    json_hist(f, "e2e_latency_us", &r->e2e_latency);
    fprintf(f, ",\n     \"problem_partitions\": %u, \"problems\": [", r->problem_partitions);
    for (uint32_t i = 0; i < r->problem_count; i++) {
        const struct lg_partition_problem *p = &r->problems[i];
        fprintf(f,
                "%s{\"topic\": \"%s\", \"partition\": %u, \"acked\": %llu, \"lost\": %llu, "
                "\"unread\": %llu, \"duplicated\": %llu, \"out_of_order\": %llu}",
                i ? ", " : "", p->topic, p->partition, (unsigned long long)p->acked,
                (unsigned long long)p->lost, (unsigned long long)p->unread,
                (unsigned long long)p->duplicated,
                (unsigned long long)p->out_of_order);
    }
    fprintf(f, "]}");
}

int lg_report_json(const char *path, const struct lg_options *o, const struct lg_result *runs,
                   const double *sweep_pct, uint32_t count) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"workload\": {\"bootstrap\": \"%s:%u\", \"topic\": \"%s\", \"topics\": %u, "
               "\"partitions\": %u, \"message_bytes\": %u, \"message_bytes_max\": %u, "
               "\"acks\": %d, \"compression\": \"%s\", \"batch_bytes\": %u, \"linger_ms\": %u, "
               "\"rate_msgs\": %.1f, \"producers\": %u, \"consumers\": %u, \"threads\": %u, "
               "\"warmup_s\": %.1f, \"duration_s\": %.1f, \"messages\": %llu},\n \"runs\": [\n",
            o->host, o->port, o->topic, o->topics, o->partitions, o->message_bytes,
            o->message_bytes_max, o->acks, record_codec_name((enum record_codec)o->codec),
            o->batch_bytes, o->linger_ms, o->rate_msgs, o->producers, o->consumers, o->threads,
            o->warmup_s, o->duration_s, (unsigned long long)o->messages);
    for (uint32_t i = 0; i < count; i++) {
        json_run(f, &runs[i], sweep_pct ? sweep_pct[i] : 0);
        fprintf(f, i + 1 < count ? ",\n" : "\n");
    }
    fprintf(f, " ]}\n");
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    return rc;
}
