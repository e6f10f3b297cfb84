/* producer_ids.c - producer id blocks persisted in the data dir, and InitProducerId
 * (see producer_ids.h for the design). */
#include "control/producer_ids.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/log.h"

#define ERR_COORDINATOR_NOT_AVAILABLE 15
#define ERR_INVALID_REQUEST 42
#define ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED 53

int producer_ids_open(struct producer_ids *p, const char *data_dir, char *err, size_t err_bytes) {
    memset(p, 0, sizeof *p);
    int n = snprintf(p->dir, sizeof p->dir, "%s", data_dir);
    if (n <= 0 || (size_t)n >= sizeof p->dir) {
        snprintf(err, err_bytes, "producer ids: data dir path too long");
        return -1;
    }
    char path[PRODUCER_IDS_PATH_BYTES + 32];
    snprintf(path, sizeof path, "%s/%s", p->dir, PRODUCER_IDS_FILE);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 0; /* a new data dir: ids start at 0 */
        snprintf(err, err_bytes, "producer ids: %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[64] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    char *end = NULL;
    errno = 0;
    long long mark = got > 0 ? strtoll(buf, &end, 10) : -1;
    if (got == 0 || errno != 0 || mark < 0 || !end || (*end != '\n' && *end != '\0')) {
        snprintf(err, err_bytes, "producer ids: %s is malformed", path);
        return -1;
    }
    p->next_id = p->reserved_end = (int64_t)mark;
    log_info("producer_ids_loaded", "next_id=%" PRId64, p->next_id);
    return 0;
}

/* Persist mark as the new high-water mark: temp file, fdatasync, rename, dir fsync. */
static int persist_mark(const struct producer_ids *p, int64_t mark) {
    char path[PRODUCER_IDS_PATH_BYTES + 32], tmp[PRODUCER_IDS_PATH_BYTES + 40], buf[32];
    snprintf(path, sizeof path, "%s/%s", p->dir, PRODUCER_IDS_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int len = snprintf(buf, sizeof buf, "%" PRId64 "\n", mark);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = 0;
    if (write(fd, buf, (size_t)len) != len) rc = errno ? -errno : -EIO;
    if (rc == 0 && fdatasync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc == 0) {
        int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) rc = -errno;
        else {
            if (fsync(dfd) != 0) rc = -errno;
            close(dfd);
        }
    }
    if (rc != 0) (void)unlink(tmp);
    return rc;
}

int producer_ids_allocate(struct producer_ids *p, int64_t *id) {
    if (p->next_id == p->reserved_end) {
        if (p->reserved_end > INT64_MAX - PRODUCER_ID_BLOCK_SIZE) return -EOVERFLOW;
        int64_t mark = p->reserved_end + PRODUCER_ID_BLOCK_SIZE;
        int rc = persist_mark(p, mark);
        if (rc != 0) {
            log_error("producer_ids_persist_failed", "mark=%" PRId64 " errno=%d", mark, -rc);
            return rc;
        }
        p->reserved_end = mark;
    }
    *id = p->next_id++;
    p->allocated++;
    return 0;
}

void producer_ids_init_producer(struct producer_ids *p,
                                const struct kafka_init_producer_id_request *req,
                                struct kafka_init_producer_id_response *resp) {
    resp->throttle_time_ms = 0;
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    if (req->transactional_id.len == 0) {
        resp->error_code = ERR_INVALID_REQUEST;
        return;
    }
    if (req->transactional_id.len > 0) {
        resp->error_code = ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        log_info("init_producer_id_transactional_refused", "transactional_id_bytes=%d",
                 req->transactional_id.len);
        return;
    }
    int64_t id;
    if (producer_ids_allocate(p, &id) != 0) {
        resp->error_code = ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    resp->error_code = 0;
    resp->producer_id = id;
    resp->producer_epoch = 0;
    log_info("init_producer_id", "producer_id=%" PRId64 " previous_id=%" PRId64
             " previous_epoch=%d", id, req->producer_id, req->producer_epoch);
}
