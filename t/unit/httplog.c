/*
 * Unit tests for the HTTP/1.x framing observer (sshd/httplog.c): an
 * exchange is a list of steps (bytes one way or the other, at a time);
 * each is fed whole, one byte at a time and in other chunk sizes, and the
 * records reported must be the same, exactly.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httplog.h"
#include "tap.h"


typedef struct {
    char         dir;       /* '>' request (nginx -> client), '<' response,
                               'c' close */
    uint64_t     t;
    const char  *s;
    size_t       len;       /* 0: strlen(s) */
} step_t;


static char    got[8192];
static size_t  got_len;


static void
record(void *data, const tnl_httplog_record_t *r)
{
    static const char  *kinds[] = { "done", "incomplete", "upgraded", "raw" };
    int                 n;

    (void) data;

    n = snprintf(got + got_len, sizeof(got) - got_len,
                 "%s%s %s %s %d%s%s body=%llu up=%llu down=%llu ms=%llu",
                 got_len ? " | " : "", kinds[r->kind],
                 r->method[0] ? r->method : "-", r->path[0] ? r->path : "-",
                 r->status, r->upgrade[0] ? " " : "", r->upgrade,
                 (unsigned long long) r->body, (unsigned long long) r->up,
                 (unsigned long long) r->down, (unsigned long long) r->ms);

    if (n > 0 && (size_t) n < sizeof(got) - got_len) {
        got_len += (size_t) n;
    }
}


static size_t
step_len(const step_t *st)
{
    return st->len ? st->len : strlen(st->s);
}


/*
 * Feeds the steps in pieces of at most chunk bytes (0: whole), or, with
 * split > 0, every step cut once at byte split.  Returns the records.
 */
static const char *
run(const step_t *steps, size_t chunk, size_t split)
{
    tnl_httplog_t   h;
    const step_t   *st;
    size_t          len, off, n;

    got_len = 0;
    got[0] = '\0';

    tnl_httplog_init(&h, record, NULL);

    for (st = steps; st->dir != '\0'; st++) {

        if (st->dir == 'c') {
            (void) tnl_httplog_close(&h, st->t);
            continue;
        }

        len = step_len(st);

        for (off = 0; off < len; off += n) {
            n = len - off;

            if (chunk > 0 && n > chunk) {
                n = chunk;
            }

            if (split > 0 && off < split && off + n > split) {
                n = split - off;
            }

            if (st->dir == '>') {
                tnl_httplog_request(&h, st->s + off, n, st->t);
            } else {
                tnl_httplog_response(&h, st->s + off, n, st->t);
            }
        }
    }

    return got;
}


/* the same records whole, byte by byte, in 7- and 64-byte pieces */
static void
check(const char *what, const step_t *steps, const char *want)
{
    static const size_t  chunks[] = { 0, 1, 7, 64 };
    char                 name[300];
    size_t               i;

    for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        snprintf(name, sizeof(name), "%s (pieces of %zu)", what, chunks[i]);
        tap_is_str(run(steps, chunks[i], 0), want, name);
    }
}


static char *
fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *
fmt(const char *f, ...)
{
    static char  bufs[8][2048];
    static int   next;
    char        *b;
    va_list      ap;

    b = bufs[next++ % 8];
    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);

    return b;
}


#define L(s)  (sizeof(s) - 1)


