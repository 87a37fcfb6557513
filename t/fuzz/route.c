/*
 * libFuzzer target: the nginx module's route records
 * (ngx_tunnel_module/ngx_http_tunnel_route.c).  The input is the RESP
 * bytes of Redis's answers; hiredis's own reader (the library the module
 * links) turns them into replies, each decoded as the lookup decodes an
 * HGETALL answer.  A route found must have a socket path the balancer
 * can copy into sun_path with its NUL, inside the reply's strings.
 *
 * hiredis 0.14 (Debian 12) allocates an array of whatever length the
 * server announces; an announced length over 100000 is skipped here so
 * libFuzzer's malloc limit does not report hiredis's behaviour as ours
 * (docs/FUZZING.md says more).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <hiredis/hiredis.h>

#include "ngx_http_tunnel_route.h"


static int
huge_length(const uint8_t *data, size_t size)
{
    size_t    i;
    uint64_t  n;

    for (i = 0; i + 1 < size; i++) {
        if (data[i] != '*' && data[i] != '$') {
            continue;
        }

        n = 0;
        while (i + 1 < size && data[i + 1] >= '0' && data[i + 1] <= '9') {
            n = n * 10 + (data[++i] - '0');
            if (n > 100000) {
                return 1;
            }
        }
    }

    return 0;
}


static int
inside(const redisReply *rr, const char *p, size_t len)
{
    size_t  i;

    if (rr->type == REDIS_REPLY_STRING && p >= rr->str
        && p + len <= rr->str + rr->len)
    {
        return 1;
    }

    if (rr->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < rr->elements; i++) {
            if (inside(rr->element[i], p, len)) {
                return 1;
            }
        }
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                     *reply;
    redisReader              *reader;
    redisReply               *rr;
    struct sockaddr_un        sun;
    ngx_http_tunnel_route_t   route;
    int                       n;

    if (huge_length(data, size)) {
        return 0;
    }

    reader = redisReaderCreate();
    if (reader == NULL) {
        return 0;
    }

    if (redisReaderFeed(reader, (const char *) data, size) != REDIS_OK) {
        redisReaderFree(reader);
        return 0;
    }

    for (n = 0; n < 64; n++) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK
            || reply == NULL)
        {
            break;
        }

        rr = reply;

        if (rr->type != REDIS_REPLY_ERROR) {
            switch (ngx_http_tunnel_route_decode(rr, &route)) {

            case NGX_HTTP_TUNNEL_ROUTE_FOUND:
                if (route.socket_len == 0
                    || route.socket_len >= sizeof(sun.sun_path)
                    || route.socket[0] != '/'
                    || memchr(route.socket, '\0', route.socket_len)
                    || !inside(rr, route.socket, route.socket_len)
                    || (route.user_len > 0
                        && !inside(rr, route.user, route.user_len))
                    || (route.node_len > 0
                        && !inside(rr, route.node, route.node_len)))
                {
                    abort();
                }

                memset(&sun, 0, sizeof(sun));
                memcpy(sun.sun_path, route.socket, route.socket_len);
                break;

            case NGX_HTTP_TUNNEL_ROUTE_BAD:
                if (route.error == NULL) {
                    abort();
                }
                break;

            default:
                break;
            }
        }

        freeReplyObject(reply);
    }

    redisReaderFree(reader);

    return 0;
}
