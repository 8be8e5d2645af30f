/*
 * bootfailapp.c: a test app whose init always fails, in a process that then
 * takes BOOTFAIL_EXIT_MS (default 300) to exit: a worker that has told the
 * master of its boot failure but is not gone yet (a big heap to unmap, a
 * sanitizer's checks at exit).
 */
#include <stdlib.h>
#include <time.h>

#include "serval.h"

static void slow_exit(void)
{
    const char *v = getenv("BOOTFAIL_EXIT_MS");
    long ms = v ? atol(v) : 300;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int init(const serval_context_t *ctx, void **app_data)
{
    (void)app_data;
    if (ctx->role == SERVAL_ROLE_WORKER)
        atexit(slow_exit);
    return -1;
}

static void handle(void *app_data, serval_request_t *req, serval_response_t *res)
{
    (void)app_data, (void)req;
    serval_response_send(res, 500, "text/plain", "unreachable", 11);
}

static const serval_app_t bootfail_app = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "bootfailapp",
    .init = init,
    .handle = handle,
};

const serval_app_t *serval_app(void)
{
    return &bootfail_app;
}
