/*
 * tunneld: options and start-up.  Reads the command line, then the
 * --config file for what the command line did not set (then DATABASE_URL
 * and REDIS_URL as fallbacks), prepares the socket directory
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
#include <strings.h>
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


#define TNL_CONF_LINE  4096


static char         tnl_node_buf[256];
static char         tnl_url_buf[512];

/* options the command line set: the config file does not override them */
static char         tnl_opt_cmdline[128];


static const struct option  tnl_opts[] = {
    { "config",         required_argument, NULL, 'C' },
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
    { "log-format",     required_argument, NULL, 'L' },
    { "no-activation",  no_argument,       NULL, 'N' },
    { "activation-ttl", required_argument, NULL, 'E' },
    { "activation-max-per-addr", required_argument, NULL, 'P' },
    { "activation-max", required_argument, NULL, 'M' },
    { "debug",          no_argument,       NULL, 'v' },
    { "help",           no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};


static void
tnl_usage(FILE *f)
{
    fprintf(f,
        "usage: tunneld [options]\n"
        "  --config FILE           read options from FILE: one \"name =\n"
        "                          value\" a line, the names below without\n"
        "                          \"--\" (debug = yes); the command line\n"
        "                          wins over the file\n"
        "  --listen ADDR:PORT      default 0.0.0.0:2222 (repeatable)\n"
        "  --host-key PATH         default ./ssh_host_ed25519_key\n"
        "  --socket-dir DIR        default ./sockets\n"
        "  --socket-group GROUP    group owning the sockets\n"
        "  --domain DOMAIN         default localhost\n"
        "  --public-url TEMPLATE   default http://%%s.DOMAIN\n"
        "  --admin-url URL         base URL of the web UI (URL/activate\n"
        "                          and URL/keys), shown for an unknown key\n"
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
        "  --log-format FORMAT     text (default) or json, one line per\n"
        "                          event on stderr either way\n"
        "  --no-activation         refuse unknown keys (no activation code)\n"
        "  --activation-ttl SECONDS  a code's life, default 600\n"
        "  --activation-max-per-addr N  codes pending per client address,\n"
        "                          default 3\n"
        "  --activation-max N      codes pending in all, default 1000\n"
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
tnl_number(const char *where, const char *opt, const char *s, int min,
    int max, int *out)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);

    if (errno || *end != '\0' || end == s || v < min || v > max) {
        fprintf(stderr, "tunneld: %s%s wants a number from %d to %d, not "
                "\"%s\"\n", where, opt, min, max, s);
        return -1;
    }

    *out = (int) v;
    return 0;
}


/*
 * Applies one option.  where is "" on the command line and "FILE:LINE: "
 * for the config file (error messages name the place); opt is the
 * option as the user wrote it there ("--workers" or "workers").  arg
 * lives as long as the process.
 */
static int
tnl_option(int c, const char *where, const char *opt, char *arg)
{
    switch (c) {
    case 'l':
        if (tnl_conf.nlisten == TNL_LISTEN_MAX) {
            fprintf(stderr, "tunneld: %stoo many %s (at most %d)\n", where,
                    opt, TNL_LISTEN_MAX);
            return -1;
        }
        tnl_conf.listen[tnl_conf.nlisten++] = arg;
        break;
    case 'k': tnl_conf.host_key = arg; break;
    case 's': tnl_conf.socket_dir = arg; break;
    case 'g': tnl_conf.socket_group = arg; break;
    case 'd': tnl_conf.domain = arg; break;
    case 'u': tnl_conf.public_url = arg; break;
    case 'a':
        /* "http://host/" and "http://host" give the same keys URL */
        tnl_admin_url_trim(arg);
        tnl_conf.admin_url = arg[0] != '\0' ? arg : NULL;
        break;
    case 'D': tnl_conf.database_url = arg; break;
    case 'R': tnl_conf.redis_url = arg; break;
    case 'n': tnl_conf.node = arg; break;
    case 'A': tnl_conf.api_listen = arg; break;
    case 'T': tnl_conf.api_token_file = arg; break;
    case 'f':
        return tnl_number(where, opt, arg, 1, 1000, &tnl_conf.max_forwards);
    case 'G':
        return tnl_number(where, opt, arg, 1, 3600, &tnl_conf.login_grace);
    case 'm':
        return tnl_number(where, opt, arg, 1, 100000,
                          &tnl_conf.max_startups);
    case 'K':
        return tnl_number(where, opt, arg, 1, 3600, &tnl_conf.keepalive);
    case 'w':
        return tnl_number(where, opt, arg, 1, TNL_WORKERS_MAX,
                          &tnl_conf.workers);
    case 'c':
        /* set before the workers fork: they inherit it */
        if (tnl_session_set_ciphers(arg) != 0) {
            fprintf(stderr, "tunneld: %s%s \"%s\" names no cipher libssh "
                    "supports (e.g. aes128-gcm@openssh.com,"
                    "chacha20-poly1305@openssh.com)\n", where, opt, arg);
            return -1;
        }
        break;
    case 'L':
        if (tnl_log_set_format(arg) != 0) {
            fprintf(stderr, "tunneld: %s%s wants \"text\" or \"json\", not "
                    "\"%s\"\n", where, opt, arg);
            return -1;
        }
        break;
    case 'N':
        tnl_activation_conf.enabled = 0;
        break;
    case 'E':
        return tnl_number(where, opt, arg, 1, 86400,
                          &tnl_activation_conf.ttl);
    case 'P':
        return tnl_number(where, opt, arg, 1, 1000000,
                          &tnl_activation_conf.max_per_addr);
    case 'M':
        return tnl_number(where, opt, arg, 1, 1000000,
                          &tnl_activation_conf.max_total);
    case 'v':
        tnl_log_set_level(TNL_LOG_DEBUG);
        break;
    default:
        return -1;
    }

    return 0;
}


static char *
tnl_conf_trim(char *p)
{
    char  *end;

    while (*p == ' ' || *p == '\t') {
        p++;
    }

    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'
                       || end[-1] == '\r'))
    {
        *--end = '\0';
    }

    /* "value" keeps spaces at its ends; nothing inside is special */
    if (end - p >= 2 && p[0] == '"' && end[-1] == '"') {
        end[-1] = '\0';
        p++;
    }

    return p;
}


