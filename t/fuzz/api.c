/*
 * libFuzzer target: the management API's request parsing
 * (sshd/api_parse.c, what sshd/api.c runs on every request a client
 * sends, over the Unix socket or --api TCP).  The input is what arrived
 * on the connection.  Checked besides the sanitizers: a head found ends
 * in CRLF CRLF within the limit, holds no NUL and no bare LF; a parsed
 * request has a token method, a decoded path starting with '/', a body
 * length within the limit; every failure has a 4xx/5xx status and a
 * message; query parameters decode into their buffer.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_parse.h"


static const char   fuzz_bad[] = "";
static const char  *fuzz_params[] = {
    "user", "name", "limit", "reason", ""
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char      *in = (const char *) data, *v;
    size_t           head_len, i;
    char             buf[64];
    tnl_api_head_t   h;

    head_len = 0;

    switch (tnl_api_head_end(in, size, &head_len)) {

    case TNL_API_HEAD_DONE:
        break;

    case TNL_API_HEAD_LARGE:
        if (size <= TNL_API_HEAD_MAX) {
            abort();
        }
        return 0;

    default:
        return 0;
    }

    if (head_len < 4 || head_len > size || head_len > TNL_API_HEAD_MAX
        || memcmp(in + head_len - 4, "\r\n\r\n", 4) != 0)
    {
        abort();
    }

    for (i = 0; i < head_len; i++) {
        if (in[i] == '\0' || (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')))
        {
            abort();
        }
    }

    if (tnl_api_head_parse(in, head_len, &h) != 0) {
        if (h.status < 400 || h.status > 599 || h.code == NULL
            || h.message == NULL)
        {
            abort();
        }
        return 0;
    }

    if (h.method[0] == '\0' || h.path[0] != '/'
        || strlen(h.path) >= sizeof(h.path)
        || strlen(h.query) >= sizeof(h.query)
        || h.body_want > TNL_API_BODY_MAX)
    {
        abort();
    }

    for (i = 0; i < sizeof(fuzz_params) / sizeof(fuzz_params[0]); i++) {
        v = tnl_api_query_param(h.query, fuzz_params[i], buf, sizeof(buf),
                                fuzz_bad);
        if (v != NULL && v != fuzz_bad && strlen(v) >= sizeof(buf)) {
            abort();
        }
    }

    return 0;
}
