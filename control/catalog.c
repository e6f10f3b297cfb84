/* catalog.c - the topic catalogue: create/delete/grow/alter, persistence, snapshots.
 * See catalog.h for the model, the file format and the snapshot reclamation rule.
 *
 * Topics are heap-allocated once each and kept in an array of pointers sorted by name, so
 * lookup by name is a binary search; lookup by id is a scan (control plane only, bounded by
 * sluice.max.topics). Every change follows one pattern: validate everything, apply, save the
 * whole catalogue atomically, and undo the change if the save fails. */
#include "control/catalog.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hw/log.h"
#include "storage/record/crc.h"

#define CATALOG_MAX_FILE_BYTES (512LL * 1024 * 1024)

static const char *const internal_topic_names[] = {"__consumer_offsets", "__transaction_state",
                                                   "__cluster_metadata", NULL};

static int16_t fail(struct catalog_result *res, int16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int16_t fail(struct catalog_result *res, int16_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    res->error_code = code;
    return code;
}

static int16_t ok(struct catalog_result *res) {
    res->error_code = CATALOG_ERR_NONE;
    res->message[0] = '\0';
    return CATALOG_ERR_NONE;
}

/* ---- names ---- */

bool catalog_is_internal_topic_name(const char *name) {
    for (size_t i = 0; internal_topic_names[i]; i++)
        if (strcmp(name, internal_topic_names[i]) == 0) return true;
    return false;
}

static bool legal_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int16_t catalog_validate_topic_name(const char *name, struct catalog_result *res) {
    if (!name || name[0] == '\0')
        return fail(res, CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't "
                    "be empty");
    size_t len = strnlen(name, CATALOG_TOPIC_NAME_MAX_BYTES + 1);
    if (len > CATALOG_TOPIC_NAME_MAX_BYTES)
        return fail(res, CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't "
                    "be longer than %d characters", CATALOG_TOPIC_NAME_MAX_BYTES);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return fail(res, CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "Topic name cannot be \".\" or "
                    "\"..\"");
    for (size_t i = 0; i < len; i++)
        if (!legal_name_char(name[i]))
            return fail(res, CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "Topic name \"%.*s\" is "
                        "illegal, it contains a character other than ASCII alphanumerics, '.', "
                        "'_' and '-'", (int)len, name);
    return ok(res);
}

/* Kafka's metric-name collision: equal once every '.' is read as '_'. */
static bool names_collide(const char *a, const char *b) {
    for (;; a++, b++) {
        char ca = *a == '.' ? '_' : *a, cb = *b == '.' ? '_' : *b;
        if (ca != cb) return false;
        if (ca == '\0') return true;
    }
}

/* ---- topic storage ---- */

/* Index of name in the sorted array, or where it would be inserted (*found false). */
static size_t search_name(const struct catalog *cat, const char *name, bool *found) {
    size_t lo = 0, hi = cat->topic_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(cat->topics[mid]->name, name);
        if (c == 0) { *found = true; return mid; }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = false;
    return lo;
}

const struct catalog_topic *catalog_find(const struct catalog *cat, const char *name) {
    bool found;
    size_t i = search_name(cat, name, &found);
    return found ? cat->topics[i] : NULL;
}

const struct catalog_topic *catalog_find_id(const struct catalog *cat, const uint8_t id[16]) {
    for (size_t i = 0; i < cat->topic_count; i++)
        if (memcmp(cat->topics[i]->id, id, 16) == 0) return cat->topics[i];
    return NULL;
}

size_t catalog_topic_count(const struct catalog *cat) { return cat->topic_count; }

const struct catalog_topic *catalog_topic_at(const struct catalog *cat, size_t index) {
    assert(index < cat->topic_count);
    return cat->topics[index];
}

static void topic_free(struct catalog_topic *t) {
    if (!t) return;
    free(t->partition_shard);
    free(t);
}

static int insert_topic(struct catalog *cat, struct catalog_topic *t) {
    bool found;
    size_t at = search_name(cat, t->name, &found);
    if (found) return -1;
    if (cat->topic_count == cat->topic_capacity) {
        size_t cap = cat->topic_capacity ? cat->topic_capacity * 2 : 64;
        struct catalog_topic **grown = realloc(cat->topics, cap * sizeof *grown);
        if (!grown) return -1;
        cat->topics = grown;
        cat->topic_capacity = cap;
    }
    memmove(&cat->topics[at + 1], &cat->topics[at],
            (cat->topic_count - at) * sizeof cat->topics[0]);
    cat->topics[at] = t;
    cat->topic_count++;
    return 0;
}

static struct catalog_topic *remove_topic_at(struct catalog *cat, size_t at) {
    assert(at < cat->topic_count);
    struct catalog_topic *t = cat->topics[at];
    memmove(&cat->topics[at], &cat->topics[at + 1],
            (cat->topic_count - at - 1) * sizeof cat->topics[0]);
    cat->topic_count--;
    return t;
}

uint32_t catalog_default_shard(const char *name, int32_t partition, uint32_t shard_count) {
    assert(shard_count > 0);
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = name; *p; p++) { h ^= (uint8_t)*p; h *= 1099511628211ULL; }
    for (int i = 3; i >= 0; i--) { h ^= (uint8_t)((uint32_t)partition >> (8 * i)); h *= 1099511628211ULL; }
    return (uint32_t)(h % shard_count);
}

