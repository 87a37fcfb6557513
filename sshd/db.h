/*
 * tunneld's PostgreSQL link: one non-blocking libpq connection driven by
 * the loop (PQconnectStart/PQconnectPoll, PQsendQueryParams, never a
 * blocking call).  It loads keys and reserved names into keys.c, LISTENs
 * on "tunnel_keys" to reload within 2 s of a change, and writes the audit
 * log and last-used times from a bounded in-memory queue; runs other
 * parts' queries (tnl_db_query) and LISTENs for them (tnl_db_listen).
 * Reconnects with backoff; while PostgreSQL is down the last loaded table
 * stays in force and audit rows wait in the queue (oldest dropped past the
 * bound, with a log line).
 */

#ifndef TNL_DB_H
#define TNL_DB_H

#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

#include "loop.h"


typedef struct {
    const char  *event;        /* "open", "close", "takeover", "kick",
                                  "refused", "auth" */
                               /* close detail: "client quit", "kicked by
                                  WHO", "taken over", "user disabled or key
                                  removed", "server shutting down",
                                  "connection lost" (see sql/004) */
    const char  *name;         /* tunnel name or NULL */
    int64_t      user_id;      /* 0 if unknown */
    const char  *fingerprint;  /* or NULL */
    const char  *client;       /* "ip:port" or NULL */
    const char  *session;      /* session id or NULL */
    int64_t      bytes_in;
    int64_t      bytes_out;
    int64_t      streams;
    const char  *detail;       /* free text or NULL */
} tnl_db_event_t;


/* starts connecting; returns 0, or -1 if conninfo is unusable */
int tnl_db_start(tnl_loop_t *loop, const char *conninfo, const char *node);

/* queues an audit row (strings are copied) */
void tnl_db_log_event(const tnl_db_event_t *ev);

/*
 * queues a last_used_at update; repeats are folded and written as one
 * "UPDATE ... WHERE fingerprint = ANY($1)" per batch
 */
void tnl_db_key_used(const char *fingerprint);

/*
 * A tunneld process of this node died without writing its close rows
 * (SIGKILL, crash): once connected, write "close" rows with detail "node
 * lost" for the opens of sessions starting with session_prefix ("NODE/"
 * for the whole node, "NODE/PID/" for one dead worker) logged before
 * before and never closed (tunnel_events_node_lost(), sql/004_audit.sql).
 */
void tnl_db_node_lost(const char *session_prefix,
    const struct timespec *before);

/* flushes what it can within ms, then closes (shutdown) */
void tnl_db_stop(int ms);

/* 1 while the PostgreSQL connection is up (for /healthz and /metrics) */
int tnl_db_is_up(void);


/*
 * A query of another part, queued behind LISTEN and the key table load and
 * ahead of the audit rows.  The handler runs once, from the loop (never
 * inside tnl_db_query): with the result (res, error NULL; res is freed
 * after the handler returns) or with error set and res NULL: timed out
 * after timeout_ms (queued or in flight), connection lost while in flight
 * (the statement may or may not have run), or refused by PostgreSQL.
 * sql and params are copied.  NULL if out of memory (no handler then).
 */
typedef struct tnl_db_query_s  tnl_db_query_t;

typedef void (*tnl_db_query_pt)(void *data, PGresult *res,
    const char *error);

tnl_db_query_t *tnl_db_query(const char *sql, int nparams,
    const char *const *params, int timeout_ms, tnl_db_query_pt handler,
    void *data);

/* the handler will not run; the query may still run if already sent */
void tnl_db_query_cancel(tnl_db_query_t *q);

/*
 * LISTEN on channel too (call before tnl_db_start; at most 4): handler
 * gets each payload.  Notifications sent while the connection was down are
 * lost: a listener that cannot afford that checks for itself from time to
 * time.
 */
typedef void (*tnl_db_notify_pt)(const char *payload);

int tnl_db_listen(const char *channel, tnl_db_notify_pt handler);

#endif /* TNL_DB_H */
