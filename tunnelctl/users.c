/*
 * tunnelctl user: add, list, disable, enable, remove (and unlock, in
 * login_failures.c).  The name rule is
 * the users_name_check constraint of sql/001_schema.sql, checked here too
 * so a bad name gets a sentence instead of a constraint name.  Disabling,
 * enabling and removing go through tunnel_admin_user_action() of
 * sql/002_admin.sql, as the web admin does (never zero enabled admins,
 * disabling ends web sessions); they only change rows: the triggers
 * NOTIFY tunnel_keys and tunneld closes what must be closed.
 *
 * Web passwords are never typed here: 'user add' and 'user password' print
 * a one-time link <base>/password/<token> (tunnel_admin_password_token_create
 * of sql/003_first_hour.sql, token from links.c) on whose web page the user
 * chooses one.  A user added here can so always reach the web admin, also
 * the first administrator of an installation.
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"


int
tnl_ctl_user_name_check(const char *name)
{
    size_t       len;
    const char  *p;

    len = strlen(name);

    if (len == 0 || len > TNL_CTL_USER_MAX || name[0] < 'a' || name[0] > 'z')
    {
        goto invalid;
    }

    for (p = name; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
            || *p == '_' || *p == '-')
        {
            continue;
        }

        goto invalid;
    }

    return 1;

invalid:

    tnl_ctl_error("\"%s\" is not a valid user name: use 1 to %d characters "
                  "a-z 0-9 _ -, starting with a letter",
                  name, TNL_CTL_USER_MAX);

    return 0;
}


/*
 * Options of 'user add' and 'user password': --hours N, --base-url URL
 * (and --admin when admin is not NULL) and one NAME.  Returns TNL_CTL_OK
 * or the exit status of a usage error.
 */
static int
tnl_ctl_user_link_args(const char *command, int argc, char **argv,
    const char **name, int *admin, const char **hours, const char **base)
{
    int  i;

    *name = NULL;
    *hours = TNL_CTL_HOURS_DEFAULT;
    *base = NULL;

    for (i = 0; i < argc; i++) {
        if (admin != NULL && strcmp(argv[i], "--admin") == 0) {
            *admin = 1;

        } else if (strcmp(argv[i], "--hours") == 0
                   || strcmp(argv[i], "--base-url") == 0)
        {
            if (i + 1 == argc) {
                return tnl_ctl_usage_error("%s needs a value", argv[i]);
            }

            if (argv[i][2] == 'h') {
                *hours = argv[i + 1];
            } else {
                *base = argv[i + 1];
            }

            i++;

        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return tnl_ctl_usage_error("unknown option \"%s\" for "
                                       "'%s'", argv[i], command);

        } else if (*name == NULL) {
            *name = argv[i];

        } else {
            return tnl_ctl_usage_error("'%s' takes one NAME, not "
                                       "\"%s\" too", command, argv[i]);
        }
    }

    if (*name == NULL) {
        return tnl_ctl_usage_error("'%s' needs a NAME", command);
    }

    return TNL_CTL_OK;
}


/*
 * Checks the name, --hours and the base of the link; fills base.  Returns
 * 0, or -1 after reporting.
 */
static int
tnl_ctl_user_link_check(const char *name, const char *hours,
    const char *base_url, char *base, size_t size)
{
    if (!tnl_ctl_user_name_check(name)) {
        return -1;
    }

    if (!tnl_ctl_hours_check(hours)) {
        tnl_ctl_error("--hours \"%s\" is not valid: give a whole number of "
                      "hours from 1 to %d (one year)",
                      hours, TNL_CTL_HOURS_MAX);
        return -1;
    }

    return tnl_ctl_link_base(base_url, base, size);
}


/*
 * Makes a one-time password link for the user id (earlier unused links of
 * theirs stop working) in the current transaction, into link.  Returns 0,
 * or -1 after reporting.
 */
static int
tnl_ctl_user_link_make(PGconn *conn, const char *id, const char *hours,
    const char *base, char *link, size_t size)
{
    char         token[TNL_CTL_TOKEN_LEN + 1];
    PGresult    *res;
    const char  *params[3];

    if (tnl_ctl_token_make(token) != 0) {
        return -1;
    }

    params[0] = token;
    params[1] = id;
    params[2] = hours;

    /* created_by NULL: made by an operator, not by a web admin */
    res = tnl_ctl_db_exec(conn,
                          "SELECT tunnel_admin_password_token_create($1,"
                          " $2::bigint, $3::integer, NULL)",
                          3, params, "make the password link");

    if (res != NULL) {
        snprintf(link, size, "%s/password/%s", base, token);
        PQclear(res);
    }

    memset(token, 0, sizeof(token));

    return res != NULL ? 0 : -1;
}


