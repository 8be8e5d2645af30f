/*
 * testapp.c: the app that serval's tests and demos drive.
 *
 * Routes (any method; exact path match):
 *   /         200 "Hello World"
 *   /pid      {"pid":..,"worker":..,"version":".."}
 *   /version  first line of ./VERSION read at init, "unknown" without one
 *   /echo     method, path, query, headers and body length as JSON
 *   /sleep?ms=N     sleeps N ms (0..600000), then "Slept N"
 *   /stream?bytes=N N bytes of "abc..z" repeated, chunked (0..1 GiB)
 *   /crash    dies with SIGSEGV;  /hang  spins forever
 *   /cache    builds a read-only cache of TESTAPP_CACHE_MB MiB once per
 *             process image, answers its checksum
 *   /respond?status=N&mode=M  status N (200 when absent) with a body made by
 *             M: 1 body "respond" (default), 2 streamed "respond", 3 the file
 *             "respond-file\n" (sendfile), 4 that file from offset 1 with a
 *             huge length, 5 header X-Ctl with a control byte in its value
 *             (the return code goes in X-Ctl-Rc)
 *   else      404 "Not Found"
 *
 * Environment: TESTAPP_BOOT_MS (slow init), TESTAPP_HOOK_LOG (one line
 * "HOOK PID INDEX" per lifecycle hook), TESTAPP_INIT_FAIL=1 and a file
 * ./INIT_FAIL (init fails), a file ./BOOT_MS (init takes that many ms), TESTAPP_INIT_CRASH=1 (init dies with SIGSEGV).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "serval.h"

#define VERSION_MAX 256
#define SLEEP_MAX_MS 600000
#define BOOT_MAX_MS 3600000
#define STREAM_MAX ((int64_t)1 << 30)
/* 630 * 26: the largest multiple of 26 up to 16 KiB, so every chunk starts at 'a'. */
#define STREAM_CHUNK 16380
#define CACHE_DEFAULT_MB 64
#define CACHE_MAX_MB 65536
#define BODY_READ_SIZE 8192

struct testapp {
    char version[VERSION_MAX];
    char pattern[STREAM_CHUNK];
    /* The cache: built once under cache_lock, never written after. */
    pthread_mutex_t cache_lock;
    bool cache_built;
    void *cache;
    size_t cache_len;
    uint64_t cache_sum;
};

/* ---- Small helpers ------------------------------------------------------ */

/*
 * Parses [s, end) as a decimal integer clamped to [0, max]. Returns false
 * when it is not one (empty, stray characters).
 */
static bool parse_clamped(const char *s, const char *end, int64_t max, int64_t *out)
{
    bool neg = s < end && *s == '-';
    if (s < end && (*s == '-' || *s == '+'))
        s++;
    if (s == end)
        return false;
    int64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v < max) /* saturates: v stays below 10 * max + 9 */
            v = v * 10 + (*s - '0');
    }
    *out = neg ? 0 : (v > max ? max : v);
    return true;
}

/* The number in query parameter key, clamped to [0, max]; 0 when absent or bad. */
static int64_t query_number(const char *query, const char *key, int64_t max)
{
    size_t klen = strlen(key);
    const char *p = query;
    while (*p != '\0') {
        const char *end = p + strcspn(p, "&");
        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            int64_t v = 0;
            return parse_clamped(p + klen + 1, end, max, &v) ? v : 0;
        }
        p = *end != '\0' ? end + 1 : end;
    }
    return 0;
}

/* The number in environment variable name, clamped to [0, max]; dflt when unset or bad. */
static int64_t env_number(const char *name, int64_t dflt, int64_t max)
{
    const char *s = getenv(name);
    int64_t v = dflt;
    if (s == NULL || !parse_clamped(s, s + strlen(s), max, &v))
        return dflt;
    return v;
}

static bool env_flag(const char *name)
{
    const char *s = getenv(name);
    return s != NULL && *s != '\0' && strcmp(s, "0") != 0;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static _Noreturn void crash(void)
{
    /* Through a volatile pointer so the compiler cannot see NULL and emit a trap instead. */
    volatile int *volatile null_ptr = NULL;
    /* cppcheck-suppress nullPointer */
    *null_ptr = 1; /* NOLINT(clang-analyzer-core.NullDereference) */
    /* Only reached if a SIGSEGV handler returned. */
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    /* cppcheck-suppress unreachableCode */
    abort();
}

static void send_text(serval_response_t *res, int status, const char *text)
{
    serval_response_send(res, status, "text/plain", text, strlen(text));
}

/* ---- JSON output -------------------------------------------------------- */

/* A growable buffer; after an allocation failure it only records that. */
struct jbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
};

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void jb_puts(struct jbuf *b, const char *s)
{
    jb_put(b, s, strlen(s));
}

