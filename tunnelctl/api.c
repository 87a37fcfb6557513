/*
 * A client for tunneld's management API (docs/API.md), for the commands
 * that deal with live tunnels (tunnels.c): one blocking request at a time
 * is fine in a command-line tool, bounded by a 10 s deadline.  Where the
 * API is: $TUNNELD_API, either the path of tunneld's api.sock or
 * http://HOST:PORT (numeric) with the token in $TUNNELD_API_TOKEN.
 * Knows HTTP only as far as tunneld speaks it: Content-Length or chunked
 * answers, Connection: close.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tunnelctl.h"


#define TNL_CTL_API_TIMEOUT_MS  10000
#define TNL_CTL_API_MAX         (64 * 1024 * 1024)


static long long
tnl_ctl_api_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static int
tnl_ctl_api_connect(const char *where)
{
    struct sockaddr_un   sun;
    struct addrinfo      hints, *res;
    char                 host[64], port[16];
    const char          *hp, *colon;
    int                  fd;

    if (strncmp(where, "http://", 7) != 0) {
        if (strlen(where) >= sizeof(sun.sun_path)) {
            tnl_ctl_error("TUNNELD_API \"%s\" is too long for a socket path",
                          where);
            return -1;
        }

        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        strcpy(sun.sun_path, where);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd == -1 || connect(fd, (struct sockaddr *) &sun, sizeof(sun))
                        == -1)
        {
            tnl_ctl_error("cannot reach tunneld's API at \"%s\": %s (is "
                          "tunneld running, and may this user open its "
                          "socket directory?)", where, strerror(errno));
            if (fd != -1) {
                close(fd);
            }
            return -1;
        }

        return fd;
    }

    hp = where + 7;
    colon = strrchr(hp, ':');
    if (colon == NULL || (size_t) (colon - hp) >= sizeof(host)
        || strlen(colon + 1) >= sizeof(port))
    {
        tnl_ctl_error("TUNNELD_API \"%s\": use http://HOST:PORT or the path "
                      "of tunneld's api.sock", where);
        return -1;
    }

    snprintf(host, sizeof(host), "%.*s", (int) (colon - hp), hp);
    snprintf(port, sizeof(port), "%.*s", (int) strcspn(colon + 1, "/"),
             colon + 1);

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;

    if (getaddrinfo(host, port, &hints, &res) != 0) {
        tnl_ctl_error("TUNNELD_API \"%s\": the host must be a numeric "
                      "address", where);
        return -1;
    }

    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, res->ai_addr, res->ai_addrlen) == -1) {
        tnl_ctl_error("cannot reach tunneld's API at %s: %s (is tunneld "
                      "running with --api %s:%s?)", where, strerror(errno),
                      host, port);
        if (fd != -1) {
            close(fd);
        }
        freeaddrinfo(res);
        return -1;
    }

    freeaddrinfo(res);

    return fd;
}


/* decodes a chunked body in place; -1 if malformed */
static int
tnl_ctl_api_unchunk(char *body, size_t len, size_t *out_len)
{
    char    *in = body, *end = body + len, *nl, *out = body;
    size_t   n;

    for ( ;; ) {
        nl = memchr(in, '\n', (size_t) (end - in));
        if (nl == NULL) {
            return -1;
        }

        n = strtoul(in, NULL, 16);
        in = nl + 1;

        if (n == 0) {
            break;
        }
        if (n > (size_t) (end - in)) {
            return -1;
        }

        memmove(out, in, n);
        out += n;
        in += n;

        if (in < end && *in == '\r') {
            in++;
        }
        if (in < end && *in == '\n') {
            in++;
        }
    }

    *out = '\0';
    *out_len = (size_t) (out - body);

    return 0;
}


int
tnl_ctl_api(const char *method, const char *path, const char *body,
    char **out)
{
    struct pollfd   pfd;
    const char     *where, *token;
    char           *buf, *p, *head_end;
    char            req[4096];
    size_t          len, cap, blen, off;
    long long       deadline, left;
    ssize_t         n;
    int             fd, status, wn;

    *out = NULL;

    where = getenv("TUNNELD_API");
    if (where == NULL || where[0] == '\0') {
        tnl_ctl_error("TUNNELD_API is not set: give the path of tunneld's "
                      "api.sock (e.g. /run/ngx-tunnel/sockets/api.sock, or "
                      "'. .run/env' with make run)");
        return -1;
    }

    token = getenv("TUNNELD_API_TOKEN");
    blen = body ? strlen(body) : 0;

    wn = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: tunneld\r\n"
                  "User-Agent: tunnelctl\r\n%s%s%s"
                  "Content-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  method, path,
                  token && token[0] ? "Authorization: Bearer " : "",
                  token && token[0] ? token : "",
                  token && token[0] ? "\r\n" : "", blen);
    if (wn < 0 || (size_t) wn >= sizeof(req)) {
        tnl_ctl_error("request too long");
        return -1;
    }

    fd = tnl_ctl_api_connect(where);
    if (fd == -1) {
        return -1;
    }

    deadline = tnl_ctl_api_now_ms() + TNL_CTL_API_TIMEOUT_MS;

    if (write(fd, req, (size_t) wn) != wn
        || (blen > 0 && write(fd, body, blen) != (ssize_t) blen))
    {
        tnl_ctl_error("cannot send to tunneld's API: %s", strerror(errno));
        close(fd);
        return -1;
    }

    cap = 65536;
    len = 0;
    buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        tnl_ctl_error("out of memory");
        return -1;
    }

    for ( ;; ) {
        left = deadline - tnl_ctl_api_now_ms();
        if (left <= 0) {
            tnl_ctl_error("tunneld's API did not answer within %d s",
                          TNL_CTL_API_TIMEOUT_MS / 1000);
            goto fail;
        }

        pfd.fd = fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, (int) left) <= 0) {
            continue;
        }

        if (len == cap) {
            if (cap >= TNL_CTL_API_MAX) {
                tnl_ctl_error("tunneld's answer is too large");
                goto fail;
            }
            cap *= 2;
            p = realloc(buf, cap + 1);
            if (p == NULL) {
                tnl_ctl_error("out of memory");
                goto fail;
            }
            buf = p;
        }

        n = read(fd, buf + len, cap - len);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            tnl_ctl_error("reading tunneld's answer: %s", strerror(errno));
            goto fail;
        }
        len += (size_t) n;
    }

    close(fd);
    fd = -1;
    buf[len] = '\0';

    head_end = strstr(buf, "\r\n\r\n");
    if (head_end == NULL || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        tnl_ctl_error("tunneld's API sent something that is not HTTP");
        goto fail;
    }

    *head_end = '\0';
    off = (size_t) (head_end + 4 - buf);

    if (strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL) {
        if (tnl_ctl_api_unchunk(buf + off, len - off, &len) == -1) {
            tnl_ctl_error("tunneld's answer was cut short");
            goto fail;
        }
    } else {
        len -= off;
    }

    memmove(buf, buf + off, len);
    buf[len] = '\0';
    *out = buf;

    return status;

fail:

    if (fd != -1) {
        close(fd);
    }
    free(buf);

    return -1;
}
