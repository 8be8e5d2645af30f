/*
 * deadlineapp.c: a test app for app_timeout and serval_request_deadline_ms.
 *   /deadline       the milliseconds left (-1 when app_timeout is off)
 *   /polite?ms=N    waits N ms, but no longer than its deadline leaves
 *                   (minus 200 ms), then answers "done after M ms"
 *   /stuck          waits for ever in a static function (forensics: its name)
 *   /begun          streams a first chunk, then waits for ever
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serval.h"

static void nap_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

__attribute__((noinline)) static _Noreturn void deadline_app_stuck_here(void)
{
    for (;;)
        nap_ms(1000);
}

static void text(serval_response_t *res, const char *s)
{
    serval_response_send(res, 200, "text/plain", s, strlen(s));
}

static void handle(void *app_data, serval_request_t *req, serval_response_t *res)
{
    const char *path = serval_request_path(req);
    char buf[64];
    (void)app_data;
    if (!strcmp(path, "/deadline")) {
        snprintf(buf, sizeof(buf), "%lld", (long long)serval_request_deadline_ms(req));
        text(res, buf);
    } else if (!strcmp(path, "/polite")) {
        const char *q = serval_request_query(req);
        int64_t want = strncmp(q, "ms=", 3) == 0 ? atoll(q + 3) : 0;
        int64_t left = serval_request_deadline_ms(req);
        if (left >= 0 && want > left - 200)
            want = left > 200 ? left - 200 : 0;
        nap_ms(want);
        snprintf(buf, sizeof(buf), "done after %lld ms", (long long)want);
        text(res, buf);
    } else if (!strcmp(path, "/stuck")) {
        deadline_app_stuck_here();
    } else if (!strcmp(path, "/begun")) {
        serval_response_status(res, 200);
        serval_response_write(res, "first chunk\n", 12);
        deadline_app_stuck_here();
    } else {
        text(res, "ok");
    }
}

static const serval_app_t deadline_app = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "deadlineapp",
    .handle = handle,
};

const serval_app_t *serval_app(void)
{
    return &deadline_app;
}
