
/*
 * The admin's parsers of browser input (see ngx_http_tunnel_admin_parse.h):
 * form fields, %-decoding, the text check, the Cookie header, SSH public
 * key lines.  Pure: no pool, no request, no nginx function; results point
 * into the caller's buffers.
 */

#include "ngx_http_tunnel_admin_parse.h"


typedef struct {
    u_char   *pos;
    u_char   *last;
} ngx_http_tunnel_admin_blob_t;


static ngx_int_t ngx_http_tunnel_admin_blob_string(
    ngx_http_tunnel_admin_blob_t *b, ngx_str_t *s);
static ngx_int_t ngx_http_tunnel_admin_blob_is(ngx_str_t *s,
    const char *text);
static ngx_int_t ngx_http_tunnel_admin_base64_ok(ngx_str_t *s);
static ngx_int_t ngx_http_tunnel_admin_base64_decode(ngx_str_t *b64,
    u_char *out, size_t *len);
static const char *ngx_http_tunnel_admin_sshkey_fields(ngx_str_t *type,
    ngx_str_t *blob);
static ngx_uint_t ngx_http_tunnel_admin_has(ngx_str_t *s, const char *text);


static const char  *ngx_http_tunnel_admin_key_types[] = {
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    NULL
};


ngx_uint_t
ngx_http_tunnel_admin_form_next(u_char **p, u_char *last, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char  *start, *amp, *eq;

    while (*p < last) {
        start = *p;

        amp = ngx_strlchr(start, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        *p = (amp < last) ? amp + 1 : last;

        if (amp == start) {
            continue;
        }

        eq = ngx_strlchr(start, amp, '=');

        name->data = start;
        name->len = (eq ? eq : amp) - start;
        value->data = eq ? eq + 1 : amp;
        value->len = amp - value->data;

        return 1;
    }

    return 0;
}


static ngx_int_t
ngx_http_tunnel_admin_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


ssize_t
ngx_http_tunnel_admin_unescape(u_char *dst, const u_char *src, size_t n)
{
    size_t     i, o;
    ngx_int_t  hi, lo;

    o = 0;

    for (i = 0; i < n; i++) {

        if (src[i] == '%') {
            if (n - i < 3) {
                return -1;
            }

            hi = ngx_http_tunnel_admin_hex(src[i + 1]);
            lo = ngx_http_tunnel_admin_hex(src[i + 2]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            dst[o++] = (u_char) (hi * 16 + lo);
            i += 2;
            continue;
        }

        dst[o++] = (src[i] == '+') ? ' ' : src[i];
    }

    dst[o] = '\0';

    if (!ngx_http_tunnel_admin_text_ok(dst, o)) {
        return -1;
    }

    return (ssize_t) o;
}


ngx_uint_t
ngx_http_tunnel_admin_text_ok(const u_char *p, size_t n)
{
    size_t    i, need;
    uint32_t  u, min;

    i = 0;

    while (i < n) {
        u = p[i];

        if (u < 0x80) {
            if ((u < 0x20 && u != '\t' && u != '\r' && u != '\n')
                || u == 0x7f)
            {
                return 0;
            }

            i++;
            continue;
        }

        if (u >= 0xc2 && u <= 0xdf) {
            need = 1;
            u &= 0x1f;
            min = 0x80;

        } else if (u >= 0xe0 && u <= 0xef) {
            need = 2;
            u &= 0x0f;
            min = 0x800;

        } else if (u >= 0xf0 && u <= 0xf4) {
            need = 3;
            u &= 0x07;
            min = 0x10000;

        } else {
            return 0;               /* a continuation byte, 0xc0, 0xc1... */
        }

        if (n - i - 1 < need) {
            return 0;
        }

        for (i++; need; need--, i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }

            u = (u << 6) | (p[i] & 0x3f);
        }

        /* shortest form, no UTF-16 surrogate: PostgreSQL refuses both */

        if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


ngx_uint_t
ngx_http_tunnel_admin_cookie_scan(u_char *p, u_char *end, const char *name,
    size_t len, ngx_str_t *value)
{
    u_char      *n, *v, *ve;
    ngx_uint_t   found;

    found = 0;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) {
            p++;
        }

        n = p;
        while (p < end && *p != '=' && *p != ';') {
            p++;
        }

        if (p == end || *p != '=') {
            continue;               /* a name without a value */
        }

        ve = p;                     /* end of the name */
        v = ++p;
        while (p < end && *p != ';') {
            p++;
        }

        if ((size_t) (ve - n) != len || ngx_strncmp(n, name, len) != 0) {
            continue;
        }

        if (found++) {
            continue;
        }

        value->data = v;
        value->len = p - v;

        while (value->len && (value->data[value->len - 1] == ' '
                              || value->data[value->len - 1] == '\t'))
        {
            value->len--;
        }
    }

    return found;
}


void
ngx_http_tunnel_admin_trim(ngx_str_t *s)
{
    while (s->len && (s->data[0] == ' ' || s->data[0] == '\t'
                      || s->data[0] == '\r' || s->data[0] == '\n'))
    {
        s->data++;
        s->len--;
    }

    while (s->len && (s->data[s->len - 1] == ' '
                      || s->data[s->len - 1] == '\t'
                      || s->data[s->len - 1] == '\r'
                      || s->data[s->len - 1] == '\n'))
    {
        s->len--;
    }
}


const char *
ngx_http_tunnel_admin_sshkey_line(ngx_str_t *line, ngx_str_t *type,
    ngx_str_t *b64, ngx_str_t *comment)
{
    u_char      *p, *last, *start;
    ngx_str_t    text;
    ngx_uint_t   i;

    text = *line;
    ngx_http_tunnel_admin_trim(&text);

    if (text.len == 0) {
        return "Paste your public key: the one line of your .pub file, "
               "for example ~/.ssh/id_ed25519.pub.";
    }

    if (ngx_http_tunnel_admin_has(&text, "PRIVATE KEY")) {
        return "This looks like a private key.  Never paste a private key "
               "anywhere: paste the public one, from the file ending in "
               ".pub.";
    }

    if (ngx_strlchr(text.data, text.data + text.len, '\n')
        || ngx_strlchr(text.data, text.data + text.len, '\r'))
    {
        return "Paste one key only, on one line.";
    }

    if (text.len > 4 * NGX_HTTP_TUNNEL_ADMIN_BLOB_MAX / 3 + 512) {
        return "This is too long to be a public key.";
    }

    p = text.data;
    last = text.data + text.len;

    /* the type */
    start = p;
    while (p < last && *p != ' ' && *p != '\t') {
        p++;
    }

    type->data = start;
    type->len = p - start;

    for (i = 0; ngx_http_tunnel_admin_key_types[i]; i++) {
        if (ngx_http_tunnel_admin_blob_is(type,
                                          ngx_http_tunnel_admin_key_types[i]))
        {
            break;
        }
    }

    if (ngx_http_tunnel_admin_key_types[i] == NULL) {
        if (ngx_strlchr(type->data, type->data + type->len, '=')
            || ngx_strlchr(type->data, type->data + type->len, ','))
        {
            return "Paste the key without authorized_keys options: the line "
                   "must start with the key type, such as ssh-ed25519.";
        }

        if (ngx_http_tunnel_admin_has(type, "-cert-v01@openssh.com")) {
            return "Certificates are not accepted: paste the plain public "
                   "key.";
        }

        return "Unknown key type.  Accepted: ssh-ed25519, "
               "ecdsa-sha2-nistp256/384/521, ssh-rsa (2048 bits or more) "
               "and the sk- security-key types.";
    }

    /* the base64 blob */
    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    start = p;
    while (p < last && *p != ' ' && *p != '\t') {
        p++;
    }

    b64->data = start;
    b64->len = p - start;

    if (b64->len == 0) {
        return "The key itself is missing after its type.";
    }

    if (!ngx_http_tunnel_admin_base64_ok(b64)) {
        return "The key is damaged (its base64 text is not valid).  Copy "
               "the whole line again.";
    }

    /* the comment: the rest, as typed, cut on a UTF-8 boundary */
    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    comment->data = p;
    comment->len = last - p;

    if (comment->len > NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX) {
        comment->len = NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX;
        while (comment->len
               && (comment->data[comment->len] & 0xc0) == 0x80)
        {
            comment->len--;
        }
    }

    return NULL;
}


const char *
ngx_http_tunnel_admin_sshkey_blob(ngx_str_t *type, ngx_str_t *b64,
    ngx_str_t *blob)
{
    if (ngx_http_tunnel_admin_base64_decode(b64, blob->data, &blob->len)
        != NGX_OK)
    {
        return "The key is damaged (its base64 text is not valid).  Copy "
               "the whole line again.";
    }

    if (blob->len > NGX_HTTP_TUNNEL_ADMIN_BLOB_MAX) {
        return "This is too long to be a public key.";
    }

    return ngx_http_tunnel_admin_sshkey_fields(type, blob);
}


static const char *
ngx_http_tunnel_admin_sshkey_fields(ngx_str_t *type, ngx_str_t *blob)
{
    size_t                        bits;
    u_char                        c;
    ngx_str_t                     name, f1, f2, f3;
    ngx_http_tunnel_admin_blob_t  b;

    static const char  *damaged = "The key is damaged or incomplete.  Copy "
                                  "the whole line again.";

    b.pos = blob->data;
    b.last = blob->data + blob->len;

    if (ngx_http_tunnel_admin_blob_string(&b, &name) != NGX_OK) {
        return damaged;
    }

    if (name.len != type->len
        || ngx_strncmp(name.data, type->data, type->len) != 0)
    {
        return "The key's type inside does not match the type written "
               "before it.  Copy the whole line again.";
    }

    if (ngx_http_tunnel_admin_blob_is(type, "ssh-ed25519")) {
        if (ngx_http_tunnel_admin_blob_string(&b, &f1) != NGX_OK
            || f1.len != 32)
        {
            return damaged;
        }

    } else if (ngx_http_tunnel_admin_blob_is(type,
                                           "sk-ssh-ed25519@openssh.com"))
    {
        if (ngx_http_tunnel_admin_blob_string(&b, &f1) != NGX_OK
            || f1.len != 32
            || ngx_http_tunnel_admin_blob_string(&b, &f2) != NGX_OK
            || f2.len == 0)
        {
            return damaged;
        }

    } else if (ngx_http_tunnel_admin_blob_is(type, "ssh-rsa")) {
        if (ngx_http_tunnel_admin_blob_string(&b, &f1) != NGX_OK
            || ngx_http_tunnel_admin_blob_string(&b, &f2) != NGX_OK
            || f1.len == 0 || f1.len > 8 || f2.len < 2
            || (f1.data[0] & 0x80) || (f2.data[0] & 0x80))
        {
            return damaged;
        }

        /* mpint n: a leading zero byte keeps it positive */
        if (f2.data[0] == 0) {
            f2.data++;
            f2.len--;
        }

        bits = f2.len * 8;
        for (c = f2.data[0]; !(c & 0x80) && bits; c <<= 1) {
            bits--;
        }

        if (bits < 2048) {
            return "This RSA key is too short: use 2048 bits or more, or "
                   "better an ed25519 key (ssh-keygen -t ed25519).";
        }

        if (bits > 16384) {
            return "This RSA key is too long (at most 16384 bits).";
        }

    } else {
        /* ecdsa-sha2-nistpN and sk-ecdsa-sha2-nistp256@openssh.com */
        size_t       qlen;
        const char  *curve;

        if (ngx_http_tunnel_admin_has(type, "nistp256")) {
            curve = "nistp256";
            qlen = 65;

        } else if (ngx_http_tunnel_admin_has(type, "nistp384")) {
            curve = "nistp384";
            qlen = 97;

        } else {
            curve = "nistp521";
            qlen = 133;
        }

        if (ngx_http_tunnel_admin_blob_string(&b, &f1) != NGX_OK
            || !ngx_http_tunnel_admin_blob_is(&f1, curve)
            || ngx_http_tunnel_admin_blob_string(&b, &f2) != NGX_OK
            || f2.len != qlen || f2.data[0] != 0x04)
        {
            return damaged;
        }

        if (type->data[0] == 's'
            && (ngx_http_tunnel_admin_blob_string(&b, &f3) != NGX_OK
                || f3.len == 0))
        {
            return damaged;
        }
    }

    if (b.pos != b.last) {
        return damaged;
    }

    return NULL;
}


static ngx_int_t
ngx_http_tunnel_admin_blob_string(ngx_http_tunnel_admin_blob_t *b,
    ngx_str_t *s)
{
    uint32_t  len;

    if (b->last - b->pos < 4) {
        return NGX_ERROR;
    }

    len = ((uint32_t) b->pos[0] << 24) | ((uint32_t) b->pos[1] << 16)
          | ((uint32_t) b->pos[2] << 8) | b->pos[3];
    b->pos += 4;

    if ((size_t) (b->last - b->pos) < len) {
        return NGX_ERROR;
    }

    s->data = b->pos;
    s->len = len;
    b->pos += len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tunnel_admin_blob_is(ngx_str_t *s, const char *text)
{
    return s->len == ngx_strlen(text)
           && ngx_strncmp(s->data, text, s->len) == 0;
}


/* 1 if text occurs in s */
static ngx_uint_t
ngx_http_tunnel_admin_has(ngx_str_t *s, const char *text)
{
    return memmem(s->data, s->len, text, ngx_strlen(text)) != NULL;
}


/* standard alphabet, length a multiple of 4, '=' only as final padding */
static ngx_int_t
ngx_http_tunnel_admin_base64_ok(ngx_str_t *s)
{
    size_t  i, pad;
    u_char  c;

    if (s->len % 4 != 0) {
        return 0;
    }

    pad = 0;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '=') {
            pad++;
            continue;
        }

        if (pad) {
            return 0;
        }

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '+' || c == '/'))
        {
            return 0;
        }
    }

    return pad <= 2;
}


