/*
 * tunneld: options and start-up.  Reads the command line (with
 * DATABASE_URL and REDIS_URL as fallbacks), prepares the socket directory
 * (0750, stale t-*.sock removed), loads (or creates) the host key and
 * opens the listening sockets, all once, before any worker exists; then
 * runs one worker in this process (--workers 1) or the supervisor of N
 * (worker.c), which owns the key and the listening sockets from there on.
 */

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "activation.h"
#include "api.h"
#include "hostkey.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "session.h"
#include "tnl_name.h"
#include "worker.h"


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
        "  --admin-url URL         base URL of the web UI (URL/activate\n"
        "                          and URL/keys), shown for an unknown key\n"
        "  --no-activation         refuse unknown keys (no activation code)\n"
        "  --activation-ttl SECONDS  a code's life, default 600\n"
        "  --activation-max-per-addr N  codes pending per client address,\n"
        "                          default 3\n"
        "  --activation-max N      codes pending in all, default 1000\n"
        "  --database-url URL      default $DATABASE_URL\n"
        "  --redis-url URL         default $REDIS_URL\n"
        "  --node ID               default the host name\n"
        "  --max-forwards N        per session, default 8\n"
        "  --login-grace SECONDS   default 30\n"
        "  --max-startups N        unauthenticated connections, default 100\n"
        "  --keepalive SECONDS     default 60\n"
        "  --workers N             processes, default the number of CPUs\n"
        "  --ciphers LIST          SSH ciphers to offer, default: AES-GCM\n"
        "                          only to OpenSSH clients (fastest), else\n"
        "                          AES-GCM, chacha20-poly1305, AES-CTR\n"
        "  --api HOST:PORT         also serve the management API over TCP\n"
        "                          (always on DIR/api.sock); a non-loopback\n"
        "                          address needs --api-token-file\n"
        "  --api-token-file FILE   TCP API requests need this bearer token\n"
        "  --debug                 log every stream\n");
}


static void
tnl_admin_url_trim(char *url)
{
    size_t  len;

    len = strlen(url);
    while (len > 0 && url[len - 1] == '/') {
        url[--len] = '\0';
    }
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
        { "admin-url",      required_argument, NULL, 'a' },
        { "database-url",   required_argument, NULL, 'D' },
        { "redis-url",      required_argument, NULL, 'R' },
        { "node",           required_argument, NULL, 'n' },
        { "max-forwards",   required_argument, NULL, 'f' },
        { "login-grace",    required_argument, NULL, 'G' },
        { "max-startups",   required_argument, NULL, 'm' },
        { "keepalive",      required_argument, NULL, 'K' },
        { "workers",        required_argument, NULL, 'w' },
        { "ciphers",        required_argument, NULL, 'c' },
        { "api",            required_argument, NULL, 'A' },
        { "api-token-file", required_argument, NULL, 'T' },
        { "no-activation",  no_argument,       NULL, 'N' },
        { "activation-ttl", required_argument, NULL, 'E' },
        { "activation-max-per-addr", required_argument, NULL, 'P' },
        { "activation-max", required_argument, NULL, 'M' },
        { "debug",          no_argument,       NULL, 'v' },
        { "help",           no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    long  ncpu;
    int   c;

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    tnl_conf.workers = ncpu < 1 ? 1 : ncpu > TNL_WORKERS_MAX
                       ? TNL_WORKERS_MAX : (int) ncpu;
    tnl_conf.host_key = "./ssh_host_ed25519_key";
    tnl_conf.socket_dir = "./sockets";
    tnl_conf.socket_gid = (gid_t) -1;
    tnl_conf.domain = "localhost";
    tnl_conf.database_url = getenv("DATABASE_URL");
    tnl_conf.redis_url = getenv("REDIS_URL");
    tnl_conf.max_forwards = 8;
    tnl_conf.login_grace = 30;
    tnl_conf.max_startups = 100;
    /*
     * An SSH-level message keeps NAT mappings alive; dead peers are found
     * by TCP keepalive/TCP_USER_TIMEOUT anyway.  Measured at 20,000 idle
     * tunnels: 30 s cost about 1.5 % of a core in sendto() alone.
     */
    tnl_conf.keepalive = 60;

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
        case 'a':
            /* "http://host/" and "http://host" give the same keys URL */
            tnl_admin_url_trim(optarg);
            tnl_conf.admin_url = optarg[0] != '\0' ? optarg : NULL;
            break;
        case 'D': tnl_conf.database_url = optarg; break;
        case 'R': tnl_conf.redis_url = optarg; break;
        case 'n': tnl_conf.node = optarg; break;
        case 'A': tnl_conf.api_listen = optarg; break;
        case 'T': tnl_conf.api_token_file = optarg; break;
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
        case 'w':
            if (tnl_number("--workers", optarg, 1, TNL_WORKERS_MAX,
                           &tnl_conf.workers))
            {
                return -1;
            }
            break;
        case 'N':
            tnl_activation_conf.enabled = 0;
            break;
        case 'E':
            if (tnl_number("--activation-ttl", optarg, 1, 86400,
                           &tnl_activation_conf.ttl))
            {
                return -1;
            }
            break;
        case 'P':
            if (tnl_number("--activation-max-per-addr", optarg, 1, 1000000,
                           &tnl_activation_conf.max_per_addr))
            {
                return -1;
            }
            break;
        case 'M':
            if (tnl_number("--activation-max", optarg, 1, 1000000,
                           &tnl_activation_conf.max_total))
            {
                return -1;
            }
            break;
        case 'c':
            /* set before the workers fork: they inherit it */
            if (tnl_session_set_ciphers(optarg) != 0) {
                fprintf(stderr, "tunneld: --ciphers \"%s\" names no cipher "
                        "libssh supports (e.g. aes128-gcm@openssh.com,"
                        "chacha20-poly1305@openssh.com)\n", optarg);
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


int
main(int argc, char **argv)
{
    sigset_t  set;
    ssh_key   key;
    int       fds[TNL_LISTEN_MAX];
    int       rc;

    if (tnl_options(argc, argv) == -1) {
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    /* held until a signalfd reads them: a TERM during start-up waits */

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    (void) sigprocmask(SIG_BLOCK, &set, NULL);

    if (ssh_init() != SSH_OK) {
        tnl_log_error("libssh initialisation failed");
        return 1;
    }

    if (tnl_socket_dir_prepare() == -1) {
        ssh_finalize();
        return 1;
    }

    key = tnl_hostkey_load(tnl_conf.host_key);
    if (key == NULL) {
        ssh_finalize();
        return 1;
    }

    if (tnl_server_listen(fds) == -1) {
        ssh_key_free(key);
        ssh_finalize();
        return 1;
    }

    /* inherited by every worker, like the SSH listeners */

    if (tnl_api_listen() == -1) {
        for (rc = 0; rc < tnl_conf.nlisten; rc++) {
            close(fds[rc]);
        }
        ssh_key_free(key);
        ssh_finalize();
        return 1;
    }

    (void) tnl_metrics_init(tnl_conf.workers);

    /* both take the key and the fds */

    if (tnl_conf.workers == 1) {
        rc = tnl_worker_run(0, 1, key, fds, tnl_conf.nlisten);
    } else {
        rc = tnl_supervisor_run(tnl_conf.workers, key, fds,
                                tnl_conf.nlisten);
    }

    ssh_finalize();

    return rc;
}
