/* Unit tests for the restart operations log (src/cluster/ops.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/ops.h"

static void test_first_request_runs_at_once(void **state)
{
    (void)state;
    sv_oplog_t log;
    sv_oplog_init(&log);
    int id = sv_oplog_begin(&log, SV_OP_PHASED, "signal");
    assert_int_equal(id, 1);
    assert_non_null(log.current);
    assert_int_equal(log.current->state, SV_OPS_RUNNING);
    assert_null(sv_oplog_next(&log));
}

static void test_same_kind_is_merged_other_kind_queued(void **state)
{
    (void)state;
    sv_oplog_t log;
    sv_oplog_init(&log);
    int a = sv_oplog_begin(&log, SV_OP_PHASED, "signal");
    assert_int_equal(sv_oplog_begin(&log, SV_OP_PHASED, "control"), a);
    int b = sv_oplog_begin(&log, SV_OP_HOT, "control");
    assert_int_not_equal(a, b);
    assert_int_equal(sv_oplog_begin(&log, SV_OP_HOT, "signal"), b); /* merged into the queued one */
    assert_int_equal(sv_oplog_find(&log, b)->state, SV_OPS_QUEUED);
    sv_oplog_finish_current(&log, true, NULL);
    assert_int_equal(sv_oplog_find(&log, a)->state, SV_OPS_SUCCEEDED);
    sv_op_t *next = sv_oplog_next(&log);
    assert_non_null(next);
    assert_int_equal(next->id, b);
    assert_int_equal(next->state, SV_OPS_RUNNING);
}

static void test_a_newer_kind_supersedes_the_queued_one(void **state)
{
    (void)state;
    sv_oplog_t log;
    sv_oplog_init(&log);
    sv_oplog_begin(&log, SV_OP_PHASED, "a");
    int q = sv_oplog_begin(&log, SV_OP_REFORK, "b");
    int h = sv_oplog_begin(&log, SV_OP_HOT, "c");
    assert_int_equal(sv_oplog_find(&log, q)->state, SV_OPS_FAILED);
    assert_non_null(strstr(sv_oplog_find(&log, q)->error, "superseded"));
    assert_int_equal(log.queued->id, h);
}

static void test_failure_keeps_its_reason_and_counts(void **state)
{
    (void)state;
    sv_oplog_t log;
    sv_oplog_init(&log);
    int id = sv_oplog_begin(&log, SV_OP_HOT, "x");
    sv_oplog_progress(&log, 1, 2);
    sv_oplog_finish_current(&log, false, "worker 0 could not boot");
    sv_op_t *op = sv_oplog_find(&log, id);
    assert_int_equal(op->state, SV_OPS_FAILED);
    assert_string_equal(op->error, "worker 0 could not boot");
    assert_int_equal(op->done, 1);
    assert_int_equal(log.outcomes[SV_OP_HOT][0], 1);
    assert_int_equal(log.outcomes[SV_OP_HOT][1], 0);
    assert_null(log.current);
}

static void test_ring_keeps_the_latest(void **state)
{
    (void)state;
    sv_oplog_t log;
    sv_oplog_init(&log);
    for (int i = 0; i < SV_OPLOG_SIZE * 3; i++) {
        sv_oplog_begin(&log, SV_OP_REFORK, "auto");
        sv_oplog_finish_current(&log, true, NULL);
    }
    assert_null(sv_oplog_find(&log, 1));
    assert_non_null(sv_oplog_find(&log, SV_OPLOG_SIZE * 3));
}

/* A hot restart hands the log to the new image: ids, states, the running and queued ones survive. */
static void test_handover_round_trip(void **state)
{
    (void)state;
    sv_oplog_t log, copy;
    sv_oplog_init(&log);
    sv_oplog_begin(&log, SV_OP_PHASED, "signal");
    sv_oplog_finish_current(&log, false, "no; reason=with spaces");
    int hot = sv_oplog_begin(&log, SV_OP_HOT, "control");
    int queued = sv_oplog_begin(&log, SV_OP_REFORK, "auto");
    char buf[SV_OPLOG_SIZE * 700];
    sv_oplog_handover(&log, buf, sizeof(buf));
    sv_oplog_init(&copy);
    char *save = NULL;
    for (char *rec = strtok_r(buf, ";", &save); rec; rec = strtok_r(NULL, ";", &save))
        sv_oplog_adopt(&copy, rec);
    assert_non_null(copy.current);
    assert_int_equal(copy.current->id, hot);
    assert_non_null(copy.queued);
    assert_int_equal(copy.queued->id, queued);
    assert_string_equal(sv_oplog_find(&copy, 1)->error, "no; reason=with spaces");
    assert_int_equal(copy.outcomes[SV_OP_PHASED][0], 1);
    assert_int_equal(sv_oplog_begin(&copy, SV_OP_PHASED, "x"), queued + 1); /* ids keep counting */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_request_runs_at_once),
        cmocka_unit_test(test_same_kind_is_merged_other_kind_queued),
        cmocka_unit_test(test_a_newer_kind_supersedes_the_queued_one),
        cmocka_unit_test(test_failure_keeps_its_reason_and_counts),
        cmocka_unit_test(test_ring_keeps_the_latest),
        cmocka_unit_test(test_handover_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