/* A random v4 UUID not in use, not all zero, whose base64 form does not start with '-'
 * (Kafka avoids those: they read as command-line options). */
static int new_topic_id(const struct catalog *cat, uint8_t id[16]) {
    for (int attempt = 0; attempt < 16; attempt++) {
        if (getrandom(id, 16, 0) != 16) return -1;
        id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
        id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
        if ((id[0] >> 2) == 62) continue;
        if (!catalog_find_id(cat, id)) return 0;
    }
    return -1;
}

/* ---- persistence ---- */

struct text_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
};

static void buf_printf(struct text_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_printf(struct text_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (int attempt = 0; attempt < 2; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->failed = true; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        if (cap > CATALOG_MAX_FILE_BYTES) { b->failed = true; return; }
        char *grown = realloc(b->data, cap);
        if (!grown) { b->failed = true; return; }
        b->data = grown;
        b->cap = cap;
    }
    b->failed = true;
}

static void catalog_path(const struct catalog *cat, const char *suffix, char *out, size_t out_bytes) {
    snprintf(out, out_bytes, "%s/%s%s", cat->data_dir, CATALOG_FILE_NAME, suffix);
}

static int encode_catalog(const struct catalog *cat, struct text_buf *b) {
    b->cap = 4096;
    b->data = malloc(b->cap);
    if (!b->data) return -1;
    buf_printf(b, "sluice-catalog %d\n", CATALOG_FILE_VERSION);
    for (size_t i = 0; i < cat->topic_count; i++) {
        const struct catalog_topic *t = cat->topics[i];
        buf_printf(b, "topic %s ", t->name);
        for (int k = 0; k < 16; k++) buf_printf(b, "%02x", t->id[k]);
        buf_printf(b, " %" PRId32 " %d %d\n", t->partition_count, t->replication_factor,
                   t->internal ? 1 : 0);
        size_t key_count;
        const struct topic_config_def *defs = topic_config_defs(&key_count);
        for (size_t k = 0; k < key_count; k++)
            if (topic_config_is_set(&t->config, (int)k))
                buf_printf(b, "config %s %s\n", defs[k].name, t->config.values[k]);
        buf_printf(b, "placement");
        for (int32_t p = 0; p < t->partition_count; p++)
            buf_printf(b, " %u", (unsigned)t->partition_shard[p]);
        buf_printf(b, "\n");
    }
    buf_printf(b, "end %zu\n", cat->topic_count);
    if (!b->failed) buf_printf(b, "crc32c %08" PRIx32 "\n", crc32c(b->data, b->len));
    return b->failed ? -1 : 0;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write the whole catalogue to a temp file, fsync, rename over the file, fsync the dir. */
static int catalog_save(const struct catalog *cat, char *err, size_t err_bytes) {
    struct text_buf b = {0};
    char tmp[PATH_MAX + 64], path[PATH_MAX + 64];
    catalog_path(cat, ".tmp", tmp, sizeof tmp);
    catalog_path(cat, "", path, sizeof path);
    int rc = -1;
    if (encode_catalog(cat, &b) != 0) {
        snprintf(err, err_bytes, "catalogue does not fit in %lld bytes or out of memory",
                 CATALOG_MAX_FILE_BYTES);
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, err_bytes, "open %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, b.data, b.len) != 0 || fsync(fd) != 0) {
        snprintf(err, err_bytes, "write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0 || fsync_dir(cat->data_dir) != 0) {
        snprintf(err, err_bytes, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(b.data);
    return rc;
}

/* Save after a change; on failure log and answer KAFKA_STORAGE_ERROR (caller undoes). */
static int16_t persist(struct catalog *cat, struct catalog_result *res) {
    char err[256];
    if (catalog_save(cat, err, sizeof err) != 0) {
        log_error("catalog_save_failed", "dir=%s err=\"%s\"", cat->data_dir, err);
        return fail(res, CATALOG_ERR_KAFKA_STORAGE_ERROR, "catalogue could not be saved: %s",
                    err);
    }
    cat->version++;
    return ok(res);
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) return false;
    *out = v;
    return true;
}

static bool parse_hex_id(const char *s, uint8_t id[16]) {
    if (!s || strlen(s) != 32) return false;
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0')
                       : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10) : 16u;
            if (d > 15) return false;
            v = v * 16 + d;
        }
        id[i] = (uint8_t)v;
    }
    return true;
}

struct load_state {
    struct catalog *cat;
    struct catalog_topic *topic; /* being read; owned here until placed */
    bool placed;                 /* its placement line was seen */
    bool ended;
    bool remapped;               /* a stored shard was >= shard_count */
    int line_no;
};

static int load_topic_line(struct load_state *st, char **save, char *err, size_t err_bytes) {
    char *name = strtok_r(NULL, " ", save), *hex = strtok_r(NULL, " ", save);
    char *parts = strtok_r(NULL, " ", save), *rf = strtok_r(NULL, " ", save);
    char *internal = strtok_r(NULL, " ", save);
    uint64_t n_parts, n_rf, n_internal;
    struct catalog_result res;
    struct catalog_topic *t = calloc(1, sizeof *t);
    if (!t) { snprintf(err, err_bytes, "out of memory"); return -1; }
    st->topic = t;
    st->placed = false;
    if (!name || catalog_validate_topic_name(name, &res) != 0 || !parse_hex_id(hex, t->id) ||
        !parse_u64(parts, CATALOG_MAX_PARTITIONS_LIMIT, &n_parts) || n_parts == 0 ||
        !parse_u64(rf, 1, &n_rf) || n_rf != 1 || !parse_u64(internal, 1, &n_internal) ||
        strtok_r(NULL, " ", save)) {
        snprintf(err, err_bytes, "line %d: malformed topic line", st->line_no);
        return -1;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->partition_count = (int32_t)n_parts;
    t->replication_factor = 1;
    t->internal = n_internal == 1;
    topic_config_init(&t->config);
    if (catalog_find(st->cat, name) || catalog_find_id(st->cat, t->id)) {
        snprintf(err, err_bytes, "line %d: duplicate topic name or id (%s)", st->line_no, name);
        return -1;
    }
    return 0;
}

static int load_placement_line(struct load_state *st, char **save, char *err,
                               size_t err_bytes) {
    struct catalog_topic *t = st->topic;
    t->partition_shard = malloc((size_t)t->partition_count * sizeof t->partition_shard[0]);
    if (!t->partition_shard) { snprintf(err, err_bytes, "out of memory"); return -1; }
    for (int32_t p = 0; p < t->partition_count; p++) {
        uint64_t shard;
        if (!parse_u64(strtok_r(NULL, " ", save), CATALOG_MAX_SHARDS - 1, &shard)) {
            snprintf(err, err_bytes, "line %d: placement of %.64s has fewer than %" PRId32
                     " valid shards", st->line_no, t->name, t->partition_count);
            return -1;
        }
        if (shard >= st->cat->shard_count) {
            shard %= st->cat->shard_count;
            st->remapped = true;
        }
        t->partition_shard[p] = (uint16_t)shard;
    }
    if (strtok_r(NULL, " ", save)) {
        snprintf(err, err_bytes, "line %d: placement of %.64s has more than %" PRId32 " shards",
                 st->line_no, t->name, t->partition_count);
        return -1;
    }
    if (insert_topic(st->cat, t) != 0) {
        snprintf(err, err_bytes, "out of memory");
        return -1;
    }
    st->topic = NULL;
    return 0;
}

static int load_line(struct load_state *st, char *line, char *err, size_t err_bytes) {
    char *save = NULL;
    char *word = strtok_r(line, " ", &save);
    if (st->ended || !word) {
        snprintf(err, err_bytes, "line %d: unexpected content", st->line_no);
        return -1;
    }
    if (strcmp(word, "topic") == 0) {
        if (st->topic) {
            snprintf(err, err_bytes, "line %d: topic %.64s has no placement line", st->line_no,
                     st->topic->name);
            return -1;
        }
        return load_topic_line(st, &save, err, err_bytes);
    }
    if (strcmp(word, "config") == 0 && st->topic) {
        char *key = strtok_r(NULL, " ", &save), *value = strtok_r(NULL, " ", &save);
        char msg[192];
        if (!key || !value || strtok_r(NULL, " ", &save) ||
            topic_config_set(&st->topic->config, key, value, msg, sizeof msg) != 0) {
            snprintf(err, err_bytes, "line %d: bad config line", st->line_no);
            return -1;
        }
        return 0;
    }
    if (strcmp(word, "placement") == 0 && st->topic)
        return load_placement_line(st, &save, err, err_bytes);
    if (strcmp(word, "end") == 0 && !st->topic) {
        uint64_t count;
        if (!parse_u64(strtok_r(NULL, " ", &save), CATALOG_MAX_TOPICS_LIMIT, &count) ||
            count != st->cat->topic_count || strtok_r(NULL, " ", &save)) {
            snprintf(err, err_bytes, "line %d: end line does not match %zu topics", st->line_no,
                     st->cat->topic_count);
            return -1;
        }
        st->ended = true;
        return 0;
    }
    snprintf(err, err_bytes, "line %d: unexpected '%s'", st->line_no, word);
    return -1;
}

/* Split data (NUL-terminated, checksum line removed) into lines and load each. */
static int load_lines(struct catalog *cat, char *data, bool *remapped, char *err,
                      size_t err_bytes) {
    struct load_state st = {.cat = cat};
    char *line = data;
    int rc = 0;
    for (;;) {
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = '\0';
        st.line_no++;
        if (st.line_no == 1) {
            char *save = NULL, *magic = strtok_r(line, " ", &save);
            uint64_t version;
            if (!magic || strcmp(magic, "sluice-catalog") != 0 ||
                !parse_u64(strtok_r(NULL, " ", &save), UINT32_MAX, &version)) {
                snprintf(err, err_bytes, "not a sluice catalogue");
                rc = -1;
                break;
            }
            if (version != CATALOG_FILE_VERSION) {
                snprintf(err, err_bytes, "catalogue version %" PRIu64 " is not supported (this "
                         "build reads version %d)", version, CATALOG_FILE_VERSION);
                rc = -1;
                break;
            }
        } else if (load_line(&st, line, err, err_bytes) != 0) {
            rc = -1;
            break;
        }
        line = nl + 1;
    }
    if (rc == 0 && (*line != '\0' || !st.ended)) {
        snprintf(err, err_bytes, "truncated: no end line");
        rc = -1;
    }
    topic_free(st.topic);
    *remapped = st.remapped;
    return rc;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t err_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) { *out = NULL; return 0; }
        snprintf(err, err_bytes, "open %.160s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    char *data = NULL;
    if (fstat(fd, &sb) != 0 || sb.st_size > CATALOG_MAX_FILE_BYTES) {
        snprintf(err, err_bytes, "%.160s: cannot stat or larger than %lld bytes", path,
                 CATALOG_MAX_FILE_BYTES);
        goto fail;
    }
    data = malloc((size_t)sb.st_size + 1);
    if (!data) { snprintf(err, err_bytes, "out of memory"); goto fail; }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t n = read(fd, data + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { snprintf(err, err_bytes, "read %.160s failed", path); goto fail; }
        got += (size_t)n;
    }
    data[got] = '\0';
    close(fd);
    *out = data;
    *len = got;
    return 0;
fail:
    free(data);
    close(fd);
    return -1;
}

/* Check the trailing "crc32c XXXXXXXX\n" line; cut it off (data stays NUL-terminated). */
static int check_checksum(char *data, size_t len, char *err, size_t err_bytes) {
    if (len == 0 || data[len - 1] != '\n') {
        snprintf(err, err_bytes, "truncated: does not end with a checksum line");
        return -1;
    }
    size_t start = len - 1;
    while (start > 0 && data[start - 1] != '\n') start--;
    char *line = data + start;
    unsigned stored;
    char tail;
    if (len - start != sizeof "crc32c 00000000\n" - 1 ||
        sscanf(line, "crc32c %8x%c", &stored, &tail) != 2 || tail != '\n') {
        snprintf(err, err_bytes, "truncated: no checksum line");
        return -1;
    }
    uint32_t actual = crc32c(data, start);
    if (actual != stored) {
        snprintf(err, err_bytes, "checksum mismatch (stored %08x, computed %08" PRIx32 ")",
                 stored, actual);
        return -1;
    }
    *line = '\0';
    return 0;
}

static int catalog_load(struct catalog *cat, char *err, size_t err_bytes) {
    char path[PATH_MAX + 64];
    char msg[256];
    catalog_path(cat, "", path, sizeof path);
    char *data = NULL;
    size_t len = 0;
    if (read_file(path, &data, &len, msg, sizeof msg) != 0) {
        snprintf(err, err_bytes, "catalogue %s: %s", path, msg);
        return -1;
    }
    if (!data) return 1; /* no catalogue yet */
    bool remapped = false;
    int rc = check_checksum(data, len, msg, sizeof msg);
    if (rc == 0) rc = load_lines(cat, data, &remapped, msg, sizeof msg);
    free(data);
    if (rc != 0) {
        snprintf(err, err_bytes, "catalogue %s is corrupt, refusing to start (it would lose "
                 "topics; restore it or move it away): %s", path, msg);
        return -1;
    }
    if (remapped) {
        log_warn("catalog_placement_remapped", "shards=%u reason=\"stored shard beyond the "
                 "shard count\"", cat->shard_count);
        return 1; /* save the new placement */
    }
    return 0;
}

/* ---- open / close ---- */

int catalog_open(struct catalog *cat, const char *data_dir, const struct config *broker,
                 uint32_t shard_count, char *err, size_t err_bytes) {
    memset(cat, 0, sizeof *cat);
    if (shard_count == 0 || shard_count > CATALOG_MAX_SHARDS) {
        snprintf(err, err_bytes, "shard count %u outside [1, %d]", shard_count,
                 CATALOG_MAX_SHARDS);
        return -1;
    }
    if (strlen(data_dir) + sizeof CATALOG_FILE_NAME + 8 >= sizeof cat->data_dir) {
        snprintf(err, err_bytes, "data dir path too long");
        return -1;
    }
    snprintf(cat->data_dir, sizeof cat->data_dir, "%s", data_dir);
    cat->broker = broker;
    cat->shard_count = shard_count;
    cat->max_topics = config_get_i64(broker, "sluice.max.topics");
    cat->max_partitions_per_topic = config_get_i64(broker, "sluice.max.partitions.per.topic");
    cat->clamp_replication_factor = config_get_bool(broker, "sluice.replication.factor.clamp");
    if (topic_config_check_broker(broker, err, err_bytes) != 0) return -1;
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_bytes, "mkdir %s: %s", data_dir, strerror(errno));
        return -1;
    }
    int rc = catalog_load(cat, err, err_bytes);
    if (rc < 0) {
        catalog_close(cat);
        return -1;
    }
    if (rc == 1 && catalog_save(cat, err, err_bytes) != 0) {
        catalog_close(cat);
        return -1;
    }
    log_info("catalog_open", "dir=%s topics=%zu shards=%u", data_dir, cat->topic_count,
             shard_count);
    return 0;
}

