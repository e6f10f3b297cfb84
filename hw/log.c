/* log.c - logfmt lines: one write(2) each, or, on a thread with a ring, one slot of its
 * bounded SPSC ring that the control thread drains (see log.h). */
#include "hw/log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* One producer (the attached thread) and one consumer (log_drain). head and tail count
 * lines forever; head - tail is the fill level. */
struct log_ring {
    _Atomic uint32_t head;
    _Atomic uint32_t tail;
    _Atomic uint64_t dropped;  /* written by the producer only */
    uint64_t dropped_reported; /* consumer only */
    int shard_id;
    uint16_t len[LOG_RING_LINES];
    char lines[LOG_RING_LINES][LOG_LINE_BYTES];
};

/* A slot is claimed with ring_claimed, then its ring published with a release store
 * (NULL until then, or for good if the allocation failed). */
static struct log_ring *_Atomic rings[LOG_MAX_RINGS];
static _Atomic int ring_claimed;
static _Atomic bool rings_enabled;
static int wake_fd = -1;
static _Thread_local struct log_ring *t_ring;

static enum log_level g_level = LOG_INFO;
static _Thread_local int t_shard_id = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Producer side: copy the line into the next slot, or count it dropped when full. */
static void ring_push(struct log_ring *r, const char *line, size_t len) {
    assert(len <= LOG_LINE_BYTES);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= LOG_RING_LINES) {
        uint64_t d = atomic_load_explicit(&r->dropped, memory_order_relaxed);
        atomic_store_explicit(&r->dropped, d + 1, memory_order_relaxed);
        return;
    }
    uint32_t at = head % LOG_RING_LINES;
    memcpy(r->lines[at], line, len);
    r->len[at] = (uint16_t)len;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    if (head == tail && wake_fd >= 0) { /* was empty: wake the drainer (never blocks) */
        uint64_t one = 1;
        ssize_t w = write(wake_fd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is already non-zero, the drainer will wake */
    }
}

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
    if (t_ring) {
        ring_push(t_ring, line, (size_t)n);
        return;
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nowhere to report a failed log write */
}

int log_ring_enable(void) {
    if (atomic_load(&rings_enabled)) return wake_fd;
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) return -1;
    atomic_store(&rings_enabled, true);
    return wake_fd;
}

void log_ring_attach(void) {
    if (!atomic_load(&rings_enabled) || t_ring) return;
    int slot = atomic_fetch_add(&ring_claimed, 1);
    if (slot >= LOG_MAX_RINGS) return; /* this thread writes directly */
    struct log_ring *r = calloc(1, sizeof *r);
    if (!r) return;
    r->shard_id = t_shard_id;
    atomic_store_explicit(&rings[slot], r, memory_order_release);
    t_ring = r;
}

static int claimed_rings(void) {
    int n = atomic_load(&ring_claimed);
    return n < LOG_MAX_RINGS ? n : LOG_MAX_RINGS;
}

uint64_t log_dropped_total(void) {
    uint64_t total = 0;
    for (int i = 0; i < claimed_rings(); i++) {
        struct log_ring *r = atomic_load_explicit(&rings[i], memory_order_acquire);
        if (r) total += atomic_load_explicit(&r->dropped, memory_order_relaxed);
    }
    return total;
}

/* Write lines [tail, head) of one ring, up to LOG_RING_LINES, in writev batches. */
static unsigned drain_ring(struct log_ring *r) {
    enum { BATCH = 64 };
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    assert(head - tail <= LOG_RING_LINES);
    unsigned written = 0;
    while (tail != head) {
        struct iovec iov[BATCH];
        int n = 0;
        for (uint32_t i = tail; i != head && n < BATCH; i++, n++) {
            uint32_t at = i % LOG_RING_LINES;
            iov[n] = (struct iovec){.iov_base = r->lines[at], .iov_len = r->len[at]};
        }
        ssize_t w = writev(STDERR_FILENO, iov, n);
        (void)w; /* a failed write loses these lines: nowhere to report it */
        tail += (uint32_t)n;
        written += (unsigned)n;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return written;
}

unsigned log_drain(void) {
    if (wake_fd >= 0) {
        uint64_t v;
        ssize_t rd = read(wake_fd, &v, sizeof v); /* clear the wake-up; EAGAIN is fine */
        (void)rd;
    }
    unsigned written = 0;
    for (int i = 0; i < claimed_rings(); i++) {
        struct log_ring *r = atomic_load_explicit(&rings[i], memory_order_acquire);
        if (!r) continue;
        written += drain_ring(r);
        uint64_t dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed);
        if (dropped != r->dropped_reported) {
            log_write(LOG_WARN, "log_dropped", "from_shard=%d lines=%llu total=%llu",
                      r->shard_id, (unsigned long long)(dropped - r->dropped_reported),
                      (unsigned long long)dropped);
            r->dropped_reported = dropped;
        }
    }
    return written;
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
