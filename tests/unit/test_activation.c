/*
 * test_activation.c: systemd socket activation (src/os/activation.c) and the
 * saved environment a hot restart execs with (src/cluster/activate.c).
 * The passed sockets are put at fds 3 and 4, as systemd does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cluster/activate.h"
#include "core/err.h"
#include "os/activation.h"

static char dir[64];
static char sock_path[96];

static int tcp_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int unix_listener(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/* Put fds at 3, 4, ... as systemd passes them (through high numbers, so no two collide). */
static void place(const int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(dup2(fds[i], 200 + i), 200 + i);
        close(fds[i]);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(dup2(200 + i, SV_ACTIVATION_FIRST_FD + i), SV_ACTIVATION_FIRST_FD + i);
        close(200 + i);
    }
}

static void set_env(const char *pid, const char *fds, const char *names)
{
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

static void assert_env_gone(void)
{
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_null(getenv("LISTEN_FDNAMES"));
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sv_activation_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock_path, sizeof(sock_path), "%s/web.sock", dir);
    return 0;
}

static int teardown(void **state)
{
    char link[160];
    snprintf(link, sizeof(link), "%s/current", dir);
    unlink(link);
    unlink(sock_path);
    rmdir(dir);
    return 0;
}

static void test_take_and_match(void **state)
{
    int port;
    int fds[2] = {tcp_listener(&port), unix_listener(sock_path)};
    place(fds, 2);
    char pid[16], err[256] = "";
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    set_env(pid, "2", "web:local");
    sv_activated_t a[4];
    assert_int_equal(sv_activation_take(a, 4, err, sizeof(err)), 2);
    assert_env_gone();
    char want[600];
    snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", port);
    assert_string_equal(a[0].uri, want);
    assert_string_equal(a[0].name, "web");
    assert_int_equal(a[0].fd, 3);
    snprintf(want, sizeof(want), "unix://%s", sock_path);
    assert_string_equal(a[1].uri, want);
    assert_string_equal(a[1].name, "local");
    for (int i = 0; i < 2; i++) {
        assert_true(fcntl(a[i].fd, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(a[i].fd, F_GETFL) & O_NONBLOCK);
    }

    snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", port);
    assert_true(sv_activation_matches(&a[0], want));
    snprintf(want, sizeof(want), "ssl://127.0.0.1:%d?cert=c.pem&key=k.pem", port);
    assert_true(sv_activation_matches(&a[0], want)); /* the bind's TLS options ride on the passed socket */
    snprintf(want, sizeof(want), "tcp://0.0.0.0:%d", port);
    assert_false(sv_activation_matches(&a[0], want));
    snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", port == 65535 ? 1 : port + 1);
    assert_false(sv_activation_matches(&a[0], want));
    snprintf(want, sizeof(want), "unix://%s", sock_path);
    assert_false(sv_activation_matches(&a[0], want));
    assert_true(sv_activation_matches(&a[1], want));
    /* the same socket file named through a symlinked directory */
    char link[160];
    snprintf(link, sizeof(link), "%s/current", dir);
    assert_int_equal(symlink(dir, link), 0);
    snprintf(want, sizeof(want), "unix://%s/web.sock", link);
    assert_true(sv_activation_matches(&a[1], want));

    a[0].used = true;
    sv_activation_close_unused(a, 2);
    assert_int_equal(a[1].fd, -1);
    assert_true(fcntl(3, F_GETFD) >= 0);
    assert_true(fcntl(4, F_GETFD) < 0);
    close(3);
}

static void test_meant_for_another_process(void **state)
{
    int port;
    int fds[1] = {tcp_listener(&port)};
    place(fds, 1);
    char err[256] = "";
    sv_activated_t a[4];
    set_env("1", "1", NULL);
    assert_int_equal(sv_activation_take(a, 4, err, sizeof(err)), 0);
    assert_env_gone();
    assert_true(fcntl(3, F_GETFD) >= 0); /* not ours to close either */
    unsetenv("LISTEN_PID");
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(sv_activation_take(a, 4, err, sizeof(err)), 0);
    assert_env_gone();
    close(3);
}

static void test_refusals(void **state)
{
    char pid[16], err[256] = "";
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    sv_activated_t a[1];
    set_env(pid, "x", NULL);
    assert_int_equal(sv_activation_take(a, 1, err, sizeof(err)), SV_ECONFIG);
    assert_non_null(strstr(err, "LISTEN_FDS=x is not a count"));
    assert_env_gone();
    set_env(pid, "2", NULL);
    assert_int_equal(sv_activation_take(a, 1, err, sizeof(err)), SV_ELIMIT);
    assert_non_null(strstr(err, "2 sockets passed, serval takes at most 1"));
    /* a connected, not listening, socket where a listener should be */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    place(&sv[0], 1);
    close(sv[1]);
    set_env(pid, "1", "odd");
    assert_true(sv_activation_take(a, 1, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "fd 3 (odd) is not a listening socket"));
    assert_env_gone();
    close(3);
}

static void test_scrub_saved_environment(void **state)
{
    char *env[] = {strdup("PATH=/bin"), strdup("LISTEN_PID=7"), strdup("LISTEN_FDS=1"),
                   strdup("LISTEN_FDNAMES=web"), strdup("LISTEN_FDSX=keep"), strdup("HOME=/"), NULL};
    sv_activate_scrub_env(env);
    assert_string_equal(env[0], "PATH=/bin");
    assert_string_equal(env[1], "LISTEN_FDSX=keep");
    assert_string_equal(env[2], "HOME=/");
    assert_null(env[3]);
    for (int i = 0; env[i]; i++)
        free(env[i]);
    sv_activate_scrub_env(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_and_match),
        cmocka_unit_test(test_meant_for_another_process),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_scrub_saved_environment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
