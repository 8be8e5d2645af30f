/* Unit tests for the handover module (src/cluster/handover.c): SERVAL_INHERIT without fixed caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "cluster/handover.h"
#include "os/chan.h"

/* Build n worker records and a master record, as the hot machine writes them. */
static void records(sv_buf_t *env, int n)
{
    for (int i = 0; i < n; i++) {
        char rec[200];
        snprintf(rec, sizeof(rec), "worker");
        sv_msg_put_int(rec, sizeof(rec), "pid", 100000 + i);
        sv_msg_put_int(rec, sizeof(rec), "index", i);
        sv_msg_put_int(rec, sizeof(rec), "phase", 3);
        sv_msg_put_int(rec, sizeof(rec), "fd", -1); /* no fd: drop has nothing to close */
        sv_msg_put(rec, sizeof(rec), "note", "a value; with = and %");
        sv_handover_add(env, rec);
    }
    sv_handover_add(env, "master d_stopped=1 spawned=7");
}

/* Through the variable, as the new image reads it: every record, each taken once. */
static void round_trip(int n, int want_memfd) /* 1, 0, or -1: either */
{
    sv_buf_t env = SV_BUF_INIT, assignment = SV_BUF_INIT;
    records(&env, n);
    int memfd = -1;
    assert_int_equal(sv_handover_assignment(&env, &assignment, &memfd), 0);
    if (want_memfd >= 0)
        assert_int_equal(memfd >= 0, want_memfd);
    if (memfd >= 0) {
        char expect[64];
        snprintf(expect, sizeof(expect), "%s=@%d", SV_HANDOVER_ENV, memfd);
        assert_string_equal(assignment.data, expect);
        assert_int_equal(fcntl(memfd, F_GETFD) & FD_CLOEXEC, 0); /* the exec keeps it */
    }
    const char *eq = strchr(assignment.data, '=');
    assert_non_null(eq);
    assert_int_equal(setenv(SV_HANDOVER_ENV, eq + 1, 1), 0);
    sv_runtime_t *rt = calloc(1, sizeof(*rt));
    sv_handover_read(rt);
    assert_true(rt->hot_restarted);
    assert_null(getenv(SV_HANDOVER_ENV)); /* the app never sees it */
    assert_int_equal(rt->n_handover, n + 1);
    char *m = NULL;
    assert_int_equal(sv_handover_take(rt, "master", &m, 1), 1);
    assert_int_equal(sv_msg_int(m, "spawned", 0), 7);
    free(m);
    int seen = 0;
    char *rec;
    while ((rec = sv_handover_take_next(rt, "worker")) != NULL) {
        assert_int_equal(sv_msg_int(rec, "index", -1), seen);
        assert_int_equal(sv_msg_int(rec, "pid", 0), 100000 + seen);
        char note[64];
        assert_true(sv_msg_get(rec, "note", note, sizeof(note)));
        assert_string_equal(note, "a value; with = and %");
        free(rec);
        seen++;
    }
    assert_int_equal(seen, n);
    assert_null(sv_handover_take_next(rt, "worker"));
    sv_handover_drop(rt);
    assert_int_equal(rt->n_handover, 0);
    if (memfd >= 0) /* read and closed by the new image */
        assert_int_equal(fcntl(memfd, F_GETFD), -1);
    free(rt);
    sv_buf_free(&env);
    sv_buf_free(&assignment);
}

static void test_a_small_handover_rides_in_the_variable(void **state)
{
    (void)state;
    round_trip(4, 0);
}

static void test_1024_workers_and_more_cross_whole(void **state)
{
    (void)state;
    round_trip(1024, -1); /* ~80 KiB: in the variable still */
    round_trip(4096, 1);  /* past 96 KiB: in a memfd */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_small_handover_rides_in_the_variable),
        cmocka_unit_test(test_1024_workers_and_more_cross_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
