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

/* Two workers: this one holds a of max threads, the peer b of pmax. */
static sv_rb_view_t two(int a, int max, int b, int pmax)
{
    sv_rb_view_t v = {.conns = a, .max = max, .total = a + b, .total_max = max + pmax, .peers = 1};
    v.room = b < pmax ? pmax - b : 0;
    sv_rb_share_t sh = sv_rebalance_share(pmax, v.total, v.total_max);
    v.target = b < sh.fair - sh.lo;
    return v;
}

/* Would this worker start shedding (a of max threads, the peer b; 5 threads each unless said)? */
static bool starts_t(int a, int b, int max)
{
    sv_rb_view_t v = two(a, max, b, max);
    return sv_rebalance_need(&v, false) > 0;
}

static bool starts(int a, int b)
{
    return starts_t(a, b, 5);
}

/* Once shedding, does it stop here? */
static bool stops_t(int a, int b, int max)
{
    sv_rb_view_t v = two(a, max, b, max);
    return sv_rebalance_need(&v, true) <= 0;
}

static bool stops(int a, int b)
{
    return stops_t(a, b, 5);
}

static void test_steady_load_never_starts(void **state)
{
    (void)state;
    /* wrk -c100 on two workers splits 49-55 with the steering alone, at any -t */
    for (int a = 45; a <= 60; a++) {
        assert_false(starts(a, 100 - a));
        assert_false(starts_t(a, 100 - a, 16));
    }
    /* 20 clients spread by the steering (its slack is 1 + n/16) */
    for (int a = 10; a <= 13; a++)
        assert_false(starts(a, 20 - a));
    /* a handful of connections, each with a thread of its own, is never worth a reconnect */
    assert_false(starts(3, 0));
    assert_false(starts(4, 0));
    assert_false(starts(5, 0));
    /* one more connection than threads, and the peer's threads all spoken for */
    assert_false(starts(6, 5));
    assert_false(starts_t(2, 1, 1));
}

static void test_after_a_restart_it_starts_and_stops_within_slack(void **state)
{
    (void)state;
    /* bench/restart: 25 keep-alive clients all on one of two workers */
    assert_true(starts(25, 0));
    int a = 25;
    while (!stops(a, 25 - a))
        a--;
    assert_int_equal(a, 14); /* 14/11: within the steering's slack, no more churn */
    /* hysteresis: where it stops it does not start again */
    assert_false(starts(14, 11));
    assert_false(starts(16, 9));
    assert_true(starts(18, 7));
    /* 20 clients after a TTIN stop at 11/9 */
    a = 20;
    while (!stops(a, 20 - a))
        a--;
    assert_int_equal(a, 11);
    /* a thousand behind an upstream pool */
    assert_true(starts(1000, 0));
    assert_true(stops(530, 470));
    assert_false(stops(540, 460));
}

static void test_capacity_moves_what_waits_for_a_thread(void **state)
{
    (void)state;
    /* -t 5:5, ten clients 7/3: two wait for a thread here while two threads idle there */
    sv_rb_view_t v = two(7, 5, 3, 5);
    assert_true(sv_rebalance_need(&v, false) == 2);
    assert_false(starts(6, 5)); /* no thread free there */
    v = two(6, 5, 4, 5);
    assert_true(sv_rebalance_need(&v, false) == 1);
    assert_true(stops(5, 5));
    /* the share alone would have left 7/3 and 9/1 at 6/4 */
    assert_true(starts(9, 1) && !stops(6, 4));
    /* -t 16:16: 20 of 25 clients on one worker, all with threads: only the share counts */
    assert_true(starts_t(20, 5, 16));
    assert_false(starts_t(16, 9, 16));
}

static void test_share_follows_max_threads(void **state)
{
    (void)state;
    /* a worker of 10 threads beside one of 5 holds two thirds by right */
    sv_rb_share_t sh = sv_rebalance_share(10, 30, 15);
    assert_true(sh.fair > 19.9 && sh.fair < 20.1);
    sv_rb_view_t v = two(20, 10, 10, 5);
    assert_true(sv_rebalance_need(&v, false) == 0);
    v = two(28, 10, 2, 5);
    assert_true(sv_rebalance_need(&v, false) > 0);
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
        cmocka_unit_test(test_capacity_moves_what_waits_for_a_thread),
        cmocka_unit_test(test_share_follows_max_threads),
        cmocka_unit_test(test_batch_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
