/*
 * Workers and their supervisor (see worker.h).  A worker is today's whole
 * tunneld on its own loop; the supervisor only forks, reaps, restarts and
 * relays signals, on a loop of its own with a signalfd.  Worker processes
 * die with the supervisor (PR_SET_PDEATHSIG SIGKILL): a supervisor killed
 * with SIGKILL is a tunneld crash, whose routes expire in Redis by TTL.
 *
 * Owns the table of worker processes (supervisor) and, in a worker, the
 * loop, the signal io and the descriptor accounting.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "activation.h"
#include "api.h"
#include "db.h"
#include "keys.h"
#include "live.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "node.h"
#include "notify.h"
#include "routes.h"
#include "server.h"
#include "session.h"
#include "startups.h"
#include "worker.h"


#define TNL_WORKER_SHUTDOWN_MS     2000  /* sessions' DISCONNECT, releases */
#define TNL_WORKER_ACCEPT_LATE_MS  5000  /* accept without a key table */
#define TNL_WORKER_FD_SLACK        8     /* fds outside epoll at times */
#define TNL_WORKER_FD_LOG_MS       10000
#define TNL_WORKER_READY_CHECK_MS  100   /* until PostgreSQL and Redis */

#define TNL_SUPERVISOR_STOP_MS     6000  /* TERM -> KILL for workers */
#define TNL_SUPERVISOR_QUICK_MS    10000 /* a death this soon is "quick" */
#define TNL_SUPERVISOR_QUICK_MAX   5     /* quick deaths in a row: give up */
#define TNL_SUPERVISOR_SWEEP_MS    3000  /* after a death: stale sockets */
#define TNL_SUPERVISOR_SWEEP_AGE   2     /* s: younger may be binding */


typedef struct {
    pid_t         pid;          /* 0: not running */
    int           number;       /* 1..N */
    uint64_t      started_ms;
    int           ready;        /* said so on the ready pipe */
    unsigned      quick;        /* deaths in a row soon after start */
    pid_t         lost;         /* next start closes its rows: see below */
    tnl_timer_t   restart;
} tnl_worker_proc_t;


typedef struct {
    const char   *what;
    uint64_t      logged_ms;
    unsigned      missed;       /* not logged since */
} tnl_worker_fd_log_t;


/* in a worker */

static tnl_loop_t           *tnl_worker_loop;
static tnl_io_t              tnl_worker_signal_io;
static tnl_timer_t           tnl_worker_late;
static tnl_timer_t           tnl_worker_ready_timer;
static int                   tnl_worker_ready_fd = -1;  /* supervisor's */
static int                   tnl_worker_stopping;
static int                   tnl_worker_count = 1;
static int                   tnl_worker_nofile = 1024;
static int                   tnl_worker_fd_base = 16;
static tnl_worker_fd_log_t   tnl_worker_fd_logs[4];

/* in the supervisor */

static tnl_worker_proc_t     tnl_procs[TNL_WORKERS_MAX];
static int                   tnl_nprocs;
static tnl_loop_t           *tnl_sup_loop;
static tnl_io_t              tnl_sup_signal_io;
static tnl_timer_t           tnl_sup_deadline;
static tnl_timer_t           tnl_sup_sweep_timer;
static tnl_io_t              tnl_sup_ready_io;
static int                   tnl_sup_notified;
static int                   tnl_sup_stopping;
static int                   tnl_sup_killed;
static int                   tnl_sup_rc;
static ssh_key               tnl_sup_key;
static const int            *tnl_sup_fds;
static int                   tnl_sup_nfds;

/*
 * What the worker being forked closes in the audit log ("node lost", see
 * tnl_db_node_lost): -1 nothing, 0 the whole node (the first worker of a
 * new tunneld), else the pid of the dead worker it replaces; before: the
 * fork time, earlier than any open of a live process of this node.
 */
static pid_t                 tnl_sup_lost = -1;
static struct timespec       tnl_sup_lost_before;


/* descriptors */

