/*
 * serval.h: the interface between serval and an app.
 *
 * An app is a shared object that exports one function,
 *
 *     const serval_app_t *serval_app(void);
 *
 * returning a table of callbacks (see serval_app_t). serval calls it once
 * after dlopen() and checks abi_version and size before using anything else.
 * Build an app with `cc -shared -fPIC -o app.so app.c -I serval/include`;
 * the serval_* functions below are provided by the serval executable at
 * load time, so an app links against nothing.
 *
 * Processes. serval runs in single mode (one process serves) or cluster mode
 * (a master supervises N worker processes that serve). Each serving process
 * runs up to max_threads threads that call handle() concurrently. Where each
 * callback runs is given by serval_context_t.role when it is called.
 *
 * Lifetimes. A request and its response belong to serval. Every pointer an
 * app obtains from a request (method, path, header values, body) stays valid
 * until handle() returns and no longer. Data passed to serval_response_*
 * functions is copied before they return, except the fd given to
 * serval_response_file(), which serval owns from then on.
 *
 * Thread safety. handle() is called by several threads at once, each with
 * its own request and response; the functions below may be called from the
 * thread running handle() for the request and response it was given, and
 * not from other threads. init, fini and every hook run on a process's main
 * thread while no handle() runs in that process, except out_of_band, which
 * runs on a serving thread while the others may be serving.
 *
 * Errors. Functions that can fail return 0 (or a count) on success and a
 * negative errno value on failure: -EINVAL for bad arguments or a call at the
 * wrong time, -ENOMEM, -EPIPE when the client went away, -ETIMEDOUT when it
 * did not read or send in time.
 *
 * Fork safety. With preload or fork_worker, serval forks processes that hold
 * the app's memory. It only forks from the thread that ran init and only when
 * no handle() runs, but threads the app starts itself do not survive a fork
 * and locks they hold stay locked in the child: apps that start threads must
 * stop them in before_fork/on_refork and restart them in on_worker_boot.
 */
#ifndef SERVAL_H
#define SERVAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change to serval_app_t or the functions below. */
#define SERVAL_ABI_VERSION 1u

/* The symbol serval looks up in an app. */
#define SERVAL_ENTRY_SYMBOL "serval_app"

typedef struct serval_request serval_request_t;   /* opaque */
typedef struct serval_response serval_response_t; /* opaque */

/* The process a callback runs in. */
typedef enum serval_role {
    SERVAL_ROLE_SINGLE = 0, /* single mode: the one serving process */
    SERVAL_ROLE_MASTER = 1, /* cluster mode: the supervising master */
    SERVAL_ROLE_WORKER = 2, /* cluster mode: a serving worker */
    SERVAL_ROLE_MOLD = 3    /* fork_worker: the idle process new workers fork from */
} serval_role_t;

/*
 * What serval tells an app about the process it runs in. Passed to init and
 * to every hook; valid for the duration of the call. Fields may be added at
 * the end: check size before reading one added after ABI version 1.
 */
typedef struct serval_context {
    uint32_t size;              /* sizeof(serval_context_t) as serval built it */
    serval_role_t role;
    int worker_index;           /* the worker concerned, -1 where none */
    int pid;                    /* this process */
    unsigned phase;             /* the master's phase (phased restarts done) */
    int workers;                /* configured workers, 0 in single mode */
    int max_threads;            /* threads per serving process */
    const char *environment;    /* -e / environment, e.g. "production" */
    const char *directory;      /* the working directory as configured */
    const char *app_path;       /* the path the app was loaded from */
    const char *server_version; /* serval's version string */
} serval_context_t;

/*
 * A lifecycle hook. Returns 0, or a negative number to report a failure:
 * serval logs it, and a failing hook takes down at most the process it ran in
 * (a worker whose on_worker_boot fails exits and is replaced; a failing master
 * hook is only logged). app_data is what init stored, or NULL where init has
 * not run in this process (the master without preload).
 */
typedef int (*serval_hook_fn)(void *app_data, const serval_context_t *ctx);

/*
 * The table an app returns from serval_app(). Every pointer may be NULL
 * except handle. The table must stay valid while the app is loaded.
 */
