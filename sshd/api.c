/*
 * The management API's HTTP server (see api.h): listeners, connections,
 * request parsing, the route table and writing answers.  Knows nothing of
 * tunnels: the handlers in api_tunnels.c and api_status.c do.
 *
 * Owns its listening fds (created in main before the fork, inherited by
 * every worker) and every tnl_api_conn_t (heap, on a list, freed only
 * from the loop, never inside a handler's own call).
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "api_parse.h"
#include "api_handlers.h"
#include "log.h"
#include "server.h"


#define TNL_API_READ_MS       10000    /* to send the whole request */
#define TNL_API_ANSWER_MS     30000    /* to take the whole answer */
#define TNL_API_CONNS_MAX     256      /* per worker */
#define TNL_API_OUT_SOFT      65536    /* streams wait past this */
#define TNL_API_LISTEN_MAX    2


typedef enum {
    TNL_API_READING = 0,
    TNL_API_HELD,         /* a handler answers later */
    TNL_API_STREAMING,    /* chunked, the handler adds pieces */
    TNL_API_WRITING,      /* the whole answer is in out */
    TNL_API_DONE,         /* closed, waiting for the sweep */
} tnl_api_state_e;


struct tnl_api_conn_s {
    int                  fd;
    tnl_io_t             io;
    tnl_timer_t          timer;
    tnl_api_state_e      state;
    unsigned             tcp:1;           /* came in over --api TCP */
    unsigned             more_posted:1;
    unsigned             in_handler:1;

    char                 in[TNL_API_HEAD_MAX + TNL_API_BODY_MAX + 1];
    size_t               in_len;
    size_t               head_len;        /* 0 until the head is complete */
    size_t               body_want;

    tnl_api_request_t    req;
    tnl_api_head_t       head;            /* method, path, ... (parsed) */

    char                *out;
    size_t               out_len;
    size_t               out_pos;
    size_t               out_cap;

    tnl_api_more_pt      more;            /* streaming: room again */
    tnl_api_more_pt      abort;           /* held or streaming: gone */
    void                *data;

    tnl_api_conn_t      *next;
    tnl_api_conn_t      *prev;
};


typedef struct {
    int          fd;
    unsigned     tcp:1;
    tnl_io_t     io;
    char         name[128];
} tnl_api_listener_t;


static tnl_api_listener_t  tnl_api_listeners[TNL_API_LISTEN_MAX];
static int                 tnl_api_nlisteners;
static char                tnl_api_token[256];
static tnl_api_conn_t     *tnl_api_conns;
static unsigned            tnl_api_nconns;
static unsigned            tnl_api_nclosed;     /* closed, not yet swept */
static tnl_loop_t         *tnl_api_loop;


static void tnl_api_accept(tnl_io_t *io, uint32_t events);
static void tnl_api_conn_io(tnl_io_t *io, uint32_t events);
static void tnl_api_conn_timeout(tnl_timer_t *t);
static void tnl_api_finish(tnl_api_conn_t *c);


/* listeners */

static int
tnl_api_token_load(const char *path)
{
    FILE    *f;
    size_t   n;

    f = fopen(path, "r");
    if (f == NULL) {
        tnl_log_error("cannot read --api-token-file \"%s\": %s", path,
                      strerror(errno));
        return -1;
    }

    n = fread(tnl_api_token, 1, sizeof(tnl_api_token) - 1, f);
    fclose(f);
    tnl_api_token[n] = '\0';

    while (n > 0 && isspace((unsigned char) tnl_api_token[n - 1])) {
        tnl_api_token[--n] = '\0';
    }

    if (n < 16 || n == sizeof(tnl_api_token) - 1
        || strpbrk(tnl_api_token, " \t\r\n") != NULL)
    {
        tnl_log_error("--api-token-file \"%s\": the token must be one word "
                      "of 16 to 254 characters (e.g. the output of "
                      "'openssl rand -hex 32')", path);
        tnl_api_token[0] = '\0';
        return -1;
    }

    return 0;
}