/*
 * Appends s escaped for a JSON string, without quotes. Bytes outside
 * printable ASCII become \u00XX: header bytes are ISO-8859-1 in HTTP, and
 * this keeps the output valid UTF-8 whatever the client sent.
 */
static void jb_escaped(struct jbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            p++;
        jb_put(b, (const char *)run, (size_t)(p - run));
        if (*p == '\0')
            break;
        char esc[8];
        if (*p == '"' || *p == '\\')
            snprintf(esc, sizeof esc, "\\%c", *p);
        else
            snprintf(esc, sizeof esc, "\\u%04x", *p);
        jb_puts(b, esc);
    }
}

static void jb_string(struct jbuf *b, const char *s)
{
    jb_puts(b, "\"");
    jb_escaped(b, s);
    jb_puts(b, "\"");
}

/* Sends the buffer as a 200 JSON response (500 if it could not be built) and frees it. */
static void send_json(serval_response_t *res, struct jbuf *b)
{
    if (b->failed)
        send_text(res, 500, "Internal Server Error");
    else
        serval_response_send(res, 200, "application/json", b->data, b->len);
    free(b->data);
}

/* ---- Routes ------------------------------------------------------------- */

static void route_root(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    send_text(res, 200, "Hello World");
}

static void route_pid(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    char head[64];
    snprintf(head, sizeof head, "{\"pid\":%d,\"worker\":%d,\"version\":", (int)getpid(),
             serval_context()->worker_index);
    struct jbuf b = {0};
    jb_puts(&b, head);
    jb_string(&b, app->version);
    jb_puts(&b, "}");
    send_json(res, &b);
}

static void route_version(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    send_text(res, 200, app->version);
}

/* Whether header i repeats a name seen before it (then it was joined there). */
static bool header_seen_before(const serval_request_t *req, size_t i, const char *name)
{
    for (size_t j = 0; j < i; j++) {
        const char *n = NULL;
        const char *v = NULL;
        if (serval_request_header_at(req, j, &n, &v) == 0 && strcasecmp(n, name) == 0)
            return true;
    }
    return false;
}

/* Appends the value of header i joined with later ones of the same name by ", ". */
static void put_header_value(struct jbuf *b, const serval_request_t *req, size_t i,
                             const char *name, const char *value)
{
    size_t count = serval_request_header_count(req);
    jb_puts(b, "\"");
    jb_escaped(b, value);
    for (size_t j = i + 1; j < count; j++) {
        const char *n = NULL;
        const char *v = NULL;
        if (serval_request_header_at(req, j, &n, &v) == 0 && strcasecmp(n, name) == 0) {
            jb_puts(b, ", ");
            jb_escaped(b, v);
        }
    }
    jb_puts(b, "\"");
}

static void put_headers(struct jbuf *b, const serval_request_t *req)
{
    size_t count = serval_request_header_count(req);
    const char *sep = "";
    jb_puts(b, "{");
    for (size_t i = 0; i < count; i++) {
        const char *name = NULL;
        const char *value = NULL;
        if (serval_request_header_at(req, i, &name, &value) != 0 ||
            header_seen_before(req, i, name))
            continue;
        jb_puts(b, sep);
        jb_string(b, name);
        jb_puts(b, ":");
        put_header_value(b, req, i, name, value);
        sep = ",";
    }
    jb_puts(b, "}");
}

/* Reads the whole body and returns its length, or a negative errno value. */
static int64_t count_body(serval_request_t *req)
{
    char buf[BODY_READ_SIZE];
    int64_t total = 0;
    long n;
    while ((n = serval_request_read(req, buf, sizeof buf)) > 0)
        total += n;
    return n < 0 ? n : total;
}

static void route_echo(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    int64_t body_length = count_body(req);
    if (body_length < 0) {
        send_text(res, 400, "Bad Request");
        return;
    }
    struct jbuf b = {0};
    jb_puts(&b, "{\"method\":");
    jb_string(&b, serval_request_method(req));
    jb_puts(&b, ",\"scheme\":");
    jb_string(&b, serval_request_scheme(req));
    jb_puts(&b, ",\"path\":");
    jb_string(&b, serval_request_path(req));
    jb_puts(&b, ",\"query\":");
    jb_string(&b, serval_request_query(req));
    jb_puts(&b, ",\"headers\":");
    put_headers(&b, req);
    char tail[48];
    snprintf(tail, sizeof tail, ",\"body_length\":%" PRId64 "}", body_length);
    jb_puts(&b, tail);
    send_json(res, &b);
}

