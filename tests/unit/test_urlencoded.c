/*
 * test_urlencoded.c: percent-decoding, form fields and cookies
 * (src/http/urlencoded.c), the string helpers apps get from serval.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serval.h"

static long decode(char *buf, size_t cap, const char *s, int plus)
{
    return serval_url_decode(buf, cap, s, strlen(s), plus);
}

static long field(const char *form, const char *name, size_t nth, char *buf, size_t cap)
{
    return serval_form_value(form, strlen(form), name, nth, buf, cap);
}

static long cookie(const char *header, const char *name, char *buf, size_t cap)
{
    return serval_cookie_value(header, strlen(header), name, buf, cap);
}

/* ---- serval_url_decode ----------------------------------------------------- */

static void test_decode_plain_and_escapes(void **state)
{
    char buf[64];
    assert_int_equal(decode(buf, sizeof buf, "abc", 1), 3);
    assert_string_equal(buf, "abc");
    assert_int_equal(decode(buf, sizeof buf, "a%20b%2Fc%3d", 1), 6);
    assert_string_equal(buf, "a b/c=");
    assert_int_equal(decode(buf, sizeof buf, "%C3%A9t%c3%a9", 1), 5); /* hex either case */
    assert_string_equal(buf, "\xc3\xa9t\xc3\xa9");
    assert_int_equal(decode(buf, sizeof buf, "", 1), 0);
    assert_string_equal(buf, "");
}

static void test_decode_plus(void **state)
{
    char buf[64];
    assert_int_equal(decode(buf, sizeof buf, "a+b%2B", 1), 4);
    assert_string_equal(buf, "a b+");
    assert_int_equal(decode(buf, sizeof buf, "a+b", 0), 3); /* paths keep '+' */
    assert_string_equal(buf, "a+b");
}

static void test_decode_bad_escapes(void **state)
{
    char buf[64];
    assert_int_equal(decode(buf, sizeof buf, "%", 1), -EINVAL);
    assert_int_equal(decode(buf, sizeof buf, "a%2", 1), -EINVAL);
    assert_int_equal(decode(buf, sizeof buf, "%zz", 1), -EINVAL);
    assert_int_equal(decode(buf, sizeof buf, "%2g", 1), -EINVAL);
    assert_int_equal(decode(buf, sizeof buf, "%%41", 1), -EINVAL);
    assert_int_equal(serval_url_decode(NULL, 4, "a", 1, 1), -EINVAL);
}

static void test_decode_nul_byte_counts(void **state)
{
    char buf[8];
    assert_int_equal(decode(buf, sizeof buf, "a%00b", 1), 3);
    assert_memory_equal(buf, "a\0b\0", 4);
}

static void test_decode_capacity(void **state)
{
    char buf[4];
    assert_int_equal(decode(buf, sizeof buf, "abc", 1), 3); /* 3 + NUL fits exactly */
    assert_int_equal(decode(buf, sizeof buf, "abcd", 1), -ENOSPC);
    assert_int_equal(decode(buf, sizeof buf, "%41%42%43", 1), 3); /* decoded size counts */
    assert_int_equal(serval_url_decode(buf, 0, "", 0, 1), -ENOSPC);
    assert_int_equal(serval_url_decode(buf, 1, "", 0, 1), 0);
}

static void test_failure_leaves_the_buffer_alone(void **state)
{
    char buf[8] = "dflt";
    assert_int_equal(decode(buf, sizeof buf, "ab%zz", 1), -EINVAL);
    assert_string_equal(buf, "dflt");
    assert_int_equal(decode(buf, sizeof buf, "much too long", 1), -ENOSPC);
    assert_string_equal(buf, "dflt");
    assert_int_equal(field("a=1", "b", 0, buf, sizeof buf), -ENOENT);
    assert_string_equal(buf, "dflt");
    assert_int_equal(cookie("a=long value", "a", buf, 4), -ENOSPC);
    assert_string_equal(buf, "dflt");
}

static void test_decode_in_place(void **state)
{
    char s[] = "x%41+y";
    assert_int_equal(serval_url_decode(s, sizeof s, s, strlen(s), 1), 4);
    assert_string_equal(s, "xA y");
}

/* ---- serval_form_next ------------------------------------------------------ */