void catalog_close(struct catalog *cat) {
    for (size_t i = 0; i < cat->topic_count; i++) topic_free(cat->topics[i]);
    free(cat->topics);
    cat->topics = NULL;
    cat->topic_count = cat->topic_capacity = 0;
}

/* ---- changes ---- */

static int16_t resolve_replication_factor(const struct catalog *cat, int16_t requested,
                                          int16_t *out, struct catalog_result *res) {
    int64_t rf = requested == -1 ? config_get_i64(cat->broker, "default.replication.factor")
                                 : requested;
    if (rf <= 0)
        return fail(res, CATALOG_ERR_INVALID_REPLICATION_FACTOR, "Replication factor must be "
                    "larger than 0, or -1 to use the default value.");
    if (rf > 1 && !cat->clamp_replication_factor)
        return fail(res, CATALOG_ERR_INVALID_REPLICATION_FACTOR, "Unable to replicate the "
                    "partition %" PRId64 " time(s): The target replication factor of %" PRId64
                    " cannot be reached because only 1 broker(s) are registered (set "
                    "sluice.replication.factor.clamp=true to clamp it to 1).", rf, rf);
    if (rf > 1)
        log_warn("catalog_replication_factor_clamped", "requested=%" PRId64 " used=1", rf);
    *out = 1;
    return ok(res);
}

