/*
 * The management API's request parsing, apart from its connections: pure
 * functions over the bytes a client sent, with no I/O, no allocation and
 * no tunneld state, so t/fuzz/api.c fuzzes exactly what api.c runs.
 *
 * Strict on purpose (API clients are programs: tunnelctl, the admin
 * module through nginx, curl): every line ends in CRLF, no NUL byte in
 * the head, no bare CR or LF, no folded or space-before-colon header, and
 * a header the server acts on (Content-Length, Content-Type,
 * Authorization) at most once.  Anything else answers 400 at once, so
 * no two parsers in a chain can read one request two ways.
 */

#ifndef TNL_API_PARSE_H
#define TNL_API_PARSE_H

#include <stddef.h>


#define TNL_API_HEAD_MAX      8192     /* request line + headers: 431 */
#define TNL_API_BODY_MAX      16384    /* 413 */


typedef enum {
    TNL_API_HEAD_AGAIN = 0,    /* no end of the head yet: read more */
    TNL_API_HEAD_DONE,         /* *head_len is the head's length */
    TNL_API_HEAD_BAD,          /* NUL, bare CR or LF: 400 */
    TNL_API_HEAD_LARGE,        /* no end within TNL_API_HEAD_MAX: 431 */
} tnl_api_head_e;


typedef struct {
    int           status;      /* 0: fine; else the status to answer */
    const char   *code;        /* then: the error code and a sentence */
    const char   *message;

    char          method[16];
    char          path[1024];  /* decoded, without the query */
    char          query[2048]; /* raw, without '?' */
    char          content_type[128];
    char          auth[512];
    char          host[256];   /* Host as sent; "." when longer */
    size_t        body_want;   /* Content-Length, 0 if none */
} tnl_api_head_t;


/*
 * Looks for the end of the head ("\r\n\r\n") in the len bytes that have
 * arrived, checking every byte before it.
 */
tnl_api_head_e tnl_api_head_end(const char *in, size_t len,
    size_t *head_len);

/*
 * Parses a complete head (head_len bytes, as found by tnl_api_head_end).
 * Returns 0 with h filled in, or -1 with h->status, code and message set.
 */
int tnl_api_head_parse(const char *in, size_t head_len, tnl_api_head_t *h);

/*
 * %XX (and, with plus, '+' as a space) decoded into out (size bytes, NUL
 * included): 0, or -1 on a bad escape, a NUL or too long.
 */
int tnl_api_decode(const char *in, size_t len, char *out, size_t size,
    int plus);

/*
 * Query parameter name of query (raw, NUL-terminated) decoded into buf:
 * buf, NULL when absent, or bad when present but not decodable.  A
 * parameter given twice: the first one.
 */
const char *tnl_api_query_param(const char *query, const char *name,
    char *buf, size_t size, const char *bad);

#endif /* TNL_API_PARSE_H */
