/*
 * HTTP/1.x framing observer (see httplog.h).  One state machine per
 * direction, driven by tnl_httplog_feed; requests and responses differ
 * only in their start lines, in what the end of their headers means and
 * in what the end of a message does.  Lines are collected in the
 * direction's fixed buffer; bodies are skipped by count.
 *
 * Request bytes are counted to the request whose message they belong to
 * (its queue entry), response bytes to the response being parsed, so a
 * record's "up" and "down" are exact even with pipelining.  It never
 * guesses: anything it cannot follow makes it give up, and the bytes not
 * yet reported become one "raw" record at close.
 */

#include <string.h>

#include "httplog.h"


#define tnl_httplog_entry(h, seq)  (&(h)->q[(seq) % TNL_HTTPLOG_PENDING])


static void tnl_httplog_feed(tnl_httplog_t *h, tnl_httplog_dir_t *d,
    const char *p, size_t len, uint64_t now);


void
tnl_httplog_init(tnl_httplog_t *h, tnl_httplog_handler_pt handler,
    void *data)
{
    memset(h, 0, sizeof(tnl_httplog_t));

    h->req.content_length = -1;
    h->resp.content_length = -1;
    h->handler = handler;
    h->data = data;
}


void
tnl_httplog_request(tnl_httplog_t *h, const char *p, size_t len,
    uint64_t now_ms)
{
    if (h->closed || len == 0) {
        return;
    }

    h->up_total += len;

    if (!h->marked) {
        h->marked = 1;
        h->mark_ms = now_ms;
    }

    tnl_httplog_feed(h, &h->req, p, len, now_ms);
}


void
tnl_httplog_response(tnl_httplog_t *h, const char *p, size_t len,
    uint64_t now_ms)
{
    if (h->closed || len == 0) {
        return;
    }

    h->down_total += len;

    if (!h->marked) {
        h->marked = 1;
        h->mark_ms = now_ms;
    }

    tnl_httplog_feed(h, &h->resp, p, len, now_ms);
}


/* helpers */

static int
tnl_httplog_queued(tnl_httplog_t *h, uint32_t seq)
{
    return (uint32_t) (seq - h->q_head) < (uint32_t) (h->q_tail - h->q_head);
}


static int
tnl_httplog_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


static int
tnl_httplog_is_digit(char c)
{
    return c >= '0' && c <= '9';
}


/* case-insensitive: does the header name (n, len) equal lower-case want */
static int
tnl_httplog_name_is(const char *n, size_t len, const char *want)
{
    size_t  i;
    char    c;

    if (len != strlen(want)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = n[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');
        }
        if (c != want[i]) {
            return 0;
        }
    }

    return 1;
}


/* the request target as shown: printable ASCII only, cut with "..." */
static void
tnl_httplog_copy_path(char *dst, const char *src, size_t len, int cut)
{
    size_t         i, n;
    unsigned char  c;

    n = len < TNL_HTTPLOG_PATH_MAX ? len : TNL_HTTPLOG_PATH_MAX;

    for (i = 0; i < n; i++) {
        c = (unsigned char) src[i];
        dst[i] = (c > 0x20 && c < 0x7f) ? (char) c : '?';
    }

    if (cut || len > TNL_HTTPLOG_PATH_MAX) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }

    dst[n] = '\0';
}


static void
tnl_httplog_give_up(tnl_httplog_t *h)
{
    h->gave_up = 1;
}


static void
tnl_httplog_emit(tnl_httplog_t *h, tnl_httplog_record_t *rec)
{
    h->up_reported += rec->up;
    h->down_reported += rec->down;
    h->marked = 0;

    if (h->handler != NULL) {
        h->handler(h->data, rec);
    }
}


/* reports the request at the head of the queue and drops it */
static void
tnl_httplog_report_head(tnl_httplog_t *h, tnl_httplog_kind_e kind,
    uint64_t now)
{
    tnl_httplog_req_t     *e;
    tnl_httplog_record_t   rec;

    e = tnl_httplog_entry(h, h->q_head);

    rec.kind = kind;
    rec.method = e->method;
    rec.path = e->path;
    rec.upgrade = "";
    rec.status = h->status;
    rec.body = h->body;
    rec.up = e->up;
    rec.down = h->resp_bytes;
    rec.ms = now >= e->start_ms ? now - e->start_ms : 0;

    if (kind == TNL_HTTPLOG_UPGRADED) {
        rec.upgrade = e->connect ? "tunnel"
                      : (h->upgrade[0] != '\0' ? h->upgrade : "upgrade");
    }

    if (h->req_entry && h->req_seq == h->q_head) {
        h->req_entry = 0;        /* its later bytes go unattributed */
    }

    h->q_head++;

    tnl_httplog_emit(h, &rec);     /* rec points into h: reset after */

    h->status = 0;
    h->resp_bytes = 0;
    h->body = 0;
    h->upgrade[0] = '\0';
}


