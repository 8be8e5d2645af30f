/*
 * ops.h: restart operations (hot restart, phased restart, refork, recycle).
 *
 * Every restart request becomes an operation with an id, a state and a
 * result, so a caller can wait for it (servalctl --wait polls
 * /operation?id=N) and stats can show progress. One operation runs at a
 * time; a request arriving during one of the same kind is merged into it,
 * a different kind is queued behind it. The log survives a hot restart
 * (handed over with the listeners).
 */
#ifndef SV_CLUSTER_OPS_H
#define SV_CLUSTER_OPS_H

#include <stdbool.h>
#include <time.h>

#include "core/json.h"

typedef enum sv_op_kind { SV_OP_HOT = 0, SV_OP_PHASED, SV_OP_REFORK, SV_OP_RECYCLE, SV_OP_KINDS } sv_op_kind_t;
typedef enum sv_op_state { SV_OPS_QUEUED = 0, SV_OPS_RUNNING, SV_OPS_SUCCEEDED, SV_OPS_FAILED } sv_op_state_t;

typedef struct sv_op {
    int id;
    sv_op_kind_t kind;
    sv_op_state_t state;
    char trigger[32];      /* signal, control, auto, ... */
    double started_at;     /* wall clock */
    double finished_at;
    int done, total;       /* workers replaced so far / to replace */
    char error[256];
} sv_op_t;

#define SV_OPLOG_SIZE 16

typedef struct sv_oplog {
    sv_op_t ring[SV_OPLOG_SIZE];
    int count;             /* entries used in ring (oldest overwritten) */
    int next_id;
    sv_op_t *current;      /* running, or NULL */
    sv_op_t *queued;       /* at most one waiting */
    unsigned long outcomes[SV_OP_KINDS][2]; /* [kind][0 failed, 1 succeeded] */
} sv_oplog_t;

void sv_oplog_init(sv_oplog_t *log);
/*
 * Request an operation. Merges into the running or queued one of the same
 * kind; otherwise starts it (if none runs) or queues it. Returns its id.
 */
int sv_oplog_begin(sv_oplog_t *log, sv_op_kind_t kind, const char *trigger);
/* Move the queued operation to running if nothing runs; returns it or NULL. */
sv_op_t *sv_oplog_next(sv_oplog_t *log);
void sv_oplog_progress(sv_oplog_t *log, int done, int total);
/* End the running operation. */
void sv_oplog_finish_current(sv_oplog_t *log, bool ok, const char *error);
sv_op_t *sv_oplog_find(sv_oplog_t *log, int id);
const char *sv_op_kind_name(sv_op_kind_t kind);
void sv_op_json(const sv_op_t *op, sv_json_t *w);
/* {"current":..., "last":...} for stats. */
void sv_oplog_json(const sv_oplog_t *log, sv_json_t *w);
/* One handover record per op (for a hot restart) into buf; parse them back. */
void sv_oplog_handover(const sv_oplog_t *log, char *buf, size_t cap);
void sv_oplog_adopt(sv_oplog_t *log, const char *record);

#endif
