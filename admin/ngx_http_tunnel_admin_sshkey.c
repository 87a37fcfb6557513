
/*
 * Validates one OpenSSH public key line ("type base64 [comment]", as in
 * ~/.ssh/id_ed25519.pub) and computes its fingerprint exactly as
 * `ssh-keygen -lf` prints it: "SHA256:" and the unpadded base64 of the
 * SHA-256 of the decoded key blob.
 *
 * The blob is parsed, not just decoded: its own type name must match the
 * line's, and its fields must have the sizes of that type (RSA at least
 * 2048 bits), so a truncated or edited paste is refused with a sentence
 * saying what is wrong.  Allowed: ssh-ed25519, ecdsa-sha2-nistp256/384/521,
 * ssh-rsa, and the FIDO types sk-ssh-ed25519@openssh.com and
 * sk-ecdsa-sha2-nistp256@openssh.com.  Certificates and authorized_keys
 * options are refused.  Whether a key is weak beyond its size is not
 * judged here.  Everything it returns lives in the given pool.
 */

#include "ngx_http_tunnel_admin_module.h"

#include <openssl/sha.h>


#define NGX_HTTP_TUNNEL_ADMIN_BLOB_MAX     16384
#define NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX  200


typedef struct {
    u_char   *pos;
    u_char   *last;
} ngx_http_tunnel_admin_blob_t;


static ngx_int_t ngx_http_tunnel_admin_blob_string(
    ngx_http_tunnel_admin_blob_t *b, ngx_str_t *s);
static ngx_int_t ngx_http_tunnel_admin_blob_is(ngx_str_t *s,
    const char *text);
static const char *ngx_http_tunnel_admin_sshkey_blob(ngx_str_t *type,
    ngx_str_t *blob);
static ngx_int_t ngx_http_tunnel_admin_base64_ok(ngx_str_t *s);


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


/* NULL on success, else a sentence for the person who pasted the line */
const char *
ngx_http_tunnel_admin_sshkey_parse(ngx_pool_t *pool, ngx_str_t *line,
    ngx_http_tunnel_admin_sshkey_t *key)
{
    u_char      *p, *last, *start, md[SHA256_DIGEST_LENGTH];
    ngx_str_t    text, b64, blob, digest;
    ngx_uint_t   i;
    const char  *err;

    text = *line;
    ngx_http_tunnel_admin_trim(&text);

    if (text.len == 0) {
        return "Paste your public key: the one line of your .pub file, "
               "for example ~/.ssh/id_ed25519.pub.";
    }

    if (ngx_strnstr(text.data, "PRIVATE KEY", text.len) != NULL) {
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

    key->type.data = start;
    key->type.len = p - start;

    for (i = 0; ngx_http_tunnel_admin_key_types[i]; i++) {
        if (ngx_http_tunnel_admin_blob_is(&key->type,
                                          ngx_http_tunnel_admin_key_types[i]))
        {
            break;
        }
    }

    if (ngx_http_tunnel_admin_key_types[i] == NULL) {
        if (ngx_strlchr(key->type.data, key->type.data + key->type.len, '=')
            || ngx_strlchr(key->type.data, key->type.data + key->type.len,
                           ','))
        {
            return "Paste the key without authorized_keys options: the line "
                   "must start with the key type, such as ssh-ed25519.";
        }

        if (ngx_strnstr(key->type.data, "-cert-v01@openssh.com",
                        key->type.len))
        {
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

    b64.data = start;
    b64.len = p - start;

    if (b64.len == 0) {
        return "The key itself is missing after its type.";
    }

    if (!ngx_http_tunnel_admin_base64_ok(&b64)) {
        return "The key is damaged (its base64 text is not valid).  Copy "
               "the whole line again.";
    }

    blob.data = ngx_pnalloc(pool, ngx_base64_decoded_length(b64.len));
    if (blob.data == NULL) {
        return "The server is out of memory.";
    }

    if (ngx_decode_base64(&blob, &b64) != NGX_OK) {
        return "The key is damaged (its base64 text is not valid).  Copy "
               "the whole line again.";
    }

    if (blob.len > NGX_HTTP_TUNNEL_ADMIN_BLOB_MAX) {
        return "This is too long to be a public key.";
    }

    err = ngx_http_tunnel_admin_sshkey_blob(&key->type, &blob);
    if (err) {
        return err;
    }

    /* the comment: the rest, as typed */
    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    key->comment.data = p;
    key->comment.len = last - p;

    if (key->comment.len > NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX) {
        key->comment.len = NGX_HTTP_TUNNEL_ADMIN_COMMENT_MAX;
        while (key->comment.len
               && (key->comment.data[key->comment.len] & 0xc0) == 0x80)
        {
            key->comment.len--;
        }
    }

    /* canonical base64 of the blob, as ssh-keygen writes it */
    key->base64.data = ngx_pnalloc(pool, ngx_base64_encoded_length(blob.len));
    if (key->base64.data == NULL) {
        return "The server is out of memory.";
    }

    ngx_encode_base64(&key->base64, &blob);

    SHA256(blob.data, blob.len, md);

    digest.data = md;
    digest.len = sizeof(md);

    key->fingerprint.data = ngx_pnalloc(pool, sizeof("SHA256:") - 1
                                   + ngx_base64_encoded_length(sizeof(md)));
    if (key->fingerprint.data == NULL) {
        return "The server is out of memory.";
    }

    p = ngx_cpymem(key->fingerprint.data, "SHA256:", sizeof("SHA256:") - 1);

    text.data = p;
    ngx_encode_base64(&text, &digest);

    while (text.len && text.data[text.len - 1] == '=') {
        text.len--;
    }

    key->fingerprint.len = sizeof("SHA256:") - 1 + text.len;

    return NULL;
}


static const char *
ngx_http_tunnel_admin_sshkey_blob(ngx_str_t *type, ngx_str_t *blob)
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

        if (ngx_strnstr(type->data, "nistp256", type->len)) {
            curve = "nistp256";
            qlen = 65;

        } else if (ngx_strnstr(type->data, "nistp384", type->len)) {
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