static int
tnl_api_listen_unix(void)
{
    struct sockaddr_un   sun;
    tnl_api_listener_t  *l;
    int                  fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;

    if ((size_t) snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/api.sock",
                          tnl_conf.socket_dir) >= sizeof(sun.sun_path))
    {
        tnl_log_error("socket dir \"%s\" is too long for the API socket",
                      tnl_conf.socket_dir);
        return -1;
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        tnl_log_error("API socket: %s", strerror(errno));
        return -1;
    }

    (void) unlink(sun.sun_path);

    if (bind(fd, (struct sockaddr *) &sun, sizeof(sun)) == -1
        || listen(fd, 128) == -1)
    {
        tnl_log_error("API socket \"%s\": %s", sun.sun_path,
                      strerror(errno));
        close(fd);
        return -1;
    }

    /* the directory (0750) is the fence; the socket is 0660 as tunnels' */

    if (chmod(sun.sun_path, 0660) == -1
        || (tnl_conf.socket_gid != (gid_t) -1
            && chown(sun.sun_path, (uid_t) -1, tnl_conf.socket_gid) == -1))
    {
        tnl_log_warn("API socket \"%s\": cannot set mode or group: %s",
                     sun.sun_path, strerror(errno));
    }

    l = &tnl_api_listeners[tnl_api_nlisteners++];
    l->fd = fd;
    l->tcp = 0;
    snprintf(l->name, sizeof(l->name), "%s", sun.sun_path);

    tnl_log_info("management API on \"%s\"", sun.sun_path);

    return 0;
}


static int
tnl_api_is_loopback(const struct sockaddr *sa)
{
    const struct sockaddr_in   *sin;
    const struct sockaddr_in6  *sin6;

    if (sa->sa_family == AF_INET) {
        sin = (const struct sockaddr_in *) sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }

    if (sa->sa_family == AF_INET6) {
        sin6 = (const struct sockaddr_in6 *) sa;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }

    return 0;
}


static int
tnl_api_listen_tcp(const char *spec)
{
    struct addrinfo      hints, *res = NULL;
    tnl_api_listener_t  *l;
    const char          *colon;
    char                 host[64], port[16];
    int                  fd, on = 1, rc;

    if (spec[0] == '[') {
        colon = strchr(spec, ']');
        if (colon == NULL || colon[1] != ':') {
            goto bad;
        }
        snprintf(host, sizeof(host), "%.*s", (int) (colon - spec - 1),
                 spec + 1);
        colon++;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL || colon == spec) {
            goto bad;
        }
        snprintf(host, sizeof(host), "%.*s", (int) (colon - spec), spec);
    }

    snprintf(port, sizeof(port), "%s", colon + 1);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        goto bad;
    }

    if (!tnl_api_is_loopback(res->ai_addr) && tnl_api_token[0] == '\0') {
        tnl_log_error("--api %s is not a loopback address: give "
                      "--api-token-file FILE too, so that every request "
                      "must carry the token", spec);
        freeaddrinfo(res);
        return -1;
    }

    fd = socket(res->ai_family,
                res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        tnl_log_error("--api %s: %s", spec, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }

    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));

    if (bind(fd, res->ai_addr, res->ai_addrlen) == -1
        || listen(fd, 128) == -1)
    {
        tnl_log_error("--api %s: %s", spec, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }

    freeaddrinfo(res);

    l = &tnl_api_listeners[tnl_api_nlisteners++];
    l->fd = fd;
    l->tcp = 1;
    snprintf(l->name, sizeof(l->name), "%s", spec);

    tnl_log_info("management API on %s%s", spec,
                 tnl_api_token[0] ? " (token required)" : "");

    return 0;

bad:

    tnl_log_error("bad --api \"%s\": use ADDR:PORT or [ADDR]:PORT with a "
                  "numeric address, e.g. 127.0.0.1:9090", spec);
    return -1;
}


int
tnl_api_listen(void)
{
    if (tnl_conf.api_token_file != NULL
        && tnl_api_token_load(tnl_conf.api_token_file) == -1)
    {
        return -1;
    }

    if (tnl_api_listen_unix() == -1) {
        return -1;
    }

    if (tnl_conf.api_listen != NULL
        && tnl_api_listen_tcp(tnl_conf.api_listen) == -1)
    {
        close(tnl_api_listeners[0].fd);
        tnl_api_nlisteners = 0;
        return -1;
    }

    return 0;
}


int
tnl_api_start(tnl_loop_t *loop)
{
    tnl_api_listener_t  *l;
    int                  i;

    tnl_api_loop = loop;

    for (i = 0; i < tnl_api_nlisteners; i++) {
        l = &tnl_api_listeners[i];
        tnl_io_init(&l->io, loop, l->fd, tnl_api_accept, l);

        if (tnl_io_set(&l->io, EPOLLIN | EPOLLEXCLUSIVE) == -1) {
            tnl_log_error("API \"%s\": epoll: %s", l->name, strerror(errno));
            return -1;
        }
    }

    return 0;
}


