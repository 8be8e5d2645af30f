/*
 * test_http_parser.c: the llhttp wrapper (src/http/parser.c).
 *
 * Most tests run an input through a simulated caller that behaves like
 * src/server/conn.c: one read buffer, the head kept in place from offset 0,
 * data_off = 0 during the body, consumed body bytes dropped from the buffer,
 * sv_http_parser_begin again after every SV_HTTP_DONE. The same input is
 * then fed byte by byte and split at every position, and the outcome must
 * not change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/parser.h"

#define MAX_HEADERS 16
#define MAX_REQS 4

/* What the caller saw of one request, copied out of the buffer. */
typedef struct rec {
    int result; /* SV_HTTP_DONE, SV_HTTP_ERROR, or SV_HTTP_MORE if the input ran out */
    int status;
    bool saw_head;
    int method;
    int minor;
    bool keep_alive, chunked, expect_continue, upgrade;
    int64_t content_length;
    int64_t body_received;
    size_t head_len;
    char target[512];
    char authority[128];
    int nheaders;
    char name[MAX_HEADERS][64];
    char value[MAX_HEADERS][256];
    char body[4096];
    size_t body_len;
} rec_t;

typedef struct run {
    rec_t rec[MAX_REQS];
    int n;         /* requests recorded */
    size_t unused; /* bytes left in the buffer after the last DONE (upgrade) */
} run_t;

static const sv_http_limits_t default_limits = {
    .max_request_line = 1024,
    .max_header_size = 4096,
    .max_headers = MAX_HEADERS,
    .max_body_size = 4096,
};

static int body_to_buf(void *arg, const char *data, size_t len)
{
    return sv_buf_append(arg, data, len);
}

static void copy_span(char *out, size_t cap, const char *head, sv_span_t s)
{
    assert_true(s.len < cap);
    memcpy(out, head + s.off, s.len);
    out[s.len] = '\0';
}

/* Copy the head out of the buffer; it sits at [0, head_len). */
static void snapshot_head(rec_t *r, const sv_http_req_t *req, const char *head, size_t buffered)
{
    assert_true(req->head_len > 0 && req->head_len <= buffered);
    r->method = req->method;
    r->minor = req->minor;
    r->keep_alive = req->keep_alive;
    r->chunked = req->chunked;
    r->expect_continue = req->expect_continue;
    r->upgrade = req->upgrade;
    r->content_length = req->content_length;
    r->head_len = req->head_len;
    assert_true(req->target.off + req->target.len <= req->head_len);
    copy_span(r->target, sizeof(r->target), head, req->target);
    copy_span(r->authority, sizeof(r->authority), head, req->authority);
    r->nheaders = req->nheaders;
    for (int i = 0; i < req->nheaders; i++) {
        const sv_http_header_t *h = &req->headers[i];
        assert_true(h->name.off + h->name.len <= req->head_len);
        assert_true(h->value.off + h->value.len <= req->head_len);
        copy_span(r->name[i], sizeof(r->name[i]), head, h->name);
        copy_span(r->value[i], sizeof(r->value[i]), head, h->value);
    }
}

/*
 * Feed in[0..len) arriving in pieces that end at cuts[0] < cuts[1] < ...
 * (the last piece ends at len). Records every request into out.
 */
