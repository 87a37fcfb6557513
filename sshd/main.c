/*
 * tunneld: options, start-up and shutdown.  Reads the command line (with
 * DATABASE_URL and REDIS_URL as fallbacks), prepares the socket directory
 * (0750, stale t-*.sock removed), loads the host key, starts the database,
 * Redis and listener parts on one loop, and on SIGINT/SIGTERM closes every
 * session (releasing its routes) before exiting.  Owns the loop.
 */

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "db.h"
#include "hostkey.h"
#include "keys.h"
#include "log.h"
#include "loop.h"
#include "routes.h"
#include "server.h"
#include "session.h"
#include "tnl_name.h"


#define TNL_SHUTDOWN_MS  2000


static tnl_loop_t  *tnl_main_loop;
static tnl_io_t     tnl_signal_io;
static int          tnl_stopping;
static char         tnl_node_buf[256];
static char         tnl_url_buf[512];


static void
tnl_usage(FILE *f)
{
    fprintf(f,
        "usage: tunneld [options]\n"
        "  --listen ADDR:PORT      default 0.0.0.0:2222 (repeatable)\n"
        "  --host-key PATH         default ./ssh_host_ed25519_key\n"
        "  --socket-dir DIR        default ./sockets\n"
        "  --socket-group GROUP    group owning the sockets\n"
        "  --domain DOMAIN         default localhost\n"
        "  --public-url TEMPLATE   default http://%%s.DOMAIN\n"
        "  --database-url URL      default $DATABASE_URL\n"
        "  --redis-url URL         default $REDIS_URL\n"
        "  --node ID               default the host name\n"
        "  --max-forwards N        per session, default 8\n"
        "  --reserved-names LIST   comma-separated names nobody may use\n"
        "  --login-grace SECONDS   default 30\n"
        "  --max-startups N        unauthenticated connections, default 100\n"
        "  --keepalive SECONDS     default 30\n"
        "  --debug                 log every stream\n");
}


static int
tnl_number(const char *opt, const char *s, int min, int max, int *out)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);

    if (errno || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr, "tunneld: %s wants a number from %d to %d, not "
                "\"%s\"\n", opt, min, max, s);
        return -1;
    }

    *out = (int) v;
    return 0;
}


