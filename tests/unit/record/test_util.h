/* test_util.h - small helpers shared by the record tests: load a vector file. */
#ifndef SLUICE_TEST_RECORD_UTIL_H
#define SLUICE_TEST_RECORD_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

/* Read VECTOR_DIR/name whole into a malloc'd buffer (the test frees it). */
static inline uint8_t *load_vector(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", VECTOR_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    cr_assert(n >= 0);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
