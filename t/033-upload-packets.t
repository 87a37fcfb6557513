#!/usr/bin/perl

# Uploads (nginx -> tunneld -> the ssh client) go out in whole SSH packets
# (issue 13).  libssh 0.10.6 cuts a channel write into packets of the
# peer's maximum packet less 10 bytes (32,758 for OpenSSH): tunneld used to
# read and write 64 KB at a time, which left a third, 20-byte packet per
# 64 KB (48 packets per MB instead of 32).  It now reads at most two whole
# packets' worth.
#
# Counted, not timed: OpenSSL 3 calls getpid() once per random draw (its
# fork check), and libssh draws the random padding of every packet it
# sends, so tunneld's getpid calls during an upload (strace -c) count the
# packets it sent.  If a future OpenSSL stops calling getpid the count is 0
# and the packet check is skipped with a message; the bytes are checked
# whatever happens.

use strict;
use warnings;

use FindBin qw($Bin);
use lib "$Bin/lib";

use Test::More;

use NgxTunnel::Test;

watchdog(300);

my ($strace) = grep { -x } map { "$_/strace" } split /:/, $ENV{PATH};
plan skip_all => 'strace is not installed (tools/install-deps)'
    unless $strace;

my $s = start_stack(workers => 1);
my $alice = new_user($s, 'alice');
my $be = start_backend($s, 'up');

my $ssh = start_ssh($s, key => $alice->{key}, user => 'alice',
    remote => "up:80:localhost:$be->{port}");
ok(wait_route($s, 'up', 10), 'tunnel up')
    or diag($ssh->output, tail_log($s, 'tunneld'));

# warm: the upstream connection and its channel exist before counting
my $r = eval { http_get($s, 'up', '/') };
is($r && $r->{status}, 200, 'warm-up request');

my $mib = 16;
my $n = $mib * 1048576;
my ($calls) = strace_during([ $s->tunneld_pids ], sub {
    $r = eval {
        http_get($s, 'up', '/sha256', method => 'POST', timeout => 120,
            body_gen => pattern_gen($n), length => $n);
    };
}, out => $s->dir . '/strace-upload.txt');
my %calls = %$calls;

is($r && $r->{status}, 200, "$mib MiB upload under strace: 200") or diag($@);
is($r && $r->{headers}{'x-body-length'}, $n,
    "$mib MiB upload: the app got every byte");
is($r && $r->{body}, pattern_sha256($n), "$mib MiB upload: sha256");

my $mb = $n / 1e6;
my %per = map { $_ => ($calls{$_} // 0) / $mb } qw(getpid read sendto);
diag(sprintf "%d MiB upload: getpid (one per packet sent) %d = %.1f per MB "
     . "(%.0f bytes per packet), read %.1f per MB, sendto %.1f per MB",
     $mib, $calls{getpid} // 0, $per{getpid},
     $n / ($calls{getpid} || 1), $per{read}, $per{sendto});

SKIP: {
    skip 'OpenSSL made no getpid call: packets cannot be counted this way', 1
        unless $calls{getpid};

    # whole packets: 1e6 / 32,758 = 30.5 per MB, plus window adjusts and
    # the response; a 20-byte third packet per 64 KB made it 45.8
    ok($per{getpid} <= 38,
       'upload: at most 38 packets per MB (whole 32,758-byte packets; '
       . '64 KB writes: 45.8)');
}

ok($ssh->alive, 'ssh client still connected');

done_testing();
