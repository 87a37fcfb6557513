#!/usr/bin/perl

# Redis high availability through Sentinel (docs/SCALING.md): a master, a
# replica and three sentinels on loopback (Debian's redis-server in
# --sentinel mode, no extra package); tunneld and nginx find the master
# through the sentinels.  A tunnel is up and a request loop runs through
# it while SENTINEL FAILOVER is forced: the test counts the failed
# requests and measures the window during which lookups fail, then checks
# that the route is refreshed on the new master, that a new tunnel can be
# opened there, and that a kick through the management API still reaches
# the client (tunneld's tunnel:close subscription moved too).  Then the
# new master is killed outright (SIGKILL): the sentinels fail over back to
# the old one after down-after-milliseconds, and requests recover again.
# Last the master is frozen (SIGSTOP): the same, with silent connections.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_STREAM);
use POSIX qw(WNOHANG);
use JSON::PP;
use File::Temp ();
use IPC::Run ();

use NgxTunnel::Test;
use NgxTunnel::Stack;

watchdog(300);

my $dir = File::Temp::tempdir('ngx-tunnel-sentinel.XXXXXX', TMPDIR => 1,
    CLEANUP => !$ENV{TEST_KEEP});
my @pids;

END {
    NgxTunnel::Test::stop_pid($_) for grep { $_ } @pids;
}

sub spawn {
    my ($log, @cmd) = @_;
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or die "$log: $!\n";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or die "exec $cmd[0]: $!\n";
    }
    push @pids, $pid;
    return $pid;
}

sub rcli {
    my ($port, @args) = @_;
    my ($o, $e) = ('', '');
    my $out = eval {
        IPC::Run::run(['redis-cli', '-p', $port, @args], '<', \undef,
            '>', \$o, '2>', \$e, IPC::Run::timeout(5));
        $o;
    } // '';
    return wantarray ? split /\n/, $out : $out =~ s/\n\z//r;
}

my ($pm, $pr) = (NgxTunnel::Stack::free_port(), NgxTunnel::Stack::free_port());
my @ps = map { NgxTunnel::Stack::free_port() } 1 .. 3;

my %pid;
for my $p ($pm, $pr) {
    mkdir "$dir/r$p";
    $pid{$p} = spawn("$dir/redis-$p.log", 'redis-server',
        '--port', $p, '--bind', '127.0.0.1', '--dir', "$dir/r$p",
        '--save', '', '--appendonly', 'no',
        $p == $pr ? ('--replicaof', '127.0.0.1', $pm) : ());
}

for my $p (@ps) {
    my $conf = "$dir/sentinel-$p.conf";
    open my $fh, '>', $conf or die "$conf: $!\n";
    print $fh <<"EOF";
port $p
bind 127.0.0.1
dir $dir
sentinel monitor mymaster 127.0.0.1 $pm 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 4000
sentinel parallel-syncs mymaster 1
EOF
    close $fh;
    spawn("$dir/sentinel-$p.log", 'redis-server', $conf, '--sentinel');
}

ok(wait_until(20, sub {
    rcli($pr, 'INFO', 'replication') =~ /master_link_status:up/
}), 'the replica is in sync');

# every sentinel knows the replica and the two other sentinels
ok(wait_until(30, sub {
    for my $p (@ps) {
        my @r = rcli($p, 'SENTINEL', 'replicas', 'mymaster');
        my @s = rcli($p, 'SENTINEL', 'sentinels', 'mymaster');
        return 0 unless grep { $_ eq $pr } @r;
        return 0 unless (grep { $_ eq 'name' } @s) == 2;
    }
    return 1;
}), 'three sentinels see the master, the replica and each other');

sub master_port {
    my @a = rcli($ps[0], 'SENTINEL', 'get-master-addr-by-name', 'mymaster');
    return $a[1] // 0;
}
is(master_port(), $pm, 'the sentinels name the master');

# the first sentinel listed is down: tunneld and nginx must go on to the
# next one (a dead first sentinel once kept nginx asking it forever)
my $dead = NgxTunnel::Stack::free_port();
my $s = start_stack(sentinel => {
    sentinels => [ "127.0.0.1:$dead", map { "127.0.0.1:$_" } @ps ],
    master => 'mymaster' },
    workers => 2);

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');

sub route_at {
    my ($port, $name) = @_;
    my %h = rcli($port, 'HGETALL', "tunnel:route:$name");
    return \%h;
}

my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "sen:80:localhost:$be->{port}");
ok(wait_until(10, sub { route_at($pm, 'sen')->{socket} }),
    'the route is on the master') or diag($ssh->output);

