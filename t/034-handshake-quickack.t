#!/usr/bin/perl

# Logins do not wait for a delayed ACK (issue 13, workload d).  OpenSSH's
# ssh without a terminal leaves Nagle on, so it holds its small
# KEX_ECDH_INIT until tunneld has ACKed its KEXINIT; tunneld had sent its
# own KEXINIT at accept and has nothing to send that would carry that
# ACK, and the kernel delayed it: every login waited ~40 ms for the key
# exchange reply (launch to first 200: 57 ms, 15 ms without the wait).
# tunneld now sets TCP_QUICKACK after each read of a connection's first
# reads (sshd/drain.c, tnl_drain_quickack).
#
# Checked by what tunneld does, not by a clock: strace counts its
# TCP_QUICKACK calls during logins (at least one per login) and during a
# download on an established tunnel (fewer than 32: only the first 32
# reads of a connection do it).  The login times are printed for the record.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);

use NgxTunnel::Test;

watchdog(180);

my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
plan skip_all => 'strace is not installed (tools/install-deps)'
    unless $strace;

my $s = start_stack(workers => 1);
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'qa');

# a login before tracing: the key is known to tunneld (NOTIFY reload)
{
    my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
        remote => "warm:80:localhost:$be->{port}");
    ok(wait_route($s, 'warm', 10), 'first tunnel up')
        or diag($ssh->output, tail_log($s, 'tunneld'));
    $ssh->stop;
    wait_no_route($s, 'warm', 10);
}

# TCP_QUICKACK calls of every tunneld process while $code runs
sub traced {
    my ($file, $code) = @_;
    my @lines = strace_during([ $s->tunneld_pids ], $code, out => $file,
                              trace => 'setsockopt', settle => 0.2);
    return scalar grep { /TCP_QUICKACK/ } @lines;
}

my $n = 3;
my (@ms, $ssh);
my $during = traced($s->dir . '/strace-logins.txt', sub {
    for my $i (1 .. $n) {
        my $t0 = time;
        my $c = start_ssh($s, key => $alice->{key}, user => 'alice',
            remote => "qa$i:80:localhost:$be->{port}");
        my $up = wait_route($s, "qa$i", 10);
        push @ms, (time - $t0) * 1000;
        ok($up, "login $i: tunnel up") or diag($c->output);
        if ($i < $n) {
            $c->stop;
            wait_no_route($s, "qa$i", 10);
        } else {
            $ssh = $c;
        }
    }
});
diag(sprintf "%d logins: TCP_QUICKACK %d times; exec to route %s ms",
     $n, $during, join(', ', map { sprintf '%.1f', $_ } @ms));
ok($during >= $n, "at least one TCP_QUICKACK per login ($during for $n)");
ok($during <= 32 * $n, "at most 32 per login ($during for $n)");

# an established tunnel: a 16 MiB download (hundreds of reads of the
# client's socket) makes at most what is left of the first 32 reads
my $after = traced($s->dir . '/strace-download.txt', sub {
    my $r = eval { http_get($s, "qa$n", '/bytes/16777216', timeout => 60) };
    is($r && $r->{status}, 200, 'download on the established tunnel: 200');
    is($r && length($r->{body}), 16777216, 'download: every byte');
});
diag("16 MiB download: TCP_QUICKACK $after times");
ok($after < 32, "the first reads only, not every read ($after)");

ok($ssh->alive, 'ssh client still connected');

done_testing();
