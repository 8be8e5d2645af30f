/* app.c: one loaded copy of an app (app.h): dlopen and the ABI check, init/fini, hooks, and the fds the app opened in them. */
#include "app/app.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "os/fd.h"

/* The context apps see through serval_context(): one per process by nature. */
static serval_context_t process_ctx = {.size = sizeof(serval_context_t), .worker_index = -1};
static char ctx_env[64], ctx_dir[4096], ctx_app[4096];

static const char *const hook_names[SV_HOOK_COUNT] = {
    "before_fork", "on_worker_boot", "on_worker_shutdown", "on_worker_fork", "after_worker_fork",
    "on_refork",   "out_of_band",    "on_restart",         "on_booted",      "on_stopped",
};

static void hello_handle(void *data, serval_request_t *req, serval_response_t *res)
{
    (void)data;
    (void)req;
    serval_response_send(res, 200, "text/plain", "Hello World", 11);
}

static const serval_app_t builtin_hello = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "hello (built-in)",
    .handle = hello_handle,
};

const char *sv_hook_name(sv_hook_t hook)
{
    return hook < SV_HOOK_COUNT ? hook_names[hook] : "?";
}

static serval_hook_fn hook_fn(const serval_app_t *t, sv_hook_t hook)
{
    switch (hook) {
    case SV_HOOK_BEFORE_FORK: return t->before_fork;
    case SV_HOOK_ON_WORKER_BOOT: return t->on_worker_boot;
    case SV_HOOK_ON_WORKER_SHUTDOWN: return t->on_worker_shutdown;
    case SV_HOOK_ON_WORKER_FORK: return t->on_worker_fork;
    case SV_HOOK_AFTER_WORKER_FORK: return t->after_worker_fork;
    case SV_HOOK_ON_REFORK: return t->on_refork;
    case SV_HOOK_OUT_OF_BAND: return t->out_of_band;
    case SV_HOOK_ON_RESTART: return t->on_restart;
    case SV_HOOK_ON_BOOTED: return t->on_booted;
    case SV_HOOK_ON_STOPPED: return t->on_stopped;
    default: return NULL;
    }
}

static int check_table(const serval_app_t *t, const char *path, char *err, size_t errlen)
{
    if (!t) {
        snprintf(err, errlen, "app '%s': serval_app() returned NULL", path);
        return SV_EABI;
    }
    if (t->abi_version != SERVAL_ABI_VERSION) {
        snprintf(err, errlen, "app '%s' was built for serval ABI %u, this serval speaks ABI %u (rebuild it)",
                 path, t->abi_version, SERVAL_ABI_VERSION);
        return SV_EABI;
    }
    if (t->size < offsetof(serval_app_t, before_fork) || !t->handle) {
        snprintf(err, errlen, "app '%s': its serval_app_t is %s", path,
                 t->handle ? "too small (size field wrong?)" : "missing handle");
        return SV_EABI;
    }
    return 0;
}

int sv_app_load(sv_app_t *a, const char *path, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    if (!path) {
        a->tab = &builtin_hello;
        return 0;
    }
    snprintf(a->path, sizeof(a->path), "%s", path);
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "cannot load app '%s': %s", path, strerror(errno));
        return SV_ERRNO();
    }
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    /* dlopen needs a slash to avoid searching the library path */
    char rel[4200];
    snprintf(rel, sizeof(rel), "%s%s", strchr(path, '/') ? "" : "./", path);
    a->dl = dlopen(rel, RTLD_NOW | RTLD_LOCAL);
    if (!a->dl) {
        snprintf(err, errlen, "cannot load app '%s': %s", path, dlerror());
        return SV_EAPP;
    }
    const serval_app_t *(*entry)(void);
    *(void **)&entry = dlsym(a->dl, SERVAL_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errlen, "'%s' is not a serval app: it does not export %s()", path, SERVAL_ENTRY_SYMBOL);
        sv_app_unload(a);
        return SV_EABI;
    }
    int rc = check_table(entry(), path, err, errlen);
    if (rc < 0) {
        sv_app_unload(a);
        return rc;
    }
    a->tab = entry();
    return 0;
}

/*
 * The fds the app opened in init and lifecycle hooks, in this process or an
 * ancestor it was forked from: a forked child keeps them (with its own
 * serval fds) and closes everything else. A snapshot of /proc/self/fd
 * before and after each call tells them apart; per-request calls are not
 * watched.
 */
static int *app_fds;
static int n_app_fds, cap_app_fds;

static bool has_fd(const int *v, int n, int fd)
{
    for (int i = 0; i < n; i++)
        if (v[i] == fd)
            return true;
    return false;
}

