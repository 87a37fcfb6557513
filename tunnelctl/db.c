/*
 * tunnelctl's database link: connects with $DATABASE_URL (blocking libpq:
 * this is a CLI), runs parameterised statements and turns libpq's
 * multi-line errors into the one-line messages tunnelctl prints.  Values
 * never go into SQL text: always $n parameters.
 *
 * It keeps the last error (message and SQLSTATE) in static storage so a
 * command can act on one SQLSTATE (a duplicate, say) and report the rest.
 * It does not know the schema beyond users (tnl_ctl_user_id).
 */

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tunnelctl.h"


#define TNL_CTL_UNDEFINED_TABLE     "42P01"
#define TNL_CTL_UNDEFINED_FUNCTION  "42883"


static void tnl_ctl_db_actor(PGconn *conn);


static char  tnl_ctl_db_state[6];
static char  tnl_ctl_db_message[1024];


/* copies a libpq message to buf as one line: newlines and tabs -> spaces */
static void
tnl_ctl_db_flatten(const char *msg, char *buf, size_t size)
{
    size_t  n;
    int     space;

    n = 0;
    space = 0;

    for ( /* void */ ; msg != NULL && *msg != '\0' && n + 1 < size; msg++) {
        if (*msg == '\n' || *msg == '\t' || *msg == '\r' || *msg == ' ') {
            space = (n > 0);
            continue;
        }

        if (space && n + 2 < size) {
            buf[n++] = ' ';
        }

        space = 0;
        buf[n++] = *msg;
    }

    buf[n] = '\0';
}


/*
 * Shows warnings one per line; drops NOTICE and below ("relation already
 * exists, skipping" is expected, not news).
 */
static void
tnl_ctl_db_notice(void *arg, const PGresult *res)
{
    char         line[1024];
    const char  *severity;

    (void) arg;

    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

    if (severity == NULL || strcmp(severity, "WARNING") != 0) {
        return;
    }

    tnl_ctl_db_flatten(PQresultErrorMessage(res), line, sizeof(line));
    tnl_ctl_error("PostgreSQL says: %s", line);
}


PGconn *
tnl_ctl_db_connect(void)
{
    char         line[1024];
    PGconn      *conn;
    const char  *url;

    /* later keywords win: DATABASE_URL may override these defaults */
    static const char *const  keys[] = {
        "application_name", "connect_timeout", "dbname", NULL
    };
    const char                *values[4];

    url = getenv("DATABASE_URL");

    if (url == NULL || url[0] == '\0') {
        tnl_ctl_error("DATABASE_URL is not set: export it, e.g. "
                      "DATABASE_URL='postgresql:///ngx_tunnel?"
                      "host=/run/postgresql'");
        return NULL;
    }

    values[0] = "tunnelctl";
    values[1] = "10";
    values[2] = url;
    values[3] = NULL;

    conn = PQconnectdbParams(keys, values, 1);

    if (conn == NULL) {
        tnl_ctl_error("cannot connect to the database: out of memory");
        return NULL;
    }

    if (PQstatus(conn) != CONNECTION_OK) {
        tnl_ctl_db_flatten(PQerrorMessage(conn), line, sizeof(line));
        tnl_ctl_error("cannot connect to the database (check DATABASE_URL "
                      "and that PostgreSQL is running): %s", line);
        PQfinish(conn);
        return NULL;
    }

    PQsetNoticeReceiver(conn, tnl_ctl_db_notice, NULL);

    tnl_ctl_db_actor(conn);

    return conn;
}


/*
 * Who the audit log names for what this connection does: "tunnelctl
 * (OS user)", a setting the tunnel_events trigger reads (sql/004_audit.sql)
 * because tunnelctl acts as no user of the database.  Best effort: the
 * action itself does not depend on it.
 */
