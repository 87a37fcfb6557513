/*
 * tunnelctl activation: the device flow (issue 10) for operators without a
 * browser.  'list' shows the pending codes (their row id, never the code:
 * only its SHA-256 is stored); 'approve CODE --user USER' adds the waiting
 * key to USER's keys and lets its ssh session in; 'deny CODE|ID' stops
 * it.  Both go through tunnel_activation_decide() of
 * sql/005_activation.sql, as the web admin's /activate does, with the
 * address 'tunnelctl'.  The code is folded by common/tnl_code.c (case,
 * dashes, spaces) and hashed by PostgreSQL; the web's wrong-code limit is
 * not applied here (whoever runs tunnelctl has the database anyway).
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"
#include "tnl_code.h"


/* the decision, by code (letters) or by row id (deny only) */
static const char  tnl_ctl_activation_by_code_sql[] =
    "SELECT r_status, r_id, r_fingerprint"
    "  FROM tunnel_activation_decide(sha256(convert_to($1, 'UTF8')),"
    "                                $2, $3, 'tunnelctl')";

static const char  tnl_ctl_activation_by_id_sql[] =
    "SELECT r_status, r_id, r_fingerprint"
    "  FROM tunnel_activation_decide("
    "         (SELECT user_code_hash FROM activation_codes"
    "           WHERE id = $1::bigint),"
    "         $2, $3, 'tunnelctl')";


static int
tnl_ctl_activation_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "ID", "FINGERPRINT", "TYPE", "CLIENT", "CREATED", "EXPIRES", NULL
    };

    static const tnl_ctl_list_t  list = {
        "activation list", 0,
        "SELECT id, fingerprint, key_type, coalesce(client_addr, '-'),"
        " " TNL_CTL_TIME("created_at") ","
        " " TNL_CTL_TIME("expires_at")
        " FROM activation_codes"
        " WHERE approved_at IS NULL AND denied_at IS NULL"
        "   AND expires_at > now()"
        " ORDER BY created_at, id",
        "list activation codes", headers,
        "no activation code is pending", NULL
    };

    return tnl_ctl_list(&list, argc, argv);
}


/* 1 if text is a positive decimal number that fits a bigint */
static int
tnl_ctl_activation_is_id(const char *text)
{
    const char  *p;

    if (text[0] == '\0' || text[0] == '0' || strlen(text) > 18) {
        return 0;
    }

    for (p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }

    return 1;
}


/*
 * Approves (user not NULL) or denies the code or id in what, and says
 * what happened: one line on stdout, or one on stderr and TNL_CTL_FAIL.
 */
static int
tnl_ctl_activation_decide(const char *what, const char *user)
{
    int          by_id, rc;
    char         code[TNL_CODE_LEN + 1], shown[TNL_CODE_SHOWN + 1];
    char         uid[21], label[64];
    PGconn      *conn;
    PGresult    *res;
    const char  *params[3], *status, *fp;

    by_id = (user == NULL && tnl_ctl_activation_is_id(what));

    if (by_id) {
        snprintf(label, sizeof(label), "activation %s", what);

    } else if (tnl_code_normalize(what, strlen(what), code, NULL) == 0) {
        tnl_code_show(code, shown);
        snprintf(label, sizeof(label), "code %s", shown);

    } else {
        tnl_ctl_error("\"%s\" is not an activation code: give the 8 letters "
                      "ssh printed, e.g. WDJB-MJHT%s", what,
                      user ? "" : ", or the ID 'tunnelctl activation list' "
                                  "shows");
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    res = NULL;

    if (user != NULL && tnl_ctl_user_id(conn, user, uid) != 0) {
        goto done;
    }

    params[0] = by_id ? what : code;
    params[1] = user ? uid : NULL;
    params[2] = user ? "true" : "false";

    res = tnl_ctl_db_exec(conn, by_id ? tnl_ctl_activation_by_id_sql
                                      : tnl_ctl_activation_by_code_sql,
                          3, params,
                          user ? "approve the code" : "deny the code");
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) != 1) {
        tnl_ctl_error("cannot decide %s: the database gave no answer",
                      label);
        goto done;
    }

    status = PQgetvalue(res, 0, 0);
    fp = PQgetvalue(res, 0, 2);


    if (strcmp(status, "approved") == 0) {
        printf("approved %s: key %s now belongs to %s; its ssh session "
               "continues\n", label, fp, user);
        rc = TNL_CTL_OK;

    } else if (strcmp(status, "denied") == 0) {
        printf("denied %s: key %s was not added; its ssh session is "
               "closed\n", label, fp);
        rc = TNL_CTL_OK;

    } else if (strcmp(status, "unknown") == 0) {
        tnl_ctl_error("no %s is waiting: check it against what ssh printed "
                      "(codes expire after a few minutes); 'tunnelctl "
                      "activation list' shows the pending ones", label);

    } else if (strcmp(status, "expired") == 0) {
        tnl_ctl_error("%s has expired: run the ssh command again for a new "
                      "code", label);

    } else if (strcmp(status, "already") == 0) {
        tnl_ctl_error("%s was already approved or denied: a code works "
                      "once", label);

    } else if (strcmp(status, "key_taken") == 0) {
        tnl_ctl_error("the key %s of %s is registered to another user "
                      "already: see 'tunnelctl key list'", fp, label);

    } else if (strcmp(status, "disabled") == 0) {
        tnl_ctl_error("user \"%s\" is disabled: run 'tunnelctl user enable "
                      "%s' first", user, user);

    } else {
        tnl_ctl_error("cannot decide %s: unexpected answer \"%s\"", label,
                      status);
    }

done:

    if (res != NULL) {
        PQclear(res);
    }

    PQfinish(conn);

    return rc;
}


static int
tnl_ctl_activation_approve(int argc, char **argv)
{
    int          i;
    const char  *what, *user;

    what = NULL;
    user = NULL;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--user") == 0) {
            if (i + 1 == argc) {
                return tnl_ctl_usage_error("--user needs a value");
            }

            user = argv[++i];
            continue;
        }

        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return tnl_ctl_usage_error("unknown option \"%s\" for "
                                       "'activation approve'", argv[i]);
        }

        if (what != NULL) {
            return tnl_ctl_usage_error("'activation approve' takes one "
                                       "CODE");
        }

        what = argv[i];
    }

    if (what == NULL || user == NULL) {
        return tnl_ctl_usage_error("'activation approve' takes a CODE and "
                                   "--user USER");
    }

    return tnl_ctl_activation_decide(what, user);
}


static int
tnl_ctl_activation_deny(int argc, char **argv)
{
    if (argc != 1) {
        return tnl_ctl_usage_error("'activation deny' takes one CODE or ID");
    }

    if (argv[0][0] == '-' && argv[0][1] != '\0') {
        return tnl_ctl_usage_error("unknown option \"%s\" for "
                                   "'activation deny'", argv[0]);
    }

    return tnl_ctl_activation_decide(argv[0], NULL);
}


int
tnl_ctl_activation(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "list",    tnl_ctl_activation_list },
        { "approve", tnl_ctl_activation_approve },
        { "deny",    tnl_ctl_activation_deny },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("activation", commands, argc, argv);
}
