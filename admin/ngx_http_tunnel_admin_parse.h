
/*
 * The admin's parsers of what browsers send, apart from requests and
 * pools: form and query %-decoding, the text check every field passes,
 * the Cookie header scan and the SSH public key line.  nginx types and
 * macros only (no nginx function is called), so t/fuzz/admin.c builds
 * against nginx's headers alone and fuzzes exactly these functions; the
 * callers in ngx_http_tunnel_admin_form.c and _sshkey.c bring the
 * request, the pool and the hashing.
 */

#ifndef _NGX_HTTP_TUNNEL_ADMIN_PARSE_H_INCLUDED_
#define _NGX_HTTP_TUNNEL_ADMIN_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_TUNNEL_ADMIN_BLOB_MAX     16384
#define NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX  200


/*
 * The next field of a form body (or query string) at *p: its raw name and
 * value (value empty without '='); empty fields ("&&") are skipped.
 * Returns 1 and advances *p, or 0 at last.
 */
ngx_uint_t ngx_http_tunnel_admin_form_next(u_char **p, u_char *last,
    ngx_str_t *name, ngx_str_t *value);

/*
 * Decodes '+' and %XX from src (n bytes) into dst (n + 1 bytes) and
 * checks the result as text; returns its length (dst NUL-terminated) or
 * -1 on a malformed escape or a value that is not text.
 */
ssize_t ngx_http_tunnel_admin_unescape(u_char *dst, const u_char *src,
    size_t n);

/*
 * 1 if p (n bytes) is valid UTF-8 as PostgreSQL accepts it (shortest
 * form, no surrogate, at most U+10FFFF) without control characters other
 * than tab, CR and LF.
 */
ngx_uint_t ngx_http_tunnel_admin_text_ok(const u_char *p, size_t n);

/*
 * Looks for cookie name (len bytes, case-sensitive) in one Cookie header
 * value [p, end).  Returns how many times it is there; value is the
 * first one, trailing blanks trimmed.
 */
ngx_uint_t ngx_http_tunnel_admin_cookie_scan(u_char *p, u_char *end,
    const char *name, size_t len, ngx_str_t *value);

void ngx_http_tunnel_admin_trim(ngx_str_t *s);

/*
 * An OpenSSH public key line as pasted: NULL with type, base64 text and
 * comment (pointing into line), or a sentence for the person.
 */
const char *ngx_http_tunnel_admin_sshkey_line(ngx_str_t *line,
    ngx_str_t *type, ngx_str_t *b64, ngx_str_t *comment);

/*
 * Decodes b64 (checked by _sshkey_line) into blob->data, which has room
 * for b64->len / 4 * 3 bytes, and checks the key blob against type: NULL
 * or a sentence for the person.
 */
const char *ngx_http_tunnel_admin_sshkey_blob(ngx_str_t *type,
    ngx_str_t *b64, ngx_str_t *blob);


#endif /* _NGX_HTTP_TUNNEL_ADMIN_PARSE_H_INCLUDED_ */
