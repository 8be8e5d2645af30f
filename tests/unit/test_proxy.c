/* Unit tests for src/http/proxy.c: PROXY v1/v2 headers, networks, X-Forwarded-For. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/proxy.h"

static long parse(const char *s, size_t len, int versions, sv_proxy_result_t *r)
{
    return sv_proxy_parse(s, len, versions, r);
}

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 203.0.113.7 10.0.0.1 4242 80\r\nGET / HTTP/1.1\r\n";
    sv_proxy_result_t r;
    long n = parse(h, strlen(h), SV_PROXY_V1, &r);
    assert_int_equal(n, (long)strlen("PROXY TCP4 203.0.113.7 10.0.0.1 4242 80\r\n"));
    assert_false(r.local);
    assert_string_equal(r.addr, "203.0.113.7:4242");
}

static void test_v1_tcp6_and_unknown(void **state)
{
    (void)state;
    sv_proxy_result_t r;
    const char *h6 = "PROXY TCP6 2001:db8::1 ::1 65535 443\r\n";
    assert_int_equal(parse(h6, strlen(h6), SV_PROXY_V1, &r), (long)strlen(h6));
    assert_string_equal(r.addr, "[2001:db8::1]:65535");
    const char *u = "PROXY UNKNOWN\r\n";
    assert_int_equal(parse(u, strlen(u), SV_PROXY_V1, &r), (long)strlen(u));
    assert_true(r.local);
    const char *u2 = "PROXY UNKNOWN ffff::1 ::1 1 2\r\n";
    assert_int_equal(parse(u2, strlen(u2), SV_PROXY_V1, &r), (long)strlen(u2));
    assert_true(r.local);
}

static void test_v1_partial_then_whole(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    sv_proxy_result_t r;
    for (size_t i = 0; i < strlen(h); i++)
        assert_int_equal(parse(h, i, SV_PROXY_V1, &r), 0);
    assert_int_equal(parse(h, strlen(h), SV_PROXY_V1, &r), (long)strlen(h));
}

static void test_v1_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         /* missing port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     /* extra field */
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",           /* family mismatch */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",   /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",      /* leading zero */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",      /* double space */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    sv_proxy_result_t r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], strlen(bad[i]), SV_PROXY_V1, &r), SV_EPROTO);
    /* no CRLF within 107 bytes */
    char longline[200];
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "PROXY ", 6);
    assert_int_equal(parse(longline, sizeof(longline), SV_PROXY_V1, &r), SV_EPROTO);
    /* v1 not accepted when only v2 is */
    const char *h = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    assert_int_equal(parse(h, strlen(h), SV_PROXY_V2, &r), SV_EPROTO);
}

static size_t v2_header(unsigned char *b, unsigned cmd, unsigned fam, const void *addrs,
                        size_t alen, size_t tlv)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(b, sig, 12);
    b[12] = (unsigned char)(0x20 | cmd);
    b[13] = (unsigned char)fam;
    size_t body = alen + tlv;
    b[14] = (unsigned char)(body >> 8);
    b[15] = (unsigned char)body;
    memcpy(b + 16, addrs, alen);
    memset(b + 16 + alen, 0x04, tlv);  /* TLVs are skipped, whatever they hold */
    return 16 + body;
}

static void test_v2_inet_and_inet6(void **state)
{
    (void)state;
    unsigned char b[256];
    const unsigned char a4[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0x1F, 0x90, 0, 80};
    size_t n = v2_header(b, 1, 0x11, a4, sizeof(a4), 7);
    sv_proxy_result_t r;
    assert_int_equal(sv_proxy_parse(b, n + 5, SV_PROXY_V2, &r), (long)n);
    assert_false(r.local);
    assert_string_equal(r.addr, "198.51.100.9:8080");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sv_proxy_parse(b, i, SV_PROXY_V2, &r), 0);

    unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8};
    a6[15] = 5;
    a6[32] = 0x01;
    a6[33] = 0x02;
    n = v2_header(b, 1, 0x21, a6, sizeof(a6), 0);
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V1 | SV_PROXY_V2, &r), (long)n);
    assert_string_equal(r.addr, "[2001:db8::5]:258");
}

static void test_v2_local_and_bad(void **state)
{
    (void)state;
    unsigned char b[256];
    sv_proxy_result_t r;
    size_t n = v2_header(b, 0, 0x00, "", 0, 0);
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V2, &r), (long)n);
    assert_true(r.local);
    const unsigned char a4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    n = v2_header(b, 1, 0x11, a4, 8, 0);  /* too short for AF_INET */
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V2, &r), SV_EPROTO);
    n = v2_header(b, 2, 0x11, a4, 12, 0);  /* unknown command */
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V2, &r), SV_EPROTO);
    n = v2_header(b, 1, 0x11, a4, 12, 0);
    b[12] = 0x11;  /* version 1 in the binary form */
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V2, &r), SV_EPROTO);
    n = v2_header(b, 1, 0x11, a4, 12, 0);
    b[5] = 0;  /* broken signature */
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V2, &r), SV_EPROTO);
    n = v2_header(b, 1, 0x11, a4, 12, 0);
    assert_int_equal(sv_proxy_parse(b, n, SV_PROXY_V1, &r), SV_EPROTO);
}

