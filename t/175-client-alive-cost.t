#!/usr/bin/perl

# What tunneld's client-alive probe (sshd/session.c, issue 14) costs at
# many idle tunnels, and that the probes of a worker go out together.
# docs/BENCHMARKS.md, "Idle CPU and the client-alive probe".
#
# ALIVE_TUNNELS (default 666) idle tunnels of the benchmark's load
# generator (bench/loadgen, as workload f) on one tunneld worker with
# --keepalive 2: every tunnel is probed every 2 s.  Figures (TAP
# diagnostics, never asserted: the machine is shared):
#   - tunneld's CPU (all its processes and threads, /proc/*/schedstat)
#     over ALIVE_WINDOW (default 10) seconds, the probes sent meanwhile
#     (tunneld_alive_probes_total), and the same window on a control
#     stack with --keepalive 600 (no probe in it): µs of CPU per probe;
#   - the system calls per probe (strace -c on the worker over 3
#     intervals).
# Asserted, by counts (no clock):
#   - every idle tunnel gets one probe per interval, no more, no fewer
#     (the probes counted over 3 intervals), and none is dropped;
#   - the probes of a worker go out on a shared tick: the worker's loop
#     wakes up (voluntary context switches) far fewer times than once per
#     probe: under 0.5 a probe (0.08 measured; with a timer per session,
#     one wake-up for the request and one for the answer: 1.15-1.69).
# ALIVE_PERF=FILE also records `perf record -g` (or ALIVE_PERF_ARGS, e.g.
# "--call-graph dwarf") of the worker during the probe window into FILE
# (read it with `perf report -i FILE`).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use IO::Socket::UNIX;
use IPC::Run ();
use Socket;
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

# 666 tunnels probed every 2 s: 333 probes a second, workload f's rate
# (20,000 tunnels, --keepalive 60)
my $K   = $ENV{ALIVE_TUNNELS} // 666;
my $WIN = $ENV{ALIVE_WINDOW} // 10;
my $IVL = 2;

watchdog(240 + 4 * $WIN + $K / 20);

my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
plan skip_all => 'strace is not installed (tools/install-deps)'
    unless $strace;

my $root = repo_root();
system('make', '-s', '-C', $root, '-f', 'bench/bench.mk',
       'build/bench/bin/tnl-loadgen') == 0
    or BAIL_OUT('cannot build tnl-loadgen');


# times the worker's loop went to sleep in epoll_wait and was woken up
sub wakeups {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    local $/;
    return (<$fh> =~ /^voluntary_ctxt_switches:\s+(\d+)/m)[0] // 0;
}

# ns on a CPU of every thread of every tunneld process
sub cpu_ns {
    my ($s) = @_;
    my $ns = 0;
    my %seen;
    for my $pid (grep { !$seen{$_}++ } $s->{procs}{tunneld},
                 $s->tunneld_pids)
    {
        for my $f (glob "/proc/$pid/task/*/schedstat") {
            open my $fh, '<', $f or next;
            my $l = <$fh> // next;
            $ns += (split ' ', $l)[0];
        }
    }
    return $ns;
}

sub metric {
    my ($s, $name) = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM,
                                  Peer => $s->socket_dir . '/api.sock')
        or die "connect to the API: $!\n";
    print $c "GET /metrics HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    local $/;
    my $body = <$c> // '';
    return $body =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

# a stack with $K idle tunnels of the load generator
sub idle_stack {
    my ($keepalive) = @_;
    my $s = start_stack(workers => 1, tunneld_args => [
        '--keepalive', $keepalive, '--keepalive-count', 3,
        '--per-source-max-startups', 100, '--max-startups', 200]);
    my $u = new_user($s, 'lg');
    sleep 2.5;                      # tunneld reloads keys within 2 s
    my ($in, $out, $err) = ('', '', '');
    my $lg = IPC::Run::start(["$root/build/bench/bin/tnl-loadgen",
        '--key', $u->{key}, '--bind', '127.0.0.2',
        '--port', $s->env->{SSH_PORT}, '--user', 'lg', '--mode', 'name',
        '--prefix', 'al', '--count', $K, '--concurrency', 50,
        # logins spread over one interval, as clients come at any time:
        # their probes are too (a burst of logins would batch them anyway)
        '--rate', int($K / $IVL) + 1,
        '--connect-timeout', 60, '--hold', 900],
        '<', \$in, '>', \$out, '2>', \$err);
    my $t0 = time;
    my $ok = wait_until(60 + $K / 20,
                        sub { $lg->pump_nb; $out =~ /^ready /m });
    my ($n) = $out =~ /^ready ok=(\d+)/m;
    is($n, $K, sprintf '--keepalive %d: %d idle tunnels up (%.1f s)',
       $keepalive, $K, time - $t0) or diag("$out$err");
    return ($s, $lg, \$out, \$err);
}