static void
tnl_worker_raise_nofile(void)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        return;
    }

    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;

        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            tnl_log_warn("cannot raise the open files limit to %llu: %s",
                         (unsigned long long) rl.rlim_max, strerror(errno));
            (void) getrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    tnl_worker_nofile = rl.rlim_cur > INT_MAX ? INT_MAX : (int) rl.rlim_cur;
}


/*
 * What the worker holds outside epoll (stdio, the epoll fd, ...): counted
 * once in /proc/self/fd, which costs milliseconds at thousands of fds but
 * almost nothing here, at start.
 */
static void
tnl_worker_fds_init(tnl_loop_t *loop)
{
    struct dirent  *de;
    DIR            *dir;
    int             n = 0;

    dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        return;                          /* keep the default guess */
    }

    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }

    closedir(dir);

    /* minus the directory's own fd, which is gone now */
    n = n - 1 - tnl_loop_ios(loop);
    tnl_worker_fd_base = n > 0 ? n : 0;
}


int
tnl_worker_fds_left(void)
{
    int  used;

    used = tnl_worker_fd_base + TNL_WORKER_FD_SLACK;
    if (tnl_worker_loop != NULL) {
        used += tnl_loop_ios(tnl_worker_loop);
    }

    return tnl_worker_nofile - used;
}


int
tnl_worker_fds_short(void)
{
    int  reserve;

    /* a small limit (tests, ulimit -n 64) keeps room for some tunnels */
    reserve = tnl_worker_nofile / 8;
    if (reserve > TNL_WORKER_FD_RESERVE) {
        reserve = TNL_WORKER_FD_RESERVE;
    }

    return tnl_worker_fds_left() < reserve;
}


int
tnl_worker_has_peers(void)
{
    return tnl_worker_count > 1;
}


void
tnl_worker_log_fd_shortage(const char *what, int err)
{
    tnl_worker_fd_log_t  *l = NULL;
    uint64_t              now;
    size_t                i;

    for (i = 0; i < sizeof(tnl_worker_fd_logs) / sizeof(tnl_worker_fd_logs[0]);
         i++)
    {
        if (tnl_worker_fd_logs[i].what == NULL
            || strcmp(tnl_worker_fd_logs[i].what, what) == 0)
        {
            l = &tnl_worker_fd_logs[i];
            break;
        }
    }

    if (l == NULL) {
        l = &tnl_worker_fd_logs[0];      /* more kinds than slots: share */
    }

    now = tnl_now_ms();

    if (l->what != NULL && now - l->logged_ms < TNL_WORKER_FD_LOG_MS) {
        l->missed++;
        return;
    }

    if (l->missed) {
        tnl_log_warn("%s%s%s (%d descriptors left of %d; %u more times in "
                     "the last %llu s)", what, err ? ": " : "",
                     err ? strerror(err) : "", tnl_worker_fds_left(),
                     tnl_worker_nofile, l->missed,
                     (unsigned long long) (now - l->logged_ms) / 1000);
    } else {
        tnl_log_warn("%s%s%s (%d descriptors left of %d)", what,
                     err ? ": " : "", err ? strerror(err) : "",
                     tnl_worker_fds_left(), tnl_worker_nofile);
    }

    l->what = what;
    l->logged_ms = now;
    l->missed = 0;
}


/* one worker */

/*
 * SIGHUP reloads nothing, on purpose: the key table already follows
 * PostgreSQL (LISTEN, within 2 s), the log is stderr (nothing to
 * re-open), and the options (listeners, workers, paths) take a restart.
 * It is caught so a stray HUP (a closed terminal, `systemctl kill -s HUP`)
 * does not stop the service.
 */
static void
tnl_worker_hup(void)
{
    tnl_log_info("SIGHUP: nothing to reload (the key table follows "
                 "PostgreSQL by itself; restart tunneld to apply changed "
                 "options)");
}


/*
 * Ready: the host key is loaded (main.c, before any worker), the first
 * key table came from PostgreSQL and Redis answers.  The single process
 * tells the service manager itself; a worker tells its supervisor, which
 * tells it when every worker has.
 */