/* the link and what it is for, on stdout; the hint if it has no base */
static void
tnl_ctl_user_link_print(const char *name, const char *hours,
    const char *base, const char *link, const char *more)
{
    printf("one-time link for \"%s\" to set a web password (valid %s "
           "hour%s%s):\n%s\n",
           name, hours, strcmp(hours, "1") == 0 ? "" : "s", more, link);
    tnl_ctl_link_hint(base);
}


static int
tnl_ctl_user_add(int argc, char **argv)
{
    int          rc, admin;
    char         base[1024], link[1100], id[21];
    PGconn      *conn;
    PGresult    *res;
    const char  *name, *hours, *base_url, *params[2];

    admin = 0;
    link[0] = '\0';

    rc = tnl_ctl_user_link_args("user add", argc, argv, &name, &admin,
                                &hours, &base_url);
    if (rc != TNL_CTL_OK) {
        return rc;
    }

    if (tnl_ctl_user_link_check(name, hours, base_url, base, sizeof(base))
        != 0)
    {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;

    /* the user and their link together, or neither */
    res = tnl_ctl_db_exec(conn, "BEGIN", 0, NULL, "add the user");
    if (res == NULL) {
        goto done;
    }

    PQclear(res);

    params[0] = name;
    params[1] = admin ? "true" : "false";

    res = tnl_ctl_db_exec(conn,
                          "WITH ins AS (INSERT INTO users (name, is_admin) "
                          "VALUES ($1, $2) RETURNING id), "
                          "audit AS (INSERT INTO tunnel_events "
                          "(event, user_id, detail) "
                          "SELECT 'user_added', id, CASE WHEN $2::boolean "
                          "THEN 'administrator' END FROM ins) "
                          "SELECT id FROM ins", 2, params, NULL);

    if (res == NULL) {
        if (strcmp(tnl_ctl_db_sqlstate(), TNL_CTL_UNIQUE_VIOLATION) == 0) {
            tnl_ctl_error("user \"%s\" already exists: see "
                          "'tunnelctl user list'; a new password link: "
                          "'tunnelctl user password %s'", name, name);
        } else {
            tnl_ctl_db_report("add the user");
        }

        goto done;
    }

    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    if (tnl_ctl_user_link_make(conn, id, hours, base, link, sizeof(link))
        != 0)
    {
        goto done;
    }

    res = tnl_ctl_db_exec(conn, "COMMIT", 0, NULL, "add the user");
    if (res == NULL) {
        goto done;
    }

    PQclear(res);

    printf("added %s \"%s\"\n", admin ? "admin" : "user", name);
    tnl_ctl_user_link_print(name, hours, base, link, "");

    rc = TNL_CTL_OK;

done:

    /* a failed transaction is rolled back when the connection ends */
    PQfinish(conn);
    memset(link, 0, sizeof(link));

    return rc;
}


/*
 * user password NAME: a fresh one-time link for a forgotten (or never set)
 * web password; the user's earlier unused links stop working.  The
 * password itself only changes when the link is used.
 */
static int
tnl_ctl_user_password(int argc, char **argv)
{
    int          rc;
    char         base[1024], link[1100], id[21];
    PGconn      *conn;
    PGresult    *res;
    const char  *name, *hours, *base_url, *params[1];

    rc = tnl_ctl_user_link_args("user password", argc, argv, &name, NULL,
                                &hours, &base_url);
    if (rc != TNL_CTL_OK) {
        return rc;
    }

    if (tnl_ctl_user_link_check(name, hours, base_url, base, sizeof(base))
        != 0)
    {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    params[0] = name;

    res = tnl_ctl_db_exec(conn, "SELECT id, disabled FROM users"
                          " WHERE name = $1", 1, params,
                          "make the password link");
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        tnl_ctl_error("no user named \"%s\": add it with "
                      "'tunnelctl user add %s'", name, name);
        PQclear(res);
        goto done;
    }

    if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        tnl_ctl_error("user \"%s\" is disabled and could not use the link: "
                      "enable them first with 'tunnelctl user enable %s'",
                      name, name);
        PQclear(res);
        goto done;
    }

    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    if (tnl_ctl_user_link_make(conn, id, hours, base, link, sizeof(link))
        != 0)
    {
        goto done;
    }

    tnl_ctl_user_link_print(name, hours, base, link,
                            "; earlier links no longer work");
    memset(link, 0, sizeof(link));

    rc = TNL_CTL_OK;

done:

    PQfinish(conn);

    return rc;
}


