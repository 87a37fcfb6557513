/*
 * Unit tests for tunnel name validation and reserved lists
 * (common/tnl_name.c).
 */

#include <string.h>

#include "tnl_name.h"
#include "tap.h"


static void
valid(const char *in, const char *want)
{
    char         out[TNL_NAME_MAX + 1];
    const char  *err = NULL;
    char         what[200];

    snprintf(what, sizeof(what), "'%s' is valid as '%s'", in, want);
    tap_ok(tnl_name_validate(in, strlen(in), out, &err) == 0, what);
    tap_is_str(out, want, "  folded form");
}


static void
invalid(const char *in, size_t len, const char *why)
{
    char         out[TNL_NAME_MAX + 1];
    const char  *err = NULL;
    char         what[200];
    int          rc;

    rc = tnl_name_validate(in, len, out, &err);
    snprintf(what, sizeof(what), "'%.*s' is refused (%s)", (int) len, in,
             why);
    tap_ok(rc == -1, what);
    tap_ok(err != NULL && strlen(err) > 10, "  with a sentence to act on");
}


int
main(void)
{
    char  long63[64], long64[65];

    memset(long63, 'a', 63);
    long63[63] = '\0';
    memset(long64, 'b', 64);
    long64[64] = '\0';

    valid("myapp", "myapp");
    valid("MyApp", "myapp");
    valid("a", "a");
    valid("0", "0");
    valid("my-app-2", "my-app-2");
    valid("a-b", "a-b");
    valid(long63, long63);

    invalid("", 0, "empty");
    invalid(long64, 64, "64 characters");
    invalid("-x", 2, "leading hyphen");
    invalid("x-", 2, "trailing hyphen");
    invalid("-", 1, "lone hyphen");
    invalid("bad_name", 8, "underscore");
    invalid("a.b", 3, "dot");
    invalid("a b", 3, "space");
    invalid("caf\xc3\xa9", 5, "non-ASCII");
    invalid("a\0b", 3, "embedded NUL");
    invalid("a/b", 3, "slash");
    invalid("xn--lice-43d", 12, "punycode: shown as Cyrillic 'alice'");
    invalid("XN--lice-43d", 12, "punycode, any case");
    valid("xn-a", "xn-a");
    valid("axn--b", "axn--b");

    tap_ok(tnl_name_is_reserved("www", "www,admin,api"), "www reserved");
    tap_ok(tnl_name_is_reserved("api", "www,admin,api"), "last reserved");
    tap_ok(tnl_name_is_reserved("admin", " www , ADMIN "),
           "spaces and case in the list");
    tap_ok(!tnl_name_is_reserved("ww", "www,admin"), "prefix not reserved");
    tap_ok(!tnl_name_is_reserved("wwww", "www,admin"), "longer not reserved");
    tap_ok(!tnl_name_is_reserved("myapp", ""), "empty list");
    tap_ok(!tnl_name_is_reserved("myapp", NULL), "no list");

    return tap_done();
}
