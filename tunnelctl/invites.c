/*
 * tunnelctl invite: create, list, revoke the invitations that are the only
 * way into the installation (the web admin's /admin/invites does the
 * same).  The token (links.c: 144 random bits, base64url) is printed
 * once, in the link <base>/join/<token>, and never stored:
 * tunnel_admin_invite_create() of sql/002_admin.sql keeps sha256 of its
 * text.  'invite list' therefore never shows a token.  Using an invitation
 * is the web admin's job (/join/<token>), not this file's.
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"


#define TNL_CTL_INVITE_NOTE_MAX    200     /* characters, as the web form */


/*
 * 1 if the note fits the web form's rule (at most 200 characters) and
 * holds no control character (it is one cell of 'invite list'), else 0
 * after reporting.  Characters are counted as UTF-8 lead bytes; invalid
 * UTF-8 is left to PostgreSQL to refuse.
 */
static int
tnl_ctl_invite_note_check(const char *note)
{
    size_t               chars;
    const unsigned char  *p;

    chars = 0;

    for (p = (const unsigned char *) note; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            tnl_ctl_error("the note must be one line of text, without "
                          "control characters");
            return 0;
        }

        if ((*p & 0xc0) != 0x80) {
            chars++;
        }
    }

    if (chars > TNL_CTL_INVITE_NOTE_MAX) {
        tnl_ctl_error("the note is too long (%zu characters): at most %d",
                      chars, TNL_CTL_INVITE_NOTE_MAX);
        return 0;
    }

    return 1;
}


static int
tnl_ctl_invite_create(int argc, char **argv)
{
    int            i, admin, rc;
    char           token[TNL_CTL_TOKEN_LEN + 1], base[1024];
    PGconn        *conn;
    PGresult      *res;
    const char    *hours, *note, *base_url, *params[4];
    
    admin = 0;
    hours = TNL_CTL_HOURS_DEFAULT;
    note = "";
    base_url = NULL;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--admin") == 0) {
            admin = 1;
            continue;
        }

        if (strcmp(argv[i], "--hours") == 0
            || strcmp(argv[i], "--note") == 0
            || strcmp(argv[i], "--base-url") == 0)
        {
            if (i + 1 == argc) {
                return tnl_ctl_usage_error("%s needs a value", argv[i]);
            }

            if (argv[i][2] == 'h') {
                hours = argv[i + 1];

            } else if (argv[i][2] == 'n') {
                note = argv[i + 1];

            } else {
                base_url = argv[i + 1];
            }

            i++;
            continue;
        }

        if (argv[i][0] == '-') {
            return tnl_ctl_usage_error("unknown option \"%s\" for "
                                       "'invite create'", argv[i]);
        }

        return tnl_ctl_usage_error("'invite create' takes only options, "
                                   "not \"%s\"", argv[i]);
    }

    if (!tnl_ctl_hours_check(hours)) {
        tnl_ctl_error("--hours \"%s\" is not valid: give a whole number of "
                      "hours from 1 to %d (one year)",
                      hours, TNL_CTL_HOURS_MAX);
        return TNL_CTL_FAIL;
    }

    if (!tnl_ctl_invite_note_check(note)
        || tnl_ctl_link_base(base_url, base, sizeof(base)) != 0)
    {
        return TNL_CTL_FAIL;
    }

    if (tnl_ctl_token_make(token) != 0) {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    params[0] = token;
    params[1] = admin ? "true" : "false";
    params[2] = hours;
    params[3] = note;

    /* created_by NULL: made by an operator, not by a web admin */
    res = tnl_ctl_db_exec(conn,
                          "SELECT tunnel_admin_invite_create($1, $2,"
                          " $3::integer, $4, NULL)",
                          4, params, "create the invitation");

    rc = TNL_CTL_FAIL;

    if (res != NULL) {
        printf("%s/join/%s\n", base, token);

        tnl_ctl_link_hint(base);

        PQclear(res);
        rc = TNL_CTL_OK;
    }

    PQfinish(conn);

    /* the token is on stdout now; keep no copy in memory */
    memset(token, 0, sizeof(token));

    return rc;
}


