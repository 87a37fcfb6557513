/*
 * tnl-httpc: the benchmark's latency client.  One TCP connection, one
 * request (or WebSocket message) at a time, each timed with
 * CLOCK_MONOTONIC; prints one line of key=value results (percentiles in
 * microseconds) for tools/bench to parse.
 *
 *   seq    sequential GETs of --path on one keepalive connection
 *   multi  the same, but the Host header of each request names a random
 *          tunnel: printf(--host-pattern, random in [0, --names)), or
 *          printf(--host-pattern, a random line of --names-file)
 *   ws     WebSocket handshake on --path, then --count echo round trips
 *          of --size byte text messages
 *
 * It is not a load generator (wrk is) and not a general HTTP client: it
 * understands Content-Length, chunked and read-until-close bodies, which
 * is what nginx sends.  Blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO keep
 * every wait bounded; --max-seconds bounds the whole run.  Owns nothing
 * beyond its one socket and one latency array.
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define HC_BUF  (256 * 1024)


typedef struct {
    const char   *mode;
    const char   *addr;
    int           port;
    const char   *host;
    const char   *host_pattern;
    int           names;
    const char   *names_file;
    const char   *path;
    long          count;
    long          warmup;
    int           size;
    int           timeout_ms;
    int           max_seconds;
} hc_conf_t;


typedef struct {
    int           fd;
    char         *buf;
    size_t        len;        /* bytes buffered from buf[0] */
} hc_conn_t;


typedef struct {
    long          ok;
    long          errors;
    long          non2xx;
    long          reconnects;
    long          n;
    double       *lat_us;
} hc_stats_t;


static hc_conf_t  conf = {
    .mode = "seq", .addr = "127.0.0.1", .port = 80, .host = "localhost",
    .names = 1, .path = "/", .count = 1000, .warmup = 10, .size = 32,
    .timeout_ms = 5000, .max_seconds = 60
};

static char     **hc_names;        /* lines of --names-file */


static double
hc_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}


static int
hc_connect(hc_conn_t *c)
{
    int                 fd, one;
    struct timeval      tv;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tv.tv_sec = conf.timeout_ms / 1000;
    tv.tv_usec = (conf.timeout_ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(conf.port);
    if (inet_pton(AF_INET, conf.addr, &sin.sin_addr) != 1
        || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1)
    {
        close(fd);
        return -1;
    }

    c->fd = fd;
    c->len = 0;
    return 0;
}


static void
hc_close(hc_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }
    c->len = 0;
}


