/*
 * tnl-loadgen: many SSH reverse-forward sessions from one process, for the
 * benchmark's memory and scale runs (tools/bench, workloads e and f).
 *
 * Each session: own non-blocking TCP connect (from --bind, so several
 * processes can use several loopback source addresses and stay clear of
 * the ephemeral port limit), libssh client handshake, publickey auth,
 * one `tcpip-forward` (bind address "<prefix><index>" in name mode, or
 * "127.0.0.1" port 0 (or --port-base + index) in port mode, for OpenSSH
 * sshd), then idle.  At most
 * --concurrency sessions are between connect and forward at once.
 *
 * It answers the server's `forwarded-tcpip` channels itself: every HTTP
 * request head ("\r\n\r\n") on a channel gets one fixed small 200 response,
 * so a request through nginx to any of the N tunnels needs no backend.
 * Request bodies are not supported (the bench only sends GETs here).
 *
 * Driven by one epoll loop: epoll tells which session fd is ready, libssh
 * is then pumped for that session only (ssh_connect / ssh_userauth_* /
 * ssh_channel_listen_forward re-entered while they return AGAIN, then the
 * session's own one-fd ssh_event).  Channels are freed after the poll,
 * never inside a libssh callback.
 *
 * --mode handshake measures logins instead: each session connects, does
 * the key exchange and the publickey auth, records the time that took,
 * and disconnects (no forward, nothing held); --rate paces the starts
 * (sessions a second), and the "ready" line adds the latency p50/p99/max.
 *
 * Output (stdout, one line each): "ready ..." once every session has
 * reached forward or failed (after writing the forwarded names to
 * --names-out), "done ..." at exit.  It holds the sessions
 * until stdin reaches EOF, SIGTERM/SIGINT, or --hold seconds pass.  Owns
 * every session, channel and fd it creates; exit releases them.
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/callbacks.h>
#include <libssh/server.h>     /* ssh_set_message_callback, client too */


typedef enum {
    LG_IDLE = 0,
    LG_TCP_CONNECTING,
    LG_SSH_CONNECTING,
    LG_AUTH,
    LG_FORWARD,
    LG_READY,
    LG_DONE,          /* handshake mode: logged in and disconnected */
    LG_FAILED,
    LG_DROPPED
} lg_state_e;


typedef struct lg_session_s  lg_session_t;
typedef struct lg_chan_s     lg_chan_t;


/* one forwarded-tcpip channel; owned by its session's list */
struct lg_chan_s {
    ssh_channel                         channel;
    struct ssh_channel_callbacks_struct cb;
    lg_session_t                       *session;
    lg_chan_t                          *next;
    unsigned                            match;    /* of "\r\n\r\n" */
    unsigned                            owed;     /* responses to send */
    size_t                              sent;     /* of the current one */
    unsigned                            eof:1;
    unsigned                            closed:1;
    unsigned                            closing:1;
};


struct lg_session_s {
    int                 fd;
    int                 index;
    lg_state_e          state;
    uint32_t            events;        /* registered with epoll */
    uint64_t            started_ms;
    ssh_session         ssh;
    ssh_event           event;
    lg_chan_t          *chans;
    char                bind_name[64];
};


typedef struct {
    const char         *host;
    int                 port;
    const char         *user;
    const char         *key_path;
    const char         *bind;
    const char         *prefix;
    const char         *mode;          /* "name", "port" or "handshake" */
    int                 count;
    int                 first;
    int                 concurrency;
    int                 connect_timeout;
    int                 hold;
    int                 port_base;     /* port mode: 0 = server picks */
    int                 max_failures;  /* then start no more; 0 = never */
    int                 rate;          /* starts a second; 0 = no pacing */
    const char         *names_out;     /* forwarded names, at ready */
    int                 verbose;
} lg_conf_t;


static lg_conf_t      conf = {
    .host = "127.0.0.1", .port = 2222, .user = "bench", .prefix = "lg",
    .mode = "name", .count = 10, .concurrency = 32, .connect_timeout = 120,
    .hold = 600
};