/* what is left after giving up (or a stream that never was HTTP) */
static int
tnl_httplog_report_raw(tnl_httplog_t *h, uint64_t now)
{
    tnl_httplog_req_t     *e;
    tnl_httplog_record_t   rec;
    uint64_t               start;

    rec.kind = TNL_HTTPLOG_RAW;
    rec.method = "";
    rec.path = "";
    rec.upgrade = "";
    rec.status = h->status;
    rec.body = 0;
    rec.up = h->up_total - h->up_reported;
    rec.down = h->down_total - h->down_reported;

    if (rec.up == 0 && rec.down == 0) {
        return 0;
    }

    start = h->marked ? h->mark_ms : now;

    if (h->q_head != h->q_tail) {
        e = tnl_httplog_entry(h, h->q_head);
        rec.method = e->method;
        rec.path = e->path;
        start = e->start_ms;
    }

    rec.ms = now >= start ? now - start : 0;

    tnl_httplog_emit(h, &rec);

    return 1;
}


/* messages: begin, end of headers, end */

static void
tnl_httplog_headers_begin(tnl_httplog_dir_t *d)
{
    d->state = TNL_HTTPLOG_HEADERS;
    d->content_length = -1;
    d->chunked = 0;
    d->te_other = 0;
    d->left = 0;
}


static void
tnl_httplog_request_done(tnl_httplog_t *h)
{
    tnl_httplog_req_t  *e;

    h->req_started = 0;
    h->req_pre = 0;

    if (h->req_entry && tnl_httplog_queued(h, h->req_seq)) {
        e = tnl_httplog_entry(h, h->req_seq);

        if (e->upgrade || e->connect) {
            /* what follows may not be HTTP: wait for the answer */
            h->req.state = TNL_HTTPLOG_WAIT;
            h->wait_bytes = 0;
            return;
        }
    }

    h->req_entry = 0;
    h->req.state = TNL_HTTPLOG_START;
}


static void
tnl_httplog_response_done(tnl_httplog_t *h, uint64_t now)
{
    uint32_t  seq;

    seq = h->q_head;

    tnl_httplog_report_head(h, TNL_HTTPLOG_DONE, now);

    h->resp.state = TNL_HTTPLOG_START;

    if (h->req.state == TNL_HTTPLOG_WAIT && h->req_seq == seq) {
        /* the upgrade was declined: HTTP goes on, if nothing was missed */
        if (h->wait_bytes > 0) {
            tnl_httplog_give_up(h);
            return;
        }

        h->req.state = TNL_HTTPLOG_START;
    }
}


static void
tnl_httplog_message_done(tnl_httplog_t *h, tnl_httplog_dir_t *d,
    uint64_t now)
{
    if (d == &h->req) {
        tnl_httplog_request_done(h);

    } else {
        tnl_httplog_response_done(h, now);
    }
}


static void
tnl_httplog_request_headers_done(tnl_httplog_t *h)
{
    tnl_httplog_dir_t  *d = &h->req;

    if (d->chunked) {
        d->state = TNL_HTTPLOG_CHUNK_SIZE;

    } else if (d->te_other) {
        tnl_httplog_give_up(h);          /* unframed request body */

    } else if (d->content_length > 0) {
        d->state = TNL_HTTPLOG_BODY;
        d->left = (uint64_t) d->content_length;

    } else {
        tnl_httplog_request_done(h);
    }
}


static void
tnl_httplog_tunnel(tnl_httplog_t *h)
{
    h->tunnel = 1;
    h->req.state = TNL_HTTPLOG_TUNNEL;
    h->resp.state = TNL_HTTPLOG_TUNNEL;

    /* every later request byte belongs to the upgraded exchange */
    h->req_entry = 1;
    h->req_seq = h->q_head;
}


