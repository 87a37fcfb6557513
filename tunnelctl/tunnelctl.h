/*
 * tunnelctl: the operator's command line.  Shared declarations of its
 * parts: main.c (dispatch, usage), db.c (connection, error reporting),
 * migrate.c, users.c, keys.c, names.c, system_names.c, invites.c,
 * activation.c (commands), links.c (tokens and bases of the web admin's
 * one-time links), pubkey.c (public key line parsing with libssh), table.c
 * (aligned text tables and the list commands built on them).
 *
 * A CLI may block: libpq is used in blocking mode throughout.  Every
 * command returns its exit status: TNL_CTL_OK, TNL_CTL_FAIL (a bad input
 * or a failure, after one line on stderr that says what to do) or
 * TNL_CTL_USAGE (the command line itself is wrong).
 */

#ifndef TNL_CTL_H
#define TNL_CTL_H

#include <stddef.h>

#include <libpq-fe.h>


#define TNL_CTL_OK     0
#define TNL_CTL_FAIL   1
#define TNL_CTL_USAGE  2


#define TNL_CTL_USER_MAX  32


/* SQLSTATEs a command acts on (PostgreSQL appendix A) */
#define TNL_CTL_UNIQUE_VIOLATION       "23505"
#define TNL_CTL_FOREIGN_KEY_VIOLATION  "23503"


/* a timestamptz column as text, in UTC: 2030-01-02T03:04:05Z */
#define TNL_CTL_TIME(col)                                                   \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


/* main.c */

/* a command word and what runs it with the arguments after that word */
typedef struct {
    const char  *name;
    int        (*run)(int argc, char **argv);
} tnl_ctl_command_t;

void tnl_ctl_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
int tnl_ctl_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * Runs the sub-command argv[0] of group ("key", "user", ...) from commands
 * (ended by a NULL name); a missing or unknown one is a usage error.
 */
int tnl_ctl_subcommand(const char *group, const tnl_ctl_command_t *commands,
    int argc, char **argv);


/* db.c */

/*
 * Connects with $DATABASE_URL.  Returns NULL after printing why (unset,
 * unreachable).  The caller owns the connection: PQfinish it.
 */
PGconn *tnl_ctl_db_connect(void);

/*
 * Runs one parameterised statement (text parameters and results).  Returns
 * the result when its status is PGRES_COMMAND_OK or PGRES_TUPLES_OK, which
 * the caller PQclears.  Otherwise returns NULL and keeps the error for
 * tnl_ctl_db_sqlstate and tnl_ctl_db_report; if what is not NULL it is
 * reported at once as "cannot <what>: <server message>".
 */
PGresult *tnl_ctl_db_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *params, const char *what);

/* the same for a script of several statements, no parameters (migrations) */
PGresult *tnl_ctl_db_exec_script(PGconn *conn, const char *sql,
    const char *what);

/* SQLSTATE of the last failed statement ("" if none, e.g. connection lost) */
const char *tnl_ctl_db_sqlstate(void);

/* reports the last failed statement: "cannot <what>: <server message>" */
void tnl_ctl_db_report(const char *what);

/*
 * Copies the users.id of the user called name, as text, to id (21 bytes).
 * Returns 0, or -1 after reporting (invalid name, no such user: the
 * message says how to add one).
 */
int tnl_ctl_user_id(PGconn *conn, const char *name, char *id);


/* users.c: 1 if name is a valid user name, else 0 after reporting */
int tnl_ctl_user_name_check(const char *name);


/* pubkey.c */

typedef struct {
    char   type[64];          /* "ssh-ed25519", from the key blob itself */
    char  *base64;            /* canonical blob, malloc'ed */
    char  *comment;           /* rest of the line, trimmed, malloc'ed */
    char   fingerprint[64];   /* "SHA256:...", as ssh-keygen -lf prints */
} tnl_ctl_pubkey_t;

