#!/usr/bin/perl

# Hostile clients at the connection level (issue 14): one address opens
# thousands of SSH connections and never logs in.
#
# Found before: 300 silent connections from one host filled
# --max-startups (then 100 per worker) and every other client was closed
# at accept ("kex_exchange_identification: Connection closed by remote
# host") until the login grace ran out.
#
# A  defaults (--per-source-max-startups 10): 500 connections from
#    127.0.0.2 that send their version line and a KEXINIT (half of it, or
#    all) and 2,000 that never send a byte.  At most 10 (+1: two workers
#    may admit at the same instant) are taken, the rest are closed at
#    accept with a line that says why, counted in /metrics by reason;
#    logins from 127.0.0.1 meanwhile take under 1 s each; the taken ones
#    are closed by the login grace (--login-grace 6 here) and counted.
# B  limits out of the way (a botnet's many addresses look like this to
#    tunneld): all 2,500 are taken and held, logins from 127.0.0.1 still
#    take under 1 s each, and every one of the 2,500 is closed by the
#    login grace, whether it never spoke or stopped mid key exchange.
# C  --max-startups 40: the 41st unauthenticated connection is refused,
#    counted as reason "max_startups"; a login from another address then
#    takes the place of the oldest connection of the address holding most
#    (tunneld_startups_evicted_total), so many addresses holding a few
#    silent connections each no longer lock every other one out.
#
# Needs about 2,600 descriptors in this process: the soft limit is raised
# through bash's ulimit when it is lower (re-exec).

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

BEGIN {
    my $want = 8192;
    my $have = `sh -c 'ulimit -n'` // '';
    chomp $have;
    if ($have ne 'unlimited' && $have =~ /^\d+$/ && $have < $want
        && !$ENV{TNL_FLOOD_REEXEC})
    {
        $ENV{TNL_FLOOD_REEXEC} = 1;
        exec('bash', '-c', "ulimit -n $want && exec \"\$0\" \"\$\@\"",
             $^X, $0, @ARGV);
        die "exec bash: $!\n";
    }
}

use Errno qw(EAGAIN EINPROGRESS EWOULDBLOCK);
use IO::Socket::UNIX;
use List::Util qw(max min sum);
use Socket qw(:DEFAULT IPPROTO_TCP);
use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(400);

my $GRACE = 6;      # --login-grace of this test
my $SLACK = 5;      # the 1 s linger, a loaded machine

my $fdmax = `sh -c 'ulimit -n'` // 0;
chomp $fdmax;
plan skip_all => "needs 8192 descriptors, ulimit -n is $fdmax"
    if $fdmax ne 'unlimited' && $fdmax < 3000;

my $s = start_stack(workers => 2, tunneld_args => ['--login-grace', $GRACE]);
my $ssh_port = $s->env->{SSH_PORT};
my $tlog = $s->log_path('tunneld');
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'flood');
my $serial = 0;


sub api_get {
    my ($path) = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM,
        Peer => $s->socket_dir . '/api.sock') or return '';
    print $c "GET $path HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $deadline = time + 10;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread $c, $buf, 65536, length $buf;
        last unless $n;
    }
    return $buf;
}

sub metric {
    my ($name) = @_;
    my $m = api_get('/metrics');
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}


