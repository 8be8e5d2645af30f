/*
 * hello.c: the smallest serval app, and the benchmark app. Every request gets
 * 200 text/plain "Hello World". handle() does one call with static data and
 * allocates nothing, so a benchmark measures serval, not the app.
 *
 * Build: cc -shared -fPIC -O2 -I include -o hello.so examples/hello.c
 */
#include "serval.h"

static const char hello_body[] = "Hello World";

static void handle(void *app_data, serval_request_t *req, serval_response_t *res)
{
    serval_response_send(res, 200, "text/plain", hello_body, sizeof hello_body - 1);
}

static const serval_app_t hello_app = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "hello",
    .handle = handle,
};

__attribute__((visibility("default"))) const serval_app_t *serval_app(void)
{
    return &hello_app;
}
