package NgxTunnel::Stack;

# The ngx-tunnel dev stack: private PostgreSQL, Redis, nginx (stock binary
# + our module) and tunneld, all in one state directory, on ports and Unix
# sockets the caller chooses.  Used by `make run` (tools/run) and by every
# test in t/.
#
# What it does: creates the state directory, generates configuration,
# starts each service as a child of this process, waits (bounded) until the
# service answers, and stops exactly the processes it started, by PID.
# What it does not: daemonize, touch system services or files outside the
# state directory, or kill anything it did not start.
#
# Ownership: the object owns its child processes; they are stopped by
# stop_all(), by DESTROY, and by an END block, but only in the process that
# started them (a forked child never stops its parent's services).
#
# As root, PostgreSQL runs as the `postgres` account (initdb and postgres
# refuse root) and nginx workers as `www-data`; tunneld then gets
# `--socket-group www-data` so the workers can connect to tunnel sockets.
#
# INT, TERM, HUP and PIPE that the caller does not handle become exit(), so
# a test killed by a signal still stops its services (END runs).

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(ECHILD);
use Fcntl qw(:mode);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IPC::Run ();
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Socket qw(AF_UNIX SOCK_STREAM sockaddr_un);
use Time::HiRes qw(sleep time);

our $VERSION = '0.1';

my $START_TIMEOUT = 10;        # seconds a service gets to answer
my $STOP_TIMEOUT  = 10;        # seconds between TERM and KILL
my $LOG_TAIL      = 30;        # lines of a log shown when a start fails
my $NGINX         = '/usr/sbin/nginx';
my $WORKER_USER   = 'www-data';
my $PG_USER       = 'postgres';
my $PG_DB         = 'ngx_tunnel';

my @LIVE;                      # weak refs to objects, for END


sub free_port {
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto     => 'tcp',
        Listen    => 1,
        ReuseAddr => 0,
    ) or die "NgxTunnel::Stack::free_port: cannot bind 127.0.0.1:0: $!\n";
    my $port = $sock->sockport;
    close $sock;
    return $port;
}


# Options (all optional): root (repo root), dir (state dir; default a temp
# dir removed at DESTROY unless keep_dir or NGX_TUNNEL_KEEP), http_port
# (8080), ssh_port (2222), pg_port (5432: names the Unix socket only),
# proxy_buffer (proxy_buffer_size of the tunnel locations, 16k),
# domain (localhost), tunneld_args [extra flags], nginx_extra (text inside
# the tunnel server{}), nginx_http_extra (text inside http{}),
# lookup_timeout (1s), cache_ttl (5s), start_timeout (10 s), ipv6 (listen
# on [::1] too; default: if the machine has it), pgroup (services in their
# own process group), admin (serve the web control plane on the bare
# domain; needs build/ngx_http_tunnel_admin_module.so), admin_extra (text
# inside http{} next to the admin directives), admin_api (with admin: the
# internal location through which the admin module asks tunneld's
# management API; default on), workers (tunneld
# --workers N; default $TUNNELD_WORKERS, else one per online CPU as tunneld
# itself defaults to; 1: a single process, no supervisor).
sub new {
    my ($class, %o) = @_;

    my $root = $o{root}
        // abs_path(File::Spec->catdir(dirname(__FILE__), '..', '..', '..'));
    $root = abs_path($root) // croak "no such root directory '$o{root}'";

    my $own_dir = 0;
    my $dir = $o{dir};
    if (!defined $dir) {
        $dir = tempdir('ngx-tunnel.XXXXXX', TMPDIR => 1, CLEANUP => 0);
        $own_dir = 1;
    }

    my $self = bless {
        root             => $root,
        dir              => undef,
        own_dir          => $own_dir,
        keep_dir         => $o{keep_dir} // $ENV{NGX_TUNNEL_KEEP} // 0,
        http_port        => $o{http_port} // 8080,
        ssh_port         => $o{ssh_port} // 2222,
        pg_port          => $o{pg_port} // 5432,
        domain           => $o{domain} // 'localhost',
        tunneld_args     => $o{tunneld_args} // [],
        workers          => $o{workers} // $ENV{TUNNELD_WORKERS} // _ncpus(),
        nginx_extra      => $o{nginx_extra} // '',
        proxy_buffer     => $o{proxy_buffer} // '16k',
        nginx_http_extra => $o{nginx_http_extra} // '',
        lookup_timeout   => $o{lookup_timeout} // '1s',
        cache_ttl        => $o{cache_ttl} // '5s',
        # valgrind (`make test VALGRIND=1`) starts tunneld 10-50x slower
        start_timeout    => $o{start_timeout}
            // ($ENV{NGX_TUNNEL_VALGRIND} ? 90 : $START_TIMEOUT),
        # own process group per service: a terminal's Ctrl-C then reaches
        # only the caller, which stops the services in order (tools/run)
        pgroup           => $o{pgroup} // 0,
        # the web control plane (admin/) on the bare domain; off unless asked
        admin            => $o{admin} // 0,
        admin_extra      => $o{admin_extra} // '',
        admin_api        => $o{admin_api} // 1,
        ipv6             => $o{ipv6},
        # scale-out (docs/SCALING.md): node => ID gives this stack a node
        # id, a node secret and an internal listener on node_port; share =>
        # another Stack runs this one on that one's Redis and PostgreSQL
        node             => $o{node},
        node_port        => $o{node_port},
        node_secret      => $o{node_secret} // 'test-node-secret-0123456789abcdef',
        share            => $o{share},
        # TCP on loopback too (t/204-dns-resolve.t): Redis on redis_port,
        # PostgreSQL on pg_listen ('127.0.0.1') at pg_port; default off
        redis_port       => $o{redis_port},
        pg_listen        => $o{pg_listen},
        admin_database   => $o{admin_database},   # conninfo override
        # Redis through Sentinel: { sentinels => ['IP:PORT', ...], master
        # => NAME } for tunneld and nginx (the stack's own Redis still runs)
        sentinel         => $o{sentinel},
        is_root          => ($> == 0),
        owner            => $$,
        procs            => {},       # name => pid
        exited           => {},       # name => wait status, reaped by us
    }, $class;

    $self->_prepare_dir($dir);
    _install_signal_exit();
    $self->_sanitizer_dir;

    push @LIVE, $self;
    weaken($LIVE[-1]);
    return $self;
}


