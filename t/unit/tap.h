/*
 * A minimal TAP producer for the C unit tests in t/unit: plan, ok, is_str,
 * done.  prove reads the output; the exit status is the number of
 * failures, so a failing unit test also fails `make test`.
 */

#ifndef TNL_TAP_H
#define TNL_TAP_H

#include <stdio.h>
#include <string.h>

static int  tap_n;
static int  tap_failed;


static void
tap_ok(int cond, const char *what)
{
    tap_n++;
    if (!cond) {
        tap_failed++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, what);
}


static void
tap_is_str(const char *got, const char *want, const char *what)
{
    int  same;

    same = (got != NULL && want != NULL && strcmp(got, want) == 0);
    tap_ok(same, what);
    if (!same) {
        printf("#   got: '%s'\n#   expected: '%s'\n",
               got ? got : "(null)", want ? want : "(null)");
    }
}


static int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed;
}

#endif /* TNL_TAP_H */
