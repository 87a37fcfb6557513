#!/usr/bin/perl

# The read drain (sshd/drain.c, issue 13): libssh 0.10.6 reads the client's
# socket 4 KB per poll + recv; tunneld reads it ahead 64 KB at a time and
# answers libssh's polls from that read-ahead.  Proved by the system calls
# of every tunneld process during a 32 MiB download (strace -c: exact
# counts, not timing; without the drain ~244 recvfrom and ~244 poll per
# MB), and by bytes that stay exact where the read-ahead holds data the
# loop must hand on without a socket wake-up: parallel downloads on one
# session, a slow reader (nginx's side write-blocked while bytes wait read
# ahead), and a tunnel still serving small requests afterwards.  Small
# requests: one poll per request fewer where epoll has just reported the
# socket readable, and none where the drain knows the socket writable or
# empty (system calls per request, strace -c).  Uploads past a stopped
# client: tunneld's sends hit a full socket and every byte arrives.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Digest::SHA;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(300);

my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
plan skip_all => 'strace is not installed (tools/install-deps)'
    unless $strace;

my $s = start_stack(workers => 1);
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'drain');

my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "drain:80:localhost:$be->{port}");
ok(wait_route($s, 'drain', 10), 'tunnel up')
    or diag($ssh->output, tail_log($s, 'tunneld'));

