/* log.c - logfmt lines, one write(2) each. See log.h. */
#include "hw/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_level = LOG_INFO;
static _Thread_local int t_shard_id = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) { g_level = level; }

bool log_parse_level(const char *name, enum log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

void log_set_thread_shard(int shard_id) { t_shard_id = shard_id; }

bool log_enabled(enum log_level level) { return level >= g_level; }

void log_write(enum log_level level, const char *event, const char *fmt, ...) {
    if (!log_enabled(level)) return;
    char line[1024];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, now.tv_nsec / 1000000, level_names[level]);
    if (t_shard_id >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, "shard=%d ", t_shard_id);
    else
        n += snprintf(line + n, sizeof line - (size_t)n, "shard=control ");
    n += snprintf(line + n, sizeof line - (size_t)n, "event=%s", event);
    if (fmt && fmt[0] && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2; /* truncated */
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nowhere to report a failed log write */
}

static uint64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool log_ratelimit_ok(struct log_ratelimit *rl) {
    uint64_t now_ms = monotonic_ms();
    if (rl->last_refill_ms == 0) rl->last_refill_ms = now_ms;
    uint64_t refill = (now_ms - rl->last_refill_ms) * rl->per_second / 1000u;
    if (refill > 0) {
        uint64_t tokens = rl->tokens + refill;
        rl->tokens = tokens > rl->burst ? rl->burst : (uint32_t)tokens;
        rl->last_refill_ms = now_ms;
    }
    if (rl->tokens == 0) {
        rl->suppressed++;
        return false;
    }
    rl->tokens--;
    return true;
}
