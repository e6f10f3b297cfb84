/* segment.c - segment files, in-memory indexes, index persistence and the recovery scan.
 * See segment.h for the file formats. */
#include "storage/segment.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/record/batch.h"

#define SCAN_WINDOW_BYTES (4u << 20)
#define SCAN_MAX_BATCH_BYTES (256u << 20)

void segment_file_name(char *out, size_t out_bytes, int64_t base_offset, const char *suffix) {
    snprintf(out, out_bytes, "%020" PRId64 "%s", base_offset, suffix);
}

int segment_init(struct segment *seg, int64_t base_offset, uint64_t segment_bytes,
                 uint32_t index_interval_bytes) {
    memset(seg, 0, sizeof *seg);
    assert(index_interval_bytes > 0);
    seg->base_offset = base_offset;
    seg->next_offset = base_offset;
    seg->max_timestamp_ms = -1;
    seg->fd = -1;
    uint64_t cap = segment_bytes / index_interval_bytes + 2;
    if (cap > UINT32_MAX / 4) cap = UINT32_MAX / 4;
    seg->index_capacity = (uint32_t)cap;
    /* One time entry per batch that raises the maximum: allow 4 per index interval. */
    seg->time_index_capacity = (uint32_t)(cap * 4);
    seg->index = calloc(seg->index_capacity, sizeof *seg->index);
    seg->time_index = calloc(seg->time_index_capacity, sizeof *seg->time_index);
    if (!seg->index || !seg->time_index) {
        segment_free(seg);
        return -ENOMEM;
    }
    return 0;
}

void segment_free(struct segment *seg) {
    if (seg->fd >= 0) close(seg->fd);
    free(seg->index);
    free(seg->time_index);
    seg->index = NULL;
    seg->time_index = NULL;
    seg->fd = -1;
}

void segment_shrink_indexes(struct segment *seg) {
    uint32_t n = seg->index_count ? seg->index_count : 1;
    struct offset_index_entry *idx = realloc(seg->index, n * sizeof *idx);
    if (idx) {
        seg->index = idx;
        seg->index_capacity = n;
    }
    n = seg->time_index_count ? seg->time_index_count : 1;
    struct time_index_entry *tidx = realloc(seg->time_index, n * sizeof *tidx);
    if (tidx) {
        seg->time_index = tidx;
        seg->time_index_capacity = n;
    }
}

bool segment_index_has_room(const struct segment *seg) {
    return seg->index_count < seg->index_capacity &&
           seg->time_index_count < seg->time_index_capacity;
}

void segment_note_batch(struct segment *seg, uint32_t position, int64_t base_offset,
                        int64_t next_offset, int64_t max_timestamp_ms, uint32_t size_bytes,
                        uint32_t index_interval_bytes) {
    assert(base_offset >= seg->next_offset && next_offset > base_offset);
    assert(segment_index_has_room(seg));
    uint32_t rel = (uint32_t)(base_offset - seg->base_offset);
    if (seg->index_count == 0 || seg->bytes_since_index >= index_interval_bytes) {
        seg->index[seg->index_count++] = (struct offset_index_entry){rel, position};
        seg->bytes_since_index = 0;
    }
    if (max_timestamp_ms > seg->max_timestamp_ms) {
        seg->time_index[seg->time_index_count++] =
            (struct time_index_entry){max_timestamp_ms, rel, position};
        seg->max_timestamp_ms = max_timestamp_ms;
    }
    seg->bytes_since_index += size_bytes;
    seg->next_offset = next_offset;
    seg->size_bytes = (uint64_t)position + size_bytes;
}

uint32_t segment_lookup_position(const struct segment *seg, int64_t offset,
                                 int64_t *entry_offset) {
    *entry_offset = seg->base_offset;
    if (seg->index_count == 0 || offset < seg->base_offset) return 0;
    uint32_t lo = 0, hi = seg->index_count; /* find last entry with offset <= target */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (seg->base_offset + seg->index[mid].relative_offset <= offset) lo = mid;
        else hi = mid;
    }
    *entry_offset = seg->base_offset + seg->index[lo].relative_offset;
    return seg->index[lo].position;
}

uint32_t segment_indexed_position_before(const struct segment *seg, uint64_t end_position) {
    uint32_t lo = 0, hi = seg->index_count; /* first entry with position >= end */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (seg->index[mid].position < end_position) lo = mid + 1;
        else hi = mid;
    }
    return lo == 0 ? 0 : seg->index[lo - 1].position;
}

