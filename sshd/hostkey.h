/*
 * The server's ed25519 host key.  Loads the key at a path; if the file is
 * missing or empty, generates one and stores it atomically (temp file
 * created 0600 in the same directory, then rename), so the key, and the
 * clients' known_hosts entries, survive restarts.  Never overwrites a file
 * that has content, even an unreadable one.
 */

#ifndef TNL_HOSTKEY_H
#define TNL_HOSTKEY_H

#include <libssh/libssh.h>


/* the private key (caller frees with ssh_key_free), or NULL (logged) */
ssh_key tnl_hostkey_load(const char *path);

#endif /* TNL_HOSTKEY_H */
