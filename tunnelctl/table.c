/*
 * Column-aligned text tables on stdout: a header line, then one line per
 * row, columns two spaces apart, the last one unpadded.  Widths count
 * bytes (values are ASCII but for key comments, which only look uneven).
 * tnl_ctl_table_print() does not own the result.
 *
 * Also the list commands built on them (tnl_ctl_list): arguments, the
 * connection, the optional USER filter, the query, the table or the
 * sentence saying the list is empty.  What to list is the caller's.
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"


#define TNL_CTL_TABLE_COLS  16


void
tnl_ctl_table_print_cells(int ncols, int nrows, const char *const *headers,
    const char *(*cell)(void *data, int row, int col), void *data)
{
    int          row, col;
    size_t       width[TNL_CTL_TABLE_COLS], len;
    const char  *v;

    if (ncols > TNL_CTL_TABLE_COLS) {
        ncols = TNL_CTL_TABLE_COLS;
    }

    for (col = 0; col < ncols; col++) {
        width[col] = strlen(headers[col]);

        for (row = 0; row < nrows; row++) {
            len = strlen(cell(data, row, col));

            if (len > width[col]) {
                width[col] = len;
            }
        }
    }

    for (row = -1; row < nrows; row++) {
        for (col = 0; col < ncols; col++) {
            v = row < 0 ? headers[col] : cell(data, row, col);

            if (col == ncols - 1) {
                printf("%s\n", v);
            } else {
                printf("%-*s  ", (int) width[col], v);
            }
        }
    }
}


static const char *
tnl_ctl_table_pg_cell(void *data, int row, int col)
{
    return PQgetvalue(data, row, col);
}


void
tnl_ctl_table_print(PGresult *res, const char *const *headers)
{
    tnl_ctl_table_print_cells(PQnfields(res), PQntuples(res), headers,
                              tnl_ctl_table_pg_cell, res);
}


int
tnl_ctl_list(const tnl_ctl_list_t *list, int argc, char **argv)
{
    int          rc;
    char         id[21];
    PGconn      *conn;
    PGresult    *res;
    const char  *user, *params[1];

    if (list->by_user && argc > 1) {
        return tnl_ctl_usage_error("'%s' takes at most one USER",
                                   list->command);
    }

    if (!list->by_user && argc > 0) {
        return tnl_ctl_usage_error("'%s' takes no argument, not \"%s\"",
                                   list->command, argv[0]);
    }

    conn = tnl_ctl_db_connect();
    if (conn == NULL) {
        return TNL_CTL_FAIL;
    }

    rc = TNL_CTL_FAIL;
    user = (argc == 1) ? argv[0] : NULL;
    params[0] = NULL;

    if (user != NULL) {
        if (tnl_ctl_user_id(conn, user, id) != 0) {
            goto done;
        }

        params[0] = id;
    }

    res = tnl_ctl_db_exec(conn, list->sql, list->by_user ? 1 : 0, params,
                          list->what);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) > 0) {
        tnl_ctl_table_print(res, list->headers);

    } else if (user != NULL && list->empty_user != NULL) {
        tnl_ctl_error(list->empty_user, user, user);

    } else {
        tnl_ctl_error("%s", list->empty);
    }

    PQclear(res);
    rc = TNL_CTL_OK;

done:

    PQfinish(conn);

    return rc;
}
