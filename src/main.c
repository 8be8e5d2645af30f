/* serval: parse the command line, then become single mode or a cluster master. */
#include <stdlib.h>

#include "cluster/master.h"
#include "cluster/runtime.h"
#include "cluster/single.h"
#include "os/listen.h"
#include "os/proc.h"

int main(int argc, char **argv)
{
    static sv_runtime_t rt;
    int rc = sv_rt_init(&rt, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    sv_proc_title_init(argc, argv);
    sv_proc_raise_nofile();
    if (sv_rt_open_listeners(&rt) < 0)
        return 1;
    return rt.cfg.workers > 0 ? sv_master_run(&rt) : sv_single_run(&rt);
}
