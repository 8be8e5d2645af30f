/*
 * test_rebalance.c: the arithmetic of rebalancing keep-alive connections
 * between workers (src/server/rebalance.c): when a worker is clearly over
 * its share, where it stops, and how many connections a period closes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/internal.h"

/* Would a worker with conns of max threads start shedding, the live workers holding total on total_max? */
static bool starts(int conns, int max, int total, int total_max)
{
    sv_rb_share_t sh = sv_rebalance_share(max, total, total_max);
    return conns - sh.fair > sh.hi;
}

static bool stops(int conns, int max, int total, int total_max)
{
    sv_rb_share_t sh = sv_rebalance_share(max, total, total_max);
    return conns - sh.fair <= sh.lo;
}

static void test_steady_load_never_starts(void **state)
{
    (void)state;
    /* wrk -c100 on two workers splits 49-55 with the steering alone */
    for (int a = 45; a <= 60; a++)
        assert_false(starts(a, 5, 100, 10));
    /* 20 clients spread by the steering (its slack is 1 + n/16) */
    for (int a = 10; a <= 13; a++)
        assert_false(starts(a, 5, 20, 10));
    /* a handful of connections is never worth a reconnect */
    assert_false(starts(3, 5, 3, 10));
    assert_false(starts(4, 5, 4, 10));
}

static void test_after_a_restart_it_starts_and_stops_within_slack(void **state)
{
    (void)state;
    /* bench/restart: 25 keep-alive clients all on one of two workers */
    assert_true(starts(25, 5, 25, 10));
    assert_false(stops(25, 5, 25, 10));
    int a = 25;
    while (!stops(a, 5, 25, 10))
        a--;
    assert_true(a >= 13 && a <= 15); /* 14/11: within the steering's slack, no more churn */
    /* hysteresis: where it stops it does not start again */
    assert_false(starts(a, 5, 25, 10));
    assert_false(starts(a + 2, 5, 25, 10));
    /* ten clients on -w 2 -t 5:5, all on one worker (half the threads idle) */
    assert_true(starts(10, 5, 10, 10));
    /* a thousand behind an upstream pool */
    assert_true(starts(1000, 5, 1000, 10));
    assert_true(stops(530, 5, 1000, 10));
}

static void test_share_follows_max_threads(void **state)
{
    (void)state;
    /* a worker of 10 threads beside one of 5 holds two thirds by right */
    sv_rb_share_t sh = sv_rebalance_share(10, 30, 15);
    assert_true(sh.fair > 19.9 && sh.fair < 20.1);
    assert_false(starts(20, 10, 30, 15));
    assert_true(starts(28, 10, 30, 15));
    /* a worker with max 0 (not taking connections) has no share and no threads to count */
    sh = sv_rebalance_share(0, 30, 15);
    assert_true(sh.fair == 0 && sh.hi == 0);
    sh = sv_rebalance_share(5, 30, 0);
    assert_true(sh.fair == 0);
}

static void test_batch_is_bounded(void **state)
{
    (void)state;
    assert_int_equal(sv_rebalance_batch(25, 0), 0);
    assert_int_equal(sv_rebalance_batch(25, -3), 0);
    assert_int_equal(sv_rebalance_batch(25, 0.2), 1); /* just over the mark: one more */
    assert_int_equal(sv_rebalance_batch(25, 10.7), 2);
    assert_int_equal(sv_rebalance_batch(160, 70), 10);   /* 1/16 of what it holds */
    assert_int_equal(sv_rebalance_batch(10000, 4000), 32); /* never a storm */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_load_never_starts),
        cmocka_unit_test(test_after_a_restart_it_starts_and_stops_within_slack),
        cmocka_unit_test(test_share_follows_max_threads),
        cmocka_unit_test(test_batch_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