static ssh_key        lg_key;
static int            lg_ep = -1;
static lg_session_t  *lg_sessions;
static int            lg_next;         /* next index to start */
static int            lg_inflight;
static int            lg_ok, lg_failed, lg_dropped, lg_skipped;
static int            lg_errors_shown;
static long           lg_requests, lg_channels;
static uint64_t       lg_start_ms, lg_first_ok_ms, lg_last_ok_ms;
static volatile sig_atomic_t  lg_stop;
static uint32_t      *lg_latency_ms;   /* handshake mode, one per login */
static int            lg_nlatency;

static const char     lg_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    "Content-Length: 3\r\n\r\nok\n";


static uint64_t
lg_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void
lg_on_signal(int sig)
{
    (void) sig;
    lg_stop = 1;
}


static void
lg_epoll_set(lg_session_t *s, uint32_t events)
{
    struct epoll_event  ev;

    if (s->events == events) {
        return;
    }

    ev.events = events;
    ev.data.ptr = s;
    if (epoll_ctl(lg_ep, s->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd,
                  &ev) == -1)
    {
        if (errno == ENOENT) {
            epoll_ctl(lg_ep, EPOLL_CTL_ADD, s->fd, &ev);
        }
    }
    s->events = events;
}


static void
lg_fail(lg_session_t *s, const char *stage)
{
    int         was_ready = (s->state == LG_READY);
    lg_chan_t  *ch;

    if (lg_errors_shown < 10 || conf.verbose) {
        lg_errors_shown++;
        fprintf(stderr, "tnl-loadgen: session %d failed at %s: %s\n",
                s->index, stage,
                s->ssh ? ssh_get_error(s->ssh) : strerror(errno));
    }

    if (s->fd != -1) {
        epoll_ctl(lg_ep, EPOLL_CTL_DEL, s->fd, NULL);
    }
    s->events = 0;

    if (s->event != NULL) {
        ssh_event_remove_session(s->event, s->ssh);
        ssh_event_free(s->event);
        s->event = NULL;
    }

    /* ssh_free frees the channels; our records of them go here */
    while (s->chans != NULL) {
        ch = s->chans;
        s->chans = ch->next;
        free(ch);
    }

    /* libssh owns the fd once it was handed over with SSH_OPTIONS_FD */
    if (s->ssh != NULL) {
        ssh_free(s->ssh);
        s->ssh = NULL;
    } else if (s->fd != -1) {
        close(s->fd);
    }
    s->fd = -1;

    if (was_ready) {
        s->state = LG_DROPPED;
        lg_dropped++;
    } else {
        s->state = LG_FAILED;
        lg_failed++;
        lg_inflight--;
    }
}


