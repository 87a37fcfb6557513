/*
 * Parses what an operator hands to 'tunnelctl key add': the text of an
 * OpenSSH public key file, "TYPE BASE64 [COMMENT]".  It refuses private
 * keys (with a sentence telling the operator where the public half is),
 * RFC 4716 files, authorized_keys options, certificates, DSA, several keys
 * at once, and any blob libssh does not accept as a public key.
 *
 * The type is checked against the type name inside the blob: libssh 0.10.6
 * ssh_pki_import_pubkey_base64 trusts the caller's type for ECDSA (a
 * nistp256 blob imports as "ecdsa-sha2-nistp384").  The fingerprint is
 * libssh's SHA-256 ("SHA256:..." as ssh-keygen -lf prints it), the same
 * function tunneld's auth callback uses, so both always agree.
 *
 * No I/O besides error messages; the result's strings are malloc'ed and
 * owned by the caller (tnl_ctl_pubkey_free).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>

#include "tunnelctl.h"


#define TNL_CTL_COMMENT_MAX  1024


static int
tnl_ctl_b64_value(int c)
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

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


/*
 * Strict base64 decoding of the first bytes of s (len chars): at most
 * size bytes go to out; the whole input is checked.  Returns the decoded
 * length (which may exceed size), or -1 if s is not base64.
 */
static long
tnl_ctl_b64_decode(const char *s, size_t len, unsigned char *out,
    size_t size)
{
    int       v;
    long      total;
    size_t    i, n, pad;
    uint32_t  acc;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }

    pad = 0;

    if (s[len - 1] == '=') {
        pad++;

        if (s[len - 2] == '=') {
            pad++;
        }
    }

    acc = 0;
    n = 0;
    total = 0;

    for (i = 0; i < len - pad; i++) {
        v = tnl_ctl_b64_value((unsigned char) s[i]);

        if (v < 0) {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) v;

        if (++n == 4) {
            if ((size_t) total + 3 <= size) {
                out[total] = (acc >> 16) & 0xff;
                out[total + 1] = (acc >> 8) & 0xff;
                out[total + 2] = acc & 0xff;
            }

            total += 3;
            n = 0;
            acc = 0;
        }
    }

    /* n is 4 - pad here: 2 chars -> 1 byte, 3 chars -> 2 bytes */
    if (n == 2) {
        if ((size_t) total + 1 <= size) {
            out[total] = (acc >> 4) & 0xff;
        }

        total += 1;

    } else if (n == 3) {
        if ((size_t) total + 2 <= size) {
            out[total] = (acc >> 10) & 0xff;
            out[total + 1] = (acc >> 2) & 0xff;
        }

        total += 2;
    }

    return total;
}


/* 1 if the text looks like a private key of any common format */
static int
tnl_ctl_pubkey_is_private(const char *text)
{
    return strstr(text, "PRIVATE KEY-----") != NULL
           || strstr(text, "PuTTY-User-Key-File-") != NULL
           || strstr(text, "SSH PRIVATE KEY FILE FORMAT") != NULL;
}


/*
 * Checks type (the line's first word) and the type name at the start of
 * the blob.  Returns 0, or -1 after reporting.
 */