void
tnl_api_stop(void)
{
    tnl_api_conn_t  *c, *next;
    int              i;

    for (i = 0; i < tnl_api_nlisteners; i++) {
        if (tnl_api_listeners[i].io.active) {
            tnl_io_del(&tnl_api_listeners[i].io);
        }
    }

    for (c = tnl_api_conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != TNL_API_DONE) {
            tnl_api_finish(c);
        }
    }
}


/* connections */

static void
tnl_api_sweep(void *data)
{
    tnl_api_conn_t  *c = data;

    if (c->prev) {
        c->prev->next = c->next;
    } else {
        tnl_api_conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }

    tnl_api_nconns--;
    tnl_api_nclosed--;
    free(c->out);
    free(c);
}


/* closes c now and frees it from the loop; tells a waiting handler */
static void
tnl_api_finish(tnl_api_conn_t *c)
{
    tnl_api_more_pt  abort;

    if (c->state == TNL_API_DONE) {
        return;
    }

    abort = (c->state == TNL_API_HELD || c->state == TNL_API_STREAMING)
            ? c->abort : NULL;

    c->state = TNL_API_DONE;
    c->more = NULL;
    c->abort = NULL;

    if (abort != NULL) {
        abort(c, c->data);
    }

    tnl_timer_del(&c->timer);
    if (c->io.active) {
        tnl_io_del(&c->io);
    }
    close(c->fd);
    c->fd = -1;
    tnl_api_nclosed++;

    if (tnl_loop_post(tnl_api_loop, tnl_api_sweep, c) == -1) {
        /* only at shutdown: leak rather than free under a caller */
        tnl_log_warn("API: connection not freed (post queue full)");
    }
}


/*
 * At the connection cap, a new client takes the place of the oldest one
 * still sending its request: slowloris (hundreds of connections, a header
 * byte every few seconds) would otherwise keep the cap full and every
 * real client out until the 10 s read deadline, then fill it again.  A
 * real request arrives in one write and is answered at once, so it is
 * never the oldest reader for long.  Answers being written, held or
 * streamed are never closed here.  -1: nothing to close (the cap holds).
 */
static int
tnl_api_evict_slowest(void)
{
    static time_t    logged;
    tnl_api_conn_t  *c, *oldest = NULL;
    time_t           now;

    /* new connections go to the head: the last reader found is the oldest */
    for (c = tnl_api_conns; c != NULL; c = c->next) {
        if (c->state == TNL_API_READING && !c->in_handler) {
            oldest = c;
        }
    }

    if (oldest == NULL) {
        return -1;
    }

    now = time(NULL);
    if (now - logged >= 10) {
        logged = now;
        tnl_log_warn("API: %u connections (the cap): closing the oldest "
                     "one still sending its request to make room (many "
                     "slow or idle clients?)", tnl_api_nconns);
    }

    tnl_api_finish(oldest);

    return 0;
}


static void
tnl_api_accept(tnl_io_t *io, uint32_t events)
{
    tnl_api_listener_t  *l = io->data;
    tnl_api_conn_t      *c;
    int                  fd, n;

    (void) events;

    for (n = 0; n < 16; n++) {
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                && errno != ECONNABORTED)
            {
                tnl_log_warn("API accept on \"%s\": %s", l->name,
                             strerror(errno));
            }
            return;
        }

        /* closed connections wait for the sweep: not counted */
        if (tnl_api_nconns - tnl_api_nclosed >= TNL_API_CONNS_MAX
            && tnl_api_evict_slowest() == -1)
        {
            static const char  busy[] =
                "HTTP/1.1 503 Service Unavailable\r\n"
                "Content-Type: application/json\r\nConnection: close\r\n"
                "Content-Length: 74\r\n\r\n"
                "{\"error\":\"busy\",\"message\":\"too many API connections,"
                " try again later\"}\n";

            (void) !write(fd, busy, sizeof(busy) - 1);
            close(fd);
            continue;
        }

        c = calloc(1, sizeof(tnl_api_conn_t));
        if (c == NULL) {
            close(fd);
            return;
        }

        c->fd = fd;
        c->tcp = l->tcp;
        tnl_io_init(&c->io, tnl_api_loop, fd, tnl_api_conn_io, c);
        tnl_timer_init(&c->timer, tnl_api_loop, tnl_api_conn_timeout, c);

        c->next = tnl_api_conns;
        if (tnl_api_conns) {
            tnl_api_conns->prev = c;
        }
        tnl_api_conns = c;
        tnl_api_nconns++;

        if (tnl_io_set(&c->io, EPOLLIN) == -1) {
            tnl_api_finish(c);
            continue;
        }

        tnl_timer_add(&c->timer, TNL_API_READ_MS);
    }
}


