/* state.c: what a serval process publishes (state.h): the state file, the control server's setup, single-mode stats and metrics, backtraces. */
#include "cluster/state.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cluster/certs.h"
#include "cluster/handover.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/time.h"
#include "os/chan.h"
#include "os/backtrace.h"
#include "os/fd.h"
#include "os/file.h"
#include "os/listen.h"

_Static_assert(SV_CONTROL_TOKEN_MAX < SV_CONTROL_TOKEN_BYTES, "a configured token fits the control server");
_Static_assert(SV_CONTROL_TOKEN_MAX < sizeof(((sv_runtime_t *)0)->control_token), "and the runtime");

void sv_state_write(const sv_runtime_t *rt)
{
    const char *path = rt->cfg.state_path;
    if (!path)
        return;
    char cwd[4096] = "";
    if (!getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';
    sv_buf_t b = SV_BUF_INIT;
    sv_buf_printf(&b, "---\npid: %d\n", (int)getpid());
    if (rt->cfg.control_url) {
        sv_buf_printf(&b, "control_url: %s\n", rt->cfg.control_url);
        if (rt->control_token[0])
            sv_buf_printf(&b, "control_auth_token: %s\n", rt->control_token);
    }
    sv_buf_printf(&b, "running_from: \"%s\"\n", cwd);
    /* the token is a secret: only the owner reads a state file that holds one */
    int rc = sv_file_write_atomic(path, b.data, b.len, rt->control_token[0] ? 0600 : 0640);
    if (rc < 0)
        sv_log_error("! cannot write state file %s: %s", path, sv_strerror(rc));
    sv_buf_free(&b);
}

void sv_state_remove(const sv_runtime_t *rt)
{
    if (rt->cfg.state_path)
        unlink(rt->cfg.state_path);
}

sv_control_t *sv_state_control_open(sv_runtime_t *rt, sv_loop_t *loop, sv_control_cb cb, void *arg, bool *failed)
{
    *failed = false;
    char *rec = NULL;
    sv_handover_take(rt, "control", &rec, 1);
    char uri[600] = "";
    if (rec)
        sv_msg_get(rec, "uri", uri, sizeof(uri));
    /* the new configuration moved or dropped the control server: let the old socket go */
    if (rec && (!rt->cfg.control_url || strcmp(uri, rt->cfg.control_url) != 0)) {
        close((int)sv_msg_int(rec, "fd", -1));
        if (sv_msg_int(rec, "created", 0) && !strncmp(uri, "unix://", 7)) {
            sv_bind_t b;
            char e[200];
            if (sv_bind_parse(uri, &b, e, sizeof(e)) == 0)
                unlink(b.path);
        }
        free(rec);
        rec = NULL;
    }
    if (!rt->cfg.control_url)
        return NULL;
    sv_control_opts_t o = {.url = rt->cfg.control_url, .inherited_fd = -1, .data_only = rt->cfg.control_data_only,
                           .data_url = rt->cfg.control_data_url};
    char handed_token[128] = "";
    if (rec) {
        o.inherited_fd = (int)sv_msg_int(rec, "fd", -1);
        o.inherited_created = sv_msg_int(rec, "created", 0) == 1;
        sv_msg_get(rec, "token", handed_token, sizeof(handed_token));
        free(rec);
    }
    if (rt->cfg.control_no_token)
        rt->control_token[0] = '\0';
    else if (rt->cfg.control_token)
        snprintf(rt->control_token, sizeof(rt->control_token), "%s", rt->cfg.control_token);
    else if (handed_token[0]) /* keep the token clients already hold */
        snprintf(rt->control_token, sizeof(rt->control_token), "%s", handed_token);
    else
        sv_control_random_token(rt->control_token);
    o.token = rt->control_token[0] ? rt->control_token : NULL;
    char err[700];
    sv_control_t *c = sv_control_open(&o, loop, cb, arg, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "serval: %s\n", err);
        *failed = true;
        return NULL;
    }
    sv_log("* Starting control server on %s%s", sv_control_display(c), o.data_only ? " (data_only)" : "");
    if (sv_control_data_display(c))
        sv_log("* Starting data-only control server on %s", sv_control_data_display(c));
    return c;
}