static int
tnl_options(int argc, char **argv)
{
    static const struct option  opts[] = {
        { "listen",         required_argument, NULL, 'l' },
        { "host-key",       required_argument, NULL, 'k' },
        { "socket-dir",     required_argument, NULL, 's' },
        { "socket-group",   required_argument, NULL, 'g' },
        { "domain",         required_argument, NULL, 'd' },
        { "public-url",     required_argument, NULL, 'u' },
        { "database-url",   required_argument, NULL, 'D' },
        { "redis-url",      required_argument, NULL, 'R' },
        { "node",           required_argument, NULL, 'n' },
        { "max-forwards",   required_argument, NULL, 'f' },
        { "reserved-names", required_argument, NULL, 'r' },
        { "login-grace",    required_argument, NULL, 'G' },
        { "max-startups",   required_argument, NULL, 'm' },
        { "keepalive",      required_argument, NULL, 'K' },
        { "debug",          no_argument,       NULL, 'v' },
        { "help",           no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    int  c;

    tnl_conf.host_key = "./ssh_host_ed25519_key";
    tnl_conf.socket_dir = "./sockets";
    tnl_conf.socket_gid = (gid_t) -1;
    tnl_conf.domain = "localhost";
    tnl_conf.database_url = getenv("DATABASE_URL");
    tnl_conf.redis_url = getenv("REDIS_URL");
    tnl_conf.reserved_names = TNL_NAME_DEFAULT_RESERVED;
    tnl_conf.max_forwards = 8;
    tnl_conf.login_grace = 30;
    tnl_conf.max_startups = 100;
    tnl_conf.keepalive = 30;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (tnl_conf.nlisten == TNL_LISTEN_MAX) {
                fprintf(stderr, "tunneld: too many --listen\n");
                return -1;
            }
            tnl_conf.listen[tnl_conf.nlisten++] = optarg;
            break;
        case 'k': tnl_conf.host_key = optarg; break;
        case 's': tnl_conf.socket_dir = optarg; break;
        case 'g': tnl_conf.socket_group = optarg; break;
        case 'd': tnl_conf.domain = optarg; break;
        case 'u': tnl_conf.public_url = optarg; break;
        case 'D': tnl_conf.database_url = optarg; break;
        case 'R': tnl_conf.redis_url = optarg; break;
        case 'n': tnl_conf.node = optarg; break;
        case 'r': tnl_conf.reserved_names = optarg; break;
        case 'f':
            if (tnl_number("--max-forwards", optarg, 1, 1000,
                           &tnl_conf.max_forwards))
            {
                return -1;
            }
            break;
        case 'G':
            if (tnl_number("--login-grace", optarg, 1, 3600,
                           &tnl_conf.login_grace))
            {
                return -1;
            }
            break;
        case 'm':
            if (tnl_number("--max-startups", optarg, 1, 100000,
                           &tnl_conf.max_startups))
            {
                return -1;
            }
            break;
        case 'K':
            if (tnl_number("--keepalive", optarg, 1, 3600,
                           &tnl_conf.keepalive))
            {
                return -1;
            }
            break;
        case 'v':
            tnl_log_set_level(TNL_LOG_DEBUG);
            break;
        case 'h':
            tnl_usage(stdout);
            exit(0);
        default:
            tnl_usage(stderr);
            return -1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "tunneld: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }

    if (tnl_conf.nlisten == 0) {
        tnl_conf.listen[tnl_conf.nlisten++] = "0.0.0.0:2222";
    }

    if (tnl_conf.node == NULL) {
        if (gethostname(tnl_node_buf, sizeof(tnl_node_buf) - 1) != 0) {
            snprintf(tnl_node_buf, sizeof(tnl_node_buf), "tunneld");
        }
        tnl_conf.node = tnl_node_buf;
    }

    if (tnl_conf.public_url == NULL) {
        snprintf(tnl_url_buf, sizeof(tnl_url_buf), "http://%%s.%s",
                 tnl_conf.domain);
        tnl_conf.public_url = tnl_url_buf;
    }

    if (tnl_conf.database_url == NULL || tnl_conf.database_url[0] == '\0') {
        fprintf(stderr, "tunneld: no database: use --database-url or set "
                "DATABASE_URL\n");
        return -1;
    }

    if (tnl_conf.redis_url == NULL || tnl_conf.redis_url[0] == '\0') {
        fprintf(stderr, "tunneld: no Redis: use --redis-url or set "
                "REDIS_URL\n");
        return -1;
    }

    return 0;
}


static int
tnl_socket_dir_prepare(void)
{
    struct group   *gr;
    struct stat     st;
    struct dirent  *de;
    DIR            *dir;
    char            path[4096];
    size_t          len;
    int             removed = 0;

    if (mkdir(tnl_conf.socket_dir, 0750) == -1 && errno != EEXIST) {
        tnl_log_error("cannot create socket dir \"%s\": %s",
                      tnl_conf.socket_dir, strerror(errno));
        return -1;
    }

    if (stat(tnl_conf.socket_dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
        tnl_log_error("socket dir \"%s\" is not a directory",
                      tnl_conf.socket_dir);
        return -1;
    }

    if (tnl_conf.socket_group != NULL) {
        gr = getgrnam(tnl_conf.socket_group);
        if (gr == NULL) {
            tnl_log_error("unknown --socket-group \"%s\"",
                          tnl_conf.socket_group);
            return -1;
        }

        tnl_conf.socket_gid = gr->gr_gid;

        if (st.st_gid != gr->gr_gid
            && chown(tnl_conf.socket_dir, (uid_t) -1, gr->gr_gid) == -1)
        {
            tnl_log_error("cannot give \"%s\" to group \"%s\": %s",
                          tnl_conf.socket_dir, tnl_conf.socket_group,
                          strerror(errno));
            return -1;
        }
    }

    if ((st.st_mode & 07777) != 0750
        && chmod(tnl_conf.socket_dir, 0750) == -1)
    {
        tnl_log_warn("cannot chmod 0750 \"%s\": %s", tnl_conf.socket_dir,
                     strerror(errno));
    }

    /* sockets of a previous run: nginx would get ECONNREFUSED on them */

    dir = opendir(tnl_conf.socket_dir);
    if (dir == NULL) {
        tnl_log_error("cannot read \"%s\": %s", tnl_conf.socket_dir,
                      strerror(errno));
        return -1;
    }

    while ((de = readdir(dir)) != NULL) {
        len = strlen(de->d_name);
        if (len < 7 || strncmp(de->d_name, "t-", 2) != 0
            || strcmp(de->d_name + len - 5, ".sock") != 0)
        {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", tnl_conf.socket_dir,
                 de->d_name);
        if (unlink(path) == 0) {
            removed++;
        }
    }

    closedir(dir);

    if (removed) {
        tnl_log_info("removed %d stale sockets from \"%s\"", removed,
                     tnl_conf.socket_dir);
    }

    return 0;
}


static void
tnl_signal_handler(tnl_io_t *io, uint32_t events)
{
    struct signalfd_siginfo  si;

    (void) events;

    while (read(io->fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (!tnl_stopping) {
            tnl_log_info("signal %u: shutting down", si.ssi_signo);
        }
        tnl_stopping = 1;
        tnl_loop_stop(tnl_main_loop);
    }
}


static int
tnl_signals(void)
{
    sigset_t  set;
    int       fd;

    signal(SIGPIPE, SIG_IGN);

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);

    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        return -1;
    }

    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    tnl_io_init(&tnl_signal_io, tnl_main_loop, fd, tnl_signal_handler, NULL);

    return tnl_io_set(&tnl_signal_io, EPOLLIN);
}


static void
tnl_shutdown(void)
{
    uint64_t  deadline;

    tnl_server_stop_listening();

    tnl_sessions_close_all("The tunnel server is restarting: your tunnels "
                           "are closed; reconnect in a moment.",
                           "server shutting down");

    /* bounded: let DISCONNECTs and Redis releases go out */

    deadline = tnl_now_ms() + TNL_SHUTDOWN_MS;

    while (tnl_sessions_count() > 0 && tnl_now_ms() < deadline) {
        if (tnl_loop_once(tnl_main_loop, 50) == -1) {
            break;
        }
    }

    deadline = tnl_now_ms() + 200;
    while (tnl_now_ms() < deadline) {
        if (tnl_loop_once(tnl_main_loop, 20) == -1) {
            break;
        }
    }

    tnl_routes_stop();
    tnl_db_stop(1000);
}


int
main(int argc, char **argv)
{
    ssh_key  key;
    int      rc = 1;

    if (tnl_options(argc, argv) == -1) {
        return 2;
    }

    if (ssh_init() != SSH_OK) {
        tnl_log_error("libssh initialisation failed");
        return 1;
    }

    tnl_main_loop = tnl_loop_create();
    if (tnl_main_loop == NULL) {
        tnl_log_error("cannot create the event loop: %s", strerror(errno));
        return 1;
    }

    if (tnl_signals() == -1) {
        tnl_log_error("cannot set up signals: %s", strerror(errno));
        goto done;
    }

    if (tnl_socket_dir_prepare() == -1) {
        goto done;
    }

    key = tnl_hostkey_load(tnl_conf.host_key);
    if (key == NULL) {
        goto done;
    }

    if (tnl_db_start(tnl_main_loop, tnl_conf.database_url, tnl_conf.node)
        == -1)
    {
        tnl_log_error("unusable database URL");
        ssh_key_free(key);
        goto done;
    }

    if (tnl_routes_start(tnl_main_loop, tnl_conf.redis_url,
                         tnl_session_kick) == -1)
    {
        tnl_log_error("unusable Redis URL \"%s\"", tnl_conf.redis_url);
        ssh_key_free(key);
        goto done;
    }

    tnl_keys_on_change(tnl_sessions_keys_changed);

    if (tnl_server_start(tnl_main_loop, key) == -1) {
        goto done;
    }

    tnl_log_info("started: node \"%s\" domain \"%s\" sockets \"%s\"",
                 tnl_conf.node, tnl_conf.domain, tnl_conf.socket_dir);

    if (tnl_loop_run(tnl_main_loop) == -1) {
        tnl_log_error("event loop failed: %s", strerror(errno));
    }

    tnl_shutdown();

    rc = 0;

done:

    tnl_server_free();
    tnl_loop_destroy(tnl_main_loop);
    ssh_finalize();

    tnl_log_info("stopped");

    return rc;
}