static void
test_keepalive(void)
{
#define REQ1  "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
#define RSP1  "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"
#define REQ2  "GET /b?q=1 HTTP/1.1\r\nHost: x\r\nConnection: \r\n\r\n"
#define RSP2  "HTTP/1.1 200 OK\r\ncontent-length:10\r\n\r\n0123456789"

    step_t  steps[] = {
        { '>', 100, REQ1, 0 }, { '<', 110, RSP1, 0 },
        { '>', 200, REQ2, 0 }, { '<', 230, RSP2, 0 },
        { 'c', 500, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("two requests on one kept-alive stream, bodies both ways", steps,
          fmt("done POST /a 201 body=3 up=%zu down=%zu ms=10"
              " | done GET /b?q=1 200 body=10 up=%zu down=%zu ms=30",
              L(REQ1), L(RSP1), L(REQ2), L(RSP2)));

    /* the first record is out as soon as its last byte is */
    step_t  part[] = {
        { '>', 100, REQ1, 0 }, { '<', 110, RSP1, 0 }, { 0, 0, NULL, 0 }
    };

    tap_is_str(run(part, 0, 0),
               fmt("done POST /a 201 body=3 up=%zu down=%zu ms=10",
                   L(REQ1), L(RSP1)),
               "a response is reported when complete, not at close");
}


static void
test_chunked(void)
{
#define CREQ  "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" \
              "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
#define CRSP  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n" \
              "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"
#define NREQ  "GET /next HTTP/1.1\r\n\r\n"
#define NRSP  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    step_t  steps[] = {
        { '>', 10, CREQ, 0 }, { '<', 15, CRSP, 0 },
        { '>', 20, NREQ, 0 }, { '<', 21, NRSP, 0 },
        { 'c', 99, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("chunked request and response, then the next request", steps,
          fmt("done POST /up 200 body=13 up=%zu down=%zu ms=5"
              " | done GET /next 200 body=2 up=%zu down=%zu ms=1",
              L(CREQ), L(CRSP), L(NREQ), L(NRSP)));
}


static void
test_no_body(void)
{
#define HREQ  "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
#define HRSP  "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
#define AREQ  "GET /after HTTP/1.1\r\n\r\n"
#define ARSP  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define DREQ  "DELETE /x HTTP/1.1\r\n\r\n"
#define DRSP  "HTTP/1.1 204 No Content\r\n\r\n"
#define MREQ  "GET /cached HTTP/1.1\r\nIf-None-Match: \"a\"\r\n\r\n"
#define MRSP  "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n" \
              "ETag: \"a\"\r\n\r\n"

    step_t  steps[] = {
        { '>', 1, HREQ, 0 }, { '<', 2, HRSP, 0 },
        { '>', 3, AREQ, 0 }, { '<', 4, ARSP, 0 },
        { '>', 5, DREQ, 0 }, { '<', 6, DRSP, 0 },
        { '>', 7, AREQ, 0 }, { '<', 8, ARSP, 0 },
        { '>', 9, MREQ, 0 }, { '<', 10, MRSP, 0 },
        { '>', 11, AREQ, 0 }, { '<', 12, ARSP, 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("HEAD, 204 and 304 have no body", steps,
          fmt("done HEAD /h 200 body=0 up=%zu down=%zu ms=1"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1"
              " | done DELETE /x 204 body=0 up=%zu down=%zu ms=1"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1"
              " | done GET /cached 304 body=0 up=%zu down=%zu ms=1"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1",
              L(HREQ), L(HRSP), L(AREQ), L(ARSP), L(DREQ), L(DRSP),
              L(AREQ), L(ARSP), L(MREQ), L(MRSP), L(AREQ), L(ARSP)));
}


static void
test_continue(void)
{
#define EREQ  "PUT /file HTTP/1.1\r\nExpect: 100-continue\r\n" \
              "Content-Length: 4\r\n\r\n"
#define ECON  "HTTP/1.1 100 Continue\r\n\r\n"
#define EBODY "data"
#define EHINT "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
#define ERSP  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    step_t  steps[] = {
        { '>', 100, EREQ, 0 }, { '<', 101, ECON, 0 },
        { '>', 102, EBODY, 0 }, { '<', 103, EHINT, 0 },
        { '<', 140, ERSP, 0 }, { '>', 150, AREQ, 0 },
        { '<', 151, ARSP, 0 }, { 'c', 200, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("100-continue (and 103) then 200: one record", steps,
          fmt("done PUT /file 200 body=2 up=%zu down=%zu ms=40"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1",
              L(EREQ) + L(EBODY), L(ECON) + L(EHINT) + L(ERSP),
              L(AREQ), L(ARSP)));
}


static void
test_pipelined(void)
{
#define PREQ  "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" \
              "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" \
              "HEAD /3 HTTP/1.1\r\n\r\n" \
              "POST /4 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" \
              "1\r\nz\r\n0\r\n\r\n"
#define PRSP  "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1" \
              "HTTP/1.1 100 Continue\r\n\r\n" \
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" \
              "2\r\n22\r\n0\r\n\r\n" \
              "HTTP/1.1 200 OK\r\nContent-Length: 33\r\n\r\n" \
              "HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\n4444"

    step_t       steps[] = {
        { '>', 7, PREQ, 0 }, { '<', 9, PRSP, 0 }, { 'c', 10, "", 0 },
        { 0, 0, NULL, 0 }
    };
    const char  *want;
    char         name[100];
    size_t       i, bad;

    want = fmt("done GET /1 200 body=1 up=28 down=39 ms=2"
               " | done POST /2 200 body=2 up=42 down=84 ms=2"
               " | done HEAD /3 200 body=0 up=20 down=39 ms=2"
               " | done POST /4 500 body=4 up=59 down=44 ms=2");

    check("four pipelined requests", steps, want);

    /* every cut position of both directions */

    bad = 0;
    for (i = 1; i < L(PRSP); i++) {
        if (strcmp(run(steps, 0, i), want) != 0) {
            if (bad++ == 0) {
                printf("# cut at %zu: %s\n", i, got);
            }
        }
    }

    snprintf(name, sizeof(name), "pipelined: same records whatever the cut "
             "(%zu positions)", L(PRSP) - 1);
    tap_ok(bad == 0, name);

    /* deeper than we follow: we give up, quietly and counted */

    step_t  deep[] = {
        { '>', 1, AREQ AREQ AREQ AREQ AREQ, 0 },
        { '<', 2, ARSP ARSP ARSP ARSP ARSP, 0 },
        { 'c', 3, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("five pipelined requests: bytes only", deep,
          fmt("raw GET /after 0 body=0 up=%zu down=%zu ms=2",
              5 * L(AREQ), 5 * L(ARSP)));
}


static void
test_upgrade(void)
{
#define WREQ  "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" \
              "Connection: upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
#define WRSP  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n" \
              "Connection: Upgrade\r\n\r\n"
#define WSRV  "\x81\x05hello"
#define WCLI  "\x81\x85\x01\x02\x03\x04ig`ho\r\n\r\nGET / HTTP/1.1\r\n\r\n"

    step_t  steps[] = {
        { '>', 1000, WREQ, 0 }, { '<', 1001, WRSP WSRV, 0 },
        { '>', 1500, WCLI, 0 }, { '<', 2000, WSRV, 0 },
        { 'c', 6000, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("101 websocket: one record at close", steps,
          fmt("upgraded GET /ws 101 websocket body=0 up=%zu down=%zu "
              "ms=5000", L(WREQ) + L(WCLI), L(WRSP) + 2 * L(WSRV)));

    step_t  early[] = {
        { '>', 1000, WREQ, 0 }, { '<', 1001, WRSP WSRV, 0 },
        { 0, 0, NULL, 0 }
    };

    tap_is_str(run(early, 1, 0), "", "101: nothing reported before close");

    /* declined: HTTP goes on */

    step_t  declined[] = {
        { '>', 1, WREQ, 0 }, { '<', 2, ARSP, 0 },
        { '>', 3, AREQ, 0 }, { '<', 4, ARSP, 0 },
        { 'c', 5, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("upgrade declined with 200: the next request is followed",
          declined,
          fmt("done GET /ws 200 body=2 up=%zu down=%zu ms=1"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1",
              L(WREQ), L(ARSP), L(AREQ), L(ARSP)));

#define TREQ  "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"
#define TRSP  "HTTP/1.1 200 Connection Established\r\n\r\n"
#define TLS   "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"

    step_t  tunnel[] = {
        { '>', 10, TREQ, 0 }, { '<', 20, TRSP, 0 },
        { '>', 30, TLS, 10 }, { '<', 40, TLS, 10 },
        { 'c', 50, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("CONNECT 200: a tunnel, one record at close", tunnel,
          fmt("upgraded CONNECT example.com:443 200 tunnel body=0 up=%zu "
              "down=%zu ms=40", L(TREQ) + 10, L(TRSP) + 10));
}


static void
test_close_delimited(void)
{
#define SREQ  "GET /stream HTTP/1.1\r\n\r\n"
#define SRSP  "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"

    step_t  steps[] = {
        { '>', 10, SREQ, 0 }, { '<', 20, SRSP, 0 },
        { '<', 30, "abcdef", 0 }, { '<', 40, "ghij", 0 },
        { 'c', 45, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("close-delimited response: complete at close", steps,
          fmt("done GET /stream 200 body=10 up=%zu down=%zu ms=35",
              L(SREQ), L(SRSP) + 10));

    steps[4].dir = '\0';
    tap_is_str(run(steps, 0, 0), "",
               "close-delimited: nothing reported before close");
}


static void
test_incomplete(void)
{
    step_t  cut[] = {
        { '>', 10, SREQ, 0 },
        { '<', 20, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", 0 },
        { 'c', 70, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("stream closed mid-body", cut,
          fmt("incomplete GET /stream 200 body=3 up=%zu down=%zu ms=60",
              L(SREQ), L("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                       + 3));

    step_t  none[] = {
        { '>', 10, SREQ, 0 }, { 'c', 30010, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("no response at all", none,
          fmt("incomplete GET /stream 0 body=0 up=%zu down=0 ms=30000",
              L(SREQ)));

    step_t  empty[] = { { 'c', 10, "", 0 }, { 0, 0, NULL, 0 } };

    check("no bytes at all: no record", empty, "");

    step_t  half[] = {
        { '>', 10, "GET /some", 0 }, { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("cut request line: bytes only", half,
          "raw - - 0 body=0 up=9 down=0 ms=10");
}


static void
test_garbage(void)
{
    static char  tls[3000];
    size_t       i;

    memcpy(tls, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    for (i = 11; i < sizeof(tls); i++) {
        tls[i] = (char) ((i * 7919) & 0xff);
    }

    step_t  bin[] = {
        { '>', 10, tls, sizeof(tls) }, { '<', 20, "\x15\x03\x01\x00\x02", 5 },
        { 'c', 30, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("binary: one line of bytes at close", bin,
          "raw - - 0 body=0 up=3000 down=5 ms=20");

    step_t  after[] = {
        { '>', 10, AREQ, 0 }, { '<', 11, ARSP, 0 },
        { '>', 20, "SSH-2.0-OpenSSH_9.2\r\n", 0 }, { '<', 25, "x", 0 },
        { 'c', 40, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("garbage after a good exchange", after,
          fmt("done GET /after 200 body=2 up=%zu down=%zu ms=1"
              " | raw - - 0 body=0 up=21 down=1 ms=20",
              L(AREQ), L(ARSP)));

    step_t  status800[] = {
        { '>', 10, "GET /ws HTTP/1.1\r\n\r\n", 0 },
        { '<', 12, "HTTP/1.1 800 Bad\r\n\r\n", 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    /* found by t/fuzz/httplog.c: the refused status was reported */
    check("a status out of 100-599 is not reported", status800,
          "raw GET /ws 0 body=0 up=20 down=20 ms=10");

    step_t  unasked[] = {
        { '<', 10, ARSP, 0 }, { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("a response nobody asked for", unasked,
          fmt("raw - - 0 body=0 up=0 down=%zu ms=10", L(ARSP)));

    step_t  h2[] = {
        { '>', 10, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("HTTP/2 preface: not followed", h2,
          "raw - - 0 body=0 up=24 down=0 ms=10");

    step_t  badchunk[] = {
        { '>', 10, AREQ, 0 },
        { '<', 11, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "zz\r\n", 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("a bad chunk size: bytes only, with the request", badchunk,
          fmt("raw GET /after 200 body=0 up=%zu down=%zu ms=10", L(AREQ),
              L("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "zz\r\n")));

    step_t  twocl[] = {
        { '>', 10, "POST /s HTTP/1.1\r\nContent-Length: 1\r\n"
                   "Content-Length: 2\r\n\r\nab", 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("conflicting Content-Length: bytes only", twocl,
          "raw POST /s 0 body=0 up=60 down=0 ms=10");
}


static void
test_long_lines(void)
{
    static char  req[6000], rsp[3000], want_path[200];
    size_t       n;
    int          k;

    /* a 3000-byte path: shown cut, followed all the same */

    n = (size_t) snprintf(req, sizeof(req), "GET /");
    for (k = 0; k < 3000; k++) {
        req[n++] = (char) ('a' + k % 26);
    }
    n += (size_t) snprintf(req + n, sizeof(req) - n,
                           " HTTP/1.1\r\nHost: x\r\n\r\n" AREQ);

    memcpy(want_path, req + 4, TNL_HTTPLOG_PATH_MAX);
    memcpy(want_path + TNL_HTTPLOG_PATH_MAX, "...", 4);

    step_t  longpath[] = {
        { '>', 10, req, n }, { '<', 11, ARSP ARSP, 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("a long path is cut with ...", longpath,
          fmt("done GET %s 200 body=2 up=%zu down=%zu ms=1"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1",
              want_path, n - L(AREQ), L(ARSP), L(AREQ), L(ARSP)));

    /* a 2000-byte header line is skipped, the framing after it is not */

    n = (size_t) snprintf(rsp, sizeof(rsp), "HTTP/1.1 200 OK\r\nX-Big: ");
    for (k = 0; k < 2000; k++) {
        rsp[n++] = 'x';
    }
    n += (size_t) snprintf(rsp + n, sizeof(rsp) - n,
                           "\r\nContent-Length: 4\r\n\r\nbody");

    step_t  bighdr[] = {
        { '>', 10, AREQ, 0 }, { '<', 11, rsp, n },
        { '>', 12, AREQ, 0 }, { '<', 13, ARSP, 0 },
        { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("a long header line is skipped", bighdr,
          fmt("done GET /after 200 body=4 up=%zu down=%zu ms=1"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1",
              L(AREQ), n, L(AREQ), L(ARSP)));

    /* control characters never reach a terminal */

    step_t  esc[] = {
        { '>', 10, "GET /a\x1b[31m\x7f\xc3\xa9 HTTP/1.1\r\n\r\n", 0 },
        { '<', 11, ARSP, 0 }, { 'c', 20, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("control and non-ASCII bytes in the path are replaced", esc,
          fmt("done GET /a?[31m??? 200 body=2 up=27 down=%zu ms=1",
              L(ARSP)));
}


static void
test_early_response(void)
{
    /* the app answers 413 before the body is all there */

    step_t  steps[] = {
        { '>', 10, "POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234",
          0 },
        { '<', 20, "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", 0 },
        { '>', 30, "56789", 0 },
        { '>', 40, AREQ, 0 }, { '<', 41, ARSP, 0 },
        { 'c', 50, "", 0 }, { 0, 0, NULL, 0 }
    };

    check("a response before the end of its request body", steps,
          fmt("done POST /big 413 body=0 up=47 down=45 ms=10"
              " | done GET /after 200 body=2 up=%zu down=%zu ms=1",
              L(AREQ), L(ARSP)));
}


int
main(void)
{
    test_keepalive();
    test_chunked();
    test_no_body();
    test_continue();
    test_pipelined();
    test_upgrade();
    test_close_delimited();
    test_incomplete();
    test_garbage();
    test_long_lines();
    test_early_response();

    return tap_done();
}
