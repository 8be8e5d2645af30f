/* Unit tests for the event loop (src/os/loop.c): fd watchers and timers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <unistd.h>

#include "core/time.h"
#include "os/loop.h"

typedef struct rec {
    char order[64];
    int n;
    sv_timer_t *stop_other; /* a callback that disarms another timer */
    sv_timer_t *rearm_self; /* a callback that re-arms itself at once */
} rec_t;

static rec_t rec;

static void mark_cb(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    rec.order[rec.n++] = *(const char *)arg;
    if (rec.stop_other)
        sv_loop_timer_stop(loop, rec.stop_other);
    if (rec.rearm_self == t)
        sv_loop_timer_start(loop, t, 0, 0);
}

static void wait_ms(int ms)
{
    int64_t end = sv_now_ns() / 1000000 + ms;
    while (sv_now_ns() / 1000000 < end)
        poll(NULL, 0, 1);
}

static void test_timers_fire_in_due_order(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof(rec));
    sv_loop_t *loop = sv_loop_new();
    sv_timer_t a, b, c;
    sv_timer_init(&a, mark_cb, "a");
    sv_timer_init(&b, mark_cb, "b");
    sv_timer_init(&c, mark_cb, "c");
    int64_t t0 = sv_now_ns() / 1000000; /* before arming: c is due 30 ms after its arming */
    sv_loop_timer_start(loop, &c, 30, 0);
    sv_loop_timer_start(loop, &a, 10, 0);
    sv_loop_timer_start(loop, &b, 10, 0); /* same time as a, armed after it */
    while (rec.n < 3 && sv_now_ns() / 1000000 - t0 < 2000)
        sv_loop_run_once(loop, -1);
    assert_int_equal(rec.n, 3);
    assert_memory_equal(rec.order, "abc", 3);
    assert_true(sv_now_ns() / 1000000 - t0 >= 30);
    assert_false(sv_timer_armed(&a));
    sv_loop_free(loop);
}

static void test_run_once_waits_no_longer_than_the_next_timer(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof(rec));
    sv_loop_t *loop = sv_loop_new();
    sv_timer_t a;
    sv_timer_init(&a, mark_cb, "a");
    sv_loop_timer_start(loop, &a, 20, 0);
    int64_t t0 = sv_now_ns() / 1000000;
    int r = sv_loop_run_once(loop, 5000); /* no fd: only the timer can end the wait */
    int64_t waited = sv_now_ns() / 1000000 - t0;
    if (r == 0) /* woken a little early: the next turn runs it */
        r = sv_loop_run_once(loop, 5000);
    assert_int_equal(r, 1);
    assert_int_equal(rec.n, 1);
    assert_true(waited < 2000);
    sv_loop_free(loop);
}

static void test_repeating_timer_and_stop_from_a_callback(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof(rec));
    sv_loop_t *loop = sv_loop_new();
    sv_timer_t r, victim;
    sv_timer_init(&r, mark_cb, "r");
    sv_timer_init(&victim, mark_cb, "v");
    sv_loop_timer_start(loop, &r, 1, 5);
    sv_loop_timer_start(loop, &victim, 500, 0);
    rec.stop_other = &victim; /* the first firing of r disarms victim */
    int64_t t0 = sv_now_ns() / 1000000;
    while (rec.n < 4 && sv_now_ns() / 1000000 - t0 < 3000)
        sv_loop_run_once(loop, -1);
    assert_int_equal(rec.n, 4);
    assert_memory_equal(rec.order, "rrrr", 4);
    assert_false(sv_timer_armed(&victim));
    assert_true(sv_timer_armed(&r));
    sv_loop_timer_stop(loop, &r);
    assert_false(sv_timer_armed(&r));
    assert_int_equal(sv_loop_run_once(loop, 0), 0);
    sv_loop_free(loop);
}

static void test_timer_rearmed_in_its_callback_waits_a_turn(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof(rec));
    sv_loop_t *loop = sv_loop_new();
    sv_timer_t t;
    sv_timer_init(&t, mark_cb, "t");
    rec.rearm_self = &t;
    sv_loop_timer_start(loop, &t, 0, 0);
    assert_int_equal(sv_loop_run_once(loop, 0), 1); /* not a busy loop inside one turn */
    assert_int_equal(rec.n, 1);
    assert_true(sv_timer_armed(&t));
    assert_int_equal(sv_loop_run_once(loop, 0), 1);
    assert_int_equal(rec.n, 2);
    sv_loop_timer_stop(loop, &t);
    sv_loop_free(loop);
}

static int io_calls;

static void io_cb(sv_loop_t *loop, int fd, short revents, void *arg)
{
    char b[16];
    (void)arg;
    assert_true(revents & POLLIN);
    assert_true(read(fd, b, sizeof(b)) > 0);
    io_calls++;
    sv_loop_unwatch(loop, fd); /* removing itself from inside its callback */
}

static void stop_cb(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)t, (void)arg;
    sv_loop_stop(loop);
}