static int
lg_tcp_start(lg_session_t *s)
{
    int                 fd, one;
    struct sockaddr_in  sin, src;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -1;
    }
    s->fd = fd;

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (conf.bind != NULL) {
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        if (inet_pton(AF_INET, conf.bind, &src.sin_addr) != 1
            || bind(fd, (struct sockaddr *) &src, sizeof(src)) == -1)
        {
            return -1;
        }
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(conf.port);
    if (inet_pton(AF_INET, conf.host, &sin.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        && errno != EINPROGRESS)
    {
        return -1;
    }

    s->state = LG_TCP_CONNECTING;
    lg_epoll_set(s, EPOLLOUT);
    return 0;
}


static int
lg_chan_data(ssh_session ssh, ssh_channel channel, void *data, uint32_t len,
    int is_stderr, void *userdata)
{
    uint32_t    i;
    lg_chan_t  *ch = userdata;
    const char *p = data, *want = "\r\n\r\n";

    (void) ssh;
    (void) channel;
    (void) is_stderr;

    for (i = 0; i < len; i++) {
        if (p[i] == want[ch->match]) {
            if (++ch->match == 4) {
                ch->owed++;
                lg_requests++;
                ch->match = 0;
            }
        } else {
            ch->match = (p[i] == '\r') ? 1 : 0;
        }
    }

    return len;
}


static void
lg_chan_eof(ssh_session ssh, ssh_channel channel, void *userdata)
{
    lg_chan_t  *ch = userdata;

    (void) ssh;
    (void) channel;
    ch->eof = 1;
}


static void
lg_chan_close(ssh_session ssh, ssh_channel channel, void *userdata)
{
    lg_chan_t  *ch = userdata;

    (void) ssh;
    (void) channel;
    ch->closed = 1;
}


/* the server opens a forwarded-tcpip channel for each nginx connection */
static int
lg_on_message(ssh_session ssh, ssh_message msg, void *userdata)
{
    lg_session_t  *s = userdata;
    lg_chan_t     *ch;
    ssh_channel    channel;

    (void) ssh;

    if (ssh_message_type(msg) != SSH_REQUEST_CHANNEL_OPEN
        || ssh_message_subtype(msg) != SSH_CHANNEL_FORWARDED_TCPIP)
    {
        return 1;                 /* libssh sends the default refusal */
    }

    ch = calloc(1, sizeof(lg_chan_t));
    if (ch == NULL) {
        return 1;
    }

    channel = ssh_message_channel_request_open_reply_accept(msg);
    if (channel == NULL) {
        free(ch);
        return 0;
    }

    ch->channel = channel;
    ch->session = s;
    ch->cb.userdata = ch;
    ch->cb.channel_data_function = lg_chan_data;
    ch->cb.channel_eof_function = lg_chan_eof;
    ch->cb.channel_close_function = lg_chan_close;
    ssh_callbacks_init(&ch->cb);
    ssh_set_channel_callbacks(channel, &ch->cb);

    ch->next = s->chans;
    s->chans = ch;
    lg_channels++;
    return 0;
}


/* after each poll: send owed responses, close and free finished channels */
static void
lg_chans_sweep(lg_session_t *s)
{
    int         n;
    lg_chan_t  *ch, **link;

    link = &s->chans;

    while ((ch = *link) != NULL) {

        while (ch->owed > 0 && !ch->closed && !ch->closing) {
            n = ssh_channel_write(ch->channel, lg_response + ch->sent,
                                  sizeof(lg_response) - 1 - ch->sent);
            if (n == SSH_ERROR) {
                ch->closing = 1;
                break;
            }
            if (n == 0) {
                break;                     /* window full: next poll */
            }
            ch->sent += n;
            if (ch->sent == sizeof(lg_response) - 1) {
                ch->sent = 0;
                ch->owed--;
            }
        }

        if ((ch->eof && ch->owed == 0) || ch->closing || ch->closed) {
            if (!ch->closed && !ch->closing) {
                ssh_channel_send_eof(ch->channel);
            }
            if (!ch->closing) {
                ssh_channel_close(ch->channel);
                ch->closing = 1;
            }
        }

        if (ch->closed) {
            *link = ch->next;
            ssh_remove_channel_callbacks(ch->channel, &ch->cb);
            ssh_channel_free(ch->channel);
            free(ch);
            continue;
        }

        link = &ch->next;
    }
}


static void
lg_ready(lg_session_t *s)
{
    uint64_t  now = lg_now_ms();

    s->state = LG_READY;
    lg_inflight--;
    lg_ok++;
    if (lg_first_ok_ms == 0) {
        lg_first_ok_ms = now;
    }
    lg_last_ok_ms = now;

    s->event = ssh_event_new();
    if (s->event == NULL || ssh_event_add_session(s->event, s->ssh) != SSH_OK)
    {
        lg_fail(s, "event");
    }
}


/* handshake mode: logged in; the time it took, then goodbye */
static void
lg_done(lg_session_t *s)
{
    uint64_t  now = lg_now_ms();

    lg_latency_ms[lg_nlatency++] = (uint32_t) (now - s->started_ms);
    s->state = LG_DONE;
    lg_inflight--;
    lg_ok++;
    if (lg_first_ok_ms == 0) {
        lg_first_ok_ms = now;
    }
    lg_last_ok_ms = now;

    epoll_ctl(lg_ep, EPOLL_CTL_DEL, s->fd, NULL);
    s->events = 0;
    ssh_disconnect(s->ssh);     /* sends DISCONNECT, closes the fd */
    ssh_free(s->ssh);
    s->ssh = NULL;
    s->fd = -1;
}


static int
lg_cmp_u32(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return x < y ? -1 : x > y;
}


static uint32_t
lg_pct(int p)
{
    int  i;

    if (lg_nlatency == 0) {
        return 0;
    }
    i = (int) ((long) lg_nlatency * p / 100);
    return lg_latency_ms[i < lg_nlatency ? i : lg_nlatency - 1];
}


static void
lg_step(lg_session_t *s, uint32_t revents)
{
    int        rc, err, port;
    long       timeout;
    socklen_t  len;
    const char *addr;

    switch (s->state) {

    case LG_TCP_CONNECTING:
        err = 0;
        len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1
            || err != 0)
        {
            errno = err;
            lg_fail(s, "connect");
            return;
        }

        s->ssh = ssh_new();
        if (s->ssh == NULL) {
            lg_fail(s, "ssh_new");
            return;
        }
        rc = 0;
        port = conf.port;
        timeout = conf.connect_timeout;
        ssh_options_set(s->ssh, SSH_OPTIONS_PROCESS_CONFIG, &rc);
        ssh_options_set(s->ssh, SSH_OPTIONS_HOST, conf.host);
        ssh_options_set(s->ssh, SSH_OPTIONS_PORT, &port);
        ssh_options_set(s->ssh, SSH_OPTIONS_USER, conf.user);
        ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT, &timeout);
        ssh_options_set(s->ssh, SSH_OPTIONS_FD, &s->fd);
        ssh_set_blocking(s->ssh, 0);
        ssh_set_message_callback(s->ssh, lg_on_message, s);
        s->state = LG_SSH_CONNECTING;
        /* fall through */

    case LG_SSH_CONNECTING:
        rc = ssh_connect(s->ssh);
        if (rc == SSH_AGAIN) {
            break;
        }
        if (rc != SSH_OK) {
            lg_fail(s, "handshake");
            return;
        }
        s->state = LG_AUTH;
        /* fall through */

    case LG_AUTH:
        rc = ssh_userauth_publickey(s->ssh, NULL, lg_key);
        if (rc == SSH_AUTH_AGAIN) {
            break;
        }
        if (rc != SSH_AUTH_SUCCESS) {
            lg_fail(s, "auth");
            return;
        }
        if (strcmp(conf.mode, "handshake") == 0) {
            lg_done(s);
            return;
        }
        s->state = LG_FORWARD;
        /* fall through */

    case LG_FORWARD:
        if (strcmp(conf.mode, "name") == 0) {
            addr = s->bind_name;
            port = 80;
        } else {
            addr = "127.0.0.1";
            port = conf.port_base ? conf.port_base + s->index : 0;
        }
        rc = ssh_channel_listen_forward(s->ssh, addr, port, NULL);
        if (rc == SSH_AGAIN) {
            break;
        }
        if (rc != SSH_OK) {
            lg_fail(s, "forward");
            return;
        }
        lg_ready(s);
        if (s->state != LG_READY) {
            return;
        }
        break;

    case LG_READY:
        (void) revents;
        rc = ssh_event_dopoll(s->event, 0);
        if (rc == SSH_ERROR || !ssh_is_connected(s->ssh)) {
            lg_fail(s, "idle");
            return;
        }
        lg_chans_sweep(s);
        break;

    default:
        return;
    }

    lg_epoll_set(s, EPOLLIN
                    | ((ssh_get_poll_flags(s->ssh) & SSH_WRITE_PENDING)
                       ? EPOLLOUT : 0));
}


