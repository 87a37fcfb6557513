/*
 * Host key load-or-create (see hostkey.h).  The key is written in the
 * OpenSSH private key format, the one ssh-keygen writes, plus "PATH.pub"
 * for operators who want to publish the fingerprint.  Owns nothing after
 * it returns: the caller owns the ssh_key.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostkey.h"
#include "log.h"


static int
tnl_hostkey_write_all(int fd, const char *p, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t) n;
    }

    return 0;
}


/* writes text to path through a 0600 temp file in the same directory */
static int
tnl_hostkey_store(const char *path, const char *text, mode_t mode)
{
    char  tmp[4096];
    int   fd, n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        tnl_log_error("host key path \"%s\" is too long", path);
        return -1;
    }

    fd = mkstemp(tmp);     /* created 0600 */
    if (fd == -1) {
        tnl_log_error("cannot create \"%s\": %s", tmp, strerror(errno));
        return -1;
    }

    if (tnl_hostkey_write_all(fd, text, strlen(text)) == -1
        || (mode != 0600 && fchmod(fd, mode) == -1)
        || fsync(fd) == -1)
    {
        tnl_log_error("cannot write \"%s\": %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }

    close(fd);

    if (rename(tmp, path) == -1) {
        tnl_log_error("cannot rename \"%s\" to \"%s\": %s",
                      tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }

    return 0;
}


static ssh_key
tnl_hostkey_generate(const char *path)
{
    ssh_key  key = NULL, pub = NULL;
    char    *priv_text = NULL, *pub_b64 = NULL, *line = NULL;
    char     pub_path[4096];
    size_t   len;

    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        tnl_log_error("cannot generate an ed25519 host key");
        goto failed;
    }

    if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &priv_text)
        != SSH_OK)
    {
        tnl_log_error("cannot encode the new host key");
        goto failed;
    }

    if (tnl_hostkey_store(path, priv_text, 0600) == -1) {
        goto failed;
    }

    tnl_log_info("generated a new ed25519 host key in \"%s\"", path);

    /* the public half is a convenience: failing to write it is not fatal */

    if (ssh_pki_export_privkey_to_pubkey(key, &pub) == SSH_OK
        && ssh_pki_export_pubkey_base64(pub, &pub_b64) == SSH_OK)
    {
        len = strlen(pub_b64) + 64;
        line = malloc(len);
        if (line != NULL
            && snprintf(pub_path, sizeof(pub_path), "%s.pub", path)
               < (int) sizeof(pub_path))
        {
            snprintf(line, len, "ssh-ed25519 %s tunneld\n", pub_b64);
            (void) tnl_hostkey_store(pub_path, line, 0644);
        }
    }

    free(line);
    ssh_string_free_char(pub_b64);
    ssh_key_free(pub);
    ssh_string_free_char(priv_text);

    return key;

failed:

    ssh_string_free_char(priv_text);
    ssh_key_free(key);

    return NULL;
}


ssh_key
tnl_hostkey_load(const char *path)
{
    struct stat  st;
    ssh_key      key = NULL;

    if (stat(path, &st) == -1) {
        if (errno != ENOENT) {
            tnl_log_error("cannot stat host key \"%s\": %s",
                          path, strerror(errno));
            return NULL;
        }

        return tnl_hostkey_generate(path);
    }

    if (st.st_size == 0) {
        return tnl_hostkey_generate(path);
    }

    /*
     * as sshd does ("UNPROTECTED PRIVATE KEY FILE"): a key others could
     * read may already be someone else's, and every client would trust
     * them; refusing beats warning into a log nobody reads
     */
    if (st.st_mode & 077) {
        tnl_log_error("host key \"%s\" is readable by group or others "
                      "(mode %04o): run \"chmod 600 %s\" (and keep its "
                      "directory 0700), or remove it for a new key",
                      path, (unsigned) (st.st_mode & 07777), path);
        return NULL;
    }

    if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
        tnl_log_error("cannot read host key \"%s\" (not a private key "
                      "without passphrase?): fix or remove the file", path);
        return NULL;
    }

    if (ssh_key_type(key) != SSH_KEYTYPE_ED25519) {
        tnl_log_warn("host key \"%s\" is %s, not ed25519",
                     path, ssh_key_type_to_char(ssh_key_type(key)));
    }

    return key;
}
