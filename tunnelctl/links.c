/*
 * tunnelctl links: what the one-time links of the web admin are made of,
 * for the commands that print them (invite create: /join/<token>; user
 * add and user password: /password/<token>).  A token is 18 bytes from
 * getrandom() (144 bits), base64url without padding (24 characters), as
 * the web admin makes them; the database keeps only its SHA-256.  The base
 * of a link is --base-url or $TUNNEL_ADMIN_URL.  This file prints nothing
 * on stdout and stores nothing.
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tunnelctl.h"


#define TNL_CTL_TOKEN_BYTES  18      /* 144 bits, as the web admin */


/* fills buf with len bytes from the kernel's CSPRNG; 0, or -1 (errno) */
static int
tnl_ctl_token_random(unsigned char *buf, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = getrandom(buf, len, 0);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        buf += n;
        len -= (size_t) n;
    }

    return 0;
}


/* base64url (RFC 4648 section 5) without padding; out holds 4n/3 + 1 */
static void
tnl_ctl_token_base64url(const unsigned char *in, size_t len, char *out)
{
    size_t    i;
    unsigned  v;

    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    for (i = 0; i + 2 < len; i += 3) {
        v = (unsigned) in[i] << 16 | (unsigned) in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }

    if (i + 1 == len) {
        v = (unsigned) in[i] << 16;
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];

    } else if (i + 2 == len) {
        v = (unsigned) in[i] << 16 | (unsigned) in[i + 1] << 8;
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
    }

    *out = '\0';
}


int
tnl_ctl_token_make(char *token)
{
    unsigned char  bytes[TNL_CTL_TOKEN_BYTES];

    if (tnl_ctl_token_random(bytes, sizeof(bytes)) != 0) {
        tnl_ctl_error("cannot make a random token: getrandom() failed: %m");
        return -1;
    }

    tnl_ctl_token_base64url(bytes, sizeof(bytes), token);

    /* the caller prints the token once; keep no other copy */
    memset(bytes, 0, sizeof(bytes));

    return 0;
}


int
tnl_ctl_hours_check(const char *text)
{
    long         n;
    const char  *p;

    if (text[0] == '\0' || strlen(text) > 5) {
        return 0;
    }

    for (p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }

    n = strtol(text, NULL, 10);

    return n >= 1 && n <= TNL_CTL_HOURS_MAX;
}


int
tnl_ctl_link_base(const char *option, char *buf, size_t size)
{
    size_t       len;
    const char  *base, *from, *p;

    from = "--base-url";
    base = option;

    if (base == NULL) {
        from = "TUNNEL_ADMIN_URL";
        base = getenv("TUNNEL_ADMIN_URL");
    }

    buf[0] = '\0';

    if (base == NULL || base[0] == '\0') {
        return 0;
    }

    if (strncmp(base, "http://", 7) == 0) {
        p = base + 7;

    } else if (strncmp(base, "https://", 8) == 0) {
        p = base + 8;

    } else {
        p = NULL;
    }

    len = strlen(base);

    while (len > 0 && base[len - 1] == '/') {
        len--;
    }

    if (p == NULL || (size_t) (p - base) >= len || *p == '/'
        || len + 1 > size)
    {
        goto invalid;
    }

    for ( /* void */ ; *p != '\0'; p++) {
        if (!isgraph((unsigned char) *p)) {
            goto invalid;
        }
    }

    memcpy(buf, base, len);
    buf[len] = '\0';

    return 0;

invalid:

    tnl_ctl_error("%s \"%s\" is not the web admin's address: give "
                  "http(s)://HOST[:PORT], e.g. https://admin.example.com",
                  from, base);

    return -1;
}


void
tnl_ctl_link_hint(const char *base)
{
    if (base[0] == '\0') {
        tnl_ctl_error("hint: this is the path of the link on the web "
                      "admin; to print the whole link pass --base-url "
                      "URL or export TUNNEL_ADMIN_URL, e.g. "
                      "https://admin.example.com");
    }
}