static int
tnl_ctl_pubkey_check_type(const char *type, const char *b64, size_t b64len,
    const char *source)
{
    long                  total;
    size_t                tlen, n;
    unsigned char         blob[128];
    enum ssh_keytypes_e   kt;

    n = strlen(type);

    if (strpbrk(type, "=\",") != NULL) {
        tnl_ctl_error("%s: options before the key type (from=, "
                      "command=, ...) are not supported: give only "
                      "'TYPE BASE64 [COMMENT]'", source);
        return -1;
    }

    if (n > 21 && strcmp(type + n - 21, "-cert-v01@openssh.com") == 0) {
        tnl_ctl_error("%s: certificates are not supported: give the plain "
                      "public key (the .pub file without -cert)", source);
        return -1;
    }

    if (strcmp(type, "ssh-dss") == 0) {
        tnl_ctl_error("%s: DSA keys are not supported: create an ed25519 "
                      "key with 'ssh-keygen -t ed25519'", source);
        return -1;
    }

    kt = ssh_key_type_from_name(type);

    if (kt == SSH_KEYTYPE_UNKNOWN) {
        tnl_ctl_error("%s: unknown key type \"%.40s\": expected an OpenSSH "
                      "public key line such as 'ssh-ed25519 AAAA... "
                      "me@laptop'", source, type);
        return -1;
    }

    if (b64len == 0) {
        tnl_ctl_error("%s: no key data after \"%s\": give the whole line "
                      "of the .pub file", source, type);
        return -1;
    }

    total = tnl_ctl_b64_decode(b64, b64len, blob, sizeof(blob));

    if (total < 0) {
        tnl_ctl_error("%s: the key data is not valid base64: copy the "
                      "whole .pub line again", source);
        return -1;
    }

    if (total < 4) {
        goto malformed;
    }

    tlen = ((size_t) blob[0] << 24) | ((size_t) blob[1] << 16)
           | ((size_t) blob[2] << 8) | blob[3];

    if (tlen > sizeof(blob) - 4 || (long) (tlen + 4) > total) {
        goto malformed;
    }

    if (tlen != n || memcmp(blob + 4, type, n) != 0) {
        tnl_ctl_error("%s: the line says \"%s\" but the key data is "
                      "another type of key: copy the whole .pub line again",
                      source, type);
        return -1;
    }

    return 0;

malformed:

    tnl_ctl_error("%s: the key data is not a valid %s public key: copy "
                  "the whole .pub line again", source, type);

    return -1;
}


/* the comment: the rest of the line, trimmed; NULL after reporting */
static char *
tnl_ctl_pubkey_comment(const char *p, const char *end, const char *source)
{
    char        *comment;
    const char  *q;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t'
                       || end[-1] == '\r'))
    {
        end--;
    }

    if (end - p > TNL_CTL_COMMENT_MAX) {
        tnl_ctl_error("%s: the comment is longer than %d bytes: shorten it",
                      source, TNL_CTL_COMMENT_MAX);
        return NULL;
    }

    for (q = p; q < end; q++) {
        if ((unsigned char) *q < 0x20 && *q != '\t') {
            tnl_ctl_error("%s: the comment contains control characters: "
                          "remove them", source);
            return NULL;
        }

        if (*q == 0x7f) {
            tnl_ctl_error("%s: the comment contains control characters: "
                          "remove them", source);
            return NULL;
        }
    }

    comment = strndup(p, end - p);

    if (comment == NULL) {
        tnl_ctl_error("out of memory");
    }

    return comment;
}


/* finds the only key line; returns 0 with [*line, *end), or -1 */
static int
tnl_ctl_pubkey_find_line(const char *text, size_t len, const char *source,
    const char **line, const char **line_end)
{
    int          keys;
    const char  *p, *end, *nl, *s;

    keys = 0;
    end = text + len;

    for (p = text; p < end; p = nl + 1) {
        nl = memchr(p, '\n', end - p);

        if (nl == NULL) {
            nl = end;
        }

        for (s = p; s < nl && (*s == ' ' || *s == '\t' || *s == '\r'); s++) {
            /* void */
        }

        if (s == nl || *s == '#') {
            continue;
        }

        if (keys++ == 0) {
            *line = s;
            *line_end = nl;
        }
    }

    if (keys == 0) {
        tnl_ctl_error("%s holds no public key: give an OpenSSH public key "
                      "file such as ~/.ssh/id_ed25519.pub", source);
        return -1;
    }

    if (keys > 1) {
        tnl_ctl_error("%s holds %d keys: add one key at a time", source,
                      keys);
        return -1;
    }

    return 0;
}


