#!/usr/bin/perl
# Smoke test of the benchmark (issue 4): `tools/bench --smoke` runs every
# setup and every workload end to end at tiny sizes and must produce a
# number for each.  No timing is asserted: CI machines differ, and the
# figures of a smoke run mean nothing.  Bounded: the bench is stopped by
# PID if it runs past the watchdog.

use strict;
use warnings;
use Test::More;
use FindBin qw($Bin);
use File::Temp qw(tempdir);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my $root = "$Bin/..";
my $out = tempdir('tnl-bench-smoke.XXXXXX', DIR => '/tmp', CLEANUP => 1);
my $log = "$out/bench.log";
my $watchdog = 150;

my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>', $log) or POSIX::_exit(126);
    open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
    { exec("$root/tools/bench", '--smoke', '--out', $out) };
    POSIX::_exit(127);
}

my $t0 = time;
my $status;
while (1) {
    my $r = waitpid($pid, WNOHANG);
    if ($r == $pid) {
        $status = $? >> 8;
        last;
    }
    if (time - $t0 > $watchdog) {
        kill 'TERM', $pid;
        my $until = time + 15;
        sleep 0.1 while waitpid($pid, WNOHANG) == 0 && time < $until;
        kill 'KILL', $pid if waitpid($pid, WNOHANG) == 0;
        waitpid($pid, 0);
        $status = -1;
        last;
    }
    sleep 0.2;
}

my $text = do { local (@ARGV, $/) = ($log); <> } // '';
diag(sprintf("bench --smoke took %.1f s", time - $t0));

is($status, 0, 'tools/bench --smoke exits 0 (no problem reported)')
    or diag($text);

ok(-s "$out/results.json", 'results.json written') or done_testing(), exit;
my $res = decode_json(do { local (@ARGV, $/) = ("$out/results.json"); <> });
my $R = $res->{results};

sub number {
    my ($w, $s, $m) = @_;
    my $v = $R->{$w}{$s}{$m};
    return ref $v eq 'ARRAY' && @$v && defined $v->[0]
           && $v->[0] =~ /^-?[\d.]+(e[-+]?\d+)?$/i;
}

for my $s (1 .. 4) {
    ok(number('a', $s, 'download_MBps'), "a: download measured, setup $s");
    ok(number('a', $s, 'upload_MBps'), "a: upload measured, setup $s");
    ok(number('b', $s, 'requests_per_s'), "b: requests/s measured, setup $s");
    ok(number('b', $s, 'p99_ms'), "b: p99 measured, setup $s");
    ok(number('c', $s, 'p50_ms') && number('c', $s, 'p99_ms'),
       "c: sequential latency measured, setup $s");
    ok(number('g', $s, 'p50_ms') && number('g', $s, 'p99_ms'),
       "g: WebSocket echo measured, setup $s");
}

ok(number('d', 1, 'launch_ms_default'), 'd: launch to first 200, setup 1');
ok(number('d', 2, 'launch_ms_default'), 'd: launch to first 200, setup 2');
ok(number('d', 2, 'launch_ms_curve25519'),
   'd: launch to first 200, setup 2 with curve25519');
ok(number('d', 3, 'launch_ms_default'), 'd: launch to first 200, setup 3');

ok(number('e', 1, 'rss_kib_per_tunnel'), 'e: tunneld memory per tunnel');
ok(number('e', 2, 'pss_kib_per_tunnel'), 'e: sshd memory per session');
is($R->{e}{1}{sessions}[0], $res->{size}{idle_n},
   'e: every idle tunnel came up on tunneld');
is($R->{e}{2}{sessions}[0], $res->{size}{idle_n},
   'e: every idle session came up on sshd');

my ($n) = @{ $res->{size}{scale} };
is($R->{f}{$n}{held}[0], $n, "f: $n tunnels held by the load generator");
ok(number('f', $n, 'rss_mib'), 'f: tunneld RSS measured');
ok(number('f', $n, 'idle_cpu_pct'), 'f: idle CPU measured');
ok(number('f', $n, 'handshakes_per_s'), 'f: handshake rate measured');
ok(number('f', $n, 'p99_ms'), 'f: request latency to random tunnels');
is($R->{f}{$n}{non2xx}[0], 0, 'f: every request reached its tunnel');

for my $f (qw(results.tsv results.md throughput.png memory.png)) {
    ok(-s "$out/$f", "$f written");
}
like($text, qr/^a  \d+ MiB download/m, 'the table is printed');

done_testing();