static int16_t resolve_partitions(const struct catalog *cat, int32_t requested, int32_t *out,
                                  struct catalog_result *res) {
    int64_t n = requested == -1 ? config_get_i64(cat->broker, "num.partitions") : requested;
    if (n <= 0)
        return fail(res, CATALOG_ERR_INVALID_PARTITIONS, "Number of partitions was set to an "
                    "invalid non-positive value.");
    if (n > cat->max_partitions_per_topic || n > CATALOG_MAX_PARTITIONS_LIMIT)
        return fail(res, CATALOG_ERR_INVALID_PARTITIONS, "Number of partitions %" PRId64
                    " is larger than sluice.max.partitions.per.topic=%" PRId64, n,
                    cat->max_partitions_per_topic);
    *out = (int32_t)n;
    return ok(res);
}

static int16_t check_new_name(const struct catalog *cat, const struct catalog_create_request *req,
                              struct catalog_result *res) {
    if (catalog_validate_topic_name(req->name, res) != 0) return res->error_code;
    if (catalog_find(cat, req->name))
        return fail(res, CATALOG_ERR_TOPIC_ALREADY_EXISTS, "Topic '%s' already exists.",
                    req->name);
    if (!req->internal && catalog_is_internal_topic_name(req->name))
        return fail(res, CATALOG_ERR_INVALID_REQUEST, "Creation of internal topic %s is "
                    "prohibited.", req->name);
    for (size_t i = 0; i < cat->topic_count; i++)
        if (names_collide(cat->topics[i]->name, req->name))
            return fail(res, CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "Topic '%s' collides with "
                        "existing topic: %s", req->name, cat->topics[i]->name);
    return ok(res);
}

