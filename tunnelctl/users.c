/*
 * tunnelctl user: add, list, disable, enable, remove.  The name rule is
 * the users_name_check constraint of sql/001_schema.sql, checked here too
 * so a bad name gets a sentence instead of a constraint name.  Disabling,
 * enabling and removing go through tunnel_admin_user_action() of
 * sql/002_admin.sql, as the web admin does (never zero enabled admins,
 * disabling ends web sessions); they only change rows: the triggers
 * NOTIFY tunnel_keys and tunneld closes what must be closed.  Web
 * passwords are not set here: a user added here has SSH keys only; web
 * accounts come from invitations ('tunnelctl invite create').
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


static int
tnl_ctl_user_add(int argc, char **argv)
{
    int          i, admin;
    PGconn      *conn;
    PGresult    *res;
    const char  *name, *params[2];

    name = NULL;
    admin = 0;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--admin") == 0) {
            admin = 1;

        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return tnl_ctl_usage_error("unknown option \"%s\" for "
                                       "'user add'", argv[i]);

        } else if (name == NULL) {
            name = argv[i];

        } else {
            return tnl_ctl_usage_error("'user add' takes one NAME, not "
                                       "\"%s\" too", argv[i]);
        }
    }

    if (name == NULL) {
        return tnl_ctl_usage_error("'user add' needs a NAME");
    }

    if (!tnl_ctl_user_name_check(name)) {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    params[0] = name;
    params[1] = admin ? "true" : "false";

    res = tnl_ctl_db_exec(conn,
                          "INSERT INTO users (name, is_admin) "
                          "VALUES ($1, $2)", 2, params, NULL);

    if (res == NULL) {
        if (strcmp(tnl_ctl_db_sqlstate(), TNL_CTL_UNIQUE_VIOLATION) == 0) {
            tnl_ctl_error("user \"%s\" already exists: see "
                          "'tunnelctl user list'", name);
        } else {
            tnl_ctl_db_report("add the user");
        }

        PQfinish(conn);
        return TNL_CTL_FAIL;
    }

    PQclear(res);
    PQfinish(conn);

    printf("added %s \"%s\"\n", admin ? "admin" : "user", name);

    return TNL_CTL_OK;
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
        { "add",     tnl_ctl_user_add },
        { "list",    tnl_ctl_user_list },
        { "disable", tnl_ctl_user_disable },
        { "enable",  tnl_ctl_user_enable },
        { "remove",  tnl_ctl_user_remove },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("user", commands, argc, argv);
}