static void route_sleep(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    int64_t ms = query_number(serval_request_query(req), "ms", SLEEP_MAX_MS);
    sleep_ms(ms);
    char text[32];
    snprintf(text, sizeof text, "Slept %" PRId64, ms);
    send_text(res, 200, text);
}

static void route_stream(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    int64_t left = query_number(serval_request_query(req), "bytes", STREAM_MAX);
    if (left == 0) {
        /* serval_response_write ignores empty chunks: answer with an empty body instead. */
        send_text(res, 200, "");
        return;
    }
    serval_response_status(res, 200);
    serval_response_header(res, "Content-Type", "text/plain");
    while (left > 0) {
        size_t len = left < STREAM_CHUNK ? (size_t)left : STREAM_CHUNK;
        if (serval_response_write(res, app->pattern, len) < 0)
            return; /* the client went away or stalled */
        left -= (int64_t)len;
    }
}

/* A file with known bytes and no name, for serval_response_file. */
static int respond_file(void)
{
    static const char text[] = "respond-file\n";
    int fd = memfd_create("testapp-respond", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void route_respond(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    const char *q = serval_request_query(req);
    int64_t status = query_number(q, "status", 999);
    int64_t mode = query_number(q, "mode", 9);
    serval_response_status(res, status >= 200 ? (int)status : 200);
    serval_response_header(res, "Content-Type", "text/plain");
    if (mode == 5) {
        char rc[16];
        snprintf(rc, sizeof rc, "%d", serval_response_header(res, "X-Ctl", "a\x01b"));
        serval_response_header(res, "X-Ctl-Rc", rc);
    }
    if (mode == 2) {
        serval_response_write(res, "respond", 7);
    } else if (mode == 3 || mode == 4) {
        int fd = respond_file();
        if (fd < 0 || serval_response_file(res, fd, mode == 4 ? 1 : 0, mode == 4 ? INT64_MAX : -1) < 0)
            send_text(res, 500, "file");
    } else {
        serval_response_body(res, "respond", 7);
    }
}

static void route_crash(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    crash();
}

static void route_hang(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    volatile unsigned long spins = 0;
    for (;;)
        spins++;
}

/* Fills words with a fixed pseudo-random sequence (splitmix64); returns their sum. */
static uint64_t cache_fill(uint64_t *words, size_t count)
{
    uint64_t state = 0x5e1a1c0ffee5eedULL;
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        words[i] = z ^ (z >> 31);
        sum += words[i];
    }
    return sum;
}

/*
 * Builds the cache; caller holds cache_lock. The pages are written only
 * here and the checksum is kept, so after a fork they stay shared.
 */
static int cache_build(struct testapp *app)
{
    int64_t mb = env_number("TESTAPP_CACHE_MB", CACHE_DEFAULT_MB, CACHE_MAX_MB);
    size_t len = (size_t)mb << 20;
    uint64_t sum = 0;
    if (len > 0) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        sum = cache_fill(p, len / sizeof(uint64_t));
        if (mprotect(p, len, PROT_READ) != 0) {
            int err = -errno;
            munmap(p, len);
            return err;
        }
        app->cache = p;
    }
    app->cache_len = len;
    app->cache_sum = sum;
    app->cache_built = true;
    serval_log("testapp: cache built (%" PRId64 " MiB, pid %d)", mb, (int)getpid());
    return 0;
}

static void route_cache(struct testapp *app, serval_request_t *req, serval_response_t *res)
{
    pthread_mutex_lock(&app->cache_lock);
    int rc = app->cache_built ? 0 : cache_build(app);
    uint64_t sum = app->cache_sum;
    pthread_mutex_unlock(&app->cache_lock);
    if (rc < 0) {
        send_text(res, 500, "cache: cannot allocate");
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, sum);
    send_text(res, 200, text);
}

typedef void route_fn(struct testapp *app, serval_request_t *req, serval_response_t *res);

static const struct route {
    const char *path;
    route_fn *fn;
} routes[] = {
    {"/", route_root},         {"/pid", route_pid},     {"/version", route_version},
    {"/echo", route_echo},     {"/sleep", route_sleep}, {"/stream", route_stream},
    {"/crash", route_crash},   {"/hang", route_hang},   {"/cache", route_cache},
    {"/respond", route_respond},
};

