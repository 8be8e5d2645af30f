/* ops.c: the restart operations log (ops.h): ids, states, merging and queueing, its JSON and handover. */
#include "cluster/ops.h"

#include <stdio.h>
#include <string.h>

#include "core/time.h"
#include "os/chan.h"

static const char *const kind_names[SV_OP_KINDS] = {"hot-restart", "phased-restart", "refork", "recycle"};
static const char *const state_names[] = {"queued", "running", "succeeded", "failed"};

void sv_oplog_init(sv_oplog_t *log)
{
    memset(log, 0, sizeof(*log));
    log->next_id = 1;
}

const char *sv_op_kind_name(sv_op_kind_t kind)
{
    return kind < SV_OP_KINDS ? kind_names[kind] : "?";
}

static const char *state_name(sv_op_state_t state)
{
    return state <= SV_OPS_FAILED ? state_names[state] : "?";
}

static sv_op_t *new_op(sv_oplog_t *log, sv_op_kind_t kind, const char *trigger)
{
    /* the ring keeps the latest entries; never overwrite the running or queued one */
    sv_op_t *op = &log->ring[log->count++ % SV_OPLOG_SIZE];
    while (op == log->current || op == log->queued)
        op = &log->ring[log->count++ % SV_OPLOG_SIZE];
    memset(op, 0, sizeof(*op));
    op->id = log->next_id++;
    op->kind = kind;
    op->started_at = sv_wall_now();
    snprintf(op->trigger, sizeof(op->trigger), "%s", trigger ? trigger : "");
    return op;
}

int sv_oplog_begin(sv_oplog_t *log, sv_op_kind_t kind, const char *trigger)
{
    if (log->current && log->current->kind == kind)
        return log->current->id;
    if (log->queued && log->queued->kind == kind)
        return log->queued->id;
    sv_op_t *op = new_op(log, kind, trigger);
    if (!log->current) {
        op->state = SV_OPS_RUNNING;
        log->current = op;
    } else {
        if (log->queued) { /* a newer request of another kind replaces the waiting one */
            log->queued->state = SV_OPS_FAILED;
            snprintf(log->queued->error, sizeof(log->queued->error), "superseded by operation %d", op->id);
        }
        op->state = SV_OPS_QUEUED;
        log->queued = op;
    }
    return op->id;
}

sv_op_t *sv_oplog_next(sv_oplog_t *log)
{
    if (log->current || !log->queued)
        return NULL;
    log->current = log->queued;
    log->queued = NULL;
    log->current->state = SV_OPS_RUNNING;
    log->current->started_at = sv_wall_now();
    return log->current;
}

void sv_oplog_progress(sv_oplog_t *log, int done, int total)
{
    if (log->current) {
        log->current->done = done;
        log->current->total = total;
    }
}

void sv_oplog_finish_current(sv_oplog_t *log, bool ok, const char *error)
{
    sv_op_t *op = log->current;
    if (!op)
        return;
    op->state = ok ? SV_OPS_SUCCEEDED : SV_OPS_FAILED;
    op->finished_at = sv_wall_now();
    if (error)
        snprintf(op->error, sizeof(op->error), "%s", error);
    log->outcomes[op->kind][ok ? 1 : 0]++;
    log->current = NULL;
}

sv_op_t *sv_oplog_find(sv_oplog_t *log, int id)
{
    for (int i = 0; i < SV_OPLOG_SIZE; i++)
        if (log->ring[i].id == id && id > 0)
            return &log->ring[i];
    return NULL;
}

void sv_op_json(const sv_op_t *op, sv_json_t *w)
{
    if (!op) {
        sv_json_null(w);
        return;
    }
    sv_json_obj(w);
    sv_json_key(w, "id");
    sv_json_int(w, op->id);
    sv_json_key(w, "kind");
    sv_json_str(w, sv_op_kind_name(op->kind));
    sv_json_key(w, "state");
    sv_json_str(w, state_name(op->state));
    sv_json_key(w, "trigger");
    sv_json_str(w, op->trigger);
    sv_json_key(w, "started_at");
    sv_json_double(w, op->started_at);
    sv_json_key(w, "finished_at");
    if (op->finished_at > 0)
        sv_json_double(w, op->finished_at);
    else
        sv_json_null(w);
    sv_json_key(w, "done");
    sv_json_int(w, op->done);
    sv_json_key(w, "total");
    sv_json_int(w, op->total);
    sv_json_key(w, "error");
    sv_json_str(w, op->error[0] ? op->error : NULL);
    sv_json_obj_end(w);
}