static void note_fds(const int *before, int nb)
{
    int *after = NULL;
    int na = sv_fd_list(&after);
    for (int i = n_app_fds - 1; i >= 0; i--) /* closed by the app meanwhile */
        if (!has_fd(after, na, app_fds[i]))
            app_fds[i] = app_fds[--n_app_fds];
    for (int i = 0; i < na; i++) {
        if (has_fd(before, nb, after[i]) || has_fd(app_fds, n_app_fds, after[i]))
            continue;
        if (n_app_fds == cap_app_fds) {
            int cap = cap_app_fds ? cap_app_fds * 2 : 16;
            int *v = realloc(app_fds, sizeof(int) * (size_t)cap);
            if (!v)
                break;
            app_fds = v;
            cap_app_fds = cap;
        }
        app_fds[n_app_fds++] = after[i];
    }
    free(after);
}

int sv_app_fds(const int **fds)
{
    *fds = app_fds;
    return n_app_fds;
}

int sv_app_init(sv_app_t *a, char *err, size_t errlen)
{
    if (a->initialized || !a->tab->init) {
        a->initialized = true;
        return 0;
    }
    int *before = NULL;
    int nb = sv_fd_list(&before);
    int rc = a->tab->init(&process_ctx, &a->data);
    note_fds(before, nb);
    free(before);
    if (rc < 0) {
        snprintf(err, errlen, "app '%s' failed to initialise (init returned %d)", sv_app_name(a), rc);
        return SV_EAPP;
    }
    a->initialized = true;
    return 0;
}

bool sv_app_has_hook(const sv_app_t *a, sv_hook_t hook)
{
    return a && a->tab && hook_fn(a->tab, hook) != NULL;
}

int sv_app_hook(sv_app_t *a, sv_hook_t hook, int worker_index)
{
    if (!sv_app_has_hook(a, hook))
        return 0;
    serval_context_t ctx = process_ctx;
    ctx.worker_index = worker_index;
    int *before = NULL;
    int nb = hook == SV_HOOK_OUT_OF_BAND ? 0 : sv_fd_list(&before);
    int rc = hook_fn(a->tab, hook)(a->data, &ctx);
    if (hook != SV_HOOK_OUT_OF_BAND)
        note_fds(before, nb);
    free(before);
    if (rc < 0)
        sv_log_error("! hook %s failed (returned %d) in pid %d", sv_hook_name(hook), rc, (int)getpid());
    return rc;
}

void sv_app_fini(sv_app_t *a)
{
    if (a->initialized && a->tab->fini)
        a->tab->fini(a->data, &process_ctx);
    a->initialized = false;
    a->data = NULL;
}

void sv_app_unload(sv_app_t *a)
{
    if (a->dl)
        dlclose(a->dl);
    a->dl = NULL;
    a->tab = NULL;
}

bool sv_app_code_is_current(const sv_app_t *a)
{
    if (!a->dl)
        return true;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return true;
    uintptr_t addr = (uintptr_t)a->tab;
    char line[4400];
    bool ok = true;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi, ino;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &lo, &hi, &ino) == 3 && addr >= lo && addr < hi) {
            ok = ino == (unsigned long)a->ino;
            break;
        }
    }
    fclose(f);
    return ok;
}

bool sv_app_file_changed(const sv_app_t *a, const char *path)
{
    struct stat st;
    if (!path || !a->dl)
        return false;
    return stat(path, &st) < 0 || st.st_dev != a->dev || st.st_ino != a->ino;
}

const char *sv_app_name(const sv_app_t *a)
{
    if (a->tab && a->tab->name)
        return a->tab->name;
    return a->path[0] ? a->path : "app";
}

void sv_app_set_context(serval_role_t role, int worker_index, unsigned phase, int workers, int max_threads,
                        const char *environment, const char *directory, const char *app_path)
{
    snprintf(ctx_env, sizeof(ctx_env), "%s", environment ? environment : "");
    snprintf(ctx_dir, sizeof(ctx_dir), "%s", directory ? directory : "");
    snprintf(ctx_app, sizeof(ctx_app), "%s", app_path ? app_path : "");
    process_ctx = (serval_context_t){
        .size = sizeof(serval_context_t),
        .role = role,
        .worker_index = worker_index,
        .pid = (int)getpid(),
        .phase = phase,
        .workers = workers,
        .max_threads = max_threads,
        .environment = ctx_env,
        .directory = ctx_dir,
        .app_path = ctx_app,
        .server_version = SERVAL_VERSION,
    };
}

void sv_app_set_phase(unsigned phase)
{
    process_ctx.phase = phase;
}

const serval_context_t *serval_context(void)
{
    return &process_ctx;
}

void serval_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv_log_vline(1, fmt, ap);
    va_end(ap);
}

const char *serval_version(void)
{
    return SERVAL_VERSION;
}
