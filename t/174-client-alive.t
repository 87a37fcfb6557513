#!/usr/bin/perl

# Fault matrix (issue 14): a client that hangs while its machine stays up
# (here: the ssh client SIGSTOPped).  Its kernel keeps acknowledging every
# segment, so neither TCP keepalive nor TCP_USER_TIMEOUT notices; tunneld's
# client-alive check does (sshd/session.c, tnl_session_client_alive): every
# --keepalive K seconds a keepalive@openssh.com global request with
# want-reply, and after --keepalive-count N intervals without a packet
# from the client the session is closed, "connection lost (no answer to
# keepalives)".  The stack runs K = 2, N = 2: a hung client goes between
# N x K and (N + 1) x K after its last packet, so within K x (N + 1) = 6 s
# of the SIGSTOP (+ 3 s slack).
#
# (a) a healthy idle -N client (its own ServerAliveInterval off, so only
#     its answers to our requests arrive) stays up for 6 intervals: no
#     false positive.
# (b) an idle -N client SIGSTOPped: its route goes within the bound, the
#     audit row of the close says why, tunneld logs it.
# (c) a client SIGSTOPped in the middle of a download: the browser's
#     request ends cut short within the bound, the route goes, tunneld's
#     and nginx's fds come back to their baseline.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib", "$Bin/../tools/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(240);

my $K     = 2;
my $N     = 2;
my $BOUND = $K * ($N + 1) + 3;         # + slack on a loaded machine
my $BIG   = 1024 * 1024 * 1024;        # never sent in full

my $s = start_stack(tunneld_args => ['--keepalive', $K,
                                     '--keepalive-count', $N]);
my $port = $s->env->{HTTP_PORT};
my $master = $s->pid('nginx');

my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'big');

sub last_id {
    return sql_query($s, 'SELECT coalesce(max(id), 0) FROM tunnel_events');
}

sub close_detail {
    my ($mark, $name) = @_;
    my $d;
    wait_until(10, sub {
        $d = sql_query($s, "SELECT string_agg(detail, ',') FROM tunnel_events"
            . " WHERE event = 'close' AND name = '$name' AND id > $mark");
        return $d ne '';
    });
    return $d;
}

sub nginx_workers {
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @w, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $master;
    }
    return @w;
}

sub nfds {
    my $n = 0;
    for my $pid (@_) {
        opendir my $d, "/proc/$pid/fd" or next;
        $n += grep { !/^\./ } readdir $d;
    }
    return $n;
}

sub fds {
    return nfds($s->tunneld_pids) . ' ' . nfds(nginx_workers());
}


# --- (a) a healthy idle client is not dropped ---------------------------------

{
    my $mark = last_id();
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "idle:80:localhost:$be->{port}", alive => 0);
    my $route = wait_route($s, 'idle', 15);
    ok($route, 'healthy: tunnel up') or diag($ssh->output);
    my $t0 = time;
    my $hold = 6 * $K;
    my $lost = wait_until($hold, sub { !route_of($s, 'idle') });
    my %now = route_of($s, 'idle');
    ok(!$lost && $ssh->alive && ($now{session} // '') eq $route->{session},
       sprintf 'healthy: an idle -N client (no ServerAlive of its own) still '
       . 'connected after %.1f s = %d intervals of %d s', time - $t0,
       $hold / $K, $K)
        or diag($ssh->output, tail_log($s, 'tunneld'));
    is(sql_query($s, "SELECT count(*) FROM tunnel_events"
                 . " WHERE event = 'close' AND id > $mark"), 0,
       'healthy: no close row');
    my $r = http_get($s, 'idle', '/bytes/16');
    is($r->{status}, 200, 'healthy: the tunnel still serves');
    $ssh->stop;
    ok(wait_no_route($s, 'idle', 10), 'healthy: gone once the client quits');
}


# --- (b) an idle client SIGSTOPped ----------------------------------------------