static void iso(sv_json_t *w, const char *key, time_t t)
{
    char buf[32];
    sv_json_key(w, key);
    sv_json_str(w, sv_iso8601(buf, sizeof(buf), t));
}

void sv_state_single_stats(const sv_runtime_t *rt, sv_server_t *srv, const sv_oplog_t *ops, sv_buf_t *out)
{
    sv_server_stats_t st;
    sv_server_stats(srv, &st);
    sv_json_t w;
    sv_json_init(&w, out);
    sv_json_obj(&w);
    iso(&w, "started_at", rt->started_at);
    sv_json_key(&w, "backlog");
    sv_json_int(&w, st.backlog);
    sv_json_key(&w, "running");
    sv_json_int(&w, st.running);
    sv_json_key(&w, "pool_capacity");
    sv_json_int(&w, st.pool_capacity);
    sv_json_key(&w, "busy_threads");
    sv_json_int(&w, st.busy_threads);
    sv_json_key(&w, "max_threads");
    sv_json_int(&w, st.max_threads);
    sv_json_key(&w, "requests_count");
    sv_json_uint(&w, st.requests_count);
    sv_json_key(&w, "connections");
    sv_json_int(&w, st.connections);
    sv_json_key(&w, "app_timeouts");
    sv_json_uint(&w, st.app_timeouts);
    sv_json_key(&w, "crashes"); /* a crash ends single mode: always 0 in a live process */
    sv_json_int(&w, 0);
    sv_json_key(&w, "versions");
    sv_json_obj(&w);
    sv_json_key(&w, "serval");
    sv_json_str(&w, SERVAL_VERSION);
    sv_json_key(&w, "app_abi");
    sv_json_int(&w, SERVAL_ABI_VERSION);
    sv_json_obj_end(&w);
    sv_json_key(&w, "mode");
    sv_json_str(&w, "single");
    sv_json_key(&w, "restart");
    sv_oplog_json(ops, &w);
    sv_json_key(&w, "config");
    sv_config_to_json(&rt->cfg, &w);
    sv_certs_stats(rt, &w);
    sv_json_obj_end(&w);
}