/* A new topic with a fresh id and default placement; NULL when memory or entropy ran out. */
static struct catalog_topic *topic_new(const struct catalog *cat,
                                       const struct catalog_create_request *req,
                                       int32_t partitions, int16_t rf,
                                       const struct topic_config *tc) {
    struct catalog_topic *t = calloc(1, sizeof *t);
    uint16_t *shards = malloc((size_t)partitions * sizeof *shards);
    if (!t || !shards || new_topic_id(cat, t->id) != 0) {
        free(t);
        free(shards);
        return NULL;
    }
    snprintf(t->name, sizeof t->name, "%s", req->name);
    t->partition_count = partitions;
    t->replication_factor = rf;
    t->internal = req->internal;
    t->config = *tc;
    t->partition_shard = shards;
    for (int32_t p = 0; p < partitions; p++)
        shards[p] = (uint16_t)catalog_default_shard(t->name, p, cat->shard_count);
    return t;
}

int16_t catalog_create_topic(struct catalog *cat, const struct catalog_create_request *req,
                             bool validate_only, struct catalog_result *res) {
    if (check_new_name(cat, req, res) != 0) return res->error_code;
    if ((int64_t)cat->topic_count >= cat->max_topics)
        return fail(res, CATALOG_ERR_POLICY_VIOLATION, "The broker holds %zu topics, the limit "
                    "set by sluice.max.topics.", cat->topic_count);
    int32_t partitions = 0;
    int16_t rf = 0;
    if (resolve_partitions(cat, req->partition_count, &partitions, res) != 0 ||
        resolve_replication_factor(cat, req->replication_factor, &rf, res) != 0)
        return res->error_code;
    struct topic_config tc;
    topic_config_init(&tc);
    for (size_t i = 0; i < req->config_count; i++) {
        const char *name = req->configs[i].name ? req->configs[i].name : "(null)";
        if (topic_config_set(&tc, name, req->configs[i].value, res->message,
                             sizeof res->message) != 0)
            return res->error_code = CATALOG_ERR_INVALID_CONFIG;
    }
    if (validate_only) return ok(res);
    if (!req->internal && strpbrk(req->name, "._"))
        log_warn("catalog_topic_name_dot_underscore", "topic=%s reason=\"topics with a period "
                 "or underscore could collide in metric names\"", req->name);
    struct catalog_topic *t = topic_new(cat, req, partitions, rf, &tc);
    if (!t)
        return fail(res, CATALOG_ERR_UNKNOWN_SERVER_ERROR, "out of memory or entropy");
    if (insert_topic(cat, t) != 0) {
        topic_free(t);
        return fail(res, CATALOG_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
    }
    if (persist(cat, res) != 0) {
        bool found;
        size_t at = search_name(cat, t->name, &found);
        assert(found);
        topic_free(remove_topic_at(cat, at));
        return res->error_code;
    }
    log_info("catalog_topic_created", "topic=%s partitions=%" PRId32, t->name, partitions);
    return ok(res);
}

static int16_t delete_at(struct catalog *cat, size_t at, struct catalog_result *res) {
    struct catalog_topic *t = remove_topic_at(cat, at);
    if (persist(cat, res) != 0) {
        int rc = insert_topic(cat, t); /* capacity is still there: cannot fail */
        assert(rc == 0);
        (void)rc;
        return res->error_code;
    }
    log_info("catalog_topic_deleted", "topic=%s", t->name);
    topic_free(t);
    return ok(res);
}

int16_t catalog_delete_topic(struct catalog *cat, const char *name, struct catalog_result *res) {
    bool found;
    size_t at = name ? search_name(cat, name, &found) : 0;
    if (!name || !found)
        return fail(res, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION, "This server does not host "
                    "this topic-partition.");
    return delete_at(cat, at, res);
}

int16_t catalog_delete_topic_id(struct catalog *cat, const uint8_t id[16],
                                struct catalog_result *res) {
    for (size_t i = 0; i < cat->topic_count; i++)
        if (memcmp(cat->topics[i]->id, id, 16) == 0) return delete_at(cat, i, res);
    return fail(res, CATALOG_ERR_UNKNOWN_TOPIC_ID, "This server does not host this topic ID.");
}

int16_t catalog_create_partitions(struct catalog *cat, const char *name,
                                  int32_t new_partition_count, bool validate_only,
                                  struct catalog_result *res) {
    bool found;
    size_t at = search_name(cat, name, &found);
    if (!found)
        return fail(res, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION, "Topic '%s' does not exist.",
                    name);
    struct catalog_topic *t = cat->topics[at];
    if (new_partition_count < t->partition_count)
        return fail(res, CATALOG_ERR_INVALID_PARTITIONS, "Topic currently has %" PRId32
                    " partitions, which is higher than the requested %" PRId32 ".",
                    t->partition_count, new_partition_count);
    if (new_partition_count == t->partition_count)
        return fail(res, CATALOG_ERR_INVALID_PARTITIONS, "Topic already has %" PRId32
                    " partitions.", t->partition_count);
    if (new_partition_count > cat->max_partitions_per_topic)
        return fail(res, CATALOG_ERR_INVALID_PARTITIONS, "Number of partitions %" PRId32
                    " is larger than sluice.max.partitions.per.topic=%" PRId64,
                    new_partition_count, cat->max_partitions_per_topic);
    if (validate_only) return ok(res);
    uint16_t *shards = malloc((size_t)new_partition_count * sizeof *shards);
    if (!shards) return fail(res, CATALOG_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
    memcpy(shards, t->partition_shard, (size_t)t->partition_count * sizeof *shards);
    for (int32_t p = t->partition_count; p < new_partition_count; p++)
        shards[p] = (uint16_t)catalog_default_shard(t->name, p, cat->shard_count);
    uint16_t *old_shards = t->partition_shard;
    int32_t old_count = t->partition_count;
    t->partition_shard = shards;
    t->partition_count = new_partition_count;
    if (persist(cat, res) != 0) {
        t->partition_shard = old_shards;
        t->partition_count = old_count;
        free(shards);
        return res->error_code;
    }
    free(old_shards);
    log_info("catalog_partitions_added", "topic=%s partitions=%" PRId32, name,
             new_partition_count);
    return ok(res);
}

int16_t catalog_alter_topic_config(struct catalog *cat, const char *name,
                                   const struct topic_config_alter_op *ops, size_t op_count,
                                   bool validate_only, struct catalog_result *res) {
    bool found;
    size_t at = search_name(cat, name, &found);
    if (!found)
        return fail(res, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION, "Topic '%s' does not exist.",
                    name);
    struct catalog_topic *t = cat->topics[at];
    struct topic_config staged = t->config;
    int16_t rc = topic_config_alter(&staged, cat->broker, ops, op_count, res->message,
                                    sizeof res->message);
    if (rc != 0) return res->error_code = rc;
    if (validate_only) return ok(res);
    struct topic_config old = t->config;
    t->config = staged;
    if (persist(cat, res) != 0) {
        t->config = old;
        return res->error_code;
    }
    return ok(res);
}

/* ---- snapshots ---- */

static int compare_snapshot_ids(const void *a, const void *b) {
    return memcmp(((const struct catalog_snapshot_id *)a)->id,
                  ((const struct catalog_snapshot_id *)b)->id, 16);
}

struct catalog_snapshot *catalog_snapshot_build(const struct catalog *cat, uint64_t epoch) {
    size_t n = cat->topic_count, shard_entries = 0, name_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        shard_entries += (size_t)cat->topics[i]->partition_count;
        name_bytes += strlen(cat->topics[i]->name) + 1;
    }
    size_t topics_off = sizeof(struct catalog_snapshot);
    size_t ids_off = topics_off + n * sizeof(struct catalog_snapshot_topic);
    size_t shards_off = ids_off + n * sizeof(struct catalog_snapshot_id);
    size_t names_off = shards_off + shard_entries * sizeof(uint16_t);
    char *block = malloc(names_off + name_bytes);
    if (!block) return NULL;
    struct catalog_snapshot *snap = (struct catalog_snapshot *)block;
    struct catalog_snapshot_topic *topics = (struct catalog_snapshot_topic *)(block + topics_off);
    struct catalog_snapshot_id *ids = (struct catalog_snapshot_id *)(block + ids_off);
    uint16_t *shards = (uint16_t *)(block + shards_off);
    char *names = block + names_off;
    for (size_t i = 0; i < n; i++) {
        const struct catalog_topic *t = cat->topics[i];
        size_t len = strlen(t->name) + 1;
        memcpy(names, t->name, len);
        memcpy(shards, t->partition_shard, (size_t)t->partition_count * sizeof *shards);
        topics[i].name = names;
        memcpy(topics[i].id, t->id, 16);
        topics[i].partition_count = t->partition_count;
        topics[i].internal = t->internal;
        topics[i].partition_shard = shards;
        topic_config_resolve(&t->config, cat->broker, &topics[i].config);
        memcpy(ids[i].id, t->id, 16);
        ids[i].topic_index = (uint32_t)i;
        names += len;
        shards += t->partition_count;
    }
    qsort(ids, n, sizeof ids[0], compare_snapshot_ids);
    snap->epoch = epoch;
    snap->topic_count = n;
    snap->topics = topics;
    snap->by_id = ids;
    return snap;
}

void catalog_snapshot_free(struct catalog_snapshot *snap) { free(snap); }

const struct catalog_snapshot_topic *catalog_snapshot_find(const struct catalog_snapshot *snap,
                                                           const char *name) {
    size_t lo = 0, hi = snap->topic_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(snap->topics[mid].name, name);
        if (c == 0) return &snap->topics[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const struct catalog_snapshot_topic *catalog_snapshot_find_id(
    const struct catalog_snapshot *snap, const uint8_t id[16]) {
    size_t lo = 0, hi = snap->topic_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(snap->by_id[mid].id, id, 16);
        if (c == 0) return &snap->topics[snap->by_id[mid].topic_index];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int catalog_snapshot_partition_shard(const struct catalog_snapshot_topic *topic,
                                     int32_t partition) {
    if (!topic || partition < 0 || partition >= topic->partition_count) return -1;
    return topic->partition_shard[partition];
}

/* ---- publication ---- */

int catalog_publisher_init(struct catalog_publisher *pub, uint32_t reader_count,
                           const struct catalog *cat) {
    assert(reader_count <= CATALOG_MAX_READERS);
    memset(pub, 0, sizeof *pub);
    pub->reader_count = reader_count;
    for (uint32_t i = 0; i < CATALOG_MAX_READERS; i++)
        atomic_init(&pub->slots[i].announced_epoch, 0);
    struct catalog_snapshot *first = catalog_snapshot_build(cat, 1);
    if (!first) return -1;
    pub->next_epoch = 2;
    atomic_init(&pub->current, first);
    return 0;
}

size_t catalog_publisher_reclaim(struct catalog_publisher *pub) {
    uint64_t oldest_announced = UINT64_MAX;
    for (uint32_t i = 0; i < pub->reader_count; i++) {
        uint64_t e = atomic_load_explicit(&pub->slots[i].announced_epoch, memory_order_acquire);
        if (e < oldest_announced) oldest_announced = e;
    }
    size_t kept = 0;
    for (size_t i = 0; i < pub->retired_count; i++) {
        struct catalog_snapshot *s = pub->retired[i];
        if (s->epoch < oldest_announced) catalog_snapshot_free(s);
        else pub->retired[kept++] = s;
    }
    pub->retired_count = kept;
    return kept;
}

int catalog_publish(struct catalog_publisher *pub, const struct catalog *cat) {
    if (catalog_publisher_reclaim(pub) >= CATALOG_MAX_RETIRED) return -1;
    struct catalog_snapshot *snap = catalog_snapshot_build(cat, pub->next_epoch);
    if (!snap) return -1;
    pub->next_epoch++;
    struct catalog_snapshot *old =
        atomic_exchange_explicit(&pub->current, snap, memory_order_acq_rel);
    assert(old && old->epoch < snap->epoch);
    pub->retired[pub->retired_count++] = old;
    catalog_publisher_reclaim(pub);
    return 0;
}

void catalog_publisher_destroy(struct catalog_publisher *pub) {
    for (size_t i = 0; i < pub->retired_count; i++) catalog_snapshot_free(pub->retired[i]);
    pub->retired_count = 0;
    catalog_snapshot_free(atomic_load_explicit(&pub->current, memory_order_acquire));
    atomic_store_explicit(&pub->current, NULL, memory_order_release);
}

void catalog_reader_init(struct catalog_reader *reader, struct catalog_publisher *pub,
                         uint32_t slot) {
    assert(slot < pub->reader_count);
    reader->pub = pub;
    reader->slot = slot;
    reader->held = NULL;
}

const struct catalog_snapshot *catalog_reader_refresh(struct catalog_reader *reader) {
    struct catalog_publisher *pub = reader->pub;
    const struct catalog_snapshot *cur =
        atomic_load_explicit(&pub->current, memory_order_acquire);
    if (cur != reader->held) {
        reader->held = cur;
        atomic_store_explicit(&pub->slots[reader->slot].announced_epoch, cur->epoch,
                              memory_order_release);
    }
    return reader->held;
}