static void handle(void *app_data, serval_request_t *req, serval_response_t *res)
{
    const char *path = serval_request_path(req);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) == 0) {
            routes[i].fn(app_data, req, res);
            return;
        }
    }
    send_text(res, 404, "Not Found");
}

/* ---- Loading ------------------------------------------------------------ */

/* A release that boots slowly: the number in ./BOOT_MS (0 without the file). */
static long file_number(const char *path, long max)
{
    char line[32] = "";
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    long v = strtol(line, NULL, 10);
    return v < 0 ? 0 : v > max ? max : v;
}

/* The first line of ./VERSION; "unknown" when missing, unreadable or empty. */
static void read_version(char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("VERSION", "re");
    if (f != NULL) {
        if (fgets(out, (int)cap, f) == NULL)
            out[0] = '\0';
        fclose(f);
    }
    out[strcspn(out, "\r\n")] = '\0';
    if (out[0] == '\0')
        snprintf(out, cap, "unknown");
}

static int init(const serval_context_t *ctx, void **app_data)
{
    sleep_ms(env_number("TESTAPP_BOOT_MS", 0, BOOT_MAX_MS));
    sleep_ms(file_number("BOOT_MS", BOOT_MAX_MS));
    if (env_flag("TESTAPP_INIT_CRASH"))
        crash();
    if (env_flag("TESTAPP_INIT_FAIL") || access("INIT_FAIL", F_OK) == 0) {
        serval_log("testapp: init failing on purpose (pid %d)", (int)getpid());
        return -1;
    }
    struct testapp *app = calloc(1, sizeof *app);
    if (app == NULL)
        return -ENOMEM;
    read_version(app->version, sizeof app->version);
    for (size_t i = 0; i < sizeof app->pattern; i++)
        app->pattern[i] = (char)('a' + i % 26);
    pthread_mutex_init(&app->cache_lock, NULL);
    serval_log("testapp: init (pid %d, version %s)", (int)getpid(), app->version);
    *app_data = app;
    return 0;
}

static void fini(void *app_data, const serval_context_t *ctx)
{
    struct testapp *app = app_data;
    if (app == NULL)
        return;
    if (app->cache != NULL)
        munmap(app->cache, app->cache_len);
    pthread_mutex_destroy(&app->cache_lock);
    free(app);
}

/* ---- Hooks -------------------------------------------------------------- */

/*
 * Appends "HOOK PID INDEX" to $TESTAPP_HOOK_LOG. One write() on an O_APPEND
 * fd, so lines from concurrent processes never interleave. Read from the
 * environment each time: in the master without preload, init never ran.
 */
static int log_hook(const char *hook, const serval_context_t *ctx)
{
    const char *path = getenv("TESTAPP_HOOK_LOG");
    if (path == NULL || *path == '\0')
        return 0;
    char line[96];
    int n = snprintf(line, sizeof line, "%s %d %d\n", hook, (int)getpid(), ctx->worker_index);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    ssize_t written = write(fd, line, (size_t)n);
    (void)written;
    close(fd);
    return 0;
}

#define LOGGING_HOOK(name)                                                        \
    static int name##_cb(void *app_data, const serval_context_t *ctx)             \
    {                                                                             \
        return log_hook(#name, ctx);                                              \
    }

LOGGING_HOOK(before_fork)
LOGGING_HOOK(on_worker_boot)
LOGGING_HOOK(on_worker_shutdown)
LOGGING_HOOK(on_worker_fork)
LOGGING_HOOK(after_worker_fork)
LOGGING_HOOK(on_refork)
LOGGING_HOOK(out_of_band)
LOGGING_HOOK(on_restart)
LOGGING_HOOK(on_booted)
LOGGING_HOOK(on_stopped)

static const serval_app_t testapp = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "testapp",
    .init = init,
    .handle = handle,
    .fini = fini,
    .before_fork = before_fork_cb,
    .on_worker_boot = on_worker_boot_cb,
    .on_worker_shutdown = on_worker_shutdown_cb,
    .on_worker_fork = on_worker_fork_cb,
    .after_worker_fork = after_worker_fork_cb,
    .on_refork = on_refork_cb,
    .out_of_band = out_of_band_cb,
    .on_restart = on_restart_cb,
    .on_booted = on_booted_cb,
    .on_stopped = on_stopped_cb,
};

__attribute__((visibility("default"))) const serval_app_t *serval_app(void)
{
    return &testapp;
}