static int
tnl_ctl_user_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "NAME", "ROLE", "DISABLED", "KEYS", "CREATED", NULL
    };

    static const tnl_ctl_list_t  list = {
        "user list", 0,
        "SELECT u.name,"
        " CASE WHEN u.is_admin THEN 'admin' ELSE 'user' END,"
        " CASE WHEN u.disabled THEN 'yes' ELSE 'no' END,"
        " (SELECT count(*) FROM ssh_keys k WHERE k.user_id = u.id),"
        " " TNL_CTL_TIME("u.created_at")
        " FROM users u ORDER BY u.name",
        "list users", headers,
        "no users yet: add one with 'tunnelctl user add NAME'", NULL
    };

    return tnl_ctl_list(&list, argc, argv);
}


/*
 * user disable|enable|remove NAME through tunnel_admin_user_action(), the
 * function the web admin uses too: it serialises every change of roles
 * and states, so two admins (or an admin and an operator) can never leave
 * the installation without an enabled administrator.  'disable' also ends
 * the user's web sessions; tunneld closes their live tunnels on the
 * NOTIFY that the users trigger sends.
 */
static int
tnl_ctl_user_change(const char *verb, int argc, char **argv)
{
    int          rc;
    char         what[32], id[21], counts[64];
    PGconn      *conn;
    PGresult    *res;
    const char  *action, *status, *params[2];

    if (argc != 1) {
        return tnl_ctl_usage_error("'user %s' takes one NAME", verb);
    }

    if (!tnl_ctl_user_name_check(argv[0])) {
        return TNL_CTL_FAIL;
    }

    action = (strcmp(verb, "remove") == 0) ? "delete" : verb;

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    snprintf(what, sizeof(what), "%s the user", verb);

    /* what a removal takes with it, read before (for the message only) */
    params[0] = argv[0];

    res = tnl_ctl_db_exec(conn,
              "SELECT u.id,"
              " format('%s key(s), %s reserved name(s)',"
              "  (SELECT count(*) FROM ssh_keys k WHERE k.user_id = u.id),"
              "  (SELECT count(*) FROM reserved_names r"
              "   WHERE r.user_id = u.id))"
              " FROM users u WHERE u.name = $1",
              1, params, what);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        goto unknown;
    }

    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    snprintf(counts, sizeof(counts), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);

    params[0] = id;
    params[1] = action;

    res = tnl_ctl_db_exec(conn,
                          "SELECT tunnel_admin_user_action(NULL, $1, $2)",
                          2, params, what);
    if (res == NULL) {
        goto done;
    }

    status = PQgetvalue(res, 0, 0);

    if (strcmp(status, "ok") == 0) {
        if (strcmp(verb, "remove") == 0) {
            printf("removed user \"%s\" (%s)\n", argv[0], counts);

        } else {
            printf("%sd user \"%s\"\n", verb, argv[0]);
        }

        rc = TNL_CTL_OK;

    } else if (strcmp(status, "last_admin") == 0) {
        tnl_ctl_error("cannot %s \"%s\": they are the only enabled admin "
                      "and the installation must keep one: add another "
                      "with 'tunnelctl user add NAME --admin' first",
                      verb, argv[0]);

    } else if (strcmp(status, "unknown") == 0) {
        /* removed between the two statements */
        PQclear(res);
        goto unknown;

    } else {
        tnl_ctl_error("cannot %s the user: the database answered \"%s\"",
                      verb, status);
    }

    PQclear(res);

done:

    PQfinish(conn);

    return rc;

unknown:

    tnl_ctl_error("no user named \"%s\": see 'tunnelctl user list'",
                  argv[0]);
    PQfinish(conn);

    return TNL_CTL_FAIL;
}


static int
tnl_ctl_user_disable(int argc, char **argv)
{
    return tnl_ctl_user_change("disable", argc, argv);
}


static int
tnl_ctl_user_enable(int argc, char **argv)
{
    return tnl_ctl_user_change("enable", argc, argv);
}


static int
tnl_ctl_user_remove(int argc, char **argv)
{
    return tnl_ctl_user_change("remove", argc, argv);
}


int
tnl_ctl_user(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "add",      tnl_ctl_user_add },
        { "list",     tnl_ctl_user_list },
        { "password", tnl_ctl_user_password },
        { "disable",  tnl_ctl_user_disable },
        { "enable",   tnl_ctl_user_enable },
        { "remove",   tnl_ctl_user_remove },
        { "unlock",   tnl_ctl_user_unlock },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("user", commands, argc, argv);
}
