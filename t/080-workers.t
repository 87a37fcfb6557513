#!/usr/bin/perl

# tunneld --workers: sessions spread over the worker processes (the pid in
# each session id and in each log line's [wN:PID] tag), every tunnel
# reachable through nginx whichever worker holds it; a takeover whose old
# session lives in the other worker (the kick goes through Redis); a
# SIGKILLed worker is restarted by the supervisor, its clients are
# disconnected and can reconnect, the other worker's tunnels never notice;
# SIGTERM to the supervisor stops every worker and releases every route.
#
# Then the descriptor limit, with tunneld started under `ulimit -n 64`
# (one worker): forwards are refused with a clear message once the
# worker is near its limit, requests and new connections wait (accept
# paused) instead of spinning when it is out of descriptors, the log stays
# short, and everything works again once sessions close.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use IO::Socket::INET;
use IPC::Run ();
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(420);

my $s = start_stack(workers => 2);
my $port = $s->env->{HTTP_PORT};
my $tlog = $s->log_path('tunneld');

my $alice = new_user($s, 'alice');
my $bob = new_user($s, 'bob');
my $one = start_backend($s, 'one');
my $two = start_backend($s, 'two');
my $three = start_backend($s, 'three');


sub body_of { status_body($s, $_[0]) }

sub pid_of_route {
    my ($r) = @_;
    return ($r && ($r->{session} // '') =~ m{^[^/]+/(\d+)/\d+$}) ? $1 : 0;
}

sub log_text { read_file($tlog) }

my @pids = $s->tunneld_pids;
my $sup = $s->pid('tunneld');
is(scalar @pids, 2, 'two worker processes') or diag("@pids");
ok(!grep({ $_ == $sup } @pids), 'workers are children of the supervisor');
for my $n (1, 2) {
    like(log_text(), qr/\[sup:$sup\] worker $n started: pid \d+/,
        "supervisor log: worker $n started");
    like(log_text(), qr/\[w$n:\d+\] started: worker $n of 2/,
        "worker $n logs with its [w$n:pid] tag");
}


# --- sessions land on both workers ------------------------------------------

my (%ssh, %route);
my @names = ((map { "wa$_" } 1 .. 6), (map { "wb$_" } 1 .. 6));
for my $name (@names) {
    my ($u, $be) = $name =~ /^wa/ ? ($alice, $one) : ($bob, $two);
    $ssh{$name} = start_ssh($s, key => $u->{key}, user => $u->{name},
        remote => "$name:80:localhost:$be->{port}");
    $route{$name} = wait_route($s, $name, 10);
}
is(scalar(grep { $route{$_} } @names), scalar @names,
    scalar(@names) . ' tunnels up');

my %on;    # worker pid => [names]
for my $name (@names) {
    my $p = pid_of_route($route{$name});
    push @{ $on{$p} }, $name;
}
my @used = sort keys %on;
is(scalar @used, 2, 'tunnels are spread over both workers: '
    . join(', ', map { "$_ x" . scalar @{ $on{$_} } } @used));
ok(!grep({ my $p = $_; !grep { $_ == $p } @pids } @used),
    'every session id carries a worker pid');

my $text = log_text();
my $tagged = grep {
    my $p = pid_of_route($route{$_});
    $text =~ /\[w\d:$p\] tunnel $_ up: /
} @names;
is($tagged, scalar @names, "each 'tunnel up' line carries its worker's pid");

my $served = grep {
    body_of($_) eq ($_ =~ /^wa/ ? '200 hello from backend one'
                                : '200 hello from backend two')
} @names;
is($served, scalar @names, 'every tunnel serves through nginx');


# --- takeover across workers ------------------------------------------------
#
# Which worker accepts a connection is the kernel's choice: take alice's
# names over one at a time until the new session lands on the other worker
# than the old one (each try is a takeover too).

my $cross;
for my $try (1 .. 12) {
    my $name = "wa" . (1 + ($try - 1) % 6);
    my $old = $route{$name};
    my $new = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "$name:80:localhost:$three->{port}");
    my $r = wait_route($s, $name, 10,
        sub { ($_[0]{session} // '') ne ($old->{session} // '') });
    if (!$r) {
        fail("takeover of $name: no new route");
        diag($new->output);
        last;
    }
    my $old_client = $ssh{$name};
    $ssh{$name} = $new;
    $route{$name} = $r;
    is($old_client->finish(10) != -1 ? 'closed' : 'hung', 'closed',
        "takeover $try ($name): the old client is disconnected");
    if (pid_of_route($r) != pid_of_route($old)) {
        $cross = $name;
        last;
    }
}
ok($cross, 'a takeover moved a name from one worker to the other');
if ($cross) {
    ok(wait_until(5, sub {
        body_of($cross) eq '200 hello from backend three' }),
        'after the cross-worker takeover requests reach the new backend');
    is($s->redis_cli('HGET', "tunnel:route:$cross", 'session'),
        $route{$cross}{session}, 'the route belongs to the new session');
}


# --- SIGKILL one worker -----------------------------------------------------

%on = ();
push @{ $on{ pid_of_route($route{$_}) } }, $_ for @names;
my ($victim) = grep { @{ $on{$_} || [] } } @pids;
my ($other) = grep { $_ != $victim } @pids;
my @lost = @{ $on{$victim} || [] };
my @kept = @{ $on{$other} || [] };
ok(@lost && @kept, sprintf 'worker %d holds %d tunnels, worker %d holds %d',
    $victim, scalar @lost, $other, scalar @kept);
my ($vnum) = log_text() =~ /worker (\d+) started: pid $victim\b/;

kill 'KILL', $victim;
my $t_kill = time;

my @now;
ok(wait_until(10, sub {
    @now = $s->tunneld_pids;
    @now == 2 && !grep { $_ == $victim } @now }),
    sprintf 'supervisor restarted the worker (%.2f s): %s', time - $t_kill,
    "@now");
like(log_text(), qr/worker $vnum \(pid $victim\) was killed by signal 9/,
    'supervisor logs how the worker died');
like(log_text(), qr/restarting worker $vnum in \d+ ms/,
    'supervisor logs the restart');
ok(wait_until(10, sub { log_text() =~
    /\[w$vnum:(?!$victim\])\d+\] db: loaded \d+ key/ }),
    'the new worker loaded its key table');

my $gone = grep { $ssh{$_}->finish(10) != -1 } @lost;
is($gone, scalar @lost, "the killed worker's clients are disconnected");
my $alive = grep { $ssh{$_}->alive } @kept;
is($alive, scalar @kept, "the other worker's clients stay connected");
$served = grep { body_of($_) =~ /^200 / } @kept;
is($served, scalar @kept, "the other worker's tunnels keep serving");

# the killed worker's routes stay in Redis until their TTL; the owner's
# reconnect takes them over
for my $name (@lost) {
    my ($u, $be) = $name =~ /^wa/ ? ($alice, $one) : ($bob, $two);
    $ssh{$name} = start_ssh($s, key => $u->{key}, user => $u->{name},
        remote => "$name:80:localhost:$be->{port}");
}
my $back = grep {
    my $old = $route{$_};
    $route{$_} = wait_route($s, $_, 10,
        sub { ($_[0]{session} // '') ne ($old->{session} // '') });
} @lost;
is($back, scalar @lost, 'the disconnected clients reconnect');
$served = grep {
    body_of($_) eq ($_ =~ /^wa/ ? '200 hello from backend one'
                                : '200 hello from backend two')
} @lost;
is($served, scalar @lost, 'and their tunnels serve again');


# --- SIGTERM to the supervisor ----------------------------------------------

my @workers = $s->tunneld_pids;
my $t_term = time;
my $st = $s->stop_tunneld(signal => 'TERM');
my $dt = time - $t_term;
is($st, 0, sprintf 'supervisor exits with status 0 on TERM (%.2f s)', $dt);
ok(!grep({ kill 0, $_ } @workers), 'every worker is gone');
my $released = grep { !route_of($s, $_) } @names;
is($released, scalar @names, 'every route released at once');
my $closed = grep { $ssh{$_}->finish(10) != -1 } @names;
is($closed, scalar @names, 'every client disconnected');
my @left = glob $s->socket_dir . '/t-*.sock';
is(scalar @left, 0, 'no tunnel socket left');
like(log_text(), qr/\[sup:$sup\] stopped/, 'supervisor logs its stop');

check_logs($s, allow_tunneld => [
    qr/worker \d \(pid \d+\) was killed by signal 9/,
]);


# --- the descriptor limit: one worker under ulimit -n 64 --------------------

my $lim_log = "$s->{_test_dir}/tunneld-ulimit.log";
my @cmd = grep { defined } $s->tunneld_command;
# the stack passes --workers 2 here; this part wants one process
for my $i (0 .. $#cmd - 1) {
    $cmd[$i + 1] = 1 if $cmd[$i] eq '--workers';
}
# the raw connections below all come from 127.0.0.1 and must be taken
# until descriptors run out, not refused by the per-source limit
push @cmd, '--per-source-max-startups', 1000;

my $lim_pid = fork // die "fork: $!";
if ($lim_pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $lim_log or POSIX::_exit(1);
    open STDERR, '>&', \*STDOUT;
    $ENV{DATABASE_URL} = $s->database_url;
    $ENV{REDIS_URL} = $s->redis_url;
    exec('sh', '-c', 'ulimit -n 64 && exec "$@"', 'sh', @cmd)
        or POSIX::_exit(127);
}
END {
    local $?;
    kill 'KILL', $lim_pid if $lim_pid && waitpid($lim_pid, WNOHANG) == 0;
}

sub lim_alive { waitpid($lim_pid, WNOHANG) == 0 }
sub lim_log { read_file($lim_log) }
sub lim_lines { scalar(() = lim_log() =~ /\n/g) }

ok(wait_until(15, sub { lim_log() =~ /db: loaded \d+ key/ }),
    'tunneld under ulimit -n 64 starts') or diag(lim_log());
like(lim_log(), qr/open files limit 64\b/, 'it knows its limit');

# sessions of four tunnels each until the server says it is full
my (@full, $refused);
for my $i (1 .. 16) {
    my @r = map { "f$i-$_:80:localhost:$one->{port}" } 1 .. 4;
    my $c = start_ssh($s, key => $alice->{key}, user => 'alice',
        session => 1, remote => \@r);
    if ($c->wait_for(qr/at capacity|(?:tunnel is up.*?){4}/s, 10)
        && $c->output =~ /at capacity/)
    {
        $refused = $c;
        last;
    }
    push @full, $c;
}
ok($refused, sprintf 'refused once full, after %d sessions of 4 tunnels',
    scalar @full);
like($refused ? $refused->output : '',
    qr/This server is at capacity, try again later\./,
    'the client is told the server is at capacity');
ok($refused && $refused->finish(10) > 0,
    'and ssh exits with an error (ExitOnForwardFailure)');
ok(@full >= 3, 'several sessions fit first (' . scalar(@full) . ')');
ok(lim_alive(), 'tunneld still runs');
is(body_of('f1-1'), '200 hello from backend one',
    'the tunnels already up still serve');

# out of descriptors: SSH connections that never log in take what is
# left; accept pauses on EMFILE instead of spinning, on the SSH listener
# and on the tunnel sockets alike, and resumes once descriptors free up
my $lines0 = lim_lines();
my @raw;
for (1 .. 60) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $s->env->{SSH_PORT}, Proto => 'tcp', Timeout => 2)
        or last;
    push @raw, $c;
}
ok(wait_until(5, sub { lim_log() =~ /Too many open files/ }),
    'the shortage is logged');

# requests now wait in the tunnel sockets' backlog (unless nginx reuses a
# connection it keeps alive)
my @curl;
for my $i (1 .. 4) {
    my $out = '';
    my $h = IPC::Run::start(['curl', '-s', '-o', '/dev/null', '-w',
        '%{http_code}', '--max-time', '30', '-H',
        "Host: f$i-1.localhost:$port", "http://127.0.0.1:$port/slow?ms=100"],
        '<', \undef, '>', \$out, '2>', \my $err);
    push @curl, [$h, \$out];
}
sleep 3;
my $burst = lim_lines() - $lines0;
ok($burst < 20, "the log stays short while out of descriptors ($burst "
    . 'lines for ' . scalar(@raw) . ' connections and 4 requests in 3 s)')
    or diag(lim_log());
ok(lim_alive(), 'tunneld still runs');

close $_ for @raw;
my $codes = '';
for my $c (@curl) {
    eval { $c->[0]->finish; 1 } or $c->[0]->kill_kill;
    $codes .= ${ $c->[1] } . ' ';
}
my $ok200 = () = $codes =~ /\b200\b/g;
is($ok200, 4, 'once descriptors are free again the waiting requests are '
    . 'answered') or diag($codes, lim_log());
ok(lim_alive(), 'tunneld survives the connection flood');

# everything closes: the server works again
$_->stop for @full;
ok(wait_until(10, sub { !route_of($s, 'f1-1') }), 'sessions closed');
my $again = start_ssh($s, key => $alice->{key}, user => 'alice',
    session => 1,
    remote => [map { "again$_:80:localhost:$two->{port}" } 1 .. 4]);
ok($again->wait_for(qr/(?:tunnel is up.*?){4}/s, 15),
    'once sessions closed: 4 new tunnels') or diag($again->output, lim_log());
is(body_of('again4'), '200 hello from backend two', 'and they serve');
$again->stop;

my $total = lim_lines();
ok($total < 400, "the whole log of the limited tunneld: $total lines");

kill 'TERM', $lim_pid;
ok(wait_until(10, sub { !lim_alive() }), 'limited tunneld stops on TERM');
kill 'KILL', $lim_pid if lim_alive();
waitpid($lim_pid, 0);
my @bad = grep { /tunneld: error\b/ && !/unusable|Redis|registry/ }
          split /\n/, lim_log();
is(scalar @bad, 0, 'no error lines in the limited tunneld log')
    or diag(join "\n", @bad[0 .. ($#bad > 10 ? 10 : $#bad)]);

$s->stop_all;
done_testing;