/*
 * Parses the text of an OpenSSH public key file (one "type base64
 * [comment]" line; blank lines and # comments ignored).  source names the
 * input in messages.  Returns 0, or -1 after printing why (private key,
 * malformed, several keys, unsupported type).  Free with
 * tnl_ctl_pubkey_free.
 */
int tnl_ctl_pubkey_parse(const char *text, size_t len, const char *source,
    tnl_ctl_pubkey_t *key);
void tnl_ctl_pubkey_free(tnl_ctl_pubkey_t *key);


/* links.c */

#define TNL_CTL_TOKEN_LEN      24      /* base64url of 144 random bits */
#define TNL_CTL_HOURS_DEFAULT  "72"    /* as tunnel_admin_invite_hours */
#define TNL_CTL_HOURS_MAX      8760    /* one year */

/*
 * Writes a new random token (TNL_CTL_TOKEN_LEN characters and a NUL) to
 * token.  Returns 0, or -1 after reporting.
 */
int tnl_ctl_token_make(char *token);

/* 1 if text is a whole number of hours from 1 to TNL_CTL_HOURS_MAX */
int tnl_ctl_hours_check(const char *text);

/*
 * The base of a link, from option (--base-url; NULL if not given) or
 * $TUNNEL_ADMIN_URL, without trailing slashes, into buf; "" when neither
 * is set.  Returns 0, or -1 after reporting a value that is not an
 * http(s) URL.
 */
int tnl_ctl_link_base(const char *option, char *buf, size_t size);

/* after a link printed without base: the hint on stderr */
void tnl_ctl_link_hint(const char *base);


/* table.c: prints a PGresult as a column-aligned table with headers */
void tnl_ctl_table_print(PGresult *res, const char *const *headers);

/* the same for any cells: cell(data, row, col) returns a string */
void tnl_ctl_table_print_cells(int ncols, int nrows,
    const char *const *headers,
    const char *(*cell)(void *data, int row, int col), void *data);


/*
 * api.c: one request to tunneld's management API (docs/API.md) at
 * $TUNNELD_API (the path of api.sock, or http://HOST:PORT with
 * $TUNNELD_API_TOKEN), 10 s at most.  Returns the HTTP status and the
 * decoded body (malloc'ed, NUL-terminated; free it), or -1 after printing
 * why the API could not be reached and what to check.
 */
int tnl_ctl_api(const char *method, const char *path, const char *body,
    char **out);

/*
 * A list command ('user list', 'key list [USER]', ...): one query whose
 * rows are printed as a table, or one sentence on stderr when there are
 * none (exit status 0 either way).
 */
typedef struct {
    const char          *command;     /* "key list", for usage errors */
    unsigned             by_user;     /* takes an optional USER: $1 is its
                                         users.id, NULL without USER */
    const char          *sql;
    const char          *what;        /* "list keys": "cannot list keys" */
    const char *const   *headers;     /* one per column, NULL-terminated */
    const char          *empty;       /* no rows */
    const char          *empty_user;  /* no rows for USER; each %s is the
                                         USER; NULL: empty */
} tnl_ctl_list_t;

int tnl_ctl_list(const tnl_ctl_list_t *list, int argc, char **argv);


/* commands */
int tnl_ctl_migrate(int argc, char **argv);
int tnl_ctl_user(int argc, char **argv);
int tnl_ctl_key(int argc, char **argv);
int tnl_ctl_name(int argc, char **argv);
int tnl_ctl_invite(int argc, char **argv);
int tnl_ctl_system_name(int argc, char **argv);
int tnl_ctl_tunnels(int argc, char **argv);
int tnl_ctl_kick(int argc, char **argv);
int tnl_ctl_activation(int argc, char **argv);
int tnl_ctl_login_failures(int argc, char **argv);
int tnl_ctl_user_unlock(int argc, char **argv);     /* login_failures.c */

#endif /* TNL_CTL_H */