static void feed_cuts(const sv_http_limits_t *lim, const char *in, size_t len, const size_t *cuts, int ncuts,
                      run_t *out)
{
    sv_http_parser_t p;
    sv_http_header_t headers[MAX_HEADERS];
    sv_http_req_t req = {.headers = headers};
    sv_buf_t rbuf = SV_BUF_INIT, body = SV_BUF_INIT;
    size_t rpos = 0, arrived = 0, done_bytes = 0;
    bool begun = false, head_done = false;
    rec_t head_rec;

    memset(out, 0, sizeof(*out));
    assert_true(lim->max_headers <= MAX_HEADERS);
    sv_http_parser_init(&p, lim);
    for (int piece = 0; piece <= ncuts && out->n < MAX_REQS; piece++) {
        size_t end = piece < ncuts ? cuts[piece] : len;
        assert_int_equal(sv_buf_append(&rbuf, in + arrived, end - arrived), 0);
        arrived = end;
        for (;;) {
            rec_t *r = &out->rec[out->n];
            if (!begun) {
                sv_http_parser_begin(&p, &req, body_to_buf, &body);
                sv_buf_reset(&body);
                begun = true;
                head_done = false;
            }
            if (rpos >= rbuf.len)
                break;
            size_t used = 12345, avail = rbuf.len - rpos;
            sv_http_result_t res = sv_http_parse(&p, rbuf.data + rpos, avail, head_done ? 0 : rpos, &used);
            if (res == SV_HTTP_ERROR) {
                memset(r, 0, sizeof(*r));
                r->result = SV_HTTP_ERROR;
                r->status = p.error_status;
                assert_non_null(p.error_reason);
                out->n++;
                goto done;
            }
            assert_true(used <= avail);
            if (res == SV_HTTP_MORE)
                assert_int_equal(used, avail); /* MORE: everything consumed */
            rpos += used;
            if (res == SV_HTTP_HEAD) {
                assert_false(head_done);
                assert_int_equal(rpos, req.head_len); /* stops right after the head */
                head_done = true;
                memset(&head_rec, 0, sizeof(head_rec));
                snapshot_head(&head_rec, &req, rbuf.data, rbuf.len);
            }
            if (head_done && rpos > req.head_len) {
                /* drop decoded body bytes, keep the head in place (like the server) */
                memmove(rbuf.data + req.head_len, rbuf.data + rpos, rbuf.len - rpos);
                rbuf.len -= rpos - req.head_len;
                rpos = req.head_len;
            }
            if (res == SV_HTTP_MORE)
                break;
            if (res == SV_HTTP_DONE) {
                memset(r, 0, sizeof(*r));
                r->result = SV_HTTP_DONE;
                r->saw_head = head_done;
                if (!head_done)
                    assert_int_equal(rpos, req.head_len);
                snapshot_head(r, &req, rbuf.data, rbuf.len);
                if (head_done) {
                    /* the head is unchanged by the body and its trailers */
                    head_rec.result = r->result;
                    head_rec.saw_head = true;
                    assert_memory_equal(&head_rec, r, sizeof(*r));
                }
                assert_true(body.len < sizeof(r->body));
                if (body.len)
                    memcpy(r->body, body.data, body.len);
                r->body_len = body.len;
                r->body_received = req.body_received;
                assert_int_equal(req.body_received, (int64_t)body.len);
                out->n++;
                done_bytes += rpos;
                sv_buf_consume(&rbuf, rpos);
                rpos = 0;
                begun = false;
                if (req.upgrade) {
                    /* the rest is another protocol's: not parsed */
                    out->unused = len - done_bytes;
                    goto done;
                }
                if (out->n == MAX_REQS)
                    goto done;
            }
        }
    }
    if (out->n < MAX_REQS && rbuf.len > 0) {
        out->rec[out->n].result = SV_HTTP_MORE; /* the input ended mid-request */
        out->n++;
    }
done:
    sv_buf_free(&rbuf);
    sv_buf_free(&body);
}

static void feed_all(const sv_http_limits_t *lim, const char *in, size_t len, run_t *out)
{
    feed_cuts(lim, in, len, NULL, 0, out);
}

static void feed_bytewise(const sv_http_limits_t *lim, const char *in, size_t len, run_t *out)
{
    size_t *cuts = malloc(len * sizeof(*cuts) + 1);
    assert_non_null(cuts);
    for (size_t i = 1; i < len; i++)
        cuts[i - 1] = i;
    feed_cuts(lim, in, len, cuts, len > 0 ? (int)len - 1 : 0, out);
    free(cuts);
}

/* Errors must agree on the status; everything else must agree exactly. */
static void assert_same_run(const run_t *a, const run_t *b, const char *how, size_t at)
{
    if (a->n != b->n || memcmp(a, b, sizeof(*a)) != 0) {
        print_error("outcome differs when fed %s (at %zu): n %d vs %d\n", how, at, a->n, b->n);
        for (int i = 0; i < a->n && i < b->n; i++)
            print_error("  req %d: result %d/%d status %d/%d body %zu/%zu\n", i, a->rec[i].result, b->rec[i].result,
                        a->rec[i].status, b->rec[i].status, a->rec[i].body_len, b->rec[i].body_len);
        fail();
    }
}

/* Parse in one call, then check byte by byte and every two-way split agree. */
static void parse_everyway(const sv_http_limits_t *lim, const char *in, size_t len, run_t *out)
{
    static run_t other;
    feed_all(lim, in, len, out);
    feed_bytewise(lim, in, len, &other);
    assert_same_run(out, &other, "byte by byte", 0);
    for (size_t cut = 1; cut < len; cut++) {
        feed_cuts(lim, in, len, &cut, 1, &other);
        assert_same_run(out, &other, "in two pieces", cut);
    }
}