# A caller killed by a signal would skip END and leave its services
# running.  Signals the caller did not handle itself become a plain exit,
# so END (below) stops everything; handlers the caller set stay untouched.
my %SIGNUM = (HUP => 1, INT => 2, PIPE => 13, TERM => 15);

sub _install_signal_exit {
    for my $sig (keys %SIGNUM) {
        my $h = $SIG{$sig};
        next if defined $h && $h ne '' && $h ne 'DEFAULT';
        $SIG{$sig} = sub { exit 128 + $SIGNUM{$sig} };
    }
}


# --- accessors ------------------------------------------------------------

sub root          { $_[0]{root} }
sub dir           { $_[0]{dir} }
sub http_port     { $_[0]{http_port} }
sub ssh_port      { $_[0]{ssh_port} }
sub domain        { $_[0]{domain} }
sub socket_dir    { "$_[0]{dir}/sockets" }
sub host_key_path { "$_[0]{dir}/ssh_host_ed25519_key" }
sub data_dir      { $_[0]{share} ? $_[0]{share}{dir} : $_[0]{dir} }
sub redis_socket  { $_[0]->data_dir . '/redis.sock' }
sub pg_socket_dir { $_[0]->data_dir . '/pg' }
sub pg_data_dir   { $_[0]->data_dir . '/pg/data' }
sub node_port     { $_[0]{node_port} }
sub nginx_dir     { "$_[0]{dir}/nginx" }
sub nginx_conf    { "$_[0]{dir}/nginx/nginx.conf" }
sub access_log    { "$_[0]{dir}/nginx/access.log" }
# build/, or build-asan/ under `make test SANITIZE=1` (NGX_TUNNEL_BUILD)
sub bin           { ($ENV{NGX_TUNNEL_BUILD} || "$_[0]{root}/build") . "/$_[1]" }

sub url {
    my ($self, $name) = @_;
    return "http://$name.$self->{domain}:$self->{http_port}/";
}

sub log_path {
    my ($self, $what) = @_;
    my %p = (
        tunneld  => "$self->{dir}/tunneld.log",
        nginx    => "$self->{dir}/nginx/error.log",
        redis    => "$self->{dir}/redis.log",
        postgres => "$self->{dir}/postgres.log",
        access   => "$self->{dir}/nginx/access.log",
    );
    return $p{$what} // croak "log_path: unknown service '$what'";
}

sub pid {
    my ($self, $name) = @_;
    return $self->{procs}{$name};
}

# true while the service runs (reaps it if it exited)
sub running {
    my ($self, $name) = @_;
    return $self->_alive($name);
}

# how the service ended ("exit code N", "killed by signal N"), once reaped
sub exit_status {
    my ($self, $name) = @_;
    return exists $self->{exited}{$name}
        ? _exit_text($self->{exited}{$name}) : undef;
}

sub database_url {
    my ($self) = @_;
    my $pg_port = $self->{share} ? $self->{share}{pg_port} : $self->{pg_port};
    return "postgresql:///$PG_DB?host=" . $self->pg_socket_dir
         . "&port=$pg_port&user=$PG_USER";
}

sub redis_url { 'unix:' . $_[0]->redis_socket }

sub env {
    my ($self) = @_;
    return {
        DATABASE_URL  => $self->database_url,
        REDIS_URL     => $self->redis_url,
        RUN_DIR       => $self->{dir},
        HTTP_PORT     => $self->{http_port},
        SSH_PORT      => $self->{ssh_port},
        TUNNEL_DOMAIN => $self->{domain},
        TUNNELD_API   => $self->socket_dir . '/api.sock',
    };
}


# --- state directory --------------------------------------------------------

sub _prepare_dir {
    my ($self, $dir) = @_;

    make_path($dir) unless -d $dir;
    $dir = abs_path($dir);
    $self->{dir} = $dir;

    # mktemp -d makes 0700: the postgres account and nginx workers must be
    # able to traverse into it
    chmod 0755, $dir or croak "cannot chmod 0755 '$dir': $!";

    if ($self->{is_root}) {
        my $d = $dir;
        while (1) {
            $d = dirname($d);
            my @st = stat $d or croak "cannot stat '$d': $!";
            if (!($st[2] & S_IXOTH)) {
                die sprintf("NgxTunnel::Stack: directory '%s' (mode %04o)"
                    . " is not traversable by other users, so the"
                    . " '%s' and '%s' accounts cannot reach '%s'.\n"
                    . "Fix: 'chmod o+x %s', or put the state directory"
                    . " elsewhere (e.g. RUN_DIR=/tmp/ngx-tunnel-run or"
                    . " TMPDIR=/tmp).\n",
                    $d, $st[2] & 07777, $PG_USER, $WORKER_USER, $dir, $d);
            }
            last if $d eq '/';
        }
    }

    make_path("$dir/nginx", "$dir/nginx/tmp");
    chmod 0755, "$dir/nginx";
}

sub _account {
    my ($name) = @_;
    my @pw = getpwnam($name)
        or die "NgxTunnel::Stack: no '$name' account on this machine"
             . " (it comes with the Debian package; run 'make deps')\n";
    return ($pw[2], $pw[3]);
}


# drops root for good: group list, gid, then uid (order matters)
sub _become {
    my ($uid, $gid) = @_;
    $) = "$gid $gid";
    POSIX::setgid($gid) or die "setgid $gid: $!\n";
    POSIX::setuid($uid) or die "setuid $uid: $!\n";
    die "still privileged after setuid $uid\n" if $> != $uid || $< != $uid;
}