static void
lg_start_more(void)
{
    lg_session_t  *s;

    /* a server that stopped accepting (e.g. out of descriptors) would
       otherwise cost connect_timeout for every remaining session */
    if (conf.max_failures && lg_failed >= conf.max_failures
        && lg_next < conf.count)
    {
        lg_skipped += conf.count - lg_next;
        lg_next = conf.count;
    }

    while (lg_inflight < conf.concurrency && lg_next < conf.count
           && (conf.rate == 0
               || (uint64_t) lg_next * 1000
                  <= (lg_now_ms() - lg_start_ms) * (uint64_t) conf.rate))
    {
        s = &lg_sessions[lg_next++];
        s->started_ms = lg_now_ms();
        lg_inflight++;
        if (lg_tcp_start(s) != 0) {
            lg_fail(s, "socket");
        }
    }
}


static void
lg_expire(uint64_t now)
{
    int            i;
    lg_session_t  *s;

    for (i = 0; i < lg_next; i++) {
        s = &lg_sessions[i];
        if (s->state > LG_IDLE && s->state < LG_READY
            && now - s->started_ms > (uint64_t) conf.connect_timeout * 1000)
        {
            errno = ETIMEDOUT;
            lg_fail(s, "timeout");
        }
    }
}


/* the bind names whose forward succeeded, one a line */
static void
lg_names_write(void)
{
    int    i;
    FILE  *f;

    f = fopen(conf.names_out, "w");
    if (f == NULL) {
        fprintf(stderr, "tnl-loadgen: %s: %s\n", conf.names_out,
                strerror(errno));
        return;
    }
    for (i = 0; i < conf.count; i++) {
        if (lg_sessions[i].state == LG_READY) {
            fprintf(f, "%s\n", lg_sessions[i].bind_name);
        }
    }
    fclose(f);
}


