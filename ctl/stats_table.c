#include "stats_table.h"

#include <inttypes.h>
#include <string.h>

#include "core/err.h"
#include "json_read.h"

#define CELL 32

static const char *cell_int(char *buf, const jr_node_t *n)
{
    if (!n || n->type != JR_NUMBER)
        return "-";
    snprintf(buf, CELL, "%" PRId64, jr_int(n, 0));
    return buf;
}

/* Memory is sampled every few seconds: 0 means not measured yet. */
static const char *cell_mib(char *buf, const jr_node_t *n)
{
    if (!n || n->type != JR_NUMBER || n->num <= 0)
        return "-";
    snprintf(buf, CELL, "%.1f", jr_num(n, 0) / (1024.0 * 1024.0));
    return buf;
}

static void print_op(const jr_doc_t *d, const jr_node_t *op, const char *label, FILE *out)
{
    if (!op || op->type != JR_OBJECT)
        return;
    fprintf(out, "%s: %s #%" PRId64 " %s", label, jr_str(jr_get(d, op, "kind"), "?"), jr_int(jr_get(d, op, "id"), 0),
            jr_str(jr_get(d, op, "state"), "?"));
    int64_t total = jr_int(jr_get(d, op, "total"), 0);
    if (total > 0)
        fprintf(out, ", %" PRId64 "/%" PRId64 " workers done", jr_int(jr_get(d, op, "done"), 0), total);
    const char *trigger = jr_str(jr_get(d, op, "trigger"), NULL);
    if (trigger)
        fprintf(out, " (trigger: %s)", trigger);
    fputc('\n', out);
}

static void print_restart(const jr_doc_t *d, const jr_node_t *root, FILE *out)
{
    const jr_node_t *restart = jr_get(d, root, "restart");
    print_op(d, jr_get(d, restart, "current"), "restart", out);
    print_op(d, jr_get(d, restart, "queued"), "queued", out);
}

static void print_mold(const jr_doc_t *d, const jr_node_t *root, FILE *out)
{
    const jr_node_t *mold = jr_get(d, root, "mold");
    if (!mold || mold->type != JR_OBJECT)
        return;
    char pss[CELL];
    fprintf(out, "mold: pid %" PRId64 ", generation %" PRId64 ", %s, PSS %s MiB\n", jr_int(jr_get(d, mold, "pid"), 0),
            jr_int(jr_get(d, mold, "generation"), 0), jr_bool(jr_get(d, mold, "ready"), false) ? "ready" : "not ready",
            cell_mib(pss, jr_path(d, mold, "memory.pss")));
}

static void print_header(const jr_doc_t *d, const jr_node_t *root, FILE *out)
{
    int64_t workers = jr_int(jr_get(d, root, "workers"), 0);
    fprintf(out, "serval %s, cluster mode: phase %" PRId64 ", %" PRId64 "/%" PRId64 " workers booted",
            jr_str(jr_path(d, root, "versions.serval"), "?"), jr_int(jr_get(d, root, "phase"), 0),
            jr_int(jr_get(d, root, "booted_workers"), 0), workers);
    const jr_node_t *target = jr_get(d, root, "target_workers");
    if (target && jr_int(target, 0) != workers)
        fprintf(out, " (target %" PRId64 ")", jr_int(target, 0));
    fprintf(out, ", %" PRId64 " old, started %s\n", jr_int(jr_get(d, root, "old_workers"), 0),
            jr_str(jr_get(d, root, "started_at"), "?"));
    print_restart(d, root, out);
    print_mold(d, root, out);
}

static const char *worker_state(const jr_doc_t *d, const jr_node_t *w)
{
    const char *state = jr_str(jr_get(d, w, "state"), NULL);
    if (state)
        return state;
    return jr_bool(jr_get(d, w, "booted"), false) ? "serving" : "booting";
}

static void print_worker(const jr_doc_t *d, const jr_node_t *w, FILE *out)
{
    const jr_node_t *st = jr_get(d, w, "last_status");
    char idx[CELL], pid[CELL], phase[CELL], req[CELL], backlog[CELL], rss[CELL], pss[CELL], threads[2 * CELL];
    const jr_node_t *busy = jr_get(d, st, "busy_threads"), *max = jr_get(d, st, "max_threads");
    if (busy && max)
        snprintf(threads, sizeof(threads), "%" PRId64 "/%" PRId64, jr_int(busy, 0), jr_int(max, 0));
    else
        snprintf(threads, sizeof(threads), "-");
    fprintf(out, "%6s %8s %6s %7s %10s %8s %8s %8s %8s  %s\n", cell_int(idx, jr_get(d, w, "index")),
            cell_int(pid, jr_get(d, w, "pid")), cell_int(phase, jr_get(d, w, "phase")),
            jr_bool(jr_get(d, w, "booted"), false) ? "yes" : "no", cell_int(req, jr_get(d, st, "requests_count")),
            threads, cell_int(backlog, jr_get(d, st, "backlog")), cell_mib(rss, jr_path(d, w, "memory.rss")),
            cell_mib(pss, jr_path(d, w, "memory.pss")), worker_state(d, w));
}

static void print_cluster(const jr_doc_t *d, const jr_node_t *root, FILE *out)
{
    print_header(d, root, out);
    fprintf(out, "%6s %8s %6s %7s %10s %8s %8s %8s %8s  %s\n", "worker", "pid", "phase", "booted", "requests",
            "threads", "backlog", "RSS MiB", "PSS MiB", "state");
    const jr_node_t *ws = jr_get(d, root, "worker_status");
    int64_t requests = 0;
    for (int i = 0; ws && i < ws->count; i++) {
        const jr_node_t *w = jr_at(d, ws, i);
        requests += jr_int(jr_path(d, w, "last_status.requests_count"), 0);
        print_worker(d, w, out);
    }
    const jr_node_t *total_pss = jr_path(d, root, "memory.total_pss");
    fprintf(out, "total: %" PRId64 " requests", requests);
    if (total_pss) {
        char pss[CELL], master[CELL];
        fprintf(out, ", PSS %s MiB (master %s MiB)", cell_mib(pss, total_pss),
                cell_mib(master, jr_path(d, root, "memory.master.pss")));
    }
    fputc('\n', out);
}

static void print_single(const jr_doc_t *d, const jr_node_t *root, FILE *out)
{
    char req[CELL], busy[CELL], max[CELL], backlog[CELL], conns[CELL];
    fprintf(out,
            "serval %s, single mode: %s requests, threads %s/%s busy, backlog %s, connections %s, started %s\n",
            jr_str(jr_path(d, root, "versions.serval"), "?"), cell_int(req, jr_get(d, root, "requests_count")),
            cell_int(busy, jr_get(d, root, "busy_threads")), cell_int(max, jr_get(d, root, "max_threads")),
            cell_int(backlog, jr_get(d, root, "backlog")), cell_int(conns, jr_get(d, root, "connections")),
            jr_str(jr_get(d, root, "started_at"), "?"));
    print_restart(d, root, out);
}

int ctl_stats_table(const char *json, size_t len, FILE *out)
{
    jr_doc_t d;
    int rc = jr_parse(&d, json, len);
    const jr_node_t *root = jr_root(&d);
    if (rc == 0 && (!root || root->type != JR_OBJECT))
        rc = SV_EPARSE;
    if (rc == 0 && jr_get(&d, root, "worker_status"))
        print_cluster(&d, root, out);
    else if (rc == 0)
        print_single(&d, root, out);
    jr_free(&d);
    return rc;
}