static void
tnl_api_conn_timeout(tnl_timer_t *t)
{
    tnl_api_conn_t  *c = t->data;

    if (c->state == TNL_API_READING && c->in_len > 0) {
        tnl_api_error(c, 408, "timeout", "the request did not arrive "
                      "within 10 s", NULL);
        /* one more chance to write it, then gone */
        tnl_timer_add(&c->timer, 1000);
        c->state = TNL_API_WRITING;
        return;
    }

    tnl_api_finish(c);
}


/* output */

static int
tnl_api_out_reserve(tnl_api_conn_t *c, size_t more)
{
    size_t   cap;
    char    *p;

    if (c->out_pos > 0 && c->out_pos == c->out_len) {
        c->out_pos = c->out_len = 0;
    }

    if (c->out_len + more <= c->out_cap) {
        return 0;
    }

    cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more) {
        cap *= 2;
    }

    p = realloc(c->out, cap);
    if (p == NULL) {
        return -1;
    }

    c->out = p;
    c->out_cap = cap;

    return 0;
}


static void
tnl_api_out(tnl_api_conn_t *c, const char *data, size_t len)
{
    if (c->state == TNL_API_DONE || tnl_api_out_reserve(c, len) == -1) {
        return;
    }

    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}


static void
tnl_api_outf(tnl_api_conn_t *c, const char *fmt, ...)
{
    char     buf[1024];
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (n > 0) {
        tnl_api_out(c, buf, (size_t) n < sizeof(buf) ? (size_t) n
                                                      : sizeof(buf) - 1);
    }
}


static const char *
tnl_api_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default:  return "Unknown";
    }
}


/* starts writing what is in out; the connection ends when it is sent */
static void
tnl_api_send(tnl_api_conn_t *c)
{
    c->state = TNL_API_WRITING;
    c->more = NULL;
    c->abort = NULL;
    tnl_timer_add(&c->timer, TNL_API_ANSWER_MS);
    (void) tnl_io_set(&c->io, EPOLLOUT);
}


void
tnl_api_text(tnl_api_conn_t *c, int status, const char *content_type,
    const char *text, size_t len)
{
    if (c->state == TNL_API_DONE || c->state == TNL_API_WRITING
        || c->state == TNL_API_STREAMING)
    {
        return;
    }

    tnl_api_outf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                 "Connection: close\r\n\r\n",
                 status, tnl_api_reason(status), content_type, len);

    if (strcmp(c->head.method, "HEAD") != 0) {
        tnl_api_out(c, text, len);
    }

    tnl_api_send(c);
}


void
tnl_api_json(tnl_api_conn_t *c, int status, json_t *body)
{
    char    *s;
    size_t   len;

    s = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);

    if (s == NULL) {
        tnl_api_error(c, 500, "internal", "out of memory", NULL);
        return;
    }

    /* a final newline: friendlier to people reading curl's output */
    len = strlen(s);
    s[len] = '\n';
    tnl_api_text(c, status, "application/json", s, len + 1);
    free(s);
}


void
tnl_api_error(tnl_api_conn_t *c, int status, const char *code,
    const char *message, const char *headers)
{
    json_t  *o;
    char    *s;
    size_t   len;

    if (c->state == TNL_API_DONE || c->state == TNL_API_WRITING
        || c->state == TNL_API_STREAMING)
    {
        return;
    }

    o = json_pack("{s:s, s:s}", "error", code, "message", message);
    s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);

    if (s == NULL) {
        tnl_api_finish(c);
        return;
    }

    len = strlen(s);

    tnl_api_outf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                 "%sConnection: close\r\n\r\n",
                 status, tnl_api_reason(status), len + 1,
                 headers ? headers : "");

    if (strcmp(c->head.method, "HEAD") != 0) {
        tnl_api_out(c, s, len);
        tnl_api_out(c, "\n", 1);
    }

    free(s);
    tnl_api_send(c);
}


