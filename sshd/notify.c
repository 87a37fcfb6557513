/*
 * sd_notify's datagram protocol (see notify.h).  The socket is opened per
 * message: tunneld sends a handful (READY, STOPPING), never in a loop.
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"


int
tnl_notify(const char *state)
{
    struct sockaddr_un  sa;
    const char         *path;
    socklen_t           len;
    size_t              n;
    ssize_t             sent;
    int                 fd;

    path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0') {
        return 1;
    }

    n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
        tnl_log_warn("NOTIFY_SOCKET \"%s\" is not a socket path: not "
                     "telling the service manager \"%s\"", path, state);
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);

    if (path[0] == '@') {
        sa.sun_path[0] = '\0';           /* abstract: no trailing NUL */
        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        len = (socklen_t) sizeof(sa);
    }

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        tnl_log_warn("cannot notify the service manager: socket(): %s",
                     strerror(errno));
        return -1;
    }

    sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                  (struct sockaddr *) &sa, len);
    close(fd);

    if (sent < 0) {
        tnl_log_warn("cannot notify the service manager at \"%s\": %s",
                     path, strerror(errno));
        return -1;
    }

    return 0;
}
