/*
 * tunnelctl system-name: list, add, remove the names nobody may open a
 * tunnel under or reserve (table system_names of sql/003_first_hour.sql:
 * www, admin, api, ... -- the host names an operator keeps beside the
 * tunnel domain).  This table is the one list: tunneld and the admin
 * module read it and reload on the NOTIFY its trigger sends, and the
 * reserved_names trigger refuses a reservation of a name on it.  Names
 * are validated and folded by common/tnl_name.c like every tunnel name.
 *
 * Adding a name some user has reserved keeps their row (nothing is
 * deleted: removing the system name gives it back to them) but the system
 * list wins wherever a name is checked; the message and the list say so.
 * Several names are one transaction: all or none.
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"
#include "tnl_name.h"


typedef struct {
    char  name[TNL_NAME_MAX + 1];
    char  line[200];                 /* printed after COMMIT */
} tnl_ctl_system_name_t;


/*
 * Validates and folds every NAME of the command line into names (argc
 * entries).  Returns TNL_CTL_OK, or the exit status after reporting.
 */
static int
tnl_ctl_system_name_args(const char *verb, int argc, char **argv,
    tnl_ctl_system_name_t *names)
{
    int          i;
    const char  *err;

    if (argc == 0) {
        return tnl_ctl_usage_error("'system-name %s' needs at least one "
                                   "NAME", verb);
    }

    for (i = 0; i < argc; i++) {
        if (argv[i][0] == '-') {
            return tnl_ctl_usage_error("unknown option \"%s\" for "
                                       "'system-name %s'", argv[i], verb);
        }

        if (tnl_name_validate(argv[i], strlen(argv[i]), names[i].name, &err)
            != 0)
        {
            tnl_ctl_error("\"%s\" is not a valid tunnel name: %s",
                          argv[i], err);
            return TNL_CTL_FAIL;
        }
    }

    return TNL_CTL_OK;
}


/* the line for one name of 'add' from its row (new?, reserved for whom) */
static void
tnl_ctl_system_name_added(tnl_ctl_system_name_t *n, PGresult *res)
{
    if (strcmp(PQgetvalue(res, 0, 0), "f") == 0) {
        snprintf(n->line, sizeof(n->line),
                 "\"%s\" is already a system name", n->name);

    } else if (!PQgetisnull(res, 0, 1)) {
        snprintf(n->line, sizeof(n->line),
                 "added system name \"%s\" (user \"%s\" had reserved it: "
                 "the reservation stays but no longer counts)",
                 n->name, PQgetvalue(res, 0, 1));

    } else {
        snprintf(n->line, sizeof(n->line), "added system name \"%s\"",
                 n->name);
    }
}


/*
 * 'system-name add' or 'remove': BEGIN, each name through its statement,
 * COMMIT, then one line per name.  A name 'remove' does not find fails
 * the whole command before COMMIT.
 */
static int
tnl_ctl_system_name_change(const char *verb, int argc, char **argv)
{
    int                     i, rc, add;
    char                    what[40];
    PGconn                 *conn;
    PGresult               *res;
    const char             *sql, *params[1];
    tnl_ctl_system_name_t   names[argc > 0 ? argc : 1];

    rc = tnl_ctl_system_name_args(verb, argc, argv, names);
    if (rc != TNL_CTL_OK) {
        return rc;
    }

    add = (strcmp(verb, "add") == 0);

    sql = add
          ? "WITH n AS (INSERT INTO system_names (name) VALUES ($1)"
            "  ON CONFLICT (name) DO NOTHING RETURNING name),"
            " audit AS (INSERT INTO tunnel_events (event, name)"
            "  SELECT 'system_name_added', name FROM n)"
            " SELECT EXISTS (SELECT 1 FROM n),"
            "  (SELECT u.name FROM reserved_names r"
            "   JOIN users u ON u.id = r.user_id WHERE r.name = $1)"
          : "WITH n AS (DELETE FROM system_names WHERE name = $1"
            "  RETURNING name),"
            " audit AS (INSERT INTO tunnel_events (event, name)"
            "  SELECT 'system_name_removed', name FROM n)"
            " SELECT name FROM n";

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    snprintf(what, sizeof(what), "%s the system name", verb);

    res = tnl_ctl_db_exec(conn, "BEGIN", 0, NULL, what);
    if (res == NULL) {
        goto done;
    }

    PQclear(res);

    for (i = 0; i < argc; i++) {
        params[0] = names[i].name;

        res = tnl_ctl_db_exec(conn, sql, 1, params, what);
        if (res == NULL) {
            goto done;
        }

        if (add) {
            tnl_ctl_system_name_added(&names[i], res);

        } else if (PQntuples(res) == 1) {
            snprintf(names[i].line, sizeof(names[i].line),
                     "removed system name \"%s\"", names[i].name);

        } else {
            tnl_ctl_error("\"%s\" is not a system name: see 'tunnelctl "
                          "system-name list' (nothing was removed)",
                          names[i].name);
            PQclear(res);
            goto done;
        }

        PQclear(res);
    }

    res = tnl_ctl_db_exec(conn, "COMMIT", 0, NULL, what);
    if (res == NULL) {
        goto done;
    }

    PQclear(res);

    for (i = 0; i < argc; i++) {
        puts(names[i].line);
    }

    rc = TNL_CTL_OK;

done:

    /* a failed transaction is rolled back when the connection ends */
    PQfinish(conn);

    return rc;
}


static int
tnl_ctl_system_name_add(int argc, char **argv)
{
    return tnl_ctl_system_name_change("add", argc, argv);
}


static int
tnl_ctl_system_name_remove(int argc, char **argv)
{
    return tnl_ctl_system_name_change("remove", argc, argv);
}


static int
tnl_ctl_system_name_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "NAME", "RESERVED BY", "ADDED", NULL
    };

    static const tnl_ctl_list_t  list = {
        "system-name list", 0,
        "SELECT s.name, coalesce(u.name, '-'),"
        " " TNL_CTL_TIME("s.created_at")
        " FROM system_names s"
        " LEFT JOIN reserved_names r ON r.name = s.name"
        " LEFT JOIN users u ON u.id = r.user_id"
        " ORDER BY s.name",
        "list system names", headers,
        "no system names: every valid name can be opened and reserved; "
        "add one with 'tunnelctl system-name add NAME'", NULL
    };

    return tnl_ctl_list(&list, argc, argv);
}


int
tnl_ctl_system_name(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "list",   tnl_ctl_system_name_list },
        { "add",    tnl_ctl_system_name_add },
        { "remove", tnl_ctl_system_name_remove },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("system-name", commands, argc, argv);
}