static void
tnl_worker_ready_check(tnl_timer_t *t)
{
    unsigned char  number = (unsigned char) (uintptr_t) t->data;

    if (!tnl_keys_loaded() || !tnl_routes_available()) {
        tnl_timer_add(t, TNL_WORKER_READY_CHECK_MS);
        return;
    }

    tnl_log_info("ready: PostgreSQL and Redis are up");

    if (tnl_worker_ready_fd == -1) {
        (void) tnl_notify("READY=1\nSTATUS=accepting SSH connections");
        return;
    }

    if (write(tnl_worker_ready_fd, &number, 1) != 1) {
        tnl_log_warn("cannot tell the supervisor this worker is ready: %s",
                     strerror(errno));
    }
}


static void
tnl_worker_signal_handler(tnl_io_t *io, uint32_t events)
{
    struct signalfd_siginfo  si;

    (void) events;

    while (read(io->fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            tnl_worker_hup();
            continue;
        }

        if (!tnl_worker_stopping) {
            tnl_log_info("signal %u: shutting down", si.ssi_signo);
            if (tnl_worker_ready_fd == -1) {
                (void) tnl_notify("STOPPING=1");
            }
        }
        tnl_worker_stopping = 1;
        tnl_loop_stop(tnl_worker_loop);
    }
}


static int
tnl_worker_signals(tnl_loop_t *loop)
{
    sigset_t  set;
    int       fd;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);

    /* SETMASK: a forked worker drops the supervisor's SIGCHLD too */
    if (sigprocmask(SIG_SETMASK, &set, NULL) == -1) {
        return -1;
    }

    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    tnl_io_init(&tnl_worker_signal_io, loop, fd, tnl_worker_signal_handler,
                NULL);

    if (tnl_io_set(&tnl_worker_signal_io, EPOLLIN) == -1) {
        close(fd);
        tnl_worker_signal_io.loop = NULL;
        return -1;
    }

    return 0;
}


/* the first key table is in: only now can a client be told yes or no */
static void
tnl_worker_keys_changed(void)
{
    tnl_timer_del(&tnl_worker_late);
    tnl_server_accept_start();
    tnl_sessions_keys_changed();
}


static void
tnl_worker_accept_late(tnl_timer_t *t)
{
    (void) t;

    tnl_log_warn("no key table after %d s: accepting anyway (clients are "
                 "asked to retry until PostgreSQL answers)",
                 TNL_WORKER_ACCEPT_LATE_MS / 1000);
    tnl_server_accept_start();
}


static void
tnl_worker_shutdown(tnl_loop_t *loop)
{
    uint64_t  deadline;

    tnl_timer_del(&tnl_worker_late);
    tnl_timer_del(&tnl_worker_ready_timer);
    tnl_server_stop_listening();
    tnl_api_stop();

    tnl_sessions_close_all("The tunnel server is stopping or restarting: "
                           "your tunnels are closed; reconnect in a "
                           "moment.",
                           "server shutting down");

    /* bounded: let DISCONNECTs and Redis releases go out */

    deadline = tnl_now_ms() + TNL_WORKER_SHUTDOWN_MS;

    while (tnl_sessions_count() > 0 && tnl_now_ms() < deadline) {
        if (tnl_loop_once(loop, 50) == -1) {
            break;
        }
    }

    deadline = tnl_now_ms() + 200;
    while (tnl_now_ms() < deadline) {
        if (tnl_loop_once(loop, 20) == -1) {
            break;
        }
    }

    tnl_node_stop();
    tnl_live_stop();
    tnl_routes_stop();
    tnl_db_stop(1000);
}


/*
 * A process of this node that was killed wrote no close rows for its
 * tunnels: a single tunneld closes the node's, a worker the ones its
 * supervisor named (tnl_sup_lost).
 */