static ngx_int_t
ngx_http_tunnel_admin_b64_value(u_char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    return (c == '+') ? 62 : (c == '/') ? 63 : -1;
}


/* s passed _base64_ok: out has room for s->len / 4 * 3 bytes */
static ngx_int_t
ngx_http_tunnel_admin_base64_decode(ngx_str_t *s, u_char *out, size_t *len)
{
    size_t     i, n, o;
    uint32_t   acc;
    ngx_int_t  v;

    acc = 0;
    n = 0;
    o = 0;

    for (i = 0; i < s->len && s->data[i] != '='; i++) {
        v = ngx_http_tunnel_admin_b64_value(s->data[i]);
        if (v < 0) {
            return NGX_ERROR;
        }

        acc = (acc << 6) | (uint32_t) v;

        if (++n == 4) {
            out[o++] = (u_char) (acc >> 16);
            out[o++] = (u_char) (acc >> 8);
            out[o++] = (u_char) acc;
            acc = 0;
            n = 0;
        }
    }

    if (n == 1) {
        return NGX_ERROR;
    }

    if (n == 2) {
        out[o++] = (u_char) (acc >> 4);

    } else if (n == 3) {
        out[o++] = (u_char) (acc >> 10);
        out[o++] = (u_char) (acc >> 2);
    }

    *len = o;

    return NGX_OK;
}