int
tnl_ctl_pubkey_parse(const char *text, size_t len, const char *source,
    tnl_ctl_pubkey_t *key)
{
    int             rc;
    char           *b64, *fp, *canonical;
    size_t          tlen, blen, hlen;
    ssh_key         pk;
    const char     *line, *end, *p, *q;
    unsigned char  *hash;

    memset(key, 0, sizeof(tnl_ctl_pubkey_t));

    line = NULL;
    end = NULL;
    b64 = NULL;
    fp = NULL;
    canonical = NULL;
    pk = NULL;
    hash = NULL;
    rc = -1;

    if (memchr(text, '\0', len) != NULL) {
        tnl_ctl_error("%s is not a text file: give an OpenSSH public key "
                      "file such as ~/.ssh/id_ed25519.pub", source);
        return -1;
    }

    if (tnl_ctl_pubkey_is_private(text)) {
        tnl_ctl_error("%s is a private key, which must never leave its "
                      "owner: give the public key instead (the .pub file "
                      "next to it, or 'ssh-keygen -y -f FILE')", source);
        return -1;
    }

    if (strstr(text, "---- BEGIN SSH2 PUBLIC KEY ----") != NULL) {
        tnl_ctl_error("%s is an RFC 4716 (SSH2) public key: convert it "
                      "with 'ssh-keygen -i -f FILE' and add the output",
                      source);
        return -1;
    }

    if (tnl_ctl_pubkey_find_line(text, len, source, &line, &end) != 0) {
        return -1;
    }

    /* TYPE */
    for (p = line; p < end && *p != ' ' && *p != '\t' && *p != '\r'; p++) {
        /* void */
    }

    tlen = p - line;

    if (tlen >= sizeof(key->type)) {
        /* longer than any type name: let the type check say so */
        tlen = sizeof(key->type) - 1;
    }

    memcpy(key->type, line, tlen);
    key->type[tlen] = '\0';

    /* BASE64 */
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    for (q = p; q < end && *q != ' ' && *q != '\t' && *q != '\r'; q++) {
        /* void */
    }

    blen = q - p;

    if (tnl_ctl_pubkey_check_type(key->type, p, blen, source) != 0) {
        goto done;
    }

    b64 = strndup(p, blen);
    if (b64 == NULL) {
        tnl_ctl_error("out of memory");
        goto done;
    }

    if (ssh_pki_import_pubkey_base64(b64, ssh_key_type_from_name(key->type),
                                     &pk)
        != SSH_OK)
    {
        tnl_ctl_error("%s: the key data is not a valid %s public key: copy "
                      "the whole .pub line again", source, key->type);
        goto done;
    }

    if (ssh_get_publickey_hash(pk, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen)
        != SSH_OK
        || (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
                                          hlen))
           == NULL
        || strlen(fp) >= sizeof(key->fingerprint)
        || ssh_pki_export_pubkey_base64(pk, &canonical) != SSH_OK)
    {
        tnl_ctl_error("%s: libssh cannot fingerprint this %s key",
                      source, key->type);
        goto done;
    }

    strcpy(key->fingerprint, fp);

    key->base64 = strdup(canonical);
    key->comment = tnl_ctl_pubkey_comment(q, end, source);

    if (key->base64 == NULL || key->comment == NULL) {
        if (key->base64 == NULL) {
            tnl_ctl_error("out of memory");
        }

        tnl_ctl_pubkey_free(key);
        goto done;
    }

    rc = 0;

done:

    ssh_clean_pubkey_hash(&hash);
    SSH_STRING_FREE_CHAR(fp);
    SSH_STRING_FREE_CHAR(canonical);
    ssh_key_free(pk);
    free(b64);

    return rc;
}


void
tnl_ctl_pubkey_free(tnl_ctl_pubkey_t *key)
{
    free(key->base64);
    free(key->comment);
    key->base64 = NULL;
    key->comment = NULL;
}