# one legitimate login from 127.0.0.1: seconds until its route is in
# Redis (undef: none within 10 s); the tunnel is closed again after
sub login_time {
    my ($timeout) = @_;
    my $name = 'legit' . ++$serial;
    my $t0 = time;
    my $ssh = start_ssh($s, key => $alice->{key}, user => $alice->{name},
        remote => "$name:80:localhost:$be->{port}");
    my $r = wait_route($s, $name, $timeout // 10);
    my $dt = time - $t0;
    diag("login $name failed: " . $ssh->output) unless $r || $timeout;
    $ssh->stop;
    wait_no_route($s, $name, 10);
    return $r ? $dt : undef;
}


# --- the flood: non-blocking sockets from 127.0.0.2 -------------------------

# SSH_MSG_KEXINIT in a binary packet (no MAC, no encryption yet)
sub kexinit_packet {
    my $str = sub { pack('N/a*', $_[0]) };
    my $payload = chr(20) . ('x' x 16)
        . join('', map { $str->($_) }
               'curve25519-sha256', 'ssh-ed25519',
               'aes128-ctr', 'aes128-ctr', 'hmac-sha2-256', 'hmac-sha2-256',
               'none', 'none', '', '')
        . chr(0) . pack('N', 0);
    my $pad = 8 - ((5 + length $payload) % 8);
    $pad += 8 if $pad < 4;
    return pack('NC', 1 + length($payload) + $pad, $pad) . $payload
        . ("\0" x $pad);
}

# Opens $n connections; kex => 1 sends the version line and a KEXINIT
# (every other one only its first half).  Returns the list of
# { fh, t0, banner, refused, eof }.
sub flood {
    my ($n, %o) = @_;
    my $kex = "SSH-2.0-flood_0.1\r\n" . kexinit_packet();
    my $half = "SSH-2.0-flood_0.1\r\n"
        . substr(kexinit_packet(), 0, int(length(kexinit_packet()) / 2));
    my $to = sockaddr_in($ssh_port, inet_aton('127.0.0.1'));
    my $addr = $o{from} // '127.0.0.2';
    my $from = sockaddr_in(0, inet_aton($addr));
    my @c;
    for my $i (1 .. $n) {
        socket(my $fh, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
        bind($fh, $from) or die "bind $addr: $!\n";
        $fh->blocking(0);
        connect($fh, $to) or $! == EINPROGRESS
            or die "connect: $!\n";
        push @c, { fh => $fh, t0 => time, out => '', banner => 0,
                   refused => 0, eof => undef };
        if ($o{kex}) {
            # loopback: connected at once in practice; retried by poll_all
            $c[-1]{pending} = $i % 2 ? $kex : $half;
        }
        # keep the accept queue drained: poll now and then
        poll_all(\@c) if $i % 200 == 0;
    }
    return @c;
}

# one pass over every open connection: write what is pending, read what
# came, note EOF (the server closed it)
sub poll_all {
    my ($c) = @_;
    for my $x (@$c) {
        next if defined $x->{eof};
        if (defined $x->{pending}) {
            my $w = syswrite($x->{fh}, $x->{pending});
            if (defined $w) {
                substr($x->{pending}, 0, $w) = '';
                delete $x->{pending} if $x->{pending} eq '';
            }
        }
        while (1) {
            my $buf;
            my $r = sysread($x->{fh}, $buf, 4096);
            if (!defined $r) {
                if ($! != EAGAIN && $! != EWOULDBLOCK) {
                    $x->{eof} = time;     # reset: closed all the same
                    close $x->{fh};
                }
                last;
            }
            if ($r == 0) {
                $x->{eof} = time;
                close $x->{fh};
                last;
            }
            $x->{out} .= $buf if length $x->{out} < 512;
            $x->{banner} = 1 if $x->{out} =~ /^SSH-2\.0-/m;
            $x->{refused} = 1 if $x->{out} =~ /^Too many logins/m;
        }
    }
}

# the stack's readiness probe and earlier logins leave the count within
# a second (the linger of a closed session): start each part from zero
sub settle {
    ok(wait_until(10, sub { (metric('tunneld_unauthenticated') // -1) == 0 }),
        "$_[0]: no unauthenticated connection before the flood");
}

sub open_count { scalar grep { !defined $_->{eof} } @{ $_[0] } }

sub close_all { for (@{ $_[0] }) { close $_->{fh} unless defined $_->{eof} } }

sub pct {
    my ($p, @v) = @_;
    return undef unless @v;
    @v = sort { $a <=> $b } @v;
    return $v[min($#v, int($p / 100 * @v))];
}


# --- before: a login without any flood, for comparison ----------------------

my $t = login_time();    # also waits out the key's reload
ok(defined $t, 'a login before the flood works');
$t = login_time();
ok(defined $t && $t < 1, 'baseline login under 1 s')
    or diag("took " . ($t // 'forever'));
diag(sprintf "baseline login: %.3f s", $t // -1);


# --- A: one address, the default limits -------------------------------------

{
    settle('A');
    my $t0 = time;
    my @c = (flood(500, kex => 1), flood(2000));
    poll_all(\@c) for 1 .. 3;
    wait_until(10, sub {
        poll_all(\@c);
        !grep { !defined $_->{eof} && !$_->{banner} } @c;
    });
    my $taken = grep { $_->{banner} } @c;
    my $refused = grep { $_->{refused} && defined $_->{eof} } @c;
    diag(sprintf "A: 2,500 connections from 127.0.0.2 in %.2f s: %d taken, "
         . "%d refused at accept", time - $t0, $taken, $refused);
    ok($taken >= 1 && $taken <= 11,
        'A: at most --per-source-max-startups (10, +1 for two workers) '
        . 'taken');
    is($refused, 2500 - $taken,
        'A: every other one closed at accept with "Too many logins in '
        . 'progress from your address"');
    is(metric('tunneld_startups_refused_total{reason="per_source"}'),
        2500 - $taken, 'A: /metrics counts them (reason per_source)');
    is(metric('tunneld_unauthenticated'), $taken,
        'A: /metrics tunneld_unauthenticated');

    my @times;
    for (1 .. 3) {
        poll_all(\@c);
        push @times, login_time();
    }
    poll_all(\@c);
    is(scalar(grep { defined && $_ < 1 } @times), 3,
        'A: 3 logins from 127.0.0.1 during the flood, each under 1 s');
    diag('A: logins: ' . join(', ', map { sprintf '%.3f s', $_ // -1 }
                                         @times));
    my $held = grep { $_->{banner} && !defined $_->{eof} } @c;
    is($held, $taken, 'A: the taken ones were held meanwhile');

    wait_until($GRACE + $SLACK + 2, sub { poll_all(\@c); !open_count(\@c) });
    my @life = map { $_->{eof} - $_->{t0} } grep { $_->{banner} } @c;
    is(open_count(\@c), 0, 'A: all closed by the login grace');
    ok(min(@life) >= $GRACE - 0.5 && max(@life) <= $GRACE + $SLACK,
        "A: the taken ones lived the grace (${GRACE} s) and no more than "
        . "$SLACK s beyond");
    diag(sprintf "A: lifetime of the taken ones: %.2f .. %.2f s",
                 min(@life), max(@life));
    is(metric('tunneld_login_grace_expired_total'), $taken,
        'A: /metrics tunneld_login_grace_expired_total');
    close_all(\@c);
}


# --- B: limits out of the way: 2,500 held, the grace closes them ------------

$s->stop_tunneld;
push @{ $s->{tunneld_args} }, '--per-source-max-startups', '5000',
    '--max-startups', '5000';
$s->start_tunneld;

{
    settle('B');
    my $t0 = time;
    my @c = (flood(500, kex => 1), flood(2000));
    wait_until(15, sub {
        poll_all(\@c);
        (grep { $_->{banner} } @c) == @c;
    });
    my $opened = time - $t0;
    my $taken = grep { $_->{banner} } @c;
    is($taken, 2500, 'B: all 2,500 connections taken (banner sent)');
    diag(sprintf "B: 2,500 connections taken in %.2f s", $opened);
    is(metric('tunneld_unauthenticated'), 2500,
        'B: /metrics tunneld_unauthenticated 2500');

    my @times;
    for (1 .. 3) {
        poll_all(\@c);
        push @times, login_time();
    }
    poll_all(\@c);
    is(scalar(grep { defined && $_ < 1 } @times), 3,
        'B: 3 logins from 127.0.0.1 while 2,500 are held, each under 1 s');
    diag('B: logins: ' . join(', ', map { sprintf '%.3f s', $_ // -1 }
                                         @times));
    my $early = grep { defined $_->{eof} && $_->{eof} - $_->{t0} < $GRACE - 0.5 }
        @c;
    is($early, 0, 'B: none closed before the login grace');

    wait_until($GRACE + $SLACK + 5, sub { poll_all(\@c); !open_count(\@c) });
    is(open_count(\@c), 0, 'B: every one closed by the login grace');
    my @life = map { $_->{eof} - $_->{t0} } grep { defined $_->{eof} } @c;
    my @kex = map { $_->{eof} - $_->{t0} }
        grep { defined $_->{eof} } @c[0 .. 499];
    ok(@life && min(@life) >= $GRACE - 0.5
        && max(@life) <= $GRACE + $SLACK + 5,
        'B: closed after the grace, within slack');
    ok(@kex == 500 && max(@kex) <= $GRACE + $SLACK + 5,
        'B: the 500 stopped mid key exchange are closed too');
    diag(sprintf "B: lifetime: min %.2f p50 %.2f p99 %.2f max %.2f s "
         . "(grace %d s)", min(@life), pct(50, @life), pct(99, @life),
         max(@life), $GRACE);
    is(metric('tunneld_login_grace_expired_total'), 2500,
        'B: /metrics tunneld_login_grace_expired_total 2500');
    is(metric('tunneld_unauthenticated'), 0,
        'B: /metrics tunneld_unauthenticated back to 0');
    close_all(\@c);
}


# --- C: --max-startups, every address together -------------------------------

$s->stop_tunneld;
# one worker from here: a worker gives away places of its own connections
# only (docs/DEPLOY.md), and two could split a flood unevenly
$s->{workers} = 1;
push @{ $s->{tunneld_args} }, '--max-startups', '40';
$s->start_tunneld;

{
    settle('C');
    my @c = flood(100);
    wait_until(10, sub {
        poll_all(\@c);
        !grep { !defined $_->{eof} && !$_->{banner} } @c;
    });
    my $taken = grep { $_->{banner} } @c;
    ok($taken >= 40 && $taken <= 41, 'C: --max-startups 40: 40 (+1) taken')
        or diag("taken: $taken");
    is(metric('tunneld_startups_refused_total{reason="max_startups"}'),
        100 - $taken, 'C: the rest counted as reason max_startups');
    my @m = grep { $_->{refused} } @c;
    is(scalar(grep { $_->{out} =~ /too many logins in progress; try again/ }
              @c), 100 - $taken,
        'C: ... each told "The tunnel server has too many logins in '
        . 'progress"');
    # found by the attacker pass: many addresses holding a few silent
    # connections each kept every other address out for as long as they
    # reconnected; a newcomer from an address holding fewer now takes the
    # place of the oldest connection of the address holding most
    my $t2 = login_time(10);
    ok(defined $t2, 'C: a login from another address while full takes a '
        . 'place of the address holding most ('
        . (defined $t2 ? sprintf('%.2f s', $t2) : 'none') . ')');
    diag(sprintf('C: login while full: %s',
        defined $t2 ? sprintf('%.2f s', $t2) : 'refused'));
    is(metric('tunneld_startups_evicted_total'), 1,
        'C: one flood connection gave its place (tunneld_startups_evicted_total)');
    poll_all(\@c);
    my $lost = grep { $_->{banner} && defined $_->{eof} } @c;
    is($lost, 1, 'C: exactly one of the flood\'s connections was closed for it');
    close_all(\@c);
    ok(wait_until(10, sub { metric('tunneld_unauthenticated') == 0 }),
        'C: closed by the client: out of the count at once');
    $t2 = login_time();
    ok(defined $t2 && $t2 < 1, 'C: then a login works again');
}


# --- D: --max-startups filled by several addresses, each within its limit ---

# The attacker pass's finding: 110 addresses x 10 silent connections,
# reconnected as soon as closed, kept every other address out of the
# default --max-startups 1000 for as long as they ran.  Here 4 x 10 fill
# --max-startups 40; a login from 127.0.0.1 takes one place, and the
# address it was taken from cannot take it back (it holds 9, no address
# holds 2 more), so a reconnecting flood does not chase the newcomer out.

$s->stop_tunneld;
push @{ $s->{tunneld_args} }, '--per-source-max-startups', '10';
$s->start_tunneld;

{
    settle('D');
    my @c = map { flood(10, from => "127.0.0.$_") } 2 .. 5;
    wait_until(10, sub {
        poll_all(\@c);
        !grep { !defined $_->{eof} && !$_->{banner} } @c;
    });
    my $taken = grep { $_->{banner} && !defined $_->{eof} } @c;
    ok($taken >= 40 && $taken <= 41, "D: 4 addresses x 10 hold $taken places");
    # a silent connection from 127.0.0.1 takes a place ...
    my @new = flood(1, from => '127.0.0.1');
    wait_until(10, sub { poll_all(\@new); poll_all(\@c);
                         $new[0]{banner} || defined $new[0]{eof} });
    ok($new[0]{banner} && !defined $new[0]{eof},
        'D: a connection from 127.0.0.1 while full is taken');
    poll_all(\@c);
    my @lost = grep { $_->{banner} && defined $_->{eof} } @c;
    is(scalar @lost, 1, 'D: one flood connection gave its place');
    is(metric('tunneld_startups_evicted_total'), 1,
        'D: tunneld_startups_evicted_total 1');
    # ... and the flood's addresses reconnecting do not take it back
    my @again = map { flood(1, from => "127.0.0.$_") } 2 .. 5;
    wait_until(10, sub {
        poll_all(\@again);
        !grep { !defined $_->{eof} } @again;
    });
    is(scalar(grep { !$_->{banner} && defined $_->{eof} } @again), 4,
        'D: a reconnect from each flood address is closed at accept')
        or diag(join ' | ', map { $_->{out} } @again);
    poll_all(\@new);
    poll_all(\@c);
    ok(!defined $new[0]{eof}, 'D: the newcomer keeps its place');
    is(scalar(grep { $_->{banner} && defined $_->{eof} } @c), 1,
        'D: no other flood connection closed');
    is(metric('tunneld_startups_evicted_total'), 1,
        'D: ... nothing more evicted');
    close_all(\@new);
    my $t = login_time(10);
    ok(defined $t, 'D: an ssh -R login from 127.0.0.1 meanwhile gets its '
        . 'tunnel (' . (defined $t ? sprintf('%.2f s', $t) : 'none') . ')');
    diag(sprintf('D: login while 4 addresses fill --max-startups: %s',
        defined $t ? sprintf('%.2f s', $t) : 'refused'));
    close_all(\@c);
    close_all(\@again);
}

like(read_file($tlog),
    qr/refusing 127\.0\.0\.2:\d+: its address has 10 connections not authenticated yet \(--per-source-max-startups\)/,
    'the log says why (once a second at most)');
my $lines = () = read_file($tlog) =~ /refusing 127\.0\.0\.2/g;
ok($lines < 60, "refusals logged at most once a second ($lines lines)");

check_logs($s);

done_testing;