static void test_watchers_and_run_until_stopped(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    sv_loop_t *loop = sv_loop_new();
    io_calls = 0;
    assert_int_equal(sv_loop_watch(loop, p[0], POLLIN, io_cb, NULL), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    sv_timer_t stop;
    sv_timer_init(&stop, stop_cb, NULL);
    sv_loop_timer_start(loop, &stop, 30, 0);
    sv_loop_run(loop); /* returns when the timer stops it */
    assert_int_equal(io_calls, 1);
    assert_int_equal(write(p[1], "y", 1), 1); /* no longer watched */
    wait_ms(2);
    assert_int_equal(sv_loop_run_once(loop, 0), 0);
    assert_int_equal(io_calls, 1);
    assert_int_equal(sv_loop_events(loop, p[0], POLLIN), -ENOENT);
    sv_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- many timers: the heap keeps due order, then arming order ------------------- */

#define MANY 3000
static sv_timer_t many[MANY];
static int fired[MANY], n_fired;

static void many_cb(sv_loop_t *loop, sv_timer_t *t, void *arg)
{
    (void)loop, (void)arg;
    fired[n_fired++] = (int)(t - many);
}

static void test_many_timers_fire_in_due_then_arming_order(void **state)
{
    (void)state;
    sv_loop_t *loop = sv_loop_new();
    int64_t at[MANY];
    uint64_t x = 88172645463325252ULL;
    n_fired = 0;
    for (int i = 0; i < MANY; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sv_timer_init(&many[i], many_cb, NULL);
        assert_int_equal(sv_loop_timer_start(loop, &many[i], (int64_t)(x % 40), 0), 0);
    }
    /* re-arming moves a timer behind the others due at its new time; stopping takes it out */
    for (int i = 0; i < MANY; i += 5)
        sv_loop_timer_start(loop, &many[i], 10, 0);
    for (int i = 3; i < MANY; i += 7)
        sv_loop_timer_stop(loop, &many[i]);
    int expected = 0;
    for (int i = 0; i < MANY; i++) {
        at[i] = many[i].at_ms;
        expected += sv_timer_armed(&many[i]);
    }
    int64_t t0 = sv_now_ns() / 1000000;
    while (n_fired < expected && sv_now_ns() / 1000000 - t0 < 5000)
        sv_loop_run_once(loop, -1);
    assert_int_equal(n_fired, expected);
    for (int k = 1; k < n_fired; k++) {
        const sv_timer_t *a = &many[fired[k - 1]], *b = &many[fired[k]];
        assert_true(at[fired[k - 1]] <= at[fired[k]]);
        if (at[fired[k - 1]] == at[fired[k]])
            assert_true(a->seq < b->seq);
    }
    for (int i = 3; i < MANY; i += 7)
        for (int k = 0; k < n_fired; k++)
            assert_int_not_equal(fired[k], i);
    sv_loop_free(loop);
}

/* ---- many watchers: the table grows, lookups by fd survive removals ------------- */

#define PIPES 200
static int watched_calls[PIPES];

static void count_cb(sv_loop_t *loop, int fd, short revents, void *arg)
{
    char b[16];
    (void)loop, (void)revents;
    assert_true(read(fd, b, sizeof(b)) > 0);
    watched_calls[(int)(intptr_t)arg]++;
}

static void test_many_watchers(void **state)
{
    (void)state;
    int p[PIPES][2];
    sv_loop_t *loop = sv_loop_new();
    memset(watched_calls, 0, sizeof(watched_calls));
    for (int i = 0; i < PIPES; i++) {
        assert_int_equal(pipe(p[i]), 0);
        assert_int_equal(sv_loop_watch(loop, p[i][0], POLLIN, count_cb, (void *)(intptr_t)i), 0);
    }
    for (int i = 0; i < PIPES; i += 3) /* every third one goes */
        sv_loop_unwatch(loop, p[i][0]);
    for (int i = 0; i < PIPES; i++)
        assert_int_equal(write(p[i][1], "x", 1), 1);
    int64_t t0 = sv_now_ns() / 1000000;
    int want = PIPES - (PIPES + 2) / 3, got = 0;
    while (got < want && sv_now_ns() / 1000000 - t0 < 2000) {
        sv_loop_run_once(loop, 100);
        got = 0;
        for (int i = 0; i < PIPES; i++)
            got += watched_calls[i];
    }
    for (int i = 0; i < PIPES; i++)
        assert_int_equal(watched_calls[i], i % 3 ? 1 : 0);
    /* an unwatched fd watched again is found again */
    assert_int_equal(sv_loop_watch(loop, p[0][0], POLLIN, count_cb, (void *)(intptr_t)0), 0);
    assert_int_equal(sv_loop_events(loop, p[0][0], POLLIN), 0);
    assert_int_equal(sv_loop_events(loop, p[3][0], POLLIN), -ENOENT);
    sv_loop_run_once(loop, 100);
    assert_int_equal(watched_calls[0], 1);
    assert_int_equal(sv_loop_watch(loop, -1, POLLIN, count_cb, NULL), -EBADF);
    sv_loop_free(loop);
    for (int i = 0; i < PIPES; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_due_order),
        cmocka_unit_test(test_run_once_waits_no_longer_than_the_next_timer),
        cmocka_unit_test(test_repeating_timer_and_stop_from_a_callback),
        cmocka_unit_test(test_timer_rearmed_in_its_callback_waits_a_turn),
        cmocka_unit_test(test_watchers_and_run_until_stopped),
        cmocka_unit_test(test_many_timers_fire_in_due_then_arming_order),
        cmocka_unit_test(test_many_watchers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