static int
tnl_ctl_invite_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "ID", "STATUS", "ROLE", "CREATED", "EXPIRES", "CREATED BY", "NOTE",
        NULL
    };

    /* the status rule of tunnel_admin_join(): revoked, used, expired */
    static const tnl_ctl_list_t  list = {
        "invite list", 0,
        "SELECT i.id,"
        " CASE WHEN i.revoked_at IS NOT NULL THEN 'revoked'"
        "      WHEN i.used_at IS NOT NULL THEN"
        "           coalesce('used by ' || u.name, 'used (user removed)')"
        "      WHEN i.expires_at <= now() THEN 'expired'"
        "      ELSE 'open' END,"
        " CASE WHEN i.is_admin THEN 'admin' ELSE 'user' END,"
        " " TNL_CTL_TIME("i.created_at") ","
        " " TNL_CTL_TIME("i.expires_at") ","
        " coalesce(c.name, '-'),"
        " i.note"
        " FROM invitations i"
        " LEFT JOIN users u ON u.id = i.used_by"
        " LEFT JOIN users c ON c.id = i.created_by"
        " ORDER BY i.id",
        "list invitations", headers,
        "no invitations yet: create one with 'tunnelctl invite create'", NULL
    };

    return tnl_ctl_list(&list, argc, argv);
}


/* 1 if id is a positive decimal number that fits a bigint */
static int
tnl_ctl_invite_id_check(const char *id)
{
    const char  *p;

    if (id[0] == '\0' || id[0] == '0' || strlen(id) > 18) {
        return 0;
    }

    for (p = id; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }

    return 1;
}


static int
tnl_ctl_invite_revoke(int argc, char **argv)
{
    int          rc;
    PGconn      *conn;
    PGresult    *res;
    const char  *params[1], *state;

    if (argc != 1) {
        return tnl_ctl_usage_error("'invite revoke' takes one ID");
    }

    if (!tnl_ctl_invite_id_check(argv[0])) {
        tnl_ctl_error("\"%s\" is not an invitation id: give the number "
                      "'tunnelctl invite list' shows in the ID column",
                      argv[0]);
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    params[0] = argv[0];
    rc = TNL_CTL_FAIL;

    /* as the web admin: an expired invitation may still be revoked */
    res = tnl_ctl_db_exec(conn,
                          "WITH rev AS (UPDATE invitations"
                          " SET revoked_at = now()"
                          " WHERE id = $1 AND revoked_at IS NULL"
                          " AND used_at IS NULL RETURNING id),"
                          " audit AS (INSERT INTO tunnel_events"
                          " (event, detail)"
                          " SELECT 'invite_revoked', 'invitation ' || id"
                          " FROM rev)"
                          " SELECT id FROM rev",
                          1, params, "revoke the invitation");
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 1) {
        printf("revoked invitation %s\n", argv[0]);
        PQclear(res);
        rc = TNL_CTL_OK;
        goto done;
    }

    PQclear(res);

    /* why not: for the message only */
    res = tnl_ctl_db_exec(conn,
                          "SELECT CASE WHEN i.revoked_at IS NOT NULL"
                          " THEN 'revoked' ELSE 'used' END, u.name"
                          " FROM invitations i"
                          " LEFT JOIN users u ON u.id = i.used_by"
                          " WHERE i.id = $1",
                          1, params, "revoke the invitation");
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        tnl_ctl_error("no invitation %s: see 'tunnelctl invite list'",
                      argv[0]);

    } else {
        state = PQgetvalue(res, 0, 0);

        if (strcmp(state, "revoked") == 0) {
            tnl_ctl_error("invitation %s is already revoked", argv[0]);

        } else if (PQgetisnull(res, 0, 1)) {
            tnl_ctl_error("invitation %s was already used (by a user "
                          "removed since): nothing to revoke", argv[0]);

        } else {
            tnl_ctl_error("invitation %s was already used by \"%s\": to "
                          "lock that account, run 'tunnelctl user disable "
                          "%s'", argv[0], PQgetvalue(res, 0, 1),
                          PQgetvalue(res, 0, 1));
        }
    }

    PQclear(res);

done:

    PQfinish(conn);

    return rc;
}


int
tnl_ctl_invite(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "create", tnl_ctl_invite_create },
        { "list",   tnl_ctl_invite_list },
        { "revoke", tnl_ctl_invite_revoke },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("invite", commands, argc, argv);
}
