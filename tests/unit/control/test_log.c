/* test_log.c - the shards' non-blocking log path (hw/log.c): a thread with a ring never
 * writes stderr itself; the drain writes its lines in order; a full ring drops and counts
 * lines and the drain reports them; threads without a ring (and every thread before
 * rings are enabled) write directly. stderr is redirected to a temp file per test. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/log.h"

static char path[] = "/tmp/sluice-test-log-XXXXXX";
static int log_fd = -1;

static void capture(void) {
    log_fd = mkstemp(path);
    cr_assert_geq(log_fd, 0);
    cr_assert_eq(dup2(log_fd, STDERR_FILENO), STDERR_FILENO);
}

static void release(void) {
    unlink(path);
}

/* The captured stderr so far (static buffer). */
static const char *captured(void) {
    static char buf[1 << 20];
    ssize_t n = pread(log_fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static int count_lines(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

struct producer { int shard, lines; };

static void *produce(void *arg) {
    struct producer *p = arg;
    log_set_thread_shard(p->shard);
    log_ring_attach();
    for (int i = 0; i < p->lines; i++) log_info("ring_test", "seq=%d", i);
    return NULL;
}

static void run_producer(int shard, int lines) {
    struct producer p = {shard, lines};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    pthread_join(t, NULL);
}

TestSuite(log, .init = capture, .fini = release);

Test(log, without_rings_lines_are_written_directly) {
    run_producer(1, 3);
    cr_assert_eq(count_lines(captured(), "event=ring_test"), 3);
    cr_assert_eq(log_drain(), 0);
}

Test(log, ring_lines_wait_for_the_drain_in_order) {
    int wake = log_ring_enable();
    cr_assert_geq(wake, 0);
    run_producer(3, 10);
    cr_assert_eq(count_lines(captured(), "event=ring_test"), 0, "the shard wrote nothing");
    struct pollfd pfd = {.fd = wake, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 0), 1, "the first line woke the drainer");
    cr_assert_eq(log_drain(), 10);
    const char *out = captured();
    cr_assert_eq(count_lines(out, "level=info shard=3 event=ring_test"), 10);
    const char *prev = out;
    for (int i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof want, "seq=%d\n", i);
        const char *at = strstr(out, want);
        cr_assert(at && at >= prev, "seq=%d in order", i);
        prev = at;
    }
    cr_assert_eq(poll(&pfd, 1, 0), 0, "the drain cleared the wake-up");
    log_info("control_line", "x=1"); /* this thread has no ring: direct */
    cr_assert_eq(count_lines(captured(), "shard=control event=control_line"), 1);
}

Test(log, a_full_ring_drops_counts_and_reports) {
    log_ring_enable();
    run_producer(5, LOG_RING_LINES + 7);
    cr_assert_eq(log_dropped_total(), 7);
    cr_assert_eq(log_drain(), LOG_RING_LINES);
    const char *out = captured();
    cr_assert_eq(count_lines(out, "event=ring_test"), LOG_RING_LINES);
    cr_assert_eq(count_lines(out, "event=log_dropped from_shard=5 lines=7 total=7"), 1);
    cr_assert_eq(log_drain(), 0);
    cr_assert_eq(count_lines(captured(), "event=log_dropped"), 1, "reported once");
}
