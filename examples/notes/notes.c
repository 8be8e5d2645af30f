/*
 * notes: a small JSON API on PostgreSQL, the example of docs/apps.md.
 *
 *   GET    /notes[?q=WORD&limit=N]   the notes, oldest first (limit 1..1000, default 100)
 *   POST   /notes                    create: JSON {"title":..,"body":..} or a form body
 *   GET    /notes/ID                 one note
 *   PUT    /notes/ID                 change title and/or body (JSON or form)
 *   DELETE /notes/ID                 delete: {"deleted":ID}
 *   GET    /health                   {"database":"ok"}, or 503
 *   GET    /db                       {"pid":..,"worker":..,"backend_pid":..}: who talks to whom
 *
 * Configured by DATABASE_URL (a libpq connection string or URI); init
 * creates the table. PostgreSQL reads the JSON bodies and writes every JSON
 * answer (json_build_object), so this app has no JSON parser of its own.
 *
 * The hooks are the point of the example: every connection is closed before
 * serval forks and reopened after, lazily, by the thread that uses it
 * (db.h has the rules).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "db.h"
#include "serval.h"

#define MAX_BODY (1 << 20)

static const char schema_sql[] =
    "SET client_min_messages = warning;" /* no NOTICE that the table exists */
    "SELECT pg_advisory_xact_lock(4242);" /* workers boot at once: one creates, the others wait */
    "CREATE TABLE IF NOT EXISTS notes ("
    "  id bigserial PRIMARY KEY,"
    "  title text NOT NULL CHECK (title <> ''),"
    "  body text NOT NULL DEFAULT '',"
    "  created_at timestamptz NOT NULL DEFAULT now())";

#define NOTE_JSON "json_build_object('id', id, 'title', title, 'body', body, 'created_at', created_at)::text"

/* ---- answers ---------------------------------------------------------------- */

static void send_json(serval_response_t *res, int status, const char *json)
{
    serval_response_send(res, status, "application/json", json, strlen(json));
}

/* {"error":"MESSAGE"}, the message JSON-escaped. */
static void send_error(serval_response_t *res, int status, const char *msg)
{
    char out[512];
    size_t n = (size_t)snprintf(out, sizeof out, "{\"error\":\"");
    for (const unsigned char *p = (const unsigned char *)msg; *p && n < sizeof out - 16; p++) {
        if (*p == '"' || *p == '\\')
            n += (size_t)snprintf(out + n, sizeof out - n, "\\%c", *p);
        else if (*p < 0x20)
            n += (size_t)snprintf(out + n, sizeof out - n, "\\u%04x", *p);
        else
            out[n++] = (char)*p;
    }
    snprintf(out + n, sizeof out - n, "\"}");
    send_json(res, status, out);
}

/*
 * Answer from a statement's result: its one text column as the JSON body, or
 * 404 when no row came back, or the error class as a status.
 */
static void send_result(serval_response_t *res, PGresult *r, int ok_status)
{
    if (r == NULL) {
        send_error(res, 503, "database unavailable");
        return;
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        if (PQntuples(r) == 0)
            send_error(res, 404, "no such note");
        else
            send_json(res, ok_status, PQgetvalue(r, 0, 0));
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        /* classes 22 (bad data: invalid JSON, bad number) and 23 (a NOT NULL or CHECK) */
        int bad_input = state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
        send_error(res, bad_input ? 400 : 500, msg ? msg : "database error");
    }
    PQclear(r);
}

/* ---- requests --------------------------------------------------------------- */

