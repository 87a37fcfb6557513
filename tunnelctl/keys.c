/*
 * tunnelctl key: add, list, remove the SSH public keys tunneld accepts.
 * Parsing and fingerprinting are pubkey.c's; this file reads the input,
 * talks to the ssh_keys table and words the errors.  A key belongs to one
 * user at most (ssh_keys.fingerprint is unique).  Changes reach tunneld by
 * the tables' NOTIFY triggers, not from here.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelctl.h"


/* far more than any public key line (RSA 16384 is about 2.8 KB) */
#define TNL_CTL_KEY_FILE_MAX  (64 * 1024)

#define TNL_CTL_FP_PREFIX     "SHA256:"
#define TNL_CTL_FP_LEN        (sizeof(TNL_CTL_FP_PREFIX) - 1 + 43)


/* reads path ("-": stdin) into a malloc'ed NUL-terminated buffer */
static char *
tnl_ctl_key_read(const char *path, const char *source, size_t *len)
{
    int      own;
    FILE    *f;
    char    *buf;
    size_t   n;

    own = (strcmp(path, "-") != 0);

    if (!own) {
        f = stdin;

    } else {
        f = fopen(path, "r");

        if (f == NULL) {
            tnl_ctl_error("cannot read %s: %s", source, strerror(errno));
            return NULL;
        }
    }

    buf = malloc(TNL_CTL_KEY_FILE_MAX + 1);

    if (buf == NULL) {
        tnl_ctl_error("out of memory");
        goto failed;
    }

    n = fread(buf, 1, TNL_CTL_KEY_FILE_MAX + 1, f);

    if (ferror(f)) {
        tnl_ctl_error("cannot read %s: %s", source, strerror(errno));
        goto failed;
    }

    if (n > TNL_CTL_KEY_FILE_MAX) {
        tnl_ctl_error("%s is larger than %d KiB, too large for a public "
                      "key: give a .pub file", source,
                      TNL_CTL_KEY_FILE_MAX / 1024);
        goto failed;
    }

    buf[n] = '\0';
    *len = n;

    if (own) {
        fclose(f);
    }

    return buf;

failed:

    free(buf);

    if (own) {
        fclose(f);
    }

    return NULL;
}


/* the duplicate's message: whose key it is */
static void
tnl_ctl_key_duplicate(PGconn *conn, const char *fingerprint)
{
    PGresult    *res;
    const char  *params[1];

    params[0] = fingerprint;

    res = tnl_ctl_db_exec(conn,
                          "SELECT u.name FROM ssh_keys k"
                          " JOIN users u ON u.id = k.user_id"
                          " WHERE k.fingerprint = $1",
                          1, params, "look up the key's owner");
    if (res == NULL) {
        return;
    }

    if (PQntuples(res) == 0) {
        /* removed between our INSERT and this SELECT */
        tnl_ctl_error("this key (%s) was being registered or removed at "
                      "the same time: try again", fingerprint);

    } else {
        tnl_ctl_error("this key (%s) is already registered to user \"%s\": "
                      "a key belongs to one user; remove it first with "
                      "'tunnelctl key remove %s'",
                      fingerprint, PQgetvalue(res, 0, 0), fingerprint);
    }

    PQclear(res);
}


static int
tnl_ctl_key_add(int argc, char **argv)
{
    int                rc;
    char               source[300], id[21], *text;
    size_t             len;
    PGconn            *conn;
    PGresult          *res;
    const char        *params[5];
    tnl_ctl_pubkey_t   key;

    if (argc != 2) {
        return tnl_ctl_usage_error("'key add' takes a USER and a FILE "
                                   "(or - for standard input)");
    }

    if (!tnl_ctl_user_name_check(argv[0])) {
        return TNL_CTL_FAIL;
    }

    if (strcmp(argv[1], "-") == 0) {
        snprintf(source, sizeof(source), "standard input");
    } else {
        snprintf(source, sizeof(source), "\"%.256s\"", argv[1]);
    }

    text = tnl_ctl_key_read(argv[1], source, &len);
    if (text == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = tnl_ctl_pubkey_parse(text, len, source, &key);
    free(text);

    if (rc != 0) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        goto done;
    }

    if (tnl_ctl_user_id(conn, argv[0], id) != 0) {
        goto done;
    }

    params[0] = id;
    params[1] = key.type;
    params[2] = key.base64;
    params[3] = key.fingerprint;
    params[4] = key.comment;

    res = tnl_ctl_db_exec(conn,
                          "WITH ins AS (INSERT INTO ssh_keys"
                          " (user_id, key_type, key_base64, fingerprint,"
                          "  comment)"
                          " VALUES ($1, $2, $3, $4, $5)"
                          " ON CONFLICT (fingerprint) DO NOTHING"
                          " RETURNING id),"
                          " audit AS (INSERT INTO tunnel_events"
                          " (event, user_id, fingerprint, detail)"
                          " SELECT 'key_added', $1, $4,"
                          " rtrim($2 || ' ' || $5) FROM ins)"
                          " SELECT id FROM ins",
                          5, params, NULL);

    if (res == NULL) {
        if (strcmp(tnl_ctl_db_sqlstate(), TNL_CTL_FOREIGN_KEY_VIOLATION) == 0) {
            tnl_ctl_error("user \"%s\" was removed meanwhile: add it "
                          "again with 'tunnelctl user add %s'",
                          argv[0], argv[0]);
        } else {
            tnl_ctl_db_report("add the key");
        }

        goto done;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        tnl_ctl_key_duplicate(conn, key.fingerprint);
        goto done;
    }

    PQclear(res);

    printf("%s\n", key.fingerprint);
    rc = TNL_CTL_OK;

done:

    PQfinish(conn);
    tnl_ctl_pubkey_free(&key);

    return rc;
}