static void
tnl_httplog_response_headers_done(tnl_httplog_t *h, uint64_t now)
{
    tnl_httplog_dir_t  *d = &h->resp;
    tnl_httplog_req_t  *e;

    e = tnl_httplog_entry(h, h->q_head);

    if (h->status == 101) {
        if (!e->upgrade) {
            tnl_httplog_give_up(h);
            return;
        }

        tnl_httplog_tunnel(h);
        return;
    }

    if (h->status < 200) {
        d->state = TNL_HTTPLOG_START;    /* interim: 100 Continue, 103 */
        return;
    }

    if (e->connect && h->status < 300) {
        tnl_httplog_tunnel(h);
        return;
    }

    if (e->head || h->status == 204 || h->status == 304) {
        tnl_httplog_response_done(h, now);

    } else if (d->chunked) {
        d->state = TNL_HTTPLOG_CHUNK_SIZE;

    } else if (d->te_other || d->content_length < 0) {
        d->state = TNL_HTTPLOG_EOF_BODY;

    } else if (d->content_length == 0) {
        tnl_httplog_response_done(h, now);

    } else {
        d->state = TNL_HTTPLOG_BODY;
        d->left = (uint64_t) d->content_length;
    }
}


/* lines */

static void
tnl_httplog_request_line(tnl_httplog_t *h, uint64_t now)
{
    tnl_httplog_dir_t  *d = &h->req;
    tnl_httplog_req_t  *e;
    const char         *l, *end, *m, *t, *te;
    size_t              mlen;

    l = d->line;
    end = l + d->line_len;

    for (m = l; m < end && tnl_httplog_tchar((unsigned char) *m); m++) {
        /* void */
    }

    mlen = (size_t) (m - l);

    if (mlen == 0 || mlen > TNL_HTTPLOG_METHOD_MAX || m == end || *m != ' ')
    {
        tnl_httplog_give_up(h);
        return;
    }

    t = m + 1;

    for (te = t; te < end && *te != ' '; te++) {
        /* void */
    }

    if (te == t) {
        tnl_httplog_give_up(h);
        return;
    }

    /* " HTTP/1.x" ends the line, unless the line was too long to see it */

    if (!d->line_over
        && (end - te != 9 || memcmp(te, " HTTP/1.", 8) != 0
            || !tnl_httplog_is_digit(te[8])))
    {
        tnl_httplog_give_up(h);
        return;
    }

    if (h->q_tail - h->q_head == TNL_HTTPLOG_PENDING) {
        tnl_httplog_give_up(h);          /* deeper pipelining than we follow */
        return;
    }

    e = tnl_httplog_entry(h, h->q_tail);

    memcpy(e->method, l, mlen);
    e->method[mlen] = '\0';
    tnl_httplog_copy_path(e->path, t, (size_t) (te - t),
                          d->line_over && te == end);

    e->start_ms = h->req_started ? h->req_start_ms : now;
    e->up = h->req_pre;
    e->head = (mlen == 4 && memcmp(l, "HEAD", 4) == 0);
    e->connect = (mlen == 7 && memcmp(l, "CONNECT", 7) == 0);
    e->upgrade = 0;

    h->req_pre = 0;
    h->req_seq = h->q_tail++;
    h->req_entry = 1;

    tnl_httplog_headers_begin(d);
}


static void
tnl_httplog_status_line(tnl_httplog_t *h)
{
    tnl_httplog_dir_t  *d = &h->resp;
    int                 status;
    const char         *l = d->line;
    size_t              len = d->line_len;

    /* "HTTP/1.x SSS" then a space and a reason, or nothing */

    if (len < 12 || memcmp(l, "HTTP/1.", 7) != 0
        || !tnl_httplog_is_digit(l[7]) || l[8] != ' '
        || !tnl_httplog_is_digit(l[9]) || !tnl_httplog_is_digit(l[10])
        || !tnl_httplog_is_digit(l[11]) || (len > 12 && l[12] != ' '))
    {
        tnl_httplog_give_up(h);
        return;
    }

    status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');

    if (status < 100 || status > 599) {
        /* not kept: the raw record at close would show it (t/fuzz) */
        tnl_httplog_give_up(h);
        return;
    }

    h->status = status;

    h->upgrade[0] = '\0';

    tnl_httplog_headers_begin(d);
}


