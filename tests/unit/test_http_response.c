/*
 * test_http_response.c: response framing and writers (src/http/response.c),
 * on buffers, without sockets: every framing rule of issue 10 F1-F4, the
 * head, error, 100-continue and chunk writers, the keep-alive decision, and
 * the field and Host checks (F18, F19).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <llhttp.h>
#include <string.h>

#include "core/buf.h"
#include "http/response.h"

static const char DATE[] = "Tue, 01 Dec 2026 12:00:00 GMT";

#define FRAMING(m, minor, st, cl) sv_http_res_framing((uint8_t)(m), (minor), (st), (cl))

static void test_framing_length(void **state)
{
    sv_http_framing_t f = FRAMING(HTTP_GET, 1, 200, 5);
    assert_true(f.length_header && f.send_body);
    assert_false(f.te_header || f.chunked || f.close_delimited);
    f = FRAMING(HTTP_GET, 1, 200, 0);
    assert_true(f.length_header);
    assert_false(f.send_body);
    /* HEAD: the length a GET would get, no body */
    f = FRAMING(HTTP_HEAD, 1, 200, 5);
    assert_true(f.length_header);
    assert_false(f.send_body);
}

static void test_framing_stream(void **state)
{
    sv_http_framing_t f = FRAMING(HTTP_GET, 1, 200, -1);
    assert_true(f.te_header && f.chunked && f.send_body);
    assert_false(f.close_delimited || f.length_header);
    /* F2: HTTP/1.0 has no chunked: the body ends with the connection */
    f = FRAMING(HTTP_GET, 0, 200, -1);
    assert_true(f.send_body && f.close_delimited);
    assert_false(f.te_header || f.chunked);
    /* F1: HEAD of a stream sends no chunk, not even the last one, and keeps the connection */
    f = FRAMING(HTTP_HEAD, 1, 200, -1);
    assert_true(f.te_header);
    assert_false(f.chunked || f.send_body || f.close_delimited);
    f = FRAMING(HTTP_HEAD, 0, 200, -1);
    assert_false(f.te_header || f.chunked || f.send_body || f.close_delimited);
}

static void test_framing_bodiless_status(void **state)
{
    const int statuses[] = {204, 304};
    const int64_t lengths[] = {-1, 0, 13};
    for (size_t i = 0; i < 2; i++) {
        for (size_t k = 0; k < 3; k++) {
            for (int minor = 0; minor <= 1; minor++) {
                /* F3, F4: no body, no Content-Length, no Transfer-Encoding, no close */
                sv_http_framing_t f = FRAMING(HTTP_GET, minor, statuses[i], lengths[k]);
                assert_false(f.send_body || f.length_header || f.te_header || f.chunked || f.close_delimited);
            }
        }
    }
    assert_true(sv_http_status_bodiless(204) && sv_http_status_bodiless(304) && sv_http_status_bodiless(101));
    assert_false(sv_http_status_bodiless(200) || sv_http_status_bodiless(205) || sv_http_status_bodiless(404));
}

static char *head_of(int status, uint8_t minor, const char *hdrs, int64_t cl, bool close, sv_http_framing_t f)
{
    static sv_buf_t b;
    sv_buf_reset(&b);
    sv_http_res_head_t h = {.status = status,
                            .minor = minor,
                            .headers = hdrs,
                            .headers_len = hdrs ? strlen(hdrs) : 0,
                            .content_length = cl,
                            .close = close,
                            .date = DATE};
    assert_int_equal(sv_http_write_head(&b, &h, &f), 0);
    return b.data;
}

static void test_write_head(void **state)
{
    assert_string_equal(head_of(200, 1, "Content-Type: text/plain\r\n", 11, false, FRAMING(HTTP_GET, 1, 200, 11)),
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
                        "Date: Tue, 01 Dec 2026 12:00:00 GMT\r\n\r\n");
    assert_string_equal(head_of(200, 1, NULL, -1, true, FRAMING(HTTP_GET, 1, 200, -1)),
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                        "Date: Tue, 01 Dec 2026 12:00:00 GMT\r\nConnection: close\r\n\r\n");
    /* close-delimited forces Connection: close even when the caller would keep alive */
    assert_string_equal(head_of(200, 0, NULL, -1, false, FRAMING(HTTP_GET, 0, 200, -1)),
                        "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 12:00:00 GMT\r\nConnection: close\r\n\r\n");
    assert_string_equal(head_of(204, 0, NULL, 0, false, FRAMING(HTTP_GET, 0, 204, 0)),
                        "HTTP/1.1 204 No Content\r\nDate: Tue, 01 Dec 2026 12:00:00 GMT\r\n"
                        "Connection: keep-alive\r\n\r\n");
    assert_string_equal(head_of(304, 1, NULL, 100, false, FRAMING(HTTP_GET, 1, 304, 100)),
                        "HTTP/1.1 304 Not Modified\r\nDate: Tue, 01 Dec 2026 12:00:00 GMT\r\n\r\n");
    /* the largest length */
    char *h = head_of(200, 1, NULL, INT64_MAX, false, FRAMING(HTTP_GET, 1, 200, INT64_MAX));
    assert_non_null(strstr(h, "Content-Length: 9223372036854775807\r\n"));
}

