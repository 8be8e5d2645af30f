/*
 * db.c: one PostgreSQL connection per serving thread, safe across fork.
 * See db.h for the rules; the comments here say why the code keeps them.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serval.h"

/* A serving thread's connection. Slots live in a list so hooks can close them all. */
typedef struct slot {
    PGconn *pg;
    pid_t pid;        /* the process whose thread owns the slot */
    bool neutered;    /* inherited across fork: its socket now points at /dev/null */
    struct slot *next;
} slot_t;

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static slot_t *slots;
static pthread_key_t slot_key;
static bool key_made;
static char *conninfo;

/*
 * Drop a connection without a word to the server: point its socket at
 * /dev/null, so that PQfinish's Terminate message (and a TLS close_notify)
 * go nowhere instead of ending the session the parent still uses.
 */
static void neuter(PGconn *pg)
{
    int fd = PQsocket(pg);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && devnull >= 0)
        (void)dup3(devnull, fd, O_CLOEXEC);
    if (devnull >= 0)
        close(devnull);
}

/* Runs in every child right after fork (async-signal-safe calls only). */
static void after_fork_child(void)
{
    for (slot_t *s = slots; s != NULL; s = s->next) {
        if (s->pg != NULL && !s->neutered) {
            neuter(s->pg);
            s->neutered = true;
        }
    }
}

static void slot_close(slot_t *s)
{
    if (s->pg == NULL)
        return;
    if (s->pid != getpid() && !s->neutered)
        neuter(s->pg); /* not ours: never say goodbye on it */
    PQfinish(s->pg);
    s->pg = NULL;
    s->neutered = false;
}

static void slot_release(void *p)
{
    slot_t *s = p;
    pthread_mutex_lock(&slots_lock);
    for (slot_t **pp = &slots; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&slots_lock);
    slot_close(s);
    free(s);
}

int db_setup(const char *info)
{
    free(conninfo);
    conninfo = strdup(info);
    if (conninfo == NULL)
        return -1;
    if (!key_made) {
        if (pthread_key_create(&slot_key, slot_release) != 0)
            return -1;
        key_made = true;
        /* after_fork_child only rewires fds: it is safe in a forked child */
        if (pthread_atfork(NULL, NULL, after_fork_child) != 0)
            return -1;
    }
    return 0;
}

PGconn *db_connect(void)
{
    char appname[64];
    snprintf(appname, sizeof appname, "notes pid=%d", (int)getpid());
    /*
     * connect_timeout before dbname: a default that DATABASE_URL may
     * override; application_name after it: always ours, so that
     * pg_stat_activity shows which process holds each connection.
     */
    const char *const keys[] = {"connect_timeout", "dbname", "application_name", NULL};
    const char *const vals[] = {"5", conninfo, appname, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        serval_log("notes: cannot connect to the database: %s",
                   pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/*
 * An idle connection has nothing to read: this app never LISTENs, so when
 * the server speaks first it is to say goodbye (a FATAL "terminating
 * connection" before EOF, at a restart, a shutdown or pg_terminate_backend).
 * The FATAL can arrive before the EOF, with the status still OK, so any
 * byte waiting on an idle connection retires it; a rare NOTICE or
 * ParameterStatus costs one reconnect, never a failed statement.
 */
static bool still_usable(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK || PQsocket(pg) < 0)
        return false;
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN | POLLRDHUP};
    return poll(&p, 1, 0) == 0;
}

static slot_t *my_slot(void)
{
    slot_t *s = pthread_getspecific(slot_key);
    if (s != NULL && s->pid == getpid())
        return s;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->pid = getpid();
    if (pthread_setspecific(slot_key, s) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&slots_lock);
    s->next = slots;
    slots = s;
    pthread_mutex_unlock(&slots_lock);
    return s;
}

static PGconn *my_conn(void)
{
    slot_t *s = my_slot();
    if (s == NULL)
        return NULL;
    if (s->pg != NULL && !still_usable(s->pg))
        slot_close(s);
    if (s->pg == NULL)
        s->pg = db_connect();
    return s->pg;
}

PGconn *db_current(void)
{
    slot_t *s = pthread_getspecific(slot_key);
    return s != NULL && s->pid == getpid() ? s->pg : NULL;
}

static bool connection_failed(PGconn *pg, const PGresult *r)
{
    return PQstatus(pg) == CONNECTION_BAD &&
           (r == NULL || PQresultStatus(r) == PGRES_FATAL_ERROR);
}

PGresult *db_exec(const char *sql, int nparams, const char *const *values, bool idempotent)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *pg = my_conn();
        if (pg == NULL)
            return NULL;
        PGresult *r = PQexecParams(pg, sql, nparams, NULL, values, NULL, NULL, 0);
        if (!connection_failed(pg, r))
            return r;
        serval_log("notes: lost the database connection: %s", PQerrorMessage(pg));
        PQclear(r);
        slot_close(my_slot());
        if (!idempotent)
            return NULL;
    }
    return NULL;
}

void db_close_all(void)
{
    pid_t me = getpid();
    pthread_mutex_lock(&slots_lock);
    for (slot_t **pp = &slots; *pp != NULL;) {
        slot_t *s = *pp;
        slot_close(s);
        if (s->pid == me) {
            pp = &s->next; /* a live thread's slot: it reconnects on next use */
            continue;
        }
        /* a slot of a thread of the parent, which does not exist here */
        if (pthread_getspecific(slot_key) == s)
            pthread_setspecific(slot_key, NULL);
        *pp = s->next;
        free(s);
    }
    pthread_mutex_unlock(&slots_lock);
}

void db_teardown(void)
{
    db_close_all();
    free(conninfo);
    conninfo = NULL;
}
