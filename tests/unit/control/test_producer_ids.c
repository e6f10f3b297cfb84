/* test_producer_ids.c - producer id blocks in a real temp data dir: ids increase, the
 * persisted mark covers every id handed out, a reopen never hands out an id again, a
 * malformed mark is refused; InitProducerId's answers without and with a transactional
 * id, and for a KIP-360 re-init. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/producer_ids.h"

static char dir[64];

static void setup(void) {
    strcpy(dir, "/tmp/test_producer_ids_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static long long read_mark(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, PRODUCER_IDS_FILE);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long long v = -1;
    cr_assert_eq(fscanf(f, "%lld", &v), 1);
    fclose(f);
    return v;
}

TestSuite(producer_ids, .init = setup, .fini = teardown);

Test(producer_ids, increasing_and_never_reused_across_reopen) {
    struct producer_ids p;
    char err[128];
    cr_assert_eq(producer_ids_open(&p, dir, err, sizeof err), 0);
    int64_t last = -1;
    for (int i = 0; i < 2500; i++) {
        int64_t id;
        cr_assert_eq(producer_ids_allocate(&p, &id), 0);
        cr_assert_gt(id, last);
        last = id;
        cr_assert_lt(id, read_mark(), "the persisted mark covers every id handed out");
    }
    cr_assert_eq(last, 2499);
    cr_assert_eq(read_mark(), 3000);
    struct producer_ids q; /* a restart */
    cr_assert_eq(producer_ids_open(&q, dir, err, sizeof err), 0);
    int64_t id;
    cr_assert_eq(producer_ids_allocate(&q, &id), 0);
    cr_assert_eq(id, 3000, "resumes past the whole reserved block");
    cr_assert_eq(read_mark(), 4000);
    struct producer_ids r; /* a restart right after, nothing handed out in between */
    cr_assert_eq(producer_ids_open(&r, dir, err, sizeof err), 0);
    cr_assert_eq(producer_ids_allocate(&r, &id), 0);
    cr_assert_eq(id, 4000);
}

Test(producer_ids, malformed_mark_is_refused) {
    char path[128], err[128];
    snprintf(path, sizeof path, "%s/%s", dir, PRODUCER_IDS_FILE);
    FILE *f = fopen(path, "w");
    fputs("12x\n", f);
    fclose(f);
    struct producer_ids p;
    cr_assert_eq(producer_ids_open(&p, dir, err, sizeof err), -1);
    cr_assert(strstr(err, "malformed") != NULL, "%s", err);
    f = fopen(path, "w");
    fclose(f); /* empty */
    cr_assert_eq(producer_ids_open(&p, dir, err, sizeof err), -1);
}

Test(producer_ids, init_producer_id_answers) {
    struct producer_ids p;
    char err[128];
    cr_assert_eq(producer_ids_open(&p, dir, err, sizeof err), 0);
    struct kafka_init_producer_id_request req = {.transactional_id = kafka_str_from_cstr(NULL),
                                                 .producer_id = -1, .producer_epoch = -1};
    struct kafka_init_producer_id_response resp;
    producer_ids_init_producer(&p, &req, &resp);
    cr_assert_eq(resp.error_code, 0);
    cr_assert_eq(resp.producer_id, 0);
    cr_assert_eq(resp.producer_epoch, 0);
    req.producer_id = 0; /* KIP-360: an idempotent producer asking for a new epoch */
    req.producer_epoch = 0;
    producer_ids_init_producer(&p, &req, &resp);
    cr_assert_eq(resp.error_code, 0);
    cr_assert_eq(resp.producer_id, 1, "a new id, as Kafka does without a transactional id");
    cr_assert_eq(resp.producer_epoch, 0);
    req.transactional_id = kafka_str_from_cstr("");
    producer_ids_init_producer(&p, &req, &resp);
    cr_assert_eq(resp.error_code, 42);
    cr_assert_eq(resp.producer_id, -1);
    req.transactional_id = kafka_str_from_cstr("txn");
    producer_ids_init_producer(&p, &req, &resp);
    cr_assert_eq(resp.error_code, 53);
    cr_assert_eq(resp.producer_id, -1);
    cr_assert_eq(resp.producer_epoch, -1);
}
