/*
 * http_parser_fuzz.c: bytes from a client through sv_http_parser the way
 * src/server/conn.c drives it: pipelined requests one after another, the
 * head kept in place, the input arriving whole and then in two reads. Every
 * read and every next request gets its own exact-size copy (the buffer moves
 * as a realloc would move it), so ASan sees any read past what was given.
 * Aborts if the parser breaks its contract: MORE without consuming
 * everything, a span outside the head.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define MAX_HEADERS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int touch(void *arg, const char *at, size_t n)
{
    for (size_t i = 0; i < n; i++)
        *(uint8_t *)arg ^= (uint8_t)at[i];
    return 0;
}

static void check_span(sv_span_t s, const sv_http_req_t *req, const char *head, uint8_t *sink)
{
    if ((size_t)s.off + s.len > req->head_len)
        abort();
    touch(sink, head + s.off, s.len);
}

static char *exact_copy(char *old, const uint8_t *from, size_t n)
{
    free(old);
    char *p = malloc(n ? n : 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, from, n);
    return p;
}

/* data[0, cut) arrives first, then the rest. */
static void feed(const uint8_t *data, size_t size, size_t cut)
{
    static const sv_http_limits_t lim = {
        .max_request_line = 512, .max_header_size = 2048, .max_headers = MAX_HEADERS, .max_body_size = 4096};
    sv_http_parser_t p;
    sv_http_header_t headers[MAX_HEADERS];
    sv_http_req_t req = {.headers = headers};
    uint8_t sink = 0;
    size_t start = 0, pos = 0; /* data index of buf[0] (the request's first byte), of the next byte */
    bool head_done = false;
    char *buf = NULL;
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, touch, &sink);
    for (size_t avail = cut;; avail = size) {
        buf = exact_copy(buf, data + start, avail - start);
        while (pos < avail) {
            size_t used, len = avail - pos;
            sv_http_result_t r = sv_http_parse(&p, buf + (pos - start), len, head_done ? 0 : pos - start, &used);
            if (r == SV_HTTP_ERROR)
                goto out;
            if (used > len || (r == SV_HTTP_MORE && used != len))
                abort();
            pos += used;
            if (r == SV_HTTP_MORE)
                break;
            head_done = true;
            check_span(req.target, &req, buf, &sink);
            for (int i = 0; i < req.nheaders; i++) {
                check_span(req.headers[i].name, &req, buf, &sink);
                check_span(req.headers[i].value, &req, buf, &sink);
            }
            if (r == SV_HTTP_DONE) {
                if (req.upgrade) /* the rest belongs to another protocol */
                    goto out;
                start = pos;
                buf = exact_copy(buf, data + start, avail - start);
                head_done = false;
                sv_http_parser_begin(&p, &req, touch, &sink);
            }
        }
        if (avail == size)
            break;
    }
out:
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    feed(data, size, size);
    feed(data, size, size / 2);
    return 0;
}