static void
tnl_httplog_header(tnl_httplog_t *h, tnl_httplog_dir_t *d)
{
    const char  *l, *colon, *v, *ve, *tok;
    size_t       len, i;
    int64_t      cl;
    char         c;

    l = d->line;
    len = d->line_len;

    if (l[0] == ' ' || l[0] == '\t') {
        return;              /* obs-fold: continues a header we ignore */
    }

    colon = memchr(l, ':', len);
    if (colon == NULL || colon == l) {
        tnl_httplog_give_up(h);
        return;
    }

    v = colon + 1;
    ve = l + len;

    while (v < ve && (*v == ' ' || *v == '\t')) {
        v++;
    }

    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
        ve--;
    }

    len = (size_t) (colon - l);

    if (tnl_httplog_name_is(l, len, "content-length")) {

        if (ve == v || ve - v > 18) {
            tnl_httplog_give_up(h);
            return;
        }

        cl = 0;
        for (tok = v; tok < ve; tok++) {
            if (!tnl_httplog_is_digit(*tok)) {
                tnl_httplog_give_up(h);
                return;
            }
            cl = cl * 10 + (*tok - '0');
        }

        if (d->content_length >= 0 && d->content_length != cl) {
            tnl_httplog_give_up(h);      /* smuggling-shaped: not ours */
            return;
        }

        d->content_length = cl;
        return;
    }

    if (tnl_httplog_name_is(l, len, "transfer-encoding")) {

        /* the last coding decides */

        for (tok = ve; tok > v && tok[-1] != ','; tok--) {
            /* void */
        }

        while (tok < ve && (*tok == ' ' || *tok == '\t')) {
            tok++;
        }

        d->chunked = tnl_httplog_name_is(tok, (size_t) (ve - tok), "chunked");
        d->te_other = !d->chunked;
        return;
    }

    if (tnl_httplog_name_is(l, len, "upgrade")) {

        if (d == &h->req) {
            if (h->req_entry) {
                tnl_httplog_entry(h, h->req_seq)->upgrade = 1;
            }
            return;
        }

        /* the protocol shown: first token, lower case */

        for (i = 0; v + i < ve && i < TNL_HTTPLOG_TOKEN_MAX; i++) {
            c = v[i];
            if (c == '/' || c == ',' || !tnl_httplog_tchar((unsigned char) c))
            {
                break;
            }
            if (c >= 'A' && c <= 'Z') {
                c = (char) (c - 'A' + 'a');
            }
            h->upgrade[i] = c;
        }

        h->upgrade[i] = '\0';
    }
}


static void
tnl_httplog_chunk_size(tnl_httplog_t *h, tnl_httplog_dir_t *d)
{
    const char  *p, *end;
    uint64_t     size;
    int          digits, x;

    p = d->line;
    end = p + d->line_len;
    size = 0;
    digits = 0;

    for ( /* void */ ; p < end; p++) {
        if (*p >= '0' && *p <= '9') {
            x = *p - '0';
        } else if (*p >= 'a' && *p <= 'f') {
            x = *p - 'a' + 10;
        } else if (*p >= 'A' && *p <= 'F') {
            x = *p - 'A' + 10;
        } else {
            break;
        }

        if (++digits > 15) {
            tnl_httplog_give_up(h);
            return;
        }

        size = size * 16 + (uint64_t) x;
    }

    /* then nothing, blanks or ";" chunk extensions */

    if (digits == 0 || (p < end && *p != ';' && *p != ' ' && *p != '\t')) {
        tnl_httplog_give_up(h);
        return;
    }

    if (size == 0) {
        d->state = TNL_HTTPLOG_TRAILERS;
        return;
    }

    d->state = TNL_HTTPLOG_CHUNK_DATA;
    d->left = size;
}


/* a whole line (or, if too long, as much of it as fits) is in d->line */
static void
tnl_httplog_line_done(tnl_httplog_t *h, tnl_httplog_dir_t *d, uint64_t now)
{
    int  empty;

    empty = (d->line_len == 0 && !d->line_over);

    switch (d->state) {

    case TNL_HTTPLOG_START:
        if (empty) {
            if (d == &h->req) {
                h->req_started = 0;     /* stray CRLF between messages */
            }
            return;
        }

        if (d == &h->req) {
            tnl_httplog_request_line(h, now);
        } else {
            tnl_httplog_status_line(h);
        }
        return;

    case TNL_HTTPLOG_HEADERS:
        if (empty) {
            if (d == &h->req) {
                tnl_httplog_request_headers_done(h);
            } else {
                tnl_httplog_response_headers_done(h, now);
            }
            return;
        }

        if (!d->line_over) {
            tnl_httplog_header(h, d);   /* long lines: never ours */
        }
        return;

    case TNL_HTTPLOG_CHUNK_SIZE:
        if (d->line_over) {
            tnl_httplog_give_up(h);
            return;
        }
        tnl_httplog_chunk_size(h, d);
        return;

    case TNL_HTTPLOG_CHUNK_END:
        if (!empty) {
            tnl_httplog_give_up(h);
            return;
        }
        d->state = TNL_HTTPLOG_CHUNK_SIZE;
        return;

    case TNL_HTTPLOG_TRAILERS:
        if (empty) {
            tnl_httplog_message_done(h, d, now);
        }
        return;

    default:
        return;
    }
}


