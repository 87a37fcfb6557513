/*
 * The management API's request parsing (see api_parse.h): the head's
 * framing, the request line, the headers the server uses, %-decoding and
 * query parameters.  Owns nothing; every result goes into the caller's
 * tnl_api_head_t or buffer.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_parse.h"


static int
tnl_api_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


static int
tnl_api_hex(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}


tnl_api_head_e
tnl_api_head_end(const char *in, size_t len, size_t *head_len)
{
    size_t  i;

    for (i = 0; i < len; i++) {

        if (i >= TNL_API_HEAD_MAX) {
            return TNL_API_HEAD_LARGE;
        }

        switch (in[i]) {

        case '\0':
            return TNL_API_HEAD_BAD;

        case '\r':
            if (i + 1 < len && in[i + 1] != '\n') {
                return TNL_API_HEAD_BAD;
            }
            break;

        case '\n':
            if (i == 0 || in[i - 1] != '\r') {
                return TNL_API_HEAD_BAD;
            }
            if (i >= 3 && in[i - 2] == '\n') {
                *head_len = i + 1;
                return TNL_API_HEAD_DONE;
            }
            break;

        default:
            break;
        }
    }

    return TNL_API_HEAD_AGAIN;
}


static int
tnl_api_head_fail(tnl_api_head_t *h, int status, const char *code,
    const char *message)
{
    h->status = status;
    h->code = code;
    h->message = message;

    return -1;
}


/* the request line [p, end): "METHOD /target HTTP/1.x" */
static int
tnl_api_request_line(const char *p, const char *end, tnl_api_head_t *h)
{
    const char  *m, *target, *te, *q;
    size_t       tlen;

    for (m = p; m < end && tnl_api_tchar((unsigned char) *m); m++) {
        /* void */
    }

    if (m == p || (size_t) (m - p) >= sizeof(h->method) || m == end
        || *m != ' ')
    {
        return tnl_api_head_fail(h, 400, "bad_request", "not an HTTP/1.x "
                                 "request this server understands");
    }

    target = m + 1;

    for (te = target; te < end && *te != ' '; te++) {
        if ((unsigned char) *te < 0x21 || *te == 0x7f) {
            break;
        }
    }

    if (te == end || *te != ' ' || end - te != 9
        || (memcmp(te, " HTTP/1.1", 9) != 0
            && memcmp(te, " HTTP/1.0", 9) != 0))
    {
        return tnl_api_head_fail(h, 400, "bad_request", "not an HTTP/1.x "
                                 "request this server understands");
    }

    memcpy(h->method, p, (size_t) (m - p));
    h->method[m - p] = '\0';

    tlen = (size_t) (te - target);

    if (tlen == 0 || target[0] != '/') {
        return tnl_api_head_fail(h, 400, "bad_request", "not an HTTP/1.x "
                                 "request this server understands");
    }

    q = memchr(target, '?', tlen);

    if (q != NULL) {
        if ((size_t) (te - q - 1) >= sizeof(h->query)) {
            return tnl_api_head_fail(h, 414, "uri_too_long", "the query "
                                     "string is longer than 2047 bytes");
        }
        memcpy(h->query, q + 1, (size_t) (te - q - 1));
        h->query[te - q - 1] = '\0';

    } else {
        q = te;
    }

    if (tnl_api_decode(target, (size_t) (q - target), h->path,
                       sizeof(h->path), 0) == -1)
    {
        return tnl_api_head_fail(h, 400, "bad_path", "the path is not valid "
                                 "(a bad %-escape, or longer than 1023 "
                                 "bytes)");
    }

    return 0;
}


/* a header the server uses, once: copied into out (size bytes) */
static int
tnl_api_header_copy(tnl_api_head_t *h, const char *v, size_t len,
    char *out, size_t size)
{
    if (out[0] != '\0') {
        return tnl_api_head_fail(h, 400, "bad_request", "a header this "
                                 "server reads (Content-Length, "
                                 "Content-Type, Authorization) was sent "
                                 "twice: send it once");
    }

    if (len == 0 || len >= size) {
        return tnl_api_head_fail(h, 400, "bad_request", "a Content-Type or "
                                 "Authorization header is empty or too "
                                 "long");
    }

    memcpy(out, v, len);
    out[len] = '\0';

    return 0;
}