/* The body as a NUL-terminated string (malloc'd), or NULL: too big, unreadable, or NUL inside. */
static char *read_body(serval_request_t *req, size_t *len)
{
    int64_t declared = serval_request_content_length(req); /* -1: chunked, size unknown */
    size_t cap = declared >= 0 && declared < MAX_BODY ? (size_t)declared : MAX_BODY;
    char *buf = malloc(cap + 1);
    if (buf == NULL)
        return NULL;
    size_t n = 0;
    long got = 0;
    while (n < cap && (got = serval_request_read(req, buf + n, cap - n)) > 0)
        n += (size_t)got;
    char extra;
    if (got < 0 || (n == cap && serval_request_read(req, &extra, 1) > 0) || memchr(buf, '\0', n)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int is_form(serval_request_t *req)
{
    const char *ct = serval_request_header(req, "Content-Type");
    return ct != NULL && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

/*
 * The note's fields from the body: a form body is decoded here with
 * serval_form_value; a JSON body is handed to PostgreSQL as is (params[0]).
 * params: [0] JSON or NULL, [1] title or NULL, [2] body or NULL.
 */
typedef struct input {
    char *raw;
    char title[4096];
    char body[16384];
} input_t;

static int read_input(serval_request_t *req, input_t *in, const char *params[3])
{
    size_t len = 0;
    in->raw = read_body(req, &len);
    if (in->raw == NULL)
        return -1;
    params[0] = params[1] = params[2] = NULL;
    if (!is_form(req)) {
        params[0] = in->raw;
        return 0;
    }
    if (serval_form_value(in->raw, len, "title", 0, in->title, sizeof in->title) >= 0)
        params[1] = in->title;
    if (serval_form_value(in->raw, len, "body", 0, in->body, sizeof in->body) >= 0)
        params[2] = in->body;
    return 0;
}

static void list_notes(serval_request_t *req, serval_response_t *res)
{
    char q[256] = "", limit[16] = "100";
    if (serval_request_query_param(req, "q", 0, q, sizeof q) == -EINVAL ||
        serval_request_query_param(req, "limit", 0, limit, sizeof limit) == -EINVAL) {
        send_error(res, 400, "bad percent-encoding in the query");
        return;
    }
    const char *params[] = {q, limit};
    PGresult *r = db_exec(
        "SELECT coalesce(json_agg(n ORDER BY n.id), '[]')::text FROM ("
        "  SELECT id, title, body, created_at FROM notes"
        "  WHERE $1 = '' OR strpos(title, $1) > 0 OR strpos(body, $1) > 0"
        "  ORDER BY id LIMIT least(greatest($2::int, 1), 1000)) n",
        2, params, true);
    send_result(res, r, 200);
}

static void create_note(serval_request_t *req, serval_response_t *res)
{
    input_t *in = calloc(1, sizeof *in);
    const char *params[3];
    if (in == NULL || read_input(req, in, params) != 0) {
        send_error(res, 400, "unreadable body (at most 1 MiB)");
    } else {
        PGresult *r = db_exec(
            "WITH input AS (SELECT coalesce($1::jsonb->>'title', $2) AS title,"
            "                      coalesce($1::jsonb->>'body', $3, '') AS body)"
            " INSERT INTO notes (title, body) SELECT title, body FROM input RETURNING " NOTE_JSON,
            3, params, false);
        send_result(res, r, 201);
    }
    if (in)
        free(in->raw);
    free(in);
}

static void get_note(const char *id, serval_response_t *res)
{
    const char *params[] = {id};
    send_result(res, db_exec("SELECT " NOTE_JSON " FROM notes WHERE id = $1", 1, params, true), 200);
}

static void update_note(const char *id, serval_request_t *req, serval_response_t *res)
{
    input_t *in = calloc(1, sizeof *in);
    const char *p[3];
    if (in == NULL || read_input(req, in, p) != 0) {
        send_error(res, 400, "unreadable body (at most 1 MiB)");
    } else {
        const char *params[] = {id, p[0], p[1], p[2]};
        /* an UPDATE that sets fields to given values: running it twice changes nothing more */
        PGresult *r = db_exec(
            "UPDATE notes SET title = coalesce($2::jsonb->>'title', $3, title),"
            "                 body = coalesce($2::jsonb->>'body', $4, body)"
            " WHERE id = $1 RETURNING " NOTE_JSON,
            4, params, true);
        send_result(res, r, 200);
    }
    if (in)
        free(in->raw);
    free(in);
}

static void delete_note(const char *id, serval_response_t *res)
{
    const char *params[] = {id};
    send_result(res,
                db_exec("DELETE FROM notes WHERE id = $1 RETURNING json_build_object('deleted', id)::text",
                        1, params, false), /* a retry after a commit would answer 404 */
                200);
}

static void whoami(serval_response_t *res)
{
    PGresult *r = db_exec("SELECT pg_backend_pid()", 0, NULL, true);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        send_error(res, 503, "database unavailable");
        return;
    }
    char out[128];
    snprintf(out, sizeof out, "{\"pid\":%d,\"worker\":%d,\"backend_pid\":%s}", (int)getpid(),
             serval_context()->worker_index, PQgetvalue(r, 0, 0));
    PQclear(r);
    send_json(res, 200, out);
}

static void health(serval_response_t *res)
{
    PGresult *r = db_exec("SELECT 1", 0, NULL, true);
    if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK)
        send_json(res, 200, "{\"database\":\"ok\"}");
    else
        send_error(res, 503, "database unavailable");
    PQclear(r);
}

/* "/notes/123" -> "123"; NULL unless the rest is 1..18 digits. */
static const char *note_id(const char *path)
{
    const char *id = path + strlen("/notes/");
    size_t n = strspn(id, "0123456789");
    return n > 0 && n <= 18 && id[n] == '\0' ? id : NULL;
}

static void handle(void *app_data, serval_request_t *req, serval_response_t *res)
{
    const char *m = serval_request_method(req);
    const char *path = serval_request_path(req);
    if (strcmp(path, "/notes") == 0) {
        if (strcmp(m, "GET") == 0)
            list_notes(req, res);
        else if (strcmp(m, "POST") == 0)
            create_note(req, res);
        else
            send_error(res, 405, "use GET or POST");
    } else if (strncmp(path, "/notes/", 7) == 0) {
        const char *id = note_id(path);
        if (id == NULL)
            send_error(res, 404, "no such note");
        else if (strcmp(m, "GET") == 0)
            get_note(id, res);
        else if (strcmp(m, "PUT") == 0)
            update_note(id, req, res);
        else if (strcmp(m, "DELETE") == 0)
            delete_note(id, res);
        else
            send_error(res, 405, "use GET, PUT or DELETE");
    } else if (strcmp(path, "/health") == 0) {
        health(res);
    } else if (strcmp(path, "/db") == 0) {
        whoami(res);
    } else {
        send_error(res, 404, "not found: try /notes");
    }
}

/* ---- loading, and the hooks ---------------------------------------------------- */

static int init(const serval_context_t *ctx, void **app_data)
{
    const char *url = getenv("DATABASE_URL");
    if (url == NULL || *url == '\0') {
        serval_log("notes: set DATABASE_URL (a libpq connection string, e.g. postgresql:///notes)");
        return -1;
    }
    if (db_setup(url) != 0)
        return -1;
    /* A one-off connection: closed before init returns, so nothing is left to fork. */
    PGconn *pg = db_connect();
    if (pg == NULL)
        return -1; /* no database: this worker does not boot (a phased restart keeps the old ones) */
    PGresult *r = PQexec(pg, schema_sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        serval_log("notes: cannot create the notes table: %s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    return ok ? 0 : -1;
}

static void fini(void *app_data, const serval_context_t *ctx)
{
    db_teardown();
}

/* Every hook that runs before a fork closes this process's connections. */
static int close_before_fork(void *app_data, const serval_context_t *ctx)
{
    db_close_all();
    return 0;
}

/*
 * A new worker: drop whatever it inherited (already cut off by the atfork
 * handler), without a goodbye on the parent's sessions. Its serving threads
 * then connect on first use, each to its own backend.
 */
static int on_worker_boot(void *app_data, const serval_context_t *ctx)
{
    db_close_all();
    return 0;
}

/* Close cleanly, so the backends end now rather than when the socket dies. */
static int on_worker_shutdown(void *app_data, const serval_context_t *ctx)
{
    db_close_all();
    return 0;
}

static const serval_app_t notes_app = {
    .abi_version = SERVAL_ABI_VERSION,
    .size = sizeof(serval_app_t),
    .name = "notes",
    .init = init,
    .handle = handle,
    .fini = fini,
    .before_fork = close_before_fork,    /* master with preload_app!, before the first worker */
    .on_worker_fork = close_before_fork, /* master or mold, before each worker */
    .on_refork = close_before_fork,      /* worker 0, before a refork's mold: threads reopen lazily */
    .on_restart = close_before_fork,     /* before a hot restart's exec */
    .on_worker_boot = on_worker_boot,
    .on_worker_shutdown = on_worker_shutdown,
};

__attribute__((visibility("default"))) const serval_app_t *serval_app(void)
{
    return &notes_app;
}
