/* test_chunk.c - the chunk pool: alloc to exhaustion, refcounts through interior
 * pointers, registration with a real io_uring and a WRITE_FIXED/READ_FIXED round trip. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/chunk.h"

Test(chunk, rejects_bad_sizes) {
    struct chunk_pool p;
    cr_expect_eq(chunk_pool_init(&p, 1000, 4), -EINVAL);
    cr_expect_eq(chunk_pool_init(&p, 4096, 0), -EINVAL);
    cr_expect_eq(chunk_pool_init(&p, 0, 4), -EINVAL);
}

Test(chunk, alloc_until_exhausted_and_free_by_interior_pointer) {
    struct chunk_pool p;
    cr_assert_eq(chunk_pool_init(&p, 8192, 4), 0);
    void *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = chunk_alloc(&p);
        cr_assert_not_null(c[i]);
        cr_expect_eq((uintptr_t)c[i] % 4096, 0);
        memset(c[i], i + 1, 8192); /* memory is usable end to end */
    }
    cr_expect_null(chunk_alloc(&p), "exhausted pool must return NULL");
    cr_expect_eq(chunk_pool_free_count(&p), 0);
    /* a pointer into the middle of chunk 2 pins and frees chunk 2 */
    char *mid = (char *)c[2] + 5000;
    chunk_ref(&p, mid);
    cr_expect_eq(chunk_refcount(&p, c[2]), 2);
    chunk_unref(&p, c[2]);
    cr_expect_eq(chunk_pool_free_count(&p), 0);
    chunk_unref(&p, mid);
    cr_expect_eq(chunk_pool_free_count(&p), 1);
    void *again = chunk_alloc(&p);
    cr_expect_eq(again, c[2], "freed chunk is reused");
    cr_expect_eq(chunk_start(&p, mid), c[2]);
    for (int i = 0; i < 4; i++) chunk_unref(&p, c[i]);
    cr_expect_eq(chunk_pool_free_count(&p), 4);
    chunk_pool_destroy(&p);
}

Test(chunk, fixed_buffer_io_round_trip) {
    struct chunk_pool p;
    struct io_uring ring;
    cr_assert_eq(io_uring_queue_init(8, &ring, 0), 0);
    cr_assert_eq(chunk_pool_init(&p, 64 * 1024, 8), 0);
    cr_assert_eq(chunk_pool_register(&p, &ring), 0);
    char path[] = "/tmp/sluice-chunk-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    fd = open(path, O_RDWR | O_DIRECT);
    cr_assert(fd >= 0);
    unlink(path);
    uint8_t *w = chunk_alloc(&p), *r = chunk_alloc(&p);
    for (int i = 0; i < 65536; i++) w[i] = (uint8_t)(i * 7 + 3);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_write_fixed(sqe, fd, w, 65536, 0, chunk_buf_index(&p, w));
    struct io_uring_cqe *cqe;
    cr_assert_eq(io_uring_submit_and_wait(&ring, 1), 1);
    cr_assert_eq(io_uring_peek_cqe(&ring, &cqe), 0);
    cr_expect_eq(cqe->res, 65536);
    io_uring_cqe_seen(&ring, cqe);
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read_fixed(sqe, fd, r, 65536, 0, chunk_buf_index(&p, r));
    cr_assert_eq(io_uring_submit_and_wait(&ring, 1), 1);
    cr_assert_eq(io_uring_peek_cqe(&ring, &cqe), 0);
    cr_expect_eq(cqe->res, 65536);
    io_uring_cqe_seen(&ring, cqe);
    cr_expect_eq(memcmp(w, r, 65536), 0);
    chunk_unref(&p, w);
    chunk_unref(&p, r);
    close(fd);
    chunk_pool_destroy(&p);
    io_uring_queue_exit(&ring);
}