static int
hc_write_all(int fd, const char *p, size_t n)
{
    ssize_t  k;

    while (n > 0) {
        k = write(fd, p, n);
        if (k <= 0) {
            if (k == -1 && errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += k;
        n -= k;
    }
    return 0;
}


/* reads more into c->buf; returns bytes read, 0 on EOF, -1 on error */
static ssize_t
hc_fill(hc_conn_t *c)
{
    ssize_t  k;

    if (c->len == HC_BUF) {
        return -1;
    }

    do {
        k = read(c->fd, c->buf + c->len, HC_BUF - c->len);
    } while (k == -1 && errno == EINTR);

    if (k > 0) {
        c->len += k;
    }
    return k;
}


static void
hc_consume(hc_conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}


/* discards exactly n body bytes (they may be partly buffered already) */
static int
hc_skip(hc_conn_t *c, size_t n)
{
    size_t  take;

    for ( ;; ) {
        take = n < c->len ? n : c->len;
        hc_consume(c, take);
        n -= take;
        if (n == 0) {
            return 0;
        }
        if (hc_fill(c) <= 0) {
            return -1;
        }
    }
}


/* returns the offset just past the next CRLF in the buffer, reading more */
static long
hc_line(hc_conn_t *c)
{
    char  *p;

    for ( ;; ) {
        p = memmem(c->buf, c->len, "\r\n", 2);
        if (p != NULL) {
            return p - c->buf + 2;
        }
        if (hc_fill(c) <= 0) {
            return -1;
        }
    }
}


static int
hc_chunked(hc_conn_t *c)
{
    long           end;
    unsigned long  size;

    for ( ;; ) {
        end = hc_line(c);
        if (end < 0) {
            return -1;
        }
        size = strtoul(c->buf, NULL, 16);
        hc_consume(c, end);

        if (size == 0) {
            /* trailers end with an empty line */
            for ( ;; ) {
                end = hc_line(c);
                if (end < 0) {
                    return -1;
                }
                hc_consume(c, end);
                if (end == 2) {
                    return 0;
                }
            }
        }

        if (hc_skip(c, size + 2) != 0) {
            return -1;
        }
    }
}


/*
 * Reads one response; returns its status code, or -1 on a broken
 * connection.  *keep is cleared when the server closes after it.
 */
static int
hc_response(hc_conn_t *c, int *keep, int head_only)
{
    int     status, chunked;
    long    clen;
    char   *end, *p, *line, *eol;
    size_t  hlen;

    for ( ;; ) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end != NULL) {
            break;
        }
        if (hc_fill(c) <= 0) {
            return -1;
        }
    }

    hlen = end - c->buf + 4;
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0) {
        return -1;
    }
    status = atoi(c->buf + 9);

    clen = -1;
    chunked = 0;
    *keep = (c->buf[7] == '1');

    for (line = memchr(c->buf, '\n', hlen) + 1;
         line < c->buf + hlen - 2;
         line = eol + 1)
    {
        eol = memchr(line, '\n', c->buf + hlen - line);
        if (eol == NULL) {
            break;
        }
        p = memchr(line, ':', eol - line);
        if (p == NULL) {
            continue;
        }
        p++;
        while (*p == ' ') {
            p++;
        }
        if (strncasecmp(line, "content-length:", 15) == 0) {
            clen = strtol(p, NULL, 10);
        } else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
            chunked = (strncasecmp(p, "chunked", 7) == 0);
        } else if (strncasecmp(line, "connection:", 11) == 0) {
            if (strncasecmp(p, "close", 5) == 0) {
                *keep = 0;
            } else if (strncasecmp(p, "keep-alive", 10) == 0) {
                *keep = 1;
            }
        }
    }

    hc_consume(c, hlen);

    if (head_only || status == 101 || status == 204 || status == 304) {
        return status;
    }

    if (chunked) {
        return hc_chunked(c) == 0 ? status : -1;
    }

    if (clen >= 0) {
        return hc_skip(c, clen) == 0 ? status : -1;
    }

    /* no length: the body ends when the server closes */
    *keep = 0;
    while (hc_fill(c) > 0) {
        c->len = 0;
    }
    return status;
}


static int
hc_get(hc_conn_t *c, const char *host)
{
    int   n, keep, status;
    char  req[1024];

    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tnl-httpc\r\n"
                 "Accept: */*\r\n\r\n", conf.path, host);

    if (hc_write_all(c->fd, req, n) != 0) {
        return -1;
    }

    status = hc_response(c, &keep, 0);
    if (status < 0 || !keep) {
        hc_close(c);
    }
    return status;
}


static int
hc_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
hc_pct(hc_stats_t *st, double p)
{
    long  i;

    if (st->n == 0) {
        return -1;
    }
    i = (long) (p / 100.0 * st->n + 0.5) - 1;
    if (i < 0) {
        i = 0;
    }
    if (i >= st->n) {
        i = st->n - 1;
    }
    return st->lat_us[i];
}


static void
hc_report(hc_stats_t *st, double elapsed_us)
{
    long    i;
    double  sum;

    qsort(st->lat_us, st->n, sizeof(double), hc_cmp);

    sum = 0;
    for (i = 0; i < st->n; i++) {
        sum += st->lat_us[i];
    }

    printf("mode=%s requests=%ld ok=%ld non2xx=%ld errors=%ld "
           "reconnects=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f mean_us=%.1f elapsed_s=%.3f\n",
           conf.mode, st->n, st->ok, st->non2xx, st->errors,
           st->reconnects, hc_pct(st, 50), hc_pct(st, 90), hc_pct(st, 99),
           st->n ? st->lat_us[st->n - 1] : -1.0,
           st->n ? sum / st->n : -1.0, elapsed_us / 1e6);
}


