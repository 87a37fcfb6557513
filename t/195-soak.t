#!/usr/bin/perl
# Long-run churn (issue 14): tunnels opened and closed for SOAK_S seconds
# (default 60 here; `make soak` runs 600 s with 10,000 tunnels) while the
# memory and file descriptors of tunneld's processes and nginx's workers
# are sampled.  What must hold:
#
# * every round's tunnels come up and answer through nginx, and all of
#   them are gone (tunneld_tunnels and tunneld_sessions 0) before the next;
# * the RSS of each tunneld process and each nginx worker at the end is at
#   most its RSS after the warm-up + SOAK_RSS_MIB (default 8 MiB): no
#   growth per tunnel (10,000 tunnels leaking 1 KiB each would be 10 MiB);
# * each process's open fds at the end equal its count after the warm-up;
# * at least SOAK_TUNNELS tunnels were opened and closed (default: 1,000
#   per minute of SOAK_S, 10,000 for 600 s).
#
# Rounds of bench/loadgen/tnl-loadgen: SOAK_BATCH sessions (default 100)
# with one tunnel each, up to 32 handshakes at once; 5 of them are asked
# through nginx; then the generator exits (stdin EOF) and its tunnels
# close.  Under `make test SANITIZE=1` the RSS bound is not asserted (ASan
# keeps freed memory in quarantine by design); fds still are.

use strict;
use warnings;
use FindBin qw($Bin);
use lib "$Bin/lib";
use IO::Socket::UNIX;
use IPC::Run ();
use List::Util qw(max sum);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

my $SOAK_S   = $ENV{SOAK_S} // 60;
my $BATCH    = $ENV{SOAK_BATCH} // 100;
my $TARGET   = $ENV{SOAK_TUNNELS} // int($SOAK_S * 1000 / 60);
my $RSS_MIB  = $ENV{SOAK_RSS_MIB} // 8;
my $WARMUP   = 2;                       # rounds before the baseline
my $SAN      = $ENV{NGX_TUNNEL_SANITIZE} ? 1 : 0;

# the churn, the warm-up and the rounds' own waits, with slack
watchdog($SOAK_S * 2 + 300);

my $root = repo_root();
system('make', '-s', '-C', $root, '-f', 'bench/bench.mk',
       'build/bench/bin/tnl-loadgen') == 0
    or BAIL_OUT('cannot build tnl-loadgen');
my $LG = "$root/build/bench/bin/tnl-loadgen";

# the load generator logs in from one address, 32 at a time: above the
# default per-source limit on unauthenticated connections (10)
my $s = start_stack(tunneld_args => ['--per-source-max-startups', 1000]);
my $u = new_user($s, 'soak');
sleep 3;                                # tunneld's key reload (2 s)
my $port = $s->env->{HTTP_PORT};
my $api = $s->socket_dir . '/api.sock';

sub metrics {
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $api)
        or return {};
    print $c "GET /metrics HTTP/1.0\r\nHost: tunneld\r\n\r\n";
    local $/;
    my $text = <$c> // '';
    close $c;
    my %m;
    $m{$1} = $2 while $text =~ /^(tunneld_\w+) (\d+)$/mg;
    return \%m;
}

sub nginx_workers {
    my $master = $s->pid('nginx') or return ();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @w, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $master;
    }
    return sort { $a <=> $b } @w;
}

