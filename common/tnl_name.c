/*
 * Tunnel name validation and Host header parsing (see tnl_name.h).  Pure
 * string functions: they own nothing and never allocate.
 */

#include <string.h>

#include "tnl_name.h"


static int
tnl_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


int
tnl_name_validate(const char *in, size_t len, char *out, const char **err)
{
    size_t  i;
    int     c;

    if (len == 0) {
        if (err) {
            *err = "the name is empty: use 1 to 63 letters, digits or '-'";
        }
        return -1;
    }

    if (len > TNL_NAME_MAX) {
        if (err) {
            *err = "the name is longer than 63 characters";
        }
        return -1;
    }

    for (i = 0; i < len; i++) {
        c = tnl_lower((unsigned char) in[i]);

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            if (err) {
                *err = "the name may hold only letters a-z, digits 0-9 "
                       "and '-'";
            }
            return -1;
        }

        out[i] = (char) c;
    }

    if (out[0] == '-' || out[len - 1] == '-') {
        if (err) {
            *err = "the name may not start or end with '-'";
        }
        return -1;
    }

    /*
     * "xn--" starts an internationalized name (punycode) that browsers
     * may show in Unicode: "xn--lice-43d" is shown as Cyrillic "alice",
     * so another user could serve a look-alike of a tunnel's address
     */
    if (len >= 4 && memcmp(out, "xn--", 4) == 0) {
        if (err) {
            *err = "names starting with 'xn--' are not allowed: browsers "
                   "may show them as international look-alikes of other "
                   "names; choose another";
        }
        return -1;
    }

    out[len] = '\0';

    return 0;
}


int
tnl_name_is_reserved(const char *name, const char *list)
{
    const char  *p, *end;
    size_t       n;

    if (list == NULL) {
        return 0;
    }

    n = strlen(name);
    p = list;

    while (*p) {
        while (*p == ',' || *p == ' ') {
            p++;
        }

        end = p;
        while (*end && *end != ',' && *end != ' ') {
            end++;
        }

        if ((size_t) (end - p) == n && n > 0) {
            size_t i;

            for (i = 0; i < n; i++) {
                if (tnl_lower((unsigned char) p[i]) != name[i]) {
                    break;
                }
            }

            if (i == n) {
                return 1;
            }
        }

        p = end;
    }

    return 0;
}


int
tnl_host_to_name(const char *host, size_t len, const char *domain,
    size_t domain_len, char *out)
{
    size_t  i, label_len;

    if (len == 0 || host[0] == '[') {
        return -1;
    }

    /* strip ":port" (digits only) */

    for (i = len; i > 0; i--) {
        if (host[i - 1] == ':') {
            size_t j;

            for (j = i; j < len; j++) {
                if (host[j] < '0' || host[j] > '9') {
                    return -1;
                }
            }

            len = i - 1;
            break;
        }
    }

    /* one trailing dot names the same host (FQDN form) */

    if (len > 0 && host[len - 1] == '.') {
        len--;
    }

    if (domain_len > 0 && domain[domain_len - 1] == '.') {
        domain_len--;
    }

    if (domain_len == 0 || len < domain_len + 2) {
        return -1;
    }

    /* "label" "." "domain", domain compared case-insensitively */

    for (i = 0; i < domain_len; i++) {
        if (tnl_lower((unsigned char) host[len - domain_len + i])
            != tnl_lower((unsigned char) domain[i]))
        {
            return -1;
        }
    }

    if (host[len - domain_len - 1] != '.') {
        return -1;
    }

    label_len = len - domain_len - 1;

    if (memchr(host, '.', label_len) != NULL) {
        return -1;
    }

    return tnl_name_validate(host, label_len, out, NULL);
}