static int
hc_run_http(hc_stats_t *st)
{
    int        status, multi;
    long       i, total;
    char       host[256];
    double     t0, t1, deadline;
    hc_conn_t  c;

    c.fd = -1;
    c.len = 0;
    c.buf = malloc(HC_BUF);
    if (c.buf == NULL) {
        return -1;
    }

    multi = (strcmp(conf.mode, "multi") == 0);
    total = conf.warmup + conf.count;
    deadline = hc_now_us() + conf.max_seconds * 1e6;

    for (i = 0; i < total && hc_now_us() < deadline; i++) {

        if (multi && hc_names != NULL) {
            snprintf(host, sizeof(host), conf.host_pattern,
                     hc_names[random() % conf.names]);
        } else if (multi) {
            snprintf(host, sizeof(host), conf.host_pattern,
                     (int) (random() % conf.names));
        } else {
            snprintf(host, sizeof(host), "%s", conf.host);
        }

        t0 = hc_now_us();

        if (c.fd == -1) {
            if (i > 0) {
                st->reconnects++;
            }
            if (hc_connect(&c) != 0) {
                st->errors++;
                usleep(10000);
                continue;
            }
        }

        status = hc_get(&c, host);
        t1 = hc_now_us();

        if (status < 0) {
            st->errors++;
            hc_close(&c);
            continue;
        }

        if (i < conf.warmup) {
            continue;
        }

        if (status >= 200 && status < 300) {
            st->ok++;
        } else {
            st->non2xx++;
        }
        st->lat_us[st->n++] = t1 - t0;
    }

    hc_close(&c);
    free(c.buf);
    return 0;
}


static int
hc_ws_frame_send(int fd, const char *payload, size_t n)
{
    size_t         i, h;
    unsigned char  frame[16 + 65536];
    unsigned char  mask[4] = { 0x12, 0x34, 0x56, 0x78 };

    if (n > 65535) {
        return -1;
    }

    h = 0;
    frame[h++] = 0x81;                           /* FIN, text */
    if (n < 126) {
        frame[h++] = 0x80 | n;
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = n >> 8;
        frame[h++] = n & 0xff;
    }
    memcpy(frame + h, mask, 4);
    h += 4;
    for (i = 0; i < n; i++) {
        frame[h + i] = payload[i] ^ mask[i % 4];
    }

    return hc_write_all(fd, (char *) frame, h + n);
}


/* reads one unmasked server frame; returns its payload length or -1 */
static long
hc_ws_frame_recv(hc_conn_t *c)
{
    size_t         need, plen;
    unsigned char  *b;

    while (c->len < 2) {
        if (hc_fill(c) <= 0) {
            return -1;
        }
    }

    b = (unsigned char *) c->buf;
    plen = b[1] & 0x7f;
    need = 2;
    if (plen == 126) {
        need = 4;
    } else if (plen == 127) {
        return -1;
    }
    if (b[1] & 0x80) {
        need += 4;                               /* servers never mask */
    }

    while (c->len < need) {
        if (hc_fill(c) <= 0) {
            return -1;
        }
        b = (unsigned char *) c->buf;
    }
    if (plen == 126) {
        plen = (b[2] << 8) | b[3];
    }

    hc_consume(c, need);
    if (hc_skip(c, plen) != 0) {
        return -1;
    }
    return plen;
}


static int
hc_run_ws(hc_stats_t *st)
{
    int        n, keep, status;
    long       i, got, total;
    char       req[1024], *payload;
    double     t0, t1, deadline;
    hc_conn_t  c;

    c.fd = -1;
    c.len = 0;
    c.buf = malloc(HC_BUF);
    payload = malloc(conf.size + 1);
    if (c.buf == NULL || payload == NULL) {
        return -1;
    }
    memset(payload, 'x', conf.size);

    if (hc_connect(&c) != 0) {
        fprintf(stderr, "tnl-httpc: connect failed: %s\n", strerror(errno));
        st->errors++;
        return -1;
    }

    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n", conf.path, conf.host);

    if (hc_write_all(c.fd, req, n) != 0) {
        st->errors++;
        return -1;
    }

    status = hc_response(&c, &keep, 1);
    if (status != 101) {
        fprintf(stderr, "tnl-httpc: websocket handshake got %d\n", status);
        st->errors++;
        hc_close(&c);
        return -1;
    }

    total = conf.warmup + conf.count;
    deadline = hc_now_us() + conf.max_seconds * 1e6;

    for (i = 0; i < total && hc_now_us() < deadline; i++) {
        t0 = hc_now_us();
        if (hc_ws_frame_send(c.fd, payload, conf.size) != 0) {
            st->errors++;
            break;
        }
        got = hc_ws_frame_recv(&c);
        t1 = hc_now_us();
        if (got != conf.size) {
            st->errors++;
            break;
        }
        if (i >= conf.warmup) {
            st->ok++;
            st->lat_us[st->n++] = t1 - t0;
        }
    }

    hc_close(&c);
    free(c.buf);
    free(payload);
    return 0;
}