static void test_write_error_continue_chunks(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    assert_int_equal(sv_http_write_error(&b, 408, DATE), 0);
    assert_string_equal(b.data, "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
                                "Date: Tue, 01 Dec 2026 12:00:00 GMT\r\nConnection: close\r\n\r\nRequest Timeout\n");
    sv_buf_reset(&b);
    assert_int_equal(sv_http_write_continue(&b), 0);
    assert_string_equal(b.data, "HTTP/1.1 100 Continue\r\n\r\n");
    sv_buf_reset(&b);
    assert_int_equal(sv_http_write_chunk(&b, "hello", 5), 0);
    assert_int_equal(sv_http_write_chunk(&b, "x", 0), 0); /* an empty chunk would end the body */
    char big[300];
    memset(big, 'z', sizeof(big));
    assert_int_equal(sv_http_write_chunk(&b, big, sizeof(big)), 0);
    assert_int_equal(sv_http_write_last_chunk(&b), 0);
    assert_int_equal(b.len, 10 + (5 + 300 + 2) + 5);
    assert_memory_equal(b.data, "5\r\nhello\r\n12c\r\nzz", 17);
    assert_memory_equal(b.data + b.len - 7, "\r\n0\r\n\r\n", 7);
    sv_buf_free(&b);
}

static void test_keep_alive(void **state)
{
    assert_true(sv_http_keep_alive(true, false, false));
    assert_false(sv_http_keep_alive(false, false, false));
    assert_false(sv_http_keep_alive(true, true, false));
    assert_false(sv_http_keep_alive(true, false, true));
}

static void test_fields(void **state)
{
    assert_true(sv_http_field_name_ok("X-Custom_1"));
    assert_false(sv_http_field_name_ok(""));
    assert_false(sv_http_field_name_ok("X Bad"));
    assert_false(sv_http_field_name_ok("X:Bad"));
    assert_true(sv_http_field_value_ok(""));
    assert_true(sv_http_field_value_ok("text/plain; charset=utf-8"));
    assert_true(sv_http_field_value_ok("tab\there"));
    assert_true(sv_http_field_value_ok("caf\xc3\xa9")); /* obs-text */
    /* F19: every control byte but HTAB, and DEL */
    char v[4] = "a?b";
    for (int ch = 1; ch < 0x20; ch++) {
        v[1] = (char)ch;
        if (ch != '\t')
            assert_false(sv_http_field_value_ok(v));
    }
    v[1] = 0x7f;
    assert_false(sv_http_field_value_ok(v));
    assert_true(sv_http_field_reserved("content-length") && sv_http_field_reserved("Transfer-Encoding"));
    assert_true(sv_http_field_reserved("CONNECTION") && sv_http_field_reserved("date"));
    assert_false(sv_http_field_reserved("content-type"));
}

static void test_host(void **state)
{
    const char *good[] = {"", "example.com", "example.com:8080", "127.0.0.1", "127.0.0.1:9292", "[::1]",
                          "[::1]:80", "a-b.c_d~e", "xn--bcher-kva.example", "%41.example", "h:"};
    const char *bad[] = {"bad host", "a b@c/d", "a@b", "a/b", "[::1", "[]", "[::1]x", "h:8x", "h:80:80",
                         "a\tb", "a?b", "a#b", "\"q\""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(sv_http_host_ok(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sv_http_host_ok(bad[i], strlen(bad[i])))
            fail_msg("accepted Host %s", bad[i]);
    }
}

/*
 * Every byte against the RFC's sets, spelled as strings here: the classes in
 * response.c are switches, and a missing or extra case would pass the
 * examples above.
 */
static void test_char_classes_exhaustive(void **state)
{
    static const char delims[] = "\"(),/:;<=>?@[\\]{}";   /* RFC 9110 5.6.2 */
    static const char reg_extra[] = "-._~%!$&'()*+,;=";     /* RFC 3986 reg-name */
    for (int ch = 1; ch < 256; ch++) {
        char one[2] = {(char)ch, '\0'};
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        bool token = ch > 32 && ch < 127 && !strchr(delims, ch);
        if (sv_http_field_name_ok(one) != token)
            fail_msg("field name byte 0x%02x: %d", ch, !token);
        bool reg = alnum || strchr(reg_extra, ch);
        if (sv_http_host_ok(one, 1) != (reg || ch == ':'))  /* ":" alone is an empty host, empty port */
            fail_msg("host byte 0x%02x", ch);
        char lit[4] = {'[', (char)ch, ']', '\0'};
        bool in_literal = reg || ch == ':';
        if (ch != ']' && sv_http_host_ok(lit, 3) != in_literal)
            fail_msg("IP-literal byte 0x%02x", ch);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_length),
        cmocka_unit_test(test_framing_stream),
        cmocka_unit_test(test_framing_bodiless_status),
        cmocka_unit_test(test_write_head),
        cmocka_unit_test(test_write_error_continue_chunks),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_char_classes_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
