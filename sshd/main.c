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
#include <pwd.h>
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
#include "copytune.h"
#include "hostkey.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "server.h"
#include "session.h"
#include "startups.h"
#include "tnl_name.h"
#include "worker.h"


#define TNL_CONF_LINE  4096


static char         tnl_node_buf[256];
static char         tnl_url_buf[512];

/* options the command line set: the config file does not override them */
static char         tnl_opt_cmdline[128];

static int          tnl_allow_root;
static const char  *tnl_redis_sentinel;   /* --redis-sentinel */
static const char  *tnl_redis_master;     /* --redis-master */

/* --user NAME: the account to switch to once bound (root only) */
static const char  *tnl_user;
static uid_t        tnl_user_uid;
static gid_t        tnl_user_gid;


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
    { "redis-sentinel", required_argument, NULL, 'q' },
    { "redis-master",   required_argument, NULL, 'J' },
    { "node",           required_argument, NULL, 'n' },
    { "node-address",   required_argument, NULL, 'O' },
    { "max-forwards",   required_argument, NULL, 'f' },
    { "login-grace",    required_argument, NULL, 'G' },
    { "max-startups",   required_argument, NULL, 'm' },
    { "per-source-max-startups", required_argument, NULL, 'S' },
    { "keepalive",      required_argument, NULL, 'K' },
    { "keepalive-count", required_argument, NULL, 'Q' },
    { "workers",        required_argument, NULL, 'w' },
    { "ciphers",        required_argument, NULL, 'c' },
    { "kex",            required_argument, NULL, 'x' },
    { "macs",           required_argument, NULL, 'y' },
    { "hostkey-algorithms", required_argument, NULL, 'z' },
    { "max-channels",   required_argument, NULL, 'o' },
    { "max-pending-requests", required_argument, NULL, 'p' },
    { "max-requests",   required_argument, NULL, 'r' },
    { "api",            required_argument, NULL, 'A' },
    { "api-token-file", required_argument, NULL, 'T' },
    { "log-format",     required_argument, NULL, 'L' },
    { "no-activation",  no_argument,       NULL, 'N' },
    { "activation-ttl", required_argument, NULL, 'E' },
    { "activation-max-per-addr", required_argument, NULL, 'P' },
    { "activation-max", required_argument, NULL, 'M' },
    { "allow-root",     no_argument,       NULL, 'U' },
    { "user",           required_argument, NULL, 'X' },
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
        "  --redis-sentinel IP:PORT,IP:PORT,...\n"
        "                          find the Redis master through these\n"
        "                          sentinels (numeric addresses) instead\n"
        "                          of --redis-url; needs --redis-master\n"
        "  --redis-master NAME     the sentinels' name of the master\n"
        "  --node ID               default the host name\n"
        "  --node-address IP:PORT  this node's internal nginx listener:\n"
        "                          advertised in Redis so other nodes\n"
        "                          forward requests for tunnels held here\n"
        "                          (docs/SCALING.md)\n"
        "  --max-forwards N        per session, default 8\n"
        "  --login-grace SECONDS   default 30\n"
        "  --max-startups N        unauthenticated connections at a time,\n"
        "                          all workers together, default 1000\n"
        "  --per-source-max-startups N  ... from one IPv4 address or IPv6\n"
        "                          /64, default 10\n"
        "  --keepalive SECONDS     default 60: every SECONDS a keepalive\n"
        "                          request the client must answer, and\n"
        "                          TCP_USER_TIMEOUT\n"
        "  --keepalive-count N     intervals without a packet from the\n"
        "                          client before it is dropped, default 3\n"
        "  --workers N             processes, default the number of CPUs\n"
        "  --ciphers LIST          SSH ciphers to offer, default: AES-GCM\n"
        "                          only to OpenSSH clients (fastest), else\n"
        "                          AES-GCM, chacha20-poly1305, AES-CTR\n"
        "  --kex LIST              key exchange algorithms to offer,\n"
        "                          default libssh's (curve25519-sha256\n"
        "                          first)\n"
        "  --macs LIST             MACs to offer (for AES-CTR), default\n"
        "                          libssh's\n"
        "  --hostkey-algorithms LIST  host key algorithms to offer\n"
        "  --max-channels N        channel opens per session, default 16\n"
        "  --max-pending-requests N  forward requests waiting for an\n"
        "                          answer per session, default 64\n"
        "  --max-requests N        requests per minute per session,\n"
        "                          default 300\n"
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
        "  --allow-root            run even as root (refused otherwise)\n"
        "  --user NAME             started as root: bind, read the host\n"
        "                          key, make the socket dir, then run as\n"
        "                          NAME (its groups and --socket-group)\n"
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
    char  err[1024];

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
    case 'q': tnl_redis_sentinel = arg; break;
    case 'J': tnl_redis_master = arg; break;
    case 'n':
        /*
         * Session ids are NODE/PID/N: a '/' in the id would make routes
         * name another node (the text before it) and the sweep of a
         * killed node take the routes of one whose id starts the same.
         */
        if (arg[0] == '\0' || strlen(arg) > 255
            || strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789.-_") != strlen(arg))
        {
            fprintf(stderr, "tunneld: %s%s wants 1 to 255 letters, digits, "
                    "'.', '-' or '_' (unique per tunneld), not \"%s\"\n",
                    where, opt, arg);
            return -1;
        }
        tnl_conf.node = arg;
        break;
    case 'O':
        if (tnl_node_address_valid(arg) != 0) {
            fprintf(stderr, "tunneld: %s%s wants IP:PORT of this node's "
                    "internal nginx listener (e.g. 10.0.0.5:8081, "
                    "[fd00::5]:8081), not \"%s\"\n", where, opt, arg);
            return -1;
        }
        tnl_conf.node_address = arg;
        break;
    case 'A': tnl_conf.api_listen = arg; break;
    case 'T': tnl_conf.api_token_file = arg; break;
    case 'f':
        return tnl_number(where, opt, arg, 1, 1000, &tnl_conf.max_forwards);
    case 'G':
        return tnl_number(where, opt, arg, 1, 3600, &tnl_conf.login_grace);
    case 'm':
        return tnl_number(where, opt, arg, 1, 100000,
                          &tnl_conf.max_startups);
    case 'S':
        return tnl_number(where, opt, arg, 1, 100000,
                          &tnl_conf.per_source_max_startups);
    case 'K':
        return tnl_number(where, opt, arg, 1, 3600, &tnl_conf.keepalive);
    case 'Q':
        return tnl_number(where, opt, arg, 1, 100,
                          &tnl_conf.keepalive_count);
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
    case 'x':
    case 'y':
    case 'z':
        /* set before the workers fork: they inherit it */
        if (tnl_session_set_algorithms(c == 'x' ? TNL_ALGO_KEX
                                       : c == 'y' ? TNL_ALGO_MACS
                                       : TNL_ALGO_HOSTKEYS,
                                       arg, err, sizeof(err)) != 0)
        {
            fprintf(stderr, "tunneld: %s%s\n", where, err);
            return -1;
        }
        break;
    case 'o':
        return tnl_number(where, opt, arg, 1, 100000,
                          &tnl_conf.max_channels);
    case 'p':
        return tnl_number(where, opt, arg, 1, 10000, &tnl_conf.max_pending);
    case 'r':
        return tnl_number(where, opt, arg, 10, 1000000,
                          &tnl_conf.max_requests);
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
    case 'U':
        tnl_allow_root = 1;
        break;
    case 'X':
        tnl_user = arg;
        break;
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


/*
 * --redis-sentinel and --redis-master become the URL redis.c parses,
 * "sentinel://IP:PORT,IP:PORT/NAME"; they take the place of --redis-url.
 */
static int
tnl_redis_sentinel_url(void)
{
    static char  url[1024];

    if (tnl_redis_sentinel == NULL && tnl_redis_master == NULL) {
        return 0;
    }

    if (tnl_redis_sentinel == NULL || tnl_redis_master == NULL
        || tnl_redis_sentinel[0] == '\0' || tnl_redis_master[0] == '\0')
    {
        fprintf(stderr, "tunneld: --redis-sentinel and --redis-master go "
                "together: give the sentinels' addresses and the name "
                "they know the master by (e.g. --redis-sentinel "
                "10.0.0.1:26379,10.0.0.2:26379 --redis-master mymaster)\n");
        return -1;
    }

    if ((size_t) snprintf(url, sizeof(url), "sentinel://%s/%s",
                          tnl_redis_sentinel, tnl_redis_master)
        >= sizeof(url))
    {
        fprintf(stderr, "tunneld: --redis-sentinel is too long\n");
        return -1;
    }

    tnl_conf.redis_url = url;

    return 0;
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
    tnl_conf.max_channels = 16;
    tnl_conf.max_pending = 64;
    tnl_conf.max_requests = 300;
    tnl_conf.login_grace = 30;
    /*
     * An unauthenticated connection costs a libssh session (tens of KB)
     * and, once it sends its key exchange, one signature: 1,000 are
     * cheap.  A login takes well under a second, so 10 at once from one
     * address leave room for a whole office behind one NAT, and a single
     * host cannot hold the rest (measured in t/160-ssh-flood.t).
     */
    tnl_conf.max_startups = 1000;
    tnl_conf.per_source_max_startups = 10;
    /*
     * An SSH-level message keeps NAT mappings alive; dead peers are found
     * by TCP keepalive/TCP_USER_TIMEOUT anyway.  Measured at 20,000 idle
     * tunnels: 30 s cost about 1.5 % of a core in sendto() alone.
     */
    tnl_conf.keepalive = 60;
    tnl_conf.keepalive_count = 3;

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

    if (tnl_redis_sentinel_url() != 0) {
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

    /* --user: the workers, no longer root, create the sockets in it */
    if (tnl_user != NULL && st.st_uid != tnl_user_uid
        && chown(tnl_conf.socket_dir, tnl_user_uid, (gid_t) -1) == -1)
    {
        tnl_log_error("cannot give \"%s\" to user \"%s\": %s",
                      tnl_conf.socket_dir, tnl_user, strerror(errno));
        return -1;
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


/* --user NAME: 0, or -1 after saying why (nothing created yet) */
static int
tnl_user_check(void)
{
    struct passwd  *pw;

    if (geteuid() != 0) {
        fprintf(stderr, "tunneld: --user %s: only root can switch to "
                "another user, and tunneld runs as uid %u already.  Drop "
                "--user (then tunneld simply runs as this user), or start "
                "it as root so that it binds first and then becomes %s\n",
                tnl_user, (unsigned) geteuid(), tnl_user);
        return -1;
    }

    errno = 0;
    pw = getpwnam(tnl_user);
    if (pw == NULL) {
        fprintf(stderr, "tunneld: --user %s: no such user%s%s; create it "
                "(e.g. adduser --system --group %s) or name another\n",
                tnl_user, errno ? ": " : "", errno ? strerror(errno) : "",
                tnl_user);
        return -1;
    }

    if (pw->pw_uid == 0) {
        fprintf(stderr, "tunneld: --user %s has uid 0: that drops "
                "nothing.  Name an unprivileged account (the packages "
                "use \"tunneld\")\n", tnl_user);
        return -1;
    }

    tnl_user_uid = pw->pw_uid;
    tnl_user_gid = pw->pw_gid;

    return 0;
}


/*
 * Once everything that needs root is done (the listening sockets, the
 * host key, the socket dir): become --user for good, with its groups and
 * --socket-group (the sockets are given to that group).  Every worker is
 * forked from here on, so none ever had root.  0, or -1 (logged).
 */
static int
tnl_user_switch(void)
{
    gid_t  groups[256];
    uid_t  ruid, euid, suid;
    gid_t  rgid, egid, sgid;
    int    n, i;

    if (initgroups(tnl_user, tnl_user_gid) == -1) {
        tnl_log_error("--user %s: initgroups: %s", tnl_user,
                      strerror(errno));
        return -1;
    }

    if (tnl_conf.socket_gid != (gid_t) -1
        && tnl_conf.socket_gid != tnl_user_gid)
    {
        n = getgroups(256, groups);
        if (n == -1) {
            tnl_log_error("--user %s: getgroups: %s", tnl_user,
                          strerror(errno));
            return -1;
        }

        for (i = 0; i < n && groups[i] != tnl_conf.socket_gid; i++) {
            /* void */
        }

        if (i == n) {
            if (n == 256) {
                tnl_log_error("--user %s: too many groups", tnl_user);
                return -1;
            }

            groups[n++] = tnl_conf.socket_gid;

            if (setgroups((size_t) n, groups) == -1) {
                tnl_log_error("--user %s: setgroups: %s", tnl_user,
                              strerror(errno));
                return -1;
            }
        }
    }

    /* as root, setgid and setuid set the real, effective and saved ids */
    if (setgid(tnl_user_gid) == -1 || setuid(tnl_user_uid) == -1) {
        tnl_log_error("--user %s: cannot switch to uid %u gid %u: %s",
                      tnl_user, (unsigned) tnl_user_uid,
                      (unsigned) tnl_user_gid, strerror(errno));
        return -1;
    }

    if (getresuid(&ruid, &euid, &suid) == -1
        || getresgid(&rgid, &egid, &sgid) == -1
        || ruid != tnl_user_uid || euid != tnl_user_uid
        || suid != tnl_user_uid || rgid != tnl_user_gid
        || egid != tnl_user_gid || sgid != tnl_user_gid
        || setuid(0) != -1 || seteuid(0) != -1)
    {
        tnl_log_error("--user %s: root could still be regained after the "
                      "switch: refusing to go on", tnl_user);
        return -1;
    }

    tnl_log_info("running as user \"%s\" (uid %u, gid %u)", tnl_user,
                 (unsigned) tnl_user_uid, (unsigned) tnl_user_gid);

    return 0;
}


int
main(int argc, char **argv)
{
    sigset_t  set;
    ssh_key   key;
    char      err[512];
    int       fds[TNL_LISTEN_MAX];
    int       rc, tune_err;

    /* first: re-executes itself at once where copies need it */
    tune_err = (tnl_copytune_exec(argv) == -1) ? errno : 0;

    if (tnl_options(argc, argv) == -1) {
        return 2;
    }

    /*
     * Before anything is created: files made as root would stay root's.
     * tunneld needs no privilege (port 22 takes CAP_NET_BIND_SERVICE).
     */
    if (tnl_user != NULL) {
        if (tnl_user_check() == -1) {
            return 2;
        }

    } else if (geteuid() == 0 && !tnl_allow_root) {
        fprintf(stderr, "tunneld: refusing to run as root: tunneld talks "
                "SSH to anyone on the internet, and a flaw in that code "
                "would then own the whole machine.  Run it as an "
                "unprivileged user (the packages and the Docker image use "
                "\"tunneld\"; e.g. setpriv --reuid=tunneld --regid=tunneld "
                "--init-groups tunneld ...), or pass --user tunneld (it binds "
                "as root, then runs as tunneld), or pass --allow-root "
                "(allow-root = yes in --config) if you really mean it\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);

    /* held until a signalfd reads them: a TERM during start-up waits */

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    (void) sigprocmask(SIG_BLOCK, &set, NULL);

    if (tune_err != 0) {
        tnl_log_warn("cannot re-execute with glibc's copies tuned for this "
                     "AMD processor (%s): tunneld runs on, each download "
                     "costing more CPU (docs/INTERNALS.md, \"Copies on AMD "
                     "Zen\")", strerror(tune_err));

    } else if (tnl_copytune_setting() != NULL) {
        tnl_log_info("AMD processor: glibc's copies tuned "
                     "(GLIBC_TUNABLES=%s, docs/INTERNALS.md)",
                     tnl_copytune_setting());
    }

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

    if (tnl_session_hostkey_usable(key, err, sizeof(err)) != 0) {
        fprintf(stderr, "tunneld: %s\n", err);
        ssh_key_free(key);
        ssh_finalize();
        return 2;
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
    (void) tnl_startups_init(tnl_conf.workers);

    if (tnl_user != NULL && tnl_user_switch() == -1) {
        for (rc = 0; rc < tnl_conf.nlisten; rc++) {
            close(fds[rc]);
        }
        ssh_key_free(key);
        ssh_finalize();
        return 1;
    }

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