static void
tnl_worker_node_lost(int number)
{
    char  prefix[320];

    if (number == 0) {
        tnl_sup_lost = 0;
        clock_gettime(CLOCK_REALTIME, &tnl_sup_lost_before);
    }

    if (tnl_sup_lost == 0) {
        snprintf(prefix, sizeof(prefix), "%s/", tnl_conf.node);

    } else if (tnl_sup_lost > 0) {
        snprintf(prefix, sizeof(prefix), "%s/%ld/", tnl_conf.node,
                 (long) tnl_sup_lost);

    } else {
        return;
    }

    tnl_db_node_lost(prefix, &tnl_sup_lost_before);
    tnl_live_node_lost(prefix, tnl_sup_lost_before.tv_sec);
}


int
tnl_worker_run(int number, int nworkers, ssh_key key, const int *fds,
    int nfds)
{
    tnl_loop_t  *loop;
    char         tag[48];
    int          i, rc = 1;

    tnl_worker_count = nworkers;

    if (number > 0) {
        snprintf(tag, sizeof(tag), "w%d", number);
        tnl_log_set_process(tag);
    }

    tnl_worker_raise_nofile();

    loop = tnl_loop_create();
    if (loop == NULL) {
        tnl_log_error("cannot create the event loop: %s", strerror(errno));
        ssh_key_free(key);
        for (i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        return 1;
    }

    tnl_worker_loop = loop;
    tnl_timer_init(&tnl_worker_late, loop, tnl_worker_accept_late, NULL);
    tnl_timer_init(&tnl_worker_ready_timer, loop, tnl_worker_ready_check,
                   (void *) (uintptr_t) number);

    /* takes key and fds */
    if (tnl_server_start(loop, key, fds, nfds, nworkers > 1) == -1) {
        goto done;
    }

    if (tnl_worker_signals(loop) == -1) {
        tnl_log_error("cannot set up signals: %s", strerror(errno));
        goto done;
    }

    tnl_worker_fds_init(loop);

    /* before tnl_db_start: its first LISTEN names every channel */
    if (tnl_activation_init(loop) == -1) {
        tnl_log_error("cannot set up the device flow");
        goto done;
    }

    if (tnl_db_start(loop, tnl_conf.database_url, tnl_conf.node) == -1) {
        tnl_log_error("unusable database URL");
        rc = TNL_WORKER_EXIT_CONFIG;
        goto done;
    }

    if (tnl_routes_start(loop, tnl_conf.redis_url, tnl_session_kick) == -1) {
        tnl_log_error("unusable Redis URL \"%s\"", tnl_conf.redis_url);
        rc = TNL_WORKER_EXIT_CONFIG;
        tnl_db_stop(0);
        goto done;
    }

    tnl_metrics_use_slot(number);
    tnl_startups_use_slot(number);

    if (tnl_live_start(loop) == -1 || tnl_api_start(loop) == -1
        || tnl_node_start(loop) == -1)
    {
        tnl_log_error("cannot start the management API");
        tnl_routes_stop();
        tnl_db_stop(0);
        goto done;
    }

    /* after tnl_live_start: the sweep's Redis half needs it */
    tnl_worker_node_lost(number);

    tnl_keys_on_change(tnl_worker_keys_changed);
    tnl_timer_add(&tnl_worker_late, TNL_WORKER_ACCEPT_LATE_MS);
    tnl_timer_add(&tnl_worker_ready_timer, TNL_WORKER_READY_CHECK_MS);

    if (number > 0) {
        tnl_log_info("started: worker %d of %d, node \"%s\" domain \"%s\" "
                     "sockets \"%s\", open files limit %d", number, nworkers,
                     tnl_conf.node, tnl_conf.domain, tnl_conf.socket_dir,
                     tnl_worker_nofile);
    } else {
        tnl_log_info("started: node \"%s\" domain \"%s\" sockets \"%s\", "
                     "open files limit %d", tnl_conf.node, tnl_conf.domain,
                     tnl_conf.socket_dir, tnl_worker_nofile);
    }

    if (tnl_loop_run(loop) == -1) {
        tnl_log_error("event loop failed: %s", strerror(errno));
    }

    tnl_worker_shutdown(loop);

    rc = 0;

done:

    tnl_timer_del(&tnl_worker_late);
    tnl_timer_del(&tnl_worker_ready_timer);
    tnl_server_free();

    if (tnl_worker_signal_io.loop != NULL) {
        tnl_io_del(&tnl_worker_signal_io);
        close(tnl_worker_signal_io.fd);
        tnl_worker_signal_io.loop = NULL;
    }

    tnl_worker_loop = NULL;
    tnl_loop_destroy(loop);

    tnl_log_info("stopped");

    return rc;
}


/* the supervisor */

/* the 64-bit id of "t-<16 hex>.sock", or -1 */
static int
tnl_sup_socket_id(const char *name, uint64_t *id)
{
    char  *end;

    if (strncmp(name, "t-", 2) != 0) {
        return -1;
    }

    errno = 0;
    *id = strtoull(name + 2, &end, 16);

    if (errno || end != name + 18 || strcmp(end, ".sock") != 0) {
        return -1;
    }

    return 0;
}


static int
tnl_sup_cmp_id(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


/*
 * Tunnel sockets nobody is bound to any more: a worker that was killed
 * could not unlink its own, and nginx would keep trying them until their
 * routes expire.  Whether a socket is bound is in /proc/net/unix (the
 * bound path of every Unix socket); a file younger than min_age s is left
 * alone, its worker may be between bind() and the socket's address
 * showing there.  Runs in the supervisor, never on a worker's loop.
 */
static void
tnl_sup_sweep_sockets(int min_age)
{
    struct dirent  *de;
    struct stat     st;
    uint64_t       *bound = NULL, *more, id;
    size_t          n = 0, cap = 0;
    FILE           *f;
    DIR            *dir;
    char            line[512], *p;
    time_t          now;
    int             removed = 0;

    f = fopen("/proc/net/unix", "re");
    if (f == NULL) {
        return;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        p = strrchr(line, '/');
        if (p == NULL || tnl_sup_socket_id(p + 1, &id) == -1) {
            continue;
        }

        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            more = realloc(bound, cap * sizeof(uint64_t));
            if (more == NULL) {
                goto done;               /* unsure: remove nothing */
            }
            bound = more;
        }

        bound[n++] = id;
    }

    if (ferror(f)) {
        goto done;
    }

    if (n > 0) {
        qsort(bound, n, sizeof(uint64_t), tnl_sup_cmp_id);
    }

    dir = opendir(tnl_conf.socket_dir);
    if (dir == NULL) {
        goto done;
    }

    now = time(NULL);

    while ((de = readdir(dir)) != NULL) {
        if (tnl_sup_socket_id(de->d_name, &id) == -1
            || (n > 0 && bsearch(&id, bound, n, sizeof(uint64_t),
                                 tnl_sup_cmp_id) != NULL))
        {
            continue;
        }

        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1
            || !S_ISSOCK(st.st_mode) || now - st.st_ctime < min_age)
        {
            continue;
        }

        if (unlinkat(dirfd(dir), de->d_name, 0) == 0) {
            removed++;
        }
    }

    closedir(dir);

    if (removed) {
        tnl_log_info("removed %d tunnel socket(s) left by dead workers",
                     removed);
    }

done:

    fclose(f);
    free(bound);
}