typedef struct serval_app {
    uint32_t abi_version;       /* SERVAL_ABI_VERSION the app was built with */
    uint32_t size;              /* sizeof(serval_app_t) the app was built with */
    const char *name;           /* shown in logs */

    /*
     * Load the app: read files, build caches, open connections. May be slow
     * and may allocate. Runs once per loaded copy: in the master with
     * preload, in worker 0 with fork_worker, otherwise in every worker (or
     * the single process). Store per-app state in *app_data. Returns 0, or a
     * negative value: the process then exits and the failure is logged.
     */
    int (*init)(const serval_context_t *ctx, void **app_data);

    /*
     * Answer one request. Called concurrently from up to max_threads
     * threads. Must produce a response with serval_response_send,
     * serval_response_body, serval_response_write or serval_response_file;
     * returning without one sends 500.
     */
    void (*handle)(void *app_data, serval_request_t *req, serval_response_t *res);

    /* Undo init, in a process that exits gracefully. */
    void (*fini)(void *app_data, const serval_context_t *ctx);

    /* Hooks, each optional. ctx->worker_index names the worker concerned. */
    serval_hook_fn before_fork;        /* master, once, before the first worker is forked */
    serval_hook_fn on_worker_boot;     /* worker, after the app is loaded, before it serves */
    serval_hook_fn on_worker_shutdown; /* worker, after its last request, before it exits */
    serval_hook_fn on_worker_fork;     /* forking process (master or mold), before each fork */
    serval_hook_fn after_worker_fork;  /* forking process, after each fork, in the parent */
    serval_hook_fn on_refork;          /* worker 0, before a mold is forked from it */
    serval_hook_fn out_of_band;        /* worker (or single process), when it turns idle after a request */
    serval_hook_fn on_restart;         /* master (or single process), before a hot restart exec */
    serval_hook_fn on_booted;          /* master (or single process), when all workers have booted (again after each restart) */
    serval_hook_fn on_stopped;         /* master (or single process), before it exits after a graceful stop */
} serval_app_t;

/* Exported by every app. */
const serval_app_t *serval_app(void);

/* ---- Requests ---------------------------------------------------------- */

/* "GET", "POST", ... */
const char *serval_request_method(const serval_request_t *req);
/* The request-target as sent: "/a/b?x=1" (or absolute form). */
const char *serval_request_target(const serval_request_t *req);
/* The path part of the target, without the query: "/a/b". Not decoded. */
const char *serval_request_path(const serval_request_t *req);
/* The query, without '?': "x=1"; "" when there is none. Not decoded. */
const char *serval_request_query(const serval_request_t *req);
/* "HTTP/1.1" or "HTTP/1.0". */
const char *serval_request_version(const serval_request_t *req);
/* The first header with this name (case-insensitive), or NULL. */
const char *serval_request_header(const serval_request_t *req, const char *name);
/* Headers in arrival order: count, then name and value of the i-th. */
size_t serval_request_header_count(const serval_request_t *req);
int serval_request_header_at(const serval_request_t *req, size_t i, const char **name,
                             const char **value);
/* Content-Length, or -1 for a chunked body; 0 when there is no body. */
int64_t serval_request_content_length(const serval_request_t *req);
/*
 * The whole body, with its length in *len ("" and 0 without one). serval
 * reads every body before handle is called; a large one waits in a temp
 * file and is mapped read-only on the first call. NULL (and *len 0) only if
 * that mapping fails; serval_request_read() still works then.
 */
const void *serval_request_body(const serval_request_t *req, size_t *len);
/*
 * Copy up to cap bytes of the body, from where the previous call stopped,
 * into buf. Returns the number of bytes copied, 0 at the end of the body,
 * or -EIO when its temp file cannot be read. Never waits for the client:
 * the body is whole before handle is called (a body too large, malformed or
 * too slow is answered by serval, 413, 400, 408, without calling the app).
 */
long serval_request_read(serval_request_t *req, void *buf, size_t cap);
/*
 * The client: "127.0.0.1:53210", "[::1]:53210", or "unix". Behind a proxy,
 * what set_remote_address says (docs/proxy.md): a PROXY header's client in
 * the same form, a trusted forwarded-for header's without port
 * ("203.0.113.7", "[2001:db8::1]"), or a fixed string.
 */
const char *serval_request_peer(const serval_request_t *req);
/* "https" for a request that came over TLS (an ssl:// listener), else "http" (Rack's rack.url_scheme). */
const char *serval_request_scheme(const serval_request_t *req);

/* ---- Query strings, form bodies, cookies --------------------------------
 *
 * Helpers over the request's raw bytes. None allocates: each copies what it
 * finds into the caller's buffer and NUL-terminates it. They need no request
 * (serval_url_decode, serval_form_next, serval_form_value, serval_cookie_value
 * work on any string and may be called from any thread), except the three
 * serval_request_* ones, which follow the rules of the other request
 * functions. Common results: the length copied (without the NUL; decoded
 * text may itself hold NUL bytes from "%00"), -ENOENT when there is no such
 * field, -ENOSPC when it does not fit in cap bytes with its NUL, -EINVAL for
 * a bad percent-escape ('%' not followed by two hex digits) or a NULL
 * argument. On failure buf is left as it was, so a default written there
 * first stays:
 *
 *     char name[64] = "World";
 *     serval_request_query_param(req, "name", 0, name, sizeof name);
 */

/*
 * Percent-decode len bytes of src into dst. With plus_is_space, '+' becomes
 * ' ' (query strings and form bodies, not paths). dst may be src: decoding
 * never makes text longer.
 */
