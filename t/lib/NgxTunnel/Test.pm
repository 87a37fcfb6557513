package NgxTunnel::Test;

# Helpers for the end-to-end tests in t/*.t: a private stack per test file
# (through tools/lib/NgxTunnel/Stack.pm), the Python test backend, users
# and keys, the real OpenSSH client in the background, a small raw HTTP/1.1
# and WebSocket client, and log checks.  It does not start services itself
# (Stack.pm does) and never touches a process it did not start: every
# backend and ssh client is tracked by PID and stopped at the end (END block
# too, so a dying test leaves nothing behind).  Every wait is bounded.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha1 sha256_hex);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IPC::Run qw(start);
use MIME::Base64 qw(encode_base64);
use POSIX qw(:sys_wait_h);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Symbol ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
    repo_root start_stack new_user start_backend start_ssh run_ssh
    wait_route wait_no_route wait_until http_request http_get pattern_sha256
    pattern_bytes ws_handshake ws_send ws_recv check_logs log_lines
    sql_query read_file watchdog tail_log pattern_gen new_key stop_backend
    route_of http_connect page_text status_body strace_during
);

my $root = abs_path(dirname(__FILE__) . '/../../..');

sub repo_root { $root }

our @KIDS;      # [pid, what] of backends we started (ssh are harnesses)
our @HARNESS;   # NgxTunnel::Test::Ssh objects still running

# A signal or a closed output pipe must still stop every process we
# started: INT/TERM/HUP exit (not die: an eval would catch that), so END
# blocks run, here and in Stack.pm; writes to a closed pipe fail with
# EPIPE instead of killing the test silently.
$SIG{PIPE} = 'IGNORE';
$SIG{$_} = sub { print STDERR "caught SIG$_[0]: stopping\n"; exit 130 }
    for qw(INT TERM HUP);


# -------------------------------------------------------------------------
# stack

# Ends the whole test file if it runs past $secs: a hang is a failure,
# never a stuck CI job.  exit, not die (an eval would catch a die): END
# blocks still run and stop every process.
sub watchdog {
    my ($secs) = @_;
    $SIG{ALRM} = sub {
        print STDERR "watchdog: test file ran longer than ${secs}s\n";
        exit 124;
    };
    # `make test VALGRIND=1` runs tunneld slower: TEST_TIME_SCALE
    $secs *= $ENV{TEST_TIME_SCALE} if $ENV{TEST_TIME_SCALE};
    alarm $secs;
}

# A stack in its own temp dir with free ports, all five services started.
# nginx => 0 leaves the stack's nginx out (a test that runs its own nginx
# configuration against PostgreSQL, Redis and tunneld).  Extra options go
# to NgxTunnel::Stack->new.  Returns the Stack object.
sub start_stack {
    my (%opt) = @_;
    my $nginx = delete $opt{nginx} // 1;

    require lib;
    lib->import("$root/tools/lib");
    require NgxTunnel::Stack;

    my $dir = tempdir('ngx-tunnel-t.XXXXXX', TMPDIR => 1,
        CLEANUP => !$ENV{TEST_KEEP});
    chmod 0755, $dir;
    Test::More::diag("stack dir: $dir") if $ENV{TEST_VERBOSE};

    my $s = NgxTunnel::Stack->new(
        root      => $root,
        dir       => "$dir/stack",
        http_port => NgxTunnel::Stack::free_port(),
        ssh_port  => NgxTunnel::Stack::free_port(),
        domain    => 'localhost',
        %opt,
    );
    $s->{_test_dir} = $dir;
    if ($nginx) {
        $s->start_all;
    } else {
        $s->start_postgres;
        $s->migrate;
        $s->start_redis;
        $s->start_tunneld;
    }
    return $s;
}


sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    my $data = <$fh>;
    return $data // '';
}


sub log_lines {
    my ($path) = @_;
    return split /\n/, read_file($path);
}