static void
tnl_sup_sweep_handler(tnl_timer_t *t)
{
    (void) t;

    tnl_sup_sweep_sockets(TNL_SUPERVISOR_SWEEP_AGE);
}


static void
tnl_sup_describe(int status, char *buf, size_t size)
{
    if (WIFEXITED(status)) {
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));

    } else if (WIFSIGNALED(status)) {
        snprintf(buf, size, "was killed by signal %d (%s)%s",
                 WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");

    } else {
        snprintf(buf, size, "ended with wait status 0x%x", status);
    }
}


static int
tnl_sup_running(void)
{
    int  i, n = 0;

    for (i = 0; i < tnl_nprocs; i++) {
        if (tnl_procs[i].pid > 0) {
            n++;
        }
    }

    return n;
}


static void
tnl_sup_stop_all(int rc)
{
    int  i;

    if (rc != 0) {
        tnl_sup_rc = rc;
    }

    if (tnl_sup_stopping) {
        return;
    }

    tnl_sup_stopping = 1;
    (void) tnl_notify("STOPPING=1");

    for (i = 0; i < tnl_nprocs; i++) {
        tnl_timer_del(&tnl_procs[i].restart);

        if (tnl_procs[i].pid > 0) {
            (void) kill(tnl_procs[i].pid, SIGTERM);
        }
    }

    if (tnl_sup_running() == 0) {
        tnl_loop_stop(tnl_sup_loop);
        return;
    }

    tnl_timer_add(&tnl_sup_deadline, TNL_SUPERVISOR_STOP_MS);
}


