/*
 * An HTTP/1.x framing observer for the per-request log lines of a stream:
 * it is fed copies of the bytes passing each way (requests: nginx ->
 * client, responses: client -> nginx) in chunks of any size, finds where
 * each request and each response starts and ends, and reports one record
 * per request: method, path, status, bytes, duration.
 *
 * It never alters, holds or delays the bytes it sees, never allocates,
 * and costs little per byte: it looks at start lines, headers and chunk
 * size lines only, and skips bodies by count.  Memory is fixed: one line
 * buffer per direction (header lines longer than that are skipped, not
 * buffered) and a few pipelined requests.
 *
 * What it does not do: validate HTTP (nginx does), decode bodies, keep
 * header values beyond the few that frame a message.  After a
 * "101 Switching Protocols" or a successful CONNECT it stops parsing and
 * reports that exchange once, at close.  On anything that is not HTTP, or
 * on framing it cannot follow, it gives up quietly and reports what is
 * left as one record of bytes and duration at close.
 *
 * Ownership: the caller owns the tnl_httplog_t (usually inside its
 * stream); a record and its strings are valid only during the handler
 * call.  The handler runs synchronously from the feed and close calls.
 */

#ifndef TNL_HTTPLOG_H
#define TNL_HTTPLOG_H

#include <stddef.h>
#include <stdint.h>


#define TNL_HTTPLOG_LINE_MAX     1024  /* start and header line buffer */
#define TNL_HTTPLOG_METHOD_MAX   15
#define TNL_HTTPLOG_PATH_MAX     120   /* longer paths are shown cut, "..." */
#define TNL_HTTPLOG_TOKEN_MAX    15    /* Upgrade protocol shown */
#define TNL_HTTPLOG_PENDING      4     /* pipelined requests followed */


typedef enum {
    TNL_HTTPLOG_DONE = 0,      /* a complete response */
    TNL_HTTPLOG_INCOMPLETE,    /* the stream ended before the response */
    TNL_HTTPLOG_UPGRADED,      /* 101 or CONNECT: bytes both ways */
    TNL_HTTPLOG_RAW,           /* not HTTP (or lost track): bytes only */
} tnl_httplog_kind_e;


typedef struct {
    tnl_httplog_kind_e    kind;
    const char           *method;    /* "" when unknown */
    const char           *path;      /* "" when unknown; printable ASCII */
    const char           *upgrade;   /* UPGRADED: "websocket", "tunnel"... */
    int                   status;    /* final status, 0 if none seen */
    uint64_t              body;      /* response body bytes (dechunked) */
    uint64_t              up;        /* request bytes (nginx -> client) */
    uint64_t              down;      /* response bytes (client -> nginx) */
    uint64_t              ms;        /* first request byte to last
                                        response byte (or to close) */
} tnl_httplog_record_t;


typedef void (*tnl_httplog_handler_pt)(void *data,
    const tnl_httplog_record_t *rec);


typedef enum {
    TNL_HTTPLOG_START = 0,     /* start line (empty lines skipped) */
    TNL_HTTPLOG_HEADERS,
    TNL_HTTPLOG_BODY,          /* Content-Length bytes to skip */
    TNL_HTTPLOG_CHUNK_SIZE,
    TNL_HTTPLOG_CHUNK_DATA,
    TNL_HTTPLOG_CHUNK_END,     /* the CRLF after chunk data */
    TNL_HTTPLOG_TRAILERS,
    TNL_HTTPLOG_EOF_BODY,      /* response body delimited by close */
    TNL_HTTPLOG_WAIT,          /* request: upgrade/CONNECT sent, waiting
                                  for its answer */
    TNL_HTTPLOG_TUNNEL,        /* upgraded: bytes are counted only */
} tnl_httplog_state_e;


/* one direction's parser */
typedef struct {
    tnl_httplog_state_e   state;
    uint64_t              left;           /* body or chunk bytes to skip */
    int64_t               content_length; /* -1: none */
    unsigned              chunked:1;      /* last coding is chunked */
    unsigned              te_other:1;     /* a coding other than chunked */
    unsigned              line_over:1;    /* line longer than line[] */
    unsigned              skipping:1;     /* rest of a long line: ignore */
    size_t                line_len;
    char                  line[TNL_HTTPLOG_LINE_MAX];
} tnl_httplog_dir_t;


/* a request still waiting for (the end of) its response */
typedef struct {
    char                  method[TNL_HTTPLOG_METHOD_MAX + 1];
    char                  path[TNL_HTTPLOG_PATH_MAX + 4];
    uint64_t              start_ms;       /* its first byte */
    uint64_t              up;             /* its bytes so far */
    unsigned              head:1;
    unsigned              connect:1;
    unsigned              upgrade:1;      /* sent an Upgrade header */
} tnl_httplog_req_t;


typedef struct {
    tnl_httplog_dir_t      req;
    tnl_httplog_dir_t      resp;

    /* requests in order: q[seq % PENDING] for q_head <= seq < q_tail */
    tnl_httplog_req_t      q[TNL_HTTPLOG_PENDING];
    uint32_t               q_head;
    uint32_t               q_tail;

    uint32_t               req_seq;       /* the request being parsed */
    uint64_t               req_start_ms;
    uint64_t               req_pre;       /* its bytes before its entry */
    uint64_t               wait_bytes;    /* request bytes during WAIT */

    int                    status;        /* of the response being parsed */
    uint64_t               resp_bytes;    /* ... its bytes so far */
    uint64_t               body;
    char                   upgrade[TNL_HTTPLOG_TOKEN_MAX + 1];

    uint64_t               up_total;
    uint64_t               down_total;
    uint64_t               up_reported;
    uint64_t               down_reported;
    uint64_t               mark_ms;       /* first byte since a record */

    unsigned               req_started:1; /* a request's bytes began */
    unsigned               req_entry:1;   /* ... and it has its entry */
    unsigned               marked:1;
    unsigned               gave_up:1;
    unsigned               tunnel:1;
    unsigned               closed:1;

    tnl_httplog_handler_pt handler;
    void                  *data;
} tnl_httplog_t;


void tnl_httplog_init(tnl_httplog_t *h, tnl_httplog_handler_pt handler,
    void *data);

/* bytes nginx sent toward the client (copies; any chunk size) */
void tnl_httplog_request(tnl_httplog_t *h, const char *p, size_t len,
    uint64_t now_ms);

/* bytes the client sent back toward nginx */
void tnl_httplog_response(tnl_httplog_t *h, const char *p, size_t len,
    uint64_t now_ms);

/*
 * The stream ended: reports a close-delimited response, an upgraded
 * exchange, requests left without a complete response, or the bytes of
 * a stream it gave up on.  Returns the number of records it reported.
 * Idempotent; nothing is reported after it.
 */
int tnl_httplog_close(tnl_httplog_t *h, uint64_t now_ms);

#endif /* TNL_HTTPLOG_H */
