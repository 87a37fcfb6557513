
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


/* NULL on success, else a sentence for the person who pasted the line */
const char *
ngx_http_tunnel_admin_sshkey_parse(ngx_pool_t *pool, ngx_str_t *line,
    ngx_http_tunnel_admin_sshkey_t *key)
{
    u_char      *p, md[SHA256_DIGEST_LENGTH];
    ngx_str_t    text, b64, blob, digest;
    const char  *err;

    err = ngx_http_tunnel_admin_sshkey_line(line, &key->type, &b64,
                                            &key->comment);
    if (err) {
        return err;
    }

    blob.data = ngx_pnalloc(pool, b64.len / 4 * 3);
    if (blob.data == NULL) {
        return "The server is out of memory.";
    }

    err = ngx_http_tunnel_admin_sshkey_blob(&key->type, &b64, &blob);
    if (err) {
        return err;
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
