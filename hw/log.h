/* log.h - structured one-line logs (logfmt).
 *
 *   log_info("listen", "addr=%s port=%d", host, port);
 *   -> ts=2026-11-22T02:10:00.123Z level=info shard=0 event=listen addr=127.0.0.1 port=9092
 *
 * Each line is formatted into a stack buffer and written with one write(2) to stderr, so
 * lines from different threads never interleave. A thread names itself once with
 * log_set_thread_shard() (-1 = control). Repeats of one event are rate-limited by the
 * caller with log_ratelimit_ok(). The non-blocking shard path (a ring drained by the
 * control thread) is the operations issue's; today a shard's log line is one write(2). */
#ifndef SLUICE_HW_LOG_H
#define SLUICE_HW_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(enum log_level level);
bool log_parse_level(const char *name, enum log_level *out);
void log_set_thread_shard(int shard_id);
bool log_enabled(enum log_level level);
void log_write(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A token bucket: at most burst events, refilled at per_second. Not thread-safe: keep
 * one per thread (or per shard) and per event kind. */
struct log_ratelimit {
    uint64_t last_refill_ms;
    uint32_t tokens;
    uint32_t burst;
    uint32_t per_second;
    uint64_t suppressed;
};
#define LOG_RATELIMIT_INIT(burst_, per_second_) \
    { .last_refill_ms = 0, .tokens = (burst_), .burst = (burst_), .per_second = (per_second_), \
      .suppressed = 0 }
bool log_ratelimit_ok(struct log_ratelimit *rl);

#define log_debug(event, ...) \
    do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, event, __VA_ARGS__); } while (0)
#define log_info(event, ...) log_write(LOG_INFO, event, __VA_ARGS__)
#define log_warn(event, ...) log_write(LOG_WARN, event, __VA_ARGS__)
#define log_error(event, ...) log_write(LOG_ERROR, event, __VA_ARGS__)

#endif
