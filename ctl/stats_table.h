/*
 * stats_table.h: `servalctl stats --format table`, the stats JSON as a
 * table for people.
 *
 * Cluster mode: a header (version, mode, phase, booted/workers, old
 * workers, the restart operation in progress or queued, the mold when
 * fork_worker runs one), one row per worker (index, pid, phase, booted,
 * requests, busy/max threads, backlog, RSS and PSS in MiB, state), and a
 * totals line. Single mode: one line. Fields a server does not report (an
 * older serval, or Puma itself) are shown as "-".
 */
#ifndef SV_CTL_STATS_TABLE_H
#define SV_CTL_STATS_TABLE_H

#include <stddef.h>
#include <stdio.h>

/* Render the stats JSON in json[0..len) to out. Returns 0, or SV_EPARSE if it is not a JSON object. */
int ctl_stats_table(const char *json, size_t len, FILE *out);

#endif
