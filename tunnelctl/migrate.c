/*
 * tunnelctl migrate: applies the SQL migrations compiled into the binary
 * (sql/NNN_name.sql, embedded by tools/embed.pl as tnl_sql_migrations)
 * that schema_migrations does not list yet, in version order, each in one
 * transaction together with its schema_migrations row.  The version is the
 * leading number of the file name.
 *
 * Concurrent runs are serialised by a session advisory lock taken before
 * anything else (even before schema_migrations is created), so two
 * operators or two test harnesses can run it at once: the second finds
 * the work done.  It never edits or reverts an applied migration, and it
 * does not know what the files contain.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelctl.h"
#include "tnl_embedded.h"


/* "ngxtunnl" as a big-endian 64-bit integer: the lock only we take */
#define TNL_CTL_MIGRATE_LOCK  "7955459708354981484"

#define TNL_CTL_MIGRATIONS_MAX  1000


extern const tnl_embedded_t  tnl_sql_migrations[];


typedef struct {
    long                   version;
    const tnl_embedded_t  *file;
} tnl_ctl_migration_t;


static int
tnl_ctl_migration_cmp(const void *a, const void *b)
{
    const tnl_ctl_migration_t  *ma = a, *mb = b;

    return (ma->version > mb->version) - (ma->version < mb->version);
}


/* the embedded migrations in version order; count in *n, -1 on error */
static int
tnl_ctl_migrations_sorted(tnl_ctl_migration_t *list, int *n)
{
    int                    i, count;
    char                  *end;
    const tnl_embedded_t  *f;

    count = 0;

    for (f = tnl_sql_migrations; f->name != NULL; f++) {
        if (count == TNL_CTL_MIGRATIONS_MAX) {
            tnl_ctl_error("too many migrations in this build");
            return -1;
        }

        list[count].version = strtol(f->name, &end, 10);
        list[count].file = f;

        if (end == f->name || list[count].version <= 0) {
            tnl_ctl_error("migration \"%s\" does not start with a version "
                          "number: rename it NNN_name.sql and rebuild",
                          f->name);
            return -1;
        }

        count++;
    }

    qsort(list, count, sizeof(tnl_ctl_migration_t), tnl_ctl_migration_cmp);

    for (i = 1; i < count; i++) {
        if (list[i].version == list[i - 1].version) {
            tnl_ctl_error("migrations \"%s\" and \"%s\" have the same "
                          "version: renumber one and rebuild",
                          list[i - 1].file->name, list[i].file->name);
            return -1;
        }
    }

    *n = count;

    return 0;
}


static int
tnl_ctl_migrate_lock(PGconn *conn)
{
    int        got;
    PGresult  *res;

    res = tnl_ctl_db_exec(conn,
                          "SELECT pg_try_advisory_lock("
                          TNL_CTL_MIGRATE_LOCK ")",
                          0, NULL, "lock the database for migration");
    if (res == NULL) {
        return -1;
    }

    got = (strcmp(PQgetvalue(res, 0, 0), "t") == 0);
    PQclear(res);

    if (got) {
        return 0;
    }

    tnl_ctl_error("another 'tunnelctl migrate' is running: waiting for it");

    res = tnl_ctl_db_exec(conn,
                          "SELECT pg_advisory_lock(" TNL_CTL_MIGRATE_LOCK ")",
                          0, NULL, "lock the database for migration");
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return 0;
}


static int
tnl_ctl_migration_applied(PGresult *applied, long version)
{
    int  i;

    for (i = 0; i < PQntuples(applied); i++) {
        if (atol(PQgetvalue(applied, i, 0)) == version) {
            return 1;
        }
    }

    return 0;
}


/* notes versions in the database that this binary does not carry */
static void
tnl_ctl_migrations_unknown(PGresult *applied, tnl_ctl_migration_t *list,
    int n)
{
    int   i, j;
    long  version;

    for (i = 0; i < PQntuples(applied); i++) {
        version = atol(PQgetvalue(applied, i, 0));

        for (j = 0; j < n; j++) {
            if (list[j].version == version) {
                break;
            }
        }

        if (j == n) {
            tnl_ctl_error("note: the database has migration %ld (%s) that "
                          "this tunnelctl does not know: use a newer "
                          "tunnelctl", version, PQgetvalue(applied, i, 1));
        }
    }
}


static int
tnl_ctl_migration_apply(PGconn *conn, const tnl_ctl_migration_t *m)
{
    char         what[256], version[24];
    PGresult    *res;
    const char  *params[2];

    snprintf(what, sizeof(what), "apply migration %s (nothing of it was "
             "applied)", m->file->name);

    res = tnl_ctl_db_exec_script(conn, "BEGIN", what);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    res = tnl_ctl_db_exec_script(conn, m->file->text, what);
    if (res == NULL) {
        goto failed;
    }

    PQclear(res);

    snprintf(version, sizeof(version), "%ld", m->version);
    params[0] = version;
    params[1] = m->file->name;

    res = tnl_ctl_db_exec(conn,
                          "INSERT INTO schema_migrations (version, name) "
                          "VALUES ($1, $2)", 2, params, what);
    if (res == NULL) {
        goto failed;
    }

    PQclear(res);

    res = tnl_ctl_db_exec_script(conn, "COMMIT", what);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return 0;

failed:

    /* the transaction is aborted: ROLLBACK only ends it */
    PQclear(PQexec(conn, "ROLLBACK"));

    return -1;
}


int
tnl_ctl_migrate(int argc, char **argv)
{
    int                   i, n, done, rc;
    PGconn               *conn;
    PGresult             *applied;
    tnl_ctl_migration_t  *list;

    if (argc > 0) {
        return tnl_ctl_usage_error("'migrate' takes no argument, not \"%s\"",
                                   argv[0]);
    }

    list = calloc(TNL_CTL_MIGRATIONS_MAX, sizeof(tnl_ctl_migration_t));
    if (list == NULL) {
        tnl_ctl_error("out of memory");
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    conn = NULL;
    applied = NULL;

    if (tnl_ctl_migrations_sorted(list, &n) != 0) {
        goto done;
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        goto done;
    }

    if (tnl_ctl_migrate_lock(conn) != 0) {
        goto done;
    }

    applied = tnl_ctl_db_exec(conn,
                  "CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " version int PRIMARY KEY,"
                  " name text NOT NULL,"
                  " applied_at timestamptz NOT NULL DEFAULT now())",
                  0, NULL, "create the schema_migrations table");
    if (applied == NULL) {
        goto done;
    }

    PQclear(applied);

    applied = tnl_ctl_db_exec(conn,
                              "SELECT version, name FROM schema_migrations "
                              "ORDER BY version",
                              0, NULL, "read schema_migrations");
    if (applied == NULL) {
        goto done;
    }

    tnl_ctl_migrations_unknown(applied, list, n);

    done = 0;

    for (i = 0; i < n; i++) {
        if (tnl_ctl_migration_applied(applied, list[i].version)) {
            continue;
        }

        if (tnl_ctl_migration_apply(conn, &list[i]) != 0) {
            goto done;
        }

        printf("applied %s\n", list[i].file->name);
        fflush(stdout);
        done++;
    }

    if (done == 0) {
        printf("database is up to date\n");
    }

    rc = TNL_CTL_OK;

done:

    PQclear(applied);

    /* ending the session releases the advisory lock */
    PQfinish(conn);
    free(list);

    return rc;
}