void
tnl_api_hold(tnl_api_conn_t *c, tnl_api_more_pt abort, void *data)
{
    if (c->state != TNL_API_READING) {
        return;
    }

    c->state = TNL_API_HELD;
    c->abort = abort;
    c->data = data;
    tnl_timer_add(&c->timer, TNL_API_ANSWER_MS);
    tnl_io_del(&c->io);    /* a request was read: nothing more to read */
}


void
tnl_api_stream_start(tnl_api_conn_t *c, const char *content_type,
    tnl_api_more_pt more, tnl_api_more_pt abort, void *data)
{
    if (c->state != TNL_API_READING && c->state != TNL_API_HELD) {
        return;
    }

    tnl_api_outf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                 "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n"
                 "Connection: close\r\n\r\n", content_type);

    c->state = TNL_API_STREAMING;
    c->more = more;
    c->abort = abort;
    c->data = data;
    tnl_timer_add(&c->timer, TNL_API_ANSWER_MS);
    (void) tnl_io_set(&c->io, EPOLLOUT);
}


void
tnl_api_stream_write(tnl_api_conn_t *c, const char *piece, size_t len)
{
    if (c->state != TNL_API_STREAMING || len == 0) {
        return;
    }

    tnl_api_outf(c, "%zx\r\n", len);
    tnl_api_out(c, piece, len);
    tnl_api_out(c, "\r\n", 2);

    (void) tnl_io_set(&c->io, EPOLLOUT);
}


int
tnl_api_stream_full(tnl_api_conn_t *c)
{
    return c->out_len - c->out_pos >= TNL_API_OUT_SOFT;
}


void
tnl_api_stream_end(tnl_api_conn_t *c)
{
    if (c->state != TNL_API_STREAMING) {
        return;
    }

    tnl_api_out(c, "0\r\n\r\n", 5);
    tnl_api_send(c);
}


static void
tnl_api_more(void *data)
{
    tnl_api_conn_t  *c = data;

    c->more_posted = 0;

    if (c->state == TNL_API_STREAMING && c->more != NULL) {
        c->more(c, c->data);
    }
}


static void
tnl_api_write(tnl_api_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            tnl_api_finish(c);
            return;
        }
        c->out_pos += (size_t) n;
    }

    c->out_pos = c->out_len = 0;

    if (c->state == TNL_API_WRITING) {
        (void) shutdown(c->fd, SHUT_WR);
        tnl_api_finish(c);
        return;
    }

    if (c->state != TNL_API_STREAMING) {
        return;
    }

    /*
     * Drained while the handler waits for its next piece (a Redis reply):
     * a level-triggered EPOLLOUT would wake us for nothing until then;
     * only a hang-up or an error (always reported) is of interest
     * (tnl_api_stream_write asks for EPOLLOUT again).  Not EPOLLRDHUP: a
     * client may half-close after its request and still read.
     */
    (void) tnl_io_set(&c->io, 0);

    if (c->more != NULL && !c->more_posted) {
        /* from the loop, never inside the handler's own call */
        if (tnl_loop_post(tnl_api_loop, tnl_api_more, c) == 0) {
            c->more_posted = 1;
        }
    }
}


/* input */

const char  tnl_api_bad_param[] = "";


const char *
tnl_api_query(tnl_api_conn_t *c, const char *name, char *buf, size_t size)
{
    return tnl_api_query_param(c->head.query, name, buf, size,
                               tnl_api_bad_param);
}


const tnl_api_request_t *
tnl_api_request(tnl_api_conn_t *c)
{
    return &c->req;
}


int
tnl_api_secret_equal(const char *a, const char *b)
{
    size_t         la, lb, i;
    unsigned char  diff;

    la = strlen(a);
    lb = strlen(b);
    diff = (unsigned char) (la != lb);

    /* every byte of the expected secret is looked at, whatever matched */

    for (i = 0; i < lb; i++) {
        diff |= (unsigned char) (b[i] ^ (i < la ? a[i] : 0));
    }

    return diff == 0;
}


/*
 * Host of a request to a TCP listener without a token: an IP literal or a
 * name without a dot ("localhost").  A page of another site in a browser
 * on this machine can reach a loopback listener by DNS rebinding (its
 * name then resolves to 127.0.0.1): the browser sends that name.
 */
static int
tnl_api_host_local(const char *host)
{
    size_t  n;

    if (host[0] == '\0' || host[0] == '[') {
        return 1;                        /* none (HTTP/1.0), or IPv6 */
    }

    n = strcspn(host, ":");

    if (memchr(host, '.', n) == NULL) {
        return 1;
    }

    return strspn(host, "0123456789.") == n;
}