{
    my $mark = last_id();
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "hung:80:localhost:$be->{port}", alive => 0);
    ok(wait_route($s, 'hung', 15), 'idle hung: tunnel up')
        or diag($ssh->output);
    sleep $K / 2;
    kill 'STOP', $ssh->pid;
    my $t0 = time;
    my $gone = wait_no_route($s, 'hung', $BOUND + 5);
    my $t = time - $t0;
    ok($gone && $t <= $BOUND, sprintf 'idle hung: route released %.2f s after '
       . 'SIGSTOP (bound K x (N + 1) + 3 = %d s)', $t, $BOUND)
        or diag(tail_log($s, 'tunneld'));
    ok($t >= $K * ($N - 1), sprintf 'idle hung: not before (N - 1) x K = '
       . '%d s (%.2f s)', $K * ($N - 1), $t);
    is(close_detail($mark, 'hung'), 'connection lost (no answer to keepalives)',
       'idle hung: audit close row says why');
    my @why = grep { /no packet from .* in \d+ keepalive intervals/
                     || /closed after .*: connection lost \(no answer/ }
              log_lines($s->log_path('tunneld'));
    ok(scalar @why, 'idle hung: tunneld logs it');
    diag("idle hung: tunneld: $_") for @why;
    kill 'CONT', $ssh->pid;
    $ssh->finish(10);
    diag('idle hung: the client, woken up: ' . join ' | ',
         grep { /\S/ } split /\n/, $ssh->output);
}


# --- (c) SIGSTOP in the middle of a download -----------------------------------

{
    # warm up: nginx's upstream connections and tunneld's buffers settled
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "dl:80:localhost:$be->{port}", alive => 0);
    ok(wait_route($s, 'dl', 15), 'download hung: warm-up tunnel up')
        or diag($ssh->output);
    is(http_get($s, 'dl', '/bytes/65536')->{status}, 200,
       'download hung: warm-up request');
    $ssh->stop;
    ok(wait_no_route($s, 'dl', 10), 'download hung: warm-up tunnel gone');
    sleep 1;
    my $base = fds();
    diag("download hung: baseline fds (tunneld workers, nginx workers): $base");

    my $mark = last_id();
    $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "dl:80:localhost:$be->{port}", alive => 0);
    ok(wait_route($s, 'dl', 15), 'download hung: tunnel up')
        or diag($ssh->output);

    my $c = http_connect($port);
    syswrite $c->{sock}, "GET /bytes/$BIG HTTP/1.1\r\n"
        . "Host: dl.localhost:$port\r\n\r\n";
    my ($buf, $head, $got, $t0, $err) = ('', undef, 0, 0, undef);
    my $deadline = time + 15;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            $err = $t0 ? 'no end in time' : 'no 1 MiB in time';
            last;
        }
        next unless $c->{sel}->can_read($left > 1 ? 1 : $left);
        my $n = sysread $c->{sock}, $buf, 1 << 20;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            $n = 0;
        }
        last if !$n;
        if (!defined $head) {
            $head = $buf =~ s/^(.*?\r\n\r\n)//s ? $1 : next;
            $got = length $buf;
        } else {
            $got += $n;
        }
        $buf = '';
        if (!$t0 && $got >= 1 << 20) {
            kill 'STOP', $ssh->pid;
            $t0 = time;
            $deadline = time + $BOUND + 10;
        }
    }
    my $t_end = time - $t0;
    close $c->{sock};

    is($err, undef, 'download hung: the browser\'s request ended');
    like($head // '', qr{^HTTP/1\.1 200 }, 'download hung: it had started');
    ok($got < $BIG, "download hung: cut short ($got bytes)");
    ok($t0 && $t_end <= $BOUND, sprintf 'download hung: ended %.2f s after '
       . 'SIGSTOP (bound %d s)', $t_end, $BOUND);
    my $t1 = time;
    ok(wait_no_route($s, 'dl', 10), sprintf 'download hung: route released '
       . '(%.2f s after the response ended)', time - $t1);
    # the kernel may give up first (TCP_USER_TIMEOUT on the zero window
    # probes): either way the connection is lost, not quit
    like(close_detail($mark, 'dl'), qr/^connection lost(?: \(no answer to keepalives\))?$/,
       'download hung: audit close row: connection lost');
    diag('download hung: close reason: ' . close_detail($mark, 'dl'));
    kill 'CONT', $ssh->pid;
    $ssh->finish(10);

    my $end;
    wait_until(10, sub { ($end = fds()) eq $base });
    is($end, $base, 'download hung: tunneld and nginx workers\' fds back to '
       . 'the baseline');
}

check_logs($s, allow_nginx => [
    qr/upstream prematurely closed connection while reading upstream/,
    qr/recv\(\) failed \(104: Connection reset by peer\) while reading upstream/,
]);

$s->stop_all;
done_testing;