static const sv_op_t *latest_finished(const sv_oplog_t *log)
{
    const sv_op_t *best = NULL;
    for (int i = 0; i < SV_OPLOG_SIZE; i++) {
        const sv_op_t *op = &log->ring[i];
        if (op->id && op->state >= SV_OPS_SUCCEEDED && (!best || op->id > best->id))
            best = op;
    }
    return best;
}

void sv_oplog_json(const sv_oplog_t *log, sv_json_t *w)
{
    sv_json_obj(w);
    sv_json_key(w, "current");
    sv_op_json(log->current, w);
    sv_json_key(w, "queued");
    sv_op_json(log->queued, w);
    sv_json_key(w, "last");
    sv_op_json(latest_finished(log), w);
    sv_json_obj_end(w);
}

void sv_oplog_handover(const sv_oplog_t *log, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < SV_OPLOG_SIZE; i++) {
        const sv_op_t *op = &log->ring[i];
        if (!op->id)
            continue;
        char rec[600];
        snprintf(rec, sizeof(rec), "op");
        sv_msg_put_int(rec, sizeof(rec), "id", op->id);
        sv_msg_put_int(rec, sizeof(rec), "kind", op->kind);
        sv_msg_put_int(rec, sizeof(rec), "state", op->state);
        sv_msg_put_int(rec, sizeof(rec), "current", op == log->current);
        sv_msg_put_int(rec, sizeof(rec), "queued", op == log->queued);
        sv_msg_put_int(rec, sizeof(rec), "started_ms", (int64_t)(op->started_at * 1000));
        sv_msg_put_int(rec, sizeof(rec), "finished_ms", (int64_t)(op->finished_at * 1000));
        sv_msg_put_int(rec, sizeof(rec), "done", op->done);
        sv_msg_put_int(rec, sizeof(rec), "total", op->total);
        sv_msg_put(rec, sizeof(rec), "trigger", op->trigger);
        if (op->error[0])
            sv_msg_put(rec, sizeof(rec), "error", op->error);
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s;", rec);
    }
    char rec[200];
    snprintf(rec, sizeof(rec), "opcount");
    sv_msg_put_int(rec, sizeof(rec), "next_id", log->next_id);
    for (int k = 0; k < SV_OP_KINDS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "ok%d", k);
        sv_msg_put_int(rec, sizeof(rec), key, (int64_t)log->outcomes[k][1]);
        snprintf(key, sizeof(key), "fail%d", k);
        sv_msg_put_int(rec, sizeof(rec), key, (int64_t)log->outcomes[k][0]);
    }
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s;", rec);
}

void sv_oplog_adopt(sv_oplog_t *log, const char *record)
{
    if (!strncmp(record, "opcount", 7)) {
        log->next_id = (int)sv_msg_int(record, "next_id", log->next_id);
        for (int k = 0; k < SV_OP_KINDS; k++) {
            char key[16];
            snprintf(key, sizeof(key), "ok%d", k);
            log->outcomes[k][1] = (unsigned long)sv_msg_int(record, key, 0);
            snprintf(key, sizeof(key), "fail%d", k);
            log->outcomes[k][0] = (unsigned long)sv_msg_int(record, key, 0);
        }
        return;
    }
    sv_op_t *op = &log->ring[log->count++ % SV_OPLOG_SIZE];
    memset(op, 0, sizeof(*op));
    op->id = (int)sv_msg_int(record, "id", 0);
    op->kind = (sv_op_kind_t)sv_msg_int(record, "kind", 0);
    op->state = (sv_op_state_t)sv_msg_int(record, "state", 0);
    op->started_at = (double)sv_msg_int(record, "started_ms", 0) / 1000;
    op->finished_at = (double)sv_msg_int(record, "finished_ms", 0) / 1000;
    op->done = (int)sv_msg_int(record, "done", 0);
    op->total = (int)sv_msg_int(record, "total", 0);
    sv_msg_get(record, "trigger", op->trigger, sizeof(op->trigger));
    sv_msg_get(record, "error", op->error, sizeof(op->error));
    if (sv_msg_int(record, "current", 0))
        log->current = op;
    if (sv_msg_int(record, "queued", 0))
        log->queued = op;
}
