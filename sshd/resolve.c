/*
 * Host names resolved on a thread (resolve.h).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "resolve.h"


#define TNL_RESOLVE_MAX  1024          /* bytes of addresses in a result */


struct tnl_resolve_s {
    tnl_io_t         io;
    int              fds[2];
    char            *hosts;
    tnl_resolve_pt   cb;               /* NULL once cancelled */
    void            *data;

    /* written by the thread before it writes to fds[1] */
    char             addrs[TNL_RESOLVE_MAX];
    char             err[256];
    int              failed;
};


int
tnl_resolve_is_numeric(const char *host)
{
    unsigned char  buf[sizeof(struct in6_addr)];

    return host[0] == '\0' || host[0] == '/' || host[0] == '@'
           || inet_pton(AF_INET, host, buf) == 1
           || inet_pton(AF_INET6, host, buf) == 1;
}


int
tnl_resolve_list_is_numeric(const char *hosts)
{
    char   one[256];
    const char  *p, *end;
    size_t       len;

    for (p = hosts; ; p = end + 1) {
        end = strchr(p, ',');
        len = end ? (size_t) (end - p) : strlen(p);

        if (len >= sizeof(one)) {
            return 0;
        }

        memcpy(one, p, len);
        one[len] = '\0';

        if (!tnl_resolve_is_numeric(one)) {
            return 0;
        }

        if (end == NULL) {
            return 1;
        }
    }
}


/* the first IPv4 address of name, else the first IPv6 one */

static int
tnl_resolve_one(tnl_resolve_t *r, const char *name, char *out, size_t size)
{
    int               rc, family;
    struct addrinfo   hints, *res, *ai;

    for (family = AF_INET; ; family = AF_INET6) {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = family;
        hints.ai_socktype = SOCK_STREAM;

        rc = getaddrinfo(name, NULL, &hints, &res);

        if (rc == 0) {
            for (ai = res; ai; ai = ai->ai_next) {
                if (getnameinfo(ai->ai_addr, ai->ai_addrlen, out, size,
                                NULL, 0, NI_NUMERICHOST) == 0)
                {
                    freeaddrinfo(res);
                    return 0;
                }
            }

            freeaddrinfo(res);
        }

        if (family == AF_INET6) {
            break;
        }
    }

    snprintf(r->err, sizeof(r->err), "cannot resolve \"%.200s\": %s", name,
             rc ? gai_strerror(rc) : "no usable address");
    return -1;
}


static void *
tnl_resolve_thread(void *arg)
{
    tnl_resolve_t  *r = arg;
    char            one[256], addr[INET6_ADDRSTRLEN];
    const char     *p, *end;
    size_t          len, used;
    ssize_t         n;

    used = 0;
    r->addrs[0] = '\0';

    for (p = r->hosts; ; p = end + 1) {
        end = strchr(p, ',');
        len = end ? (size_t) (end - p) : strlen(p);

        if (len >= sizeof(one)) {
            snprintf(r->err, sizeof(r->err), "host name too long");
            r->failed = 1;
            break;
        }

        memcpy(one, p, len);
        one[len] = '\0';

        if (one[0] == '\0' || one[0] == '/' || one[0] == '@') {
            addr[0] = '\0';         /* a socket: libpq wants "" here */

        } else if (len < sizeof(addr) && tnl_resolve_is_numeric(one)) {
            memcpy(addr, one, len + 1);

        } else if (tnl_resolve_one(r, one, addr, sizeof(addr)) == -1) {
            r->failed = 1;
            break;
        }

        if (used + strlen(addr) + 2 > sizeof(r->addrs)) {
            snprintf(r->err, sizeof(r->err), "too many hosts");
            r->failed = 1;
            break;
        }

        used += (size_t) snprintf(r->addrs + used, sizeof(r->addrs) - used,
                                  "%s%s", used ? "," : "", addr);

        if (end == NULL) {
            break;
        }
    }

    /* the last touch of r on this thread */
    do {
        n = write(r->fds[1], "r", 1);
    } while (n == -1 && errno == EINTR);

    return NULL;
}


static void
tnl_resolve_free(tnl_resolve_t *r)
{
    close(r->fds[0]);
    close(r->fds[1]);
    free(r->hosts);
    free(r);
}


static void
tnl_resolve_done(tnl_io_t *io, uint32_t events)
{
    tnl_resolve_t  *r = io->data;
    char            c;
    ssize_t         n;

    (void) events;

    n = read(r->fds[0], &c, 1);
    if (n != 1) {
        return;                     /* spurious, or EAGAIN */
    }

    tnl_io_del(&r->io);

    if (r->cb) {
        r->cb(r->failed ? NULL : r->addrs, r->failed ? r->err : NULL,
              r->data);
    }

    tnl_resolve_free(r);
}


tnl_resolve_t *
tnl_resolve_start(tnl_loop_t *loop, const char *hosts, tnl_resolve_pt cb,
    void *data)
{
    int              rc;
    pthread_t        tid;
    pthread_attr_t   attr;
    tnl_resolve_t   *r;

    r = calloc(1, sizeof(tnl_resolve_t));
    if (r == NULL) {
        tnl_log_error("resolve: out of memory");
        return NULL;
    }

    r->hosts = strdup(hosts);
    r->cb = cb;
    r->data = data;
    r->fds[0] = -1;
    r->fds[1] = -1;

    if (r->hosts == NULL || pipe2(r->fds, O_CLOEXEC | O_NONBLOCK) == -1) {
        tnl_log_error("resolve: cannot make a pipe: %s", strerror(errno));
        free(r->hosts);
        free(r);
        return NULL;
    }

    tnl_io_init(&r->io, loop, r->fds[0], tnl_resolve_done, r);

    if (tnl_io_set(&r->io, EPOLLIN) == -1) {
        tnl_log_error("resolve: cannot watch a pipe: %s", strerror(errno));
        tnl_resolve_free(r);
        return NULL;
    }

    /* getaddrinfo with NSS modules wants more than a tiny stack */
    (void) pthread_attr_init(&attr);
    (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    (void) pthread_attr_setstacksize(&attr, 512 * 1024);

    rc = pthread_create(&tid, &attr, tnl_resolve_thread, r);

    (void) pthread_attr_destroy(&attr);

    if (rc != 0) {
        tnl_log_error("resolve: cannot start a thread: %s", strerror(rc));
        tnl_io_del(&r->io);
        tnl_resolve_free(r);
        return NULL;
    }

    return r;
}


void
tnl_resolve_cancel(tnl_resolve_t *r)
{
    r->cb = NULL;
    r->data = NULL;
}