sub get_ok {
    my ($name) = @_;
    my $r = eval { http_get($s, $name, '/', timeout => 5) };
    return $r && $r->{status} == 200
        && $r->{body} eq 'hello from backend one' ? 1 : 0;
}

ok(get_ok('sen'), 'a request through the tunnel: 200');

# A request loop (bounded), the trigger run after 1 s.  Each round sends a
# request through the live tunnel (its route may come from nginx's cache)
# and one for a name never asked before (a new lookup, which must reach
# Redis: 404 "no such tunnel" when it answers, 503 when it cannot).  Stops
# once done() holds and both have succeeded for 3 s.  Returns, per kind,
# [requests, failed, first failure, last failure, first success after the
# last failure], times relative to the trigger.
my $fresh = 0;

sub new_lookup_ok {
    $fresh++;
    my $r = eval { http_get($s, "nx$fresh-$$", '/', timeout => 5) };
    return $r && $r->{status} == 404 ? 1 : 0;
}

sub failover_loop {
    my ($what, $trigger, $done) = @_;
    my %st = map { $_ => { n => 0, fail => 0 } } qw(live new);
    my $t0 = time;
    my ($tt, $ok_since);
    my $deadline = $t0 + 40;
    while (time < $deadline) {
        if (!defined $tt && time - $t0 >= 1) {
            $trigger->();
            $tt = time;
        }
        my %ok = (live => get_ok('sen'), new => new_lookup_ok());
        my $now = time;
        for my $k (qw(live new)) {
            my $x = $st{$k};
            $x->{n}++;
            if (!$ok{$k}) {
                $x->{fail}++;
                $x->{f0} //= $now;
                $x->{f1} = $now;
                undef $x->{back};
            } elsif (defined $x->{f1}) {
                $x->{back} //= $now;
            }
        }
        if ($ok{live} && $ok{new}) {
            $ok_since //= $now;
        } else {
            undef $ok_since;
        }
        last if defined $tt && $ok_since && $now - $ok_since >= 3
            && $done->();
        sleep 0.02;
    }
    $tt //= $t0;
    my %out;
    for my $k (qw(live new)) {
        my $x = $st{$k};
        my @f = ($x->{n}, $x->{fail},
            map { defined $_ ? $_ - $tt : undef } @$x{qw(f0 f1 back)});
        diag(sprintf("%s, %s requests: %d sent, %d failed; first failure "
            . "%s s, last %s s, first success after it %s s after the "
            . "trigger: window %.2f s", $what,
            $k eq 'live' ? 'live tunnel' : 'new lookup', @f[0, 1],
            map({ defined $_ ? sprintf('%.2f', $_) : '-' } @f[2 .. 4]),
            defined $f[2] && defined $f[4] ? $f[4] - $f[2] : 0));
        $out{$k} = \@f;
    }
    return \%out;
}

# --- SENTINEL FAILOVER -----------------------------------------------------------

my $f = failover_loop('forced failover',
    sub { rcli($ps[0], 'SENTINEL', 'FAILOVER', 'mymaster') },
    sub { master_port() == $pr });
is(master_port(), $pr, 'the replica is the master now');
ok(wait_until(15, sub { scalar(rcli($pm, 'ROLE')) =~ /^slave/ }),
    'the old master is a replica');
for my $k (qw(live new)) {
    my $x = $f->{$k};
    ok($x->[1] == 0 || defined $x->[4],
        "$k requests: all succeed again after the failover");
    ok($x->[1] == 0 || $x->[4] - $x->[2] < 15,
        "$k requests: the failure window is under 15 s");
}
is($f->{live}[1], 0, 'the live tunnel never failed (nginx\'s cache)');
like(read_file($s->log_path('nginx')), qr/the sentinels switched masters/,
    'nginx followed +switch-master');
like(read_file($s->log_path('tunneld')), qr/the sentinels moved master/,
    'tunneld followed +switch-master');

# tunneld re-registered the route on the new master: it survives the
# route TTL (10 s) there only if tunneld refreshes it there
ok(route_at($pr, 'sen')->{socket}, 'the route is on the new master');
sleep 11;
my $r = route_at($pr, 'sen');
ok($r->{socket}, 'still there after the route TTL: tunneld refreshes it '
    . 'on the new master');
ok(get_ok('sen'), 'the live tunnel serves');

my $ssh2 = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "sen2:80:localhost:$be->{port}");
ok(wait_until(10, sub { route_at($pr, 'sen2')->{socket} }),
    'a new tunnel is registered on the new master') or diag($ssh2->output);
ok(wait_until(5, sub { get_ok('sen2') }), '... and serves through nginx');

