/* Unit tests for the master <-> worker protocol codec (src/cluster/proto.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/proto.h"

static void test_every_verb_round_trips(void **state)
{
    (void)state;
    for (int v = SV_PROTO_UNKNOWN + 1; v < SV_PROTO_COUNT; v++) {
        sv_proto_msg_t m;
        sv_proto_new(&m, (sv_proto_verb_t)v);
        sv_proto_int(&m, "pid", 4711);
        assert_int_equal(sv_proto_verb(m.text), v);
        assert_string_equal(sv_proto_name((sv_proto_verb_t)v), strtok(strcpy((char[64]){0}, m.text), " "));
        assert_int_equal(sv_proto_get_int(m.text, "pid", -1), 4711);
    }
}

static void test_verbs_are_distinct_and_never_prefixes(void **state)
{
    (void)state;
    /* "spawn" must not be read as "spawned" nor the other way round */
    assert_int_equal(sv_proto_verb("spawn index=1"), SV_PROTO_SPAWN);
    assert_int_equal(sv_proto_verb("spawned index=1 pid=2"), SV_PROTO_SPAWNED);
    assert_int_equal(sv_proto_verb("spawn-failed index=1"), SV_PROTO_SPAWN_FAILED);
    assert_int_equal(sv_proto_verb("stop"), SV_PROTO_STOP);
    assert_int_equal(sv_proto_verb("stopping pid=3"), SV_PROTO_STOPPING);
    for (int a = 1; a < SV_PROTO_COUNT; a++)
        for (int b = 1; b < SV_PROTO_COUNT; b++)
            if (a != b)
                assert_string_not_equal(sv_proto_name((sv_proto_verb_t)a), sv_proto_name((sv_proto_verb_t)b));
}

static void test_unknown_verbs_are_ignored(void **state)
{
    (void)state;
    assert_int_equal(sv_proto_verb(""), SV_PROTO_UNKNOWN);
    assert_int_equal(sv_proto_verb("sto"), SV_PROTO_UNKNOWN);
    assert_int_equal(sv_proto_verb("future-verb a=1"), SV_PROTO_UNKNOWN);
    assert_string_equal(sv_proto_name(SV_PROTO_UNKNOWN), "?");
    assert_string_equal(sv_proto_name(SV_PROTO_COUNT), "?");
}

static void test_values_are_encoded_and_decoded(void **state)
{
    (void)state;
    sv_proto_msg_t m;
    sv_proto_new(&m, SV_PROTO_BOOT_FAILED);
    const char *reason = "app 'x' failed; 100% = bad\tinit";
    sv_proto_str(&m, "reason", reason);
    sv_proto_int(&m, "index", -3);
    assert_null(strchr(m.text + strlen("boot-failed "), ';'));
    assert_int_equal(m.truncated, 0);
    char out[256];
    assert_true(sv_proto_get(m.text, "reason", out, sizeof(out)));
    assert_string_equal(out, reason);
    assert_int_equal(sv_proto_get_int(m.text, "index", 0), -3);
    assert_int_equal(sv_proto_get_int(m.text, "missing", 42), 42);
    assert_false(sv_proto_get(m.text, "reaso", out, sizeof(out)));
}

static void test_a_field_that_does_not_fit_is_left_out_whole(void **state)
{
    (void)state;
    sv_proto_msg_t m;
    sv_proto_new(&m, SV_PROTO_BOOT_FAILED);
    sv_proto_int(&m, "pid", 1);
    char big[SV_CHAN_MSG_MAX];
    memset(big, '%', sizeof(big) - 1); /* each one takes three bytes encoded */
    big[sizeof(big) - 1] = '\0';
    sv_proto_str(&m, "reason", big);
    assert_int_equal(m.truncated, 1);
    char out[16];
    assert_false(sv_proto_get(m.text, "reason", out, sizeof(out)));
    assert_int_equal(sv_proto_get_int(m.text, "pid", 0), 1);
    sv_proto_int(&m, "index", 7); /* later fields still go in */
    assert_int_equal(sv_proto_get_int(m.text, "index", 0), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_verb_round_trips),
        cmocka_unit_test(test_verbs_are_distinct_and_never_prefixes),
        cmocka_unit_test(test_unknown_verbs_are_ignored),
        cmocka_unit_test(test_values_are_encoded_and_decoded),
        cmocka_unit_test(test_a_field_that_does_not_fit_is_left_out_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
