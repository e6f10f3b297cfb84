/* cli_common.c - shared pieces of the admin subcommands (see cli_common.h). */
#include "control/cli_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_common_init(struct cli_common *o, const char *command) {
    memset(o, 0, sizeof *o);
    o->command = command;
    o->bootstrap = CLI_DEFAULT_BOOTSTRAP;
    o->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
}

int cli_common_option(struct cli_common *o, int opt, const char *arg) {
    int64_t v;
    switch (opt) {
    case 'b': o->bootstrap = arg; return 1;
    case 'h': o->help = true; return 1;
    case CLI_OPT_JSON: o->json = true; return 1;
    case CLI_OPT_TIMEOUT:
        if (cli_parse_int64(arg, 1, 3600 * 1000, &v) != 0) return -1;
        o->timeout_ms = (int)v;
        return 1;
    default: return 0;
    }
}

void cli_getopt_reset(void) {
    optind = 0; /* glibc: 0 also reinitialises getopt's internal state */
    opterr = 1;
}

int cli_fail(const struct cli_common *o, int code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "sluice %s: ", o->command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cli_parse_datetime_ms(const char *s, int64_t *out_ms) {
    if (cli_parse_int64(s, 0, INT64_MAX, out_ms) == 0) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) return -1;
    int64_t millis = 0;
    if (*rest == '.') {
        rest++;
        int digits = 0;
        while (*rest >= '0' && *rest <= '9' && digits < 3) {
            millis = millis * 10 + (*rest++ - '0');
            digits++;
        }
        if (digits == 0) return -1;
        while (digits++ < 3) millis *= 10;
    }
    if (*rest == 'Z') rest++;
    if (*rest != '\0') return -1;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1) return -1;
    *out_ms = (int64_t)secs * 1000 + millis;
    return 0;
}

int cli_connect(const struct cli_common *o, struct kclient *c) {
    char host[256];
    int port;
    if (cli_parse_hostport(o->bootstrap, host, sizeof host, &port) != 0)
        return cli_fail(o, CLI_EXIT_USAGE, "bad broker address '%s' (want HOST:PORT)",
                        o->bootstrap);
    if (kclient_connect(c, o->bootstrap, o->timeout_ms) != 0) {
        cli_fail(o, CLI_EXIT_FAILED, "%s", c->err);
        kclient_close(c);
        return CLI_EXIT_FAILED;
    }
    return 0;
}

const char *cli_str(struct kafka_str s, char *buf, size_t cap) {
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(buf, s.ptr, n);
    buf[n] = '\0';
    return buf;
}

int cli_metadata(const struct cli_common *o, struct kclient *c, char *const *topics,
                 int topic_count, struct kafka_metadata_response *resp) {
    /* v1+: a null topic array means every topic (v0 used an empty one). */
    int16_t v = kclient_pick_version(c, KAFKA_API_METADATA, 1, 12);
    if (v < 0) return cli_fail(o, -1, "%s", c->err);
    struct kafka_metadata_request req;
    kafka_metadata_request_init(&req, v);
    req.allow_auto_topic_creation = false;
    req.topics_count = -1;
    if (topic_count > 0) {
        req.topics = KCLIENT_ARRAY(c, topic_count, req.topics);
        if (!req.topics) return cli_fail(o, -1, "%s", c->err);
        for (int i = 0; i < topic_count; i++) {
            memset(&req.topics[i], 0, sizeof req.topics[i]);
            req.topics[i].name = kafka_str_from_cstr(topics[i]);
        }
        req.topics_count = topic_count;
    }
    if (kclient_call(c, KAFKA_API_METADATA, v, &req, resp) != 0)
        return cli_fail(o, -1, "%s", c->err);
    return 0;
}
