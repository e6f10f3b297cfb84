/* cli_table.h - the admin CLI's output: an aligned text table (as kafka-consumer-groups.sh
 * --describe prints) or, with --json, a JSON array of objects, one per row.
 *
 * A table has up to CLI_TABLE_MAX_COLUMNS columns, each with a header ("CURRENT-OFFSET"),
 * a JSON key ("current_offset") and a kind: text cells become JSON strings, number cells
 * JSON numbers ("-" or an empty cell becomes null). Cells are copied into one growing
 * buffer bounded by CLI_TABLE_MAX_BYTES; rows beyond CLI_TABLE_MAX_ROWS are refused
 * (cli_table_add_row returns -1) rather than grown without bound. */
#ifndef SLUICE_CONTROL_CLI_TABLE_H
#define SLUICE_CONTROL_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_TABLE_MAX_COLUMNS 12
#define CLI_TABLE_MAX_ROWS (1u << 20)
#define CLI_TABLE_MAX_BYTES (256u << 20)
#define CLI_CELL_MAX_BYTES 4096

enum cli_column_kind { CLI_TEXT, CLI_NUMBER };

struct cli_column {
    const char *header;
    const char *json_key;
    enum cli_column_kind kind;
};

struct cli_table {
    const struct cli_column *columns;
    int column_count;
    size_t row_count;
    size_t *cell_offsets; /* row_count * column_count offsets into text */
    size_t offsets_cap;
    char *text;
    size_t text_len_bytes;
    size_t text_cap_bytes;
};

void cli_table_init(struct cli_table *t, const struct cli_column *columns, int column_count);
void cli_table_free(struct cli_table *t);
/* One row: column_count printf-formatted cells given as already-formatted strings. */
int cli_table_add_row(struct cli_table *t, const char *const *cells);
/* Aligned text (header + rows), or JSON when json is set. */
void cli_table_print(const struct cli_table *t, FILE *out, bool json);
/* A JSON string literal of s (quotes included). */
void cli_json_string(FILE *out, const char *s);

#endif
