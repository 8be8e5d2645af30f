/* refork.c: fork_worker and refork (placeholder until the mold lands). */
#include "cluster/master_internal.h"
#include "core/log.h"

void sv_refork_start(sv_master_t *m)
{
    sv_oplog_finish_current(&m->ops, false, "refork not available");
}

bool sv_refork_step(sv_master_t *m, int64_t now_ms)
{
    (void)m, (void)now_ms;
    return true;
}

void sv_refork_check_auto(sv_master_t *m, sv_whandle_t *h)
{
    (void)m, (void)h;
}

bool sv_refork_spawn_from_mold(sv_master_t *m, sv_whandle_t *h)
{
    (void)m, (void)h;
    return false;
}

void sv_refork_on_mold_msg(sv_master_t *m, const char *msg, int fd)
{
    (void)m, (void)msg, (void)fd;
}

void sv_refork_on_mold_exit(sv_master_t *m, int status)
{
    (void)m, (void)status;
}

void sv_refork_on_worker0_booted(sv_master_t *m, sv_whandle_t *h)
{
    (void)m, (void)h;
}

void sv_refork_on_boot_failure(sv_master_t *m, sv_whandle_t *h, const char *reason)
{
    (void)m, (void)h, (void)reason;
}

void sv_refork_kill_mold(sv_master_t *m)
{
    (void)m;
}