bool segment_lookup_time(const struct segment *seg, int64_t timestamp_ms, int64_t *offset,
                         uint32_t *position) {
    if (seg->time_index_count == 0 || seg->max_timestamp_ms < timestamp_ms) return false;
    uint32_t lo = 0, hi = seg->time_index_count; /* first entry with ts >= target */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (seg->time_index[mid].timestamp_ms < timestamp_ms) lo = mid + 1;
        else hi = mid;
    }
    assert(lo < seg->time_index_count);
    *offset = seg->base_offset + seg->time_index[lo].relative_offset;
    *position = seg->time_index[lo].position;
    return true;
}

static int open_in(const char *dir, int64_t base, const char *suffix, int flags) {
    char name[SEGMENT_NAME_BYTES], path[4096];
    segment_file_name(name, sizeof name, base, suffix);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return open(path, flags, 0644);
}

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t pos) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(pos + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int64_t count_nonzero_tail(int fd, uint64_t from, uint64_t file_bytes, uint8_t *buf) {
    int64_t nonzero = 0;
    for (uint64_t pos = from; pos < file_bytes;) {
        size_t want = file_bytes - pos < SCAN_WINDOW_BYTES ? file_bytes - pos : SCAN_WINDOW_BYTES;
        ssize_t n = pread_full(fd, buf, want, pos);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; i++) nonzero += buf[i] != 0;
        pos += (uint64_t)n;
    }
    return nonzero;
}

int64_t segment_scan(struct segment *seg, const char *dir, uint64_t position,
                     int64_t start_offset, uint32_t index_interval_bytes,
                     char *reason, size_t reason_bytes) {
    snprintf(reason, reason_bytes, "end");
    int fd = open_in(dir, seg->base_offset, ".log", O_RDONLY);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    uint64_t file_bytes = (uint64_t)st.st_size;
    uint8_t *window = malloc(SCAN_WINDOW_BYTES);
    if (!window) {
        close(fd);
        return -ENOMEM;
    }
    seg->size_bytes = position;
    seg->next_offset = start_offset > seg->next_offset ? start_offset : seg->next_offset;
    uint64_t pos = position;
    int64_t rc = 0;
    while (pos < file_bytes) {
        size_t want = file_bytes - pos < SCAN_WINDOW_BYTES ? file_bytes - pos : SCAN_WINDOW_BYTES;
        ssize_t n = pread_full(fd, window, want, pos);
        if (n < 0) {
            rc = n;
            break;
        }
        size_t at = 0;
        bool stop = false;
        while (!stop) {
            struct record_batch_header h;
            size_t avail = (size_t)n - at;
            enum record_error err = record_batch_validate(window + at, avail, &h);
            if (err == RECORD_ERR_TRUNCATED && avail < SCAN_WINDOW_BYTES && at > 0 &&
                pos + at + avail < file_bytes)
                break; /* batch crosses the window: refill from its start */
            if (err == RECORD_ERR_TRUNCATED && at == 0 && (size_t)n == SCAN_WINDOW_BYTES) {
                /* A batch larger than the window: validate it with its own buffer. */
                struct record_batch_header hh;
                if (record_batch_header_parse(window, avail, &hh) == RECORD_OK &&
                    record_batch_size_bytes(&hh) <= SCAN_MAX_BATCH_BYTES &&
                    pos + record_batch_size_bytes(&hh) <= file_bytes) {
                    size_t big_bytes = record_batch_size_bytes(&hh);
                    uint8_t *big = malloc(big_bytes);
                    if (big && pread_full(fd, big, big_bytes, pos) == (ssize_t)big_bytes)
                        err = record_batch_validate(big, big_bytes, &h);
                    free(big);
                }
            }
            int64_t base = h.base_offset;
            if (err == RECORD_OK && base < seg->next_offset) err = RECORD_ERR_BAD_COUNT;
            if (err == RECORD_OK && !segment_index_has_room(seg)) err = RECORD_ERR_TOO_LARGE;
            if (err != RECORD_OK) {
                snprintf(reason, reason_bytes, "%s", record_error_str(err));
                stop = true;
                pos += at;
                goto done;
            }
            uint32_t size = (uint32_t)record_batch_size_bytes(&h);
            segment_note_batch(seg, (uint32_t)(pos + at), base,
                               record_batch_last_offset(&h) + 1, h.max_timestamp, size,
                               index_interval_bytes);
            at += size;
            if (at >= (size_t)n) break;
        }
        if (at == 0) break;
        pos += at;
    }
done:
    if (rc == 0) {
        if (pos > file_bytes) pos = file_bytes;
        seg->size_bytes = pos;
        rc = count_nonzero_tail(fd, pos, file_bytes, window);
    }
    free(window);
    close(fd);
    return rc;
}