sub download {
    my ($n, %o) = @_;
    my $d = Digest::SHA->new(256);
    my $got = 0;
    my $r = eval {
        http_get($s, 'drain', "/bytes/$n", timeout => 120,
            on_body => sub {
                $d->add($_[0]);
                $got += length $_[0];
                sleep($o{pause}) if $o{pause};
            });
    };
    return ($r && $r->{status} // 0, $got, $d->hexdigest, $@);
}

# every tunneld process: the supervisor and its workers
sub tunneld_pids {
    my $top = $s->pid('tunneld');
    my %kids;
    for my $dir (glob '/proc/[0-9]*') {
        open my $fh, '<', "$dir/stat" or next;
        my $st = <$fh> // next;
        my ($p, $pp) = $st =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
        push @{ $kids{$pp} }, $p;
    }
    my @all = ($top);
    my @todo = ($top);
    while (defined(my $p = shift @todo)) {
        push @all, @{ $kids{$p} || [] };
        push @todo, @{ $kids{$p} || [] };
    }
    return @all;
}


# --- system calls per MB of a download ----------------------------------------------

{
    my $mib = 32;
    my $n = $mib * 1048576;
    my ($status, $got, $sha, $err);
    my ($calls) = strace_during([ tunneld_pids() ], sub {
        ($status, $got, $sha, $err) = download($n);
    }, out => $s->dir . '/strace.txt');
    my %calls = %$calls;

    is($status, 200, 'traced download: 200') or diag($err);
    is($got, $n, 'traced download: byte count');
    is($sha, pattern_sha256($n), 'traced download: sha256');
    my $mb = $n / 1e6;
    my %per = map { $_ => ($calls{$_} // 0) / $mb } qw(recvfrom poll);
    diag(sprintf "%d MiB download: recvfrom %d (%.1f per MB, %.0f bytes "
         . "each), poll %d (%.1f per MB), write %d, epoll_wait %d",
         $mib, $calls{recvfrom} // 0, $per{recvfrom},
         $n / ($calls{recvfrom} || 1), $calls{poll} // 0, $per{poll},
         $calls{write} // 0, $calls{epoll_wait} // 0);

    # 4 KB reads would be 244 per MB each; 64 KB read-ahead ~16
    ok($calls{recvfrom} && $per{recvfrom} <= 48,
       'recvfrom: at most 48 per MB (4 KB reads: 244)');
    ok($per{poll} <= 48, 'poll: at most 48 per MB (one per 4 KB read: 244)');
    ok($per{poll} <= 5, 'poll: at most 5 per MB (without the known-writable '
       . 'socket of the send wrapper: 15)');
}


# --- system calls per small request -------------------------------------------------

# epoll has just said the client's socket is readable: libssh's next poll
# reads ahead (one recv) instead of asking the kernel again.  Without it a
# small request cost 2.1 poll per request in tunneld (one before the
# response's recv, one for the request's flush), with it 1.0.  The rest:
# the request's flush polls for POLLOUT (libssh sends only after a poll
# said writable), answered without the kernel while the socket is known
# writable (the drain's send wrapper), and ssh_message_get's poll after a
# packet, answered "nothing" without the kernel after a short read: 0.0.
# The
# upstream connection from nginx is kept alive: accept4 (and a new
# forwarded-tcpip channel) once, not per request.
{
    my $n = 200;
    my $ok = 0;
    my ($calls, $errors) = strace_during([ tunneld_pids() ], sub {
        for my $i (1 .. $n) {
            my ($status, $got, $sha) = download(100);
            $ok++ if $status == 200 && $got == 100
                     && $sha eq pattern_sha256(100);
        }
    }, out => $s->dir . '/strace-small.txt',
       settle => 0.5);  # the per-request lines to the session channel
    my %calls = %$calls;
    my %errors = %$errors;
    is($ok, $n, "$n small requests under strace: 200, every byte");
    diag(sprintf "%d small requests, per request: %s", $n,
         join(', ', map { sprintf '%s %.2f', $_, $calls{$_} / $n }
                    sort { $calls{$b} <=> $calls{$a} }
                    grep { $_ ne 'total' } keys %calls));
    ok(($calls{poll} // 0) / $n <= 1.5,
       'poll: at most 1.5 per small request (without the epoll hint: 2.1)');
    ok(($calls{poll} // 0) / $n <= 0.3,
       'poll: at most 0.3 per small request (without the send wrapper and '
       . 'the known-empty socket: 1.0)');
    diag(sprintf 'recvfrom that found nothing (EAGAIN): %d',
                 $errors{recvfrom} // 0);
    ok(($errors{recvfrom} // 0) / $n <= 0.1,
       'recvfrom: the read-ahead in place of a poll rarely finds nothing '
       . '(at most 0.1 EAGAIN per request)');
    ok(($calls{accept4} // 0) <= 4,
       'upstream keepalive: nginx connected at most twice for '
       . "$n requests (accept4 + EAGAIN), not once per request");
}

# --- uploads while the client takes nothing ------------------------------------------

# nginx -> tunneld -> client: tunneld's sends to the client's socket.  The
# drain answers libssh's POLLOUT polls without the kernel while the socket
# is known writable, so a send can find the socket full: the kernel takes
# part (libssh keeps the rest) or refuses it (EAGAIN, which the drain
# tells libssh as "0 bytes taken": it keeps them and waits for POLLOUT),
# never the error libssh would take for a dead connection.  32 uploads of
# 4 MiB each send 512 KiB, wait, the ssh client is stopped, and they go
# on: 32 channel windows of 2 MiB (OpenSSH's) are 64 MiB, more than the
# socket buffers can take (tcp_wmem's 4 MiB + tcp_rmem's 32 MiB at most),
# so tunneld's sends to the client must hit a full socket.  After 3 s the
# client continues, and every byte must reach the backend, in order.
{
    my $n = 4 * 1048576;
    my $k = 32;
    my $dir = $s->dir;
    my $out = "$dir/strace-upload.txt";
    my @pids = tunneld_pids();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec($strace, '-f', '--seccomp-bpf', '-e', 'trace=sendto,poll',
             '-e', 'signal=none', '-s', '0', '-o', $out,
             map { ('-p', $_) } @pids)
            or POSIX::_exit(127);
    }
    sleep 1;    # strace attaches

    my $sshpid = $ssh->pid;
    my $t0 = time;
    my @kids;
    for my $i (1 .. $k) {
        my $kid = fork // die "fork: $!";
        if ($kid == 0) {
            my $gen = pattern_gen($n);
            my $blocks = 0;
            my $r = eval {
                http_get($s, 'drain', '/sha256', method => 'POST',
                    timeout => 120, length => $n,
                    body_gen => sub {
                        if (++$blocks == 9) {    # 512 KiB sent: wait
                            open my $fh, '>', "$dir/open.$i";
                            close $fh;
                            wait_until(60, sub { -e "$dir/go" });
                        }
                        return $gen->();
                    });
            };
            open my $fh, '>', "$dir/up.$i" or POSIX::_exit(1);
            printf $fh "%s %s %s\n", $r ? $r->{status} : 0,
                $r ? $r->{headers}{'x-body-length'} // '' : '',
                $r ? $r->{body} : $@;
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $kid;
    }
    my $open = wait_until(60, sub { !grep { !-e "$dir/open.$_" } 1 .. $k });
    sleep 0.5;  # the client takes what was sent: the windows are open
    kill 'STOP', $sshpid;
    { open my $fh, '>', "$dir/go"; close $fh; }
    sleep 3;
    kill 'CONT', $sshpid;
    waitpid $_, 0 for @kids;
    my $dt = time - $t0;
    kill 'INT', $pid;
    waitpid $pid, 0;

    ok($open, "uploads: $k at once, the client stopped while they go on");
    my $want = "200 $n " . pattern_sha256($n);
    my $good = grep {
        my $line = do { local $/; open my $fh, '<', "$dir/up.$_"; <$fh> }
                   // '';
        chomp $line;
        diag("upload $_: $line") if $line ne $want;
        $line eq $want;
    } 1 .. $k;
    is($good, $k, "$k uploads of 4 MiB past a stopped client: 200, the "
       . 'backend got every byte (sha256)');

    # sendto(7, ""..., 32812, MSG_NOSIGNAL, NULL, 0) = 16384
    my %c = map { $_ => 0 } qw(sendto short eagain poll);
    open my $fh, '<', $out or die "$out: $!";
    while (<$fh>) {
        if (/sendto\(\d+, .*?, (\d+), MSG_NOSIGNAL, NULL, 0\) = (-?\d+)/) {
            $c{sendto}++;
            $c{short}++ if $2 >= 0 && $2 < $1;
            $c{eagain}++ if $2 < 0 && /EAGAIN/;
        }
        $c{poll}++ if /\bpoll\(/;
    }
    diag(sprintf '%d x 4 MiB upload, client stopped 3 s: %.1f s; tunneld '
         . 'sendto %d (%d short, %d refused: EAGAIN), poll %d',
         $k, $dt, $c{sendto}, $c{short}, $c{eagain}, $c{poll});
    ok($c{short} + $c{eagain} >= 1,
       'uploads: the stopped client filled the socket (a short or refused '
       . 'send), and the session went on');
}

# --- bytes exact where the read-ahead waits ----------------------------------------

{
    my $n = 8 * 1048576;
    my @kids;
    my $dir = $s->dir;
    for my $i (1 .. 4) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my ($status, $got, $sha) = download($n);
            # _exit: no destructors (they would stop the stack and ssh)
            open my $fh, '>', "$dir/par.$i" or POSIX::_exit(1);
            print $fh "$status $got $sha\n";
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    waitpid $_, 0 for @kids;
    my $want = "200 $n " . pattern_sha256($n);
    for my $i (1 .. 4) {
        my $line = do { local $/; open my $fh, '<', "$dir/par.$i"; <$fh> }
                   // '';
        chomp $line;
        is($line, $want, "parallel 8 MiB download $i of 4: 200, every byte");
    }
}

{
    # the reader pauses: nginx's socket fills, libssh keeps the rest, the
    # client's window closes, and the drained bytes wait in tunneld
    my $n = 4 * 1048576;
    my $t0 = time;
    my ($status, $got, $sha, $err) = download($n, pause => 0.02);
    is($status, 200, 'slow reader: 200') or diag($err);
    is($got, $n, 'slow reader: byte count');
    is($sha, pattern_sha256($n), 'slow reader: sha256');
    diag(sprintf 'slow reader: 4 MiB in %.1f s', time - $t0);
}

for my $i (1 .. 20) {
    my ($status, $got, $sha) = download(1000 + $i);
    next if $status == 200 && $got == 1000 + $i
            && $sha eq pattern_sha256(1000 + $i);
    fail("small download $i after the bulk ones");
    last;
}
pass('20 small downloads after the bulk ones: every byte');

ok($ssh->alive, 'ssh client still connected');
check_logs($s);

done_testing();