static void
lg_usage(void)
{
    fprintf(stderr,
        "usage: tnl-loadgen --key PRIVKEY [--host IP] [--port N]\n"
        "         [--user U] [--bind SRC_IP] [--count N] [--first I]\n"
        "         [--prefix P] [--mode name|port|handshake]\n"
        "         [--concurrency C] [--rate PER_SECOND]\n"
        "         [--port-base P] [--connect-timeout S] [--hold S]\n"
        "         [--max-failures N] [--names-out FILE] [--verbose]\n");
    exit(2);
}


static void
lg_options(int argc, char **argv)
{
    int          i;
    const char  *o, *v;

    for (i = 1; i < argc; i++) {
        o = argv[i];
        if (strcmp(o, "--verbose") == 0) {
            conf.verbose = 1;
            continue;
        }
        if (i + 1 >= argc) {
            lg_usage();
        }
        v = argv[++i];

        if (strcmp(o, "--host") == 0) {
            conf.host = v;
        } else if (strcmp(o, "--port") == 0) {
            conf.port = atoi(v);
        } else if (strcmp(o, "--user") == 0) {
            conf.user = v;
        } else if (strcmp(o, "--key") == 0) {
            conf.key_path = v;
        } else if (strcmp(o, "--bind") == 0) {
            conf.bind = v;
        } else if (strcmp(o, "--prefix") == 0) {
            conf.prefix = v;
        } else if (strcmp(o, "--mode") == 0) {
            conf.mode = v;
        } else if (strcmp(o, "--count") == 0) {
            conf.count = atoi(v);
        } else if (strcmp(o, "--first") == 0) {
            conf.first = atoi(v);
        } else if (strcmp(o, "--concurrency") == 0) {
            conf.concurrency = atoi(v);
        } else if (strcmp(o, "--connect-timeout") == 0) {
            conf.connect_timeout = atoi(v);
        } else if (strcmp(o, "--port-base") == 0) {
            conf.port_base = atoi(v);
        } else if (strcmp(o, "--names-out") == 0) {
            conf.names_out = v;
        } else if (strcmp(o, "--max-failures") == 0) {
            conf.max_failures = atoi(v);
        } else if (strcmp(o, "--rate") == 0) {
            conf.rate = atoi(v);
        } else if (strcmp(o, "--hold") == 0) {
            conf.hold = atoi(v);
        } else {
            lg_usage();
        }
    }

    if (conf.key_path == NULL || conf.count < 1 || conf.concurrency < 1
        || conf.rate < 0
        || (strcmp(conf.mode, "name") != 0 && strcmp(conf.mode, "port") != 0
            && strcmp(conf.mode, "handshake") != 0))
    {
        lg_usage();
    }
}


