/* test_loadgen_opts.c - workload keys from flags and from a file; bad values refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "perf/loadgen.h"
#include "storage/record/batch.h"

static struct lg_options o;
static char err[256];

Test(opts, flags_both_forms) {
    lg_options_default(&o);
    char *argv[] = {"loadgen", "--bootstrap=10.0.0.1:9093", "--rate", "50k",
                    "--message-size", "uniform:100-2000", "--acks=all", "--compression=zstd",
                    "--key-distribution=zipf", "--keys=500", "--cpus=0,1", "--batch-size=1MiB",
                    "--sweep=10,50,80"};
    cr_assert_eq(lg_options_parse_args(&o, 13, argv, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(o.host, "10.0.0.1");
    cr_assert_eq(o.port, 9093);
    cr_assert_float_eq(o.rate_msgs, 50000, 1e-9);
    cr_assert_eq(o.size_dist, LG_SIZE_UNIFORM);
    cr_assert_eq(o.message_bytes, 100);
    cr_assert_eq(o.message_bytes_max, 2000);
    cr_assert_eq(o.acks, -1);
    cr_assert_eq(o.codec, RECORD_CODEC_ZSTD);
    cr_assert_eq(o.key_dist, LG_KEY_ZIPF);
    cr_assert_eq(o.key_count, 500);
    cr_assert_eq(o.threads, 2);
    cr_assert_eq(o.cpus[1], 1);
    cr_assert_eq(o.batch_bytes, 1u << 20);
    cr_assert_eq(o.sweep_count, 3);
    cr_assert_float_eq(o.sweep_pct[2], 80, 1e-9);
    cr_assert_eq(lg_options_check(&o, err, sizeof err), 0, "%s", err);
}

Test(opts, workload_file_then_flags_override) {
    char path[] = "/tmp/lg_workload_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# a workload\ntopic: bench\npartitions = 100\nmessage-size: 1024  # 1 KiB\n"
               "producers: 4\nrate: 1000\n");
    fclose(f);
    lg_options_default(&o);
    char *argv[] = {"loadgen", "--rate=2000", "--workload", path};
    int rc = lg_options_parse_args(&o, 4, argv, err, sizeof err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(o.topic, "bench");
    cr_assert_eq(o.partitions, 100);
    cr_assert_eq(o.producers, 4);
    cr_assert_float_eq(o.rate_msgs, 2000, 1e-9); /* the flag wins wherever it stands */
}

Test(opts, bad_values_refused) {
    const char *bad[][2] = {{"acks", "2"},           {"message-size", "10"},
                            {"message-size", "uniform:500-100"}, {"partitions", "0"},
                            {"rate", "-1"},          {"compression", "brotli"},
                            {"bootstrap", "nohost"}, {"cpus", "a,b"},
                            {"nonsense", "1"},       {"sweep", "0"},
                            {"producers", "99999"}, {"batch-size", "1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lg_options_default(&o);
        err[0] = '\0';
        cr_assert_neq(lg_options_set(&o, bad[i][0], bad[i][1], err, sizeof err), 0, "%s=%s",
                      bad[i][0], bad[i][1]);
        cr_assert(err[0] != '\0');
    }
}

Test(opts, check_rejects_impossible_workloads) {
    lg_options_default(&o);
    o.producers = 0;
    o.consumers = 0;
    cr_assert_neq(lg_options_check(&o, err, sizeof err), 0);
    lg_options_default(&o);
    o.message_bytes = o.message_bytes_max = 64 * 1024;
    o.batch_bytes = 16 * 1024;
    cr_assert_neq(lg_options_check(&o, err, sizeof err), 0);
}

Test(opts, group_keys) {
    lg_options_default(&o);
    cr_assert_str_eq(o.group, ""); /* default: assigned partitions */
    cr_assert_eq(o.session_timeout_ms, 10000);
    cr_assert_eq(o.heartbeat_interval_ms, 3000);
    cr_assert_eq(o.auto_commit_interval_ms, 5000);
    char *argv[] = {"loadgen", "--group", "g1", "--heartbeat-interval-ms=500",
                    "--auto-commit-interval-ms", "1000"};
    cr_assert_eq(lg_options_parse_args(&o, 6, argv, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(o.group, "g1");
    cr_assert_eq(o.heartbeat_interval_ms, 500);
    cr_assert_eq(o.auto_commit_interval_ms, 1000);
    cr_assert_eq(lg_options_check(&o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(lg_options_set(&o, "heartbeat-interval-ms", "20000", err, sizeof err), 0);
    cr_assert_eq(lg_options_check(&o, err, sizeof err), -1); /* not below the session */
    cr_assert_eq(lg_options_set(&o, "session-timeout-ms", "5", err, sizeof err), -1);
    cr_assert_eq(lg_options_set(&o, "group", "a\"b", err, sizeof err), -1); /* JSON-safe */
    cr_assert_str_eq(o.group, "g1");
}
