/*
 * app.h: loading an app, checking its ABI, calling init, handle and hooks.
 *
 * An sv_app_t is one loaded copy of an app in one process. The master maps
 * the app only to call its hooks (init runs there only with preload); each
 * serving process calls init unless it inherited an initialised copy by fork.
 */
#ifndef SV_APP_APP_H
#define SV_APP_APP_H

#include <serval.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef enum sv_hook {
    SV_HOOK_BEFORE_FORK,
    SV_HOOK_ON_WORKER_BOOT,
    SV_HOOK_ON_WORKER_SHUTDOWN,
    SV_HOOK_ON_WORKER_FORK,
    SV_HOOK_AFTER_WORKER_FORK,
    SV_HOOK_ON_REFORK,
    SV_HOOK_OUT_OF_BAND,
    SV_HOOK_ON_RESTART,
    SV_HOOK_ON_BOOTED,
    SV_HOOK_ON_STOPPED,
    SV_HOOK_COUNT
} sv_hook_t;

typedef struct sv_app {
    void *dl;                  /* dlopen handle; NULL for the built-in app */
    const serval_app_t *tab;
    void *data;                /* what init stored */
    bool initialized;
    char path[4096];           /* as given ("" for built-in) */
    dev_t dev;                 /* identity of the file loaded */
    ino_t ino;
} sv_app_t;

/* Load path (NULL = the built-in hello app). One line in err on failure. */
int sv_app_load(sv_app_t *a, const char *path, char *err, size_t errlen);
/* Call init with the process context. Fails with SV_EAPP and a line in err. */
int sv_app_init(sv_app_t *a, char *err, size_t errlen);
/* Run a hook if the app has it; logs a failure; returns its result (0 if absent). */
int sv_app_hook(sv_app_t *a, sv_hook_t hook, int worker_index);
bool sv_app_has_hook(const sv_app_t *a, sv_hook_t hook);
void sv_app_fini(sv_app_t *a);
void sv_app_unload(sv_app_t *a);
/* Is the code serving this app mapped from the file that was stat'ed at load (not an older copy)? */
bool sv_app_code_is_current(const sv_app_t *a);
/* Does path now name a different file than the one loaded (a new release)? */
bool sv_app_file_changed(const sv_app_t *a, const char *path);
const char *sv_hook_name(sv_hook_t hook);
/* fds the app opened in init or a lifecycle hook (here or before a fork): a child keeps them. */
int sv_app_fds(const int **fds);
const char *sv_app_name(const sv_app_t *a);

/* The process context returned by serval_context(); updated at each role change. */
void sv_app_set_context(serval_role_t role, int worker_index, unsigned phase, int workers, int max_threads,
                        const char *environment, const char *directory, const char *app_path);
void sv_app_set_phase(unsigned phase);

#endif