void sv_metric_head(sv_buf_t *out, const char *name, const char *type, const char *help)
{
    sv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void sv_metric(sv_buf_t *out, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        sv_buf_printf(out, "%s{%s} %.17g\n", name, labels, value);
    else
        sv_buf_printf(out, "%s %.17g\n", name, value);
}

static void op_metrics(const sv_oplog_t *ops, sv_buf_t *out)
{
    sv_metric_head(out, "serval_restarts_total", "counter", "Restart operations by kind and outcome.");
    for (int k = 0; k < SV_OP_KINDS; k++) {
        char labels[96];
        snprintf(labels, sizeof(labels), "kind=\"%s\",outcome=\"succeeded\"", sv_op_kind_name((sv_op_kind_t)k));
        sv_metric(out, "serval_restarts_total", labels, (double)ops->outcomes[k][1]);
        snprintf(labels, sizeof(labels), "kind=\"%s\",outcome=\"failed\"", sv_op_kind_name((sv_op_kind_t)k));
        sv_metric(out, "serval_restarts_total", labels, (double)ops->outcomes[k][0]);
    }
}

void sv_state_single_metrics(const sv_runtime_t *rt, sv_server_t *srv, const sv_oplog_t *ops, sv_buf_t *out)
{
    sv_server_stats_t st;
    sv_server_stats(srv, &st);
    sv_metric_head(out, "serval_up", "gauge", "1 while serval serves.");
    sv_metric(out, "serval_up", NULL, 1);
    sv_metric_head(out, "serval_start_time_seconds", "gauge", "Start time of the process (unix seconds).");
    sv_metric(out, "serval_start_time_seconds", NULL, (double)rt->started_at);
    sv_metric_head(out, "serval_requests_total", "counter", "Requests answered.");
    sv_metric(out, "serval_requests_total", "worker=\"single\"", (double)st.requests_count);
    sv_metric_head(out, "serval_threads_running", "gauge", "Serving threads started.");
    sv_metric(out, "serval_threads_running", "worker=\"single\"", st.running);
    sv_metric_head(out, "serval_threads_busy", "gauge", "App calls running.");
    sv_metric(out, "serval_threads_busy", "worker=\"single\"", st.busy_threads);
    sv_metric_head(out, "serval_pool_capacity", "gauge", "App calls that could start now.");
    sv_metric(out, "serval_pool_capacity", "worker=\"single\"", st.pool_capacity);
    sv_metric_head(out, "serval_backlog", "gauge", "Connections waiting in the listen queues.");
    sv_metric(out, "serval_backlog", "worker=\"single\"", st.backlog);
    sv_metric_head(out, "serval_connections", "gauge", "Open client connections.");
    sv_metric(out, "serval_connections", "worker=\"single\"", st.connections);
    sv_metric_head(out, "serval_app_timeouts_total", "counter", "App calls that ran past app_timeout.");
    sv_metric(out, "serval_app_timeouts_total", NULL, (double)st.app_timeouts);
    sv_metric_head(out, "serval_crashes_total", "counter", "Workers that died of a crash while serving.");
    sv_metric(out, "serval_crashes_total", NULL, 0);
    op_metrics(ops, out);
    sv_certs_metrics(rt, out);
}

int sv_state_operation(sv_oplog_t *ops, const char *query, sv_buf_t *out)
{
    int id = 0;
    for (const char *p = query; p && *p;) {
        size_t n = strcspn(p, "&;");
        if (n > 3 && !strncmp(p, "id=", 3))
            id = atoi(p + 3);
        p += n + (p[n] ? 1 : 0);
    }
    sv_op_t *op = sv_oplog_find(ops, id);
    if (!op) {
        sv_buf_printf(out, "{ \"error\": \"no operation %d\" }", id);
        return 404;
    }
    sv_json_t w;
    sv_json_init(&w, out);
    sv_op_json(op, &w);
    return 200;
}

void sv_state_gc_stats(sv_buf_t *out)
{
    struct mallinfo2 mi = mallinfo2();
    sv_buf_printf(out,
                  "{\"arena\":%zu,\"ordblks\":%zu,\"hblks\":%zu,\"hblkhd\":%zu,\"uordblks\":%zu,"
                  "\"fordblks\":%zu,\"keepcost\":%zu}",
                  mi.arena, mi.ordblks, mi.hblks, mi.hblkhd, mi.uordblks, mi.fordblks, mi.keepcost);
}

static void thread_json(void *arg, const char *name, const sv_bt_t *bt)
{
    sv_json_t *w = arg;
    char frame[400];
    sv_json_obj(w);
    sv_json_key(w, "name");
    sv_json_str(w, name);
    sv_json_key(w, "backtrace");
    sv_json_arr(w);
    for (int i = 0; bt && i < bt->n; i++) {
        sv_bt_frame_name(bt, i, frame, sizeof(frame));
        sv_json_str(w, frame);
    }
    sv_json_arr_end(w);
    sv_json_obj_end(w);
}

void sv_state_backtraces(const char *label, sv_server_t *srv, sv_buf_t *out)
{
    sv_bt_t bt;
    sv_bt_capture_self(&bt);
    sv_json_t w;
    sv_json_init(&w, out);
    sv_json_arr(&w);
    char name[128];
    snprintf(name, sizeof(name), "Thread: TID-%ld %s", (long)syscall(SYS_gettid), label);
    thread_json(&w, name, &bt);
    if (srv)
        sv_server_thread_stacks(srv, thread_json, &w);
    sv_json_arr_end(&w);
}

void sv_state_log_backtrace(const char *label)
{
    sv_bt_t bt;
    sv_bt_capture_self(&bt);
    char name[400];
    sv_log("Thread: TID-%ld %s", (long)syscall(SYS_gettid), label);
    for (int i = 0; i < bt.n; i++) {
        sv_bt_frame_name(&bt, i, name, sizeof(name));
        sv_log("    #%d %s", i, name);
    }
}
