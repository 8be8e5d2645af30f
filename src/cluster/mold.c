#include "cluster/mold.h"

#include <unistd.h>

#include "os/chan.h"

void sv_mold_fork_from_worker(sv_runtime_t *rt, sv_server_t *srv, const char *msg, int mold_chan,
                              int worker_chan)
{
    (void)rt;
    (void)srv;
    (void)msg;
    if (mold_chan >= 0)
        close(mold_chan);
    sv_chan_sendf(worker_chan, "mold-failed reason=not-implemented");
}