static void
tnl_sup_deadline_handler(tnl_timer_t *t)
{
    int  i;

    (void) t;

    if (tnl_sup_killed) {
        tnl_log_error("%d worker(s) still not reaped: exiting anyway",
                      tnl_sup_running());
        tnl_loop_stop(tnl_sup_loop);
        return;
    }

    tnl_sup_killed = 1;

    for (i = 0; i < tnl_nprocs; i++) {
        if (tnl_procs[i].pid > 0) {
            tnl_log_error("worker %d (pid %ld) did not stop within %d ms: "
                          "killing it (its routes expire by TTL)",
                          tnl_procs[i].number, (long) tnl_procs[i].pid,
                          TNL_SUPERVISOR_STOP_MS);
            (void) kill(tnl_procs[i].pid, SIGKILL);
        }
    }

    tnl_timer_add(&tnl_sup_deadline, 1000);
}


static void
tnl_sup_spawn(tnl_worker_proc_t *p)
{
    int    rc;
    pid_t  pid, sup;

    sup = getpid();

    tnl_sup_lost = p->lost;
    clock_gettime(CLOCK_REALTIME, &tnl_sup_lost_before);

    pid = fork();

    if (pid == -1) {
        tnl_log_error("cannot fork worker %d: %s", p->number,
                      strerror(errno));
        p->started_ms = tnl_now_ms();
        p->quick++;
        tnl_timer_add(&p->restart, 1000);
        return;
    }

    if (pid == 0) {

        /* the supervisor's loop and signalfd are not ours */

        close(tnl_sup_signal_io.fd);
        close(tnl_sup_ready_io.fd);
        tnl_loop_destroy(tnl_sup_loop);

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != sup) {
            _exit(1);                    /* the supervisor is already gone */
        }

        rc = tnl_worker_run(p->number, tnl_nprocs, tnl_sup_key,
                            tnl_sup_fds, tnl_sup_nfds);
#if defined(__SANITIZE_ADDRESS__)
        /* _exit() skips LeakSanitizer's check at exit: `make test
         * SANITIZE=1` checks every worker's memory at its end too */
        __lsan_do_leak_check();
#endif
        _exit(rc);
    }

    p->pid = pid;
    p->ready = 0;
    p->started_ms = tnl_now_ms();
    p->lost = -1;

    tnl_log_info("worker %d started: pid %ld", p->number, (long) pid);
}


static void
tnl_sup_restart_handler(tnl_timer_t *t)
{
    tnl_worker_proc_t  *p = t->data;

    if (!tnl_sup_stopping && p->pid == 0) {
        tnl_sup_spawn(p);
    }
}