static void test_form_next_walks_fields(void **state)
{
    const char *f = "&a=1&&b&=z&c=&";
    size_t pos = 0;
    serval_form_pair_t p;
    assert_int_equal(serval_form_next(f, strlen(f), &pos, &p), 1);
    assert_int_equal(p.name_len, 1);
    assert_memory_equal(p.name, "a", 1);
    assert_int_equal(p.value_len, 1);
    assert_memory_equal(p.value, "1", 1);
    assert_true(p.has_value);
    assert_int_equal(serval_form_next(f, strlen(f), &pos, &p), 1);
    assert_memory_equal(p.name, "b", 1);
    assert_false(p.has_value);
    assert_int_equal(p.value_len, 0);
    assert_int_equal(serval_form_next(f, strlen(f), &pos, &p), 1);
    assert_int_equal(p.name_len, 0);
    assert_memory_equal(p.value, "z", 1);
    assert_int_equal(serval_form_next(f, strlen(f), &pos, &p), 1);
    assert_memory_equal(p.name, "c", 1);
    assert_true(p.has_value);
    assert_int_equal(p.value_len, 0);
    assert_int_equal(serval_form_next(f, strlen(f), &pos, &p), 0);
    assert_int_equal(serval_form_next(f, strlen(f), &pos, &p), 0); /* stays at the end */
}

static void test_form_next_empty(void **state)
{
    size_t pos = 0;
    serval_form_pair_t p;
    assert_int_equal(serval_form_next("", 0, &pos, &p), 0);
    pos = 0;
    assert_int_equal(serval_form_next("&&&", 3, &pos, &p), 0);
    assert_int_equal(serval_form_next(NULL, 0, &pos, &p), 0);
}

static void test_form_next_respects_len(void **state)
{
    /* the string goes on past len: nothing beyond it is read */
    const char *f = "a=1&b=2";
    size_t pos = 0;
    serval_form_pair_t p;
    assert_int_equal(serval_form_next(f, 2, &pos, &p), 1);
    assert_int_equal(p.value_len, 0);
    assert_true(p.has_value);
    assert_int_equal(serval_form_next(f, 2, &pos, &p), 0);
}

/* ---- serval_form_value ----------------------------------------------------- */