static run_t R; /* large: keep it off the stack */

#define PARSE(lim, s) parse_everyway((lim), (s), sizeof(s) - 1, &R)

static const char *header(const rec_t *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->name[i], name) == 0)
            return r->value[i];
    return NULL;
}

static void expect_status(const sv_http_limits_t *lim, const char *in, size_t len, int status)
{
    parse_everyway(lim, in, len, &R);
    if (R.rec[R.n - 1].result != SV_HTTP_ERROR || R.rec[R.n - 1].status != status) {
        print_error("input <%.*s>: want %d, got result %d status %d\n", (int)len, in, status,
                    R.rec[R.n - 1].result, R.rec[R.n - 1].status);
        fail();
    }
}

#define EXPECT_STATUS_L(lim, s, st) expect_status((lim), (s), sizeof(s) - 1, (st))
#define EXPECT_STATUS(s, st) EXPECT_STATUS_L(&default_limits, s, st)

/* ---- plain requests ------------------------------------------------------ */

static void test_get_simple(void **state)
{
    PARSE(&default_limits, "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_int_equal(R.n, 1);
    const rec_t *r = &R.rec[0];
    assert_int_equal(r->result, SV_HTTP_DONE);
    assert_false(r->saw_head); /* no body: straight to DONE */
    assert_int_equal(r->method, HTTP_GET);
    assert_int_equal(r->minor, 1);
    assert_string_equal(r->target, "/index.html?q=1");
    assert_int_equal(r->nheaders, 2);
    assert_string_equal(r->name[0], "Host");
    assert_string_equal(r->value[0], "example.com");
    assert_string_equal(r->name[1], "Accept");
    assert_string_equal(r->value[1], "*/*");
    assert_true(r->keep_alive);
    assert_false(r->chunked);
    assert_false(r->upgrade);
    assert_int_equal(r->content_length, 0);
    assert_int_equal(r->head_len, 64);
    assert_int_equal(r->body_len, 0);
}

/* The raw API, without the simulated caller: consumed and fields directly. */
static void test_get_raw_api(void **state)
{
    const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    sv_http_parser_t p;
    sv_http_header_t h[4];
    sv_http_req_t req = {.headers = h};
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, NULL, NULL);
    size_t used = 99;
    assert_int_equal(sv_http_parse(&p, in, 10, 0, &used), SV_HTTP_MORE);
    assert_int_equal(used, 10);
    assert_int_equal(sv_http_parse(&p, in + 10, sizeof(in) - 11, 10, &used), SV_HTTP_DONE);
    assert_int_equal(used, sizeof(in) - 11);
    assert_int_equal(req.head_len, sizeof(in) - 1);
    assert_int_equal(req.nheaders, 1);
    assert_true(sv_span_ieq(in, req.headers[0].name, "host"));
    assert_true(sv_span_ieq(in, req.headers[0].value, "a"));
    assert_true(sv_span_ieq(in, req.target, "/"));
    assert_string_equal(sv_http_method_name(req.method), "GET");
    /* DONE is sticky until the next begin */
    assert_int_equal(sv_http_parse(&p, "GET", 3, 0, &used), SV_HTTP_DONE);
    assert_int_equal(used, 0);
}

