/*
 * The management API: a small HTTP/1.1 server for operators and the admin
 * module, on tunneld's own loop (never blocking it).  Listeners: always a
 * Unix socket beside the tunnel sockets (DIR/api.sock, mode 0660, the
 * tunnel sockets' group), and optionally TCP (--api HOST:PORT), where a
 * non-loopback address needs --api-token-file and every request then
 * carries "Authorization: Bearer TOKEN".
 *
 * api.c owns the listeners and the connections: it reads one request
 * (limits: head 8 KiB -> 431, body 16 KiB -> 413, 10 s to send it), finds
 * its handler in the route table, and writes what the handler produced,
 * always "Connection: close".  The handlers (api_tunnels.c, ...) build
 * their answers with jansson and may answer later (a Redis reply) or in
 * pieces (chunked), through the functions below.  One request per
 * connection keeps the state machine small; API clients are few.
 *
 * main.c creates the listeners before the workers fork (like the SSH
 * listeners); every worker accepts from the same sockets.
 */

#ifndef TNL_API_H
#define TNL_API_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "loop.h"


typedef struct tnl_api_conn_s  tnl_api_conn_t;


typedef struct {
    const char   *method;      /* "GET", "DELETE", ... */
    const char   *path;        /* decoded, without the query */
    const char   *query;       /* raw, without '?', or "" */
    const char   *body;        /* NUL-terminated, or "" */
    size_t        body_len;
    const char   *content_type;  /* or "" */
} tnl_api_request_t;


/*
 * Creates the listeners from tnl_conf (api_* fields): 0, or -1 after
 * logging what to change.  Called once in main, before any fork.
 */
int tnl_api_listen(void);

/* this process serves the API on loop (a worker); 0 or -1 (logged) */
int tnl_api_start(tnl_loop_t *loop);

/* stops accepting and drops every open API connection (shutdown) */
void tnl_api_stop(void);

/* the request a handler is answering (valid until the answer is done) */
const tnl_api_request_t *tnl_api_request(tnl_api_conn_t *c);

/*
 * The value of query parameter name, decoded into buf; NULL when absent,
 * tnl_api_bad_param when present but not decodable into size bytes (a bad
 * %-escape, a NUL, too long).  A parameter given twice: the first one.
 */
extern const char  tnl_api_bad_param[];

const char *tnl_api_query(tnl_api_conn_t *c, const char *name, char *buf,
    size_t size);

/* a whole JSON answer (takes the reference to body) */
void tnl_api_json(tnl_api_conn_t *c, int status, json_t *body);

/*
 * {"error": code, "message": text} with status; extra headers (each line
 * ending in CRLF) or NULL, e.g. "Allow: GET\r\n".
 */
void tnl_api_error(tnl_api_conn_t *c, int status, const char *code,
    const char *message, const char *headers);

/* a whole plain answer with the given content type */
void tnl_api_text(tnl_api_conn_t *c, int status, const char *content_type,
    const char *text, size_t len);

/*
 * Streaming: start a chunked 200 answer, add pieces, end it.  A handler
 * that produces many pieces waits for room: tnl_api_stream_full() says the
 * output buffer is past its soft limit; the writable callback given to
 * tnl_api_stream_start runs when it has drained (on the loop, never inside
 * the handler's own call).  On a dead client the connection calls abort
 * (may be NULL) so the handler stops and forgets c.
 */
typedef void (*tnl_api_more_pt)(tnl_api_conn_t *c, void *data);

void tnl_api_stream_start(tnl_api_conn_t *c, const char *content_type,
    tnl_api_more_pt more, tnl_api_more_pt abort, void *data);
void tnl_api_stream_write(tnl_api_conn_t *c, const char *piece, size_t len);
int tnl_api_stream_full(tnl_api_conn_t *c);
void tnl_api_stream_end(tnl_api_conn_t *c);

/*
 * An answer that comes later (a Redis reply): the handler calls
 * tnl_api_hold(c, abort, data) before returning; abort runs if the client
 * goes away or the request times out first, after which c must not be
 * used.  Answering (json, error, text, stream_start) ends the hold.
 */
void tnl_api_hold(tnl_api_conn_t *c, tnl_api_more_pt abort, void *data);


/* constant-time comparison of two NUL-terminated secrets: 1 if equal */
int tnl_api_secret_equal(const char *a, const char *b);

#endif /* TNL_API_H */