int
main(int argc, char **argv)
{
    int                 i, n, reported, stdin_open;
    char                buf[256];
    uint64_t            now, last_expire, hold_until;
    lg_session_t       *s;
    struct rlimit       rl;
    struct sigaction    sa;
    struct epoll_event  ev, events[256];

    lg_options(argc, argv);

    /* sessions need one fd each: use the whole hard limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = lg_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (ssh_init() != SSH_OK
        || ssh_pki_import_privkey_file(conf.key_path, NULL, NULL, NULL,
                                       &lg_key) != SSH_OK)
    {
        fprintf(stderr, "tnl-loadgen: cannot load key \"%s\"\n",
                conf.key_path);
        return 1;
    }

    lg_sessions = calloc(conf.count, sizeof(lg_session_t));
    lg_latency_ms = calloc(conf.count, sizeof(uint32_t));
    lg_ep = epoll_create1(EPOLL_CLOEXEC);
    if (lg_sessions == NULL || lg_latency_ms == NULL || lg_ep == -1) {
        return 1;
    }

    for (i = 0; i < conf.count; i++) {
        lg_sessions[i].fd = -1;
        lg_sessions[i].index = conf.first + i;
        snprintf(lg_sessions[i].bind_name, sizeof(lg_sessions[i].bind_name),
                 "%s%d", conf.prefix, conf.first + i);
    }

    /* stdin EOF is the bench's "stop now" */
    stdin_open = 1;
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (epoll_ctl(lg_ep, EPOLL_CTL_ADD, 0, &ev) == -1) {
        stdin_open = 0;     /* e.g. /dev/null: rely on signals and --hold */
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    lg_start_ms = lg_now_ms();
    last_expire = lg_start_ms;
    hold_until = 0;
    reported = 0;

    while (!lg_stop) {
        lg_start_more();

        n = epoll_wait(lg_ep, events, 256, conf.rate ? 5 : 100);
        if (n == -1 && errno != EINTR) {
            break;
        }

        for (i = 0; i < n; i++) {
            s = events[i].data.ptr;
            if (s == NULL) {
                if (read(0, buf, sizeof(buf)) <= 0) {
                    epoll_ctl(lg_ep, EPOLL_CTL_DEL, 0, NULL);
                    if (stdin_open) {
                        lg_stop = 1;
                    }
                    stdin_open = 0;
                }
                continue;
            }
            lg_step(s, events[i].events);
        }

        now = lg_now_ms();
        if (now - last_expire >= 500) {
            lg_expire(now);
            last_expire = now;
        }

        if (!reported && lg_next == conf.count && lg_inflight == 0) {
            reported = 1;
            if (conf.names_out != NULL) {
                lg_names_write();
            }
            if (lg_nlatency > 0) {
                qsort(lg_latency_ms, lg_nlatency, sizeof(uint32_t),
                      lg_cmp_u32);
                printf("latency n=%d p50_ms=%u p99_ms=%u max_ms=%u\n",
                       lg_nlatency, lg_pct(50), lg_pct(99),
                       lg_latency_ms[lg_nlatency - 1]);
            }
            printf("ready ok=%d failed=%d skipped=%d start_ms=%llu "
                   "first_ok_ms=%llu last_ok_ms=%llu elapsed_ms=%llu\n",
                   lg_ok, lg_failed, lg_skipped,
                   (unsigned long long) lg_start_ms,
                   (unsigned long long) lg_first_ok_ms,
                   (unsigned long long) lg_last_ok_ms,
                   (unsigned long long) (now - lg_start_ms));
            hold_until = now + (uint64_t) conf.hold * 1000;
        }

        if (reported && now >= hold_until) {
            break;
        }
        if (!reported
            && now - lg_start_ms > (uint64_t) (conf.connect_timeout
                                               + conf.hold) * 1000)
        {
            break;
        }
    }

    printf("done ok=%d failed=%d skipped=%d dropped=%d channels=%ld "
           "requests=%ld\n", lg_ok, lg_failed, lg_skipped, lg_dropped,
           lg_channels, lg_requests);

    /* the kernel closes every session's socket: no per-session goodbye */
    return 0;
}