static void
tnl_sup_reaped(tnl_worker_proc_t *p, int status)
{
    uint64_t  lived, delay;
    char      how[96];

    tnl_metrics_clear_gauges(p->number);
    tnl_startups_clear(p->number);

    tnl_sup_describe(status, how, sizeof(how));
    lived = tnl_now_ms() - p->started_ms;

    if (tnl_sup_stopping) {
        tnl_log_info("worker %d (pid %ld) %s", p->number, (long) p->pid, how);
        p->pid = 0;

        if (tnl_sup_running() == 0) {
            tnl_loop_stop(tnl_sup_loop);
        }
        return;
    }

    tnl_log_error("worker %d (pid %ld) %s after %llu ms", p->number,
                  (long) p->pid, how, (unsigned long long) lived);
    p->lost = p->pid;
    p->pid = 0;

    tnl_timer_add(&tnl_sup_sweep_timer, TNL_SUPERVISOR_SWEEP_MS);

    if (WIFEXITED(status) && WEXITSTATUS(status) == TNL_WORKER_EXIT_CONFIG) {
        tnl_log_error("worker %d cannot work with this configuration: "
                      "stopping", p->number);
        tnl_sup_stop_all(1);
        return;
    }

    p->quick = lived < TNL_SUPERVISOR_QUICK_MS ? p->quick + 1 : 0;

    if (p->quick >= TNL_SUPERVISOR_QUICK_MAX) {
        tnl_log_error("worker %d died %u times in a row within %d s of "
                      "starting: giving up", p->number, p->quick,
                      TNL_SUPERVISOR_QUICK_MS / 1000);
        tnl_sup_stop_all(1);
        return;
    }

    /* 100 ms after a worker that ran a while; 250 ms doubling if not */
    delay = p->quick ? 250ULL << (p->quick - 1) : 100;

    tnl_log_info("restarting worker %d in %llu ms", p->number,
                 (unsigned long long) delay);
    tnl_timer_add(&p->restart, delay);
}


static void
tnl_sup_reap(void)
{
    pid_t  pid;
    int    status, i;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (i = 0; i < tnl_nprocs; i++) {
            if (tnl_procs[i].pid == pid) {
                tnl_sup_reaped(&tnl_procs[i], status);
                break;
            }
        }
    }
}


static void
tnl_sup_signal_handler(tnl_io_t *io, uint32_t events)
{
    struct signalfd_siginfo  si;

    (void) events;

    while (read(io->fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            tnl_sup_reap();
            continue;
        }

        if (si.ssi_signo == SIGHUP) {
            tnl_worker_hup();            /* workers are not told: same */
            continue;
        }

        if (!tnl_sup_stopping) {
            tnl_log_info("signal %u: stopping %d worker(s)", si.ssi_signo,
                         tnl_sup_running());
        }

        tnl_sup_stop_all(0);
    }
}


/* a worker wrote its number: all of them ready is READY=1 for systemd */
static void
tnl_sup_ready_handler(tnl_io_t *io, uint32_t events)
{
    unsigned char  buf[TNL_WORKERS_MAX];
    ssize_t        n, i;
    int            ready = 0, j;
    char           state[96];

    (void) events;

    while ((n = read(io->fd, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++) {
            if (buf[i] >= 1 && buf[i] <= tnl_nprocs) {
                tnl_procs[buf[i] - 1].ready = 1;
            }
        }
    }

    for (j = 0; j < tnl_nprocs; j++) {
        ready += tnl_procs[j].pid > 0 && tnl_procs[j].ready;
    }

    if (tnl_sup_notified || tnl_sup_stopping || ready < tnl_nprocs) {
        return;
    }

    tnl_sup_notified = 1;
    tnl_log_info("ready: %d workers", ready);

    snprintf(state, sizeof(state), "READY=1\nSTATUS=%d workers accepting "
             "SSH connections", ready);
    (void) tnl_notify(state);
}


static int
tnl_sup_ready_pipe(void)
{
    int  fds[2];

    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        return -1;
    }

    tnl_io_init(&tnl_sup_ready_io, tnl_sup_loop, fds[0], tnl_sup_ready_handler,
                NULL);

    if (tnl_io_set(&tnl_sup_ready_io, EPOLLIN) == -1) {
        close(fds[0]);
        close(fds[1]);
        tnl_sup_ready_io.loop = NULL;
        return -1;
    }

    /* forked workers write, the supervisor never closes it before exit */
    tnl_worker_ready_fd = fds[1];

    return 0;
}