/* bytes of the message being parsed in direction d */
static void
tnl_httplog_count(tnl_httplog_t *h, tnl_httplog_dir_t *d, size_t n,
    int body, uint64_t now)
{
    if (d == &h->resp) {
        h->resp_bytes += n;
        if (body) {
            h->body += n;
        }
        return;
    }

    if (h->req_entry && tnl_httplog_queued(h, h->req_seq)) {
        tnl_httplog_entry(h, h->req_seq)->up += n;
        return;
    }

    if (d->state == TNL_HTTPLOG_START && !h->req_started) {
        h->req_started = 1;
        h->req_start_ms = now;
    }

    h->req_pre += n;
}


/* the line states: returns the bytes consumed */
static size_t
tnl_httplog_line(tnl_httplog_t *h, tnl_httplog_dir_t *d, const char *p,
    size_t len, uint64_t now)
{
    const char  *lf;
    size_t       n, room, used;

    lf = memchr(p, '\n', len);
    n = (lf != NULL) ? (size_t) (lf - p) : len;
    used = (lf != NULL) ? n + 1 : len;

    if (!d->skipping) {
        room = TNL_HTTPLOG_LINE_MAX - d->line_len;
        if (n > room) {
            n = room;
            d->line_over = 1;
        }
        memcpy(d->line + d->line_len, p, n);
        d->line_len += n;
    }

    tnl_httplog_count(h, d, used, 0, now);

    if (lf == NULL) {
        if (d->line_over && !d->skipping) {
            /* what we hold is all we will see of it: decide now */
            d->skipping = 1;
            tnl_httplog_line_done(h, d, now);
        }
        return used;
    }

    if (!d->skipping) {
        if (!d->line_over && d->line_len > 0
            && d->line[d->line_len - 1] == '\r')
        {
            d->line_len--;
        }
        tnl_httplog_line_done(h, d, now);
    }

    d->line_len = 0;
    d->line_over = 0;
    d->skipping = 0;

    return used;
}


static void
tnl_httplog_feed(tnl_httplog_t *h, tnl_httplog_dir_t *d, const char *p,
    size_t len, uint64_t now)
{
    size_t  n;

    while (len > 0 && !h->gave_up) {

        switch (d->state) {

        case TNL_HTTPLOG_BODY:
        case TNL_HTTPLOG_CHUNK_DATA:
            n = len < d->left ? len : (size_t) d->left;
            d->left -= n;
            tnl_httplog_count(h, d, n, 1, now);

            if (d->left == 0) {
                if (d->state == TNL_HTTPLOG_CHUNK_DATA) {
                    d->state = TNL_HTTPLOG_CHUNK_END;
                } else {
                    tnl_httplog_message_done(h, d, now);
                }
            }
            break;

        case TNL_HTTPLOG_EOF_BODY:
            n = len;
            tnl_httplog_count(h, d, n, 1, now);
            break;

        case TNL_HTTPLOG_WAIT:
            n = len;
            h->wait_bytes += n;
            tnl_httplog_count(h, d, n, 0, now);
            break;

        case TNL_HTTPLOG_TUNNEL:
            n = len;
            tnl_httplog_count(h, d, n, 0, now);
            break;

        default:
            if (d == &h->resp && d->state == TNL_HTTPLOG_START
                && h->q_head == h->q_tail)
            {
                tnl_httplog_give_up(h);  /* an answer nobody asked for */
                return;
            }

            n = tnl_httplog_line(h, d, p, len, now);
            break;
        }

        p += n;
        len -= n;
    }
}


int
tnl_httplog_close(tnl_httplog_t *h, uint64_t now_ms)
{
    int  n;

    if (h->closed) {
        return 0;
    }

    h->closed = 1;

    if (h->gave_up) {
        return tnl_httplog_report_raw(h, now_ms);
    }

    if (h->tunnel) {
        tnl_httplog_report_head(h, TNL_HTTPLOG_UPGRADED, now_ms);
        return 1;
    }

    n = 0;

    if (h->resp.state == TNL_HTTPLOG_EOF_BODY) {
        tnl_httplog_report_head(h, TNL_HTTPLOG_DONE, now_ms);
        n++;
    }

    while (h->q_head != h->q_tail) {
        tnl_httplog_report_head(h, TNL_HTTPLOG_INCOMPLETE, now_ms);
        n++;
    }

    if (n == 0 && h->req_started) {
        n = tnl_httplog_report_raw(h, now_ms);   /* a cut start line */
    }

    return n;
}