/* yes/no for an option without an argument ("debug = yes"): 1, 0, -1 */
static int
tnl_conf_flag(const char *v)
{
    static const char  *yes[] = { "yes", "true", "on", "1" };
    static const char  *no[] = { "no", "false", "off", "0" };
    size_t              i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            return 1;
        }
        if (strcasecmp(v, no[i]) == 0) {
            return 0;
        }
    }

    return -1;
}


/*
 * The config file: "name = value" lines with the long option names,
 * blank lines and lines starting with '#' (a '#' after a value is part
 * of it: database URLs may hold one).  An option the command line set is
 * skipped (all of its lines, for the repeatable --listen).
 */
/* the options whose string tnl_option() keeps in tnl_conf */
#define TNL_OPT_KEPT  "lksgduaDRnAT"


static int
tnl_conf_read(const char *path)
{
    const struct option  *o;
    FILE                 *f;
    char                  line[TNL_CONF_LINE], where[600], *p, *eq, *name;
    char                 *value;
    int                   n = 0, rc = -1, flag, kept;

    f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "tunneld: cannot read --config \"%s\": %s\n", path,
                strerror(errno));
        return -1;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        snprintf(where, sizeof(where), "%s:%d: ", path, n);

        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "tunneld: %sline longer than %d bytes\n", where,
                    TNL_CONF_LINE - 2);
            goto done;
        }

        p = tnl_conf_trim(line);
        if (*p == '\0' || *p == '#') {
            continue;
        }

        eq = strchr(p, '=');
        if (eq == NULL) {
            fprintf(stderr, "tunneld: %sexpected \"name = value\", not "
                    "\"%s\"\n", where, p);
            goto done;
        }

        *eq = '\0';
        name = tnl_conf_trim(p);
        value = tnl_conf_trim(eq + 1);

        for (o = tnl_opts; o->name != NULL; o++) {
            if (strcmp(o->name, name) == 0) {
                break;
            }
        }

        if (o->name == NULL || o->val == 'C' || o->val == 'h') {
            fprintf(stderr, "tunneld: %sunknown option \"%s\" (the names "
                    "are tunneld --help's, without \"--\")\n", where, name);
            goto done;
        }

        if (tnl_opt_cmdline[o->val]) {
            continue;
        }

        if (o->has_arg == no_argument) {
            flag = tnl_conf_flag(value);
            if (flag == -1) {
                fprintf(stderr, "tunneld: %s%s wants yes or no, not \"%s\"\n",
                        where, name, value);
                goto done;
            }
            if (flag == 0) {
                continue;
            }
        }

        /*
         * tnl_conf keeps a pointer to the value of a string option: a copy
         * that lives as long as the process.  A number, a format or a
         * cipher list is parsed (or copied) at once: the line will do, and
         * a copy would be lost memory (LeakSanitizer, t/120-tunneld-config.t)
         */
        kept = strchr(TNL_OPT_KEPT, o->val) != NULL;
        if (kept) {
            value = strdup(value);
            if (value == NULL) {
                fprintf(stderr, "tunneld: %sout of memory\n", where);
                goto done;
            }
        }

        if (tnl_option(o->val, where, name, value) != 0) {
            if (kept) {
                free(value);             /* refused: nothing points to it */
            }
            goto done;
        }
    }

    if (ferror(f)) {
        fprintf(stderr, "tunneld: cannot read --config \"%s\": %s\n", path,
                strerror(errno));
        goto done;
    }

    rc = 0;

done:

    fclose(f);
    return rc;
}


static int
tnl_options(int argc, char **argv)
{
    const char  *config = NULL;
    long         ncpu;
    char         name[32];
    int          c, idx = 0;

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

    while ((c = getopt_long(argc, argv, "", tnl_opts, &idx)) != -1) {
        switch (c) {
        case 'C':
            config = optarg;
            break;
        case 'h':
            tnl_usage(stdout);
            exit(0);
        case '?':
            tnl_usage(stderr);
            return -1;
        default:
            snprintf(name, sizeof(name), "--%s", tnl_opts[idx].name);
            if (tnl_option(c, "", name, optarg) != 0) {
                return -1;
            }
            tnl_opt_cmdline[c] = 1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "tunneld: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }

    if (config != NULL && tnl_conf_read(config) != 0) {
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
        fprintf(stderr, "tunneld: no database: use --database-url, "
                "database-url in --config or set DATABASE_URL\n");
        return -1;
    }

    if (tnl_conf.redis_url == NULL || tnl_conf.redis_url[0] == '\0') {
        fprintf(stderr, "tunneld: no Redis: use --redis-url, redis-url in "
                "--config or set REDIS_URL\n");
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
    sigaddset(&set, SIGHUP);
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
