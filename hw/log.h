/* log.h - structured one-line logs (logfmt).
 *
 *   log_info("listen", "addr=%s port=%d", host, port);
 *   -> ts=2026-11-22T02:10:00.123Z level=info shard=0 event=listen addr=127.0.0.1 port=9092
 *
 * Each line is formatted into a stack buffer and written with one write(2) to stderr, so
 * lines from different threads never interleave. A thread names itself once with
 * log_set_thread_shard() (-1 = control). Repeats of one event are rate-limited by the
 * caller with log_ratelimit_ok().
 *
 * Shards never block on log I/O. Once the process enables rings (log_ring_enable(), the
 * broker does before it starts shards), a thread that calls log_ring_attach() formats
 * its lines into its own bounded single-producer single-consumer ring (LOG_RING_LINES
 * lines of at most LOG_LINE_BYTES) instead of writing them; the control thread writes
 * them out with log_drain() on every loop turn. A full ring drops the line and counts it;
 * the drain reports the count as one "log_dropped" line. The ring's first line after it
 * was empty bumps a non-blocking eventfd (log_ring_enable's return) so the control loop
 * wakes for it. Threads without a ring (control, CLI, tests) write directly. Lines still
 * in a ring when the process dies abruptly are lost; log_drain() after the shards are
 * joined writes everything out on a clean stop. */
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

#define LOG_LINE_BYTES 1024
#define LOG_RING_LINES 256
#define LOG_MAX_RINGS 128

/* Turn rings on for threads that attach from now on; returns the wake eventfd (or -1:
 * rings stay off and every line is written directly). Idempotent. */
int log_ring_enable(void);
/* Give the calling thread a ring (no-op unless enabled; direct writes if LOG_MAX_RINGS
 * are taken or memory is short). The ring lives until the process exits. */
void log_ring_attach(void);
/* Write out every line waiting in every ring, then the drop reports. Control thread only
 * (the rings' single consumer). Returns the lines written. */
unsigned log_drain(void);
/* Lines dropped because a ring was full, over all rings (for metrics). */
uint64_t log_dropped_total(void);

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