# Checks nginx's error.log and tunneld's log: never [alert]/[crit]/[emerg]
# (or tunneld fatal/crit/alert), and [error] only when it matches one of
# the patterns in allow_nginx / allow_tunneld.  Emits test results.
sub check_logs {
    my ($s, %opt) = @_;
    my @allow_n = @{ $opt{allow_nginx} || [] };
    my @allow_t = @{ $opt{allow_tunneld} || [] };

    my @nginx = log_lines($s->log_path('nginx'));
    my @bad = grep { /\[(?:alert|crit|emerg)\]/ } @nginx;
    Test::More::is(scalar @bad, 0, 'nginx error.log: no alert/crit/emerg')
        or Test::More::diag(join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)]);

    my @err = grep {
        my $l = $_;
        $l =~ /\[error\]/ && !grep { $l =~ $_ } @allow_n
    } @nginx;
    Test::More::is(scalar @err, 0, 'nginx error.log: no unexpected [error]')
        or Test::More::diag(join "\n", @err[0 .. ($#err > 20 ? 20 : $#err)]);

    my @tun = log_lines($s->log_path('tunneld'));
    @bad = grep { /tunneld: (?:alert|crit|emerg|fatal|panic)\b/i
                  || /\b(?:AddressSanitizer|Segmentation fault|double free)/ }
           @tun;
    Test::More::is(scalar @bad, 0, 'tunneld log: no alert/crit/fatal')
        or Test::More::diag(join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)]);

    @err = grep {
        my $l = $_;
        $l =~ /tunneld: error\b/i && !grep { $l =~ $_ } @allow_t
    } @tun;
    Test::More::is(scalar @err, 0, 'tunneld log: no unexpected error')
        or Test::More::diag(join "\n", @err[0 .. ($#err > 20 ? 20 : $#err)]);
}


# the last $n lines of a service's log, for diagnostics
sub tail_log {
    my ($s, $what, $n) = @_;
    my @l = log_lines($s->log_path($what));
    $n //= 20;
    @l = @l[-$n .. -1] if @l > $n;
    return "--- $what log:\n" . join("\n", @l) . "\n";
}


# The visible text of an HTML page: tags dropped, the entities our pages
# use decoded (curly quotes become "), blanks collapsed.
sub page_text {
    my ($html) = @_;
    my $t = $html // '';
    $t =~ s/<(?:script|style)\b.*?<\/(?:script|style)>//gis;
    $t =~ s/<[^>]*>/ /g;
    my %ent = (ldquo => '"', rdquo => '"', quot => '"', lsquo => "'",
        rsquo => "'", apos => "'", '#39' => "'", '#34' => '"', amp => '&',
        lt => '<', gt => '>', nbsp => ' ');
    $t =~ s/&(#?\w+);/exists $ent{$1} ? $ent{$1} : "&$1;"/ge;
    $t =~ s/\s+/ /g;
    $t =~ s/^ | $//g;
    return $t;
}


# runs SQL on the stack's database (dies on error); returns stdout chomped
sub sql_query {
    my ($s, $sql) = @_;
    my ($rc, $out, $err) = $s->psql($sql);
    die "psql failed (exit $rc): $err\n" if $rc != 0;
    chomp $out;
    return $out;
}


# -------------------------------------------------------------------------
# users and keys

my $key_serial = 0;
my $KEY_RELOAD = 2.2;    # the 2 s reload contract plus a margin
our %KEY_READY;          # key path => time it may be used

# Adds user NAME (unless it exists: pass exists => 1) and a fresh ed25519
# key for it.  Returns { name, key, pub, fingerprint }.
sub new_user {
    my ($s, $name, %opt) = @_;

    unless ($opt{exists}) {
        my ($rc, $out, $err) = $s->tunnelctl('user', 'add', $name);
        die "tunnelctl user add $name: exit $rc: $out$err\n" if $rc != 0;
    }

    my $u = new_key($s, $name);
    unless ($opt{no_register}) {
        my ($rc, $out, $err) = $s->tunnelctl('key', 'add', $name, $u->{pub});
        die "tunnelctl key add $name: exit $rc: $out$err\n" if $rc != 0;
        $u->{registered} = 1;
        # tunneld reloads keys within 2 s of the change (docs/INTERNALS.md):
        # start_ssh waits out the rest of that time before using this key
        $KEY_READY{$u->{key}} = time + $KEY_RELOAD;
    }
    return $u;
}


# A fresh key pair in the test dir (not registered).
sub new_key {
    my ($s, $name) = @_;
    my $kdir = "$s->{_test_dir}/keys";
    mkdir $kdir, 0700;
    $key_serial++;
    my $key = "$kdir/$name-$key_serial";
    my ($out, $err) = ('', '');
    IPC::Run::run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                   '-C', "$name\@test", '-f', $key],
                  '<', \undef, '>', \$out, '2>', \$err,
                  IPC::Run::timeout(20))
        or die "ssh-keygen: $err\n";
    chmod 0600, $key;
    IPC::Run::run(['ssh-keygen', '-lf', "$key.pub"], '<', \undef,
                  '>', \$out, '2>', \$err, IPC::Run::timeout(20))
        or die "ssh-keygen -lf: $err\n";
    my ($fp) = $out =~ /\b(SHA256:[A-Za-z0-9+\/]+)/
        or die "no fingerprint in: $out\n";
    return { name => $name, key => $key, pub => "$key.pub",
             fingerprint => $fp };
}


# -------------------------------------------------------------------------
# the test backend (t/backend/server.py)

# Starts the backend on a free port; returns { pid, port, name, log }.
sub start_backend {
    my ($s, $name) = @_;
    my $log = "$s->{_test_dir}/backend-$name.log";

    # a plain pipe, not open '-|': closing a piped open waits for the child
    pipe(my $rd, my $wr) or die "pipe: $!\n";
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        close $rd;
        open STDOUT, '>&', $wr or POSIX::_exit(1);
        open STDERR, '>>', $log or POSIX::_exit(1);
        open STDIN, '<', '/dev/null';
        exec('python3', "$root/t/backend/server.py", '0', $name)
            or POSIX::_exit(127);
    }
    close $wr;
    push @KIDS, [$pid, "backend $name"];

    my $sel = IO::Select->new($rd);
    my $line = '';
    my $deadline = time + 10;
    while ($line !~ /\n/ && time < $deadline) {
        next unless $sel->can_read(0.2);
        my $n = sysread $rd, $line, 64, length $line;
        last unless $n;
    }
    close $rd;
    my ($port) = $line =~ /^(\d+)\n/
        or die "backend $name did not start: " . read_file($log) . "\n";
    return { pid => $pid, port => $port, name => $name, log => $log };
}


sub stop_pid {
    my ($pid, $what) = @_;
    return unless $pid;
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}


sub stop_backend {
    my ($b) = @_;
    stop_pid($b->{pid}, "backend $b->{name}");
    @KIDS = grep { $_->[0] != $b->{pid} } @KIDS;
    $b->{pid} = 0;
}


# -------------------------------------------------------------------------
# the OpenSSH client

sub ssh_command {
    my ($s, %o) = @_;
    my @cmd = ('ssh', '-F', '/dev/null', '-i', $o{key},
        '-p', $s->env->{SSH_PORT},
        '-o', 'StrictHostKeyChecking=no',
        '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'BatchMode=yes',
        '-o', 'IdentitiesOnly=yes',
        '-o', 'IdentityAgent=none',
        '-o', 'ConnectTimeout=10',
        '-o', 'ServerAliveInterval=' . ($o{alive} // 5));
    push @cmd, '-o', 'ExitOnForwardFailure=yes'
        unless defined $o{exit_on_forward_failure}
               && !$o{exit_on_forward_failure};
    push @cmd, ($o{session} ? '-tt' : '-N') unless $o{no_mode};
    for my $r (ref $o{remote} ? @{ $o{remote} } : ($o{remote} // ())) {
        push @cmd, '-R', $r;
    }
    push @cmd, @{ $o{extra} || [] };
    push @cmd, ($o{user} // 'tester') . '@127.0.0.1';
    push @cmd, @{ $o{command} || [] };
    return @cmd;
}


# Starts ssh in the background.  Options: key, user, remote (spec or list
# of specs), session (1: -tt with a session channel, stdin kept open; 0:
# -N), extra (more args), exit_on_forward_failure (default 1), alive
# (ServerAliveInterval, default 5).
sub start_ssh {
    my ($s, %o) = @_;
    my $ready = delete $KEY_READY{$o{key} // ''};
    sleep $ready - time if $ready && $ready > time;
    my @cmd = ssh_command($s, %o);
    my $self = bless { cmd => \@cmd, out => '', err => '' },
        'NgxTunnel::Test::Ssh';
    my $in = Symbol::gensym();
    $self->{h} = start(\@cmd, '<pipe', $in, '>', \$self->{out},
        '2>', \$self->{err});
    $self->{in} = $in;
    push @HARNESS, $self;
    return $self;
}


# Runs ssh to completion (bounded); returns ($exit_code, $stdout, $stderr).
# exit code is -1 on timeout (the client was then killed).
sub run_ssh {
    my ($s, %o) = @_;
    my $timeout = delete $o{timeout} // 20;
    my $ssh = start_ssh($s, %o);
    my $rc = $ssh->finish($timeout);
    return ($rc, $ssh->{out}, $ssh->{err});
}


sub wait_until {
    my ($timeout, $cond) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return undef if time >= $deadline;
        sleep 0.05;
    }
}


# Waits (bounded) for tunnel:route:NAME in Redis; returns the hash or undef.
sub wait_route {
    my ($s, $name, $timeout, $cond) = @_;
    my $route;
    wait_until($timeout // 10, sub {
        my %h = route_of($s, $name);
        return 0 unless %h;
        return 0 if $cond && !$cond->(\%h);
        $route = \%h;
        return 1;
    });
    return $route;
}


sub wait_no_route {
    my ($s, $name, $timeout) = @_;
    return wait_until($timeout // 10, sub { !route_of($s, $name) });
}


# the route hash of NAME, () when absent or when Redis does not answer
sub route_of {
    my ($s, $name) = @_;
    my $out = eval { $s->redis_cli('HGETALL', "tunnel:route:$name") };
    return () unless defined $out;
    my @kv = split /\n/, $out;
    return () if @kv % 2;
    return @kv;
}


# -------------------------------------------------------------------------
# HTTP client: raw sockets so every byte and every timing is ours

# Connects to nginx (or any port); returns a connection hashref.
sub http_connect {
    my ($port, $timeout) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port, Proto => 'tcp', Timeout => $timeout // 5)
        or die "connect 127.0.0.1:$port: $!\n";
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $sock->blocking(0);
    return { sock => $sock, buf => '', sel => IO::Select->new($sock) };
}


sub _write_all {
    my ($c, $data, $deadline) = @_;
    my $off = 0;
    my $wsel = IO::Select->new($c->{sock});
    while ($off < length $data) {
        my $left = $deadline - time;
        die "write timeout\n" if $left <= 0;
        next unless $wsel->can_write($left > 1 ? 1 : $left);
        my $n = syswrite $c->{sock}, $data, length($data) - $off, $off;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            die "write: $!\n";
        }
        $off += $n;
    }
}


# Reads more into $c->{buf}; returns bytes read, 0 at EOF; dies on timeout.
sub _read_more {
    my ($c, $deadline) = @_;
    while (1) {
        my $left = $deadline - time;
        die "read timeout\n" if $left <= 0;
        next unless $c->{sel}->can_read($left > 1 ? 1 : $left);
        my $n = sysread $c->{sock}, $c->{buf}, 262144, length $c->{buf};
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            return 0 if $!{ECONNRESET};
            die "read: $!\n";
        }
        return $n;
    }
}


# Sends one request and reads the response.  Options:
#   conn      an open connection (keepalive); else a new one to port
#   port      nginx port (default the stack's)
#   host      Host header value (name => "NAME.localhost:PORT")
#   method, path, headers (arrayref of [k, v]), body (string), or
#   body_gen  (coderef returning the next chunk, undef/'' at end) with
#   chunked   (1: Transfer-Encoding chunked) or length (Content-Length)
#   on_body   coderef called with each body piece (body then not kept)
#   timeout   seconds for the whole exchange (default 15)
#   read_only 1: the request was already written, only read a response
# Returns { status, reason, headers (lower-case names), body, conn,
# closed, t_headers, t_done }.
sub http_request {
    my (%o) = @_;
    my $deadline = time + ($o{timeout} // 15);
    my $c = $o{conn} // http_connect($o{port});
    my $method = $o{method} // 'GET';

    my $req = "$method " . ($o{path} // '/') . " HTTP/1.1\r\n"
        . "Host: $o{host}\r\n";
    for my $h (@{ $o{headers} || [] }) {
        $req .= "$h->[0]: $h->[1]\r\n";
    }
    if (defined $o{body}) {
        $req .= "Content-Length: " . length($o{body}) . "\r\n";
    } elsif ($o{body_gen}) {
        $req .= $o{chunked} ? "Transfer-Encoding: chunked\r\n"
                            : "Content-Length: $o{length}\r\n";
    }
    $req .= "\r\n";
    $req .= $o{body} if defined $o{body};
    my $t0 = time;
    _write_all($c, $req, $deadline) unless $o{read_only};

    if ($o{body_gen} && !$o{read_only}) {
        while (1) {
            my $piece = $o{body_gen}->();
            last unless defined $piece && length $piece;
            $piece = sprintf("%x\r\n", length $piece) . $piece . "\r\n"
                if $o{chunked};
            _write_all($c, $piece, $deadline);
        }
        _write_all($c, "0\r\n\r\n", $deadline) if $o{chunked};
    }

    my $r = { conn => $c, t_start => $t0 };
    my $closed = 0;
    while ($c->{buf} !~ /\r\n\r\n/) {
        if (!_read_more($c, $deadline)) {
            die "connection closed before the response headers"
                . (length $c->{buf} ? ": $c->{buf}" : '') . "\n";
        }
    }
    $r->{t_headers} = time;
    $c->{buf} =~ s/^(.*?)\r\n\r\n//s;
    my @lines = split /\r\n/, $1;
    my $status = shift @lines;
    ($r->{status}, $r->{reason}) = $status =~ m{^HTTP/1\.[01] (\d{3}) ?(.*)$}
        or die "bad status line: $status\n";
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    $r->{headers} = \%h;

    my $body = '';
    my $sink = $o{on_body} // sub { $body .= $_[0] };

    if ($method eq 'HEAD' || $r->{status} =~ /^(?:1\d\d|204|304)$/) {
        # no body (101: the rest of the buffer belongs to the new protocol)
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            while ($c->{buf} !~ /\r\n/) {
                _read_more($c, $deadline) or die "eof in chunk size\n";
            }
            $c->{buf} =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or die "bad chunk\n";
            my $size = hex $1;
            if ($size == 0) {
                while ($c->{buf} !~ /^\r\n/ && $c->{buf} !~ /\r\n\r\n/) {
                    _read_more($c, $deadline) or last;
                }
                $c->{buf} =~ s/^(?:.*?\r\n)?\r\n//s;
                last;
            }
            while (length $c->{buf} < $size + 2) {
                _read_more($c, $deadline) or die "eof in chunk\n";
            }
            $sink->(substr($c->{buf}, 0, $size));
            substr($c->{buf}, 0, $size + 2) = '';
        }
    } elsif (defined $h{'content-length'}) {
        my $left = $h{'content-length'};
        while ($left > 0) {
            if (!length $c->{buf}) {
                _read_more($c, $deadline)
                    or die "eof with $left body bytes missing\n";
            }
            my $n = length $c->{buf} < $left ? length $c->{buf} : $left;
            $sink->(substr($c->{buf}, 0, $n));
            substr($c->{buf}, 0, $n) = '';
            $left -= $n;
        }
    } else {
        while (1) {
            if (length $c->{buf}) {
                $sink->($c->{buf});
                $c->{buf} = '';
            }
            _read_more($c, $deadline) or last;
        }
        $closed = 1;
    }
    $r->{t_done} = time;
    $r->{body} = $body;
    $r->{closed} = $closed;
    return $r;
}


# GET through nginx to tunnel NAME.  %o as http_request (host, port,
# path default /).  Dies on transport errors.
# "STATUS BODY" of GET / through nginx for a tunnel name, or "error: ..."
# (never dies): what the takeover and worker tests compare.
sub status_body {
    my ($s, $name) = @_;
    my $r = eval { http_get($s, $name, '/', timeout => 10) };
    return $r ? "$r->{status} $r->{body}" : "error: $@";
}


sub http_get {
    my ($s, $name, $path, %o) = @_;
    my $port = $s->env->{HTTP_PORT};
    return http_request(port => $port,
        host => "$name.localhost:$port", path => $path // '/', %o);
}


# -------------------------------------------------------------------------
# the byte pattern of GET /bytes/N (see t/backend/server.py)

my $BASE;

sub _base {
    $BASE //= join '', map { Digest::SHA::sha256("ngx-tunnel-$_") }
        0 .. 2047;
    return $BASE;
}


sub pattern_block {
    my ($j) = @_;
    return pack('Q>', $j) . substr(_base(), 8);
}


# the first $n bytes of the pattern
sub pattern_bytes {
    my ($n) = @_;
    my $out = '';
    my $j = 0;
    while (length $out < $n) {
        $out .= pattern_block($j++);
    }
    return substr($out, 0, $n);
}


# a body generator for http_request: the first $n pattern bytes, one
# 64 KiB block per call
sub pattern_gen {
    my ($n) = @_;
    my $j = 0;
    return sub {
        return undef if $n <= 0;
        my $b = pattern_block($j++);
        $b = substr($b, 0, $n) if $n < length $b;
        $n -= length $b;
        return $b;
    };
}


# Runs $code while strace follows the processes @$pids (-f: their threads
# and children too), writing to $o{out}.  By default strace -c: returns
# ({syscall => calls}, {syscall => failed calls}); with trace => 'a,b'
# (strace -e trace=a,b) the lines it printed.  settle => S waits S seconds
# after $code before detaching (output still in flight); calls{total} is
# strace's own sum.  The caller
# checks that strace is installed (plan skip_all otherwise).
sub strace_during {
    my ($pids, $code, %o) = @_;
    my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
    die "strace_during: strace is not installed\n" unless $strace;
    my $out = $o{out} or die "strace_during: no out file\n";
    unlink $out;
    my @how = $o{trace} ? ('-e', "trace=$o{trace}") : ('-c');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec($strace, @how, '-f', '-o', $out, map { ('-p', $_) } @$pids)
            or POSIX::_exit(127);
    }
    sleep 1;    # strace attaches
    $code->();
    sleep $o{settle} if $o{settle};
    kill 'INT', $pid;
    waitpid $pid, 0;
    open my $fh, '<', $out or die "$out: $!";
    my @lines = <$fh>;
    return @lines if $o{trace};
    my (%calls, %errors);
    for (@lines) {
        # % time  seconds  usecs/call  calls  [errors]  syscall
        next unless /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$/;
        $calls{$3} = $1;
        $errors{$3} = $2 // 0;
    }
    return (\%calls, \%errors);
}


sub pattern_sha256 {
    my ($n) = @_;
    my $d = Digest::SHA->new(256);
    my $j = 0;
    while ($n > 0) {
        my $b = pattern_block($j++);
        $b = substr($b, 0, $n) if $n < length $b;
        $d->add($b);
        $n -= length $b;
    }
    return $d->hexdigest;
}


# -------------------------------------------------------------------------
# WebSocket (RFC 6455) client side

# Sends the upgrade request; returns the http_request result (status 101
# expected) with {accept_ok} telling whether Sec-WebSocket-Accept matches.
sub ws_handshake {
    my ($s, $name, $path, %o) = @_;
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    my $r = http_get($s, $name, $path // '/ws',
        headers => [[Upgrade => 'websocket'], [Connection => 'Upgrade'],
                    ['Sec-WebSocket-Key' => $key],
                    ['Sec-WebSocket-Version' => 13]],
        %o);
    my $want = encode_base64(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
    $r->{accept_ok} = ($r->{headers}{'sec-websocket-accept'} // '') eq $want;
    return $r;
}


# Sends one masked frame (client frames are always masked).
sub ws_send {
    my ($c, $op, $payload, %o) = @_;
    my $fin = exists $o{fin} && !$o{fin} ? 0 : 0x80;
    my $n = length $payload;
    my $hdr = chr($fin | $op);
    if ($n < 126) {
        $hdr .= chr(0x80 | $n);
    } elsif ($n < 65536) {
        $hdr .= chr(0x80 | 126) . pack('n', $n);
    } else {
        $hdr .= chr(0x80 | 127) . pack('Q>', $n);
    }
    my $mask = join '', map { chr int rand 256 } 1 .. 4;
    my $masked = $payload ^ substr($mask x (int($n / 4) + 1), 0, $n);
    _write_all($c, $hdr . $mask . $masked, time + ($o{timeout} // 10));
}


# Reads one frame; returns ($fin, $opcode, $payload), or () at EOF.
sub ws_recv {
    my ($c, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my $need = sub {
        my ($n) = @_;
        while (length $c->{buf} < $n) {
            _read_more($c, $deadline) or return 0;
        }
        return 1;
    };
    $need->(2) or return ();
    my ($b0, $b1) = unpack 'CC', $c->{buf};
    my $len = $b1 & 0x7f;
    my $off = 2;
    if ($len == 126) {
        $need->(4) or return ();
        $len = unpack 'n', substr($c->{buf}, 2, 2);
        $off = 4;
    } elsif ($len == 127) {
        $need->(10) or return ();
        $len = unpack 'Q>', substr($c->{buf}, 2, 8);
        $off = 10;
    }
    my $mask = '';
    if ($b1 & 0x80) {
        $need->($off + 4) or return ();
        $mask = substr($c->{buf}, $off, 4);
        $off += 4;
    }
    $need->($off + $len) or return ();
    my $payload = substr($c->{buf}, $off, $len);
    substr($c->{buf}, 0, $off + $len) = '';
    $payload ^= substr($mask x (int($len / 4) + 1), 0, $len) if length $mask;
    return ($b0 & 0x80 ? 1 : 0, $b0 & 0x0f, $payload);
}


# -------------------------------------------------------------------------

END {
    my $rc = $?;
    for my $h (@HARNESS) {
        $h->stop if $h->{h};
    }
    for my $k (@KIDS) {
        stop_pid($k->[0], $k->[1]);
    }
    @KIDS = ();
    $? = $rc;
}


package NgxTunnel::Test::Ssh;

# One background OpenSSH client.  out/err accumulate everything it printed.

use strict;
use warnings;
use Time::HiRes qw(time sleep);

# exit status, or 128 + signal number when killed by a signal
sub _exit_code {
    my ($h) = @_;
    my $st = eval { $h->full_result(0) } // 0;
    return $st & 127 ? 128 + ($st & 127) : $st >> 8;
}


sub pump {
    my ($self) = @_;
    return unless $self->{h};
    eval { $self->{h}->pump_nb; 1 } or do {
        warn "ssh pump: $@" unless $@ =~ /process ended|not running/;
    };
}


sub output {
    my ($self) = @_;
    $self->pump;
    return $self->{out} . $self->{err};
}


sub alive {
    my ($self) = @_;
    return 0 unless $self->{h};
    $self->pump;
    return $self->{h}->pumpable ? 1 : 0;
}


sub pid {
    my ($self) = @_;
    return $self->{h} ? $self->{h}{KIDS}[0]{PID} : undef;
}


# Waits (bounded) until the output matches $re; returns the match list
# (or 1), or () on timeout or when ssh exited without printing it.
sub wait_for {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $all = $self->output;
        if (my @m = $all =~ $re) {
            return @m ? @m : (1);
        }
        return () if time >= $deadline;
        if ($self->{h} && !$self->{h}->pumpable) {
            $self->output;
            return ();
        }
        sleep 0.05;
    }
}


# Waits (bounded) for ssh to exit; returns its exit code, or -1 if it had
# to be killed.
sub finish {
    my ($self, $timeout) = @_;
    return $self->{rc} if defined $self->{rc};
    my $deadline = time + ($timeout // 10);
    while ($self->{h}->pumpable && time < $deadline) {
        $self->pump;
        sleep 0.05;
    }
    if ($self->{h}->pumpable) {
        $self->stop;
        return $self->{rc} = -1;
    }
    close $self->{in} if $self->{in};
    $self->{in} = undef;
    eval { $self->{h}->finish; 1 };
    $self->{rc} = _exit_code($self->{h});
    $self->{h} = undef;
    return $self->{rc};
}


# TERM (then KILL after 5 s) by PID, and reap.
sub stop {
    my ($self) = @_;
    return unless $self->{h};
    close $self->{in} if $self->{in};
    $self->{in} = undef;
    eval { $self->{h}->kill_kill(grace => 5); 1 };
    eval { $self->{h}->finish; 1 };
    $self->{rc} //= -1;
    $self->{h} = undef;
}

1;