static int
tnl_sup_signals(void)
{
    sigset_t  set;
    int       fd;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);

    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        return -1;
    }

    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    tnl_io_init(&tnl_sup_signal_io, tnl_sup_loop, fd, tnl_sup_signal_handler,
                NULL);

    if (tnl_io_set(&tnl_sup_signal_io, EPOLLIN) == -1) {
        close(fd);
        tnl_sup_signal_io.loop = NULL;
        return -1;
    }

    return 0;
}


/* after the loop: whoever is left was SIGKILLed; wait a little for it */
static void
tnl_sup_reap_last(void)
{
    struct timespec  ts = { 0, 10 * 1000 * 1000 };
    int              i;

    for (i = 0; i < 100 && tnl_sup_running() > 0; i++) {
        tnl_sup_reap();
        if (tnl_sup_running() > 0) {
            nanosleep(&ts, NULL);
        }
    }
}


int
tnl_supervisor_run(int nworkers, ssh_key key, const int *fds, int nfds)
{
    int   i;

    tnl_log_set_process("sup");

    tnl_sup_key = key;
    tnl_sup_fds = fds;
    tnl_sup_nfds = nfds;
    tnl_sup_rc = 0;

    tnl_sup_loop = tnl_loop_create();
    if (tnl_sup_loop == NULL) {
        tnl_log_error("cannot create the event loop: %s", strerror(errno));
        tnl_sup_rc = 1;
        goto done;
    }

    if (tnl_sup_signals() == -1) {
        tnl_log_error("cannot set up signals: %s", strerror(errno));
        tnl_sup_rc = 1;
        goto done;
    }

    if (tnl_sup_ready_pipe() == -1) {
        tnl_log_error("cannot create the ready pipe: %s", strerror(errno));
        tnl_sup_rc = 1;
        goto done;
    }

    tnl_timer_init(&tnl_sup_deadline, tnl_sup_loop, tnl_sup_deadline_handler,
                   NULL);
    tnl_timer_init(&tnl_sup_sweep_timer, tnl_sup_loop, tnl_sup_sweep_handler,
                   NULL);

    tnl_nprocs = nworkers;

    for (i = 0; i < nworkers; i++) {
        tnl_procs[i].number = i + 1;
        tnl_procs[i].lost = (i == 0) ? 0 : -1;
        tnl_timer_init(&tnl_procs[i].restart, tnl_sup_loop,
                       tnl_sup_restart_handler, &tnl_procs[i]);
    }

    tnl_log_info("supervisor: starting %d workers", nworkers);

    for (i = 0; i < nworkers; i++) {
        tnl_sup_spawn(&tnl_procs[i]);
    }

    if (tnl_loop_run(tnl_sup_loop) == -1) {
        tnl_log_error("event loop failed: %s", strerror(errno));
        tnl_sup_stop_all(1);
        for (i = 0; i < tnl_nprocs; i++) {
            if (tnl_procs[i].pid > 0) {
                (void) kill(tnl_procs[i].pid, SIGKILL);
            }
        }
    }

    tnl_sup_reap_last();

    /* every worker is gone: what is left is stale */
    tnl_sup_sweep_sockets(0);

done:

    for (i = 0; i < tnl_nprocs; i++) {
        tnl_timer_del(&tnl_procs[i].restart);
    }

    if (tnl_sup_loop != NULL) {
        tnl_timer_del(&tnl_sup_deadline);
        tnl_timer_del(&tnl_sup_sweep_timer);
        if (tnl_sup_signal_io.loop != NULL) {
            tnl_io_del(&tnl_sup_signal_io);
            close(tnl_sup_signal_io.fd);
        }
        if (tnl_sup_ready_io.loop != NULL) {
            tnl_io_del(&tnl_sup_ready_io);
            close(tnl_sup_ready_io.fd);
            close(tnl_worker_ready_fd);
            tnl_worker_ready_fd = -1;
        }
        tnl_loop_destroy(tnl_sup_loop);
        tnl_sup_loop = NULL;
    }

    for (i = 0; i < nfds; i++) {
        close(fds[i]);
    }

    ssh_key_free(key);

    tnl_log_info("stopped");

    return tnl_sup_rc;
}