# --- processes --------------------------------------------------------------

# Forks and execs @cmd with stdout+stderr appended to $log; as root with
# $user given, drops to that account first.  Returns the pid.
sub _spawn {
    my ($self, $name, $user, $log, $env, @cmd) = @_;

    my ($uid, $gid);
    ($uid, $gid) = _account($user) if $user && $self->{is_root};

    open my $out, '>>', $log or croak "cannot open '$log': $!";
    chown $uid, $gid, $log if defined $uid;

    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        eval {
            POSIX::setpgid(0, 0) if $self->{pgroup};
            open STDIN, '<', '/dev/null' or die "stdin: $!";
            open STDOUT, '>&', $out or die "stdout: $!";
            open STDERR, '>&', $out or die "stderr: $!";
            @ENV{keys %$env} = values %$env if $env;
            my %san = $self->sanitizer_env($name);
            @ENV{keys %san} = values %san;
            if (defined $uid) {
                _become($uid, $gid);
                $ENV{HOME} = (getpwuid $uid)[7];
                $ENV{USER} = $ENV{LOGNAME} = $user;
            }
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!";
        };
        print STDERR "NgxTunnel::Stack: $name: $@";
        POSIX::_exit(127);
    }
    close $out;
    $self->{procs}{$name} = $pid;
    delete $self->{exited}{$name};
    return $pid;
}

# true while the process named $name runs; reaps it if it exited
sub _alive {
    my ($self, $name) = @_;
    my $pid = $self->{procs}{$name} or return 0;
    my $r = waitpid($pid, WNOHANG);
    if ($r == $pid || ($r == -1 && $! == ECHILD)) {
        $self->{exited}{$name} = $?;
        delete $self->{procs}{$name};
        return 0;
    }
    return 1;
}

sub _exit_text {
    my ($status) = @_;
    return 'unknown status' unless defined $status;
    return 'killed by signal ' . ($status & 127) if $status & 127;
    return 'exit code ' . ($status >> 8);
}

sub _tail {
    my ($path, $n) = @_;
    $n //= $LOG_TAIL;
    open my $fh, '<', $path or return "(no log at $path)\n";
    my @lines = <$fh>;
    close $fh;
    @lines = @lines[-$n .. -1] if @lines > $n;
    return @lines ? join('', @lines) : "(log $path is empty)\n";
}

sub _fail {
    my ($self, $name, $what, @logs) = @_;
    my $msg = "NgxTunnel::Stack: $name $what\n";
    for my $log (@logs) {
        next unless -e $log;
        $msg .= "--- last $LOG_TAIL lines of $log:\n" . _tail($log);
    }
    die $msg;
}

# Waits until $ready->() is true while $name stays alive; dies with the log
# tail on exit or timeout.
sub _wait_ready {
    my ($self, $name, $ready, @logs) = @_;
    my $deadline = time + $self->{start_timeout};
    while (1) {
        if (!$self->_alive($name)) {
            $self->_fail($name, 'exited while starting ('
                . _exit_text($self->{exited}{$name}) . ')', @logs);
        }
        return 1 if $ready->();
        last if time > $deadline;
        sleep 0.05;
    }
    $self->_stop($name, 'TERM');
    $self->_fail($name, "did not answer within $self->{start_timeout} s",
                 @logs);
}

# Sends $signal, waits up to $STOP_TIMEOUT s, then KILL.  Returns the wait
# status.
sub _stop {
    my ($self, $name, $signal) = @_;
    my $pid = $self->{procs}{$name} or return $self->{exited}{$name};
    return if $$ != $self->{owner};

    kill $signal // 'TERM', $pid;
    # valgrind's leak check at exit takes seconds of its own
    my $deadline = time
        + $STOP_TIMEOUT * ($ENV{NGX_TUNNEL_VALGRIND} ? 4 : 1);
    while ($self->_alive($name)) {
        if (time > $deadline) {
            kill 'KILL', $pid;
            my $r = waitpid($pid, 0);
            $self->{exited}{$name} = $?;
            delete $self->{procs}{$name};
            last;
        }
        sleep 0.02;
    }
    return $self->{exited}{$name};
}