void segment_index_file(const struct segment *seg, enum segment_index which,
                        struct iovec iov[2], struct segment_index_trailer *t, char *name,
                        size_t name_bytes) {
    bool offsets = which == SEGMENT_OFFSET_INDEX;
    uint32_t count = offsets ? seg->index_count : seg->time_index_count;
    *t = (struct segment_index_trailer){SEGMENT_INDEX_TRAILER_MAGIC, count, seg->size_bytes,
                                        seg->next_offset, seg->max_timestamp_ms};
    iov[0].iov_base = offsets ? (void *)seg->index : (void *)seg->time_index;
    iov[0].iov_len = (size_t)count * (offsets ? sizeof *seg->index : sizeof *seg->time_index);
    iov[1].iov_base = t;
    iov[1].iov_len = sizeof *t;
    segment_file_name(name, name_bytes, seg->base_offset, offsets ? ".index" : ".timeindex");
}

static int write_index_file(const char *dir, const struct segment *seg,
                            enum segment_index which) {
    struct iovec iov[2];
    struct segment_index_trailer t;
    char name[SEGMENT_NAME_BYTES], path[4096];
    segment_index_file(seg, which, iov, &t, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    size_t total = iov[0].iov_len + iov[1].iov_len;
    int rc = 0;
    if (writev(fd, iov, 2) != (ssize_t)total) rc = errno ? -errno : -EIO;
    close(fd);
    return rc;
}

int segment_write_indexes(const struct segment *seg, const char *dir) {
    int rc = write_index_file(dir, seg, SEGMENT_OFFSET_INDEX);
    if (rc == 0) rc = write_index_file(dir, seg, SEGMENT_TIME_INDEX);
    return rc;
}

static bool load_index_file(const char *dir, int64_t base, const char *suffix, void *entries,
                            size_t entry_bytes, uint32_t capacity, uint32_t *count,
                            struct segment_index_trailer *t) {
    int fd = open_in(dir, base, suffix, O_RDONLY);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof *t &&
              ((size_t)st.st_size - sizeof *t) % entry_bytes == 0;
    if (ok) {
        size_t n = ((size_t)st.st_size - sizeof *t) / entry_bytes;
        ok = n <= capacity &&
             pread_full(fd, t, sizeof *t, (uint64_t)st.st_size - sizeof *t) == sizeof *t &&
             t->magic == SEGMENT_INDEX_TRAILER_MAGIC && t->entry_count == n &&
             pread_full(fd, entries, n * entry_bytes, 0) == (ssize_t)(n * entry_bytes);
        if (ok) *count = (uint32_t)n;
    }
    close(fd);
    return ok;
}

bool segment_load_indexes(struct segment *seg, const char *dir) {
    struct segment_index_trailer t1, t2;
    uint32_t n1 = 0, n2 = 0;
    if (!load_index_file(dir, seg->base_offset, ".index", seg->index, sizeof *seg->index,
                         seg->index_capacity, &n1, &t1) ||
        !load_index_file(dir, seg->base_offset, ".timeindex", seg->time_index,
                         sizeof *seg->time_index, seg->time_index_capacity, &n2, &t2))
        return false;
    if (t1.covered_size_bytes != t2.covered_size_bytes || t1.next_offset != t2.next_offset ||
        t1.next_offset < seg->base_offset)
        return false;
    /* Entries must be ordered and inside the covered size. */
    for (uint32_t i = 0; i < n1; i++)
        if (seg->index[i].position >= t1.covered_size_bytes ||
            (i > 0 && seg->index[i].relative_offset <= seg->index[i - 1].relative_offset))
            return false;
    for (uint32_t i = 0; i < n2; i++)
        if (seg->time_index[i].position >= t1.covered_size_bytes ||
            (i > 0 && seg->time_index[i].timestamp_ms <= seg->time_index[i - 1].timestamp_ms))
            return false;
    seg->index_count = n1;
    seg->time_index_count = n2;
    seg->size_bytes = t1.covered_size_bytes;
    seg->next_offset = t1.next_offset;
    seg->max_timestamp_ms = t1.max_timestamp_ms;
    seg->bytes_since_index = 0;
    return true;
}