static void test_cidr(void **state)
{
    (void)state;
    sv_cidr_t nets[3];
    assert_int_equal(sv_cidr_parse("10.0.0.0/8", &nets[0]), 0);
    assert_int_equal(sv_cidr_parse("192.168.1.77/24", &nets[1]), 0);
    assert_int_equal(sv_cidr_parse("fd00::/8", &nets[2]), 0);
    assert_true(sv_cidr_contains_text(nets, 3, "10.200.3.4"));
    assert_true(sv_cidr_contains_text(nets, 3, "192.168.1.5:80"));
    assert_false(sv_cidr_contains_text(nets, 3, "192.168.2.5"));
    assert_true(sv_cidr_contains_text(nets, 3, "[fd12::1]:443"));
    assert_true(sv_cidr_contains_text(nets, 3, "::ffff:10.1.1.1"));
    assert_false(sv_cidr_contains_text(nets, 3, "fe80::1"));
    assert_false(sv_cidr_contains_text(nets, 3, "unix"));
    sv_cidr_t c;
    assert_int_equal(sv_cidr_parse("10.0.0.0/33", &c), SV_EPARSE);
    assert_int_equal(sv_cidr_parse("10.0.0/8", &c), SV_EPARSE);
    assert_int_equal(sv_cidr_parse("/8", &c), SV_EPARSE);
    assert_int_equal(sv_cidr_parse("::1/129", &c), SV_EPARSE);
    assert_int_equal(sv_cidr_parse("::1", &c), 0);
    assert_int_equal(c.bits, 128);
}

static void test_xff(void **state)
{
    (void)state;
    sv_cidr_t t[2];
    sv_cidr_parse("127.0.0.0/8", &t[0]);
    sv_cidr_parse("10.0.0.0/8", &t[1]);
    char out[64];
    const char *v = "198.51.100.1, 203.0.113.7, 10.1.1.1";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "203.0.113.7");  /* a client cannot forge past its proxy */
    v = "10.0.0.2,127.0.0.1";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "10.0.0.2");  /* all trusted: the leftmost */
    v = "  2001:db8::7  ";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "2001:db8::7");
    v = "[2001:db8::8]:1234, 203.0.113.9:55";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "203.0.113.9");
    v = "evil<script>, 10.0.0.3";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "10.0.0.3");
    v = "not-an-ip";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), SV_EPARSE);
    assert_int_equal(sv_xff_client("", 0, t, 2, out, sizeof(out)), SV_EPARSE);
    v = "1.2.3.4,";
    assert_int_equal(sv_xff_client(v, strlen(v), t, 2, out, sizeof(out)), SV_EPARSE);
}

static void test_trusted_list(void **state)
{
    (void)state;
    sv_cidr_t t[SV_TRUSTED_MAX];
    size_t n = 0;
    char bad[64] = "";
    assert_int_equal(sv_trusted_parse(SV_TRUSTED_PROXIES_DEFAULT, t, SV_TRUSTED_MAX, &n, bad, sizeof(bad)), 0);
    assert_int_equal(n, 8);
    assert_true(sv_cidr_contains_text(t, n, "127.0.0.1:80"));
    assert_true(sv_cidr_contains_text(t, n, "[::1]:80"));
    assert_true(sv_cidr_contains_text(t, n, "172.31.255.255"));
    assert_false(sv_cidr_contains_text(t, n, "172.32.0.1"));
    assert_true(sv_cidr_contains_text(t, n, "[fd00::5]:1"));
    assert_true(sv_cidr_contains_text(t, n, "fe80::1"));
    assert_false(sv_cidr_contains_text(t, n, "203.0.113.7"));
    assert_false(sv_cidr_contains_text(t, n, "2001:db8::1"));
    assert_int_equal(sv_trusted_parse(" 10.0.0.0/8 ,, 192.0.2.7\t", t, SV_TRUSTED_MAX, &n, bad, sizeof(bad)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sv_trusted_parse("", t, SV_TRUSTED_MAX, &n, bad, sizeof(bad)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sv_trusted_parse("10.0.0.0/8,nope", t, SV_TRUSTED_MAX, &n, bad, sizeof(bad)), SV_EPARSE);
    assert_string_equal(bad, "nope");
    assert_int_equal(sv_trusted_parse("1.1.1.1,2.2.2.2", t, 1, &n, bad, sizeof(bad)), SV_ELIMIT);
    assert_string_equal(bad, "2.2.2.2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6_and_unknown),
        cmocka_unit_test(test_v1_partial_then_whole),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v2_inet_and_inet6),
        cmocka_unit_test(test_v2_local_and_bad),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_xff),
        cmocka_unit_test(test_trusted_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