sub _run {
    my ($self, $cmd, %o) = @_;
    my ($in, $out, $err) = ($o{stdin} // '', '', '');
    my @run = ($cmd);
    if ($o{env} || $o{user}) {
        my ($uid, $gid);
        ($uid, $gid) = _account($o{user})
            if $o{user} && $self->{is_root};
        push @run, init => sub {
            @ENV{keys %{ $o{env} }} = values %{ $o{env} } if $o{env};
            _become($uid, $gid) if defined $uid;
        };
    }
    push @run, '<', \$in, '>', \$out, '2>', \$err,
               IPC::Run::timeout($o{timeout} // 60);
    my $ok = eval { IPC::Run::run(@run); 1 };
    if (!$ok) {
        my $e = $@;
        die "NgxTunnel::Stack: '@$cmd' failed: $e" unless $e =~ /timeout/i;
        return (-1, $out, "$err\ntimeout after " . ($o{timeout} // 60)
                . " s\n");
    }
    return ($? >> 8, $out, $err);
}

sub _port_free {
    my ($addr, $port) = @_;
    my $sock = IO::Socket::INET->new(
        LocalAddr => $addr, LocalPort => $port, Proto => 'tcp',
        Listen => 1, ReuseAddr => 1,
    );
    return 0 unless $sock;
    close $sock;
    return 1;
}

sub _tcp_answers {
    my ($port) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
        Timeout => 1,
    ) or return 0;
    close $sock;
    return 1;
}

sub _ipv6_loopback {
    my $ok = eval {
        require IO::Socket::IP;
        my $s = IO::Socket::IP->new(
            LocalHost => '::1', LocalPort => 0, Proto => 'tcp', Listen => 1,
        );
        $s ? (close($s), 1) : 0;
    };
    return $ok ? 1 : 0;
}


# --- PostgreSQL -------------------------------------------------------------

sub _pg_bindir {
    my ($self) = @_;
    return $self->{pg_bindir} if $self->{pg_bindir};
    my $dir = `pg_config --bindir 2>/dev/null`;
    chomp $dir;
    # pg_config from libpq-dev reports the client's bindir; the server
    # binaries of Debian 12 live in /usr/lib/postgresql/15/bin
    if (!$dir || !-x "$dir/postgres") {
        ($dir) = grep { -x "$_/postgres" }
                 reverse sort glob('/usr/lib/postgresql/*/bin');
    }
    die "NgxTunnel::Stack: PostgreSQL server binaries not found"
        . " (pg_config --bindir, /usr/lib/postgresql/*/bin): run 'make deps'\n"
        unless $dir && -x "$dir/postgres";
    return $self->{pg_bindir} = $dir;
}

sub start_postgres {
    my ($self) = @_;
    return if $self->_alive('postgres');

    my $bin  = $self->_pg_bindir;
    my $sock = $self->pg_socket_dir;
    my $data = $self->pg_data_dir;
    my $log  = $self->log_path('postgres');
    my $user = $self->{is_root} ? $PG_USER : undef;

    make_path($sock) unless -d $sock;
    chmod 0755, $sock;
    if ($user) {
        my ($uid, $gid) = _account($PG_USER);
        chown $uid, $gid, $sock;
    }

    if (!-e "$data/PG_VERSION") {
        my ($rc, $out, $err) = $self->_run(
            ["$bin/initdb", '-D', $data, '--auth=trust', '-U', $PG_USER,
             '-E', 'UTF8', '--locale=C', '--no-instructions'],
            user => $user, timeout => 120);
        if ($rc != 0) {
            die "NgxTunnel::Stack: initdb failed (exit $rc):\n$out$err";
        }
    }

    $self->_spawn('postgres', $user, $log, undef,
        "$bin/postgres", '-D', $data, '-k', $sock, '-p', $self->{pg_port},
        '-c', 'listen_addresses=' . ($self->{pg_listen} // ''),
        '-c', 'unix_socket_permissions=0777',
        '-c', 'fsync=off', '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off', '-c', 'max_connections=100');

    $self->_wait_ready('postgres', sub {
        my ($rc) = $self->_run(["$bin/pg_isready", '-q', '-h', $sock,
                                '-p', $self->{pg_port}, '-U', $PG_USER,
                                '-d', 'postgres'], timeout => 5);
        return $rc == 0;
    }, $log);

    my ($rc, $out, $err) = $self->psql_db('postgres',
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'");
    die "NgxTunnel::Stack: cannot query PostgreSQL: $err" if $rc != 0;
    if ($out !~ /^1$/m) {
        ($rc, $out, $err) = $self->_run(
            ["$bin/createdb", '-h', $sock, '-p', $self->{pg_port},
             '-U', $PG_USER, $PG_DB], timeout => 30);
        die "NgxTunnel::Stack: createdb $PG_DB failed: $err" if $rc != 0;
    }
    return 1;
}

# psql on the project database: ($exit, $stdout, $stderr); unaligned,
# tuples only, stops at the first error
sub psql {
    my ($self, $sql, @args) = @_;
    return $self->psql_db($PG_DB, $sql, @args);
}

sub psql_db {
    my ($self, $db, $sql, @args) = @_;
    my $bin = $self->_pg_bindir;
    my $psql = -x "$bin/psql" ? "$bin/psql" : 'psql';
    return $self->_run(
        [$psql, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1',
         '-h', $self->pg_socket_dir, '-p', $self->{pg_port},
         '-U', $PG_USER, '-d', $db, @args, '-c', $sql],
        timeout => 60);
}

sub stop_postgres {
    my ($self) = @_;
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients
    # (tunneld's connection) to go away, as SIGTERM ("smart") would
    return $self->_stop('postgres', 'INT');
}


# --- migrations, tunnelctl -----------------------------------------------

sub _tool_env {
    my ($self) = @_;
    return {
        %{ $self->env },
        $self->sanitizer_env('tunnelctl'),
        PATH => ($ENV{NGX_TUNNEL_BUILD} || "$self->{root}/build")
              . ":$ENV{PATH}",
    };
}

sub tunnelctl {
    my ($self, @args) = @_;
    return $self->tunnelctl_in('', @args);
}

sub tunnelctl_in {
    my ($self, $stdin, @args) = @_;
    my $bin = $self->bin('tunnelctl');
    die "NgxTunnel::Stack: $bin not built: run 'make'\n" unless -x $bin;
    return $self->_run([$bin, @args], stdin => $stdin,
                       env => $self->_tool_env, timeout => 60);
}

sub migrate {
    my ($self) = @_;
    my ($rc, $out, $err) = $self->tunnelctl('migrate');
    die "NgxTunnel::Stack: tunnelctl migrate failed (exit $rc):\n$out$err"
        if $rc != 0;
    return $out;
}


# --- Redis ------------------------------------------------------------------

sub start_redis {
    my ($self) = @_;
    return if $self->_alive('redis');

    my $sock = $self->redis_socket;
    my $log  = $self->log_path('redis');
    my $data = "$self->{dir}/redis";
    make_path($data);

    # Routes live 10 s: nothing in Redis is worth persisting.  The socket
    # is 0777 inside the private state directory, so nginx workers
    # (www-data) reach it.
    $self->_spawn('redis', undef, $log, undef,
        'redis-server', '--port', $self->{redis_port} // 0,
        '--bind', '127.0.0.1', '--unixsocket', $sock,
        '--unixsocketperm', '777', '--save', '', '--appendonly', 'no',
        '--dir', $data, '--daemonize', 'no', '--logfile', '',
        '--loglevel', 'notice');

    $self->_wait_ready('redis', sub {
        return 0 unless -S $sock;
        my ($rc, $out) = $self->_run(['redis-cli', '-s', $sock, 'PING'],
                                     timeout => 5);
        return $rc == 0 && $out =~ /^PONG/;
    }, $log);
    return 1;
}

sub redis_cli {
    my ($self, @args) = @_;
    my ($rc, $out, $err) = $self->_run(
        ['redis-cli', '-s', $self->redis_socket, @args], timeout => 30);
    die "NgxTunnel::Stack: redis-cli @args failed (exit $rc): $err"
        if $rc != 0;
    chomp $out;
    return $out;
}

sub stop_redis {
    my ($self) = @_;
    return $self->_stop('redis', 'TERM');
}


# --- nginx ------------------------------------------------------------------

sub nginx_config {
    my ($self) = @_;
    my $d       = $self->data_dir;
    my $n       = $self->nginx_dir;
    my $port    = $self->{http_port};
    my $domain  = $self->{domain};
    my $module  = $self->bin('ngx_http_tunnel_module.so');
    my $user    = $self->{is_root} ? "user $WORKER_USER;" : '';
    my $ipv6    = $self->{ipv6} // _ipv6_loopback();
    my $listen6 = $ipv6 ? "listen [::1]:$port" : '';
    my $l6d     = $ipv6 ? "$listen6 default_server;" : '';
    my $redis_conf = $self->{sentinel}
        ? "tunnel_redis_sentinel @{ $self->{sentinel}{sentinels} };\n"
          . "    tunnel_redis_master $self->{sentinel}{master};"
        : "tunnel_redis unix:$d/redis.sock;";
    my $l6      = $ipv6 ? "$listen6;" : '';
    my $pbuf    = $self->{proxy_buffer};

    my ($admin_load, $admin_http, $admin_loc) = ('', '', '');
    if ($self->{admin}) {
        my $pg = $self->{admin_database}
            // "host=$d/pg port=$self->{pg_port} dbname=$PG_DB"
               . " user=$PG_USER connect_timeout=3";
        $admin_load = 'load_module '
                    . $self->bin('ngx_http_tunnel_admin_module.so') . ';';
        # the start page shows the exact ssh command and tunnel URL
        $admin_http = "tunnel_admin_database \"$pg\";\n"
                    . "    tunnel_admin_base_url http://$domain:$port;\n"
                    . "    tunnel_admin_ssh_host $domain;\n"
                    . "    tunnel_admin_ssh_port $self->{ssh_port};\n"
                    . "    tunnel_admin_tunnel_url \"http://%s.$domain:$port\";\n"
                    . "    $self->{admin_extra}";
        $admin_loc  = "location / {\n            tunnel_admin;\n        }";
        $admin_loc .= "\n\n        " . $self->_admin_api_location
            if $self->{admin_api};
    } else {
        $admin_loc = <<"LOC";
location = / {
            default_type text/html;
            return 200 '<!doctype html><title>ngx-tunnel</title><p>ngx-tunnel is running. Tunnels are at <i>name</i>.$domain:$port.</p>\\n';
        }

        location / {
            return 404;
        }
LOC
    }

    return <<"CONF";
# generated by tools/lib/NgxTunnel/Stack.pm: edits are overwritten
$user
worker_processes 2;
pid $n/nginx.pid;
error_log $n/error.log info;

load_module $module;
$admin_load

events {
    worker_connections 1024;
}

http {
    client_body_temp_path $n/tmp/client_body;
    proxy_temp_path       $n/tmp/proxy;
    fastcgi_temp_path     $n/tmp/fastcgi;
    uwsgi_temp_path       $n/tmp/uwsgi;
    scgi_temp_path        $n/tmp/scgi;

    log_format tunnel '\$remote_addr [\$time_local] "\$host" "\$request" '
                      '\$status \$body_bytes_sent \$request_time '
                      'tunnel=\$tunnel_name user=\$tunnel_user '
                      'upstream=\$upstream_addr';
    access_log $n/access.log tunnel;

    server_tokens off;
    default_type application/octet-stream;

    $redis_conf
    tunnel_domain $domain;
    tunnel_ssh_host $domain;
    tunnel_ssh_port $self->{ssh_port};
    tunnel_lookup_timeout $self->{lookup_timeout};
    tunnel_cache_ttl $self->{cache_ttl};
    $admin_http
    ${\ $self->_node_http }

    # plain requests keep the upstream connection alive (empty Connection);
    # WebSocket handshakes are passed on as upgrades
    map \$http_upgrade \$tunnel_connection {
        default upgrade;
        ''      '';
    }

    upstream tunnels {
        tunnel_balancer;        # before keepalive (nginx 1.22)
        keepalive 64;
        server 127.0.0.1:1;     # placeholder: the balancer picks the socket
    }

$self->{nginx_http_extra}

    # NAME.$domain: the tunnels
    server {
        listen 127.0.0.1:$port default_server;
        $l6d
        server_name *.$domain;

        client_max_body_size 0;

        location / {
            tunnel_lookup;
            proxy_pass http://tunnels;

            proxy_http_version 1.1;
            proxy_set_header Host \$host;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$tunnel_connection;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            # what nginx routed on (\$host: an absolute-form request line wins
            # over a forged Host header), with this dev listener's port
            proxy_set_header X-Forwarded-Host \$host:\$server_port;
            # set only toward another node (docs/SCALING.md); empty, so
            # stripped, toward a local tunnel
            proxy_set_header X-Tunnel-Node-Auth \$tunnel_node_auth;
            proxy_set_header X-Tunnel-Hop \$tunnel_node_hop;

            proxy_buffering off;
            proxy_request_buffering off;
            # unbuffered, nginx reads the tunnel's answer proxy_buffer_size
            # at a time: 16k instead of the 4k page halves nginx's CPU per
            # MB of a download (docs/BENCHMARKS.md, "nginx's buffer")
            proxy_buffer_size $pbuf;
            proxy_buffers 4 $pbuf;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;

            # tunneld's 502 carries X-Tunnel-Error: the page names the cause
            proxy_intercept_errors on;
            proxy_hide_header X-Tunnel-Error;
        }

        error_page 502 /__tunnel/offline;
        location = /__tunnel/offline {
            internal;
            tunnel_page offline;
        }

$self->{nginx_extra}
    }
${\ $self->_node_server }

    # the bare $domain: the admin UI (admin => 1), else a small static page
    server {
        listen 127.0.0.1:$port;
        $l6
        server_name $domain;

        $admin_loc
    }
}
CONF
}

# tunnel_node_id and the secret, with node => ID
sub _node_http {
    my ($self) = @_;
    return '' unless defined $self->{node};
    my $f = "$self->{dir}/node.secret";
    open my $fh, '>', $f or croak "cannot write '$f': $!";
    print $fh "$self->{node_secret}\n";
    close $fh;
    chmod 0644, $f;
    return "tunnel_node_id $self->{node};\n"
         . "    tunnel_node_secret_file $f;\n"
         . "    log_format tunnel_node '\$remote_addr:\$remote_port "
         . "\$connection_requests \"\$host\" \"\$request\" \$status';";
}

# The internal listener, with node => ID: requests other nodes forward for
# the tunnels this node holds.  Their X-Forwarded-* already say who the
# client is; a 502 of tunneld passes with X-Tunnel-Error, so the
# forwarding node renders the offline page with its cause.
sub _node_server {
    my ($self) = @_;
    return '' unless defined $self->{node};
    my $port = $self->{node_port} or croak 'node => ID needs node_port';
    my $n = $self->nginx_dir;
    my $pbuf = $self->{proxy_buffer};
    return <<"CONF";
    server {
        listen 127.0.0.1:$port;
        server_name _;
        # which pooled connection carried each forwarded request
        access_log $n/internal.log tunnel_node;

        client_max_body_size 0;

        location / {
            tunnel_lookup;
            tunnel_internal on;
            proxy_pass http://tunnels;

            proxy_http_version 1.1;
            proxy_set_header Host \$host;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$tunnel_connection;
            proxy_set_header X-Forwarded-For \$http_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$http_x_forwarded_proto;
            proxy_set_header X-Forwarded-Host \$http_x_forwarded_host;
            # local routes only here: both empty, so the credential and
            # the hop count never reach the tunnel
            proxy_set_header X-Tunnel-Node-Auth \$tunnel_node_auth;
            proxy_set_header X-Tunnel-Hop \$tunnel_node_hop;

            proxy_buffering off;
            proxy_request_buffering off;
            # unbuffered, nginx reads the tunnel's answer proxy_buffer_size
            # at a time: 16k instead of the 4k page halves nginx's CPU per
            # MB of a download (docs/BENCHMARKS.md, "nginx's buffer")
            proxy_buffer_size $pbuf;
            proxy_buffers 4 $pbuf;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }

        error_page 502 /__tunnel/offline;
        location = /__tunnel/offline {
            internal;
            tunnel_page offline;
        }
    }
CONF
}

# The admin module's way to tunneld's API (admin/ngx_http_tunnel_admin_api.c):
# internal, so only its subrequests reach it; no header or body of the
# browser's request is passed on; buffers for a page of 1000 tunnels (about
# 600 bytes each) held in memory; short timeouts, as the page waits.
sub _admin_api_location {
    my ($self) = @_;
    my $sock = $self->socket_dir . '/api.sock';
    return <<"LOC";
location /_tunneld/ {
            internal;
            tunnel_admin_api;
            proxy_pass http://unix:$sock:/;
            proxy_http_version 1.1;
            proxy_pass_request_headers off;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_connect_timeout 1s;
            proxy_send_timeout 2s;
            proxy_read_timeout 3s;
            proxy_buffer_size 16k;
            proxy_buffers 64 16k;
            proxy_max_temp_file_size 0;
            subrequest_output_buffer_size 2m;
        }
LOC
}

sub write_nginx_config {
    my ($self) = @_;
    my $path = $self->nginx_conf;
    open my $fh, '>', "$path.tmp" or croak "cannot write '$path.tmp': $!";
    print $fh $self->nginx_config;
    close $fh or croak "cannot write '$path.tmp': $!";
    rename "$path.tmp", $path or croak "cannot rename to '$path': $!";
    return $path;
}

sub start_nginx {
    my ($self) = @_;
    return if $self->_alive('nginx');

    my $module = $self->bin('ngx_http_tunnel_module.so');
    die "NgxTunnel::Stack: $module not built: run 'make'\n" unless -e $module;
    my $admin = $self->bin('ngx_http_tunnel_admin_module.so');
    die "NgxTunnel::Stack: $admin not built: run 'make'\n"
        if $self->{admin} && !-e $admin;

    my $port = $self->{http_port};
    die "NgxTunnel::Stack: HTTP port $port is already in use on 127.0.0.1;"
        . " pick another, e.g. HTTP_PORT=" . ($port + 1) . "\n"
        unless _port_free('127.0.0.1', $port);

    my $n = $self->nginx_dir;
    make_path("$n/tmp");
    $self->write_nginx_config;

    my $log    = $self->log_path('nginx');
    my $stderr = "$n/stderr.log";
    $self->_spawn('nginx', undef, $stderr, undef,
        $NGINX, '-p', "$n/", '-c', $self->nginx_conf, '-e', $log,
        '-g', 'daemon off;');

    $self->_wait_ready('nginx', sub { _tcp_answers($port) }, $stderr, $log);
    return 1;
}

# re-generates the config and sends HUP; waits until the new workers run
sub reload_nginx {
    my ($self) = @_;
    my $pid = $self->{procs}{nginx} or croak "nginx is not running";
    $self->write_nginx_config;
    kill 'HUP', $pid;
    sleep 0.5;
    $self->_alive('nginx')
        or $self->_fail('nginx', 'exited on reload',
                        $self->log_path('nginx'));
    return 1;
}

sub stop_nginx {
    my ($self) = @_;
    # TERM: nginx's fast shutdown (QUIT would wait for open connections)
    return $self->_stop('nginx', 'TERM');
}


# --- tunneld ----------------------------------------------------------------

sub tunneld_command {
    my ($self) = @_;
    my @cmd = (
        $self->bin('tunneld'),
        '--listen',       "127.0.0.1:$self->{ssh_port}",
        '--socket-dir',   $self->socket_dir,
        '--host-key',     $self->host_key_path,
        '--domain',       $self->{domain},
        '--public-url',   "http://%s.$self->{domain}:$self->{http_port}",
        '--database-url', $self->database_url,
        $self->{sentinel}
            ? ('--redis-sentinel', join(',', @{ $self->{sentinel}{sentinels} }),
               '--redis-master', $self->{sentinel}{master})
            : ('--redis-url', $self->redis_url),
    );
    push @cmd, '--socket-group', $WORKER_USER if $self->{is_root};
    # tunneld refuses root unless told (t/160-ssh-flood.t tests the refusal)
    push @cmd, '--allow-root' if $self->{is_root};
    push @cmd, '--node', $self->{node},
               '--node-address', "127.0.0.1:$self->{node_port}"
        if defined $self->{node};
    # the web UI's base: an unknown key is told its keys page (URL/keys)
    push @cmd, '--admin-url', "http://$self->{domain}:$self->{http_port}"
        if $self->{admin};
    push @cmd, '--workers', $self->{workers}
        if $self->{workers} && !grep { /^--workers/ } @{ $self->{tunneld_args} };
    push @cmd, @{ $self->{tunneld_args} };
    # `make test VALGRIND=1`: memcheck, one log per process (the workers
    # are forks: valgrind follows them; and the re-execution on an AMD
    # processor, sshd/copytune.c, with --trace-children); definite leaks
    # count as errors
    unshift @cmd, 'valgrind', '--error-exitcode=99', '--trace-children=yes',
        '--leak-check=full', '--errors-for-leak-kinds=definite',
        '--show-leak-kinds=definite', '--num-callers=30',
        "--log-file=$self->{san_dir}/tunneld-valgrind.%p"
        if $ENV{NGX_TUNNEL_VALGRIND} && $self->{san_dir};
    return @cmd;
}

# tunneld's worker processes: the children of the supervisor, or the one
# process itself with --workers 1
# tunneld's own default: one worker per online CPU (what production runs,
# so the tests and `make run` exercise it too)
sub _ncpus {
    my $n = `getconf _NPROCESSORS_ONLN 2>/dev/null` // '';
    chomp $n;
    return $n =~ /^\d+$/ && $n > 0 ? ($n > 64 ? 64 : $n) : 1;
}

sub tunneld_pids {
    my ($self) = @_;
    my $pid = $self->{procs}{tunneld} or return ();
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $pid;
    }
    return @kids ? sort { $a <=> $b } @kids : ($pid);
}

sub start_tunneld {
    my ($self) = @_;
    return if $self->_alive('tunneld');

    my $bin = $self->bin('tunneld');
    die "NgxTunnel::Stack: $bin not built: run 'make'\n" unless -x $bin;

    my $port = $self->{ssh_port};
    die "NgxTunnel::Stack: SSH port $port is already in use on 127.0.0.1;"
        . " pick another, e.g. SSH_PORT=" . ($port + 1) . "\n"
        unless _port_free('127.0.0.1', $port);

    my $log = $self->log_path('tunneld');
    my $log_start = -s $log // 0;
    $self->_spawn('tunneld', undef, $log,
        { DATABASE_URL => $self->database_url,
          REDIS_URL    => $self->redis_url },
        $self->tunneld_command);

    # answers = sends its SSH identification string
    $self->_wait_ready('tunneld', sub {
        my $s = IO::Socket::INET->new(
            PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
            Timeout => 1,
        ) or return 0;
        # no alarm(): callers (tests) may run a watchdog alarm of their own
        my $buf = '';
        my $sel = IO::Select->new($s);
        my $deadline = time + 2;
        while ($buf !~ /\n/ && time < $deadline) {
            last unless $sel->can_read($deadline - time);
            my $n = sysread $s, $buf, 256, length $buf;
            last unless $n;
        }
        close $s;
        return $buf =~ /^SSH-2\.0-/;
    }, $log);

    # and has its key table: before that it refuses every key ("starting
    # up, retry"), which would make a test's first ssh fail
    $self->_wait_ready('tunneld', sub {
        open my $fh, '<', $log or return 0;
        seek $fh, $log_start, 0;
        local $/;
        my $text = <$fh> // '';
        # every worker: each accepts only once its own table is loaded
        my $n = () = $text =~ /db: loaded \d+ key/g;
        return $n >= ($self->{workers} || 1);
    }, $log);
    return 1;
}

sub stop_tunneld {
    my ($self, %o) = @_;
    return $self->_stop('tunneld', $o{signal} // 'TERM');
}


# --- all --------------------------------------------------------------------

sub start_all {
    my ($self) = @_;
    $self->start_postgres;
    $self->migrate;
    $self->start_redis;
    $self->start_nginx;
    $self->start_tunneld;
    return $self;
}

sub stop_all {
    my ($self) = @_;
    return if $$ != $self->{owner};
    for my $name (qw(tunneld nginx redis)) {
        $self->_stop($name, 'TERM') if $self->{procs}{$name};
    }
    $self->stop_postgres if $self->{procs}{postgres};
    $self->sanitizer_check;
    return 1;
}


# --- sanitizers and valgrind (`make test SANITIZE=1` / `VALGRIND=1`) --------
#
# NGX_TUNNEL_SANITIZE (or NGX_TUNNEL_VALGRIND) names the directory for
# reports.  Each stack gets its own subdirectory (world-writable: nginx
# workers run as www-data), and tunneld, nginx and tunnelctl write their
# ASan/LSan reports (or tunneld its valgrind logs) there, one file per
# process.  Debian's nginx is not sanitized: it gets libasan preloaded so
# our sanitized modules load into it, no leak check (nginx's exit does not
# free every pool) and no ODR check (below).  A report found when the
# stack stops fails the test file: its first lines are printed and the
# exit code is set (Test2's exit hook, or END without Test2).

my $LIBASAN = '/usr/lib/x86_64-linux-gnu/libasan.so.8';
my @SAN_FOUND;                 # report texts found so far
my %SAN_SEEN;                  # report files already counted
my $SAN_SEQ = 0;
my $SAN_HOOKED = 0;

sub _sanitizer_dir {
    my ($self) = @_;
    my $top = $ENV{NGX_TUNNEL_SANITIZE} || $ENV{NGX_TUNNEL_VALGRIND}
        or return;
    my $sub = sprintf '%s/stack-%s-%d-%d', $top,
        (File::Spec->splitpath($0))[2] =~ s/[^\w.-]/_/gr, $$, ++$SAN_SEQ;
    make_path($sub);
    chmod 01777, $top, $sub;
    $self->{san_dir} = $sub;
    if (!$SAN_HOOKED++ && $INC{'Test2/API.pm'}) {
        Test2::API::test2_add_callback_exit(sub {
            my ($ctx, $real, $new) = @_;
            $_->stop_all for grep { defined } @LIVE;
            _sanitizer_other();
            return unless @SAN_FOUND;
            $ctx->diag($_) for @SAN_FOUND;
            $$new ||= 1;
        });
    }
}

# extra environment for a sanitized program $what (tunneld, nginx,
# tunnelctl) of this stack: empty unless NGX_TUNNEL_SANITIZE is set
sub sanitizer_env {
    my ($self, $what) = @_;
    my $d = ref $self ? $self->{san_dir} : undef;
    return () unless $d && $ENV{NGX_TUNNEL_SANITIZE}
                     && $what =~ /^(?:tunneld|nginx|tunnelctl)$/;
    # nginx: every dynamic module defines ngx_modules, ngx_module_names
    # and ngx_module_order, which nginx looks up per module with dlsym():
    # not a real ODR violation, so ASan's check for it is off there
    my %e = (
        ASAN_OPTIONS  => "log_path=$d/$what-asan:detect_leaks="
                       . ($what eq 'nginx' ? '0:detect_odr_violation=0' : 1),
        # gcc's UBSan next to ASan writes to stderr whatever log_path
        # says: the logs are read (sanitizer_check); tunnelctl stops
        UBSAN_OPTIONS => 'print_stacktrace=1'
                       . ($what eq 'tunnelctl' ? ':halt_on_error=1' : ''),
    );
    $e{LD_PRELOAD} = $LIBASAN if $what eq 'nginx';
    return %e;
}

sub _sanitizer_note {
    my ($path) = @_;
    return if $SAN_SEEN{$path}++ || !-s $path;
    open my $fh, '<', $path or return;
    my @l;
    if ($path =~ /-valgrind\.\d+$/) {
        # a log with "ERROR SUMMARY: 0 errors" (or none yet: a process
        # killed on purpose) is clean; else the errors, without the header
        my @all = <$fh>;
        my $sum = (grep { /ERROR SUMMARY: / } @all)[-1] // '';
        return if $sum !~ /ERROR SUMMARY: [1-9]/;
        my $head = qr/^==\d+==\s(?:Memcheck|Copyright|Using\sValgrind
                                |Command|Parent\sPID|\s*$)/x;
        @l = grep { !/$head/ } @all;
        @l = @l[0 .. 39] if @l > 40;
    } else {
        @l = grep { defined } map { scalar <$fh> } 1 .. 25;
    }
    push @SAN_FOUND, "sanitizer report $path:\n" . join '', @l;
}

# counts the reports of this stack's processes; true if there is none
sub sanitizer_check {
    my ($self) = @_;
    my $d = $self->{san_dir} or return 1;
    my $before = @SAN_FOUND;
    _sanitizer_note($_) for sort glob "$d/*";
    # what went to stderr: UBSan's reports (and ASan's before log_path)
    for my $log ($self->log_path('tunneld'), "$self->{dir}/nginx/stderr.log",
                 $self->log_path('nginx')) {
        open my $fh, '<', $log or next;
        my @l = <$fh>;
        for my $i (0 .. $#l) {
            next unless $l[$i] =~ /runtime error:|ERROR: \w+Sanitizer/;
            next if $SAN_SEEN{"$log:$i"}++;
            # the report's own lines (stack, summary), not the log's next
            my @r = ($l[$i]);
            for my $j ($i + 1 .. ($i + 30 > $#l ? $#l : $i + 30)) {
                last unless $l[$j] =~ /^(?:\s|==\d+==|SUMMARY:|Direct |
                                           Indirect |READ |WRITE |0x|=+$)/x;
                push @r, $l[$j];
            }
            push @SAN_FOUND, "sanitizer report in $log:\n" . join '', @r;
        }
    }
    print STDERR $_ for @SAN_FOUND[$before .. $#SAN_FOUND];
    return @SAN_FOUND == $before;
}

# reports of sanitized programs a test ran itself (the Makefile's
# ASAN_OPTIONS point there), written since this test started
sub _sanitizer_other {
    my $top = $ENV{NGX_TUNNEL_SANITIZE} or return;
    for my $f (sort glob "$top/other-*") {
        _sanitizer_note($f) if (stat $f)[9] >= $^T;
    }
}

sub DESTROY {
    my ($self) = @_;
    return if !$self->{owner} || $$ != $self->{owner};
    local ($., $@, $!, $^E, $?);
    $self->stop_all;
    if ($self->{own_dir} && !$self->{keep_dir} && $self->{dir}) {
        remove_tree($self->{dir}, { safe => 1 });
    }
}

END {
    {
        local $?;
        for my $s (@LIVE) {
            $s->stop_all if $s;
        }
    }
    # without Test2 (tools/run) a sanitizer report still fails the exit
    $? ||= 1 if @SAN_FOUND && !$INC{'Test2/API.pm'};
}

1;