# { "tunneld PID" => [rss KiB, fds] , "nginx PID" => ... }
sub sample {
    my %p;
    my @t = ($s->pid('tunneld'), $s->tunneld_pids);
    my %seen;
    for my $pid (grep { !$seen{$_}++ } @t) {
        $p{"tunneld $pid"} = $pid;
    }
    $p{"nginx worker $_"} = $_ for nginx_workers();
    my %r;
    for my $k (keys %p) {
        my $status = read_file("/proc/$p{$k}/status");
        my ($rss) = $status =~ /^VmRSS:\s+(\d+) kB/m;
        opendir my $d, "/proc/$p{$k}/fd" or next;
        my $fds = grep { /^\d+$/ } readdir $d;
        $r{$k} = [$rss // 0, $fds];
    }
    return \%r;
}

my ($opened, $rounds, $failed, $http_ok, $http_bad) = (0, 0, 0, 0, 0);
my ($base, $t_base);
my @curve;                              # [secs, tunneld KiB, nginx KiB]

sub round {
    my ($r) = @_;
    my ($in, $out, $err) = ('', '', '');
    my $lg = IPC::Run::start([$LG, '--key', $u->{key}, '--host',
        '127.0.0.1', '--port', $s->ssh_port, '--count', $BATCH,
        '--first', $r * $BATCH, '--prefix', 'soak', '--concurrency', 32,
        '--connect-timeout', 60, '--hold', 120],
        '<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(300));
    my $ready = wait_until(120, sub { $lg->pump_nb; $out =~ /^ready /m });
    my ($ok, $bad) = $out =~ /^ready ok=(\d+) failed=(\d+)/m;
    if (!$ready || $ok != $BATCH) {
        diag("round $r: " . ($ready ? "ok=$ok failed=$bad" : 'no ready')
             . "\n" . substr($err, 0, 2000));
        $failed += $ready ? $bad : $BATCH;
    }
    $opened += $ok // 0;
    for my $i (0 .. 4) {
        my $name = 'soak' . ($r * $BATCH + int($i * $BATCH / 5));
        my $g = eval { http_get($s, $name, '/', timeout => 10) };
        ($g && $g->{status} == 200) ? $http_ok++ : $http_bad++;
    }
    $in = undef;                        # stdin EOF: the sessions close
    $lg->finish;
    my $gone = wait_until(60, sub {
        my $m = metrics();
        defined $m->{tunneld_tunnels} && $m->{tunneld_tunnels} == 0
            && ($m->{tunneld_sessions} // 1) == 0;
    });
    diag("round $r: tunnels still up 60 s after their clients left: "
         . join ' ', %{ metrics() }) unless $gone;
    return $gone;
}

my $t0 = time;
my $all_gone = 1;
while (1) {
    $all_gone &&= round($rounds);
    $rounds++;
    my $t = time - $t0;
    my $smp = sample();
    my $tk = sum(map { $smp->{$_}[0] } grep { /^tunneld/ } keys %$smp) // 0;
    my $nk = sum(map { $smp->{$_}[0] } grep { /^nginx/ } keys %$smp) // 0;
    push @curve, [$t, $tk, $nk, $opened];
    if ($rounds == $WARMUP) {
        ($base, $t_base) = ($smp, $t);
    }
    last if $rounds > $WARMUP && $t >= $SOAK_S;
}
my $elapsed = time - $t0;
sleep 2;                                # nginx's keepalive connections
my $end = sample();

ok($all_gone, 'every round: all tunnels and sessions gone after close');
is($failed, 0, 'no tunnel failed to open');
is($http_bad, 0, "every probe through nginx answered 200 ($http_ok)");
cmp_ok($opened, '>=', $TARGET,
       "at least $TARGET tunnels opened and closed ($opened)");

diag(sprintf 'soak: %d rounds of %d, %d tunnels opened and closed in '
    . '%.0f s (%.1f per second), %d HTTP probes', $rounds, $BATCH, $opened,
    $elapsed, $opened / ($elapsed || 1), $http_ok);
for my $c (@curve[grep { $_ % max(1, int(@curve / 10)) == 0 || $_ == $#curve }
                  0 .. $#curve]) {
    diag(sprintf '  %5.0f s  %6d tunnels  tunneld RSS %7.1f MiB  nginx '
        . 'workers RSS %6.1f MiB', $c->[0], $c->[3], $c->[1] / 1024,
        $c->[2] / 1024);
}

for my $k (sort keys %$base) {
    my $e = $end->{$k};
    ok($e, "$k still runs") or next;
    my ($r0, $f0) = @{ $base->{$k} };
    my ($r1, $f1) = @{ $e };
    diag(sprintf '%-20s RSS %.1f -> %.1f MiB (%+.1f), fds %d -> %d', $k,
        $r0 / 1024, $r1 / 1024, ($r1 - $r0) / 1024, $f0, $f1);
    if ($SAN) {
        note("$k: RSS not bounded under ASan (quarantine)");
    } else {
        cmp_ok($r1, '<=', $r0 + $RSS_MIB * 1024,
               "$k: RSS at the end within $RSS_MIB MiB of after the warm-up");
    }
    is($f1, $f0, "$k: open fds back to the warm-up count");
}

check_logs($s);
$s->stop_all;
done_testing;