static int
hc_names_load(const char *path)
{
    int     n, cap;
    char    line[256];
    FILE   *f;

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "tnl-httpc: %s: %s\n", path, strerror(errno));
        return -1;
    }

    n = 0;
    cap = 1024;
    hc_names = malloc(cap * sizeof(char *));

    while (hc_names != NULL && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') {
            continue;
        }
        if (n == cap) {
            cap *= 2;
            hc_names = realloc(hc_names, cap * sizeof(char *));
            if (hc_names == NULL) {
                break;
            }
        }
        hc_names[n++] = strdup(line);
    }

    fclose(f);
    conf.names = n;
    return (hc_names != NULL && n > 0) ? 0 : -1;
}


static void
hc_usage(void)
{
    fprintf(stderr,
        "usage: tnl-httpc seq|multi|ws [--addr IP] [--port N] [--host H]\n"
        "         [--path P] [--count N] [--warmup N] [--size BYTES]\n"
        "         [--host-pattern FMT (--names N | --names-file F)]\n"
        "         [--timeout-ms MS]\n"
        "         [--max-seconds S]\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int         i;
    double      t0;
    hc_stats_t  st;

    if (argc < 2) {
        hc_usage();
    }
    conf.mode = argv[1];

    for (i = 2; i < argc; i++) {
        const char  *o = argv[i], *v = (i + 1 < argc) ? argv[i + 1] : NULL;

        if (v == NULL) {
            hc_usage();
        }
        i++;

        if (strcmp(o, "--addr") == 0) {
            conf.addr = v;
        } else if (strcmp(o, "--port") == 0) {
            conf.port = atoi(v);
        } else if (strcmp(o, "--host") == 0) {
            conf.host = v;
        } else if (strcmp(o, "--host-pattern") == 0) {
            conf.host_pattern = v;
        } else if (strcmp(o, "--names-file") == 0) {
            conf.names_file = v;
        } else if (strcmp(o, "--names") == 0) {
            conf.names = atoi(v);
        } else if (strcmp(o, "--path") == 0) {
            conf.path = v;
        } else if (strcmp(o, "--count") == 0) {
            conf.count = atol(v);
        } else if (strcmp(o, "--warmup") == 0) {
            conf.warmup = atol(v);
        } else if (strcmp(o, "--size") == 0) {
            conf.size = atoi(v);
        } else if (strcmp(o, "--timeout-ms") == 0) {
            conf.timeout_ms = atoi(v);
        } else if (strcmp(o, "--max-seconds") == 0) {
            conf.max_seconds = atoi(v);
        } else {
            hc_usage();
        }
    }

    if (conf.names_file != NULL && hc_names_load(conf.names_file) != 0) {
        return 1;
    }
    if (strcmp(conf.mode, "multi") == 0
        && (conf.host_pattern == NULL || conf.names < 1))
    {
        hc_usage();
    }
    if (conf.count < 1 || conf.size < 1 || conf.size > 65535) {
        hc_usage();
    }

    memset(&st, 0, sizeof(st));
    st.lat_us = calloc(conf.count, sizeof(double));
    if (st.lat_us == NULL) {
        return 1;
    }
    srandom(getpid() ^ time(NULL));

    t0 = hc_now_us();

    if (strcmp(conf.mode, "ws") == 0) {
        hc_run_ws(&st);
    } else if (strcmp(conf.mode, "seq") == 0
               || strcmp(conf.mode, "multi") == 0)
    {
        hc_run_http(&st);
    } else {
        hc_usage();
    }

    hc_report(&st, hc_now_us() - t0);
    return st.n > 0 ? 0 : 1;
}