long serval_url_decode(char *dst, size_t cap, const char *src, size_t len, int plus_is_space);

/* One field of an application/x-www-form-urlencoded string, as sent. */
typedef struct serval_form_pair {
    const char *name;  /* points into the string; not decoded, not NUL-terminated */
    size_t name_len;
    const char *value; /* after '='; "" (value_len 0) when the field has no '=' */
    size_t value_len;
    int has_value;     /* 0 for a bare "name" */
} serval_form_pair_t;

/*
 * Walk the fields of a query string or form body: set *pos to 0, then each
 * call stores the next field in *pair and returns 1, or returns 0 at the end.
 * Fields are separated by '&'; empty fields ("a=1&&b=2") are skipped. Decode
 * name and value with serval_url_decode(..., 1).
 */
int serval_form_next(const char *form, size_t len, size_t *pos, serval_form_pair_t *pair);

/*
 * The value of the nth (0 for the first) field whose decoded name is name,
 * decoded into buf ('+' is a space). A field without '=' and an empty value
 * both give "" (length 0). Repeated names: ask for nth = 0, 1, ... until
 * -ENOENT. A field whose name is badly encoded never matches.
 */
long serval_form_value(const char *form, size_t len, const char *name, size_t nth, char *buf,
                       size_t cap);

/* serval_form_value over the request's query string. */
long serval_request_query_param(const serval_request_t *req, const char *name, size_t nth,
                                char *buf, size_t cap);

/*
 * serval_form_value over the request body, when the request's Content-Type
 * is application/x-www-form-urlencoded. -ENOMSG when it is not; -EMSGSIZE
 * when serval_request_body() gives NULL (a large body whose temp file could
 * not be mapped): read it with serval_request_read() and call
 * serval_form_value() on it.
 */
long serval_request_form_param(const serval_request_t *req, const char *name, size_t nth,
                               char *buf, size_t cap);

/*
 * The value of the cookie name in one Cookie header value ("a=1; b=2"),
 * copied as sent, without a pair of surrounding double quotes. Cookie values
 * are not percent-decoded (RFC 6265); apps that encode theirs can call
 * serval_url_decode(..., 0). The first cookie of that name wins.
 */
long serval_cookie_value(const char *header, size_t len, const char *name, char *buf, size_t cap);

/* serval_cookie_value over every Cookie header of the request, in order. */
long serval_request_cookie(const serval_request_t *req, const char *name, char *buf, size_t cap);
/*
 * Milliseconds left before app_timeout ends this request's app call (0 once
 * past it), or -1 when app_timeout is off. An app that calls a database or
 * another service can pass this on as that call's timeout, so it gives up
 * (and answers) before serval answers 504 for it and replaces the worker.
 */
int64_t serval_request_deadline_ms(const serval_request_t *req);

/* ---- Responses --------------------------------------------------------- */

/* Set the status (100..999 excluding 1xx informational). Default 200. */
int serval_response_status(serval_response_t *res, int status);
/*
 * Add a header. Content-Length, Transfer-Encoding, Connection and Date are
 * serval's and rejected with -EINVAL. A name must be a token; a value must
 * not contain a control byte (0x00-0x1f except tab, 0x7f): -EINVAL, and the
 * header is not sent.
 */
int serval_response_header(serval_response_t *res, const char *name, const char *value);
/* Set the whole body (copied). Ends the response; sent after handle returns. */
int serval_response_body(serval_response_t *res, const void *data, size_t len);
/* Status, Content-Type and body in one call; content_type may be NULL. */
int serval_response_send(serval_response_t *res, int status, const char *content_type,
                         const void *body, size_t len);
/*
 * Stream the body: the first call sends the head with chunked encoding,
 * each call sends one chunk (len 0 is ignored); the last chunk is sent when
 * handle returns. Does not wait for a slow client: what it has not read
 * waits in memory and then a temp file. Returns -ETIMEDOUT once the client
 * read nothing for 10 s or less than min_response_data_rate, -EPIPE once it
 * is gone, -ENOBUFS when the process's spool (max_response_buffer) is full
 * and this client lags: the response is cut, stop writing. With
 * max_response_buffer 0 a write waits for the client instead.
 */
int serval_response_write(serval_response_t *res, const void *data, size_t len);
/*
 * Send length bytes of fd from offset as the body (sendfile). length -1 (or
 * more than the file holds) means to the end of the file. After status 204
 * or 304, or for HEAD, nothing of the file is sent. serval owns fd from this
 * call on and closes it, even when the call fails.
 */
int serval_response_file(serval_response_t *res, int fd, int64_t offset, int64_t length);

/* ---- Process ----------------------------------------------------------- */

/* The calling process's context (as passed to hooks); never NULL. */
const serval_context_t *serval_context(void);
/* Write one line to serval's log (stdout), prefixed like serval's own. */
void serval_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* serval's version, e.g. "0.1.0". */
const char *serval_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SERVAL_H */
