#!/usr/bin/perl

# Fault matrix, row 4 (issue 14): one tunneld worker SIGKILLed (tunneld
# runs --workers 2 under its supervisor, sshd/worker.c).
#
#   - the other worker's tunnels keep serving: a request loop runs across
#     the kill and every one of their requests is answered 200;
#   - the supervisor replaces the worker: the new pid appears (measured)
#     and it loads its key table;
#   - the killed worker's names answer at once all along (offline page or
#     404, never a hang), and their routes are released (the replacement
#     removes them, node_lost.lua) well within the 15 s a TTL would take;
#   - their clients notice, reconnect and serve again; the other worker's
#     clients never notice (same sessions, no close row).
#
# t/080-workers.t checks the supervisor's log lines for this, and the
# cross-worker takeover.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(300);

my $s = start_stack(workers => 2);
my $tlog = $s->log_path('tunneld');
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'one');

sub pid_of_route {
    my ($r) = @_;
    return ($r && ($r->{session} // '') =~ m{^[^/]+/(\d+)/\d+$}) ? $1 : 0;
}

sub timed {
    my ($name) = @_;
    my $t0 = time;
    my $r = eval { http_get($s, $name, '/', timeout => 10) };
    return ($r ? $r->{status} : 'error', time - $t0, $r);
}

my @pids = $s->tunneld_pids;
is(scalar @pids, 2, "two workers: @pids");

# one session per name until both workers hold some (the kernel chooses)
my (%ssh, %route, %on);
for my $i (1 .. 16) {
    my $n = "fw$i";
    $ssh{$n} = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "$n:80:localhost:$be->{port}");
    $route{$n} = wait_route($s, $n, 10);
    ok($route{$n}, "$n up") or diag($ssh{$n}->output);
    push @{ $on{ pid_of_route($route{$n}) } }, $n;
    last if $i >= 6 && keys %on == 2;
}
my @names = sort keys %route;
my ($victim) = grep { @{ $on{$_} || [] } } @pids;
my ($other) = grep { $_ != $victim } @pids;
my @lost = @{ $on{$victim} || [] };
my @kept = @{ $on{$other} || [] };
ok(@lost && @kept, sprintf 'worker %d holds %s, worker %d holds %s',
    $victim, "@lost", $other, "@kept");
ok(wait_until(10, sub { sql_query($s, "SELECT count(*) FROM tunnel_events"
    . " WHERE event = 'open'") == @names }), 'open rows written');


# --- the kill, inside a request loop ---------------------------------------------

my ($t_kill, $t_new, $new_pid, $t_gone, %gone_at);
my (@kept_bad, @lost_bad, %seen);
my ($n_kept, $max) = (0, 0);
my $t_loop = time;
while (time < $t_loop + 12) {
    if (!$t_kill && time > $t_loop + 1) {
        kill 'KILL', $victim;
        $t_kill = time;
    }
    for my $n (@kept) {
        my ($st, $dt, $r) = timed($n);
        $n_kept++;
        $max = $dt if $dt > $max;
        push @kept_bad, sprintf('%s %s at %+.2f s', $n, $st,
            time - ($t_kill // time))
            unless $st eq '200' && $r->{body} eq 'hello from backend one';
    }
    next unless $t_kill;
    for my $n (@lost) {
        my ($st, $dt, $r) = timed($n);
        $max = $dt if $dt > $max;
        $seen{$st}++;
        push @lost_bad, sprintf('%s %s in %.2f s', $n, $st, $dt)
            unless ($st eq '404' || ($st eq '502' && page_text($r->{body})
                       =~ /tunnel "$n" is offline/i))
                   && $dt < 3;
        $gone_at{$n} //= time - $t_kill unless route_of($s, $n);
    }
    if (!$new_pid) {
        my @now = $s->tunneld_pids;
        ($new_pid) = grep { my $p = $_; !grep { $_ == $p } @pids } @now;
        $t_new = time - $t_kill if $new_pid;
    }
    last if $new_pid && keys %gone_at == @lost && time > $t_kill + 3;
    sleep 0.05;
}

is(scalar @kept_bad, 0, sprintf "the other worker's %d tunnels served "
    . "every request across the kill (%d requests, max %.3f s)",
    scalar @kept, $n_kept, $max)
    or diag(join ', ', @kept_bad[0 .. ($#kept_bad > 9 ? 9 : $#kept_bad)]);
ok($new_pid, sprintf 'the supervisor replaced the worker: pid %s appeared '
    . '%.2f s after the kill', $new_pid // '-', $t_new // -1);
ok(!kill(0, $victim), "the killed worker $victim is gone");
ok(wait_until(10, sub { read_file($tlog) =~
    /\[w\d:$new_pid\] db: loaded \d+ key/ }),
    'the new worker loaded its key table') if $new_pid;
my ($slowest) = sort { $b <=> $a } values %gone_at;
ok(keys %gone_at == @lost && $slowest <= 15, sprintf "the killed worker's "
    . "%d routes released %.2f s after the kill (<= 15 s; the TTL is 10 s)",
    scalar @lost, $slowest // -1);
diag(sprintf 'released after the worker was replaced: %.2f s',
    ($slowest // 0) - ($t_new // 0)) if $new_pid;
is(scalar @lost_bad, 0, "the killed worker's names answered at once: "
    . 'offline page or 404')
    or diag(join ', ', @lost_bad[0 .. ($#lost_bad > 9 ? 9 : $#lost_bad)]);
diag("the killed worker's names answered: "
    . join ', ', map { "$_ x$seen{$_}" } sort keys %seen);


# --- the clients -------------------------------------------------------------------

my $noticed = grep { $ssh{$_}->finish(10) != -1 } @lost;
is($noticed, scalar @lost, "the killed worker's clients are disconnected");
my $alive = grep { $ssh{$_}->alive } @kept;
is($alive, scalar @kept, "the other worker's clients stay connected");
my $same = grep { my %h = route_of($s, $_);
                  ($h{session} // '') eq $route{$_}{session} } @kept;
is($same, scalar @kept, "the other worker's routes keep their sessions");

my $t_re = time;
for my $n (@lost) {
    $ssh{$n} = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "$n:80:localhost:$be->{port}");
}
my $back = grep {
    my $old = $route{$_}{session};
    wait_route($s, $_, 10, sub { ($_[0]{session} // '') ne $old })
        && status_body($s, $_) eq '200 hello from backend one';
} @lost;
is($back, scalar @lost, sprintf 'they reconnect and serve again (%.2f s)',
    time - $t_re);

my $closes = '';
wait_until(10, sub {
    $closes = sql_query($s, "SELECT string_agg(name || ':' || detail, ','"
        . " ORDER BY name) FROM tunnel_events WHERE event = 'close'");
    scalar(() = $closes =~ /:/g) >= @lost;
});
is($closes, join(',', map { "$_:node lost" } sort @lost),
    'audit: the killed worker\'s tunnels closed as "node lost", no other');

$ssh{$_}->stop for @names;
ok(wait_until(10, sub { !grep { route_of($s, $_) } @names }),
    'every route released when the clients stop');

check_logs($s,
    allow_nginx => [
        qr/connect\(\) to unix:\S+ failed \((?:2: No such file or directory|111: Connection refused)\) while connecting to upstream/,
        qr/tunnel: socket "[^"]+" of tunnel "fw\d+" no longer exists/,
    ],
    allow_tunneld => [qr/worker \d \(pid \d+\) was killed by signal 9/]);

$s->stop_all;
done_testing;
