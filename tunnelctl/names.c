/*
 * tunnelctl name: reserve, release, list the tunnel names a user owns even
 * while no tunnel of theirs is up (table reserved_names).  Names are
 * validated and folded by common/tnl_name.c, the same rule tunneld and
 * the nginx module apply.  A system name (table system_names, see
 * system_names.c) cannot be reserved: the reserved_names_system_guard
 * trigger of sql/003_first_hour.sql refuses it whoever writes the row,
 * and this file turns that refusal into a sentence naming the name and
 * the rule.  It does not touch live routes in Redis: a tunnel already up
 * under a name that gets reserved keeps running until it closes.
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"
#include "tnl_name.h"


/* SQLSTATE of the system_names_guard() trigger's refusal */
#define TNL_CTL_CHECK_VIOLATION  "23514"


/* folds and validates a tunnel name into out; 0, or -1 after reporting */
static int
tnl_ctl_name_check(const char *in, char *out)
{
    const char  *err;

    if (tnl_name_validate(in, strlen(in), out, &err) != 0) {
        tnl_ctl_error("\"%s\" is not a valid tunnel name: %s", in, err);
        return -1;
    }

    return 0;
}


static int
tnl_ctl_name_reserve(int argc, char **argv)
{
    int          rc;
    char         name[TNL_NAME_MAX + 1], id[21];
    PGconn      *conn;
    PGresult    *res;
    const char  *params[2];

    if (argc != 2) {
        return tnl_ctl_usage_error("'name reserve' takes a NAME and a USER");
    }

    if (tnl_ctl_name_check(argv[0], name) != 0
        || !tnl_ctl_user_name_check(argv[1]))
    {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;

    if (tnl_ctl_user_id(conn, argv[1], id) != 0) {
        goto done;
    }

    params[0] = name;
    params[1] = id;

    res = tnl_ctl_db_exec(conn,
                          "WITH ins AS (INSERT INTO reserved_names"
                          " (name, user_id) VALUES ($1, $2)"
                          " ON CONFLICT (name) DO NOTHING RETURNING name),"
                          " audit AS (INSERT INTO tunnel_events"
                          " (event, user_id, name)"
                          " SELECT 'name_reserved', $2, name FROM ins)"
                          " SELECT name FROM ins",
                          2, params, NULL);
    if (res == NULL) {
        if (strcmp(tnl_ctl_db_sqlstate(), TNL_CTL_CHECK_VIOLATION) == 0) {
            tnl_ctl_error("\"%s\" is a system name (kept for the "
                          "installation's own hosts, see 'tunnelctl "
                          "system-name list') and cannot be reserved: "
                          "choose another name, or remove it from the "
                          "system names with 'tunnelctl system-name "
                          "remove %s'", name, name);
        } else {
            tnl_ctl_db_report("reserve the name");
        }

        goto done;
    }

    if (PQntuples(res) == 1) {
        printf("reserved \"%s\" for user \"%s\"\n", name, argv[1]);
        PQclear(res);
        rc = TNL_CTL_OK;
        goto done;
    }

    PQclear(res);

    res = tnl_ctl_db_exec(conn,
                          "SELECT u.name FROM reserved_names r"
                          " JOIN users u ON u.id = r.user_id"
                          " WHERE r.name = $1",
                          1, params, "look up the name's owner");
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        tnl_ctl_error("\"%s\" was being reserved or released at the same "
                      "time: try again", name);
    } else {
        tnl_ctl_error("\"%s\" is already reserved for user \"%s\": release "
                      "it first with 'tunnelctl name release %s'",
                      name, PQgetvalue(res, 0, 0), name);
    }

    PQclear(res);

done:

    PQfinish(conn);

    return rc;
}


static int
tnl_ctl_name_release(int argc, char **argv)
{
    int          rc;
    char         name[TNL_NAME_MAX + 1];
    PGconn      *conn;
    PGresult    *res;
    const char  *params[1];

    if (argc != 1) {
        return tnl_ctl_usage_error("'name release' takes one NAME");
    }

    if (tnl_ctl_name_check(argv[0], name) != 0) {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    params[0] = name;
    rc = TNL_CTL_FAIL;

    res = tnl_ctl_db_exec(conn,
                          "WITH del AS (DELETE FROM reserved_names r"
                          " USING users u"
                          " WHERE r.name = $1 AND u.id = r.user_id"
                          " RETURNING u.name, r.user_id),"
                          " audit AS (INSERT INTO tunnel_events"
                          " (event, user_id, name)"
                          " SELECT 'name_released', user_id, $1 FROM del)"
                          " SELECT name FROM del",
                          1, params, "release the name");

    if (res != NULL) {
        if (PQntuples(res) == 0) {
            tnl_ctl_error("\"%s\" is not reserved: see "
                          "'tunnelctl name list'", name);
        } else {
            printf("released \"%s\" (was reserved for user \"%s\")\n",
                   name, PQgetvalue(res, 0, 0));
            rc = TNL_CTL_OK;
        }

        PQclear(res);
    }

    PQfinish(conn);

    return rc;
}


static int
tnl_ctl_name_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "NAME", "USER", "CREATED", NULL
    };

    static const tnl_ctl_list_t  list = {
        "name list", 1,
        "SELECT r.name, u.name, " TNL_CTL_TIME("r.created_at")
        " FROM reserved_names r JOIN users u ON u.id = r.user_id"
        " WHERE $1::bigint IS NULL OR r.user_id = $1::bigint"
        " ORDER BY r.name",
        "list reserved names", headers,
        "no reserved names: reserve one with "
        "'tunnelctl name reserve NAME USER'", NULL
    };

    return tnl_ctl_list(&list, argc, argv);
}


int
tnl_ctl_name(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "reserve", tnl_ctl_name_reserve },
        { "release", tnl_ctl_name_release },
        { "list",    tnl_ctl_name_list },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("name", commands, argc, argv);
}
