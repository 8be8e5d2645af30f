/*
 * apiapp.c: a test app for the parts of serval.h testapp does not use:
 * files (sendfile), custom headers and statuses, header iteration, the
 * buffered body, and an app that forgets to respond.
 *   /file?PATH        the file at PATH (absolute), with sendfile
 *   /range?PATH       bytes 10..29 of the file at PATH
 *   /headers          X-Custom and a 201 status; rejected headers reported
 *   /body             the buffered body echoed back (or "streamed")
 *   /nothing          returns without a response
 *   /peer             the peer address
 *   /status?N         an empty response with status N
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serval.h"

static void file(serval_response_t *res, const char *path, int64_t off, int64_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        serval_response_send(res, 404, "text/plain", "no such file", 12);
        return;
    }
    serval_response_header(res, "Content-Type", "application/octet-stream");
    serval_response_file(res, fd, off, len);
}

static void headers(serval_response_t *res)
{
    char body[256];
    int a = serval_response_header(res, "X-Custom", "yes");
    int b = serval_response_header(res, "Content-Length", "5");
    int c = serval_response_header(res, "X-Bad", "a\r\nInjected: 1");
    int d = serval_response_header(res, "Bad Name", "x");
    int n = snprintf(body, sizeof(body), "%d %d %d %d", a, b, c, d);
    serval_response_status(res, 201);
    serval_response_body(res, body, (size_t)n);
}

static void body(serval_request_t *req, serval_response_t *res)
{
    size_t len = 0;
    const void *b = serval_request_body(req, &len);
    if (!b)
        serval_response_send(res, 200, "text/plain", "streamed", 8);
    else
        serval_response_send(res, 200, "application/octet-stream", b, len);
}

static void handle(void *app, serval_request_t *req, serval_response_t *res)
{
    const char *path = serval_request_path(req);
    const char *q = serval_request_query(req);
    (void)app;
    if (!strcmp(path, "/file"))
        file(res, q, 0, -1);
    else if (!strcmp(path, "/range"))
        file(res, q, 10, 20);
    else if (!strcmp(path, "/headers"))
        headers(res);
    else if (!strcmp(path, "/body"))
        body(req, res);
    else if (!strcmp(path, "/status")) {
        serval_response_status(res, atoi(q));
        serval_response_body(res, "", 0);
    } else if (!strcmp(path, "/peer"))
        serval_response_send(res, 200, "text/plain", serval_request_peer(req), strlen(serval_request_peer(req)));
    else if (strcmp(path, "/nothing") != 0)
        serval_response_send(res, 404, "text/plain", "Not Found", 9);
}

static const serval_app_t api_app = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "apiapp",
    .handle = handle,
};

const serval_app_t *serval_app(void)
{
    return &api_app;
}