static int
tnl_ctl_key_list(int argc, char **argv)
{
    static const char *const  headers[] = {
        "FINGERPRINT", "TYPE", "USER", "COMMENT", "CREATED", "LAST USED",
        NULL
    };

    static const tnl_ctl_list_t  list = {
        "key list", 1,
        "SELECT k.fingerprint, k.key_type, u.name, k.comment,"
        " " TNL_CTL_TIME("k.created_at") ","
        " coalesce(" TNL_CTL_TIME("k.last_used_at") ", 'never')"
        " FROM ssh_keys k JOIN users u ON u.id = k.user_id"
        " WHERE $1::bigint IS NULL OR k.user_id = $1::bigint"
        " ORDER BY u.name, k.created_at, k.id",
        "list keys", headers,
        "no keys yet: add one with 'tunnelctl key add USER FILE'",
        "user \"%s\" has no keys: add one with 'tunnelctl key add %s FILE'"
    };

    return tnl_ctl_list(&list, argc, argv);
}


/* accepts "SHA256:<43 base64>" or the 43 characters alone */
static int
tnl_ctl_key_fingerprint(const char *in, char *out, size_t size)
{
    size_t  i, len;

    if (strncmp(in, TNL_CTL_FP_PREFIX, sizeof(TNL_CTL_FP_PREFIX) - 1) == 0) {
        snprintf(out, size, "%s", in);
    } else {
        snprintf(out, size, "%s%s", TNL_CTL_FP_PREFIX, in);
    }

    len = strlen(out);

    if (strlen(in) > TNL_CTL_FP_LEN || len != TNL_CTL_FP_LEN) {
        goto invalid;
    }

    for (i = sizeof(TNL_CTL_FP_PREFIX) - 1; i < len; i++) {
        if (!((out[i] >= 'A' && out[i] <= 'Z')
              || (out[i] >= 'a' && out[i] <= 'z')
              || (out[i] >= '0' && out[i] <= '9')
              || out[i] == '+' || out[i] == '/'))
        {
            goto invalid;
        }
    }

    return 0;

invalid:

    tnl_ctl_error("\"%s\" is not a key fingerprint: give SHA256:... as "
                  "'tunnelctl key list' or 'ssh-keygen -lf FILE' shows it",
                  in);

    return -1;
}


static int
tnl_ctl_key_remove(int argc, char **argv)
{
    int          rc;
    char         fp[TNL_CTL_FP_LEN + 1];
    PGconn      *conn;
    PGresult    *res;
    const char  *params[1];

    if (argc != 1) {
        return tnl_ctl_usage_error("'key remove' takes one FINGERPRINT");
    }

    if (tnl_ctl_key_fingerprint(argv[0], fp, sizeof(fp)) != 0) {
        return TNL_CTL_FAIL;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    params[0] = fp;
    rc = TNL_CTL_FAIL;

    res = tnl_ctl_db_exec(conn,
                          "WITH del AS (DELETE FROM ssh_keys k USING users u"
                          " WHERE k.fingerprint = $1 AND u.id = k.user_id"
                          " RETURNING k.key_type, u.name, k.user_id,"
                          " k.comment),"
                          " audit AS (INSERT INTO tunnel_events"
                          " (event, user_id, fingerprint, detail)"
                          " SELECT 'key_removed', user_id, $1,"
                          " rtrim(key_type || ' ' || comment) FROM del)"
                          " SELECT key_type, name FROM del",
                          1, params, "remove the key");
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        tnl_ctl_error("no key with fingerprint %s: see 'tunnelctl key list'",
                      fp);

    } else {
        printf("removed %s key %s of user \"%s\"\n",
               PQgetvalue(res, 0, 0), fp, PQgetvalue(res, 0, 1));
        rc = TNL_CTL_OK;
    }

    PQclear(res);

done:

    PQfinish(conn);

    return rc;
}


int
tnl_ctl_key(int argc, char **argv)
{
    static const tnl_ctl_command_t  commands[] = {
        { "add",    tnl_ctl_key_add },
        { "list",   tnl_ctl_key_list },
        { "remove", tnl_ctl_key_remove },
        { NULL, NULL }
    };

    return tnl_ctl_subcommand("key", commands, argc, argv);
}