sub api {
    my ($method, $path) = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM,
        Peer => $s->socket_dir . '/api.sock') or die "api: $!\n";
    print $c "$method $path HTTP/1.1\r\nHost: api\r\n"
        . "Connection: close\r\n\r\n";
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $deadline = time + 10;
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread $c, $buf, 65536, length $buf;
        last unless $n;
    }
    my ($st) = $buf =~ /^HTTP\/1\.1 (\d+)/;
    return $st // 0;
}

{
    my $t0 = time;
    is(api(DELETE => '/tunnels/sen2?reason=after%20failover'), 200,
        'kick sen2 through the management API: 200');
    my $rc = $ssh2->finish(5);
    my $dt = time - $t0;
    ok($rc != -1, sprintf('the client exits %.3f s after the kick '
        . '(tunnel:close reached it from the new master)', $dt));
    like($ssh2->output, qr/closed by an administrator: after failover/,
        '... told why');
}

# --- the master killed (SIGKILL) ---------------------------------------------------

my $g = failover_loop('master killed', sub {
        kill 'KILL', $pid{$pr};
        waitpid($pid{$pr}, 0);
        @pids = grep { $_ != $pid{$pr} } @pids;
    },
    sub { master_port() == $pm });
is(master_port(), $pm, 'the old master is the master again');
for my $k (qw(live new)) {
    my $x = $g->{$k};
    ok($x->[1] == 0 || defined $x->[4],
        "$k requests: all succeed again after the kill");
}
ok(wait_until(10, sub { route_at($pm, 'sen')->{socket} }),
    'the route is on the master again');
ok(get_ok('sen'), 'the live tunnel serves');

# --- the master frozen (SIGSTOP) -----------------------------------------------------
#
# Its connections stay open and silent: only the sentinels' +switch-master
# (or a command timeout) moves the clients.  The killed replica comes back
# first, as a replica of the current master.

$pid{$pr} = spawn("$dir/redis-$pr.log", 'redis-server',
    '--port', $pr, '--bind', '127.0.0.1', '--dir', "$dir/r$pr",
    '--save', '', '--appendonly', 'no', '--replicaof', '127.0.0.1', $pm);
ok(wait_until(30, sub {
    return 0 unless rcli($pr, 'INFO', 'replication')
        =~ /master_link_status:up/;
    for my $p (@ps) {
        my @r = rcli($p, 'SENTINEL', 'replicas', 'mymaster');
        my ($i) = grep { $r[$_] eq 'flags' } 0 .. $#r;
        return 0 unless defined $i && $r[$i + 1] eq 'slave';
    }
    return 1;
}), 'the replica is back and every sentinel sees it healthy');

my $h = failover_loop('master frozen', sub { kill 'STOP', $pid{$pm} },
    sub { master_port() == $pr });
kill 'CONT', $pid{$pm};
is(master_port(), $pr, 'the replica is the master');
for my $k (qw(live new)) {
    my $x = $h->{$k};
    ok($x->[1] == 0 || defined $x->[4],
        "$k requests: all succeed again after the freeze");
}
ok(wait_until(10, sub { route_at($pr, 'sen')->{socket} }),
    'the route is on the new master');
ok(get_ok('sen'), 'the live tunnel serves');

# The live tunnel is served from the module's route cache while no
# master answers, until its entry expires (tunnel_cache_ttl, 5 s, counted
# from when it was filled: 0-5 s after the trigger).  An outage longer
# than what is left of it (the sentinels split their votes and retry:
# once 6.3 s without a master) fails its lookups too: then, and only
# within the outage seen by new lookups, its "not connected" lines are
# expected.
my @live_ok;
for my $x ($f, $g, $h) {
    my ($live, $new) = @$x{qw(live new)};
    next unless $live->[1];
    ok(defined $new->[2] && defined $new->[3]
       && $live->[2] >= $new->[2] - 0.5 && $live->[3] <= $new->[3] + 0.5,
       sprintf('live tunnel failures (%d, %.2f-%.2f s) only while new '
               . 'lookups failed too (%.2f-%.2f s)', $live->[1],
               $live->[2], $live->[3], $new->[2] // -1, $new->[3] // -1));
    push @live_ok, qr/lookup of "sen" failed: redis is not connected/;
}

check_logs($s,
    allow_nginx   => [ @live_ok,
                       qr/redis (?:command|subscriber|sentinel) link/,
                       # new lookups while no master answers: refused
                       # at once, lost with the link, or (the frozen
                       # master) tunnel_lookup_timeout (1 s); never for
                       # the live tunnel
                       qr/lookup of "nx\d+-\d+" (?:failed: redis is not connected|failed: redis link lost|timed out)/ ],
    allow_tunneld => [ qr/redis/i ]);

$ssh->stop if $ssh->can('stop');
done_testing;
