/*
 * Unit tests for device-flow user codes (common/tnl_code.c): what people
 * type is folded to the 8 upper-case letters that are hashed, and
 * anything else is refused before hashing.
 */

#include <string.h>

#include "tnl_code.h"
#include "tap.h"


static void
valid(const char *in, const char *want)
{
    char         out[TNL_CODE_LEN + 1];
    const char  *err = NULL;
    char         what[200];

    snprintf(what, sizeof(what), "'%s' is the code %s", in, want);
    tap_ok(tnl_code_normalize(in, strlen(in), out, &err) == 0, what);
    tap_is_str(out, want, "  folded form");
}


static void
invalid(const char *in, size_t len, const char *why)
{
    char         out[TNL_CODE_LEN + 1];
    const char  *err = NULL;
    char         what[200];
    int          rc;

    rc = tnl_code_normalize(in, len, out, &err);
    snprintf(what, sizeof(what), "'%.*s' is refused (%s)", (int) len, in,
             why);
    tap_ok(rc == -1, what);
    tap_ok(err != NULL && strstr(err, "WDJB-MJHT") != NULL,
           "  with a sentence showing the form of a code");
    tap_is_str(out, "", "  and no code");
}


int
main(void)
{
    char  shown[TNL_CODE_SHOWN + 1];

    valid("WDJB-MJHT", "WDJBMJHT");
    valid("wdjb-mjht", "WDJBMJHT");
    valid("WdJbMjHt", "WDJBMJHT");
    valid(" wdjb mjht ", "WDJBMJHT");
    valid("W-D-J-B-M-J-H-T", "WDJBMJHT");
    valid("BCDF\tGHJK", "BCDFGHJK");
    valid("ZZZZZZZZ", "ZZZZZZZZ");

    invalid("", 0, "empty");
    invalid(" - ", 3, "only separators");
    invalid("WDJB-MJH", 8, "7 letters");
    invalid("WDJB-MJHTX", 10, "9 letters");
    invalid("WDJB-MJHA", 9, "a vowel");
    invalid("WDJB-MJH1", 9, "a digit");
    invalid("WDJB_MJHT", 9, "an underscore");
    invalid("WDJB-MJHT'", 10, "a quote");
    invalid("WDJB\0MJHT", 9, "a NUL byte");
    invalid("WDJB-MJH\xc3\x9f", 10, "UTF-8");
    invalid("WDJB%2DMJHT", 11, "percent-encoded");

    tnl_code_show("WDJBMJHT", shown);
    tap_is_str(shown, "WDJB-MJHT", "shown as XXXX-XXXX");

    return tap_done();
}