static void
tnl_ctl_db_actor(PGconn *conn)
{
    char            actor[96];
    PGresult       *res;
    const char     *user, *params[1];
    struct passwd  *pw;

    user = getenv("USER");

    if (user == NULL || user[0] == '\0') {
        pw = getpwuid(geteuid());
        user = pw ? pw->pw_name : "operator";
    }

    snprintf(actor, sizeof(actor), "tunnelctl (%.64s)", user);
    params[0] = actor;

    res = PQexecParams(conn, "SELECT set_config('tunnel.actor', $1, false)",
                       1, NULL, params, NULL, NULL, 0);
    PQclear(res);
}


/* keeps the error of a failed result (and clears it); NULL if none */
static PGresult *
tnl_ctl_db_check(PGconn *conn, PGresult *res, const char *what)
{
    char             text[1024];
    const char      *state, *primary, *detail;
    ExecStatusType   status;

    status = PQresultStatus(res);

    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        tnl_ctl_db_state[0] = '\0';
        tnl_ctl_db_message[0] = '\0';
        return res;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(tnl_ctl_db_state, sizeof(tnl_ctl_db_state), "%s",
             state ? state : "");

    /* the server's sentence and detail, without "ERROR:" and the SQL */
    primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

    if (primary != NULL) {
        snprintf(text, sizeof(text), "%s%s%s%s", primary,
                 detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
        tnl_ctl_db_flatten(text, tnl_ctl_db_message,
                           sizeof(tnl_ctl_db_message));

    } else {
        tnl_ctl_db_message[0] = '\0';
    }

    if (tnl_ctl_db_message[0] == '\0') {
        /* no result at all (out of memory, connection lost) */
        tnl_ctl_db_flatten(PQerrorMessage(conn), tnl_ctl_db_message,
                           sizeof(tnl_ctl_db_message));
    }

    PQclear(res);

    if (what != NULL) {
        tnl_ctl_db_report(what);
    }

    return NULL;
}


PGresult *
tnl_ctl_db_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *params, const char *what)
{
    return tnl_ctl_db_check(conn,
                            PQexecParams(conn, sql, nparams, NULL, params,
                                         NULL, NULL, 0),
                            what);
}


PGresult *
tnl_ctl_db_exec_script(PGconn *conn, const char *sql, const char *what)
{
    /* PQexec: the simple protocol runs several statements in one string */
    return tnl_ctl_db_check(conn, PQexec(conn, sql), what);
}


const char *
tnl_ctl_db_sqlstate(void)
{
    return tnl_ctl_db_state;
}


void
tnl_ctl_db_report(const char *what)
{
    if (strcmp(tnl_ctl_db_state, TNL_CTL_UNDEFINED_TABLE) == 0) {
        tnl_ctl_error("cannot %s: the database has no ngx-tunnel schema "
                      "(%s): run 'tunnelctl migrate' first",
                      what, tnl_ctl_db_message);
        return;
    }

    /* the functions of a later migration (tunnel_admin_* of 002) */
    if (strcmp(tnl_ctl_db_state, TNL_CTL_UNDEFINED_FUNCTION) == 0) {
        tnl_ctl_error("cannot %s: the database schema is older than this "
                      "tunnelctl (%s): run 'tunnelctl migrate' first",
                      what, tnl_ctl_db_message);
        return;
    }

    tnl_ctl_error("cannot %s: %s", what, tnl_ctl_db_message);
}


int
tnl_ctl_user_id(PGconn *conn, const char *name, char *id)
{
    PGresult    *res;
    const char  *params[1];

    if (!tnl_ctl_user_name_check(name)) {
        return -1;
    }

    params[0] = name;

    res = tnl_ctl_db_exec(conn, "SELECT id FROM users WHERE name = $1",
                          1, params, "look up the user");
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        tnl_ctl_error("no user named \"%s\": add it with "
                      "'tunnelctl user add %s'", name, name);
        PQclear(res);
        return -1;
    }

    snprintf(id, 21, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    return 0;
}