int
tnl_api_head_parse(const char *in, size_t head_len, tnl_api_head_t *h)
{
    int          te, cl_seen, host_seen;
    size_t       nlen, vlen, cl;
    const char  *p, *end, *le, *colon, *v, *ve, *d;

    memset(h, 0, sizeof(tnl_api_head_t));

    /* tnl_api_head_end checked: only CRLF line ends, the last one twice */

    end = in + head_len - 2;

    le = memchr(in, '\r', (size_t) (end - in));
    if (le == NULL) {
        return tnl_api_head_fail(h, 400, "bad_request", "not an HTTP/1.x "
                                 "request this server understands");
    }

    if (tnl_api_request_line(in, le, h) != 0) {
        return -1;
    }

    te = 0;
    cl_seen = 0;
    host_seen = 0;
    cl = 0;

    for (p = le + 2; p < end; p = le + 2) {
        le = memchr(p, '\r', (size_t) (end - p));
        if (le == NULL) {
            le = end;
        }

        for (colon = p; colon < le && tnl_api_tchar((unsigned char) *colon);
             colon++)
        {
            /* void */
        }

        if (colon == p || colon == le || *colon != ':') {
            return tnl_api_head_fail(h, 400, "bad_request", "a header line "
                                     "is not \"Name: value\" (no space "
                                     "before the colon, no folding)");
        }

        nlen = (size_t) (colon - p);

        for (v = colon + 1; v < le && (*v == ' ' || *v == '\t'); v++) {
            /* void */
        }

        for (ve = le; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--) {
            /* void */
        }

        for (d = v; d < ve; d++) {
            if (((unsigned char) *d < 0x20 && *d != '\t') || *d == 0x7f) {
                return tnl_api_head_fail(h, 400, "bad_request", "a header "
                                         "value holds a control "
                                         "character");
            }
        }

        vlen = (size_t) (ve - v);

        if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            if (cl_seen++) {
                return tnl_api_head_fail(h, 400, "bad_request",
                                         "Content-Length was sent twice: "
                                         "send it once");
            }

            if (vlen == 0 || vlen > 9) {
                return tnl_api_head_fail(h, 400, "bad_request",
                                         "Content-Length is not a number "
                                         "of bytes");
            }

            for (d = v; d < ve; d++) {
                if (*d < '0' || *d > '9') {
                    return tnl_api_head_fail(h, 400, "bad_request",
                                             "Content-Length is not a "
                                             "number of bytes");
                }
                cl = cl * 10 + (size_t) (*d - '0');
            }

        } else if (nlen == 17
                   && strncasecmp(p, "Transfer-Encoding", 17) == 0)
        {
            te = 1;

        } else if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
            if (tnl_api_header_copy(h, v, vlen, h->content_type,
                                    sizeof(h->content_type))
                != 0)
            {
                return -1;
            }

        } else if (nlen == 4 && strncasecmp(p, "Host", 4) == 0) {
            if (host_seen++) {
                return tnl_api_head_fail(h, 400, "bad_request", "Host was "
                                         "sent twice: send it once");
            }

            if (vlen < sizeof(h->host)) {
                memcpy(h->host, v, vlen);
                h->host[vlen] = '\0';

            } else {
                h->host[0] = '.';         /* a name, never a local one */
            }

        } else if (nlen == 13 && strncasecmp(p, "Authorization", 13) == 0) {
            if (tnl_api_header_copy(h, v, vlen, h->auth, sizeof(h->auth))
                != 0)
            {
                return -1;
            }
        }
    }

    if (te) {
        return tnl_api_head_fail(h, 501, "chunked_body", "send the body "
                                 "with a Content-Length, not chunked");
    }

    if (cl > TNL_API_BODY_MAX) {
        return tnl_api_head_fail(h, 413, "body_too_large", "the request "
                                 "body is larger than 16384 bytes");
    }

    h->body_want = cl;

    return 0;
}


int
tnl_api_decode(const char *in, size_t len, char *out, size_t size, int plus)
{
    size_t  i, o = 0;
    int     hi, lo, ch;

    if (size == 0) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        ch = (unsigned char) in[i];

        if (ch == '%') {
            if (i + 2 >= len) {
                return -1;
            }
            hi = tnl_api_hex((unsigned char) in[i + 1]);
            lo = tnl_api_hex((unsigned char) in[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            ch = hi * 16 + lo;
            i += 2;

        } else if (ch == '+' && plus) {
            ch = ' ';
        }

        if (ch == '\0' || o + 1 >= size) {
            return -1;
        }

        out[o++] = (char) ch;
    }

    out[o] = '\0';

    return 0;
}


const char *
tnl_api_query_param(const char *query, const char *name, char *buf,
    size_t size, const char *bad)
{
    const char  *p, *amp, *eq;
    size_t       nlen;

    nlen = strlen(name);

    for (p = query; *p != '\0'; p = *amp ? amp + 1 : amp) {
        amp = strchr(p, '&');
        if (amp == NULL) {
            amp = p + strlen(p);
        }

        eq = memchr(p, '=', (size_t) (amp - p));

        if ((size_t) ((eq ? eq : amp) - p) == nlen
            && strncmp(p, name, nlen) == 0)
        {
            if (eq == NULL) {
                if (size > 0) {
                    buf[0] = '\0';
                }
                return buf;
            }

            if (tnl_api_decode(eq + 1, (size_t) (amp - eq - 1), buf, size, 1)
                == -1)
            {
                return bad;
            }

            return buf;
        }
    }

    return NULL;
}
