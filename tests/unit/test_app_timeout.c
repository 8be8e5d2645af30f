/*
 * test_app_timeout.c: the app_timeout directive (src/config/directives.c)
 * and stacks with function names (src/os/backtrace.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/err.h"
#include "os/backtrace.h"

/* ---- the directive ---------------------------------------------------- */

static int parse(sv_config_t *c, const char *text, sv_diag_t *d)
{
    sv_config_defaults(c);
    d->msg[0] = '\0';
    return sv_config_parse_text(c, "puma.rb", text, d);
}

static void test_directive(void **state)
{
    (void)state;
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "", &d), 0);
    assert_true(c.app_timeout == 0 && c.app_timeout_cleanup == 5);
    sv_config_free(&c);

    assert_int_equal(parse(&c, "app_timeout 30\n", &d), 0);
    assert_true(c.app_timeout == 30 && c.app_timeout_cleanup == 5);
    sv_config_free(&c);

    assert_int_equal(parse(&c, "app_timeout 2.5, cleanup: 1\n", &d), 0);
    assert_true(c.app_timeout == 2.5 && c.app_timeout_cleanup == 1);
    sv_config_free(&c);

    assert_int_equal(parse(&c, "app_timeout 10, { cleanup: 0 }\n", &d), 0);
    assert_true(c.app_timeout == 10 && c.app_timeout_cleanup == 0);
    sv_config_free(&c);

    assert_int_equal(parse(&c, "app_timeout 10, grace: 3\n", &d), SV_ECONFIG);
    assert_non_null(strstr(d.msg, "puma.rb:1:"));
    assert_non_null(strstr(d.msg, "unknown option 'grace' (known: cleanup)"));
    sv_config_free(&c);

    assert_int_equal(parse(&c, "app_timeout -1\n", &d), SV_ECONFIG);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "app_timeout 10, 3\n", &d), SV_ECONFIG);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "app_timeout \"soon\"\n", &d), SV_ECONFIG);
    sv_config_free(&c);
}

/* ---- stacks ----------------------------------------------------------- */

static bool has_frame(const sv_bt_t *bt, const char *name)
{
    char buf[400];
    for (int i = 0; i < bt->n; i++) {
        sv_bt_frame_name(bt, i, buf, sizeof(buf));
        if (!strncmp(buf, name, strlen(name)) && buf[strlen(name)] == '+')
            return true;
    }
    return false;
}

/* static and not inlined: its name comes from .symtab, not from the dynamic symbols */
__attribute__((noinline)) static int static_frame_for_test(sv_bt_t *bt)
{
    int n = sv_bt_capture_self(bt);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return n;
}

static void test_capture_self(void **state)
{
    (void)state;
    sv_bt_t bt;
    assert_true(static_frame_for_test(&bt) > 2);
    assert_true(has_frame(&bt, "static_frame_for_test"));
    assert_true(has_frame(&bt, "test_capture_self"));
    char buf[400];
    sv_bt_frame_name(&bt, 0, buf, sizeof(buf));
    assert_non_null(strstr(buf, "(test_app_timeout)")); /* the executable's own name, not argv[0] */
}

static sv_bt_slot_t other_slot;
static _Atomic int other_tid, other_stop;

__attribute__((noinline)) static void other_thread_waits_here(void)
{
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&other_stop))
        nanosleep(&ms, NULL);
}

static void *other_main(void *arg)
{
    (void)arg;
    sv_bt_thread_attach(&other_slot);
    atomic_store(&other_tid, (int)syscall(SYS_gettid));
    other_thread_waits_here();
    sv_bt_thread_detach();
    return NULL;
}

static void test_capture_other_thread(void **state)
{
    (void)state;
    assert_int_equal(sv_bt_init(), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_main, NULL), 0);
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 5000 && !atomic_load(&other_tid); i++)
        nanosleep(&ms, NULL);
    int n = sv_bt_capture_thread(&other_slot, atomic_load(&other_tid), 2000);
    assert_true(n > 0);
    assert_true(has_frame(&other_slot.bt, "other_thread_waits_here"));
    assert_true(has_frame(&other_slot.bt, "other_main"));
    atomic_store(&other_stop, 1);
    pthread_join(th, NULL);
    /* a thread that does not exist (any more) gets no capture */
    assert_true(sv_bt_capture_thread(&other_slot, atomic_load(&other_tid), 50) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directive),
        cmocka_unit_test(test_capture_self),
        cmocka_unit_test(test_capture_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
