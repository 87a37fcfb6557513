/*
 * libFuzzer target: the web admin's parsers of browser input
 * (admin/ngx_http_tunnel_admin_parse.c): form bodies and query strings
 * (fields, '+' and %XX, the UTF-8 text check), the Cookie header scan
 * and pasted SSH public key lines.  Built against nginx's headers only:
 * those functions call no nginx function, so no nginx object is linked.
 * The input is used whole by each parser.  Checked besides the
 * sanitizers: a decoded value is NUL-terminated text no longer than its
 * raw form, and passes the text check again; a found cookie lies inside
 * the header; an accepted key's comment fits its limit and its blob
 * decodes within the room the caller allocates.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_tunnel_admin_parse.h"


static void
check_inside(ngx_str_t *s, u_char *start, size_t len)
{
    if (s->len > 0 && (s->data < start || s->data + s->len > start + len)) {
        abort();
    }
}


static void
fuzz_form(u_char *in, size_t size)
{
    u_char     *p, *buf;
    ssize_t     n;
    ngx_str_t   name, value, *f;
    ngx_uint_t  i, fields;

    buf = malloc(size + 1);
    if (buf == NULL) {
        return;
    }

    p = in;
    fields = 0;

    while (ngx_http_tunnel_admin_form_next(&p, in + size, &name, &value)) {
        if (++fields > size) {
            abort();
        }

        for (i = 0; i < 2; i++) {
            f = i ? &value : &name;
            check_inside(f, in, size);

            n = ngx_http_tunnel_admin_unescape(buf, f->data, f->len);
            if (n < 0) {
                continue;
            }

            if ((size_t) n > f->len || buf[n] != '\0'
                || !ngx_http_tunnel_admin_text_ok(buf, n)
                || memchr(buf, '\0', n) != NULL)
            {
                abort();
            }
        }
    }

    free(buf);
}


static void
fuzz_cookie(u_char *in, size_t size)
{
    ngx_str_t   v;
    ngx_uint_t  n;

    static const char  *names[] = {
        "__Host-tunnel_session", "__Host-tunnel_csrf", "a", ""
    };

    for (n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        ngx_str_null(&v);

        if (ngx_http_tunnel_admin_cookie_scan(in, in + size, names[n],
                                              strlen(names[n]), &v)
            > 0)
        {
            if (v.data == NULL) {
                abort();
            }
            check_inside(&v, in, size);
        }
    }
}


static void
fuzz_sshkey(u_char *in, size_t size)
{
    u_char      *room;
    ngx_str_t    line, type, b64, comment, blob;
    const char  *err;

    line.data = in;
    line.len = size;

    err = ngx_http_tunnel_admin_sshkey_line(&line, &type, &b64, &comment);
    if (err != NULL) {
        return;
    }

    check_inside(&type, in, size);
    check_inside(&b64, in, size);
    check_inside(&comment, in, size);

    if (comment.len > NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX || b64.len == 0
        || b64.len % 4 != 0)
    {
        abort();
    }

    /* exactly what the caller allocates, so ASan sees any overrun */
    room = malloc(b64.len / 4 * 3);
    if (room == NULL) {
        return;
    }

    blob.data = room;
    blob.len = 0;

    if (ngx_http_tunnel_admin_sshkey_blob(&type, &b64, &blob) == NULL
        && (blob.len == 0 || blob.len > b64.len / 4 * 3))
    {
        abort();
    }

    free(room);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *in;

    /* a copy of exactly size bytes: nothing may read past it */
    in = malloc(size ? size : 1);
    if (in == NULL) {
        return 0;
    }

    memcpy(in, data, size);

    fuzz_form(in, size);
    fuzz_cookie(in, size);
    fuzz_sshkey(in, size);
    (void) ngx_http_tunnel_admin_text_ok(in, size);

    free(in);

    return 0;
}
