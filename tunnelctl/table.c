/*
 * Column-aligned text tables on stdout: a header line, then one line per
 * row, columns two spaces apart, the last one unpadded.  Widths count
 * bytes (values are ASCII but for key comments, which only look uneven).
 * Does not own the result.
 */

#include <stdio.h>
#include <string.h>

#include "tunnelctl.h"


#define TNL_CTL_TABLE_COLS  16


void
tnl_ctl_table_print(PGresult *res, const char *const *headers)
{
    int     row, col, ncols, nrows;
    size_t  width[TNL_CTL_TABLE_COLS], len;

    ncols = PQnfields(res);
    nrows = PQntuples(res);

    if (ncols > TNL_CTL_TABLE_COLS) {
        ncols = TNL_CTL_TABLE_COLS;
    }

    for (col = 0; col < ncols; col++) {
        width[col] = strlen(headers[col]);

        for (row = 0; row < nrows; row++) {
            len = (size_t) PQgetlength(res, row, col);

            if (len > width[col]) {
                width[col] = len;
            }
        }
    }

    for (row = -1; row < nrows; row++) {
        for (col = 0; col < ncols; col++) {
            if (col == ncols - 1) {
                printf("%s\n", row < 0 ? headers[col]
                                       : PQgetvalue(res, row, col));
            } else {
                printf("%-*s  ", (int) width[col],
                       row < 0 ? headers[col] : PQgetvalue(res, row, col));
            }
        }
    }
}
