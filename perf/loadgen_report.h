/* loadgen_report.h - what a run prints: the live progress line, the summary table, JSON. */
#ifndef SLUICE_PERF_LOADGEN_REPORT_H
#define SLUICE_PERF_LOADGEN_REPORT_H

#include <stdio.h>

#include "perf/loadgen.h"

/* One line: elapsed, rates over the last interval, p99 so far, errors. */
void lg_report_progress(FILE *out, double elapsed_s, double interval_s,
                        const struct lg_result *delta, const struct lg_result *total);
void lg_report_workload(FILE *out, const struct lg_options *o);
void lg_report_summary(FILE *out, const struct lg_result *r);
/* A sweep: one row per point. */
void lg_report_sweep(FILE *out, const struct lg_result *points, const double *pct,
                     uint32_t count);
/* Every run as a JSON document: {"workload": {...}, "runs": [...]}. 0 or -1. */
int lg_report_json(const char *path, const struct lg_options *o, const struct lg_result *runs,
                   const double *sweep_pct, uint32_t count);

#endif