static void test_form_value_lookup(void **state)
{
    char buf[64];
    const char *q = "title=Hello+World&tag=a&n=42&tag=b%26c&empty=&bare";
    assert_int_equal(field(q, "title", 0, buf, sizeof buf), 11);
    assert_string_equal(buf, "Hello World");
    assert_int_equal(field(q, "n", 0, buf, sizeof buf), 2);
    assert_string_equal(buf, "42");
    assert_int_equal(field(q, "empty", 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(field(q, "bare", 0, buf, sizeof buf), 0); /* no '=' */
    assert_string_equal(buf, "");
    assert_int_equal(field(q, "missing", 0, buf, sizeof buf), -ENOENT);
    assert_int_equal(field(q, "titl", 0, buf, sizeof buf), -ENOENT); /* no prefix match */
    assert_int_equal(field(q, "title2", 0, buf, sizeof buf), -ENOENT);
}

static void test_form_value_repeated_keys(void **state)
{
    char buf[64];
    const char *q = "tag=a&x=1&tag=b%26c&tag=";
    assert_int_equal(field(q, "tag", 0, buf, sizeof buf), 1);
    assert_string_equal(buf, "a");
    assert_int_equal(field(q, "tag", 1, buf, sizeof buf), 3);
    assert_string_equal(buf, "b&c");
    assert_int_equal(field(q, "tag", 2, buf, sizeof buf), 0);
    assert_int_equal(field(q, "tag", 3, buf, sizeof buf), -ENOENT);
}

static void test_form_value_encoded_names(void **state)
{
    char buf[64];
    assert_int_equal(field("first+name=Ada&a%5Bb%5D=1", "first name", 0, buf, sizeof buf), 3);
    assert_string_equal(buf, "Ada");
    assert_int_equal(field("first+name=Ada&a%5Bb%5D=1", "a[b]", 0, buf, sizeof buf), 1);
    /* a badly encoded name matches nothing, and does not hide later fields */
    assert_int_equal(field("a%zz=1&a=2", "a", 0, buf, sizeof buf), 1);
    assert_string_equal(buf, "2");
    assert_int_equal(field("a%=1", "a%", 0, buf, sizeof buf), -ENOENT);
    /* an empty name is a name */
    assert_int_equal(field("=v&x=1", "", 0, buf, sizeof buf), 1);
}

static void test_form_value_bad_value(void **state)
{
    char buf[64];
    assert_int_equal(field("a=%G1&b=ok", "a", 0, buf, sizeof buf), -EINVAL);
    assert_int_equal(field("a=%G1&b=ok", "b", 0, buf, sizeof buf), 2);
    assert_int_equal(field("a=1", "a", 0, buf, 1), -ENOSPC);
    assert_int_equal(field("a=1", NULL, 0, buf, sizeof buf), -EINVAL);
}

static void test_form_value_huge_input(void **state)
{
    /* 4 MiB of fields, the wanted one last, its value 1 MiB of escapes */
    size_t fields = 200000, vlen = 1 << 20;
    size_t cap = fields * 20 + 16 + 3 * vlen;
    char *form = malloc(cap);
    assert_non_null(form);
    size_t n = 0;
    for (size_t i = 0; i < fields; i++)
        n += (size_t)snprintf(form + n, cap - n, "k%zu=v&", i);
    memcpy(form + n, "big=", 4);
    n += 4;
    for (size_t i = 0; i < vlen; i++, n += 3)
        memcpy(form + n, "%41", 3);
    char *out = malloc(vlen + 1);
    assert_non_null(out);
    assert_int_equal(serval_form_value(form, n, "big", 0, out, vlen + 1), (long)vlen);
    assert_int_equal(out[0], 'A');
    assert_int_equal(out[vlen - 1], 'A');
    assert_int_equal(serval_form_value(form, n, "big", 0, out, vlen), -ENOSPC);
    assert_int_equal(serval_form_value(form, n, "k199999", 0, out, vlen), 1);
    assert_int_equal(serval_form_value(form, n, "nope", 0, out, vlen), -ENOENT);
    free(out);
    free(form);
}

/* ---- serval_cookie_value --------------------------------------------------- */

static void test_cookie_lookup(void **state)
{
    char buf[64];
    const char *h = "session=abc123; theme=dark;lang=en ;  spaced = yes ";
    assert_int_equal(cookie(h, "session", buf, sizeof buf), 6);
    assert_string_equal(buf, "abc123");
    assert_int_equal(cookie(h, "theme", buf, sizeof buf), 4);
    assert_string_equal(buf, "dark");
    assert_int_equal(cookie(h, "lang", buf, sizeof buf), 2);
    assert_string_equal(buf, "en");
    assert_int_equal(cookie(h, "spaced", buf, sizeof buf), 3);
    assert_string_equal(buf, "yes");
    assert_int_equal(cookie(h, "sess", buf, sizeof buf), -ENOENT);
    assert_int_equal(cookie(h, "Session", buf, sizeof buf), -ENOENT); /* names are case-sensitive */
}

static void test_cookie_edge_cases(void **state)
{
    char buf[64];
    assert_int_equal(cookie("a=\"quoted value\"; b=2", "a", buf, sizeof buf), 12);
    assert_string_equal(buf, "quoted value");
    assert_int_equal(cookie("a=%41", "a", buf, sizeof buf), 3); /* not decoded */
    assert_string_equal(buf, "%41");
    assert_int_equal(cookie("a=1; a=2", "a", buf, sizeof buf), 1); /* first wins */
    assert_string_equal(buf, "1");
    assert_int_equal(cookie("junk; ;;a=; b=x=y", "a", buf, sizeof buf), 0);
    assert_int_equal(cookie("junk; ;;a=; b=x=y", "b", buf, sizeof buf), 3);
    assert_string_equal(buf, "x=y");
    assert_int_equal(cookie("junk", "junk", buf, sizeof buf), -ENOENT);
    assert_int_equal(cookie("", "a", buf, sizeof buf), -ENOENT);
    assert_int_equal(cookie("a=\"", "a", buf, sizeof buf), 1); /* a lone quote stays */
    assert_int_equal(cookie("a=long", "a", buf, 4), -ENOSPC);
    assert_int_equal(cookie("a=1", "a", NULL, 4), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_plain_and_escapes),
        cmocka_unit_test(test_decode_plus),
        cmocka_unit_test(test_decode_bad_escapes),
        cmocka_unit_test(test_decode_nul_byte_counts),
        cmocka_unit_test(test_decode_capacity),
        cmocka_unit_test(test_failure_leaves_the_buffer_alone),
        cmocka_unit_test(test_decode_in_place),
        cmocka_unit_test(test_form_next_walks_fields),
        cmocka_unit_test(test_form_next_empty),
        cmocka_unit_test(test_form_next_respects_len),
        cmocka_unit_test(test_form_value_lookup),
        cmocka_unit_test(test_form_value_repeated_keys),
        cmocka_unit_test(test_form_value_encoded_names),
        cmocka_unit_test(test_form_value_bad_value),
        cmocka_unit_test(test_form_value_huge_input),
        cmocka_unit_test(test_cookie_lookup),
        cmocka_unit_test(test_cookie_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
