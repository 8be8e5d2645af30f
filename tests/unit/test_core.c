/*
 * test_core.c: buffers, the JSON writer, time formatting, error names
 * (src/core/) and the master <-> worker channel (src/os/chan.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/time.h"
#include "os/chan.h"

/* ---- buf ----------------------------------------------------------------- */

static void test_buf_append(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    assert_int_equal(sv_buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(sv_buf_append(&b, "abc", 3), 0);
    assert_int_equal(sv_buf_puts(&b, "def"), 0);
    assert_int_equal(sv_buf_putc(&b, 'g'), 0);
    assert_int_equal(b.len, 7);
    assert_string_equal(b.data, "abcdefg");
    assert_true(b.cap > b.len);

    /* growth keeps the content and the NUL */
    char big[1000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(sv_buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(b.len, 1007);
    assert_true(b.cap >= 1008);
    assert_memory_equal(b.data, "abcdefg", 7);
    assert_int_equal(b.data[1006], 'x');
    assert_int_equal(b.data[1007], '\0');

    /* embedded NULs are bytes like any other */
    sv_buf_reset(&b);
    assert_int_equal(sv_buf_append(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 4);
    sv_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    sv_buf_free(&b); /* twice is fine */
}

static void test_buf_reserve(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    assert_int_equal(sv_buf_reserve(&b, 100), 0);
    assert_true(b.cap >= 101);
    assert_int_equal(b.len, 0);
    char *before = b.data;
    size_t cap = b.cap;
    assert_int_equal(sv_buf_reserve(&b, 50), 0); /* already room: no change */
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.cap, cap);
    /* refused cleanly, buffer unchanged */
    assert_int_equal(sv_buf_reserve(&b, (size_t)-1 / 2 + 10), -ENOMEM);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.cap, cap);
    sv_buf_free(&b);
}

/* len + extra + 1 must not wrap around to a small "fits" */
static void test_buf_reserve_overflow(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    assert_int_equal(sv_buf_puts(&b, "abc"), 0);
    size_t cap = b.cap;
    assert_int_equal(sv_buf_reserve(&b, (size_t)-1), -ENOMEM);
    assert_int_equal(sv_buf_reserve(&b, (size_t)-1 - 3), -ENOMEM);
    assert_int_equal(sv_buf_append(&b, "x", (size_t)-1 - 2), -ENOMEM);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "abc");
    sv_buf_free(&b);
}

static void test_buf_printf(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    assert_int_equal(sv_buf_printf(&b, "%s=%d", "n", 42), 0);
    assert_string_equal(b.data, "n=42");
    assert_int_equal(b.len, 4);
    assert_int_equal(sv_buf_printf(&b, " %05.1f|%x|%c", 3.14159, 255, 'z'), 0);
    assert_string_equal(b.data, "n=42 003.1|ff|z");
    assert_int_equal(sv_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 15);
    /* longer than the first allocation */
    char word[300];
    memset(word, 'w', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    assert_int_equal(sv_buf_printf(&b, "[%s]", word), 0);
    assert_int_equal(b.len, 15 + 301);
    assert_int_equal(b.data[15], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(strlen(b.data), b.len);
    sv_buf_free(&b);
}

static void test_buf_consume(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    sv_buf_consume(&b, 5); /* empty, never allocated */
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    assert_int_equal(sv_buf_puts(&b, "hello world"), 0);
    sv_buf_consume(&b, 0);
    assert_string_equal(b.data, "hello world");
    sv_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "world");
    assert_int_equal(sv_buf_puts(&b, "!"), 0);
    assert_string_equal(b.data, "world!");
    sv_buf_consume(&b, 6);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(sv_buf_puts(&b, "abc"), 0);
    sv_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(sv_buf_puts(&b, "xyz"), 0);
    sv_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    sv_buf_free(&b);
}

/* ---- json ---------------------------------------------------------------- */

static char *escaped(const char *s, size_t n)
{
    static sv_buf_t b;
    sv_buf_free(&b);
    assert_int_equal(sv_json_escape(&b, s, n), 0);
    return b.data;
}

static void test_json_escape(void **state)
{
    assert_string_equal(escaped("", 0), "\"\"");
    assert_string_equal(escaped("plain", 5), "\"plain\"");
    assert_string_equal(escaped("say \"hi\"", 8), "\"say \\\"hi\\\"\"");
    assert_string_equal(escaped("C:\\dir\\", 7), "\"C:\\\\dir\\\\\"");
    assert_string_equal(escaped("a\nb\rc\td", 7), "\"a\\nb\\rc\\td\"");
    assert_string_equal(escaped("\x01\x1f\b\f", 4), "\"\\u0001\\u001f\\u0008\\u000c\"");
    assert_string_equal(escaped("nul\0x", 5), "\"nul\\u0000x\"");
    assert_string_equal(escaped("\x7f", 1), "\"\x7f\"");
    /* UTF-8 passes through untouched; '/' needs no escape */
    assert_string_equal(escaped("h\xc3\xa9/\xe2\x82\xac", 7), "\"h\xc3\xa9/\xe2\x82\xac\"");
}

static void test_json_nesting(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    sv_json_t w;
    sv_json_init(&w, &b);
    sv_json_obj(&w);
    sv_json_key(&w, "a");
    sv_json_int(&w, 1);
    sv_json_key(&w, "list");
    sv_json_arr(&w);
    sv_json_int(&w, -2);
    sv_json_uint(&w, UINT64_MAX);
    sv_json_obj(&w);
    sv_json_key(&w, "deep");
    sv_json_arr(&w);
    sv_json_arr_end(&w);
    sv_json_key(&w, "o");
    sv_json_obj(&w);
    sv_json_obj_end(&w);
    sv_json_obj_end(&w);
    sv_json_str(&w, "s");
    sv_json_arr_end(&w);
    sv_json_key(&w, "t");
    sv_json_bool(&w, true);
    sv_json_key(&w, "f");
    sv_json_bool(&w, false);
    sv_json_key(&w, "n");
    sv_json_null(&w);
    sv_json_key(&w, "raw");
    sv_json_raw(&w, "{\"x\":[1,2]}");
    sv_json_key(&w, "after");
    sv_json_int(&w, INT64_MIN);
    sv_json_obj_end(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(b.data, "{\"a\":1,\"list\":[-2,18446744073709551615,{\"deep\":[],\"o\":{}},\"s\"],"
                                "\"t\":true,\"f\":false,\"n\":null,\"raw\":{\"x\":[1,2]},"
                                "\"after\":-9223372036854775808}");
    sv_buf_free(&b);
}

static void test_json_strings(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    sv_json_t w;
    sv_json_init(&w, &b);
    sv_json_arr(&w);
    sv_json_str(&w, NULL);
    sv_json_str(&w, "");
    sv_json_str(&w, "q\"b\\");
    sv_json_strn(&w, "abcdef", 3);
    sv_json_strn(&w, "z\0z", 3);
    sv_json_arr_end(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(b.data, "[null,\"\",\"q\\\"b\\\\\",\"abc\",\"z\\u0000z\"]");

    /* keys are escaped too */
    sv_buf_reset(&b);
    sv_json_init(&w, &b);
    sv_json_obj(&w);
    sv_json_key(&w, "we\"ird\n");
    sv_json_str(&w, NULL);
    sv_json_obj_end(&w);
    assert_string_equal(b.data, "{\"we\\\"ird\\n\":null}");
    sv_buf_free(&b);
}

static void test_json_numbers(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    sv_json_t w;
    sv_json_init(&w, &b);
    sv_json_arr(&w);
    sv_json_double(&w, 1.5);
    sv_json_double(&w, 0);
    sv_json_double(&w, -0.25);
    sv_json_double(&w, 1.0 / 3.0);
    sv_json_double(&w, NAN);
    sv_json_double(&w, INFINITY);
    sv_json_double(&w, -INFINITY);
    sv_json_int(&w, 0);
    sv_json_double(&w, 1768374755.25); /* a timestamp keeps its milliseconds */
    sv_json_arr_end(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(b.data, "[1.5,0,-0.25,0.333333,null,null,null,0,1768374755.250]");
    sv_buf_free(&b);
}

/* Values at the top level and in sequence: commas only between siblings. */
static void test_json_commas(void **state)
{
    sv_buf_t b = SV_BUF_INIT;
    sv_json_t w;
    sv_json_init(&w, &b);
    sv_json_arr(&w);
    sv_json_arr(&w);
    sv_json_arr_end(&w);
    sv_json_arr(&w);
    sv_json_int(&w, 1);
    sv_json_arr_end(&w);
    sv_json_obj(&w);
    sv_json_key(&w, "k");
    sv_json_arr(&w);
    sv_json_arr_end(&w);
    sv_json_key(&w, "k2");
    sv_json_obj(&w);
    sv_json_key(&w, "x");
    sv_json_int(&w, 2);
    sv_json_obj_end(&w);
    sv_json_obj_end(&w);
    sv_json_arr_end(&w);
    assert_string_equal(b.data, "[[],[1],{\"k\":[],\"k2\":{\"x\":2}}]");
    sv_buf_free(&b);
}

/* ---- time ---------------------------------------------------------------- */

static void test_http_date(void **state)
{
    char buf[64];
    memset(buf, '#', sizeof(buf));
    sv_http_date(buf, 0);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_int_equal(strlen(buf), 29);
    assert_int_equal(buf[30], '#'); /* writes exactly 29 chars + NUL */
    sv_http_date(buf, 1768374755);
    assert_string_equal(buf, "Wed, 14 Jan 2026 07:12:35 GMT");
    sv_http_date(buf, 951782400); /* leap day */
    assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
    sv_http_date(buf, 1609459199);
    assert_string_equal(buf, "Thu, 31 Dec 2020 23:59:59 GMT");
    sv_http_date(buf, 4102444800); /* a Friday in 2100 */
    assert_string_equal(buf, "Fri, 01 Jan 2100 00:00:00 GMT");
    sv_http_date(buf, time(NULL));
    assert_int_equal(strlen(buf), 29);
}

static void test_iso8601(void **state)
{
    char buf[32];
    assert_ptr_equal(sv_iso8601(buf, sizeof(buf), 0), buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    sv_iso8601(buf, sizeof(buf), 1768374755);
    assert_string_equal(buf, "2026-01-14T07:12:35Z");
    sv_iso8601(buf, 21, 951782400);
    assert_string_equal(buf, "2000-02-29T00:00:00Z");
}

static void test_clocks(void **state)
{
    int64_t a = sv_now_ms(), an = sv_now_ns();
    sv_sleep_ms(15);
    int64_t b = sv_now_ms(), bn = sv_now_ns();
    assert_true(b >= a);
    assert_true(bn - an >= 15 * 1000000LL);
    double w = sv_wall_now();
    assert_true(fabs(w - (double)time(NULL)) < 2.0);
}

/* ---- err ----------------------------------------------------------------- */

static void test_strerror(void **state)
{
    assert_string_equal(sv_strerror(0), "success");
    assert_string_equal(sv_strerror(SV_ECONFIG), "invalid configuration");
    assert_string_equal(sv_strerror(SV_EPARSE), "malformed input");
    assert_string_equal(sv_strerror(SV_ELIMIT), "limit exceeded");
    assert_string_equal(sv_strerror(SV_EABI), "app ABI mismatch");
    assert_string_equal(sv_strerror(SV_EPROTO), "protocol error");
    assert_string_equal(sv_strerror(SV_ESTATE), "not possible in the current state");
    assert_string_equal(sv_strerror(SV_EAPP), "the app failed");
    assert_string_equal(sv_strerror(SV_EINUSE), "address already in use by another server");
    assert_string_equal(sv_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(sv_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(sv_strerror(-EADDRINUSE), strerror(EADDRINUSE));
    assert_string_equal(sv_strerror(1), "unknown error");
    assert_non_null(sv_strerror(-99999));
}

static void test_errname(void **state)
{
    assert_string_equal(sv_errname(0), "OK");
    assert_string_equal(sv_errname(SV_ECONFIG), "SV_ECONFIG");
    assert_string_equal(sv_errname(SV_EPARSE), "SV_EPARSE");
    assert_string_equal(sv_errname(SV_EINUSE), "SV_EINUSE");
    assert_string_equal(sv_errname(-ENOENT), "ENOENT");
    assert_string_equal(sv_errname(-EAGAIN), "EAGAIN");
    assert_string_equal(sv_errname(-EPIPE), "EPIPE");
    assert_string_equal(sv_errname(-99999), "EUNKNOWN");
    assert_string_equal(sv_errname(7), "EUNKNOWN");
    /* serval's codes sit outside the errno range */
    assert_true(-SV_ECONFIG > 4095);
}

/* ---- chan messages --------------------------------------------------------- */

static void test_msg_roundtrip(void **state)
{
    static const char *const values[] = {
        "plain", "with space", "100%", "a=b", "x;y", "  lead", "%41", "=;% mix = ;%", "tab\there", "",
        "caf\xc3\xa9", "/path/to/file.sock",
    };
    char msg[SV_CHAN_MSG_MAX];
    strcpy(msg, "verb");
    char key[16];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(key, sizeof(key), "k%zu", i);
        sv_msg_put(msg, sizeof(msg), key, values[i]);
    }
    /* one line, words separated by single spaces, nothing raw that could split a word */
    assert_null(strchr(msg, '\n'));
    assert_null(strchr(msg, ';'));
    assert_null(strchr(msg, '\t'));
    char out[256], verb[16];
    sv_msg_verb(msg, verb, sizeof(verb));
    assert_string_equal(verb, "verb");
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(key, sizeof(key), "k%zu", i);
        memset(out, '#', sizeof(out));
        assert_true(sv_msg_get(msg, key, out, sizeof(out)));
        assert_string_equal(out, values[i]);
    }
    assert_false(sv_msg_get(msg, "k", out, sizeof(out)));
    assert_false(sv_msg_get(msg, "missing", out, sizeof(out)));
    assert_false(sv_msg_get(msg, "verb", out, sizeof(out)));
}

static void test_msg_get_edges(void **state)
{
    char out[8];
    /* a key that is a suffix or prefix of another is not confused with it */
    const char *m = "ping xkey=1 key=2 keyx=3";
    assert_true(sv_msg_get(m, "key", out, sizeof(out)));
    assert_string_equal(out, "2");
    assert_true(sv_msg_get(m, "keyx", out, sizeof(out)));
    assert_string_equal(out, "3");
    /* truncated to the output's size, always terminated */
    assert_true(sv_msg_get("v long=abcdefghijkl", "long", out, sizeof(out)));
    assert_string_equal(out, "abcdefg");
    /* a stray or short %-escape is kept literally */
    assert_true(sv_msg_get("v p=%zz%4", "p", out, sizeof(out)));
    assert_string_equal(out, "%zz%4");
    assert_true(sv_msg_get("v e=", "e", out, sizeof(out)));
    assert_string_equal(out, "");
}

static void test_msg_int(void **state)
{
    char msg[128] = "stats";
    sv_msg_put_int(msg, sizeof(msg), "n", 42);
    sv_msg_put_int(msg, sizeof(msg), "neg", -7);
    sv_msg_put_int(msg, sizeof(msg), "big", INT64_MAX);
    sv_msg_put(msg, sizeof(msg), "word", "12abc");
    sv_msg_put(msg, sizeof(msg), "empty", "");
    assert_string_equal(msg, "stats n=42 neg=-7 big=9223372036854775807 word=12abc empty=");
    assert_int_equal(sv_msg_int(msg, "n", -1), 42);
    assert_int_equal(sv_msg_int(msg, "neg", 0), -7);
    assert_int_equal(sv_msg_int(msg, "big", 0), INT64_MAX);
    assert_int_equal(sv_msg_int(msg, "word", 5), 5);
    assert_int_equal(sv_msg_int(msg, "empty", 6), 6);
    assert_int_equal(sv_msg_int(msg, "absent", 9), 9);
}

static void test_msg_verb(void **state)
{
    char v[8];
    sv_msg_verb("ping backlog=0", v, sizeof(v));
    assert_string_equal(v, "ping");
    sv_msg_verb("stop", v, sizeof(v));
    assert_string_equal(v, "stop");
    sv_msg_verb("", v, sizeof(v));
    assert_string_equal(v, "");
    sv_msg_verb("verylongverb x=1", v, sizeof(v));
    assert_string_equal(v, "verylon");
}

static void test_msg_put_overflow(void **state)
{
    char msg[24] = "v";
    sv_msg_put(msg, sizeof(msg), "a", "0123456789");
    assert_string_equal(msg, "v a=0123456789");
    /* no room: truncated, never past cap, still terminated */
    sv_msg_put(msg, sizeof(msg), "b", "% % % %");
    assert_true(strlen(msg) < sizeof(msg));
    assert_memory_equal(msg, "v a=0123456789 b=", 17);
    char out[16];
    assert_true(sv_msg_get(msg, "a", out, sizeof(out)));
    assert_string_equal(out, "0123456789");
}

/* ---- chan over a socketpair ---------------------------------------------- */

static void test_chan_pair(void **state)
{
    int sp[2], pp[2] = {-1, -1};
    assert_int_equal(sv_chan_pair(sp), 0);
    assert_true(fcntl(sp[0], F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(sp[1], F_GETFD) & FD_CLOEXEC);

    char buf[SV_CHAN_MSG_MAX];
    int fd = 99;
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), -EAGAIN);
    assert_int_equal(fd, -1);

    /* messages keep their boundaries */
    assert_int_equal(sv_chan_send(sp[0], "ping a=1", -1, 0), 0);
    assert_int_equal(sv_chan_sendf(sp[0], "stats n=%d", 7), 0);
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 8);
    assert_string_equal(buf, "ping a=1");
    assert_int_equal(fd, -1);
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 9);
    assert_string_equal(buf, "stats n=7");

    /* both directions */
    assert_int_equal(sv_chan_send(sp[1], "pong", -1, 100), 0);
    assert_int_equal(sv_chan_recv(sp[0], buf, sizeof(buf), &fd), 4);
    assert_string_equal(buf, "pong");

    /* an fd rides along and arrives close-on-exec */
    assert_int_equal(pipe(pp), 0);
    assert_int_equal(sv_chan_send(sp[0], "take fd", pp[1], 0), 0);
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 7);
    assert_string_equal(buf, "take fd");
    assert_true(fd >= 0);
    assert_int_not_equal(fd, pp[1]);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(fd, "x", 1), 1);
    char c = 0;
    assert_int_equal(read(pp[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    close(fd);

    /* a long message fits, a too-small buffer truncates it */
    char longmsg[1500];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    assert_int_equal(sv_chan_send(sp[0], longmsg, -1, 0), 0);
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 1499);
    assert_string_equal(buf, longmsg);
    char small[8];
    assert_int_equal(sv_chan_send(sp[0], "truncated message", -1, 0), 0);
    assert_int_equal(sv_chan_recv(sp[1], small, sizeof(small), &fd), 7);
    assert_string_equal(small, "truncat");

    /* the peer closes: queued messages first, then EOF */
    assert_int_equal(sv_chan_send(sp[0], "last", -1, 0), 0);
    close(sp[0]);
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 4);
    assert_string_equal(buf, "last");
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 0);
    assert_int_equal(sv_chan_recv(sp[1], buf, sizeof(buf), &fd), 0);
    assert_int_equal(sv_chan_send(sp[1], "anyone?", -1, 0), -EPIPE);

    close(sp[1]);
    close(pp[0]);
    close(pp[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append),
        cmocka_unit_test(test_buf_reserve),
        cmocka_unit_test(test_buf_reserve_overflow),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_nesting),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_commas),
        cmocka_unit_test(test_http_date),
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_errname),
        cmocka_unit_test(test_msg_roundtrip),
        cmocka_unit_test(test_msg_get_edges),
        cmocka_unit_test(test_msg_int),
        cmocka_unit_test(test_msg_verb),
        cmocka_unit_test(test_msg_put_overflow),
        cmocka_unit_test(test_chan_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
