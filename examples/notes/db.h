/*
 * db.h: the notes app's PostgreSQL connections, one per serving thread.
 *
 * The rules this module keeps (docs/apps.md walks through them):
 * - A connection belongs to the process that opened it and is used by one
 *   thread at a time: each serving thread opens its own, lazily, on first use.
 * - Nothing is shared across fork: the app's hooks close every connection of
 *   the forking process before serval forks (before_fork, on_worker_fork,
 *   on_refork), and a pthread_atfork child handler points any socket a child
 *   still inherited (a fork serval makes without a hook: the first mold) at
 *   /dev/null at once, so the child can never talk on the parent's session,
 *   not even to say goodbye.
 * - A connection the server closed (database restart, idle timeout,
 *   pg_terminate_backend) is noticed before it is used and reopened.
 */
#ifndef NOTES_DB_H
#define NOTES_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

/* Once per loaded copy of the app (init). conninfo is copied. 0 or -1. */
int db_setup(const char *conninfo);

/*
 * A one-off connection for init's schema work, not tied to a thread; the
 * caller PQfinish()es it. NULL (after logging why) when the database cannot
 * be reached.
 */
PGconn *db_connect(void);

/*
 * Run one statement on the calling thread's connection, opening or
 * reopening it as needed. idempotent: when the connection breaks under the
 * statement, reconnect and run it once more (never for writes: the server
 * may have committed before the connection broke). Returns the result
 * (PQclear it), or NULL when no connection could be had: answer 503.
 */
PGresult *db_exec(const char *sql, int nparams, const char *const *values, bool idempotent);

/* The calling thread's connection, or NULL when it has none open. */
PGconn *db_current(void);

/*
 * Close every connection this process holds (and forget the ones it
 * inherited). Only while no handle() runs: serval calls hooks then.
 */
void db_close_all(void);

/* Undo db_setup (fini). */
void db_teardown(void);

#endif
