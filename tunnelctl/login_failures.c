/*
 * tunnelctl login-failures list|clear, and 'user unlock NAME' (the same
 * as 'login-failures clear --user NAME'): the operator's way out of the
 * web sign-in limits (sql/007_login_limits.sql says what is counted).
 * Clearing goes through tunnel_admin_login_failures_clear(), which writes
 * the audit row.  Names are folded (trimmed, lower case) as the sign-in
 * page folds them; they need not be accounts (a typo is counted too).
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"


#define TNL_CTL_TYPED_NAME_MAX  64     /* as login_failures.user_name */


/* folds name in place: trimmed, ASCII lower case; 0 if empty or long */
static int
tnl_ctl_login_name_fold(char *name)
{
    size_t  len, i;
    char   *p;

    for (p = name; isspace((unsigned char) *p); p++) {
        /* void */
    }

    len = strlen(p);
    while (len && isspace((unsigned char) p[len - 1])) {
        len--;
    }

    memmove(name, p, len);
    name[len] = '\0';

    for (i = 0; i < len; i++) {
        name[i] = tolower((unsigned char) name[i]);
    }

    if (len == 0 || len > TNL_CTL_TYPED_NAME_MAX) {
        tnl_ctl_error("\"%s\" is not a user name as typed at sign-in: give "
                      "1 to %d characters", name, TNL_CTL_TYPED_NAME_MAX);
        return 0;
    }

    return 1;
}


static int
tnl_ctl_login_failures_do_clear(char *name, const char *addr)
{
    int          rc;
    PGconn      *conn;
    PGresult    *res;
    const char  *params[2];

    if (name && !tnl_ctl_login_name_fold(name)) {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    params[0] = name;
    params[1] = addr;

    res = tnl_ctl_db_exec(conn,
              "SELECT tunnel_admin_login_failures_clear($1, $2, NULL, NULL)",
              2, params, "clear failed sign-ins");
    if (res == NULL) {
        goto done;
    }

    printf("cleared %s failed sign-in(s)", PQgetvalue(res, 0, 0));
    if (name) {
        printf(" as \"%s\"", name);
    }

    if (addr) {
        printf(" from %s", addr);
    }

    printf("\n");

    PQclear(res);
    rc = TNL_CTL_OK;

done:

    PQfinish(conn);

    return rc;
}


/* login-failures clear [--user NAME] [--address ADDR] */
static int
tnl_ctl_login_failures_clear(int argc, char **argv)
{
    int    i;
    char  *name, *addr;

    name = NULL;
    addr = NULL;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--user") == 0 && i + 1 < argc && name == NULL) {
            name = argv[++i];

        } else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc
                   && addr == NULL)
        {
            addr = argv[++i];

        } else {
            return tnl_ctl_usage_error("'login-failures clear' takes "
                                       "[--user NAME] [--address ADDR], "
                                       "not \"%s\"", argv[i]);
        }
    }

    return tnl_ctl_login_failures_do_clear(name, addr);
}


int
tnl_ctl_user_unlock(int argc, char **argv)
{
    if (argc != 1) {
        return tnl_ctl_usage_error("'user unlock' takes one NAME");
    }

    return tnl_ctl_login_failures_do_clear(argv[0], NULL);
}


/* what the limits count now: the last day, by name and address */
static int
tnl_ctl_login_failures_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "NAME", "ADDRESS", "FAILURES", "LAST", "ACCOUNT", NULL
    };

    static const tnl_ctl_list_t  list = {
        "login-failures list", 0,
        "SELECT f.user_name, f.client_addr, count(*),"
        " " TNL_CTL_TIME("max(f.at)") ","
        " CASE WHEN EXISTS (SELECT 1 FROM users u"
        "                    WHERE u.name = f.user_name)"
        "      THEN 'yes' ELSE 'no' END"
        " FROM login_failures f"
        " WHERE f.at > now() - interval '1 day'"
        " GROUP BY f.user_name, f.client_addr"
        " ORDER BY max(f.at) DESC",
        "list failed sign-ins", headers,
        "no failed sign-ins in the last day", NULL
    };

    return tnl_ctl_list(&list, argc, argv);
}


int
tnl_ctl_login_failures(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "list",  tnl_ctl_login_failures_list },
        { "clear", tnl_ctl_login_failures_clear },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("login-failures", commands, argc, argv);
}
