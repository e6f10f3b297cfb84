/* probe.c - host probes for `sluice check`. See probe.h.
 *
 * The io_uring checks create a small scratch ring. Provided buffer rings are probed by
 * registering one (IORING_REGISTER_PBUF_RING, 5.19+); multishot accept and recv and
 * SEND_ZC have no probe bit of their own, so they are inferred from the opcodes that
 * appeared with them plus the kernel version, and multishot accept is also tried for
 * real on a listening socket (the CQE must carry IORING_CQE_F_MORE). */
#include "hw/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "hw/topology.h"

static struct probe_result *add(struct probe_report *r, const char *name, bool ok,
                                bool required, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static struct probe_result *add(struct probe_report *r, const char *name, bool ok,
                                bool required, const char *fmt, ...) {
    if (r->count >= PROBE_MAX_RESULTS) return NULL;
    struct probe_result *res = &r->results[r->count++];
    snprintf(res->name, sizeof res->name, "%s", name);
    res->ok = ok;
    res->required = required;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof res->detail, fmt, ap);
    va_end(ap);
    return res;
}

static void kernel_version(int *major, int *minor, char *text, size_t text_bytes) {
    struct utsname u;
    *major = *minor = 0;
    if (uname(&u) != 0) {
        snprintf(text, text_bytes, "unknown");
        return;
    }
    snprintf(text, text_bytes, "%s", u.release);
    sscanf(u.release, "%d.%d", major, minor);
}

static bool kernel_at_least(int major, int minor, int want_major, int want_minor) {
    return major > want_major || (major == want_major && minor >= want_minor);
}

/* Register and unregister a one-entry provided buffer ring. */
static int try_buf_ring(struct io_uring *ring) {
    size_t bytes = 4096;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return -errno;
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)mem, .ring_entries = 1,
                                   .bgid = 7};
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc == 0) io_uring_unregister_buf_ring(ring, 7);
    munmap(mem, bytes);
    return rc;
}

/* Arm a multishot accept on a loopback listener, connect once, expect F_MORE. */
static int try_multishot_accept(struct io_uring *ring) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int rc = -1, cfd = -1;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &len) != 0) {
        rc = -errno;
        goto out;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, 1);
    io_uring_submit(ring);
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof a) != 0) {
        rc = -errno;
        goto out;
    }
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    rc = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
    if (rc == 0) {
        rc = cqe->res >= 0 && (cqe->flags & IORING_CQE_F_MORE) ? 0 : (cqe->res < 0 ? cqe->res : -EINVAL);
        if (cqe->res >= 0) close(cqe->res);
        io_uring_cqe_seen(ring, cqe);
    }
out:
    if (cfd >= 0) close(cfd);
    close(lfd); /* ends the multishot accept; the scratch ring is torn down next */
    return rc;
}

static void probe_uring(struct probe_report *r, int kmaj, int kmin) {
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    add(r, "io_uring", rc == 0, true, "%s", rc == 0 ? "setup ok" : strerror(-rc));
    if (rc != 0) return;
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    bool ok;
    ok = p && io_uring_opcode_supported(p, IORING_OP_READ_FIXED) &&
         io_uring_opcode_supported(p, IORING_OP_WRITE_FIXED);
    add(r, "io_uring READ/WRITE_FIXED", ok, true, "%s", ok ? "supported" : "missing");
    ok = p && io_uring_opcode_supported(p, IORING_OP_SENDMSG) &&
         io_uring_opcode_supported(p, IORING_OP_RECV) &&
         io_uring_opcode_supported(p, IORING_OP_ACCEPT);
    add(r, "io_uring ACCEPT/RECV/SENDMSG", ok, true, "%s", ok ? "supported" : "missing");
    ok = p && io_uring_opcode_supported(p, IORING_OP_SEND_ZC) &&
         io_uring_opcode_supported(p, IORING_OP_SENDMSG_ZC);
    add(r, "io_uring SEND_ZC/SENDMSG_ZC", ok, false, "%s",
        ok ? "supported (large sends are zero-copy)" : "missing (sends copy)");
    if (p) io_uring_free_probe(p);
    rc = try_buf_ring(&ring);
    add(r, "io_uring provided buffer ring", rc == 0, true, "%s",
        rc == 0 ? "register ok" : strerror(-rc));
    rc = try_multishot_accept(&ring);
    add(r, "io_uring multishot accept", rc == 0, true, "%s",
        rc == 0 ? "armed, CQE with F_MORE" : strerror(-rc));
    ok = kernel_at_least(kmaj, kmin, 6, 0);
    add(r, "io_uring multishot recv", ok, true, "%s",
        ok ? "kernel >= 6.0" : "needs kernel 6.0");
    io_uring_queue_exit(&ring);
}

static long read_meminfo_kib(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long value = -1;
    size_t key_len = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ':') {
            value = strtol(line + key_len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return value;
}

static void probe_memory(struct probe_report *r) {
    long total = read_meminfo_kib("HugePages_Total"), free_pages = read_meminfo_kib("HugePages_Free");
    long size_kib = read_meminfo_kib("Hugepagesize");
    add(r, "hugepages", total > 0, false, "%ld of %ld free (%ld KiB each)%s", free_pages, total,
        size_kib, total > 0 ? "" : "; shards use normal pages (echo N > /proc/sys/vm/nr_hugepages)");
    struct rlimit rl;
    getrlimit(RLIMIT_MEMLOCK, &rl);
    bool root = geteuid() == 0;
    bool unlimited = rl.rlim_cur == RLIM_INFINITY;
    add(r, "memlock limit", true, false, "%s%s",
        unlimited ? "unlimited" : "limited",
        root ? " (root: not enforced for io_uring buffers)" : "");
    if (!unlimited)
        snprintf(r->results[r->count - 1].detail, sizeof r->results[0].detail, "%llu KiB%s",
                 (unsigned long long)rl.rlim_cur / 1024,
                 root ? " (root: locking is not limited)" : " (raise with ulimit -l)");
}

static void probe_cpus(struct probe_report *r, const char *sysfs_root) {
    static struct cpu_topology topo; /* large; probes run once */
    char err[256];
    if (topology_load(&topo, sysfs_root, err, sizeof err) != 0) {
        add(r, "cores", false, true, "%s", err);
        return;
    }
    add(r, "cores", true, true, "%d online, %d physical, %d NUMA node(s)", topo.online_count,
        topo.physical_core_count, topo.node_count);
}

void probe_host(struct probe_report *r, const char *sysfs_root, bool dpdk_built) {
    memset(r, 0, sizeof *r);
    int kmaj, kmin;
    char text[128];
    kernel_version(&kmaj, &kmin, text, sizeof text);
    add(r, "kernel", kernel_at_least(kmaj, kmin, 6, 0), true, "%s (6.0+ required)", text);
    probe_uring(r, kmaj, kmin);
    probe_memory(r);
    probe_cpus(r, sysfs_root);
    add(r, "dpdk", dpdk_built, false, "%s",
        dpdk_built ? "built in (dpdk.enabled=true selects it; sluice check --set ... reports the port)"
                         : "not built in; kernel sockets through io_uring");
}

bool probe_report_ok(const struct probe_report *r) {
    for (int i = 0; i < r->count; i++)
        if (r->results[i].required && !r->results[i].ok) return false;
    return true;
}
