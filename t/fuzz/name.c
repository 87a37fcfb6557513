/*
 * libFuzzer target: tunnel names and Host headers (common/tnl_name.c), as
 * the nginx module, tunneld and tunnelctl call them.  The input's first
 * byte picks how much of it is the configured domain (its real value comes
 * from the operator, but a fuzzed one reaches corners the fixed one does
 * not); the rest is the Host header.  Besides the sanitizers, it checks
 * what a caller relies on: an accepted name is one folded DNS label, and
 * a Host accepted for a domain gives a name that validates again.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tnl_name.h"


static void
check_label(const char *name)
{
    size_t  i, n;

    n = strlen(name);

    if (n == 0 || n > TNL_NAME_MAX || name[0] == '-' || name[n - 1] == '-') {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
        {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         out[TNL_NAME_MAX + 1], again[TNL_NAME_MAX + 1], *list;
    size_t       dlen;
    const char  *host, *domain, *err;

    /* the whole input as a name */

    err = NULL;
    if (tnl_name_validate((const char *) data, size, out, &err) == 0) {
        check_label(out);
        (void) tnl_name_is_reserved(out, TNL_NAME_DEFAULT_RESERVED);

    } else if (err == NULL) {
        abort();
    }

    /* the input as a reserved-names list (NUL-terminated, as configured) */

    list = malloc(size + 1);
    if (list == NULL) {
        return 0;
    }
    memcpy(list, data, size);
    list[size] = '\0';
    (void) tnl_name_is_reserved("www", list);
    (void) tnl_name_is_reserved("a", list);
    free(list);

    /* Host header under a domain */

    if (size == 0) {
        return 0;
    }

    dlen = data[0] % 32;
    if (dlen > size - 1) {
        dlen = size - 1;
    }

    domain = (const char *) data + 1;
    host = domain + dlen;

    if (tnl_host_to_name(host, size - 1 - dlen, domain, dlen, out) == 0) {
        check_label(out);
        if (tnl_name_validate(out, strlen(out), again, NULL) != 0
            || strcmp(out, again) != 0)
        {
            abort();
        }
    }

    if (tnl_host_to_name(host, size - 1 - dlen, "example.com", 11, out)
        == 0)
    {
        check_label(out);
    }

    return 0;
}