/* the head and the body are in: find the handler */
static void
tnl_api_dispatch(tnl_api_conn_t *c)
{
    const char  *token;

    c->req.method = c->head.method;
    c->req.path = c->head.path;
    c->req.query = c->head.query;
    c->req.body = c->in + c->head_len;
    c->req.body_len = c->body_want;
    c->req.content_type = c->head.content_type;
    c->in[c->head_len + c->body_want] = '\0';

    if (c->tcp && tnl_api_token[0] != '\0') {
        token = strncasecmp(c->head.auth, "Bearer ", 7) == 0
                ? c->head.auth + 7 : "";

        if (!tnl_api_secret_equal(token, tnl_api_token)) {
            tnl_log_warn("API: request \"%s %s\" without a valid token "
                         "refused", c->head.method, c->head.path);
            tnl_api_error(c, 401, "unauthorized", "this listener needs "
                          "\"Authorization: Bearer TOKEN\" with the token "
                          "of --api-token-file",
                          "WWW-Authenticate: Bearer\r\n");
            return;
        }
    }

    if (c->tcp && tnl_api_token[0] == '\0'
        && !tnl_api_host_local(c->head.host))
    {
        tnl_log_warn("API: request \"%s %s\" for host \"%s\" refused: "
                     "a listener without a token takes only IP addresses "
                     "and localhost (DNS rebinding)", c->head.method,
                     c->head.path, c->head.host);
        tnl_api_error(c, 421, "misdirected_request", "this listener has no "
                      "token: use its IP address or localhost as the host, "
                      "or give tunneld --api-token-file", NULL);
        return;
    }

    c->in_handler = 1;
    tnl_api_route(c, &c->req);
    c->in_handler = 0;

    if (c->state == TNL_API_READING) {
        /* a handler must answer or hold; never leave a client hanging */
        tnl_api_error(c, 500, "internal", "no answer was produced", NULL);
    }
}


static void
tnl_api_read(tnl_api_conn_t *c)
{
    ssize_t      n;
    size_t       room;
    int          eof = 0;

    for ( ;; ) {
        room = sizeof(c->in) - 1 - c->in_len;
        if (room == 0) {
            break;
        }

        n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n == 0) {
            /*
             * the client half-closed after its request (nc -N, socat):
             * answer what arrived; nothing arrived: it is gone
             */
            if (c->in_len == 0) {
                tnl_api_finish(c);
                return;
            }
            eof = 1;
            break;
        }
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            tnl_api_finish(c);
            return;
        }
        c->in_len += (size_t) n;
    }

    if (c->head_len == 0) {

        switch (tnl_api_head_end(c->in, c->in_len, &c->head_len)) {

        case TNL_API_HEAD_AGAIN:
            if (eof) {
                tnl_api_error(c, 400, "bad_request", "the request ended "
                              "before its headers did", NULL);
            }
            return;

        case TNL_API_HEAD_LARGE:
            tnl_api_error(c, 431, "header_too_large", "the request line "
                          "and headers are larger than 8192 bytes", NULL);
            return;

        case TNL_API_HEAD_BAD:
            tnl_api_error(c, 400, "bad_request", "the request line and "
                          "headers must end every line in CRLF and hold "
                          "no NUL byte, bare CR or bare LF", NULL);
            return;

        case TNL_API_HEAD_DONE:
            break;
        }

        if (tnl_api_head_parse(c->in, c->head_len, &c->head) != 0) {
            tnl_api_error(c, c->head.status, c->head.code,
                          c->head.message, NULL);
            return;
        }

        c->body_want = c->head.body_want;

        if (c->body_want == 0) {
            tnl_api_dispatch(c);
            return;
        }
    }

    if (c->in_len >= c->head_len + c->body_want) {
        tnl_api_dispatch(c);

    } else if (eof) {
        tnl_api_error(c, 400, "bad_request", "the request ended before its "
                      "body did (Content-Length)", NULL);
    }
}


static void
tnl_api_conn_io(tnl_io_t *io, uint32_t events)
{
    tnl_api_conn_t  *c = io->data;

    if (c->state == TNL_API_READING) {
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            tnl_api_read(c);
        }
        return;
    }

    if (events & (EPOLLERR | EPOLLHUP)) {
        /* the client is gone both ways: nothing it could still read */
        tnl_api_finish(c);
        return;
    }

    if (events & EPOLLOUT) {
        tnl_api_write(c);
    }
}