sub stop_lg {
    my ($lg) = @_;
    $lg->kill_kill(grace => 3);
    eval { $lg->finish };
}


# --- the probe-heavy stack ----------------------------------------------------

my ($s, $lg, $out, $err) = idle_stack($IVL);
my $worker = ($s->tunneld_pids)[-1];   # --workers 1: the daemon itself
sleep 2 * $IVL;              # every tunnel past its first probe

# one probe per idle tunnel per interval, exactly
{
    my $p0 = metric($s, 'tunneld_alive_probes_total');
    my $t0 = time;
    sleep 3 * $IVL;
    my $p1 = metric($s, 'tunneld_alive_probes_total');
    my $secs = time - $t0;
    my $per = ($p1 - $p0) / $K / ($secs / $IVL);
    diag(sprintf '%d probes in %.2f s: %.3f per tunnel per interval',
         $p1 - $p0, $secs, $per);
    ok($per > 0.9 && $per < 1.1, sprintf 'one probe per idle tunnel per '
       . 'interval (%.3f)', $per);
}

# CPU per probe (and a profile when asked)
my %busy;
{
    my $perf;
    if ($ENV{ALIVE_PERF}) {
        $perf = IPC::Run::start(['perf', 'record',
                                 split(' ', $ENV{ALIVE_PERF_ARGS} // '-g'),
                                 '-o',
                                 $ENV{ALIVE_PERF}, '-p', $worker],
                                '>', \my $po, '2>', \my $pe);
        sleep 1;
    }
    my $p0 = metric($s, 'tunneld_alive_probes_total');
    my $w0 = wakeups($worker);
    my $c0 = cpu_ns($s);
    my $t0 = time;
    sleep $WIN;
    my $c1 = cpu_ns($s);
    my $w1 = wakeups($worker);
    my $p1 = metric($s, 'tunneld_alive_probes_total');
    %busy = (secs => time - $t0, ns => $c1 - $c0, probes => $p1 - $p0,
             wakeups => $w1 - $w0);
    if ($perf) {
        $perf->signal('INT');
        eval { $perf->finish };
    }
    diag(sprintf '--keepalive %d: %d probes in %.1f s, tunneld CPU %.3f s '
         . '(%.2f %% of a core)', $IVL, $busy{probes}, $busy{secs},
         $busy{ns} / 1e9, $busy{ns} / 1e7 / $busy{secs});
    # with a timer per session, every probe had a wake-up for the request
    # and one for the answer (1.15-1.69 a probe: now and then two fell
    # together)
    my $per = $busy{wakeups} / ($busy{probes} || 1);
    cmp_ok($per, '<', 0.5, sprintf 'probes batched: %d wake-ups of the '
           . 'worker for %d probes, %.3f a probe', $busy{wakeups},
           $busy{probes}, $per);
}

# system calls per probe: strace -c on the worker over 3 intervals
{
    my $p0;
    my ($calls) = strace_during([$worker], sub {
        $p0 = metric($s, 'tunneld_alive_probes_total');
        sleep 3 * $IVL;
    }, out => "$s->{_test_dir}/strace-alive.txt");
    my $probes = metric($s, 'tunneld_alive_probes_total') - $p0;
    delete $calls->{total};
    my $total = 0;
    $total += $_ for values %$calls;
    diag(sprintf 'strace -c, %d probes: %.2f system calls per probe: %s',
         $probes, $total / ($probes || 1),
         join ', ', map { sprintf '%s %.2f', $_, $calls->{$_} / ($probes || 1) }
                    sort { $calls->{$b} <=> $calls->{$a} } keys %$calls);
}

is(metric($s, 'tunneld_sessions'), $K, 'no idle tunnel was dropped');
stop_lg($lg);
check_logs($s);
$s->stop_all;


# --- the control: the same tunnels, no probe in the window --------------------

{
    my ($c, $clg) = idle_stack(600);
    sleep 2;
    my $c0 = cpu_ns($c);
    my $t0 = time;
    sleep $WIN;
    my $ns = cpu_ns($c) - $c0;
    my $secs = time - $t0;
    is(metric($c, 'tunneld_alive_probes_total'), 0,
       'control: no probe with --keepalive 600');
    my $per = ($busy{ns} / $busy{secs} - $ns / $secs) * $busy{secs}
              / ($busy{probes} || 1) / 1000;
    diag(sprintf 'control --keepalive 600: tunneld CPU %.3f s in %.1f s '
         . '(%.2f %% of a core)', $ns / 1e9, $secs, $ns / 1e7 / $secs);
    diag(sprintf '%d idle tunnels: %.1f us of tunneld CPU per probe',
         $K, $per);
    stop_lg($clg);
    check_logs($c);
    $c->stop_all;
}

done_testing;