static void test_http10(void **state)
{
    PARSE(&default_limits, "GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(R.n, 1);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].minor, 0);
    assert_false(R.rec[0].keep_alive);
    assert_int_equal(R.rec[0].nheaders, 0);

    PARSE(&default_limits, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n");
    assert_int_equal(R.n, 2);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_true(R.rec[0].keep_alive);
    assert_int_equal(R.rec[1].result, SV_HTTP_DONE);
    assert_string_equal(R.rec[1].target, "/2");
    assert_false(R.rec[1].keep_alive);
}

static void test_http11_connection_close(void **state)
{
    PARSE(&default_limits, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_false(R.rec[0].keep_alive);
}

static void test_head_method(void **state)
{
    PARSE(&default_limits, "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].method, HTTP_HEAD);
    assert_string_equal(sv_http_method_name(HTTP_HEAD), "HEAD");
    assert_string_equal(R.rec[0].target, "/x");
}

static void test_absolute_form(void **state)
{
    PARSE(&default_limits, "GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_string_equal(R.rec[0].target, "http://example.com:8080/a/b?c=d");
    assert_string_equal(R.rec[0].authority, "example.com:8080");
    PARSE(&default_limits, "GET https://[::1]/x HTTP/1.1\r\nHost: y\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_string_equal(R.rec[0].authority, "[::1]");
    PARSE(&default_limits, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].method, HTTP_OPTIONS);
    assert_string_equal(R.rec[0].target, "*");
}

/* ---- bodies -------------------------------------------------------------- */

static void test_post_content_length(void **state)
{
    PARSE(&default_limits, "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
    assert_int_equal(R.n, 1);
    const rec_t *r = &R.rec[0];
    assert_int_equal(r->result, SV_HTTP_DONE);
    assert_true(r->saw_head);
    assert_int_equal(r->method, HTTP_POST);
    assert_int_equal(r->content_length, 11);
    assert_false(r->chunked);
    assert_int_equal(r->body_len, 11);
    assert_memory_equal(r->body, "hello world", 11);
    assert_int_equal(r->head_len, 54);
}

/* HEAD stops right after the head; body bytes come through on_body in later calls. */
static void test_post_raw_api(void **state)
{
    const char in[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET";
    sv_http_parser_t p;
    sv_http_header_t h[4];
    sv_http_req_t req = {.headers = h};
    sv_buf_t body = SV_BUF_INIT;
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, body_to_buf, &body);
    size_t used, len = sizeof(in) - 1;
    assert_int_equal(sv_http_parse(&p, in, len, 0, &used), SV_HTTP_HEAD);
    assert_int_equal(used, 47);
    assert_int_equal(req.head_len, 47);
    assert_int_equal(body.len, 0);
    assert_int_equal(sv_http_parse(&p, in + 47, 2, 0, &used), SV_HTTP_MORE);
    assert_int_equal(used, 2);
    assert_int_equal(sv_http_parse(&p, in + 49, len - 49, 0, &used), SV_HTTP_DONE);
    assert_int_equal(used, 3); /* "GET" is the next request's */
    assert_int_equal(body.len, 5);
    assert_memory_equal(body.data, "hello", 5);
    assert_int_equal(req.body_received, 5);
    sv_buf_free(&body);
}

static void test_no_body_cb(void **state)
{
    sv_http_parser_t p;
    sv_http_header_t h[4];
    sv_http_req_t req = {.headers = h};
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    const char in[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, NULL, NULL);
    size_t used;
    /* no callback: bytes are counted and dropped */
    assert_int_equal(sv_http_parse(&p, in, sizeof(in) - 1, 0, &used), SV_HTTP_HEAD);
    assert_int_equal(sv_http_parse(&p, in + used, sizeof(in) - 1 - used, 0, &used), SV_HTTP_DONE);
    assert_int_equal(req.body_received, 5);
}

static int refuse_body(void *arg, const char *data, size_t len)
{
    return -12;
}

static void test_body_cb_refuses(void **state)
{
    sv_http_parser_t p;
    sv_http_header_t h[4];
    sv_http_req_t req = {.headers = h};
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    const char in[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, refuse_body, NULL);
    size_t used;
    assert_int_equal(sv_http_parse(&p, in, sizeof(in) - 1, 0, &used), SV_HTTP_HEAD);
    assert_int_equal(sv_http_parse(&p, in + used, sizeof(in) - 1 - used, 0, &used), SV_HTTP_ERROR);
    assert_int_equal(p.error_status, 503);
}

static void test_chunked(void **state)
{
    PARSE(&default_limits, "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n"
                           "6;q=\"quoted; str\";name=value\r\n world\r\n"
                           /* llhttp 8.1.0 rejects ";a=b;c" (a token value before ';'): 400, fails closed */
                           "A\r\n0123456789\r\n"
                           "0\r\n\r\n");
    assert_int_equal(R.n, 1);
    const rec_t *r = &R.rec[0];
    assert_int_equal(r->result, SV_HTTP_DONE);
    assert_true(r->saw_head);
    assert_true(r->chunked);
    assert_int_equal(r->content_length, -1);
    assert_int_equal(r->body_len, 21);
    assert_memory_equal(r->body, "hello world0123456789", 21);
    assert_int_equal(r->nheaders, 2);
}

/* Trailers are parsed and do not disturb the head (which the app reads). */
static void test_chunked_trailers(void **state)
{
    PARSE(&default_limits, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3\r\nabc\r\n"
                           "0\r\nX-Checksum: 1234\r\nX-Other: some value\r\n\r\n"
                           "GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(R.n, 2);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].body_len, 3);
    assert_int_equal(R.rec[0].nheaders, 2);
    assert_string_equal(R.rec[0].value[0], "a");
    assert_string_equal(R.rec[0].value[1], "chunked");
    assert_int_equal(R.rec[1].result, SV_HTTP_DONE);
    assert_string_equal(R.rec[1].target, "/next");
}

static void test_chunked_zero_and_big_chunks(void **state)
{
    PARSE(&default_limits, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].body_len, 0);

    char in[1200];
    char data[1000];
    memset(data, 'z', sizeof(data));
    int n = snprintf(in, sizeof(in), "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n%.*s\r\n0\r\n\r\n",
                     (int)sizeof(data), data);
    feed_all(&default_limits, in, (size_t)n, &R);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].body_len, 1000);
    static run_t other;
    feed_bytewise(&default_limits, in, (size_t)n, &other);
    assert_same_run(&R, &other, "byte by byte", 0);
}

/* ---- pipelining ---------------------------------------------------------- */

static void test_pipelined_two(void **state)
{
    const char in[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n";
    sv_http_parser_t p;
    sv_http_header_t h[4];
    sv_http_req_t req = {.headers = h};
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, NULL, NULL);
    size_t used, len = sizeof(in) - 1;
    assert_int_equal(sv_http_parse(&p, in, len, 0, &used), SV_HTTP_DONE);
    assert_int_equal(used, 28); /* stops right after the first request */
    assert_true(sv_span_ieq(in, req.target, "/a"));
    sv_http_parser_begin(&p, &req, NULL, NULL);
    const char *next = in + used; /* the next head starts at offset 0 */
    assert_int_equal(sv_http_parse(&p, next, len - used, 0, &used), SV_HTTP_DONE);
    assert_int_equal(used, 28);
    assert_true(sv_span_ieq(next, req.target, "/b"));
    assert_true(sv_span_ieq(next, req.headers[0].value, "b"));

    PARSE(&default_limits, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n");
    assert_int_equal(R.n, 2);
    assert_string_equal(R.rec[0].target, "/a");
    assert_string_equal(R.rec[1].target, "/b");
    assert_string_equal(R.rec[1].value[0], "b");
}

static void test_pipelined_three_with_bodies(void **state)
{
    PARSE(&default_limits, "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none"
                           "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
                           "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(R.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(R.rec[i].result, SV_HTTP_DONE);
    assert_string_equal(R.rec[0].target, "/1");
    assert_int_equal(R.rec[0].body_len, 3);
    assert_memory_equal(R.rec[0].body, "one", 3);
    assert_string_equal(R.rec[1].target, "/2");
    assert_true(R.rec[1].chunked);
    assert_memory_equal(R.rec[1].body, "two", 3);
    assert_string_equal(R.rec[2].target, "/3");
    assert_int_equal(R.rec[2].body_len, 0);
}

/* An empty line before a request is skipped (RFC 9112 2.2) and counts into its head. */
static void test_pipelined_extra_crlf(void **state)
{
    PARSE(&default_limits, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(R.n, 2);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_memory_equal(R.rec[0].body, "ok", 2);
    assert_int_equal(R.rec[1].result, SV_HTTP_DONE);
    assert_string_equal(R.rec[1].target, "/x");
    assert_int_equal(R.rec[1].head_len, 30);
    EXPECT_STATUS("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400); /* but not a bare LF */
}

/* The second request is incomplete: DONE, then MORE. */
static void test_pipelined_partial(void **state)
{
    PARSE(&default_limits, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHo");
    assert_int_equal(R.n, 2);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[1].result, SV_HTTP_MORE);
}

/* An error in the second request does not affect the first. */
static void test_pipelined_then_error(void **state)
{
    PARSE(&default_limits, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    assert_int_equal(R.n, 2);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[1].result, SV_HTTP_ERROR);
    assert_int_equal(R.rec[1].status, 400);
}

/* ---- headers ------------------------------------------------------------- */

static void test_header_spans_and_trim(void **state)
{
    PARSE(&default_limits, "GET / HTTP/1.1\r\n"
                           "Host:   example.com  \t \r\n"
                           "X-Words:\tone  two   \r\n"
                           "x-lower-case: v\r\n"
                           "X-Tab-Only:\t\t\r\n\r\n");
    const rec_t *r = &R.rec[0];
    assert_int_equal(r->result, SV_HTTP_DONE);
    assert_int_equal(r->nheaders, 4);
    assert_string_equal(r->name[0], "Host");
    assert_string_equal(r->value[0], "example.com");
    assert_string_equal(r->name[1], "X-Words");
    assert_string_equal(r->value[1], "one  two"); /* inner whitespace kept */
    assert_string_equal(r->name[2], "x-lower-case");
    assert_string_equal(r->value[2], "v");
    assert_string_equal(r->value[3], "");
    assert_string_equal(header(r, "X-WORDS"), "one  two");
}

static void test_empty_header_values(void **state)
{
    PARSE(&default_limits, "GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\nY:   \r\nZ: z\r\n\r\n");
    const rec_t *r = &R.rec[0];
    assert_int_equal(r->result, SV_HTTP_DONE);
    assert_int_equal(r->nheaders, 4);
    assert_string_equal(r->name[0], "X-Empty");
    assert_string_equal(r->value[0], "");
    assert_string_equal(r->name[1], "Host");
    assert_string_equal(r->value[1], "a");
    assert_string_equal(r->name[2], "Y");
    assert_string_equal(r->value[2], "");
    assert_string_equal(r->name[3], "Z");
    assert_string_equal(r->value[3], "z");
}

static void test_host_rules(void **state)
{
    EXPECT_STATUS("GET / HTTP/1.1\r\n\r\n", 400);
    EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    EXPECT_STATUS("GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n", 400);
    /* 1.0 needs no Host; an empty one is allowed */
    PARSE(&default_limits, "GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    PARSE(&default_limits, "GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
}

static void test_expect(void **state)
{
    PARSE(&default_limits, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_true(R.rec[0].expect_continue);
    assert_memory_equal(R.rec[0].body, "ok", 2);

    PARSE(&default_limits, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue \r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_true(R.rec[0].expect_continue);

    /* nothing to continue with: no flag */
    PARSE(&default_limits, "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_false(R.rec[0].expect_continue);

    PARSE(&default_limits, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    assert_false(R.rec[0].expect_continue);

    EXPECT_STATUS("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nok", 417);
    EXPECT_STATUS("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\nContent-Length: 2\r\n\r\nok", 417);
}

static void test_upgrade(void **state)
{
    const char in[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    PARSE(&default_limits, in);
    assert_int_equal(R.n, 1);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_true(R.rec[0].upgrade);
    assert_string_equal(header(&R.rec[0], "upgrade"), "websocket");
    assert_int_equal(R.unused, 7); /* the upgraded protocol's bytes are not consumed */

    /* Upgrade without "Connection: upgrade" is an ordinary request */
    PARSE(&default_limits, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_false(R.rec[0].upgrade);
}

/* ---- limits -------------------------------------------------------------- */

/* "GET /xxx... HTTP/1.1" with a target of n bytes */
static size_t make_target_request(char *out, size_t cap, size_t n)
{
    size_t len = 0;
    len += (size_t)snprintf(out, cap, "GET /");
    memset(out + len, 'x', n - 1);
    len += n - 1;
    len += (size_t)snprintf(out + len, cap - len, " HTTP/1.1\r\nHost: a\r\n\r\n");
    return len;
}

static void test_limit_request_line(void **state)
{
    sv_http_limits_t lim = default_limits;
    lim.max_request_line = 100;
    char in[256];
    size_t len = make_target_request(in, sizeof(in), 100);
    parse_everyway(&lim, in, len, &R);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(strlen(R.rec[0].target), 100);
    len = make_target_request(in, sizeof(in), 101);
    expect_status(&lim, in, len, 414);
}

/* A head of exactly n bytes (pre, then X-Pad: ppp... to fit), then tail. */
static size_t make_head(char *out, size_t cap, size_t n, const char *pre, const char *tail)
{
    size_t len = (size_t)snprintf(out, cap, "%sX-Pad: ", pre);
    size_t pad = n - len - 4;
    assert_true(n + strlen(tail) < cap && len + 4 < n);
    memset(out + len, 'p', pad);
    len += pad;
    len += (size_t)snprintf(out + len, cap - len, "\r\n\r\n%s", tail);
    return len;
}

static void test_limit_header_size(void **state)
{
    sv_http_limits_t lim = default_limits;
    lim.max_header_size = 200;
    const char *get = "GET / HTTP/1.1\r\nHost: a\r\n";
    const char *post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n";
    char in[512];
    size_t len = make_head(in, sizeof(in), 200, get, "");
    parse_everyway(&lim, in, len, &R);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].head_len, 200);
    len = make_head(in, sizeof(in), 201, get, "");
    expect_status(&lim, in, len, 431);
    /* with a body behind the head */
    len = make_head(in, sizeof(in), 200, post, "ok");
    parse_everyway(&lim, in, len, &R);
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].head_len, 200);
    len = make_head(in, sizeof(in), 201, post, "ok");
    expect_status(&lim, in, len, 431);
    /* a head that never ends */
    len = make_head(in, sizeof(in), 300, get, "");
    expect_status(&lim, in, len - 4, 431);
}

static void test_limit_header_count(void **state)
{
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    PARSE(&lim, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].nheaders, 4);
    EXPECT_STATUS_L(&lim, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431);
}

static void test_limit_body_size(void **state)
{
    sv_http_limits_t lim = default_limits;
    lim.max_body_size = 10;
    PARSE(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].body_len, 10);
    /* refused at the head, before any body byte */
    EXPECT_STATUS_L(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413);
    const char big[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n";
    expect_status(&lim, big, sizeof(big) - 1, 413);

    PARSE(&lim, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].body_len, 10);
    const char ch[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n6\r\n567890\r\n0\r\n\r\n";
    expect_status(&lim, ch, sizeof(ch) - 1, 413);

    /* past INT64_MAX: must not wrap to a negative length ("-1 = chunked") */
    EXPECT_STATUS_L(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 413);
    EXPECT_STATUS_L(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 413);

    /* 0 = unlimited */
    lim.max_body_size = 0;
    PARSE(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n0123456789ab");
    assert_int_equal(R.rec[0].result, SV_HTTP_DONE);
    assert_int_equal(R.rec[0].body_len, 12);
    EXPECT_STATUS_L(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 413);
    const char huge[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\nab";
    feed_all(&lim, huge, sizeof(huge) - 1, &R);
    assert_int_equal(R.rec[0].result, SV_HTTP_MORE);
}

/* ---- malformed and smuggling-shaped input -------------------------------- */

typedef struct bad {
    const char *name;
    const char *in;
    size_t len;
    int status;
} bad_t;

#define BAD(name, in, status) {name, in, sizeof(in) - 1, status}

static const bad_t bad_inputs[] = {
    BAD("CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    BAD("TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    BAD("two CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    BAD("two CL differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    BAD("CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
    BAD("CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    BAD("CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    BAD("CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    BAD("bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    BAD("chunk size with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    BAD("chunk size overflow",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
    BAD("chunk too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", 400),
    BAD("bare CR in header", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    BAD("bare CR in request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    BAD("bare CR in chunk ext", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n",
     400),
    BAD("bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 400),
    BAD("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    BAD("bare LF after header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    BAD("bare LF ends head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    BAD("bare LF ends head (pipelined)", "GET / HTTP/1.1\r\nHost: a\r\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("bare LF after chunk size",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    BAD("bare LF after chunk data",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
    BAD("bare LF in trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n", 400),
    BAD("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    BAD("obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),
    BAD("obs-fold after empty value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n b\r\n\r\n", 400),
    BAD("obs-fold of TE",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    BAD("obs-fold of CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello", 400),
    BAD("space before first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    BAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    BAD("space before colon in TE",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    BAD("TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    BAD("TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 400),
    BAD("TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400),
    BAD("TE chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    BAD("TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    BAD("NUL in header value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400),
    BAD("control char in name", "GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", 400),
    BAD("empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400),
    BAD("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("garbage version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
    BAD("lowercase method", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    BAD("unknown method", "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    BAD("HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    BAD("HTTP/0.9 line", "GET / HTTP/0.9\r\n\r\n", 505),
    BAD("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    /* h1spec --strict and issue 10 F18 */
    BAD("no version", "GET /\r\nHost: localhost\r\n\r\n", 400),
    BAD("Host with a space", "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", 400),
    BAD("Host with userinfo and path", "GET / HTTP/1.1\r\nHost: a b@c/d\r\n\r\n", 400),
    BAD("Host with a bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    BAD("Host with an open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    BAD("chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    BAD("TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    BAD("absolute form with userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    BAD("absolute form without host", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
};

static void test_bad_inputs(void **state)
{
    int failed = 0;
    for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
        const bad_t *b = &bad_inputs[i];
        parse_everyway(&default_limits, b->in, b->len, &R);
        const rec_t *last = &R.rec[R.n - 1];
        if (last->result != SV_HTTP_ERROR || last->status != b->status) {
            print_error("%s: want %d, got result %d status %d after %d request(s)\n", b->name, b->status,
                        last->result, last->status, R.n);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/*
 * "0\r\n\n" ends a chunked body for llhttp 8 (bare LF as the empty line after
 * the last chunk); a proxy that wants CRLF reads the next request as trailer
 * lines and forwards one request where we see two.
 */
static void test_chunked_trailer_bare_lf(void **state)
{
    EXPECT_STATUS("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n", 400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
                  400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\n", 400);
}

/* After an error, nothing more is parsed from the connection. */
static void test_error_is_sticky(void **state)
{
    sv_http_parser_t p;
    sv_http_header_t h[4];
    sv_http_req_t req = {.headers = h};
    sv_http_limits_t lim = default_limits;
    lim.max_headers = 4;
    lim.max_header_size = 20;
    const char in[] = "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, NULL, NULL);
    size_t used;
    assert_int_equal(sv_http_parse(&p, in, 25, 0, &used), SV_HTTP_ERROR);
    assert_int_equal(p.error_status, 431);
    assert_int_equal(sv_http_parse(&p, in + 25, sizeof(in) - 26, 25, &used), SV_HTTP_ERROR);
    assert_int_equal(p.error_status, 431);

    /* rejected after llhttp saw the whole message */
    lim.max_header_size = 4096;
    const char lf[] = "GET / HTTP/1.1\r\nHost: a\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    sv_http_parser_init(&p, &lim);
    sv_http_parser_begin(&p, &req, NULL, NULL);
    assert_int_equal(sv_http_parse(&p, lf, sizeof(lf) - 1, 0, &used), SV_HTTP_ERROR);
    assert_int_equal(p.error_status, 400);
    assert_int_equal(sv_http_parse(&p, lf, sizeof(lf) - 1, 0, &used), SV_HTTP_ERROR);
    assert_int_equal(used, 0);
}

/* ---- helpers ------------------------------------------------------------- */

static void test_reason(void **state)
{
    assert_string_equal(sv_http_reason(200), "OK");
    assert_string_equal(sv_http_reason(100), "Continue");
    assert_string_equal(sv_http_reason(404), "Not Found");
    assert_string_equal(sv_http_reason(413), "Content Too Large");
    assert_string_equal(sv_http_reason(414), "URI Too Long");
    assert_string_equal(sv_http_reason(417), "Expectation Failed");
    assert_string_equal(sv_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(sv_http_reason(501), "Not Implemented");
    assert_string_equal(sv_http_reason(503), "Service Unavailable");
    assert_string_equal(sv_http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(sv_http_reason(299), "Unknown");
    assert_string_equal(sv_http_reason(0), "Unknown");
    assert_string_equal(sv_http_reason(-1), "Unknown");
    /* every status the parser produces has a reason */
    const int parser_statuses[] = {400, 413, 414, 417, 431, 501, 503, 505};
    for (size_t i = 0; i < sizeof(parser_statuses) / sizeof(parser_statuses[0]); i++)
        assert_string_not_equal(sv_http_reason(parser_statuses[i]), "Unknown");
}

static void test_span_ieq(void **state)
{
    const char base[] = "xxContent-Lengthyy";
    sv_span_t s = {2, 14};
    assert_true(sv_span_ieq(base, s, "content-length"));
    assert_true(sv_span_ieq(base, s, "CONTENT-LENGTH"));
    assert_true(sv_span_ieq(base, s, "Content-Length"));
    assert_false(sv_span_ieq(base, s, "content-lengthy"));
    assert_false(sv_span_ieq(base, s, "content-lengt"));
    assert_false(sv_span_ieq(base, s, "content_length"));
    assert_false(sv_span_ieq(base, s, ""));
    sv_span_t empty = {5, 0};
    assert_true(sv_span_ieq(base, empty, ""));
    assert_false(sv_span_ieq(base, empty, "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_simple),
        cmocka_unit_test(test_get_raw_api),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_http11_connection_close),
        cmocka_unit_test(test_head_method),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_post_raw_api),
        cmocka_unit_test(test_no_body_cb),
        cmocka_unit_test(test_body_cb_refuses),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_zero_and_big_chunks),
        cmocka_unit_test(test_pipelined_two),
        cmocka_unit_test(test_pipelined_three_with_bodies),
        cmocka_unit_test(test_pipelined_extra_crlf),
        cmocka_unit_test(test_pipelined_partial),
        cmocka_unit_test(test_pipelined_then_error),
        cmocka_unit_test(test_header_spans_and_trim),
        cmocka_unit_test(test_empty_header_values),
        cmocka_unit_test(test_host_rules),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_limit_request_line),
        cmocka_unit_test(test_limit_header_size),
        cmocka_unit_test(test_limit_header_count),
        cmocka_unit_test(test_limit_body_size),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_chunked_trailer_bare_lf),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_span_ieq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
