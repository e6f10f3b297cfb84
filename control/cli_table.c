/* cli_table.c - aligned text tables and JSON rows for the admin CLI (see cli_table.h).
 *
 * Rows are kept (cells as NUL-terminated strings in one buffer) until printing, because an
 * aligned table needs every cell's width first. */
#include "control/cli_table.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void cli_table_init(struct cli_table *t, const struct cli_column *columns, int column_count) {
    assert(column_count > 0 && column_count <= CLI_TABLE_MAX_COLUMNS);
    memset(t, 0, sizeof *t);
    t->columns = columns;
    t->column_count = column_count;
}

void cli_table_free(struct cli_table *t) {
    free(t->cell_offsets);
    free(t->text);
    memset(t, 0, sizeof *t);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem_bytes, size_t max) {
    if (need <= *cap) return 0;
    if (need > max) return -1;
    size_t cap_new = *cap ? *cap : 64;
    while (cap_new < need) cap_new *= 2;
    if (cap_new > max) cap_new = max;
    void *q = realloc(*p, cap_new * elem_bytes);
    if (!q) return -1;
    *p = q;
    *cap = cap_new;
    return 0;
}

int cli_table_add_row(struct cli_table *t, const char *const *cells) {
    if (t->row_count >= CLI_TABLE_MAX_ROWS) return -1;
    size_t offsets_need = (t->row_count + 1) * (size_t)t->column_count;
    if (grow((void **)&t->cell_offsets, &t->offsets_cap, offsets_need, sizeof(size_t),
             (size_t)CLI_TABLE_MAX_ROWS * CLI_TABLE_MAX_COLUMNS) != 0)
        return -1;
    for (int i = 0; i < t->column_count; i++) {
        const char *cell = cells[i] ? cells[i] : "";
        size_t len = strnlen(cell, CLI_CELL_MAX_BYTES - 1);
        if (grow((void **)&t->text, &t->text_cap_bytes, t->text_len_bytes + len + 1, 1,
                 CLI_TABLE_MAX_BYTES) != 0)
            return -1;
        t->cell_offsets[t->row_count * (size_t)t->column_count + (size_t)i] = t->text_len_bytes;
        memcpy(t->text + t->text_len_bytes, cell, len);
        t->text[t->text_len_bytes + len] = '\0';
        t->text_len_bytes += len + 1;
    }
    t->row_count++;
    return 0;
}

static const char *cell_at(const struct cli_table *t, size_t row, int col) {
    return t->text + t->cell_offsets[row * (size_t)t->column_count + (size_t)col];
}

void cli_json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p < 0x20) fprintf(out, "\\u%04x", *p);
        else fputc(*p, out);
    }
    fputc('"', out);
}

/* A JSON number cell must look like one; anything else ("-", "") is null. */
static bool is_json_number(const char *s) {
    const char *p = s;
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9') p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return false;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == '\0';
}

static void print_json(const struct cli_table *t, FILE *out) {
    fputc('[', out);
    for (size_t r = 0; r < t->row_count; r++) {
        fputs(r ? ",\n {" : "{", out);
        for (int c = 0; c < t->column_count; c++) {
            const char *cell = cell_at(t, r, c);
            if (c) fputs(", ", out);
            cli_json_string(out, t->columns[c].json_key);
            fputs(": ", out);
            if (t->columns[c].kind == CLI_NUMBER)
                fputs(is_json_number(cell) ? cell : "null", out);
            else
                cli_json_string(out, cell);
        }
        fputc('}', out);
    }
    fputs("]\n", out);
}

/* The last column is not padded (no trailing blanks). */
static void print_cell(FILE *out, const char *cell, size_t width, bool last) {
    if (last) fprintf(out, "%s\n", cell);
    else fprintf(out, "%-*s  ", (int)width, cell);
}

static void print_text(const struct cli_table *t, FILE *out) {
    size_t width[CLI_TABLE_MAX_COLUMNS];
    for (int c = 0; c < t->column_count; c++) width[c] = strlen(t->columns[c].header);
    for (size_t r = 0; r < t->row_count; r++)
        for (int c = 0; c < t->column_count; c++) {
            size_t len = strlen(cell_at(t, r, c));
            if (len > width[c]) width[c] = len;
        }
    for (int c = 0; c < t->column_count; c++)
        print_cell(out, t->columns[c].header, width[c], c + 1 == t->column_count);
    for (size_t r = 0; r < t->row_count; r++)
        for (int c = 0; c < t->column_count; c++)
            print_cell(out, cell_at(t, r, c), width[c], c + 1 == t->column_count);
}

void cli_table_print(const struct cli_table *t, FILE *out, bool json) {
    if (json) print_json(t, out);
    else print_text(t, out);
}
